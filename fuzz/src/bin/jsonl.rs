//! The JSONL reader of an ingest: every line of the input as a line of a `.jsonl` file (size
//! limit, JSON, `_id`/`id`, ACL normalisation, hashing, chunking).

fn main() {
    let chunker = quarry_fuzz::chunker();
    afl::fuzz!(|data: &[u8]| {
        let lines = data.split_inclusive(|&b| b == b'\n').count();
        let (upserts, skipped) = quarry_index::ingest::read_jsonl_bytes(data, &chunker, 4096);
        assert!(
            upserts + skipped <= lines,
            "{upserts} + {skipped} of {lines} lines"
        );
    });
}
