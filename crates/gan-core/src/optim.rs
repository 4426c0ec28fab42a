//! Adam and RMSprop with PyTorch's semantics, whose state can be saved and restored exactly.
//!
//! candle-nn's `AdamW` keeps its moments private, so a run cannot be resumed with the optimizer
//! state it had, and it has no RMSprop (which WGAN with weight clipping uses). Both optimizers
//! here expose their state as named tensors ([`Adam::state_tensors`], [`Adam::load_state`]) that a
//! checkpoint can store next to the weights; a restored optimizer takes bitwise the same steps as
//! one that was never interrupted.
//!
//! # Adam (Kingma & Ba 2015, as `torch.optim.Adam`, no weight decay, no amsgrad)
//!
//! For each parameter p with gradient g at its step t = 1, 2, …:
//!
//! ```text
//! m ← β1·m + (1 − β1)·g
//! v ← β2·v + (1 − β2)·g²
//! p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
//! ```
//!
//! The bias corrections undo the zero initialisation of m and v; ε is added *after* the second
//! correction, exactly where PyTorch adds it (this matters with DCGAN's β1 = 0.5 early on). The
//! defaults of [`AdamConfig`] are DCGAN's: lr 2e-4, β1 0.5, β2 0.999, ε 1e-8.
//!
//! # RMSprop (as `torch.optim.RMSprop` with `centered=False`, `momentum=0`)
//!
//! ```text
//! s ← α·s + (1 − α)·g²
//! p ← p − lr · g / (√s + ε)
//! ```
//!
//! with no bias correction. The defaults of [`RmsPropConfig`] are WGAN's lr 5e-5 with PyTorch's
//! α 0.99 and ε 1e-8.
//!
//! # Skipped parameters and step counts
//!
//! A parameter that has no gradient in the [`GradStore`] is left untouched and its own step count
//! does not advance, as in PyTorch, where the step (and so the bias correction) is per parameter.
//! [`Adam::step_count`] counts calls to `step`.
//!
//! # Speed
//!
//! On the CPU, for contiguous f32 parameters and gradients, one parameter's whole update runs as
//! a single loop over its elements (split over threads for large tensors) that reads the gradient
//! in place and writes the parameter in place; the moments live in plain `Vec<f32>`s. Other
//! devices and dtypes use candle tensor ops with the same arithmetic, in the same order.
//!
//! ```
//! use candle_core::{Device, Var};
//! use gan_core::optim::{Adam, AdamConfig};
//! let w = Var::new(&[1.0f32, -2.0], &Device::Cpu)?;
//! let mut opt = Adam::new(vec![("w".to_string(), w.clone())], AdamConfig::default())?;
//! let loss = w.as_tensor().sqr()?.sum_all()?;
//! opt.backward_step(&loss)?;
//! // The first Adam step moves every coordinate by about lr against its gradient's sign.
//! let w = w.as_tensor().to_vec1::<f32>()?;
//! assert!((w[0] - (1.0 - 2e-4)).abs() < 1e-6 && (w[1] - (-2.0 + 2e-4)).abs() < 1e-6);
//! # Ok::<(), candle_core::Error>(())
//! ```

use crate::simd::avx2_fn;
use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{bail, CpuStorage, DType, Device, InplaceOp2, Layout, Result, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Tensors with at least this many elements are updated by several threads.
const PAR_MIN_LEN: usize = 1 << 15;
/// Elements per thread task in the parallel update.
const PAR_CHUNK: usize = 1 << 13;

/// Hyper-parameters of [`Adam`] (PyTorch names and meaning).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first-moment (mean) estimate.
    pub beta1: f64,
    /// Decay of the second-moment (uncentred variance) estimate.
    pub beta2: f64,
    /// Added to the bias-corrected √v for numerical stability.
    pub eps: f64,
}

impl Default for AdamConfig {
    /// DCGAN's settings: lr 2e-4, β1 0.5, β2 0.999, ε 1e-8.
    fn default() -> Self {
        Self {
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Hyper-parameters of [`RmsProp`] (PyTorch names and meaning).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the running mean of squared gradients.
    pub alpha: f64,
    /// Added to √s for numerical stability.
    pub eps: f64,
}

impl Default for RmsPropConfig {
    /// WGAN's learning rate 5e-5 with PyTorch's α 0.99 and ε 1e-8.
    fn default() -> Self {
        Self {
            lr: 5e-5,
            alpha: 0.99,
            eps: 1e-8,
        }
    }
}

/// The interface shared by [`Adam`] and [`RmsProp`], for training loops generic over both.
pub trait StatefulOptimizer {
    /// Applies one update from the gradients in `grads`; parameters without one are skipped.
    fn step(&mut self, grads: &GradStore) -> Result<()>;
    /// Back-propagates `loss` and applies one update.
    fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }
    /// The current learning rate.
    fn lr(&self) -> f64;
    /// Changes the learning rate (for schedules); the moments are kept.
    fn set_lr(&mut self, lr: f64);
    /// How many times `step` has been called (since creation, or as restored by `load_state`).
    fn step_count(&self) -> u64;
    /// The optimizer's state as named tensors, for a checkpoint.
    fn state_tensors(&self) -> Vec<(String, Tensor)>;
    /// Restores a state saved by `state_tensors`.
    fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()>;
}

/// A boxed optimizer is an optimizer (trainers that pick Adam or RMSprop at run time hold one).
impl StatefulOptimizer for Box<dyn StatefulOptimizer> {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        (**self).step(grads)
    }
    fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        (**self).backward_step(loss)
    }
    fn lr(&self) -> f64 {
        (**self).lr()
    }
    fn set_lr(&mut self, lr: f64) {
        (**self).set_lr(lr)
    }
    fn step_count(&self) -> u64 {
        (**self).step_count()
    }
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        (**self).state_tensors()
    }
    fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        (**self).load_state(tensors)
    }
}

/// A per-parameter buffer (a moment estimate): a host vector for the fused CPU path, or a tensor
/// on the parameter's device for the tensor-op path. It moves between the two lazily.
#[derive(Debug)]
enum Buf {
    Host(Vec<f32>),
    Dev(Tensor),
}

impl Buf {
    fn host(&mut self) -> Result<&mut Vec<f32>> {
        if let Buf::Dev(t) = self {
            let v = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            *self = Buf::Host(v);
        }
        match self {
            Buf::Host(v) => Ok(v),
            Buf::Dev(_) => unreachable!("converted to a host buffer above"),
        }
    }

    fn tensor(&self, like: &Tensor) -> Result<Tensor> {
        match self {
            Buf::Host(v) => {
                Tensor::from_slice(v, like.shape(), like.device())?.to_dtype(like.dtype())
            }
            Buf::Dev(t) => Ok(t.clone()),
        }
    }

    fn dev(&mut self, like: &Tensor) -> Result<Tensor> {
        if let Buf::Host(_) = self {
            *self = Buf::Dev(self.tensor(like)?);
        }
        match self {
            Buf::Dev(t) => Ok(t.clone()),
            Buf::Host(_) => unreachable!("converted to a device buffer above"),
        }
    }
}

/// One parameter and its optimizer state.
#[derive(Debug)]
struct Param {
    name: String,
    var: Var,
    bufs: Vec<Buf>,
    step: u64,
}

/// Parameters, their buffers (named by `buf_names`) and the fused-path switch, shared by both
/// optimizers.
#[derive(Debug)]
struct ParamSet {
    params: Vec<Param>,
    buf_names: &'static [&'static str],
    step_count: u64,
    fused: bool,
    kind: &'static str,
}

fn fusable(var: &Var) -> bool {
    var.device().is_cpu() && var.dtype() == DType::F32 && var.as_tensor().is_contiguous()
}

impl ParamSet {
    fn new(
        vars: Vec<(String, Var)>,
        buf_names: &'static [&'static str],
        kind: &'static str,
    ) -> Result<Self> {
        let mut params = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            if !var.dtype().is_float() {
                bail!(
                    "{kind}: parameter '{name}' has non-float dtype {:?}",
                    var.dtype()
                );
            }
            let bufs = buf_names
                .iter()
                .map(|_| {
                    Ok(if fusable(&var) {
                        Buf::Host(vec![0f32; var.elem_count()])
                    } else {
                        Buf::Dev(var.as_tensor().zeros_like()?)
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            params.push(Param {
                name,
                var,
                bufs,
                step: 0,
            });
        }
        Ok(Self {
            params,
            buf_names,
            step_count: 0,
            fused: true,
            kind,
        })
    }

    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(self.params.len() * (self.buf_names.len() + 1) + 1);
        let scalar = |v: u64| Tensor::new(&[v as f64], &Device::Cpu).expect("a cpu scalar");
        out.push(("step".to_string(), scalar(self.step_count)));
        for p in &self.params {
            for (buf, suffix) in p.bufs.iter().zip(self.buf_names) {
                let t = buf
                    .tensor(p.var.as_tensor())
                    .expect("a buffer of the parameter's shape converts to a tensor");
                out.push((format!("{}.{suffix}", p.name), t));
            }
            out.push((format!("{}.step", p.name), scalar(p.step)));
        }
        out
    }

    fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let kind = self.kind;
        let read_step = |key: &str| -> Result<Option<u64>> {
            let Some(t) = tensors.get(key) else {
                return Ok(None);
            };
            if t.elem_count() != 1 {
                bail!(
                    "{kind} state '{key}' has shape {:?}, expected one element",
                    t.dims()
                );
            }
            let v = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
            if !(v >= 0.0 && v.fract() == 0.0) {
                bail!("{kind} state '{key}' is {v}, expected a non-negative integer");
            }
            Ok(Some(v as u64))
        };
        let Some(step_count) = read_step("step")? else {
            bail!("{kind} state has no 'step' entry");
        };
        // Validate everything before changing anything, so a failed load leaves the optimizer
        // as it was.
        let mut new_state = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let like = p.var.as_tensor();
            let mut bufs = Vec::with_capacity(self.buf_names.len());
            for suffix in self.buf_names {
                let key = format!("{}.{suffix}", p.name);
                let Some(t) = tensors.get(&key) else {
                    bail!("{kind} state has no entry '{key}'");
                };
                if t.dims() != like.dims() {
                    bail!(
                        "{kind} state '{key}' has shape {:?}, expected {:?} (the shape of '{}')",
                        t.dims(),
                        like.dims(),
                        p.name
                    );
                }
                let t = t.to_device(like.device())?.to_dtype(like.dtype())?;
                bufs.push(if fusable(&p.var) {
                    Buf::Host(t.flatten_all()?.to_vec1::<f32>()?)
                } else {
                    Buf::Dev(t.detach().contiguous()?)
                });
            }
            let step = read_step(&format!("{}.step", p.name))?.unwrap_or(step_count);
            new_state.push((bufs, step));
        }
        for (p, (bufs, step)) in self.params.iter_mut().zip(new_state) {
            p.bufs = bufs;
            p.step = step;
        }
        self.step_count = step_count;
        Ok(())
    }

    /// Runs `fused` on the CPU fast path or `tensor_ops` otherwise, for every parameter with a
    /// gradient, after advancing that parameter's step.
    fn step<F, T>(&mut self, grads: &GradStore, fused: F, tensor_ops: T) -> Result<()>
    where
        F: Fn(u64, &Var, &Tensor, &mut [Buf]) -> Result<()>,
        T: Fn(u64, &Var, &Tensor, &mut [Buf]) -> Result<()>,
    {
        for p in &mut self.params {
            let Some(grad) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            if grad.dims() != p.var.dims() {
                bail!(
                    "{}: gradient of '{}' has shape {:?}, expected {:?}",
                    self.kind,
                    p.name,
                    grad.dims(),
                    p.var.dims()
                );
            }
            p.step += 1;
            if self.fused && fusable(&p.var) && grad.dtype() == DType::F32 {
                let grad = if grad.is_contiguous() {
                    grad.clone()
                } else {
                    grad.contiguous()?
                };
                fused(p.step, &p.var, &grad, &mut p.bufs)?;
            } else {
                // Under CANDLE_GRAD_DO_NOT_DETACH the gradient carries a graph; the moments must
                // not keep it alive.
                let grad = grad.detach().to_dtype(p.var.dtype())?;
                tensor_ops(p.step, &p.var, &grad, &mut p.bufs)?;
            }
        }
        self.step_count += 1;
        Ok(())
    }
}

/// Splits the element range of an in-place update over threads when it is large.
fn for_each_chunk<F>(p: &mut [f32], g: &[f32], a: &mut [f32], b: &mut [f32], f: F)
where
    F: Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync,
{
    if p.len() >= PAR_MIN_LEN {
        p.par_chunks_mut(PAR_CHUNK)
            .zip(g.par_chunks(PAR_CHUNK))
            .zip(a.par_chunks_mut(PAR_CHUNK))
            .zip(b.par_chunks_mut(PAR_CHUNK))
            .for_each(|(((p, g), a), b)| f(p, g, a, b));
    } else {
        f(p, g, a, b)
    }
}

/// Extracts the contiguous f32 slices of the destination and source of an in-place op.
fn slices<'a>(
    name: &str,
    s1: &'a mut CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
) -> Result<(&'a mut [f32], &'a [f32])> {
    let (Some((p0, p1)), Some((g0, g1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
    else {
        bail!("{name}: parameter and gradient must be contiguous");
    };
    let CpuStorage::F32(p) = s1 else {
        bail!("{name}: parameter must be f32");
    };
    let g = s2.as_slice::<f32>()?;
    if p1 - p0 != g1 - g0 {
        bail!(
            "{name}: parameter has {} elements, gradient {}",
            p1 - p0,
            g1 - g0
        );
    }
    Ok((&mut p[p0..p1], &g[g0..g1]))
}

/// A fused in-place update of one contiguous f32 parameter from its gradient, run by candle
/// through [`Fused`].
trait FusedUpdate {
    /// The op's name, for errors.
    const NAME: &'static str;
    /// Updates the parameter `p` from the gradient `g` (the same length) in place.
    fn update(&mut self, p: &mut [f32], g: &[f32]) -> Result<()>;
}

/// The candle in-place op of a [`FusedUpdate`]: checks and extracts the slices, then updates.
/// (candle hands an op `&self`; the cell lends the update its state buffers mutably.)
struct Fused<K>(RefCell<K>);

impl<K: FusedUpdate> Fused<K> {
    /// Runs `kernel` on `var` in place, from the gradient `grad`.
    fn run(kernel: K, var: &Var, grad: &Tensor) -> Result<()> {
        var.as_tensor()
            .inplace_op2(grad, &Fused(RefCell::new(kernel)))
    }
}

impl<K: FusedUpdate> InplaceOp2 for Fused<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (p, g) = slices(K::NAME, s1, l1, s2, l2)?;
        self.0.borrow_mut().update(p, g)
    }
}

/// The fused Adam update of one parameter.
struct AdamKernel<'a> {
    m: &'a mut [f32],
    v: &'a mut [f32],
    coef: AdamCoef,
}

impl FusedUpdate for AdamKernel<'_> {
    const NAME: &'static str = "gan-core-adam";

    fn update(&mut self, p: &mut [f32], g: &[f32]) -> Result<()> {
        if self.m.len() != p.len() || self.v.len() != p.len() {
            bail!("{}: moment buffers do not match the parameter", Self::NAME);
        }
        let coef = self.coef;
        for_each_chunk(p, g, self.m, self.v, |p, g, m, v| {
            adam_update(p, g, m, v, coef)
        });
        Ok(())
    }
}

/// The scalars of one fused Adam update.
#[derive(Clone, Copy)]
struct AdamCoef {
    /// β1.
    b1: f32,
    /// 1 − β1.
    c1: f32,
    /// β2.
    b2: f32,
    /// 1 − β2.
    c2: f32,
    /// 1 / √(1 − β2ᵗ).
    inv: f32,
    /// ε.
    eps: f32,
    /// The negated step size −lr / (1 − β1ᵗ).
    nss: f32,
}

avx2_fn! {
    /// One fused Adam update of a slice of parameters.
    fn adam_update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: AdamCoef)
        => adam_update_imp
    {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            // Same operations, in the same order, as the tensor-op path.
            *m = *m * k.b1 + g * k.c1;
            *v = *v * k.b2 + (g * g) * k.c2;
            let denom = v.sqrt() * k.inv + k.eps;
            *p += (*m / denom) * k.nss;
        }
    }
}

/// The methods an optimizer over a [`ParamSet`] shares, as inherent methods (no trait import
/// needed) and as its [`StatefulOptimizer`] implementation; the type writes only its `step`.
macro_rules! param_set_optimizer {
    ($ty:ident, $cfg:ty, $bufs:expr, $name:literal, $state_doc:literal) => {
        impl $ty {
            /// An optimizer for the named variables, with zeroed state buffers. Names must be
            /// unique; they key the saved state.
            pub fn new(vars: Vec<(String, Var)>, cfg: $cfg) -> Result<Self> {
                Ok(Self {
                    set: ParamSet::new(vars, $bufs, $name)?,
                    cfg,
                })
            }

            /// An optimizer for every variable of `varmap`, sorted by name so that the order
            /// (and the saved state) does not depend on hash order.
            pub fn from_varmap(varmap: &candle_nn::VarMap, cfg: $cfg) -> Result<Self> {
                Self::new(sorted_vars(varmap)?, cfg)
            }

            /// The hyper-parameters, with the current learning rate.
            pub fn config(&self) -> $cfg {
                self.cfg
            }

            /// Uses the fused CPU loop (the default) or forces candle tensor ops everywhere;
            /// the results agree to float rounding. Meant for tests and benchmarks.
            pub fn set_fused(&mut self, enabled: bool) {
                self.set.fused = enabled;
            }

            /// The variables updated by this optimizer, in update order, with their names.
            pub fn vars(&self) -> Vec<(String, Var)> {
                self.set
                    .params
                    .iter()
                    .map(|p| (p.name.clone(), p.var.clone()))
                    .collect()
            }

            /// Back-propagates `loss` and applies one update.
            pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
                let grads = loss.backward()?;
                self.step(&grads)
            }

            /// The current learning rate.
            pub fn lr(&self) -> f64 {
                self.cfg.lr
            }

            /// Changes the learning rate; the state buffers are kept.
            pub fn set_lr(&mut self, lr: f64) {
                self.cfg.lr = lr;
            }

            /// How many times `step` has been called.
            pub fn step_count(&self) -> u64 {
                self.set.step_count
            }

            #[doc = $state_doc]
            pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
                self.set.state_tensors()
            }

            /// Restores a state saved by `state_tensors` (tensors may be on any device and of
            /// any float dtype). `step` and every buffer `<name>.<buffer>` are required and must
            /// have the variable's shape; a missing `<name>.step` defaults to `step`. Extra
            /// entries are ignored. On error the optimizer is left unchanged.
            pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
                self.set.load_state(tensors)
            }
        }

        impl StatefulOptimizer for $ty {
            fn step(&mut self, grads: &GradStore) -> Result<()> {
                $ty::step(self, grads)
            }
            fn lr(&self) -> f64 {
                $ty::lr(self)
            }
            fn set_lr(&mut self, lr: f64) {
                $ty::set_lr(self, lr)
            }
            fn step_count(&self) -> u64 {
                $ty::step_count(self)
            }
            fn state_tensors(&self) -> Vec<(String, Tensor)> {
                $ty::state_tensors(self)
            }
            fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
                $ty::load_state(self, tensors)
            }
        }
    };
}

/// Adam with PyTorch's semantics and a state that can be saved; see the [module docs](self).
#[derive(Debug)]
pub struct Adam {
    set: ParamSet,
    cfg: AdamConfig,
}

const ADAM_BUFS: &[&str] = &["exp_avg", "exp_avg_sq"];

param_set_optimizer!(
    Adam,
    AdamConfig,
    ADAM_BUFS,
    "adam",
    "The state as named tensors: `step` (the step count, an f64 of shape `[1]`), and for each \
     variable `<name>.exp_avg`, `<name>.exp_avg_sq` (the moments, shaped like the variable, on \
     its device) and `<name>.step` (its own step count, f64 `[1]`)."
);

impl Adam {
    /// Applies one Adam update from the gradients in `grads`; variables without a gradient are
    /// skipped (their step count does not advance).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let cfg = self.cfg;
        let scalars = move |t: u64| {
            let bc1 = 1.0 - cfg.beta1.powf(t as f64);
            let bc2 = 1.0 - cfg.beta2.powf(t as f64);
            (cfg.lr / bc1, 1.0 / bc2.sqrt())
        };
        let fused = |t: u64, var: &Var, grad: &Tensor, bufs: &mut [Buf]| -> Result<()> {
            let (step_size, inv_bc2_sqrt) = scalars(t);
            let [m, v] = bufs else {
                bail!("adam: expected two moment buffers");
            };
            let kernel = AdamKernel {
                m: m.host()?.as_mut_slice(),
                v: v.host()?.as_mut_slice(),
                coef: AdamCoef {
                    b1: cfg.beta1 as f32,
                    c1: (1.0 - cfg.beta1) as f32,
                    b2: cfg.beta2 as f32,
                    c2: (1.0 - cfg.beta2) as f32,
                    inv: inv_bc2_sqrt as f32,
                    eps: cfg.eps as f32,
                    nss: (-step_size) as f32,
                },
            };
            Fused::run(kernel, var, grad)
        };
        let tensor_ops = |t: u64, var: &Var, grad: &Tensor, bufs: &mut [Buf]| -> Result<()> {
            let (step_size, inv_bc2_sqrt) = scalars(t);
            let [m_buf, v_buf] = bufs else {
                bail!("adam: expected two moment buffers");
            };
            let p = var.as_tensor().detach();
            let m =
                (m_buf.dev(&p)?.affine(cfg.beta1, 0.0)? + grad.affine(1.0 - cfg.beta1, 0.0)?)?;
            let v = (v_buf.dev(&p)?.affine(cfg.beta2, 0.0)?
                + grad.sqr()?.affine(1.0 - cfg.beta2, 0.0)?)?;
            let denom = v.sqrt()?.affine(inv_bc2_sqrt, cfg.eps)?;
            let update = m.div(&denom)?.affine(-step_size, 0.0)?;
            var.set(&(p + update)?)?;
            *m_buf = Buf::Dev(m);
            *v_buf = Buf::Dev(v);
            Ok(())
        };
        self.set.step(grads, fused, tensor_ops)
    }
}

/// The fused RMSprop update of one parameter.
struct RmsPropKernel<'a> {
    s: &'a mut [f32],
    alpha: f32,
    one_minus_alpha: f32,
    eps: f32,
    neg_lr: f32,
}

impl FusedUpdate for RmsPropKernel<'_> {
    const NAME: &'static str = "gan-core-rmsprop";

    fn update(&mut self, p: &mut [f32], g: &[f32]) -> Result<()> {
        if self.s.len() != p.len() {
            bail!(
                "{}: square-average buffer does not match the parameter",
                Self::NAME
            );
        }
        let (a, c, eps, nlr) = (self.alpha, self.one_minus_alpha, self.eps, self.neg_lr);
        let update = |p: &mut [f32], g: &[f32], s: &mut [f32]| {
            for ((p, &g), s) in p.iter_mut().zip(g).zip(s.iter_mut()) {
                *s = *s * a + (g * g) * c;
                let avg = s.sqrt() + eps;
                *p += (g / avg) * nlr;
            }
        };
        let s = &mut *self.s;
        if p.len() >= PAR_MIN_LEN {
            p.par_chunks_mut(PAR_CHUNK)
                .zip(g.par_chunks(PAR_CHUNK))
                .zip(s.par_chunks_mut(PAR_CHUNK))
                .for_each(|((p, g), s)| update(p, g, s));
        } else {
            update(p, g, s);
        }
        Ok(())
    }
}

/// RMSprop with PyTorch's semantics (not centred, no momentum) and a state that can be saved;
/// see the [module docs](self).
#[derive(Debug)]
pub struct RmsProp {
    set: ParamSet,
    cfg: RmsPropConfig,
}

const RMSPROP_BUFS: &[&str] = &["square_avg"];

param_set_optimizer!(
    RmsProp,
    RmsPropConfig,
    RMSPROP_BUFS,
    "rmsprop",
    "The state as named tensors: `step` (f64 `[1]`), and for each variable `<name>.square_avg` \
     (shaped like the variable) and `<name>.step` (f64 `[1]`)."
);

impl RmsProp {
    /// Applies one RMSprop update; variables without a gradient are skipped.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let cfg = self.cfg;
        let fused = |_t: u64, var: &Var, grad: &Tensor, bufs: &mut [Buf]| -> Result<()> {
            let [s] = bufs else {
                bail!("rmsprop: expected one buffer");
            };
            let kernel = RmsPropKernel {
                s: s.host()?.as_mut_slice(),
                alpha: cfg.alpha as f32,
                one_minus_alpha: (1.0 - cfg.alpha) as f32,
                eps: cfg.eps as f32,
                neg_lr: (-cfg.lr) as f32,
            };
            Fused::run(kernel, var, grad)
        };
        let tensor_ops = |_t: u64, var: &Var, grad: &Tensor, bufs: &mut [Buf]| -> Result<()> {
            let [s_buf] = bufs else {
                bail!("rmsprop: expected one buffer");
            };
            let p = var.as_tensor().detach();
            let s = (s_buf.dev(&p)?.affine(cfg.alpha, 0.0)?
                + grad.sqr()?.affine(1.0 - cfg.alpha, 0.0)?)?;
            let avg = (s.sqrt()? + cfg.eps)?;
            let update = grad.div(&avg)?.affine(-cfg.lr, 0.0)?;
            var.set(&(p + update)?)?;
            *s_buf = Buf::Dev(s);
            Ok(())
        };
        self.set.step(grads, fused, tensor_ops)
    }
}

/// The variables of `varmap` sorted by name.
pub(crate) fn sorted_vars(varmap: &candle_nn::VarMap) -> Result<Vec<(String, Var)>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("the var map's lock is poisoned".to_string()))?;
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vars)
}
