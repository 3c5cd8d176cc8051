//! quarry-core: the vocabulary of quarry and its pure algorithms.
//!
//! Nothing in this crate does IO. It defines documents, chunks and their content hashes, the chunker,
//! query options, and retrieval-quality metrics. The engine (`quarry-index`) and the HTTP layer
//! (`quarry-server`) build on these types.

pub mod acl;
pub mod bm25;
pub mod chunk;
pub mod diversity;
pub mod document;
pub mod embed;
pub mod error;
pub mod feedback;
#[cfg(test)]
mod feedback_tests;
pub mod filter;
pub mod fusion;
pub mod hash;
pub mod markdown;
pub mod metrics;
pub mod query;
pub mod rerank;
pub mod rng;
pub mod stats;
pub mod time;

pub use acl::{DefaultAcl, Principal, Role};
pub use bm25::Bm25Params;
pub use chunk::{
    Chunk, ChunkOptions, ChunkSizer, Chunker, TokenCounter, context_window, embed_text,
};
pub use diversity::Diversify;
pub use document::{DocFormat, Document};
pub use embed::{EmbedError, Embedder, EmbedderSpec, Fingerprint, InputKind};
pub use error::{Error, Result};
pub use feedback::{Feedback, FeedbackSwitch};
pub use filter::{FieldSchema, FieldType, FieldValues, Filter, Scalar};
pub use fusion::{Fusion, fuse};
pub use hash::ContentHash;
pub use query::{Expand, GroupBy, MAX_TOP_K, Mode, QueryOptions, QueryVector, Rerank};
pub use rerank::{RerankError, Reranker};
