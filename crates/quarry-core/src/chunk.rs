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

use crate::document::DocFormat;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkSizer {
    /// Tokens of the embedder's tokenizer (characters for an embedder without one).
    #[default]
    Tokens,
    /// Characters, `CHARS_PER_TOKEN` to a token.
    Chars,
}

/// Chunking settings of a collection (`[chunk]` in `quarry.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Splits texts according to [`ChunkOptions`]. Cheap to share across threads.
pub struct Chunker {
    text: TextSplitter<Sizer>,
    markdown: MarkdownSplitter<Sizer>,
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
        Ok(Chunker {
            text: TextSplitter::new(config()?),
            markdown: MarkdownSplitter::new(config()?),
        })
    }

    /// The chunks of `text` (of a document titled `title`), in order; empty for a text with no
    /// visible characters.
    pub fn chunk(&self, title: &str, text: &str, format: DocFormat) -> Vec<Chunk> {
        let spans: Vec<(usize, &str)> = match format {
            DocFormat::Markdown => self.markdown.chunk_indices(text).collect(),
            _ => self.text.chunk_indices(text).collect(),
        };
        spans
            .into_iter()
            .filter(|(_, s)| !s.trim().is_empty())
            .enumerate()
            .map(|(ord, (start, s))| Chunk {
                ord: ord as u32,
                start,
                end: start + s.len(),
                text: s.to_owned(),
                hash: ContentHash::of(embed_text(title, s).as_bytes()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunker(max: usize, overlap: usize) -> Chunker {
        Chunker::new(
            ChunkOptions {
                max_tokens: max,
                overlap,
                sizer: ChunkSizer::Chars,
                context_chars: 0,
            },
            None,
        )
        .unwrap()
    }

    #[test]
    fn options_are_checked() {
        assert!(
            Chunker::new(
                ChunkOptions {
                    max_tokens: 0,
                    ..Default::default()
                },
                None
            )
            .is_err()
        );
        assert!(
            Chunker::new(
                ChunkOptions {
                    max_tokens: 8,
                    overlap: 8,
                    ..Default::default()
                },
                None
            )
            .is_err()
        );
    }

    #[test]
    fn markdown_splits_at_headings() {
        let md = format!(
            "# One\n\n{}\n\n# Two\n\n{}\n",
            "alpha ".repeat(30),
            "beta ".repeat(30)
        );
        let chunks = chunker(50, 0).chunk("", &md, DocFormat::Markdown);
        assert!(chunks.len() >= 2, "{chunks:?}");
        assert!(
            chunks.iter().any(|c| c.text.starts_with("# Two")),
            "{chunks:?}"
        );
    }

    #[test]
    fn empty_text_has_no_chunks() {
        assert!(
            chunker(10, 2)
                .chunk("t", "  \n\t ", DocFormat::Text)
                .is_empty()
        );
    }

    #[test]
    fn token_counter_sizes_chunks() {
        // one token per word: chunks hold at most 5 words
        let words: TokenCounter = Arc::new(|s: &str| s.split_whitespace().count());
        let c = Chunker::new(
            ChunkOptions {
                max_tokens: 5,
                overlap: 0,
                sizer: ChunkSizer::Tokens,
                context_chars: 0,
            },
            Some(words),
        )
        .unwrap();
        let text = "one two three four five six seven eight nine ten eleven";
        let chunks = c.chunk("", text, DocFormat::Text);
        assert_eq!(chunks.len(), 3, "{chunks:?}");
        assert!(
            chunks
                .iter()
                .all(|c| c.text.split_whitespace().count() <= 5)
        );
        assert_eq!(chunks[0].hash, ContentHash::of(chunks[0].text.as_bytes()));
        assert_eq!(embed_text("T", "x"), "T\nx");
        assert_eq!(embed_text(" ", "x"), "x");
    }

    #[test]
    fn context_window_takes_whole_words_around_the_chunk() {
        let text = "alpha beta gamma delta epsilon";
        let (start, end) = (11, 16); // "gamma"
        assert_eq!(context_window(text, start, end, 0), "gamma");
        // 2 characters reach inside "beta" and "delta": neither is taken
        assert_eq!(context_window(text, start, end, 2), "gamma");
        // 5 back reach the start of "beta"; 5 ahead stop inside "delta"
        assert_eq!(context_window(text, start, end, 5), "beta gamma");
        assert_eq!(context_window(text, start, end, 6), "beta gamma delta");
        assert_eq!(context_window(text, start, end, 7), "beta gamma delta");
        assert_eq!(context_window(text, start, end, 1000), text);
        // not a span of the text: no context, no panic
        assert_eq!(context_window("é", 1, 2, 10), "");
        assert_eq!(context_window(text, 20, 10, 10), "");
        assert_eq!(context_window(text, 0, 99, 10), "");
    }

    proptest! {
        #[test]
        fn context_windows_hold_the_chunk_and_whole_words(
            text in "[a-zé \\n.]{0,400}", max in 2usize..40, chars in 0usize..200,
        ) {
            let chunks = chunker(max, 0).chunk("", &text, DocFormat::Text);
            for ch in &chunks {
                let w = context_window(&text, ch.start, ch.end, chars);
                let from = w.as_ptr() as usize - text.as_ptr() as usize;
                let to = from + w.len();
                prop_assert!(from <= ch.start && ch.end <= to, "{w:?} misses {:?}", ch.text);
                prop_assert!(w.chars().count() <= ch.text.chars().count() + 2 * chars);
                // a cut is at the chunk, at the text's ends, or next to whitespace
                prop_assert!(from == ch.start || from == 0 || text[..from].ends_with(char::is_whitespace));
                prop_assert!(to == ch.end || to == text.len() || text[to..].starts_with(char::is_whitespace));
                if chars >= text.chars().count() {
                    prop_assert_eq!(w, text.as_str());
                }
            }
        }

        #[test]
        fn offsets_point_at_the_chunk_text(text in "[a-zé \\n.]{0,600}", max in 2usize..40, overlap in 0usize..2) {
            let c = chunker(max, overlap.min(max - 1));
            let chunks = c.chunk("Title", &text, DocFormat::Text);
            for (i, ch) in chunks.iter().enumerate() {
                prop_assert_eq!(&text[ch.start..ch.end], ch.text.as_str());
                prop_assert_eq!(ch.ord as usize, i);
                prop_assert!(ch.text.chars().count() <= max * CHARS_PER_TOKEN);
                prop_assert_eq!(ch.hash, ContentHash::of(format!("Title\n{}", ch.text).as_bytes()));
            }
            // every visible character of the text lies inside some chunk
            for (i, ch) in text.char_indices().filter(|(_, ch)| !ch.is_whitespace()) {
                prop_assert!(chunks.iter().any(|c| c.start <= i && i < c.end), "lost {ch:?} at {i}");
            }
        }
    }
}
