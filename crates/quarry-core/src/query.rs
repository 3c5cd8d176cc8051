//! Query options shared by the engine, the HTTP API and the CLI, with their validation.

use crate::error::{Error, Result};
use crate::fusion::Fusion;

/// Largest `top_k` a caller may ask for.
pub const MAX_TOP_K: usize = 1000;
/// Longest query text accepted, in bytes; longer text is an input error rather than a slow query.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Which retrievers answer a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
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
        Ok(QueryOptions {
            text,
            top_k,
            mode,
            group_by,
            fusion: Fusion::default(),
        })
    }

    /// Sets the fusion, checking its parameters.
    pub fn with_fusion(mut self, fusion: Fusion) -> Result<Self> {
        fusion.validate()?;
        self.fusion = fusion;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(QueryOptions::new("  \n", 10, Mode::Bm25, GroupBy::Chunk).is_err());
        assert!(QueryOptions::new("a", 0, Mode::Bm25, GroupBy::Chunk).is_err());
        assert!(QueryOptions::new("a", 1001, Mode::Bm25, GroupBy::Chunk).is_err());
        assert!(QueryOptions::new("a", 1000, Mode::Bm25, GroupBy::Chunk).is_ok());
        assert!(
            QueryOptions::new(
                "x".repeat(MAX_QUERY_BYTES + 1),
                1,
                Mode::Bm25,
                GroupBy::Chunk
            )
            .is_err()
        );
        assert_eq!("bm25".parse::<Mode>(), Ok(Mode::Bm25));
        assert!("BM25 ".parse::<Mode>().is_err());
    }
}
