//! The reader of vector files: Parquet with a column `id` (string; integers are accepted and
//! read as decimal strings) and a column `vector` (`fixed_size_list<float32>[D]`, or
//! `list<float32>`; `float64` elements are narrowed to `float32`). Other columns are not read;
//! record batches are streamed. The one Parquet reader of the workspace: `quarry ingest
//! FILE.parquet` ([`super::byo_vectors`]) and the hybrid benchmark read vectors with it.
//!
//! A file that is not Parquet, lacks a column, or has a column of another type is an
//! [`Error::Input`] that says what to fix; a panic of the Parquet library on a malformed file is
//! caught and reported the same way. Rows are checked one at a time ([`Rows::vector`]), so a bad
//! row can be skipped and counted by the caller.
//! Chunk files (`super::chunk_files`) are opened and streamed the same way ([`open_columns`],
//! [`Batches`]). Which embedder a file's schema metadata names is read by
//! `super::spec_metadata`.

use crate::error::{Error, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Rows decoded per Arrow record batch.
const READ_BATCH: usize = 4096;

/// [`Error::Input`] with a formatted message.
macro_rules! input {
    ($($arg:tt)*) => {
        Error::Input(format!($($arg)*))
    };
}

/// An opened vector file, read one record batch at a time.
pub struct VectorFile {
    opened: Opened,
    batches: Batches,
}

impl VectorFile {
    /// Opens `path` and checks its `id` and `vector` columns.
    pub fn open(path: &Path) -> Result<VectorFile> {
        let file = path.display().to_string();
        let (opened, batches) = open(path, &file)?;
        Ok(VectorFile { opened, batches })
    }

    /// The file's name as messages show it.
    pub fn name(&self) -> &str {
        &self.batches.file
    }

    /// The schema's metadata, then the file's key-value metadata (the schema wins).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.batches.metadata
    }

    /// The vectors' dimensions when the column says (a `fixed_size_list`).
    pub fn fixed_dimensions(&self) -> Option<usize> {
        self.opened.vec_kind.fixed_len()
    }

    /// Rows read so far.
    pub fn rows_read(&self) -> u64 {
        self.batches.row
    }

    /// The next record batch, `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<VectorBatch>> {
        let Some((batch, first_row)) = self.batches.next()? else {
            return Ok(None);
        };
        Ok(Some(VectorBatch {
            batch,
            first_row,
            id_kind: self.opened.id_kind,
            vec_kind: self.opened.vec_kind,
        }))
    }
}

/// The record batches of the projected columns of a Parquet file, with the file's name, its
/// metadata and the rows it holds; shared by the readers of vector and chunk files.
pub(crate) struct Batches {
    pub(crate) file: String,
    reader: ParquetRecordBatchReader,
    /// The schema's metadata, then the file's key-value metadata (the schema wins).
    pub(crate) metadata: HashMap<String, String>,
    /// Rows in the file, as its footer says.
    pub(crate) rows_total: u64,
    /// Rows read so far (the 0-based number of the next batch's first row).
    row: u64,
}

impl Batches {
    /// The next record batch and the number of its first row, `None` at the end.
    pub(crate) fn next(&mut self) -> Result<Option<(RecordBatch, u64)>> {
        let (file, row) = (&self.file, self.row);
        let reader = &mut self.reader;
        let next = guarded(file, || match reader.next() {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(input!(
                "{file}: cannot read row {row} onwards: {e}; the file is corrupt or truncated"
            )),
        })?;
        let Some(batch) = next else {
            return Ok(None);
        };
        self.row += batch.num_rows() as u64;
        Ok(Some((batch, row)))
    }
}

/// One record batch of a vector file.
pub struct VectorBatch {
    batch: RecordBatch,
    first_row: u64,
    id_kind: IdKind,
    vec_kind: VecKind,
}

impl VectorBatch {
    /// The batch's `id` and `vector` columns; `file` names the file in errors.
    pub fn rows(&self, file: &str) -> Result<Rows<'_>> {
        let col = |name: &str| {
            self.batch
                .column_by_name(name)
                .ok_or_else(|| input!("{file}: a record batch lacks column `{name}`"))
        };
        let (id_col, vec_col) = (col("id")?, col("vector")?);
        let ids = Ids::new(id_col, self.id_kind)
            .ok_or_else(|| input!("{file}: column `id` changes type between row groups"))?;
        let vectors = Vectors::new(vec_col, self.vec_kind)
            .ok_or_else(|| input!("{file}: column `vector` changes type between row groups"))?;
        Ok(Rows {
            ids,
            vectors,
            len: self.batch.num_rows(),
            first_row: self.first_row,
        })
    }
}

/// The rows of one record batch.
pub struct Rows<'a> {
    ids: Ids<'a>,
    vectors: Vectors<'a>,
    len: usize,
    first_row: u64,
}

impl<'a> Rows<'a> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The 0-based number in the file of the batch's row `i` (as pyarrow and pandas count).
    pub fn row_number(&self, i: usize) -> u64 {
        self.first_row + i as u64
    }

    /// The id of row `i`, `None` when null.
    pub fn id(&self, i: usize) -> Option<std::borrow::Cow<'a, str>> {
        self.ids.get(i)
    }

    /// Row `i`'s vector, checked to have `dims` (when known) finite values, not all zero; or why
    /// it is unusable.
    pub fn vector(&self, i: usize, dims: Option<usize>) -> std::result::Result<Vec<f32>, String> {
        self.vectors.get(i, dims)
    }
}

/// Every `(id, vector)` row of the vector file `path`, failing on the first row without an id or
/// with an unusable vector: for files known to be complete, such as reference vectors.
pub fn read_all(path: &Path) -> Result<Vec<(String, Vec<f32>)>> {
    let mut f = VectorFile::open(path)?;
    let dims = f.fixed_dimensions();
    let mut out = Vec::new();
    while let Some(batch) = f.next_batch()? {
        let rows = batch.rows(f.name())?;
        for i in 0..rows.len() {
            let r = rows.row_number(i);
            let id = rows
                .id(i)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| input!("{}: row {r} has no id", f.name()))?;
            let v = rows
                .vector(i, dims)
                .map_err(|why| input!("{}: row {r} (id {id}): {why}", f.name()))?;
            out.push((id.into_owned(), v));
        }
    }
    Ok(out)
}

/// The kind of the `id` column (and of a chunk file's string columns).
#[derive(Debug, Clone, Copy)]
pub(crate) enum IdKind {
    Utf8,
    LargeUtf8,
    Utf8View,
    Int32,
    Int64,
    UInt32,
    UInt64,
}

impl IdKind {
    pub(crate) fn of(t: &DataType) -> Option<Self> {
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

/// The `id` column of one record batch (or a string column of a chunk file).
pub(crate) enum Ids<'a> {
    Str(&'a arrow_array::StringArray),
    LargeStr(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
    I32(&'a arrow_array::Int32Array),
    I64(&'a arrow_array::Int64Array),
    U32(&'a arrow_array::UInt32Array),
    U64(&'a arrow_array::UInt64Array),
}

impl<'a> Ids<'a> {
    pub(crate) fn new(a: &'a ArrayRef, kind: IdKind) -> Option<Self> {
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
    pub(crate) fn get(&self, i: usize) -> Option<std::borrow::Cow<'a, str>> {
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
    fn get(&self, i: usize, dims: Option<usize>) -> std::result::Result<Vec<f32>, String> {
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
pub(crate) fn guarded<T>(file: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(input!(
            "{file}: the Parquet reader failed on this file (it is corrupt or malformed); \
             write it again, e.g. with pyarrow's pyarrow.parquet.write_table"
        ))
    })
}

/// What the schema of an opened vector file says of its `id` and `vector` columns.
struct Opened {
    id_kind: IdKind,
    vec_kind: VecKind,
}

fn open(path: &Path, file: &str) -> Result<(Opened, Batches)> {
    const NEEDED: &str = "vector files need columns `id` (string: a doc id, or a chunk_id from \
                          query results) and `vector` (fixed_size_list<float32>)";
    let mut kinds = None;
    let batches = open_columns(path, &["id", "vector"], NEEDED, |schema| {
        let field = |name: &str| missing_column(file, schema, name, NEEDED);
        let id_field = field("id")?;
        let vec_field = field("vector")?;
        let id_kind = IdKind::of(id_field.data_type()).ok_or_else(|| {
            input!(
                "{file}: column `id` is {}; it must be a string (or an integer); cast it when \
                 writing the file",
                id_field.data_type()
            )
        })?;
        let vec_kind = VecKind::of(vec_field.data_type()).ok_or_else(|| {
            input!(
                "{file}: column `vector` is {}; it must be fixed_size_list<float32>[D] or \
                 list<float32>; cast it when writing the file (pyarrow: pa.list_(pa.float32(), D))",
                vec_field.data_type()
            )
        })?;
        kinds = Some(Opened { id_kind, vec_kind });
        Ok(())
    })?;
    let opened = kinds.ok_or_else(|| input!("{file}: cannot read the Parquet file"))?;
    Ok((opened, batches))
}

/// The field `name` of `schema`, or an error that lists the file's columns and says what `needed`.
pub(crate) fn missing_column<'s>(
    file: &str,
    schema: &'s arrow_schema::Schema,
    name: &str,
    needed: &str,
) -> Result<&'s arrow_schema::Field> {
    schema.field_with_name(name).map_err(|_| {
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        input!(
            "{file} has no `{name}` column (it has: {}); {needed}; rename the columns when \
             writing the file",
            columns.join(", ")
        )
    })
}

/// Opens the Parquet file `path` to read its root columns named in `columns` (those it has),
/// after `check` accepted its Arrow schema. `needed` says what such files hold, for the error of
/// a file that is not Parquet at all.
pub(crate) fn open_columns(
    path: &Path,
    columns: &[&str],
    needed: &str,
    check: impl FnOnce(&arrow_schema::Schema) -> Result<()>,
) -> Result<Batches> {
    let file = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| input!("cannot open {file}: {e}"))?;
    guarded(&file, || {
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| {
            input!(
                "{file} is not a readable Parquet file: {e}. {needed}; write one with e.g. \
                 pyarrow.parquet.write_table"
            )
        })?;
        let schema = builder.schema().clone();
        let mut metadata: HashMap<String, String> = schema.metadata().clone().into_iter().collect();
        let file_metadata = builder.metadata().file_metadata();
        if let Some(kv) = file_metadata.key_value_metadata() {
            for e in kv {
                if let Some(v) = &e.value {
                    metadata.entry(e.key.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        let rows_total = u64::try_from(file_metadata.num_rows()).unwrap_or(0);
        check(&schema)?;
        let roots = builder.parquet_schema().root_schema().get_fields();
        let wanted: Vec<usize> = roots
            .iter()
            .enumerate()
            .filter(|(_, f)| columns.contains(&f.name()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(READ_BATCH)
            .build()
            .map_err(|e| input!("{file}: cannot read the Parquet file: {e}"))?;
        Ok(Batches {
            file: file.clone(),
            reader,
            metadata,
            rows_total,
            row: 0,
        })
    })
}
