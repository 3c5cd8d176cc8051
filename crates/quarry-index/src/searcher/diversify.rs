//! Diversity in the read path: with `diversify`, the first fused candidates are re-ranked by
//! maximal marginal relevance ([`quarry_core::diversity::mmr`]) over their stored vectors before
//! hits are read from them, so grouping, paging and `min_score` apply to the new order.

use crate::vectors::VectorSnapshot;
use quarry_core::Diversify;
use quarry_core::diversity::{MAX_CANDIDATES, MIN_CANDIDATES, mmr};

/// The warning of a query asking for diversity of a collection without vectors: it is answered
/// in the fused order (as `mode=hybrid` without vectors is answered by BM25, with a warning).
pub(super) const NO_VECTORS: &str = "diversify: this collection has no vectors to compare results \
     with, so they are in the fused order, not diversified";

/// Re-ranks the first `max(MIN_CANDIDATES, need)` fused candidates (at most `MAX_CANDIDATES`) (`key_score` gives each one's
/// chunk key and fused score) by MMR with `d`'s λ: relevance is the fused score min-max
/// normalised over them, redundancy the cosine of their stored vectors (a
/// chunk without one is like no other). Only candidates at or above `min_score` take part, so
/// those below it still come after every other one and end the answer; candidates past the
/// re-ranked ones keep their fused order.
pub(super) fn rerank<C: Copy>(
    candidates: &mut [C],
    key_score: impl Fn(&C) -> (u64, f32),
    d: Diversify,
    need: usize,
    min_score: Option<f32>,
    vectors: &VectorSnapshot,
) {
    let n = candidates
        .iter()
        .take(need.clamp(MIN_CANDIDATES, MAX_CANDIDATES))
        .take_while(|c| min_score.is_none_or(|m| key_score(c).1 >= m))
        .count();
    let prefix = &mut candidates[..n];
    let (keys, scores): (Vec<u64>, Vec<f32>) = prefix.iter().map(&key_score).unzip();
    let stored = vectors.vectors_of(&keys);
    let stored: Vec<Option<&[f32]>> = stored.iter().map(Option::as_deref).collect();
    let reranked: Vec<C> = mmr(&scores, &stored, d.lambda, n)
        .into_iter()
        .map(|i| prefix[i])
        .collect();
    prefix.copy_from_slice(&reranked);
}

#[cfg(test)]
#[path = "diversify_tests.rs"]
mod tests;
