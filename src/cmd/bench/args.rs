//! The flags of `quarry bench` (clap), and their checks: a bad value is a usage error (exit 2)
//! that names the flag.

use crate::cmd::UsageError;

/// Most chunks a scale bench builds.
pub(super) const MAX_CHUNKS: u64 = 10_000_000;
/// Most queries per measurement.
pub(super) const MAX_QUERIES: usize = 100_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Build a collection of N generated chunks without a model (texts with SciFact's word
    /// frequencies, vectors mixed from SciFact's reference embeddings, nested ACLs) and measure it
    /// through `quarry serve`: build time per stage, sizes on disk, restart time, memory, recall@10
    /// against an exact scan, and p50/p99/QPS of bm25, vector and hybrid queries by permitted
    /// fraction and client threads. Uses `--data-dir` when given (it must not hold a catalog,
    /// unless --reuse), else a temporary folder.
    Scale(ScaleArgs),
}

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Chunks to build, one per document (e.g. 100000 or 1000000).
    #[arg(long)]
    pub chunks: u64,
    /// Queries of the recall measurement, per permitted fraction; each latency cell sends
    /// min(QUERIES, 500).
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Seed of every generated text, vector and ACL.
    #[arg(long, default_value_t = 17)]
    pub seed: u64,
    /// Keep the temporary data directory (and print where it is).
    #[arg(long)]
    pub keep: bool,
    /// Measure the collection an earlier run built in --data-dir (same --chunks and --seed)
    /// instead of refusing a data directory that holds a catalog.
    #[arg(long)]
    pub reuse: bool,
    /// After the build (or with --reuse), write the same inputs again and ingest them into the
    /// collection they built, timed as the stages `re-ingest documents` and `re-ingest vectors`
    /// (`reingest_seconds`): nothing may change.
    #[arg(long)]
    pub reingest: bool,
    /// After the build (and --reingest), rebuild the collection's vector index from its stored
    /// vectors (`quarry reindex --rebuild-index`, the index build of a re-index), timed as the
    /// stage `rebuild the vector index` with its process's peak memory (`rebuild_seconds`,
    /// `rebuild_peak_rss_bytes`); the queries then measure the rebuilt index.
    #[arg(long)]
    pub rebuild_index: bool,
    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,
}

impl ScaleArgs {
    /// Checks the values clap cannot.
    pub(super) fn check(&self) -> Result<(), UsageError> {
        if self.chunks == 0 || self.chunks > MAX_CHUNKS {
            return Err(UsageError(format!(
                "invalid --chunks: {}; build 1 to {MAX_CHUNKS} chunks (e.g. --chunks 100000)",
                self.chunks
            )));
        }
        if self.queries == 0 || self.queries > MAX_QUERIES {
            return Err(UsageError(format!(
                "invalid --queries: {}; use 1 to {MAX_QUERIES}",
                self.queries
            )));
        }
        Ok(())
    }
}
