//! Tests of the static embedder against a hand-made eight-token model: vectors against the mean
//! of rows by hand, token counts, and damaged or foreign folders.

use super::*;
use candle_core::Tensor;
use std::collections::HashMap;

/// A WordPiece tokenizer of eight tokens, BERT's normaliser and template.
const TOKENIZER: &str = r###"{
  "version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [
    {"id": 0, "content": "[PAD]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "[UNK]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 2, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 3, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
  "decoder": null,
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
    "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "hello": 4, "world": 5, "rust": 6, "##y": 7}}
}"###;

/// Row `i` of the test table: distinct, not parallel.
fn row(i: usize) -> [f32; 4] {
    let i = i as f32;
    [1.0 + i, 2.0 - i, 0.5 * i * i, (i * 0.7).sin()]
}

/// A model folder with `rows` rows of [`row`] under `tensor`.
fn folder(rows: usize, tensor: &str, config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..rows).flat_map(row).collect();
    let t = Tensor::from_vec(values, (rows, 4), &Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &HashMap::from([(tensor, t)]),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    fs::write(dir.path().join("tokenizer.json"), TOKENIZER).unwrap();
    fs::write(dir.path().join("config.json"), config).unwrap();
    dir
}

/// The normalised mean of rows `ids`: the oracle.
fn expected(ids: &[usize]) -> Vec<f32> {
    let mut v = vec![0f32; 4];
    for &i in ids {
        v.iter_mut().zip(row(i)).for_each(|(a, b)| *a += b);
    }
    v.iter_mut().for_each(|x| *x /= ids.len() as f32);
    normalize(&mut v);
    v
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

fn message(dir: &Path) -> String {
    match StaticEmbedder::load(dir, "t") {
        Err(EmbedError::Model(m)) => m,
        Err(other) => panic!("expected a model error, got {other:?}"),
        Ok(_) => panic!("{} loaded", dir.display()),
    }
}

#[test]
fn a_text_is_the_normalised_mean_of_its_token_rows() {
    let dir = folder(
        8,
        TENSOR,
        r#"{"model_type": "model2vec", "normalize": true}"#,
    );
    let e = StaticEmbedder::load(dir.path(), "tiny").unwrap();
    assert_eq!(e.spec().provider, "static");
    assert_eq!(e.spec().dimensions, 4);
    assert_eq!(e.spec().max_tokens, MAX_TOKENS);
    let texts = [
        "Hello WORLD",
        "hello zzz",
        "rusty world hello",
        "",
        "zzz qqq",
    ];
    let got = e.embed(&texts, InputKind::Document).unwrap();
    assert!(close(&got[0], &expected(&[4, 5])));
    // The unknown token is dropped, not averaged in.
    assert!(close(&got[1], &expected(&[4])));
    // Word pieces each count.
    assert!(close(&got[2], &expected(&[6, 7, 5, 4])));
    // Nothing known: the first unit vector, never zeros (which have no direction).
    assert_eq!(got[3], [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(got[4], got[3]);
    // Queries embed like documents; a batch like single texts.
    let one = e.embed(&[texts[2]], InputKind::Query).unwrap();
    assert_eq!(one[0], got[2]);
    // Tokens are counted as the teacher counts them, [CLS] and [SEP] included.
    assert_eq!(e.count_tokens("hello world"), Some(4));
    assert_eq!(e.count_tokens("rusty"), Some(4));
}

#[test]
fn vectors_are_normalised_whatever_the_config_and_long_texts_are_cut() {
    let dir = folder(8, TENSOR, r#"{"normalize": false}"#);
    let e = StaticEmbedder::load(dir.path(), "tiny").unwrap();
    assert!(e.spec().normalized);
    let got = e.embed(&["hello world"], InputKind::Document).unwrap();
    assert!(close(&got[0], &expected(&[4, 5])));
    // Past MAX_TOKENS known tokens, the rest is not read.
    let long = format!("{} {}", "hello ".repeat(MAX_TOKENS), "world ".repeat(100));
    let got = e.embed(&[long.as_str()], InputKind::Document).unwrap();
    let want = expected(&[4]);
    // (512 f32 additions: a relative error of the order of 1e-6 each.)
    assert!(
        got[0]
            .iter()
            .zip(&want)
            .all(|(x, y)| (x - y).abs() < 1e-4 * y.abs().max(1.0)),
        "{got:?} against {want:?}"
    );
    // A revision per table: another table is another fingerprint.
    let other = folder(9, TENSOR, r#"{"normalize": false}"#);
    let f = StaticEmbedder::load(other.path(), "tiny").unwrap();
    assert_ne!(e.fingerprint(), f.fingerprint());
}

#[test]
fn damaged_and_foreign_folders_are_model_errors_that_say_how_to_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let msg = message(&tmp.path().join("nope"));
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(msg.contains("quarry model distill"), "{msg}");

    let dir = folder(8, "weights", "{}");
    assert!(message(dir.path()).contains("no `embeddings` tensor"));
    let dir = folder(5, TENSOR, "{}");
    assert!(message(dir.path()).contains("5 rows for a vocabulary of 8"));
    let dir = folder(8, TENSOR, "{not json");
    assert!(message(dir.path()).contains("config.json is not valid"));
    let dir = folder(8, TENSOR, "{}");
    fs::write(dir.path().join("tokenizer.json"), "garbage").unwrap();
    assert!(message(dir.path()).contains("tokenizer.json"));
    let dir = folder(8, TENSOR, "{}");
    fs::write(dir.path().join("model.safetensors"), b"garbage").unwrap();
    assert!(message(dir.path()).contains("not a safetensors file"));

    // A table whose bytes no longer match the sha256 its config records.
    let dir = folder(8, TENSOR, r#"{"quarry": {"revision": "00"}}"#);
    let msg = message(dir.path());
    assert!(msg.contains("damaged"), "{msg}");
    assert!(msg.contains("--force"), "{msg}");

    // Non-finite values, and a table of the wrong rank.
    let dir = folder(8, TENSOR, "{}");
    let mut values: Vec<f32> = (0..8).flat_map(row).collect();
    values[5] = f32::NAN;
    let t = Tensor::from_vec(values, (8, 4), &Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &HashMap::from([(TENSOR, t)]),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    assert!(message(dir.path()).contains("not finite"));
    let t = Tensor::from_vec(vec![1f32; 32], 32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &HashMap::from([(TENSOR, t)]),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    assert!(message(dir.path()).contains("expected two dimensions"));
}
