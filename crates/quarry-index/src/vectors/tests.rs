//! Tests of the vector index: HNSW recall against an exact scan, snapshots, dumps and their
//! damage, tombstone rebuilds, ACL-filtered search, and the SIMD dot product.

use super::index::VectorIndex;
use super::params::VectorParams;
use super::simd::{Dot, dot};
use super::snapshot::FilterPlan;
use crate::bm25::chunk_key;
use proptest::prelude::*;
use quarry_core::ContentHash;

fn unit(seed: u64, dims: usize) -> Vec<f32> {
    // xorshift: deterministic pseudo-random vectors
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2001) as f32 / 1000.0 - 1.0
        })
        .collect();
    quarry_core::embed::normalize(&mut v);
    v
}

/// `n` unit vectors around `clusters` centres with noise `spread`: like embeddings, neighbours
/// are near and most points are far.
pub(super) fn clustered(
    seed: u64,
    n: usize,
    dims: usize,
    clusters: usize,
    spread: f32,
) -> Vec<f32> {
    let mut rng = quarry_core::rng::SplitMix64::new(seed);
    let mut gauss = move || rng.gaussians().0 as f32;
    let centres: Vec<f32> = (0..clusters * dims).map(|_| gauss()).collect();
    let mut out = Vec::with_capacity(n * dims);
    for i in 0..n {
        let c = &centres[(i % clusters) * dims..(i % clusters + 1) * dims];
        let mut v: Vec<f32> = c.iter().map(|x| x + spread * gauss()).collect();
        quarry_core::embed::normalize(&mut v);
        out.extend(v);
    }
    out
}

fn hash(i: u64) -> ContentHash {
    ContentHash::of(&i.to_le_bytes())
}

fn params(exact_threshold: usize) -> VectorParams {
    VectorParams {
        exact_threshold,
        ..VectorParams::default()
    }
}

fn rows(range: std::ops::Range<u64>, dims: usize) -> Vec<(ContentHash, Vec<f32>)> {
    range.map(|i| (hash(i), unit(i, dims))).collect()
}

/// Exact cosine top-k by brute force over `live`, the oracle.
fn oracle(live: &[(ContentHash, Vec<f32>)], q: &[f32], k: usize) -> Vec<ContentHash> {
    let mut all: Vec<(f32, ContentHash)> = live
        .iter()
        .map(|(h, v)| (quarry_core::embed::cosine(q, v), *h))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(_, h)| h).collect()
}

#[test]
fn hnsw_recall_against_exact_scan_with_tombstones() {
    let dims = 32;
    let dir = tempfile::tempdir().unwrap();
    let ix = VectorIndex::open(dir.path(), dims, params(0)).unwrap();
    let all = rows(0..3000, dims);
    ix.apply(1, &[], &all).unwrap();
    ix.publish();
    // tombstone every 7th point (under the rebuild ratio)
    let removed: Vec<ContentHash> = (0..3000).step_by(7).map(hash).collect();
    ix.apply(2, &removed, &[]).unwrap();
    ix.publish();
    let live: Vec<_> = all
        .iter()
        .filter(|(h, _)| !removed.contains(h))
        .cloned()
        .collect();
    let snap = ix.snapshot();
    assert_eq!(snap.len(), live.len());
    let (mut found, mut total) = (0usize, 0usize);
    for q in 10_000..10_050u64 {
        let qv = unit(q, dims);
        let want = oracle(&live, &qv, 10);
        let got: Vec<ContentHash> = snap.search(&qv, 10).unwrap().iter().map(|r| r.0).collect();
        assert!(
            got.iter().all(|h| !removed.contains(h)),
            "a tombstone came back"
        );
        assert_eq!(
            snap.exact_search(&qv, 10)
                .unwrap()
                .iter()
                .map(|r| r.0)
                .collect::<Vec<_>>(),
            want
        );
        found += got.iter().filter(|h| want.contains(h)).count();
        total += want.len();
    }
    let recall = found as f64 / total as f64;
    assert!(recall >= 0.95, "HNSW recall@10 {recall} against exact scan");
}

#[test]
fn snapshots_do_not_see_later_writes() {
    let dims = 8;
    let dir = tempfile::tempdir().unwrap();
    let ix = VectorIndex::open(dir.path(), dims, params(1_000_000)).unwrap();
    ix.apply(1, &[], &rows(0..10, dims)).unwrap();
    ix.publish();
    let before = ix.snapshot();
    ix.apply(2, &[hash(0)], &rows(10..20, dims)).unwrap();
    ix.publish();
    assert_eq!(before.len(), 10);
    assert_eq!(ix.snapshot().len(), 19);
    let q = unit(0, dims);
    assert_eq!(before.search(&q, 1).unwrap()[0].0, hash(0));
    let hits = before.search(&q, 100).unwrap();
    assert_eq!(hits.len(), 10);
    assert!(
        ix.snapshot()
            .search(&q, 100)
            .unwrap()
            .iter()
            .all(|r| r.0 != hash(0))
    );
    assert!(
        before.search(&[1.0; 3], 1).is_err(),
        "wrong dimension is an error"
    );
}

#[test]
fn dump_and_reload_give_identical_results() {
    let dims = 16;
    let dir = tempfile::tempdir().unwrap();
    let queries: Vec<Vec<f32>> = (500..520).map(|q| unit(q, dims)).collect();
    let before: Vec<_> = {
        let ix = VectorIndex::open(dir.path(), dims, params(0)).unwrap();
        ix.apply(1, &[], &rows(0..800, dims)).unwrap();
        ix.publish();
        ix.apply(2, &[hash(3), hash(5)], &[]).unwrap();
        ix.publish();
        assert!(ix.needs_dump(1, false));
        ix.dump().unwrap();
        assert!(!ix.needs_dump(1, true));
        let s = ix.snapshot();
        queries.iter().map(|q| s.search(q, 10).unwrap()).collect()
    };
    let ix = VectorIndex::open(dir.path(), dims, params(0)).unwrap();
    assert_eq!(ix.generation(), 2);
    assert!(!ix.contains(&hash(3)) && ix.contains(&hash(4)));
    let s = ix.snapshot();
    assert_eq!(s.len(), 798);
    let after: Vec<_> = queries.iter().map(|q| s.search(q, 10).unwrap()).collect();
    assert_eq!(before, after);
    // the reloaded graph takes new points
    ix.apply(3, &[], &rows(800..810, dims)).unwrap();
    ix.publish();
    assert_eq!(
        ix.snapshot().search(&unit(805, dims), 1).unwrap()[0].0,
        hash(805)
    );
}

/// A damaged file of a dump (the open graph's hnsw_rs files, a sealed segment's flat graph or
/// vectors, the manifest) is found by its hash and the index starts empty (the engine then
/// rebuilds it from stored vectors): never a panic, never a half-loaded index.
#[test]
fn corrupt_dump_is_ignored_not_fatal() {
    use super::params::Quantization;
    let dims = 8;
    type DamagedFile<'a> = &'a dyn Fn(&std::path::Path) -> std::path::PathBuf;
    let cases: [(Quantization, DamagedFile); 4] = [
        (Quantization::None, &|d| {
            d.join("dump-1").join("graph.hnsw.data")
        }),
        (Quantization::Int8, &|d| segment_file(d, "vectors.f32")),
        (Quantization::Int8, &|d| segment_file(d, "flat.bin")),
        (Quantization::Binary, &|d| segment_file(d, "flat.bin")),
    ];
    for (quantization, file) in cases {
        let p = VectorParams {
            quantization,
            segment_points: 64,
            ..params(0)
        };
        let dir = tempfile::tempdir().unwrap();
        {
            let ix = VectorIndex::open(dir.path(), dims, p).unwrap();
            ix.apply(1, &[], &rows(0..100, dims)).unwrap();
            ix.publish();
            ix.dump().unwrap();
            assert_eq!(
                ix.snapshot().sealed().0,
                usize::from(quantization != Quantization::None)
            );
        }
        assert_eq!(
            VectorIndex::open(dir.path(), dims, p).unwrap().generation(),
            1
        );
        let path = file(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let ix = VectorIndex::open(dir.path(), dims, p).unwrap();
        assert_eq!(
            ix.generation(),
            0,
            "an unusable dump starts from scratch: {path:?}"
        );
        assert!(ix.snapshot().is_empty());
    }
    // a manifest whose generation was damaged into another number that parses
    let dir = tempfile::tempdir().unwrap();
    {
        let ix = VectorIndex::open(dir.path(), dims, params(0)).unwrap();
        ix.apply(7, &[], &rows(0..20, dims)).unwrap();
        ix.publish();
        ix.dump().unwrap();
    }
    let path = dir.path().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"generation\":7,"), "{text}");
    // a field a later quarry adds, and a manifest without a digest (an older quarry's), load
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let digest = value["digest"].as_str().unwrap().to_owned();
    let newer = text.replacen("{", "{\"later\":1,", 1);
    let body = newer.replace(&format!(",\"digest\":\"{digest}\"}}"), "}");
    std::fs::write(&path, super::dump::with_digest(body.as_bytes())).unwrap();
    assert_eq!(
        VectorIndex::open(dir.path(), dims, params(0))
            .unwrap()
            .generation(),
        7
    );
    value.as_object_mut().unwrap().remove("digest");
    std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
    assert_eq!(
        VectorIndex::open(dir.path(), dims, params(0))
            .unwrap()
            .generation(),
        7
    );
    std::fs::write(&path, &text).unwrap();
    std::fs::write(
        &path,
        text.replace("\"generation\":7,", "\"generation\":9,"),
    )
    .unwrap();
    let ix = VectorIndex::open(dir.path(), dims, params(0)).unwrap();
    assert_eq!(ix.generation(), 0, "a damaged manifest starts from scratch");
    assert!(ix.snapshot().is_empty());
    assert_eq!(super::dump_generation(dir.path()), None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("manifest.json"), b"{").unwrap();
    assert_eq!(
        VectorIndex::open(dir.path(), dims, params(0))
            .unwrap()
            .generation(),
        0
    );
}

/// The file `name` of the only sealed segment under `dir`.
fn segment_file(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let segments: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(segments.len(), 1, "{segments:?}");
    segments[0].join(name)
}

#[test]
fn tombstones_past_the_ratio_rebuild_the_graph() {
    let dims = 8;
    let dir = tempfile::tempdir().unwrap();
    let ix = VectorIndex::open(dir.path(), dims, params(0)).unwrap();
    ix.apply(1, &[], &rows(0..200, dims)).unwrap();
    ix.publish();
    let removed: Vec<_> = (0..120).map(hash).collect();
    ix.apply(2, &removed, &[]).unwrap();
    ix.publish();
    let s = ix.snapshot();
    assert_eq!(s.len(), 80);
    assert_eq!(s.upto, 80, "the rebuilt graph holds only live points");
    let got = s.search(&unit(150, dims), 1).unwrap();
    assert_eq!(got[0].0, hash(150));
    assert!((got[0].1 - 1.0).abs() < 1e-5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// Random adds and removes: the exact path always equals the brute-force oracle over the model
    /// of live points.
    #[test]
    fn exact_search_matches_model(ops in proptest::collection::vec((any::<bool>(), 0u64..60), 1..80)) {
        let dims = 6;
        let dir = tempfile::tempdir().unwrap();
        let ix = VectorIndex::open(dir.path(), dims, params(1_000_000)).unwrap();
        let mut model: std::collections::BTreeMap<ContentHash, Vec<f32>> = Default::default();
        for (g, (add, i)) in ops.iter().enumerate() {
            if *add {
                ix.apply(g as u64 + 1, &[], &[(hash(*i), unit(*i, dims))]).unwrap();
    ix.publish();
                model.insert(hash(*i), unit(*i, dims));
            } else {
                ix.apply(g as u64 + 1, &[hash(*i)], &[]).unwrap();
    ix.publish();
                model.remove(&hash(*i));
            }
        }
        let live: Vec<_> = model.into_iter().collect();
        let q = unit(999, dims);
        let got: Vec<_> = ix.snapshot().search(&q, 5).unwrap().into_iter().map(|r| r.0).collect();
        prop_assert_eq!(got, oracle(&live, &q, 5));
    }
}

#[test]
fn permitted_search_matches_exact_scan_of_the_permitted_points() {
    let dims = 32;
    let dir = tempfile::tempdir().unwrap();
    // exact_threshold 0 and no exact fraction: the filtered graph traversal is what runs
    let ix = VectorIndex::open(
        dir.path(),
        dims,
        VectorParams {
            exact_threshold: 0,
            filter_exact_fraction: 0.0,
            ..VectorParams::default()
        },
    )
    .unwrap();
    let all = rows(0..3000, dims);
    ix.apply(1, &[], &all).unwrap();
    // a tombstoned point stays out even when its key is permitted
    ix.apply(2, &[hash(4)], &[]).unwrap();
    ix.publish();
    let snap = ix.snapshot();
    for (step, min_recall) in [(2u64, 0.95), (10, 0.95)] {
        let permitted_rows: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| (*i as u64).is_multiple_of(step) && *i != 4)
            .map(|(_, r)| r.clone())
            .collect();
        let mut keys: Vec<u64> = permitted_rows.iter().map(|(h, _)| chunk_key(h)).collect();
        keys.push(chunk_key(&hash(4)));
        let (mut found, mut total) = (0usize, 0usize);
        for q in 20_000..20_040u64 {
            let qv = unit(q, dims);
            let want = oracle(&permitted_rows, &qv, 10);
            let (got, plan) = snap.search_permitted(&qv, 10, &keys).unwrap();
            assert_eq!(plan, FilterPlan::Graph);
            assert_eq!(got.len(), 10, "top k is filled with permitted points");
            for (h, _) in &got {
                assert!(
                    permitted_rows.iter().any(|(p, _)| p == h),
                    "{h} is not permitted"
                );
            }
            found += got.iter().filter(|(h, _)| want.contains(h)).count();
            total += want.len();
        }
        let recall = found as f64 / total as f64;
        assert!(recall >= min_recall, "1/{step} permitted: recall {recall}");
    }
    // few permitted: the exact plan, which is the oracle itself
    let few: Vec<_> = all[..20].to_vec();
    let keys: Vec<u64> = few.iter().map(|(h, _)| chunk_key(h)).collect();
    let exact_ix = VectorIndex::open(&dir.path().join("x"), dims, VectorParams::default()).unwrap();
    exact_ix.apply(1, &[], &all).unwrap();
    exact_ix.publish();
    let qv = unit(7, dims);
    let (got, plan) = exact_ix.snapshot().search_permitted(&qv, 5, &keys).unwrap();
    assert_eq!(plan, FilterPlan::Exact);
    let got: Vec<ContentHash> = got.into_iter().map(|r| r.0).collect();
    assert_eq!(got, oracle(&few, &qv, 5));
    let (none, plan) = exact_ix.snapshot().search_permitted(&qv, 5, &[]).unwrap();
    assert!(none.is_empty());
    assert_eq!(plan, FilterPlan::Empty);
}

proptest! {
    /// `dot` (on the CPU's widest SIMD, and on pulp's scalar fallback) against an f64 sum, at
    /// every length around the SIMD steps and at MiniLM's 384, and on slices of different lengths.
    #[test]
    fn dot_matches_an_f64_sum(
        len in prop_oneof![0usize..40, Just(384usize)],
        seed in any::<u64>(),
    ) {
        let mut rng = quarry_core::rng::SplitMix64::new(seed);
        let mut draw = || (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0;
        let a: Vec<f32> = (0..len).map(|_| draw()).collect();
        let b: Vec<f32> = (0..len).map(|_| draw()).collect();
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
        let tolerance = 1e-5 * (len as f64).max(1.0);
        prop_assert!((f64::from(dot(&a, &b)) - exact).abs() <= tolerance);
        // the portable path, which CPUs without wider SIMD take
        let scalar = pulp::WithSimd::with_simd(Dot(&a, &b), pulp::Scalar::new());
        prop_assert!((f64::from(scalar) - exact).abs() <= tolerance);
        // only the common length counts
        let longer: Vec<f32> = b.iter().copied().chain([5.0, -7.0]).collect();
        prop_assert!((f64::from(dot(&a, &longer)) - exact).abs() <= tolerance);
    }
}

/// Writes to one index from many rayon tasks at once, each large enough for a parallel graph
/// insert, all finish: the insert must not let a thread that holds the index's lock pick up
/// another task that waits for it (a watchdog fails the test if it hangs).
#[test]
fn large_writes_from_rayon_tasks_finish() {
    use rayon::prelude::*;
    let dims = 16;
    let dir = tempfile::tempdir().unwrap();
    let ix = std::sync::Arc::new(VectorIndex::open(dir.path(), dims, params(0)).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = ix.clone();
    std::thread::spawn(move || {
        (0..8u64).into_par_iter().for_each(|i| {
            let batch = rows(i * 600..(i + 1) * 600, dims);
            writer.apply(i + 1, &[], &batch).unwrap();
        });
        let _ = tx.send(());
    });
    rx.recv_timeout(std::time::Duration::from_secs(300))
        .expect("the writes finished within 5 minutes (a deadlock otherwise)");
    ix.publish();
    // every write reached the index, and the graph finds its points by their own vectors (a
    // self-query: similarity 1, in the top 10 of a sound graph however the timing of the
    // parallel inserts built it; a recall figure against an exact scan would vary between runs)
    let snap = ix.snapshot();
    assert_eq!(snap.len(), 4800, "every write reached the index");
    let live = rows(0..4800, dims);
    let found = live
        .iter()
        .filter(|(h, v)| snap.search(v, 10).unwrap().iter().any(|r| r.0 == *h))
        .count();
    assert!(
        found >= 4795,
        "{found} of 4800 points found by their own vectors"
    );
}

/// Sealed segments and the open graph together answer like an exact scan: recall against the
/// oracle, tombstones in sealed segments never returned, ACL-filtered search complete and
/// admitted, stored vectors read back from the segments' files exactly, a reload answering
/// the same, and a compaction leaving one segment and no file of the removed points.
#[test]
fn segments_search_like_one_exact_scan() {
    segments_search_like_one_exact_scan_with(super::params::Quantization::Int8, 24);
}

/// (21 dimensions: the last byte of a binary code has spare bits)
#[test]
fn binary_segments_search_like_one_exact_scan() {
    segments_search_like_one_exact_scan_with(super::params::Quantization::Binary, 21);
}

fn segments_search_like_one_exact_scan_with(
    quantization: super::params::Quantization,
    dims: usize,
) {
    let data = clustered(11, 3400, dims, 30, 0.3);
    let row = |i: usize| (hash(i as u64), data[i * dims..(i + 1) * dims].to_vec());
    let p = VectorParams {
        quantization,
        exact_threshold: 256,
        filter_exact_fraction: 0.0,
        segment_points: 1000,
        ..VectorParams::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let ix = VectorIndex::open(dir.path(), dims, p).unwrap();
    let mut generation = 0;
    // 1000 sealed; 500 not (fewer than a segment); 1500 sealed; 300 open
    for (range, sealed_after) in [
        (0..1000, 1),
        (1000..1500, 1),
        (1500..3000, 2),
        (3000..3300, 2),
    ] {
        generation += 1;
        let batch: Vec<_> = range.map(row).collect();
        ix.apply(generation, &[], &batch).unwrap();
        ix.publish();
        ix.dump().unwrap();
        assert_eq!(ix.snapshot().sealed().0, sealed_after, "after {generation}");
    }
    let removed: Vec<ContentHash> = (0..3300).step_by(7).map(|i| hash(i as u64)).collect();
    generation += 1;
    ix.apply(generation, &removed, &[]).unwrap();
    ix.publish();
    let live: Vec<(ContentHash, Vec<f32>)> = (0..3300).filter(|i| i % 7 != 0).map(row).collect();
    let permitted: Vec<u64> = live
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(_, (h, _))| chunk_key(h))
        .collect();
    let permitted_live: Vec<_> = live
        .iter()
        .filter(|(h, _)| permitted.contains(&chunk_key(h)))
        .cloned()
        .collect();
    let queries: Vec<Vec<f32>> = (3300..3400).map(|i| row(i).1).collect();
    // 30 chunks from every part (below exact_threshold: the exact plan)
    let few: Vec<u64> = permitted.iter().step_by(37).copied().collect();
    let few_live: Vec<_> = live
        .iter()
        .filter(|(h, _)| few.contains(&chunk_key(h)))
        .cloned()
        .collect();
    assert!((25..=40).contains(&few.len()), "{}", few.len());
    let check = |snap: &super::VectorSnapshot| {
        let (mut found, mut found_filtered) = (0, 0);
        for q in &queries {
            let want = oracle(&live, q, 10);
            let got: Vec<ContentHash> = snap.search(q, 10).unwrap().iter().map(|r| r.0).collect();
            assert!(
                got.iter().all(|h| !removed.contains(h)),
                "a tombstone came back"
            );
            found += got.iter().filter(|h| want.contains(h)).count();
            let want = oracle(&permitted_live, q, 10);
            let (got, plan) = snap.search_permitted(q, 10, &permitted).unwrap();
            assert_eq!(plan, FilterPlan::Graph);
            assert_eq!(got.len(), 10);
            assert!(got.iter().all(|(h, _)| permitted.contains(&chunk_key(h))));
            found_filtered += got.iter().filter(|(h, _)| want.contains(h)).count();
            // few permitted chunks, sealed and open: an exact scan over their codes, rescored
            let (got, plan) = snap.search_permitted(q, 10, &few).unwrap();
            assert_eq!(plan, FilterPlan::Exact);
            let got: Vec<ContentHash> = got.iter().map(|r| r.0).collect();
            assert_eq!(got, oracle(&few_live, q, 10));
            assert_eq!(
                snap.exact_search(q, 10)
                    .unwrap()
                    .iter()
                    .map(|r| r.0)
                    .collect::<Vec<_>>(),
                oracle(&live, q, 10)
            );
        }
        let total = (10 * queries.len()) as f64;
        assert!(
            found as f64 / total >= 0.95,
            "recall {}",
            found as f64 / total
        );
        assert!(
            found_filtered as f64 / total >= 0.95,
            "filtered recall {}",
            found_filtered as f64 / total
        );
        // stored vectors: sealed (point 1), open (3200), removed (7: none)
        let keys: Vec<u64> = [1, 3200, 7].iter().map(|i| chunk_key(&hash(*i))).collect();
        let stored = snap.vectors_of(&keys);
        assert_eq!(stored[0].as_deref(), Some(&row(1).1[..]));
        assert_eq!(stored[1].as_deref(), Some(&row(3200).1[..]));
        assert_eq!(stored[2], None);
        let sims = snap.similarities(&queries[0], &keys);
        assert!((sims[0].unwrap() - dot(&queries[0], &row(1).1)).abs() < 1e-6);
        snap.search(&queries[0], 10).unwrap()
    };
    let before = check(&ix.snapshot());
    generation += 1;
    ix.set_generation(generation);
    ix.dump().unwrap();
    drop(ix);
    let ix = VectorIndex::open(dir.path(), dims, p).unwrap();
    assert_eq!(ix.snapshot().sealed().0, 2);
    assert_eq!(check(&ix.snapshot()), before, "a reload answers the same");
    assert_eq!(
        std::fs::read_dir(dir.path().join("segments"))
            .unwrap()
            .count(),
        2
    );
    // compaction: one segment of the live points at the next dump, and the removed are gone
    assert!(ix.compact().unwrap());
    ix.publish();
    generation += 1;
    ix.set_generation(generation);
    ix.dump().unwrap();
    assert_eq!(ix.snapshot().sealed().0, 1);
    assert_eq!(
        std::fs::read_dir(dir.path().join("segments"))
            .unwrap()
            .count(),
        1
    );
    let gone: std::collections::HashSet<ContentHash> = removed.iter().copied().collect();
    assert!(!ix.holds_any(&gone) && !super::dump_holds_any(dir.path(), &gone));
    check(&ix.snapshot());
}

/// Two writers taking turns on one folder (a CLI ingest beside a server, each catching up from
/// the change log in memory): each dump removes the segments only the other named, and the next
/// dump of the other writes its segment again, so the manifest never names a missing folder and
/// a reload finds every point.
#[test]
fn writers_taking_turns_never_name_a_removed_segment() {
    let dims = 16;
    let p = VectorParams {
        exact_threshold: 100,
        segment_points: 300,
        ..VectorParams::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let a = VectorIndex::open(dir.path(), dims, p).unwrap();
    a.apply(1, &[], &rows(0..300, dims)).unwrap();
    a.dump().unwrap();
    let b = VectorIndex::open(dir.path(), dims, p).unwrap();
    assert_eq!(b.generation(), 1);
    // b writes generation 2 and seals its 300 new points; a replays it and writes generation 3
    b.apply(2, &[], &rows(300..600, dims)).unwrap();
    b.dump().unwrap();
    a.apply(2, &[], &rows(300..600, dims)).unwrap();
    a.apply(3, &[], &rows(600..700, dims)).unwrap();
    a.dump().unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("segments"))
            .unwrap()
            .count(),
        2,
        "a's dump keeps its own two segments only"
    );
    // b replays generation 3 and writes generation 4: its second segment is written again
    b.apply(3, &[], &rows(600..700, dims)).unwrap();
    b.apply(4, &[hash(1)], &rows(700..720, dims)).unwrap();
    b.dump().unwrap();
    let reloaded = VectorIndex::open(dir.path(), dims, p).unwrap();
    assert_eq!(reloaded.generation(), 4, "the dump loads, not a rebuild");
    let s = reloaded.snapshot();
    assert_eq!(s.len(), 719);
    for i in [0u64, 299, 300, 599, 600, 719] {
        assert_eq!(
            s.search(&unit(i, dims), 1).unwrap()[0].0,
            hash(i),
            "point {i}"
        );
    }
    assert!(!reloaded.contains(&hash(1)));
}

/// A dump between a write and its publish (a write that rebuilt the graph past the tombstone
/// ratio, then sealed it) leaves readers on the published generation: not the new points, and
/// the removed ones still there, until the publish.
#[test]
fn a_seal_before_the_publish_shows_readers_nothing_new() {
    let dims = 16;
    let p = VectorParams {
        exact_threshold: 50,
        segment_points: 100,
        ..VectorParams::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let ix = VectorIndex::open(dir.path(), dims, p).unwrap();
    ix.apply(1, &[], &rows(0..300, dims)).unwrap();
    ix.publish();
    let removed: Vec<ContentHash> = (0..200).map(hash).collect();
    ix.apply(2, &removed, &rows(300..350, dims)).unwrap();
    ix.dump().unwrap();
    let s = ix.snapshot();
    assert_eq!(s.len(), 300);
    assert_eq!(s.search(&unit(5, dims), 1).unwrap()[0].0, hash(5));
    assert!(
        s.search(&unit(320, dims), 5)
            .unwrap()
            .iter()
            .all(|r| r.0 != hash(320))
    );
    ix.publish();
    let s = ix.snapshot();
    assert_eq!((s.len(), s.sealed().0), (150, 1));
    assert_eq!(s.search(&unit(320, dims), 1).unwrap()[0].0, hash(320));
    assert!(
        s.search(&unit(5, dims), 5)
            .unwrap()
            .iter()
            .all(|r| r.0 != hash(5))
    );
}

#[test]
fn a_bulk_build_seals_as_it_goes_and_answers_like_an_exact_scan_after_a_reload() {
    let dims = 24;
    let data = clustered(13, 2600, dims, 30, 0.3);
    let row = |i: usize| (hash(i as u64), data[i * dims..(i + 1) * dims].to_vec());
    let p = VectorParams {
        exact_threshold: 0,
        segment_points: 1000,
        ..VectorParams::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut bulk = super::BulkBuild::new(dir.path(), dims, p).unwrap();
    let live: Vec<(ContentHash, Vec<f32>)> = (0..2500).map(row).collect();
    for page in live.chunks(700) {
        bulk.add(page).unwrap();
    }
    // a chunk given again keeps its point
    bulk.add(&live[..10]).unwrap();
    assert_eq!(bulk.len(), 2500);
    let ix = bulk.finish(7).unwrap();
    ix.publish();
    let snap = ix.snapshot();
    // sealed at 1400 (two pages) and 2800 would be next: 1400, then the last 1100 at the end
    assert_eq!(snap.sealed().0, 2);
    assert_eq!(ix.sealed_points(), 2500, "every point in a segment");
    assert_eq!((ix.keys().len(), ix.generation()), (2500, 7));
    let queries: Vec<Vec<f32>> = (2500..2600).map(|i| row(i).1).collect();
    let answers = |snap: &super::VectorSnapshot| -> Vec<Vec<ContentHash>> {
        queries
            .iter()
            .map(|q| snap.search(q, 10).unwrap().iter().map(|r| r.0).collect())
            .collect()
    };
    let got = answers(&snap);
    let found: usize = queries
        .iter()
        .zip(&got)
        .map(|(q, g)| {
            let want = oracle(&live, q, 10);
            g.iter().filter(|h| want.contains(h)).count()
        })
        .sum();
    let recall = found as f64 / (10 * queries.len()) as f64;
    assert!(recall >= 0.9, "recall@10 {recall}");
    ix.dump().unwrap();
    drop((snap, ix));
    let reopened = VectorIndex::open(dir.path(), dims, p).unwrap();
    assert_eq!(reopened.generation(), 7);
    assert_eq!(answers(&reopened.snapshot()), got);
}

/// The open graph searched through its flat copy over codes and an exact scan of the points
/// past it: a copy at the publish that finds more than `TAIL` points outside the last one, none
/// before; the points after the copy (tail) and tombstones in both found and left out like an
/// exact scan; an older snapshot keeps its copy; a reload copies the loaded graph; quantization
/// `none` never copies.
#[test]
fn the_open_graph_is_searched_through_a_flat_copy_and_an_exact_tail() {
    open_graph_copy_with(super::params::Quantization::Int8, 24);
}

/// (binary copies rescore `2k + 96` candidates, like binary segments)
#[test]
fn the_open_graph_is_searched_through_a_binary_copy_and_an_exact_tail() {
    open_graph_copy_with(super::params::Quantization::Binary, 21);
}

fn open_graph_copy_with(quantization: super::params::Quantization, dims: usize) {
    use super::part::TAIL;
    let data = clustered(5, 6000, dims, 40, 0.3);
    let row = |i: usize| (hash(i as u64), data[i * dims..(i + 1) * dims].to_vec());
    let p = VectorParams {
        exact_threshold: 0,
        filter_exact_fraction: 0.0,
        segment_points: 1 << 20,
        quantization,
        ..VectorParams::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let ix = VectorIndex::open(dir.path(), dims, p).unwrap();
    let apply = |generation: u64, removed: &[ContentHash], range: std::ops::Range<usize>| {
        let batch: Vec<_> = range.map(row).collect();
        ix.apply(generation, removed, &batch).unwrap();
        ix.publish();
        ix.snapshot()
    };
    // a small open graph is all tail: no copy
    assert_eq!(apply(1, &[], 0..TAIL).frozen_points(), (None, vec!["open"]));
    let first = apply(2, &[], TAIL..3000);
    assert_eq!(first.frozen_points(), (Some(3000), vec!["copy"]));
    // every point alive and none newer (a search without a filter): each among its own query's
    // first ten (walked through the copy)
    for i in [0, 1500, 2999] {
        let got = first.search(&row(i).1, 10).unwrap();
        assert!(got.iter().any(|r| r.0 == hash(i as u64)), "point {i}");
    }
    // tombstones in the copy and in the tail, and a tail of fewer than TAIL points: no new copy
    let removed: Vec<ContentHash> = (0..3500).step_by(9).map(|i| hash(i as u64)).collect();
    apply(3, &[], 3000..3500);
    let snap = apply(4, &removed, 3500..3500);
    assert_eq!(snap.frozen_points(), (Some(3000), vec!["copy", "tail"]));
    let live: Vec<(ContentHash, Vec<f32>)> = (0..3500).filter(|i| i % 9 != 0).map(row).collect();
    let permitted: Vec<u64> = live.iter().step_by(2).map(|(h, _)| chunk_key(h)).collect();
    let permitted_live: Vec<_> = live.iter().step_by(2).cloned().collect();
    let check = |snap: &super::VectorSnapshot, live: &[(ContentHash, Vec<f32>)]| {
        let (mut found, mut found_filtered) = (0, 0);
        for q in 5900..6000 {
            let q = row(q).1;
            let got: Vec<ContentHash> = snap.search(&q, 10).unwrap().iter().map(|r| r.0).collect();
            assert!(
                got.iter().all(|h| !removed.contains(h)),
                "a tombstone came back"
            );
            found += got
                .iter()
                .filter(|h| oracle(live, &q, 10).contains(h))
                .count();
            let (got, plan) = snap.search_permitted(&q, 10, &permitted).unwrap();
            assert_eq!(plan, FilterPlan::Graph);
            assert!(got.iter().all(|(h, _)| permitted.contains(&chunk_key(h))));
            let want = oracle(&permitted_live, &q, 10);
            found_filtered += got.iter().filter(|(h, _)| want.contains(h)).count();
        }
        assert!(found >= 950, "recall {found}/1000");
        assert!(
            found_filtered >= 950,
            "filtered recall {found_filtered}/1000"
        );
        // every live point of the tail (compared exactly) is its own query's first answer, and
        // of the copy among the first ten
        for i in [3001, 3499] {
            let (h, v) = row(i);
            assert_eq!(snap.search(&v, 1).unwrap()[0].0, h, "point {i}");
        }
        for i in [1, 2999] {
            let (h, v) = row(i);
            assert!(
                snap.search(&v, 10).unwrap().iter().any(|r| r.0 == h),
                "point {i}"
            );
        }
    };
    check(&snap, &live);
    // past TAIL new points: a new copy; the first snapshot keeps its own and sees nothing new
    let wide = apply(5, &[], 3500..3500 + TAIL + 1);
    assert_eq!(wide.frozen_points(), (Some(3501 + TAIL), vec!["copy"]));
    assert_eq!(first.frozen_points(), (Some(3000), vec!["copy"]));
    assert!(
        first
            .search(&row(3200).1, 10)
            .unwrap()
            .iter()
            .all(|r| r.0 != hash(3200))
    );
    // a reload copies the graph it loads (tail empty)
    ix.apply(6, &[], &[]).unwrap();
    ix.dump().unwrap();
    drop(ix);
    let reloaded = VectorIndex::open(dir.path(), dims, p).unwrap();
    let snap = reloaded.snapshot();
    assert_eq!(snap.frozen_points(), (Some(3501 + TAIL), vec!["copy"]));
    let live: Vec<_> = (0..3501 + TAIL)
        .filter(|i| i % 9 != 0 || *i >= 3500)
        .map(row)
        .collect();
    let removed_after: Vec<_> = removed.clone();
    assert!(
        snap.search(&row(9).1, 10)
            .unwrap()
            .iter()
            .all(|r| !removed_after.contains(&r.0))
    );
    let found: usize = (5900..6000)
        .map(|q| {
            let q = row(q).1;
            let want = oracle(&live, &q, 10);
            snap.search(&q, 10)
                .unwrap()
                .iter()
                .filter(|r| want.contains(&r.0))
                .count()
        })
        .sum();
    assert!(found >= 950, "recall after a reload {found}/1000");
    // a seal lets the copy go with the open graph; a small open graph after it has no copy
    let sealing = VectorParams {
        segment_points: 3000,
        ..p
    };
    let dir = tempfile::tempdir().unwrap();
    let ix = VectorIndex::open(dir.path(), dims, sealing).unwrap();
    ix.apply(1, &[], &(0..3500).map(row).collect::<Vec<_>>())
        .unwrap();
    ix.publish();
    assert_eq!(ix.snapshot().frozen_points(), (Some(3500), vec!["copy"]));
    ix.dump().unwrap();
    assert_eq!(ix.snapshot().frozen_points(), (None, vec!["sealed"]));
    ix.apply(2, &[], &(3500..3600).map(row).collect::<Vec<_>>())
        .unwrap();
    ix.publish();
    let snap = ix.snapshot();
    assert_eq!(snap.frozen_points(), (None, vec!["sealed", "open"]));
    for i in [0, 3499, 3550] {
        let got = snap.search(&row(i).1, 10).unwrap();
        assert!(got.iter().any(|r| r.0 == hash(i as u64)), "point {i}");
    }
    // quantization `none`: the open graph is hnsw_rs's alone
    let none = VectorParams {
        quantization: super::params::Quantization::None,
        ..p
    };
    let dir = tempfile::tempdir().unwrap();
    let ix = VectorIndex::open(dir.path(), dims, none).unwrap();
    ix.apply(1, &[], &(0..3000).map(row).collect::<Vec<_>>())
        .unwrap();
    ix.publish();
    assert_eq!(ix.snapshot().frozen_points(), (None, vec!["open"]));
}

/// A publish copies the open graph again only when a search met points outside the last copy
/// (a CLI ingest, which nobody searches, copies it once, when opened), and a snapshot with more
/// than `MAX_TAIL` points outside its copy walks hnsw_rs's graph instead of scanning them.
#[test]
fn the_open_graph_is_copied_again_only_when_searched() {
    use super::part::{MAX_TAIL, TAIL};
    let dims = 16;
    let p = VectorParams {
        exact_threshold: 0,
        segment_points: 1 << 20,
        ..VectorParams::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let ix = VectorIndex::open(dir.path(), dims, p).unwrap();
    let publish = |generation: u64, range: std::ops::Range<u64>| {
        ix.apply(generation, &[], &rows(range, dims)).unwrap();
        ix.publish();
        ix.snapshot()
    };
    let finds = |snap: &super::VectorSnapshot, i: u64| {
        let (h, v) = rows(i..i + 1, dims).remove(0);
        snap.search(&v, 10).unwrap().iter().any(|r| r.0 == h)
    };
    // the first copy needs no search
    let first = publish(1, 0..3000);
    assert_eq!(first.frozen_points(), (Some(3000), vec!["copy"]));
    // nobody searched points outside it: no copy at a publish, however far behind
    let t = TAIL as u64;
    let behind = publish(2, 3000..3000 + 2 * t);
    assert_eq!(behind.frozen_points(), (Some(3000), vec!["copy", "tail"]));
    let snap = publish(3, 3000 + 2 * t..3001 + 2 * t);
    assert_eq!(snap.frozen_points(), (Some(3000), vec!["copy", "tail"]));
    // a search of a snapshot with points outside the copy: the next publish copies
    assert!(first.search(&rows(5..6, dims)[0].1, 10).is_ok()); // (none outside: no mark)
    assert_eq!(
        publish(4, 3001 + 2 * t..3002 + 2 * t).frozen_points().0,
        Some(3000)
    );
    assert!(finds(&snap, 3000 + 2 * t));
    let end = 3003 + 2 * t;
    assert_eq!(
        publish(5, end - 1..end).frozen_points().0,
        Some(end as usize)
    );
    // far behind with no search meanwhile: hnsw_rs's graph, not a scan of every new point
    let far = end + MAX_TAIL as u64 + 1;
    let snap = publish(6, end..far);
    assert_eq!(snap.frozen_points(), (Some(end as usize), vec!["open"]));
    assert!(finds(&snap, far - 1) && finds(&snap, 10));
    // an index opened from a dump copies it, and its first publish (after the change log's
    // replay, say) copies again when behind, with no search
    ix.dump().unwrap();
    drop(ix);
    let ix = VectorIndex::open(dir.path(), dims, p).unwrap();
    assert_eq!(
        ix.snapshot().frozen_points(),
        (Some(far as usize), vec!["copy"])
    );
    ix.apply(7, &[], &rows(far..far + 2 * t, dims)).unwrap();
    ix.publish();
    let snap = ix.snapshot();
    assert_eq!(
        snap.frozen_points(),
        (Some((far + 2 * t) as usize), vec!["copy"])
    );
    assert!(finds(&snap, far + 1) && finds(&snap, 10));
}
