//! The BERT encoder the local embedder runs: candle-transformers' `BertModel` (Apache-2.0/MIT,
//! `models/bert.rs`) written again here, with the same weights, names and maths, because
//! `BertModel` lets a caller replace none of its parts and most of its element-wise steps cost
//! time on the CPU (BENCHMARKS.md, "MiniLM on the CPU" and "the encoder's steps fused"):
//!
//! - activations are `(batch · len, hidden)` rows throughout, and each layer's four matrix
//!   products run against weights transposed once at load (gemm packs those faster);
//! - the query, key and value projections are one product, and [`Attention`] takes it from
//!   there (biases, scaling, mask, softmax, weighted sum) in one op;
//! - each product's bias goes into the step after it: [`BiasGelu`] and [`BiasResidualNorm`],
//!   in place.
//!
//! Measured against `BertModel` in the same run (the embed bench): 1.68× its tokens/s at
//! 64-token chunks; the hidden states of real tokens (not padding) equal its own within f32
//! rounding and the two approximations of [`crate::bert_ops`] (`erf`, `exp`), tested in
//! `tests/parity.rs`. Padding rows get no attention context here (`BertModel` attends from them
//! too); mean pooling leaves them out. Dropout (inference only) and the tracing spans are left
//! out; absolute positions only (as `BertModel`).

use crate::bert_ops::{Attention, BiasGelu, BiasResidualNorm};
use candle_core::{DType, Module, Result, Tensor};
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
    /// `(hidden, 3 · hidden)`: the query, key and value projections side by side, their biases in
    /// `qkv_bias`, added by [`Attention`]
    qkv: Tensor,
    qkv_bias: Vec<f32>,
    heads: usize,
    /// `(hidden, hidden)`, transposed as [`split`] makes all four: the attention's output
    /// projection (its bias is in `attention_norm`)
    attention_out: Tensor,
    attention_norm: BiasResidualNorm,
    /// `(hidden, intermediate)`, its bias in `gelu`
    intermediate: Tensor,
    act: HiddenAct,
    /// the intermediate product's bias, added by the fused [`BiasGelu`] (or, for another
    /// activation, as a tensor made at the call)
    gelu: BiasGelu,
    /// `(intermediate, hidden)`, its bias in `out_norm`
    out: Tensor,
    out_norm: BiasResidualNorm,
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
        check(config)?;
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
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
        let (batch, _, hidden) = x.dims3()?;
        let mut x = self
            .embeddings_norm
            .forward(&x)?
            .reshape((batch * len, hidden))?;
        let mask: Vec<f32> = mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        for layer in &self.layers {
            x = layer.forward(&x, len, &mask)?;
        }
        x.reshape((batch, len, hidden))
    }
}

impl Layer {
    fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let heads = config.num_attention_heads; // checked by Bert::load
        let a = vb.pp("attention");
        let s = a.pp("self");
        let intermediate = linear(h, config.intermediate_size, vb.pp("intermediate.dense"))?;
        let (intermediate, intermediate_bias) = split(intermediate)?;
        let (attention_out, attention_norm) = dense_norm(
            linear(h, h, a.pp("output.dense"))?,
            layer_norm(h, eps, a.pp("output.LayerNorm"))?,
            eps,
        )?;
        let (out, out_norm) = dense_norm(
            linear(config.intermediate_size, h, vb.pp("output.dense"))?,
            layer_norm(h, eps, vb.pp("output.LayerNorm"))?,
            eps,
        )?;
        let (mut weights, mut biases) = (Vec::new(), Vec::new());
        for name in ["query", "key", "value"] {
            let (w, b) = split(linear(h, h, s.pp(name))?)?;
            weights.push(w);
            biases.extend(b.to_vec1::<f32>()?);
        }
        Ok(Layer {
            qkv: Tensor::cat(&weights, 1)?,
            qkv_bias: biases,
            heads,
            attention_out,
            attention_norm,
            gelu: BiasGelu {
                bias: intermediate_bias.to_vec1()?,
            },
            intermediate,
            act: config.hidden_act,
            out,
            out_norm,
        })
    }

    /// Hidden states `(batch · len, hidden)` of a batch of texts of `len` tokens, `mask` 1 for
    /// a token and 0 for padding.
    fn forward(&self, x: &Tensor, len: usize, mask: &[f32]) -> Result<Tensor> {
        let context = x.matmul(&self.qkv)?.apply_op1_no_bwd(&Attention {
            bias: &self.qkv_bias,
            heads: self.heads,
            len,
            mask,
        })?;
        // the products are new tensors: the fused steps write over them
        let attended = context.matmul(&self.attention_out)?;
        attended.inplace_op2(x, &self.attention_norm)?;
        let inner = attended.matmul(&self.intermediate)?;
        // another activation than the exact GELU: the bias added as a tensor, then the activation
        let biased = |inner: &Tensor| {
            inner.broadcast_add(&Tensor::new(self.gelu.bias.as_slice(), inner.device())?)
        };
        let inner = match self.act {
            HiddenAct::Gelu => {
                inner.inplace_op1(&self.gelu)?;
                inner
            }
            HiddenAct::GeluApproximate => biased(&inner)?.gelu()?,
            HiddenAct::Relu => biased(&inner)?.relu()?,
        };
        let out = inner.matmul(&self.out)?;
        out.inplace_op2(&attended, &self.out_norm)?;
        Ok(out)
    }
}

/// Refuses a config that would make the encoder (or `BertModel`) divide by zero or panic: a
/// `config.json` from a model folder is input.
pub(crate) fn check(config: &Config) -> Result<()> {
    let (h, heads) = (config.hidden_size, config.num_attention_heads);
    if h == 0 || heads == 0 || h % heads != 0 {
        candle_core::bail!(
            "num_attention_heads {heads} does not divide hidden_size {h} into equal heads"
        );
    }
    Ok(())
}

/// A linear layer's weight, transposed to `(in, out)` and laid out so (the product packs a
/// row-major right-hand side faster than the transposed view: +3 to 10 % on MiniLM's shapes),
/// and its bias.
fn split(linear: Linear) -> Result<(Tensor, Tensor)> {
    let bias = match linear.bias() {
        Some(b) => b.clone(),
        None => candle_core::bail!("a BERT linear layer without a bias"),
    };
    Ok((linear.weight().t()?.contiguous()?, bias))
}

/// A linear layer followed by a residual layer norm: its weight, and the fused op that adds its
/// bias and the residual and normalises.
fn dense_norm(linear: Linear, norm: LayerNorm, eps: f64) -> Result<(Tensor, BiasResidualNorm)> {
    let (weight, bias) = split(linear)?;
    let Some(beta) = norm.bias() else {
        candle_core::bail!("a BERT layer norm without a bias")
    };
    Ok((
        weight,
        BiasResidualNorm {
            bias: bias.to_vec1()?,
            gamma: norm.weight().to_vec1()?,
            beta: beta.to_vec1()?,
            eps: eps as f32,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn every_activation_matches_candles_bert_model_on_random_weights() {
        use candle_nn::VarMap;
        use candle_transformers::models::bert::BertModel;
        let device = candle_core::Device::Cpu;
        for act in ["gelu", "geluapproximate", "relu"] {
            // 2 layers of 4 heads of 8, random weights shared by both models through one VarMap
            let config: Config = serde_json::from_value(serde_json::json!({"vocab_size": 50,
                "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 64, "hidden_act": act, "hidden_dropout_prob": 0.1,
                "max_position_embeddings": 16, "type_vocab_size": 2, "initializer_range": 0.02,
                "layer_norm_eps": 1e-12, "pad_token_id": 0}))
            .unwrap();
            let vars = VarMap::new();
            let vb = VarBuilder::from_varmap(&vars, DType::F32, &device);
            let ours = Bert::load(vb.clone(), &config).unwrap();
            let theirs = BertModel::load(vb, &config).unwrap();
            let ids = Tensor::new(&[[1u32, 7, 9, 3, 0], [4, 2, 0, 0, 0]], &device).unwrap();
            let mask =
                Tensor::new(&[[1f32, 1., 1., 1., 0.], [1., 1., 0., 0., 0.]], &device).unwrap();
            let types = ids.zeros_like().unwrap();
            let a: Vec<Vec<Vec<f32>>> = ours
                .forward(&ids, &types, &mask)
                .unwrap()
                .to_vec3()
                .unwrap();
            let b: Vec<Vec<Vec<f32>>> = theirs
                .forward(&ids, &types, Some(&mask))
                .unwrap()
                .to_vec3()
                .unwrap();
            assert_ne!(
                a[0][0], a[0][1],
                "{act}: random weights give distinct states"
            );
            let real = [4, 2]; // tokens of each text; padding rows differ by design
            for (t, n) in real.into_iter().enumerate() {
                for i in 0..n {
                    for (x, y) in a[t][i].iter().zip(&b[t][i]) {
                        assert!(
                            (x - y).abs() < 1e-4,
                            "{act}: text {t} token {i}: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }
}
