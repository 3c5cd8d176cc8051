//! The catalog's SQLite store: [`Catalog`] (one connection; WAL, `synchronous = FULL`), opening
//! it (read-write with the schema migrations, or read-only), the schema version, and the helpers
//! every table's code shares (batched look-ups, parsing stored hashes and ACLs, the clock).

use crate::error::{Error, Result};
use quarry_core::ContentHash;
use rusqlite::Connection;
use std::path::Path;

pub(crate) const SCHEMA_VERSION: i64 = 11;
/// `MIGRATIONS[i]` takes a catalog from schema version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    include_str!("schema.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
    include_str!("schema_v5.sql"),
    include_str!("schema_v6.sql"),
    include_str!("schema_v7.sql"),
    include_str!("schema_v8.sql"),
    include_str!("schema_v9.sql"),
    include_str!("schema_v10.sql"),
    include_str!("schema_v11.sql"),
];

/// Fills `doc_chunks.heading_path` (schema version 7) for every Markdown document already
/// stored, from its text and its chunks' offsets: one pass over each document.
fn fill_heading_paths(conn: &Connection) -> Result<()> {
    let mut docs =
        conn.prepare("SELECT collection, doc_id, text FROM documents WHERE format = 'markdown'")?;
    let mut spans = conn.prepare(
        "SELECT ord, start, end FROM doc_chunks WHERE collection = ?1 AND doc_id = ?2 ORDER BY start, ord",
    )?;
    let mut set = conn.prepare(
        "UPDATE doc_chunks SET heading_path = ?4 WHERE collection = ?1 AND doc_id = ?2 AND ord = ?3",
    )?;
    let mut rows = docs.query([])?;
    while let Some(row) = rows.next()? {
        let (collection, doc_id, text): (String, String, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        let chunks: Vec<(i64, usize, usize)> = spans
            .query_map([&collection, &doc_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, i64>(1)? as usize,
                    r.get::<_, i64>(2)? as usize,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let bounds: Vec<(usize, usize)> = chunks.iter().map(|&(_, s, e)| (s, e)).collect();
        let paths = quarry_core::markdown::heading_paths(&text, &bounds);
        for ((ord, _, _), path) in chunks.iter().zip(paths) {
            if !path.is_empty() {
                let json = serde_json::to_string(&path).expect("strings serialise");
                set.execute(rusqlite::params![collection, doc_id, ord, json])?;
            }
        }
    }
    Ok(())
}

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

/// The error of a damaged catalog at `path`: what was found and what to do.
fn damaged(path: &Path, detail: String) -> Error {
    Error::Corrupt(format!(
        "catalog {} is damaged ({detail}). It is the one file quarry cannot rebuild: stop every \
         quarry process using this data directory and restore the directory from a backup (or \
         move it away and ingest the documents again)",
        path.display()
    ))
}

/// A SQLite error on the catalog at `path`: [`damaged`] when it says the file is not a sound
/// database, else an [`Error::Catalog`] (busy, out of memory, I/O: nothing was found).
fn damaged_or_failed(path: &Path, e: rusqlite::Error) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
            ) =>
        {
            damaged(path, e.to_string())
        }
        e => Error::Catalog(e),
    }
}

/// SQLite's `quick_check(1)` on `conn`, the catalog at `path` (an error: [`damaged_or_failed`]).
fn check(path: &Path, conn: &Connection) -> Result<()> {
    let found: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(|e| damaged_or_failed(path, e))?;
    if found != "ok" {
        return Err(damaged(path, found));
    }
    Ok(())
}

pub(crate) struct Catalog {
    pub(super) conn: Connection,
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path` and migrates it to the current schema.
    /// A damaged catalog (not a database, or failing SQLite's `quick_check`) is an
    /// [`Error::Corrupt`] that names the file and what to do; nothing is written to it.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        Ok(Self::open_checking(path, true)?.0)
    }

    /// [`Catalog::open`] without `quick_check` when the schema is the current one (a catalog
    /// that needs a migration is checked first all the same, since migrating writes), and
    /// whether it was checked: if not, the caller runs [`Catalog::quick_check`] itself, and
    /// writes and answers nothing before it passes. `quick_check` reads every page, seconds for
    /// a catalog of gigabytes, which a server runs beside opening its indexes instead of before.
    pub(crate) fn open_unchecked(path: &Path) -> Result<(Self, bool)> {
        Self::open_checking(path, false)
    }

    /// SQLite's `quick_check` of the catalog at `path` on a connection of its own (read-only, so
    /// it runs beside the engine's connection): `Ok` when it finds nothing, else the
    /// [`Error::Corrupt`] of a damaged catalog.
    pub(crate) fn quick_check(path: &Path) -> Result<()> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        check(path, &conn)
    }

    fn open_checking(path: &Path, checked: bool) -> Result<(Self, bool)> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| damaged_or_failed(path, e))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let checked = checked || version != SCHEMA_VERSION;
        if checked {
            check(path, &conn)?;
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        match version {
            0..SCHEMA_VERSION => {
                // Each step takes the schema from version i to i + 1; all steps run in one
                // transaction, so a catalog is at one version or the next, never in between.
                let steps = MIGRATIONS[version as usize..].concat();
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                tx.execute_batch(&steps)?;
                if (1..7).contains(&version) {
                    fill_heading_paths(&tx)?;
                }
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tx.commit()?;
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
        Ok((Catalog { conn }, checked))
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

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_core::{ChunkOptions, ChunkSizer, Chunker, DocFormat};

    /// A collection of a catalog from before BM25 settings (schema 9) keeps the scoring it had
    /// when opened by this quarry; a collection created now gets the defaults.
    #[test]
    fn a_collection_from_before_bm25_settings_keeps_its_scoring() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite3");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "{} PRAGMA user_version = 9;",
                MIGRATIONS[..9].concat()
            ))
            .unwrap();
            conn.execute(
                r#"INSERT INTO collections (name, generation, chunk_options, created_at)
                   VALUES ('old', 1, '{"max_tokens": 4, "overlap": 0, "sizer": "chars"}', 0)"#,
                [],
            )
            .unwrap();
        }
        let catalog = Catalog::open(&path).unwrap();
        let old = catalog.collection("old").unwrap().unwrap().bm25;
        assert_eq!((old.k1, old.b, old.k3), (1.2, 0.75, 0.0));
        assert_ne!(old, quarry_core::bm25::Bm25Params::default());
    }

    /// A schema-6 catalog (no heading paths) with Markdown documents gets, on open, the heading
    /// path of every chunk occurrence that the chunker gives the same chunks today.
    #[test]
    fn migration_to_7_fills_the_heading_paths_of_markdown_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite3");
        let chunker = Chunker::new(
            ChunkOptions {
                max_tokens: 4,
                overlap: 0,
                sizer: ChunkSizer::Chars,
                context_chars: 0,
            },
            None,
        )
        .unwrap();
        let md = "# Guide\n\nintro words\n\n## Install\n\n```\n# not one\n```\n\n### Linux\n\nkettles\n\n## Use\n\nthunder";
        let docs = [
            ("a.md", md, DocFormat::Markdown),
            ("b.txt", md, DocFormat::Text),
        ];
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "{} PRAGMA user_version = 6;",
                MIGRATIONS[..6].concat()
            ))
            .unwrap();
            conn.execute(
                r#"INSERT INTO collections (name, generation, chunk_options, created_at)
                   VALUES ('c', 1, '{"max_tokens": 4, "overlap": 0, "sizer": "chars"}', 0)"#,
                [],
            )
            .unwrap();
            for (id, text, format) in docs {
                conn.execute(
                    "INSERT INTO documents (collection, doc_id, title, text, source, format, content_hash, metadata, acl, generation, updated_at)
                     VALUES ('c', ?1, '', ?2, ?1, ?3, '00', '{}', '[]', 1, 0)",
                    rusqlite::params![id, text, format.as_str()],
                )
                .unwrap();
                for c in chunker.chunk("", text, format) {
                    conn.execute(
                        "INSERT INTO doc_chunks (collection, doc_id, ord, chunk_hash, start, end)
                         VALUES ('c', ?1, ?2, ?3, ?4, ?5)",
                        rusqlite::params![id, c.ord, c.hash.to_hex(), c.start as i64, c.end as i64],
                    )
                    .unwrap();
                }
            }
        }
        let catalog = Catalog::open(&path).unwrap();
        for (id, text, format) in docs {
            let want: Vec<Vec<String>> = chunker
                .chunk("", text, format)
                .into_iter()
                .map(|c| c.heading_path)
                .collect();
            let mut stmt = catalog
                .conn
                .prepare("SELECT heading_path FROM doc_chunks WHERE doc_id = ?1 ORDER BY ord")
                .unwrap();
            let got: Vec<Vec<String>> = stmt
                .query_map([id], |r| r.get::<_, String>(0))
                .unwrap()
                .map(|s| serde_json::from_str(&s.unwrap()).unwrap())
                .collect();
            assert_eq!(got, want, "{id}");
        }
        // schema 9's page column: no page for the chunks stored before it
        let pages: Vec<Option<u32>> = catalog
            .conn
            .prepare("SELECT page FROM doc_chunks")
            .unwrap()
            .query_map([], |r| r.get::<_, Option<u32>>(0))
            .unwrap()
            .map(|p| p.unwrap())
            .collect();
        assert!(!pages.is_empty() && pages.iter().all(Option::is_none));
        let want_md: Vec<Vec<String>> = chunker
            .chunk("", md, DocFormat::Markdown)
            .into_iter()
            .map(|c| c.heading_path)
            .collect();
        assert!(want_md.contains(&vec![
            "Guide".to_owned(),
            "Install".to_owned(),
            "Linux".to_owned()
        ]));
        assert!(want_md.contains(&vec!["Guide".to_owned(), "Use".to_owned()]));
    }
}
