//! Tests of the fused encoder steps against the tensor ops they replace.

use super::*;
use candle_core::{Device, Module, Tensor};
use candle_transformers::models::bert::HiddenAct;

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
fn bias_activation_matches_candles_add_then_activation() {
    let (rows, width) = (37, 48); // rows do not divide a task evenly
    let y = Tensor::from_vec(spread(rows * width, 16.0), (rows, width), &Device::Cpu).unwrap();
    let bias = spread(width, 2.0);
    let biased = y
        .broadcast_add(&Tensor::new(bias.as_slice(), &Device::Cpu).unwrap())
        .unwrap();
    for act in [HiddenAct::Gelu, HiddenAct::GeluApproximate, HiddenAct::Relu] {
        let reference = match act {
            HiddenAct::Gelu => biased.gelu_erf(),
            HiddenAct::GeluApproximate => biased.gelu(),
            HiddenAct::Relu => biased.relu(),
        };
        let reference: Vec<f32> = reference.unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let mut ours: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let op = BiasActivation {
            bias: bias.clone(),
            act,
        };
        op.apply(&mut ours).unwrap();
        for (a, r) in ours.iter().zip(&reference) {
            assert!((a - r).abs() < 1e-5, "{act:?}: {a} vs {r}");
        }
        // values that are not whole rows, or no bias at all, are refused, not misread
        assert!(op.apply(&mut vec![0.0; width + 1]).is_err());
        let none = BiasActivation { bias: vec![], act };
        assert!(none.apply(&mut []).is_err());
    }
}

#[test]
fn bias_residual_norm_matches_candles_add_add_layer_norm() {
    // 384 wide like MiniLM, 20 wide (not a multiple of the 16 lanes) and 7 (not one register)
    for (rows, width) in [(50, 384), (9, 20), (5, 7)] {
        let y = Tensor::from_vec(spread(rows * width, 6.0), (rows, width), &Device::Cpu).unwrap();
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
        let mut ours: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        op.apply(&mut ours, &xs).unwrap();
        for (a, r) in ours.iter().zip(reference.iter().flatten()) {
            assert!((a - r).abs() < 1e-4, "{a} vs {r} ({rows}x{width})");
        }
        // shapes that do not match are refused
        assert!(op.apply(&mut ours, &xs[width..]).is_err());
        assert!(op.apply(&mut ours[1..], &xs[1..]).is_err());
    }
}

#[test]
fn exp_is_within_2_5_epsilon_of_the_true_one_below_0() {
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
    // MiniLM's heads (12 of 32); heads below a register (5, 4), of a register and a tail (20),
    // of three registers (48: a pair and an odd one), of four (64, BERT-base's: two pairs), of
    // one (16: no tail); texts of one token, of exactly one block of 16 keys, of two blocks and a
    // part (40) and of four and a part (70: key blocks in two pairs and an odd one); a batch of
    // 6 has its text of no tokens between others
    for (heads, head, len, batch) in [
        (12, 32, 40, 6),
        (2, 64, 16, 4),
        (3, 16, 70, 4),
        (3, 5, 21, 4),
        (2, 20, 33, 4),
        (1, 48, 17, 3),
        (2, 4, 1, 1),
    ] {
        let hidden = heads * head;
        let rows = batch * len;
        let qkv = Tensor::from_vec(
            spread(rows * 3 * hidden, 4.0),
            (rows, 3 * hidden),
            &Device::Cpu,
        )
        .unwrap();
        let bias = spread(3 * hidden + 5, 1.0)[5..].to_vec();
        // text 0 whole, text 1 padded at the end, text 2 with holes in the middle, text 3 all
        // padding: the op gets each text's tokens packed (text 3 of none), the reference the
        // padded batch and its mask
        let mask: Vec<f32> = (0..rows)
            .map(|r| {
                let (text, at) = (r / len, r % len);
                let token = match text % 4 {
                    0 => true,
                    1 => at < len.div_ceil(2),
                    2 => at % 3 != 1,
                    _ => false,
                };
                if token { 1.0 } else { 0.0 }
            })
            .collect();
        let values: Vec<f32> = qkv.flatten_all().unwrap().to_vec1().unwrap();
        let packed: Vec<f32> = values
            .chunks_exact(3 * hidden)
            .zip(&mask)
            .filter(|(_, m)| **m != 0.0)
            .flat_map(|(row, _)| row.iter().copied())
            .collect();
        let lens: Vec<usize> = mask
            .chunks_exact(len)
            .map(|m| m.iter().filter(|&&m| m != 0.0).count())
            .collect();
        let op = Attention {
            bias: &bias,
            heads,
            lens: &lens,
        };
        // the output starts as garbage: every row is written
        let tokens = lens.iter().sum::<usize>();
        let mut ours = vec![f32::NAN; tokens * hidden];
        op.apply(&mut ours, &packed).unwrap();
        let reference = reference_attention(&qkv, &bias, heads, len, &mask);
        let real = reference.iter().zip(&mask).filter(|(_, m)| **m != 0.0);
        assert_eq!(real.clone().count(), tokens);
        for (r, (a, (b, _))) in ours.chunks_exact(hidden).zip(real).enumerate() {
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() < 1e-4,
                    "token {r}: {x} vs {y} ({heads}x{head}, len {len})"
                );
            }
        }
    }
    // shapes that do not fit the op are refused
    let (qkv, mut out) = ([0f32; 24], [0f32; 8]);
    let op = |heads, lens: &'static [usize]| Attention {
        bias: &[0.0; 6],
        heads,
        lens,
    };
    assert!(op(2, &[2, 2]).apply(&mut out, &qkv).is_ok());
    assert!(op(2, &[4, 0]).apply(&mut out, &qkv).is_ok());
    assert!(op(0, &[2, 2]).apply(&mut out, &qkv).is_err());
    assert!(op(2, &[2, 3]).apply(&mut out, &qkv).is_err());
    assert!(op(2, &[2, 1]).apply(&mut out, &qkv).is_err());
    assert!(op(2, &[2, 2]).apply(&mut out[1..], &qkv).is_err());
    assert!(op(2, &[2, 2]).apply(&mut out, &qkv[3..]).is_err());
}
