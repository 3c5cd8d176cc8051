//! What a job row stores as JSON: its parameters ([`JobParams`]) and its result ([`JobResult`],
//! with the eval gate's [`GateReport`] for a re-index). The structs read and write the same JSON
//! as the blobs written before they existed (the catalog stores them through a
//! `serde_json::Value`, so keys keep their sorted order).

use crate::vectors::Quantization;
use quarry_core::ChunkOptions;
use std::collections::BTreeMap;

/// A job's parameters, by kind.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum JobParams {
    /// A re-index: the `[embedders.NAME]` to re-embed with.
    Reindex { embedder: String },
    /// A re-chunk: the new chunk options, and those the collection had when it was queued.
    Rechunk {
        chunk: ChunkOptions,
        from: ChunkOptions,
    },
    /// A requantize: the version whose index is rebuilt, the quantization it gets, and the one
    /// it had when the job was queued.
    Requantize {
        version: String,
        quantization: Quantization,
        from: Quantization,
    },
}

impl JobParams {
    /// The embedder a re-index builds a version of.
    pub fn embedder(&self) -> Option<&str> {
        match self {
            JobParams::Reindex { embedder } => Some(embedder),
            JobParams::Rechunk { .. } | JobParams::Requantize { .. } => None,
        }
    }
}

/// What a job ended with, by kind.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum JobResult {
    Rechunk(RechunkResult),
    Reindex(ReindexResult),
    Requantize(RequantizeResult),
}

/// What a requantize ended with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RequantizeResult {
    pub version: String,
    /// The quantization the version's index has now.
    pub quantization: Quantization,
    /// Points in the new index, and chunks that had no stored vector (left out, as before).
    pub points: u64,
    pub without_vector: u64,
    /// The generation the new index was switched in at.
    pub generation: u64,
}

/// What a re-index ended with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ReindexResult {
    /// The version built.
    pub version: String,
    /// Whether it was made active (otherwise the eval gate held it back: it is `ready`).
    pub promoted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateReport>,
    /// Chunks sent to the embedder, and chunks whose vector was already stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hits: Option<u64>,
    /// Set when the version was found active already (the job resumed after its switch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a re-chunk ended with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RechunkResult {
    /// The chunk options now in use.
    pub chunk: ChunkOptions,
    /// The generation that switched to the new chunks (`None`: nothing changed).
    pub generation: Option<u64>,
    pub chunks_before: u64,
    pub chunks_after: u64,
    pub embedded: u64,
    pub cache_hits: u64,
}

/// What the eval gate of a re-index found.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct GateReport {
    /// Whether any golden set ran.
    pub ran: bool,
    /// `None` when none ran (the gate does not hold the version back).
    pub passed: Option<bool>,
    /// `reindex.max_ndcg_drop`, when sets ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ndcg_drop: Option<f64>,
    /// One entry per golden set, when sets ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sets: Option<Vec<GateSet>>,
    /// Why no set ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl GateReport {
    /// The gate lets the version through: it passed, or no set ran.
    pub fn lets_through(&self) -> bool {
        self.passed != Some(false)
    }
}

/// One golden set of the eval gate: the runs on the active and the new version.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct GateSet {
    pub golden: String,
    pub active_run: String,
    pub new_run: String,
    /// nDCG@10 by mode (`vector`, `hybrid`).
    #[serde(rename = "ndcg@10")]
    pub ndcg_at_10: BTreeMap<String, GateMode>,
    /// Answers the new version gave from BM25 alone (its embedder failed).
    pub degraded_answers: u64,
    /// The command that compares the two runs.
    pub compare: String,
}

/// nDCG@10 of one mode on the active and the new version.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct GateMode {
    pub active: f64,
    pub new: f64,
    /// `new` is at least `active - max_ndcg_drop`.
    pub ok: bool,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Parses `old` (as the code before these structs wrote it) and checks that writing the
    /// struct back gives the same JSON, key for key.
    fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(old: &str) -> T {
        let parsed: T = serde_json::from_str(old).unwrap();
        let again = serde_json::to_value(&parsed).unwrap();
        let old: Value = serde_json::from_str(old).unwrap();
        assert_eq!(again, old);
        // stored text: through a `Value`, so keys sorted as before
        assert_eq!(again.to_string(), old.to_string());
        parsed
    }

    #[test]
    fn params_read_and_write_the_blobs_of_before() {
        let p: JobParams = round_trip(r#"{"embedder":"remote"}"#);
        assert_eq!(p.embedder(), Some("remote"));
        let p: JobParams = round_trip(
            r#"{"chunk":{"context_chars":0,"max_tokens":8,"overlap":0,"sizer":"chars"},
                "from":{"context_chars":0,"max_tokens":200,"overlap":40,"sizer":"tokens"}}"#,
        );
        assert!(matches!(p, JobParams::Rechunk { chunk, .. } if chunk.max_tokens == 8));
    }

    #[test]
    fn results_read_and_write_the_blobs_of_before() {
        let r: JobResult = round_trip(
            r#"{"cache_hits":3,"embedded":97,"gate":{"max_ndcg_drop":0.02,"passed":false,"ran":true,
                "sets":[{"active_run":"r1","compare":"quarry eval compare r1 r2","degraded_answers":0,
                "golden":"g","ndcg@10":{"hybrid":{"active":0.5,"new":0.25,"ok":false},
                "vector":{"active":0.75,"new":0.125,"ok":false}},"new_run":"r2"}]},
                "promoted":false,"version":"hash-0123456789ab"}"#,
        );
        let JobResult::Reindex(r) = r else {
            panic!("a re-index result")
        };
        assert!(!r.gate.unwrap().lets_through());
        let r: JobResult = round_trip(
            r#"{"cache_hits":0,"embedded":12,"gate":{"note":"the collection has no golden set, so no eval gate ran",
                "passed":null,"ran":false},"promoted":true,"version":"b-0123456789ab"}"#,
        );
        assert!(
            matches!(r, JobResult::Reindex(ReindexResult { gate: Some(g), .. }) if g.lets_through())
        );
        let _: JobResult = round_trip(
            r#"{"note":"the version was already active: the job had switched before it was interrupted",
                "promoted":true,"version":"b-0123456789ab"}"#,
        );
        let r: JobResult = round_trip(
            r#"{"cache_hits":4,"chunk":{"context_chars":0,"max_tokens":8,"overlap":0,"sizer":"chars"},
                "chunks_after":40,"chunks_before":10,"embedded":36,"generation":7}"#,
        );
        assert!(matches!(
            r,
            JobResult::Rechunk(RechunkResult {
                chunks_after: 40,
                ..
            })
        ));
        let r: JobResult = round_trip(
            r#"{"cache_hits":0,"chunk":{"context_chars":0,"max_tokens":8,"overlap":0,"sizer":"chars"},
                "chunks_after":10,"chunks_before":10,"embedded":0,"generation":null}"#,
        );
        assert!(matches!(
            r,
            JobResult::Rechunk(RechunkResult {
                generation: None,
                ..
            })
        ));
    }
}
