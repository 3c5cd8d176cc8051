//! The progress bar of `quarry ingest` on a terminal: documents read, chunks embedded of the total
//! to embed, the embedder's rate, and an ETA that covers both the reading and the embedding.
//!
//! The total to embed is not known until every document is read and chunked and its chunks
//! looked up in the embedding cache, so the bar counts against the chunks queued so far
//! (`quarry_embedding_queued_total`, the same counter `/metrics` shows) and, while input is left,
//! against that figure scaled by the share of the input's bytes read (`~N in all`).

use indicatif::{ProgressBar, ProgressStyle};
use quarry_index::{EmbedTotals, Progress};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The bar, and the input counters the ingest reports to it through [`Progress`].
pub(super) struct Bar {
    pub(super) bar: ProgressBar,
    bytes_total: AtomicU64,
    bytes_read: AtomicU64,
    documents: AtomicU64,
}

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.bytes_total.store(total, Ordering::Relaxed);
    }
    fn advance(&self, bytes: u64, documents: u64) {
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        self.documents.fetch_add(documents, Ordering::Relaxed);
    }
}

impl Bar {
    /// A bar on stderr, or a hidden one when stderr is not a terminal.
    pub(super) fn new() -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template("{spinner} ingesting [{bar:30}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        } else {
            ProgressBar::hidden()
        };
        Bar {
            bar,
            bytes_total: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            documents: AtomicU64::new(0),
        }
    }

    /// Redraws every 250 ms until `done` (woken at once by [`Stop`]), from this bar's input
    /// counters and the engine's embedding counters since the start.
    pub(super) fn tick(&self, telemetry: &quarry_index::Telemetry, done: &AtomicBool) {
        if self.bar.is_hidden() {
            return;
        }
        let started = Instant::now();
        let before = telemetry.document_embedding();
        while !done.load(Ordering::Relaxed) {
            let now = telemetry.document_embedding();
            let view = view(&Snapshot {
                bytes_total: self.bytes_total.load(Ordering::Relaxed),
                bytes_read: self.bytes_read.load(Ordering::Relaxed),
                documents: self.documents.load(Ordering::Relaxed),
                embedding: EmbedTotals {
                    queued: now.queued - before.queued,
                    texts: now.texts - before.texts,
                    tokens: now.tokens - before.tokens,
                    seconds: now.seconds - before.seconds,
                },
                elapsed: started.elapsed(),
            });
            self.bar.set_length(view.len);
            self.bar.set_position(view.pos);
            self.bar.set_message(view.line);
            std::thread::park_timeout(Duration::from_millis(250));
        }
    }
}

/// Sets its flag and wakes the ticker thread when dropped.
pub(super) struct Stop<'a>(pub(super) &'a AtomicBool, pub(super) std::thread::Thread);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        self.1.unpark();
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    bytes_total: u64,
    bytes_read: u64,
    documents: u64,
    /// This ingest's embedding so far.
    embedding: EmbedTotals,
    elapsed: Duration,
}

/// What the bar shows: its position and length, and its message.
#[derive(Debug, PartialEq)]
struct View {
    pos: u64,
    len: u64,
    line: String,
}

/// The bar of `s`: chunks embedded of the total to embed once anything was queued (bytes read
/// before that, or when nothing needs embedding), with an ETA at the average rates since the
/// start — reading's and the embedder's, whichever ends later.
fn view(s: &Snapshot) -> View {
    let e = &s.embedding;
    let secs = s.elapsed.as_secs_f64();
    let read = match s.bytes_total {
        0 => 1.0,
        t => (s.bytes_read as f64 / t as f64).min(1.0),
    };
    let read_left = if read >= 1.0 {
        Some(0.0)
    } else if read > 0.0 {
        Some(secs * (1.0 - read) / read)
    } else {
        None
    };
    let documents = format!(
        "{} documents read ({:.0}%)",
        s.documents,
        (read * 100.0).floor()
    );
    if e.queued == 0 {
        return View {
            pos: s.bytes_read,
            len: s.bytes_total,
            line: format!("{documents} · eta {}", eta(read_left)),
        };
    }
    // The chunks the whole input will queue, at the rate the bytes read so far queued them.
    let expected = if read > 0.0 && read < 1.0 {
        e.queued.max((e.queued as f64 / read).round() as u64)
    } else {
        e.queued
    };
    let embed_left = (e.texts > 0 && secs > 0.0)
        .then(|| expected.saturating_sub(e.texts) as f64 / (e.texts as f64 / secs));
    let left = match (read_left, embed_left) {
        (Some(r), Some(m)) => Some(r.max(m)),
        _ => None,
    };
    let of = if expected > e.queued {
        format!("{} (~{expected} in all)", e.queued)
    } else {
        e.queued.to_string()
    };
    let model_secs = e.seconds.max(1e-3);
    let rate = if e.tokens > 0 {
        format!("{:.0} tokens/s", e.tokens as f64 / model_secs)
    } else {
        format!("{:.1} chunks/s", e.texts as f64 / model_secs)
    };
    View {
        pos: e.texts,
        len: expected,
        line: format!(
            "{} of {of} chunks embedded · {documents} · {rate} · eta {}",
            e.texts,
            eta(left)
        ),
    }
}

/// `seconds` as indicatif writes a duration ("3m", "1h"), `?` when unknown.
fn eta(seconds: Option<f64>) -> String {
    match seconds.and_then(|s| Duration::try_from_secs_f64(s).ok()) {
        Some(d) => format!("{:#}", indicatif::HumanDuration(d)),
        None => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(read: (u64, u64), queued: u64, texts: u64, tokens: u64, secs: u64) -> Snapshot {
        Snapshot {
            bytes_read: read.0,
            bytes_total: read.1,
            documents: 40,
            embedding: EmbedTotals {
                queued,
                texts,
                tokens,
                seconds: secs as f64 / 2.0,
            },
            elapsed: Duration::from_secs(secs),
        }
    }

    #[test]
    fn before_anything_is_queued_the_bar_counts_bytes_read() {
        let v = view(&snapshot((250, 1000), 0, 0, 0, 10));
        assert_eq!((v.pos, v.len), (250, 1000));
        // a quarter read in 10 s: 30 s left
        assert_eq!(v.line, "40 documents read (25%) · eta 30s");
        let v = view(&snapshot((0, 1000), 0, 0, 0, 10));
        assert_eq!(v.line, "40 documents read (0%) · eta ?");
    }

    #[test]
    fn while_input_is_left_the_total_to_embed_is_extrapolated_from_the_bytes_read() {
        // a quarter of the bytes queued 200 chunks: ~800 in all; 100 embedded in 10 s is 10/s,
        // so 70 s of embedding left, which outlasts the 30 s of reading left
        let v = view(&snapshot((250, 1000), 200, 100, 6400, 10));
        assert_eq!((v.pos, v.len), (100, 800));
        assert_eq!(
            v.line,
            "100 of 200 (~800 in all) chunks embedded · 40 documents read (25%) · 1280 tokens/s · eta 70s"
        );
    }

    #[test]
    fn once_everything_is_read_the_queued_chunks_are_the_total() {
        // all read: 500 of 500 queued, 400 embedded in 40 s (10/s): 10 s left; the model ran
        // 20 s of the 40, so 2,000 tokens/s; an embedder without tokens gives chunks/s
        let v = view(&snapshot((1000, 1000), 500, 400, 40_000, 40));
        assert_eq!((v.pos, v.len), (400, 500));
        assert_eq!(
            v.line,
            "400 of 500 chunks embedded · 40 documents read (100%) · 2000 tokens/s · eta 10s"
        );
        let v = view(&snapshot((1000, 1000), 500, 400, 0, 40));
        assert!(v.line.contains("20.0 chunks/s"), "{}", v.line);
        // queued, nothing embedded yet (the model's first batch): no rate to go by
        let v = view(&snapshot((1000, 1000), 500, 0, 0, 3));
        assert!(v.line.starts_with("0 of 500 chunks") && v.line.ends_with("eta ?"));
    }

    #[test]
    fn an_empty_input_or_a_file_that_grew_does_not_underflow() {
        let v = view(&snapshot((0, 0), 0, 0, 0, 0));
        assert_eq!(v.line, "40 documents read (100%) · eta 0s");
        let v = view(&snapshot((1200, 1000), 10, 10, 0, 5));
        assert_eq!((v.pos, v.len), (10, 10));
        assert!(v.line.ends_with("eta 0s"), "{}", v.line);
    }
}
