//! Snapshots: a consistent copy of a data directory taken while it serves and writes
//! ([`Engine::snapshot`](crate::Engine::snapshot)), checked ([`verify`]) and brought back ([`restore`]).
//!
//! A snapshot is a folder:
//!
//! ```text
//! <snapshot>/
//!   snapshot.json        the manifest: format, quarry version, creation time, every collection
//!                        with its generations, and the size and blake3 hash of every file
//!   catalog.sqlite3      the catalog, one consistent state (SQLite's `VACUUM INTO`)
//!   collections/…        the derived indexes (BM25, vector dumps) as they were at a generation
//!                        at or before the catalog's
//!   quarry.toml          the data directory's configuration file, when it has one
//! ```
//!
//! **Consistency.** The catalog is the truth and the indexes are derived from it, so a snapshot
//! needs one consistent catalog and, for each collection, derived files of one generation at or
//! before the catalog's whose change log the catalog still holds: opening the restored directory
//! then replays the log into them (`Engine::recover`), exactly as after a crash. The derived files
//! are taken under the writer lock, for as long as it takes to hard-link them into a staging
//! folder of the data directory (tantivy's files and vector dumps are never changed in place, so
//! the links keep the state of that moment while writers go on); a hold at the older of their two
//! generations (`index_holds`) keeps writers from pruning the change log they need. The catalog is
//! copied next, outside the lock (SQLite's read transaction gives one state while others commit),
//! then the staged files are copied and the holds released. A derived file that does not match
//! anyway is rebuilt from the catalog on open, as any damaged one.
//!
//! Everything is written into a temporary folder beside the destination and renamed into place at
//! the end, so a failed snapshot leaves no snapshot, and a failed restore leaves the data
//! directory as it was.

mod create;
mod files;
mod manifest;
mod restore;

pub use create::{SnapshotSummary, check_name, default_dir, timestamp_name};
pub use manifest::{
    FORMAT, MANIFEST, Manifest, SnapshotCollection, SnapshotFile, read_manifest, verify,
};
pub use restore::{RestoreSummary, restore};

#[cfg(test)]
mod tests;
