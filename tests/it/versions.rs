//! Embedding versions and re-index jobs with real server processes over HTTP: a re-index from the
//! local model to an OpenAI-compatible provider (a second quarry's `/v1/embeddings`) while queries
//! and writes go on; rollback; kill -9 of the server mid-job; a changed model folder detected at
//! the next start.

use crate::{path_str, run, run_env, run_json, spawn_serve, tmp, write_tree};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// A JSONL corpus of `n` short notes over eight topics.
fn corpus(dir: &Path, n: usize) -> String {
    let topics = [
        "glaciers and ice",
        "volcanic eruptions",
        "coral reef fish",
        "desert sand dunes",
        "rainforest canopy",
        "arctic foxes",
        "river deltas",
        "mountain goats",
    ];
    let mut out = String::new();
    for i in 0..n {
        let t = topics[i % topics.len()];
        out.push_str(
            &json!({"_id": format!("d{i}"), "text": format!("Note {i} on {t}: field report {i} describes {t}.")})
                .to_string(),
        );
        out.push('\n');
    }
    let p = dir.join("corpus.jsonl");
    std::fs::write(&p, out).unwrap();
    path_str(&p)
}

/// `quarry.toml` with embedder `remote`: an OpenAI-compatible provider at `provider`; no canary
/// checks (they embed, and these tests count embeddings).
fn config(data: &Path, provider: &str, embed_batch: usize) {
    write_tree(
        data,
        &[(
            "quarry.toml",
            format!(
                "[embedders.remote]\nprovider = \"openai\"\nbase_url = \"{provider}/v1\"\nmodel = \"hash\"\n\
                 dimensions = 384\nbatch_size = {embed_batch}\nmax_retries = 2\n\n\
                 [ingest]\nembed_batch = {embed_batch}\n\n\
                 # these tests count embeddings: no canary checks in between\n\
                 [reindex]\ncanary_interval = \"off\"\n"
            )
            .as_bytes(),
        )],
    );
}

fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn get(c: &Client, url: &str) -> Value {
    let r = c.get(url).send().unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().unwrap()
}

fn post(c: &Client, url: &str, body: &Value) -> (u16, Value) {
    let r = c.post(url).json(body).send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn metrics(c: &Client, base: &str) -> String {
    c.get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// Texts the provider embedded for callers of its `/v1/embeddings`.
fn provider_texts(c: &Client, provider: &str) -> f64 {
    series(
        &metrics(c, provider),
        r#"quarry_embedding_texts_total{embedder="hash",kind="document"}"#,
    )
}

fn vector_query(c: &Client, base: &str, text: &str) -> (u16, Value) {
    post(
        c,
        &format!("{base}/v1/collections/default/query"),
        &json!({"query": text, "mode": "vector", "top_k": 10, "group_by": "document"}),
    )
}

#[test]
fn reindex_to_a_provider_serves_every_query_from_one_version_and_rolls_back_without_embedding() {
    let provider_data = tmp();
    let provider = spawn_serve(provider_data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let data = tmp();
    let files = tmp();
    config(data.path(), &provider.url, 4);
    let local = [("QUARRY_EMBEDDER", "local")];
    let out = run_env(
        data.path(),
        &["ingest", "--json", &corpus(files.path(), 120)],
        &local,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // MiniLM counts the tokens it embedded: at least [CLS], a word and [SEP] a chunk, at most
    // its 256
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (embedded, tokens) = (
        summary["embedded"].as_u64().unwrap(),
        summary["tokens_embedded"].as_u64().unwrap(),
    );
    assert!(embedded >= 120, "{summary}");
    assert!(
        (3 * embedded..=256 * embedded).contains(&tokens),
        "{summary}"
    );
    let server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &local);
    let (c, base) = (Client::new(), server.url.clone());
    let versions = get(&c, &format!("{base}/v1/collections/default/versions"));
    let va = versions["versions"][0]["id"].as_str().unwrap().to_owned();
    assert!(va.starts_with("local-"), "{versions}");

    let (status, queued) = post(
        &c,
        &format!("{base}/v1/collections/default/reindex"),
        &json!({"embedder": "remote"}),
    );
    assert_eq!(status, 202, "{queued}");
    let job = queued["job_id"].as_str().unwrap().to_owned();
    let (status, again) = post(
        &c,
        &format!("{base}/v1/collections/default/reindex"),
        &json!({"embedder": "remote"}),
    );
    assert_eq!(
        status, 409,
        "a second re-index of the collection is refused: {again}"
    );

    // Throughout the job: every query answers 200 from one version, a before b, never back.
    let mut seen: Vec<String> = Vec::new();
    let mut wrote = false;
    let deadline = Instant::now() + Duration::from_secs(240);
    let last = loop {
        let j = get(&c, &format!("{base}/v1/jobs/{job}"));
        let (status, answer) = vector_query(&c, &base, "volcanic eruptions");
        assert_eq!(status, 200, "{answer}");
        let v = answer["embedding_version"].as_str().unwrap().to_owned();
        assert!(!answer["results"].as_array().unwrap().is_empty());
        if seen.last() != Some(&v) {
            seen.push(v);
        }
        if j["state"] == "running" && !wrote {
            let (status, body) = post(
                &c,
                &format!("{base}/v1/collections/default/documents"),
                &json!({"documents": [
                    {"id": "late1", "text": "Quokkas smile on Rottnest island beaches."},
                    {"id": "late2", "text": "Axolotls regrow their limbs in Mexican lakes."}
                ]}),
            );
            assert_eq!(status, 200, "{body}");
            wrote = true;
        }
        if !matches!(j["state"].as_str(), Some("queued" | "running")) {
            break j;
        }
        assert!(Instant::now() < deadline, "job did not end: {j}");
    };
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(wrote, "documents were written while the job ran");
    let vb = last["result"]["version"].as_str().unwrap().to_owned();
    assert!(vb.starts_with("remote-"), "{last}");
    assert_eq!(last["result"]["promoted"], true);
    assert_eq!(last["processed"], last["total"]);
    // The last answers may come before the cutover; once b answered, a never did again.
    assert!(
        seen == [va.clone()] || seen == [va.clone(), vb.clone()],
        "{seen:?}"
    );
    let (_, answer) = vector_query(&c, &base, "volcanic eruptions");
    assert_eq!(answer["embedding_version"], vb);
    // The documents written during the job were embedded by b at the cutover and are found.
    for (id, text) in [
        ("late1", "Quokkas smile on Rottnest island beaches."),
        ("late2", "Axolotls regrow their limbs in Mexican lakes."),
    ] {
        let (_, answer) = vector_query(&c, &base, text);
        assert_eq!(answer["results"][0]["doc_id"], id, "{answer}");
        assert_eq!(answer["embedding_version"], vb);
    }
    let versions = get(&c, &format!("{base}/v1/collections/default/versions"));
    let states: Vec<(String, String)> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().into(),
                v["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [(va.clone(), "ready".into()), (vb.clone(), "active".into())]
    );

    // Rollback to a: immediate, and nothing is embedded by either model.
    let docs = r#"quarry_embedding_texts_total{embedder="local",kind="document"}"#;
    let (local_before, remote_before) = (
        series(&metrics(&c, &base), docs),
        provider_texts(&c, &provider.url),
    );
    let t = Instant::now();
    let (status, body) = post(
        &c,
        &format!("{base}/v1/collections/default/versions/{va}/activate"),
        &json!({}),
    );
    let took = t.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(5), "rollback took {took:?}");
    let (_, answer) = vector_query(&c, &base, "Axolotls regrow their limbs in Mexican lakes.");
    assert_eq!(answer["embedding_version"], va);
    assert_eq!(answer["results"][0]["doc_id"], "late2");
    assert_eq!(series(&metrics(&c, &base), docs), local_before);
    assert_eq!(provider_texts(&c, &provider.url), remote_before);
    eprintln!(
        "rollback answered in {took:?}; provider texts {remote_before}, local documents {local_before}"
    );

    // A switch made by another process on the same data dir reaches the server at its next query.
    let out = run(data.path(), &["versions", "activate", &vb]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, answer) = vector_query(&c, &base, "Quokkas smile on Rottnest island beaches.");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["embedding_version"], vb);
    assert_eq!(answer["results"][0]["doc_id"], "late1");
    drop(server);
    drop(provider);
}

/// Vector top-10 (ids and scores) of a few queries, from the data dir in process.
fn answers(data: &Path) -> Vec<Value> {
    [
        "glaciers",
        "coral reef fish",
        "report 17",
        "mountain goats and foxes",
    ]
    .iter()
    .map(|q| {
        let r = run_json(
            data,
            &["query", q, "--mode", "vector", "--top-k", "10", "--json"],
        );
        json!({
            "version": r["embedding_version"],
            "hits": r["results"].as_array().unwrap().iter()
                .map(|h| json!([h["doc_id"], h["score"]])).collect::<Vec<_>>(),
        })
    })
    .collect()
}

#[test]
fn a_reindex_survives_kill_9_of_the_server_and_ends_as_an_uninterrupted_one() {
    const DOCS: usize = 600;
    const BATCH: usize = 4;
    let provider_data = tmp();
    let provider = spawn_serve(provider_data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let c = Client::new();
    let files = tmp();
    let corpus = corpus(files.path(), DOCS);

    // The reference: the same re-index, uninterrupted, in process.
    let reference = tmp();
    config(reference.path(), &provider.url, BATCH);
    assert!(run(reference.path(), &["ingest", &corpus]).status.success());
    let done = run_json(
        reference.path(),
        &["reindex", "--embedder", "remote", "--json"],
    );
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["embedded"], DOCS);

    let data = tmp();
    config(data.path(), &provider.url, BATCH);
    assert!(run(data.path(), &["ingest", &corpus]).status.success());
    let texts_before = provider_texts(&c, &provider.url);
    let mut server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let (status, queued) = post(
        &c,
        &format!("{}/v1/collections/default/reindex", server.url),
        &json!({"embedder": "remote"}),
    );
    assert_eq!(status, 202, "{queued}");
    let job = queued["job_id"].as_str().unwrap().to_owned();

    // Kill -9 at pseudo-random points while the job runs, then restart; the restarted server
    // resumes the job.
    // the job loop picks the job up within its 250 ms tick; the kills begin once it runs
    let running_by = Instant::now() + Duration::from_secs(60);
    while get(&c, &format!("{}/v1/jobs/{job}", server.url))["state"] == "queued" {
        assert!(
            Instant::now() < running_by,
            "the job was not picked up in 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut state: u64 = 0x5EED;
    let mut interruptions = 0;
    let mut killed_at = Vec::new();
    for _ in 0..4 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(60 + (state >> 33) % 400));
        let j = get(&c, &format!("{}/v1/jobs/{job}", server.url));
        if j["state"] != "running" {
            break;
        }
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        interruptions += 1;
        let after = run_json(data.path(), &["jobs", "--json"]);
        let j = &after["jobs"][0];
        assert_eq!(j["state"], "running", "a killed job stays running: {j}");
        killed_at.push(j["processed"].as_u64().unwrap());
        server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    let last = loop {
        let j = get(&c, &format!("{}/v1/jobs/{job}", server.url));
        if !matches!(j["state"].as_str(), Some("queued" | "running")) {
            break j;
        }
        assert!(Instant::now() < deadline, "job did not end: {j}");
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(server);
    eprintln!("killed {interruptions} times, at processed = {killed_at:?}; job: {last}");
    assert!(interruptions >= 1, "no kill landed while the job ran");
    assert_eq!(last["state"], "succeeded", "{last}");
    assert_eq!(last["result"]["promoted"], true);
    // The job counts each stored vector once (a batch and its progress commit together).
    assert_eq!(last["embedded"], DOCS, "{last}");
    // Embedded in total, as the provider counted: every chunk once, plus at most one batch in
    // flight per interruption.
    let embedded = provider_texts(&c, &provider.url) - texts_before;
    assert!(embedded >= DOCS as f64, "{embedded}");
    assert!(
        embedded <= (DOCS + BATCH * interruptions) as f64,
        "{embedded} texts embedded for {DOCS} chunks and {interruptions} interruptions"
    );
    // The final index answers exactly as the uninterrupted run's.
    let (a, b) = (answers(reference.path()), answers(data.path()));
    assert!(a[0]["version"].as_str().unwrap().starts_with("remote-"));
    assert_eq!(a, b);
}

#[test]
fn a_changed_model_folder_is_detected_at_the_next_start() {
    let data = tmp();
    // Where the model cache keeps the local model (fetched once, offline afterwards).
    let pulled = run_json(data.path(), &["model", "pull", "--json"]);
    let model = Path::new(pulled["dir"].as_str().unwrap()).to_owned();
    // A copy of the model, then the same copy with one weight changed.
    let copy = tmp();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(model.join(f), copy.path().join(f)).unwrap();
    }
    let files = tmp();
    write_tree(
        data.path(),
        &[(
            "quarry.toml",
            format!(
                "[embedders.mini]\nprovider = \"local\"\nmodel_dir = \"{}\"\n",
                path_str(copy.path())
            )
            .as_bytes(),
        )],
    );
    let mini = [("QUARRY_EMBEDDER", "mini")];
    let out = run_env(data.path(), &["ingest", &corpus(files.path(), 8)], &mini);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut before = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &mini);
    let checked = before
        .wait_for_line("embedding versions checked", Duration::from_secs(60))
        .expect("the start-up check ran");
    assert!(checked.contains("0 changed"), "{checked}");
    let before = before.stop();
    assert!(!before.contains("now configured"), "{before}");

    let weights = copy.path().join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let at = bytes.len() - 1001;
    bytes[at] ^= 0x01;
    std::fs::write(&weights, bytes).unwrap();
    let mut server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &mini);
    server.wait_for_line("now configured with fingerprint", Duration::from_secs(60));
    let log = server.stop();
    let line = log
        .lines()
        .find(|l| l.contains("now configured with fingerprint"))
        .unwrap_or_else(|| panic!("no model-change warning:\n{log}"));
    assert!(line.contains("collection default"), "{line}");
    assert!(line.contains("re-index job j1 queued"), "{line}");
    let jobs = run_json(data.path(), &["jobs", "--json"]);
    assert_eq!(jobs["jobs"][0]["params"]["embedder"], "mini", "{jobs}");
}

#[test]
fn the_eval_gate_holds_back_the_hashing_embedder() {
    let data = tmp();
    let files = tmp();
    let local = [("QUARRY_EMBEDDER", "local")];
    let out = run_env(data.path(), &["ingest", &corpus(files.path(), 120)], &local);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Paraphrases that share no word with their topic: only a model of meaning finds it.
    let paraphrases = [
        "frozen water creeping down valleys",
        "molten lava exploding from a mountain",
        "underwater marine life in tropical seas",
        "arid wasteland with wind blown hills",
        "tropical jungle treetops",
        "white furred predators of the polar north",
        "where streams meet the ocean depositing sediment",
        "sure footed climbers of steep cliffs",
    ];
    let mut golden = String::new();
    for (t, q) in paraphrases.iter().enumerate() {
        let relevant: serde_json::Map<String, Value> = (0..120)
            .filter(|i| i % 8 == t)
            .map(|i| (format!("d{i}"), json!(1)))
            .collect();
        golden.push_str(&json!({"query": q, "relevant": relevant}).to_string());
        golden.push('\n');
    }
    write_tree(files.path(), &[("golden.jsonl", golden.as_bytes())]);
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

    let out = run_env(data.path(), &["reindex", "--embedder", "hash"], &local);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(text.contains("NOT active"), "{text}");
    assert!(text.contains("quarry eval compare r1 r2"), "{text}");
    let jobs = run_json(data.path(), &["jobs", "--json"]);
    let result = &jobs["jobs"][0]["result"];
    assert_eq!(result["promoted"], false, "{result}");
    let vector = &result["gate"]["sets"][0]["ndcg@10"]["vector"];
    assert!(
        vector["new"].as_f64().unwrap() + 0.01 < vector["active"].as_f64().unwrap(),
        "{result}"
    );
    let versions = run_json(data.path(), &["versions", "--json"]);
    let states: Vec<(&str, &str)> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["embedder"].as_str().unwrap(),
                v["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("local", "active"), ("hash", "ready")]);
    // The comparison the gate names is the eval loop's.
    let cmp = run_json(data.path(), &["eval", "compare", "r1", "r2", "--json"]);
    assert!(
        cmp["modes"]["vector"]["worse"]
            .as_array()
            .is_some_and(|w| !w.is_empty()),
        "{cmp}"
    );
}

/// An OpenAI-compatible embeddings provider for tests: a letter histogram of 16 dimensions per
/// text; once `rotate` is set, it answers the same model name with every vector's components
/// shifted by one (the same lengths, other directions), as a provider that silently swapped its
/// model would.
struct RotatingProvider {
    url: String,
    rotate: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RotatingProvider {
    fn start() -> RotatingProvider {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let rotate = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = rotate.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let inputs: Vec<String> = match &req["input"] {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                };
                let shift = usize::from(flag.load(std::sync::atomic::Ordering::SeqCst));
                let data: Vec<Value> = inputs
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let mut v = [0f32; 16];
                        for b in t.bytes().filter(u8::is_ascii_lowercase) {
                            v[(usize::from(b - b'a') + shift) % 16] += 1.0;
                        }
                        json!({"object": "embedding", "index": i, "embedding": v.to_vec()})
                    })
                    .collect();
                let out = json!({"object": "list", "data": data, "model": "letters",
                                 "usage": {"prompt_tokens": 1, "total_tokens": 1}})
                .to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
                    out.len()
                );
            }
        });
        RotatingProvider { url, rotate }
    }
}

#[test]
fn a_provider_that_changes_its_model_behind_the_same_name_trips_the_canary() {
    let provider = RotatingProvider::start();
    let data = tmp();
    let files = tmp();
    write_tree(
        data.path(),
        &[(
            "quarry.toml",
            format!(
                "[embedders.letters]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"letters\"\n\
                 dimensions = 16\nmax_retries = 0\n\n[reindex]\ncanary_interval = \"1s\"\n",
                provider.url
            )
            .as_bytes(),
        )],
    );
    let env = [("QUARRY_EMBEDDER", "letters")];
    let quarry_env = |args: &[&str]| run_env(data.path(), args, &env);
    let out = quarry_env(&["ingest", &corpus(files.path(), 50)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = quarry_env(&["versions", "check", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["checked"], 32);
    assert!(report["min_cosine"].as_f64().unwrap() > 0.9999, "{report}");
    assert_eq!(report["drifted"], false);

    let server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &env);
    let c = Client::new();
    let drift = format!(
        r#"quarry_embedding_drift{{collection="default",version="{}"}}"#,
        report["version"].as_str().unwrap()
    );
    let wait_for = |want: f64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = metrics(&c, &server.url);
            if text.lines().any(|l| l == format!("{drift} {want}")) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {drift} {want}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(0.0);
    provider
        .rotate
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let text = wait_for(1.0);
    assert!(
        text.lines()
            .any(|l| l.starts_with("quarry_embedding_canary_min_cosine") && !l.ends_with(" 1.0")),
        "{text}"
    );
    let log = server.stop();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("embedding drift")
            && l.contains("changed its model")),
        "{log}"
    );
    // The CLI check says so too, and fails.
    let out = quarry_env(&["versions", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("embedding drift"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_reindex_and_version_requests_get_clear_errors_and_change_nothing() {
    let data = tmp();
    let files = tmp();
    assert!(
        run(data.path(), &["ingest", &corpus(files.path(), 5)])
            .status
            .success()
    );
    let server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let (c, base) = (Client::new(), server.url.clone());
    let long = "a".repeat(100_000);
    let chunk = json!({"max_tokens": 8, "overlap": 0, "sizer": "chars"});
    for (body, status, code) in [
        (json!({}), 400, "invalid_request"),
        (
            json!({"embedder": "hash", "chunk": chunk}),
            400,
            "invalid_request",
        ),
        (json!({"embedder": "nope"}), 400, "invalid_request"),
        (json!({"embedder": long}), 400, "invalid_request"),
        (json!({"embedder": "none"}), 400, "invalid_request"),
        (json!({"embedder": "hash"}), 400, "invalid_request"),
        (
            json!({"chunk": {"max_tokens": 0, "overlap": 0, "sizer": "chars"}}),
            400,
            "invalid_request",
        ),
        (json!({"chunk": "big"}), 400, "invalid_json"),
        (json!({"embedder": "hash", "extra": 1}), 400, "invalid_json"),
        (json!({"quantization": long}), 400, "invalid_json"),
        (json!({"quantization": ""}), 400, "invalid_json"),
        (json!({"quantization": 8}), 400, "invalid_json"),
    ] {
        let (got, answer) = post(&c, &format!("{base}/v1/collections/default/reindex"), &body);
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
        assert!(
            answer.to_string().len() < 600,
            "the error does not echo huge input"
        );
    }
    let (got, answer) = post(
        &c,
        &format!("{base}/v1/collections/nope/reindex"),
        &json!({"embedder": "hash"}),
    );
    assert_eq!(
        (got, answer["error"]["code"].as_str()),
        (404, Some("collection_not_found"))
    );
    for path in ["/v1/jobs/j999", "/v1/jobs/..%2Fx"] {
        let r = c.get(format!("{base}{path}")).send().unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let (got, _) = post(&c, &format!("{base}/v1/jobs/j9/cancel"), &json!({}));
    assert_eq!(got, 404);
    let (got, answer) = post(
        &c,
        &format!("{base}/v1/collections/nope/versions/x/activate"),
        &json!({}),
    );
    assert_eq!(
        (got, answer["error"]["code"].as_str()),
        (404, Some("collection_not_found"))
    );
    let (got, _) = post(
        &c,
        &format!("{base}/v1/collections/default/versions/x/activate"),
        &json!({}),
    );
    assert_eq!(got, 404);
    // nothing was queued, and the collection still answers from its version
    assert_eq!(get(&c, &format!("{base}/v1/jobs"))["jobs"], json!([]));
    let (got, answer) = vector_query(&c, &base, "glaciers");
    assert_eq!(got, 200, "{answer}");
    drop(server);
    // The CLI: a usage error (exit 2) that says what to do.
    let out = run(data.path(), &["reindex", "--embedder", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[embedders.nope]"));
    let out = run(data.path(), &["eval", "export", "r1", "--out", "x.parquet"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("quarry eval history"));
}

/// The top documents of a vector query for each topic.
fn topic_answers(c: &Client, base: &str) -> Vec<Vec<String>> {
    ["glaciers", "volcanic", "coral reef", "desert dunes"]
        .iter()
        .map(|q| {
            let (got, answer) = vector_query(c, base, q);
            assert_eq!(got, 200, "{answer}");
            answer["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["doc_id"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

fn vector_folders(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("collections/default/vectors"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_requantize_from_the_cli_beside_a_server_and_over_http_embeds_nothing_and_keeps_answers() {
    let data = tmp();
    let files = tmp();
    // small segments, so the int8 index really is sealed segments
    let env = [("QUARRY_VECTOR__SEGMENT_POINTS", "64")];
    let out = run_env(data.path(), &["ingest", &corpus(files.path(), 200)], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &env);
    let (c, base) = (Client::new(), server.url.clone());
    let before = topic_answers(&c, &base);
    let version =
        get(&c, &format!("{base}/v1/collections/default/versions"))["versions"][0].clone();
    assert_eq!(version["quantization"], "int8", "{version}");
    let id = version["id"].as_str().unwrap().to_owned();
    let vectors = version["vectors"].as_u64().unwrap();

    // The CLI on the data directory the server serves: the job runs here (or the server's
    // worker takes it and the CLI follows it).
    let out = run_env(
        data.path(),
        &["reindex", "--quantization", "none", "--json"],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "requantize");
    assert_eq!(job["embedded"], 0);
    assert_eq!(job["result"]["points"].as_u64(), Some(vectors), "{job}");
    assert_eq!(
        vector_folders(data.path()),
        vec![format!("{id}@none-{}", job["id"].as_str().unwrap())]
    );
    // The server switches to the new index at its next query.
    assert_eq!(topic_answers(&c, &base), before);
    let now = get(&c, &format!("{base}/v1/collections/default/versions"))["versions"][0].clone();
    assert_eq!(
        (now["id"].as_str(), now["quantization"].as_str()),
        (Some(id.as_str()), Some("none"))
    );

    // Over HTTP, run by the server's worker: back to int8.
    let (got, queued) = post(
        &c,
        &format!("{base}/v1/collections/default/reindex"),
        &json!({"quantization": "int8"}),
    );
    assert_eq!(got, 202, "{queued}");
    let job_id = queued["job_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let j = get(&c, &format!("{base}/v1/jobs/{job_id}"));
        if j["state"] != "queued" && j["state"] != "running" {
            break j;
        }
        assert!(Instant::now() < deadline, "the job did not end: {j}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(topic_answers(&c, &base), before);
    let folder = format!("{id}@int8-{job_id}");
    assert_eq!(vector_folders(data.path()), vec![folder.clone()]);
    let segments = std::fs::read_dir(
        data.path()
            .join("collections/default/vectors")
            .join(&folder)
            .join("segments"),
    )
    .unwrap()
    .count();
    assert!(segments >= 1, "{vectors} vectors in segments of 64");
    // Asking for what the index already has, or for two things at once, changes nothing.
    for (body, code) in [
        (json!({"quantization": "int8"}), "invalid_request"),
        (json!({"quantization": "int4"}), "invalid_json"),
        (
            json!({"quantization": "none", "embedder": "hash"}),
            "invalid_request",
        ),
        (
            json!({"quantization": "none", "rebuild_index": true}),
            "invalid_request",
        ),
        (json!({"rebuild_index": false}), "invalid_request"),
        (json!({"rebuild_index": "yes"}), "invalid_json"),
    ] {
        let (got, answer) = post(&c, &format!("{base}/v1/collections/default/reindex"), &body);
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}: {answer}"
        );
    }
    // A rebuild (same quantization) from the CLI beside the server: a new folder, nothing
    // embedded, the same answers.
    let out = run_env(data.path(), &["reindex", "--rebuild-index", "--json"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            &job["state"],
            &job["embedded"],
            &job["result"]["quantization"]
        ),
        (&json!("succeeded"), &json!(0), &json!("int8")),
        "{job}"
    );
    assert_eq!(job["result"]["points"].as_u64(), Some(vectors), "{job}");
    let folder = format!("{id}@int8-{}", job["id"].as_str().unwrap());
    assert_eq!(vector_folders(data.path()), vec![folder.clone()]);
    assert_eq!(topic_answers(&c, &base), before);
    drop(server);
    // After a restart the dump of the new index serves the same answers; the CLI refuses a
    // quantization it does not know with a usage error.
    let server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &env);
    assert_eq!(topic_answers(&c, &server.url), before);
    drop(server);
    assert_eq!(vector_folders(data.path()), vec![folder]);
    let out = run(data.path(), &["reindex", "--quantization", "int4"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn jobs_watch_follows_a_servers_job_to_its_end_and_says_when_nothing_runs() {
    const DOCS: usize = 300;
    let provider_data = tmp();
    let provider = spawn_serve(provider_data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let c = Client::new();
    let files = tmp();
    let corpus = corpus(files.path(), DOCS);
    let data = tmp();
    config(data.path(), &provider.url, 4);
    assert!(run(data.path(), &["ingest", &corpus]).status.success());

    let out = run(data.path(), &["jobs", "watch"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "no job queued or running\n"
    );
    let out = run(data.path(), &["jobs", "watch", "nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{out:?}"
    );

    // The server runs the job (75 calls of 4 texts to the provider); the CLI follows it there.
    let server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let (status, queued) = post(
        &c,
        &format!("{}/v1/collections/default/reindex", server.url),
        &json!({"embedder": "remote"}),
    );
    assert_eq!(status, 202, "{queued}");
    let id = queued["job_id"].as_str().unwrap();
    let watched = run_json(data.path(), &["jobs", "watch", id, "--json"]);
    let j = &watched["jobs"][0];
    assert_eq!(
        (j["id"].as_str(), j["state"].as_str()),
        (Some(id), Some("succeeded")),
        "{watched}"
    );
    assert_eq!(
        (j["processed"].as_u64(), j["total"].as_u64()),
        (Some(DOCS as u64), Some(DOCS as u64))
    );
    // it returned when the job had ended, as the server says
    let now = get(&c, &format!("{}/v1/jobs/{id}", server.url));
    assert_eq!(now["state"], "succeeded", "{now}");
}

#[test]
fn ingest_on_a_terminal_shows_chunks_embedded_of_the_total_to_embed() {
    const DOCS: usize = 400;
    let provider_data = tmp();
    let provider = spawn_serve(provider_data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let files = tmp();
    let corpus = corpus(files.path(), DOCS);
    let data = tmp();
    config(data.path(), &provider.url, 4);
    // `script` (util-linux) runs the ingest on a pseudo-terminal, where the bar is drawn.
    let command = format!(
        "{} --data-dir {} ingest {corpus}",
        env!("CARGO_BIN_EXE_quarry"),
        path_str(data.path())
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("QUARRY_EMBEDDER", "remote")
        .output()
        .expect("`script` (util-linux) runs the ingest on a terminal");
    assert!(out.status.success(), "{out:?}");
    let screen = String::from_utf8_lossy(&out.stdout);
    // A redraw while the model worked: N of M chunks embedded, documents read, the rate, an ETA.
    let drawn = screen
        .split(['\r', '\n'])
        .find(|l| l.contains(" chunks embedded · ") && l.contains(" documents read ("))
        .unwrap_or_else(|| panic!("no progress line on the terminal:\n{screen}"));
    assert!(
        drawn.contains(" of ") && drawn.contains("chunks/s · eta "),
        "{drawn}"
    );
    assert!(screen.contains(&format!("{DOCS} added")), "{screen}");
}
