//! Fitting a distilled static table to the teacher's sentence vectors (the idea of model2vec's
//! "tokenlearn" step, solved in closed form instead of by gradient descent).
//!
//! A static model embeds a text as the normalised mean of its tokens' rows; the plain distill
//! gives each token the teacher's vector of that token *alone*. Here the rows are moved so that
//! the mean over a sample text's tokens comes close to the teacher's vector of the whole text:
//!
//! 1. the rotation `M` (orthonormal rows) that best maps the static space into the teacher's over
//!    the samples (`Z M ≈ Y`, orthogonal Procrustes: `M = U Vᵀ` of the SVD of `ZᵀY`, with `Z`
//!    the static vectors of the samples and `Y` the teacher's) starts the rows in the teacher's
//!    space: `E₀ = T M`, scaled so that a sample's mean row has norm ≈ 1. A rotation keeps the
//!    rows' norms and angles; a least-squares map fitted on few samples sent rows of tokens
//!    outside them anywhere;
//! 2. ridge regression: `min ‖A E − Y‖² + λ ‖E − E₀‖²`, `A` the samples × tokens matrix of token
//!    frequencies (each row sums to 1), solved by conjugate gradients on the normal equations
//!    `(AᵀA + λI) E = AᵀY + λE₀`, one column at a time in lockstep. Tokens no sample holds keep
//!    `E₀`'s row; `λ` says how far seen tokens may move;
//! 3. the rows are projected on the first `dims` principal directions of `EᵀE` (not centred: a
//!    shift of every row would shift every text's vector alike and change cosines).
//!
//! Everything runs in f64 on one thread in a fixed order, so the same inputs give the same bytes.
//! Memory: about ten `rows × teacher_dims` f64 matrices at once (rows: the tokens with a row or a
//! sample, added words included): ≈ 94 MB each for BERT's 30,522 tokens at 384 dimensions, so
//! ≈ 1 GB (measured: 1.0 GB peak for a whole distill fitted to 5,183 texts); 50,000 added words
//! make it ≈ 2.5 GB.

use nalgebra::{DMatrix, SymmetricEigen};

/// Samples as sparse rows of the token-frequency matrix `A`: `(token id, count / length)`.
pub(crate) struct Design {
    rows: Vec<Vec<(u32, f64)>>,
}

impl Design {
    /// One row per token list (empty lists give empty rows, which the fit ignores).
    pub(crate) fn new(samples: &[Vec<u32>]) -> Self {
        let rows = samples
            .iter()
            .map(|ids| {
                let mut sorted = ids.clone();
                sorted.sort_unstable();
                let n = sorted.len() as f64;
                let mut row: Vec<(u32, f64)> = Vec::new();
                for id in sorted {
                    match row.last_mut() {
                        Some((last, w)) if *last == id => *w += 1.0 / n,
                        _ => row.push((id, 1.0 / n)),
                    }
                }
                row
            })
            .collect();
        Design { rows }
    }

    /// `A X` for `X` with `t` columns (row-major): one row per sample.
    fn mul(&self, x: &[f64], t: usize) -> Vec<f64> {
        let mut out = vec![0.0; self.rows.len() * t];
        for (o, row) in out.chunks_exact_mut(t).zip(&self.rows) {
            for &(j, a) in row {
                let xj = &x[j as usize * t..(j as usize + 1) * t];
                o.iter_mut().zip(xj).for_each(|(o, x)| *o += a * x);
            }
        }
        out
    }

    /// `Aᵀ Y` for `Y` with one row per sample and `t` columns: `tokens × t`.
    fn tr_mul(&self, y: &[f64], tokens: usize, t: usize) -> Vec<f64> {
        let mut out = vec![0.0; tokens * t];
        for (yi, row) in y.chunks_exact(t).zip(&self.rows) {
            for &(j, a) in row {
                let o = &mut out[j as usize * t..(j as usize + 1) * t];
                o.iter_mut().zip(yi).for_each(|(o, y)| *o += a * y);
            }
        }
        out
    }
}

/// How hard the fit pulls.
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    /// The ridge weight `λ`: larger keeps the distilled rows, smaller follows the samples.
    pub lambda: f64,
    /// Conjugate-gradient iterations.
    pub iterations: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            lambda: 1e-3,
            iterations: 60,
        }
    }
}

/// Per-column dot products of two matrices with `t` columns.
fn column_dots(a: &[f64], b: &[f64], t: usize) -> Vec<f64> {
    let mut dots = vec![0.0; t];
    for (ra, rb) in a.chunks_exact(t).zip(b.chunks_exact(t)) {
        for ((d, x), y) in dots.iter_mut().zip(ra).zip(rb) {
            *d += x * y;
        }
    }
    dots
}

/// The fitted table (`tokens × out_dims`, row-major) from the distilled `table` (`tokens × dims`),
/// the samples' token lists and the teacher's vectors of them (`teacher_dims` each; `out_dims` at
/// most that).
pub(crate) fn fit(
    table: &[f32],
    dims: usize,
    design: &Design,
    targets: &[Vec<f32>],
    teacher_dims: usize,
    out_dims: usize,
    options: FitOptions,
) -> Vec<f32> {
    let all_tokens = table.len() / dims;
    let t = teacher_dims;
    // Only rows that are not zero or that a sample holds take part (the others stay zero), and
    // only samples with tokens.
    let mut active = vec![false; all_tokens];
    for (a, row) in active.iter_mut().zip(table.chunks_exact(dims)) {
        *a = row.iter().any(|v| *v != 0.0);
    }
    for &(j, _) in design.rows.iter().flatten() {
        if let Some(a) = active.get_mut(j as usize) {
            *a = true;
        }
    }
    let rows_kept: Vec<usize> = (0..all_tokens).filter(|&j| active[j]).collect();
    let mut compact = vec![u32::MAX; all_tokens];
    for (c, &j) in rows_kept.iter().enumerate() {
        compact[j] = c as u32;
    }
    let tokens = rows_kept.len();
    let kept: Vec<usize> = (0..design.rows.len())
        .filter(|&i| !design.rows[i].is_empty())
        .collect();
    let design = Design {
        rows: kept
            .iter()
            .map(|&i| {
                design.rows[i]
                    .iter()
                    .filter(|(j, _)| (*j as usize) < all_tokens)
                    .map(|&(j, a)| (compact[j as usize], a))
                    .collect()
            })
            .collect(),
    };
    let table: Vec<f64> = rows_kept
        .iter()
        .flat_map(|&j| {
            table[j * dims..(j + 1) * dims]
                .iter()
                .map(|&v| f64::from(v))
        })
        .collect();
    let n = design.rows.len();
    let y: Vec<f64> = kept
        .iter()
        .flat_map(|&i| targets[i].iter().map(|&v| f64::from(v)))
        .collect();

    // 1. Z (normalised static vectors), then M = U Vᵀ of ZᵀY = U Σ Vᵀ.
    let mut z = design.mul(&table, dims);
    for row in z.chunks_exact_mut(dims) {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
    let zm = DMatrix::from_row_slice(n, dims, &z);
    let ym = DMatrix::from_row_slice(n, t, &y);
    let svd = zm.tr_mul(&ym).svd(true, true);
    let map = match (svd.u, svd.v_t) {
        (Some(u), Some(v_t)) => u * v_t,
        _ => DMatrix::zeros(dims, t),
    };
    let mut start = vec![0.0; tokens * t];
    for (row, out) in table.chunks_exact(dims).zip(start.chunks_exact_mut(t)) {
        if row.iter().all(|v| *v == 0.0) {
            continue;
        }
        for (c, o) in out.iter_mut().enumerate() {
            *o = row.iter().enumerate().map(|(k, v)| v * map[(k, c)]).sum();
        }
    }
    let means = design.mul(&start, t);
    let scale = means
        .chunks_exact(t)
        .map(|r| r.iter().map(|v| v * v).sum::<f64>().sqrt())
        .sum::<f64>()
        / n.max(1) as f64;
    if scale > 0.0 {
        start.iter_mut().for_each(|v| *v /= scale);
    }

    // 2. Conjugate gradients on (AᵀA + λI) E = AᵀY + λE₀, from E₀.
    let lambda = options.lambda;
    let op = |x: &[f64]| -> Vec<f64> {
        let mut out = design.tr_mul(&design.mul(x, t), tokens, t);
        out.iter_mut().zip(x).for_each(|(o, x)| *o += lambda * x);
        out
    };
    let mut b = design.tr_mul(&y, tokens, t);
    b.iter_mut().zip(&start).for_each(|(b, s)| *b += lambda * s);
    let mut x = start;
    let mut r: Vec<f64> = b.iter().zip(op(&x)).map(|(b, a)| b - a).collect();
    let mut p = r.clone();
    let mut rs = column_dots(&r, &r, t);
    for _ in 0..options.iterations {
        let ap = op(&p);
        let pap = column_dots(&p, &ap, t);
        let alpha: Vec<f64> = rs
            .iter()
            .zip(&pap)
            .map(|(r, d)| if *d > 0.0 { r / d } else { 0.0 })
            .collect();
        for (((xr, pr), rr), apr) in x
            .chunks_exact_mut(t)
            .zip(p.chunks_exact(t))
            .zip(r.chunks_exact_mut(t))
            .zip(ap.chunks_exact(t))
        {
            for c in 0..t {
                xr[c] += alpha[c] * pr[c];
                rr[c] -= alpha[c] * apr[c];
            }
        }
        let rn = column_dots(&r, &r, t);
        let beta: Vec<f64> = rn
            .iter()
            .zip(&rs)
            .map(|(n, o)| if *o > 0.0 { n / o } else { 0.0 })
            .collect();
        for (pr, rr) in p.chunks_exact_mut(t).zip(r.chunks_exact(t)) {
            for c in 0..t {
                pr[c] = rr[c] + beta[c] * pr[c];
            }
        }
        rs = rn;
    }

    // 3. Down to `out_dims` dimensions along the first principal directions of EᵀE, back in
    // place among the zero rows.
    let k = out_dims.min(t);
    let projected = project(&x, tokens, t, k);
    let mut out = vec![0f32; all_tokens * k];
    for (c, &j) in rows_kept.iter().enumerate() {
        out[j * k..(j + 1) * k].copy_from_slice(&projected[c * k..(c + 1) * k]);
    }
    out
}

/// The `tokens × t` rows of `x` on the first `k` eigenvectors of `xᵀx` (each turned so that its
/// largest component is positive), as f32.
fn project(x: &[f64], tokens: usize, t: usize, k: usize) -> Vec<f32> {
    let xm = DMatrix::from_row_slice(tokens, t, x);
    let (basis, _) = principal_basis(xm.tr_mul(&xm), k);
    let projected = xm * basis;
    projected.transpose().iter().map(|&v| v as f32).collect()
}

/// The first `k` eigenvectors of the symmetric `d × d` matrix `m`, by eigenvalue (largest first),
/// each turned so that its largest component is positive (the result does not depend on the
/// solver's signs), as the columns of a `d × k` matrix; and the share of the (non-negative)
/// eigenvalues they keep. [`crate::distill`]'s PCA and the fit's projection share it.
pub(crate) fn principal_basis(m: DMatrix<f64>, k: usize) -> (DMatrix<f64>, f64) {
    let d = m.nrows();
    let eigen = SymmetricEigen::new(m);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    let total: f64 = eigen.eigenvalues.iter().map(|v| v.max(0.0)).sum();
    let kept: f64 = order[..k]
        .iter()
        .map(|&i| eigen.eigenvalues[i].max(0.0))
        .sum();
    let mut basis = DMatrix::<f64>::zeros(d, k);
    for (c, &i) in order[..k].iter().enumerate() {
        let v = eigen.eigenvectors.column(i);
        let largest = v
            .iter()
            .copied()
            .fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
        basis.set_column(c, &(v * if largest < 0.0 { -1.0 } else { 1.0 }));
    }
    (basis, if total > 0.0 { kept / total } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f64], b: &[f64]) -> f64 {
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / (norm(a) * norm(b))
    }

    /// With λ → 0 and as many independent samples as tokens, the fit solves `A E = Y`: each
    /// sample's mean row points where its target does (the final rotation keeps cosines when
    /// every teacher dimension is kept).
    #[test]
    fn an_exactly_determined_fit_reproduces_the_targets() {
        // Four tokens in two dimensions: a poor static table.
        let table = [1.0f32, 0.0, 0.9, 0.1, 0.0, 1.0, 0.5, 0.5];
        let design = Design::new(&[vec![0], vec![1], vec![2, 3], vec![3, 3, 0]]);
        let targets = vec![
            vec![0.0f32, 0.0, 1.0],
            vec![0.0, 1.0, 0.0],
            vec![1.0, 0.0, 0.0],
            vec![0.6, 0.8, 0.0],
        ];
        let options = FitOptions {
            lambda: 1e-9,
            iterations: 50,
        };
        let fitted = fit(&table, 2, &design, &targets, 3, 3, options);
        let rows: Vec<f64> = fitted.iter().map(|&v| f64::from(v)).collect();
        let means = design.mul(&rows, 3);
        // The targets, rotated like the rows: compare the Gram matrices (cosines between samples).
        for i in 0..4 {
            for j in 0..4 {
                let t: Vec<Vec<f64>> = targets
                    .iter()
                    .map(|v| v.iter().map(|&x| f64::from(x)).collect())
                    .collect();
                let want = cosine(&t[i], &t[j]);
                let got = cosine(&means[i * 3..i * 3 + 3], &means[j * 3..j * 3 + 3]);
                assert!(
                    (want - got).abs() < 1e-4,
                    "samples {i},{j}: {got} vs {want}"
                );
            }
        }
        // The same inputs give the same bytes.
        assert_eq!(fitted, fit(&table, 2, &design, &targets, 3, 3, options));
    }

    /// A token without a row and without a sample keeps a zero row; all values stay finite.
    #[test]
    fn tokens_no_sample_holds_keep_a_zero_row_zero() {
        let table = [1.0f32, 0.0, 0.0, 0.0, 0.0, 1.0];
        let design = Design::new(&[vec![0], vec![2], vec![0, 2], vec![]]);
        let targets = vec![
            vec![1.0f32, 0.0],
            vec![0.0, 1.0],
            vec![0.7, 0.7],
            vec![0.0, 0.0],
        ];
        let fitted = fit(&table, 2, &design, &targets, 2, 2, FitOptions::default());
        assert_eq!(
            &fitted[2..4],
            &[0.0, 0.0],
            "token 1 has no row and no sample"
        );
        assert!(fitted.iter().all(|v| v.is_finite()));
    }
}
