//! Summary statistics of measured samples: the one percentile every report of quarry uses (eval
//! latencies, the benches, the load test), so their figures are computed the same way.

/// The `p`-th percentile (0 to 100) of `sorted` (ascending) by the nearest-rank method: the
/// smallest value with at least `p` % of the samples at or below it, that is the value at rank
/// `⌈p / 100 · n⌉` (1-based, at least 1). `p = 100` is the maximum; an empty slice gives 0.
///
/// Nearest rank always answers a measured value (no interpolation between two samples). Written
/// here rather than taken from a statistics crate: it is three lines, and none of the crates
/// already in the tree provides it.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_by_hand() {
        // n = 10: p50 → rank ⌈5⌉ = 5, p95 → ⌈9.5⌉ = 10, p90 → ⌈9⌉ = 9, p1 → ⌈0.1⌉ = 1.
        let xs: Vec<f64> = (1..=10).map(|i| f64::from(i) * 10.0).collect();
        assert_eq!(percentile(&xs, 50.0), 50.0);
        assert_eq!(percentile(&xs, 95.0), 100.0);
        assert_eq!(percentile(&xs, 90.0), 90.0);
        assert_eq!(percentile(&xs, 1.0), 10.0);
        assert_eq!(percentile(&xs, 0.0), 10.0);
        assert_eq!(percentile(&xs, 100.0), 100.0);
        // n = 3: p50 → ⌈1.5⌉ = 2, p99 → ⌈2.97⌉ = 3.
        assert_eq!(percentile(&[1.0, 2.0, 7.0], 50.0), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 7.0], 99.0), 7.0);
        assert_eq!(percentile(&[4.0], 50.0), 4.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
