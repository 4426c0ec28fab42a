//! Grayscale morphological dilation: the known A→B map of the `thin2thick` dataset.
//!
//! Dilation by a square structuring element of radius r replaces each pixel by the maximum over
//! the (2r+1)×(2r+1) window centred on it; pixels outside the image are ignored (as if they
//! were −∞), so a dark border does not darken anything. On MNIST digits (white strokes on black)
//! it thickens every stroke by r pixels on each side.
//!
//! The maximum commutes with any increasing map of the values, so dilating bytes and then mapping
//! them to [-1, 1] gives the same result as mapping first and dilating the floats: the dataset
//! builder (`cargo xtask make-unpaired thin2thick`) works on bytes and the translation
//! evaluation on the floats the networks see, with the same function.
//!
//! ```
//! use gan_data::morphology::dilate;
//! // A single lit pixel becomes a 3×3 square.
//! let mut img = vec![0u8; 25];
//! img[12] = 200;
//! let out = dilate(&img, 5, 5, 1);
//! assert_eq!(out.iter().filter(|&&p| p == 200).count(), 9);
//! assert_eq!(out[6], 200);
//! assert_eq!(out[0], 0);
//! ```

/// The radius of `thin2thick`'s dilation: a 3×3 square.
pub const THIN2THICK_RADIUS: usize = 1;

/// Dilates one `h`×`w` single-channel image (row-major) by the square of radius `radius`.
///
/// # Panics
/// If `pixels.len() != h * w`.
pub fn dilate<T: Copy + PartialOrd>(pixels: &[T], h: usize, w: usize, radius: usize) -> Vec<T> {
    assert_eq!(
        pixels.len(),
        h * w,
        "dilate: {h}x{w} image, {} values",
        pixels.len()
    );
    // Separable: the maximum over a square is the maximum over rows of maxima over columns.
    let max_along = |src: &[T], along_rows: bool| -> Vec<T> {
        let mut out = src.to_vec();
        for y in 0..h {
            for x in 0..w {
                let (pos, len) = if along_rows { (x, w) } else { (y, h) };
                let lo = pos.saturating_sub(radius);
                let hi = (pos + radius).min(len - 1);
                let mut m = src[y * w + x];
                for q in lo..=hi {
                    let v = if along_rows {
                        src[y * w + q]
                    } else {
                        src[q * w + x]
                    };
                    if v > m {
                        m = v;
                    }
                }
                out[y * w + x] = m;
            }
        }
        out
    };
    if radius == 0 || pixels.is_empty() {
        return pixels.to_vec();
    }
    max_along(&max_along(pixels, true), false)
}

/// Dilates every channel of every image of a flat `[n, c, h, w]` batch.
///
/// # Panics
/// If `values.len()` is not a multiple of `h * w`.
pub fn dilate_batch<T: Copy + PartialOrd>(
    values: &[T],
    h: usize,
    w: usize,
    radius: usize,
) -> Vec<T> {
    assert!(
        h * w > 0 && values.len() % (h * w) == 0,
        "dilate_batch: bad shape"
    );
    values
        .chunks_exact(h * w)
        .flat_map(|img| dilate(img, h, w, radius))
        .collect()
}
