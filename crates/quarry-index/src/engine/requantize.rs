//! The end of a requantize: the vector index a job built anew (another quantization, from the
//! stored vectors, in its own folder) brought to the catalog's generation and switched in for
//! the active version, under the writer lock; the old folder removed.

use super::state::Engine;
use crate::catalog::{CollectionRow, RequantizeResult, VersionRow};
use crate::collection::{ActiveEmbedder, Indexes};
use crate::error::{Error, Result};
use crate::vectors::{BulkBuild, IndexParams, VectorIndex};
use std::sync::Arc;

impl Engine {
    /// The collection's indexes as this process serves them; when it has none open (a CLI
    /// running the job), BM25 alone: the old vector index is never loaded just to be replaced.
    fn serving(&self, row: &CollectionRow) -> Result<Arc<Indexes>> {
        let cached = self
            .indexes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&row.name)
            .cloned();
        if let Some(ix) = cached {
            return Ok(ix);
        }
        let active = match &row.active_version {
            Some(id) => self.active_embedder(&row.name, id)?,
            None => None,
        };
        Ok(Arc::new(Indexes {
            bm25: Arc::new(self.open_bm25(&row.name)?),
            vectors: None,
            active,
            publish: Arc::new(std::sync::RwLock::new(())),
            incarnation: row.incarnation.clone(),
        }))
    }

    /// A new sealed (int8 or binary) index in `dir` with `params`, built from the stored vectors of `version`
    /// of every chunk of `collection` a page at a time (only the open graph in memory:
    /// [`BulkBuild`]), at `generation`; `page(done, total)` after each page, `false` stopping
    /// there (`None`). Else the index (not yet dumped) and the number of chunks without a stored
    /// vector.
    pub(crate) fn build_vectors_bulk(
        &self,
        collection: &str,
        dir: &std::path::Path,
        params: crate::vectors::VectorParams,
        version: &VersionRow,
        generation: u64,
        page: &mut dyn FnMut(u64, u64) -> bool,
    ) -> Result<Option<(VectorIndex, u64)>> {
        let (dims, fingerprint) = (version.spec.dimensions, &version.fingerprint);
        let mut wanted = self.catalog().all_chunk_hashes(collection)?;
        wanted.sort();
        wanted.dedup();
        let mut bulk = BulkBuild::new(dir, dims, params)?;
        let without =
            self.page_stored_vectors(fingerprint, &wanted, &mut |added| bulk.add(added), page)?;
        drop(wanted);
        match without {
            Some(without) => Ok(Some((bulk.finish(generation)?, without))),
            None => Ok(None),
        }
    }

    /// When version `version` of `collection` is active and already served from `folder`, what
    /// its requantize ended with: a job that switched and then died before its end was recorded
    /// must not build that folder again (it is the live index, which this or another process
    /// reads and dumps into).
    pub(crate) fn requantized_already(
        &self,
        collection: &str,
        version: &VersionRow,
        params: IndexParams,
        folder: &str,
    ) -> Result<Option<RequantizeResult>> {
        if version.folder() != folder {
            return Ok(None);
        }
        let row = self.collection(collection)?;
        // the index this process serves, else (a CLI running the job) its dump's count
        let points = match &self.serving(&row)?.vectors {
            Some(index) => index.keys().len(),
            None => crate::vectors::dump_points(&self.version_dir(collection, folder)).unwrap_or(0),
        } as u64;
        Ok(Some(RequantizeResult {
            version: version.id.clone(),
            quantization: self.options.vector.with_index(&params).quantization,
            points,
            without_vector: 0,
            generation: row.generation,
        }))
    }

    /// Makes `index` (built in folder `folder` with `params`) the index of version `version`,
    /// which must still be the collection's active one: catches it up with the writes since
    /// it was built, dumps it, records the version's new parameters and folder, and publishes
    /// it in place of the old index, in one step for readers. Other processes see the folder
    /// change in the collection's row and open the new index.
    pub(crate) fn requantize_commit(
        &self,
        collection: &str,
        version: &str,
        params: IndexParams,
        folder: &str,
        index: VectorIndex,
    ) -> Result<RequantizeResult> {
        self.with_write_lock(|| {
            let row = self.collection(collection)?;
            let old = self.recover_at(&row, self.serving(&row)?, true)?;
            let still_active = row.active_version.as_deref() == Some(version);
            let Some(active) = old
                .active
                .as_ref()
                .filter(|a| still_active && a.version.id == version)
            else {
                return Err(Error::Input(format!(
                    "version {version} is no longer the active version of `{collection}`; \
                     requantize the active one (`quarry versions list {collection}`)"
                )));
            };
            let index = Arc::new(index);
            self.sync_vectors(
                collection,
                &index,
                &active.version.fingerprint,
                row.generation,
            )?;
            index.dump()?;
            let mut switched = active.version.clone();
            switched.index = params;
            switched.index_folder = Some(folder.to_owned());
            let fresh = Arc::new(Indexes {
                bm25: old.bm25.clone(),
                vectors: Some(index.clone()),
                active: Some(ActiveEmbedder {
                    version: switched,
                    embedder: active.embedder.clone(),
                }),
                publish: old.publish.clone(),
                incarnation: old.incarnation.clone(),
            });
            index.publish();
            // The catalog and the map switch together (as at a version's cutover), so a reader
            // never pairs the new row with the old index.
            {
                let mut map = self.indexes.write().unwrap_or_else(|p| p.into_inner());
                self.catalog()
                    .set_version_index(collection, version, &params, folder)?;
                map.insert(collection.to_owned(), fresh);
            }
            let before = active.version.folder();
            if before != folder {
                let dir = self.version_dir(collection, before);
                // Searches running on the old index keep reading its open segment files.
                if let Err(e) = std::fs::remove_dir_all(&dir)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not remove the vector index a requantize replaced");
                }
            }
            let points = index.keys().len() as u64;
            tracing::info!(collection, version, folder, points, "vector index requantized");
            Ok(RequantizeResult {
                version: version.to_owned(),
                quantization: self.options.vector.with_index(&params).quantization,
                points,
                without_vector: 0,
                generation: row.generation,
            })
        })
    }
}
