//! `cargo xtask bench`: times one training step of our models with our CPU convolutions and
//! with candle's, and PyTorch's same step when `--torch PYTHON` is given, side by side in one
//! invocation. The models (`--models`):
//!
//! - `dcgan28`, `dcgan64`: one DCGAN step (`GanTrainer::train_step`: D on a real and a fake
//!   batch, then G), against `xtask/bench/torch_dcgan.py`;
//! - `wgan-gp28`: one WGAN-GP generator iteration as `gan-cli train wgan-gp` runs it
//!   ([`WganTrainer`]: 5 critic updates, each on its own real batch and a fresh detached fake
//!   batch, with the gradient penalty (λ 10, second order), then one generator update),
//!   dcgan28's networks with the layer-norm critic, batch `--batch-wgan`, against
//!   `xtask/bench/torch_wgangp.py`;
//! - `cyclegan128`: one CycleGAN step as `gan-cli train cyclegan` runs it
//!   ([`CycleGanTrainer::step_on`](gan_models::cyclegan::CycleGanTrainer::step_on): both
//!   generators, then both discriminators) at 128 pixels, RGB, ngf = ndf = 64, 6 residual
//!   blocks, 3 discriminator layers, batch `--batch-cyclegan`, against
//!   `xtask/bench/torch_cyclegan.py`.
//!
//! Real images are random tensors in [-1, 1] made before the timed steps, on every side; no data
//! loading is timed.
//!
//! Every measurement runs in its own child process, in rounds (ours fast, ours candle, torch,
//! then again), so that the three sides see the same machine load and each one's peak resident
//! memory is its own: the parent reads it from `wait4`'s `ru_maxrss`. Our side is this binary
//! re-executed with the hidden `--worker` flag. The reported time of a side is the median of
//! its rounds' medians; its ratio to PyTorch is the ratio of those medians ("vs torch") and,
//! less sensitive to the machine's slow swings in speed, the median over rounds of each round's
//! ratio to the PyTorch round run right after it ("per round").
//!
//! Built in the dev profile (as `cargo xtask` builds), the bench first re-runs itself with
//! `cargo run --release`, so that gan-models is optimised as in a release `gan-cli`.
//!
//! `--layers` prints instead the time of each layer's forward and backward pass, with our
//! convolutions and with candle's (DCGAN models only).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use gan_core::batchnorm::{leaky_relu, Activation, BatchNorm2d};
use gan_core::conv::{set_fast_conv, Conv2d, ConvLayer, ConvParams, ConvTranspose2d};
use gan_core::rng::SeededRng;
use gan_models::cgan_run::CganRunConfig;
use gan_models::cyclegan::CycleGanConfig;
use gan_models::cyclegan_run::CycleGanRunConfig;
use gan_models::dcgan::DcganConfig;
use gan_models::dcgan_run::{build_trainer, DataConfig, DcganRunConfig};
use gan_models::engine::{BatchSource, DataPosition, StepRecord, Trainer};
use gan_models::wgan::{WganRunConfig, WganTrainer};
use serde_json::{json, Value};

/// Set in the environment of the release re-run, so that it does not re-run itself again.
const REEXEC_ENV: &str = "GAN_BENCH_RELEASE";

/// Critic updates per WGAN-GP generator iteration (`gan-cli train wgan-gp`'s, the paper's).
const WGAN_N_CRITIC: usize = 5;

/// The networks of `cyclegan128`: the reference's for 128-pixel RGB images.
const CYCLEGAN128: CycleGanConfig = CycleGanConfig {
    channels: 3,
    ngf: 64,
    n_blocks: 6,
    ndf: 64,
    n_layers: 3,
};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Models to time, comma-separated: `dcgan28` (one DCGAN step, batch `--batch28`),
    /// `dcgan64` (batch `--batch64`, 3 channels), `wgan-gp28` (one WGAN-GP generator iteration
    /// with its 5 critic updates, dcgan28's networks, batch `--batch-wgan`) and `cyclegan128`
    /// (one CycleGAN step at 128 pixels, RGB, 6 residual blocks, batch `--batch-cyclegan`).
    #[arg(long, default_value = "dcgan28,dcgan64", value_delimiter = ',')]
    models: Vec<String>,
    /// Batch size of dcgan28.
    #[arg(long, default_value_t = 64)]
    batch28: usize,
    /// Batch size of dcgan64.
    #[arg(long, default_value_t = 16)]
    batch64: usize,
    /// Batch size of wgan-gp28 (each critic update's real and fake batches, and the generator
    /// update's fakes).
    #[arg(long, default_value_t = 64)]
    batch_wgan: usize,
    /// Batch size of cyclegan128 (images of each domain per step; the reference's 1).
    #[arg(long, default_value_t = 1)]
    batch_cyclegan: usize,
    /// Timed steps per round and side (torch_dcgan.py's `--steps`).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed steps before them (torch_dcgan.py always does 3).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Rounds: each runs every side once, in turn.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Threads for every side (rayon's pool; torch's `--threads`).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// A Python with torch installed: also time PyTorch's step of each model
    /// (`torch_dcgan.py`, `torch_wgangp.py`, `torch_cyclegan.py` in `--torch-dir`).
    #[arg(long)]
    torch: Option<PathBuf>,
    /// The folder of the PyTorch scripts (default: `xtask/bench`, in this repository).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/bench"))]
    torch_dir: PathBuf,
    /// The PyTorch script of the DCGAN models (default: `torch_dcgan.py` in `--torch-dir`).
    #[arg(long)]
    torch_script: Option<PathBuf>,
    /// Skip candle's own convolutions (`set_fast_conv(false)`).
    #[arg(long)]
    no_candle_conv: bool,
    /// Keep glibc malloc's default trimming and mmap thresholds in our worker.
    #[arg(long)]
    default_malloc: bool,
    /// Time each layer's forward and backward pass instead of the whole step.
    #[arg(long)]
    layers: bool,
    /// Also time the class-conditional step (`train cgan`) of these modes, comma-separated
    /// (`projection`, `acgan`, `concat`), on dcgan28's networks and batch, as more sides
    /// beside DCGAN's in every round, with each one's per-round ratio to DCGAN's step.
    #[arg(long, value_delimiter = ',')]
    cgan: Vec<String>,
    /// Also time `train dcgan`'s default step (`DcganRunConfig::tuned`: spectral norm instead
    /// of BatchNorm in the discriminator, hinge loss) on dcgan28's networks and batch, as a side
    /// beside the classic DCGAN step in every round, with its per-round ratio to that step.
    #[arg(long)]
    tuned: bool,
    /// Internal, with `--worker`: time the tuned step.
    #[arg(long, hide = true)]
    tuned_worker: bool,
    /// Internal, with `--worker`: time the class-conditional step of this mode.
    #[arg(long, hide = true)]
    cond: Option<String>,
    /// Internal: run one side's timed loop in this process and print its JSON.
    #[arg(long, hide = true)]
    worker: bool,
    /// Internal, with `--worker`: use candle's convolutions.
    #[arg(long, hide = true)]
    candle_conv: bool,
}

/// Which training step a model times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StepKind {
    /// One DCGAN step (D, then G).
    Dcgan,
    /// One WGAN-GP generator iteration with its [`WGAN_N_CRITIC`] critic updates.
    WganGp,
    /// One CycleGAN step (both generators, then both discriminators).
    CycleGan,
}

/// One configuration: a model and its batch.
#[derive(Clone, Copy, Debug)]
struct Model {
    name: &'static str,
    kind: StepKind,
    batch: usize,
    channels: usize,
}

impl Model {
    /// Images one step trains on, for images/s: the batch, or for WGAN-GP the real images of
    /// its critic updates (batch × 5); CycleGAN's count is image pairs (one per domain).
    fn images_per_step(&self) -> usize {
        match self.kind {
            StepKind::WganGp => self.batch * WGAN_N_CRITIC,
            StepKind::Dcgan | StepKind::CycleGan => self.batch,
        }
    }
}

impl BenchArgs {
    fn models(&self) -> anyhow::Result<Vec<Model>> {
        self.models
            .iter()
            .map(|m| {
                let (name, kind, batch, channels) = match m.as_str() {
                    "dcgan28" => ("dcgan28", StepKind::Dcgan, self.batch28, 1),
                    "dcgan64" => ("dcgan64", StepKind::Dcgan, self.batch64, 3),
                    "wgan-gp28" => ("wgan-gp28", StepKind::WganGp, self.batch_wgan, 1),
                    "cyclegan128" => (
                        "cyclegan128",
                        StepKind::CycleGan,
                        self.batch_cyclegan,
                        CYCLEGAN128.channels,
                    ),
                    m => bail!(
                        "unknown model {m:?} (expected dcgan28, dcgan64, wgan-gp28 or cyclegan128)"
                    ),
                };
                if batch == 0 {
                    bail!("{name}: the batch size must be at least 1");
                }
                Ok(Model {
                    name,
                    kind,
                    batch,
                    channels,
                })
            })
            .collect()
    }

    /// The PyTorch script of `m`.
    fn torch_script(&self, m: Model) -> PathBuf {
        match (m.kind, &self.torch_script) {
            (StepKind::Dcgan, Some(s)) => s.clone(),
            (StepKind::Dcgan, None) => self.torch_dir.join("torch_dcgan.py"),
            (StepKind::WganGp, _) => self.torch_dir.join("torch_wgangp.py"),
            (StepKind::CycleGan, _) => self.torch_dir.join("torch_cyclegan.py"),
        }
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let models = args.models()?;
    if args.layers {
        if let Some(m) = models.iter().find(|m| m.kind != StepKind::Dcgan) {
            bail!(
                "--layers times the DCGAN networks' layers only (dcgan28, dcgan64), not {}",
                m.name
            );
        }
    }
    if cfg!(debug_assertions) && std::env::var_os(REEXEC_ENV).is_none() {
        return rerun_release();
    }
    if args.worker {
        let model = *args.models()?.first().context("--worker needs one model")?;
        tune_malloc(!args.default_malloc);
        return if args.layers {
            layers(&args, model)
        } else {
            worker(&args, model)
        };
    }
    if args.layers {
        for model in args.models()? {
            let out = run_child(&worker_command(&args, model, false))?;
            print!("{}", out.stdout);
        }
        return Ok(());
    }
    compare(&args)
}

/// Re-runs the same command line from a release build.
fn rerun_release() -> anyhow::Result<()> {
    eprintln!("xtask bench: re-running in release (cargo run --release -p xtask)");
    let status = Command::new(env!("CARGO"))
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "xtask",
            "--bin",
            "xtask",
            "--",
        ])
        .args(std::env::args_os().skip(1))
        .env(REEXEC_ENV, "1")
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("release bench failed ({status})");
    }
    Ok(())
}

/// Raises glibc's trim and mmap thresholds so that the step's large short-lived tensors are
/// recycled from the heap instead of being mapped and unmapped (and page-faulted in) every time.
/// gan-cli does the same at startup.
fn tune_malloc(enabled: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if enabled {
        // SAFETY: mallopt only sets allocator parameters; it is called before other threads
        // allocate.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = enabled;
}

/// One timed training step; returns whether its metrics are finite.
type StepFn = Box<dyn FnMut() -> anyhow::Result<bool>>;

/// One side's timed loop: prints one JSON line.
fn worker(args: &BenchArgs, m: Model) -> anyhow::Result<()> {
    if m.kind == StepKind::WganGp {
        // The penalty's gradient is second order: candle must keep the graph of gradients,
        // which it decides on a thread's first backward pass.
        gan_core::penalty::ensure_second_order()?;
    }
    let dev = Device::Cpu;
    let fast = !args.candle_conv;
    let mut step = match m.kind {
        StepKind::Dcgan => dcgan_step(args, m, fast, &dev)?,
        StepKind::WganGp => wgan_gp_step(m, fast, &dev)?,
        StepKind::CycleGan => cyclegan_step(m, fast, &dev)?,
    };
    set_fast_conv(fast);
    let rss_before_kib = vm_kib("VmRSS:");
    let mut times = Vec::with_capacity(args.steps);
    for i in 0..args.warmup + args.steps {
        let t0 = Instant::now();
        let finite = step()?;
        let dt = t0.elapsed().as_secs_f64();
        if !finite {
            bail!("non-finite step metrics at step {i}");
        }
        if i >= args.warmup {
            times.push(dt);
        }
    }
    let med = median(&mut times);
    let out = json!({
        "framework": "gan-rs",
        "conv": if fast { "gan-core" } else { "candle" },
        "model": m.name,
        "cgan": args.cond,
        "tuned": args.tuned_worker,
        "batch": m.batch,
        "channels": m.channels,
        "device": "cpu",
        "threads": rayon::current_num_threads(),
        "median_step_ms": round2(med * 1e3),
        "images_per_s": round_rate(m.images_per_step() as f64 / med),
        "steps_ms": times.iter().map(|t| round2(t * 1e3)).collect::<Vec<_>>(),
        "rss_before_steps_mib": rss_before_kib.map(|k| round1(k as f64 / 1024.0)),
        "peak_rss_mib": vm_kib("VmHWM:").map(|k| round1(k as f64 / 1024.0)),
    });
    println!("{out}");
    Ok(())
}

/// The data of a benched run config: none is loaded (the steps take random batches).
fn bench_data() -> DataConfig {
    DataConfig {
        source: "bench".into(),
        path: ".".into(),
        items: 0,
        max_items: None,
    }
}

/// The DCGAN step of `m` (or, with `--cond`, the class-conditional one, with `--tuned-worker`
/// the tuned one) on one fixed random real batch.
fn dcgan_step(args: &BenchArgs, m: Model, fast: bool, dev: &Device) -> anyhow::Result<StepFn> {
    let mut cfg = if args.tuned_worker {
        DcganRunConfig::tuned(bench_data(), m.channels)
    } else {
        DcganRunConfig::new(bench_data(), m.channels)
    };
    cfg.dcgan = dcgan_config(m);
    cfg.run.batch_size = m.batch;
    cfg.run.fast_conv = fast;
    let side = cfg.dcgan.image_size;
    let real =
        SeededRng::with_stream(0, 100).rand((m.batch, m.channels, side, side), -1.0, 1.0, dev)?;
    Ok(match &args.cond {
        None => {
            let mut trainer = build_trainer(&cfg, dev)?;
            Box::new(move || Ok(trainer.step_on(&real, 0)?.is_finite()))
        }
        Some(mode) => {
            let cond = serde_json::from_value(json!(mode))
                .with_context(|| format!("unknown --cgan mode {mode:?}"))?;
            let classes: Vec<String> = (0..10).map(|c| c.to_string()).collect();
            let cgan = CganRunConfig::new(cfg.clone(), cond, classes);
            let mut trainer = gan_models::cgan_run::build_trainer(&cgan, dev)?;
            let labels: Vec<u32> = (0..m.batch as u32).map(|i| i % 10).collect();
            let labels = Tensor::from_vec(labels, m.batch, dev)?;
            Box::new(move || Ok(trainer.step_on(&real, &labels, 0)?.base.is_finite()))
        }
    })
}

/// The WGAN-GP generator iteration of `gan-cli train wgan-gp` (`WganRunConfig::wgan_gp`:
/// layer-norm critic, λ 10, Adam(1e-4, 0.5, 0.9), 5 critic updates) on dcgan28's networks, its
/// critic updates taking their real batches from [`RealBatches`].
fn wgan_gp_step(m: Model, fast: bool, dev: &Device) -> anyhow::Result<StepFn> {
    let mut cfg = WganRunConfig::wgan_gp(bench_data(), m.channels);
    cfg.dcgan = dcgan_config(m);
    cfg.run.batch_size = m.batch;
    cfg.run.fast_conv = fast;
    if cfg.critic.n_critic != WGAN_N_CRITIC {
        bail!(
            "WganRunConfig::wgan_gp has {} critic updates, the bench expects {WGAN_N_CRITIC}",
            cfg.critic.n_critic
        );
    }
    let side = cfg.dcgan.image_size;
    let mut trainer = WganTrainer::new(&cfg, dev)?;
    let mut reals = RealBatches::new(WGAN_N_CRITIC, [m.batch, m.channels, side, side], dev)?;
    Ok(Box::new(move || {
        let metrics = trainer.train_step(&mut reals)?;
        if metrics.critic_iters as usize != WGAN_N_CRITIC {
            bail!(
                "the step ran {} critic updates, not {WGAN_N_CRITIC}",
                metrics.critic_iters
            );
        }
        Ok(metrics.is_finite())
    }))
}

/// The CycleGAN step of `gan-cli train cyclegan` (`CycleGanTrainer::step_on`, with its image
/// pools of 50) with [`CYCLEGAN128`]'s networks on one fixed random batch of each domain, 128
/// pixels.
fn cyclegan_step(m: Model, fast: bool, dev: &Device) -> anyhow::Result<StepFn> {
    const SIZE: usize = 128;
    let mut cfg = CycleGanRunConfig::new(PathBuf::from("bench"));
    cfg.net = CYCLEGAN128;
    cfg.data.load_size = SIZE;
    cfg.data.crop_size = SIZE;
    cfg.run.batch_size = m.batch;
    cfg.run.fast_conv = fast;
    cfg.validate()?;
    let mut trainer = gan_models::cyclegan_run::build_trainer(&cfg, dev)?;
    let shape = (m.batch, m.channels, SIZE, SIZE);
    let real_a = SeededRng::with_stream(0, 100).rand(shape, -1.0, 1.0, dev)?;
    let real_b = SeededRng::with_stream(0, 101).rand(shape, -1.0, 1.0, dev)?;
    let mut rng = SeededRng::with_stream(0, 102);
    Ok(Box::new(move || {
        Ok(trainer.step_on(&real_a, &real_b, &mut rng, 0)?.is_finite())
    }))
}

/// Real batches for the WGAN-GP critic updates: `count` random batches in [-1, 1], made once and
/// handed out in turn, one per critic update (as `torch_wgangp.py` does), so that no data loading
/// is timed.
struct RealBatches {
    batches: Vec<Tensor>,
    next: usize,
}

impl RealBatches {
    fn new(count: usize, shape: [usize; 4], dev: &Device) -> anyhow::Result<Self> {
        let mut rng = SeededRng::with_stream(0, 100);
        let batches = (0..count.max(1))
            .map(|_| rng.rand(shape.to_vec(), -1.0, 1.0, dev))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self { batches, next: 0 })
    }
}

impl BatchSource for RealBatches {
    type Batch = gan_data::Batch;

    fn next_batch(&mut self, _step: u64) -> gan_models::Result<gan_data::Batch> {
        let index = self.next;
        self.next = (self.next + 1) % self.batches.len();
        Ok(gan_data::Batch {
            items: self.batches[index].clone(),
            labels: None,
            epoch: 0,
            index,
        })
    }

    fn position(&self) -> DataPosition {
        DataPosition {
            epoch: 0,
            batch_index: self.next as u64,
        }
    }

    fn seek(&mut self, pos: DataPosition) {
        self.next = pos.batch_index as usize % self.batches.len();
    }
}

fn dcgan_config(m: Model) -> DcganConfig {
    match m.name {
        "dcgan28" | "wgan-gp28" => DcganConfig {
            channels: m.channels,
            ..DcganConfig::dcgan28()
        },
        _ => DcganConfig {
            channels: m.channels,
            ..DcganConfig::dcgan64()
        },
    }
}

/// A value from `/proc/self/status` in KiB (`VmRSS:`, `VmHWM:`).
fn vm_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The median over rounds of `ours[i] / theirs[i]` (rounds paired by index).
fn median_round_ratio(ours: &[f64], theirs: &[f64]) -> f64 {
    let mut r: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
    median(&mut r)
}

fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A rate to one decimal, or below 10 (CycleGAN's images/s) to three.
fn fmt_rate(x: f64) -> String {
    if x.abs() < 10.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.1}")
    }
}

/// A rate rounded to 0.1, or below 10 (CycleGAN's images/s) to 0.001.
fn round_rate(x: f64) -> f64 {
    if x.abs() < 10.0 {
        (x * 1000.0).round() / 1000.0
    } else {
        round1(x)
    }
}

/// A convolution layer of the networks, with what follows it.
#[derive(Clone, Copy, Debug)]
struct Layer {
    name: &'static str,
    transposed: bool,
    c_in: usize,
    c_out: usize,
    k: usize,
    s: usize,
    p: usize,
    /// Input side length.
    h_in: usize,
    /// BatchNorm after the convolution.
    bn: bool,
    act: Act,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Relu,
    LeakyRelu,
    Tanh,
    None,
}

impl Layer {
    fn h_out(&self) -> usize {
        if self.transposed {
            (self.h_in - 1) * self.s + self.k - 2 * self.p
        } else {
            (self.h_in + 2 * self.p - self.k) / self.s + 1
        }
    }

    /// Multiply-adds of the forward pass for a batch of `b`; the input gradient and the weight
    /// gradient each take exactly as many (they are the same sum over the same index triples).
    fn macs(&self, b: usize) -> f64 {
        // Counted on the small side (the conv2d output, the transposed conv's input), which is
        // where every (output pixel, input channel, kernel tap) product is taken, including taps
        // that fall on padding, as a dense implementation does.
        let small = if self.transposed {
            self.h_in
        } else {
            self.h_out()
        };
        (b * small * small * self.c_in * self.c_out * self.k * self.k) as f64
    }
}

/// The layers of `torch_dcgan.py`'s networks: the generator's, then the discriminator's (for
/// wgan-gp28, `torch_wgangp.py`'s generator and critic, whose convolutions are dcgan28's).
fn layers_of(m: Model) -> (Vec<Layer>, Vec<Layer>) {
    let nc = m.channels;
    let l = |name, transposed, c_in, c_out, k, s, p, h_in, bn, act| Layer {
        name,
        transposed,
        c_in,
        c_out,
        k,
        s,
        p,
        h_in,
        bn,
        act,
    };
    use Act::*;
    match m.name {
        "dcgan28" | "wgan-gp28" => (
            vec![
                l("G1", true, 100, 256, 7, 1, 0, 1, true, Relu),
                l("G2", true, 256, 128, 4, 2, 1, 7, true, Relu),
                l("G3", true, 128, nc, 4, 2, 1, 14, false, Tanh),
            ],
            vec![
                l("D1", false, nc, 64, 4, 2, 1, 28, false, LeakyRelu),
                l("D2", false, 64, 128, 4, 2, 1, 14, true, LeakyRelu),
                l("D3", false, 128, 1, 7, 1, 0, 7, false, None),
            ],
        ),
        _ => (
            vec![
                l("G1", true, 100, 512, 4, 1, 0, 1, true, Relu),
                l("G2", true, 512, 256, 4, 2, 1, 4, true, Relu),
                l("G3", true, 256, 128, 4, 2, 1, 8, true, Relu),
                l("G4", true, 128, 64, 4, 2, 1, 16, true, Relu),
                l("G5", true, 64, nc, 4, 2, 1, 32, false, Tanh),
            ],
            vec![
                l("D1", false, nc, 64, 4, 2, 1, 64, false, LeakyRelu),
                l("D2", false, 64, 128, 4, 2, 1, 32, true, LeakyRelu),
                l("D3", false, 128, 256, 4, 2, 1, 16, true, LeakyRelu),
                l("D4", false, 256, 512, 4, 2, 1, 8, true, LeakyRelu),
                l("D5", false, 512, 1, 4, 1, 0, 4, false, None),
            ],
        ),
    }
}

/// Forward multiply-adds of each layer of [`layers_of`]`(m)` at `m`'s batch, first layer
/// first: the generator's, then the discriminator's.
fn conv_macs(m: Model) -> (Vec<f64>, Vec<f64>) {
    let (g, d) = layers_of(m);
    let macs = |ls: Vec<Layer>| ls.iter().map(|l| l.macs(m.batch)).collect();
    (macs(g), macs(d))
}

/// Convolution FLOPs of one training step of `m` (2 per multiply-add), counting what PyTorch's
/// step computes; both sides' GFLOP/s divide this same count by their own time. See
/// [`dcgan_step_flops`], [`wgan_gp_step_macs`] and [`cyclegan_step_macs`].
fn step_flops(m: Model) -> f64 {
    match m.kind {
        StepKind::Dcgan => dcgan_step_flops(m),
        StepKind::WganGp => 2.0 * wgan_gp_step_macs(m),
        StepKind::CycleGan => 2.0 * cyclegan_step_macs(m.batch, 128, &CYCLEGAN128),
    }
}

/// Convolution FLOPs of one DCGAN step as `torch_dcgan.py` computes it:
/// - G forward once; D forward three times (real batch, detached fakes, fakes for G's loss);
/// - D's weight gradients in all three D backward passes (in G's step too: PyTorch computes them
///   and then does not apply them; our G step freezes D's parameters and skips them, about 5 %
///   of the count for dcgan28);
/// - D's input gradients: all layers but the first in the two D-step passes (the real batch and
///   the detached fakes need none), every layer in G's step (to reach G);
/// - G's backward: weight gradients of every layer, input gradients of all but the first (z
///   needs none).
///
/// BatchNorm, activations, losses and Adam are left out (under 1% of the total).
fn dcgan_step_flops(m: Model) -> f64 {
    let (g, d) = conv_macs(m);
    let (g_all, d_all): (f64, f64) = (g.iter().sum(), d.iter().sum());
    let (g_first, d_first) = (g[0], d[0]);
    let g_macs = g_all + g_all + (g_all - g_first);
    let d_macs = 3.0 * d_all + 3.0 * d_all + 2.0 * (d_all - d_first) + d_all;
    2.0 * (g_macs + d_macs)
}

/// Convolution multiply-adds of one WGAN-GP generator iteration as `torch_wgangp.py` computes
/// it, with g, c the generator's and the critic's forward multiply-adds (g₁, c₁ their first
/// layers', c₃ the critic's last's); an estimate for the second-order part:
/// - each critic update: G forward (no gradient); the critic forward on x̂, fakes and reals
///   (3c); ∇x̂ f(x̂) (input gradients of every layer, c; PyTorch computes no weight gradient
///   there); the backward of the fakes' and reals' scores (weight gradients 2c, input gradients
///   of all but the first layer 2(c − c₁)); the penalty's backward through the gradient's graph:
///   each transposed convolution of ∇x̂'s pass differentiated for its weight (c) and, below the
///   last layer, for its input (c − c₃), then through the layer norm back into the forward pass
///   on x̂ (weight and input gradients of the two layers below it, 2(c − c₃));
/// - the generator update: G forward and the critic forward (g + c), the critic's input
///   gradients (c; its weights are frozen), G's weight gradients (g) and input gradients (g − g₁).
///
/// Our step also computes the critic's weight gradients in the ∇x̂ pass (candle's backward
/// computes every variable's); that work is not counted.
fn wgan_gp_step_macs(m: Model) -> f64 {
    let (g, c) = conv_macs(m);
    let (g_all, c_all): (f64, f64) = (g.iter().sum(), c.iter().sum());
    let (g1, c1, c_last) = (g[0], c[0], c[c.len() - 1]);
    let critic_update = g_all + 10.0 * c_all - 2.0 * c1 - 3.0 * c_last;
    let generator_update = 3.0 * g_all + 2.0 * c_all - g1;
    WGAN_N_CRITIC as f64 * critic_update + generator_update
}

/// Forward multiply-adds of each convolution of CycleGAN's ResNet generator and of its PatchGAN
/// discriminator, first layer first, for a batch of `b` images of side `size` (a multiple of 4).
/// A transposed convolution's are counted on its input side, as [`Layer::macs`] does.
fn cyclegan_conv_macs(b: usize, size: usize, net: &CycleGanConfig) -> (Vec<f64>, Vec<f64>) {
    let conv =
        |h: usize, c_in: usize, c_out: usize, k: usize| (b * h * h * c_in * c_out * k * k) as f64;
    let (c, f) = (net.channels, net.ngf);
    let (s2, s4) = (size / 2, size / 4);
    let mut g = vec![
        conv(size, c, f, 7),   // reflection pad 3, 7×7
        conv(s2, f, 2 * f, 3), // 3×3 stride 2
        conv(s4, 2 * f, 4 * f, 3),
    ];
    g.extend(std::iter::repeat_n(
        conv(s4, 4 * f, 4 * f, 3),
        2 * net.n_blocks,
    ));
    g.extend([
        conv(s4, 4 * f, 2 * f, 3), // transposed, stride 2, from s/4
        conv(s2, 2 * f, f, 3),     // transposed, stride 2, from s/2
        conv(size, f, c, 7),       // reflection pad 3, 7×7
    ]);
    let width = |i: usize| net.ndf * (1usize << i.min(3));
    let mut h = size / 2; // 4×4 stride 2 padding 1
    let mut d = vec![conv(h, c, net.ndf, 4)];
    for i in 1..=net.n_layers {
        // Stride 2 halves the side; the last one, stride 1 with padding 1, takes one off.
        h = if i < net.n_layers { h / 2 } else { h - 1 };
        d.push(conv(h, width(i - 1), width(i), 4));
    }
    d.push(conv(h - 1, width(net.n_layers), 1, 4));
    (g, d)
}

/// Convolution multiply-adds of one CycleGAN step as `torch_cyclegan.py` computes it, with G and
/// D one generator's and one discriminator's forward multiply-adds (G₁, D₁ their first
/// layers'):
/// - generators: six forward passes (G(a), F(G(a)), F(b), G(F(b)), G(b), F(a)): 6G; their
///   weight gradients, 6G; their input gradients, 6G − 4G₁ (the four passes on real images need
///   none at their first layer); the discriminators on the two fakes, 2D, and their input
///   gradients, 2D (their weights are frozen);
/// - discriminators: each on its real and its detached fake batch, 4D; weight gradients, 4D;
///   input gradients of all but the first layer, 4(D − D₁).
///
/// Reflection padding, instance norm, activations, losses and Adam are left out.
fn cyclegan_step_macs(b: usize, size: usize, net: &CycleGanConfig) -> f64 {
    let (g, d) = cyclegan_conv_macs(b, size, net);
    let (g_all, d_all): (f64, f64) = (g.iter().sum(), d.iter().sum());
    let generators = 18.0 * g_all - 4.0 * g[0] + 4.0 * d_all;
    let discriminators = 12.0 * d_all - 4.0 * d[0];
    generators + discriminators
}

/// The command line of one measurement, as a child process.
fn worker_command(args: &BenchArgs, m: Model, candle: bool) -> Command {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = Command::new(exe);
    cmd.arg("bench")
        .arg("--worker")
        .args(["--models", m.name])
        .args(["--batch28", &m.batch.to_string()])
        .args(["--batch64", &m.batch.to_string()])
        .args(["--batch-wgan", &m.batch.to_string()])
        .args(["--batch-cyclegan", &m.batch.to_string()])
        .args([
            "--steps",
            &args.steps.to_string(),
            "--warmup",
            &args.warmup.to_string(),
        ])
        .env("RAYON_NUM_THREADS", args.threads.to_string())
        .env(REEXEC_ENV, "1");
    if !candle && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // As gan-cli does: candle's spin-waiting element-wise pool on one thread, since our
        // kernels use rayon. The plain-candle side keeps candle's default (all cores).
        cmd.env("CANDLE_NUM_THREADS", "1");
    }
    if candle {
        cmd.arg("--candle-conv");
    }
    if args.default_malloc {
        cmd.arg("--default-malloc");
    }
    if args.layers {
        cmd.arg("--layers");
    }
    cmd
}

/// The worker command of the class-conditional step of `mode` on `m`'s networks.
fn cgan_command(args: &BenchArgs, m: Model, mode: &str) -> Command {
    let mut cmd = worker_command(args, m, false);
    cmd.args(["--cond", mode]);
    cmd
}

/// The arguments of `m`'s PyTorch script after the script's path: its networks, batch, step
/// and `--steps` and `--threads`.
fn torch_args(args: &BenchArgs, m: Model) -> Vec<String> {
    let batch = m.batch.to_string();
    let mut a: Vec<String> = match m.kind {
        StepKind::Dcgan => vec![
            "--model".into(),
            m.name.into(),
            "--batch".into(),
            batch,
            "--channels".into(),
            m.channels.to_string(),
        ],
        StepKind::WganGp => vec![
            "--batch".into(),
            batch,
            "--width".into(),
            DcganConfig::dcgan28().ndf.to_string(),
            "--n-critic".into(),
            WGAN_N_CRITIC.to_string(),
        ],
        StepKind::CycleGan => {
            let n = CYCLEGAN128;
            [
                ("--size", 128),
                ("--channels", n.channels),
                ("--ngf", n.ngf),
                ("--ndf", n.ndf),
                ("--n-blocks", n.n_blocks),
                ("--n-layers", n.n_layers),
                ("--batch", m.batch),
            ]
            .into_iter()
            .flat_map(|(k, v)| [k.to_string(), v.to_string()])
            .collect()
        }
    };
    a.extend([
        "--steps".into(),
        args.steps.to_string(),
        "--threads".into(),
        args.threads.to_string(),
    ]);
    a
}

fn torch_command(args: &BenchArgs, python: &std::path::Path, m: Model) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(args.torch_script(m))
        .args(torch_args(args, m))
        .env("OMP_NUM_THREADS", args.threads.to_string());
    cmd
}

/// What a child printed, and its peak resident memory.
struct ChildRun {
    stdout: String,
    max_rss_kib: u64,
}

/// Runs `cmd` to the end; its peak resident set comes from `wait4`, which reports the rusage of
/// that one child (`RUSAGE_CHILDREN` would give the maximum over all children so far).
fn run_child(cmd: &Command) -> anyhow::Result<ChildRun> {
    let mut cmd = clone_command(cmd);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .context("child stdout")?
        .read_to_string(&mut stdout)?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for (std's `Child` only waits when asked), and
    // both pointers are to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{:?} failed (wait status {status})", cmd.get_program());
    }
    Ok(ChildRun {
        stdout,
        max_rss_kib: usage.ru_maxrss as u64,
    })
}

fn clone_command(cmd: &Command) -> Command {
    let mut c = Command::new(cmd.get_program());
    c.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// The last line of `out` that parses as a JSON object.
fn last_json(out: &str) -> anyhow::Result<Value> {
    out.lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l.trim())
                .ok()
                .filter(Value::is_object)
        })
        .with_context(|| format!("no JSON line in output: {out}"))
}

/// One side of the comparison.
struct Side {
    label: String,
    cmd: Command,
    medians_ms: Vec<f64>,
    peak_rss_mib: Vec<f64>,
    last: Option<Value>,
}

fn compare(args: &BenchArgs) -> anyhow::Result<()> {
    let models = args.models()?;
    if let Some(py) = &args.torch {
        for m in &models {
            let script = args.torch_script(*m);
            if !script.is_file() {
                bail!(
                    "no PyTorch script for {} at {} (--torch-dir, --torch-script)",
                    m.name,
                    script.display()
                );
            }
        }
        eprintln!("xtask bench: torch from {}", py.display());
    }
    let mut lines = Vec::new();
    let mut rows = Vec::new();
    let mut cgan_rows = Vec::new();
    for m in models {
        let mut sides = vec![Side::new(
            "gan-rs (gan-core conv)",
            worker_command(args, m, false),
        )];
        if !args.no_candle_conv {
            sides.push(Side::new(
                "gan-rs (candle conv)",
                worker_command(args, m, true),
            ));
        }
        if let Some(py) = &args.torch {
            sides.push(Side::new("torch", torch_command(args, py, m)));
        }
        if m.name == "dcgan28" && args.tuned {
            let mut cmd = worker_command(args, m, false);
            cmd.arg("--tuned-worker");
            sides.push(Side::new("gan-rs dcgan tuned", cmd));
        }
        if m.name == "dcgan28" {
            for mode in &args.cgan {
                sides.push(Side::new(
                    format!("gan-rs cgan {mode}"),
                    cgan_command(args, m, mode),
                ));
            }
        }
        for round in 0..args.rounds {
            for side in &mut sides {
                let out = run_child(&side.cmd)?;
                let v = last_json(&out.stdout)?;
                let ms = v["median_step_ms"].as_f64().context("median_step_ms")?;
                let rss = out.max_rss_kib as f64 / 1024.0;
                eprintln!(
                    "  {} b{} round {}: {:<24} {ms:8.1} ms  peak RSS {rss:7.1} MiB",
                    m.name,
                    m.batch,
                    round + 1,
                    side.label
                );
                side.medians_ms.push(ms);
                side.peak_rss_mib.push(rss);
                side.last = Some(v);
            }
        }
        let beside_dcgan =
            |s: &&Side| s.label.starts_with("gan-rs cgan") || s.label.ends_with("tuned");
        for side in sides.iter().filter(beside_dcgan) {
            let r = median_round_ratio(&side.medians_ms, &sides[0].medians_ms);
            cgan_rows.push(format!(
                "{} b{}: {} / gan-rs DCGAN step, median of per-round ratios: {r:.3}",
                m.name, m.batch, side.label
            ));
        }
        let flops = step_flops(m);
        let torch = sides
            .iter_mut()
            .find(|s| s.label == "torch")
            .map(|s| (s.median(), s.best()));
        // Each round's ratio to PyTorch's round right after it: the pairs ran within seconds
        // of each other, so the machine's slow drifts cancel in them.
        let torch_rounds = sides
            .iter()
            .find(|s| s.label == "torch")
            .map(|s| s.medians_ms.clone());
        for side in &mut sides {
            let ms = side.median();
            let best = side.best();
            let best_ratio = torch.map(|t| best / t.1);
            let peak = side.peak_rss_mib.iter().copied().fold(0.0, f64::max);
            let ratio = torch.map(|t| ms / t.0);
            let round_ratio = torch_rounds
                .as_ref()
                .map(|t| median_round_ratio(&side.medians_ms, t));
            rows.push(format!(
                "{:<11} {:>5} {:<24} {:>10.1} {:>9.1} {:>9} {:>10} {:>10} {:>10} {:>8.1} {:>8.1} {:>10.1}",
                m.name,
                m.batch,
                side.label,
                ms,
                best,
                fmt_rate(m.images_per_step() as f64 / (ms * 1e-3)),
                ratio.map_or("-".into(), |r| format!("{r:.2}")),
                round_ratio.map_or("-".into(), |r| format!("{r:.2}")),
                best_ratio.map_or("-".into(), |r| format!("{r:.2}")),
                flops / (ms * 1e-3) / 1e9,
                flops / (best * 1e-3) / 1e9,
                peak,
            ));
            let mut v = side.last.take().unwrap_or_else(|| json!({}));
            let obj = v.as_object_mut().context("JSON object")?;
            obj.remove("steps_ms");
            obj.insert("model".into(), json!(m.name));
            obj.insert("batch".into(), json!(m.batch));
            obj.insert("images_per_step".into(), json!(m.images_per_step()));
            obj.insert("median_step_ms".into(), json!(round2(ms)));
            obj.insert(
                "images_per_s".into(),
                json!(round_rate(m.images_per_step() as f64 / (ms * 1e-3))),
            );
            obj.insert("round_medians_ms".into(), json!(side.medians_ms));
            obj.insert("peak_rss_mib".into(), json!(round1(peak)));
            obj.insert("step_gflop".into(), json!(round2(flops / 1e9)));
            obj.insert(
                "gflop_per_s".into(),
                json!(round1(flops / (ms * 1e-3) / 1e9)),
            );
            obj.insert("best_round_ms".into(), json!(round2(best)));
            obj.insert(
                "best_gflop_per_s".into(),
                json!(round1(flops / (best * 1e-3) / 1e9)),
            );
            if let Some(r) = round_ratio {
                obj.insert(
                    "median_round_ratio_to_torch".into(),
                    json!((r * 1000.0).round() / 1000.0),
                );
            }
            if let (Some(r), Some(rb)) = (ratio, best_ratio) {
                obj.insert(
                    "ratio_to_torch".into(),
                    json!((r * 1000.0).round() / 1000.0),
                );
                obj.insert(
                    "best_ratio_to_torch".into(),
                    json!((rb * 1000.0).round() / 1000.0),
                );
            }
            lines.push(v.to_string());
        }
    }
    println!(
        "{:<11} {:>5} {:<24} {:>10} {:>9} {:>9} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10}",
        "model",
        "batch",
        "side",
        "median ms",
        "best ms",
        "images/s",
        "vs torch",
        "per round",
        "best vs",
        "GFLOP/s",
        "best GF/s",
        "peak MiB"
    );
    // "best": the fastest round of each side, i.e. the least disturbed by other load; PyTorch's
    // OpenMP threads spin-wait and slow down far more than ours when the cores are shared.
    for r in rows {
        println!("{r}");
    }
    for r in cgan_rows {
        println!("{r}");
    }
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

impl Side {
    fn new(label: impl Into<String>, cmd: Command) -> Self {
        Self {
            label: label.into(),
            cmd,
            medians_ms: Vec::new(),
            peak_rss_mib: Vec::new(),
            last: None,
        }
    }

    fn median(&mut self) -> f64 {
        let mut v = self.medians_ms.clone();
        median(&mut v)
    }

    fn best(&self) -> f64 {
        self.medians_ms
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }
}

/// Times each layer alone: convolution, BatchNorm and activation forward, then the backward
/// pass of `sum(y · r)` for a fixed random `r`, with our convolutions and with candle's. The
/// input needs a gradient for every layer but the first of each network, as in G's step.
fn layers(args: &BenchArgs, m: Model) -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (g, d) = layers_of(m);
    let reps = args.steps.max(3);
    println!(
        "{} batch {}: median of {reps} runs, ms (forward / backward), {} threads",
        m.name,
        m.batch,
        rayon::current_num_threads()
    );
    println!(
        "{:<5} {:<34} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "layer", "shape", "fwd ours", "bwd ours", "fwd cndl", "bwd cndl", "GFLOP"
    );
    let mut rng = SeededRng::new(7);
    let mut totals = [0.0f64; 4];
    for (i, l) in g.iter().chain(&d).enumerate() {
        let first = i == 0 || i == g.len();
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
        let p = ConvParams::new(l.s, l.p);
        let (conv2d, convt) = if l.transposed {
            let c = ConvTranspose2d::new(l.c_in, l.c_out, l.k, p, false, vb.pp("conv"))?;
            (None, Some(c))
        } else {
            let c = Conv2d::new(l.c_in, l.c_out, l.k, p, false, vb.pp("conv"))?;
            (Some(c), None)
        };
        let conv = match (&conv2d, &convt) {
            (Some(c), _) => ConvLayer::Conv2d(c),
            (_, Some(c)) => ConvLayer::ConvTranspose2d(c),
            _ => unreachable!("one of the two is built"),
        };
        let act = match l.act {
            Act::Relu => Activation::Relu,
            Act::LeakyRelu => Activation::LeakyRelu(0.2),
            _ => Activation::Identity,
        };
        let bn = if l.bn {
            Some(BatchNorm2d::new(l.c_out, vb.pp("bn"))?.with_activation(act))
        } else {
            None
        };
        let x = rng.randn((m.batch, l.c_in, l.h_in, l.h_in), 0.0, 1.0, &dev)?;
        let x = if first {
            x
        } else {
            Var::from_tensor(&x)?.as_tensor().clone()
        };
        let ho = l.h_out();
        let r = rng.randn((m.batch, l.c_out, ho, ho), 0.0, 1.0, &dev)?;
        // As the DCGAN nets run them: BatchNorm folded into the convolution's op, and the
        // first discriminator layer's LeakyReLU too (on the fast path).
        let forward = || -> candle_core::Result<Tensor> {
            match (&bn, l.act, &conv2d) {
                (Some(bn), _, _) => bn.forward_conv(conv, &x, true),
                (None, Act::LeakyRelu, Some(c)) => c.forward_leaky_relu(&x, 0.2),
                (None, Act::LeakyRelu, None) => leaky_relu(&conv.forward(&x)?, 0.2),
                (None, Act::Relu, _) => conv.forward(&x)?.relu(),
                (None, Act::Tanh, _) => conv.forward(&x)?.tanh(),
                (None, Act::None, _) => conv.forward(&x),
            }
        };
        let mut cols = [0.0; 4];
        for (j, fast) in [true, false].into_iter().enumerate() {
            set_fast_conv(fast);
            let (mut tf, mut tb) = (Vec::new(), Vec::new());
            for _ in 0..reps + 1 {
                let t0 = Instant::now();
                let y = forward()?;
                let t1 = Instant::now();
                let grads = (y * &r)?.sum_all()?.backward()?;
                let t2 = Instant::now();
                drop(grads);
                tf.push((t1 - t0).as_secs_f64() * 1e3);
                tb.push((t2 - t1).as_secs_f64() * 1e3);
            }
            cols[2 * j] = median(&mut tf[1..]);
            cols[2 * j + 1] = median(&mut tb[1..]);
        }
        for (t, c) in totals.iter_mut().zip(cols) {
            *t += c;
        }
        let grads = if first { 2.0 } else { 3.0 };
        let shape = format!(
            "{}{}->{} k{}s{} {}->{}",
            if l.transposed { "convT " } else { "conv " },
            l.c_in,
            l.c_out,
            l.k,
            l.s,
            l.h_in,
            ho
        );
        println!(
            "{:<5} {:<34} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8.2}",
            l.name,
            shape,
            cols[0],
            cols[1],
            cols[2],
            cols[3],
            grads * 2.0 * l.macs(m.batch) / 1e9
        );
    }
    println!(
        "{:<5} {:<34} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        "sum", "", totals[0], totals[1], totals[2], totals[3]
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_ratios_pair_rounds_by_index() {
        // Round ratios 0.8, 0.7 and 0.8: their median is 0.8, while the ratio of the two
        // medians (210 / 300) is 0.7.
        let ours = [200.0, 210.0, 400.0];
        let torch = [250.0, 300.0, 500.0];
        assert_eq!(median_round_ratio(&ours, &torch), 0.8);
        assert!(median_round_ratio(&[], &[]).is_nan());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> BenchArgs {
        use clap::Parser;
        Cli::parse_from(std::iter::once("bench").chain(args.iter().copied())).bench
    }

    fn model(args: &BenchArgs, name: &str) -> Model {
        *args
            .models()
            .unwrap()
            .iter()
            .find(|m| m.name == name)
            .unwrap()
    }

    #[test]
    fn models_take_their_own_batch() {
        let args = parse(&[
            "--models",
            "dcgan28,wgan-gp28,cyclegan128",
            "--batch28",
            "32",
            "--batch-wgan",
            "16",
        ]);
        let ms = args.models().unwrap();
        let got: Vec<_> = ms.iter().map(|m| (m.name, m.batch, m.channels)).collect();
        assert_eq!(
            got,
            [
                ("dcgan28", 32, 1),
                ("wgan-gp28", 16, 1),
                ("cyclegan128", 1, 3)
            ]
        );
        assert_eq!(ms[1].images_per_step(), 16 * 5);
        assert_eq!(ms[2].images_per_step(), 1);
        assert!(parse(&["--models", "cyclegan256"]).models().is_err());
        assert!(parse(&["--models", "wgan-gp28", "--batch-wgan", "0"])
            .models()
            .is_err());
    }

    #[test]
    fn torch_commands_name_each_scripts_flags() {
        let args = parse(&[
            "--models",
            "dcgan64,wgan-gp28,cyclegan128",
            "--steps",
            "4",
            "--threads",
            "3",
            "--torch-dir",
            "/t",
        ]);
        let wgan = model(&args, "wgan-gp28");
        assert_eq!(args.torch_script(wgan), PathBuf::from("/t/torch_wgangp.py"));
        assert_eq!(
            torch_args(&args, wgan).join(" "),
            "--batch 64 --width 64 --n-critic 5 --steps 4 --threads 3"
        );
        let cycle = model(&args, "cyclegan128");
        assert_eq!(
            args.torch_script(cycle),
            PathBuf::from("/t/torch_cyclegan.py")
        );
        assert_eq!(
            torch_args(&args, cycle).join(" "),
            "--size 128 --channels 3 --ngf 64 --ndf 64 --n-blocks 6 --n-layers 3 --batch 1 \
             --steps 4 --threads 3"
        );
        let dcgan = model(&args, "dcgan64");
        assert_eq!(args.torch_script(dcgan), PathBuf::from("/t/torch_dcgan.py"));
        assert_eq!(
            torch_args(&args, dcgan).join(" "),
            "--model dcgan64 --batch 16 --channels 3 --steps 4 --threads 3"
        );
        // --torch-script still names the DCGAN script alone.
        let args = parse(&["--torch-script", "/x/d.py", "--models", "dcgan28,wgan-gp28"]);
        assert_eq!(
            args.torch_script(model(&args, "dcgan28")),
            PathBuf::from("/x/d.py")
        );
        assert!(args
            .torch_script(model(&args, "wgan-gp28"))
            .ends_with("bench/torch_wgangp.py"));
    }

    #[test]
    fn cyclegan_convolutions_have_the_reference_shapes() {
        let (g, d) = cyclegan_conv_macs(1, 128, &CYCLEGAN128);
        // 3 + 2 per block + 3 convolutions; the 70×70 PatchGAN's 5.
        assert_eq!((g.len(), d.len()), (3 + 12 + 3, 5));
        let k = |h: usize, ci: usize, co: usize, k: usize| (h * h * ci * co * k * k) as f64;
        assert_eq!(g[0], k(128, 3, 64, 7));
        assert_eq!(g[3], k(32, 256, 256, 3));
        assert_eq!(g[15], k(32, 256, 128, 3));
        assert_eq!(g[17], k(128, 64, 3, 7));
        // 128 → 64 → 32 → 16 → 15 → 14 pixels.
        assert_eq!(
            d,
            [
                k(64, 3, 64, 4),
                k(32, 64, 128, 4),
                k(16, 128, 256, 4),
                k(15, 256, 512, 4),
                k(14, 512, 1, 4),
            ]
        );
        let (g_all, d_all): (f64, f64) = (g.iter().sum(), d.iter().sum());
        let want = 18.0 * g_all - 4.0 * g[0] + 16.0 * d_all - 4.0 * d[0];
        assert_eq!(cyclegan_step_macs(1, 128, &CYCLEGAN128), want);
        // Twice the batch, twice the work.
        assert_eq!(cyclegan_step_macs(2, 128, &CYCLEGAN128), 2.0 * want);
    }

    #[test]
    fn wgan_gp_counts_dcgan28_convolutions() {
        let args = parse(&["--models", "wgan-gp28,dcgan28"]);
        let (w, d) = (model(&args, "wgan-gp28"), model(&args, "dcgan28"));
        let (gw, cw) = layers_of(w);
        let (gd, dd) = layers_of(d);
        let shapes = |ls: &[Layer]| ls.iter().map(|l| l.macs(64)).collect::<Vec<_>>();
        assert_eq!((shapes(&gw), shapes(&cw)), (shapes(&gd), shapes(&dd)));
        // By hand, per image: g = 1,254,400 + 25,690,112 + 401,408 and c = 200,704 + 6,422,528 +
        // 6,272; then 5 (g + 10c − 2c₁ − 3c₃) + 3g + 2c − g₁, times 64.
        assert_eq!(wgan_gp_step_macs(w), 35_849_347_072.0);
        assert!(step_flops(w) > 0.0 && step_flops(d) > 0.0);
    }
}
