//! The dilation of `thin2thick` against hand-computed images.

use gan_data::morphology::{dilate, dilate_batch, THIN2THICK_RADIUS};

#[rustfmt::skip]
const IMG: [u8; 20] = [
    0, 0,   0, 0, 0,
    0, 0, 200, 0, 0,
    0, 0, 100, 0, 0,
    7, 0,   0, 0, 0,
];

#[test]
fn dilation_hand_values() {
    // A 4×5 image: a vertical stroke of two values and a dim pixel in the corner; pixels outside
    // the image do not count (the borders are not darkened).
    #[rustfmt::skip]
    let want: [u8; 20] = [
        0, 200, 200, 200, 0,
        0, 200, 200, 200, 0,
        7, 200, 200, 200, 0,
        7, 100, 100, 100, 0,
    ];
    assert_eq!(dilate(&IMG, 4, 5, 1), want);
    assert_eq!(THIN2THICK_RADIUS, 1);
    assert_eq!(dilate(&IMG, 4, 5, 0), IMG);
    // Radius 2: (3, 4) sees rows 1..=3 and columns 2..=4, which hold the 200; (0, 0) sees rows
    // 0..=2 and columns 0..=2, also the 200; (3, 0) sees columns 0..=2 of rows 1..=3.
    let r2 = dilate(&IMG, 4, 5, 2);
    assert_eq!((r2[19], r2[0], r2[15]), (200, 200, 200));
    assert!(r2.iter().all(|&p| p == 200));
}

#[test]
fn dilation_commutes_with_the_float_mapping() {
    // The evaluation dilates the [-1, 1] floats the networks see; the dataset builder dilates
    // bytes. Both must agree.
    let as_float = |b: &[u8]| {
        b.iter()
            .map(|&p| p as f32 / 127.5 - 1.0)
            .collect::<Vec<_>>()
    };
    let two = [IMG, IMG.map(|p| 255 - p)].concat();
    let bytes = dilate_batch(&two, 4, 5, 1);
    let floats = dilate_batch(&as_float(&two), 4, 5, 1);
    assert_eq!(as_float(&bytes), floats);
    assert_eq!(&bytes[..20], dilate(&IMG, 4, 5, 1).as_slice());
}
