//! The vector index of one collection and one embedding fingerprint: an HNSW graph (hnsw_rs) over
//! L2-normalised vectors, with cosine similarity as `1 − dot`.
//!
//! - **Vectors are stored on their own**, in the catalog's `embeddings` table keyed by
//!   `(fingerprint, chunk_hash)` (which is also the embedding cache). The graph is derived: it can
//!   always be rebuilt from there without calling a model.
//! - **Points are append-only.** Point `i` is the `i`-th chunk inserted. A chunk that leaves the
//!   collection becomes a tombstone: it stays in the graph (so traversal still works) and is filtered
//!   out of results. Past [`VectorParams::rebuild_tombstone_ratio`] the graph is rebuilt from the live
//!   vectors.
//! - **Snapshots.** Readers get a [`VectorSnapshot`]: the points that existed at one generation and
//!   the tombstones of that generation. Writers append to the shared graph concurrently (hnsw_rs
//!   inserts through `&self`); a snapshot filters out points newer than itself.
//! - **Exact search below a size threshold.** With fewer live points than
//!   [`VectorParams::exact_threshold`] a query scans every vector: exact, and as fast as the graph at
//!   that size.
//! - **Persistence.** [`VectorIndex::dump`] writes the graph, the point ids and the tombstones to a
//!   new folder and then switches `manifest.json` to it (write, fsync, rename), with the generation
//!   it reflects and the blake3 hash of every file. On open every file is hashed and compared
//!   before hnsw_rs reads a byte of it (hnsw_rs trusts the lengths in its files: a damaged one can
//!   make it allocate petabytes or exit the process), then the graph is reloaded and the catalog's
//!   change log since that generation replayed. A missing, damaged or unverifiable dump (one
//!   written before dumps had hashes) means a rebuild from the stored vectors, with a warning.
//!   A dump never replaces a newer one another process wrote.

mod graph;

use crate::bm25::chunk_key;
use crate::error::{Error, Result};
use graph::Graph;
use quarry_core::ContentHash;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// HNSW and exact-search settings (`[vector]` in `quarry.toml`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VectorParams {
    /// Links per node (`M`); layer 0 keeps up to `2·M`.
    pub m: usize,
    pub ef_construction: usize,
    /// Candidate list size at query time (raised to the number of results asked for).
    pub ef_search: usize,
    /// Below this many live vectors, queries scan every vector instead of the graph.
    pub exact_threshold: usize,
    /// Rebuild the graph when this fraction of its points are tombstones.
    pub rebuild_tombstone_ratio: f32,
    /// An ACL-filtered query scans the caller's permitted vectors exactly, instead of traversing
    /// the graph with a filter, when they are fewer than this fraction of the live vectors (or
    /// fewer than `exact_threshold`).
    pub filter_exact_fraction: f32,
}

impl Default for VectorParams {
    fn default() -> Self {
        VectorParams {
            m: 16,
            ef_construction: 200,
            // 64 (was 128): on SciFact at the default chunking (37,366 vectors), vector nDCG@10
            // at top_k=10 0.7012 against 0.7023 and hybrid 0.7397 against 0.7396, with the
            // vector search about 1.6× faster (README, "Latency")
            ef_search: 64,
            exact_threshold: 4096,
            rebuild_tombstone_ratio: 0.25,
            filter_exact_fraction: 0.05,
        }
    }
}

impl VectorParams {
    pub fn validate(&self) -> Result<()> {
        let bad =
            |what: &str, why: String| Err(Error::Input(format!("invalid vector.{what}: {why}")));
        if !(2..=128).contains(&self.m) {
            return bad("m", format!("{}; use 2 to 128", self.m));
        }
        if !(1..=4096).contains(&self.ef_construction) {
            return bad(
                "ef_construction",
                format!("{}; use 1 to 4096", self.ef_construction),
            );
        }
        if !(1..=4096).contains(&self.ef_search) {
            return bad("ef_search", format!("{}; use 1 to 4096", self.ef_search));
        }
        if !(self.rebuild_tombstone_ratio > 0.0 && self.rebuild_tombstone_ratio <= 1.0) {
            return bad(
                "rebuild_tombstone_ratio",
                format!("{}; use a number in (0, 1]", self.rebuild_tombstone_ratio),
            );
        }
        if !(0.0..=1.0).contains(&self.filter_exact_fraction) {
            return bad(
                "filter_exact_fraction",
                format!("{}; use a number in [0, 1]", self.filter_exact_fraction),
            );
        }
        Ok(())
    }
}

/// Dot product; the similarity of two L2-normalised vectors (only `min(a.len(), b.len())`
/// elements count). Runs on the widest SIMD the CPU has, found at run time by `pulp` (AVX2 with
/// fused multiply-adds on this project's x86-64 machines), not the SSE2 baseline the build
/// targets: the graph search spends much of its time here.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    static ARCH: std::sync::LazyLock<pulp::Arch> = std::sync::LazyLock::new(pulp::Arch::new);
    let n = a.len().min(b.len());
    ARCH.dispatch(Dot(&a[..n], &b[..n]))
}

/// [`dot`] of two slices of one length, for any SIMD width: two accumulators, then the rest.
struct Dot<'a>(&'a [f32], &'a [f32]);

impl pulp::WithSimd for Dot<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> f32 {
        let (a, a_rest) = S::as_simd_f32s(self.0);
        let (b, b_rest) = S::as_simd_f32s(self.1);
        let (a2, a1) = pulp::as_arrays::<2, _>(a);
        let (b2, b1) = pulp::as_arrays::<2, _>(b);
        let (mut acc0, mut acc1) = (simd.splat_f32s(0.0), simd.splat_f32s(0.0));
        for ([x0, x1], [y0, y1]) in a2.iter().zip(b2) {
            acc0 = simd.mul_add_e_f32s(*x0, *y0, acc0);
            acc1 = simd.mul_add_e_f32s(*x1, *y1, acc1);
        }
        for (x, y) in a1.iter().zip(b1) {
            acc0 = simd.mul_add_e_f32s(*x, *y, acc0);
        }
        let rest: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
        simd.reduce_sum_f32s(simd.add_f32s(acc0, acc1)) + rest
    }
}

/// The points of the index: append-only hashes and vectors, shared by all snapshots of one graph.
#[derive(Default)]
struct Points {
    hashes: Vec<ContentHash>,
    /// `hashes.len() × dims` floats, row-major.
    vectors: Vec<f32>,
    /// The latest point id of each chunk key ([`chunk_key`]), for ACL-filtered search.
    by_key: HashMap<u64, usize>,
}

impl Points {
    fn push(&mut self, hash: ContentHash, v: &[f32]) -> usize {
        let id = self.hashes.len();
        self.hashes.push(hash);
        self.vectors.extend_from_slice(v);
        self.by_key.insert(chunk_key(&hash), id);
        id
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
struct Build {
    graph: Graph,
    points: RwLock<Points>,
}

/// An immutable view of the index at one generation.
pub struct VectorSnapshot {
    build: Arc<Build>,
    dims: usize,
    /// Points `0..upto` exist in this snapshot.
    upto: usize,
    /// Tombstoned point ids (sorted), as of this snapshot.
    dead: Arc<Vec<bool>>,
    live: usize,
    ef_search: usize,
    exact_threshold: usize,
    filter_exact_fraction: f32,
}

impl VectorSnapshot {
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

    /// The `k` nearest live chunks to `query` among the chunks whose [`chunk_key`] is in
    /// `permitted` (an ACL filter), best first. With few permitted vectors
    /// ([`VectorParams::filter_exact_fraction`]) they are scanned exactly; otherwise the graph is
    /// traversed with the filter applied to every candidate, so `k` permitted results come back
    /// whenever `k` exist.
    pub fn search_permitted(
        &self,
        query: &[f32],
        k: usize,
        permitted: &[u64],
    ) -> Result<(Vec<(ContentHash, f32)>, FilterPlan)> {
        if query.len() != self.dims {
            return Err(Error::Input(format!(
                "query vector has {} dimensions; this index holds {}",
                query.len(),
                self.dims
            )));
        }
        let points = self.build.points.read().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<usize> = permitted
            .iter()
            .filter_map(|key| points.by_key.get(key).copied())
            .filter(|id| self.alive(*id))
            .collect();
        if k == 0 || ids.is_empty() {
            return Ok((Vec::new(), FilterPlan::Empty));
        }
        ids.sort_unstable();
        ids.dedup();
        if ids.len() == self.live {
            // Everything alive is permitted: the unfiltered search is the same search.
            drop(points);
            let plan = if self.live < self.exact_threshold {
                FilterPlan::Exact
            } else {
                FilterPlan::Graph
            };
            return Ok((self.search(query, k)?, plan));
        }
        let few = (ids.len() as f32) < self.filter_exact_fraction * self.live as f32;
        let (found, plan) = if ids.len() < self.exact_threshold || few {
            (self.exact_among(&points, query, k, ids), FilterPlan::Exact)
        } else {
            let mut allowed = vec![false; self.upto];
            for id in &ids {
                allowed[*id] = true;
            }
            let filter = |id: &usize| allowed.get(*id).copied().unwrap_or(false);
            let ef = self.ef_search.max(k);
            (
                self.build.graph.search(query, k, ef, Some(&filter)),
                FilterPlan::Graph,
            )
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
                chunk_key(&points.hashes[id]),
                id,
            )));
            if heap.len() > k {
                heap.pop();
            }
        }
        let mut out: Vec<Scored> = heap.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out.into_iter().map(|s| (s.2, s.0)).collect()
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

/// A point by similarity, then by smaller chunk key: `(similarity, chunk key, point id)`.
#[derive(PartialEq)]
struct Scored(f32, u64, usize);
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

/// What the writer side knows: where each live chunk is, and what changed since the last dump.
struct WriterState {
    build: Arc<Build>,
    by_hash: HashMap<ContentHash, usize>,
    dead: Vec<bool>,
    generation: u64,
    /// Points added or tombstoned since the last dump.
    changed_since_dump: usize,
    dumped_generation: u64,
}

/// The manifest of the current dump.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Manifest {
    generation: u64,
    dims: usize,
    points: usize,
    folder: String,
    /// blake3 (hex) of every file of the dump's folder, by file name. Missing in dumps written
    /// before quarry hashed them: such a dump is not loaded.
    #[serde(default)]
    files: Option<std::collections::BTreeMap<String, String>>,
}

/// The files of a dump, each hashed into the manifest.
const DUMP_FILES: [&str; 4] = ["graph.hnsw.graph", "graph.hnsw.data", "ids.bin", "dead.bin"];

fn hash_file(path: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    hasher.update_reader(file).map_err(|e| Error::io(path, e))?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Reads the manifest of `dir`, `None` when there is none.
fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join("manifest.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))
}

/// The generation of the dump the manifest in `dir` names: `None` without a manifest, or with
/// one that does not parse (either way the index starts from generation 0 when opened).
pub fn dump_generation(dir: &Path) -> Option<u64> {
    read_manifest(dir).ok().flatten().map(|m| m.generation)
}

pub struct VectorIndex {
    dir: PathBuf,
    dims: usize,
    params: VectorParams,
    writer: Mutex<WriterState>,
    current: RwLock<Arc<VectorSnapshot>>,
}

impl VectorIndex {
    /// Opens the index in `dir`: reloads the last dump if there is a usable one (returning the
    /// generation it reflects), else starts empty at generation 0. The caller replays the change log
    /// since the returned generation.
    pub fn open(dir: &Path, dims: usize, params: VectorParams) -> Result<Self> {
        params.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let loaded = match Self::load(dir, dims, params) {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "vector index dump unusable; rebuilding from stored vectors");
                None
            }
        };
        Ok(Self::with_state(
            dir,
            dims,
            params,
            loaded.unwrap_or_else(|| Self::empty_state(params)),
        ))
    }

    /// An empty index in `dir` at generation 0, whatever dump is there (the caller rebuilds it
    /// from the stored vectors; the next dump replaces the old one).
    pub fn empty(dir: &Path, dims: usize, params: VectorParams) -> Result<Self> {
        params.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(Self::with_state(
            dir,
            dims,
            params,
            Self::empty_state(params),
        ))
    }

    fn empty_state(params: VectorParams) -> WriterState {
        WriterState {
            build: Arc::new(Build {
                graph: Graph::new(params, 1024),
                points: RwLock::new(Points::default()),
            }),
            by_hash: HashMap::new(),
            dead: Vec::new(),
            generation: 0,
            changed_since_dump: 0,
            dumped_generation: 0,
        }
    }

    fn with_state(dir: &Path, dims: usize, params: VectorParams, state: WriterState) -> Self {
        let snapshot = Arc::new(Self::snapshot_of(&state, dims, params));
        VectorIndex {
            dir: dir.to_owned(),
            dims,
            params,
            writer: Mutex::new(state),
            current: RwLock::new(snapshot),
        }
    }

    fn load(dir: &Path, dims: usize, params: VectorParams) -> Result<Option<WriterState>> {
        let Some(m) = read_manifest(dir)? else {
            return Ok(None);
        };
        if m.dims != dims {
            return Err(Error::Corrupt(format!(
                "vector dump has {} dimensions, the embedder {dims}",
                m.dims
            )));
        }
        let folder = dir.join(&m.folder);
        let Some(files) = &m.files else {
            return Err(Error::Corrupt(format!(
                "vector dump {} has no file hashes (written by an older quarry), so it cannot be verified",
                folder.display()
            )));
        };
        for name in DUMP_FILES {
            let path = folder.join(name);
            let graph_file = name.starts_with("graph.");
            if graph_file && m.points == 0 {
                continue;
            }
            let expected = files.get(name).ok_or_else(|| {
                Error::Corrupt(format!(
                    "vector dump {} has no hash of {name}",
                    folder.display()
                ))
            })?;
            if &hash_file(&path)? != expected {
                return Err(Error::Corrupt(format!(
                    "{} is damaged (its blake3 hash differs from the manifest's)",
                    path.display()
                )));
            }
        }
        let hashes = read_ids(&folder.join("ids.bin"), m.points)?;
        let dead = read_dead(&folder.join("dead.bin"), m.points)?;
        let (graph, vectors) = if m.points == 0 {
            (Graph::new(params, 1024), Vec::new())
        } else {
            Graph::load(&folder, params, dims, m.points)?
        };
        let by_hash = hashes
            .iter()
            .enumerate()
            .filter(|(i, _)| !dead[*i])
            .map(|(i, h)| (*h, i))
            .collect();
        Ok(Some(WriterState {
            build: Arc::new(Build {
                graph,
                points: RwLock::new(Points {
                    by_key: hashes
                        .iter()
                        .enumerate()
                        .map(|(i, h)| (chunk_key(h), i))
                        .collect(),
                    hashes,
                    vectors,
                }),
            }),
            by_hash,
            dead,
            generation: m.generation,
            changed_since_dump: 0,
            dumped_generation: m.generation,
        }))
    }

    fn snapshot_of(state: &WriterState, dims: usize, params: VectorParams) -> VectorSnapshot {
        VectorSnapshot {
            build: state.build.clone(),
            dims,
            upto: state.dead.len(),
            dead: Arc::new(state.dead.clone()),
            live: state.by_hash.len(),
            ef_search: params.ef_search,
            exact_threshold: params.exact_threshold,
            filter_exact_fraction: params.filter_exact_fraction,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The generation the index reflects.
    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    /// The generation of the last dump (the change log must be kept from there on).
    pub fn dumped_generation(&self) -> u64 {
        self.state().dumped_generation
    }

    /// The latest published snapshot.
    pub fn snapshot(&self) -> Arc<VectorSnapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The chunks with a live point.
    pub fn keys(&self) -> Vec<ContentHash> {
        self.state().by_hash.keys().copied().collect()
    }

    /// Whether the chunk has a live point.
    pub fn contains(&self, hash: &ContentHash) -> bool {
        self.state().by_hash.contains_key(hash)
    }

    /// Applies generation `generation`: `removed` chunks become tombstones, `added` chunks (with
    /// their vectors) get points unless they have one; rebuilds the graph when tombstones pass the
    /// threshold. Readers see it after [`VectorIndex::publish`].
    pub fn apply(
        &self,
        generation: u64,
        removed: &[ContentHash],
        added: &[(ContentHash, Vec<f32>)],
    ) -> Result<()> {
        let mut st = self.state();
        for hash in removed {
            if let Some(id) = st.by_hash.remove(hash) {
                st.dead[id] = true;
                st.changed_since_dump += 1;
            }
        }
        let mut fresh: Vec<(usize, ContentHash, &[f32])> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        {
            let mut points = st.build.points.write().unwrap_or_else(|p| p.into_inner());
            for (hash, v) in added {
                if v.len() != self.dims {
                    return Err(Error::Corrupt(format!(
                        "vector of chunk {hash} has {} dimensions; the index holds {}",
                        v.len(),
                        self.dims
                    )));
                }
                if st.by_hash.contains_key(hash) || !seen.insert(*hash) {
                    continue;
                }
                let id = points.push(*hash, v);
                fresh.push((id, *hash, v));
            }
        }
        for (id, hash, _) in &fresh {
            st.dead.push(false);
            st.by_hash.insert(*hash, *id);
        }
        let rows: Vec<(usize, &[f32])> = fresh.iter().map(|(id, _, v)| (*id, *v)).collect();
        st.build.graph.insert(&rows);
        st.changed_since_dump += fresh.len();
        st.generation = generation;
        let dead = st.dead.iter().filter(|d| **d).count();
        if dead > 0 && dead as f32 >= self.params.rebuild_tombstone_ratio * st.dead.len() as f32 {
            self.rebuild(&mut st);
        }
        Ok(())
    }

    /// Makes everything applied so far visible to new snapshots.
    pub fn publish(&self) {
        let st = self.state();
        let snapshot = Arc::new(Self::snapshot_of(&st, self.dims, self.params));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    /// Marks the index as reflecting `generation` without changes.
    pub fn set_generation(&self, generation: u64) {
        self.state().generation = generation;
    }

    /// Rebuilds the graph from the live points when it has tombstones, so no point of a chunk
    /// that left (its vector, in memory and in the next dump) remains; whether it did. Readers
    /// see it after [`VectorIndex::publish`]; snapshots taken before keep the old graph.
    pub fn compact(&self) -> bool {
        let mut st = self.state();
        if !st.dead.iter().any(|d| *d) {
            return false;
        }
        self.rebuild(&mut st);
        true
    }

    /// Whether any point (live or a tombstone) of the graph in memory is one of `hashes`.
    pub fn holds_any(&self, hashes: &std::collections::HashSet<ContentHash>) -> bool {
        let st = self.state();
        let points = st.build.points.read().unwrap_or_else(|p| p.into_inner());
        points.hashes.iter().any(|h| hashes.contains(h))
    }

    /// Replaces the graph with one built from the live points only.
    fn rebuild(&self, st: &mut WriterState) {
        let old = st.build.points.read().unwrap_or_else(|p| p.into_inner());
        let mut points = Points::default();
        let mut by_hash = HashMap::with_capacity(st.by_hash.len());
        for (id, hash) in old.hashes.iter().enumerate() {
            if st.dead[id] {
                continue;
            }
            let new_id = points.push(*hash, &old.vectors[id * self.dims..(id + 1) * self.dims]);
            by_hash.insert(*hash, new_id);
        }
        drop(old);
        let graph = Graph::new(self.params, points.hashes.len().max(1024));
        let rows: Vec<(usize, &[f32])> =
            points.vectors.chunks_exact(self.dims).enumerate().collect();
        graph.insert(&rows);
        tracing::info!(
            points = points.hashes.len(),
            "vector graph rebuilt without tombstones"
        );
        st.dead = vec![false; points.hashes.len()];
        st.by_hash = by_hash;
        st.changed_since_dump += 1;
        st.build = Arc::new(Build {
            graph,
            points: RwLock::new(points),
        });
    }

    /// Whether enough changed since the last dump to write a new one: `min_changes` points, or any
    /// change when `force`.
    pub fn needs_dump(&self, min_changes: usize, force: bool) -> bool {
        let st = self.state();
        st.generation != st.dumped_generation && (force || st.changed_since_dump >= min_changes)
    }

    /// Writes the graph, ids and tombstones to a new folder and switches the manifest to it,
    /// unless the manifest names a newer dump (another process's; this index is behind it).
    pub fn dump(&self) -> Result<()> {
        let mut st = self.state();
        if let Ok(Some(on_disk)) = read_manifest(&self.dir)
            && on_disk.generation > st.generation
        {
            tracing::warn!(
                dir = %self.dir.display(),
                on_disk = on_disk.generation,
                in_memory = st.generation,
                "not dumping the vector index: the dump on disk is newer"
            );
            return Ok(());
        }
        let folder_name = format!("dump-{}", st.generation);
        let folder = self.dir.join(&folder_name);
        if let Err(e) = self.write_dump(&st, &folder, &folder_name) {
            // Nothing half-written stays behind (a full disk, say); the manifest still names the
            // previous dump.
            let _ = std::fs::remove_dir_all(&folder);
            let _ = std::fs::remove_file(self.dir.join("manifest.json.tmp"));
            return Err(e);
        }
        st.dumped_generation = st.generation;
        st.changed_since_dump = 0;
        // Older dumps are no longer referenced.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("dump-") && name != folder_name {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(())
    }

    /// Writes the dump of `st` into `folder` and switches the manifest to it.
    fn write_dump(&self, st: &WriterState, folder: &Path, folder_name: &str) -> Result<()> {
        if folder.exists() {
            std::fs::remove_dir_all(folder).map_err(|e| Error::io(folder, e))?;
        }
        std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
        let points = st.build.points.read().unwrap_or_else(|p| p.into_inner());
        let n = points.hashes.len();
        if n > 0 {
            st.build.graph.dump(folder)?;
        }
        let ids: Vec<u8> = points
            .hashes
            .iter()
            .flat_map(|h| h.as_bytes().iter().copied())
            .collect();
        write_synced(&folder.join("ids.bin"), &ids)?;
        let dead: Vec<u8> = st.dead.iter().map(|d| u8::from(*d)).collect();
        write_synced(&folder.join("dead.bin"), &dead)?;
        drop(points);
        let mut files = std::collections::BTreeMap::new();
        for name in DUMP_FILES {
            let path = folder.join(name);
            if name.starts_with("graph.") && n == 0 {
                continue;
            }
            // hnsw_rs does not fsync what it writes: do it before the manifest names the file.
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
            files.insert(name.to_owned(), hash_file(&path)?);
        }
        let manifest = Manifest {
            generation: st.generation,
            dims: self.dims,
            points: n,
            folder: folder_name.to_owned(),
            files: Some(files),
        };
        let json = serde_json::to_vec(&manifest).map_err(|e| Error::Corrupt(e.to_string()))?;
        let tmp = self.dir.join("manifest.json.tmp");
        write_synced(&tmp, &json)?;
        let target = self.dir.join("manifest.json");
        std::fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
        // The rename is durable once the folder is synced; the manifest names the new dump
        // already, so a failure here is only logged.
        if let Err(e) = std::fs::File::open(&self.dir).and_then(|d| d.sync_all()) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not sync the vector index folder");
        }
        Ok(())
    }
}

/// Whether the dump `manifest.json` of `dir` names has a point (live or a tombstone) of one of
/// `hashes`. A dump that cannot be read counts as holding them.
pub fn dump_holds_any(dir: &Path, hashes: &std::collections::HashSet<ContentHash>) -> bool {
    let m = match read_manifest(dir) {
        Ok(Some(m)) => m,
        Ok(None) => return false,
        Err(_) => return true,
    };
    match read_ids(&dir.join(&m.folder).join("ids.bin"), m.points) {
        Ok(ids) => ids.iter().any(|h| hashes.contains(h)),
        Err(_) => true,
    }
}

/// Deletes the dump of `dir` (its manifest and every `dump-*` folder): the index is rebuilt from
/// the stored vectors when it is next opened.
pub fn drop_dump(dir: &Path) -> Result<()> {
    let manifest = dir.join("manifest.json");
    if manifest.exists() {
        std::fs::remove_file(&manifest).map_err(|e| Error::io(&manifest, e))?;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("dump-") {
            std::fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

fn read_ids(path: &Path, n: usize) -> Result<Vec<ContentHash>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() != n * 32 {
        return Err(Error::Corrupt(format!(
            "{} holds {} bytes, expected {}",
            path.display(),
            bytes.len(),
            n * 32
        )));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut a = [0u8; 32];
            a.copy_from_slice(c);
            ContentHash::from_bytes(a)
        })
        .collect())
}

fn read_dead(path: &Path, n: usize) -> Result<Vec<bool>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() != n {
        return Err(Error::Corrupt(format!(
            "{} holds {} bytes, expected {n}",
            path.display(),
            bytes.len()
        )));
    }
    Ok(bytes.into_iter().map(|b| b != 0).collect())
}

#[cfg(test)]
mod tests;
