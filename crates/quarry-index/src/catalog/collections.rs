//! Collections (their row: generation, chunk options, active version), the change log of their
//! generations that derived indexes replay, and the holds that keep that log from being pruned
//! while a reader still needs it.

use super::schema::{Catalog, now, parse_hash};
use crate::error::{Error, Result};
use quarry_core::{Bm25Params, ChunkOptions, ContentHash};
use rusqlite::{OptionalExtension, params};

/// A hold on the change log not renewed for this long is ignored (its process is gone).
pub const HOLD_TTL_SECS: i64 = 600;

/// A collection as the catalog stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionRow {
    pub name: String,
    pub generation: u64,
    pub chunk_options: ChunkOptions,
    /// How BM25 scores its chunks (see `schema_v10.sql`: a collection created before keeps
    /// tantivy's 1.2 and 0.75, each query term counted once).
    pub bm25: Bm25Params,
    pub active_version: Option<String>,
    pub created_at: i64,
    /// The last generation that forgot a document (0: none); see `schema_v6.sql`.
    pub forgotten_generation: u64,
    /// Unique to this collection among every collection of this name there was.
    pub incarnation: String,
    /// The folder (under `vectors/`) of the active version's index: its id, or the folder a
    /// requantize built (see `schema_v8.sql`). Cached indexes of another folder are stale.
    pub active_index: Option<String>,
}

/// Whether a name is acceptable for a collection: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn check_collection_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "invalid collection name {name:?}: use 1 to 64 letters, digits, `_` or `-`"
        )))
    }
}

impl Catalog {
    /// The collection, created with `chunk_options` and `bm25` if it does not exist yet.
    pub(crate) fn ensure_collection(
        &self,
        name: &str,
        chunk_options: &ChunkOptions,
        bm25: &Bm25Params,
    ) -> Result<CollectionRow> {
        check_collection_name(name)?;
        let options =
            serde_json::to_string(chunk_options).map_err(|e| Error::Corrupt(e.to_string()))?;
        let bm25 = serde_json::to_string(bm25).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.conn.execute(
            "INSERT OR IGNORE INTO collections (name, created_at, generation, chunk_options, incarnation, bm25_params)
             VALUES (?1, ?2, 0, ?3, ?4, ?5)",
            params![
                name,
                now(),
                options,
                format!(
                    "{}-{}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos())
                ),
                bm25
            ],
        )?;
        self.collection(name)?
            .ok_or_else(|| Error::Corrupt(format!("collection {name} vanished")))
    }

    /// Sets the BM25 parameters of collection `name`; false when there is none.
    pub(crate) fn set_bm25(&self, name: &str, params: &Bm25Params) -> Result<bool> {
        let json = serde_json::to_string(params)
            .map_err(|e| Error::Corrupt(format!("BM25 parameters: {e}")))?;
        let n = self.conn.execute(
            "UPDATE collections SET bm25_params = ?2 WHERE name = ?1",
            rusqlite::params![name, json],
        )?;
        Ok(n > 0)
    }

    pub(crate) fn collection(&self, name: &str) -> Result<Option<CollectionRow>> {
        // read at every request: the statement is prepared once per connection
        let row = self
            .conn
            .prepare_cached(
                "SELECT name, generation, chunk_options, active_version, created_at, forgotten_generation,
                 incarnation, bm25_params,
                 (SELECT COALESCE(v.index_folder, v.id) FROM embedding_versions v
                  WHERE v.collection = c.name AND v.id = c.active_version)
                 FROM collections c WHERE name = ?1",
            )?
            .query_row([name], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get::<_, String>(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, Option<String>>(8)?,
                    ))
            })
            .optional()?;
        row.map(
            |(
                name,
                generation,
                options,
                active_version,
                created_at,
                forgotten,
                incarnation,
                bm25,
                active_index,
            ): (
                String,
                i64,
                String,
                _,
                _,
                i64,
                String,
                Option<String>,
                Option<String>,
            )| {
                let chunk_options = serde_json::from_str(&options)
                    .map_err(|e| Error::Corrupt(format!("chunk options of {name}: {e}")))?;
                let bm25 = match bm25 {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|e| Error::Corrupt(format!("BM25 parameters of {name}: {e}")))?,
                    None => Bm25Params::default(),
                };
                Ok(CollectionRow {
                    name,
                    generation: generation as u64,
                    chunk_options,
                    bm25,
                    active_version,
                    created_at,
                    forgotten_generation: forgotten as u64,
                    incarnation,
                    active_index,
                })
            },
        )
        .transpose()
    }

    pub(crate) fn collections(&self) -> Result<Vec<CollectionRow>> {
        let names: Vec<String> = self
            .conn
            .prepare("SELECT name FROM collections ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        names
            .iter()
            .filter_map(|n| self.collection(n).transpose())
            .collect()
    }

    /// `(documents, distinct chunks)` of a collection.
    pub(crate) fn counts(&self, collection: &str) -> Result<(u64, u64)> {
        let docs: i64 = self.conn.query_row(
            "SELECT count(*) FROM documents WHERE collection = ?1",
            [collection],
            |r| r.get(0),
        )?;
        let chunks: i64 = self.conn.query_row(
            "SELECT count(*) FROM chunks WHERE collection = ?1",
            [collection],
            |r| r.get(0),
        )?;
        Ok((docs as u64, chunks as u64))
    }

    /// Chunks touched by generations after `after`, or `None` if the log no longer reaches back
    /// that far (then a derived index must be rebuilt in full).
    #[cfg(test)] // only tests ask this of the log; readers use `changed_between`
    pub(crate) fn changed_since(
        &self,
        collection: &str,
        after: u64,
    ) -> Result<Option<Vec<ContentHash>>> {
        let current = self.collection(collection)?.map_or(0, |c| c.generation);
        self.changed_between(collection, after, current)
    }

    /// Chunks touched by the generations `after + 1 ..= upto`, or `None` if the log no longer
    /// reaches back to `after + 1`.
    pub(crate) fn changed_between(
        &self,
        collection: &str,
        after: u64,
        upto: u64,
    ) -> Result<Option<Vec<ContentHash>>> {
        if after >= upto {
            return Ok(Some(Vec::new()));
        }
        let oldest: Option<i64> = self.conn.query_row(
            "SELECT min(generation) FROM changelog WHERE collection = ?1",
            [collection],
            |r| r.get(0),
        )?;
        match oldest {
            Some(oldest) if oldest as u64 <= after + 1 => {}
            _ => return Ok(None),
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT chunk_hash FROM changelog
             WHERE collection = ?1 AND generation > ?2 AND generation <= ?3",
        )?;
        let rows = stmt.query_map(params![collection, after as i64, upto as i64], |r| {
            r.get::<_, String>(0)
        })?;
        Ok(Some(rows.map(|h| parse_hash(&h?)).collect::<Result<_>>()?))
    }

    /// Forgets the change log before `generation`, once every derived index has committed it. The
    /// log of `generation` itself is kept so the log always reaches the last generation.
    pub(crate) fn prune_changelog(&self, collection: &str, generation: u64) -> Result<()> {
        self.conn.execute(
            "DELETE FROM changelog WHERE collection = ?1 AND generation < ?2",
            params![collection, generation as i64],
        )?;
        Ok(())
    }

    /// Records that `holder` needs the change log of `collection` from `generation` on (see
    /// `schema_v5.sql`), and returns the lowest generation any live holder needs.
    pub(crate) fn hold(&self, collection: &str, holder: &str, generation: u64) -> Result<u64> {
        let now = now();
        self.conn
            .prepare_cached(
                "INSERT INTO index_holds (collection, holder, generation, seen_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (collection, holder) DO UPDATE SET generation = ?3, seen_at = ?4",
            )?
            .execute(params![collection, holder, generation as i64, now])?;
        self.conn
            .prepare_cached("DELETE FROM index_holds WHERE seen_at < ?1")?
            .execute([now - HOLD_TTL_SECS])?;
        let oldest: i64 = self.conn.query_row(
            "SELECT min(generation) FROM index_holds WHERE collection = ?1",
            [collection],
            |r| r.get(0),
        )?;
        Ok(oldest as u64)
    }

    /// The lowest generation a live holder of `collection` needs, if any holds it.
    pub(crate) fn oldest_hold(&self, collection: &str) -> Result<Option<u64>> {
        let oldest: Option<i64> = self.conn.query_row(
            "SELECT min(generation) FROM index_holds WHERE collection = ?1 AND seen_at >= ?2",
            params![collection, now() - HOLD_TTL_SECS],
            |r| r.get(0),
        )?;
        Ok(oldest.map(|g| g as u64))
    }

    /// Drops every hold of `holder` (its engine is closing).
    pub(crate) fn release_holds(&self, holder: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM index_holds WHERE holder = ?1", [holder])?;
        Ok(())
    }
}
