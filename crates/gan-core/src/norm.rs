//! Padding and normalisation layers that candle-nn lacks or cannot differentiate, built only from
//! differentiable tensor ops.
//!
//! Every function here is composed of candle ops that have a backward pass written with tracked
//! tensor ops (`index_select`, `mean_keepdim`, broadcast arithmetic, `sqrt`), so gradients flow to
//! inputs and weights, and with `CANDLE_GRAD_DO_NOT_DETACH` set they can be differentiated twice,
//! as a WGAN-GP gradient penalty needs. candle-nn's `LayerNorm` on a contiguous input with a bias
//! takes a fused path with no backward at all, and its `softmax`/`rms_norm` fused ops break
//! second-order chains; nothing here uses them.
//!
//! # Reflection padding ([`reflection_pad2d`])
//!
//! As `torch.nn.ReflectionPad2d(p)`: the border is mirrored *without* repeating the edge pixel,
//! so row −k is row k and row n−1+k is row n−1−k. It is two `index_select`s with mirrored
//! indices, whose backward (`index_add`) sums the gradient of every copy of a pixel. CycleGAN's
//! and pix2pix's ResNet generators use it to avoid the dark borders that zero padding creates.
//!
//! # Instance normalisation ([`InstanceNorm2d`])
//!
//! As `torch.nn.InstanceNorm2d(c, affine, track_running_stats=False)`: each sample's each channel
//! is standardised over its H×W pixels with the biased variance,
//!
//! ```text
//! y = (x − mean_hw(x)) / √(var_hw(x) + ε) · γ_c + β_c
//! ```
//!
//! which removes per-image contrast, the reason style-transfer and CycleGAN generators use it.
//! Statistics are always those of the current input, in training and evaluation alike.
//!
//! # Layer normalisation ([`LayerNorm`])
//!
//! As `torch.nn.LayerNorm(normalized_shape)`: standardisation over the trailing
//! `normalized_shape` axes with the biased variance, then an elementwise affine map of that
//! shape. [`LayerNorm::over_non_batch`] normalises over all axes but the first whatever the
//! input's shape, the batch-independent normalisation that WGAN-GP's critic uses instead of
//! BatchNorm (a gradient penalty is computed per sample, which BatchNorm would mix).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use gan_core::norm::reflection_pad2d;
//! let xs = Tensor::arange(1f32, 10., &Device::Cpu)?.reshape((1, 1, 3, 3))?;
//! let ys = reflection_pad2d(&xs, 1)?;
//! assert_eq!(ys.dims(), &[1, 1, 5, 5]);
//! assert_eq!(ys.get(0)?.get(0)?.get(0)?.to_vec1::<f32>()?, vec![5., 4., 5., 6., 5.]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, Module, Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};

/// Indices of a length-`n` axis padded by `pad` on each side with mirroring.
fn mirrored_indices(n: usize, pad: usize) -> Vec<u32> {
    let last = n as i64 - 1;
    (-(pad as i64)..n as i64 + pad as i64)
        .map(|i| {
            let i = i.abs();
            let i = if i > last { 2 * last - i } else { i };
            i as u32
        })
        .collect()
}

/// Pads the two spatial axes of `xs` by `pad` on every side, mirroring the border (like
/// `torch.nn.ReflectionPad2d(pad)`). `pad` must be smaller than the height and the width.
///
/// # Shapes
/// - `xs`: `[b, c, h, w]`
/// - result: `[b, c, h + 2·pad, w + 2·pad]`
pub fn reflection_pad2d(xs: &Tensor, pad: usize) -> Result<Tensor> {
    let (_b, _c, h, w) = xs.dims4()?;
    if pad == 0 {
        return Ok(xs.clone());
    }
    if pad >= h || pad >= w {
        bail!("reflection_pad2d: padding {pad} must be smaller than the height {h} and width {w}");
    }
    let dev = xs.device();
    let rows = Tensor::new(mirrored_indices(h, pad), dev)?;
    let cols = Tensor::new(mirrored_indices(w, pad), dev)?;
    xs.index_select(&cols, 3)?.index_select(&rows, 2)
}

/// Standardises `xs` over its last axis with the biased variance.
fn standardise_last(xs: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = xs.mean_keepdim(candle_core::D::Minus1)?;
    let centred = xs.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
    centred.broadcast_div(&(var + eps)?.sqrt()?)
}

/// Instance normalisation over the spatial axes of NCHW inputs, like
/// `torch.nn.InstanceNorm2d(channels, affine, eps, track_running_stats=False)`; see the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct InstanceNorm2d {
    channels: usize,
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    eps: f64,
}

impl InstanceNorm2d {
    /// A layer for `channels` channels; with `affine`, fetches or creates the per-channel scale
    /// `weight` (initially 1) and shift `bias` (initially 0), both `[channels]`, from `vb`.
    /// PyTorch's default `eps` is 1e-5.
    pub fn new(channels: usize, affine: bool, eps: f64, vb: VarBuilder) -> Result<Self> {
        let (weight, bias) = if affine {
            (
                Some(vb.get_with_hints(channels, "weight", Init::Const(1.0))?),
                Some(vb.get_with_hints(channels, "bias", Init::Const(0.0))?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            channels,
            weight,
            bias,
            eps,
        })
    }

    /// The per-channel scale, if the layer is affine.
    pub fn weight(&self) -> Option<&Tensor> {
        self.weight.as_ref()
    }

    /// The per-channel shift, if the layer is affine.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for InstanceNorm2d {
    /// `xs`: `[b, c, h, w]` → `[b, c, h, w]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        if c != self.channels {
            bail!(
                "instance norm: input has {c} channels, the layer {}",
                self.channels
            );
        }
        let ys = standardise_last(&xs.reshape((b, c, h * w))?, self.eps)?.reshape((b, c, h, w))?;
        match (&self.weight, &self.bias) {
            (Some(wt), Some(bs)) => ys
                .broadcast_mul(&wt.reshape((1, c, 1, 1))?)?
                .broadcast_add(&bs.reshape((1, c, 1, 1))?),
            _ => Ok(ys),
        }
    }
}

/// Layer normalisation built from tensor ops, so that it has a gradient (unlike candle-nn's on
/// its fused path); see the [module docs](self).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    normalized_shape: Option<Vec<usize>>,
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    eps: f64,
}

impl LayerNorm {
    /// Normalisation over the trailing axes given by `normalized_shape` (like
    /// `torch.nn.LayerNorm(normalized_shape, eps, elementwise_affine = affine)`); with `affine`,
    /// fetches or creates `weight` (initially 1) and `bias` (initially 0) of that shape from
    /// `vb`. PyTorch's default `eps` is 1e-5.
    pub fn new(
        normalized_shape: impl Into<Shape>,
        affine: bool,
        eps: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let shape: Shape = normalized_shape.into();
        if shape.rank() == 0 {
            bail!("layer norm: the normalized shape must have at least one axis");
        }
        let (weight, bias) = if affine {
            (
                Some(vb.get_with_hints(shape.clone(), "weight", Init::Const(1.0))?),
                Some(vb.get_with_hints(shape.clone(), "bias", Init::Const(0.0))?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            normalized_shape: Some(shape.dims().to_vec()),
            weight,
            bias,
            eps,
        })
    }

    /// Normalisation over every axis but the first (the batch axis) of inputs of any shape, with
    /// no affine parameters.
    pub fn over_non_batch(eps: f64) -> Self {
        Self {
            normalized_shape: None,
            weight: None,
            bias: None,
            eps,
        }
    }

    /// The trailing shape normalised over, or `None` for [`LayerNorm::over_non_batch`].
    pub fn normalized_shape(&self) -> Option<&[usize]> {
        self.normalized_shape.as_deref()
    }
}

impl Module for LayerNorm {
    /// `xs`: `[..., *normalized_shape]` (or `[b, ...]` for [`LayerNorm::over_non_batch`]) →
    /// the same shape.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims();
        let k = match &self.normalized_shape {
            Some(ns) => {
                if dims.len() < ns.len() || &dims[dims.len() - ns.len()..] != ns.as_slice() {
                    bail!("layer norm: input shape {dims:?} does not end with {ns:?}");
                }
                ns.len()
            }
            None => {
                if dims.len() < 2 {
                    bail!("layer norm: input shape {dims:?} has no axis besides the batch axis");
                }
                dims.len() - 1
            }
        };
        let outer: usize = dims[..dims.len() - k].iter().product();
        let inner: usize = dims[dims.len() - k..].iter().product();
        let ys = standardise_last(&xs.reshape((outer, inner))?, self.eps)?.reshape(dims)?;
        match (&self.weight, &self.bias) {
            (Some(wt), Some(bs)) => ys.broadcast_mul(wt)?.broadcast_add(bs),
            _ => Ok(ys),
        }
    }
}
