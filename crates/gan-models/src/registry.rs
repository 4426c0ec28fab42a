//! The model registry: every kind of run folder, read from its `config.json` by the `model`
//! field it records.
//!
//! [`RunConfig::read`] is the one place where a run's kind is read from JSON; everything else
//! (sampling, resuming, the report, the CLI's "which command resumes this" hints) matches on the
//! typed [`RunConfig`]. It reads every `config.json` this project has written: fields added
//! since (such as `streams`) have defaults that reproduce the old behaviour.

use std::path::Path;

use serde_json::Value;

use crate::cgan_run::CganRunConfig;
use crate::cyclegan_run::CycleGanRunConfig;
use crate::dcgan_run::DcganRunConfig;
use crate::error::{ModelError, Result};
use crate::run::RunDir;
use crate::toy::ToyConfig;
use crate::train::LoopConfig;
use crate::wgan::WganRunConfig;

/// The configuration of a run of any model.
#[derive(Clone, Debug, PartialEq)]
pub enum RunConfig {
    /// `"dcgan"` or `"sngan"`.
    Dcgan(DcganRunConfig),
    /// `"wgan"` (weight clipping) or `"wgan-gp"` (gradient penalty).
    Wgan(WganRunConfig),
    /// `"toy"`.
    Toy(ToyConfig),
    /// `"cyclegan"`.
    CycleGan(CycleGanRunConfig),
    /// `"cgan"`: a class-conditional DCGAN.
    Cgan(CganRunConfig),
}

/// Written as the model's own configuration (which records its `model`), so that a
/// `config.json` written from a [`RunConfig`] reads back as the same variant.
impl serde::Serialize for RunConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Dcgan(c) => c.serialize(s),
            Self::Wgan(c) => c.serialize(s),
            Self::Toy(c) => c.serialize(s),
            Self::CycleGan(c) => c.serialize(s),
            Self::Cgan(c) => c.serialize(s),
        }
    }
}

/// `From<Config> for RunConfig` and `TryFrom<RunConfig> for Config` for each variant, so that
/// code holding one model's configuration converts it without naming the variant (the error
/// gives back a configuration of another model).
macro_rules! variant_conversions {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl From<$ty> for RunConfig {
            fn from(c: $ty) -> Self {
                Self::$variant(c)
            }
        }

        impl TryFrom<RunConfig> for $ty {
            type Error = RunConfig;
            fn try_from(c: RunConfig) -> std::result::Result<Self, RunConfig> {
                match c {
                    RunConfig::$variant(c) => Ok(c),
                    other => Err(other),
                }
            }
        }
    )*};
}

variant_conversions!(
    Dcgan(DcganRunConfig),
    Wgan(WganRunConfig),
    Toy(ToyConfig),
    CycleGan(CycleGanRunConfig),
    Cgan(CganRunConfig),
);

/// The models [`RunConfig`] knows, by the name `config.json` records.
pub const MODELS: [&str; 7] = [
    "dcgan", "sngan", "wgan", "wgan-gp", "toy", "cyclegan", "cgan",
];

impl RunConfig {
    /// Reads `config.json` of `run`. Errors name the file: not JSON, no `model`, an unknown
    /// model, or fields that do not fit the model.
    pub fn read(run: &RunDir) -> Result<Self> {
        let path = run.root().join("config.json");
        let value: Value = run.config()?;
        Self::from_value(value, &path)
    }

    /// Reads `config.json` of `run` as the configuration of one model (`C`, such as
    /// [`ToyConfig`]), `what` naming that model in the error for a run of another model.
    pub fn read_as<C: TryFrom<RunConfig, Error = RunConfig>>(
        run: &RunDir,
        what: &str,
    ) -> Result<C> {
        C::try_from(Self::read(run)?).map_err(|other| {
            ModelError::Config(format!(
                "{}: a {} run, not a {what} run",
                run.root().display(),
                other.model()
            ))
        })
    }

    /// Parses a `config.json` already read into `value` (from `path`, for errors).
    pub fn from_value(value: Value, path: &Path) -> Result<Self> {
        let bad = |reason: String| ModelError::Json {
            path: path.into(),
            reason,
        };
        let model = value
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no \"model\" field: not a gan-cli run configuration".into()))?
            .to_string();
        let parsed = match model.as_str() {
            "dcgan" | "sngan" => serde_json::from_value(value).map(Self::Dcgan),
            "wgan" | "wgan-gp" => serde_json::from_value(value).map(Self::Wgan),
            "toy" => serde_json::from_value(value).map(Self::Toy),
            "cyclegan" => serde_json::from_value(value).map(Self::CycleGan),
            "cgan" => serde_json::from_value(value).map(Self::Cgan),
            other => {
                return Err(bad(format!(
                    "unknown model {other:?} (known: {})",
                    MODELS.join(", ")
                )))
            }
        };
        parsed.map_err(|e| bad(format!("a {model} run configuration: {e}")))
    }

    /// The model's name as `config.json` records it (`dcgan`, `wgan-gp` …), which is also the
    /// `gan-cli train` subcommand that trains and resumes it.
    pub fn model(&self) -> &str {
        match self {
            Self::Dcgan(c) => &c.model,
            Self::Wgan(c) => &c.model,
            Self::Toy(_) => "toy",
            Self::CycleGan(_) => "cyclegan",
            Self::Cgan(_) => "cgan",
        }
    }

    /// What the run trains on, in words: the dataset name or folder (`mnist-mini`, the
    /// CycleGAN data root, the toy distribution).
    pub fn data_name(&self) -> String {
        match self {
            Self::Dcgan(c) => c.data.source.clone(),
            Self::Wgan(c) => c.data.source.clone(),
            Self::Toy(c) => format!("the {} distribution", c.dist),
            Self::CycleGan(c) => c.data.dataroot.display().to_string(),
            Self::Cgan(c) => c.base.data.source.clone(),
        }
    }

    /// Length, logging, sampling and checkpointing.
    pub fn schedule(&self) -> LoopConfig {
        match self {
            Self::Dcgan(c) => c.run.schedule,
            Self::Wgan(c) => c.run.schedule,
            Self::Toy(c) => c.schedule,
            Self::CycleGan(c) => c.run.schedule,
            Self::Cgan(c) => c.base.run.schedule,
        }
    }

    /// The device the run trains on.
    pub fn device(&self) -> &str {
        match self {
            Self::Dcgan(c) => &c.run.device,
            Self::Wgan(c) => &c.run.device,
            Self::Toy(c) => &c.device,
            Self::CycleGan(c) => &c.run.device,
            Self::Cgan(c) => &c.base.run.device,
        }
    }

    /// The run in one line for the log: model, data, length, batch and device, and what sets
    /// the model apart (the critic steps and constraint, the classes, the epochs, the networks).
    pub fn describe(&self) -> String {
        match self {
            Self::Dcgan(c) => format!(
                "{} {}px on {} ({} images), {} steps of batch {} on {}{}",
                c.model.to_uppercase(),
                c.dcgan.image_size,
                c.data.source,
                c.data.items,
                c.run.schedule.steps,
                c.run.batch_size,
                c.run.device,
                if c.run.fast_conv {
                    ""
                } else {
                    " (candle's convolutions)"
                }
            ),
            Self::Wgan(c) => {
                let constraint = match c.lipschitz {
                    crate::wgan::Lipschitz::WeightClipping { clip } => format!("clip ±{clip}"),
                    crate::wgan::Lipschitz::GradientPenalty { lambda } => {
                        format!("penalty λ {lambda}")
                    }
                };
                format!(
                    "{} {}px on {} ({} images), {} generator steps of {} critic steps \
                     ({constraint}), batch {} on {}",
                    c.model,
                    c.dcgan.image_size,
                    c.data.source,
                    c.data.items,
                    c.run.schedule.steps,
                    c.critic.n_critic,
                    c.run.batch_size,
                    c.run.device
                )
            }
            Self::Toy(c) => format!(
                "toy GAN on {}: {} steps of batch {}, pack {}, {} loss, generator {}, \
                 discriminator {}, nz {}, seed {}",
                c.dist,
                c.schedule.steps,
                c.batch_size,
                c.pack,
                c.loss.name(),
                c.generator.describe(),
                c.discriminator.describe(),
                c.nz,
                c.seed
            ),
            Self::CycleGan(c) => format!(
                "CycleGAN {}px on {} ({} A, {} B images), {} steps ({} per epoch, {}+{} epochs) \
                 of batch {} on {}",
                c.data.crop_size,
                c.data.dataroot.display(),
                c.data.items_a,
                c.data.items_b,
                c.run.schedule.steps,
                c.steps_per_epoch,
                c.epochs,
                c.epochs_decay,
                c.run.batch_size,
                c.run.device
            ),
            Self::Cgan(c) => format!(
                "class-conditional DCGAN ({}) {}px on {} ({} images, {} classes), {} steps of \
                 batch {}",
                c.cond.name(),
                c.base.dcgan.image_size,
                c.base.data.source,
                c.base.data.items,
                c.classes.len(),
                c.base.run.schedule.steps,
                c.base.run.batch_size
            ),
        }
    }

    /// The unit of the items a step trains on, for throughputs: `img` or `pts`.
    pub fn item_unit(&self) -> &'static str {
        match self {
            Self::Toy(_) => "pts",
            _ => "img",
        }
    }

    /// The version of the random-stream table the run uses ([`crate::streams`]).
    pub fn streams(&self) -> u32 {
        match self {
            Self::Dcgan(c) => c.run.streams,
            Self::Wgan(c) => c.run.streams,
            Self::Toy(c) => c.streams,
            Self::CycleGan(c) => c.run.streams,
            Self::Cgan(c) => c.base.run.streams,
        }
    }
}
