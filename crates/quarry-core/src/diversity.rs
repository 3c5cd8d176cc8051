//! Diversity: maximal marginal relevance (MMR) re-ranking of a ranked list by the vectors of its
//! items (docs/query.md, "Diversity").
//!
//! [`mmr`] repeatedly picks the item maximising `λ·rel(c) − (1−λ)·max_{s ∈ selected} cos(c, s)`,
//! where `rel` is the item's score min-max normalised over the list ([`relevance`]). λ = 1 is
//! the list as ranked; λ = 0 only avoids what was picked. Written here rather than taken from a
//! crate: it is twenty lines over vectors the engine already holds, and no maintained crate
//! offers it over borrowed vectors without copying them into its own matrix type.

use crate::error::{Error, Result};

/// Candidates re-ranked at least (more when a query needs more results): the first
/// `max(MIN_CANDIDATES, top_k + offset)` of the fused list, up to [`MAX_CANDIDATES`].
pub const MIN_CANDIDATES: usize = 100;

/// Candidates re-ranked at most: MMR costs `n²` cosines, and `top_k + offset` reaches 11,000
/// (about 60 million cosines, seconds of CPU a query); 1,000 covers any one page of `top_k`
/// from the start. Candidates past them keep their fused order.
pub const MAX_CANDIDATES: usize = 1000;

/// The `diversify` option of a query: `{"lambda": λ}`, λ from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Diversify {
    /// Weight of relevance against novelty: 1 keeps the fused order, 0 picks the candidate least
    /// like those already picked.
    #[schema(minimum = 0, maximum = 1)]
    pub lambda: f32,
}

impl Diversify {
    /// Checks that λ is a number from 0 to 1; the error names the option.
    pub fn validate(&self) -> Result<()> {
        if self.lambda.is_finite() && (0.0..=1.0).contains(&self.lambda) {
            Ok(())
        } else {
            Err(Error::invalid(
                "diversify",
                format!(
                    "`lambda` is {}; it must be a number from 0 to 1 (1 keeps the fused order)",
                    self.lambda
                ),
            ))
        }
    }
}

/// Scores min-max normalised to [0, 1]: `(s − min) / (max − min)`, so the best is 1 and the worst
/// 0 whatever the fusion's scale (RRF's scores are small, a weighted fusion's up to 1, BM25's
/// unbounded). When every score is equal (or there is one), each is 1. A non-finite score is 0.
pub fn relevance(scores: &[f32]) -> Vec<f32> {
    let finite = || scores.iter().copied().filter(|s| s.is_finite());
    let (Some(min), Some(max)) = (finite().reduce(f32::min), finite().reduce(f32::max)) else {
        return vec![0.0; scores.len()];
    };
    let span = max - min;
    scores
        .iter()
        .map(|s| match s.is_finite() {
            false => 0.0,
            true if span > 0.0 => ((s - min) / span).clamp(0.0, 1.0),
            true => 1.0,
        })
        .collect()
}

/// The first `k` picks of maximal marginal relevance over items ranked by `scores` (best first,
/// as fused), as indices into `scores`: a permutation of `k` of them (of all when `k` is larger).
/// `vectors[i]` is item `i`'s vector; an item without one (`None`, or a zero vector) is like
/// nothing, its cosine 0. Equal marginal relevance goes to the item ranked first, so λ = 1 gives
/// `0..k` exactly. Costs `k · n` cosines for `n` items.
pub fn mmr(scores: &[f32], vectors: &[Option<&[f32]>], lambda: f32, k: usize) -> Vec<usize> {
    let n = scores.len().min(vectors.len());
    let k = k.min(n);
    let rel = relevance(&scores[..n]);
    let norms: Vec<f32> = vectors[..n]
        .iter()
        .map(|v| v.map_or(0.0, |v| dot(v, v).sqrt()))
        .collect();
    let cos = |i: usize, j: usize| match (vectors[i], vectors[j]) {
        (Some(a), Some(b)) if norms[i] > 0.0 && norms[j] > 0.0 => dot(a, b) / (norms[i] * norms[j]),
        _ => 0.0,
    };
    // the largest cosine of each item to one already picked (0 before the first pick)
    let mut closest = vec![0.0f32; n];
    let mut picked = vec![false; n];
    let mut order = Vec::with_capacity(k);
    while order.len() < k {
        let mut best: Option<(usize, f32)> = None;
        for i in (0..n).filter(|i| !picked[*i]) {
            let value = lambda * rel[i] - (1.0 - lambda) * closest[i];
            if best.is_none_or(|(_, b)| value > b) {
                best = Some((i, value));
            }
        }
        let Some((j, _)) = best else { break };
        picked[j] = true;
        for i in (0..n).filter(|i| !picked[*i]) {
            let c = cos(i, j);
            closest[i] = if order.is_empty() {
                c
            } else {
                closest[i].max(c)
            };
        }
        order.push(j);
    }
    order
}

/// Dot product over eight running sums, which the compiler turns into SIMD (one running sum is
/// a chain of dependent additions that it may not reorder).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut sums = [0.0f32; 8];
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            sums[l] += x[l] * y[l];
        }
    }
    sums.iter().sum::<f32>() + tail
}

#[cfg(test)]
#[path = "diversity_tests.rs"]
mod tests;
