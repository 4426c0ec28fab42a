//! CycleGAN (Zhu et al., 2017): unpaired image-to-image translation with two generators,
//! G: A→B and F: B→A, and two PatchGAN discriminators, following the reference implementation
//! (`junyanz/pytorch-CycleGAN-and-pix2pix`, `models/networks.py` and `cycle_gan_model.py`).
//!
//! # Networks
//!
//! [`ResnetGenerator`]: `c7s1-ngf, d(2·ngf), d(4·ngf), n × R(4·ngf), u(2·ngf), u(ngf), c7s1-C`:
//! 7×7 convolutions after a reflection padding of 3, two stride-2 3×3 convolutions down, residual
//! blocks of two reflection-padded 3×3 convolutions, two stride-2 3×3 transposed convolutions up
//! (output padding 1), instance norm (no affine parameters) and ReLU after every convolution but
//! the last, tanh at the end. The reference uses 9 blocks for 256-pixel images and 6 for 128 or
//! less; `ngf` 64.
//!
//! [`PatchDiscriminator`]: the 70×70 PatchGAN for `n_layers = 3`: `C64-C128-C256-C512` 4×4
//! convolutions (stride 2 but the last, stride 1), LeakyReLU(0.2), instance norm from the second
//! layer, then a 4×4 convolution to one channel: one raw score per overlapping patch.
//!
//! Every convolution has a bias (instance norm without affine parameters has no shift of its
//! own). Weight names are the reference's `nn.Sequential` indices (`model.1.weight`,
//! `model.10.conv_block.1.weight`, …), so they are stable and match its checkpoints.
//!
//! # One training step ([`CycleGanTrainer::step_on`])
//!
//! 1. `fake_b = G(a)`, `rec_a = F(fake_b)`, `fake_a = F(b)`, `rec_b = G(fake_a)`;
//! 2. both generators descend on the sum below (L1 means, λ_A = λ_B = 10, λ_idt = 0.5); the
//!    discriminators' parameters are not updated;
//!    ```text
//!    LSGAN(D_B(fake_b)) + LSGAN(D_A(fake_a)) + λ_A·|rec_a − a| + λ_B·|rec_b − b|
//!      + λ_idt·(λ_B·|G(b) − b| + λ_A·|F(a) − a|)
//!    ```
//! 3. each discriminator descends on ½·(mean (D(real) − 1)² + mean D(fake)²), where the fake is
//!    drawn from an [`ImagePool`] of 50 earlier fakes (detached).
//!
//! The reference names D_A the discriminator of domain B (it judges G_A's output); here
//! `d_b` judges B images (real and `G(a)`) and `d_a` judges A images.

use candle_core::{Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use gan_core::conv::{Conv2d, ConvParams, ConvTranspose2d};
use gan_core::loss::{lsgan_discriminator_loss, lsgan_generator_loss};
use gan_core::norm::{reflection_pad2d, InstanceNorm2d};
use gan_core::optim::Adam;
use gan_core::rng::SeededRng;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Instance norm's ε, PyTorch's default.
const IN_EPS: f64 = 1e-5;

/// The shapes of CycleGAN's four networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleGanConfig {
    /// Image channels of both domains (1 gray, 3 RGB).
    pub channels: usize,
    /// Base width of the generators (the reference's `ngf`, 64).
    pub ngf: usize,
    /// Residual blocks of the generators (9 for 256 pixels, 6 for 128 or less).
    pub n_blocks: usize,
    /// Base width of the discriminators (`ndf`, 64).
    pub ndf: usize,
    /// Stride-2 layers of the discriminators (3: the 70×70 PatchGAN).
    pub n_layers: usize,
}

impl Default for CycleGanConfig {
    /// The reference's networks for 256-pixel RGB images.
    fn default() -> Self {
        Self {
            channels: 3,
            ngf: 64,
            n_blocks: 9,
            ndf: 64,
            n_layers: 3,
        }
    }
}

impl CycleGanConfig {
    /// Checks that the networks can be built.
    pub fn validate(&self) -> Result<()> {
        if self.channels == 0 || self.ngf == 0 || self.ndf == 0 {
            return Err(ModelError::Config(
                "CycleGAN channels, ngf and ndf must be positive".into(),
            ));
        }
        if self.n_layers == 0 {
            return Err(ModelError::Config(
                "the discriminator needs at least one layer (--n-layers)".into(),
            ));
        }
        Ok(())
    }

    /// Checks that an image side works with these networks: a multiple of 4 (two stride-2
    /// stages down and up give the size back), above the reflection padding of 3 at full size,
    /// and leaving the discriminator at least one output patch.
    pub fn check_image_size(&self, size: usize) -> Result<()> {
        if size % 4 != 0 || size < 8 {
            return Err(ModelError::Config(format!(
                "CycleGAN image size must be a multiple of 4 and at least 8, got {size}"
            )));
        }
        let mut s = size;
        for _ in 0..self.n_layers {
            s /= 2; // k4 s2 p1
        }
        if s < 3 {
            return Err(ModelError::Config(format!(
                "a {size}-pixel image is too small for a {}-layer discriminator (use fewer \
                 --n-layers or a larger --crop-size)",
                self.n_layers
            )));
        }
        Ok(())
    }
}

/// Convolution, instance norm, then ReLU (or LeakyReLU) when `act` is given.
#[derive(Debug)]
struct ConvNormAct {
    conv: Conv2d,
    norm: Option<InstanceNorm2d>,
}

fn in_norm(c: usize) -> Result<InstanceNorm2d> {
    // No affine parameters: the variable builder is never asked for a tensor.
    let vb = VarBuilder::zeros(candle_core::DType::F32, &candle_core::Device::Cpu);
    Ok(InstanceNorm2d::new(c, false, IN_EPS, vb)?)
}

/// A residual block: `x + IN(conv(pad(ReLU(IN(conv(pad(x)))))))`.
#[derive(Debug)]
struct ResnetBlock {
    conv1: Conv2d,
    conv2: Conv2d,
    norm: InstanceNorm2d,
}

impl ResnetBlock {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("conv_block");
        let p = ConvParams::new(1, 0);
        Ok(Self {
            conv1: Conv2d::new(dim, dim, 3, p, true, vb.pp(1))?,
            conv2: Conv2d::new(dim, dim, 3, p, true, vb.pp(5))?,
            norm: in_norm(dim)?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = self.conv1.forward(&reflection_pad2d(xs, 1)?)?;
        let ys = self.norm.forward(&ys)?.relu()?;
        let ys = self.conv2.forward(&reflection_pad2d(&ys, 1)?)?;
        Ok((xs + self.norm.forward(&ys)?)?)
    }
}

/// The ResNet generator of CycleGAN (one direction); see the [module docs](self).
#[derive(Debug)]
pub struct ResnetGenerator {
    stem: Conv2d,
    down: Vec<Conv2d>,
    blocks: Vec<ResnetBlock>,
    up: Vec<ConvTranspose2d>,
    head: Conv2d,
    norms: Vec<InstanceNorm2d>,
}

impl ResnetGenerator {
    /// Builds the generator for `cfg`; weights come from `vb` (`model.<i>.*`).
    pub fn new(cfg: &CycleGanConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let (c, f) = (cfg.channels, cfg.ngf);
        let vb = vb.pp("model");
        let stem = Conv2d::new(c, f, 7, ConvParams::new(1, 0), true, vb.pp(1))?;
        let down = vec![
            Conv2d::new(f, 2 * f, 3, ConvParams::new(2, 1), true, vb.pp(4))?,
            Conv2d::new(2 * f, 4 * f, 3, ConvParams::new(2, 1), true, vb.pp(7))?,
        ];
        let blocks = (0..cfg.n_blocks)
            .map(|i| ResnetBlock::new(4 * f, vb.pp(10 + i)))
            .collect::<Result<Vec<_>>>()?;
        let n = cfg.n_blocks;
        let up_p = ConvParams {
            stride: 2,
            padding: 1,
            output_padding: 1,
        };
        let up = vec![
            ConvTranspose2d::new(4 * f, 2 * f, 3, up_p, true, vb.pp(10 + n))?,
            ConvTranspose2d::new(2 * f, f, 3, up_p, true, vb.pp(13 + n))?,
        ];
        let head = Conv2d::new(f, c, 7, ConvParams::new(1, 0), true, vb.pp(17 + n))?;
        let norms = [f, 2 * f, 4 * f]
            .into_iter()
            .map(in_norm)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            stem,
            down,
            blocks,
            up,
            head,
            norms,
        })
    }

    /// # Shapes
    /// `xs`: `[b, c, h, w]` in [-1, 1], h and w multiples of 4 → `[b, c, h, w]` in (-1, 1).
    /// Instance norm uses each image's own statistics, so training and evaluation agree.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let [n1, n2, n4] = [&self.norms[0], &self.norms[1], &self.norms[2]];
        let mut ys = self.stem.forward(&reflection_pad2d(xs, 3)?)?; // [b, f, h, w]
        ys = n1.forward(&ys)?.relu()?;
        ys = n2.forward(&self.down[0].forward(&ys)?)?.relu()?; // [b, 2f, h/2, w/2]
        ys = n4.forward(&self.down[1].forward(&ys)?)?.relu()?; // [b, 4f, h/4, w/4]
        for block in &self.blocks {
            ys = block.forward(&ys)?;
        }
        ys = n2.forward(&self.up[0].forward(&ys)?)?.relu()?; // [b, 2f, h/2, w/2]
        ys = n1.forward(&self.up[1].forward(&ys)?)?.relu()?; // [b, f, h, w]
        Ok(self.head.forward(&reflection_pad2d(&ys, 3)?)?.tanh()?)
    }
}

/// The PatchGAN discriminator; see the [module docs](self).
#[derive(Debug)]
pub struct PatchDiscriminator {
    layers: Vec<ConvNormAct>,
    head: Conv2d,
}

impl PatchDiscriminator {
    /// Builds the discriminator for `cfg`; weights come from `vb` (`model.<i>.*`).
    pub fn new(cfg: &CycleGanConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let vb = vb.pp("model");
        let (ndf, n) = (cfg.ndf, cfg.n_layers);
        let width = |i: usize| ndf * (1usize << i.min(3)); // ndf · min(2^i, 8)
        let mut layers = vec![ConvNormAct {
            conv: Conv2d::new(cfg.channels, ndf, 4, ConvParams::new(2, 1), true, vb.pp(0))?,
            norm: None,
        }];
        let mut idx = 2; // conv, LeakyReLU
        for i in 1..=n {
            let stride = if i < n { 2 } else { 1 };
            let conv = Conv2d::new(
                width(i - 1),
                width(i),
                4,
                ConvParams::new(stride, 1),
                true,
                vb.pp(idx),
            )?;
            layers.push(ConvNormAct {
                conv,
                norm: Some(in_norm(width(i))?),
            });
            idx += 3; // conv, norm, LeakyReLU
        }
        let head = Conv2d::new(width(n), 1, 4, ConvParams::new(1, 1), true, vb.pp(idx))?;
        Ok(Self { layers, head })
    }

    /// # Shapes
    /// `xs`: `[b, c, h, w]` → raw scores `[b, 1, h', w']`, one per patch (`h' = h/2ⁿ − 2`
    /// for h a multiple of 2ⁿ and n = `n_layers`: 30×30 for 256 pixels and 3 layers, 5×5 for 28
    /// pixels and 2).
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut ys = xs.clone();
        for l in &self.layers {
            ys = l.conv.forward(&ys)?;
            if let Some(n) = &l.norm {
                ys = n.forward(&ys)?;
            }
            ys = candle_nn::ops::leaky_relu(&ys, 0.2)?;
        }
        Ok(self.head.forward(&ys)?)
    }
}

/// The loss weights of the generators' objective.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CycleLossConfig {
    /// Weight of the A→B→A cycle loss (10).
    pub lambda_a: f64,
    /// Weight of the B→A→B cycle loss (10).
    pub lambda_b: f64,
    /// Identity loss weight relative to the cycle weights (0.5; 0 turns it off).
    pub lambda_identity: f64,
}

impl Default for CycleLossConfig {
    fn default() -> Self {
        Self {
            lambda_a: 10.0,
            lambda_b: 10.0,
            lambda_identity: 0.5,
        }
    }
}

/// A history of generated images (Shrivastava et al., 2017), so that a discriminator also sees
/// older fakes; the reference's `ImagePool`.
///
/// Until the pool is full, each image goes in and is returned. Then each image is, with
/// probability ½, swapped for a uniformly chosen stored one (the stored one is returned and the
/// new one takes its place), and otherwise returned as it is. Capacity 0 returns its input.
#[derive(Clone, Debug)]
pub struct ImagePool {
    capacity: usize,
    images: Vec<Tensor>,
}

impl ImagePool {
    /// An empty pool of `capacity` images.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            images: Vec::with_capacity(capacity),
        }
    }

    /// Images stored.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether the pool holds no image.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// # Shapes
    /// `images`: `[b, c, h, w]` (detached here) → `[b, c, h, w]`, each row either the input
    /// row or an older image; random choices come from `rng`.
    pub fn query(&mut self, images: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        let images = images.detach();
        if self.capacity == 0 {
            return Ok(images);
        }
        let b = images.dim(0)?;
        let mut out = Vec::with_capacity(b);
        for i in 0..b {
            let img = images.narrow(0, i, 1)?;
            if self.images.len() < self.capacity {
                self.images.push(img.clone());
                out.push(img);
            } else if unit_f64(rng) > 0.5 {
                let id = (rng.next_u64() % self.capacity as u64) as usize;
                out.push(std::mem::replace(&mut self.images[id], img));
            } else {
                out.push(img);
            }
        }
        Ok(Tensor::cat(&out, 0)?)
    }

    /// The stored images as one tensor `[len, c, h, w]`, or `None` if empty (for checkpoints).
    pub fn to_tensor(&self) -> Result<Option<Tensor>> {
        if self.images.is_empty() {
            return Ok(None);
        }
        Ok(Some(Tensor::cat(&self.images, 0)?))
    }

    /// Replaces the contents by the rows of `images` (at most the capacity).
    pub fn restore(&mut self, images: Option<&Tensor>) -> Result<()> {
        self.images.clear();
        if let Some(t) = images {
            let n = t.dim(0)?;
            if n > self.capacity {
                return Err(ModelError::Config(format!(
                    "an image pool of capacity {} cannot hold {n} images",
                    self.capacity
                )));
            }
            for i in 0..n {
                self.images.push(t.narrow(0, i, 1)?);
            }
        }
        Ok(())
    }
}

/// A uniform draw in [0, 1) from 53 random bits.
fn unit_f64(rng: &mut SeededRng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The reference's `linear` learning-rate rule: the factor for 0-based `epoch` is
/// `1 − max(0, epoch + 1 − epochs) / (epochs_decay + 1)`: 1 for the first `epochs` epochs, then
/// falling by `1/(epochs_decay + 1)` per epoch, towards 0 one epoch after the last.
pub fn lr_factor(epoch: u64, epochs: u64, epochs_decay: u64) -> f64 {
    let over = (epoch + 1).saturating_sub(epochs) as f64;
    (1.0 - over / (epochs_decay as f64 + 1.0)).max(0.0)
}

/// What one step measured (the reference's names in brackets; its `A` networks map A→B).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CycleStepMetrics {
    /// The step number (1 for the first).
    pub step: u64,
    /// The epoch of the step (0-based).
    pub epoch: u64,
    /// The learning rate used.
    pub lr: f64,
    /// LSGAN loss of D_A on real and pooled fake A images (D_B).
    pub loss_d_a: f32,
    /// LSGAN loss of D_B on real and pooled fake B images (D_A).
    pub loss_d_b: f32,
    /// G's adversarial loss against D_B (G_A).
    pub loss_g_ab: f32,
    /// F's adversarial loss against D_A (G_B).
    pub loss_g_ba: f32,
    /// λ_A·|F(G(a)) − a| (cycle_A).
    pub loss_cycle_a: f32,
    /// λ_B·|G(F(b)) − b| (cycle_B).
    pub loss_cycle_b: f32,
    /// λ_idt·λ_A·|F(a) − a| (idt_B).
    pub loss_idt_a: f32,
    /// λ_idt·λ_B·|G(b) − b| (idt_A).
    pub loss_idt_b: f32,
}

impl crate::engine::StepRecord for CycleStepMetrics {
    fn step(&self) -> u64 {
        self.step
    }
    fn values(&self) -> Vec<(&'static str, f32)> {
        vec![
            ("D_A", self.loss_d_a),
            ("D_B", self.loss_d_b),
            ("G_AB", self.loss_g_ab),
            ("G_BA", self.loss_g_ba),
            ("cycle_A", self.loss_cycle_a),
            ("cycle_B", self.loss_cycle_b),
            ("idt_A", self.loss_idt_a),
            ("idt_B", self.loss_idt_b),
        ]
    }
    fn signals(&self) -> crate::engine::Signals {
        crate::engine::Signals::Losses
    }
}

/// One network with its variables and optimizer.
pub struct Trained<N> {
    /// The network.
    pub net: N,
    /// Its variables.
    pub vars: VarMap,
    /// Its optimizer.
    pub opt: Adam,
}

impl<N: std::fmt::Debug> std::fmt::Debug for Trained<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trained").field("net", &self.net).finish()
    }
}

/// CycleGAN's four networks, their optimizers and image pools; see the [module docs](self).
#[derive(Debug)]
pub struct CycleGanTrainer {
    /// G: A→B.
    pub g_ab: Trained<ResnetGenerator>,
    /// F: B→A.
    pub g_ba: Trained<ResnetGenerator>,
    /// Judges A images (real A and F(b)).
    pub d_a: Trained<PatchDiscriminator>,
    /// Judges B images (real B and G(a)).
    pub d_b: Trained<PatchDiscriminator>,
    /// Earlier F(b), shown to `d_a`.
    pub pool_a: ImagePool,
    /// Earlier G(a), shown to `d_b`.
    pub pool_b: ImagePool,
    /// Loss weights.
    pub loss: CycleLossConfig,
    /// Steps done.
    pub step: u64,
    /// The base learning rates of the generators and of the discriminators, which a schedule's
    /// factor multiplies.
    pub base_lr: [f64; 2],
    /// The device of the networks.
    pub device: candle_core::Device,
    /// Images of each domain in the last step.
    pub last_items: usize,
}

fn l1(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok((a - b)?.abs()?.mean_all()?)
}

impl CycleGanTrainer {
    /// One step on a batch of A images and one of B images (`[b, c, h, w]` each, in [-1, 1]);
    /// the pools draw from `rng`. `epoch` and `lr` are only recorded.
    pub fn step_on(
        &mut self,
        real_a: &Tensor,
        real_b: &Tensor,
        rng: &mut SeededRng,
        epoch: u64,
    ) -> Result<CycleStepMetrics> {
        let lw = self.loss;
        self.last_items = real_a.dim(0)?;
        let (g, f) = (&self.g_ab.net, &self.g_ba.net);
        let fake_b = g.forward(real_a)?;
        let rec_a = f.forward(&fake_b)?;
        let fake_a = f.forward(real_b)?;
        let rec_b = g.forward(&fake_a)?;

        // Generators: the discriminators' parameters are constants here (their gradients
        // would never be applied).
        let (d_b_fake, d_a_fake) = {
            let _frozen = gan_core::freeze::freeze_params();
            (
                self.d_b.net.forward(&fake_b)?,
                self.d_a.net.forward(&fake_a)?,
            )
        };
        let loss_g_ab = lsgan_generator_loss(&d_b_fake)?;
        let loss_g_ba = lsgan_generator_loss(&d_a_fake)?;
        let loss_cycle_a = (l1(&rec_a, real_a)? * lw.lambda_a)?;
        let loss_cycle_b = (l1(&rec_b, real_b)? * lw.lambda_b)?;
        let mut loss_g = (((&loss_g_ab + &loss_g_ba)? + &loss_cycle_a)? + &loss_cycle_b)?;
        let (mut idt_a, mut idt_b) = (0f32, 0f32);
        if lw.lambda_identity > 0.0 {
            let loss_idt_b =
                (l1(&g.forward(real_b)?, real_b)? * (lw.lambda_b * lw.lambda_identity))?;
            let loss_idt_a =
                (l1(&f.forward(real_a)?, real_a)? * (lw.lambda_a * lw.lambda_identity))?;
            loss_g = ((loss_g + &loss_idt_a)? + &loss_idt_b)?;
            idt_a = loss_idt_a.to_scalar::<f32>()?;
            idt_b = loss_idt_b.to_scalar::<f32>()?;
        }
        let grads = loss_g.backward()?;
        self.g_ab.opt.step(&grads)?;
        self.g_ba.opt.step(&grads)?;
        drop(grads);

        // Discriminators, on pooled detached fakes.
        let pooled_b = self.pool_b.query(&fake_b, rng)?;
        let pooled_a = self.pool_a.query(&fake_a, rng)?;
        let loss_d_b = lsgan_discriminator_loss(
            &self.d_b.net.forward(real_b)?,
            &self.d_b.net.forward(&pooled_b)?,
        )?;
        self.d_b.opt.backward_step(&loss_d_b)?;
        let loss_d_a = lsgan_discriminator_loss(
            &self.d_a.net.forward(real_a)?,
            &self.d_a.net.forward(&pooled_a)?,
        )?;
        self.d_a.opt.backward_step(&loss_d_a)?;

        self.step += 1;
        Ok(CycleStepMetrics {
            step: self.step,
            epoch,
            lr: self.g_ab.opt.lr(),
            loss_d_a: loss_d_a.to_scalar()?,
            loss_d_b: loss_d_b.to_scalar()?,
            loss_g_ab: loss_g_ab.to_scalar()?,
            loss_g_ba: loss_g_ba.to_scalar()?,
            loss_cycle_a: loss_cycle_a.to_scalar()?,
            loss_cycle_b: loss_cycle_b.to_scalar()?,
            loss_idt_a: idt_a,
            loss_idt_b: idt_b,
        })
    }
}
