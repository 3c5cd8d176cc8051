//! Chunking: splitting a document's text into spans for indexing, with the `text-splitter` crate.
//!
//! Sizes are configured in tokens (`max_tokens`, `overlap`). With [`ChunkSizer::Tokens`] (the
//! default) they are tokens of the active embedder's tokenizer, counted by a [`TokenCounter`] the
//! embedder provides; an embedder without a tokenizer, and [`ChunkSizer::Chars`], count characters
//! and convert with [`CHARS_PER_TOKEN`] (4 characters per token, the usual ratio for English text
//! under WordPiece/BPE tokenizers). Markdown is split at Markdown boundaries (headings, blocks), other
//! text at paragraphs, sentences and words. Every chunk keeps the byte offsets of its span in the
//! document text.
//!
//! A chunk is embedded with its document's title in front ([`embed_text`]): a passage rarely
//! repeats what its title says, and the title is what queries match best. The content address is
//! `hash = blake3(embed_text(title, text))`, the text as embedded, so the embedding cache key
//! `(fingerprint, chunk_hash)` names exactly what the model saw.

use crate::document::{DocFormat, PAGE_BREAK};
use crate::error::{Error, Result};
use crate::hash::ContentHash;
use std::sync::Arc;
use text_splitter::{ChunkConfig, MarkdownSplitter, TextSplitter};

/// Counts tokens the way the embedding model does.
pub type TokenCounter = Arc<dyn Fn(&str) -> usize + Send + Sync>;

/// The text the embedder sees for a chunk of a document titled `title`.
pub fn embed_text(title: &str, text: &str) -> String {
    if title.trim().is_empty() {
        text.to_owned()
    } else {
        format!("{title}\n{text}")
    }
}

/// Characters counted as one token by [`ChunkSizer::Chars`].
pub const CHARS_PER_TOKEN: usize = 4;

/// How chunk sizes are measured.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ChunkSizer {
    /// Tokens of the embedder's tokenizer (characters for an embedder without one).
    #[default]
    Tokens,
    /// Characters, `CHARS_PER_TOKEN` to a token.
    Chars,
}

/// Chunking settings of a collection (`[chunk]` in `quarry.toml`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields, default)]
pub struct ChunkOptions {
    /// Largest chunk, in tokens.
    pub max_tokens: usize,
    /// Tokens shared by consecutive chunks.
    pub overlap: usize,
    pub sizer: ChunkSizer,
    /// Characters of the surrounding document text, on each side, that BM25 indexes with a chunk
    /// (its `context` field; see [`context_window`]). 0: the chunk alone.
    pub context_chars: usize,
}

/// Default of [`ChunkOptions::max_tokens`]. Small chunks make precise vectors, and BM25 recovers
/// what they lose through their context ([`DEFAULT_CONTEXT_CHARS`]). Tuned on the SciFact *train*
/// split with all-MiniLM-L6-v2 (nDCG@10, best chunk per document; vector / hybrid at alpha 0.6):
/// 256 tokens without context 0.672 / 0.734, 128 tokens 0.690 / 0.740, 64 tokens (overlap 16)
/// 0.695 / 0.748.
pub const DEFAULT_MAX_TOKENS: usize = 64;
/// Default of [`ChunkOptions::overlap`]: a quarter of a default chunk.
pub const DEFAULT_OVERLAP: usize = 16;
/// Default of [`ChunkOptions::context_chars`]: about 250 tokens on each side, so BM25 scores a
/// chunk by its passage (a paragraph or two; a whole abstract), not by its own few sentences.
/// SciFact *train*, 64-token chunks, nDCG@10 BM25 / hybrid: 500 characters 0.6975 / 0.7462, 1000
/// 0.7027 / 0.7493, 2000 0.7003 / 0.7480 (with 128-token chunks, 1000 to 8000 characters all
/// lie within 0.7005 ± 0.003 for BM25).
pub const DEFAULT_CONTEXT_CHARS: usize = 1000;

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            max_tokens: DEFAULT_MAX_TOKENS,
            overlap: DEFAULT_OVERLAP,
            sizer: ChunkSizer::Tokens,
            context_chars: DEFAULT_CONTEXT_CHARS,
        }
    }
}

/// The span of `text` that BM25 indexes for the chunk at `start..end`: the chunk and up to
/// `chars` characters on each side, cut back to whitespace so no word is split (a side with no
/// whitespace within reach is left out). A span that is not one of `text` (out of bounds, or
/// not on character boundaries) has no context: the empty string.
pub fn context_window(text: &str, start: usize, end: usize, chars: usize) -> &str {
    if start > end
        || end > text.len()
        || !text.is_char_boundary(start)
        || !text.is_char_boundary(end)
    {
        return "";
    }
    let mut from = start;
    if chars > 0 {
        let before = &text[..start];
        if let Some((reach, _)) = before.char_indices().rev().nth(chars - 1) {
            let at_boundary = before[..reach].ends_with(char::is_whitespace);
            if reach > 0 && !at_boundary {
                // the window starts inside a word: begin after the next whitespace
                from = before[reach..]
                    .char_indices()
                    .find(|(_, c)| c.is_whitespace())
                    .map_or(start, |(i, c)| reach + i + c.len_utf8());
            } else {
                from = reach;
            }
        } else {
            from = 0;
        }
    }
    let mut to = end;
    if chars > 0 {
        let after = &text[end..];
        match after.char_indices().nth(chars) {
            None => to = text.len(),
            Some((reach, _)) => {
                let reach = end + reach;
                to = if text[reach..].starts_with(char::is_whitespace) {
                    reach
                } else {
                    // the window ends inside a word: stop at the last whitespace before it
                    text[end..reach]
                        .rfind(char::is_whitespace)
                        .map_or(end, |i| end + i)
                };
            }
        }
    }
    &text[from..to]
}

impl std::fmt::Display for ChunkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizer = match self.sizer {
            ChunkSizer::Tokens => "tokens",
            ChunkSizer::Chars => "chars",
        };
        write!(
            f,
            "max_tokens {}, overlap {}, sizer {sizer}, context_chars {}",
            self.max_tokens, self.overlap, self.context_chars
        )
    }
}

impl ChunkOptions {
    pub fn validate(&self) -> Result<()> {
        if self.max_tokens == 0 || self.max_tokens > 1_000_000 {
            return Err(Error::invalid(
                "chunk.max_tokens",
                format!("{}; use 1 to 1000000", self.max_tokens),
            ));
        }
        if self.context_chars > 1_000_000 {
            return Err(Error::invalid(
                "chunk.context_chars",
                format!("{}; use 0 to 1000000", self.context_chars),
            ));
        }
        if self.overlap >= self.max_tokens {
            return Err(Error::invalid(
                "chunk.overlap",
                format!(
                    "{} must be smaller than chunk.max_tokens ({})",
                    self.overlap, self.max_tokens
                ),
            ));
        }
        Ok(())
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the document, from 0.
    pub ord: u32,
    /// Byte offsets of `text` in the document text: `doc.text[start..end] == text`.
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub hash: ContentHash,
    /// For Markdown, the headings in effect at the chunk's first line, outermost first
    /// ([`crate::markdown::heading_paths`]); empty otherwise. Not part of the hash: the same text
    /// under two headings is one chunk with two occurrences.
    pub heading_path: Vec<String>,
    /// For a PDF, the 1-based page the chunk lies on (a chunk never crosses a page: each page is
    /// split on its own); `None` for other formats. Not part of the hash.
    pub page: Option<u32>,
}

/// The sizer text-splitter calls: characters, or a token counter.
#[derive(Clone)]
enum Sizer {
    Chars,
    Tokens(TokenCounter),
}

impl text_splitter::ChunkSizer for Sizer {
    fn size(&self, chunk: &str) -> usize {
        match self {
            Sizer::Chars => chunk.chars().count(),
            Sizer::Tokens(count) => count(chunk),
        }
    }
}

/// Smallest [`Chunker`] window, in bytes: a text up to this long (and up to
/// [`WINDOW_CHUNKS`] of the largest chunks) goes to the splitter whole.
pub const MIN_WINDOW: usize = 32 * 1024;
/// A window holds about this many of the largest chunks (at [`CHARS_PER_TOKEN`] bytes a token).
pub const WINDOW_CHUNKS: usize = 64;
/// A window in a stretch without paragraph, line or sentence ends holds about this many of the
/// largest chunks.
pub const WEAK_WINDOW_CHUNKS: usize = 8;

/// Boundaries a window may end at, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Boundary {
    Whitespace,
    Sentence,
    Line,
    Paragraph,
}

/// The best place to end a window that starts at `from` and reaches at most `reach` bytes: the
/// end of the strongest boundary in the second half of the reach (the last one of that
/// strength), with its strength. A cut lies after the boundary's whitespace, so the next window
/// starts with the next word; it is never at `from`, and a whitespace cut never at the text's
/// end.
fn best_cut(text: &str, from: usize, reach: usize) -> Option<(usize, Boundary)> {
    let hi = text.floor_char_boundary(from + reach);
    let lo = text.floor_char_boundary(from + reach / 2).max(from);
    let region = &text[lo..hi];
    let at = |i: usize| Some(lo + i);
    let paragraph = region
        .rfind("\n\n")
        .map(|i| i + 2)
        .max(region.rfind("\n\r\n").map(|i| i + 3));
    if let Some(cut) = paragraph.and_then(at) {
        return Some((cut, Boundary::Paragraph));
    }
    if let Some(cut) = region.rfind(['\n', '\r']).and_then(|i| at(i + 1)) {
        return Some((cut, Boundary::Line));
    }
    let mut next: Option<(usize, char)> = None;
    let mut space = None;
    for (i, c) in region.char_indices().rev() {
        if let Some((j, n)) = next
            && n.is_whitespace()
        {
            if matches!(c, '.' | '!' | '?') {
                return Some((lo + j + n.len_utf8(), Boundary::Sentence));
            }
            space = space.or(Some(lo + j + n.len_utf8()));
        }
        next = Some((i, c));
    }
    if let Some((j, n)) = next
        && n.is_whitespace()
    {
        space = space.or(Some(lo + j + n.len_utf8()));
    }
    space
        .filter(|&cut| cut > from && cut < text.len())
        .map(|cut| (cut, Boundary::Whitespace))
}

/// Splits texts according to [`ChunkOptions`]. Cheap to share across threads.
///
/// # Windows
///
/// `text-splitter` is not linear in its input: for every chunk it looks at the first section of
/// each semantic level from the chunk's start, and a section without a boundary of its level
/// (a "sentence" with no sentence end, a "word" with no whitespace) runs to the end of the
/// text; with line breaks it also re-sorts all the line breaks that follow. One megabyte on a
/// single line of words took 20 s, two megabytes 90 s. So a text longer than the window
/// (`max(MIN_WINDOW, WINDOW_CHUNKS × max_tokens × CHARS_PER_TOKEN)` bytes) is cut into windows
/// and each window is split on its own, its chunks' offsets shifted to the document:
///
/// * a window ends at the best boundary in the second half of its reach: the last paragraph
///   break, else the last line break, else the last sentence end (`.`, `!` or `?` and
///   whitespace), else (a weak stretch) the window is cut short to
///   `WEAK_WINDOW_CHUNKS × max_tokens × CHARS_PER_TOKEN` bytes, at the best boundary in the
///   second half of that (whitespace at the least), else at a character boundary;
/// * the rest of the text, once it fits in a window, is the last window if the second half of
///   it has a sentence end or a stronger boundary, else it too is cut into weak windows;
/// * no chunk crosses a window's end, and consecutive windows share no overlap; a chunk just
///   before a cut may be shorter than the splitter would have made it.
///
/// So the work per window is bounded by a constant number of chunks times the window, and
/// chunking is linear in the text whatever its shape. Only a text with no such boundary in the
/// second half of its windows takes weak windows; a weak stretch in the first half of a window
/// costs at most a window's worth of work per chunk, still bounded.
///
/// A text no longer than the window is handed to the splitter whole, exactly as before windows
/// existed: its chunks (texts, offsets, hashes) are unchanged, so collections indexed earlier
/// re-embed nothing for it.
pub struct Chunker {
    text: TextSplitter<Sizer>,
    markdown: MarkdownSplitter<Sizer>,
    /// Largest text split whole, in bytes.
    window: usize,
    /// Window length in a stretch without strong boundaries, in bytes.
    weak_window: usize,
}

impl Chunker {
    /// A chunker sized by `counter` when the options ask for tokens and one is given, else by
    /// characters.
    pub fn new(options: ChunkOptions, counter: Option<TokenCounter>) -> Result<Self> {
        options.validate()?;
        let (sizer, scale) = match (options.sizer, counter) {
            (ChunkSizer::Tokens, Some(count)) => (Sizer::Tokens(count), 1),
            _ => (Sizer::Chars, CHARS_PER_TOKEN),
        };
        let config = || {
            ChunkConfig::new(options.max_tokens * scale)
                .with_overlap(options.overlap * scale)
                .map(|c| c.with_sizer(sizer.clone()))
                .map_err(|e| Error::invalid("chunk.overlap", e.to_string()))
        };
        let max_bytes = options.max_tokens.saturating_mul(CHARS_PER_TOKEN);
        Ok(Chunker {
            text: TextSplitter::new(config()?),
            markdown: MarkdownSplitter::new(config()?),
            window: max_bytes.saturating_mul(WINDOW_CHUNKS).max(MIN_WINDOW),
            weak_window: max_bytes.saturating_mul(WEAK_WINDOW_CHUNKS).max(64),
        })
    }

    /// The same chunker with windows of `window` bytes and weak windows of `weak` bytes (tests
    /// reach many windows with short texts).
    #[cfg(test)]
    fn with_windows(mut self, window: usize, weak: usize) -> Self {
        self.window = window;
        self.weak_window = weak;
        self
    }

    /// The splitter's spans of `text`, whole.
    fn split<'t>(&self, text: &'t str, format: DocFormat) -> Vec<(usize, &'t str)> {
        match format {
            DocFormat::Markdown | DocFormat::Docx => self.markdown.chunk_indices(text).collect(),
            _ => self.text.chunk_indices(text).collect(),
        }
    }

    /// The splitter's spans of `text`, window by window (see [Windows](Chunker#windows)).
    fn spans<'t>(&self, text: &'t str, format: DocFormat) -> Vec<(usize, &'t str)> {
        if text.len() <= self.window {
            return self.split(text, format);
        }
        let mut spans = Vec::new();
        let mut from = 0;
        while from < text.len() {
            let to = self.window_end(text, from);
            spans.extend(
                self.split(&text[from..to], format)
                    .into_iter()
                    .map(|(i, s)| (from + i, s)),
            );
            from = to;
        }
        spans
    }

    /// Where the window starting at `from` ends: past `from`, on a character boundary.
    fn window_end(&self, text: &str, from: usize) -> usize {
        let rest = text.len() - from;
        if let Some((cut, level)) = best_cut(text, from, self.window.min(rest))
            && level >= Boundary::Sentence
        {
            // the rest of the text, when it fits, is one window
            return if rest <= self.window { text.len() } else { cut };
        }
        if rest <= self.weak_window {
            return text.len();
        }
        match best_cut(text, from, self.weak_window) {
            Some((cut, _)) => cut,
            None => {
                let end = text.floor_char_boundary(from + self.weak_window);
                if end > from {
                    end
                } else {
                    text.ceil_char_boundary(from + 1)
                }
            }
        }
    }

    /// The chunks of `text` (of a document titled `title`), in order; empty for a text with no
    /// visible characters. A PDF's pages (separated by [`PAGE_BREAK`]) are split one by one, so
    /// no chunk crosses a page, and each chunk carries its page's number.
    pub fn chunk(&self, title: &str, text: &str, format: DocFormat) -> Vec<Chunk> {
        let mut spans: Vec<(usize, &str, Option<u32>)> = Vec::new();
        if format == DocFormat::Pdf {
            let mut offset = 0;
            for (i, page) in text.split(PAGE_BREAK).enumerate() {
                let number = u32::try_from(i + 1).ok();
                spans.extend(
                    in_order(self.spans(page, format))
                        .into_iter()
                        .map(|(start, s)| (offset + start, s, number)),
                );
                offset += page.len() + PAGE_BREAK.len_utf8();
            }
        } else {
            spans.extend(
                in_order(self.spans(text, format))
                    .into_iter()
                    .map(|(start, s)| (start, s, None)),
            );
        }
        let mut paths = if format.has_headings() {
            let bounds: Vec<(usize, usize)> = spans
                .iter()
                .map(|(start, s, _)| (*start, start + s.len()))
                .collect();
            crate::markdown::heading_paths(text, &bounds)
        } else {
            Vec::new()
        }
        .into_iter();
        spans
            .into_iter()
            .enumerate()
            .map(|(ord, (start, s, page))| Chunk {
                ord: ord as u32,
                start,
                end: start + s.len(),
                text: s.to_owned(),
                hash: ContentHash::of(embed_text(title, s).as_bytes()),
                heading_path: paths.next().unwrap_or_default(),
                page,
            })
            .collect()
    }
}

/// The visible spans `(start, text)` in document order, without a span that lies inside the one
/// before it. With overlap, the splitter can emit a short span and then a longer one that starts
/// a byte earlier and holds it (seen with Markdown and carriage returns): the short one adds no
/// text, and chunk offsets must grow.
fn in_order(mut spans: Vec<(usize, &str)>) -> Vec<(usize, &str)> {
    spans.retain(|(_, s)| !s.trim().is_empty());
    spans.sort_by_key(|(start, s)| (*start, std::cmp::Reverse(s.len())));
    let mut kept: Vec<(usize, &str)> = Vec::with_capacity(spans.len());
    for (start, s) in spans {
        if let Some((p, ps)) = kept.last()
            && start + s.len() <= p + ps.len()
        {
            continue;
        }
        kept.push((start, s));
    }
    kept
}

#[cfg(test)]
#[path = "chunk_tests.rs"]
mod tests;
