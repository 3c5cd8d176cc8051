//! Measuring retrieval quality: judged queries run per mode (documents ranked with
//! `group_by=document`), scored with `quarry_core::metrics`, timed; and the run recorded in the
//! catalog with what it measured. The CLI (`quarry eval`) and the HTTP API
//! (`POST /v1/collections/{c}/eval`) both go through here.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::searcher::SearchResponse;
use quarry_core::metrics::{Judgments, mean_metrics, query_metrics};
use quarry_core::{Fusion, GroupBy, Mode, Principal, QueryOptions};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

/// One judged query.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: String,
    pub text: String,
    pub judged: Judgments,
}

/// The mean of every metric of one mode, its latency percentiles and its degraded answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModeReport {
    #[serde(flatten)]
    pub metrics: BTreeMap<String, f64>,
    pub latency_ms: BTreeMap<&'static str, f64>,
    /// Queries answered from BM25 alone because the vector side failed.
    pub degraded: usize,
}

/// What a measurement produced: per mode the report, the per-query results (ranked ids,
/// relevant ids, metrics) and the TREC run lines.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub reports: BTreeMap<String, ModeReport>,
    pub queries: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    pub trec: BTreeMap<String, Vec<String>>,
}

/// How a measurement runs: the modes, the fusion of `hybrid`, documents per query.
#[derive(Debug, Clone)]
pub struct Plan {
    pub modes: Vec<Mode>,
    pub fusion: Fusion,
    pub top_k: usize,
}

/// The queries of a BEIR `queries.jsonl` (`{"_id", "text"}` per line; an id may be a string or a
/// number), by id.
pub fn read_beir_queries(path: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = HashMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::Input(format!("{}: not JSON: {e}", at())))?;
        let id = match &v["_id"] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let (Some(id), Some(q)) = (id, v["text"].as_str()) else {
            return Err(Error::Input(format!(
                "{}: a query needs `_id` (a string or a number) and `text`",
                at()
            )));
        };
        out.insert(id, q.to_owned());
    }
    Ok(out)
}

/// The judgments of a BEIR qrels file (`query-id<TAB>corpus-id<TAB>score`, a header line
/// first), by query id; negative scores count as 0.
pub fn read_beir_qrels(path: &Path) -> Result<BTreeMap<String, Judgments>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out: BTreeMap<String, Judgments> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
        let grade = cols.get(2).and_then(|g| g.parse::<i64>().ok());
        let (3, Some(grade)) = (cols.len(), grade) else {
            if i == 0 {
                continue; // the header
            }
            return Err(Error::Input(format!(
                "{}:{}: expected query-id, corpus-id and a whole-number score separated by tabs",
                path.display(),
                i + 1
            )));
        };
        out.entry(cols[0].to_owned())
            .or_default()
            .insert(cols[1].to_owned(), grade.max(0) as u32);
    }
    Ok(out)
}

/// The judged queries of a BEIR split: `qrels/<split>.tsv` with the texts of `queries.jsonl`,
/// in query-id order. A judged query missing from `queries.jsonl` is an error.
pub fn read_beir_cases(dir: &Path, split: &str) -> Result<Vec<Case>> {
    let queries_path = dir.join("queries.jsonl");
    let texts = read_beir_queries(&queries_path)?;
    read_beir_qrels(&dir.join("qrels").join(format!("{split}.tsv")))?
        .into_iter()
        .map(|(id, judged)| {
            let text = texts.get(&id).cloned().ok_or_else(|| {
                Error::Input(format!(
                    "query {id} of qrels/{split}.tsv is not in {}",
                    queries_path.display()
                ))
            })?;
            Ok(Case { id, text, judged })
        })
        .collect()
}

pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Bm25 => "bm25",
        Mode::Vector => "vector",
        Mode::Hybrid => "hybrid",
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs every case per mode of `plan` through `search` and measures the answers.
pub fn measure<E>(
    cases: &[Case],
    plan: &Plan,
    search: &mut dyn FnMut(&QueryOptions) -> std::result::Result<SearchResponse, E>,
) -> std::result::Result<Measured, E>
where
    E: From<Error>,
{
    let mut out = Measured::default();
    for mode in &plan.modes {
        let name = mode_name(*mode);
        let mut lat = Vec::with_capacity(cases.len());
        let mut degraded = 0usize;
        let mut per_query = BTreeMap::new();
        let mut metrics_of = Vec::with_capacity(cases.len());
        let mut trec = Vec::new();
        for case in cases {
            let q = QueryOptions::new(case.text.clone(), plan.top_k, *mode, GroupBy::Document)
                .and_then(|q| q.with_fusion(plan.fusion))
                .map_err(|e| E::from(Error::Input(format!("query {}: {e}", case.id))))?;
            let t = Instant::now();
            let answer = search(&q)?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            degraded += usize::from(answer.degraded);
            let ranked: Vec<String> = answer.results.iter().map(|h| h.doc_id.clone()).collect();
            let m = query_metrics(&ranked, &case.judged);
            let mut relevant: Vec<&String> = case
                .judged
                .iter()
                .filter(|(_, g)| **g > 0)
                .map(|(d, _)| d)
                .collect();
            relevant.sort();
            for (i, h) in answer.results.iter().enumerate() {
                trec.push(format!(
                    "{} Q0 {} {} {} quarry-{name}",
                    case.id,
                    h.doc_id,
                    i + 1,
                    h.score
                ));
            }
            per_query.insert(
                case.id.clone(),
                serde_json::json!({"ranked": ranked, "relevant": relevant, "metrics": m}),
            );
            metrics_of.push(m);
        }
        lat.sort_by(f64::total_cmp);
        out.reports.insert(
            name.to_owned(),
            ModeReport {
                metrics: mean_metrics(&metrics_of),
                latency_ms: BTreeMap::from([
                    ("p50", percentile(&lat, 50.0)),
                    ("p95", percentile(&lat, 95.0)),
                    ("p99", percentile(&lat, 99.0)),
                ]),
                degraded,
            },
        );
        out.queries.insert(name.to_owned(), per_query);
        out.trec.insert(name.to_owned(), trec);
    }
    Ok(out)
}

impl Engine {
    /// Measures `cases` against `collection` in process as `caller` and records the run, with
    /// `source` (what the cases are: a dataset, a golden set) merged into its configuration.
    /// Returns the run id and the measurement.
    pub fn evaluate(
        &self,
        collection: &str,
        cases: &[Case],
        plan: &Plan,
        caller: &Principal,
        source: serde_json::Value,
    ) -> Result<(String, Measured)> {
        let searcher = self.searcher(collection)?;
        let measured = measure(cases, plan, &mut |q| searcher.search(q, caller))?;
        let mut config = serde_json::json!({
            "embedding_version": searcher.embedding_version(),
            "chunk_options": self.chunk_options(collection)?,
            "fusion": plan.fusion, "top_k": plan.top_k, "queries": cases.len(),
            "principal": caller,
        });
        if let (Some(c), Some(src)) = (config.as_object_mut(), source.as_object()) {
            c.extend(src.clone());
        }
        let to_json = |e: serde_json::Error| Error::Corrupt(format!("eval run: {e}"));
        let id = self.record_eval_run(
            collection,
            &config,
            &serde_json::to_value(&measured.reports).map_err(to_json)?,
            &serde_json::to_value(&measured.queries).map_err(to_json)?,
        )?;
        Ok((id, measured))
    }

    /// Measures `collection` with its golden set `golden`, as `caller`, and records the run.
    pub fn evaluate_golden(
        &self,
        collection: &str,
        golden: &str,
        plan: &Plan,
        caller: &Principal,
    ) -> Result<(String, Measured)> {
        let cases: Vec<Case> = self
            .golden(collection, golden)?
            .into_iter()
            .map(|q| Case {
                id: q.id,
                text: q.query,
                judged: q.relevant.into_iter().collect(),
            })
            .collect();
        self.evaluate(
            collection,
            &cases,
            plan,
            caller,
            serde_json::json!({"source": "golden", "golden": golden}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beir_files_are_read_with_numeric_ids_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("qrels")).unwrap();
        std::fs::write(
            d.join("queries.jsonl"),
            "{\"_id\": 7, \"text\": \"seven\"}\n\n{\"_id\": \"b\", \"text\": \"bee\"}\n",
        )
        .unwrap();
        std::fs::write(
            d.join("qrels/test.tsv"),
            "query-id\tcorpus-id\tscore\n7\tx\t2\nb\ty\t-1\n",
        )
        .unwrap();
        let cases = read_beir_cases(d, "test").unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(
            (cases[0].id.as_str(), cases[0].text.as_str()),
            ("7", "seven")
        );
        assert_eq!(cases[1].judged["y"], 0, "negative grades count as 0");

        std::fs::write(d.join("qrels/bad.tsv"), "h\th\th\n7\tx\n").unwrap();
        let e = read_beir_cases(d, "bad").unwrap_err().to_string();
        assert!(e.contains("bad.tsv:2"), "{e}");
        std::fs::write(d.join("qrels/orphan.tsv"), "7\tx\t1\nzz\ty\t1\n").unwrap();
        let e = read_beir_cases(d, "orphan").unwrap_err().to_string();
        assert!(e.contains("query zz"), "{e}");
        std::fs::write(d.join("queries.jsonl"), "{\"_id\": [1], \"text\": \"x\"}\n").unwrap();
        let e = read_beir_queries(&d.join("queries.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("queries.jsonl:1"), "{e}");
        assert!(read_beir_cases(d, "missing").is_err());
    }
}
