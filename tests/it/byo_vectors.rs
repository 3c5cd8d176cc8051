//! `quarry ingest FILE.parquet`: vectors computed elsewhere, loaded for documents already ingested.

use crate::{path_str, quarry, run, run_json, scifact, tmp, write_tree};
use arrow_array::types::Float32Type;
use arrow_array::{ArrayRef, ListArray, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Dimensions of the `hash` embedder the tests use by default.
const HASH_DIMS: usize = 384;

/// Writes a Parquet file with `columns` and schema `metadata`.
fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>, metadata: &[(&str, &str)]) {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let schema = Arc::new(Schema::new(fields).with_metadata(metadata));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn ids(ids: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(ids.to_vec()))
}

fn vectors(rows: Vec<Option<Vec<f32>>>) -> ArrayRef {
    Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(
        rows.into_iter()
            .map(|r| r.map(|v| v.into_iter().map(Some).collect::<Vec<_>>())),
    ))
}

/// A vector of `n` values that is not all zeros.
fn some_vector(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn generation(data: &Path, collection: &str) -> u64 {
    let status = run_json(data, &["status", "--json"]);
    status["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == collection)
        .unwrap_or_else(|| panic!("no collection {collection}: {status}"))["generation"]
        .as_u64()
        .unwrap()
}

/// The first `n` lines of the SciFact corpus, as a JSONL file in `dir`.
fn corpus_head(scifact: &Path, dir: &Path, n: usize) -> String {
    let corpus = std::fs::read_to_string(scifact.join("corpus.jsonl")).unwrap();
    let head: String = corpus.lines().take(n).map(|l| format!("{l}\n")).collect();
    let p = dir.join("head.jsonl");
    std::fs::write(&p, head).unwrap();
    path_str(&p)
}

#[test]
fn minilm_vectors_load_into_a_local_collection_and_answer_vector_queries() {
    let Some(sf) = scifact(
        "minilm_vectors_load_into_a_local_collection_and_answer_vector_queries",
        &["corpus.jsonl", "minilm-corpus.parquet"],
    ) else {
        return;
    };
    let data = tmp();
    let corpus = path_str(&sf.join("corpus.jsonl"));
    let parquet = path_str(&sf.join("minilm-corpus.parquet"));
    let local = |args: &[&str]| {
        let out = quarry()
            .env("QUARRY_EMBEDDER", "local")
            .env("QUARRY_CHUNK__MAX_TOKENS", "4096")
            // A cheap graph (the debug build inserts slowly) and exact queries.
            .env("QUARRY_VECTOR__M", "4")
            .env("QUARRY_VECTOR__EF_CONSTRUCTION", "8")
            .env("QUARRY_VECTOR__EXACT_THRESHOLD", "100000")
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "quarry {args:?}: {}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let docs = local(&["ingest", "--no-embed", "--json", &corpus]);
    assert_eq!(docs["added"], 5183, "{docs}");
    assert_eq!(docs["embedded"], 0, "{docs}");
    // One chunk per document, as the reference embedded whole documents.
    assert_eq!(docs["chunks"], 5183, "{docs}");

    let loaded = local(&["ingest", "--json", &parquet]);
    let v = &loaded["vectors"];
    assert_eq!(v["vectors_loaded"], 5183, "{loaded}");
    assert_eq!(v["skipped"], serde_json::json!({}), "{loaded}");
    assert_eq!(v["problems"], serde_json::json!([]), "{loaded}");
    assert!(v["seconds"].as_f64().unwrap() >= 0.0);
    // The ingest fields are there too, unchanged in meaning: no documents in this run.
    assert_eq!(loaded["added"], 0, "{loaded}");

    // SciFact test query 3; its one relevant document is 14717500.
    let resp = local(&[
        "query",
        "--mode",
        "vector",
        "--json",
        "1,000 genomes project enables mapping of genetic sequence variation consisting of rare \
         variants with larger penetrance effects than common variants.",
    ]);
    let results = resp["results"].as_array().unwrap();
    assert!(!results.is_empty(), "{resp}");
    assert!(
        results.iter().all(|h| h["scores"]["vector"].is_number()),
        "{resp}"
    );
    assert!(
        crate::doc_ids(&resp).iter().any(|d| d == "14717500"),
        "the relevant document is not in the top 10: {resp}"
    );

    let status = local(&["status", "--json"]);
    let c = &status["collections"][0];
    assert_eq!(c["embedder"], "local", "{status}");
    assert!(c["fingerprint"].is_string(), "{status}");
    assert_eq!(c["vectors"], 5183, "{status}");
}

#[test]
fn minilm_vectors_are_refused_by_a_collection_of_another_embedder() {
    let Some(sf) = scifact(
        "minilm_vectors_are_refused_by_a_collection_of_another_embedder",
        &["corpus.jsonl", "minilm-corpus.parquet"],
    ) else {
        return;
    };
    let data = tmp();
    let dir = tmp();
    let head = corpus_head(&sf, dir.path(), 200);
    run_json(data.path(), &["ingest", "--json", &head]);
    let query = [
        "query",
        "--mode",
        "vector",
        "--json",
        "genetic sequence variation",
    ];
    let before = run_json(data.path(), &query);
    let gen_before = generation(data.path(), "default");

    let parquet = path_str(&sf.join("minilm-corpus.parquet"));
    let out = run(data.path(), &["ingest", "--json", &parquet]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("fingerprint"), "{err}");
    assert!(
        err.contains("all-MiniLM-L6-v2") && err.contains("hash"),
        "{err}"
    );

    assert_eq!(generation(data.path(), "default"), gen_before);
    let after = run_json(data.path(), &query);
    assert_eq!(before["results"], after["results"]);
}

/// A hash-embedder collection with short documents `a`, `b`, `c`, `d` and a long one `long`.
fn small_collection(data: &Path, dir: &Path) -> String {
    let long: String = (0..400)
        .map(|i| format!("Sentence number {i} talks about something else entirely. "))
        .collect();
    let mut lines = String::new();
    for id in ["a", "b", "c", "d"] {
        lines.push_str(&format!(
            "{{\"_id\": \"{id}\", \"title\": \"Doc {id}\", \"text\": \"short text of document {id}\"}}\n"
        ));
    }
    lines.push_str(&format!(
        "{{\"_id\": \"long\", \"title\": \"Long\", \"text\": \"{long}\"}}\n"
    ));
    write_tree(dir, &[("docs.jsonl", lines.as_bytes())]);
    run_json(
        data,
        &["ingest", "--json", &path_str(&dir.join("docs.jsonl"))],
    );
    // The chunk_id of one chunk of `long`, as query results give it.
    let resp = run_json(
        data,
        &["query", "--mode", "bm25", "--json", "Sentence number 17"],
    );
    let hit = resp["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["doc_id"] == "long")
        .unwrap_or_else(|| panic!("no chunk of long: {resp}"));
    hit["chunk_id"].as_str().unwrap().to_owned()
}

#[test]
fn bad_rows_are_counted_and_good_ones_loaded() {
    let data = tmp();
    let dir = tmp();
    let chunk_id = small_collection(data.path(), dir.path());
    let docs = path_str(&dir.path().join("docs.jsonl"));
    run_json(
        data.path(),
        &[
            "ingest",
            "--collection",
            "c2",
            "--no-embed",
            "--json",
            &docs,
        ],
    );
    let file = dir.path().join("v.parquet");
    let mut nan = some_vector(HASH_DIMS, 3.0);
    nan[5] = f32::NAN;
    write_parquet(
        &file,
        vec![
            (
                "id",
                ids(&[
                    Some("a"),
                    Some("b"),
                    Some("c"),
                    Some("d"),
                    Some("nope"),
                    Some("long"),
                    None,
                    Some(&chunk_id),
                ]),
            ),
            (
                "vector",
                vectors(vec![
                    Some(some_vector(HASH_DIMS, 1.0)),
                    Some(some_vector(HASH_DIMS - 1, 2.0)),
                    Some(nan),
                    None,
                    Some(some_vector(HASH_DIMS, 5.0)),
                    Some(some_vector(HASH_DIMS, 6.0)),
                    Some(some_vector(HASH_DIMS, 7.0)),
                    Some(some_vector(HASH_DIMS, 8.0)),
                ]),
            ),
            ("extra", ids(&[Some("x"); 8])),
        ],
        &[],
    );
    let gen_before = generation(data.path(), "default");
    let load_into = |collection: &str, file: &std::path::Path| {
        run_json(
            data.path(),
            &[
                "ingest",
                "--collection",
                collection,
                "--vectors-spec",
                "hash",
                "--json",
                &path_str(file),
            ],
        )
    };
    let load = |file: &std::path::Path| load_into("default", file);
    let out = load(&file);
    let v = &out["vectors"];
    assert_eq!(v["vectors_loaded"], 2, "{out}");
    assert_eq!(
        v["skipped"],
        serde_json::json!({
            "bad_vector": 3,
            "document_has_several_chunks": 1,
            "missing_id": 1,
            "unknown_id": 1,
        }),
        "{out}"
    );
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 6, "{out}");
    assert_eq!(problems[0]["row"], 1);
    assert_eq!(problems[0]["reason"], "bad_vector");
    assert!(
        problems[0]["message"].as_str().unwrap().contains("383"),
        "{out}"
    );
    let several = problems
        .iter()
        .find(|p| p["reason"] == "document_has_several_chunks")
        .unwrap();
    assert_eq!(several["id"], "long");
    assert!(
        several["message"].as_str().unwrap().contains("chunk_id"),
        "{several}"
    );
    assert_eq!(generation(data.path(), "default"), gen_before + 1);

    assert_eq!(v["vectors_unchanged"], 0, "{out}");

    // The same file again, in the human form: the two vectors are stored already, so nothing is
    // written and no generation is committed; the bad rows are reported again.
    let out = run(
        data.path(),
        &["ingest", "--vectors-spec", "hash", &path_str(&file)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 vectors loaded, 2 unchanged"), "{text}");
    assert!(text.contains("3 bad_vector"), "{text}");
    assert_eq!(generation(data.path(), "default"), gen_before + 1);

    // One vector changed, one the same: only the changed one is written, in one generation.
    let changed = dir.path().join("changed.parquet");
    write_parquet(
        &changed,
        vec![
            ("id", ids(&[Some("a"), Some(&chunk_id)])),
            (
                "vector",
                vectors(vec![
                    Some(some_vector(HASH_DIMS, 9.0)),
                    Some(some_vector(HASH_DIMS, 8.0)),
                ]),
            ),
        ],
        &[],
    );
    let out = load(&changed);
    assert_eq!(out["vectors"]["vectors_loaded"], 1, "{out}");
    assert_eq!(out["vectors"]["vectors_unchanged"], 1, "{out}");
    assert_eq!(generation(data.path(), "default"), gen_before + 2);

    // The collection `c2` of the same documents (made before the loads above, so its index holds
    // the vectors the hash embedder stored then): the store now holds the loaded vectors, its
    // index the old ones, so loading them into `c2` indexes them there.
    let out = load_into("c2", &changed);
    assert_eq!(out["vectors"]["vectors_loaded"], 2, "{out}");
    assert_eq!(out["vectors"]["vectors_unchanged"], 0, "{out}");
    // and once more, in another process: now its index holds them too
    let again = load_into("c2", &changed);
    assert_eq!(again["vectors"]["vectors_unchanged"], 2, "{again}");
}

#[test]
fn hostile_files_are_refused_with_what_to_fix() {
    let data = tmp();
    let dir = tmp();
    small_collection(data.path(), dir.path());
    let gen_before = generation(data.path(), "default");
    let ingest = |file: &Path, extra: &[&str]| {
        let f = path_str(file);
        let mut args = vec!["ingest"];
        args.extend_from_slice(extra);
        args.push(&f);
        let out = run(data.path(), &args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
        stderr(&out)
    };
    let spec = ["--vectors-spec", "hash"];

    // Not Parquet at all.
    let text = dir.path().join("x.parquet");
    std::fs::write(&text, "id,vector\na,1 2 3\n").unwrap();
    let err = ingest(&text, &spec);
    assert!(err.contains("not a readable Parquet file"), "{err}");

    // An empty file.
    let empty = dir.path().join("empty.parquet");
    std::fs::write(&empty, "").unwrap();
    let err = ingest(&empty, &spec);
    assert!(err.contains("not a readable Parquet file"), "{err}");

    // The vector column is text.
    let wrong = dir.path().join("wrong.parquet");
    write_parquet(
        &wrong,
        vec![
            ("id", ids(&[Some("a")])),
            ("vector", ids(&[Some("0.1 0.2")])),
        ],
        &[],
    );
    let err = ingest(&wrong, &spec);
    assert!(
        err.contains("column `vector` is Utf8") && err.contains("fixed_size_list<float32>"),
        "{err}"
    );

    // No id column.
    let no_id = dir.path().join("no_id.parquet");
    write_parquet(
        &no_id,
        vec![
            ("doc", ids(&[Some("a")])),
            ("vector", vectors(vec![Some(some_vector(HASH_DIMS, 1.0))])),
        ],
        &[],
    );
    let err = ingest(&no_id, &spec);
    assert!(
        err.contains("no `id` column") && err.contains("doc, vector"),
        "{err}"
    );

    // No spec anywhere.
    let good = dir.path().join("good.parquet");
    write_parquet(
        &good,
        vec![
            ("id", ids(&[Some("a")])),
            ("vector", vectors(vec![Some(some_vector(HASH_DIMS, 1.0))])),
        ],
        &[],
    );
    let err = ingest(&good, &[]);
    assert!(err.contains("--vectors-spec"), "{err}");

    // Metadata naming a model, but not enough to know the spec.
    let partial = dir.path().join("partial.parquet");
    write_parquet(
        &partial,
        vec![
            ("id", ids(&[Some("a")])),
            ("vector", vectors(vec![Some(some_vector(HASH_DIMS, 1.0))])),
        ],
        &[("model", "org/some-model")],
    );
    let err = ingest(&partial, &[]);
    assert!(
        err.contains("model_safetensors_sha256") && err.contains("--vectors-spec"),
        "{err}"
    );

    // A spec that is not the collection's.
    let other = r#"{"provider":"local","model":"m","revision":"r","dimensions":384,"pooling":"mean","normalized":true,"max_tokens":256}"#;
    let err = ingest(&good, &["--vectors-spec", other]);
    assert!(err.contains("fingerprint"), "{err}");
    // A spec that is not JSON of a spec.
    let err = ingest(&good, &["--vectors-spec", "{\"provider\": 1}"]);
    assert!(err.contains("not a valid embedder spec"), "{err}");
    // An embedder name that is not configured.
    let err = ingest(&good, &["--vectors-spec", "nosuch"]);
    assert!(err.contains("nosuch"), "{err}");

    // A collection that does not exist yet.
    let err = ingest(&good, &["--collection", "fresh", "--vectors-spec", "hash"]);
    assert!(err.contains("ingest the documents first"), "{err}");

    assert_eq!(generation(data.path(), "default"), gen_before);
    assert!(!data.path().join("collections").join("fresh").exists());

    // A valid file with its data pages overwritten: an error or counted skips, never a crash.
    let mut bytes = std::fs::read(&good).unwrap();
    let mid = bytes.len() / 3;
    for b in &mut bytes[8..mid] {
        *b = 0xA5;
    }
    let garbled = dir.path().join("garbled.parquet");
    std::fs::write(&garbled, bytes).unwrap();
    let out = run(
        data.path(),
        &["ingest", "--vectors-spec", "hash", &path_str(&garbled)],
    );
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
}
