//! Reads: collection rows and counts ([`CollectionStats`]), embedding versions
//! ([`VersionInfo`]), documents as a caller may see them, and [`Searcher`](crate::Searcher)s.

use super::state::Engine;
use super::stats::{CollectionStats, VersionInfo, VersionJob};
use crate::catalog::{
    CollectionRow, DocState, DocumentRow, JobKind, JobState, VersionRow, VersionState,
    check_collection_name,
};
use crate::error::{Error, Result};
use crate::searcher::Searcher;
use quarry_core::{ChunkOptions, ContentHash, Principal};
use std::collections::HashMap;

impl Engine {
    /// The stored row of a collection, or a not-found error.
    pub fn collection(&self, name: &str) -> Result<CollectionRow> {
        check_collection_name(name)?;
        self.collection_row(name)?.ok_or_else(|| Error::NotFound {
            what: "collection",
            id: name.to_owned(),
        })
    }

    /// Every collection's catalog row (no counts: [`Engine::list`] counts, which reads every
    /// chunk).
    pub fn collections(&self) -> Result<Vec<CollectionRow>> {
        self.catalog().collections()
    }

    /// The collection's chunk options, or the engine's defaults for a collection not created yet.
    pub(crate) fn chunk_options(&self, collection: &str) -> Result<ChunkOptions> {
        check_collection_name(collection)?;
        Ok(self
            .collection_row(collection)?
            .map_or(self.options.chunk, |c| c.chunk_options))
    }

    /// A collection's counts as `caller` sees them: documents and chunks it may read. The
    /// vector count and the generation are shown to admins only (the one would count, the other
    /// follow changes of, documents others may not see).
    pub fn stats(&self, name: &str, caller: &Principal) -> Result<CollectionStats> {
        let row = self.collection(name)?;
        let (documents, chunks) = if caller.sees_all() {
            self.catalog().counts(name)?
        } else {
            let visible = |acl: &[String]| caller.may_read(acl, &self.options.default_acl);
            self.catalog().visible_counts(name, &visible)?
        };
        // (before the literal below: a catalog guard in it lives to its end)
        let (text_bytes, index_bytes) = if caller.sees_all() {
            let text = self.catalog().text_bytes(name)?;
            (
                Some(text),
                Some(super::forget::dir_bytes(
                    &self.dir.join("collections").join(name),
                )),
            )
        } else {
            (None, None)
        };
        let version = self.catalog().active_version(name)?;
        let vectors = match &version {
            Some(v) if caller.sees_all() => {
                Some(self.catalog().count_vectors(name, &v.fingerprint)?)
            }
            _ => None,
        };
        Ok(CollectionStats {
            name: row.name,
            documents,
            chunks,
            generation: caller.sees_all().then_some(row.generation),
            active_embedding_version: row.active_version,
            embedder: version.as_ref().map(|v| v.embedder.clone()),
            fingerprint: version.as_ref().map(|v| v.fingerprint.to_hex()),
            vectors,
            versions_building: self
                .catalog()
                .versions(name)?
                .into_iter()
                .filter(|v| v.state == VersionState::Building)
                .map(|v| v.id)
                .collect(),
            chunk_options: row.chunk_options,
            bm25: row.bm25,
            text_bytes,
            index_bytes,
        })
    }

    /// A collection's embedding versions, oldest first, each with its stored vector count.
    pub fn versions(&self, collection: &str) -> Result<Vec<VersionInfo>> {
        self.versions_where(collection, None)
    }

    /// One embedding version of a collection, with its stored vector count.
    pub(crate) fn version_info(&self, collection: &str, id: &str) -> Result<VersionInfo> {
        self.versions_where(collection, Some(id))?
            .into_iter()
            .next()
            .ok_or_else(|| Error::NotFound {
                what: "embedding version",
                id: id.to_owned(),
            })
    }

    fn versions_where(&self, collection: &str, only: Option<&str>) -> Result<Vec<VersionInfo>> {
        let row = self.collection(collection)?;
        let versions: Vec<VersionRow> = self
            .catalog()
            .versions(collection)?
            .into_iter()
            .filter(|v| only.is_none_or(|id| v.id == id))
            .collect();
        let jobs = self.catalog().jobs(Some(collection), &JobState::PENDING)?;
        versions
            .into_iter()
            .map(|v| {
                let vectors = self.catalog().count_vectors(collection, &v.fingerprint)?;
                let job = (v.state == VersionState::Building)
                    .then(|| {
                        jobs.iter().find(|j| {
                            j.kind == JobKind::Reindex
                                && j.params.embedder() == Some(v.embedder.as_str())
                        })
                    })
                    .flatten()
                    .map(|j| VersionJob {
                        id: j.id.clone(),
                        processed: j.processed,
                        total: j.total,
                    });
                Ok(VersionInfo {
                    quantization: self.vector_params(&v).quantization,
                    activated_at: v.activated_at,
                    job,
                    active: row.active_version.as_deref() == Some(v.id.as_str()),
                    id: v.id,
                    embedder: v.embedder,
                    fingerprint: v.fingerprint.to_hex(),
                    spec: v.spec,
                    state: v.state,
                    vectors,
                    created_at: v.created_at,
                })
            })
            .collect()
    }

    /// Every collection, with its counts as `caller` sees them.
    pub fn list(&self, caller: &Principal) -> Result<Vec<CollectionStats>> {
        let names: Vec<String> = self
            .catalog()
            .collections()?
            .into_iter()
            .map(|c| c.name)
            .collect();
        names.iter().map(|n| self.stats(n, caller)).collect()
    }

    /// Per collection, how many documents have no ACL of their own (they follow
    /// [`EngineOptions::default_acl`](crate::EngineOptions::default_acl)); collections without any are left out. For the warning
    /// `quarry serve` prints when authentication hides them.
    pub fn documents_without_acl(&self) -> Result<Vec<(String, u64)>> {
        self.catalog().documents_without_acl()
    }

    /// A document with its text, if `caller` may read it. A document the caller may not read is
    /// reported exactly like a missing one, so its existence does not leak.
    pub fn document(
        &self,
        collection: &str,
        doc_id: &str,
        caller: &Principal,
    ) -> Result<DocumentRow> {
        self.collection(collection)?;
        self.catalog()
            .document(collection, doc_id)?
            .filter(|d| caller.may_read(&d.acl, &self.options.default_acl))
            .ok_or_else(|| Error::NotFound {
                what: "document",
                id: doc_id.to_owned(),
            })
    }

    /// The documents `caller` may read, in doc id order, after `after`, at most `limit`.
    pub fn documents(
        &self,
        collection: &str,
        caller: &Principal,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DocumentRow>> {
        self.collection(collection)?;
        let visible = |acl: &[String]| caller.may_read(acl, &self.options.default_acl);
        self.catalog()
            .documents(collection, after, limit, false, &visible)
    }

    /// Content hash and ACL of every document of a collection (empty for a collection not created
    /// yet).
    pub fn doc_states(&self, collection: &str) -> Result<HashMap<String, DocState>> {
        check_collection_name(collection)?;
        self.catalog().doc_states(collection)
    }

    /// `(doc_id, source)` of every document of a collection.
    pub(crate) fn doc_sources(&self, collection: &str) -> Result<Vec<(String, String)>> {
        self.catalog().doc_sources(collection)
    }

    /// Up to `limit` chunks of `collection` without a stored vector of `fingerprint`, in hash
    /// order from the first after `after`: `(chunk hash, title, text as embedded)`, each chunk
    /// once however many documents hold it (what `quarry export chunks` writes out).
    pub fn chunks_without_vectors(
        &self,
        collection: &str,
        fingerprint: &quarry_core::Fingerprint,
        after: Option<&ContentHash>,
        limit: usize,
    ) -> Result<Vec<(ContentHash, String, String)>> {
        self.collection(collection)?;
        self.catalog()
            .chunks_without_vector(collection, fingerprint, after, limit)
    }

    /// Chunk hashes of a document, in order (empty when it does not exist).
    pub fn doc_chunk_hashes(&self, collection: &str, doc_id: &str) -> Result<Vec<ContentHash>> {
        self.catalog().doc_chunk_hashes(collection, doc_id)
    }

    /// Opens every collection's indexes, recovering what a crash left behind (a server calls it
    /// before it says it is ready).
    /// It does not wait for a deferred catalog check ([`Engine::catalog_checked`]), so the two
    /// run side by side; a recovery's writes do.
    pub fn open_all(&self) -> Result<()> {
        for row in self.collections()? {
            self.indexes(&row)?;
        }
        Ok(())
    }

    /// A snapshot of the collection for queries (after the catalog's check has passed).
    pub fn searcher(&self, collection: &str) -> Result<Searcher> {
        self.catalog_checked()?;
        let row = self.collection(collection)?;
        let ix = self.indexes(&row)?;
        Ok(Searcher::new(row, &ix, &self.options, &self.query_vectors))
    }
}
