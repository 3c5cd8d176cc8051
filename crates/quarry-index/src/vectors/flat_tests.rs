//! The flat graph against an exact scan and against hnsw_rs's own search of the graph it copies.

use super::*;
use crate::vectors::codes::{dot_i8, quantize, widen};
use crate::vectors::params::VectorParams;
use crate::vectors::simd::dot;
use crate::vectors::tests::clustered;
use proptest::prelude::*;
use std::collections::HashSet;

fn build(vectors: &[f32], dims: usize) -> (Graph, FlatGraph) {
    build_coded(vectors, dims, Codec::Int8)
}

fn build_coded(vectors: &[f32], dims: usize, codec: Codec) -> (Graph, FlatGraph) {
    let params = VectorParams {
        ef_construction: 100,
        ..VectorParams::default()
    };
    let graph = Graph::new(params, vectors.len() / dims);
    // one point at a time: hnsw_rs draws levels from a fixed seed, so a serial build gives the
    // same graph on every run and the recall comparisons below cannot flake (a parallel build's
    // graph depends on the threads' timing; its recall moved by ±0.01 between runs)
    for row in vectors.chunks_exact(dims).enumerate() {
        graph.insert(&[row]);
    }
    let flat = FlatGraph::from_graph(&graph, 0, vectors, (dims, params.m), codec).unwrap();
    (graph, flat)
}

/// A search of `flat` with its candidates rescored by `exact`, as a segment's caller does.
fn ranked(
    flat: &FlatGraph,
    q: &[f32],
    k: usize,
    alive: Option<&dyn Fn(u32) -> bool>,
    exact: &dyn Fn(u32) -> f32,
) -> Vec<(u32, f32)> {
    let found = flat.search(&QueryCodes::new(q), k, 64, alive);
    let keep = flat.codec().rescored(k);
    assert!(found.len() <= keep);
    rescore(found, keep, k, |id| {
        Ok::<_, std::convert::Infallible>(exact(id))
    })
    .unwrap()
}

/// The exact top-k ids among the points `alive` admits.
fn exact_top(
    vectors: &[f32],
    dims: usize,
    q: &[f32],
    k: usize,
    alive: &dyn Fn(u32) -> bool,
) -> Vec<u32> {
    let mut all: Vec<(f32, u32)> = vectors
        .chunks_exact(dims)
        .enumerate()
        .filter(|(i, _)| alive(*i as u32))
        .map(|(i, v)| (dot(q, v), i as u32))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(_, i)| i).collect()
}

/// Recall@10 of `q` against an exact scan: of `flat`'s ranked answer, and of hnsw_rs's own search
/// of `graph` (ef 64).
fn recalls(flat: &FlatGraph, graph: &Graph, vectors: &[f32], dims: usize, q: &[f32]) -> (f64, f64) {
    let want = exact_top(vectors, dims, q, 10, &|_| true);
    let exact = |id: u32| dot(q, &vectors[id as usize * dims..(id as usize + 1) * dims]);
    let got: Vec<u32> = ranked(flat, q, 10, None, &exact)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let hnsw: Vec<u32> = graph
        .search(q, 10, 64, None)
        .into_iter()
        .map(|(id, _)| id as u32)
        .collect();
    (recall(&got, &want), recall(&hnsw, &want))
}

fn recall(got: &[u32], want: &[u32]) -> f64 {
    let want: HashSet<&u32> = want.iter().collect();
    got.iter().filter(|i| want.contains(i)).count() as f64 / want.len().max(1) as f64
}

#[test]
fn quantized_vectors_keep_their_direction() {
    let dims = 384;
    let vectors = clustered(1, 200, dims, 10, 0.5);
    for v in vectors.chunks_exact(dims) {
        let mut codes = Vec::new();
        let scale = quantize(v, &mut codes);
        let back: Vec<f32> = codes.iter().map(|c| scale * *c as f32).collect();
        let cos = dot(v, &back) / dot(&back, &back).sqrt();
        assert!(cos > 0.9999, "cosine {cos}");
        assert!(
            codes.iter().any(|c| c.abs() == 127),
            "the largest component uses the range"
        );
    }
    let mut codes = Vec::new();
    assert_eq!(quantize(&[0.0; 8], &mut codes), 1.0);
    assert_eq!(codes, [0; 8]);
}

/// The int8 approximation of a similarity (both sides quantized) stays within 0.005 of the
/// exact one on 384-dimension unit vectors: what lets an exact scan rank sealed points by their
/// codes and read only the best few from disk (`snapshot::rescored`).
#[test]
fn approximate_similarities_are_close() {
    let dims = 384;
    let vectors = clustered(3, 400, dims, 10, 0.5);
    let mut codes = Vec::new();
    let scales: Vec<f32> = vectors
        .chunks_exact(dims)
        .map(|v| quantize(v, &mut codes))
        .collect();
    let mut worst = 0f32;
    for i in 0..200 {
        let j = 399 - i;
        let (a, b) = (
            &vectors[i * dims..(i + 1) * dims],
            &vectors[j * dims..(j + 1) * dims],
        );
        let approx = scales[i]
            * scales[j]
            * dot_i8(
                &widen(&codes[i * dims..(i + 1) * dims]),
                &codes[j * dims..(j + 1) * dims],
            ) as f32;
        worst = worst.max((approx - dot(a, b)).abs());
    }
    assert!(worst < 0.005, "largest error {worst}");
}

#[test]
fn integer_dot_product_is_exact() {
    let a: Vec<i8> = (0..389).map(|i| ((i * 37) % 255 - 127) as i8).collect();
    let b: Vec<i8> = (0..389).map(|i| ((i * 91) % 255 - 127) as i8).collect();
    // every length from 0 to 389 (tails of every size after the 16-wide steps), both signs
    for len in 0..=a.len() {
        let (a, b) = (&a[..len], &b[..len]);
        let want: i32 = a.iter().zip(b).map(|(x, y)| *x as i32 * *y as i32).sum();
        assert_eq!(dot_i8(&widen(a), b), want, "length {len}");
    }
    assert_eq!(dot_i8(&[-127; 384], &[-127; 384]), 384 * 127 * 127);
    assert_eq!(dot_i8(&[127; 384], &[-127; 384]), -384 * 127 * 127);
}

/// The flat graph finds what hnsw_rs finds in the graph it copies: over 200 queries, its
/// recall@10 against an exact scan is at least hnsw_rs's own minus 0.01 (int8 codes, rescored).
#[test]
fn unfiltered_recall_matches_hnsw_rs() {
    let dims = 64;
    let n = 6000;
    let vectors = clustered(2, n, dims, 60, 0.6);
    let queries = clustered(3, 200, dims, 60, 0.6);
    let (graph, flat) = build(&vectors, dims);
    assert_eq!(flat.len(), n);
    let (mut ours, mut theirs) = (0.0, 0.0);
    for q in queries.chunks_exact(dims) {
        let (flat, hnsw) = recalls(&flat, &graph, &vectors, dims, q);
        ours += flat;
        theirs += hnsw;
    }
    let (ours, theirs) = (ours / 200.0, theirs / 200.0);
    assert!(
        ours >= theirs - 0.01 && theirs > 0.85,
        "flat {ours}, hnsw_rs {theirs}"
    );
}

/// A thread keeps its visited set between walks: a walk of a small graph right after one of a
/// larger graph (whose marks cover the small graph's ids) finds what the same walk finds on a
/// fresh thread, and a walk inside another's (the set in use) takes a set of its own.
#[test]
fn walks_on_one_thread_do_not_see_each_others_marks() {
    let dims = 32;
    let big = clustered(4, 3000, dims, 30, 0.6);
    let small = clustered(5, 500, dims, 30, 0.6);
    let queries = clustered(6, 40, dims, 30, 0.6);
    let (_, big) = build(&big, dims);
    let (_, small) = build(&small, dims);
    let walk = |flat: &FlatGraph, q: &[f32]| flat.search(&QueryCodes::new(q), 10, 64, None);
    let fresh: Vec<_> = std::thread::scope(|s| {
        s.spawn(|| {
            queries
                .chunks_exact(dims)
                .map(|q| walk(&small, q))
                .collect()
        })
        .join()
        .unwrap()
    });
    for (q, want) in queries.chunks_exact(dims).zip(&fresh) {
        let _ = walk(&big, q);
        assert_eq!(&walk(&small, q), want);
        let inner = with_visited(big.len(), |_| walk(&small, q));
        assert_eq!(&inner, want);
    }
}

/// The binary approximation is `scale · Σ q_i · sign(v_i)` with `scale = ‖v‖² / ‖v‖₁`, whatever
/// the number of dimensions (here not a multiple of 8: the last byte's spare bits count for
/// nothing): the per-byte tables against the sum written out. A vector's approximate similarity
/// to itself is its exact one (1 for a unit vector), as with int8 codes, so the two codecs'
/// candidates and the open graph's exact scores rank together.
#[test]
fn binary_approximation_is_the_signed_sum() {
    for dims in [8, 37, 384] {
        let vectors = clustered(7, 50, dims, 5, 0.5);
        let queries = clustered(8, 10, dims, 5, 0.5);
        for q in queries.chunks_exact(dims) {
            let prepared = QueryCodes::new(q);
            for v in vectors.chunks_exact(dims) {
                let mut code = Vec::new();
                let scale = Codec::Binary.encode(v, &mut code);
                assert_eq!(code.len(), dims.div_ceil(8));
                let l1: f32 = v.iter().map(|x| x.abs()).sum();
                let want_scale = dot(v, v) / l1;
                assert!((scale - want_scale).abs() < 1e-6);
                let want: f32 = q
                    .iter()
                    .zip(v)
                    .map(|(q, x)| if *x > 0.0 { *q } else { -*q })
                    .sum::<f32>()
                    * want_scale;
                let got = prepared.approx(Codec::Binary, scale, &code);
                assert!(
                    (got - want).abs() < 1e-4,
                    "{dims} dims: {got} against {want}"
                );
            }
        }
        for v in vectors.chunks_exact(dims) {
            let mut code = Vec::new();
            let scale = Codec::Binary.encode(v, &mut code);
            let itself = QueryCodes::new(v).approx(Codec::Binary, scale, &code);
            assert!((itself - 1.0).abs() < 1e-4, "{dims} dims: {itself}");
        }
    }
    let mut code = Vec::new();
    assert_eq!(Codec::Binary.encode(&[0.0; 9], &mut code), 1.0);
    assert_eq!(code, [0, 0]);
}

/// Binary codes walk the same graph with more candidates rescored ([`Codec::rescored`]): over
/// 100 queries their recall@10 against an exact scan is at least hnsw_rs's own (f32) minus 0.03,
/// on vectors made like documents on shared subjects ([`mixed`]). (On isotropic Gaussian
/// clusters, where a point's hundred cluster mates are all about equally near, one sign bit a
/// dimension cannot order them and recall is far lower: binary suits embeddings, as
/// `codes_on_scifact_queries` measures on real ones.)
#[test]
fn binary_recall_with_rescoring() {
    let dims = 384;
    let base: Vec<Vec<f32>> = clustered(9, 100, dims, 10, 0.6)
        .chunks_exact(dims)
        .map(<[f32]>::to_vec)
        .collect();
    let mut rng = quarry_core::rng::SplitMix64::new(10);
    let vectors = mixed(&base, 3000, &mut rng);
    let queries = mixed(&base, 100, &mut rng);
    let (graph, flat) = build_coded(&vectors, dims, Codec::Binary);
    let (mut ours, mut theirs, mut by_codes) = (0.0, 0.0, 0.0);
    for q in queries.chunks_exact(dims) {
        let (flat_recall, hnsw) = recalls(&flat, &graph, &vectors, dims, q);
        ours += flat_recall;
        theirs += hnsw;
        let want = exact_top(&vectors, dims, q, 10, &|_| true);
        // the best k by their codes alone, without a wider rescoring
        let found = flat.search(&QueryCodes::new(q), 10, 64, None);
        let alone: Vec<u32> = found.iter().take(10).map(|(id, _)| *id).collect();
        by_codes += recall(&alone, &want);
    }
    let (ours, theirs, by_codes) = (ours / 100.0, theirs / 100.0, by_codes / 100.0);
    eprintln!("binary recall@10 {ours} (by codes alone {by_codes}), hnsw_rs {theirs}");
    assert!(
        ours >= theirs - 0.03 && theirs > 0.85,
        "binary {ours}, hnsw_rs {theirs}"
    );
    assert!(
        by_codes < ours - 0.05,
        "codes alone {by_codes}: the rescoring should be what reaches {ours}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// With a filter, every result is admitted, the similarities are the exact ones in order,
    /// there are `k` whenever `k` points are admitted, and they are the exact filtered top-k
    /// (recall ≥ 0.9 on average over 20 queries).
    #[test]
    fn filtered_results_are_admitted_exact_and_complete(
        seed in 0u64..1000,
        modulus in prop_oneof![Just(2u32), Just(10), Just(50)],
        k in 1usize..20,
    ) {
        let dims = 32;
        let vectors = clustered(seed, 2000, dims, 30, 0.7);
        let queries = clustered(seed + 1, 20, dims, 30, 0.7);
        let (_, flat) = build(&vectors, dims);
        let alive = |id: u32| (id.wrapping_mul(2_654_435_761) >> 7).is_multiple_of(modulus);
        let mut total = 0.0;
        for q in queries.chunks_exact(dims) {
            let sim = |id: u32| dot(q, &vectors[id as usize * dims..(id as usize + 1) * dims]);
            let got = ranked(&flat, q, k, Some(&alive), &sim);
            for w in got.windows(2) {
                prop_assert!(w[0].1 >= w[1].1);
            }
            for (id, s) in &got {
                prop_assert!(alive(*id), "point {} is filtered out", id);
                prop_assert_eq!(*s, sim(*id));
            }
            let want = exact_top(&vectors, dims, q, k, &alive);
            prop_assert_eq!(got.len(), want.len());
            let ids: Vec<u32> = got.iter().map(|(id, _)| *id).collect();
            total += recall(&ids, &want);
        }
        prop_assert!(total / 20.0 >= 0.9, "mean recall {} at 1/{} admitted", total / 20.0, modulus);
    }
}

#[test]
fn flat_bytes_are_a_fraction_of_the_vectors() {
    let dims = 384;
    let vectors = clustered(4, 2000, dims, 20, 0.6);
    let (_, flat) = build(&vectors, dims);
    let per_point = flat.bytes() as f64 / 2000.0;
    // codes 384 + scale 4 + 32 links × 4 = 516, plus the upper layers (about 1 point in 16,
    // 16 links each)
    assert!(
        (516.0..560.0).contains(&per_point),
        "{per_point} bytes a point against 1,536 for the f32 vector alone"
    );
    assert!(
        flat.search(&QueryCodes::new(&vectors[..dims]), 0, 64, None)
            .is_empty()
    );
    // binary: 48 bytes of codes instead of 384
    let (_, flat) = build_coded(&vectors, dims, Codec::Binary);
    let per_point = flat.bytes() as f64 / 2000.0;
    assert!(
        (180.0..224.0).contains(&per_point),
        "{per_point} bytes a point"
    );
}

/// The on-disk form (sections of scales, codes and links) reads back into the row layout with
/// every point's code, scale, links and search unchanged, and writes back byte for byte; every
/// truncation of it is an error, never a graph.
#[test]
fn encoding_reads_back_into_the_same_graph() {
    let dims = 48;
    let vectors = clustered(5, 1500, dims, 15, 0.6);
    let (graph, _) = build(&vectors, dims);
    for codec in [Codec::Int8, Codec::Binary] {
        let m = VectorParams::default().m;
        let flat = FlatGraph::from_graph(&graph, 0, &vectors, (dims, m), codec).unwrap();
        encoding_reads_back(&flat, dims);
    }
}

fn encoding_reads_back(flat: &FlatGraph, dims: usize) {
    let bytes = flat.encode();
    let back = FlatGraph::decode(&bytes, dims).unwrap();
    assert_eq!(back.encode(), bytes);
    for id in 0..flat.len() as u32 {
        assert_eq!(back.code(id), flat.code(id));
        assert_eq!(back.scale(id).to_bits(), flat.scale(id).to_bits());
        assert_eq!(
            back.links0(id).collect::<Vec<_>>(),
            flat.links0(id).collect::<Vec<_>>()
        );
        assert!(flat.links0(id).count() > 0, "point {id} has links");
    }
    for q in clustered(6, 10, dims, 15, 0.6).chunks_exact(dims) {
        let q = QueryCodes::new(q);
        assert_eq!(back.search(&q, 10, 64, None), flat.search(&q, 10, 64, None));
    }
    for cut in [0, 8, 20, 33, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            FlatGraph::decode(&bytes[..cut], dims).is_err(),
            "cut at {cut}"
        );
    }
    assert!(FlatGraph::decode(&bytes, dims + 1).is_err());
    // hostile headers and links: each an error, none a panic or a huge allocation
    let n = flat.len();
    let patched = |at: usize, word: u32| {
        let mut b = bytes.clone();
        b[at..at + 4].copy_from_slice(&word.to_le_bytes());
        FlatGraph::decode(&b, dims)
    };
    let header = |i: usize| 8 + 4 * i; // dims, points, m0, entry, top, upper lists
    for (field, word) in [
        (1, u32::MAX),
        (1, 0),
        (2, 0),
        (2, 1025),
        (3, n as u32),
        (4, 17),
        (5, u32::MAX),
    ] {
        assert!(
            patched(header(field), word).is_err(),
            "header {field} = {word}"
        );
    }
    assert_eq!(back.codec(), flat.codec());
    let first_link = header(6) + 4 * n + flat.code_len * n;
    assert!(
        patched(first_link, n as u32).is_err(),
        "a link past the points"
    );
}

/// Resident memory of this process (`VmRSS`), in bytes (0 where `/proc` is missing).
/// Rows per insert below the graph's parallel threshold.
const PARALLEL_BATCH: usize = 500;

fn rss() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// `n` vectors and `queries` held-out ones that look like MiniLM embeddings: [`mixed`] of the
/// SciFact document vectors (`$QUARRY_DATASETS/scifact/minilm-corpus.parquet`). `None` without the
/// dataset.
fn scifact_like(n: usize, queries: usize) -> Option<(Vec<f32>, Vec<f32>)> {
    let root = std::env::var_os("QUARRY_DATASETS")?;
    let path = std::path::Path::new(&root).join("scifact/minilm-corpus.parquet");
    let base: Vec<Vec<f32>> = crate::ingest::parquet::read_all(&path)
        .ok()?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let mut rng = quarry_core::rng::SplitMix64::new(5);
    let v = mixed(&base, n, &mut rng);
    let q = mixed(&base, queries, &mut rng);
    Some((v, q))
}

/// `count` vectors, each `normalize(a·x + (1 − a)·y + 0.03·g)` for two random vectors `x`, `y` of
/// `base`, `a` uniform in [0.5, 1] and Gaussian `g` (cosine to `x` about 0.85): a point's nearest
/// neighbours are those that share its `x`, as documents on one subject.
fn mixed(base: &[Vec<f32>], count: usize, rng: &mut quarry_core::rng::SplitMix64) -> Vec<f32> {
    let mut out = Vec::with_capacity(count * base[0].len());
    for _ in 0..count {
        let x = &base[rng.next_u64() as usize % base.len()];
        let y = &base[rng.next_u64() as usize % base.len()];
        let a = 0.5 + 0.5 * rng.next_f64() as f32;
        let mut v: Vec<f32> = x
            .iter()
            .zip(y)
            .map(|(x, y)| a * x + (1.0 - a) * y + 0.03 * rng.gaussians().0 as f32)
            .collect();
        quarry_core::embed::normalize(&mut v);
        out.extend(v);
    }
    out
}

/// A measurement, not in CI: the flat int8 graph against hnsw_rs's search of the graph it copies,
/// on `QUARRY_BENCH_N` (100,000) 384-dimension vectors ([`scifact_like`] with `QUARRY_DATASETS`,
/// clustered Gaussians without) and 1,000 held-out queries: memory, build
/// time, recall@10 against an exact scan, and latency, unfiltered and with 10 % and 1 % of the
/// points admitted. `cargo test --release -p quarry-index flat_against_hnsw_rs -- --ignored
/// --nocapture`; `QUARRY_BENCH_SERIAL=1` builds the graph one insert at a time.
#[test]
#[ignore = "a measurement: release mode"]
fn flat_against_hnsw_rs() {
    use rayon::prelude::*;
    use std::time::Instant;
    let dims = 384;
    let n: usize = std::env::var("QUARRY_BENCH_N").map_or(100_000, |v| v.parse().unwrap());
    let (vectors, queries, source) = match scifact_like(n, 1000) {
        Some((v, q)) => (v, q, "SciFact MiniLM vectors mixed and noised"),
        None => (
            clustered(11, n, dims, n / 100, 0.8),
            clustered(12, 1000, dims, n / 100, 0.8),
            "clustered Gaussians (QUARRY_DATASETS unset)",
        ),
    };
    eprintln!("vectors: {source}");
    let before = rss();
    let params = VectorParams::default();
    let graph = Graph::new(params, n);
    let rows: Vec<(usize, &[f32])> = vectors.chunks_exact(dims).enumerate().collect();
    let serial = std::env::var_os("QUARRY_BENCH_SERIAL").is_some();
    let t = Instant::now();
    if serial {
        // batches below the parallel threshold: one insert at a time, as before
        for batch in rows.chunks(PARALLEL_BATCH) {
            graph.insert(batch);
        }
    } else {
        graph.insert(&rows);
    }
    let build = t.elapsed().as_secs_f64();
    let graph_rss = rss().saturating_sub(before);
    let t = Instant::now();
    let flat = FlatGraph::from_graph(&graph, 0, &vectors, (dims, params.m), Codec::Int8).unwrap();
    let flatten = t.elapsed().as_secs_f64();
    let binary =
        FlatGraph::from_graph(&graph, 0, &vectors, (dims, params.m), Codec::Binary).unwrap();
    eprintln!(
        "binary flat graph {:.0} bytes a point",
        binary.bytes() as f64 / n as f64
    );
    eprintln!(
        "{n} vectors of {dims}: hnsw_rs build {build:.1} s ({:.0}/s, {}); its RSS {:.0} bytes a point (f32 vectors inside); flattening {flatten:.2} s; flat graph {:.0} bytes a point; the f32 vectors {} bytes a point",
        n as f64 / build,
        if serial {
            "one insert at a time"
        } else {
            "one thread per core"
        },
        graph_rss as f64 / n as f64,
        flat.bytes() as f64 / n as f64,
        4 * dims
    );
    for (label, modulus) in [("all", 1u32), ("10 %", 10), ("1 %", 100)] {
        let alive = move |id: u32| (id.wrapping_mul(2_654_435_761) >> 7).is_multiple_of(modulus);
        let exact: Vec<Vec<u32>> = queries
            .par_chunks_exact(dims)
            .map(|q| exact_top(&vectors, dims, q, 10, &alive))
            .collect();
        let sim =
            |q: &[f32], id: u32| dot(q, &vectors[id as usize * dims..(id as usize + 1) * dims]);
        let (mut r_flat, mut r_hnsw, mut t_flat, mut t_hnsw) = (0.0, 0.0, Vec::new(), Vec::new());
        let (mut r_bin, mut t_bin) = (0.0, Vec::new());
        for (q, want) in queries.chunks_exact(dims).zip(&exact) {
            // one flat graph's ranked answer, timed, and its recall
            let timed = |g: &FlatGraph, times: &mut Vec<f64>| {
                let t = Instant::now();
                let filter = (modulus > 1).then_some(&alive as &dyn Fn(u32) -> bool);
                let got: Vec<u32> = ranked(g, q, 10, filter, &|id| sim(q, id))
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                times.push(t.elapsed().as_secs_f64() * 1e3);
                recall(&got, want)
            };
            r_bin += timed(&binary, &mut t_bin);
            r_flat += timed(&flat, &mut t_flat);
            let keep = |id: &usize| alive(*id as u32);
            let t = Instant::now();
            let hnsw: Vec<u32> = graph
                .search(
                    q,
                    10,
                    64,
                    (modulus > 1).then_some(&keep as &dyn Fn(&usize) -> bool),
                )
                .into_iter()
                .map(|(id, _)| id as u32)
                .collect();
            t_hnsw.push(t.elapsed().as_secs_f64() * 1e3);
            r_hnsw += recall(&hnsw, want);
        }
        let p = |t: &mut Vec<f64>, q: f64| {
            t.sort_by(f64::total_cmp);
            quarry_core::stats::percentile(t, q)
        };
        eprintln!(
            "  {label} admitted, ef 64: flat recall@10 {:.4}, p50 {:.3} ms, p99 {:.3} ms | hnsw_rs recall@10 {:.4}, p50 {:.3} ms, p99 {:.3} ms",
            r_flat / 1000.0,
            p(&mut t_flat, 50.0),
            p(&mut t_flat, 99.0),
            r_hnsw / 1000.0,
            p(&mut t_hnsw, 50.0),
            p(&mut t_hnsw, 99.0),
        );
        eprintln!(
            "  {label} admitted, binary (rescoring {}): recall@10 {:.4}, p50 {:.3} ms, p99 {:.3} ms",
            Codec::Binary.rescored(10),
            r_bin / 1000.0,
            p(&mut t_bin, 50.0),
            p(&mut t_bin, 99.0),
        );
    }
}

/// A measurement, not in CI: recall@10 against an exact scan of int8 and binary codes for the real
/// SciFact queries over the real SciFact corpus vectors (`$QUARRY_DATASETS/scifact/minilm-*.parquet`),
/// as a segment searches them (the codec's beam and rescoring for top 10), by `ef_search`. `cargo test --release -p quarry-index
/// codes_on_scifact_queries -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: needs QUARRY_DATASETS"]
fn codes_on_scifact_queries() {
    let root = std::env::var_os("QUARRY_DATASETS").expect("QUARRY_DATASETS is not set");
    let read = |name: &str| -> Vec<f32> {
        let path = std::path::Path::new(&root).join("scifact").join(name);
        crate::ingest::parquet::read_all(&path)
            .unwrap()
            .into_iter()
            .flat_map(|(_, v)| v)
            .collect()
    };
    let (vectors, queries) = (
        read("minilm-corpus.parquet"),
        read("minilm-queries.parquet"),
    );
    let dims = 384;
    let (graph, _) = build(&vectors, dims);
    let nq = queries.len() / dims;
    let m = VectorParams::default().m;
    for codec in [Codec::Int8, Codec::Binary] {
        let flat = FlatGraph::from_graph(&graph, 0, &vectors, (dims, m), codec).unwrap();
        for ef in [32, 64, 128] {
            let (beam, keep) = (codec.beam(ef, 10), codec.rescored(10));
            let mut total = 0.0;
            for q in queries.chunks_exact(dims) {
                let want = exact_top(&vectors, dims, q, 10, &|_| true);
                let found = flat.search(&QueryCodes::new(q), 10, ef, None);
                let got: Vec<u32> = rescore(found, keep, 10, |id| {
                    Ok::<_, std::convert::Infallible>(dot(
                        q,
                        &vectors[id as usize * dims..(id as usize + 1) * dims],
                    ))
                })
                .unwrap()
                .into_iter()
                .map(|(id, _)| id)
                .collect();
                total += recall(&got, &want);
            }
            eprintln!(
                "{codec:?}, ef_search {ef} (beam {beam}, {keep} rescored): recall@10 {:.4} over {nq} queries",
                total / nq as f64
            );
        }
    }
}
