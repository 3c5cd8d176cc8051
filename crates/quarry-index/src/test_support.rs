//! Helpers shared by the crate's unit tests.

use crate::engine::{Change, Engine};
use quarry_core::{ContentHash, DocFormat, Document};

/// A plain-text document without an ACL of its own.
pub(crate) fn doc(id: &str, text: &str) -> Document {
    Document {
        doc_id: id.into(),
        title: String::new(),
        text: text.into(),
        source: "test".into(),
        format: DocFormat::Text,
        metadata: Default::default(),
        acl: vec![],
        content_hash: ContentHash::of(text.as_bytes()),
    }
}

/// Upserts `doc(id, text)` into `collection`, chunked as the collection chunks.
pub(crate) fn put(engine: &Engine, collection: &str, id: &str, text: &str) {
    let d = doc(id, text);
    let chunks = engine
        .chunker(collection)
        .unwrap()
        .chunk(&d.title, &d.text, d.format);
    engine
        .apply(collection, vec![Change::Upsert(d, chunks)])
        .unwrap();
}
