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
    sigkill_ingest(&[0.05, 0.2, 0.4, 0.6, 0.85]);
}

/// The long variant: 24 kill points spread over the run, from 2% to 96% of it.
/// `cargo test --release --test it crash::long_ -- --ignored --nocapture`
#[test]
#[ignore = "long: about 24 ingests and reruns; see DEVELOPERS.md"]
fn long_sigkill_during_ingest_at_24_points() {
    let fractions: Vec<f64> = (0..24).map(|i| 0.02 + 0.04 * f64::from(i)).collect();
    sigkill_ingest(&fractions);
}

/// SIGKILLs an ingest of 2000 records at each fraction of an uninterrupted run's time, reruns it,
/// and compares with the uninterrupted run.
fn sigkill_ingest(fractions: &[f64]) {
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
    for &fraction in fractions {
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
    eprintln!("documents committed when killed: {interrupted:?}");
}

/// SIGKILL of a server while 4 clients write batches of documents through it, at a pseudo-random
/// moment, then a restart, `kills` times: every batch the server acknowledged is there, whole and
/// found by its marker word; nothing appears that was never sent; and writes go on after each
/// restart.
#[test]
fn sigkill_of_a_server_during_writes_loses_no_acknowledged_document() {
    sigkill_server_during_writes(3);
}

/// The long variant: 30 kills.
/// `cargo test --release --test it crash::long_ -- --ignored --nocapture`
#[test]
#[ignore = "long: 30 server kills; see DEVELOPERS.md"]
fn long_sigkill_of_a_server_during_writes_30_times() {
    sigkill_server_during_writes(30);
}

/// The text of document `id`: a marker word only it has, and shared words.
fn written_text(id: &str) -> String {
    format!("mk{id}x lantern harbor {}", id.len() % 7)
}

/// Every document id of collection `c` as the server lists it, with its chunk count.
fn listed(client: &reqwest::blocking::Client, url: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let page = if after.is_empty() {
            format!("{url}/v1/collections/c/documents?limit=1000")
        } else {
            format!("{url}/v1/collections/c/documents?limit=1000&after={after}")
        };
        let resp = client.get(page).send().unwrap();
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return out; // no write has created the collection yet
        }
        let v: serde_json::Value = resp.json().unwrap();
        for d in v["documents"].as_array().unwrap() {
            out.push((
                d["id"].as_str().unwrap().to_owned(),
                d["chunks"].as_u64().unwrap(),
            ));
        }
        match v["next_after"].as_str() {
            Some(a) => after = a.to_owned(),
            None => return out,
        }
    }
}

fn sigkill_server_during_writes(kills: usize) {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let data = tmp();
    let batch = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let sent = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let mut rng: u64 = 0x1234_5678_9ABC_DEF1;
    let mut acked_at_kill = Vec::new();
    for round in 0..=kills {
        let mut server = crate::spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
        let url = server.url.clone();
        let client = reqwest::blocking::Client::new();

        // What was acknowledged before the last kill is all there, whole, and found.
        let present = listed(&client, &url);
        let ids: BTreeSet<String> = present.iter().map(|(id, _)| id.clone()).collect();
        let missing: Vec<_> = acked.lock().unwrap().difference(&ids).cloned().collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged but lost: {missing:?}"
        );
        let unknown: Vec<_> = ids.difference(&sent.lock().unwrap()).cloned().collect();
        assert!(unknown.is_empty(), "round {round}: never sent: {unknown:?}");
        assert!(
            present.iter().all(|(_, chunks)| *chunks == 1),
            "{present:?}"
        );
        for id in acked.lock().unwrap().iter().rev().take(40) {
            let hits: serde_json::Value = client
                .post(format!("{url}/v1/collections/c/query"))
                .json(&serde_json::json!({"query": format!("mk{id}x"), "mode": "bm25", "top_k": 1}))
                .send()
                .unwrap()
                .json()
                .unwrap();
            assert_eq!(doc_ids(&hits), std::slice::from_ref(id), "round {round}");
        }
        if round == kills {
            eprintln!(
                "{} documents acknowledged over {kills} kills (acknowledged at each kill: {acked_at_kill:?}); {} present of {} sent",
                acked.lock().unwrap().len(),
                ids.len(),
                sent.lock().unwrap().len()
            );
            server.stop();
            break;
        }

        // 4 writers, 10 documents a request, until the kill.
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (stop, batch, acked, sent) =
                    (stop.clone(), batch.clone(), acked.clone(), sent.clone());
                let url = url.clone();
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    while !stop.load(Ordering::SeqCst) {
                        let b = batch.fetch_add(1, Ordering::SeqCst);
                        let ids: Vec<String> = (0..10).map(|j| format!("b{b}d{j}")).collect();
                        let docs: Vec<_> = ids
                            .iter()
                            .map(|id| serde_json::json!({"id": id, "text": written_text(id)}))
                            .collect();
                        sent.lock().unwrap().extend(ids.iter().cloned());
                        let ok = client
                            .post(format!("{url}/v1/collections/c/documents"))
                            .json(&serde_json::json!({ "documents": docs }))
                            .send()
                            .is_ok_and(|r| r.status().is_success());
                        if !ok {
                            return; // the server is gone
                        }
                        acked.lock().unwrap().extend(ids);
                    }
                })
            })
            .collect();
        // The kill lands a pseudo-random time after this round's first acknowledged write.
        let before = acked.lock().unwrap().len();
        let waiting = Instant::now();
        while acked.lock().unwrap().len() == before {
            assert!(
                waiting.elapsed() < Duration::from_secs(60),
                "round {round}: no write acknowledged"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(rng % 1000));
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        drop(server);
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.join().unwrap();
        }
        acked_at_kill.push(acked.lock().unwrap().len());
    }
    assert!(
        acked_at_kill.windows(2).all(|w| w[0] < w[1]) && acked_at_kill[0] > 0,
        "writes must succeed between kills: {acked_at_kill:?}"
    );

    // A last restart: a write works and is found.
    let server = crate::spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let client = reqwest::blocking::Client::new();
    let r = client
        .post(format!("{}/v1/collections/c/documents", server.url))
        .json(&serde_json::json!({"documents": [{"id": "after", "text": "mkafterx at the end"}]}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    let log = server.stop();
    assert!(!log.contains("panicked"), "{log}");
}
