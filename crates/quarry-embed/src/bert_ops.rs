//! The fused steps of the BERT encoder ([`crate::bert`]) over row-major f32 rows: each reads its
//! inputs once and writes its result once (in place, over the matrix product it follows, where
//! it can), where the tensor ops they replace wrote a tensor per step.
//!
//! - [`Attention`]: from the stacked query, key and value projections to the attention's
//!   context, per text on rayon's threads;
//! - [`BiasActivation`]: `gelu(y + bias)` (or another activation), the feed-forward's first half
//!   after its matrix product;
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

use candle_core::Result;
use candle_transformers::models::bert::HiddenAct;
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

/// Rows of `width` per task, at least one.
fn task_rows(width: usize) -> usize {
    (TASK_VALUES / width.max(1)).max(1)
}

/// Checks that `values` are whole rows of `params` values (and that there are parameters).
fn rows_of(op: &str, values: usize, params: usize) -> Result<()> {
    if params == 0 || !values.is_multiple_of(params) {
        candle_core::bail!("{op}: {values} values are not rows of {params}");
    }
    Ok(())
}

/// `act(y + bias)` of each row `y`: the exact GELU with [`erf`] (BERT's `gelu`), candle's
/// `GeluApproximate` (the `tanh` approximation) or ReLU, as candle computes the last two.
pub(crate) struct BiasActivation {
    pub(crate) bias: Vec<f32>,
    pub(crate) act: HiddenAct,
}

impl BiasActivation {
    pub(crate) fn apply(&self, ys: &mut [f32]) -> Result<()> {
        let width = self.bias.len();
        rows_of("bias-activation", ys.len(), width)?;
        let act = self.act;
        ys.par_chunks_mut(width * task_rows(width)).for_each(|ys| {
            simd(
                #[inline(always)]
                || {
                    for ys in ys.chunks_exact_mut(width) {
                        let pairs = ys.iter_mut().zip(&self.bias);
                        match act {
                            HiddenAct::Gelu => pairs.for_each(|(y, &b)| *y = gelu(*y + b)),
                            HiddenAct::GeluApproximate => {
                                pairs.for_each(|(y, &b)| *y = gelu_tanh(*y + b))
                            }
                            HiddenAct::Relu => pairs.for_each(|(y, &b)| *y = (*y + b).max(0.0)),
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

impl BiasResidualNorm {
    /// Each row of `ys` becomes the normalised `ys + bias + xs` (`xs` the same shape).
    pub(crate) fn apply(&self, ys: &mut [f32], xs: &[f32]) -> Result<()> {
        let width = self.bias.len();
        rows_of("bias-residual-norm", ys.len(), width)?;
        if xs.len() != ys.len() || self.gamma.len() != width || self.beta.len() != width {
            candle_core::bail!(
                "bias-residual-norm: {} values and {} residuals with {} biases and {} norm weights",
                ys.len(),
                xs.len(),
                width,
                self.gamma.len()
            );
        }
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

    /// One row: `ys` becomes the normalised `ys + bias + xs`.
    #[inline(always)]
    fn row(&self, ys: &mut [f32], xs: &[f32]) {
        for ((y, &x), &b) in ys.iter_mut().zip(xs).zip(&self.bias) {
            *y = *y + b + x;
        }
        // the sum and the sum of squares in passes of their own: in one loop the compiler
        // paired each lane's two sums into a 2-wide vector and ran the row a value at a time
        let n = ys.len() as f32;
        let mean = lanes(ys, 0.0, add, add) / n;
        let var = lanes(ys, 0.0, |a, t| a + t * t, add) / n - mean * mean;
        let inv_std = (var + self.eps).sqrt().recip();
        for ((y, &g), &b) in ys.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *y = (*y - mean) * inv_std * g + b;
        }
    }
}

/// Multi-head self-attention of a batch of texts, from the stacked query, key and value
/// projections `(rows, 3 · hidden)` (before their biases) to the context `(rows, hidden)` ahead of
/// the output projection: per text and head, `softmax(q kᵀ / √head) v` with the biases added as
/// the values are read. The texts' rows lie one after the other, `lens[i]` rows for text `i`, with
/// no padding between them: a text attends to its own rows only.
///
/// It replaces, per layer, three bias passes, three copies into `(batch, heads, len, head)`, a
/// batched product for the scores, a scaling pass, a mask pass, the softmax, a batched product
/// for the context and a copy back: steps that ran on one thread where this runs a text per
/// task on rayon's threads. What a padded batch would add (a mask of `f32::MIN` on padding keys,
/// rows nobody reads) is not there to compute.
pub(crate) struct Attention<'a> {
    /// the query, key and value biases, `3 · hidden`
    pub(crate) bias: &'a [f32],
    pub(crate) heads: usize,
    /// Rows of each text, in row order (0 for a text of no tokens).
    pub(crate) lens: &'a [usize],
}

impl Attention<'_> {
    /// Writes the context of `qkv` (`rows × 3 · hidden`, rows the sum of `lens`) into `out`
    /// (`rows × hidden`).
    pub(crate) fn apply(&self, out: &mut [f32], qkv: &[f32]) -> Result<()> {
        let (rows, three) = (self.lens.iter().sum::<usize>(), self.bias.len());
        let hidden = three / 3;
        if three % 3 != 0
            || hidden == 0
            || self.heads == 0
            || hidden % self.heads != 0
            || qkv.len() != rows * three
            || out.len() != rows * hidden
        {
            candle_core::bail!(
                "attention: {} projections and {} outputs for {rows} rows, {three} biases, {} heads",
                qkv.len(),
                out.len(),
                self.heads,
            );
        }
        let mut texts = Vec::with_capacity(self.lens.len());
        let (mut out, mut qkv) = (out, qkv);
        for &n in self.lens {
            let (o, out_rest) = std::mem::take(&mut out).split_at_mut(n * hidden);
            let (q, qkv_rest) = qkv.split_at(n * three);
            texts.push((o, q));
            (out, qkv) = (out_rest, qkv_rest);
        }
        texts.into_par_iter().for_each(|(out, qkv)| {
            simd(
                #[inline(always)]
                || self.text(out, qkv, hidden),
            )
        });
        Ok(())
    }
}

impl Attention<'_> {
    /// The context of one text: `out` and `qkv` are its rows.
    #[inline(always)]
    fn text(&self, out: &mut [f32], qkv: &[f32], hidden: usize) {
        let (three, head) = (3 * hidden, hidden / self.heads);
        let scale = 1.0 / (head as f32).sqrt();
        let n = qkv.len() / three;
        // every head's queries (scaled; rows of `head`, zero rows up to a whole group), keys in
        // blocks of LANES (each block `head` rows of LANES keys, the last block padded with zero
        // keys) and values in blocks of LANES columns (each block n rows of LANES values; a
        // narrower last block when LANES does not divide `head`), read in one pass over the
        // text's rows (instead of a pass per head, which waited on memory for every row)
        let (padded, grouped) = (n.next_multiple_of(LANES), n.next_multiple_of(QUERIES));
        let (mut q, mut kt, mut v) = (
            vec![0f32; self.heads * grouped * head],
            vec![0f32; self.heads * head * padded],
            vec![0f32; self.heads * n * head],
        );
        let (q_bias, rest) = self.bias.split_at(hidden);
        let (k_bias, v_bias) = rest.split_at(hidden);
        for (t, row) in qkv.chunks_exact(three).enumerate() {
            let (q_row, rest) = row.split_at(hidden);
            let (k_row, v_row) = rest.split_at(hidden);
            for h in 0..self.heads {
                let cols = h * head..(h + 1) * head;
                let q = &mut q[(h * grouped + t) * head..(h * grouped + t + 1) * head];
                for ((q, &x), &b) in q
                    .iter_mut()
                    .zip(&q_row[cols.clone()])
                    .zip(&q_bias[cols.clone()])
                {
                    *q = (x + b) * scale;
                }
                let block = (h * padded + t / LANES * LANES) * head;
                for ((k, &x), &b) in kt[block + t % LANES..block + head * LANES]
                    .iter_mut()
                    .step_by(LANES)
                    .zip(&k_row[cols.clone()])
                    .zip(&k_bias[cols.clone()])
                {
                    *k = x + b;
                }
                let v = &mut v[h * n * head..(h + 1) * n * head];
                for (c, (x, b)) in v_row[cols.clone()]
                    .chunks(LANES)
                    .zip(v_bias[cols].chunks(LANES))
                    .enumerate()
                {
                    // block c: n rows of LANES values (the last, narrower block n rows of its own width)
                    let start = c * n * LANES + t * x.len();
                    for ((v, &x), &b) in v[start..start + x.len()].iter_mut().zip(x).zip(b) {
                        *v = x + b;
                    }
                }
            }
        }
        let mut scores = vec![0f32; QUERIES * padded];
        for h in 0..self.heads {
            let qo = h * head;
            let kt = &kt[h * head * padded..(h + 1) * head * padded];
            let v = &v[h * n * head..(h + 1) * n * head];
            let queries =
                q[h * grouped * head..(h + 1) * grouped * head].chunks_exact(QUERIES * head);
            // QUERIES queries at a time: each key and value register loaded serves all of them
            let groups = (0..n).step_by(QUERIES).map(|g| g..(g + QUERIES).min(n));
            for (group, q) in groups.zip(queries) {
                // the zero queries past the group's end are computed, never written out
                dot_rows(q, kt, &mut scores);
                let mut inv = [0f32; QUERIES];
                for (scores, inv) in scores.chunks_exact_mut(padded).zip(&mut inv) {
                    // the padding keys' scores are 0 (zero keys): excluded by a NEG_INFINITY,
                    // so the max and sum run over whole registers
                    scores[n..].fill(f32::NEG_INFINITY);
                    let max = lanes(scores, f32::NEG_INFINITY, max, max);
                    for s in scores.iter_mut() {
                        *s = exp(*s - max);
                    }
                    scores[n..].fill(0.0);
                    *inv = 1.0 / lanes(scores, 0.0, add, add);
                }
                weighted_sum(&scores, n, head, v, inv, group, qo, hidden, out);
            }
        }
    }
}

/// Lanes of the blocked loops below: a 512-bit register of f32 (two 256-bit ones on AVX2).
const LANES: usize = 16;

/// `a + b`, the step and merge of a sum by [`lanes`].
#[inline(always)]
fn add(a: f32, b: f32) -> f32 {
    a + b
}

/// The larger of `a` and `b` (`b` when either is NaN): one `max` instruction, where
/// `f32::max`'s rule for NaN costs a compare and a blend more.
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// `xs` folded by `step` a register at a time into [`LANES`] accumulators, which `merge`
/// folds into one, then the tail past the last whole register (`init` must leave a value
/// unchanged under `merge`, as 0 does a sum and −∞ a max: it is all of the accumulators when
/// `xs` is shorter than a register): a fold of one value at a time is
/// a chain of dependent steps the compiler may not reorder (f32 sums are not associative).
#[inline(always)]
fn lanes(
    xs: &[f32],
    init: f32,
    step: impl Fn(f32, f32) -> f32,
    merge: impl Fn(f32, f32) -> f32,
) -> f32 {
    let mut acc = [init; LANES];
    let blocks = xs.chunks_exact(LANES);
    let tail = blocks.remainder();
    for block in blocks {
        for l in 0..LANES {
            acc[l] = step(acc[l], block[l]);
        }
    }
    // halves folded onto each other (a vector step each), not one value at a time
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] = merge(acc[l], acc[l + width]);
        }
    }
    tail.iter().fold(acc[0], |a, &x| step(a, x))
}

/// Queries whose scores and context are computed together. The sums use `mul_add`, one FMA
/// instruction in the AVX2 and AVX-512 builds [`simd`] runs (a library call on an x86 CPU
/// without FMA, from before 2013: correct, slow). Independent sums (an FMA's latency
/// is about 4 of its issue slots, so one running sum per register would keep the units a quarter
/// busy), and each key or value register loaded once for all of them.
const QUERIES: usize = 4;

/// `scores[g][t] = Σ_d q[g][d] · k[t][d]` for the [`QUERIES`] queries `q` (rows of `head`);
/// `kt` holds the keys in blocks of [`LANES`], each block `head` rows of [`LANES`] keys, and
/// `scores` is [`QUERIES`] rows of `kt.len() / head` (a whole number of blocks). Two blocks at a
/// time (eight independent sums, see [`fma`]); the multiply-add loop runs over exact chunks and
/// zipped rows, so none of its steps checks an index.
#[inline(always)]
fn dot_rows(q: &[f32], kt: &[f32], scores: &mut [f32]) {
    let head = q.len() / QUERIES;
    let padded = scores.len() / QUERIES;
    let q = rows(q, head);
    let queries = || columns(q);
    let mut scores = rows_mut(scores, padded);
    let size = head * LANES;
    let pairs = kt.chunks_exact(2 * size);
    let last = pairs.remainder();
    let mut write = |first: usize, acc: &[[[f32; LANES]; 2]; QUERIES], blocks: usize| {
        for (s, acc) in scores.iter_mut().zip(acc) {
            for (b, acc) in acc.iter().enumerate().take(blocks) {
                s[(first + b) * LANES..(first + b + 1) * LANES].copy_from_slice(acc);
            }
        }
    };
    for (p, pair) in pairs.enumerate() {
        let mut acc = [[[0f32; LANES]; 2]; QUERIES];
        let (k0, k1) = pair.split_at(size);
        for ((k0, k1), w) in k0
            .chunks_exact(LANES)
            .zip(k1.chunks_exact(LANES))
            .zip(queries())
        {
            fma(&mut acc, [k0, k1], w);
        }
        write(2 * p, &acc, 2);
    }
    if !last.is_empty() {
        let mut acc = [[[0f32; LANES]; 2]; QUERIES];
        for (k, w) in last.chunks_exact(LANES).zip(queries()) {
            fma(&mut acc, [k, k], w);
        }
        write(2 * (kt.len() / (2 * size)), &acc, 1);
    }
}

/// `acc[g][b][l] += w[g] · x[b][l]`: [`QUERIES`] × 2 independent sums of a register each, so
/// that the FMA units (two, each 4 cycles from input to result) always have one to start; each
/// register of `x` is loaded once for all the queries.
#[inline(always)]
fn fma(acc: &mut [[[f32; LANES]; 2]; QUERIES], x: [&[f32]; 2], w: [f32; QUERIES]) {
    let [x0, x1]: [&[f32; LANES]; 2] = x.map(|x| x.try_into().expect("a register of values"));
    let [w0, w1, w2, w3] = w;
    let [a0, a1, a2, a3] = acc;
    // one statement a sum: written as loops over the queries and blocks, the compiler ran
    // them a value at a time
    for l in 0..LANES {
        a0[0][l] = w0.mul_add(x0[l], a0[0][l]);
        a0[1][l] = w0.mul_add(x1[l], a0[1][l]);
        a1[0][l] = w1.mul_add(x0[l], a1[0][l]);
        a1[1][l] = w1.mul_add(x1[l], a1[1][l]);
        a2[0][l] = w2.mul_add(x0[l], a2[0][l]);
        a2[1][l] = w2.mul_add(x1[l], a2[1][l]);
        a3[0][l] = w3.mul_add(x0[l], a3[0][l]);
        a3[1][l] = w3.mul_add(x1[l], a3[1][l]);
    }
}

/// The [`QUERIES`] rows of `width` at the start of `xs`.
#[inline(always)]
fn rows(xs: &[f32], width: usize) -> [&[f32]; QUERIES] {
    std::array::from_fn(|g| &xs[g * width..(g + 1) * width])
}

/// The columns of the [`QUERIES`] rows `rows`, as far as the shortest: the `d`-th values of the
/// rows together, for one step of the sums.
#[inline(always)]
fn columns(rows: [&[f32]; QUERIES]) -> impl Iterator<Item = [f32; QUERIES]> {
    let [a, b, c, d] = rows;
    a.iter()
        .zip(b)
        .zip(c)
        .zip(d)
        .map(|(((&a, &b), &c), &d)| [a, b, c, d])
}

/// The [`QUERIES`] rows of `width` at the start of `xs`, to write.
#[inline(always)]
fn rows_mut(xs: &mut [f32], width: usize) -> [&mut [f32]; QUERIES] {
    let mut rows = xs.chunks_exact_mut(width.max(1));
    std::array::from_fn(|_| rows.next().unwrap_or_default())
}

/// The context of each query of `group` (its rows; [`QUERIES`] at most): row `i` of
/// `out`, columns `qo..qo + head`, gets `inv[g] · Σ_t p[g][t] · v[t]` over the `n` keys, where
/// `p` is [`QUERIES`] rows of `p.len() / QUERIES` weights and `v` holds the values in blocks of
/// [`LANES`] columns, each block `n` rows (the last block narrower when [`LANES`] does not
/// divide `head`). Two blocks at a time; no step of the multiply-add loop checks an index.
#[allow(clippy::too_many_arguments)] // one call site, all of them the attention's own state
#[inline(always)]
fn weighted_sum(
    p: &[f32],
    n: usize,
    head: usize,
    v: &[f32],
    inv: [f32; QUERIES],
    group: std::ops::Range<usize>,
    qo: usize,
    hidden: usize,
    out: &mut [f32],
) {
    let p = rows(p, p.len() / QUERIES).map(|p| &p[..n]);
    let weights = || columns(p);
    let size = n * LANES;
    let whole = head / LANES;
    let mut write = |column: usize, acc: &[f32; LANES], g: usize| {
        if g < group.len() {
            let i = group.start + g;
            let o = &mut out[i * hidden + qo + column..i * hidden + qo + column + LANES];
            for (o, &a) in o.iter_mut().zip(acc) {
                *o = a * inv[g];
            }
        }
    };
    // an odd last block is summed twice (as both of a pair) and written once
    for first in (0..whole).step_by(2) {
        let second = (first + 1).min(whole - 1);
        let (b0, b1) = (
            &v[first * size..(first + 1) * size],
            &v[second * size..(second + 1) * size],
        );
        let mut acc = [[[0f32; LANES]; 2]; QUERIES];
        for ((v0, v1), w) in b0
            .chunks_exact(LANES)
            .zip(b1.chunks_exact(LANES))
            .zip(weights())
        {
            fma(&mut acc, [v0, v1], w);
        }
        for (g, acc) in acc.iter().enumerate() {
            write(first * LANES, &acc[0], g);
            if second != first {
                write(second * LANES, &acc[1], g);
            }
        }
    }
    let rest = head - whole * LANES;
    if rest > 0 {
        let tail = &v[whole * size..whole * size + n * rest];
        for ((i, p), inv) in group.zip(p).zip(inv) {
            for d in 0..rest {
                let sum: f32 = p
                    .iter()
                    .zip(tail.chunks_exact(rest))
                    .map(|(&p, v)| p * v[d])
                    .sum();
                out[i * hidden + qo + whole * LANES + d] = sum * inv;
            }
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

/// GELU's `tanh` approximation, `x · (1 + tanh(√(2/π) · (x + 0.044715 x³))) / 2`, as candle's
/// `gelu` computes it (`HiddenAct::GeluApproximate`).
#[inline(always)]
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_TWO_OVER_PI * x * (1.0 + 0.044715 * x * x)).tanh())
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
