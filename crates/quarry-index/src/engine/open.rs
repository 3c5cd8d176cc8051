//! Opening: the data directory ([`Engine::open`]), each collection's indexes on first use
//! (and again when another process switched its active version or re-created it), and
//! [`Engine::refresh`], which follows what other processes committed without taking the writer
//! lock.

use super::state::{Engine, OPEN_LOCK, Verdict, open_lock_file};
use crate::bm25::Bm25Index;
use crate::catalog::{Catalog, CollectionRow, VersionRow};
use crate::collection::Indexes;
use crate::error::{Error, Result};
use crate::options::EngineOptions;
use crate::searcher::QueryVectorCache;
use crate::telemetry::Telemetry;
use crate::vectors::{VectorIndex, VectorParams};
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

/// A hold older than this is renewed by [`Engine::refresh`] (well inside
/// [`crate::catalog::HOLD_TTL_SECS`]).
const HOLD_RENEW: Duration = Duration::from_secs(60);

/// Runs the catalog's `quick_check` on a thread of its own and sets `verdict` when it ends (an
/// `Err` too if the thread ends without a verdict, so that nobody waits for ever).
fn spawn_catalog_check(path: PathBuf, verdict: Arc<OnceLock<Verdict>>) -> Result<()> {
    struct Unfinished(Arc<OnceLock<Verdict>>);
    impl Drop for Unfinished {
        fn drop(&mut self) {
            let _ = self.0.set(Verdict::Unchecked(
                "the check stopped before it finished".into(),
            ));
        }
    }
    let at = path.clone();
    std::thread::Builder::new()
        .name("catalog-check".into())
        .spawn(move || {
            let guard = Unfinished(verdict);
            let started = std::time::Instant::now();
            #[cfg(test)]
            drop(super::catalog_check_tests::CHECK_HOLD.lock());
            let found = match Catalog::quick_check(&path) {
                Ok(()) => Verdict::Sound,
                Err(Error::Corrupt(found)) => Verdict::Damaged(found),
                Err(e) => Verdict::Unchecked(e.to_string()),
            };
            // a damage is reported by whoever waits for the verdict
            if matches!(found, Verdict::Sound) {
                tracing::info!(
                    seconds = started.elapsed().as_secs_f64(),
                    "catalog checked: no damage found"
                );
            }
            let _ = guard.0.set(found);
        })
        .map_err(|e| Error::io(at, e))?;
    Ok(())
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
        let (catalog, checked) = if options.read_only {
            if let Ok(open_lock) = File::open(dir.join(OPEN_LOCK)) {
                open_lock
                    .lock_shared()
                    .map_err(|e| Error::io(dir.join(OPEN_LOCK), e))?;
                held_open_lock = Some(open_lock);
            }
            (Catalog::open_read_only(&dir.join("catalog.sqlite3"))?, true)
        } else {
            std::fs::create_dir_all(dir.join("collections")).map_err(|e| Error::io(&dir, e))?;
            let open_lock = open_lock_file(&dir.join(OPEN_LOCK))?;
            open_lock
                .lock_shared()
                .map_err(|e| Error::io(dir.join(OPEN_LOCK), e))?;
            held_open_lock = Some(open_lock);
            if options.defer_catalog_check {
                Catalog::open_unchecked(&dir.join("catalog.sqlite3"))?
            } else {
                (Catalog::open(&dir.join("catalog.sqlite3"))?, true)
            }
        };
        let catalog_check = Arc::new(OnceLock::new());
        if checked {
            let _ = catalog_check.set(Verdict::Sound);
        } else {
            spawn_catalog_check(dir.join("catalog.sqlite3"), catalog_check.clone())?;
        }
        let telemetry = Arc::new(Telemetry::new());
        Ok(Engine {
            dir,
            query_vectors: Arc::new(QueryVectorCache::new(
                options.query_embed_cache_entries,
                telemetry.clone(),
            )),
            options,
            catalog: Mutex::new(catalog),
            catalog_check,
            indexes: RwLock::new(HashMap::new()),
            write_lock: Mutex::new(()),
            telemetry,
            interrupt_jobs: std::sync::atomic::AtomicBool::new(false),
            bulk_ingests: Mutex::new(HashMap::new()),
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
            #[cfg(test)]
            collection_row_reads: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Opens a collection's BM25 index; a damaged one is deleted and started again under the
    /// writer lock (so no other process is writing it), for recovery to rebuild from the catalog.
    pub(super) fn open_bm25(&self, collection: &str) -> Result<Bm25Index> {
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

    /// The folder of a version's vector index.
    pub(crate) fn version_dir(&self, collection: &str, version: &str) -> PathBuf {
        self.dir
            .join("collections")
            .join(collection)
            .join("vectors")
            .join(version)
    }

    /// The folder of `version`'s vector index (its id, or where a requantize built it).
    pub(crate) fn index_dir(&self, collection: &str, version: &VersionRow) -> PathBuf {
        self.version_dir(collection, version.folder())
    }

    /// The `[vector]` settings with what `version`'s index sets in their place.
    pub(crate) fn vector_params(&self, version: &VersionRow) -> VectorParams {
        self.options.vector.with_index(&version.index)
    }

    /// The indexes of a collection, opened on first use and cached; no recovery.
    pub(crate) fn open_indexes(&self, collection: &str) -> Result<Arc<Indexes>> {
        let row = self.collection_row(collection)?;
        self.drop_stale(collection, row.as_ref());
        let active = row.and_then(|r| r.active_index);
        Ok(self.open_indexes_fresh(collection, active.as_deref())?.0)
    }

    /// [`Engine::open_indexes`] of the collection whose row the caller read (`row`).
    pub(crate) fn open_indexes_of(&self, row: &CollectionRow) -> Result<Arc<Indexes>> {
        self.drop_stale(&row.name, Some(row));
        Ok(self
            .open_indexes_fresh(&row.name, row.active_index.as_deref())?
            .0)
    }

    /// [`Engine::open_indexes`] for a caller that read the folder of the collection's active
    /// index (`active`, [`CollectionRow::active_index`]), and whether they were opened just
    /// now: on first use, or because another process switched the active version or rebuilt
    /// its index (a requantize) since they were cached (the BM25 index and its publish lock are
    /// kept; the vectors are those of the new index).
    fn open_indexes_fresh(
        &self,
        collection: &str,
        active: Option<&str>,
    ) -> Result<(Arc<Indexes>, bool)> {
        let serves = |ix: &Indexes, folder: Option<&str>| {
            ix.active.as_ref().map(|a| a.version.folder()) == folder
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
        // (The map's read guard ends with this statement; a `match` on it would hold it through
        // `open_bm25`, which may take the writer lock.)
        let cached = self
            .indexes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(collection);
        let opened = if cached {
            None
        } else {
            Some(self.open_bm25(collection)?)
        };
        let mut map = self.indexes.write().unwrap_or_else(|p| p.into_inner());
        // Read again under the map's lock: a switch in this process changes the catalog and the
        // map while holding it, so what is read here and what is cached agree.
        let row = self.collection_row(collection)?;
        let active = row.as_ref().and_then(|r| r.active_version.clone());
        let folder = row.as_ref().and_then(|r| r.active_index.clone());
        if let Some(ix) = map.get(collection)
            && serves(ix, folder.as_deref())
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
        let active = match &active {
            Some(id) => self.active_embedder(collection, id)?,
            None => None,
        };
        let vectors = match &active {
            Some(a) => Some(Arc::new(VectorIndex::open(
                &self.index_dir(collection, &a.version),
                a.version.spec.dimensions,
                self.vector_params(&a.version),
            )?)),
            None => None,
        };
        let incarnation = row.map(|c| c.incarnation).unwrap_or_default();
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
    pub(crate) fn indexes(&self, row: &CollectionRow) -> Result<Arc<Indexes>> {
        let collection = row.name.as_str();
        self.drop_stale(collection, Some(row));
        let (ix, fresh) = self.open_indexes_fresh(collection, row.active_index.as_deref())?;
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
            // Vectors opened at the catalog's generation beside a BM25 index this process kept
            // (another process switched the version or rebuilt its index): BM25's readers may
            // not have seen that generation yet.
            if ix.bm25.published_generation() != catalog_gen {
                ix.publish()?;
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
        self.catalog_checked()?;
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
        let row = self.collection_row(collection)?;
        self.drop_stale(collection, row.as_ref());
        let Some(row) = row else {
            return Ok(false);
        };
        let (ix, _) = self.open_indexes_fresh(collection, row.active_index.as_deref())?;
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
            // Another process merged BM25 segments without a new generation (the end of a bulk
            // ingest, a forget's purge): its files for the old ones are gone, read the new ones.
            if ix.bm25.merged_since_published()? {
                ix.publish()?;
                return Ok(true);
            }
            return Ok(false);
        }
        let _inproc = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let on_disk = ix.bm25.generation()?;
        if on_disk == row.generation
            && let Some(ix) = self.follow(&row, ix.clone(), on_disk)?
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
}
