//! The JSONL reader of an ingest: every line of the input as a line of a `.jsonl` file (size
//! limit, JSON, `_id`/`id`, ACL normalisation, hashing, chunking).

use quarry_core::Chunker;

fn main() {
    // (the chunker is only read: a panic cannot leave it half-changed)
    let chunker = std::panic::AssertUnwindSafe(quarry_fuzz::chunker());
    afl::fuzz!(|data: &[u8]| {
        let chunker: &Chunker = &chunker;
        let lines = data.split_inclusive(|&b| b == b'\n').count();
        let (upserts, skipped) = quarry_index::ingest::read_jsonl_bytes(data, chunker, 4096);
        assert!(
            upserts + skipped <= lines,
            "{upserts} + {skipped} of {lines} lines"
        );
    });
}
