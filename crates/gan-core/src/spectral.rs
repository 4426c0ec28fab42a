//! Spectral normalisation (Miyato et al. 2018, "Spectral Normalization for Generative Adversarial
//! Networks"), as PyTorch's `torch.nn.utils.spectral_norm`.
//!
//! A weight W of shape `[out, ...]` is read as the matrix W̄ `[out, in]` (all other axes
//! flattened into `in`) and replaced by W / σ(W̄), where σ is W̄'s largest singular value,
//! estimated by power iteration with a vector u `[out]` kept between calls:
//!
//! ```text
//! v ← W̄ᵀu / ‖W̄ᵀu‖,   u ← W̄v / ‖W̄v‖,   σ = uᵀ W̄ v
//! ```
//!
//! One iteration runs per training forward (u is updated in place, without gradient); the
//! estimate σ is differentiated through W only, u and v being constants, as in the paper's
//! Algorithm 1 and PyTorch. In evaluation, u is read, not updated (v is derived from it). u is a
//! variable of the layer's `VarMap`, named `<layer>.weight_u` as in PyTorch, so it is saved and
//! restored with the network's checkpoints; it gets no gradient, so optimizers leave it alone.
//! It starts as the constant unit vector (1/√out, …) rather than a random one, so that building a
//! network draws no random number (the first iterations align it with the top singular vector).
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use gan_core::conv::{Conv2d, ConvParams};
//! use gan_core::spectral::SnConv2d;
//! let vm = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
//! let conv = SnConv2d::new(Conv2d::new(3, 8, 3, ConvParams::new(1, 1), false, vb.clone())?, &vb)?;
//! let xs = Tensor::ones((2, 3, 8, 8), DType::F32, &Device::Cpu)?;
//! assert_eq!(conv.forward_t(&xs, true)?.dims(), &[2, 8, 8, 8]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{Result, Tensor, Var};

use crate::conv::{conv2d, conv2d_leaky_relu, Conv2d};
use crate::freeze::param;

/// Added to the norms of the power iteration (PyTorch's `eps`), so that a zero weight gives no
/// division by zero.
const EPS: f64 = 1e-12;

/// The power-iteration state of one spectrally normalised weight; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct SpectralNorm {
    u: Var,
}

fn l2_normalise(xs: &Tensor) -> Result<Tensor> {
    let norm = (xs.sqr()?.sum_all()?.sqrt()? + EPS)?;
    xs.broadcast_div(&norm)
}

impl SpectralNorm {
    /// The state for a weight whose first axis has `out` entries; u is the variable
    /// `weight_u` of `vb` (created as 1/√out in each entry, or read from the map).
    pub fn new(out: usize, vb: &candle_nn::VarBuilder) -> Result<Self> {
        let init = candle_nn::Init::Const(1.0 / (out.max(1) as f64).sqrt());
        // A VarMap-backed builder hands out the variable's own tensor, which `Var::from_tensor`
        // wraps without copying, so `set` updates the map; other builders give a constant u.
        let u = Var::from_tensor(&vb.get_with_hints(out, "weight_u", init)?)?;
        Ok(Self { u })
    }

    /// The current u, `[out]`.
    pub fn u(&self) -> &Tensor {
        self.u.as_tensor()
    }

    /// W / σ̂(W̄) for a weight `w` `[out, ...]` (same shape back). With `train`, first runs one
    /// power iteration and stores the new u. Gradients flow to `w` through both W and σ̂.
    pub fn normalise(&self, w: &Tensor, train: bool) -> Result<Tensor> {
        let out = w.dim(0)?;
        let mat = w.reshape((out, ()))?;
        let fixed = mat.detach();
        let u = self.u.as_tensor().detach().unsqueeze(1)?; // [out, 1]
        let v = l2_normalise(&fixed.t()?.matmul(&u)?)?; // [in, 1]
        let u = if train {
            let u = l2_normalise(&fixed.matmul(&v)?)?;
            self.u.set(&u.squeeze(1)?)?;
            u
        } else {
            u
        };
        let sigma = u.t()?.matmul(&mat.matmul(&v)?)?.reshape(())?;
        w.broadcast_div(&sigma)
    }

    /// σ̂ = uᵀW̄v for the current u without updating it (v derived from u), as an f64; after
    /// enough iterations this is W̄'s largest singular value.
    pub fn sigma(&self, w: &Tensor) -> Result<f64> {
        let out = w.dim(0)?;
        let mat = w.detach().reshape((out, ()))?;
        let u = self.u.as_tensor().detach().unsqueeze(1)?;
        let v = l2_normalise(&mat.t()?.matmul(&u)?)?;
        u.t()?
            .matmul(&mat.matmul(&v)?)?
            .reshape(())?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()
    }
}

/// A bias-optional 2-D convolution whose weight is spectrally normalised ([`SpectralNorm`]);
/// weight names `weight`, `weight_u` and `bias`.
#[derive(Clone, Debug)]
pub struct SnConv2d {
    conv: Conv2d,
    sn: SpectralNorm,
}

impl SnConv2d {
    /// Wraps `conv`, whose variables come from `vb`; u is `vb`'s `weight_u`.
    pub fn new(conv: Conv2d, vb: &candle_nn::VarBuilder) -> Result<Self> {
        let sn = SpectralNorm::new(conv.weight().dim(0)?, vb)?;
        Ok(Self { conv, sn })
    }

    /// The unnormalised layer.
    pub fn conv(&self) -> &Conv2d {
        &self.conv
    }

    /// The power-iteration state.
    pub fn spectral_norm(&self) -> &SpectralNorm {
        &self.sn
    }

    /// The normalised weight `[out_c, in_c, k, k]` (one power iteration first with `train`).
    pub fn weight_t(&self, train: bool) -> Result<Tensor> {
        self.sn.normalise(&param(self.conv.weight()), train)
    }

    /// # Shapes
    /// `xs`: `[b, in_c, h, w]` → `[b, out_c, (h + 2p - k) / s + 1, (w + 2p - k) / s + 1]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let ys = conv2d(xs, &self.weight_t(train)?, self.conv.params())?;
        match self.conv.bias() {
            None => Ok(ys),
            Some(b) => {
                let b = param(b);
                ys.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)
            }
        }
    }

    /// [`SnConv2d::forward_t`] followed by LeakyReLU(`slope`). With `second_order`, the
    /// activation is candle's (its backward can be differentiated again, for R1 or a gradient
    /// penalty); otherwise the fused op of [`conv2d_leaky_relu`] runs when the layer has no bias.
    pub fn forward_leaky_relu(
        &self,
        xs: &Tensor,
        slope: f64,
        train: bool,
        second_order: bool,
    ) -> Result<Tensor> {
        if second_order || self.conv.bias().is_some() {
            candle_nn::ops::leaky_relu(&self.forward_t(xs, train)?, slope)
        } else {
            conv2d_leaky_relu(xs, &self.weight_t(train)?, self.conv.params(), slope)
        }
    }
}
