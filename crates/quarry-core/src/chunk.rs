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
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            max_tokens: 256,
            overlap: 32,
            sizer: ChunkSizer::Tokens,
        }
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

    proptest! {
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
