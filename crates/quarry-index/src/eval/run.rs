//! The typed evaluation run: what a measurement produces ([`Measured`]) and what the catalog
//! stores and gives back ([`EvalRunSummary`], [`EvalRun`]): per mode the mean metrics with
//! latency percentiles ([`ModeMetrics`]) and per query the ranking and its metrics
//! ([`QueryResult`]); and their TREC run lines.
//!
//! They serialise as the JSON the catalog has always held (`metrics[mode]["ndcg@10"]`,
//! `queries[mode][query]["ranked"]`), so runs recorded before these types read as they are.

use quarry_core::metrics::Metrics;
use std::collections::BTreeMap;

/// Latency percentiles of a mode's queries, in milliseconds (nearest rank).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// The mean of every metric of one mode, its latency percentiles and its degraded answers.
/// Serialised flat: `{"degraded", "latency_ms", "map@1", …, "recall@5", "retrieval_ms"}`.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct ModeMetrics {
    /// Queries answered from BM25 alone because the vector side failed.
    pub degraded: usize,
    pub latency_ms: Latency,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Latency without the query's embedding (`embed_ms` of the answer): the retrieval itself.
    /// Absent from runs recorded before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval_ms: Option<Latency>,
}

impl ModeMetrics {
    /// nDCG@10, the headline metric.
    pub fn ndcg10(&self) -> f64 {
        self.metrics.ndcg_10
    }
}

/// One query of a run: the ranked document ids, their scores, the judged-relevant ids (sorted)
/// and the query's metrics.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QueryResult {
    pub metrics: Metrics,
    pub ranked: Vec<String>,
    pub relevant: Vec<String>,
    /// The scores of `ranked` (`null` where one was not a finite number); absent from runs
    /// recorded before scores were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<Vec<Option<f32>>>,
}

/// Per mode, the mean metrics of the mode.
pub type RunMetrics = BTreeMap<String, ModeMetrics>;
/// Per mode, per query id, the query's result.
pub type RunQueries = BTreeMap<String, BTreeMap<String, QueryResult>>;

/// What a measurement produced: per mode the mean metrics and the per-query results, as a run
/// records them.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub reports: RunMetrics,
    pub queries: RunQueries,
}

/// A stored run without its per-query results.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EvalRunSummary {
    pub id: String,
    pub collection: String,
    pub created_at: i64,
    /// What was measured and how: dataset, split, embedding version, chunking, fusion, top_k.
    pub config: serde_json::Value,
    /// Per mode: mean metrics and latency.
    pub metrics: RunMetrics,
}

impl EvalRunSummary {
    /// The nDCG@10 of `mode`, if the run measured it.
    pub fn ndcg10(&self, mode: &str) -> Option<f64> {
        self.metrics.get(mode).map(ModeMetrics::ndcg10)
    }

    /// The metric `name` (`"recall@100"`) of `mode`, if the run measured it.
    pub fn metric(&self, mode: &str, name: &str) -> Option<f64> {
        self.metrics.get(mode)?.metrics.get(name)
    }
}

/// A stored run with its per-query results.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalRun {
    #[serde(flatten)]
    pub summary: EvalRunSummary,
    pub queries: RunQueries,
}

/// The TREC run lines (`qid Q0 docno rank score tag`) of one mode's per-query results, as
/// [`Measured::queries`] and a recorded run hold them. A result recorded without scores (runs
/// of earlier versions) gets `n - rank + 1`, which keeps its order.
pub fn trec_lines<'a>(
    queries: impl IntoIterator<Item = (&'a String, &'a QueryResult)>,
    tag: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for (qid, q) in queries {
        let n = q.ranked.len();
        for (i, doc) in q.ranked.iter().enumerate() {
            // Scores are f32: printed as the shortest f32, they read the same however the
            // JSON number was parsed.
            let score = q
                .scores
                .as_ref()
                .and_then(|s| *s.get(i)?)
                .unwrap_or((n - i) as f32);
            out.push(format!("{qid} Q0 {doc} {} {score} {tag}", i + 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `metrics` and a `queries` value as the code before these types wrote them (a map of
    /// metrics, `json!` per query), one run recorded before `retrieval_ms` and scores were.
    const OLD_METRICS: &str = r#"{"bm25":{"degraded":0,"latency_ms":{"p50":1.25,"p95":2.5,"p99":3.0},"map@1":0.5,"map@10":0.625,"map@100":0.625,"map@5":0.625,"mrr@1":0.5,"mrr@10":0.75,"mrr@100":0.75,"mrr@5":0.75,"ndcg@1":0.5,"ndcg@10":0.7103099178571526,"ndcg@100":0.7103099178571526,"ndcg@5":0.7103099178571526,"p@1":0.5,"p@10":0.1,"p@100":0.01,"p@5":0.2,"recall@1":0.5,"recall@10":1.0,"recall@100":1.0,"recall@5":1.0,"retrieval_ms":{"p50":1.0,"p95":2.0,"p99":2.75}},"hybrid":{"degraded":2,"latency_ms":{"p50":4.0,"p95":5.0,"p99":6.0},"map@1":0.0,"map@10":0.0,"map@100":0.0,"map@5":0.0,"mrr@1":0.0,"mrr@10":0.0,"mrr@100":0.0,"mrr@5":0.0,"ndcg@1":0.0,"ndcg@10":0.0,"ndcg@100":0.0,"ndcg@5":0.0,"p@1":0.0,"p@10":0.0,"p@100":0.0,"p@5":0.0,"recall@1":0.0,"recall@10":0.0,"recall@100":0.0,"recall@5":0.0}}"#;
    const OLD_QUERIES: &str = r#"{"bm25":{"q1":{"metrics":{"map@1":1.0,"map@10":1.0,"map@100":1.0,"map@5":1.0,"mrr@1":1.0,"mrr@10":1.0,"mrr@100":1.0,"mrr@5":1.0,"ndcg@1":1.0,"ndcg@10":1.0,"ndcg@100":1.0,"ndcg@5":1.0,"p@1":1.0,"p@10":0.1,"p@100":0.01,"p@5":0.2,"recall@1":1.0,"recall@10":1.0,"recall@100":1.0,"recall@5":1.0},"ranked":["a","b"],"relevant":["a"],"scores":[0.6000000238418579,0.5]}},"hybrid":{"q1":{"metrics":{"map@1":0.0,"map@10":0.0,"map@100":0.0,"map@5":0.0,"mrr@1":0.0,"mrr@10":0.0,"mrr@100":0.0,"mrr@5":0.0,"ndcg@1":0.0,"ndcg@10":0.0,"ndcg@100":0.0,"ndcg@5":0.0,"p@1":0.0,"p@10":0.0,"p@100":0.0,"p@5":0.0,"recall@1":0.0,"recall@10":0.0,"recall@100":0.0,"recall@5":0.0},"ranked":["b","c"],"relevant":["a"]}}}"#;

    #[test]
    fn runs_written_before_the_types_read_and_write_back_the_same_json() {
        let metrics: RunMetrics = serde_json::from_str(OLD_METRICS).unwrap();
        assert_eq!(metrics["bm25"].ndcg10(), 0.7103099178571526);
        assert_eq!(metrics["bm25"].metrics["recall@100"], 1.0);
        assert_eq!(metrics["bm25"].latency_ms.p99, 3.0);
        assert_eq!(metrics["bm25"].retrieval_ms.map(|r| r.p50), Some(1.0));
        assert_eq!(metrics["hybrid"].degraded, 2);
        assert_eq!(metrics["hybrid"].retrieval_ms, None);
        // stored through a `serde_json::Value`, as the catalog stores them: the same text
        assert_eq!(
            serde_json::to_value(&metrics).unwrap().to_string(),
            OLD_METRICS
        );
        // and written directly, the same keys in the same order
        assert_eq!(serde_json::to_string(&metrics).unwrap(), OLD_METRICS);

        let queries: RunQueries = serde_json::from_str(OLD_QUERIES).unwrap();
        let q = &queries["bm25"]["q1"];
        assert_eq!(q.scores, Some(vec![Some(0.6), Some(0.5)]));
        assert_eq!(queries["hybrid"]["q1"].scores, None);
        assert_eq!(
            serde_json::to_value(&queries).unwrap().to_string(),
            OLD_QUERIES
        );

        let summary = EvalRunSummary {
            id: "r1".into(),
            collection: "c".into(),
            created_at: 0,
            config: serde_json::json!({}),
            metrics,
        };
        assert_eq!(summary.ndcg10("hybrid"), Some(0.0));
        assert_eq!(summary.ndcg10("vector"), None);
        assert_eq!(summary.metric("bm25", "p@10"), Some(0.1));
        // scores as recorded; none recorded: n - rank + 1
        assert_eq!(
            trec_lines(&queries["bm25"], "t"),
            ["q1 Q0 a 1 0.6 t", "q1 Q0 b 2 0.5 t"]
        );
        assert_eq!(
            trec_lines(&queries["hybrid"], "t"),
            ["q1 Q0 b 1 2 t", "q1 Q0 c 2 1 t"]
        );
    }
}
