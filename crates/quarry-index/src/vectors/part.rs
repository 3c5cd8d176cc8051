//! The parts a graph search of a build walks, and when the open graph is walked through a flat
//! copy ([`super::build::Build::refreeze`]).
//!
//! hnsw_rs searches the open graph over `f32` vectors: at 1,000,000 chunks its last 82,000
//! open points cost a query more than the seven sealed segments of 131,072 points together
//! (searched over int8 codes in [`FlatGraph`]s). So the open graph is also copied into a
//! flat graph over the same codes the segments use, held in memory only
//! (the dump still writes hnsw_rs's graph), and the open points past that copy are compared
//! exactly with every query. A copy is made when more than [`TAIL`] open points are outside the
//! last one: when an index is opened and at its first publish, then at a publish only if a
//! search has met points outside the copy since (a copy reads every link of the open graph: at 100,000 points, redone at every batch's
//! publish, it slowed a CLI ingest, which nobody searches, by a sixth). A snapshot searches the
//! copy it was published with, or, with more than [`MAX_TAIL`] points outside it, hnsw_rs's
//! graph.

use super::codes::QueryCodes;
use super::flat::{FlatGraph, by_similarity};
use super::graph::Graph;
use super::segment::Segment;
use super::simd::dot;

/// Open points outside the flat copy of the open graph past which a publish copies it again.
pub(super) const TAIL: usize = 1024;
/// The most open points a snapshot compares exactly, past the flat copy (beyond: hnsw_rs).
pub(super) const MAX_TAIL: usize = 4 * TAIL;

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
    /// The part's kind, for tests.
    #[cfg(test)]
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Part::Sealed(_) => "sealed",
            Part::Frozen(..) => "copy",
            Part::Open(_) => "open",
            Part::Tail(..) => "tail",
        }
    }

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
