//! Sampling from a discrete distribution in constant time: Walker's alias method, in Vose's
//! numerically stable construction (M. D. Vose, "A linear algorithm for generating random numbers
//! with a given distribution", IEEE TSE 17(9), 1991).
//!
//! Each of the `n` columns holds a probability `prob[i]` and an alias: a sample picks a column
//! uniformly, then keeps it with probability `prob[i]` or takes its alias. Building is O(n).

use super::draw::Draw;

/// A distribution over `0..n`, sampled in O(1).
pub(super) struct Alias {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl Alias {
    /// The distribution proportional to `weights` (finite, non-negative, not all zero).
    pub(super) fn new(weights: &[f64]) -> Alias {
        let n = weights.len();
        assert!(n > 0 && n <= u32::MAX as usize, "alias: 1 to 2^32 weights");
        let total: f64 = weights.iter().sum();
        assert!(
            total > 0.0 && total.is_finite(),
            "alias: weights must sum to a positive number"
        );
        // Each column's share scaled so that the mean is 1.
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut prob = vec![1.0; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Whatever is left is 1 up to rounding.
        for i in small.into_iter().chain(large) {
            prob[i] = 1.0;
        }
        Alias { prob, alias }
    }

    /// One sample.
    pub(super) fn sample(&self, d: &mut Draw) -> usize {
        let i = d.below(self.prob.len());
        if d.unit() < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::bench::draw::Purpose;

    #[test]
    fn frequencies_follow_the_weights() {
        let weights = [1.0, 2.0, 3.0, 4.0, 0.0, 10.0];
        let a = Alias::new(&weights);
        let mut d = Draw::stream(3, Purpose::Calibration, 0);
        let n = 400_000;
        let mut counts = [0usize; 6];
        for _ in 0..n {
            counts[a.sample(&mut d)] += 1;
        }
        let total: f64 = weights.iter().sum();
        for (c, w) in counts.iter().zip(weights) {
            let expected = w / total;
            let got = *c as f64 / n as f64;
            assert!((got - expected).abs() < 0.005, "{counts:?}");
        }
        assert_eq!(counts[4], 0, "a zero weight is never drawn");
    }

    #[test]
    fn one_weight_is_always_drawn() {
        let a = Alias::new(&[0.3]);
        let mut d = Draw::stream(3, Purpose::Calibration, 1);
        assert!((0..100).all(|_| a.sample(&mut d) == 0));
    }
}
