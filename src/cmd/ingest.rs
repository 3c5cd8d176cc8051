//! `quarry ingest PATH...`

use super::{emit, open_engine, print_json};
use crate::config::Config;
use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use quarry_core::EmbedderSpec;
use quarry_index::ingest::{MAX_PROBLEMS, is_vector_file};
use quarry_index::{IngestOptions, IngestSummary, Progress, VectorsSummary};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or folders. Folders are walked recursively (honouring .gitignore and .quarryignore);
    /// .txt, .md, .html, .pdf and .docx files are documents (see docs/ingest.md); .jsonl files are read as BEIR corpora ({"_id", "title", "text"} per line); .parquet files
    /// are precomputed vectors (columns `id`, `vector`) for documents already ingested, loaded
    /// after the other paths.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Collection to use (1 to 64 letters, digits, `_` or `-`).
    #[arg(long, default_value = "default")]
    pub collection: String,
    /// Principal allowed to read documents that carry no ACL of their own (user:ID, group:ID, public).
    #[arg(long = "acl", value_name = "PRINCIPAL", value_parser = parse_principal)]
    pub acl: Vec<String>,
    /// Also delete documents that disappeared from the walked folders.
    #[arg(long)]
    pub sync: bool,
    /// Skip files larger than this many bytes [default: ingest.max_file_bytes = 32 MiB].
    #[arg(long)]
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

/// The progress bar of an ingest: bytes read (the bar, and an ETA at the average rate since the
/// start, which a batch's embedding does not throw off as a recent rate would), and in its
/// message the documents read and, from the engine's telemetry (the same counters as
/// `/metrics`), the chunks embedded and the embedder's tokens per second.
struct Bar {
    bar: ProgressBar,
    documents: AtomicU64,
}

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.bar.set_length(total);
    }
    fn advance(&self, bytes: u64, documents: u64) {
        self.bar.inc(bytes);
        self.documents.fetch_add(documents, Ordering::Relaxed);
    }
}

impl Bar {
    fn new() -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} ingesting [{bar:30}] {bytes}/{total_bytes} eta {average_eta} · {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key("average_eta", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let eta = average_eta(s.pos(), s.len(), s.elapsed());
                    let _ = match eta {
                        Some(d) => write!(w, "{:#}", indicatif::HumanDuration(d)),
                        None => write!(w, "?"),
                    };
                })
                .progress_chars("=> "),
            );
            b
        } else {
            ProgressBar::hidden()
        };
        Bar {
            bar,
            documents: AtomicU64::new(0),
        }
    }

    /// Refreshes the message every 250 ms until `done` (woken at once by [`Stop`]).
    fn tick(&self, telemetry: &quarry_index::Telemetry, done: &AtomicBool) {
        if self.bar.is_hidden() {
            return;
        }
        let before = telemetry.document_embedding();
        while !done.load(Ordering::Relaxed) {
            let now = telemetry.document_embedding();
            let line = progress_line(
                self.documents.load(Ordering::Relaxed),
                now.texts - before.texts,
                now.tokens - before.tokens,
                now.seconds - before.seconds,
            );
            self.bar.set_message(line);
            std::thread::park_timeout(Duration::from_millis(250));
        }
    }
}

/// Sets its flag and wakes the ticker thread when dropped.
struct Stop<'a>(&'a AtomicBool, std::thread::Thread);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        self.1.unpark();
    }
}

/// The time left at the average rate so far: `elapsed` for `done` of `total`; `None` before
/// anything is done.
fn average_eta(done: u64, total: Option<u64>, elapsed: Duration) -> Option<Duration> {
    let total = total?;
    if done == 0 {
        return None;
    }
    let left = total.saturating_sub(done) as f64 / done as f64;
    Duration::try_from_secs_f64(elapsed.as_secs_f64() * left).ok()
}

/// The message of the ingest bar: documents read, chunks embedded, and the embedder's rate over
/// the `seconds` spent in it (tokens per second, or chunks per second for an embedder that counts
/// no tokens).
fn progress_line(documents: u64, embedded: u64, tokens: u64, seconds: f64) -> String {
    let per_second = |n: u64| n as f64 / seconds.max(1e-3);
    let rate = if tokens > 0 {
        format!("{:.0} tokens/s", per_second(tokens))
    } else {
        format!("{:.1} chunks/s", per_second(embedded))
    };
    format!("{documents} documents read · {embedded} chunks embedded · {rate}")
}

fn parse_principal(s: &str) -> Result<String, String> {
    quarry_core::acl::check_principal(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

pub(crate) fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    if args.vectors_spec.is_some() && !args.paths.iter().any(|p| is_vector_file(p)) {
        anyhow::bail!("--vectors-spec describes the vectors of .parquet files, and none was given");
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
    fn the_progress_line_gives_the_rate_in_tokens_or_chunks() {
        assert_eq!(
            progress_line(120, 900, 45_000, 10.0),
            "120 documents read · 900 chunks embedded · 4500 tokens/s"
        );
        // an embedder that counts no tokens (a provider): chunks per second
        assert_eq!(
            progress_line(3, 50, 0, 4.0),
            "3 documents read · 50 chunks embedded · 12.5 chunks/s"
        );
        // before anything was embedded, at the first tick
        assert_eq!(
            progress_line(0, 0, 0, 0.0),
            "0 documents read · 0 chunks embedded · 0.0 chunks/s"
        );
    }

    #[test]
    fn the_eta_is_at_the_average_rate_since_the_start() {
        let secs = Duration::from_secs;
        // a quarter done in 10 s: 30 s left, however long the last batch took
        assert_eq!(average_eta(25, Some(100), secs(10)), Some(secs(30)));
        assert_eq!(average_eta(100, Some(100), secs(10)), Some(secs(0)));
        assert_eq!(average_eta(0, Some(100), secs(10)), None);
        assert_eq!(average_eta(5, None, secs(10)), None);
        // past the total (a file grew while it was read): nothing left, not an underflow
        assert_eq!(average_eta(120, Some(100), secs(10)), Some(secs(0)));
    }

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
