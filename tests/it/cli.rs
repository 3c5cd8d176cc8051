//! The CLI contract: exit codes, configuration errors, `--help`, and `serve` stopping cleanly.

use crate::{path_str, quarry, run, tmp, write_tree};
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
