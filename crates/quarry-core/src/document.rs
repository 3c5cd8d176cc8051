//! Documents: what ingest extracts from a file or a JSONL record, before chunking.

use crate::hash::ContentHash;

/// The format a document's text came from; decides the chunker (Markdown-aware or plain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocFormat {
    Text,
    Markdown,
    Html,
    /// A PDF's text layer: its pages in order, separated by a form feed (`\u{c}`), as
    /// `pdftotext` writes them; chunks never cross a page and carry its number.
    Pdf,
    /// A Word document (`.docx`): its paragraphs, headings written as Markdown ATX headings
    /// (`#` for Heading 1, …), so chunks carry a heading path as Markdown's do.
    Docx,
    /// A BEIR-style JSONL record or a document sent through the HTTP API.
    Record,
}

impl DocFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DocFormat::Text => "text",
            DocFormat::Markdown => "markdown",
            DocFormat::Html => "html",
            DocFormat::Pdf => "pdf",
            DocFormat::Docx => "docx",
            DocFormat::Record => "record",
        }
    }

    /// The format named by [`DocFormat::as_str`].
    pub fn parse(s: &str) -> Option<DocFormat> {
        [
            DocFormat::Text,
            DocFormat::Markdown,
            DocFormat::Html,
            DocFormat::Pdf,
            DocFormat::Docx,
            DocFormat::Record,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }

    /// Whether chunks of this format carry a heading path (Markdown's ATX headings).
    pub fn has_headings(self) -> bool {
        matches!(self, DocFormat::Markdown | DocFormat::Docx)
    }
}

/// What separates the pages of a [`DocFormat::Pdf`] document's text.
pub const PAGE_BREAK: char = '\u{c}';

/// An extracted document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Stable id: the path relative to the ingest root (`/`-separated) for files, `_id` for records.
    pub doc_id: String,
    pub title: String,
    /// The extracted text; chunk offsets are byte offsets into it.
    pub text: String,
    /// Where the document came from: the original file path, or `api`.
    pub source: String,
    pub format: DocFormat,
    /// Free-form JSON object carried with the document.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Allow-list of principals (`user:ID`, `group:ID`, `public`); empty means "the default ACL".
    pub acl: Vec<String>,
    /// blake3 of the raw bytes the document was read from.
    pub content_hash: ContentHash,
}
