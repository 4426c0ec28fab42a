//! pytorch-fid statistics files (`.npz` with `mu` and `sigma`): our writer and reader round
//! trip, files written by numpy (`np.savez_compressed`, as pytorch-fid's `save_fid_stats`;
//! `np.savez` of float32 in Fortran order) read, and bad files are refused with their name.

use std::path::{Path, PathBuf};

use gan_core::eval_metrics::Gaussian;
use gan_models::evaluator::{load_fid_stats, save_fid_stats};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The fixture's values: mu, and sigma = A Aᵀ (numpy's float64 products, printed by repr).
fn numpy_fixture() -> (Vec<f64>, Vec<f64>) {
    let mu = vec![1.0, -2.0, 0.5, 3.25];
    let sigma = vec![
        4.26,
        1.1,
        0.09000000000000001,
        0.47000000000000003,
        1.1,
        1.1300000000000001,
        0.4,
        0.12,
        0.09000000000000001,
        0.4,
        2.42,
        0.73,
        0.47000000000000003,
        0.12,
        0.73,
        0.62,
    ];
    (mu, sigma)
}

#[test]
fn reads_what_numpy_wrote() {
    let (mu, sigma) = numpy_fixture();
    // np.savez_compressed(path, mu=mu, sigma=sigma): deflated float64, exactly.
    let g = load_fid_stats(&data("fid_stats_numpy.npz")).unwrap();
    assert_eq!((g.mean.clone(), g.cov.clone()), (mu.clone(), sigma.clone()));
    // np.savez of float32 arrays, sigma in Fortran order: the float32 values.
    let g = load_fid_stats(&data("fid_stats_numpy_f32_fortran.npz")).unwrap();
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32 as f64).collect::<Vec<_>>();
    assert_eq!((g.mean, g.cov), (f32s(&mu), f32s(&sigma)));
}

/// The `.npy` entry `name` of the `.npz` file at `path`, as stored bytes.
fn npz_entry(path: &Path, name: &str) -> Vec<u8> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut bytes = Vec::new();
    zip.by_name(&format!("{name}.npy"))
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// The other direction: what we write for the fixture's values holds, byte for byte, the `.npy`
/// arrays numpy wrote (header, padding and float64 data), so numpy and pytorch-fid read our
/// files as they read their own.
#[test]
fn writes_what_numpy_wrote() {
    let (mu, sigma) = numpy_fixture();
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.npz");
    save_fid_stats(&ours, &Gaussian::new(mu, sigma).unwrap()).unwrap();
    for name in ["mu", "sigma"] {
        let numpys = npz_entry(&data("fid_stats_numpy.npz"), name);
        assert_eq!(npz_entry(&ours, name), numpys, "{name}.npy");
    }
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ref.npz");
    // A 300-wide Gaussian with awkward values (so the header and the data are exercised).
    let d = 300;
    let mean: Vec<f64> = (0..d).map(|i| (i as f64 * 0.37).sin() * 1e3).collect();
    let cov: Vec<f64> = (0..d * d)
        .map(|k| {
            let (i, j) = (k / d, k % d);
            let base = 1.0 / (1.0 + (i as f64 - j as f64).abs());
            if i == j {
                base + 1e-7 * i as f64
            } else {
                base
            }
        })
        .collect();
    let g = Gaussian::new(mean, cov).unwrap();
    save_fid_stats(&path, &g).unwrap();
    let back = load_fid_stats(&path).unwrap();
    assert_eq!((back.mean, back.cov), (g.mean, g.cov));
}

fn write_npz(path: &Path, entries: &[(&str, &[u8])]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn bad_files_are_named_with_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let err = |path: &Path| load_fid_stats(path).unwrap_err().to_string();
    let check = |path: &Path, want: &str| {
        let e = err(path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(e.contains(&name) && e.contains(want), "{e}");
    };

    check(&dir.path().join("nowhere.npz"), "No such file");

    let not_zip = dir.path().join("not_zip.npz");
    std::fs::write(&not_zip, b"mu and sigma").unwrap();
    check(&not_zip, "not an .npz");

    let one = 1f64.to_le_bytes();
    let mu = npy("<f8", "(1,)", &one);
    let no_sigma = dir.path().join("no_sigma.npz");
    write_npz(&no_sigma, &[("mu.npy", &mu)]);
    check(&no_sigma, "no array \"sigma\"");

    let square = dir.path().join("sigma_shape.npz");
    write_npz(
        &square,
        &[("mu.npy", &mu), ("sigma.npy", &npy("<f8", "(1,)", &one))],
    );
    check(&square, "sigma has shape [1], expected (1, 1)");

    let ints = dir.path().join("ints.npz");
    write_npz(
        &ints,
        &[("mu.npy", &npy("<i8", "(1,)", &one)), ("sigma.npy", &mu)],
    );
    check(&ints, "dtype <i8");

    let short = dir.path().join("short.npz");
    write_npz(
        &short,
        &[
            ("mu.npy", &npy("<f8", "(2,)", &one)),
            ("sigma.npy", &npy("<f8", "(2, 2)", &one)),
        ],
    );
    check(&short, "8 bytes of data for shape [2]");

    let huge = dir.path().join("huge.npz");
    write_npz(
        &huge,
        &[
            (
                "mu.npy",
                &npy("<f8", "(99999999999, 99999999999, 9999999999)", &one),
            ),
            ("sigma.npy", &mu),
        ],
    );
    check(&huge, "shape too large");

    let asym = dir.path().join("asymmetric.npz");
    let vals: Vec<u8> = [1.0f64, 2.0, 3.0, 1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    write_npz(
        &asym,
        &[
            ("mu.npy", &npy("<f8", "(2,)", &vals[..16])),
            ("sigma.npy", &npy("<f8", "(2, 2)", &vals)),
        ],
    );
    check(&asym, "not symmetric");

    let garbage = dir.path().join("garbage.npz");
    write_npz(&garbage, &[("mu.npy", b"\x93NUM"), ("sigma.npy", &mu)]);
    check(&garbage, "mu: not an .npy array");
}
