//! A snapshot's manifest (`snapshot.json`): the [`Manifest`] of its collections and files,
//! reading it with its format checked ([`read_manifest`]), and checking every file against it
//! ([`verify`]).

use crate::error::{Error, Result};
use std::fs::File;
use std::path::{Component, Path};

/// The version of the snapshot layout this quarry writes and reads.
pub const FORMAT: u32 = 1;
/// The manifest's file name inside a snapshot.
pub const MANIFEST: &str = "snapshot.json";
pub(super) const CATALOG: &str = "catalog.sqlite3";
pub(super) const CONFIG: &str = "quarry.toml";
pub(super) const COLLECTIONS: &str = "collections";

/// A snapshot's manifest (`snapshot.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The quarry that wrote it.
    pub quarry_version: String,
    /// Unix time (seconds) when it was taken.
    pub created_at: i64,
    pub collections: Vec<SnapshotCollection>,
    /// Every file of the snapshot but the manifest, sorted by path.
    pub files: Vec<SnapshotFile>,
}

/// A collection as a snapshot holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SnapshotCollection {
    pub name: String,
    /// The catalog's generation: what a restore serves.
    pub generation: u64,
    /// The generation of the BM25 index copied (0: none); a restore replays the change log from
    /// it.
    pub bm25_generation: u64,
    /// The generation of the active version's vector dump copied (0: none, rebuilt from stored
    /// vectors); absent for a collection without vectors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector_generation: Option<u64>,
}

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotFile {
    /// Relative to the snapshot's folder, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// blake3 of its bytes, 64 hex digits.
    pub blake3: String,
}

/// Reads a snapshot's manifest and checks its format (no file is hashed).
pub fn read_manifest(snapshot: &Path) -> Result<Manifest> {
    let path = snapshot.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Input(format!(
                "{} is not a quarry snapshot (it has no {MANIFEST}); give the folder \
                 `quarry snapshot create` wrote",
                snapshot.display()
            )));
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Input(format!(
            "snapshot {} is damaged: {MANIFEST} does not parse ({e}); use another snapshot",
            snapshot.display()
        ))
    })?;
    if manifest.format != FORMAT {
        return Err(Error::Input(format!(
            "snapshot {} has format {} (written by quarry {}); this quarry reads format {FORMAT}: \
             restore it with a quarry of that version",
            snapshot.display(),
            manifest.format,
            manifest.quarry_version
        )));
    }
    for f in &manifest.files {
        let safe = !f.path.is_empty()
            && Path::new(&f.path)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(Error::Input(format!(
                "snapshot {} is damaged: its manifest names the path {:?}, outside the snapshot",
                snapshot.display(),
                f.path
            )));
        }
    }
    if !manifest.files.iter().any(|f| f.path == CATALOG) {
        return Err(Error::Input(format!(
            "snapshot {} is damaged: its manifest lists no {CATALOG}",
            snapshot.display()
        )));
    }
    Ok(manifest)
}

/// The error for a file of a snapshot that does not match its manifest.
pub(super) fn mismatch(snapshot: &Path, file: &SnapshotFile, got: &str) -> Error {
    Error::Input(format!(
        "snapshot {} is damaged: {} {got}, its manifest says {} bytes with blake3 {}. Nothing was \
         restored; use another snapshot",
        snapshot.display(),
        file.path,
        file.bytes,
        file.blake3
    ))
}

/// Checks every file of a snapshot against its manifest (size and blake3).
pub fn verify(snapshot: &Path) -> Result<Manifest> {
    let manifest = read_manifest(snapshot)?;
    for f in &manifest.files {
        let path = snapshot.join(&f.path);
        let (bytes, blake3) = match hash_file(&path) {
            Ok(h) => h,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(mismatch(snapshot, f, "is missing"));
            }
            Err(e) => return Err(e),
        };
        if bytes != f.bytes || blake3 != f.blake3 {
            return Err(mismatch(
                snapshot,
                f,
                &format!("has {bytes} bytes with blake3 {blake3}"),
            ));
        }
    }
    Ok(manifest)
}

/// Size and blake3 hash of a file.
pub(super) fn hash_file(path: &Path) -> Result<(u64, String)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file).map_err(|e| Error::io(path, e))?;
    let bytes = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    Ok((bytes, hasher.finalize().to_hex().to_string()))
}
