//! How an [`super::HttpReranker`] reaches its service and how hard it tries: the options, their
//! defaults and their checks.

use quarry_core::RerankError;
use quarry_core::query::MAX_RERANK_TOP_N;
use std::fmt;
use std::time::Duration;

/// The default bound on one reranking call, retries included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_MAX_RETRIES: u32 = 2;
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(50);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The default most passages one query may ask to rerank.
pub const DEFAULT_MAX_TOP_N: usize = 100;

/// The request and answer shapes of a `/rerank` endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RerankFormat {
    /// `{"model", "query", "documents": [text, …], "top_n"}` →
    /// `{"results": [{"index", "relevance_score"}, …]}`: Cohere, Jina, vLLM, Infinity.
    #[default]
    Cohere,
    /// `{"query", "texts": [text, …], "truncate": true}` → `[{"index", "score"}, …]`: Hugging
    /// Face Text Embeddings Inference.
    Tei,
}

/// Where the reranker is and how hard to try.
#[derive(Clone)]
pub struct RerankOptions {
    /// The endpoint itself, e.g. `http://127.0.0.1:8080/rerank` or
    /// `https://api.cohere.com/v2/rerank`.
    pub url: String,
    /// Sent as `model` (Cohere format) when set; TEI serves one model and takes none.
    pub model: Option<String>,
    pub format: RerankFormat,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// Bound on one call, connect to last byte of the last attempt, retries included (default 2 s).
    pub timeout: Duration,
    /// Retries after the first attempt, within `timeout` (default 2).
    pub max_retries: u32,
    /// First backoff ceiling (default 50 ms); doubles with each retry.
    pub backoff_base: Duration,
    /// Largest backoff, and cap on a `Retry-After` wait (default 1 s).
    pub backoff_max: Duration,
    /// Most passages one call may score (default 100, at most 1000).
    pub max_top_n: usize,
}

impl RerankOptions {
    /// Options with every default: Cohere format, no model, no key.
    pub fn new(url: impl Into<String>) -> Self {
        RerankOptions {
            url: url.into(),
            model: None,
            format: RerankFormat::default(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            max_top_n: DEFAULT_MAX_TOP_N,
        }
    }

    /// Checks every option; the error names the one to change.
    pub fn validate(&self) -> Result<(), RerankError> {
        let bad = |msg: String| Err(RerankError::Config(msg));
        match reqwest::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => {
                return bad(format!(
                    "reranker.url {:?}: use the endpoint's http:// or https:// URL, such as http://127.0.0.1:8080/rerank",
                    self.url
                ));
            }
        }
        if self.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
            return bad(
                "reranker.model is empty; set the service's model name or leave it out".into(),
            );
        }
        if self.timeout.is_zero() {
            return bad("reranker.timeout_ms 0: use a positive duration".into());
        }
        if !(1..=MAX_RERANK_TOP_N).contains(&self.max_top_n) {
            return bad(format!(
                "reranker.max_top_n {}: use 1 to {MAX_RERANK_TOP_N}",
                self.max_top_n
            ));
        }
        if self
            .api_key
            .as_deref()
            .is_some_and(|k| k.is_empty() || k.chars().any(|c| c.is_control()))
        {
            return bad("reranker API key is empty or contains control characters".into());
        }
        Ok(())
    }
}

impl fmt::Debug for RerankOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RerankOptions")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("format", &self.format)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("max_top_n", &self.max_top_n)
            .finish()
    }
}
