//! The WGAN-GP gradient penalty (Gulrajani et al. 2017), the R1 penalty (Mescheder et al.
//! 2018, [`r1_penalty`]) and the switch that makes its own
//! gradient right.
//!
//! # The penalty
//!
//! For a real batch x and a fake batch x̃, each sample gets its own ε ~ U[0, 1) and the
//! interpolate x̂ = ε·x + (1 − ε)·x̃; then
//!
//! ```text
//! P = λ · mean_i (‖∇x̂ D(x̂)_i‖₂ − 1)²
//! ```
//!
//! where the norm runs over all non-batch axes of sample i. The gradient ∇x̂ D(x̂) is taken by
//! back-propagating `sum_i D(x̂)_i` to x̂: the critic must treat samples independently (no
//! BatchNorm, which mixes them; use layer norm or none) for that sum to give per-sample
//! gradients. The norm is √(Σ g² + 10⁻¹²) so that its derivative stays finite at zero.
//!
//! # Second order, and why it is checked at run time
//!
//! Minimising P means differentiating a gradient. candle 0.11 *detaches* every intermediate
//! gradient during `backward` unless the thread-local switch `CANDLE_GRAD_DO_NOT_DETACH` is on,
//! and with the default the penalty's gradient with respect to the critic's weights is silently
//! wrong (parts of the chain rule go missing; nothing fails). candle reads the environment
//! variable once per thread, the first time that thread runs `backward`, and never again.
//!
//! - [`ensure_second_order`] sets the variable and checks that the calling thread honours it.
//!   Call it before the thread's first `backward`, or from a thread started after it (threads
//!   started later read the set value).
//! - [`second_order_enabled`] tells, by differentiating x³ twice (6x when the graph is kept,
//!   4x when candle detaches), whether the current thread keeps the graph.
//! - [`gradient_penalty`] and [`penalty_at`] refuse to run on a thread that detaches, so the
//!   failure is loud.
//!
//! The cost: with the switch on, every gradient keeps the graph that computed it alive for as
//! long as the gradient lives, so the intermediate tensors of the backward pass are freed only
//! when the [`candle_core::backprop::GradStore`] is dropped, not as soon as they are consumed.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use gan_core::penalty::{ensure_second_order, gradient_penalty};
//! use gan_core::rng::SeededRng;
//! // A fresh thread, so that the switch is read after it is set.
//! std::thread::spawn(|| -> candle_core::Result<()> {
//!     ensure_second_order()?;
//!     let dev = Device::Cpu;
//!     let w = candle_core::Var::new(&[[1.0f32, 2.0]], &dev)?;
//!     // D(x) = x·wᵀ: ∇x D = w everywhere, so the penalty is λ·(‖w‖ − 1)² = 10·(√5 − 1)².
//!     let critic = |xs: &Tensor| xs.matmul(&w.as_tensor().t()?)?.squeeze(1);
//!     let real = Tensor::new(&[[1.0f32, 0.0], [0.5, 0.5]], &dev)?;
//!     let fake = Tensor::new(&[[0.0f32, 1.0], [-1.0, 2.0]], &dev)?;
//!     let p = gradient_penalty(critic, &real, &fake, &mut SeededRng::new(0), 10.0)?;
//!     let want = 10.0 * (5f32.sqrt() - 1.0).powi(2);
//!     assert!((p.value.to_scalar::<f32>()? - want).abs() < 1e-4);
//!     assert!((p.mean_grad_norm - 5f32.sqrt()).abs() < 1e-5);
//!     Ok(())
//! })
//! .join()
//! .unwrap()?;
//! # Ok::<(), candle_core::Error>(())
//! ```

use std::cell::Cell;

use candle_core::{bail, DType, Device, Result, Tensor, Var};

use crate::rng::SeededRng;

/// The environment variable candle reads (once per thread) to keep gradients differentiable.
pub const DO_NOT_DETACH_VAR: &str = "CANDLE_GRAD_DO_NOT_DETACH";

/// Added under the square root of the gradient norm, so that its derivative is finite at zero.
const NORM_EPS: f64 = 1e-12;

thread_local! {
    /// The probe's answer for this thread; candle's own switch never changes once read.
    static SECOND_ORDER: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Whether the current thread keeps the graph of gradients during `backward`, so that they can
/// be differentiated again. Decided by differentiating x³ twice at x = 1.5 (once per thread; the
/// probe itself makes candle read its switch if this thread had not yet).
pub fn second_order_enabled() -> Result<bool> {
    if let Some(v) = SECOND_ORDER.with(Cell::get) {
        return Ok(v);
    }
    let x = Var::new(&[1.5f64], &Device::Cpu)?;
    let xs = x.as_tensor();
    let y = xs.mul(xs)?.mul(xs)?.sum_all()?;
    let Some(g) = y.backward()?.remove(xs) else {
        bail!("second-order probe: no gradient for x");
    };
    let g2 = match g.sum_all()?.backward()?.remove(xs) {
        Some(g2) => g2.to_vec1::<f64>()?[0],
        None => 0.0,
    };
    // d²(x³)/dx² = 6x = 9; candle's detaching backward gives 4x = 6.
    let enabled = (g2 - 9.0).abs() < 1e-9;
    SECOND_ORDER.with(|c| c.set(Some(enabled)));
    Ok(enabled)
}

/// Turns on second-order gradients: sets `CANDLE_GRAD_DO_NOT_DETACH=1` (if not already on) for
/// every thread that has not yet read it, and checks that the current thread keeps the graph.
///
/// Fails if the current thread already ran `backward` with the detaching default, since candle
/// never reads the variable again on that thread: call this first, or train on a thread started
/// after it. Setting an environment variable is not synchronised with other threads reading the
/// environment, so call it before starting training threads.
pub fn ensure_second_order() -> Result<()> {
    let on = std::env::var(DO_NOT_DETACH_VAR).is_ok_and(|s| !s.is_empty() && s != "0");
    if !on {
        std::env::set_var(DO_NOT_DETACH_VAR, "1");
    }
    if !second_order_enabled()? {
        bail!(
            "this thread ran backward before {DO_NOT_DETACH_VAR} was set, so candle detaches its \
             gradients and a gradient penalty's gradient would be wrong; call \
             ensure_second_order before any backward, or train on a thread started after it"
        );
    }
    Ok(())
}

/// A gradient penalty and what it measured.
#[derive(Clone, Debug)]
pub struct PenaltyTerm {
    /// λ · mean (‖∇D(x̂)‖ − 1)², a scalar tensor to add to the critic's loss.
    pub value: Tensor,
    /// The mean over the batch of ‖∇D(x̂)‖ (for logging; 1 is the target).
    pub mean_grad_norm: f32,
}

/// Per-sample uniform interpolates x̂ = ε·real + (1 − ε)·fake, ε ~ U[0, 1) drawn from `rng`
/// (one per sample, in batch order), detached from both inputs.
///
/// # Shapes
/// `real`, `fake`: `[b, ...]` → `[b, ...]`.
pub fn interpolate(real: &Tensor, fake: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
    if real.dims() != fake.dims() {
        bail!(
            "gradient penalty: real batch {:?} and fake batch {:?} differ in shape",
            real.dims(),
            fake.dims()
        );
    }
    let b = real.dim(0)?;
    let mut eps_shape = vec![1usize; real.rank()];
    eps_shape[0] = b;
    let eps = rng.rand_dtype(eps_shape, 0.0, 1.0, real.dtype(), real.device())?;
    let (real, fake) = (real.detach(), fake.detach());
    let x_hat = real.broadcast_mul(&eps)? + fake.broadcast_mul(&eps.affine(-1.0, 1.0)?)?;
    Ok(x_hat?.detach())
}

/// Σⱼ (∂D(x)ᵢ/∂xᵢⱼ)², the squared norm of each sample's input gradient, `[b]`, differentiable
/// with respect to the critic's parameters (through the gradient's own graph). Errors on a
/// thread where candle detaches gradients (see [`ensure_second_order`]). `what` names the
/// penalty in errors.
fn input_grad_sq_norms(
    critic: impl Fn(&Tensor) -> Result<Tensor>,
    xs: &Tensor,
    what: &str,
) -> Result<Tensor> {
    if !second_order_enabled()? {
        bail!(
            "{what} on a thread where candle detaches gradients: its gradient would be wrong; \
             call gan_core::penalty::ensure_second_order before this thread's first backward"
        );
    }
    let b = xs.dim(0)?;
    let x = Var::from_tensor(&xs.detach())?;
    let scores = critic(x.as_tensor())?;
    if scores.elem_count() != b {
        bail!(
            "{what}: the critic gave {:?} for a batch of {b}; expected one score per sample",
            scores.dims()
        );
    }
    let Some(grad) = scores.sum_all()?.backward()?.remove(x.as_tensor()) else {
        bail!("{what}: the critic's output does not depend on its input");
    };
    grad.reshape((b, ()))?.sqr()?.sum(1)
}

fn mean_scalar(xs: &Tensor) -> Result<f32> {
    Ok(xs
        .detach()
        .to_dtype(DType::F64)?
        .mean_all()?
        .to_scalar::<f64>()? as f32)
}

/// The penalty λ · mean_i (‖∇x D(x)_i‖₂ − 1)² at the points `x_hat`, differentiable with respect
/// to the critic's parameters (through the gradient's own graph). Errors on a thread where
/// candle detaches gradients (see [`ensure_second_order`]).
///
/// `critic` maps `[b, ...]` to one score per sample, `[b]` (or `[b, 1]`).
pub fn penalty_at(
    critic: impl Fn(&Tensor) -> Result<Tensor>,
    x_hat: &Tensor,
    lambda: f64,
) -> Result<PenaltyTerm> {
    let sq = input_grad_sq_norms(critic, x_hat, "gradient penalty")?;
    let norms = (sq + NORM_EPS)?.sqrt()?;
    let value = ((norms.affine(1.0, -1.0)?.sqr()?.mean_all()?) * lambda)?;
    Ok(PenaltyTerm {
        value,
        mean_grad_norm: mean_scalar(&norms)?,
    })
}

/// The R1 penalty (Mescheder et al. 2018, "Which Training Methods for GANs do actually
/// Converge?", eq. 9) on the real batch `real` `[b, ...]`:
///
/// ```text
/// R1 = γ/2 · mean_i ‖∇x D(x)_i‖₂²
/// ```
///
/// differentiable with respect to the critic's parameters; `mean_grad_norm` is the mean of
/// ‖∇x D(x)_i‖₂. `critic` maps `[b, ...]` to one score (logit) per sample and must treat
/// samples independently. Errors on a thread where candle detaches gradients (see
/// [`ensure_second_order`]).
pub fn r1_penalty(
    critic: impl Fn(&Tensor) -> Result<Tensor>,
    real: &Tensor,
    gamma: f64,
) -> Result<PenaltyTerm> {
    let sq = input_grad_sq_norms(critic, real, "R1 penalty")?;
    let value = (sq.mean_all()? * (gamma / 2.0))?;
    Ok(PenaltyTerm {
        value,
        mean_grad_norm: mean_scalar(&sq.sqrt()?)?,
    })
}

/// The WGAN-GP penalty on per-sample uniform interpolates between `real` and `fake` (ε from
/// `rng`); see the [module docs](self). Both batches are detached: the penalty trains the
/// critic only.
pub fn gradient_penalty(
    critic: impl Fn(&Tensor) -> Result<Tensor>,
    real: &Tensor,
    fake: &Tensor,
    rng: &mut SeededRng,
    lambda: f64,
) -> Result<PenaltyTerm> {
    let x_hat = interpolate(real, fake, rng)?;
    penalty_at(critic, &x_hat, lambda)
}
