//! ACL oracle tests: random corpora, ACLs, default ACLs, callers and queries. No hit may name a
//! document outside the caller's permissions, in any mode or grouping; for BM25 and exact vector
//! search the caller's top k equals a brute-force ranking of the permitted chunks, and BM25 by
//! document equals the caller's chunk ranking grouped by hand.

use super::*;
use crate::collection::EmbedderSource;
use crate::error::{Error, Result};
use proptest::prelude::*;
use quarry_core::InputKind;
use quarry_core::{ChunkOptions, ContentHash, Document, Embedder};
use quarry_core::{
    ChunkSizer, DefaultAcl, GroupBy, Mode, Principal, QueryOptions, Role, embed_text,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const WORDS: [&str; 12] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima",
];
const DIMS: usize = 16;

/// Deterministic word-bag vectors: each word has a fixed pseudo-random direction.
struct WordBag(quarry_core::EmbedderSpec);

fn word_vector(word: &str) -> [f32; DIMS] {
    let h = blake3::hash(word.as_bytes());
    let mut v = [0f32; DIMS];
    for (i, b) in h.as_bytes().iter().take(DIMS).enumerate() {
        v[i] = *b as f32 / 255.0 - 0.5;
    }
    v
}

pub(super) fn bag(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIMS];
    for w in text.split_whitespace() {
        for (a, b) in v.iter_mut().zip(word_vector(w)) {
            *a += b;
        }
    }
    quarry_core::embed::normalize(&mut v);
    v
}

impl quarry_core::Embedder for WordBag {
    fn spec(&self) -> &quarry_core::EmbedderSpec {
        &self.0
    }
    fn fingerprint(&self) -> quarry_core::Fingerprint {
        self.0.fingerprint()
    }
    fn embed(
        &self,
        texts: &[&str],
        _kind: InputKind,
    ) -> std::result::Result<Vec<Vec<f32>>, quarry_core::EmbedError> {
        Ok(texts.iter().map(|t| bag(t)).collect())
    }
}

struct Source(Arc<WordBag>);
impl EmbedderSource for Source {
    fn get(&self, name: &str) -> Result<Option<Arc<dyn Embedder>>> {
        Ok((name == "bag").then(|| self.0.clone() as Arc<dyn Embedder>))
    }
}

pub(super) fn engine_options(default_acl: DefaultAcl) -> EngineOptions {
    let spec = quarry_core::EmbedderSpec {
        provider: "test".into(),
        model: "word-bag".into(),
        revision: "1".into(),
        dimensions: DIMS,
        pooling: "none".into(),
        normalized: true,
        max_tokens: 1024,
        query_prefix: String::new(),
        document_prefix: String::new(),
    };
    EngineOptions {
        chunk: ChunkOptions {
            max_tokens: 12,
            overlap: 0,
            sizer: ChunkSizer::Chars,
            context_chars: 0,
        },
        embedder: "bag".into(),
        embedders: Some(Arc::new(Source(Arc::new(WordBag(spec))))),
        default_acl,
        ..EngineOptions::default()
    }
}

const PRINCIPALS: [&str; 6] = [
    "user:u0", "user:u1", "user:u2", "group:g0", "group:g1", "public",
];

#[derive(Debug, Clone)]
struct Corpus {
    /// (text, acl) per document `d{i}`.
    docs: Vec<(String, Vec<String>)>,
    /// Documents whose ACL changes afterwards (content unchanged): (doc index, new acl).
    acl_updates: Vec<(usize, Vec<String>)>,
    default: usize,
}

pub(super) fn acl() -> impl Strategy<Value = Vec<String>> {
    // a third of documents get the default ACL (empty)
    prop_oneof![
        1 => Just(Vec::new()),
        2 => proptest::sample::subsequence(PRINCIPALS.to_vec(), 1..3)
            .prop_map(|v| v.into_iter().map(str::to_owned).collect()),
    ]
}

pub(super) fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(WORDS.to_vec()), 1..9)
        .prop_map(|w| w.join(" "))
}

fn corpus() -> impl Strategy<Value = Corpus> {
    // A small pool of paragraphs, so several documents (with different ACLs) share chunks: all of
    // them, or some, when one document's paragraphs are among another's.
    proptest::collection::vec(text(), 3..10).prop_flat_map(|pool| {
        let n = pool.len();
        let paragraphs = proptest::collection::vec(proptest::sample::select(pool.clone()), 1..4)
            .prop_map(|p| p.join("\n\n"));
        (
            proptest::collection::vec((paragraphs, acl()), 4..24),
            proptest::collection::vec((0..24usize, acl()), 0..4),
            0..3usize,
        )
            .prop_map(move |(docs, updates, default)| {
                let _ = n;
                let updates = updates
                    .into_iter()
                    .filter(|(i, _)| *i < docs.len())
                    .collect();
                Corpus {
                    docs,
                    acl_updates: updates,
                    default,
                }
            })
    })
}

pub(super) fn caller() -> impl Strategy<Value = Principal> {
    (
        0..4usize,
        proptest::sample::subsequence(vec!["g0", "g1", "g2"], 0..3),
        prop_oneof![6 => Just(Role::Reader), 1 => Just(Role::Writer), 1 => Just(Role::Admin)],
    )
        .prop_map(|(u, groups, role)| {
            Principal::new(
                format!("u{u}"),
                groups.into_iter().map(str::to_owned).collect(),
                role,
            )
        })
}

pub(super) fn default_acl(i: usize) -> DefaultAcl {
    match i {
        0 => DefaultAcl::admin_only(),
        1 => DefaultAcl::public(),
        _ => DefaultAcl(vec!["group:g0".into()]),
    }
}

fn document(id: &str, text: &str, acl: &[String]) -> Document {
    Document {
        acl: quarry_core::acl::normalize_acl(acl).unwrap(),
        ..crate::test_support::doc(id, text)
    }
}

/// The model: each document's ACL and chunks, as the test wrote them.
struct Model {
    acl: BTreeMap<String, Vec<String>>,
    /// chunk id → (chunk text, documents holding it)
    chunks: BTreeMap<String, (String, BTreeSet<String>)>,
    default: DefaultAcl,
}

impl Model {
    fn readable(&self, caller: &Principal, doc: &str) -> bool {
        caller.may_read(&self.acl[doc], &self.default)
    }
    fn visible_chunk(&self, caller: &Principal, chunk: &str) -> bool {
        self.chunks[chunk]
            .1
            .iter()
            .any(|d| self.readable(caller, d))
    }
}

fn build(dir: &std::path::Path, c: &Corpus) -> (Engine, Model) {
    let default = default_acl(c.default);
    let engine = Engine::open(dir, engine_options(default.clone())).unwrap();
    let chunker = engine.chunker("c").unwrap();
    let mut model = Model {
        acl: BTreeMap::new(),
        chunks: BTreeMap::new(),
        default,
    };
    let mut changes = Vec::new();
    for (i, (text, acl)) in c.docs.iter().enumerate() {
        let d = document(&format!("d{i}"), text, acl);
        let chunks = chunker.chunk(&d.title, &d.text, d.format);
        for ch in &chunks {
            model
                .chunks
                .entry(ch.hash.to_hex())
                .or_insert_with(|| (ch.text.clone(), BTreeSet::new()))
                .1
                .insert(d.doc_id.clone());
        }
        model.acl.insert(d.doc_id.clone(), d.acl.clone());
        changes.push(Change::Upsert(d, chunks));
    }
    engine.apply("c", changes).unwrap();
    // ACL-only updates: nothing is embedded again, and the new ACL is in force at once.
    if !c.acl_updates.is_empty() {
        let mut changes = Vec::new();
        for (i, acl) in &c.acl_updates {
            let d = document(&format!("d{i}"), &c.docs[*i].0, acl);
            let chunks = chunker.chunk(&d.title, &d.text, d.format);
            model.acl.insert(d.doc_id.clone(), d.acl.clone());
            changes.push(Change::Upsert(d, chunks));
        }
        let stats = engine.apply("c", changes).unwrap();
        assert_eq!(stats.embedded, 0, "an ACL change must not re-embed");
        assert_eq!(stats.added + stats.updated, 0);
    }
    (engine, model)
}

pub(super) fn query(text: &str, top_k: usize, mode: Mode, group_by: GroupBy) -> QueryOptions {
    QueryOptions::new(text, top_k, mode, group_by).unwrap()
}

/// Asserts `got` is the best `top_k` of `oracle` (chunk id, score), allowing ties to swap.
pub(super) fn assert_top_k(
    got: &[(String, f32)],
    oracle: &[(String, f32)],
    top_k: usize,
    what: &str,
) {
    let want = &oracle[..oracle.len().min(top_k)];
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for ((gid, gs), (_, ws)) in got.iter().zip(want) {
        assert!((gs - ws).abs() < 1e-4, "{what}: scores {got:?} vs {want:?}");
        let o = oracle.iter().find(|(id, _)| id == gid);
        assert!(
            o.is_some_and(|(_, s)| (s - gs).abs() < 1e-4),
            "{what}: {gid} is not a permitted chunk with that score; {oracle:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_hit_outside_the_callers_permissions_and_top_k_matches_the_oracle(
        c in corpus(),
        callers in proptest::collection::vec(caller(), 1..4),
        queries in proptest::collection::vec(text(), 1..4),
        top_k in 1..8usize,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (engine, model) = build(dir.path(), &c);
        let searcher = engine.searcher("c").unwrap();
        let admin = Principal::local_admin();
        // What the vector search asks of each point it reaches: exactly the chunks the caller
        // may read, by key, with their count and keys.
        for caller in callers.iter().chain([&admin]) {
            let key = |id: &str| crate::bm25::chunk_key(&ContentHash::from_hex(id).unwrap());
            let want: BTreeSet<u64> = model
                .chunks
                .keys()
                .filter(|id| caller.sees_all() || model.visible_chunk(caller, id))
                .map(|id| key(id))
                .collect();
            let (count, all, keys, answers) = searcher.admitted_for_tests(caller).unwrap();
            prop_assert_eq!(answers.len(), model.chunks.len());
            for (k, admitted) in &answers {
                prop_assert_eq!(*admitted, want.contains(k), "chunk key {}", k);
            }
            prop_assert_eq!(keys.iter().copied().collect::<BTreeSet<u64>>(), want.clone());
            prop_assert_eq!(count, want.len());
            prop_assert_eq!(all, want.len() == model.chunks.len());
        }
        for qtext in &queries {
            // The unfiltered BM25 ranking of every chunk; the oracle filters it.
            let all = searcher
                .search(&query(qtext, 1000, Mode::Bm25, GroupBy::Chunk), &admin)
                .unwrap();
            let qv = bag(qtext);
            for caller in &callers {
                // BM25: the caller's whole ranking holds exactly the permitted chunks that
                // match (scored by the statistics of what it may read, so not the admin's
                // scores), and its top k is the head of that ranking.
                let mine: Vec<(String, f32)> = searcher
                    .search(&query(qtext, 1000, Mode::Bm25, GroupBy::Chunk), caller)
                    .unwrap()
                    .results
                    .iter()
                    .map(|h| (h.chunk_id.clone(), h.score))
                    .collect();
                let permitted: BTreeSet<&String> = all
                    .results
                    .iter()
                    .filter(|h| model.visible_chunk(caller, &h.chunk_id))
                    .map(|h| &h.chunk_id)
                    .collect();
                prop_assert_eq!(mine.iter().map(|(id, _)| id).collect::<BTreeSet<_>>(), permitted);
                let oracle = mine;
                let got = searcher
                    .search(&query(qtext, top_k, Mode::Bm25, GroupBy::Chunk), caller)
                    .unwrap();
                let got: Vec<(String, f32)> =
                    got.results.iter().map(|h| (h.chunk_id.clone(), h.score)).collect();
                assert_top_k(&got, &oracle, top_k, "bm25");

                // The same inside the retriever: asked for exactly top_k, BM25 returns the
                // permitted top k (no post-filtering could fill it).
                let key = |id: &str| crate::bm25::chunk_key(&ContentHash::from_hex(id).unwrap());
                let keyed = |list: &[(String, f32)]| -> Vec<(String, f32)> {
                    list.iter().map(|(id, s)| (key(id).to_string(), *s)).collect()
                };
                let raw: Vec<(String, f32)> = searcher
                    .retrieve(qtext, Mode::Bm25, None, top_k, caller, None)
                    .unwrap()
                    .into_iter()
                    .map(|(k, s)| (k.to_string(), s))
                    .collect();
                assert_top_k(&raw, &keyed(&oracle), top_k, "bm25 retriever");

                // Grouped by document: the caller's chunk ranking with each chunk expanded to the
                // readable documents holding it, each document at its first (best) chunk. This
                // is what passing over chunks of documents already hit (by `doc_keys`) and the
                // deeper passes must keep.
                let chunks = searcher
                    .search(&query(qtext, 1000, Mode::Bm25, GroupBy::Chunk), caller)
                    .unwrap();
                let mut oracle: Vec<(String, f32)> = Vec::new();
                for h in &chunks.results {
                    for d in std::iter::once(&h.doc_id).chain(&h.also_in) {
                        if !oracle.iter().any(|(id, _)| id == d) {
                            oracle.push((d.clone(), h.score));
                        }
                    }
                }
                let got: Vec<(String, f32)> = searcher
                    .search(&query(qtext, top_k, Mode::Bm25, GroupBy::Document), caller)
                    .unwrap()
                    .results
                    .iter()
                    .map(|h| (h.doc_id.clone(), h.score))
                    .collect();
                assert_top_k(&got, &oracle, top_k, "bm25 by document");

                // Exact vector search: brute force over the permitted chunks.
                let mut oracle: Vec<(String, f32)> = model
                    .chunks
                    .iter()
                    .filter(|(id, _)| model.visible_chunk(caller, id))
                    .map(|(id, (text, _))| {
                        (id.clone(), crate::vectors::dot(&qv, &bag(&embed_text("", text))))
                    })
                    .collect();
                oracle.sort_by(|a, b| b.1.total_cmp(&a.1));
                let got = searcher
                    .search_with_vector(
                        &query(qtext, top_k, Mode::Vector, GroupBy::Chunk),
                        caller,
                        Some(Ok(qv.clone())),
                    )
                    .unwrap();
                let got: Vec<(String, f32)> =
                    got.results.iter().map(|h| (h.chunk_id.clone(), h.score)).collect();
                assert_top_k(&got, &oracle, top_k, "vector");
                let raw: Vec<(String, f32)> = searcher
                    .retrieve(qtext, Mode::Vector, Some(&qv), top_k, caller, None)
                    .unwrap()
                    .into_iter()
                    .map(|(k, s)| (k.to_string(), s))
                    .collect();
                assert_top_k(&raw, &keyed(&oracle), top_k, "vector retriever");

                // Every mode and grouping: hits name only readable documents, and a chunk hit
                // names exactly the readable documents holding it.
                for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
                    for group_by in [GroupBy::Chunk, GroupBy::Document] {
                        let r = searcher
                            .search_with_vector(
                                &query(qtext, top_k, mode, group_by),
                                caller,
                                (mode != Mode::Bm25).then(|| Ok(qv.clone())),
                            )
                            .unwrap();
                        for h in &r.results {
                            let mut named: BTreeSet<String> = h.also_in.iter().cloned().collect();
                            named.insert(h.doc_id.clone());
                            for d in &named {
                                prop_assert!(
                                    model.readable(caller, d),
                                    "{mode:?}/{group_by:?}: {caller:?} got {d} (acl {:?})",
                                    model.acl[d]
                                );
                            }
                            prop_assert!(model.chunks[&h.chunk_id].1.contains(&h.doc_id));
                            if group_by == GroupBy::Chunk {
                                let readable: BTreeSet<String> = model.chunks[&h.chunk_id]
                                    .1
                                    .iter()
                                    .filter(|d| model.readable(caller, d))
                                    .cloned()
                                    .collect();
                                prop_assert_eq!(named, readable);
                            }
                        }
                    }
                }
            }
        }
        // Counts and listings: exactly the readable documents.
        for caller in &callers {
            let readable: Vec<String> = model
                .acl
                .keys()
                .filter(|d| model.readable(caller, d))
                .cloned()
                .collect();
            let listed: Vec<String> = engine
                .documents("c", caller, None, 1000)
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect();
            prop_assert_eq!(&listed, &readable);
            let stats = engine.stats("c", caller).unwrap();
            prop_assert_eq!(stats.documents, readable.len() as u64);
            let chunks = model
                .chunks
                .keys()
                .filter(|id| model.visible_chunk(caller, id))
                .count();
            prop_assert_eq!(stats.chunks, chunks as u64);
            for d in model.acl.keys() {
                let fetched = engine.document("c", d, caller);
                if model.readable(caller, d) {
                    prop_assert_eq!(&fetched.unwrap().id, d);
                } else {
                    prop_assert!(matches!(fetched, Err(Error::NotFound { .. })), "{d} leaked to {caller:?}");
                }
            }
        }
    }
}

fn reader(user: &str, groups: &[&str]) -> Principal {
    Principal::new(
        user,
        groups.iter().map(|g| g.to_string()).collect(),
        Role::Reader,
    )
}

fn visible_docs(engine: &Engine, caller: &Principal, text: &str) -> BTreeSet<String> {
    let q = query(text, 100, Mode::Hybrid, GroupBy::Document);
    engine
        .searcher("default")
        .unwrap()
        .search(&q, caller)
        .unwrap()
        .results
        .into_iter()
        .map(|h| h.doc_id)
        .collect()
}

#[test]
fn acl_files_apply_to_their_folder_and_an_edit_takes_effect_without_reembedding() {
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = root.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(".quarry-acl.toml", "allow = [\"group:staff\"]\n");
    write(
        "eng/.quarry-acl.toml",
        "allow = [\"group:eng\", \"user:carol\"]\n",
    );
    write("eng/design.txt", "alpha bravo charlie design notes");
    write("eng/deep/more.txt", "alpha delta echo deeper notes");
    write("handbook.txt", "alpha foxtrot golf handbook");
    let engine = Engine::open(data.path(), engine_options(DefaultAcl::admin_only())).unwrap();
    let opts = crate::IngestOptions::default();
    let paths = vec![root.path().to_path_buf()];
    let s = crate::ingest(&engine, &paths, &opts, &crate::NoProgress).unwrap();
    assert_eq!((s.added, s.embedded), (3, 3), "{s:?}");

    let eng = reader("bob", &["eng"]);
    let staff = reader("dave", &["staff"]);
    let carol = reader("carol", &[]);
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        visible_docs(&engine, &eng, "alpha"),
        set(&["eng/deep/more.txt", "eng/design.txt"])
    );
    assert_eq!(visible_docs(&engine, &carol, "alpha").len(), 2);
    assert_eq!(
        visible_docs(&engine, &staff, "alpha"),
        set(&["handbook.txt"])
    );

    // Edit the ACL file only: the next ingest rewrites two ACLs and embeds nothing.
    write("eng/.quarry-acl.toml", "allow = [\"group:staff\"]\n");
    let s = crate::ingest(&engine, &paths, &opts, &crate::NoProgress).unwrap();
    assert_eq!(
        (s.added, s.updated, s.acl_updated, s.unchanged, s.embedded),
        (0, 0, 2, 1, 0),
        "{s:?}"
    );
    assert!(visible_docs(&engine, &eng, "alpha").is_empty());
    assert!(visible_docs(&engine, &carol, "alpha").is_empty());
    assert_eq!(visible_docs(&engine, &staff, "alpha").len(), 3);

    // An invalid ACL file: nothing under it is ingested (or changed), and the skip is counted.
    write("eng/.quarry-acl.toml", "allow = [\"eng\"]\n");
    write("eng/new.txt", "alpha hotel india");
    let s = crate::ingest(&engine, &paths, &opts, &crate::NoProgress).unwrap();
    assert_eq!(s.skipped.get("bad_acl_file"), Some(&3), "{s:?}");
    assert_eq!((s.added, s.acl_updated), (0, 0));
    assert!(
        s.problems
            .iter()
            .any(|p| p.message.contains("user:ID, group:ID or public")),
        "{:?}",
        s.problems
    );
    assert_eq!(visible_docs(&engine, &staff, "alpha").len(), 3);
}

#[test]
fn records_carry_their_own_acl_and_bad_principals_are_skipped() {
    let data = tempfile::tempdir().unwrap();
    let engine = Engine::open(data.path(), engine_options(DefaultAcl::admin_only())).unwrap();
    let records = vec![
        serde_json::json!({"_id": "a", "text": "alpha one", "acl": ["user:ann"]}),
        serde_json::json!({"_id": "b", "text": "alpha two", "acl": ["admins"]}),
        serde_json::json!({"_id": "c", "text": "alpha three"}),
    ];
    let opts = crate::IngestOptions::default();
    let s = crate::ingest_records(&engine, records, &opts, "api").unwrap();
    assert_eq!(s.added, 2);
    assert_eq!(s.skipped.get("bad_acl"), Some(&1), "{s:?}");
    assert_eq!(
        visible_docs(&engine, &reader("ann", &[]), "alpha"),
        BTreeSet::from(["a".to_string()])
    );
    // "c" has no ACL: the default (admins only) hides it from readers, not from an admin
    assert!(visible_docs(&engine, &reader("zed", &[]), "alpha").is_empty());
    assert_eq!(
        visible_docs(&engine, &Principal::local_admin(), "alpha").len(),
        2
    );
    // an ACL change through the API: same content, new ACL, nothing embedded
    let s = crate::ingest_records(
        &engine,
        vec![serde_json::json!({"_id": "a", "text": "alpha one", "acl": ["user:zed"]})],
        &opts,
        "api",
    )
    .unwrap();
    assert_eq!((s.acl_updated, s.embedded), (1, 0), "{s:?}");
    assert!(visible_docs(&engine, &reader("ann", &[]), "alpha").is_empty());
    assert_eq!(visible_docs(&engine, &reader("zed", &[]), "alpha").len(), 1);
}

/// A reader's BM25 scores are those of an index holding only what it may read: they do not move
/// when documents hidden from it are added (else adding a document with a term and watching the
/// scores would tell whether others hold it), while an admin's do.
#[test]
fn a_readers_bm25_scores_are_those_of_an_index_of_what_it_may_read() {
    let visible = [
        "lantern harbor at dusk",
        "the harbor master keeps a lantern lit",
        "orchard marmalade recipe",
        "lantern oil and wicks",
    ];
    let hidden = |i: usize| format!("lantern harbor secret number{i} lantern lantern");
    let eng: Vec<String> = vec!["group:g0".into()];
    let secret: Vec<String> = vec!["user:u9".into()];
    let mine = Engine::open(
        tempfile::tempdir().unwrap().keep(),
        engine_options(DefaultAcl::admin_only()),
    )
    .unwrap();
    let alone = Engine::open(
        tempfile::tempdir().unwrap().keep(),
        engine_options(DefaultAcl::admin_only()),
    )
    .unwrap();
    let put = |engine: &Engine, id: &str, text: &str, acl: &[String]| {
        let d = document(id, text, acl);
        let chunks = engine
            .chunker("c")
            .unwrap()
            .chunk(&d.title, &d.text, d.format);
        engine.apply("c", vec![Change::Upsert(d, chunks)]).unwrap();
    };
    for (i, t) in visible.iter().enumerate() {
        put(&mine, &format!("v{i}"), t, &eng);
        put(&alone, &format!("v{i}"), t, &eng);
    }
    for i in 0..3 {
        put(&mine, &format!("h{i}"), &hidden(i), &secret);
    }
    let erin = reader("erin", &["g0"]);
    let admin = Principal::local_admin();
    let scores = |engine: &Engine, caller: &Principal, q: &str| -> Vec<(String, f32)> {
        engine
            .searcher("c")
            .unwrap()
            .search(&query(q, 10, Mode::Bm25, GroupBy::Document), caller)
            .unwrap()
            .results
            .into_iter()
            .map(|h| (h.doc_id, h.score))
            .collect()
    };
    let queries = [
        "lantern",
        "harbor lantern",
        "marmalade",
        "lantern wicks dusk",
    ];
    let before: Vec<_> = queries.iter().map(|q| scores(&mine, &erin, q)).collect();
    let admin_before: Vec<_> = queries.iter().map(|q| scores(&mine, &admin, q)).collect();
    for (q, got) in queries.iter().zip(&before) {
        let want = scores(&alone, &admin, q);
        assert_eq!(
            got.iter().map(|h| &h.0).collect::<Vec<_>>(),
            want.iter().map(|h| &h.0).collect::<Vec<_>>(),
            "{q}"
        );
        for ((_, g), (_, w)) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{q}: {got:?} vs {want:?}"
            );
        }
    }
    for i in 3..40 {
        put(&mine, &format!("h{i}"), &hidden(i), &secret);
    }
    let after: Vec<_> = queries.iter().map(|q| scores(&mine, &erin, q)).collect();
    assert_eq!(
        before, after,
        "a reader's scores moved when hidden documents were added"
    );
    let admin_after: Vec<_> = queries.iter().map(|q| scores(&mine, &admin, q)).collect();
    assert_ne!(
        admin_before, admin_after,
        "(the hidden documents do change the index)"
    );
}
