//! Tests of the PDF and Word readers on the committed fixtures (`tests/fixtures/formats`, made
//! by its `make_fixtures.py`): PDF text against `pdftotext`'s (Debian's poppler-utils), a token
//! F1 of at least 0.95 per fixture and per page, with pdftotext's committed output as the oracle
//! (and, where pdftotext is installed, a check that the committed output is still what it
//! writes); the heading paths of a Word document; the reasons damaged files are skipped with;
//! and damaged variants of a good PDF that must each end in a document or a reason, never a
//! panic or a hang.

use super::binary::read_binary;
use super::pdf::extract_pdf;
use quarry_core::{ChunkOptions, ChunkSizer, Chunker, DocFormat};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);
/// The PDFs with a text layer, each with its oracle `<name>.pdftotext.txt`.
const TEXT_PDFS: &[&str] = &["multipage.pdf", "kerned.pdf"];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/formats")
}

/// A fixture's bytes; a missing fixture fails the test (it is committed).
fn fixture(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {} is missing ({e}); it is committed, or made by make_fixtures.py",
            path.display()
        )
    })
}

/// Lower-cased runs of letters and digits.
fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Token-level F1 of `got` against `want`, counting repeated tokens (bag of words).
fn f1(got: &[String], want: &[String]) -> f64 {
    if got.is_empty() && want.is_empty() {
        return 1.0;
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for t in want {
        *counts.entry(t).or_default() += 1;
    }
    let mut common = 0;
    for t in got {
        if let Some(c) = counts.get_mut(t.as_str())
            && *c > 0
        {
            *c -= 1;
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / got.len() as f64;
    let recall = common as f64 / want.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

#[test]
fn f1_counts_tokens_as_a_bag() {
    let t = |s: &str| tokens(s);
    assert_eq!(f1(&t("a b c"), &t("A, b; c.")), 1.0);
    assert_eq!(f1(&t("a a"), &t("a")), 2.0 * 0.5 * 1.0 / 1.5);
    assert_eq!(f1(&t("x"), &t("y")), 0.0);
}

#[test]
fn pdf_text_matches_pdftotext() {
    for name in TEXT_PDFS {
        let oracle_path = dir().join(format!("{name}.pdftotext.txt"));
        let oracle = String::from_utf8(fixture(&format!("{name}.pdftotext.txt"))).unwrap();
        let pdf = extract_pdf(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let whole = f1(&tokens(&pdf.text()), &tokens(&oracle));
        // pdftotext ends every page with a form feed
        let mut want_pages: Vec<&str> = oracle.split('\u{c}').collect();
        if want_pages.last().is_some_and(|p| p.trim().is_empty()) {
            want_pages.pop();
        }
        assert_eq!(pdf.pages.len(), want_pages.len(), "{name}: pages");
        let per_page: Vec<f64> = pdf
            .pages
            .iter()
            .zip(&want_pages)
            .map(|(got, want)| f1(&tokens(got), &tokens(want)))
            .collect();
        eprintln!("{name}: token F1 against pdftotext {whole:.4}, per page {per_page:.4?}");
        assert!(whole >= 0.95, "{name}: token F1 {whole:.4} < 0.95");
        for (i, f) in per_page.iter().enumerate() {
            assert!(*f >= 0.95, "{name} page {}: token F1 {f:.4} < 0.95", i + 1);
        }
        // where pdftotext is installed, the committed oracle must be what it writes today
        match std::process::Command::new("pdftotext")
            .args(["-enc", "UTF-8"])
            .arg(dir().join(name))
            .arg("-")
            .output()
        {
            Ok(out) => {
                assert!(out.status.success(), "pdftotext failed on {name}");
                // tokens and pages, not bytes: poppler versions differ in blank lines
                let fresh = String::from_utf8_lossy(&out.stdout);
                assert_eq!(
                    (tokens(&fresh), fresh.matches('\u{c}').count()),
                    (tokens(&oracle), oracle.matches('\u{c}').count()),
                    "{} is stale: run tests/fixtures/formats/make_fixtures.py",
                    oracle_path.display()
                );
            }
            Err(e) => {
                eprintln!("pdftotext not run ({e}): {name} compared with the committed oracle only")
            }
        }
    }
}

#[test]
fn pdf_pages_and_title_reach_the_chunks() {
    let (b, warnings) =
        read_binary(DocFormat::Pdf, fixture("multipage.pdf"), "stem", LIMIT).unwrap();
    assert_eq!(b.title, "stem", "the fixture has no /Title");
    assert!(warnings.is_empty(), "{warnings:?}");
    let chunker = Chunker::new(
        ChunkOptions {
            max_tokens: 40,
            overlap: 8,
            sizer: ChunkSizer::Chars,
            context_chars: 0,
        },
        None,
    )
    .unwrap();
    let chunks = chunker.chunk(&b.title, &b.text, DocFormat::Pdf);
    for (word, page) in [("lighthouse", 1), ("glacier", 2), ("orchard", 3)] {
        let c = chunks
            .iter()
            .find(|c| c.text.to_lowercase().contains(word))
            .unwrap_or_else(|| panic!("no chunk holds {word}: {chunks:?}"));
        assert_eq!(c.page, Some(page), "{word}: {c:?}");
    }
    assert!(chunks.iter().all(|c| matches!(c.page, Some(1..=3))));
}

#[test]
fn docx_paragraphs_and_heading_paths() {
    let (b, _) = read_binary(DocFormat::Docx, fixture("handbook.docx"), "stem", LIMIT).unwrap();
    assert_eq!(b.title, "Field handbook");
    for want in [
        "Field handbook\n\nThis handbook collects",
        "\n\n# Equipment\n\nEvery crew carries",
        "\n\n## Calibration\n\n",
        "\n\n### Cold weather\n\n",
        "on the ice & everyone checks in",
    ] {
        assert!(b.text.contains(want), "{want:?} not in {:?}", b.text);
    }
    let chunker = Chunker::new(
        ChunkOptions {
            max_tokens: 20,
            overlap: 0,
            sizer: ChunkSizer::Chars,
            context_chars: 0,
        },
        None,
    )
    .unwrap();
    let chunks = chunker.chunk(&b.title, &b.text, DocFormat::Docx);
    let path_of = |word: &str| {
        chunks
            .iter()
            .find(|c| c.text.contains(word))
            .map(|c| c.heading_path.clone())
            .unwrap_or_else(|| panic!("no chunk holds {word}: {chunks:?}"))
    };
    assert_eq!(
        path_of("freezing"),
        ["Equipment", "Calibration", "Cold weather"]
    );
    assert_eq!(path_of("radio"), ["Safety"]);
    assert!(path_of("collects").is_empty());
}

#[test]
fn damaged_files_are_skipped_with_their_reason() {
    for (name, format, reason) in [
        ("encrypted.pdf", DocFormat::Pdf, "encrypted"),
        ("scanned.pdf", DocFormat::Pdf, "no_text_layer"),
        ("truncated.pdf", DocFormat::Pdf, "malformed_pdf"),
        ("encrypted.docx", DocFormat::Docx, "encrypted"),
        ("truncated.docx", DocFormat::Docx, "malformed_docx"),
        // a Word document is no PDF, and the other way round
        ("handbook.docx", DocFormat::Pdf, "malformed_pdf"),
        ("multipage.pdf", DocFormat::Docx, "malformed_docx"),
    ] {
        let e = read_binary(format, fixture(name), "stem", LIMIT).unwrap_err();
        assert_eq!(e.reason, reason, "{name}: {e:?}");
        assert!(!e.message.is_empty());
    }
    let e = read_binary(DocFormat::Pdf, Vec::new(), "stem", LIMIT).unwrap_err();
    assert_eq!(e.reason, "malformed_pdf");
}

/// Damaged variants of good files (cut short at many points, bytes overwritten) each give a
/// document or a known reason, in bounded time: never a panic that escapes, never a hang.
#[test]
fn damaged_variants_never_escape() {
    let known = [
        "malformed_pdf",
        "no_text_layer",
        "encrypted",
        "malformed_docx",
        "timeout",
    ];
    for (name, format) in [
        ("multipage.pdf", DocFormat::Pdf),
        ("kerned.pdf", DocFormat::Pdf),
        ("handbook.docx", DocFormat::Docx),
    ] {
        let good = fixture(name);
        let mut variants: Vec<Vec<u8>> = (1..20)
            .map(|i| good[..good.len() * i / 20].to_vec())
            .collect();
        for i in 1..20 {
            let mut v = good.clone();
            let at = v.len() * i / 20;
            for b in &mut v[at..(at + 16).min(good.len())] {
                *b = b.wrapping_mul(31).wrapping_add(7);
            }
            variants.push(v);
        }
        let (mut read, mut skipped) = (0, 0);
        for v in variants {
            match read_binary(format, v, "stem", LIMIT) {
                Ok(_) => read += 1,
                Err(e) => {
                    assert!(known.contains(&e.reason), "{name}: {e:?}");
                    skipped += 1;
                }
            }
        }
        eprintln!("{name}: {read} damaged variants read, {skipped} skipped");
        assert!(skipped > 0, "{name}: no variant was refused");
    }
}

#[test]
fn html_page_keeps_its_article_and_drops_its_boilerplate() {
    let raw = String::from_utf8(fixture("article.html")).unwrap();
    let (title, text) = super::html::html(&raw, "stem");
    assert_eq!(title, "Restoring a dry-stone wall | Countryside Crafts");
    let chunker = Chunker::new(
        ChunkOptions {
            max_tokens: 30,
            overlap: 5,
            sizer: ChunkSizer::Chars,
            context_chars: 0,
        },
        None,
    )
    .unwrap();
    let chunks = chunker.chunk(&title, &text, DocFormat::Html);
    let all = chunks
        .iter()
        .map(|c| c.text.to_lowercase())
        .collect::<Vec<_>>()
        .join("\n");
    // the article, its headline and byline (its own header) included
    for kept in [
        "restoring a dry-stone wall",
        "morwenna pascoe",
        "batter frames",
        "throughstones spans the full width",
    ] {
        assert!(all.contains(kept), "{kept:?} is missing from {all:?}");
    }
    // site header, search, navigation, banner, breadcrumbs, the article's pull-quote aside,
    // the sidebar, the site footer, the legal strip, scripts and hidden links
    for dropped in [
        "countryside crafts",
        "search the archive",
        "workshops",
        "newsletter",
        "spring sale",
        "guides",
        "hedge-laying",
        "popular this week",
        "billhook",
        "copyright",
        "privacy policy",
        "charity",
        "datalayer",
        "skip to content",
    ] {
        assert!(!all.contains(dropped), "{dropped:?} is in {all:?}");
    }
}
