//! `gan-cli eval` (score a run's generator, a folder of images or a real split), `gan-cli report`
//! and the evaluation flags of `train dcgan`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use gan_core::eval_metrics::Gaussian;
use gan_data::{ImageFolder, ImageFolderConfig, ImageSource};
use gan_models::cgan_run::load_cgan;
use gan_models::class_eval::score_classes;
use gan_models::cyclegan_run::TranslationReferences;
use gan_models::dcgan_run::{load_generator_from, parse_device};
use gan_models::evaluator::{
    dataset_side, embed_dataset_with, embed_images_with, evaluator_for_data, load_evaluator,
    load_fid_stats, load_setup_with, real_reference, save_fid_stats, score_embedding, FeatureNet,
    Progress, ReferenceSet,
};
use gan_models::inception::InceptionSource;
use gan_models::monitor::{MonitorConfig, TranslationEvalSetup};
use gan_models::registry::RunConfig;
use gan_models::report::write_report;
use gan_models::run::{write_json, RunDir};

use crate::progress::PhaseProgress;
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
    #[command(flatten)]
    pub generator: crate::args::GeneratorFlags,
    /// Samples to draw from the generator (or the first images of a real split).
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// mnist, fashion-mnist or inception (the standard FID network; needs --inception-weights
    /// or --inception-repo, and compares with the MNIST test split).
    /// Default: from the run's training data (mnist for --images and --real-split).
    #[arg(long, value_name = "NAME")]
    pub evaluator: Option<String>,
    #[command(flatten)]
    pub inception: InceptionFlags,
    /// Also write the scores as JSON here. Default with --run: a new
    /// `scores-<checkpoint>.json` in the run folder.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write the mean and covariance of the scored images' features as a pytorch-fid
    /// statistics file (.npz with float64 `mu` and `sigma`), usable as --reference later and by
    /// pytorch-fid.
    #[arg(long, value_name = "FILE")]
    pub save_stats: Option<PathBuf>,
    /// Compare with this pytorch-fid statistics file (.npz with `mu` and `sigma`, e.g. from
    /// `python -m pytorch_fid --save-stats` or --save-stats) instead of the evaluator's real test
    /// split: FID only (KID and precision/recall need the reference features). Its width must
    /// be the evaluator's feature width (2048 for inception).
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
    /// Where named datasets and `evaluators/` live.
    #[arg(long, default_value = "datasets", env = "GAN_DATASETS")]
    pub datasets_dir: PathBuf,
}

/// Where the weights of `--evaluator inception` come from (`eval`, `eval-translation` and the
/// evaluation flags of the train commands).
#[derive(Debug, Clone, Args)]
pub struct InceptionFlags {
    /// The Inception weights for --evaluator inception: pytorch-fid's
    /// pt_inception-2015-12-05-6726825d.pth as it is, or a safetensors copy of it.
    #[arg(long, env = "GAN_INCEPTION_WEIGHTS", conflicts_with = "inception_repo")]
    pub inception_weights: Option<PathBuf>,
    /// Or an hf-hub model repository holding them (used from the hf-hub cache when there,
    /// downloaded otherwise).
    #[arg(long, value_name = "REPO")]
    pub inception_repo: Option<String>,
    /// The file of --inception-repo.
    #[arg(long, default_value = "model.safetensors")]
    pub inception_file: String,
}

impl InceptionFlags {
    /// No weights given.
    pub fn none() -> Self {
        Self {
            inception_weights: None,
            inception_repo: None,
            inception_file: "model.safetensors".into(),
        }
    }

    /// The weights given, if any.
    pub fn source(&self) -> Option<InceptionSource> {
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

/// The generator `eval --run` samples from.
enum Sampler {
    Plain(gan_models::dcgan_run::LoadedGenerator),
    Conditional(gan_models::cgan_run::LoadedCgan),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run folder.
    pub run: PathBuf,
    /// Open the report in the default browser afterwards.
    #[arg(long)]
    pub open: bool,
}

/// The evaluation flags of the train commands (`dcgan`, `wgan`, `cgan`, `cyclegan`, ...).
#[derive(Debug, Args)]
pub struct TrainEvalArgs {
    /// Evaluate the generator every N steps (and at the last step) into metrics.jsonl and the
    /// report (0: never). CycleGAN: its translations of the test images, both directions.
    #[arg(long, default_value_t = 0)]
    pub eval_every: u64,
    /// Samples per evaluation during training (CycleGAN: at most this many test images of
    /// each domain are translated).
    #[arg(long, default_value_t = 2000)]
    pub eval_count: usize,
    /// The evaluator for --eval-every: mnist, fashion-mnist, or inception (with
    /// --inception-weights or --inception-repo) (default: from the training data; CycleGAN:
    /// mnist for grey runs, inception for RGB runs).
    #[arg(long, value_name = "NAME")]
    pub evaluator: Option<String>,
    #[command(flatten)]
    pub inception: InceptionFlags,
}

impl TrainEvalArgs {
    /// No evaluation during training (for models without `--eval-every`).
    pub fn none() -> Self {
        Self {
            eval_every: 0,
            eval_count: 2000,
            evaluator: None,
            inception: InceptionFlags::none(),
        }
    }
}

/// The folder of the cached statistics of the reference sets (computed once per evaluator,
/// weights and images; see `gan_models::evaluator::cached_reference`): `$GAN_CACHE`, else
/// `DATASETS/cache`.
pub fn reference_cache(datasets_dir: &Path) -> PathBuf {
    std::env::var_os("GAN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| datasets_dir.join("cache"))
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

/// The monitor's settings from the evaluation flags; with `--eval-every`, `--eval-count` must
/// be at least 10.
fn monitor_config(a: &TrainEvalArgs, total_steps: u64) -> anyhow::Result<MonitorConfig> {
    if a.eval_every > 0 && a.eval_count < 10 {
        bail!("--eval-count {} is too small (at least 10)", a.eval_count);
    }
    Ok(MonitorConfig {
        eval_every: a.eval_every,
        eval_count: a.eval_count,
        total_steps,
        write_report: true,
    })
}

/// The monitor of a training run: evaluation every N steps (with its evaluator loaded) and
/// the report.
pub fn monitor_setup(
    a: &TrainEvalArgs,
    data_source: &str,
    datasets_dir: &Path,
    device: &str,
    total_steps: u64,
) -> anyhow::Result<(MonitorConfig, Option<gan_models::evaluator::EvalSetup>)> {
    let cfg = monitor_config(a, total_steps)?;
    if a.eval_every == 0 {
        return Ok((cfg, None));
    }
    let name = evaluator_name(a.evaluator.as_deref(), Some(data_source))?;
    let inception = a.inception.source();
    let setup = load_setup_with(
        &name,
        datasets_dir,
        &parse_device(device)?,
        inception.as_ref(),
        Some(&reference_cache(datasets_dir)),
    )?;
    Ok((cfg, Some(setup)))
}

/// The monitor of a CycleGAN run: with `--eval-every`, the evaluator that fits its data
/// ([`crate::cyclegan_cmd::translation_evaluator`]: mnist for grey runs, inception for RGB runs
/// with its weights) and the real test images of both domains embedded by it (cached like
/// `eval`'s references: [`reference_cache`]).
pub fn translation_monitor_setup(
    a: &TrainEvalArgs,
    cfg: &gan_models::cyclegan_run::CycleGanRunConfig,
    datasets_dir: &Path,
    total_steps: u64,
) -> anyhow::Result<(MonitorConfig, Option<TranslationEvalSetup>)> {
    let mcfg = monitor_config(a, total_steps)?;
    if a.eval_every == 0 {
        return Ok((mcfg, None));
    }
    let inception = a.inception.source();
    let Some(name) = crate::cyclegan_cmd::translation_evaluator(
        a.evaluator.as_deref(),
        cfg.net.channels,
        inception.is_some(),
    ) else {
        bail!(
            "--eval-every on an RGB CycleGAN ({} channels) needs --evaluator inception and its \
             weights (--inception-weights PATH or --inception-repo ORG/NAME); the mnist \
             evaluators take grey digits",
            cfg.net.channels
        );
    };
    let dev = parse_device(&cfg.run.device)?;
    let (net, _) = load_evaluator(&name, datasets_dir, &dev, inception.as_ref())?;
    let root = &cfg.data.dataroot;
    let refs = TranslationReferences::load(
        net.as_ref(),
        root,
        cfg.image_cfg(cfg.data.crop_size),
        Some(&reference_cache(datasets_dir)),
        &mut (),
    )
    .with_context(|| {
        format!(
            "--eval-every scores translations of {} and {} against each other",
            root.join("testA").display(),
            root.join("testB").display()
        )
    })?;
    Ok((mcfg, Some(TranslationEvalSetup { net, refs })))
}

/// The side to load an image folder at: the network's input side, except for the inception
/// network, which resizes by itself (bilinear, as pytorch-fid does after loading the files as
/// they are): there the folder is loaded at the size of its first image when that is square.
fn folder_side(evaluator: &str, dir: &Path, net_side: usize) -> usize {
    if evaluator != "inception" {
        return net_side;
    }
    let first = gan_data::image_folder::list_images(dir)
        .ok()
        .and_then(|files| files.first().cloned());
    match first.and_then(|f| image::image_dimensions(f).ok()) {
        Some((w, h)) if w == h && w > 0 => w as usize,
        _ => net_side,
    }
}

pub fn eval(a: EvalArgs) -> anyhow::Result<ExitCode> {
    // The reported seconds cover the whole command: loading, sampling, embedding, scoring.
    let started = Instant::now();
    let dev = parse_device(&a.generator.device)?;
    let inception = a.inception.source();
    if a.count == 0 {
        bail!("--count 0: nothing to score");
    }
    let datasets_dir = crate::embedded::datasets_dir(&a.datasets_dir)?;
    let mut progress = PhaseProgress::new();
    // The network, its reference (a pytorch-fid statistics file, or the test split of its
    // dataset) and that dataset's name.
    let setup = |name: &str,
                 progress: &mut PhaseProgress|
     -> anyhow::Result<(Box<dyn FeatureNet>, ReferenceSet, String)> {
        progress.start(&format!("loading the {name} evaluator"), 0);
        let (net, data) = load_evaluator(name, &datasets_dir, &dev, inception.as_ref())?;
        let reference = match &a.reference {
            Some(path) => {
                let g = load_fid_stats(path)?;
                if let Some(width) = net.feature_dim().filter(|&w| w != g.dim()) {
                    bail!(
                        "{}: statistics of {} features, but the {name} evaluator gives {width}",
                        path.display(),
                        g.dim()
                    );
                }
                let label = format!("{} (pytorch-fid statistics)", path.display());
                ReferenceSet::from_gaussian(g, &label)
            }
            None => {
                let cache = reference_cache(&datasets_dir);
                real_reference(net.as_ref(), &data, &datasets_dir, Some(&cache), progress)?
            }
        };
        Ok((net, reference, data))
    };
    let mut class_report = None;
    let (embedding, net, reference, what) = if let Some(dir) = &a.run {
        let run = RunDir::open(dir)?;
        // A class-conditional run draws every class equally often (sample i of class i mod k).
        let (sampler, source) = match RunConfig::read(&run)? {
            RunConfig::Cgan(_) => {
                let g = load_cgan(&run, &a.generator.checkpoint, &dev)?;
                let source = g.cfg.base.data.source.clone();
                (Sampler::Conditional(g), source)
            }
            _ => {
                let g =
                    load_generator_from(&run, &a.generator.checkpoint, &dev, a.generator.raw_g)?;
                let source = g.cfg.data.source.clone();
                (Sampler::Plain(g), source)
            }
        };
        let name = evaluator_name(a.evaluator.as_deref(), Some(&source))?;
        let (net, reference, _) = setup(&name, &mut progress)?;
        progress.start(
            &format!(
                "sampling {} images from {} ({})",
                a.count,
                dir.display(),
                a.generator.checkpoint
            ),
            a.count,
        );
        let images = match &sampler {
            Sampler::Conditional(g) => g.sample_balanced(a.count, a.generator.seed)?,
            Sampler::Plain(g) => g.sample_with(a.count, a.generator.seed, &mut progress)?,
        };
        progress.start("embedding the samples", a.count);
        let e = embed_images_with(net.as_ref(), &images, &mut progress)?;
        if let Sampler::Conditional(g) = &sampler {
            let k = g.cfg.classes.len();
            let labels: Vec<u32> = (0..a.count).map(|i| (i % k) as u32).collect();
            match score_classes(net.as_ref(), &reference, &images, &labels, &g.cfg.classes) {
                Ok(r) => {
                    print!("{}", r.table());
                    for w in &r.warnings {
                        eprintln!("warning: {w}");
                    }
                    class_report = Some(r);
                }
                Err(e) => eprintln!("note: no per-class scores: {e}"),
            }
        }
        let what =
            json!({"run": dir, "checkpoint": a.generator.checkpoint, "seed": a.generator.seed});
        (e, net, reference, what)
    } else {
        let name = evaluator_name(a.evaluator.as_deref(), None)?;
        let (net, reference, data) = setup(&name, &mut progress)?;
        let (channels, side) = net.input();
        progress.start("loading the images", 0);
        let (ds, what) = if let Some(dir) = &a.images {
            let size = folder_side(&name, dir, side);
            let ds = ImageFolder::load(dir, ImageFolderConfig { size, channels })
                .with_context(|| format!("cannot load the images of {}", dir.display()))?;
            (ds, json!({"images": dir}))
        } else {
            let split = a.real_split.as_deref().unwrap_or("train");
            let src = ImageSource::resolve(Some(&data), &datasets_dir)?;
            let side = dataset_side(net.as_ref());
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
        let mut rng = gan_core::rng::SeededRng::new(a.generator.seed);
        for i in (1..len).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        order.truncate(a.count.min(len));
        let ds = ds.subset(&order);
        progress.start("embedding the images", order.len());
        let e = embed_dataset_with(net.as_ref(), &ds, &mut progress)?;
        (e, net, reference, what)
    };
    progress.start("scoring (FID, KID, precision/recall, density/coverage)", 0);
    let mut report = score_embedding(&net.name(), &embedding, &reference, started)?;
    let phases = progress.finish();
    report.seconds = started.elapsed().as_secs_f64();
    print!("{}", report.table());
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(p) = &a.save_stats {
        let g = Gaussian::fit(&embedding.features, embedding.dim)
            .with_context(|| format!("cannot write the statistics file {}", p.display()))?;
        save_fid_stats(p, &g)?;
        eprintln!(
            "wrote {} (pytorch-fid statistics of {} images, {} features)",
            p.display(),
            embedding.len(),
            embedding.dim
        );
    }
    let json_out = a.json.clone().or_else(|| {
        let stem = format!("scores-{}", a.generator.checkpoint);
        a.run
            .as_deref()
            .map(|r| crate::unused_path(r, &stem, "json"))
    });
    if let Some(p) = &json_out {
        let phases: Vec<_> = phases
            .iter()
            .map(|(phase, seconds)| json!({"phase": phase, "seconds": seconds}))
            .collect();
        let mut doc = json!({"scored": what, "report": report, "phases": phases});
        if let Some(c) = &class_report {
            doc["classes"] = serde_json::to_value(c)?;
        }
        write_json(p, &doc)?;
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
        // The report is written: a missing or failing opener is a warning, not an error.
        match std::process::Command::new(opener).arg(&path).status() {
            Ok(status) if status.success() => {}
            Ok(status) => eprintln!(
                "warning: {opener} {} failed ({status}); open it in a browser",
                path.display()
            ),
            Err(e) => eprintln!(
                "warning: cannot run {opener} ({e}); open {} in a browser",
                path.display()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
