//! The BM25 schema: the fields of a chunk's tantivy document, the English analyzer, and the
//! 64-bit keys of chunks and documents that fusion and grouping read from fast fields.

use quarry_core::ContentHash;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer,
};

/// The 64-bit key of a chunk: the first 8 bytes of its hash. Fusion joins BM25 and vector hits on
/// it without reading stored documents (a collision needs ~4·10⁹ chunks to become likely).
pub fn chunk_key(hash: &ContentHash) -> u64 {
    let b = hash.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The 64-bit key of a document id: the first 8 bytes of its blake3 hash. A query grouped by
/// document tells its documents apart by these keys, and skips a candidate chunk whose documents
/// all have a hit already without reading the chunk's stored record; a collision (~4·10⁹
/// documents to become likely) could only count two documents as one.
pub fn doc_key(doc_id: &str) -> u64 {
    let b = blake3::hash(doc_id.as_bytes());
    let b = b.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Name of the fast field holding [`chunk_key`].
pub const CHUNK_KEY: &str = "chunk_key";
/// Name of the fast field holding the [`doc_key`]s of a chunk's documents.
pub const DOC_KEYS: &str = "doc_keys";

/// Name under which the English analyzer is registered in every index.
pub const ANALYZER: &str = "quarry_en";

/// The fields of the BM25 schema.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub chunk_hash: Field,
    pub doc_ids: Field,
    /// The chunk text, stored only.
    pub text: Field,
    /// The documents' titles and the chunk with the text around it ([`crate::catalog::ChunkRecord::context`]):
    /// indexed, not stored. The field queries search.
    pub context: Field,
    pub occurrences: Field,
    pub chunk_key: Field,
    /// The [`doc_key`] of each document holding the chunk.
    pub doc_keys: Field,
    /// The ACL tokens of the documents holding the chunk ([`quarry_core::acl::index_tokens`]).
    pub acl: Field,
    /// The metadata values of the documents holding the chunk, one bytes term each
    /// (`super::meta`); fast, for facets.
    pub meta: Field,
    /// `field NUL type` of every metadata field the chunk has, and the shared-chunk marker.
    pub meta_fields: Field,
}

pub(super) fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqs);
    let fields = Fields {
        chunk_hash: b.add_text_field("chunk_hash", STRING | STORED),
        doc_ids: b.add_text_field("doc_ids", STRING | STORED),
        text: b.add_text_field("text", STORED),
        context: b.add_text_field(
            "context",
            TextOptions::default().set_indexing_options(indexing),
        ),
        // The name carries the layout of the stored records (JSON of `Occurrence`): a change of
        // it renames the field, so an index written by an older quarry has another schema and
        // is rebuilt from the catalog when opened (`Bm25Index::open`). v2: heading paths.
        occurrences: b.add_bytes_field("occurrences_v2", STORED),
        chunk_key: b.add_u64_field(CHUNK_KEY, FAST),
        doc_keys: b.add_u64_field(DOC_KEYS, FAST),
        acl: b.add_text_field("acl", STRING),
        meta: b.add_bytes_field("meta", INDEXED | FAST),
        meta_fields: b.add_text_field("meta_fields", STRING),
    };
    (b.build(), fields)
}

/// The analyzer used for both indexing and queries.
pub fn analyzer() -> TextAnalyzer {
    let stop = StopWordFilter::new(Language::English)
        .unwrap_or_else(|| StopWordFilter::remove(Vec::new()));
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(AsciiFoldingFilter)
        .filter(LowerCaser)
        .filter(stop)
        .filter(Stemmer::new(Language::English))
        .build()
}
