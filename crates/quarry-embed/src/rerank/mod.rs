//! A reranker for any service that speaks one of the common `/rerank` formats
//! ([`RerankFormat`]): Cohere's, which Jina, vLLM and Infinity also speak, or Hugging Face Text
//! Embeddings Inference's (TEI).
//!
//! One call is one `POST` of the query and the passages, asking for a score of every passage;
//! the answer must give exactly one finite score per passage, each index once and in range
//! (services may answer in any order, usually best first). It goes through `crate::http` like
//! the OpenAI-compatible embedder: retries with backoff and jitter on connection errors,
//! timeouts, 408, 429 (honouring `Retry-After`) and 5xx; other 4xx at once; an unusable answer
//! (not the format's JSON, a wrong, repeated or missing index, a non-finite score) retried once.
//!
//! **Time.** [`RerankOptions::timeout`] bounds the whole call, retries included: no request
//! outlives it and no retry starts that could not end before it. A query waits for its
//! reranking at most that long, then keeps its fused order (the searcher's part).
//!
//! The API key never appears in errors, logs or `Debug` output.

mod client;
mod options;
mod wire;

pub use client::HttpReranker;
pub use options::{
    DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, DEFAULT_MAX_RETRIES, DEFAULT_MAX_TOP_N,
    DEFAULT_TIMEOUT, RerankFormat, RerankOptions,
};
