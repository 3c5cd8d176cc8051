//! How deep each retriever looks in one pass ([`Depth`]), and the least depths for
//! `group_by=document`.

use quarry_core::{GroupBy, Mode};

/// Chunks the vector retriever returns at least, for `group_by=document`, before fusion: deep
/// enough that fusion sees what either retriever ranks high. On SciFact at `top_k=10`, 50 (with
/// BM25 at 100) and 100 for both give the same hybrid nDCG@10 (0.7406 and 0.7396); 30 for both
/// gives 0.7370 and more second passes.
pub(super) const MIN_DOCUMENT_DEPTH: usize = 50;

/// How many chunks the first pass for `need` results asks each retriever for.
pub(super) fn first(need: usize, group_by: GroupBy, mode: Mode, diversify: bool) -> usize {
    match group_by {
        // vector search alone ranks exactly what it returns: no fusion to feed, no pool to
        // diversify
        GroupBy::Chunk if mode == Mode::Vector && !diversify => need,
        GroupBy::Chunk => need.max(100),
        GroupBy::Document => (need * 3).max(MIN_DOCUMENT_DEPTH),
    }
}

/// BM25 returns at least this many times [`MIN_DOCUMENT_DEPTH`] for `group_by=document`:
/// neighbouring chunks of a document share most of their BM25 context, so BM25's best chunks come
/// in runs from one document (on SciFact its first 10 documents took 57 chunks on average, the
/// vector index's 29). At 50 chunks BM25 alone needed second passes for many queries.
const BM25_RUNS: usize = 2;

/// How many chunks each retriever returns in one pass.
#[derive(Debug, Clone, Copy)]
pub(super) struct Depth {
    pub(super) bm25: usize,
    pub(super) vector: usize,
}

impl Depth {
    /// `depth` chunks from each retriever, BM25 at least [`BM25_RUNS`] × [`MIN_DOCUMENT_DEPTH`]
    /// when grouped by document; neither more than the `total` chunks of the snapshot.
    pub(super) fn new(depth: usize, group_by: GroupBy, total: usize) -> Depth {
        let bm25 = match group_by {
            GroupBy::Chunk => depth,
            GroupBy::Document => depth.max(BM25_RUNS * MIN_DOCUMENT_DEPTH),
        };
        let total = total.max(1);
        Depth {
            bm25: bm25.min(total),
            vector: depth.min(total),
        }
    }
}
