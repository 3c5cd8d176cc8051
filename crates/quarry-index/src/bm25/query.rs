//! Turning user text into a BM25 query. Query strings are never parsed as tantivy syntax: the text
//! is run through the index analyzer, and each distinct term becomes `SHOULD` clauses over the
//! chunk's context, its own text and its title, weighted. Quotes, colons, brackets, `AND`/`OR` and the like are just
//! characters, so no input can fail to parse or name a field.

use super::{Fields, analyzer};
use tantivy::Term;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery, TermSetQuery,
};
use tantivy::schema::IndexRecordOption;

/// Weight of a title-field match relative to a context match. Titles are short, so their BM25
/// scores run high (length normalisation); a weight below 1 calibrates them. Tuned on the SciFact
/// *train* split: with 256-token chunks and no context, nDCG@10 0.666 at 1.0, 0.680 at 0.15 and a
/// plateau of 0.684–0.686 from 0.25 to 0.6; with the default 128-token chunks and 2000 characters
/// of context (text weight 0.25), 0.6952 at 0.2, 0.6983 at 0.4, 0.6936 at 0.8.
pub const TITLE_BOOST: f32 = 0.4;
/// Weight of a match in the chunk's own text relative to a match in its context (which holds the
/// chunk too). Small: it orders the chunks of one passage, whose contexts match alike, by which
/// holds the words. SciFact *train*, 2000 characters of context, BM25 nDCG@10 (hybrid at alpha
/// 0.6): 0 0.6997 (0.7414), 0.1 0.6995 (0.7395), 0.25 0.6983 (0.7385), 0.5 0.6950 (0.7363).
pub const TEXT_WEIGHT: f32 = 0.1;
/// Most distinct terms taken from one query; the rest are ignored (a 10 KB query stays fast).
pub const MAX_QUERY_TERMS: usize = 256;

/// The query for `text`, or `None` when the text has no searchable term (only stop words or
/// punctuation).
pub fn build_query(fields: &Fields, text: &str) -> Option<Box<dyn Query>> {
    static ANALYZER: std::sync::OnceLock<tantivy::tokenizer::TextAnalyzer> =
        std::sync::OnceLock::new();
    // Built once; a clone shares the stop-word set.
    let mut analyzer = ANALYZER.get_or_init(analyzer).clone();
    let mut stream = analyzer.token_stream(text);
    let mut terms: Vec<String> = Vec::new();
    while let Some(token) = stream.next() {
        if !terms.contains(&token.text) {
            terms.push(token.text.clone());
            if terms.len() == MAX_QUERY_TERMS {
                break;
            }
        }
    }
    if terms.is_empty() {
        return None;
    }
    let weights = [
        (fields.context, 1.0),
        (fields.text, TEXT_WEIGHT),
        (fields.title, TITLE_BOOST),
    ];
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 3);
    for t in &terms {
        for (field, weight) in weights {
            if weight <= 0.0 {
                continue;
            }
            let q = TermQuery::new(
                Term::from_field_text(field, t),
                IndexRecordOption::WithFreqs,
            );
            clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(q), weight))));
        }
    }
    Some(Box::new(BooleanQuery::new(clauses)))
}

/// The ACL filter of a caller: chunks whose `acl` field holds one of `tokens` (the caller's
/// [`quarry_core::Principal::tokens`]).
pub fn acl_filter(fields: &Fields, tokens: &[String]) -> Box<dyn Query> {
    Box::new(TermSetQuery::new(
        tokens.iter().map(|t| Term::from_field_text(fields.acl, t)),
    ))
}

/// `query` restricted to the documents of `filter`, with the scores of `query` unchanged: the
/// filter is a required clause scoring 0 inside the same query, so BM25 ranks only permitted
/// chunks and fills `top_k` with them.
pub fn restrict(query: Box<dyn Query>, filter: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, query),
        (Occur::Must, Box::new(ConstScoreQuery::new(filter, 0.0))),
    ]))
}
