//! An embedder for any OpenAI-compatible `POST {base_url}/embeddings` endpoint.
//!
//! Texts are sent in batches of [`OpenAiOptions::batch_size`], at most
//! [`OpenAiOptions::max_concurrency`] batches in flight at once (scoped OS threads over one blocking
//! `reqwest` client: no async runtime is needed, and none may be entered, so call it from sync code
//! or from inside `tokio::task::spawn_blocking`).
//!
//! Failures, per batch:
//! - **Retried** with exponential backoff and full jitter (a delay drawn uniformly from
//!   `0..=min(backoff_max, backoff_base * 2^retry)`), at most `max_retries` times: connection
//!   errors and resets, timeouts (each request is bounded by [`OpenAiOptions::timeout`]), HTTP 408,
//!   429 and 5xx. A `Retry-After` header in seconds on such a response replaces the jittered delay
//!   (capped by `backoff_max`); the HTTP-date form is ignored.
//! - **Not retried**: every other 4xx fails at once with the provider's own error message. 401 and
//!   403 (the API key) and 404 (`base_url` or model) are [`EmbedError::Model`], the others
//!   [`EmbedError::Provider`]. A redirect is not followed (a POST would turn into a GET): it is an
//!   [`EmbedError::Model`] naming the new location.
//! - **Unusable answers** (a 2xx whose body is not the expected JSON, has the wrong number of
//!   vectors, a missing, duplicate or out-of-range `index`, a vector of the wrong dimension, or a
//!   non-finite value) are retried **once** (it may be a proxy glitch; a second bad answer is not),
//!   within the same `max_retries` budget, then fail with [`EmbedError::Provider`].
//!
//! When one batch fails for good, batches not yet started are abandoned, and `embed` returns that
//! error.
//!
//! Vectors are ordered by each item's `index` (providers may answer out of order) and
//! L2-normalised, so the spec says `normalized: true` and cosine and dot product agree.
//!
//! **Dimensions.** With [`OpenAiOptions::dimensions`] set, it is sent as the request's `dimensions`
//! (models that support shortening honour it) and every vector must have it. Without it,
//! [`OpenAiEmbedder::new`] probes the provider once with a short text and takes the dimension of the
//! answer (then `new` blocks on the network, with the same retries as `embed`), and `dimensions` is
//! never sent.
//!
//! The spec is `provider = "openai"`, `model` and `revision` = the model string, `pooling = "none"`,
//! `max_tokens = 0` (provider-defined), no prefixes. Nothing else (URL, key, batching, timeouts)
//! enters the fingerprint. The API key never appears in errors, logs or `Debug` output.

mod client;
mod options;
mod wire;

pub use client::OpenAiEmbedder;
pub use options::{
    DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, DEFAULT_BATCH_SIZE, DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, MAX_DIMENSIONS, OpenAiOptions,
};
