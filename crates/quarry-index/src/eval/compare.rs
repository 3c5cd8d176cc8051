//! Comparing two recorded runs ([`compare`]): per mode both measured, over the queries both
//! measured, the difference of the headline mean metrics, a two-sided paired randomization test
//! of the per-query nDCG@10 (10,000 sign flips, fixed seed, so a comparison always gives the
//! same p-value) and the queries whose nDCG@10 changed, worst first, with both rankings. The CLI
//! (`quarry eval compare`) renders it; the HTTP API serves it as JSON.

use super::run::{EvalRun, EvalRunSummary};
use crate::error::{Error, Result};
use quarry_core::metrics::randomization_p_value;
use std::collections::BTreeMap;

/// Sign flips of the randomization test.
pub const TRIALS: usize = 10_000;
/// Metrics compared (every metric is stored).
pub const HEADLINE: [&str; 5] = ["ndcg@10", "recall@100", "mrr@10", "map@100", "p@10"];

/// One query whose nDCG@10 changed between the runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ChangedQuery {
    pub query: String,
    pub a: f64,
    pub b: f64,
    pub delta: f64,
    pub ranked_a: Vec<String>,
    pub ranked_b: Vec<String>,
    pub relevant: Vec<String>,
}

/// The comparison of one mode.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ModeComparison {
    /// Queries both runs measured.
    pub queries: usize,
    /// Mean of each headline metric in A and B, and B − A.
    pub metrics: BTreeMap<String, [f64; 3]>,
    /// Two-sided paired randomization test of the per-query nDCG@10.
    pub p_value: f64,
    /// Queries worse in B, the largest drop first.
    pub worse: Vec<ChangedQuery>,
    /// Queries better in B, the largest gain first.
    pub better: Vec<ChangedQuery>,
}

/// Run `b` compared with the baseline `a`, per mode.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Comparison {
    pub a: EvalRunSummary,
    pub b: EvalRunSummary,
    pub modes: BTreeMap<String, ModeComparison>,
}

/// Compares run `b` with the baseline `a`, per mode both measured (or `only`). Runs without a
/// mode in common (or without `only`) are an input error.
pub fn compare(a: &EvalRun, b: &EvalRun, only: Option<&str>) -> Result<Comparison> {
    let mut modes = BTreeMap::new();
    for (mode, qa) in &a.queries {
        if only.is_some_and(|m| m != mode) {
            continue;
        }
        let Some(qb) = b.queries.get(mode) else {
            continue;
        };
        // the queries both runs measured, in id order
        let common: Vec<&String> = qa.keys().filter(|q| qb.contains_key(*q)).collect();
        let mut metrics = BTreeMap::new();
        for name in HEADLINE {
            let n = common.len().max(1) as f64;
            let metric = |q: &super::run::QueryResult| q.metrics.get(name).unwrap_or(0.0);
            let ma = common.iter().map(|q| metric(&qa[*q])).sum::<f64>() / n;
            let mb = common.iter().map(|q| metric(&qb[*q])).sum::<f64>() / n;
            metrics.insert(name.to_owned(), [ma, mb, mb - ma]);
        }
        let na: Vec<f64> = common.iter().map(|q| qa[*q].metrics.ndcg_10).collect();
        let nb: Vec<f64> = common.iter().map(|q| qb[*q].metrics.ndcg_10).collect();
        let p_value = randomization_p_value(&na, &nb, TRIALS, 0);
        let (mut worse, mut better) = (Vec::new(), Vec::new());
        for (i, q) in common.iter().enumerate() {
            let delta = nb[i] - na[i];
            if delta.abs() <= 1e-12 {
                continue;
            }
            let changed = ChangedQuery {
                query: (*q).clone(),
                a: na[i],
                b: nb[i],
                delta,
                ranked_a: qa[*q].ranked.clone(),
                ranked_b: qb[*q].ranked.clone(),
                relevant: qa[*q].relevant.clone(),
            };
            if delta < 0.0 {
                worse.push(changed);
            } else {
                better.push(changed);
            }
        }
        worse.sort_by(|x, y| x.delta.total_cmp(&y.delta));
        better.sort_by(|x, y| y.delta.total_cmp(&x.delta));
        modes.insert(
            mode.clone(),
            ModeComparison {
                queries: common.len(),
                metrics,
                p_value,
                worse,
                better,
            },
        );
    }
    if modes.is_empty() {
        return Err(Error::Input(format!(
            "runs {} and {} have no mode in common{}",
            a.summary.id,
            b.summary.id,
            only.map(|m| format!(" named {m}")).unwrap_or_default()
        )));
    }
    Ok(Comparison {
        a: a.summary.clone(),
        b: b.summary.clone(),
        modes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::run::QueryResult;
    use quarry_core::metrics::Metrics;

    fn run(id: &str, ndcg: &[(&str, f64)]) -> EvalRun {
        let queries = ndcg
            .iter()
            .map(|(q, x)| {
                let result = QueryResult {
                    metrics: Metrics {
                        ndcg_10: *x,
                        ..Default::default()
                    },
                    ranked: vec![format!("{q}-doc")],
                    relevant: vec!["r".into()],
                    scores: None,
                };
                (q.to_string(), result)
            })
            .collect();
        EvalRun {
            summary: EvalRunSummary {
                id: id.into(),
                collection: "c".into(),
                created_at: 0,
                config: serde_json::json!({}),
                metrics: BTreeMap::new(),
            },
            queries: [("bm25".to_owned(), queries)].into(),
        }
    }

    #[test]
    fn changed_queries_worst_first_over_the_queries_both_measured() {
        let a = run(
            "r1",
            &[("q1", 1.0), ("q2", 0.5), ("q3", 0.2), ("only-a", 1.0)],
        );
        let b = run(
            "r2",
            &[("q1", 0.25), ("q2", 0.5), ("q3", 0.7), ("only-b", 0.0)],
        );
        let c = compare(&a, &b, None).unwrap();
        let m = &c.modes["bm25"];
        assert_eq!(m.queries, 3);
        let [ma, mb, d] = m.metrics["ndcg@10"];
        assert!((ma - 1.7 / 3.0).abs() < 1e-12 && (mb - 1.45 / 3.0).abs() < 1e-12);
        assert!((d - (mb - ma)).abs() < 1e-15);
        assert_eq!(m.worse.len(), 1);
        assert_eq!((m.worse[0].query.as_str(), m.worse[0].delta), ("q1", -0.75));
        assert_eq!(m.worse[0].ranked_b, ["q1-doc"]);
        assert_eq!(m.better[0].query, "q3");
        assert!(m.p_value > 0.0 && m.p_value <= 1.0);
        // the same comparison, the same p-value
        assert_eq!(compare(&a, &b, None).unwrap(), c);
        let e = compare(&a, &b, Some("hybrid")).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        assert!(
            e.to_string().contains("no mode in common named hybrid"),
            "{e}"
        );
    }
}
