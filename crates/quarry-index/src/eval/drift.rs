//! Drift: scheduled evaluation of every golden set ([`Engine::scheduled_eval`]) and the check
//! of a run against the best recent comparable runs ([`Engine::drift`]) under a
//! [`DriftPolicy`].

use super::run::EvalRunSummary;
use crate::engine::Engine;
use crate::error::Result;
use quarry_core::Principal;
use std::collections::BTreeMap;

impl Engine {
    /// The modes of golden-set run `run` whose nDCG@10 is more than `policy.alert_drop` below the
    /// best of the `policy.window` comparable runs before it (by run number): same golden set
    /// with the same queries, fusion, depth, principal, reranking, query feedback and collection BM25
    /// settings (a run with other settings is an
    /// experiment, not a baseline).
    pub fn drift(&self, run: &EvalRunSummary, policy: &DriftPolicy) -> Result<Vec<Drift>> {
        // A key a run does not have (recorded before it existed) reads as null.
        let null = serde_json::Value::Null;
        let same = |a: &EvalRunSummary, key: &str| {
            a.config.get(key).unwrap_or(&null) == run.config.get(key).unwrap_or(&null)
        };
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
                    "rerank_top_n",
                    "feedback",
                    "bm25",
                ]
                .iter()
                .all(|k| same(r, k))
            })
            .collect();
        before.sort_by_key(|r| number(&r.id));
        let recent = before.len().saturating_sub(policy.window);
        let before = before.split_off(recent);
        let mut out = Vec::new();
        for mode in run.metrics.keys() {
            let Some(now) = run.ndcg10(mode) else {
                continue;
            };
            let best = before
                .iter()
                .filter_map(|r| Some((r, r.ndcg10(mode)?)))
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
                        .map(|(mode, r)| (mode.as_str(), r.ndcg10(), r.metrics.recall_100))
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
    use quarry_core::Mode;

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
        assert_eq!(r1.ndcg10("bm25"), Some(1.0));
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
        assert_eq!(r.ndcg10("bm25"), Some(0.0));
        assert!(drift.is_empty(), "{drift:?}");

        // A deleted set's series go at the next pass, with its collection's alert.
        engine.delete_golden("c", "g").unwrap();
        assert!(engine.scheduled_eval(&policy).unwrap().is_empty());
        let text = engine.telemetry().encode();
        assert_eq!(sample(&text, ndcg), None, "{text}");
        assert_eq!(sample(&text, alert), None, "{text}");
    }
}
