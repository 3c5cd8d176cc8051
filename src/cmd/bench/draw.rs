//! Random draws for the generated corpus: independent, reproducible streams over
//! [`quarry_core::rng::SplitMix64`], one per (seed, purpose, item), so that item `k` of a purpose
//! is the same whatever order (or thread) draws it, and a query never shares draws with a
//! document. Uniforms are the 53 high bits of a draw; Gaussians come from the Box–Muller
//! transform.

use quarry_core::rng::{GAMMA, SplitMix64, mix};

/// What a stream of draws is for: each purpose has its own streams.
#[derive(Debug, Clone, Copy)]
pub(super) enum Purpose {
    DocText = 1,
    DocVector = 2,
    DocAcl = 3,
    QueryText = 4,
    QueryVector = 5,
    Calibration = 6,
    SyntheticBases = 7,
}

/// One stream of draws.
pub(super) struct Draw(SplitMix64);

impl Draw {
    /// The stream of item `index` for `purpose` under `seed`.
    pub(super) fn stream(seed: u64, purpose: Purpose, index: u64) -> Draw {
        let p = mix(seed.wrapping_add((purpose as u64).wrapping_mul(GAMMA)));
        Draw(SplitMix64::new(mix(p ^ index.wrapping_mul(GAMMA))))
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        self.0.next_f64()
    }

    /// Uniform in `0..n` (`n` > 0), by the multiply-high method (bias below 2⁻³² for the sizes
    /// used here).
    pub(super) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.0.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub(super) fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// Two independent standard normal draws (Box–Muller).
    pub(super) fn gaussians(&mut self) -> (f64, f64) {
        self.0.gaussians()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<usize> = (0..5)
            .map(|_| Draw::stream(7, Purpose::DocText, 3).below(1000))
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Draw::stream(7, Purpose::DocText, 3);
        let mut y = Draw::stream(7, Purpose::QueryText, 3);
        let mut z = Draw::stream(7, Purpose::DocText, 4);
        let xs: Vec<usize> = (0..8).map(|_| x.below(1 << 30)).collect();
        let ys: Vec<usize> = (0..8).map(|_| y.below(1 << 30)).collect();
        let zs: Vec<usize> = (0..8).map(|_| z.below(1 << 30)).collect();
        assert_ne!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn moments_are_about_right() {
        let mut d = Draw::stream(1, Purpose::Calibration, 0);
        let n = 200_000;
        let (mut sum, mut sq, mut usum) = (0.0, 0.0, 0.0);
        for _ in 0..n / 2 {
            let (a, b) = d.gaussians();
            sum += a + b;
            sq += a * a + b * b;
            usum += d.unit();
        }
        let mean = sum / n as f64;
        let var = sq / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
        assert!((usum / (n / 2) as f64 - 0.5).abs() < 0.01);
        assert!((0..1000).all(|_| d.between(40, 60) >= 40));
        assert!((0..1000).all(|_| d.between(40, 60) <= 60));
    }
}
