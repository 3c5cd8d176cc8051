//! Pseudo-relevance feedback for BM25 (RM3: Lavrenko & Croft, "Relevance-Based Language Models",
//! 2001; Abdul-Jaleel et al., "UMass at TREC 2004", the interpolation with the original query):
//! its parameters ([`Feedback`]) and the switch a query or a collection sets ([`FeedbackSwitch`]),
//! and the pure part of the method, [`expansion_weights`].
//!
//! The query runs once; its best `fb_docs` chunks (among those the caller may read) are the
//! feedback. A term `t` of them weighs `RM1(t) = Σ_D w(D) · tf(t, D) / |D|`, with `w(D)` the
//! chunk's BM25 score over the sum of the feedback scores. The `fb_terms` heaviest terms, their
//! weights summed to 1, are mixed with the query's own model `P(t|Q) = qw(t) / Σ qw` (`qw` the
//! BM25 query weight of the term's count, `k3`):
//!
//! ```text
//! P'(t) = orig_weight · P(t|Q) + (1 − orig_weight) · RM1'(t)
//! ```
//!
//! and the query runs again with each term's BM25 score multiplied by `P'(t) · Σ qw /
//! orig_weight`: an original term keeps its weight `qw(t)` exactly, and a feedback term is added
//! with `(1 − orig_weight) / orig_weight · Σ qw · RM1'(t)`, so scores stay on the scale of the
//! plain query's and `fb_terms = 0` is the plain query.

use crate::error::{Error, Result};

/// Default of [`Feedback::fb_docs`].
pub const DEFAULT_FB_DOCS: usize = 10;
/// Default of [`Feedback::fb_terms`].
pub const DEFAULT_FB_TERMS: usize = 10;
/// Default of [`Feedback::orig_weight`].
pub const DEFAULT_ORIG_WEIGHT: f32 = 0.5;
/// Least weight of the original query (below it the added terms' weights would overflow).
pub const MIN_ORIG_WEIGHT: f32 = 0.01;
/// Most feedback chunks or terms one query may ask for.
pub const MAX_FEEDBACK: usize = 100;

/// The parameters of pseudo-relevance feedback (`feedback` of a query or of a collection's
/// `bm25` settings).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Feedback {
    /// How many of the best chunks are the feedback, 0 to [`MAX_FEEDBACK`] (0: no expansion).
    #[schema(minimum = 0, maximum = 100)]
    pub fb_docs: usize,
    /// How many feedback terms are added, 0 to [`MAX_FEEDBACK`] (0: no expansion).
    #[schema(minimum = 0, maximum = 100)]
    pub fb_terms: usize,
    /// The weight of the original query in the mix, 0.01 to 1 (1: no expansion).
    #[schema(minimum = 0.01, maximum = 1)]
    pub orig_weight: f32,
}

impl Default for Feedback {
    fn default() -> Self {
        Feedback {
            fb_docs: DEFAULT_FB_DOCS,
            fb_terms: DEFAULT_FB_TERMS,
            orig_weight: DEFAULT_ORIG_WEIGHT,
        }
    }
}

impl Feedback {
    pub fn check(&self) -> Result<()> {
        if self.fb_docs > MAX_FEEDBACK {
            return Err(Error::invalid(
                "feedback.fb_docs",
                format!("{}; use 0 to {MAX_FEEDBACK}", self.fb_docs),
            ));
        }
        if self.fb_terms > MAX_FEEDBACK {
            return Err(Error::invalid(
                "feedback.fb_terms",
                format!("{}; use 0 to {MAX_FEEDBACK}", self.fb_terms),
            ));
        }
        let w = self.orig_weight;
        if !(w.is_finite() && (MIN_ORIG_WEIGHT..=1.0).contains(&w)) {
            return Err(Error::invalid(
                "feedback.orig_weight",
                format!(
                    "{w}; use a number from {MIN_ORIG_WEIGHT} to 1 (1: the original query alone)"
                ),
            ));
        }
        Ok(())
    }

    /// Whether these parameters change the query at all.
    pub fn expands(&self) -> bool {
        self.fb_docs > 0 && self.fb_terms > 0 && self.orig_weight < 1.0
    }
}

/// Feedback as a query or a change of a collection asks for it: `true` (on, with the
/// collection's parameters or the defaults), `false` (off), or the parameters
/// (`{"fb_docs": 10, "fb_terms": 10, "orig_weight": 0.5}`, each optional).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeedbackSwitch {
    Off,
    On,
    With(Feedback),
}

/// `true`, `false`, or the parameters, in the OpenAPI document.
impl utoipa::PartialSchema for FeedbackSwitch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .item(utoipa::openapi::Ref::from_schema_name("Feedback"))
            .description(Some(
                "BM25 query expansion: true (on, with the collection's parameters or the \
                 defaults), false (off), or the parameters",
            ))
            .into()
    }
}

impl utoipa::ToSchema for FeedbackSwitch {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "Feedback".into(),
            <Feedback as utoipa::PartialSchema>::schema(),
        ));
    }
}

impl FeedbackSwitch {
    /// The feedback that applies when `base` applied before (a collection's own setting).
    pub fn resolve(self, base: Option<Feedback>) -> Option<Feedback> {
        match self {
            FeedbackSwitch::Off => None,
            FeedbackSwitch::On => Some(base.unwrap_or_default()),
            FeedbackSwitch::With(f) => Some(f),
        }
    }

    pub fn check(&self) -> Result<()> {
        match self {
            FeedbackSwitch::With(f) => f.check(),
            _ => Ok(()),
        }
    }

    /// `on`, `off`, or `DOCS,TERMS,WEIGHT` (the CLI's `--feedback`).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "feedback",
                format!("`{s}`; use on, off or FB_DOCS,FB_TERMS,ORIG_WEIGHT (e.g. 10,10,0.5)"),
            )
        };
        let switch = match s {
            "on" | "true" => FeedbackSwitch::On,
            "off" | "false" => FeedbackSwitch::Off,
            _ => {
                let parts: Vec<&str> = s.split(',').map(str::trim).collect();
                let [d, t, w] = parts.as_slice() else {
                    return Err(bad());
                };
                FeedbackSwitch::With(Feedback {
                    fb_docs: d.parse().map_err(|_| bad())?,
                    fb_terms: t.parse().map_err(|_| bad())?,
                    orig_weight: w.parse().map_err(|_| bad())?,
                })
            }
        };
        switch.check()?;
        Ok(switch)
    }
}

impl serde::Serialize for FeedbackSwitch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            FeedbackSwitch::Off => s.serialize_bool(false),
            FeedbackSwitch::On => s.serialize_bool(true),
            FeedbackSwitch::With(f) => f.serialize(s),
        }
    }
}

impl<'de> serde::Deserialize<'de> for FeedbackSwitch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(true) => Ok(FeedbackSwitch::On),
            serde_json::Value::Bool(false) => Ok(FeedbackSwitch::Off),
            v @ serde_json::Value::Object(_) => serde_json::from_value(v)
                .map(FeedbackSwitch::With)
                .map_err(|e| D::Error::custom(format!("feedback: {e}"))),
            other => Err(D::Error::custom(format!(
                "feedback: {other} is neither true, false nor an object of fb_docs, fb_terms, orig_weight"
            ))),
        }
    }
}

/// A feedback chunk: its score, and its words with their counts.
pub type FeedbackChunk = (f32, Vec<(String, u32)>);

/// The weights of an expanded query: `original` (each term of the query with its BM25 query
/// weight `qw`), `feedback` (each feedback chunk's score and its terms with their counts), and
/// `fb` → every original term with its weight unchanged, then the added terms (those not in the
/// query) with their weights, heaviest first (equal weights by term). A term of the query that
/// the feedback also selects keeps its own weight plus the feedback's.
pub fn expansion_weights(
    original: &[(String, f32)],
    feedback: &[FeedbackChunk],
    fb: Feedback,
) -> Vec<(String, f32)> {
    let mut out: Vec<(String, f32)> = original.to_vec();
    let total_score: f64 = feedback.iter().map(|(s, _)| f64::from(s.max(0.0))).sum();
    if !fb.expands() || total_score <= 0.0 {
        return out;
    }
    let mut rm: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
    for (score, terms) in feedback {
        let len: u64 = terms.iter().map(|(_, n)| u64::from(*n)).sum();
        if len == 0 {
            continue;
        }
        let w = f64::from(score.max(0.0)) / total_score;
        for (t, n) in terms {
            *rm.entry(t.as_str()).or_default() += w * f64::from(*n) / len as f64;
        }
    }
    let mut ranked: Vec<(&str, f64)> = rm.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    ranked.truncate(fb.fb_terms);
    let sum: f64 = ranked.iter().map(|(_, w)| w).sum();
    let q_sum: f64 = original.iter().map(|(_, w)| f64::from(*w)).sum();
    if sum <= 0.0 {
        return out;
    }
    let scale = f64::from(1.0 - fb.orig_weight) / f64::from(fb.orig_weight) * q_sum / sum;
    for (t, w) in ranked {
        let add = (w * scale) as f32;
        if !add.is_finite() {
            continue;
        }
        match out.iter_mut().find(|(o, _)| o == t) {
            Some((_, weight)) => *weight += add,
            None => out.push((t.to_owned(), add)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(words: &[(&str, u32)]) -> Vec<(String, u32)> {
        words.iter().map(|(w, n)| (w.to_string(), *n)).collect()
    }

    #[test]
    fn hand_computed_weights() {
        let original = vec![("apple".to_owned(), 1.0), ("pie".to_owned(), 1.0)];
        // doc 1 (score 3): apple 2, crust 2 (len 4); doc 2 (score 1): crust 1, cream 1 (len 2)
        let feedback = vec![
            (3.0, terms(&[("apple", 2), ("crust", 2)])),
            (1.0, terms(&[("crust", 1), ("cream", 1)])),
        ];
        // RM1: apple 0.75·0.5 = 0.375, crust 0.75·0.5 + 0.25·0.5 = 0.5, cream 0.125
        let fb = Feedback {
            fb_docs: 2,
            fb_terms: 2,
            orig_weight: 0.5,
        };
        let out = expansion_weights(&original, &feedback, fb);
        // the two heaviest: crust 0.5, apple 0.375, summing to 0.875; scale (0.5/0.5) · 2 / 0.875
        let scale = 2.0 / 0.875;
        let want = [
            ("apple", 1.0 + 0.375 * scale),
            ("pie", 1.0),
            ("crust", 0.5 * scale),
        ];
        assert_eq!(out.len(), want.len(), "{out:?}");
        for ((t, w), (wt, ww)) in out.iter().zip(want) {
            assert_eq!(t, wt);
            assert!((w - ww as f32).abs() < 1e-5, "{t}: {w} vs {ww}");
        }
    }

    #[test]
    fn no_terms_no_docs_or_weight_one_is_the_original_query() {
        let original = vec![("a".to_owned(), 2.0)];
        let feedback = vec![(1.0, terms(&[("b", 1)]))];
        for fb in [
            Feedback {
                fb_terms: 0,
                ..Feedback::default()
            },
            Feedback {
                fb_docs: 0,
                ..Feedback::default()
            },
            Feedback {
                orig_weight: 1.0,
                ..Feedback::default()
            },
        ] {
            assert_eq!(expansion_weights(&original, &feedback, fb), original);
        }
        assert_eq!(
            expansion_weights(&original, &[], Feedback::default()),
            original
        );
    }

    #[test]
    fn switch_parses_and_checks() {
        let on: FeedbackSwitch = serde_json::from_str("true").unwrap();
        assert_eq!(on, FeedbackSwitch::On);
        let off: FeedbackSwitch = serde_json::from_str("false").unwrap();
        assert_eq!(off.resolve(Some(Feedback::default())), None);
        let with: FeedbackSwitch = serde_json::from_str(r#"{"fb_terms": 20}"#).unwrap();
        assert_eq!(
            with,
            FeedbackSwitch::With(Feedback {
                fb_terms: 20,
                ..Feedback::default()
            })
        );
        assert!(serde_json::from_str::<FeedbackSwitch>(r#"{"terms": 20}"#).is_err());
        assert!(serde_json::from_str::<FeedbackSwitch>("3").is_err());
        let bad: FeedbackSwitch = serde_json::from_str(r#"{"orig_weight": 0}"#).unwrap();
        assert!(bad.check().is_err());
        assert!(
            FeedbackSwitch::With(Feedback {
                fb_docs: 101,
                ..Feedback::default()
            })
            .check()
            .is_err()
        );
        assert_eq!(
            FeedbackSwitch::parse("5,20,0.7").unwrap(),
            FeedbackSwitch::With(Feedback {
                fb_docs: 5,
                fb_terms: 20,
                orig_weight: 0.7
            })
        );
        assert!(FeedbackSwitch::parse("5,20").is_err());
        assert!(FeedbackSwitch::parse("5,20,1.5").is_err());
        assert_eq!(FeedbackSwitch::On.resolve(None), Some(Feedback::default()));
        assert_eq!(
            serde_json::to_value(FeedbackSwitch::On).unwrap(),
            serde_json::json!(true)
        );
    }
}
