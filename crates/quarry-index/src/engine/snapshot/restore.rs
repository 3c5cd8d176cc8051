//! Restoring a snapshot into a data directory ([`restore`]): checked while it is copied, and
//! renamed into place only when complete.

use super::files::{TempDir, copy_hashed, last_name, parent_of, sync_dir, unique};
use super::manifest::{CATALOG, COLLECTIONS, SnapshotCollection, mismatch, read_manifest};
use crate::catalog::Catalog;
use crate::engine::state::OPEN_LOCK;
use crate::error::{Error, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RestoreSummary {
    pub data_dir: PathBuf,
    pub snapshot: PathBuf,
    /// When the snapshot was taken.
    pub created_at: i64,
    pub collections: Vec<SnapshotCollection>,
    pub files: usize,
    pub bytes: u64,
    /// Whether a non-empty data directory was replaced (`--force`).
    pub replaced: bool,
    pub seconds: f64,
}

/// What is at the place a restore goes to.
pub(super) enum Target {
    Absent,
    Empty,
    NonEmpty,
}

pub(super) fn target(data_dir: &Path) -> Result<Target> {
    match std::fs::symlink_metadata(data_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Target::Absent),
        Err(e) => Err(Error::io(data_dir, e)),
        Ok(m) if !m.is_dir() => Err(Error::Input(format!(
            "data dir {} is not a folder; give --data-dir a folder to restore into",
            data_dir.display()
        ))),
        Ok(_) => {
            let mut entries = std::fs::read_dir(data_dir).map_err(|e| Error::io(data_dir, e))?;
            Ok(if entries.next().is_none() {
                Target::Empty
            } else {
                Target::NonEmpty
            })
        }
    }
}

/// Refuses a data directory a quarry process is using: every engine holds a shared lock on
/// `open.lock` while it has the directory open, and a writer holds `writer.lock`. Returns both
/// locks, held exclusively, to keep quarry processes out until the restore is done.
pub(super) fn lock_unused(data_dir: &Path) -> Result<Vec<File>> {
    let mut held = Vec::new();
    for name in [OPEN_LOCK, "writer.lock"] {
        let path = data_dir.join(name);
        if !path.is_file() {
            continue;
        }
        let file = File::options()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => held.push(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Busy(format!(
                    "data dir {} is in use by a quarry process; stop every quarry process using                      it (serve, ingest, …) and run the restore again",
                    data_dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
    }
    Ok(held)
}

/// Restores `snapshot` into `data_dir`: refused when `data_dir` holds anything, unless `force`
/// (then refused while a quarry process uses it, and its content replaced). Every file is checked
/// against the manifest while it is copied into a temporary folder beside `data_dir`, the
/// catalog is checked (`quick_check`) there, and only then is the folder renamed into place; a
/// failure on the way leaves `data_dir` as it was. The derived indexes are brought to the
/// catalog's generation when the restored directory is first opened.
pub fn restore(snapshot: &Path, data_dir: &Path, force: bool) -> Result<RestoreSummary> {
    let started = Instant::now();
    let manifest = read_manifest(snapshot)?;
    let name = last_name(data_dir, "data dir")?;
    let existing = target(data_dir)?;
    let mut locks = Vec::new();
    if let Target::NonEmpty = existing {
        if !force {
            return Err(Error::Input(format!(
                "data dir {} is not empty; restore into a new or empty folder (--data-dir), or \
                 pass --force to replace its content with the snapshot",
                data_dir.display()
            )));
        }
        if let (Ok(snap), Ok(data)) = (snapshot.canonicalize(), data_dir.canonicalize())
            && snap.starts_with(&data)
        {
            return Err(Error::Input(format!(
                "snapshot {} lies inside the data dir it would replace; move it out first",
                snapshot.display()
            )));
        }
        locks = lock_unused(data_dir)?;
    }
    let parent = parent_of(data_dir);
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let id = unique();
    let tmp = TempDir::create(parent.join(format!(".{name}.restore-{id}")))?;
    for f in &manifest.files {
        let (src, dst) = (snapshot.join(&f.path), tmp.path().join(&f.path));
        let dir = parent_of(&dst);
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let (bytes, blake3) = match copy_hashed(&src, &dst) {
            Ok(h) => h,
            Err(Error::Io { path, source })
                if path == src && source.kind() == std::io::ErrorKind::NotFound =>
            {
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
    let collections = tmp.path().join(COLLECTIONS);
    std::fs::create_dir_all(&collections).map_err(|e| Error::io(&collections, e))?;
    // The catalog as the engine opens it: checked, migrated if older, refused if newer.
    drop(Catalog::open(&tmp.path().join(CATALOG))?);
    sync_dir(tmp.path());

    let replaced = matches!(existing, Target::NonEmpty);
    match existing {
        Target::Absent => {
            std::fs::rename(tmp.path(), data_dir).map_err(|e| Error::io(data_dir, e))?;
        }
        Target::Empty => {
            std::fs::remove_dir(data_dir).map_err(|e| Error::io(data_dir, e))?;
            std::fs::rename(tmp.path(), data_dir).map_err(|e| Error::io(data_dir, e))?;
        }
        Target::NonEmpty => {
            let old = parent.join(format!(".{name}.replaced-{id}"));
            std::fs::rename(data_dir, &old).map_err(|e| Error::io(data_dir, e))?;
            if let Err(e) = std::fs::rename(tmp.path(), data_dir) {
                // Put the old content back: a failed restore loses nothing.
                let _ = std::fs::rename(&old, data_dir);
                return Err(Error::io(data_dir, e));
            }
            drop(std::mem::take(&mut locks));
            if let Err(e) = std::fs::remove_dir_all(&old) {
                tracing::warn!(old = %old.display(), error = %e, "the replaced data dir could not be removed; remove it by hand");
            }
        }
    }
    tmp.keep();
    sync_dir(parent);
    Ok(RestoreSummary {
        data_dir: data_dir.to_owned(),
        snapshot: snapshot.to_owned(),
        created_at: manifest.created_at,
        bytes: manifest.files.iter().map(|f| f.bytes).sum(),
        files: manifest.files.len(),
        collections: manifest.collections,
        replaced,
        seconds: started.elapsed().as_secs_f64(),
    })
}
