//! The eval gate of a re-index: every golden set of the collection runs on the active version and
//! on the new one (`vector` and `hybrid`, as an admin, recorded as eval runs); the new version
//! passes unless some mode of some set lost more than `reindex_max_ndcg_drop` nDCG@10, or it
//! answered from BM25 alone. The report ([`GateReport`]) is stored in the job's result.

use super::measure::Plan;
use crate::Engine;
use crate::catalog::{GateMode, GateReport, GateSet};
use crate::error::Result;
use crate::searcher::Searcher;
use quarry_core::{Mode, Principal};

/// Runs every golden set of `collection` on the active version and on the new one (`new` gives
/// its searcher, taken after the active one), `vector` and `hybrid`, as an admin; `passed` unless
/// some mode of some set lost more than `reindex_max_ndcg_drop` nDCG@10. `job_id` names the
/// runs' trigger.
pub(crate) fn run(
    engine: &Engine,
    collection: &str,
    job_id: &str,
    new: &dyn Fn() -> Result<Searcher>,
) -> Result<GateReport> {
    let sets = engine.golden_sets(Some(collection))?;
    let max_drop = engine.options().reindex_max_ndcg_drop;
    if sets.is_empty() {
        return Ok(GateReport {
            ran: false,
            passed: None,
            max_ndcg_drop: None,
            sets: None,
            note: Some("the collection has no golden set, so no eval gate ran".to_owned()),
        });
    }
    let active = engine.searcher(collection)?;
    let new = new()?;
    let admin = Principal::local_admin();
    let plan = Plan {
        modes: if active.embedding_version().is_some() {
            vec![Mode::Vector, Mode::Hybrid]
        } else {
            vec![Mode::Hybrid]
        },
        fusion: active.default_fusion(),
        top_k: 100,
        filter: None,
        rerank_top_n: None,
        feedback: None,
    };
    let mut new_plan = plan.clone();
    new_plan.modes = vec![Mode::Vector, Mode::Hybrid];
    let trigger = format!("reindex {job_id}");
    let mut passed = true;
    let mut out = Vec::new();
    for set in sets {
        let (a, _) = engine.evaluate_golden_on(&active, &set.name, &plan, &admin, &trigger)?;
        let (b, measured) =
            engine.evaluate_golden_on(&new, &set.name, &new_plan, &admin, &trigger)?;
        // Answers the new version gave from BM25 alone (its provider failed) measure nothing
        // of it: the gate does not pass on them.
        let degraded: usize = measured.reports.values().map(|r| r.degraded).sum();
        if degraded > 0 {
            passed = false;
        }
        let mut modes = std::collections::BTreeMap::new();
        for mode in ["vector", "hybrid"] {
            let (Some(new_v), old_v) = (ndcg_of(&b, mode), ndcg_of(&a, mode)) else {
                continue;
            };
            // A collection without vectors before (BM25 only) compares with its hybrid answer.
            let Some(old_v) = old_v.or_else(|| ndcg_of(&a, "hybrid")) else {
                continue;
            };
            let ok = new_v >= old_v - max_drop;
            passed &= ok;
            modes.insert(
                mode.to_owned(),
                GateMode {
                    active: old_v,
                    new: new_v,
                    ok,
                },
            );
        }
        if modes.is_empty() {
            passed = false;
        }
        out.push(GateSet {
            compare: format!("quarry eval compare {} {}", a.id, b.id),
            golden: set.name,
            active_run: a.id,
            new_run: b.id,
            ndcg_at_10: modes,
            degraded_answers: degraded as u64,
        });
    }
    Ok(GateReport {
        ran: true,
        passed: Some(passed),
        max_ndcg_drop: Some(max_drop),
        sets: Some(out),
        note: None,
    })
}

fn ndcg_of(run: &super::run::EvalRunSummary, mode: &str) -> Option<f64> {
    run.ndcg10(mode)
}
