//! `quarry eval history` and `quarry eval compare A B`: the stored evaluation runs of the data dir.
//!
//! A comparison takes the queries both runs measured, per mode both ran: the difference of every
//! mean metric, a paired randomization test of nDCG@10 (two-sided, 10,000 sign flips, fixed seed)
//! and the queries whose nDCG@10 changed, worse first, each with both rankings side by side.

use crate::cmd::{emit, open_engine, print_json};
use crate::config::Config;
use anyhow::Context;
use quarry_core::metrics::randomization_p_value;
use quarry_index::catalog::{EvalRun, EvalRunSummary};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Sign flips of the randomization test.
const TRIALS: usize = 10_000;
/// Metrics shown in the history and the comparison (every metric is stored).
const HEADLINE: [&str; 5] = ["ndcg@10", "recall@100", "mrr@10", "map@100", "p@10"];
/// Ranks shown side by side for a changed query.
const SHOWN: usize = 5;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the recorded evaluation runs, oldest first.
    History(HistoryArgs),
    /// Compare two recorded runs: metric deltas, a paired randomization test of nDCG@10, and the
    /// queries that got worse and better with both rankings.
    Compare(CompareArgs),
    /// Write an HTML report (self-contained: inline CSS and SVG, no script): metric trends over
    /// the runs, the latest comparison's per-query changes, and tables.
    Report(ReportArgs),
    /// Write a recorded run for other tools: a TREC run file (one mode) or Parquet (one row per
    /// mode and query, with the rankings and per-query metrics).
    Export(super::export::ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The HTML file to write.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Only the runs of this collection.
    #[arg(long)]
    pub collection: Option<String>,
    /// Only this mode in the latest comparison [default: every mode].
    #[arg(long)]
    pub mode: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Only the runs of this collection.
    #[arg(long)]
    pub collection: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline run id (see `quarry eval history`).
    pub a: String,
    /// The run compared with it.
    pub b: String,
    /// Only this mode [default: every mode both runs measured].
    #[arg(long)]
    pub mode: Option<String>,
    /// Changed queries listed per direction, the largest changes first.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

pub fn run(data_dir: &Path, config: &Config, command: Command) -> anyhow::Result<()> {
    let engine = open_engine(data_dir, config)?;
    match command {
        Command::History(args) => {
            let runs = engine.eval_runs(args.collection.as_deref())?;
            if args.json {
                return print_json(&serde_json::json!({ "runs": runs }));
            }
            emit(&history_table(&runs));
            Ok(())
        }
        Command::Compare(args) => {
            let a = engine
                .eval_run(&args.a)
                .with_context(|| "see `quarry eval history` for run ids")?;
            let b = engine
                .eval_run(&args.b)
                .with_context(|| "see `quarry eval history` for run ids")?;
            let cmp = compare(&a, &b, args.mode.as_deref())?;
            if args.json {
                return print_json(&cmp);
            }
            emit(&comparison_text(&cmp, args.limit));
            Ok(())
        }
        Command::Export(args) => {
            let run = engine
                .eval_run(&args.run)
                .with_context(|| "see `quarry eval history` for run ids")?;
            let done = super::export::export(&run, &args)?;
            if args.json {
                return print_json(&done);
            }
            emit(&format!(
                "wrote {} ({}, run {}, {} {}, modes {})\n",
                done.out.display(),
                done.format,
                done.run,
                done.rows,
                if done.format == "trec" {
                    "lines"
                } else {
                    "rows"
                },
                done.modes.join(", ")
            ));
            Ok(())
        }
        Command::Report(args) => {
            let runs = engine.eval_runs(args.collection.as_deref())?;
            if runs.is_empty() {
                anyhow::bail!(
                    "no recorded runs to report; `quarry eval --dataset DIR` records one"
                );
            }
            // the latest comparison: the last two runs of the newest run's collection
            let newest = &runs[runs.len() - 1];
            let same: Vec<&EvalRunSummary> = runs
                .iter()
                .filter(|r| r.collection == newest.collection)
                .collect();
            let pair = match same.as_slice() {
                [.., a, b] => Some((engine.eval_run(&a.id)?, engine.eval_run(&b.id)?)),
                _ => None,
            };
            let html = super::report::render(
                &runs,
                pair.as_ref().map(|(a, b)| (a, b)),
                args.mode.as_deref(),
            )?;
            crate::cmd::write_atomically(&args.out, html.as_bytes())?;
            emit(&format!(
                "wrote {} ({} runs{})\n",
                args.out.display(),
                runs.len(),
                pair.as_ref()
                    .map(|(a, b)| format!(", comparing {} with {}", a.summary.id, b.summary.id))
                    .unwrap_or_default()
            ));
            Ok(())
        }
    }
}

pub(super) fn time(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime_utc(t)
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
fn humantime_utc(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (year, month, day, hour, minute, second) = quarry_core::time::utc(secs);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
}

pub(super) fn fusion_text(fusion: &Value) -> String {
    // parameters are f32 in quarry and f64 in JSON: show them rounded (0.6, not 0.6000000238)
    let num = |v: &Value| {
        v.as_f64()
            .map_or("-".into(), |x| format!("{}", (x * 1e4).round() / 1e4))
    };
    match fusion["method"].as_str() {
        Some("rrf") => format!("rrf k={}", num(&fusion["k"])),
        Some("weighted") => format!("weighted alpha={}", num(&fusion["alpha"])),
        _ => "-".into(),
    }
}

fn history_table(runs: &[EvalRunSummary]) -> String {
    let mut o = String::new();
    if runs.is_empty() {
        let _ = writeln!(
            o,
            "no recorded runs; `quarry eval --dataset DIR` records one"
        );
        return o;
    }
    let _ = writeln!(
        o,
        "{:<6} {:<19} {:<16} {:<22} {:<20} {:<22} nDCG@10 by mode",
        "run", "time (UTC)", "collection", "dataset:split", "fusion", "embedding version"
    );
    for r in runs {
        let dataset = Path::new(r.config["dataset"].as_str().unwrap_or("-"))
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "-".into());
        let modes: Vec<String> = r
            .metrics
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(mode, v)| format!("{mode} {:.4}", v["ndcg@10"].as_f64().unwrap_or(0.0)))
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "{:<6} {:<19} {:<16} {:<22} {:<20} {:<22} {}",
            r.id,
            time(r.created_at),
            r.collection,
            format!("{dataset}:{}", r.config["split"].as_str().unwrap_or("-")),
            fusion_text(&r.config["fusion"]),
            r.config["embedding_version"].as_str().unwrap_or("-"),
            modes.join("  ")
        );
    }
    o
}

/// One query whose nDCG@10 changed between the runs.
#[derive(Debug, serde::Serialize)]
pub struct ChangedQuery {
    pub query: String,
    pub a: f64,
    pub b: f64,
    pub delta: f64,
    pub ranked_a: Vec<String>,
    pub ranked_b: Vec<String>,
    pub relevant: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct ModeComparison {
    /// Queries both runs measured.
    pub queries: usize,
    /// Mean of each headline metric in A and B, and B − A.
    pub metrics: BTreeMap<String, [f64; 3]>,
    /// Two-sided paired randomization test of the per-query nDCG@10.
    pub p_value: f64,
    pub worse: Vec<ChangedQuery>,
    pub better: Vec<ChangedQuery>,
}

#[derive(Debug, serde::Serialize)]
pub struct Comparison {
    pub a: EvalRunSummary,
    pub b: EvalRunSummary,
    pub modes: BTreeMap<String, ModeComparison>,
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Compares run `b` with the baseline `a`, per mode both measured (or `only`).
pub fn compare(a: &EvalRun, b: &EvalRun, only: Option<&str>) -> anyhow::Result<Comparison> {
    let modes_a = a.queries.as_object().cloned().unwrap_or_default();
    let modes_b = b.queries.as_object().cloned().unwrap_or_default();
    let mut modes = BTreeMap::new();
    for (mode, qa) in &modes_a {
        if only.is_some_and(|m| m != mode) {
            continue;
        }
        let Some(qb) = modes_b.get(mode) else {
            continue;
        };
        let (Some(qa), Some(qb)) = (qa.as_object(), qb.as_object()) else {
            continue;
        };
        // the queries both runs measured, in id order
        let common: Vec<&String> = qa.keys().filter(|q| qb.contains_key(*q)).collect();
        let metric = |q: &Value, name: &str| q["metrics"][name].as_f64().unwrap_or(0.0);
        let mut metrics = BTreeMap::new();
        for name in HEADLINE {
            let n = common.len().max(1) as f64;
            let ma = common.iter().map(|q| metric(&qa[*q], name)).sum::<f64>() / n;
            let mb = common.iter().map(|q| metric(&qb[*q], name)).sum::<f64>() / n;
            metrics.insert(name.to_owned(), [ma, mb, mb - ma]);
        }
        let na: Vec<f64> = common.iter().map(|q| metric(&qa[*q], "ndcg@10")).collect();
        let nb: Vec<f64> = common.iter().map(|q| metric(&qb[*q], "ndcg@10")).collect();
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
                ranked_a: ids(&qa[*q]["ranked"]),
                ranked_b: ids(&qb[*q]["ranked"]),
                relevant: ids(&qa[*q]["relevant"]),
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
        anyhow::bail!(
            "runs {} and {} have no mode in common{}",
            a.summary.id,
            b.summary.id,
            only.map(|m| format!(" named {m}")).unwrap_or_default()
        );
    }
    Ok(Comparison {
        a: a.summary.clone(),
        b: b.summary.clone(),
        modes,
    })
}

fn comparison_text(c: &Comparison, limit: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "A = run {} ({}, {}, {})\nB = run {} ({}, {}, {})",
        c.a.id,
        c.a.collection,
        fusion_text(&c.a.config["fusion"]),
        time(c.a.created_at),
        c.b.id,
        c.b.collection,
        fusion_text(&c.b.config["fusion"]),
        time(c.b.created_at),
    );
    for (mode, m) in &c.modes {
        let _ = writeln!(o, "\n{mode} ({} queries in both runs)", m.queries);
        for (name, [a, b, d]) in &m.metrics {
            let _ = writeln!(o, "  {name:<11} A {a:.4}  B {b:.4}  B−A {d:+.4}");
        }
        let _ = writeln!(
            o,
            "  nDCG@10 paired randomization test: p = {:.4} ({TRIALS} sign flips); {} queries worse, {} better, {} unchanged",
            m.p_value,
            m.worse.len(),
            m.better.len(),
            m.queries - m.worse.len() - m.better.len()
        );
        for (title, list) in [("worse in B", &m.worse), ("better in B", &m.better)] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(
                o,
                "  {title} (nDCG@10 A → B; top {SHOWN} of each, * relevant):"
            );
            for q in list.iter().take(limit) {
                let _ = writeln!(
                    o,
                    "    query {}: {:.4} → {:.4} ({:+.4})",
                    q.query, q.a, q.b, q.delta
                );
                for i in 0..SHOWN.min(q.ranked_a.len().max(q.ranked_b.len())) {
                    let cell = |list: &[String]| {
                        list.get(i).map_or(String::new(), |d| {
                            let mark = if q.relevant.contains(d) { "*" } else { " " };
                            format!("{mark}{d}")
                        })
                    };
                    let _ = writeln!(
                        o,
                        "      {:>2}. {:<28} {}",
                        i + 1,
                        cell(&q.ranked_a),
                        cell(&q.ranked_b)
                    );
                }
            }
            if list.len() > limit {
                let _ = writeln!(o, "    … {} more (--limit, or --json)", list.len() - limit);
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_parameters_are_shown_rounded() {
        let w = serde_json::json!({"method": "weighted", "alpha": 0.6000000238418579});
        assert_eq!(fusion_text(&w), "weighted alpha=0.6");
        let r = serde_json::json!({"method": "rrf", "k": 60.0});
        assert_eq!(fusion_text(&r), "rrf k=60");
    }

    #[test]
    fn utc_times_are_civil_dates() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(time(1_795_701_845), "2026-11-26 14:04:05");
    }
}
