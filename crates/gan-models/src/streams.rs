//! The one table of random streams of every model.
//!
//! Every random number of a run comes from a [`SeededRng`] seeded with the run's seed and one
//! stream number from this table, one stream per use, so that each use is reproducible alone and
//! no two uses share numbers (the generator's initial weights never correlate with the batch
//! order, say).
//!
//! Run configurations record the table's version in `streams`. Version 1 is what runs written
//! before the table existed used: each model numbered its own streams, and the batch order was
//! shuffled by a generator seeded with the seed itself, which is ChaCha stream 0 of the same
//! seed, the generator's initialisation stream. Such runs keep version 1 (a `config.json` without
//! `streams` reads as 1), so they resume exactly as they were; new runs use [`CURRENT`].

use gan_core::rng::SeededRng;

/// The generator's initial weights (CycleGAN: G, A→B).
pub const INIT_G: u64 = 0;
/// The discriminator's or critic's initial weights (CycleGAN: D_A).
pub const INIT_D: u64 = 1;
/// The training noise z (and WGAN-GP's interpolation coefficients).
pub const NOISE: u64 = 2;
/// The fixed noise of the sample grids and plots.
pub const FIXED_NOISE: u64 = 3;
/// The toy's training points.
pub const TOY_DATA: u64 = 4;
/// The toy's real points in the plots.
pub const TOY_PLOT: u64 = 5;
/// The batch order (version 2 on).
pub const BATCH_ORDER: u64 = 6;
/// CycleGAN's second generator F: B→A (version 2 on).
pub const INIT_G_BA: u64 = 7;
/// CycleGAN's second discriminator D_B (version 2 on).
pub const INIT_D_B: u64 = 8;
/// CycleGAN: the A order of epoch e uses stream `CYCLE_ORDER + e`.
pub const CYCLE_ORDER: u64 = 1 << 32;
/// CycleGAN: step s (1-based) uses stream `CYCLE_STEP + s`.
pub const CYCLE_STEP: u64 = 1 << 48;

/// The version new runs record.
pub const CURRENT: u32 = 2;

/// The version of a `config.json` written before versions were recorded.
pub fn legacy() -> u32 {
    1
}

/// The seed of the batch order (`gan_data::BatchConfig::seed`) for a run's seed.
pub fn batch_seed(seed: u64, version: u32) -> u64 {
    if version < 2 {
        seed
    } else {
        SeededRng::with_stream(seed, BATCH_ORDER).next_u64()
    }
}

/// How the image and toy models draw batches: shuffled each epoch by the batch-order seed
/// ([`batch_seed`]), incomplete batches dropped.
pub fn batch_config(batch_size: usize, seed: u64, version: u32) -> gan_data::BatchConfig {
    gan_data::BatchConfig {
        batch_size,
        shuffle: true,
        drop_last: true,
        seed: batch_seed(seed, version),
    }
}

/// CycleGAN's initialisation streams of G (A→B), F (B→A), D_A and D_B.
pub fn cyclegan_init(version: u32) -> [u64; 4] {
    if version < 2 {
        [0, 1, 2, 3]
    } else {
        [INIT_G, INIT_G_BA, INIT_D, INIT_D_B]
    }
}
