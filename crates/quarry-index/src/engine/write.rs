//! The write path: [`Engine::apply`] commits a batch of [`Change`]s as one generation (embedding
//! what has no stored vector, then the catalog, BM25 and vectors), [`Engine::put_vectors`] loads
//! vectors computed elsewhere, and [`Engine::flush`] dumps what changed.

use super::state::Engine;
use crate::catalog::VersionRow;
use crate::catalog::{CollectionRow, UpsertOutcome, check_collection_name};
use crate::collection::Indexes;
use crate::error::{Error, Result};
use quarry_core::embed::{EmbedCheckError, embed_checked_counted};
use quarry_core::{Chunk, ContentHash, Document, Embedder, InputKind, Principal};
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::ScopedJoinHandle;

/// One change to a collection.
#[derive(Debug, Clone)]
pub enum Change {
    Upsert(Document, Vec<Chunk>),
    Delete(String),
}

/// What one [`Engine::apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// The generation committed, or `None` when nothing changed.
    pub generation: Option<u64>,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Documents whose content was unchanged but whose ACL changed (nothing re-embedded).
    pub acl_updated: u64,
    pub deleted: u64,
    /// Chunks written to (or removed from) the BM25 index.
    pub chunks_touched: u64,
    /// Chunks sent to the embedding model.
    pub embedded: u64,
    /// Chunks of changed documents whose vectors were already stored.
    pub cache_hits: u64,
}

/// What a write needs of its collection, loaded once per batch under the writer lock and passed
/// down: the catalog row (chunk options, active version id, incarnation, forgotten generation and
/// the generation before the batch) and the indexes caught up to it (with the active embedder
/// and its version). Under the writer lock no other writer changes the row until the batch ends.
pub(crate) struct WriteContext {
    pub(crate) row: CollectionRow,
    pub(crate) ix: Arc<Indexes>,
}

impl Engine {
    /// The [`WriteContext`] of `collection`, its indexes recovered to the catalog's generation;
    /// `create`: a collection that does not exist is created (with the engine's default chunking
    /// and embedder), else it is not found. The caller holds the writer lock.
    pub(crate) fn write_context(&self, collection: &str, create: bool) -> Result<WriteContext> {
        let row = match self.collection_row(collection)? {
            Some(row) => row,
            None if create => {
                self.create_default(collection)?;
                self.collection(collection)?
            }
            None => {
                return Err(Error::NotFound {
                    what: "collection",
                    id: collection.to_owned(),
                });
            }
        };
        let ix = self.open_indexes_of(&row)?;
        let ix = self.recover_at(&row, ix, true)?;
        Ok(WriteContext { row, ix })
    }

    /// Writes every vector index that changed since its last dump and merges the BM25 segments a
    /// bulk ingest's lazy merges left ([`crate::bm25::Bm25Index::settle`]): the end of an ingest,
    /// shutdown.
    pub fn flush(&self) -> Result<()> {
        let all: Vec<(String, Arc<Indexes>)> = self
            .indexes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.with_write_lock(|| {
            for (name, ix) in all {
                // Indexes of a collection another process deleted (and maybe created again)
                // are closed, not written: the folder is gone, or the new collection's.
                let row = match self.collection_row(&name)? {
                    Some(row) if row.incarnation == ix.incarnation => row,
                    row => {
                        self.drop_stale(&name, row.as_ref());
                        continue;
                    }
                };
                // Indexes another process replaced (a version switch, a requantize) are not
                // written: their folder may be gone.
                if ix.active.as_ref().map(|a| a.version.folder()) != row.active_index.as_deref() {
                    continue;
                }
                // Another process may have written since: catch up first, so this dump is never
                // older than the one on disk.
                let ix = self.recover_at(&row, ix, false)?;
                if !self.options.read_only && ix.bm25.settle()? {
                    ix.publish()?;
                }
                if let Some(v) = &ix.vectors
                    && v.needs_dump(0, true)
                {
                    v.dump()?;
                }
                self.prune(&name, &ix)?;
            }
            Ok(())
        })
    }

    /// Creates the collection, with an active version of the default embedder.
    fn create_default(&self, collection: &str) -> Result<()> {
        let embedder = self.default_embedder()?;
        self.clear_leftover_folder(collection)?;
        let catalog = self.catalog();
        catalog.ensure_collection(collection, &self.options.chunk, &self.options.bm25)?;
        if let Some(e) = embedder {
            catalog.create_active_version(collection, &self.options.embedder, e.spec())?;
        }
        Ok(())
    }

    /// Removes the folder of indexes of `collection`, which has no catalog row (the caller holds
    /// the writer lock and is about to create it): a folder there is what a deletion left when
    /// its removal failed or its process died after the catalog's delete. Its vector dump would
    /// otherwise be taken for the new collection's once the new catalog reached its generation.
    pub(crate) fn clear_leftover_folder(&self, collection: &str) -> Result<()> {
        check_collection_name(collection)?;
        let dir = self.dir.join("collections").join(collection);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::warn!(collection, dir = %dir.display(), "removed the folder a deleted collection of this name left");
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&dir, e)),
        }
    }

    /// Embeds the chunks of `changes` that have no stored vector of the collection's embedder and
    /// stores them. Returns `(embedded, cache_hits)`.
    fn embed_missing(
        &self,
        ix: &Indexes,
        changes: &[Change],
        cancel: Option<&crate::Cancel>,
    ) -> Result<(u64, u64)> {
        let Some(active) = &ix.active else {
            return Ok((0, 0));
        };
        let embedder = active.embedder.clone().map_err(Error::Embed)?;
        self.embed_missing_with(&active.version, &embedder, changes, cancel)
    }

    /// Embeds, before the writer lock is taken, the chunks of `changes` that lack a vector of
    /// `collection`'s active embedder, and stores the vectors (keyed by fingerprint and chunk
    /// hash, like any stored vector): the batch's apply then finds them, and holds the writer lock
    /// only to commit and index, not while the model runs. An ingest calls it for its next batch
    /// while the batch before commits. A collection that does not exist yet is created first, as
    /// the apply would. Returns the chunks embedded: 0 when the collection has no embedder or it
    /// cannot be had (the apply says why then).
    pub(crate) fn embed_ahead(
        &self,
        collection: &str,
        changes: &[Change],
        cancel: Option<&crate::Cancel>,
    ) -> Result<u64> {
        // it stores vectors before taking the writer lock
        self.catalog_checked()?;
        let chunks = |c: &Change| matches!(c, Change::Upsert(_, chunks) if !chunks.is_empty());
        if !changes.iter().any(chunks) {
            return Ok(0);
        }
        let row = match self.collection_row(collection)? {
            Some(row) => row,
            None => {
                // Created now, as the apply would create it (under the lock), so that a new
                // collection's first batch is embedded ahead too.
                self.with_write_lock(|| match self.collection_row(collection)? {
                    Some(_) => Ok(()),
                    None => self.create_default(collection),
                })?;
                self.collection(collection)?
            }
        };
        let active = match row.active_version.as_deref() {
            Some(id) => self.active_embedder(collection, id)?,
            None => None,
        };
        match active {
            Some(crate::collection::ActiveEmbedder {
                version,
                embedder: Ok(embedder),
            }) => Ok(self
                .embed_missing_with(&version, &embedder, changes, cancel)?
                .0),
            _ => Ok(0),
        }
    }

    /// [`Engine::embed_missing`] with `version`'s `embedder`.
    fn embed_missing_with(
        &self,
        version: &VersionRow,
        embedder: &Arc<dyn Embedder>,
        changes: &[Change],
        cancel: Option<&crate::Cancel>,
    ) -> Result<(u64, u64)> {
        let mut texts: HashMap<ContentHash, String> = HashMap::new();
        for change in changes {
            if let Change::Upsert(doc, chunks) = change {
                for c in chunks {
                    texts
                        .entry(c.hash)
                        .or_insert_with(|| quarry_core::embed_text(&doc.title, &c.text));
                }
            }
        }
        if texts.is_empty() {
            return Ok((0, 0));
        }
        let fp = version.fingerprint;
        let hashes: Vec<ContentHash> = texts.keys().copied().collect();
        let have = self.catalog().have_vectors(&fp, &hashes)?;
        let mut missing: Vec<(ContentHash, String)> = texts
            .into_iter()
            .filter(|(h, _)| !have.contains(h))
            .collect();
        self.telemetry
            .observe_queued(&version.embedder, missing.len() as u64);
        // Longest first: batches of similar lengths pad little (a remote model; the local one
        // packs its batches).
        missing.sort_by_key(|(h, t)| (std::cmp::Reverse(t.len()), *h));
        // Each batch's vectors are stored (a catalog transaction and its fsync) on a thread of
        // their own while the next batch is in the model, so the model does not wait on the disk.
        // A failed store stops the loop before the next batch that starts after it ended.
        std::thread::scope(|scope| {
            let mut storing: Option<ScopedJoinHandle<'_, Result<()>>> = None;
            let mut embed_all = || {
                for batch in missing.chunks(self.options.embed_batch.max(1)) {
                    if storing.as_ref().is_some_and(ScopedJoinHandle::is_finished) {
                        joined(storing.take())?;
                    }
                    if cancel.is_some_and(crate::Cancel::is_cancelled) {
                        return Err(Error::Cancelled(
                            "the write was cancelled while its chunks were embedded; nothing of it was committed".into(),
                        ));
                    }
                    let (rows, _) = self.vectors_of(version, embedder, batch)?;
                    joined(storing.take())?;
                    let fingerprint = &version.fingerprint;
                    storing =
                        Some(scope.spawn(move || self.catalog().put_vectors(fingerprint, &rows)));
                }
                Ok(())
            };
            let embedded = embed_all();
            // The store in flight ends either way; its error happened first, so it wins.
            joined(storing.take()).and(embedded)
        })?;
        Ok((missing.len() as u64, have.len() as u64))
    }

    /// The vectors of `(chunk hash, text as embedded)` by `embedder` (checked: one per text, of
    /// the version's dimensions), paired with their hashes, and the tokens the model counted.
    pub(crate) fn vectors_of(
        &self,
        version: &VersionRow,
        embedder: &Arc<dyn Embedder>,
        texts: &[(ContentHash, String)],
    ) -> Result<(Vec<ChunkVector>, Option<usize>)> {
        if texts.is_empty() {
            return Ok((Vec::new(), Some(0)));
        }
        let inputs: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
        let dims = version.spec.dimensions;
        let wrong = |got: usize| {
            Error::Embed(format!(
                "embedder `{}` returned {got} vectors for {} inputs (or the wrong dimension; {dims} expected)",
                version.embedder,
                inputs.len()
            ))
        };
        let (vectors, tokens) =
            embed_checked_counted(&**embedder, &inputs, InputKind::Document, Some(dims)).map_err(
                |e| match e {
                    EmbedCheckError::Embed(e) => Error::Embed(e.to_string()),
                    EmbedCheckError::Count { got, .. } => wrong(got),
                    EmbedCheckError::Dimensions { .. } => wrong(inputs.len()),
                },
            )?;
        let rows = texts
            .iter()
            .zip(vectors)
            .map(|((h, _), v)| (*h, v))
            .collect();
        Ok((rows, tokens))
    }

    /// Applies `changes` to `collection` (created on first write) as one generation.
    pub fn apply(&self, collection: &str, changes: Vec<Change>) -> Result<ApplyStats> {
        self.apply_with(collection, changes, true)
    }

    /// [`Engine::apply`], optionally without embedding: chunks without a stored vector are then
    /// searchable by BM25 only, until vectors are loaded for them ([`Engine::put_vectors`]) or a
    /// later ingest of the same content embeds them.
    pub fn apply_with(
        &self,
        collection: &str,
        changes: Vec<Change>,
        embed: bool,
    ) -> Result<ApplyStats> {
        self.apply_cancellable(collection, changes, embed, None, None)
    }

    /// [`Engine::apply_with`] that `cancel` can stop up to its commit: checked between
    /// embedding batches and decided, once, just before the catalog commit. A cancelled write
    /// commits nothing ([`Error::Cancelled`]); vectors it stored stay as embedding cache.
    /// `embedded_ahead`: `Some(n)` when the caller already ran [`Engine::embed_ahead`] on this
    /// batch and it embedded `n` chunks (they count as embedded, not as cache hits); `None`: it is
    /// run here, before the writer lock, so the lock waits on no model either way.
    pub(crate) fn apply_cancellable(
        &self,
        collection: &str,
        changes: Vec<Change>,
        embed: bool,
        embedded_ahead: Option<u64>,
        cancel: Option<&crate::Cancel>,
    ) -> Result<ApplyStats> {
        check_collection_name(collection)?;
        for change in &changes {
            if let Change::Upsert(doc, _) = change {
                quarry_core::filter::check_metadata(&doc.metadata)
                    .map_err(|e| Error::Input(format!("document `{}`: {e}", doc.doc_id)))?;
            }
        }
        let cancelled = || {
            Error::Cancelled(
                "the write was cancelled before its commit (the request timed out or the server \
                 is stopping); nothing of it was written"
                    .into(),
            )
        };
        let ahead = match (embed, embedded_ahead) {
            (false, _) => 0,
            (true, Some(n)) => n,
            (true, None) => self.embed_ahead(collection, &changes, cancel)?,
        };
        self.with_write_lock(|| {
            if cancel.is_some_and(crate::Cancel::is_cancelled) {
                return Err(cancelled());
            }
            let WriteContext { row, ix } = self.write_context(collection, true)?;
            let mut stats = ApplyStats::default();
            if embed {
                // Normally all hits now: only chunks of a version another process switched to
                // in between are embedded here.
                let (embedded, hits) = self.embed_missing(&ix, &changes, cancel)?;
                stats.embedded = embedded + ahead;
                stats.cache_hits = hits.saturating_sub(ahead);
                if let Some(active) = &ix.active {
                    self.telemetry
                        .observe_cache_hits(&active.version.embedder, stats.cache_hits);
                }
            }
            if cancel.is_some_and(|c| !c.begin_commit()) {
                return Err(cancelled());
            }
            let committed = {
                let mut catalog = self.catalog();
                let mut tx = catalog.begin(collection)?;
                for change in &changes {
                    match change {
                        Change::Upsert(doc, chunks) => match tx.upsert(doc, chunks)? {
                            UpsertOutcome::Added => stats.added += 1,
                            UpsertOutcome::Updated => stats.updated += 1,
                            UpsertOutcome::AclUpdated => stats.acl_updated += 1,
                            UpsertOutcome::Unchanged => stats.unchanged += 1,
                        },
                        Change::Delete(id) => stats.deleted += u64::from(tx.delete(id)?),
                    }
                }
                tx.commit()?
            };
            if let Some((generation, touched)) = committed {
                self.write_generation_at(&row, &ix, generation, &touched)?;
                stats.generation = Some(generation);
                stats.chunks_touched = touched.len() as u64;
            }
            self.telemetry.observe_apply(collection, &stats);
            Ok(stats)
        })
    }

    /// After the catalog committed `generation`: writes the touched chunks to BM25 and the
    /// vectors, and publishes both together.
    pub(crate) fn write_generation(
        &self,
        collection: &str,
        ix: &Indexes,
        generation: u64,
        touched: &[ContentHash],
    ) -> Result<()> {
        let row = self.collection(collection)?;
        self.write_generation_at(&row, ix, generation, touched)
    }

    /// [`Engine::write_generation`] for a batch that loaded its collection's `row`.
    fn write_generation_at(
        &self,
        row: &CollectionRow,
        ix: &Indexes,
        generation: u64,
        touched: &[ContentHash],
    ) -> Result<()> {
        self.write_bm25(row, &ix.bm25, generation, touched, false)?;
        self.write_vectors(row, ix, generation, touched, true)?;
        ix.publish()?;
        self.prune(&row.name, ix)
    }

    /// Stores vectors computed elsewhere for chunks of `collection`, after checking that `spec`
    /// is the spec of the collection's active embedder (docs/design.md, invariant 2). Commits one
    /// generation that touches the chunks whose vector changed (a chunk whose stored vector and
    /// point in this collection's index are this very vector, bit for bit after normalisation,
    /// is left alone: loading a file again writes nothing). Returns how many chunks got a
    /// vector and how many had it already.
    pub fn put_vectors(
        &self,
        collection: &str,
        spec: &quarry_core::EmbedderSpec,
        vectors: Vec<(ContentHash, Vec<f32>)>,
    ) -> Result<PutVectors> {
        check_collection_name(collection)?;
        self.with_write_lock(|| {
            let WriteContext { row, ix } = self.write_context(collection, false)?;
            let Some(active) = &ix.active else {
                return Err(Error::Input(format!(
                    "collection `{collection}` has no embedder (embedder = \"none\"); vectors cannot be loaded into it"
                )));
            };
            if spec.fingerprint() != active.version.fingerprint {
                return Err(Error::Input(format!(
                    "these vectors come from {} (fingerprint {}), but collection `{collection}` uses \
                     embedder `{}`: {} (fingerprint {}). Vectors of different models are never mixed; \
                     load them into a collection whose embedder has exactly this spec",
                    spec.canonical(),
                    spec.fingerprint().short(),
                    active.version.embedder,
                    active.version.spec.canonical(),
                    active.version.fingerprint.short()
                )));
            }
            let dims = active.version.spec.dimensions;
            if let Some((h, v)) = vectors.iter().find(|(_, v)| v.len() != dims) {
                return Err(Error::Input(format!(
                    "vector for chunk {h} has {} dimensions; the spec says {dims}",
                    v.len()
                )));
            }
            let rows: Vec<(ContentHash, Vec<f32>)> = vectors
                .into_iter()
                .map(|(h, mut v)| {
                    quarry_core::embed::normalize(&mut v);
                    (h, v)
                })
                .collect();
            // A row changes nothing when this collection's index holds this very vector for the
            // chunk (bit for bit) and the store holds it too. The store alone is not enough: it
            // is shared by every collection of the embedder (another's load may have replaced
            // the vector this index holds), and a crash between storing and committing leaves
            // vectors stored but not indexed (loading again mends both).
            let fingerprint = &active.version.fingerprint;
            let hashes: Vec<ContentHash> = rows.iter().map(|(h, _)| *h).collect();
            let stored = self.catalog().vectors(fingerprint, &hashes)?;
            let keys: Vec<u64> = hashes.iter().map(crate::bm25::chunk_key).collect();
            let indexed = match &ix.vectors {
                Some(x) => x.snapshot().vectors_of(&keys),
                None => vec![None; keys.len()],
            };
            let same = |a: Option<&Vec<f32>>, b: &[f32]| {
                a.is_some_and(|a| a.iter().map(|x| x.to_bits()).eq(b.iter().map(|x| x.to_bits())))
            };
            let close = |a: Option<&Vec<f32>>, b: &[f32]| a.is_some_and(|a| same_point(a, b));
            let mut put = PutVectors::default();
            let (mut write, mut touch) = (Vec::new(), Vec::new());
            for ((h, v), in_index) in rows.into_iter().zip(indexed) {
                match (same(stored.get(&h), &v), close(in_index.as_ref(), &v)) {
                    (true, true) => put.unchanged += 1,
                    (true, false) => touch.push(h),
                    (false, _) => {
                        touch.push(h);
                        write.push((h, v));
                    }
                }
            }
            put.loaded = touch.len() as u64;
            if touch.is_empty() {
                return Ok(put);
            }
            if !write.is_empty() {
                self.catalog().put_vectors(fingerprint, &write)?;
            }
            let committed = {
                let mut catalog = self.catalog();
                let mut tx = catalog.begin(collection)?;
                tx.touch(touch.iter().copied());
                tx.commit()?
            };
            if let Some((generation, touched)) = committed {
                self.write_bm25(&row, &ix.bm25, generation, &[], false)?;
                // A chunk whose vector was replaced must get a new point.
                if let Some(v) = &ix.vectors {
                    v.apply(generation, &touched, &[])?;
                }
                self.write_vectors(&row, &ix, generation, &touched, true)?;
                ix.publish()?;
                self.prune(collection, &ix)?;
            }
            Ok(put)
        })
    }

    /// Deletes a document `caller` may read; a document it may not read is `NotFound`.
    pub fn delete_document(
        &self,
        collection: &str,
        doc_id: &str,
        caller: &Principal,
    ) -> Result<ApplyStats> {
        self.document(collection, doc_id, caller)?;
        self.apply(collection, vec![Change::Delete(doc_id.to_owned())])
    }
}

/// What [`Engine::put_vectors`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutVectors {
    /// Chunks whose vector was stored and indexed.
    pub loaded: u64,
    /// Chunks that had this very vector already, indexed (nothing written).
    pub unchanged: u64,
}

/// Whether a point of a vector index holds vector `b`: the index keeps what it was given
/// normalised once more, so equal to within rounding.
pub(super) fn same_point(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6)
}

/// A chunk's hash and its vector.
pub(crate) type ChunkVector = (ContentHash, Vec<f32>);

/// The result of a store started on a thread of its own, once it ends (`Ok` when none was).
fn joined(storing: Option<ScopedJoinHandle<'_, Result<()>>>) -> Result<()> {
    match storing.map(ScopedJoinHandle::join) {
        None => Ok(()),
        Some(Ok(stored)) => stored,
        Some(Err(panic)) => std::panic::resume_unwind(panic),
    }
}
