//! Several datasets evaluated in one `quarry eval`: one row per dataset and mode, then the mean
//! over the datasets per mode (each dataset counts once, whatever its number of queries: a
//! default is chosen by this mean, so a large collection does not outvote a small one).
//! `--json` gives `{"datasets": [each report], "mean": {mode: {"ndcg@10", "recall@100",
//! "mrr@10", "datasets"}}}`.

use crate::cmd::{emit, print_json};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What one evaluation gives: its JSON report and its text, and its figures for a table.
pub(crate) struct Outcome {
    /// The dataset's folder name (or the golden set's).
    pub name: String,
    pub queries: usize,
    pub reports: quarry_index::eval::RunMetrics,
    pub report: serde_json::Value,
    pub text: String,
}

impl Outcome {
    /// Prints the report: its JSON with `json`, else its text.
    pub(super) fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            return print_json(&self.report);
        }
        emit(&self.text);
        Ok(())
    }
}

/// Per mode, the mean nDCG@10, Recall@100 and MRR@10 over the outcomes that measured it, and how
/// many did.
pub(super) fn means(outcomes: &[Outcome]) -> BTreeMap<String, ([f64; 3], usize)> {
    let mut sums: BTreeMap<String, ([f64; 3], usize)> = BTreeMap::new();
    for o in outcomes {
        for (mode, r) in &o.reports {
            let e = sums.entry(mode.clone()).or_default();
            e.0[0] += r.metrics.ndcg_10;
            e.0[1] += r.metrics.recall_100;
            e.0[2] += r.metrics.mrr_10;
            e.1 += 1;
        }
    }
    for (sum, n) in sums.values_mut() {
        for x in sum.iter_mut() {
            *x /= *n as f64;
        }
    }
    sums
}

/// The table of `outcomes` (or their JSON with `--json`).
pub(super) fn print(outcomes: &[Outcome], split: &str, json: bool) -> anyhow::Result<()> {
    let means = means(outcomes);
    if json {
        let mean: serde_json::Map<String, serde_json::Value> = means
            .iter()
            .map(|(mode, ([ndcg, recall, mrr], n))| {
                let v = serde_json::json!({
                    "ndcg@10": ndcg, "recall@100": recall, "mrr@10": mrr, "datasets": n,
                });
                (mode.clone(), v)
            })
            .collect();
        let reports: Vec<&serde_json::Value> = outcomes.iter().map(|o| &o.report).collect();
        return print_json(&serde_json::json!({
            "split": split, "datasets": reports, "mean": mean,
        }));
    }
    emit(&render(outcomes, &means, split));
    Ok(())
}

fn render(
    outcomes: &[Outcome],
    means: &BTreeMap<String, ([f64; 3], usize)>,
    split: &str,
) -> String {
    let width = outcomes
        .iter()
        .map(|o| o.name.len())
        .max()
        .unwrap_or(0)
        .max("mean".len());
    let mut t = String::new();
    let _ = writeln!(t, "{} datasets, split {split}", outcomes.len());
    let _ = writeln!(
        t,
        "{:<width$}  {:>7}  {:<7} {:>8} {:>10} {:>7}",
        "dataset", "queries", "mode", "nDCG@10", "Recall@100", "MRR@10"
    );
    for o in outcomes {
        for (mode, r) in &o.reports {
            let _ = writeln!(
                t,
                "{:<width$}  {:>7}  {mode:<7} {:>8.4} {:>10.4} {:>7.4}",
                o.name, o.queries, r.metrics.ndcg_10, r.metrics.recall_100, r.metrics.mrr_10
            );
        }
    }
    for (mode, ([ndcg, recall, mrr], n)) in means {
        let _ = writeln!(
            t,
            "{:<width$}  {:>7}  {mode:<7} {ndcg:>8.4} {recall:>10.4} {mrr:>7.4}",
            "mean",
            format!("{n} sets"),
        );
    }
    t
}
