//! Throughput and query latency of the local embedder (all-MiniLM-L6-v2 on the CPU).
//!
//! The documents are the first [`DOCS`] records of SciFact (`$QUARRY_DATASETS/scifact/corpus.jsonl`;
//! the workspace's DEVELOPERS.md, "Datasets", says where to get it), each embedded as
//! `title + " " + text`, truncated at 256 tokens like any document. The model is taken from the
//! model cache (downloaded there on first use). When the variable is unset or the dataset is
//! missing the benchmark says so and measures nothing.
//!
//! What is printed (stderr), besides criterion's `embed/query`:
//!
//! * **documents** and **64-token chunks** (the chunks twice: first through candle-transformers'
//!   `BertModel`, the baseline, then through quarry's encoder, with the ratio of the two):
//!   chunks/s and tokens/s over one timed pass each (after
//!   a warm-up batch), where the tokens are the real tokens the model sees (specials included,
//!   padding excluded), and the CPU time / wall time of the pass (how many cores were busy). The
//!   documents are embedded whole (up to 256 tokens); the chunks are the same documents cut as an
//!   ingest cuts them with the default options (64 tokens, overlap 16), each embedded with its
//!   title in front: the ingest's workload, where attention costs little.
//! * **roofline** (after each pass): the useful FLOPs of the pass divided by its time, as a
//!   fraction of this machine's f32 peak and of the measured ceiling. FLOPs of a sequence of `n` tokens through a BERT encoder of `L` layers, hidden size
//!   `H` and intermediate size `I` (multiply-add = 2 FLOPs, matmuls only):
//!   - per token and layer, the Q, K, V and output projections `4 · 2H²` and the feed-forward
//!     `2 · 2HI`: for MiniLM-L6 (H = 384, I = 1536) 1 179 648 + 2 359 296 = 3 538 944 FLOPs,
//!     i.e. 2 × the 3.54 M weights of a layer's matmuls;
//!   - per layer, attention scores `QKᵀ` and the weighted sum `AV`: `2 · 2n²H` = `4·n·H` per token;
//!   - so `flops(n) = L · (n · (8H² + 4HI) + 4n²H)`; at n = 256 that is 6 · (256 · 3.54 M +
//!     4 · 256² · 384) ≈ 6.04 GFLOPs per sequence, 23.6 MFLOPs per token.
//!
//!   Peak = cores × clock × f32 FLOPs per cycle per core; with two 256-bit FMA units a core does
//!   2 units × 8 lanes × 2 (multiply + add) = 32 FLOPs per cycle, with two 512-bit units 64. AMD
//!   Zen 4 (family 25; Zen 3 has no AVX-512) runs it on 256-bit units: 32. The clock is `cpu MHz` of
//!   `/proc/cpuinfo` (the base clock on a VM; a turbo clock would lower the fraction).
//!
//!   The **ceiling** is measured, not assumed: the same run times the product the encoder
//!   spends most FLOPs on (`2048 × 384` by `384 × 1536`, f32, faer's product as the encoder
//!   runs it) and reports it in GFLOP/s; `ceiling / flops per token` is the tokens/s an
//!   encoder that did nothing but its matrix products at that speed would reach.
//! * **static**: the static fast tier (`quarry model distill`, when built) over the same documents:
//!   chunks/s and its multiple of the MiniLM pass of the same run; `QUARRY_BENCH_STATIC=a,b`
//!   measures those models of the cache instead of the default one (a fitted model beside it).
//! * **query latency**: one query embedded per call (the query path), over SciFact queries:
//!   median and p90 of [`QUERY_RUNS`] calls.
//!
//! Run it (release build):
//!
//! ```text
//! cargo bench -p quarry-embed --bench embed
//! ```

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::Criterion;
use std::sync::Arc;

use quarry_core::{
    ChunkOptions, Chunker, DocFormat, Embedder, InputKind, TokenCounter, embed_text,
};
use quarry_embed::distill::DEFAULT_STATIC_MODEL;
use quarry_embed::{DEFAULT_MODEL, LocalEmbedder, StaticEmbedder, ensure_model, model_cache_dir};

/// The allocator of the `quarry` binary (`src/main.rs`), so the figures are the ingest's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// SciFact documents embedded for the throughput figures.
const DOCS: usize = 512;
/// Single-query embeddings timed for the latency percentiles.
const QUERY_RUNS: usize = 200;

const LAYERS: f64 = 6.0;
const HIDDEN: f64 = 384.0;
const INTERMEDIATE: f64 = 1536.0;

/// Useful FLOPs of one sequence of `n` tokens (see the module doc).
fn flops(n: usize) -> f64 {
    let n = n as f64;
    LAYERS * (n * (8.0 * HIDDEN * HIDDEN + 4.0 * HIDDEN * INTERMEDIATE) + 4.0 * n * n * HIDDEN)
}

/// `$QUARRY_DATASETS/scifact`, or `None` (after saying why) when the variable is unset.
fn dataset_dir() -> Option<PathBuf> {
    let Some(root) = std::env::var_os("QUARRY_DATASETS") else {
        eprintln!(
            "embed bench: QUARRY_DATASETS is not set; nothing to measure. Set it to the folder \
             that holds BEIR SciFact as scifact/ (see DEVELOPERS.md, \"Datasets\")."
        );
        return None;
    };
    Some(PathBuf::from(root).join("scifact"))
}

fn read_jsonl(
    path: &PathBuf,
    limit: usize,
    text: impl Fn(&serde_json::Value) -> String,
) -> Vec<String> {
    let data = std::fs::read_to_string(path).expect("readable");
    data.lines()
        .filter(|l| !l.trim().is_empty())
        .take(limit)
        .map(|l| text(&serde_json::from_str(l).expect("valid JSON line")))
        .collect()
}

fn field(v: &serde_json::Value, name: &str) -> String {
    v.get(name)
        .and_then(|s| s.as_str())
        .unwrap_or("")
        .to_owned()
}

/// Seconds of CPU (user + system) this process has used, from `/proc/self/stat` (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0) // USER_HZ is 100 on Linux
}

fn cpu_mhz() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

fn flops_per_cycle() -> (f64, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            let zen = info.contains("AuthenticAMD")
                && info
                    .lines()
                    .find(|l| l.starts_with("cpu family"))
                    .and_then(|l| l.split(':').nth(1))
                    .is_some_and(|f| f.trim() == "25");
            if zen {
                return (32.0, "AMD Zen 4: AVX-512 on 2 FMA units x 8 f32 lanes x 2");
            }
            return (64.0, "AVX-512: 2 FMA units x 16 f32 lanes x 2");
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return (32.0, "AVX2+FMA: 2 FMA units x 8 f32 lanes x 2");
        }
    }
    (8.0, "no AVX2/FMA: assumed 8")
}

/// GFLOP/s of the f32 product the encoder runs (faer's, on rayon's threads, into a buffer it
/// reuses) on its most common shape, `(2048 × 384)` by `(384 × 1536)`: the median of 15 timed
/// products after 3 untimed ones.
fn matmul_ceiling() -> f64 {
    use faer::linalg::matmul::matmul;
    use faer::{Accum, MatMut, MatRef, Par};
    let (m, k, n) = (2048, 384, 1536);
    let values = |len: usize, seed: usize| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed) % 2003) as f32 / 1001.0 - 1.0)
            .collect()
    };
    let (x, w) = (values(m * k, 1), values(k * n, 2));
    let mut out = vec![0f32; m * n];
    let mut product = || {
        matmul(
            MatMut::from_row_major_slice_mut(&mut out, m, n),
            Accum::Replace,
            MatRef::from_row_major_slice(&x, m, k),
            MatRef::from_row_major_slice(&w, k, n),
            1.0,
            Par::rayon(0),
        );
        black_box(&out);
    };
    for _ in 0..3 {
        product();
    }
    let mut secs: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            product();
            start.elapsed().as_secs_f64()
        })
        .collect();
    secs.sort_by(f64::total_cmp);
    2.0 * (m * k * n) as f64 / quarry_core::stats::percentile(&secs, 50.0) / 1e9
}

/// Nearest-rank percentile ([`quarry_core::stats::percentile`]) of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let secs: Vec<f64> = sorted.iter().map(Duration::as_secs_f64).collect();
    Duration::from_secs_f64(quarry_core::stats::percentile(&secs, p))
}

/// The static models measured: `QUARRY_BENCH_STATIC` (comma-separated names of models in the
/// model cache, e.g. `static-all-MiniLM-L6-v2,static-fit-sf` for a fitted one beside the plain
/// one), else the default static model.
fn static_models() -> Vec<String> {
    match std::env::var("QUARRY_BENCH_STATIC") {
        Ok(names) if !names.trim().is_empty() => names
            .split(',')
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect(),
        _ => vec![DEFAULT_STATIC_MODEL.to_owned()],
    }
}

/// A static fast tier model over the same documents, if `quarry model distill` built it:
/// chunks/s and its multiple of the MiniLM pass just timed (`minilm_rate` chunks/s). The static
/// model reads up to 512 tokens of a document where MiniLM stops at 256, so the multiple is a
/// lower bound.
fn static_pass(name: &str, docs: &[&str], minilm_tokens: usize, minilm_rate: f64) {
    let dir = model_cache_dir().join(name);
    let s = match StaticEmbedder::load(&dir, name) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("== static {name}: not measured ({e})");
            return;
        }
    };
    black_box(s.embed(docs, InputKind::Document).expect("embeds"));
    // Passes until a second has gone by, then chunks/s over all of them.
    let (start, mut passes) = (Instant::now(), 0usize);
    while passes == 0 || start.elapsed() < Duration::from_secs(1) {
        black_box(s.embed(docs, InputKind::Document).expect("embeds"));
        passes += 1;
    }
    let secs = start.elapsed().as_secs_f64() / passes as f64;
    let rate = docs.len() as f64 / secs;
    eprintln!(
        "== static ({}, {} dimensions): {:.1} ms a pass, {rate:.0} chunks/s, {:.0} MiniLM tokens/s: {:.0}x the MiniLM pass of this run",
        name,
        s.spec().dimensions,
        secs * 1e3,
        minilm_tokens as f64 / secs,
        rate / minilm_rate
    );
}

/// One timed MiniLM pass over `texts`: throughput, CPU use and the roofline, printed under
/// `label`; returns the real tokens and the seconds.
fn minilm_pass(e: &LocalEmbedder, label: &str, texts: &[&str]) -> (usize, f64) {
    let max = e.spec().max_tokens;
    let lengths: Vec<usize> = texts
        .iter()
        .map(|d| e.count_tokens(d).expect("counts").min(max))
        .collect();
    let tokens: usize = lengths.iter().sum();
    let work: f64 = lengths.iter().map(|&n| flops(n)).sum();
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    black_box(e.embed(texts, InputKind::Document).expect("embeds"));
    let secs = start.elapsed().as_secs_f64();
    let busy = cpu_seconds().zip(cpu0).map(|(b, a)| (b - a) / secs);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mhz = cpu_mhz().unwrap_or(0.0);
    let (per_cycle, why) = flops_per_cycle();
    let peak = cores * mhz * 1e6 * per_cycle;
    let achieved = work / secs;
    eprintln!(
        "== {label}: {} texts, {tokens} real tokens (mean {:.0}, max {})",
        texts.len(),
        tokens as f64 / texts.len() as f64,
        lengths.iter().max().unwrap_or(&0)
    );
    eprintln!(
        "   {:.2} s: {:.1} chunks/s, {:.0} tokens/s; CPU busy {} cores",
        secs,
        texts.len() as f64 / secs,
        tokens as f64 / secs,
        busy.map_or("?".into(), |b| format!("{b:.2}"))
    );
    eprintln!(
        "   roofline: flops(n) = 6 * (n * (8*384^2 + 4*384*1536) + 4*n^2*384) = 6 * (n * 3538944 + 1536 n^2)"
    );
    eprintln!(
        "   sum over texts = {:.1} GFLOP ({:.1} MFLOP/token); / {secs:.2} s = {:.1} GFLOP/s",
        work / 1e9,
        work / tokens as f64 / 1e6,
        achieved / 1e9
    );
    eprintln!(
        "   peak = {cores} cores * {:.3} GHz * {per_cycle} FLOP/cycle ({why}) = {:.1} GFLOP/s",
        mhz / 1e3,
        peak / 1e9
    );
    let ceiling = matmul_ceiling();
    eprintln!(
        "   ceiling (measured matmul 2048x384 by 384x1536, this run) = {ceiling:.1} GFLOP/s: \
         {:.1}% of it; matmuls alone at that speed = {:.0} tokens/s",
        100.0 * achieved / (ceiling * 1e9),
        ceiling * 1e9 / (work / tokens as f64)
    );
    if peak > 0.0 {
        eprintln!("   fraction of peak = {:.1}%", 100.0 * achieved / peak);
        // On a shared machine the process may get less than all cores: the same work over the
        // CPU time it did get tells how efficient the code is while it runs.
        if let Some(b) = busy.filter(|b| *b > 0.0) {
            let core_peak = mhz * 1e6 * per_cycle;
            eprintln!(
                "   per CPU-second used: {:.0} tokens/s, {:.1} GFLOP/s = {:.1}% of one core's peak ({:.1} GFLOP/s)",
                tokens as f64 / (secs * b),
                achieved / b / 1e9,
                100.0 * achieved / b / core_peak,
                core_peak / 1e9
            );
        }
    }
    (tokens, secs)
}

fn main() {
    let Some(dir) = dataset_dir() else {
        return;
    };
    let corpus = dir.join("corpus.jsonl");
    if !corpus.is_file() {
        eprintln!("{} is missing: nothing to measure", corpus.display());
        return;
    }
    let model_dir = ensure_model(DEFAULT_MODEL, &model_cache_dir(), &|_, _| {})
        .expect("the model is cached or can be downloaded");
    let e = Arc::new(LocalEmbedder::load(&model_dir, DEFAULT_MODEL).expect("the model loads"));
    let limit = std::env::var("QUARRY_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DOCS);
    let titled: Vec<(String, String)> = read_jsonl(&corpus, limit, |v| {
        format!("{}\u{0}{}", field(v, "title"), field(v, "text"))
    })
    .into_iter()
    .map(|s| {
        let (title, text) = s.split_once('\u{0}').expect("joined above");
        (title.to_owned(), text.to_owned())
    })
    .collect();
    let docs: Vec<String> = titled.iter().map(|(t, x)| format!("{t} {x}")).collect();
    let queries = read_jsonl(&dir.join("queries.jsonl"), QUERY_RUNS, |v| field(v, "text"));
    let doc_refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    // The same documents as an ingest embeds them: cut into chunks of the default size (64
    // tokens of this tokenizer), each with its title in front.
    let counted = e.clone();
    let counter: TokenCounter = Arc::new(move |s: &str| counted.count_tokens(s).unwrap_or(0));
    let chunker = Chunker::new(ChunkOptions::default(), Some(counter)).expect("default options");
    let chunks: Vec<String> = titled
        .iter()
        .flat_map(|(title, text)| {
            chunker
                .chunk(title, text, DocFormat::Text)
                .into_iter()
                .map(|c| embed_text(title, &c.text))
        })
        .collect();
    let chunk_refs: Vec<&str> = chunks.iter().map(String::as_str).collect();

    let bench = std::env::args().any(|a| a == "--bench");
    if bench {
        // Warm-up: page in the weights, start the thread pool.
        black_box(
            e.embed(&doc_refs[..32.min(doc_refs.len())], InputKind::Document)
                .expect("embeds"),
        );
        let (tokens, secs) = minilm_pass(&e, "documents (whole, up to 256 tokens)", &doc_refs);
        // The baseline of the same run: the same model, batching and pooling through
        // candle-transformers' BertModel, then quarry's encoder, on the ingest's workload.
        let baseline = LocalEmbedder::load_candle_reference(&model_dir, DEFAULT_MODEL)
            .expect("the model loads");
        black_box(
            baseline
                .embed(&chunk_refs[..32.min(chunk_refs.len())], InputKind::Document)
                .expect("embeds"),
        );
        let (_, base) = minilm_pass(
            &baseline,
            "64-token chunks, baseline: candle-transformers' BertModel",
            &chunk_refs,
        );
        let (_, ours) = minilm_pass(
            &e,
            "64-token chunks (ingest defaults, title in front): quarry's encoder",
            &chunk_refs,
        );
        eprintln!(
            "   quarry's encoder: {:.2}x the baseline's tokens/s",
            base / ours
        );

        for name in static_models() {
            static_pass(&name, &doc_refs, tokens, docs.len() as f64 / secs);
        }

        // Query path: one text per call.
        for q in queries.iter().take(10) {
            black_box(e.embed(&[q.as_str()], InputKind::Query).expect("embeds"));
        }
        let mut times: Vec<Duration> = queries
            .iter()
            .map(|q| {
                let start = Instant::now();
                black_box(e.embed(&[q.as_str()], InputKind::Query).expect("embeds"));
                start.elapsed()
            })
            .collect();
        times.sort();
        let qtokens: usize = queries.iter().map(|q| e.count_tokens(q).unwrap_or(0)).sum();
        eprintln!(
            "== query latency over {} SciFact queries (mean {:.1} tokens): median {:.2?}, p90 {:.2?}",
            times.len(),
            qtokens as f64 / queries.len().max(1) as f64,
            percentile(&times, 50.0),
            percentile(&times, 90.0)
        );
        // Batches of queries: 32 queries as 32 calls against the same 32 in one call, in turn,
        // over rounds of distinct queries; the median of the per-round ratios.
        let mut ratios = Vec::new();
        let (mut seq_ms, mut one_ms) = (Vec::new(), Vec::new());
        for round in queries.chunks_exact(32) {
            let refs: Vec<&str> = round.iter().map(String::as_str).collect();
            let start = Instant::now();
            for q in &refs {
                black_box(e.embed(&[*q], InputKind::Query).expect("embeds"));
            }
            let seq = start.elapsed().as_secs_f64();
            let start = Instant::now();
            black_box(e.embed(&refs, InputKind::Query).expect("embeds"));
            let one = start.elapsed().as_secs_f64();
            seq_ms.push(seq * 1e3);
            one_ms.push(one * 1e3);
            ratios.push(seq / one);
        }
        let median = |v: &[f64]| {
            quarry_core::stats::percentile(
                &{
                    let mut v = v.to_vec();
                    v.sort_by(f64::total_cmp);
                    v
                },
                50.0,
            )
        };
        eprintln!(
            "== query batches ({} rounds of 32): 32 calls median {:.1} ms, one call median {:.1} ms, \
             ratio median {:.2}x",
            ratios.len(),
            median(&seq_ms),
            median(&one_ms),
            median(&ratios)
        );
    }

    let mut c = Criterion::default().configure_from_args();
    let mut i = 0;
    c.bench_function("embed/query", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            black_box(
                e.embed(&[queries[i].as_str()], InputKind::Query)
                    .expect("embeds"),
            )
        })
    });
    c.final_summary();
}
