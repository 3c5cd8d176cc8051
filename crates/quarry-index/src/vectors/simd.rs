//! [`dot`], the similarity of two normalised vectors, on the widest SIMD the CPU has.

/// Dot product; the similarity of two L2-normalised vectors (only `min(a.len(), b.len())`
/// elements count). Runs on the widest SIMD the CPU has, found at run time by `pulp` (AVX2 with
/// fused multiply-adds on this project's x86-64 machines), not the SSE2 baseline the build
/// targets: the graph search spends much of its time here.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    static ARCH: std::sync::LazyLock<pulp::Arch> = std::sync::LazyLock::new(pulp::Arch::new);
    let n = a.len().min(b.len());
    ARCH.dispatch(Dot(&a[..n], &b[..n]))
}

/// [`dot`] of two slices of one length, for any SIMD width: two accumulators, then the rest.
pub(super) struct Dot<'a>(pub(super) &'a [f32], pub(super) &'a [f32]);

impl pulp::WithSimd for Dot<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> f32 {
        let (a, a_rest) = S::as_simd_f32s(self.0);
        let (b, b_rest) = S::as_simd_f32s(self.1);
        let (a2, a1) = pulp::as_arrays::<2, _>(a);
        let (b2, b1) = pulp::as_arrays::<2, _>(b);
        let (mut acc0, mut acc1) = (simd.splat_f32s(0.0), simd.splat_f32s(0.0));
        for ([x0, x1], [y0, y1]) in a2.iter().zip(b2) {
            acc0 = simd.mul_add_e_f32s(*x0, *y0, acc0);
            acc1 = simd.mul_add_e_f32s(*x1, *y1, acc1);
        }
        for (x, y) in a1.iter().zip(b1) {
            acc0 = simd.mul_add_e_f32s(*x, *y, acc0);
        }
        let rest: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
        simd.reduce_sum_f32s(simd.add_f32s(acc0, acc1)) + rest
    }
}
