//! Where each live chunk of a BM25 snapshot is, by chunk key ([`KeyMap`]), kept per segment so a
//! reload reads the keys of new and changed segments only.

use super::schema::CHUNK_KEY;
use crate::error::Result;
use std::collections::HashMap;
use std::sync::Arc;
use tantivy::DocAddress;

/// Where each live chunk of one snapshot is, by [`super::chunk_key`] (read for every vector hit
/// and by ACL-filtered vector search): a map per segment, shared with the snapshot before when
/// its segment is unchanged (same id, same deletes). A reload after a commit reads the keys of
/// the new and changed segments only; reading every segment's again made an ingest of N chunks
/// in batches of B cost about N²/2B inserts (BENCHMARKS.md, "Build speed: ef_construction and
/// lazy BM25 merges").
#[derive(Default)]
pub struct KeyMap {
    segments: Vec<Arc<SegmentKeys>>,
    /// Segment ordinals, largest segment first: most lookups end at the first probe.
    order: Vec<u32>,
}

/// The chunk keys of one segment's live documents. Chunk keys are blake3 bytes, so the cheap,
/// unseeded Fx hash spreads them well; a writer who searched for chunk texts whose keys collide
/// could slow one segment's lookups, not change their answers.
struct SegmentKeys {
    id: tantivy::index::SegmentId,
    deleted: u32,
    docs: HashMap<u64, tantivy::DocId, rustc_hash::FxBuildHasher>,
}

impl KeyMap {
    /// The address of the live chunk whose key is `key` (a chunk is one document of the index;
    /// two chunks whose 64-bit keys collide: the one in the larger segment).
    pub fn get(&self, key: u64) -> Option<DocAddress> {
        self.order.iter().find_map(|&ord| {
            let doc = self.segments[ord as usize].docs.get(&key)?;
            Some(DocAddress::new(ord, *doc))
        })
    }
}

/// The key map of a snapshot: every live document's [`super::chunk_key`] and address.
pub(super) fn key_map(searcher: &tantivy::Searcher, before: &KeyMap) -> Result<KeyMap> {
    let mut segments = Vec::with_capacity(searcher.segment_readers().len());
    for segment in searcher.segment_readers() {
        let (id, deleted) = (segment.segment_id(), segment.num_deleted_docs());
        // a segment's deletes only grow: the same count is the same documents
        let same = |s: &&Arc<SegmentKeys>| s.id == id && s.deleted == deleted;
        if let Some(kept) = before.segments.iter().find(same) {
            segments.push(kept.clone());
            continue;
        }
        let keys = segment.fast_fields().u64(CHUNK_KEY)?;
        let alive = segment.alive_bitset();
        let mut docs = HashMap::with_capacity_and_hasher(
            segment.num_docs() as usize,
            rustc_hash::FxBuildHasher,
        );
        for doc in 0..segment.max_doc() {
            if alive.is_some_and(|a| !a.is_alive(doc)) {
                continue;
            }
            if let Some(k) = keys.first(doc) {
                docs.insert(k, doc);
            }
        }
        segments.push(Arc::new(SegmentKeys { id, deleted, docs }));
    }
    let mut order: Vec<u32> = (0..segments.len() as u32).collect();
    order.sort_by_key(|&ord| std::cmp::Reverse(segments[ord as usize].docs.len()));
    Ok(KeyMap { segments, order })
}

#[cfg(test)]
impl KeyMap {
    /// Every `(key, segment ordinal, document)`, sorted.
    pub(crate) fn entries(&self) -> Vec<(u64, u32, u32)> {
        let mut out: Vec<(u64, u32, u32)> = (self.segments.iter().enumerate())
            .flat_map(|(ord, s)| s.docs.iter().map(move |(k, d)| (*k, ord as u32, *d)))
            .collect();
        out.sort_unstable();
        out
    }

    /// How many of this map's segment maps are `other`'s own (shared, not read again).
    pub(crate) fn shared_with(&self, other: &KeyMap) -> usize {
        let theirs = |s: &Arc<SegmentKeys>| other.segments.iter().any(|o| Arc::ptr_eq(s, o));
        self.segments.iter().filter(|s| theirs(s)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::schema::{FAST, INDEXED, STRING, Schema};
    use tantivy::{Index, IndexWriter, TantivyDocument, Term};

    /// A segment that loses a document is read again; the others are shared; every map equals one
    /// read afresh.
    #[test]
    fn a_segment_with_new_deletes_is_read_again_and_the_others_are_shared() {
        let mut b = Schema::builder();
        let key = b.add_u64_field(CHUNK_KEY, FAST | INDEXED);
        let name = b.add_text_field("name", STRING);
        let index = Index::create_in_ram(b.build());
        let mut writer: IndexWriter<TantivyDocument> =
            index.writer_with_num_threads(1, 15_000_000).unwrap();
        writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
        let reader = index.reader().unwrap();
        let mut add = |keys: std::ops::Range<u64>| {
            for k in keys {
                let mut doc = TantivyDocument::default();
                doc.add_u64(key, k * 7919);
                doc.add_text(name, format!("c{k}"));
                writer.add_document(doc).unwrap();
            }
            writer.commit().unwrap();
            reader.reload().unwrap();
            let map = key_map(&reader.searcher(), &KeyMap::default()).unwrap();
            (reader.searcher(), map)
        };
        let (_, first) = add(0..10);
        let (searcher, two) = add(10..12);
        let again = key_map(&searcher, &first).unwrap();
        assert_eq!(again.entries(), two.entries());
        assert_eq!((again.entries().len(), again.shared_with(&first)), (12, 1));
        // one of the ten deleted (a tenth: no merge policy would keep it from being reused)
        writer.delete_term(Term::from_field_text(name, "c3"));
        writer.commit().unwrap();
        reader.reload().unwrap();
        let searcher = reader.searcher();
        let after = key_map(&searcher, &again).unwrap();
        let fresh = key_map(&searcher, &KeyMap::default()).unwrap();
        assert_eq!(after.entries(), fresh.entries());
        assert_eq!((after.entries().len(), after.shared_with(&again)), (11, 1));
        assert!(again.get(3 * 7919).is_some() && after.get(3 * 7919).is_none());
        for k in (0..12).filter(|k| *k != 3) {
            let a = after.get(k * 7919).unwrap();
            let column = searcher
                .segment_reader(a.segment_ord)
                .fast_fields()
                .u64(CHUNK_KEY);
            assert_eq!(column.unwrap().first(a.doc_id), Some(k * 7919));
        }
    }
}
