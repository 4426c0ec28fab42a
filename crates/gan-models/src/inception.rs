//! The Inception-v3 network of the reference FID implementation (pytorch-fid's `FIDInceptionA`,
//! `FIDInceptionC`, `FIDInceptionE_1`, `FIDInceptionE_2` blocks on torchvision's Inception-v3),
//! up to the 2048-wide global average pool, and the loading of its weights.
//!
//! Weight names are those of the torchvision/pytorch-fid state dict (`Conv2d_1a_3x3.conv.weight`,
//! `Mixed_5b.branch1x1.bn.running_mean`, ...), so pytorch-fid's
//! `pt_inception-2015-12-05-6726825d.pth` loads as it is, and a safetensors copy of it too.
//! Unused tensors of the file (`fc.*`, `num_batches_tracked`) are ignored.
//!
//! [`InceptionConfig::width_divisor`] divides every channel count: 1 is the real network; the
//! tests build a tiny network (divisor 16) of the same structure and tensor names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::error::{ModelError, Result};
use crate::evaluator::{bilinear_resize, Embedding, FeatureNet};

/// BatchNorm's epsilon in the FID network.
const BN_EPS: f64 = 1e-3;

/// The input side the network is made for.
pub const INCEPTION_SIDE: usize = 299;

/// The shape of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InceptionConfig {
    /// Every channel count is divided by this (1, 2, 4, 8 or 16); 1 is the real network.
    pub width_divisor: usize,
}

impl Default for InceptionConfig {
    /// The real network.
    fn default() -> Self {
        Self { width_divisor: 1 }
    }
}

impl InceptionConfig {
    /// Width of the features (2048 for the real network).
    pub fn features(&self) -> usize {
        2048 / self.width_divisor
    }

    fn check(&self) -> Result<()> {
        if !matches!(self.width_divisor, 1 | 2 | 4 | 8 | 16) {
            return Err(ModelError::Config(format!(
                "inception width divisor {} is not 1, 2, 4, 8 or 16",
                self.width_divisor
            )));
        }
        Ok(())
    }

    fn ch(&self, c: usize) -> usize {
        c / self.width_divisor
    }
}

/// Convolution without bias → BatchNorm (running statistics, eps 0.001) → ReLU, the
/// `BasicConv2d` of torchvision (tensors `conv.weight`, `bn.weight`, `bn.bias`,
/// `bn.running_mean`, `bn.running_var`). The BatchNorm is folded into a scale and a shift.
#[derive(Debug)]
struct BasicConv {
    weight: Tensor,
    scale: Tensor,
    shift: Tensor,
    pad: (usize, usize),
    stride: usize,
}

impl BasicConv {
    fn new(
        cin: usize,
        cout: usize,
        k: (usize, usize),
        stride: usize,
        pad: (usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        let fan_in = (cin * k.0 * k.1) as f64;
        let weight = vb.get_with_hints(
            (cout, cin, k.0, k.1),
            "conv.weight",
            Init::Randn {
                mean: 0.0,
                stdev: (2.0 / fan_in).sqrt(),
            },
        )?;
        let bn = vb.pp("bn");
        let gamma = bn.get_with_hints(cout, "weight", Init::Const(1.0))?;
        let beta = bn.get_with_hints(cout, "bias", Init::Const(0.0))?;
        let mean = bn.get_with_hints(cout, "running_mean", Init::Const(0.0))?;
        let var = bn.get_with_hints(cout, "running_var", Init::Const(1.0))?;
        let scale = gamma.div(&(var + BN_EPS)?.sqrt()?)?;
        let shift = beta.sub(&mean.mul(&scale)?)?;
        Ok(Self {
            weight,
            scale: scale.reshape((1, cout, 1, 1))?,
            shift: shift.reshape((1, cout, 1, 1))?,
            pad,
            stride,
        })
    }

    fn square(cin: usize, cout: usize, k: usize, vb: VarBuilder) -> Result<Self> {
        Self::new(cin, cout, (k, k), 1, (k / 2, k / 2), vb)
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (ph, pw) = self.pad;
        let ys = if ph == pw {
            xs.conv2d(&self.weight, ph, self.stride, 1, 1)?
        } else {
            xs.pad_with_zeros(2, ph, ph)?
                .pad_with_zeros(3, pw, pw)?
                .conv2d(&self.weight, 0, self.stride, 1, 1)?
        };
        Ok(ys
            .broadcast_mul(&self.scale)?
            .broadcast_add(&self.shift)?
            .relu()?)
    }
}

/// 3×3 average pool, stride 1, padding 1, with `count_include_pad=False`: each output is the
/// mean of the inputs its window covers inside the image (4 at a corner, 6 on an edge).
///
/// # Shapes
/// `[b, c, h, w]` → `[b, c, h, w]`.
pub fn avg_pool3_exclude_pad(xs: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = xs.dims4()?;
    let pad = |t: &Tensor| -> candle_core::Result<Tensor> {
        t.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)
    };
    let sums = pad(xs)?.avg_pool2d_with_stride(3, 1)?;
    let ones = Tensor::ones((1, 1, h, w), xs.dtype(), xs.device())?;
    let counts = pad(&ones)?.avg_pool2d_with_stride(3, 1)?;
    Ok(sums.broadcast_div(&counts)?)
}

/// 3×3 max pool, stride 1, padding 1 (the border repeated: the same maximum as padding with -∞).
fn max_pool3_same(xs: &Tensor) -> Result<Tensor> {
    Ok(xs
        .pad_with_same(2, 1, 1)?
        .pad_with_same(3, 1, 1)?
        .max_pool2d_with_stride(3, 1)?)
}

fn max_pool3_s2(xs: &Tensor) -> Result<Tensor> {
    Ok(xs.max_pool2d_with_stride(3, 2)?)
}

fn cat(parts: &[Tensor]) -> Result<Tensor> {
    Ok(Tensor::cat(parts, 1)?)
}

/// `FIDInceptionA`: 1×1, 5×5, double 3×3 and average-pool branches.
#[derive(Debug)]
struct BlockA {
    b1: BasicConv,
    b5_1: BasicConv,
    b5_2: BasicConv,
    b3_1: BasicConv,
    b3_2: BasicConv,
    b3_3: BasicConv,
    pool: BasicConv,
}

impl BlockA {
    fn new(cfg: &InceptionConfig, cin: usize, pool: usize, vb: VarBuilder) -> Result<Self> {
        let c = |n| cfg.ch(n);
        Ok(Self {
            b1: BasicConv::square(cin, c(64), 1, vb.pp("branch1x1"))?,
            b5_1: BasicConv::square(cin, c(48), 1, vb.pp("branch5x5_1"))?,
            b5_2: BasicConv::square(c(48), c(64), 5, vb.pp("branch5x5_2"))?,
            b3_1: BasicConv::square(cin, c(64), 1, vb.pp("branch3x3dbl_1"))?,
            b3_2: BasicConv::square(c(64), c(96), 3, vb.pp("branch3x3dbl_2"))?,
            b3_3: BasicConv::square(c(96), c(96), 3, vb.pp("branch3x3dbl_3"))?,
            pool: BasicConv::square(cin, c(pool), 1, vb.pp("branch_pool"))?,
        })
    }

    fn out(cfg: &InceptionConfig, pool: usize) -> usize {
        cfg.ch(64) + cfg.ch(64) + cfg.ch(96) + cfg.ch(pool)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = self.b1.forward(x)?;
        let b = self.b5_2.forward(&self.b5_1.forward(x)?)?;
        let c = self
            .b3_3
            .forward(&self.b3_2.forward(&self.b3_1.forward(x)?)?)?;
        let d = self.pool.forward(&avg_pool3_exclude_pad(x)?)?;
        cat(&[a, b, c, d])
    }
}

/// `InceptionB` (Mixed_6a): strided 3×3, strided double 3×3 and max-pool branches.
#[derive(Debug)]
struct BlockB {
    b3: BasicConv,
    d1: BasicConv,
    d2: BasicConv,
    d3: BasicConv,
}

impl BlockB {
    fn new(cfg: &InceptionConfig, cin: usize, vb: VarBuilder) -> Result<Self> {
        let c = |n| cfg.ch(n);
        Ok(Self {
            b3: BasicConv::new(cin, c(384), (3, 3), 2, (0, 0), vb.pp("branch3x3"))?,
            d1: BasicConv::square(cin, c(64), 1, vb.pp("branch3x3dbl_1"))?,
            d2: BasicConv::square(c(64), c(96), 3, vb.pp("branch3x3dbl_2"))?,
            d3: BasicConv::new(c(96), c(96), (3, 3), 2, (0, 0), vb.pp("branch3x3dbl_3"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = self.b3.forward(x)?;
        let b = self.d3.forward(&self.d2.forward(&self.d1.forward(x)?)?)?;
        cat(&[a, b, max_pool3_s2(x)?])
    }
}

/// `FIDInceptionC`: 1×1, factorised 7×7, double factorised 7×7 and average-pool branches.
#[derive(Debug)]
struct BlockC {
    b1: BasicConv,
    b7: [BasicConv; 3],
    d7: [BasicConv; 5],
    pool: BasicConv,
}

impl BlockC {
    fn new(cfg: &InceptionConfig, cin: usize, c7: usize, vb: VarBuilder) -> Result<Self> {
        let (c192, c7) = (cfg.ch(192), cfg.ch(c7));
        let row =
            |i: usize, o: usize, name: &str| BasicConv::new(i, o, (1, 7), 1, (0, 3), vb.pp(name));
        let col =
            |i: usize, o: usize, name: &str| BasicConv::new(i, o, (7, 1), 1, (3, 0), vb.pp(name));
        Ok(Self {
            b1: BasicConv::square(cin, c192, 1, vb.pp("branch1x1"))?,
            b7: [
                BasicConv::square(cin, c7, 1, vb.pp("branch7x7_1"))?,
                row(c7, c7, "branch7x7_2")?,
                col(c7, c192, "branch7x7_3")?,
            ],
            d7: [
                BasicConv::square(cin, c7, 1, vb.pp("branch7x7dbl_1"))?,
                col(c7, c7, "branch7x7dbl_2")?,
                row(c7, c7, "branch7x7dbl_3")?,
                col(c7, c7, "branch7x7dbl_4")?,
                row(c7, c192, "branch7x7dbl_5")?,
            ],
            pool: BasicConv::square(cin, c192, 1, vb.pp("branch_pool"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let chain = |convs: &[BasicConv]| -> Result<Tensor> {
            let mut y = x.clone();
            for c in convs {
                y = c.forward(&y)?;
            }
            Ok(y)
        };
        let a = self.b1.forward(x)?;
        let b = chain(&self.b7)?;
        let c = chain(&self.d7)?;
        let d = self.pool.forward(&avg_pool3_exclude_pad(x)?)?;
        cat(&[a, b, c, d])
    }
}

/// `InceptionD` (Mixed_7a): strided 3×3, strided 7×7×3 and max-pool branches.
#[derive(Debug)]
struct BlockD {
    b3: [BasicConv; 2],
    b7: [BasicConv; 4],
}

impl BlockD {
    fn new(cfg: &InceptionConfig, cin: usize, vb: VarBuilder) -> Result<Self> {
        let c = |n| cfg.ch(n);
        Ok(Self {
            b3: [
                BasicConv::square(cin, c(192), 1, vb.pp("branch3x3_1"))?,
                BasicConv::new(c(192), c(320), (3, 3), 2, (0, 0), vb.pp("branch3x3_2"))?,
            ],
            b7: [
                BasicConv::square(cin, c(192), 1, vb.pp("branch7x7x3_1"))?,
                BasicConv::new(c(192), c(192), (1, 7), 1, (0, 3), vb.pp("branch7x7x3_2"))?,
                BasicConv::new(c(192), c(192), (7, 1), 1, (3, 0), vb.pp("branch7x7x3_3"))?,
                BasicConv::new(c(192), c(192), (3, 3), 2, (0, 0), vb.pp("branch7x7x3_4"))?,
            ],
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = self.b3[1].forward(&self.b3[0].forward(x)?)?;
        let mut b = x.clone();
        for c in &self.b7 {
            b = c.forward(&b)?;
        }
        cat(&[a, b, max_pool3_s2(x)?])
    }
}

/// `FIDInceptionE_1` (average pool without the padding) and `FIDInceptionE_2` (max pool).
#[derive(Debug)]
struct BlockE {
    b1: BasicConv,
    b3_1: BasicConv,
    b3_2a: BasicConv,
    b3_2b: BasicConv,
    d1: BasicConv,
    d2: BasicConv,
    d3a: BasicConv,
    d3b: BasicConv,
    pool: BasicConv,
    max_pool: bool,
}

impl BlockE {
    fn new(cfg: &InceptionConfig, cin: usize, max_pool: bool, vb: VarBuilder) -> Result<Self> {
        let c = |n| cfg.ch(n);
        let row = |i, o, name: &str| BasicConv::new(i, o, (1, 3), 1, (0, 1), vb.pp(name));
        let col = |i, o, name: &str| BasicConv::new(i, o, (3, 1), 1, (1, 0), vb.pp(name));
        Ok(Self {
            b1: BasicConv::square(cin, c(320), 1, vb.pp("branch1x1"))?,
            b3_1: BasicConv::square(cin, c(384), 1, vb.pp("branch3x3_1"))?,
            b3_2a: row(c(384), c(384), "branch3x3_2a")?,
            b3_2b: col(c(384), c(384), "branch3x3_2b")?,
            d1: BasicConv::square(cin, c(448), 1, vb.pp("branch3x3dbl_1"))?,
            d2: BasicConv::square(c(448), c(384), 3, vb.pp("branch3x3dbl_2"))?,
            d3a: row(c(384), c(384), "branch3x3dbl_3a")?,
            d3b: col(c(384), c(384), "branch3x3dbl_3b")?,
            pool: BasicConv::square(cin, c(192), 1, vb.pp("branch_pool"))?,
            max_pool,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = self.b1.forward(x)?;
        let b = self.b3_1.forward(x)?;
        let b = cat(&[self.b3_2a.forward(&b)?, self.b3_2b.forward(&b)?])?;
        let c = self.d2.forward(&self.d1.forward(x)?)?;
        let c = cat(&[self.d3a.forward(&c)?, self.d3b.forward(&c)?])?;
        let pooled = if self.max_pool {
            max_pool3_same(x)?
        } else {
            avg_pool3_exclude_pad(x)?
        };
        let d = self.pool.forward(&pooled)?;
        cat(&[a, b, c, d])
    }
}

/// pytorch-fid's Inception-v3 up to the final average pool (its `pool3` features).
#[derive(Debug)]
pub struct FidInception {
    stem: [BasicConv; 5],
    mixed_5: [BlockA; 3],
    mixed_6a: BlockB,
    mixed_6: [BlockC; 4],
    mixed_7a: BlockD,
    mixed_7: [BlockE; 2],
    cfg: InceptionConfig,
}

impl FidInception {
    /// Builds the network, fetching (or, from a `VarMap`, creating) its tensors in `vb` under
    /// the torchvision names.
    pub fn new(cfg: InceptionConfig, vb: VarBuilder) -> Result<Self> {
        cfg.check()?;
        let c = |n| cfg.ch(n);
        let stem = [
            BasicConv::new(3, c(32), (3, 3), 2, (0, 0), vb.pp("Conv2d_1a_3x3"))?,
            BasicConv::new(c(32), c(32), (3, 3), 1, (0, 0), vb.pp("Conv2d_2a_3x3"))?,
            BasicConv::square(c(32), c(64), 3, vb.pp("Conv2d_2b_3x3"))?,
            BasicConv::square(c(64), c(80), 1, vb.pp("Conv2d_3b_1x1"))?,
            BasicConv::new(c(80), c(192), (3, 3), 1, (0, 0), vb.pp("Conv2d_4a_3x3"))?,
        ];
        let a0 = c(192);
        let a1 = BlockA::out(&cfg, 32);
        let a2 = BlockA::out(&cfg, 64);
        let mixed_5 = [
            BlockA::new(&cfg, a0, 32, vb.pp("Mixed_5b"))?,
            BlockA::new(&cfg, a1, 64, vb.pp("Mixed_5c"))?,
            BlockA::new(&cfg, a2, 64, vb.pp("Mixed_5d"))?,
        ];
        let mixed_6a = BlockB::new(&cfg, a2, vb.pp("Mixed_6a"))?;
        let b = c(384) + c(96) + a2; // 768
        let mixed_6 = [
            BlockC::new(&cfg, b, 128, vb.pp("Mixed_6b"))?,
            BlockC::new(&cfg, b, 160, vb.pp("Mixed_6c"))?,
            BlockC::new(&cfg, b, 160, vb.pp("Mixed_6d"))?,
            BlockC::new(&cfg, b, 192, vb.pp("Mixed_6e"))?,
        ];
        let mixed_7a = BlockD::new(&cfg, b, vb.pp("Mixed_7a"))?;
        let d = c(320) + c(192) + b; // 1280
        let e = c(320) + 4 * c(384) + c(192); // 2048
        let mixed_7 = [
            BlockE::new(&cfg, d, false, vb.pp("Mixed_7b"))?,
            BlockE::new(&cfg, e, true, vb.pp("Mixed_7c"))?,
        ];
        Ok(Self {
            stem,
            mixed_5,
            mixed_6a,
            mixed_6,
            mixed_7a,
            mixed_7,
            cfg,
        })
    }

    /// The shape.
    pub fn config(&self) -> &InceptionConfig {
        &self.cfg
    }

    /// The 2048 (/ width divisor) features of each image.
    ///
    /// # Shapes
    /// `xs`: `[b, 1 or 3, h, w]` in [-1, 1]; grey images are repeated on 3 channels and any
    /// other size is resized to 299 × 299 (bilinear, `align_corners=False`, as pytorch-fid) →
    /// `[b, features]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = xs.dims4()?;
        let mut x = xs.to_dtype(DType::F32)?;
        if c == 1 {
            x = x.repeat((1, 3, 1, 1))?;
        } else if c != 3 {
            return Err(ModelError::Config(format!(
                "the inception network takes 1 or 3 channels, not {c}"
            )));
        }
        if (h, w) != (INCEPTION_SIDE, INCEPTION_SIDE) {
            x = bilinear_resize(&x, INCEPTION_SIDE)?;
        }
        let [c1a, c2a, c2b, c3b, c4a] = &self.stem;
        x = c2b.forward(&c2a.forward(&c1a.forward(&x)?)?)?; // [b, 64, 147, 147]
        x = max_pool3_s2(&x)?; // 73
        x = c4a.forward(&c3b.forward(&x)?)?; // [b, 192, 71, 71]
        x = max_pool3_s2(&x)?; // 35
        for blk in &self.mixed_5 {
            x = blk.forward(&x)?; // [b, 288, 35, 35]
        }
        x = self.mixed_6a.forward(&x)?; // [b, 768, 17, 17]
        for blk in &self.mixed_6 {
            x = blk.forward(&x)?;
        }
        x = self.mixed_7a.forward(&x)?; // [b, 1280, 8, 8]
        for blk in &self.mixed_7 {
            x = blk.forward(&x)?; // [b, 2048, 8, 8]
        }
        Ok(x.mean(3)?.mean(2)?)
    }
}

/// Where the weights come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InceptionSource {
    /// A local `.safetensors` file, or a PyTorch `.pth`/`.pt` state dict (pytorch-fid's
    /// `pt_inception-2015-12-05-6726825d.pth`).
    File(PathBuf),
    /// A file of a model repository on the Hugging Face hub, through the hf-hub cache: used
    /// from the cache without network when it is there, downloaded otherwise.
    Hub {
        /// `org/name`.
        repo: String,
        /// The file in the repository.
        file: String,
        /// The hf-hub cache folder (default: `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
        cache: Option<PathBuf>,
    },
}

/// The local path of the weights: the file itself, or the hf-hub cache's copy (downloaded into
/// the cache when missing).
pub fn resolve_inception(source: &InceptionSource) -> Result<PathBuf> {
    match source {
        InceptionSource::File(p) => {
            if p.is_file() {
                Ok(p.clone())
            } else {
                Err(ModelError::Checkpoint {
                    path: p.clone(),
                    reason: "no such inception weights file (pytorch-fid's \
                             pt_inception-2015-12-05-6726825d.pth or a safetensors copy of it)"
                        .into(),
                })
            }
        }
        InceptionSource::Hub { repo, file, cache } => {
            let cache = match cache {
                Some(c) => hf_hub::Cache::new(c.clone()),
                None => hf_hub::Cache::from_env(),
            };
            if let Some(p) = cache.model(repo.clone()).get(file) {
                return Ok(p);
            }
            let fail = |e: String| {
                ModelError::Config(format!(
                    "cannot get {file} of the hf-hub model repo {repo} (not in the cache {}, and \
                     the download failed: {e}); download the weights yourself and pass \
                     --inception-weights PATH (pytorch-fid's \
                     pt_inception-2015-12-05-6726825d.pth works as it is)",
                    cache.path().display()
                ))
            };
            let api = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone())
                .build()
                .map_err(|e| fail(e.to_string()))?;
            api.model(repo.clone())
                .get(file)
                .map_err(|e| fail(e.to_string()))
        }
    }
}

/// Reads the tensors of a `.safetensors` file or a PyTorch `.pth`/`.pt`/`.bin` state dict.
fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let bad = |e: candle_core::Error| ModelError::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("cannot read the inception weights: {e}"),
    };
    if matches!(ext.as_str(), "pth" | "pt" | "bin") {
        // candle reads PyTorch's zip format (torch >= 1.6), not the older bare pickle format.
        let tensors = candle_core::pickle::read_all(path).map_err(|e| ModelError::Checkpoint {
            path: path.to_path_buf(),
            reason: format!(
                "cannot read the inception weights ({e}); if the file is in PyTorch's old \
                 (non-zip) format, convert it once: python -c \"import torch, safetensors.torch \
                 as st; st.save_file(torch.load('IN.pth'), 'OUT.safetensors')\""
            ),
        })?;
        Ok(tensors.into_iter().collect())
    } else {
        candle_core::safetensors::load(path, &Device::Cpu).map_err(bad)
    }
}

/// The network with the weights of `path` (its width divisor read from the shape of
/// `Conv2d_1a_3x3.conv.weight`). A missing or misshaped tensor is an error naming the file and
/// the tensor.
pub fn load_inception_file(path: &Path, dev: &Device) -> Result<InceptionEvaluator> {
    let tensors = read_tensors(path)?;
    let first = "Conv2d_1a_3x3.conv.weight";
    let bad = |reason: String| ModelError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let width = tensors
        .get(first)
        .ok_or_else(|| bad(format!("no tensor {first}: not inception weights")))?
        .dim(0)?;
    if width == 0 || 32 % width != 0 {
        return Err(bad(format!(
            "{first} has {width} output channels (32 for the real network)"
        )));
    }
    let cfg = InceptionConfig {
        width_divisor: 32 / width,
    };
    let vb = VarBuilder::from_tensors(tensors, DType::F32, dev);
    let net = FidInception::new(cfg, vb).map_err(|e| bad(e.to_string()))?;
    Ok(InceptionEvaluator {
        net,
        device: dev.clone(),
        path: path.to_path_buf(),
        weights_hash: crate::evaluator::fnv1a_file(path)?,
    })
}

/// splitmix64's output function (the mixer of [`formula_weight`], also used by the parity
/// check's images).
pub fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The deterministic weights of the FID parity check (`xtask/scripts/fid_parity.py` computes
/// the same in PyTorch) for tensor `name` of shape `dims`, or `None` for a tensor it does not
/// set. For element i (from 0) of a tensor, u = 2·(z >> 11)·2⁻⁵³ − 1 in [-1, 1), with
/// z = splitmix64(FNV-1a(name) + (i + 1)·0x9e3779b97f4a7c15) (wrapping); conv weights are
/// u·√(6 / fan-in), BatchNorm γ 1 + 0.1u, β and running mean 0.1u, running variance 1 + 0.2u.
pub fn formula_weight(name: &str, dims: &[usize]) -> Option<Vec<f32>> {
    let n: usize = dims.iter().product();
    let (base, scale) = if name.ends_with("conv.weight") {
        (0.0, (6.0 / (n / dims[0]) as f64).sqrt())
    } else if name.ends_with("bn.weight") {
        (1.0, 0.1)
    } else if name.ends_with("bn.bias") || name.ends_with("bn.running_mean") {
        (0.0, 0.1)
    } else if name.ends_with("bn.running_var") {
        (1.0, 0.2)
    } else {
        return None;
    };
    let h = crate::evaluator::fnv1a(name.as_bytes());
    Some(
        (0..n as u64)
            .map(|i| {
                let z = splitmix64(h.wrapping_add((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
                let u = (z >> 11) as f64 * 2f64.powi(-53) * 2.0 - 1.0;
                (base + scale * u) as f32
            })
            .collect(),
    )
}

/// Every tensor of the network of shape `cfg` with the weights of [`formula_weight`], by name:
/// a weights file for tests and offline checks (no download), not a network that means
/// anything. Save it with `candle_core::safetensors::save` and load it with
/// [`load_inception_file`] (a divisor other than 1 gives the tiny network of the same names).
pub fn formula_weights(cfg: InceptionConfig) -> Result<HashMap<String, Tensor>> {
    // A first build only to learn the tensor names and shapes.
    let vars = candle_nn::VarMap::new();
    FidInception::new(
        cfg,
        VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
    )?;
    let data = vars.data().lock().map_err(|_| {
        ModelError::Config("the variables of the formula network are poisoned".into())
    })?;
    let mut tensors = HashMap::new();
    for (name, var) in data.iter() {
        let dims = var.dims().to_vec();
        let vals = formula_weight(name, &dims)
            .ok_or_else(|| ModelError::Config(format!("no formula for tensor {name}")))?;
        tensors.insert(name.clone(), Tensor::from_vec(vals, dims, &Device::Cpu)?);
    }
    Ok(tensors)
}

/// [`resolve_inception`] then [`load_inception_file`].
pub fn load_inception(source: &InceptionSource, dev: &Device) -> Result<InceptionEvaluator> {
    load_inception_file(&resolve_inception(source)?, dev)
}

/// The Inception network as a [`FeatureNet`]: its features, no class probabilities (so no
/// Inception Score or class coverage).
#[derive(Debug)]
pub struct InceptionEvaluator {
    /// The network.
    pub net: FidInception,
    device: Device,
    /// The weights file it was loaded from.
    pub path: PathBuf,
    weights_hash: u64,
}

impl FeatureNet for InceptionEvaluator {
    fn name(&self) -> String {
        match self.net.config().width_divisor {
            1 => "inception".into(),
            d => format!("inception (width / {d})"),
        }
    }

    fn input(&self) -> (usize, usize) {
        (3, INCEPTION_SIDE)
    }

    fn embed(&self, xs: &Tensor) -> Result<Embedding> {
        let feats = self.net.forward(xs)?;
        Ok(Embedding {
            features: feats.flatten_all()?.to_vec1()?,
            dim: self.net.config().features(),
            probs: None,
            classes: 0,
        })
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn batch_size(&self) -> usize {
        50
    }

    fn feature_dim(&self) -> Option<usize> {
        Some(self.net.config().features())
    }

    fn weights_hash(&self) -> Option<u64> {
        Some(self.weights_hash)
    }
}
