//! What readers search: [`VectorSnapshot`], an immutable view of one build (a graph and its
//! append-only points) at one generation, with exact and HNSW search, ACL-filtered or not.

use super::graph::Graph;
use super::params::VectorParams;
use super::simd::dot;
use crate::bm25::chunk_key;
use crate::error::{Error, Result};
use quarry_core::ContentHash;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The points of the index: append-only hashes and vectors, shared by all snapshots of one graph.
#[derive(Default)]
pub(super) struct Points {
    pub(super) hashes: Vec<ContentHash>,
    /// `hashes.len() × dims` floats, row-major.
    pub(super) vectors: Vec<f32>,
    /// The latest point id of each chunk key ([`chunk_key`]), for ACL-filtered search.
    pub(super) by_key: HashMap<u64, usize>,
}

impl Points {
    pub(super) fn push(&mut self, hash: ContentHash, v: &[f32]) -> usize {
        let id = self.hashes.len();
        self.hashes.push(hash);
        self.vectors.extend_from_slice(v);
        self.by_key.insert(chunk_key(&hash), id);
        id
    }
}

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

/// A graph and its points: one build. A rebuild makes a new one; old snapshots keep theirs.
pub(super) struct Build {
    pub(super) graph: Graph,
    pub(super) points: RwLock<Points>,
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

    fn alive(&self, id: usize) -> bool {
        id < self.upto && !self.dead.get(id).copied().unwrap_or(false)
    }

    /// The `k` nearest live chunks to `query` (normalised), with their cosine similarity, best
    /// first. Exact below the threshold, HNSW above it.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(ContentHash, f32)>> {
        if query.len() != self.dims {
            return Err(Error::Input(format!(
                "query vector has {} dimensions; this index holds {}",
                query.len(),
                self.dims
            )));
        }
        if k == 0 || self.live == 0 {
            return Ok(Vec::new());
        }
        let points = self.build.points.read().unwrap_or_else(|p| p.into_inner());
        let ids: Vec<(usize, f32)> = if self.live < self.exact_threshold {
            self.exact(&points, query, k)
        } else {
            let ef = self.ef_search.max(k);
            // A filtered hnsw_rs search never stops early; filter only when some point of the
            // graph is dead or newer than this snapshot.
            let all_alive = self.live == self.upto && points.hashes.len() == self.upto;
            let filter = |id: &usize| self.alive(*id);
            self.build.graph.search(
                query,
                k,
                ef,
                (!all_alive).then_some(&filter as &dyn Fn(&usize) -> bool),
            )
        };
        Ok(ids
            .into_iter()
            .filter_map(|(id, sim)| points.hashes.get(id).map(|h| (*h, sim)))
            .collect())
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
        if query.len() != self.dims {
            return Err(Error::Input(format!(
                "query vector has {} dimensions; this index holds {}",
                query.len(),
                self.dims
            )));
        }
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
        let points = self.build.points.read().unwrap_or_else(|p| p.into_inner());
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
            (self.exact_among(&points, query, k, ids), FilterPlan::Exact)
        } else if self.live < self.exact_threshold {
            let ids = (0..self.upto)
                .filter(|id| self.alive(*id) && permitted.admits(chunk_key(&points.hashes[*id])));
            (self.exact_among(&points, query, k, ids), FilterPlan::Exact)
        } else {
            let filter = |id: &usize| {
                self.alive(*id)
                    && points
                        .hashes
                        .get(*id)
                        .is_some_and(|h| permitted.admits(chunk_key(h)))
            };
            // First the unfiltered walk for enough neighbours that about twice `k` of them are
            // expected to be permitted, keeping those that are: when `k` are, they are the
            // permitted top k (any better permitted point would be among those neighbours).
            // hnsw_rs's filtered walk does not stop early, so this is much cheaper when it
            // suffices; otherwise the filtered walk runs.
            let fraction = (count as f32 / self.live as f32).min(1.0);
            let wide = (OVERSAMPLE * k as f32 / fraction).ceil() as usize;
            let oversampled = (wide <= MAX_OVERSAMPLED).then(|| {
                let ef = self.ef_search.max(wide);
                let mut hits = self.build.graph.search(query, wide, ef, None);
                hits.retain(|(id, _)| filter(id));
                hits.truncate(k);
                hits
            });
            match oversampled {
                Some(hits) if hits.len() == k => (hits, FilterPlan::Graph),
                _ => {
                    let ef = self.ef_search.max(k);
                    (
                        self.build.graph.search(query, k, ef, Some(&filter)),
                        FilterPlan::Graph,
                    )
                }
            }
        };
        Ok((
            found
                .into_iter()
                .filter_map(|(id, sim)| points.hashes.get(id).map(|h| (*h, sim)))
                .collect(),
            plan,
        ))
    }

    /// The cosine similarity of `query` to each chunk of `keys` ([`chunk_key`]), `None` for a
    /// chunk without a live vector in this snapshot.
    pub fn similarities(&self, query: &[f32], keys: &[u64]) -> Vec<Option<f32>> {
        if query.len() != self.dims {
            return vec![None; keys.len()];
        }
        let points = self.build.points.read().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .map(|key| {
                let id = *points.by_key.get(key)?;
                self.alive(id)
                    .then(|| dot(query, &points.vectors[id * self.dims..(id + 1) * self.dims]))
            })
            .collect()
    }

    /// The stored vector of each chunk of `keys` ([`chunk_key`]), `None` for a chunk without a
    /// live vector in this snapshot (for diversity, which compares candidates with each other).
    pub fn vectors_of(&self, keys: &[u64]) -> Vec<Option<Vec<f32>>> {
        let points = self.build.points.read().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .map(|key| {
                let id = *points.by_key.get(key)?;
                self.alive(id)
                    .then(|| points.vectors[id * self.dims..(id + 1) * self.dims].to_vec())
            })
            .collect()
    }

    /// Exact top `k` among the points `ids` (alive), best first; equal similarities by chunk
    /// key (not by point id, which depends on the order chunks were inserted in).
    fn exact_among(
        &self,
        points: &Points,
        query: &[f32],
        k: usize,
        ids: impl IntoIterator<Item = usize>,
    ) -> Vec<(usize, f32)> {
        // min-heap of the best k by similarity
        let mut heap = std::collections::BinaryHeap::with_capacity(k + 1);
        for id in ids {
            let sim = dot(query, &points.vectors[id * self.dims..(id + 1) * self.dims]);
            heap.push(std::cmp::Reverse(Scored(
                sim,
                (chunk_key(&points.hashes[id]), id),
            )));
            if heap.len() > k {
                heap.pop();
            }
        }
        let mut out: Vec<Scored<(u64, usize)>> = heap.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out.into_iter().map(|s| (s.1.1, s.0)).collect()
    }

    /// Exact top `k` by scanning every live vector.
    pub fn exact_search(&self, query: &[f32], k: usize) -> Vec<(ContentHash, f32)> {
        let points = self.build.points.read().unwrap_or_else(|p| p.into_inner());
        self.exact(&points, query, k)
            .into_iter()
            .filter_map(|(id, sim)| points.hashes.get(id).map(|h| (*h, sim)))
            .collect()
    }

    fn exact(&self, points: &Points, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        let live = (0..self.upto).filter(|id| !self.dead.get(*id).copied().unwrap_or(false));
        self.exact_among(points, query, k, live)
    }
}

/// A point by similarity, ties to the smaller tag (`(chunk key, point id)` here, a point id in
/// the flat graph): a total order for heaps of candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Scored<T>(pub(super) f32, pub(super) T);
impl<T: Ord> Eq for Scored<T> {}
impl<T: Ord> PartialOrd for Scored<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Ord> Ord for Scored<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}
