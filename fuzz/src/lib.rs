//! Shared setup of the fuzz targets in `src/bin/`: each reads one input, drives one parser of
//! quarry's with it, and fails only by panicking (errors are the expected answer to bad input).

use quarry_core::{ChunkOptions, ChunkSizer, Chunker};

/// A chunker sized in characters (no tokenizer: the fuzz targets run without a model), with small
/// chunks so that even short inputs are split and overlapped.
pub fn chunker() -> Chunker {
    Chunker::new(
        ChunkOptions {
            max_tokens: 16,
            overlap: 4,
            sizer: ChunkSizer::Chars,
            ..ChunkOptions::default()
        },
        None,
    )
    .expect("valid chunk options")
}
