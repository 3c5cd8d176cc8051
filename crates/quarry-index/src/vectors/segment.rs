//! A sealed segment of a vector index: a run of points `base..base + len` whose graph is frozen
//! as a [`FlatGraph`] (int8 or binary codes and links in memory) and whose full vectors stay on disk, read
//! with positioned reads only to rescore candidates. Written once, never changed, named in the
//! dump manifest with the blake3 hash of both its files and checked against them when opened.
//!
//! Files, in `segments/<name>/` of the index's folder:
//! - `flat.bin`: the flat graph ([`FlatGraph::encode`]);
//! - `vectors.f32`: the points' vectors, `len × dims` little-endian `f32`s, row by row.
//!
//! Positioned reads, not a memory map: the vectors then count against the page cache the kernel
//! can drop, never against the process's resident memory, and a file truncated behind the
//! process's back is an IO error, not a SIGBUS.

use super::codes::{Codec, QueryCodes};
use super::flat::FlatGraph;
use super::graph::Graph;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The folder of the index's folder that holds its sealed segments.
pub(super) const SEGMENTS: &str = "segments";
const FLAT: &str = "flat.bin";
const VECTORS: &str = "vectors.f32";

/// A sealed segment as the dump manifest names it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct SegmentEntry {
    pub(super) name: String,
    /// Its first point id.
    pub(super) base: usize,
    pub(super) points: usize,
    /// blake3 (hex) of each file, by name.
    pub(super) files: BTreeMap<String, String>,
}

pub(super) struct Segment {
    pub(super) entry: SegmentEntry,
    dims: usize,
    flat: FlatGraph,
    vectors: std::fs::File,
    path: PathBuf,
}

pub(super) fn hash_file(path: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    hasher.update_reader(file).map_err(|e| Error::io(path, e))?;
    Ok(hasher.finalize().to_hex().to_string())
}

pub(super) fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    write_rows(path, |w| w.write_all(bytes))
}

/// Writes `path` through a buffer with `rows`, then syncs it.
fn write_rows(
    path: &Path,
    rows: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    rows(&mut w).map_err(|e| Error::io(path, e))?;
    let file = w
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// Syncs a folder, so the names of the files just written in it are durable (best effort: a
/// folder that cannot be opened for it is only logged).
pub(super) fn sync_dir(dir: &Path) {
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not sync a folder");
    }
}

/// A segment name no other segment of any process has had: the time, the process and a counter.
fn fresh_name() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("seg-{nanos:x}-{:x}-{n}", std::process::id())
}

impl Segment {
    /// Seals the points `base..` of `graph`, with their `vectors` (row-major), into a new segment
    /// folder under `dir/segments`, their codes made by `codec`, written and synced before this
    /// returns. `None` when there is no point to seal.
    pub(super) fn seal(
        dir: &Path,
        graph: &Graph,
        base: usize,
        vectors: &[f32],
        (dims, m): (usize, usize),
        codec: Codec,
    ) -> Result<Option<Segment>> {
        let Some(flat) = FlatGraph::from_graph(graph, base, vectors, (dims, m), codec) else {
            return Ok(None);
        };
        let name = fresh_name();
        let segments = dir.join(SEGMENTS);
        let path = segments.join(&name);
        let written = (|| {
            std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            write_rows(&path.join(FLAT), |w| flat.encode_to(w))?;
            write_rows(&path.join(VECTORS), |w| {
                vectors
                    .iter()
                    .try_for_each(|x| w.write_all(&x.to_le_bytes()))
            })?;
            sync_dir(&path);
            sync_dir(&segments);
            let mut files = BTreeMap::new();
            for f in [FLAT, VECTORS] {
                files.insert(f.to_owned(), hash_file(&path.join(f))?);
            }
            let file = path.join(VECTORS);
            let vectors = std::fs::File::open(&file).map_err(|e| Error::io(&file, e))?;
            Ok((files, vectors))
        })();
        let (files, vectors_file) = match written {
            Ok(written) => written,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&path);
                return Err(e);
            }
        };
        Ok(Some(Segment {
            entry: SegmentEntry {
                name,
                base,
                points: vectors.len() / dims,
                files,
            },
            dims,
            flat,
            vectors: vectors_file,
            path,
        }))
    }

    /// Opens the segment `entry` names under `dir/segments`, its files checked against their
    /// hashes first.
    pub(super) fn open(dir: &Path, entry: &SegmentEntry, dims: usize) -> Result<Segment> {
        let path = dir.join(SEGMENTS).join(&entry.name);
        for f in [FLAT, VECTORS] {
            let file = path.join(f);
            let expected = entry.files.get(f).ok_or_else(|| {
                Error::Corrupt(format!("the manifest has no hash of {}", file.display()))
            })?;
            if &hash_file(&file)? != expected {
                return Err(Error::Corrupt(format!(
                    "{} is damaged (its blake3 hash differs from the manifest's)",
                    file.display()
                )));
            }
        }
        let flat_path = path.join(FLAT);
        let bytes = std::fs::read(&flat_path).map_err(|e| Error::io(&flat_path, e))?;
        let flat = FlatGraph::decode(&bytes, dims)
            .map_err(|why| Error::Corrupt(format!("{}: {why}", flat_path.display())))?;
        let file = path.join(VECTORS);
        let vectors = std::fs::File::open(&file).map_err(|e| Error::io(&file, e))?;
        let len = vectors.metadata().map_err(|e| Error::io(&file, e))?.len();
        if flat.len() != entry.points || len != (entry.points * dims * 4) as u64 {
            return Err(Error::Corrupt(format!(
                "segment {} holds {} points and {len} bytes of vectors; the manifest says {} points of {dims} dimensions",
                path.display(),
                flat.len(),
                entry.points
            )));
        }
        Ok(Segment {
            entry: entry.clone(),
            dims,
            flat,
            vectors,
            path,
        })
    }

    /// Writes the segment's folder again when it is gone from `dir/segments` (another writer's
    /// dump removed it while this process still searched it through its open file), so a dump
    /// that names it never names a missing folder. Same bytes, same hashes.
    pub(super) fn ensure_on_disk(&self, dir: &Path) -> Result<()> {
        let path = dir.join(SEGMENTS).join(&self.entry.name);
        let vectors_len = (self.len() * self.dims * 4) as u64;
        let present = |f: &str| std::fs::metadata(path.join(f)).is_ok();
        let sized = std::fs::metadata(path.join(VECTORS)).is_ok_and(|m| m.len() == vectors_len);
        if present(FLAT) && sized {
            return Ok(());
        }
        tracing::warn!(segment = %path.display(), "a sealed vector segment was removed while in use; writing it again");
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        // Each file written aside and renamed into place: a file of that name may still be
        // the one this process reads (a damaged one), never truncated under it.
        let flat_tmp = path.join(format!("{FLAT}.tmp"));
        write_rows(&flat_tmp, |w| self.flat.encode_to(w))?;
        let vectors_tmp = path.join(format!("{VECTORS}.tmp"));
        write_rows(&vectors_tmp, |w| {
            let mut out = Ok(());
            let scanned = self.scan(|_, v| {
                if out.is_ok() {
                    out = v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()));
                }
            });
            scanned.map_err(|e| std::io::Error::other(e.to_string()))?;
            out
        })?;
        for (tmp, name) in [(flat_tmp, FLAT), (vectors_tmp, VECTORS)] {
            let to = path.join(name);
            std::fs::rename(&tmp, &to).map_err(|e| Error::io(&to, e))?;
        }
        sync_dir(&path);
        sync_dir(&dir.join(SEGMENTS));
        Ok(())
    }

    pub(super) fn base(&self) -> usize {
        self.entry.base
    }

    pub(super) fn len(&self) -> usize {
        self.entry.points
    }

    /// Whether point `id` (an index-wide id) is in this segment.
    pub(super) fn holds(&self, id: usize) -> bool {
        (self.base()..self.base() + self.len()).contains(&id)
    }

    /// Bytes the segment holds in memory (its flat graph; the vectors are on disk).
    pub(super) fn bytes(&self) -> usize {
        self.flat.bytes()
    }

    /// How the segment codes its points.
    pub(super) fn codec(&self) -> Codec {
        self.flat.codec()
    }

    /// The approximation by its code of the similarity of the query `q` to point `id` (in this
    /// segment), from memory.
    pub(super) fn approx(&self, q: &QueryCodes, id: usize) -> f32 {
        self.flat.approx(q, (id - self.base()) as u32)
    }

    /// Loads the codes of points `ids` (in this segment) into the CPU's caches, their misses
    /// overlapped ([`FlatGraph::load`]), before [`Segment::approx`] reads them.
    pub(super) fn load(&self, ids: &[usize]) {
        let local: Vec<u32> = ids.iter().map(|id| (id - self.base()) as u32).collect();
        self.flat.load(&local);
    }

    /// Reads the vector of point `id` (in this segment) into `out` (`dims` long).
    pub(super) fn read(&self, id: usize, out: &mut [f32]) -> Result<()> {
        let mut bytes = vec![0u8; self.dims * 4];
        let at = ((id - self.base()) * self.dims * 4) as u64;
        let file = self.path.join(VECTORS);
        self.vectors
            .read_exact_at(&mut bytes, at)
            .map_err(|e| Error::io(&file, e))?;
        for (x, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Ok(())
    }

    /// Calls `f` with every point id of the segment and its vector, in order, reading the file
    /// in blocks of about a megabyte.
    pub(super) fn scan(&self, mut f: impl FnMut(usize, &[f32])) -> Result<()> {
        let row = self.dims * 4;
        let rows_per_block = (1 << 20) / row.max(1) + 1;
        let file = self.path.join(VECTORS);
        let mut bytes = Vec::new();
        let mut v = vec![0f32; self.dims];
        let mut start = 0;
        while start < self.len() {
            let rows = rows_per_block.min(self.len() - start);
            bytes.resize(rows * row, 0);
            self.vectors
                .read_exact_at(&mut bytes, (start * row) as u64)
                .map_err(|e| Error::io(&file, e))?;
            for (i, r) in bytes.chunks_exact(row).enumerate() {
                for (x, b) in v.iter_mut().zip(r.chunks_exact(4)) {
                    *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
                f(self.base() + start + i, &v);
            }
            start += rows;
        }
        Ok(())
    }

    /// The candidates for the `k` nearest points `alive` admits, by their codes (index-wide ids):
    /// see [`FlatGraph::search`].
    pub(super) fn search(
        &self,
        query: &QueryCodes,
        k: usize,
        ef: usize,
        alive: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<(usize, f32)> {
        self.flat.search_from(self.base(), query, k, ef, alive)
    }
}
