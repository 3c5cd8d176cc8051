//! The parts a graph search of a [`Build`] walks, and the flat copy of its open graph.
//!
//! hnsw_rs searches the open graph over `f32` vectors: at 1,000,000 chunks its last 82,000
//! open points cost a query more than the seven sealed segments of 131,072 points together
//! (searched over int8 codes in [`FlatGraph`]s). So the open graph is also copied into a
//! flat graph over the same codes the segments use ([`Build::refreeze`]), held in memory only
//! (the dump still writes hnsw_rs's graph), and the open points past that copy, at most
//! [`TAIL`], are compared exactly with every query. A copy is made when an index is opened
//! and whenever a publish finds more than [`TAIL`] open points outside the current one; a
//! snapshot searches the copy it was published with.

use super::codes::{Codec, QueryCodes};
use super::flat::{FlatGraph, by_similarity};
use super::graph::Graph;
use super::segment::Segment;
use super::simd::dot;
use super::snapshot::Build;
use std::sync::Arc;

/// The most open points a snapshot compares exactly, past the flat copy of the open graph.
pub(super) const TAIL: usize = 1024;

/// One part of a build a graph search walks.
pub(super) enum Part<'a> {
    Sealed(&'a Segment),
    /// The flat copy of the open graph's first points, from point `base` on.
    Frozen(&'a FlatGraph, usize),
    /// The open graph itself, searched by hnsw_rs (no copy, or quantization `none`).
    Open(&'a Graph),
    /// Open points past the copy: their first id and their vectors (`dims` each), row-major.
    Tail(usize, &'a [f32], usize),
}

impl Part<'_> {
    /// The candidates for the `k` nearest points of this part `alive` admits, as `(point id,
    /// similarity)`, best first: approximate (by its codes) for a sealed segment or the flat
    /// copy, exact for the open graph and the tail; [`super::snapshot::VectorSnapshot`]'s
    /// rescoring ranks those gathered from every part.
    pub(super) fn search(
        &self,
        query: &QueryCodes,
        k: usize,
        ef: usize,
        alive: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<(usize, f32)> {
        match self {
            Part::Sealed(s) => s.search(query, k, ef, alive),
            Part::Frozen(flat, base) => flat.search_from(*base, query, k, ef, alive),
            Part::Open(g) => {
                let filter = alive.map(|f| move |id: &usize| f(*id));
                g.search(
                    query.query(),
                    k,
                    ef,
                    filter.as_ref().map(|f| f as &dyn Fn(&usize) -> bool),
                )
            }
            Part::Tail(base, vectors, dims) => {
                let mut found: Vec<(usize, f32)> = vectors
                    .chunks_exact(*dims)
                    .enumerate()
                    .map(|(i, v)| (base + i, v))
                    .filter(|(id, _)| alive.is_none_or(|f| f(*id)))
                    .map(|(id, v)| (id, dot(query.query(), v)))
                    .collect();
                by_similarity(&mut found);
                found.truncate(k);
                found
            }
        }
    }
}

impl Build {
    /// Copies the open graph into a new flat graph over `codec`'s codes when more than [`TAIL`]
    /// open points are outside the current copy (none is made without a codec: quantization
    /// `none`). Called with the index's writer state held, so no point is inserted meanwhile.
    pub(super) fn refreeze(&self, dims: usize, codec: Option<Codec>) {
        let Some(codec) = codec else {
            return;
        };
        let points = self.read_points();
        let open = points.hashes.len() - points.open_base;
        let frozen = self.frozen().map_or(0, |f| f.len());
        if open.saturating_sub(frozen) <= TAIL {
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
