//! DCGAN (Radford et al., 2016): a transposed-convolution generator and a convolutional
//! discriminator, BatchNorm in both (not on D's first layer), ReLU in G, LeakyReLU(0.2) in D,
//! tanh output, no convolution biases.
//!
//! Three sizes. `image_size` 28 and 64 are exactly the networks `dcgan28` and `dcgan64` of
//! `shared/bench/torch_dcgan.py` (64 is pytorch/examples' DCGAN); 32 is the 64 network with one
//! up/down-sampling stage fewer. Weight names follow PyTorch's `nn.Sequential` indices
//! (`main.0.weight`, `main.1.running_mean`, ...), as in pytorch/examples, so that they stay stable.
//!
//! With [`DcganConfig::spectral_norm`] (SNGAN, Miyato et al. 2018) the discriminator has the same
//! convolutions, each spectrally normalised ([`gan_core::spectral`]; u saved as
//! `main.<i>.weight_u`), and no BatchNorm.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use gan_core::batchnorm::{Activation, BatchNorm2d};
use gan_core::conv::{Conv2d, ConvLayer, ConvParams, ConvTranspose2d};
use gan_core::spectral::SnConv2d;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The shape of a DCGAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcganConfig {
    /// Length of the noise vector z.
    pub nz: usize,
    /// Base width of the generator.
    pub ngf: usize,
    /// Base width of the discriminator.
    pub ndf: usize,
    /// Image channels (1 for MNIST, 3 for RGB).
    pub channels: usize,
    /// Image side: 28, 32 or 64.
    pub image_size: usize,
    /// Spectral normalisation on every discriminator convolution, and no BatchNorm in the
    /// discriminator (SNGAN); false in runs written before it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spectral_norm: bool,
}

impl Default for DcganConfig {
    /// `dcgan28`: MNIST-sized, nz 100, ngf = ndf = 64.
    fn default() -> Self {
        Self {
            nz: 100,
            ngf: 64,
            ndf: 64,
            channels: 1,
            image_size: 28,
            spectral_norm: false,
        }
    }
}

/// One layer of either network: a (transposed) convolution with (kernel, stride, padding), its
/// input and output widths, and whether a normalisation follows it. In the generator the layers
/// without BatchNorm end in tanh; in the discriminator the last one outputs one logit per image.
pub(crate) struct Stage {
    pub(crate) c_in: usize,
    pub(crate) c_out: usize,
    pub(crate) k: usize,
    pub(crate) s: usize,
    pub(crate) p: usize,
    pub(crate) bn: bool,
}

/// `Stage { c_in, c_out, k, s, p, bn }`, positionally, for the stage tables below.
fn st(c_in: usize, c_out: usize, k: usize, s: usize, p: usize, bn: bool) -> Stage {
    Stage {
        c_in,
        c_out,
        k,
        s,
        p,
        bn,
    }
}

impl DcganConfig {
    /// The `dcgan28` network.
    pub fn dcgan28() -> Self {
        Self::default()
    }

    /// The `dcgan64` network (pytorch/examples), RGB.
    pub fn dcgan64() -> Self {
        Self {
            channels: 3,
            image_size: 64,
            ..Self::default()
        }
    }

    /// Checks that the size is one this module builds.
    pub fn validate(&self) -> Result<()> {
        if ![28, 32, 64].contains(&self.image_size) {
            return Err(ModelError::Config(format!(
                "DCGAN image size must be 28, 32 or 64, got {}",
                self.image_size
            )));
        }
        if self.nz == 0 || self.ngf == 0 || self.ndf == 0 || self.channels == 0 {
            return Err(ModelError::Config("DCGAN widths must be positive".into()));
        }
        Ok(())
    }

    /// Channels of the discriminator's features before its last layer
    /// ([`DcganDiscriminator::forward_features`]).
    pub fn d_features(&self) -> usize {
        self.d_stages().last().map_or(0, |s| s.c_in)
    }

    /// Length of the discriminator's flattened features before its last layer,
    /// `d_features · s · s` (`s` 7 for 28 pixels, 4 otherwise): the vector φ(x) that the last
    /// layer maps linearly to the logit.
    pub fn d_feature_len(&self) -> usize {
        self.d_stages().last().map_or(0, |s| s.c_in * s.k * s.k)
    }

    fn g_stages(&self) -> Vec<Stage> {
        let (nz, f, nc) = (self.nz, self.ngf, self.channels);
        match self.image_size {
            28 => vec![
                st(nz, f * 4, 7, 1, 0, true),
                st(f * 4, f * 2, 4, 2, 1, true),
                st(f * 2, nc, 4, 2, 1, false),
            ],
            32 => vec![
                st(nz, f * 4, 4, 1, 0, true),
                st(f * 4, f * 2, 4, 2, 1, true),
                st(f * 2, f, 4, 2, 1, true),
                st(f, nc, 4, 2, 1, false),
            ],
            _ => vec![
                st(nz, f * 8, 4, 1, 0, true),
                st(f * 8, f * 4, 4, 2, 1, true),
                st(f * 4, f * 2, 4, 2, 1, true),
                st(f * 2, f, 4, 2, 1, true),
                st(f, nc, 4, 2, 1, false),
            ],
        }
    }

    /// Discriminator stages: (c_in, c_out, kernel, stride, padding, batchnorm); the last one has
    /// no activation and outputs one logit per image.
    fn d_stages(&self) -> Vec<Stage> {
        let (f, nc) = (self.ndf, self.channels);
        match self.image_size {
            28 => vec![
                st(nc, f, 4, 2, 1, false),
                st(f, f * 2, 4, 2, 1, true),
                st(f * 2, 1, 7, 1, 0, false),
            ],
            32 => vec![
                st(nc, f, 4, 2, 1, false),
                st(f, f * 2, 4, 2, 1, true),
                st(f * 2, f * 4, 4, 2, 1, true),
                st(f * 4, 1, 4, 1, 0, false),
            ],
            _ => vec![
                st(nc, f, 4, 2, 1, false),
                st(f, f * 2, 4, 2, 1, true),
                st(f * 2, f * 4, 4, 2, 1, true),
                st(f * 4, f * 8, 4, 2, 1, true),
                st(f * 8, 1, 4, 1, 0, false),
            ],
        }
    }

    /// The discriminator's stages, each with the index of its convolution in PyTorch's `main`
    /// Sequential: after it come its normalisation, when `norm_slots` and the stage has one,
    /// and on every stage but the last its activation.
    pub(crate) fn d_layers(&self, norm_slots: bool) -> Vec<(usize, Stage)> {
        let stages = self.d_stages();
        let last = stages.len() - 1;
        let mut idx = 0;
        let mut layers = Vec::with_capacity(stages.len());
        for (i, s) in stages.into_iter().enumerate() {
            let at = idx;
            idx += 1 + usize::from(s.bn && norm_slots) + usize::from(i != last);
            layers.push((at, s));
        }
        layers
    }
}

/// BatchNorm with its activation folded in (one fused op on the CPU); same weight names and
/// running statistics as `candle_nn::batch_norm`.
fn bn(c: usize, act: Activation, vb: VarBuilder) -> Result<BatchNorm2d> {
    Ok(BatchNorm2d::new(c, vb)?.with_activation(act))
}

/// The generator's transposed convolutions and the normalisation after each hidden one, made
/// by `norm(channels, vb)` (weights `main.<i>.*`, PyTorch `nn.Sequential` indices): DCGAN's
/// BatchNorm + ReLU, or a class-conditional BatchNorm ([`crate::cgan`]).
#[allow(clippy::type_complexity)]
pub(crate) fn generator_layers<N>(
    cfg: &DcganConfig,
    vb: VarBuilder,
    norm: impl Fn(usize, VarBuilder) -> Result<N>,
) -> Result<(Vec<ConvTranspose2d>, Vec<Option<N>>)> {
    cfg.validate()?;
    let vb = vb.pp("main");
    let (mut convs, mut norms, mut idx) = (Vec::new(), Vec::new(), 0);
    for s in cfg.g_stages() {
        let p = ConvParams::new(s.s, s.p);
        convs.push(ConvTranspose2d::new(
            s.c_in,
            s.c_out,
            s.k,
            p,
            false,
            vb.pp(idx),
        )?);
        norms.push(if s.bn {
            Some(norm(s.c_out, vb.pp(idx + 1))?)
        } else {
            None
        });
        idx += if s.bn { 3 } else { 2 }; // conv, [bn], activation
    }
    Ok((convs, norms))
}

/// The DCGAN generator.
#[derive(Debug)]
pub struct DcganGenerator {
    convs: Vec<ConvTranspose2d>,
    norms: Vec<Option<BatchNorm2d>>,
    cfg: DcganConfig,
}

impl DcganGenerator {
    /// Builds the generator; weights come from `vb` (`main.<i>.*`).
    pub fn new(cfg: &DcganConfig, vb: VarBuilder) -> Result<Self> {
        let (convs, norms) = generator_layers(cfg, vb, |c, vb| bn(c, Activation::Relu, vb))?;
        Ok(Self {
            convs,
            norms,
            cfg: *cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DcganConfig {
        &self.cfg
    }

    /// # Shapes
    /// `z`: `[batch, nz]` or `[batch, nz, 1, 1]` → images `[batch, channels, size, size]` in
    /// (-1, 1). `train` selects batch statistics (and updates the running ones) in BatchNorm.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        let b = z.dim(0)?;
        let mut xs = z.reshape((b, self.cfg.nz, 1, 1))?;
        for (conv, norm) in self.convs.iter().zip(&self.norms) {
            xs = match norm {
                // BatchNorm + ReLU, one op with the convolution on the fast path
                Some(n) => n.forward_conv(ConvLayer::ConvTranspose2d(conv), &xs, train)?,
                None => conv.forward(&xs)?.tanh()?,
            };
        }
        Ok(xs)
    }
}

/// A discriminator convolution: plain, or spectrally normalised.
#[derive(Debug)]
enum DConv {
    Plain(Conv2d),
    Spectral(SnConv2d),
}

/// The DCGAN discriminator; it outputs logits (the sigmoid lives in the loss).
#[derive(Debug)]
pub struct DcganDiscriminator {
    convs: Vec<DConv>,
    norms: Vec<Option<BatchNorm2d>>,
    /// Use activations whose backward can be differentiated again (R1).
    second_order: bool,
}

impl DcganDiscriminator {
    /// Builds the discriminator; weights come from `vb` (`main.<i>.*`).
    pub fn new(cfg: &DcganConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let vb = vb.pp("main");
        let (mut convs, mut norms) = (Vec::new(), Vec::new());
        for (idx, s) in cfg.d_layers(true) {
            let p = ConvParams::new(s.s, s.p);
            let (c_in, c_out, k) = (s.c_in, s.c_out, s.k);
            let conv = Conv2d::new(c_in, c_out, k, p, false, vb.pp(idx))?;
            convs.push(if cfg.spectral_norm {
                DConv::Spectral(SnConv2d::new(conv, &vb.pp(idx))?)
            } else {
                DConv::Plain(conv)
            });
            let bn_here = s.bn && !cfg.spectral_norm;
            let act = Activation::LeakyRelu(0.2);
            norms.push(if bn_here {
                Some(bn(s.c_out, act, vb.pp(idx + 1))?)
            } else {
                None
            });
        }
        Ok(Self {
            convs,
            norms,
            second_order: false,
        })
    }

    /// Whether no layer is a BatchNorm (spectral norm instead), so that each sample's logit
    /// depends on that sample alone.
    pub fn has_no_batch_norm(&self) -> bool {
        self.norms.iter().all(Option::is_none)
    }

    /// Switches to candle's LeakyReLU, whose backward can be differentiated again (for R1);
    /// errors for a discriminator with BatchNorm, which mixes the samples of a batch and whose
    /// fused backward cannot be.
    pub fn enable_second_order(&mut self) -> Result<()> {
        if !self.has_no_batch_norm() {
            return Err(ModelError::Config(
                "R1 needs a discriminator without BatchNorm (BatchNorm mixes samples and its \
                 backward cannot be differentiated again): use gan-cli train sngan, or \
                 --spectral-norm"
                    .into(),
            ));
        }
        self.second_order = true;
        Ok(())
    }

    /// # Shapes
    /// `xs`: `[batch, channels, size, size]` → logits `[batch]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_features(xs, train)?.1)
    }

    /// The features before the last layer and the logits.
    ///
    /// # Shapes
    /// `xs`: `[batch, channels, size, size]` → (features `[batch, d_features, s, s]`, `s` 7 for
    /// 28 pixels and 4 otherwise; logits `[batch]`); `d_features` is
    /// [`DcganConfig::d_features`].
    pub fn forward_features(&self, xs: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let b = xs.dim(0)?;
        let last = self.convs.len() - 1;
        let mut xs = xs.clone();
        for (conv, norm) in self.convs[..last].iter().zip(&self.norms) {
            xs = match (conv, norm) {
                (DConv::Spectral(c), _) => {
                    c.forward_leaky_relu(&xs, 0.2, train, self.second_order)?
                }
                // BatchNorm + LeakyReLU(0.2), one op with the convolution on the fast path
                (DConv::Plain(c), Some(n)) => n.forward_conv(ConvLayer::Conv2d(c), &xs, train)?,
                (DConv::Plain(c), None) => c.forward_leaky_relu(&xs, 0.2)?,
            };
        }
        let logits = match &self.convs[last] {
            DConv::Plain(c) => c.forward(&xs)?,
            DConv::Spectral(c) => c.forward_t(&xs, train)?,
        };
        let logits = logits.reshape(b)?;
        Ok((xs, logits))
    }
}
