//! Crash safety: SIGKILL the ingest process at several points, rerun it, and compare with an
//! uninterrupted run: the same documents, chunks and query results.

use crate::{doc_ids, path_str, quarry, run_json, tmp};
use std::time::{Duration, Instant};

/// A JSONL corpus of `n` records, each with a unique marker word and pseudo-random words of a
/// shared vocabulary (so BM25 scores rarely tie).
fn corpus(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = String::new();
    for i in 0..n {
        let len = 20 + (next() % 60) as usize;
        let body: Vec<String> = (0..len).map(|_| format!("w{}", next() % 300)).collect();
        let text = format!("marker{i} {} closing{}", body.join(" "), i % 13);
        out.push_str(
            &serde_json::json!({"_id": format!("d{i}"), "title": format!("Doc {i}"), "text": text})
                .to_string(),
        );
        out.push('\n');
    }
    let p = dir.join("corpus.jsonl");
    std::fs::write(&p, out).unwrap();
    p
}

fn ingest(data: &std::path::Path, corpus: &str) -> std::process::Command {
    let mut c = quarry();
    c.arg("--data-dir")
        .arg(data)
        .args(["ingest", corpus, "--json"])
        .env("QUARRY_INGEST__BATCH_DOCS", "100")
        // one chunk per record (at most ~400 characters)
        .env("QUARRY_CHUNK__MAX_TOKENS", "256");
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

fn snapshot(data: &std::path::Path) -> (serde_json::Value, Vec<Vec<String>>) {
    let status = run_json(data, &["status", "--json"]);
    let counts = serde_json::json!([
        status["collections"][0]["documents"],
        status["collections"][0]["chunks"]
    ]);
    let queries = [
        "marker17",
        "marker1999",
        "w1 w2 closing3",
        "w17 w250",
        "closing12 w99 w100 w101",
    ];
    let results = queries
        .iter()
        .map(|q| {
            let mut ids = doc_ids(&run_json(
                data,
                &[
                    "query",
                    q,
                    "--mode",
                    "bm25",
                    "--json",
                    "--top-k",
                    "10",
                    "--group-by",
                    "document",
                ],
            ));
            // The same documents, the best first; the order of near-ties below it may differ,
            // because BM25 statistics count replaced-but-unmerged documents until a merge
            // (a replayed batch leaves some behind).
            if ids.len() > 1 {
                ids[1..].sort();
            }
            ids
        })
        .collect();
    (counts, results)
}

#[test]
fn sigkill_during_ingest_then_rerun_equals_an_uninterrupted_run() {
    let src = tmp();
    let corpus = path_str(&corpus(src.path(), 2000));

    let reference = tmp();
    let t = Instant::now();
    assert!(
        ingest(reference.path(), &corpus)
            .status()
            .unwrap()
            .success()
    );
    let full = t.elapsed();
    let expected = snapshot(reference.path());
    assert_eq!(expected.0, serde_json::json!([2000, 2000]));

    let mut interrupted = Vec::new();
    for fraction in [0.05, 0.2, 0.4, 0.6, 0.85] {
        let data = tmp();
        let mut child = ingest(data.path(), &corpus).spawn().unwrap();
        std::thread::sleep(Duration::from_secs_f64(full.as_secs_f64() * fraction));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let after_kill = run_json(data.path(), &["status", "--json"]);
        interrupted.push(
            after_kill["collections"][0]["documents"]
                .as_u64()
                .unwrap_or(0),
        );
        assert!(
            ingest(data.path(), &corpus).status().unwrap().success(),
            "rerun after kill at {fraction}"
        );
        assert_eq!(
            snapshot(data.path()),
            expected,
            "after SIGKILL at {fraction} of the run"
        );
    }
    assert!(
        interrupted.iter().any(|&n| 0 < n && n < 2000),
        "some kill must land mid-ingest: {interrupted:?}"
    );
}
