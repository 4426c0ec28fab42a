//! What every `gan-cli train <model>` shares once it has its run configuration: opening a run to
//! resume (refusing a run of another kind with the command that resumes it), Ctrl-C, the
//! progress bar, evaluation during training, the report, the summary and the exit codes; and
//! removing a new run folder again when training fails before its first checkpoint, so that
//! the corrected command can use the same `--out`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::bail;
use gan_models::engine::{FitOutcome, StepRecord};
use gan_models::monitor::RunMonitor;
use gan_models::registry::RunConfig;
use gan_models::run::{RunDir, LATEST};
use gan_models::train::Observer;

use crate::eval_cmd::TrainEvalArgs;
use crate::progress::TrainProgress;

/// The flags of the `train` subcommand given on the command line (clap ids: `batch_size`, …),
/// not from a default or the environment.
static GIVEN: OnceLock<Vec<String>> = OnceLock::new();

/// Records which flags of `gan-cli train <model>` were typed (call once, from `main`).
pub fn set_given_flags(matches: &clap::ArgMatches) {
    let mut given = Vec::new();
    if let Some(("train", m)) = matches.subcommand() {
        if let Some((model, m)) = m.subcommand() {
            // Arguments only: the derive also records its flattened groups (`RunFlags`) as ids.
            let cli = <crate::args::Cli as clap::CommandFactory>::command();
            let args: Vec<String> = cli
                .find_subcommand("train")
                .and_then(|t| t.find_subcommand(model))
                .map(|c| c.get_arguments().map(|a| a.get_id().to_string()).collect())
                .unwrap_or_default();
            for id in m.ids() {
                let typed =
                    m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine);
                if typed && args.iter().any(|a| a == id.as_str()) {
                    given.push(id.as_str().to_string());
                }
            }
        }
    }
    let _ = GIVEN.set(given);
}

fn flag(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// Flags that may be given with `--resume` by every train command: the length, the cadences,
/// evaluation, the device and `--keep-going`. A command adds the ones it applies (its learning
/// rates).
pub const RESUMABLE: [&str; 19] = [
    "resume",
    "steps",
    "epochs",
    "epochs_decay",
    "keep_going",
    "eval_every",
    "eval_count",
    "evaluator",
    "inception_weights",
    "inception_repo",
    "inception_file",
    "datasets_dir",
    "sample_every",
    "checkpoint_every",
    "log_every",
    "device",
    "lr",
    "lr_g",
    "lr_d",
];

/// Refuses the flags given with `--resume` that cannot apply to a run in progress (its networks,
/// data, batch size, losses, seed were fixed when it started), naming the first such flag.
/// `also` lists the command's own flags that it applies on resume.
pub fn check_resume_flags(dir: &Path, also: &[&str]) -> anyhow::Result<Vec<String>> {
    let given = GIVEN.get().cloned().unwrap_or_default();
    let mut fixed: Vec<String> = given
        .iter()
        .filter(|g| !RESUMABLE.contains(&g.as_str()) && !also.contains(&g.as_str()))
        .map(|g| flag(g))
        .collect();
    fixed.sort();
    if !fixed.is_empty() {
        let mut ok: Vec<String> = RESUMABLE[1..].iter().map(|f| flag(f)).collect();
        ok.extend(also.iter().map(|f| flag(f)));
        bail!(
            "{} cannot change when resuming {}: the run's networks, data and training settings \
             were fixed when it started and its checkpoint holds them (start a new run with --out \
             to change them); with --resume you may give {}",
            fixed.join(", "),
            dir.display(),
            ok.join(", ")
        );
    }
    Ok(given)
}

/// Whether flag `id` (a clap id: `sample_every`) was typed on the command line.
pub fn given(id: &str) -> bool {
    GIVEN.get().is_some_and(|g| g.iter().any(|x| x == id))
}

/// Applies the flags every command takes on resume, where typed: the cadences, `--keep-going`
/// (or its absence) and `--device`.
pub fn apply_on_resume(
    run: &crate::args::RunFlags,
    schedule: &mut gan_models::train::LoopConfig,
    device: &mut String,
) {
    run.apply_schedule(schedule);
    if given("device") {
        device.clone_from(&run.device);
    }
}

/// Rewrites `config.json` of a resumed run with the values changed by flags (the configuration
/// `after`, against `before`) and appends to its `history` what changed at which step:
/// `{"step": 300, "changed": {"schedule.steps": [1000, 2000], "adam_g.lr": [0.0002, 0.0001]}}`.
pub fn record_changes(run: &RunDir, before: &RunConfig, after: &RunConfig) -> anyhow::Result<()> {
    let old = serde_json::to_value(before)?;
    let new = serde_json::to_value(after)?;
    let mut changed = serde_json::Map::new();
    diff("", &old, &new, &mut changed);
    if changed.is_empty() {
        return Ok(());
    }
    let step = latest_step(run).unwrap_or(0);
    let mut written: serde_json::Value = run.config()?;
    let history = written
        .get("history")
        .cloned()
        .unwrap_or_else(|| serde_json::Value::Array(Vec::new()));
    let mut history = match history {
        serde_json::Value::Array(h) => h,
        _ => Vec::new(),
    };
    let text: Vec<String> = changed
        .iter()
        .map(|(k, v)| format!("{k} {} → {}", v[0], v[1]))
        .collect();
    tracing::info!("resuming at step {step} with {}", text.join(", "));
    history.push(serde_json::json!({ "step": step, "changed": changed }));
    written = new;
    written["history"] = serde_json::Value::Array(history);
    gan_models::run::write_json(&run.root().join("config.json"), &written)?;
    Ok(())
}

/// The step of the run's `latest` checkpoint, if it has one.
fn latest_step(run: &RunDir) -> Option<u64> {
    run.checkpoint(LATEST)
        .ok()
        .and_then(|d| std::fs::read_to_string(d.join("state.json")).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64))
}

fn diff(
    path: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    out: &mut serde_json::Map<String, serde_json::Value>,
) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            for (k, vb) in y {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match x.get(k) {
                    Some(va) => diff(&p, va, vb, out),
                    None => {
                        out.insert(p, serde_json::json!([null, vb]));
                    }
                }
            }
        }
        _ if a != b => {
            out.insert(path.to_string(), serde_json::json!([a, b]));
        }
        _ => {}
    }
}

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

/// A run about to train: its folder, its model's configuration `C`, its data `D`, and whether
/// it continues from a checkpoint.
#[derive(Debug)]
pub struct Session<C, D> {
    pub run: RunDir,
    pub cfg: C,
    pub data: D,
    pub resume: bool,
}

/// Opens the run of `gan-cli train <command>` (which trains the models `accepts`): with
/// `resume` (`--resume DIR`), the run there, refused when it is of another model; `on_resume`
/// applies the flags that may change and returns the run's data, and what changed is recorded
/// in its `config.json`. Without it, `create` gives the new configuration, its data and the
/// folder to create.
pub fn open_or_create<C, D>(
    resume: Option<&Path>,
    command: &str,
    accepts: &[&str],
    on_resume: impl FnOnce(&Path, &RunDir, &mut C) -> anyhow::Result<D>,
    create: impl FnOnce() -> anyhow::Result<(PathBuf, C, D)>,
) -> anyhow::Result<Session<C, D>>
where
    C: Clone + Into<RunConfig> + TryFrom<RunConfig>,
{
    match resume {
        Some(dir) => {
            let (run, cfg) = open_for_resume(dir, command, accepts)?;
            let Ok(mut cfg) = C::try_from(cfg) else {
                bail!("{}: not a {command} run", dir.display())
            };
            let before: RunConfig = cfg.clone().into();
            let data = on_resume(dir, &run, &mut cfg)?;
            record_changes(&run, &before, &cfg.clone().into())?;
            Ok(Session {
                run,
                cfg,
                data,
                resume: true,
            })
        }
        None => {
            let (out, cfg, data) = create()?;
            let any: RunConfig = cfg.clone().into();
            Ok(Session {
                run: RunDir::create(&out, &any)?,
                cfg,
                data,
                resume: false,
            })
        }
    }
}

/// Where evaluation during training reads from: the `--eval-every` flags (`None`: the model
/// has no `--eval-every`) and the folder of named datasets and evaluators.
pub type EvalFrom<'a> = (Option<&'a TrainEvalArgs>, &'a Path);

impl<C: Clone + Into<RunConfig>, D> Session<C, D> {
    /// Trains through `train` (the model's `train_*` function, called with the observer it is
    /// given) and reports: the last step's numbers, speed and paths; exit code 0, 2 on
    /// divergence (after the report is written) and 130 on Ctrl-C. A new run that fails before
    /// its first checkpoint is removed again.
    pub fn train<M: StepRecord>(
        self,
        (eval, datasets_dir): EvalFrom<'_>,
        train: impl FnOnce(
            &RunDir,
            &C,
            &D,
            bool,
            &mut dyn Observer<M>,
        ) -> gan_models::Result<FitOutcome<M>>,
    ) -> anyhow::Result<ExitCode> {
        let Session {
            run,
            cfg,
            data,
            resume,
        } = self;
        let any: RunConfig = cfg.clone().into();
        tracing::info!(run = %run.root().display(), "{}", any.describe());
        let result = train_and_report(&run, &any, resume, eval, datasets_dir, |r, resume, o| {
            train(r, &cfg, &data, resume, o)
        });
        if result.is_err() && !resume {
            discard_if_unstarted(&run);
        }
        result
    }
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
    let start = if resume {
        latest_step(run).unwrap_or(0)
    } else {
        0
    };
    if resume && start >= steps {
        bail!(
            "{}: the run has finished its {steps} steps (its latest checkpoint is at step \
             {start}), so there is nothing to train: give --steps or --epochs with a longer \
             length to train on",
            run.root().display()
        );
    }
    let no_eval = TrainEvalArgs::none();
    let datasets_dir = crate::embedded::datasets_dir(datasets_dir)?;
    let eval = eval.unwrap_or(&no_eval);
    // A translation model is scored on its translations of the test images; the others on
    // samples of their generator.
    let (monitor_cfg, setup, translation) = match cfg {
        RunConfig::CycleGan(c) => {
            let (m, t) = crate::eval_cmd::translation_monitor_setup(eval, c, &datasets_dir, steps)?;
            (m, None, t)
        }
        _ => {
            let (m, s) = crate::eval_cmd::monitor_setup(
                eval,
                &cfg.data_name(),
                &datasets_dir,
                cfg.device(),
                steps,
            )?;
            (m, s, None)
        }
    };
    let stop = crate::stop_on_ctrl_c()?;
    let mut progress = TrainProgress::<M>::new(start, steps, cfg.item_unit(), stop);
    let dev = gan_models::dcgan_run::parse_device(cfg.device())?;
    let mut monitor = RunMonitor::new(&mut progress, run.clone(), setup, monitor_cfg, dev);
    if let RunConfig::Cgan(c) = cfg {
        monitor = monitor.with_class_names(c.classes.clone());
    }
    if let Some(t) = translation {
        monitor = monitor.with_translation(t);
    }
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
