//! A CLI ingest beside a running server, as real processes: the server answers from every
//! generation the CLI commits (BM25, vectors and counts) soon after its commit (it looks every
//! 250 ms; the test allows 10 s, a debug build under eight clients on two cores), while clients
//! query it without a single failure, and its own writes succeed afterwards.

use crate::*;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub(crate) fn query(
    client: &Client,
    url: &str,
    q: &str,
    mode: &str,
) -> Result<Vec<String>, String> {
    let resp = client
        .post(format!("{url}/v1/collections/c/query"))
        .json(&json!({"query": q, "mode": mode, "top_k": 3, "group_by": "document"}))
        .send()
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: Value = resp.json().map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    Ok(doc_ids(&body))
}

/// The text of new document `i`: a word no other document has, and common words.
pub(crate) fn text(i: usize) -> String {
    format!(
        "zq{i}x lantern meadow {}",
        ["copper", "willow", "granite"][i % 3]
    )
}

#[test]
fn a_server_answers_from_what_a_cli_ingest_commits_while_clients_query() {
    let data = tmp();
    let first = tmp();
    write_tree(
        first.path(),
        &[("seed.txt", b"seed document about harbors and lanterns")],
    );
    let out = run(
        data.path(),
        &["ingest", "--collection", "c", &path_str(first.path())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let url = server.url.clone();
    let client = Client::new();
    assert_eq!(query(&client, &url, "harbors", "bm25").unwrap().len(), 1);

    // 8 clients query all along.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (stop, done, failed, failures) =
                (stop.clone(), done.clone(), failed.clone(), failures.clone());
            let url = url.clone();
            std::thread::spawn(move || {
                let client = Client::new();
                let modes = ["hybrid", "bm25", "vector"];
                let mut i = c;
                while !stop.load(Ordering::SeqCst) {
                    let q = format!("zq{}x lantern", i % 250);
                    match query(&client, &url, &q, modes[i % 3]) {
                        Ok(_) => done.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            failures.lock().unwrap().push(e);
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                    i += 8;
                }
            })
        })
        .collect();

    // The CLI ingests 250 documents, 10 per generation: 25 generations.
    let more = tmp();
    for i in 0..250 {
        std::fs::write(more.path().join(format!("n{i:03}.txt")), text(i)).unwrap();
    }
    let out = run_env(
        data.path(),
        &["ingest", "--collection", "c", &path_str(more.path())],
        &[("QUARRY_INGEST__BATCH_DOCS", "10")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = Instant::now();

    // The last document is found by BM25 and by its vector soon after the last commit.
    let last = text(249);
    loop {
        let bm25 = query(&client, &url, "zq249x", "bm25").unwrap();
        let vector = query(&client, &url, &last, "vector").unwrap();
        if bm25.first().map(String::as_str) == Some("n249.txt")
            && vector.iter().any(|d| d == "n249.txt")
        {
            break;
        }
        // the server looks every 250 ms; in a debug build under eight clients on two busy
        // cores its look can wait, so this bound is 10 s (the figure is printed below)
        assert!(
            committed.elapsed() < Duration::from_secs(10),
            "not visible 10 s after the CLI's last commit: bm25 {bm25:?}, vector {vector:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen_after = committed.elapsed();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "failed queries: {:?}",
        failures.lock().unwrap().iter().take(5).collect::<Vec<_>>()
    );
    assert!(done.load(Ordering::SeqCst) > 0);

    // Every document, by both retrievers, and the counts.
    for i in 0..250 {
        let id = format!("n{i:03}.txt");
        assert_eq!(
            query(&client, &url, &format!("zq{i}x"), "bm25").unwrap()[0],
            id
        );
        // (the hash embedder gives documents of the same common words close vectors: the
        // document is among the nearest three, not always first)
        let near = query(&client, &url, &text(i), "vector").unwrap();
        assert!(near.contains(&id), "{id}: {near:?}");
    }
    let stats: Value = client
        .get(format!("{url}/v1/collections/c"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stats["documents"], 251, "{stats}");

    // The server's own write to that collection then succeeds and is found.
    let resp = client
        .post(format!("{url}/v1/collections/c/documents"))
        .json(
            &json!({"documents": [{"id": "via-http", "text": "zq999x posted through the server"}]}),
        )
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    assert_eq!(
        query(&client, &url, "zq999x", "bm25").unwrap(),
        ["via-http"]
    );
    let log = server.stop();
    assert!(!log.contains("corrupt state"), "{log}");
    eprintln!(
        "visible {:?} after the last commit; {} queries during the ingest",
        seen_after,
        done.load(Ordering::SeqCst)
    );
}
