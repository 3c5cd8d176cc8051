//! Queries answered together: [`Searcher::search_batch`] ([`Searcher::search`] is a batch of one).
//! The query texts that need a vector are looked up in the engine's query-embedding cache, and
//! the rest embedded in one call to the model, under one deadline, each distinct text once; then
//! every query runs through [`Searcher::search_with_vector`] as it would alone.

use super::{SearchResponse, Searcher};
use crate::collection::ActiveEmbedder;
use crate::error::{Error, Result};
use quarry_core::embed::{EmbedCheckError, embed_checked};
use quarry_core::{InputKind, Mode, Principal, QueryOptions, QueryVector};
use std::collections::HashMap;
use std::time::Instant;

/// A query's vector as the embedding gave it: the vector, or why there is none.
type Embedded = std::result::Result<Vec<f32>, String>;

impl Searcher {
    /// Runs `queries` for `caller` and answers each as [`Searcher::search`] would, in order. The
    /// texts that need the model (mode hybrid or vector, no vector of their own, not in the
    /// query-embedding cache) are embedded in one call; when that call fails or takes longer than
    /// `query.embed_timeout_ms`, each of those queries is answered from BM25 alone (`degraded`).
    /// A query's `took_ms` is the batch's embedding time plus its own search, and its `embed_ms`
    /// the batch's embedding time.
    pub fn search_batch(
        &self,
        queries: &[QueryOptions],
        caller: &Principal,
    ) -> Vec<Result<SearchResponse>> {
        let started = Instant::now();
        let needs: Vec<bool> = queries.iter().map(|q| self.needs_embedding(q)).collect();
        let texts: Vec<&str> = queries
            .iter()
            .zip(&needs)
            .filter(|(_, needs)| **needs)
            .map(|(q, _)| q.text.as_str())
            .collect();
        let mut embedded = self.embed_queries(&texts).into_iter();
        let embed_ms = started.elapsed().as_secs_f64() * 1e3;
        queries
            .iter()
            .zip(needs)
            .map(|(q, needs)| {
                let own = Instant::now();
                let vector = match (needs, q.mode, &q.vector) {
                    (true, _, _) => embedded.next(),
                    (false, Mode::Bm25, _) | (false, _, None) => None,
                    (false, _, Some(v)) => Some(Ok(self.own_vector(v)?)),
                };
                let mut response = self.search_with_vector(q, caller, vector)?;
                let embed_ms = needs.then_some(embed_ms);
                response.took_ms = embed_ms.unwrap_or(0.0) + own.elapsed().as_secs_f64() * 1e3;
                response.embed_ms = embed_ms;
                if let Some(t) = &mut response.timings {
                    t.embed_ms = embed_ms.unwrap_or(0.0);
                }
                Ok(response)
            })
            .collect()
    }

    /// Whether `q` needs its text embedded: a mode with vectors, a collection with them, and no
    /// vector of the caller's own.
    fn needs_embedding(&self, q: &QueryOptions) -> bool {
        q.mode != Mode::Bm25
            && self.active.is_some()
            && self.vectors.is_some()
            && q.vector.is_none()
    }

    /// The vectors of query `texts` under the active version, in order: from the cache, or
    /// embedded (each distinct text once, in one call) and then cached. A failed embedding gives
    /// every text it was for the reason, and is not cached.
    pub(crate) fn embed_queries(&self, texts: &[&str]) -> Vec<Embedded> {
        let Some(active) = &self.active else {
            let why = format!(
                "collection `{}` has no embedding version",
                self.collection.name
            );
            return texts.iter().map(|_| Err(why.clone())).collect();
        };
        let version = active.version.id.as_str();
        let mut out: Vec<Option<Embedded>> = texts
            .iter()
            .map(|t| self.query_vectors.get(version, t).map(Ok))
            .collect();
        // the distinct texts the cache did not have, and where each goes in `missing`
        let mut missing: Vec<&str> = Vec::new();
        let mut slot: HashMap<&str, usize> = HashMap::new();
        for (t, o) in texts.iter().zip(&out) {
            if o.is_none() {
                slot.entry(t).or_insert_with(|| {
                    missing.push(t);
                    missing.len() - 1
                });
            }
        }
        if !missing.is_empty() {
            let answer = self.embed_now(active, &missing);
            if let Ok(vectors) = &answer {
                for (t, v) in missing.iter().zip(vectors) {
                    self.query_vectors.put(version, t, v);
                }
            }
            for (t, o) in texts.iter().zip(out.iter_mut()) {
                if o.is_none() {
                    *o = Some(match &answer {
                        Ok(vectors) => Ok(vectors[slot[t]].clone()),
                        Err(why) => Err(why.clone()),
                    });
                }
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err("the query was not embedded".to_owned())))
            .collect()
    }

    /// Embeds `texts` (queries) with `active`'s embedder in one call, on a separate thread,
    /// waiting at most the configured timeout; the vectors are checked (count, dimensions) and
    /// normalised.
    fn embed_now(
        &self,
        active: &ActiveEmbedder,
        texts: &[&str],
    ) -> std::result::Result<Vec<Vec<f32>>, String> {
        let embedder = active.embedder.clone()?;
        let dims = active.version.spec.dimensions;
        let (tx, rx) = std::sync::mpsc::channel();
        let owned: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
        std::thread::Builder::new()
            .name("quarry-embed-query".into())
            .spawn(move || {
                let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
                let _ = tx.send(embed_checked(
                    &*embedder,
                    &texts,
                    InputKind::Query,
                    Some(dims),
                ));
            })
            .map_err(|e| format!("cannot start the query embedding: {e}"))?;
        match rx.recv_timeout(self.embed_timeout) {
            Ok(Ok(vectors)) => Ok(vectors),
            Ok(Err(EmbedCheckError::Count { got, expected })) => Err(format!(
                "the embedder returned {got} vectors for {expected} queries"
            )),
            Ok(Err(EmbedCheckError::Embed(e))) => Err(e.to_string()),
            Ok(Err(EmbedCheckError::Dimensions { got, expected })) => Err(format!(
                "the embedder returned a vector of {got} values; version `{}` has {expected} dimensions",
                active.version.id
            )),
            Err(_) => Err(format!(
                "the query embedding took longer than query.embed_timeout_ms ({} ms)",
                self.embed_timeout.as_millis()
            )),
        }
    }

    /// A caller's own query vector, checked against the active version: its length, and its
    /// version when named.
    fn own_vector(&self, v: &QueryVector) -> Result<Vec<f32>> {
        let Some(active) = &self.active else {
            return Err(Error::Input(format!(
                "`vector`: collection `{}` has no embedding version to compare it with",
                self.collection.name
            )));
        };
        if let Some(named) = &v.embedding_version
            && *named != active.version.id
        {
            return Err(Error::Input(format!(
                "`embedding_version`: the vector is for `{named}`, but collection `{}` answers with `{}`; embed the query with that version's model",
                self.collection.name, active.version.id
            )));
        }
        let dims = active.version.spec.dimensions;
        if v.values.len() != dims {
            return Err(Error::Input(format!(
                "`vector` has {} values; version `{}` has {dims} dimensions",
                v.values.len(),
                active.version.id
            )));
        }
        let mut values = v.values.clone();
        if values.iter().all(|x| *x == 0.0) {
            return Err(Error::Input(
                "`vector` is all zeros; it has no direction to compare".to_owned(),
            ));
        }
        // stored vectors are unit length; so is the query's, as an embedded one is
        quarry_core::embed::normalize(&mut values);
        Ok(values)
    }
}
