//! Tests of writing and reading chunk and vector files.

use super::*;
use crate::ingest::parquet::VectorFile;

fn spec() -> EmbedderSpec {
    EmbedderSpec {
        provider: "hash".into(),
        model: "hash".into(),
        revision: "1".into(),
        dimensions: 3,
        pooling: "none".into(),
        normalized: true,
        max_tokens: 512,
        query_prefix: String::new(),
        document_prefix: String::new(),
    }
}

fn row(i: usize) -> ChunkRow {
    let text = format!("title {i}\nchunk {i}");
    ChunkRow {
        id: quarry_core::ContentHash::of(text.as_bytes()).to_hex(),
        title: format!("title {i}"),
        text,
    }
}

#[test]
fn a_chunk_file_reads_back_with_its_spec() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chunks-00000.parquet");
    let schema = chunk_schema(spec_metadata("hash", &spec()));
    let rows: Vec<ChunkRow> = (0..5).map(row).collect();
    let mut out = ParquetOut::create(&path, schema.clone()).unwrap();
    out.write(&chunk_batch(&schema, &rows[..3]).unwrap())
        .unwrap();
    out.write(&chunk_batch(&schema, &rows[3..]).unwrap())
        .unwrap();
    out.finish().unwrap();
    // nothing but the file is left in the folder
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("chunks-00000.parquet")]
    );

    let mut f = ChunkFile::open(&path).unwrap();
    assert_eq!(f.rows_total(), 5);
    let got = spec_in_metadata(f.name(), f.metadata()).unwrap().unwrap();
    assert_eq!(got, spec());
    assert_eq!(f.metadata()[NAME_KEY], "hash");
    let mut read = Vec::new();
    while let Some(b) = f.next_batch().unwrap() {
        for (id, text) in b.rows(f.name()).unwrap() {
            read.push((id.unwrap().to_owned(), text.unwrap().to_owned()));
        }
    }
    let want: Vec<_> = rows
        .iter()
        .map(|r| (r.id.clone(), r.text.clone()))
        .collect();
    assert_eq!(read, want);
}

#[test]
fn a_vector_file_written_here_is_read_by_the_vector_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.parquet");
    let schema = vector_schema(spec_metadata("hash", &spec()), 3);
    let vectors = vec![vec![1.0, 0.0, 0.0], vec![0.0, 0.6, 0.8]];
    let mut out = ParquetOut::create(&path, schema.clone()).unwrap();
    out.write(&vector_batch(&schema, &["a", "b"], &vectors).unwrap())
        .unwrap();
    out.finish().unwrap();
    let f = VectorFile::open(&path).unwrap();
    assert_eq!(f.fixed_dimensions(), Some(3));
    assert_eq!(
        spec_in_metadata(f.name(), f.metadata()).unwrap(),
        Some(spec())
    );
    let all = crate::ingest::parquet::read_all(&path).unwrap();
    assert_eq!(
        all,
        vec![
            ("a".into(), vectors[0].clone()),
            ("b".into(), vectors[1].clone())
        ]
    );
}

#[test]
fn an_unfinished_file_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chunks-00000.parquet");
    let schema = chunk_schema(HashMap::new());
    let mut out = ParquetOut::create(&path, schema.clone()).unwrap();
    out.write(&chunk_batch(&schema, &[row(1)]).unwrap())
        .unwrap();
    drop(out);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn an_edited_fingerprint_and_a_file_without_text_are_errors() {
    let mut meta = spec_metadata("hash", &spec());
    meta.insert(FINGERPRINT_KEY.into(), "00".repeat(32));
    let e = spec_in_metadata("f", &meta).unwrap_err().to_string();
    assert!(e.contains("not the fingerprint"), "{e}");
    assert_eq!(spec_in_metadata("f", &HashMap::new()).unwrap(), None);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.parquet");
    let schema = vector_schema(HashMap::new(), 3);
    let mut out = ParquetOut::create(&path, schema.clone()).unwrap();
    out.write(&vector_batch(&schema, &["a"], &[vec![1.0, 0.0, 0.0]]).unwrap())
        .unwrap();
    out.finish().unwrap();
    let e = ChunkFile::open(&path).err().unwrap().to_string();
    assert!(
        e.contains("no `text` column") && e.contains("quarry export chunks"),
        "{e}"
    );
    std::fs::write(&path, b"PAR1 not really").unwrap();
    let e = ChunkFile::open(&path).err().unwrap().to_string();
    assert!(e.contains("not a readable Parquet file"), "{e}");
}
