//! Property-based fuzzing of the ingest parsers, the same entry points as the AFL++ targets in
//! `fuzz/` (`jsonl`, `extract`, `acl_file`): inputs built from the syntax each parser knows (JSON
//! records with fields of every type, HTML and Markdown constructs, ACL files) and arbitrary
//! bytes. Each fails only on a panic or a broken invariant; errors are fine. 256 cases each in CI;
//! `PROPTEST_CASES=20000 cargo test --release -p quarry-index ingest::fuzz_tests` for a long run.

use super::documents::read_jsonl_bytes;
use super::extract::extract;
use super::walk::parse_acl_file;
use proptest::prelude::*;
use quarry_core::{ChunkOptions, ChunkSizer, Chunker, DocFormat};

fn chunker() -> Chunker {
    let options = ChunkOptions {
        max_tokens: 16,
        overlap: 4,
        sizer: ChunkSizer::Chars,
        ..ChunkOptions::default()
    };
    Chunker::new(options, None).unwrap()
}

/// Text of the kinds that trouble parsers: empty, spaces, control and combining characters,
/// quotes and backslashes, long words, and anything.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("   \t".to_owned()),
        "[a-z ]{1,40}",
        "[\\x00-\\x1f\"\\\\{}\\[\\]:,]{1,10}",
        Just("e\u{301}\u{200b}\u{feff}\u{10ffff}".to_owned()),
        Just("x".repeat(500)),
        any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn principal() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just("public".to_owned()),
        "(user|group|role):[a-z]{0,4}",
        text(),
    ]
    .prop_map(serde_json::Value::from)
}

/// One JSONL line: a record with some of its fields, of the right type or not; cut short; or
/// arbitrary.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        ("_id", json_value()),
        ("id", json_value()),
        ("_id", text().prop_map(serde_json::Value::from)),
        ("title", text().prop_map(serde_json::Value::from)),
        ("text", text().prop_map(serde_json::Value::from)),
        (
            "acl",
            prop::collection::vec(principal(), 0..3).prop_map(serde_json::Value::from)
        ),
        ("acl", json_value()),
        ("metadata", json_value()),
        ("other", json_value()),
    ];
    let record = prop::collection::vec(field, 0..6).prop_map(|fields| {
        let map: serde_json::Map<String, serde_json::Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        serde_json::Value::Object(map).to_string().into_bytes()
    });
    prop_oneof![
        6 => record.clone(),
        1 => (record, any::<prop::sample::Index>()).prop_map(|(mut l, at)| {
            l.truncate(at.index(l.len() + 1));
            l
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// HTML and Markdown constructs, in any order.
fn markup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<html>"),
        Just("<head>"),
        Just("<title>"),
        Just("</title>"),
        Just("</head>"),
        Just("<body>"),
        Just("<p>"),
        Just("</p>"),
        Just("<br>"),
        Just("<script>"),
        Just("</script>"),
        Just("<style>"),
        Just("</style>"),
        Just("<!-- c -->"),
        Just("<![CDATA[x]]>"),
        Just("<table><tr><td>"),
        Just("</td></tr></table>"),
        Just("<pre>"),
        Just("&amp;"),
        Just("&#x0;"),
        Just("&bogus;"),
        Just("<a href=\"x\">"),
        Just("<noscript>"),
        Just("<template>"),
        Just("<svg><title>"),
        Just("---\n"),
        Just("title: "),
        Just("# "),
        Just("## "),
        Just("```\n"),
        Just("~~~"),
        Just("- "),
        Just("1. "),
        Just("> "),
        Just("| a | b |\n|---|---|\n"),
        Just("[l](u)"),
        Just("![i](u)"),
        Just("\n"),
        Just("\r\n"),
        Just("\t"),
        Just("    "),
        Just("word "),
        Just("\u{feff}"),
        Just("é"),
        Just("<"),
        Just(">"),
        Just("`"),
    ];
    prop_oneof![
        4 => prop::collection::vec(piece.prop_map(str::to_owned), 0..40).prop_map(|v| v.concat()),
        1 => any::<String>(),
    ]
}

proptest! {
    #[test]
    fn fuzz_jsonl_reader_never_panics(lines in prop::collection::vec(line(), 0..8), crlf in any::<bool>()) {
        let mut bytes = Vec::new();
        for l in &lines {
            bytes.extend_from_slice(l);
            bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        let (upserts, skipped) = read_jsonl_bytes(&bytes, &chunker(), 4096);
        // (arbitrary bytes may hold newlines of their own)
        prop_assert!(upserts + skipped <= bytes.split_inclusive(|&b| b == b'\n').count());
    }

    #[test]
    fn fuzz_extractors_never_panic_and_chunks_point_at_their_text(
        format in prop_oneof![Just(DocFormat::Text), Just(DocFormat::Markdown), Just(DocFormat::Html)],
        raw in markup(),
    ) {
        let out = extract(format, &raw, "fallback");
        for c in chunker().chunk(&out.title, &out.text, format) {
            prop_assert_eq!(out.text.get(c.start..c.end), Some(c.text.as_str()));
        }
    }

    #[test]
    fn fuzz_acl_files_never_panic(
        text in prop_oneof![
            prop::collection::vec(principal(), 0..4)
                .prop_map(|p| format!("allow = {}\n", serde_json::Value::from(p))),
            "allow = \\[\"[a-z:]{0,10}\"\\]\n(extra = 1\n)?",
            any::<String>(),
        ],
    ) {
        if let Ok(acl) = parse_acl_file(&text) {
            prop_assert!(!acl.is_empty());
            prop_assert_eq!(quarry_core::acl::normalize_acl(&acl).ok(), Some(acl));
        }
    }
}
