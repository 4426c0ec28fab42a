//! GAN models on candle and the training steps and loops that train them, usable as a library.
//!
//! - [`dcgan`]: the DCGAN generator and discriminator (28, 32 and 64 pixels);
//! - [`engine`]: the [`engine::Trainer`] trait, the one training loop, checkpoints, schedules;
//! - [`registry`]: [`registry::RunConfig`], every kind of run folder by its `model`;
//! - [`train`]: the cross-entropy adversarial step, the network traits and the observer;
//! - [`streams`]: the one table of random streams;
//! - [`cyclegan`], [`cyclegan_run`]: CycleGAN's networks, step and image pool; its runs,
//!   translation and the `thin2thick` evaluation;
//! - [`cgan`], [`cgan_run`]: class-conditional DCGANs (projection discriminator, ACGAN,
//!   concatenation) and their runs: sampling by class, walks within and between classes;
//! - [`class_eval`]: per-class accuracy and the intra-class FID of a conditional generator;
//! - [`dcgan_run`]: a whole DCGAN run from its configuration: train, resume, sample, walk;
//! - [`run`]: the run folder (config, metrics, samples, atomic checkpoints);
//! - [`grid`]: sample grids and single images as PNG;
//! - [`evaluator`], [`inception`]: evaluator networks (the project's classifiers and the
//!   Inception network of the reference FID) and the scores computed with them.
#![deny(missing_docs)]

pub mod cgan;
pub mod cgan_run;
pub mod class_eval;
pub mod cyclegan;
pub mod cyclegan_run;
pub mod dcgan;
pub mod dcgan_run;
pub mod engine;
pub mod error;
pub mod evaluator;
pub mod grid;
pub mod health;
pub mod inception;
pub mod monitor;
pub mod options;
pub mod plot;
pub mod registry;
pub mod report;
pub mod run;
pub mod streams;
pub mod toy;
pub mod train;
pub mod wgan;

pub use error::{ModelError, Result};
