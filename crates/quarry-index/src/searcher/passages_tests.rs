//! Tests of highlights, citations and passages: hand-computed ranges, a property test of the
//! ranges' shape, and engines with documents of several chunks (neighbours, edges, merged
//! passages, ACLs).

use super::*;
use crate::engine::{Change, Engine, EngineOptions};
use crate::test_support::doc;
use proptest::prelude::*;
use quarry_core::{
    ChunkOptions, ChunkSizer, DocFormat, Document, Expand, GroupBy, Mode, Principal, Role,
};

/// The analysed terms of `query`, as BM25 searches them.
fn terms_of(query: &str) -> HashSet<String> {
    analysed_terms(query).into_iter().collect()
}

fn marked<'a>(text: &'a str, query: &str) -> Vec<&'a str> {
    highlights(text, &terms_of(query))
        .iter()
        .map(|[a, b]| &text[*a..*b])
        .collect()
}

#[test]
fn highlights_hand_computed() {
    let text = "The runner runs; running RUNS daily.";
    // "runs", "running" and "RUNS" stem to "run"; "runner" stays "runner"
    assert_eq!(
        highlights(text, &terms_of("runs")),
        vec![[11, 15], [17, 24], [25, 29]]
    );
    assert_eq!(marked(text, "run"), ["runs", "running", "RUNS"]);
    // stop words are never terms, so never highlighted
    assert_eq!(marked("the cat and the hat", "the cat"), ["cat"]);
    assert!(highlights("the and of", &terms_of("the and")).is_empty());
    // non-ASCII: folded for matching, ranges of the original bytes
    let text = "Un café crème, brûlée; CAFÉ!";
    let ranges = highlights(text, &terms_of("cafe brulee"));
    assert_eq!(ranges, vec![[3, 8], [17, 25], [27, 32]]);
    assert_eq!(marked(text, "cafe brulee"), ["café", "brûlée", "CAFÉ"]);
    assert!(marked("日本語 text", "text") == ["text"]);
}

proptest! {
    #[test]
    fn highlight_ranges_are_sorted_disjoint_char_ranges_of_query_terms(
        words in prop::collection::vec(
            prop::sample::select(vec![
                "run", "running", "runs", "the", "and", "café", "CAFE", "naïve", "日本",
                "über", "x", "Straße", "ünïcödé", "42", "a-b",
            ]),
            0..30,
        ),
        seps in prop::collection::vec(prop::sample::select(vec![" ", ", ", "—", "\n", "…"]), 30),
        query in prop::sample::subsequence(
            vec!["runs", "the", "cafe", "naive", "uber", "strasse", "42", "b"], 0..4,
        ),
    ) {
        let text: String = words
            .iter()
            .zip(&seps)
            .flat_map(|(w, s)| [*w, *s])
            .collect();
        let terms = terms_of(&query.join(" "));
        let ranges = highlights(&text, &terms);
        let mut last = 0;
        for [a, b] in &ranges {
            prop_assert!(a < b && *b <= text.len());
            prop_assert!(*a >= last, "sorted and disjoint: {ranges:?}");
            prop_assert!(text.is_char_boundary(*a) && text.is_char_boundary(*b));
            // the range alone analyses to one of the query's terms
            let alone = highlights(&text[*a..*b], &terms);
            prop_assert_eq!(alone, vec![[0, b - a]]);
            last = *b;
        }
    }
}

fn piece(start: usize, text: &str) -> Piece {
    Piece {
        start,
        end: start + text.len(),
        text: text.to_owned(),
    }
}

#[test]
fn stitch_skips_overlaps_and_joins_gaps_with_a_newline() {
    let doc = "alpha beta gamma delta";
    // overlapping chunks: "alpha beta" [0, 10), "beta gamma" [6, 16), "delta" [17, 22)
    let pieces = [
        piece(0, "alpha beta"),
        piece(6, "beta gamma"),
        piece(17, "delta"),
    ];
    assert_eq!(
        stitch(&pieces[..2]),
        ("alpha beta gamma".to_owned(), [0, 16])
    );
    assert_eq!(&doc[0..16], "alpha beta gamma");
    assert_eq!(
        stitch(&pieces),
        ("alpha beta gamma\ndelta".to_owned(), [0, 22])
    );
    // a chunk inside another adds nothing
    let inside = [piece(0, "alpha beta"), piece(6, "beta")];
    assert_eq!(stitch(&inside), ("alpha beta".to_owned(), [0, 10]));
    // a multi-byte overlap
    let pieces = [piece(0, "ça été"), piece(4, "été là")];
    assert_eq!(stitch(&pieces), ("ça été là".to_owned(), [0, 13]));
    assert_eq!(stitch(&[]), (String::new(), [0, 0]));
}

// ---------------------------------------------------------------------------------------------
// Engines with real documents.

/// Paragraphs of 25–30 characters: with 8-token (32-character) chunks each is exactly one chunk,
/// and each has a word no other has.
const PARAS: [&str; 6] = [
    "apple orchard in the hills",
    "bright copper kettles shine",
    "crisp winter mornings here",
    "distant thunder rolls again",
    "eager students read papers",
    "fresh bread from the ovens",
];
/// One word of each paragraph of [`PARAS`].
const WORDS: [&str; 6] = [
    "orchard", "kettles", "winter", "thunder", "students", "bread",
];

fn engine(dir: &std::path::Path, overlap: usize) -> Engine {
    let options = EngineOptions {
        chunk: ChunkOptions {
            max_tokens: 8,
            overlap,
            sizer: ChunkSizer::Chars,
            context_chars: 0,
        },
        ..EngineOptions::default()
    };
    Engine::open(dir, options).unwrap()
}

/// Upserts `d`, returning its chunks' `[start, end)` in document order.
fn put(engine: &Engine, d: Document) -> Vec<[usize; 2]> {
    let chunks = engine
        .chunker("c")
        .unwrap()
        .chunk(&d.title, &d.text, d.format);
    let spans = chunks.iter().map(|c| [c.start, c.end]).collect();
    engine.apply("c", vec![Change::Upsert(d, chunks)]).unwrap();
    spans
}

fn query(text: &str, top_k: usize, neighbors: usize) -> QueryOptions {
    QueryOptions::new(text, top_k, Mode::Bm25, GroupBy::Chunk)
        .unwrap()
        .with_view(true, true, Some(Expand { neighbors }))
        .unwrap()
}

fn search(engine: &Engine, q: &QueryOptions, caller: &Principal) -> Vec<Hit> {
    engine
        .searcher("c")
        .unwrap()
        .search(q, caller)
        .unwrap()
        .results
}

/// The document's text over `[start, end)` with every gap between chunks (whitespace no chunk
/// holds) as one newline: what a passage over those chunks holds.
fn expected(text: &str, spans: &[[usize; 2]]) -> String {
    let mut out = String::new();
    let mut end = spans[0][0];
    for [s, e] in spans {
        if *s > end {
            out.push('\n');
        }
        out.push_str(&text[(*s).max(end)..*e]);
        end = *e;
    }
    out
}

#[test]
fn passage_is_the_hit_and_n_neighbours_each_side() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), 0);
    let text = PARAS.join("\n\n");
    let spans = put(&engine, doc("d", &text));
    assert_eq!(spans.len(), PARAS.len(), "{spans:?}");
    let admin = Principal::local_admin();
    for n in [1, 2, 10] {
        for (i, word) in WORDS.iter().enumerate() {
            let hits = search(&engine, &query(word, 1, n), &admin);
            let h = &hits[0];
            assert_eq!(h.offsets, spans[i]);
            let (lo, hi) = (i.saturating_sub(n), (i + n).min(PARAS.len() - 1));
            let p = h.passage.as_ref().unwrap();
            assert_eq!(p.offsets, [spans[lo][0], spans[hi][1]], "n={n} i={i}");
            assert_eq!(p.text, PARAS[lo..=hi].join("\n"));
            assert_eq!(p.text, expected(&text, &spans[lo..=hi]));
            assert_eq!(h.passage_ref, None);
            // the passage's highlight is the word, in the hit's paragraph
            let marks: Vec<&str> = p
                .highlights
                .as_ref()
                .unwrap()
                .iter()
                .map(|[a, b]| &p.text[*a..*b])
                .collect();
            assert_eq!(marks, [*word]);
            assert_eq!(h.highlights.as_ref().unwrap().len(), 1);
            let c = h.citation.as_ref().unwrap();
            assert_eq!((c.doc_id.as_str(), c.offsets), ("d", spans[i]));
            assert_eq!(c.heading_path, None, "a text document has no headings");
        }
    }
}

#[test]
fn contiguous_chunks_give_the_documents_text() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), 3);
    let text = "one two three four five six seven eight nine ten eleven twelve thirteen \
                fourteen fifteen sixteen seventeen eighteen nineteen twenty";
    let spans = put(&engine, doc("d", text));
    assert!(spans.len() >= 5, "{spans:?}");
    let admin = Principal::local_admin();
    let hits = search(&engine, &query("eleven", 1, 2), &admin);
    let h = &hits[0];
    let i = spans.iter().position(|s| *s == h.offsets).unwrap();
    let (lo, hi) = (i.saturating_sub(2), (i + 2).min(spans.len() - 1));
    let p = h.passage.as_ref().unwrap();
    assert_eq!(p.offsets, [spans[lo][0], spans[hi][1]]);
    assert_eq!(p.text, expected(text, &spans[lo..=hi]));
    // with overlap the chunks leave no gap: the passage is the document's text
    assert!(spans.windows(2).all(|w| w[1][0] <= w[0][1]), "{spans:?}");
    assert_eq!(p.text, &text[p.offsets[0]..p.offsets[1]]);
}

#[test]
fn overlapping_passages_are_returned_once_on_the_better_hit() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), 0);
    let text = PARAS.join("\n\n");
    let spans = put(&engine, doc("d", &text));
    let admin = Principal::local_admin();
    // paragraphs 2 and 3, one neighbour each: 1..=3 and 2..=4 overlap, merged to 1..=4
    let hits = search(&engine, &query("winter thunder", 2, 1), &admin);
    assert_eq!(hits.len(), 2);
    let (best, other) = (&hits[0], &hits[1]);
    let p = best.passage.as_ref().unwrap();
    assert_eq!(p.offsets, [spans[1][0], spans[4][1]]);
    assert_eq!(p.text, PARAS[1..=4].join("\n"));
    assert_eq!((other.passage.as_ref(), other.passage_ref), (None, Some(0)));
    // 0 and 5 with two neighbours: 0..=2 and 3..=5 do not overlap, two passages
    let hits = search(&engine, &query("orchard bread", 2, 2), &admin);
    let texts: Vec<&str> = hits
        .iter()
        .map(|h| h.passage.as_ref().unwrap().text.as_str())
        .collect();
    let mut texts = texts.clone();
    texts.sort();
    assert_eq!(texts, [PARAS[0..=2].join("\n"), PARAS[3..=5].join("\n")]);
    // with three, they overlap: one passage of the whole document, on the better hit
    let hits = search(&engine, &query("orchard bread", 2, 3), &admin);
    assert_eq!(hits[0].passage.as_ref().unwrap().text, PARAS.join("\n"));
    assert_eq!(hits[1].passage_ref, Some(0));
    // three hits chained: each overlaps the next only
    let hits = search(&engine, &query("orchard winter students", 3, 1), &admin);
    let owners = hits.iter().filter(|h| h.passage.is_some()).count();
    assert_eq!(owners, 1, "{hits:?}");
    let owner = hits.iter().position(|h| h.passage.is_some()).unwrap();
    assert_eq!(owner, 0);
    assert_eq!(
        hits[0].passage.as_ref().unwrap().text,
        PARAS[0..=5].join("\n")
    );
    assert!(hits[1..].iter().all(|h| h.passage_ref == Some(0)));
    // grouped by document, no two hits share a document: nothing is merged
    let q = QueryOptions::new("orchard winter", 2, Mode::Bm25, GroupBy::Document)
        .unwrap()
        .with_view(false, false, Some(Expand { neighbors: 1 }))
        .unwrap();
    let hits = search(&engine, &q, &admin);
    assert_eq!(hits.len(), 1);
    assert!(hits[0].passage.is_some() && hits[0].highlights.is_none());
}

#[test]
fn a_passage_holds_only_text_of_a_document_the_caller_may_read() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), 0);
    // both documents hold the paragraph "crisp winter mornings here" (one shared chunk)
    let mut public = doc("public", &[PARAS[1], PARAS[2], PARAS[3]].join("\n\n"));
    public.acl = vec!["group:all".into()];
    let mut secret = doc(
        "secret",
        &[PARAS[0], PARAS[2], PARAS[4], PARAS[5]].join("\n\n"),
    );
    secret.acl = vec!["group:board".into()];
    put(&engine, public.clone());
    put(&engine, secret);
    let reader = Principal::new("r", vec!["all".into()], Role::Reader);
    for n in [1, 10] {
        let hits = search(&engine, &query("winter", 10, n), &reader);
        assert_eq!(hits.len(), 1, "{hits:?}");
        let h = &hits[0];
        assert_eq!((h.doc_id.as_str(), h.also_in.len()), ("public", 0));
        let p = h.passage.as_ref().unwrap();
        assert_eq!(p.text, [PARAS[1], PARAS[2], PARAS[3]].join("\n"));
        for word in ["orchard", "students", "bread"] {
            assert!(!p.text.contains(word), "{p:?}");
        }
        let c = h.citation.as_ref().unwrap();
        assert_eq!(c.doc_id, "public");
    }
    // the secret document's own words find nothing for this caller
    assert!(search(&engine, &query("orchard students bread", 10, 10), &reader).is_empty());
    // the board sees its document around the same chunk
    let board = Principal::new("b", vec!["board".into()], Role::Reader);
    let hits = search(&engine, &query("winter", 10, 1), &board);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].doc_id, "secret");
    assert_eq!(
        hits[0].passage.as_ref().unwrap().text,
        [PARAS[0], PARAS[2], PARAS[4]].join("\n")
    );
}

#[test]
fn markdown_citations_carry_the_heading_path() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), 0);
    let text = "# Guide\n\nintro words here\n\n## Install\n\nkettles on linux\n\n## Use\n\nthunder rolls in";
    let mut d = doc("g.md", text);
    d.format = DocFormat::Markdown;
    d.title = "Guide".into();
    put(&engine, d);
    let admin = Principal::local_admin();
    let path = |word: &str| {
        let q = QueryOptions::new(word, 1, Mode::Bm25, GroupBy::Chunk)
            .unwrap()
            .with_view(false, true, None)
            .unwrap();
        let hits = search(&engine, &q, &admin);
        let c = hits[0].citation.clone().unwrap();
        assert_eq!(
            (c.doc_id.as_str(), c.title.as_str(), c.source.as_str()),
            ("g.md", "Guide", "test")
        );
        assert_eq!(c.offsets, hits[0].offsets);
        assert!(hits[0].passage.is_none() && hits[0].highlights.is_none());
        c.heading_path.unwrap()
    };
    assert_eq!(path("intro"), ["Guide"]);
    assert_eq!(path("kettles"), ["Guide", "Install"]);
    assert_eq!(path("thunder"), ["Guide", "Use"]);
}

#[test]
fn heading_path_is_a_filter_field_of_each_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), 0);
    let text = "# Guide\n\nintro words here\n\n## Install\n\nkettles on linux\n\n## Use\n\nthunder rolls in";
    let mut d = doc("g.md", text);
    d.format = DocFormat::Markdown;
    put(&engine, d);
    // the same words in a text document: no heading path
    put(&engine, doc("plain.txt", "kettles thunder intro"));
    let admin = Principal::local_admin();
    let matching = |filter: serde_json::Value| {
        let q = QueryOptions::new("intro kettles thunder", 10, Mode::Bm25, GroupBy::Chunk)
            .unwrap()
            .with_filter(&filter)
            .unwrap();
        // each hit as its document and the query word it holds
        let mut texts: Vec<String> = search(&engine, &q, &admin)
            .into_iter()
            .map(|h| {
                let words = ["intro", "kettles", "thunder"];
                let word = words.iter().find(|w| h.text.contains(*w)).unwrap();
                format!("{}:{word}", h.doc_id)
            })
            .collect();
        texts.sort();
        texts
    };
    let eq = |v: &str| serde_json::json!({"field": "heading_path", "eq": v});
    assert_eq!(matching(eq("Install")), ["g.md:kettles"]);
    assert_eq!(
        matching(eq("Guide")),
        ["g.md:intro", "g.md:kettles", "g.md:thunder"]
    );
    assert_eq!(
        matching(serde_json::json!({"not": eq("Install")})),
        ["g.md:intro", "g.md:thunder", "plain.txt:intro"]
    );
    assert_eq!(
        matching(serde_json::json!({"field": "heading_path", "exists": false})),
        ["plain.txt:intro"]
    );
    assert!(matching(eq("Nowhere")).is_empty());
}
