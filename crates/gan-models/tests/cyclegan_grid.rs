//! CycleGAN's sample grid with unequal domain sizes (reliability issue, item 9): six rows, real A,
//! G(A), F(G(A)), real B, F(B), G(F(B)), each standing alone, the shorter domain's rows ended by
//! blank tiles instead of running into the next row.

use candle_core::{Device, Tensor};
use gan_models::cyclegan::CycleGanConfig;
use gan_models::cyclegan_run::{
    build_trainer, translation_grid, translation_grid_width, CycleGanRunConfig,
};
use gan_models::grid::{pad_rows, save_grid};

const SIDE: usize = 12;

/// `n` distinct gray images `[n, 1, SIDE, SIDE]` in [-1, 1] (image `k` has its own offset).
fn images(n: usize, offset: f32) -> Tensor {
    let v: Vec<f32> = (0..n * SIDE * SIDE)
        .map(|i| ((i % 97) as f32 / 97.0 + offset).sin() * 0.9)
        .collect();
    Tensor::from_vec(v, (n, 1, SIDE, SIDE), &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Tiles `start..start + len` of the grid tensor.
fn tiles(grid: &Tensor, start: usize, len: usize) -> Vec<f32> {
    values(&grid.narrow(0, start, len).unwrap())
}

#[test]
fn nine_a_and_three_b_give_six_rows_of_nine() {
    let mut cfg = CycleGanRunConfig::new("unused".into());
    cfg.net = CycleGanConfig {
        channels: 1,
        ngf: 4,
        n_blocks: 1,
        ndf: 4,
        n_layers: 1,
    };
    cfg.data.load_size = SIDE;
    cfg.data.crop_size = SIDE;
    let dev = Device::Cpu;
    let t = build_trainer(&cfg, &dev).unwrap();
    let (a, b) = (images(9, 0.0), images(3, 1.7));
    assert_eq!(translation_grid_width(&a, &b).unwrap(), 9);
    let grid = translation_grid(&t, &a, &b).unwrap();
    assert_eq!(grid.dims(), &[6 * 9, 1, SIDE, SIDE]);

    let (g, f) = (&t.g_ab.net, &t.g_ba.net);
    let fake_b = g.forward(&a).unwrap();
    let rec_a = f.forward(&fake_b).unwrap();
    let fake_a = f.forward(&b).unwrap();
    let rec_b = g.forward(&fake_a).unwrap();
    let blank = vec![-1f32; 6 * SIDE * SIDE];
    // Row k starts at tile 9k; the B rows hold 3 images, then 6 blank tiles.
    assert_eq!(tiles(&grid, 0, 9), values(&a), "row 0: real A");
    assert_eq!(tiles(&grid, 9, 9), values(&fake_b), "row 1: G(A)");
    assert_eq!(tiles(&grid, 18, 9), values(&rec_a), "row 2: F(G(A))");
    for (row, want) in [(3, &b), (4, &fake_a), (5, &rec_b)] {
        assert_eq!(tiles(&grid, 9 * row, 3), values(want), "row {row}");
        assert_eq!(
            tiles(&grid, 9 * row + 3, 6),
            blank,
            "row {row}: blank tiles"
        );
    }

    // On disk: 9 cells of 12 pixels and 2-pixel gutters across, 6 rows down.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("grid.png");
    save_grid(&grid, 9, &png).unwrap();
    let w = (9 * (SIDE + 2) + 2) as u32;
    let h = (6 * (SIDE + 2) + 2) as u32;
    assert_eq!(image::image_dimensions(&png).unwrap(), (w, h));
    // Row 3 (real B), column 0 is b[0]; column 3 is blank (black).
    let img = image::open(&png).unwrap().to_rgb8();
    let b0 = values(&b.narrow(0, 0, 1).unwrap());
    let (ox, oy) = (2, 2 + 3 * (SIDE + 2));
    for y in 0..SIDE {
        for x in 0..SIDE {
            let want = ((b0[y * SIDE + x] + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8;
            assert_eq!(img.get_pixel((ox + x) as u32, (oy + y) as u32)[0], want);
            let blank_x = (2 + 3 * (SIDE + 2) + x) as u32;
            assert_eq!(img.get_pixel(blank_x, (oy + y) as u32)[0], 0);
        }
    }
}

#[test]
fn more_b_than_a_pads_the_a_rows() {
    let (a, b) = (images(2, 0.3), images(5, 0.9));
    assert_eq!(translation_grid_width(&a, &b).unwrap(), 5);
    let grid = pad_rows(&[&a, &b], 5).unwrap();
    assert_eq!(grid.dims(), &[10, 1, SIDE, SIDE]);
    assert_eq!(tiles(&grid, 0, 2), values(&a));
    assert_eq!(tiles(&grid, 2, 3), vec![-1f32; 3 * SIDE * SIDE]);
    assert_eq!(tiles(&grid, 5, 5), values(&b));
}

#[test]
fn a_row_wider_than_the_grid_is_refused() {
    let err = pad_rows(&[&images(4, 0.0)], 3).unwrap_err().to_string();
    assert!(err.contains("row 0 holds 4 images"), "{err}");
}
