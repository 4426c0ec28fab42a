//! CPU kernels behind the custom ops: im2col/col2im, a checked `gemm` wrapper, batch chunking
//! and per-thread scratch buffers.
//!
//! Every op works on a chunk of `nb` batch items at a time, laying the chunk's pixels side by side
//! as the columns of one matrix so that layers with tiny images (1×1, 7×7) still give `gemm` wide
//! matrices. Chunks run in parallel on rayon with a single-threaded `gemm` each; when there are
//! fewer chunks than threads (batch 1) they run one after the other with a multi-threaded `gemm`.
//! `GAN_CONV_PAR=gemm` in the environment (read once) forces the second strategy, for measuring.
//!
//! A chunk's column matrix is made and used a block of rows (whole channels, about 256 KiB) at a
//! time, so that what `gemm` writes is scattered, and what is gathered is multiplied, while it is
//! still in the core's L2 cache instead of a round trip through memory.

use crate::par::{par_chunks_filled, zeroed};
use crate::simd::avx2_fn;
use candle_core::WithDType;
use gemm::Parallelism;
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;
use std::sync::OnceLock;
use std::thread::LocalKey;

/// Element types the kernels run on (f32 and f64).
pub(crate) trait Elem: WithDType + Send + Sync + 'static {
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// This thread's pool of spare buffers for this type.
    fn pool() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>>;
}

thread_local! {
    static POOL_F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    static POOL_F64: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

impl Elem for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn pool() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>> {
        &POOL_F32
    }
}

impl Elem for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn pool() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>> {
        &POOL_F64
    }
}

/// Buffers kept per thread; more than this many nested uses allocate and drop.
const POOL_MAX: usize = 4;

/// Runs `f` with a buffer of `len` elements (contents unspecified) taken from this thread's pool,
/// and returns the buffer to the pool afterwards. Re-entrant: a nested call (rayon may run
/// another chunk on this thread while `gemm` waits) simply takes another buffer.
fn with_scratch<T: Elem, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let mut buf = T::pool().with(|p| p.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, T::ZERO);
    }
    let r = f(&mut buf[..len]);
    T::pool().with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_MAX {
            p.push(buf);
        }
    });
    r
}

/// Geometry of one convolution seen from the image side: an image of `c × h × w` pixels and a
/// grid of `oh × ow` kernel positions, kernel `kh × kw`, stride `s`, zero padding `p`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub s: usize,
    pub p: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geom {
    /// Rows of the column matrix: `c · kh · kw`.
    pub fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Pixels of one image.
    pub fn img(&self) -> usize {
        self.h * self.w
    }
    /// Kernel positions per image (columns per batch item).
    pub fn l(&self) -> usize {
        self.oh * self.ow
    }
    /// Whether the kernel covers the whole unpadded image in one position, as in a generator's
    /// first layer (1×1 to k×k) or a discriminator's last: then the column matrix of an item is
    /// the image itself, and im2col is a no-op.
    pub fn dense(&self) -> bool {
        self.oh == 1 && self.ow == 1 && self.p == 0 && self.kh == self.h && self.kw == self.w
    }
}

/// Marks a kernel position that falls on the zero padding in a [`Geom::offsets`] table; larger
/// than any pixel index, so `slice.get(PAD)` is `None`.
const PAD: u32 = u32::MAX;

impl Geom {
    /// For each kernel tap `(ki, kj)` and output position `(oy, ox)`, the index in one image
    /// plane (`h × w`) of the pixel it reads, or [`PAD`]: entry `(ki·kw + kj)·l + oy·ow + ox`.
    ///
    /// im2col and col2im then run as one flat gather or scatter per matrix row, with no
    /// per-row bounds arithmetic; the table is built once per call and shared by all chunks.
    pub fn offsets(&self) -> Vec<u32> {
        assert!(
            self.h * self.w < PAD as usize,
            "image plane too large for 32-bit offsets"
        );
        let mut t = Vec::with_capacity(self.kh * self.kw * self.l());
        for ki in 0..self.kh {
            for kj in 0..self.kw {
                for oy in 0..self.oh {
                    let iy = (oy * self.s + ki)
                        .checked_sub(self.p)
                        .filter(|&v| v < self.h);
                    for ox in 0..self.ow {
                        let ix = (ox * self.s + kj)
                            .checked_sub(self.p)
                            .filter(|&v| v < self.w);
                        t.push(match (iy, ix) {
                            (Some(iy), Some(ix)) => (iy * self.w + ix) as u32,
                            _ => PAD,
                        });
                    }
                }
            }
        }
        t
    }
}

/// `dst[n] = src[offs[n]]`, or zero where `offs[n]` is [`PAD`].
///
/// Branch-free: every entry reads a pixel (a [`PAD`] entry the plane's last one) and a select
/// zeroes the padding, since where the padding falls in a row is too irregular for the branch
/// predictor (a branch per element made this loop 2.4× slower in a micro-benchmark at the DCGAN
/// shapes).
#[inline(always)]
fn gather_plane<T: Elem>(src: &[T], offs: &[u32], dst: &mut [T]) {
    let Some(last) = src.len().checked_sub(1) else {
        dst.fill(T::ZERO);
        return;
    };
    for (d, &i) in dst.iter_mut().zip(offs) {
        let v = src[(i as usize).min(last)];
        *d = if i == PAD { T::ZERO } else { v };
    }
}

/// `dst[offs[n]] += src[n]`, skipping [`PAD`]; `offs` must not repeat an index.
#[inline(always)]
fn scatter_add_plane<T: Elem>(src: &[T], offs: &[u32], dst: &mut [T]) {
    for (v, &i) in src.iter().zip(offs) {
        if let Some(d) = dst.get_mut(i as usize) {
            *d += *v;
        }
    }
}

avx2_fn! {
    /// Fills `col` with rows `row0..` of the column matrix (`k() × nb·l()`, row-major; `col`
    /// holds `col.len() / (nb·l())` whole rows) of the `nb` images in `x` (`nb × c × h × w`):
    /// `col[(c·kh + ki)·kw + kj][j·l + oy·ow + ox] = x[j][c][oy·s + ki − p][ox·s + kj − p]`,
    /// zero outside the image. `offs` is `g.offsets()`.
    ///
    /// (One call per block, compiled with AVX2 when the CPU has it: the rows are short, 49
    /// values for a 7×7 grid, so a dispatch per row and image cost as much as the copying.)
    fn im2col<T: Elem>(x: &[T], g: &Geom, offs: &[u32], nb: usize, row0: usize, col: &mut [T])
        => im2col_imp
    {
        for (cols, img, t) in block_planes(g, offs, nb, row0, col.len(), x.len()) {
            gather_plane(&x[img], t, &mut col[cols]);
        }
    }
}

/// For each row `row0..` of a block of `block_len` values of the column matrix of `nb` images
/// (`img_len` values), and each image `j`: the block's range of that row's values for image
/// `j`, the range of the image plane they come from (the row's channel of image `j`), and the
/// row's kernel tap's part of `offs`. Empty when `nb · g.l()` is 0. Checks in debug builds that the
/// block and the images fit the geometry.
#[inline(always)]
fn block_planes<'a>(
    g: &Geom,
    offs: &'a [u32],
    nb: usize,
    row0: usize,
    block_len: usize,
    img_len: usize,
) -> impl Iterator<Item = (Range<usize>, Range<usize>, &'a [u32])> {
    let (l, img, c, ncols, taps) = (g.l(), g.img(), g.c, nb * g.l(), g.kh * g.kw);
    debug_assert_eq!(img_len, nb * g.c * g.img());
    debug_assert_eq!(block_len % ncols.max(1), 0);
    debug_assert!(row0 * ncols + block_len <= g.k() * ncols);
    debug_assert_eq!(offs.len(), taps * l);
    let rows = block_len.checked_div(ncols).unwrap_or(0);
    (0..rows).flat_map(move |r| {
        let row = row0 + r;
        let (ch, t) = (row / taps, &offs[(row % taps) * l..][..l]);
        (0..nb).map(move |j| {
            let at = r * ncols + j * l;
            let from = (j * c + ch) * img;
            (at..at + l, from..from + img, t)
        })
    })
}

/// Builds the column matrix of the `nb` images in `x` a block of rows at a time
/// ([`block_rows`]) and calls `f(row0, block)` on each block, in order.
fn for_each_col_block<T: Elem>(
    x: &[T],
    g: &Geom,
    offs: &[u32],
    nb: usize,
    mut f: impl FnMut(usize, &[T]),
) {
    let (k, ncols) = (g.k(), nb * g.l());
    if k == 0 || ncols == 0 {
        return;
    }
    let rows = block_rows::<T>(k, g.kh * g.kw, ncols);
    with_scratch::<T, _>(rows * ncols, |col| {
        for r0 in (0..k).step_by(rows) {
            let col = &mut col[..rows.min(k - r0) * ncols];
            im2col(x, g, offs, nb, r0, col);
            f(r0, col);
        }
    });
}

avx2_fn! {
    /// Adjoint of [`im2col`]: adds every entry of `col` into the image pixel it was read from.
    /// `col` holds the column matrix's rows `row0..` (`col.len() / (nb·l())` of them, whole
    /// rows). `x` (`nb × c × h × w`) must be zeroed by the caller if a plain col2im is wanted.
    ///
    /// (One call per block, compiled with AVX2 when the CPU has it, as [`im2col`].)
    fn col2im_add<T: Elem>(col: &[T], g: &Geom, offs: &[u32], nb: usize, row0: usize, x: &mut [T])
        => col2im_add_imp
    {
        for (cols, img, t) in block_planes(g, offs, nb, row0, col.len(), x.len()) {
            scatter_add_plane(&col[cols], t, &mut x[img]);
        }
    }
}

/// Rows per block when a column matrix of `rows × ncols` is made and used a block at a time:
/// whole channels (`taps` rows each) and about [`BLOCK_BYTES`] per block, so that a block written
/// by `gemm` is still in this core's cache when it is scattered (or gathered and then read).
fn block_rows<T>(rows: usize, taps: usize, ncols: usize) -> usize {
    let per_channel = (taps * ncols * std::mem::size_of::<T>()).max(1);
    let channels = (BLOCK_BYTES / per_channel).max(1);
    (channels * taps).min(rows).max(1)
}

/// `rows` (whole channels of `taps` rows) rounded up to a multiple of the 6 columns of `gemm`'s
/// f32 AVX2 micro-kernel when a few more channels do it (and `total` allows), for a block that
/// becomes the columns of the product (`gemm` computes a row-major product transposed): 80 rows
/// would leave 2 columns to a narrow edge kernel that runs at a third of the speed.
fn whole_panels(rows: usize, taps: usize, total: usize) -> usize {
    const NR: usize = 6;
    let mut r = rows;
    while r % NR != 0 && r + taps <= total && r + taps <= rows * 2 {
        r += taps;
    }
    if r % NR == 0 {
        r
    } else {
        rows
    }
}

/// Target size of one block of a column matrix: half of a core's L2 cache on the machines we
/// measure on (512 KiB per core). Tiny in unit tests, so that they cover several blocks and a
/// partial last one.
const BLOCK_BYTES: usize = if cfg!(test) { 1 << 10 } else { 256 << 10 };

/// Copies `nb` items of `x` (`nb × rows × l`) into `dst` (`rows × nb·l`): item `j` becomes
/// columns `j·l..(j+1)·l`.
fn gather<T: Elem>(x: &[T], rows: usize, l: usize, nb: usize, dst: &mut [T]) {
    for (r, dst_row) in dst.chunks_exact_mut(nb * l).enumerate() {
        for (j, d) in dst_row.chunks_exact_mut(l).enumerate() {
            d.copy_from_slice(&x[(j * rows + r) * l..][..l]);
        }
    }
}

/// Inverse of [`gather`]: `src` (`rows × nb·l`) into `y` (`nb × rows × l`).
fn scatter<T: Elem>(src: &[T], rows: usize, l: usize, nb: usize, y: &mut [T]) {
    for (r, src_row) in src.chunks_exact(nb * l).enumerate() {
        for (j, s) in src_row.chunks_exact(l).enumerate() {
            y[(j * rows + r) * l..][..l].copy_from_slice(s);
        }
    }
}

/// A read-only strided matrix view: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
struct Mat<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

impl<T> Mat<'_, T> {
    /// Whether every element of a `m × n` matrix lies inside `data`.
    fn fits(&self, m: usize, n: usize) -> bool {
        m == 0 || n == 0 || (m - 1) * self.rs + (n - 1) * self.cs < self.data.len()
    }
}

/// `dst (m × n, strides dst_rs, dst_cs) = [dst +] lhs (m × k) · rhs (k × n)`.
#[allow(clippy::too_many_arguments)]
fn matmul<T: Elem>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    par: Parallelism,
) {
    let dst_view = Mat {
        data: &*dst,
        rs: dst_rs,
        cs: dst_cs,
    };
    assert!(dst_view.fits(m, n), "matmul: dst too small");
    // Distinct (i, j) must be distinct elements: rows side by side or columns side by side.
    assert!(
        m <= 1 || n <= 1 || dst_rs >= dst_cs * n || dst_cs >= dst_rs * m,
        "matmul: overlapping dst strides"
    );
    assert!(
        lhs.fits(m, k) && rhs.fits(k, n),
        "matmul: operand too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_rs + j * dst_cs] = T::ZERO;
                }
            }
        }
        return;
    }
    // SAFETY: the asserts above check that every index gemm reads, `i·rs + j·cs` for `i < m`
    // (or `k`) and `j < k` (or `n`), lies inside `lhs.data` and `rhs.data`, that every index it
    // writes, `i·dst_rs + j·dst_cs`, lies inside `dst`, and that no two (i, j) share an element,
    // so its threads never write the same place; `dst` is a unique borrow, so it aliases neither
    // operand. T is f32 or f64, which gemm supports. With `read_dst == false` gemm ignores
    // `alpha` and does not read `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        )
    }
}

/// Target number of matrix columns (pixels) per chunk.
const TARGET_COLS: usize = 1024;
/// Upper bound on a chunk's column matrix, in bytes.
const MAX_COL_BYTES: usize = 8 << 20;

fn gemm_parallel_forced() -> bool {
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| std::env::var("GAN_CONV_PAR").is_ok_and(|v| v == "gemm"))
}

/// Items per chunk near `target` such that the chunks split evenly over `threads`: rayon hands
/// each thread a contiguous half (quarter, …) of the chunks, so when the chunk size divides each
/// thread's share of the batch no thread waits for another's extra or fuller chunk. (For batch
/// 64 on 2 threads and a target of 6, the old rule gave 11 chunks of up to 6 items: 36 items
/// on one thread, 28 on the other.) Falls back to a whole number of chunks per thread when the
/// batch does not split evenly.
fn balanced_chunk(batch: usize, threads: usize, target: usize, cap: usize) -> usize {
    if batch % threads == 0 {
        let share = batch / threads;
        let cap = cap.max(1);
        if let Some(d) = (1..=share.min(cap))
            .filter(|d| share % d == 0)
            .min_by_key(|&d| d.abs_diff(target))
        {
            return d;
        }
    }
    let chunks = batch.div_ceil(target).div_ceil(threads) * threads;
    batch.div_ceil(chunks)
}

/// How a batch is cut into chunks and how the threads are used.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Batch items per chunk (the last chunk may hold fewer).
    nb: usize,
    /// Whether chunks run in parallel (each with a single-threaded gemm) or one after the other
    /// (with a multi-threaded gemm).
    par_chunks: bool,
    threads: usize,
}

impl Plan {
    /// `l`: columns per batch item; `rows`: rows of the largest per-chunk matrix.
    fn new<T>(batch: usize, l: usize, rows: usize) -> Self {
        let threads = rayon::current_num_threads().max(1);
        let l = l.max(1);
        let by_mem = (MAX_COL_BYTES / (rows.max(1) * l * std::mem::size_of::<T>())).max(1);
        let mut nb = TARGET_COLS.div_ceil(l).min(by_mem).clamp(1, batch.max(1));
        let par_chunks = threads > 1 && batch >= threads && !gemm_parallel_forced();
        if par_chunks {
            nb = balanced_chunk(batch, threads, nb, by_mem);
        }
        Self {
            nb,
            par_chunks,
            threads,
        }
    }

    fn gemm_par(&self) -> Parallelism {
        if self.par_chunks || self.threads == 1 {
            Parallelism::None
        } else {
            Parallelism::Rayon(self.threads)
        }
    }
}

/// The sizes of one kernel call: `b` batch items of the image-side geometry `g`, and `c`
/// channels on the other side of the weight (conv2d's `c_out`, the transposed convolution's
/// `c_in`, the weight gradient's `c_g`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub b: usize,
    pub c: usize,
    pub g: Geom,
}

impl Dims {
    /// What every kernel sets up first: how to cut the batch, `gemm`'s parallelism under that
    /// plan, and `g`'s offsets table (empty when `g` is dense: no kernel reads it then).
    fn setup<T>(&self) -> (Plan, Parallelism, Vec<u32>) {
        let g = &self.g;
        let plan = Plan::new::<T>(self.b, g.l(), g.k().max(self.c));
        let offs = if g.dense() { Vec::new() } else { g.offsets() };
        (plan, plan.gemm_par(), offs)
    }
}

/// A new output of `b` items of `per_item` elements: each chunk of the plan is zeroed and then
/// filled by `f(first_item, n_items, out_chunk)`, in parallel when the plan says so.
fn chunked_output<T: Elem>(
    b: usize,
    per_item: usize,
    plan: &Plan,
    f: impl Fn(usize, usize, &mut [T]) + Sync + Send,
) -> Vec<T> {
    if per_item == 0 {
        return Vec::new();
    }
    par_chunks_filled(
        b * per_item,
        plan.nb * per_item,
        T::ZERO,
        plan.par_chunks,
        |i, o| f(i * plan.nb, o.len() / per_item, o),
    )
}

avx2_fn! {
    /// LeakyReLU in place, `v · (v > 0 ? 1 : slope)`: the same bits as the separate op's forward.
    fn leaky_in_place<T: Elem>(y: &mut [T], slope: T) => leaky_in_place_imp {
        for v in y.iter_mut() {
            *v = *v * if *v > T::ZERO { T::ONE } else { slope };
        }
    }
}

/// conv2d: `x` (`b × c_in × h × w`), `w` (`c_out × c_in·kh·kw`), with `d.c = c_out` and the
/// geometry `d.g` of the input side; returns `b × c_out × oh × ow`, followed by a LeakyReLU of
/// slope `leaky` when given (applied to each chunk of the output as soon as it is written, while
/// it is in cache).
pub(crate) fn conv2d<T: Elem>(x: &[T], w: &[T], d: &Dims, leaky: Option<T>) -> Vec<T> {
    let (b, c_out, g) = (d.b, d.c, &d.g);
    let (l, img) = (g.l(), g.c * g.img());
    let (plan, par, offs) = d.setup::<T>();
    chunked_output(b, c_out * l, &plan, |b0, nb, y| {
        conv2d_chunk(
            &x[b0 * img..][..nb * img],
            w,
            nb,
            c_out,
            g,
            &offs,
            par,
            y,
            |_, _| {},
        );
        if let Some(slope) = leaky {
            leaky_in_place(y, slope);
        }
    })
}

/// One chunk of [`conv2d`]: the `nb` images `xs` into `y` (`nb × c_out × oh × ow`). Unless `g`
/// is [`Geom::dense`], also hands each block of the chunk's column matrix to
/// `each_block(row0, block)` once it has been multiplied.
#[allow(clippy::too_many_arguments)]
fn conv2d_chunk<T: Elem>(
    xs: &[T],
    w: &[T],
    nb: usize,
    c_out: usize,
    g: &Geom,
    offs: &[u32],
    par: Parallelism,
    y: &mut [T],
    mut each_block: impl FnMut(usize, &[T]),
) {
    let (k, l) = (g.k(), g.l());
    let lhs = Mat {
        data: w,
        rs: k,
        cs: 1,
    };
    let ncols = nb * l;
    // With one column per item, `y` (`nb × c_out`) is the product's transpose.
    let dst_strides = if l == 1 { (1, c_out) } else { (ncols, 1) };
    if g.dense() {
        let rhs = Mat {
            data: xs,
            rs: 1,
            cs: k,
        };
        matmul((c_out, nb, k), y, dst_strides, false, lhs, rhs, par);
        return;
    }
    // `dst = w · col`, summed over blocks of the column matrix's rows.
    let mut product = |dst: &mut [T], dst_strides| {
        for_each_col_block(xs, g, offs, nb, |r0, col| {
            let lhs = Mat {
                data: &w[r0..],
                ..lhs
            };
            let rhs = Mat {
                data: col,
                rs: ncols,
                cs: 1,
            };
            let n = col.len() / ncols;
            matmul((c_out, ncols, n), dst, dst_strides, r0 > 0, lhs, rhs, par);
            each_block(r0, col);
        });
    };
    if nb == 1 || l == 1 {
        product(y, dst_strides);
    } else {
        with_scratch::<T, _>(c_out * ncols, |tmp| {
            product(tmp, (ncols, 1));
            scatter(tmp, c_out, l, nb, y);
        });
    }
}

/// A chunk of `nb` items of `x` (`nb × rows × l`) as a `rows × nb·l` matrix, passed to `f`:
/// a strided view when possible, else gathered into scratch.
fn with_columns<T: Elem, R>(
    x: &[T],
    rows: usize,
    l: usize,
    nb: usize,
    f: impl FnOnce(Mat<'_, T>) -> R,
) -> R {
    if nb == 1 || l == 1 {
        let (rs, cs) = if l == 1 { (1, rows) } else { (l, 1) };
        f(Mat { data: x, rs, cs })
    } else {
        with_scratch::<T, _>(rows * nb * l, |buf| {
            gather(x, rows, l, nb, buf);
            f(Mat {
                data: buf,
                rs: nb * l,
                cs: 1,
            })
        })
    }
}

/// conv_transpose2d: `x` (`b × c_in × oh × ow`), `w` (`c_in × c_out·kh·kw`), with `d.c = c_in`
/// and the geometry `d.g` of the output side (`g.c == c_out`, image `h × w`, kernel grid
/// `oh × ow` = the input's size); returns `b × c_out × h × w`.
pub(crate) fn conv_transpose2d<T: Elem>(x: &[T], w: &[T], d: &Dims) -> Vec<T> {
    let (b, c_in, g) = (d.b, d.c, &d.g);
    let (m, l, img) = (g.k(), g.l(), g.c * g.img());
    let (plan, par, offs) = d.setup::<T>();
    let lhs = Mat {
        data: w,
        rs: 1,
        cs: m,
    };
    chunked_output(b, img, &plan, |b0, nb, y| {
        let ncols = nb * l;
        let xs = &x[b0 * c_in * l..][..nb * c_in * l];
        with_columns(xs, c_in, l, nb, |rhs| {
            if g.dense() {
                // The column matrix is the output itself, transposed (`m == img`).
                matmul((m, nb, c_in), y, (1, m), false, lhs, rhs, par);
            } else {
                let rows = whole_panels(block_rows::<T>(m, g.kh * g.kw, ncols), g.kh * g.kw, m);
                with_scratch::<T, _>(rows * ncols, |col| {
                    for r0 in (0..m).step_by(rows) {
                        let n = rows.min(m - r0);
                        let col = &mut col[..n * ncols];
                        let lhs = Mat {
                            data: &w[r0..],
                            ..lhs
                        };
                        matmul((n, ncols, c_in), col, (ncols, 1), false, lhs, rhs, par);
                        col2im_add(col, g, &offs, nb, r0, y);
                    }
                });
            }
        });
    })
}

/// Sums per-chunk contributions into one `len`-long buffer: `run(item, acc, accumulate)` adds
/// (or, first in its group, writes) an item's share into `acc`. Items are dealt round-robin to
/// `groups` groups that run in parallel, each into its own buffer, and the buffers are added in
/// group order, so the result does not depend on scheduling.
fn sum_in_groups<T: Elem, I: Send>(
    items: Vec<I>,
    groups: usize,
    len: usize,
    run: impl Fn(I, &mut [T], bool) + Sync,
) -> Vec<T> {
    let groups = groups.clamp(1, items.len().max(1));
    let mut per_group: Vec<Vec<I>> = (0..groups).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        per_group[i % groups].push(item);
    }
    let run_group = |list: Vec<I>, acc: &mut [T]| {
        for (i, item) in list.into_iter().enumerate() {
            run(item, acc, i > 0);
        }
    };
    // Each group's buffer is allocated (and zeroed) by the thread that runs the group.
    let run_new = |list: Vec<I>| {
        let mut acc = vec![T::ZERO; len];
        run_group(list, &mut acc);
        acc
    };
    let first = per_group.remove(0);
    let (mut sum, partial) = rayon::join(
        || run_new(first),
        || per_group.into_par_iter().map(run_new).collect::<Vec<_>>(),
    );
    // The buffers are added in group order, each element on its own: in parallel over slices.
    sum.par_chunks_mut(1 << 14).enumerate().for_each(|(i, s)| {
        for p in &partial {
            for (a, &v) in s.iter_mut().zip(&p[i << 14..]) {
                *a += v;
            }
        }
    });
    sum
}

/// Weight gradient of conv2d: `x` (`b × c × h × w`, geometry `d.g`), `gy` (`b × c_g × oh × ow`,
/// `d.c = c_g`); returns `c_g × c·kh·kw` = Σ_b gy_b · im2col(x_b)ᵀ.
pub(crate) fn conv2d_weight_grad<T: Elem>(x: &[T], gy: &[T], d: &Dims) -> Vec<T> {
    let (b, c_g, g) = (d.b, d.c, &d.g);
    let (k, l, img) = (g.k(), g.l(), g.c * g.img());
    let (plan, par, offs) = d.setup::<T>();
    let n_chunks = b.div_ceil(plan.nb);
    // One chunk: `gw (+)= gy_chunk · col_chunkᵀ`.
    let run_chunk = |ci: usize, gw: &mut [T], accumulate: bool| {
        let b0 = ci * plan.nb;
        let nb = plan.nb.min(b - b0);
        let ncols = nb * l;
        let xs = &x[b0 * img..][..nb * img];
        let gys = &gy[b0 * c_g * l..][..nb * c_g * l];
        with_columns(gys, c_g, l, nb, |lhs| {
            if g.dense() {
                let rhs = Mat {
                    data: xs,
                    rs: k,
                    cs: 1,
                };
                matmul((c_g, k, nb), gw, (k, 1), accumulate, lhs, rhs, par);
            } else {
                // Columns `r0..` of `gw` from a block of the column matrix's rows.
                for_each_col_block(xs, g, &offs, nb, |r0, col| {
                    let rhs = Mat {
                        data: col,
                        rs: 1,
                        cs: ncols,
                    };
                    let n = col.len() / ncols;
                    matmul(
                        (c_g, n, ncols),
                        &mut gw[r0..],
                        (k, 1),
                        accumulate,
                        lhs,
                        rhs,
                        par,
                    );
                });
            }
        });
    };
    if b == 0 {
        return vec![T::ZERO; c_g * k];
    }
    let groups = if plan.par_chunks { plan.threads } else { 1 };
    sum_in_groups(
        (0..n_chunks).collect(),
        groups,
        c_g * k,
        |ci, gw, accumulate| run_chunk(ci, gw, accumulate),
    )
}

/// Both gradients of a transposed convolution from one im2col of its output gradient, for a
/// first-order backward pass: `gy` (`b × c_out × h × w`, geometry `d.g` as for conv2d on it),
/// `w` (`c_in × c_out·kh·kw`), `x` (`b × c_in × oh × ow`, the op's input; `d.c = c_in`). Returns
/// `(gx, gw)`: `gx = conv2d(gy, w)` (`b × c_in × oh × ow`) and
/// `gw = Σ_b x_b · im2col(gy_b)ᵀ` (`c_in × c_out·kh·kw`), as [`conv2d`] and
/// [`conv2d_weight_grad`] compute them apart, each chunk's column matrix built once.
/// `g` must not be [`Geom::dense`].
pub(crate) fn conv_transpose2d_grads<T: Elem>(
    gy: &[T],
    w: &[T],
    x: &[T],
    d: &Dims,
) -> (Vec<T>, Vec<T>) {
    let (b, c_in, g) = (d.b, d.c, &d.g);
    assert!(!g.dense(), "conv_transpose2d_grads: whole-image kernel");
    let (k, l, img) = (g.k(), g.l(), g.c * g.img());
    if b == 0 || l == 0 {
        return (vec![T::ZERO; b * c_in * l], vec![T::ZERO; c_in * k]);
    }
    let n = b * c_in * l;
    let mut gx = Vec::with_capacity(n);
    let (plan, par, offs) = d.setup::<T>();
    // One chunk: its slice of `gx` (conv2d of `gy` with `w`), and, from each block of the same
    // column matrix, columns `r0..` of `gw (+)= x_chunk · colᵀ`.
    let run_chunk = |ci: usize, gx: &mut [T], gw: &mut [T], accumulate: bool| {
        let b0 = ci * plan.nb;
        let nb = gx.len() / (c_in * l);
        let ncols = nb * l;
        let gys = &gy[b0 * img..][..nb * img];
        let xs = &x[b0 * c_in * l..][..nb * c_in * l];
        with_columns(xs, c_in, l, nb, |x_mat| {
            conv2d_chunk(gys, w, nb, c_in, g, &offs, par, gx, |r0, col| {
                let n = col.len() / ncols;
                let col_t = Mat {
                    data: col,
                    rs: 1,
                    cs: ncols,
                };
                let gw = &mut gw[r0..];
                matmul((c_in, n, ncols), gw, (k, 1), accumulate, x_mat, col_t, par);
            });
        });
    };
    // `gx`'s chunks are zeroed by the threads that fill them (see `crate::par`).
    let chunks: Vec<_> = gx.spare_capacity_mut()[..n]
        .chunks_mut(plan.nb * c_in * l)
        .enumerate()
        .collect();
    let groups = if plan.par_chunks { plan.threads } else { 1 };
    let gw = sum_in_groups(chunks, groups, c_in * k, |(ci, gxc), gw, accumulate| {
        run_chunk(ci, zeroed(gxc, T::ZERO), gw, accumulate)
    });
    // SAFETY: the chunks cover the first `n` elements, and `sum_in_groups` ran every item, each
    // of which initialised its chunk through `zeroed` (a panic propagates before this line).
    unsafe { gx.set_len(n) };
    (gx, gw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_evenly_over_the_threads() {
        // (batch, threads, target, cap) → chunk size
        for (b, t, target, cap, want) in [
            (64, 2, 6, 100, 4),
            (64, 2, 21, 100, 16),
            (64, 2, 64, 100, 32),
            (64, 2, 64, 5, 4),
            (16, 2, 4, 100, 4),
            (16, 2, 1, 100, 1),
        ] {
            let nb = balanced_chunk(b, t, target, cap);
            assert_eq!(nb, want, "batch {b} threads {t} target {target} cap {cap}");
            assert_eq!((b / t) % nb, 0);
        }
        // An odd batch: a whole number of chunks per thread, as many items as the target allows.
        assert_eq!(balanced_chunk(63, 2, 6, 100), 6);
        assert_eq!(balanced_chunk(7, 2, 2, 100), 2);
    }

    #[test]
    fn transposed_blocks_are_whole_panels_when_cheap() {
        // (rows, taps, total) → rows per block
        for (rows, taps, total, want) in [
            (80, 16, 2048, 96), // 5 channels of 16 taps → 6
            (16, 16, 16, 16),   // no more rows to take
            (18, 9, 1000, 18),  // already whole panels
            (49, 49, 1000, 49), // 98 and 147 are not whole panels within 2×
            (32, 16, 40, 32),   // 48 would pass the end
            (4, 1, 100, 6),
        ] {
            assert_eq!(
                whole_panels(rows, taps, total),
                want,
                "{rows} {taps} {total}"
            );
        }
    }

    #[test]
    fn offsets_match_brute_force() {
        for s in 1..4 {
            for p in 0..4 {
                for (h, w) in [(1, 1), (3, 5), (6, 4), (7, 7)] {
                    for (kh, kw) in [(1, 1), (2, 3), (4, 4)] {
                        let (Some(oh), Some(ow)) = (
                            super::super::ops::conv_out(h, kh, s, p),
                            super::super::ops::conv_out(w, kw, s, p),
                        ) else {
                            continue;
                        };
                        let g = Geom::of(1, (h, w), (kh, kw), s, p, (oh, ow));
                        let t = g.offsets();
                        let mut n = 0;
                        for ki in 0..kh {
                            for kj in 0..kw {
                                for oy in 0..oh {
                                    for ox in 0..ow {
                                        let iy = (oy * s + ki) as isize - p as isize;
                                        let ix = (ox * s + kj) as isize - p as isize;
                                        let inside = (0..h as isize).contains(&iy)
                                            && (0..w as isize).contains(&ix);
                                        let want = if inside {
                                            (iy as usize * w + ix as usize) as u32
                                        } else {
                                            PAD
                                        };
                                        assert_eq!(t[n], want, "s{s} p{p} {h}x{w} k{kh}x{kw}");
                                        n += 1;
                                    }
                                }
                            }
                        }
                        assert_eq!(n, t.len());
                    }
                }
            }
        }
    }
    /// Direct loops in f64: conv2d of `x` (`b × g.c × h × w`) with `w` (`c_out × g.k()`).
    fn conv2d_direct(x: &[f64], w: &[f64], b: usize, c_out: usize, g: &Geom) -> Vec<f64> {
        let mut y = vec![0.0; b * c_out * g.l()];
        for_each_tap(g, |c, ki, kj, oy, ox, iy, ix| {
            for n in 0..b {
                for co in 0..c_out {
                    y[(n * c_out + co) * g.l() + oy * g.ow + ox] += w
                        [co * g.k() + (c * g.kh + ki) * g.kw + kj]
                        * x[((n * g.c + c) * g.h + iy) * g.w + ix];
                }
            }
        });
        y
    }

    /// Calls `f(c, ki, kj, oy, ox, iy, ix)` for every tap that reads a pixel inside the image.
    fn for_each_tap(g: &Geom, mut f: impl FnMut(usize, usize, usize, usize, usize, usize, usize)) {
        for c in 0..g.c {
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    for oy in 0..g.oh {
                        for ox in 0..g.ow {
                            let iy = (oy * g.s + ki).checked_sub(g.p).filter(|&v| v < g.h);
                            let ix = (ox * g.s + kj).checked_sub(g.p).filter(|&v| v < g.w);
                            if let (Some(iy), Some(ix)) = (iy, ix) {
                                f(c, ki, kj, oy, ox, iy, ix);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The geometry of a conv2d of `c` channels of `h × w` with a `k × k` kernel at stride `s`
    /// and padding `p`; the kernel must fit the padded image.
    fn square_kernel_geom(c: usize, (h, w): (usize, usize), k: usize, s: usize, p: usize) -> Geom {
        let out = |n| super::super::ops::conv_out(n, k, s, p).expect("the kernel fits");
        Geom::of(c, (h, w), (k, k), s, p, (out(h), out(w)))
    }

    fn lcg(seed: u64) -> impl FnMut(usize) -> Vec<f64> {
        let mut seed = seed;
        move |n| {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
                })
                .collect()
        }
    }

    /// The kernels, which build and use the column matrix a block of rows at a time (a few
    /// hundred bytes per block under `cfg(test)`, so several blocks and a partial last one),
    /// equal direct loops: conv2d, its weight gradient, and the transposed convolution (the
    /// adjoint of conv2d in its input, checked as `⟨conv2d(x), y⟩ = ⟨x, convT(y)⟩` entrywise).
    /// So do the fused transposed-convolution gradients, which are conv2d and its weight
    /// gradient from one im2col (f64, several chunks, strides, paddings, non-square images).
    #[test]
    fn blocked_kernels_match_direct_loops() {
        let mut rand = lcg(11);
        // (batch, channels in, channels out, h, w, k, s, p)
        for (b, c, c_out, h, w, k, s, p) in [
            (1, 5, 3, 8, 14, 2, 2, 0),
            (3, 7, 4, 9, 6, 3, 1, 1),
            (64, 3, 5, 14, 14, 4, 2, 1),
            (2, 4, 2, 5, 7, 1, 1, 0),
            (6, 2, 6, 7, 7, 5, 2, 3),
            (5, 4, 3, 8, 6, 4, 2, 1),
            (7, 3, 2, 9, 9, 3, 1, 1),
            (64, 5, 6, 14, 14, 4, 2, 1),
        ] {
            let g = square_kernel_geom(c, (h, w), k, s, p);
            assert!(block_rows::<f64>(g.k(), k * k, g.l()) < g.k());
            let (x, wt, gy) = (
                rand(b * c * h * w),
                rand(c_out * g.k()),
                rand(b * c_out * g.l()),
            );
            let close = |got: &[f64], want: &[f64]| {
                assert_eq!(got.len(), want.len());
                for (a, e) in got.iter().zip(want) {
                    assert!((a - e).abs() <= 1e-12 * (1.0 + e.abs()), "{a} vs {e}");
                }
            };
            let d = Dims { b, c: c_out, g };
            let y = conv2d_direct(&x, &wt, b, c_out, &g);
            close(&conv2d(&x, &wt, &d, None), &y);
            let mut gw = vec![0.0; c_out * g.k()];
            let mut gx = vec![0.0; b * c * h * w];
            for_each_tap(&g, |ci, ki, kj, oy, ox, iy, ix| {
                for n in 0..b {
                    for co in 0..c_out {
                        let gyv = gy[(n * c_out + co) * g.l() + oy * g.ow + ox];
                        let wi = co * g.k() + (ci * g.kh + ki) * g.kw + kj;
                        let xi = ((n * c + ci) * h + iy) * w + ix;
                        gw[wi] += gyv * x[xi];
                        gx[xi] += gyv * wt[wi];
                    }
                }
            });
            close(&conv2d_weight_grad(&x, &gy, &d), &gw);
            // conv_transpose2d takes its weight as `c_in × c_out·kh·kw` with the conv2d side's
            // channels as `c_out`: the same buffer as conv2d's `c_out × c·kh·kw`.
            close(&conv_transpose2d(&gy, &wt, &d), &gx);
            // The gradients of a transposed convolution of `gy` (its input, `c_out` channels)
            // whose output gradient is `x`: conv2d of `x` and the weight gradient above.
            let (t_gx, t_gw) = conv_transpose2d_grads(&x, &wt, &gy, &d);
            close(&t_gx, &y);
            close(&t_gw, &gw);
        }
    }
}
