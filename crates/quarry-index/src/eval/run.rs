//! What an evaluation run holds: per mode the mean metrics with latency percentiles
//! ([`ModeReport`]) and the per-query results, as [`crate::eval::measure`] produces them and the
//! catalog stores them; and their TREC run lines.

use std::collections::BTreeMap;

/// The mean of every metric of one mode, its latency percentiles and its degraded answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModeReport {
    #[serde(flatten)]
    pub metrics: BTreeMap<String, f64>,
    pub latency_ms: BTreeMap<&'static str, f64>,
    /// Latency without the query's embedding (`embed_ms` of the answer): the retrieval itself.
    pub retrieval_ms: BTreeMap<&'static str, f64>,
    /// Queries answered from BM25 alone because the vector side failed.
    pub degraded: usize,
}

/// What a measurement produced: per mode the report and the per-query results (ranked ids,
/// their scores, relevant ids, metrics), as a run records them.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub reports: BTreeMap<String, ModeReport>,
    pub queries: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

/// The TREC run lines (`qid Q0 docno rank score tag`) of one mode's per-query results, as
/// [`Measured::queries`] and a recorded run hold them. A result recorded without scores (runs
/// of earlier versions) gets `n - rank + 1`, which keeps its order.
pub fn trec_lines<'a>(
    queries: impl IntoIterator<Item = (&'a String, &'a serde_json::Value)>,
    tag: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for (qid, q) in queries {
        let ranked = q["ranked"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let scores = q["scores"].as_array();
        for (i, doc) in ranked.iter().enumerate() {
            // Scores are f32: printed as the shortest f32, they read the same however the
            // JSON number was parsed.
            let score = scores
                .and_then(|s| s.get(i)?.as_f64())
                .map_or((ranked.len() - i) as f32, |x| x as f32);
            out.push(format!(
                "{qid} Q0 {} {} {score} {tag}",
                doc.as_str().unwrap_or_default(),
                i + 1
            ));
        }
    }
    out
}
