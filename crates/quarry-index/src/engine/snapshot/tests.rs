//! Snapshot and restore on real files: a snapshot taken by a second engine while the first holds
//! vectors newer than its dump restores to exactly the snapshot's documents, answering like a
//! reference built from them; a damaged snapshot, a non-empty data dir and a data dir in use are
//! refused, and leave nothing behind.

use super::*;
use crate::engine::Engine;
use crate::options::EngineOptions;
use crate::test_support::Letters;
use quarry_core::{ChunkOptions, ChunkSizer, GroupBy, Mode, Principal, QueryOptions};
use std::path::Path;
use std::sync::Arc;

/// Vectors on; a vector graph is dumped only by `flush`.
fn options() -> EngineOptions {
    EngineOptions {
        chunk: ChunkOptions {
            max_tokens: 64,
            overlap: 0,
            sizer: ChunkSizer::Chars,
            context_chars: 0,
        },
        embedder: "letters".into(),
        embedders: Some(Arc::new(Letters)),
        dump_every_points: 1_000_000,
        ..EngineOptions::default()
    }
}

/// Document `i`: a word only it has, and common words.
fn text(i: usize) -> String {
    format!("w{i}x lantern {}", ["copper", "willow", "granite"][i % 3])
}

fn put(engine: &Engine, i: usize) {
    crate::test_support::put(engine, "c", &format!("d{i}"), &text(i));
}

/// `(doc_id, score)` of a query, rounded so equal rankings compare equal.
fn ranking(engine: &Engine, q: &str, mode: Mode) -> Vec<(String, i64)> {
    let q = QueryOptions::new(q, 10, mode, GroupBy::Document).unwrap();
    engine
        .searcher("c")
        .unwrap()
        .search(&q, &Principal::local_admin())
        .unwrap()
        .results
        .into_iter()
        .map(|h| (h.doc_id, (h.score * 1e5).round() as i64))
        .collect()
}

/// A data dir with documents 0..25 in 25 generations, dumped at 20; a snapshot of it taken by a
/// second engine, in `root/snap`. Returns the first engine (still open) and the manifest.
fn snapshotted(root: &Path) -> (Engine, Manifest) {
    let data = root.join("data");
    let engine = Engine::open(&data, options()).unwrap();
    for i in 0..20 {
        put(&engine, i);
    }
    engine.flush().unwrap();
    for i in 20..25 {
        put(&engine, i);
    }
    let other = Engine::open(&data, options()).unwrap();
    let summary = other.snapshot(&root.join("snap"), None).unwrap();
    assert_eq!(summary.path, root.join("snap"));
    let manifest = verify(&root.join("snap")).unwrap();
    assert_eq!(summary.collections, manifest.collections);
    (engine, manifest)
}

#[test]
fn a_restored_snapshot_answers_like_a_reference_of_its_documents() {
    let root = tempfile::tempdir().unwrap();
    let (engine, manifest) = snapshotted(root.path());
    // The graph in the first engine's memory was newer than its dump: the snapshot has the dump
    // (generation 20) and the catalog (25), whose change log brings the dump up to date.
    assert_eq!(
        manifest.collections,
        vec![SnapshotCollection {
            name: "c".into(),
            generation: 25,
            bm25_generation: 25,
            vector_generation: Some(20),
        }]
    );
    assert_eq!(manifest.format, FORMAT);
    assert!(manifest.files.iter().any(|f| f.path == "catalog.sqlite3"));
    assert!(
        manifest
            .files
            .iter()
            .any(|f| f.path.ends_with("/meta.json"))
    );
    assert!(manifest.files.iter().any(|f| f.path.ends_with("/ids.bin")));
    assert!(!manifest.files.iter().any(|f| f.path.ends_with(".lock")));
    // No staging folder or hold is left in the data dir.
    let leftovers: Vec<_> = std::fs::read_dir(root.path().join("data"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".snapshot"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Written after the snapshot: not in it.
    put(&engine, 99);
    drop(engine);

    let restored_dir = root.path().join("restored");
    let summary = restore(&root.path().join("snap"), &restored_dir, false).unwrap();
    assert!(!summary.replaced);
    assert_eq!(summary.files, manifest.files.len());
    let restored = Engine::open(&restored_dir, options()).unwrap();
    let reference = Engine::open(root.path().join("reference"), options()).unwrap();
    for i in 0..25 {
        put(&reference, i);
    }
    let stats = restored.stats("c", &Principal::local_admin()).unwrap();
    assert_eq!((stats.documents, stats.generation), (25, Some(25)));
    assert_eq!(stats.vectors, Some(25));
    for i in 0..25 {
        let word = format!("w{i}x");
        assert_eq!(ranking(&restored, &word, Mode::Bm25)[0].0, format!("d{i}"));
        for (q, mode) in [
            (word.as_str(), Mode::Bm25),
            (text(i).as_str(), Mode::Vector),
            (text(i).as_str(), Mode::Hybrid),
        ] {
            assert_eq!(
                ranking(&restored, q, mode),
                ranking(&reference, q, mode),
                "{q:?} {mode:?}"
            );
        }
    }
    assert!(ranking(&restored, "w99x", Mode::Bm25).is_empty());
    assert_eq!(
        ranking(&restored, "lantern copper", Mode::Bm25),
        ranking(&reference, "lantern copper", Mode::Bm25)
    );
}

#[test]
fn a_damaged_snapshot_is_refused_and_restores_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (engine, manifest) = snapshotted(root.path());
    drop(engine);
    let snap = root.path().join("snap");
    let target = root.path().join("restored");
    let victim = manifest
        .files
        .iter()
        .find(|f| f.path.starts_with("collections/") && f.bytes > 0)
        .unwrap();
    let path = snap.join(&victim.path);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let e = verify(&snap).unwrap_err().to_string();
    assert!(e.contains("is damaged") && e.contains(&victim.path), "{e}");
    let e = restore(&snap, &target, false).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Input);
    let e = e.to_string();
    assert!(
        e.contains(&victim.path) && e.contains("Nothing was restored"),
        "{e}"
    );
    assert!(!target.exists());
    let names: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains(".restore-")),
        "a temporary folder was left: {names:?}"
    );

    // A missing file, and a manifest that does not parse, are refused as clearly.
    std::fs::remove_file(&path).unwrap();
    let e = restore(&snap, &target, false).unwrap_err().to_string();
    assert!(e.contains(&victim.path) && e.contains("is missing"), "{e}");
    std::fs::write(snap.join(MANIFEST), b"{not json").unwrap();
    let e = restore(&snap, &target, false).unwrap_err().to_string();
    assert!(e.contains("does not parse"), "{e}");
    let e = restore(&root.path().join("data"), &target, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a quarry snapshot"), "{e}");
    assert!(!target.exists());
}

#[test]
fn a_restore_into_a_non_empty_or_used_data_dir_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (engine, _) = snapshotted(root.path());
    drop(engine);
    let snap = root.path().join("snap");

    // Non-empty: refused without --force, and the content stays.
    let target = root.path().join("other");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep.txt"), b"mine").unwrap();
    let e = restore(&snap, &target, false).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Input);
    assert!(
        e.to_string().contains("is not empty") && e.to_string().contains("--force"),
        "{e}"
    );
    assert_eq!(std::fs::read(target.join("keep.txt")).unwrap(), b"mine");

    // An empty folder is fine.
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    restore(&snap, &empty, false).unwrap();
    assert!(empty.join("catalog.sqlite3").is_file());

    // In use by an engine: refused even with --force, and nothing changes.
    let used = Engine::open(&empty, options()).unwrap();
    let e = restore(&snap, &empty, true).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Busy);
    assert!(e.to_string().contains("in use"), "{e}");
    drop(used);

    // With --force and nobody using it: replaced.
    let summary = restore(&snap, &target, true).unwrap();
    assert!(summary.replaced);
    assert!(!target.join("keep.txt").exists());
    let restored = Engine::open(&target, options()).unwrap();
    assert_eq!(
        restored
            .stats("c", &Principal::local_admin())
            .unwrap()
            .documents,
        25
    );
    // The replaced content and the temporary folders are gone.
    let names: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");

    // A snapshot never overwrites: its destination must be new.
    let e = restored.snapshot(&snap, None).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    // A cancelled snapshot leaves nothing.
    let cancel = crate::Cancel::new();
    cancel.cancel();
    let e = restored
        .snapshot(&root.path().join("cancelled"), Some(&cancel))
        .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Busy);
    assert!(!root.path().join("cancelled").exists());
}

#[test]
fn snapshot_names_and_the_default_folder() {
    assert_eq!(timestamp_name(0), "19700101-000000-000");
    // 2026-12-04T12:55:01.042Z
    assert_eq!(timestamp_name(1_796_388_901_042), "20261204-125501-042");
    // 2024-02-29T23:59:59.999Z (a leap day)
    assert_eq!(timestamp_name(1_709_251_199_999), "20240229-235959-999");
    let (long, too_long) = ("x".repeat(64), "x".repeat(65));
    for ok in ["a", "nightly-2026_12_04", long.as_str()] {
        check_name(ok).unwrap();
    }
    for bad in ["", "../x", "a/b", "a.b", " ", too_long.as_str()] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    assert_eq!(
        default_dir(&data),
        root.path().canonicalize().unwrap().join("data-snapshots")
    );
}
