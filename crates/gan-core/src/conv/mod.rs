//! Fast CPU convolutions for GANs: `conv2d` and `conv_transpose2d` as candle custom ops.
//!
//! candle's own CPU `conv_transpose2d` loops directly over output pixels and is parallel only over
//! output channels, and each conv's backward pass runs it even for inputs that need no gradient
//! (real images, a detached fake batch). The functions here use im2col/col2im with `gemm` on the
//! CPU, skip input gradients nobody asked for, and write their backward passes with the same ops
//! so that they can be differentiated again (gradient penalties with `CANDLE_GRAD_DO_NOT_DETACH`).
//!
//! On CUDA and Metal, or when the fast path is switched off with [`set_fast_conv`] (or
//! `GAN_FAST_CONV=0` in the environment), the functions call candle's own ops.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use gan_core::conv::{conv2d, ConvParams};
//! let xs = Tensor::ones((2, 3, 8, 8), candle_core::DType::F32, &Device::Cpu)?;
//! let w = Tensor::ones((4, 3, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
//! let ys = conv2d(&xs, &w, ConvParams { stride: 2, padding: 1, output_padding: 0 })?;
//! assert_eq!(ys.dims(), &[2, 4, 4, 4]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use crate::freeze::param;
use candle_core::{bail, DType, Module, Result, Tensor};
use std::sync::atomic::{AtomicU8, Ordering};

mod kernels;
mod ops;

pub(crate) use kernels::Elem;
pub(crate) use ops::ConvOp;

/// Stride, padding and output padding of a 2-D convolution; the same value on both axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams {
    /// Step between two applications of the kernel (PyTorch `stride`).
    pub stride: usize,
    /// Zeros added on each side of the input (PyTorch `padding`); for a transposed convolution,
    /// rows and columns removed from each side of the full output.
    pub padding: usize,
    /// Extra rows and columns added on one side of a transposed convolution's output (PyTorch
    /// `output_padding`); must be smaller than `stride`. [`conv2d`] ignores it.
    pub output_padding: usize,
}

impl Default for ConvParams {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            output_padding: 0,
        }
    }
}

impl ConvParams {
    /// Parameters with the given stride and padding and no output padding.
    pub fn new(stride: usize, padding: usize) -> Self {
        Self {
            stride,
            padding,
            output_padding: 0,
        }
    }
}

const FAST_UNSET: u8 = 0;
const FAST_OFF: u8 = 1;
const FAST_ON: u8 = 2;
static FAST_CONV: AtomicU8 = AtomicU8::new(FAST_UNSET);

/// Turns the fast CPU convolutions on or off for the whole process; when off, [`conv2d`] and
/// [`conv_transpose2d`] call candle's own ops.
pub fn set_fast_conv(enabled: bool) {
    FAST_CONV.store(if enabled { FAST_ON } else { FAST_OFF }, Ordering::Relaxed);
}

/// Whether the fast CPU convolutions are in use: true unless turned off by [`set_fast_conv`] or,
/// at first use, by the environment variable `GAN_FAST_CONV=0`.
pub fn fast_conv_enabled() -> bool {
    match FAST_CONV.load(Ordering::Relaxed) {
        FAST_ON => true,
        FAST_OFF => false,
        _ => {
            let enabled = !matches!(
                std::env::var("GAN_FAST_CONV").as_deref(),
                Ok("0") | Ok("false") | Ok("off")
            );
            let v = if enabled { FAST_ON } else { FAST_OFF };
            // Only the first reader sets it, so a concurrent `set_fast_conv` wins.
            let _ = FAST_CONV.compare_exchange(FAST_UNSET, v, Ordering::Relaxed, Ordering::Relaxed);
            FAST_CONV.load(Ordering::Relaxed) == FAST_ON
        }
    }
}

/// 2-D convolution (cross-correlation, as in PyTorch), no groups, dilation 1.
///
/// # Shapes
/// - `xs`: `[b, c_in, h, w]`
/// - `w`: `[c_out, c_in, k_h, k_w]`
/// - result: `[b, c_out, (h + 2p - k_h) / s + 1, (w + 2p - k_w) / s + 1]`
pub fn conv2d(xs: &Tensor, w: &Tensor, p: ConvParams) -> Result<Tensor> {
    if p.stride == 0 {
        bail!("conv2d: stride must be at least 1")
    }
    if use_fast(xs, w) {
        ConvOp::conv2d(p.stride, p.padding, None).apply(xs, w)
    } else {
        xs.conv2d(w, p.padding, p.stride, 1, 1)
    }
}

/// [`conv2d`] followed by [`leaky_relu`](crate::batchnorm::leaky_relu) with a positive `slope`,
/// as one op on the fast path: the activation is applied to each chunk of the output as it is
/// written, and the backward pass skips the separate gradient of the pre-activation tensor.
/// The values and gradients are the same as the two ops', bit for bit; as with the fused
/// LeakyReLU, the backward pass cannot be differentiated again.
///
/// # Shapes
/// As [`conv2d`].
pub fn conv2d_leaky_relu(xs: &Tensor, w: &Tensor, p: ConvParams, slope: f64) -> Result<Tensor> {
    // A zero stride goes to `conv2d`, which rejects it.
    if use_fast(xs, w) && slope > 0.0 && p.stride > 0 {
        ConvOp::conv2d(p.stride, p.padding, Some(slope)).apply(xs, w)
    } else {
        crate::batchnorm::leaky_relu(&conv2d(xs, w, p)?, slope)
    }
}

/// 2-D transposed convolution (PyTorch `conv_transpose2d`), no groups, dilation 1.
///
/// # Shapes
/// - `xs`: `[b, c_in, h, w]`
/// - `w`: `[c_in, c_out, k_h, k_w]` (PyTorch layout)
/// - result: `[b, c_out, (h - 1) s - 2p + k_h + op, (w - 1) s - 2p + k_w + op]`
pub fn conv_transpose2d(xs: &Tensor, w: &Tensor, p: ConvParams) -> Result<Tensor> {
    if p.stride == 0 || p.output_padding >= p.stride {
        bail!(
            "conv_transpose2d: need stride >= 1 and output_padding < stride, got stride {} and \
             output_padding {}",
            p.stride,
            p.output_padding
        )
    }
    if !use_fast(xs, w) {
        return xs.conv_transpose2d(w, p.padding, p.output_padding, p.stride, 1);
    }
    ConvOp::conv_transpose2d(p.stride, p.padding, transpose_out_hw(xs, w, p)?).apply(xs, w)
}

/// The output size of a transposed convolution, or an error if there is none.
fn transpose_out_hw(xs: &Tensor, w: &Tensor, p: ConvParams) -> Result<(usize, usize)> {
    let (_, _, h, wd) = xs.dims4()?;
    let (_, _, kh, kw) = w.dims4()?;
    let out = |n: usize, k: usize| {
        ((n.max(1) - 1) * p.stride + k + p.output_padding).checked_sub(2 * p.padding)
    };
    match (out(h, kh), out(wd, kw)) {
        (Some(oh), Some(ow)) if oh > 0 && ow > 0 && h > 0 && wd > 0 => Ok((oh, ow)),
        _ => bail!(
            "conv_transpose2d: padding {} leaves no output for input {h}x{wd} and kernel {kh}x{kw}",
            p.padding
        ),
    }
}

/// A bias-free convolution layer that a following
/// [`BatchNorm2d`](crate::batchnorm::BatchNorm2d) can fold into its op
/// ([`BatchNorm2d::forward_conv`](crate::batchnorm::BatchNorm2d::forward_conv)).
#[derive(Clone, Copy, Debug)]
pub enum ConvLayer<'a> {
    /// A [`Conv2d`].
    Conv2d(&'a Conv2d),
    /// A [`ConvTranspose2d`].
    ConvTranspose2d(&'a ConvTranspose2d),
}

impl ConvLayer<'_> {
    /// The layer's own forward pass.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Conv2d(c) => c.forward(xs),
            Self::ConvTranspose2d(c) => c.forward(xs),
        }
    }

    /// The custom-op form of the layer on `xs` and the weight to pass it, when the fast path
    /// applies and the layer has no bias; `None` otherwise (including parameters the plain
    /// path will reject with an error).
    pub(crate) fn fused_spec(&self, xs: &Tensor) -> Result<Option<(ConvOp, Tensor)>> {
        let (weight, bias, p) = match self {
            Self::Conv2d(c) => (&c.weight, &c.bias, c.params),
            Self::ConvTranspose2d(c) => (&c.weight, &c.bias, c.params),
        };
        if bias.is_some() || p.stride == 0 || !use_fast(xs, weight) || xs.rank() != 4 {
            return Ok(None);
        }
        let spec = match self {
            Self::Conv2d(_) => ConvOp::conv2d(p.stride, p.padding, None),
            Self::ConvTranspose2d(_) => {
                if p.output_padding >= p.stride {
                    return Ok(None);
                }
                let Ok(out_hw) = transpose_out_hw(xs, weight, p) else {
                    return Ok(None);
                };
                ConvOp::conv_transpose2d(p.stride, p.padding, out_hw)
            }
        };
        Ok(Some((spec, param(weight))))
    }
}

/// Whether to run our custom op: enabled, on the CPU, f32 or f64.
fn use_fast(xs: &Tensor, w: &Tensor) -> bool {
    fast_conv_enabled()
        && xs.device().is_cpu()
        && matches!(xs.dtype(), DType::F32 | DType::F64)
        && w.dtype() == xs.dtype()
}

/// A convolution layer's weight, optional bias and stride/padding; the two layers are
/// [`Conv2d`] (`K` = [`Forward`]) and [`ConvTranspose2d`] (`K` = [`Transpose`]).
#[derive(Clone, Debug)]
pub struct ConvLayerOf<K> {
    weight: Tensor,
    bias: Option<Tensor>,
    params: ConvParams,
    kind: std::marker::PhantomData<K>,
}

/// The kind of [`Conv2d`]: weight `[out_c, in_c, k, k]` initialised Kaiming normal, bias
/// uniform in ±1/√in_c.
#[derive(Clone, Copy, Debug)]
pub struct Forward;

/// The kind of [`ConvTranspose2d`]: weight `[in_c, out_c, k, k]`, weight and bias both uniform
/// in ±1/(√out_c·k).
#[derive(Clone, Copy, Debug)]
pub struct Transpose;

/// A kind of [`ConvLayerOf`]: [`Forward`] or [`Transpose`] (the trait is sealed).
pub trait ConvKind: sealed::Sealed {
    /// Whether the layer is a transposed convolution.
    const TRANSPOSED: bool;
}

impl ConvKind for Forward {
    const TRANSPOSED: bool = false;
}

impl ConvKind for Transpose {
    const TRANSPOSED: bool = true;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Forward {}
    impl Sealed for super::Transpose {}
}

/// A 2-D convolution layer with the weight names and shapes of candle-nn and PyTorch
/// (`weight`: `[out_c, in_c, k, k]`, `bias`: `[out_c]`), running [`conv2d`].
pub type Conv2d = ConvLayerOf<Forward>;

/// A 2-D transposed convolution layer with the weight names and shapes of candle-nn and PyTorch
/// (`weight`: `[in_c, out_c, k, k]`, `bias`: `[out_c]`), running [`conv_transpose2d`].
pub type ConvTranspose2d = ConvLayerOf<Transpose>;

impl<K: ConvKind> ConvLayerOf<K> {
    /// Creates the layer, fetching or initialising `weight` and, when `bias` is set, `bias`
    /// (`[out_c]`) from `vb` as candle-nn does; the weight's layout and the initialisations are
    /// the kind's ([`Forward`] for [`Conv2d`], [`Transpose`] for [`ConvTranspose2d`]).
    pub fn new(
        in_c: usize,
        out_c: usize,
        kernel: usize,
        p: ConvParams,
        bias: bool,
        vb: candle_nn::VarBuilder,
    ) -> Result<Self> {
        let (weight_shape, weight_init, bias_init) = if K::TRANSPOSED {
            let init = uniform(1. / (out_c as f64).sqrt() / kernel as f64);
            ((in_c, out_c, kernel, kernel), init, init)
        } else {
            let bias_init = uniform(1. / (in_c as f64).sqrt());
            let shape = (out_c, in_c, kernel, kernel);
            (shape, candle_nn::init::DEFAULT_KAIMING_NORMAL, bias_init)
        };
        let weight = vb.get_with_hints(weight_shape, "weight", weight_init)?;
        let bias = bias.then(|| vb.get_with_hints(out_c, "bias", bias_init));
        Ok(Self {
            weight,
            bias: bias.transpose()?,
            params: p,
            kind: std::marker::PhantomData,
        })
    }
}

impl<K> ConvLayerOf<K> {
    /// The weight: `[out_c, in_c, k, k]` for [`Conv2d`], `[in_c, out_c, k, k]` for
    /// [`ConvTranspose2d`].
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `[out_c]`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The stride, padding and output padding.
    pub fn params(&self) -> ConvParams {
        self.params
    }
}

/// PyTorch's default uniform initialisation in `±bound`.
fn uniform(bound: f64) -> candle_nn::Init {
    candle_nn::Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

impl Conv2d {
    /// The layer followed by [`leaky_relu`](crate::batchnorm::leaky_relu), fused into one op
    /// when the layer has no bias ([`conv2d_leaky_relu`]).
    pub fn forward_leaky_relu(&self, xs: &Tensor, slope: f64) -> Result<Tensor> {
        match self.bias {
            None => conv2d_leaky_relu(xs, &param(&self.weight), self.params, slope),
            Some(_) => crate::batchnorm::leaky_relu(&self.forward(xs)?, slope),
        }
    }
}

impl Module for Conv2d {
    /// `xs`: `[b, in_c, h, w]` → `[b, out_c, (h + 2p - k) / s + 1, (w + 2p - k) / s + 1]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = conv2d(xs, &param(&self.weight), self.params)?;
        add_bias(ys, self.bias.as_ref())
    }
}

impl Module for ConvTranspose2d {
    /// `xs`: `[b, in_c, h, w]` → `[b, out_c, (h - 1) s - 2p + k + op, (w - 1) s - 2p + k + op]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = conv_transpose2d(xs, &param(&self.weight), self.params)?;
        add_bias(ys, self.bias.as_ref())
    }
}

fn add_bias(ys: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        None => Ok(ys),
        Some(b) => {
            let b = param(b).reshape((1, b.dim(0)?, 1, 1))?;
            ys.broadcast_add(&b)
        }
    }
}
