//! The oracle of vector recall: the exact top [`K`] of every query by dot product over every
//! document vector, in f32, for every access level at once (level `t` ranks only the documents
//! whose level is at least `t`, the ones its caller may read).
//!
//! One pass per block of [`BLOCK`] documents compares the block with every query while the block
//! is in cache; blocks run in parallel (rayon) and their top lists are merged. Ties go to the
//! smaller document index, so the answer does not depend on the order of the merge.

use rayon::prelude::*;

/// Results compared.
pub(super) const K: usize = 10;
/// Documents per block.
const BLOCK: usize = 1024;

/// The best [`K`] `(score, document)` pairs seen, best first.
#[derive(Clone, Default)]
struct Top(Vec<(f32, u32)>);

/// Whether `a` ranks before `b`.
fn before(a: (f32, u32), b: (f32, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

impl Top {
    fn offer(&mut self, item: (f32, u32)) {
        if self.0.len() == K && !before(item, self.0[K - 1]) {
            return;
        }
        let at = self
            .0
            .iter()
            .position(|x| before(item, *x))
            .unwrap_or(self.0.len());
        self.0.insert(at, item);
        self.0.truncate(K);
    }
}

/// For each query (rows of `queries`, `dims` long), for each access level `0..levels`, the
/// indices of its [`K`] nearest documents among those of that level or above, best first.
pub(super) fn top_k(
    docs: &[f32],
    dims: usize,
    doc_levels: &[u8],
    levels: usize,
    queries: &[f32],
) -> Vec<Vec<Vec<u32>>> {
    let nq = queries.len() / dims;
    let blank = || vec![Top::default(); nq * levels];
    let tops = docs
        .par_chunks(BLOCK * dims)
        .enumerate()
        .fold(blank, |mut tops, (b, block)| {
            for (q, query) in queries.chunks_exact(dims).enumerate() {
                let mine = &mut tops[q * levels..(q + 1) * levels];
                for (i, doc) in block.chunks_exact(dims).enumerate() {
                    let id = b * BLOCK + i;
                    let item = (quarry_index::vectors::dot(query, doc), id as u32);
                    let top_level = usize::from(doc_levels[id]).min(levels - 1);
                    for top in &mut mine[..=top_level] {
                        top.offer(item);
                    }
                }
            }
            tops
        })
        .reduce(blank, |mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                for item in y.0 {
                    x.offer(item);
                }
            }
            a
        });
    tops.chunks(levels)
        .map(|per_level| {
            per_level
                .iter()
                .map(|t| t.0.iter().map(|(_, id)| *id).collect())
                .collect()
        })
        .collect()
}

/// Recall of `served` against `truth`: the share of `truth` found. With nothing to find, 1 if
/// nothing was returned and 0 otherwise (a hit the caller may not read).
pub(super) fn recall(truth: &[u32], served: &[usize]) -> f64 {
    if truth.is_empty() {
        return if served.is_empty() { 1.0 } else { 0.0 };
    }
    let found = truth
        .iter()
        .filter(|t| served.contains(&(**t as usize)))
        .count();
    found as f64 / truth.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naive model: score every permitted document, sort, take K.
    fn naive(docs: &[f32], dims: usize, levels: &[u8], level: u8, q: &[f32]) -> Vec<u32> {
        let mut scored: Vec<(f32, u32)> = docs
            .chunks_exact(dims)
            .enumerate()
            .filter(|(i, _)| levels[*i] >= level)
            .map(|(i, d)| (quarry_index::vectors::dot(q, d), i as u32))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.into_iter().take(K).map(|(_, i)| i).collect()
    }

    #[test]
    fn agrees_with_sorting_every_score() {
        let dims = 8;
        let n = 3000;
        let value = |i: usize| ((i as f32 * 0.618).sin() * 1000.0).fract();
        let docs: Vec<f32> = (0..n * dims).map(value).collect();
        // repeated vectors make ties, which go to the smaller index
        let docs: Vec<f32> = docs
            .chunks(dims)
            .enumerate()
            .flat_map(|(i, d)| {
                if i % 7 == 3 {
                    docs[..dims].to_vec()
                } else {
                    d.to_vec()
                }
            })
            .collect();
        let levels: Vec<u8> = (0..n).map(|i| (i % 5) as u8).collect();
        let queries: Vec<f32> = (0..4 * dims).map(|i| value(i + 77)).collect();
        let got = top_k(&docs, dims, &levels, 5, &queries);
        for (q, query) in queries.chunks(dims).enumerate() {
            for level in 0..5u8 {
                assert_eq!(
                    got[q][usize::from(level)],
                    naive(&docs, dims, &levels, level, query),
                    "query {q} level {level}"
                );
            }
        }
    }

    #[test]
    fn recall_counts_what_was_found() {
        assert_eq!(recall(&[1, 2, 3, 4], &[4, 9, 1]), 0.5);
        assert_eq!(recall(&[], &[]), 1.0);
        assert_eq!(recall(&[], &[5]), 0.0);
    }
}
