//! Configuration: one struct, three sources. `quarry.toml` < environment (`QUARRY_SECTION__KEY`,
//! e.g. `QUARRY_CHUNK__MAX_TOKENS=128`) < command-line flags. Unknown keys are rejected with the
//! key named. Every default is written here and in the README's configuration reference.

mod auth;

pub use auth::{AuthConfig, read_jwks};

use anyhow::{Context, Result, bail};
use quarry_core::{ChunkOptions, Fusion, GroupBy, Mode};
use quarry_index::vectors::VectorParams;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Name of the embedder new collections use: a `[embedders.NAME]` table, or one of the
    /// built-ins `local` (all-MiniLM-L6-v2), `hash` (tests only) and `none` (BM25 only).
    pub embedder: String,
    pub embedders: BTreeMap<String, EmbedderConfig>,
    pub chunk: ChunkOptions,
    pub vector: VectorParams,
    pub ingest: IngestConfig,
    pub server: ServerConfig,
    pub query: QueryConfig,
    pub auth: AuthConfig,
    pub eval: EvalConfig,
    pub reindex: ReindexConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            embedder: "local".into(),
            embedders: BTreeMap::new(),
            chunk: ChunkOptions::default(),
            vector: VectorParams::default(),
            ingest: IngestConfig::default(),
            server: ServerConfig::default(),
            query: QueryConfig::default(),
            auth: AuthConfig::default(),
            eval: EvalConfig::default(),
            reindex: ReindexConfig::default(),
        }
    }
}

/// `[embedders.NAME]`: one embedder. `provider` is `local`, `openai` or `hash`.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderConfig {
    pub provider: String,
    /// local: a model quarry can fetch (`all-MiniLM-L6-v2`); openai: the provider's model string.
    pub model: Option<String>,
    /// local: a folder in Hugging Face layout (config.json, tokenizer.json, model.safetensors).
    pub model_dir: Option<PathBuf>,
    /// openai: e.g. `http://127.0.0.1:7879/v1`.
    pub base_url: Option<String>,
    /// openai: name of the environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// openai: requested dimensions (probed when unset); hash: vector size (default 384).
    pub dimensions: Option<usize>,
    /// openai: texts per request (default 64).
    pub batch_size: Option<usize>,
    /// openai: requests in flight (default 4).
    pub max_concurrency: Option<usize>,
    /// openai: per-request timeout in ms (default 30000).
    pub timeout_ms: Option<u64>,
    /// openai: retries after the first attempt (default 5).
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Files (and JSONL lines) larger than this are skipped as `too_large`.
    pub max_file_bytes: u64,
    /// Documents per commit.
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
pub struct ServerConfig {
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: "127.0.0.1:7878".into(),
            body_limit_bytes: 8 * 1024 * 1024,
            request_timeout_ms: 30_000,
            shutdown_grace_ms: 10_000,
            snapshot_dir: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    pub top_k: usize,
    pub mode: Mode,
    pub group_by: GroupBy,
    /// Fusion of hybrid queries: `{method = "weighted", alpha = 0.6}` (the default) or
    /// `{method = "rrf", k = 60}`.
    pub fusion: Fusion,
    /// How long a query waits for its embedding before answering from BM25 (`degraded: true`).
    pub embed_timeout_ms: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            top_k: 10,
            mode: Mode::Hybrid,
            group_by: GroupBy::Chunk,
            fusion: Fusion::default(),
            embed_timeout_ms: 2000,
        }
    }
}

/// `[eval]`: scheduled evaluation of golden sets by the server, and its drift alarm.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
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
    pub fn interval(&self) -> Result<Option<std::time::Duration>> {
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
    pub fn principal(&self) -> Result<quarry_core::Principal> {
        let Some(user) = &self.user else {
            if !self.groups.is_empty() {
                bail!("eval.groups needs eval.user");
            }
            return Ok(quarry_core::Principal::local_admin());
        };
        for (what, id) in
            std::iter::once(("user", user)).chain(self.groups.iter().map(|g| ("group", g)))
        {
            quarry_core::acl::check_principal(&format!("{what}:{id}"))
                .map_err(|e| anyhow::anyhow!("eval.{what} {id:?}: {e}"))?;
        }
        Ok(quarry_core::Principal::new(
            user.clone(),
            self.groups.clone(),
            quarry_core::Role::Reader,
        ))
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

/// `[reindex]`: embedding-model changes and re-index jobs.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReindexConfig {
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
pub enum OnModelChange {
    Auto,
    Manual,
}

impl ReindexConfig {
    /// The parsed `canary_interval` (`None`: off).
    pub fn canary_interval(&self) -> Result<Option<std::time::Duration>> {
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

/// Environment variables that are options of the binary itself, not config keys.
const RESERVED_ENV: &[&str] = &[
    "QUARRY_DATA_DIR",
    "QUARRY_CONFIG",
    "QUARRY_LOG",
    "QUARRY_TOKEN",
    "QUARRY_MODEL_DIR",
];

/// Loads the configuration: `file` if given (it must exist), else `<data_dir>/quarry.toml` if
/// present; then the `QUARRY_SECTION__KEY` variables of `env`.
pub fn load(
    file: Option<&Path>,
    data_dir: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config> {
    let mut table = match file {
        Some(path) => read_table(path)?,
        None => {
            let default = data_dir.join("quarry.toml");
            if default.exists() {
                read_table(&default)?
            } else {
                toml::Table::new()
            }
        }
    };
    // The variable holding the JWT secret is not a configuration key, whatever its name.
    let secret_env = table
        .get("auth")
        .and_then(|a| a.get("jwt"))
        .and_then(|j| j.get("hs256_secret_env"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("QUARRY_") else {
            continue;
        };
        if RESERVED_ENV.contains(&name.as_str()) || secret_env.as_deref() == Some(name.as_str()) {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        set_path(&mut table, &path, parse_env_value(&value))
            .with_context(|| format!("environment variable {name}"))?;
    }
    let config: Config = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| {
            anyhow::anyhow!("invalid configuration: {}", e.message().trim())
        })?;
    config
        .chunk
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    if !(1..=quarry_core::MAX_TOP_K).contains(&config.query.top_k) {
        bail!(
            "invalid configuration: query.top_k must be between 1 and {}",
            quarry_core::MAX_TOP_K
        );
    }
    if config.ingest.batch_docs == 0 {
        bail!("invalid configuration: ingest.batch_docs must be at least 1");
    }
    if config.ingest.embed_batch == 0 {
        bail!("invalid configuration: ingest.embed_batch must be at least 1");
    }
    config
        .query
        .fusion
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: query.{e}"))?;
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
    crate::embedders::check(&config)?;
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
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_then_env_precedence_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.toml");
        std::fs::write(
            &file,
            "[chunk]\nmax_tokens = 100\noverlap = 10\n[server]\naddr = \"0.0.0.0:1\"\n",
        )
        .unwrap();
        let c = load(
            Some(&file),
            dir.path(),
            env(&[("QUARRY_CHUNK__MAX_TOKENS", "64"), ("HOME", "/x")]),
        )
        .unwrap();
        assert_eq!(c.chunk.max_tokens, 64);
        assert_eq!(c.chunk.overlap, 10);
        assert_eq!(c.server.addr, "0.0.0.0:1");
        assert_eq!(c.query, QueryConfig::default());

        std::fs::write(&file, "[chunk]\nmax_tokenz = 1\n").unwrap();
        let err = load(Some(&file), dir.path(), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_tokenz"), "{err}");
        let err = load(None, dir.path(), env(&[("QUARRY_SERVER__PORT", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("port"), "{err}");
        let err = load(None, dir.path(), env(&[("QUARRY_CHUNK__OVERLAP", "999")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("chunk.overlap"), "{err}");
    }

    #[test]
    fn eval_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let c = load(None, dir.path(), env(&[("QUARRY_EVAL__INTERVAL", "90s")])).unwrap();
        assert_eq!(
            c.eval.interval().unwrap(),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            c.eval.principal().unwrap(),
            quarry_core::Principal::local_admin()
        );
        for (key, value, says) in [
            ("QUARRY_EVAL__INTERVAL", "soon", "eval.interval"),
            ("QUARRY_EVAL__INTERVAL", "10ms", "at least 1s"),
            ("QUARRY_EVAL__ALERT_DROP", "1.5", "eval.alert_drop"),
            ("QUARRY_EVAL__WINDOW", "0", "eval.window"),
            ("QUARRY_EVAL__TOP_K", "0", "eval.top_k"),
            (
                "QUARRY_EVAL__GROUPS",
                "[\"eng\"]",
                "eval.groups needs eval.user",
            ),
            ("QUARRY_EVAL__USER", "\"a b\"", "eval.user"),
            (
                "QUARRY_REINDEX__ON_MODEL_CHANGE",
                "sometimes",
                "expected `auto` or `manual`",
            ),
            (
                "QUARRY_REINDEX__CANARY_INTERVAL",
                "often",
                "reindex.canary_interval",
            ),
            (
                "QUARRY_REINDEX__MAX_NDCG_DROP",
                "2",
                "reindex.max_ndcg_drop",
            ),
            (
                "QUARRY_REINDEX__CANARY_MIN_COSINE",
                "1.5",
                "reindex.canary_min_cosine",
            ),
        ] {
            let err = format!(
                "{:#}",
                load(None, dir.path(), env(&[(key, value)])).unwrap_err()
            );
            assert!(err.contains(says), "{key}={value}: {err}");
        }
        let c = load(
            None,
            dir.path(),
            env(&[
                ("QUARRY_EVAL__USER", "alice"),
                ("QUARRY_EVAL__GROUPS", "[\"eng\"]"),
            ]),
        )
        .unwrap();
        let p = c.eval.principal().unwrap();
        assert_eq!(
            (p.user.as_str(), p.groups.clone()),
            ("alice", vec!["eng".to_owned()])
        );
    }

    #[test]
    fn defaults_without_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(None, dir.path(), env(&[])).unwrap(), Config::default());
    }

    /// The property-based fuzz harness of the configuration loader (`quarry.toml` and the
    /// `QUARRY_*` variables): files made of the real sections and keys with values of every TOML
    /// type (out of range, negative, huge, non-finite, empty), and arbitrary text, give a
    /// configuration or an error, never a panic. The loader lives in the binary, so the AFL++
    /// targets in `fuzz/` cannot link it. 256 cases by default;
    /// `PROPTEST_CASES=100000 cargo test --release --bin quarry config::tests::fuzz::` for a long run.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const KEYS: &[(&str, &[&str])] = &[
            ("", &["embedder"]),
            (
                "chunk",
                &["max_tokens", "overlap", "sizer", "context_chars"],
            ),
            (
                "vector",
                &[
                    "m",
                    "ef_construction",
                    "ef_search",
                    "exact_threshold",
                    "rebuild_tombstone_ratio",
                    "filter_exact_fraction",
                ],
            ),
            ("ingest", &["max_file_bytes", "batch_docs", "embed_batch"]),
            (
                "server",
                &[
                    "addr",
                    "body_limit_bytes",
                    "request_timeout_ms",
                    "shutdown_grace_ms",
                ],
            ),
            ("query", &["top_k", "mode", "group_by", "embed_timeout_ms"]),
            ("query.fusion", &["method", "k", "alpha"]),
            (
                "embedders.e",
                &[
                    "provider",
                    "model",
                    "model_dir",
                    "base_url",
                    "api_key_env",
                    "dimensions",
                    "batch_size",
                    "max_concurrency",
                    "timeout_ms",
                    "max_retries",
                ],
            ),
            ("auth", &["default_acl"]),
            (
                "[auth.api_keys]",
                &[
                    "key_sha256",
                    "key_env",
                    "user",
                    "groups",
                    "role",
                    "id",
                    "not_after",
                ],
            ),
            (
                "auth.jwt",
                &[
                    "hs256_secret_env",
                    "rs256_public_key_file",
                    "jwks_file",
                    "jwks_reload_secs",
                    "issuer",
                    "audience",
                    "leeway_secs",
                    "groups_claim",
                    "role_claim",
                ],
            ),
            (
                "eval",
                &[
                    "interval",
                    "alert_drop",
                    "window",
                    "top_k",
                    "user",
                    "groups",
                ],
            ),
            (
                "reindex",
                &[
                    "on_model_change",
                    "max_ndcg_drop",
                    "canary_min_cosine",
                    "keep_versions",
                    "canary_interval",
                ],
            ),
        ];

        fn value() -> impl Strategy<Value = String> {
            let word = prop_oneof![
                Just(String::new()),
                "[a-z:_ ./-]{0,12}",
                Just("local".to_owned()),
                Just("hash".to_owned()),
                Just("rrf".to_owned()),
                Just("weighted".to_owned()),
                Just("group:eng".to_owned()),
                Just("1s".to_owned()),
                Just("0ms".to_owned()),
                Just("18446744073709551616s".to_owned()),
                any::<String>(),
            ];
            let scalar = prop_oneof![
                any::<i64>().prop_map(|i| i.to_string()),
                (0i64..5000).prop_map(|i| i.to_string()),
                any::<f64>().prop_map(|f| format!("{f:?}")),
                prop_oneof![
                    Just("nan"),
                    Just("inf"),
                    Just("-inf"),
                    Just("-0.0"),
                    Just("1e308")
                ]
                .prop_map(str::to_owned),
                any::<bool>().prop_map(|b| b.to_string()),
                word.clone()
                    .prop_map(|w| toml::Value::String(w).to_string()),
            ];
            prop_oneof![
                4 => scalar.clone(),
                1 => prop::collection::vec(scalar, 0..3).prop_map(|v| format!("[{}]", v.join(", "))),
                1 => word.prop_map(|w| format!("{{ method = \"rrf\", k = {} }}", w.len())),
            ]
        }

        fn config_text() -> impl Strategy<Value = String> {
            let entry = (0..KEYS.len(), any::<prop::sample::Index>(), value());
            prop_oneof![
                4 => prop::collection::vec(entry, 0..12).prop_map(|entries| {
                    let mut text = String::new();
                    for (section, key, value) in entries {
                        let (name, keys) = KEYS[section];
                        let key = key.get(keys);
                        // `[[auth.api_keys]]` is written `[` + "[auth.api_keys]" + `]`
                        if !name.is_empty() {
                            text.push_str(&format!("[{name}]\n"));
                        }
                        text.push_str(&format!("{key} = {value}\n"));
                    }
                    text
                }),
                1 => any::<String>(),
            ]
        }

        fn env_vars() -> impl Strategy<Value = Vec<(String, String)>> {
            let entry = (0..KEYS.len(), any::<prop::sample::Index>(), value());
            prop::collection::vec(entry, 0..3).prop_map(|entries| {
                entries
                    .into_iter()
                    .filter(|(section, _, _)| !KEYS[*section].0.starts_with('['))
                    .map(|(section, key, value)| {
                        let (name, keys) = KEYS[section];
                        let mut var = String::from("QUARRY_");
                        for part in name.split('.').filter(|p| !p.is_empty()) {
                            var.push_str(&part.to_ascii_uppercase());
                            var.push_str("__");
                        }
                        var.push_str(&key.get(keys).to_ascii_uppercase());
                        (var, value)
                    })
                    .collect()
            })
        }

        /// The generator reaches past the parser: some of what it makes is a valid configuration,
        /// so the checks after parsing are driven too.
        #[test]
        fn fuzz_inputs_include_valid_configurations() {
            use proptest::strategy::ValueTree;
            let mut runner = proptest::test_runner::TestRunner::deterministic();
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("quarry.toml");
            let (mut valid, n) = (0, 2000);
            for _ in 0..n {
                let text = config_text().new_tree(&mut runner).unwrap().current();
                std::fs::write(&file, &text).unwrap();
                valid += usize::from(load(Some(&file), dir.path(), Vec::new()).is_ok());
            }
            eprintln!("{valid} of {n} generated files are valid configurations");
            assert!(valid * 50 >= n, "{valid} of {n}");
            assert!(valid * 2 <= n, "{valid} of {n}");
        }

        proptest! {
            #[test]
            fn fuzz_config_files_and_variables_never_panic(text in config_text(), vars in env_vars()) {
                let dir = tempfile::tempdir().unwrap();
                let file = dir.path().join("quarry.toml");
                std::fs::write(&file, &text).unwrap();
                // A configuration or an error; a panic fails the case.
                if let Ok(c) = load(Some(&file), dir.path(), vars) {
                    prop_assert!((1..=quarry_core::MAX_TOP_K).contains(&c.query.top_k));
                    prop_assert!(c.ingest.batch_docs >= 1);
                }
            }
        }
    }
}
