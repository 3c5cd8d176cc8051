//! Tests of the chunker: sizes, overlap, boundaries and offsets.

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
fn pdf_pages_are_split_one_by_one_and_numbered() {
    // page 2 is empty (a scanned page among text pages); a short page 3 fits in the chunk that
    // page 1's tail would otherwise share with it
    let text = format!(
        "{}\u{c}  \n\u{c}orchard pruning",
        "glacier moraine ".repeat(20)
    );
    let chunks = chunker(25, 5).chunk("t", &text, DocFormat::Pdf);
    assert!(chunks.len() >= 3, "{chunks:?}");
    for c in &chunks {
        assert_eq!(&text[c.start..c.end], c.text);
        assert!(!c.text.contains('\u{c}'), "{c:?}");
        let want = if c.text.contains("orchard") { 3 } else { 1 };
        assert_eq!(c.page, Some(want), "{c:?}");
        assert!(c.heading_path.is_empty());
    }
    assert_eq!(chunks.last().unwrap().text, "orchard pruning");
    let ords: Vec<u32> = chunks.iter().map(|c| c.ord).collect();
    assert_eq!(ords, (0..chunks.len() as u32).collect::<Vec<_>>());
    // other formats have no page, and a form feed in them is text
    assert!(
        chunker(25, 5)
            .chunk("t", &text, DocFormat::Text)
            .iter()
            .all(|c| c.page.is_none())
    );
}

#[test]
fn docx_chunks_have_heading_paths_like_markdown() {
    let text = format!(
        "# Equipment\n\n{}\n\n## Calibration\n\n{}\n",
        "tripod ".repeat(20),
        "benchmark ".repeat(20)
    );
    let chunks = chunker(40, 0).chunk("t", &text, DocFormat::Docx);
    let md = chunker(40, 0).chunk("t", &text, DocFormat::Markdown);
    assert_eq!(chunks, md);
    assert!(
        chunks
            .iter()
            .any(|c| c.heading_path == ["Equipment", "Calibration"]),
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

fn tokens_chunker(max: usize, overlap: usize) -> Chunker {
    let words: TokenCounter = Arc::new(|s: &str| s.split_whitespace().count());
    Chunker::new(
        ChunkOptions {
            max_tokens: max,
            overlap,
            sizer: ChunkSizer::Tokens,
            context_chars: 0,
        },
        Some(words),
    )
    .unwrap()
}

/// Checks the chunk invariants: offsets point at the text, ords count from 0, sizes fit
/// (`size` of a chunk at most `max`), and every visible character lies in some chunk.
fn check_chunks(
    text: &str,
    chunks: &[Chunk],
    max: usize,
    size: impl Fn(&str) -> usize,
) -> std::result::Result<(), TestCaseError> {
    for (i, ch) in chunks.iter().enumerate() {
        prop_assert_eq!(&text[ch.start..ch.end], ch.text.as_str());
        prop_assert_eq!(ch.ord as usize, i);
        prop_assert!(!ch.text.trim().is_empty());
        prop_assert!(
            size(&ch.text) <= max,
            "{} > {max}: {:?}",
            size(&ch.text),
            ch.text
        );
    }
    prop_assert!(chunks.windows(2).all(|w| w[0].start <= w[1].start));
    let mut covered = vec![false; text.len()];
    for ch in chunks {
        covered[ch.start..ch.end].iter_mut().for_each(|c| *c = true);
    }
    for (i, ch) in text.char_indices().filter(|(_, ch)| !ch.is_whitespace()) {
        prop_assert!(covered[i], "lost {ch:?} at {i}");
    }
    Ok(())
}

/// Texts of many shapes: prose with paragraphs, one line, words without sentence ends,
/// runs without whitespace, multibyte characters.
fn long_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "([a-zé]{1,8}[ .\\n]{1,2}){0,400}",
        "([a-zé]{1,8}[ ]){0,600}",
        "[a-zé日本語🦀]{0,3000}",
        "([a-z]{0,300}[ \\n.!?]{0,3}){0,20}",
        "[a-z \\r\\n.é]{0,3000}",
    ]
}

#[test]
fn a_long_text_is_cut_into_windows_at_paragraphs() {
    let para = format!("{}.\n\n", "word ".repeat(40).trim_end());
    let text = para.repeat(2000); // 410 KB, far past the 32 KiB window
    let c = chunker(64, 16);
    let chunks = c.chunk("", &text, DocFormat::Text);
    // every paragraph is exactly one chunk, as the splitter makes them within a window
    assert_eq!(chunks.len(), 2000);
    for (i, ch) in chunks.iter().enumerate() {
        assert_eq!(ch.start, i * para.len());
        assert_eq!(ch.text, para.trim_end());
    }
}

#[test]
fn a_long_run_without_whitespace_is_chunked_by_characters() {
    let text = "é".repeat(50_000) + &"x".repeat(50_001);
    let c = chunker(16, 4);
    let chunks = c.chunk("", &text, DocFormat::Text);
    check_chunks(&text, &chunks, 64, |s| s.chars().count()).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Below the window, windows change nothing: the chunks are the splitter's own (in document
    /// order, without one held by the one before).
    #[test]
    fn short_texts_chunk_as_the_splitter_does(
        text in long_text(), max in 2usize..40, overlap in 0usize..8, md: bool,
    ) {
        let overlap = overlap.min(max - 1);
        let c = chunker(max, overlap);
        let format = if md { DocFormat::Markdown } else { DocFormat::Text };
        prop_assert!(text.len() <= c.window);
        let config = || {
            ChunkConfig::new(max * CHARS_PER_TOKEN)
                .with_overlap(overlap * CHARS_PER_TOKEN)
                .unwrap()
        };
        let plain: Vec<(usize, &str)> = if md {
            MarkdownSplitter::new(config()).chunk_indices(&text).collect()
        } else {
            TextSplitter::new(config()).chunk_indices(&text).collect()
        };
        // the splitter's spans in document order, without one inside the one before it
        let plain = super::in_order(plain);
        let chunks = c.chunk("T", &text, format);
        let got: Vec<(usize, &str)> = chunks.iter().map(|ch| (ch.start, ch.text.as_str())).collect();
        prop_assert_eq!(got, plain);
    }

    /// Past the window (small windows here, so short texts cross many), every chunk fits,
    /// points at its text, and together they cover every visible character.
    #[test]
    fn windowed_chunks_fit_and_cover_the_text(
        text in long_text(), max in 2usize..40, overlap in 0usize..8,
        window in 64usize..600, weak in 64usize..200, md: bool,
    ) {
        let overlap = overlap.min(max - 1);
        let format = if md { DocFormat::Markdown } else { DocFormat::Text };
        let c = chunker(max, overlap).with_windows(window, weak);
        let chunks = c.chunk("", &text, format);
        check_chunks(&text, &chunks, max * CHARS_PER_TOKEN, |s| s.chars().count())?;
        let t = tokens_chunker(max, overlap).with_windows(window, weak);
        let chunks = t.chunk("", &text, format);
        check_chunks(&text, &chunks, max, |s| s.split_whitespace().count())?;
    }
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
