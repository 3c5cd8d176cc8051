//! Bring your own vectors: `quarry ingest FILE.parquet` loads vectors computed elsewhere (on a GPU
//! cluster, say) for documents already ingested.
//!
//! The file has a column `id` (string; integers are accepted and read as decimal strings) and a
//! column `vector` (`fixed_size_list<float32>[D]`, or `list<float32>`; `float64` elements are
//! narrowed to `float32`). Other columns are not read. Record batches are streamed, and vectors
//! are handed to [`Engine::put_vectors`] [`PUT_BATCH`] rows at a time, each call one generation.
//!
//! Which embedder computed the vectors (the spec whose fingerprint must be the collection's,
//! DESIGN invariant 2) comes from `--vectors-spec` (a JSON [`EmbedderSpec`], or the name of a
//! configured embedder) or else from the file's schema metadata: either a full `embedder_spec`
//! JSON, or the keys `model` (an `org/` prefix is dropped), `model_safetensors_sha256` (or
//! `revision`), `pooling`, `normalized`, `max_seq_length` (or `max_tokens`), and optionally
//! `provider` (default `local`), `query_prefix`, `document_prefix`; the dimensions are those of
//! the vector column.
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
//! non-finite or null value, or all zeros (`bad_vector`) are skipped and counted. A file that is
//! not Parquet, lacks a column, or has a column of another type is an error that says what to fix.

use anyhow::{Context, anyhow, bail};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use quarry_core::{ContentHash, EmbedderSpec};
use quarry_index::{Engine, ErrorKind};
use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Instant;

/// Rows handed to one [`Engine::put_vectors`] call (one generation).
pub const PUT_BATCH: usize = 10_000;
/// Rows decoded per Arrow record batch.
const READ_BATCH: usize = 4096;
/// Problems listed in a summary (all are counted in `skipped`).
pub const MAX_PROBLEMS: usize = 100;
/// Ids longer than this are shown cut in problems.
const SHOWN_ID_CHARS: usize = 100;

/// What loading one or more Parquet files did (`"vectors"` in `quarry ingest --json`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VectorsSummary {
    /// Vectors stored (one per chunk).
    pub vectors_loaded: u64,
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

/// Parses `--vectors-spec`: a JSON embedder spec (starting with `{`), or the name of a configured
/// embedder, loaded to read its spec.
pub fn spec_from_arg(config: &crate::config::Config, arg: &str) -> anyhow::Result<EmbedderSpec> {
    let arg = arg.trim();
    if arg.starts_with('{') {
        return serde_json::from_str::<EmbedderSpec>(arg).map_err(|e| {
            anyhow!(
                "--vectors-spec is not a valid embedder spec: {e}. Expected JSON like \
                 {{\"provider\":\"local\",\"model\":\"all-MiniLM-L6-v2\",\"revision\":\"<sha256 of model.safetensors>\",\
                 \"dimensions\":384,\"pooling\":\"mean\",\"normalized\":true,\"max_tokens\":256}}, \
                 or the name of a configured embedder (e.g. local)"
            )
        });
    }
    match crate::embedders::load(config, arg)
        .with_context(|| format!("--vectors-spec {arg}: cannot load that embedder's spec"))?
    {
        Some(e) => Ok(e.spec().clone()),
        None => bail!(
            "--vectors-spec {arg}: embedder `{arg}` produces no vectors; name the embedder that \
             computed them, or give its spec as JSON"
        ),
    }
}

/// The spec a file's schema metadata describes, without its dimensions (`None` when the metadata
/// names no model at all).
fn spec_from_metadata(
    file: &str,
    meta: &HashMap<String, String>,
) -> anyhow::Result<Option<EmbedderSpec>> {
    if let Some(json) = meta.get("embedder_spec") {
        return serde_json::from_str::<EmbedderSpec>(json).map(Some).map_err(|e| {
            anyhow!(
                "{file}: the `embedder_spec` schema metadata is not a valid embedder spec: {e}; \
                 fix it, or pass --vectors-spec"
            )
        });
    }
    let Some(model) = meta.get("model") else {
        return Ok(None);
    };
    let get = |keys: &[&str]| keys.iter().find_map(|k| meta.get(*k)).map(|v| v.trim());
    let mut missing = Vec::new();
    let revision = get(&["model_safetensors_sha256", "revision"]);
    if revision.is_none() {
        missing.push("model_safetensors_sha256 (or revision)");
    }
    let pooling = get(&["pooling"]);
    if pooling.is_none() {
        missing.push("pooling");
    }
    let normalized = get(&["normalized"]);
    if normalized.is_none() {
        missing.push("normalized");
    }
    let max_tokens = get(&["max_seq_length", "max_tokens"]);
    if max_tokens.is_none() {
        missing.push("max_seq_length (or max_tokens)");
    }
    let (Some(revision), Some(pooling), Some(normalized), Some(max_tokens)) =
        (revision, pooling, normalized, max_tokens)
    else {
        bail!(
            "{file}: its schema metadata names model `{model}` but lacks {}; add them when writing \
             the file, or pass --vectors-spec NAME (a configured embedder, e.g. local) or \
             --vectors-spec '{{...}}' (the embedder spec as JSON)",
            missing.join(", ")
        );
    };
    let normalized = match normalized.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => true,
        "false" | "0" | "no" => false,
        other => bail!(
            "{file}: schema metadata `normalized` is `{other}`; expected true or false (or pass --vectors-spec)"
        ),
    };
    let max_tokens: usize = max_tokens.parse().map_err(|_| {
        anyhow!(
            "{file}: schema metadata `max_seq_length` is `{max_tokens}`; expected a whole number \
             of tokens (or pass --vectors-spec)"
        )
    })?;
    let model = model.trim();
    let model = model.rsplit_once('/').map_or(model, |(_, m)| m);
    Ok(Some(EmbedderSpec {
        provider: get(&["provider"]).unwrap_or("local").to_owned(),
        model: model.to_owned(),
        revision: revision.to_owned(),
        dimensions: 0,
        pooling: pooling.to_owned(),
        normalized,
        max_tokens,
        query_prefix: meta.get("query_prefix").cloned().unwrap_or_default(),
        document_prefix: meta.get("document_prefix").cloned().unwrap_or_default(),
    }))
}

/// The kind of the `id` column.
#[derive(Debug, Clone, Copy)]
enum IdKind {
    Utf8,
    LargeUtf8,
    Utf8View,
    Int32,
    Int64,
    UInt32,
    UInt64,
}

impl IdKind {
    fn of(t: &DataType) -> Option<Self> {
        Some(match t {
            DataType::Utf8 => IdKind::Utf8,
            DataType::LargeUtf8 => IdKind::LargeUtf8,
            DataType::Utf8View => IdKind::Utf8View,
            DataType::Int32 => IdKind::Int32,
            DataType::Int64 => IdKind::Int64,
            DataType::UInt32 => IdKind::UInt32,
            DataType::UInt64 => IdKind::UInt64,
            _ => return None,
        })
    }
}

/// The kind of the `vector` column: the list layout, and whether elements are `float64`.
#[derive(Debug, Clone, Copy)]
enum VecKind {
    Fixed(usize, bool),
    List(bool),
    LargeList(bool),
}

impl VecKind {
    fn of(t: &DataType) -> Option<Self> {
        let float64 = |f: &arrow_schema::FieldRef| match f.data_type() {
            DataType::Float32 => Some(false),
            DataType::Float64 => Some(true),
            _ => None,
        };
        match t {
            DataType::FixedSizeList(f, n) => {
                Some(VecKind::Fixed(usize::try_from(*n).ok()?, float64(f)?))
            }
            DataType::List(f) => Some(VecKind::List(float64(f)?)),
            DataType::LargeList(f) => Some(VecKind::LargeList(float64(f)?)),
            _ => None,
        }
    }

    fn fixed_len(self) -> Option<usize> {
        match self {
            VecKind::Fixed(n, _) => Some(n),
            _ => None,
        }
    }
}

/// The `id` column of one record batch.
enum Ids<'a> {
    Str(&'a arrow_array::StringArray),
    LargeStr(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
    I32(&'a arrow_array::Int32Array),
    I64(&'a arrow_array::Int64Array),
    U32(&'a arrow_array::UInt32Array),
    U64(&'a arrow_array::UInt64Array),
}

impl<'a> Ids<'a> {
    fn new(a: &'a ArrayRef, kind: IdKind) -> Option<Self> {
        Some(match kind {
            IdKind::Utf8 => Ids::Str(a.as_string_opt::<i32>()?),
            IdKind::LargeUtf8 => Ids::LargeStr(a.as_string_opt::<i64>()?),
            IdKind::Utf8View => Ids::View(a.as_string_view_opt()?),
            IdKind::Int32 => Ids::I32(a.as_primitive_opt::<Int32Type>()?),
            IdKind::Int64 => Ids::I64(a.as_primitive_opt::<Int64Type>()?),
            IdKind::UInt32 => Ids::U32(a.as_primitive_opt::<UInt32Type>()?),
            IdKind::UInt64 => Ids::U64(a.as_primitive_opt::<UInt64Type>()?),
        })
    }

    /// The id of row `i`, `None` when null.
    fn get(&self, i: usize) -> Option<std::borrow::Cow<'a, str>> {
        use std::borrow::Cow::{Borrowed, Owned};
        let valid = |a: &dyn Array| a.is_valid(i);
        Some(match *self {
            Ids::Str(a) => Borrowed(valid(a).then(|| a.value(i))?),
            Ids::LargeStr(a) => Borrowed(valid(a).then(|| a.value(i))?),
            Ids::View(a) => Borrowed(valid(a).then(|| a.value(i))?),
            Ids::I32(a) => Owned(valid(a).then(|| a.value(i).to_string())?),
            Ids::I64(a) => Owned(valid(a).then(|| a.value(i).to_string())?),
            Ids::U32(a) => Owned(valid(a).then(|| a.value(i).to_string())?),
            Ids::U64(a) => Owned(valid(a).then(|| a.value(i).to_string())?),
        })
    }
}

/// The element values of a vector column.
enum Values<'a> {
    F32(&'a arrow_array::Float32Array),
    F64(&'a arrow_array::Float64Array),
}

/// The `vector` column of one record batch.
struct Vectors<'a> {
    list: &'a dyn Array,
    values: Values<'a>,
    /// Where each row's values start and end in `values`.
    range: Box<dyn Fn(usize) -> (usize, usize) + 'a>,
}

impl<'a> Vectors<'a> {
    fn new(a: &'a ArrayRef, kind: VecKind) -> Option<Self> {
        let values_of = |v: &'a ArrayRef, f64: bool| -> Option<Values<'a>> {
            Some(if f64 {
                Values::F64(v.as_primitive_opt::<Float64Type>()?)
            } else {
                Values::F32(v.as_primitive_opt::<Float32Type>()?)
            })
        };
        Some(match kind {
            VecKind::Fixed(n, f64) => {
                let l = a.as_fixed_size_list_opt()?;
                Vectors {
                    list: l,
                    values: values_of(l.values(), f64)?,
                    range: Box::new(move |i: usize| (i * n, i * n + n)),
                }
            }
            VecKind::List(f64) => Self::list(a.as_list_opt::<i32>()?, values_of, f64)?,
            VecKind::LargeList(f64) => Self::list(a.as_list_opt::<i64>()?, values_of, f64)?,
        })
    }

    /// A variable-size list column (`list` or `large_list`): rows end where the next begins.
    fn list<O: arrow_array::OffsetSizeTrait>(
        l: &'a arrow_array::GenericListArray<O>,
        values_of: impl Fn(&'a ArrayRef, bool) -> Option<Values<'a>>,
        f64: bool,
    ) -> Option<Self> {
        let offsets = l.value_offsets();
        let at = move |j: usize| offsets.get(j).map_or(0, |o| o.as_usize());
        Some(Vectors {
            list: l,
            values: values_of(l.values(), f64)?,
            range: Box::new(move |i: usize| (at(i), at(i + 1))),
        })
    }

    /// Row `i`'s vector, checked to have `dims` (when known) finite values, not all zero; or why
    /// it is unusable.
    fn get(&self, i: usize, dims: Option<usize>) -> Result<Vec<f32>, String> {
        if self.list.is_null(i) {
            return Err("the vector is null".into());
        }
        let (start, end) = (self.range)(i);
        let values_len = match &self.values {
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
        };
        if start > end || end > values_len {
            return Err("the vector's offsets are out of range (corrupt file)".into());
        }
        let len = end - start;
        if let Some(d) = dims
            && len != d
        {
            return Err(format!("the vector has {len} values; the spec says {d}"));
        }
        if len == 0 {
            return Err("the vector is empty".into());
        }
        let nulls = match &self.values {
            Values::F32(v) => v.nulls(),
            Values::F64(v) => v.nulls(),
        };
        if let Some(n) = nulls
            && (start..end).any(|j| n.is_null(j))
        {
            return Err("the vector has a null value".into());
        }
        let out: Vec<f32> = match &self.values {
            Values::F32(v) => v.values()[start..end].to_vec(),
            Values::F64(v) => v.values()[start..end].iter().map(|&x| x as f32).collect(),
        };
        if let Some(j) = out.iter().position(|x| !x.is_finite()) {
            return Err(format!("value {j} of the vector is {}", out[j]));
        }
        if out.iter().all(|&x| x == 0.0) {
            return Err("the vector is all zeros".into());
        }
        Ok(out)
    }
}

/// Runs a step of the Parquet reader, turning a panic on a malformed file into an error.
fn guarded<T>(file: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(anyhow!(
            "{file}: the Parquet reader failed on this file (it is corrupt or malformed); \
             write it again, e.g. with pyarrow's pyarrow.parquet.write_table"
        ))
    })
}

/// An opened file: the reader of its `id` and `vector` columns, and what its schema says.
struct Opened {
    reader: ParquetRecordBatchReader,
    id_kind: IdKind,
    vec_kind: VecKind,
    metadata: HashMap<String, String>,
}

fn open(path: &Path, file: &str) -> anyhow::Result<Opened> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {file}"))?;
    guarded(file, || {
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| {
            anyhow!(
                "{file} is not a readable Parquet file: {e}. Vector files are Parquet with columns \
                 `id` (string) and `vector` (fixed_size_list<float32>); write one with e.g. \
                 pyarrow.parquet.write_table"
            )
        })?;
        let schema = builder.schema().clone();
        let mut metadata: HashMap<String, String> = schema.metadata().clone().into_iter().collect();
        if let Some(kv) = builder.metadata().file_metadata().key_value_metadata() {
            for e in kv {
                if let Some(v) = &e.value {
                    metadata.entry(e.key.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let field = |name: &str| {
            schema.field_with_name(name).map_err(|_| {
                anyhow!(
                    "{file} has no `{name}` column (it has: {}); vector files need columns `id` \
                     (string: a doc id, or a chunk_id from query results) and `vector` \
                     (fixed_size_list<float32>); rename the columns when writing the file",
                    columns.join(", ")
                )
            })
        };
        let id_field = field("id")?;
        let vec_field = field("vector")?;
        let id_kind = IdKind::of(id_field.data_type()).ok_or_else(|| {
            anyhow!(
                "{file}: column `id` is {}; it must be a string (or an integer); cast it when \
                 writing the file",
                id_field.data_type()
            )
        })?;
        let vec_kind = VecKind::of(vec_field.data_type()).ok_or_else(|| {
            anyhow!(
                "{file}: column `vector` is {}; it must be fixed_size_list<float32>[D] or \
                 list<float32>; cast it when writing the file (pyarrow: pa.list_(pa.float32(), D))",
                vec_field.data_type()
            )
        })?;
        let roots = builder.parquet_schema().root_schema().get_fields();
        let wanted: Vec<usize> = roots
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name() == "id" || f.name() == "vector")
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(READ_BATCH)
            .build()
            .map_err(|e| anyhow!("{file}: cannot read the Parquet file: {e}"))?;
        Ok(Opened {
            reader,
            id_kind,
            vec_kind,
            metadata,
        })
    })
}

/// Maps an id to the chunk it stands for, or the reason it is skipped (with a message).
fn chunk_of(
    engine: &Engine,
    collection: &str,
    id: &str,
) -> anyhow::Result<Result<ContentHash, (&'static str, String)>> {
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
pub fn load(
    engine: &Engine,
    collection: &str,
    path: &Path,
    given: Option<&EmbedderSpec>,
    summary: &mut VectorsSummary,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let file = path.display().to_string();
    match engine.collection(collection) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "cannot load {file}: collection `{collection}` does not exist; ingest the documents \
             first (e.g. `quarry ingest --collection {collection} --no-embed corpus.jsonl`), then \
             load their vectors"
        ),
        Err(e) => return Err(e.into()),
    }
    let Opened {
        mut reader,
        id_kind,
        vec_kind,
        metadata,
    } = open(path, &file)?;

    let mut spec = match given {
        Some(s) => s.clone(),
        None => spec_from_metadata(&file, &metadata)?.ok_or_else(|| {
            anyhow!(
                "{file} does not say which embedder computed its vectors (its schema metadata has \
                 no `model`); pass --vectors-spec NAME (a configured embedder whose vectors these \
                 are, e.g. local) or --vectors-spec '{{\"provider\":…}}' (the embedder spec as JSON)"
            )
        })?,
    };
    // The dimensions are known once the spec is final: from the flag, the fixed list size, or the
    // first usable vector of a variable-length list column.
    let mut dims: Option<usize> = None;
    if given.is_some() {
        if let Some(n) = vec_kind.fixed_len()
            && n != spec.dimensions
        {
            bail!(
                "{file}: column `vector` holds {n}-dimensional vectors, but --vectors-spec says {} \
                 dimensions; these are not that embedder's vectors",
                spec.dimensions
            );
        }
        dims = Some(spec.dimensions);
    } else if let Some(n) = vec_kind.fixed_len() {
        spec.dimensions = n;
        dims = Some(n);
    }
    let check_spec = |spec: &EmbedderSpec| -> anyhow::Result<()> {
        // An empty load checks the spec against the collection's embedder and writes nothing.
        engine
            .put_vectors(collection, spec, Vec::new())
            .map(|_| ())
            .with_context(|| format!("cannot load {file}"))
    };
    if dims.is_some() {
        check_spec(&spec)?;
    }

    let mut pending: Vec<(ContentHash, Vec<f32>)> = Vec::new();
    let mut row: u64 = 0;
    loop {
        let next = guarded(&file, || match reader.next() {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(anyhow!(
                "{file}: cannot read row {row} onwards: {e}; the file is corrupt or truncated"
            )),
        });
        let batch: RecordBatch = match next {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => {
                // Keep what was read so far: it is valid, and a re-run is idempotent.
                flush(engine, collection, &spec, &mut pending, summary)?;
                summary.seconds += started.elapsed().as_secs_f64();
                return Err(e);
            }
        };
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| anyhow!("{file}: a record batch lacks column `{name}`"))
        };
        let (id_col, vec_col) = (col("id")?, col("vector")?);
        let ids = Ids::new(id_col, id_kind)
            .ok_or_else(|| anyhow!("{file}: column `id` changes type between row groups"))?;
        let vectors = Vectors::new(vec_col, vec_kind)
            .ok_or_else(|| anyhow!("{file}: column `vector` changes type between row groups"))?;
        for i in 0..batch.num_rows() {
            let r = row + i as u64;
            let Some(id) = ids.get(i).filter(|s| !s.is_empty()) else {
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
            let v = match vectors.get(i, dims) {
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
        row += batch.num_rows() as u64;
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
) -> anyhow::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let rows = std::mem::take(pending);
    summary.vectors_loaded += engine.put_vectors(collection, spec, rows)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn spec_from_sentence_transformers_metadata() {
        let m = meta(&[
            ("model", "sentence-transformers/all-MiniLM-L6-v2"),
            ("model_safetensors_sha256", "abc"),
            ("pooling", "mean"),
            ("normalized", "true"),
            ("max_seq_length", "256"),
            ("computed_with", "whatever"),
        ]);
        let s = spec_from_metadata("f", &m).unwrap().unwrap();
        assert_eq!(s.provider, "local");
        assert_eq!(s.model, "all-MiniLM-L6-v2");
        assert_eq!(s.revision, "abc");
        assert_eq!(s.pooling, "mean");
        assert!(s.normalized);
        assert_eq!(s.max_tokens, 256);
        assert!(s.query_prefix.is_empty() && s.document_prefix.is_empty());
    }

    #[test]
    fn metadata_without_model_or_with_gaps() {
        assert!(spec_from_metadata("f", &meta(&[])).unwrap().is_none());
        let e = spec_from_metadata("f", &meta(&[("model", "m"), ("pooling", "mean")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model_safetensors_sha256") && e.contains("--vectors-spec"),
            "{e}"
        );
        let e = spec_from_metadata(
            "f",
            &meta(&[
                ("model", "m"),
                ("revision", "r"),
                ("pooling", "mean"),
                ("normalized", "maybe"),
                ("max_seq_length", "256"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("normalized"), "{e}");
    }
}
