//! A fused CPU BatchNorm2d (with an optional ReLU or LeakyReLU folded in) and a fused LeakyReLU,
//! as candle custom ops.
//!
//! `candle_nn::BatchNorm` in training mode is a dozen tensor ops (transpose, copy, two means,
//! subtract, square, add, sqrt, divide, scale, shift, transpose back), each allocating a fresh
//! full-size buffer, and its backward pass is several dozen more. Here the forward pass is two
//! reads of the input (the statistics, in f64) and one write, and the backward pass is two reads
//! and one write, all parallel on rayon:
//!
//! ```text
//! y   = act(x̂ · γ + β),  x̂ = (x − μ_c) / √(σ²_c + ε)        (σ² biased, over batch and pixels)
//! dz  = dy · act'(y)                                           (from the output: ReLU 0/1, LeakyReLU s/1)
//! dβ  = Σ dz,   dγ = Σ dz · x̂
//! dx  = γ / √(σ²_c + ε) · (dz − dβ / N − x̂ · dγ / N)
//! ```
//!
//! The backward pass is computed directly, not with tracked tensor ops, so it cannot be
//! differentiated again: a gradient penalty through BatchNorm needs the plain candle path
//! (`set_fast_conv(false)`). The layer takes that path by itself on CUDA and Metal, in
//! evaluation mode, for dtypes other than f32 and f64, and when the fast CPU kernels are switched
//! off ([`crate::conv::set_fast_conv`], `GAN_FAST_CONV=0`): then it is exactly
//! `candle_nn::BatchNorm` followed by candle's activation.
//!
//! Running statistics follow PyTorch and candle-nn: momentum 0.1, running variance updated with
//! the unbiased batch variance, and the variables are named `weight`, `bias`, `running_mean` and
//! `running_var`.
//!
//! ```
//! use candle_core::{DType, Device, ModuleT, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use gan_core::batchnorm::{Activation, BatchNorm2d};
//! let vars = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
//! let bn = BatchNorm2d::new(3, vb)?.with_activation(Activation::Relu);
//! let xs = Tensor::randn(0f32, 1., (4, 3, 5, 5), &Device::Cpu)?;
//! let ys = bn.forward_t(&xs, true)?;
//! assert_eq!(ys.dims(), &[4, 3, 5, 5]);
//! assert!(ys.min_all()?.to_scalar::<f32>()? >= 0.0);
//! # Ok::<(), candle_core::Error>(())
//! ```

use std::sync::{Arc, OnceLock};

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp3, DType, Layout, ModuleT, Result, Shape, Storage, Tensor,
    Var, WithDType,
};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

use crate::conv::{fast_conv_enabled, ConvLayer, ConvOp, Elem};
use crate::freeze::param;
use crate::par::par_chunks_filled;
use crate::simd::avx2_fn;

/// The activation folded into [`BatchNorm2d`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// None.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `x` for `x > 0`, `slope · x` otherwise; the slope must be positive, so that the sign of
    /// the output tells the side (the backward pass reads it from the output).
    LeakyRelu(f64),
}

impl Activation {
    /// Slope of the negative side: 0 for ReLU, 1 for none.
    fn negative_slope(self) -> f64 {
        match self {
            Self::Identity => 1.0,
            Self::Relu => 0.0,
            Self::LeakyRelu(s) => s,
        }
    }

    /// candle's own version, for the plain path.
    fn apply_candle(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Identity => Ok(xs.clone()),
            Self::Relu => xs.relu(),
            Self::LeakyRelu(s) => candle_nn::ops::leaky_relu(xs, s),
        }
    }
}

/// BatchNorm over the channels of `[b, c, h, w]` inputs (PyTorch `BatchNorm2d`, affine, tracking
/// running statistics), optionally followed by an activation; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
    act: Activation,
    plain: candle_nn::BatchNorm,
}

impl BatchNorm2d {
    /// `c` channels, ε 1e-5, momentum 0.1; fetches or creates `weight` (ones), `bias` (zeros),
    /// `running_mean` (zeros) and `running_var` (ones) in `vb`, as `candle_nn::batch_norm` does.
    pub fn new(c: usize, vb: VarBuilder) -> Result<Self> {
        let (eps, momentum) = (1e-5, 0.1);
        let running_mean = vb.get_with_hints(c, "running_mean", Init::Const(0.))?;
        let running_var = vb.get_with_hints(c, "running_var", Init::Const(1.))?;
        let weight = vb.get_with_hints(c, "weight", Init::Const(1.))?;
        let bias = vb.get_with_hints(c, "bias", Init::Const(0.))?;
        let plain = candle_nn::BatchNorm::new_with_momentum(
            c,
            running_mean.clone(),
            running_var.clone(),
            weight.clone(),
            bias.clone(),
            eps,
            momentum,
        )?;
        Ok(Self {
            weight,
            bias,
            running_mean: Var::from_tensor(&running_mean)?,
            running_var: Var::from_tensor(&running_var)?,
            eps,
            momentum,
            act: Activation::Identity,
            plain,
        })
    }

    /// The same layer followed by `act`.
    pub fn with_activation(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }

    /// The running mean, `[c]`.
    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }

    /// The running variance, `[c]`.
    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    /// Whether the fused op applies to `xs` in this mode.
    fn use_fused(&self, xs: &Tensor, train: bool) -> bool {
        train
            && fast_conv_enabled()
            && xs.device().is_cpu()
            && xs.rank() == 4
            && matches!(xs.dtype(), DType::F32 | DType::F64)
            && self.weight.dtype() == xs.dtype()
            && self.bias.dtype() == xs.dtype()
    }

    fn forward_fused(&self, xs: &Tensor) -> Result<Tensor> {
        let (c, n) = values_per_channel(xs)?;
        let (op, stats) = self.op();
        let (w, b) = (param(&self.weight), param(&self.bias));
        let ys = xs.contiguous()?.apply_op3(&w, &b, op)?;
        self.update_running(&stats, c, n)?;
        Ok(ys)
    }

    /// The fused op of this layer, and where it will leave the batch statistics.
    fn op(&self) -> (BatchNormOp, Arc<OnceLock<Stats>>) {
        let stats = Arc::new(OnceLock::new());
        let op = BatchNormOp {
            eps: self.eps,
            act: self.act,
            stats: stats.clone(),
        };
        (op, stats)
    }

    /// Folds the batch statistics left by a forward pass (`c` channels, `n` values each) into
    /// the running ones.
    fn update_running(&self, stats: &OnceLock<Stats>, c: usize, n: usize) -> Result<()> {
        let Some(st) = stats.get() else {
            bail!("batch-norm: statistics missing after the forward pass")
        };
        if st.mean.len() != c {
            bail!("batch-norm: {c} channels, statistics for {}", st.mean.len())
        }
        let m = self.momentum;
        let unbias = n as f64 / (n as f64 - 1.0);
        let update = |var: &Var, batch: &[f64], scale: f64| -> Result<()> {
            let old = var.as_tensor().to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let new: Vec<f64> = old
                .iter()
                .zip(batch)
                .map(|(o, v)| (1.0 - m) * o + m * scale * v)
                .collect();
            let t = Tensor::from_vec(new, c, var.device())?.to_dtype(var.dtype())?;
            var.set(&t)
        };
        update(&self.running_mean, &st.mean, 1.0)?;
        update(&self.running_var, &st.var, unbias)
    }

    /// `conv` on `xs` followed by this layer (`forward_t`), as one op in training on the fast
    /// CPU path when `conv` has no bias: the convolution's output stays inside the op, so
    /// candle's backward pass does not zero-fill and add its gradient (on one thread) between
    /// two ops. The same values and gradients as the two layers in turn (up to rounding: the
    /// same kernels run in the same order). Like the fused BatchNorm's, its backward pass
    /// cannot be differentiated again.
    ///
    /// # Shapes
    /// `xs`: the convolution's input; the result has the convolution's output shape.
    pub fn forward_conv(&self, conv: ConvLayer<'_>, xs: &Tensor, train: bool) -> Result<Tensor> {
        if self.use_fused(xs, train) {
            if let Some((spec, w)) = conv.fused_spec(xs)? {
                return self.forward_conv_fused(spec, &w, xs);
            }
        }
        self.forward_t(&conv.forward(xs)?, train)
    }

    fn forward_conv_fused(&self, spec: ConvOp, w: &Tensor, xs: &Tensor) -> Result<Tensor> {
        let (bn, stats) = self.op();
        let op = ConvBnOp {
            conv: spec,
            bn,
            z: OnceLock::new(),
        };
        // γ and β travel as one argument (custom ops take three); candle's `cat` hands each its
        // part of the gradient.
        let gb = Tensor::cat(&[param(&self.weight), param(&self.bias)], 0)?;
        let ys = xs.contiguous()?.apply_op3(&w.contiguous()?, &gb, op)?;
        let (c, n) = values_per_channel(&ys)?;
        self.update_running(&stats, c, n)?;
        Ok(ys)
    }
}

/// Channels and values per channel of a `[b, c, h, w]` batch normalised in training, which
/// needs at least two values per channel.
fn values_per_channel(xs: &Tensor) -> Result<(usize, usize)> {
    let (b, c, h, w) = xs.dims4()?;
    if b * h * w < 2 {
        bail!("batch-norm: need more than one value per channel in training, got {b}x{h}x{w}");
    }
    Ok((c, b * h * w))
}

/// A bias-free convolution followed by the fused BatchNorm + activation, on
/// `(x, w, [γ; β])`: [`BatchNorm2d::forward_conv`]. Keeps the convolution's output `z` for the
/// backward pass.
#[derive(Debug)]
struct ConvBnOp {
    conv: ConvOp,
    bn: BatchNormOp,
    z: OnceLock<Tensor>,
}

impl SliceOp3 for ConvBnOp {
    const NAME: &'static str = "gan-conv-batch-norm";

    fn fwd_slices<T: Real + Elem>(
        &self,
        x: (&[T], &Shape),
        w: (&[T], &Shape),
        gb: &[T],
    ) -> Result<(Vec<T>, Shape)> {
        let (z, shape) = self.conv.forward(x, w)?;
        let c = shape.dims4()?.1;
        if gb.len() != 2 * c {
            bail!(
                "gan conv-batch-norm: {c} channels, {} affine values",
                gb.len()
            )
        }
        let y = self.bn.fwd_planes(&z, &gb[..c], &gb[c..], &shape)?;
        let z = Tensor::from_vec(z, shape.clone(), &candle_core::Device::Cpu)?;
        // Only the first forward pass of this op instance keeps its output.
        let _ = self.z.set(z);
        Ok((y, shape))
    }

    fn grads<T: Real>(
        &self,
        x: &Tensor,
        w: &Tensor,
        gb: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Grads3 {
        let (Some(st), Some(z)) = (self.bn.stats.get(), self.z.get()) else {
            bail!("gan conv-batch-norm: backward before forward")
        };
        let c = z.dim(1)?;
        let gamma = gb.narrow(0, 0, c)?;
        let (dz, dgamma, dbeta) = self.bn.bwd_t::<T>(z, &gamma, res, grad, st)?;
        let (gx, gw) = self.conv.backward(x, w, &dz)?;
        let dgb = if gb.track_op() {
            Some(Tensor::cat(&[dgamma, dbeta], 0)?)
        } else {
            None
        };
        Ok((gx, gw, dgb))
    }
}

impl ModuleT for BatchNorm2d {
    /// `xs`: `[b, c, h, w]` → the same shape. `train` normalises with the batch statistics and
    /// updates the running ones; otherwise the running statistics are used.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if self.use_fused(xs, train) {
            self.forward_fused(xs)
        } else {
            let ys = self.plain.forward_t(xs, train)?;
            self.act.apply_candle(&ys)
        }
    }
}

/// LeakyReLU with a positive `slope` (`x` for `x > 0`, `slope · x` otherwise), one pass forward
/// and one backward on the CPU when the fast kernels are on; `candle_nn::ops::leaky_relu`
/// otherwise. Like [`BatchNorm2d`]'s, its fused backward cannot be differentiated again.
///
/// # Shapes
/// Any shape; the result has the same.
pub fn leaky_relu(xs: &Tensor, slope: f64) -> Result<Tensor> {
    let fused = fast_conv_enabled()
        && xs.device().is_cpu()
        && matches!(xs.dtype(), DType::F32 | DType::F64)
        && slope > 0.0;
    if fused {
        xs.contiguous()?.apply_op1(LeakyReluOp { slope })
    } else {
        candle_nn::ops::leaky_relu(xs, slope)
    }
}

/// The gradient of a LeakyReLU's input from its output `res` and the output's gradient `grad`
/// (the fused op's backward), for ops that fold the activation in.
pub(crate) fn leaky_relu_grad(res: &Tensor, grad: &Tensor, slope: f64) -> Result<Tensor> {
    let op = LeakyReluOp { slope };
    let grad = grad.contiguous()?;
    match res.dtype() {
        DType::F32 => op.bwd_t::<f32>(res, &grad),
        DType::F64 => op.bwd_t::<f64>(res, &grad),
        dt => bail!("gan leaky-relu: unsupported dtype {dt:?}"),
    }
}

/// `relu(x · gain + shift)` with a scale and a shift per sample and channel: the modulation of
/// class-conditional BatchNorm (de Vries et al. 2017, "Modulating early visual processing by
/// language"; the generator of Miyato & Koyama 2018's projection cGAN), with the ReLU after it.
/// On the CPU with the fast kernels on it is one pass forward and one backward, parallel over
/// the planes; otherwise (CUDA, Metal, other dtypes, `set_fast_conv(false)`) candle's
/// `broadcast_mul`, `broadcast_add` and `relu`, which is also the reference its tests compare
/// with. Like [`BatchNorm2d`]'s, the fused backward cannot be differentiated again.
///
/// # Shapes
/// `xs` `[b, c, h, w]`, `gain` and `shift` `[b, c]` → `[b, c, h, w]`.
///
/// # Errors
/// Shapes other than these, or dtypes that differ.
pub fn scale_shift_relu(xs: &Tensor, gain: &Tensor, shift: &Tensor) -> Result<Tensor> {
    let (b, c, _, _) = xs.dims4()?;
    if gain.dims() != [b, c] || shift.dims() != [b, c] {
        bail!(
            "scale_shift_relu: input {:?} needs gain and shift [{b}, {c}], got {:?} and {:?}",
            xs.dims(),
            gain.dims(),
            shift.dims()
        )
    }
    let fused = fast_conv_enabled()
        && xs.device().is_cpu()
        && matches!(xs.dtype(), DType::F32 | DType::F64)
        && gain.dtype() == xs.dtype()
        && shift.dtype() == xs.dtype();
    if fused {
        xs.contiguous()?
            .apply_op3(&gain.contiguous()?, &shift.contiguous()?, ScaleShiftReluOp)
    } else {
        xs.broadcast_mul(&gain.reshape((b, c, 1, 1))?)?
            .broadcast_add(&shift.reshape((b, c, 1, 1))?)?
            .relu()
    }
}

/// The fused op of [`scale_shift_relu`] on `(x [b, c, h, w], gain [b, c], shift [b, c])`:
///
/// ```text
/// y = relu(x · g_bc + s_bc),   dz = dy · (y > 0),   dx = g_bc · dz,
/// dg_bc = Σ_hw dz · x,   ds_bc = Σ_hw dz
/// ```
#[derive(Debug)]
struct ScaleShiftReluOp;

impl SliceOp3 for ScaleShiftReluOp {
    const NAME: &'static str = "gan scale-shift-relu";

    fn fwd_planes<T: Real>(&self, x: &[T], g: &[T], s: &[T], shape: &Shape) -> Result<Vec<T>> {
        let (b, c, h, w) = shape.dims4()?;
        let hw = h * w;
        if g.len() != b * c || s.len() != b * c {
            bail!("{}: gain and shift must be [{b}, {c}]", Self::NAME)
        }
        Ok(map_planes(x, hw, |p, o| {
            scale_shift_act(&x[p * hw..][..hw], o, g[p], s[p], T::zero())
        }))
    }

    fn grads<T: Real>(
        &self,
        x: &Tensor,
        gain: &Tensor,
        _shift: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Grads3 {
        let (b, c, h, w) = x.dims4()?;
        let hw = h * w;
        let (dx, sums) = with_slices::<T, _, 4>([x, gain, res, grad], |[x, g, y, dy]| {
            let plane = |p: usize| p * hw..(p + 1) * hw;
            let dx = map_planes(x, hw, |p, o| {
                let r = plane(p);
                let abc = (g[p], T::zero(), T::zero());
                bn_input_grad(o, &dy[r.clone()], &y[r.clone()], &x[r], abc, T::zero())
            });
            let sums = per_plane(b * c, hw, |p| {
                let r = plane(p);
                grad_sums(&dy[r.clone()], &y[r.clone()], &x[r], T::zero())
            });
            Ok((dx, sums))
        })?;
        let dev = x.device();
        let ds: Vec<T> = sums.iter().map(|&(s, _)| T::from_f64(s)).collect();
        let dg: Vec<T> = sums.iter().map(|&(_, q)| T::from_f64(q)).collect();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dg, (b, c), dev)?),
            Some(Tensor::from_vec(ds, (b, c), dev)?),
        ))
    }
}

/// Float types of the fused kernels.
trait Real: WithDType {}
impl Real for f32 {}
impl Real for f64 {}

/// The gradients of a three-argument op's arguments.
type Grads3 = Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)>;

/// A three-argument CPU op written once over f32 and f64; [`slice_custom_op3!`] makes it a
/// candle [`CustomOp3`], picking `T` from the arguments' dtype. An op implements
/// [`SliceOp3::fwd_planes`] when its output has its first argument's shape, else
/// [`SliceOp3::fwd_slices`] (as candle's ops implement one of their device methods).
trait SliceOp3 {
    /// The op's name, for errors.
    const NAME: &'static str;
    /// The output and its shape, from the contiguous arguments (the first two with shapes).
    fn fwd_slices<T: Real + Elem>(
        &self,
        (a, shape): (&[T], &Shape),
        (b, _): (&[T], &Shape),
        c: &[T],
    ) -> Result<(Vec<T>, Shape)> {
        Ok((self.fwd_planes(a, b, c, shape)?, shape.clone()))
    }
    /// The output of an op shaped like its first argument `a` (of shape `shape`), from the
    /// contiguous arguments.
    fn fwd_planes<T: Real>(&self, a: &[T], b: &[T], c: &[T], shape: &Shape) -> Result<Vec<T>> {
        let _ = (a, b, c, shape);
        bail!("{}: the op implements fwd_slices instead", Self::NAME)
    }
    /// The gradients of the three arguments from the gradient `grad` (contiguous) of the output
    /// `res`, the arguments being of element type `T`.
    fn grads<T: Real>(
        &self,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Grads3;
}

/// [`SliceOp3::fwd_slices`] on candle's storages, dispatched on the element type.
fn cpu_fwd3<O: SliceOp3>(
    op: &O,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    (s3, l3): (&CpuStorage, &Layout),
) -> Result<(CpuStorage, Shape)> {
    fn run<O: SliceOp3, T: Real + Elem>(
        op: &O,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        (s3, l3): (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
        let (y, shape) = op.fwd_slices::<T>(
            (contiguous(s1, l1)?, l1.shape()),
            (contiguous(s2, l2)?, l2.shape()),
            contiguous(s3, l3)?,
        )?;
        Ok((T::to_cpu_storage_owned(y), shape))
    }
    let f = match (s1, s2, s3) {
        (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => run::<O, f32>,
        (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => run::<O, f64>,
        _ => bail!("{}: only f32 or f64, all the same", O::NAME),
    };
    f(op, (s1, l1), (s2, l2), (s3, l3))
}

/// The candle custom op of each [`SliceOp3`].
macro_rules! slice_custom_op3 {
    ($($ty:ty),*) => {$(
        impl CustomOp3 for $ty {
            fn name(&self) -> &'static str {
                Self::NAME
            }

            #[rustfmt::skip]
            fn cpu_fwd(
                &self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout,
                s3: &CpuStorage, l3: &Layout,
            ) -> Result<(CpuStorage, Shape)> {
                cpu_fwd3(self, (s1, l1), (s2, l2), (s3, l3))
            }

            #[rustfmt::skip]
            fn bwd(
                &self, a: &Tensor, b: &Tensor, c: &Tensor, res: &Tensor, grad: &Tensor,
            ) -> Grads3 {
                let grad = grad.contiguous()?;
                match a.dtype() {
                    DType::F32 => self.grads::<f32>(a, b, c, res, &grad),
                    DType::F64 => self.grads::<f64>(a, b, c, res, &grad),
                    dt => bail!("{}: unsupported dtype {dt:?}", Self::NAME),
                }
            }
        }
    )*};
}

slice_custom_op3!(ConvBnOp, BatchNormOp, ScaleShiftReluOp);

/// Lanes of the manual reductions: enough independent sums for the compiler to vectorise.
const LANES: usize = 8;

/// `Σ x` and `Σ (x − m)²` of a slice, in `T` over lanes, then in f64.
fn sum_and_sq_dev<T: Real>(x: &[T], m: T) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(x)) = (crate::simd::has_avx2(), as_f32(x)) {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { lanes_f32::sum_and_sq_dev(x, m.to_f64() as f32) };
    }
    sum_and_sq_dev_imp(x, m)
}

/// `x` as `&[f32]` when `T` is f32.
fn as_f32<T: Real>(x: &[T]) -> Option<&[f32]> {
    // SAFETY: `T::DTYPE` is F32 only for `T = f32`, so the slice has that type already.
    (T::DTYPE == DType::F32)
        .then(|| unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<f32>(), x.len()) })
}

/// The lane loops of [`sum_and_sq_dev_imp`] and [`grad_sums_imp`] on f32 with AVX2 intrinsics
/// (the compiler does not vectorise the generic ones): the same operations on the same lanes,
/// so the same bits.
#[cfg(target_arch = "x86_64")]
mod lanes_f32 {
    use super::LANES;
    use std::arch::x86_64::*;

    /// The lanes of two accumulators summed in lane order, in f64, as the generic loops do.
    fn lane_sums(a: __m256, b: __m256) -> (f64, f64) {
        let (mut la, mut lb) = ([0.0f32; LANES], [0.0f32; LANES]);
        // SAFETY: each array holds 8 f32.
        unsafe {
            _mm256_storeu_ps(la.as_mut_ptr(), a);
            _mm256_storeu_ps(lb.as_mut_ptr(), b);
        }
        la.iter().zip(&lb).fold((0.0, 0.0), |(sa, sb), (&x, &y)| {
            (sa + x as f64, sb + y as f64)
        })
    }

    fn load(x: &[f32], i: usize) -> __m256 {
        let c = &x[i..i + LANES];
        // SAFETY: `c` holds 8 f32.
        unsafe { _mm256_loadu_ps(c.as_ptr()) }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn sum_and_sq_dev(x: &[f32], m: f32) -> (f64, f64) {
        let n = x.len() / LANES * LANES;
        let (mut s, mut q) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mv = _mm256_set1_ps(m);
        for i in (0..n).step_by(LANES) {
            let v = load(x, i);
            s = _mm256_add_ps(s, v);
            let d = _mm256_sub_ps(v, mv);
            q = _mm256_add_ps(q, _mm256_mul_ps(d, d));
        }
        let (mut s64, mut q64) = lane_sums(s, q);
        for &v in &x[n..] {
            s64 += v as f64;
            let d = (v - m) as f64;
            q64 += d * d;
        }
        (s64, q64)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn grad_sums(dy: &[f32], y: &[f32], x: &[f32], slope: f32) -> (f64, f64) {
        let n = dy.len() / LANES * LANES;
        let (mut s, mut p) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (one, sl, zero) = (
            _mm256_set1_ps(1.0),
            _mm256_set1_ps(slope),
            _mm256_setzero_ps(),
        );
        for i in (0..n).step_by(LANES) {
            let (g, yv, xv) = (load(dy, i), load(y, i), load(x, i));
            let f = _mm256_blendv_ps(sl, one, _mm256_cmp_ps::<_CMP_GT_OQ>(yv, zero));
            let dz = _mm256_mul_ps(g, f);
            s = _mm256_add_ps(s, dz);
            p = _mm256_add_ps(p, _mm256_mul_ps(dz, xv));
        }
        let (mut s64, mut p64) = lane_sums(s, p);
        for i in n..dy.len() {
            let dz = dy[i] * if y[i] > 0.0 { 1.0 } else { slope };
            s64 += dz as f64;
            p64 += (dz * x[i]) as f64;
        }
        (s64, p64)
    }
}

#[inline(always)]
fn sum_and_sq_dev_imp<T: Real>(x: &[T], m: T) -> (f64, f64) {
    let mut s = [T::zero(); LANES];
    let mut q = [T::zero(); LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            s[i] += c[i];
            let d = c[i] - m;
            q[i] += d * d;
        }
    }
    let (mut s64, mut q64) = (0.0, 0.0);
    for i in 0..LANES {
        s64 += s[i].to_f64();
        q64 += q[i].to_f64();
    }
    for &v in chunks.remainder() {
        s64 += v.to_f64();
        let d = (v - m).to_f64();
        q64 += d * d;
    }
    (s64, q64)
}

/// `Σ dz` and `Σ dz · x` over a slice, with `dz = dy · act'(y)`.
fn grad_sums<T: Real>(dy: &[T], y: &[T], x: &[T], slope: T) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(dy), Some(y), Some(x)) =
        (crate::simd::has_avx2(), as_f32(dy), as_f32(y), as_f32(x))
    {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { lanes_f32::grad_sums(dy, y, x, slope.to_f64() as f32) };
    }
    grad_sums_imp(dy, y, x, slope)
}

#[inline(always)]
fn grad_sums_imp<T: Real>(dy: &[T], y: &[T], x: &[T], slope: T) -> (f64, f64) {
    let one = T::one();
    let mut s = [T::zero(); LANES];
    let mut p = [T::zero(); LANES];
    let n = dy.len() / LANES * LANES;
    for ((g, yv), xv) in dy[..n]
        .chunks_exact(LANES)
        .zip(y[..n].chunks_exact(LANES))
        .zip(x[..n].chunks_exact(LANES))
    {
        for i in 0..LANES {
            let dz = g[i] * if yv[i] > T::zero() { one } else { slope };
            s[i] += dz;
            p[i] += dz * xv[i];
        }
    }
    let (mut s64, mut p64) = (0.0, 0.0);
    for i in 0..LANES {
        s64 += s[i].to_f64();
        p64 += p[i].to_f64();
    }
    for i in n..dy.len() {
        let dz = dy[i] * if y[i] > T::zero() { one } else { slope };
        s64 += dz.to_f64();
        p64 += (dz * x[i]).to_f64();
    }
    (s64, p64)
}

/// Batch statistics of the last forward pass, per channel, in f64.
#[derive(Debug)]
struct Stats {
    mean: Vec<f64>,
    /// Biased variance.
    var: Vec<f64>,
}

/// The fused training-mode BatchNorm + activation on `(x [b, c, h, w], γ [c], β [c])`; it leaves
/// the batch statistics in `stats` for the running averages and the backward pass.
#[derive(Debug)]
struct BatchNormOp {
    eps: f64,
    act: Activation,
    stats: Arc<OnceLock<Stats>>,
}

fn contiguous<'a, T: Real>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&T::cpu_storage_as_slice(s)?[a..b]),
        None => bail!("gan batch-norm: non-contiguous argument"),
    }
}

/// Per-channel statistics of `x` (`b × c × hw`): mean and biased variance, two passes.
fn channel_stats<T: Real>(x: &[T], b: usize, c: usize, hw: usize) -> Stats {
    let n = (b * hw) as f64;
    let sums = per_channel(b, c, hw, |i, _| {
        sum_and_sq_dev(&x[i * hw..][..hw], T::zero())
    });
    let mean: Vec<f64> = sums.iter().map(|&(s, _)| s / n).collect();
    let rounded: Vec<T> = mean.iter().map(|&m| T::from_f64(m)).collect();
    // Σ (x − m)² about the rounded mean, corrected for the rounding: exact in f64 terms.
    let dev = per_channel(b, c, hw, |i, ch| {
        sum_and_sq_dev(&x[i * hw..][..hw], rounded[ch])
    });
    let var = dev
        .iter()
        .zip(&rounded)
        .map(|(&(s, q), &m)| {
            let dm = s / n - m.to_f64();
            (q / n - dm * dm).max(0.0)
        })
        .collect();
    Stats { mean, var }
}

/// Runs `f(plane, channel)` on each of the `b · c` planes of `hw` values, in memory order and
/// in parallel, and sums its pairs per channel over the batch in batch order (so the result
/// does not depend on the number of threads).
fn per_channel(
    b: usize,
    c: usize,
    hw: usize,
    f: impl Fn(usize, usize) -> (f64, f64) + Sync + Send,
) -> Vec<(f64, f64)> {
    let planes = per_plane(b * c, hw, |i| f(i, i % c));
    (0..c)
        .map(|ch| {
            (0..b).fold((0.0, 0.0), |acc, i| {
                let v = planes[i * c + ch];
                (acc.0 + v.0, acc.1 + v.1)
            })
        })
        .collect()
}

/// `f(plane)` on each of `n` planes of `hw` values, in parallel (a few thousand values or more
/// per task), in plane order.
fn per_plane(
    n: usize,
    hw: usize,
    f: impl Fn(usize) -> (f64, f64) + Sync + Send,
) -> Vec<(f64, f64)> {
    let min_planes = (4096 / hw.max(1)).max(1);
    (0..n)
        .into_par_iter()
        .with_min_len(min_planes)
        .map(f)
        .collect()
}

/// A new buffer like `x` (`b · c` planes of `hw` values), filled plane by plane in parallel by
/// `f(plane_index, out_plane)`; `plane_index % c` is the channel.
fn map_planes<T: Real>(x: &[T], hw: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) -> Vec<T> {
    let hw = hw.max(1);
    let per_task = (4096 / hw).max(1);
    par_chunks_filled(x.len(), per_task * hw, T::zero(), true, |t, out| {
        for (j, o) in out.chunks_mut(hw).enumerate() {
            f(t * per_task + j, o);
        }
    })
}

impl SliceOp3 for BatchNormOp {
    const NAME: &'static str = "gan-batch-norm";

    fn fwd_planes<T: Real>(&self, x: &[T], w: &[T], bias: &[T], shape: &Shape) -> Result<Vec<T>> {
        let (b, c, h, wd) = shape.dims4()?;
        let hw = h * wd;
        if w.len() != c || bias.len() != c {
            bail!(
                "gan batch-norm: {c} channels, weight {} and bias {}",
                w.len(),
                bias.len()
            )
        }
        let st = channel_stats(x, b, c, hw);
        let (scale, shift): (Vec<T>, Vec<T>) = (0..c)
            .map(|ch| {
                let k = w[ch].to_f64() / (st.var[ch] + self.eps).sqrt();
                (
                    T::from_f64(k),
                    T::from_f64(bias[ch].to_f64() - st.mean[ch] * k),
                )
            })
            .unzip();
        // The identity is the activation of slope 1: `z · 1 == z` exactly.
        let slope = T::from_f64(self.act.negative_slope());
        let y = map_planes(x, hw, |i, yp| {
            let ch = i % c;
            scale_shift_act(&x[i * hw..][..hw], yp, scale[ch], shift[ch], slope)
        });
        // Only the first forward pass of this op instance records statistics.
        let _ = self.stats.set(st);
        Ok(y)
    }

    fn grads<T: Real>(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Grads3 {
        let Some(st) = self.stats.get() else {
            bail!("gan batch-norm: backward before forward")
        };
        let (dx, dw, db) = self.bwd_t::<T>(x, w, res, grad, st)?;
        Ok((
            if x.track_op() { Some(dx) } else { None },
            if w.track_op() { Some(dw) } else { None },
            if b.track_op() { Some(db) } else { None },
        ))
    }
}

/// Runs `f` on the CPU slices of `N` distinct tensors.
fn with_slices<T: Real, R, const N: usize>(
    ts: [&Tensor; N],
    f: impl FnOnce([&[T]; N]) -> Result<R>,
) -> Result<R> {
    let guards = ts.map(|t| t.storage_and_layout());
    let mut slices: [&[T]; N] = [&[]; N];
    for (s, (g, l)) in slices.iter_mut().zip(&guards) {
        let Storage::Cpu(cpu) = &**g else {
            bail!("gan batch-norm: CPU tensors only")
        };
        *s = contiguous(cpu, l)?;
    }
    f(slices)
}

impl BatchNormOp {
    fn bwd_t<T: Real>(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
        st: &Stats,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, c, h, wd) = x.dims4()?;
        let hw = h * wd;
        let n = (b * hw) as f64;
        let slope_f = self.act.negative_slope();
        let slope = T::from_f64(slope_f);
        let dev = x.device().clone();
        let (dx, dgamma, dbeta) = with_slices::<T, _, 4>([x, w, res, grad], |[x, w, y, g]| {
            // Pass 1: Σ dz and Σ dz·x per channel.
            let sums = per_channel(b, c, hw, |i, _| {
                let r = i * hw..(i + 1) * hw;
                grad_sums(&g[r.clone()], &y[r.clone()], &x[r], slope)
            });
            // dγ = Σ dz·x̂ = (Σ dz·x − μ Σ dz) / σ;  dβ = Σ dz.
            // dx = A·dz + B·x + C with A = γ/σ, B = −A·dγ/(σ N), C = −A·dβ/N − B·μ.
            let mut dgamma = Vec::with_capacity(c);
            let mut dbeta = Vec::with_capacity(c);
            let mut coef = Vec::with_capacity(c);
            for (ch, &(s, p)) in sums.iter().enumerate() {
                let inv = 1.0 / (st.var[ch] + self.eps).sqrt();
                let dg = (p - st.mean[ch] * s) * inv;
                let a = w[ch].to_f64() * inv;
                let bb = -a * dg * inv / n;
                let cc = -a * s / n - bb * st.mean[ch];
                dgamma.push(T::from_f64(dg));
                dbeta.push(T::from_f64(s));
                coef.push((T::from_f64(a), T::from_f64(bb), T::from_f64(cc)));
            }
            // Pass 2: dx.
            let plane = |i: usize| i * hw..(i + 1) * hw;
            let dx = map_planes(x, hw, |i, d| {
                let (gp, yp, xp) = (&g[plane(i)], &y[plane(i)], &x[plane(i)]);
                bn_input_grad(d, gp, yp, xp, coef[i % c], slope);
            });
            Ok((dx, dgamma, dbeta))
        })?;
        Ok((
            Tensor::from_vec(dx, x.shape(), &dev)?,
            Tensor::from_vec(dgamma, c, &dev)?,
            Tensor::from_vec(dbeta, c, &dev)?,
        ))
    }
}

avx2_fn! {
    /// `y = act(x · k + s)` over one plane, with `act(z) = z · (z > 0 ? 1 : slope)`.
    fn scale_shift_act<T: Real>(x: &[T], y: &mut [T], k: T, s: T, slope: T) => scale_shift_act_imp {
        let one = T::one();
        for (o, &v) in y.iter_mut().zip(x) {
            let z = v * k + s;
            // A select of the factor, not of the result, so that the loop vectorises.
            *o = z * if z > T::zero() { one } else { slope };
        }
    }
}

avx2_fn! {
    /// BatchNorm's input gradient over one plane: `dx = a·dz + b·x + c`, `dz = dy · act'(y)`.
    fn bn_input_grad<T: Real>(dx: &mut [T], dy: &[T], y: &[T], x: &[T], abc: (T, T, T), slope: T)
        => bn_input_grad_imp
    {
        let (one, (a, b, c)) = (T::one(), abc);
        for (((o, &gv), &yv), &xv) in dx.iter_mut().zip(dy).zip(y).zip(x) {
            let dz = gv * if yv > T::zero() { one } else { slope };
            *o = a * dz + b * xv + c;
        }
    }
}

avx2_fn! {
    /// LeakyReLU forward over a slice.
    fn leaky_fwd<T: Real>(x: &[T], y: &mut [T], slope: T) => leaky_fwd_imp {
        let one = T::one();
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v * if v > T::zero() { one } else { slope };
        }
    }
}

avx2_fn! {
    /// LeakyReLU backward over a slice, from the output `y` and its gradient `g`.
    fn leaky_bwd<T: Real>(y: &[T], g: &[T], dx: &mut [T], slope: T) => leaky_bwd_imp {
        let one = T::one();
        for ((o, &yv), &gv) in dx.iter_mut().zip(y).zip(g) {
            *o = gv * if yv > T::zero() { one } else { slope };
        }
    }
}

/// The fused LeakyReLU on any contiguous f32/f64 tensor.
#[derive(Clone, Copy, Debug)]
struct LeakyReluOp {
    slope: f64,
}

impl LeakyReluOp {
    fn fwd<T: Real>(&self, x: &[T]) -> Vec<T> {
        let s = T::from_f64(self.slope);
        par_chunks_filled(x.len(), 16384, T::zero(), true, |i, o| {
            leaky_fwd(&x[i * 16384..][..o.len()], o, s)
        })
    }

    fn bwd_t<T: Real>(&self, res: &Tensor, grad: &Tensor) -> Result<Tensor> {
        let s = T::from_f64(self.slope);
        let dx = with_slices::<T, _, 2>([res, grad], |[y, g]| {
            Ok(par_chunks_filled(
                y.len(),
                16384,
                T::zero(),
                true,
                |i, o| {
                    let r = i * 16384..i * 16384 + o.len();
                    leaky_bwd(&y[r.clone()], &g[r], o, s)
                },
            ))
        })?;
        Tensor::from_vec(dx, res.shape(), res.device())
    }
}

impl CustomOp1 for LeakyReluOp {
    fn name(&self) -> &'static str {
        "gan-leaky-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = match s {
            CpuStorage::F32(_) => f32::to_cpu_storage_owned(self.fwd::<f32>(contiguous(s, l)?)),
            CpuStorage::F64(_) => f64::to_cpu_storage_owned(self.fwd::<f64>(contiguous(s, l)?)),
            _ => bail!("gan leaky-relu: only f32 and f64"),
        };
        Ok((y, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        leaky_relu_grad(res, grad, self.slope).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values with both signs, zeros of both signs, a NaN and odd lengths for the loop tails.
    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                match i % 97 {
                    13 => 0.0,
                    14 => -0.0,
                    15 => f32::NAN,
                    _ => (s >> 8) as f32 / (1 << 23) as f32 - 1.0,
                }
            })
            .collect()
    }

    fn same_bits(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(x.to_bits(), y.to_bits(), "element {i}: {x} vs {y}");
        }
    }

    /// The fused scale-shift-ReLU against candle's broadcast ops, forward and all three
    /// gradients, in f64 (1e-12) and f32 (1e-5).
    #[test]
    fn scale_shift_relu_matches_candle() -> Result<()> {
        use candle_core::{Device, Var};
        let dev = Device::Cpu;
        for dtype in [DType::F64, DType::F32] {
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
            let (b, c, h, w) = (3, 5, 4, 3);
            let t = |n: usize, seed: u32, shape: &[usize]| -> Result<Tensor> {
                let v: Vec<f32> = data(n, seed)
                    .into_iter()
                    .map(|v| if v.is_nan() { 0.25 } else { v })
                    .collect();
                Tensor::from_vec(v, shape, &dev)?.to_dtype(dtype)
            };
            let x = Var::from_tensor(&t(b * c * h * w, 1, &[b, c, h, w])?)?;
            let g = Var::from_tensor(&(t(b * c, 2, &[b, c])? + 1.0)?)?;
            let s = Var::from_tensor(&(t(b * c, 3, &[b, c])? * 0.5)?)?;
            let r = t(b * c * h * w, 4, &[b, c, h, w])?;
            let fused = scale_shift_relu(&x, &g, &s)?;
            let reference = x
                .broadcast_mul(&g.reshape((b, c, 1, 1))?)?
                .broadcast_add(&s.reshape((b, c, 1, 1))?)?
                .relu()?;
            let gf = (&fused * &r)?.sum_all()?.backward()?;
            let gr = (&reference * &r)?.sum_all()?.backward()?;
            let pairs = [
                (fused.clone(), reference.clone()),
                (gf.get(&x).unwrap().clone(), gr.get(&x).unwrap().clone()),
                (gf.get(&g).unwrap().clone(), gr.get(&g).unwrap().clone()),
                (gf.get(&s).unwrap().clone(), gr.get(&s).unwrap().clone()),
            ];
            for (i, (a, e)) in pairs.iter().enumerate() {
                assert_eq!(a.dims(), e.dims());
                let d = (a - e)?
                    .abs()?
                    .flatten_all()?
                    .max(0)?
                    .to_dtype(DType::F64)?;
                let d = d.to_scalar::<f64>()?;
                assert!(
                    d <= tol,
                    "{dtype:?} output/gradient {i}: max difference {d}"
                );
            }
            // The mask matters: some outputs are clipped, some pass.
            let zeros = fused
                .eq(0.0)?
                .to_dtype(DType::F64)?
                .sum_all()?
                .to_scalar::<f64>()?;
            assert!(zeros > 0.0 && zeros < (b * c * h * w) as f64);
        }
        assert!(scale_shift_relu(
            &Tensor::zeros((2, 3, 2, 2), DType::F32, &dev)?,
            &Tensor::zeros((2, 4), DType::F32, &dev)?,
            &Tensor::zeros((2, 3), DType::F32, &dev)?
        )
        .is_err());
        Ok(())
    }

    /// The AVX2 copies (picked at run time on this CPU) give the baseline loops' bits exactly.
    #[test]
    fn dispatched_loops_match_the_baseline_bit_for_bit() {
        for n in [0, 1, 7, 49, 196, 1001] {
            let (x, y, g) = (data(n, 1), data(n, 2), data(n, 3));
            let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
            for slope in [0.0, 0.2, 1.0] {
                scale_shift_act(&x, &mut a, 1.7, -0.3, slope);
                scale_shift_act_imp(&x, &mut b, 1.7, -0.3, slope);
                same_bits(&a, &b);
                leaky_fwd(&x, &mut a, slope);
                leaky_fwd_imp(&x, &mut b, slope);
                same_bits(&a, &b);
                leaky_bwd(&y, &g, &mut a, slope);
                leaky_bwd_imp(&y, &g, &mut b, slope);
                same_bits(&a, &b);
                bn_input_grad(&mut a, &g, &y, &x, (0.5, -1.25, 0.125), slope);
                bn_input_grad_imp(&mut b, &g, &y, &x, (0.5, -1.25, 0.125), slope);
                same_bits(&a, &b);
                let (s1, q1) = grad_sums(&g, &y, &x, slope);
                let (s2, q2) = grad_sums_imp(&g, &y, &x, slope);
                assert_eq!((s1.to_bits(), q1.to_bits()), (s2.to_bits(), q2.to_bits()));
            }
            let (s1, q1) = sum_and_sq_dev(&x, 0.25);
            let (s2, q2) = sum_and_sq_dev_imp(&x, 0.25);
            assert_eq!((s1.to_bits(), q1.to_bits()), (s2.to_bits(), q2.to_bits()));
        }
    }
}
