//! The fused steps of the BERT encoder ([`crate::bert`]), as candle custom ops over f32 rows:
//! each reads its inputs once and writes its result once (in place, over the matrix product it
//! follows, where it can), where the tensor ops they replace wrote a tensor per step.
//!
//! - [`Attention`]: from the stacked query, key and value projections to the attention's
//!   context, per text on rayon's threads;
//! - [`BiasGelu`]: `gelu(y + bias)`, the feed-forward's first half after its matrix product;
//! - [`BiasResidualNorm`]: `layer_norm(y + bias + residual)`, the end of the attention block and
//!   of the feed-forward.
//!
//! `candle_nn::Linear` adds its bias as a separate broadcast pass over the product; on a
//! `2048 × 1536` product that pass took as long as the product itself (BENCHMARKS.md, "the
//! encoder's steps fused"). Each loop is compiled for the widest SIMD the CPU has ([`simd`]).
//! The maths is the tensor ops' (the layer norm's variance as `E[x²] − E[x]²` in f32, as
//! `candle_nn::ops::layer_norm` computes it), summed in another order and with two
//! approximations, [`erf`] (|error| < 5e-7) and [`exp`] (relative error < 2.5 ε), both checked in
//! the tests; results differ from the tensor ops' by about f32 rounding.

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
        // per head: the text's queries (scaled), keys transposed (head × padded) and values
        // (n × head); the keys are padded with zeros to whole blocks of LANES
        let padded = n.next_multiple_of(LANES);
        let (mut q, mut kt, mut v) = (
            vec![0f32; QUERIES * head],
            vec![0f32; head * padded],
            vec![0f32; n * head],
        );
        let mut scores = vec![0f32; QUERIES * padded];
        for h in 0..self.heads {
            let (qo, ko, vo) = (h * head, hidden + h * head, 2 * hidden + h * head);
            for (t, &j) in tokens.iter().enumerate() {
                let row = &qkv[j * three..(j + 1) * three];
                for d in 0..head {
                    kt[d * padded + t] = row[ko + d] + self.bias[ko + d];
                }
                for ((v, &x), &b) in v[t * head..(t + 1) * head]
                    .iter_mut()
                    .zip(&row[vo..vo + head])
                    .zip(&self.bias[vo..vo + head])
                {
                    *v = x + b;
                }
            }
            // QUERIES queries at a time: each key and value register loaded serves all of them
            for group in tokens.chunks(QUERIES) {
                for (g, &i) in group.iter().enumerate() {
                    let row = &qkv[i * three + qo..i * three + qo + head];
                    for ((q, &x), &b) in q[g * head..(g + 1) * head]
                        .iter_mut()
                        .zip(row)
                        .zip(&self.bias[qo..qo + head])
                    {
                        *q = (x + b) * scale;
                    }
                }
                // slots past the group's end keep earlier queries: computed, never written out
                dot_rows(&q, &kt, &mut scores);
                let mut inv = [0f32; QUERIES];
                for (scores, inv) in scores.chunks_exact_mut(padded).zip(&mut inv) {
                    // the padding keys' scores are 0 (zero keys): excluded by a NEG_INFINITY,
                    // so the max and sum run over whole registers
                    scores[n..].fill(f32::NEG_INFINITY);
                    let max = lanes(scores, f32::NEG_INFINITY, f32::max);
                    for s in scores.iter_mut() {
                        *s = exp(*s - max);
                    }
                    scores[n..].fill(0.0);
                    *inv = 1.0 / lanes(scores, 0.0, |a, b| a + b);
                }
                weighted_sum(&scores, n, &v, inv, group, qo, hidden, out);
            }
        }
    }
}

/// Lanes of the blocked loops below: a 512-bit register of f32 (two 256-bit ones on AVX2).
const LANES: usize = 16;

/// `xs` (a whole number of [`LANES`]) folded by `f` a register at a time, then across the
/// register: a fold of one value at a time is a chain of dependent steps.
#[inline(always)]
fn lanes(xs: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; LANES];
    for block in xs.chunks_exact(LANES) {
        for l in 0..LANES {
            acc[l] = f(acc[l], block[l]);
        }
    }
    acc.into_iter().fold(init, f)
}

/// Queries whose scores and context are computed together. The sums use `mul_add`, one FMA
/// instruction in the AVX2 and AVX-512 builds [`simd`] runs (a library call on an x86 CPU
/// without FMA, from before 2013: correct, slow). Independent sums (an FMA's latency
/// is about 4 of its issue slots, so one running sum per register would keep the units a quarter
/// busy), and each key or value register loaded once for all of them.
const QUERIES: usize = 4;

/// `scores[g][t] = Σ_d q[g][d] · kt[d][t]` for the [`QUERIES`] queries `q` (rows of `head`);
/// `kt` is `head` rows of `padded` keys (a whole number of [`LANES`]), `scores` [`QUERIES`]
/// rows of `padded`.
#[inline(always)]
fn dot_rows(q: &[f32], kt: &[f32], scores: &mut [f32]) {
    let head = q.len() / QUERIES;
    let padded = scores.len() / QUERIES;
    debug_assert_eq!(padded % LANES, 0);
    for start in (0..padded).step_by(LANES) {
        let mut acc = [[0f32; LANES]; QUERIES];
        for d in 0..head {
            let k = &kt[d * padded + start..d * padded + start + LANES];
            for (g, acc) in acc.iter_mut().enumerate() {
                let qd = q[g * head + d];
                for l in 0..LANES {
                    acc[l] = qd.mul_add(k[l], acc[l]);
                }
            }
        }
        for (g, acc) in acc.iter().enumerate() {
            scores[g * padded + start..g * padded + start + LANES].copy_from_slice(acc);
        }
    }
}

/// The context of each query of `group` (its token rows; [`QUERIES`] at most): row `i` of
/// `out`, columns `qo..qo + head`, gets `inv[g] · Σ_t p[g][t] · v[t]` over the `n` keys, where
/// `p` is [`QUERIES`] rows of `p.len() / QUERIES` weights and `v` is `n` rows of `head`.
#[allow(clippy::too_many_arguments)] // one call site, all of them the attention's own state
#[inline(always)]
fn weighted_sum(
    p: &[f32],
    n: usize,
    v: &[f32],
    inv: [f32; QUERIES],
    group: &[usize],
    qo: usize,
    hidden: usize,
    out: &mut [f32],
) {
    let padded = p.len() / QUERIES;
    let head = v.len() / n.max(1);
    let blocks = head / LANES * LANES;
    for start in (0..blocks).step_by(LANES) {
        let mut acc = [[0f32; LANES]; QUERIES];
        for t in 0..n {
            let v = &v[t * head + start..t * head + start + LANES];
            for (g, acc) in acc.iter_mut().enumerate() {
                let pt = p[g * padded + t];
                for l in 0..LANES {
                    acc[l] = pt.mul_add(v[l], acc[l]);
                }
            }
        }
        for (g, &i) in group.iter().enumerate() {
            let o = &mut out[i * hidden + qo + start..i * hidden + qo + start + LANES];
            for l in 0..LANES {
                o[l] = acc[g][l] * inv[g];
            }
        }
    }
    for (g, &i) in group.iter().enumerate() {
        for d in blocks..head {
            let sum: f32 = (0..n).map(|t| p[g * padded + t] * v[t * head + d]).sum();
            out[i * hidden + qo + d] = sum * inv[g];
        }
    }
}

/// `e^x` for `x ≤ 0` (a softmax's shifted scores), branch-free so that a loop over a slice
/// vectorises: Cephes' `expf` (range reduction by `ln 2` in two parts, a degree-5 polynomial,
/// the power of two built in the exponent bits); relative error below 2.5 · `f32::EPSILON`
/// (checked in the tests). `x` below −87 gives `e^−87`
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
#[path = "bert_ops_tests.rs"]
mod tests;
