//! quarry-embed: the implementations of [`quarry_core::Embedder`] and [`quarry_core::Reranker`],
//! and the only crate that runs or calls models.
//!
//! - [`hash::HashEmbedder`]: deterministic bag-of-words hashing, **for tests only**: no network, no
//!   model files, vectors that are stable across runs and machines but carry no learned meaning.
//! - [`openai::OpenAiEmbedder`]: any OpenAI-compatible `/embeddings` endpoint over HTTP, batched,
//!   with bounded concurrency, retries with backoff, and validated, L2-normalised answers.
//! - [`rerank::HttpReranker`]: a [`quarry_core::Reranker`] for any `/rerank` endpoint in the
//!   Cohere (also Jina, vLLM, Infinity) or TEI format, sharing the embedder's retrying HTTP code.
//! - [`local::LocalEmbedder`]: a BERT-family sentence-transformers model (all-MiniLM-L6-v2 by
//!   default) run on the CPU with candle: mean pooling, L2-normalised, truncated at 256 tokens.
//! - [`static_model::StaticEmbedder`]: a static token-embedding table (model2vec's layout): a
//!   text's vector is the normalised mean of its tokens' rows, hundreds of times faster than the
//!   transformer; [`distill::distill`] builds one from the local model.
//! - [`fetch::ensure_model`]: downloads a known model ([`fetch::DEFAULT_MODEL`]) into
//!   [`fetch::model_cache_dir`] once, pinned and verified by sha256.

mod bert;
mod bert_ops;
pub mod distill;
mod distill_fit;
pub mod fetch;
pub mod hash;
mod http;
pub mod local;
pub mod openai;
pub mod rerank;
pub mod static_model;

pub use fetch::{DEFAULT_MODEL, ensure_model, model_cache_dir};
pub use hash::HashEmbedder;
pub use local::LocalEmbedder;
pub use openai::{OpenAiEmbedder, OpenAiOptions};
pub use rerank::{HttpReranker, RerankFormat, RerankOptions};
pub use static_model::StaticEmbedder;
