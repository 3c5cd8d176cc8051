//! `Engine::forget` leaves no copy: a unique marker planted in one document (its text and its id)
//! is found in no file of the data directory afterwards, across two embedding versions, the
//! embedding cache, canaries, eval runs and golden sets; the collection lifecycle.

use super::*;
use crate::catalog::GoldenQuery;
use crate::collection::CollectionSettings;
use crate::eval::Plan;
use crate::test_support::{Model, Models};
use quarry_core::{ChunkOptions, ContentHash, Document, Principal};
use quarry_core::{ChunkSizer, DocFormat, GroupBy, Mode, QueryOptions, Role};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn engine(dir: &Path, models: &Models) -> Engine {
    Engine::open(
        dir,
        EngineOptions {
            chunk: ChunkOptions {
                max_tokens: 12,
                overlap: 0,
                sizer: ChunkSizer::Chars,
                context_chars: 60,
            },
            embedder: "a".into(),
            embedders: Some(Arc::new(Models(models.0.clone()))),
            embed_batch: 4,
            ..EngineOptions::default()
        },
    )
    .unwrap()
}

fn put(engine: &Engine, id: &str, text: &str, acl: &[&str]) {
    let d = Document {
        doc_id: id.into(),
        title: String::new(),
        text: text.into(),
        source: format!("notes/{id}.txt"),
        format: DocFormat::Text,
        metadata: Default::default(),
        acl: acl.iter().map(|s| s.to_string()).collect(),
        content_hash: quarry_core::ContentHash::of(text.as_bytes()),
    };
    let chunks = engine
        .chunker("c")
        .unwrap()
        .chunk(&d.title, &d.text, d.format);
    engine.apply("c", vec![Change::Upsert(d, chunks)]).unwrap();
}

fn ids(engine: &Engine, text: &str, mode: Mode) -> Vec<String> {
    let q = QueryOptions::new(text, 10, mode, GroupBy::Document).unwrap();
    engine
        .searcher("c")
        .unwrap()
        .search(&q, &Principal::local_admin())
        .unwrap()
        .results
        .into_iter()
        .map(|h| h.doc_id)
        .collect()
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
pub(crate) fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                out.push(p);
            }
        }
    }
    out
}

/// No row of `embeddings` and no vector dump under `dir` is of one of `hashes`, and no dump has
/// a tombstone (the vector of a chunk that left, still in the graph's data file).
fn assert_no_vectors_of(engine: &Engine, dir: &Path, hashes: &[ContentHash]) {
    for h in hashes {
        let n: i64 = engine
            .catalog()
            .conn_for_tests()
            .query_row(
                "SELECT count(*) FROM embeddings WHERE chunk_hash = ?1",
                [h.to_hex()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "a stored vector of {h}");
    }
    let mut dumps = 0;
    for version in std::fs::read_dir(dir.join("collections/c/vectors"))
        .unwrap()
        .flatten()
    {
        for dump in std::fs::read_dir(version.path()).unwrap().flatten() {
            if !dump.file_name().to_string_lossy().starts_with("dump-") {
                continue;
            }
            dumps += 1;
            let ids = std::fs::read(dump.path().join("ids.bin")).unwrap();
            for h in hashes {
                assert!(
                    !ids.chunks_exact(32).any(|c| c == h.as_bytes()),
                    "{} holds {h}",
                    dump.path().display()
                );
            }
            let dead = std::fs::read(dump.path().join("dead.bin")).unwrap();
            assert!(
                dead.iter().all(|d| *d == 0),
                "{} has tombstones",
                dump.path().display()
            );
        }
    }
    assert!(dumps >= 1);
}

const OTHERS: [&str; 5] = [
    "apple orchard in the hills with old stone walls",
    "bright copper kettles shine in the kitchen window",
    "crisp winter mornings here smell of pine smoke",
    "distant thunder rolls again over the harbor town",
    "eager students read papers about river deltas",
];

#[test]
fn forget_leaves_no_copy_in_any_file_across_versions_caches_canaries_and_evals() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Model::new("letters", 26, false),
        Model::new("letters-13", 13, false),
    );
    let models = Models(vec![("a", a), ("b", b)]);
    let engine = engine(dir.path(), &models);
    let marker = format!(
        "zqxforgetmarker{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let secret_id = format!("secret-{marker}");
    let secret_text = format!(
        "the {marker} vault keeps copper kettles. nobody else knows {marker}. \
         it sits beside the harbor where {marker} was buried long ago"
    );
    for (i, t) in OTHERS.iter().enumerate() {
        put(&engine, &format!("d{i}"), t, &[]);
    }
    put(&engine, &secret_id, &secret_text, &["user:alice"]);
    assert_eq!(ids(&engine, &marker, Mode::Bm25)[0], secret_id);
    assert!(ids(&engine, &secret_text, Mode::Vector).contains(&secret_id));

    // A second embedding version (b): its vectors, its canaries (every chunk: fewer than 32),
    // and version a's dump kept for a rollback.
    let job = crate::jobs::enqueue_reindex(&engine, "c", "b").unwrap();
    let done = crate::jobs::run(&engine, &job.id, &|_| {}).unwrap();
    assert_eq!(done.state.as_str(), "succeeded", "{:?}", done.error);
    let vb = serde_json::to_value(done.result).unwrap()["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let va = engine
        .versions("c")
        .unwrap()
        .into_iter()
        .find(|v| v.embedder == "a")
        .unwrap()
        .id;
    assert_eq!(ids(&engine, &marker, Mode::Hybrid)[0], secret_id);
    // Golden sets and an eval run that name it.
    let judged = |relevant: &[(&str, u32)]| GoldenQuery {
        id: "q1".into(),
        query: "copper kettles harbor".into(),
        relevant: relevant.iter().map(|(d, g)| (d.to_string(), *g)).collect(),
    };
    engine
        .put_golden("c", "g", &[judged(&[(secret_id.as_str(), 2), ("d1", 1)])])
        .unwrap();
    engine
        .put_golden("c", "only", &[judged(&[(secret_id.as_str(), 1)])])
        .unwrap();
    let plan = Plan {
        modes: vec![Mode::Bm25, Mode::Hybrid],
        fusion: engine.options().fusion,
        top_k: 10,
        filter: None,
        rerank_top_n: None,
        feedback: None,
    };
    let (run, _) = engine
        .evaluate_golden("c", "g", &plan, &Principal::local_admin(), "test")
        .unwrap();
    let recorded = serde_json::to_string(&engine.eval_run(&run.id).unwrap().queries).unwrap();
    assert!(recorded.contains(&secret_id), "{recorded}");

    engine.flush().unwrap();
    assert!(
        !files_containing(dir.path(), marker.as_bytes()).is_empty(),
        "the marker is on disk before the forget"
    );

    // A caller who may not read it gets what a missing document gets.
    let bob = Principal::new("bob", vec![], Role::Reader);
    let hidden = engine.forget("c", &secret_id, &bob).unwrap_err();
    let missing = engine.forget("c", "no-such-doc", &bob).unwrap_err();
    assert_eq!(
        (hidden.code(), missing.code()),
        ("document_not_found", "document_not_found")
    );
    assert_eq!(
        hidden.to_string().replace(&secret_id, "X"),
        missing.to_string().replace("no-such-doc", "X")
    );
    let e = engine
        .forget("nope", &secret_id, &Principal::local_admin())
        .unwrap_err();
    assert_eq!(e.code(), "collection_not_found");

    let held = engine.doc_chunk_hashes("c", &secret_id).unwrap();
    let report = engine
        .forget("c", &secret_id, &Principal::local_admin())
        .unwrap();
    let mut erased = report.erased.erased.clone();
    erased.sort();
    let mut expected = held.clone();
    expected.sort();
    expected.dedup();
    assert_eq!(erased, expected);
    assert_eq!(report.erased.chunks, report.erased.chunks_erased);
    assert!(report.erased.chunks_erased >= 3, "{report:?}");
    // both fingerprints, every chunk
    assert_eq!(
        report.erased.vectors_erased,
        2 * report.erased.chunks_erased
    );
    assert_eq!(report.erased.canaries_erased, report.erased.chunks_erased);
    assert_eq!(report.erased.eval_runs_redacted, 1, "{report:?}");
    assert_eq!(report.erased.golden_sets_changed, 2);
    assert_eq!(report.version_dumps_dropped, 1, "version a's dump");
    assert!(report.catalog_scrubbed);

    // Nothing of it is on disk, while the engine is open and after it flushed and closed.
    assert_eq!(
        files_containing(dir.path(), b"zqxforget"),
        Vec::<PathBuf>::new()
    );
    // No stored vector and no vector dump holds them (a dump holds no tombstone at all).
    assert_no_vectors_of(&engine, dir.path(), &held);
    // Gone from every answer; the others are still found.
    assert!(ids(&engine, &marker, Mode::Bm25).is_empty());
    assert!(!ids(&engine, &secret_text, Mode::Hybrid).contains(&secret_id));
    assert_eq!(ids(&engine, "copper kettles", Mode::Bm25)[0], "d1");
    assert_eq!(ids(&engine, OTHERS[3], Mode::Vector)[0], "d3");
    assert_eq!(
        engine
            .stats("c", &Principal::local_admin())
            .unwrap()
            .documents,
        5
    );
    let e = engine
        .forget("c", &secret_id, &Principal::local_admin())
        .unwrap_err();
    assert_eq!(e.code(), "document_not_found");
    // The eval run keeps its ranks, the id replaced; the golden sets lost the judgment.
    let recorded = serde_json::to_string(&engine.eval_run(&run.id).unwrap().queries).unwrap();
    assert!(!recorded.contains(&secret_id) && recorded.contains("(forgotten)"));
    assert_eq!(
        engine.golden("c", "g").unwrap()[0].relevant,
        [("d1".to_string(), 1)].into()
    );
    assert_eq!(engine.golden("c", "only").unwrap_err().code(), "not_found");

    // Rolling back to version a rebuilds its graph from stored vectors, without the document.
    engine.activate_version("c", &va).unwrap();
    assert_eq!(ids(&engine, OTHERS[2], Mode::Vector)[0], "d2");
    assert!(!ids(&engine, &secret_text, Mode::Vector).contains(&secret_id));
    engine.activate_version("c", &vb).unwrap();
    put(&engine, "d9", "fresh bread from the ovens", &[]);
    engine.flush().unwrap();
    drop(engine);
    assert_eq!(
        files_containing(dir.path(), b"zqxforget"),
        Vec::<PathBuf>::new()
    );
    let engine = self::engine(dir.path(), &models);
    assert_no_vectors_of(&engine, dir.path(), &held);
    assert!(ids(&engine, &marker, Mode::Bm25).is_empty());
    assert_eq!(ids(&engine, "fresh bread", Mode::Bm25)[0], "d9");
}

#[test]
fn a_chunk_another_document_holds_keeps_its_text_and_vector() {
    let dir = tempfile::tempdir().unwrap();
    let models = Models(vec![("a", Model::new("letters", 26, false))]);
    let engine = engine(dir.path(), &models);
    // one chunk each, the same text: one content-addressed chunk held by both
    put(&engine, "x", "shared words here", &[]);
    put(&engine, "y", "shared words here", &[]);
    let report = engine.forget("c", "x", &Principal::local_admin()).unwrap();
    assert_eq!(
        (
            report.erased.chunks,
            report.erased.chunks_erased,
            report.erased.vectors_erased
        ),
        (1, 0, 0)
    );
    assert_eq!(ids(&engine, "shared words", Mode::Bm25), ["y"]);
    assert_eq!(ids(&engine, "shared words here", Mode::Vector), ["y"]);
}

#[test]
fn collections_are_created_with_settings_listed_with_sizes_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let models = Models(vec![
        ("a", Model::new("letters", 26, false)),
        ("b", Model::new("letters-13", 13, false)),
    ]);
    let engine = engine(dir.path(), &models);
    let chunk = ChunkOptions {
        max_tokens: 20,
        overlap: 2,
        sizer: ChunkSizer::Chars,
        context_chars: 0,
    };
    let bm25 = quarry_core::Bm25Params::new(0.9, 0.4, 1.0).unwrap();
    let settings = CollectionSettings {
        chunk: Some(chunk),
        bm25: Some(bm25),
        embedder: Some("b".into()),
    };
    let (stats, created) = engine.create_collection("c", &settings).unwrap();
    assert!(created);
    assert_eq!(stats.chunk_options, chunk);
    assert_eq!(stats.bm25, bm25);
    assert_eq!(stats.embedder.as_deref(), Some("b"));
    assert_eq!(
        (stats.documents, stats.text_bytes, stats.index_bytes),
        (0, Some(0), Some(0))
    );
    // the same settings again: nothing changes; other settings: a conflict
    let (_, created) = engine.create_collection("c", &settings).unwrap();
    assert!(!created);
    for other in [
        CollectionSettings {
            chunk: None,
            ..settings.clone()
        },
        CollectionSettings {
            bm25: None,
            ..settings.clone()
        },
    ] {
        let e = engine.create_collection("c", &other).unwrap_err();
        assert_eq!(e.code(), "conflict", "{e}");
    }
    for (name, s, code) in [
        ("bad name", CollectionSettings::default(), "invalid_request"),
        (
            "d",
            CollectionSettings {
                embedder: Some("zz".into()),
                ..Default::default()
            },
            "invalid_request",
        ),
        (
            "d",
            CollectionSettings {
                chunk: Some(ChunkOptions {
                    max_tokens: 0,
                    ..chunk
                }),
                ..Default::default()
            },
            "invalid_request",
        ),
        (
            "d",
            CollectionSettings {
                bm25: Some(quarry_core::Bm25Params { b: 1.5, ..bm25 }),
                ..Default::default()
            },
            "invalid_request",
        ),
    ] {
        let e = engine.create_collection(name, &s).unwrap_err();
        assert_eq!(e.code(), code, "{name}: {e}");
    }
    assert!(engine.collection("d").is_err(), "nothing created");
    let (none, _) = engine
        .create_collection(
            "plain",
            &CollectionSettings {
                embedder: Some("none".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(none.active_embedding_version, None);

    // Ingest uses the stored settings: chunks of at most 20 × 4 characters, embedded by b.
    let text = (0..40)
        .map(|i| format!("copper{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    put(&engine, "doc", &text, &[]);
    let listed = engine.list(&Principal::local_admin()).unwrap();
    let c = listed.iter().find(|s| s.name == "c").unwrap();
    assert_eq!(c.documents, 1);
    assert!(c.chunks >= 3, "{c:?}");
    assert_eq!(c.vectors, Some(c.chunks));
    assert_eq!(c.text_bytes, Some(text.len() as u64));
    assert!(c.index_bytes.unwrap() > 0);
    let reader = Principal::new("r", vec![], Role::Reader);
    let seen = engine.list(&reader).unwrap();
    assert_eq!(seen[0].index_bytes, None, "sizes are for admins");

    engine.delete_collection("c").unwrap();
    assert_eq!(
        engine.collection("c").unwrap_err().code(),
        "collection_not_found"
    );
    assert!(!dir.path().join("collections/c").exists());
    assert_eq!(
        engine.delete_collection("c").unwrap_err().code(),
        "collection_not_found"
    );
    assert_eq!(
        engine.delete_collection("../x").unwrap_err().code(),
        "invalid_request"
    );
    assert_eq!(
        engine.list(&Principal::local_admin()).unwrap().len(),
        1,
        "plain is left"
    );
    // Its stored vectors went with it (no other collection held them).
    let left: i64 = engine
        .catalog()
        .conn_for_tests()
        .query_row("SELECT count(*) FROM embeddings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    // A collection of the same name starts empty, with the default settings.
    put(&engine, "other", "winter mornings", &[]);
    let again = engine.stats("c", &Principal::local_admin()).unwrap();
    assert_eq!((again.documents, again.embedder.as_deref()), (1, Some("a")));
    assert!(ids(&engine, "copper0", Mode::Bm25).is_empty());
}

/// A collection deleted while its folder could not be removed (or by a process that died
/// between the catalog's delete and the removal), then created again under the same name,
/// starts from an empty folder: the old vector index's dump, whose generation the new
/// collection's catalog reaches, is never served, whether the collection is created by a write
/// or explicitly.
#[test]
fn a_collection_created_again_never_serves_the_folder_its_deletion_left() {
    for explicit in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let models = Models(vec![("a", Model::new("letters", 26, false))]);
        let e = engine(dir.path(), &models);
        for i in 0..6 {
            put(
                &e,
                &format!("old{i}"),
                &format!("ghost words number {i}"),
                &[],
            );
        }
        e.flush().unwrap();
        // a process serving the old collection, which it never learns was deleted
        let stale = engine(dir.path(), &models);
        assert_eq!(ids(&stale, "ghost words number 1", Mode::Vector).len(), 6);
        let folder = dir.path().join("collections/c");
        let aside = dir.path().join("aside");
        std::fs::rename(&folder, &aside).unwrap();
        e.delete_collection("c").unwrap();
        stale.flush().unwrap();
        std::fs::rename(&aside, &folder).unwrap();
        if explicit {
            e.create_collection("c", &CollectionSettings::default())
                .unwrap();
        }
        for i in 0..6 {
            put(
                &e,
                &format!("new{i}"),
                &format!("fresh words number {i}"),
                &[],
            );
        }
        // the stale process's flush writes nothing of the old collection into the new one's
        // folder; another process opens the collection at the old dump's generation
        stale.flush().unwrap();
        let other = engine(dir.path(), &models);
        for (who, engine) in [("writer", &e), ("other", &other)] {
            let found = ids(engine, "ghost words number 1", Mode::Vector);
            assert_eq!(found.len(), 6, "{who}: {found:?}");
            assert!(
                found.iter().all(|d| d.starts_with("new")),
                "{who}: {found:?}"
            );
        }
    }
}
