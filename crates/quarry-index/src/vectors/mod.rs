//! The vector index of one collection and one embedding fingerprint: an HNSW graph (hnsw_rs) over
//! L2-normalised vectors, with cosine similarity as `1 − dot`.
//!
//! - **Vectors are stored on their own**, in the catalog's `embeddings` table keyed by
//!   `(fingerprint, chunk_hash)` (which is also the embedding cache). The graph is derived: it can
//!   always be rebuilt from there without calling a model.
//! - **Points are append-only.** Point `i` is the `i`-th chunk inserted. A chunk that leaves the
//!   collection becomes a tombstone: it stays in the graph (so traversal still works) and is filtered
//!   out of results. Past [`VectorParams::rebuild_tombstone_ratio`] the graph is rebuilt from the live
//!   vectors.
//! - **Snapshots.** Readers get a [`VectorSnapshot`]: the points that existed at one generation and
//!   the tombstones of that generation. Writers append to the shared graph concurrently (hnsw_rs
//!   inserts through `&self`); a snapshot filters out points newer than itself.
//! - **Exact search below a size threshold.** With fewer live points than
//!   [`VectorParams::exact_threshold`] a query scans every vector: exact, and as fast as the graph at
//!   that size.
//! - **Persistence.** [`VectorIndex::dump`] writes the graph, the point ids and the tombstones to a
//!   new folder and then switches `manifest.json` to it (write, fsync, rename), with the generation
//!   it reflects and the blake3 hash of every file. On open every file is hashed and compared
//!   before hnsw_rs reads a byte of it (hnsw_rs trusts the lengths in its files: a damaged one can
//!   make it allocate petabytes or exit the process), then the graph is reloaded and the catalog's
//!   change log since that generation replayed. A missing, damaged or unverifiable dump (one
//!   written before dumps had hashes) means a rebuild from the stored vectors, with a warning.
//!   A dump never replaces a newer one another process wrote.

mod build;
mod bulk;
mod codes;
mod dump;
mod flat;
mod graph;
mod index;
mod params;
mod part;
mod rows;
mod scored;
mod segment;
mod simd;
mod snapshot;

pub use bulk::BulkBuild;
pub use dump::{drop_dump, dump_generation, dump_holds_any, dump_points, dump_sealed};
pub use index::VectorIndex;
pub use params::{IndexParams, Quantization, VectorParams};
pub use simd::dot;
pub use snapshot::{FilterPlan, Permitted, VectorSnapshot};

#[cfg(test)]
mod tests;
