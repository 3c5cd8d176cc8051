//! Taking a snapshot ([`Engine::snapshot`]) while the engine serves and writes, and naming
//! snapshots taken over HTTP.

use super::files::{
    TempDir, bm25_generation, copy_catalog, copy_hashed, copy_tree, last_name, link_tree, now,
    parent_of, sync_dir, unique,
};
use super::manifest::{
    CATALOG, COLLECTIONS, CONFIG, FORMAT, MANIFEST, Manifest, SnapshotCollection, SnapshotFile,
    hash_file,
};
use crate::Cancel;
use crate::engine::state::Engine;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What [`Engine::snapshot`] made.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SnapshotSummary {
    #[schema(value_type = String)]
    pub path: PathBuf,
    pub created_at: i64,
    pub collections: Vec<SnapshotCollection>,
    pub files: usize,
    pub bytes: u64,
    pub seconds: f64,
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
                let vectors = row.active_index.as_ref().map(|v| {
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
