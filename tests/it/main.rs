//! The one integration-test binary: the `quarry` CLI as a user runs it (real processes, real files)
//! and the HTTP API over a real socket. Helpers live here; tiny corpora are built per test.

#![allow(clippy::unwrap_used)]

mod auth;
mod byo_vectors;
mod cli;
mod crash;
mod eval;
mod http;
mod hybrid;
mod ingest_bad_input;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    quarry()
        .arg("--data-dir")
        .arg(data)
        .args(args)
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

pub fn scifact() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/scifact");
    p.exists().then_some(p)
}
