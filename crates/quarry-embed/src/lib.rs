//! quarry-embed: the implementations of [`quarry_core::Embedder`], and the only crate that runs or
//! calls models.
//!
//! - [`hash::HashEmbedder`]: deterministic bag-of-words hashing, **for tests only**: no network, no
//!   model files, vectors that are stable across runs and machines but carry no learned meaning.

pub mod hash;

pub use hash::HashEmbedder;
