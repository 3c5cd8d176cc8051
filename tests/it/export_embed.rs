//! Embedding elsewhere: `quarry export chunks` writes the chunks that lack vectors, `quarry
//! embed` turns them into vector files, and `quarry ingest` loads those back; the result answers
//! as a normal ingest with the same embedder (the same vectors, to within rounding).

use crate::{path_str, quarry, run, run_json, tmp, write_tree};
use serde_json::Value;
use std::path::Path;

/// Small chunks, so documents have several.
const SMALL_CHUNKS: (&str, &str) = ("QUARRY_CHUNK__MAX_TOKENS", "24");

/// A JSONL corpus of `n` documents, two of them twins (the same title and text, so the same
/// chunks: exported once).
fn corpus(dir: &Path, n: usize) -> String {
    let words = [
        "river", "stone", "lamp", "orbit", "cedar", "violin", "harbor", "quartz",
    ];
    let mut lines = String::new();
    for i in 0..n {
        let w = |k: usize| words[(i * 7 + k * 3) % words.len()];
        let text = format!(
            "Document {i} is about the {} and the {}. It mentions {} twice: {} {}. \
             The last sentence of document {i} names the {} again.",
            w(0),
            w(1),
            w(2),
            w(2),
            w(3),
            w(0)
        );
        lines.push_str(&serde_json::json!({"_id": format!("d{i}"), "title": format!("Title {i}"), "text": text}).to_string());
        lines.push('\n');
    }
    let twin = serde_json::json!({"title": "Twin", "text": "The same words in two documents, river and lamp."});
    for id in ["twin-a", "twin-b"] {
        let mut t = twin.clone();
        t["_id"] = id.into();
        lines.push_str(&t.to_string());
        lines.push('\n');
    }
    let p = dir.join("corpus.jsonl");
    std::fs::write(&p, lines).unwrap();
    path_str(&p)
}

fn ok(data: &Path, args: &[&str]) -> Value {
    let out = quarry()
        .env(SMALL_CHUNKS.0, SMALL_CHUNKS.1)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "quarry {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn parquet_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| path_str(&e.unwrap().path()))
        .collect();
    files.sort();
    files
}

/// `(chunk_id, score)` of a vector query's results.
fn vector_hits(data: &Path, query: &str) -> Vec<(String, f64)> {
    let r = ok(
        data,
        &[
            "query", query, "--mode", "vector", "--top-k", "20", "--json",
        ],
    );
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["chunk_id"].as_str().unwrap().to_owned(),
                h["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn export_embed_ingest_stores_what_a_normal_ingest_stores() {
    let dir = tmp();
    let corpus = corpus(dir.path(), 40);
    let (normal, elsewhere) = (dir.path().join("normal"), dir.path().join("elsewhere"));
    let n = ok(&normal, &["ingest", "--json", &corpus]);
    let e = ok(&elsewhere, &["ingest", "--no-embed", "--json", &corpus]);
    assert_eq!(e["embedded"], 0, "{e}");
    let chunks = n["chunks"].as_u64().unwrap();
    assert!(chunks > 42, "documents have several chunks: {n}");

    // A collection whose chunks all have vectors has nothing to export.
    let none = ok(
        &normal,
        &[
            "export",
            "chunks",
            "--out",
            &path_str(&dir.path().join("none")),
            "--json",
        ],
    );
    assert_eq!(none["chunks"], 0, "{none}");
    assert_eq!(none["files"], serde_json::json!([]), "{none}");

    let chunk_dir = dir.path().join("chunks");
    let exported = ok(
        &elsewhere,
        &[
            "export",
            "chunks",
            "--out",
            &path_str(&chunk_dir),
            "--rows-per-file",
            "40",
            "--json",
        ],
    );
    // Every distinct chunk once (the twins' chunks once), 40 to a file.
    let status = run_json(&elsewhere, &["status", "--json"]);
    let distinct = status["collections"][0]["chunks"].as_u64().unwrap();
    assert_eq!(exported["chunks"].as_u64().unwrap(), distinct, "{exported}");
    assert_eq!(exported["embedder"], "hash");
    let files = exported["files"].as_array().unwrap();
    assert_eq!(files.len() as u64, distinct.div_ceil(40), "{exported}");
    assert_eq!(files[0], "chunks-00000.parquet");
    assert_eq!(parquet_files(&chunk_dir).len(), files.len());

    // Again into the same folder: refused, unless --force.
    let again = run(
        &elsewhere,
        &["export", "chunks", "--out", &path_str(&chunk_dir)],
    );
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("--force") && err.contains("chunks-00000.parquet"),
        "{err}"
    );
    let forced = ok(
        &elsewhere,
        &[
            "export",
            "chunks",
            "--out",
            &path_str(&chunk_dir),
            "--rows-per-file",
            "40",
            "--force",
            "--json",
        ],
    );
    assert_eq!(forced["chunks"], exported["chunks"]);

    // `quarry embed` needs no data directory.
    let vec_dir = dir.path().join("vectors");
    let embedded = ok(
        &dir.path().join("unused"),
        &[
            "embed",
            "--in",
            &path_str(&chunk_dir),
            "--out",
            &path_str(&vec_dir),
            "--json",
        ],
    );
    assert_eq!(
        embedded["embedded"].as_u64().unwrap(),
        distinct,
        "{embedded}"
    );
    assert_eq!(embedded["skipped"], serde_json::json!({}), "{embedded}");
    assert!(
        !dir.path().join("unused").exists(),
        "embed opened no data directory"
    );
    let vector_files = parquet_files(&vec_dir);
    assert_eq!(vector_files.len(), files.len());
    // A resumed run leaves what is done.
    let resumed = ok(
        &dir.path().join("unused"),
        &[
            "embed",
            "--in",
            &path_str(&chunk_dir),
            "--out",
            &path_str(&vec_dir),
            "--skip-existing",
            "--json",
        ],
    );
    assert_eq!(
        resumed["files_skipped"].as_u64().unwrap() as usize,
        files.len(),
        "{resumed}"
    );
    assert_eq!(resumed["embedded"], 0, "{resumed}");

    let mut args = vec!["ingest", "--json"];
    args.extend(vector_files.iter().map(String::as_str));
    let loaded = ok(&elsewhere, &args);
    assert_eq!(
        loaded["vectors"]["vectors_loaded"].as_u64().unwrap(),
        distinct,
        "{loaded}"
    );
    assert_eq!(
        loaded["vectors"]["skipped"],
        serde_json::json!({}),
        "{loaded}"
    );

    // Nothing left to export, and vector queries answer as after a normal ingest.
    let after = ok(
        &elsewhere,
        &[
            "export",
            "chunks",
            "--out",
            &path_str(&dir.path().join("after")),
            "--json",
        ],
    );
    assert_eq!(after["chunks"], 0, "{after}");
    // The same scores, to within rounding (a loaded vector is normalised once more); chunks of
    // equal score may come in another order.
    for q in [
        "river stone",
        "violin harbor quartz",
        "the same words",
        "document 17 cedar",
    ] {
        let (a, b) = (vector_hits(&normal, q), vector_hits(&elsewhere, q));
        assert_eq!(a.len(), b.len(), "{q}");
        for ((_, sa), (_, sb)) in a.iter().zip(&b) {
            assert!((sa - sb).abs() < 1e-6, "{q}: {a:?} vs {b:?}");
        }
        let scores_b: std::collections::HashMap<&str, f64> =
            b.iter().map(|(id, s)| (id.as_str(), *s)).collect();
        for (id, sa) in &a {
            if let Some(sb) = scores_b.get(id.as_str()) {
                assert!((sa - sb).abs() < 1e-6, "{q}: {id}: {sa} vs {sb}");
            }
        }
    }
}

#[test]
fn another_embedder_and_bad_files_are_refused_with_a_reason() {
    let dir = tmp();
    let corpus = corpus(dir.path(), 6);
    let data = dir.path().join("data");
    // `other` makes vectors of another fingerprint than the collection's `hash`.
    write_tree(
        &data,
        &[(
            "quarry.toml",
            b"[embedders.other]\nprovider = \"hash\"\ndimensions = 64\n",
        )],
    );
    ok(&data, &["ingest", "--no-embed", "--json", &corpus]);

    let out = run(
        &data,
        &[
            "export",
            "chunks",
            "--out",
            &path_str(&dir.path().join("x")),
            "--embedder",
            "other",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--embedder other") && err.contains("`hash`"),
        "{err}"
    );

    let chunk_dir = dir.path().join("chunks");
    ok(
        &data,
        &["export", "chunks", "--out", &path_str(&chunk_dir), "--json"],
    );
    let vec_dir = dir.path().join("vectors");
    let out = run(
        &data,
        &[
            "embed",
            "--in",
            &path_str(&chunk_dir),
            "--out",
            &path_str(&vec_dir),
            "--embedder",
            "other",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("embedder `other`")
            && err.contains("\"dimensions\":64")
            && err.contains("\"dimensions\":384"),
        "{err}"
    );
    assert!(parquet_files(&vec_dir).is_empty(), "nothing written");

    // A truncated chunk file: an error that names it, exit 1, no output and no temporary file.
    let file = chunk_dir.join("chunks-00000.parquet");
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    std::fs::write(cut.join("chunks-00000.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let out = run(
        &data,
        &[
            "embed",
            "--in",
            &path_str(&cut),
            "--out",
            &path_str(&vec_dir),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("chunks-00000.parquet") && err.contains("not a readable Parquet file"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(&vec_dir).unwrap().next().is_none(),
        "nothing left in --out"
    );

    // A vector file is not a chunk file.
    let out = run(
        &data,
        &[
            "embed",
            "--in",
            &path_str(&file),
            "--out",
            &path_str(&vec_dir),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &data,
        &[
            "embed",
            "--in",
            &path_str(&vec_dir.join("chunks-00000.parquet")),
            "--out",
            &path_str(&dir.path().join("v2")),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no `text` column"), "{err}");

    // Writing over the inputs is refused.
    let out = run(
        &data,
        &[
            "embed",
            "--in",
            &path_str(&chunk_dir),
            "--out",
            &path_str(&chunk_dir),
        ],
    );
    assert_eq!(out.status.code(), Some(2));

    // The vectors load into a collection of their embedder only.
    ok(
        &data,
        &[
            "collections",
            "create",
            "o",
            "--embedder",
            "other",
            "--json",
        ],
    );
    ok(
        &data,
        &[
            "ingest",
            "--collection",
            "o",
            "--no-embed",
            "--json",
            &corpus,
        ],
    );
    let vector_file = path_str(&vec_dir.join("chunks-00000.parquet"));
    let out = run(
        &data,
        &["ingest", "--collection", "o", "--json", &vector_file],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Vectors of different models are never mixed"),
        "{err}"
    );
    let loaded = ok(&data, &["ingest", "--json", &vector_file]);
    assert!(
        loaded["vectors"]["vectors_loaded"].as_u64().unwrap() > 0,
        "{loaded}"
    );

    // An unknown collection.
    let out = run(
        &data,
        &[
            "export",
            "chunks",
            "--collection",
            "nope",
            "--out",
            &path_str(&dir.path().join("y")),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope"), "{err}");
}
