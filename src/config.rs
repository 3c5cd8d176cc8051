//! Configuration: one struct, three sources. `quarry.toml` < environment (`QUARRY_SECTION__KEY`,
//! e.g. `QUARRY_CHUNK__MAX_TOKENS=128`) < command-line flags. Unknown keys are rejected with the
//! key named. Every default is written here and in the README's configuration reference.

mod auth;
mod embedder;
mod reranker;

pub(crate) use auth::{ApiKeyConfig, AuthConfig, read_jwks};
pub(crate) use embedder::EmbedderConfig;
pub(crate) use embedder::resolve as embedder_config;
pub(crate) use reranker::RerankerConfig;

use anyhow::{Context, Result, bail};
use quarry_core::{Bm25Params, ChunkOptions, Fusion, GroupBy, Mode};
use quarry_index::vectors::VectorParams;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// Name of the embedder new collections use: a `[embedders.NAME]` table, or one of the
    /// built-ins `local` (all-MiniLM-L6-v2), `hash` (tests only) and `none` (BM25 only).
    pub embedder: String,
    pub embedders: BTreeMap<String, EmbedderConfig>,
    pub chunk: ChunkOptions,
    /// BM25 scoring of collections created from now on (`[bm25]`: `k1`, `b`, `k3`).
    pub bm25: Bm25Params,
    pub vector: VectorParams,
    pub ingest: IngestConfig,
    pub server: ServerConfig,
    pub query: QueryConfig,
    pub reranker: RerankerConfig,
    pub auth: AuthConfig,
    pub eval: EvalConfig,
    pub reindex: ReindexConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            embedder: "local".into(),
            embedders: BTreeMap::new(),
            chunk: ChunkOptions::default(),
            bm25: Bm25Params::default(),
            vector: VectorParams::default(),
            ingest: IngestConfig::default(),
            server: ServerConfig::default(),
            query: QueryConfig::default(),
            reranker: RerankerConfig::default(),
            auth: AuthConfig::default(),
            eval: EvalConfig::default(),
            reindex: ReindexConfig::default(),
            log: LogConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct IngestConfig {
    /// Files (and JSONL lines) larger than this are skipped as `too_large`.
    pub max_file_bytes: u64,
    /// Documents per commit at most (an ingest's first batches are smaller).
    pub batch_docs: usize,
    /// Chunk texts per call to the embedder.
    pub embed_batch: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_file_bytes: 32 * 1024 * 1024,
            batch_docs: 2000,
            embed_batch: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    pub addr: String,
    pub body_limit_bytes: usize,
    pub request_timeout_ms: u64,
    /// After SIGTERM or Ctrl-C, how long in-flight requests may take before the server stops
    /// without them (writes not yet committing are cancelled at once, committing nothing).
    pub shutdown_grace_ms: u64,
    /// Where `POST /v1/snapshots` writes snapshots; default `<data-dir>-snapshots` beside the
    /// data directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_dir: Option<PathBuf>,
    /// Most queries in one `POST /v1/collections/{c}/query/batch`.
    pub max_batch_queries: usize,
    /// Most searches running at once (queries and batches); default two per core.
    pub max_concurrent_queries: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: "127.0.0.1:7878".into(),
            body_limit_bytes: 8 * 1024 * 1024,
            request_timeout_ms: 30_000,
            shutdown_grace_ms: 10_000,
            snapshot_dir: None,
            max_batch_queries: 32,
            max_concurrent_queries: quarry_server::default_concurrent_queries(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct QueryConfig {
    pub top_k: usize,
    pub mode: Mode,
    pub group_by: GroupBy,
    /// Fusion of hybrid queries: `{method = "adaptive", alpha = 0.6, gap_at = 10, strength = 1}`
    /// (the default), `{method = "weighted", alpha = 0.6}` or `{method = "rrf", k = 60}`.
    pub fusion: Fusion,
    /// How long a query waits for its embedding before answering from BM25 (`degraded: true`).
    pub embed_timeout_ms: u64,
    /// Query vectors kept in memory by embedding version and query text, so a repeated query is
    /// not embedded again; 0 turns the cache off.
    pub embed_cache_entries: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            top_k: 10,
            mode: Mode::Hybrid,
            group_by: GroupBy::Chunk,
            fusion: Fusion::default(),
            embed_timeout_ms: 2000,
            embed_cache_entries: 10_000,
        }
    }
}

/// `[eval]`: scheduled evaluation of golden sets by the server, and its drift alarm.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct EvalConfig {
    /// How often `quarry serve` runs every golden set of every collection, e.g. "30m", "6h",
    /// "90s" (at start-up, then once per interval). Unset: only on demand.
    pub interval: Option<String>,
    /// The drift alarm goes off when a run's nDCG@10 is more than this (absolute) below the best
    /// of the `window` comparable runs before it.
    pub alert_drop: f64,
    /// How many earlier runs of the same golden set and settings the alarm compares with.
    pub window: usize,
    /// Documents per query of a scheduled run.
    pub top_k: usize,
    /// Run as this user (a reader; the ACLs apply) instead of as an admin.
    pub user: Option<String>,
    /// Groups of `user`.
    pub groups: Vec<String>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            interval: None,
            alert_drop: 0.02,
            window: 10,
            top_k: 100,
            user: None,
            groups: Vec::new(),
        }
    }
}

impl EvalConfig {
    /// The parsed `interval` (`None`: no scheduled evaluation).
    pub(crate) fn interval(&self) -> Result<Option<std::time::Duration>> {
        let Some(raw) = &self.interval else {
            return Ok(None);
        };
        let d = humantime::parse_duration(raw.trim()).map_err(|e| {
            anyhow::anyhow!(
                "eval.interval {raw:?}: {e}; write a duration such as \"90s\", \"30m\" or \"6h\""
            )
        })?;
        if d < std::time::Duration::from_secs(1) {
            bail!("eval.interval {raw:?}: use at least 1s");
        }
        Ok(Some(d))
    }

    /// Who scheduled runs are evaluated as: `user` and `groups` as a reader, else the local admin.
    pub(crate) fn principal(&self) -> Result<quarry_core::Principal> {
        let Some(user) = &self.user else {
            if !self.groups.is_empty() {
                bail!("eval.groups needs eval.user");
            }
            return Ok(quarry_core::Principal::local_admin());
        };
        quarry_core::Principal::checked(user, self.groups.clone(), quarry_core::Role::Reader)
            .map_err(|b| anyhow::anyhow!("eval.{} {:?}: {}", b.field, b.id, b.acl_error()))
    }

    fn validate(&self) -> Result<()> {
        self.interval()?;
        self.principal()?;
        if !(0.0..=1.0).contains(&self.alert_drop) {
            bail!(
                "eval.alert_drop {} must be between 0 and 1 (an absolute nDCG@10 drop)",
                self.alert_drop
            );
        }
        if self.window == 0 {
            bail!("eval.window must be at least 1");
        }
        if !(1..=quarry_core::MAX_TOP_K).contains(&self.top_k) {
            bail!(
                "eval.top_k must be between 1 and {}",
                quarry_core::MAX_TOP_K
            );
        }
        Ok(())
    }
}

/// `[log]`: how logs are written (what is logged is `QUARRY_LOG`, read before any file).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// `text` (readable lines) or `json` (one object per line); `QUARRY_LOG_FORMAT` overrides it.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[reindex]`: embedding-model changes and re-index jobs.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ReindexConfig {
    /// What `quarry serve` does when a collection's embedder is now configured with another
    /// fingerprint than its active version: `auto` queues a re-index, `manual` logs the command.
    pub on_model_change: OnModelChange,
    /// A re-index is promoted only if its nDCG@10 on each golden set of the collection is at least
    /// the active version's minus this.
    pub max_ndcg_drop: f64,
    /// A canary check whose lowest cosine is below this reports an embedding drift.
    pub canary_min_cosine: f64,
    /// Versions kept with an index after a switch: the active one and the `keep_versions - 1`
    /// that served most recently; older ones are retired. 0 keeps all.
    pub keep_versions: usize,
    /// How often `quarry serve` re-embeds each active version's canary set ("1h", "30m"; at
    /// start-up, then once per interval). "off" disables it.
    pub canary_interval: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnModelChange {
    Auto,
    Manual,
}

impl ReindexConfig {
    /// The parsed `canary_interval` (`None`: off).
    pub(crate) fn canary_interval(&self) -> Result<Option<std::time::Duration>> {
        let raw = self.canary_interval.trim();
        if raw == "off" {
            return Ok(None);
        }
        let d = humantime::parse_duration(raw).map_err(|e| {
            anyhow::anyhow!(
                "reindex.canary_interval {raw:?}: {e}; write a duration such as \"1h\", or \"off\""
            )
        })?;
        if d < std::time::Duration::from_secs(1) {
            bail!("reindex.canary_interval {raw:?}: use at least 1s, or \"off\"");
        }
        Ok(Some(d))
    }
}

impl Default for ReindexConfig {
    fn default() -> Self {
        ReindexConfig {
            on_model_change: OnModelChange::Auto,
            max_ndcg_drop: 0.01,
            canary_min_cosine: 0.99,
            keep_versions: 2,
            canary_interval: "1h".into(),
        }
    }
}

/// Environment variables that are not config keys: options of the binary itself, the folder of
/// the BEIR datasets that the ignored SciFact tests and the benches read, and the Python client's
/// server URL and the test scripts' binary (set in the same shells as quarry's own).
const RESERVED_ENV: &[&str] = &[
    "QUARRY_URL",
    "QUARRY_BIN",
    "QUARRY_DATA_DIR",
    "QUARRY_CONFIG",
    "QUARRY_LOG",
    "QUARRY_LOG_FORMAT",
    "QUARRY_TOKEN",
    "QUARRY_MODEL_DIR",
    "QUARRY_DATASETS",
];

/// Largest `server.max_concurrent_queries`: beyond a few per core searches only share the
/// cores more thinly.
const MAX_CONCURRENT_QUERIES: usize = 4096;

/// Largest `server.max_batch_queries`: a batch is one request, bounded like one.
const MAX_BATCH_QUERIES: usize = 1000;

/// Largest `query.embed_cache_entries` (about 1.6 KB each at 384 dimensions: 1.6 GB).
const MAX_EMBED_CACHE_ENTRIES: usize = 1_000_000;

/// Prefixes of environment variables that are not config keys: the benches' settings
/// (`QUARRY_BENCH_DATA_DIR`, `QUARRY_BENCH_DOCS`, ...) and the load test's (`QUARRY_LOAD_SECS`, ...).
/// No configuration section is named `bench_*` or `load_*`, so no key is hidden by them.
const RESERVED_ENV_PREFIXES: &[&str] = &["QUARRY_BENCH_", "QUARRY_LOAD_"];

/// Whether `name` is a `QUARRY_*` variable that is not a configuration key.
fn is_reserved_env(name: &str) -> bool {
    RESERVED_ENV.contains(&name) || RESERVED_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// [`load_reporting`] with the warnings logged, for the tests.
#[cfg(test)]
pub(crate) fn load(
    file: Option<&Path>,
    data_dir: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config> {
    let (config, warnings) = load_reporting(file, data_dir, env)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

/// Loads the configuration: `file` if given (it must exist), else `<data_dir>/quarry.toml` if
/// present; then the `QUARRY_SECTION__KEY` variables of `env`. A `QUARRY_*` variable whose first
/// part names no setting (`QUARRY_HOME`, set by something else) is ignored with a warning,
/// returned for the caller to log once logging is set up (`[log]` says how); one that names a
/// section is a key of it, checked like the file's. An error names where the bad value came
/// from: the file, or the variable.
pub(crate) fn load_reporting(
    file: Option<&Path>,
    data_dir: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(Config, Vec<String>)> {
    let default = data_dir.join("quarry.toml");
    let source = match file {
        Some(path) => Some(path.to_path_buf()),
        None => default.exists().then_some(default),
    };
    let table = match &source {
        Some(path) => read_table(path)?,
        None => toml::Table::new(),
    };
    // The variable holding the JWT secret is not a configuration key, whatever its name.
    let secret_env = table
        .get("auth")
        .and_then(|a| a.get("jwt"))
        .and_then(|j| j.get("hs256_secret_env"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let sections = top_level_keys();
    let mut vars = Vec::new();
    let mut warnings = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("QUARRY_") else {
            continue;
        };
        if is_reserved_env(&name) || secret_env.as_deref() == Some(name.as_str()) {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if !sections.contains(&path[0]) {
            warnings.push(format!(
                "ignoring the environment variable {name}: it is not a quarry setting (settings are QUARRY_SECTION__KEY, such as QUARRY_CHUNK__MAX_TOKENS; docs/configuration.md)"
            ));
            continue;
        }
        vars.push((name, path, parse_env_value(&value)));
    }
    // One order whatever the environment's, so that the same variables blame the same one.
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged = table.clone();
    for (name, path, value) in &vars {
        set_path(&mut merged, path, value.clone())
            .with_context(|| format!("environment variable {name}"))?;
    }
    let config = build(merged).map_err(|e| blame(e, source.as_deref(), table, &vars))?;
    Ok((config, warnings))
}

/// The names of the top-level settings (`embedder` and the sections).
fn top_level_keys() -> Vec<String> {
    match toml::Value::try_from(Config::default()) {
        Ok(toml::Value::Table(t)) => t.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// `e`, the error of the whole configuration, with the source that made it: the file when the
/// file alone is refused, else the first variable (in name order) whose value is refused on top
/// of the file and the variables before it.
fn blame(
    e: anyhow::Error,
    file: Option<&Path>,
    mut table: toml::Table,
    vars: &[(String, Vec<String>, toml::Value)],
) -> anyhow::Error {
    if let Some(path) = file
        && build(table.clone()).is_err()
    {
        return e.context(format!("config file {}", path.display()));
    }
    for (name, path, value) in vars {
        if set_path(&mut table, path, value.clone()).is_err() || build(table.clone()).is_err() {
            return e.context(format!("environment variable {name}"));
        }
    }
    e
}

/// The configuration a merged table gives, checked.
fn build(table: toml::Table) -> Result<Config> {
    let config: Config =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let message = e.inner().message().trim().to_owned();
            match e.path().to_string() {
                p if p == "." => anyhow::anyhow!("invalid configuration: {message}"),
                p => anyhow::anyhow!("invalid configuration: {p}: {message}"),
            }
        })?;
    config
        .chunk
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    config
        .bm25
        .check()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    if !(1..=quarry_core::MAX_TOP_K).contains(&config.query.top_k) {
        bail!(
            "invalid configuration: query.top_k must be between 1 and {}",
            quarry_core::MAX_TOP_K
        );
    }
    if !(1..=MAX_BATCH_QUERIES).contains(&config.server.max_batch_queries) {
        bail!(
            "invalid configuration: server.max_batch_queries must be between 1 and {MAX_BATCH_QUERIES}"
        );
    }
    if !(1..=MAX_CONCURRENT_QUERIES).contains(&config.server.max_concurrent_queries) {
        bail!(
            "invalid configuration: server.max_concurrent_queries must be between 1 and {MAX_CONCURRENT_QUERIES}"
        );
    }
    if config.query.embed_cache_entries > MAX_EMBED_CACHE_ENTRIES {
        bail!(
            "invalid configuration: query.embed_cache_entries must be at most {MAX_EMBED_CACHE_ENTRIES} (0 turns the cache off)"
        );
    }
    if config.ingest.batch_docs == 0 {
        bail!("invalid configuration: ingest.batch_docs must be at least 1");
    }
    if config.ingest.embed_batch == 0 {
        bail!("invalid configuration: ingest.embed_batch must be at least 1");
    }
    config.query.fusion.validate().map_err(|e| match e {
        quarry_core::Error::Invalid { what, why } => {
            anyhow::anyhow!("invalid configuration: query.{what}: {why}")
        }
    })?;
    config
        .vector
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    config
        .auth
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e:#}"))?;
    config
        .reindex
        .canary_interval()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e:#}"))?;
    if !(-1.0..=1.0).contains(&config.reindex.canary_min_cosine) {
        bail!(
            "invalid configuration: reindex.canary_min_cosine {} must be between -1 and 1",
            config.reindex.canary_min_cosine
        );
    }
    if !(0.0..=1.0).contains(&config.reindex.max_ndcg_drop) {
        bail!(
            "invalid configuration: reindex.max_ndcg_drop {} must be between 0 and 1",
            config.reindex.max_ndcg_drop
        );
    }
    config
        .eval
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e:#}"))?;
    config
        .reranker
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e:#}"))?;
    embedder::check(&config.embedders, &config.embedder)?;
    Ok(config)
}

fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    text.parse::<toml::Table>()
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message().trim()))
}

/// Env values are TOML values when they parse as one (`128`, `true`, `"x"`), else strings.
fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<()> {
    match path {
        [] => bail!("empty key"),
        [key] => {
            table.insert(key.clone(), value);
            Ok(())
        }
        [section, rest @ ..] => {
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => bail!("`{section}` is not a table"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
