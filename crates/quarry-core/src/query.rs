//! Query options shared by the engine, the HTTP API and the CLI, with their validation.

use crate::diversity::Diversify;
use crate::error::{Error, Result};
use crate::feedback::FeedbackSwitch;
use crate::filter::{Filter, Json};
use crate::fusion::Fusion;

/// Largest `top_k` a caller may ask for.
pub const MAX_TOP_K: usize = 1000;
/// Largest `offset` (results skipped for paging).
pub const MAX_OFFSET: usize = 10_000;
/// Most fields one query may ask facets of.
pub const MAX_FACETS: usize = 20;
/// Most metadata keys `include` names (each hit's keys are matched against the list).
pub const MAX_INCLUDE: usize = 256;
/// Longest query vector accepted.
pub const MAX_VECTOR_DIMS: usize = 8192;
/// Largest `rerank.top_n` any reranker may be configured for (`reranker.max_top_n` is at most
/// this; its default is 100).
pub const MAX_RERANK_TOP_N: usize = 1000;
/// Longest query text accepted, in bytes; longer text is an input error rather than a slow query.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// Most neighbouring chunks on each side a hit's passage may take (`expand.neighbors`).
pub const MAX_EXPAND_NEIGHBORS: usize = 10;

/// Which retrievers answer a query.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Hybrid,
    Bm25,
    Vector,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "hybrid" => Ok(Mode::Hybrid),
            "bm25" => Ok(Mode::Bm25),
            "vector" => Ok(Mode::Vector),
            other => Err(Error::invalid(
                "mode",
                format!("`{other}`; expected hybrid, bm25 or vector"),
            )),
        }
    }
}

/// Whether hits are chunks, or documents represented by their best chunk.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    #[default]
    Chunk,
    Document,
}

/// A validated query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOptions {
    pub text: String,
    pub top_k: usize,
    pub mode: Mode,
    pub group_by: GroupBy,
    /// How hybrid results are fused.
    pub fusion: Fusion,
    /// Which documents may answer (`{}`: all); typed against the collection when it runs.
    pub filter: Filter<Json>,
    /// Results skipped before the `top_k` returned (paging; the order is stable for a snapshot).
    pub offset: usize,
    /// Results with a lower fused score are left out.
    pub min_score: Option<f32>,
    /// Metadata keys a hit carries (`None`: all of them).
    pub include: Option<Vec<String>>,
    /// Fields to count values of over the matching documents.
    pub facets: Vec<String>,
    /// Whether hits carry each retriever's part of their score, and the answer its timings.
    pub explain: bool,
    /// The query's own vector, and the embedding version it was made for (checked when given).
    pub vector: Option<QueryVector>,
    /// Whether hits carry the byte ranges of the query's terms in their text.
    pub highlight: bool,
    /// Whether hits carry a citation (document, offsets, Markdown heading path).
    pub citation: bool,
    /// Whether hits carry a passage of their chunk with its neighbours.
    pub expand: Option<Expand>,
    /// Re-score the first hits with the configured reranker (docs/query.md, "Reranking").
    pub rerank: Option<Rerank>,
    /// Re-rank the fused candidates by maximal marginal relevance (`None`: the fused order).
    pub diversify: Option<Diversify>,
    /// Pseudo-relevance feedback for BM25 (query expansion, `crate::feedback`); `None`: the
    /// collection's setting.
    pub feedback: Option<FeedbackSwitch>,
}

/// How far a hit's passage reaches (`expand`): `neighbors` chunks of its document on each side.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Expand {
    /// 1 to 10.
    #[schema(minimum = 1, maximum = 10)]
    pub neighbors: usize,
}

/// `rerank: {"top_n": N}`: the first `top_n` hits (of the fused order, before `offset`) are
/// re-scored by the configured reranker and re-ordered by its scores.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Rerank {
    /// 1 to 1000, and at most the reranker's `max_top_n`.
    #[schema(minimum = 1, maximum = 1000)]
    pub top_n: usize,
}

/// A vector the caller computed for the query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryVector {
    pub values: Vec<f32>,
    pub embedding_version: Option<String>,
}

impl QueryOptions {
    /// Checks the query text and `top_k`; the error says what to change.
    pub fn new(
        text: impl Into<String>,
        top_k: usize,
        mode: Mode,
        group_by: GroupBy,
    ) -> Result<Self> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err(Error::invalid(
                "query",
                "the query text is empty; send some words to search for",
            ));
        }
        if text.len() > MAX_QUERY_BYTES {
            return Err(Error::invalid(
                "query",
                format!(
                    "the query text is {} bytes; the limit is {MAX_QUERY_BYTES}",
                    text.len()
                ),
            ));
        }
        if !(1..=MAX_TOP_K).contains(&top_k) {
            return Err(Error::invalid(
                "top_k",
                format!("{top_k}; it must be between 1 and {MAX_TOP_K}"),
            ));
        }
        Ok(QueryOptions::unchecked(text, top_k, mode, group_by))
    }

    fn unchecked(text: String, top_k: usize, mode: Mode, group_by: GroupBy) -> Self {
        QueryOptions {
            text,
            top_k,
            mode,
            group_by,
            fusion: Fusion::default(),
            filter: Filter::All,
            offset: 0,
            min_score: None,
            include: None,
            facets: Vec::new(),
            explain: false,
            vector: None,
            highlight: false,
            citation: false,
            expand: None,
            rerank: None,
            diversify: None,
            feedback: None,
        }
    }

    /// A `mode=vector` query by its vector alone, without text.
    pub fn by_vector(vector: QueryVector, top_k: usize, group_by: GroupBy) -> Result<Self> {
        QueryOptions::new("-", top_k, Mode::Vector, group_by)?;
        let mut q = QueryOptions::unchecked(String::new(), top_k, Mode::Vector, group_by);
        q.vector = Some(check_vector(vector)?);
        Ok(q)
    }

    /// Gives the query its own vector (`mode` vector or hybrid): 1 to [`MAX_VECTOR_DIMS`] finite
    /// values. The searcher checks its length and version against the collection.
    pub fn with_vector(mut self, vector: QueryVector) -> Result<Self> {
        if self.mode == Mode::Bm25 {
            return Err(Error::invalid(
                "vector",
                "mode=bm25 does not use a vector; use mode=vector or hybrid, or leave `vector` out",
            ));
        }
        self.vector = Some(check_vector(vector)?);
        Ok(self)
    }

    /// Sets the filter (parsed, typed later against the collection).
    pub fn with_filter(mut self, filter: &serde_json::Value) -> Result<Self> {
        self.filter = Filter::parse(filter)?;
        Ok(self)
    }

    /// Sets paging and the score threshold.
    pub fn with_page(mut self, offset: usize, min_score: Option<f32>) -> Result<Self> {
        if offset > MAX_OFFSET {
            return Err(Error::invalid(
                "offset",
                format!("{offset}; it must be at most {MAX_OFFSET}"),
            ));
        }
        if let Some(m) = min_score
            && !m.is_finite()
        {
            return Err(Error::invalid("min_score", "must be a finite number"));
        }
        self.offset = offset;
        self.min_score = min_score;
        Ok(self)
    }

    /// Sets the metadata keys hits carry and the fields to count.
    pub fn with_fields(
        mut self,
        include: Option<Vec<String>>,
        facets: Vec<String>,
    ) -> Result<Self> {
        if facets.len() > MAX_FACETS {
            return Err(Error::invalid(
                "facets",
                format!("{} fields; at most {MAX_FACETS}", facets.len()),
            ));
        }
        if let Some(f) = facets.iter().find(|f| f.is_empty()) {
            return Err(Error::invalid(
                "facets",
                format!("`{f}`: field names are not empty"),
            ));
        }
        if let Some(keys) = &include
            && keys.len() > MAX_INCLUDE
        {
            return Err(Error::invalid(
                "include",
                format!("{} keys; at most {MAX_INCLUDE}", keys.len()),
            ));
        }
        self.include = include;
        self.facets = facets;
        Ok(self)
    }

    /// Sets what hits carry besides their chunk: highlights, a citation, a passage
    /// (`expand.neighbors` 1 to [`MAX_EXPAND_NEIGHBORS`]).
    pub fn with_view(
        mut self,
        highlight: bool,
        citation: bool,
        expand: Option<Expand>,
    ) -> Result<Self> {
        if let Some(e) = expand
            && !(1..=MAX_EXPAND_NEIGHBORS).contains(&e.neighbors)
        {
            return Err(Error::invalid(
                "expand.neighbors",
                format!(
                    "{}; it must be between 1 and {MAX_EXPAND_NEIGHBORS}",
                    e.neighbors
                ),
            ));
        }
        self.highlight = highlight;
        self.citation = citation;
        self.expand = expand;
        Ok(self)
    }

    /// Asks for reranking: `top_n` from 1 to [`MAX_RERANK_TOP_N`] (the searcher checks it against
    /// the configured reranker's own limit), and text to rerank by.
    pub fn with_rerank(mut self, rerank: Rerank) -> Result<Self> {
        if !(1..=MAX_RERANK_TOP_N).contains(&rerank.top_n) {
            return Err(Error::invalid(
                "rerank.top_n",
                format!(
                    "{}; it must be between 1 and {MAX_RERANK_TOP_N} (and at most the reranker's max_top_n)",
                    rerank.top_n
                ),
            ));
        }
        if self.text.trim().is_empty() {
            return Err(Error::invalid(
                "rerank",
                "the reranker scores passages against the query text; send `query` too",
            ));
        }
        self.rerank = Some(rerank);
        Ok(self)
    }

    /// Sets the diversity re-ranking, checking λ.
    pub fn with_diversify(mut self, diversify: Option<Diversify>) -> Result<Self> {
        if let Some(d) = &diversify {
            d.validate()?;
        }
        self.diversify = diversify;
        Ok(self)
    }

    /// Sets the pseudo-relevance feedback, checking its parameters.
    pub fn with_feedback(mut self, feedback: Option<FeedbackSwitch>) -> Result<Self> {
        if let Some(f) = &feedback {
            f.check()?;
        }
        self.feedback = feedback;
        Ok(self)
    }

    /// Sets the fusion, checking its parameters.
    pub fn with_fusion(mut self, fusion: Fusion) -> Result<Self> {
        fusion.validate()?;
        self.fusion = fusion;
        Ok(self)
    }
}

/// What a query request leaves to the server's or the CLI's configuration.
#[derive(Debug, Clone, Copy)]
pub struct QueryDefaults {
    pub top_k: usize,
    pub mode: Mode,
    pub group_by: GroupBy,
    /// The collection's fusion (its configured default).
    pub fusion: Fusion,
}

/// A query as the HTTP API takes it (docs/http-api.md, "Query") and the CLI sends it: every
/// option, each validated by [`QueryRequest::options`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// Required, except for `mode: vector` with a `vector`: plain text with a non-space
    /// character, at most 64 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "\\S")]
    pub query: Option<String>,
    /// 1 to 1000 (default `query.top_k`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub top_k: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<GroupBy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fusion: Option<Fusion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::filter::FilterSchema>)]
    pub filter: Option<serde_json::Value>,
    /// Results skipped before the `top_k` returned, at most 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 10000)]
    pub offset: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f32>,
    /// At most 256 metadata keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 256)]
    pub include: Option<Vec<String>>,
    /// At most 20 field names, none empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 20)]
    pub facets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<bool>,
    /// The query's own vector: 1 to 8192 finite numbers, as many as the collection's dimensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 8192)]
    pub vector: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highlight: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expand: Option<Expand>,
    pub rerank: Option<Rerank>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diversify: Option<Diversify>,
    /// BM25 query expansion by pseudo-relevance feedback: `true`, `false`, or its parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackSwitch>,
}

impl From<&QueryOptions> for QueryRequest {
    /// The request that asks for `q` exactly.
    fn from(q: &QueryOptions) -> Self {
        QueryRequest {
            query: Some(q.text.clone()),
            top_k: Some(q.top_k),
            mode: Some(q.mode),
            group_by: Some(q.group_by),
            fusion: Some(q.fusion),
            filter: (!q.filter.is_all()).then(|| q.filter.to_json()),
            offset: (q.offset > 0).then_some(q.offset),
            min_score: q.min_score,
            include: q.include.clone(),
            facets: (!q.facets.is_empty()).then(|| q.facets.clone()),
            explain: q.explain.then_some(true),
            vector: q.vector.as_ref().map(|v| v.values.clone()),
            embedding_version: q.vector.as_ref().and_then(|v| v.embedding_version.clone()),
            highlight: q.highlight.then_some(true),
            citation: q.citation.then_some(true),
            expand: q.expand,
            rerank: q.rerank,
            diversify: q.diversify,
            feedback: q.feedback,
        }
    }
}

impl QueryRequest {
    /// The validated query, with `d` where the request is silent.
    pub fn options(self, d: QueryDefaults) -> Result<QueryOptions> {
        let mode = self.mode.unwrap_or(d.mode);
        let (top_k, group_by) = (
            self.top_k.unwrap_or(d.top_k),
            self.group_by.unwrap_or(d.group_by),
        );
        if self.embedding_version.is_some() && self.vector.is_none() {
            return Err(Error::invalid(
                "embedding_version",
                "names the version of a `vector`; send the vector too, or leave it out",
            ));
        }
        let vector = self.vector.map(|values| QueryVector {
            values,
            embedding_version: self.embedding_version,
        });
        let text = self.query.unwrap_or_default();
        let mut q = match vector {
            Some(v) if mode == Mode::Vector && text.trim().is_empty() => {
                QueryOptions::by_vector(v, top_k, group_by)?
            }
            Some(v) => QueryOptions::new(text, top_k, mode, group_by)?.with_vector(v)?,
            None => QueryOptions::new(text, top_k, mode, group_by)?,
        };
        if let Some(f) = &self.filter {
            q = q.with_filter(f)?;
        }
        q = q.with_fusion(self.fusion.unwrap_or(d.fusion))?;
        q = q
            .with_page(self.offset.unwrap_or(0), self.min_score)?
            .with_fields(self.include, self.facets.unwrap_or_default())?
            .with_diversify(self.diversify)?
            .with_feedback(self.feedback)?;
        q.explain = self.explain == Some(true);
        q = q.with_view(
            self.highlight == Some(true),
            self.citation == Some(true),
            self.expand,
        )?;
        if let Some(r) = self.rerank {
            q = q.with_rerank(r)?;
        }
        Ok(q)
    }
}

fn check_vector(v: QueryVector) -> Result<QueryVector> {
    if v.values.is_empty() || v.values.len() > MAX_VECTOR_DIMS {
        return Err(Error::invalid(
            "vector",
            format!("{} values; send 1 to {MAX_VECTOR_DIMS}", v.values.len()),
        ));
    }
    if let Some(i) = v.values.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid(
            "vector",
            format!("value {i} is not a finite number (NaN or infinite)"),
        ));
    }
    Ok(v)
}

#[cfg(test)]
#[path = "query_tests.rs"]
pub(crate) mod tests;
