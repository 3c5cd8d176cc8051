//! The engine: a data directory with its catalog and per-collection indexes.
//!
//! Writes ([`Engine::apply`]) hold the data directory's writer lock (a file lock, so it also
//! serialises separate processes) and commit one generation:
//! 1. chunks without a stored vector of the collection's embedder are embedded and stored (the
//!    embedding cache; harmless if the rest never commits);
//! 2. the catalog transaction (the durable point);
//! 3. the BM25 index, with the generation as commit payload;
//! 4. the vector index, in memory, dumped to disk now and then with the generation it reflects;
//! 5. both are published to readers together, under the collection's publish lock, so a
//!    [`Searcher`](crate::Searcher) always sees BM25 and vectors of the same generation.
//!
//! If the process dies after step 2, the next open replays the catalog's change log into each
//! derived index from the generation it reflects (`Engine::recover`), so every acknowledged write
//! is searchable and nothing half-written is. The log is pruned only up to the oldest generation a
//! derived index still needs, in this process or in any other that holds a vector graph in memory
//! (`index_holds` in the catalog, renewed while the process lives).
//!
//! **Several processes.** A CLI ingest and a running server share the data directory. The writer
//! lock serialises their writes; every write first catches up with what the others committed.
//! A process that only reads (a server while the CLI ingests) follows the others with
//! [`Engine::refresh`] (the server calls it every 250 ms): it never waits for the writer lock,
//! reloads BM25 at the generation on disk, applies the change log to its vector graph up to that
//! generation from the stored vectors, and publishes both. While another process is still
//! committing a generation, the BM25 snapshot may be one generation ahead of the vectors until
//! the next refresh.

mod embedders;
mod forget;
mod golden;
mod open;
mod read;
mod recover;
mod requantize;
pub mod snapshot;
pub(crate) mod state;
mod stats;
mod versions;
mod write;

pub use crate::collection::{ActiveEmbedder, CollectionSettings, EmbedderSource};
pub use crate::options::EngineOptions;
pub use forget::ForgetReport;
pub use state::Engine;
pub use stats::{CollectionStats, VersionInfo, VersionJob};
pub use versions::CANARY_SIZE;
pub use write::{ApplyStats, Change, PutVectors};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod acl_bm25_tests;
#[cfg(test)]
mod acl_tests;
#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod catalog_check_tests;
#[cfg(test)]
mod export_tests;
#[cfg(test)]
mod feedback_tests;
#[cfg(test)]
mod filter_tests;

#[cfg(test)]
mod shared_dir_tests;

#[cfg(test)]
mod forget_tests;
