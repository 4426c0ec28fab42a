//! The IDX reader on good and bad input: every fault is a typed error naming the file.

use std::io::Write;

use gan_data::idx::{parse_idx, read_idx, read_idx_images, write_idx, write_idx_gz};
use gan_data::DataError;

fn idx_bytes(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    write_idx(&mut v, dims, data).unwrap();
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn round_trip_raw_and_gz() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3 * 4 * 5).map(|i| i as u8).collect();
    let raw = dir.path().join("x-idx3-ubyte");
    std::fs::write(&raw, idx_bytes(&[3, 4, 5], &data)).unwrap();
    let gz = dir.path().join("y.gz");
    write_idx_gz(&gz, &[3, 4, 5], &data).unwrap();
    for p in [raw, gz] {
        let imgs = read_idx_images(&p).unwrap();
        assert_eq!((imgs.count, imgs.rows, imgs.cols), (3, 4, 5));
        assert_eq!(imgs.pixels, data);
    }
}

#[test]
fn gz_output_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![7u8; 1000];
    write_idx_gz(dir.path().join("a.gz"), &[1000], &data).unwrap();
    write_idx_gz(dir.path().join("b.gz"), &[1000], &data).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("a.gz")).unwrap(),
        std::fs::read(dir.path().join("b.gz")).unwrap()
    );
}

#[test]
fn truncated_gzip_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let gz = gzip(&idx_bytes(&[10, 28, 28], &vec![3u8; 7840]));
    let path = dir.path().join("cut-idx3-ubyte.gz");
    std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
    let err = read_idx(&path, 3).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CorruptGzip { .. } | DataError::Truncated { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("cut-idx3-ubyte.gz"), "{err}");
}

#[test]
fn truncated_raw_payload() {
    let bytes = idx_bytes(&[10, 2, 2], &[1u8; 40]);
    let err = parse_idx(&bytes[..40], "short.idx", 3).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 40,
                found: 24,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("short.idx"));
    let err = parse_idx(&bytes[..6], "tiny.idx", 3).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
}

#[test]
fn trailing_data_is_rejected() {
    let mut bytes = idx_bytes(&[4], &[1, 2, 3, 4]);
    bytes.extend_from_slice(&[9, 9]);
    let err = parse_idx(&bytes, "long.idx", 1).unwrap_err();
    assert!(
        matches!(err, DataError::TrailingData { expected: 4, .. }),
        "{err:?}"
    );
}

#[test]
fn wrong_magic_and_wrong_rank() {
    let mut bytes = idx_bytes(&[4], &[1, 2, 3, 4]);
    bytes[2] = 0x0D; // float type
    let err = parse_idx(&bytes, "float.idx", 1).unwrap_err();
    assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
    assert!(err.to_string().contains("float.idx"));
    let err = parse_idx(b"PK\x03\x04zipzipzip", "zip.idx", 1).unwrap_err();
    assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
    let bytes = idx_bytes(&[4], &[1, 2, 3, 4]);
    let err = parse_idx(&bytes, "labels.idx", 3).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::WrongRank {
                expected: 3,
                found: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn header_claiming_2_pow_31_images_in_a_small_file() {
    let mut bytes = vec![0, 0, 8, 3];
    bytes.extend_from_slice(&(1u32 << 31).to_be_bytes());
    bytes.extend_from_slice(&28u32.to_be_bytes());
    bytes.extend_from_slice(&28u32.to_be_bytes());
    bytes.extend_from_slice(&[0u8; 100]);
    let err = parse_idx(&bytes, "huge.idx", 3).unwrap_err();
    assert!(matches!(err, DataError::HeaderTooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("huge.idx"));
    // The same behind gzip: the deflate ratio bound rejects it before any decompression.
    let err = parse_idx(&gzip(&bytes), "huge.idx.gz", 3).unwrap_err();
    assert!(matches!(err, DataError::HeaderTooLarge { .. }), "{err:?}");
    // Dimensions whose product overflows u64.
    let mut bytes = vec![0, 0, 8, 3];
    for _ in 0..3 {
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    }
    let err = parse_idx(&bytes, "overflow.idx", 3).unwrap_err();
    assert!(matches!(err, DataError::HeaderTooLarge { .. }), "{err:?}");
}

#[test]
fn count_mismatch_between_images_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_idx_gz(d.join("train-images-idx3-ubyte.gz"), &[3, 2, 2], &[0u8; 12]).unwrap();
    write_idx_gz(d.join("train-labels-idx1-ubyte.gz"), &[2], &[0u8; 2]).unwrap();
    write_idx_gz(d.join("t10k-images-idx3-ubyte.gz"), &[1, 2, 2], &[0u8; 4]).unwrap();
    write_idx_gz(d.join("t10k-labels-idx1-ubyte.gz"), &[1], &[0u8; 1]).unwrap();
    let err = gan_data::Mnist::load(d).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("train-labels-idx1-ubyte.gz"),
        "{err}"
    );
}

#[test]
fn missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = gan_data::Mnist::load(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::MissingFile { .. }), "{err:?}");
    assert!(err.to_string().contains("train-images-idx3-ubyte"), "{err}");
}

#[test]
fn garbage_never_panics() {
    // A cheap stand-in for the fuzz target (fuzz/): many random and mutated inputs.
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let good = idx_bytes(&[5, 3, 3], &[9u8; 45]);
    let good_gz = gzip(&good);
    for i in 0..3000 {
        let mut b = if i % 2 == 0 {
            good.clone()
        } else {
            good_gz.clone()
        };
        let n_mut = rng.gen_range(1..6);
        for _ in 0..n_mut {
            let j = rng.gen_range(0..b.len());
            b[j] = rng.gen();
        }
        b.truncate(rng.gen_range(0..=b.len()));
        let _ = parse_idx(&b, "fuzz", 3);
        let _ = parse_idx(&b, "fuzz", 1);
    }
}
