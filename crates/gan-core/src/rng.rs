//! A seeded, serialisable random source for noise batches and initial weights.
//!
//! candle's CPU device cannot be seeded (`Device::Cpu.set_seed` returns an error) and its
//! `randn`/`rand` draw from a thread-local generator seeded by the OS, so two runs never see the
//! same noise. [`SeededRng`] wraps a ChaCha8 stream cipher generator: the sequence is fixed by a
//! `u64` seed, identical on every platform, and its whole state is three numbers (seed, stream,
//! position in the key stream), which [`RngState`] captures so that a resumed run continues the
//! exact sequence an uninterrupted one would have drawn.
//!
//! Tensors are built on the host with [`Tensor::from_vec`] and moved to the requested device, so
//! the values do not depend on the device either.
//!
//! Normal samples use the ziggurat method of `rand_distr` (exact N(0, 1) draws, no cached second
//! value, so the state really is just the key-stream position); uniform samples use `rand`'s
//! `Uniform` over `[lo, hi)`.
//!
//! ```
//! use candle_core::Device;
//! use gan_core::rng::SeededRng;
//! let mut rng = SeededRng::new(42);
//! let saved = rng.state();
//! let z = rng.randn((4, 100), 0.0, 1.0, &Device::Cpu)?;
//! let mut resumed = SeededRng::from_state(&saved);
//! let z2 = resumed.randn((4, 100), 0.0, 1.0, &Device::Cpu)?;
//! assert_eq!(z.to_vec2::<f32>()?, z2.to_vec2::<f32>()?);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{DType, Device, Result, Shape, Tensor};
use rand::distributions::{Distribution, Uniform};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// Defines the public tensor methods that sample a distribution of two `f64` parameters
/// `($a, $b)`: an f32 tensor, or, with a `$dtype` parameter, a tensor of that float dtype. The
/// tensor is filled on the host by `$f32` (f32 parameters and values) or by `$f64` (f64,
/// converted afterwards); see [`SeededRng::tensor`].
macro_rules! sampling_methods {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($a:ident, $b:ident $(, $dtype:ident)?) => $f32:ident, $f64:ident;
    )*) => {$(
        $(#[$doc])*
        pub fn $name(
            &mut self,
            shape: impl Into<Shape>,
            $a: f64,
            $b: f64,
            $($dtype: DType,)?
            dev: &Device,
        ) -> Result<Tensor> {
            self.tensor(
                shape.into(),
                sampling_methods!(@dtype $($dtype)?),
                dev,
                |r, n| r.$f32(n, $a as f32, $b as f32),
                |r, n| r.$f64(n, $a, $b),
            )
        }
    )*};
    (@dtype) => { DType::F32 };
    (@dtype $dtype:ident) => { $dtype };
}

/// A deterministic random generator (ChaCha8) whose state can be saved and restored exactly.
#[derive(Clone, Debug)]
pub struct SeededRng {
    seed: u64,
    inner: ChaCha8Rng,
}

/// The complete state of a [`SeededRng`]: restoring it with [`SeededRng::from_state`] continues
/// the identical sequence.
///
/// The key-stream position is a `u128`, which JSON cannot hold as a number, so it is stored as
/// two `u64` halves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RngState {
    /// The seed given to [`SeededRng::new`].
    pub seed: u64,
    /// The ChaCha stream number (0 unless changed).
    pub stream: u64,
    /// High 64 bits of the position in the key stream, in 32-bit words.
    pub word_pos_hi: u64,
    /// Low 64 bits of the position in the key stream, in 32-bit words.
    pub word_pos_lo: u64,
}

impl RngState {
    /// The position in the key stream, in 32-bit words since the start of the stream.
    pub fn word_pos(&self) -> u128 {
        (u128::from(self.word_pos_hi) << 64) | u128::from(self.word_pos_lo)
    }
}

impl SeededRng {
    /// A generator at the start of the sequence fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            inner: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The seed this generator was created from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The current state; see [`RngState`].
    pub fn state(&self) -> RngState {
        let pos = self.inner.get_word_pos();
        RngState {
            seed: self.seed,
            stream: self.inner.get_stream(),
            word_pos_hi: (pos >> 64) as u64,
            word_pos_lo: pos as u64,
        }
    }

    /// A generator in exactly the given state: it produces the values the saved generator would
    /// have produced next.
    pub fn from_state(state: &RngState) -> Self {
        let mut inner = ChaCha8Rng::seed_from_u64(state.seed);
        inner.set_stream(state.stream);
        inner.set_word_pos(state.word_pos());
        Self {
            seed: state.seed,
            inner,
        }
    }

    /// An independent generator for another purpose (e.g. one for noise, one for weights): same
    /// seed, stream `stream`, from the start. Streams never overlap.
    pub fn with_stream(seed: u64, stream: u64) -> Self {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(stream);
        Self { seed, inner }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// `n` samples of N(`mean`, `std`²).
    pub fn normal_vec(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let z: f32 = StandardNormal.sample(&mut self.inner);
                mean + std * z
            })
            .collect()
    }

    /// `n` samples of N(`mean`, `std`²) drawn in double precision.
    pub fn normal_vec_f64(&mut self, n: usize, mean: f64, std: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut self.inner);
                mean + std * z
            })
            .collect()
    }

    /// `n` samples uniform in `[lo, hi)`; all equal to `lo` when `hi <= lo`.
    pub fn uniform_vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        if hi <= lo {
            return vec![lo; n];
        }
        let dist = Uniform::new(lo, hi);
        (0..n).map(|_| dist.sample(&mut self.inner)).collect()
    }

    /// `n` samples uniform in `[lo, hi)` drawn in double precision; all equal to `lo` when
    /// `hi <= lo`.
    pub fn uniform_vec_f64(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        if hi <= lo {
            return vec![lo; n];
        }
        let dist = Uniform::new(lo, hi);
        (0..n).map(|_| dist.sample(&mut self.inner)).collect()
    }

    sampling_methods! {
        /// An f32 tensor of N(`mean`, `std`²) samples on `dev`, filled in row-major order.
        fn randn(mean, std) => normal_vec, normal_vec_f64;
        /// Like [`SeededRng::randn`] with the given dtype: f32 gives the same values as `randn`;
        /// other float types are drawn in f64 and converted.
        fn randn_dtype(mean, std, dtype) => normal_vec, normal_vec_f64;
        /// An f32 tensor of samples uniform in `[lo, hi)` on `dev`, filled in row-major order.
        fn rand(lo, hi) => uniform_vec, uniform_vec_f64;
        /// Like [`SeededRng::rand`] with the given dtype: f32 gives the same values as `rand`;
        /// other float types are drawn in f64 and converted.
        fn rand_dtype(lo, hi, dtype) => uniform_vec, uniform_vec_f64;
    }

    /// A tensor of `shape` and `dtype` on `dev` filled by `draw_f32` (f32) or by `draw_f64`
    /// and converted (other dtypes); each is given the element count.
    fn tensor(
        &mut self,
        shape: Shape,
        dtype: DType,
        dev: &Device,
        draw_f32: impl FnOnce(&mut Self, usize) -> Vec<f32>,
        draw_f64: impl FnOnce(&mut Self, usize) -> Vec<f64>,
    ) -> Result<Tensor> {
        let n = shape.elem_count();
        if dtype == DType::F32 {
            return Tensor::from_vec(draw_f32(self, n), shape, dev);
        }
        Tensor::from_vec(draw_f64(self, n), shape, dev)?.to_dtype(dtype)
    }
}
