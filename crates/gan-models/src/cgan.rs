//! Class-conditional DCGANs: a generator of p(x | y) and a discriminator that sees the class.
//!
//! Three ways to condition ([`CondMode`]), all on the DCGAN networks of [`crate::dcgan`] (same
//! sizes, widths and weight names `main.<i>.*`):
//!
//! - **projection** (Miyato & Koyama, "cGANs with Projection Discriminator", ICLR 2018): the
//!   discriminator's logit is DCGAN's plus `⟨yᵀE, φ(x)⟩`, the inner product of a learned class
//!   embedding `E` (`embed.weight`, `[classes, d]`) with the features φ(x) that DCGAN's last
//!   layer maps linearly to its logit (the last feature map, flattened: `d` is
//!   [`DcganConfig::d_feature_len`]) ([`projection`]); the generator is conditioned through
//!   class-conditional BatchNorm ([`ConditionalBatchNorm2d`]) and the label appended to z
//!   (see [`CganGenerator`] for why both).
//! - **acgan** (Odena et al., "Conditional Image Synthesis with Auxiliary Classifier GANs",
//!   ICML 2017): an auxiliary classifier head (`aux.weight`, `aux.bias`: a linear layer on the
//!   same φ(x), as the paper's classifier shares all but the last layer with the discriminator)
//!   whose cross-entropy is added to both losses, weighted by
//!   [`CganLoss::aux_weight`] (the discriminator's on the real images; on the generated ones
//!   too, as in the paper's `L_C`, with `CganRunConfig::aux_on_fakes`); the generator as for
//!   projection.
//! - **concat** (Mirza & Osindero, "Conditional Generative Adversarial Nets", 2014): the
//!   one-hot label concatenated to z, and as `classes` constant feature maps to the
//!   discriminator's input; the networks are plain DCGANs with `nz + classes` and
//!   `channels + classes` inputs.
//!
//! Classes enter every network as a matrix `y` `[batch, classes]`: one-hot rows
//! ([`one_hot`]), or blends of them, which interpolate between classes.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use gan_core::batchnorm::{Activation, BatchNorm2d};
use gan_core::conv::{ConvLayer, ConvTranspose2d};
use serde::{Deserialize, Serialize};

use crate::dcgan::{generator_layers, DcganConfig, DcganDiscriminator, DcganGenerator};
use crate::error::{ModelError, Result};
use crate::train::GeneratorNet;

/// How the networks see the class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CondMode {
    /// Projection discriminator, class-conditional BatchNorm in the generator.
    #[default]
    Projection,
    /// Auxiliary classifier on the discriminator, class-conditional BatchNorm in the generator.
    Acgan,
    /// One-hot label concatenated to z and to the discriminator's input.
    Concat,
}

impl CondMode {
    /// The name used in flags and `config.json`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Projection => "projection",
            Self::Acgan => "acgan",
            Self::Concat => "concat",
        }
    }
}

/// The shape of a class-conditional DCGAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CganConfig {
    /// The DCGAN networks it is built on (`nz` and `channels` without the class inputs).
    pub dcgan: DcganConfig,
    /// Number of classes.
    pub classes: usize,
    /// How the class is given to the networks.
    pub cond: CondMode,
}

impl CganConfig {
    /// Checks the DCGAN shape and that there are at least two classes.
    pub fn validate(&self) -> Result<()> {
        self.dcgan.validate()?;
        if self.classes < 2 {
            return Err(ModelError::Config(format!(
                "a class-conditional GAN needs at least 2 classes, got {}",
                self.classes
            )));
        }
        Ok(())
    }
}

/// Labels `[batch]` (u32) as one-hot rows `[batch, classes]` (f32).
///
/// # Errors
/// A label of `classes` or more, named with its position.
pub fn one_hot(labels: &Tensor, classes: usize) -> Result<Tensor> {
    let l: Vec<u32> = labels.to_dtype(DType::U32)?.to_vec1()?;
    let mut y = vec![0f32; l.len() * classes];
    for (i, &c) in l.iter().enumerate() {
        if c as usize >= classes {
            return Err(ModelError::Config(format!(
                "label {c} (item {i} of the batch) is outside the {classes} classes 0..{}",
                classes - 1
            )));
        }
        y[i * classes + c as usize] = 1.0;
    }
    Ok(Tensor::from_vec(y, (l.len(), classes), labels.device())?)
}

/// The labels `0, 1, …, classes − 1, 0, 1, …` of `n` samples: every class equally often.
pub fn cycling_labels(n: usize, classes: usize, dev: &Device) -> Result<Tensor> {
    let l: Vec<u32> = (0..n).map(|i| (i % classes.max(1)) as u32).collect();
    Ok(Tensor::from_vec(l, n, dev)?)
}

/// The projection term of Miyato & Koyama (2018, eq. 3 without the unconditional ψ): for each
/// sample, `⟨yᵀE, φ(x)⟩`, φ(x) being `features` flattened.
///
/// The paper's φ is the vector its discriminator's last linear layer reads; in its ResNets that
/// is the sum-pooled last feature map, in DCGAN (whose last layer is a convolution as large as
/// the map) it is the whole map. Sum-pooling DCGAN-28's two-layer features threw away where the
/// strokes are, and the discriminator learned almost nothing of the class.
///
/// # Shapes
/// `features` `[batch, c, h, w]`, `y` `[batch, classes]`, `embed` `[classes, c·h·w]` →
/// `[batch]`.
pub fn projection(features: &Tensor, y: &Tensor, embed: &Tensor) -> Result<Tensor> {
    let phi = features.flatten_from(1)?; // [b, c·h·w]
    let e = y.matmul(embed)?; // [b, c·h·w]
    Ok((phi * e)?.sum(1)?)
}

/// Class-conditional BatchNorm (de Vries et al. 2017; Miyato & Koyama 2018, §4): BatchNorm
/// whose scale and shift depend on the class,
/// `out = ReLU(BN(x) · (1 + yᵀΓ) + yᵀB)`, with the per-class scale offsets Γ
/// (`class_scale.weight`) and shifts B (`class_shift.weight`), both `[classes, c]`, learned
/// beside BatchNorm's own γ and β (`weight`, `bias`, shared by all classes, as in DCGAN).
#[derive(Debug)]
pub struct ConditionalBatchNorm2d {
    bn: BatchNorm2d,
    scale: Tensor,
    shift: Tensor,
}

impl ConditionalBatchNorm2d {
    /// `c` channels, `classes` classes; weights from `vb` (Γ and B start at zero, DCGAN's
    /// initialisation draws them N(0, 0.02²)).
    pub fn new(c: usize, classes: usize, vb: VarBuilder) -> Result<Self> {
        let zeros = candle_nn::Init::Const(0.);
        Ok(Self {
            scale: vb
                .pp("class_scale")
                .get_with_hints((classes, c), "weight", zeros)?,
            shift: vb
                .pp("class_shift")
                .get_with_hints((classes, c), "weight", zeros)?,
            bn: BatchNorm2d::new(c, vb)?.with_activation(Activation::Identity),
        })
    }

    /// # Shapes
    /// `xs` `[batch, c, h, w]`, `y` `[batch, classes]` → `[batch, c, h, w]`. `train` selects
    /// batch statistics (and updates the running ones).
    pub fn forward(&self, xs: &Tensor, y: &Tensor, train: bool) -> Result<Tensor> {
        let normed = candle_nn::ModuleT::forward_t(&self.bn, xs, train)?;
        self.modulate(&normed, y)
    }

    /// A transposed convolution followed by this layer, the convolution and BatchNorm as one
    /// op on the fast CPU path ([`BatchNorm2d::forward_conv`]).
    ///
    /// # Shapes
    /// As [`forward`](Self::forward), `xs` being the convolution's input.
    pub fn forward_conv(
        &self,
        conv: &ConvTranspose2d,
        xs: &Tensor,
        y: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let normed = self
            .bn
            .forward_conv(ConvLayer::ConvTranspose2d(conv), xs, train)?;
        self.modulate(&normed, y)
    }

    fn modulate(&self, normed: &Tensor, y: &Tensor) -> Result<Tensor> {
        let gain = (y.matmul(&self.scale)? + 1.0)?;
        let shift = y.matmul(&self.shift)?;
        Ok(gan_core::batchnorm::scale_shift_relu(
            normed, &gain, &shift,
        )?)
    }
}

#[derive(Debug)]
enum GeneratorBody {
    Cbn {
        convs: Vec<ConvTranspose2d>,
        norms: Vec<Option<ConditionalBatchNorm2d>>,
    },
    Concat(DcganGenerator),
}

/// The class-conditional generator: DCGAN's with the one-hot label appended to z (every mode)
/// and, for projection and acgan, class-conditional BatchNorm in place of BatchNorm.
///
/// DCGAN-28 has only two BatchNorm layers, and their per-class scale and shift act in
/// normalised units that Adam moves by at most the learning rate per step: with class-conditional
/// BatchNorm alone the generator had learned almost nothing of the class after 3,000 steps on
/// mnist-mini (the evaluator's accuracy 18 %, chance 10 %), so the label also enters with z, as
/// in concat, where the first layer gives every class its own 7 × 7 (or 4 × 4) input maps.
#[derive(Debug)]
pub struct CganGenerator {
    body: GeneratorBody,
    cfg: CganConfig,
}

impl CganGenerator {
    /// Builds the generator; weights come from `vb` (`main.<i>.*`; the first layer's input has
    /// `nz + classes` channels).
    pub fn new(cfg: &CganConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let with_label = DcganConfig {
            nz: cfg.dcgan.nz + cfg.classes,
            ..cfg.dcgan
        };
        let body = match cfg.cond {
            CondMode::Concat => GeneratorBody::Concat(DcganGenerator::new(&with_label, vb)?),
            CondMode::Projection | CondMode::Acgan => {
                let (convs, norms) = generator_layers(&with_label, vb, |c, vb| {
                    ConditionalBatchNorm2d::new(c, cfg.classes, vb)
                })?;
                GeneratorBody::Cbn { convs, norms }
            }
        };
        Ok(Self { body, cfg: *cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &CganConfig {
        &self.cfg
    }

    /// # Shapes
    /// `z` `[batch, nz]`, `y` `[batch, classes]` → images `[batch, channels, size, size]` in
    /// (-1, 1). `train` selects batch statistics in BatchNorm.
    pub fn forward_t(&self, z: &Tensor, y: &Tensor, train: bool) -> Result<Tensor> {
        let zy = Tensor::cat(&[z, y], 1)?;
        match &self.body {
            GeneratorBody::Concat(g) => g.forward_t(&zy, train),
            GeneratorBody::Cbn { convs, norms } => {
                let (b, n) = zy.dims2()?;
                let mut xs = zy.reshape((b, n, 1, 1))?;
                for (conv, norm) in convs.iter().zip(norms) {
                    xs = match norm {
                        Some(n) => n.forward_conv(conv, &xs, y, train)?,
                        None => conv.forward(&xs)?.tanh()?,
                    };
                }
                Ok(xs)
            }
        }
    }
}

impl GeneratorNet for CganGenerator {
    /// Without labels, sample `i` is of class `i mod classes`, so that every class is drawn
    /// equally often (evaluation during training, `eval`).
    fn generate(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        let labels = cycling_labels(z.dim(0)?, self.cfg.classes, z.device())?;
        self.forward_t(z, &one_hot(&labels, self.cfg.classes)?, train)
    }
    fn latent_dim(&self) -> usize {
        self.cfg.dcgan.nz
    }
    fn classes(&self) -> usize {
        self.cfg.classes
    }
    fn generate_classes(&self, z: &Tensor, y: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_t(z, y, train)
    }
}

#[derive(Debug)]
enum Head {
    Projection(Tensor),
    Acgan(Linear),
    Concat,
}

/// The class-conditional discriminator: DCGAN's, with a projection term, an auxiliary
/// classifier, or the label as extra input channels.
#[derive(Debug)]
pub struct CganDiscriminator {
    body: DcganDiscriminator,
    head: Head,
    classes: usize,
}

/// What the discriminator says about a batch.
#[derive(Clone, Debug)]
pub struct CganOutput {
    /// Real/fake logits `[batch]`.
    pub logits: Tensor,
    /// The auxiliary classifier's class logits `[batch, classes]` (acgan only).
    pub class_logits: Option<Tensor>,
}

impl CganDiscriminator {
    /// Builds the discriminator; weights come from `vb` (`main.<i>.*`, and `embed.weight` or
    /// `aux.*`).
    pub fn new(cfg: &CganConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let feats = cfg.dcgan.d_feature_len();
        let (body_cfg, head) = match cfg.cond {
            CondMode::Projection => (
                cfg.dcgan,
                Head::Projection(vb.pp("embed").get_with_hints(
                    (cfg.classes, feats),
                    "weight",
                    candle_nn::Init::Const(0.),
                )?),
            ),
            CondMode::Acgan => (
                cfg.dcgan,
                Head::Acgan(candle_nn::linear(feats, cfg.classes, vb.pp("aux"))?),
            ),
            CondMode::Concat => (
                DcganConfig {
                    channels: cfg.dcgan.channels + cfg.classes,
                    ..cfg.dcgan
                },
                Head::Concat,
            ),
        };
        Ok(Self {
            body: DcganDiscriminator::new(&body_cfg, vb)?,
            head,
            classes: cfg.classes,
        })
    }

    /// # Shapes
    /// `xs` `[batch, channels, size, size]`, `y` `[batch, classes]` → logits `[batch]` and,
    /// for acgan, class logits `[batch, classes]`.
    pub fn forward_t(&self, xs: &Tensor, y: &Tensor, train: bool) -> Result<CganOutput> {
        let (logits, class_logits) = match &self.head {
            Head::Concat => {
                let (b, _, h, w) = xs.dims4()?;
                let maps =
                    y.reshape((b, self.classes, 1, 1))?
                        .broadcast_as((b, self.classes, h, w))?;
                let input = Tensor::cat(&[xs, &maps.contiguous()?], 1)?;
                (self.body.forward_t(&input, train)?, None)
            }
            Head::Projection(embed) => {
                let (feats, logits) = self.body.forward_features(xs, train)?;
                ((logits + projection(&feats, y, embed)?)?, None)
            }
            Head::Acgan(aux) => {
                let (feats, logits) = self.body.forward_features(xs, train)?;
                (logits, Some(aux.forward(&feats.flatten_from(1)?)?))
            }
        };
        Ok(CganOutput {
            logits,
            class_logits,
        })
    }
}

/// The loss settings of a class-conditional run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CganLoss {
    /// Weight of the auxiliary classifier's cross-entropy in both losses (acgan only).
    pub aux_weight: f64,
}

impl Default for CganLoss {
    /// Weight 2. With Odena et al.'s 1, the DCGAN-28 ACGAN on mnist-mini (3,000 steps, seed 0)
    /// gave samples the evaluator classified right 96.2 % of the time (class 4: 85 %); with 2,
    /// 98.7 % (lowest class 96 %).
    fn default() -> Self {
        Self { aux_weight: 2.0 }
    }
}

/// The classifier's mean cross-entropy on `labels` `[batch]` (u32) from `class_logits`
/// `[batch, classes]`.
pub fn class_loss(class_logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::loss::cross_entropy(
        class_logits,
        &labels.to_dtype(DType::U32)?,
    )?)
}
