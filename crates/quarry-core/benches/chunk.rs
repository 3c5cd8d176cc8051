//! Chunking time against document size and shape: is [`Chunker::chunk`] linear in its input?
//!
//! Shapes (generated, deterministic; about 5.5 bytes per word):
//!
//! * `prose`: sentences of 6–20 words, paragraphs of 3–7 sentences separated by a blank line;
//! * `line`: the same sentences on one single line (a JSONL record, a minified dump);
//! * `words`: one line of words with no sentence punctuation at all;
//! * `nospace`: one run of letters with no whitespace (base64, a hash dump);
//! * `md`: `prose` with a heading every 4 paragraphs, chunked as Markdown;
//! * `jsonl`: BEIR-style JSON records (`{"_id": …, "title": …, "text": …}`) of `prose` sentences,
//!   joined by spaces on one single line.
//!
//! Each is chunked with the default options (64 tokens, overlap 16) under two sizers:
//! `chars` ([`ChunkSizer::Chars`], 4 characters to a token) and `tokens` (a token counter that
//! counts whitespace-separated words, a cheap stand-in for a tokenizer).
//!
//! What is printed (stderr) under `cargo bench`: a table of seconds per MB (MB = 2^20 bytes) for
//! each shape, sizer and size (64 KiB, 256 KiB, 1 MiB, 2 MiB, 4 MiB, 32 MiB), from one timed run
//! per cell (small sizes repeated until 0.2 s has passed), and the ratio of the slowest to the
//! fastest size per row. A size whose run would exceed `QUARRY_BENCH_CHUNK_BUDGET` seconds
//! (default 120), extrapolated linearly from the size before it, is skipped and shown as `-`.
//! `QUARRY_BENCH_CHUNK_MAX_MB` caps the sizes (default 32); `QUARRY_BENCH_CHUNK_SHAPES` (comma
//! separated) limits the table to some shapes. Criterion then measures 64 KiB and
//! 1 MiB of each shape (chars sizer).
//!
//! Under `cargo test --benches` each criterion benchmark runs once at 64 KiB only, and the table
//! is not made.
//!
//! ```text
//! cargo bench -p quarry-core --bench chunk
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use quarry_core::rng::SplitMix64;
use quarry_core::{ChunkOptions, ChunkSizer, Chunker, DocFormat, TokenCounter};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const SIZES: [usize; 6] = [64 * KIB, 256 * KIB, MIB, 2 * MIB, 4 * MIB, 32 * MIB];
const SHAPES: [&str; 6] = ["prose", "line", "jsonl", "words", "nospace", "md"];

const VOCAB: [&str; 32] = [
    "the",
    "of",
    "retrieval",
    "model",
    "a",
    "vector",
    "index",
    "and",
    "search",
    "query",
    "in",
    "document",
    "to",
    "chunk",
    "is",
    "embedding",
    "score",
    "with",
    "ranking",
    "for",
    "token",
    "passage",
    "on",
    "dense",
    "sparse",
    "hybrid",
    "by",
    "recall",
    "that",
    "précision",
    "lexical",
    "naïve",
];

/// About `len` bytes of text of the given shape (cut at a character boundary).
fn text(shape: &str, len: usize) -> String {
    let mut rng = SplitMix64::new(0x5eed ^ len as u64);
    let mut below = |n: u64| (rng.next_u64() % n) as usize;
    let mut out = String::with_capacity(len + 64);
    if shape == "nospace" {
        while out.len() < len {
            out.push(char::from(b'a' + below(26) as u8));
        }
        return out;
    }
    let jsonl = shape == "jsonl";
    let (mut sentence, mut paragraph, mut paragraphs) = (0, 0, 0);
    let mut sentence_len = 6 + below(15);
    let mut paragraph_len = 3 + below(5);
    if shape == "md" {
        out.push_str("# Heading 0\n\n");
    }
    if jsonl {
        out.push_str("{\"_id\": \"0\", \"title\": \"A record\", \"text\": \"");
    }
    while out.len() < len {
        let word = VOCAB[below(VOCAB.len() as u64)];
        if sentence == 0 && shape != "words" {
            let mut w = word.chars();
            if let Some(first) = w.next() {
                out.extend(first.to_uppercase());
                out.push_str(w.as_str());
            }
        } else {
            out.push_str(word);
        }
        sentence += 1;
        if sentence < sentence_len || shape == "words" {
            out.push(' ');
            continue;
        }
        out.push('.');
        sentence = 0;
        sentence_len = 6 + below(15);
        paragraph += 1;
        if paragraph < paragraph_len || shape == "line" {
            out.push(' ');
            continue;
        }
        paragraph = 0;
        paragraph_len = 3 + below(5);
        paragraphs += 1;
        if jsonl {
            out.push_str(&format!(
                "\"}} {{\"_id\": \"{paragraphs}\", \"title\": \"record {paragraphs}\", \"text\": \""
            ));
            continue;
        }
        out.push_str("\n\n");
        if shape == "md" && paragraphs % 4 == 0 {
            out.push_str(&format!("## Heading {paragraphs}\n\n"));
        }
    }
    let mut cut = len.min(out.len());
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
    out
}

fn format_of(shape: &str) -> DocFormat {
    if shape == "md" {
        DocFormat::Markdown
    } else {
        DocFormat::Text
    }
}

fn chunker(sizer: &str) -> Chunker {
    let words: TokenCounter = Arc::new(|s: &str| s.split_whitespace().count());
    let (sizer, counter) = match sizer {
        "chars" => (ChunkSizer::Chars, None),
        _ => (ChunkSizer::Tokens, Some(words)),
    };
    let options = ChunkOptions {
        sizer,
        ..ChunkOptions::default()
    };
    Chunker::new(options, counter).expect("default options are valid")
}

/// Seconds per run of chunking `doc`: one run, or the mean of as many as fill 0.2 s.
fn time_chunking(c: &Chunker, doc: &str, format: DocFormat) -> f64 {
    let start = Instant::now();
    let mut runs = 0u32;
    loop {
        black_box(c.chunk("Title", black_box(doc), format));
        runs += 1;
        if start.elapsed() >= Duration::from_millis(200) {
            return start.elapsed().as_secs_f64() / f64::from(runs);
        }
    }
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn table() {
    let budget = env_f64("QUARRY_BENCH_CHUNK_BUDGET", 120.0);
    let max_mb = env_f64("QUARRY_BENCH_CHUNK_MAX_MB", 32.0);
    let sizes: Vec<usize> = SIZES
        .iter()
        .copied()
        .filter(|&s| s as f64 <= max_mb * MIB as f64)
        .collect();
    eprintln!("== chunking time, seconds per MiB (default options: 64 tokens, overlap 16)");
    let mut header = format!("{:<16}", "shape/sizer");
    for &s in &sizes {
        header.push_str(&format!("{:>10}", label(s)));
    }
    eprintln!("{header}   max/min");
    let only = std::env::var("QUARRY_BENCH_CHUNK_SHAPES").unwrap_or_default();
    for shape in SHAPES {
        if !only.is_empty() && !only.split(',').any(|s| s == shape) {
            continue;
        }
        for sizer in ["chars", "tokens"] {
            let c = chunker(sizer);
            let mut row = format!("{:<16}", format!("{shape}/{sizer}"));
            let mut per_mb: Vec<f64> = Vec::new();
            let mut last: Option<(usize, f64)> = None;
            for &size in &sizes {
                if let Some((prev, secs)) = last
                    && secs * size as f64 / prev as f64 > budget
                {
                    row.push_str(&format!("{:>10}", "-"));
                    continue;
                }
                let doc = text(shape, size);
                let secs = time_chunking(&c, &doc, format_of(shape));
                let mb = doc.len() as f64 / MIB as f64;
                per_mb.push(secs / mb);
                row.push_str(&format!("{:>10.4}", secs / mb));
                last = Some((size, secs));
            }
            let max = per_mb.iter().copied().fold(f64::MIN, f64::max);
            let min = per_mb.iter().copied().fold(f64::MAX, f64::min);
            eprintln!("{row}   {:.2}", max / min);
        }
    }
    // The done-when figure: 2 MiB on one single line.
    if sizes.contains(&(2 * MIB)) {
        for shape in ["line", "jsonl", "words", "nospace"] {
            if !only.is_empty() && !only.split(',').any(|s| s == shape) {
                continue;
            }
            let doc = text(shape, 2 * MIB);
            for sizer in ["chars", "tokens"] {
                let c = chunker(sizer);
                let start = Instant::now();
                black_box(c.chunk("Title", &doc, DocFormat::Text));
                eprintln!(
                    "== 2 MiB single line, {shape}/{sizer}: {:.3} s",
                    start.elapsed().as_secs_f64()
                );
            }
        }
    }
}

fn label(size: usize) -> String {
    if size >= MIB {
        format!("{}M", size / MIB)
    } else {
        format!("{}K", size / KIB)
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    if bench {
        table();
    }
    let mut criterion = Criterion::default().sample_size(10).configure_from_args();
    let sizes: &[usize] = if bench { &[64 * KIB, MIB] } else { &[64 * KIB] };
    let c = chunker("chars");
    let mut group = criterion.benchmark_group("chunk");
    for shape in SHAPES {
        for &size in sizes {
            let doc = text(shape, size);
            group.throughput(Throughput::Bytes(doc.len() as u64));
            group.bench_function(format!("{shape}/{}", label(size)), |b| {
                b.iter(|| c.chunk("Title", black_box(&doc), format_of(shape)))
            });
        }
    }
    group.finish();
    criterion.final_summary();
}
