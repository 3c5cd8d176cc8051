//! The BM25 index of a collection: one tantivy document per distinct chunk.
//!
//! A tantivy document holds the chunk hash (its key), the ids of the documents that contain the
//! chunk, the chunk text (stored, to render a hit), the occurrences needed to render a hit, and
//! the one searched field, `context`: the titles of those documents and the chunk with the text
//! around it in each ([`ChunkRecord::context`]), indexed only. BM25 thus scores a small chunk by
//! its passage and its title. Text is analysed with English rules: simple tokenisation, ASCII
//! folding, lower-casing, English stop words, Snowball English stemming. Every commit carries the
//! catalog generation it reflects as its payload, which is how crash recovery knows what to replay.

mod feedback;
mod keys;
mod maxscore;
mod meta;
mod permitted;
mod query;
mod schema;
mod scoring;
pub(crate) mod search;
mod stats;

pub use keys::KeyMap;
use keys::key_map;
pub use maxscore::restrict;
pub use meta::{SHARED, decode, field_schema, filter_query, occurrence_values, term_bytes};
use query::build_weighted;
pub use query::{
    acl_filter, analysed_counts, analysed_terms, build_query, query_terms, term_query,
};
use schema::schema;
pub use schema::{ANALYZER, CHUNK_KEY, DOC_KEYS, Fields, analyzer, chunk_key, doc_key};
pub use scoring::Bm25TermQuery;
pub use stats::{PermittedStats, TotalsCache};

use crate::catalog::{ChunkRecord, Occurrence};
use crate::error::{Error, Result};
use quarry_core::ContentHash;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use tantivy::schema::Value;
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// One u64 fast field of every segment of a snapshot, each segment's column opened on first use.
pub struct SegmentColumns<'a> {
    searcher: &'a tantivy::Searcher,
    field: &'static str,
    open: HashMap<u32, tantivy::columnar::Column<u64>>,
}

impl<'a> SegmentColumns<'a> {
    pub fn new(searcher: &'a tantivy::Searcher, field: &'static str) -> Self {
        SegmentColumns {
            searcher,
            field,
            open: HashMap::new(),
        }
    }

    /// The column of the segment holding `address`.
    pub fn column(&mut self, address: DocAddress) -> Result<&tantivy::columnar::Column<u64>> {
        Ok(match self.open.entry(address.segment_ord) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                self.searcher
                    .segment_reader(address.segment_ord)
                    .fast_fields()
                    .u64(self.field)?,
            ),
        })
    }

    /// The first value at `address`.
    pub fn first(&mut self, address: DocAddress) -> Result<Option<u64>> {
        Ok(self.column(address)?.first(address.doc_id))
    }
}

/// Memory budget of one index writer.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;

pub struct Bm25Index {
    index: Index,
    /// The index's folder.
    dir: std::path::PathBuf,
    reader: IndexReader,
    fields: Fields,
    /// The published snapshot, its key map and the generation it reflects, replaced together by
    /// [`Bm25Index::reload`].
    published: RwLock<Published>,
    /// Chunk and token totals of callers' permitted chunks ([`PermittedStats`]).
    totals: TotalsCache,
}

#[derive(Clone)]
struct Published {
    searcher: tantivy::Searcher,
    keys: Arc<KeyMap>,
    generation: u64,
}

/// How segments merge after a commit: tantivy's log policy, but merging as soon as two
/// segments are of a size (not eight), and a level once one of its segments has more than a
/// quarter of its chunks deleted; segments over [`MAX_MERGED_CHUNKS`] are left alone. A query
/// walks every segment (term lookups, block-max WAND, its own top k), so few segments keep
/// queries fast: an ingest of the SciFact corpus ends in two segments instead of six, and BM25
/// latency drops (figures in BENCHMARKS.md). The price is merging during commits, each chunk
/// rewritten about log₁.₇(chunks / 10,000) times.
///
/// [`Merges::Lazy`] (the commits of a bulk ingest) waits for eight segments of a size, tantivy's
/// own default (a commit writes a segment per indexing thread, so that is a few commits): each
/// chunk is rewritten far less often, and [`Bm25Index::settle`] merges at the end what the eager
/// policy would have merged on the way.
fn merge_policy(merges: Merges) -> tantivy::indexer::LogMergePolicy {
    let mut policy = tantivy::indexer::LogMergePolicy::default();
    policy.set_min_num_segments(match merges {
        Merges::Eager => 2,
        Merges::Lazy => 8,
    });
    policy.set_del_docs_ratio_before_merge(0.25);
    policy.set_max_docs_before_merge(MAX_MERGED_CHUNKS);
    policy
}

/// How a commit merges segments ([`merge_policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merges {
    /// A level's segments merge once two are there: few segments, fast queries.
    Eager,
    /// A level's segments merge once eight are there: less rewriting while a bulk ingest commits
    /// batch after batch; [`Bm25Index::settle`] at its end.
    Lazy,
}

/// Segments with more chunks than this are not merged again (a commit never rewrites them whole).
const MAX_MERGED_CHUNKS: usize = 2_000_000;

impl Bm25Index {
    /// Opens the index in `dir`, creating an empty one if there is none. Every file of the last
    /// commit is checked against its checksum (tantivy writes one into each file's footer) and
    /// must exist: a damaged index is an error ([`Error::Corrupt`]) that the engine answers with
    /// [`Bm25Index::recreate`] and a rebuild from the catalog. An index of an older layout is
    /// started again at once (generation 0: recovery rebuilds it).
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let (schema, _) = schema();
        let existing = if dir.join("meta.json").exists() {
            let index = verified(dir)?;
            if index.schema() == schema {
                Some(index)
            } else {
                // A derived index of an older layout: start it again, recovery rebuilds it from
                // the catalog.
                tracing::warn!(dir = %dir.display(), "BM25 index has an older schema; rebuilding it");
                drop(index);
                return Self::recreate(dir);
            }
        } else {
            None
        };
        Self::open_index(dir, existing)
    }

    /// Deletes whatever is in `dir` and opens an empty index there (generation 0). The caller
    /// holds the writer lock and rebuilds it from the catalog.
    pub fn recreate(dir: &Path) -> Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Self::open_index(dir, None)
    }

    fn open_index(dir: &Path, existing: Option<Index>) -> Result<Self> {
        let (schema, fields) = schema();
        let index = match existing {
            Some(index) => index,
            None => Index::create_in_dir(dir, schema)?,
        };
        index.tokenizers().register(ANALYZER, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(256)
            .try_into()?;
        let searcher = reader.searcher();
        let keys = Arc::new(key_map(&searcher, &KeyMap::default())?);
        let ix = Bm25Index {
            index,
            dir: dir.to_owned(),
            reader,
            fields,
            published: RwLock::new(Published {
                searcher,
                keys,
                generation: 0,
            }),
            totals: TotalsCache::default(),
        };
        ix.reload()?;
        Ok(ix)
    }

    pub fn fields(&self) -> Fields {
        self.fields
    }

    /// The catalog generation of the last commit (0 for a new index).
    pub fn generation(&self) -> Result<u64> {
        let metas = self.index.load_metas()?;
        match metas.payload {
            None => Ok(0),
            Some(p) => p.parse().map_err(|_| {
                Error::Corrupt(format!("BM25 commit payload {p:?} is not a generation"))
            }),
        }
    }

    /// The published snapshot and its key map.
    /// The cache of [`PermittedStats`] totals.
    pub fn totals_cache(&self) -> &TotalsCache {
        &self.totals
    }

    /// The key map of the published snapshot read afresh, every segment's keys again.
    #[cfg(test)]
    pub(crate) fn fresh_key_map(&self) -> KeyMap {
        key_map(&self.searcher().0, &KeyMap::default()).unwrap()
    }

    pub fn searcher(&self) -> (tantivy::Searcher, Arc<KeyMap>) {
        let p = self.published.read().unwrap_or_else(|p| p.into_inner());
        (p.searcher.clone(), p.keys.clone())
    }

    /// Whether the last commit on disk names other segments than the published snapshot holds:
    /// merges without a new generation ([`Bm25Index::settle`], [`Bm25Index::purge_deleted`]),
    /// which a follower at that generation would otherwise not see until the next one.
    pub fn merged_since_published(&self) -> Result<bool> {
        let on_disk: std::collections::HashSet<tantivy::index::SegmentId> = self
            .index
            .searchable_segment_metas()?
            .iter()
            .map(|m| m.id())
            .collect();
        let published = self.published.read().unwrap_or_else(|p| p.into_inner());
        let held = published.searcher.segment_readers().iter();
        Ok(on_disk != held.map(|r| r.segment_id()).collect())
    }

    /// The generation of the published snapshot.
    pub fn published_generation(&self) -> u64 {
        self.published
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .generation
    }

    /// Writes generation `generation`: every chunk of `touched` is removed, then `records` (the
    /// touched chunks that still exist) are added. `rebuild` first drops every document. One commit.
    pub fn commit(
        &self,
        generation: u64,
        touched: &[ContentHash],
        records: &[ChunkRecord],
        rebuild: bool,
        merges: Merges,
    ) -> Result<()> {
        let mut writer: IndexWriter<TantivyDocument> = self.index.writer(WRITER_MEMORY)?;
        writer.set_merge_policy(Box::new(merge_policy(merges)));
        if rebuild {
            writer.delete_all_documents()?;
        } else {
            for hash in touched {
                writer.delete_term(Term::from_field_text(
                    self.fields.chunk_hash,
                    &hash.to_hex(),
                ));
            }
        }
        for record in records {
            writer.add_document(self.document(record)?)?;
        }
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&generation.to_string());
        prepared.commit()?;
        writer.wait_merging_threads()?;
        self.remove_unnamed_segment_files()
    }

    /// Merges what an eager commit ([`Merges::Eager`]) would merge, until nothing is left to merge,
    /// without a new commit (the generation, the commit's payload, is kept): the end of a bulk
    /// ingest whose commits merged lazily. Nothing happens (no writer is opened) when there is
    /// nothing to merge; whether something merged (the reader is then behind: publish). The
    /// caller holds the writer lock.
    pub fn settle(&self) -> Result<bool> {
        use tantivy::indexer::MergePolicy;
        let policy = merge_policy(Merges::Eager);
        let mut candidates =
            policy.compute_merge_candidates(&self.index.searchable_segment_metas()?);
        if candidates.is_empty() {
            return Ok(false);
        }
        let mut writer = self.merging_writer()?;
        // Each round merges whole levels into larger segments, so it ends within a round per
        // level; the bound only guards against a policy that never settles.
        for _ in 0..64 {
            if candidates.is_empty() {
                break;
            }
            for candidate in candidates {
                writer.merge(&candidate.0).wait()?;
            }
            candidates = policy.compute_merge_candidates(&self.index.searchable_segment_metas()?);
        }
        if !candidates.is_empty() {
            tracing::warn!(
                dir = %self.dir.display(),
                "BM25 segments still to merge after 64 rounds; the next commit merges them"
            );
        }
        self.end_merges(writer)?;
        Ok(true)
    }

    /// After a commit that deleted chunks which must leave no trace (a forget): merges every
    /// segment with deleted chunks into one without them (tantivy keeps a deleted document's
    /// stored fields and terms in its segment until a merge rewrites it), whatever the merge
    /// policy would do, then deletes every file no commit names any more. The commit's
    /// generation (its payload) is kept. The caller holds the writer lock.
    pub fn purge_deleted(&self) -> Result<()> {
        let mut writer = self.merging_writer()?;
        let with_deletes: Vec<tantivy::index::SegmentId> = self
            .index
            .searchable_segment_metas()?
            .iter()
            .filter(|m| m.has_deletes())
            .map(|m| m.id())
            .collect();
        if !with_deletes.is_empty() {
            writer.merge(&with_deletes).wait()?;
        }
        self.end_merges(writer)
    }

    /// A writer that merges only the segments it is told to ([`Bm25Index::settle`],
    /// [`Bm25Index::purge_deleted`]); no commit of its own, so the generation is kept.
    fn merging_writer(&self) -> Result<IndexWriter<TantivyDocument>> {
        let writer: IndexWriter<TantivyDocument> = self.index.writer(WRITER_MEMORY)?;
        writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
        Ok(writer)
    }

    /// Ends a [`Bm25Index::merging_writer`]'s merges: tantivy's garbage collection, then every
    /// file no commit names.
    fn end_merges(&self, writer: IndexWriter<TantivyDocument>) -> Result<()> {
        writer.garbage_collect_files().wait()?;
        writer.wait_merging_threads()?;
        self.remove_unnamed_segment_files()
    }

    /// Deletes every segment file the last commit does not name. tantivy collects only the files
    /// its own process created or saw in `.managed.json` when it opened the index, so a segment
    /// another process wrote (a CLI ingest beside a server) and a later merge replaced would stay
    /// on disk for good. The caller holds the writer lock (no other process writes); searchers
    /// of older commits keep their files mapped (on Unix a removed file lives on while mapped).
    fn remove_unnamed_segment_files(&self) -> Result<()> {
        let living: std::collections::HashSet<String> = self
            .index
            .load_metas()?
            .segments
            .iter()
            .map(|m| m.id().uuid_string())
            .collect();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((stem, _)) = name.split_once('.') else {
                continue;
            };
            let segment_file = stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit());
            if segment_file && !living.contains(stem) {
                let path = entry.path();
                tracing::debug!(file = %path.display(), "removing a BM25 file no commit names");
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// Makes the last commit visible to new searchers (the engine calls it when it publishes) and
    /// returns the generation it reflects. Another process may commit meanwhile: the generation
    /// on disk is read before and after the reload, and the reload tried again until both agree,
    /// so the generation recorded is the one the snapshot holds.
    pub fn reload(&self) -> Result<u64> {
        for _ in 0..8 {
            let before = self.generation()?;
            self.reader.reload()?;
            if self.generation()? != before {
                continue;
            }
            let searcher = self.reader.searcher();
            let before_keys = self.searcher().1;
            let keys = Arc::new(key_map(&searcher, &before_keys)?);
            *self.published.write().unwrap_or_else(|p| p.into_inner()) = Published {
                searcher,
                keys,
                generation: before,
            };
            return Ok(before);
        }
        Err(Error::Busy(
            "the BM25 index kept changing while it was reloaded; try again".into(),
        ))
    }

    fn document(&self, record: &ChunkRecord) -> Result<TantivyDocument> {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.chunk_hash, record.hash.to_hex());
        doc.add_u64(f.chunk_key, chunk_key(&record.hash));
        let mut titles: Vec<&str> = Vec::new();
        for occ in &record.occurrences {
            doc.add_text(f.doc_ids, &occ.doc_id);
            doc.add_u64(f.doc_keys, doc_key(&occ.doc_id));
            if !occ.title.is_empty() && !titles.contains(&occ.title.as_str()) {
                titles.push(&occ.title);
            }
        }
        for t in titles {
            doc.add_text(f.context, t);
        }
        let mut tokens: Vec<String> = record
            .occurrences
            .iter()
            .flat_map(|o| quarry_core::acl::index_tokens(&o.acl))
            .collect();
        tokens.sort();
        tokens.dedup();
        for t in tokens {
            doc.add_text(f.acl, t);
        }
        meta::add_terms(&mut doc, f, &record.occurrences);
        doc.add_text(f.text, &record.text);
        if record.context.is_empty() {
            // a record without context (none was read for it): the chunk stands for itself
            doc.add_text(f.context, &record.text);
        }
        for context in &record.context {
            doc.add_text(f.context, context);
        }
        let occurrences =
            serde_json::to_vec(&record.occurrences).map_err(|e| Error::Corrupt(e.to_string()))?;
        doc.add_bytes(f.occurrences, &occurrences);
        Ok(doc)
    }

    /// Reads back the chunk stored at `doc` of `searcher`.
    pub fn record(
        &self,
        searcher: &tantivy::Searcher,
        address: tantivy::DocAddress,
    ) -> Result<ChunkRecord> {
        let doc: TantivyDocument = searcher.doc(address)?;
        let f = &self.fields;
        let hash = doc
            .get_first(f.chunk_hash)
            .and_then(|v| v.as_str())
            .and_then(ContentHash::from_hex)
            .ok_or_else(|| Error::Corrupt("BM25 document without chunk hash".into()))?;
        let text = doc
            .get_first(f.text)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let occurrences: Vec<Occurrence> = doc
            .get_first(f.occurrences)
            .and_then(|v| v.as_bytes())
            .map(serde_json::from_slice)
            .transpose()
            .map_err(|e| Error::Corrupt(format!("BM25 occurrences: {e}")))?
            .unwrap_or_default();
        Ok(ChunkRecord {
            hash,
            text,
            occurrences,
            context: Vec::new(),
        })
    }
}

/// The index in `dir`, after checking that every file of its last commit exists and matches
/// its checksum. Another process may commit (and delete old segments) while the files are read:
/// a failure counts only if `meta.json` is the same before and after the check.
fn verified(dir: &Path) -> Result<Index> {
    let meta = || std::fs::read(dir.join("meta.json")).ok();
    let mut last = String::new();
    for _ in 0..5 {
        let before = meta();
        let problem = match Index::open_in_dir(dir) {
            Err(e) => format!("cannot be opened: {e}"),
            Ok(index) => match damaged_files(&index) {
                Ok(damaged) if damaged.is_empty() => return Ok(index),
                Ok(damaged) => format!("damaged files: {}", damaged.join(", ")),
                Err(e) => format!("cannot be checked: {e}"),
            },
        };
        if meta() == before {
            return Err(Error::Corrupt(format!(
                "BM25 index {} {problem}",
                dir.display()
            )));
        }
        last = problem;
    }
    Err(Error::Busy(format!(
        "BM25 index {} kept changing while it was checked ({last}); try again",
        dir.display()
    )))
}

/// The files of the index's last commit that are missing or fail their checksum.
fn damaged_files(index: &Index) -> Result<Vec<String>> {
    let metas = index.load_metas()?;
    let mut damaged: Vec<String> = index
        .validate_checksum()?
        .into_iter()
        .map(|p| p.display().to_string())
        .collect();
    use tantivy::directory::Directory;
    use tantivy::index::SegmentComponent as C;
    let dir = index.directory();
    for segment in &metas.segments {
        let mut components = vec![
            C::Postings,
            C::Terms,
            C::Store,
            C::FastFields,
            C::FieldNorms,
        ];
        if segment.has_deletes() {
            components.push(C::Delete);
        }
        for component in components {
            let file = segment.relative_path(component);
            if !dir.exists(&file).unwrap_or(false) {
                damaged.push(format!("{} (missing)", file.display()));
            }
        }
    }
    damaged.sort();
    Ok(damaged)
}
/// The [`chunk_key`] of the document at `address`.
pub fn key_of(searcher: &tantivy::Searcher, address: DocAddress) -> Result<Option<u64>> {
    let segment = searcher.segment_reader(address.segment_ord);
    Ok(segment.fast_fields().u64(CHUNK_KEY)?.first(address.doc_id))
}
