//! `gan-cli eval` (score a run's generator, a folder of images or a real split), `gan-cli report`
//! and the evaluation flags of `train dcgan`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use gan_data::{ImageFolder, ImageFolderConfig, ImageSource};
use gan_models::dcgan_run::{load_generator, parse_device};
use gan_models::evaluator::{
    evaluate, evaluate_dataset, evaluator_for_data, load_setup, load_setup_with, EvalReport,
};
use gan_models::inception::InceptionSource;
use gan_models::monitor::MonitorConfig;
use gan_models::report::write_report;
use gan_models::run::{write_json, RunDir};
use serde_json::json;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run folder whose generator to score.
    #[arg(long, required_unless_present_any = ["images", "real_split"])]
    pub run: Option<PathBuf>,
    /// Score a folder of PNG/JPEG images instead (e.g. another framework's samples).
    #[arg(long, conflicts_with_all = ["run", "real_split"])]
    pub images: Option<PathBuf>,
    /// Score the evaluator dataset's real split (train or test) instead: the ideal to compare
    /// with.
    #[arg(long, conflicts_with = "run", value_parser = ["train", "test"])]
    pub real_split: Option<String>,
    /// latest or step-N.
    #[arg(long, default_value = "latest")]
    pub checkpoint: String,
    /// Samples to draw from the generator (or the first images of a real split).
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// mnist, fashion-mnist or inception (the standard FID network; needs --inception-weights
    /// or --inception-repo, and compares with the MNIST test split).
    /// Default: from the run's training data (mnist for --images and --real-split).
    #[arg(long)]
    pub evaluator: Option<String>,
    /// The Inception weights for --evaluator inception: pytorch-fid's
    /// pt_inception-2015-12-05-6726825d.pth as it is, or a safetensors copy of it.
    #[arg(long, env = "GAN_INCEPTION_WEIGHTS", conflicts_with = "inception_repo")]
    pub inception_weights: Option<PathBuf>,
    /// Or an hf-hub model repository holding them (used from the hf-hub cache when there,
    /// downloaded otherwise).
    #[arg(long)]
    pub inception_repo: Option<String>,
    /// The file of --inception-repo.
    #[arg(long, default_value = "model.safetensors")]
    pub inception_file: String,
    /// Also write the scores as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Seed of the generator's noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Where named datasets and `evaluators/` live.
    #[arg(long, default_value = "datasets", env = "GAN_DATASETS")]
    pub datasets_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run folder.
    pub run: PathBuf,
    /// Open the report in the default browser afterwards.
    #[arg(long)]
    pub open: bool,
}

/// The evaluation flags of `train dcgan`.
#[derive(Debug, Args)]
pub struct TrainEvalArgs {
    /// Evaluate the generator every N steps (and at the last step) into metrics.jsonl and the
    /// report (0: never).
    #[arg(long, default_value_t = 0)]
    pub eval_every: u64,
    /// Samples per evaluation during training.
    #[arg(long, default_value_t = 2000)]
    pub eval_count: usize,
    /// The evaluator for --eval-every (default: from the training data).
    #[arg(long)]
    pub evaluator: Option<String>,
}

impl TrainEvalArgs {
    /// No evaluation during training (for models without `--eval-every`).
    pub fn none() -> Self {
        Self {
            eval_every: 0,
            eval_count: 2000,
            evaluator: None,
        }
    }
}

fn evaluator_name(explicit: Option<&str>, data: Option<&str>) -> anyhow::Result<String> {
    if let Some(e) = explicit {
        return Ok(e.to_string());
    }
    match data {
        None => Ok("mnist".into()),
        Some(d) => evaluator_for_data(d).map(str::to_string).with_context(|| {
            format!("no built-in evaluator for training data {d:?}: pass --evaluator mnist|fashion-mnist")
        }),
    }
}

/// The monitor of a DCGAN training run: evaluation every N steps (with its evaluator loaded) and
/// the report.
pub fn monitor_setup(
    a: &TrainEvalArgs,
    data_source: &str,
    datasets_dir: &Path,
    device: &str,
    total_steps: u64,
) -> anyhow::Result<(MonitorConfig, Option<gan_models::evaluator::EvalSetup>)> {
    let cfg = MonitorConfig {
        eval_every: a.eval_every,
        eval_count: a.eval_count,
        total_steps,
        write_report: true,
    };
    if a.eval_every == 0 {
        return Ok((cfg, None));
    }
    if a.eval_count < 10 {
        bail!("--eval-count {} is too small (at least 10)", a.eval_count);
    }
    let name = evaluator_name(a.evaluator.as_deref(), Some(data_source))?;
    let setup = load_setup(&name, datasets_dir, &parse_device(device)?)?;
    Ok((cfg, Some(setup)))
}

impl EvalArgs {
    fn inception_source(&self) -> Option<InceptionSource> {
        if let Some(p) = &self.inception_weights {
            Some(InceptionSource::File(p.clone()))
        } else {
            self.inception_repo.as_ref().map(|r| InceptionSource::Hub {
                repo: r.clone(),
                file: self.inception_file.clone(),
                cache: None,
            })
        }
    }
}

pub fn eval(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let dev = parse_device(&a.device)?;
    let inception = a.inception_source();
    let load_setup = |name: &str, dir: &Path, dev: &candle_core::Device| {
        load_setup_with(name, dir, dev, inception.as_ref())
    };
    if a.count < 10 {
        bail!("--count {} is too small (at least 10)", a.count);
    }
    let (report, what): (EvalReport, serde_json::Value) = if let Some(dir) = &a.run {
        let run = RunDir::open(dir)?;
        let g = load_generator(&run, &a.checkpoint, &dev)?;
        let name = evaluator_name(a.evaluator.as_deref(), Some(&g.cfg.data.source))?;
        let setup = load_setup(&name, &a.datasets_dir, &dev)?;
        eprintln!(
            "sampling {} images from {} ({})",
            a.count,
            dir.display(),
            a.checkpoint
        );
        let images = g.sample(a.count, a.seed)?;
        let r = evaluate(setup.net.as_ref(), &images, &setup.reference)?;
        (
            r,
            json!({"run": dir, "checkpoint": a.checkpoint, "seed": a.seed}),
        )
    } else {
        let name = evaluator_name(a.evaluator.as_deref(), None)?;
        let setup = load_setup(&name, &a.datasets_dir, &dev)?;
        let (channels, side) = setup.net.input();
        let (ds, what) = if let Some(dir) = &a.images {
            let ds = ImageFolder::load(
                dir,
                ImageFolderConfig {
                    size: side,
                    channels,
                },
            )
            .with_context(|| format!("cannot load the images of {}", dir.display()))?;
            (ds, json!({"images": dir}))
        } else {
            let split = a.real_split.as_deref().unwrap_or("train");
            let data = setup
                .reference
                .name
                .strip_suffix(" test split")
                .unwrap_or("mnist")
                .to_string();
            let src = ImageSource::resolve(Some(&data), &a.datasets_dir)?;
            let ds = if split == "train" {
                src.load_train(side, channels)?
            } else {
                src.load_test(side)?
            };
            (ds, json!({"real": data, "split": split}))
        };
        // A seeded random subset, in random order: the IDX splits of mnist-mini are sorted by
        // class, and the Inception Score's splits assume exchangeable samples.
        let len = gan_data::Dataset::len(&ds);
        let mut order: Vec<usize> = (0..len).collect();
        let mut rng = gan_core::rng::SeededRng::new(a.seed);
        for i in (1..len).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        order.truncate(a.count.min(len));
        let ds = ds.subset(&order);
        let r = evaluate_dataset(setup.net.as_ref(), &ds, &setup.reference)?;
        (r, what)
    };
    print!("{}", report.table());
    if let Some(p) = &a.json {
        write_json(p, &json!({"scored": what, "report": report}))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn report(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let run = RunDir::open(&a.run)?;
    let path = write_report(&run)?;
    println!("wrote {}", path.display());
    if a.open {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else if cfg!(windows) {
            "explorer"
        } else {
            "xdg-open"
        };
        let status = std::process::Command::new(opener)
            .arg(&path)
            .status()
            .with_context(|| format!("cannot run {opener} to open {}", path.display()))?;
        if !status.success() {
            bail!("{opener} {} failed ({status})", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
