//! Logs: `QUARRY_LOG_FORMAT=json` makes every stderr line of a real server one JSON object, the
//! HTTP request lines carrying the request id; hnsw_rs's INFO chatter is off by default and
//! comes back when `QUARRY_LOG` asks for it.

use crate::{run, run_env, spawn_serve, tmp, write_tree};

/// A data directory with a few documents embedded by the hashing embedder (so the collection
/// has a vector graph that hnsw_rs builds, dumps and drops).
fn seeded() -> (tempfile::TempDir, String) {
    let data = tmp();
    let docs = tmp();
    let files: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| {
            (
                format!("d{i}.txt"),
                format!("document {i} about fusion and catalogs, number {i}").into_bytes(),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    write_tree(docs.path(), &refs);
    let out = run(data.path(), &["ingest", docs.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (data, stderr)
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_id() {
    let (data, _) = seeded();
    let mut served = spawn_serve(
        data.path(),
        &["--addr", "127.0.0.1:0"],
        &[("QUARRY_LOG_FORMAT", "json")],
    );
    let client = reqwest::blocking::Client::new();
    let ready = std::time::Instant::now();
    while client
        .get(format!("{}/readyz", served.url))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(ready.elapsed().as_secs() < 60, "server never ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = client
        .post(format!("{}/v1/collections/default/query", served.url))
        .header("x-request-id", "it-logs-7f3a")
        .json(&serde_json::json!({"query": "fusion", "top_k": 2}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        served
            .wait_for_line("it-logs-7f3a", std::time::Duration::from_secs(10))
            .is_some(),
        "no log line carries the request id"
    );
    let log = served.stop();
    let mut lines = 0;
    let mut with_id = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\nlog:\n{log}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string() && v["target"].is_string(),
            "{line}"
        );
        lines += 1;
        if v["span"]["request_id"] == "it-logs-7f3a" {
            with_id.push(v);
        }
    }
    assert!(lines >= 3, "{log}");
    assert!(
        with_id.iter().any(
            |v| v["span"]["path"] == "/v1/collections/default/query" && v["status"].is_number()
        ),
        "a request's response line with its id, path and status: {with_id:?}\nlog:\n{log}"
    );
    assert!(
        log.contains("quarry listening on"),
        "the address line is logged too: {log}"
    );
}

#[test]
fn hnsw_chatter_is_silenced_unless_asked_for() {
    let (data, ingest) = seeded();
    let served = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let query = run(
        data.path(),
        &[
            "query",
            "--server",
            &served.url,
            "--mode",
            "vector",
            "fusion",
        ],
    );
    assert!(
        query.status.success(),
        "{}",
        String::from_utf8_lossy(&query.stderr)
    );
    let log = served.stop();
    let all = format!("{ingest}\n{log}");
    assert!(!all.contains("PointIndexation"), "{all}");

    // The chatter exists, and a user's QUARRY_LOG still decides: asked for, it is there.
    let out = run_env(
        data.path(),
        &["query", "--mode", "vector", "fusion"],
        &[("QUARRY_LOG", "info")],
    );
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("hnsw_rs"), "{log}");
}

/// `[log] format = "json"` in quarry.toml does what the variable does, from the first line on:
/// the warning about a stray `QUARRY_*` variable, found while reading that very file, is JSON
/// too; the variable wins over the file.
#[test]
fn the_log_format_can_come_from_the_configuration_file() {
    let (data, _) = seeded();
    write_tree(
        data.path(),
        &[("quarry.toml", b"[log]\nformat = \"json\"\n")],
    );
    let out = run_env(data.path(), &["status"], &[("QUARRY_HOME", "/opt/q")]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("QUARRY_HOME"))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(v["level"], "WARN", "{line}");
    let out = run_env(
        data.path(),
        &["status"],
        &[("QUARRY_HOME", "/opt/q"), ("QUARRY_LOG_FORMAT", "text")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("QUARRY_HOME") && !err.trim_start().starts_with('{'),
        "{err}"
    );
}

/// A server whose stderr goes away (`quarry serve 2>&1 | head -1`, a journal restarted) keeps
/// serving and stops cleanly: a log line it cannot write is dropped, not a panic (it died with
/// exit 101 before).
#[test]
fn a_server_outlives_its_closed_stderr() {
    let (data, _) = seeded();
    let mut child = crate::quarry()
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = {
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        let line = lines
            .find_map(|l| l.ok().filter(|l| l.contains("http://")))
            .expect("the address line");
        let at = line.find("http://").unwrap();
        line[at..].split_whitespace().next().unwrap().to_owned()
        // the reading end is dropped here: every later log line meets a closed pipe
    };
    let client = reqwest::blocking::Client::new();
    for _ in 0..20 {
        let answer = client.get(format!("{url}/healthz")).send();
        assert!(
            answer.is_ok_and(|r| r.status().is_success()),
            "the server died: {:?}",
            child.try_wait()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}
