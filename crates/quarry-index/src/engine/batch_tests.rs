//! The query-embedding cache and batches of queries: a repeated query is not embedded again, a
//! version switch never answers with the old version's vector, a failure is not cached, the
//! LRU bound holds, and a batch answers as its queries one by one with one model call.

use crate::engine::{Engine, EngineOptions};
use crate::jobs;
use crate::test_support::{Model, Models, put};
use quarry_core::embed::normalize;
use quarry_core::{ChunkOptions, ChunkSizer, Embedder, GroupBy, InputKind, Mode, QueryOptions};
use quarry_core::{Principal, QueryVector};
use std::sync::Arc;

const TEXTS: [&str; 6] = [
    "apple orchard in the hills",
    "bright copper kettles shine",
    "crisp winter mornings here",
    "distant thunder rolls again",
    "eager students read papers",
    "fresh bread from the ovens",
];

fn engine(dir: &std::path::Path, models: &Models, cache_entries: usize) -> Engine {
    let engine = Engine::open(
        dir,
        EngineOptions {
            chunk: ChunkOptions {
                max_tokens: 8,
                overlap: 0,
                sizer: ChunkSizer::Chars,
                context_chars: 0,
            },
            embedder: "a".into(),
            embedders: Some(Arc::new(Models(models.0.clone()))),
            query_embed_cache_entries: cache_entries,
            ..EngineOptions::default()
        },
    )
    .unwrap();
    for (i, t) in TEXTS.iter().enumerate() {
        put(&engine, "c", &format!("d{i}"), t);
    }
    engine
}

fn query(text: &str, mode: Mode) -> QueryOptions {
    QueryOptions::new(text, 3, mode, GroupBy::Chunk).unwrap()
}

fn search(engine: &Engine, q: &QueryOptions) -> crate::SearchResponse {
    engine
        .searcher("c")
        .unwrap()
        .search(q, &Principal::local_admin())
        .unwrap()
}

/// The hits `model`'s own vector of `text` gives, embedded here, not by the engine (counted by
/// `model`).
fn hits_by(engine: &Engine, model: &Model, q: &QueryOptions) -> Vec<crate::Hit> {
    let mut v = model.embed(&[&q.text], InputKind::Query).unwrap().remove(0);
    normalize(&mut v);
    engine
        .searcher("c")
        .unwrap()
        .search_with_vector(q, &Principal::local_admin(), Some(Ok(v)))
        .unwrap()
        .results
}

/// `quarry_query_embed_cache_total{result}` as `/metrics` shows it.
fn cache_counts(engine: &Engine) -> (u64, u64) {
    let text = engine.telemetry().encode();
    let count = |result: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "quarry_query_embed_cache_total{{result=\"{result}\"}} "
                ))
            })
            .map_or(0, |n| n.parse().unwrap())
    };
    (count("hit"), count("miss"))
}

#[test]
fn a_repeated_query_is_embedded_once_per_version() {
    let dir = tempfile::tempdir().unwrap();
    // same dimensions, other directions: a vector of the wrong version would give other hits
    let (a, b) = (
        Model::new("letters", 26, false),
        Model::new("noise", 26, true),
    );
    let models = Models(vec![("a", a.clone()), ("b", b.clone())]);
    let engine = engine(dir.path(), &models, 100);
    let q = query("copper kettles", Mode::Hybrid);

    let before = a.texts();
    let first = search(&engine, &q);
    assert_eq!(a.texts(), before + 1);
    let second = search(&engine, &q);
    assert_eq!(a.texts(), before + 1, "the repeated query was not embedded");
    assert!(!first.degraded && !second.degraded);
    assert_eq!(first.results, second.results);
    assert_eq!(first.results, hits_by(&engine, &a, &q));
    assert_eq!(cache_counts(&engine), (1, 1));
    // a BM25 query needs no vector: no lookup
    search(&engine, &query("copper kettles", Mode::Bm25));
    assert_eq!(cache_counts(&engine), (1, 1));

    // After a switch to b, the same text is embedded by b, and answered with b's vector.
    let job = jobs::enqueue_reindex(&engine, "c", "b").unwrap();
    let done = jobs::run(&engine, &job.id, &|_| {}).unwrap();
    assert_eq!(done.state.as_str(), "succeeded", "{:?}", done.error);
    let (a_before, b_before) = (a.texts(), b.texts());
    let under_b = search(&engine, &q);
    assert_eq!((a.texts(), b.texts()), (a_before, b_before + 1));
    assert_eq!(
        under_b.embedding_version,
        engine
            .searcher("c")
            .unwrap()
            .embedding_version()
            .map(str::to_owned)
    );
    assert_ne!(
        under_b.results, first.results,
        "the two models rank differently, so the test can tell their vectors apart"
    );
    search(&engine, &q);
    assert_eq!(b.texts(), b_before + 1, "cached under b now");
    // (embeds with b outside the engine: counted by b)
    assert_eq!(under_b.results, hits_by(&engine, &b, &q));
    let b_before = b.texts() - 1;

    // Back to a: its entry is still there, and is a's vector.
    let va = first.embedding_version.clone().unwrap();
    engine.activate_version("c", &va).unwrap();
    let again = search(&engine, &q);
    assert_eq!((a.texts(), b.texts()), (a_before, b_before + 1));
    assert_eq!(again.results, first.results);
    assert_eq!(cache_counts(&engine), (3, 2));
}

#[test]
fn a_failed_embedding_is_not_cached_and_the_bound_holds() {
    let dir = tempfile::tempdir().unwrap();
    let a = Model::new("letters", 26, false);
    let models = Models(vec![("a", a.clone())]);
    let engine = engine(dir.path(), &models, 2);
    let q = query("winter mornings", Mode::Hybrid);

    a.fail(true);
    let down = search(&engine, &q);
    assert!(down.degraded, "{down:?}");
    assert_eq!(engine.query_vectors.len(), 0, "a failure is not cached");
    a.fail(false);
    let before = a.texts();
    let up = search(&engine, &q);
    assert!(!up.degraded);
    assert_eq!(a.texts(), before + 1, "embedded, not the cached failure");
    assert_eq!(engine.query_vectors.len(), 1);

    // capacity 2: after two other texts the least recently used is gone
    search(&engine, &query("thunder", Mode::Vector));
    search(&engine, &query("bread", Mode::Vector));
    assert_eq!(engine.query_vectors.len(), 2);
    let before = a.texts();
    search(&engine, &query("bread", Mode::Vector));
    assert_eq!(a.texts(), before, "still cached");
    search(&engine, &q);
    assert_eq!(a.texts(), before + 1, "evicted, so embedded again");
}

#[test]
fn no_cache_with_zero_entries() {
    let dir = tempfile::tempdir().unwrap();
    let a = Model::new("letters", 26, false);
    let models = Models(vec![("a", a.clone())]);
    let engine = engine(dir.path(), &models, 0);
    let q = query("apple hills", Mode::Vector);
    let before = a.texts();
    search(&engine, &q);
    search(&engine, &q);
    assert_eq!(a.texts(), before + 2);
    assert_eq!(cache_counts(&engine), (0, 0));
}

/// A batch of hybrid, vector, BM25 and own-vector queries (one text twice).
fn batch() -> Vec<QueryOptions> {
    let own = QueryVector {
        values: (0..26).map(|i| (i % 5) as f32).collect(),
        embedding_version: None,
    };
    vec![
        query("copper kettles", Mode::Hybrid),
        query("thunder rolls", Mode::Vector),
        query("students papers", Mode::Bm25),
        query("copper kettles", Mode::Vector),
        query("bread ovens", Mode::Hybrid).with_vector(own).unwrap(),
        QueryOptions::new("orchard", 2, Mode::Hybrid, GroupBy::Document).unwrap(),
    ]
}

#[test]
fn a_batch_answers_as_its_queries_alone_with_one_model_call() {
    let dir = tempfile::tempdir().unwrap();
    let a = Model::new("letters", 26, false);
    let models = Models(vec![("a", a.clone())]);
    // no cache: the single queries below embed again, as if the batch had not run
    let engine = engine(dir.path(), &models, 0);
    let queries = batch();
    let caller = Principal::local_admin();
    let (calls, texts) = (a.calls(), a.texts());
    let answers = engine
        .searcher("c")
        .unwrap()
        .search_batch(&queries, &caller);
    assert_eq!(a.calls(), calls + 1, "one call to the model");
    assert_eq!(
        a.texts(),
        texts + 3,
        "the distinct texts that need a vector"
    );
    assert_eq!(answers.len(), queries.len());
    for (q, answer) in queries.iter().zip(answers) {
        let answer = answer.unwrap();
        let alone = search(&engine, q);
        assert!(!answer.degraded);
        assert_eq!(answer.results, alone.results, "{q:?}");
        assert!(!answer.results.is_empty(), "{q:?}");
        assert_eq!(answer.embed_ms.is_some(), alone.embed_ms.is_some());
    }

    // the model down: the queries that needed it degrade, the others do not
    a.fail(true);
    let answers = engine
        .searcher("c")
        .unwrap()
        .search_batch(&queries, &caller);
    let degraded: Vec<bool> = answers
        .iter()
        .map(|a| a.as_ref().unwrap().degraded)
        .collect();
    assert_eq!(degraded, [true, true, false, true, false, true]);

    // a bad query fails alone, as it would alone
    let mut bad = queries.clone();
    bad[1] = query("x", Mode::Vector)
        .with_vector(QueryVector {
            values: vec![1.0; 3],
            embedding_version: None,
        })
        .unwrap();
    a.fail(false);
    let answers = engine.searcher("c").unwrap().search_batch(&bad, &caller);
    let e = answers[1].as_ref().unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Input, "{e}");
    assert!(answers.iter().enumerate().all(|(i, a)| i == 1 || a.is_ok()));
}
