//! `quarry embed --in CHUNKS --out VECTORS`: embeds chunk files (`quarry export chunks`) with a
//! configured embedder and writes vector files (`id`, `vector`, the embedder's spec in the
//! schema metadata) that `quarry ingest` loads. It needs no data directory, so it runs where the
//! compute is: one process per file on a cluster (`examples/ray_embed.py`, docs/cluster.md).
//!
//! Each input file gives one output file of the same name in `--out`, written beside its name
//! and renamed into place when complete: a killed run leaves no half file, and `--skip-existing`
//! resumes it. The embedder must compute the spec the file names (same fingerprint), so vectors
//! of another model are never passed off as the collection's. A row without an id or text, or
//! whose chunk-hash id is not the hash of its text (the text was changed), is skipped and
//! counted; a file that cannot be read is an error that names it.

use super::{UsageError, emit, print_json};
use crate::config::Config;
use anyhow::{Context, anyhow, bail};
use indicatif::ProgressBar;
use quarry_core::embed::{EmbedCheckError, embed_checked};
use quarry_core::{ContentHash, Embedder, InputKind};
use quarry_index::ingest::chunk_files::{
    ChunkFile, ParquetOut, spec_in_metadata, spec_metadata, vector_batch, vector_schema,
};
use quarry_index::ingest::spec_metadata::NAME_KEY;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Skipped rows listed in the summary (all are counted).
const MAX_PROBLEMS: usize = 100;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A chunk file written by `quarry export chunks`, or a folder of them (its `*.parquet`
    /// files).
    #[arg(long = "in", value_name = "FILE|DIR")]
    pub input: PathBuf,
    /// The folder to write vector files into (created if missing): one per input file, of the
    /// same name, with columns `id` and `vector` (fixed_size_list<float32>).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The configured embedder to use; it must compute the embedder spec the files name
    /// [default: the embedder named in the files' metadata, else the configured `embedder`].
    #[arg(long, value_name = "NAME")]
    pub embedder: Option<String>,
    /// Leave input files whose output file exists already (to resume an interrupted run).
    #[arg(long)]
    pub skip_existing: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `quarry embed` did.
#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    files: Vec<FileSummary>,
    /// Files left alone by --skip-existing.
    files_skipped: u64,
    embedded: u64,
    /// Rows not embedded, by reason.
    skipped: BTreeMap<String, u64>,
    /// The first [`MAX_PROBLEMS`] skipped rows.
    problems: Vec<Problem>,
    seconds: f64,
}

#[derive(Debug, serde::Serialize)]
struct FileSummary {
    input: String,
    output: String,
    embedder: String,
    fingerprint: String,
    rows: u64,
    embedded: u64,
}

#[derive(Debug, serde::Serialize)]
struct Problem {
    file: String,
    row: u64,
    reason: &'static str,
}

impl Summary {
    fn skip(&mut self, file: &str, row: u64, reason: &'static str) {
        *self.skipped.entry(reason.to_owned()).or_default() += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                file: file.to_owned(),
                row,
                reason,
            });
        }
    }
}

pub(crate) fn run(config: &Config, args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let inputs = inputs(&args.input)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for input in &inputs {
        if same_dir(input, &args.out) {
            return Err(UsageError(format!(
                "--out {} is the folder of the input files; write the vectors to another folder",
                args.out.display()
            ))
            .into());
        }
    }
    let mut todo = Vec::new();
    let mut summary = Summary::default();
    let mut rows = 0;
    for input in inputs {
        let output = args.out.join(input.file_name().unwrap_or_default());
        if args.skip_existing && output.exists() {
            summary.files_skipped += 1;
        } else {
            // Checked up front, one open file at a time (thousands of files stay under the limit
            // of open files): a file that is not a chunk file fails before anything is embedded.
            rows += ChunkFile::open(&input)?.rows_total();
            todo.push((input, output));
        }
    }
    let bar = crate::progress::bar(
        rows,
        "{spinner} embedding [{bar:30}] {pos}/{len} chunks · {per_sec} · eta {eta}",
    );
    let mut embedders = Embedders::new(config);
    for (input, output) in todo {
        let file = ChunkFile::open(&input)?;
        let done = embed_file(
            file,
            &output,
            args.embedder.as_deref(),
            &mut embedders,
            &bar,
            &mut summary,
        )?;
        summary.embedded += done.embedded;
        summary.files.push(done);
    }
    bar.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    if args.json {
        return print_json(&summary);
    }
    print_summary(&summary, &args.out);
    Ok(())
}

/// The chunk files `input` names: itself, or a folder's `*.parquet` files (not hidden), sorted.
fn inputs(input: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(input).with_context(|| format!("cannot read {}", input.display()))?;
    if !meta.is_dir() {
        return Ok(vec![input.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(input).with_context(|| format!("cannot read {}", input.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.starts_with('.') && quarry_index::ingest::is_vector_file(&path) && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(UsageError(format!(
            "{} holds no .parquet files; give a folder written by `quarry export chunks`, or one \
             of its files",
            input.display()
        ))
        .into());
    }
    files.sort();
    Ok(files)
}

/// Whether file `input` lies in folder `out`.
fn same_dir(input: &Path, out: &Path) -> bool {
    let parent = match input.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    matches!((parent.canonicalize(), out.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// Configured embedders, loaded on first use.
struct Embedders<'c> {
    config: &'c Config,
    loaded: HashMap<String, Arc<dyn Embedder>>,
}

impl<'c> Embedders<'c> {
    fn new(config: &'c Config) -> Self {
        Embedders {
            config,
            loaded: HashMap::new(),
        }
    }

    fn get(&mut self, name: &str) -> anyhow::Result<Arc<dyn Embedder>> {
        if let Some(e) = self.loaded.get(name) {
            return Ok(e.clone());
        }
        let e = crate::embedders::load(self.config, name)
            .with_context(|| format!("cannot load embedder `{name}`"))?
            .ok_or_else(|| {
                UsageError(format!(
                    "embedder `{name}` makes no vectors; name another with --embedder"
                ))
            })?;
        self.loaded.insert(name.to_owned(), e.clone());
        Ok(e)
    }
}

/// Embeds one chunk file into `output`.
fn embed_file(
    mut file: ChunkFile,
    output: &Path,
    name: Option<&str>,
    embedders: &mut Embedders<'_>,
    bar: &ProgressBar,
    summary: &mut Summary,
) -> anyhow::Result<FileSummary> {
    let input = file.name().to_owned();
    let wanted = spec_in_metadata(&input, file.metadata())?;
    let name = name
        .map(str::to_owned)
        .or_else(|| file.metadata().get(NAME_KEY).cloned())
        .unwrap_or_else(|| embedders.config.embedder.clone());
    let embedder = embedders.get(&name)?;
    let spec = embedder.spec().clone();
    if let Some(wanted) = &wanted
        && wanted.fingerprint() != spec.fingerprint()
    {
        bail!(
            "{input} holds chunks to embed with {} (fingerprint {}), but embedder `{name}` is \
             configured as {} (fingerprint {}); its vectors would not be loaded. Configure \
             `{name}` as the file says, or name the right embedder with --embedder",
            wanted.canonical(),
            wanted.fingerprint().short(),
            spec.canonical(),
            spec.fingerprint().short()
        );
    }
    let schema = vector_schema(spec_metadata(&name, &spec), spec.dimensions);
    let mut out = ParquetOut::create(output, schema.clone())?;
    let batch_size = embedders.config.ingest.embed_batch.max(1);
    let (mut rows, mut embedded) = (0u64, 0u64);
    while let Some(batch) = file.next_batch()? {
        let mut ids = Vec::with_capacity(batch.len());
        let mut texts = Vec::with_capacity(batch.len());
        for (i, (id, text)) in batch.rows(&input)?.into_iter().enumerate() {
            let row = batch.row_number(i);
            match (id.filter(|s| !s.is_empty()), text) {
                (None, _) => summary.skip(&input, row, "missing_id"),
                (Some(_), None) => summary.skip(&input, row, "missing_text"),
                (Some(id), Some(text)) if !hash_matches(id, text) => {
                    summary.skip(&input, row, "text_mismatch")
                }
                (Some(id), Some(text)) => {
                    ids.push(id);
                    texts.push(text);
                }
            }
        }
        for (ids, texts) in ids.chunks(batch_size).zip(texts.chunks(batch_size)) {
            let vectors = embed_checked(
                &*embedder,
                texts,
                InputKind::Document,
                Some(spec.dimensions),
            )
            .map_err(|e| {
                let why = match e {
                    EmbedCheckError::Embed(e) => e.to_string(),
                    EmbedCheckError::Count { got, expected } => {
                        format!("it returned {got} vectors for {expected} texts")
                    }
                    EmbedCheckError::Dimensions { got, expected } => {
                        format!("it returned a vector of {got} values, not {expected}")
                    }
                };
                anyhow!("{input}: embedder `{name}` failed: {why}")
            })?;
            out.write(&vector_batch(&schema, ids, &vectors)?)?;
            embedded += ids.len() as u64;
            bar.inc(ids.len() as u64);
        }
        let skipped_here = batch.len() - ids.len();
        bar.inc(skipped_here as u64);
        rows += batch.len() as u64;
    }
    out.finish()?;
    Ok(FileSummary {
        input,
        output: output.display().to_string(),
        embedder: name,
        fingerprint: spec.fingerprint().to_hex(),
        rows,
        embedded,
    })
}

/// Whether `text` may carry `id`: a chunk-hash id (64 hex characters) must be the hash of the
/// text; any other id (a document id) is left to `quarry ingest` to resolve.
fn hash_matches(id: &str, text: &str) -> bool {
    match ContentHash::from_hex(id) {
        Some(h) if id.len() == 64 => h == ContentHash::of(text.as_bytes()),
        _ => true,
    }
}

/// A bar over the rows to embed on a terminal, hidden otherwise.
fn print_summary(s: &Summary, out: &Path) {
    let mut o = String::new();
    let skipped: u64 = s.skipped.values().sum();
    let _ = writeln!(
        o,
        "{} chunks embedded into {} file{} in {}, {skipped} rows skipped, in {:.2}s ({:.1} chunks/s)",
        s.embedded,
        s.files.len(),
        if s.files.len() == 1 { "" } else { "s" },
        out.display(),
        s.seconds,
        s.embedded as f64 / s.seconds.max(1e-3)
    );
    if s.files_skipped > 0 {
        let _ = writeln!(
            o,
            "{} files left alone: their output exists (--skip-existing)",
            s.files_skipped
        );
    }
    if !s.skipped.is_empty() {
        let parts: Vec<String> = s.skipped.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let _ = writeln!(o, "skipped: {}", parts.join(", "));
    }
    const SHOWN: usize = 20;
    for p in s.problems.iter().take(SHOWN) {
        let _ = writeln!(o, "  {} row {}: {}", p.file, p.row, p.reason);
    }
    emit(&o);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_hash_id_must_be_the_hash_of_its_text() {
        let h = ContentHash::of(b"t\nx").to_hex();
        assert!(hash_matches(&h, "t\nx"));
        assert!(!hash_matches(&h, "t\ny"));
        // a document id is not checked
        assert!(hash_matches("doc-1", "anything"));
    }
}
