//! The fused element-wise steps of the BERT encoder ([`crate::bert`]), as candle custom ops over
//! f32 rows: each reads its inputs once and writes one output, where the tensor ops they replace
//! wrote an intermediate tensor per step.
//!
//! - [`BiasGelu`]: `gelu(y + bias)`, the feed-forward's first half after its matrix product;
//! - [`BiasResidualNorm`]: `layer_norm(y + bias + residual)`, the end of the attention block and
//!   of the feed-forward.
//!
//! `candle_nn::Linear` adds its bias as a separate broadcast pass over the product; on a
//! `2048 × 1536` product that pass took as long as the product itself (BENCHMARKS.md, "MiniLM
//! on the CPU"). The rows are split over rayon's threads, and each loop is compiled for the
//! widest SIMD the CPU has ([`simd`]). The maths is the tensor ops' (the layer norm's variance
//! as `E[x²] − E[x]²` in f32, as `candle_nn::ops::layer_norm` computes it), summed in another
//! order, so results differ from them by f32 rounding only.

use candle_core::{CpuStorage, Layout, Result, Shape};
use rayon::prelude::*;

/// Values a thread takes at a time, in whole rows (a layer's activations are ~100,000 to a few
/// million values).
const TASK_VALUES: usize = 16 * 1024;

/// Runs `f` compiled for the widest SIMD this CPU has (`pulp` builds it for AVX-512 and AVX2
/// and picks at run time; the build itself targets SSE2).
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    static ARCH: std::sync::LazyLock<pulp::Arch> = std::sync::LazyLock::new(pulp::Arch::new);
    ARCH.dispatch(f)
}

/// The contiguous f32 values of a custom op's input, or an error naming the op.
fn values<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 only")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: a contiguous tensor only")
    };
    Ok(&data[start..end])
}

/// The contiguous f32 values of an in-place op's tensor, or an error naming the op.
fn values_mut<'a>(op: &str, storage: &'a mut CpuStorage, layout: &Layout) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 only")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: a contiguous tensor only")
    };
    Ok(&mut data[start..end])
}

/// Rows of `width` per task, at least one.
fn task_rows(width: usize) -> usize {
    (TASK_VALUES / width.max(1)).max(1)
}

/// The last dimension of `layout`, checked against the length of a per-column parameter.
fn width(op: &str, layout: &Layout, params: usize) -> Result<usize> {
    let width = layout.shape().dims().last().copied().unwrap_or(0);
    if width != params || width == 0 {
        candle_core::bail!("{op}: rows of {width} values against {params} parameters");
    }
    Ok(width)
}

/// `gelu(y + bias)` of each row `y`, the exact GELU with [`erf`].
pub(crate) struct BiasGelu {
    pub(crate) bias: Vec<f32>,
}

impl candle_core::InplaceOp1 for BiasGelu {
    fn name(&self) -> &'static str {
        "quarry-bias-gelu"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let width = width(self.name(), layout, self.bias.len())?;
        let ys = values_mut(self.name(), storage, layout)?;
        ys.par_chunks_mut(width * task_rows(width)).for_each(|ys| {
            simd(
                #[inline(always)]
                || {
                    for ys in ys.chunks_exact_mut(width) {
                        for (y, &b) in ys.iter_mut().zip(&self.bias) {
                            *y = gelu(*y + b);
                        }
                    }
                },
            )
        });
        Ok(())
    }
}

/// `layer_norm(y + bias + residual)` of each row: `(t − mean) / √(var + eps) · gamma + beta`.
pub(crate) struct BiasResidualNorm {
    pub(crate) bias: Vec<f32>,
    pub(crate) gamma: Vec<f32>,
    pub(crate) beta: Vec<f32>,
    pub(crate) eps: f32,
}

impl candle_core::InplaceOp2 for BiasResidualNorm {
    fn name(&self) -> &'static str {
        "quarry-bias-residual-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let width = width(self.name(), l1, self.bias.len())?;
        if l1.shape() != l2.shape() || self.gamma.len() != width || self.beta.len() != width {
            candle_core::bail!(
                "{}: shapes {:?} and {:?} with {} norm weights",
                self.name(),
                l1.shape(),
                l2.shape(),
                self.gamma.len()
            );
        }
        let xs = values(self.name(), s2, l2)?;
        let ys = values_mut(self.name(), s1, l1)?;
        let chunk = width * task_rows(width);
        ys.par_chunks_mut(chunk)
            .zip(xs.par_chunks(chunk))
            .for_each(|(ys, xs)| {
                simd(
                    #[inline(always)]
                    || {
                        for (ys, xs) in ys.chunks_exact_mut(width).zip(xs.chunks_exact(width)) {
                            self.row(ys, xs);
                        }
                    },
                )
            });
        Ok(())
    }
}

impl BiasResidualNorm {
    /// One row: `ys` becomes the normalised `ys + bias + xs`.
    #[inline(always)]
    fn row(&self, ys: &mut [f32], xs: &[f32]) {
        // sums in LANES independent accumulators so the loop vectorises (a single f32
        // accumulator is a serial chain the compiler may not reorder)
        let (mut sum, mut sum2) = ([0f32; LANES], [0f32; LANES]);
        let mut i = 0;
        for ((y, x), b) in ys
            .chunks_exact_mut(LANES)
            .zip(xs.chunks_exact(LANES))
            .zip(self.bias.chunks_exact(LANES))
        {
            for l in 0..LANES {
                let t = y[l] + b[l] + x[l];
                y[l] = t;
                sum[l] += t;
                sum2[l] += t * t;
            }
            i += LANES;
        }
        let (mut s, mut s2) = (sum.iter().sum::<f32>(), sum2.iter().sum::<f32>());
        for j in i..ys.len() {
            let t = ys[j] + self.bias[j] + xs[j];
            ys[j] = t;
            s += t;
            s2 += t * t;
        }
        let n = ys.len() as f32;
        let mean = s / n;
        let var = s2 / n - mean * mean;
        let inv_std = (var + self.eps).sqrt().recip();
        for ((y, &g), &b) in ys.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *y = (*y - mean) * inv_std * g + b;
        }
    }
}

/// Multi-head self-attention of a batch of texts of `len` tokens each, from the stacked query,
/// key and value projections `(batch · len, 3 · hidden)` (before their biases) to the context
/// `(batch · len, hidden)` ahead of the output projection: per text and head,
/// `softmax(q kᵀ / √head + mask) v` with the biases added as the values are read.
///
/// It replaces, per layer, three bias passes, three copies into `(batch, heads, len, head)`, a
/// batched product for the scores, a scaling pass, a mask pass, the softmax, a batched product
/// for the context and a copy back: steps that ran on one thread where this runs a text per
/// task on rayon's threads. Padding keys (mask 0) get no weight, as under BERT's additive
/// `f32::MIN` mask, and padding rows are left 0 (pooling leaves them out).
pub(crate) struct Attention<'a> {
    /// the query, key and value biases, `3 · hidden`
    pub(crate) bias: &'a [f32],
    pub(crate) heads: usize,
    pub(crate) len: usize,
    /// `batch · len`: 1 for a token, 0 for padding
    pub(crate) mask: &'a [f32],
}

impl candle_core::CustomOp1 for Attention<'_> {
    fn name(&self) -> &'static str {
        "quarry-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = values(self.name(), storage, layout)?;
        let &[rows, three] = layout.shape().dims() else {
            candle_core::bail!("{}: (rows, 3 · hidden) only", self.name())
        };
        let hidden = three / 3;
        if three != self.bias.len()
            || three % 3 != 0
            || self.heads == 0
            || hidden % self.heads != 0
            || self.len == 0
            || rows % self.len != 0
            || self.mask.len() != rows
        {
            candle_core::bail!(
                "{}: {rows} rows of {three} values, {} biases, {} heads, {} tokens a text, {} mask values",
                self.name(),
                self.bias.len(),
                self.heads,
                self.len,
                self.mask.len()
            );
        }
        let mut out = vec![0f32; rows * hidden];
        out.par_chunks_mut(self.len * hidden)
            .zip(qkv.par_chunks(self.len * three))
            .zip(self.mask.par_chunks(self.len))
            .for_each(|((out, qkv), mask)| {
                simd(
                    #[inline(always)]
                    || self.text(out, qkv, mask, hidden),
                )
            });
        Ok((CpuStorage::F32(out), Shape::from((rows, hidden))))
    }
}

impl Attention<'_> {
    /// The context of one text: `out` and `qkv` are its rows.
    #[inline(always)]
    fn text(&self, out: &mut [f32], qkv: &[f32], mask: &[f32], hidden: usize) {
        let (len, three, head) = (self.len, 3 * hidden, hidden / self.heads);
        let scale = 1.0 / (head as f32).sqrt();
        let tokens: Vec<usize> = (0..len).filter(|&j| mask[j] != 0.0).collect();
        let n = tokens.len();
        // per head: the text's queries (scaled), keys transposed (head × n) and values (n × head)
        let (mut q, mut kt, mut v) = (vec![0f32; head], vec![0f32; head * n], vec![0f32; n * head]);
        let mut scores = vec![0f32; n];
        for h in 0..self.heads {
            let (qo, ko, vo) = (h * head, hidden + h * head, 2 * hidden + h * head);
            for (t, &j) in tokens.iter().enumerate() {
                let row = &qkv[j * three..(j + 1) * three];
                for d in 0..head {
                    kt[d * n + t] = row[ko + d] + self.bias[ko + d];
                }
                for ((v, &x), &b) in v[t * head..(t + 1) * head]
                    .iter_mut()
                    .zip(&row[vo..vo + head])
                    .zip(&self.bias[vo..vo + head])
                {
                    *v = x + b;
                }
            }
            for &i in &tokens {
                let row = &qkv[i * three..(i + 1) * three];
                for ((q, &x), &b) in q
                    .iter_mut()
                    .zip(&row[qo..qo + head])
                    .zip(&self.bias[qo..qo + head])
                {
                    *q = (x + b) * scale;
                }
                dot_rows(&q, &kt, &mut scores);
                let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
                for s in scores.iter_mut() {
                    *s = exp(*s - max);
                }
                let sum: f32 = scores.iter().sum();
                let o = &mut out[i * hidden + qo..i * hidden + qo + head];
                weighted_sum(&scores, &v, 1.0 / sum, o);
            }
        }
    }
}

/// Lanes of the blocked loops below: a 512-bit register of f32 (two 256-bit ones on AVX2).
const LANES: usize = 16;

/// `scores[t] = Σ_d q[d] · kt[d][t]` (`kt` is `q.len()` rows of `scores.len()` keys): blocks of
/// [`LANES`] keys summed in one register each over `d`.
#[inline(always)]
fn dot_rows(q: &[f32], kt: &[f32], scores: &mut [f32]) {
    let n = scores.len();
    let blocks = n / LANES * LANES;
    for start in (0..blocks).step_by(LANES) {
        let mut acc = [0f32; LANES];
        for (d, &qd) in q.iter().enumerate() {
            let k = &kt[d * n + start..d * n + start + LANES];
            for l in 0..LANES {
                acc[l] += qd * k[l];
            }
        }
        scores[start..start + LANES].copy_from_slice(&acc);
    }
    for t in blocks..n {
        scores[t] = q
            .iter()
            .enumerate()
            .map(|(d, &qd)| qd * kt[d * n + t])
            .sum();
    }
}

/// `o[d] = scale · Σ_t p[t] · v[t][d]` (`v` is `p.len()` rows of `o.len()` values): blocks of
/// [`LANES`] values summed in one register each over `t`.
#[inline(always)]
fn weighted_sum(p: &[f32], v: &[f32], scale: f32, o: &mut [f32]) {
    let head = o.len();
    let blocks = head / LANES * LANES;
    for start in (0..blocks).step_by(LANES) {
        let mut acc = [0f32; LANES];
        for (t, &pt) in p.iter().enumerate() {
            let v = &v[t * head + start..t * head + start + LANES];
            for l in 0..LANES {
                acc[l] += pt * v[l];
            }
        }
        for (o, a) in o[start..start + LANES].iter_mut().zip(acc) {
            *o = a * scale;
        }
    }
    for d in blocks..head {
        o[d] = scale
            * p.iter()
                .enumerate()
                .map(|(t, &pt)| pt * v[t * head + d])
                .sum::<f32>();
    }
}

/// `e^x` for `x ≤ 0` (a softmax's shifted scores), branch-free so that a loop over a slice
/// vectorises: Cephes' `expf` (range reduction by `ln 2` in two parts, a degree-5 polynomial,
/// the power of two built in the exponent bits); within 2 ulp (checked in the tests). `x` below −87 gives `e^−87`
/// (1.6e-38), where `e^x` would be as good as 0.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // n = round(x / ln 2) by the 1.5 · 2^23 trick: its integer is in the sum's low bits
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 0.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ] {
        p = p * r + c;
    }
    let y = p * r * r + r + 1.0;
    // n is in [-126, 0]: 2^n is a normal f32
    let n = t.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    y * f32::from_bits(((n + 127) as u32) << 23)
}

/// The exact GELU, `x · (1 + erf(x / √2)) / 2`.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `erf(x)` as a rational function of `x` on [-4, 4] (its value at ±4 outside, where `erf` is
/// within 2e-8 of ±1): Eigen's `generic_fast_erf_float` (also TensorFlow's), branch-free so
/// that a loop over a slice vectorises.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    for a in [
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ] {
        p = p * x2 + a;
    }
    let mut q = -1.456_607_2e-5_f32;
    for b in [
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329_2e-3,
        -1.426_474e-2,
    ] {
        q = q * x2 + b;
    }
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module, Tensor};

    /// erf by its series (f64), for x where it converges well, and by its continued fraction's
    /// complement beyond: the reference the approximation is checked against.
    fn erf_reference(x: f64) -> f64 {
        if x.abs() < 3.0 {
            // Σ (-1)^n x^(2n+1) / (n! (2n+1)) · 2/√π
            let (mut term, mut sum, mut n) = (x, x, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(x) ≈ e^(-x²)/(x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶)), x ≥ 3
            let a = x.abs();
            let t = 1.0 / (2.0 * a * a);
            let erfc = (-a * a).exp() / (a * std::f64::consts::PI.sqrt())
                * (1.0 - t + 3.0 * t * t - 15.0 * t * t * t);
            (1.0 - erfc).copysign(x)
        }
    }

    #[test]
    fn erf_is_within_5e_7_of_the_true_one() {
        let mut worst = (0.0f64, 0.0f64);
        for i in -60_000..=60_000 {
            let x = i as f64 / 10_000.0;
            let err = (f64::from(erf(x as f32)) - erf_reference(x)).abs();
            if err > worst.0 {
                worst = (err, x);
            }
        }
        assert!(worst.0 < 5e-7, "error {} at {}", worst.0, worst.1);
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(f32::INFINITY) - 1.0).abs() < 5e-7);
        assert!((erf(f32::NEG_INFINITY) + 1.0).abs() < 5e-7);
        assert!(erf(f32::NAN).is_nan());
    }

    /// Values spread over the GELU's interesting range, deterministic.
    fn spread(n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * scale)
            .collect()
    }

    #[test]
    fn bias_gelu_matches_candles_add_then_exact_gelu() {
        let (rows, width) = (37, 48); // rows do not divide a task evenly
        let y = Tensor::from_vec(spread(rows * width, 16.0), (rows, width), &Device::Cpu).unwrap();
        let bias = spread(width, 2.0);
        let b = Tensor::new(bias.as_slice(), &Device::Cpu).unwrap();
        let ours = y.copy().unwrap();
        ours.inplace_op1(&BiasGelu { bias }).unwrap();
        let ours: Vec<Vec<f32>> = ours.to_vec2().unwrap();
        let reference: Vec<Vec<f32>> = y
            .broadcast_add(&b)
            .unwrap()
            .gelu_erf()
            .unwrap()
            .to_vec2()
            .unwrap();
        for (a, r) in ours.iter().flatten().zip(reference.iter().flatten()) {
            assert!((a - r).abs() < 1e-5, "{a} vs {r}");
        }
        // a view that is not contiguous, or a bias of the wrong width, is refused, not misread
        let m = Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu).unwrap();
        let two = || BiasGelu { bias: vec![0.0; 2] };
        assert!(m.t().unwrap().inplace_op1(&two()).is_err());
        assert!(m.inplace_op1(&BiasGelu { bias: vec![0.0; 3] }).is_err());
        assert!(m.inplace_op1(&two()).is_ok());
    }

    #[test]
    fn bias_residual_norm_matches_candles_add_add_layer_norm() {
        // 384 wide like MiniLM, and 20 wide (not a multiple of the 16 lanes)
        for (rows, width) in [(50, 384), (9, 20)] {
            let y =
                Tensor::from_vec(spread(rows * width, 6.0), (rows, width), &Device::Cpu).unwrap();
            let x = Tensor::from_vec(
                spread(rows * width + 3, 3.0)[3..].to_vec(),
                (rows, width),
                &Device::Cpu,
            )
            .unwrap();
            let (bias, gamma, beta) = (
                spread(width, 1.0),
                spread(width + 1, 2.0)[1..].to_vec(),
                spread(width + 2, 0.5)[2..].to_vec(),
            );
            let t = |v: &Vec<f32>| Tensor::new(v.as_slice(), &Device::Cpu).unwrap();
            let norm = candle_nn::LayerNorm::new(t(&gamma), t(&beta), 1e-12);
            let reference: Vec<Vec<f32>> = norm
                .forward(&((y.broadcast_add(&t(&bias)).unwrap() + &x).unwrap()))
                .unwrap()
                .to_vec2()
                .unwrap();
            let op = BiasResidualNorm {
                bias,
                gamma,
                beta,
                eps: 1e-12,
            };
            let ours = y.copy().unwrap();
            ours.inplace_op2(&x, &op).unwrap();
            let ours: Vec<Vec<f32>> = ours.to_vec2().unwrap();
            for (a, r) in ours.iter().flatten().zip(reference.iter().flatten()) {
                assert!((a - r).abs() < 1e-4, "{a} vs {r} ({rows}x{width})");
            }
            // shapes that do not match are refused
            let other =
                Tensor::zeros((rows + 1, width), candle_core::DType::F32, &Device::Cpu).unwrap();
            assert!(y.inplace_op2(&other, &op).is_err());
        }
    }

    #[test]
    fn exp_is_within_2_ulp_of_the_true_one_below_0() {
        for i in 0..=870_000 {
            let x = -(i as f32) / 10_000.0;
            let (ours, truth) = (f64::from(exp(x)), f64::from(x).exp());
            assert!(
                (ours - truth).abs() <= 2.5 * truth * f64::from(f32::EPSILON),
                "{x}: {ours} vs {truth}"
            );
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1e30) < 2e-38 && exp(f32::NEG_INFINITY) < 2e-38);
    }

    /// The attention of BERT as candle-transformers writes it, with tensor ops.
    fn reference_attention(
        qkv: &Tensor,
        bias: &[f32],
        heads: usize,
        len: usize,
        mask: &[f32],
    ) -> Vec<Vec<f32>> {
        let (rows, three) = qkv.dims2().unwrap();
        let (hidden, batch) = (three / 3, rows / len);
        let head = hidden / heads;
        let qkv = qkv
            .broadcast_add(&Tensor::new(bias, &Device::Cpu).unwrap())
            .unwrap();
        let part = |i: usize| {
            qkv.narrow(1, i * hidden, hidden)
                .unwrap()
                .reshape((batch, len, heads, head))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let scores = (q.matmul(&k.t().unwrap()).unwrap() / (head as f64).sqrt()).unwrap();
        let additive: Vec<f32> = mask
            .iter()
            .map(|&m| if m == 0.0 { f32::MIN } else { 0.0 })
            .collect();
        let additive = Tensor::from_vec(additive, (batch, 1, 1, len), &Device::Cpu).unwrap();
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&additive).unwrap()).unwrap();
        probs
            .matmul(&v)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((rows, hidden))
            .unwrap()
            .to_vec2()
            .unwrap()
    }

    #[test]
    fn attention_matches_the_tensor_ops_it_replaces() {
        // MiniLM's heads (12 of 32) and an odd shape (3 heads of 5: blocks and remainders)
        for (heads, head, len, batch) in [(12, 32, 40, 3), (3, 5, 21, 2), (2, 4, 1, 1)] {
            let hidden = heads * head;
            let rows = batch * len;
            let qkv = Tensor::from_vec(
                spread(rows * 3 * hidden, 4.0),
                (rows, 3 * hidden),
                &Device::Cpu,
            )
            .unwrap();
            let bias = spread(3 * hidden + 5, 1.0)[5..].to_vec();
            // the first text whole, the others padded at the end
            let mask: Vec<f32> = (0..rows)
                .map(|r| {
                    if r / len == 0 || r % len < len.div_ceil(2) {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            let op = Attention {
                bias: &bias,
                heads,
                len,
                mask: &mask,
            };
            let ours: Vec<Vec<f32>> = qkv.apply_op1_no_bwd(&op).unwrap().to_vec2().unwrap();
            let reference = reference_attention(&qkv, &bias, heads, len, &mask);
            for (r, (a, b)) in ours.iter().zip(&reference).enumerate() {
                if mask[r] == 0.0 {
                    assert!(a.iter().all(|&x| x == 0.0), "padding row {r} is left 0");
                    continue;
                }
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() < 1e-4,
                        "row {r}: {x} vs {y} ({heads}x{head}, len {len})"
                    );
                }
            }
        }
        // shapes that do not fit the op are refused
        let qkv = Tensor::zeros((4, 6), candle_core::DType::F32, &Device::Cpu).unwrap();
        let bias = [0f32; 6];
        let mask = [1f32; 4];
        let op = |heads, len, mask: &'static [f32]| Attention {
            bias: &[0.0; 6],
            heads,
            len,
            mask,
        };
        assert!(
            qkv.apply_op1_no_bwd(&Attention {
                bias: &bias,
                heads: 2,
                len: 2,
                mask: &mask
            })
            .is_ok()
        );
        assert!(qkv.apply_op1_no_bwd(&op(0, 2, &[1.0; 4])).is_err());
        assert!(qkv.apply_op1_no_bwd(&op(2, 3, &[1.0; 4])).is_err());
        assert!(qkv.apply_op1_no_bwd(&op(2, 2, &[1.0; 3])).is_err());
        assert!(
            qkv.t()
                .unwrap()
                .apply_op1_no_bwd(&op(1, 1, &[1.0; 6]))
                .is_err()
        );
    }
}
