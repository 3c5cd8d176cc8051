//! `quarry forget` and `DELETE .../documents/{id}?forget=true` with real processes: a server runs
//! on the data dir while the CLI forgets one document and the server's route another; afterwards
//! the planted markers are in no file of the data dir (also after the server's own shutdown
//! dump). The collection lifecycle (create with settings, list with sizes, delete) over the CLI
//! and HTTP, and a server coping with a collection another process deleted.

use crate::{path_str, run, run_json, spawn_serve, tmp, write_tree};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
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

fn marker(n: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("zqxforgetmarker{n}x{nanos:x}{}", std::process::id())
}

fn send(c: &Client, method: reqwest::Method, url: &str, body: Option<&Value>) -> (u16, Value) {
    let mut req = c.request(method, url);
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn query(c: &Client, base: &str, collection: &str, q: &str, mode: &str) -> (u16, Vec<String>) {
    let (status, body) = send(
        c,
        reqwest::Method::POST,
        &format!("{base}/v1/collections/{collection}/query"),
        Some(&json!({"query": q, "mode": mode, "top_k": 10, "group_by": "document"})),
    );
    let ids = body["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|h| h["doc_id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (status, ids)
}

/// Polls `check` every 100 ms for up to 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn forget_by_cli_beside_a_server_and_by_route_leaves_no_file_with_the_marker() {
    let data = tmp();
    let docs = tmp();
    // a second embedder, so the collection has two embedding versions
    write_tree(
        data.path(),
        &[(
            "quarry.toml",
            b"[embedders.hash2]\nprovider = \"hash\"\ndimensions = 64\n\n[reindex]\ncanary_interval = \"off\"\n",
        )],
    );
    let (m1, m2) = (marker(1), marker(2));
    let secret = format!("secret-{m1}.txt");
    write_tree(
        docs.path(),
        &[
            (
                "a.txt",
                b"harbor lanterns glow at dusk over the copper boats",
            ),
            (
                "b.txt",
                b"winter bread and pine smoke in the mountain village",
            ),
            (
                secret.as_str(),
                format!(
                    "{m1} opens the vault. the vault under the harbor keeps {m1} and nothing else"
                )
                .as_bytes(),
            ),
        ],
    );
    let out = run(
        data.path(),
        &["ingest", "--collection", "c", &path_str(docs.path())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = run_json(
        data.path(),
        &[
            "reindex",
            "--collection",
            "c",
            "--embedder",
            "hash2",
            "--json",
        ],
    );
    assert_eq!(job["state"], "succeeded", "{job}");

    let server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let base = server.url.clone();
    let c = Client::new();
    assert_eq!(query(&c, &base, "c", &m1, "bm25").1, [secret.as_str()]);
    // The second document comes through the API; an eval run and a golden set name both.
    let (status, body) = send(
        &c,
        reqwest::Method::POST,
        &format!("{base}/v1/collections/c/documents"),
        Some(
            &json!({"documents": [{"id": format!("api-{m2}"), "text": format!("{m2} rests in the harbor vault too")}]}),
        ),
    );
    assert_eq!(status, 200, "{body}");
    let relevant = json!({ secret.clone(): 2, format!("api-{m2}"): 1, "a.txt": 1 });
    let (status, body) = send(
        &c,
        reqwest::Method::PUT,
        &format!("{base}/v1/collections/c/golden/g"),
        Some(&json!({"queries": [{"query": "vault harbor", "relevant": relevant}]})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &c,
        reqwest::Method::POST,
        &format!("{base}/v1/collections/c/eval"),
        Some(&json!({"golden": "g", "modes": ["bm25", "hybrid"]})),
    );
    assert_eq!(status, 200, "{body}");
    assert!(!files_containing(data.path(), m1.as_bytes()).is_empty());

    // The CLI forgets the file's document while the server runs.
    let report = run_json(data.path(), &["forget", "c", &secret, "--json"]);
    assert!(report["chunks_erased"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["vectors_erased"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(report["eval_runs_redacted"], 1, "{report}");
    assert_eq!(report["golden_sets_changed"], 1, "{report}");
    assert_eq!(
        report["version_dumps_dropped"], 1,
        "the hash version's dump: {report}"
    );
    let out = run(data.path(), &["forget", "c", &secret]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server follows: the document is gone from its answers, the others are not.
    eventually("the server no longer finds the forgotten document", || {
        query(&c, &base, "c", &m1, "bm25").1.is_empty()
            && !query(&c, &base, "c", "vault harbor", "hybrid")
                .1
                .contains(&secret)
    });
    assert_eq!(
        query(&c, &base, "c", "harbor lanterns", "bm25").1[0],
        "a.txt"
    );

    // The route forgets the other; a missing document is a 404.
    let url = format!("{base}/v1/collections/c/documents/api-{m2}?forget=true");
    let (status, body) = send(&c, reqwest::Method::DELETE, &url, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["doc_id"], format!("api-{m2}"));
    let (status, body) = send(&c, reqwest::Method::DELETE, &url, None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("document_not_found"))
    );
    let (status, body) = send(
        &c,
        reqwest::Method::DELETE,
        &format!("{base}/v1/collections/c/documents/a.txt?forget=maybe"),
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(query(&c, &base, "c", &m2, "bm25").1.is_empty());
    assert_eq!(query(&c, &base, "c", "pine smoke", "vector").1[0], "b.txt");

    // The server dumps its graph at shutdown: the vectors do not come back in it.
    let log = server.stop();
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(
        files_containing(data.path(), b"zqxforget"),
        Vec::<PathBuf>::new()
    );
    // The server's shutdown dump of the active version holds no tombstone (a forgotten chunk's
    // vector would be one); the other version's dump was dropped by the CLI forget.
    let mut dumps = Vec::new();
    for version in std::fs::read_dir(data.path().join("collections/c/vectors"))
        .unwrap()
        .flatten()
    {
        for dump in std::fs::read_dir(version.path()).unwrap().flatten() {
            if dump.file_name().to_string_lossy().starts_with("dump-") {
                dumps.push(dump.path());
            }
        }
    }
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    let dead = std::fs::read(dumps[0].join("dead.bin")).unwrap();
    assert_eq!(
        dead,
        vec![0u8; dead.len()],
        "tombstones in {}",
        dumps[0].display()
    );
    let status = run_json(data.path(), &["status", "--json"]);
    assert_eq!(status["collections"][0]["documents"], 2, "{status}");
}

#[test]
fn collections_are_created_listed_and_deleted_with_the_cli() {
    let data = tmp();
    let made = run_json(
        data.path(),
        &[
            "collections",
            "create",
            "notes",
            "--max-tokens",
            "100",
            "--overlap",
            "10",
            "--sizer",
            "chars",
            "--k1",
            "0.9",
            "--embedder",
            "none",
            "--json",
        ],
    );
    assert_eq!(made["created"], true, "{made}");
    assert_eq!(made["collection"]["chunk_options"]["max_tokens"], 100);
    assert_eq!(made["collection"]["bm25"]["k1"], 0.9f32 as f64, "{made}");
    assert_eq!(
        made["collection"]["bm25"]["b"], 1.0,
        "the configured default"
    );
    assert_eq!(made["collection"]["chunk_options"]["sizer"], "chars");
    assert_eq!(made["collection"]["active_embedding_version"], Value::Null);
    let again = run_json(
        data.path(),
        &[
            "collections",
            "create",
            "notes",
            "--max-tokens",
            "100",
            "--overlap",
            "10",
            "--sizer",
            "chars",
            "--k1",
            "0.9",
            "--embedder",
            "none",
            "--json",
        ],
    );
    assert_eq!(again["created"], false);
    let out = run(data.path(), &["collections", "create", "notes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("other settings"));
    for bad in [
        vec!["collections", "create", "no/slash"],
        vec!["collections", "create", "x", "--embedder", "nope"],
        vec!["collections", "create", "x", "--max-tokens", "0"],
        vec!["collections", "create", "x", "--b", "1.5"],
    ] {
        let out = run(data.path(), &bad);
        assert!(!out.status.success(), "{bad:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }

    let docs = tmp();
    write_tree(
        docs.path(),
        &[("n.md", "# Note\n\nharbor lanterns at dusk".as_bytes())],
    );
    let out = run(
        data.path(),
        &["ingest", "--collection", "notes", &path_str(docs.path())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = run_json(data.path(), &["collections", "list", "--json"]);
    let notes = &list["collections"][0];
    assert_eq!(notes["name"], "notes");
    assert_eq!(notes["documents"], 1);
    assert!(notes["text_bytes"].as_u64().unwrap() > 10, "{notes}");
    assert!(notes["index_bytes"].as_u64().unwrap() > 0, "{notes}");
    assert_eq!(
        notes["chunk_options"]["max_tokens"], 100,
        "stored settings kept"
    );
    let out = run(data.path(), &["collections", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("notes: 1 documents"));

    let out = run(data.path(), &["collections", "delete", "notes"]);
    assert_eq!(out.status.code(), Some(2), "--yes is required");
    assert!(data.path().join("collections/notes").exists());
    let gone = run_json(
        data.path(),
        &["collections", "delete", "notes", "--yes", "--json"],
    );
    assert_eq!(gone["documents"], 1);
    assert!(!data.path().join("collections/notes").exists());
    let out = run(data.path(), &["collections", "delete", "notes", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let list = run_json(data.path(), &["collections", "list", "--json"]);
    assert_eq!(list["collections"], json!([]));
    assert_eq!(
        files_containing(data.path(), b"harbor lanterns"),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn collections_over_http_and_a_server_whose_collection_another_process_deletes() {
    let data = tmp();
    let docs = tmp();
    write_tree(docs.path(), &[("a.txt", b"glacier ice and cold wind")]);
    let out = run(
        data.path(),
        &["ingest", "--collection", "gone", &path_str(docs.path())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let base = server.url.clone();
    let c = Client::new();
    let put = |name: &str, body: &Value| {
        send(
            &c,
            reqwest::Method::PUT,
            &format!("{base}/v1/collections/{name}"),
            Some(body),
        )
    };
    let settings = json!({"chunk": {"max_tokens": 50, "sizer": "chars"}, "embedder": "hash",
        "bm25": {"b": 0.5}});
    let (status, body) = put("made", &settings);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["chunk_options"]["max_tokens"], 50);
    assert_eq!(body["bm25"]["b"], 0.5, "{body}");
    assert_eq!(
        body["bm25"]["k1"], 2.0,
        "the built-in default, as in [bm25]"
    );
    assert_eq!(body["embedder"], "hash");
    assert_eq!(put("made", &settings).0, 200);
    let (status, body) = put("made", &json!({"embedder": "none"}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    for (name, bad, code) in [
        ("bad%20name", json!({}), 400),
        ("x", json!({"chunk": {"max_tokens": 0}}), 400),
        ("x", json!({"embedder": "nope"}), 400),
        ("x", json!({"bm25": {"k1": -1}}), 400),
        ("x", json!({"bm25": {"k2": 1}}), 400),
        ("x", json!({"colour": "blue"}), 400),
    ] {
        let (status, body) = put(name, &bad);
        assert_eq!(status, code, "{name} {bad}: {body}");
    }
    let (_, list) = send(
        &c,
        reqwest::Method::GET,
        &format!("{base}/v1/collections"),
        None,
    );
    let names: Vec<&str> = list["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gone", "made"]);
    assert!(
        list["collections"][0]["index_bytes"].as_u64().unwrap() > 0,
        "{list}"
    );

    let (status, _) = send(
        &c,
        reqwest::Method::DELETE,
        &format!("{base}/v1/collections/made"),
        None,
    );
    assert_eq!(status, 200);
    let (status, body) = send(
        &c,
        reqwest::Method::DELETE,
        &format!("{base}/v1/collections/made"),
        None,
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("collection_not_found"))
    );

    // Another process deletes a collection the server has open.
    assert_eq!(query(&c, &base, "gone", "glacier", "hybrid").1, ["a.txt"]);
    let out = run(data.path(), &["collections", "delete", "gone", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = query(&c, &base, "gone", "glacier", "hybrid");
    assert_eq!(status, 404);
    // ... and creates it again: the server serves the new one, not its old indexes.
    write_tree(docs.path(), &[("a.txt", b"desert sand and hot wind")]);
    let out = run(
        data.path(),
        &["ingest", "--collection", "gone", &path_str(docs.path())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        "the server answers from the collection created again",
        || query(&c, &base, "gone", "desert sand", "bm25").1 == ["a.txt"],
    );
    assert!(query(&c, &base, "gone", "glacier", "bm25").1.is_empty());
    let (status, _) = send(&c, reqwest::Method::GET, &format!("{base}/healthz"), None);
    assert_eq!(status, 200);
    let log = server.stop();
    assert!(!log.contains("panicked"), "{log}");
}
