//! 2D toy distributions, where a GAN's behaviour can be seen and measured exactly.
//!
//! - `ring8`: a mixture of 8 isotropic Gaussians with equal weights, means
//!   `(cos(2πk/8), sin(2πk/8))` for k = 0..8 (a circle of radius 1) and σ = 0.01 (variance 10⁻⁴),
//!   as in PacGAN's experiments (Lin et al., 2018, §5.1).
//! - `grid25`: a mixture of 25 isotropic Gaussians with equal weights, means on the grid
//!   {-4, -2, 0, 2, 4}² and σ = 0.05 (variance 0.0025), as in PacGAN's experiments.
//! - `ring`: z ~ N(0, I₂) pushed through g(z) = z/10 + z/‖z‖, which maps the bivariate Gaussian
//!   onto a ring of radius about 1 (Doersch's "Tutorial on Variational Autoencoders", figure 2,
//!   the classic illustration of what a generator does).

use std::f32::consts::PI;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::dataset::TensorDataset;
use crate::error::{DataError, Result};

/// A 2D toy distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ToyDistribution {
    /// 8 Gaussians on the unit circle, σ = 0.01.
    Ring8,
    /// 25 Gaussians on {-4, -2, 0, 2, 4}², σ = 0.05.
    Grid25,
    /// A standard bivariate Gaussian mapped onto a ring by z/10 + z/‖z‖.
    Ring,
}

impl ToyDistribution {
    /// All distributions, in the order of their names.
    pub const ALL: [ToyDistribution; 3] = [Self::Ring8, Self::Grid25, Self::Ring];

    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ring8 => "ring8",
            Self::Grid25 => "grid25",
            Self::Ring => "ring",
        }
    }

    /// The centres of the mixture's components (`None` for `ring`, which has no modes).
    pub fn modes(self) -> Option<Vec<[f32; 2]>> {
        match self {
            Self::Ring8 => Some(
                (0..8)
                    .map(|k| {
                        let a = 2.0 * PI * k as f32 / 8.0;
                        [a.cos(), a.sin()]
                    })
                    .collect(),
            ),
            Self::Grid25 => Some(
                (0..25)
                    .map(|k| [-4.0 + 2.0 * (k / 5) as f32, -4.0 + 2.0 * (k % 5) as f32])
                    .collect(),
            ),
            Self::Ring => None,
        }
    }

    /// The standard deviation of each component (`None` for `ring`).
    pub fn mode_std(self) -> Option<f32> {
        match self {
            Self::Ring8 => Some(0.01),
            Self::Grid25 => Some(0.05),
            Self::Ring => None,
        }
    }

    /// Draws one point.
    pub fn sample_one<R: Rng>(self, rng: &mut R) -> [f32; 2] {
        let z0: f32 = rng.sample(StandardNormal);
        let z1: f32 = rng.sample(StandardNormal);
        match (self.modes(), self.mode_std()) {
            (Some(modes), Some(std)) => {
                let m = modes[rng.gen_range(0..modes.len())];
                [m[0] + std * z0, m[1] + std * z1]
            }
            _ => ring_map([z0, z1]),
        }
    }

    /// Draws `n` points from `rng`.
    pub fn sample_with<R: Rng>(self, n: usize, rng: &mut R) -> Vec<[f32; 2]> {
        (0..n).map(|_| self.sample_one(rng)).collect()
    }

    /// Draws `n` points from a generator seeded with `seed`: the same seed gives the same points.
    pub fn sample(self, n: usize, seed: u64) -> Vec<[f32; 2]> {
        self.sample_with(n, &mut ChaCha8Rng::seed_from_u64(seed))
    }

    /// `n` points as a dataset of `[2]` items.
    pub fn dataset(self, n: usize, seed: u64) -> Result<TensorDataset> {
        let pts = self.sample(n, seed);
        TensorDataset::new(vec![2], pts.into_iter().flatten().collect(), None)
    }
}

/// The map g(z) = z/10 + z/‖z‖ of the `ring` distribution.
pub fn ring_map(z: [f32; 2]) -> [f32; 2] {
    let norm = (z[0] * z[0] + z[1] * z[1]).sqrt().max(1e-12);
    [z[0] / 10.0 + z[0] / norm, z[1] / 10.0 + z[1] / norm]
}

impl FromStr for ToyDistribution {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self> {
        crate::names::find_by_name(&Self::ALL, Self::name, "toy distribution", s)
            .map_err(DataError::InvalidArgument)
    }
}

impl std::fmt::Display for ToyDistribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
