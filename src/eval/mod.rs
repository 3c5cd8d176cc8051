//! `quarry eval --dataset DIR`: retrieval quality on a BEIR-layout dataset (`corpus.jsonl`,
//! `queries.jsonl`, `qrels/<split>.tsv`). Without `--server` the corpus is ingested into a
//! collection of the data dir (unchanged documents are skipped, so reruns are cheap) and queried in
//! process; with `--server` the queries go over HTTP to a collection the server already holds.
//! Documents are ranked with `group_by=document`; metrics follow trec_eval (quarry_core::metrics).
//! An in-process run is recorded in the data dir's catalog with its per-query results;
//! `quarry eval history` lists the runs and `quarry eval compare A B` compares two ([`runs`]).
//! Several datasets (`--dataset A --dataset B`, or `--dataset A,B`) are evaluated one after the
//! other, each in its own collection, and reported as one table with the mean over them
//! ([`table`]): a default is chosen on more than one collection.

mod export;
mod runs;
mod table;

use table::Outcome;

use crate::cmd::open_engine;
use crate::cmd::query::{FusionArgs, parse_feedback, parse_filter, remote};
use crate::cmd::remote::Remote;
use crate::config::Config;
use quarry_core::{Mode, Principal};
use quarry_index::eval::{Case, Plan, measure, read_beir_cases, trec_lines};
use quarry_index::{IngestOptions, NoProgress};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<runs::Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `quarry eval --dataset DIR ...`: one evaluation run.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// BEIR-layout dataset folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv); repeat it
    /// or give a comma-separated list to evaluate several and print one table with their mean.
    #[arg(long, value_delimiter = ',')]
    pub dataset: Vec<PathBuf>,
    /// Which qrels file to judge with: qrels/<split>.tsv.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Comma-separated modes to evaluate.
    #[arg(long, value_delimiter = ',', default_value = "bm25,vector,hybrid")]
    pub modes: Vec<Mode>,
    #[command(flatten)]
    pub fusion: FusionArgs,
    /// BM25 query expansion by pseudo-relevance feedback for every query: on, off, or
    /// FB_DOCS,FB_TERMS,ORIG_WEIGHT (e.g. 10,10,0.5) [default: the collection's setting].
    #[arg(long, value_name = "on|off|D,T,W", value_parser = parse_feedback)]
    pub feedback: Option<quarry_core::FeedbackSwitch>,
    /// Collection to evaluate [default: beir-<dataset folder name>, ingested from corpus.jsonl;
    /// with --golden: default].
    #[arg(long, value_parser = crate::cmd::collection_name)]
    pub collection: Option<String>,
    /// Evaluate the collection as it is with its golden set NAME (`quarry golden add`), instead
    /// of a dataset.
    #[arg(long, value_name = "NAME", conflicts_with = "dataset")]
    pub golden: Option<String>,
    /// Run as this user (a reader) instead of the local admin: the ACLs of the collection apply.
    #[arg(long, value_name = "ID", conflicts_with = "server")]
    pub user: Option<String>,
    /// A group of --user (repeatable).
    #[arg(long = "group", value_name = "GROUP", requires = "user")]
    pub groups: Vec<String>,
    /// Query a running server (http://HOST:PORT) instead of the data dir (the collection must
    /// hold the corpus).
    #[arg(long, value_name = "URL", value_parser = crate::cmd::remote::parse_server_url)]
    pub server: Option<String>,
    /// API key or JWT for --server (sent as `Authorization: Bearer`): the eval sees what this
    /// caller may read.
    #[arg(long, env = "QUARRY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Documents retrieved per query, 1 to 1000.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub top_k: u64,
    /// A metadata filter every query carries, as JSON (docs/query.md), e.g.
    /// '{"field": "year", "gte": 2020}'.
    #[arg(long, value_name = "JSON", value_parser = parse_filter)]
    pub filter: Option<serde_json::Value>,
    /// Rerank each query's first N documents with the configured reranker ([reranker] in
    /// quarry.toml); compare with a run without it by `quarry eval compare`.
    #[arg(long, value_name = "N")]
    pub rerank_top_n: Option<usize>,
    /// Also write one TREC run file per mode, DIR/<mode>.trec.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the result as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `beir-<folder>`, with the folder name cut to what a collection name allows (letters, digits,
/// `_`, `-`; other characters become `-`, leading and trailing ones are dropped).
fn default_collection(folder: &str) -> String {
    let mut name: String = folder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').chars().take(59).collect();
    if name.is_empty() {
        name = "dataset".into();
    }
    format!("beir-{name}")
}

pub(crate) fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(command) => runs::run(data_dir, config, command),
        None => run_dataset(data_dir, config, args.run),
    }
}

fn run_dataset(data_dir: &Path, config: &Config, args: RunArgs) -> anyhow::Result<()> {
    if args.server.is_none() {
        // before a corpus is ingested: in process, the reranker is this configuration's
        crate::cmd::check_rerank(config, args.rerank_top_n)?;
    }
    if let Some(golden) = &args.golden {
        if args.server.is_some() {
            return Err(crate::cmd::UsageError(
                "--golden evaluates a collection of this data dir; drop --server".into(),
            )
            .into());
        }
        let collection = args.collection.clone().unwrap_or_else(|| "default".into());
        let engine = crate::cmd::open_existing_engine(data_dir, config)?;
        let cases = engine.golden_cases(&collection, golden)?;
        let source = serde_json::json!({"source": "golden", "golden": golden});
        return evaluate(config, &args, Some(engine), &collection, &cases, source)?
            .print(args.json);
    }
    match args.dataset.as_slice() {
        [] => Err(crate::cmd::UsageError(
            "quarry eval needs --dataset DIR (a BEIR-layout folder) or --golden NAME, or a subcommand: history, compare"
                .into(),
        )
        .into()),
        [one] => run_one(data_dir, config, &args, one, args.out.clone())?.print(args.json),
        many => {
            if args.collection.is_some() {
                return Err(crate::cmd::UsageError(
                    "--collection names one collection; with several datasets each goes to its own (beir-<folder>)"
                        .into(),
                )
                .into());
            }
            let mut outcomes = Vec::new();
            for dir in many {
                let out = args.out.as_ref().map(|o| o.join(folder_name(dir)));
                outcomes.push(run_one(data_dir, config, &args, dir, out)?);
            }
            table::print(&outcomes, &args.split, args.json)
        }
    }
}

/// The folder name of a dataset (`dataset` for a path without one).
fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into())
}

/// One dataset: its corpus ingested into its collection (unless `--server`), its cases run, TREC
/// files written to `out`.
fn run_one(
    data_dir: &Path,
    config: &Config,
    args: &RunArgs,
    dataset_dir: &Path,
    out: Option<PathBuf>,
) -> anyhow::Result<Outcome> {
    let dataset_dir = dataset_dir.to_path_buf();
    let cases = read_beir_cases(&dataset_dir, &args.split)?;
    let name = folder_name(&dataset_dir);
    let collection = args
        .collection
        .clone()
        .unwrap_or_else(|| default_collection(&name));

    let engine = match &args.server {
        Some(_) => None,
        None => {
            let engine = open_engine(data_dir, config)?;
            let opts = IngestOptions {
                collection: collection.clone(),
                max_file_bytes: config.ingest.max_file_bytes,
                batch_docs: config.ingest.batch_docs,
                ..IngestOptions::default()
            };
            eprintln!(
                "ingesting {} into collection {collection} (embedding new chunks; the first run on a corpus takes a while)",
                dataset_dir.join("corpus.jsonl").display()
            );
            let s = quarry_index::ingest(
                &engine,
                &[dataset_dir.join("corpus.jsonl")],
                &opts,
                &NoProgress,
            )?;
            eprintln!(
                "corpus: {} added, {} unchanged, {} skipped, {} chunks embedded, {} cache hits ({:.1}s)",
                s.added,
                s.unchanged,
                s.skipped.values().sum::<u64>(),
                s.embedded,
                s.cache_hits,
                s.seconds
            );
            Some(engine)
        }
    };
    let source =
        serde_json::json!({"source": "dataset", "dataset": dataset_dir, "split": args.split});
    let args = RunArgs {
        out,
        ..args.clone()
    };
    let mut outcome = evaluate(config, &args, engine, &collection, &cases, source)?;
    outcome.name = name;
    Ok(outcome)
}

/// Runs every case per mode against `collection` (in process with `engine`,
/// where the run is recorded with `source` in its configuration; else on `--server`), writes the
/// TREC files of `--out` and makes the report.
fn evaluate(
    config: &Config,
    args: &RunArgs,
    engine: Option<quarry_index::Engine>,
    collection: &str,
    cases: &[Case],
    source: serde_json::Value,
) -> anyhow::Result<Outcome> {
    let collection = collection.to_owned();
    let caller = match &args.user {
        Some(user) => Principal::checked(user, args.groups.clone(), quarry_core::Role::Reader)
            .map_err(|b| {
                crate::cmd::UsageError(format!("--{} {:?}: {}", b.field, b.id, b.acl_error()))
            })?,
        None => Principal::local_admin(),
    };
    let fusion = args.fusion.resolve(config.query.fusion);
    let plan = Plan {
        modes: args.modes.clone(),
        fusion,
        top_k: args.top_k as usize,
        filter: args.filter.clone(),
        rerank_top_n: args.rerank_top_n,
        feedback: args.feedback,
    };
    let (run_id, measured) = match (&engine, &args.server) {
        (Some(engine), _) => match &args.golden {
            Some(golden) => {
                let (run, m) =
                    engine.evaluate_golden(&collection, golden, &plan, &caller, "cli")?;
                (Some(run.id), m)
            }
            None => {
                let (id, m) =
                    engine.evaluate(&collection, cases, &plan, &caller, source.clone())?;
                (Some(id), m)
            }
        },
        (None, Some(url)) => {
            let server = Remote::new(url, args.token.clone());
            let m = measure(cases, &plan, &mut |q| {
                remote(&server, &collection, &q.into())
            })?;
            (None, m)
        }
        (None, None) => unreachable!("either an engine or a server"),
    };
    for (mode, r) in &measured.reports {
        if r.degraded > 0 {
            eprintln!(
                "warning: {} {mode} queries were answered degraded (BM25 only, or not reranked; the query's warnings say which)",
                r.degraded
            );
        }
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)?;
        for (mode, queries) in &measured.queries {
            let mut lines = trec_lines(queries, &format!("quarry-{mode}"));
            lines.push(String::new());
            crate::cmd::write_atomically(
                &dir.join(format!("{mode}.trec")),
                lines.join("\n").as_bytes(),
            )?;
        }
    }
    let reports = &measured.reports;
    let mut report = serde_json::json!({
        "run_id": run_id, "collection": collection, "queries": cases.len(),
        "fusion": fusion, "rerank_top_n": args.rerank_top_n, "feedback": args.feedback,
        "modes": reports,
    });
    if let (Some(r), Some(src)) = (report.as_object_mut(), source.as_object()) {
        r.extend(src.clone());
        r.remove("source");
    }
    let mut o = String::new();
    let what = match (source["dataset"].as_str(), source["golden"].as_str()) {
        (Some(d), _) => format!("{d} ({}, ", args.split),
        (None, Some(g)) => format!("golden set {g} ("),
        _ => "(".to_owned(),
    };
    let _ = writeln!(
        o,
        "{what}{} queries, collection {collection}){}",
        cases.len(),
        run_id
            .as_deref()
            .map(|id| format!(", recorded as run {id}"))
            .unwrap_or_default()
    );
    for (mode, r) in reports {
        let _ = write!(
            o,
            "  {mode:<7} nDCG@10 {:.4}  Recall@100 {:.4}  MRR@10 {:.4}  latency p50 {:.2} ms  p99 {:.2} ms",
            r.metrics.ndcg_10,
            r.metrics.recall_100,
            r.metrics.mrr_10,
            r.latency_ms.p50,
            r.latency_ms.p99
        );
        if mode != "bm25"
            && let Some(retrieval) = &r.retrieval_ms
        {
            let _ = write!(
                o,
                " (without embedding the query: p50 {:.2} ms  p99 {:.2} ms)",
                retrieval.p50, retrieval.p99
            );
        }
        let _ = writeln!(o);
    }
    Ok(Outcome {
        name: source["golden"].as_str().unwrap_or_default().to_owned(),
        queries: cases.len(),
        reports: reports.clone(),
        report,
        text: o,
    })
}

#[cfg(test)]
mod tests {
    use super::default_collection;

    #[test]
    fn dataset_folders_make_valid_collection_names() {
        assert_eq!(default_collection("scifact"), "beir-scifact");
        assert_eq!(default_collection(".tmpAb12"), "beir-tmpAb12");
        assert_eq!(default_collection("my data.v2"), "beir-my-data-v2");
        assert_eq!(default_collection("..."), "beir-dataset");
        let long = "x".repeat(100);
        assert!(quarry_index::catalog::check_collection_name(&default_collection(&long)).is_ok());
    }
}
