//! `quarry collections create|list|set|delete` (a collection's lifecycle) and `quarry forget` (erase
//! one document from the data directory, everywhere it left a copy). Both work on the data dir;
//! a server running on it follows (its refresh loop picks up the new generation, or notices that
//! a collection is gone).

use super::{UsageError, emit, open_engine, open_existing_engine, print_json};
use crate::config::Config;
use quarry_core::{ChunkOptions, ChunkSizer, Principal};
use quarry_index::CollectionSettings;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a collection with its settings (chunking, embedder); unchanged if it exists with
    /// the same settings, an error if with others.
    Create(CreateArgs),
    /// Every collection with its counts and sizes.
    List(ListArgs),
    /// Change how a collection scores BM25 (k1, b, k3), in place: the next query scores with
    /// the new values and nothing is re-indexed. Those not given keep their values.
    Set(SetArgs),
    /// Delete a collection: its documents, chunks, vectors, versions, jobs, eval runs, golden
    /// sets and index files.
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name: 1 to 64 letters, digits, `_` or `-`.
    #[arg(value_parser = super::collection_name)]
    pub name: String,
    /// Largest chunk, in tokens of the embedder (or characters / 4 with --sizer chars)
    /// [default: chunk.max_tokens].
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Tokens shared by neighbouring chunks [default: chunk.overlap].
    #[arg(long)]
    pub overlap: Option<usize>,
    /// How chunk sizes are counted: tokens or chars [default: chunk.sizer].
    #[arg(long, value_parser = ["tokens", "chars"])]
    pub sizer: Option<String>,
    /// Characters of surrounding text BM25 indexes with each chunk [default: chunk.context_chars].
    #[arg(long)]
    pub context_chars: Option<usize>,
    #[command(flatten)]
    pub bm25: Bm25Flags,
    /// Embedder name (`[embedders.NAME]`, `local`, `hash`, or `none` for BM25 only)
    /// [default: embedder].
    #[arg(long)]
    pub embedder: Option<String>,
    /// Print the result as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How a collection scores BM25, for `create` and `set`: a value not given is the configured
/// `bm25.*` for a new collection, the collection's own for `set`.
#[derive(Debug, clap::Args)]
pub struct Bm25Flags {
    /// BM25 term-frequency saturation, 0 to 1000 [create: bm25.k1; set: kept].
    #[arg(long)]
    pub k1: Option<f32>,
    /// BM25 length normalisation, 0 to 1 [create: bm25.b; set: kept].
    #[arg(long)]
    pub b: Option<f32>,
    /// BM25 query term-frequency saturation, 0 to 1000; 0: a repeated query word counts once
    /// [create: bm25.k3; set: kept].
    #[arg(long)]
    pub k3: Option<f32>,
    /// BM25 query expansion by pseudo-relevance feedback for queries that do not say: on, off,
    /// or FB_DOCS,FB_TERMS,ORIG_WEIGHT (e.g. 10,10,0.5) [create: bm25.feedback; set: kept].
    #[arg(long, value_name = "on|off|D,T,W", value_parser = super::query::parse_feedback)]
    pub feedback: Option<quarry_core::FeedbackSwitch>,
}

impl Bm25Flags {
    fn patch(&self) -> quarry_core::bm25::Bm25Patch {
        quarry_core::bm25::Bm25Patch {
            k1: self.k1,
            b: self.b,
            k3: self.k3,
            feedback: self.feedback,
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("params").required(true).multiple(true).args(["k1", "b", "k3", "feedback"])))]
pub struct SetArgs {
    /// The collection to change.
    #[arg(value_parser = super::collection_name)]
    pub name: String,
    #[command(flatten)]
    pub bm25: Bm25Flags,
    /// Print the collection as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print the result as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The collection to delete.
    #[arg(value_parser = super::collection_name)]
    pub name: String,
    /// Confirm: the collection cannot be restored.
    #[arg(long)]
    pub yes: bool,
    /// Print the result as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `quarry forget COLLECTION DOC_ID`.
#[derive(Debug, clap::Args)]
pub struct ForgetArgs {
    /// The collection that holds the document.
    #[arg(value_parser = super::collection_name)]
    pub collection: String,
    /// The document's id (for a file: its path relative to the folder ingested).
    pub doc_id: String,
    /// Print the result as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Create(a) => create(data_dir, config, a),
        Command::List(a) => list(data_dir, config, a),
        Command::Set(a) => set(data_dir, config, a),
        Command::Delete(a) => delete(data_dir, config, a),
    }
}

fn create(data_dir: &Path, config: &Config, a: CreateArgs) -> anyhow::Result<()> {
    let base = config.chunk;
    let sizer = match a.sizer.as_deref() {
        Some("chars") => ChunkSizer::Chars,
        Some(_) => ChunkSizer::Tokens,
        None => base.sizer,
    };
    let chunk = ChunkOptions {
        max_tokens: a.max_tokens.unwrap_or(base.max_tokens),
        overlap: a.overlap.unwrap_or(base.overlap),
        sizer,
        context_chars: a.context_chars.unwrap_or(base.context_chars),
    };
    // A bad flag value is a usage error (exit 2), named by its flag, before anything is opened.
    chunk.validate().map_err(|e| {
        UsageError(
            e.to_string()
                .replace("chunk.max_tokens", "--max-tokens (chunk.max_tokens)")
                .replace("chunk.overlap", "--overlap (chunk.overlap)")
                .replace(
                    "chunk.context_chars",
                    "--context-chars (chunk.context_chars)",
                ),
        )
    })?;
    let settings = CollectionSettings {
        chunk: Some(chunk),
        bm25: Some(a.bm25.patch().apply(config.bm25)),
        embedder: a.embedder,
    };
    let engine = open_engine(data_dir, config)?;
    // A bad value (an unknown embedder) exits 2; a collection that exists with other settings
    // is not a bad value, it exits 1.
    let (stats, created) = engine
        .create_collection(&a.name, &settings)
        .map_err(|e| match e {
            quarry_index::Error::Conflict(_) => e.into(),
            e => super::usage_if_input(e.into()),
        })?;
    if a.json {
        return print_json(&serde_json::json!({"created": created, "collection": stats}));
    }
    emit(&format!(
        "{} collection {}: chunks {}, embedder {}\n",
        if created { "created" } else { "unchanged:" },
        stats.name,
        stats.chunk_options,
        stats.embedder.as_deref().unwrap_or("none (BM25 only)")
    ));
    Ok(())
}

fn list(data_dir: &Path, config: &Config, a: ListArgs) -> anyhow::Result<()> {
    let engine = open_existing_engine(data_dir, config)?;
    let list = engine.list(&Principal::local_admin())?;
    if a.json {
        return print_json(&serde_json::json!({ "collections": list }));
    }
    let mut o = String::new();
    if list.is_empty() {
        o.push_str(
            "no collections; create one with `quarry collections create NAME` or `quarry ingest`\n",
        );
    }
    for c in &list {
        let _ = writeln!(
            o,
            "{}: {} documents, {} chunks, {} bytes of text, {} bytes of indexes, embedder {}, chunks {}, bm25 k1 {} b {} k3 {}",
            c.name,
            c.documents,
            c.chunks,
            c.text_bytes.unwrap_or(0),
            c.index_bytes.unwrap_or(0),
            c.embedder.as_deref().unwrap_or("none"),
            c.chunk_options,
            c.bm25.k1,
            c.bm25.b,
            c.bm25.k3
        );
    }
    emit(&o);
    Ok(())
}

/// `off`, or `FB_DOCS,FB_TERMS,ORIG_WEIGHT` as `--feedback` takes it.
fn feedback_text(f: Option<quarry_core::Feedback>) -> String {
    f.map_or("off".into(), |f| {
        format!("{},{},{}", f.fb_docs, f.fb_terms, f.orig_weight)
    })
}

fn set(data_dir: &Path, config: &Config, a: SetArgs) -> anyhow::Result<()> {
    let engine = open_existing_engine(data_dir, config)?;
    let now = engine.stats(&a.name, &Principal::local_admin())?.bm25;
    let stats = engine
        .set_bm25(&a.name, a.bm25.patch().apply(now))
        .map_err(|e| super::usage_if_input(e.into()))?;
    if a.json {
        return print_json(&stats);
    }
    emit(&format!(
        "collection {}: bm25 k1 {} b {} k3 {} feedback {} (was k1 {} b {} k3 {} feedback {})\n",
        stats.name,
        stats.bm25.k1,
        stats.bm25.b,
        stats.bm25.k3,
        feedback_text(stats.bm25.feedback),
        now.k1,
        now.b,
        now.k3,
        feedback_text(now.feedback)
    ));
    Ok(())
}

fn delete(data_dir: &Path, config: &Config, a: DeleteArgs) -> anyhow::Result<()> {
    if !a.yes {
        return Err(UsageError(format!(
            "deleting collection `{}` removes its documents, vectors, versions, eval runs and golden sets for good; add --yes to confirm",
            a.name
        ))
        .into());
    }
    let engine = open_existing_engine(data_dir, config)?;
    let deleted = engine.delete_collection(&a.name)?;
    if a.json {
        return print_json(&deleted);
    }
    emit(&format!(
        "deleted collection {}: {} documents, {} chunks, {} stored vectors\n",
        deleted.name, deleted.documents, deleted.chunks, deleted.vectors_erased
    ));
    Ok(())
}

/// `quarry forget COLLECTION DOC_ID`, as the local admin.
pub(crate) fn forget(data_dir: &Path, config: &Config, a: ForgetArgs) -> anyhow::Result<()> {
    let engine = open_existing_engine(data_dir, config)?;
    let report = engine.forget(&a.collection, &a.doc_id, &Principal::local_admin())?;
    if a.json {
        return print_json(&report);
    }
    let e = &report.erased;
    let mut o = format!(
        "forgot {} of {} (generation {}): {} chunks erased ({} kept: other documents hold them), {} stored vectors, {} canaries, {} eval runs redacted, {} golden sets changed, {} vector dumps of other versions dropped\n",
        report.doc_id,
        report.collection,
        e.generation,
        e.chunks_erased,
        e.chunks - e.chunks_erased,
        e.vectors_erased,
        e.canaries_erased,
        e.eval_runs_redacted,
        e.golden_sets_changed,
        report.version_dumps_dropped
    );
    if !report.catalog_scrubbed {
        o.push_str("warning: another process kept the catalog's write-ahead log busy; old page images stay in it until its next checkpoint\n");
    }
    emit(&o);
    Ok(())
}
