//! Parity of the local embedder with sentence-transformers' all-MiniLM-L6-v2.
//!
//! The fixture `tests/fixtures/minilm_parity.json` (a copy of the reference set) holds texts with the
//! vectors and token counts sentence-transformers computed. The model is downloaded into the
//! model cache on first use (`QUARRY_MODEL_DIR` overrides where).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use quarry_core::embed::cosine;
use quarry_core::{Embedder, InputKind};
use quarry_embed::{DEFAULT_MODEL, LocalEmbedder, ensure_model, model_cache_dir};

#[derive(serde::Deserialize)]
struct Fixture {
    max_seq_length: usize,
    items: Vec<Item>,
}

#[derive(serde::Deserialize)]
struct Item {
    text: String,
    tokens_untruncated: Option<usize>,
    embedding: Vec<f32>,
}

fn fixture() -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm_parity.json");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read the fixture {}: {e}", path.display()));
    serde_json::from_slice(&bytes).expect("the fixture is valid JSON")
}

/// One embedder for the tests of this file (loaded, and downloaded if need be, once).
fn embedder() -> &'static LocalEmbedder {
    static EMBEDDER: OnceLock<LocalEmbedder> = OnceLock::new();
    EMBEDDER.get_or_init(load)
}

fn load() -> LocalEmbedder {
    let started = Instant::now();
    let dir = ensure_model(DEFAULT_MODEL, &model_cache_dir(), &|done, total| {
        if done == total || done % (16 << 20) < (1 << 16) {
            eprintln!("downloading {DEFAULT_MODEL}: {done}/{total} bytes");
        }
    })
    .expect("the model is cached or can be downloaded");
    let embedder = LocalEmbedder::load(&dir, DEFAULT_MODEL).expect("the model loads");
    eprintln!("model ready in {:.2?}", started.elapsed());
    embedder
}

#[test]
fn matches_sentence_transformers() {
    let fixture = fixture();
    let e = embedder();
    let spec = e.spec();
    assert_eq!(spec.provider, "local");
    assert_eq!(spec.model, DEFAULT_MODEL);
    assert_eq!(
        spec.revision,
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    );
    assert_eq!(spec.dimensions, 384);
    assert_eq!(spec.max_tokens, fixture.max_seq_length);
    assert_eq!((spec.pooling.as_str(), spec.normalized), ("mean", true));
    assert_eq!(e.fingerprint(), spec.fingerprint());

    let texts: Vec<&str> = fixture.items.iter().map(|i| i.text.as_str()).collect();
    let started = Instant::now();
    let batch = e.embed(&texts, InputKind::Document).expect("embeds");
    eprintln!(
        "{} texts embedded in {:.2?}",
        texts.len(),
        started.elapsed()
    );
    assert_eq!(batch.len(), texts.len());

    let mut min = (f32::INFINITY, "");
    for (item, v) in fixture.items.iter().zip(&batch) {
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm} for {:?}", item.text);
        let cos = cosine(v, &item.embedding);
        if cos < min.0 {
            min = (cos, &item.text);
        }
        assert!(cos >= 0.999, "cosine {cos} for {:?}", item.text);
        if let Some(want) = item.tokens_untruncated {
            assert_eq!(e.count_tokens(&item.text), Some(want), "{:?}", item.text);
        }
    }
    eprintln!(
        "minimum cosine with sentence-transformers: {:.6} ({:?})",
        min.0,
        &min.1[..min.1.len().min(40)]
    );

    // One by one gives the vectors of the batch, in the input order.
    for (text, v) in texts.iter().zip(&batch) {
        let single = e.embed(&[text], InputKind::Query).expect("embeds");
        assert_eq!(single.len(), 1);
        let cos = cosine(&single[0], v);
        assert!(cos > 0.9999, "single vs batch cosine {cos} for {text:?}");
    }

    // Reversing the input reverses the output.
    let reversed: Vec<&str> = texts.iter().rev().copied().collect();
    let back = e.embed(&reversed, InputKind::Document).expect("embeds");
    for (v, w) in back.iter().rev().zip(&batch) {
        assert!(cosine(v, w) > 0.9999);
    }
}

#[test]
fn edge_inputs_do_not_panic() {
    let e = embedder();
    assert!(e.embed(&[], InputKind::Query).expect("embeds").is_empty());
    let long = "word ".repeat(5000);
    let texts = ["", " ", "\u{0}\u{7}", "🚀🚀🚀", long.as_str(), "a"];
    let vs = e.embed(&texts, InputKind::Document).expect("embeds");
    assert_eq!(vs.len(), texts.len());
    for v in &vs {
        assert_eq!(v.len(), 384);
        assert!(v.iter().all(|x| x.is_finite()));
    }
    // The empty text sees [CLS] [SEP]; the long one is truncated but counted whole.
    assert_eq!(e.count_tokens(""), Some(2));
    assert_eq!(e.count_tokens(&long), Some(5002));
    // The count that comes back with the vectors is that of the inputs the model ran on: each
    // text's tokens capped at the 256 of the truncation.
    let (again, counted) = e
        .embed_counted(&texts, InputKind::Document)
        .expect("embeds");
    assert_eq!(again, vs);
    let want: usize = texts
        .iter()
        .map(|t| e.count_tokens(t).unwrap().min(256))
        .sum();
    assert_eq!(counted, Some(want));
    // More texts than one batch, of mixed lengths: the order still follows the input.
    let many: Vec<String> = (0..70)
        .map(|i| format!("document {i} {}", "about rust ".repeat(i % 7)))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let all = e.embed(&refs, InputKind::Document).expect("embeds");
    for i in [0, 33, 69] {
        let one = e.embed(&refs[i..=i], InputKind::Document).expect("embeds");
        assert!(cosine(&one[0], &all[i]) > 0.9999, "text {i}");
    }
}

/// Quarry's encoder (fused attention, bias, GELU and norm steps) against candle-transformers'
/// `BertModel` with the same weights: over batches of mixed lengths (so with padding), long
/// texts (the truncation at 256) and the shortest texts (2 and 3 tokens with [CLS] and [SEP]),
/// every vector within f32 rounding.
#[test]
fn the_encoder_matches_candles_bert_model() {
    let e = embedder();
    let reference =
        LocalEmbedder::load_candle_reference(e.dir(), DEFAULT_MODEL).expect("the model loads");
    let fixture = fixture();
    let mut texts: Vec<String> = fixture.items.iter().map(|i| i.text.clone()).collect();
    texts.extend((0..40).map(|i| {
        format!(
            "passage {i}: {}",
            "retrieval engines fuse lexical and dense signals; ".repeat(i * i % 37)
        )
    }));
    texts.extend(["", "a", "x y"].map(String::from));
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ours = e.embed(&refs, InputKind::Document).expect("embeds");
    let theirs = reference.embed(&refs, InputKind::Document).expect("embeds");
    assert_eq!((ours.len(), theirs.len()), (refs.len(), refs.len()));
    let mut min = f32::INFINITY;
    for ((a, b), text) in ours.iter().zip(&theirs).zip(&refs) {
        let cos = cosine(a, b);
        min = min.min(cos);
        assert!(
            cos > 0.99999,
            "cosine {cos} for {:?}",
            &text[..text.len().min(60)]
        );
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "largest difference {worst} for {text:?}");
    }
    eprintln!(
        "minimum cosine with candle's BertModel over {} texts: {min:.7}",
        refs.len()
    );
}
