//! `quarry eval --dataset DIR`: retrieval quality on a BEIR-layout dataset (`corpus.jsonl`,
//! `queries.jsonl`, `qrels/<split>.tsv`). Without `--server` the corpus is ingested into a
//! collection of the data dir (unchanged documents are skipped, so reruns are cheap) and queried in
//! process; with `--server` the queries go over HTTP to a collection the server already holds.
//! Documents are ranked with `group_by=document`; metrics follow trec_eval (quarry_core::metrics).

use crate::cmd::query::{FusionArgs, remote};
use crate::cmd::remote::Remote;
use crate::cmd::{emit, open_engine, print_json};
use crate::config::Config;
use anyhow::{Context, bail};
use quarry_core::metrics::{Judgments, mrr_at_k, ndcg_at_k, recall_at_k};
use quarry_core::{GroupBy, Mode, Principal, QueryOptions};
use quarry_index::{IngestOptions, NoProgress};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// BEIR-layout dataset folder.
    #[arg(long)]
    pub dataset: PathBuf,
    /// Which qrels file to judge with: qrels/<split>.tsv.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Comma-separated modes to evaluate.
    #[arg(long, value_delimiter = ',', default_value = "bm25,vector,hybrid")]
    pub modes: Vec<Mode>,
    #[command(flatten)]
    pub fusion: FusionArgs,
    /// Collection to evaluate [default: beir-<dataset folder name>, ingested from corpus.jsonl].
    #[arg(long)]
    pub collection: Option<String>,
    /// Query a running server instead of the data dir (the collection must hold the corpus).
    #[arg(long)]
    pub server: Option<String>,
    /// API key or JWT for --server (sent as `Authorization: Bearer`): the eval sees what this
    /// caller may read.
    #[arg(long, env = "QUARRY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Documents retrieved per query, 1 to 1000.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub top_k: u64,
    /// Also write one TREC run file per mode, DIR/<mode>.trec.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, serde::Serialize)]
struct ModeReport {
    #[serde(rename = "ndcg@10")]
    ndcg_10: f64,
    #[serde(rename = "recall@100")]
    recall_100: f64,
    #[serde(rename = "mrr@10")]
    mrr_10: f64,
    latency_ms: BTreeMap<&'static str, f64>,
}

fn read_queries(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = HashMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        let (Some(id), Some(q)) = (v["_id"].as_str(), v["text"].as_str()) else {
            bail!(
                "{}:{}: a query needs `_id` and `text`",
                path.display(),
                i + 1
            );
        };
        out.insert(id.to_owned(), q.to_owned());
    }
    Ok(out)
}

/// `query-id<TAB>corpus-id<TAB>score` with a header line.
fn read_qrels(path: &Path) -> anyhow::Result<BTreeMap<String, Judgments>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out: BTreeMap<String, Judgments> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != 3 || (i == 0 && cols[2].parse::<u32>().is_err()) {
            if i == 0 {
                continue;
            }
            bail!(
                "{}:{}: expected query-id, corpus-id, score separated by tabs",
                path.display(),
                i + 1
            );
        }
        let grade: i64 = cols[2]
            .trim()
            .parse()
            .with_context(|| format!("{}:{}: bad score", path.display(), i + 1))?;
        out.entry(cols[0].to_owned())
            .or_default()
            .insert(cols[1].to_owned(), grade.max(0) as u32);
    }
    Ok(out)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    let queries = read_queries(&args.dataset.join("queries.jsonl"))?;
    let qrels = read_qrels(
        &args
            .dataset
            .join("qrels")
            .join(format!("{}.tsv", args.split)),
    )?;
    let name = args
        .dataset
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    let collection = args
        .collection
        .clone()
        .unwrap_or_else(|| format!("beir-{name}"));

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
                args.dataset.join("corpus.jsonl").display()
            );
            let s = quarry_index::ingest(
                &engine,
                &[args.dataset.join("corpus.jsonl")],
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
    let server = args
        .server
        .as_deref()
        .map(|url| Remote::new(url, args.token.clone()));
    let searcher = engine
        .as_ref()
        .map(|e| e.searcher(&collection))
        .transpose()?;

    let fusion = args.fusion.resolve(config.query.fusion);
    let mut reports = BTreeMap::new();
    for mode in &args.modes {
        let mode_name = serde_json::to_value(mode)?
            .as_str()
            .unwrap_or("mode")
            .to_owned();
        let mut trec = Vec::new();
        let (mut ndcg, mut recall, mut mrr, mut lat) = (0.0, 0.0, 0.0, Vec::new());
        let mut degraded = 0usize;
        for (qid, judged) in &qrels {
            let text = queries
                .get(qid)
                .with_context(|| format!("query {qid} of the qrels is not in queries.jsonl"))?;
            let q = QueryOptions::new(text.clone(), args.top_k as usize, *mode, GroupBy::Document)?
                .with_fusion(fusion)?;
            let t = Instant::now();
            let answer = match (&searcher, &server) {
                (Some(s), _) => s.search(&q, &Principal::local_admin())?,
                (None, Some(server)) => remote(server, &collection, &q)?,
                (None, None) => unreachable!("either a searcher or a server"),
            };
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            if answer.degraded {
                degraded += 1;
            }
            let ranked: Vec<String> = answer.results.iter().map(|h| h.doc_id.clone()).collect();
            ndcg += ndcg_at_k(&ranked, judged, 10);
            recall += recall_at_k(&ranked, judged, 100);
            mrr += mrr_at_k(&ranked, judged, 10);
            for (i, h) in answer.results.iter().enumerate() {
                trec.push(format!(
                    "{qid} Q0 {} {} {} quarry-{mode_name}",
                    h.doc_id,
                    i + 1,
                    h.score
                ));
            }
        }
        if degraded > 0 {
            eprintln!("warning: {degraded} {mode_name} queries were answered degraded (BM25 only)");
        }
        let n = qrels.len().max(1) as f64;
        lat.sort_by(f64::total_cmp);
        let latency_ms = BTreeMap::from([
            ("p50", percentile(&lat, 50.0)),
            ("p99", percentile(&lat, 99.0)),
        ]);
        reports.insert(
            mode_name.clone(),
            ModeReport {
                ndcg_10: ndcg / n,
                recall_100: recall / n,
                mrr_10: mrr / n,
                latency_ms,
            },
        );
        if let Some(dir) = &args.out {
            std::fs::create_dir_all(dir)?;
            let mut f = std::fs::File::create(dir.join(format!("{mode_name}.trec")))?;
            writeln!(f, "{}", trec.join("\n"))?;
        }
    }
    let report = serde_json::json!({
        "dataset": args.dataset, "split": args.split, "collection": collection, "queries": qrels.len(),
        "fusion": fusion, "modes": reports,
    });
    if args.json {
        return print_json(&report);
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} ({}, {} queries, collection {collection})",
        args.dataset.display(),
        args.split,
        qrels.len()
    );
    for (mode, r) in &reports {
        let _ = writeln!(
            o,
            "  {mode:<7} nDCG@10 {:.4}  Recall@100 {:.4}  MRR@10 {:.4}  latency p50 {:.2} ms  p99 {:.2} ms",
            r.ndcg_10, r.recall_100, r.mrr_10, r.latency_ms["p50"], r.latency_ms["p99"]
        );
    }
    emit(&o);
    Ok(())
}
