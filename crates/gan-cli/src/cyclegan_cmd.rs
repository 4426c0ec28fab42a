//! `gan-cli train cyclegan`, `gan-cli translate` and `gan-cli eval-translation`: flags into a
//! [`CycleGanRunConfig`], then the library's [`train_cyclegan`], [`LoadedCycleGan`](gan_models::cyclegan_run::LoadedCycleGan) and
//! [`eval_thin2thick`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use gan_models::cyclegan_run::{
    eval_thin2thick, load_cyclegan, load_train, score_translations, train_cyclegan,
    CycleGanRunConfig, Direction,
};
use gan_models::dcgan_run::parse_device;
use gan_models::evaluator::{load_evaluator, Progress};
use gan_models::run::RunDir;

use crate::train_cmd::{apply_on_resume, check_resume_flags, open_or_create};

/// Flags of `gan-cli train cyclegan`. The defaults are the reference's for 256-pixel photos;
/// for 28-pixel digits see the README (`--channels 1 --load-size 28 --crop-size 28 --no-flip`
/// and smaller networks).
#[derive(Debug, clap::Args)]
pub struct TrainCycleganArgs {
    /// Folder holding trainA and trainB (and testA/testB for the sample grids).
    #[arg(long, required_unless_present = "resume")]
    pub dataroot: Option<PathBuf>,
    /// Epochs at the initial learning rate (with --resume: a new value).
    #[arg(long, value_name = "N")]
    pub epochs: Option<u64>,
    /// Epochs of linear decay to zero after --epochs (with --resume: a new value).
    #[arg(long, value_name = "N")]
    pub epochs_decay: Option<u64>,
    /// Stop after this many steps in total (default: all epochs).
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// Images of each domain per step.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    #[command(flatten)]
    pub lr: crate::args::LrFlags,
    /// Adam's β1.
    #[arg(long, default_value_t = 0.5)]
    pub beta1: f64,
    /// Image channels: 3 (RGB) or 1 (gray).
    #[arg(long, default_value_t = 3)]
    pub channels: usize,
    /// Images are resized to this side, then randomly cropped to --crop-size.
    #[arg(long, default_value_t = 286)]
    pub load_size: usize,
    /// Side of the training crops (a multiple of 4).
    #[arg(long, default_value_t = 256)]
    pub crop_size: usize,
    /// No random horizontal flips (digits).
    #[arg(long)]
    pub no_flip: bool,
    /// Generator base width.
    #[arg(long, default_value_t = 64)]
    pub ngf: usize,
    /// Discriminator base width.
    #[arg(long, default_value_t = 64)]
    pub ndf: usize,
    /// Residual blocks per generator (default 9 for crops of 256 and more, else 6).
    #[arg(long, value_name = "N")]
    pub n_blocks: Option<usize>,
    /// Stride-2 layers of the PatchGAN discriminator (3: 70×70 patches).
    #[arg(long, default_value_t = 3)]
    pub n_layers: usize,
    /// Weight of the A→B→A cycle loss.
    #[arg(long, default_value_t = 10.0)]
    pub lambda_a: f64,
    /// Weight of the B→A→B cycle loss.
    #[arg(long, default_value_t = 10.0)]
    pub lambda_b: f64,
    /// Identity loss weight, relative to the cycle weights (0 turns it off).
    #[arg(long, default_value_t = 0.5)]
    pub lambda_identity: f64,
    /// Generated images kept per discriminator (0: no pool).
    #[arg(long, default_value_t = 50)]
    pub pool_size: usize,
    /// Use at most this many training images of each domain.
    #[arg(long, value_name = "N")]
    pub max_dataset_size: Option<usize>,
    /// Use candle's own convolutions instead of the fast CPU kernels.
    #[arg(long)]
    pub no_fast_conv: bool,
    /// Where the evaluators of --eval-every live (`evaluators/`; mnist and fashion-mnist are
    /// built in as well) and the reference cache (`cache/`, or $GAN_CACHE).
    #[arg(long, default_value = "datasets", env = "GAN_DATASETS")]
    pub datasets_dir: PathBuf,
    // --eval-every N: FID/KID of G(testA) against the real testB and of F(testB) against the
    // real testA every N steps (--eval-count: test images translated per direction; the
    // evaluator: mnist for grey runs, inception for RGB runs with its weights).
    #[command(flatten)]
    pub eval: crate::eval_cmd::TrainEvalArgs,
    #[command(flatten)]
    pub run: crate::args::RunFlags,
}

/// Flags of `gan-cli translate`.
#[derive(Debug, clap::Args)]
pub struct TranslateArgs {
    /// The CycleGAN run folder.
    #[arg(long)]
    pub run: PathBuf,
    /// a2b (G: A→B) or b2a (F: B→A).
    #[arg(long)]
    pub direction: String,
    /// A folder of PNG or JPEG images.
    #[arg(long)]
    pub input: PathBuf,
    /// Where the translated PNGs go (same file stems).
    #[arg(long)]
    pub out: PathBuf,
    /// latest or step-N.
    #[arg(long, default_value = "latest")]
    pub checkpoint: String,
    /// cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Flags of `gan-cli eval-translation`.
#[derive(Debug, clap::Args)]
pub struct EvalTranslationArgs {
    /// The CycleGAN run folder.
    #[arg(long)]
    pub run: PathBuf,
    /// The dataset with testA and testB: G(testA) is scored against testB and F(testB) against
    /// testA; for grey data (thin2thick) G(testA) is also compared with the dilation of testA.
    #[arg(long, default_value = "datasets/thin2thick")]
    pub dataroot: PathBuf,
    /// The evaluator network of FID/KID: mnist, fashion-mnist or inception (default: mnist for
    /// grey runs, inception for RGB runs when --inception-weights or --inception-repo is given).
    #[arg(long, value_name = "NAME")]
    pub evaluator: Option<String>,
    #[command(flatten)]
    pub inception: crate::eval_cmd::InceptionFlags,
    /// Where the project's evaluators live (`evaluators/`).
    #[arg(long, default_value = "datasets", env = "GAN_DATASETS")]
    pub datasets_dir: PathBuf,
    /// latest or step-N.
    #[arg(long, default_value = "latest")]
    pub checkpoint: String,
    /// Also write the numbers as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The evaluator that scores a CycleGAN's translations: the one asked for, else `mnist` for
/// grey runs (thin2thick-style digits) and `inception` for RGB runs when its weights are given;
/// `None` for an RGB run without them.
pub fn translation_evaluator(
    explicit: Option<&str>,
    channels: usize,
    inception_given: bool,
) -> Option<String> {
    match explicit {
        Some(e) => Some(e.to_string()),
        None if channels == 1 => Some("mnist".into()),
        None => inception_given.then(|| "inception".into()),
    }
}

fn new_config(a: &TrainCycleganArgs, dataroot: PathBuf) -> CycleGanRunConfig {
    let mut cfg = CycleGanRunConfig::new(dataroot);
    cfg.net.channels = a.channels;
    cfg.net.ngf = a.ngf;
    cfg.net.ndf = a.ndf;
    cfg.net.n_blocks = a.n_blocks.unwrap_or(if a.crop_size >= 256 { 9 } else { 6 });
    cfg.net.n_layers = a.n_layers;
    cfg.loss.lambda_a = a.lambda_a;
    cfg.loss.lambda_b = a.lambda_b;
    cfg.loss.lambda_identity = a.lambda_identity;
    apply_lr(&a.lr, &mut cfg);
    cfg.adam.beta1 = a.beta1;
    cfg.pool_size = a.pool_size;
    cfg.data.load_size = a.load_size;
    cfg.data.crop_size = a.crop_size;
    cfg.data.flip = !a.no_flip;
    cfg.data.max_dataset_size = a.max_dataset_size;
    cfg.run.batch_size = a.batch_size;
    cfg.epochs = a.epochs.unwrap_or(100);
    cfg.epochs_decay = a.epochs_decay.unwrap_or(100);
    cfg.run.seed = a.run.seed;
    cfg.run.device = a.run.device.clone();
    cfg.run.fast_conv = !a.no_fast_conv;
    a.run.apply_schedule(&mut cfg.run.schedule);
    cfg
}

/// `--lr` (all four networks), `--lr-g` (the generators) and `--lr-d` (the discriminators, kept
/// apart only where their rate differs) over the run's initial rates.
fn apply_lr(f: &crate::args::LrFlags, cfg: &mut CycleGanRunConfig) {
    let (mut g, mut d) = (cfg.adam.lr, cfg.adam_d().lr);
    f.apply(&mut g, &mut d);
    cfg.adam.lr = g;
    cfg.lr_d = (d != g).then_some(d);
}

pub fn train(a: TrainCycleganArgs) -> anyhow::Result<ExitCode> {
    let session = open_or_create(
        a.run.resume.as_deref(),
        "cyclegan",
        &["cyclegan"],
        |dir, run, cfg: &mut CycleGanRunConfig| {
            check_resume_flags(dir, &[])?;
            cfg.data.dataroot = crate::locate_stored_data(run.root(), &cfg.data.dataroot)?;
            apply_on_resume(&a.run, &mut cfg.run.schedule, &mut cfg.run.device);
            apply_lr(&a.lr, cfg);
            let data = load_train(cfg)?;
            cfg.epochs = a.epochs.unwrap_or(cfg.epochs);
            cfg.epochs_decay = a.epochs_decay.unwrap_or(cfg.epochs_decay);
            let cap = a.steps.or_else(|| {
                // Keep a saved cap unless the length in epochs changed.
                let full = (cfg.epochs + cfg.epochs_decay) * cfg.steps_per_epoch;
                (a.epochs.is_none() && a.epochs_decay.is_none() && cfg.run.schedule.steps != full)
                    .then_some(cfg.run.schedule.steps)
            });
            cfg.finish(&data, cap);
            Ok(data)
        },
        || {
            let root = a.dataroot.as_deref().context("--dataroot is required")?;
            let root = crate::absolute_data_path(root);
            let mut cfg = new_config(&a, root);
            cfg.validate()?;
            parse_device(&cfg.run.device)?; // before anything is written
            let data = load_train(&cfg)?;
            cfg.finish(&data, a.steps);
            Ok((a.run.out_dir("cyclegan"), cfg, data))
        },
    )?;
    // Translations of the test images, scored in both directions.
    session.train((Some(&a.eval), &a.datasets_dir), train_cyclegan)
}

pub fn translate(a: TranslateArgs) -> anyhow::Result<ExitCode> {
    let dir: Direction = a.direction.parse()?;
    if a.out.extension().is_some() && !a.out.is_dir() {
        bail!(
            "--out {}: translate writes one PNG per input image into a folder: give a folder \
             path (without extension)",
            a.out.display()
        );
    }
    let run = RunDir::open(&a.run)?;
    let dev = parse_device(&a.device)?;
    let model = load_cyclegan(&run, &a.checkpoint, &dev)?;
    let written = model.translate_folder(dir, &a.input, &a.out)?;
    println!(
        "translated {} images ({}) into {}",
        written.len(),
        a.direction,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn eval_translation(a: EvalTranslationArgs) -> anyhow::Result<ExitCode> {
    let run = RunDir::open(&a.run)?;
    let dev = parse_device(&a.device)?;
    let model = load_cyclegan(&run, &a.checkpoint, &dev)?;
    let mut json = serde_json::Map::new();
    if model.cfg.net.channels == 1 {
        let e = eval_thin2thick(&model, &a.dataroot)?;
        println!(
            "{} test images of {}",
            e.images,
            a.dataroot.join("testA").display()
        );
        println!(
            "MAE G(a) vs dilate(a):       {:.4}  (pixel range 0..1)",
            e.mae_translation
        );
        println!("MAE identity a vs dilate(a): {:.4}", e.mae_identity);
        println!("ratio translation/identity:  {:.3}", e.ratio);
        println!("MAE cycle F(G(a)) vs a:      {:.4}", e.mae_cycle);
        if let serde_json::Value::Object(m) = serde_json::to_value(e)? {
            json = m;
        }
    }
    let inception = a.inception.source();
    let evaluator = translation_evaluator(
        a.evaluator.as_deref(),
        model.cfg.net.channels,
        inception.is_some(),
    );
    match evaluator {
        Some(name) => {
            let mut progress = crate::progress::PhaseProgress::new();
            progress.start(&format!("loading the {name} evaluator"), 0);
            let datasets_dir = crate::embedded::datasets_dir(&a.datasets_dir)?;
            let (net, _) = load_evaluator(&name, &datasets_dir, &dev, inception.as_ref())?;
            let cache = crate::eval_cmd::reference_cache(&datasets_dir);
            let scores = score_translations(
                &model,
                &a.dataroot,
                net.as_ref(),
                Some(&cache),
                &mut progress,
            )?;
            progress.finish();
            for (what, r) in [
                ("G(testA) against the real testB", &scores.a2b),
                ("F(testB) against the real testA", &scores.b2a),
            ] {
                println!("\n{what}:");
                for line in r.table().lines() {
                    println!("  {line}");
                }
                for w in &r.warnings {
                    eprintln!("warning: {what}: {w}");
                }
            }
            json.insert("scores".into(), serde_json::to_value(&scores)?);
        }
        None => println!(
            "FID/KID not computed: an RGB run is scored with --evaluator inception and its \
             weights (--inception-weights PATH or --inception-repo ORG/NAME)"
        ),
    }
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&json)?;
        std::fs::write(p, text + "\n").with_context(|| format!("cannot write {}", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}
