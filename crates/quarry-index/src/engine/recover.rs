//! Bringing a collection's derived indexes to a generation: writing touched chunks to BM25 and
//! the vector graph, publishing both together, pruning the change log, and recovering from the
//! change log (or by a rebuild) after a crash or another process's writes.

use super::state::Engine;
use crate::bm25::Bm25Index;
use crate::catalog::CollectionRow;
use crate::collection::Indexes;
use crate::error::Result;
use crate::vectors::VectorIndex;
use quarry_core::ContentHash;
use std::sync::Arc;

impl Engine {
    /// Without the writer lock: brings the vectors to `target` (a generation committed to the
    /// catalog and to BM25 on disk) from the change log and the stored vectors, then reloads BM25
    /// and publishes both. `None` when the log no longer reaches the vectors' generation.
    pub(super) fn follow(
        &self,
        row: &CollectionRow,
        ix: Arc<Indexes>,
        target: u64,
    ) -> Result<Option<Arc<Indexes>>> {
        let behind = ix
            .vectors
            .as_ref()
            .is_some_and(|v| v.generation() != target);
        let ix = if behind {
            self.reload_sealed(row, ix, target).unwrap_or_else(|ix| ix)
        } else {
            ix
        };
        if let Some(vectors) = &ix.vectors
            && vectors.generation() != target
            && !self.vectors_from_log(row, &ix, vectors.generation(), target, false)?
        {
            return Ok(None);
        }
        ix.publish()?;
        Ok(Some(ix))
    }

    /// When another process's dump sealed points this process holds in its open graph (a server
    /// following a CLI ingest replays every write into its own graph, whose memory only a seal
    /// frees), new indexes over that dump brought to `target` from the change log; else `ix`
    /// back (as the error). Without the writer lock: a dump the writer replaces while it is read
    /// fails its hashes, and the replay goes on in the graph in memory.
    fn reload_sealed(
        &self,
        row: &CollectionRow,
        ix: Arc<Indexes>,
        target: u64,
    ) -> std::result::Result<Arc<Indexes>, Arc<Indexes>> {
        let (Some(vectors), Some(active)) = (&ix.vectors, &ix.active) else {
            return Err(ix);
        };
        let dir = self.index_dir(&row.name, &active.version);
        let on_disk = crate::vectors::dump_sealed(&dir);
        if !on_disk.is_some_and(|(generation, sealed)| {
            sealed > vectors.sealed_points() && generation <= target
        }) {
            return Err(ix);
        }
        let params = self.vector_params(&active.version);
        let reloaded = match VectorIndex::open(&dir, vectors.dims(), params) {
            Ok(v) if v.generation() > 0 && v.sealed_points() > vectors.sealed_points() => v,
            _ => return Err(ix),
        };
        let fresh = Arc::new(ix.with_vectors(reloaded));
        let from = fresh.vectors.as_ref().map_or(0, |v| v.generation());
        match self.vectors_from_log(row, &fresh, from, target, false) {
            Ok(true) => {}
            _ => return Err(ix),
        }
        tracing::info!(
            collection = row.name.as_str(),
            generation = target,
            "vector index reloaded from another process's dump with newly sealed segments"
        );
        if self.replace_indexes(&row.name, &ix, &fresh) {
            Ok(fresh)
        } else {
            Err(ix)
        }
    }

    /// Brings the vectors of `ix` from generation `from` to `target` with the chunks the change
    /// log says changed in between and their stored vectors (dumping the graph if `dump`).
    /// `false`, with nothing done, when the log does not reach back to `from` (or `from` is
    /// ahead of `target`).
    fn vectors_from_log(
        &self,
        row: &CollectionRow,
        ix: &Indexes,
        from: u64,
        target: u64,
        dump: bool,
    ) -> Result<bool> {
        let collection = row.name.as_str();
        if from > target {
            return Ok(false);
        }
        let Some(touched) = self.catalog().changed_between(collection, from, target)? else {
            return Ok(false);
        };
        tracing::debug!(
            collection,
            from,
            target,
            chunks = touched.len(),
            "vectors brought up to date from the change log"
        );
        if let Some(vectors) = &ix.vectors {
            self.repoint_replaced(ix, vectors, target, &touched)?;
        }
        self.write_vectors(row, ix, target, &touched, dump)?;
        Ok(true)
    }

    /// Tombstones the points of `touched` chunks whose stored vector is no longer the one their
    /// point holds (a load of vectors replaced it, in another process), so that the catch-up's
    /// [`Engine::write_vectors`], which only adds points for chunks without one, gives them a
    /// point with the stored vector. A chunk touched for another reason (new, or an ACL change)
    /// keeps its point.
    fn repoint_replaced(
        &self,
        ix: &Indexes,
        vectors: &VectorIndex,
        generation: u64,
        touched: &[ContentHash],
    ) -> Result<()> {
        let Some(active) = &ix.active else {
            return Ok(());
        };
        let with_point: Vec<ContentHash> = touched
            .iter()
            .filter(|h| vectors.contains(h))
            .copied()
            .collect();
        if with_point.is_empty() {
            return Ok(());
        }
        let stored = self
            .catalog()
            .vectors(&active.version.fingerprint, &with_point)?;
        let keys: Vec<u64> = with_point.iter().map(crate::bm25::chunk_key).collect();
        let current = vectors.snapshot().vectors_of(&keys);
        let replaced: Vec<ContentHash> = with_point
            .into_iter()
            .zip(current)
            .filter(|(h, point)| match (stored.get(h), point) {
                (Some(s), Some(p)) => !super::write::same_point(p, s),
                _ => false,
            })
            .map(|(h, _)| h)
            .collect();
        if !replaced.is_empty() {
            vectors.apply(generation, &replaced, &[])?;
        }
        Ok(())
    }

    /// Brings every derived index to the catalog's generation by replaying the change log, or by a
    /// full rebuild when the log does not reach back far enough or an index is ahead of the catalog.
    /// The caller holds the writer lock. Returns the indexes to use from now on: `ix`, or new
    /// ones when the vector graph had to be reloaded from its dump or rebuilt. `dump`: whether
    /// the vector graph may be written to disk now (a write), or not (a read).
    pub(crate) fn recover(
        &self,
        collection: &str,
        ix: Arc<Indexes>,
        dump: bool,
    ) -> Result<Arc<Indexes>> {
        let row = self.collection(collection)?;
        self.recover_at(&row, ix, dump)
    }

    /// [`Engine::recover`] to the generation of `row`, the collection's row the caller read under
    /// the writer lock.
    pub(super) fn recover_at(
        &self,
        row: &CollectionRow,
        ix: Arc<Indexes>,
        dump: bool,
    ) -> Result<Arc<Indexes>> {
        let collection = row.name.as_str();
        let catalog_gen = row.generation;
        let bm25_gen = ix.bm25.generation()?;
        if bm25_gen != catalog_gen && self.options.read_only {
            return Err(self.needs_write(&format!(
                "the BM25 index of {collection} is at generation {bm25_gen}, the catalog at \
                 {catalog_gen} (a writer stopped before its commit reached BM25)"
            )));
        }
        if bm25_gen != catalog_gen {
            let (touched, rebuild) = self.replay_set(collection, bm25_gen, catalog_gen)?;
            tracing::warn!(
                collection,
                bm25_gen,
                catalog_gen,
                chunks = touched.len(),
                rebuild,
                "recovering BM25 index"
            );
            self.write_bm25(row, &ix.bm25, catalog_gen, &touched, rebuild)?;
        }
        let ix = match &ix.vectors {
            Some(vectors) if vectors.generation() != catalog_gen => {
                self.recover_vectors(row, ix.clone(), catalog_gen, dump)?
            }
            _ => ix,
        };
        ix.publish()?;
        self.prune(collection, &ix)?;
        Ok(ix)
    }

    /// Brings the vector graph of `ix` to `catalog_gen`: from the change log when it reaches
    /// back to the graph's generation; else from the dump on disk (another process wrote a newer
    /// one and pruned the log before this graph's generation) and the log from there; else by a
    /// rebuild from the stored vectors. The caller holds the writer lock.
    fn recover_vectors(
        &self,
        row: &CollectionRow,
        ix: Arc<Indexes>,
        catalog_gen: u64,
        dump: bool,
    ) -> Result<Arc<Indexes>> {
        let collection = row.name.as_str();
        let (Some(vectors), Some(active)) = (&ix.vectors, &ix.active) else {
            return Ok(ix);
        };
        let vec_gen = vectors.generation();
        if vec_gen < catalog_gen && self.vectors_from_log(row, &ix, vec_gen, catalog_gen, dump)? {
            return Ok(ix);
        }
        let dir = self.index_dir(collection, &active.version);
        let (dims, params) = (
            active.version.spec.dimensions,
            self.vector_params(&active.version),
        );
        let mut reopened = VectorIndex::open(&dir, dims, params)?;
        let mut from = reopened.generation();
        let mut touched = (from <= catalog_gen)
            .then(|| {
                self.catalog()
                    .changed_between(collection, from, catalog_gen)
            })
            .transpose()?
            .flatten();
        if touched.is_none() {
            reopened = VectorIndex::empty(&dir, dims, params)?;
            from = 0;
            touched = Some(self.catalog().all_chunk_hashes(collection)?);
        }
        let touched = touched.unwrap_or_default();
        tracing::warn!(
            collection,
            vec_gen,
            dump_gen = from,
            catalog_gen,
            chunks = touched.len(),
            "the change log does not reach back to the vector index in memory; {}",
            if from == 0 {
                "rebuilding it from stored vectors"
            } else {
                "reloading its dump"
            }
        );
        let fresh = Arc::new(ix.with_vectors(reopened));
        if let Some(vectors) = &fresh.vectors {
            self.repoint_replaced(&fresh, vectors, catalog_gen, &touched)?;
        }
        self.write_vectors(row, &fresh, catalog_gen, &touched, dump)?;
        self.replace_indexes(collection, &ix, &fresh);
        Ok(fresh)
    }

    /// Caches `fresh` as the indexes of `collection` in place of `old`; `false`, with nothing
    /// changed, when another thread replaced `old` first.
    fn replace_indexes(&self, collection: &str, old: &Arc<Indexes>, fresh: &Arc<Indexes>) -> bool {
        let mut map = self.indexes.write().unwrap_or_else(|p| p.into_inner());
        let current = map.get(collection).is_some_and(|cur| Arc::ptr_eq(cur, old));
        if current {
            map.insert(collection.to_owned(), fresh.clone());
        }
        current
    }

    /// Chunks to replay from generation `from` to `to`, and whether that is a full rebuild.
    fn replay_set(&self, collection: &str, from: u64, to: u64) -> Result<(Vec<ContentHash>, bool)> {
        let replay = if from < to {
            self.catalog().changed_between(collection, from, to)?
        } else {
            None
        };
        Ok(match replay {
            Some(hashes) => (hashes, false),
            None => (self.catalog().all_chunk_hashes(collection)?, true),
        })
    }

    /// Writes the touched chunks of `row`'s collection to its BM25 index and commits
    /// `generation` (`rebuild`: the index is emptied first). Each chunk's BM25 context follows
    /// the collection's chunk options.
    pub(crate) fn write_bm25(
        &self,
        row: &CollectionRow,
        ix: &Bm25Index,
        generation: u64,
        touched: &[ContentHash],
        rebuild: bool,
    ) -> Result<()> {
        let collection = row.name.as_str();
        let context_chars = row.chunk_options.context_chars;
        let records = {
            let catalog = self.catalog();
            touched
                .iter()
                .filter_map(|h| {
                    catalog
                        .chunk_record(collection, h, context_chars)
                        .transpose()
                })
                .collect::<Result<Vec<_>>>()?
        };
        ix.commit(
            generation,
            touched,
            &records,
            rebuild,
            self.merges(collection),
        )
    }

    /// Applies the touched chunks to the vector index: chunks that left the collection become
    /// tombstones, chunks in it get their stored vector. Not published yet. `dump`: write the
    /// graph to disk when enough changed since its last dump (only writers, under the writer
    /// lock, may).
    pub(crate) fn write_vectors(
        &self,
        row: &CollectionRow,
        ix: &Indexes,
        generation: u64,
        touched: &[ContentHash],
        dump: bool,
    ) -> Result<()> {
        let collection = row.name.as_str();
        let (Some(vectors), Some(active)) = (&ix.vectors, &ix.active) else {
            return Ok(());
        };
        let (existing, stored) = {
            let catalog = self.catalog();
            catalog.read_consistent(|catalog| {
                let existing = catalog.existing_chunks(collection, touched)?;
                let wanted: Vec<ContentHash> = existing
                    .iter()
                    .filter(|h| !vectors.contains(h))
                    .copied()
                    .collect();
                let stored = catalog.vectors(&active.version.fingerprint, &wanted)?;
                Ok((existing, stored))
            })?
        };
        let removed: Vec<ContentHash> = touched
            .iter()
            .filter(|h| !existing.contains(h))
            .copied()
            .collect();
        let mut added: Vec<(ContentHash, Vec<f32>)> = stored.into_iter().collect();
        added.sort_by_key(|(h, _)| *h);
        let from = vectors.generation();
        vectors.apply(generation, &removed, &added)?;
        Self::compact_forgotten(row, vectors, from)?;
        if dump && vectors.needs_dump(self.options.dump_every_points, false) {
            vectors.dump()?;
        }
        Ok(())
    }

    /// Forgets the change log that no derived index needs any more.
    pub(crate) fn prune(&self, collection: &str, ix: &Indexes) -> Result<()> {
        if self.options.read_only {
            return Ok(());
        }
        let mut keep_from = ix.bm25.generation()?;
        if let Some(v) = &ix.vectors {
            keep_from = keep_from.min(v.dumped_generation());
            // What this graph and every other process's graph still need.
            let held = self
                .catalog()
                .hold(collection, &self.holder, v.generation())?;
            keep_from = keep_from.min(held);
        } else if let Some(held) = self.catalog().oldest_hold(collection)? {
            // Without vectors nobody holds for a graph, but a snapshot copying this collection's
            // BM25 index does (`engine::snapshot`).
            keep_from = keep_from.min(held);
        }
        if keep_from > 0 {
            self.catalog().prune_changelog(collection, keep_from)?;
        }
        Ok(())
    }
}
