//! Tests of reading an embedder spec from a Parquet file's schema metadata.

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
