//! The training engine shared by every model: divergence handling, learning-rate schedules,
//! the stream table, the registry, and run folders that fail before their first checkpoint.

use gan_data::ToyDistribution;
use gan_models::engine::{LrSchedule, OnDivergence};
use gan_models::health::WarningKind;
use gan_models::registry::RunConfig;
use gan_models::run::RunDir;
use gan_models::streams;
use gan_models::toy::{load_toy_generator, train_toy, Activation, MlpConfig, ToyConfig};
use gan_models::train::{LoopConfig, Silent};

/// A toy run that diverges: Adam at a learning rate of 1e6 sends the weights to infinity within
/// a few steps.
fn diverging_toy(on_divergence: OnDivergence) -> ToyConfig {
    let mut cfg = ToyConfig::new(ToyDistribution::Ring8);
    let mlp = MlpConfig {
        width: 16,
        depth: 2,
        activation: Activation::Relu,
    };
    cfg.generator = mlp;
    cfg.discriminator = mlp;
    cfg.adam_g.lr = 1e6;
    cfg.adam_d.lr = 1e6;
    cfg.lr_decay.milestones = Vec::new();
    cfg.train_points = 2048;
    cfg.eval_samples = 100;
    cfg.schedule = LoopConfig {
        steps: 300,
        sample_every: 0,
        checkpoint_every: 1,
        log_every: 1000,
        on_divergence,
    };
    cfg
}

fn finite_weights(run: &RunDir) -> bool {
    let dir = run.checkpoint("latest").unwrap();
    ["generator.safetensors", "discriminator.safetensors"]
        .iter()
        .all(|f| {
            candle_core::safetensors::load(dir.join(f), &candle_core::Device::Cpu)
                .unwrap()
                .values()
                .all(|t| {
                    t.flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                        .iter()
                        .all(|v| v.is_finite())
                })
        })
}

fn latest_step(run: &RunDir) -> u64 {
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.checkpoint("latest").unwrap().join("state.json")).unwrap(),
    )
    .unwrap();
    state["step"].as_u64().unwrap()
}

/// Divergence stops the run at the step where it happens: the warning names the step and the
/// last finite checkpoint, is logged in metrics.jsonl and shown by the report, and
/// `checkpoints/latest` keeps the last finite weights.
#[test]
fn divergence_stops_the_run_and_keeps_the_last_finite_checkpoint() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let cfg = diverging_toy(OnDivergence::Stop);
    let run = RunDir::create(tmp.path().join("nan"), &cfg)?;
    let out = train_toy(&run, &cfg, false, &mut Silent)?;
    let w = out.fit.diverged.expect("lr 1e6 diverges");
    eprintln!("{}", w.message);
    assert_eq!(w.kind, WarningKind::NonFinite);
    assert!(w.step < 300, "stopped at {}", w.step);
    assert_eq!(out.fit.step, w.step, "the loop stops at the divergent step");
    assert!(w.message.contains(&format!("step {}", w.step)));
    assert!(w.message.contains("lower learning rate") || w.message.contains("lower --lr"));
    if w.step > 1 {
        // Checkpoints every step: the last finite one is the step before.
        assert_eq!(latest_step(&run), w.step - 1);
        assert!(w.message.contains("checkpoints/latest"));
        assert!(finite_weights(&run));
    }
    // The divergent step and the warning are in metrics.jsonl, and the report shows it.
    let text = std::fs::read_to_string(run.metrics_path())?;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let warning = lines
        .iter()
        .find(|l| l.get("warning").is_some())
        .expect("a warning line");
    assert_eq!(warning["warning"]["kind"], "non-finite");
    assert_eq!(warning["step"].as_u64(), Some(w.step));
    assert!(lines
        .iter()
        .any(|l| l["step"].as_u64() == Some(w.step) && l.get("loss_d").is_some()));
    let html = gan_models::report::render_report(&run)?;
    assert!(html.contains("divergence"), "the report shows the warning");
    assert!(!html.contains("No warning"));
    Ok(())
}

/// With `OnDivergence::Continue` the run trains to the end but writes no checkpoint after the
/// divergent step.
#[test]
fn divergence_can_go_on_without_checkpointing_nan() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut cfg = diverging_toy(OnDivergence::Continue);
    cfg.schedule.steps = 60;
    let run = RunDir::create(tmp.path().join("nan"), &cfg)?;
    let out = train_toy(&run, &cfg, false, &mut Silent)?;
    let w = out.fit.diverged.expect("lr 1e6 diverges");
    assert_eq!(out.fit.step, 60, "the run went on");
    if w.step > 1 {
        assert_eq!(latest_step(&run), w.step - 1);
        assert!(finite_weights(&run));
    }
    // The generator of `latest` still samples finite points.
    if w.step > 1 {
        let g = load_toy_generator(&run, "latest", &candle_core::Device::Cpu)?;
        assert!(g
            .sample(16, 1)?
            .iter()
            .all(|p| p.iter().all(|v| v.is_finite())));
    }
    Ok(())
}

/// The schedules' factors: PyTorch's `MultiStepLR` and the CycleGAN reference's linear decay.
#[test]
fn learning_rate_schedules() {
    let m = LrSchedule::Milestones {
        steps: vec![50, 75],
        gamma: 0.1,
    };
    assert_eq!(m.factor(0), 1.0);
    assert_eq!(m.factor(49), 1.0);
    assert!((m.factor(50) - 0.1).abs() < 1e-15);
    assert!((m.factor(80) - 0.01).abs() < 1e-15);
    assert!(m.is_milestone(75) && !m.is_milestone(76));
    // 10 steps an epoch, 2 epochs constant, 3 of decay: epoch e has 1 - max(0, e + 1 - 2) / 4.
    let l = LrSchedule::LinearDecay {
        steps_per_epoch: 10,
        epochs: 2,
        epochs_decay: 3,
    };
    let want = [1.0, 1.0, 0.75, 0.5, 0.25];
    for (e, w) in want.iter().enumerate() {
        for done in [10 * e as u64, 10 * e as u64 + 9] {
            assert!((l.factor(done) - w).abs() < 1e-15, "epoch {e}");
        }
    }
    assert_eq!(LrSchedule::Constant.factor(123), 1.0);
}

/// Version 2 of the stream table shuffles batches from a stream of their own; version 1 (every
/// run written before the table) keeps the seed itself, which is the initialisation's stream.
#[test]
fn batch_order_has_its_own_stream() {
    for seed in [0u64, 1, 42] {
        assert_eq!(streams::batch_seed(seed, 1), seed);
        assert_ne!(streams::batch_seed(seed, 2), seed);
        assert_eq!(streams::batch_seed(seed, 2), streams::batch_seed(seed, 2));
    }
    let mut streams_used = vec![
        streams::INIT_G,
        streams::INIT_D,
        streams::NOISE,
        streams::FIXED_NOISE,
        streams::TOY_DATA,
        streams::TOY_PLOT,
        streams::BATCH_ORDER,
        streams::INIT_G_BA,
        streams::INIT_D_B,
    ];
    streams_used.sort_unstable();
    streams_used.dedup();
    assert_eq!(streams_used.len(), 9, "every use has its own stream");
    assert_eq!(streams::cyclegan_init(1), [0, 1, 2, 3]);
    // A config written before `streams` existed reads as version 1.
    let mut v = serde_json::to_value(ToyConfig::new(ToyDistribution::Ring8)).unwrap();
    assert_eq!(v["streams"], 2);
    v.as_object_mut().unwrap().remove("streams");
    let old: ToyConfig = serde_json::from_value(v).unwrap();
    assert_eq!(old.streams, 1);
}

/// The registry reads each kind by its `model` and names what it cannot read.
#[test]
fn registry_reads_by_model_and_names_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = ToyConfig::new(ToyDistribution::Grid25);
    let run = RunDir::create(tmp.path().join("toy"), &cfg).unwrap();
    let read = RunConfig::read(&run).unwrap();
    assert_eq!(read.model(), "toy");
    assert_eq!(read, RunConfig::Toy(cfg));
    assert_eq!(read.item_unit(), "pts");

    let p = tmp.path().join("bad");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("config.json"), r#"{"model": "stylegan"}"#).unwrap();
    let e = RunConfig::read(&RunDir::open(&p).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("config.json") && e.contains("stylegan") && e.contains("dcgan"),
        "{e}"
    );
    std::fs::write(p.join("config.json"), r#"{"model": "dcgan", "seed": 1}"#).unwrap();
    let e = RunConfig::read(&RunDir::open(&p).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("a dcgan run configuration"), "{e}");
}

/// A run that holds no checkpoint can be discarded (the CLI does so when training fails before
/// the first one), after which the same folder takes a new run; one with a checkpoint cannot.
#[test]
fn a_run_without_checkpoint_is_discarded_and_the_folder_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = ToyConfig::new(ToyDistribution::Ring8);
    let root = tmp.path().join("run");
    let run = RunDir::create(&root, &cfg).unwrap();
    let again = RunDir::create(&root, &cfg).unwrap_err().to_string();
    assert!(again.contains("no checkpoint"), "{again}");
    run.discard().unwrap();
    assert!(!root.exists());
    let run = RunDir::create(&root, &cfg).unwrap();
    run.write_checkpoint("latest", |d| {
        std::fs::write(d.join("state.json"), "{}")
            .map_err(|e| gan_models::ModelError::Config(e.to_string()))
    })
    .unwrap();
    assert!(run.discard().is_err());
    assert!(root.join("config.json").is_file());
    // A temporary folder left by a killed checkpoint write is removed at the next start.
    let stale = run.checkpoints_dir().join(".tmp-latest-99999");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("generator.safetensors"), [0u8; 64]).unwrap();
    assert_eq!(run.remove_stale_temporaries(), vec![stale.clone()]);
    assert!(!stale.exists());
}
