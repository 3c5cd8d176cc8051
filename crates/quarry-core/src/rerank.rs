//! The `Reranker` trait: a model that scores passages against a query (a cross-encoder, usually
//! behind an HTTP service), used to re-order a query's first hits.
//!
//! Implementations live in `quarry-embed` (the HTTP client for the common `/rerank` formats). The
//! engine only sees this trait, so it does not depend on HTTP; a reranker that fails or runs out
//! of time leaves the answer in fused order, marked degraded (docs/query.md, "Reranking").

/// Why a reranking call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RerankError {
    /// The reranker is configured wrongly (URL, key, model); the message says what to change.
    #[error("reranker misconfigured: {0}")]
    Config(String),
    /// The service failed, timed out or answered something unusable, after any retries.
    #[error("reranker failed: {0}")]
    Provider(String),
}

/// Scores passages against a query. Implementations bound their own time (a configured
/// timeout, retries included) and are safe to call from many threads.
pub trait Reranker: Send + Sync {
    /// One relevance score per document, in the order of `documents` (higher is more relevant;
    /// the scale is the model's). Exactly `documents.len()` finite scores, or an error.
    fn rerank(&self, query: &str, documents: &[&str]) -> Result<Vec<f32>, RerankError>;

    /// Most documents one call may score (a query's `rerank.top_n` is refused above it).
    fn max_documents(&self) -> usize;
}
