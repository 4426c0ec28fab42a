//! `cargo xtask train-evaluator mnist|fashion-mnist`: trains the small classifier whose features
//! and class probabilities `gan-cli eval` scores samples with, and writes its weights, training
//! settings and test accuracy into `datasets/evaluators/` (committed).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle_core::Device;
use gan_data::{Mnist, Splits};
use gan_models::evaluator::{save_evaluator, train_classifier, EvaluatorTrainConfig};

#[derive(clap::Args)]
pub struct TrainEvaluatorArgs {
    /// mnist (the full MNIST when `datasets/mnist` is there, else the embedded mnist-mini) or
    /// fashion-mnist.
    name: String,
    /// Where the datasets live.
    #[arg(long, default_value = "datasets")]
    datasets_dir: PathBuf,
    /// Override the number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed of the weights, the batch order and the augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write NAME.safetensors and NAME.json (default: DATASETS_DIR/evaluators).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The minimum test accuracy the issue asks of each evaluator.
fn required_accuracy(trained_on: &str) -> f64 {
    match trained_on {
        "mnist" => 0.99,
        "mnist-mini" => 0.97,
        _ => 0.90,
    }
}

pub fn run(root: &Path, a: TrainEvaluatorArgs) -> anyhow::Result<()> {
    // As in gan-cli: one candle thread, the convolutions run on rayon.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let datasets = root.join(&a.datasets_dir);
    let trained_on = match a.name.as_str() {
        "mnist" if gan_data::mnist::is_complete(&datasets.join("mnist")) => "mnist",
        "mnist" => "mnist-mini",
        "fashion-mnist" => "fashion-mnist",
        other => bail!("unknown evaluator {other:?} (expected mnist or fashion-mnist)"),
    };
    let dir = datasets.join(trained_on);
    let Splits { train, test } = Mnist::load(&dir).with_context(|| {
        format!(
            "cannot load {trained_on} from {} (for fashion-mnist run `cargo xtask fetch-fashion-mnist`)",
            dir.display()
        )
    })?;
    let mut cfg = EvaluatorTrainConfig::for_dataset(trained_on, gan_data::Dataset::len(&train));
    cfg.seed = a.seed;
    if let Some(e) = a.epochs {
        cfg.epochs = e;
    }
    eprintln!(
        "training the {} evaluator on {trained_on} ({} train / {} test images): {:?}",
        a.name,
        gan_data::Dataset::len(&train),
        gan_data::Dataset::len(&test),
        cfg
    );
    let (_, vars, mut card) =
        train_classifier(&cfg, &train, &test, &Device::Cpu, &mut |l| eprintln!("{l}"))?;
    card.name = a.name.clone();
    card.trained_on = trained_on.into();
    card.command = format!(
        "cargo xtask train-evaluator {} --seed {}{}",
        a.name,
        a.seed,
        a.epochs
            .map(|e| format!(" --epochs {e}"))
            .unwrap_or_default()
    );
    let out = a.out.unwrap_or_else(|| datasets.join("evaluators"));
    save_evaluator(&out, &vars, &card)?;
    println!(
        "{}: test accuracy {:.2}% on {} {trained_on} test images ({:.0} s); wrote {}",
        a.name,
        card.test_accuracy * 100.0,
        card.test_items,
        card.seconds,
        out.join(format!("{}.{{safetensors,json}}", a.name))
            .display()
    );
    let need = required_accuracy(trained_on);
    if card.test_accuracy < need {
        bail!(
            "test accuracy {:.2}% is below the required {:.1}%",
            card.test_accuracy * 100.0,
            need * 100.0
        );
    }
    Ok(())
}
