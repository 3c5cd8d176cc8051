//! What readers search: [`VectorSnapshot`], an immutable view of one build (a graph and its
//! append-only points) at one generation, with exact and HNSW search, ACL-filtered or not.

use super::build::{Build, Points};
use super::codes::QueryCodes;
use super::flat::FlatGraph;
use super::params::VectorParams;
use super::part::{MAX_TAIL, Part};
use super::scored::Scored;
use super::simd::dot;
use crate::bm25::chunk_key;
use crate::error::{Error, Result};
use quarry_core::ContentHash;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How many more neighbours than `k`, divided by the permitted fraction, the unfiltered walk of a
/// filtered search looks at before it falls back to the filtered walk.
const OVERSAMPLE: f32 = 2.0;
/// The most neighbours that unfiltered walk asks for (at `k` = 10, permitted fractions from
/// about 4 %).
const MAX_OVERSAMPLED: usize = 512;

/// The chunks a caller may get from a filtered vector search, by [`chunk_key`].
pub trait Permitted {
    /// How many chunks are permitted (those with and without a vector).
    fn count(&self) -> usize;
    /// Whether the chunk with this key is permitted.
    fn admits(&self, key: u64) -> bool;
    /// Every permitted chunk's key (asked only when [`Permitted::count`] is small).
    fn keys(&self) -> Vec<u64>;
    /// Whether every chunk is permitted (the search is then the unfiltered one).
    fn all(&self) -> bool {
        false
    }
}

impl Permitted for std::collections::HashSet<u64> {
    fn count(&self) -> usize {
        self.len()
    }
    fn admits(&self, key: u64) -> bool {
        self.contains(&key)
    }
    fn keys(&self) -> Vec<u64> {
        self.iter().copied().collect()
    }
}

/// How an ACL-filtered vector search ran (for `explain` and the bench).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterPlan {
    /// The caller may read nothing with a vector.
    Empty,
    /// Every permitted vector scanned (few permitted).
    Exact,
    /// HNSW traversal with the permission filter applied to every candidate.
    Graph,
}

/// An immutable view of the index at one generation.
pub struct VectorSnapshot {
    build: Arc<Build>,
    dims: usize,
    /// Points `0..upto` exist in this snapshot.
    pub(super) upto: usize,
    /// Tombstoned point ids (sorted), as of this snapshot.
    dead: Arc<Vec<bool>>,
    live: usize,
    ef_search: usize,
    exact_threshold: usize,
    filter_exact_fraction: f32,
    /// The build's flat copy of its open graph when this snapshot was published.
    frozen: Option<Arc<FlatGraph>>,
}

impl VectorSnapshot {
    /// The snapshot of `build` whose points are those `dead` covers (tombstones marked), with
    /// `live` of them alive.
    pub(super) fn new(
        build: Arc<Build>,
        dims: usize,
        dead: Vec<bool>,
        live: usize,
        params: VectorParams,
    ) -> Self {
        VectorSnapshot {
            frozen: build.frozen(),
            build,
            dims,
            upto: dead.len(),
            dead: Arc::new(dead),
            live,
            ef_search: params.ef_search,
            exact_threshold: params.exact_threshold,
            filter_exact_fraction: params.filter_exact_fraction,
        }
    }

    /// Whether this is a snapshot of `build`.
    pub(super) fn on(&self, build: &Arc<Build>) -> bool {
        Arc::ptr_eq(&self.build, build)
    }

    /// This snapshot's points, tombstones and settings on `build`, a build with the same point
    /// ids (the one a seal made of this one's).
    pub(super) fn on_build(&self, build: Arc<Build>) -> Self {
        VectorSnapshot {
            build,
            dims: self.dims,
            upto: self.upto,
            dead: self.dead.clone(),
            live: self.live,
            ef_search: self.ef_search,
            exact_threshold: self.exact_threshold,
            filter_exact_fraction: self.filter_exact_fraction,
            frozen: None,
        }
    }

    /// How many open points the flat copy this snapshot searches covers (`None`: no copy), and
    /// the parts a graph search walks ([`Part::kind`]).
    #[cfg(test)]
    pub(super) fn frozen_points(&self) -> (Option<usize>, Vec<&'static str>) {
        let points = self.build.read_points();
        let kinds = self.parts(&points).iter().map(Part::kind).collect();
        (self.frozen.as_ref().map(|f| f.len()), kinds)
    }

    /// Live vectors in this snapshot.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// How many sealed segments the snapshot searches, and the bytes of memory they hold.
    pub fn sealed(&self) -> (usize, usize) {
        (self.build.sealed.len(), self.build.sealed_bytes())
    }

    fn alive(&self, id: usize) -> bool {
        id < self.upto && !self.dead.get(id).copied().unwrap_or(false)
    }

    fn check_dims(&self, query: &[f32]) -> Result<()> {
        if query.len() != self.dims {
            return Err(Error::Input(format!(
                "query vector has {} dimensions; this index holds {}",
                query.len(),
                self.dims
            )));
        }
        Ok(())
    }

    /// The parts a graph search walks ([`VectorSnapshot::parts`]); marks the build's copy of
    /// its open graph as wanted when this snapshot has open points outside it.
    fn walk<'a>(&'a self, points: &'a Points) -> Vec<Part<'a>> {
        let copied = self.frozen.as_ref().map_or(0, |f| f.len());
        if self.upto > points.open_base + copied {
            self.build.wanted.store(true, Ordering::Relaxed);
        }
        self.parts(points)
    }

    /// Each sealed segment, then, when this snapshot has points in the open graph, its flat
    /// copy and the points past it, or the graph itself.
    fn parts<'a>(&'a self, points: &'a Points) -> Vec<Part<'a>> {
        let mut parts: Vec<Part<'a>> = self.build.sealed.iter().map(|s| Part::Sealed(s)).collect();
        let base = points.open_base;
        if self.upto <= base {
            return parts;
        }
        let near =
            |f: &&Arc<FlatGraph>| (f.len()..=f.len() + MAX_TAIL).contains(&(self.upto - base));
        if let Some(flat) = self.frozen.as_ref().filter(near) {
            let tail = (flat.len() * self.dims)..((self.upto - base) * self.dims);
            if let Some(v) = points.vectors.get(tail) {
                parts.push(Part::Frozen(flat, base));
                if !v.is_empty() {
                    parts.push(Part::Tail(base + flat.len(), v, self.dims));
                }
                return parts;
            }
        }
        parts.push(Part::Open(&self.build.graph));
        parts
    }

    /// The `k` nearest live chunks to `query` (normalised), with their cosine similarity, best
    /// first. Exact below the threshold, HNSW above it.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(ContentHash, f32)>> {
        self.check_dims(query)?;
        if k == 0 || self.live == 0 {
            return Ok(Vec::new());
        }
        let points = self.build.read_points();
        let ids: Vec<(usize, f32)> = if self.live < self.exact_threshold {
            self.exact(&points, query, k)?
        } else {
            let ef = self.ef_search.max(k);
            // A filtered hnsw_rs search never stops early; filter only when some point of the
            // graph is dead or newer than this snapshot.
            let all_alive = self.live == self.upto && points.hashes.len() == self.upto;
            let filter = |id: usize| self.alive(id);
            let alive = (!all_alive).then_some(&filter as &dyn Fn(usize) -> bool);
            let q = QueryCodes::new(query);
            let mut found = Vec::new();
            for part in self.walk(&points) {
                found.extend(part.search(&q, k, ef, alive));
            }
            self.rescore(&points, query, k, found)?
        };
        Ok(self.hashes_of(&points, ids))
    }

    fn hashes_of(&self, points: &Points, ids: Vec<(usize, f32)>) -> Vec<(ContentHash, f32)> {
        ids.into_iter()
            .filter_map(|(id, sim)| points.hashes.get(id).map(|h| (*h, sim)))
            .collect()
    }

    /// [`VectorSnapshot::search_admitted`] over the chunks whose [`chunk_key`] is in `permitted`.
    pub fn search_permitted(
        &self,
        query: &[f32],
        k: usize,
        permitted: &[u64],
    ) -> Result<(Vec<(ContentHash, f32)>, FilterPlan)> {
        let set: std::collections::HashSet<u64> = permitted.iter().copied().collect();
        self.search_admitted(query, k, &set)
    }

    /// The `k` nearest live chunks to `query` among those `permitted` admits (an ACL and
    /// metadata filter), best first. With few permitted chunks ([`Permitted::count`] under
    /// [`VectorParams::filter_exact_fraction`] of the live vectors, or under `exact_threshold`)
    /// their vectors are scanned exactly; otherwise the graph is traversed and each point it
    /// reaches is asked [`Permitted::admits`], so the cost follows the walk, not the size of the
    /// permitted set, and `k` permitted results come back whenever `k` exist.
    pub fn search_admitted(
        &self,
        query: &[f32],
        k: usize,
        permitted: &dyn Permitted,
    ) -> Result<(Vec<(ContentHash, f32)>, FilterPlan)> {
        self.check_dims(query)?;
        let count = permitted.count();
        if k == 0 || count == 0 || self.live == 0 {
            return Ok((Vec::new(), FilterPlan::Empty));
        }
        if permitted.all() {
            let plan = if self.live < self.exact_threshold {
                FilterPlan::Exact
            } else {
                FilterPlan::Graph
            };
            return Ok((self.search(query, k)?, plan));
        }
        let few = (count as f32) < self.filter_exact_fraction * self.live as f32;
        let points = self.build.read_points();
        let (found, plan) = if count < self.exact_threshold || few {
            let mut ids: Vec<usize> = permitted
                .keys()
                .iter()
                .filter_map(|key| points.by_key.get(key).copied())
                .filter(|id| self.alive(*id))
                .collect();
            if ids.is_empty() {
                return Ok((Vec::new(), FilterPlan::Empty));
            }
            ids.sort_unstable();
            ids.dedup();
            (self.exact_among(&points, query, k, ids)?, FilterPlan::Exact)
        } else if self.live < self.exact_threshold {
            let ids = (0..self.upto)
                .filter(|id| self.alive(*id) && permitted.admits(chunk_key(&points.hashes[*id])));
            (self.exact_among(&points, query, k, ids)?, FilterPlan::Exact)
        } else {
            let filter = |id: usize| {
                self.alive(id)
                    && points
                        .hashes
                        .get(id)
                        .is_some_and(|h| permitted.admits(chunk_key(h)))
            };
            // First the unfiltered walk for enough neighbours that about twice `k` of them are
            // expected to be permitted, keeping those that are: when `k` are, they are the
            // permitted top k of that part (any better permitted point would be among those
            // neighbours). A filtered walk does not stop early, so this is much cheaper when it
            // suffices; otherwise the part's filtered walk runs.
            let fraction = (count as f32 / self.live as f32).min(1.0);
            let wide = (OVERSAMPLE * k as f32 / fraction).ceil() as usize;
            let q = QueryCodes::new(query);
            let mut found = Vec::new();
            for part in self.walk(&points) {
                let oversampled = if wide <= MAX_OVERSAMPLED {
                    let mut hits = part.search(&q, wide, self.ef_search.max(wide), None);
                    hits.retain(|(id, _)| filter(*id));
                    hits.truncate(self.build.rescored(k));
                    Some(hits)
                } else {
                    None
                };
                match oversampled {
                    Some(hits) if hits.len() >= k => found.extend(hits),
                    _ => found.extend(part.search(&q, k, self.ef_search.max(k), Some(&filter))),
                }
            }
            (self.rescore(&points, query, k, found)?, FilterPlan::Graph)
        };
        Ok((self.hashes_of(&points, found), plan))
    }

    /// The exact top `k` of the candidates `found` gathered from the parts of a graph search:
    /// the overall best [`Build::rescored`]`(k)` by their (approximate)
    /// similarity compared with their full vectors (from memory for open points, from disk for
    /// sealed ones): one read per candidate of the whole search, not per segment.
    fn rescore(
        &self,
        points: &Points,
        query: &[f32],
        k: usize,
        found: Vec<(usize, f32)>,
    ) -> Result<Vec<(usize, f32)>> {
        let mut v = vec![0f32; self.dims];
        super::flat::rescore(found, self.build.rescored(k), k, |id| {
            self.build.vector(points, id, &mut v)?;
            Ok(dot(query, &v))
        })
    }

    /// The ids of `keys` ([`chunk_key`]) with a live point in this snapshot.
    fn live_ids(&self, points: &Points, keys: &[u64]) -> Vec<Option<usize>> {
        keys.iter()
            .map(|key| points.by_key.get(key).copied().filter(|id| self.alive(*id)))
            .collect()
    }

    /// The cosine similarity of `query` to each chunk of `keys` ([`chunk_key`]), `None` for a
    /// chunk without a live vector in this snapshot (or whose vector could not be read: logged).
    pub fn similarities(&self, query: &[f32], keys: &[u64]) -> Vec<Option<f32>> {
        if query.len() != self.dims {
            return vec![None; keys.len()];
        }
        self.vectors_of(keys)
            .into_iter()
            .map(|v| v.map(|v| dot(query, &v)))
            .collect()
    }

    /// The stored vector of each chunk of `keys` ([`chunk_key`]), `None` for a chunk without a
    /// live vector in this snapshot (for diversity, which compares candidates with each other).
    pub fn vectors_of(&self, keys: &[u64]) -> Vec<Option<Vec<f32>>> {
        let points = self.build.read_points();
        self.live_ids(&points, keys)
            .into_iter()
            .map(|id| {
                let mut v = vec![0f32; self.dims];
                match self.build.vector(&points, id?, &mut v) {
                    Ok(()) => Some(v),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read a stored vector");
                        None
                    }
                }
            })
            .collect()
    }

    /// Exact top `k` among the points `ids` (alive), best first; equal similarities by chunk
    /// key (not by point id, which depends on the order chunks were inserted in). Open points
    /// are compared from memory; sealed ones by their codes first, and only the best
    /// [`Build::rescored`] of those read from disk and compared exactly.
    fn exact_among(
        &self,
        points: &Points,
        query: &[f32],
        k: usize,
        ids: impl IntoIterator<Item = usize>,
    ) -> Result<Vec<(usize, f32)>> {
        let mut top = TopK::new(k);
        let mut sealed = TopK::new(self.build.rescored(k));
        let q = QueryCodes::new(query);
        // sealed points in batches: each batch's codes loaded together (random points of
        // segments far larger than the caches: their misses overlap), then scored
        let mut batch: Vec<usize> = Vec::with_capacity(LOAD_BATCH);
        let score = |batch: &mut Vec<usize>, sealed: &mut TopK| -> Result<()> {
            for run in batch.chunk_by(|a, b| self.build.same_segment(*a, *b)) {
                self.build.segment_of(run[0])?.load(run);
            }
            for &id in batch.iter() {
                sealed.push(points, id, self.build.segment_of(id)?.approx(&q, id));
            }
            batch.clear();
            Ok(())
        };
        for id in ids {
            match points.open_vector(id, self.dims) {
                Some(v) => top.push(points, id, dot(query, v)),
                None => {
                    batch.push(id);
                    if batch.len() == LOAD_BATCH {
                        score(&mut batch, &mut sealed)?;
                    }
                }
            }
        }
        score(&mut batch, &mut sealed)?;
        let mut v = vec![0f32; self.dims];
        for (id, _) in sealed.into_sorted() {
            self.build.vector(points, id, &mut v)?;
            top.push(points, id, dot(query, &v));
        }
        Ok(top.into_sorted())
    }

    /// Exact top `k` by scanning every live vector.
    pub fn exact_search(&self, query: &[f32], k: usize) -> Result<Vec<(ContentHash, f32)>> {
        let points = self.build.read_points();
        let found = self.exact(&points, query, k)?;
        Ok(self.hashes_of(&points, found))
    }

    fn exact(&self, points: &Points, query: &[f32], k: usize) -> Result<Vec<(usize, f32)>> {
        let mut top = TopK::new(k);
        self.build.scan(points, self.dims, self.upto, |id, v| {
            if self.alive(id) {
                top.push(points, id, dot(query, v));
            }
        })?;
        Ok(top.into_sorted())
    }
}

/// Sealed points whose codes [`VectorSnapshot::exact_among`] loads together.
const LOAD_BATCH: usize = 32;

/// The best `k` of an exact scan, ties by chunk key.
struct TopK {
    k: usize,
    /// min-heap of the best k by similarity
    heap: std::collections::BinaryHeap<std::cmp::Reverse<Scored<(u64, usize)>>>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            heap: std::collections::BinaryHeap::with_capacity(k + 1),
        }
    }

    fn push(&mut self, points: &Points, id: usize, sim: f32) {
        // below the k-th best: out without reading its chunk key (a miss per point otherwise)
        let full = self.heap.len() >= self.k;
        if full && self.heap.peek().is_some_and(|w| sim < w.0.0) {
            return;
        }
        self.heap.push(std::cmp::Reverse(Scored(
            sim,
            (chunk_key(&points.hashes[id]), id),
        )));
        if self.heap.len() > self.k {
            self.heap.pop();
        }
    }

    fn into_sorted(self) -> Vec<(usize, f32)> {
        let mut out: Vec<Scored<(u64, usize)>> = self.heap.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out.into_iter().map(|s| (s.1.1, s.0)).collect()
    }
}
