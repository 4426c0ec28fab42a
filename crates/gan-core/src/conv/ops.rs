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

use super::kernels::{self, Dims, Elem, Geom};
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

/// Which of the three ops a [`ConvOp`] is, with what it needs besides stride and padding.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Role {
    /// `C`: conv2d on `(x [b, c_in, h, w], w [c_out, c_in, kh, kw])`, followed by a LeakyReLU
    /// of slope `leaky` (positive) when given.
    ///
    /// The fused activation saves a pass over the output and, in the backward pass, candle's
    /// zero-filled accumulator and addition for the gradient of the pre-activation tensor (done
    /// on one thread). Like the separate fused LeakyReLU, its activation gradient is computed
    /// from the output and cannot be differentiated again.
    Conv { leaky: Option<f64> },
    /// `T`: conv_transpose2d on `(x [b, c_in, h, w], w [c_in, c_out, kh, kw])` to an output of
    /// `out_hw`.
    Transpose { out_hw: (usize, usize) },
    /// `G`: the weight gradient of conv2d on `(x [b, c, h, w], gy [b, c_g, oh, ow])`, giving
    /// `[c_g, c, kh, kw]` for a `kernel` of `kh × kw`.
    WeightGrad { kernel: (usize, usize) },
}

/// One of the three ops with its stride and padding: a candle custom op, and, for the two
/// convolutions, a building block of a fused op (BatchNorm after a convolution) through its
/// forward kernel on slices ([`ConvOp::forward`]) and its backward pass on tensors
/// ([`ConvOp::backward`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvOp {
    pub stride: usize,
    pub padding: usize,
    pub role: Role,
}

impl ConvOp {
    /// conv2d, followed by a LeakyReLU of slope `leaky` when given.
    pub(crate) fn conv2d(stride: usize, padding: usize, leaky: Option<f64>) -> Self {
        Self {
            stride,
            padding,
            role: Role::Conv { leaky },
        }
    }

    /// conv_transpose2d to an output of `out_hw`.
    pub(crate) fn conv_transpose2d(stride: usize, padding: usize, out_hw: (usize, usize)) -> Self {
        Self {
            stride,
            padding,
            role: Role::Transpose { out_hw },
        }
    }

    /// The op of `role` with this op's stride and padding (its adjoints, in the backward pass).
    fn with(self, role: Role) -> Self {
        Self { role, ..self }
    }

    /// Applies the op to `a` and `b` (made contiguous first).
    pub(crate) fn apply(self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        a.contiguous()?.apply_op2(&b.contiguous()?, self)
    }

    /// The kernel's sizes, read from the two argument shapes.
    fn dims(&self, sa: &Shape, sb: &Shape) -> Result<Dims> {
        let (s, p) = (self.stride, self.padding);
        match self.role {
            Role::Conv { .. } => {
                let (b, c_in, h, wd) = sa.dims4()?;
                let (c_out, c_in_w, kh, kw) = sb.dims4()?;
                if c_in != c_in_w {
                    bail!("gan conv2d: input has {c_in} channels, weight expects {c_in_w}")
                }
                let (Some(oh), Some(ow)) = (conv_out(h, kh, s, p), conv_out(wd, kw, s, p)) else {
                    bail!(
                        "gan conv2d: kernel {kh}x{kw} larger than padded input {h}x{wd} \
                         (padding {p})"
                    )
                };
                let g = Geom::of(c_in, (h, wd), (kh, kw), s, p, (oh, ow));
                Ok(Dims { b, c: c_out, g })
            }
            Role::Transpose { out_hw: (oh, ow) } => {
                let (b, c_in, h, wd) = sa.dims4()?;
                let (c_in_w, c_out, kh, kw) = sb.dims4()?;
                if c_in != c_in_w {
                    bail!(
                        "gan conv_transpose2d: input has {c_in} channels, weight expects {c_in_w}"
                    )
                }
                // The op is the adjoint of a conv2d from `out_hw` to the input's size.
                if conv_out(oh, kh, s, p) != Some(h) || conv_out(ow, kw, s, p) != Some(wd) {
                    bail!(
                        "gan conv_transpose2d: output {oh}x{ow} does not match input {h}x{wd} \
                         (kernel {kh}x{kw}, stride {s}, padding {p})"
                    )
                }
                let g = Geom::of(c_out, (oh, ow), (kh, kw), s, p, (h, wd));
                Ok(Dims { b, c: c_in, g })
            }
            Role::WeightGrad { kernel: (kh, kw) } => {
                let (b, c, h, wd) = sa.dims4()?;
                let (b_g, c_g, oh, ow) = sb.dims4()?;
                let fits = conv_out(h, kh, s, p) == Some(oh) && conv_out(wd, kw, s, p) == Some(ow);
                if b != b_g || !fits {
                    bail!(
                        "gan conv2d weight grad: gradient {b_g}x{c_g}x{oh}x{ow} does not match \
                         input {b}x{c}x{h}x{wd} (kernel {kh}x{kw}, stride {s}, padding {p})"
                    )
                }
                let g = Geom::of(c, (h, wd), (kh, kw), s, p, (oh, ow));
                Ok(Dims { b, c: c_g, g })
            }
        }
    }

    /// The op on contiguous slices with the shapes `sa` and `sb`: its output and the output's
    /// shape.
    pub(crate) fn forward<T: Elem>(
        &self,
        (a, sa): (&[T], &Shape),
        (b, sb): (&[T], &Shape),
    ) -> Result<(Vec<T>, Shape)> {
        let d = self.dims(sa, sb)?;
        let (n, c, g) = (d.b, d.c, &d.g);
        Ok(match self.role {
            Role::Conv { leaky } => (
                kernels::conv2d(a, b, &d, leaky.map(T::from_f64)),
                Shape::from((n, c, g.oh, g.ow)),
            ),
            Role::Transpose { .. } => (
                kernels::conv_transpose2d(a, b, &d),
                Shape::from((n, g.c, g.h, g.w)),
            ),
            Role::WeightGrad { .. } => (
                kernels::conv2d_weight_grad(a, b, &d),
                Shape::from((c, g.c, g.kh, g.kw)),
            ),
        })
    }

    /// The gradients of `x` and `w` from the gradient `grad` of a convolution's output, as the
    /// op's own backward pass computes them (neither convolution reads its output there unless
    /// it has a LeakyReLU).
    pub(crate) fn backward(&self, x: &Tensor, w: &Tensor, grad: &Tensor) -> Grads2 {
        self.bwd(x, w, grad, grad)
    }

    /// Both gradients of the transposed convolution at once, sharing the im2col of `grad`
    /// ([`kernels::conv_transpose2d_grads`]), when they need not be differentiable again: `None`
    /// on a thread that keeps the graph of gradients (a gradient penalty needs the separate,
    /// differentiable ops) and for whole-image kernels.
    fn fused_transpose_grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
    ) -> Result<Option<(Tensor, Tensor)>> {
        if crate::penalty::second_order_enabled()? {
            return Ok(None);
        }
        let conv = self.with(Role::Conv { leaky: None });
        let d = conv.dims(grad.shape(), w.shape())?;
        if d.g.dense() || x.dims4()? != (d.b, d.c, d.g.oh, d.g.ow) {
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
                d: &Dims,
            ) -> Result<(Tensor, Tensor)> {
                let (gx, gw) = kernels::conv_transpose2d_grads(
                    slice::<T>(gs, gl)?,
                    slice::<T>(ws, wl)?,
                    slice::<T>(xs, xl)?,
                    d,
                );
                let (b, c_in, g, dev) = (d.b, d.c, &d.g, candle_core::Device::Cpu);
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
            f((gs, gl), (ws, wl), (xs, xl), &d)?
        };
        Ok(Some((gx, gw)))
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

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        match self.role {
            Role::Conv { .. } => "gan-conv2d",
            Role::Transpose { .. } => "gan-conv-transpose2d",
            Role::WeightGrad { .. } => "gan-conv2d-weight-grad",
        }
    }

    /// [`ConvOp::forward`], dispatched on the element type (f32 or f64, both the same).
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: Elem>(
            op: &ConvOp,
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
            (CpuStorage::F32(_), CpuStorage::F32(_)) => run::<f32>(self, (s1, l1), (s2, l2)),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => run::<f64>(self, (s1, l1), (s2, l2)),
            _ => bail!("{}: only f32 or f64, both the same", self.name()),
        }
    }

    /// The gradients of both arguments from the gradient `grad` of the output `res`, written
    /// with these same ops so that they can be differentiated again (`None` for an argument
    /// that carries no gradient); see the [module docs](self).
    fn bwd(&self, a: &Tensor, b: &Tensor, res: &Tensor, grad: &Tensor) -> Grads2 {
        let g = &match self.role {
            // The gradient of the convolution's own output, before the activation.
            Role::Conv { leaky: Some(slope) } => {
                crate::batchnorm::leaky_relu_grad(res, grad, slope)?
            }
            _ => grad.clone(),
        };
        if let Role::Transpose { .. } = self.role {
            if a.track_op() && b.track_op() {
                if let Some((ga, gb)) = self.fused_transpose_grads(a, b, g)? {
                    return Ok((Some(ga), Some(gb)));
                }
            }
        }
        let conv = self.with(Role::Conv { leaky: None });
        // Each argument's gradient is one of the other two ops on the output's gradient `g` and
        // the other argument, as in the module docs: `(op, lhs, rhs)` for `a`, then for `b`.
        let [(op_a, a1, a2), (op_b, b1, b2)] = match self.role {
            Role::Conv { .. } => {
                let ((_, _, h, wd), (_, _, kh, kw)) = (a.dims4()?, b.dims4()?);
                let transpose = self.with(Role::Transpose { out_hw: (h, wd) });
                let weight_grad = self.with(Role::WeightGrad { kernel: (kh, kw) });
                [(transpose, g, b), (weight_grad, a, g)]
            }
            Role::Transpose { .. } => {
                let (_, _, kh, kw) = b.dims4()?;
                let weight_grad = self.with(Role::WeightGrad { kernel: (kh, kw) });
                [(conv, g, b), (weight_grad, g, a)]
            }
            Role::WeightGrad { .. } => {
                let (_, _, h, wd) = a.dims4()?;
                let transpose = self.with(Role::Transpose { out_hw: (h, wd) });
                [(transpose, b, g), (conv, a, g)]
            }
        };
        Ok((
            grad_if_tracked(a, || op_a.apply(a1, a2))?,
            grad_if_tracked(b, || op_b.apply(b1, b2))?,
        ))
    }
}
