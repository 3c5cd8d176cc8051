//! Re-index jobs: shadow build with writes during the job, atomic cutover (no query mixes
//! versions), rollback without embedding, the eval gate, resume after an interruption, cancel.

use crate::catalog::GoldenQuery;
use crate::engine::{Engine, EngineOptions};
use crate::jobs;
use crate::searcher::Searcher;
use crate::test_support::{Model, Models};
use quarry_core::{ChunkOptions, Principal};
use quarry_core::{ChunkSizer, GroupBy, Mode, QueryOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const TEXTS: [&str; 8] = [
    "apple orchard in the hills",
    "bright copper kettles shine",
    "crisp winter mornings here",
    "distant thunder rolls again",
    "eager students read papers",
    "fresh bread from the ovens",
    "gentle rivers wind slowly",
    "hungry wolves howl at night",
];

fn engine(dir: &std::path::Path, models: &Models) -> Engine {
    Engine::open(
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
            embed_batch: 2,
            ..EngineOptions::default()
        },
    )
    .unwrap()
}

fn put(engine: &Engine, id: &str, text: &str) {
    crate::test_support::put(engine, "c", id, text);
}

/// The top document of a vector query, and the version that answered.
fn top(engine: &Engine, text: &str) -> (String, String) {
    let q = QueryOptions::new(text, 3, Mode::Vector, GroupBy::Document).unwrap();
    let r = engine
        .searcher("c")
        .unwrap()
        .search(&q, &Principal::local_admin())
        .unwrap();
    assert!(!r.degraded, "{:?}", r.warnings);
    (
        r.results[0].doc_id.clone(),
        r.embedding_version.unwrap_or_default(),
    )
}

fn version_of(engine: &Engine, embedder: &str) -> String {
    engine
        .versions("c")
        .unwrap()
        .into_iter()
        .find(|v| v.embedder == embedder)
        .unwrap()
        .id
}

#[test]
fn reindex_cuts_over_atomically_keeps_writes_and_rolls_back_without_embedding() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Model::new("letters", 26, false),
        Model::new("letters-13", 13, false),
    );
    let c = Model::new("letters-7", 7, false);
    let models = Models(vec![("a", a.clone()), ("b", b.clone()), ("c", c)]);
    let engine = engine(dir.path(), &models);
    for (i, t) in TEXTS.iter().take(6).enumerate() {
        put(&engine, &format!("d{i}"), t);
    }
    let va = version_of(&engine, "a");
    assert_eq!(top(&engine, TEXTS[1]), ("d1".into(), va.clone()));

    let job = jobs::enqueue_reindex(&engine, "c", "b").unwrap();
    assert_eq!(job.state.as_str(), "queued");
    let again = jobs::enqueue_reindex(&engine, "c", "b").unwrap_err();
    assert!(matches!(again, crate::Error::Conflict(_)), "{again}");
    let same = jobs::enqueue_reindex(&engine, "c", "a").unwrap_err();
    assert_eq!(same.kind(), crate::ErrorKind::Input, "{same}");

    // During the job: queries are answered by version a alone, and writes keep landing.
    let batches = AtomicUsize::new(0);
    let done = jobs::run(&engine, &job.id, &|j| {
        let n = batches.fetch_add(1, Ordering::SeqCst);
        assert_eq!(j.state.as_str(), "running");
        let (doc, version) = top(&engine, TEXTS[2]);
        assert_eq!((doc.as_str(), version.as_str()), ("d2", va.as_str()));
        if n == 1 {
            put(&engine, "d6", TEXTS[6]);
            put(&engine, "d7", TEXTS[7]);
        }
    })
    .unwrap();
    assert!(batches.load(Ordering::SeqCst) >= 3, "several batches");
    assert_eq!(done.state.as_str(), "succeeded", "{:?}", done.error);
    let result = serde_json::to_value(done.result.unwrap()).unwrap();
    assert_eq!(result["promoted"], true);
    assert_eq!(result["gate"]["ran"], false);
    let vb = result["version"].as_str().unwrap().to_owned();

    // After the cutover: b answers, and the documents written during the job are found.
    for (i, t) in TEXTS.iter().enumerate() {
        let (doc, version) = top(&engine, t);
        assert_eq!((doc, version), (format!("d{i}"), vb.clone()), "{t}");
    }
    // Every chunk was embedded by b exactly once (the two late ones at the cutover).
    assert_eq!(b.texts(), 8 + 8, "8 chunks, and the 8 queries above");
    let states: Vec<(String, String)> = engine
        .versions("c")
        .unwrap()
        .into_iter()
        .map(|v| (v.id, v.state.to_string()))
        .collect();
    assert_eq!(
        states,
        [(va.clone(), "ready".into()), (vb.clone(), "active".into())]
    );

    // Rollback: immediate, nothing embedded (a embedded d6 and d7 when they were written).
    let (a_before, b_before) = (a.texts(), b.texts());
    engine.activate_version("c", &va).unwrap();
    assert_eq!((a.texts(), b.texts()), (a_before, b_before));
    assert_eq!(top(&engine, TEXTS[7]), ("d7".into(), va.clone()));
    // ... and it survives a restart.
    drop(engine);
    let engine = self::engine(dir.path(), &models);
    assert_eq!(top(&engine, TEXTS[6]), ("d6".into(), va.clone()));
    let e = engine.retire_version("c", &va).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Input, "{e}");
    engine.retire_version("c", &vb).unwrap();
    let b_before = b.texts();
    engine.activate_version("c", &vb).unwrap();
    assert_eq!(
        b.texts(),
        b_before,
        "a retired version's vectors stay stored"
    );
    assert_eq!(top(&engine, TEXTS[3]), ("d3".into(), vb.clone()));

    // Retention (keep 2 by default): after a third version, the one that served least recently
    // is retired, its index folder gone.
    let job = jobs::enqueue_reindex(&engine, "c", "c").unwrap();
    assert_eq!(
        jobs::run(&engine, &job.id, &|_| {}).unwrap().state.as_str(),
        "succeeded"
    );
    let states: Vec<(String, String)> = engine
        .versions("c")
        .unwrap()
        .into_iter()
        .map(|v| (v.embedder, v.state.to_string()))
        .collect();
    assert_eq!(
        states,
        [
            ("a".to_owned(), "retired".to_owned()),
            ("b".into(), "ready".into()),
            ("c".into(), "active".into())
        ]
    );
    assert!(!dir.path().join("collections/c/vectors").join(&va).exists());
    assert!(dir.path().join("collections/c/vectors").join(&vb).exists());
}

#[test]
fn the_eval_gate_holds_back_a_worse_model() {
    let dir = tempfile::tempdir().unwrap();
    let (a, bad) = (
        Model::new("letters", 26, false),
        Model::new("noise", 26, true),
    );
    let models = Models(vec![("a", a), ("bad", bad)]);
    let engine = engine(dir.path(), &models);
    for (i, t) in TEXTS.iter().enumerate() {
        put(&engine, &format!("d{i}"), t);
    }
    // Queries that share no word with their document: only the vectors can find it.
    let golden: Vec<GoldenQuery> = TEXTS
        .iter()
        .enumerate()
        .map(|(i, t)| GoldenQuery {
            id: format!("q{i}"),
            query: t.chars().rev().collect(),
            relevant: [(format!("d{i}"), 1)].into(),
        })
        .collect();
    engine.put_golden("c", "g", &golden).unwrap();
    let va = version_of(&engine, "a");
    let job = jobs::enqueue_reindex(&engine, "c", "bad").unwrap();
    let done = jobs::run(&engine, &job.id, &|_| {}).unwrap();
    assert_eq!(done.state.as_str(), "succeeded", "{:?}", done.error);
    let result = serde_json::to_value(done.result.unwrap()).unwrap();
    assert_eq!(result["promoted"], false, "{result}");
    assert_eq!(result["gate"]["passed"], false, "{result}");
    let set = &result["gate"]["sets"][0];
    let vector = &set["ndcg@10"]["vector"];
    assert!(
        vector["new"].as_f64().unwrap() < vector["active"].as_f64().unwrap() - 0.01,
        "{result}"
    );
    // Both runs are recorded, and the comparison names them.
    let (ra, rb) = (
        set["active_run"].as_str().unwrap(),
        set["new_run"].as_str().unwrap(),
    );
    assert_eq!(
        engine.eval_run(ra).unwrap().summary.config["embedding_version"],
        va
    );
    assert_eq!(
        set["compare"],
        format!("quarry eval compare {ra} {rb}"),
        "{result}"
    );
    let vbad = result["version"].as_str().unwrap();
    let states: Vec<(String, String)> = engine
        .versions("c")
        .unwrap()
        .into_iter()
        .map(|v| (v.id, v.state.to_string()))
        .collect();
    assert_eq!(
        states,
        [(va.clone(), "active".into()), (vbad.into(), "ready".into())]
    );
    assert_eq!(
        top(&engine, TEXTS[0]).1,
        va,
        "the active version still answers"
    );
    // A person may still promote it.
    engine.activate_version("c", vbad).unwrap();
    assert_eq!(top(&engine, TEXTS[0]).1, vbad);
}

#[test]
fn an_interrupted_job_resumes_without_reembedding_and_a_cancel_stops_one() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Model::new("letters", 26, false),
        Model::new("letters-13", 13, false),
    );
    let models = Models(vec![("a", a), ("b", b.clone())]);
    let engine = engine(dir.path(), &models);
    for (i, t) in TEXTS.iter().enumerate() {
        put(&engine, &format!("d{i}"), t);
    }
    let job = jobs::enqueue_reindex(&engine, "c", "b").unwrap();
    // The worker dies after its second batch (a panic unwinds out of the job, as far as the
    // catalog can tell like a killed process: the job stays `running`, its lock is released).
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let batches = AtomicUsize::new(0);
        jobs::run(&engine, &job.id, &|_| {
            if batches.fetch_add(1, Ordering::SeqCst) == 2 {
                panic!("worker killed");
            }
        })
    }));
    assert!(died.is_err());
    let stuck = jobs::job(&engine, &job.id).unwrap();
    assert_eq!((stuck.state.as_str(), stuck.processed), ("running", 4));
    assert_eq!(b.texts(), 4);
    // Whoever looks for work finds it, and it finishes embedding only what was missing.
    assert_eq!(jobs::next(&engine).unwrap().unwrap().id, job.id);
    assert_eq!(jobs::run_pending(&engine).unwrap(), 1);
    let done = jobs::job(&engine, &job.id).unwrap();
    assert_eq!(done.state.as_str(), "succeeded", "{:?}", done.error);
    assert_eq!((done.processed, done.total, done.embedded), (8, 8, 8));
    assert_eq!(b.texts(), 8);
    assert!(jobs::next(&engine).unwrap().is_none());
    // A job interrupted after its switch, before its end was recorded, just records its end.
    engine.catalog().start_job(&job.id).unwrap();
    assert_eq!(jobs::run_pending(&engine).unwrap(), 1);
    let again = jobs::job(&engine, &job.id).unwrap();
    assert_eq!(again.state.as_str(), "succeeded");
    assert!(
        serde_json::to_value(again.result.unwrap()).unwrap()["note"]
            .as_str()
            .unwrap()
            .contains("already active")
    );
    assert_eq!(b.texts(), 8, "nothing embedded again");
    let active = version_of(&engine, "b");
    assert_eq!(top(&engine, TEXTS[1]), ("d1".into(), active.clone()));

    // Cancel: a running job stops at its next batch; the active version is untouched.
    let (c, _) = (Model::new("letters-7", 7, false), ());
    let models = Models(vec![
        ("a", Model::new("letters", 26, false)),
        ("b", b),
        ("c", c.clone()),
    ]);
    drop(engine);
    let engine = self::engine(dir.path(), &models);
    let job = jobs::enqueue_reindex(&engine, "c", "c").unwrap();
    let done = jobs::run(&engine, &job.id, &|j| {
        if j.processed >= 2 {
            jobs::cancel(&engine, &j.id).unwrap();
        }
    })
    .unwrap();
    assert_eq!(done.state.as_str(), "cancelled");
    assert!(c.texts() < 8, "stopped early: {}", c.texts());
    assert_eq!(top(&engine, TEXTS[5]).1, active);
    let failed = engine
        .versions("c")
        .unwrap()
        .into_iter()
        .find(|v| v.embedder == "c")
        .unwrap();
    assert_eq!(failed.state.as_str(), "failed");
    let e = engine.activate_version("c", &failed.id).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Input, "{e}");
    // A queued job that is cancelled never runs.
    let job = jobs::enqueue_reindex(&engine, "c", "c").unwrap();
    assert_eq!(
        jobs::cancel(&engine, &job.id).unwrap().state.as_str(),
        "cancelled"
    );
    assert_eq!(jobs::run_pending(&engine).unwrap(), 0);
}

/// Chunk texts of the hits of `text` in `mode` from `searcher`.
fn hit_texts(searcher: &Searcher, text: &str, mode: Mode) -> Vec<String> {
    let q = QueryOptions::new(text, 10, mode, GroupBy::Chunk).unwrap();
    let r = searcher.search(&q, &Principal::local_admin()).unwrap();
    if mode != Mode::Bm25 {
        assert!(
            r.results.iter().all(|h| h.scores.vector.is_some()),
            "every chunk has a vector"
        );
    }
    r.results.into_iter().map(|h| h.text).collect()
}

#[test]
fn a_rechunk_rebuilds_bm25_and_vectors_in_one_generation() {
    let dir = tempfile::tempdir().unwrap();
    let a = Model::new("letters", 26, false);
    let models = Models(vec![("a", a.clone())]);
    let engine = engine(dir.path(), &models);
    // Four documents of two paragraphs each; 8-token (32-character) chunks hold one paragraph.
    for i in 0..4 {
        put(
            &engine,
            &format!("d{i}"),
            &format!("{}\n\n{}", TEXTS[2 * i], TEXTS[2 * i + 1]),
        );
    }
    assert_eq!(
        engine.stats("c", &Principal::local_admin()).unwrap().chunks,
        8
    );
    let old_snapshot = engine.searcher("c").unwrap();
    let short = |t: &[String]| t.iter().all(|s| s.len() <= 32);
    let new = ChunkOptions {
        max_tokens: 64,
        overlap: 0,
        sizer: ChunkSizer::Chars,
        context_chars: 0,
    };
    let job = jobs::enqueue_rechunk(&engine, "c", new).unwrap();
    let e = jobs::enqueue_rechunk(&engine, "c", new).unwrap_err();
    assert!(matches!(e, crate::Error::Conflict(_)), "{e}");
    let wrote = AtomicUsize::new(0);
    let done = jobs::run(&engine, &job.id, &|_| {
        // During the job the old chunking serves, in both retrievers.
        let s = engine.searcher("c").unwrap();
        assert!(short(&hit_texts(&s, "orchard", Mode::Bm25)));
        assert!(short(&hit_texts(&s, TEXTS[0], Mode::Vector)));
        if wrote.fetch_add(1, Ordering::SeqCst) == 0 {
            put(
                &engine,
                "late",
                "quiet meadows bloom\n\nwarm summer evenings",
            );
        }
    })
    .unwrap();
    assert_eq!(done.state.as_str(), "succeeded", "{:?}", done.error);
    let result = serde_json::to_value(done.result.unwrap()).unwrap();
    assert_eq!(
        (
            result["chunks_before"].as_u64(),
            result["chunks_after"].as_u64()
        ),
        (Some(10), Some(5)),
        "{result}"
    );
    assert_eq!(engine.chunk_options("c").unwrap(), new);
    // After: one chunk per document, the late one included, in BM25 and in the vectors.
    let s = engine.searcher("c").unwrap();
    let bm25 = hit_texts(&s, "orchard", Mode::Bm25);
    assert_eq!(bm25, [format!("{}\n\n{}", TEXTS[0], TEXTS[1])]);
    let late = hit_texts(&s, "meadows", Mode::Bm25);
    assert_eq!(late, ["quiet meadows bloom\n\nwarm summer evenings"]);
    let vector = hit_texts(&s, &format!("{}\n\n{}", TEXTS[4], TEXTS[5]), Mode::Vector);
    assert_eq!(
        vector.len(),
        5,
        "exactly the new chunks are searchable: {vector:?}"
    );
    assert_eq!(vector[0], format!("{}\n\n{}", TEXTS[4], TEXTS[5]));
    // The snapshot taken before the swap still reads the old generation whole.
    assert!(short(&hit_texts(&old_snapshot, "orchard", Mode::Bm25)));
    // Restart: the new chunking is what was committed.
    drop((s, old_snapshot, engine));
    let engine = self::engine(dir.path(), &models);
    assert_eq!(
        engine.stats("c", &Principal::local_admin()).unwrap().chunks,
        5
    );
    let s = engine.searcher("c").unwrap();
    assert_eq!(hit_texts(&s, "meadows", Mode::Vector).len(), 5);
}
