//! `cargo xtask gpu-check`: what the CUDA build of `gan-cli` does on a GPU, in one JSON file.
//!
//! The GPU machines have no Rust toolchain, so this task runs there as a built binary
//! (`target/release/xtask gpu-check`, carried with `target/cuda/release/gan-cli` from
//! `cargo xtask build-cuda`), from the repository's root. It drives `gan-cli` and the PyTorch
//! scripts in `xtask/bench/` as child processes:
//!
//! 1. **Parity.** For each model, `gan-cli train` runs `--parity-steps` steps from the same seed
//!    on the CPU and on the device. Both start from the same weights (the initialisation is
//!    drawn on the CPU from the seed and copied to the device) and see the same batches. The
//!    losses of every step (`metrics.jsonl`) must agree within `--loss-tol` (relative, against
//!    max(1, |loss|)), and every network's weights in the last checkpoint within `--weight-tol`
//!    (‖w_device − w_cpu‖₂ / ‖w_cpu‖₂ per file).
//! 2. **Speed.** In each of `--rounds` rounds, ours then PyTorch's: our step time is the
//!    difference between a run of 5 + `--time-steps` steps and one of 5 steps, divided by
//!    `--time-steps` (start-up, kernel loading, grids and checkpoints cancel out; data loading
//!    and the host-to-device copies of the batches stay in); PyTorch's is the script's
//!    median step on data already on the device. The ratio is ours / PyTorch's per round, and
//!    its median is reported.
//! 3. **Training.** `train dcgan` on mnist-mini for `--train-steps` steps on the device: images
//!    per second, then `eval --count 1000` on the project's evaluator: FID.
//!
//! Models: `dcgan28` (mnist-mini, batch 64), `dcgan64` (synthetic RGB images, batch 128),
//! `wgan-gp28` (mnist-mini, batch 64; one step is 5 critic updates and one generator update)
//! and `cyclegan256` (synthetic unpaired RGB images, batch 1, 9 residual blocks).
//! `--device cpu` runs the whole check with the CPU in the GPU's place: a dry run here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// Flags of `cargo xtask gpu-check`.
#[derive(clap::Args, Debug)]
pub struct GpuCheckArgs {
    /// The CUDA build of gan-cli (`cargo xtask build-cuda`).
    #[arg(long, default_value = "target/cuda/release/gan-cli")]
    gan_cli: PathBuf,
    /// The device compared with the CPU (`cpu`: a dry run without a GPU).
    #[arg(long, default_value = "cuda")]
    device: String,
    /// A Python with torch for the PyTorch side of the timings (`none`: no PyTorch timings).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Models, comma-separated: dcgan28, dcgan64, wgan-gp28, cyclegan256.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "dcgan28,dcgan64,wgan-gp28,cyclegan256"
    )]
    models: Vec<String>,
    /// Steps of the CPU-against-device comparison.
    #[arg(long, default_value_t = 10)]
    parity_steps: u64,
    /// Timed steps per round of our side (after 5 that are subtracted) and PyTorch's.
    #[arg(long, default_value_t = 30)]
    time_steps: u64,
    /// Rounds of the timing (ours, then PyTorch's, in each).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Steps of the mnist-mini training whose speed and FID are reported (0: skip it).
    #[arg(long, default_value_t = 1000)]
    train_steps: u64,
    /// Largest relative difference of a loss between CPU and device, |a − b| / max(1, |a|).
    #[arg(long, default_value_t = 1e-2)]
    loss_tol: f64,
    /// Largest ‖w_device − w_cpu‖₂ / ‖w_cpu‖₂ of a network's weights after the parity steps.
    #[arg(long, default_value_t = 1e-3)]
    weight_tol: f64,
    /// Folder for the runs and the synthetic data (emptied first).
    #[arg(long, default_value = "target/gpu-check")]
    work: PathBuf,
    /// The JSON results (default: results.json in --work).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One model of the check: how `gan-cli` trains it and how PyTorch times it.
struct Model {
    name: &'static str,
    train: Vec<String>,
    torch: Vec<String>,
    /// Images per step, for images per second.
    images: f64,
}

pub fn run(args: GpuCheckArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let _ = std::fs::remove_dir_all(&args.work);
    std::fs::create_dir_all(&args.work)
        .with_context(|| format!("cannot create {}", args.work.display()))?;
    let gan_cli = std::fs::canonicalize(&args.gan_cli).with_context(|| {
        format!(
            "no gan-cli at {} (build it with cargo xtask build-cuda)",
            args.gan_cli.display()
        )
    })?;
    let env = library_path(&args.python);
    let mut results = BTreeMap::new();
    let mut failures = Vec::new();
    for name in &args.models {
        let m = model(name, &args.work)?;
        eprintln!("gpu-check: {name}: parity over {} steps", args.parity_steps);
        let parity = parity(&args, &gan_cli, &env, &m)?;
        if parity["pass"] != json!(true) {
            failures.push(format!("{name}: CPU and {} disagree", args.device));
        }
        eprintln!("gpu-check: {name}: {}", parity);
        eprintln!("gpu-check: {name}: timing, {} rounds", args.rounds);
        let speed = timing(&args, &gan_cli, &env, &m)?;
        eprintln!("gpu-check: {name}: {}", speed);
        results.insert(
            name.clone(),
            json!({ "parity": parity, "speed": speed, "args": m.train }),
        );
    }
    let training = if args.train_steps > 0 {
        eprintln!(
            "gpu-check: train dcgan on mnist-mini, {} steps",
            args.train_steps
        );
        train_and_eval(&args, &gan_cli, &env)?
    } else {
        Value::Null
    };
    let report = json!({
        "device": args.device,
        "gan_cli": gan_cli,
        "nvidia_smi": nvidia_smi(),
        "tolerance": { "loss_rel": args.loss_tol, "weight_rel": args.weight_tol },
        "models": results,
        "train_dcgan": training,
        "failures": failures,
        "seconds": start.elapsed().as_secs_f64(),
    });
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.work.join("results.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!("wrote {}", out.display());
    if !failures.is_empty() {
        bail!("gpu-check: {}", failures.join("; "));
    }
    Ok(())
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

fn model(name: &str, work: &Path) -> anyhow::Result<Model> {
    Ok(match name {
        "dcgan28" => Model {
            name: "dcgan28",
            train: strings(&["dcgan", "--classic", "--batch-size", "64"]),
            torch: strings(&[
                "xtask/bench/torch_dcgan.py",
                "--model",
                "dcgan28",
                "--batch",
                "64",
                "--channels",
                "1",
            ]),
            images: 64.0,
        },
        "dcgan64" => {
            let data = work.join("rgb64");
            write_images(&data, 256, 64, 0)?;
            let mut train = strings(&["dcgan", "--classic", "--data"]);
            train.push(data.display().to_string());
            train.extend(strings(&[
                "--image-size",
                "64",
                "--channels",
                "3",
                "--batch-size",
                "128",
            ]));
            Model {
                name: "dcgan64",
                train,
                torch: strings(&[
                    "xtask/bench/torch_dcgan.py",
                    "--model",
                    "dcgan64",
                    "--batch",
                    "128",
                    "--channels",
                    "3",
                ]),
                images: 128.0,
            }
        }
        "wgan-gp28" => Model {
            name: "wgan-gp28",
            train: strings(&["wgan-gp", "--batch-size", "64"]),
            torch: strings(&["xtask/bench/torch_wgangp.py", "--batch", "64"]),
            images: 64.0 * 5.0,
        },
        "cyclegan256" => {
            let data = work.join("unpaired256");
            for (i, side) in ["trainA", "trainB", "testA", "testB"].iter().enumerate() {
                write_images(&data.join(side), 4, 256, i as u64)?;
            }
            let mut train = strings(&["cyclegan", "--dataroot"]);
            train.push(data.display().to_string());
            train.extend(strings(&[
                "--load-size",
                "256",
                "--crop-size",
                "256",
                "--n-blocks",
                "9",
            ]));
            Model {
                name: "cyclegan256",
                train,
                torch: strings(&[
                    "xtask/bench/torch_cyclegan.py",
                    "--size",
                    "256",
                    "--n-blocks",
                    "9",
                ]),
                images: 1.0,
            }
        }
        other => bail!("unknown model {other:?} (dcgan28, dcgan64, wgan-gp28, cyclegan256)"),
    })
}

/// Writes `count` smooth random RGB images of `size` pixels (PNG) into `dir`.
fn write_images(dir: &Path, count: usize, size: u32, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*: enough for test pictures.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    };
    for i in 0..count {
        let (a, b, c) = (next() * 6.0, next() * 6.0, next() * 6.0);
        let img = image::RgbImage::from_fn(size, size, |x, y| {
            let (u, v) = (x as f32 / size as f32, y as f32 / size as f32);
            let ch = |p: f32| (127.5 + 127.0 * (p).sin()) as u8;
            image::Rgb([
                ch(a * u + b * v),
                ch(b * u - c * v + a),
                ch(c * (u + v) + b),
            ])
        });
        let path = dir.join(format!("{i:04}.png"));
        img.save(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// `LD_LIBRARY_PATH` with the CUDA libraries of the Python's `nvidia` packages in front, when
/// that Python has them (PyTorch's CUDA wheels bring them).
fn library_path(python: &str) -> Vec<(String, String)> {
    if python == "none" {
        return vec![];
    }
    let probe = Command::new(python)
        .args([
            "-c",
            "import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], 'cu13', 'lib'))",
        ])
        .output();
    let Ok(out) = probe else { return vec![] };
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !Path::new(&dir).is_dir() {
        return vec![];
    }
    let old = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
    vec![("LD_LIBRARY_PATH".into(), format!("{dir}:{old}"))]
}

/// Runs `gan-cli train` and returns the run folder and the loop's seconds per step.
fn train(
    gan_cli: &Path,
    env: &[(String, String)],
    m: &Model,
    device: &str,
    steps: u64,
    out: &Path,
    extra: &[&str],
) -> anyhow::Result<f64> {
    let mut cmd = Command::new(gan_cli);
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .arg("train")
        .args(&m.train)
        .args(["--seed", "0", "--device", device, "--steps"])
        .arg(steps.to_string())
        .arg("--out")
        .arg(out)
        .args(extra);
    let output = cmd
        .output()
        .with_context(|| format!("cannot run {}", gan_cli.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "{} train {} on {device} failed ({}): {}",
            gan_cli.display(),
            m.train.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    ms_per_step(&stdout)
        .map(|ms| ms / 1e3)
        .with_context(|| format!("no 'ms per step' in gan-cli's output: {stdout}"))
}

/// The `X ms per step` of `gan-cli train`'s last lines.
fn ms_per_step(stdout: &str) -> Option<f64> {
    stdout.lines().rev().find_map(|l| {
        let (num, _) = l.split_once(" ms per step")?;
        num.rsplit(' ').next()?.parse().ok()
    })
}

fn parity(
    args: &GpuCheckArgs,
    gan_cli: &Path,
    env: &[(String, String)],
    m: &Model,
) -> anyhow::Result<Value> {
    let quiet = ["--log-every", "1", "--sample-every", "0"];
    let steps = args.parity_steps;
    let cpu = args.work.join(format!("parity-{}-cpu", m.name));
    let dev = args.work.join(format!("parity-{}-device", m.name));
    train(gan_cli, env, m, "cpu", steps, &cpu, &quiet)?;
    train(gan_cli, env, m, &args.device, steps, &dev, &quiet)?;
    let losses = compare_metrics(&cpu.join("metrics.jsonl"), &dev.join("metrics.jsonl"))?;
    let weights = compare_checkpoints(
        &cpu.join("checkpoints/latest"),
        &dev.join("checkpoints/latest"),
    )?;
    let worst_weight = weights
        .iter()
        .filter(|(file, _)| !file.contains("optim"))
        .map(|(_, r)| *r)
        .fold(0.0, f64::max);
    let pass = losses.max_rel <= args.loss_tol && worst_weight <= args.weight_tol;
    Ok(json!({
        "steps": steps,
        "loss_max_rel": losses.max_rel,
        "loss_worst": losses.worst,
        "losses_compared": losses.count,
        "weights_rel": weights,
        "weights_worst_rel": worst_weight,
        "pass": pass,
    }))
}

/// How far apart two runs' logged losses are.
#[derive(Debug)]
struct LossDiff {
    max_rel: f64,
    /// Where the largest difference is: step, metric, both values.
    worst: Value,
    count: usize,
}

/// Compares every numeric metric of every step logged in both files.
fn compare_metrics(a: &Path, b: &Path) -> anyhow::Result<LossDiff> {
    let read = |p: &Path| -> anyhow::Result<BTreeMap<u64, serde_json::Map<String, Value>>> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let mut rows = BTreeMap::new();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("{}: not JSON: {line}", p.display()))?;
            if let (Some(step), Some(obj)) = (v["step"].as_u64(), v.as_object()) {
                rows.insert(step, obj.clone());
            }
        }
        Ok(rows)
    };
    let (ra, rb) = (read(a)?, read(b)?);
    let mut diff = LossDiff {
        max_rel: 0.0,
        worst: Value::Null,
        count: 0,
    };
    for (step, row) in &ra {
        let Some(other) = rb.get(step) else {
            bail!(
                "step {step} is in {} but not in {}",
                a.display(),
                b.display()
            );
        };
        for (key, va) in row {
            let (Some(x), Some(y)) = (va.as_f64(), other.get(key).and_then(Value::as_f64)) else {
                continue;
            };
            if key == "step" {
                continue;
            }
            let rel = (x - y).abs() / x.abs().max(1.0);
            let rel = if rel.is_nan() { f64::INFINITY } else { rel };
            diff.count += 1;
            if rel > diff.max_rel || diff.worst.is_null() {
                diff.max_rel = diff.max_rel.max(rel);
                diff.worst = json!({ "step": step, "metric": key, "cpu": x, "device": y });
            }
        }
    }
    if diff.count == 0 {
        bail!(
            "no losses to compare in {} and {}",
            a.display(),
            b.display()
        );
    }
    Ok(diff)
}

/// ‖b − a‖₂ / ‖a‖₂ over the tensors of each `.safetensors` file of two checkpoint folders.
fn compare_checkpoints(a: &Path, b: &Path) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(a).with_context(|| format!("reading {}", a.display()))?;
    for e in entries {
        let path = e?.path();
        if path.extension().and_then(|x| x.to_str()) != Some("safetensors") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let ta = candle_core::safetensors::load(&path, &candle_core::Device::Cpu)?;
        let tb = candle_core::safetensors::load(b.join(&name), &candle_core::Device::Cpu)
            .with_context(|| format!("{name} is missing from {}", b.display()))?;
        let (mut diff, mut norm) = (0.0f64, 0.0f64);
        for (k, x) in &ta {
            if !x.dtype().is_float() {
                continue;
            }
            let y = tb
                .get(k)
                .with_context(|| format!("{name}: no tensor {k} in {}", b.display()))?;
            let x = x.to_dtype(candle_core::DType::F64)?.flatten_all()?;
            let y = y.to_dtype(candle_core::DType::F64)?.flatten_all()?;
            diff += (&x - &y)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
            norm += x.sqr()?.sum_all()?.to_scalar::<f64>()?;
        }
        out.insert(name, (diff / norm.max(f64::MIN_POSITIVE)).sqrt());
    }
    if out.is_empty() {
        bail!("no .safetensors files in {}", a.display());
    }
    Ok(out)
}

fn timing(
    args: &GpuCheckArgs,
    gan_cli: &Path,
    env: &[(String, String)],
    m: &Model,
) -> anyhow::Result<Value> {
    const WARM: u64 = 5;
    let quiet = ["--log-every", "0", "--sample-every", "0"];
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let short = args.work.join(format!("time-{}-{round}-short", m.name));
        let long = args.work.join(format!("time-{}-{round}-long", m.name));
        let t0 = train(gan_cli, env, m, &args.device, WARM, &short, &quiet)? * WARM as f64;
        let total = WARM + args.time_steps;
        let t1 = train(gan_cli, env, m, &args.device, total, &long, &quiet)? * total as f64;
        let step = ((t1 - t0) / args.time_steps as f64).max(0.0);
        ours.push(step * 1e3);
        let _ = std::fs::remove_dir_all(&short);
        let _ = std::fs::remove_dir_all(&long);
        if args.python != "none" {
            let ms = torch_step_ms(args, m)?;
            theirs.push(ms);
            ratios.push(step * 1e3 / ms);
        }
    }
    let ours_ms = median(&ours);
    let theirs_ms = (!theirs.is_empty()).then(|| median(&theirs));
    Ok(json!({
        "ours_ms": ours_ms,
        "ours_rounds_ms": ours,
        "ours_images_per_s": m.images / (ours_ms / 1e3),
        "torch_ms": theirs_ms,
        "torch_rounds_ms": theirs,
        "ratio_per_round_median": (!ratios.is_empty()).then(|| median(&ratios)),
        "ratio_per_round": ratios,
    }))
}

fn torch_step_ms(args: &GpuCheckArgs, m: &Model) -> anyhow::Result<f64> {
    let out = Command::new(&args.python)
        .args(&m.torch)
        .args(["--device", &args.device, "--steps"])
        .arg(args.time_steps.to_string())
        .output()
        .with_context(|| format!("cannot run {}", args.python))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            args.python,
            m.torch.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("no JSON line from {}: {stdout}", m.torch.join(" ")))?;
    let v: Value = serde_json::from_str(line)?;
    v["median_step_ms"]
        .as_f64()
        .with_context(|| format!("no median_step_ms in {line}"))
}

fn train_and_eval(
    args: &GpuCheckArgs,
    gan_cli: &Path,
    env: &[(String, String)],
) -> anyhow::Result<Value> {
    let m = model("dcgan28", &args.work)?;
    let run = args.work.join("train-dcgan");
    let t = Instant::now();
    let secs_per_step = train(gan_cli, env, &m, &args.device, args.train_steps, &run, &[])?;
    let wall = t.elapsed().as_secs_f64();
    let scores = args.work.join("train-dcgan-scores.json");
    let out = Command::new(gan_cli)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["eval", "--count", "1000", "--device", &args.device, "--run"])
        .arg(&run)
        .arg("--json")
        .arg(&scores)
        .output()?;
    if !out.status.success() {
        bail!(
            "gan-cli eval failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&scores)?)?;
    Ok(json!({
        "steps": args.train_steps,
        "batch": 64,
        "images_per_s": m.images / secs_per_step,
        "ms_per_step": secs_per_step * 1e3,
        "wall_s": wall,
        "fid": find_key(&v, "fid"),
        "eval": v,
    }))
}

/// The first value named `key` in a JSON tree (depth first).
fn find_key(v: &Value, key: &str) -> Value {
    match v {
        Value::Object(o) => o
            .get(key)
            .cloned()
            .or_else(|| o.values().map(|x| find_key(x, key)).find(|x| !x.is_null()))
            .unwrap_or(Value::Null),
        Value::Array(a) => a
            .iter()
            .map(|x| find_key(x, key))
            .find(|x| !x.is_null())
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn nvidia_smi() -> Value {
    match Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,driver_version,memory.total",
            "--format=csv,noheader",
        ])
        .output()
    {
        Ok(o) if o.status.success() => json!(String::from_utf8_lossy(&o.stdout).trim()),
        _ => Value::Null,
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_per_step_reads_gan_cli_summary_line() {
        let out = "step 10: loss_d=1.2\n12.5 ms per step; samples in runs/x/samples, \
                   checkpoint in runs/x/checkpoints/latest, report in runs/x/report.html\n";
        assert_eq!(ms_per_step(out), Some(12.5));
        assert_eq!(ms_per_step("nothing here"), None);
    }

    #[test]
    fn compare_metrics_finds_the_largest_relative_difference() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        std::fs::write(
            &a,
            "{\"step\":1,\"loss_d\":2.0,\"loss_g\":0.5}\n{\"step\":2,\"loss_d\":4.0,\"loss_g\":0.5}\n",
        )
        .unwrap();
        std::fs::write(
            &b,
            "{\"step\":1,\"loss_d\":2.0,\"loss_g\":0.51}\n{\"step\":2,\"loss_d\":4.2,\"loss_g\":0.5}\n",
        )
        .unwrap();
        let d = compare_metrics(&a, &b).unwrap();
        assert_eq!(d.count, 4);
        // 0.2 / 4 beats 0.01 / max(1, 0.5).
        assert!((d.max_rel - 0.05).abs() < 1e-12, "{d:?}");
        assert_eq!(d.worst["step"], 2);
        assert_eq!(d.worst["metric"], "loss_d");
        // A step missing on one side is an error, not a pass.
        std::fs::write(&b, "{\"step\":1,\"loss_d\":2.0,\"loss_g\":0.5}\n").unwrap();
        assert!(compare_metrics(&a, &b).is_err());
    }

    #[test]
    fn compare_checkpoints_is_the_relative_l2_distance() {
        use candle_core::{Device, Tensor};
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let t = |v: &[f32]| Tensor::new(v, &Device::Cpu).unwrap();
        let save = |dir: &Path, w: &[f32]| {
            let map = std::collections::HashMap::from([("w".to_string(), t(w))]);
            candle_core::safetensors::save(&map, dir.join("generator.safetensors")).unwrap();
        };
        save(&a, &[3.0, 4.0]);
        save(&b, &[3.0, 4.5]);
        let r = compare_checkpoints(&a, &b).unwrap();
        assert!((r["generator.safetensors"] - 0.1).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn find_key_searches_nested_objects() {
        let v = json!({"eval": {"evaluator": "mnist", "scores": {"fid": 12.5}}});
        assert_eq!(find_key(&v, "fid"), json!(12.5));
        assert_eq!(find_key(&v, "kid"), Value::Null);
    }
}
