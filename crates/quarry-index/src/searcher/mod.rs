//! The read side: a [`Searcher`] is an immutable snapshot of one collection — its BM25 index and
//! its vector index at the same generation — taken with `&self` and safe to use from many threads.
//! Results never change under a reader while writers commit.
//!
//! A query runs in three steps:
//! 1. **Candidates.** BM25 and (for `hybrid`/`vector`) the vector index each return their best
//!    `depth` chunks, identified by [`chunk_key`] only; no stored document is read.
//! 2. **Fusion** ([`quarry_core::fuse`]) into one ranking, keeping each retriever's score and rank;
//!    with `diversify`, its first candidates re-ranked by maximal marginal relevance (`diversify`).
//! 3. **Hits.** Stored records are read in fused order until `top_k` chunks (or, for
//!    `group_by=document`, `top_k` distinct documents) are found; when candidates run out first,
//!    `depth` grows and the query runs again. With `group_by=document` a candidate whose
//!    documents all have a hit already (by their [`doc_key`]s, a fast field) is passed over
//!    without reading its record: neighbouring chunks of a document share their BM25 context
//!    and come in runs.
//!
//! This module is the hybrid read over the two retrievers: fusion, the caller's ACL, grouping.
//! The tantivy side is `bm25::search`: the query's weight, made once per query (its terms
//! looked up once) and used at every depth, and, with weighted fusion, the BM25 score of
//! vector-only candidates term by term, each term's postings skipped to them.
//!
//! The query text is embedded with the collection's active embedder, on a separate thread with a
//! deadline: if that fails or takes too long, the answer comes from BM25 with `degraded: true`.
//! A query may then have its first hits reranked (`rerank`), before `offset` and `top_k`.
//! Its vector is kept in the engine's query-embedding cache (`cache`); the queries of a batch are
//! embedded in one call to the model (`batch`).

mod access;
mod batch;
mod cache;
mod candidate;
mod clock;
mod depth;
mod diversify;
mod facets;
#[cfg(test)]
mod for_tests;
mod passages;
mod rerank;
mod response;

pub(crate) use cache::QueryVectorCache;

pub use response::{
    Citation, ExpansionTerm, Explain, FacetCount, Hit, Passage, RetrieverPart, Scores,
    SearchResponse, Timings,
};

use access::Access;
use candidate::Candidate;
use clock::Clock;
use depth::Depth;
use response::hit;

use crate::bm25::search::Bm25Query;
use crate::bm25::{Bm25Index, DOC_KEYS, KeyMap, SegmentColumns, chunk_key, doc_key};
use crate::catalog::{CollectionRow, Occurrence};
use crate::collection::{ActiveEmbedder, Indexes};
use crate::error::{Error, Result};
use crate::options::EngineOptions;
use crate::vectors::VectorSnapshot;
use quarry_core::fusion::{Part, contributions};
use quarry_core::{
    DefaultAcl, FieldSchema, Filter, Fusion, GroupBy, Mode, Principal, QueryOptions, Reranker, fuse,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tantivy::DocAddress;

pub struct Searcher {
    collection: CollectionRow,
    index: Arc<Bm25Index>,
    snapshot: tantivy::Searcher,
    keys: Arc<KeyMap>,
    vectors: Option<Arc<VectorSnapshot>>,
    active: Option<ActiveEmbedder>,
    embed_timeout: Duration,
    /// The engine's query-embedding cache.
    query_vectors: Arc<QueryVectorCache>,
    default_fusion: Fusion,
    default_acl: DefaultAcl,
    reranker: Option<Arc<dyn Reranker>>,
}

impl Searcher {
    pub(crate) fn new(
        collection: CollectionRow,
        ix: &Indexes,
        options: &EngineOptions,
        query_vectors: &Arc<QueryVectorCache>,
    ) -> Self {
        // BM25 and vectors are published together under this lock: read them together.
        let _guard = ix.publish.read().unwrap_or_else(|p| p.into_inner());
        let (snapshot, keys) = ix.bm25.searcher();
        Searcher {
            collection,
            index: ix.bm25.clone(),
            snapshot,
            keys,
            vectors: ix.vectors.as_ref().map(|v| v.snapshot()),
            active: ix.active.clone(),
            embed_timeout: options.query_embed_timeout,
            query_vectors: query_vectors.clone(),
            default_fusion: options.fusion,
            default_acl: options.default_acl.clone(),
            reranker: options.reranker.clone(),
        }
    }

    pub fn collection(&self) -> &str {
        &self.collection.name
    }

    /// Chunks in the snapshot.
    pub fn num_chunks(&self) -> u64 {
        self.snapshot.num_docs()
    }

    /// Segments of the BM25 snapshot.
    #[cfg(test)]
    pub(crate) fn num_segments(&self) -> usize {
        self.snapshot.segment_readers().len()
    }

    /// The fusion used when a query does not name one.
    pub fn default_fusion(&self) -> Fusion {
        self.default_fusion
    }

    /// The active embedding version's id, if the collection has vectors.
    pub fn embedding_version(&self) -> Option<&str> {
        self.active.as_ref().map(|a| a.version.id.as_str())
    }

    /// The default ACL that applies to documents without one.
    pub fn default_acl(&self) -> &DefaultAcl {
        &self.default_acl
    }

    /// The metadata fields of this snapshot with their types (built-in fields included).
    pub fn field_schema(&self) -> Result<FieldSchema> {
        crate::bm25::field_schema(&self.snapshot, &self.index.fields(), None)
    }

    /// `caller`'s query of `text` restricted by `filter`: its terms and BM25 weight, scored by
    /// the statistics of the chunks the caller may read when an ACL filters it ([`Bm25Query`]).
    /// With `feedback` (the query's, else the collection's), the BM25 query is expanded by the
    /// caller's own best chunks ([`Bm25Query::expand`]).
    fn access<'a>(
        &'a self,
        text: &str,
        caller: &'a Principal,
        mode: Mode,
        filter: Option<Filter>,
        feedback: Option<quarry_core::FeedbackSwitch>,
    ) -> Result<Access<'a>> {
        let tokens = (!caller.sees_all()).then(|| caller.tokens(&self.default_acl));
        let mut bm25 = Bm25Query::new(
            &self.index,
            &self.snapshot,
            text,
            tokens,
            filter.as_ref(),
            mode != Mode::Vector,
            self.collection.bm25,
        )?;
        let base = self.collection.bm25.feedback;
        if let Some(fb) = feedback.map_or(base, |f| f.resolve(base)) {
            let admits =
                |o: &Occurrence| access::admits(caller, &self.default_acl, filter.as_ref(), o);
            bm25.expand(&self.index, fb, &admits)?;
        }
        Ok(Access {
            caller,
            default_acl: &self.default_acl,
            bm25,
            filter,
            permitted: OnceLock::new(),
            clock: Clock::default(),
        })
    }

    /// Runs a query for `caller`: [`Searcher::search_batch`] of one query.
    pub fn search(&self, q: &QueryOptions, caller: &Principal) -> Result<SearchResponse> {
        let mut answers = self.search_batch(std::slice::from_ref(q), caller);
        answers.swap_remove(0)
    }

    /// Runs a query for `caller` with its vector already computed (`None`: not needed or no
    /// vectors; `Err`: embedding failed, so the answer degrades to BM25). Only chunks of documents
    /// the caller may read are retrieved, and a hit names only such documents.
    pub fn search_with_vector(
        &self,
        q: &QueryOptions,
        caller: &Principal,
        vector: Option<std::result::Result<Vec<f32>, String>>,
    ) -> Result<SearchResponse> {
        let started = Instant::now();
        let mut warnings = Vec::new();
        let mut degraded = false;
        let mut mode = q.mode;
        let mut query_vector = None;
        if mode != Mode::Bm25 {
            if self.active.is_none() || self.vectors.is_none() {
                if mode == Mode::Vector {
                    return Err(Error::Input(format!(
                        "mode=vector: collection `{}` has no embedding version (its embedder is \"none\"); use mode=bm25",
                        self.collection.name
                    )));
                }
                warnings.push(
                    "mode=hybrid: this collection has no embedding version, so the answer comes from BM25 alone"
                        .to_owned(),
                );
                mode = Mode::Bm25;
            } else {
                match vector {
                    Some(Ok(v)) => query_vector = Some(v),
                    Some(Err(why)) => {
                        degraded = true;
                        warnings.push(format!(
                            "vector retrieval unavailable, answered from BM25 alone: {why}"
                        ));
                        mode = Mode::Bm25;
                    }
                    None => {
                        return Err(Error::Input(
                            "this mode needs the query's vector; none was given".to_owned(),
                        ));
                    }
                }
            }
        }
        let schema = (!q.filter.is_all() || !q.facets.is_empty())
            .then(|| self.field_schema_for(caller))
            .transpose()?;
        let filter = match &schema {
            Some(schema) if !q.filter.is_all() => Some(schema.resolve(&q.filter)?),
            _ => None,
        };
        let reranker = rerank::reranker_for(self.reranker.as_ref(), q)?;
        if q.diversify.is_some() && self.vectors.is_none() {
            warnings.push(diversify::NO_VECTORS.to_owned());
        }
        let access = self.access(&q.text, caller, mode, filter, q.feedback)?;
        let (mut results, rerank_ms) = match (q.rerank, reranker) {
            (Some(r), Some(reranker)) => {
                // the first top_n hits and those of the page; reranked, then paged
                let wide = rerank::widened(q, r);
                let mut hits = self.hits(&wide, mode, query_vector.as_deref(), &access)?;
                let outcome = rerank::apply(&**reranker, &q.text, &mut hits, r.top_n);
                degraded |= outcome.failure.is_some();
                warnings.extend(outcome.failure);
                let page = hits.into_iter().skip(q.offset).take(q.top_k).collect();
                (page, Some(outcome.ms))
            }
            _ => (self.hits(q, mode, query_vector.as_deref(), &access)?, None),
        };
        let post = Instant::now();
        let may_read = |o: &Occurrence| access.caller.may_read(&o.acl, access.default_acl);
        passages::annotate(&mut results, q, &self.index, &self.snapshot, &may_read)?;
        let facets = match &schema {
            Some(schema) if !q.facets.is_empty() => Some(self.facets(&q.facets, schema, &access)?),
            _ => None,
        };
        if results.is_empty() && mode == Mode::Bm25 && access.bm25.has_no_terms() {
            warnings.push(
                "the query has no searchable words (only stop words or punctuation)".to_owned(),
            );
        }
        Ok(SearchResponse {
            results,
            embedding_version: self.embedding_version().map(str::to_owned),
            degraded,
            warnings,
            took_ms: started.elapsed().as_secs_f64() * 1e3,
            embed_ms: None,
            facets,
            expansion: q
                .explain
                .then(|| response::expansion(access.bm25.expansion()))
                .flatten(),
            timings: q.explain.then(|| Timings {
                embed_ms: 0.0,
                bm25_ms: Clock::ms(&access.clock.bm25),
                vector_ms: Clock::ms(&access.clock.vector),
                fusion_ms: Clock::ms(&access.clock.fusion),
                // hits are read and built after fusion, then facets counted
                post_ms: (started.elapsed().as_secs_f64() * 1e3
                    - Clock::ms(&access.clock.bm25).max(Clock::ms(&access.clock.vector))
                    - Clock::ms(&access.clock.fusion)
                    - rerank_ms.unwrap_or(0.0))
                .max(post.elapsed().as_secs_f64() * 1e3),
                rerank_ms,
            }),
        })
    }

    /// What one retriever (`Mode::Bm25` or `Mode::Vector`) returns for `caller` at exactly
    /// `depth`, before any hit is built: `(chunk key, score)`, best first. For the ACL and
    /// filter oracle tests, which check the restriction inside the retriever, not after it.
    #[cfg(test)]
    pub(crate) fn retrieve(
        &self,
        text: &str,
        mode: Mode,
        vector: Option<&[f32]>,
        depth: usize,
        caller: &Principal,
        filter: Option<Filter>,
    ) -> Result<Vec<(u64, f32)>> {
        let access = self.access(text, caller, mode, filter, None)?;
        let depth = Depth {
            bm25: depth,
            vector: depth,
        };
        let (candidates, _) =
            self.candidates(mode, vector, depth, self.default_fusion, false, &access)?;
        candidates
            .iter()
            .map(|c| {
                let key = crate::bm25::key_of(&self.snapshot, c.address)?.unwrap_or_default();
                Ok((key, c.score))
            })
            .collect()
    }

    /// Fused candidates, best first, from each retriever's best chunks (as many as `depth` says),
    /// and whether a retriever may have more.
    fn candidates(
        &self,
        mode: Mode,
        vector: Option<&[f32]>,
        depth: Depth,
        fusion: Fusion,
        explain: bool,
        access: &Access<'_>,
    ) -> Result<(Vec<Candidate>, bool)> {
        let bm25_side = || -> Result<Vec<(u64, f32, DocAddress)>> {
            if mode == Mode::Vector {
                return Ok(Vec::new());
            }
            let started = Instant::now();
            let top = access
                .bm25
                .top(depth.bm25)?
                .into_iter()
                .map(|(score, key, address)| (key, score, address))
                .collect();
            Clock::add(&access.clock.bm25, started);
            Ok(top)
        };
        let dense_side = || -> Result<Vec<(u64, f32, DocAddress)>> {
            let started = Instant::now();
            Ok(match (mode, vector, &self.vectors) {
                (Mode::Bm25, _, _) | (_, None, _) | (_, _, None) => Vec::new(),
                (_, Some(v), Some(ix)) => {
                    let found = if access.bm25.restricted() {
                        let permitted = match access.permitted.get() {
                            Some(p) => p,
                            None => {
                                let sets = access.bm25.permitted()?;
                                access.permitted.get_or_init(|| sets)
                            }
                        };
                        let admitted = permitted.admitted(&self.snapshot, &self.keys);
                        ix.search_admitted(v, depth.vector, &admitted)?.0
                    } else {
                        ix.search(v, depth.vector)?
                    };
                    let mut found: Vec<(u64, f32, DocAddress)> = found
                        .into_iter()
                        .filter_map(|(hash, sim)| {
                            let key = chunk_key(&hash);
                            self.keys.get(key).map(|a| (key, sim, a))
                        })
                        .collect();
                    // equal similarities by chunk key, not by point id (which depends on the
                    // order chunks were inserted in)
                    found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    Clock::add(&access.clock.vector, started);
                    found
                }
            })
        };
        // the two retrievers run at once (hybrid): BM25 on the rayon pool, the vector search on
        // this thread (a caller outside the pool would otherwise only wait); alone, each runs here
        let (bm25, dense) = match mode {
            Mode::Hybrid => {
                let mut bm25 = None;
                let dense = rayon::in_place_scope(|scope| {
                    scope.spawn(|_| bm25 = Some(bm25_side()));
                    dense_side()
                });
                (bm25.expect("the scope ran the BM25 side"), dense)
            }
            _ => (bm25_side(), dense_side()),
        };
        let (bm25, dense) = (bm25?, dense?);
        let fusing = Instant::now();
        let mut by_key: HashMap<u64, Candidate> = HashMap::with_capacity(bm25.len() + dense.len());
        for (rank, (key, score, address)) in bm25.iter().enumerate() {
            by_key.entry(*key).or_insert(Candidate {
                key: *key,
                address: *address,
                score: *score,
                bm25: Some((*score, rank + 1)),
                vector: None,
                parts: [None; 2],
            });
        }
        for (rank, (key, sim, address)) in dense.iter().enumerate() {
            by_key
                .entry(*key)
                .or_insert(Candidate {
                    key: *key,
                    address: *address,
                    score: *sim,
                    bm25: None,
                    vector: None,
                    parts: [None; 2],
                })
                .vector = Some((*sim, rank + 1));
        }
        let mut b: Vec<(u64, f32)> = bm25.iter().map(|(k, s, _)| (*k, *s)).collect();
        let mut d: Vec<(u64, f32)> = dense.iter().map(|(k, s, _)| (*k, *s)).collect();
        let ranked: Vec<(u64, f32)> = match mode {
            Mode::Bm25 => b.clone(),
            Mode::Vector => d.clone(),
            Mode::Hybrid => {
                if !matches!(fusion, Fusion::Rrf { .. }) {
                    self.complete_scores(access, vector, &bm25, &dense, &mut b, &mut d)?;
                }
                fuse(fusion, &b, &d)
            }
        };
        if explain {
            // alone, a retriever's score is the answer's score: all of it, as it is
            let alone = Fusion::Weighted {
                alpha: if mode == Mode::Vector { 1.0 } else { 0.0 },
            };
            let how = if mode == Mode::Hybrid { fusion } else { alone };
            contributions(how, &b, &d, |key, list, part| {
                if let Some(c) = by_key.get_mut(key) {
                    c.parts[list] = Some(if mode == Mode::Hybrid {
                        part
                    } else {
                        Part {
                            normalized: part.score,
                            weight: 1.0,
                            ..part
                        }
                    });
                }
            });
        }
        Clock::add(&access.clock.fusion, fusing);
        // A retriever that returned all it was asked for may have more.
        let more = bm25.len() >= depth.bm25 || dense.len() >= depth.vector;
        let ranked = ranked
            .into_iter()
            .filter_map(|(key, score)| by_key.get(&key).map(|c| Candidate { score, ..*c }))
            .collect();
        Ok((ranked, more))
    }

    /// For a weighted fusion, gives every candidate found by one retriever its true score from
    /// the other (appended to that retriever's list), instead of the 0 a missing score counts as:
    /// the cosine of a BM25-only chunk from its stored vector, the BM25 score of a vector-only
    /// chunk as the sum of its terms' scores. RRF fuses ranks, which exist only for retrieved chunks, so
    /// it is left alone.
    fn complete_scores(
        &self,
        access: &Access<'_>,
        vector: Option<&[f32]>,
        bm25: &[(u64, f32, DocAddress)],
        dense: &[(u64, f32, DocAddress)],
        b: &mut Vec<(u64, f32)>,
        d: &mut Vec<(u64, f32)>,
    ) -> Result<()> {
        let in_bm25: HashSet<u64> = bm25.iter().map(|c| c.0).collect();
        let in_dense: HashSet<u64> = dense.iter().map(|c| c.0).collect();
        if let (Some(v), Some(ix)) = (vector, &self.vectors) {
            let missing: Vec<u64> = bm25
                .iter()
                .map(|c| c.0)
                .filter(|k| !in_dense.contains(k))
                .collect();
            for (key, sim) in missing.iter().zip(ix.similarities(v, &missing)) {
                d.extend(sim.map(|s| (*key, s)));
            }
        }
        let mut missing: Vec<(u64, DocAddress)> = dense
            .iter()
            .filter(|c| !in_bm25.contains(&c.0))
            .map(|c| (c.0, c.2))
            .collect();
        b.extend(access.bm25.score_chunks(&mut missing)?);
        Ok(())
    }

    fn hits(
        &self,
        q: &QueryOptions,
        mode: Mode,
        vector: Option<&[f32]>,
        access: &Access<'_>,
    ) -> Result<Vec<Hit>> {
        let total = self.snapshot.num_docs() as usize;
        // the results to find: those of the page and those before it
        let need = q.top_k + q.offset;
        let mut depth = depth::first(need, q.group_by, mode, q.diversify.is_some());
        loop {
            let (mut candidates, more) = self.candidates(
                mode,
                vector,
                Depth::new(depth, q.group_by, total),
                q.fusion,
                q.explain,
                access,
            )?;
            if let (Some(d), Some(ix)) = (q.diversify, &self.vectors) {
                let key_score = |c: &Candidate| (c.key, c.score);
                diversify::rerank(&mut candidates, key_score, d, need, q.min_score, ix);
            }
            // candidates below `min_score` end the answer: the rest score lower still
            let mut below = false;
            let mut hits = Vec::new();
            // the `doc_key`s of the documents in `hits`, and the column of every chunk's keys
            let mut seen = HashSet::new();
            let mut doc_keys = SegmentColumns::new(&self.snapshot, DOC_KEYS);
            'outer: for c in &candidates {
                if q.min_score.is_some_and(|m| c.score < m) {
                    below = true;
                    break;
                }
                if q.group_by == GroupBy::Document {
                    // Every document of this chunk has a hit already (a run of neighbouring
                    // chunks, usually): it adds nothing, and its record need not be read.
                    let mut keys = doc_keys
                        .column(c.address)?
                        .values_for_doc(c.address.doc_id)
                        .peekable();
                    if keys.peek().is_some() && keys.all(|k| seen.contains(&k)) {
                        continue;
                    }
                }
                let mut rec = self.index.record(&self.snapshot, c.address)?;
                // A chunk shared by documents names only those the caller may read that pass
                // the filter.
                rec.occurrences.retain(|o| access.admits(o));
                match q.group_by {
                    GroupBy::Chunk => {
                        let also_in = rec
                            .occurrences
                            .iter()
                            .skip(1)
                            .map(|o| o.doc_id.clone())
                            .collect();
                        hits.extend(hit(&rec, 0, c, q).map(|mut h| {
                            h.also_in = also_in;
                            h
                        }));
                    }
                    GroupBy::Document => {
                        for (i, occ) in rec.occurrences.iter().enumerate() {
                            if seen.insert(doc_key(&occ.doc_id)) {
                                hits.extend(hit(&rec, i, c, q));
                                if hits.len() == need {
                                    break 'outer;
                                }
                            }
                        }
                    }
                }
                if hits.len() == need {
                    break;
                }
            }
            // Candidates ran out before top_k results: look deeper, unless there is no deeper.
            if hits.len() >= need || below || !more || depth >= total {
                return Ok(hits.into_iter().skip(q.offset).collect());
            }
            // as deep again as this pass needed per result, with a margin (at least twice as
            // deep): neighbouring chunks of one document share their BM25 context and come in
            // runs, so a document needs several candidates
            let per_hit = depth.div_ceil(hits.len().max(1));
            depth = (need * per_hit * 5 / 4).max(depth * 2).min(total.max(1));
        }
    }
}
