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

/// Fraction of the relevant documents found in the first `k`.
pub fn recall_at_k(ranked: &[String], judged: &Judgments, k: usize) -> f64 {
    let relevant = judged.values().filter(|&&g| g > 0).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|d| judged.get(*d).is_some_and(|&g| g > 0))
        .count();
    found as f64 / relevant as f64
}

/// Reciprocal rank of the first relevant document within the first `k`, else 0.
pub fn mrr_at_k(ranked: &[String], judged: &Judgments, k: usize) -> f64 {
    ranked
        .iter()
        .take(k)
        .position(|d| judged.get(d).is_some_and(|&g| g > 0))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
