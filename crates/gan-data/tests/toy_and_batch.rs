//! Toy distributions and the seeded batch iterator.

use candle_core::Device;
use gan_data::{BatchConfig, Batcher, Dataset, TensorDataset, ToyDistribution};

#[test]
fn toy_distributions_match_their_definitions() {
    for dist in [ToyDistribution::Ring8, ToyDistribution::Grid25] {
        let modes = dist.modes().unwrap();
        let std = dist.mode_std().unwrap();
        let pts = dist.sample(20_000, 3);
        let mut counts = vec![0usize; modes.len()];
        let mut sq = 0f64;
        for p in &pts {
            let (k, d2) = modes
                .iter()
                .map(|m| (m[0] - p[0]).powi(2) + (m[1] - p[1]).powi(2))
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            counts[k] += 1;
            sq += d2 as f64;
            assert!(
                d2.sqrt() < 6.0 * std,
                "{dist}: point {p:?} far from every mode"
            );
        }
        // Per-axis variance of the offsets ≈ σ² (tolerance 5%).
        let var = sq / (2.0 * pts.len() as f64);
        assert!(
            (var.sqrt() / std as f64 - 1.0).abs() < 0.05,
            "{dist}: std {}",
            var.sqrt()
        );
        let expect = pts.len() as f64 / modes.len() as f64;
        for c in counts {
            assert!(
                (c as f64 - expect).abs() < 5.0 * expect.sqrt(),
                "{dist}: unbalanced modes"
            );
        }
    }
    let ring = ToyDistribution::Ring.sample(10_000, 1);
    for p in ring {
        let r = (p[0] * p[0] + p[1] * p[1]).sqrt();
        assert!(r > 1.0 && r < 1.6, "ring point at radius {r}");
    }
    assert_eq!(
        ToyDistribution::Ring8.sample(5, 9),
        ToyDistribution::Ring8.sample(5, 9)
    );
    assert_ne!(
        ToyDistribution::Ring8.sample(5, 9),
        ToyDistribution::Ring8.sample(5, 10)
    );
    assert_eq!(
        "grid25".parse::<ToyDistribution>().unwrap(),
        ToyDistribution::Grid25
    );
    assert!("nope".parse::<ToyDistribution>().is_err());
}

fn numbered(n: usize) -> TensorDataset {
    TensorDataset::new(
        vec![1],
        (0..n).map(|i| i as f32).collect(),
        Some((0..n as u32).collect()),
    )
    .unwrap()
}

fn ids(b: &gan_data::Batch) -> Vec<u32> {
    b.items
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as u32)
        .collect()
}

#[test]
fn batches_cover_each_epoch_once_and_repeat_for_a_seed() {
    let ds = numbered(10);
    let cfg = BatchConfig {
        batch_size: 3,
        shuffle: true,
        drop_last: true,
        seed: 42,
    };
    let mut b = Batcher::new(&ds, cfg, &Device::Cpu).unwrap();
    assert_eq!(b.batches_per_epoch(), 3);
    let epoch0: Vec<Vec<u32>> = b.epoch_iter().map(|x| ids(&x.unwrap())).collect();
    assert_eq!(epoch0.len(), 3);
    let mut seen: Vec<u32> = epoch0.concat();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 9, "no item twice within an epoch");
    let epoch1: Vec<Vec<u32>> = b.epoch_iter().map(|x| ids(&x.unwrap())).collect();
    assert_ne!(epoch0, epoch1, "a new order each epoch");
    // Same seed: same batches; resuming at (1, 1) gives epoch 1's second batch.
    let mut again = Batcher::new(&ds, cfg, &Device::Cpu).unwrap();
    assert_eq!(ids(&again.next_batch().unwrap()), epoch0[0]);
    again.seek(1, 1);
    let batch = again.next_batch().unwrap();
    assert_eq!((batch.epoch, batch.index), (1, 1));
    assert_eq!(ids(&batch), epoch1[1]);
    // Labels follow their items.
    let labels: Vec<u32> = batch.labels.unwrap().to_vec1().unwrap();
    assert_eq!(labels, epoch1[1]);
    // Another seed, another order.
    let mut other = Batcher::new(&ds, BatchConfig { seed: 43, ..cfg }, &Device::Cpu).unwrap();
    let o: Vec<Vec<u32>> = other.epoch_iter().map(|x| ids(&x.unwrap())).collect();
    assert_ne!(o, epoch0);
}

#[test]
fn keep_last_and_no_shuffle() {
    let ds = numbered(10);
    let cfg = BatchConfig {
        batch_size: 4,
        shuffle: false,
        drop_last: false,
        seed: 0,
    };
    let mut b = Batcher::new(&ds, cfg, &Device::Cpu).unwrap();
    let all: Vec<Vec<u32>> = b.epoch_iter().map(|x| ids(&x.unwrap())).collect();
    assert_eq!(all, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
    assert!(Batcher::new(
        &ds,
        BatchConfig {
            batch_size: 0,
            ..cfg
        },
        &Device::Cpu
    )
    .is_err());
    let big = BatchConfig {
        batch_size: 11,
        drop_last: true,
        ..cfg
    };
    assert!(Batcher::new(&ds, big, &Device::Cpu).is_err());
    assert_eq!(ds.len(), 10);
}
