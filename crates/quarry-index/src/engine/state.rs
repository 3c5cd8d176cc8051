//! The [`Engine`] struct, with what every part of the engine shares: the catalog guard, the writer lock (a file lock, re-entrant per thread) and the
//! read-only check. The other files of `engine/` each add an `impl Engine` for one concept.

use crate::catalog::{Catalog, CollectionRow};
use crate::collection::Indexes;
use crate::error::{Error, Result};
use crate::options::EngineOptions;
use crate::searcher::QueryVectorCache;
use crate::telemetry::Telemetry;
use crate::vectors::VectorIndex;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

/// A data directory opened: its catalog, the derived indexes of its collections, and the locks
/// that order writers. Its methods are spread over the files of `engine/` by concept.
pub struct Engine {
    pub(crate) dir: PathBuf,
    pub(crate) options: EngineOptions,
    pub(crate) catalog: Mutex<Catalog>,
    /// The catalog's `quick_check` verdict, set once: at open, or by a thread of its own when
    /// the check runs beside the open ([`EngineOptions::defer_catalog_check`]). Writes and
    /// snapshots for queries wait for it ([`Engine::catalog_checked`]).
    pub(crate) catalog_check: Arc<OnceLock<Verdict>>,
    pub(crate) indexes: RwLock<HashMap<String, Arc<Indexes>>>,
    /// Serialises writers inside this process; the file lock serialises processes.
    pub(crate) write_lock: Mutex<()>,
    pub(crate) telemetry: Arc<Telemetry>,
    /// Vectors of recently embedded query texts, shared by every searcher of this engine.
    pub(crate) query_vectors: Arc<QueryVectorCache>,
    /// Set at shutdown: running jobs stop at their next batch, resumable.
    pub(crate) interrupt_jobs: std::sync::atomic::AtomicBool,
    /// Bulk ingests running in this process, by collection ([`Engine::bulk_ingest`]): while a
    /// collection has one, its BM25 commits merge lazily ([`crate::bm25::Merges::Lazy`]).
    pub(crate) bulk_ingests: Mutex<HashMap<String, usize>>,
    /// Per collection, the vector index of the version that served before the last switch, kept
    /// in memory so a rollback to it takes no reload.
    pub(crate) standby: Mutex<HashMap<String, (String, Arc<VectorIndex>)>>,
    /// This engine's name in the catalog's `index_holds` (pid and start time).
    pub(crate) holder: String,
    /// When [`Engine::refresh`] last renewed this engine's holds.
    pub(crate) holds_renewed: Mutex<std::time::Instant>,
    /// `open.lock`, locked shared while this engine lives: a restore refuses a data directory
    /// whose lock it cannot take exclusively.
    pub(crate) _open_lock: Option<File>,
    /// How many times the engine read a collection's catalog row ([`Engine::collection_row`]),
    /// for tests of how often the write path does.
    #[cfg(test)]
    pub(crate) collection_row_reads: std::sync::atomic::AtomicUsize,
}

/// What the catalog's `quick_check` found ([`Engine::catalog_checked`]).
#[derive(Debug, Clone)]
pub(crate) enum Verdict {
    Sound,
    /// The damage found, as the message of an [`Error::Corrupt`].
    Damaged(String),
    /// The check could not run (an I/O or SQLite error other than a damage).
    Unchecked(String),
}

/// The file every engine holds a shared lock on while it has the data directory open.
pub(crate) const OPEN_LOCK: &str = "open.lock";

thread_local! {
    /// Whether this thread holds the writer lock (of whichever engine: a thread writes to one).
    static HOLDS_WRITE_LOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A bulk ingest running ([`Engine::bulk_ingest`]); ends when dropped.
pub(crate) struct BulkIngest<'a> {
    running: &'a Mutex<HashMap<String, usize>>,
    collection: String,
}

impl Drop for BulkIngest<'_> {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = running.get_mut(&self.collection) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.collection);
            }
        }
    }
}

impl Engine {
    /// Marks a bulk ingest into `collection` (batch after batch committed by one run) as running
    /// until the guard is dropped: meanwhile the collection's BM25 commits merge lazily, and
    /// [`Engine::flush`] after the run merges what they left (BENCHMARKS.md, "Build speed:
    /// ef_construction and lazy BM25 merges").
    pub(crate) fn bulk_ingest(&self, collection: &str) -> BulkIngest<'_> {
        let mut running = self.bulk_ingests.lock().unwrap_or_else(|p| p.into_inner());
        *running.entry(collection.to_owned()).or_default() += 1;
        BulkIngest {
            running: &self.bulk_ingests,
            collection: collection.to_owned(),
        }
    }

    /// How `collection`'s BM25 commits merge now ([`Engine::bulk_ingest`]).
    pub(crate) fn merges(&self, collection: &str) -> crate::bm25::Merges {
        let running = self.bulk_ingests.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(collection) {
            crate::bm25::Merges::Lazy
        } else {
            crate::bm25::Merges::Eager
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Best effort: a hold left behind only keeps some change log until it expires. Nothing
        // is written to a catalog whose check has not passed.
        if !self.options.read_only && matches!(self.catalog_check.get(), Some(Verdict::Sound)) {
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

    /// Waits for the catalog's `quick_check` (at once when it ran at open) and returns its
    /// verdict: the [`Error::Corrupt`] of a damaged catalog, which nothing may write to or
    /// answer from.
    pub fn catalog_checked(&self) -> Result<()> {
        match self.catalog_check.wait() {
            Verdict::Sound => Ok(()),
            Verdict::Damaged(found) => Err(Error::Corrupt(found.clone())),
            Verdict::Unchecked(why) => Err(Error::Busy(format!(
                "the catalog could not be checked for damage ({why}); nothing is written or \
                 answered before it is: open the data directory again (restart the server)"
            ))),
        }
    }

    pub(crate) fn catalog(&self) -> MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The catalog row of collection `name` (`None`: there is none). The engine reads the row
    /// through here (takes and releases the catalog guard: not to be called while holding it).
    pub(crate) fn collection_row(&self, name: &str) -> Result<Option<CollectionRow>> {
        #[cfg(test)]
        self.collection_row_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.catalog().collection(name)
    }

    /// The error of a read-only engine asked to do what needs a write: `what` and how to fix it.
    pub(crate) fn needs_write(&self, what: &str) -> Error {
        Error::ReadOnly(format!(
            "{what}; this needs a write, and {} was opened read-only. Run any quarry command \
             with write access to it once (e.g. `quarry status` as its owner), then try again",
            self.dir.display()
        ))
    }

    /// Runs `f` while holding the data directory's writer lock. Re-entrant: a thread that holds
    /// it already just runs `f`.
    /// A read-only engine takes the in-process mutex only (nobody can write the directory).
    pub(crate) fn with_write_lock<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if HOLDS_WRITE_LOCK.get() {
            return f();
        }
        self.catalog_checked()?;
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

    /// The writer lock's file, locked, or `None` when another process holds it. The caller holds
    /// the in-process writer mutex.
    pub(super) fn try_file_lock(&self) -> Result<Option<File>> {
        self.catalog_checked()?;
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
}
