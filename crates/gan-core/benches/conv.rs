//! Forward and backward time of each convolution of the dcgan28 generator and discriminator at
//! batch 64, ours against candle's, side by side.
//!
//! `cargo bench -p gan-core --bench conv`; `GAN_CONV_PAR=gemm` runs ours with gemm's own
//! threads instead of rayon over batch chunks.
//!
//! "bwd" is `backward()` of `sum(conv(x, w) · r)` on a graph built once: the weight gradient
//! always, the input gradient where a training step needs it (not for the noise fed to the
//! generator's first layer, nor for the real images fed to the discriminator's first layer,
//! which candle computes anyway). "bwd_loss_only" is the part of both "bwd" times spent
//! outside the convolution.

use candle_core::{Device, Result, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use gan_core::conv::{self, ConvParams};
use std::time::Duration;

const BATCH: usize = 64;

#[derive(Clone, Copy)]
struct Layer {
    name: &'static str,
    transpose: bool,
    c_in: usize,
    c_out: usize,
    k: usize,
    p: ConvParams,
    hw: usize,
    input_grad: bool,
}

const S1P0: ConvParams = ConvParams {
    stride: 1,
    padding: 0,
    output_padding: 0,
};
const S2P1: ConvParams = ConvParams {
    stride: 2,
    padding: 1,
    output_padding: 0,
};

const LAYERS: [Layer; 6] = [
    Layer {
        name: "G1_convT_100-256_k7_1x1",
        transpose: true,
        c_in: 100,
        c_out: 256,
        k: 7,
        p: S1P0,
        hw: 1,
        input_grad: false,
    },
    Layer {
        name: "G2_convT_256-128_k4s2_7x7",
        transpose: true,
        c_in: 256,
        c_out: 128,
        k: 4,
        p: S2P1,
        hw: 7,
        input_grad: true,
    },
    Layer {
        name: "G3_convT_128-1_k4s2_14x14",
        transpose: true,
        c_in: 128,
        c_out: 1,
        k: 4,
        p: S2P1,
        hw: 14,
        input_grad: true,
    },
    Layer {
        name: "D1_conv_1-64_k4s2_28x28",
        transpose: false,
        c_in: 1,
        c_out: 64,
        k: 4,
        p: S2P1,
        hw: 28,
        input_grad: false,
    },
    Layer {
        name: "D2_conv_64-128_k4s2_14x14",
        transpose: false,
        c_in: 64,
        c_out: 128,
        k: 4,
        p: S2P1,
        hw: 14,
        input_grad: true,
    },
    Layer {
        name: "D3_conv_128-1_k7_7x7",
        transpose: false,
        c_in: 128,
        c_out: 1,
        k: 7,
        p: S1P0,
        hw: 7,
        input_grad: true,
    },
];

/// Deterministic values in [-1, 1) without a random generator.
fn tensor(dims: &[usize], seed: u64) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu)
}

impl Layer {
    fn run(&self, ours: bool, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        match (self.transpose, ours) {
            (true, true) => conv::conv_transpose2d(x, w, self.p),
            (true, false) => x.conv_transpose2d(w, self.p.padding, 0, self.p.stride, 1),
            (false, true) => conv::conv2d(x, w, self.p),
            (false, false) => x.conv2d(w, self.p.padding, self.p.stride, 1, 1),
        }
    }

    /// Input (a variable when its gradient is wanted) and weight variable.
    fn inputs(&self) -> Result<(Tensor, Var)> {
        let x = tensor(&[BATCH, self.c_in, self.hw, self.hw], 1)?;
        let x = if self.input_grad {
            Var::from_tensor(&x)?.as_tensor().clone()
        } else {
            x
        };
        let w_dims = if self.transpose {
            [self.c_in, self.c_out, self.k, self.k]
        } else {
            [self.c_out, self.c_in, self.k, self.k]
        };
        Ok((x, Var::from_tensor(&tensor(&w_dims, 2)?)?))
    }
}

fn bench_layers(c: &mut Criterion) {
    for layer in LAYERS {
        let mut group = c.benchmark_group(format!("dcgan28_b64/{}", layer.name));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        let (x, w) = layer.inputs().unwrap();
        for (label, ours) in [("ours", true), ("candle", false)] {
            group.bench_function(format!("fwd_{label}"), |b| {
                b.iter(|| layer.run(ours, &x, w.as_tensor()).unwrap())
            });
        }
        for (label, ours) in [("ours", true), ("candle", false)] {
            let y = layer.run(ours, &x, w.as_tensor()).unwrap();
            let r = tensor(y.dims(), 3).unwrap();
            let loss = (y * r).unwrap().sum_all().unwrap();
            group.bench_function(format!("bwd_{label}"), |b| {
                b.iter(|| loss.backward().unwrap())
            });
        }
        // The same loss on a leaf instead of the conv output: candle's own cost of the loss's
        // backward (broadcast, mul, gradient accumulation), included in both "bwd" times.
        let y = Var::from_tensor(&layer.run(true, &x, w.as_tensor()).unwrap()).unwrap();
        let r = tensor(y.dims(), 3).unwrap();
        let loss = (y.as_tensor() * r).unwrap().sum_all().unwrap();
        group.bench_function("bwd_loss_only", |b| b.iter(|| loss.backward().unwrap()));
        group.finish();
    }
}

criterion_group!(benches, bench_layers);
criterion_main!(benches);
