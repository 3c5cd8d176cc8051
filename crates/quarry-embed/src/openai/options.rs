//! How an [`super::OpenAiEmbedder`] reaches its provider and how hard it tries: the options, their
//! defaults and their checks. Only `model` and `dimensions` change the vectors (and so the
//! fingerprint).

use quarry_core::EmbedError;
use std::fmt;
use std::time::Duration;

pub const DEFAULT_BATCH_SIZE: usize = 64;
pub const DEFAULT_MAX_CONCURRENCY: usize = 4;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_RETRIES: u32 = 5;
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(250);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(20);

/// Largest accepted `dimensions`.
pub const MAX_DIMENSIONS: usize = 65_536;

/// How to reach the provider and how hard to try. Only `model` and `dimensions` change the vectors
/// (and so the fingerprint).
#[derive(Clone)]
pub struct OpenAiOptions {
    /// E.g. `http://127.0.0.1:7879/v1` or `https://api.openai.com/v1`; a trailing `/` is fine.
    pub base_url: String,
    /// The provider's model string, e.g. `text-embedding-3-small`.
    pub model: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// Requested and required vector dimension; `None` probes the provider in `new`.
    pub dimensions: Option<usize>,
    /// Texts per request (default 64).
    pub batch_size: usize,
    /// Requests in flight at once per `embed` call (default 4).
    pub max_concurrency: usize,
    /// Bound on one request, connect to last byte (default 30 s).
    pub timeout: Duration,
    /// Retries of one batch after its first attempt (default 5).
    pub max_retries: u32,
    /// First backoff ceiling (default 250 ms); doubles with each retry.
    pub backoff_base: Duration,
    /// Largest backoff, and cap on a `Retry-After` wait (default 20 s).
    pub backoff_max: Duration,
}

impl OpenAiOptions {
    /// Options with every default: no key, dimensions probed.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiOptions {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            dimensions: None,
            batch_size: DEFAULT_BATCH_SIZE,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
        }
    }

    pub(super) fn validate(&self) -> Result<(), EmbedError> {
        let bad = |msg: String| Err(EmbedError::Model(msg));
        if self.model.trim().is_empty() {
            return bad("openai embedder: model is empty; set the provider's model string".into());
        }
        match reqwest::Url::parse(&self.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            Ok(_) => {
                return bad(format!(
                    "openai embedder base_url {:?}: use an http:// or https:// URL such as http://127.0.0.1:7879/v1",
                    self.base_url
                ));
            }
            Err(e) => {
                return bad(format!(
                    "openai embedder base_url {:?} is not a URL ({e}); use e.g. http://127.0.0.1:7879/v1",
                    self.base_url
                ));
            }
        }
        if let Some(d) = self.dimensions
            && (d == 0 || d > MAX_DIMENSIONS)
        {
            return bad(format!(
                "openai embedder dimensions {d}: use 1 to {MAX_DIMENSIONS}, or leave unset to ask the provider"
            ));
        }
        if self.batch_size == 0 {
            return bad("openai embedder batch_size 0: use at least 1".into());
        }
        if self.max_concurrency == 0 {
            return bad("openai embedder max_concurrency 0: use at least 1".into());
        }
        if self.timeout.is_zero() {
            return bad("openai embedder timeout 0: use a positive duration".into());
        }
        if self
            .api_key
            .as_deref()
            .is_some_and(|k| k.is_empty() || k.chars().any(|c| c.is_control()))
        {
            return bad("openai embedder api_key is empty or contains control characters".into());
        }
        Ok(())
    }
}

impl fmt::Debug for OpenAiOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiOptions")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("dimensions", &self.dimensions)
            .field("batch_size", &self.batch_size)
            .field("max_concurrency", &self.max_concurrency)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .finish()
    }
}
