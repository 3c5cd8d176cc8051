//! BM25 query expansion by pseudo-relevance feedback (`feedback` of a query or a collection):
//! off and `fb_terms: 0` rank exactly as the plain query; the expansion's words come only from
//! chunks, and titles, the caller may read; a collection's setting applies unless the query says
//! otherwise; `explain` shows the words and weights.

use super::acl_tests::engine_options;
use super::*;
use quarry_core::{
    ChunkOptions, ChunkSizer, DefaultAcl, Document, Feedback, FeedbackSwitch, GroupBy, Mode,
    Principal, QueryOptions, Role,
};

/// `(id, title, text, acl)`: public documents about kettles, a secret one that mentions kettles
/// more than any (so it is the best hit of `kettle` for whoever may read it) with words of its
/// own, and a secret document holding a public chunk under a secret title.
const DOCS: [(&str, &str, &str, &str); 5] = [
    (
        "p1",
        "Kettles",
        "kettle boiling water steam whistle",
        "group:pub",
    ),
    ("p2", "Copper", "kettle copper whistle polish", "group:pub"),
    ("p3", "Tea", "tea leaves steep boiling water", "group:pub"),
    (
        "s1",
        "Reactor",
        "kettle kettle kettle plutonium centrifuge",
        "group:secret",
    ),
    (
        "s2",
        "Uranium dossier",
        "kettle boiling water steam whistle",
        "group:secret",
    ),
];

fn engine(dir: &std::path::Path) -> Engine {
    engine_with(dir, &DOCS)
}

fn engine_with(dir: &std::path::Path, docs: &[(&str, &str, &str, &str)]) -> Engine {
    let options = EngineOptions {
        chunk: ChunkOptions {
            max_tokens: 400,
            overlap: 0,
            sizer: ChunkSizer::Chars,
            context_chars: 0,
        },
        ..engine_options(DefaultAcl::admin_only())
    };
    let engine = Engine::open(dir, options).unwrap();
    let chunker = engine.chunker("c").unwrap();
    let changes = docs
        .iter()
        .map(|(id, title, text, acl)| {
            let d = Document {
                title: (*title).to_owned(),
                acl: quarry_core::acl::normalize_acl(&[(*acl).to_owned()]).unwrap(),
                ..crate::test_support::doc(id, text)
            };
            let chunks = chunker.chunk(&d.title, &d.text, d.format);
            Change::Upsert(d, chunks)
        })
        .collect();
    engine.apply("c", changes).unwrap();
    engine
}

fn query(text: &str, mode: Mode, feedback: Option<FeedbackSwitch>) -> QueryOptions {
    let mut q = QueryOptions::new(text, 10, mode, GroupBy::Chunk)
        .unwrap()
        .with_feedback(feedback)
        .unwrap();
    q.explain = true;
    q
}

fn ranking(r: &crate::SearchResponse) -> Vec<(String, f32)> {
    r.results
        .iter()
        .map(|h| (h.doc_id.clone(), h.score))
        .collect()
}

const WIDE: Feedback = Feedback {
    fb_docs: 10,
    fb_terms: 50,
    orig_weight: 0.5,
};

#[test]
fn feedback_off_or_without_terms_ranks_as_the_plain_query() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let searcher = engine.searcher("c").unwrap();
    let admin = Principal::local_admin();
    for mode in [Mode::Bm25, Mode::Hybrid] {
        for text in ["kettle", "boiling water", "whistle tea"] {
            let plain = searcher.search(&query(text, mode, None), &admin).unwrap();
            assert!(plain.expansion.is_none());
            let same = [
                FeedbackSwitch::Off,
                FeedbackSwitch::With(Feedback {
                    fb_terms: 0,
                    ..WIDE
                }),
                FeedbackSwitch::With(Feedback { fb_docs: 0, ..WIDE }),
                FeedbackSwitch::With(Feedback {
                    orig_weight: 1.0,
                    ..WIDE
                }),
            ];
            for f in same {
                let got = searcher
                    .search(&query(text, mode, Some(f)), &admin)
                    .unwrap();
                assert_eq!(ranking(&got), ranking(&plain), "{text:?} {mode:?} {f:?}");
                assert!(got.expansion.is_none());
            }
            // expanded: the query's own words keep their weights, the added ones follow
            let got = searcher
                .search(&query(text, mode, Some(FeedbackSwitch::With(WIDE))), &admin)
                .unwrap();
            let terms = got.expansion.expect("an expanded query explains its words");
            assert!(terms.iter().any(|t| t.added), "{terms:?}");
            assert!(terms.iter().all(|t| t.weight > 0.0), "{terms:?}");
        }
    }
}

/// The feedback is the caller's own best chunks: a reader of the public group never gets a word
/// of the secret documents into its query, neither from their text nor from the title of a
/// secret document sharing a public chunk; the admin, who reads them, does.
#[test]
fn feedback_comes_only_from_chunks_and_titles_the_caller_may_read() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let searcher = engine.searcher("c").unwrap();
    let reader = Principal::new("u".to_owned(), vec!["pub".to_owned()], Role::Reader);
    let secret = ["plutonium", "centrifug", "uranium", "dossier", "reactor"];
    let words = |r: &crate::SearchResponse| -> Vec<String> {
        r.expansion
            .as_ref()
            .unwrap()
            .iter()
            .map(|t| t.term.clone())
            .collect()
    };
    for mode in [Mode::Bm25, Mode::Hybrid] {
        let q = query("kettle", mode, Some(FeedbackSwitch::With(WIDE)));
        let got = searcher.search(&q, &reader).unwrap();
        let terms = words(&got);
        assert!(terms.contains(&"whistl".to_owned()), "{terms:?}");
        for s in secret {
            assert!(!terms.iter().any(|t| t.starts_with(s)), "{s} in {terms:?}");
        }
        assert!(got.results.iter().all(|h| h.doc_id.starts_with('p')));
        let admin = searcher.search(&q, &Principal::local_admin()).unwrap();
        let terms = words(&admin);
        for s in ["plutonium", "centrifug"] {
            assert!(
                terms.iter().any(|t| t.starts_with(s)),
                "{s} not in {terms:?}"
            );
        }
    }
    // a filter restricts the feedback as it restricts the hits
    let q = query("kettle", Mode::Bm25, Some(FeedbackSwitch::With(WIDE)))
        .with_filter(&serde_json::json!({"field": "doc_id", "in": ["p1", "p2", "p3"]}))
        .unwrap();
    let got = searcher.search(&q, &Principal::local_admin()).unwrap();
    let terms = words(&got);
    for s in secret {
        assert!(!terms.iter().any(|t| t.starts_with(s)), "{s} in {terms:?}");
    }
}

#[test]
fn a_collections_feedback_applies_unless_the_query_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let admin = Principal::local_admin();
    let plain = engine.stats("c", &admin).unwrap().bm25;
    assert_eq!(plain.feedback, None);
    let on = quarry_core::bm25::Bm25Patch {
        feedback: Some(FeedbackSwitch::With(WIDE)),
        ..Default::default()
    }
    .apply(plain);
    assert_eq!(engine.set_bm25("c", on).unwrap().bm25.feedback, Some(WIDE));
    let searcher = engine.searcher("c").unwrap();
    let by_default = searcher
        .search(&query("kettle", Mode::Bm25, None), &admin)
        .unwrap();
    assert!(by_default.expansion.is_some());
    let off = searcher
        .search(
            &query("kettle", Mode::Bm25, Some(FeedbackSwitch::Off)),
            &admin,
        )
        .unwrap();
    assert!(off.expansion.is_none());
    // `true` takes the collection's parameters
    let switched = searcher
        .search(
            &query("kettle", Mode::Bm25, Some(FeedbackSwitch::On)),
            &admin,
        )
        .unwrap();
    assert_eq!(ranking(&switched), ranking(&by_default));
    // and a bad setting is refused
    let bad = quarry_core::Bm25Params {
        feedback: Some(Feedback {
            orig_weight: 0.0,
            ..WIDE
        }),
        ..plain
    };
    assert!(engine.set_bm25("c", bad).is_err());
}

/// A chunk two documents share (same title and text) matches any filter by its shared mark; when
/// none of its documents both passes the filter and is readable, it is no hit and no feedback:
/// its words do not enter the expansion.
#[test]
fn a_shared_chunk_no_admitted_document_holds_is_not_feedback() {
    let docs = [
        ("a", "Shared", "kettle whistle steam", "group:pub"),
        ("b", "Shared", "kettle whistle steam", "group:secret"),
        ("c", "Pot", "kettle teapot teapot", "group:pub"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(dir.path(), &docs);
    let searcher = engine.searcher("c").unwrap();
    let reader = Principal::new("u".to_owned(), vec!["pub".to_owned()], Role::Reader);
    // `a` is readable but filtered out, `b` passes the filter but is secret.
    let q = query("kettle", Mode::Bm25, Some(FeedbackSwitch::With(WIDE)))
        .with_filter(&serde_json::json!({"field": "doc_id", "in": ["b", "c"]}))
        .unwrap();
    let got = searcher.search(&q, &reader).unwrap();
    let ids: Vec<&str> = got.results.iter().map(|h| h.doc_id.as_str()).collect();
    assert_eq!(ids, ["c"]);
    let terms: Vec<String> = got
        .expansion
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| t.term.clone())
        .collect();
    assert!(terms.iter().any(|t| t.starts_with("teapot")), "{terms:?}");
    for w in ["whistl", "steam", "share"] {
        assert!(!terms.iter().any(|t| t.starts_with(w)), "{w} in {terms:?}");
    }
    // Without the filter the reader's shared chunk (through `a`) is feedback again.
    let q = query("kettle", Mode::Bm25, Some(FeedbackSwitch::With(WIDE)));
    let got = searcher.search(&q, &reader).unwrap();
    let terms: Vec<String> = got
        .expansion
        .unwrap()
        .iter()
        .map(|t| t.term.clone())
        .collect();
    assert!(terms.iter().any(|t| t.starts_with("whistl")), "{terms:?}");
}
