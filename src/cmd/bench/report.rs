//! What `quarry bench scale` reports: [`Report`], printed as one JSON document (`--json`) or as
//! text ([`render`]): the corpus, the build stages, sizes on disk, the server's restart time and
//! memory, and one table of recall and latency per query mode, permitted fraction and number of
//! client threads.

use std::fmt::Write as _;

/// The whole measurement. The headline keys come first; `stages` and `cells` hold the detail.
#[derive(Debug, serde::Serialize)]
pub(super) struct Report {
    pub(super) chunks: u64,
    /// Seconds of the engine's build stages (ingesting the documents and their vectors); 0 with
    /// `--reuse`, which builds nothing.
    pub(super) build_seconds: f64,
    /// Seconds of the two ingests of the same inputs again (`--reingest`), absent without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reingest_seconds: Option<f64>,
    /// Seconds of `--rebuild-index`'s rebuild, and the peak memory of its process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) rebuild_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) rebuild_peak_rss_bytes: Option<u64>,
    /// Vector search against the exact scan, everything permitted.
    pub(super) recall_at_10: f64,
    /// Vector queries per second, everything permitted, 2 client threads.
    pub(super) vector_qps: f64,
    /// Hybrid latency, everything permitted, 1 client thread.
    pub(super) hybrid_p50_ms: f64,
    pub(super) hybrid_p99_ms: f64,
    /// The server's resident memory after every query ran, and its peak.
    pub(super) rss_bytes: u64,
    pub(super) rss_peak_bytes: u64,
    /// From starting a server on the built data directory to its first answer.
    pub(super) restart_seconds: f64,
    /// One entry per permitted fraction, 1 (everything) first.
    pub(super) filtered: Vec<Filtered>,
    pub(super) seed: u64,
    /// Queries of the recall measurement, per permitted fraction.
    pub(super) queries: usize,
    /// Queries of each latency cell.
    pub(super) latency_queries: usize,
    pub(super) words: String,
    pub(super) vectors: String,
    /// Mean cosine of a document's vector to the reference vector it was made from.
    pub(super) vector_mean_cosine: f64,
    /// The embedder whose vectors the collection holds.
    pub(super) embedder: String,
    /// Calls to the embedding model while the server ran (expected: 0).
    pub(super) model_calls: u64,
    pub(super) sizes: Sizes,
    pub(super) stages: Vec<Stage>,
    /// Seconds of the exact scan (the recall oracle), in the bench process.
    pub(super) exact_scan_seconds: f64,
    pub(super) cells: Vec<Cell>,
    /// The data directory, when it is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) data_dir: Option<String>,
}

/// Recall and tail latency at one permitted fraction.
#[derive(Debug, serde::Serialize)]
pub(super) struct Filtered {
    pub(super) permitted_fraction: f64,
    pub(super) permitted_docs: usize,
    /// Vector search against the exact scan of the permitted documents.
    pub(super) recall_at_10: f64,
    /// Hybrid p99, 1 client thread.
    pub(super) p99_ms: f64,
    /// Vector p99, 1 client thread.
    pub(super) vector_p99_ms: f64,
}

/// One build stage.
#[derive(Debug, serde::Serialize)]
pub(super) struct Stage {
    pub(super) stage: String,
    pub(super) seconds: f64,
    pub(super) chunks_per_second: f64,
    /// The peak resident memory of the stage's `quarry` process, when it ran one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) peak_rss_bytes: Option<u64>,
}

/// Bytes on disk after the build.
#[derive(Debug, Default, serde::Serialize)]
pub(super) struct Sizes {
    /// `catalog.sqlite3` with its `-wal` and `-shm` files.
    pub(super) catalog_bytes: u64,
    pub(super) bm25_bytes: u64,
    pub(super) vectors_bytes: u64,
    /// The whole data directory but the bench's own inputs.
    pub(super) total_bytes: u64,
}

/// One latency cell.
#[derive(Debug, serde::Serialize)]
pub(super) struct Cell {
    pub(super) mode: String,
    pub(super) permitted_fraction: f64,
    pub(super) threads: usize,
    pub(super) queries: usize,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) qps: f64,
}

/// A byte count as people read it.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    if unit == "B" {
        format!("{n} B")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// A fraction as a percentage: 100 %, 50 %, 0.1 %.
fn percent(f: f64) -> String {
    let p = f * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}

/// The report as text.
pub(super) fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "quarry bench scale: {} chunks, seed {}, embedder {}",
        r.chunks, r.seed, r.embedder
    );
    let _ = writeln!(o, "  words:   {}", r.words);
    let _ = writeln!(
        o,
        "  vectors: {}; mean cosine to the base {:.3}",
        r.vectors, r.vector_mean_cosine
    );
    let _ = writeln!(
        o,
        "\n{:<28} {:>10} {:>12} {:>12}",
        "stage", "seconds", "chunks/s", "peak RSS"
    );
    for s in &r.stages {
        let peak = s.peak_rss_bytes.map_or(String::new(), bytes);
        let _ = writeln!(
            o,
            "{:<28} {:>10.2} {:>12.0} {peak:>12}",
            s.stage, s.seconds, s.chunks_per_second
        );
    }
    let _ = writeln!(
        o,
        "{:<28} {:>10.2}",
        "build (the two ingests)", r.build_seconds
    );
    if let Some(seconds) = r.reingest_seconds {
        let _ = writeln!(o, "{:<28} {:>10.2}", "re-ingest (unchanged)", seconds);
    }
    let s = &r.sizes;
    let _ = writeln!(
        o,
        "\non disk: catalog {}, BM25 {}, vectors {}, total {}",
        bytes(s.catalog_bytes),
        bytes(s.bm25_bytes),
        bytes(s.vectors_bytes),
        bytes(s.total_bytes)
    );
    let _ = writeln!(
        o,
        "server: restart to first answer {:.2} s, RSS {} (peak {}), model calls {}",
        r.restart_seconds,
        bytes(r.rss_bytes),
        bytes(r.rss_peak_bytes),
        r.model_calls
    );
    let _ = writeln!(
        o,
        "exact scan for recall: {:.1} s ({} queries per fraction; {} per latency cell)",
        r.exact_scan_seconds, r.queries, r.latency_queries
    );
    let _ = writeln!(
        o,
        "\n{:>9} {:>9} {:<7} {:>9} | {:>9} {:>9} {:>8} | {:>9} {:>9} {:>8}",
        "permitted",
        "docs",
        "mode",
        "recall@10",
        "1t p50",
        "1t p99",
        "1t QPS",
        "2t p50",
        "2t p99",
        "2t QPS"
    );
    for f in &r.filtered {
        for mode in ["bm25", "vector", "hybrid"] {
            let cell = |threads: usize| {
                r.cells.iter().find(|c| {
                    c.mode == mode
                        && c.threads == threads
                        && c.permitted_fraction == f.permitted_fraction
                })
            };
            let recall = if mode == "vector" {
                format!("{:.4}", f.recall_at_10)
            } else {
                String::new()
            };
            let mut line = format!(
                "{:>9} {:>9} {:<7} {:>9}",
                percent(f.permitted_fraction),
                f.permitted_docs,
                mode,
                recall
            );
            for threads in [1, 2] {
                match cell(threads) {
                    Some(c) => {
                        let _ = write!(
                            line,
                            " | {:>6.2} ms {:>6.2} ms {:>8.0}",
                            c.p50_ms, c.p99_ms, c.qps
                        );
                    }
                    None => line.push_str(" |"),
                }
            }
            let _ = writeln!(o, "{line}");
        }
    }
    if let Some(dir) = &r.data_dir {
        let _ = writeln!(o, "\ndata directory (kept): {dir}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_fractions_read_well() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
        assert_eq!(percent(0.001), "0.1 %");
        assert_eq!(percent(1.0), "100 %");
    }
}
