//! Messages that say how to fix things: bad flag values exit 2 before anything runs, read-only
//! commands do not create a missing data directory, `--server` without a scheme, a missing
//! collection named with those that exist (in the data directory or on the server), configuration errors naming their key and source,
//! and `QUARRY_*` variables of other tools ignored.

use crate::{quarry, run, run_env, tmp, write_tree};
use std::path::Path;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A data directory with the collection `default` (two documents) and `notes`.
fn seeded() -> tempfile::TempDir {
    let data = tmp();
    let docs = tmp();
    write_tree(
        docs.path(),
        &[
            ("a.txt", b"reciprocal rank fusion merges rankings"),
            ("b.txt", b"the catalog is the source of truth"),
        ],
    );
    let docs_path = docs.path().to_str().unwrap();
    for args in [
        &["ingest", docs_path][..],
        &["ingest", "--collection", "notes", docs_path],
    ] {
        let out = run(data.path(), args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    data
}

#[test]
fn bad_flag_values_exit_2_before_anything_runs() {
    // No data directory at all: a value refused by the parser never gets as far as opening one.
    let parent = tmp();
    let missing = parent.path().join("data");
    for (args, says) in [
        (&["query", "x", "--alpha", "3"][..], "alpha"),
        (&["query", "x", "--alpha", "NaN"], "alpha"),
        (&["query", "x", "--fusion", "rrf", "--rrf-k=-1"], "rrf-k"),
        (&["eval", "--golden", "g", "--alpha", "1.5"], "alpha"),
        (&["eval", "--dataset", "x", "--rrf-k", "20000"], "rrf-k"),
        (&["ingest", ".", "--max-file-bytes", "0"], "max-file-bytes"),
        (
            &["collections", "create", "c", "--max-tokens", "0"],
            "max-tokens",
        ),
        (&["collections", "create", "bad/name"], "collection name"),
        (&["model", "pull", "bert-large"], "all-MiniLM-L6-v2"),
        (
            &["ingest", ".", "--collection", "has space"],
            "collection name",
        ),
        (&["query", "x", "--collection", ""], "collection name"),
        (
            &[
                "collections",
                "create",
                "c",
                "--max-tokens",
                "8",
                "--overlap",
                "8",
            ],
            "overlap",
        ),
    ] {
        let out = run(&missing, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    assert!(
        !missing.exists(),
        "a refused command created the data directory"
    );
}

#[test]
fn read_only_commands_do_not_create_a_missing_data_directory() {
    let parent = tmp();
    let missing = parent.path().join("no-such-data");
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["query", "anything"],
        &["eval", "--golden", "g"],
        &["eval", "history"],
        &["collections", "list"],
        &["golden", "list"],
        &["versions"],
        &["jobs"],
        &[
            "export",
            "chunks",
            "--out",
            "/tmp/never-written-by-quarry-tests",
        ],
        &["forget", "default", "a.txt"],
    ] {
        let out = run(&missing, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("does not exist") && err.contains("quarry ingest"),
            "{args:?}: {err}"
        );
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
    assert!(!Path::new("/tmp/never-written-by-quarry-tests").exists());
}

#[test]
fn a_server_address_without_scheme_says_to_add_http() {
    let data = tmp();
    for args in [
        &["query", "x", "--server", "127.0.0.1:7878"][..],
        &["status", "--server", "localhost:7878"],
        &["eval", "--dataset", "d", "--server", "127.0.0.1:1"],
        &["reindex", "--embedder", "hash", "--server", "127.0.0.1:1"],
    ] {
        let out = run(data.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("add http://"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_missing_collection_is_named_with_those_that_exist() {
    let data = seeded();
    for args in [
        &["query", "fusion", "--collection", "nope"][..],
        &["versions", "--collection", "nope"],
        &["forget", "nope", "a.txt"],
    ] {
        let out = run(data.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("`nope` not found")
                && err.contains("the collections here are: default, notes"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_collection_a_server_does_not_have_is_named_with_those_it_has() {
    let data = seeded();
    let served = crate::spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let other = tmp();
    let out = run(
        other.path(),
        &[
            "query",
            "fusion",
            "--server",
            &served.url,
            "--collection",
            "nope",
        ],
    );
    served.stop();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`nope` not found")
            && err.contains("the collections there are: default, notes"),
        "{err}"
    );
}

#[test]
fn configuration_errors_name_the_key_and_where_it_came_from() {
    let data = seeded();
    write_tree(
        data.path(),
        &[("quarry.toml", b"[query]\ntop_k = \"ten\"\n")],
    );
    let out = run(data.path(), &["status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("quarry.toml") && err.contains("query.top_k"),
        "{err}"
    );
    std::fs::remove_file(data.path().join("quarry.toml")).unwrap();

    let out = run_env(data.path(), &["status"], &[("QUARRY_QUERY__TOP_K", "0")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("environment variable QUARRY_QUERY__TOP_K") && err.contains("query.top_k"),
        "{err}"
    );
    let out = run_env(
        data.path(),
        &["status"],
        &[("QUARRY_CHUNK__MAX_TOKENS", "abc")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("QUARRY_CHUNK__MAX_TOKENS") && err.contains("chunk.max_tokens"),
        "{err}"
    );
}

#[test]
fn quarry_variables_of_other_tools_are_ignored_with_a_warning() {
    let data = seeded();
    let out = quarry()
        .arg("--data-dir")
        .arg(data.path())
        .env("QUARRY_HOME", "/opt/quarry")
        .env("QUARRY_VERSION", "1.2.3")
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status["collections"]
            .as_array()
            .is_some_and(|c| c.len() == 2)
    );
    let err = stderr(&out);
    assert!(
        err.contains("QUARRY_HOME") && err.contains("not a quarry setting"),
        "{err}"
    );
    assert_eq!(err.matches("QUARRY_HOME").count(), 1, "warned once: {err}");
    // a variable naming a section is still a key of it, refused when unknown
    let out = run_env(data.path(), &["status"], &[("QUARRY_QUERY__TOPK", "3")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("topk"), "{}", stderr(&out));
}

/// `query --vector` takes one JSON array: it used to panic on any value (clap read the field as
/// a flag of several numbers). A vector of the collection's dimensions answers; one of other
/// dimensions, or text that is not an array, exits 2.
#[test]
fn query_vector_takes_one_json_array() {
    let data = seeded();
    let vector = format!("[{}]", vec!["0.05"; 384].join(","));
    let out = run(
        data.path(),
        &["query", "--vector", &vector, "--mode", "vector", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["results"].as_array().map(Vec::len), Some(2));
    for bad in ["[1,2]", "not json"] {
        let out = run(data.path(), &["query", "fusion", "--vector", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("vector"), "{bad}: {}", stderr(&out));
    }
}

#[test]
fn values_refused_after_parsing_exit_2_too() {
    let data = tmp();
    let out = run(
        data.path(),
        &["collections", "create", "c", "--embedder", "nope"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
    let files = tmp();
    std::fs::write(files.path().join("a.txt"), "words").unwrap();
    let folder = files.path().to_str().unwrap();
    let out = run(data.path(), &["ingest", "--vectors-spec", "local", folder]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(".parquet"), "{}", stderr(&out));
}
