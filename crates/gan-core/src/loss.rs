//! GAN losses, computed from the discriminator's raw outputs (logits) so that they stay finite.
//!
//! # Binary cross-entropy on logits
//!
//! With σ(x) = 1/(1 + e^−x) and a target t, the cross-entropy −t·log σ(x) − (1−t)·log(1−σ(x))
//! simplifies to softplus(x) − t·x, and softplus is evaluated as
//!
//! ```text
//! softplus(x) = max(x, 0) + log(1 + exp(−|x|))
//! ```
//!
//! which never exponentiates a positive number, so any logit (±1e4 included) gives a finite loss
//! and a finite gradient σ(x) − t. candle's own `binary_cross_entropy_with_logit` applies the
//! sigmoid first and takes its log, which gives `inf`/NaN once σ(x) rounds to 0 or 1. Here
//! max(x, 0) is written (x + |x|)/2, so that its derivative and that of exp(−|x|) use the same
//! sign convention at x = 0 and the gradient there is exactly 1/2 − t.
//!
//! # Discriminator and generator
//!
//! The discriminator minimises BCE(D(x), 1) + BCE(D(G(z)), 0), each term a mean over its batch
//! (as pytorch/examples' DCGAN does, so with D = 1/2 everywhere the loss is 2·log 2 = log 4).
//! One-sided label smoothing (Salimans et al. 2016) replaces the real target 1 by 0.9.
//!
//! The generator of the original minimax game minimises log(1 − D(G(z))) = −softplus(x). Its
//! gradient with respect to the logit is −σ(x): when the discriminator confidently rejects fakes
//! (early in training, D(G(z)) ≈ 0) the gradient vanishes. Goodfellow et al. (2014) therefore
//! train the generator to maximise log D(G(z)) instead, i.e. to minimise −log σ(x) =
//! softplus(−x), whose gradient −(1 − σ(x)) is close to −1 exactly there: the *non-saturating*
//! loss, the default [`GeneratorLoss`].
//!
//! # Other objectives
//!
//! - Least squares (LSGAN, Mao et al. 2017; CycleGAN's MSE): on raw outputs, no sigmoid.
//! - Hinge (Lim & Ye 2017; SAGAN, BigGAN): D minimises mean relu(1 − D(x)) + mean relu(1 + D(G(z))),
//!   G minimises −mean D(G(z)).
//! - Wasserstein (Arjovsky et al. 2017): the critic minimises mean f(G(z)) − mean f(x), the
//!   generator −mean f(G(z)); use with weight clipping or a gradient penalty.
//!
//! Every function returns a scalar (rank-0) tensor of the input's dtype.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use gan_core::loss::{discriminator_loss, generator_loss, GeneratorLoss};
//! let zeros = Tensor::zeros(8, candle_core::DType::F32, &Device::Cpu)?;
//! let d = discriminator_loss(&zeros, &zeros, 1.0)?.to_scalar::<f32>()?;
//! assert!((d - 4f32.ln()).abs() < 1e-6);
//! let g = generator_loss(&zeros, GeneratorLoss::NonSaturating)?.to_scalar::<f32>()?;
//! assert!((g - 2f32.ln()).abs() < 1e-6);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

/// softplus(x) = log(1 + eˣ), elementwise, in the stable form (x + |x|)/2 + log(1 + e^−|x|).
pub fn softplus(xs: &Tensor) -> Result<Tensor> {
    let abs = xs.abs()?;
    let relu = ((xs + &abs)? * 0.5)?;
    let log_term = (abs.neg()?.exp()? + 1.0)?.log()?;
    relu + log_term
}

/// Mean binary cross-entropy between σ(`logits`) and the constant target `target` (in [0, 1]),
/// over all elements: mean(softplus(x) − t·x).
pub fn bce_with_logits(logits: &Tensor, target: f64) -> Result<Tensor> {
    let per_elem = (softplus(logits)? - logits.affine(target, 0.0)?)?;
    per_elem.mean_all()
}

/// Which generator objective to use with the cross-entropy discriminator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GeneratorLoss {
    /// Minimise −log D(G(z)): strong gradients when the discriminator wins (the usual choice).
    #[default]
    NonSaturating,
    /// Minimise log(1 − D(G(z))), the original minimax objective; saturates early in training.
    Minimax,
    /// The hinge objective for both networks (SNGAN, SAGAN, BigGAN): the discriminator
    /// minimises [`hinge_discriminator_loss`] on raw scores, the generator −mean D(G(z)).
    Hinge,
}

/// Discriminator cross-entropy: mean BCE(`real_logits`, `real_label`) + mean
/// BCE(`fake_logits`, 0). `real_label` is 1.0, or e.g. 0.9 for one-sided label smoothing.
pub fn discriminator_loss(
    real_logits: &Tensor,
    fake_logits: &Tensor,
    real_label: f64,
) -> Result<Tensor> {
    bce_with_logits(real_logits, real_label)? + bce_with_logits(fake_logits, 0.0)?
}

/// Generator loss from the discriminator's logits on fakes, to be minimised:
/// [`GeneratorLoss::NonSaturating`] gives mean −log σ(x) = mean softplus(−x);
/// [`GeneratorLoss::Minimax`] gives mean log(1 − σ(x)) = −mean softplus(x).
/// [`GeneratorLoss::Hinge`] gives −mean x.
pub fn generator_loss(fake_logits: &Tensor, kind: GeneratorLoss) -> Result<Tensor> {
    match kind {
        GeneratorLoss::NonSaturating => bce_with_logits(fake_logits, 1.0),
        GeneratorLoss::Minimax => bce_with_logits(fake_logits, 0.0)?.neg(),
        GeneratorLoss::Hinge => hinge_generator_loss(fake_logits),
    }
}

/// The discriminator's loss that goes with the generator objective `kind`: the hinge loss
/// ([`hinge_discriminator_loss`], `real_label` unused) for [`GeneratorLoss::Hinge`], the
/// cross-entropy [`discriminator_loss`] otherwise.
pub fn discriminator_loss_for(
    kind: GeneratorLoss,
    real_logits: &Tensor,
    fake_logits: &Tensor,
    real_label: f64,
) -> Result<Tensor> {
    match kind {
        GeneratorLoss::Hinge => hinge_discriminator_loss(real_logits, fake_logits),
        _ => discriminator_loss(real_logits, fake_logits, real_label),
    }
}

/// Least-squares discriminator loss on raw outputs: ½·(mean (D(x) − 1)² + mean D(G(z))²).
pub fn lsgan_discriminator_loss(real: &Tensor, fake: &Tensor) -> Result<Tensor> {
    let real_term = (real - 1.0)?.sqr()?.mean_all()?;
    let fake_term = fake.sqr()?.mean_all()?;
    (real_term + fake_term)? * 0.5
}

/// Least-squares generator loss on raw outputs: mean (D(G(z)) − 1)².
pub fn lsgan_generator_loss(fake: &Tensor) -> Result<Tensor> {
    (fake - 1.0)?.sqr()?.mean_all()
}

/// Hinge discriminator loss on raw outputs: mean relu(1 − D(x)) + mean relu(1 + D(G(z))).
pub fn hinge_discriminator_loss(real: &Tensor, fake: &Tensor) -> Result<Tensor> {
    let real_term = (1.0 - real)?.relu()?.mean_all()?;
    let fake_term = (fake + 1.0)?.relu()?.mean_all()?;
    real_term + fake_term
}

/// Hinge generator loss: −mean D(G(z)).
pub fn hinge_generator_loss(fake: &Tensor) -> Result<Tensor> {
    fake.mean_all()?.neg()
}

/// Wasserstein critic loss, to be minimised: mean f(G(z)) − mean f(x).
pub fn wasserstein_critic_loss(real: &Tensor, fake: &Tensor) -> Result<Tensor> {
    fake.mean_all()? - real.mean_all()?
}

/// Wasserstein generator loss: −mean f(G(z)).
pub fn wasserstein_generator_loss(fake: &Tensor) -> Result<Tensor> {
    fake.mean_all()?.neg()
}

/// Mean of σ(`logits`) as an f32, for logging D(x) and D(G(z)); computed in f64 and without
/// tracking gradients.
pub fn sigmoid_mean(logits: &Tensor) -> Result<f32> {
    let xs = logits.detach().to_dtype(DType::F64)?;
    // σ(x) = exp(−softplus(−x)) never overflows.
    let sig = softplus(&xs.neg()?)?.neg()?.exp()?;
    Ok(sig.mean_all()?.to_scalar::<f64>()? as f32)
}
