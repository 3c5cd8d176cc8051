//! Tests of `Engine::chunks_without_vectors`: every chunk lacking a vector once, paged in hash
//! order, with the text the embedder is given.

use super::*;
use crate::error::ErrorKind;
use crate::test_support::{Model, Models, doc};
use quarry_core::{ChunkOptions, ChunkSizer, ContentHash, Embedder};
use std::sync::Arc;

#[test]
fn chunks_without_vectors_pages_every_missing_chunk_once_in_hash_order() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::new("letters", 26, false);
    let engine = Engine::open(
        dir.path(),
        EngineOptions {
            chunk: ChunkOptions {
                max_tokens: 8,
                overlap: 0,
                sizer: ChunkSizer::Chars,
                context_chars: 0,
            },
            embedder: "a".into(),
            embedders: Some(Arc::new(Models(vec![("a", model.clone())]))),
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let texts = [
        "apple orchard in the hills",
        "bright copper kettles shine",
        "crisp winter mornings here",
        "distant thunder rolls again",
        "eager students read papers",
    ];
    let chunker = engine.chunker("c").unwrap();
    let mut changes = Vec::new();
    // d5 is d0's twin: the same chunk, exported once.
    for (i, t) in texts.iter().chain(&texts[..1]).enumerate() {
        let mut d = doc(&format!("d{i}"), t);
        d.title = "T".into();
        let chunks = chunker.chunk(&d.title, &d.text, d.format);
        changes.push(Change::Upsert(d, chunks));
    }
    engine.apply_with("c", changes, false).unwrap();
    assert_eq!(model.texts(), 0);

    let fp = model.fingerprint();
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = engine
            .chunks_without_vectors("c", &fp, after.as_ref(), 2)
            .unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.0);
        all.extend(page);
    }
    assert_eq!(all.len(), texts.len(), "{all:?}");
    assert!(
        all.windows(2).all(|w| w[0].0 < w[1].0),
        "hash order, no repeats"
    );
    for (h, title, text) in &all {
        assert_eq!(title, "T");
        assert!(text.starts_with("T\n"), "{text}");
        assert_eq!(
            *h,
            ContentHash::of(text.as_bytes()),
            "the id is the hash of the text"
        );
    }

    // Two chunks get their vectors: the others remain.
    let vectors: Vec<(ContentHash, Vec<f32>)> = all[..2]
        .iter()
        .map(|(h, _, t)| {
            (
                *h,
                model
                    .embed(&[t], quarry_core::InputKind::Document)
                    .unwrap()
                    .remove(0),
            )
        })
        .collect();
    engine.put_vectors("c", model.spec(), vectors).unwrap();
    let left = engine.chunks_without_vectors("c", &fp, None, 100).unwrap();
    assert_eq!(left, all[2..].to_vec());
    // Another fingerprint lacks them all.
    let other = Model::new("other", 26, false).fingerprint();
    assert_eq!(
        engine
            .chunks_without_vectors("c", &other, None, 100)
            .unwrap()
            .len(),
        texts.len()
    );

    let e = engine
        .chunks_without_vectors("nope", &fp, None, 10)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}
