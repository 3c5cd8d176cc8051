//! Erasing from the catalog: one document everywhere it left a copy (`quarry forget`), or a whole
//! collection. Both run with SQLite's `secure_delete` on, so deleted rows are overwritten with
//! zeros in their pages instead of lingering as free space; [`Catalog::scrub`] then rewrites the
//! database (`VACUUM`) and empties the write-ahead log, so no earlier page image holds them either.

use super::eval::GoldenQuery;
use super::schema::{Catalog, parse_hash};
use super::write::WriteTx;
use crate::error::{Error, Result};
use quarry_core::ContentHash;
use rusqlite::{OptionalExtension, Transaction, params};

/// What [`Catalog::forget_document`] erased.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Forgotten {
    /// The generation that removed the document (other processes follow it like any other).
    pub generation: u64,
    /// Distinct chunks the document held.
    pub chunks: u64,
    /// Of those, chunks no other document of the collection holds: their text is gone.
    pub chunks_erased: u64,
    /// Stored vectors (every fingerprint, the embedding cache) of the erased chunks that no other
    /// collection holds either.
    pub vectors_erased: u64,
    /// Canary rows (any version) of the erased chunks.
    pub canaries_erased: u64,
    /// Eval runs whose per-query results named the document (its id is now `(forgotten)`).
    pub eval_runs_redacted: u64,
    /// Golden sets that judged the document (the judgment is removed; a query left with no
    /// judged document is removed, and a set left with no query is deleted).
    pub golden_sets_changed: u64,
    /// Every chunk the generation touched (for the derived indexes).
    #[serde(skip)]
    pub touched: Vec<ContentHash>,
    /// The erased chunks (for the vector dumps and caches).
    #[serde(skip)]
    pub erased: Vec<ContentHash>,
}

/// What [`Catalog::delete_collection`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CollectionDeleted {
    pub name: String,
    pub documents: u64,
    pub chunks: u64,
    /// Stored vectors of its chunks that no other collection holds.
    pub vectors_erased: u64,
}

/// Stands in for a forgotten document's id in recorded eval runs (so ranks keep their places).
pub(super) const FORGOTTEN_ID: &str = "(forgotten)";

/// Replaces every string equal to `id` (values and object keys) with [`FORGOTTEN_ID`]; whether
/// anything changed.
fn redact(v: &mut serde_json::Value, id: &str) -> bool {
    match v {
        serde_json::Value::String(s) if s == id => {
            *s = FORGOTTEN_ID.to_owned();
            true
        }
        serde_json::Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= redact(item, id);
            }
            changed
        }
        serde_json::Value::Object(map) => {
            let mut changed = false;
            if let Some(inner) = map.remove(id) {
                map.insert(FORGOTTEN_ID.to_owned(), inner);
                changed = true;
            }
            for (_, inner) in map.iter_mut() {
                changed |= redact(inner, id);
            }
            changed
        }
        _ => false,
    }
}

/// Deletes the stored vectors (every fingerprint) of `hashes` that no chunk of any collection
/// holds any more; returns how many rows went.
fn erase_vectors(tx: &Transaction<'_>, hashes: &[ContentHash]) -> Result<u64> {
    let collections: Vec<String> = tx
        .prepare("SELECT name FROM collections")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let fingerprints: Vec<String> = tx
        .prepare("SELECT DISTINCT fingerprint FROM embeddings")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut held =
        tx.prepare_cached("SELECT 1 FROM chunks WHERE collection = ?1 AND chunk_hash = ?2")?;
    let mut delete =
        tx.prepare_cached("DELETE FROM embeddings WHERE fingerprint = ?1 AND chunk_hash = ?2")?;
    let mut n = 0;
    'hashes: for h in hashes {
        let hex = h.to_hex();
        for c in &collections {
            if held
                .query_row(params![c, hex], |_| Ok(()))
                .optional()?
                .is_some()
            {
                continue 'hashes;
            }
        }
        for fp in &fingerprints {
            n += delete.execute(params![fp, hex])? as u64;
        }
    }
    Ok(n)
}

impl Catalog {
    /// Runs `f` with SQLite's `secure_delete` on (deleted content is overwritten with zeros),
    /// restoring the connection's setting afterwards.
    fn securely<T>(&mut self, f: impl FnOnce(&mut Catalog) -> Result<T>) -> Result<T> {
        let before: i64 = self
            .conn
            .pragma_query_value(None, "secure_delete", |r| r.get(0))?;
        self.conn.pragma_update(None, "secure_delete", 1)?;
        let out = f(self);
        let restored = self.conn.pragma_update(None, "secure_delete", before);
        let out = out?;
        restored?;
        Ok(out)
    }

    /// Removes document `doc_id` of `collection` as one generation and, in the same transaction,
    /// everything else of the catalog that held its text, vectors or id: chunks only it held,
    /// their stored vectors of every fingerprint (unless another collection holds the same
    /// chunk), their canary rows, its id in the collection's eval runs and golden sets. Sets the
    /// collection's `forgotten_generation`. `None` when there is no such document. Call
    /// [`Catalog::scrub`] afterwards.
    pub(crate) fn forget_document(
        &mut self,
        collection: &str,
        doc_id: &str,
    ) -> Result<Option<Forgotten>> {
        self.securely(|catalog| {
            let mut out = Forgotten::default();
            let mut tx = WriteTx::begin(&mut catalog.conn, collection)?;
            let mut held: Vec<ContentHash> = tx.chunk_hashes_of(doc_id)?;
            held.sort();
            held.dedup();
            if !tx.delete(doc_id)? {
                return Ok(None);
            }
            out.chunks = held.len() as u64;
            let committed = tx.commit_with(|tx, generation| {
                let mut exists = tx.prepare_cached(
                    "SELECT 1 FROM chunks WHERE collection = ?1 AND chunk_hash = ?2",
                )?;
                for h in &held {
                    if exists
                        .query_row(params![collection, h.to_hex()], |_| Ok(()))
                        .optional()?
                        .is_none()
                    {
                        out.erased.push(*h);
                    }
                }
                out.chunks_erased = out.erased.len() as u64;
                out.vectors_erased = erase_vectors(tx, &out.erased)?;
                let mut canary = tx.prepare_cached(
                    "DELETE FROM canaries WHERE collection = ?1 AND chunk_hash = ?2",
                )?;
                for h in &out.erased {
                    out.canaries_erased += canary.execute(params![collection, h.to_hex()])? as u64;
                }
                out.eval_runs_redacted = redact_eval_runs(tx, collection, doc_id)?;
                out.golden_sets_changed = drop_judgments(tx, collection, doc_id)?;
                tx.execute(
                    "UPDATE collections SET forgotten_generation = ?2 WHERE name = ?1",
                    params![collection, generation as i64],
                )?;
                Ok(())
            })?;
            let Some((generation, touched)) = committed else {
                return Ok(None);
            };
            out.generation = generation;
            out.touched = touched;
            Ok(Some(out))
        })
    }

    /// Deletes a collection and every row of it: documents, chunks, change log, embedding
    /// versions, jobs, eval runs, golden sets, canaries, holds, and the stored vectors of its
    /// chunks that no other collection holds. `None` when there is no such collection. The caller
    /// removes its folder.
    pub(crate) fn delete_collection(&mut self, name: &str) -> Result<Option<CollectionDeleted>> {
        if self.collection(name)?.is_none() {
            return Ok(None);
        }
        self.securely(|catalog| {
            let tx = catalog
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let hashes: Vec<ContentHash> = {
                let mut stmt = tx.prepare("SELECT chunk_hash FROM chunks WHERE collection = ?1")?;
                let rows = stmt.query_map([name], |r| r.get::<_, String>(0))?;
                rows.map(|h| parse_hash(&h?)).collect::<Result<_>>()?
            };
            let documents =
                tx.execute("DELETE FROM documents WHERE collection = ?1", [name])? as u64;
            for table in [
                "chunks",
                "doc_chunks",
                "changelog",
                "embedding_versions",
                "jobs",
                "eval_runs",
                "golden_sets",
                "canaries",
                "index_holds",
            ] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE collection = ?1"),
                    [name],
                )?;
            }
            let gone = tx.execute("DELETE FROM collections WHERE name = ?1", [name])?;
            if gone == 0 {
                return Ok(None);
            }
            // (after the collection's own rows are gone: only other collections count)
            let vectors_erased = erase_vectors(&tx, &hashes)?;
            tx.commit()?;
            Ok(Some(CollectionDeleted {
                name: name.to_owned(),
                documents,
                chunks: hashes.len() as u64,
                vectors_erased,
            }))
        })
    }

    /// With `vacuum`, rewrites the database without free space (`VACUUM`: no page keeps bytes of
    /// rows deleted before, even without `secure_delete`); then truncates the write-ahead log,
    /// which held earlier images of the changed pages. Returns whether the log could be emptied
    /// (another process reading an old snapshot for the whole busy timeout keeps it).
    pub(crate) fn scrub(&self, vacuum: bool) -> Result<bool> {
        if vacuum {
            self.conn.execute_batch("VACUUM")?;
        }
        for _ in 0..20 {
            let (busy, _, _): (i64, i64, i64) =
                self.conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?;
            if busy == 0 {
                return Ok(true);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(false)
    }

    /// Bytes of document text stored for the collection.
    pub(crate) fn text_bytes(&self, collection: &str) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COALESCE(sum(length(CAST(text AS BLOB))), 0) FROM documents WHERE collection = ?1",
            [collection],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }
}

/// Replaces `doc_id` in the collection's eval runs (per-query results and configuration);
/// returns how many runs changed.
fn redact_eval_runs(tx: &Transaction<'_>, collection: &str, doc_id: &str) -> Result<u64> {
    let rows: Vec<(String, String, String)> = tx
        .prepare("SELECT id, config, queries FROM eval_runs WHERE collection = ?1")?
        .query_map([collection], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let parse = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s)
            .map_err(|e| Error::Corrupt(format!("eval run: {e}")))
    };
    let mut n = 0;
    for (id, config, queries) in rows {
        let (mut config, mut queries) = (parse(&config)?, parse(&queries)?);
        let changed = redact(&mut config, doc_id) | redact(&mut queries, doc_id);
        if changed {
            tx.execute(
                "UPDATE eval_runs SET config = ?2, queries = ?3 WHERE id = ?1",
                params![id, config.to_string(), queries.to_string()],
            )?;
            n += 1;
        }
    }
    Ok(n)
}

/// Removes the judgments of `doc_id` from the collection's golden sets; returns how many sets
/// changed.
fn drop_judgments(tx: &Transaction<'_>, collection: &str, doc_id: &str) -> Result<u64> {
    let rows: Vec<(String, String)> = tx
        .prepare("SELECT name, queries FROM golden_sets WHERE collection = ?1")?
        .query_map([collection], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut n = 0;
    for (name, raw) in rows {
        let mut queries: Vec<GoldenQuery> = serde_json::from_str(&raw)
            .map_err(|e| Error::Corrupt(format!("golden set {collection}/{name}: {e}")))?;
        if !queries.iter().any(|q| q.relevant.contains_key(doc_id)) {
            continue;
        }
        for q in &mut queries {
            q.relevant.remove(doc_id);
        }
        queries.retain(|q| !q.relevant.is_empty());
        n += 1;
        if queries.is_empty() {
            tx.execute(
                "DELETE FROM golden_sets WHERE collection = ?1 AND name = ?2",
                [collection, &name],
            )?;
        } else {
            let json =
                serde_json::to_string(&queries).map_err(|e| Error::Corrupt(e.to_string()))?;
            tx.execute(
                "UPDATE golden_sets SET queries = ?3 WHERE collection = ?1 AND name = ?2",
                params![collection, name, json],
            )?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_replaces_values_and_keys_only_when_equal() {
        let mut v = serde_json::json!({
            "bm25": {"q1": {"ranked": ["a", "secret", "secret-2"], "relevant": ["secret"]}},
            "secret": 1
        });
        assert!(redact(&mut v, "secret"));
        assert_eq!(
            v,
            serde_json::json!({
                "bm25": {"q1": {"ranked": ["a", FORGOTTEN_ID, "secret-2"], "relevant": [FORGOTTEN_ID]}},
                FORGOTTEN_ID: 1
            })
        );
        assert!(!redact(&mut v, "secret"));
    }
}
