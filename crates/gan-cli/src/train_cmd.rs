//! What every `gan-cli train <model>` shares once it has its run configuration: opening a run to
//! resume (refusing a run of another kind with the command that resumes it), Ctrl-C, the
//! progress bar, evaluation during training, the report, the summary and the exit codes; and
//! removing a new run folder again when training fails before its first checkpoint, so that
//! the corrected command can use the same `--out`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use gan_models::engine::{FitOutcome, StepRecord};
use gan_models::monitor::RunMonitor;
use gan_models::registry::RunConfig;
use gan_models::run::{RunDir, LATEST};
use gan_models::train::Observer;

use crate::eval_cmd::TrainEvalArgs;
use crate::progress::TrainProgress;

/// Opens `dir` to resume it with `gan-cli train <command>`, which trains the models `accepts`;
/// a run of another kind is refused with the command that resumes it.
pub fn open_for_resume(
    dir: &Path,
    command: &str,
    accepts: &[&str],
) -> anyhow::Result<(RunDir, RunConfig)> {
    let run = RunDir::open(dir)?;
    let cfg = RunConfig::read(&run)?;
    if !accepts.contains(&cfg.model()) {
        bail!(
            "{} is a {} run, not a {command} run; resume it with: gan-cli train {} --resume {}",
            dir.display(),
            cfg.model(),
            cfg.model(),
            dir.display()
        );
    }
    Ok((run, cfg))
}

/// A run about to train: its folder, configuration, and whether it continues from a checkpoint.
#[derive(Debug)]
pub struct Session<'a> {
    pub run: RunDir,
    pub cfg: RunConfig,
    pub resume: bool,
    /// Evaluation during training (`None`: the model has no `--eval-every`).
    pub eval: Option<&'a TrainEvalArgs>,
    /// Where named datasets and evaluators live.
    pub datasets_dir: &'a Path,
}

/// Trains through `train` (which calls the model's `train_*` function with the observer it is
/// given) and reports: the last step's numbers, speed and paths; exit code 0, 2 on divergence
/// (after the report is written) and 130 on Ctrl-C.
pub fn run_training<M: StepRecord>(
    s: Session<'_>,
    train: impl FnOnce(&RunDir, bool, &mut dyn Observer<M>) -> gan_models::Result<FitOutcome<M>>,
) -> anyhow::Result<ExitCode> {
    let Session {
        run,
        cfg,
        resume,
        eval,
        datasets_dir,
    } = s;
    let result = train_and_report(&run, &cfg, resume, eval, datasets_dir, train);
    if result.is_err() && !resume {
        discard_if_unstarted(&run);
    }
    result
}

fn train_and_report<M: StepRecord>(
    run: &RunDir,
    cfg: &RunConfig,
    resume: bool,
    eval: Option<&TrainEvalArgs>,
    datasets_dir: &Path,
    train: impl FnOnce(&RunDir, bool, &mut dyn Observer<M>) -> gan_models::Result<FitOutcome<M>>,
) -> anyhow::Result<ExitCode> {
    let steps = cfg.schedule().steps;
    let (monitor_cfg, setup) = match eval {
        Some(e) => {
            crate::eval_cmd::monitor_setup(e, &cfg.data_name(), datasets_dir, cfg.device(), steps)?
        }
        None => crate::eval_cmd::monitor_setup(
            &TrainEvalArgs::none(),
            "",
            datasets_dir,
            cfg.device(),
            steps,
        )?,
    };
    let stop = crate::stop_on_ctrl_c()?;
    let mut progress = TrainProgress::<M>::new(steps, cfg.item_unit(), stop);
    let dev = gan_models::dcgan_run::parse_device(cfg.device())?;
    let mut monitor = RunMonitor::new(&mut progress, run.clone(), setup, monitor_cfg, dev);
    let outcome = train(run, resume, &mut monitor)?;
    drop(monitor);
    progress.finish();
    let report = gan_models::report::write_report(run)?;
    if let Some(m) = &outcome.last {
        println!("step {}: {}", m.step(), m.summary());
    }
    println!(
        "{:.1} ms per step; samples in {}, checkpoint in {}, report in {}",
        outcome.secs_per_step * 1e3,
        run.samples_dir().display(),
        run.checkpoints_dir().join(LATEST).display(),
        report.display()
    );
    if let Some(w) = &outcome.diverged {
        eprintln!("error: {}", w.message);
        return Ok(ExitCode::from(2));
    }
    if outcome.interrupted {
        println!(
            "interrupted at step {}; continue with: gan-cli train {} --resume {}",
            outcome.step,
            cfg.model(),
            run.root().display()
        );
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes what a new run wrote if no checkpoint exists yet (the error came before any training
/// state worth keeping), so that the corrected command can reuse the folder.
fn discard_if_unstarted(run: &RunDir) {
    if run.checkpoint(LATEST).is_ok() {
        return;
    }
    match run.discard() {
        Ok(()) => tracing::info!(
            "removed the new run folder {} (nothing was trained)",
            run.root().display()
        ),
        Err(e) => tracing::warn!("cannot remove {}: {e}", run.root().display()),
    }
}
