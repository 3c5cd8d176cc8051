//! The wire JSON of jobs and embedding versions: what the HTTP API answers and what the CLI's
//! `--json` prints (the binary calls these same functions), so the two cannot drift apart. The
//! engine's types carry no wire format of their own beyond their serde fields.

use quarry_index::VersionInfo;
use quarry_index::catalog::Job;
use serde_json::{Value, json};

/// A job: its stored fields (params, progress, result with the eval gate's report) plus
/// `rate_per_s` and `eta_s`.
pub fn job(job: &Job) -> Value {
    serde_json::to_value(JobView {
        rate_per_s: job.rate_per_s(),
        eta_s: job.eta_s(),
        tokens_per_s: job.tokens_per_s(),
        job: job.clone(),
    })
    .unwrap_or_default()
}

/// A job as the API and `--json` show it: its stored fields and the rates derived from them.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    pub job: Job,
    /// Chunks embedded per second since the job started (`null` before any were).
    pub rate_per_s: Option<f64>,
    /// Seconds left at that rate, while the job runs.
    pub eta_s: Option<f64>,
    /// Tokens embedded per second (`null` for an embedder that does not count them).
    pub tokens_per_s: Option<f64>,
}

/// A list of jobs: `{"jobs": [...]}`.
pub fn jobs<'a>(list: impl IntoIterator<Item = &'a Job>) -> Value {
    let list: Vec<Value> = list.into_iter().map(job).collect();
    json!({ "jobs": list })
}

/// A collection's embedding versions: `{"versions": [...]}`.
pub fn versions(list: &[VersionInfo]) -> Value {
    json!({ "versions": list })
}

/// An embedding version: `{"version": {...}}`.
pub fn version(v: &VersionInfo) -> Value {
    json!({ "version": v })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_job_shows_its_fields_and_its_rate() {
        let stored = r#"{"id":"j1","kind":"reindex","collection":"c","state":"running",
            "params":{"embedder":"b"},"processed":10,"total":40,"embedded":10,"cache_hits":0,
            "error":null,"result":null,"cancel_requested":false,"created_at":100,
            "started_at":100,"updated_at":105}"#;
        let j: Job = serde_json::from_str(stored).unwrap();
        let mut want: Value = serde_json::from_str(stored).unwrap();
        want["rate_per_s"] = json!(2.0);
        want["eta_s"] = json!(15.0);
        want["tokens"] = json!(0);
        want["tokens_per_s"] = json!(null);
        assert_eq!(job(&j), want);
        assert_eq!(jobs([&j]), json!({ "jobs": [want] }));
    }
}
