//! How a sealed segment codes its points in memory ([`Codec`]), and a query made ready to be
//! compared with those codes ([`QueryCodes`]).
//!
//! - **int8** (`dims` bytes and a scale a point): symmetric scalar quantization, `v ≈ scale ·
//!   code`, `scale = max|v| / 127`; the query is quantized the same way and compared by one
//!   integer dot product ([`dot_i8`]: AVX2 through `pulp`). A similarity moves by at most a
//!   few thousandths.
//! - **binary** (`dims / 8` bytes and a scale a point): one sign bit a dimension, and
//!   `scale = ‖v‖² / ‖v‖₁`, so that `⟨q, scale · sign(v)⟩` equals `⟨q, v⟩` for `q = v` (the
//!   correction of RaBitQ-style estimators: the least-squares scale `mean |v|` would put a
//!   vector's similarity to itself near 2/π, below what int8 codes or the open graph's exact
//!   scores give the same point, and candidates of all parts are ranked together). The query
//!   is *not* binarized (asymmetric comparison): for each byte position of a
//!   code a table of the 256 sums of the query's components whose bits that byte sets, so a
//!   point costs `dims / 8` table reads. Comparing the full query with the signs ranks far
//!   better than comparing two bit strings (Hamming distance), for the same memory. Its error
//!   is much larger than int8's, so more candidates are rescored with the full vectors
//!   ([`Codec::rescored`]), and the beam is at least that wide.

use std::cell::OnceCell;

/// How a sealed segment's points are coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Codec {
    Int8,
    Binary,
}

impl Codec {
    /// Bytes of one point's code.
    pub(super) fn code_len(self, dims: usize) -> usize {
        match self {
            Codec::Int8 => dims,
            Codec::Binary => dims.div_ceil(8),
        }
    }

    /// Appends `v`'s code to `codes` ([`Codec::code_len`] bytes) and returns its scale.
    pub(super) fn encode(self, v: &[f32], codes: &mut Vec<i8>) -> f32 {
        match self {
            Codec::Int8 => quantize(v, codes),
            Codec::Binary => binarize(v, codes),
        }
    }

    /// How many of the best candidates by code are read from disk and compared exactly to return
    /// the top `k`. int8: `2k + 16` (quantization moved a similarity by at most 0.0023 in
    /// `flat_tests::approximate_similarities_are_close`; a true top-k point ranks past that only
    /// among near-ties that close). binary: `2k + 96`: a fixed margin for the near-ties its
    /// coarser codes misorder at the top, and twice `k` like int8 for a deep search (a hybrid
    /// query's or an oversampled filtered walk's `k` of 40 to a few hundred), which `8k + 32`
    /// made several times slower at 100k chunks for no recall. On the real SciFact queries over
    /// the corpus's vectors, recall@10 against an exact scan was 0.9920 with binary codes (beam
    /// 106, 116 rescored) and 0.9903 with int8 codes at `ef_search` 64
    /// (`flat_tests::codes_on_scifact_queries`; the graph's parallel build varies a little
    /// between runs).
    pub(super) fn rescored(self, k: usize) -> usize {
        match self {
            Codec::Int8 => k.saturating_mul(2).saturating_add(16),
            Codec::Binary => k.saturating_mul(2).saturating_add(96),
        }
    }

    /// The beam width of a graph walk for the top `k` with `ef` asked for: at least `k`, and for
    /// binary codes at least `k + 96`, the margin [`Codec::rescored`] keeps for near-ties (not
    /// all of `2k + 96`: an oversampled filtered walk asks for a `k` of hundreds and keeps the
    /// permitted ones only, and at 1M chunks a beam of `2k + 96` in each of eight segments
    /// doubled its time).
    pub(super) fn beam(self, ef: usize, k: usize) -> usize {
        match self {
            Codec::Int8 => ef.max(k),
            Codec::Binary => ef.max(k.saturating_add(96)),
        }
    }

    /// The first bytes of a flat graph of this codec (`flat.bin`).
    pub(super) fn magic(self) -> &'static [u8; 8] {
        match self {
            Codec::Int8 => b"QFLAT001",
            Codec::Binary => b"QFLATB01",
        }
    }

    pub(super) fn from_magic(bytes: &[u8]) -> Option<Codec> {
        [Codec::Int8, Codec::Binary]
            .into_iter()
            .find(|c| c.magic() == bytes)
    }
}

/// A vector as int8 codes and a scale: `v[i] ≈ scale · code[i]`.
pub(super) fn quantize(v: &[f32], codes: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    codes.extend(
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// A vector as sign bits (bit `t` of byte `j` set when `v[8j + t] > 0`) and a scale
/// (`‖v‖² / ‖v‖₁`: `⟨v, scale · sign(v)⟩ = ‖v‖²`).
fn binarize(v: &[f32], codes: &mut Vec<i8>) -> f32 {
    codes.extend(v.chunks(8).map(|byte| {
        byte.iter()
            .enumerate()
            .fold(0u8, |b, (t, x)| if *x > 0.0 { b | 1 << t } else { b }) as i8
    }));
    let l1: f32 = v.iter().map(|x| x.abs()).sum();
    let l2: f32 = v.iter().map(|x| x * x).sum();
    if l1 > 0.0 { l2 / l1 } else { 1.0 }
}

/// Integer dot product of a query's int8 codes, widened to `i16` once per query ([`widen`]),
/// with a point's codes (the same length). On x86-64 with AVX2 one instruction sign-extends 16 of
/// the point's codes and one multiplies and adds them pairwise into 32-bit sums (`vpmaddwd`): the
/// point's codes are the only ones converted. The compiler's own vectorisation of the plain loop
/// converted both sides, in 128-bit halves, at two to three times the cost (a search at a million
/// points computes about 8,000 of these). Elsewhere, the plain loop.
pub(super) fn dot_i8(query: &[i16], code: &[i8]) -> i32 {
    debug_assert_eq!(query.len(), code.len());
    #[cfg(target_arch = "x86_64")]
    {
        static V3: std::sync::LazyLock<Option<pulp::x86::V3>> =
            std::sync::LazyLock::new(pulp::x86::V3::try_new);
        if let Some(simd) = *V3 {
            return simd.vectorize(DotV3 { simd, query, code });
        }
    }
    plain_dot(query, code)
}

/// The int8 query as `i16`s, for [`dot_i8`].
pub(super) fn widen(codes: &[i8]) -> Vec<i16> {
    codes.iter().map(|&c| i16::from(c)).collect()
}

fn plain_dot(query: &[i16], code: &[i8]) -> i32 {
    query
        .iter()
        .zip(code)
        .map(|(a, b)| i32::from(*a) * i32::from(*b))
        .sum()
}

#[cfg(target_arch = "x86_64")]
struct DotV3<'a> {
    simd: pulp::x86::V3,
    query: &'a [i16],
    code: &'a [i8],
}

#[cfg(target_arch = "x86_64")]
impl pulp::NullaryFnOnce for DotV3<'_> {
    type Output = i32;

    #[inline(always)]
    fn call(self) -> i32 {
        let simd = self.simd;
        let (q16, q_tail) = pulp::as_arrays::<16, _>(self.query);
        let (c16, c_tail) = pulp::as_arrays::<16, _>(self.code);
        let mut acc = simd.splat_i32x8(0);
        for (q, c) in q16.iter().zip(c16) {
            let q: pulp::i16x16 = pulp::cast(*q);
            let c = simd.convert_i8x16_to_i16x16(pulp::cast(*c));
            // |q · c| ≤ 127²: the total fits an i32 up to 133,000 dims
            acc = simd.wrapping_add_i32x8(acc, simd.multiply_wrapping_add_adjacent_i16x16(q, c));
        }
        let lanes: [i32; 8] = pulp::cast(acc);
        lanes.iter().sum::<i32>() + plain_dot(q_tail, c_tail)
    }
}

/// A query (normalised `f32`) ready to be compared with codes of either codec; what each codec
/// needs is made on first use, once for every segment a search walks.
pub(super) struct QueryCodes<'a> {
    query: &'a [f32],
    int8: OnceCell<(Vec<i16>, f32)>,
    /// For each byte position `j` of a binary code, 256 sums: entry `b` is the sum of
    /// `query[8j + t]` over the bits `t` set in `b`. Then the sum of the whole query.
    table: OnceCell<(Vec<f32>, f32)>,
}

impl<'a> QueryCodes<'a> {
    pub(super) fn new(query: &'a [f32]) -> Self {
        QueryCodes {
            query,
            int8: OnceCell::new(),
            table: OnceCell::new(),
        }
    }

    pub(super) fn query(&self) -> &'a [f32] {
        self.query
    }

    fn table(&self) -> &(Vec<f32>, f32) {
        self.table.get_or_init(|| {
            let mut table = vec![0f32; self.query.len().div_ceil(8) * 256];
            for (part, q) in table.chunks_exact_mut(256).zip(self.query.chunks(8)) {
                for b in 1..256usize {
                    // b's lowest bit added to the sum of b without it (already filled)
                    let t = b.trailing_zeros() as usize;
                    part[b] = part[b & (b - 1)] + q.get(t).copied().unwrap_or(0.0);
                }
            }
            (table, self.query.iter().sum())
        })
    }

    /// The approximate similarity of this query to a point coded by `codec` as `code` with
    /// `scale`.
    pub(super) fn approx(&self, codec: Codec, scale: f32, code: &[i8]) -> f32 {
        match codec {
            Codec::Int8 => {
                let (q, q_scale) = self.int8.get_or_init(|| {
                    let mut q = Vec::with_capacity(self.query.len());
                    let s = quantize(self.query, &mut q);
                    (widen(&q), s)
                });
                q_scale * scale * dot_i8(q, code) as f32
            }
            Codec::Binary => {
                let (table, sum) = self.table();
                let set: f32 = code
                    .iter()
                    .zip(table.chunks_exact(256))
                    .map(|(b, part)| part[usize::from(*b as u8)])
                    .sum();
                // Σ q·(±1) = (sum over set bits) − (sum over clear bits)
                scale * (2.0 * set - sum)
            }
        }
    }
}
