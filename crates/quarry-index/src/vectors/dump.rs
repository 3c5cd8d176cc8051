//! The on-disk dump of a vector index: a `dump-<generation>` folder (graph, point ids, tombstones)
//! named by `manifest.json` with the blake3 hash of every file, written durably and verified
//! before hnsw_rs reads it back.

use super::build::Build;
use super::graph::Graph;
use super::params::VectorParams;
use super::segment::{Segment, SegmentEntry, hash_file, sync_dir, write_synced};
use crate::error::{Error, Result};
use quarry_core::ContentHash;
use std::path::Path;
use std::sync::Arc;

/// The manifest of the current dump.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Manifest {
    generation: u64,
    dims: usize,
    points: usize,
    folder: String,
    /// blake3 (hex) of every file of the dump's folder, by file name. Missing in dumps written
    /// before quarry hashed them: such a dump is not loaded.
    #[serde(default)]
    files: Option<std::collections::BTreeMap<String, String>>,
    /// The sealed segments, in id order, covering points `0..` the first open one; the dump's
    /// graph holds the points from there on.
    #[serde(default)]
    segments: Vec<SegmentEntry>,
    /// blake3 (hex) of the manifest's bytes without this field, which is written last
    /// ([`with_digest`]): a damaged digit that still parses (the generation the log is replayed
    /// from, a count) is found, not trusted. The bytes as read are checked, not the manifest
    /// as parsed, so a field a later quarry adds does not fail an older one's check. Missing in
    /// manifests written before quarry added it (their files are still checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
}

/// `json` (an object) with its digest appended as the last field, `"digest"`.
pub(super) fn with_digest(json: &[u8]) -> Vec<u8> {
    let body = json.strip_suffix(b"}").unwrap_or(json);
    let digest = blake3::hash(json).to_hex();
    let mut out = body.to_vec();
    out.extend_from_slice(format!(",\"digest\":\"{digest}\"}}").as_bytes());
    out
}

/// Whether `bytes`, a manifest whose `"digest"` is `digest`, are those [`with_digest`] wrote.
fn digest_holds(bytes: &[u8], digest: &str) -> bool {
    let tail = format!(",\"digest\":\"{digest}\"}}");
    let Some(body) = bytes.strip_suffix(tail.as_bytes()) else {
        return false;
    };
    let mut json = body.to_vec();
    json.push(b'}');
    blake3::hash(&json).to_hex().as_str() == digest
}

/// The files of a dump, each hashed into the manifest.
const DUMP_FILES: [&str; 4] = ["graph.hnsw.graph", "graph.hnsw.data", "ids.bin", "dead.bin"];

/// Reads the manifest of `dir`, `None` when there is none.
fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join("manifest.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
    if let Some(digest) = &m.digest
        && !digest_holds(&bytes, digest)
    {
        return Err(Error::Corrupt(format!(
            "{}: its contents do not match its digest (damaged)",
            path.display()
        )));
    }
    Ok(Some(m))
}

/// The generation of the dump the manifest in `dir` names: `None` without a manifest, or with
/// one that does not parse (either way the index starts from generation 0 when opened).
pub fn dump_generation(dir: &Path) -> Option<u64> {
    read_manifest(dir).ok().flatten().map(|m| m.generation)
}

/// The generation of the dump the manifest of `dir` names and how many points its sealed
/// segments hold; `None` without a manifest that parses.
pub fn dump_sealed(dir: &Path) -> Option<(u64, usize)> {
    let m = read_manifest(dir).ok().flatten()?;
    let sealed = m
        .segments
        .iter()
        .map(|s| s.points)
        .fold(0usize, usize::saturating_add);
    Some((m.generation, sealed))
}

/// How many points (tombstoned ones included) the dump the manifest of `dir` names holds;
/// `None` without a manifest that parses.
pub fn dump_points(dir: &Path) -> Option<usize> {
    read_manifest(dir).ok().flatten().map(|m| m.points)
}

/// The folder the manifest of `dir` names, if it has one that parses.
pub(super) fn current_folder(dir: &Path) -> Option<String> {
    read_manifest(dir).ok().flatten().map(|m| m.folder)
}

/// Whether the dump `manifest.json` of `dir` names has a point (live or a tombstone) of one of
/// `hashes`. A dump that cannot be read counts as holding them.
pub fn dump_holds_any(dir: &Path, hashes: &std::collections::HashSet<ContentHash>) -> bool {
    let m = match read_manifest(dir) {
        Ok(Some(m)) => m,
        Ok(None) => return false,
        Err(_) => return true,
    };
    match read_ids(&dir.join(&m.folder).join("ids.bin"), m.points) {
        Ok(ids) => ids.iter().any(|h| hashes.contains(h)),
        Err(_) => true,
    }
}

/// Deletes the dump of `dir` (its manifest and every `dump-*` folder): the index is rebuilt from
/// the stored vectors when it is next opened.
pub fn drop_dump(dir: &Path) -> Result<()> {
    let manifest = dir.join("manifest.json");
    if manifest.exists() {
        std::fs::remove_file(&manifest).map_err(|e| Error::io(&manifest, e))?;
    }
    let segments = dir.join(super::segment::SEGMENTS);
    if segments.exists() {
        std::fs::remove_dir_all(&segments).map_err(|e| Error::io(&segments, e))?;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("dump-") {
            std::fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(())
}

fn read_ids(path: &Path, n: usize) -> Result<Vec<ContentHash>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() != n * 32 {
        return Err(Error::Corrupt(format!(
            "{} holds {} bytes, expected {}",
            path.display(),
            bytes.len(),
            n * 32
        )));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut a = [0u8; 32];
            a.copy_from_slice(c);
            ContentHash::from_bytes(a)
        })
        .collect())
}

fn read_dead(path: &Path, n: usize) -> Result<Vec<bool>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() != n {
        return Err(Error::Corrupt(format!(
            "{} holds {} bytes, expected {n}",
            path.display(),
            bytes.len()
        )));
    }
    Ok(bytes.into_iter().map(|b| b != 0).collect())
}

/// A dump read back and verified: the points it holds, with their tombstones and graph.
pub(super) struct Loaded {
    pub(super) generation: u64,
    pub(super) hashes: Vec<ContentHash>,
    pub(super) dead: Vec<bool>,
    pub(super) sealed: Vec<Arc<Segment>>,
    pub(super) graph: Graph,
    pub(super) vectors: Vec<f32>,
}

/// Reads back the dump the manifest of `dir` names, `None` without a manifest; an error when any
/// file differs from its hash in the manifest (checked before hnsw_rs reads it).
pub(super) fn read(dir: &Path, dims: usize, params: VectorParams) -> Result<Option<Loaded>> {
    let Some(m) = read_manifest(dir)? else {
        return Ok(None);
    };
    if m.dims != dims {
        return Err(Error::Corrupt(format!(
            "vector dump has {} dimensions, the embedder {dims}",
            m.dims
        )));
    }
    let folder = dir.join(&m.folder);
    let Some(files) = &m.files else {
        return Err(Error::Corrupt(format!(
            "vector dump {} has no file hashes (written by an older quarry), so it cannot be verified",
            folder.display()
        )));
    };
    let mut base = 0usize;
    for s in &m.segments {
        let next = base.checked_add(s.points).filter(|_| s.base == base);
        match next {
            Some(next) if s.points > 0 => base = next,
            _ => {
                return Err(Error::Corrupt(format!(
                    "vector dump {}: segment {} holds points {}..+{} where {base}.. was expected",
                    folder.display(),
                    s.name,
                    s.base,
                    s.points
                )));
            }
        }
    }
    let open_base = base;
    if open_base > m.points {
        return Err(Error::Corrupt(format!(
            "vector dump {}: segments hold {open_base} points of {}",
            folder.display(),
            m.points
        )));
    }
    for name in DUMP_FILES {
        let path = folder.join(name);
        let graph_file = name.starts_with("graph.");
        if graph_file && m.points == open_base {
            continue;
        }
        let expected = files.get(name).ok_or_else(|| {
            Error::Corrupt(format!(
                "vector dump {} has no hash of {name}",
                folder.display()
            ))
        })?;
        if &hash_file(&path)? != expected {
            return Err(Error::Corrupt(format!(
                "{} is damaged (its blake3 hash differs from the manifest's)",
                path.display()
            )));
        }
    }
    let hashes = read_ids(&folder.join("ids.bin"), m.points)?;
    let dead = read_dead(&folder.join("dead.bin"), m.points)?;
    let sealed = m
        .segments
        .iter()
        .map(|s| Segment::open(dir, s, dims).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let (graph, vectors) = if m.points == open_base {
        (Graph::new(params, 1024), Vec::new())
    } else {
        Graph::load(&folder, params, dims, open_base, m.points)?
    };
    Ok(Some(Loaded {
        generation: m.generation,
        hashes,
        dead,
        sealed,
        graph,
        vectors,
    }))
}

/// Writes the dump of `build` (with tombstones `dead`, at `generation`) into `folder`, a folder
/// of `dir` named `folder_name`, and switches the manifest of `dir` to it.
pub(super) fn write(
    dir: &Path,
    dims: usize,
    generation: u64,
    build: &Build,
    dead: &[bool],
    folder: &Path,
    folder_name: &str,
) -> Result<()> {
    if folder.exists() {
        std::fs::remove_dir_all(folder).map_err(|e| Error::io(folder, e))?;
    }
    std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
    for s in &build.sealed {
        s.ensure_on_disk(dir)?;
    }
    let points = build.read_points();
    let n = points.hashes.len();
    let open_base = points.open_base;
    if n > open_base {
        build.graph.dump(folder)?;
    }
    let ids: Vec<u8> = points
        .hashes
        .iter()
        .flat_map(|h| h.as_bytes().iter().copied())
        .collect();
    write_synced(&folder.join("ids.bin"), &ids)?;
    let dead: Vec<u8> = dead.iter().map(|d| u8::from(*d)).collect();
    write_synced(&folder.join("dead.bin"), &dead)?;
    drop(points);
    let mut files = std::collections::BTreeMap::new();
    for name in DUMP_FILES {
        let path = folder.join(name);
        if name.starts_with("graph.") && n == open_base {
            continue;
        }
        // hnsw_rs does not fsync what it writes: do it before the manifest names the file.
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&path, e))?;
        files.insert(name.to_owned(), hash_file(&path)?);
    }
    // the dump folder's entries, and the folder's own in `dir`, before the manifest names them
    // (the files' data is synced; their names are not, until their folder is)
    sync_dir(folder);
    sync_dir(dir);
    let manifest = Manifest {
        generation,
        dims,
        points: n,
        folder: folder_name.to_owned(),
        files: Some(files),
        segments: build.sealed.iter().map(|s| s.entry.clone()).collect(),
        digest: None,
    };
    let json = serde_json::to_vec(&manifest).map_err(|e| Error::Corrupt(e.to_string()))?;
    let json = with_digest(&json);
    let tmp = dir.join("manifest.json.tmp");
    write_synced(&tmp, &json)?;
    let target = dir.join("manifest.json");
    std::fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
    // The rename is durable once the folder is synced; the manifest names the new dump
    // already, so a failure here is only logged.
    sync_dir(dir);
    Ok(())
}
