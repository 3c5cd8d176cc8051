//! PDF, Word and HTML documents end to end: `quarry ingest` of a folder holding the committed
//! fixtures (`tests/fixtures/formats`: a three-page PDF, a PDF with kerned and compressed text, a
//! Word document with headings, a web page with its navigation, banner, sidebar and footer) and
//! their damaged kin (encrypted, scanned, truncated), then queries: each damaged file is skipped
//! with its reason, a PDF hit's citation names its page, a Word hit's its heading path, and no
//! boilerplate of the page is found.

use crate::{doc_ids, path_str, run, run_json, tmp};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats")
}

/// Copies the named fixtures into `dir` (a missing fixture fails the test).
fn copy(dir: &std::path::Path, names: &[&str]) {
    for name in names {
        let from = fixtures().join(name);
        std::fs::copy(&from, dir.join(name))
            .unwrap_or_else(|e| panic!("fixture {} is missing: {e}", from.display()));
    }
}

fn cited(data: &std::path::Path, text: &str) -> serde_json::Value {
    run_json(
        data,
        &[
            "query",
            text,
            "--mode",
            "bm25",
            "--citation",
            "--json",
            "--top-k",
            "10",
        ],
    )
}

/// The hit of a query for `word` whose own text holds it (BM25 scores a chunk with its context,
/// which reaches into neighbouring pages and sections, so the top hit may be a neighbour).
fn hit_holding(data: &std::path::Path, word: &str) -> serde_json::Value {
    let r = cited(data, word);
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["text"].as_str().unwrap().to_lowercase().contains(word))
        .unwrap_or_else(|| panic!("no hit holds {word}: {r:#}"))
        .clone()
}

#[test]
fn pdf_docx_and_html_are_ingested_and_damaged_files_are_skipped() {
    let root = tmp();
    let data = tmp();
    copy(
        root.path(),
        &[
            "multipage.pdf",
            "kerned.pdf",
            "handbook.docx",
            "article.html",
            "encrypted.pdf",
            "scanned.pdf",
            "truncated.pdf",
            "encrypted.docx",
            "truncated.docx",
        ],
    );
    let out = run(data.path(), &["ingest", &path_str(root.path()), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // a reader's panic is a skip reason, not a message on the terminal
    assert!(!stderr.contains("panicked"), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["added"], 4, "{s:#}");
    for (reason, n) in [
        ("encrypted", 2),
        ("no_text_layer", 1),
        ("malformed_pdf", 1),
        ("malformed_docx", 1),
    ] {
        assert_eq!(s["skipped"][reason], n, "{reason}: {s:#}");
    }
    assert_eq!(
        s["skipped"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        5,
        "{s:#}"
    );
    let problem = |path: &str| {
        s["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["path"].as_str().unwrap().ends_with(path))
            .unwrap_or_else(|| panic!("no problem for {path}: {s:#}"))
            .clone()
    };
    assert_eq!(problem("scanned.pdf")["reason"], "no_text_layer");
    assert!(
        problem("scanned.pdf")["message"]
            .as_str()
            .unwrap()
            .contains("OCR"),
        "{s:#}"
    );
    assert_eq!(problem("truncated.pdf")["reason"], "malformed_pdf");

    // a PDF hit names its page
    for (word, page) in [("lighthouse", 1), ("glacier", 2), ("orchard", 3)] {
        let hit = hit_holding(data.path(), word);
        assert_eq!(hit["doc_id"], "multipage.pdf", "{word}: {hit:#}");
        assert_eq!(hit["citation"]["page"], page, "{word}: {hit:#}");
    }
    assert_eq!(
        cited(data.path(), "dredging")["results"][0]["doc_id"],
        "kerned.pdf"
    );
    // a Word hit names its headings
    // (a chunk has the heading path of its first line; the unit tests split finer)
    for (word, path) in [
        ("freezing", serde_json::json!(["Equipment"])),
        ("radio", serde_json::json!(["Safety"])),
    ] {
        let hit = hit_holding(data.path(), word);
        assert_eq!(hit["doc_id"], "handbook.docx", "{hit:#}");
        assert_eq!(hit["title"], "Field handbook", "{hit:#}");
        assert_eq!(hit["citation"]["heading_path"], path, "{hit:#}");
    }
    let hit = hit_holding(data.path(), "radio");
    assert!(hit["citation"].get("page").is_none(), "{hit:#}");
    // the page's article is found, its boilerplate is not
    let ids = |text: &str| doc_ids(&cited(data.path(), text));
    let found = ids("throughstones hearting");
    assert!(
        !found.is_empty() && found.iter().all(|d| d == "article.html"),
        "{found:?}"
    );
    for boilerplate in [
        "workshops",
        "billhook",
        "copyright",
        "charity",
        "percent",
        "archive",
    ] {
        assert!(ids(boilerplate).is_empty(), "{boilerplate} was indexed");
    }
    // the text output shows the page too (of the top hit, which BM25's context may take from a
    // neighbouring page)
    let out = run(
        data.path(),
        &[
            "query",
            "glacier",
            "--mode",
            "bm25",
            "--citation",
            "--top-k",
            "1",
        ],
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("multipage.pdf") && shown.contains(".pdf p. "),
        "{shown}"
    );

    // a rerun changes nothing and reads no PDF again
    let again = run_json(data.path(), &["ingest", &path_str(root.path()), "--json"]);
    assert_eq!(again["unchanged"], 4, "{again:#}");
    assert_eq!(again["added"], 0, "{again:#}");
}
