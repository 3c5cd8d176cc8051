//! The Markdown structure quarry reads: ATX headings, for a document's title and for the heading
//! path of each of its chunks (a built-in filter field and part of a hit's citation).
//!
//! Only ATX headings (`#` to `######`) outside fenced code blocks and indented code count;
//! Setext (underlined) headings are not recognised. A CommonMark parser (pulldown-cmark) would
//! also read Setext headings, but it needs the whole document for every question and its event
//! offsets would have to be mapped back onto chunks; the one line rule here is what both the title
//! and the heading paths need, in one linear pass.

/// The ATX headings of `text` in order, as `(byte offset of the heading line, level, heading
/// text)`; the text is empty for a bare `#`.
pub fn atx_headings(text: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let mut in_fence = false;
    let mut offset = 0;
    text.split_inclusive('\n').filter_map(move |raw| {
        let at = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
            return None;
        }
        if in_fence || line.starts_with("    ") || line.starts_with('\t') {
            return None;
        }
        let level = t.bytes().take_while(|&b| b == b'#').count();
        ((1..=6).contains(&level) && (t.len() == level || t[level..].starts_with([' ', '\t'])))
            .then(|| (at, level, t[level..].trim().trim_end_matches('#').trim()))
    })
}

/// `heading` cut to at most [`MAX_VALUE_BYTES`](crate::filter::MAX_VALUE_BYTES) bytes, on a char
/// boundary: a heading is copied into the path of every chunk under it and indexed as a filter
/// value, so a hostile one-line "heading" of megabytes must not be.
fn bounded(heading: &str) -> &str {
    let max = crate::filter::MAX_VALUE_BYTES;
    if heading.len() <= max {
        return heading;
    }
    let mut end = max;
    while !heading.is_char_boundary(end) {
        end -= 1;
    }
    &heading[..end]
}

/// The heading path of each span `(start, end)` of `text` (in document order, as chunks are):
/// the headings in effect at the end of the span's first line, outermost first. A heading closes
/// those of its level and deeper; a bare `#` closes them and adds nothing. One pass over the text
/// for all spans.
pub fn heading_paths(text: &str, spans: &[(usize, usize)]) -> Vec<Vec<String>> {
    let mut headings = atx_headings(text).peekable();
    let mut path: Vec<(usize, &str)> = Vec::new();
    spans
        .iter()
        .map(|&(start, end)| {
            let span = text.get(start..end).unwrap_or_default();
            let first_line_end = start + span.find('\n').unwrap_or(span.len());
            // every heading whose line starts before the end of the span's first line
            while let Some(&(at, level, h)) = headings.peek() {
                if at >= first_line_end.max(start + 1) {
                    break;
                }
                path.retain(|(l, _)| *l < level);
                if !h.is_empty() {
                    path.push((level, h));
                }
                headings.next();
            }
            path.iter().map(|(_, h)| bounded(h).to_owned()).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The heading path at the end of `text`, by the definition (every heading of `text`).
    fn path_of(text: &str) -> Vec<String> {
        heading_paths(text, &[(text.len(), text.len())])
            .pop()
            .unwrap_or_default()
    }

    #[test]
    fn headings_and_paths() {
        let md = "# Guide\nintro\n## Install\n```\n# not a heading\n```\n### Linux\ntext\n## Use\n";
        let offsets: Vec<usize> = atx_headings(md).map(|(at, _, _)| at).collect();
        assert_eq!(offsets, [0, 14, 49, 64]);
        assert_eq!(path_of(md), ["Guide", "Use"]);
        assert_eq!(
            path_of(&md[..md.find("text").unwrap()]),
            ["Guide", "Install", "Linux"]
        );
        assert_eq!(path_of("#hashtag\n    # code\nplain"), Vec::<String>::new());
        assert_eq!(path_of("## Deep first\n# Top ##\n"), ["Top"]);
        assert_eq!(path_of("# A\r\n## B\r\nx"), ["A", "B"]);
        // a huge heading is cut to the longest filter value, on a char boundary
        let huge = format!("# {}\nbody", "é".repeat(10_000));
        let path = path_of(&huge);
        assert_eq!(path.len(), 1);
        assert!(path[0].len() <= crate::filter::MAX_VALUE_BYTES && path[0].len() > 4000);
        assert!(path[0].chars().all(|c| c == 'é'));
        // a span starting on a heading line has that heading; one starting mid-line does not
        // get a heading on a later line
        let i = md.find("## Install").unwrap();
        let paths = heading_paths(md, &[(0, 5), (8, i + 4), (i, md.len())]);
        assert_eq!(paths[0], ["Guide"]);
        assert_eq!(paths[1], ["Guide"]);
        assert_eq!(paths[2], ["Guide", "Install"]);
    }

    proptest! {
        /// One pass over all spans agrees with each span's path computed afresh from the start of
        /// the text.
        #[test]
        fn one_pass_matches_the_definition(
            lines in proptest::collection::vec(
                prop_oneof![
                    "#{1,7}( [a-c]{0,3})?( #*)?",
                    Just("```".to_owned()),
                    "    # [a-c]",
                    "[a-c #]{0,6}",
                    Just(String::new()),
                ],
                0..30,
            ),
            cuts in proptest::collection::vec(0usize..400, 0..12),
        ) {
            let text = lines.join("\n");
            let mut starts: Vec<usize> = cuts.into_iter().map(|c| c % (text.len() + 1)).collect();
            starts.sort_unstable();
            starts.dedup();
            let spans: Vec<(usize, usize)> = starts
                .windows(2)
                .map(|w| (w[0], w[1]))
                .chain(starts.last().map(|&s| (s, text.len())))
                .collect();
            let fast = heading_paths(&text, &spans);
            for (&(start, end), got) in spans.iter().zip(&fast) {
                let span = &text[start..end];
                let line_end = start + span.find('\n').unwrap_or(span.len());
                let want = path_of_prefix(&text, line_end.max(start + 1));
                prop_assert_eq!(got, &want, "span {:?} of {:?}", (start, end), text);
            }
        }
    }

    /// The heading path at byte `at` of `text` computed afresh: every heading whose line starts
    /// before `at` (a heading line is read whole even if `at` cuts it).
    fn path_of_prefix(text: &str, at: usize) -> Vec<String> {
        let mut path: Vec<(usize, String)> = Vec::new();
        for (start, level, h) in atx_headings(text) {
            if start >= at {
                break;
            }
            path.retain(|(l, _)| *l < level);
            if !h.is_empty() {
                path.push((level, h.to_owned()));
            }
        }
        path.into_iter().map(|(_, h)| h).collect()
    }
}
