//! Vectors that look like real embeddings without a model: each is a random mix of two *base*
//! vectors plus Gaussian noise, `normalize(a·bᵢ + (1 − a)·bⱼ + σ·g)`, with `bᵢ`, `bⱼ` drawn from
//! the bases, `a` uniform in [[`MIX_MIN`], 1] and `g` standard normal per dimension.
//!
//! The bases are SciFact's reference all-MiniLM-L6-v2 vectors when they are at hand, so generated
//! vectors keep the shape of that model's space (its anisotropy, its clusters of topics); else
//! [`SYNTHETIC_CENTRES`] random unit vectors, a clustered Gaussian model. σ is calibrated (by
//! bisection on a fixed sample) so that a vector's mean cosine to its first base is
//! [`TARGET_COSINE`]: near its base like a paraphrase, not a copy of it.

use super::draw::{Draw, Purpose};
use anyhow::{Context, bail};
use rayon::prelude::*;
use std::path::Path;

/// Dimensions of generated vectors when there are no reference vectors (all-MiniLM-L6-v2's).
pub(super) const SYNTHETIC_DIMENSIONS: usize = 384;
/// Random centres of the synthetic model.
pub(super) const SYNTHETIC_CENTRES: usize = 2000;
/// The mean cosine of a generated vector to its first base that σ is chosen for.
pub(super) const TARGET_COSINE: f64 = 0.85;
/// The least weight of the first base.
const MIX_MIN: f64 = 0.5;
/// Vectors drawn to calibrate σ.
const CALIBRATION_SAMPLES: u64 = 500;
/// Bisection steps of the calibration (σ to within 2⁻²⁴).
const CALIBRATION_STEPS: usize = 24;

/// The base vectors, unit length, one after the other.
pub(super) struct Bases {
    pub(super) dims: usize,
    rows: Vec<f32>,
    /// Where they come from, as the report says it.
    pub(super) source: String,
}

impl Bases {
    /// The vectors of a Parquet vector file (`id`, `vector`), such as SciFact's reference vectors.
    pub(super) fn from_parquet(path: &Path) -> anyhow::Result<Bases> {
        let all = quarry_index::ingest::parquet::read_all(path)
            .with_context(|| format!("cannot read the reference vectors {}", path.display()))?;
        let Some(dims) = all.first().map(|(_, v)| v.len()) else {
            bail!("{} holds no vectors", path.display());
        };
        let mut rows = Vec::with_capacity(all.len() * dims);
        for (id, mut v) in all.iter().map(|(id, v)| (id, v.clone())) {
            if v.len() != dims {
                bail!(
                    "{}: vector {id} has {} dimensions, not {dims}",
                    path.display(),
                    v.len()
                );
            }
            quarry_core::embed::normalize(&mut v);
            rows.extend_from_slice(&v);
        }
        Ok(Bases {
            dims,
            source: format!(
                "SciFact all-MiniLM-L6-v2 reference vectors ({} bases) mixed with noise",
                all.len()
            ),
            rows,
        })
    }

    /// [`SYNTHETIC_CENTRES`] random unit vectors of [`SYNTHETIC_DIMENSIONS`].
    pub(super) fn synthetic(seed: u64) -> Bases {
        let dims = SYNTHETIC_DIMENSIONS;
        let mut rows = vec![0f32; SYNTHETIC_CENTRES * dims];
        rows.par_chunks_mut(dims).enumerate().for_each(|(k, row)| {
            let mut d = Draw::stream(seed, Purpose::SyntheticBases, k as u64);
            fill_gaussian(&mut d, row, |_, g| g as f32);
            quarry_core::embed::normalize(row);
        });
        Bases {
            dims,
            rows,
            source: format!(
                "synthetic clusters ({SYNTHETIC_CENTRES} random centres, {dims} dimensions)"
            ),
        }
    }

    fn count(&self) -> usize {
        self.rows.len() / self.dims
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.dims..(i + 1) * self.dims]
    }
}

/// Fills `out[k]` with `f(k, g)` for standard normal draws `g`.
fn fill_gaussian(d: &mut Draw, out: &mut [f32], f: impl Fn(usize, f64) -> f32) {
    let mut k = 0;
    while k < out.len() {
        let (g0, g1) = d.gaussians();
        out[k] = f(k, g0);
        if k + 1 < out.len() {
            out[k + 1] = f(k + 1, g1);
        }
        k += 2;
    }
}

/// The generator of vectors over a set of bases, with its noise level.
pub(super) struct Mixer<'a> {
    bases: &'a Bases,
    /// Standard deviation of the noise, per dimension.
    pub(super) sigma: f64,
}

impl<'a> Mixer<'a> {
    /// The mixer whose vectors are at a mean cosine of [`TARGET_COSINE`] to their first base.
    pub(super) fn calibrated(bases: &'a Bases, seed: u64) -> Mixer<'a> {
        let mean_at = |sigma: f64| {
            let m = Mixer { bases, sigma };
            let cosines: Vec<f64> = (0..CALIBRATION_SAMPLES)
                .into_par_iter()
                .map(|k| {
                    let mut out = vec![0f32; bases.dims];
                    m.vector(&mut Draw::stream(seed, Purpose::Calibration, k), &mut out)
                })
                .collect();
            // summed in order, so the calibration (and every vector) is the same on every run
            cosines.iter().sum::<f64>() / cosines.len() as f64
        };
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..CALIBRATION_STEPS {
            let mid = (lo + hi) / 2.0;
            if mean_at(mid) > TARGET_COSINE {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Mixer {
            bases,
            sigma: (lo + hi) / 2.0,
        }
    }

    /// Writes one vector (unit length) into `out` and returns its cosine to its first base.
    pub(super) fn vector(&self, d: &mut Draw, out: &mut [f32]) -> f64 {
        let n = self.bases.count();
        let (bi, bj) = (self.bases.row(d.below(n)), self.bases.row(d.below(n)));
        let a = MIX_MIN + (1.0 - MIX_MIN) * d.unit();
        let sigma = self.sigma;
        fill_gaussian(d, out, |k, g| {
            (a * f64::from(bi[k]) + (1.0 - a) * f64::from(bj[k]) + sigma * g) as f32
        });
        quarry_core::embed::normalize(out);
        f64::from(quarry_index::vectors::dot(out, bi))
    }

    /// `count` vectors of the streams of `purpose`, one after the other, and their mean cosine to
    /// their first base.
    pub(super) fn generate(&self, seed: u64, purpose: Purpose, count: usize) -> (Vec<f32>, f64) {
        let dims = self.bases.dims;
        let mut all = vec![0f32; count * dims];
        let cosines: Vec<f64> = all
            .par_chunks_mut(dims)
            .enumerate()
            .map(|(k, out)| self.vector(&mut Draw::stream(seed, purpose, k as u64), out))
            .collect();
        let mean = cosines.iter().sum::<f64>() / count.max(1) as f64;
        (all, mean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrated_vectors_sit_near_their_base() {
        let bases = Bases::synthetic(5);
        let m = Mixer::calibrated(&bases, 5);
        assert!(m.sigma > 0.0 && m.sigma < 1.0, "{}", m.sigma);
        let (v, mean) = m.generate(5, Purpose::DocVector, 2000);
        assert!((mean - TARGET_COSINE).abs() < 0.01, "{mean}");
        for row in v.chunks(bases.dims).take(50) {
            let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4);
        }
        // the same seed gives the same vectors, bit for bit
        let (again, _) = m.generate(5, Purpose::DocVector, 2000);
        assert!(v == again);
    }
}
