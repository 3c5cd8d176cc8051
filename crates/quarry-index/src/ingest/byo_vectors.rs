//! Bring your own vectors: loading a vector file ([`super::parquet`]) computed elsewhere (on a
//! GPU cluster, say) for documents already ingested. Vectors are handed to
//! [`Engine::put_vectors`] [`PUT_BATCH`] rows at a time, each call one generation.
//!
//! Which embedder computed the vectors (the spec whose fingerprint must be the collection's, so
//! vectors of different models are never mixed) is given by the caller (`--vectors-spec`) or else
//! read from the file's schema metadata ([`spec_from_metadata`]); the dimensions are those of the
//! vector column.
//!
//! An `id` is mapped to a chunk like this:
//! - a document id whose document has exactly one chunk: that chunk;
//! - a document with several chunks: skipped (`document_has_several_chunks`), since one vector
//!   cannot stand for several chunks;
//! - otherwise 64 hex characters: a chunk hash (the `chunk_id` of query results). The vector is
//!   stored under that hash for the spec's fingerprint; if no chunk of the collection has that
//!   hash (yet), it waits in the embedding cache and is used when such a chunk is ingested;
//! - anything else: skipped (`unknown_id`).
//!
//! Rows with a null or empty id (`missing_id`), or a null vector, a vector of the wrong length, a
//! non-finite or null value, or all zeros (`bad_vector`) are skipped and counted.

use super::parquet::VectorFile;
use super::spec_metadata::spec_from_metadata;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use quarry_core::{ContentHash, EmbedderSpec};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Rows handed to one [`Engine::put_vectors`] call (one generation).
pub const PUT_BATCH: usize = 10_000;
/// Problems listed in a summary (all are counted in `skipped`).
pub const MAX_PROBLEMS: usize = 100;
/// Ids longer than this are shown cut in problems.
const SHOWN_ID_CHARS: usize = 100;

/// What loading one or more Parquet files did (`"vectors"` in `quarry ingest --json`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VectorsSummary {
    /// Vectors stored (one per chunk).
    pub vectors_loaded: u64,
    /// Rows whose chunk had this very vector already: nothing written (loading a file again).
    pub vectors_unchanged: u64,
    /// Rows not loaded, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// The first [`MAX_PROBLEMS`] skipped rows.
    pub problems: Vec<VectorProblem>,
    pub seconds: f64,
}

/// One skipped row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VectorProblem {
    pub file: String,
    /// 0-based row number in the file (as pyarrow and pandas count).
    pub row: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub reason: String,
    pub message: String,
}

impl VectorsSummary {
    fn skip(&mut self, file: &str, row: u64, id: Option<&str>, reason: &str, message: String) {
        *self.skipped.entry(reason.to_owned()).or_default() += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(VectorProblem {
                file: file.to_owned(),
                row,
                id: id.map(shown_id),
                reason: reason.to_owned(),
                message,
            });
        }
    }

    /// Rows skipped, all reasons together.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

fn shown_id(id: &str) -> String {
    if id.chars().count() <= SHOWN_ID_CHARS {
        id.to_owned()
    } else {
        let cut: String = id.chars().take(SHOWN_ID_CHARS).collect();
        format!("{cut}…")
    }
}

/// Maps an id to the chunk it stands for, or the reason it is skipped (with a message).
fn chunk_of(
    engine: &Engine,
    collection: &str,
    id: &str,
) -> Result<std::result::Result<ContentHash, (&'static str, String)>> {
    let hashes = engine.doc_chunk_hashes(collection, id)?;
    Ok(match hashes.as_slice() {
        [h] => Ok(*h),
        [] => match ContentHash::from_hex(id) {
            Some(h) if id.len() == 64 => Ok(h),
            _ => Err((
                "unknown_id",
                format!(
                    "collection `{collection}` has no document with this id (and it is not a \
                     64-hex chunk_id); ingest the document first"
                ),
            )),
        },
        several => Err((
            "document_has_several_chunks",
            format!(
                "the document has {} chunks, and the vector of a whole document cannot stand for \
                 several chunks; re-chunk with a larger chunk.max_tokens (QUARRY_CHUNK__MAX_TOKENS) \
                 so each document is one chunk, or provide chunk-level vectors keyed by chunk_id as \
                 returned in query results",
                several.len()
            ),
        )),
    })
}

/// Loads the vectors of the Parquet file `path` into `collection`, adding to `summary`.
/// `given` is the spec from `--vectors-spec`; without it the file's schema metadata must say.
pub(crate) fn load(
    engine: &Engine,
    collection: &str,
    path: &Path,
    given: Option<&EmbedderSpec>,
    summary: &mut VectorsSummary,
) -> Result<()> {
    let started = Instant::now();
    let file = path.display().to_string();
    match engine.collection(collection) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::Input(format!(
                "cannot load {file}: collection `{collection}` does not exist; ingest the documents \
                 first (e.g. `quarry ingest --collection {collection} --no-embed corpus.jsonl`), \
                 then load their vectors"
            )));
        }
        Err(e) => return Err(e),
    }
    let mut reader = VectorFile::open(path)?;

    let mut spec = match given {
        Some(s) => s.clone(),
        None => spec_from_metadata(&file, reader.metadata())?.ok_or_else(|| {
            Error::Input(format!(
                "{file} does not say which embedder computed its vectors (its schema metadata has \
                 no `model`); pass --vectors-spec NAME (a configured embedder whose vectors these \
                 are, e.g. local) or --vectors-spec '{{\"provider\":…}}' (the embedder spec as JSON)"
            ))
        })?,
    };
    // The dimensions are known once the spec is final: from the flag, the fixed list size, or the
    // first usable vector of a variable-length list column.
    let mut dims: Option<usize> = None;
    if given.is_some() {
        if let Some(n) = reader.fixed_dimensions()
            && n != spec.dimensions
        {
            return Err(Error::Input(format!(
                "{file}: column `vector` holds {n}-dimensional vectors, but --vectors-spec says {} \
                 dimensions; these are not that embedder's vectors",
                spec.dimensions
            )));
        }
        dims = Some(spec.dimensions);
    } else if let Some(n) = reader.fixed_dimensions() {
        spec.dimensions = n;
        dims = Some(n);
    }
    let check_spec = |spec: &EmbedderSpec| -> Result<()> {
        // An empty load checks the spec against the collection's embedder and writes nothing.
        engine
            .put_vectors(collection, spec, Vec::new())
            .map(|_| ())
            .map_err(|e| Error::Input(format!("cannot load {file}: {e}")))
    };
    if dims.is_some() {
        check_spec(&spec)?;
    }

    let mut pending: Vec<(ContentHash, Vec<f32>)> = Vec::new();
    loop {
        let batch = match reader.next_batch() {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => {
                // Keep what was read so far: it is valid, and a re-run is idempotent.
                flush(engine, collection, &spec, &mut pending, summary)?;
                summary.seconds += started.elapsed().as_secs_f64();
                return Err(e);
            }
        };
        let rows = batch.rows(&file)?;
        for i in 0..rows.len() {
            let r = rows.row_number(i);
            let Some(id) = rows.id(i).filter(|s| !s.is_empty()) else {
                summary.skip(
                    &file,
                    r,
                    None,
                    "missing_id",
                    "the id is null or empty".into(),
                );
                continue;
            };
            let hash = match chunk_of(engine, collection, &id)? {
                Ok(h) => h,
                Err((reason, message)) => {
                    summary.skip(&file, r, Some(id.as_ref()), reason, message);
                    continue;
                }
            };
            let v = match rows.vector(i, dims) {
                Ok(v) => v,
                Err(why) => {
                    summary.skip(&file, r, Some(id.as_ref()), "bad_vector", why);
                    continue;
                }
            };
            if dims.is_none() {
                spec.dimensions = v.len();
                dims = Some(v.len());
                check_spec(&spec)?;
            }
            pending.push((hash, v));
            if pending.len() >= PUT_BATCH {
                flush(engine, collection, &spec, &mut pending, summary)?;
            }
        }
    }
    flush(engine, collection, &spec, &mut pending, summary)?;
    summary.seconds += started.elapsed().as_secs_f64();
    Ok(())
}

fn flush(
    engine: &Engine,
    collection: &str,
    spec: &EmbedderSpec,
    pending: &mut Vec<(ContentHash, Vec<f32>)>,
    summary: &mut VectorsSummary,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let rows = std::mem::take(pending);
    let put = engine.put_vectors(collection, spec, rows)?;
    summary.vectors_loaded += put.loaded;
    summary.vectors_unchanged += put.unchanged;
    Ok(())
}
