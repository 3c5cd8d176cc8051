//! Okapi BM25 (Robertson et al., "Okapi at TREC-3", 1994; Robertson & Zaragoza, "The
//! Probabilistic Relevance Framework: BM25 and Beyond", 2009), the formula and its parameters.
//!
//! The score of a chunk `d` for a query `q` is a sum over the distinct terms `t` of `q`:
//!
//! ```text
//! score(d, q) = Σ_t  qw(t) · idf(t) · tf·(k1 + 1) / (tf + k1·(1 − b + b·dl/avgdl))
//! idf(t)      = ln(1 + (N − n + 0.5) / (n + 0.5))
//! qw(t)       = qtf·(k3 + 1) / (k3 + qtf)
//! ```
//!
//! with `tf` the term's count in `d`, `dl` the length of `d` in tokens, `avgdl` the mean length,
//! `N` the number of chunks and `n` those holding `t` (Lucene's non-negative idf, as tantivy and
//! bm25s use), and `qtf` the term's count in the query. `k1` saturates term frequency (0: a
//! term counts once), `b` normalises by length (0: none, 1: full), `k3` saturates query term
//! frequency (0: a term counts once however often the query repeats it; large: linear, as in
//! bm25s, which sums a score per query token).
//!
//! Defaults were chosen on the *train* splits of SciFact and CISI by the mean of their nDCG@10
//! (BENCHMARKS.md, "BM25 parameters").

use crate::error::{Error, Result};
use crate::feedback::{Feedback, FeedbackSwitch};

/// Default of [`Bm25Params::k1`].
pub const DEFAULT_K1: f32 = 2.0;
/// Default of [`Bm25Params::b`].
pub const DEFAULT_B: f32 = 1.0;
/// Default of [`Bm25Params::k3`].
pub const DEFAULT_K3: f32 = 1000.0;

/// Largest `k1` and `k3` accepted (a larger value behaves as this one within float precision).
pub const MAX_K: f32 = 1000.0;

/// The parameters of BM25 scoring of a collection (`bm25` in its settings and `[bm25]` in the
/// configuration).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Bm25Params {
    /// Term-frequency saturation, 0 to [`MAX_K`].
    #[schema(minimum = 0, maximum = 1000)]
    pub k1: f32,
    /// Length normalisation, 0 to 1.
    #[schema(minimum = 0, maximum = 1)]
    pub b: f32,
    /// Query term-frequency saturation, 0 to [`MAX_K`].
    #[schema(minimum = 0, maximum = 1000)]
    pub k3: f32,
    /// Pseudo-relevance feedback (query expansion, [`crate::feedback`]) for every query that
    /// does not say otherwise; `None` (the default, and every collection made before it existed):
    /// off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Feedback>,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Bm25Params {
            k1: DEFAULT_K1,
            b: DEFAULT_B,
            k3: DEFAULT_K3,
            feedback: None,
        }
    }
}

/// Some of the parameters, the others kept: a change of a collection's scoring
/// (`PATCH /v1/collections/{c}`'s `bm25`, the flags of `quarry collections create|set`).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bm25Patch {
    #[schema(minimum = 0, maximum = 1000)]
    pub k1: Option<f32>,
    #[schema(minimum = 0, maximum = 1)]
    pub b: Option<f32>,
    #[schema(minimum = 0, maximum = 1000)]
    pub k3: Option<f32>,
    /// Feedback on (`true`, the collection's parameters or the defaults), off (`false`), or
    /// these parameters.
    #[serde(default)]
    pub feedback: Option<FeedbackSwitch>,
}

impl Bm25Patch {
    /// `base` with the values this patch gives (unchecked: [`Bm25Params::check`] it).
    pub fn apply(self, base: Bm25Params) -> Bm25Params {
        Bm25Params {
            k1: self.k1.unwrap_or(base.k1),
            b: self.b.unwrap_or(base.b),
            k3: self.k3.unwrap_or(base.k3),
            feedback: match self.feedback {
                Some(switch) => switch.resolve(base.feedback),
                None => base.feedback,
            },
        }
    }
}

impl Bm25Params {
    /// The parameters, checked: `k1` and `k3` in `0..=MAX_K`, `b` in `0..=1`.
    pub fn new(k1: f32, b: f32, k3: f32) -> Result<Self> {
        let p = Bm25Params {
            k1,
            b,
            k3,
            feedback: None,
        };
        p.check()?;
        Ok(p)
    }

    /// Checks parameters read from elsewhere (settings, configuration).
    pub fn check(&self) -> Result<()> {
        let in_range = |x: f32, hi: f32| x.is_finite() && (0.0..=hi).contains(&x);
        if !in_range(self.k1, MAX_K) {
            return Err(Error::invalid(
                "bm25.k1",
                format!("{} is not in 0..={MAX_K}", self.k1),
            ));
        }
        if !in_range(self.b, 1.0) {
            return Err(Error::invalid(
                "bm25.b",
                format!("{} is not in 0..=1", self.b),
            ));
        }
        if !in_range(self.k3, MAX_K) {
            return Err(Error::invalid(
                "bm25.k3",
                format!("{} is not in 0..={MAX_K}", self.k3),
            ));
        }
        if let Some(f) = &self.feedback {
            f.check()?;
        }
        Ok(())
    }

    /// `k1·(1 − b + b·dl/avgdl)`: the length part of the denominator, for a chunk of `dl` tokens.
    pub fn length_norm(&self, dl: f32, avgdl: f32) -> f32 {
        let ratio = if avgdl > 0.0 { dl / avgdl } else { 1.0 };
        self.k1 * (1.0 - self.b + self.b * ratio)
    }

    /// The term-frequency factor `tf·(k1 + 1) / (tf + norm)`, `norm` from [`Self::length_norm`].
    pub fn tf_factor(&self, tf: f32, norm: f32) -> f32 {
        if tf <= 0.0 {
            return 0.0;
        }
        tf * (self.k1 + 1.0) / (tf + norm)
    }

    /// The query-term weight `qtf·(k3 + 1) / (k3 + qtf)` of a term the query holds `qtf` times.
    pub fn query_weight(&self, qtf: u32) -> f32 {
        let qtf = qtf.max(1) as f32;
        qtf * (self.k3 + 1.0) / (self.k3 + qtf)
    }

    /// One term's score in one chunk: `idf · tf_factor`.
    pub fn term_score(&self, idf: f32, tf: f32, dl: f32, avgdl: f32) -> f32 {
        idf * self.tf_factor(tf, self.length_norm(dl, avgdl))
    }
}

/// `ln(1 + (N − n + 0.5) / (n + 0.5))` for a term in `n` of `total` chunks (`n` is capped at
/// `total`).
pub fn idf(n: u64, total: u64) -> f32 {
    let n = n.min(total);
    let x = ((total - n) as f64 + 0.5) / (n as f64 + 0.5);
    (1.0 + x).ln() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn hand_computed_scores() {
        let p = Bm25Params::new(1.2, 0.75, 0.0).unwrap();
        // tf 2, dl 10, avgdl 5: norm = 1.2 · (0.25 + 0.75 · 2) = 2.1; 2 · 2.2 / 4.1
        assert!(close(p.term_score(1.0, 2.0, 10.0, 5.0), 4.4 / 4.1));
        // b = 0: the length does not matter
        let p = Bm25Params::new(1.5, 0.0, 0.0).unwrap();
        assert!(close(p.term_score(2.0, 1.0, 100.0, 5.0), 2.0 * 2.5 / 2.5));
        // b = 1: norm = k1 · dl / avgdl
        let p = Bm25Params::new(2.0, 1.0, 0.0).unwrap();
        assert!(close(p.term_score(1.0, 3.0, 2.0, 4.0), 3.0 * 3.0 / 4.0));
        // k1 = 0: presence only
        let p = Bm25Params::new(0.0, 0.75, 0.0).unwrap();
        assert!(close(p.term_score(1.5, 7.0, 9.0, 3.0), 1.5));
        assert_eq!(p.tf_factor(0.0, 1.0), 0.0);
    }

    #[test]
    fn query_weight_saturates_from_once_to_linear() {
        let once = Bm25Params::new(1.2, 0.75, 0.0).unwrap();
        assert!(close(once.query_weight(3), 1.0));
        let linear = Bm25Params::new(1.2, 0.75, MAX_K).unwrap();
        assert!((linear.query_weight(3) - 3.0).abs() < 0.01);
        let some = Bm25Params::new(1.2, 0.75, 1.0).unwrap();
        assert!(close(some.query_weight(1), 1.0));
        assert!(close(some.query_weight(3), 1.5));
    }

    #[test]
    fn idf_is_lucenes() {
        assert!(close(idf(1, 2), 2f32.ln()));
        assert!(idf(10, 10) > 0.0);
        assert!(close(idf(20, 10), idf(10, 10)));
    }

    #[test]
    fn out_of_range_parameters_are_refused() {
        assert!(Bm25Params::new(-0.1, 0.5, 0.0).is_err());
        assert!(Bm25Params::new(1.0, 1.1, 0.0).is_err());
        assert!(Bm25Params::new(f32::NAN, 0.5, 0.0).is_err());
        assert!(Bm25Params::new(1.0, 0.5, MAX_K + 1.0).is_err());
        assert!(Bm25Params::default().check().is_ok());
        let p: Bm25Params = serde_json::from_str(r#"{"k1": 0.9}"#).unwrap();
        assert_eq!(p.b, DEFAULT_B);
        assert!(serde_json::from_str::<Bm25Params>(r#"{"k2": 1}"#).is_err());
    }

    #[test]
    fn feedback_is_stored_with_the_parameters_and_patched() {
        use crate::feedback::{Feedback, FeedbackSwitch};
        // stored parameters from before feedback existed: off
        let old: Bm25Params = serde_json::from_str(r#"{"k1": 2, "b": 1, "k3": 1000}"#).unwrap();
        assert_eq!(old.feedback, None);
        assert_eq!(old, Bm25Params::default());
        // and off is not written, so an older reader still reads them
        assert!(!serde_json::to_string(&old).unwrap().contains("feedback"));
        let patch: Bm25Patch = serde_json::from_str(r#"{"feedback": true}"#).unwrap();
        let on = patch.apply(old);
        assert_eq!(on.feedback, Some(Feedback::default()));
        assert_eq!((on.k1, on.b, on.k3), (old.k1, old.b, old.k3));
        let back: Bm25Params = serde_json::from_str(&serde_json::to_string(&on).unwrap()).unwrap();
        assert_eq!(back, on);
        // a patch without `feedback` keeps it; `false` turns it off
        let k1: Bm25Patch = serde_json::from_str(r#"{"k1": 1.5}"#).unwrap();
        assert_eq!(k1.apply(on).feedback, on.feedback);
        let off: Bm25Patch = serde_json::from_str(r#"{"feedback": false}"#).unwrap();
        assert_eq!(off.apply(on).feedback, None);
        let with = Bm25Patch {
            feedback: Some(FeedbackSwitch::With(Feedback {
                orig_weight: 2.0,
                ..Feedback::default()
            })),
            ..Bm25Patch::default()
        };
        assert!(with.apply(old).check().is_err());
    }
}
