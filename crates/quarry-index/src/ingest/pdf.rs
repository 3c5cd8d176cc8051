//! PDF text extraction, page by page, with `pdf-extract` (over `lopdf`; both pure Rust).
//!
//! Why `pdf-extract`: it is the maintained pure-Rust crate that turns a PDF's text layer into
//! reading-order text with font encodings applied (simple fonts with `Differences`, Type 1 and
//! CFF built-in encodings, `ToUnicode` CMaps, CID fonts), which raw `lopdf::Document::extract_text`
//! does not; `pdf` (pdf-rs) reads the structure but leaves text assembly to the caller; bindings
//! to pdfium or poppler are C/C++. Its weakness is robustness: on damaged or unusual files it can
//! panic, and a content stream can make it loop. So every extraction runs under
//! [`super::guarded::guarded`] (a panic is `malformed_pdf`, a missed deadline `timeout`), and the
//! file size is bounded before (`ingest.max_file_bytes`).
//!
//! The document's text is its pages' texts joined by a form feed ([`quarry_core::document::PAGE_BREAK`]),
//! as `pdftotext` writes them; the chunker splits each page on its own and gives every chunk its
//! page number. A file is skipped, never half-read, with one of these reasons:
//!
//! * `encrypted`: it needs a password (a file encrypted with an empty user password, which any
//!   viewer opens, is read);
//! * `no_text_layer`: no page has text (a scan or images only: it needs OCR first);
//! * `malformed_pdf`: not a PDF, damaged (truncated, a broken cross-reference table), or no
//!   page could be read.
//!
//! A page that fails while others succeed is left empty and counted in [`PdfText::failed_pages`]
//! (a warning of the document).

use super::guarded::Unreadable;
use pdf_extract::{Document, Error as PdfError, OutputError, PlainTextOutput, output_doc_page};
use quarry_core::document::PAGE_BREAK;

/// The text layer of a PDF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PdfText {
    /// The text of each page, in order (empty for a page without text).
    pub pages: Vec<String>,
    /// The document's `/Title` from its information dictionary, if any.
    pub title: Option<String>,
    /// Pages whose content could not be read (1-based).
    pub failed_pages: Vec<u32>,
}

impl PdfText {
    /// The pages joined by [`PAGE_BREAK`]s: the document text the chunker splits by page.
    pub(crate) fn text(&self) -> String {
        let mut sep = [0u8; 4];
        self.pages.join(&*PAGE_BREAK.encode_utf8(&mut sep))
    }
}

/// Where the `%PDF-` header may start: readers accept a little junk before it.
const HEADER_WITHIN: usize = 1024;

/// Reads the text layer of the PDF in `bytes`. Call it through [`super::guarded::guarded`]: the
/// reader may panic or loop on hostile input.
pub(crate) fn extract_pdf(bytes: &[u8]) -> Result<PdfText, Unreadable> {
    let head = &bytes[..bytes.len().min(HEADER_WITHIN)];
    if !head.windows(5).any(|w| w == b"%PDF-") {
        return Err(Unreadable::new(
            "malformed_pdf",
            "no %PDF- header: not a PDF file",
        ));
    }
    let mut doc = Document::load_mem(bytes).map_err(|e| match e {
        PdfError::Decryption(_) | PdfError::InvalidPassword => encrypted(),
        e => Unreadable::new("malformed_pdf", format!("could not be read as a PDF: {e}")),
    })?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(encrypted());
    }
    let numbers: Vec<u32> = doc.get_pages().into_keys().collect();
    if numbers.is_empty() {
        return Err(Unreadable::new("malformed_pdf", "the PDF has no pages"));
    }
    let mut pages = Vec::with_capacity(numbers.len());
    let mut failed_pages = Vec::new();
    for n in numbers {
        let mut page = String::new();
        match output_doc_page(&doc, &mut PlainTextOutput::new(&mut page), n) {
            Ok(()) => pages.push(clean(&page)),
            Err(OutputError::PdfError(PdfError::Decryption(_))) => return Err(encrypted()),
            Err(_) => {
                failed_pages.push(n);
                pages.push(String::new());
            }
        }
    }
    if failed_pages.len() == pages.len() {
        return Err(Unreadable::new(
            "malformed_pdf",
            format!("none of its {} pages could be read", pages.len()),
        ));
    }
    if pages.iter().all(|p| p.trim().is_empty()) {
        return Err(Unreadable::new(
            "no_text_layer",
            format!(
                "none of its {} pages has text: a scan or images only; run OCR on it (e.g. \
                 ocrmypdf) and ingest the result",
                pages.len()
            ),
        ));
    }
    Ok(PdfText {
        title: title_of(&doc),
        pages,
        failed_pages,
    })
}

fn encrypted() -> Unreadable {
    Unreadable::new(
        "encrypted",
        "the PDF is encrypted with a password; decrypt it first (e.g. qpdf --decrypt \
         --password=… in.pdf out.pdf)",
    )
}

/// A page's text with page breaks inside it made line breaks (they separate pages only), lines
/// trimmed at their ends, and runs of blank lines made one.
fn clean(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    let mut blank = false;
    for line in page.split(['\n', PAGE_BREAK]) {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank { "\n\n" } else { "\n" });
        }
        blank = false;
        out.push_str(line);
    }
    out
}

/// The `/Title` of the information dictionary, when it is a non-empty string.
fn title_of(doc: &Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let info = match info {
        pdf_extract::Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        pdf_extract::Object::Dictionary(d) => d,
        _ => return None,
    };
    let title = pdf_extract::decode_text_string(info.get(b"Title").ok()?).ok()?;
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    (!title.is_empty()).then_some(title)
}
