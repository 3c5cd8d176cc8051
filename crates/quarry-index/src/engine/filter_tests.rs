//! Filter oracle tests: random corpora with random metadata and ACLs (documents sharing chunks
//! among them), random callers, filters and queries. For BM25, vector and hybrid, by chunk and by
//! document, every hit passes the filter and the caller's ACL, and the answer equals a
//! brute-force evaluation of the same filter over every document: BM25's whole ranking is the
//! caller's unfiltered ranking restricted to the admitted chunks, exact vector search is the
//! brute-force top k, and hybrid and grouped answers fill `top_k` whenever that many exist.
//! Facets equal counts made by hand.

use super::acl_tests::{acl, assert_top_k, bag, caller, default_acl, engine_options, query, text};
use super::*;
use crate::error::Error;
use proptest::prelude::*;
use quarry_core::filter::{FieldType, FieldValues, Scalar, field_values};
use quarry_core::{Document, Filter, GroupBy, Mode, Principal, QueryOptions, embed_text};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

fn metadata() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    (
        proptest::option::of(2000..2004i64),
        proptest::sample::subsequence(vec!["a", "b", "c"], 0..3),
        proptest::option::of(any::<bool>()),
        proptest::option::of(1..5u32),
    )
        .prop_map(|(year, tags, draft, day)| {
            let mut m = serde_json::Map::new();
            if let Some(y) = year {
                m.insert("year".into(), y.into());
            }
            match tags.len() {
                0 => {}
                1 => {
                    m.insert("tags".into(), tags[0].into());
                }
                _ => {
                    m.insert("tags".into(), json!(tags));
                }
            }
            if let Some(d) = draft {
                m.insert("draft".into(), d.into());
            }
            if let Some(d) = day {
                m.insert("when".into(), format!("2024-01-0{d}").into());
            }
            m
        })
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        (2000..2005i64).prop_map(|y| json!({"field": "year", "eq": y})),
        proptest::sample::subsequence(vec![2000, 2001, 2002, 2003], 1..3)
            .prop_map(|ys| json!({"field": "year", "in": ys})),
        (2000..2004i64, 2001..2005i64)
            .prop_map(|(a, b)| json!({"field": "year", "gte": a, "lt": b})),
        (2000..2004i64).prop_map(|a| json!({"field": "year", "gt": a})),
        any::<bool>().prop_map(|b| json!({"field": "year", "exists": b})),
        proptest::sample::select(vec!["a", "b", "c", "d"])
            .prop_map(|t| json!({"field": "tags", "eq": t})),
        proptest::sample::subsequence(vec!["a", "b", "c", "d"], 1..3)
            .prop_map(|ts| json!({"field": "tags", "in": ts})),
        any::<bool>().prop_map(|b| json!({"field": "draft", "eq": b})),
        any::<bool>().prop_map(|b| json!({"field": "draft", "exists": b})),
        (1..5u32).prop_map(|d| json!({"field": "when", "gte": format!("2024-01-0{d}")})),
        (1..5u32).prop_map(|d| json!({"field": "when", "lt": format!("2024-01-0{d}T12:00:00Z")})),
        proptest::sample::subsequence(vec!["d0", "d1", "d2", "d3", "d4"], 1..3)
            .prop_map(|ds| json!({"field": "doc_id", "in": ds})),
    ]
}

fn filter() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(json!({})),
        6 => leaf().prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 1..3).prop_map(|fs| json!({"and": fs})),
                proptest::collection::vec(inner.clone(), 1..3).prop_map(|fs| json!({"or": fs})),
                inner.prop_map(|f| json!({"not": f})),
            ]
        }),
    ]
}

#[derive(Debug, Clone)]
struct Corpus {
    /// (text, acl, metadata) per document `d{i}`.
    docs: Vec<(String, Vec<String>, serde_json::Map<String, Value>)>,
    default: usize,
}

fn corpus() -> impl Strategy<Value = Corpus> {
    // a small pool of paragraphs, so that documents with different metadata share chunks
    proptest::collection::vec(text(), 3..8).prop_flat_map(|pool| {
        let paragraphs = proptest::collection::vec(proptest::sample::select(pool), 1..4)
            .prop_map(|p| p.join("\n\n"));
        (
            proptest::collection::vec((paragraphs, acl(), metadata()), 4..20),
            0..3usize,
        )
            .prop_map(|(mut docs, default)| {
                // the first document has every field, so every filter's fields exist
                docs[0].2 =
                    json!({"year": 2001, "tags": ["a", "c"], "draft": true, "when": "2024-01-02"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default();
                Corpus { docs, default }
            })
    })
}

fn document(
    id: &str,
    text: &str,
    acl: &[String],
    metadata: &serde_json::Map<String, Value>,
) -> Document {
    Document {
        acl: quarry_core::acl::normalize_acl(acl).unwrap(),
        metadata: metadata.clone(),
        ..crate::test_support::doc(id, text)
    }
}

/// What the test wrote: each document's ACL and field values, and which documents hold each
/// chunk.
struct Model {
    acl: BTreeMap<String, Vec<String>>,
    values: BTreeMap<String, FieldValues>,
    /// chunk id → (chunk text, documents holding it)
    chunks: BTreeMap<String, (String, BTreeSet<String>)>,
    default: quarry_core::DefaultAcl,
}

impl Model {
    /// Whether `caller` may read `doc` and it passes `filter`: the brute-force evaluation.
    fn admits(&self, caller: &Principal, filter: &Filter, doc: &str) -> bool {
        caller.may_read(&self.acl[doc], &self.default) && filter.matches(&self.values[doc])
    }

    fn chunk_admitted(&self, caller: &Principal, filter: &Filter, chunk: &str) -> bool {
        self.chunks[chunk]
            .1
            .iter()
            .any(|d| self.admits(caller, filter, d))
    }
}

fn build(dir: &std::path::Path, c: &Corpus) -> (Engine, Model) {
    let default = default_acl(c.default);
    let engine = Engine::open(dir, engine_options(default.clone())).unwrap();
    let chunker = engine.chunker("c").unwrap();
    let mut model = Model {
        acl: BTreeMap::new(),
        values: BTreeMap::new(),
        chunks: BTreeMap::new(),
        default,
    };
    let mut changes = Vec::new();
    for (i, (text, acl, metadata)) in c.docs.iter().enumerate() {
        let d = document(&format!("d{i}"), text, acl, metadata);
        let chunks = chunker.chunk(&d.title, &d.text, d.format);
        for ch in &chunks {
            model
                .chunks
                .entry(ch.hash.to_hex())
                .or_insert_with(|| (ch.text.clone(), BTreeSet::new()))
                .1
                .insert(d.doc_id.clone());
        }
        let mut values = field_values(metadata);
        values.insert("doc_id".into(), vec![Scalar::Str(d.doc_id.clone())]);
        model.values.insert(d.doc_id.clone(), values);
        model.acl.insert(d.doc_id.clone(), d.acl.clone());
        changes.push(Change::Upsert(d, chunks));
    }
    engine.apply("c", changes).unwrap();
    (engine, model)
}

fn filtered(text: &str, top_k: usize, mode: Mode, group_by: GroupBy, f: &Value) -> QueryOptions {
    query(text, top_k, mode, group_by).with_filter(f).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn filtered_answers_equal_a_brute_force_evaluation(
        c in corpus(),
        callers in proptest::collection::vec(caller(), 1..3),
        filters in proptest::collection::vec(filter(), 1..4),
        qtext in text(),
        top_k in 1..8usize,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (engine, model) = build(dir.path(), &c);
        let searcher = engine.searcher("c").unwrap();
        let schema = searcher.field_schema().unwrap();
        for (field, t) in [("year", FieldType::Number), ("tags", FieldType::String), ("draft", FieldType::Bool), ("when", FieldType::Date)] {
            prop_assert_eq!(schema.0.get(field), Some(&vec![t]), "{:?}", schema);
        }
        let qv = bag(&qtext);
        for f in &filters {
            let resolved = Filter::parse(f).unwrap().resolve(&schema).unwrap();
            for caller in &callers {
                let admitted: BTreeSet<&String> = model
                    .acl
                    .keys()
                    .filter(|d| model.admits(caller, &resolved, d))
                    .collect();
                let admitted_chunks: BTreeSet<&String> = model
                    .chunks
                    .keys()
                    .filter(|id| model.chunk_admitted(caller, &resolved, id))
                    .collect();
                // BM25: the caller's unfiltered ranking (a filter selects, it does not change
                // scores) restricted to the admitted chunks, whole and its top k.
                let unfiltered: Vec<(String, f32)> = searcher
                    .search(&query(&qtext, 1000, Mode::Bm25, GroupBy::Chunk), caller)
                    .unwrap()
                    .results
                    .iter()
                    .map(|h| (h.chunk_id.clone(), h.score))
                    .collect();
                let oracle: Vec<(String, f32)> = unfiltered
                    .iter()
                    .filter(|(id, _)| admitted_chunks.contains(id))
                    .cloned()
                    .collect();
                let whole = searcher
                    .search(&filtered(&qtext, 1000, Mode::Bm25, GroupBy::Chunk, f), caller)
                    .unwrap();
                prop_assert_eq!(
                    whole.results.iter().map(|h| &h.chunk_id).collect::<BTreeSet<_>>(),
                    oracle.iter().map(|(id, _)| id).collect::<BTreeSet<_>>(),
                    "bm25 with {}", f
                );
                let got: Vec<(String, f32)> = searcher
                    .search(&filtered(&qtext, top_k, Mode::Bm25, GroupBy::Chunk, f), caller)
                    .unwrap()
                    .results
                    .iter()
                    .map(|h| (h.chunk_id.clone(), h.score))
                    .collect();
                assert_top_k(&got, &oracle, top_k, &format!("bm25 top k with {f}"));

                // Inside the retrievers, asked for exactly top_k (nothing after them could fill
                // it): the chunks of one document are admitted exactly; a chunk several
                // documents share passes when the caller may read one of them, and is decided
                // document by document when hits are built (above and below).
                let retrievable = |id: &str| {
                    let holders = &model.chunks[id].1;
                    holders.iter().any(|d| caller.may_read(&model.acl[d], &model.default))
                        && (holders.len() > 1 || model.chunk_admitted(caller, &resolved, id))
                };
                let key = |id: &str| crate::bm25::chunk_key(&quarry_core::ContentHash::from_hex(id).unwrap()).to_string();
                let raw_oracle: Vec<(String, f32)> = unfiltered
                    .iter()
                    .filter(|(id, _)| retrievable(id))
                    .map(|(id, s)| (key(id), *s))
                    .collect();
                let raw: Vec<(String, f32)> = searcher
                    .retrieve(&qtext, Mode::Bm25, None, top_k, caller, Some(resolved.clone()))
                    .unwrap()
                    .into_iter()
                    .map(|(k, s)| (k.to_string(), s))
                    .collect();
                assert_top_k(&raw, &raw_oracle, top_k, &format!("bm25 retriever with {f}"));
                let mut raw_oracle: Vec<(String, f32)> = model
                    .chunks
                    .iter()
                    .filter(|(id, _)| retrievable(id))
                    .map(|(id, (t, _))| (key(id), crate::vectors::dot(&qv, &bag(&embed_text("", t)))))
                    .collect();
                raw_oracle.sort_by(|a, b| b.1.total_cmp(&a.1));
                let raw: Vec<(String, f32)> = searcher
                    .retrieve(&qtext, Mode::Vector, Some(&qv), top_k, caller, Some(resolved.clone()))
                    .unwrap()
                    .into_iter()
                    .map(|(k, s)| (k.to_string(), s))
                    .collect();
                assert_top_k(&raw, &raw_oracle, top_k, &format!("vector retriever with {f}"));

                // Exact vector search: brute force over the admitted chunks.
                let mut oracle: Vec<(String, f32)> = admitted_chunks
                    .iter()
                    .map(|id| ((*id).clone(), crate::vectors::dot(&qv, &bag(&embed_text("", &model.chunks[*id].0)))))
                    .collect();
                oracle.sort_by(|a, b| b.1.total_cmp(&a.1));
                let got: Vec<(String, f32)> = searcher
                    .search_with_vector(&filtered(&qtext, top_k, Mode::Vector, GroupBy::Chunk, f), caller, Some(Ok(qv.clone())))
                    .unwrap()
                    .results
                    .iter()
                    .map(|h| (h.chunk_id.clone(), h.score))
                    .collect();
                assert_top_k(&got, &oracle, top_k, &format!("vector with {f}"));

                // Every mode and grouping: each hit's documents are admitted, a chunk hit names
                // exactly the admitted documents holding it, and top_k is filled whenever that
                // many results exist (the vector side reaches every admitted chunk).
                for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
                    for group_by in [GroupBy::Chunk, GroupBy::Document] {
                        let r = searcher
                            .search_with_vector(
                                &filtered(&qtext, top_k, mode, group_by, f),
                                caller,
                                (mode != Mode::Bm25).then(|| Ok(qv.clone())),
                            )
                            .unwrap();
                        let mut docs = BTreeSet::new();
                        for h in &r.results {
                            let mut named: BTreeSet<String> = h.also_in.iter().cloned().collect();
                            named.insert(h.doc_id.clone());
                            for d in &named {
                                prop_assert!(admitted.contains(d), "{:?}/{:?} with {}: {} is not admitted", mode, group_by, f, d);
                            }
                            docs.insert(h.doc_id.clone());
                            if group_by == GroupBy::Chunk {
                                let want: BTreeSet<String> = model.chunks[&h.chunk_id]
                                    .1
                                    .iter()
                                    .filter(|d| admitted.contains(d))
                                    .cloned()
                                    .collect();
                                prop_assert_eq!(&named, &want);
                            }
                        }
                        if mode != Mode::Bm25 {
                            let exist = match group_by {
                                GroupBy::Chunk => admitted_chunks.len(),
                                GroupBy::Document => admitted.len(),
                            };
                            prop_assert_eq!(r.results.len(), exist.min(top_k), "{:?}/{:?} with {}", mode, group_by, f);
                        }
                        if group_by == GroupBy::Document {
                            prop_assert_eq!(docs.len(), r.results.len());
                        }
                    }
                }

                // Facets: per value, the admitted documents one of whose chunks holds a word of
                // the query (the chunks of the caller's BM25 ranking).
                let matching: BTreeSet<&String> = unfiltered.iter().map(|(id, _)| id).collect();
                let mut want: BTreeMap<String, u64> = BTreeMap::new();
                for d in &admitted {
                    let hit = model.chunks.iter().any(|(id, (_, holders))| holders.contains(*d) && matching.contains(id));
                    if hit {
                        for v in model.values[*d].get("tags").into_iter().flatten() {
                            *want.entry(v.to_json().to_string()).or_default() += 1;
                        }
                    }
                }
                let q = filtered(&qtext, 3, Mode::Bm25, GroupBy::Chunk, f)
                    .with_fields(None, vec!["tags".into()])
                    .unwrap();
                let facets = searcher.search(&q, caller).unwrap().facets.unwrap();
                let got: BTreeMap<String, u64> = facets["tags"]
                    .iter()
                    .map(|c| (c.value.to_string(), c.count))
                    .collect();
                prop_assert_eq!(got, want, "facets with {}", f);
            }
        }
    }
}

#[test]
fn filters_on_unknown_fields_or_wrong_types_are_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = Corpus {
        docs: vec![(
            "alpha bravo".into(),
            vec![],
            json!({"year": 2020})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )],
        default: 1,
    };
    let (engine, _) = build(dir.path(), &c);
    let searcher = engine.searcher("c").unwrap();
    let admin = Principal::local_admin();
    for (f, says) in [
        (json!({"field": "yaer", "eq": 2020}), "unknown field `yaer`"),
        (
            json!({"field": "year", "eq": "2020"}),
            "`year` holds number, not strings",
        ),
        (
            json!({"not": {"field": "year", "gte": "2020-01-01"}}),
            "filter.not: `year` holds number",
        ),
    ] {
        let q = filtered("alpha", 3, Mode::Bm25, GroupBy::Chunk, &f);
        match searcher.search(&q, &admin) {
            Err(e @ Error::Core(_)) => {
                assert_eq!(e.kind(), crate::ErrorKind::Input);
                assert!(e.to_string().contains(says), "{f}: {e}");
            }
            other => panic!("{f}: {other:?}"),
        }
    }
    let q = query("alpha", 3, Mode::Bm25, GroupBy::Chunk)
        .with_fields(None, vec!["yeer".into()])
        .unwrap();
    let e = searcher.search(&q, &admin).unwrap_err();
    assert!(
        e.to_string().contains("`facets`: unknown field `yeer`"),
        "{e}"
    );
}

/// A caller learns nothing of the metadata of documents it may not read: a filter or a facet on
/// a field only they have answers as for a field no document has (no error: a field of no
/// value, for any caller but an admin), and no error names their fields or types. An admin's
/// errors name them all.
#[test]
fn fields_of_hidden_documents_are_not_named_to_a_caller() {
    let dir = tempfile::tempdir().unwrap();
    let meta = |v: Value| v.as_object().cloned().unwrap_or_default();
    let c = Corpus {
        docs: vec![
            (
                "alpha bravo".into(),
                vec!["group:g0".into()],
                meta(json!({"year": 2020})),
            ),
            (
                "alpha charlie".into(),
                vec!["group:g1".into()],
                meta(json!({"merger_target": "acme", "year": "secret"})),
            ),
            // one chunk of two documents, one hidden from the reader
            (
                "alpha delta".into(),
                vec!["group:g0".into()],
                meta(json!({"year": 2021})),
            ),
            (
                "alpha delta".into(),
                vec!["group:g1".into()],
                meta(json!({"shared_secret": 1})),
            ),
        ],
        default: 1,
    };
    let (engine, _) = build(dir.path(), &c);
    let searcher = engine.searcher("c").unwrap();
    let reader = Principal::new("u0", vec!["g0".into()], quarry_core::Role::Reader);
    let everything = Principal::new(
        "u1",
        vec!["g0".into(), "g1".into()],
        quarry_core::Role::Reader,
    );
    let admin = Principal::local_admin();
    // (doc ids and facet counts, or the error)
    let ask = |f: Value, facet: Option<&str>, who: &Principal| {
        let q = filtered("alpha", 3, Mode::Bm25, GroupBy::Document, &f)
            .with_fields(None, facet.into_iter().map(str::to_owned).collect())
            .unwrap();
        searcher
            .search(&q, who)
            .map(|r| {
                let mut ids: Vec<String> = r.results.into_iter().map(|h| h.doc_id).collect();
                ids.sort();
                (ids, serde_json::to_value(r.facets).unwrap())
            })
            .map_err(|e| e.to_string())
    };
    let hidden = json!({"field": "merger_target", "exists": true});
    let unknown = json!({"field": "zz", "exists": true});
    let nothing = (Vec::<String>::new(), Value::Null);
    // the reader: a field only hidden documents have is like one no document has
    assert_eq!(ask(hidden.clone(), None, &reader), Ok(nothing.clone()));
    assert_eq!(ask(unknown.clone(), None, &reader), Ok(nothing.clone()));
    let eq_acme = json!({"field": "merger_target", "eq": "acme"});
    assert_eq!(ask(eq_acme, None, &reader), Ok(nothing.clone()));
    let absent = json!({"not": {"field": "merger_target", "exists": true}});
    assert_eq!(ask(absent, None, &reader).unwrap().0, vec!["d0", "d2"]);
    // the shared chunk is no evidence of its hidden document's field
    let shared = json!({"field": "shared_secret", "eq": true});
    assert_eq!(ask(shared.clone(), None, &reader), Ok(nothing.clone()));
    for facet in ["zz", "merger_target"] {
        let (ids, facets) = ask(json!({}), Some(facet), &reader).unwrap();
        assert_eq!(
            (ids, facets),
            (vec!["d0".into(), "d2".into()], json!({facet: []}))
        );
    }
    // a field it may read is typed by what it may read: no string `year` named
    let e = ask(json!({"field": "year", "eq": true}), None, &reader).unwrap_err();
    assert!(e.contains("`year` holds number, not booleans"), "{e}");
    let e = ask(json!({"field": "zz", "gte": "abc"}), None, &reader).unwrap_err();
    assert!(
        e.contains("both bounds of one type") && !e.contains("holds"),
        "{e}"
    );

    // a reader whose ACL admits every document is told nothing about that either: no error
    assert_eq!(
        ask(hidden.clone(), None, &everything).unwrap().0,
        vec!["d1"]
    );
    assert_eq!(
        ask(unknown.clone(), None, &everything),
        Ok((vec![], Value::Null))
    );
    let e = ask(shared.clone(), None, &admin).unwrap_err();
    assert!(
        e.contains("`shared_secret` holds number, not booleans"),
        "{e}"
    );
    let e = ask(json!({"field": "year", "eq": true}), None, &everything).unwrap_err();
    assert!(e.contains("`year` holds string and number,"), "{e}");
    {
        let who = &admin;
        assert_eq!(
            ask(hidden.clone(), Some("merger_target"), who).unwrap().0,
            vec!["d1"]
        );
        let e = ask(unknown.clone(), None, who).unwrap_err();
        assert!(
            e.contains("unknown field `zz`") && e.contains("merger_target"),
            "{e}"
        );
        let e = ask(json!({}), Some("zz"), who).unwrap_err();
        assert!(e.contains("`facets`: unknown field `zz`"), "{e}");
        let e = ask(json!({"field": "year", "eq": true}), None, who).unwrap_err();
        assert!(e.contains("`year` holds string and number,"), "{e}");
    }
}

#[test]
fn a_metadata_change_reindexes_without_reembedding_and_hits_carry_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        engine_options(quarry_core::DefaultAcl::public()),
    )
    .unwrap();
    let chunker = engine.chunker("c").unwrap();
    let put = |year: i64| {
        let meta = json!({"year": year, "url": "https://example.org/a"});
        let d = document("a", "alpha bravo charlie", &[], meta.as_object().unwrap());
        let chunks = chunker.chunk(&d.title, &d.text, d.format);
        engine.apply("c", vec![Change::Upsert(d, chunks)]).unwrap()
    };
    let first = put(2020);
    assert!(first.embedded > 0);
    let admin = Principal::local_admin();
    let count = |f: Value| {
        engine
            .searcher("c")
            .unwrap()
            .search(
                &filtered("alpha", 10, Mode::Hybrid, GroupBy::Document, &f),
                &admin,
            )
            .unwrap()
            .results
    };
    let hits = count(json!({"field": "year", "eq": 2020}));
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].metadata["url"], "https://example.org/a");
    let second = put(2021);
    assert_eq!(
        (second.embedded, second.acl_updated, second.updated),
        (0, 1, 0)
    );
    assert!(count(json!({"field": "year", "eq": 2020})).is_empty());
    assert_eq!(count(json!({"field": "year", "eq": 2021})).len(), 1);
    // `include` keeps only the keys named
    let q = filtered("alpha", 10, Mode::Bm25, GroupBy::Chunk, &json!({}))
        .with_fields(Some(vec!["year".into()]), vec![])
        .unwrap();
    let hits = engine
        .searcher("c")
        .unwrap()
        .search(&q, &admin)
        .unwrap()
        .results;
    assert_eq!(
        Value::Object(hits[0].metadata.clone()),
        json!({"year": 2021})
    );
}
