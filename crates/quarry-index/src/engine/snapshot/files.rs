//! The file work of snapshots and restores: temporary folders, hard-linked staging, copies that
//! hash what they write, and the catalog's consistent copy (`VACUUM INTO`).

use super::manifest::SnapshotFile;
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A name unique to this call: process id and nanoseconds.
pub(super) fn unique() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

/// A folder removed when dropped, unless [`TempDir::keep`] was called.
pub(super) struct TempDir(Option<PathBuf>);

impl TempDir {
    pub(super) fn create(path: PathBuf) -> Result<Self> {
        std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
        Ok(TempDir(Some(path)))
    }

    pub(super) fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    pub(super) fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// The folder a path lies in, `.` for a bare name.
pub(super) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The last component of `path` as text, for the names of temporary siblings.
pub(super) fn last_name(path: &Path, what: &str) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::Input(format!(
                "{what} {} does not name a folder; give a path such as ./backups/2026-12-04",
                path.display()
            ))
        })
}

/// Whether a file of an index folder is a lock or a temporary file, which a snapshot leaves out.
pub(super) fn transient(name: &str) -> bool {
    name.ends_with(".lock") || name.ends_with(".tmp") || name.starts_with(".tmp")
}

/// Mirrors the regular files of `src` into `dst` as hard links (a copy where the file system
/// cannot link), leaving out locks and temporary files.
pub(super) fn link_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    let entries = match std::fs::read_dir(src) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(src, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(src, e))?;
        let name = entry.file_name();
        let (from, to) = (entry.path(), dst.join(&name));
        let kind = entry.file_type().map_err(|e| Error::io(&from, e))?;
        if kind.is_dir() {
            link_tree(&from, &to)?;
        } else if kind.is_file() && !transient(&name.to_string_lossy()) {
            match std::fs::hard_link(&from, &to) {
                Ok(()) => {}
                // Removed meanwhile (a reader's temporary file): not part of any state.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => {
                    std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
                }
            }
        }
    }
    Ok(())
}

/// Copies `src` to `dst` (created), fsyncs it, and returns its size and blake3 hash (of the bytes
/// written).
pub(super) fn copy_hashed(src: &Path, dst: &Path) -> Result<(u64, String)> {
    let mut input = File::open(src).map_err(|e| Error::io(src, e))?;
    let mut output = File::create_new(dst).map_err(|e| Error::io(dst, e))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(|e| Error::io(src, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n]).map_err(|e| Error::io(dst, e))?;
        bytes += n as u64;
    }
    output.sync_all().map_err(|e| Error::io(dst, e))?;
    Ok((bytes, hasher.finalize().to_hex().to_string()))
}

/// Copies every regular file under `src` into `root/rel`, recording each in `files`.
pub(super) fn copy_tree(
    src: &Path,
    root: &Path,
    rel: &str,
    files: &mut Vec<SnapshotFile>,
) -> Result<()> {
    let dst = root.join(rel);
    std::fs::create_dir_all(&dst).map_err(|e| Error::io(&dst, e))?;
    for entry in std::fs::read_dir(src).map_err(|e| Error::io(src, e))? {
        let entry = entry.map_err(|e| Error::io(src, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let from = entry.path();
        let child = format!("{rel}/{name}");
        let kind = entry.file_type().map_err(|e| Error::io(&from, e))?;
        if kind.is_dir() {
            copy_tree(&from, root, &child, files)?;
        } else if kind.is_file() {
            let (bytes, blake3) = copy_hashed(&from, &root.join(&child))?;
            files.push(SnapshotFile {
                path: child,
                bytes,
                blake3,
            });
        }
    }
    Ok(())
}

/// The generation a BM25 index folder was committed at (its `meta.json` payload), 0 without one.
pub(super) fn bm25_generation(dir: &Path) -> u64 {
    std::fs::read(dir.join("meta.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|m| m["payload"].as_str().and_then(|p| p.parse().ok()))
        .unwrap_or(0)
}

/// fsyncs a folder, so the renames inside it are durable (best effort where folders cannot be
/// opened).
pub(super) fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Copies the catalog at `src` into the new file `dst` as one consistent state, while other
/// connections and processes go on writing, and readies the copy: holds of running processes
/// dropped, a single file (no write-ahead log). Returns the copy's collections and generations.
pub(super) fn copy_catalog(src: &Path, dst: &Path) -> Result<Vec<(String, u64)>> {
    let target = dst.to_str().ok_or_else(|| {
        Error::Input(format!(
            "snapshot path {} is not valid UTF-8; choose another",
            dst.display()
        ))
    })?;
    {
        let conn = rusqlite::Connection::open(src)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute("VACUUM INTO ?1", [target])?;
    }
    let conn = rusqlite::Connection::open(dst)?;
    // The holds are of the processes of the source directory, not of a restored one.
    conn.execute("DELETE FROM index_holds", [])?;
    let collections = conn
        .prepare("SELECT name, generation FROM collections ORDER BY name")?
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    drop(conn);
    File::open(dst)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dst, e))?;
    Ok(collections)
}

/// Unix time now, in seconds.
pub(super) fn now() -> i64 {
    crate::catalog::now()
}
