//! The HNSW graph, a thin wrapper over `hnsw_rs` that never panics into the caller and keeps its
//! own distance (`1 − dot`, clamped at 0, so rounding on normalised vectors cannot trip an assert).

use super::params::VectorParams;
use super::simd::dot;
use crate::error::{Error, Result};
use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::Point;
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
/// Rows from which [`Graph::insert`] inserts in parallel.
const PARALLEL_INSERT: usize = 512;

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

    /// Inserts `(point id, vector)` rows: from [`PARALLEL_INSERT`] rows on one scoped thread per
    /// core, each inserting every n-th row (hnsw_rs inserts through `&self` and locks each
    /// point's neighbour list), one at a time below (a few chunks of one write gain nothing from
    /// threads).
    ///
    /// Not hnsw_rs's `parallel_insert_slice`, which runs on rayon's pool: the caller holds the
    /// index's writer lock, and a rayon worker waiting for its own parallel loop steals other
    /// pool jobs; one that wants the same lock (another collection's apply, a search running on
    /// the pool) then waits for a lock its own thread holds, for ever. The first version of this
    /// index did that and hung loading SciFact. Plain threads only wait.
    pub(super) fn insert(&self, rows: &[(usize, &[f32])]) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if rows.len() < PARALLEL_INSERT || threads < 2 {
            for (id, v) in rows {
                self.hnsw.insert_slice((v, *id));
            }
            return;
        }
        // The first point alone: two threads inserting into an empty graph each find no entry
        // point, and one of them could be left without links (seen in a test as point 1).
        let (first, rows) = (&rows[0], &rows[1..]);
        self.hnsw.insert_slice((first.1, first.0));
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || {
                    for (id, v) in rows.iter().skip(t).step_by(threads) {
                        self.hnsw.insert_slice((v, *id));
                    }
                });
            }
        });
    }

    /// The graph's `M` (its layer 0 keeps up to twice as many links): its own, which is the
    /// configured one unless it was loaded from a dump built with another.
    pub(super) fn max_links(&self) -> usize {
        usize::from(self.hnsw.get_max_nb_connection())
    }

    /// Every point of the graph (hnsw_rs's: origin id = our point id, level, neighbours).
    pub(super) fn points(&self) -> impl Iterator<Item = std::sync::Arc<Point<'static, f32>>> + '_ {
        self.hnsw.get_point_indexation().into_iter()
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

    /// Reloads a dump of the points `base..n` of `dims` dimensions; returns the graph and their
    /// vectors, row `i` that of point `base + i`. Any inconsistency is an error (the caller
    /// rebuilds from stored vectors).
    pub(super) fn load(
        folder: &Path,
        params: VectorParams,
        dims: usize,
        base: usize,
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
        let len = n.saturating_sub(base);
        let mut vectors = vec![0f32; len * dims];
        let mut seen = vec![false; len];
        for point in hnsw.get_point_indexation() {
            let id = point.get_origin_id();
            let v = point.get_v();
            let i = id.wrapping_sub(base);
            if i >= len || v.len() != dims || seen[i] {
                return Err(corrupt(format!(
                    "point {id} with {} dimensions does not fit points {base}..{n} of {dims}",
                    v.len()
                )));
            }
            seen[i] = true;
            vectors[i * dims..(i + 1) * dims].copy_from_slice(v);
        }
        if seen.iter().any(|s| !s) {
            return Err(corrupt("points are missing".into()));
        }
        Ok((Graph { hnsw }, vectors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::tests::clustered;
    use std::sync::mpsc;
    use std::time::Duration;

    fn recall_at_10(graph: &Graph, data: &[Vec<f32>], queries: &[Vec<f32>]) -> f64 {
        let mut found = 0;
        for q in queries {
            let mut exact: Vec<(f32, usize)> = data
                .iter()
                .enumerate()
                .map(|(i, v)| (dot(q, v), i))
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let want: std::collections::HashSet<usize> =
                exact.iter().take(10).map(|(_, i)| *i).collect();
            found += graph
                .search(q, 10, 64, None)
                .iter()
                .filter(|(id, _)| want.contains(id))
                .count();
        }
        found as f64 / (10 * queries.len()) as f64
    }

    /// Parallel inserts finish (a watchdog fails the test if they hang) and give the graph the
    /// recall of a serial build of the same points.
    #[test]
    fn parallel_insert_finishes_and_matches_a_serial_build() {
        let dims = 24;
        // tight clusters around 40 centres: many near-duplicates, so concurrent inserts keep
        // choosing each other as neighbours
        let mut data: Vec<Vec<f32>> = clustered(7, 6100, dims, 40, 0.05)
            .chunks_exact(dims)
            .map(<[f32]>::to_vec)
            .collect();
        let queries = data.split_off(6000);
        let params = VectorParams {
            ef_construction: 64,
            ..VectorParams::default()
        };
        let serial = Graph::new(params, data.len());
        for (i, v) in data.iter().enumerate() {
            serial.insert(&[(i, v.as_slice())]);
        }
        let (tx, rx) = mpsc::channel();
        let points = data.clone();
        std::thread::spawn(move || {
            let graph = Graph::new(params, points.len());
            let rows: Vec<(usize, &[f32])> = points
                .iter()
                .enumerate()
                .map(|(i, v)| (i, v.as_slice()))
                .collect();
            assert!(rows.len() >= PARALLEL_INSERT);
            graph.insert(&rows);
            let _ = tx.send(graph);
        });
        let parallel = rx
            .recv_timeout(Duration::from_secs(300))
            .expect("parallel inserts finished within 5 minutes (a deadlock otherwise)");
        assert_eq!(parallel.hnsw.get_nb_point(), data.len());
        let (s, p) = (
            recall_at_10(&serial, &data, &queries),
            recall_at_10(&parallel, &data, &queries),
        );
        // a parallel build's graph depends on the threads' timing: six runs gave 0.989 to 1.0
        // against a serial 1.0, so the margin is 0.03
        assert!(
            p >= s - 0.03,
            "parallel build recall {p} against serial {s}"
        );
        assert!(s > 0.9, "serial recall {s}");
    }
}
