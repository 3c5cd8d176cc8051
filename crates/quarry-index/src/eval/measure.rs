//! Measuring retrieval quality: judged queries ([`Case`]) run per mode of a [`Plan`] (documents
//! ranked with `group_by=document`), scored with `quarry_core::metrics`, timed; and, on an
//! [`Engine`], the run recorded in the catalog with what it measured. The CLI (`quarry eval`) and
//! the HTTP API (`POST /v1/collections/{c}/eval`) both go through here.

use super::run::{EvalRunSummary, Latency, Measured, ModeMetrics, QueryResult};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::searcher::{SearchResponse, Searcher};
use quarry_core::metrics::{Judgments, mean_metrics, query_metrics};
use quarry_core::stats::percentile;
use quarry_core::{Fusion, GroupBy, Mode, Principal, QueryOptions};
use std::collections::BTreeMap;
use std::time::Instant;

/// One judged query.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: String,
    pub text: String,
    pub judged: Judgments,
}

impl From<crate::catalog::GoldenQuery> for Case {
    fn from(q: crate::catalog::GoldenQuery) -> Case {
        Case {
            id: q.id,
            text: q.query,
            judged: q.relevant.into_iter().collect(),
        }
    }
}

/// How a measurement runs: the modes, the fusion of `hybrid`, documents per query.
#[derive(Debug, Clone)]
pub struct Plan {
    pub modes: Vec<Mode>,
    pub fusion: Fusion,
    pub top_k: usize,
    /// A metadata filter every query carries (docs/query.md); `None`: none.
    pub filter: Option<serde_json::Value>,
    /// Every query reranks its first this many documents (docs/query.md, "Reranking").
    pub rerank_top_n: Option<usize>,
    /// Every query's pseudo-relevance feedback (docs/query.md); `None`: the collection's.
    pub feedback: Option<quarry_core::FeedbackSwitch>,
}

pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Bm25 => "bm25",
        Mode::Vector => "vector",
        Mode::Hybrid => "hybrid",
    }
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
        let mut retrieval = Vec::with_capacity(cases.len());
        let mut degraded = 0usize;
        let mut per_query = BTreeMap::new();
        let mut metrics_of = Vec::with_capacity(cases.len());
        for case in cases {
            let q = QueryOptions::new(case.text.clone(), plan.top_k, *mode, GroupBy::Document)
                .and_then(|q| q.with_fusion(plan.fusion))
                .and_then(|q| q.with_feedback(plan.feedback))
                .and_then(|q| match &plan.filter {
                    Some(f) => q.with_filter(f),
                    None => Ok(q),
                })
                .and_then(|q| match plan.rerank_top_n {
                    Some(top_n) => q.with_rerank(quarry_core::Rerank { top_n }),
                    None => Ok(q),
                })
                .map_err(|e| E::from(Error::Input(format!("query {}: {e}", case.id))))?;
            let t = Instant::now();
            let answer = search(&q)?;
            let took = t.elapsed().as_secs_f64() * 1e3;
            lat.push(took);
            retrieval.push((took - answer.embed_ms.unwrap_or(0.0)).max(0.0));
            degraded += usize::from(answer.degraded);
            let ranked: Vec<String> = answer.results.iter().map(|h| h.doc_id.clone()).collect();
            let m = query_metrics(&ranked, &case.judged);
            let mut relevant: Vec<String> = case
                .judged
                .iter()
                .filter(|(_, g)| **g > 0)
                .map(|(d, _)| d.clone())
                .collect();
            relevant.sort();
            let scores = answer.results.iter().map(|h| Some(h.score)).collect();
            per_query.insert(
                case.id.clone(),
                QueryResult {
                    metrics: m,
                    ranked,
                    relevant,
                    scores: Some(scores),
                },
            );
            metrics_of.push(m);
        }
        let percentiles = |mut xs: Vec<f64>| {
            xs.sort_by(f64::total_cmp);
            Latency {
                p50: percentile(&xs, 50.0),
                p95: percentile(&xs, 95.0),
                p99: percentile(&xs, 99.0),
            }
        };
        out.reports.insert(
            name.to_owned(),
            ModeMetrics {
                metrics: mean_metrics(&metrics_of),
                latency_ms: percentiles(lat),
                retrieval_ms: Some(percentiles(retrieval)),
                degraded,
            },
        );
        out.queries.insert(name.to_owned(), per_query);
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
        self.evaluate_on(&self.searcher(collection)?, cases, plan, caller, source)
    }

    /// [`Engine::evaluate`] on a given snapshot of a collection (a shadow version's, say).
    pub(crate) fn evaluate_on(
        &self,
        searcher: &Searcher,
        cases: &[Case],
        plan: &Plan,
        caller: &Principal,
        source: serde_json::Value,
    ) -> Result<(String, Measured)> {
        let collection = searcher.collection();
        let measured = measure(cases, plan, &mut |q| searcher.search(q, caller))?;
        let mut config = serde_json::json!({
            "embedding_version": searcher.embedding_version(),
            "chunk_options": self.chunk_options(collection)?,
            "fusion": plan.fusion, "top_k": plan.top_k, "queries": cases.len(),
            "rerank_top_n": plan.rerank_top_n,
            "principal": caller,
            // The query's feedback (null: the collection's, which `bm25` holds).
            "feedback": plan.feedback,
            "bm25": self.collection_row(collection)?.map(|c| c.bm25),
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

    /// The judged queries of golden set `golden` of `collection`.
    pub fn golden_cases(&self, collection: &str, golden: &str) -> Result<Vec<Case>> {
        Ok(self
            .golden(collection, golden)?
            .into_iter()
            .map(Case::from)
            .collect())
    }

    /// Measures `collection` with its golden set `golden`, as `caller`, and records the run, with
    /// `trigger` (who asked: `cli`, `http`, `schedule`) and a hash of the set's queries in its
    /// configuration. Returns the run's summary and the measurement.
    pub fn evaluate_golden(
        &self,
        collection: &str,
        golden: &str,
        plan: &Plan,
        caller: &Principal,
        trigger: &str,
    ) -> Result<(EvalRunSummary, Measured)> {
        self.evaluate_golden_on(&self.searcher(collection)?, golden, plan, caller, trigger)
    }

    /// [`Engine::evaluate_golden`] on a given snapshot of a collection.
    pub(crate) fn evaluate_golden_on(
        &self,
        searcher: &Searcher,
        golden: &str,
        plan: &Plan,
        caller: &Principal,
        trigger: &str,
    ) -> Result<(EvalRunSummary, Measured)> {
        let collection = searcher.collection();
        let queries = self.golden(collection, golden)?;
        let hash = blake3::hash(
            serde_json::to_string(&queries)
                .map_err(|e| Error::Corrupt(format!("golden set {golden}: {e}")))?
                .as_bytes(),
        );
        let cases: Vec<Case> = queries.into_iter().map(Case::from).collect();
        let (id, measured) = self.evaluate_on(
            searcher,
            &cases,
            plan,
            caller,
            serde_json::json!({
                "source": "golden", "golden": golden, "trigger": trigger,
                "golden_hash": hash.to_hex()[..16],
            }),
        )?;
        let run = self.eval_run_summary(&id)?;
        Ok((run, measured))
    }

    /// The modes of `hybrid`, `bm25` and `vector` that `collection` can answer in (just `bm25`
    /// without an embedding version), with its default fusion, `top_k` documents per query.
    pub fn default_plan(&self, collection: &str, top_k: usize) -> Result<Plan> {
        let searcher = self.searcher(collection)?;
        Ok(Plan {
            modes: if searcher.embedding_version().is_some() {
                vec![Mode::Bm25, Mode::Vector, Mode::Hybrid]
            } else {
                vec![Mode::Bm25]
            },
            fusion: searcher.default_fusion(),
            top_k,
            filter: None,
            rerank_top_n: None,
            feedback: None,
        })
    }
}
