//! A read-only HNSW graph in flat arrays, searched over int8 codes and rescored with the full
//! vectors: the compact form the scale work (issue 17) moves the served index to.
//!
//! hnsw_rs builds the graph; it keeps every vector as `f32` inside its points and every link as
//! an `Arc` to a heap node holding a pointer and a distance, about 4 KB per 384-dimension point
//! (`docs/design.md`, "Scale"). [`FlatGraph::from_graph`] copies the finished graph into:
//!
//! - **codes**: each vector as `dims` signed bytes with one `f32` scale (symmetric scalar
//!   quantization, `v ≈ scale · code`, `scale = max|v| / 127`): `dims + 4` bytes a point;
//! - **layer 0**: `m0` (= 2·M) neighbour ids of 4 bytes a point, padded with [`NONE`];
//! - **upper layers**: the lists of the few points above layer 0 (about one in M), by layer.
//!
//! A search walks the upper layers greedily and layer 0 as a beam of `ef` candidates, like
//! hnsw_rs's own search, but compares int8 codes (the query quantized the same way; one integer
//! dot product of `dims` bytes, auto-vectorised with the CPU's widest SIMD through `pulp`). The
//! beam's live points are then rescored with their full vectors (`exact`, from memory or disk)
//! and the best `k` returned, so quantization error costs recall only where it pushes a true
//! neighbour out of the beam. A filter (`alive`) admits points into the results, never prunes the
//! traversal: the beam still walks through points the caller may not see.

use super::graph::Graph;
use super::snapshot::Scored;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Padding of a layer-0 neighbour list.
pub(super) const NONE: u32 = u32::MAX;

/// A vector as int8 codes and a scale: `v[i] ≈ scale · code[i]`.
pub(super) fn quantize(v: &[f32], codes: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    codes.extend(
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// Integer dot product of two code vectors of one length, on the widest SIMD the CPU has: the
/// plain loop is compiled inside `pulp`'s dispatch, with that target's features enabled.
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    static ARCH: std::sync::LazyLock<pulp::Arch> = std::sync::LazyLock::new(pulp::Arch::new);
    ARCH.dispatch(DotI8(a, b))
}

struct DotI8<'a>(&'a [i8], &'a [i8]);

impl pulp::WithSimd for DotI8<'_> {
    type Output = i32;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> i32 {
        self.0
            .iter()
            .zip(self.1)
            .map(|(a, b)| i32::from(*a) * i32::from(*b))
            .sum()
    }
}

/// The flat, quantized copy of a finished graph. Point ids are the graph's (the index's point
/// numbers, `0..len`).
pub(super) struct FlatGraph {
    dims: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
    m0: usize,
    layer0: Vec<u32>,
    /// `(layer, point)` → that point's neighbours on that layer (layers ≥ 1).
    upper: HashMap<(u8, u32), Box<[u32]>>,
    entry: u32,
    top: u8,
}

impl FlatGraph {
    /// Copies `graph` (whose points are `0..vectors.len() / dims`, with these vectors) into flat
    /// arrays. `None` for an empty graph.
    pub(super) fn from_graph(
        graph: &Graph,
        vectors: &[f32],
        dims: usize,
        m: usize,
    ) -> Option<Self> {
        let n = vectors.len() / dims;
        let m0 = 2 * m;
        let mut codes = Vec::with_capacity(n * dims);
        let scales: Vec<f32> = vectors
            .chunks_exact(dims)
            .map(|v| quantize(v, &mut codes))
            .collect();
        let mut layer0 = vec![NONE; n * m0];
        let mut upper = HashMap::new();
        let (mut entry, mut top) = (None, 0u8);
        for point in graph.points() {
            let id = point.get_origin_id();
            if id >= n {
                continue;
            }
            let level = point.get_point_id().0;
            if entry.is_none() || level > top {
                entry = Some(id as u32);
                top = level;
            }
            // hnsw_rs also files a point's entry points on the layers above its own level (a
            // trace of its insertion); a search never reads them there
            let lists = point.get_neighborhood_id();
            for (layer, neighbours) in lists.iter().enumerate().take(usize::from(level) + 1) {
                let ids = neighbours
                    .iter()
                    .map(|nb| nb.d_id)
                    .filter(|&d| d < n)
                    .map(|d| d as u32);
                if layer == 0 {
                    for (slot, d) in layer0[id * m0..(id + 1) * m0].iter_mut().zip(ids) {
                        *slot = d;
                    }
                } else if !neighbours.is_empty() {
                    upper.insert((layer as u8, id as u32), ids.collect());
                }
            }
        }
        Some(FlatGraph {
            dims,
            codes,
            scales,
            m0,
            layer0,
            upper,
            entry: entry?,
            top,
        })
    }

    pub(super) fn len(&self) -> usize {
        self.scales.len()
    }

    /// Bytes this graph holds in memory (codes, scales, links; the map's own overhead
    /// estimated at 48 bytes an entry).
    pub(super) fn bytes(&self) -> usize {
        self.codes.len()
            + 4 * self.scales.len()
            + 4 * self.layer0.len()
            + self.upper.values().map(|l| 48 + 4 * l.len()).sum::<usize>()
    }

    fn code(&self, id: u32) -> &[i8] {
        let i = id as usize * self.dims;
        &self.codes[i..i + self.dims]
    }

    /// Approximate similarity of the quantized query to point `id`.
    fn approx(&self, q: &[i8], q_scale: f32, id: u32) -> f32 {
        q_scale * self.scales[id as usize] * dot_i8(q, self.code(id)) as f32
    }

    fn neighbours(&self, layer: u8, id: u32) -> &[u32] {
        if layer == 0 {
            let i = id as usize * self.m0;
            let list = &self.layer0[i..i + self.m0];
            let len = list.iter().position(|&d| d == NONE).unwrap_or(self.m0);
            &list[..len]
        } else {
            self.upper.get(&(layer, id)).map_or(&[], |l| l)
        }
    }

    /// The `k` points most similar to `query` that `alive` admits (every point when `None`),
    /// best first, as `(point id, similarity)` with the similarity from `exact` (the point's full
    /// vector). `ef` is the beam width (raised to `k`).
    pub(super) fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        alive: Option<&dyn Fn(u32) -> bool>,
        exact: &dyn Fn(u32) -> f32,
    ) -> Vec<(u32, f32)> {
        if k == 0 || self.scales.is_empty() {
            return Vec::new();
        }
        let ef = ef.max(k);
        let mut q = Vec::with_capacity(self.dims);
        let q_scale = quantize(query, &mut q);
        let sim = |id: u32| self.approx(&q, q_scale, id);
        // greedy descent through the upper layers
        let mut cur = Scored(sim(self.entry), self.entry);
        for layer in (1..=self.top).rev() {
            loop {
                let best = self
                    .neighbours(layer, cur.1)
                    .iter()
                    .map(|&d| Scored(sim(d), d))
                    .max()
                    .filter(|s| *s > cur);
                match best {
                    Some(s) => cur = s,
                    None => break,
                }
            }
        }
        // beam search on layer 0 (hnswlib's filtered form): `results` holds the `ef` best points
        // `alive` admits and bounds the walk; the candidates include every point
        let mut visited = vec![0u64; self.len().div_ceil(64)];
        let mut seen = |id: u32| {
            let (w, b) = (id as usize / 64, id % 64);
            let was = visited[w] >> b & 1 == 1;
            visited[w] |= 1 << b;
            was
        };
        let admits = |id: u32| alive.is_none_or(|f| f(id));
        seen(cur.1);
        let mut candidates = BinaryHeap::from([cur]);
        let mut results: BinaryHeap<Reverse<Scored<u32>>> = BinaryHeap::new();
        if admits(cur.1) {
            results.push(Reverse(cur));
        }
        let full_and_worse = |results: &BinaryHeap<Reverse<Scored<u32>>>, s: Scored<u32>| {
            results.len() >= ef && results.peek().is_some_and(|Reverse(w)| s < *w)
        };
        while let Some(c) = candidates.pop() {
            if full_and_worse(&results, c) {
                break;
            }
            for &d in self.neighbours(0, c.1) {
                if seen(d) {
                    continue;
                }
                let s = Scored(sim(d), d);
                if !full_and_worse(&results, s) {
                    candidates.push(s);
                    if admits(d) {
                        results.push(Reverse(s));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        // rescore the results with the full vectors
        let mut rescored: Vec<(u32, f32)> = results
            .into_iter()
            .map(|Reverse(Scored(_, id))| (id, exact(id)))
            .collect();
        rescored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        rescored.truncate(k);
        rescored
    }
}

#[cfg(test)]
#[path = "flat_tests.rs"]
mod tests;
