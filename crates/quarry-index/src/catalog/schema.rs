//! The catalog's SQLite store: [`Catalog`] (one connection; WAL, `synchronous = FULL`), opening
//! it (read-write with the schema migrations, or read-only), the schema version, and the helpers
//! every table's code shares (batched look-ups, parsing stored hashes and ACLs, the clock).

use crate::error::{Error, Result};
use quarry_core::ContentHash;
use rusqlite::Connection;
use std::path::Path;

pub(crate) const SCHEMA_VERSION: i64 = 6;
/// `MIGRATIONS[i]` takes a catalog from schema version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    include_str!("schema.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
    include_str!("schema_v5.sql"),
    include_str!("schema_v6.sql"),
];

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A stored ACL (a JSON array of principals).
pub(crate) fn parse_acl(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(format!("bad ACL {s:?} in catalog: {e}")))
}

pub(crate) fn parse_hash(s: &str) -> Result<ContentHash> {
    ContentHash::from_hex(s)
        .ok_or_else(|| Error::Corrupt(format!("bad content hash {s:?} in catalog")))
}

/// Chunks read per SQL statement when looking up many.
const LOOKUP_BATCH: usize = 500;

pub(crate) struct Catalog {
    pub(super) conn: Connection,
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path` and migrates it to the current schema.
    /// A damaged catalog (not a database, or failing SQLite's `quick_check`) is an
    /// [`Error::Corrupt`] that names the file and what to do; nothing is written to it.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let damaged = |detail: String| {
            Error::Corrupt(format!(
                "catalog {} is damaged ({detail}). It is the one file quarry cannot rebuild: stop \
                 every quarry process using this data directory and restore the directory from \
                 a backup (or move it away and ingest the documents again)",
                path.display()
            ))
        };
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if matches!(
                        f.code,
                        rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
                    ) =>
                {
                    damaged(e.to_string())
                }
                e => Error::Catalog(e),
            })?;
        let check: String = conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| damaged(e.to_string()))?;
        if check != "ok" {
            return Err(damaged(check));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        match version {
            0..SCHEMA_VERSION => {
                // Each step takes the schema from version i to i + 1; all steps run in one
                // transaction, so a catalog is at one version or the next, never in between.
                let steps = MIGRATIONS[version as usize..].concat();
                conn.execute_batch(&format!(
                    "BEGIN IMMEDIATE; {steps} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))?;
            }
            SCHEMA_VERSION => {}
            v => {
                return Err(Error::Corrupt(format!(
                    "catalog {} has schema version {v}; this quarry understands {SCHEMA_VERSION}. \
                     Use a newer quarry, or a fresh --data-dir",
                    path.display()
                )));
            }
        }
        Ok(Catalog { conn })
    }

    /// Opens the catalog at `path` without writing anything: for a read-only data directory or
    /// file system. The schema must be the current one; a damaged catalog is the same error as in
    /// [`Catalog::open`].
    pub(crate) fn open_read_only(path: &Path) -> Result<Self> {
        use rusqlite::OpenFlags;
        if !path.exists() {
            return Err(Error::Input(format!(
                "no catalog at {}: is --data-dir the directory `quarry ingest` wrote?",
                path.display()
            )));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let try_open = |uri: String| -> std::result::Result<(Connection, String), rusqlite::Error> {
            let conn = Connection::open_with_flags(uri, flags)?;
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            let check: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
            Ok((conn, check))
        };
        // A file: URI, its path percent-encoded where URIs give characters a meaning.
        let mut encoded = String::new();
        for ch in path.to_string_lossy().chars() {
            match ch {
                '%' | '?' | '#' => encoded.push_str(&format!("%{:02X}", ch as u32)),
                c => encoded.push(c),
            }
        }
        // No write-ahead log beside the catalog: no process has it open, and none can write
        // here, so it is read as immutable (SQLite then creates no -shm/-wal files). With a log
        // (a writer of another user has it open), SQLite's read-only WAL mode reads it.
        let wal = path.with_extension("sqlite3-wal");
        let first = if wal.exists() {
            format!("file:{encoded}?mode=ro")
        } else {
            format!("file:{encoded}?mode=ro&immutable=1")
        };
        let (conn, check) = try_open(first)
            .or_else(|_| try_open(format!("file:{encoded}?mode=ro&immutable=1")))
            .map_err(|e| {
                Error::Corrupt(format!(
                    "catalog {} could not be read ({e}); if it is damaged, restore the data \
                     directory from a backup",
                    path.display()
                ))
            })?;
        if check != "ok" {
            return Err(Error::Corrupt(format!(
                "catalog {} is damaged ({check}). Restore the data directory from a backup",
                path.display()
            )));
        }
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version != SCHEMA_VERSION {
            return Err(Error::ReadOnly(format!(
                "catalog {} has schema version {version}, this quarry reads {SCHEMA_VERSION}; \
                 it was opened read-only, so it cannot be upgraded here. Run a quarry command \
                 with write access to it once",
                path.display()
            )));
        }
        Ok(Catalog { conn })
    }

    /// Runs `read` inside one read transaction, so everything it reads comes from one state of
    /// the catalog even while another process commits.
    pub(crate) fn read_consistent<T>(&self, read: impl FnOnce(&Catalog) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        let out = read(self);
        let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
        self.conn.execute_batch(end)?;
        out
    }

    /// Runs `select` (ending in `IN (`, with one `?` before it bound to `key`) over `hashes` in
    /// batches of [`LOOKUP_BATCH`], calling `row` for every result row.
    pub(super) fn lookup(
        &self,
        select: &str,
        key: &str,
        hashes: &[ContentHash],
        mut row: impl FnMut(&rusqlite::Row<'_>) -> Result<()>,
    ) -> Result<()> {
        for batch in hashes.chunks(LOOKUP_BATCH) {
            let marks = vec!["?"; batch.len()].join(",");
            let mut stmt = self.conn.prepare_cached(&format!("{select}{marks})"))?;
            let hexes: Vec<String> = batch.iter().map(|h| h.to_hex()).collect();
            let params = std::iter::once(key.to_owned()).chain(hexes);
            let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
            while let Some(r) = rows.next()? {
                row(r)?;
            }
        }
        Ok(())
    }

    /// The connection, for tests that look at tables directly.
    #[cfg(test)]
    pub(crate) fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }
}
