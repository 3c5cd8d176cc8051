//! The engine: a data directory with its catalog and per-collection indexes.
//!
//! Writes ([`Engine::apply`]) hold the data directory's writer lock (a file lock, so it also
//! serialises separate processes) and commit one generation:
//! 1. chunks without a stored vector of the collection's embedder are embedded and stored (the
//!    embedding cache; harmless if the rest never commits);
//! 2. the catalog transaction (the durable point);
//! 3. the BM25 index, with the generation as commit payload;
//! 4. the vector index, in memory, dumped to disk now and then with the generation it reflects;
//! 5. both are published to readers together, under the collection's publish lock, so a
//!    [`Searcher`] always sees BM25 and vectors of the same generation.
//!
//! If the process dies after step 2, the next open replays the catalog's change log into each
//! derived index from the generation it reflects ([`Engine::recover`]), so every acknowledged write
//! is searchable and nothing half-written is. The log is pruned only up to the oldest generation a
//! derived index still needs, in this process or in any other that holds a vector graph in memory
//! (`index_holds` in the catalog, renewed while the process lives).
//!
//! **Several processes.** A CLI ingest and a running server share the data directory. The writer
//! lock serialises their writes; every write first catches up with what the others committed.
//! A process that only reads (a server while the CLI ingests) follows the others with
//! [`Engine::refresh`] (the server calls it every 250 ms): it never waits for the writer lock,
//! reloads BM25 at the generation on disk, applies the change log to its vector graph up to that
//! generation from the stored vectors, and publishes both. While another process is still
//! committing a generation, the BM25 snapshot may be one generation ahead of the vectors until
//! the next refresh.

use crate::bm25::Bm25Index;
use crate::catalog::{
    Catalog, CollectionRow, DocState, DocumentRow, JobKind, JobState, UpsertOutcome, VersionRow,
    VersionState, check_collection_name,
};
use crate::error::{Error, Result};
use crate::searcher::Searcher;
use crate::telemetry::Telemetry;
use crate::vectors::{VectorIndex, VectorParams};
use quarry_core::{Chunk, ChunkOptions, ContentHash, Document, Embedder, Fusion, Principal};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

/// Resolves embedder names (`[embedders.NAME]`) to embedders, loading them on first use.
pub trait EmbedderSource: Send + Sync {
    /// The embedder called `name`, or `None` when the name means "no vectors" (`none`).
    fn get(&self, name: &str) -> Result<Option<Arc<dyn Embedder>>>;
}

/// Settings the engine needs from configuration.
#[derive(Clone)]
pub struct EngineOptions {
    /// Chunking of collections created from now on.
    pub chunk: ChunkOptions,
    /// Embedder of collections created from now on (a name `embedders` resolves).
    pub embedder: String,
    /// Resolves embedder names; `None`: collections get no vectors (BM25 only).
    pub embedders: Option<Arc<dyn EmbedderSource>>,
    pub vector: VectorParams,
    /// Texts per embedding call during ingest.
    pub embed_batch: usize,
    /// How long a query waits for its embedding before answering from BM25 alone.
    pub query_embed_timeout: Duration,
    /// Fusion used when a query does not name one.
    pub fusion: Fusion,
    /// Dump a vector graph once this many of its points changed since the last dump.
    pub dump_every_points: usize,
    /// Who reads documents without an ACL of their own (`auth.default_acl`): everyone without
    /// authentication, admins only with it.
    pub default_acl: quarry_core::DefaultAcl,
    /// A re-index is promoted only if its nDCG@10 on every golden set is at least the active
    /// version's minus this (`reindex.max_ndcg_drop`).
    pub reindex_max_ndcg_drop: f64,
    /// A canary check below this lowest cosine means the embedder's model changed
    /// (`reindex.canary_min_cosine`).
    pub canary_min_cosine: f64,
    /// Versions kept with an index after a switch: the active one and the `keep_versions - 1`
    /// that served most recently (`reindex.keep_versions`; 0 keeps all).
    pub keep_versions: usize,
    /// Open without writing anything to the data directory (a read-only directory or file
    /// system: `quarry status` and `quarry query` on a mounted backup). Reads work, recovering
    /// vectors in memory; what needs a write (ingest, a BM25 index behind the catalog or damaged,
    /// a catalog of an older schema) is an [`Error::ReadOnly`] saying so.
    pub read_only: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            chunk: ChunkOptions::default(),
            embedder: "none".into(),
            embedders: None,
            vector: VectorParams::default(),
            embed_batch: 256,
            query_embed_timeout: Duration::from_millis(2000),
            fusion: Fusion::default(),
            dump_every_points: 2048,
            default_acl: quarry_core::DefaultAcl::public(),
            reindex_max_ndcg_drop: 0.01,
            canary_min_cosine: 0.99,
            keep_versions: 2,
            read_only: false,
        }
    }
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("chunk", &self.chunk)
            .field("embedder", &self.embedder)
            .field("vector", &self.vector)
            .field("embed_batch", &self.embed_batch)
            .field("query_embed_timeout", &self.query_embed_timeout)
            .field("fusion", &self.fusion)
            .finish_non_exhaustive()
    }
}

/// The embedder of a collection's active version, checked against the version's fingerprint.
#[derive(Clone)]
pub struct ActiveEmbedder {
    pub version: VersionRow,
    /// `Err` when the configured embedder of that name cannot be loaded or no longer has the
    /// version's fingerprint; the message says why. Queries then answer from BM25 alone.
    pub embedder: std::result::Result<Arc<dyn Embedder>, String>,
}

/// The derived indexes of one collection, and the lock that publishes them together.
pub(crate) struct Indexes {
    pub(crate) bm25: Arc<Bm25Index>,
    pub(crate) vectors: Option<Arc<VectorIndex>>,
    pub(crate) active: Option<ActiveEmbedder>,
    /// Shared by every `Indexes` of the collection over the same BM25 index (a version switch).
    pub(crate) publish: Arc<RwLock<()>>,
    /// The `incarnation` of the collection these indexes belong to: a collection deleted and
    /// created again by another process has another, and its cached indexes are dropped.
    pub(crate) incarnation: String,
}

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

/// An embedding version as `GET /v1/collections/{c}/versions` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VersionInfo {
    pub id: String,
    pub embedder: String,
    pub fingerprint: String,
    pub spec: quarry_core::EmbedderSpec,
    pub state: VersionState,
    pub active: bool,
    /// Chunks of the collection with a stored vector of this version's fingerprint.
    pub vectors: u64,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    /// For a `building` version: the job building it, `{"id", "processed", "total"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<serde_json::Value>,
}

/// Counts of a collection, as `status` and `GET /v1/collections` show them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CollectionStats {
    pub name: String,
    pub documents: u64,
    pub chunks: u64,
    /// The collection's last committed generation; shown to admins only: it moves with every
    /// write, including writes of documents a reader may not see.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    pub active_embedding_version: Option<String>,
    /// The embedder name and fingerprint of the active version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Chunks of the collection with a stored vector of the active version (the rest are
    /// searchable by BM25 only, e.g. after `--no-embed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vectors: Option<u64>,
    pub versions_building: Vec<String>,
    pub chunk_options: ChunkOptions,
    /// Bytes of document text the catalog stores for the collection (admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_bytes: Option<u64>,
    /// Bytes of the collection's derived indexes on disk, `collections/<name>/` (BM25 and the
    /// vector dumps of every version; admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_bytes: Option<u64>,
}

pub struct Engine {
    dir: PathBuf,
    options: EngineOptions,
    catalog: Mutex<Catalog>,
    indexes: RwLock<HashMap<String, Arc<Indexes>>>,
    /// Serialises writers inside this process; the file lock serialises processes.
    write_lock: Mutex<()>,
    telemetry: Arc<Telemetry>,
    /// Set at shutdown: running jobs stop at their next batch, resumable.
    interrupt_jobs: std::sync::atomic::AtomicBool,
    /// Per collection, the vector index of the version that served before the last switch, kept
    /// in memory so a rollback to it takes no reload.
    standby: Mutex<HashMap<String, (String, Arc<VectorIndex>)>>,
    /// This engine's name in the catalog's `index_holds` (pid and start time).
    holder: String,
    /// When [`Engine::refresh`] last renewed this engine's holds.
    holds_renewed: Mutex<std::time::Instant>,
    /// `open.lock`, locked shared while this engine lives: a restore refuses a data directory
    /// whose lock it cannot take exclusively.
    _open_lock: Option<File>,
}

/// The file every engine holds a shared lock on while it has the data directory open.
pub(crate) const OPEN_LOCK: &str = "open.lock";

thread_local! {
    /// Whether this thread holds the writer lock (of whichever engine: a thread writes to one).
    static HOLDS_WRITE_LOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A hold older than this is renewed by [`Engine::refresh`] (well inside
/// [`crate::catalog::HOLD_TTL_SECS`]).
const HOLD_RENEW: Duration = Duration::from_secs(60);

impl Drop for Engine {
    fn drop(&mut self) {
        // Best effort: a hold left behind only keeps some change log until it expires.
        if !self.options.read_only {
            let _ = self.catalog().release_holds(&self.holder);
        }
    }
}

/// Opens (creating) a file whose lock stands for something (the writer, a job); it stays empty.
pub(crate) fn open_lock_file(path: &Path) -> Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

impl Engine {
    /// Opens (creating if needed) the data directory.
    pub fn open(dir: impl Into<PathBuf>, options: EngineOptions) -> Result<Self> {
        let dir = dir.into();
        options.chunk.validate()?;
        options.vector.validate()?;
        // A read-only engine takes the open lock only when the file exists (it creates
        // nothing); a shared lock needs no write access.
        let mut held_open_lock = None;
        let catalog = if options.read_only {
            if let Ok(open_lock) = File::open(dir.join(OPEN_LOCK)) {
                open_lock
                    .lock_shared()
                    .map_err(|e| Error::io(dir.join(OPEN_LOCK), e))?;
                held_open_lock = Some(open_lock);
            }
            Catalog::open_read_only(&dir.join("catalog.sqlite3"))?
        } else {
            std::fs::create_dir_all(dir.join("collections")).map_err(|e| Error::io(&dir, e))?;
            let open_lock = open_lock_file(&dir.join(OPEN_LOCK))?;
            open_lock
                .lock_shared()
                .map_err(|e| Error::io(dir.join(OPEN_LOCK), e))?;
            held_open_lock = Some(open_lock);
            Catalog::open(&dir.join("catalog.sqlite3"))?
        };
        Ok(Engine {
            dir,
            options,
            catalog: Mutex::new(catalog),
            indexes: RwLock::new(HashMap::new()),
            write_lock: Mutex::new(()),
            telemetry: Arc::new(Telemetry::new()),
            interrupt_jobs: std::sync::atomic::AtomicBool::new(false),
            standby: Mutex::new(HashMap::new()),
            holder: format!(
                "{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
            holds_renewed: Mutex::new(std::time::Instant::now()),
            _open_lock: held_open_lock,
        })
    }

    /// What `/metrics` shows: queries, ingest, embedding calls and evaluations of this engine.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    pub(crate) fn catalog(&self) -> MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The error of a read-only engine asked to do what needs a write: `what` and how to fix it.
    fn needs_write(&self, what: &str) -> Error {
        Error::ReadOnly(format!(
            "{what}; this needs a write, and {} was opened read-only. Run any quarry command \
             with write access to it once (e.g. `quarry status` as its owner), then try again",
            self.dir.display()
        ))
    }

    /// Runs `f` while holding the data directory's writer lock. Re-entrant: a thread that holds
    /// it already just runs `f`.
    /// A read-only engine takes the in-process mutex only (nobody can write the directory).
    fn with_write_lock<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if HOLDS_WRITE_LOCK.get() {
            return f();
        }
        let _inproc = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.options.read_only {
            return f();
        }
        let path = self.dir.join("writer.lock");
        let file = open_lock_file(&path)?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        HOLDS_WRITE_LOCK.set(true);
        let out = f();
        HOLDS_WRITE_LOCK.set(false);
        let _ = file.unlock();
        out
    }

    /// Opens a collection's BM25 index; a damaged one is deleted and started again under the
    /// writer lock (so no other process is writing it), for recovery to rebuild from the catalog.
    fn open_bm25(&self, collection: &str) -> Result<Bm25Index> {
        let path = self.dir.join("collections").join(collection).join("bm25");
        match Bm25Index::open(&path) {
            Err(e) if e.kind() == crate::ErrorKind::Internal => {
                self.with_write_lock(|| match Bm25Index::open(&path) {
                    Err(e) if self.options.read_only => Err(self.needs_write(&format!(
                        "the BM25 index of {collection} is damaged ({e})"
                    ))),
                    Err(e) if e.kind() == crate::ErrorKind::Internal => {
                        tracing::warn!(collection, error = %e, "BM25 index damaged; rebuilding it from the catalog");
                        Bm25Index::recreate(&path)
                    }
                    other => other,
                })
            }
            other => other,
        }
    }

    /// The writer lock's file, locked, or `None` when another process holds it. The caller holds
    /// the in-process writer mutex.
    fn try_file_lock(&self) -> Result<Option<File>> {
        if self.options.read_only {
            return Ok(None);
        }
        let path = self.dir.join("writer.lock");
        let file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// The stored row of a collection, or a not-found error.
    pub fn collection(&self, name: &str) -> Result<CollectionRow> {
        check_collection_name(name)?;
        self.catalog()
            .collection(name)?
            .ok_or_else(|| Error::NotFound {
                what: "collection",
                id: name.to_owned(),
            })
    }

    /// The collection's chunk options, or the engine's defaults for a collection not created yet.
    pub fn chunk_options(&self, collection: &str) -> Result<ChunkOptions> {
        check_collection_name(collection)?;
        Ok(self
            .catalog()
            .collection(collection)?
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
                Some(forget::dir_bytes(&self.dir.join("collections").join(name))),
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
            text_bytes,
            index_bytes,
        })
    }

    /// A collection's embedding versions, oldest first, each with its stored vector count.
    pub fn versions(&self, collection: &str) -> Result<Vec<VersionInfo>> {
        self.versions_where(collection, None)
    }

    /// One embedding version of a collection, with its stored vector count.
    pub fn version_info(&self, collection: &str, id: &str) -> Result<VersionInfo> {
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
                    .map(|j| serde_json::json!({"id": j.id, "processed": j.processed, "total": j.total}));
                Ok(VersionInfo {
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

    /// Stores an evaluation run (see `catalog::EvalRun`) and returns its id.
    pub fn record_eval_run(
        &self,
        collection: &str,
        config: &serde_json::Value,
        metrics: &serde_json::Value,
        queries: &serde_json::Value,
    ) -> Result<String> {
        check_collection_name(collection)?;
        self.catalog()
            .insert_eval_run(collection, config, metrics, queries)
    }

    /// Stored evaluation runs, oldest first; of one collection when given.
    pub fn eval_runs(
        &self,
        collection: Option<&str>,
    ) -> Result<Vec<crate::catalog::EvalRunSummary>> {
        self.catalog().eval_runs(collection)
    }

    /// Stores (or replaces) a golden set of an existing collection.
    pub fn put_golden(
        &self,
        collection: &str,
        name: &str,
        queries: &[crate::catalog::GoldenQuery],
    ) -> Result<()> {
        self.collection(collection)?;
        check_collection_name(name).map_err(|_| {
            Error::Input(format!(
                "invalid golden set name {name:?}: use 1 to 64 letters, digits, `_` or `-`"
            ))
        })?;
        if queries.is_empty() {
            return Err(Error::Input(format!(
                "golden set `{name}` has no queries; give at least one"
            )));
        }
        self.catalog().put_golden(collection, name, queries)
    }

    /// The golden sets, of one collection when given.
    pub fn golden_sets(
        &self,
        collection: Option<&str>,
    ) -> Result<Vec<crate::catalog::GoldenSummary>> {
        self.catalog().golden_sets(collection)
    }

    /// The queries of a golden set.
    pub fn golden(&self, collection: &str, name: &str) -> Result<Vec<crate::catalog::GoldenQuery>> {
        self.catalog()
            .golden(collection, name)?
            .ok_or_else(|| Error::NotFound {
                what: "golden set",
                id: format!("{collection}/{name}"),
            })
    }

    /// Removes a golden set.
    pub fn delete_golden(&self, collection: &str, name: &str) -> Result<()> {
        if self.catalog().delete_golden(collection, name)? {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: "golden set",
                id: format!("{collection}/{name}"),
            })
        }
    }

    /// One stored evaluation run with its per-query results.
    pub fn eval_run(&self, id: &str) -> Result<crate::catalog::EvalRun> {
        self.catalog().eval_run(id)?.ok_or_else(|| Error::NotFound {
            what: "eval run",
            id: id.to_owned(),
        })
    }

    /// A recorded eval run's summary (without its per-query results).
    pub fn eval_run_summary(&self, id: &str) -> Result<crate::catalog::EvalRunSummary> {
        self.catalog()
            .eval_run_summary(id)?
            .ok_or_else(|| Error::NotFound {
                what: "eval run",
                id: id.to_owned(),
            })
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
    /// [`EngineOptions::default_acl`]); collections without any are left out. For the warning
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

    /// Content hash and ACL of every document of a collection (empty for a collection not created
    /// yet).
    pub fn doc_states(&self, collection: &str) -> Result<HashMap<String, DocState>> {
        check_collection_name(collection)?;
        self.catalog().doc_states(collection)
    }

    /// `(doc_id, source)` of every document of a collection.
    pub fn doc_sources(&self, collection: &str) -> Result<Vec<(String, String)>> {
        self.catalog().doc_sources(collection)
    }

    /// The embedder called `name`, or `None` for `none` or an engine without embedders. Its
    /// calls are recorded in the engine's telemetry.
    pub(crate) fn resolve(&self, name: &str) -> Result<Option<Arc<dyn Embedder>>> {
        match &self.options.embedders {
            Some(src) if name != "none" => {
                Ok(src.get(name)?.map(|e| self.telemetry.meter(name, e)))
            }
            _ => Ok(None),
        }
    }

    /// The embedder of the engine's default, for chunk sizing of new collections (`None` when
    /// vectors are off).
    pub fn default_embedder(&self) -> Result<Option<Arc<dyn Embedder>>> {
        self.resolve(&self.options.embedder)
    }

    /// The active embedder of a collection, resolved and checked against the version's
    /// fingerprint.
    fn active_embedder(&self, collection: &str) -> Result<Option<ActiveEmbedder>> {
        let Some(version) = self.catalog().active_version(collection)? else {
            return Ok(None);
        };
        let embedder = match self.resolve(&version.embedder) {
            Ok(Some(e)) if e.fingerprint() == version.fingerprint => Ok(e),
            Ok(Some(e)) => Err(format!(
                "embedder `{}` is now configured as {} (fingerprint {}), but collection `{collection}` \
                 holds vectors of fingerprint {}; restore the embedder's previous settings, or give \
                 the new settings another name",
                version.embedder,
                e.spec().model,
                e.fingerprint().short(),
                version.fingerprint.short()
            )),
            Ok(None) => Err(format!(
                "embedder `{}` of collection `{collection}` is not configured; add [embedders.{}] \
                 with the settings it was created with",
                version.embedder, version.embedder
            )),
            Err(e) => Err(e.to_string()),
        };
        Ok(Some(ActiveEmbedder { version, embedder }))
    }

    /// The chunker a collection's documents are split with: its options, sized by its embedder's
    /// tokenizer when it has one.
    pub fn chunker(&self, collection: &str) -> Result<quarry_core::Chunker> {
        self.chunker_with(collection, self.chunk_options(collection)?)
    }

    /// The chunker of `collection` with other `options` (a re-chunk), sized like
    /// [`Engine::chunker`].
    pub fn chunker_with(
        &self,
        collection: &str,
        options: ChunkOptions,
    ) -> Result<quarry_core::Chunker> {
        // One catalog lock at a time: a guard in a `match` scrutinee lives through the arms.
        let version = self.catalog().active_version(collection)?;
        let exists = self.catalog().collection(collection)?.is_some();
        let embedder = match version {
            Some(v) => self.resolve(&v.embedder).ok().flatten(),
            None if !exists => self.default_embedder()?,
            None => None,
        };
        let counter = embedder.and_then(|e| {
            e.count_tokens("").map(|_| {
                let e = e.clone();
                Arc::new(move |s: &str| e.count_tokens(s).unwrap_or(s.len() / 4))
                    as quarry_core::TokenCounter
            })
        });
        Ok(quarry_core::Chunker::new(options, counter)?)
    }

    /// The folder of a version's vector index.
    fn version_dir(&self, collection: &str, version: &str) -> PathBuf {
        self.dir
            .join("collections")
            .join(collection)
            .join("vectors")
            .join(version)
    }

    /// The indexes of a collection, opened on first use and cached; no recovery.
    fn open_indexes(&self, collection: &str) -> Result<Arc<Indexes>> {
        let row = self.catalog().collection(collection)?;
        self.drop_stale(collection, row.as_ref());
        let active = row.and_then(|r| r.active_version);
        Ok(self.open_indexes_fresh(collection, active.as_deref())?.0)
    }

    /// The id of the collection's active embedding version, as the catalog has it now.
    fn active_version_id(&self, collection: &str) -> Result<Option<String>> {
        Ok(self
            .catalog()
            .collection(collection)?
            .and_then(|c| c.active_version))
    }

    /// [`Engine::open_indexes`] for a caller that read the collection's active version
    /// (`active`), and whether they were opened just now: on first use, or because another
    /// process switched the active version since they were cached (the BM25 index and its
    /// publish lock are kept; the vectors are those of the new version).
    fn open_indexes_fresh(
        &self,
        collection: &str,
        active: Option<&str>,
    ) -> Result<(Arc<Indexes>, bool)> {
        let serves = |ix: &Indexes, id: Option<&str>| {
            ix.active.as_ref().map(|a| a.version.id.as_str()) == id
        };
        if let Some(ix) = self
            .indexes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(collection)
            && serves(ix, active)
        {
            return Ok((ix.clone(), false));
        }
        // Opened before the map's lock is taken: a damaged index is recreated under the writer
        // lock, which is always taken before the map's.
        let opened = match self
            .indexes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(collection)
        {
            true => None,
            false => Some(self.open_bm25(collection)?),
        };
        let mut map = self.indexes.write().unwrap_or_else(|p| p.into_inner());
        // Read again under the map's lock: a switch in this process changes the catalog and the
        // map while holding it, so what is read here and what is cached agree.
        let active = self.active_version_id(collection)?;
        if let Some(ix) = map.get(collection)
            && serves(ix, active.as_deref())
        {
            return Ok((ix.clone(), false));
        }
        let (bm25, publish) = match map.get(collection) {
            Some(old) => {
                tracing::info!(
                    collection,
                    "the active embedding version changed in another process; switching to it"
                );
                (old.bm25.clone(), old.publish.clone())
            }
            None => {
                let bm25 = match opened {
                    Some(b) => b,
                    // (not open_bm25: the writer lock must not be taken under the map's)
                    None => Bm25Index::open(
                        &self.dir.join("collections").join(collection).join("bm25"),
                    )?,
                };
                (Arc::new(bm25), Arc::new(RwLock::new(())))
            }
        };
        let active = self.active_embedder(collection)?;
        let vectors = match &active {
            Some(a) => Some(Arc::new(VectorIndex::open(
                &self.version_dir(collection, &a.version.id),
                a.version.spec.dimensions,
                self.options.vector,
            )?)),
            None => None,
        };
        let incarnation = self
            .catalog()
            .collection(collection)?
            .map(|c| c.incarnation)
            .unwrap_or_default();
        let ix = Arc::new(Indexes {
            bm25,
            vectors,
            active,
            publish,
            incarnation,
        });
        map.insert(collection.to_owned(), ix.clone());
        Ok((ix, true))
    }

    /// The indexes for readers of `row`: when opened (first use, or a version switched
    /// elsewhere) they are recovered to the catalog's generation.
    fn indexes(&self, row: &CollectionRow) -> Result<Arc<Indexes>> {
        let collection = row.name.as_str();
        self.drop_stale(collection, Some(row));
        let (ix, fresh) = self.open_indexes_fresh(collection, row.active_version.as_deref())?;
        if fresh {
            let catalog_gen = self.collection(collection)?.generation;
            let behind = ix.bm25.generation()? != catalog_gen
                || ix
                    .vectors
                    .as_ref()
                    .is_some_and(|v| v.generation() != catalog_gen);
            if behind {
                // A read: vectors are not dumped here (the next write or the shutdown does).
                return self.with_write_lock(|| self.recover(collection, ix, false));
            }
        }
        Ok(ix)
    }

    /// Catches up with the generations other processes committed to every collection this
    /// engine has open (a CLI ingest beside a server), and publishes them; a server calls it
    /// every few hundred milliseconds. It never waits for the writer lock: a collection whose
    /// writer is in the middle of a commit is caught up at a later call. Returns how many
    /// collections moved to a newer generation.
    pub fn refresh(&self) -> Result<usize> {
        let open: Vec<String> = self
            .indexes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let renew = {
            let mut at = self.holds_renewed.lock().unwrap_or_else(|p| p.into_inner());
            let due = at.elapsed() >= HOLD_RENEW;
            if due {
                *at = std::time::Instant::now();
            }
            due
        };
        let mut moved = 0;
        for collection in open {
            match self.refresh_collection(&collection, renew) {
                Ok(true) => moved += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(collection, error = %e, "could not catch up with another process's writes")
                }
            }
        }
        Ok(moved)
    }

    fn refresh_collection(&self, collection: &str, renew: bool) -> Result<bool> {
        let row = self.catalog().collection(collection)?;
        self.drop_stale(collection, row.as_ref());
        let Some(row) = row else {
            return Ok(false);
        };
        let (ix, _) = self.open_indexes_fresh(collection, row.active_version.as_deref())?;
        let current = ix.bm25.published_generation() == row.generation
            && ix
                .vectors
                .as_ref()
                .is_none_or(|v| v.generation() == row.generation);
        if current {
            if renew
                && !self.options.read_only
                && let Some(v) = &ix.vectors
            {
                self.catalog()
                    .hold(collection, &self.holder, v.generation())?;
            }
            return Ok(false);
        }
        let _inproc = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let on_disk = ix.bm25.generation()?;
        if on_disk == row.generation
            && let Some(ix) = self.follow(collection, ix.clone(), on_disk)?
        {
            if !self.options.read_only
                && let Some(v) = &ix.vectors
            {
                self.catalog()
                    .hold(collection, &self.holder, v.generation())?;
            }
            return Ok(true);
        }
        // BM25 behind the catalog with nobody writing (a writer died mid-commit), or the change
        // log no longer reaches this process's vectors: the full recovery, if the lock is free.
        let Some(file) = self.try_file_lock()? else {
            return Ok(false);
        };
        let out = self.recover(collection, ix, false);
        let _ = file.unlock();
        out.map(|_| true)
    }

    /// Without the writer lock: brings the vectors to `target` (a generation committed to the
    /// catalog and to BM25 on disk) from the change log and the stored vectors, then reloads BM25
    /// and publishes both. `None` when the log no longer reaches the vectors' generation.
    fn follow(
        &self,
        collection: &str,
        ix: Arc<Indexes>,
        target: u64,
    ) -> Result<Option<Arc<Indexes>>> {
        if let Some(vectors) = &ix.vectors
            && vectors.generation() != target
            && !self.vectors_from_log(collection, &ix, vectors.generation(), target, false)?
        {
            return Ok(None);
        }
        self.publish(&ix)?;
        Ok(Some(ix))
    }

    /// Brings the vectors of `ix` from generation `from` to `target` with the chunks the change
    /// log says changed in between and their stored vectors (dumping the graph if `dump`).
    /// `false`, with nothing done, when the log does not reach back to `from` (or `from` is
    /// ahead of `target`).
    fn vectors_from_log(
        &self,
        collection: &str,
        ix: &Indexes,
        from: u64,
        target: u64,
        dump: bool,
    ) -> Result<bool> {
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
        self.write_vectors(collection, ix, target, &touched, dump)?;
        Ok(true)
    }

    /// Brings every derived index to the catalog's generation by replaying the change log, or by a
    /// full rebuild when the log does not reach back far enough or an index is ahead of the catalog.
    /// The caller holds the writer lock. Returns the indexes to use from now on: `ix`, or new
    /// ones when the vector graph had to be reloaded from its dump or rebuilt. `dump`: whether
    /// the vector graph may be written to disk now (a write), or not (a read).
    fn recover(&self, collection: &str, ix: Arc<Indexes>, dump: bool) -> Result<Arc<Indexes>> {
        let catalog_gen = self.collection(collection)?.generation;
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
            self.write_bm25(collection, &ix.bm25, catalog_gen, &touched, rebuild)?;
        }
        let ix = match &ix.vectors {
            Some(vectors) if vectors.generation() != catalog_gen => {
                self.recover_vectors(collection, ix.clone(), catalog_gen, dump)?
            }
            _ => ix,
        };
        self.publish(&ix)?;
        self.prune(collection, &ix)?;
        Ok(ix)
    }

    /// Brings the vector graph of `ix` to `catalog_gen`: from the change log when it reaches
    /// back to the graph's generation; else from the dump on disk (another process wrote a newer
    /// one and pruned the log before this graph's generation) and the log from there; else by a
    /// rebuild from the stored vectors. The caller holds the writer lock.
    fn recover_vectors(
        &self,
        collection: &str,
        ix: Arc<Indexes>,
        catalog_gen: u64,
        dump: bool,
    ) -> Result<Arc<Indexes>> {
        let (Some(vectors), Some(active)) = (&ix.vectors, &ix.active) else {
            return Ok(ix);
        };
        let vec_gen = vectors.generation();
        if vec_gen < catalog_gen
            && self.vectors_from_log(collection, &ix, vec_gen, catalog_gen, dump)?
        {
            return Ok(ix);
        }
        let dir = self.version_dir(collection, &active.version.id);
        let mut reopened =
            VectorIndex::open(&dir, active.version.spec.dimensions, self.options.vector)?;
        let mut from = reopened.generation();
        let mut touched = (from <= catalog_gen)
            .then(|| {
                self.catalog()
                    .changed_between(collection, from, catalog_gen)
            })
            .transpose()?
            .flatten();
        if touched.is_none() {
            reopened =
                VectorIndex::empty(&dir, active.version.spec.dimensions, self.options.vector)?;
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
        let fresh = Arc::new(Indexes {
            bm25: ix.bm25.clone(),
            vectors: Some(Arc::new(reopened)),
            active: ix.active.clone(),
            publish: ix.publish.clone(),
            incarnation: ix.incarnation.clone(),
        });
        self.write_vectors(collection, &fresh, catalog_gen, &touched, dump)?;
        let mut map = self.indexes.write().unwrap_or_else(|p| p.into_inner());
        if map.get(collection).is_some_and(|cur| Arc::ptr_eq(cur, &ix)) {
            map.insert(collection.to_owned(), fresh.clone());
        }
        Ok(fresh)
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

    fn write_bm25(
        &self,
        collection: &str,
        ix: &Bm25Index,
        generation: u64,
        touched: &[ContentHash],
        rebuild: bool,
    ) -> Result<()> {
        let context_chars = self.chunk_options(collection)?.context_chars;
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
        ix.commit(generation, touched, &records, rebuild)
    }

    /// Applies the touched chunks to the vector index: chunks that left the collection become
    /// tombstones, chunks in it get their stored vector. Not published yet. `dump`: write the
    /// graph to disk when enough changed since its last dump (only writers, under the writer
    /// lock, may).
    fn write_vectors(
        &self,
        collection: &str,
        ix: &Indexes,
        generation: u64,
        touched: &[ContentHash],
        dump: bool,
    ) -> Result<()> {
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
        self.compact_after_forget(collection, vectors, from)?;
        if dump && vectors.needs_dump(self.options.dump_every_points, false) {
            vectors.dump()?;
        }
        Ok(())
    }

    /// Makes the committed BM25 and vector state visible to new searchers, together.
    fn publish(&self, ix: &Indexes) -> Result<()> {
        let _guard = ix.publish.write().unwrap_or_else(|p| p.into_inner());
        ix.bm25.reload()?;
        if let Some(v) = &ix.vectors {
            v.publish();
        }
        Ok(())
    }

    /// Forgets the change log that no derived index needs any more.
    fn prune(&self, collection: &str, ix: &Indexes) -> Result<()> {
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

    /// Writes every vector index that changed since its last dump (end of an ingest, shutdown).
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
                // Another process may have written since: catch up first, so this dump is never
                // older than the one on disk.
                let ix = self.recover(&name, ix, false)?;
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

    /// Creates the collection if needed, with an active version of the default embedder.
    fn ensure_collection(&self, collection: &str) -> Result<()> {
        if self.catalog().collection(collection)?.is_some() {
            return Ok(());
        }
        let embedder = self.default_embedder()?;
        let catalog = self.catalog();
        catalog.ensure_collection(collection, &self.options.chunk)?;
        if let Some(e) = embedder {
            catalog.create_active_version(collection, &self.options.embedder, e.spec())?;
        }
        Ok(())
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
        let embedder = active.embedder.clone().map_err(Error::Embed)?;
        let fp = active.version.fingerprint;
        let hashes: Vec<ContentHash> = texts.keys().copied().collect();
        let have = self.catalog().have_vectors(&fp, &hashes)?;
        let mut missing: Vec<(ContentHash, String)> = texts
            .into_iter()
            .filter(|(h, _)| !have.contains(h))
            .collect();
        // Longest first: batches of similar lengths pad little.
        missing.sort_by_key(|(h, t)| (std::cmp::Reverse(t.len()), *h));
        for batch in missing.chunks(self.options.embed_batch.max(1)) {
            if cancel.is_some_and(crate::Cancel::is_cancelled) {
                return Err(Error::Cancelled(
                    "the write was cancelled while its chunks were embedded; nothing of it was committed".into(),
                ));
            }
            self.embed_texts_and_store(&active.version, &embedder, batch, None)?;
        }
        Ok((missing.len() as u64, have.len() as u64))
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
        self.apply_cancellable(collection, changes, embed, None)
    }

    /// [`Engine::apply_with`] that `cancel` can stop up to its commit: checked between
    /// embedding batches and decided, once, just before the catalog commit. A cancelled write
    /// commits nothing ([`Error::Cancelled`]); vectors it stored stay as embedding cache.
    pub fn apply_cancellable(
        &self,
        collection: &str,
        changes: Vec<Change>,
        embed: bool,
        cancel: Option<&crate::Cancel>,
    ) -> Result<ApplyStats> {
        check_collection_name(collection)?;
        let cancelled = || {
            Error::Cancelled(
                "the write was cancelled before its commit (the request timed out or the server \
                 is stopping); nothing of it was written"
                    .into(),
            )
        };
        self.with_write_lock(|| {
            if cancel.is_some_and(crate::Cancel::is_cancelled) {
                return Err(cancelled());
            }
            self.ensure_collection(collection)?;
            let ix = self.recover(collection, self.open_indexes(collection)?, true)?;
            let mut stats = ApplyStats::default();
            if embed {
                (stats.embedded, stats.cache_hits) = self.embed_missing(&ix, &changes, cancel)?;
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
                self.write_generation(collection, &ix, generation, &touched)?;
                stats.generation = Some(generation);
                stats.chunks_touched = touched.len() as u64;
            }
            self.telemetry.observe_apply(collection, &stats);
            Ok(stats)
        })
    }

    /// After the catalog committed `generation`: writes the touched chunks to BM25 and the
    /// vectors, and publishes both together.
    fn write_generation(
        &self,
        collection: &str,
        ix: &Indexes,
        generation: u64,
        touched: &[ContentHash],
    ) -> Result<()> {
        self.write_bm25(collection, &ix.bm25, generation, touched, false)?;
        self.write_vectors(collection, ix, generation, touched, true)?;
        self.publish(ix)?;
        self.prune(collection, ix)
    }

    /// Stores vectors computed elsewhere for chunks of `collection`, after checking that `spec`
    /// is the spec of the collection's active embedder (DESIGN invariant 2). Commits one
    /// generation that touches those chunks. Returns how many chunks got a vector.
    pub fn put_vectors(
        &self,
        collection: &str,
        spec: &quarry_core::EmbedderSpec,
        vectors: Vec<(ContentHash, Vec<f32>)>,
    ) -> Result<u64> {
        self.collection(collection)?;
        self.with_write_lock(|| {
            let ix = self.recover(collection, self.open_indexes(collection)?, true)?;
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
            self.catalog().put_vectors(&active.version.fingerprint, &rows)?;
            let committed = {
                let mut catalog = self.catalog();
                let mut tx = catalog.begin(collection)?;
                tx.touch(rows.iter().map(|(h, _)| *h));
                tx.commit()?
            };
            if let Some((generation, touched)) = committed {
                self.write_bm25(collection, &ix.bm25, generation, &[], false)?;
                // A chunk whose vector was replaced must get a new point.
                if let Some(v) = &ix.vectors {
                    v.apply(generation, &touched, &[])?;
                }
                self.write_vectors(collection, &ix, generation, &touched, true)?;
                self.publish(&ix)?;
                self.prune(collection, &ix)?;
            }
            Ok(rows.len() as u64)
        })
    }

    /// Chunk hashes of a document, in order (empty when it does not exist).
    pub fn doc_chunk_hashes(&self, collection: &str, doc_id: &str) -> Result<Vec<ContentHash>> {
        self.catalog().doc_chunk_hashes(collection, doc_id)
    }

    /// Opens every collection's indexes, recovering what a crash left behind (a server calls it
    /// before it says it is ready).
    pub fn open_all(&self) -> Result<()> {
        let names: Vec<String> = self
            .catalog()
            .collections()?
            .into_iter()
            .map(|c| c.name)
            .collect();
        for name in names {
            self.searcher(&name)?;
        }
        Ok(())
    }

    /// A snapshot of the collection for queries.
    pub fn searcher(&self, collection: &str) -> Result<Searcher> {
        let row = self.collection(collection)?;
        let ix = self.indexes(&row)?;
        Ok(Searcher::new(row, &ix, &self.options))
    }
}

mod forget;
pub use forget::{CollectionSettings, ForgetReport};

pub mod snapshot;
mod versions;
pub use versions::CANARY_SIZE;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod acl_tests;

#[cfg(test)]
mod shared_dir_tests;

#[cfg(test)]
mod forget_tests;
