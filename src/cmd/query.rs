//! `quarry query TEXT`

use super::remote::{Remote, ServerArgs};
use super::{UsageError, check_rerank, emit, open_engine_to_read, print_json};
use crate::config::Config;
use anyhow::Context;
use quarry_core::query::{QueryDefaults, QueryRequest};
use quarry_core::{Diversify, Fusion, GroupBy, Mode, Principal};
use quarry_index::SearchResponse;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to search for (plain text; no query syntax). May be left out with --mode vector
    /// and --vector.
    pub text: Option<String>,
    /// Collection to use (1 to 64 letters, digits, `_` or `-`).
    #[arg(long, default_value = "default", value_parser = crate::cmd::collection_name)]
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
    /// BM25 query expansion by pseudo-relevance feedback: on, off, or FB_DOCS,FB_TERMS,ORIG_WEIGHT
    /// (e.g. 10,10,0.5) [default: the collection's setting].
    #[arg(long, value_name = "on|off|D,T,W", value_parser = parse_feedback)]
    pub feedback: Option<quarry_core::FeedbackSwitch>,
    /// Only documents passing this metadata filter, as JSON (docs/query.md), e.g.
    /// '{"field": "year", "gte": 2020}'.
    #[arg(long, value_name = "JSON", value_parser = parse_filter)]
    pub filter: Option<serde_json::Value>,
    /// Results to skip first (paging), at most 10000 [default: 0].
    #[arg(long)]
    pub offset: Option<usize>,
    /// Leave out results with a lower fused score.
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Metadata key hits carry (repeat it; default: all keys).
    #[arg(long = "include", value_name = "KEY")]
    pub include: Vec<String>,
    /// Count the values of this field over the matching documents (repeat it).
    #[arg(long = "facet", value_name = "FIELD")]
    pub facets: Vec<String>,
    /// Show each retriever's part of every score and where the time went.
    #[arg(long)]
    pub explain: bool,
    /// The query's own vector, as a JSON array of numbers (skips embedding the text).
    #[arg(long, value_name = "JSON", value_parser = parse_vector)]
    pub vector: Option<JsonVector>,
    /// The embedding version --vector was made for (checked against the collection's).
    #[arg(long, requires = "vector")]
    pub embedding_version: Option<String>,
    /// Mark the query's terms in each hit (`highlights`: byte ranges in its text).
    #[arg(long)]
    pub highlight: bool,
    /// Give each hit a citation: document, offsets, for Markdown and Word its heading path, for a
    /// PDF its page.
    #[arg(long)]
    pub citation: bool,
    /// Give each hit a passage: its chunk with N neighbouring chunks of its document on each
    /// side, 1 to 10 (overlapping passages of one document are merged on the better hit).
    #[arg(long, value_name = "N")]
    pub expand_neighbors: Option<usize>,
    /// Rerank the first N hits with the configured reranker ([reranker] in quarry.toml), then
    /// take the results from that order.
    #[arg(long, value_name = "N")]
    pub rerank_top_n: Option<usize>,
    /// Re-rank the results for diversity (maximal marginal relevance), LAMBDA from 0 to 1: 1 is
    /// the fused order, lower trades relevance for results unlike each other (docs/query.md).
    #[arg(long, value_name = "LAMBDA")]
    pub diversify: Option<f32>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print the whole answer as JSON (the HTTP API's response body).
    #[arg(long)]
    pub json: bool,
}

/// `--feedback`: on, off or `FB_DOCS,FB_TERMS,ORIG_WEIGHT`, checked when the flags are parsed
/// (exit 2).
pub(crate) fn parse_feedback(s: &str) -> Result<quarry_core::FeedbackSwitch, String> {
    quarry_core::FeedbackSwitch::parse(s).map_err(|e| e.to_string())
}

/// `--fusion rrf|weighted|adaptive`, `--rrf-k`, `--alpha`, `--gap-at`, `--strength` [default:
/// query.fusion, adaptive with alpha 0.6, gap_at 10, strength 1].
#[derive(Debug, Clone, clap::Args)]
pub struct FusionArgs {
    /// Fusion of hybrid results: rrf, weighted or adaptive (weighted, alpha set per query by
    /// how far each retriever's best score stands out) [default: query.fusion].
    #[arg(long, value_parser = ["rrf", "weighted", "adaptive"])]
    pub fusion: Option<String>,
    /// The rank whose score an adaptive fusion compares each retriever's best with, 2 to 1000
    /// (with --fusion adaptive) [default: 10].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(2..=1000))]
    pub gap_at: Option<u64>,
    /// How much of an adaptive fusion's alpha is the query's own, 0 (the fixed --alpha) to 1
    /// (with --fusion adaptive) [default: 1].
    #[arg(long, value_name = "S", value_parser = parse_strength)]
    pub strength: Option<f32>,
    /// k of RRF, 0 to 10000 (with --fusion rrf) [default: 60].
    #[arg(long, value_name = "K", value_parser = parse_rrf_k)]
    pub rrf_k: Option<f32>,
    /// Weight of the vector side, 0 to 1 (with --fusion weighted or adaptive) [default: 0.6].
    #[arg(long, value_name = "A", value_parser = parse_alpha)]
    pub alpha: Option<f32>,
}

/// `--alpha`, checked by the fusion's own rule when the flags are parsed (exit 2).
fn parse_alpha(s: &str) -> Result<f32, String> {
    let alpha: f32 = s.parse().map_err(|e| format!("{s}: {e}"))?;
    Fusion::Weighted { alpha }
        .validate()
        .map(|()| alpha)
        .map_err(|e| e.to_string())
}

/// `--strength`, checked by the fusion's own rule when the flags are parsed (exit 2).
fn parse_strength(s: &str) -> Result<f32, String> {
    let strength: f32 = s.parse().map_err(|e| format!("{s}: {e}"))?;
    Fusion::Adaptive {
        alpha: quarry_core::fusion::DEFAULT_ALPHA,
        gap_at: quarry_core::fusion::DEFAULT_GAP_AT,
        strength,
    }
    .validate()
    .map(|()| strength)
    .map_err(|e| e.to_string())
}

/// `--rrf-k`, checked by the fusion's own rule when the flags are parsed (exit 2).
fn parse_rrf_k(s: &str) -> Result<f32, String> {
    let k: f32 = s.parse().map_err(|e| format!("{s}: {e}"))?;
    Fusion::Rrf { k }
        .validate()
        .map(|()| k)
        .map_err(|e| e.to_string())
}

impl FusionArgs {
    /// The fusion these flags ask for, else `default`.
    pub fn resolve(&self, default: Fusion) -> Fusion {
        match self.fusion.as_deref() {
            Some("weighted") => Fusion::Weighted {
                alpha: self.alpha.unwrap_or(quarry_core::fusion::DEFAULT_ALPHA),
            },
            Some("adaptive") => Fusion::Adaptive {
                alpha: self.alpha.unwrap_or(quarry_core::fusion::DEFAULT_ALPHA),
                gap_at: self
                    .gap_at
                    .map_or(quarry_core::fusion::DEFAULT_GAP_AT, |g| g as usize),
                strength: self
                    .strength
                    .unwrap_or(quarry_core::fusion::DEFAULT_STRENGTH),
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
                Fusion::Adaptive {
                    alpha,
                    gap_at,
                    strength,
                } => Fusion::Adaptive {
                    alpha: self.alpha.unwrap_or(alpha),
                    gap_at: self.gap_at.map_or(gap_at, |g| g as usize),
                    strength: self.strength.unwrap_or(strength),
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

/// `--filter`: JSON that parses as a filter (its fields are checked against the collection when
/// the queries run).
pub(crate) fn parse_filter(s: &str) -> Result<serde_json::Value, String> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))?;
    quarry_core::Filter::parse(&v).map_err(|e| e.to_string())?;
    Ok(v)
}

/// `--vector`'s value, one JSON array. A type alias on purpose: clap's derive reads a written-out
/// `Option<Vec<f32>>` as a flag of several `f32` values, and every `--vector` then panicked when
/// the parsed `Vec<f32>` was taken out as an `f32`.
pub(crate) type JsonVector = Vec<f32>;

fn parse_vector(s: &str) -> Result<Vec<f32>, String> {
    serde_json::from_str(s).map_err(|e| format!("expected a JSON array of numbers: {e}"))
}

pub(crate) fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    let request = QueryRequest {
        query: args.text.clone(),
        top_k: Some(args.top_k.map_or(config.query.top_k, |k| k as usize)),
        mode: Some(args.mode.unwrap_or(config.query.mode)),
        group_by: Some(args.group_by.unwrap_or(config.query.group_by)),
        fusion: Some(args.fusion.resolve(config.query.fusion)),
        filter: args.filter.clone(),
        offset: args.offset,
        min_score: args.min_score,
        include: (!args.include.is_empty()).then(|| args.include.clone()),
        facets: (!args.facets.is_empty()).then(|| args.facets.clone()),
        explain: args.explain.then_some(true),
        vector: args.vector.clone(),
        embedding_version: args.embedding_version.clone(),
        highlight: args.highlight.then_some(true),
        citation: args.citation.then_some(true),
        expand: args
            .expand_neighbors
            .map(|neighbors| quarry_core::Expand { neighbors }),
        rerank: args.rerank_top_n.map(|top_n| quarry_core::Rerank { top_n }),
        diversify: args.diversify.map(|lambda| Diversify { lambda }),
        feedback: args.feedback,
    };
    // checked here as the server checks it: a bad option is exit 2 before anything is opened
    let q = request
        .clone()
        .options(QueryDefaults {
            top_k: config.query.top_k,
            mode: config.query.mode,
            group_by: config.query.group_by,
            fusion: config.query.fusion,
        })
        .map_err(|e| UsageError(e.to_string()))?;
    let answer = match args.server.remote() {
        Some(server) => remote(&server, &args.collection, &request)?,
        None => {
            check_rerank(config, args.rerank_top_n)?;
            open_engine_to_read(data_dir, config)?
                .searcher(&args.collection)?
                .search(&q, &Principal::local_admin())
                .map_err(|e| match e.kind() {
                    // a filter or facet naming an unknown field, a vector of the wrong length
                    quarry_index::ErrorKind::Input => {
                        anyhow::Error::from(UsageError(e.to_string()))
                    }
                    _ => e.into(),
                })?
        }
    };
    if args.json {
        return print_json(&answer);
    }
    for w in &answer.warnings {
        eprintln!("warning: {w}");
    }
    if answer.degraded {
        eprintln!("warning: degraded answer (a retriever or the reranker was unavailable)");
    }
    let mut o = String::new();
    if answer.results.is_empty() {
        o.push_str("no results\n");
    }
    for (i, h) in answer.results.iter().enumerate() {
        let snippet = one_line(&marked(&h.text, h.highlights.as_deref()), 240);
        let _ = writeln!(
            o,
            "{:>2}. {:.3}  {}  — {}",
            i + 1 + q.offset,
            h.score,
            h.doc_id,
            h.title
        );
        if !h.metadata.is_empty() && !args.include.is_empty()
            || args.explain && !h.metadata.is_empty()
        {
            let _ = writeln!(o, "    {}", serde_json::Value::Object(h.metadata.clone()));
        }
        if let Some(e) = &h.explain {
            let part = |name: &str, p: &Option<quarry_index::RetrieverPart>| {
                p.as_ref().map(|p| {
                    let rank = p.rank.map_or("-".to_owned(), |r| format!("#{r}"));
                    let weight = p
                        .weight
                        .map_or(String::new(), |w| format!(" weight {w:.2}"));
                    format!(
                        "{name} {rank} {:.3} ({:.0}%{weight})",
                        p.score,
                        p.share * 100.0
                    )
                })
            };
            let parts: Vec<String> = [part("bm25", &e.bm25), part("vector", &e.vector)]
                .into_iter()
                .flatten()
                .collect();
            let _ = writeln!(o, "    {}", parts.join(" · "));
        }
        let _ = writeln!(o, "    {snippet}");
        if let Some(c) = &h.citation {
            let path = c.heading_path.as_deref().unwrap_or_default().join(" › ");
            let page = c.page.map(|p| format!(" p. {p}")).unwrap_or_default();
            let at = if path.is_empty() {
                page
            } else {
                format!("{page} § {path}")
            };
            let _ = writeln!(
                o,
                "    cite: {} [{}, {}) {}{at}",
                c.doc_id, c.offsets[0], c.offsets[1], c.source
            );
        }
        if let Some(p) = &h.passage {
            let text = one_line(&marked(&p.text, p.highlights.as_deref()), 1000);
            let _ = writeln!(
                o,
                "    passage [{}, {}): {text}",
                p.offsets[0], p.offsets[1]
            );
        } else if let Some(r) = h.passage_ref {
            let _ = writeln!(o, "    passage: in result {}", r + 1 + q.offset);
        }
    }
    for (field, counts) in answer.facets.iter().flatten() {
        let values: Vec<String> = counts
            .iter()
            .map(|c| format!("{} ({})", c.value, c.count))
            .collect();
        let _ = writeln!(o, "facet {field}: {}", values.join(", "));
    }
    if let Some(terms) = &answer.expansion {
        let words: Vec<String> = terms
            .iter()
            .map(|t| {
                format!(
                    "{}{} {:.3}",
                    if t.added { "+" } else { "" },
                    t.term,
                    t.weight
                )
            })
            .collect();
        let _ = writeln!(o, "expanded query: {}", words.join(", "));
    }
    if let Some(t) = &answer.timings {
        let _ = writeln!(
            o,
            "took {:.2} ms: embed {:.2}, bm25 {:.2}, vector {:.2}, fusion {:.2}, hits {:.2}",
            answer.took_ms, t.embed_ms, t.bm25_ms, t.vector_ms, t.fusion_ms, t.post_ms
        );
    }
    emit(&o);
    Ok(())
}

/// `text` with `**` around each highlighted range (byte ranges on char boundaries; any that is
/// not is left unmarked).
fn marked(text: &str, highlights: Option<&[[usize; 2]]>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for [a, b] in highlights.unwrap_or_default() {
        match (text.get(at..*a), text.get(*a..*b)) {
            (Some(before), Some(word)) => {
                out.push_str(before);
                let _ = write!(out, "**{word}**");
                at = *b;
            }
            _ => continue,
        }
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

/// `text` on one line (whitespace runs as one space), at most `chars` characters.
fn one_line(text: &str, chars: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(chars).collect()
}

/// Sends the query to a server and returns its answer.
pub(crate) fn remote(
    server: &Remote,
    collection: &str,
    request: &QueryRequest,
) -> anyhow::Result<SearchResponse> {
    let body = serde_json::to_value(request).context("encoding the query")?;
    let value = server.post(&format!("/v1/collections/{collection}/query"), &body)?;
    serde_json::from_value(value).context("unexpected query response from the server")
}
