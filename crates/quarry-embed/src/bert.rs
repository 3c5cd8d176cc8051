//! The BERT encoder the local embedder runs: candle-transformers' `BertModel` (Apache-2.0/MIT,
//! `models/bert.rs`) written again here, with the same weights, names and maths, because
//! `BertModel` lets a caller replace none of its parts and most of its element-wise steps cost
//! time on the CPU (BENCHMARKS.md, "MiniLM on the CPU" and "the encoder's steps fused"):
//!
//! - a batch's texts are packed row after row, without padding, and activations are
//!   `(tokens, hidden)` row-major `f32` rows throughout, in buffers a pass reuses from layer to
//!   layer and keeps for the next pass;
//! - each layer's four matrix products are faer's, written into those buffers, against weights
//!   transposed once at load (candle's product allocates and zeroes its result, on one thread);
//! - the query, key and value projections are one product, and [`Attention`] takes it from
//!   there (biases, scaling, softmax, weighted sum, per text over its own rows) in one step;
//! - each product's bias goes into the step after it: [`BiasActivation`] and
//!   [`BiasResidualNorm`], in place.
//!
//! candle still loads the weights and runs the embeddings (lookups and their norm, once a
//! pass). Measured against `BertModel` in the same run (the embed bench): 1.68× its tokens/s at
//! 64-token chunks before the products moved to faer; the hidden states of real tokens equal
//! its own (of a padded batch) within f32 rounding and the two approximations of
//! [`crate::bert_ops`] (`erf`, `exp`), tested in `tests/parity.rs`.
//! Dropout (inference only) and the tracing spans are left out; absolute positions only (as
//! `BertModel`).

use crate::bert_ops::{Attention, BiasActivation, BiasResidualNorm};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder, embedding, layer_norm, linear};
use candle_transformers::models::bert::Config;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use std::sync::Mutex;

/// A BERT encoder: token ids in, the last layer's hidden states out.
pub(crate) struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    intermediate: usize,
    /// One forward pass at a time, and its buffers, kept for the next pass (a pass writes every
    /// value before it reads it; keeping them saves zeroing and faulting in ~30 MB a batch).
    /// Passes never ran side by side: each product and step already takes every core, and
    /// faer's thread scheduling (spindle's barriers on rayon's pool) is entered by one pass
    /// at a time.
    work: Mutex<Activations>,
}

/// Rows a pass keeps its buffers for at most: twice the local embedder's tokens per
/// batch (2,048); a larger batch (`quarry model distill --batch`) lets them go when it ends.
const KEEP_ROWS: usize = 4096;

/// A layer's intermediate activations for `rows` token rows, row-major.
#[derive(Default)]
struct Activations {
    /// `rows × 3 · hidden`: the stacked query, key and value projections
    qkv: Vec<f32>,
    /// `rows × hidden`: the attention's context
    context: Vec<f32>,
    /// `rows × hidden`: the attention block's output (its projection, bias, residual and
    /// norm): the feed-forward's input and its residual
    attended: Vec<f32>,
    /// `rows × intermediate`: the feed-forward's inner activations
    inner: Vec<f32>,
}

impl Activations {
    /// Sizes every buffer for `rows` rows; their values are left for the pass to write.
    fn fit(&mut self, rows: usize, hidden: usize, intermediate: usize) {
        for (buffer, width) in [
            (&mut self.qkv, 3 * hidden),
            (&mut self.context, hidden),
            (&mut self.attended, hidden),
            (&mut self.inner, intermediate),
        ] {
            let len = rows * width;
            if len > buffer.capacity() {
                // a new buffer, rather than one that copies the old values over as it grows
                *buffer = vec![0.0; len];
            } else {
                buffer.resize(len, 0.0);
            }
        }
    }
}

/// A linear layer's weight, `inputs × outputs` row-major (transposed from the file's layout once
/// at load), for [`Weight::product`].
struct Weight {
    values: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Weight {
    /// `out = xs · W` for the rows of `xs` (`rows × inputs` into `rows × outputs`), on rayon's
    /// threads (a query's few rows too: on the caller's thread alone, 32 queries took 1.4 to 1.7
    /// times as long in the embed bench). faer's product writes into `out`,
    /// where candle's allocates a zeroed tensor per product: that zeroing ran on one thread
    /// while the other waited, 5 % of an ingest's time in a profile (BENCHMARKS.md, "MiniLM on
    /// the CPU: products into reused buffers").
    fn product(&self, xs: &[f32], out: &mut [f32]) -> Result<()> {
        let rows = xs.len() / self.inputs.max(1);
        if self.inputs == 0 || xs.len() != rows * self.inputs || out.len() != rows * self.outputs {
            candle_core::bail!(
                "product: {} values into {} against a {}×{} weight",
                xs.len(),
                out.len(),
                self.inputs,
                self.outputs
            );
        }
        matmul(
            MatMut::from_row_major_slice_mut(out, rows, self.outputs),
            Accum::Replace,
            MatRef::from_row_major_slice(xs, rows, self.inputs),
            MatRef::from_row_major_slice(&self.values, self.inputs, self.outputs),
            1.0,
            Par::rayon(0),
        );
        Ok(())
    }
}

struct Layer {
    /// the query, key and value projections side by side (`hidden × 3 · hidden`), their biases
    /// in `qkv_bias`, added by [`Attention`]
    qkv: Weight,
    qkv_bias: Vec<f32>,
    heads: usize,
    /// the attention's output projection (its bias is in `attention_norm`)
    attention_out: Weight,
    attention_norm: BiasResidualNorm,
    /// `hidden × intermediate`, its bias added by `activation`
    intermediate: Weight,
    activation: BiasActivation,
    /// `intermediate × hidden`, its bias in `out_norm`
    out: Weight,
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
            hidden: h,
            intermediate: config.intermediate_size,
            work: Mutex::new(Activations::default()),
        })
    }

    /// Hidden states of a batch of texts, row after row (`Σ lens × hidden`): text `i` is the
    /// next `lens[i]` token ids of `ids` (token type 0, positions from 0), packed without
    /// padding, so every matrix product runs over real tokens only (a padded batch of ingest
    /// chunks was 3.5 % padding; BENCHMARKS.md, "MiniLM on the CPU: batches without padding").
    pub(crate) fn forward(&self, ids: &[u32], lens: &[usize]) -> Result<Vec<f32>> {
        let rows: usize = lens.iter().sum();
        if rows != ids.len() {
            candle_core::bail!("{} token ids for texts of {rows} tokens", ids.len());
        }
        if rows == 0 {
            return Ok(Vec::new());
        }
        // the encoder runs on the CPU only (the local embedder loads it there)
        let device = &candle_core::Device::Cpu;
        let positions: Vec<u32> = lens.iter().flat_map(|&n| 0..n as u32).collect();
        let ids = Tensor::from_slice(ids, rows, device)?;
        let positions = Tensor::from_vec(positions, rows, device)?;
        let x = ((self.word.forward(&ids)? + self.token_type.forward(&ids.zeros_like()?)?)?
            + self.position.forward(&positions)?)?;
        let mut x: Vec<f32> = self.embeddings_norm.forward(&x)?.flatten_all()?.to_vec1()?;
        // a pass that panicked left the buffers sized for another: `fit` sizes them anew
        let mut work = self
            .work
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        work.fit(rows, self.hidden, self.intermediate);
        let run = self
            .layers
            .iter()
            .try_for_each(|layer| layer.forward(&mut x, &mut work, lens));
        if rows > KEEP_ROWS {
            *work = Activations::default();
        }
        drop(work);
        run?;
        Ok(x)
    }
}

impl Layer {
    fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let heads = config.num_attention_heads; // checked by Bert::load
        let a = vb.pp("attention");
        let s = a.pp("self");
        let (intermediate, intermediate_bias) = split(linear(
            h,
            config.intermediate_size,
            vb.pp("intermediate.dense"),
        )?)?;
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
            biases.extend(b);
        }
        // the three side by side: row i of the stack is row i of each
        let qkv = Weight {
            values: (0..h)
                .flat_map(|i| {
                    weights
                        .iter()
                        .flat_map(move |w| &w.values[i * h..(i + 1) * h])
                })
                .copied()
                .collect(),
            inputs: h,
            outputs: 3 * h,
        };
        Ok(Layer {
            qkv,
            qkv_bias: biases,
            heads,
            attention_out,
            attention_norm,
            activation: BiasActivation {
                bias: intermediate_bias,
                act: config.hidden_act,
            },
            intermediate,
            out,
            out_norm,
        })
    }

    /// Hidden states of a batch of texts of `lens` tokens, row after row: `x` (`Σ lens ×
    /// hidden`) becomes the layer's output.
    fn forward(&self, x: &mut [f32], a: &mut Activations, lens: &[usize]) -> Result<()> {
        self.qkv.product(x, &mut a.qkv)?;
        Attention {
            bias: &self.qkv_bias,
            heads: self.heads,
            lens,
        }
        .apply(&mut a.context, &a.qkv)?;
        self.attention_out.product(&a.context, &mut a.attended)?;
        self.attention_norm.apply(&mut a.attended, x)?;
        self.intermediate.product(&a.attended, &mut a.inner)?;
        self.activation.apply(&mut a.inner)?;
        self.out.product(&a.inner, x)?;
        self.out_norm.apply(x, &a.attended)
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
    if config.intermediate_size == 0 {
        candle_core::bail!("intermediate_size 0: a BERT layer needs a feed-forward");
    }
    Ok(())
}

/// A linear layer's weight, transposed to `inputs × outputs` row-major (faer and gemm pack a
/// row-major right-hand side faster than the transposed view: +3 to 10 % on MiniLM's shapes),
/// and its bias.
fn split(linear: Linear) -> Result<(Weight, Vec<f32>)> {
    let Some(bias) = linear.bias() else {
        candle_core::bail!("a BERT linear layer without a bias")
    };
    let (outputs, inputs) = linear.weight().dims2()?;
    let values = linear
        .weight()
        .t()?
        .contiguous()?
        .flatten_all()?
        .to_vec1()?;
    let weight = Weight {
        values,
        inputs,
        outputs,
    };
    Ok((weight, bias.to_vec1()?))
}

/// A linear layer followed by a residual layer norm: its weight, and the fused step that adds
/// its bias and the residual and normalises.
fn dense_norm(linear: Linear, norm: LayerNorm, eps: f64) -> Result<(Weight, BiasResidualNorm)> {
    let (weight, bias) = split(linear)?;
    let Some(beta) = norm.bias() else {
        candle_core::bail!("a BERT layer norm without a bias")
    };
    Ok((
        weight,
        BiasResidualNorm {
            bias,
            gamma: norm.weight().to_vec1()?,
            beta: beta.to_vec1()?,
            eps: eps as f32,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

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
        // a valid config runs: texts of 2 and 1 ids in, 3 rows of 8 out
        let bert = Bert::load(vb(), &config(2)).unwrap();
        assert_eq!(bert.forward(&[1, 2, 3], &[2, 1]).unwrap().len(), 3 * 8);
        assert!(bert.forward(&[], &[0]).unwrap().is_empty());
        // ids that are not the texts' tokens are refused
        let e = bert.forward(&[1, 2, 3], &[2]).expect_err("refused");
        assert!(
            e.to_string().contains("3 token ids for texts of 2 tokens"),
            "{e}"
        );
    }

    use candle_core::Device;
    use candle_transformers::models::bert::BertModel;

    /// Our encoder and `BertModel` on the same random weights: 2 layers of 4 heads of 8.
    fn random_pair(act: &str) -> (Bert, BertModel) {
        let config: Config = serde_json::from_value(serde_json::json!({"vocab_size": 50,
            "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 64, "hidden_act": act, "hidden_dropout_prob": 0.1,
            "max_position_embeddings": 32, "type_vocab_size": 2, "initializer_range": 0.02,
            "layer_norm_eps": 1e-12, "pad_token_id": 0}))
        .unwrap();
        let vars = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let ours = Bert::load(vb.clone(), &config).unwrap();
        (ours, BertModel::load(vb, &config).unwrap())
    }

    /// Texts of `lengths` tokens, ids from `seed`.
    fn texts(lengths: &[usize], seed: u32) -> Vec<Vec<u32>> {
        (0..lengths.len())
            .map(|t| {
                (0..lengths[t] as u32)
                    .map(|i| 1 + (seed + 7 * t as u32 + 3 * i) % 49)
                    .collect()
            })
            .collect()
    }

    /// Our hidden states of texts of `lengths` tokens (packed), checked against `BertModel`'s
    /// of the same texts padded to the longest, at every token; all of ours finite.
    fn check(
        ours: &Bert,
        theirs: &BertModel,
        lengths: &[usize],
        seed: u32,
        what: &str,
    ) -> Vec<f32> {
        let texts = texts(lengths, seed);
        let a = ours.forward(&texts.concat(), lengths).unwrap();
        let len = lengths.iter().copied().max().unwrap_or(0);
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for t in &texts {
            ids.extend(t.iter().copied().chain(std::iter::repeat(0)).take(len));
            mask.extend((0..len).map(|i| if i < t.len() { 1f32 } else { 0. }));
        }
        let shape = (lengths.len(), len);
        let ids = Tensor::from_vec(ids, shape, &Device::Cpu).unwrap();
        let mask = Tensor::from_vec(mask, shape, &Device::Cpu).unwrap();
        let b: Vec<Vec<Vec<f32>>> = theirs
            .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
            .unwrap()
            .to_vec3()
            .unwrap();
        let mut rows = a.chunks_exact(32);
        for (t, (&n, b)) in lengths.iter().zip(&b).enumerate() {
            for (i, b) in b.iter().enumerate().take(n) {
                let row = rows.next().expect("a row for every token");
                for (x, y) in row.iter().zip(b) {
                    assert!(
                        (x - y).abs() < 1e-4,
                        "{what}: text {t} token {i}: {x} vs {y}"
                    );
                }
            }
        }
        assert!(rows.next().is_none(), "{what}: a row for every token only");
        assert!(
            a.iter().all(|x| x.is_finite()),
            "{what}: every state finite"
        );
        a
    }

    #[test]
    fn every_activation_matches_candles_bert_model_on_random_weights() {
        for act in ["gelu", "geluapproximate", "relu"] {
            let (ours, theirs) = random_pair(act);
            let states = check(&ours, &theirs, &[4, 2], 0, act);
            assert_ne!(
                states[..32],
                states[32..64],
                "{act}: random weights give distinct states"
            );
        }
    }

    #[test]
    fn a_pass_reads_nothing_an_earlier_pass_left_in_the_buffers() {
        let (ours, theirs) = random_pair("gelu");
        // buffers larger than any pass needs, full of NaN: every value a pass reads it must
        // have written first
        let nan = |n: usize| vec![f32::NAN; n];
        *ours.work.lock().unwrap() = Activations {
            qkv: nan(200 * 96),
            context: nan(200 * 32),
            attended: nan(200 * 32),
            inner: nan(200 * 64),
        };
        // a batch with texts of no tokens (first, between two others, last), a smaller one, a
        // larger one, a smaller one again
        for (i, lengths) in [&[7, 0, 3, 0][..], &[2], &[0, 20, 20, 13, 1], &[5, 1]]
            .iter()
            .enumerate()
        {
            check(&ours, &theirs, lengths, i as u32, &format!("pass {i}"));
        }
        // a pass of more rows than are kept lets its buffers go
        ours.forward(&texts(&[30; 137], 9).concat(), &[30; 137])
            .unwrap();
        assert_eq!(ours.work.lock().unwrap().qkv.capacity(), 0);
        check(&ours, &theirs, &[3, 3], 10, "after a large pass");
    }

    #[test]
    fn passes_from_several_threads_give_each_its_own_states() {
        let (ours, _) = random_pair("gelu");
        let cases: Vec<(Vec<usize>, u32)> =
            (0..4u32).map(|t| (vec![16 + t as usize; 5], t)).collect();
        let one = |lengths: &[usize], seed| -> Vec<f32> {
            ours.forward(&texts(lengths, seed).concat(), lengths)
                .unwrap()
        };
        let alone: Vec<Vec<f32>> = cases.iter().map(|(l, s)| one(l, *s)).collect();
        std::thread::scope(|scope| {
            for ((lengths, seed), expected) in cases.iter().zip(&alone) {
                let one = &one;
                scope.spawn(move || {
                    for _ in 0..5 {
                        let got = one(lengths, *seed);
                        assert_eq!(got.len(), expected.len());
                        for (x, y) in got.iter().zip(expected) {
                            assert!((x - y).abs() < 1e-5, "thread {seed}: {x} vs {y}");
                        }
                    }
                });
            }
        });
    }
}
