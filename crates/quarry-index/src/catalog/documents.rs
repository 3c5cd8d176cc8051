//! Documents and their content-addressed chunks as stored: listing and reading documents, their
//! ACLs and content hashes (what ingest compares), the chunk records BM25 indexes (with every
//! occurrence and its context), and the texts of chunks as embedded.

use super::schema::{Catalog, parse_acl, parse_hash};
use crate::error::{Error, Result};
use quarry_core::ContentHash;
use rusqlite::{OptionalExtension, params};
use std::collections::HashMap;

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
    /// The document's format ([`quarry_core::DocFormat::as_str`]).
    #[serde(default)]
    pub format: String,
    /// When the document was last written, in Unix seconds.
    #[serde(default)]
    pub updated_at: i64,
    /// The document's metadata object (filters and hits read it from here).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// For Markdown and Word documents, the headings in effect at the chunk's first line here,
    /// outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heading_path: Vec<String>,
    /// For a PDF, the page the chunk lies on here (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
}

/// What ingest compares to decide whether a document changed: its content hash and its ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocState {
    pub content_hash: ContentHash,
    pub acl: Vec<String>,
}

/// A stored document as the documents API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DocumentRow {
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub source: String,
    pub format: String,
    pub content_hash: String,
    pub metadata: serde_json::Value,
    /// Shown to writers and admins only (over HTTP).
    #[schema(required = false)]
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
        metadata: serde_json::Value::Object(parse_metadata(&metadata)?),
        acl: parse_acl(&r.get::<_, String>(7)?)?,
        generation: r.get::<_, i64>(8)? as u64,
        updated_at: r.get(9)?,
        chunks: r.get::<_, i64>(10)? as u64,
    })
}

/// A stored metadata object.
fn parse_metadata(s: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(format!("document metadata {s:?}: {e}")))
}

impl Catalog {
    /// Content hash and ACL of every document of the collection, by doc id.
    pub(crate) fn doc_states(&self, collection: &str) -> Result<HashMap<String, DocState>> {
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
    pub(crate) fn documents(
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
    pub(crate) fn document(&self, collection: &str, doc_id: &str) -> Result<Option<DocumentRow>> {
        let sql = format!("{DOCUMENT_SELECT} AND d.doc_id = ?3");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![collection, true, doc_id])?;
        rows.next()?.map(document_row).transpose()
    }

    /// Documents and distinct chunks of the collection that `visible` admits (by document ACL).
    pub(crate) fn visible_counts(
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
    pub(crate) fn documents_without_acl(&self) -> Result<Vec<(String, u64)>> {
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
    pub(crate) fn chunkable_documents(
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
    pub(crate) fn doc_sources(&self, collection: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT doc_id, source FROM documents WHERE collection = ?1")?;
        let rows = stmt.query_map([collection], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The chunk, its occurrences and the context of each (`context_chars` on each side, see
    /// [`quarry_core::context_window`]), or `None` when no document holds it any more.
    pub(crate) fn chunk_record(
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
            "SELECT d.doc_id, d.title, d.source, c.start, c.end, d.acl, d.format, d.updated_at, d.metadata, c.heading_path, c.page FROM doc_chunks c
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
                    format: r.get(6)?,
                    updated_at: r.get(7)?,
                    metadata: serde_json::Map::new(),
                    heading_path: Vec::new(),
                    page: r.get(10)?,
                };
                let labels: [String; 3] = [r.get(5)?, r.get(8)?, r.get(9)?];
                Ok((occ, labels))
            })?
            .map(|row| {
                let (mut occ, [acl, metadata, heading_path]) = row?;
                occ.acl = parse_acl(&acl)?;
                occ.metadata = parse_metadata(&metadata)?;
                occ.heading_path = serde_json::from_str(&heading_path).map_err(|e| {
                    Error::Corrupt(format!("bad heading path {heading_path:?} in catalog: {e}"))
                })?;
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
    pub(crate) fn all_chunk_hashes(&self, collection: &str) -> Result<Vec<ContentHash>> {
        let mut stmt = self
            .conn
            .prepare("SELECT chunk_hash FROM chunks WHERE collection = ?1")?;
        let rows = stmt.query_map([collection], |r| r.get::<_, String>(0))?;
        rows.map(|h| parse_hash(&h?)).collect()
    }

    /// Those of `hashes` that are chunks of the collection now.
    pub(crate) fn existing_chunks(
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
    pub(crate) fn doc_chunk_hashes(
        &self,
        collection: &str,
        doc_id: &str,
    ) -> Result<Vec<ContentHash>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT chunk_hash FROM doc_chunks WHERE collection = ?1 AND doc_id = ?2 ORDER BY ord",
        )?;
        let rows = stmt.query_map([collection, doc_id], |r| r.get::<_, String>(0))?;
        rows.map(|h| parse_hash(&h?)).collect()
    }

    /// Up to `limit` chunks of the collection without a stored vector of `fingerprint`, in hash
    /// order from the first after `after`: `(chunk_hash, title, text as embedded)`. Paged by the
    /// last hash so a caller streams every such chunk without holding them all.
    pub(crate) fn chunks_without_vector(
        &self,
        collection: &str,
        fingerprint: &quarry_core::Fingerprint,
        after: Option<&ContentHash>,
        limit: usize,
    ) -> Result<Vec<(ContentHash, String, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.chunk_hash, c.title, c.text FROM chunks c
             WHERE c.collection = ?1 AND c.chunk_hash > ?3 AND NOT EXISTS
               (SELECT 1 FROM embeddings e WHERE e.fingerprint = ?2 AND e.chunk_hash = c.chunk_hash)
             ORDER BY c.chunk_hash LIMIT ?4",
        )?;
        let after = after.map(ContentHash::to_hex).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(
            params![collection, fingerprint.to_hex(), after, limit],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )?;
        rows.map(|r| {
            let (h, title, text) = r?;
            let text = quarry_core::embed_text(&title, &text);
            Ok((parse_hash(&h)?, title, text))
        })
        .collect()
    }

    /// `(chunk_hash, text as embedded)` of those of `hashes` that are chunks of the collection.
    pub(crate) fn embed_texts(
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
}
