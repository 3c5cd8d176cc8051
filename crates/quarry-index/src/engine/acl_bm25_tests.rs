//! BM25 for a caller restricted by its ACL takes shortcuts: no restriction when it may read
//! every chunk, and an unrestricted search oversampled and filtered when it may read a good part
//! of them. Each answer must equal the restricted query's own (the same scores bit for bit), for
//! callers who read every chunk, a half, a tenth and a two-hundredth, at several depths, with a
//! query whose best chunks the small groups may not read (the shortcut finds too few and the
//! restricted query answers).

use super::acl_tests::engine_options;
use super::*;
use quarry_core::{ChunkOptions, ChunkSizer, DefaultAcl, Document, Principal, Role};
use std::collections::BTreeSet;

const DOCS: usize = 2400;
const WORDS: [&str; 8] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
];

/// Document `i`: a few words chosen by `i` (so scores vary and tie), its own word, and `zeta`
/// four times in the chunks only the `all` and `half` groups read, once in the others.
fn document(i: usize) -> Document {
    let mut words: Vec<String> = (0..1 + i % 5)
        .map(|j| WORDS[(i * 7 + j * 3) % WORDS.len()].to_owned())
        .collect();
    words.push(format!("doc{i}"));
    let zetas = if i.is_multiple_of(10) { 1 } else { 4 };
    words.extend(std::iter::repeat_n("zeta".to_owned(), zetas));
    let mut acl = vec!["group:all".to_owned()];
    for (group, every) in [("half", 2), ("tenth", 10), ("rare", 200)] {
        if i.is_multiple_of(every) {
            acl.push(format!("group:{group}"));
        }
    }
    Document {
        acl: quarry_core::acl::normalize_acl(&acl).unwrap(),
        ..crate::test_support::doc(&format!("d{i}"), &words.join(" "))
    }
}

#[test]
fn restricted_bm25_shortcuts_answer_like_the_restricted_query() {
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions {
        chunk: ChunkOptions {
            max_tokens: 400,
            overlap: 0,
            sizer: ChunkSizer::Chars,
            context_chars: 0,
        },
        ..engine_options(DefaultAcl::admin_only())
    };
    let engine = Engine::open(dir.path(), options).unwrap();
    let chunker = engine.chunker("c").unwrap();
    let changes = (0..DOCS)
        .map(|i| {
            let d = document(i);
            let chunks = chunker.chunk(&d.title, &d.text, d.format);
            assert_eq!(chunks.len(), 1);
            Change::Upsert(d, chunks)
        })
        .collect();
    engine.apply("c", changes).unwrap();
    let searcher = engine.searcher("c").unwrap();
    let mut paths = BTreeSet::new();
    for group in ["all", "half", "tenth", "rare"] {
        let caller = Principal::new("u".to_owned(), vec![group.to_owned()], Role::Reader);
        for text in ["zeta", "alpha bravo", "zeta hotel golf", "echo alpha doc7"] {
            for limit in [1, 7, 30, 150] {
                let (fast, path, restricted) =
                    searcher.bm25_tops_for_tests(text, &caller, limit).unwrap();
                let what = format!("{group} {text:?} top {limit} by {path:?}");
                // The same scores bit for bit (each path sums a chunk's term scores in the
                // query's order, `bm25::maxscore`) and the same order (ties by chunk key).
                assert_eq!(fast, restricted, "{what}");
                assert!(
                    !fast.is_empty(),
                    "{what}: the caller reads chunks that match"
                );
                paths.insert(format!("{group} {path:?}"));
            }
        }
    }
    let want = [
        "all Everything",
        "half Oversampled",
        "tenth Oversampled",
        "tenth Restricted",
        "rare Restricted",
    ];
    for p in want {
        assert!(paths.contains(p), "no query went {p}: {paths:?}");
    }
}
