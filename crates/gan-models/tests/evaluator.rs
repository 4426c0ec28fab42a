//! The committed evaluators and the scores they give: real images near the ideal, uniform noise
//! and one repeated image far from it; the classifier's training is seeded and learns.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use gan_core::rng::SeededRng;
use gan_data::{Dataset, ImageSource, TensorDataset};
use gan_models::evaluator::{
    evaluate, load_setup, test_accuracy, train_classifier, ClassifierConfig, ClassifierEvaluator,
    EvalReport, EvalSetup, EvaluatorTrainConfig,
};

fn datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

fn mnist_setup() -> EvalSetup {
    load_setup("mnist", &datasets(), &Device::Cpu).expect("the committed mnist evaluator loads")
}

/// `n` random items of `ds` (the IDX splits are sorted by class).
fn random_subset(ds: &TensorDataset, n: usize, seed: u64) -> TensorDataset {
    let mut rng = SeededRng::new(seed);
    let mut order: Vec<usize> = (0..ds.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    order.truncate(n);
    ds.subset(&order)
}

fn mnist_train(n: usize) -> TensorDataset {
    let src = ImageSource::resolve(Some("mnist-mini"), &datasets()).unwrap();
    random_subset(&src.load_train(28, 1).unwrap(), n, 1)
}

fn print(what: &str, r: &EvalReport) {
    eprintln!("{what}:\n{}", r.table());
}

#[test]
fn committed_evaluators_match_their_cards() {
    let dir = datasets().join("evaluators");
    let ev = ClassifierEvaluator::load(&dir, "mnist", &Device::Cpu).unwrap();
    assert!(ev.card.test_accuracy >= 0.97, "{:?}", ev.card);
    let src = ImageSource::resolve(Some(&ev.card.trained_on), &datasets()).unwrap();
    let test = src.load_test(28).unwrap();
    let (acc, _) = test_accuracy(ev.classifier(), &test, &Device::Cpu).unwrap();
    assert!(
        (acc - ev.card.test_accuracy).abs() < 1e-9,
        "measured {acc}, card says {}",
        ev.card.test_accuracy
    );
    // Fashion-MNIST's card (its data is fetched by CI; the card is always committed).
    let fashion = ClassifierEvaluator::load(&dir, "fashion-mnist", &Device::Cpu).unwrap();
    assert!(fashion.card.test_accuracy >= 0.90, "{:?}", fashion.card);
    assert_eq!(fashion.card.test_items, 10_000);
}

#[test]
fn missing_evaluator_names_the_file() {
    let e = ClassifierEvaluator::load(Path::new("/nonexistent"), "mnist", &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/mnist.json"), "{e}");
    let e = load_setup("cifar", &datasets(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown evaluator \"cifar\""), "{e}");
}

#[test]
fn real_train_split_scores_near_the_ideal() {
    // The whole train split (900 images per IS split: with fewer, the plug-in entropy of each
    // split's class histogram is biased low and so is the score).
    let setup = mnist_setup();
    let r = evaluate(setup.net.as_ref(), &mnist_train(9000), &setup.reference).unwrap();
    print("real train split (9000) vs the test split", &r);
    assert_eq!((r.samples, r.reference_samples), (9000, 1000));
    let is = r.inception_score.unwrap();
    assert!(is.mean >= 9.5, "IS analogue {is:?}");
    let c = r.coverage.as_ref().unwrap();
    assert_eq!(c.covered, 10);
    assert!(c.kl_uniform < 0.01, "{c:?}");
    assert!(r.fid < 15.0, "FID {}", r.fid);
    assert!(
        r.precision_recall.precision > 0.75,
        "{:?}",
        r.precision_recall
    );
    assert!(r.precision_recall.recall > 0.75, "{:?}", r.precision_recall);
}

#[test]
fn noise_and_a_repeated_image_score_badly() {
    let setup = mnist_setup();
    let real = evaluate(setup.net.as_ref(), &mnist_train(1000), &setup.reference).unwrap();

    let mut rng = SeededRng::new(3);
    let noise = rng
        .rand((1000, 1, 28, 28), -1.0, 1.0, &Device::Cpu)
        .unwrap();
    let r = evaluate(setup.net.as_ref(), &noise, &setup.reference).unwrap();
    print("uniform noise (1000)", &r);
    assert!(
        r.fid > 20.0 * real.fid.max(1.0),
        "noise FID {} vs real {}",
        r.fid,
        real.fid
    );
    assert!(
        r.inception_score.unwrap().mean < 3.0,
        "{:?}",
        r.inception_score
    );
    assert!(
        r.precision_recall.precision < 0.05,
        "{:?}",
        r.precision_recall
    );
    assert!(r.precision_recall.recall < 0.05, "{:?}", r.precision_recall);

    let one = mnist_train(1);
    let img = Tensor::from_slice(one.item(0), (1, 1, 28, 28), &Device::Cpu).unwrap();
    let repeated = img.repeat((1000, 1, 1, 1)).unwrap();
    let r = evaluate(setup.net.as_ref(), &repeated, &setup.reference).unwrap();
    print("one image repeated 1000 times", &r);
    let c = r.coverage.as_ref().unwrap();
    assert_eq!(c.covered, 1, "{c:?}");
    assert!((c.kl_uniform - 10f64.ln()).abs() < 1e-9, "{c:?}");
    assert!(
        r.inception_score.unwrap().mean < 1.01,
        "{:?}",
        r.inception_score
    );
    assert!(
        r.fid > 20.0 * real.fid.max(1.0),
        "FID {} vs real {}",
        r.fid,
        real.fid
    );
    assert_eq!(r.precision_recall.recall, 0.0, "{:?}", r.precision_recall);
}

#[test]
fn classifier_training_is_seeded_and_learns() {
    let train = mnist_train(1200);
    let src = ImageSource::resolve(Some("mnist-mini"), &datasets()).unwrap();
    let test = random_subset(&src.load_test(28).unwrap(), 200, 2);
    let cfg = EvaluatorTrainConfig {
        classifier: ClassifierConfig {
            conv1: 4,
            conv2: 8,
            features: 16,
            ..ClassifierConfig::default()
        },
        epochs: 2,
        batch_size: 32,
        lr: 3e-3,
        max_shift: 1,
        seed: 5,
    };
    let run = || {
        let (net, vars, card) =
            train_classifier(&cfg, &train, &test, &Device::Cpu, &mut |l| eprintln!("{l}")).unwrap();
        let w: Vec<f32> = vars
            .get(
                (16, 392),
                "fc1.weight",
                candle_nn::Init::Const(0.0),
                candle_core::DType::F32,
                &Device::Cpu,
            )
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let _ = net;
        (card.test_accuracy, w)
    };
    let (acc1, w1) = run();
    let (acc2, w2) = run();
    assert!(
        acc1 > 0.5,
        "accuracy {acc1} after 74 small steps (chance: 0.1)"
    );
    assert_eq!(acc1, acc2);
    assert_eq!(w1, w2, "same seed, different weights");
}

#[test]
fn reference_statistics_are_cached_reused_and_invalidated() {
    use gan_models::evaluator::{cached_reference, CacheUse, ClassifierEvaluator, FeatureNet};
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path();
    let load = |name: &str| {
        ClassifierEvaluator::load(&datasets().join("evaluators"), name, &Device::Cpu).unwrap()
    };
    let mnist = load("mnist");
    let ds = mnist_train(40);
    let (first, used) = cached_reference(&mnist, &ds, "forty", dir, &mut ()).unwrap();
    let CacheUse::Written(path) = used else {
        panic!("the first call computes and writes: {used:?}")
    };
    assert!(path.is_file());
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("reference-forty-mnist-40-"), "{name}");
    // The second call reads the file, and gets what was computed.
    let (second, used) = cached_reference(&mnist, &ds, "forty", dir, &mut ()).unwrap();
    assert_eq!(used, CacheUse::Reused(path.clone()));
    assert_eq!(second.embedding, first.embedding);
    assert_eq!(second.gaussian, first.gaussian);
    assert_eq!(second.radii, first.radii);
    // One pixel changed, or another network: another file, computed afresh.
    let mut data = ds.data().to_vec();
    data[300] = -data[300] + 0.5;
    let changed = TensorDataset::new(ds.item_shape().to_vec(), data, None).unwrap();
    let (_, used) = cached_reference(&mnist, &changed, "forty", dir, &mut ()).unwrap();
    assert!(
        matches!(&used, CacheUse::Written(p) if *p != path),
        "{used:?}"
    );
    let fashion = load("fashion-mnist");
    assert_ne!(fashion.weights_hash(), mnist.weights_hash());
    let (_, used) = cached_reference(&fashion, &ds, "forty", dir, &mut ()).unwrap();
    assert!(
        matches!(&used, CacheUse::Written(p) if *p != path),
        "{used:?}"
    );
    // A damaged cache file is computed again and replaced.
    std::fs::write(&path, b"not safetensors").unwrap();
    let (again, used) = cached_reference(&mnist, &ds, "forty", dir, &mut ()).unwrap();
    assert_eq!(used, CacheUse::Written(path.clone()));
    assert_eq!(again.gaussian, first.gaussian);
    assert_eq!(
        cached_reference(&mnist, &ds, "forty", dir, &mut ())
            .unwrap()
            .1,
        CacheUse::Reused(path)
    );
}
