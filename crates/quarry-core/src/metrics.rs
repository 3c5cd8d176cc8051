//! Retrieval-quality metrics with trec_eval conventions.
//!
//! A run is a ranked list of document ids; judgments map document ids to graded relevance (`> 0` is
//! relevant). nDCG uses linear gain and a `log2(rank + 1)` discount, with the ideal ranking built from
//! all judged documents (Järvelin & Kekäläinen 2002; trec_eval `ndcg_cut`). A query with no relevant
//! document scores 0 on every metric, as in trec_eval.

use std::collections::HashMap;

/// Graded relevance judgments of one query.
pub type Judgments = HashMap<String, u32>;

/// nDCG at cut-off `k`.
pub fn ndcg_at_k(ranked: &[String], judged: &Judgments, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, d)| f64::from(judged.get(d).copied().unwrap_or(0)) / ((i + 2) as f64).log2())
        .sum();
    let mut ideal: Vec<u32> = judged.values().copied().filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &g)| f64::from(g) / ((i + 2) as f64).log2())
        .sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

fn is_relevant(judged: &Judgments, doc: &str) -> bool {
    judged.get(doc).is_some_and(|&g| g > 0)
}

/// Relevant documents judged for the query.
fn relevant_count(judged: &Judgments) -> usize {
    judged.values().filter(|&&g| g > 0).count()
}

/// Relevant documents among the first `k` of the run.
fn relevant_in_top(ranked: &[String], judged: &Judgments, k: usize) -> usize {
    ranked
        .iter()
        .take(k)
        .filter(|d| is_relevant(judged, d))
        .count()
}

/// Fraction of the relevant documents found in the first `k`.
pub fn recall_at_k(ranked: &[String], judged: &Judgments, k: usize) -> f64 {
    match relevant_count(judged) {
        0 => 0.0,
        relevant => relevant_in_top(ranked, judged, k) as f64 / relevant as f64,
    }
}

/// Reciprocal rank of the first relevant document within the first `k`, else 0.
pub fn mrr_at_k(ranked: &[String], judged: &Judgments, k: usize) -> f64 {
    ranked
        .iter()
        .take(k)
        .position(|d| is_relevant(judged, d))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// Precision at cut-off `k`: relevant documents among the first `k`, divided by `k` even when the
/// run is shorter (trec_eval `P_k`).
pub fn precision_at_k(ranked: &[String], judged: &Judgments, k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    relevant_in_top(ranked, judged, k) as f64 / k as f64
}

/// Average precision over the first `k` (trec_eval `map_cut_k`): the precision at the rank of
/// each relevant document retrieved in the first `k`, summed and divided by the number of
/// relevant documents (retrieved or not).
pub fn average_precision_at_k(ranked: &[String], judged: &Judgments, k: usize) -> f64 {
    let relevant = relevant_count(judged);
    if relevant == 0 {
        return 0.0;
    }
    let mut found = 0usize;
    let mut sum = 0.0;
    for (i, d) in ranked.iter().take(k).enumerate() {
        if is_relevant(judged, d) {
            found += 1;
            sum += found as f64 / (i + 1) as f64;
        }
    }
    sum / relevant as f64
}

/// The cut-offs every metric is reported at.
pub const CUTOFFS: [usize; 4] = [1, 5, 10, 100];

/// Declares [`Metrics`]: one named field per metric and cut-off, serialised under the metric's
/// name (`ndcg@10`), in the order of the names (as a map of them was), with the function that
/// computes it.
macro_rules! metrics {
    ($($field:ident $name:literal $fun:ident $k:literal,)*) => {
        /// Every metric of one query (or their means over queries) at every cut-off of
        /// [`CUTOFFS`]: nDCG, Recall, MRR, MAP and P. Serialised as an object keyed by name
        /// (`"ndcg@10"`, `"recall@100"`, `"mrr@10"`, `"map@100"`, `"p@5"`, …). A metric missing
        /// from what is read is 0, as the mean over no query is.
        #[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(default)]
        pub struct Metrics {
            $(#[serde(rename = $name)] pub $field: f64,)*
        }

        impl Metrics {
            /// Every metric's name, in serialisation order.
            pub const NAMES: [&'static str; 20] = [$($name),*];

            /// Every metric of `ranked` against `judged`.
            pub fn of(ranked: &[String], judged: &Judgments) -> Metrics {
                Metrics { $($field: $fun(ranked, judged, $k),)* }
            }

            /// The metric named `name` (`"ndcg@10"`), if there is one.
            pub fn get(&self, name: &str) -> Option<f64> {
                self.field(name).copied()
            }

            fn field(&self, name: &str) -> Option<&f64> {
                match name {
                    $($name => Some(&self.$field),)*
                    _ => None,
                }
            }

            /// Every metric with its name, in serialisation order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> {
                [$(($name, self.$field)),*].into_iter()
            }

            /// Every metric's value, in serialisation order.
            pub fn values(&self) -> impl Iterator<Item = &f64> {
                [$(&self.$field),*].into_iter()
            }

            /// `f` of each metric of `self` and `other`.
            fn zip(self, other: &Metrics, f: impl Fn(f64, f64) -> f64) -> Metrics {
                Metrics { $($field: f(self.$field, other.$field),)* }
            }
        }
    };
}

metrics! {
    map_1 "map@1" average_precision_at_k 1,
    map_10 "map@10" average_precision_at_k 10,
    map_100 "map@100" average_precision_at_k 100,
    map_5 "map@5" average_precision_at_k 5,
    mrr_1 "mrr@1" mrr_at_k 1,
    mrr_10 "mrr@10" mrr_at_k 10,
    mrr_100 "mrr@100" mrr_at_k 100,
    mrr_5 "mrr@5" mrr_at_k 5,
    ndcg_1 "ndcg@1" ndcg_at_k 1,
    ndcg_10 "ndcg@10" ndcg_at_k 10,
    ndcg_100 "ndcg@100" ndcg_at_k 100,
    ndcg_5 "ndcg@5" ndcg_at_k 5,
    p_1 "p@1" precision_at_k 1,
    p_10 "p@10" precision_at_k 10,
    p_100 "p@100" precision_at_k 100,
    p_5 "p@5" precision_at_k 5,
    recall_1 "recall@1" recall_at_k 1,
    recall_10 "recall@10" recall_at_k 10,
    recall_100 "recall@100" recall_at_k 100,
    recall_5 "recall@5" recall_at_k 5,
}

/// By name, as a map of the metrics was indexed: `m["ndcg@10"]`. Panics on an unknown name.
impl<Q: AsRef<str> + ?Sized> std::ops::Index<&Q> for Metrics {
    type Output = f64;

    fn index(&self, name: &Q) -> &f64 {
        let name = name.as_ref();
        self.field(name)
            .unwrap_or_else(|| panic!("no metric named {name:?}"))
    }
}

/// Every metric of one query at every cut-off (`ndcg@10`, `recall@100`, `mrr@10`, `map@100`,
/// `p@5`, …).
pub fn query_metrics(ranked: &[String], judged: &Judgments) -> Metrics {
    Metrics::of(ranked, judged)
}

/// The mean of each metric over queries (0 for no query).
pub fn mean_metrics<'a>(per_query: impl IntoIterator<Item = &'a Metrics>) -> Metrics {
    let mut n = 0usize;
    let mut sums = Metrics::default();
    for m in per_query {
        n += 1;
        sums = sums.zip(m, |a, b| a + b);
    }
    let n = n.max(1) as f64;
    sums.zip(&Metrics::default(), |a, _| a / n)
}

/// Orders a scored run as trec_eval does: score descending, ties by document id descending.
pub fn trec_order(run: &mut [(String, f64)]) {
    run.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
}

/// Two-sided paired randomization test (Fisher; Smucker, Allan & Carterette 2007) of the mean
/// difference `b − a` over paired per-query values: the fraction of `trials` random sign flips of
/// the differences whose mean is at least as far from 0 as the observed one, as `(hits + 1) /
/// (trials + 1)`. Deterministic for a given `seed`. `a` and `b` must have the same length.
pub fn randomization_p_value(a: &[f64], b: &[f64], trials: usize, seed: u64) -> f64 {
    assert_eq!(a.len(), b.len(), "paired values");
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    if diffs.is_empty() {
        return 1.0;
    }
    let observed = diffs.iter().sum::<f64>().abs();
    let mut rng = crate::rng::SplitMix64::new(seed);
    let mut hits = 0usize;
    for _ in 0..trials {
        let mut sum = 0.0;
        let mut bits = 0u64;
        for (i, d) in diffs.iter().enumerate() {
            if i % 64 == 0 {
                bits = rng.next_u64();
            }
            sum += if bits & (1 << (i % 64)) != 0 { *d } else { -*d };
        }
        if sum.abs() >= observed - 1e-12 {
            hits += 1;
        }
    }
    (hits + 1) as f64 / (trials + 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }
    fn qrels(p: &[(&str, u32)]) -> Judgments {
        p.iter().map(|(d, g)| (d.to_string(), *g)).collect()
    }

    #[test]
    fn hand_computed_values() {
        let j = qrels(&[("a", 2), ("b", 1), ("z", 0)]);
        let r = run(&["x", "b", "a"]);
        // DCG = 1/log2(3) + 2/log2(4) = 0.6309297535714575 + 1; IDCG = 2 + 1/log2(3)
        let expect = (1.0 / 3f64.log2() + 1.0) / (2.0 + 1.0 / 3f64.log2());
        assert!((ndcg_at_k(&r, &j, 10) - expect).abs() < 1e-12);
        assert!(
            (ndcg_at_k(&r, &j, 2) - (1.0 / 3f64.log2()) / (2.0 + 1.0 / 3f64.log2())).abs() < 1e-12
        );
        assert_eq!(recall_at_k(&r, &j, 2), 0.5);
        assert_eq!(recall_at_k(&r, &j, 100), 1.0);
        assert_eq!(mrr_at_k(&r, &j, 10), 0.5);
        assert_eq!(mrr_at_k(&r, &j, 1), 0.0);
        // perfect ranking, k larger than the run
        assert!((ndcg_at_k(&run(&["a", "b"]), &j, 100) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn no_relevant_documents_scores_zero() {
        let j = qrels(&[("z", 0)]);
        let r = run(&["z"]);
        assert_eq!(ndcg_at_k(&r, &j, 10), 0.0);
        assert_eq!(recall_at_k(&r, &j, 10), 0.0);
        assert_eq!(mrr_at_k(&r, &j, 10), 0.0);
        assert_eq!(ndcg_at_k(&[], &qrels(&[("a", 1)]), 10), 0.0);
        assert_eq!(average_precision_at_k(&r, &j, 10), 0.0);
        assert_eq!(precision_at_k(&r, &j, 1), 0.0);
    }

    /// The committed fixture: a TREC run with ties, graded judgments, a query without relevant
    /// documents and cut-offs beyond the run, against values computed by hand (the formulas are
    /// written out next to each).
    #[test]
    fn fixture_runs_match_hand_computed_values() {
        let run_text = include_str!("../tests/fixtures/metrics/run.trec");
        let qrels_text = include_str!("../tests/fixtures/metrics/qrels.tsv");
        let mut runs: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
        for line in run_text.lines().filter(|l| !l.trim().is_empty()) {
            let c: Vec<&str> = line.split_whitespace().collect();
            runs.entry(c[0].into())
                .or_default()
                .push((c[2].into(), c[4].parse().unwrap()));
        }
        let mut qrels_by: BTreeMap<String, Judgments> = BTreeMap::new();
        for line in qrels_text.lines().skip(1) {
            let c: Vec<&str> = line.split('\t').collect();
            qrels_by
                .entry(c[0].into())
                .or_default()
                .insert(c[1].into(), c[2].parse().unwrap());
        }
        let ranked = |q: &str| -> Vec<String> {
            let mut r = runs[q].clone();
            trec_order(&mut r);
            r.into_iter().map(|(d, _)| d).collect()
        };
        let l = |r: f64| (r + 1.0).log2();
        // q1: scores d1 3.0, d2 2.0, d3 2.0 (tie: trec_eval puts d3 before d2), d4 1.0.
        // judged: d2 = 2, d4 = 1, d9 = 3 (never retrieved), d3 = 0.
        let r1 = ranked("q1");
        assert_eq!(r1, ["d1", "d3", "d2", "d4"]);
        let j1 = &qrels_by["q1"];
        let dcg = 2.0 / l(3.0) + 1.0 / l(4.0);
        let idcg10 = 3.0 / l(1.0) + 2.0 / l(2.0) + 1.0 / l(3.0);
        let m = query_metrics(&r1, j1);
        let close = |name: &str, want: f64| {
            assert!(
                (m[name] - want).abs() < 1e-9,
                "{name}: {} vs {want}",
                m[name]
            );
        };
        close("ndcg@10", dcg / idcg10);
        close("ndcg@100", dcg / idcg10);
        close("ndcg@1", 0.0);
        close("ndcg@5", dcg / idcg10);
        close("recall@1", 0.0);
        close("recall@5", 2.0 / 3.0);
        close("mrr@10", 1.0 / 3.0);
        close("mrr@1", 0.0);
        close("p@1", 0.0);
        close("p@5", 2.0 / 5.0);
        close("p@100", 2.0 / 100.0);
        close("map@10", (1.0 / 3.0 + 2.0 / 4.0) / 3.0);
        close("map@1", 0.0);
        // q2: the first document is the only relevant one (grade 1)
        let r2 = ranked("q2");
        let m2 = query_metrics(&r2, &qrels_by["q2"]);
        for k in CUTOFFS {
            assert!((m2[&format!("ndcg@{k}")] - 1.0).abs() < 1e-9);
            assert!((m2[&format!("map@{k}")] - 1.0).abs() < 1e-9);
            assert!((m2[&format!("p@{k}")] - 1.0 / k as f64).abs() < 1e-9);
        }
        // q3: judged, but nothing relevant: every metric 0
        let m3 = query_metrics(&ranked("q3"), &qrels_by["q3"]);
        assert!(m3.values().all(|v| *v == 0.0), "{m3:?}");
        // means over the three queries
        let mean = mean_metrics([&m, &m2, &m3]);
        assert!((mean["ndcg@10"] - (dcg / idcg10 + 1.0) / 3.0).abs() < 1e-9);
        assert!((mean["p@5"] - (0.4 + 0.2) / 3.0).abs() < 1e-9);
    }

    #[test]
    fn metrics_serialise_by_name_as_a_map_of_them_did() {
        let m = query_metrics(&run(&["x", "b", "a"]), &qrels(&[("a", 2), ("b", 1)]));
        let as_map: BTreeMap<&str, f64> = m.iter().collect();
        assert_eq!(as_map.len(), 20);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            serde_json::to_string(&as_map).unwrap()
        );
        assert_eq!(
            serde_json::from_str::<Metrics>(&serde_json::to_string(&m).unwrap()).unwrap(),
            m
        );
        assert_eq!(m.get("ndcg@10"), Some(m.ndcg_10));
        assert_eq!(m["recall@100"], m.recall_100);
        assert_eq!(m.get("ndcg@11"), None);
    }

    #[test]
    fn randomization_test_separates_consistent_differences_from_noise() {
        // identical systems: every flip ties the observed 0, p = 1
        let a = [0.5, 0.2, 0.9, 0.1];
        assert_eq!(randomization_p_value(&a, &a, 999, 7), 1.0);
        // b better on all 20 queries by 0.1: only 2 of 2^20 sign patterns are as extreme
        let a: Vec<f64> = (0..20).map(|i| i as f64 / 40.0).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 0.1).collect();
        let p = randomization_p_value(&a, &b, 9999, 7);
        assert!(p < 0.001, "{p}");
        // one query +0.3, one −0.3: a zero mean difference, p = 1
        assert_eq!(randomization_p_value(&[0.0, 0.3], &[0.3, 0.0], 999, 7), 1.0);
        // deterministic for a seed
        let c: Vec<f64> = a
            .iter()
            .enumerate()
            .map(|(i, x)| x + if i % 3 == 0 { 0.05 } else { -0.01 })
            .collect();
        assert_eq!(
            randomization_p_value(&a, &c, 999, 1),
            randomization_p_value(&a, &c, 999, 1)
        );
        let p = randomization_p_value(&a, &c, 4999, 1);
        assert!(p > 0.01 && p < 1.0, "{p}");
    }
}
