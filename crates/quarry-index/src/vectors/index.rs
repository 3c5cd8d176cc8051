//! [`VectorIndex`], the writer side of the vector index of one collection and fingerprint: it
//! applies generations, rebuilds the graph past the tombstone ratio, publishes snapshots and
//! dumps itself.

use super::build::{Build, Points};
use super::dump;
use super::graph::Graph;
use super::params::VectorParams;
use super::segment::{SEGMENTS, Segment};
use super::snapshot::VectorSnapshot;
use crate::error::{Error, Result};
use quarry_core::ContentHash;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

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

/// Points `hashes`, the first open one `open_base`, with the open points' `vectors`.
fn points(hashes: Vec<ContentHash>, open_base: usize, vectors: Vec<f32>) -> Points {
    let by_key = hashes
        .iter()
        .enumerate()
        .map(|(i, h)| (crate::bm25::chunk_key(h), i))
        .collect();
    Points {
        hashes,
        open_base,
        vectors,
        by_key,
    }
}

/// An error unless chunk `hash`'s vector `v` has `dims` dimensions.
pub(super) fn check_dims(hash: &ContentHash, v: &[f32], dims: usize) -> Result<()> {
    if v.len() != dims {
        return Err(Error::Corrupt(format!(
            "vector of chunk {hash} has {} dimensions; the index holds {dims}",
            v.len()
        )));
    }
    Ok(())
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

    /// An index in `dir` whose points are all in `sealed` (in id order, covering `hashes`),
    /// with an empty open graph, at `generation`, not yet dumped ([`super::BulkBuild::finish`]).
    pub(super) fn from_sealed(
        dir: &Path,
        dims: usize,
        params: VectorParams,
        sealed: Vec<Arc<Segment>>,
        hashes: Vec<ContentHash>,
        by_hash: HashMap<ContentHash, usize>,
        generation: u64,
    ) -> Self {
        let n = hashes.len();
        let state = WriterState {
            build: Arc::new(Build::new(
                sealed,
                Graph::new(params, 1024),
                points(hashes, n, Vec::new()),
            )),
            by_hash,
            dead: vec![false; n],
            generation,
            changed_since_dump: n,
            dumped_generation: 0,
        };
        Self::with_state(dir, dims, params, state)
    }

    fn empty_state(params: VectorParams) -> WriterState {
        WriterState {
            build: Arc::new(Build::new(
                Vec::new(),
                Graph::new(params, 1024),
                Points::default(),
            )),
            by_hash: HashMap::new(),
            dead: Vec::new(),
            generation: 0,
            changed_since_dump: 0,
            dumped_generation: 0,
        }
    }

    fn with_state(dir: &Path, dims: usize, params: VectorParams, state: WriterState) -> Self {
        let snapshot = Arc::new(Self::snapshot_of(&state, dims, params, true));
        VectorIndex {
            dir: dir.to_owned(),
            dims,
            params,
            writer: Mutex::new(state),
            current: RwLock::new(snapshot),
        }
    }

    fn load(dir: &Path, dims: usize, params: VectorParams) -> Result<Option<WriterState>> {
        let Some(dump::Loaded {
            generation,
            hashes,
            dead,
            sealed,
            graph,
            vectors,
        }) = dump::read(dir, dims, params)?
        else {
            return Ok(None);
        };
        let open_base = sealed.last().map_or(0, |s| s.base() + s.len());
        let by_hash = hashes
            .iter()
            .enumerate()
            .filter(|(i, _)| !dead[*i])
            .map(|(i, h)| (*h, i))
            .collect();
        Ok(Some(WriterState {
            build: Arc::new(Build::new(
                sealed,
                graph,
                points(hashes, open_base, vectors),
            )),
            by_hash,
            dead,
            generation,
            changed_since_dump: 0,
            dumped_generation: generation,
        }))
    }

    /// The snapshot of everything applied to `state`, with a fresh flat copy of the open graph
    /// when the last one is more than [`super::part::TAIL`] points behind ([`Build::refreeze`];
    /// `opening`: the index was just opened).
    fn snapshot_of(
        state: &WriterState,
        dims: usize,
        params: VectorParams,
        opening: bool,
    ) -> VectorSnapshot {
        state
            .build
            .refreeze(dims, params.quantization.codec(), opening);
        VectorSnapshot::new(
            state.build.clone(),
            dims,
            state.dead.clone(),
            state.by_hash.len(),
            params,
        )
    }

    fn state(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// How many points the sealed segments hold (the first point of the open graph).
    pub fn sealed_points(&self) -> usize {
        self.state().build.read_points().open_base
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
                check_dims(hash, v, self.dims)?;
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
            // the graph still answers with its tombstones: a failed rebuild (a segment's
            // vectors unreadable) is retried at the next write, not this write's failure
            if let Err(e) = self.rebuild(&mut st) {
                tracing::error!(dir = %self.dir.display(), error = %e, "could not rebuild the vector graph without its tombstones");
            }
        }
        Ok(())
    }

    /// Makes everything applied so far visible to new snapshots.
    pub fn publish(&self) {
        let st = self.state();
        let snapshot = Arc::new(Self::snapshot_of(&st, self.dims, self.params, false));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    /// Seals the open graph now when it is due, without a dump: a build that pages through
    /// stored vectors holds at most a segment's worth of `f32` vectors in memory. The next dump
    /// names the segment.
    pub fn seal_if_due(&self) -> Result<()> {
        let mut st = self.state();
        self.seal(&mut st)
    }

    /// Marks the index as reflecting `generation` without changes.
    pub fn set_generation(&self, generation: u64) {
        self.state().generation = generation;
    }

    /// Rebuilds the graph from the live points when it has tombstones, so no point of a chunk
    /// that left (its vector, in memory and in the next dump) remains; whether it did. Readers
    /// see it after [`VectorIndex::publish`]; snapshots taken before keep the old graph.
    /// An error (a sealed segment's vectors could not be read) leaves the graph as it was.
    pub fn compact(&self) -> Result<bool> {
        let mut st = self.state();
        if !st.dead.iter().any(|d| *d) {
            return Ok(false);
        }
        self.rebuild(&mut st)?;
        Ok(true)
    }

    /// Whether any point (live or a tombstone) of the graph in memory is one of `hashes`.
    pub fn holds_any(&self, hashes: &std::collections::HashSet<ContentHash>) -> bool {
        let st = self.state();
        let points = st.build.read_points();
        points.hashes.iter().any(|h| hashes.contains(h))
    }

    /// Replaces the graph with one built from the live points only (read from memory and from
    /// the sealed segments' files; none is sealed in the new build until the next dump).
    fn rebuild(&self, st: &mut WriterState) -> Result<()> {
        let old = st.build.read_points();
        let mut points = Points::default();
        let mut by_hash = HashMap::with_capacity(st.by_hash.len());
        st.build.scan(&old, self.dims, old.hashes.len(), |id, v| {
            if !st.dead[id] {
                by_hash.insert(old.hashes[id], points.push(old.hashes[id], v));
            }
        })?;
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
        st.build = Arc::new(Build::new(Vec::new(), graph, points));
        Ok(())
    }

    /// Seals the open graph into a segment when [`VectorParams::seals`] says so: a new build
    /// whose segments are the old ones and that one, with an empty open graph. Snapshots taken
    /// before keep the old build.
    fn seal(&self, st: &mut WriterState) -> Result<()> {
        let points = st.build.read_points();
        let open = points.hashes.len() - points.open_base;
        let Some(codec) = self.params.seals(open) else {
            return Ok(());
        };
        let Some(segment) = Segment::seal(
            &self.dir,
            &st.build.graph,
            points.open_base,
            &points.vectors,
            (self.dims, st.build.graph.max_links()),
            codec,
        )?
        else {
            return Ok(());
        };
        let old = st.build.clone();
        let mut sealed = st.build.sealed.clone();
        sealed.push(Arc::new(segment));
        let next = Points {
            hashes: points.hashes.clone(),
            open_base: points.hashes.len(),
            vectors: Vec::new(),
            by_key: points.by_key.clone(),
        };
        drop(points);
        tracing::info!(
            points = open,
            segments = sealed.len(),
            "vector graph sealed into a segment"
        );
        st.build = Arc::new(Build::new(sealed, Graph::new(self.params, 1024), next));
        // The published snapshot moves to the sealed build when it is a snapshot of the build
        // just sealed (same point ids; not after a rebuild not yet published), so the open
        // graph's memory goes once the readers of the old one are done.
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.on(&old) {
            *current = Arc::new(current.on_build(st.build.clone()));
        }
        Ok(())
    }

    /// Whether enough changed since the last dump to write a new one: `min_changes` points, or any
    /// change when `force`.
    /// With `force`, also when the open graph is due to be sealed (a graph loaded from a dump
    /// written before segments, or by `quantization = "none"`, is sealed at the next flush).
    pub fn needs_dump(&self, min_changes: usize, force: bool) -> bool {
        let st = self.state();
        let changed = st.generation != st.dumped_generation
            && (force || st.changed_since_dump >= min_changes);
        changed || (force && self.seal_due(&st))
    }

    fn seal_due(&self, st: &WriterState) -> bool {
        let points = st.build.read_points();
        self.params
            .seals(points.hashes.len() - points.open_base)
            .is_some()
    }

    /// Writes the graph, ids and tombstones to a new folder and switches the manifest to it,
    /// unless the manifest names a newer dump (another process's; this index is behind it).
    pub fn dump(&self) -> Result<()> {
        let mut st = self.state();
        if let Some(on_disk) = dump::dump_generation(&self.dir)
            && on_disk > st.generation
        {
            tracing::warn!(
                dir = %self.dir.display(),
                on_disk,
                in_memory = st.generation,
                "not dumping the vector index: the dump on disk is newer"
            );
            return Ok(());
        }
        self.seal(&mut st)?;
        let mut folder_name = format!("dump-{}", st.generation);
        if dump::current_folder(&self.dir).as_deref() == Some(folder_name.as_str()) {
            // a seal of the generation on disk: never rewrite the folder the manifest names
            folder_name = format!("{folder_name}-{}", st.build.sealed.len());
        }
        let folder = self.dir.join(&folder_name);
        if let Err(e) = dump::write(
            &self.dir,
            self.dims,
            st.generation,
            &st.build,
            &st.dead,
            &folder,
            &folder_name,
        ) {
            // Nothing half-written stays behind (a full disk, say); the manifest still names the
            // previous dump.
            let _ = std::fs::remove_dir_all(&folder);
            let _ = std::fs::remove_file(self.dir.join("manifest.json.tmp"));
            return Err(e);
        }
        st.dumped_generation = st.generation;
        st.changed_since_dump = 0;
        // Older dumps and segments they alone named are no longer referenced.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("dump-") && name != folder_name {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let keep: std::collections::HashSet<&str> = st
            .build
            .sealed
            .iter()
            .map(|s| s.entry.name.as_str())
            .collect();
        if let Ok(entries) = std::fs::read_dir(self.dir.join(SEGMENTS)) {
            for e in entries.flatten() {
                if !keep.contains(e.file_name().to_string_lossy().as_ref()) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(())
    }
}
