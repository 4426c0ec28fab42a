//! Tensor-level building blocks for GANs on candle: losses, optimizers whose state can be saved,
//! initialisation, a seeded random source, normalisation layers candle-nn lacks, and fast CPU
//! convolution kernels as candle custom ops.
//!
//! This crate performs no file or network IO: everything takes and returns tensors or plain
//! values, so that it can be tested in isolation and used from any front end.
#![deny(missing_docs)]

pub mod batchnorm;
pub mod conv;
pub mod diffaug;
pub mod ema;
pub mod eval_metrics;
pub mod freeze;
pub mod init;
pub mod loss;
pub mod metrics;
pub mod norm;
pub mod optim;
mod par;
pub mod penalty;
pub mod rng;
mod simd;
pub mod spectral;
