//! Helpers shared by the training tests.

use std::path::Path;

use candle_core::{DType, Device};
use gan_models::run::RunDir;

/// The tensors of a safetensors file as (name, values in f64), sorted by name.
pub fn params(path: &Path) -> Vec<(String, Vec<f64>)> {
    let mut t: Vec<_> = candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            let v = v.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
            (k, v.to_vec1().unwrap())
        })
        .collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

/// Asserts that the `latest` checkpoints of two runs hold the same tensors in each of `files`,
/// within 1e-6 relative; `what` names the case in failure messages.
pub fn assert_same_latest(a: &RunDir, b: &RunDir, files: &[&str], what: &str) {
    for file in files {
        let pa = params(&a.checkpoint("latest").unwrap().join(file));
        let pb = params(&b.checkpoint("latest").unwrap().join(file));
        assert_eq!(pa.len(), pb.len(), "{what} {file}: tensor count");
        for ((ka, va), (kb, vb)) in pa.iter().zip(&pb) {
            assert_eq!(ka, kb, "{what} {file}");
            for (x, y) in va.iter().zip(vb) {
                assert!(
                    (x - y).abs() <= 1e-6 * (1.0 + x.abs()),
                    "{what} {file} {ka}: {x} vs {y}"
                );
            }
        }
    }
}
