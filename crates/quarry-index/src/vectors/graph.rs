//! The HNSW graph, a thin wrapper over `hnsw_rs` that never panics into the caller and keeps its
//! own distance (`1 − dot`, clamped at 0, so rounding on normalised vectors cannot trip an assert).

use super::params::VectorParams;
use super::simd::dot;
use crate::error::{Error, Result};
use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::{Distance, Hnsw};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Cosine distance of L2-normalised vectors: `max(0, 1 − dot)`.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct QuarryDot;

impl Distance<f32> for QuarryDot {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

const BASENAME: &str = "graph";
/// hnsw_rs caps layers at 16.
const MAX_LAYERS: usize = 16;

pub(super) struct Graph {
    hnsw: Hnsw<'static, f32, QuarryDot>,
}

impl Graph {
    pub(super) fn new(params: VectorParams, capacity: usize) -> Self {
        let hnsw = Hnsw::new(
            params.m,
            capacity,
            MAX_LAYERS,
            params.ef_construction,
            QuarryDot,
        );
        Graph { hnsw }
    }

    /// Inserts `(point id, vector)` rows, one at a time. Not `parallel_insert_slice`: in hnsw_rs
    /// 0.3.5 two concurrent inserts that become each other's neighbours can deadlock
    /// (`reverse_update_neighborhood_simple` holds a read lock on the new point's neighbours while
    /// it takes write locks on theirs); a test loading 5,183 SciFact vectors hung that way.
    pub(super) fn insert(&self, rows: &[(usize, &[f32])]) {
        for (id, v) in rows {
            self.hnsw.insert_slice((v, *id));
        }
    }

    /// Nearest points passing `alive` (every point when `None`), as `(point id, cosine similarity)`, best first.
    pub(super) fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        alive: Option<&dyn Fn(&usize) -> bool>,
    ) -> Vec<(usize, f32)> {
        let filter = alive.map(|f| Box::new(f) as Box<dyn hnsw_rs::filter::FilterT + '_>);
        self.hnsw
            .search_filter(query, k, ef, filter.as_deref())
            .into_iter()
            .filter(|n| alive.is_none_or(|f| f(&n.d_id)))
            .map(|n| (n.d_id, 1.0 - n.distance))
            .collect()
    }

    /// Writes `graph.hnsw.graph` and `graph.hnsw.data` into `folder`.
    pub(super) fn dump(&self, folder: &Path) -> Result<()> {
        let res = catch_unwind(AssertUnwindSafe(|| self.hnsw.file_dump(folder, BASENAME)));
        match res {
            Ok(Ok(_)) => Ok(()),
            // an IO error (a full disk) is one, not corrupt state
            Ok(Err(e)) => match e.downcast::<std::io::Error>() {
                Ok(io) => Err(Error::io(folder, io)),
                Err(e) => Err(Error::Corrupt(format!(
                    "writing vector graph to {}: {e}",
                    folder.display()
                ))),
            },
            Err(_) => Err(Error::Corrupt(format!(
                "writing vector graph to {} panicked",
                folder.display()
            ))),
        }
    }

    /// Reloads a dump of `n` points of `dims` dimensions; returns the graph and the flat vectors by
    /// point id. Any inconsistency is an error (the caller rebuilds from stored vectors).
    pub(super) fn load(
        folder: &Path,
        params: VectorParams,
        dims: usize,
        n: usize,
    ) -> Result<(Graph, Vec<f32>)> {
        let corrupt =
            |why: String| Error::Corrupt(format!("vector graph {}: {why}", folder.display()));
        // The reloaded graph borrows its loader for its whole life ('static here): the loader is
        // a few hundred bytes, leaked once per reload of a collection's graph.
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(folder, BASENAME)));
            io.load_hnsw::<f32, QuarryDot>()
        }))
        .map_err(|_| corrupt("the dump does not parse".into()))?
        .map_err(|e| corrupt(e.to_string()))?;
        let mut hnsw = loaded;
        hnsw.set_searching_mode(false);
        let _ = params;
        let mut vectors = vec![0f32; n * dims];
        let mut seen = vec![false; n];
        for point in hnsw.get_point_indexation() {
            let id = point.get_origin_id();
            let v = point.get_v();
            if id >= n || v.len() != dims || seen[id] {
                return Err(corrupt(format!(
                    "point {id} with {} dimensions does not fit {n} points of {dims}",
                    v.len()
                )));
            }
            seen[id] = true;
            vectors[id * dims..(id + 1) * dims].copy_from_slice(v);
        }
        if seen.iter().any(|s| !s) {
            return Err(corrupt("points are missing".into()));
        }
        Ok((Graph { hnsw }, vectors))
    }
}
