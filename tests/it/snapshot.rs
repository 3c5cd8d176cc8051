//! Backups as real processes: snapshots taken over HTTP and by the CLI while a server takes writes
//! and a CLI ingest commits beside it, restored into fresh data dirs, served again and compared
//! with a reference built from the same documents; and the refusals (a damaged snapshot, a
//! non-empty or used data dir, a bad name, a caller who is not an admin).

use crate::*;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Documents per HTTP write (one generation each).
const BATCH: usize = 5;
/// Files the CLI ingest writes, 10 per generation.
const FILES: usize = 600;

/// Text of HTTP document `h{i}`: a word only it has, and common words.
fn http_text(i: usize) -> String {
    format!(
        "zq{i}x lantern meadow {}",
        ["copper", "willow", "granite"][i % 3]
    )
}

/// Text of file `n{i:03}.txt`.
fn file_text(i: usize) -> String {
    format!(
        "yq{i}x harbor quay {}",
        ["copper", "willow", "granite"][i % 3]
    )
}

fn post(client: &Client, url: &str, body: &Value) -> (u16, Value) {
    let r = client.post(url).json(body).send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// `(doc_id, score rounded to 1e-5)` of a query.
fn ranking(client: &Client, url: &str, c: &str, q: &str, mode: &str) -> Vec<(String, i64)> {
    let (status, body) = post(
        client,
        &format!("{url}/v1/collections/{c}/query"),
        &json!({"query": q, "mode": mode, "top_k": 5, "group_by": "document"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["degraded"], false, "{body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["doc_id"].as_str().unwrap().to_owned(),
                (h["score"].as_f64().unwrap() * 1e5).round() as i64,
            )
        })
        .collect()
}

fn ids(r: &[(String, i64)]) -> Vec<String> {
    r.iter().map(|(d, _)| d.clone()).collect()
}

/// Every document id of a collection, over HTTP.
fn documents(client: &Client, url: &str, c: &str) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    let mut after = String::new();
    loop {
        let body: Value = client
            // (ids here are letters, digits and `.`: nothing to escape)
            .get(format!(
                "{url}/v1/collections/{c}/documents?limit=1000&after={after}"
            ))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let page = body["documents"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"));
        all.extend(page.iter().map(|d| d["id"].as_str().unwrap().to_owned()));
        match body["next_after"].as_str() {
            Some(next) => after = next.to_owned(),
            None => return all,
        }
    }
}

fn ok(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The restored data dir `restored` holds exactly the snapshot's documents, consistent with the
/// writers' progress, and answers like a reference ingested from those documents. `lo..=hi`: the
/// HTTP documents acknowledged before the snapshot began and sent before it answered.
fn check_restored(client: &Client, restored: &Path, lo: usize, hi: usize, label: &str) {
    let served = spawn_serve(restored, &["--addr", "127.0.0.1:0"], &[]);
    let url = served.url.clone();

    // Collection c (HTTP writes, BATCH documents a generation): exactly the first n documents,
    // whole generations, at least those acknowledged before the snapshot began.
    let c = documents(client, &url, "c");
    let n = c.len();
    assert!(
        n.is_multiple_of(BATCH) && lo <= n && n <= hi,
        "{label}: {n} documents, acknowledged before {lo}, sent before the answer {hi}"
    );
    let expected: BTreeSet<String> = (0..n).map(|i| format!("h{i}")).collect();
    assert_eq!(c, expected, "{label}: not a prefix of the writes");
    // Collection d (the CLI ingest, 10 files a generation, in file name order): a prefix too.
    let d = documents(client, &url, "d");
    let m = d.len();
    assert!(m.is_multiple_of(10) && m > 0, "{label}: {m} files");
    let expected: BTreeSet<String> = (0..m).map(|i| format!("n{i:03}.txt")).collect();
    assert_eq!(d, expected, "{label}: not a prefix of the CLI ingest");

    // The reference: the same documents, ingested into a fresh data dir by the CLI.
    let reference = tmp();
    let input = tmp();
    let jsonl: String = (0..n)
        .map(|i| {
            format!(
                "{}\n",
                json!({"_id": format!("h{i}"), "text": http_text(i)})
            )
        })
        .collect();
    std::fs::write(input.path().join("c.jsonl"), jsonl).unwrap();
    let files = tmp();
    for i in 0..m {
        std::fs::write(files.path().join(format!("n{i:03}.txt")), file_text(i)).unwrap();
    }
    ok(&run(
        reference.path(),
        &[
            "ingest",
            "--collection",
            "c",
            "--json",
            &path_str(&input.path().join("c.jsonl")),
        ],
    ));
    ok(&run(
        reference.path(),
        &[
            "ingest",
            "--collection",
            "d",
            "--json",
            &path_str(files.path()),
        ],
    ));
    let reference = spawn_serve(reference.path(), &["--addr", "127.0.0.1:0"], &[]);
    let ref_url = reference.url.clone();

    for i in 0..n {
        let word = format!("zq{i}x");
        let got = ranking(client, &url, "c", &word, "bm25");
        assert_eq!(got[0].0, format!("h{i}"), "{label}: {word}: {got:?}");
        assert_eq!(
            ids(&got),
            ids(&ranking(client, &ref_url, "c", &word, "bm25"))
        );
        // Same vectors, same exact search: the same documents with the same scores.
        let text = http_text(i);
        assert_eq!(
            ranking(client, &url, "c", &text, "vector"),
            ranking(client, &ref_url, "c", &text, "vector"),
            "{label}: {text:?}"
        );
        assert_eq!(
            ranking(client, &url, "c", &text, "hybrid")[0].0,
            format!("h{i}")
        );
    }
    for i in (0..m).step_by(7) {
        let word = format!("yq{i}x");
        let got = ranking(client, &url, "d", &word, "bm25");
        assert_eq!(got[0].0, format!("n{i:03}.txt"), "{label}: {word}: {got:?}");
        let text = file_text(i);
        assert_eq!(
            ranking(client, &url, "d", &text, "vector"),
            ranking(client, &ref_url, "d", &text, "vector"),
            "{label}: {text:?}"
        );
    }
    for (c, q) in [
        ("c", "lantern copper"),
        ("c", "meadow willow"),
        ("d", "harbor granite"),
    ] {
        assert_eq!(
            ids(&ranking(client, &url, c, q, "bm25")),
            ids(&ranking(client, &ref_url, c, q, "bm25")),
            "{label}: {q}"
        );
    }
    let log = served.stop();
    assert!(!log.contains("corrupt state"), "{log}");
    reference.stop();
}

#[test]
fn snapshots_taken_under_write_load_restore_to_one_consistent_state() {
    let data = tmp();
    let snapshots = tmp();
    let server = spawn_serve(
        data.path(),
        &["--addr", "127.0.0.1:0"],
        &[("QUARRY_SERVER__SNAPSHOT_DIR", &path_str(snapshots.path()))],
    );
    let url = server.url.clone();
    let client = Client::new();

    // An HTTP writer: BATCH documents a request, one generation each, until stopped.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, acked) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let writer = {
        let (stop, sent, acked, url) = (stop.clone(), sent.clone(), acked.clone(), url.clone());
        std::thread::spawn(move || {
            let client = Client::new();
            let mut next = 0;
            while !stop.load(Ordering::SeqCst) {
                let docs: Vec<Value> = (next..next + BATCH)
                    .map(|i| json!({"id": format!("h{i}"), "text": http_text(i)}))
                    .collect();
                sent.store(next + BATCH, Ordering::SeqCst);
                let (status, body) = post(
                    &client,
                    &format!("{url}/v1/collections/c/documents"),
                    &json!({ "documents": docs }),
                );
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["added"], BATCH, "{body}");
                next += BATCH;
                acked.store(next, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // A CLI ingest beside the server, 10 files a generation.
    let files = tmp();
    for i in 0..FILES {
        std::fs::write(files.path().join(format!("n{i:03}.txt")), file_text(i)).unwrap();
    }
    let ingest = quarry()
        .arg("--data-dir")
        .arg(data.path())
        .args([
            "ingest",
            "--collection",
            "d",
            "--json",
            &path_str(files.path()),
        ])
        .env("QUARRY_INGEST__BATCH_DOCS", "10")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // Both writers are under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d: Value = client
            .get(format!("{url}/v1/collections/d"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if d["documents"].as_u64().is_some_and(|n| n > 0) && acked.load(Ordering::SeqCst) >= 20 {
            break;
        }
        assert!(Instant::now() < deadline, "writers did not start: {d}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A snapshot over HTTP.
    let lo_http = acked.load(Ordering::SeqCst);
    let (status, body) = post(
        &client,
        &format!("{url}/v1/snapshots"),
        &json!({"name": "under-load"}),
    );
    let hi_http = sent.load(Ordering::SeqCst);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "under-load");
    let http_snap = snapshots.path().join("under-load");
    assert_eq!(body["path"], path_str(&http_snap));
    assert!(body["files"].as_u64().unwrap() > 3, "{body}");
    let names: Vec<&str> = body["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c", "d"], "{body}");

    // A snapshot by the CLI, a second process.
    let cli_snap = snapshots.path().join("by-cli");
    let lo_cli = acked.load(Ordering::SeqCst);
    let summary = ok(&run(
        data.path(),
        &["snapshot", "create", &path_str(&cli_snap), "--json"],
    ));
    let hi_cli = sent.load(Ordering::SeqCst);
    assert_eq!(summary["path"], path_str(&cli_snap));

    // The writes went on meanwhile, and go on after.
    let after = acked.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(acked.load(Ordering::SeqCst) > after, "writes stalled");
    let out = ingest.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A name of the server's choosing; refusals.
    let (status, body) = post(&client, &format!("{url}/v1/snapshots"), &Value::Null);
    assert_eq!(status, 400, "{body}"); // `null` is not an object
    let r = client.post(format!("{url}/v1/snapshots")).send().unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().unwrap();
    let name = body["name"].as_str().unwrap().to_owned();
    assert!(
        name.len() == 19 && name.starts_with("20"),
        "timestamp name: {name}"
    );
    assert!(snapshots.path().join(&name).join("snapshot.json").is_file());
    for (req, code) in [
        (json!({"name": "../escape"}), "invalid_request"),
        (json!({"name": "a/b"}), "invalid_request"),
        (json!({"dir": "/tmp"}), "invalid_json"),
    ] {
        let (status, body) = post(&client, &format!("{url}/v1/snapshots"), &req);
        assert_eq!(status, 400, "{req}: {body}");
        assert_eq!(body["error"]["code"], code, "{req}: {body}");
    }
    let (status, body) = post(
        &client,
        &format!("{url}/v1/snapshots"),
        &json!({"name": "under-load"}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    assert!(!snapshots.path().parent().unwrap().join("escape").exists());
    let log = server.stop();
    assert!(!log.contains("corrupt state"), "{log}");

    // Each snapshot, verified and restored into a fresh data dir, is one consistent state.
    for (snap, lo, hi, label) in [
        (&http_snap, lo_http, hi_http, "http"),
        (&cli_snap, lo_cli, hi_cli, "cli"),
    ] {
        let v = ok(&run(
            data.path(),
            &["snapshot", "verify", &path_str(snap), "--json"],
        ));
        assert_eq!(v["format"], 1);
        let fresh = tmp();
        let restored = fresh.path().join("restored");
        let summary = ok(&run(
            &restored,
            &["snapshot", "restore", &path_str(snap), "--json"],
        ));
        assert_eq!(summary["replaced"], false);
        assert_eq!(summary["collections"], v["collections"]);
        eprintln!(
            "{label}: {} (HTTP documents acknowledged before {lo}, sent before the answer {hi})",
            summary["collections"]
        );
        check_restored(&client, &restored, lo, hi, label);
    }
}

#[test]
fn restores_refuse_damage_and_data_dirs_in_use() {
    let data = tmp();
    let docs = tmp();
    write_tree(
        docs.path(),
        &[
            ("a.txt", b"alpha lanterns over the harbor"),
            ("b.txt", b"bravo copper kettles"),
        ],
    );
    ok(&run(
        data.path(),
        &["ingest", "--json", &path_str(docs.path())],
    ));
    let place = tmp();
    let snap = place.path().join("snap");
    let out = run(data.path(), &["snapshot", "create", &path_str(&snap)]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("written to") && text.contains("default: generation 1"),
        "{text}"
    );

    // Never over an existing folder; never of a data dir that does not exist.
    let out = run(data.path(), &["snapshot", "create", &path_str(&snap)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let nowhere = place.path().join("nowhere");
    let out = run(
        &nowhere,
        &["snapshot", "create", &path_str(&place.path().join("x"))],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to snapshot"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!nowhere.exists());

    // A damaged copy is refused by verify and by restore, which leaves nothing behind.
    let damaged = place.path().join("damaged");
    std::fs::create_dir(&damaged).unwrap();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(snap.join("snapshot.json")).unwrap()).unwrap();
    for f in manifest["files"].as_array().unwrap() {
        let rel = f["path"].as_str().unwrap();
        let to = damaged.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(snap.join(rel), to).unwrap();
    }
    std::fs::copy(snap.join("snapshot.json"), damaged.join("snapshot.json")).unwrap();
    let mut catalog = std::fs::read(damaged.join("catalog.sqlite3")).unwrap();
    let last = catalog.len() - 1;
    catalog[last] ^= 1;
    std::fs::write(damaged.join("catalog.sqlite3"), catalog).unwrap();
    let out = run(data.path(), &["snapshot", "verify", &path_str(&damaged)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is damaged") && err.contains("catalog.sqlite3"),
        "{err}"
    );
    let target = place.path().join("target");
    let out = run(&target, &["snapshot", "restore", &path_str(&damaged)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Nothing was restored"), "{err}");
    assert!(!target.exists());

    // A non-empty data dir needs --force.
    let out = run(data.path(), &["snapshot", "restore", &path_str(&snap)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not empty") && err.contains("--force"),
        "{err}"
    );

    // A data dir a server uses is refused even with --force; a writer cannot snapshot over HTTP.
    let config = place.path().join("auth.toml");
    std::fs::write(
        &config,
        format!(
            "[[auth.api_keys]]\nkey_sha256 = \"{}\"\nuser = \"w\"\nrole = \"writer\"\n\
             [[auth.api_keys]]\nkey_sha256 = \"{}\"\nuser = \"root\"\nrole = \"admin\"\n",
            sha256_hex("writer-key"),
            sha256_hex("admin-key")
        ),
    )
    .unwrap();
    let config = path_str(&config);
    let server = spawn_serve(
        data.path(),
        &["--addr", "127.0.0.1:0", "--config", &config],
        &[],
    );
    let client = Client::new();
    let snapshots = format!("{}/v1/snapshots", server.url);
    let r = client
        .post(&snapshots)
        .bearer_auth("writer-key")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = client.post(&snapshots).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .post(&snapshots)
        .bearer_auth("admin-key")
        .json(&json!({"name": "by-admin"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    // Without `server.snapshot_dir`: `<data-dir>-snapshots` beside the data dir.
    let body: Value = r.json().unwrap();
    let canonical = data.path().canonicalize().unwrap();
    let default_dir = PathBuf::from(format!("{}-snapshots", canonical.display()));
    assert_eq!(
        body["path"],
        path_str(&default_dir.join("by-admin")),
        "{body}"
    );
    assert!(default_dir.join("by-admin").join("snapshot.json").is_file());
    std::fs::remove_dir_all(&default_dir).unwrap();
    let out = run(
        data.path(),
        &["snapshot", "restore", "--force", &path_str(&snap)],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use"), "{err}");
    server.stop();

    // Once it stopped, --force replaces it with the snapshot: a document added since is gone.
    write_tree(docs.path(), &[("c.txt", b"charlie after the snapshot")]);
    ok(&run(
        data.path(),
        &["ingest", "--json", &path_str(docs.path())],
    ));
    let out = run(
        data.path(),
        &["snapshot", "restore", "--force", &path_str(&snap)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = ok(&run(data.path(), &["status", "--json"]));
    assert_eq!(status["collections"][0]["documents"], 2, "{status}");
    let hits = ok(&run(
        data.path(),
        &["query", "charlie", "--mode", "bm25", "--json"],
    ));
    assert!(doc_ids(&hits).is_empty(), "{hits}");
    let hits = ok(&run(
        data.path(),
        &["query", "kettles", "--mode", "bm25", "--json"],
    ));
    assert_eq!(doc_ids(&hits), ["b.txt"]);
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
