//! The fast tier end to end with real processes: `quarry model distill` builds the static model
//! from the cached MiniLM, a corpus is ingested with it and served at once, and a re-index to
//! MiniLM (the eval-gated job, over HTTP while queries go on) promotes the transformer's version
//! with the same chunks.

use crate::{path_str, run, run_env, run_json, spawn_serve, tmp, write_tree};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Notes over eight topics; the golden set asks for them by paraphrase.
const TOPICS: [(&str, &str); 8] = [
    ("glaciers and ice", "frozen water creeping down valleys"),
    (
        "volcanic eruptions",
        "molten lava exploding from a mountain",
    ),
    ("coral reef fish", "underwater marine life in tropical seas"),
    ("desert sand dunes", "arid wasteland with wind blown hills"),
    ("rainforest canopy", "tropical jungle treetops"),
    ("arctic foxes", "white furred predators of the polar north"),
    (
        "river deltas",
        "where streams meet the ocean depositing sediment",
    ),
    ("mountain goats", "sure footed climbers of steep cliffs"),
];
const DOCS: usize = 120;

/// Builds the static model in the model cache unless it is there (another test may be building
/// it at the same time: the loser of the final rename is told it exists).
fn ensure_static_model(data: &std::path::Path) {
    let out = run(data, &["model", "distill", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        let made: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(made["dimensions"], 256, "{made}");
        assert!(made["tokens"].as_u64().unwrap() > 25_000, "{made}");
        eprintln!("distilled in {} s", made["seconds"]);
    } else {
        assert!(stderr.contains("exists already"), "{stderr}");
    }
}

fn post(c: &Client, url: &str, body: &Value) -> (u16, Value) {
    let r = c.post(url).json(body).send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn ingest_with_the_static_tier_serve_at_once_then_reindex_to_minilm() {
    let data = tmp();
    let files = tmp();
    ensure_static_model(data.path());

    let mut corpus = String::new();
    for i in 0..DOCS {
        let t = TOPICS[i % TOPICS.len()].0;
        let text = format!("Note {i} on {t}: field report {i} describes {t}.");
        corpus.push_str(&json!({"_id": format!("d{i}"), "text": text}).to_string());
        corpus.push('\n');
    }
    let mut golden = String::new();
    for (t, (_, paraphrase)) in TOPICS.iter().enumerate() {
        let relevant: serde_json::Map<String, Value> = (0..DOCS)
            .filter(|i| i % TOPICS.len() == t)
            .map(|i| (format!("d{i}"), json!(1)))
            .collect();
        golden.push_str(&json!({"query": paraphrase, "relevant": relevant}).to_string());
        golden.push('\n');
    }
    write_tree(
        files.path(),
        &[
            ("corpus.jsonl", corpus.as_bytes()),
            ("golden.jsonl", golden.as_bytes()),
        ],
    );

    let fast = [("QUARRY_EMBEDDER", "static")];
    let started = Instant::now();
    let out = run_env(
        data.path(),
        &[
            "ingest",
            "--json",
            &path_str(&files.path().join("corpus.jsonl")),
        ],
        &fast,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let chunks = summary["embedded"].as_u64().unwrap();
    assert!(chunks >= DOCS as u64, "{summary}");
    eprintln!("static ingest of {DOCS} notes: {:?}", started.elapsed());
    let out = run(
        data.path(),
        &[
            "golden",
            "add",
            "topics",
            &path_str(&files.path().join("golden.jsonl")),
        ],
    );
    assert!(out.status.success());

    // Served at once by the static version; the paraphrases already find their topic.
    let server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &fast);
    let (c, base) = (Client::new(), server.url.clone());
    let query = |text: &str| {
        post(
            &c,
            &format!("{base}/v1/collections/default/query"),
            &json!({"query": text, "mode": "vector", "top_k": 5, "group_by": "document"}),
        )
    };
    let (status, answer) = query(TOPICS[1].1);
    assert_eq!(status, 200, "{answer}");
    let va = answer["embedding_version"].as_str().unwrap().to_owned();
    assert!(va.starts_with("static-"), "{answer}");

    // Re-index to MiniLM in the background; every query answers meanwhile.
    let (status, queued) = post(
        &c,
        &format!("{base}/v1/collections/default/reindex"),
        &json!({"embedder": "local"}),
    );
    assert_eq!(status, 202, "{queued}");
    let job = queued["job_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(300);
    let last = loop {
        let j: Value = c
            .get(format!("{base}/v1/jobs/{job}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let (status, answer) = query(TOPICS[0].1);
        assert_eq!(status, 200, "{answer}");
        assert!(!answer["results"].as_array().unwrap().is_empty());
        if !matches!(j["state"].as_str(), Some("queued" | "running")) {
            break j;
        }
        assert!(Instant::now() < deadline, "job did not end: {j}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(last["state"], "succeeded", "{last}");
    assert_eq!(last["result"]["promoted"], true, "{last}");
    // MiniLM counts the tokens it read: at least [CLS], a word and [SEP] a chunk
    let (embedded, tokens) = (
        last["embedded"].as_u64().unwrap(),
        last["tokens"].as_u64().unwrap(),
    );
    assert!(embedded > 0 && tokens >= 3 * embedded, "{last}");
    let vb = last["result"]["version"].as_str().unwrap().to_owned();
    assert!(vb.starts_with("local-"), "{last}");
    // The gate judged both on the golden set: MiniLM is no worse on paraphrases.
    let vector = &last["result"]["gate"]["sets"][0]["ndcg@10"]["vector"];
    assert!(
        vector["new"].as_f64().unwrap() >= vector["active"].as_f64().unwrap() - 1e-9,
        "{last}"
    );

    // MiniLM answers now, over the same chunks: every paraphrase finds its topic first.
    for (t, (_, paraphrase)) in TOPICS.iter().enumerate() {
        let (_, answer) = query(paraphrase);
        assert_eq!(answer["embedding_version"], vb, "{answer}");
        let top = answer["results"][0]["doc_id"].as_str().unwrap();
        let n: usize = top[1..].parse().unwrap();
        assert_eq!(n % TOPICS.len(), t, "{paraphrase}: {answer}");
    }
    drop(server);
    let versions = run_json(data.path(), &["versions", "--json"]);
    let mut rows: Vec<(String, bool, u64)> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["embedder"].as_str().unwrap().to_owned(),
                v["active"].as_bool().unwrap(),
                v["vectors"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("local".into(), true, chunks),
            ("static".into(), false, chunks)
        ],
        "{versions}"
    );
}
