//! The lifecycle of a collection's embedding versions, as the engine keeps it: a version's
//! shadow index built from stored vectors, the **cutover** that makes a version active (under the
//! writer lock: chunks written meanwhile are embedded, the index is brought to the catalog's
//! generation, the catalog switches, and the collection's published indexes are replaced in one
//! step, so no query mixes two versions), promotion and rollback ([`Engine::activate_version`]),
//! retirement and retention, and the canary set captured at a switch. Also the generation that
//! switches a collection to new chunk options. The jobs that drive these (re-index, re-chunk)
//! are in `crate::jobs`; the eval gate that decides a promotion is in `crate::eval::gate`.

use super::state::Engine;
use super::stats::VersionInfo;
use crate::catalog::{JobKind, JobState, VersionRow, VersionState};
use crate::collection::{ActiveEmbedder, Indexes};
use crate::error::{Error, Result};
use crate::searcher::Searcher;
use crate::vectors::VectorIndex;
use quarry_core::{ChunkOptions, ContentHash, Embedder};
use std::collections::HashSet;
use std::sync::Arc;

/// What takes each page of stored vectors, `(chunk hash, vector)` in hash order.
pub(super) type StoredPage<'a> = dyn FnMut(&[(ContentHash, Vec<f32>)]) -> Result<()> + 'a;

/// Chunks in a version's canary set.
pub const CANARY_SIZE: usize = 32;

/// A document split into chunks: `(doc_id, title, chunks)`.
type Chunked = (String, String, Vec<quarry_core::Chunk>);

impl Engine {
    /// Stops running jobs at their next batch, leaving them to resume at the next start (for a
    /// shutdown); no job starts after this.
    pub fn interrupt_jobs(&self) {
        self.interrupt_jobs
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`Engine::interrupt_jobs`] was called.
    pub(crate) fn jobs_interrupted(&self) -> bool {
        self.interrupt_jobs
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Marks the collection's `building` versions `failed` (its one re-index job stopped); an
    /// active or ready version is never touched.
    pub(crate) fn fail_building(&self, collection: &str) -> Result<()> {
        let catalog = self.catalog();
        for v in catalog.versions(collection)? {
            if v.state == VersionState::Building {
                catalog.set_version_state(collection, &v.id, VersionState::Failed)?;
            }
        }
        Ok(())
    }

    /// Embeds `(chunk hash, text as embedded)` with `embedder` and stores the vectors under the
    /// version's fingerprint. Returns how many were embedded.
    /// With `job` (`(id, processed, total)` after this batch), the job's progress is stored in the
    /// same transaction as the vectors.
    pub(crate) fn embed_texts_and_store(
        &self,
        version: &VersionRow,
        embedder: &Arc<dyn Embedder>,
        texts: &[(ContentHash, String)],
        job: Option<(&str, u64, u64)>,
    ) -> Result<u64> {
        if texts.is_empty() {
            return Ok(0);
        }
        let (rows, tokens) = self.vectors_of(version, embedder, texts)?;
        match job {
            Some((id, processed, total)) => {
                let tokens = tokens.unwrap_or(0) as u64;
                self.catalog().put_job_vectors(
                    &version.fingerprint,
                    &rows,
                    (id, processed, total),
                    tokens,
                )?
            }
            None => self.catalog().put_vectors(&version.fingerprint, &rows)?,
        }
        Ok(rows.len() as u64)
    }

    /// Brings `index` to the collection's chunks at `generation`: points of chunks that left
    /// become tombstones, chunks without a point get their stored vector of `fingerprint`.
    /// Compares the whole chunk set, so it does not depend on the change log.
    pub(super) fn sync_vectors(
        &self,
        collection: &str,
        index: &VectorIndex,
        fingerprint: &quarry_core::Fingerprint,
        generation: u64,
    ) -> Result<()> {
        self.sync_vectors_paged(collection, index, fingerprint, generation, &mut |_, _| true)
            .map(|_| ())
    }

    /// [`Engine::sync_vectors`] a page of stored vectors at a time, sealing the open graph
    /// whenever a segment is due (so a build from scratch holds about one segment's vectors in
    /// memory), calling `page(done, total)` after each page; `page` returning `false` stops
    /// there (`None`). Else the number of chunks that had no stored vector (left without a
    /// point, as a write leaves them).
    pub(crate) fn sync_vectors_paged(
        &self,
        collection: &str,
        index: &VectorIndex,
        fingerprint: &quarry_core::Fingerprint,
        generation: u64,
        page: &mut dyn FnMut(u64, u64) -> bool,
    ) -> Result<Option<u64>> {
        let current: HashSet<ContentHash> = self
            .catalog()
            .all_chunk_hashes(collection)?
            .into_iter()
            .collect();
        let removed: Vec<ContentHash> = index
            .keys()
            .into_iter()
            .filter(|h| !current.contains(h))
            .collect();
        let mut wanted: Vec<ContentHash> = current
            .iter()
            .filter(|h| !index.contains(h))
            .copied()
            .collect();
        drop(current);
        wanted.sort();
        let from = index.generation();
        index.apply(generation, &removed, &[])?;
        let without = self.page_stored_vectors(
            fingerprint,
            &wanted,
            &mut |added| {
                index.apply(generation, &[], added)?;
                index.seal_if_due()
            },
            page,
        )?;
        let Some(without) = without else {
            return Ok(None);
        };
        self.compact_after_forget(collection, index, from)?;
        Ok(Some(without))
    }

    /// Reads the stored vectors of `fingerprint` for `hashes` (sorted) a page at a time, in
    /// hash order, giving each page to `add` and then calling `page(done, total)`; `false` stops
    /// there (`None`). Else the number of `hashes` without a stored vector.
    pub(super) fn page_stored_vectors(
        &self,
        fingerprint: &quarry_core::Fingerprint,
        hashes: &[ContentHash],
        add: &mut StoredPage<'_>,
        page: &mut dyn FnMut(u64, u64) -> bool,
    ) -> Result<Option<u64>> {
        const PAGE: usize = 16_384;
        let (mut done, mut without) = (0u64, 0u64);
        for chunk in hashes.chunks(PAGE) {
            let mut added: Vec<(ContentHash, Vec<f32>)> = self
                .catalog()
                .vectors(fingerprint, chunk)?
                .into_iter()
                .collect();
            added.sort_by_key(|(h, _)| *h);
            without += (chunk.len() - added.len()) as u64;
            add(&added)?;
            done += chunk.len() as u64;
            if !page(done, hashes.len() as u64) {
                return Ok(None);
            }
        }
        Ok(Some(without))
    }

    /// Every document of `collection` split with `chunker`: `(doc_id, title, chunks)`.
    pub(crate) fn chunk_all(
        &self,
        collection: &str,
        chunker: &quarry_core::Chunker,
    ) -> Result<Vec<Chunked>> {
        Ok(self
            .catalog()
            .chunkable_documents(collection)?
            .into_iter()
            .map(|(id, title, text, format)| {
                let chunks = chunker.chunk(&title, &text, format);
                (id, title, chunks)
            })
            .collect())
    }

    /// Of `docs`' chunks: how many there are, and the texts (as embedded) of those without a
    /// stored vector of `version`.
    pub(crate) fn missing_texts(
        &self,
        version: &VersionRow,
        docs: &[Chunked],
    ) -> Result<(usize, Vec<(ContentHash, String)>)> {
        let mut texts: std::collections::BTreeMap<ContentHash, String> = Default::default();
        for (_, title, chunks) in docs {
            for c in chunks {
                texts
                    .entry(c.hash)
                    .or_insert_with(|| quarry_core::embed_text(title, &c.text));
            }
        }
        let hashes: Vec<ContentHash> = texts.keys().copied().collect();
        let have = self.catalog().have_vectors(&version.fingerprint, &hashes)?;
        let total = texts.len();
        Ok((
            total,
            texts
                .into_iter()
                .filter(|(h, _)| !have.contains(h))
                .collect(),
        ))
    }

    /// Switches `collection` to chunk options `options` in one generation, under the writer lock:
    /// every document (including those written since a re-chunk job started) is split with
    /// `chunker`, the version serving now gets the vectors of chunks it lacks, and BM25 and
    /// vectors are published together. Returns the generation (`None`: nothing changed).
    pub(crate) fn rechunk_commit(
        &self,
        collection: &str,
        chunker: &quarry_core::Chunker,
        options: &ChunkOptions,
    ) -> Result<Option<u64>> {
        self.with_write_lock(|| {
            let ix = self.recover(collection, self.open_indexes(collection)?, true)?;
            let docs = self.chunk_all(collection, chunker)?;
            // The version serving now (under the lock) gets the new chunks' vectors, whichever
            // was active when the job started.
            if let Some(serving) = &ix.active {
                let embedder = serving.embedder.clone().map_err(Error::Embed)?;
                let (_, late) = self.missing_texts(&serving.version, &docs)?;
                for batch in late.chunks(self.options.embed_batch.max(1)) {
                    self.embed_texts_and_store(&serving.version, &embedder, batch, None)?;
                }
            }
            let committed = {
                let mut catalog = self.catalog();
                let mut tx = catalog.begin(collection)?;
                for (id, title, chunks) in &docs {
                    tx.rechunk(id, title, chunks)?;
                }
                tx.set_chunk_options(options)?;
                tx.commit()?
            };
            let Some((generation, touched)) = committed else {
                return Ok(None);
            };
            self.write_generation(collection, &ix, generation, &touched)?;
            Ok(Some(generation))
        })
    }

    /// Builds the shadow index of `version` from its stored vectors, in the version's own
    /// folder (emptied first), at the catalog's generation, and publishes it for searchers.
    pub(crate) fn build_shadow(
        &self,
        collection: &str,
        version: &VersionRow,
    ) -> Result<Arc<VectorIndex>> {
        let dir = self.index_dir(collection, version);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        let shadow = Arc::new(VectorIndex::open(
            &dir,
            version.spec.dimensions,
            self.vector_params(version),
        )?);
        let generation = self.collection(collection)?.generation;
        self.sync_vectors(collection, &shadow, &version.fingerprint, generation)?;
        shadow.publish();
        Ok(shadow)
    }

    /// A searcher of `collection` that answers vector queries from `shadow` with `candidate`'s
    /// embedder (BM25 as the collection's), for the eval gate; nothing is published.
    pub(crate) fn shadow_searcher(
        &self,
        collection: &str,
        shadow: &Arc<VectorIndex>,
        candidate: &ActiveEmbedder,
    ) -> Result<Searcher> {
        let current = self.indexes(&self.collection(collection)?)?;
        let shadow_ix = Indexes {
            bm25: current.bm25.clone(),
            vectors: Some(shadow.clone()),
            active: Some(candidate.clone()),
            publish: current.publish.clone(),
            incarnation: current.incarnation.clone(),
        };
        Ok(Searcher::new(
            self.collection(collection)?,
            &shadow_ix,
            &self.options,
            &self.query_vectors,
        ))
    }

    /// Makes `candidate` (its index `shadow`) the active version of `collection`: the cutover,
    /// under the writer lock.
    pub(crate) fn promote(
        &self,
        collection: &str,
        candidate: &ActiveEmbedder,
        shadow: Arc<VectorIndex>,
    ) -> Result<()> {
        self.with_write_lock(|| self.cut_over(collection, candidate, shadow))
    }

    /// Leaves `version` `ready` for a person to decide (the eval gate held it back), its index
    /// dumped at the catalog's generation.
    pub(crate) fn hold_back(
        &self,
        collection: &str,
        version: &VersionRow,
        shadow: &VectorIndex,
    ) -> Result<()> {
        // Brought to the catalog's generation under the writer lock first: a forget since
        // the build must not reach the dump.
        self.with_write_lock(|| {
            let generation = self.collection(collection)?.generation;
            self.sync_vectors(collection, shadow, &version.fingerprint, generation)?;
            shadow.dump()
        })?;
        self.catalog()
            .set_version_state(collection, &version.id, VersionState::Ready)
    }

    /// Under the writer lock: embeds the chunks written since the shadow index was built, brings
    /// it to the catalog's generation, makes it the active version in the catalog, and publishes
    /// it in place of the old one, in one step for readers.
    fn cut_over(
        &self,
        collection: &str,
        candidate: &ActiveEmbedder,
        index: Arc<VectorIndex>,
    ) -> Result<()> {
        let version = &candidate.version;
        let embedder = candidate.embedder.clone().map_err(Error::Embed)?;
        // Only chunks without a point in the index can lack a stored vector (a rollback's index
        // already holds everything that was written while it served).
        let without_point: Vec<ContentHash> = self
            .catalog()
            .all_chunk_hashes(collection)?
            .into_iter()
            .filter(|h| !index.contains(h))
            .collect();
        let have = self
            .catalog()
            .have_vectors(&version.fingerprint, &without_point)?;
        let late: Vec<ContentHash> = without_point
            .into_iter()
            .filter(|h| !have.contains(h))
            .collect();
        for batch in late.chunks(self.options.embed_batch.max(1)) {
            let texts = self.catalog().embed_texts(collection, batch)?;
            self.embed_texts_and_store(version, &embedder, &texts, None)?;
        }
        let old = self.recover(collection, self.open_indexes(collection)?, true)?;
        let generation = self.collection(collection)?.generation;
        self.sync_vectors(collection, &index, &version.fingerprint, generation)?;
        if index.needs_dump(0, true) {
            index.dump()?;
        }
        // The version served until now keeps an up-to-date dump, for an instant rollback.
        if let Some(v) = &old.vectors
            && v.needs_dump(0, true)
        {
            v.dump()?;
        }
        index.publish();
        let fresh = Arc::new(Indexes {
            bm25: old.bm25.clone(),
            vectors: Some(index),
            active: Some(candidate.clone()),
            publish: old.publish.clone(),
            incarnation: old.incarnation.clone(),
        });
        // Everything that can fail came before. The catalog switch and the readers' switch happen
        // under the map's lock, so a reader never pairs the new catalog with the old indexes.
        {
            let mut map = self.indexes.write().unwrap_or_else(|p| p.into_inner());
            self.catalog().activate_version(collection, &version.id)?;
            map.insert(collection.to_owned(), fresh);
        }
        let mut standby = self.standby.lock().unwrap_or_else(|p| p.into_inner());
        match (&old.active, &old.vectors) {
            (Some(a), Some(v)) if a.version.id != version.id => {
                standby.insert(collection.to_owned(), (a.version.id.clone(), v.clone()));
            }
            _ => {
                standby.remove(collection);
            }
        }
        drop(standby);
        tracing::info!(collection, version = %version.id, "embedding version activated");
        // Housekeeping after the switch: a failure is logged, the switch stands.
        let housekeeping = (|| -> Result<()> {
            if self.catalog().canaries(collection, &version.id)?.is_empty() {
                self.capture_canaries(collection, version)?;
            }
            self.apply_retention(collection)
        })();
        if let Err(e) = housekeeping {
            tracing::warn!(collection, version = %version.id, error = %e, "after the switch: canary capture or retention failed");
        }
        Ok(())
    }

    /// Version `id` of `collection`, or a not-found error.
    pub(super) fn version_row(&self, collection: &str, id: &str) -> Result<VersionRow> {
        self.collection(collection)?;
        self.catalog()
            .version(collection, id)?
            .ok_or_else(|| Error::NotFound {
                what: "embedding version",
                id: id.to_owned(),
            })
    }

    /// Makes version `id` of `collection` the active one: a promotion of a `ready` version, or a
    /// rollback to an earlier one. Its vectors are stored, so nothing is embedded except chunks
    /// written since it last served. Its embedder must still be configured with its fingerprint.
    pub fn activate_version(&self, collection: &str, id: &str) -> Result<VersionInfo> {
        let version = self.version_row(collection, id)?;
        if matches!(version.state, VersionState::Building | VersionState::Failed) {
            return Err(Error::Input(format!(
                "version {id} is {}: only a ready, retired or active version can be activated",
                version.state
            )));
        }
        if let Some(j) = self
            .catalog()
            .jobs(Some(collection), &JobState::PENDING)?
            .into_iter()
            .find(|j| j.kind == JobKind::Rechunk)
        {
            return Err(Error::Busy(format!(
                "job {} is re-chunking collection `{collection}`; activate a version after it ends (or cancel it)",
                j.id
            )));
        }
        let embedder = match self.embedder_of(&version)? {
            Ok(e) => e,
            Err(_) => {
                return Err(Error::Input(format!(
                    "version {id} was made by embedder `{}` with fingerprint {}, which is not configured \
                     any more; restore its [embedders.{}] settings to activate it",
                    version.embedder,
                    version.fingerprint.short(),
                    version.embedder
                )));
            }
        };
        if self.collection(collection)?.active_version.as_deref() != Some(id) {
            // The version that served before the last switch is still in memory: no reload.
            let standby = self
                .standby
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(collection)
                .filter(|(v, _)| *v == version.id)
                .map(|(_, ix)| ix.clone());
            let index = match standby {
                Some(ix) => ix,
                None => Arc::new(VectorIndex::open(
                    &self.index_dir(collection, &version),
                    version.spec.dimensions,
                    self.vector_params(&version),
                )?),
            };
            let candidate = ActiveEmbedder {
                version: version.clone(),
                embedder: Ok(embedder),
            };
            self.with_write_lock(|| self.cut_over(collection, &candidate, index))?;
        }
        self.version_info(collection, id)
    }

    /// Retires a version that is not active: its vector index folder is deleted; its stored
    /// vectors stay in the embedding cache (so activating it again embeds nothing).
    pub fn retire_version(&self, collection: &str, id: &str) -> Result<()> {
        let version = self.version_row(collection, id)?;
        if version.state == VersionState::Building
            && self
                .catalog()
                .jobs(Some(collection), &JobState::PENDING)?
                .iter()
                .any(|j| j.kind == JobKind::Reindex)
        {
            return Err(Error::Busy(format!(
                "version {id} is being built; cancel its job first"
            )));
        }
        self.with_write_lock(|| self.retire_locked(collection, id))
    }

    /// Retires version `id` (not the active one); the caller holds the writer lock.
    fn retire_locked(&self, collection: &str, id: &str) -> Result<()> {
        {
            let mut standby = self.standby.lock().unwrap_or_else(|p| p.into_inner());
            if standby.get(collection).is_some_and(|(v, _)| v == id) {
                standby.remove(collection);
            }
        }
        if self.collection(collection)?.active_version.as_deref() == Some(id) {
            return Err(Error::Input(format!(
                "version {id} is active; activate another version first"
            )));
        }
        let dir = self.index_dir(collection, &self.version_row(collection, id)?);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        self.catalog()
            .set_version_state(collection, id, VersionState::Retired)
    }

    /// Retires the versions that served before, beyond the `keep_versions - 1` most recently
    /// active ones (`reindex.keep_versions`; 0 keeps all). A version the eval gate held back
    /// never served, and is kept for a person to decide. The caller holds the writer lock.
    fn apply_retention(&self, collection: &str) -> Result<()> {
        let keep = self.options.keep_versions;
        if keep == 0 {
            return Ok(());
        }
        let mut served: Vec<VersionRow> = self
            .catalog()
            .versions(collection)?
            .into_iter()
            .filter(|v| v.state == VersionState::Ready && v.activated_at.is_some())
            .collect();
        served.sort_by_key(|v| std::cmp::Reverse(v.activation_seq));
        for v in served.iter().skip(keep.saturating_sub(1)) {
            tracing::info!(collection, version = %v.id, keep, "retiring an old embedding version (reindex.keep_versions)");
            self.retire_locked(collection, &v.id)?;
        }
        Ok(())
    }

    /// Stores the canary set of `version`: the [`CANARY_SIZE`] chunks of the collection with the
    /// smallest hashes (a fixed, content-spread sample) and their stored vectors of the version.
    pub(crate) fn capture_canaries(&self, collection: &str, version: &VersionRow) -> Result<usize> {
        let mut hashes = self.catalog().all_chunk_hashes(collection)?;
        hashes.sort();
        let stored = self.catalog().vectors(
            &version.fingerprint,
            &hashes[..hashes.len().min(4 * CANARY_SIZE)],
        )?;
        let picked: Vec<ContentHash> = hashes
            .iter()
            .filter(|h| stored.contains_key(h))
            .take(CANARY_SIZE)
            .copied()
            .collect();
        let texts = self.catalog().embed_texts(collection, &picked)?;
        let rows: Vec<(ContentHash, String, Vec<f32>)> = texts
            .into_iter()
            .filter_map(|(h, t)| Some((h, t, stored.get(&h)?.clone())))
            .collect();
        self.catalog()
            .put_canaries(collection, &version.id, &rows)?;
        Ok(rows.len())
    }
}
