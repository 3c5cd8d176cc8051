//! `[embedders.NAME]` tables: what configures one embedder, which configuration a name stands
//! for (a table, or one of the built-ins `local`, `hash` and `none`), and the checks made when the
//! configuration is loaded. Loading the embedders themselves is `crate::embedders`' work.

use anyhow::bail;
use quarry_embed::DEFAULT_MODEL;
use quarry_embed::distill::DEFAULT_STATIC_MODEL;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[embedders.NAME]`: one embedder. `provider` is `local`, `static`, `openai` or `hash`.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmbedderConfig {
    pub provider: String,
    /// local: a model quarry can fetch (`all-MiniLM-L6-v2`); static: a model of the model cache
    /// (`quarry model distill` builds `static-all-MiniLM-L6-v2`); openai: the provider's model
    /// string.
    pub model: Option<String>,
    /// local: a folder in Hugging Face layout (config.json, tokenizer.json, model.safetensors);
    /// static: a folder in model2vec's layout (model.safetensors, tokenizer.json, config.json).
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

/// The configuration of embedder `name`: its table, or a built-in; `None` for `none`.
pub(crate) fn resolve(
    embedders: &BTreeMap<String, EmbedderConfig>,
    name: &str,
) -> anyhow::Result<Option<EmbedderConfig>> {
    if let Some(c) = embedders.get(name) {
        return Ok(Some(c.clone()));
    }
    Ok(match name {
        "none" => None,
        "local" => Some(EmbedderConfig {
            provider: "local".into(),
            model: Some(DEFAULT_MODEL.into()),
            ..EmbedderConfig::default()
        }),
        "static" => Some(EmbedderConfig {
            provider: "static".into(),
            model: Some(DEFAULT_STATIC_MODEL.into()),
            ..EmbedderConfig::default()
        }),
        "hash" => Some(EmbedderConfig {
            provider: "hash".into(),
            ..EmbedderConfig::default()
        }),
        other => {
            let mut names: Vec<&str> = embedders.keys().map(String::as_str).collect();
            names.extend(["local", "static", "hash", "none"]);
            bail!(
                "embedder `{other}` is not configured: add an [embedders.{other}] table, or use one of: {}",
                names.join(", ")
            )
        }
    })
}

/// Checks the configured embedders without loading them: the default `embedder` names one, and
/// each table has a known provider and the keys it requires.
pub(super) fn check(
    embedders: &BTreeMap<String, EmbedderConfig>,
    default: &str,
) -> anyhow::Result<()> {
    resolve(embedders, default)
        .map_err(|e| anyhow::anyhow!("invalid configuration: embedder: {e}"))?;
    for (name, c) in embedders {
        let err = |why: &str| anyhow::anyhow!("invalid configuration: embedders.{name}: {why}");
        match c.provider.as_str() {
            "local" => {
                if c.model.is_none() && c.model_dir.is_none() {
                    return Err(err(
                        "a local embedder needs `model` (e.g. \"all-MiniLM-L6-v2\") or `model_dir`",
                    ));
                }
            }
            "openai" => {
                if c.base_url.is_none() || c.model.is_none() {
                    return Err(err(
                        "an openai embedder needs `base_url` (e.g. \"https://api.openai.com/v1\") and `model`",
                    ));
                }
            }
            "static" => {
                if c.model.is_none() && c.model_dir.is_none() {
                    return Err(err(&format!(
                        "a static embedder needs `model` (e.g. \"{DEFAULT_STATIC_MODEL}\", built by `quarry model distill`) or `model_dir`"
                    )));
                }
            }
            "hash" => {}
            other => {
                return Err(err(&format!(
                    "provider `{other}` is unknown; use local, static, openai or hash"
                )));
            }
        }
    }
    Ok(())
}
