//! The BERT encoder the local embedder runs: candle-transformers' `BertModel` (Apache-2.0/MIT,
//! `models/bert.rs`) written again here, with the same weights, names and maths, because
//! `BertModel` lets a caller replace none of its parts and two of them cost time on the CPU
//! (BENCHMARKS.md, "MiniLM on the CPU"):
//!
//! - the GELU: candle's exact one calls a scalar `erf` per activation (a fifth of an ingest's CPU
//!   samples); here [`gelu_erf`] uses a rational approximation of `erf` (Eigen's and
//!   TensorFlow's fast `erf`; |error| < 5e-7 on [-6, 6], a few f32 ulps, checked in the tests)
//!   over slices, on rayon's threads and the widest SIMD the CPU has;
//! - the softmax: `candle_nn::ops::softmax` is built from five tensor ops; here the fused
//!   `softmax_last_dim`.
//!
//! Measured: +3.5 % tokens/s on an ingest at 64-token chunks. Stacking the query, key and value
//! weights into one matrix product was tried and was slower (the three heads' copies out of the
//! stacked result cost more than the two products saved). This is also where fused attention
//! and fewer allocations would go. Dropout (inference only) and the tracing spans are left out;
//! absolute positions only (as `BertModel`).

use candle_core::{CpuStorage, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder, embedding, layer_norm, linear};
use candle_transformers::models::bert::{Config, HiddenAct};

/// A BERT encoder: token ids in, the last layer's hidden states out.
pub(crate) struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    heads: usize,
    head_size: usize,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    act: HiddenAct,
    out: Linear,
    out_norm: LayerNorm,
}

impl Bert {
    /// Loads the weights the way `BertModel::load` names them (under `bert.` or the model type
    /// when the file has them there).
    pub(crate) fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let vb =
            if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
                vb.pp("bert")
            } else if let Some(kind) = config.model_type.as_deref().filter(|kind| {
                vb.contains_tensor(&format!("{kind}.embeddings.word_embeddings.weight"))
            }) {
                vb.pp(kind)
            } else {
                vb
            };
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let heads = config.num_attention_heads;
        if heads == 0 || h % heads != 0 {
            // BertModel divides by it and panics; a config.json from a model folder is input
            candle_core::bail!(
                "num_attention_heads {heads} does not divide hidden_size {h} into equal heads"
            );
        }
        let e = vb.pp("embeddings");
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), config))
            .collect::<Result<Vec<_>>>()?;
        Ok(Bert {
            word: embedding(config.vocab_size, h, e.pp("word_embeddings"))?,
            position: embedding(
                config.max_position_embeddings,
                h,
                e.pp("position_embeddings"),
            )?,
            token_type: embedding(config.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            embeddings_norm: layer_norm(h, eps, e.pp("LayerNorm"))?,
            layers,
        })
    }

    /// Hidden states `(batch, len, hidden)` of `ids` and `types` `(batch, len)`, `mask` 1 for a
    /// token and 0 for padding.
    pub(crate) fn forward(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, len) = ids.dims2()?;
        let positions = Tensor::arange(0u32, len as u32, ids.device())?;
        let x = (self.word.forward(ids)? + self.token_type.forward(types)?)?
            .broadcast_add(&self.position.forward(&positions)?)?;
        let mut x = self.embeddings_norm.forward(&x)?;
        // (batch, 1, 1, len): 0 where attended, f32::MIN where padding, as BertModel makes it
        let mask = mask.unsqueeze(1)?.unsqueeze(1)?.to_dtype(DType::F32)?;
        let mask = ((mask.ones_like()? - &mask)? * f64::from(f32::MIN))?;
        for layer in &self.layers {
            x = layer.forward(&x, &mask)?;
        }
        Ok(x)
    }
}

impl Layer {
    fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let heads = config.num_attention_heads; // checked by Bert::load
        let a = vb.pp("attention");
        let s = a.pp("self");
        Ok(Layer {
            query: linear(h, h, s.pp("query"))?,
            key: linear(h, h, s.pp("key"))?,
            value: linear(h, h, s.pp("value"))?,
            heads,
            head_size: h / heads,
            attention_out: linear(h, h, a.pp("output.dense"))?,
            attention_norm: layer_norm(h, eps, a.pp("output.LayerNorm"))?,
            intermediate: linear(h, config.intermediate_size, vb.pp("intermediate.dense"))?,
            act: config.hidden_act,
            out: linear(config.intermediate_size, h, vb.pp("output.dense"))?,
            out_norm: layer_norm(h, eps, vb.pp("output.LayerNorm"))?,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, len, hidden) = x.dims3()?;
        // (batch, len, hidden) → (batch, heads, len, head)
        let heads = |proj: &Linear| {
            proj.forward(x)?
                .reshape((batch, len, self.heads, self.head_size))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (heads(&self.query)?, heads(&self.key)?, heads(&self.value)?);
        let scores = (q.matmul(&k.t()?)? / (self.head_size as f64).sqrt())?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(mask)?)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, len, hidden))?;
        let attended = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + x)?)?;
        let inner = self.intermediate.forward(&attended)?;
        let inner = match self.act {
            HiddenAct::Gelu => inner.apply_op1_no_bwd(&GeluErf)?,
            HiddenAct::GeluApproximate => inner.gelu()?,
            HiddenAct::Relu => inner.relu()?,
        };
        self.out_norm
            .forward(&(self.out.forward(&inner)? + attended)?)
    }
}

/// The exact GELU, `x · (1 + erf(x / √2)) / 2`, with [`erf`]: a custom op over f32 tensors.
struct GeluErf;

impl candle_core::CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "quarry-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("{}: f32 only", self.name())
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{}: a contiguous tensor only", self.name())
        };
        Ok((
            CpuStorage::F32(gelu_erf(&data[start..end])),
            layout.shape().clone(),
        ))
    }
}

/// [`GeluErf`] of each value: slices of [`GELU_CHUNK`] values on rayon's threads, each on the
/// widest SIMD the CPU has (`pulp` compiles the loop for AVX-512 and AVX2 and picks at run time;
/// the build itself targets SSE2).
fn gelu_erf(xs: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    static ARCH: std::sync::LazyLock<pulp::Arch> = std::sync::LazyLock::new(pulp::Arch::new);
    let mut out = vec![0f32; xs.len()];
    out.par_chunks_mut(GELU_CHUNK)
        .zip(xs.par_chunks(GELU_CHUNK))
        .for_each(|(out, xs)| {
            ARCH.dispatch(|| {
                for (o, &x) in out.iter_mut().zip(xs) {
                    *o = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                }
            })
        });
    out
}

/// Values a thread takes at a time (a layer's activations are ~100,000 to a few million).
const GELU_CHUNK: usize = 16 * 1024;

/// `erf(x)` as a rational function of `x` on [-4, 4] (its value at ±4 outside, where `erf` is
/// within 2e-8 of ±1): Eigen's `generic_fast_erf_float` (also TensorFlow's), branch-free so that a loop over a
/// slice vectorises.
#[inline(always)]
fn erf(x: f32) -> f32 {
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

    #[test]
    fn a_config_whose_heads_do_not_divide_the_hidden_size_is_an_error() {
        let config = |heads: usize| -> Config {
            serde_json::from_value(serde_json::json!({"vocab_size": 10, "hidden_size": 8,
                "num_hidden_layers": 1, "num_attention_heads": heads, "intermediate_size": 16,
                "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "max_position_embeddings": 32,
                "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
                "pad_token_id": 0}))
            .unwrap()
        };
        let vb = || VarBuilder::zeros(DType::F32, &candle_core::Device::Cpu);
        for heads in [0, 3] {
            let e = Bert::load(vb(), &config(heads)).err().expect("refused");
            assert!(e.to_string().contains("num_attention_heads"), "{e}");
        }
        // a valid config runs: (1, 3) ids in, (1, 3, 8) hidden states out
        let bert = Bert::load(vb(), &config(2)).unwrap();
        let ids = Tensor::new(&[[1u32, 2, 3]], &candle_core::Device::Cpu).unwrap();
        let mask = Tensor::new(&[[1f32, 1., 0.]], &candle_core::Device::Cpu).unwrap();
        let out = bert
            .forward(&ids, &ids.zeros_like().unwrap(), &mask)
            .unwrap();
        assert_eq!(out.dims(), &[1, 3, 8]);
    }

    #[test]
    fn the_gelu_op_matches_candles_exact_gelu() {
        let xs: Vec<f32> = (-400..400).map(|i| i as f32 / 50.0).collect();
        let t = Tensor::new(xs.as_slice(), &candle_core::Device::Cpu).unwrap();
        let ours: Vec<f32> = t.apply_op1_no_bwd(&GeluErf).unwrap().to_vec1().unwrap();
        let candle: Vec<f32> = t.gelu_erf().unwrap().to_vec1().unwrap();
        for ((a, b), x) in ours.iter().zip(&candle).zip(&xs) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b} at {x}");
        }
        // a view that is not contiguous is refused, not misread
        let m = Tensor::new(&[[1f32, 2.], [3., 4.]], &candle_core::Device::Cpu).unwrap();
        assert!(m.t().unwrap().apply_op1_no_bwd(&GeluErf).is_err());
    }
}
