//! Erasure and the collection lifecycle: [`Engine::forget`] removes a document from everywhere
//! the data directory held a copy of it; [`Engine::create_collection`] and
//! [`Engine::delete_collection`] make and remove whole collections.
//!
//! A forget is one ordinary generation (so other processes follow it from the change log like
//! any write), and then more:
//! - catalog: the document, the chunks only it held, their stored vectors of every fingerprint
//!   (the embedding cache; kept when another collection holds the same chunk), their canary rows,
//!   its id in eval runs and golden sets, all in the generation's transaction with
//!   `secure_delete` on; then `VACUUM` and a truncating WAL checkpoint ([`Catalog::scrub`]);
//! - BM25: the touched chunks are rewritten as usual, then every segment with deleted chunks is
//!   merged away and unused files deleted ([`Bm25Index::purge_deleted`]);
//! - vectors: the collection's `forgotten_generation` makes every process whose graph is older
//!   rebuild it without tombstones when it catches up (`compact_after_forget`), so no graph in
//!   memory, and no dump written later, holds the vector; the active version is dumped at once;
//!   the dumps of other versions that hold one of the chunks are dropped (rebuilt from the stored
//!   vectors when activated), and the in-memory standby too.
//!
//! [`Catalog::scrub`]: crate::catalog::Catalog::scrub
//! [`Bm25Index::purge_deleted`]: crate::bm25::Bm25Index::purge_deleted

use super::state::Engine;
use super::stats::CollectionStats;
use crate::catalog::{
    CollectionDeleted, CollectionRow, Forgotten, VersionRow, check_collection_name,
};
use crate::collection::CollectionSettings;
use crate::error::{Error, Result};
use crate::vectors::VectorIndex;
use quarry_core::{ContentHash, Principal};
use std::collections::HashSet;
use std::path::Path;

/// What [`Engine::forget`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ForgetReport {
    pub collection: String,
    pub doc_id: String,
    #[serde(flatten)]
    pub erased: Forgotten,
    /// Vector dumps of other embedding versions that held one of the erased chunks, deleted (each
    /// is rebuilt from the stored vectors if its version is activated again).
    pub version_dumps_dropped: u64,
    /// Whether SQLite's write-ahead log could be emptied (`false`: another process kept an old
    /// snapshot open; the log is emptied at a later checkpoint).
    pub catalog_scrubbed: bool,
}

/// Bytes of the files under `dir` (0 when it does not exist).
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

impl Engine {
    /// Erases document `doc_id` of `collection` from the data directory (see the module doc). A
    /// document `caller` may not read is `NotFound`, exactly like a missing one.
    pub fn forget(
        &self,
        collection: &str,
        doc_id: &str,
        caller: &Principal,
    ) -> Result<ForgetReport> {
        self.document(collection, doc_id, caller)?;
        let not_found = || Error::NotFound {
            what: "document",
            id: doc_id.to_owned(),
        };
        self.with_write_lock(|| {
            let ix = self.write_context(collection, false)?.ix;
            let erased = self
                .catalog()
                .forget_document(collection, doc_id)?
                .ok_or_else(not_found)?;
            let generation = erased.generation;
            // Read again: the erase moved its `forgotten_generation`.
            let row = self.collection(collection)?;
            self.write_bm25(&row, &ix.bm25, generation, &erased.touched, false)?;
            ix.bm25.purge_deleted()?;
            // Tombstones, then (forgotten_generation) the graph rebuilt without them.
            self.write_vectors(&row, &ix, generation, &erased.touched, true)?;
            if let Some(v) = &ix.vectors
                && v.needs_dump(0, true)
            {
                v.dump()?;
            }
            ix.publish()?;
            self.prune(collection, &ix)?;
            let gone: HashSet<ContentHash> = erased.erased.iter().copied().collect();
            let version_dumps_dropped = self.drop_other_dumps(collection, &gone)?;
            let catalog_scrubbed = self.catalog().scrub(true)?;
            if !catalog_scrubbed {
                tracing::warn!(
                    collection,
                    "forget: another process kept the catalog's write-ahead log busy; it still holds old page images until its next checkpoint"
                );
            }
            tracing::info!(collection, generation, "document forgotten");
            Ok(ForgetReport {
                collection: collection.to_owned(),
                doc_id: doc_id.to_owned(),
                erased,
                version_dumps_dropped,
                catalog_scrubbed,
            })
        })
    }

    /// Deletes the dumps of the collection's versions other than the active one that hold a
    /// point of `gone`, and the standby graph if it does. The caller holds the writer lock.
    fn drop_other_dumps(&self, collection: &str, gone: &HashSet<ContentHash>) -> Result<u64> {
        if gone.is_empty() {
            return Ok(0);
        }
        {
            let mut standby = self.standby.lock().unwrap_or_else(|p| p.into_inner());
            if standby
                .get(collection)
                .is_some_and(|(_, v)| v.holds_any(gone))
            {
                standby.remove(collection);
            }
        }
        let active = self
            .collection_row(collection)?
            .and_then(|r| r.active_index);
        let root = self
            .dir
            .join("collections")
            .join(collection)
            .join("vectors");
        let Ok(entries) = std::fs::read_dir(&root) else {
            return Ok(0);
        };
        let mut dropped = 0;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if Some(name.as_str()) == active.as_deref() || !e.path().is_dir() {
                continue;
            }
            if crate::vectors::dump_holds_any(&e.path(), gone) {
                tracing::info!(collection, version = %name, "forget: dropping the vector dump of an inactive version that held a forgotten chunk");
                crate::vectors::drop_dump(&e.path())?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// After `vectors` moved from generation `from`: when a forget committed since, rebuilds its
    /// graph without tombstones, so the forgotten vectors leave this process's memory and can
    /// never reach a dump it writes later.
    pub(crate) fn compact_after_forget(
        &self,
        collection: &str,
        vectors: &VectorIndex,
        from: u64,
    ) -> Result<()> {
        if let Some(row) = self.collection_row(collection)? {
            Self::compact_forgotten(&row, vectors, from)?;
        }
        Ok(())
    }

    /// [`Engine::compact_after_forget`] with the collection's row (its `forgotten_generation`)
    /// read by the caller.
    /// An error (a sealed segment's file could not be read) leaves the graph as it was: the
    /// caller writes no dump, so no forgotten vector is written again.
    pub(super) fn compact_forgotten(
        row: &CollectionRow,
        vectors: &VectorIndex,
        from: u64,
    ) -> Result<()> {
        let forgotten = row.forgotten_generation;
        if forgotten > from && vectors.compact()? {
            tracing::info!(
                collection = row.name.as_str(),
                forgotten,
                "vector graph rebuilt without tombstones after a forget"
            );
        }
        Ok(())
    }

    /// Drops the cached indexes of `collection` when the catalog no longer has it (`row` is
    /// `None`: another process deleted it) or has another collection of that name (created
    /// again).
    pub(super) fn drop_stale(&self, collection: &str, row: Option<&CollectionRow>) {
        let stale = self
            .indexes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(collection)
            .is_some_and(|ix| row.is_none_or(|r| r.incarnation != ix.incarnation));
        if stale {
            tracing::info!(
                collection,
                "the collection was deleted (or created again) by another process; closing its indexes"
            );
            self.indexes
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(collection);
            self.standby
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(collection);
        }
    }

    /// Creates `name` with `settings` (the configured defaults for what is not given). Returns
    /// the collection and whether it was created: an existing collection with the same settings
    /// is left as it is; one with other settings is a [`Error::Conflict`].
    pub fn create_collection(
        &self,
        name: &str,
        settings: &CollectionSettings,
    ) -> Result<(CollectionStats, bool)> {
        check_collection_name(name)?;
        let chunk = settings.chunk.unwrap_or(self.options.chunk);
        chunk.validate()?;
        let bm25 = settings.bm25.unwrap_or(self.options.bm25);
        bm25.check()?;
        let embedder_name = settings
            .embedder
            .clone()
            .unwrap_or_else(|| self.options.embedder.clone());
        // An unknown name is the caller's mistake (an input error from the source).
        let embedder = self.resolve(&embedder_name)?;
        if embedder.is_none() && embedder_name != "none" && self.options.embedders.is_some() {
            return Err(Error::Input(format!(
                "embedder `{embedder_name}` is not configured; add [embedders.{embedder_name}] \
                 or use `none` (BM25 only)"
            )));
        }
        let created = self.with_write_lock(|| {
            // (not in the `if let`: its guard would live through the body)
            let existing = self.collection_row(name)?;
            if let Some(row) = existing {
                let version: Option<VersionRow> = self.catalog().active_version(name)?;
                let has = version.as_ref().map_or("none", |v| v.embedder.as_str());
                let wants = if embedder.is_some() {
                    embedder_name.as_str()
                } else {
                    "none"
                };
                // Feedback is a query-time default (set in place by `collections set`, PATCH): a
                // create does not conflict over it; k1, b and k3 shape the scores and do.
                let scoring = |p: quarry_core::Bm25Params| quarry_core::Bm25Params {
                    feedback: None,
                    ..p
                };
                let bm25_differs = scoring(row.bm25) != scoring(bm25);
                if row.chunk_options != chunk || bm25_differs || has != wants {
                    return Err(Error::Conflict(format!(
                        "collection `{name}` exists with other settings (chunk: {}; bm25: {:?}; \
                         embedder: {has}); asked for chunk: {chunk}; bm25: {bm25:?}; embedder: \
                         {wants}. Re-chunk or re-index it, or delete it first",
                        row.chunk_options, row.bm25
                    )));
                }
                return Ok(false);
            }
            self.clear_leftover_folder(name)?;
            let catalog = self.catalog();
            catalog.ensure_collection(name, &chunk, &bm25)?;
            if let Some(e) = &embedder {
                catalog.create_active_version(name, &embedder_name, e.spec())?;
            }
            Ok(true)
        })?;
        Ok((self.stats(name, &Principal::local_admin())?, created))
    }

    /// Sets how collection `name` scores BM25 (`k1`, `b`, `k3`), in place: the parameters are
    /// read at query time, so the next query scores with them and nothing is re-indexed.
    pub fn set_bm25(&self, name: &str, params: quarry_core::Bm25Params) -> Result<CollectionStats> {
        params.check()?;
        self.collection(name)?;
        self.with_write_lock(|| {
            if self.catalog().set_bm25(name, &params)? {
                Ok(())
            } else {
                Err(Error::NotFound {
                    what: "collection",
                    id: name.to_owned(),
                })
            }
        })?;
        tracing::info!(collection = name, ?params, "BM25 parameters set");
        self.stats(name, &Principal::local_admin())
    }

    /// Deletes collection `name`: every catalog row of it, the stored vectors only it held, and
    /// its folder of indexes; then the catalog is scrubbed as after a forget. Refused while a job
    /// of it is queued or running.
    pub fn delete_collection(&self, name: &str) -> Result<CollectionDeleted> {
        self.collection(name)?;
        self.with_write_lock(|| {
            let pending = self.catalog().jobs(Some(name), &crate::catalog::JobState::PENDING)?;
            if let Some(job) = pending.into_iter().next() {
                return Err(Error::Busy(format!(
                    "job {} ({}) of collection `{name}` is {}; cancel it (quarry jobs cancel {}) before deleting the collection",
                    job.id, job.kind, job.state, job.id
                )));
            }
            let deleted = self
                .catalog()
                .delete_collection(name)?
                .ok_or_else(|| Error::NotFound {
                    what: "collection",
                    id: name.to_owned(),
                })?;
            self.indexes
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            self.standby
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            let dir = self.dir.join("collections").join(name);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
            // As for a forget: no free page or old log frame keeps its rows.
            self.catalog().scrub(true)?;
            tracing::info!(collection = name, "collection deleted");
            Ok(deleted)
        })
    }
}
