//! The extractors of text, Markdown and HTML files, and the chunker after them: the first byte
//! picks the format, the rest is the file (decoded as ingest decodes it: lossily, without a BOM).
//! Besides panics, it checks that every chunk's offsets point at its text.

use quarry_core::Chunker;

use quarry_core::DocFormat;

fn main() {
    // (the chunker is only read: a panic cannot leave it half-changed)
    let chunker = std::panic::AssertUnwindSafe(quarry_fuzz::chunker());
    afl::fuzz!(|data: &[u8]| {
        let chunker: &Chunker = &chunker;
        let Some((&pick, body)) = data.split_first() else {
            return;
        };
        let format = [DocFormat::Text, DocFormat::Markdown, DocFormat::Html][pick as usize % 3];
        let raw = String::from_utf8_lossy(body);
        let raw = raw.strip_prefix('\u{feff}').unwrap_or(&raw);
        let out = quarry_index::ingest::extract(format, raw, "fallback title");
        for c in chunker.chunk(&out.title, &out.text, format) {
            assert_eq!(out.text.get(c.start..c.end), Some(c.text.as_str()), "{c:?}");
        }
    });
}
