//! Differentiable augmentation (Zhao et al. 2020, "Differentiable Augmentation for
//! Data-Efficient GAN Training"): the discriminator sees every image, real or fake, through the
//! same random transformations, built from tensor ops so that the generator's gradient passes
//! through them. It keeps the discriminator from memorising a small training set.
//!
//! The three transformations of the paper's `color,translation,cutout` policy, on images
//! `[b, c, h, w]` (in [-1, 1] for ours; the formulas do not assume a range), each with its own
//! random draw per image:
//!
//! - **color**: brightness x + (r₁ − ½); saturation m + 2r₂·(x − m), m the mean over channels;
//!   contrast m + (r₃ + ½)·(x − m), m the image's mean; r ~ U[0, 1).
//! - **translation**: a shift by whole pixels, up to ⌊h/8 + ½⌋ (⌊w/8 + ½⌋) each way, drawn
//!   uniformly; pixels shifted in are 0.
//! - **cutout**: a square of side ⌊h/2 + ½⌋ (⌊w/2 + ½⌋) whose centre is uniform over the image is
//!   set to 0 (clipped at the borders).
//!
//! Draws come from a [`SeededRng`], in the order color (r₁ of every image, then r₂, then r₃),
//! translation (x then y shifts), cutout (x then y centres), so a run is reproducible. With
//! `shared`, one draw serves every image of the call (used by tests: identical inputs then give
//! identical outputs).
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use gan_core::diffaug::DiffAugment;
//! use gan_core::rng::SeededRng;
//! let aug = DiffAugment::parse("color,translation,cutout")?;
//! let xs = Tensor::zeros((4, 1, 28, 28), DType::F32, &Device::Cpu)?;
//! let ys = aug.apply(&xs, &mut SeededRng::new(0), false)?;
//! assert_eq!(ys.dims(), xs.dims());
//! # Ok::<(), candle_core::Error>(())
//! ```

use std::fmt;

use candle_core::{bail, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::rng::SeededRng;

/// One transformation of a [`DiffAugment`] policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    /// Random brightness, saturation and contrast.
    Color,
    /// A random shift by up to 1/8 of the image.
    Translation,
    /// A random square of half the image's side set to 0.
    Cutout,
}

impl Augment {
    const ALL: [(&'static str, Augment); 3] = [
        ("color", Augment::Color),
        ("translation", Augment::Translation),
        ("cutout", Augment::Cutout),
    ];
}

impl fmt::Display for Augment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::ALL.iter().find(|(_, a)| a == self).map(|(n, _)| *n);
        f.write_str(name.unwrap_or("?"))
    }
}

/// A DiffAugment policy: the transformations applied, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffAugment {
    /// The transformations, applied in this order.
    pub ops: Vec<Augment>,
}

impl DiffAugment {
    /// Parses a comma-separated policy such as `color,translation,cutout`; errors name the
    /// unknown word.
    pub fn parse(policy: &str) -> Result<Self> {
        let mut ops = Vec::new();
        for word in policy.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match Augment::ALL.iter().find(|(n, _)| *n == word) {
                Some((_, a)) if !ops.contains(a) => ops.push(*a),
                Some(_) => bail!("DiffAugment policy {policy:?} names {word:?} twice"),
                None => bail!(
                    "unknown DiffAugment transformation {word:?} in {policy:?} (known: color, \
                     translation, cutout)"
                ),
            }
        }
        if ops.is_empty() {
            bail!("the DiffAugment policy {policy:?} names no transformation")
        }
        Ok(Self { ops })
    }

    /// Applies the policy to `xs` `[b, c, h, w]` (same shape back), drawing from `rng`: one draw
    /// per image, or one for all of them with `shared`.
    pub fn apply(&self, xs: &Tensor, rng: &mut SeededRng, shared: bool) -> Result<Tensor> {
        let (b, _, h, w) = xs.dims4()?;
        let mut draw = Draws { rng, b, shared };
        let mut xs = xs.clone();
        for op in &self.ops {
            xs = match op {
                Augment::Color => color(&xs, &mut draw)?,
                Augment::Translation => translation(&xs, &mut draw, h, w)?,
                Augment::Cutout => cutout(&xs, &mut draw, h, w)?,
            };
        }
        Ok(xs)
    }
}

impl fmt::Display for DiffAugment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.ops.iter().map(Augment::to_string).collect();
        f.write_str(&names.join(","))
    }
}

/// Random values for a batch: `b` of them, or one repeated with `shared`.
struct Draws<'a> {
    rng: &'a mut SeededRng,
    b: usize,
    shared: bool,
}

impl Draws<'_> {
    fn count(&self) -> usize {
        if self.shared {
            1
        } else {
            self.b
        }
    }

    fn widen<T: Clone>(&self, v: Vec<T>) -> Vec<T> {
        if self.shared {
            vec![v[0].clone(); self.b]
        } else {
            v
        }
    }

    /// U[0, 1) values as a `[b, 1, 1, 1]` tensor like `like`.
    fn uniform(&mut self, like: &Tensor) -> Result<Tensor> {
        let v = self.rng.uniform_vec(self.count(), 0.0, 1.0);
        let v = self.widen(v);
        Tensor::from_vec(v, (self.b, 1, 1, 1), like.device())?.to_dtype(like.dtype())
    }

    /// Integers uniform in `lo..=hi`.
    fn ints(&mut self, lo: i64, hi: i64) -> Vec<i64> {
        let span = (hi - lo + 1) as u64;
        let v = (0..self.count())
            .map(|_| lo + (self.rng.next_u64() % span) as i64)
            .collect();
        self.widen(v)
    }
}

fn color(xs: &Tensor, d: &mut Draws) -> Result<Tensor> {
    let xs = xs.broadcast_add(&(d.uniform(xs)? - 0.5)?)?;
    let mean = xs.mean_keepdim(1)?;
    let xs = xs
        .broadcast_sub(&mean)?
        .broadcast_mul(&(d.uniform(&xs)? * 2.0)?)?
        .broadcast_add(&mean)?;
    let b = xs.dim(0)?;
    let mean = xs
        .reshape((b, ()))?
        .mean_keepdim(1)?
        .reshape((b, 1, 1, 1))?;
    xs.broadcast_sub(&mean)?
        .broadcast_mul(&(d.uniform(&xs)? + 0.5)?)?
        .broadcast_add(&mean)
}

/// Shifts a `[c, h, w]` image by `dy`, `dx` pixels along h and w (`out[y][x] = in[y+dy][x+dx]`,
/// 0 outside) with at most `pad` either way.
fn shift(img: &Tensor, dy: i64, dx: i64, pad: usize) -> Result<Tensor> {
    let (_, h, w) = img.dims3()?;
    img.pad_with_zeros(1, pad, pad)?
        .pad_with_zeros(2, pad, pad)?
        .narrow(1, (pad as i64 + dy) as usize, h)?
        .narrow(2, (pad as i64 + dx) as usize, w)
}

fn translation(xs: &Tensor, d: &mut Draws, h: usize, w: usize) -> Result<Tensor> {
    let (sh, sw) = ((h as f64 / 8.0 + 0.5) as i64, (w as f64 / 8.0 + 0.5) as i64);
    let tx = d.ints(-sw, sw);
    let ty = d.ints(-sh, sh);
    let pad = sh.max(sw) as usize;
    let imgs = (0..d.b)
        .map(|i| shift(&xs.get(i)?, ty[i], tx[i], pad))
        .collect::<Result<Vec<_>>>()?;
    Tensor::stack(&imgs, 0)
}

fn cutout(xs: &Tensor, d: &mut Draws, h: usize, w: usize) -> Result<Tensor> {
    let (ch, cw) = ((h as f64 / 2.0 + 0.5) as i64, (w as f64 / 2.0 + 0.5) as i64);
    // The reference draws the centre in 0..w + (1 − size mod 2) - 1, inclusive.
    let cx = d.ints(0, w as i64 - (cw % 2));
    let cy = d.ints(0, h as i64 - (ch % 2));
    let mut mask = vec![1f32; d.b * h * w];
    for i in 0..d.b {
        let ys = (cy[i] - ch / 2).max(0)..(cy[i] + ch - ch / 2).min(h as i64);
        let xs_ = (cx[i] - cw / 2).max(0)..(cx[i] + cw - cw / 2).min(w as i64);
        for y in ys {
            for x in xs_.clone() {
                mask[(i * h + y as usize) * w + x as usize] = 0.0;
            }
        }
    }
    let mask = Tensor::from_vec(mask, (d.b, 1, h, w), xs.device())?.to_dtype(xs.dtype())?;
    xs.broadcast_mul(&mask)
}
