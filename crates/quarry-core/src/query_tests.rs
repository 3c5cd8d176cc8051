//! Tests of query options: validation, and the request body's translation and checks.

use super::*;

#[test]
fn validation() {
    assert!(QueryOptions::new("  \n", 10, Mode::Bm25, GroupBy::Chunk).is_err());
    assert!(QueryOptions::new("a", 0, Mode::Bm25, GroupBy::Chunk).is_err());
    assert!(QueryOptions::new("a", 1001, Mode::Bm25, GroupBy::Chunk).is_err());
    assert!(QueryOptions::new("a", 1000, Mode::Bm25, GroupBy::Chunk).is_ok());
    assert!(
        QueryOptions::new(
            "x".repeat(MAX_QUERY_BYTES + 1),
            1,
            Mode::Bm25,
            GroupBy::Chunk
        )
        .is_err()
    );
    assert_eq!("bm25".parse::<Mode>(), Ok(Mode::Bm25));
    assert!("BM25 ".parse::<Mode>().is_err());
}

/// What a test request is completed with: `mode`, the best 10 by chunk, the default fusion.
pub(crate) fn defaults(mode: Mode) -> QueryDefaults {
    QueryDefaults {
        top_k: 10,
        mode,
        group_by: GroupBy::Chunk,
        fusion: Fusion::default(),
    }
}

/// `json` as a request body, completed with `d` (a body serde refuses is an `invalid` error).
pub(crate) fn parse_with(d: QueryDefaults, json: serde_json::Value) -> Result<QueryOptions> {
    let req: QueryRequest =
        serde_json::from_value(json).map_err(|e| Error::invalid("body", e.to_string()))?;
    req.options(d)
}

fn request(json: serde_json::Value) -> Result<QueryOptions> {
    parse_with(defaults(Mode::Bm25), json)
}

#[test]
fn view_options_are_checked_and_round_trip() {
    let q = request(
        serde_json::json!({"query": "a", "highlight": true, "citation": true,
        "expand": {"neighbors": 10}}),
    )
    .unwrap();
    assert!(q.highlight && q.citation);
    assert_eq!(q.expand, Some(Expand { neighbors: 10 }));
    let again = QueryRequest::from(&q).options(QueryDefaults {
        top_k: 1,
        mode: Mode::Hybrid,
        group_by: GroupBy::Document,
        fusion: Fusion::default(),
    });
    assert_eq!(again.unwrap(), q);
    for n in [0, 11] {
        let e = request(serde_json::json!({"query": "a", "expand": {"neighbors": n}}));
        let e = e.unwrap_err().to_string();
        assert!(e.contains("expand.neighbors"), "{e}");
    }
    // an unknown key of `expand` is refused, not ignored
    assert!(request(serde_json::json!({"query": "a", "expand": {"max_token": 5}})).is_err());
    let plain = request(serde_json::json!({"query": "a"})).unwrap();
    assert!(!plain.highlight && !plain.citation && plain.expand.is_none());
}

/// `include` and `facets` are bounded: a body of millions of keys is refused, not matched
/// against every metadata key of every hit.
#[test]
fn field_lists_are_bounded() {
    let keys = |n: usize| (0..n).map(|i| format!("k{i}")).collect::<Vec<_>>();
    let ok = request(serde_json::json!({"query": "a", "include": keys(MAX_INCLUDE)})).unwrap();
    assert_eq!(ok.include.map(|k| k.len()), Some(MAX_INCLUDE));
    let e = request(serde_json::json!({"query": "a", "include": keys(MAX_INCLUDE + 1)}));
    let e = e.unwrap_err().to_string();
    assert!(e.contains("include") && e.contains("at most 256"), "{e}");
    let e = request(serde_json::json!({"query": "a", "facets": keys(MAX_FACETS + 1)}));
    assert!(e.unwrap_err().to_string().contains("facets"));
}

#[test]
fn rerank_is_checked_and_round_trips() {
    let d = defaults(Mode::Hybrid);
    let parse = |v: serde_json::Value| parse_with(d, v).map_err(|e| e.to_string());
    let q = parse(serde_json::json!({"query": "wal", "rerank": {"top_n": 20}})).unwrap();
    assert_eq!(q.rerank, Some(Rerank { top_n: 20 }));
    assert_eq!(QueryRequest::from(&q).options(d).unwrap(), q);
    for bad in [0, MAX_RERANK_TOP_N + 1] {
        let e = parse(serde_json::json!({"query": "wal", "rerank": {"top_n": bad}}));
        assert!(e.unwrap_err().contains("rerank.top_n"));
    }
    let e = parse(serde_json::json!({"query": "wal", "rerank": {"top_n": 5, "model": "x"}}));
    assert!(e.unwrap_err().contains("model"));
    let e = parse(serde_json::json!({"mode": "vector", "vector": [1.0], "rerank": {"top_n": 5}}));
    assert!(e.unwrap_err().contains("`query`"));
}

#[test]
fn diversify_is_checked_and_round_trips() {
    let d = defaults(Mode::Hybrid);
    let request = |body: &str| -> QueryRequest { serde_json::from_str(body).unwrap() };
    let e = request(r#"{"query": "a", "diversify": {"lambda": 1.5}}"#)
        .options(d)
        .unwrap_err();
    assert!(e.to_string().contains("invalid diversify"), "{e}");
    let q = request(r#"{"query": "a", "diversify": {"lambda": 0.7}}"#)
        .options(d)
        .unwrap();
    assert_eq!(q.diversify, Some(Diversify { lambda: 0.7 }));
    assert_eq!(QueryRequest::from(&q).options(d).unwrap(), q);
    assert!(serde_json::from_str::<QueryRequest>(r#"{"diversify": 0.7}"#).is_err());
}
