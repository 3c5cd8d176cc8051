//! The one integration-test binary: the `quarry` CLI as a user runs it (real processes, real files)
//! and the HTTP API over a real socket. Helpers live here; tiny corpora are built per test.

#![allow(clippy::unwrap_used)]

mod auth;
mod batch;
mod bench_scale;
mod byo_vectors;
mod catalog_check;
mod cli;
mod crash;
mod disk_full;
mod eval;
mod eval_many;
mod export_embed;
mod fast_tier;
mod follow;
mod forget;
mod formats;
mod hash_recall;
mod http;
mod hybrid;
mod hygiene;
mod ingest_bad_input;
mod install;
mod load;
mod logs;
mod messages;
mod playground;
mod query_bench;
mod query_options;
mod rerank;
mod snapshot;
mod versions;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The `quarry` binary under test, with the hashing embedder (fast, offline) unless a test sets
/// `QUARRY_EMBEDDER` itself.
pub fn quarry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_quarry"));
    // A clean environment for settings: no QUARRY_* from the developer's shell, but the model
    // cache stays where the setup put it.
    for (k, _) in std::env::vars() {
        if k.starts_with("QUARRY_") && k != "QUARRY_MODEL_DIR" {
            c.env_remove(k);
        }
    }
    c.env("QUARRY_EMBEDDER", "hash");
    c
}

/// Runs `quarry --data-dir DATA ARGS...` to completion.
pub fn run(data: &Path, args: &[&str]) -> Output {
    run_env(data, args, &[])
}

/// [`run`] with more environment variables (they override the helper's `QUARRY_EMBEDDER`).
pub fn run_env(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    quarry()
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("quarry runs")
}

/// Runs and parses stdout as JSON, asserting exit 0.
pub fn run_json(data: &Path, args: &[&str]) -> serde_json::Value {
    let out = run(data, args);
    assert!(
        out.status.success(),
        "quarry {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Writes `files` (relative path, contents) under `root`.
pub fn write_tree(root: &Path, files: &[(&str, &[u8])]) {
    for (rel, body) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }
}

/// Doc ids of a JSON query response, in rank order.
pub fn doc_ids(resp: &serde_json::Value) -> Vec<String> {
    resp["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|h| h["doc_id"].as_str().expect("doc_id").to_owned())
        .collect()
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

/// A `quarry serve` child; its stderr is collected by a thread so the test can read it after the
/// process ends.
pub struct Served {
    pub child: Child,
    pub url: String,
    stderr: std::sync::mpsc::Receiver<String>,
    early: Vec<String>,
}

pub fn spawn_serve(data: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Served {
    let mut cmd = quarry();
    cmd.arg("--data-dir").arg(data).arg("serve").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut early = Vec::new();
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("server printed its address; stderr so far: {early:?}"));
        if let Some(i) = line.find("http://") {
            // the end of the URL: a space, or a quote when the log line is JSON
            let url = line[i..]
                .split(|c: char| c.is_whitespace() || c == '"')
                .next()
                .unwrap()
                .to_owned();
            early.push(line);
            break url;
        }
        early.push(line);
    };
    Served {
        child,
        url,
        stderr: rx,
        early,
    }
}

/// A server left running by a failed assertion is killed.
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Waits up to `timeout` for a stderr line containing `needle`, and returns it (every line
    /// read is kept for [`Served::stop`]).
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        if let Some(l) = self.early.iter().find(|l| l.contains(needle)) {
            return Some(l.clone());
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.stderr.recv_timeout(left) else {
                return None;
            };
            self.early.push(line.clone());
            if line.contains(needle) {
                return Some(line);
            }
        }
        None
    }

    /// SIGTERM, wait, and everything the server wrote to stderr.
    pub fn stop(mut self) -> String {
        assert!(
            std::process::Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut all = self.early.join("\n");
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            all.push('\n');
            all.push_str(&line);
        }
        all
    }
}

/// The environment variable naming the folder that holds the BEIR datasets (`scifact/`, `cisi/`);
/// see DEVELOPERS.md, "Datasets".
pub const DATASETS_VAR: &str = "QUARRY_DATASETS";

/// BEIR SciFact, `$QUARRY_DATASETS/scifact`, with the `files` the calling test reads; or `None`
/// after printing on stderr that `test` is skipped and why, so a clone without the dataset passes
/// and says so.
pub fn scifact(test: &str, files: &[&str]) -> Option<PathBuf> {
    let Some(root) = std::env::var_os(DATASETS_VAR) else {
        eprintln!(
            "skipped {test}: it needs BEIR SciFact; set {DATASETS_VAR} to the folder that holds \
             scifact/ (see DEVELOPERS.md, \"Datasets\")"
        );
        return None;
    };
    let dir = PathBuf::from(root).join("scifact");
    if let Some(missing) = files.iter().map(|f| dir.join(f)).find(|p| !p.is_file()) {
        eprintln!(
            "skipped {test}: {} is missing ({DATASETS_VAR} names the folder that holds scifact/, \
             see DEVELOPERS.md, \"Datasets\")",
            missing.display()
        );
        return None;
    }
    Some(dir)
}

/// The next HTTP/1.1 request on a connection, for the test doubles: its request line and its
/// body (`Content-Length` bytes); `None` when the client closed the connection or sent less.
pub fn read_request(reader: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            len = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    std::io::Read::read_exact(reader, &mut body).ok()?;
    Some((request_line, body))
}
