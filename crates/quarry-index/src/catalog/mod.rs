//! The catalog: SQLite (WAL, `synchronous = FULL`) holding collections, documents, content-addressed
//! chunks, per-generation change logs, and the tables later features fill in (embedding versions,
//! jobs, eval runs).
//!
//! One write transaction is one generation: [`Catalog::begin`] opens it, [`WriteTx::commit`] bumps
//! the collection's generation and records every chunk it touched, so derived indexes can replay it.

mod write;

mod eval;
mod forget;
mod job_data;
mod jobs;
mod states;

pub use eval::{EvalRun, EvalRunSummary, GoldenQuery, GoldenSummary};
pub use forget::{CollectionDeleted, Forgotten};
pub use job_data::{
    GateMode, GateReport, GateSet, JobParams, JobResult, RechunkResult, ReindexResult,
};
pub use jobs::Job;
pub use states::{JobKind, JobState, VersionState};
pub use write::{UpsertOutcome, WriteTx};

use crate::error::{Error, Result};
use quarry_core::{ChunkOptions, ContentHash, EmbedderSpec, Fingerprint};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::Path;

const SCHEMA_VERSION: i64 = 6;
/// `MIGRATIONS[i]` takes a catalog from schema version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    include_str!("schema.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
    include_str!("schema_v5.sql"),
    include_str!("schema_v6.sql"),
];

/// A hold on the change log not renewed for this long is ignored (its process is gone).
pub const HOLD_TTL_SECS: i64 = 600;

/// A collection as the catalog stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionRow {
    pub name: String,
    pub generation: u64,
    pub chunk_options: ChunkOptions,
    pub active_version: Option<String>,
    pub created_at: i64,
    /// The last generation that forgot a document (0: none); see `schema_v6.sql`.
    pub forgotten_generation: u64,
    /// Unique to this collection among every collection of this name there was.
    pub incarnation: String,
}

/// Where a chunk occurs: enough to render a hit without touching the catalog at query time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Occurrence {
    pub doc_id: String,
    pub title: String,
    pub source: String,
    pub start: usize,
    pub end: usize,
    /// The document's ACL (empty: the default ACL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acl: Vec<String>,
}

/// What ingest compares to decide whether a document changed: its content hash and its ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocState {
    pub content_hash: ContentHash,
    pub acl: Vec<String>,
}

/// A stored document as the documents API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DocumentRow {
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub source: String,
    pub format: String,
    pub content_hash: String,
    pub metadata: serde_json::Value,
    pub acl: Vec<String>,
    pub chunks: u64,
    pub generation: u64,
    pub updated_at: i64,
}

/// A chunk with every place it occurs, as the BM25 index stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRecord {
    pub hash: ContentHash,
    pub text: String,
    pub occurrences: Vec<Occurrence>,
    /// The surrounding text BM25 indexes with the chunk ([`quarry_core::context_window`]), one
    /// per occurrence up to [`MAX_CONTEXTS`]. Not stored in the index: empty when read back.
    pub context: Vec<String>,
}

/// Most occurrences of one chunk whose context BM25 indexes (a boilerplate chunk held by
/// thousands of documents stays one small index entry).
pub const MAX_CONTEXTS: usize = 8;

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

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The columns [`document_row`] reads; `?1` is the collection, `?2` whether to read the text.
const DOCUMENT_SELECT: &str = "SELECT d.doc_id, d.title, CASE WHEN ?2 THEN d.text END, d.source, d.format,
        d.content_hash, d.metadata, d.acl, d.generation, d.updated_at,
        (SELECT count(*) FROM doc_chunks c WHERE c.collection = d.collection AND c.doc_id = d.doc_id)
    FROM documents d WHERE d.collection = ?1";

fn document_row(r: &rusqlite::Row<'_>) -> Result<DocumentRow> {
    let metadata: String = r.get(6)?;
    Ok(DocumentRow {
        id: r.get(0)?,
        title: r.get(1)?,
        text: r.get(2)?,
        source: r.get(3)?,
        format: r.get(4)?,
        content_hash: r.get(5)?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| Error::Corrupt(format!("document metadata: {e}")))?,
        acl: parse_acl(&r.get::<_, String>(7)?)?,
        generation: r.get::<_, i64>(8)? as u64,
        updated_at: r.get(9)?,
        chunks: r.get::<_, i64>(10)? as u64,
    })
}

/// A stored ACL (a JSON array of principals).
pub(crate) fn parse_acl(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(format!("bad ACL {s:?} in catalog: {e}")))
}

pub(crate) fn parse_hash(s: &str) -> Result<ContentHash> {
    ContentHash::from_hex(s)
        .ok_or_else(|| Error::Corrupt(format!("bad content hash {s:?} in catalog")))
}

/// An embedding version of a collection: which embedder (by config name and spec) made its vectors.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VersionRow {
    pub id: String,
    pub collection: String,
    pub embedder: String,
    pub fingerprint: Fingerprint,
    pub spec: EmbedderSpec,
    pub state: VersionState,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    /// Higher for a version made active more recently (0: never active since schema 4).
    pub activation_seq: i64,
}

/// Version ids: the embedder's name and the first 12 hex digits of its fingerprint.
pub fn version_id(embedder: &str, fingerprint: &Fingerprint) -> String {
    format!("{embedder}-{}", fingerprint.short())
}

/// Chunks read per SQL statement when looking up many.
const LOOKUP_BATCH: usize = 500;

/// Stores vectors of `fingerprint` in `tx`, replacing any stored for the same chunk.
fn insert_vectors(
    tx: &rusqlite::Transaction<'_>,
    fingerprint: &Fingerprint,
    vectors: &[(ContentHash, Vec<f32>)],
) -> Result<()> {
    let fp = fingerprint.to_hex();
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO embeddings (fingerprint, chunk_hash, vector) VALUES (?1, ?2, ?3)",
    )?;
    for (h, v) in vectors {
        stmt.execute(params![fp, h.to_hex(), encode_vector(v)])?;
    }
    Ok(())
}

fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_vector(b: &[u8]) -> Result<Vec<f32>> {
    if !b.len().is_multiple_of(4) {
        return Err(Error::Corrupt(format!(
            "stored vector of {} bytes is not a list of f32",
            b.len()
        )));
    }
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

pub struct Catalog {
    conn: Connection,
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path` and migrates it to the current schema.
    /// A damaged catalog (not a database, or failing SQLite's `quick_check`) is an
    /// [`Error::Corrupt`] that names the file and what to do; nothing is written to it.
    pub fn open(path: &Path) -> Result<Self> {
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
    pub fn open_read_only(path: &Path) -> Result<Self> {
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

    /// The collection, created with `chunk_options` if it does not exist yet.
    pub fn ensure_collection(
        &self,
        name: &str,
        chunk_options: &ChunkOptions,
    ) -> Result<CollectionRow> {
        check_collection_name(name)?;
        let options =
            serde_json::to_string(chunk_options).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.conn.execute(
            "INSERT OR IGNORE INTO collections (name, created_at, generation, chunk_options, incarnation)
             VALUES (?1, ?2, 0, ?3, ?4)",
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
                )
            ],
        )?;
        self.collection(name)?
            .ok_or_else(|| Error::Corrupt(format!("collection {name} vanished")))
    }

    pub fn collection(&self, name: &str) -> Result<Option<CollectionRow>> {
        let row = self
            .conn
            .query_row(
                "SELECT name, generation, chunk_options, active_version, created_at, forgotten_generation,
                 incarnation FROM collections WHERE name = ?1",
                [name],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get::<_, String>(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                },
            )
            .optional()?;
        row.map(
            |(name, generation, options, active_version, created_at, forgotten, incarnation): (
                String,
                i64,
                String,
                _,
                _,
                i64,
                String,
            )| {
                let chunk_options = serde_json::from_str(&options)
                    .map_err(|e| Error::Corrupt(format!("chunk options of {name}: {e}")))?;
                Ok(CollectionRow {
                    name,
                    generation: generation as u64,
                    chunk_options,
                    active_version,
                    created_at,
                    forgotten_generation: forgotten as u64,
                    incarnation,
                })
            },
        )
        .transpose()
    }

    pub fn collections(&self) -> Result<Vec<CollectionRow>> {
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
    pub fn counts(&self, collection: &str) -> Result<(u64, u64)> {
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

    /// Content hash and ACL of every document of the collection, by doc id.
    pub fn doc_states(&self, collection: &str) -> Result<HashMap<String, DocState>> {
        let mut stmt = self
            .conn
            .prepare("SELECT doc_id, content_hash, acl FROM documents WHERE collection = ?1")?;
        let rows = stmt.query_map([collection], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        rows.map(|r| {
            let (id, h, acl) = r?;
            Ok((
                id,
                DocState {
                    content_hash: parse_hash(&h)?,
                    acl: parse_acl(&acl)?,
                },
            ))
        })
        .collect()
    }

    /// Documents of the collection in doc id order, after `after`, at most `limit`; with their
    /// text when `with_text`. `visible` decides, from a document's ACL, whether it is listed.
    pub fn documents(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
        with_text: bool,
        visible: &dyn Fn(&[String]) -> bool,
    ) -> Result<Vec<DocumentRow>> {
        let sql = format!("{DOCUMENT_SELECT} AND d.doc_id > ?3 ORDER BY d.doc_id");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![collection, with_text, after.unwrap_or("")])?;
        let mut out = Vec::new();
        while out.len() < limit
            && let Some(r) = rows.next()?
        {
            let doc = document_row(r)?;
            if visible(&doc.acl) {
                out.push(doc);
            }
        }
        Ok(out)
    }

    /// One document, with its text.
    pub fn document(&self, collection: &str, doc_id: &str) -> Result<Option<DocumentRow>> {
        let sql = format!("{DOCUMENT_SELECT} AND d.doc_id = ?3");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![collection, true, doc_id])?;
        rows.next()?.map(document_row).transpose()
    }

    /// Documents and distinct chunks of the collection that `visible` admits (by document ACL).
    pub fn visible_counts(
        &self,
        collection: &str,
        visible: &dyn Fn(&[String]) -> bool,
    ) -> Result<(u64, u64)> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT acl, count(*) FROM documents WHERE collection = ?1 GROUP BY acl",
        )?;
        let mut allowed = Vec::new();
        let mut docs = 0u64;
        let mut rows = stmt.query([collection])?;
        while let Some(r) = rows.next()? {
            let raw: String = r.get(0)?;
            if visible(&parse_acl(&raw)?) {
                docs += r.get::<_, i64>(1)? as u64;
                allowed.push(raw);
            }
        }
        drop(rows);
        let allowed = serde_json::to_string(&allowed).map_err(|e| Error::Corrupt(e.to_string()))?;
        let chunks: i64 = self.conn.query_row(
            "SELECT count(DISTINCT c.chunk_hash) FROM doc_chunks c
             JOIN documents d ON d.collection = c.collection AND d.doc_id = c.doc_id
             WHERE c.collection = ?1 AND d.acl IN (SELECT value FROM json_each(?2))",
            params![collection, allowed],
            |r| r.get(0),
        )?;
        Ok((docs, chunks as u64))
    }

    /// Per collection (by name), how many documents have no ACL of their own and so follow the
    /// default ACL; collections without such documents are left out. One pass over the
    /// documents.
    pub fn documents_without_acl(&self) -> Result<Vec<(String, u64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT collection, count(*) FROM documents WHERE json_array_length(acl) = 0
             GROUP BY collection ORDER BY collection",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| {
            let (name, n) = r?;
            Ok((name, n as u64))
        })
        .collect()
    }

    /// `(doc_id, title, text, format)` of every document of the collection, for a re-chunk.
    pub fn chunkable_documents(
        &self,
        collection: &str,
    ) -> Result<Vec<(String, String, String, quarry_core::DocFormat)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT doc_id, title, text, format FROM documents WHERE collection = ?1 ORDER BY doc_id",
        )?;
        let rows = stmt.query_map([collection], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        rows.map(|r| {
            let (id, title, text, format) = r?;
            let format = quarry_core::DocFormat::parse(&format).ok_or_else(|| {
                Error::Corrupt(format!("document {id}: unknown format {format:?}"))
            })?;
            Ok((id, title, text, format))
        })
        .collect()
    }

    /// Doc ids and sources of every document of the collection (for `--sync`).
    pub fn doc_sources(&self, collection: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT doc_id, source FROM documents WHERE collection = ?1")?;
        let rows = stmt.query_map([collection], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The chunk, its occurrences and the context of each (`context_chars` on each side, see
    /// [`quarry_core::context_window`]), or `None` when no document holds it any more.
    pub fn chunk_record(
        &self,
        collection: &str,
        hash: &ContentHash,
        context_chars: usize,
    ) -> Result<Option<ChunkRecord>> {
        let hex = hash.to_hex();
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT text FROM chunks WHERE collection = ?1 AND chunk_hash = ?2",
                [collection, &hex],
                |r| r.get(0),
            )
            .optional()?;
        let Some(text) = text else { return Ok(None) };
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.doc_id, d.title, d.source, c.start, c.end, d.acl FROM doc_chunks c
             JOIN documents d ON d.collection = c.collection AND d.doc_id = c.doc_id
             WHERE c.collection = ?1 AND c.chunk_hash = ?2 ORDER BY d.doc_id, c.ord",
        )?;
        let occurrences = stmt
            .query_map([collection, &hex], |r| {
                let occ = Occurrence {
                    doc_id: r.get(0)?,
                    title: r.get(1)?,
                    source: r.get(2)?,
                    start: r.get::<_, i64>(3)? as usize,
                    end: r.get::<_, i64>(4)? as usize,
                    acl: Vec::new(),
                };
                Ok((occ, r.get::<_, String>(5)?))
            })?
            .map(|row| {
                let (mut occ, acl) = row?;
                occ.acl = parse_acl(&acl)?;
                Ok(occ)
            })
            .collect::<Result<Vec<_>>>()?;
        if occurrences.is_empty() {
            return Ok(None);
        }
        // The context of an occurrence is text of its document. A chunk is one BM25 entry that
        // any reader of one of its documents may match, so contexts are indexed only when every
        // occurrence has the same ACL: otherwise a reader of one document could find the chunk
        // by words around it in another.
        let same_acl = occurrences.windows(2).all(|w| w[0].acl == w[1].acl);
        let mut context = Vec::new();
        if same_acl {
            for occ in occurrences.iter().take(MAX_CONTEXTS) {
                let window = self.context_of(collection, occ, context_chars)?;
                // a span that is not one of the document (never written so) keeps its text
                context.push(window.unwrap_or_else(|| text.clone()));
            }
        } else {
            context.push(text.clone());
        }
        Ok(Some(ChunkRecord {
            hash: *hash,
            text,
            occurrences,
            context,
        }))
    }

    /// The context of `occ` ([`quarry_core::context_window`]), reading only the bytes of the
    /// document it can reach (4 bytes a character at most), not the whole text. `None` when the
    /// span is not one of the document.
    fn context_of(
        &self,
        collection: &str,
        occ: &Occurrence,
        context_chars: usize,
    ) -> Result<Option<String>> {
        let reach = context_chars.saturating_mul(4);
        let from = occ.start.saturating_sub(reach);
        let len = occ.end.saturating_add(reach).saturating_sub(from);
        let bytes: Option<Vec<u8>> = self
            .conn
            .prepare_cached(
                "SELECT substr(CAST(text AS BLOB), ?3, ?4) FROM documents
                 WHERE collection = ?1 AND doc_id = ?2",
            )?
            .query_row(
                rusqlite::params![collection, occ.doc_id, from as i64 + 1, len as i64],
                |r| r.get(0),
            )
            .optional()?;
        let Some(bytes) = bytes else { return Ok(None) };
        // cut to whole characters: skip a partial one at the front, stop before one at the end
        let skip = bytes.iter().take_while(|b| (**b & 0xC0) == 0x80).count();
        let valid = match std::str::from_utf8(&bytes[skip..]) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&bytes[skip..skip + e.valid_up_to()]).unwrap_or_default(),
        };
        let (Some(start), Some(end)) = (
            occ.start.checked_sub(from + skip),
            occ.end.checked_sub(from + skip),
        ) else {
            return Ok(None);
        };
        let window = quarry_core::context_window(valid, start, end, context_chars);
        Ok((!window.is_empty() || start == end).then(|| window.to_owned()))
    }

    /// Every chunk hash of the collection (for a full rebuild of a derived index).
    pub fn all_chunk_hashes(&self, collection: &str) -> Result<Vec<ContentHash>> {
        let mut stmt = self
            .conn
            .prepare("SELECT chunk_hash FROM chunks WHERE collection = ?1")?;
        let rows = stmt.query_map([collection], |r| r.get::<_, String>(0))?;
        rows.map(|h| parse_hash(&h?)).collect()
    }

    /// Chunks touched by generations after `after`, or `None` if the log no longer reaches back
    /// that far (then a derived index must be rebuilt in full).
    pub fn changed_since(&self, collection: &str, after: u64) -> Result<Option<Vec<ContentHash>>> {
        let current = self.collection(collection)?.map_or(0, |c| c.generation);
        self.changed_between(collection, after, current)
    }

    /// Chunks touched by the generations `after + 1 ..= upto`, or `None` if the log no longer
    /// reaches back to `after + 1`.
    pub fn changed_between(
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
    pub fn prune_changelog(&self, collection: &str, generation: u64) -> Result<()> {
        self.conn.execute(
            "DELETE FROM changelog WHERE collection = ?1 AND generation < ?2",
            params![collection, generation as i64],
        )?;
        Ok(())
    }

    /// Records that `holder` needs the change log of `collection` from `generation` on (see
    /// `schema_v5.sql`), and returns the lowest generation any live holder needs.
    pub fn hold(&self, collection: &str, holder: &str, generation: u64) -> Result<u64> {
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
    pub fn oldest_hold(&self, collection: &str) -> Result<Option<u64>> {
        let oldest: Option<i64> = self.conn.query_row(
            "SELECT min(generation) FROM index_holds WHERE collection = ?1 AND seen_at >= ?2",
            params![collection, now() - HOLD_TTL_SECS],
            |r| r.get(0),
        )?;
        Ok(oldest.map(|g| g as u64))
    }

    /// Drops every hold of `holder` (its engine is closing).
    pub fn release_holds(&self, holder: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM index_holds WHERE holder = ?1", [holder])?;
        Ok(())
    }

    /// Runs `read` inside one read transaction, so everything it reads comes from one state of
    /// the catalog even while another process commits.
    pub fn read_consistent<T>(&self, read: impl FnOnce(&Catalog) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        let out = read(self);
        let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
        self.conn.execute_batch(end)?;
        out
    }

    /// Chunks of the collection that have a stored vector of `fingerprint`.
    pub fn count_vectors(&self, collection: &str, fingerprint: &Fingerprint) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM chunks c JOIN embeddings e
             ON e.fingerprint = ?2 AND e.chunk_hash = c.chunk_hash WHERE c.collection = ?1",
            params![collection, fingerprint.to_hex()],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Runs `select` (ending in `IN (`, with one `?` before it bound to `key`) over `hashes` in
    /// batches of [`LOOKUP_BATCH`], calling `row` for every result row.
    fn lookup(
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

    /// Stored vectors of `fingerprint` for those of `hashes` that have one.
    pub fn vectors(
        &self,
        fingerprint: &Fingerprint,
        hashes: &[ContentHash],
    ) -> Result<HashMap<ContentHash, Vec<f32>>> {
        let mut out = HashMap::with_capacity(hashes.len());
        self.lookup(
            "SELECT chunk_hash, vector FROM embeddings WHERE fingerprint = ? AND chunk_hash IN (",
            &fingerprint.to_hex(),
            hashes,
            |r| {
                let h: String = r.get(0)?;
                let b: Vec<u8> = r.get(1)?;
                out.insert(parse_hash(&h)?, decode_vector(&b)?);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Which of `hashes` have a stored vector of `fingerprint`.
    pub fn have_vectors(
        &self,
        fingerprint: &Fingerprint,
        hashes: &[ContentHash],
    ) -> Result<std::collections::HashSet<ContentHash>> {
        let mut out = std::collections::HashSet::with_capacity(hashes.len());
        self.lookup(
            "SELECT chunk_hash FROM embeddings WHERE fingerprint = ? AND chunk_hash IN (",
            &fingerprint.to_hex(),
            hashes,
            |r| {
                out.insert(parse_hash(&r.get::<_, String>(0)?)?);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Stores vectors of `fingerprint` (replacing any stored for the same chunk), in one
    /// transaction.
    pub fn put_vectors(
        &mut self,
        fingerprint: &Fingerprint,
        vectors: &[(ContentHash, Vec<f32>)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        insert_vectors(&tx, fingerprint, vectors)?;
        tx.commit()?;
        Ok(())
    }

    /// Those of `hashes` that are chunks of the collection now.
    pub fn existing_chunks(
        &self,
        collection: &str,
        hashes: &[ContentHash],
    ) -> Result<std::collections::HashSet<ContentHash>> {
        let mut out = std::collections::HashSet::with_capacity(hashes.len());
        self.lookup(
            "SELECT chunk_hash FROM chunks WHERE collection = ? AND chunk_hash IN (",
            collection,
            hashes,
            |r| {
                out.insert(parse_hash(&r.get::<_, String>(0)?)?);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Chunk hashes of a document of the collection, in order.
    pub fn doc_chunk_hashes(&self, collection: &str, doc_id: &str) -> Result<Vec<ContentHash>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT chunk_hash FROM doc_chunks WHERE collection = ?1 AND doc_id = ?2 ORDER BY ord",
        )?;
        let rows = stmt.query_map([collection, doc_id], |r| r.get::<_, String>(0))?;
        rows.map(|h| parse_hash(&h?)).collect()
    }

    /// The active embedding version of a collection, if it has one.
    pub fn active_version(&self, collection: &str) -> Result<Option<VersionRow>> {
        let Some(id) = self.collection(collection)?.and_then(|c| c.active_version) else {
            return Ok(None);
        };
        self.version(collection, &id)
    }

    pub fn version(&self, collection: &str, id: &str) -> Result<Option<VersionRow>> {
        Ok(self
            .versions_where(collection, Some(id))?
            .into_iter()
            .next())
    }

    /// Every embedding version of a collection, oldest first.
    pub fn versions(&self, collection: &str) -> Result<Vec<VersionRow>> {
        self.versions_where(collection, None)
    }

    fn versions_where(&self, collection: &str, id: Option<&str>) -> Result<Vec<VersionRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, embedder, fingerprint, spec, state, created_at, activated_at, activation_seq FROM embedding_versions
             WHERE collection = ?1 AND (?2 IS NULL OR id = ?2) ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map(params![collection, id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })?;
        rows.map(|row| {
            let (id, embedder, fp, spec, state, created_at, activated_at, activation_seq) = row?;
            Ok(VersionRow {
                fingerprint: Fingerprint::from_hex(&fp)
                    .ok_or_else(|| Error::Corrupt(format!("bad fingerprint {fp:?}")))?,
                spec: serde_json::from_str(&spec)
                    .map_err(|e| Error::Corrupt(format!("embedder spec of version {id}: {e}")))?,
                id,
                collection: collection.to_owned(),
                embedder,
                state: state.parse()?,
                created_at,
                activated_at,
                activation_seq,
            })
        })
        .collect()
    }

    /// Creates the version of `embedder` (with `spec`) for the collection and makes it active.
    pub fn create_active_version(
        &self,
        collection: &str,
        embedder: &str,
        spec: &EmbedderSpec,
    ) -> Result<VersionRow> {
        let fp = spec.fingerprint();
        let id = version_id(embedder, &fp);
        self.conn.execute(
            "INSERT OR IGNORE INTO embedding_versions (collection, id, embedder, fingerprint, spec, state, created_at, activated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?6)",
            params![collection, id, embedder, fp.to_hex(), spec.canonical(), now()],
        )?;
        self.conn.execute(
            "UPDATE collections SET active_version = ?2 WHERE name = ?1",
            params![collection, id],
        )?;
        self.version(collection, &id)?
            .ok_or_else(|| Error::Corrupt(format!("version {id} vanished")))
    }

    /// `(chunk_hash, text as embedded)` of those of `hashes` that are chunks of the collection.
    pub fn embed_texts(
        &self,
        collection: &str,
        hashes: &[ContentHash],
    ) -> Result<Vec<(ContentHash, String)>> {
        let mut out = Vec::with_capacity(hashes.len());
        self.lookup(
            "SELECT chunk_hash, title, text FROM chunks WHERE collection = ? AND chunk_hash IN (",
            collection,
            hashes,
            |r| {
                let title: String = r.get(1)?;
                let text: String = r.get(2)?;
                out.push((
                    parse_hash(&r.get::<_, String>(0)?)?,
                    quarry_core::embed_text(&title, &text),
                ));
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// The connection, for tests that look at tables directly.
    #[cfg(test)]
    pub(crate) fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }

    /// Starts the write transaction of the collection's next generation.
    pub fn begin(&mut self, collection: &str) -> Result<WriteTx<'_>> {
        WriteTx::begin(&mut self.conn, collection)
    }
}
