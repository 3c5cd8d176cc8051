//! One module per subcommand; each has its clap `Args` and a `run`.

pub(crate) mod bench;
pub(crate) mod collections;
pub(crate) mod completions;
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

/// A collection name given on the command line, checked by the engine's own rule when the flags
/// are parsed (exit 2, before any data directory is opened or created).
pub(crate) fn collection_name(s: &str) -> Result<String, String> {
    quarry_index::catalog::check_collection_name(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// `e` as a usage error (exit 2) when the engine blames the caller's input (a bad name or
/// value given on the command line), else unchanged (a conflict with the data directory's state,
/// such as a job already rebuilding the collection, stays a runtime failure: exit 1).
pub(crate) fn usage_if_input(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<quarry_index::Error>() {
        Some(ie)
            if ie.kind() == quarry_index::ErrorKind::Input
                && !matches!(ie, quarry_index::Error::Conflict(_)) =>
        {
            UsageError(ie.to_string()).into()
        }
        _ => e,
    }
}

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
    open_engine_with(data_dir, engine_options(config))
}

/// [`open_engine`] with options of the caller's own (`quarry serve` defers the catalog check).
pub(crate) fn open_engine_with(data_dir: &Path, options: EngineOptions) -> anyhow::Result<Engine> {
    Engine::open(data_dir, options)
        .with_context(|| format!("cannot open data dir {}", data_dir.display()))
}

/// Opens the engine of a data directory that must exist already: for the commands that read it
/// or change what is in it, which would otherwise create an empty one (at a mistyped
/// `--data-dir`, or when run from another folder) and then report that nothing is there.
pub(crate) fn open_existing_engine(data_dir: &Path, config: &Config) -> anyhow::Result<Engine> {
    require_data_dir(data_dir)?;
    open_engine(data_dir, config)
}

/// The error of a command run on a data directory that does not exist: what to do instead.
pub(crate) fn require_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    if data_dir.exists() {
        return Ok(());
    }
    anyhow::bail!(
        "data directory {} does not exist; create it with `quarry ingest PATH` (or `quarry collections create NAME`), or name an existing one with --data-dir or QUARRY_DATA_DIR",
        data_dir.display()
    )
}

/// `e` with the collections of the data directory when it says a collection was not found, so
/// that a mistyped name is seen at once. Any other error, or a directory that cannot be read,
/// gives `e` unchanged.
pub(crate) fn with_collections_here(
    e: anyhow::Error,
    data_dir: &Path,
    config: &Config,
) -> anyhow::Error {
    let missing = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<quarry_index::Error>(),
            Some(quarry_index::Error::NotFound {
                what: "collection",
                ..
            })
        )
    });
    if !missing || !data_dir.join("catalog.sqlite3").is_file() {
        return e;
    }
    let options = EngineOptions {
        read_only: true,
        ..engine_options(config)
    };
    let Ok(rows) = Engine::open(data_dir, options).and_then(|engine| engine.collections()) else {
        return e;
    };
    let names: Vec<String> = rows.into_iter().map(|c| c.name).collect();
    let here = if names.is_empty() {
        "there is no collection yet in this data directory".to_owned()
    } else {
        format!("the collections here are: {}", names.join(", "))
    };
    anyhow::anyhow!("{e:#}; {here} (quarry collections list)")
}

/// Opens the engine for a command that only reads (`status`, `query`): read-only when the data
/// directory cannot be written (permissions, a read-only mount), so it works on a mounted backup
/// and never writes where it may not. A data directory that does not exist is an error.
pub(crate) fn open_engine_to_read(data_dir: &Path, config: &Config) -> anyhow::Result<Engine> {
    require_data_dir(data_dir)?;
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
