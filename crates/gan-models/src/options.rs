//! What [`GanTrainer`](crate::train::GanTrainer) can add to the plain adversarial step, in one
//! struct that every model built on it shares ([`GanOptions`], saved in `config.json` as
//! `options`; absent in older runs, which means all off):
//!
//! - `n_dis` discriminator steps per generator step, each on a fresh real batch (SNGAN: 5);
//! - DiffAugment (Zhao et al. 2020, [`gan_core::diffaug`]) on everything the discriminator sees,
//!   real or fake, in its steps and in the generator's;
//! - the R1 penalty (Mescheder et al. 2018, [`gan_core::penalty::r1_penalty`]) on the
//!   discriminator's real input, lazily (Karras et al. 2020): only in the discriminator steps of
//!   every `every`-th generator step, with γ multiplied by `every` so that its average weight
//!   stays γ;
//! - an exponential moving average of the generator's weights ([`gan_core::ema`]), kept beside
//!   it, saved in checkpoints as `generator_ema.safetensors`, and used for sample grids,
//!   evaluation, `sample`, `interpolate` and `eval` unless `raw_generator` is set.
//!
//! Separate learning rates for the two networks (TTUR, Heusel et al. 2017) need nothing here:
//! each network has its own optimizer configuration.

use candle_core::Tensor;
use candle_nn::VarMap;
use gan_core::diffaug::DiffAugment;
use gan_core::ema::EmaConfig;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The R1 penalty's settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct R1Config {
    /// γ in γ/2 · mean ‖∇x D(x)‖² (StyleGAN2: 10 at 1024², 0.1–1 for small images).
    pub gamma: f64,
    /// Apply it in the discriminator steps of every this many generator steps (1: always).
    pub every: u64,
}

fn one() -> usize {
    1
}

/// The options of the adversarial step; `Default` is the plain DCGAN step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GanOptions {
    /// Discriminator steps per generator step (1: DCGAN's alternation).
    #[serde(default = "one")]
    pub n_dis: usize,
    /// DiffAugment policy for the discriminator's inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diffaug: Option<DiffAugment>,
    /// The R1 penalty on real images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r1: Option<R1Config>,
    /// The EMA generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema: Option<EmaConfig>,
    /// Sample, evaluate and write grids from the raw generator even when an EMA is kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw_generator: bool,
}

impl Default for GanOptions {
    fn default() -> Self {
        Self {
            n_dis: 1,
            diffaug: None,
            r1: None,
            ema: None,
            raw_generator: false,
        }
    }
}

impl GanOptions {
    /// Whether nothing is added to the plain step (the field is then left out of `config.json`).
    pub fn is_plain(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the values: `n_dis` ≥ 1, γ ≥ 0 and finite, `every` ≥ 1, the EMA decay in [0, 1).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::Config(m));
        if self.n_dis == 0 {
            return bad("--n-dis must be at least 1".into());
        }
        if let Some(r1) = self.r1 {
            if !(r1.gamma >= 0.0 && r1.gamma.is_finite()) {
                return bad(format!(
                    "--r1 must be a non-negative number, got {}",
                    r1.gamma
                ));
            }
            if r1.every == 0 {
                return bad("--r1-every must be at least 1".into());
            }
        }
        if let Some(ema) = self.ema {
            ema.validate()
                .map_err(|e| ModelError::Config(format!("--ema: {e}")))?;
        }
        Ok(())
    }

    /// The R1 weight to apply in the discriminator steps before generator step `step + 1`
    /// (γ·every on the lazy steps), or `None`.
    pub fn r1_gamma_at(&self, step: u64) -> Option<f64> {
        self.r1
            .filter(|r| step % r.every == 0)
            .map(|r| r.gamma * r.every as f64)
    }
}

/// A second copy of the generator whose weights are the EMA of the trained one's.
#[allow(missing_debug_implementations)] // VarMap has no Debug
pub struct EmaGenerator<G> {
    /// The averaged network.
    pub g: G,
    /// Its variables (the same names as the generator's).
    pub vars: VarMap,
    /// Decay and start.
    pub cfg: EmaConfig,
}

impl<G> EmaGenerator<G> {
    /// Updates the average from `net` after generator step `step`.
    pub fn update(&self, net: &VarMap, step: u64) -> Result<()> {
        Ok(self.cfg.update(&self.vars, net, step)?)
    }

    /// The averaged variables by name (a checkpoint's `generator_ema.safetensors`).
    pub fn tensors(&self) -> std::collections::HashMap<String, Tensor> {
        let data = self
            .vars
            .data()
            .lock()
            .expect("the variable map is not poisoned");
        data.iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
            .collect()
    }

    /// Restores the averaged variables; every variable must be present with its shape.
    pub fn restore(&self, tensors: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        let data = self
            .vars
            .data()
            .lock()
            .expect("the variable map is not poisoned");
        for (name, var) in data.iter() {
            let Some(t) = tensors.get(name) else {
                return Err(ModelError::Config(format!(
                    "the EMA generator has no tensor {name}"
                )));
            };
            var.set(&t.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }
}
