//! One module per subcommand; each has its clap `Args` and a `run`.

pub(crate) mod bench;
pub(crate) mod collections;
pub(crate) mod embed;
pub(crate) mod export;
pub(crate) mod golden;
pub(crate) mod ingest;
pub(crate) mod model;
pub(crate) mod query;
pub(crate) mod remote;
pub(crate) mod serve;
pub(crate) mod snapshot;
pub(crate) mod status;
pub(crate) mod versions;

use crate::config::Config;
use anyhow::Context;
use quarry_index::{Engine, EngineOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A progress bar on stderr drawn with `template` (indicatif's syntax), or a hidden one when
/// stderr is not a terminal (a log, a pipe, `--json` runs of scripts).
pub(crate) fn progress_bar(total: u64, template: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(total);
    b.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b
}

/// A mistake in how quarry was started (flags, configuration, environment) found after parsing:
/// `main` exits with 2 for it, as for a bad flag.
#[derive(Debug)]
pub(crate) struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The engine options a configuration gives.
pub(crate) fn engine_options(config: &Config) -> EngineOptions {
    EngineOptions {
        chunk: config.chunk,
        bm25: config.bm25,
        embedder: config.embedder.clone(),
        embedders: Some(Arc::new(crate::embedders::ConfigEmbedders::new(config))),
        vector: config.vector,
        embed_batch: config.ingest.embed_batch,
        query_embed_timeout: Duration::from_millis(config.query.embed_timeout_ms),
        query_embed_cache_entries: config.query.embed_cache_entries,
        fusion: config.query.fusion,
        reranker: crate::embedders::ConfigReranker::configured(config),
        default_acl: config.auth.default_acl(),
        reindex_max_ndcg_drop: config.reindex.max_ndcg_drop,
        canary_min_cosine: config.reindex.canary_min_cosine,
        keep_versions: config.reindex.keep_versions,
        ..EngineOptions::default()
    }
}

/// The error of a query asking for reranking when no reranker is configured (exit 2 before
/// anything is opened; the server answers the same as a 400).
pub(crate) fn check_rerank(config: &Config, top_n: Option<usize>) -> anyhow::Result<()> {
    if top_n.is_some() && config.reranker.url.is_none() {
        return Err(UsageError(
            "--rerank-top-n: no reranker is configured; add a [reranker] table with the `url` of a /rerank service (and its `format` and `model`) to quarry.toml, see docs/configuration.md".into(),
        )
        .into());
    }
    Ok(())
}

/// Opens the engine on the data directory with the configured options.
pub(crate) fn open_engine(data_dir: &Path, config: &Config) -> anyhow::Result<Engine> {
    Engine::open(data_dir, engine_options(config))
        .with_context(|| format!("cannot open data dir {}", data_dir.display()))
}

/// Opens the engine for a command that only reads (`status`, `query`): read-only when the data
/// directory cannot be written (permissions, a read-only mount), so it works on a mounted backup
/// and never writes where it may not.
pub(crate) fn open_engine_to_read(data_dir: &Path, config: &Config) -> anyhow::Result<Engine> {
    if writable(data_dir) {
        return open_engine(data_dir, config);
    }
    tracing::info!(data_dir = %data_dir.display(), "the data directory is not writable; reading it read-only");
    let options = quarry_index::EngineOptions {
        read_only: true,
        ..engine_options(config)
    };
    Engine::open(data_dir, options)
        .with_context(|| format!("cannot read data dir {}", data_dir.display()))
}

/// Whether quarry may write in `data_dir`: the directory, and its writer lock file when there
/// is one, open for writing (opening the existing lock file writes nothing). A missing directory
/// counts as writable: opening creates it.
fn writable(data_dir: &Path) -> bool {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    let Ok(meta) = std::fs::metadata(data_dir) else {
        return true;
    };
    if meta.permissions().readonly() {
        return false;
    }
    let lock = std::fs::File::options()
        .write(true)
        .open(data_dir.join("writer.lock"));
    !matches!(lock, Err(e) if matches!(e.kind(), PermissionDenied | ReadOnlyFilesystem))
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    emit(&format!("{}\n", serde_json::to_string_pretty(value)?));
    Ok(())
}

/// Writes `text` to stdout. A closed pipe (`quarry ... | head`) is not an error worth a panic.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    // A temporary file is private (0600); the written file is readable like any other.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::io::Write::write_all(&mut tmp, bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
