//! Building the bench's collection the way a user would: the generated documents and vectors
//! written to the work folder, then loaded by this same binary as child processes, `quarry ingest
//! --no-embed docs.jsonl` and `quarry ingest vectors.parquet --vectors-spec EMBEDDER` (the bring-
//! your-own-vectors path: no model call). Each stage is timed, and the result checked: every
//! document one chunk, every chunk a vector, nothing embedded. Then the sizes on disk.

use super::corpus::Corpus;
use super::report::{Sizes, Stage};
use super::words::Vocabulary;
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The collection the bench builds and queries.
pub(super) const COLLECTION: &str = "scale";
/// The bench's own folder in the data directory (inputs, manifest).
pub(super) const WORK_DIR: &str = "bench-scale";
/// Names of the stages whose seconds make `build_seconds`.
pub(super) const ENGINE_STAGES: [&str; 2] = ["ingest documents", "ingest vectors"];
/// Names of the stages of `--reingest`: the same two ingests of unchanged inputs.
pub(super) const REINGEST_STAGES: [&str; 2] = ["re-ingest documents", "re-ingest vectors"];
/// The stage of `--rebuild-index`.
pub(super) const REBUILD_STAGE: &str = "rebuild the vector index";

/// How to run this binary on the bench's data directory.
pub(super) struct Quarry<'a> {
    pub(super) exe: &'a Path,
    pub(super) data_dir: &'a Path,
    pub(super) config: &'a Path,
}

impl Quarry<'_> {
    /// Runs `quarry ARGS... --json` (its stderr, with any progress bar, shown) and parses its
    /// output.
    fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        Ok(self.measured(args)?.0)
    }

    /// [`Quarry::json`], and the child's peak resident memory (`VmHWM`, read every
    /// [`PEAK_POLL`] until it exits: growth in its last moments can be missed).
    fn measured(&self, args: &[&str]) -> anyhow::Result<(Value, u64)> {
        let mut child = Command::new(self.exe)
            .arg("--data-dir")
            .arg(self.data_dir)
            .arg("--config")
            .arg(self.config)
            .args(args)
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {}", self.exe.display()))?;
        let mut stdout = child.stdout.take().context("the child has no stdout")?;
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut stdout, &mut out).map(|_| out)
        });
        let mut peak = 0;
        let status = loop {
            let waited = child.try_wait();
            if waited.is_err() {
                let _ = child.kill();
            }
            if let Some(status) = waited.context("cannot wait for the child")? {
                break status;
            }
            // (the file goes when the child exits: the last good reading stands)
            if let Ok(m) = super::server::memory_of(child.id()) {
                peak = peak.max(m.peak);
            }
            std::thread::sleep(PEAK_POLL);
        };
        let out = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the child's output reader panicked"))?
            .context("cannot read the child's output")?;
        if !status.success() {
            bail!("quarry {} failed ({status})", args.join(" "));
        }
        let value = serde_json::from_slice(&out)
            .with_context(|| format!("quarry {}: the output is not JSON", args.join(" ")))?;
        Ok((value, peak))
    }

    /// Runs `quarry ARGS... --json` as the stage `name` over `n` chunks, with its peak memory.
    pub(super) fn stage(
        &self,
        name: &str,
        n: usize,
        stages: &mut Vec<Stage>,
        args: &[&str],
    ) -> anyhow::Result<Value> {
        let mut peak = 0;
        let value = stage(name, n, stages, || {
            let (value, p) = self.measured(args)?;
            peak = p;
            Ok(value)
        })?;
        if let Some(s) = stages.last_mut() {
            // (0: no reading succeeded, so none is reported)
            s.peak_rss_bytes = (peak > 0).then_some(peak);
        }
        Ok(value)
    }
}

/// How often a child's peak memory is read.
const PEAK_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// A progress bar on stderr when it is a terminal.
pub(super) fn bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    let template = format!("{what} [{{bar:30}}] {{pos}}/{{len}} eta {{eta}}");
    b.set_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b
}

/// Times `f` as the stage `name` over `n` chunks.
pub(super) fn stage<T>(
    name: &str,
    n: usize,
    stages: &mut Vec<Stage>,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    eprintln!("bench: {name}…");
    let t = Instant::now();
    let out = f()?;
    let seconds = t.elapsed().as_secs_f64();
    stages.push(Stage {
        stage: name.to_owned(),
        seconds,
        chunks_per_second: n as f64 / seconds.max(1e-9),
        peak_rss_bytes: None,
    });
    Ok(out)
}

/// The count `key` of an ingest summary.
fn count(summary: &Value, key: &str) -> u64 {
    summary[key].as_u64().unwrap_or(u64::MAX)
}

/// The inputs, written into the bench's folder.
struct Inputs {
    docs: PathBuf,
    vectors: PathBuf,
}

impl Inputs {
    /// Writes the generated documents and vectors into `work` (each write a stage, named with
    /// "again" the second time).
    fn write(
        corpus: &Corpus,
        vocabulary: &Vocabulary,
        seed: u64,
        work: &Path,
        again: bool,
        stages: &mut Vec<Stage>,
    ) -> anyhow::Result<Inputs> {
        let n = corpus.n;
        let inputs = Inputs {
            docs: work.join("docs.jsonl"),
            vectors: work.join("vectors.parquet"),
        };
        let again = if again { " again" } else { "" };
        stage(&format!("write docs.jsonl{again}"), n, stages, || {
            let b = bar(n as u64, "docs.jsonl");
            corpus.write_documents(vocabulary, seed, &inputs.docs, &b)?;
            b.finish_and_clear();
            Ok(())
        })?;
        stage(&format!("write vectors.parquet{again}"), n, stages, || {
            let b = bar(n as u64, "vectors.parquet");
            corpus.write_vectors(&inputs.vectors, &b)?;
            b.finish_and_clear();
            Ok(())
        })?;
        Ok(inputs)
    }

    /// Ingests the documents, then the vectors, as the stages `names`; returns both summaries.
    fn ingest(
        &self,
        q: &Quarry<'_>,
        n: usize,
        embedder: &str,
        names: [&str; 2],
        stages: &mut Vec<Stage>,
    ) -> anyhow::Result<(Value, Value)> {
        let arg = |p: &Path| {
            p.to_str()
                .map(str::to_owned)
                .context("the data directory's path is not UTF-8")
        };
        let (docs, vectors) = (arg(&self.docs)?, arg(&self.vectors)?);
        let documents = q.stage(
            names[0],
            n,
            stages,
            &["ingest", "--collection", COLLECTION, "--no-embed", &docs],
        )?;
        let loaded = q.stage(
            names[1],
            n,
            stages,
            &[
                "ingest",
                "--collection",
                COLLECTION,
                "--vectors-spec",
                embedder,
                &vectors,
            ],
        )?;
        Ok((documents, loaded))
    }

    fn remove(self) -> anyhow::Result<()> {
        for p in [&self.docs, &self.vectors] {
            std::fs::remove_file(p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
        Ok(())
    }
}

/// What the bench builds from: the generated corpus, and where its inputs are written.
pub(super) struct Source<'a> {
    pub(super) corpus: &'a Corpus,
    pub(super) vocabulary: &'a Vocabulary,
    pub(super) seed: u64,
    /// The embedder the vectors are loaded for.
    pub(super) embedder: &'a str,
    /// The bench's folder.
    pub(super) work: &'a Path,
}

impl Source<'_> {
    /// Writes the inputs and ingests them as the stages `names`; returns the inputs and both
    /// summaries.
    fn ingest(
        &self,
        q: &Quarry<'_>,
        names: [&str; 2],
        stages: &mut Vec<Stage>,
    ) -> anyhow::Result<(Inputs, Value, Value)> {
        let again = names == REINGEST_STAGES;
        let inputs = Inputs::write(
            self.corpus,
            self.vocabulary,
            self.seed,
            self.work,
            again,
            stages,
        )?;
        let (documents, vectors) = inputs.ingest(q, self.corpus.n, self.embedder, names, stages)?;
        Ok((inputs, documents, vectors))
    }
}

/// Writes the inputs into `work`, ingests them, checks the result, and deletes the inputs.
pub(super) fn build(
    q: &Quarry<'_>,
    source: &Source<'_>,
    stages: &mut Vec<Stage>,
) -> anyhow::Result<()> {
    let n = source.corpus.n;
    let (inputs, summary, vectors) = source.ingest(q, ENGINE_STAGES, stages)?;
    let (added, chunks, embedded) = (
        count(&summary, "added"),
        count(&summary, "chunks"),
        count(&summary, "embedded"),
    );
    if added != n as u64 || chunks != n as u64 || embedded != 0 {
        bail!(
            "the ingest of {n} generated documents gave {added} added, {chunks} chunks, {embedded} \
             embedded; expected {n}, {n} and 0 (one chunk per document, no model): {summary}"
        );
    }
    let loaded = vectors["vectors"]["vectors_loaded"].as_u64().unwrap_or(0);
    if loaded != n as u64 || count(&vectors, "embedded") != 0 {
        bail!("loading {n} generated vectors loaded {loaded}: {vectors}");
    }
    inputs.remove()?;
    check(q, n as u64)
}

/// Writes the same inputs again and ingests them into the collection they built: nothing may
/// change (no document added or updated, nothing embedded, no vector loaded anew). Its two
/// ingests are the stages [`REINGEST_STAGES`].
pub(super) fn reingest(
    q: &Quarry<'_>,
    source: &Source<'_>,
    stages: &mut Vec<Stage>,
) -> anyhow::Result<()> {
    let n = source.corpus.n;
    let (inputs, summary, vectors) = source.ingest(q, REINGEST_STAGES, stages)?;
    let changed = ["added", "updated", "embedded"].map(|k| count(&summary, k));
    let v = &vectors["vectors"];
    let (loaded, unchanged) = (count(v, "vectors_loaded"), count(v, "vectors_unchanged"));
    if changed != [0, 0, 0]
        || count(&summary, "unchanged") != n as u64
        || (loaded, unchanged) != (0, n as u64)
        || count(&vectors, "embedded") != 0
    {
        bail!(
            "re-ingesting the unchanged {n} documents and vectors changed something: {summary} \
             {vectors}"
        );
    }
    inputs.remove()?;
    check(q, n as u64)
}

/// Checks, as `quarry status` sees it, that the collection holds `n` documents of one chunk with a
/// vector each.
pub(super) fn check(q: &Quarry<'_>, n: u64) -> anyhow::Result<()> {
    let status = q.json(&["status"])?;
    let c = status["collections"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == COLLECTION))
        .with_context(|| format!("the data directory has no collection `{COLLECTION}`"))?;
    let (docs, chunks, vectors) = (
        count(c, "documents"),
        count(c, "chunks"),
        count(c, "vectors"),
    );
    if docs != n || chunks != n || vectors != n {
        bail!(
            "collection `{COLLECTION}` holds {docs} documents, {chunks} chunks and {vectors} \
             vectors; the bench expects {n} of each"
        );
    }
    Ok(())
}

/// Bytes of the files under `path` (0 when it does not exist), leaving out `skip`.
fn du(path: &Path, skip: Option<&Path>) -> u64 {
    if skip == Some(path) {
        return 0;
    }
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map_or(0, |entries| {
        entries.flatten().map(|e| du(&e.path(), skip)).sum()
    })
}

/// The sizes on disk of the data directory's catalog, the collection's indexes and the whole.
pub(super) fn sizes(data_dir: &Path) -> Sizes {
    let collection = data_dir.join("collections").join(COLLECTION);
    let catalog = [
        "catalog.sqlite3",
        "catalog.sqlite3-wal",
        "catalog.sqlite3-shm",
    ]
    .iter()
    .map(|f| du(&data_dir.join(f), None))
    .sum();
    Sizes {
        catalog_bytes: catalog,
        bm25_bytes: du(&collection.join("bm25"), None),
        vectors_bytes: du(&collection.join("vectors"), None),
        total_bytes: du(data_dir, Some(&data_dir.join(WORK_DIR))),
    }
}

/// Rebuilds the collection's vector index from its `n` stored vectors (`quarry reindex
/// --rebuild-index`) as the stage [`REBUILD_STAGE`]; checks the job succeeded with every point
/// and nothing embedded, and that the collection is unchanged.
pub(super) fn rebuild_index(q: &Quarry<'_>, n: u64, stages: &mut Vec<Stage>) -> anyhow::Result<()> {
    let job = q.stage(
        REBUILD_STAGE,
        n as usize,
        stages,
        &["reindex", "--collection", COLLECTION, "--rebuild-index"],
    )?;
    let result = &job["result"];
    if job["state"] != "succeeded"
        || result["points"].as_u64() != Some(n)
        || job["embedded"].as_u64() != Some(0)
    {
        bail!(
            "rebuilding the vector index of {n} chunks did not end with {n} points and nothing \
             embedded: {job}"
        );
    }
    check(q, n)
}
