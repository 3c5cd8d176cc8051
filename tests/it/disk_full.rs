//! A full disk, for real: the data directory is a small tmpfs (mounted in a user and mount
//! namespace of its own with `unshare`, so no privilege is needed), filled up by another file. An
//! ingest that runs out of space exits non-zero saying "disk full"; the data directory stays
//! consistent (status and queries answer, the earlier documents are intact), and once the space is
//! back the same ingest succeeds and every document is found.
//!
//! The whole sequence runs in one shell inside the namespace (the tmpfs disappears with it); each
//! step leaves its exit code, stdout and stderr in a folder of the test, which checks them here.

use crate::{quarry, tmp};
use std::path::Path;

/// The steps, in the namespace: `$1` the mount point, `$2` the quarry binary, `$3` the folder
/// for results, `$4` and `$5` the small and the big corpus.
const SCRIPT: &str = r#"
set -u
data="$1"; q="$2"; out="$3"; small="$4"; big="$5"
mount -t tmpfs -o size=64m tmpfs "$data" || exit 90
step() { name="$1"; shift; "$q" --data-dir "$data" "$@" >"$out/$name.out" 2>"$out/$name.err"; echo $? >"$out/$name.rc"; }
step ingest1 ingest --collection c "$small" --json
# all but 512 KiB of the disk taken by another file
avail=$(df -k --output=avail "$data" | tail -n 1)
head -c $(( (avail - 512) * 1024 )) /dev/zero >"$data/filler" 2>/dev/null
df -k --output=avail "$data" | tail -n 1 >"$out/free-kib"
step ingest2 ingest --collection c "$big" --json
step status2 status --json
step query2 query smallmarker7 --collection c --mode bm25 --json
rm "$data/filler"
step ingest3 ingest --collection c "$big" --json
step status3 status --json
step query3 query bigmarker234 --collection c --mode bm25 --json
"#;

/// A JSONL corpus of `n` records of about `words` words each, a marker word apiece.
fn corpus(path: &Path, prefix: &str, n: usize, words: usize) {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D ^ n as u64;
    let mut out = String::new();
    for i in 0..n {
        let body: Vec<String> = (0..words)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!("v{}", state % 5000)
            })
            .collect();
        let rec = serde_json::json!({"_id": format!("{prefix}{i}"), "text": format!("{prefix}marker{i} {}", body.join(" "))});
        out.push_str(&rec.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

struct Step {
    rc: i32,
    stdout: String,
    stderr: String,
}

fn step(out: &Path, name: &str) -> Step {
    let read = |ext: &str| {
        std::fs::read_to_string(out.join(format!("{name}.{ext}")))
            .unwrap_or_else(|e| panic!("step {name} left no .{ext}: {e}"))
    };
    Step {
        rc: read("rc").trim().parse().unwrap(),
        stdout: read("out"),
        stderr: read("err"),
    }
}

fn json(s: &Step, name: &str) -> serde_json::Value {
    assert_eq!(s.rc, 0, "{name} failed: {}", s.stderr);
    serde_json::from_str(&s.stdout)
        .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {}", s.stdout))
}

#[cfg(target_os = "linux")]
#[test]
fn an_ingest_that_fills_the_disk_fails_cleanly_and_succeeds_once_space_is_back() {
    let work = tmp();
    let (mnt, out) = (work.path().join("data"), work.path().join("out"));
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let (small, big) = (
        work.path().join("small.jsonl"),
        work.path().join("big.jsonl"),
    );
    corpus(&small, "small", 50, 40);
    corpus(&big, "big", 1000, 100); // about 0.7 MB of text, and its chunks and vectors

    // `unshare` with the environment `quarry()` gives the binary (hash embedder, no QUARRY_*).
    let q = quarry();
    let mut cmd = std::process::Command::new("unshare");
    for (k, v) in q.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let status = cmd
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            SCRIPT,
            "sh",
        ])
        .args([&mnt, Path::new(q.get_program()), &out, &small, &big])
        .status()
        .expect(
            "this test needs util-linux's `unshare` with unprivileged user namespaces \
             (a tmpfs in a mount namespace is the full disk)",
        );
    assert!(
        status.success(),
        "the namespace script failed ({status}); exit 90 means the tmpfs could not be mounted"
    );

    let ingest1 = json(&step(&out, "ingest1"), "ingest1");
    assert_eq!(ingest1["added"], 50, "{ingest1}");
    let free: u64 = std::fs::read_to_string(out.join("free-kib"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(free <= 1024, "the filler left {free} KiB free");

    // Out of space: a non-zero exit that says so, and no panic.
    let full = step(&out, "ingest2");
    assert_ne!(
        full.rc, 0,
        "an ingest into a full disk succeeded: {}",
        full.stdout
    );
    assert!(
        full.stderr.contains("disk full") && full.stderr.contains("free some space"),
        "{}",
        full.stderr
    );
    assert!(!full.stderr.contains("panicked"), "{}", full.stderr);

    // Consistent afterwards, with the disk still full: status and queries answer, the first
    // documents are all there, and whatever of the big corpus was committed is whole.
    let status2 = json(&step(&out, "status2"), "status2");
    let docs = status2["collections"][0]["documents"].as_u64().unwrap();
    assert!((50..1050).contains(&docs), "{status2}");
    let hits = json(&step(&out, "query2"), "query2");
    assert_eq!(hits["results"][0]["doc_id"], "small7", "{hits}");

    // Space is back: the same ingest succeeds and everything is found.
    let again = json(&step(&out, "ingest3"), "ingest3");
    assert_eq!(
        again["added"].as_u64().unwrap() + again["unchanged"].as_u64().unwrap(),
        1000,
        "{again}"
    );
    let status3 = json(&step(&out, "status3"), "status3");
    assert_eq!(status3["collections"][0]["documents"], 1050, "{status3}");
    let hits = json(&step(&out, "query3"), "query3");
    assert_eq!(hits["results"][0]["doc_id"], "big234", "{hits}");
    eprintln!(
        "disk full after {} of 1000 documents; the error: {}",
        docs - 50,
        full.stderr.trim()
    );
}
