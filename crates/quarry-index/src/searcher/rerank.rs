//! Reranking (`rerank: {"top_n": N}`): the first `N` hits of the fused order, already read and
//! checked against the caller's ACL and the filter, are scored by the configured [`Reranker`]
//! and re-ordered by its scores; hits past `N` follow in fused order. A hit's `score` becomes
//! the reranker's score, `scores.rerank` holds it and `scores.fused` the fused score it replaced.
//! `offset` and `top_k` are applied after this, by the caller.
//!
//! When the reranker fails (or runs out of time, which it bounds itself), the hits are left as
//! they were and the reason is returned: the answer keeps the fused order, marked degraded.

use super::response::Hit;
use crate::error::{Error, Result};
use quarry_core::{QueryOptions, Rerank, Reranker, embed_text};
use std::sync::Arc;
use std::time::Instant;

/// The reranker a query asking for one uses, if it may: a 400 naming the option without a
/// configured reranker, or above its `max_top_n`.
pub(super) fn reranker_for<'a>(
    configured: Option<&'a Arc<dyn Reranker>>,
    q: &QueryOptions,
) -> Result<Option<&'a Arc<dyn Reranker>>> {
    let Some(r) = q.rerank else { return Ok(None) };
    let Some(reranker) = configured else {
        return Err(Error::Input(
            "`rerank`: no reranker is configured; add a [reranker] table with the `url` of a /rerank service (and its `format` and `model`) to quarry.toml, see docs/configuration.md".to_owned(),
        ));
    };
    let max = reranker.max_documents();
    if r.top_n > max {
        return Err(Error::Input(format!(
            "`rerank.top_n` {}: the configured reranker takes at most {max} (reranker.max_top_n)",
            r.top_n
        )));
    }
    Ok(Some(reranker))
}

/// The query whose hits are reranked: from the first, as many as `top_n` and the page need.
pub(super) fn widened(q: &QueryOptions, r: Rerank) -> QueryOptions {
    QueryOptions {
        top_k: r.top_n.max(q.top_k + q.offset),
        offset: 0,
        ..q.clone()
    }
}

/// What reranking did: the time it took, and the warning saying why it failed, if it did.
pub(super) struct Outcome {
    pub(super) ms: f64,
    pub(super) failure: Option<String>,
}

/// Reranks the first `top_n` of `hits` in place by `query` (the passages sent are what the
/// embedder sees: title, newline, text).
pub(super) fn apply(
    reranker: &dyn Reranker,
    query: &str,
    hits: &mut [Hit],
    top_n: usize,
) -> Outcome {
    let started = Instant::now();
    let n = top_n.min(hits.len());
    let head = &mut hits[..n];
    let failure = if head.is_empty() {
        None
    } else {
        let passages: Vec<String> = head.iter().map(|h| embed_text(&h.title, &h.text)).collect();
        let passages: Vec<&str> = passages.iter().map(String::as_str).collect();
        match reranker.rerank(query, &passages) {
            Ok(scores) if scores.len() == n && scores.iter().all(|s| s.is_finite()) => {
                for (h, s) in head.iter_mut().zip(scores) {
                    h.scores.fused = Some(h.score);
                    h.scores.rerank = Some(s);
                    h.score = s;
                }
                // stable: equal rerank scores keep their fused order
                head.sort_by(|a, b| b.score.total_cmp(&a.score));
                None
            }
            Ok(scores) => Some(format!(
                "the reranker gave {} scores (all finite: {}) for {n} passages",
                scores.len(),
                scores.iter().all(|s| s.is_finite())
            )),
            Err(e) => Some(e.to_string()),
        }
    };
    Outcome {
        ms: started.elapsed().as_secs_f64() * 1e3,
        failure: failure
            .map(|why| format!("reranking unavailable, results keep the fused order: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::searcher::response::Scores;
    use quarry_core::RerankError;

    /// Scores a passage by the number in its text; fails when told to.
    struct ByNumber(bool);

    impl Reranker for ByNumber {
        fn rerank(
            &self,
            _query: &str,
            documents: &[&str],
        ) -> std::result::Result<Vec<f32>, RerankError> {
            if self.0 {
                return Err(RerankError::Provider("down".into()));
            }
            Ok(documents
                .iter()
                .map(|d| d.trim_start_matches("t\n").parse().unwrap_or(f32::NAN))
                .collect())
        }
        fn max_documents(&self) -> usize {
            100
        }
    }

    fn hits(texts: &[&str]) -> Vec<Hit> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Hit {
                doc_id: format!("d{i}"),
                chunk_id: String::new(),
                score: 1.0 - i as f32 / 10.0,
                title: "t".into(),
                text: (*t).into(),
                source: String::new(),
                offsets: [0, 0],
                scores: Scores::default(),
                metadata: Default::default(),
                also_in: Vec::new(),
                explain: None,
                highlights: None,
                citation: None,
                passage: None,
                passage_ref: None,
            })
            .collect()
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.doc_id.as_str()).collect()
    }

    #[test]
    fn the_head_is_reordered_and_the_tail_keeps_its_place() {
        let mut h = hits(&["1", "3", "2", "9"]);
        let out = apply(&ByNumber(false), "q", &mut h, 3);
        assert!(out.failure.is_none());
        assert_eq!(ids(&h), ["d1", "d2", "d0", "d3"]);
        assert_eq!(h[0].score, 3.0);
        assert_eq!(h[0].scores.rerank, Some(3.0));
        assert_eq!(h[0].scores.fused, Some(0.9));
        assert_eq!(h[3].score, 0.7, "past top_n: the fused score");
        assert_eq!(h[3].scores.rerank, None);
    }

    #[test]
    fn a_failure_or_a_bad_answer_keeps_the_fused_order() {
        for (reranker, texts) in [
            (ByNumber(true), ["1", "3", "2"]),
            (ByNumber(false), ["1", "x", "2"]),
        ] {
            let mut h = hits(&texts);
            let before = h.clone();
            let out = apply(&reranker, "q", &mut h, 10);
            assert!(out.failure.is_some());
            assert_eq!(h, before);
        }
    }
}
