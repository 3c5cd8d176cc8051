//! `quarry eval history` and `quarry eval compare A B`: the stored evaluation runs of the data dir.
//!
//! The comparison itself is `quarry_index::eval::compare` (the HTTP API serves the same); here it
//! is rendered: the difference of every headline mean metric, the paired randomization test of
//! nDCG@10 and the queries whose nDCG@10 changed, worse first, each with both rankings side by
//! side.

use crate::cmd::{emit, open_existing_engine, print_json};
use crate::config::Config;
use anyhow::Context;
use quarry_index::eval::compare::TRIALS;
use quarry_index::eval::format::{fusion_text, time};
use quarry_index::eval::{Comparison, EvalRunSummary, compare};
use std::fmt::Write as _;
use std::path::Path;
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
    #[arg(long, value_parser = crate::cmd::collection_name)]
    pub collection: Option<String>,
    /// Only this mode in the latest comparison [default: every mode].
    #[arg(long)]
    pub mode: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Only the runs of this collection.
    #[arg(long, value_parser = crate::cmd::collection_name)]
    pub collection: Option<String>,
    /// Print the result as one JSON document on stdout instead of text.
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
    /// Print the result as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(data_dir: &Path, config: &Config, command: Command) -> anyhow::Result<()> {
    let engine = open_existing_engine(data_dir, config)?;
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
            let Some(report) = quarry_index::eval::report::latest(
                &engine,
                args.collection.as_deref(),
                args.mode.as_deref(),
            )?
            else {
                anyhow::bail!(
                    "no recorded runs to report; `quarry eval --dataset DIR` records one"
                );
            };
            crate::cmd::write_atomically(&args.out, report.html.as_bytes())?;
            emit(&format!(
                "wrote {} ({} runs{})\n",
                args.out.display(),
                report.runs,
                report
                    .compared
                    .map(|(a, b)| format!(", comparing {a} with {b}"))
                    .unwrap_or_default()
            ));
            Ok(())
        }
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
            .iter()
            .map(|(mode, m)| format!("{mode} {:.4}", m.ndcg10()))
            .collect();
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
