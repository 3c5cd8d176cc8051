//! `quarry ingest PATH...`

mod progress;

use super::{emit, open_engine, print_json};
use crate::config::Config;
use anyhow::{Context, anyhow, bail};
use progress::{Bar, Stop};
use quarry_core::EmbedderSpec;
use quarry_index::ingest::{MAX_PROBLEMS, is_vector_file};
use quarry_index::{IngestOptions, IngestSummary, VectorsSummary};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or folders. Folders are walked recursively (honouring .gitignore and .quarryignore);
    /// .txt, .md, .html, .pdf and .docx files are documents (see docs/ingest.md); .jsonl files are read as BEIR corpora ({"_id", "title", "text"} per line); .parquet files
    /// are precomputed vectors (columns `id`, `vector`) for documents already ingested, loaded
    /// after the other paths.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Collection to use (1 to 64 letters, digits, `_` or `-`).
    #[arg(long, default_value = "default", value_parser = crate::cmd::collection_name)]
    pub collection: String,
    /// Principal allowed to read documents that carry no ACL of their own (user:ID, group:ID, public).
    #[arg(long = "acl", value_name = "PRINCIPAL", value_parser = parse_principal)]
    pub acl: Vec<String>,
    /// Also delete documents that disappeared from the walked folders.
    #[arg(long)]
    pub sync: bool,
    /// Skip files larger than this many bytes [default: ingest.max_file_bytes = 32 MiB].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_file_bytes: Option<u64>,
    /// Do not embed new chunks now: they are searchable by BM25 until their vectors are loaded
    /// (`quarry ingest vectors.parquet`) or a later ingest embeds them.
    #[arg(long)]
    pub no_embed: bool,
    /// Which embedder computed the vectors of the .parquet files: the name of a configured
    /// embedder (e.g. local) or its spec as JSON [default: the files' schema metadata].
    #[arg(long, value_name = "NAME|JSON")]
    pub vectors_spec: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses `--vectors-spec`: a JSON embedder spec (starting with `{`), or the name of a configured
/// embedder, loaded to read its spec.
fn spec_from_arg(config: &Config, arg: &str) -> anyhow::Result<EmbedderSpec> {
    let arg = arg.trim();
    if arg.starts_with('{') {
        return serde_json::from_str::<EmbedderSpec>(arg).map_err(|e| {
            anyhow!(
                "--vectors-spec is not a valid embedder spec: {e}. Expected JSON like \
                 {{\"provider\":\"local\",\"model\":\"all-MiniLM-L6-v2\",\"revision\":\"<sha256 of model.safetensors>\",\
                 \"dimensions\":384,\"pooling\":\"mean\",\"normalized\":true,\"max_tokens\":256}}, \
                 or the name of a configured embedder (e.g. local)"
            )
        });
    }
    match crate::embedders::load(config, arg)
        .with_context(|| format!("--vectors-spec {arg}: cannot load that embedder's spec"))?
    {
        Some(e) => Ok(e.spec().clone()),
        None => bail!(
            "--vectors-spec {arg}: embedder `{arg}` produces no vectors; name the embedder that \
             computed them, or give its spec as JSON"
        ),
    }
}

fn parse_principal(s: &str) -> Result<String, String> {
    quarry_core::acl::check_principal(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

pub(crate) fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    if args.vectors_spec.is_some() && !args.paths.iter().any(|p| is_vector_file(p)) {
        return Err(super::UsageError(
            "--vectors-spec describes the vectors of .parquet files, and none was given; add the \
             .parquet files to the paths, or leave --vectors-spec out"
                .into(),
        )
        .into());
    }
    let spec = match &args.vectors_spec {
        Some(arg) => Some(spec_from_arg(config, arg)?),
        None => None,
    };
    let engine = open_engine(data_dir, config)?;
    let opts = IngestOptions {
        collection: args.collection,
        acl: args.acl,
        sync: args.sync,
        max_file_bytes: args.max_file_bytes.unwrap_or(config.ingest.max_file_bytes),
        batch_docs: config.ingest.batch_docs,
        embed: !args.no_embed,
        cancel: None,
        ..IngestOptions::default()
    };
    let progress = Bar::new();
    let done = AtomicBool::new(false);
    let ingested = std::thread::scope(|s| {
        let ticker = s.spawn(|| progress.tick(engine.telemetry(), &done));
        // stops the ticker however the ingest ends, a panic included (the scope waits for it)
        let _stop = Stop(&done, ticker.thread().clone());
        quarry_index::ingest_inputs(&engine, &args.paths, &opts, spec.as_ref(), &progress)
    })?;
    progress.bar.finish_and_clear();
    let read_documents = ingested.documents.is_some();
    let summary = ingested.documents.unwrap_or_else(|| IngestSummary {
        collection: opts.collection.clone(),
        ..IngestSummary::default()
    });
    let (shown, failed) = match ingested.vectors {
        Some(Ok(v)) => (Some(v), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let shown = shown.as_ref();
    if failed.is_some() && !read_documents {
        // Nothing to report but the error.
    } else if args.json {
        let mut value = serde_json::to_value(&summary)?;
        if let (Some(v), Some(obj)) = (shown, value.as_object_mut()) {
            obj.insert("vectors".into(), serde_json::to_value(v)?);
        }
        print_json(&value)?;
    } else {
        if read_documents {
            print_summary(&summary);
        }
        if let Some(v) = shown {
            print_vectors(&opts.collection, v);
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn print_vectors(collection: &str, v: &VectorsSummary) {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{collection}: {} vectors loaded, {} unchanged, {} rows skipped in {:.2}s",
        v.vectors_loaded,
        v.vectors_unchanged,
        v.skipped_total(),
        v.seconds
    );
    if !v.skipped.is_empty() {
        let parts: Vec<String> = v.skipped.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let _ = writeln!(o, "skipped: {}", parts.join(", "));
    }
    const SHOWN: usize = 20;
    for p in v.problems.iter().take(SHOWN) {
        let id =
            p.id.as_deref()
                .map(|i| format!(" (id {i})"))
                .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {} row {}{id}: {}: {}",
            p.file, p.row, p.reason, p.message
        );
    }
    let more = v.skipped_total().saturating_sub(SHOWN as u64);
    if more > 0 {
        let _ = writeln!(
            o,
            "  … and {more} more (use --json for the first {})",
            MAX_PROBLEMS
        );
    }
    emit(&o);
}

/// What the embedding of a run cost, when it embedded anything: tokens (for an embedder that
/// counts them), the time in the model or provider, and the rate.
fn embedding_line(s: &IngestSummary) -> Option<String> {
    let (Some(tokens), Some(seconds)) = (s.tokens_embedded, s.embed_seconds) else {
        return None;
    };
    if s.embedded == 0 {
        return None;
    }
    let per_second = |n: u64| n as f64 / seconds.max(1e-3);
    Some(if tokens > 0 {
        format!(
            "embedding: {tokens} tokens of {} chunks in {seconds:.2}s ({:.0} tokens/s)",
            s.embedded,
            per_second(tokens)
        )
    } else {
        format!(
            "embedding: {} chunks in {seconds:.2}s ({:.1} chunks/s)",
            s.embedded,
            per_second(s.embedded)
        )
    })
}

fn print_summary(s: &IngestSummary) {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}: {} added, {} updated, {} unchanged, {} ACL updated, {} deleted; {} chunks, {} embedded, {} cache hits in {:.2}s",
        s.collection,
        s.added,
        s.updated,
        s.unchanged,
        s.acl_updated,
        s.deleted,
        s.chunks,
        s.embedded,
        s.cache_hits,
        s.seconds
    );
    if let Some(line) = embedding_line(s) {
        let _ = writeln!(o, "{line}");
    }
    if !s.skipped.is_empty() {
        let parts: Vec<String> = s.skipped.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let _ = writeln!(o, "skipped: {}", parts.join(", "));
    }
    if !s.warnings.is_empty() {
        let parts: Vec<String> = s.warnings.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let _ = writeln!(o, "warnings: {}", parts.join(", "));
    }
    const SHOWN: usize = 20;
    for p in s.problems.iter().take(SHOWN) {
        let at = p.line.map(|l| format!(":{l}")).unwrap_or_default();
        let _ = writeln!(o, "  {}{at}: {}: {}", p.path, p.reason, p.message);
    }
    if s.problems.len() > SHOWN {
        let _ = writeln!(
            o,
            "  … and {} more (use --json for all)",
            s.problems.len() - SHOWN
        );
    }
    emit(&o);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_the_embedding_cost() {
        let mut s = IngestSummary {
            embedded: 10,
            tokens_embedded: Some(640),
            embed_seconds: Some(0.5),
            ..IngestSummary::default()
        };
        assert_eq!(
            embedding_line(&s).as_deref(),
            Some("embedding: 640 tokens of 10 chunks in 0.50s (1280 tokens/s)")
        );
        s.tokens_embedded = Some(0);
        assert_eq!(
            embedding_line(&s).as_deref(),
            Some("embedding: 10 chunks in 0.50s (20.0 chunks/s)")
        );
        s.embedded = 0;
        assert_eq!(embedding_line(&s), None);
        // the documents API's summaries carry no embedding time
        s.embedded = 10;
        (s.tokens_embedded, s.embed_seconds) = (None, None);
        assert_eq!(embedding_line(&s), None);
    }
}
