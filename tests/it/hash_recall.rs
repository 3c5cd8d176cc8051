//! A measurement, not in CI: HNSW recall on the hash test embedder's vectors (issue 17 asked
//! whether a recall of 0.105 seen with it came from the vectors or the graph). SciFact's corpus is
//! chunked as `quarry eval` does at 64 tokens (counted in characters here, 16 of overlap) until
//! 20,400 chunks, embedded with the hash embedder at `DIMS` (384) dimensions, and indexed as the
//! served graph (`exact_threshold` 0, `ef_search` 64); 200 SciFact queries. It prints how many
//! vectors are distinct and recall@10 against an exact scan, by id and counting ties (a hit as
//! similar as the exact 10th counts).
//!
//! ```sh
//! QUARRY_DATASETS=… DIMS=384 cargo test --release --test it hash_recall -- --ignored --nocapture
//! ```
use quarry_core::{ChunkOptions, ChunkSizer, Chunker, ContentHash, DocFormat, Embedder, InputKind};
use quarry_embed::HashEmbedder;
use quarry_index::vectors::{VectorIndex, VectorParams};

#[test]
#[ignore = "a measurement: release mode, SciFact; see the module doc"]
fn hash_vectors_recall() {
    let Some(root) = crate::scifact("hash_recall", &["corpus.jsonl", "queries.jsonl"]) else {
        return;
    };
    let corpus = std::fs::read_to_string(root.join("corpus.jsonl")).unwrap();
    let chunker = Chunker::new(
        ChunkOptions {
            max_tokens: 64,
            overlap: 16,
            sizer: ChunkSizer::Chars,
            context_chars: 0,
        },
        None,
    )
    .unwrap();
    let dims: usize = std::env::var("DIMS").map_or(384, |v| v.parse().unwrap());
    let e = HashEmbedder::new(dims).unwrap();
    let mut texts = Vec::new();
    for l in corpus.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let t = v["text"].as_str().unwrap();
        for c in chunker.chunk("", t, DocFormat::Text) {
            texts.push(c.text);
        }
        if texts.len() > 20400 {
            break;
        }
    }
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    let vecs = e.embed(&refs, InputKind::Document).unwrap();
    let mut distinct = std::collections::HashSet::new();
    for v in &vecs {
        distinct.insert(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }
    eprintln!("{} chunks, {} distinct vectors", vecs.len(), distinct.len());
    let qs: Vec<String> = std::fs::read_to_string(root.join("queries.jsonl"))
        .unwrap()
        .lines()
        .take(200)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let qrefs: Vec<&str> = qs.iter().map(|s| s.as_str()).collect();
    let qv = e.embed(&qrefs, InputKind::Query).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ix = VectorIndex::open(
        dir.path(),
        dims,
        VectorParams {
            exact_threshold: 0,
            ..VectorParams::default()
        },
    )
    .unwrap();
    let rows: Vec<(ContentHash, Vec<f32>)> = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| (ContentHash::of(&(i as u64).to_le_bytes()), v.clone()))
        .collect();
    let t = std::time::Instant::now();
    ix.apply(1, &[], &rows).unwrap();
    ix.publish();
    eprintln!("built in {:?}", t.elapsed());
    let snap = ix.snapshot();
    let id = |h: &ContentHash| rows.iter().position(|r| r.0 == *h).unwrap();
    let (mut by_id, mut tie_aware, mut zero_tenth) = (0usize, 0usize, 0usize);
    for q in &qv {
        let mut exact: Vec<(f32, usize)> = vecs
            .iter()
            .enumerate()
            .map(|(i, v)| (quarry_index::vectors::dot(q, v), i))
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let tenth = exact[9].0;
        if tenth <= 1e-6 {
            zero_tenth += 1;
        }
        let want: std::collections::HashSet<usize> = exact.iter().take(10).map(|x| x.1).collect();
        let got = snap.search(q, 10).unwrap();
        for (h, s) in &got {
            if want.contains(&id(h)) {
                by_id += 1;
            }
            if *s >= tenth - 1e-5 {
                tie_aware += 1;
            }
        }
    }
    let n = 10.0 * qv.len() as f64;
    eprintln!(
        "dims {dims}: recall@10 by id {:.3}, tie-aware {:.3}; queries whose 10th exact cosine is 0: {zero_tenth}",
        by_id as f64 / n,
        tie_aware as f64 / n
    );
    // measured 0.865 at 384 dimensions (BENCHMARKS.md); far above the 0.105 the issue quoted
    assert!(
        by_id as f64 / n > 0.8,
        "the graph finds the hash vectors' neighbours"
    );
    assert!(
        distinct.len() * 100 >= vecs.len() * 99,
        "the vectors are distinct"
    );
}
