//! `gan-cli eval` on too few samples (issue 17, item 6): every metric states the count it needs
//! and below it the value comes with a warning (or is `n/a` below the least its formula takes);
//! `-0.000` prints as `0.000`; pytorch-fid statistics files are written and read.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gan_data::{Dataset, ImageSource};

fn datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

fn gan_cli(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gan-cli"))
        .args(args)
        .current_dir(cwd)
        .env("GAN_DATASETS", datasets())
        .env("GAN_CACHE", cwd.join("cache"))
        .output()
        .expect("gan-cli runs")
}

/// stdout and stderr of a run that must succeed.
fn ok(out: &Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

fn fails_with(out: &Output, want: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains(want), "stderr lacks {want:?}:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The value of row `label` of the table.
fn row<'a>(table: &'a str, label: &str) -> &'a str {
    table
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no row {label:?} in\n{table}"))
        .trim()
}

/// `n` of the 1,000 mnist-mini test digits (every 7th, or fewer apart when n > 142) as PNG
/// files in `dir/name`.
fn digits(dir: &Path, name: &str, n: usize) {
    let src = ImageSource::resolve(Some("mnist-mini"), &datasets()).unwrap();
    let test = src.load_test(28).unwrap();
    let step = (test.len() / n).min(7);
    let idx: Vec<usize> = (0..n).map(|i| i * step).collect();
    let sub = test.subset(&idx);
    let t = candle_core::Tensor::from_slice(sub.data(), (n, 1, 28, 28), &candle_core::Device::Cpu)
        .unwrap();
    gan_models::grid::save_images(&t, &dir.join(name), 0).unwrap();
}

#[test]
fn few_samples_give_values_with_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    digits(d, "twelve", 12);
    let (table, stderr) = ok(&gan_cli(&["eval", "--images", "twelve"], d));
    let fid: f64 = row(&table, "FID (evaluator features)").parse().unwrap();
    assert!(fid > 0.0, "{table}");
    for want in [
        "FID is not comparable: 12 samples against 1000 reference images; a full-rank \
         covariance of 128 features needs at least 129 in each set",
        "Inception Score is biased low: 12 samples; 10 splits of 10 classes need at least 1000",
        "KID is not comparable: 12 samples against 1000 reference images; it needs 1000 in \
         each set (its subsets take 6 from each set, half the smaller set)",
    ] {
        assert!(table.contains(want), "table lacks {want:?}:\n{table}");
        assert!(stderr.contains(&format!("warning: {want}")), "{stderr}");
    }
    assert!(row(&table, "KID (evaluator features)").ends_with("(100 subsets of 6)"));
    assert!(
        !table.contains("precision/recall, density and coverage not computed"),
        "{table}"
    );
    let density: f64 = row(&table, "density (k=3)").parse().unwrap();
    let coverage: f64 = row(&table, "coverage (k-NN, k=3)").parse().unwrap();
    assert!(density >= 0.0 && (0.0..=1.0).contains(&coverage), "{table}");

    // 3 images: precision/recall (k = 3) cannot be computed; the rest is, with warnings.
    digits(d, "three", 3);
    let (table, _) = ok(&gan_cli(&["eval", "--images", "three"], d));
    assert_eq!(row(&table, "precision (k=3)"), "n/a", "{table}");
    assert_eq!(row(&table, "recall (k=3)"), "n/a", "{table}");
    assert!(!table.contains("density (k="), "{table}");
    assert!(
        table.contains("precision/recall, density and coverage not computed: 3 samples against 1000 reference images; k = 3 nearest neighbours need at least 4 in each set"),
        "{table}"
    );
    assert!(row(&table, "FID (evaluator features)")
        .parse::<f64>()
        .is_ok());

    // Enough samples: no warning.
    digits(d, "many", 1000);
    let (table, stderr) = ok(&gan_cli(&["eval", "--images", "many"], d));
    assert!(!table.contains("warning"), "{table}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn statistics_files_round_trip_and_zero_prints_unsigned() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    digits(d, "imgs", 200);
    let (table, stderr) = ok(&gan_cli(
        &["eval", "--images", "imgs", "--save-stats", "ref.npz"],
        d,
    ));
    assert!(stderr.contains("wrote ref.npz (pytorch-fid statistics of 200 images, 128 features)"));
    let fid_vs_test: f64 = row(&table, "FID (evaluator features)").parse().unwrap();
    assert!(fid_vs_test > 1.0, "{table}");

    // The same images against their own statistics: FID 0 (rounding may make it -1e-12).
    let (table, stderr) = ok(&gan_cli(
        &["eval", "--images", "imgs", "--reference", "ref.npz"],
        d,
    ));
    assert_eq!(row(&table, "FID (evaluator features)"), "0.000", "{table}");
    assert_eq!(row(&table, "reference"), "ref.npz (pytorch-fid statistics)");
    assert!(stderr
        .contains("KID, precision/recall, density and coverage not computed: the reference is a statistics file"));
    assert_eq!(row(&table, "precision (k=3)"), "n/a");

    // Bad statistics files: exit 2, the file and the problem named.
    std::fs::write(d.join("bad.npz"), b"not a zip").unwrap();
    fails_with(
        &gan_cli(&["eval", "--images", "imgs", "--reference", "bad.npz"], d),
        "bad.npz: not an .npz (zip) file",
    );
    fails_with(
        &gan_cli(
            &["eval", "--images", "imgs", "--reference", "missing.npz"],
            d,
        ),
        "missing.npz",
    );
    let numpy =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../gan-models/tests/data/fid_stats_numpy.npz");
    fails_with(
        &gan_cli(
            &[
                "eval",
                "--images",
                "imgs",
                "--reference",
                numpy.to_str().unwrap(),
            ],
            d,
        ),
        "fid_stats_numpy.npz: statistics of 4 features, but the mnist evaluator gives 128",
    );
}
