//! An exponential moving average of a network's weights (Yazıcı et al. 2019, "The Unusual
//! Effectiveness of Averaging in GAN Training"; Karras et al. 2018 use it for every ProGAN and
//! StyleGAN sample).
//!
//! After each generator update at step t (1 for the first), every variable θ of the network
//! updates its average θ̄ as
//!
//! ```text
//! θ̄ ← β·θ̄ + (1 − β)·θ     for t > start
//! θ̄ ← θ                   for t ≤ start
//! ```
//!
//! so the average only starts forgetting once the weights have left their random start. Buffers
//! that are not trained (BatchNorm's `running_mean` and `running_var`) are copied rather than
//! averaged, as PyTorch-StudioGAN does: they are statistics of the raw network's activations,
//! which the average network's activations resemble.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{Init, VarBuilder, VarMap};
//! use gan_core::ema::EmaConfig;
//! let (net, avg) = (VarMap::new(), VarMap::new());
//! for m in [&net, &avg] {
//!     VarBuilder::from_varmap(m, DType::F32, &Device::Cpu).get_with_hints(2, "w", Init::Const(0.0))?;
//! }
//! net.data().lock().unwrap()["w"].set(&Tensor::new(&[1f32, 2.0], &Device::Cpu)?)?;
//! EmaConfig { decay: 0.9, start: 0 }.update(&avg, &net, 1)?;
//! let w = avg.data().lock().unwrap()["w"].to_vec1::<f32>()?;
//! assert!((w[0] - 0.1).abs() < 1e-6 && (w[1] - 0.2).abs() < 1e-6);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, Result};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

/// The decay β and the step after which averaging starts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmaConfig {
    /// β in [0, 1): the weight of the old average (0.999 is usual).
    pub decay: f64,
    /// Until this step (inclusive) the average is a copy of the weights.
    pub start: u64,
}

/// Whether a variable is a running statistic (copied, not averaged).
pub fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

impl EmaConfig {
    /// Checks that β is in [0, 1).
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.decay) {
            bail!("the EMA decay must be in [0, 1), got {}", self.decay)
        }
        Ok(())
    }

    /// The decay applied after step `step`: 0 (a copy) up to `start`, β after.
    pub fn decay_at(&self, step: u64) -> f64 {
        if step <= self.start {
            0.0
        } else {
            self.decay
        }
    }

    /// Updates `average` from `net` after step `step` (see the [module docs](self)). Both maps
    /// must hold the same names and shapes (the same network built twice).
    pub fn update(&self, average: &VarMap, net: &VarMap, step: u64) -> Result<()> {
        let beta = self.decay_at(step);
        let src = net.data().lock().expect("the variable map is not poisoned");
        let dst = average
            .data()
            .lock()
            .expect("the variable map is not poisoned");
        if src.len() != dst.len() {
            bail!(
                "EMA: the network has {} variables, its average {}",
                src.len(),
                dst.len()
            )
        }
        for (name, theta) in src.iter() {
            let Some(avg) = dst.get(name) else {
                bail!("EMA: the average has no variable {name}")
            };
            let theta = theta.as_tensor().detach();
            let new = if beta == 0.0 || is_buffer(name) {
                theta.copy()?
            } else {
                ((avg.as_tensor().detach() * beta)? + (theta * (1.0 - beta))?)?
            };
            avg.set(&new)?;
        }
        Ok(())
    }
}

/// Copies every variable of `src` into the variable of the same name in `dst` (both maps hold
/// the same network).
pub fn copy_vars(dst: &VarMap, src: &VarMap) -> Result<()> {
    EmaConfig {
        decay: 0.0,
        start: u64::MAX,
    }
    .update(dst, src, 0)
}
