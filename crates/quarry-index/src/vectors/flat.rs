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
use super::scored::Scored;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// How many of the best candidates by their int8 codes are read from disk and compared exactly
/// to return the top `k`: `2k + 16` (quantization moved a similarity by at most 0.0023 in
/// `flat_tests::approximate_similarities_are_close`; a true top-k point ranks past that only
/// among near-ties that close).
pub(super) fn rescored(k: usize) -> usize {
    k.saturating_mul(2).saturating_add(16)
}

/// The first bytes of an encoded flat graph (format 1).
const MAGIC: &[u8; 8] = b"QFLAT001";

/// A cursor over the bytes of an encoded graph.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(len).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, String> {
        let len = n.checked_mul(4).ok_or("length overflows")?;
        Ok(self
            .take(len)?
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

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
    /// Copies `graph` (whose points are `base..base + vectors.len() / dims`, with these vectors)
    /// into flat arrays, as points `0..`: point `base + i` of the graph is point `i` here. `None`
    /// for an empty graph.
    pub(super) fn from_graph(
        graph: &Graph,
        base: usize,
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
            let Some(id) = point.get_origin_id().checked_sub(base).filter(|&id| id < n) else {
                continue;
            };
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
                    .filter_map(|nb| nb.d_id.checked_sub(base))
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

    /// The graph as bytes (the `flat.bin` of a sealed segment): [`MAGIC`], then `dims`, points,
    /// `m0`, entry, top layer and the number of upper lists as little-endian `u32`s, the scales,
    /// the codes, layer 0, and each upper list as layer, point, length and ids.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.bytes());
        out.extend_from_slice(MAGIC);
        let mut words = Vec::with_capacity(6 + self.layer0.len());
        let mut upper: Vec<_> = self.upper.iter().collect();
        upper.sort_by_key(|(key, _)| **key);
        for v in [
            self.dims,
            self.len(),
            self.m0,
            self.entry as usize,
            usize::from(self.top),
            upper.len(),
        ] {
            words.push(v as u32);
        }
        for w in words.drain(..) {
            out.extend_from_slice(&w.to_le_bytes());
        }
        for s in &self.scales {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.extend(self.codes.iter().map(|c| *c as u8));
        for d in &self.layer0 {
            out.extend_from_slice(&d.to_le_bytes());
        }
        for ((layer, id), list) in upper {
            for w in [u32::from(*layer), *id, list.len() as u32] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            for d in list.iter() {
                out.extend_from_slice(&d.to_le_bytes());
            }
        }
        out
    }

    /// Reads back [`FlatGraph::encode`]'s bytes of a graph of `dims` dimensions; every length and
    /// neighbour id is checked, so no byte string makes a search index out of bounds.
    pub(super) fn decode(bytes: &[u8], dims: usize) -> Result<Self, String> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err("not a quarry flat graph (wrong magic bytes)".into());
        }
        let [file_dims, n, m0, entry, top, n_upper] = [(); 6].map(|_| r.u32());
        let (file_dims, n, m0) = (file_dims? as usize, n? as usize, m0? as usize);
        let (entry, top, n_upper) = (entry?, top?, n_upper? as usize);
        if file_dims != dims {
            return Err(format!("{file_dims} dimensions, expected {dims}"));
        }
        if n == 0 || entry as usize >= n || top as usize > 16 || m0 == 0 || m0 > 1024 {
            return Err(format!(
                "bad header: {n} points, entry {entry}, top layer {top}, m0 {m0}"
            ));
        }
        let id_ok = |d: u32| (d as usize) < n;
        let scales = r
            .take(4 * n)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let codes = r.take(n * dims)?.iter().map(|b| *b as i8).collect();
        let layer0: Vec<u32> = r.u32s(n * m0)?;
        if layer0.iter().any(|&d| d != NONE && !id_ok(d)) {
            return Err("a layer-0 neighbour is out of range".into());
        }
        // each list takes at least 12 bytes: no count allocates more than the bytes could hold
        let mut upper = HashMap::with_capacity(n_upper.min((bytes.len() - r.at) / 12));
        for _ in 0..n_upper {
            let (layer, id, len) = (r.u32()?, r.u32()?, r.u32()? as usize);
            if layer == 0 || layer > top || !id_ok(id) || len > n {
                return Err(format!("bad upper list of point {id} on layer {layer}"));
            }
            let list = r.u32s(len)?;
            if !list.iter().all(|&d| id_ok(d)) {
                return Err("an upper-layer neighbour is out of range".into());
            }
            upper.insert((layer as u8, id), list.into_boxed_slice());
        }
        if r.at != bytes.len() {
            return Err(format!("{} bytes after the graph", bytes.len() - r.at));
        }
        Ok(FlatGraph {
            dims,
            codes,
            scales,
            m0,
            layer0,
            upper,
            entry,
            top: top as u8,
        })
    }

    fn code(&self, id: u32) -> &[i8] {
        let i = id as usize * self.dims;
        &self.codes[i..i + self.dims]
    }

    /// Approximate similarity of the quantized query to point `id`.
    pub(super) fn approx(&self, q: &[i8], q_scale: f32, id: u32) -> f32 {
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
        // rescore the best results by their codes with the full vectors
        let mut best: Vec<Scored<u32>> = results.into_iter().map(|Reverse(s)| s).collect();
        best.sort_by(|a, b| b.cmp(a));
        best.truncate(rescored(k));
        let mut rescored: Vec<(u32, f32)> = best
            .into_iter()
            .map(|Scored(_, id)| (id, exact(id)))
            .collect();
        rescored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        rescored.truncate(k);
        rescored
    }
}

#[cfg(test)]
#[path = "flat_tests.rs"]
mod tests;
