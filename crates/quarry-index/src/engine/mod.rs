//! The engine: a data directory with its catalog and per-collection indexes.
//!
//! Writes ([`Engine::apply`]) hold the data directory's writer lock (a file lock, so it also
//! serialises separate processes) and commit one generation: first the catalog transaction (the
//! durable point), then the BM25 index with the generation as commit payload. If the process dies
//! between the two, the next open replays the catalog's change log into the index
//! ([`Engine::recover`]), so every acknowledged write is searchable and nothing half-written is.

use crate::bm25::Bm25Index;
use crate::catalog::{Catalog, CollectionRow, UpsertOutcome, check_collection_name};
use crate::error::{Error, Result};
use crate::searcher::Searcher;
use quarry_core::{Chunk, ChunkOptions, ContentHash, Document};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Settings the engine needs from configuration.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Chunking of collections created from now on.
    pub chunk: ChunkOptions,
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
    pub deleted: u64,
    /// Chunks written to (or removed from) the BM25 index.
    pub chunks_touched: u64,
}

/// Counts of a collection, as `status` and `GET /v1/collections` show them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CollectionStats {
    pub name: String,
    pub documents: u64,
    pub chunks: u64,
    pub generation: u64,
    pub active_embedding_version: Option<String>,
    pub versions_building: Vec<String>,
    pub chunk_options: ChunkOptions,
}

pub struct Engine {
    dir: PathBuf,
    options: EngineOptions,
    catalog: Mutex<Catalog>,
    bm25: RwLock<HashMap<String, Arc<Bm25Index>>>,
    /// Serialises writers inside this process; the file lock serialises processes.
    write_lock: Mutex<()>,
}

impl Engine {
    /// Opens (creating if needed) the data directory.
    pub fn open(dir: impl Into<PathBuf>, options: EngineOptions) -> Result<Self> {
        let dir = dir.into();
        options.chunk.validate()?;
        std::fs::create_dir_all(dir.join("collections")).map_err(|e| Error::io(&dir, e))?;
        let catalog = Catalog::open(&dir.join("catalog.sqlite3"))?;
        Ok(Engine {
            dir,
            options,
            catalog: Mutex::new(catalog),
            bm25: RwLock::new(HashMap::new()),
            write_lock: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    fn catalog(&self) -> MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` while holding the data directory's writer lock.
    fn with_write_lock<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let _inproc = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.dir.join("writer.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        let out = f();
        let _ = file.unlock();
        out
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

    pub fn stats(&self, name: &str) -> Result<CollectionStats> {
        let row = self.collection(name)?;
        let (documents, chunks) = self.catalog().counts(name)?;
        Ok(CollectionStats {
            name: row.name,
            documents,
            chunks,
            generation: row.generation,
            active_embedding_version: row.active_version,
            versions_building: Vec::new(),
            chunk_options: row.chunk_options,
        })
    }

    pub fn list(&self) -> Result<Vec<CollectionStats>> {
        let names: Vec<String> = self
            .catalog()
            .collections()?
            .into_iter()
            .map(|c| c.name)
            .collect();
        names.iter().map(|n| self.stats(n)).collect()
    }

    /// Content hash of every document of a collection (empty for a collection not created yet).
    pub fn doc_hashes(&self, collection: &str) -> Result<HashMap<String, ContentHash>> {
        check_collection_name(collection)?;
        self.catalog().doc_hashes(collection)
    }

    /// `(doc_id, source)` of every document of a collection.
    pub fn doc_sources(&self, collection: &str) -> Result<Vec<(String, String)>> {
        self.catalog().doc_sources(collection)
    }

    /// The BM25 index of a collection, opened on first use and cached; no recovery.
    fn open_bm25(&self, collection: &str) -> Result<Arc<Bm25Index>> {
        if let Some(ix) = self
            .bm25
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(collection)
        {
            return Ok(ix.clone());
        }
        let mut map = self.bm25.write().unwrap_or_else(|p| p.into_inner());
        if let Some(ix) = map.get(collection) {
            return Ok(ix.clone());
        }
        let ix = Arc::new(Bm25Index::open(
            &self.dir.join("collections").join(collection).join("bm25"),
        )?);
        map.insert(collection.to_owned(), ix.clone());
        Ok(ix)
    }

    /// The BM25 index for readers: on first use it is recovered to the catalog's generation.
    fn bm25(&self, collection: &str) -> Result<Arc<Bm25Index>> {
        let first_use = !self
            .bm25
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(collection);
        let ix = self.open_bm25(collection)?;
        if first_use && ix.generation()? != self.collection(collection)?.generation {
            self.with_write_lock(|| self.recover(collection, &ix))?;
        }
        Ok(ix)
    }

    /// Brings the BM25 index to the catalog's generation by replaying the change log, or by a full
    /// rebuild when the log does not reach back far enough or the index is ahead of the catalog.
    fn recover(&self, collection: &str, ix: &Bm25Index) -> Result<()> {
        let catalog_gen = self.collection(collection)?.generation;
        let index_gen = ix.generation()?;
        if index_gen == catalog_gen {
            return Ok(());
        }
        let replay = if index_gen < catalog_gen {
            self.catalog().changed_since(collection, index_gen)?
        } else {
            None
        };
        let (touched, rebuild) = match replay {
            Some(hashes) => (hashes, false),
            None => (self.catalog().all_chunk_hashes(collection)?, true),
        };
        tracing::warn!(
            collection,
            index_gen,
            catalog_gen,
            chunks = touched.len(),
            rebuild,
            "recovering BM25 index"
        );
        self.write_bm25(collection, ix, catalog_gen, &touched, rebuild)
    }

    fn write_bm25(
        &self,
        collection: &str,
        ix: &Bm25Index,
        generation: u64,
        touched: &[ContentHash],
        rebuild: bool,
    ) -> Result<()> {
        let records = {
            let catalog = self.catalog();
            touched
                .iter()
                .filter_map(|h| catalog.chunk_record(collection, h).transpose())
                .collect::<Result<Vec<_>>>()?
        };
        ix.commit(generation, touched, &records, rebuild)?;
        self.catalog().prune_changelog(collection, generation)
    }

    /// Applies `changes` to `collection` (created on first write) as one generation.
    pub fn apply(&self, collection: &str, changes: Vec<Change>) -> Result<ApplyStats> {
        check_collection_name(collection)?;
        self.with_write_lock(|| {
            self.catalog()
                .ensure_collection(collection, &self.options.chunk)?;
            let ix = self.open_bm25(collection)?;
            self.recover(collection, &ix)?;
            let mut stats = ApplyStats::default();
            let committed = {
                let mut catalog = self.catalog();
                let mut tx = catalog.begin(collection)?;
                for change in &changes {
                    match change {
                        Change::Upsert(doc, chunks) => match tx.upsert(doc, chunks)? {
                            UpsertOutcome::Added => stats.added += 1,
                            UpsertOutcome::Updated => stats.updated += 1,
                            UpsertOutcome::Unchanged => stats.unchanged += 1,
                        },
                        Change::Delete(id) => stats.deleted += u64::from(tx.delete(id)?),
                    }
                }
                tx.commit()?
            };
            if let Some((generation, touched)) = committed {
                self.write_bm25(collection, &ix, generation, &touched, false)?;
                stats.generation = Some(generation);
                stats.chunks_touched = touched.len() as u64;
            }
            Ok(stats)
        })
    }

    /// A snapshot of the collection for queries.
    pub fn searcher(&self, collection: &str) -> Result<Searcher> {
        let row = self.collection(collection)?;
        let ix = self.bm25(collection)?;
        Ok(Searcher::new(row, ix))
    }
}

#[cfg(test)]
mod tests;
