//! `gan-cli train wgan` (weight clipping) and `gan-cli train wgan-gp` (gradient penalty): flags
//! into a [`WganRunConfig`], then `gan_models::dcgan_run::train_image_gan`.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::ValueEnum;
use gan_models::dcgan_run::train_image_gan;
use gan_models::wgan::{steps_for_epochs, CriticNorm, CriticSchedule, Lipschitz, WganRunConfig};

use crate::train_cmd::{apply_on_resume, check_resume_flags, open_or_create};

/// The critic's normalisation.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CriticNormArg {
    /// BatchNorm, as DCGAN's discriminator (wgan's default; refused by wgan-gp).
    Batch,
    /// Layer norm over each sample's (C, H, W) with a per-channel scale and shift (wgan-gp's
    /// default).
    Layer,
    /// No normalisation.
    None,
}

impl From<CriticNormArg> for CriticNorm {
    fn from(n: CriticNormArg) -> Self {
        match n {
            CriticNormArg::Batch => CriticNorm::BatchNorm,
            CriticNormArg::Layer => CriticNorm::LayerNorm,
            CriticNormArg::None => CriticNorm::None,
        }
    }
}

/// Flags of `gan-cli train wgan` (weight clipping) and `gan-cli train wgan-gp`.
#[derive(Debug, clap::Args)]
pub struct TrainWganArgs {
    #[command(flatten)]
    pub net: crate::args::ImageGanFlags,
    #[command(flatten)]
    pub lr: crate::args::LrFlags,
    /// Critic steps per generator step.
    #[arg(long, default_value_t = 5)]
    pub n_critic: usize,
    /// wgan only: clamp every critic parameter to ±CLIP after each critic step (default 0.01).
    #[arg(long, value_name = "C")]
    pub clip: Option<f32>,
    /// wgan-gp only: weight λ of the gradient penalty (default 10).
    #[arg(long, value_name = "LAMBDA")]
    pub lambda: Option<f32>,
    /// wgan only: skip the paper's 100 critic steps for the first 25 generator steps and every
    /// 500th.
    #[arg(long)]
    pub no_burst: bool,
    /// The critic's normalisation (default: batch for wgan, layer for wgan-gp).
    #[arg(long, value_enum)]
    pub critic_norm: Option<CriticNormArg>,
    #[command(flatten)]
    pub eval: crate::eval_cmd::TrainEvalArgs,
    #[command(flatten)]
    pub run: crate::args::RunFlags,
}

/// `--lr`, `--lr-g` and `--lr-d` over the run's rates (the critic's kept apart only where it
/// differs).
fn apply_lr(f: &crate::args::LrFlags, cfg: &mut WganRunConfig) {
    let [mut g, mut c] = cfg.optimizers().map(|o| o.lr());
    f.apply(&mut g, &mut c);
    cfg.optimizer.set_lr(g);
    cfg.critic_lr = (c != g).then_some(c);
}

/// Runs `gan-cli train wgan` (`gp` false) or `gan-cli train wgan-gp` (`gp` true).
pub fn train(a: TrainWganArgs, gp: bool) -> anyhow::Result<ExitCode> {
    let model = if gp { "wgan-gp" } else { "wgan" };
    if gp {
        // Before any backward pass and before the Ctrl-C thread: candle reads the switch once
        // per thread (see gan_core::penalty).
        gan_core::penalty::ensure_second_order()
            .context("cannot turn on second-order gradients for the gradient penalty")?;
    }
    if gp && a.clip.is_some() {
        bail!("--clip is for wgan (weight clipping); wgan-gp uses --lambda");
    }
    if !gp && a.lambda.is_some() {
        bail!("--lambda is for wgan-gp; wgan (weight clipping) uses --clip");
    }
    let session = open_or_create(
        a.run.resume.as_deref(),
        model,
        &[model],
        |dir, run, cfg: &mut WganRunConfig| {
            check_resume_flags(dir, &[])?;
            apply_on_resume(&a.run, &mut cfg.run.schedule, &mut cfg.run.device);
            apply_lr(&a.lr, cfg);
            if let Some(steps) = a.net.steps {
                cfg.run.schedule.steps = steps;
            }
            if let Some(epochs) = a.net.epochs {
                cfg.epochs = Some(epochs);
                cfg.run.schedule.steps = steps_for_epochs(
                    epochs,
                    cfg.data.items,
                    cfg.run.batch_size,
                    cfg.critic.n_critic,
                );
            }
            crate::dcgan_cmd::stored_data(run, &cfg.data, &cfg.dcgan)
        },
        || {
            let (source, data, channels) = a.net.data_config()?;
            let mut cfg = if gp {
                WganRunConfig::wgan_gp(data, channels)
            } else {
                WganRunConfig::wgan(data, channels)
            };
            if let Some(norm) = a.critic_norm {
                cfg.critic_norm = norm.into();
            }
            cfg.lipschitz = if gp {
                Lipschitz::GradientPenalty {
                    lambda: a.lambda.map_or(10.0, as_typed),
                }
            } else {
                Lipschitz::WeightClipping {
                    clip: a.clip.map_or(0.01, as_typed),
                }
            };
            cfg.critic = if gp || a.no_burst {
                CriticSchedule::constant(a.n_critic)
            } else {
                CriticSchedule::wgan(a.n_critic)
            };
            apply_lr(&a.lr, &mut cfg);
            let data =
                crate::dcgan_cmd::image_flags_and_data!(a, cfg, &source, validate: cfg.validate());
            let (items, batch, n) = (cfg.data.items, cfg.run.batch_size, cfg.critic.n_critic);
            (cfg.run.schedule.steps, cfg.epochs) =
                a.net.length(|e| steps_for_epochs(e, items, batch, n))?;
            Ok((a.run.out_dir(model), cfg, data))
        },
    )?;
    session.train(
        (Some(&a.eval), &a.net.datasets_dir),
        train_image_gan::<WganRunConfig>,
    )
}

/// The f64 whose shortest decimal form is that of `v` (`0.01f32` gives `0.01`, not
/// `0.009999999776`), so that config.json records the value as it was typed. `--clip` and
/// `--lambda` are parsed as f32 only to keep the command enum small.
fn as_typed(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}
