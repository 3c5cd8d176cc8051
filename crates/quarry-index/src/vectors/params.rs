//! The settings of a vector index ([`VectorParams`], `[vector]` in `quarry.toml`) and their checks.

use crate::error::{Error, Result};

/// HNSW and exact-search settings (`[vector]` in `quarry.toml`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VectorParams {
    /// Links per node (`M`); layer 0 keeps up to `2·M`.
    pub m: usize,
    pub ef_construction: usize,
    /// Candidate list size at query time (raised to the number of results asked for).
    pub ef_search: usize,
    /// Below this many live vectors, queries scan every vector instead of the graph.
    pub exact_threshold: usize,
    /// Rebuild the graph when this fraction of its points are tombstones.
    pub rebuild_tombstone_ratio: f32,
    /// An ACL-filtered query scans the caller's permitted vectors exactly, instead of traversing
    /// the graph with a filter, when they are fewer than this fraction of the live vectors (or
    /// fewer than `exact_threshold`).
    pub filter_exact_fraction: f32,
    /// How the graph holds vectors once they are sealed: `int8` (codes of one byte a dimension
    /// in memory, full vectors on disk for rescoring), `binary` (one bit a dimension, more
    /// candidates rescored) or `none` (every vector as `f32` in the graph, in memory). With
    /// `int8` or `binary` the open graph is also searched through a copy over the same codes.
    pub quantization: Quantization,
    /// The size of a sealed segment: a dump seals the open graph (its points become a segment)
    /// once it holds this many points. Larger segments mean
    /// fewer walks per query and more memory while the open graph fills.
    pub segment_points: usize,
}

/// How sealed segments of the vector graph hold their vectors (`vector.quantization`).
/// Read through [`str::parse`], whose error names at most 32 characters of a bad value (a
/// request body's huge string is not echoed back).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Quantization {
    /// Never seal: every vector in memory as `f32`, in the hnsw_rs graph.
    None,
    /// Sealed segments search int8 codes and rescore with the full vectors read from disk.
    Int8,
    /// Sealed segments search sign bits (one bit a dimension) and rescore more candidates with
    /// the full vectors read from disk: an eighth of int8's bytes for the codes (a point's row,
    /// links included, about a third), more reads from disk per query.
    Binary,
}

/// What an embedding version sets of its index apart from `[vector]` (stored with the version,
/// `embedding_versions.index_params`; not part of its fingerprint: the same embeddings, another
/// index). A field left out is the `[vector]` setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct IndexParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
}

impl Quantization {
    pub fn as_str(self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::Int8 => "int8",
            Quantization::Binary => "binary",
        }
    }

    /// How sealed segments code their points; `None` when nothing is sealed.
    pub(super) fn codec(self) -> Option<super::codes::Codec> {
        match self {
            Quantization::None => None,
            Quantization::Int8 => Some(super::codes::Codec::Int8),
            Quantization::Binary => Some(super::codes::Codec::Binary),
        }
    }
}

impl TryFrom<String> for Quantization {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl std::str::FromStr for Quantization {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Quantization::None),
            "int8" => Ok(Quantization::Int8),
            "binary" => Ok(Quantization::Binary),
            _ => Err(Error::Input(format!(
                "unknown quantization {:?}: use `int8`, `binary` or `none`",
                s.chars().take(32).collect::<String>()
            ))),
        }
    }
}

impl Default for VectorParams {
    fn default() -> Self {
        VectorParams {
            m: 16,
            // 100 (was 200): the graph builds in about two thirds of the time (a 100k-chunk scale
            // bench, vectors 81.3 and 67.6 s against 54.2 and 47.5 s) for recall@10 0.979–0.981
            // against 0.986 there; nDCG@10 moved by at most 0.0012 on SciFact and CISI
            // (BENCHMARKS.md, "Build speed: ef_construction and lazy BM25 merges")
            ef_construction: 100,
            // 64 (was 128): on SciFact at the default chunking (37,366 vectors), vector nDCG@10
            // at top_k=10 0.7012 against 0.7023 and hybrid 0.7397 against 0.7396, with the
            // vector search about 1.6× faster (README, "Latency")
            ef_search: 64,
            exact_threshold: 4096,
            rebuild_tombstone_ratio: 0.25,
            filter_exact_fraction: 0.05,
            quantization: Quantization::Int8,
            segment_points: 131_072,
        }
    }
}

impl VectorParams {
    pub fn validate(&self) -> Result<()> {
        let bad =
            |what: &str, why: String| Err(Error::Input(format!("invalid vector.{what}: {why}")));
        if !(2..=128).contains(&self.m) {
            return bad("m", format!("{}; use 2 to 128", self.m));
        }
        if !(1..=4096).contains(&self.ef_construction) {
            return bad(
                "ef_construction",
                format!("{}; use 1 to 4096", self.ef_construction),
            );
        }
        if !(1..=4096).contains(&self.ef_search) {
            return bad("ef_search", format!("{}; use 1 to 4096", self.ef_search));
        }
        if !(self.rebuild_tombstone_ratio > 0.0 && self.rebuild_tombstone_ratio <= 1.0) {
            return bad(
                "rebuild_tombstone_ratio",
                format!("{}; use a number in (0, 1]", self.rebuild_tombstone_ratio),
            );
        }
        if !(0.0..=1.0).contains(&self.filter_exact_fraction) {
            return bad(
                "filter_exact_fraction",
                format!("{}; use a number in [0, 1]", self.filter_exact_fraction),
            );
        }
        if !(64..=16_777_216).contains(&self.segment_points) {
            return bad(
                "segment_points",
                format!("{}; use 64 to 16777216", self.segment_points),
            );
        }
        Ok(())
    }

    /// These settings with what a version's `index` sets in their place.
    pub fn with_index(mut self, index: &IndexParams) -> VectorParams {
        if let Some(q) = index.quantization {
            self.quantization = q;
        }
        self
    }

    /// How a dump seals an open graph of `open` points: the codec of the segment, or `None`
    /// when it does not seal it (`quantization = "none"`, or fewer than `segment_points`).
    pub(super) fn seals(&self, open: usize) -> Option<super::codes::Codec> {
        self.quantization
            .codec()
            .filter(|_| open >= self.segment_points)
    }
}
