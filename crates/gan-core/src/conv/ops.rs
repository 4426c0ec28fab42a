//! The candle custom ops: conv2d, conv_transpose2d and conv2d's weight gradient, each with a
//! backward pass written with these same ops so that it can be differentiated again.
//!
//! The three ops are bilinear and adjoint to each other. With `C(x, w)` the conv2d,
//! `T(y, w)` the transposed convolution (the adjoint of `C(·, w)`) and `G(x, y)` the weight
//! gradient (`⟨C(x, w), y⟩ = ⟨w, G(x, y)⟩`):
//! - `C(x, w)`: `∂x = T(g, w)`, `∂w = G(x, g)`;
//! - `T(y, w)`: `∂y = C(g, w)`, `∂w = G(g, y)`;
//! - `G(x, y)`: `∂x = T(y, g)`, `∂y = C(x, g)`.
//!
//! An argument that is neither a variable nor computed from one (`!track_op()`) gets no
//! gradient: candle asks a custom op for both gradients whenever one of them is needed, so the
//! check here is what saves a discriminator the input gradient of real images.

use super::kernels::{self, Elem, Geom};
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor};

/// Output size of a convolution along one axis, if the kernel fits.
pub(crate) fn conv_out(n: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    (n + 2 * p).checked_sub(k).map(|d| d / s + 1)
}

fn slice<'a, T: Elem>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<T>()?[a..b]),
        None => bail!("gan conv: non-contiguous argument"),
    }
}

/// The gradients of a two-argument op's arguments.
type Grads2 = Result<(Option<Tensor>, Option<Tensor>)>;

/// What the three ops share: a geometry read from the two argument shapes, a kernel on slices,
/// and an output shape. `cpu_fwd` and [`ConvSpec::forward`] are written once over it.
pub(crate) trait BilinearConv {
    /// The op's name, for errors.
    const NAME: &'static str;
    /// `(batch, the channel count the kernel takes apart from the geometry, geometry)`.
    fn geom(&self, a: &Shape, b: &Shape) -> Result<(usize, usize, Geom)>;
    /// The kernel on contiguous slices of the two arguments, with the geometry's `(n, c, g)`:
    /// the output and its shape.
    fn kernel<T: Elem>(&self, a: &[T], b: &[T], n: usize, c: usize, g: &Geom) -> (Vec<T>, Shape);
    /// The gradients of both arguments from the gradient `grad` of the output `res`, written
    /// with these same ops so that they can be differentiated again (`None` for an argument
    /// that carries no gradient).
    fn grads(&self, a: &Tensor, b: &Tensor, res: &Tensor, grad: &Tensor) -> Grads2;

    /// The op on slices with the shapes `sa` and `sb`: its output and the output's shape.
    fn forward<T: Elem>(
        &self,
        (a, sa): (&[T], &Shape),
        (b, sb): (&[T], &Shape),
    ) -> Result<(Vec<T>, Shape)> {
        let (n, c, g) = self.geom(sa, sb)?;
        Ok(self.kernel(a, b, n, c, &g))
    }

    /// `cpu_fwd` of the custom op: dispatches on the element type (f32 or f64, both the same).
    fn cpu_forward(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
        fn run<O: BilinearConv + ?Sized, T: Elem>(
            op: &O,
            (s1, l1): (&CpuStorage, &Layout),
            (s2, l2): (&CpuStorage, &Layout),
        ) -> Result<(CpuStorage, Shape)> {
            let (y, shape) = op.forward(
                (slice::<T>(s1, l1)?, l1.shape()),
                (slice::<T>(s2, l2)?, l2.shape()),
            )?;
            Ok((T::to_cpu_storage_owned(y), shape))
        }
        match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => run::<Self, f32>(self, (s1, l1), (s2, l2)),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => run::<Self, f64>(self, (s1, l1), (s2, l2)),
            _ => bail!("{}: only f32 or f64, both the same", Self::NAME),
        }
    }
}

/// `f()` when `t` carries a gradient (`track_op`), else `None`: an argument that is neither a
/// variable nor computed from one needs no gradient.
fn grad_if_tracked(t: &Tensor, f: impl FnOnce() -> Result<Tensor>) -> Result<Option<Tensor>> {
    t.track_op().then(f).transpose()
}

impl Geom {
    /// The geometry of a convolution of `c` channels of `h × w` with a `kh × kw` kernel at
    /// stride `s` and padding `p`, giving `oh × ow`.
    pub(crate) fn of(
        c: usize,
        (h, w): (usize, usize),
        (kh, kw): (usize, usize),
        s: usize,
        p: usize,
        (oh, ow): (usize, usize),
    ) -> Self {
        Self {
            c,
            h,
            w,
            kh,
            kw,
            s,
            p,
            oh,
            ow,
        }
    }
}

/// conv2d on `(x [b, c_in, h, w], w [c_out, c_in, kh, kw])`, followed by a LeakyReLU of slope
/// `leaky` (positive) when given.
///
/// The fused activation saves a pass over the output and, in the backward pass, candle's
/// zero-filled accumulator and addition for the gradient of the pre-activation tensor (done on
/// one thread). Like the separate fused LeakyReLU, its activation gradient is computed from the
/// output and cannot be differentiated again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conv2dOp {
    pub stride: usize,
    pub padding: usize,
    pub leaky: Option<f64>,
}

impl BilinearConv for Conv2dOp {
    const NAME: &'static str = "gan-conv2d";

    fn geom(&self, x: &Shape, w: &Shape) -> Result<(usize, usize, Geom)> {
        let (b, c_in, h, wd) = x.dims4()?;
        let (c_out, c_in_w, kh, kw) = w.dims4()?;
        if c_in != c_in_w {
            bail!("gan conv2d: input has {c_in} channels, weight expects {c_in_w}")
        }
        let (s, p) = (self.stride, self.padding);
        let (Some(oh), Some(ow)) = (conv_out(h, kh, s, p), conv_out(wd, kw, s, p)) else {
            bail!("gan conv2d: kernel {kh}x{kw} larger than padded input {h}x{wd} (padding {p})")
        };
        Ok((b, c_out, Geom::of(c_in, (h, wd), (kh, kw), s, p, (oh, ow))))
    }

    fn kernel<T: Elem>(
        &self,
        x: &[T],
        w: &[T],
        b: usize,
        c_out: usize,
        g: &Geom,
    ) -> (Vec<T>, Shape) {
        (
            kernels::conv2d(x, w, b, c_out, g, self.leaky.map(T::from_f64)),
            Shape::from((b, c_out, g.oh, g.ow)),
        )
    }

    fn grads(&self, x: &Tensor, w: &Tensor, res: &Tensor, grad: &Tensor) -> Grads2 {
        let (_, _, h, wd) = x.dims4()?;
        let (_, _, kh, kw) = w.dims4()?;
        let (s, p) = (self.stride, self.padding);
        // The gradient of the convolution's own output, before the activation.
        let grad = &match self.leaky {
            Some(slope) => crate::batchnorm::leaky_relu_grad(res, grad, slope)?,
            None => grad.clone(),
        };
        Ok((
            grad_if_tracked(x, || conv_transpose2d(grad, w, s, p, (h, wd)))?,
            grad_if_tracked(w, || conv2d_weight_grad(x, grad, s, p, (kh, kw)))?,
        ))
    }
}

/// conv_transpose2d on `(x [b, c_in, h, w], w [c_in, c_out, kh, kw])` to an output of `out_hw`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvTranspose2dOp {
    pub stride: usize,
    pub padding: usize,
    pub out_hw: (usize, usize),
}

impl BilinearConv for ConvTranspose2dOp {
    const NAME: &'static str = "gan-conv-transpose2d";

    fn geom(&self, x: &Shape, w: &Shape) -> Result<(usize, usize, Geom)> {
        let (b, c_in, h, wd) = x.dims4()?;
        let (c_in_w, c_out, kh, kw) = w.dims4()?;
        if c_in != c_in_w {
            bail!("gan conv_transpose2d: input has {c_in} channels, weight expects {c_in_w}")
        }
        let (s, p, (oh, ow)) = (self.stride, self.padding, self.out_hw);
        // The op is the adjoint of a conv2d from `out_hw` to the input's size.
        if conv_out(oh, kh, s, p) != Some(h) || conv_out(ow, kw, s, p) != Some(wd) {
            bail!(
                "gan conv_transpose2d: output {oh}x{ow} does not match input {h}x{wd} \
                 (kernel {kh}x{kw}, stride {s}, padding {p})"
            )
        }
        Ok((b, c_in, Geom::of(c_out, (oh, ow), (kh, kw), s, p, (h, wd))))
    }

    fn kernel<T: Elem>(
        &self,
        x: &[T],
        w: &[T],
        b: usize,
        c_in: usize,
        g: &Geom,
    ) -> (Vec<T>, Shape) {
        (
            kernels::conv_transpose2d(x, w, b, c_in, g),
            Shape::from((b, g.c, g.h, g.w)),
        )
    }

    fn grads(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Grads2 {
        if x.track_op() && w.track_op() {
            if let Some((gx, gw)) = self.fused_grads(x, w, grad)? {
                return Ok((Some(gx), Some(gw)));
            }
        }
        let (_, _, kh, kw) = w.dims4()?;
        let (s, p) = (self.stride, self.padding);
        Ok((
            grad_if_tracked(x, || conv2d(grad, w, s, p))?,
            grad_if_tracked(w, || conv2d_weight_grad(grad, x, s, p, (kh, kw)))?,
        ))
    }
}

impl ConvTranspose2dOp {
    /// Both gradients at once, sharing the im2col of `grad` ([`kernels::conv_transpose2d_grads`]),
    /// when they need not be differentiable again: `None` on a thread that keeps the graph of
    /// gradients (a gradient penalty needs the separate, differentiable ops) and for
    /// whole-image kernels.
    fn fused_grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
    ) -> Result<Option<(Tensor, Tensor)>> {
        if crate::penalty::second_order_enabled()? {
            return Ok(None);
        }
        let conv = Conv2dOp {
            stride: self.stride,
            padding: self.padding,
            leaky: None,
        };
        let (b, c_in, g) = conv.geom(grad.shape(), w.shape())?;
        if g.dense() || x.dims4()? != (b, c_in, g.oh, g.ow) {
            return Ok(None);
        }
        let (grad, x, w) = (grad.contiguous()?, x.contiguous()?, w.contiguous()?);
        let (gx, gw) = {
            let (gs, gl) = grad.storage_and_layout();
            let (xs, xl) = x.storage_and_layout();
            let (ws, wl) = w.storage_and_layout();
            let (Storage::Cpu(gs), Storage::Cpu(xs), Storage::Cpu(ws)) = (&*gs, &*xs, &*ws) else {
                return Ok(None);
            };
            fn run<T: Elem>(
                (gs, gl): (&CpuStorage, &Layout),
                (ws, wl): (&CpuStorage, &Layout),
                (xs, xl): (&CpuStorage, &Layout),
                b: usize,
                c_in: usize,
                g: &Geom,
            ) -> Result<(Tensor, Tensor)> {
                let (gx, gw) = kernels::conv_transpose2d_grads(
                    slice::<T>(gs, gl)?,
                    slice::<T>(ws, wl)?,
                    slice::<T>(xs, xl)?,
                    b,
                    c_in,
                    g,
                );
                let dev = candle_core::Device::Cpu;
                Ok((
                    Tensor::from_vec(gx, (b, c_in, g.oh, g.ow), &dev)?,
                    Tensor::from_vec(gw, (c_in, g.c, g.kh, g.kw), &dev)?,
                ))
            }
            let f = match (gs, xs, ws) {
                (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => run::<f32>,
                (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => run::<f64>,
                _ => return Ok(None),
            };
            f((gs, gl), (ws, wl), (xs, xl), b, c_in, &g)?
        };
        Ok(Some((gx, gw)))
    }
}

/// Weight gradient of conv2d on `(x [b, c, h, w], gy [b, c_g, oh, ow])`, giving
/// `[c_g, c, kh, kw]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conv2dWeightGradOp {
    pub stride: usize,
    pub padding: usize,
    pub kernel: (usize, usize),
}

impl BilinearConv for Conv2dWeightGradOp {
    const NAME: &'static str = "gan-conv2d-weight-grad";

    fn geom(&self, x: &Shape, gy: &Shape) -> Result<(usize, usize, Geom)> {
        let (b, c, h, wd) = x.dims4()?;
        let (b_g, c_g, oh, ow) = gy.dims4()?;
        let (s, p, (kh, kw)) = (self.stride, self.padding, self.kernel);
        if b != b_g || conv_out(h, kh, s, p) != Some(oh) || conv_out(wd, kw, s, p) != Some(ow) {
            bail!(
                "gan conv2d weight grad: gradient {b_g}x{c_g}x{oh}x{ow} does not match input \
                 {b}x{c}x{h}x{wd} (kernel {kh}x{kw}, stride {s}, padding {p})"
            )
        }
        Ok((b, c_g, Geom::of(c, (h, wd), (kh, kw), s, p, (oh, ow))))
    }

    fn kernel<T: Elem>(
        &self,
        x: &[T],
        gy: &[T],
        b: usize,
        c_g: usize,
        g: &Geom,
    ) -> (Vec<T>, Shape) {
        (
            kernels::conv2d_weight_grad(x, gy, b, c_g, g),
            Shape::from((c_g, g.c, g.kh, g.kw)),
        )
    }

    fn grads(&self, x: &Tensor, gy: &Tensor, _res: &Tensor, grad: &Tensor) -> Grads2 {
        let (_, _, h, wd) = x.dims4()?;
        let (s, p) = (self.stride, self.padding);
        Ok((
            grad_if_tracked(x, || conv_transpose2d(gy, grad, s, p, (h, wd)))?,
            grad_if_tracked(gy, || conv2d(x, grad, s, p))?,
        ))
    }
}

/// The candle custom op of each [`BilinearConv`].
macro_rules! bilinear_custom_op2 {
    ($($ty:ty),*) => {$(
        impl CustomOp2 for $ty {
            fn name(&self) -> &'static str {
                Self::NAME
            }

            #[rustfmt::skip]
            fn cpu_fwd(
                &self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout,
            ) -> Result<(CpuStorage, Shape)> {
                self.cpu_forward((s1, l1), (s2, l2))
            }

            #[rustfmt::skip]
            fn bwd(
                &self, a: &Tensor, b: &Tensor, res: &Tensor, grad: &Tensor,
            ) -> Result<(Option<Tensor>, Option<Tensor>)> {
                self.grads(a, b, res, grad)
            }
        }
    )*};
}

bilinear_custom_op2!(Conv2dOp, ConvTranspose2dOp, Conv2dWeightGradOp);

/// Applies [`Conv2dOp`] (arguments made contiguous first).
pub(crate) fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    conv2d_leaky(x, w, stride, padding, None)
}

/// Applies [`Conv2dOp`] with an optional LeakyReLU (arguments made contiguous first).
pub(crate) fn conv2d_leaky(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    leaky: Option<f64>,
) -> Result<Tensor> {
    let op = Conv2dOp {
        stride,
        padding,
        leaky,
    };
    x.contiguous()?.apply_op2(&w.contiguous()?, op)
}

/// Applies [`ConvTranspose2dOp`] (arguments made contiguous first).
pub(crate) fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    out_hw: (usize, usize),
) -> Result<Tensor> {
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        ConvTranspose2dOp {
            stride,
            padding,
            out_hw,
        },
    )
}

/// Applies [`Conv2dWeightGradOp`] (arguments made contiguous first).
pub(crate) fn conv2d_weight_grad(
    x: &Tensor,
    gy: &Tensor,
    stride: usize,
    padding: usize,
    kernel: (usize, usize),
) -> Result<Tensor> {
    x.contiguous()?.apply_op2(
        &gy.contiguous()?,
        Conv2dWeightGradOp {
            stride,
            padding,
            kernel,
        },
    )
}

/// One of the two convolutions, as a building block of a fused op (BatchNorm after a
/// convolution): its forward kernel on slices and its backward pass on tensors.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ConvSpec {
    Conv(Conv2dOp),
    Transpose(ConvTranspose2dOp),
}

impl ConvSpec {
    pub(crate) fn conv2d(stride: usize, padding: usize) -> Self {
        Self::Conv(Conv2dOp {
            stride,
            padding,
            leaky: None,
        })
    }

    pub(crate) fn conv_transpose2d(stride: usize, padding: usize, out_hw: (usize, usize)) -> Self {
        Self::Transpose(ConvTranspose2dOp {
            stride,
            padding,
            out_hw,
        })
    }

    /// The convolution of `x` (shape `xs`) with `w` (shape `ws`), and its shape.
    pub(crate) fn forward<T: Elem>(
        &self,
        x: (&[T], &Shape),
        w: (&[T], &Shape),
    ) -> Result<(Vec<T>, Shape)> {
        match self {
            Self::Conv(op) => op.forward(x, w),
            Self::Transpose(op) => op.forward(x, w),
        }
    }

    /// The gradients of `x` and `w` from the gradient `grad` of the convolution's output, as the
    /// op's own backward pass computes them (neither op reads its output there).
    pub(crate) fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        match self {
            Self::Conv(op) => op.grads(x, w, grad, grad),
            Self::Transpose(op) => op.grads(x, w, grad, grad),
        }
    }
}
