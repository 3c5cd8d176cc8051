//! The catalog's damage check when it runs beside the open (`quarry serve`,
//! `EngineOptions::defer_catalog_check`): a sound catalog answers as with the check at open, and
//! a server on a damaged catalog stops with the reason (what waits for the verdict is tested in
//! `quarry_index`'s `engine::catalog_check_tests`).

use crate::{path_str, quarry, run, tmp, write_tree};
use quarry_core::{GroupBy, Mode, Principal, QueryOptions, Role};
use quarry_index::{Engine, EngineOptions};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A data directory with one collection (`default`) of a few documents, ingested by the CLI.
fn ingested() -> tempfile::TempDir {
    let data = tmp();
    let docs = tmp();
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            let body = format!(
                "# Note {i}\ncopper kettle number {i} {}",
                "steam ".repeat(i)
            );
            (format!("n{i}.md"), body.into_bytes())
        })
        .collect();
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    write_tree(docs.path(), &files);
    let out = run(data.path(), &["ingest", &path_str(docs.path())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    data
}

/// Breaks one table leaf page of the SQLite file at `path` (its page-type byte; the last such
/// page, so page 1's header and schema stay readable and the file still opens): SQLite's
/// `quick_check` reports it.
fn damage_a_leaf_page(path: &Path) {
    let wal = path.with_extension("sqlite3-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the writer left its log: the damage would land in a stale page"
    );
    let mut bytes = std::fs::read(path).unwrap();
    let size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65536,
        n => n as usize,
    };
    let page = (1..bytes.len() / size)
        .rev()
        .find(|p| bytes[p * size] == 0x0D)
        .expect("a table leaf page besides page 1");
    bytes[page * size] = 0x07; // no page type
    std::fs::write(path, bytes).unwrap();
}

fn bm25_hits(engine: &Engine) -> quarry_index::Result<usize> {
    let q = QueryOptions::new("copper kettle", 10, Mode::Bm25, GroupBy::Document).unwrap();
    let root = Principal::new("root", vec![], Role::Admin);
    Ok(engine.searcher("default")?.search(&q, &root)?.results.len())
}

#[test]
fn a_deferred_check_passes_a_sound_catalog_and_answers_as_the_check_at_open_does() {
    let data = ingested();
    let checked_at_open = Engine::open(data.path(), EngineOptions::default()).unwrap();
    let want = bm25_hits(&checked_at_open).unwrap();
    drop(checked_at_open);
    assert_eq!(want, 10);
    let deferred = EngineOptions {
        defer_catalog_check: true,
        ..EngineOptions::default()
    };
    let engine = Engine::open(data.path(), deferred).unwrap();
    engine.open_all().unwrap();
    engine.catalog_checked().unwrap();
    assert_eq!(bm25_hits(&engine).unwrap(), want);
}

#[test]
fn serve_on_a_damaged_catalog_stops_with_the_reason() {
    let data = ingested();
    damage_a_leaf_page(&data.path().join("catalog.sqlite3"));
    let mut child = quarry()
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("quarry serve still runs on a damaged catalog after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is damaged") && err.contains("restore the directory from a backup"),
        "{err}"
    );
    assert!(
        !err.contains("; ready"),
        "the server said it was ready: {err}"
    );
    // the check ran after the open (the server had bound its address), and it never listened
    let bound = err
        .find("authentication:")
        .expect("the server bound its address");
    assert!(bound < err.find("is damaged").unwrap(), "{err}");
    assert!(!err.contains("quarry listening"), "{err}");
}
