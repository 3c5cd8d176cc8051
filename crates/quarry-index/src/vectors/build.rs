//! One build of a vector index ([`Build`]): its sealed segments, its open hnsw_rs graph and
//! the flat copy of that graph searches walk ([`Build::refreeze`]), and their points
//! ([`Points`]), shared by the snapshots of the build.

use super::codes::Codec;
use super::flat::FlatGraph;
use super::graph::Graph;
use super::part::TAIL;
use super::segment::Segment;
use crate::bm25::chunk_key;
use crate::error::{Error, Result};
use quarry_core::ContentHash;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// The points of the index: append-only hashes, shared by all snapshots of one build, and the
/// vectors of the points not sealed into a segment.
#[derive(Default)]
pub(super) struct Points {
    pub(super) hashes: Vec<ContentHash>,
    /// The first point of the open graph: the vectors of points `open_base..` are in
    /// `vectors`, those before it in sealed segments.
    pub(super) open_base: usize,
    /// `(hashes.len() - open_base) × dims` floats, row-major.
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

    /// The vector of an open point, `None` for a sealed one.
    pub(super) fn open_vector(&self, id: usize, dims: usize) -> Option<&[f32]> {
        let i = id.checked_sub(self.open_base)?;
        self.vectors.get(i * dims..(i + 1) * dims)
    }
}

/// Sealed segments, an open graph and their points: one build. A rebuild or a seal makes a new
/// one; old snapshots keep theirs.
pub(super) struct Build {
    /// Points `0..open_base`, in segments of consecutive ids, in order.
    pub(super) sealed: Vec<Arc<Segment>>,
    /// Points `open_base..`, with their vectors in [`Points::vectors`].
    pub(super) graph: Graph,
    pub(super) points: RwLock<Points>,
    /// A flat copy of the open graph's first points over codes ([`Build::refreeze`]).
    pub(super) frozen: RwLock<Option<Arc<FlatGraph>>>,
    /// Whether a search met open points outside that copy since it was made.
    pub(super) wanted: AtomicBool,
}

impl Build {
    /// A build of `sealed` segments and the open `graph` (points `open_base..` of `points`),
    /// without a flat copy of the open graph yet.
    pub(super) fn new(sealed: Vec<Arc<Segment>>, graph: Graph, points: Points) -> Self {
        Build {
            sealed,
            graph,
            points: RwLock::new(points),
            frozen: RwLock::new(None),
            wanted: AtomicBool::new(true),
        }
    }

    pub(super) fn read_points(&self) -> std::sync::RwLockReadGuard<'_, Points> {
        self.points.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The vector of point `id` into `out` (`dims` long): from memory for an open point, from its
    /// segment's file for a sealed one.
    pub(super) fn vector(&self, points: &Points, id: usize, out: &mut [f32]) -> Result<()> {
        if let Some(v) = points.open_vector(id, out.len()) {
            out.copy_from_slice(v);
            return Ok(());
        }
        self.segment_of(id)?.read(id, out)
    }

    /// Whether points `a` and `b` are in the same sealed segment.
    pub(super) fn same_segment(&self, a: usize, b: usize) -> bool {
        let i = |id: usize| self.sealed.partition_point(|s| s.base() + s.len() <= id);
        i(a) == i(b)
    }

    /// The sealed segment holding point `id`.
    pub(super) fn segment_of(&self, id: usize) -> Result<&Segment> {
        let i = self.sealed.partition_point(|s| s.base() + s.len() <= id);
        match self.sealed.get(i).filter(|s| s.holds(id)) {
            Some(s) => Ok(s),
            None => Err(Error::Corrupt(format!("vector point {id} does not exist"))),
        }
    }

    /// Calls `f` with every point below `upto` and its vector, in id order.
    pub(super) fn scan(
        &self,
        points: &Points,
        dims: usize,
        upto: usize,
        mut f: impl FnMut(usize, &[f32]),
    ) -> Result<()> {
        for s in &self.sealed {
            if s.base() >= upto {
                break;
            }
            s.scan(|id, v| {
                if id < upto {
                    f(id, v)
                }
            })?;
        }
        for (i, v) in points.vectors.chunks_exact(dims).enumerate() {
            let id = points.open_base + i;
            if id >= upto {
                break;
            }
            f(id, v);
        }
        Ok(())
    }

    /// How many of the best candidates by code a search for the top `k` compares exactly: the
    /// most any sealed segment's codec or the open graph's copy's asks for
    /// ([`Codec::rescored`](super::codes::Codec::rescored)).
    pub(super) fn rescored(&self, k: usize) -> usize {
        let copy = self.frozen().map(|f| f.codec());
        (self.sealed.iter().map(|s| s.codec()))
            .chain(copy)
            .map(|c| c.rescored(k))
            .max()
            .unwrap_or_else(|| super::codes::Codec::Int8.rescored(k))
    }

    /// Bytes of memory the sealed segments hold (their flat graphs).
    pub(super) fn sealed_bytes(&self) -> usize {
        self.sealed.iter().map(|s| s.bytes()).sum()
    }

    /// Copies the open graph into a new flat graph over `codec`'s codes when more than [`TAIL`]
    /// open points are outside the current copy and a search has met points outside it since
    /// the last copy made at a publish (or none was made at a publish yet), or `opening` (an
    /// index opened from a dump: its first publish, after the change log's replay, copies again
    /// when that put it behind). None is made without a codec (quantization `none`). Called with
    /// the index's writer state held, so no point is inserted meanwhile.
    pub(super) fn refreeze(&self, dims: usize, codec: Option<Codec>, opening: bool) {
        let Some(codec) = codec else {
            return;
        };
        let points = self.read_points();
        let open = points.hashes.len() - points.open_base;
        let frozen = self.frozen().map_or(0, |f| f.len());
        if open.saturating_sub(frozen) <= TAIL
            || !(opening || self.wanted.swap(false, Ordering::Relaxed))
        {
            return;
        }
        let m = self.graph.max_links();
        let flat = FlatGraph::from_graph(
            &self.graph,
            points.open_base,
            &points.vectors,
            (dims, m),
            codec,
        );
        *self.frozen.write().unwrap_or_else(|p| p.into_inner()) = flat.map(Arc::new);
    }

    /// The current flat copy of the open graph.
    pub(super) fn frozen(&self) -> Option<Arc<FlatGraph>> {
        self.frozen
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
