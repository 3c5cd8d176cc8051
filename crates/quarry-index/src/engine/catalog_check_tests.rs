//! The catalog's check beside the open ([`EngineOptions::defer_catalog_check`]): until its
//! verdict nothing is answered or written, and the damage it finds then refuses both, as the
//! check at open refuses the catalog.

use super::*;
use crate::error::Result;
use crate::test_support::doc;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Held by a test to keep a deferred check from starting (the check thread takes it first).
pub(super) static CHECK_HOLD: Mutex<()> = Mutex::new(());

fn options(defer: bool) -> EngineOptions {
    EngineOptions {
        defer_catalog_check: defer,
        ..EngineOptions::default()
    }
}

/// Makes the root page of the catalog's `documents` table no b-tree page (its type byte), so
/// SQLite's `quick_check` reports it; page 1 (the header and the schema) stays sound.
fn damage_documents_table(path: &Path) {
    let (root, size): (i64, i64) = {
        let c = rusqlite::Connection::open(path).unwrap();
        let root = c
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'documents'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (
            root,
            c.pragma_query_value(None, "page_size", |r| r.get(0))
                .unwrap(),
        )
    };
    assert!(root > 1);
    let wal = path.with_extension("sqlite3-wal");
    assert!(std::fs::metadata(&wal).map_or(true, |m| m.len() == 0));
    let mut bytes = std::fs::read(path).unwrap();
    bytes[((root - 1) * size) as usize] = 0x07;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn nothing_is_answered_or_written_before_the_verdict_and_a_damage_refuses_both() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.sqlite3");
    {
        let engine = Engine::open(dir.path(), options(false)).unwrap();
        let d = doc("a", "bright copper kettles shine");
        let chunks = quarry_core::Chunker::new(engine.options().chunk, None)
            .unwrap()
            .chunk(&d.title, &d.text, d.format);
        engine.apply("c", vec![Change::Upsert(d, chunks)]).unwrap();
    }
    damage_documents_table(&catalog);
    let before = std::fs::read(&catalog).unwrap();

    let hold = CHECK_HOLD.lock().unwrap_or_else(|p| p.into_inner());
    let engine = Arc::new(Engine::open(dir.path(), options(true)).expect("opens unchecked"));
    type Attempt = Box<dyn FnOnce(&Engine) -> Result<()> + Send>;
    let attempts: Vec<(&str, Attempt)> = vec![
        ("query", Box::new(|e| e.searcher("c").map(|_| ()))),
        (
            "write",
            Box::new(|e| e.apply("c", vec![Change::Delete("a".into())]).map(|_| ())),
        ),
        (
            "jobs",
            Box::new(|e| crate::jobs::run_pending(e).map(|_| ())),
        ),
        ("refresh", Box::new(|e| e.refresh().map(|_| ()))),
    ];
    let running: Vec<_> = attempts
        .into_iter()
        .map(|(what, attempt)| {
            let e = engine.clone();
            (what, std::thread::spawn(move || attempt(&e)))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for (what, thread) in &running {
        assert!(
            !thread.is_finished(),
            "the {what} did not wait for the check"
        );
    }
    assert!(engine.catalog_check.get().is_none());
    drop(hold);

    let verdict = engine.catalog_checked().unwrap_err().to_string();
    assert!(
        verdict.contains("is damaged") && verdict.contains("catalog.sqlite3"),
        "{verdict}"
    );
    for (what, thread) in running {
        let refused = thread.join().unwrap().unwrap_err().to_string();
        assert_eq!(refused, verdict, "the {what}");
    }
    drop(engine);
    assert!(
        std::fs::read(&catalog).unwrap() == before,
        "the catalog was written"
    );
    let at_open = Engine::open(dir.path(), options(false)).err().unwrap();
    assert!(at_open.to_string().contains("is damaged"), "{at_open}");
}
