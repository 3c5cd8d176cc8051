//! Ingest of a folder full of bad input: every bad item is skipped and reported with its reason,
//! the command exits 0, everything else is searchable; reruns change nothing; `--sync` deletes.

use crate::{doc_ids, path_str, run_json, tmp, write_tree};

fn query(data: &std::path::Path, text: &str) -> Vec<String> {
    doc_ids(&run_json(
        data,
        &["query", text, "--mode", "bm25", "--json", "--top-k", "20"],
    ))
}

#[test]
fn bad_input_is_reported_and_the_rest_is_searchable() {
    let root = tmp();
    let outside = tmp();
    let data = tmp();
    std::fs::write(
        outside.path().join("secret.txt"),
        "zanzibarsecret outside the root",
    )
    .unwrap();
    let big = "hugeword ".repeat(300);
    let mut latin1 = b"caf".to_vec();
    latin1.extend([0xe9, b' ']);
    latin1.extend(b"latinword here");
    write_tree(
        root.path(),
        &[
            ("notes/good.md", b"---\ntitle: Good Notes\n---\n# Heading\nmarkdownword lives here\n"),
            ("plain.txt", b"plainword in a text file"),
            ("page.html", b"<html><head><title>Page</title><script>scriptword()</script></head><body><p>htmlword</p></body></html>"),
            ("binary.txt", b"binword\0\0\x01\x02"),
            ("empty.md", b""),
            ("big.txt", big.as_bytes()),
            ("latin1.txt", &latin1),
            ("corpus.jsonl", b"{\"_id\": \"r1\", \"title\": \"One\", \"text\": \"recordone\"}\n{not json\n\n{\"_id\": \"r2\", \"text\": \"recordtwo\"}\n"),
            ("image.png", b"\x89PNG"),
            (".hidden.md", b"hiddenword"),
            ("skipme.md", b"ignoredword"),
            (".quarryignore", b"skipme.md\n"),
        ],
    );
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        root.path().join("escape.txt"),
    )
    .unwrap();

    let s = run_json(
        data.path(),
        &[
            "ingest",
            &path_str(root.path()),
            "--max-file-bytes",
            "1000",
            "--json",
        ],
    );
    assert_eq!(s["added"], 6, "{s:#}"); // good.md, plain.txt, page.html, latin1.txt, r1, r2
    let skipped = &s["skipped"];
    for (reason, n) in [
        ("binary", 1),
        ("empty", 1),
        ("too_large", 1),
        ("malformed_jsonl", 1),
        ("symlink_outside_root", 1),
        ("unsupported_format", 1),
    ] {
        assert_eq!(skipped[reason], n, "{reason}: {s:#}");
    }
    assert_eq!(s["warnings"]["invalid_utf8"], 1, "{s:#}");
    let malformed = s["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["reason"] == "malformed_jsonl")
        .unwrap();
    assert_eq!(malformed["line"], 2);
    assert!(
        malformed["path"]
            .as_str()
            .unwrap()
            .ends_with("corpus.jsonl")
    );

    assert_eq!(query(data.path(), "markdownword"), ["notes/good.md"]);
    assert_eq!(query(data.path(), "plainword"), ["plain.txt"]);
    assert_eq!(query(data.path(), "htmlword"), ["page.html"]);
    assert_eq!(query(data.path(), "latinword"), ["latin1.txt"]);
    let mut records = query(data.path(), "recordone recordtwo");
    records.sort();
    assert_eq!(records, ["r1", "r2"]);
    for absent in [
        "scriptword",
        "zanzibarsecret",
        "hiddenword",
        "ignoredword",
        "binword",
        "hugeword",
    ] {
        assert!(
            query(data.path(), absent).is_empty(),
            "{absent} must not be indexed"
        );
    }
    let good = run_json(
        data.path(),
        &["query", "markdownword", "--mode", "bm25", "--json"],
    );
    assert_eq!(good["results"][0]["title"], "Good Notes");

    // Rerun: everything unchanged, nothing written.
    let again = run_json(
        data.path(),
        &[
            "ingest",
            &path_str(root.path()),
            "--max-file-bytes",
            "1000",
            "--json",
        ],
    );
    assert_eq!(
        (
            again["added"].as_u64(),
            again["updated"].as_u64(),
            again["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(6))
    );
    assert_eq!(again["chunks"], 0);
    let status = run_json(data.path(), &["status", "--json"]);
    let generation = status["collections"][0]["generation"].clone();

    // A changed file replaces its chunks; a vanished one goes with --sync.
    std::fs::write(root.path().join("plain.txt"), "newplainword only").unwrap();
    std::fs::remove_file(root.path().join("page.html")).unwrap();
    let synced = run_json(
        data.path(),
        &[
            "ingest",
            &path_str(root.path()),
            "--max-file-bytes",
            "1000",
            "--sync",
            "--json",
        ],
    );
    assert_eq!(
        (synced["updated"].as_u64(), synced["deleted"].as_u64()),
        (Some(1), Some(1)),
        "{synced:#}"
    );
    assert!(query(data.path(), "plainword").is_empty());
    assert_eq!(query(data.path(), "newplainword"), ["plain.txt"]);
    assert!(query(data.path(), "htmlword").is_empty());
    let status = run_json(data.path(), &["status", "--json"]);
    assert_eq!(status["collections"][0]["documents"], 5);
    assert!(status["collections"][0]["generation"].as_u64() > generation.as_u64());
}

#[test]
fn identical_chunks_are_stored_once_and_remember_every_document() {
    let root = tmp();
    let data = tmp();
    write_tree(
        root.path(),
        &[
            // same title (the file stem) and text: the same chunk as embedded
            ("a/same.txt", b"sharedword paragraph"),
            ("b/same.txt", b"sharedword paragraph"),
            ("c.txt", b"other text"),
        ],
    );
    let s = run_json(data.path(), &["ingest", &path_str(root.path()), "--json"]);
    assert_eq!(s["added"], 3);
    let status = run_json(data.path(), &["status", "--json"]);
    assert_eq!(
        status["collections"][0]["chunks"], 2,
        "one stored chunk for the two identical texts"
    );
    let by_chunk = run_json(
        data.path(),
        &["query", "sharedword", "--mode", "bm25", "--json"],
    );
    assert_eq!(by_chunk["results"].as_array().unwrap().len(), 1);
    assert_eq!(
        by_chunk["results"][0]["also_in"],
        serde_json::json!(["b/same.txt"])
    );
    let by_doc = run_json(
        data.path(),
        &[
            "query",
            "sharedword",
            "--mode",
            "bm25",
            "--group-by",
            "document",
            "--json",
        ],
    );
    assert_eq!(doc_ids(&by_doc), ["a/same.txt", "b/same.txt"]);
    // Deleting one holder keeps the chunk for the other.
    std::fs::remove_file(root.path().join("a/same.txt")).unwrap();
    run_json(
        data.path(),
        &["ingest", &path_str(root.path()), "--sync", "--json"],
    );
    let by_doc = run_json(
        data.path(),
        &[
            "query",
            "sharedword",
            "--mode",
            "bm25",
            "--group-by",
            "document",
            "--json",
        ],
    );
    assert_eq!(doc_ids(&by_doc), ["b/same.txt"]);
}

#[test]
fn duplicate_ids_in_a_corpus_keep_the_first_and_reruns_are_stable() {
    let root = tmp();
    let data = tmp();
    write_tree(root.path(), &[("c.jsonl", b"{\"_id\": \"x\", \"title\": \"First\", \"text\": \"firstword\"}\n{\"_id\": \"x\", \"title\": \"Second\", \"text\": \"secondword\"}\n")]);
    let s = run_json(data.path(), &["ingest", &path_str(root.path()), "--json"]);
    assert_eq!(
        (
            s["added"].as_u64(),
            s["skipped"]["duplicate_doc_id"].as_u64()
        ),
        (Some(1), Some(1)),
        "{s:#}"
    );
    for _ in 0..2 {
        let again = run_json(data.path(), &["ingest", &path_str(root.path()), "--json"]);
        assert_eq!(
            (again["unchanged"].as_u64(), again["updated"].as_u64()),
            (Some(1), Some(0)),
            "{again:#}"
        );
    }
    assert_eq!(query(data.path(), "firstword"), ["x"]);
    assert!(query(data.path(), "secondword").is_empty());
}

#[test]
fn a_closed_stdout_pipe_is_not_a_crash() {
    let root = tmp();
    let data = tmp();
    write_tree(root.path(), &[("a.txt", b"pipeword")]);
    let mut child = crate::quarry()
        .arg("--data-dir")
        .arg(data.path())
        .args(["ingest", &path_str(root.path())])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader went away, like `| head -0`
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
