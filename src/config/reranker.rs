//! `[reranker]`: the `/rerank` service that queries asking for `rerank` use (docs/query.md,
//! "Reranking"), and its checks when the configuration is loaded. The reranker itself is built
//! on first use by `crate::embedders`.

use quarry_embed::rerank::{
    DEFAULT_MAX_RETRIES, DEFAULT_MAX_TOP_N, DEFAULT_TIMEOUT, RerankFormat, RerankOptions,
};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RerankerConfig {
    /// The endpoint, e.g. `http://127.0.0.1:8080/rerank`; unset: no reranker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `cohere` (also Jina, vLLM, Infinity) or `tei`.
    pub format: RerankFormat,
    /// Sent as `model` in the Cohere format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Name of the environment variable holding the API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Bound on one query's reranking, retries included.
    pub timeout_ms: u64,
    /// Retries after the first attempt, within `timeout_ms`.
    pub max_retries: u32,
    /// Largest `rerank.top_n` a query may ask for.
    pub max_top_n: usize,
}

impl Default for RerankerConfig {
    fn default() -> Self {
        RerankerConfig {
            url: None,
            format: RerankFormat::default(),
            model: None,
            api_key_env: None,
            timeout_ms: DEFAULT_TIMEOUT.as_millis() as u64,
            max_retries: DEFAULT_MAX_RETRIES,
            max_top_n: DEFAULT_MAX_TOP_N,
        }
    }
}

impl RerankerConfig {
    /// The client options, without the key (read when the reranker is first used); `None` without
    /// a `url`.
    pub(crate) fn options(&self) -> Option<RerankOptions> {
        let url = self.url.clone()?;
        Some(RerankOptions {
            model: self.model.clone(),
            format: self.format,
            timeout: Duration::from_millis(self.timeout_ms),
            max_retries: self.max_retries,
            max_top_n: self.max_top_n,
            ..RerankOptions::new(url)
        })
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let Some(options) = self.options() else {
            if self.model.is_some() || self.api_key_env.is_some() {
                anyhow::bail!(
                    "reranker: `url` is not set; name the /rerank endpoint (e.g. \"http://127.0.0.1:8080/rerank\") or remove the [reranker] table"
                );
            }
            return Ok(());
        };
        options.validate().map_err(|e| anyhow::anyhow!("{e}"))
    }
}
