//! Engine tests of what the data directory goes through in production: two engines over one
//! directory (a CLI ingest beside a running server), and damaged derived files (vector dumps,
//! BM25 segments) and a damaged catalog. Every damaged derived file must leave an engine that
//! answers exactly as before the damage (rebuilt from the catalog), never a panic, an abort or a
//! silently different answer; a damaged catalog is a clear error.

use super::*;
use crate::test_support::Letters;
use quarry_core::{ChunkOptions, Principal};
use quarry_core::{ChunkSizer, GroupBy, Mode, QueryOptions};
use std::path::Path;
use std::sync::Arc;

/// Vectors on, 64-character chunks, and a vector dump after every write (so a writer prunes the
/// change log as far as it can).
fn options() -> EngineOptions {
    EngineOptions {
        chunk: ChunkOptions {
            max_tokens: 16,
            overlap: 0,
            sizer: ChunkSizer::Chars,
            context_chars: 0,
        },
        embedder: "letters".into(),
        embedders: Some(Arc::new(Letters)),
        dump_every_points: 1,
        ..EngineOptions::default()
    }
}

fn put(engine: &Engine, id: &str, text: &str) {
    crate::test_support::put(engine, "c", id, text);
}

/// The text of document `i`: a word only it has (`w{i}x`) and common words.
fn text(i: usize) -> String {
    let common = ["river", "stone", "maple", "cloud", "ember", "frost"];
    format!(
        "w{i}x {} {} harbor",
        common[i % common.len()],
        common[(i / 6) % common.len()]
    )
}

/// Every answer the engine gives to a fixed set of queries, in every mode: ids and scores.
fn answers(engine: &Engine) -> Vec<(String, Vec<(String, String)>)> {
    let admin = quarry_core::Principal::local_admin();
    let searcher = engine.searcher("c").unwrap();
    let mut out = Vec::new();
    for q in [
        "river stone",
        "maple harbor",
        "w3x",
        "cloud ember frost",
        "w17x river",
    ] {
        for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
            let opts = QueryOptions::new(q, 10, mode, GroupBy::Chunk).unwrap();
            let r = searcher.search(&opts, &admin).unwrap();
            assert!(!r.degraded, "{q} {mode:?} degraded");
            out.push((
                format!("{q} {mode:?}"),
                r.results
                    .iter()
                    .map(|h| (h.doc_id.clone(), format!("{:.5}", h.score)))
                    .collect(),
            ));
        }
    }
    out
}

fn matching(engine: &Engine, word: &str) -> Vec<String> {
    let q = QueryOptions::new(word, 100, Mode::Bm25, GroupBy::Document).unwrap();
    let r = engine
        .searcher("c")
        .unwrap()
        .search(&q, &quarry_core::Principal::local_admin())
        .unwrap();
    r.results.into_iter().map(|h| h.doc_id).collect()
}

#[test]
fn a_reader_follows_another_engines_commits_and_then_writes() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Engine::open(dir.path(), options()).unwrap();
    let reader = Engine::open(dir.path(), options()).unwrap();
    put(&writer, "d0", &text(0));
    assert_eq!(matching(&reader, "w0x"), ["d0"]);
    for i in 1..30 {
        put(&writer, &format!("d{i}"), &text(i));
    }
    assert_eq!(
        writer
            .stats("c", &Principal::local_admin())
            .unwrap()
            .generation,
        Some(30)
    );
    assert_eq!(reader.refresh().unwrap(), 1, "one collection moved");
    assert_eq!(reader.refresh().unwrap(), 0, "and nothing more to do");
    for i in 0..30 {
        assert_eq!(
            matching(&reader, &format!("w{i}x")),
            [format!("d{i}")],
            "w{i}x"
        );
    }
    assert_eq!(
        answers(&reader),
        answers(&writer),
        "the reader answers as the writer"
    );
    // Its own writes then succeed, and the other engine follows them.
    put(&reader, "r", "w99x river harbor");
    writer.refresh().unwrap();
    assert_eq!(matching(&writer, "w99x"), ["r"]);
    assert_eq!(answers(&reader), answers(&writer));
}

#[test]
fn a_reader_whose_hold_expired_reloads_the_dump_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Engine::open(dir.path(), options()).unwrap();
    let reader = Engine::open(dir.path(), options()).unwrap();
    put(&writer, "d0", &text(0));
    assert_eq!(matching(&reader, "w0x"), ["d0"]);
    // The reader's process looks dead to the writer (its hold expired): the writer prunes the
    // change log past the reader's vectors.
    rusqlite::Connection::open(dir.path().join("catalog.sqlite3"))
        .unwrap()
        .execute("UPDATE index_holds SET seen_at = 0", [])
        .unwrap();
    for i in 1..20 {
        put(&writer, &format!("d{i}"), &text(i));
    }
    {
        let catalog = writer.catalog();
        assert_eq!(
            catalog.changed_between("c", 1, 20).unwrap(),
            None,
            "the log was pruned"
        );
    }
    // A write through the reader catches up from the writer's dump (this was a `corrupt state`
    // error), and so does a refresh.
    put(&reader, "r", "w99x river harbor");
    writer.refresh().unwrap();
    assert_eq!(answers(&reader), answers(&writer));
    assert_eq!(matching(&reader, "w19x"), ["d19"]);
}

/// Builds a collection of 40 documents with a dumped vector graph, and its answers.
fn build(dir: &Path) -> Vec<(String, Vec<(String, String)>)> {
    let engine = Engine::open(dir, options()).unwrap();
    for i in 0..40 {
        put(&engine, &format!("d{i}"), &text(i));
    }
    engine
        .apply("c", vec![Change::Delete("d5".into())])
        .unwrap();
    engine.flush().unwrap();
    answers(&engine)
}

/// Every file below `dir` (relative paths), sorted.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// 200 bytes (or the whole file when shorter) inverted at the start.
    FlipHeader,
    /// 200 bytes inverted in the middle.
    FlipMiddle,
    /// Cut to half its length.
    Truncate,
    Delete,
}

fn damage(path: &Path, how: Damage) {
    let mut bytes = std::fs::read(path).unwrap();
    match how {
        Damage::Delete => return std::fs::remove_file(path).unwrap(),
        Damage::Truncate => bytes.truncate(bytes.len() / 2),
        Damage::FlipHeader | Damage::FlipMiddle => {
            let from = match how {
                Damage::FlipMiddle => bytes.len() / 2,
                _ => 0,
            };
            let to = (from + 200).min(bytes.len());
            for b in &mut bytes[from..to] {
                *b ^= 0xA5;
            }
        }
    }
    std::fs::write(path, bytes).unwrap();
}

const DAMAGES: [Damage; 4] = [
    Damage::FlipHeader,
    Damage::FlipMiddle,
    Damage::Truncate,
    Damage::Delete,
];

/// Each file of the derived indexes (vector dump and BM25), damaged each way: the reopened
/// engine answers exactly as the undamaged one (rebuilt from the catalog), and a write works.
#[test]
fn every_damaged_derived_file_is_rebuilt_from_the_catalog() {
    let clean = tempfile::tempdir().unwrap();
    let expected = build(clean.path());
    let derived: Vec<_> = files(clean.path())
        .into_iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            s.starts_with("collections/") && !s.ends_with(".lock")
        })
        .collect();
    assert!(
        derived.iter().any(|p| p.ends_with("graph.hnsw.data"))
            && derived.iter().any(|p| p.ends_with("graph.hnsw.graph"))
            && derived
                .iter()
                .any(|p| p.to_string_lossy().ends_with(".idx")),
        "{derived:?}"
    );
    // The oracle of a rebuild: the same catalog with every derived file removed.
    let rebuilt = {
        let dir = tempfile::tempdir().unwrap();
        for rel in files(clean.path()) {
            if !rel.starts_with("collections") {
                std::fs::copy(clean.path().join(&rel), dir.path().join(&rel)).unwrap();
            }
        }
        answers(&Engine::open(dir.path(), options()).unwrap())
    };
    let mut cases = 0;
    for file in &derived {
        for how in DAMAGES {
            let dir = tempfile::tempdir().unwrap();
            for rel in files(clean.path()) {
                let to = dir.path().join(&rel);
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(clean.path().join(&rel), &to).unwrap();
            }
            damage(&dir.path().join(file), how);
            let engine = Engine::open(dir.path(), options()).unwrap();
            let got = answers(&engine);
            // A damaged BM25 file means a BM25 index rebuilt from the catalog, whose scores
            // differ from the original's by the deleted document's statistics (tantivy keeps
            // them until a merge): its answers are those of a clean rebuild.
            let bm25 = file.components().any(|c| c.as_os_str() == "bm25");
            assert!(
                got == expected || (bm25 && got == rebuilt),
                "{} {how:?}: {got:?}",
                file.display()
            );
            put(&engine, "new", "w77x river");
            assert_eq!(
                matching(&engine, "w77x"),
                ["new"],
                "{} {how:?}",
                file.display()
            );
            cases += 1;
        }
    }
    assert!(cases >= 4 * 8, "{cases} cases");
}

/// SQLite's full `integrity_check` of the catalog at `path`: `true` when it finds nothing.
fn sqlite_finds_it_sound(path: &Path) -> bool {
    let Ok(conn) = rusqlite::Connection::open(path) else {
        return false;
    };
    let Ok(mut stmt) = conn.prepare("PRAGMA integrity_check") else {
        return false;
    };
    let rows: Vec<String> = match stmt.query_map([], |r| r.get(0)) {
        Ok(rows) => rows.filter_map(|r| r.ok()).collect(),
        Err(_) => return false,
    };
    rows == ["ok"]
}

/// The catalog damaged at the header and at the start of every page: whatever SQLite's own
/// integrity check can see is refused at open with an error that names the file and says to
/// restore it; what it cannot see (bytes inside a row) opens, and reading everything neither
/// panics nor fails.
#[test]
fn a_damaged_catalog_is_a_clear_error_naming_the_file() {
    let clean = tempfile::tempdir().unwrap();
    build(clean.path());
    let catalog = clean.path().join("catalog.sqlite3");
    let len = std::fs::metadata(&catalog).unwrap().len() as usize;
    let (mut refused, mut invisible) = (0, 0);
    let offsets = std::iter::once(0)
        .chain((4096..len).step_by(4096))
        .chain([len / 2 + 100]);
    for at in offsets {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite3");
        let mut bytes = std::fs::read(&catalog).unwrap();
        for b in &mut bytes[at..(at + 200).min(len)] {
            *b ^= 0xA5;
        }
        std::fs::write(&path, &bytes).unwrap();
        match Engine::open(dir.path(), options()) {
            Err(e) => {
                let err = e.to_string();
                assert!(err.contains(&path.display().to_string()), "at {at}: {err}");
                assert!(err.contains("restore"), "at {at}: {err}");
                refused += 1;
            }
            Ok(engine) => {
                assert!(
                    sqlite_finds_it_sound(&path),
                    "at {at}: damage SQLite sees was not refused at open"
                );
                // Bytes inside a row: SQLite keeps no page checksums, so neither its check nor
                // quarry's sees this (see docs/operations.md on backups); reading must not panic.
                let _ = engine.searcher("c").map(|s| answers_or_errors(&s));
                invisible += 1;
            }
        }
    }
    assert!(
        refused >= 3,
        "{refused} refused, {invisible} invisible to SQLite"
    );
    assert!(
        refused > invisible,
        "{refused} refused, {invisible} invisible to SQLite"
    );
}

/// Runs the fixed queries, tolerating errors (a damaged row may fail a query, never panic).
fn answers_or_errors(searcher: &crate::Searcher) -> usize {
    let admin = quarry_core::Principal::local_admin();
    ["river stone", "w3x"]
        .iter()
        .filter(|q| {
            QueryOptions::new(**q, 10, Mode::Hybrid, GroupBy::Chunk)
                .map(|o| searcher.search(&o, &admin).is_ok())
                .unwrap_or(false)
        })
        .count()
}

/// Equal scores are ordered by chunk key everywhere: ingests of the same documents (in another
/// order and other batches) and a BM25 rebuild rank alike, in every mode, also where the cut at
/// `top_k` falls inside a run of equal scores.
#[test]
fn equal_scores_rank_alike_after_another_ingest_and_a_rebuild() {
    // 40 documents of the same length and letters: every one scores the same for "harbor"
    // (BM25) and for any text (the letter histogram), except by the digits they hold.
    let texts: Vec<(String, String)> = (0..40)
        .map(|i| (format!("d{i:02}"), format!("harbor {i:02} lantern")))
        .collect();
    let ranking = |engine: &Engine| {
        let admin = Principal::local_admin();
        let mut out = Vec::new();
        for (q, k) in [("harbor", 5), ("harbor lantern", 12), ("lantern 07", 3)] {
            for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
                for group in [GroupBy::Chunk, GroupBy::Document] {
                    let opts = QueryOptions::new(q, k, mode, group).unwrap();
                    let r = engine.searcher("c").unwrap().search(&opts, &admin).unwrap();
                    out.push(
                        r.results
                            .iter()
                            .map(|h| h.doc_id.clone())
                            .collect::<Vec<_>>(),
                    );
                }
            }
        }
        out
    };
    let a = tempfile::tempdir().unwrap();
    let first = Engine::open(a.path(), options()).unwrap();
    for (id, t) in &texts {
        put(&first, id, t);
    }
    let expected = ranking(&first);
    assert!(expected.iter().all(|r| !r.is_empty()));
    // BM25 scores really tie: the first five of "harbor" are the five smallest chunk keys, not
    // the first five ingested.
    let b = tempfile::tempdir().unwrap();
    let second = Engine::open(b.path(), options()).unwrap();
    let changes: Vec<Change> = texts
        .iter()
        .rev()
        .map(|(id, t)| {
            let d = crate::test_support::doc(id, t);
            let chunks = second
                .chunker("c")
                .unwrap()
                .chunk(&d.title, &d.text, d.format);
            Change::Upsert(d, chunks)
        })
        .collect();
    for batch in changes.chunks(7) {
        second.apply("c", batch.to_vec()).unwrap();
    }
    assert_eq!(ranking(&second), expected, "another ingest order");
    drop(first);
    std::fs::remove_dir_all(a.path().join("collections/c/bm25")).unwrap();
    let rebuilt = Engine::open(a.path(), options()).unwrap();
    assert_eq!(ranking(&rebuilt), expected, "after a BM25 rebuild");
}

/// Segment files in a BM25 folder that its last commit (`meta.json`) does not name.
fn unnamed_segment_files(bm25: &std::path::Path) -> Vec<String> {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bm25.join("meta.json")).unwrap()).unwrap();
    let living: Vec<String> = meta["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["segment_id"].as_str().unwrap().replace('-', ""))
        .collect();
    let mut out: Vec<String> = std::fs::read_dir(bm25)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.split_once('.').is_some_and(|(stem, _)| {
                stem.len() == 32
                    && stem.bytes().all(|b| b.is_ascii_hexdigit())
                    && !living.contains(&stem.to_string())
            })
        })
        .collect();
    out.sort();
    out
}

/// Two processes taking turns to write (a CLI beside a server): each one's tantivy knows only
/// the files it created or saw when it opened the index, so segments the other wrote and a merge
/// then replaced would stay on disk for good. Every commit removes what no commit names.
#[test]
fn writers_taking_turns_leave_no_segment_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let a = Engine::open(dir.path(), options()).unwrap();
    let b = Engine::open(dir.path(), options()).unwrap();
    for i in 0..24 {
        let (engine, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        put(engine, &format!("d{i}"), &text(i));
        other.refresh().unwrap();
    }
    let bm25 = dir.path().join("collections/c/bm25");
    assert_eq!(unnamed_segment_files(&bm25), Vec::<String>::new());
    let segments = std::fs::read_dir(&bm25)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".store")
        })
        .count();
    assert!(
        segments <= 8,
        "{segments} segments after 24 commits: merges ran"
    );
    for i in 0..24 {
        assert_eq!(matching(&a, &format!("w{i}x")), [format!("d{i}")]);
        assert_eq!(matching(&b, &format!("w{i}x")), [format!("d{i}")]);
    }
}

/// A server following a bulk ingest of another process: the ingest's lazy commits leave several
/// segments, its end merges them without a new generation, and the follower must read the merged
/// ones at its next refresh (not keep the old ones, whose files are gone, until the next write).
#[test]
fn a_follower_reads_the_segments_a_bulk_ingest_merged_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Engine::open(dir.path(), options()).unwrap();
    let server = Engine::open(dir.path(), options()).unwrap();
    put(&writer, "d0", &text(0));
    assert_eq!(server.searcher("c").unwrap().num_segments(), 1);
    {
        let _bulk = writer.bulk_ingest("c");
        for i in 1..6 {
            put(&writer, &format!("d{i}"), &text(i));
        }
        server.refresh().unwrap();
        assert_eq!(
            server.searcher("c").unwrap().num_segments(),
            6,
            "lazy commits"
        );
        writer.flush().unwrap();
    }
    assert_eq!(writer.searcher("c").unwrap().num_segments(), 1);
    assert_eq!(
        server.refresh().unwrap(),
        1,
        "the merge is news to the server"
    );
    assert_eq!(server.searcher("c").unwrap().num_segments(), 1);
    assert_eq!(server.refresh().unwrap(), 0, "and then no more");
    for i in 0..6 {
        assert_eq!(matching(&server, &format!("w{i}x")), [format!("d{i}")]);
    }
}

/// A server following a CLI ingest (two engines on one directory): once the writer's dumps
/// seal segments, the follower reloads them instead of keeping every followed point in its own
/// open graph, and answers as the writer.
#[test]
fn a_follower_reloads_the_segments_a_writer_sealed() {
    let opts = || EngineOptions {
        vector: crate::vectors::VectorParams {
            segment_points: 64,
            ..Default::default()
        },
        ..options()
    };
    let sealed = |e: &Engine| {
        let map = e.indexes.read().unwrap();
        let v = map["c"].vectors.clone().unwrap();
        (v.sealed_points(), v.snapshot().sealed().0)
    };
    let dir = tempfile::tempdir().unwrap();
    let writer = Engine::open(dir.path(), opts()).unwrap();
    let reader = Engine::open(dir.path(), opts()).unwrap();
    put(&writer, "d0", &text(0));
    assert_eq!(matching(&reader, "w0x"), ["d0"]);
    assert_eq!(sealed(&reader), (0, 0));
    for i in 1..120 {
        put(&writer, &format!("d{i}"), &text(i));
    }
    assert_eq!(reader.refresh().unwrap(), 1);
    let (points, segments) = sealed(&writer);
    assert!(points >= 64 && segments >= 1, "{points} {segments}");
    assert_eq!(
        sealed(&reader),
        (points, segments),
        "the reader holds the writer's segments"
    );
    assert_eq!(answers(&reader), answers(&writer));
    // and goes on following
    put(&writer, "late", "w500x river");
    assert_eq!(reader.refresh().unwrap(), 1);
    assert_eq!(matching(&reader, "w500x"), ["late"]);
    assert_eq!(answers(&reader), answers(&writer));
}
