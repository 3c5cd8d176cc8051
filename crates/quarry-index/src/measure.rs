//! Measuring retrieval quality: judged queries run per mode (documents ranked with
//! `group_by=document`), scored with `quarry_core::metrics`, timed; and the run recorded in the
//! catalog with what it measured. The CLI (`quarry eval`) and the HTTP API
//! (`POST /v1/collections/{c}/eval`) both go through here.

use crate::catalog::EvalRunSummary;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::searcher::{SearchResponse, Searcher};
use quarry_core::metrics::{Judgments, mean_metrics, query_metrics};
use quarry_core::stats::percentile;
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

impl From<crate::catalog::GoldenQuery> for Case {
    fn from(q: crate::catalog::GoldenQuery) -> Case {
        Case {
            id: q.id,
            text: q.query,
            judged: q.relevant.into_iter().collect(),
        }
    }
}

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
                .map_err(|e| E::from(Error::Input(format!("query {}: {e}", case.id))))?;
            let t = Instant::now();
            let answer = search(&q)?;
            let took = t.elapsed().as_secs_f64() * 1e3;
            lat.push(took);
            retrieval.push((took - answer.embed_ms.unwrap_or(0.0)).max(0.0));
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
            let scores: Vec<f32> = answer.results.iter().map(|h| h.score).collect();
            per_query.insert(
                case.id.clone(),
                serde_json::json!({"ranked": ranked, "scores": scores, "relevant": relevant, "metrics": m}),
            );
            metrics_of.push(m);
        }
        let percentiles = |mut xs: Vec<f64>| {
            xs.sort_by(f64::total_cmp);
            BTreeMap::from([
                ("p50", percentile(&xs, 50.0)),
                ("p95", percentile(&xs, 95.0)),
                ("p99", percentile(&xs, 99.0)),
            ])
        };
        out.reports.insert(
            name.to_owned(),
            ModeReport {
                metrics: mean_metrics(&metrics_of),
                latency_ms: percentiles(lat),
                retrieval_ms: percentiles(retrieval),
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
    pub fn evaluate_on(
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
    pub fn evaluate_golden_on(
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
        })
    }

    /// The modes of golden-set run `run` whose nDCG@10 is more than `policy.alert_drop` below the
    /// best of the `policy.window` comparable runs before it (by run number): same golden set
    /// with the same queries, fusion, depth and principal (a run with other settings is an
    /// experiment, not a baseline).
    pub fn drift(&self, run: &EvalRunSummary, policy: &DriftPolicy) -> Result<Vec<Drift>> {
        let same = |a: &EvalRunSummary, key: &str| a.config.get(key) == run.config.get(key);
        let number = |id: &str| id.strip_prefix('r').and_then(|n| n.parse::<u64>().ok());
        let mut before: Vec<EvalRunSummary> = self
            .eval_runs(Some(&run.collection))?
            .into_iter()
            .filter(|r| number(&r.id) < number(&run.id))
            // the eval gate's runs of a candidate version measure a version that may not serve
            .filter(|r| {
                !r.config["trigger"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("reindex"))
            })
            .filter(|r| {
                [
                    "source",
                    "golden",
                    "golden_hash",
                    "fusion",
                    "top_k",
                    "principal",
                ]
                .iter()
                .all(|k| same(r, k))
            })
            .collect();
        before.sort_by_key(|r| number(&r.id));
        let recent = before.len().saturating_sub(policy.window);
        let before = before.split_off(recent);
        let ndcg = |r: &EvalRunSummary, mode: &str| r.metrics[mode]["ndcg@10"].as_f64();
        let mut out = Vec::new();
        let Some(modes) = run.metrics.as_object() else {
            return Ok(out);
        };
        for mode in modes.keys() {
            let Some(now) = ndcg(run, mode) else { continue };
            let best = before
                .iter()
                .filter_map(|r| Some((r, ndcg(r, mode)?)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((best_run, best)) = best
                && best - now > policy.alert_drop
            {
                out.push(Drift {
                    collection: run.collection.clone(),
                    golden: run.config["golden"].as_str().unwrap_or_default().to_owned(),
                    mode: mode.clone(),
                    run: run.id.clone(),
                    ndcg_at_10: now,
                    best_run: best_run.id.clone(),
                    best_ndcg_at_10: best,
                });
            }
        }
        Ok(out)
    }

    /// One pass of scheduled evaluation: every golden set of every collection, run as
    /// `policy.principal` in the collection's default plan, recorded, shown on the gauges, and
    /// checked for drift; each collection's drift alert is raised or cleared by its sets' runs
    /// (a set that cannot run is counted and reported, not fatal, and leaves the alert as it
    /// was); the series of deleted sets are removed.
    pub fn scheduled_eval(&self, policy: &DriftPolicy) -> Result<Vec<ScheduledRun>> {
        let telemetry = self.telemetry();
        let mut out = Vec::new();
        let mut alerts: BTreeMap<String, bool> = BTreeMap::new();
        let mut present = std::collections::BTreeSet::new();
        for set in self.golden_sets(None)? {
            present.insert((set.collection.clone(), set.name.clone()));
            let ran = self
                .default_plan(&set.collection, policy.top_k)
                .and_then(|plan| {
                    self.evaluate_golden(
                        &set.collection,
                        &set.name,
                        &plan,
                        &policy.principal,
                        "schedule",
                    )
                })
                .and_then(|(run, measured)| Ok((self.drift(&run, policy)?, run, measured)));
            let outcome = match ran {
                Ok((drift, run, measured)) => {
                    let gauges: Vec<(&str, f64, f64)> = measured
                        .reports
                        .iter()
                        .map(|(mode, r)| {
                            let m = |k: &str| r.metrics.get(k).copied().unwrap_or(0.0);
                            (mode.as_str(), m("ndcg@10"), m("recall@100"))
                        })
                        .collect();
                    telemetry.observe_eval(&set.collection, &set.name, run.created_at, &gauges);
                    *alerts.entry(set.collection.clone()).or_default() |= !drift.is_empty();
                    Ok((run, drift))
                }
                Err(e) => {
                    telemetry.observe_eval_failure(&set.collection, &set.name);
                    Err(e.to_string())
                }
            };
            out.push(ScheduledRun {
                collection: set.collection,
                golden: set.name,
                outcome,
            });
        }
        for (collection, on) in alerts {
            telemetry.set_drift_alert(&collection, on);
        }
        telemetry.retain_eval(&present);
        Ok(out)
    }
}

/// How scheduled evaluation runs and when it alarms (`[eval]`).
#[derive(Debug, Clone)]
pub struct DriftPolicy {
    /// Raise the alert when nDCG@10 falls more than this (absolute) below the best recent run.
    pub alert_drop: f64,
    /// How many comparable runs before the latest count as "recent".
    pub window: usize,
    /// Who the runs are evaluated as (ACLs apply).
    pub principal: Principal,
    /// Documents per query.
    pub top_k: usize,
}

/// A mode of a run that fell more than the allowed drop below the best recent comparable run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Drift {
    pub collection: String,
    pub golden: String,
    pub mode: String,
    pub run: String,
    pub ndcg_at_10: f64,
    pub best_run: String,
    pub best_ndcg_at_10: f64,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "collection {} golden set {} {}: nDCG@10 {:.4} in run {} is {:.4} below {:.4} in run {}; \
             compare them with `quarry eval compare {} {}`",
            self.collection,
            self.golden,
            self.mode,
            self.ndcg_at_10,
            self.run,
            self.best_ndcg_at_10 - self.ndcg_at_10,
            self.best_ndcg_at_10,
            self.best_run,
            self.best_run,
            self.run
        )
    }
}

/// One golden set of a scheduled pass: its run and drift, or why it could not run.
#[derive(Debug, Clone)]
pub struct ScheduledRun {
    pub collection: String,
    pub golden: String,
    pub outcome: std::result::Result<(EvalRunSummary, Vec<Drift>), String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::GoldenQuery;
    use crate::engine::{Change, EngineOptions};

    fn put(engine: &Engine, id: &str, text: &str) {
        crate::test_support::put(engine, "c", id, text);
    }

    fn golden(query: &str, doc: &str) -> GoldenQuery {
        GoldenQuery {
            id: query.into(),
            query: query.into(),
            relevant: [(doc.to_owned(), 1)].into(),
        }
    }

    /// One line of the OpenMetrics text, by its name and labels.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn scheduled_eval_records_gauges_and_alarms_on_drift_against_comparable_runs() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        put(&engine, "a", "apple orchard in the hills");
        put(&engine, "b", "bright copper kettles shine");
        put(&engine, "x", "crisp winter mornings here");
        engine
            .put_golden("c", "g", &[golden("orchard", "a"), golden("kettles", "b")])
            .unwrap();
        let policy = DriftPolicy {
            alert_drop: 0.02,
            window: 3,
            principal: Principal::local_admin(),
            top_k: 10,
        };
        let ok = |runs: Vec<ScheduledRun>| {
            assert_eq!(runs.len(), 1);
            runs.into_iter().next().unwrap().outcome.unwrap()
        };
        let ndcg = r#"quarry_eval_ndcg_at_10{collection="c",golden="g",mode="bm25"}"#;
        let alert = r#"quarry_eval_drift_alert{collection="c"}"#;

        let (r1, drift) = ok(engine.scheduled_eval(&policy).unwrap());
        assert!(drift.is_empty());
        assert_eq!(r1.metrics["bm25"]["ndcg@10"].as_f64(), Some(1.0));
        assert_eq!(r1.config["trigger"], "schedule");
        let (r2, drift) = ok(engine.scheduled_eval(&policy).unwrap());
        assert!(drift.is_empty());
        let text = engine.telemetry().encode();
        assert_eq!(sample(&text, ndcg), Some(1.0));
        assert_eq!(sample(&text, alert), Some(0.0));
        assert_eq!(
            sample(
                &text,
                r#"quarry_eval_last_run_timestamp_seconds{collection="c",golden="g"}"#
            ),
            Some(r2.created_at as f64)
        );

        // The relevant document of one of the two queries goes: nDCG@10 = (0 + 1) / 2.
        engine.apply("c", vec![Change::Delete("a".into())]).unwrap();
        let (r3, drift) = ok(engine.scheduled_eval(&policy).unwrap());
        assert_eq!(drift.len(), 1, "{drift:?}");
        let d = &drift[0];
        assert_eq!(
            (d.mode.as_str(), d.run.as_str(), d.best_run.as_str()),
            ("bm25", r3.id.as_str(), r2.id.as_str())
        );
        assert_eq!((d.ndcg_at_10, d.best_ndcg_at_10), (0.5, 1.0));
        assert!(
            d.to_string()
                .contains(&format!("quarry eval compare {} {}", r2.id, r3.id))
        );
        let text = engine.telemetry().encode();
        assert_eq!(sample(&text, ndcg), Some(0.5));
        assert_eq!(sample(&text, alert), Some(1.0));

        // A run with other settings is an experiment: nothing comparable came before it.
        let mut plan = engine.default_plan("c", 5).unwrap();
        plan.modes = vec![Mode::Bm25];
        let (other, _) = engine
            .evaluate_golden("c", "g", &plan, &Principal::local_admin(), "http")
            .unwrap();
        assert!(engine.drift(&other, &policy).unwrap().is_empty());

        // With a window of one run, the degraded run is the baseline: the alarm clears.
        let (_, drift) = ok(engine
            .scheduled_eval(&DriftPolicy {
                window: 1,
                ..policy.clone()
            })
            .unwrap());
        assert!(drift.is_empty(), "{drift:?}");
        let text = engine.telemetry().encode();
        assert_eq!(sample(&text, alert), Some(0.0));
        assert_eq!(
            sample(
                &text,
                r#"quarry_ingest_documents_total{collection="c",outcome="added"}"#
            ),
            Some(3.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"quarry_ingest_documents_total{collection="c",outcome="deleted"}"#
            ),
            Some(1.0)
        );

        // New queries under the same name are not compared with the runs of the old ones: this
        // set scores 0, far below 0.5, yet nothing comparable came before it.
        engine
            .put_golden("c", "g", &[golden("orchard", "a")])
            .unwrap();
        let (r, drift) = ok(engine.scheduled_eval(&policy).unwrap());
        assert_eq!(r.metrics["bm25"]["ndcg@10"].as_f64(), Some(0.0));
        assert!(drift.is_empty(), "{drift:?}");

        // A deleted set's series go at the next pass, with its collection's alert.
        engine.delete_golden("c", "g").unwrap();
        assert!(engine.scheduled_eval(&policy).unwrap().is_empty());
        let text = engine.telemetry().encode();
        assert_eq!(sample(&text, ndcg), None, "{text}");
        assert_eq!(sample(&text, alert), None, "{text}");
    }

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
