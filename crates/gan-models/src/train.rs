//! The adversarial training step and loop, shared by every model trained with a cross-entropy
//! discriminator (DCGAN, the 2D toy).
//!
//! One step, as in pytorch/examples' DCGAN:
//! 1. draw z, make a fake batch G(z) (train mode);
//! 2. update D on the real batch (label 1, or less with one-sided smoothing) and on the fake
//!    batch *detached* (label 0), so no gradient reaches G;
//! 3. update G through the updated D with the generator loss; only G's optimizer steps, so D's
//!    parameters are untouched.
//!
//! Logged per step: Loss_D, Loss_G, D(x) (mean σ on reals), D(G(z)) before the G step (on the
//! detached fakes) and after the D update (the fakes seen by the G step).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use gan_core::loss::{discriminator_loss, generator_loss, sigmoid_mean, GeneratorLoss};
use gan_core::optim::Adam;
use gan_core::rng::{RngState, SeededRng};
use gan_data::{Batcher, Dataset};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::run::{read_json, write_json, RunDir, LATEST};

/// A generator network.
pub trait GeneratorNet {
    /// Maps noise `[batch, latent_dim]` to samples; `train` selects training-mode layers.
    fn generate(&self, z: &Tensor, train: bool) -> Result<Tensor>;
    /// Length of z.
    fn latent_dim(&self) -> usize;
}

/// A discriminator network returning one logit per sample.
pub trait DiscriminatorNet {
    /// Logits `[batch]` (or fewer, for packed discriminators) for samples `xs`.
    fn logits(&self, xs: &Tensor, train: bool) -> Result<Tensor>;
}

/// What one step measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// The step number (1 for the first step).
    pub step: u64,
    /// The epoch the real batch came from.
    pub epoch: u64,
    /// The discriminator's loss.
    pub loss_d: f32,
    /// The generator's loss.
    pub loss_g: f32,
    /// Mean D(x) on the real batch.
    pub d_x: f32,
    /// Mean D(G(z)) on the fakes before the D update.
    pub d_g_z1: f32,
    /// Mean D(G(z)) on the same fakes after the D update, as seen by the G step.
    pub d_g_z2: f32,
}

impl StepMetrics {
    /// Whether every number is finite.
    pub fn is_finite(&self) -> bool {
        [self.loss_d, self.loss_g, self.d_x, self.d_g_z1, self.d_g_z2]
            .iter()
            .all(|v| v.is_finite())
    }
}

/// Training settings of the adversarial step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepConfig {
    /// The generator's objective.
    pub loss: GeneratorLoss,
    /// Target for real samples: 1.0, or e.g. 0.9 for one-sided label smoothing.
    pub real_label: f64,
}

impl Default for StepConfig {
    fn default() -> Self {
        Self {
            loss: GeneratorLoss::NonSaturating,
            real_label: 1.0,
        }
    }
}

/// Position and random state saved with a checkpoint (`state.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps done.
    pub step: u64,
    /// Epoch of the next batch.
    pub epoch: u64,
    /// Index within that epoch of the next batch.
    pub batch_index: u64,
    /// The noise generator's state.
    pub noise_rng: RngState,
}

/// A generator, a discriminator, their variables and optimizers, and the noise source.
pub struct GanTrainer<G, D> {
    /// The generator.
    pub g: G,
    /// The discriminator.
    pub d: D,
    /// The generator's variables.
    pub g_vars: VarMap,
    /// The discriminator's variables.
    pub d_vars: VarMap,
    /// The generator's optimizer.
    pub opt_g: Adam,
    /// The discriminator's optimizer.
    pub opt_d: Adam,
    /// Noise for the training steps.
    pub noise: SeededRng,
    /// Loss settings.
    pub cfg: StepConfig,
    /// Steps done.
    pub step: u64,
    /// The device.
    pub device: Device,
}

impl<G, D> std::fmt::Debug for GanTrainer<G, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GanTrainer")
            .field("step", &self.step)
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl<G: GeneratorNet, D: DiscriminatorNet> GanTrainer<G, D> {
    /// Draws a noise batch `[n, latent_dim]` from `rng`.
    pub fn noise_batch(&self, rng: &mut SeededRng, n: usize) -> Result<Tensor> {
        Ok(rng.randn((n, self.g.latent_dim()), 0.0, 1.0, &self.device)?)
    }

    /// One adversarial step on a real batch.
    pub fn train_step(&mut self, real: &Tensor, epoch: u64) -> Result<StepMetrics> {
        let b = real.dim(0)?;
        let mut rng = std::mem::replace(&mut self.noise, SeededRng::new(0));
        let z = self.noise_batch(&mut rng, b);
        self.noise = rng;
        let fake = self.g.generate(&z?, true)?;

        // Discriminator: reals, and fakes detached so that no gradient reaches G.
        let real_logits = self.d.logits(real, true)?;
        let fake_logits = self.d.logits(&fake.detach(), true)?;
        let loss_d = discriminator_loss(&real_logits, &fake_logits, self.cfg.real_label)?;
        self.opt_d.backward_step(&loss_d)?;

        // Generator, through the updated D; only G's optimizer steps, so D's parameters are
        // constants here and their gradients are not computed.
        let out = {
            let _frozen = gan_core::freeze::freeze_params();
            self.d.logits(&fake, true)?
        };
        let loss_g = generator_loss(&out, self.cfg.loss)?;
        self.opt_g.backward_step(&loss_g)?;

        self.step += 1;
        Ok(StepMetrics {
            step: self.step,
            epoch,
            loss_d: loss_d.to_scalar::<f32>()?,
            loss_g: loss_g.to_scalar::<f32>()?,
            d_x: sigmoid_mean(&real_logits)?,
            d_g_z1: sigmoid_mean(&fake_logits)?,
            d_g_z2: sigmoid_mean(&out)?,
        })
    }

    /// Writes the networks, the optimizers and `state` into `dir`.
    pub fn save(&self, dir: &Path, state: &TrainState) -> Result<()> {
        let save = |vars: &VarMap, name: &str| -> Result<()> {
            let p = dir.join(name);
            vars.save(&p).map_err(|e| ModelError::Checkpoint {
                path: p,
                reason: e.to_string(),
            })
        };
        save(&self.g_vars, "generator.safetensors")?;
        save(&self.d_vars, "discriminator.safetensors")?;
        let mut opt: HashMap<String, Tensor> = HashMap::new();
        for (k, v) in self.opt_g.state_tensors() {
            opt.insert(format!("generator.{k}"), v);
        }
        for (k, v) in self.opt_d.state_tensors() {
            opt.insert(format!("discriminator.{k}"), v);
        }
        let p = dir.join("optimizers.safetensors");
        candle_core::safetensors::save(&opt, &p).map_err(|e| ModelError::Checkpoint {
            path: p,
            reason: e.to_string(),
        })?;
        write_json(&dir.join("state.json"), state)
    }

    /// Restores the networks, the optimizers and the noise state from `dir`; returns the state.
    pub fn load(&mut self, dir: &Path) -> Result<TrainState> {
        load_vars(&mut self.g_vars, &dir.join("generator.safetensors"))?;
        load_vars(&mut self.d_vars, &dir.join("discriminator.safetensors"))?;
        let p = dir.join("optimizers.safetensors");
        let all = candle_core::safetensors::load(&p, &self.device).map_err(|e| {
            ModelError::Checkpoint {
                path: p.clone(),
                reason: e.to_string(),
            }
        })?;
        let part = |prefix: &str| -> HashMap<String, Tensor> {
            all.iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
                .collect()
        };
        let ck = |e: candle_core::Error| ModelError::Checkpoint {
            path: p.clone(),
            reason: e.to_string(),
        };
        self.opt_g.load_state(&part("generator.")).map_err(ck)?;
        self.opt_d.load_state(&part("discriminator.")).map_err(ck)?;
        let state: TrainState = read_json(&dir.join("state.json"))?;
        self.noise = SeededRng::from_state(&state.noise_rng);
        self.step = state.step;
        Ok(state)
    }
}

/// Loads a safetensors file into the variables of `vars`, which must all be present with the
/// same shapes.
pub fn load_vars(vars: &mut VarMap, path: &Path) -> Result<()> {
    if !path.is_file() {
        return Err(ModelError::Checkpoint {
            path: path.into(),
            reason: "file is missing".into(),
        });
    }
    vars.load(path).map_err(|e| ModelError::Checkpoint {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// When to stop, log, sample and checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopConfig {
    /// Total steps of the run (a resumed run continues up to this).
    pub steps: u64,
    /// Write a sample grid every this many steps (0: never; one is always written at the end).
    pub sample_every: u64,
    /// Write `checkpoints/step-NNNNNN` every this many steps (0: never); `latest` is written at
    /// the same times and at the end.
    pub checkpoint_every: u64,
    /// Append to `metrics.jsonl` every this many steps.
    pub log_every: u64,
}

/// Receives progress from a training loop ([`fit`], `fit_wgan`, `train_toy`; with `M` =
/// `CycleStepMetrics`, `train_cyclegan`); the CLI draws a progress bar with it.
pub trait Observer<M = StepMetrics> {
    /// Called after every step with its metrics and the throughput so far (items per second).
    fn on_step(&mut self, _m: &M, _items_per_sec: f64) {}
    /// Called when something was written (a sample grid, a checkpoint).
    fn on_event(&mut self, _msg: &str) {}
    /// Polled after every step: return true to stop (a checkpoint is still written).
    fn should_stop(&self) -> bool {
        false
    }
    /// Called after every step, after [`Observer::on_step`], with the generator in its current
    /// state, so that an observer can sample from it (to evaluate every N steps, for example).
    /// An error ends training with that error.
    fn on_generator(&mut self, _step: u64, _g: &dyn GeneratorNet) -> Result<()> {
        Ok(())
    }
}

/// Restores a run from its `latest` checkpoint: `load` reads the trainer's state from the
/// checkpoint folder, `step` says which step that state is at; metrics logged after it are
/// dropped (they will be logged again) and the observer is told. Returns the loaded state, for
/// the caller to move its data source to the saved position.
pub fn resume_latest<T, M>(
    run: &RunDir,
    observer: &mut dyn Observer<M>,
    load: impl FnOnce(&Path) -> Result<T>,
    step: impl Fn(&T) -> u64,
) -> Result<T> {
    let dir = run.checkpoint(LATEST)?;
    let state = load(&dir)?;
    let at = step(&state);
    run.truncate_metrics_after(at)?;
    observer.on_event(&format!("resumed from {} at step {at}", dir.display()));
    Ok(state)
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;
impl<M> Observer<M> for Silent {}

/// How [`fit`] ended.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOutcome {
    /// Steps done in total.
    pub step: u64,
    /// Whether the observer asked to stop early.
    pub interrupted: bool,
    /// The metrics of the last step, if any step ran.
    pub last: Option<StepMetrics>,
    /// Mean seconds per step over this call.
    pub secs_per_step: f64,
}

/// Writes the sample file of a step (a grid, a scatter plot) from the trainer's current state.
pub type SampleWriter<'a, G, D> = dyn FnMut(&GanTrainer<G, D>, &Path) -> Result<()> + 'a;

/// Trains until `cfg.steps`: batches from `batcher`, metrics into the run folder, sample files
/// from `write_samples(trainer, path)`, checkpoints at the configured times and at the end.
pub fn fit<G: GeneratorNet, D: DiscriminatorNet, S: Dataset>(
    trainer: &mut GanTrainer<G, D>,
    batcher: &mut Batcher<'_, S>,
    run: &RunDir,
    cfg: LoopConfig,
    write_samples: &mut SampleWriter<'_, G, D>,
    observer: &mut dyn Observer,
) -> Result<FitOutcome> {
    let start = Instant::now();
    let first_step = trainer.step;
    let mut last = None;
    let mut items = 0usize;
    let mut interrupted = false;
    let checkpoint = |trainer: &GanTrainer<G, D>, batcher: &Batcher<'_, S>, name: &str| {
        let (epoch, index) = batcher.position();
        let state = TrainState {
            step: trainer.step,
            epoch: epoch as u64,
            batch_index: index as u64,
            noise_rng: trainer.noise.state(),
        };
        run.write_checkpoint(name, |dir| trainer.save(dir, &state))
    };
    while trainer.step < cfg.steps {
        let batch = batcher.next_batch()?;
        let m = trainer.train_step(&batch.items, batch.epoch as u64)?;
        items += batch.items.dim(0)?;
        if !m.is_finite() {
            tracing::warn!(step = m.step, "non-finite loss: {m:?}");
        }
        if cfg.log_every > 0 && (m.step % cfg.log_every == 0 || m.step == 1) {
            run.append_metrics(&m)?;
        }
        let rate = items as f64 / start.elapsed().as_secs_f64().max(1e-9);
        observer.on_step(&m, rate);
        observer.on_generator(m.step, &trainer.g)?;
        last = Some(m);
        if cfg.sample_every > 0 && m.step % cfg.sample_every == 0 {
            let p = run.sample_path(m.step);
            write_samples(trainer, &p)?;
            observer.on_event(&format!("samples: {}", p.display()));
        }
        if cfg.checkpoint_every > 0 && m.step % cfg.checkpoint_every == 0 {
            let p = checkpoint(trainer, batcher, &format!("step-{:06}", m.step))?;
            checkpoint(trainer, batcher, LATEST)?;
            observer.on_event(&format!("checkpoint: {}", p.display()));
        }
        if observer.should_stop() {
            interrupted = true;
            break;
        }
    }
    if trainer.step > first_step {
        let p = run.sample_path(trainer.step);
        if !p.exists() {
            write_samples(trainer, &p)?;
            observer.on_event(&format!("samples: {}", p.display()));
        }
        let p = checkpoint(trainer, batcher, LATEST)?;
        observer.on_event(&format!("checkpoint: {}", p.display()));
    }
    let done = (trainer.step - first_step).max(1);
    Ok(FitOutcome {
        step: trainer.step,
        interrupted,
        last,
        secs_per_step: start.elapsed().as_secs_f64() / done as f64,
    })
}
