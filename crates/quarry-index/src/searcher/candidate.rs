//! A fused candidate of a query: a chunk's address with its fused score and what each retriever
//! said of it, from fusion until its hit is built.

use quarry_core::fusion::Part;
use tantivy::DocAddress;

/// A fused candidate: a chunk with its fused score and what each retriever said.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate {
    /// The chunk's [`crate::bm25::chunk_key`].
    pub(super) key: u64,
    pub(super) address: DocAddress,
    pub(super) score: f32,
    pub(super) bm25: Option<(f32, usize)>,
    pub(super) vector: Option<(f32, usize)>,
    /// Each retriever's part of `score` (BM25, vectors), when the query asked to explain.
    pub(super) parts: [Option<Part>; 2],
}
