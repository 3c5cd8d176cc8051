//! Query options over a real socket and through the CLI: metadata filters and facets against
//! counts made by hand, metadata in hits, paging, `min_score`, `explain`, a query's own vector,
//! and the errors that name the option. Front matter and JSONL metadata ingested by the CLI.

use crate::http::TestServer;
use quarry_core::{Embedder, InputKind};
use quarry_embed::HashEmbedder;
use quarry_server::ServerOptions;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// 24 documents sharing the words "shared words"; `year` 2019 + i % 4, `tags` by i % 3, `draft`
/// on every fifth.
fn seeded() -> (TestServer, Vec<Value>) {
    let s = TestServer::start_with(
        ServerOptions::default(),
        crate::hybrid::engine_options(Arc::new(HashEmbedder::new(64).unwrap())),
    );
    let docs: Vec<Value> = (0..24)
        .map(|i| {
            let tags = match i % 3 {
                0 => json!(["ops", "wal"]),
                1 => json!("ops"),
                _ => json!(["search"]),
            };
            let mut meta = json!({"year": 2019 + i % 4, "tags": tags, "url": format!("https://example.org/{i}")});
            if i % 5 == 0 {
                meta["draft"] = json!(true);
            }
            json!({"id": format!("doc-{i:02}"), "title": format!("Title {i}"),
                   "text": format!("shared words and number{i} {}", "filler ".repeat(i % 7)),
                   "metadata": meta})
        })
        .collect();
    let (status, body) = s.post(
        "/v1/collections/default/documents",
        &json!({ "documents": docs }),
    );
    assert_eq!((status, body["added"].as_u64()), (200, Some(24)), "{body}");
    (s, docs)
}

/// A hand-written evaluation of a filter on a document's metadata.
type Pass = Box<dyn Fn(&Value) -> bool>;

fn query(s: &TestServer, body: Value) -> (u16, Value) {
    s.post("/v1/collections/default/query", &body)
}

fn ids(body: &Value) -> Vec<String> {
    crate::doc_ids(body)
}

#[test]
fn filters_facets_and_metadata_over_http() {
    let (s, docs) = seeded();
    let meta = |d: &Value| d["metadata"].clone();
    // filter: hand-evaluated over the 24 documents
    let cases: Vec<(Value, Pass)> = vec![
        (
            json!({"field": "year", "gte": 2021}),
            Box::new(|m: &Value| m["year"].as_i64() >= Some(2021)),
        ),
        (
            json!({"field": "tags", "eq": "wal"}),
            Box::new(|m: &Value| {
                m["tags"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!("wal")))
            }),
        ),
        (
            json!({"not": {"field": "draft", "exists": true}}),
            Box::new(|m: &Value| m.get("draft").is_none()),
        ),
        (
            json!({"or": [{"field": "tags", "in": ["search"]}, {"and": [{"field": "year", "eq": 2019}, {"field": "draft", "eq": true}]}]}),
            Box::new(|m: &Value| {
                m["tags"] == json!(["search"])
                    || (m["year"] == json!(2019) && m.get("draft").is_some())
            }),
        ),
        (
            json!({"field": "doc_id", "in": ["doc-03", "doc-04", "nope"]}),
            Box::new(|_: &Value| false),
        ),
    ];
    for (i, (filter, pass)) in cases.iter().enumerate() {
        let mut want: Vec<String> = docs
            .iter()
            .filter(|d| pass(&meta(d)))
            .map(|d| d["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        if i == 4 {
            want = vec!["doc-03".into(), "doc-04".into()];
        }
        for mode in ["bm25", "vector", "hybrid"] {
            let (status, body) = query(
                &s,
                json!({"query": "shared words", "mode": mode, "group_by": "document", "top_k": 100, "filter": filter}),
            );
            assert_eq!(status, 200, "{filter}: {body}");
            let mut got = ids(&body);
            got.sort();
            assert_eq!(got, want, "{mode} with {filter}");
            for h in body["results"].as_array().into_iter().flatten() {
                assert!(h["metadata"]["url"].is_string(), "{h}");
            }
        }
    }
    // facets: counts per value over the documents passing the filter
    let (status, body) = query(
        &s,
        json!({"query": "shared words", "top_k": 1, "facets": ["tags", "year"], "filter": {"field": "year", "lte": 2020}}),
    );
    assert_eq!(status, 200, "{body}");
    let mut want: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for d in docs
        .iter()
        .filter(|d| d["metadata"]["year"].as_i64() <= Some(2020))
    {
        let m = &d["metadata"];
        let tags: Vec<Value> = match &m["tags"] {
            Value::Array(a) => a.clone(),
            t => vec![t.clone()],
        };
        for t in tags {
            *want
                .entry("tags".into())
                .or_default()
                .entry(t.to_string())
                .or_default() += 1;
        }
        *want
            .entry("year".into())
            .or_default()
            .entry(m["year"].to_string())
            .or_default() += 1;
    }
    let got: BTreeMap<String, BTreeMap<String, u64>> = body["facets"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(f, counts)| {
            let per: BTreeMap<String, u64> = counts
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["value"].to_string(), c["count"].as_u64().unwrap()))
                .collect();
            (f.clone(), per)
        })
        .collect();
    assert_eq!(got, want);
    // include: only the keys named
    let (_, body) = query(
        &s,
        json!({"query": "number3", "mode": "bm25", "top_k": 1, "include": ["year"]}),
    );
    assert_eq!(body["results"][0]["metadata"], json!({"year": 2022}));
    // errors name the option and the field
    for (bad, says) in [
        (
            json!({"query": "x", "filter": {"field": "yaer", "eq": 1}}),
            "unknown field `yaer`",
        ),
        (
            json!({"query": "x", "filter": {"field": "year", "eq": "2020"}}),
            "`year` holds number",
        ),
        (
            json!({"query": "x", "filter": {"field": "tags", "gt": "a"}}),
            "a range on `tags`",
        ),
        (json!({"query": "x", "filter": {"and": []}}), "filter.and"),
        (
            json!({"query": "x", "filter": {"lang": "en"}}),
            "needs `field`",
        ),
        (
            json!({"query": "x", "facets": ["nope"]}),
            "`facets`: unknown field `nope`",
        ),
        (json!({"query": "x", "offset": 10001}), "offset"),
        (
            json!({"query": "x", "vector": [1.0, 2.0]}),
            "`vector` has 2 values",
        ),
        (
            json!({"query": "x", "mode": "vector", "vector": [0.0, 0.0]}),
            "values",
        ),
        (
            json!({"query": "x", "mode": "bm25", "vector": [1.0]}),
            "mode=bm25",
        ),
        (
            json!({"query": "x", "embedding_version": "v"}),
            "embedding_version",
        ),
        (json!({"mode": "hybrid"}), "query text is empty"),
    ] {
        let (status, body) = query(&s, bad.clone());
        assert_eq!(status, 400, "{bad}: {body}");
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{bad}: {msg}");
    }
}

#[test]
fn paging_thresholds_explain_and_own_vectors_over_http() {
    let (s, _) = seeded();
    let base = json!({"query": "shared words number7", "mode": "hybrid", "top_k": 20});
    let (_, all) = query(&s, base.clone());
    let all_ids: Vec<String> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["chunk_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all_ids.len(), 20);
    let page = |offset: usize| {
        let mut b = base.clone();
        b["offset"] = json!(offset);
        b["top_k"] = json!(7);
        let (status, body) = query(&s, b);
        assert_eq!(status, 200, "{body}");
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["chunk_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let pages: Vec<String> = [0, 7, 14].into_iter().flat_map(page).collect();
    assert_eq!(pages[..20], all_ids[..]);

    // min_score: exactly the results scoring at least the threshold, in the same order
    let scores: Vec<f64> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["score"].as_f64().unwrap())
        .collect();
    let threshold = scores[5];
    let mut b = base.clone();
    b["min_score"] = json!(threshold);
    let (_, cut) = query(&s, b);
    let kept = scores.iter().filter(|x| **x >= threshold - 1e-6).count();
    assert_eq!(cut["results"].as_array().unwrap().len(), kept);

    // explain: the parts of each hybrid score add up to it; timings are there
    let mut b = base.clone();
    b["explain"] = json!(true);
    let (_, ex) = query(&s, b);
    for h in ex["results"].as_array().unwrap() {
        let e = &h["explain"];
        let shares: f64 = ["bm25", "vector"]
            .iter()
            .map(|r| e[r]["share"].as_f64().unwrap_or(0.0))
            .sum();
        assert!((shares - 1.0).abs() < 1e-3, "{h}");
        let parts: f64 = ["bm25", "vector"]
            .iter()
            .map(|r| e[r]["share"].as_f64().unwrap_or(0.0) * h["score"].as_f64().unwrap())
            .sum();
        assert!((parts - h["score"].as_f64().unwrap()).abs() < 1e-4, "{h}");
    }
    for t in ["embed_ms", "bm25_ms", "vector_ms", "fusion_ms", "post_ms"] {
        assert!(
            ex["timings"][t].as_f64().is_some_and(|x| x >= 0.0),
            "{t}: {}",
            ex["timings"]
        );
    }

    // a query's own vector answers as the same text embedded by the server
    let text = "shared words number7";
    let by_text = query(&s, json!({"query": text, "mode": "vector", "top_k": 5}));
    let version = by_text.1["embedding_version"].as_str().unwrap().to_owned();
    let vector = HashEmbedder::new(64)
        .unwrap()
        .embed(&[text], InputKind::Query)
        .unwrap()[0]
        .clone();
    let by_vector = query(
        &s,
        json!({"mode": "vector", "vector": vector, "embedding_version": version, "top_k": 5}),
    );
    assert_eq!(by_vector.0, 200, "{}", by_vector.1);
    assert_eq!(ids(&by_vector.1), ids(&by_text.1));
    assert_eq!(
        by_vector.1["embed_ms"],
        Value::Null,
        "an own vector is not embedded"
    );
    let (status, body) = query(
        &s,
        json!({"mode": "vector", "vector": vector, "embedding_version": "other-1"}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`other-1`"),
        "{body}"
    );
}

#[test]
fn cli_ingests_front_matter_and_filters_with_the_same_rules() {
    let dir = crate::tmp();
    let docs = dir.path().join("docs");
    crate::write_tree(
        &docs,
        &[
            ("a.md", b"---\ntitle: Alpha guide\ntags: [ops]\ndate: 2024-05-01\n---\n# Alpha\nshared words here\n"),
            ("b.md", b"---\ntags: [search]\ndate: 2023-01-01\n---\nshared words there\n"),
            ("c.md", b"---\nbad: [unclosed\n---\nshared words elsewhere\n"),
            ("r.jsonl", b"{\"_id\": \"r1\", \"text\": \"shared words in a record\", \"metadata\": {\"tags\": \"ops\"}}\n{\"_id\": \"r2\", \"text\": \"shared words\", \"metadata\": {\"source\": \"x\"}}\n"),
        ],
    );
    let data = dir.path().join("data");
    let out = crate::run(&data, &["ingest", &crate::path_str(&docs), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["warnings"]["bad_front_matter"], 1, "{summary}");
    assert_eq!(summary["skipped"]["bad_metadata"], 1, "{summary}");
    let q = |filter: &str| {
        crate::run_json(
            &data,
            &[
                "query",
                "shared words",
                "--group-by",
                "document",
                "--top-k",
                "50",
                "--filter",
                filter,
                "--json",
            ],
        )
    };
    let mut got = ids(&q(r#"{"field": "tags", "eq": "ops"}"#));
    got.sort();
    assert_eq!(got, ["a.md", "r1"]);
    assert_eq!(
        ids(&q(r#"{"field": "date", "gte": "2024-01-01T00:00:00Z"}"#)),
        ["a.md"]
    );
    // the same errors as over HTTP, as exit 2
    for (filter, says) in [
        (r#"{"field": "tagz", "eq": "ops"}"#, "unknown field `tagz`"),
        (
            r#"{"field": "date", "gte": "soon"}"#,
            "not an RFC 3339 date",
        ),
        ("not json", "not JSON"),
    ] {
        let out = crate::run(&data, &["query", "shared words", "--filter", filter]);
        assert_eq!(out.status.code(), Some(2), "{filter}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{filter}: {err}");
    }
    let out = crate::run(&data, &["query", "shared words", "--offset", "20000"]);
    assert_eq!(out.status.code(), Some(2));
    let facets = crate::run_json(
        &data,
        &["query", "shared words", "--facet", "tags", "--json"],
    );
    assert_eq!(
        facets["facets"]["tags"],
        json!([{"value": "ops", "count": 2}, {"value": "search", "count": 1}])
    );
}
