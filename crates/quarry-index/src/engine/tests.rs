//! Engine tests: crash recovery by change-log replay and by full rebuild, and a property test of
//! upserts and deletes with shared chunks against a model.

use super::*;
use crate::bm25::Merges;
use crate::catalog::Catalog;
use crate::collection::EmbedderSource;
use crate::error::Result;
use proptest::prelude::*;
use quarry_core::InputKind;
use quarry_core::{ChunkOptions, Embedder, Principal};
use quarry_core::{ChunkSizer, GroupBy, Mode, QueryOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::test_support::doc;

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
            context_chars: 0,
        },
        ..EngineOptions::default()
    }
}

/// [`options`] with BM25 contexts of `chars` characters on each side of a chunk.
fn options_with_context(chars: usize) -> EngineOptions {
    let mut opts = options();
    opts.chunk.context_chars = chars;
    opts
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
        .search(&q, &admin())
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
    assert_eq!(engine.stats("c", &admin()).unwrap().generation, Some(1));
}

#[test]
fn generation_is_for_admins_and_documents_without_acl_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    assert!(engine.documents_without_acl().unwrap().is_empty());
    upsert(&engine, "a", PARAS[0]);
    upsert(&engine, "b", PARAS[1]);
    let chunker = quarry_core::Chunker::new(engine.options().chunk, None).unwrap();
    let mut d = doc("pub", PARAS[2]);
    d.acl = vec!["public".into()];
    let chunks = chunker.chunk(&d.title, &d.text, d.format);
    engine.apply("c", vec![Change::Upsert(d, chunks)]).unwrap();
    let d = doc("z", PARAS[3]);
    let chunks = chunker.chunk(&d.title, &d.text, d.format);
    engine
        .apply("other", vec![Change::Upsert(d, chunks)])
        .unwrap();
    assert_eq!(
        engine.documents_without_acl().unwrap(),
        [("c".to_owned(), 2), ("other".to_owned(), 1)]
    );
    let reader = Principal::new("r", vec![], quarry_core::Role::Reader);
    let seen = engine.stats("c", &reader).unwrap();
    assert_eq!((seen.documents, seen.generation), (3, None), "{seen:?}");
    let json = serde_json::to_value(&seen).unwrap();
    assert!(json.get("generation").is_none(), "{json}");
    assert_eq!(engine.stats("c", &admin()).unwrap().generation, Some(3));
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
        engine.stats("c", &admin()).unwrap().generation.unwrap()
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
        let stats = engine.stats("c", &admin()).unwrap();
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

/// A deterministic test embedder that counts the texts it embeds and can be made to fail.
struct Counting {
    spec: quarry_core::EmbedderSpec,
    calls: std::sync::atomic::AtomicUsize,
    fail: std::sync::atomic::AtomicBool,
    /// Milliseconds each call takes (a slow model).
    delay_ms: std::sync::atomic::AtomicU64,
    /// Fails a call with a text that holds this word (a model down halfway through an ingest).
    fail_on: std::sync::Mutex<Option<&'static str>>,
    /// Calls running now, and the most that ever ran at once.
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
}

impl Counting {
    fn new() -> Arc<Self> {
        Arc::new(Counting {
            spec: quarry_core::EmbedderSpec {
                provider: "hash".into(),
                model: "letters".into(),
                revision: "1".into(),
                dimensions: 26,
                pooling: "none".into(),
                normalized: true,
                max_tokens: 0,
                query_prefix: String::new(),
                document_prefix: String::new(),
            },
            calls: Default::default(),
            fail: Default::default(),
            delay_ms: Default::default(),
            fail_on: Default::default(),
            in_flight: Default::default(),
            most_in_flight: Default::default(),
        })
    }

    fn texts(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Embedder for Counting {
    fn spec(&self) -> &quarry_core::EmbedderSpec {
        &self.spec
    }
    fn fingerprint(&self) -> quarry_core::Fingerprint {
        self.spec.fingerprint()
    }
    fn embed(
        &self,
        texts: &[&str],
        _kind: InputKind,
    ) -> std::result::Result<Vec<Vec<f32>>, quarry_core::EmbedError> {
        use std::sync::atomic::Ordering::SeqCst;
        let running = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most_in_flight.fetch_max(running, SeqCst);
        let delay = self.delay_ms.load(SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(delay));
        self.in_flight.fetch_sub(1, SeqCst);
        let word = *self.fail_on.lock().unwrap();
        if self.fail.load(SeqCst) || word.is_some_and(|w| texts.iter().any(|t| t.contains(w))) {
            return Err(quarry_core::EmbedError::Provider("down".into()));
        }
        self.calls
            .fetch_add(texts.len(), std::sync::atomic::Ordering::SeqCst);
        // letter histogram: texts sharing letters are close
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; 26];
                for c in t.bytes().filter(u8::is_ascii_lowercase) {
                    v[(c - b'a') as usize] += 1.0;
                }
                quarry_core::embed::normalize(&mut v);
                v
            })
            .collect())
    }
}

struct One(Arc<Counting>);
impl EmbedderSource for One {
    fn get(&self, name: &str) -> Result<Option<Arc<dyn Embedder>>> {
        Ok((name == "count").then(|| self.0.clone() as Arc<dyn Embedder>))
    }
}

fn vector_options(e: &Arc<Counting>) -> EngineOptions {
    EngineOptions {
        embedder: "count".into(),
        embedders: Some(Arc::new(One(e.clone()))),
        ..options()
    }
}

fn search(engine: &Engine, text: &str, mode: Mode) -> SearchResponseLite {
    let q = QueryOptions::new(text, 10, mode, GroupBy::Chunk).unwrap();
    let r = engine.searcher("c").unwrap().search(&q, &admin()).unwrap();
    SearchResponseLite {
        ids: r.results.iter().map(|h| h.doc_id.clone()).collect(),
        vector_scored: r.results.iter().all(|h| h.scores.vector.is_some()),
        degraded: r.degraded,
        version: r.embedding_version,
    }
}

#[derive(Debug, PartialEq)]
struct SearchResponseLite {
    ids: Vec<String>,
    vector_scored: bool,
    degraded: bool,
    version: Option<String>,
}

#[test]
fn vectors_are_embedded_once_and_survive_a_restart_without_reembedding() {
    let dir = tempfile::tempdir().unwrap();
    let e = Counting::new();
    let before = {
        let engine = Engine::open(dir.path(), vector_options(&e)).unwrap();
        for (i, p) in PARAS.iter().enumerate() {
            let stats = upsert(&engine, &format!("d{i}"), p);
            assert_eq!((stats.embedded, stats.cache_hits), (1, 0));
        }
        // the same text in another document is a cache hit, not a model call
        let stats = upsert(&engine, "copy", PARAS[0]);
        assert_eq!((stats.embedded, stats.cache_hits), (0, 1));
        assert_eq!(e.texts(), PARAS.len());
        let r = search(&engine, "copper kettles", Mode::Vector);
        assert!(r.vector_scored && !r.degraded && r.version.is_some());
        engine.flush().unwrap();
        r
    };
    assert_eq!(before.ids[0], "d1");
    let embedded_before = e.texts();
    let engine = Engine::open(dir.path(), vector_options(&e)).unwrap();
    let after = search(&engine, "copper kettles", Mode::Vector);
    assert_eq!(after, before, "identical results after a restart");
    assert_eq!(
        e.texts(),
        embedded_before + 1,
        "only the query was embedded after the restart"
    );
    assert_eq!(
        engine.stats("c", &admin()).unwrap().vectors,
        Some(PARAS.len() as u64)
    );
}

/// A write batch loads its collection's row once under the writer lock ([`Engine::write_context`])
/// and passes it down, instead of reading it again for recovery, the BM25 contexts and the forget
/// check; a batch with chunks reads it once more before the lock, to embed them there
/// ([`Engine::embed_ahead`]).
#[test]
fn a_write_batch_reads_its_collection_row_once() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let e = Counting::new();
    let engine = Engine::open(dir.path(), vector_options(&e)).unwrap();
    // creates the collection and opens its indexes
    upsert(&engine, "a", PARAS[0]);
    for (i, p) in PARAS[1..].iter().enumerate() {
        engine.collection_row_reads.store(0, Ordering::Relaxed);
        let stats = upsert(&engine, &format!("d{i}"), p);
        assert_eq!((stats.embedded, stats.chunks_touched), (1, 1));
        assert_eq!(stats.cache_hits, 0, "embedded ahead is not a cache hit");
        assert_eq!(engine.collection_row_reads.load(Ordering::Relaxed), 2);
    }
    // a delete is a batch too
    engine.collection_row_reads.store(0, Ordering::Relaxed);
    let stats = engine.apply("c", vec![Change::Delete("a".into())]).unwrap();
    assert_eq!(stats.deleted, 1);
    assert_eq!(engine.collection_row_reads.load(Ordering::Relaxed), 1);
    assert_eq!(docs_matching(&engine, "apple"), BTreeSet::new());
}

#[test]
fn deleted_documents_leave_the_vector_index_and_crashes_are_replayed_from_stored_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let e = Counting::new();
    {
        let engine = Engine::open(dir.path(), vector_options(&e)).unwrap();
        for (i, p) in PARAS.iter().enumerate() {
            upsert(&engine, &format!("d{i}"), p);
        }
        engine.flush().unwrap();
        engine
            .apply("c", vec![Change::Delete("d1".into())])
            .unwrap();
        // no flush: the vector dump is behind the catalog, as after a crash
    }
    let engine = Engine::open(dir.path(), vector_options(&e)).unwrap();
    let r = search(&engine, "bright copper kettles shine", Mode::Vector);
    assert!(!r.ids.contains(&"d1".to_owned()), "{r:?}");
    assert_eq!(r.ids.len(), PARAS.len() - 1);
    assert_eq!(e.texts(), PARAS.len() + 1, "replay used stored vectors");
}

#[test]
fn a_failing_embedder_degrades_queries_to_bm25() {
    let dir = tempfile::tempdir().unwrap();
    let e = Counting::new();
    let engine = Engine::open(dir.path(), vector_options(&e)).unwrap();
    for (i, p) in PARAS.iter().enumerate() {
        upsert(&engine, &format!("d{i}"), p);
    }
    e.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = search(&engine, "copper", Mode::Hybrid);
    assert!(r.degraded);
    assert_eq!(r.ids, ["d1"], "BM25 still answers");
    assert!(!r.vector_scored);
    // and a write that needs embedding fails without writing anything
    let err = upsert_err(&engine, "new", "zebra crossing ahead");
    assert!(err.contains("down"), "{err}");
    assert_eq!(
        engine.stats("c", &admin()).unwrap().documents,
        PARAS.len() as u64
    );
}

fn upsert_err(engine: &Engine, id: &str, text: &str) -> String {
    let chunker = quarry_core::Chunker::new(engine.options().chunk, None).unwrap();
    let d = doc(id, text);
    let chunks = chunker.chunk(&d.title, &d.text, d.format);
    engine
        .apply("c", vec![Change::Upsert(d, chunks)])
        .unwrap_err()
        .to_string()
}

#[test]
fn hybrid_fusion_uses_both_retrievers() {
    let dir = tempfile::tempdir().unwrap();
    let e = Counting::new();
    let engine = Engine::open(dir.path(), vector_options(&e)).unwrap();
    for (i, p) in PARAS.iter().enumerate() {
        upsert(&engine, &format!("d{i}"), p);
    }
    let q = QueryOptions::new("copper kettles", 10, Mode::Hybrid, GroupBy::Document).unwrap();
    let r = engine.searcher("c").unwrap().search(&q, &admin()).unwrap();
    // the BM25 match is first, and carries both scores with ranks
    assert_eq!(r.results[0].doc_id, "d1");
    let s = &r.results[0].scores;
    assert_eq!((s.bm25_rank, s.vector_rank), (Some(1), Some(1)));
    // the default fusion, adaptive (a weighted fusion with the query's own alpha): first in both
    // max-normalised lists scores (1 − alpha) + alpha = 1 whatever the alpha
    assert!((r.results[0].score - 1.0).abs() < 1e-6, "fused score");
    let rrf = q
        .clone()
        .with_fusion(quarry_core::Fusion::Rrf { k: 60.0 })
        .unwrap();
    let r_rrf = engine
        .searcher("c")
        .unwrap()
        .search(&rrf, &admin())
        .unwrap();
    assert_eq!(r_rrf.results[0].doc_id, "d1");
    assert!(
        (r_rrf.results[0].score - 2.0 / 61.0).abs() < 1e-6,
        "RRF score"
    );
    // documents only the vector side found are there too
    assert_eq!(r.results.len(), PARAS.len());
    // weighted with alpha = 0 ranks by BM25 only, alpha = 1 by vectors only
    let vec_order = search(&engine, "copper kettles", Mode::Vector).ids;
    let q1 = q
        .clone()
        .with_fusion(quarry_core::Fusion::Weighted { alpha: 1.0 })
        .unwrap();
    let r1 = engine.searcher("c").unwrap().search(&q1, &admin()).unwrap();
    assert_eq!(
        r1.results
            .iter()
            .map(|h| h.doc_id.clone())
            .collect::<Vec<_>>(),
        vec_order
    );
}

fn admin() -> quarry_core::Principal {
    quarry_core::Principal::local_admin()
}

/// The texts of the chunks a BM25 query for `word` finds.
fn chunks_matching(engine: &Engine, word: &str) -> BTreeSet<String> {
    let q = QueryOptions::new(word, 1000, Mode::Bm25, GroupBy::Chunk).unwrap();
    let found = engine.searcher("c").unwrap().search(&q, &admin()).unwrap();
    found.results.into_iter().map(|h| h.text).collect()
}

#[test]
fn bm25_finds_a_chunk_by_its_context_and_follows_changes_of_its_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options_with_context(200);
    let two = |a: &str, b: &str| format!("{a}\n\n{b}");
    {
        let engine = Engine::open(dir.path(), opts.clone()).unwrap();
        upsert(&engine, "a", &two(PARAS[0], PARAS[1]));
        upsert(&engine, "b", PARAS[3]);
        // "kettles" is in the second chunk only; the first has it in its context
        assert_eq!(
            chunks_matching(&engine, "kettles"),
            BTreeSet::from([PARAS[0].to_owned(), PARAS[1].to_owned()])
        );
        // the second paragraph changes; the first chunk is the same chunk, with a new neighbour
        upsert(&engine, "a", &two(PARAS[0], PARAS[2]));
        assert!(chunks_matching(&engine, "kettles").is_empty());
        assert_eq!(
            chunks_matching(&engine, "crisp"),
            BTreeSet::from([PARAS[0].to_owned(), PARAS[2].to_owned()])
        );
    }
    // a rebuild from the catalog computes the same contexts
    std::fs::remove_dir_all(dir.path().join("collections/c/bm25")).unwrap();
    let engine = Engine::open(dir.path(), opts).unwrap();
    assert_eq!(
        chunks_matching(&engine, "crisp"),
        BTreeSet::from([PARAS[0].to_owned(), PARAS[2].to_owned()])
    );
    assert_eq!(
        chunks_matching(&engine, "thunder"),
        BTreeSet::from([PARAS[3].to_owned()])
    );
}

#[test]
fn without_context_bm25_matches_the_chunk_text_only() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    upsert(&engine, "a", &format!("{}\n\n{}", PARAS[0], PARAS[1]));
    assert_eq!(
        chunks_matching(&engine, "kettles"),
        BTreeSet::from([PARAS[1].to_owned()])
    );
}

#[test]
fn a_chunk_shared_by_documents_of_other_readers_is_not_found_by_their_contexts() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options_with_context(200);
    let engine = Engine::open(dir.path(), opts).unwrap();
    let chunker = quarry_core::Chunker::new(engine.options().chunk, None).unwrap();
    let put = |id: &str, text: String, acl: &[&str]| {
        let mut d = doc(id, &text);
        d.acl = acl.iter().map(|a| a.to_string()).collect();
        let chunks = chunker.chunk(&d.title, &d.text, d.format);
        engine.apply("c", vec![Change::Upsert(d, chunks)]).unwrap();
    };
    // PARAS[0] is one chunk held by both documents; PARAS[1] is alice's alone, PARAS[2] bob's
    put(
        "a",
        format!("{}\n\n{}", PARAS[0], PARAS[1]),
        &["user:alice"],
    );
    put("b", format!("{}\n\n{}", PARAS[0], PARAS[2]), &["user:bob"]);
    let bob = quarry_core::Principal::new("bob", vec![], quarry_core::Role::Reader);
    let found = |who: &quarry_core::Principal, word: &str| -> BTreeSet<String> {
        let q = QueryOptions::new(word, 100, Mode::Bm25, GroupBy::Chunk).unwrap();
        let hits = engine.searcher("c").unwrap().search(&q, who).unwrap();
        hits.results.into_iter().map(|h| h.text).collect()
    };
    // "kettles" is only in alice's document: bob finds nothing, not even the shared chunk
    assert!(found(&bob, "kettles").is_empty());
    // the shared chunk is indexed without context, so bob's own neighbour does not reach it either
    assert_eq!(found(&bob, "crisp"), BTreeSet::from([PARAS[2].to_owned()]));
    // bob's own chunk has the shared one in its context
    assert_eq!(
        found(&bob, "orchard"),
        BTreeSet::from([PARAS[0].to_owned(), PARAS[2].to_owned()])
    );
    // a chunk of one reader keeps its context
    assert_eq!(
        found(&admin(), "kettles"),
        BTreeSet::from([PARAS[1].to_owned()])
    );
}

#[test]
fn contexts_are_cut_on_character_boundaries_of_multibyte_text() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options_with_context(11);
    let engine = Engine::open(dir.path(), opts).unwrap();
    let (a, b) = ("ññññ ññññ ññññ ññññ ññññ", "ñañaña kettles");
    let text = format!("{a}\n\n{b}\n\n{}", PARAS[0]);
    // the catalog reads 4 bytes a character before the last chunk: that cut is inside a "ñ"
    let last = text.find(PARAS[0]).unwrap();
    assert!(!text.is_char_boundary(last - 4 * 11));
    upsert(&engine, "a", &text);
    let both = BTreeSet::from([b.to_owned(), PARAS[0].to_owned()]);
    assert_eq!(chunks_matching(&engine, "kettles"), both);
    assert_eq!(chunks_matching(&engine, "apple"), both);
    // 11 characters after `b` end inside "orchard": it is left out of b's context
    assert_eq!(
        chunks_matching(&engine, "orchard"),
        BTreeSet::from([PARAS[0].to_owned()])
    );
    assert_eq!(chunks_matching(&engine, "ñandú").len(), 0);
    // the last chunk's context starts after the cut word "ñañaña"; the first chunk's reaches it
    assert_eq!(
        chunks_matching(&engine, "ñañaña"),
        BTreeSet::from([a.to_owned(), b.to_owned()])
    );
}

#[test]
fn small_commits_merge_into_one_bm25_segment() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    for (i, p) in PARAS.iter().enumerate() {
        upsert(&engine, &format!("d{i}"), p);
    }
    let searcher = engine.searcher("c").unwrap();
    assert_eq!(searcher.num_chunks(), PARAS.len() as u64);
    // tantivy's default policy waits for eight segments of a size; each would cost every query
    assert_eq!(searcher.num_segments(), 1, "six one-chunk commits");
    assert_eq!(
        docs_matching(&engine, "kettles"),
        BTreeSet::from(["d1".to_owned()])
    );
}

#[test]
fn a_bulk_ingest_merges_lazily_and_its_flush_leaves_one_bm25_segment() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    let generation = {
        let _bulk = engine.bulk_ingest("c");
        for (i, p) in PARAS.iter().enumerate() {
            upsert(&engine, &format!("d{i}"), p);
        }
        // six one-chunk commits, fewer than the eight of a size a lazy commit merges
        assert_eq!(engine.searcher("c").unwrap().num_segments(), PARAS.len());
        let generation = engine.collection("c").unwrap().generation;
        engine.flush().unwrap();
        generation
    };
    let searcher = engine.searcher("c").unwrap();
    assert_eq!(searcher.num_segments(), 1, "settled as eager commits would");
    assert_eq!(searcher.num_chunks(), PARAS.len() as u64);
    assert_eq!(
        docs_matching(&engine, "kettles"),
        BTreeSet::from(["d1".to_owned()])
    );
    // the merges kept the commit's generation (its payload on disk): no rebuild at the next open
    let ix = engine.indexes(&engine.collection("c").unwrap()).unwrap();
    assert_eq!(ix.bm25.generation().unwrap(), generation);
    // the guard is gone: commits merge eagerly again
    upsert(&engine, "d9", "a seventh paragraph about kettles");
    assert_eq!(engine.searcher("c").unwrap().num_segments(), 1);
}

/// The BM25 key map (chunk key → address, read by ACL-filtered vector search) after each commit
/// equals one read afresh, and shares the maps of unchanged segments with the one before.
#[test]
fn a_bm25_reload_reads_the_keys_of_new_and_changed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    let _bulk = engine.bulk_ingest("c"); // one segment a commit, none merged
    let keys = || {
        let ix = engine.indexes(&engine.collection("c").unwrap()).unwrap();
        let (published, fresh) = (ix.bm25.searcher().1, ix.bm25.fresh_key_map());
        assert_eq!(published.entries(), fresh.entries());
        published
    };
    for (i, p) in PARAS.iter().take(4).enumerate() {
        upsert(&engine, &format!("d{i}"), p);
    }
    let four = keys();
    assert_eq!(four.entries().len(), 4);
    upsert(&engine, "d4", PARAS[4]);
    let five = keys();
    assert_eq!((five.entries().len(), five.shared_with(&four)), (5, 4));
    // d1's chunk deleted (its one-chunk segment dropped), its new chunk in a new segment
    upsert(&engine, "d1", PARAS[5]);
    let six = keys();
    assert_eq!((six.entries().len(), six.shared_with(&five)), (5, 4));
    let now: BTreeSet<u64> = six.entries().iter().map(|e| e.0).collect();
    let gone: Vec<u64> = (five.entries().iter().map(|e| e.0))
        .filter(|k| !now.contains(k))
        .collect();
    assert_eq!(gone.len(), 1, "d1's old chunk");
    assert!(five.get(gone[0]).is_some() && six.get(gone[0]).is_none());
}

#[test]
fn grouping_by_document_looks_deeper_past_a_document_of_many_matching_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    // 150 distinct one-chunk paragraphs that outscore the other documents: BM25's first pass
    // (100 chunks) holds one document, and the searcher must look deeper for the next two
    let big: Vec<String> = (0..150)
        .map(|i| format!("kettles kettles w{i:03}"))
        .collect();
    upsert(&engine, "big", &big.join("\n\n"));
    upsert(&engine, "a", "kettles shine in the kitchen");
    upsert(&engine, "b", "old copper kettles for sale");
    assert_eq!(engine.searcher("c").unwrap().num_chunks(), 152);
    let q = QueryOptions::new("kettles", 3, Mode::Bm25, GroupBy::Document).unwrap();
    let r = engine.searcher("c").unwrap().search(&q, &admin()).unwrap();
    let ids: Vec<&str> = r.results.iter().map(|h| h.doc_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[0], "big");
    assert_eq!(
        ids[1..].iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(["a", "b"])
    );
}

/// A data directory, a folder of one file per paragraph of [`PARAS`], an engine over `e` and
/// ingest options of two documents a batch (so the folder is three batches).
fn batched(
    e: &Arc<Counting>,
) -> (
    tempfile::TempDir,
    tempfile::TempDir,
    Engine,
    crate::IngestOptions,
) {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    for (i, p) in PARAS.iter().enumerate() {
        std::fs::write(files.path().join(format!("p{i}.txt")), p).unwrap();
    }
    let engine = Engine::open(data.path(), vector_options(e)).unwrap();
    let opts = crate::IngestOptions {
        collection: "c".into(),
        batch_docs: 2,
        ..crate::IngestOptions::default()
    };
    (data, files, engine, opts)
}

/// A progress display that notes how BM25 commits of collection `c` merge at each advance.
struct MergesSeen<'a>(&'a Engine, Mutex<Vec<Merges>>);

impl crate::Progress for MergesSeen<'_> {
    fn advance(&self, _bytes: u64, _documents: u64) {
        self.1.lock().unwrap().push(self.0.merges("c"));
    }
}

/// An ingest of several batches: each embedded and committed on the committer's threads while the
/// next is read; every chunk is embedded once and counted as embedded, not as a cache hit; a
/// model that fails stops the ingest with its error and commits nothing of the failing batch.
#[test]
fn an_ingest_in_batches_embeds_each_chunk_once_and_stops_at_a_failing_model() {
    let e = Counting::new();
    let (_data, files, engine, opts) = batched(&e);
    let paths = [files.path().to_path_buf()];
    let seen = MergesSeen(&engine, Mutex::new(Vec::new()));
    let s = crate::ingest(&engine, &paths, &opts, &seen).unwrap();
    // BM25 merged lazily while the batches were read, and the run's end merged what was left
    let seen = seen.1.into_inner().unwrap();
    assert!(
        !seen.is_empty() && seen.iter().all(|m| *m == Merges::Lazy),
        "{seen:?}"
    );
    assert_eq!(engine.merges("c"), Merges::Eager);
    assert_eq!(engine.searcher("c").unwrap().num_segments(), 1);
    assert_eq!(s.added, PARAS.len() as u64, "{s:?}");
    assert!(s.chunks >= PARAS.len() as u64);
    assert_eq!((s.embedded, s.cache_hits), (s.chunks, 0), "{s:?}");
    assert_eq!(e.texts() as u64, s.chunks, "each chunk embedded once");
    // three batches through the pipeline, one in the model at a time
    assert_eq!(
        e.most_in_flight.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // the progress bar's "of the total to embed": every chunk the model was handed, queued once
    assert_eq!(engine.telemetry().document_embedding().queued, s.chunks);
    let stats = engine.stats("c", &admin()).unwrap();
    assert_eq!(
        (stats.documents, stats.vectors),
        (PARAS.len() as u64, Some(s.chunks))
    );
    for word in ["apple", "kettles"] {
        assert!(!docs_matching(&engine, word).is_empty(), "{word}");
    }

    // Three new files and a model that is down: the error names the model, nothing is added.
    for i in 0..3 {
        std::fs::write(
            files.path().join(format!("new{i}.txt")),
            format!("zebra {i} quartz"),
        )
        .unwrap();
    }
    e.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = crate::ingest(&engine, &paths, &opts, &crate::NoProgress).unwrap_err();
    assert!(err.to_string().contains("down"), "{err}");
    // the new chunks were queued (one each, with their own text), the unchanged ones were not
    let queued = engine.telemetry().document_embedding().queued;
    assert!(
        queued > s.chunks && queued <= s.chunks + 3,
        "{queued} queued after {} chunks and 3 new one-chunk files",
        s.chunks
    );
    assert_eq!(
        engine.stats("c", &admin()).unwrap().documents,
        PARAS.len() as u64
    );
    assert!(docs_matching(&engine, "zebra").is_empty());
}

/// A model that fails at the fourth batch of an ingest (three before it embedded, committed in
/// order): the ingest stops with the model's error, the three batches before stay committed and
/// searchable, nothing of the fourth is, and no two model calls ever ran at once (each is slow
/// enough here to overlap the next batch's reading and the commit of the one before).
#[test]
fn a_later_batchs_model_error_stops_the_ingest_and_keeps_the_batches_before() {
    use std::sync::atomic::Ordering::SeqCst;
    let e = Counting::new();
    e.delay_ms.store(30, SeqCst);
    *e.fail_on.lock().unwrap() = Some("xylophone");
    let (_data, files, engine, opts) = batched(&e);
    // read last (the walk is in name order): the fourth batch
    std::fs::write(files.path().join("q.txt"), "a xylophone in the hall").unwrap();
    let paths = [files.path().to_path_buf()];
    let err = crate::ingest(&engine, &paths, &opts, &crate::NoProgress).unwrap_err();
    assert!(err.to_string().contains("down"), "{err}");
    assert_eq!(e.most_in_flight.load(SeqCst), 1, "one model call at a time");
    let stats = engine.stats("c", &admin()).unwrap();
    assert_eq!(stats.documents, PARAS.len() as u64, "{stats:?}");
    assert_eq!(
        stats.vectors,
        Some(e.texts() as u64),
        "every committed chunk has its vector"
    );
    for word in ["apple", "kettles"] {
        assert!(!docs_matching(&engine, word).is_empty(), "{word}");
    }
    assert!(docs_matching(&engine, "xylophone").is_empty());
    // the same ingest with the model back: only the fourth batch is new
    *e.fail_on.lock().unwrap() = None;
    let s = crate::ingest(&engine, &paths, &opts, &crate::NoProgress).unwrap();
    assert_eq!((s.added, s.unchanged), (1, PARAS.len() as u64), "{s:?}");
    assert_eq!(docs_matching(&engine, "xylophone").len(), 1);
}

/// A write embeds its chunks before it takes the writer lock: another write (here a delete) does
/// not wait for a slow model of the first.
#[test]
fn a_write_does_not_wait_for_another_writes_model() {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let e = Counting::new();
    let engine = Arc::new(Engine::open(dir.path(), vector_options(&e)).unwrap());
    // A new collection's first write embeds ahead of the lock too.
    let stats = upsert(&engine, "a", PARAS[0]);
    assert_eq!((stats.embedded, stats.cache_hits), (1, 0));
    e.delay_ms.store(6000, Ordering::SeqCst);
    let slow = {
        let engine = engine.clone();
        std::thread::spawn(move || upsert(&engine, "b", PARAS[1]))
    };
    // Until the slow write's model answers, `e.texts()` stays at 1.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(e.texts(), 1, "the slow write is still embedding");
    let started = Instant::now();
    let stats = engine.apply("c", vec![Change::Delete("a".into())]).unwrap();
    let took = started.elapsed();
    assert_eq!(stats.deleted, 1);
    // the proof is `e.texts()` still 1: the model answers 6 s after the slow write asked it;
    // the bound on `took` only names the wait in the failure
    assert!(
        took < Duration::from_millis(5000),
        "the delete waited {took:?}"
    );
    assert_eq!(e.texts(), 1, "it did not wait for the model");
    let stats = slow.join().unwrap();
    assert_eq!((stats.embedded, stats.cache_hits), (1, 0));
    assert_eq!(docs_matching(&engine, "apple"), BTreeSet::new());
}

/// A collection's BM25 parameters reach its searches: the same chunk scores by the parameters
/// the collection was created with, a repeated query word counting by `k3`.
#[test]
fn a_collections_bm25_parameters_score_its_queries() {
    let score = |params: quarry_core::Bm25Params, text: &str| {
        let dir = tempfile::tempdir().unwrap();
        let opts = EngineOptions {
            bm25: params,
            ..options()
        };
        let engine = Engine::open(dir.path(), opts).unwrap();
        for (i, p) in PARAS.iter().enumerate() {
            upsert(&engine, &format!("d{i}"), p);
        }
        assert_eq!(engine.stats("c", &admin()).unwrap().bm25, params);
        let q = QueryOptions::new(text, 10, Mode::Bm25, GroupBy::Document).unwrap();
        let hits = engine.searcher("c").unwrap().search(&q, &admin()).unwrap();
        assert_eq!(hits.results[0].doc_id, "d1");
        hits.results[0].score
    };
    let once = quarry_core::Bm25Params::new(1.2, 0.75, 0.0).unwrap();
    let linear = quarry_core::Bm25Params { k3: 1000.0, ..once };
    let single = score(once, "kettles");
    assert!((score(once, "kettles kettles") - single).abs() < 1e-6);
    let twice = score(linear, "kettles kettles");
    assert!(
        (twice - single * 2.0 * 1001.0 / 1002.0).abs() < 1e-4,
        "{twice} {single}"
    );
    // k1 = 0: a term present scores its idf, whatever the chunk's length
    let presence = quarry_core::Bm25Params { k1: 0.0, ..once };
    let idf = quarry_core::bm25::idf(1, PARAS.len() as u64);
    assert!((score(presence, "kettles") - idf).abs() < 1e-5);
}

/// An ingest's batches grow from 64 documents (64, 128, … up to `batch_docs`), so the model
/// starts early: 200 JSONL records with the default `batch_docs` (2000) are three generations
/// (64, 128, 8). A documents request stays one generation whatever its size.
#[test]
fn an_ingests_batches_grow_from_64_documents_and_a_request_is_one_generation() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let engine = Engine::open(data.path(), options()).unwrap();
    let record =
        |i: usize| serde_json::json!({"_id": format!("d{i}"), "text": format!("w{i} common")});
    let opts = crate::IngestOptions {
        collection: "c".into(),
        ..crate::IngestOptions::default()
    };
    let generation = || engine.stats("c", &admin()).unwrap().generation.unwrap();
    crate::ingest_records(&engine, vec![record(0)], &opts, "api").unwrap();
    let start = generation();

    let jsonl: String = (1..=200).map(|i| format!("{}\n", record(i))).collect();
    let path = files.path().join("c.jsonl");
    std::fs::write(&path, jsonl).unwrap();
    let s = crate::ingest(&engine, &[path], &opts, &crate::NoProgress).unwrap();
    assert_eq!(s.added, 200, "{s:?}");
    assert_eq!(generation(), start + 3);

    let s =
        crate::ingest_records(&engine, (201..=400).map(record).collect(), &opts, "api").unwrap();
    assert_eq!(s.added, 200, "{s:?}");
    assert_eq!(generation(), start + 4);
    assert_eq!(engine.stats("c", &admin()).unwrap().documents, 401);
}
