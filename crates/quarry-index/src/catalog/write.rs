//! One write transaction of the catalog: upserts and deletes of documents, committed as the
//! collection's next generation together with the log of every chunk it touched.

use super::schema::{Catalog, now, parse_hash};
use crate::error::{Error, Result};
use quarry_core::{Chunk, ContentHash, Document};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::collections::BTreeSet;

/// What an upsert did to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    Added,
    Updated,
    /// Same content, another ACL or metadata: only those were written (the chunks are
    /// re-indexed with them, nothing is re-embedded).
    AclUpdated,
    /// Same doc id, content hash and ACL as stored: nothing was written.
    Unchanged,
}

pub struct WriteTx<'c> {
    tx: Transaction<'c>,
    collection: String,
    generation: u64,
    touched: BTreeSet<ContentHash>,
    dirty: bool,
}

impl<'c> WriteTx<'c> {
    pub(super) fn begin(conn: &'c mut Connection, collection: &str) -> Result<Self> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: i64 = tx
            .query_row(
                "SELECT generation FROM collections WHERE name = ?1",
                [collection],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound {
                what: "collection",
                id: collection.to_owned(),
            })?;
        Ok(WriteTx {
            tx,
            collection: collection.to_owned(),
            generation: current as u64 + 1,
            touched: BTreeSet::new(),
            dirty: false,
        })
    }

    /// The generation this transaction will commit.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub(super) fn chunk_hashes_of(&self, doc_id: &str) -> Result<Vec<ContentHash>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT chunk_hash FROM doc_chunks WHERE collection = ?1 AND doc_id = ?2",
        )?;
        let rows = stmt.query_map([&self.collection, doc_id], |r| r.get::<_, String>(0))?;
        rows.map(|h| parse_hash(&h?)).collect()
    }

    /// The stored content hash, ACL (as JSON) and metadata (as JSON) of a document.
    fn stored_state(&self, doc_id: &str) -> Result<Option<(String, String, String)>> {
        Ok(self
            .tx
            .query_row(
                "SELECT content_hash, acl, metadata FROM documents WHERE collection = ?1 AND doc_id = ?2",
                [&self.collection, doc_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    /// Inserts or replaces `doc` and exactly its own chunks. A document whose content is unchanged
    /// but whose ACL or metadata differs gets only those rewritten.
    pub fn upsert(&mut self, doc: &Document, chunks: &[Chunk]) -> Result<UpsertOutcome> {
        let acl = serde_json::to_string(&doc.acl).map_err(|e| Error::Corrupt(e.to_string()))?;
        let metadata = serde_json::Value::Object(doc.metadata.clone()).to_string();
        let outcome = match self.stored_state(&doc.doc_id)? {
            Some((h, a, m)) if h == doc.content_hash.to_hex() => {
                let same_metadata = m == metadata
                    || serde_json::from_str::<serde_json::Value>(&m).ok()
                        == Some(serde_json::Value::Object(doc.metadata.clone()));
                if a == acl && same_metadata {
                    return Ok(UpsertOutcome::Unchanged);
                }
                self.set_labels(&doc.doc_id, &acl, &metadata)?;
                return Ok(UpsertOutcome::AclUpdated);
            }
            Some(_) => UpsertOutcome::Updated,
            None => UpsertOutcome::Added,
        };
        self.dirty = true;
        let old = self.chunk_hashes_of(&doc.doc_id)?;
        self.touched.extend(old);
        self.tx.prepare_cached(
            "INSERT INTO documents (collection, doc_id, title, text, source, format, content_hash, metadata, acl, generation, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (collection, doc_id) DO UPDATE SET title = excluded.title, text = excluded.text,
               source = excluded.source, format = excluded.format, content_hash = excluded.content_hash,
               metadata = excluded.metadata, acl = excluded.acl, generation = excluded.generation,
               updated_at = excluded.updated_at",
        )?
        .execute(params![
            self.collection,
            doc.doc_id,
            doc.title,
            doc.text,
            doc.source,
            doc.format.as_str(),
            doc.content_hash.to_hex(),
            metadata,
            acl,
            self.generation as i64,
            now()
        ])?;
        self.replace_chunks(&doc.doc_id, &doc.title, chunks)?;
        Ok(outcome)
    }

    /// Replaces a document's chunks (a re-chunk: its content is unchanged) and marks the old and
    /// the new ones touched.
    pub fn rechunk(&mut self, doc_id: &str, title: &str, chunks: &[Chunk]) -> Result<()> {
        self.dirty = true;
        let old = self.chunk_hashes_of(doc_id)?;
        self.touched.extend(old);
        self.replace_chunks(doc_id, title, chunks)
    }

    /// Points the document at `chunks` (stored once per collection), marking them touched.
    fn replace_chunks(&mut self, doc_id: &str, title: &str, chunks: &[Chunk]) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM doc_chunks WHERE collection = ?1 AND doc_id = ?2")?
            .execute([&self.collection, doc_id])?;
        for chunk in chunks {
            let hex = chunk.hash.to_hex();
            self.tx
                .prepare_cached("INSERT OR IGNORE INTO chunks (collection, chunk_hash, text, title) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![self.collection, hex, chunk.text, title])?;
            self.tx
                .prepare_cached(
                    "INSERT INTO doc_chunks (collection, doc_id, ord, chunk_hash, start, end, heading_path, page) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    self.collection,
                    doc_id,
                    chunk.ord,
                    hex,
                    chunk.start as i64,
                    chunk.end as i64,
                    serde_json::to_string(&chunk.heading_path).expect("strings serialise"),
                    chunk.page
                ])?;
            self.touched.insert(chunk.hash);
        }
        Ok(())
    }

    /// Records the chunk options the collection's documents are now split with.
    pub fn set_chunk_options(&mut self, options: &quarry_core::ChunkOptions) -> Result<()> {
        let json = serde_json::to_string(options).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.tx.execute(
            "UPDATE collections SET chunk_options = ?2 WHERE name = ?1",
            params![self.collection, json],
        )?;
        self.dirty = true;
        Ok(())
    }

    /// Rewrites a document's ACL (JSON) and marks its chunks touched, so the indexes re-read them.
    fn set_labels(&mut self, doc_id: &str, acl_json: &str, metadata_json: &str) -> Result<()> {
        self.dirty = true;
        self.tx
            .prepare_cached(
                "UPDATE documents SET acl = ?3, metadata = ?4, generation = ?5, updated_at = ?6 WHERE collection = ?1 AND doc_id = ?2",
            )?
            .execute(params![
                self.collection,
                doc_id,
                acl_json,
                metadata_json,
                self.generation as i64,
                now()
            ])?;
        let chunks = self.chunk_hashes_of(doc_id)?;
        self.touched.extend(chunks);
        Ok(())
    }

    /// Deletes a document and its chunk references; `false` if it did not exist.
    pub fn delete(&mut self, doc_id: &str) -> Result<bool> {
        let old = self.chunk_hashes_of(doc_id)?;
        self.touched.extend(old);
        self.tx
            .prepare_cached("DELETE FROM doc_chunks WHERE collection = ?1 AND doc_id = ?2")?
            .execute([&self.collection, doc_id])?;
        let n = self
            .tx
            .prepare_cached("DELETE FROM documents WHERE collection = ?1 AND doc_id = ?2")?
            .execute([&self.collection, doc_id])?;
        self.dirty |= n > 0;
        Ok(n > 0)
    }

    /// Logs `hashes` as touched by this generation without changing a document (their vectors
    /// changed), so every derived index picks them up.
    pub fn touch(&mut self, hashes: impl IntoIterator<Item = ContentHash>) {
        let before = self.touched.len();
        self.touched.extend(hashes);
        self.dirty |= self.touched.len() > before;
    }

    /// Commits the generation: drops chunks no document holds any more, logs every touched chunk,
    /// bumps the collection's generation. Returns the touched chunks; a transaction that changed
    /// nothing commits nothing and returns `None`.
    pub fn commit(self) -> Result<Option<(u64, Vec<ContentHash>)>> {
        self.commit_with(|_, _| Ok(()))
    }

    /// [`WriteTx::commit`] that runs `more` inside the same transaction, after the chunks no
    /// document holds were dropped and before the commit (a forget erases what else held them).
    /// `more` gets the transaction and the generation being committed.
    pub(super) fn commit_with(
        self,
        more: impl FnOnce(&Transaction<'_>, u64) -> Result<()>,
    ) -> Result<Option<(u64, Vec<ContentHash>)>> {
        if !self.dirty {
            self.tx.rollback()?;
            return Ok(None);
        }
        for hash in &self.touched {
            let hex = hash.to_hex();
            self.tx
                .prepare_cached(
                    "DELETE FROM chunks WHERE collection = ?1 AND chunk_hash = ?2
                     AND NOT EXISTS (SELECT 1 FROM doc_chunks WHERE collection = ?1 AND chunk_hash = ?2)",
                )?
                .execute([&self.collection, &hex])?;
            self.tx
                .prepare_cached("INSERT OR IGNORE INTO changelog (collection, generation, chunk_hash) VALUES (?1, ?2, ?3)")?
                .execute(params![self.collection, self.generation as i64, hex])?;
        }
        self.tx.execute(
            "UPDATE collections SET generation = ?2 WHERE name = ?1",
            params![self.collection, self.generation as i64],
        )?;
        more(&self.tx, self.generation)?;
        self.tx.commit()?;
        Ok(Some((self.generation, self.touched.into_iter().collect())))
    }
}

impl Catalog {
    /// Starts the write transaction of the collection's next generation.
    pub(crate) fn begin(&mut self, collection: &str) -> Result<WriteTx<'_>> {
        WriteTx::begin(&mut self.conn, collection)
    }
}
