//! splitmix64 (Steele, Lea & Flood 2014): a tiny, well-mixed generator for coin flips and jitter,
//! where a dependency would be more than the job needs. Not for anything secret.

/// The increment between successive states.
pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The output of splitmix64 for a state already advanced by [`GAMMA`].
pub fn mix(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A sequential splitmix64 generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix(self.0)
    }

    /// Uniform in `[0, 1)`: the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Two independent standard normal draws (Box–Muller).
    pub fn gaussians(&mut self) -> (f64, f64) {
        // 1 - next_f64() is in (0, 1]: its logarithm is finite.
        let r = (-2.0 * (1.0 - self.next_f64()).ln()).sqrt();
        let theta = std::f64::consts::TAU * self.next_f64();
        (r * theta.cos(), r * theta.sin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // splitmix64 from seed 0 (reference C implementation, Vigna)
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }
}
