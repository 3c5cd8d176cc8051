//! A read-only HNSW graph in flat arrays, searched over compact codes (int8 or binary,
//! [`Codec`]) and rescored with the full vectors: the compact form the scale work (issue 17)
//! moves the served index to.
//!
//! hnsw_rs builds the graph; it keeps every vector as `f32` inside its points and every link as
//! an `Arc` to a heap node holding a pointer and a distance, about 4 KB per 384-dimension point
//! (`docs/design.md`, "Scale"). [`FlatGraph::from_graph`] copies the finished graph into:
//!
//! - **codes**: each vector as [`Codec::code_len`] bytes with one `f32` scale (`dims` int8
//!   codes, or `dims / 8` bytes of sign bits: see `codes.rs`);
//! - **layer 0**: `m0` (= 2·M) neighbour ids of 4 bytes a point, padded with [`NONE`];
//! - **upper layers**: the lists of the few points above layer 0 (about one in M), by layer.
//!
//! A search walks the upper layers greedily and layer 0 as a beam of `ef` candidates, like
//! hnsw_rs's own search, but compares the query with codes ([`QueryCodes::approx`]). The
//! beam's live points are then rescored with their full vectors (`exact`, from memory or disk)
//! and the best `k` returned, so quantization error costs recall only where it pushes a true
//! neighbour out of the beam. A filter (`alive`) admits points into the results, never prunes the
//! traversal: the beam still walks through points the caller may not see.

use super::codes::{Codec, QueryCodes};
use super::graph::Graph;
use super::rows::Rows;
use super::scored::Scored;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Sorts `(id, similarity)` pairs best first, equal similarities by id.
pub(super) fn by_similarity<T: Ord>(found: &mut [(T, f32)]) {
    found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
}

/// The best `k` of graph candidates `(id, approximate similarity)`, gathered from one graph or
/// several: the best `keep` ([`Codec::rescored`]`(k)`) by approximation compared exactly
/// (`exact`, the point's full vector), best first, equal similarities by id.
pub(super) fn rescore<T: Copy + Ord, E>(
    mut found: Vec<(T, f32)>,
    keep: usize,
    k: usize,
    mut exact: impl FnMut(T) -> Result<f32, E>,
) -> Result<Vec<(T, f32)>, E> {
    by_similarity(&mut found);
    found.truncate(keep);
    let mut out = found
        .into_iter()
        .map(|(id, _)| Ok((id, exact(id)?)))
        .collect::<Result<Vec<_>, E>>()?;
    by_similarity(&mut out);
    out.truncate(k);
    Ok(out)
}

/// A cursor over the bytes of an encoded graph.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(len).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, String> {
        let len = n.checked_mul(4).ok_or("length overflows")?;
        Ok(self
            .take(len)?
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

/// Padding of a layer-0 neighbour list.
pub(super) const NONE: u32 = u32::MAX;

/// The flat, quantized copy of a finished graph. Point ids are the graph's (the index's point
/// numbers, `0..len`).
///
/// Each point's data is one row of `rows` ([`FlatGraph::stride`] bytes): its scale (`f32`, little
/// endian), its code ([`Codec::code_len`] bytes), then its `m0` layer-0 neighbours (`u32`, little endian, padded with
/// [`NONE`]). A search is bound by memory latency, not arithmetic (each neighbour is a random
/// point of a graph far bigger than the CPU's caches): one row keeps a point's scale, codes and
/// links on adjacent cache lines, so scoring a point costs one miss where three arrays cost three,
/// and expanding it later finds its links already loaded.
pub(super) struct FlatGraph {
    dims: usize,
    codec: Codec,
    /// Bytes of a point's code.
    code_len: usize,
    m0: usize,
    len: usize,
    rows: Rows,
    /// `(layer, point)` → that point's neighbours on that layer (layers ≥ 1).
    upper: HashMap<(u8, u32), Box<[u32]>>,
    entry: u32,
    top: u8,
}

/// Bytes of a scale or a link in a row.
const WORD: usize = 4;

fn word(bytes: &[i8]) -> [u8; 4] {
    std::array::from_fn(|i| bytes[i] as u8)
}

impl FlatGraph {
    /// An empty graph of `n` points: rows of zero codes, scale 0 and no links.
    fn with_points(dims: usize, codec: Codec, m0: usize, n: usize, entry: u32, top: u8) -> Self {
        let code_len = codec.code_len(dims);
        let stride = WORD + code_len + WORD * m0;
        let mut rows = Rows::zeroed(n * stride);
        for row in rows.as_mut_slice().chunks_exact_mut(stride) {
            row[WORD + code_len..].fill(-1); // NONE is all ones
        }
        FlatGraph {
            dims,
            codec,
            code_len,
            m0,
            len: n,
            rows,
            upper: HashMap::new(),
            entry,
            top,
        }
    }

    /// Bytes of one point's row.
    fn stride(&self) -> usize {
        WORD + self.code_len + WORD * self.m0
    }

    fn row(&self, id: u32) -> &[i8] {
        let stride = self.stride();
        &self.rows.as_slice()[id as usize * stride..(id as usize + 1) * stride]
    }

    fn row_mut(&mut self, id: u32) -> &mut [i8] {
        let stride = self.stride();
        &mut self.rows.as_mut_slice()[id as usize * stride..(id as usize + 1) * stride]
    }

    fn set_point(&mut self, id: u32, scale: f32, codes: &[i8]) {
        let len = self.code_len;
        let row = self.row_mut(id);
        for (b, s) in row[..WORD].iter_mut().zip(scale.to_le_bytes()) {
            *b = s as i8;
        }
        row[WORD..WORD + len].copy_from_slice(codes);
    }

    fn set_links(&mut self, id: u32, links: impl Iterator<Item = u32>) {
        let len = self.code_len;
        let row = self.row_mut(id);
        for (slot, d) in row[WORD + len..].chunks_exact_mut(WORD).zip(links) {
            for (b, x) in slot.iter_mut().zip(d.to_le_bytes()) {
                *b = x as i8;
            }
        }
    }

    fn scale(&self, id: u32) -> f32 {
        f32::from_le_bytes(word(self.row(id)))
    }

    fn code(&self, id: u32) -> &[i8] {
        &self.row(id)[WORD..WORD + self.code_len]
    }

    /// Point `id`'s layer-0 neighbours.
    fn links0(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        self.row(id)[WORD + self.code_len..]
            .chunks_exact(WORD)
            .map(|b| u32::from_le_bytes(word(b)))
            .take_while(|&d| d != NONE)
    }

    /// Copies `graph` (whose points are `base..base + vectors.len() / dims`, with these vectors)
    /// into flat arrays, as points `0..` coded by `codec`: point `base + i` of the graph is point
    /// `i` here. `None` for an empty graph.
    pub(super) fn from_graph(
        graph: &Graph,
        base: usize,
        vectors: &[f32],
        (dims, m): (usize, usize),
        codec: Codec,
    ) -> Option<Self> {
        let n = vectors.len() / dims;
        if n == 0 {
            // (hnsw_rs's point iterator panics on an empty graph)
            return None;
        }
        let mut flat = FlatGraph::with_points(dims, codec, 2 * m, n, 0, 0);
        let mut codes = Vec::with_capacity(dims);
        for (id, v) in vectors.chunks_exact(dims).enumerate() {
            codes.clear();
            let scale = codec.encode(v, &mut codes);
            flat.set_point(id as u32, scale, &codes);
        }
        let mut entry = None;
        for point in graph.points() {
            let Some(id) = point.get_origin_id().checked_sub(base).filter(|&id| id < n) else {
                continue;
            };
            let level = point.get_point_id().0;
            if entry.is_none() || level > flat.top {
                entry = Some(id as u32);
                flat.top = level;
            }
            // hnsw_rs also files a point's entry points on the layers above its own level (a
            // trace of its insertion); a search never reads them there
            let lists = point.get_neighborhood_id();
            for (layer, neighbours) in lists.iter().enumerate().take(usize::from(level) + 1) {
                let ids = neighbours
                    .iter()
                    .filter_map(|nb| nb.d_id.checked_sub(base))
                    .filter(|&d| d < n)
                    .map(|d| d as u32);
                if layer == 0 {
                    flat.set_links(id as u32, ids);
                } else if !neighbours.is_empty() {
                    flat.upper.insert((layer as u8, id as u32), ids.collect());
                }
            }
        }
        flat.entry = entry?;
        Some(flat)
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn codec(&self) -> Codec {
        self.codec
    }

    /// Bytes this graph holds in memory (rows and links; the map's own overhead estimated at
    /// 48 bytes an entry).
    pub(super) fn bytes(&self) -> usize {
        self.rows.as_slice().len()
            + self
                .upper
                .values()
                .map(|l| 48 + WORD * l.len())
                .sum::<usize>()
    }

    /// The graph as bytes (the `flat.bin` of a sealed segment): the codec's magic bytes
    /// ([`Codec::magic`]: format 1 is int8), then `dims`, points,
    /// `m0`, entry, top layer and the number of upper lists as little-endian `u32`s, the scales,
    /// the codes, layer 0, and each upper list as layer, point, length and ids.
    #[cfg(test)]
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.bytes());
        // (writing to a Vec cannot fail)
        let _ = self.encode_to(&mut out);
        out
    }

    /// Writes [`FlatGraph::encode`]'s bytes to `out`, a row at a time: a segment is written to
    /// its file without a second copy of the graph in memory.
    pub(super) fn encode_to<W: std::io::Write>(&self, out: &mut W) -> std::io::Result<()> {
        out.write_all(self.codec.magic())?;
        let mut upper: Vec<_> = self.upper.iter().collect();
        upper.sort_by_key(|(key, _)| **key);
        for v in [
            self.dims,
            self.len,
            self.m0,
            self.entry as usize,
            usize::from(self.top),
            upper.len(),
        ] {
            out.write_all(&(v as u32).to_le_bytes())?;
        }
        let ids = 0..self.len as u32;
        for id in ids.clone() {
            out.write_all(&self.scale(id).to_le_bytes())?;
        }
        let mut buf = Vec::with_capacity(self.stride());
        let mut bytes = |row: &[i8], out: &mut W| {
            buf.clear();
            buf.extend(row.iter().map(|c| *c as u8));
            out.write_all(&buf)
        };
        for id in ids.clone() {
            bytes(self.code(id), out)?;
        }
        for id in ids {
            bytes(&self.row(id)[WORD + self.code_len..], out)?;
        }
        for ((layer, id), list) in upper {
            for w in [u32::from(*layer), *id, list.len() as u32] {
                out.write_all(&w.to_le_bytes())?;
            }
            for d in list.iter() {
                out.write_all(&d.to_le_bytes())?;
            }
        }
        Ok(())
    }

    /// Reads back [`FlatGraph::encode`]'s bytes of a graph of `dims` dimensions; every length and
    /// neighbour id is checked, so no byte string makes a search index out of bounds.
    pub(super) fn decode(bytes: &[u8], dims: usize) -> Result<Self, String> {
        let mut r = Reader { bytes, at: 0 };
        let codec =
            Codec::from_magic(r.take(8)?).ok_or("not a quarry flat graph (wrong magic bytes)")?;
        let code_len = codec.code_len(dims);
        let [file_dims, n, m0, entry, top, n_upper] = [(); 6].map(|_| r.u32());
        let (file_dims, n, m0) = (file_dims? as usize, n? as usize, m0? as usize);
        let (entry, top, n_upper) = (entry?, top?, n_upper? as usize);
        if file_dims != dims {
            return Err(format!("{file_dims} dimensions, expected {dims}"));
        }
        if n == 0 || entry as usize >= n || top as usize > 16 || m0 == 0 || m0 > 1024 {
            return Err(format!(
                "bad header: {n} points, entry {entry}, top layer {top}, m0 {m0}"
            ));
        }
        let id_ok = |d: u32| (d as usize) < n;
        // every section is checked to be there before the rows are allocated
        let len = |per: usize| n.checked_mul(per).ok_or("length overflows");
        let scales = r.take(len(WORD)?)?;
        let codes = r.take(len(code_len)?)?;
        let layer0 = r.take(len(m0 * WORD)?)?;
        let mut flat = FlatGraph::with_points(dims, codec, m0, n, entry, top as u8);
        let mut ids = Vec::with_capacity(m0);
        for id in 0..n {
            // the scale's bytes, then the codes, straight into the row
            let head = &mut flat.row_mut(id as u32)[..WORD + code_len];
            let bytes = scales[id * WORD..][..WORD]
                .iter()
                .chain(&codes[id * code_len..][..code_len]);
            for (b, x) in head.iter_mut().zip(bytes) {
                *b = *x as i8;
            }
            ids.clear();
            ids.extend(
                layer0[id * m0 * WORD..][..m0 * WORD]
                    .chunks_exact(WORD)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            if ids.iter().any(|&d| d != NONE && !id_ok(d)) {
                return Err("a layer-0 neighbour is out of range".into());
            }
            flat.set_links(id as u32, ids.iter().copied());
        }
        // each list takes at least 12 bytes: no count allocates more than the bytes could hold
        flat.upper = HashMap::with_capacity(n_upper.min((bytes.len() - r.at) / 12));
        for _ in 0..n_upper {
            let (layer, id, len) = (r.u32()?, r.u32()?, r.u32()? as usize);
            if layer == 0 || layer > top || !id_ok(id) || len > n {
                return Err(format!("bad upper list of point {id} on layer {layer}"));
            }
            let list = r.u32s(len)?;
            if !list.iter().all(|&d| id_ok(d)) {
                return Err("an upper-layer neighbour is out of range".into());
            }
            flat.upper
                .insert((layer as u8, id), list.into_boxed_slice());
        }
        if r.at != bytes.len() {
            return Err(format!("{} bytes after the graph", bytes.len() - r.at));
        }
        Ok(flat)
    }

    /// Approximate similarity of the query to point `id`, by its code.
    pub(super) fn approx(&self, q: &QueryCodes, id: u32) -> f32 {
        q.approx(self.codec, self.scale(id), self.code(id))
    }

    /// Loads the rows of `ids` into the CPU's caches: one read of each cache line of each row,
    /// independent of each other, so the CPU overlaps their misses instead of taking them one
    /// after another as the scoring loop would. (A prefetch instruction would not wait for the
    /// data; `std::arch`'s is `unsafe`, which this crate forbids.)
    pub(super) fn load(&self, ids: &[u32]) {
        let mut acc = 0i8;
        let end = WORD + self.code_len - 1;
        for &id in ids {
            let row = self.row(id);
            for at in (0..end).step_by(64) {
                acc ^= row[at];
            }
            // a row need not start on a line: its last code byte may be on one more
            acc ^= row[end];
        }
        std::hint::black_box(acc);
    }

    /// Point `id`'s neighbours on an upper layer.
    fn upper(&self, layer: u8, id: u32) -> &[u32] {
        self.upper.get(&(layer, id)).map_or(&[], |l| l)
    }

    /// [`FlatGraph::search`] of a graph whose point `0` is point `base` of the index: ids (in
    /// and out) are the index's.
    pub(super) fn search_from(
        &self,
        base: usize,
        query: &QueryCodes,
        k: usize,
        ef: usize,
        alive: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<(usize, f32)> {
        let admits = |local: u32| alive.is_none_or(|f| f(base + local as usize));
        self.search(
            query,
            k,
            ef,
            alive.is_some().then_some(&admits as &dyn Fn(u32) -> bool),
        )
        .into_iter()
        .map(|(local, sim)| (base + local as usize, sim))
        .collect()
    }

    /// The candidates for the `k` points most similar to `query` that `alive` admits (every
    /// point when `None`): the best [`Codec::rescored`]`(k)` by their codes, as `(point id,
    /// approximate similarity)`, best first, for [`rescore`] (after those of other graphs are
    /// gathered, so a search of several segments reads only the overall best from disk). `ef`
    /// is the beam width (raised as [`Codec::beam`] says).
    pub(super) fn search(
        &self,
        q: &QueryCodes,
        k: usize,
        ef: usize,
        alive: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<(u32, f32)> {
        if k == 0 || self.len == 0 {
            return Vec::new();
        }
        let ef = self.codec.beam(ef, k);
        let sim = |id: u32| self.approx(q, id);
        // greedy descent through the upper layers
        let mut cur = Scored(sim(self.entry), self.entry);
        for layer in (1..=self.top).rev() {
            loop {
                let best = self
                    .upper(layer, cur.1)
                    .iter()
                    .map(|&d| Scored(sim(d), d))
                    .max()
                    .filter(|s| *s > cur);
                match best {
                    Some(s) => cur = s,
                    None => break,
                }
            }
        }
        with_visited(self.len, |visited| self.beam(q, cur, ef, k, alive, visited))
    }

    /// The layer-0 beam of [`FlatGraph::search`] from `cur`, with `visited` (all clear) as the
    /// set of points seen.
    fn beam(
        &self,
        q: &QueryCodes,
        cur: Scored<u32>,
        ef: usize,
        k: usize,
        alive: Option<&dyn Fn(u32) -> bool>,
        visited: &mut [u64],
    ) -> Vec<(u32, f32)> {
        // beam search on layer 0 (hnswlib's filtered form): `results` holds the `ef` best points
        // `alive` admits and bounds the walk; the candidates include every point
        let sim = |id: u32| self.approx(q, id);
        let mut seen = |id: u32| {
            let (w, b) = (id as usize / 64, id % 64);
            let was = visited[w] >> b & 1 == 1;
            visited[w] |= 1 << b;
            was
        };
        let admits = |id: u32| alive.is_none_or(|f| f(id));
        seen(cur.1);
        let mut candidates = BinaryHeap::from([cur]);
        let mut results: BinaryHeap<Reverse<Scored<u32>>> = BinaryHeap::new();
        if admits(cur.1) {
            results.push(Reverse(cur));
        }
        let full_and_worse = |results: &BinaryHeap<Reverse<Scored<u32>>>, s: Scored<u32>| {
            results.len() >= ef && results.peek().is_some_and(|Reverse(w)| s < *w)
        };
        let mut fresh = Vec::with_capacity(self.m0);
        while let Some(c) = candidates.pop() {
            if full_and_worse(&results, c) {
                break;
            }
            fresh.clear();
            fresh.extend(self.links0(c.1).filter(|&d| !seen(d)));
            self.load(&fresh);
            for &d in &fresh {
                let s = Scored(sim(d), d);
                if !full_and_worse(&results, s) {
                    candidates.push(s);
                    if admits(d) {
                        results.push(Reverse(s));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        let mut best: Vec<(u32, f32)> = results.into_iter().map(|Reverse(s)| (s.1, s.0)).collect();
        by_similarity(&mut best);
        best.truncate(self.codec.rescored(k));
        best
    }
}

thread_local! {
    /// The visited set of this thread's walks, kept between them. A fresh zeroed set per walk
    /// (16 KB a segment of 131,072 points, eight walks a query at 1M chunks) went through the
    /// allocator's zeroing of new pages; clearing a set already in the caches is cheaper (at
    /// 1M chunks a vector query's server CPU went from 2.42 to 2.22 ms, BENCHMARKS.md).
    static VISITED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Largest visited set a thread keeps (in 64-bit words: 512 KB, a graph of 4M points); a walk
/// of a larger graph takes a set of its own.
const MAX_KEPT_WORDS: usize = 1 << 16;

/// Runs `f` with a clear visited set of `points` bits: this thread's, or a new one when the
/// thread's is in use (a walk inside a walk, which no caller makes today).
fn with_visited<R>(points: usize, f: impl FnOnce(&mut [u64]) -> R) -> R {
    let words = points.div_ceil(64);
    if words > MAX_KEPT_WORDS {
        return f(&mut vec![0u64; words]);
    }
    VISITED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut set) => {
            if set.len() < words {
                set.resize(words, 0);
            }
            let set = &mut set[..words];
            set.fill(0);
            f(set)
        }
        Err(_) => f(&mut vec![0u64; words]),
    })
}

#[cfg(test)]
#[path = "flat_tests.rs"]
mod tests;
