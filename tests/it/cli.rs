//! The CLI contract: exit codes, configuration errors, `--help`, and `serve` stopping cleanly.

use crate::{path_str, quarry, run, run_json, spawn_serve, tmp, write_tree};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn exit_codes_follow_the_contract() {
    let data = tmp();
    assert_eq!(
        run(data.path(), &["ingest"]).status.code(),
        Some(2),
        "missing PATH is a usage error"
    );
    assert_eq!(run(data.path(), &["frobnicate"]).status.code(), Some(2));
    let out = run(data.path(), &["ingest", "/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/definitely/not/here"));
    let out = run(data.path(), &["query", "x", "--top-k", "0"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad flag value is a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("top-k"));
    assert_eq!(
        run(data.path(), &["ingest", ".", "--acl", "bob"])
            .status
            .code(),
        Some(2)
    );
    let out = run(data.path(), &["query", "anything", "--collection", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    for cmd in ["ingest", "serve", "query", "status", "eval"] {
        let out = run(data.path(), &[cmd, "--help"]);
        assert!(
            out.status.success() && out.stdout.len() > 200,
            "{cmd} --help"
        );
    }
}

#[test]
fn unknown_config_keys_are_named_and_exit_2() {
    let data = tmp();
    write_tree(data.path(), &[("quarry.toml", b"[chunk]\nmax_tokns = 3\n")]);
    let out = run(data.path(), &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max_tokns"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = quarry()
        .arg("--data-dir")
        .arg(data.path())
        .arg("--config")
        .arg(data.path().join("missing.toml"))
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let clean = tmp();
    let out = quarry()
        .arg("--data-dir")
        .arg(clean.path())
        .env("QUARRY_SERVER__ADRR", "x")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("adrr"));
}

#[test]
fn a_bad_diversify_lambda_is_named_and_exits_2() {
    let data = tmp();
    for bad in ["1.5", "-1", "NaN"] {
        let out = run(
            data.path(),
            &[
                "query",
                "x",
                "--mode",
                "bm25",
                &format!("--diversify={bad}"),
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("diversify"), "{bad}: {stderr}");
    }
}

/// The datasets folder, the benches' and the load test's variables are not configuration:
/// exporting them in the shell leaves `quarry status` working.
#[test]
fn dataset_bench_and_load_variables_do_not_break_commands() {
    let data = tmp();
    let out = quarry()
        .arg("--data-dir")
        .arg(data.path())
        .env("QUARRY_DATASETS", data.path())
        .env("QUARRY_BENCH_DATA_DIR", data.path())
        .env("QUARRY_LOAD_SECS", "30")
        .env("QUARRY_LOAD_IDLE_SECS", "5")
        .env("QUARRY_LOAD_NEW_DOCS", "100")
        .env("QUARRY_LOAD_EMBEDDER", "hash")
        .arg("status")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_answers_then_stops_on_sigterm() {
    let data = tmp();
    let docs = tmp();
    write_tree(docs.path(), &[("a.md", b"# Alpha\nthe quick brown fox")]);
    assert!(
        run(data.path(), &["ingest", &path_str(docs.path())])
            .status
            .success()
    );
    let mut child = quarry()
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(i) = line.find("http://") {
            break line[i..].split_whitespace().next().unwrap().to_owned();
        }
    };
    let out = quarry()
        .args(["query", "fox", "--mode", "bm25", "--json", "--server", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["results"][0]["doc_id"], "a.md");
    // SIGTERM: graceful stop, exit 0.
    assert!(
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every file under `root` with its bytes and modification time.
fn files_of(
    root: &std::path::Path,
) -> std::collections::BTreeMap<std::path::PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.clone(),
                    (std::fs::read(&path).unwrap(), meta.modified().unwrap()),
                );
            }
        }
    }
    out
}

/// Sets every file and directory under `root` read-only (or writable again).
fn set_read_only(root: &std::path::Path, read_only: bool) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_path_buf()];
    let mut dirs = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let mode = if read_only { 0o444 } else { 0o644 };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
        dirs.push(dir);
    }
    for dir in dirs {
        let mode = if read_only { 0o555 } else { 0o755 };
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// `status` and `query` work on a data directory nobody may write (a mounted backup), and write
/// nothing there, even when the vector graph must be rebuilt in memory because its dump is gone.
/// (Compared file by file: the tests may run as root, whom permissions do not stop.)
#[test]
fn status_and_query_read_a_read_only_data_dir_without_writing_to_it() {
    let data = tmp();
    let docs = tmp();
    write_tree(
        docs.path(),
        &[
            ("a.txt", b"harbors and lanterns at dusk"),
            ("b.txt", b"marmalade quietude in the orchard"),
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
    let vectors = data.path().join("collections/c/vectors");
    let mut removed = 0;
    for version in std::fs::read_dir(&vectors).unwrap() {
        for f in std::fs::read_dir(version.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
            removed += 1;
        }
    }
    assert!(removed > 0, "the vector dump was there to remove");
    let before = files_of(data.path());
    set_read_only(data.path(), true);
    let status = run(data.path(), &["status", "--json"]);
    let query = |mode: &str| {
        run(
            data.path(),
            &[
                "query",
                "--collection",
                "c",
                "--mode",
                mode,
                "--json",
                "marmalade orchard",
            ],
        )
    };
    let (bm25, vector) = (query("bm25"), query("vector"));
    set_read_only(data.path(), false);
    for out in [&status, &bm25, &vector] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["collections"][0]["documents"], 2, "{status}");
    for out in [&bm25, &vector] {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            crate::doc_ids(&v).first().map(String::as_str),
            Some("b.txt"),
            "{v}"
        );
    }
    let after = files_of(data.path());
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "files were created or removed"
    );
    for (path, was) in &before {
        assert!(after[path] == *was, "{} was written", path.display());
    }
}

#[test]
fn query_highlights_citations_and_passages() {
    let data = tmp();
    let docs = tmp();
    let sections: Vec<String> = (0..6)
        .map(|i| {
            format!(
                "## Part {i}\n\nsection{i} {}",
                "some words running on ".repeat(8)
            )
        })
        .collect();
    let md = format!("# Manual\n\n{}", sections.join("\n\n"));
    write_tree(docs.path(), &[("manual.md", md.as_bytes())]);
    let out = run(data.path(), &["ingest", &path_str(docs.path())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let args = [
        "query",
        "section3",
        "--mode",
        "bm25",
        "--top-k",
        "1",
        "--highlight",
        "--citation",
        "--expand-neighbors",
        "1",
    ];
    let out = run(data.path(), &[&args[..], &["--json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let h = &body["results"][0];
    assert_eq!(
        h["citation"]["heading_path"],
        serde_json::json!(["Manual", "Part 3"])
    );
    let passage = h["passage"]["text"].as_str().unwrap();
    assert!(
        passage.contains(h["text"].as_str().unwrap())
            && passage.len() > h["text"].as_str().unwrap().len()
    );
    let out = run(data.path(), &args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("**section3**"), "{text}");
    assert!(
        text.contains("cite: manual.md") && text.contains("§ Manual › Part 3"),
        "{text}"
    );
    assert!(text.contains("passage ["), "{text}");
    let out = run(data.path(), &["query", "x", "--expand-neighbors", "11"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expand.neighbors"));
}

#[test]
fn a_collections_bm25_parameters_change_in_place_on_the_cli_and_over_http() {
    let data = tmp();
    let files = tmp();
    write_tree(
        files.path(),
        &[
            ("a.txt", b"the kettle boils water".as_slice()),
            ("b.txt", b"a kettle kettle kettle of fish".as_slice()),
            ("c.txt", b"nothing about tea here".as_slice()),
        ],
    );
    assert!(
        run(data.path(), &["ingest", &path_str(files.path())])
            .status
            .success()
    );
    let top = |data: &std::path::Path| {
        let v = run_json(data, &["query", "kettle", "--mode", "bm25", "--json"]);
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["score"].as_f64().unwrap())
            .collect::<Vec<f64>>()
    };
    let before = top(data.path());
    assert_eq!(before.len(), 2);
    // k1 0: a term's frequency no longer counts, every hit scores the term's idf,
    // ln(1 + (N − n + 0.5) / (n + 0.5)) with 3 chunks, 2 of them holding "kettle"
    let out = run(data.path(), &["collections", "set", "default", "--k1", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let idf = (1.0f64 + 1.5 / 2.5).ln();
    let after = top(data.path());
    assert_eq!(after.len(), 2);
    for s in &after {
        assert!((s - idf).abs() < 1e-5, "{after:?} vs idf {idf}");
    }
    assert_ne!(before, after);
    // a value out of range is refused at once, and nothing changes
    let out = run(data.path(), &["collections", "set", "default", "--b", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(top(data.path()), after);

    // PATCH over HTTP: the values given change, the others stay
    let server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let c = reqwest::blocking::Client::new();
    let patch = |body: serde_json::Value, path: &str| {
        let r = c
            .patch(format!("{}/v1/collections/{path}", server.url))
            .json(&body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().unwrap())
    };
    let (status, stats) = patch(serde_json::json!({"bm25": {"k1": 1.5}}), "default");
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["bm25"]["k1"], 1.5);
    assert_eq!(stats["bm25"]["b"].as_f64(), Some(1.0), "{stats}");
    for (body, path, code) in [
        (serde_json::json!({"bm25": {"b": 2}}), "default", 400),
        (serde_json::json!({"bm25": {"k2": 1}}), "default", 400),
        (serde_json::json!({"chunk": {}}), "default", 400),
        (serde_json::json!({"bm25": {"k1": 1}}), "nope", 404),
    ] {
        let (status, answer) = patch(body.clone(), path);
        assert_eq!(status, code, "{body} → {answer}");
    }
}
