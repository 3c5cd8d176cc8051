//! Snapshots: a consistent copy of a data directory taken while it serves and writes
//! ([`Engine::snapshot`]), checked ([`verify`]) and brought back ([`restore`]).
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

use super::state::{Engine, OPEN_LOCK};
use crate::Cancel;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

/// The version of the snapshot layout this quarry writes and reads.
pub const FORMAT: u32 = 1;
/// The manifest's file name inside a snapshot.
pub const MANIFEST: &str = "snapshot.json";
const CATALOG: &str = "catalog.sqlite3";
const CONFIG: &str = "quarry.toml";
const COLLECTIONS: &str = "collections";

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// What [`Engine::snapshot`] made.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SnapshotSummary {
    pub path: PathBuf,
    pub created_at: i64,
    pub collections: Vec<SnapshotCollection>,
    pub files: usize,
    pub bytes: u64,
    pub seconds: f64,
}

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

/// A name unique to this call: process id and nanoseconds.
fn unique() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

/// A folder removed when dropped, unless [`TempDir::keep`] was called.
struct TempDir(Option<PathBuf>);

impl TempDir {
    fn create(path: PathBuf) -> Result<Self> {
        std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
        Ok(TempDir(Some(path)))
    }

    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    fn keep(mut self) {
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

/// Releases the change-log holds of a snapshot when dropped.
struct Holds<'a> {
    engine: &'a Engine,
    holder: String,
}

impl Drop for Holds<'_> {
    fn drop(&mut self) {
        let _ = self.engine.catalog().release_holds(&self.holder);
    }
}

/// The folder a path lies in, `.` for a bare name.
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The last component of `path` as text, for the names of temporary siblings.
fn last_name(path: &Path, what: &str) -> Result<String> {
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
fn transient(name: &str) -> bool {
    name.ends_with(".lock") || name.ends_with(".tmp") || name.starts_with(".tmp")
}

/// Mirrors the regular files of `src` into `dst` as hard links (a copy where the file system
/// cannot link), leaving out locks and temporary files.
fn link_tree(src: &Path, dst: &Path) -> Result<()> {
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
fn copy_hashed(src: &Path, dst: &Path) -> Result<(u64, String)> {
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

/// Size and blake3 hash of a file.
fn hash_file(path: &Path) -> Result<(u64, String)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file).map_err(|e| Error::io(path, e))?;
    let bytes = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    Ok((bytes, hasher.finalize().to_hex().to_string()))
}

/// Copies every regular file under `src` into `root/rel`, recording each in `files`.
fn copy_tree(src: &Path, root: &Path, rel: &str, files: &mut Vec<SnapshotFile>) -> Result<()> {
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
fn bm25_generation(dir: &Path) -> u64 {
    std::fs::read(dir.join("meta.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|m| m["payload"].as_str().and_then(|p| p.parse().ok()))
        .unwrap_or(0)
}

/// fsyncs a folder, so the renames inside it are durable (best effort where folders cannot be
/// opened).
fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Copies the catalog at `src` into the new file `dst` as one consistent state, while other
/// connections and processes go on writing, and readies the copy: holds of running processes
/// dropped, a single file (no write-ahead log). Returns the copy's collections and generations.
fn copy_catalog(src: &Path, dst: &Path) -> Result<Vec<(String, u64)>> {
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
fn now() -> i64 {
    crate::catalog::now()
}

impl Engine {
    /// Writes a consistent copy of the data directory to `dest`, a folder that must not exist yet
    /// (its parent is created). Writers of this and other processes go on meanwhile; they wait
    /// only while the index files are hard-linked. `cancel` can stop it until the final rename:
    /// a cancelled snapshot leaves nothing behind. See the module documentation.
    pub fn snapshot(&self, dest: &Path, cancel: Option<&Cancel>) -> Result<SnapshotSummary> {
        let started = Instant::now();
        let name = last_name(dest, "snapshot path")?;
        if dest.symlink_metadata().is_ok() {
            return Err(Error::Conflict(format!(
                "{} already exists; a snapshot goes to a new folder: choose another name or path",
                dest.display()
            )));
        }
        let parent = parent_of(dest);
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        if let (Ok(p), Ok(d)) = (parent.canonicalize(), self.dir.canonicalize())
            && p.starts_with(&d)
        {
            return Err(Error::Input(format!(
                "{} lies inside the data dir; put snapshots outside it (a restore with --force \
                 replaces everything inside)",
                dest.display()
            )));
        }
        self.remove_stale_staging();
        let id = unique();
        let tmp = TempDir::create(parent.join(format!(".{name}.tmp-{id}")))?;
        // Vector graphs this process holds in memory are dumped first, so the snapshot's dumps are
        // recent and a restore replays little.
        self.flush()?;

        // 1. The derived files of one moment, linked under the writer lock, and the change log
        //    they need held.
        let staging = TempDir::create(self.dir.join(format!(".snapshot-staging-{id}")))?;
        let holds = Holds {
            engine: self,
            holder: format!("snapshot-{id}"),
        };
        let derived = self.with_write_lock(|| {
            link_tree(
                &self.dir.join(COLLECTIONS),
                &staging.path().join(COLLECTIONS),
            )?;
            let rows = self.catalog().collections()?;
            let mut derived = BTreeMap::new();
            for row in rows {
                let dir = staging.path().join(COLLECTIONS).join(&row.name);
                let bm25 = bm25_generation(&dir.join("bm25"));
                let vectors = row.active_version.as_ref().map(|v| {
                    crate::vectors::dump_generation(&dir.join("vectors").join(v)).unwrap_or(0)
                });
                let need = bm25.min(vectors.unwrap_or(u64::MAX));
                self.catalog().hold(&row.name, &holds.holder, need)?;
                derived.insert(row.name, (bm25, vectors));
            }
            Ok(derived)
        })?;

        // 2. The catalog: one consistent state, at or after the derived files' generations.
        let catalog_generations = copy_catalog(&self.dir.join(CATALOG), &tmp.path().join(CATALOG))?;
        let mut files = Vec::new();
        let (bytes, blake3) = hash_file(&tmp.path().join(CATALOG))?;
        files.push(SnapshotFile {
            path: CATALOG.into(),
            bytes,
            blake3,
        });

        // 3. The staged derived files, copied; then the holds go.
        copy_tree(
            &staging.path().join(COLLECTIONS),
            tmp.path(),
            COLLECTIONS,
            &mut files,
        )?;
        drop(staging);
        drop(holds);
        let config = self.dir.join(CONFIG);
        if config.is_file() {
            let (bytes, blake3) = copy_hashed(&config, &tmp.path().join(CONFIG))?;
            files.push(SnapshotFile {
                path: CONFIG.into(),
                bytes,
                blake3,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));

        let collections: Vec<SnapshotCollection> = catalog_generations
            .into_iter()
            .map(|(name, generation)| {
                let (bm25, vectors) = derived.get(&name).copied().unwrap_or((0, None));
                SnapshotCollection {
                    name,
                    generation,
                    bm25_generation: bm25,
                    vector_generation: vectors,
                }
            })
            .collect();
        let manifest = Manifest {
            format: FORMAT,
            quarry_version: env!("CARGO_PKG_VERSION").into(),
            created_at: now(),
            collections,
            files,
        };
        let json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Corrupt(e.to_string()))?;
        let path = tmp.path().join(MANIFEST);
        File::create_new(&path)
            .and_then(|mut f| f.write_all(&json).and_then(|()| f.sync_all()))
            .map_err(|e| Error::io(&path, e))?;
        sync_dir(tmp.path());

        if cancel.is_some_and(|c| !c.begin_commit()) {
            return Err(Error::Cancelled(
                "the snapshot was cancelled (the request timed out or the server is stopping); \
                 nothing was written"
                    .into(),
            ));
        }
        std::fs::rename(tmp.path(), dest).map_err(|e| Error::io(dest, e))?;
        tmp.keep();
        sync_dir(parent);
        tracing::info!(snapshot = %dest.display(), files = manifest.files.len(), "snapshot written");
        Ok(SnapshotSummary {
            path: dest.to_owned(),
            created_at: manifest.created_at,
            bytes: manifest.files.iter().map(|f| f.bytes).sum(),
            files: manifest.files.len(),
            collections: manifest.collections,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

impl Engine {
    /// Removes staging folders a snapshot that died left in the data directory (older than a
    /// day: no snapshot links files for that long).
    fn remove_stale_staging(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let stale = entry
                .file_name()
                .to_string_lossy()
                .starts_with(".snapshot-staging-")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 86_400);
            if stale {
                tracing::info!(dir = %entry.path().display(), "removing a dead snapshot's staging folder");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// The default folder of snapshots taken over HTTP: `<data-dir>-snapshots` beside the data
/// directory (outside it, so a restore with `--force` never removes the snapshots, and a lost data
/// directory does not take them along).
pub fn default_dir(data_dir: &Path) -> PathBuf {
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    match (dir.parent(), dir.file_name()) {
        (Some(parent), Some(name)) => parent.join(format!("{}-snapshots", name.to_string_lossy())),
        _ => dir.join("snapshots"),
    }
}

/// The name of a snapshot taken at `unix_millis` (UTC): `YYYYMMDD-HHMMSS-mmm`, e.g.
/// `20261204-125501-042`, so names sort by time.
pub fn timestamp_name(unix_millis: u64) -> String {
    let (secs, millis) = (unix_millis / 1000, unix_millis % 1000);
    let (year, month, day, hour, minute, second) = quarry_core::time::utc(secs);
    format!("{year:04}{month:02}{day:02}-{hour:02}{minute:02}{second:02}-{millis:03}")
}

/// Checks a snapshot name given over HTTP: 1 to 64 of `[A-Za-z0-9_-]`, so it names one folder
/// inside the snapshot folder and nothing else.
pub fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "invalid snapshot name {name:?}: use 1 to 64 letters, digits, `_` or `-`"
        )))
    }
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
fn mismatch(snapshot: &Path, file: &SnapshotFile, got: &str) -> Error {
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

/// What is at the place a restore goes to.
enum Target {
    Absent,
    Empty,
    NonEmpty,
}

fn target(data_dir: &Path) -> Result<Target> {
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
fn lock_unused(data_dir: &Path) -> Result<Vec<File>> {
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

#[cfg(test)]
mod tests;
