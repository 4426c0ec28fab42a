//! A seeded, shuffling batch iterator that yields candle tensors.
//!
//! The order of epoch `e` is a permutation drawn from a generator seeded with `(seed, e)` only,
//! so the batches depend on nothing but the seed and the position: resuming at
//! `(epoch, batch)` gives the same batches as an uninterrupted run.

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// How to batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Items per batch.
    pub batch_size: usize,
    /// Shuffle each epoch (otherwise the dataset order).
    pub shuffle: bool,
    /// Drop the last, incomplete batch of each epoch.
    pub drop_last: bool,
    /// Seed of the shuffling.
    pub seed: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            batch_size: 64,
            shuffle: true,
            drop_last: true,
            seed: 0,
        }
    }
}

/// One batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Items, shape `[batch, item_shape...]`, f32.
    pub items: Tensor,
    /// Labels, shape `[batch]`, u32, when the dataset is labelled.
    pub labels: Option<Tensor>,
    /// The epoch this batch belongs to.
    pub epoch: usize,
    /// Its index within the epoch.
    pub index: usize,
}

/// Iterates over a dataset in batches, epoch after epoch, without end.
#[derive(Debug)]
pub struct Batcher<'a, D: Dataset> {
    ds: &'a D,
    cfg: BatchConfig,
    device: Device,
    epoch: usize,
    index: usize,
    order: Vec<usize>,
}

impl<'a, D: Dataset> Batcher<'a, D> {
    /// A batcher at the start of epoch 0.
    pub fn new(ds: &'a D, cfg: BatchConfig, device: &Device) -> Result<Self> {
        if cfg.batch_size == 0 {
            return Err(DataError::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
        if ds.is_empty() || (cfg.drop_last && ds.len() < cfg.batch_size) {
            return Err(DataError::InvalidArgument(format!(
                "dataset of {} items cannot fill one batch of {}",
                ds.len(),
                cfg.batch_size
            )));
        }
        let mut b = Self {
            ds,
            cfg,
            device: device.clone(),
            epoch: 0,
            index: 0,
            order: Vec::new(),
        };
        b.order = b.epoch_order(0);
        Ok(b)
    }

    /// Number of batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        if self.cfg.drop_last {
            self.ds.len() / self.cfg.batch_size
        } else {
            self.ds.len().div_ceil(self.cfg.batch_size)
        }
    }

    /// The position of the next batch: `(epoch, index within the epoch)`.
    pub fn position(&self) -> (usize, usize) {
        (self.epoch, self.index)
    }

    /// Moves to `(epoch, index)`, e.g. when resuming a run.
    pub fn seek(&mut self, epoch: usize, index: usize) {
        if epoch != self.epoch || self.order.is_empty() {
            self.order = self.epoch_order(epoch);
        }
        self.epoch = epoch;
        self.index = index;
        self.roll_over();
    }

    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.ds.len()).collect();
        if self.cfg.shuffle {
            let seed = self.cfg.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        }
        order
    }

    fn roll_over(&mut self) {
        if self.index >= self.batches_per_epoch() {
            self.epoch += 1;
            self.index = 0;
            self.order = self.epoch_order(self.epoch);
        }
    }

    /// The next batch; after the last batch of an epoch comes the first of the next.
    pub fn next_batch(&mut self) -> Result<Batch> {
        let start = self.index * self.cfg.batch_size;
        let end = (start + self.cfg.batch_size).min(self.ds.len());
        let idx = &self.order[start..end];
        let shape = self.ds.item_shape();
        let item_len: usize = shape.iter().product();
        let mut data = Vec::with_capacity(idx.len() * item_len);
        for &i in idx {
            data.extend_from_slice(self.ds.item(i));
        }
        let mut dims = vec![idx.len()];
        dims.extend_from_slice(shape);
        let items = Tensor::from_vec(data, dims, &self.device)?;
        let labels = match self.ds.label(idx[0]) {
            Some(_) => {
                let l: Vec<u32> = idx.iter().map(|&i| self.ds.label(i).unwrap_or(0)).collect();
                Some(Tensor::from_vec(l, idx.len(), &self.device)?)
            }
            None => None,
        };
        let batch = Batch {
            items,
            labels,
            epoch: self.epoch,
            index: self.index,
        };
        self.index += 1;
        self.roll_over();
        Ok(batch)
    }

    /// The batches of the current epoch from the current position to its end.
    pub fn epoch_iter(&mut self) -> EpochIter<'_, 'a, D> {
        let epoch = self.epoch;
        EpochIter {
            batcher: self,
            epoch,
        }
    }
}

/// The rest of one epoch's batches; see [`Batcher::epoch_iter`].
#[derive(Debug)]
pub struct EpochIter<'b, 'a, D: Dataset> {
    batcher: &'b mut Batcher<'a, D>,
    epoch: usize,
}

impl<D: Dataset> Iterator for EpochIter<'_, '_, D> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        (self.batcher.epoch == self.epoch).then(|| self.batcher.next_batch())
    }
}
