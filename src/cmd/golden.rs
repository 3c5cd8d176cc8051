//! `quarry golden add|list|remove`: the golden sets of a collection (judged queries that
//! `quarry eval --golden NAME` runs against the collection as it is).
//!
//! A golden set comes from a JSONL file, one `{"query": "...", "relevant": {"doc-id": grade, ...}}`
//! per line (optional `"id"`, else the line number), or from a BEIR pair (`--queries
//! queries.jsonl --qrels qrels.tsv`). Every line is checked before anything is stored.

use super::{emit, open_existing_engine, print_json};
use crate::config::Config;
use anyhow::{Context, bail};
use quarry_index::catalog::GoldenQuery;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Store (or replace) a golden set from a JSONL file or a BEIR queries/qrels pair.
    Add(AddArgs),
    /// List the golden sets.
    List(ListArgs),
    /// Remove a golden set.
    Remove(RemoveArgs),
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Name of the golden set (letters, digits, `_`, `-`).
    pub name: String,
    /// JSONL file: {"query": "...", "relevant": {"doc-id": grade}} per line (optional "id").
    #[arg(required_unless_present = "queries", conflicts_with_all = ["queries", "qrels"])]
    pub file: Option<PathBuf>,
    /// BEIR queries.jsonl ({"_id", "text"} per line), with --qrels.
    #[arg(long, requires = "qrels")]
    pub queries: Option<PathBuf>,
    /// BEIR qrels file (query-id, corpus-id, score; tab-separated, with a header line).
    #[arg(long, requires = "queries")]
    pub qrels: Option<PathBuf>,
    /// The collection the golden set judges.
    #[arg(long, default_value = "default", value_parser = crate::cmd::collection_name)]
    pub collection: String,
    /// Print the result as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only the golden sets of this collection.
    #[arg(long, value_parser = crate::cmd::collection_name)]
    pub collection: Option<String>,
    /// Print the result as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// Name of the golden set.
    pub name: String,
    /// The collection of the golden set.
    #[arg(long, default_value = "default", value_parser = crate::cmd::collection_name)]
    pub collection: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    id: Option<serde_json::Value>,
    query: String,
    relevant: BTreeMap<String, u32>,
}

/// Reads a golden JSONL file; an error names the line and what is wrong with it.
fn read_jsonl(path: &Path) -> anyhow::Result<Vec<GoldenQuery>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let l: Line = serde_json::from_str(line).with_context(|| {
            format!(
                "{}: expected {{\"query\": \"...\", \"relevant\": {{\"doc-id\": grade}}}} (grades are whole numbers from 0)",
                at()
            )
        })?;
        if l.query.trim().is_empty() {
            bail!("{}: the query is empty", at());
        }
        let id = match l.id {
            None => (i + 1).to_string(),
            Some(serde_json::Value::String(s)) => s,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(other) => bail!("{}: id {other} is not a string or a number", at()),
        };
        if !ids.insert(id.clone()) {
            bail!("{}: id {id} appears twice", at());
        }
        out.push(GoldenQuery {
            id,
            query: l.query,
            relevant: l.relevant,
        });
    }
    Ok(out)
}

/// Reads a BEIR queries/qrels pair: the queries that have judgments.
fn read_beir(queries: &Path, qrels: &Path) -> anyhow::Result<Vec<GoldenQuery>> {
    let texts = quarry_index::eval::read_beir_queries(queries)?;
    quarry_index::eval::read_beir_qrels(qrels)?
        .into_iter()
        .map(|(id, relevant)| {
            let query = texts.get(&id).cloned().with_context(|| {
                format!(
                    "query {id} of {} is not in {}",
                    qrels.display(),
                    queries.display()
                )
            })?;
            Ok(GoldenQuery {
                id,
                query,
                relevant: relevant.into_iter().collect(),
            })
        })
        .collect()
}

pub(crate) fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    let engine = open_existing_engine(data_dir, config)?;
    match args.command {
        Command::Add(a) => {
            let queries = match (&a.file, &a.queries, &a.qrels) {
                (Some(file), _, _) => read_jsonl(file)?,
                (None, Some(q), Some(r)) => read_beir(q, r)?,
                _ => unreachable!("clap requires a file or --queries with --qrels"),
            };
            engine.put_golden(&a.collection, &a.name, &queries)?;
            let judged = queries
                .iter()
                .filter(|q| q.relevant.values().any(|g| *g > 0))
                .count();
            if a.json {
                return print_json(&serde_json::json!({
                    "collection": a.collection, "name": a.name, "queries": queries.len(),
                    "with_relevant": judged,
                }));
            }
            emit(&format!(
                "golden set {} of {}: {} queries ({} with a relevant document)\n",
                a.name,
                a.collection,
                queries.len(),
                judged
            ));
        }
        Command::List(l) => {
            let sets = engine.golden_sets(l.collection.as_deref())?;
            if l.json {
                return print_json(&serde_json::json!({ "golden_sets": sets }));
            }
            let mut o = String::new();
            if sets.is_empty() {
                let _ = writeln!(
                    o,
                    "no golden sets; add one with `quarry golden add NAME FILE`"
                );
            }
            for s in sets {
                let _ = writeln!(
                    o,
                    "{:<16} {:<24} {} queries",
                    s.collection, s.name, s.queries
                );
            }
            emit(&o);
        }
        Command::Remove(r) => {
            engine.delete_golden(&r.collection, &r.name)?;
            emit(&format!(
                "removed golden set {} of {}\n",
                r.name, r.collection
            ));
        }
    }
    Ok(())
}
