//! `gan-cli train toy` and sampling of toy runs: flags into a [`ToyConfig`], then the library's
//! [`train_toy`] with a progress bar.

use std::path::Path;
use std::process::ExitCode;

use gan_data::ToyDistribution;
use gan_models::dcgan_run::parse_device;
use gan_models::run::RunDir;
use gan_models::toy::{
    load_toy_generator, train_toy, write_points_csv, Activation, ToyConfig, ToyLoss,
};

use crate::train_cmd::{apply_on_resume, check_resume_flags, open_or_create};

fn parse_dist(s: &str) -> Result<ToyDistribution, String> {
    s.parse().map_err(|e: gan_data::DataError| e.to_string())
}

fn parse_loss(s: &str) -> Result<ToyLoss, String> {
    s.parse().map_err(|e: gan_models::ModelError| e.to_string())
}

fn parse_activation(s: &str) -> Result<Activation, String> {
    s.parse().map_err(|e: gan_models::ModelError| e.to_string())
}

/// Flags of `gan-cli train toy`. Unset flags take the defaults of `ToyConfig::new` (new runs)
/// or the saved config (`--resume`, where only `--steps` may change).
#[derive(Debug, clap::Args)]
pub struct TrainToyArgs {
    /// ring8, grid25 or ring.
    #[arg(long, default_value = "ring8", value_parser = parse_dist)]
    pub dist: ToyDistribution,
    /// Steps to train (default 7000; 40000 for grid25; with wgan-gp 3000, 8000 for grid25); with --resume, the new total length.
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// non-saturating, minimax or wgan-gp (a critic with a gradient penalty; pack 1, Adam 1e-4
    /// β2 0.9 unless set).
    #[arg(long, value_parser = parse_loss)]
    pub loss: Option<ToyLoss>,
    /// PacGAN packing: the discriminator sees K samples concatenated (1: no packing; default 2, 3 for grid25, 1 for wgan-gp).
    #[arg(long, value_name = "K")]
    pub pack: Option<usize>,
    /// WGAN-GP: critic iterations per generator step (default 5).
    #[arg(long, value_name = "N")]
    pub n_critic: Option<usize>,
    /// WGAN-GP: the gradient penalty's weight λ (default 0.1, the WGAN-GP paper's toy value).
    #[arg(long, value_name = "LAMBDA")]
    pub lambda: Option<f64>,
    /// Hidden units per layer of both networks (default 128; grid25: 64 for the generator and
    /// 128 for the discriminator, 64 for both with wgan-gp).
    #[arg(long, value_name = "N")]
    pub width: Option<usize>,
    /// Hidden layers of both networks (default 3).
    #[arg(long, value_name = "N")]
    pub depth: Option<usize>,
    /// relu, leaky-relu or tanh (default relu).
    #[arg(long, value_parser = parse_activation)]
    pub activation: Option<Activation>,
    /// The discriminator's hidden units per layer, when it should differ from --width (grid25:
    /// 128 unless --width is given).
    #[arg(long, value_name = "N")]
    pub d_width: Option<usize>,
    /// The discriminator's hidden layers, when they should differ from --depth.
    #[arg(long, value_name = "N")]
    pub d_depth: Option<usize>,
    /// The discriminator's activation, when it should differ from --activation.
    #[arg(long, value_parser = parse_activation)]
    pub d_activation: Option<Activation>,
    /// The unit of the networks' coordinates: G's output is multiplied by it, D's input divided by
    /// it (default 4 for grid25, else 1).
    #[arg(long, value_name = "UNIT")]
    pub scale: Option<f64>,
    /// Noise dimensions (default 2).
    #[arg(long, value_name = "N")]
    pub nz: Option<usize>,
    #[command(flatten)]
    pub lr: crate::args::LrFlags,
    /// Learning-rate milestones as fractions of --steps, comma-separated (default 0.5,0.75; 0.7,0.9 for grid25); at
    /// each, both rates are multiplied by --lr-gamma. An empty list keeps them constant.
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    pub lr_milestones: Option<Vec<f64>>,
    /// Factor on the learning rates at each milestone (default 0.1).
    #[arg(long, value_name = "FACTOR")]
    pub lr_gamma: Option<f64>,
    /// Points per batch, a multiple of --pack (default 256, 378 for grid25 except with wgan-gp).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Generated points per evaluation (default 2500, as PacGAN).
    #[arg(long, value_name = "N")]
    pub eval_samples: Option<usize>,
    /// CPU threads for tensor operations. The toy networks are too small to gain much from more,
    /// and on a busy machine extra threads waiting on each other cost far more than they save.
    /// RAYON_NUM_THREADS, when set, takes precedence.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[command(flatten)]
    pub run: crate::args::RunFlags,
}

impl TrainToyArgs {
    fn config(&self) -> ToyConfig {
        let mut cfg = ToyConfig::with_loss(self.dist, self.loss.unwrap_or_default());
        let set = |v: Option<usize>, dst: &mut usize| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(self.width, &mut cfg.generator.width);
        set(self.width, &mut cfg.discriminator.width);
        set(self.depth, &mut cfg.generator.depth);
        set(self.depth, &mut cfg.discriminator.depth);
        set(self.nz, &mut cfg.nz);
        set(self.pack, &mut cfg.pack);
        set(self.batch_size, &mut cfg.batch_size);
        set(self.eval_samples, &mut cfg.eval_samples);
        if let Some(a) = self.activation {
            cfg.generator.activation = a;
            cfg.discriminator.activation = a;
        }
        set(self.d_width, &mut cfg.discriminator.width);
        set(self.d_depth, &mut cfg.discriminator.depth);
        if let Some(a) = self.d_activation {
            cfg.discriminator.activation = a;
        }
        set(self.n_critic, &mut cfg.critic.n_critic);
        if let Some(l) = self.lambda {
            cfg.critic.lambda = l;
        }
        self.lr.apply(&mut cfg.adam_g.lr, &mut cfg.adam_d.lr);
        if let Some(v) = self.scale {
            cfg.scale = v;
        }
        if let Some(m) = &self.lr_milestones {
            cfg.lr_decay.milestones = m.clone();
        }
        if let Some(g) = self.lr_gamma {
            cfg.lr_decay.gamma = g;
        }
        let s = &mut cfg.schedule;
        if let Some(steps) = self.steps {
            // Evaluations and checkpoints keep their share of the run.
            s.steps = steps;
            s.sample_every = (steps / 10).max(1);
            s.checkpoint_every = (steps / 4).max(1);
        }
        cfg.seed = self.run.seed;
        cfg.device = self.run.device.clone();
        self.run.apply_schedule(&mut cfg.schedule);
        cfg
    }
}

/// Runs `gan-cli train toy`.
pub fn train(a: TrainToyArgs) -> anyhow::Result<ExitCode> {
    // Read by candle and rayon when they first run; nothing has run yet.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", a.threads.max(1).to_string());
    }
    let session = open_or_create(
        a.run.resume.as_deref(),
        "toy",
        &["toy"],
        |dir, _, cfg: &mut ToyConfig| {
            check_resume_flags(dir, &["threads"])?;
            apply_on_resume(&a.run, &mut cfg.schedule, &mut cfg.device);
            a.lr.apply(&mut cfg.adam_g.lr, &mut cfg.adam_d.lr);
            if let Some(steps) = a.steps {
                cfg.schedule.steps = steps;
            }
            Ok(())
        },
        || {
            let cfg = a.config();
            cfg.validate()?;
            Ok((a.run.out_dir(&format!("toy-{}", cfg.dist)), cfg, ()))
        },
    )?;
    let started = std::time::Instant::now();
    let mut modes = None;
    // The toy's evaluation is its mode metrics, at every sample plot (--sample-every).
    let code = session.train(
        (None, Path::new("datasets")),
        |run, cfg, _, resume, observer| {
            let out = train_toy(run, cfg, resume, observer)?;
            modes = out.modes;
            Ok(out.fit)
        },
    )?;
    if let Some(m) = modes {
        println!(
            "modes {}/{}, high quality {:.1}%, reverse KL {:.4} ({} samples); {:.1} s in all",
            m.modes_captured,
            m.modes_total,
            100.0 * m.high_quality_share,
            m.reverse_kl,
            m.samples,
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(code)
}

/// `gan-cli sample` for a toy run: writes `count` points as `x,y` rows of a CSV file.
pub fn sample(
    run: &Path,
    checkpoint: &str,
    count: usize,
    out: &Path,
    seed: u64,
) -> anyhow::Result<ExitCode> {
    if !out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        anyhow::bail!(
            "--out {}: a toy run samples 2D points, written as CSV text: give a path ending in \
             .csv",
            out.display()
        );
    }
    let run = RunDir::open(run)?;
    let g = load_toy_generator(&run, checkpoint, &parse_device("cpu")?)?;
    let points = g.sample(count, seed)?;
    write_points_csv(out, &points)?;
    println!("wrote {count} points to {}", out.display());
    Ok(ExitCode::SUCCESS)
}
