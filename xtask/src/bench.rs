//! `cargo xtask bench`: times one DCGAN training step (`GanTrainer::train_step`) with our CPU
//! convolutions and with candle's, and PyTorch's step from `xtask/bench/torch_dcgan.py` when
//! `--torch PYTHON` is given, side by side in one invocation.
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
//! convolutions and with candle's.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use gan_core::batchnorm::{leaky_relu, Activation, BatchNorm2d};
use gan_core::conv::{set_fast_conv, Conv2d, ConvLayer, ConvParams, ConvTranspose2d};
use gan_core::rng::SeededRng;
use gan_models::cgan_run::CganRunConfig;
use gan_models::dcgan::DcganConfig;
use gan_models::dcgan_run::{build_trainer, DataConfig, DcganRunConfig};
use gan_models::engine::StepRecord;
use serde_json::{json, Value};

/// Set in the environment of the release re-run, so that it does not re-run itself again.
const REEXEC_ENV: &str = "GAN_BENCH_RELEASE";

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Models to time, comma-separated: `dcgan28` (batch `--batch28`) and `dcgan64` (batch
    /// `--batch64`, 3 channels).
    #[arg(long, default_value = "dcgan28,dcgan64", value_delimiter = ',')]
    models: Vec<String>,
    /// Batch size of dcgan28.
    #[arg(long, default_value_t = 64)]
    batch28: usize,
    /// Batch size of dcgan64.
    #[arg(long, default_value_t = 16)]
    batch64: usize,
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
    /// A Python with torch installed: also time `torch_dcgan.py`.
    #[arg(long)]
    torch: Option<std::path::PathBuf>,
    /// The PyTorch script (default: `xtask/bench/torch_dcgan.py`, in this repository).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/torch_dcgan.py"))]
    torch_script: std::path::PathBuf,
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

/// One configuration: a model and its batch.
#[derive(Clone, Copy, Debug)]
struct Model {
    name: &'static str,
    batch: usize,
    channels: usize,
}

impl BenchArgs {
    fn models(&self) -> anyhow::Result<Vec<Model>> {
        self.models
            .iter()
            .map(|m| match m.as_str() {
                "dcgan28" => Ok(Model {
                    name: "dcgan28",
                    batch: self.batch28,
                    channels: 1,
                }),
                "dcgan64" => Ok(Model {
                    name: "dcgan64",
                    batch: self.batch64,
                    channels: 3,
                }),
                m => bail!("unknown model {m:?} (expected dcgan28 or dcgan64)"),
            })
            .collect()
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
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

/// One side's timed loop: prints one JSON line.
fn worker(args: &BenchArgs, m: Model) -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let fast = !args.candle_conv;
    let data = DataConfig {
        source: "bench".into(),
        path: ".".into(),
        items: 0,
        max_items: None,
    };
    let mut cfg = if args.tuned_worker {
        DcganRunConfig::tuned(data, m.channels)
    } else {
        DcganRunConfig::new(data, m.channels)
    };
    cfg.dcgan = dcgan_config(m);
    cfg.batch_size = m.batch;
    cfg.fast_conv = fast;
    let side = cfg.dcgan.image_size;
    let real =
        SeededRng::with_stream(0, 100).rand((m.batch, m.channels, side, side), -1.0, 1.0, &dev)?;
    let mut step: Box<dyn FnMut() -> anyhow::Result<bool>> = match &args.cond {
        None => {
            let mut trainer = build_trainer(&cfg, &dev)?;
            Box::new(move || Ok(trainer.step_on(&real, 0)?.is_finite()))
        }
        Some(mode) => {
            let cond = serde_json::from_value(json!(mode))
                .with_context(|| format!("unknown --cgan mode {mode:?}"))?;
            let classes: Vec<String> = (0..10).map(|c| c.to_string()).collect();
            let cgan = CganRunConfig::new(cfg.clone(), cond, classes);
            let mut trainer = gan_models::cgan_run::build_trainer(&cgan, &dev)?;
            let labels: Vec<u32> = (0..m.batch as u32).map(|i| i % 10).collect();
            let labels = Tensor::from_vec(labels, m.batch, &dev)?;
            Box::new(move || Ok(trainer.step_on(&real, &labels, 0)?.base.is_finite()))
        }
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
        "images_per_s": round1(m.batch as f64 / med),
        "steps_ms": times.iter().map(|t| round2(t * 1e3)).collect::<Vec<_>>(),
        "rss_before_steps_mib": rss_before_kib.map(|k| round1(k as f64 / 1024.0)),
        "peak_rss_mib": vm_kib("VmHWM:").map(|k| round1(k as f64 / 1024.0)),
    });
    println!("{out}");
    Ok(())
}

fn dcgan_config(m: Model) -> DcganConfig {
    match m.name {
        "dcgan28" => DcganConfig {
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

/// The layers of `torch_dcgan.py`'s networks: the generator's, then the discriminator's.
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
        "dcgan28" => (
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

/// Convolution FLOPs of one training step (2 per multiply-add), counting what PyTorch's step
/// computes; both sides' GFLOP/s divide this same count by their own time:
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
fn step_flops(m: Model) -> f64 {
    let (g, d) = layers_of(m);
    let b = m.batch;
    let sum = |ls: &[Layer]| ls.iter().map(|l| l.macs(b)).sum::<f64>();
    let (g_all, d_all) = (sum(&g), sum(&d));
    let (g_first, d_first) = (g[0].macs(b), d[0].macs(b));
    let g_macs = g_all + g_all + (g_all - g_first);
    let d_macs = 3.0 * d_all + 3.0 * d_all + 2.0 * (d_all - d_first) + d_all;
    2.0 * (g_macs + d_macs)
}

/// The command line of one measurement, as a child process.
fn worker_command(args: &BenchArgs, m: Model, candle: bool) -> Command {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = Command::new(exe);
    cmd.arg("bench")
        .arg("--worker")
        .args(["--models", m.name])
        .args([
            "--batch28",
            &m.batch.to_string(),
            "--batch64",
            &m.batch.to_string(),
        ])
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

fn torch_command(args: &BenchArgs, python: &std::path::Path, m: Model) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(&args.torch_script)
        .args(["--model", m.name, "--batch", &m.batch.to_string()])
        .args(["--channels", &m.channels.to_string()])
        .args([
            "--threads",
            &args.threads.to_string(),
            "--steps",
            &args.steps.to_string(),
        ])
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
    if let Some(py) = &args.torch {
        if !args.torch_script.is_file() {
            bail!(
                "no PyTorch script at {} (--torch-script)",
                args.torch_script.display()
            );
        }
        eprintln!("xtask bench: torch from {}", py.display());
    }
    let mut lines = Vec::new();
    let mut rows = Vec::new();
    let mut cgan_rows = Vec::new();
    for m in args.models()? {
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
                "{:<8} {:>5} {:<24} {:>10.1} {:>9.1} {:>9.1} {:>10} {:>10} {:>10} {:>8.1} {:>8.1} {:>10.1}",
                m.name,
                m.batch,
                side.label,
                ms,
                best,
                m.batch as f64 / (ms * 1e-3),
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
            obj.insert("median_step_ms".into(), json!(round2(ms)));
            obj.insert(
                "images_per_s".into(),
                json!(round1(m.batch as f64 / (ms * 1e-3))),
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
        "{:<8} {:>5} {:<24} {:>10} {:>9} {:>9} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10}",
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
}
