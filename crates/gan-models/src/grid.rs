//! Image grids (like torchvision's `make_grid`) and single images as PNG.

use std::path::Path;

use candle_core::{DType, Tensor};

use crate::error::{ModelError, Result};

/// Padding between grid cells, in pixels (torchvision's default).
const PAD: usize = 2;

/// Converts images `[n, c, h, w]` in [-1, 1] to bytes, clamping.
fn to_bytes(images: &Tensor) -> Result<(Vec<u8>, [usize; 4])> {
    let (n, c, h, w) = images.dims4()?;
    let v: Vec<f32> = images.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let bytes = v
        .iter()
        .map(|&x| (((x + 1.0) * 127.5).round().clamp(0.0, 255.0)) as u8)
        .collect();
    Ok((bytes, [n, c, h, w]))
}

/// Writes `images` (`[n, c, h, w]`, values in [-1, 1], c = 1 or 3) as one PNG grid with `nrow`
/// images per row and 2 black pixels between cells.
pub fn save_grid(images: &Tensor, nrow: usize, path: &Path) -> Result<()> {
    let (bytes, [n, c, h, w]) = to_bytes(images)?;
    let nrow = nrow.clamp(1, n.max(1));
    let rows = n.div_ceil(nrow);
    let (gw, gh) = (nrow * (w + PAD) + PAD, rows * (h + PAD) + PAD);
    let mut canvas = vec![0u8; gw * gh * 3];
    for i in 0..n {
        let (ox, oy) = (PAD + (i % nrow) * (w + PAD), PAD + (i / nrow) * (h + PAD));
        for y in 0..h {
            for x in 0..w {
                for ch in 0..3 {
                    let src = if c == 1 { 0 } else { ch };
                    canvas[((oy + y) * gw + ox + x) * 3 + ch] =
                        bytes[((i * c + src) * h + y) * w + x];
                }
            }
        }
    }
    write_png(path, gw, gh, 3, canvas)
}

/// Lays `rows` (each `[n_k, c, h, w]`) out as the rows of one grid of `width` columns: each row
/// is followed by blank tiles (value -1, black like the gutter) up to `width`, so that row `k`
/// of [`save_grid`]`(.., width, ..)` holds exactly `rows[k]` whatever the counts. A row longer
/// than `width` is an error, since it would run into the next one.
pub fn pad_rows(rows: &[&Tensor], width: usize) -> Result<Tensor> {
    let mut tiles = Vec::with_capacity(rows.len() * 2);
    for (k, row) in rows.iter().enumerate() {
        let (n, c, h, w) = row.dims4()?;
        if n > width {
            return Err(ModelError::Config(format!(
                "grid row {k} holds {n} images, more than the grid's width of {width}"
            )));
        }
        tiles.push((*row).clone());
        if n < width {
            tiles.push(
                Tensor::full(-1f32, (width - n, c, h, w), row.device())?.to_dtype(row.dtype())?,
            );
        }
    }
    Ok(Tensor::cat(&tiles, 0)?)
}

/// Writes each image of `images` (`[n, c, h, w]` in [-1, 1]) as its own PNG into `dir`,
/// named `000000.png`, `000001.png`, ...; grayscale when c = 1.
pub fn save_images(images: &Tensor, dir: &Path, first_index: usize) -> Result<()> {
    let (bytes, [n, c, h, w]) = to_bytes(images)?;
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    for i in 0..n {
        let img = &bytes[i * c * h * w..(i + 1) * c * h * w];
        let pixels = if c == 1 {
            img.to_vec()
        } else {
            (0..h * w)
                .flat_map(|p| (0..c).map(move |ch| img[ch * h * w + p]))
                .collect()
        };
        write_png(
            &dir.join(format!("{:06}.png", first_index + i)),
            w,
            h,
            c,
            pixels,
        )?;
    }
    Ok(())
}

fn write_png(path: &Path, w: usize, h: usize, c: usize, pixels: Vec<u8>) -> Result<()> {
    let err = |e: String| ModelError::Image {
        path: path.into(),
        reason: e,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
    }
    match c {
        1 => image::GrayImage::from_raw(w as u32, h as u32, pixels)
            .ok_or_else(|| err("bad buffer".into()))?
            .save(path),
        3 => image::RgbImage::from_raw(w as u32, h as u32, pixels)
            .ok_or_else(|| err("bad buffer".into()))?
            .save(path),
        _ => return Err(err(format!("cannot write {c}-channel images"))),
    }
    .map_err(|e| err(e.to_string()))
}
