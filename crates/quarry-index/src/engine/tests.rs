//! Engine tests: crash recovery by change-log replay and by full rebuild, and a property test of
//! upserts and deletes with shared chunks against a model.

use super::*;
use crate::catalog::Catalog;
use proptest::prelude::*;
use quarry_core::{ChunkSizer, DocFormat, GroupBy, Mode, QueryOptions};
use std::collections::{BTreeMap, BTreeSet};

fn doc(id: &str, text: &str) -> Document {
    Document {
        doc_id: id.into(),
        title: String::new(),
        text: text.into(),
        source: "test".into(),
        format: DocFormat::Text,
        metadata: Default::default(),
        acl: vec![],
        content_hash: ContentHash::of(text.as_bytes()),
    }
}

/// Paragraphs of 25–30 characters: with 8-token (32-character) chunks each is exactly one chunk.
const PARAS: [&str; 6] = [
    "apple orchard in the hills",
    "bright copper kettles shine",
    "crisp winter mornings here",
    "distant thunder rolls again",
    "eager students read papers",
    "fresh bread from the ovens",
];

fn options() -> EngineOptions {
    EngineOptions {
        chunk: ChunkOptions {
            max_tokens: 8,
            overlap: 0,
            sizer: ChunkSizer::Chars,
        },
        ..EngineOptions::default()
    }
}

fn upsert(engine: &Engine, id: &str, text: &str) -> ApplyStats {
    let chunker = quarry_core::Chunker::new(engine.options().chunk, None).unwrap();
    let d = doc(id, text);
    let chunks = chunker.chunk(&d.title, &d.text, d.format);
    engine.apply("c", vec![Change::Upsert(d, chunks)]).unwrap()
}

fn docs_matching(engine: &Engine, word: &str) -> BTreeSet<String> {
    let q = QueryOptions::new(word, 1000, Mode::Bm25, GroupBy::Document).unwrap();
    engine
        .searcher("c")
        .unwrap()
        .search(&q)
        .unwrap()
        .results
        .into_iter()
        .map(|h| h.doc_id)
        .collect()
}

#[test]
fn unchanged_documents_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    let first = upsert(&engine, "a", PARAS[0]);
    assert_eq!((first.added, first.generation), (1, Some(1)));
    let again = upsert(&engine, "a", PARAS[0]);
    assert_eq!((again.unchanged, again.generation), (1, None));
    assert_eq!(engine.stats("c").unwrap().generation, 1);
}

#[test]
fn crash_between_catalog_and_bm25_commit_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(dir.path(), options()).unwrap();
        upsert(&engine, "a", PARAS[0]);
    }
    // Simulate a process that committed the catalog and died before the BM25 commit.
    {
        let mut catalog = Catalog::open(&dir.path().join("catalog.sqlite3")).unwrap();
        let d = doc("b", PARAS[1]);
        let chunks = quarry_core::Chunker::new(options().chunk, None)
            .unwrap()
            .chunk(&d.title, &d.text, d.format);
        let mut tx = catalog.begin("c").unwrap();
        tx.upsert(&d, &chunks).unwrap();
        tx.delete("a").unwrap();
        tx.commit().unwrap();
    }
    let engine = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(
        docs_matching(&engine, "copper"),
        BTreeSet::from(["b".to_owned()])
    );
    assert!(
        docs_matching(&engine, "orchard").is_empty(),
        "the deletion was replayed too"
    );
    let ix = engine.open_indexes("c").unwrap();
    assert_eq!(
        ix.bm25.generation().unwrap(),
        engine.stats("c").unwrap().generation
    );
}

#[test]
fn a_log_that_does_not_reach_back_means_a_full_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(dir.path(), options()).unwrap();
        upsert(&engine, "a", PARAS[0]);
    }
    {
        let mut catalog = Catalog::open(&dir.path().join("catalog.sqlite3")).unwrap();
        for (id, text) in [("b", PARAS[1]), ("c", PARAS[2])] {
            let d = doc(id, text);
            let chunks = quarry_core::Chunker::new(options().chunk, None)
                .unwrap()
                .chunk(&d.title, &d.text, d.format);
            let mut tx = catalog.begin("c").unwrap();
            tx.upsert(&d, &chunks).unwrap();
            tx.commit().unwrap();
        }
        catalog.prune_changelog("c", 100).unwrap();
        assert_eq!(catalog.changed_since("c", 1).unwrap(), None);
    }
    let engine = Engine::open(dir.path(), options()).unwrap();
    for (word, id) in [("orchard", "a"), ("copper", "b"), ("winter", "c")] {
        assert_eq!(
            docs_matching(&engine, word),
            BTreeSet::from([id.to_owned()]),
            "{word}"
        );
    }
    assert_eq!(engine.searcher("c").unwrap().num_chunks(), 3);
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(usize, Vec<usize>),
    Delete(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..5usize, proptest::collection::vec(0..PARAS.len(), 1..4)).prop_map(|(d, p)| Op::Upsert(d, p)),
        1 => (0..5usize).prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// After any sequence of upserts and deletes (documents sharing paragraphs, so chunks are
    /// shared), each word finds exactly the documents of the model that contain it, and the
    /// catalog stores each distinct paragraph once.
    #[test]
    fn upserts_and_deletes_match_a_model(ops in proptest::collection::vec(op(), 1..10)) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), options()).unwrap();
        let mut model: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for op in &ops {
            match op {
                Op::Upsert(d, paras) => {
                    let text = paras.iter().map(|&p| PARAS[p]).collect::<Vec<_>>().join("\n\n");
                    upsert(&engine, &format!("d{d}"), &text);
                    model.insert(format!("d{d}"), paras.clone());
                }
                Op::Delete(d) => {
                    let stats = engine.apply("c", vec![Change::Delete(format!("d{d}"))]).unwrap();
                    prop_assert_eq!(stats.deleted == 1, model.remove(&format!("d{d}")).is_some());
                }
            }
        }
        let stats = engine.stats("c").unwrap();
        let distinct: BTreeSet<usize> = model.values().flatten().copied().collect();
        prop_assert_eq!(stats.documents as usize, model.len());
        prop_assert_eq!(stats.chunks as usize, distinct.len());
        prop_assert_eq!(engine.searcher("c").unwrap().num_chunks() as usize, distinct.len());
        for (p, para) in PARAS.iter().enumerate() {
            let word = para.split(' ').nth(1).unwrap();
            let expect: BTreeSet<String> = model.iter().filter(|(_, ps)| ps.contains(&p)).map(|(d, _)| d.clone()).collect();
            prop_assert_eq!(docs_matching(&engine, word), expect, "word {}", word);
        }
    }
}
