//! [`BulkBuild`]: a sealed (int8 or binary) vector index built from scratch in a folder of its own, from vectors
//! given a page at a time (a requantize or rebuild from the stored vectors). Only the open graph
//! and its vectors are in memory while it fills: each segment it seals is written, synced and let
//! go, and [`BulkBuild::finish`] opens the segments from disk (hash-checked) as a restart does.
//! So the build holds one open graph, not the open graph beside every segment sealed before it
//! (at 1,000,000 chunks those were about 0.5 GB of the job's peak).

use super::codes::Codec;
use super::graph::Graph;
use super::index::{VectorIndex, check_dims};
use super::params::VectorParams;
use super::segment::{Segment, SegmentEntry};
use crate::error::{Error, Result};
use quarry_core::ContentHash;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct BulkBuild {
    dir: PathBuf,
    dims: usize,
    params: VectorParams,
    codec: Codec,
    graph: Graph,
    /// The open graph's vectors, row-major (points `open_base..`).
    vectors: Vec<f32>,
    hashes: Vec<ContentHash>,
    by_hash: HashMap<ContentHash, usize>,
    sealed: Vec<SegmentEntry>,
    open_base: usize,
}

impl BulkBuild {
    /// A build into `dir` (created if missing; it must hold no index) with `params`, whose
    /// quantization must seal (`int8` or `binary`; with `none` nothing is sealed: build through
    /// [`VectorIndex::apply`]).
    pub fn new(dir: &Path, dims: usize, params: VectorParams) -> Result<Self> {
        params.validate()?;
        let Some(codec) = params.quantization.codec() else {
            return Err(Error::Input(
                "a bulk build seals segments; build a `none` index point by point".into(),
            ));
        };
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(BulkBuild {
            dir: dir.to_owned(),
            dims,
            params,
            codec,
            graph: Graph::new(params, 1024),
            vectors: Vec::new(),
            hashes: Vec::new(),
            by_hash: HashMap::new(),
            sealed: Vec::new(),
            open_base: 0,
        })
    }

    /// Adds `page`'s vectors (a chunk already added is skipped), sealing the open graph into a
    /// segment once it holds `segment_points` points.
    pub fn add(&mut self, page: &[(ContentHash, Vec<f32>)]) -> Result<()> {
        let first = self.hashes.len();
        for (hash, v) in page {
            check_dims(hash, v, self.dims)?;
            if self.by_hash.contains_key(hash) {
                continue;
            }
            self.by_hash.insert(*hash, self.hashes.len());
            self.hashes.push(*hash);
            self.vectors.extend_from_slice(v);
        }
        let rows: Vec<(usize, &[f32])> = self
            .vectors
            .chunks_exact(self.dims)
            .enumerate()
            .skip(first - self.open_base)
            .map(|(i, v)| (self.open_base + i, v))
            .collect();
        self.graph.insert(&rows);
        if self
            .params
            .seals(self.hashes.len() - self.open_base)
            .is_some()
        {
            self.seal()?;
        }
        Ok(())
    }

    /// Points added so far.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Seals the open graph into a segment on disk and lets both go.
    fn seal(&mut self) -> Result<()> {
        if self.hashes.len() == self.open_base {
            return Ok(());
        }
        let graph = std::mem::replace(&mut self.graph, Graph::new(self.params, 1024));
        let vectors = std::mem::take(&mut self.vectors);
        let m = graph.max_links();
        let open = self.hashes.len() - self.open_base;
        let sealed = Segment::seal(
            &self.dir,
            &graph,
            self.open_base,
            &vectors,
            (self.dims, m),
            self.codec,
        )?;
        // (a segment short of the open points would lose them: never expected, refused)
        let Some(segment) = sealed.filter(|s| s.entry.points == open) else {
            return Err(Error::Corrupt(format!(
                "sealing {open} points of a bulk build gave a segment without all of them"
            )));
        };
        tracing::info!(
            points = segment.entry.points,
            segments = self.sealed.len() + 1,
            "vector graph sealed into a segment (bulk build)"
        );
        self.sealed.push(segment.entry.clone());
        self.open_base = self.hashes.len();
        Ok(())
    }

    /// Seals the rest and opens the index, at `generation`, every point in a segment. Nothing is
    /// dumped yet: the caller dumps it (its manifest then names the segments).
    pub fn finish(mut self, generation: u64) -> Result<VectorIndex> {
        self.seal()?;
        let sealed = self
            .sealed
            .iter()
            .map(|e| Segment::open(&self.dir, e, self.dims).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(VectorIndex::from_sealed(
            &self.dir,
            self.dims,
            self.params,
            sealed,
            self.hashes,
            self.by_hash,
            generation,
        ))
    }
}
