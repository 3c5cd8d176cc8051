//! Chunk files: the Parquet files `quarry export chunks` writes and `quarry embed` reads, so
//! that chunks can be embedded elsewhere (a cluster) and their vectors loaded back as vector
//! files ([`super::byo_vectors`]).
//!
//! A chunk file has the columns `id` (the chunk hash, 64 hex characters: the id a vector file
//! may use), `title` (the document's title) and `text` (exactly what the engine embeds for the
//! chunk: [`quarry_core::embed_text`] of title and chunk text, so `id` is blake3 of `text`; the
//! embedder adds its own document prefix). Its schema metadata says for which embedder the
//! chunks lack vectors ([`spec_metadata`]). Reading goes through the one Parquet reader
//! ([`super::parquet::open_columns`]); only `id` and `text` are read. Writing
//! ([`ParquetOut`]) is atomic: a temporary file beside the destination, renamed into place once
//! complete, so a killed run leaves no half file under a `.parquet` name.

use super::parquet::{Batches, IdKind, Ids, missing_column, open_columns};
use super::spec_metadata::{FINGERPRINT_KEY, NAME_KEY, SPEC_KEY};
use crate::error::{Error, Result};
use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use quarry_core::EmbedderSpec;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per Parquet row group of a written file (bounds what the writer buffers).
const ROW_GROUP: usize = 8192;

/// What a chunk file holds, for the errors of a file that lacks it.
const CHUNK_COLUMNS: &str = "chunk files (from `quarry export chunks`) need columns `id` \
                             (string: the chunk hash) and `text` (string: the text to embed)";

/// The schema metadata naming embedder `name` with `spec`: its canonical JSON, its
/// fingerprint and its name.
pub fn spec_metadata(name: &str, spec: &EmbedderSpec) -> HashMap<String, String> {
    HashMap::from([
        (SPEC_KEY.to_owned(), spec.canonical()),
        (FINGERPRINT_KEY.to_owned(), spec.fingerprint().to_hex()),
        (NAME_KEY.to_owned(), name.to_owned()),
    ])
}

/// The full embedder spec a file's schema metadata holds (`None` without [`SPEC_KEY`]),
/// checked against its [`FINGERPRINT_KEY`] when it has one.
pub fn spec_in_metadata(
    file: &str,
    meta: &HashMap<String, String>,
) -> Result<Option<EmbedderSpec>> {
    let Some(json) = meta.get(SPEC_KEY) else {
        return Ok(None);
    };
    let spec: EmbedderSpec = serde_json::from_str(json).map_err(|e| {
        Error::Input(format!(
            "{file}: the `{SPEC_KEY}` schema metadata is not a valid embedder spec: {e}"
        ))
    })?;
    if let Some(fp) = meta.get(FINGERPRINT_KEY)
        && *fp != spec.fingerprint().to_hex()
    {
        return Err(Error::Input(format!(
            "{file}: the schema metadata's `{FINGERPRINT_KEY}` ({fp}) is not the fingerprint of its \
             `{SPEC_KEY}` ({}); the metadata was edited, export the chunks again",
            spec.fingerprint().to_hex()
        )));
    }
    Ok(Some(spec))
}

/// The schema of a chunk file with schema metadata `meta`.
pub fn chunk_schema(meta: HashMap<String, String>) -> SchemaRef {
    Arc::new(
        Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("title", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, false),
        ])
        .with_metadata(meta),
    )
}

/// One row of a chunk file: the chunk hash (hex), the title, the text as embedded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRow {
    pub id: String,
    pub title: String,
    pub text: String,
}

/// A record batch of `rows` in `schema` ([`chunk_schema`]).
pub fn chunk_batch(schema: &SchemaRef, rows: &[ChunkRow]) -> Result<RecordBatch> {
    let col = |f: fn(&ChunkRow) -> &str| {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef
    };
    let columns = vec![
        col(|r| r.id.as_str()),
        col(|r| r.title.as_str()),
        col(|r| r.text.as_str()),
    ];
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Corrupt(format!("chunk batch: {e}")))
}

/// The schema of a vector file of `dims`-dimensional vectors with schema metadata `meta`:
/// `id` (string) and `vector` (`fixed_size_list<float32>[dims]`).
pub fn vector_schema(meta: HashMap<String, String>, dims: usize) -> SchemaRef {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    Arc::new(
        Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new(
                "vector",
                DataType::FixedSizeList(item, i32::try_from(dims).unwrap_or(i32::MAX)),
                false,
            ),
        ])
        .with_metadata(meta),
    )
}

/// A record batch of `ids` and their `vectors` in `schema` ([`vector_schema`]).
pub fn vector_batch(schema: &SchemaRef, ids: &[&str], vectors: &[Vec<f32>]) -> Result<RecordBatch> {
    let dims = match schema.field_with_name("vector").map(|f| f.data_type()) {
        Ok(DataType::FixedSizeList(_, n)) => *n,
        _ => return Err(Error::Corrupt("vector batch: not a vector schema".into())),
    };
    let item = Field::new("item", DataType::Float32, false);
    let mut list = FixedSizeListBuilder::with_capacity(
        Float32Builder::with_capacity(vectors.len() * dims as usize),
        dims,
        vectors.len(),
    )
    .with_field(item);
    for v in vectors {
        list.values().append_slice(v);
        list.append(true);
    }
    let columns = vec![
        Arc::new(StringArray::from_iter_values(ids.iter())) as ArrayRef,
        Arc::new(list.finish()) as ArrayRef,
    ];
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Input(format!("vector batch: {e}")))
}

/// A Parquet file being written: a temporary file beside `path`, renamed to `path` by
/// [`ParquetOut::finish`]; dropped unfinished, the temporary file is removed.
pub struct ParquetOut {
    path: PathBuf,
    tmp: tempfile::TempPath,
    writer: ArrowWriter<std::fs::File>,
}

impl ParquetOut {
    /// Starts writing `path` with `schema` (zstd-compressed).
    pub fn create(path: &Path, schema: SchemaRef) -> Result<ParquetOut> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".quarry-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(io)?;
        let (file, tmp) = tmp.into_parts();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP))
            .build();
        let writer = ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|e| Error::Input(format!("cannot write {}: {e}", path.display())))?;
        Ok(ParquetOut {
            path: path.to_owned(),
            tmp,
            writer,
        })
    }

    /// Appends `batch`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| self.error(e))
    }

    /// Writes the footer, syncs, and renames the file into place.
    pub fn finish(self) -> Result<()> {
        let ParquetOut { path, tmp, writer } = self;
        let file = writer
            .into_inner()
            .map_err(|e| Error::Input(format!("cannot write {}: {e}", path.display())))?;
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A temporary file is private (0600); the written file is readable like any other.
            file.set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        drop(file);
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok(())
    }

    fn error(&self, e: parquet::errors::ParquetError) -> Error {
        match e {
            parquet::errors::ParquetError::External(inner) => {
                match inner.downcast::<std::io::Error>() {
                    Ok(io) => Error::Io {
                        path: self.path.clone(),
                        source: *io,
                    },
                    Err(other) => {
                        Error::Input(format!("cannot write {}: {other}", self.path.display()))
                    }
                }
            }
            e => Error::Input(format!("cannot write {}: {e}", self.path.display())),
        }
    }
}

/// An opened chunk file, read one record batch at a time.
pub struct ChunkFile {
    batches: Batches,
    id_kind: IdKind,
    text_kind: IdKind,
}

impl ChunkFile {
    /// Opens `path` and checks its `id` and `text` columns.
    pub fn open(path: &Path) -> Result<ChunkFile> {
        let file = path.display().to_string();
        let mut kinds = None;
        let batches = open_columns(path, &["id", "text"], CHUNK_COLUMNS, |schema| {
            let kind = |name: &str| -> Result<IdKind> {
                let field = missing_column(&file, schema, name, CHUNK_COLUMNS)?;
                match IdKind::of(field.data_type()) {
                    Some(k @ (IdKind::Utf8 | IdKind::LargeUtf8 | IdKind::Utf8View)) => Ok(k),
                    _ => Err(Error::Input(format!(
                        "{file}: column `{name}` is {}; it must be a string; cast it when writing \
                         the file",
                        field.data_type()
                    ))),
                }
            };
            kinds = Some((kind("id")?, kind("text")?));
            Ok(())
        })?;
        let (id_kind, text_kind) =
            kinds.ok_or_else(|| Error::Input(format!("{file}: cannot read the Parquet file")))?;
        Ok(ChunkFile {
            batches,
            id_kind,
            text_kind,
        })
    }

    /// The file's name as messages show it.
    pub fn name(&self) -> &str {
        &self.batches.file
    }

    /// The schema's metadata, then the file's key-value metadata (the schema wins).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.batches.metadata
    }

    /// Rows in the file, as its footer says.
    pub fn rows_total(&self) -> u64 {
        self.batches.rows_total
    }

    /// The next record batch, `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<ChunkBatch>> {
        let Some((batch, first_row)) = self.batches.next()? else {
            return Ok(None);
        };
        Ok(Some(ChunkBatch {
            batch,
            first_row,
            id_kind: self.id_kind,
            text_kind: self.text_kind,
        }))
    }
}

/// One record batch of a chunk file.
pub struct ChunkBatch {
    batch: RecordBatch,
    first_row: u64,
    id_kind: IdKind,
    text_kind: IdKind,
}

impl ChunkBatch {
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
    }

    /// The 0-based number in the file of the batch's row `i` (as pyarrow and pandas count).
    pub fn row_number(&self, i: usize) -> u64 {
        self.first_row + i as u64
    }

    /// The `(id, text)` of every row, `None` where null; `file` names the file in errors.
    pub fn rows(&self, file: &str) -> Result<Vec<(Option<&str>, Option<&str>)>> {
        let col = |name: &str, kind: IdKind| {
            let a = self.batch.column_by_name(name).ok_or_else(|| {
                Error::Input(format!("{file}: a record batch lacks column `{name}`"))
            })?;
            Ids::new(a, kind).ok_or_else(|| {
                Error::Input(format!(
                    "{file}: column `{name}` changes type between row groups"
                ))
            })
        };
        let (ids, texts) = (col("id", self.id_kind)?, col("text", self.text_kind)?);
        Ok((0..self.len())
            .map(|i| (borrowed(ids.get(i)), borrowed(texts.get(i))))
            .collect())
    }
}

/// A string a column holds (string columns are read without copying).
fn borrowed(c: Option<std::borrow::Cow<'_, str>>) -> Option<&str> {
    match c {
        Some(std::borrow::Cow::Borrowed(s)) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
#[path = "chunk_files_tests.rs"]
mod tests;
