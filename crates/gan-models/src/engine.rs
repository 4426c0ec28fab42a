//! The training engine every model uses: the [`Trainer`] trait, one loop ([`fit`]), one
//! checkpoint format ([`save_checkpoint`], [`load_checkpoint`]), the learning-rate schedules and
//! the divergence guard.
//!
//! A model writes its networks, a trainer (its `train_step` and the named parts it saves) and its
//! typed step metrics ([`StepRecord`]); the loop does the rest: logging to `metrics.jsonl`,
//! sample files, evaluation hooks, checkpoints, the learning-rate schedule, health warnings,
//! stopping on divergence and on request. The design follows burn-train's `TrainStep` behind one
//! `Learner::fit`.
//!
//! # The checkpoint format
//!
//! A checkpoint folder holds, for each [`Part`], `<file>.safetensors` (the part's variables) and
//! the part's optimizer state in `optimizers.safetensors` under `<opt_key>.<name>`; the trainer's
//! extra tensors (CycleGAN's image pools) in `<extra>.safetensors`; and `state.json`
//! ([`TrainState`]: the step, the data position, the noise generator's state). The names are
//! those each model used before the engine existed, so every checkpoint written since the
//! project began loads unchanged.

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use gan_core::optim::StatefulOptimizer;
use gan_core::rng::RngState;
use gan_data::{Batcher, Dataset};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::health::{HealthMonitor, Warning};
use crate::run::{read_json, write_json, RunDir, LATEST};
use crate::train::{GeneratorNet, LoopConfig, Observer, Translator};

/// What a model's health checks read from a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Signals {
    /// A cross-entropy discriminator's mean probabilities on reals and fakes.
    Probabilities {
        /// Mean D(x).
        d_x: f32,
        /// Mean D(G(z)) (before the discriminator's update).
        d_g_z: f32,
    },
    /// A Wasserstein critic's numbers.
    Critic {
        /// The Wasserstein estimate mean f(x) − mean f(G(z)).
        wasserstein: f32,
        /// The gradient penalty (0 with weight clipping).
        penalty: f32,
    },
    /// Losses only (CycleGAN).
    Losses,
}

/// The typed metrics of one training step: one line of `metrics.jsonl`, the progress line and
/// what the health monitor watches.
pub trait StepRecord: Clone + Debug + Serialize {
    /// The step (1 for the first).
    fn step(&self) -> u64;
    /// The named numbers of the step, in display order, with the labels the field uses
    /// (`Loss_D`, `D(x)`, `W` …): the progress line and divergence messages show these.
    fn values(&self) -> Vec<(&'static str, f32)>;
    /// What the health monitor reads.
    fn signals(&self) -> Signals;
    /// Whether every number is finite.
    fn is_finite(&self) -> bool {
        self.values().iter().all(|(_, v)| v.is_finite())
    }
    /// The values as one line: `Loss_D 0.512 Loss_G 1.204 …`.
    fn summary(&self) -> String {
        self.values()
            .iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The position of a data source, saved in checkpoints so that a resumed run sees the batches an
/// uninterrupted one would.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPosition {
    /// The epoch of the next batch.
    pub epoch: u64,
    /// The index of the next batch within that epoch.
    pub batch_index: u64,
}

/// Where a trainer's batches come from.
pub trait BatchSource {
    /// One batch.
    type Batch;
    /// The next batch, for training step `step` (1-based; sources whose randomness derives from
    /// the step, like CycleGAN's sampler, use it).
    fn next_batch(&mut self, step: u64) -> Result<Self::Batch>;
    /// The position to save.
    fn position(&self) -> DataPosition;
    /// Moves to a saved position.
    fn seek(&mut self, pos: DataPosition);
}

impl<D: Dataset> BatchSource for Batcher<'_, D> {
    type Batch = gan_data::Batch;
    fn next_batch(&mut self, _step: u64) -> Result<gan_data::Batch> {
        Ok(Batcher::next_batch(self)?)
    }
    fn position(&self) -> DataPosition {
        let (epoch, index) = Batcher::position(self);
        DataPosition {
            epoch: epoch as u64,
            batch_index: index as u64,
        }
    }
    fn seek(&mut self, pos: DataPosition) {
        Batcher::seek(self, pos.epoch as usize, pos.batch_index as usize);
    }
}

/// A saved network: its variables (`<file>.safetensors`) and its optimizer's state
/// (`optimizers.safetensors`, keys `<opt_key>.<name>`).
pub struct Part<'a> {
    /// The file stem (`generator`, `critic`, `generator_ab` …).
    pub file: &'static str,
    /// The optimizer's key prefix (`generator`, `g_ab` …).
    pub opt_key: &'static str,
    /// The variables.
    pub vars: &'a VarMap,
    /// The optimizer.
    pub opt: &'a dyn StatefulOptimizer,
}

/// A network to restore; see [`Part`].
pub struct PartMut<'a> {
    /// The file stem.
    pub file: &'static str,
    /// The optimizer's key prefix.
    pub opt_key: &'static str,
    /// The variables.
    pub vars: &'a mut VarMap,
    /// The optimizer.
    pub opt: &'a mut dyn StatefulOptimizer,
}

impl Debug for Part<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part").field("file", &self.file).finish()
    }
}

impl Debug for PartMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartMut").field("file", &self.file).finish()
    }
}

/// Writes [`Trainer::parts`] and [`Trainer::parts_mut`] from one list of
/// `"file", "opt_key" => vars field, optimizer field;` (fields as paths from `self`), and with a
/// closing `base_lrs: field` (an array of the parts' base learning rates), [`Trainer::base_lrs`].
macro_rules! trainer_parts {
    ($($file:literal, $key:literal => $($vars:ident).+, $($opt:ident).+;)+ $(base_lrs: $lrs:ident)?) => {
        $(
            fn base_lrs(&self) -> Vec<f64> {
                self.$lrs.to_vec()
            }
        )?
        fn parts(&self) -> Vec<$crate::engine::Part<'_>> {
            vec![$($crate::engine::Part {
                file: $file,
                opt_key: $key,
                vars: &self.$($vars).+,
                opt: &self.$($opt).+,
            }),+]
        }
        fn parts_mut(&mut self) -> Vec<$crate::engine::PartMut<'_>> {
            vec![$($crate::engine::PartMut {
                file: $file,
                opt_key: $key,
                vars: &mut self.$($vars).+,
                opt: &mut self.$($opt).+,
            }),+]
        }
    };
}
pub(crate) use trainer_parts;

/// Writes the [`Trainer`] methods that only read or write a field of the trainer:
/// `step`/`set_step` (a `u64` field), `device` (a [`Device`] field) and, when a noise field is
/// named, `noise_state`/`restore_noise` (a [`SeededRng`](gan_core::rng::SeededRng) field).
macro_rules! trainer_fields {
    (step: $step:ident, device: $device:ident $(, noise: $noise:ident)?) => {
        fn step(&self) -> u64 {
            self.$step
        }
        fn set_step(&mut self, step: u64) {
            self.$step = step;
        }
        fn device(&self) -> &::candle_core::Device {
            &self.$device
        }
        $(
            fn noise_state(&self) -> Option<::gan_core::rng::RngState> {
                Some(self.$noise.state())
            }
            fn restore_noise(&mut self, state: &::gan_core::rng::RngState) {
                self.$noise = ::gan_core::rng::SeededRng::from_state(state);
            }
        )?
    };
}
pub(crate) use trainer_fields;

/// What the trainers of the models on one `gan_data` dataset (every model but CycleGAN) draw
/// their steps from: batches of items (images or 2D points), with labels when the dataset has
/// them.
pub type Batches<'a> = dyn BatchSource<Batch = gan_data::Batch> + 'a;

/// A model's training state and step; see the [module docs](self).
pub trait Trainer {
    /// What one step consumes from its [`BatchSource`] (possibly several times).
    type Batch;
    /// What one step measured.
    type Metrics: StepRecord;

    /// Steps done.
    fn step(&self) -> u64;
    /// Sets the step count (when a checkpoint is restored).
    fn set_step(&mut self, step: u64);
    /// One training step (for a WGAN: the critic iterations and one generator iteration),
    /// drawing its batches from `data`.
    fn train_step(
        &mut self,
        data: &mut dyn BatchSource<Batch = Self::Batch>,
    ) -> Result<Self::Metrics>;
    /// Items (images, points) the step trained on, for the throughput.
    fn items(&self, m: &Self::Metrics) -> usize;
    /// The networks saved in a checkpoint.
    fn parts(&self) -> Vec<Part<'_>>;
    /// The same networks, to restore.
    fn parts_mut(&mut self) -> Vec<PartMut<'_>>;
    /// The noise generator's state, if the trainer keeps one across steps.
    fn noise_state(&self) -> Option<RngState> {
        None
    }
    /// Restores the noise generator.
    fn restore_noise(&mut self, _state: &RngState) {}
    /// The file stem of the extra tensors, if the trainer has any (CycleGAN's image pools).
    fn extra_file(&self) -> Option<&'static str> {
        None
    }
    /// The extra tensors to save in [`Trainer::extra_file`].
    fn extra_tensors(&self) -> Result<HashMap<String, Tensor>> {
        Ok(HashMap::new())
    }
    /// Restores the extra tensors.
    fn restore_extra(&mut self, _tensors: HashMap<String, Tensor>) -> Result<()> {
        Ok(())
    }
    /// The base learning rate of each part's optimizer, in the order of [`Trainer::parts`]:
    /// what [`Trainer::set_lr_factor`] scales.
    fn base_lrs(&self) -> Vec<f64>;
    /// Sets every part's learning rate to its base rate times `factor` (the schedule's value).
    fn set_lr_factor(&mut self, factor: f64) {
        let base = self.base_lrs();
        for (part, lr) in self.parts_mut().into_iter().zip(base) {
            part.opt.set_lr(lr * factor);
        }
    }
    /// The generator to sample from for evaluation (`None` for models without a noise-to-image
    /// generator, such as CycleGAN).
    fn generator(&self) -> Option<&dyn GeneratorNet>;
    /// The translation model to evaluate, for models that translate between two domains
    /// (CycleGAN); `None`, the default, for the others.
    fn translator(&self) -> Option<&dyn Translator> {
        None
    }
    /// The device the networks live on.
    fn device(&self) -> &Device;
}

/// Position and random state saved with a checkpoint (`state.json`).
///
/// Reads the `state.json` of every model as written before the engine (DCGAN, WGAN and the toy
/// wrote all four fields, CycleGAN `step` and `epoch`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps done.
    pub step: u64,
    /// Epoch of the next batch.
    pub epoch: u64,
    /// Index within that epoch of the next batch.
    #[serde(default)]
    pub batch_index: u64,
    /// The noise generator's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_rng: Option<RngState>,
}

fn ck_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Checkpoint {
        path: path.into(),
        reason: e.to_string(),
    }
}

/// Loads a safetensors file into the variables of `vars`, which must all be present with the
/// same shapes.
pub fn load_vars(vars: &mut VarMap, path: &Path) -> Result<()> {
    if !path.is_file() {
        return Err(ck_err(path, "file is missing"));
    }
    vars.load(path).map_err(|e| ck_err(path, e))
}

/// Writes a trainer's parts, extra tensors and `state` into `dir` (see the
/// [module docs](self) for the layout).
pub fn save_checkpoint<T: Trainer + ?Sized>(
    trainer: &T,
    dir: &Path,
    state: &TrainState,
) -> Result<()> {
    let mut opt: HashMap<String, Tensor> = HashMap::new();
    for part in trainer.parts() {
        let p = dir.join(format!("{}.safetensors", part.file));
        part.vars.save(&p).map_err(|e| ck_err(&p, e))?;
        for (k, v) in part.opt.state_tensors() {
            opt.insert(format!("{}.{k}", part.opt_key), v);
        }
    }
    let p = dir.join("optimizers.safetensors");
    candle_core::safetensors::save(&opt, &p).map_err(|e| ck_err(&p, e))?;
    if let Some(file) = trainer.extra_file() {
        let p = dir.join(format!("{file}.safetensors"));
        candle_core::safetensors::save(&trainer.extra_tensors()?, &p).map_err(|e| ck_err(&p, e))?;
    }
    write_json(&dir.join("state.json"), state)
}

/// Restores what [`save_checkpoint`] wrote into `trainer`; returns the state.
pub fn load_checkpoint<T: Trainer + ?Sized>(trainer: &mut T, dir: &Path) -> Result<TrainState> {
    let dev = trainer.device().clone();
    let p = dir.join("optimizers.safetensors");
    let all = candle_core::safetensors::load(&p, &dev).map_err(|e| ck_err(&p, e))?;
    for part in trainer.parts_mut() {
        load_vars(part.vars, &dir.join(format!("{}.safetensors", part.file)))?;
        let prefix = format!("{}.", part.opt_key);
        let mine: HashMap<String, Tensor> = all
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone())))
            .collect();
        part.opt.load_state(&mine).map_err(|e| ck_err(&p, e))?;
    }
    if let Some(file) = trainer.extra_file() {
        let p = dir.join(format!("{file}.safetensors"));
        let tensors = candle_core::safetensors::load(&p, &dev).map_err(|e| ck_err(&p, e))?;
        trainer.restore_extra(tensors).map_err(|e| ck_err(&p, e))?;
    }
    let state: TrainState = read_json(&dir.join("state.json"))?;
    if let Some(rng) = &state.noise_rng {
        trainer.restore_noise(rng);
    }
    trainer.set_step(state.step);
    Ok(state)
}

/// How the learning rates change over a run: a factor on every optimizer's base rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The base rates throughout.
    Constant,
    /// PyTorch's `MultiStepLR`: the factor is multiplied by `gamma` after each milestone step.
    Milestones {
        /// Steps (sorted) after which the factor drops.
        steps: Vec<u64>,
        /// The factor applied at each milestone.
        gamma: f64,
    },
    /// The CycleGAN reference's rule: constant for `epochs` epochs, then linear to zero over
    /// `epochs_decay` more ([`crate::cyclegan::lr_factor`]).
    LinearDecay {
        /// Steps per epoch.
        steps_per_epoch: u64,
        /// Epochs at the base rate.
        epochs: u64,
        /// Epochs of decay.
        epochs_decay: u64,
    },
}

impl LrSchedule {
    /// The factor for the step after `done` steps.
    pub fn factor(&self, done: u64) -> f64 {
        match self {
            Self::Constant => 1.0,
            Self::Milestones { steps, gamma } => {
                gamma.powi(steps.iter().filter(|&&m| m <= done).count() as i32)
            }
            Self::LinearDecay {
                steps_per_epoch,
                epochs,
                epochs_decay,
            } => {
                crate::cyclegan::lr_factor(done / (*steps_per_epoch).max(1), *epochs, *epochs_decay)
            }
        }
    }

    /// Whether `step` is a milestone (a sample file and the latest checkpoint are written there).
    pub fn is_milestone(&self, step: u64) -> bool {
        matches!(self, Self::Milestones { steps, .. } if steps.contains(&step))
    }
}

/// What the loop does when a step's numbers are not finite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnDivergence {
    /// Stop at once; `checkpoints/latest` keeps the last finite state.
    #[default]
    Stop,
    /// Go on training (checkpoints are no longer written, so `latest` stays finite).
    Continue,
}

/// The loop's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct FitConfig {
    /// Length, logging, sampling and checkpointing.
    pub schedule: LoopConfig,
    /// The learning-rate schedule.
    pub lr: LrSchedule,
}

impl FitConfig {
    /// A constant learning rate.
    pub fn new(schedule: LoopConfig) -> Self {
        Self {
            schedule,
            lr: LrSchedule::Constant,
        }
    }
}

/// How [`fit`] ended.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOutcome<M = crate::train::StepMetrics> {
    /// Steps done in total.
    pub step: u64,
    /// Whether the observer asked to stop early.
    pub interrupted: bool,
    /// The metrics of the last step, if any step ran.
    pub last: Option<M>,
    /// Mean seconds per step over this call.
    pub secs_per_step: f64,
    /// The divergence warning, if a step's numbers were not finite.
    pub diverged: Option<Warning>,
}

/// One warning line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct WarningLine<'a> {
    /// The step it was raised at.
    pub step: u64,
    /// The warning.
    pub warning: &'a Warning,
}

/// Logs a warning: `tracing`, the observer and a `metrics.jsonl` line.
pub fn log_warning<M>(run: &RunDir, observer: &mut dyn Observer<M>, w: &Warning) {
    tracing::warn!("{}", w.message);
    observer.on_event(&format!("warning at step {}: {}", w.step, w.message));
    if let Err(e) = run.append_metrics(&WarningLine {
        step: w.step,
        warning: w,
    }) {
        tracing::warn!("cannot log the warning: {e}");
    }
}

/// Restores a run from its `latest` checkpoint into `trainer` and moves `data` to the saved
/// position; metrics logged after that step are dropped (they will be logged again) and the
/// observer is told.
pub fn resume<T: Trainer>(
    trainer: &mut T,
    data: &mut dyn BatchSource<Batch = T::Batch>,
    run: &RunDir,
    observer: &mut dyn Observer<T::Metrics>,
) -> Result<TrainState> {
    run.remove_stale_temporaries();
    let dir = run.checkpoint(LATEST)?;
    let state = load_checkpoint(trainer, &dir)?;
    data.seek(DataPosition {
        epoch: state.epoch,
        batch_index: state.batch_index,
    });
    run.truncate_metrics_after(state.step)?;
    observer.on_event(&format!(
        "resumed from {} at step {}",
        dir.display(),
        state.step
    ));
    Ok(state)
}

/// Writes a sample file (a grid, a scatter plot) of a trainer at a step to a path.
pub type SampleWriter<'a, T> = dyn FnMut(&T, &Path) -> Result<()> + 'a;

/// Trains until `cfg.schedule.steps`: batches from `data`, metrics into the run folder, sample
/// files from `write_samples`, checkpoints at the configured times, at learning-rate milestones
/// and at the end; the generator goes to [`Observer::on_generator`] (a translation model to
/// [`Observer::on_translator`]) after every step.
///
/// A step whose numbers are not finite raises a divergence [`Warning`] (log, observer,
/// `metrics.jsonl`) naming the last finite checkpoint; with [`OnDivergence::Stop`] the loop stops
/// there without writing a checkpoint, and with `Continue` it trains on but writes no more
/// checkpoints, so `checkpoints/latest` holds finite weights either way.
pub fn fit<T: Trainer>(
    trainer: &mut T,
    data: &mut dyn BatchSource<Batch = T::Batch>,
    run: &RunDir,
    cfg: &FitConfig,
    write_samples: &mut SampleWriter<'_, T>,
    observer: &mut dyn Observer<T::Metrics>,
) -> Result<FitOutcome<T::Metrics>> {
    let sched = cfg.schedule;
    let start = Instant::now();
    let first_step = trainer.step();
    let mut last: Option<T::Metrics> = None;
    let mut items = 0usize;
    let mut interrupted = false;
    let mut diverged: Option<Warning> = None;
    let mut health = HealthMonitor::default();
    let mut factor = None;
    let mut last_checkpoint = (first_step > 0).then_some(first_step);
    let checkpoint = |trainer: &T, data: &dyn BatchSource<Batch = T::Batch>, name: &str| {
        let pos = data.position();
        let state = TrainState {
            step: trainer.step(),
            epoch: pos.epoch,
            batch_index: pos.batch_index,
            noise_rng: trainer.noise_state(),
        };
        run.write_checkpoint(name, |dir| save_checkpoint(trainer, dir, &state))
    };
    // A grid before the first step (the untrained generator), as PyTorch's DCGAN example shows.
    if first_step == 0 && sched.sample_every > 0 {
        let p = run.sample_path(0);
        ensure_parent(&p)?;
        write_samples(trainer, &p)?;
        observer.on_event(&format!("samples: {}", p.display()));
    }
    while trainer.step() < sched.steps {
        if cfg.lr != LrSchedule::Constant {
            let f = cfg.lr.factor(trainer.step());
            if factor != Some(f) {
                tracing::debug!(step = trainer.step(), "learning-rate factor {f}");
                trainer.set_lr_factor(f);
                factor = Some(f);
            }
        }
        let m = trainer.train_step(data)?;
        let step = m.step();
        items += trainer.items(&m);
        let values = m.values();
        let finite = values.iter().all(|(_, v)| v.is_finite());
        let log_now = sched.log_every > 0 && (step % sched.log_every == 0 || step == 1);
        if log_now || (!finite && diverged.is_none()) {
            run.append_metrics(&m)?;
            let text: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            tracing::debug!(step, "{}", text.join(" "));
        }
        let rate = items as f64 / start.elapsed().as_secs_f64().max(1e-9);
        observer.on_step(&m, rate);
        if let Some(mut w) = health.observe(step, &values, m.signals()) {
            if !finite && diverged.is_none() {
                w.message = divergence_message(run, &m, last_checkpoint, sched.on_divergence);
                diverged = Some(w.clone());
            }
            log_warning(run, observer, &w);
        }
        last = Some(m);
        if diverged.is_some() && sched.on_divergence == OnDivergence::Stop {
            break;
        }
        if let Some(g) = trainer.generator() {
            observer.on_generator(step, g)?;
        }
        if let Some(t) = trainer.translator() {
            observer.on_translator(step, t)?;
        }
        let milestone = cfg.lr.is_milestone(step);
        if (sched.sample_every > 0 && step % sched.sample_every == 0) || milestone {
            let p = run.sample_path(step);
            if !p.exists() {
                ensure_parent(&p)?;
                write_samples(trainer, &p)?;
                observer.on_event(&format!("samples: {}", p.display()));
            }
        }
        if diverged.is_none() {
            if sched.checkpoint_every > 0 && step % sched.checkpoint_every == 0 {
                let p = checkpoint(trainer, data, &format!("step-{step:06}"))?;
                checkpoint(trainer, data, LATEST)?;
                last_checkpoint = Some(step);
                observer.on_event(&format!("checkpoint: {}", p.display()));
            } else if milestone {
                checkpoint(trainer, data, LATEST)?;
                last_checkpoint = Some(step);
            }
        }
        if observer.should_stop() {
            interrupted = true;
            break;
        }
    }
    if trainer.step() > first_step && diverged.is_none() {
        let p = run.sample_path(trainer.step());
        if !p.exists() {
            ensure_parent(&p)?;
            write_samples(trainer, &p)?;
            observer.on_event(&format!("samples: {}", p.display()));
        }
        let p = checkpoint(trainer, data, LATEST)?;
        observer.on_event(&format!("checkpoint: {}", p.display()));
    }
    let done = (trainer.step() - first_step).max(1);
    Ok(FitOutcome {
        step: trainer.step(),
        interrupted,
        last,
        secs_per_step: start.elapsed().as_secs_f64() / done as f64,
        diverged,
    })
}

/// Creates the folder of a sample file (a run folder copied without its empty `samples/`).
fn ensure_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e)),
        None => Ok(()),
    }
}

fn divergence_message<M: StepRecord>(
    run: &RunDir,
    m: &M,
    last_checkpoint: Option<u64>,
    on: OnDivergence,
) -> String {
    let values = m
        .values()
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let what = match on {
        OnDivergence::Stop => "training stopped",
        OnDivergence::Continue => "training goes on (no more checkpoints are written)",
    };
    let resume = match last_checkpoint {
        Some(s) => format!(
            "the last finite checkpoint is {} (step {s}); resume it with a lower learning \
             rate (--resume {} --lr …) or start again with a lower --lr",
            run.checkpoints_dir().join(LATEST).display(),
            run.root().display()
        ),
        None => "no checkpoint was written before it; start again with a lower learning rate \
                 (--lr)"
            .into(),
    };
    format!(
        "divergence: non-finite numbers at step {} ({values}); {what}; {resume}",
        m.step()
    )
}
