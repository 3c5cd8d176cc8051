//! `quarry query TEXT`

use super::remote::{Remote, ServerArgs};
use super::{emit, open_engine_to_read, print_json};
use crate::config::Config;
use anyhow::Context;
use quarry_core::{Fusion, GroupBy, Mode, Principal, QueryOptions};
use quarry_index::SearchResponse;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to search for (plain text; no query syntax).
    pub text: String,
    /// Collection to use (1 to 64 letters, digits, `_` or `-`).
    #[arg(long, default_value = "default")]
    pub collection: String,
    /// Number of results, 1 to 1000 [default: query.top_k = 10].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub top_k: Option<u64>,
    /// hybrid, bm25 or vector [default: query.mode = hybrid].
    #[arg(long)]
    pub mode: Option<Mode>,
    /// Return chunks, or one best chunk per document [default: query.group_by = chunk].
    #[arg(long, value_parser = parse_group_by)]
    pub group_by: Option<GroupBy>,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long)]
    pub json: bool,
}

/// `--fusion rrf|weighted`, `--rrf-k`, `--alpha` [default: query.fusion, weighted with alpha 0.6].
#[derive(Debug, Clone, clap::Args)]
pub struct FusionArgs {
    /// Fusion of hybrid results: rrf or weighted [default: query.fusion].
    #[arg(long, value_parser = ["rrf", "weighted"])]
    pub fusion: Option<String>,
    /// k of RRF (with --fusion rrf) [default: 60].
    #[arg(long)]
    pub rrf_k: Option<f32>,
    /// Weight of the vector side, 0 to 1 (with --fusion weighted) [default: 0.6].
    #[arg(long)]
    pub alpha: Option<f32>,
}

impl FusionArgs {
    /// The fusion these flags ask for, else `default`.
    pub fn resolve(&self, default: Fusion) -> Fusion {
        match self.fusion.as_deref() {
            Some("weighted") => Fusion::Weighted {
                alpha: self.alpha.unwrap_or(quarry_core::fusion::DEFAULT_ALPHA),
            },
            Some(_) => Fusion::Rrf {
                k: self.rrf_k.unwrap_or(60.0),
            },
            None => match default {
                Fusion::Rrf { k } => Fusion::Rrf {
                    k: self.rrf_k.unwrap_or(k),
                },
                Fusion::Weighted { alpha } => Fusion::Weighted {
                    alpha: self.alpha.unwrap_or(alpha),
                },
            },
        }
    }
}

fn parse_group_by(s: &str) -> Result<GroupBy, String> {
    match s {
        "chunk" => Ok(GroupBy::Chunk),
        "document" => Ok(GroupBy::Document),
        _ => Err("expected chunk or document".into()),
    }
}

pub(crate) fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    let q = QueryOptions::new(
        args.text,
        args.top_k.map_or(config.query.top_k, |k| k as usize),
        args.mode.unwrap_or(config.query.mode),
        args.group_by.unwrap_or(config.query.group_by),
    )?
    .with_fusion(args.fusion.resolve(config.query.fusion))?;
    let answer = match args.server.remote() {
        Some(server) => remote(&server, &args.collection, &q)?,
        None => open_engine_to_read(data_dir, config)?
            .searcher(&args.collection)?
            .search(&q, &Principal::local_admin())?,
    };
    if args.json {
        return print_json(&answer);
    }
    for w in &answer.warnings {
        eprintln!("warning: {w}");
    }
    if answer.degraded {
        eprintln!("warning: degraded answer (a retriever was unavailable)");
    }
    let mut o = String::new();
    if answer.results.is_empty() {
        o.push_str("no results\n");
    }
    for (i, h) in answer.results.iter().enumerate() {
        let snippet: String = h.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let snippet: String = snippet.chars().take(240).collect();
        let _ = writeln!(
            o,
            "{:>2}. {:.3}  {}  — {}",
            i + 1,
            h.score,
            h.doc_id,
            h.title
        );
        let _ = writeln!(o, "    {snippet}");
    }
    emit(&o);
    Ok(())
}

/// Sends the query to a server and returns its answer.
pub(crate) fn remote(
    server: &Remote,
    collection: &str,
    q: &QueryOptions,
) -> anyhow::Result<SearchResponse> {
    let body = serde_json::json!({"query": q.text, "top_k": q.top_k, "mode": q.mode, "group_by": q.group_by, "fusion": q.fusion});
    let value = server.post(&format!("/v1/collections/{collection}/query"), &body)?;
    serde_json::from_value(value).context("unexpected query response from the server")
}
