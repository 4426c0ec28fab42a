//! Tests for the fast convolutions: forward and gradients against candle's ops on seeded random
//! shapes, first and second derivatives against finite differences of a naive f64 reference,
//! skipped input gradients, and the layers.

use anyhow::Result;
use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use gan_core::conv::{self, ConvParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TOL: f64 = 1e-5;

fn randn(rng: &mut StdRng, dims: &[usize]) -> Result<Tensor> {
    let n = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    Ok(Tensor::from_vec(v, dims, &Device::Cpu)?)
}

fn randn64(rng: &mut StdRng, dims: &[usize]) -> Result<Tensor> {
    let n = dims.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0f64..1.0)).collect();
    Ok(Tensor::from_vec(v, dims, &Device::Cpu)?)
}

/// Largest difference, relative to the largest magnitude of the reference (at least 1).
fn rel_err(ours: &Tensor, want: &Tensor) -> Result<f64> {
    assert_eq!(ours.dims(), want.dims());
    let a = ours.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let b = want.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let scale = b.iter().fold(1f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
    Ok(diff / scale)
}

/// One random convolution case.
#[derive(Debug, Clone, Copy)]
struct Case {
    b: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    p: ConvParams,
}

impl Case {
    /// conv2d case: input `h × w` large enough for the kernel.
    fn conv(rng: &mut StdRng) -> Self {
        let (kh, kw): (usize, usize) = if rng.gen_bool(0.5) {
            let k = rng.gen_range(1..=7);
            (k, k)
        } else {
            (rng.gen_range(1..=7), rng.gen_range(1..=7))
        };
        let stride = rng.gen_range(1..=2);
        let padding = rng.gen_range(0..=3);
        let h = rng.gen_range(kh.saturating_sub(2 * padding).max(1)..=kh + 8);
        let w = rng.gen_range(kw.saturating_sub(2 * padding).max(1)..=kw + 8);
        Self {
            b: rng.gen_range(1..=3),
            c_in: rng.gen_range(1..=5),
            c_out: rng.gen_range(1..=5),
            h,
            w,
            kh,
            kw,
            p: ConvParams::new(stride, padding),
        }
    }

    /// conv_transpose2d case: output size positive.
    fn conv_t(rng: &mut StdRng) -> Self {
        loop {
            let mut c = Self::conv(rng);
            c.h = rng.gen_range(1..=8);
            c.w = rng.gen_range(1..=8);
            c.p.output_padding = rng.gen_range(0..c.p.stride);
            let (oh, ow) = c.conv_t_out();
            if oh > 0 && ow > 0 {
                return c;
            }
        }
    }

    fn conv_out(&self) -> (usize, usize) {
        let s = self.p.stride;
        let pp = 2 * self.p.padding;
        (
            (self.h + pp - self.kh) / s + 1,
            (self.w + pp - self.kw) / s + 1,
        )
    }

    fn conv_t_out(&self) -> (isize, isize) {
        let s = self.p.stride as isize;
        let extra = self.p.output_padding as isize - 2 * self.p.padding as isize;
        (
            (self.h as isize - 1) * s + self.kh as isize + extra,
            (self.w as isize - 1) * s + self.kw as isize + extra,
        )
    }

    /// Whether candle's conv2d backward, which takes `output_padding` from the height only,
    /// gets the input gradient's width right.
    fn candle_conv_bwd_ok(&self) -> bool {
        let pp = 2 * self.p.padding;
        let s = self.p.stride;
        (self.h + pp - self.kh) % s == (self.w + pp - self.kw) % s
    }
}

fn candle_conv2d(x: &Tensor, w: &Tensor, p: ConvParams) -> candle_core::Result<Tensor> {
    x.conv2d(w, p.padding, p.stride, 1, 1)
}

fn candle_conv_t(x: &Tensor, w: &Tensor, p: ConvParams) -> candle_core::Result<Tensor> {
    x.conv_transpose2d(w, p.padding, p.output_padding, p.stride, 1)
}

#[test]
fn conv2d_forward_matches_candle() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(11);
    for i in 0..300 {
        let c = Case::conv(&mut rng);
        let x = randn(&mut rng, &[c.b, c.c_in, c.h, c.w])?;
        let w = randn(&mut rng, &[c.c_out, c.c_in, c.kh, c.kw])?;
        let ours = conv::conv2d(&x, &w, c.p)?;
        let want = candle_conv2d(&x, &w, c.p)?;
        let err = rel_err(&ours, &want)?;
        assert!(err < TOL, "case {i} {c:?}: error {err}");
    }
    Ok(())
}

#[test]
fn conv_transpose2d_forward_matches_candle() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(12);
    for i in 0..300 {
        let c = Case::conv_t(&mut rng);
        let x = randn(&mut rng, &[c.b, c.c_in, c.h, c.w])?;
        let w = randn(&mut rng, &[c.c_in, c.c_out, c.kh, c.kw])?;
        let ours = conv::conv_transpose2d(&x, &w, c.p)?;
        let want = candle_conv_t(&x, &w, c.p)?;
        let err = rel_err(&ours, &want)?;
        assert!(err < TOL, "case {i} {c:?}: error {err}");
    }
    Ok(())
}

/// Larger, DCGAN-like shapes, which cut the batch into several chunks run in parallel.
#[test]
fn forward_matches_candle_on_dcgan_shapes() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(13);
    let s2 = ConvParams::new(2, 1);
    for (b, c_in, c_out, k, hw, p) in [
        (16, 1, 64, 4, 28, s2),
        (16, 64, 128, 4, 14, s2),
        (16, 128, 1, 7, 7, ConvParams::new(1, 0)),
        (33, 8, 16, 3, 9, ConvParams::new(1, 1)),
    ] {
        let x = randn(&mut rng, &[b, c_in, hw, hw])?;
        let w = randn(&mut rng, &[c_out, c_in, k, k])?;
        let err = rel_err(&conv::conv2d(&x, &w, p)?, &candle_conv2d(&x, &w, p)?)?;
        assert!(err < TOL, "conv {b} {c_in} {c_out} {k} {hw}: {err}");
    }
    for (b, c_in, c_out, k, hw, p) in [
        (16, 100, 256, 7, 1, ConvParams::new(1, 0)),
        (16, 256, 128, 4, 7, s2),
        (16, 128, 1, 4, 14, s2),
        (33, 8, 16, 3, 9, ConvParams::new(1, 1)),
    ] {
        let x = randn(&mut rng, &[b, c_in, hw, hw])?;
        let w = randn(&mut rng, &[c_in, c_out, k, k])?;
        let err = rel_err(
            &conv::conv_transpose2d(&x, &w, p)?,
            &candle_conv_t(&x, &w, p)?,
        )?;
        assert!(err < TOL, "conv_t {b} {c_in} {c_out} {k} {hw}: {err}");
    }
    Ok(())
}

/// Kernels covering the whole image (a generator's first layer, a discriminator's last) and
/// single-pixel outputs take shortcuts: forward and gradients against candle, at batch sizes cut
/// into several chunks.
#[test]
fn whole_image_kernels_match_candle() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(14);
    // (b, c_in, c_out, kh, kw, h, w, params)
    for (b, c_in, c_out, kh, kw, h, w, p) in [
        (37, 20, 6, 7, 7, 7, 7, ConvParams::new(1, 0)),
        (9, 5, 3, 3, 5, 3, 5, ConvParams::new(2, 0)),
        (1, 5, 3, 4, 4, 4, 4, ConvParams::new(1, 0)),
        (40, 4, 6, 3, 3, 4, 4, ConvParams::new(2, 0)),
        (40, 4, 6, 4, 4, 2, 2, ConvParams::new(1, 1)),
    ] {
        let x = randn(&mut rng, &[b, c_in, h, w])?;
        let k = randn(&mut rng, &[c_out, c_in, kh, kw])?;
        let y = conv::conv2d(&x, &k, p)?;
        assert!(rel_err(&y, &candle_conv2d(&x, &k, p)?)? < TOL);
        let r = randn(&mut rng, y.dims())?;
        let (gx, gk) = grads(|x, k| conv::conv2d(x, k, p), &x, &k, &r)?;
        let (cx, ck) = grads(|x, k| candle_conv2d(x, k, p), &x, &k, &r)?;
        assert!(
            rel_err(&gx, &cx)? < TOL && rel_err(&gk, &ck)? < TOL,
            "conv {b} {kh}x{kw}"
        );

        // The transposed convolution back from `y`'s size, weight read as [c_out, c_in, ..].
        let z = randn(&mut rng, y.dims())?;
        let pt = ConvParams {
            output_padding: (h + 2 * p.padding - kh) % p.stride,
            ..p
        };
        let yt = conv::conv_transpose2d(&z, &k, pt)?;
        assert_eq!(yt.dims(), x.dims());
        assert!(rel_err(&yt, &candle_conv_t(&z, &k, pt)?)? < TOL);
        let r = randn(&mut rng, yt.dims())?;
        let (gz, gk) = grads(|z, k| conv::conv_transpose2d(z, k, pt), &z, &k, &r)?;
        let (cz, ck) = grads(|z, k| candle_conv_t(z, k, pt), &z, &k, &r)?;
        assert!(
            rel_err(&gz, &cz)? < TOL && rel_err(&gk, &ck)? < TOL,
            "conv_t {b} {kh}x{kw}"
        );
    }
    Ok(())
}

/// Gradients of `sum(f(x, w) · r)` with respect to `x` and `w`.
fn grads(
    f: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    x: &Tensor,
    w: &Tensor,
    r: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let xv = Var::from_tensor(x)?;
    let wv = Var::from_tensor(w)?;
    let loss = (f(xv.as_tensor(), wv.as_tensor())? * r)?.sum_all()?;
    let g = loss.backward()?;
    Ok((
        g.get(xv.as_tensor()).expect("x grad").clone(),
        g.get(wv.as_tensor()).expect("w grad").clone(),
    ))
}

#[test]
fn conv2d_gradients_match_candle() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(21);
    let mut compared = 0;
    for i in 0..200 {
        let c = Case::conv(&mut rng);
        let x = randn(&mut rng, &[c.b, c.c_in, c.h, c.w])?;
        let w = randn(&mut rng, &[c.c_out, c.c_in, c.kh, c.kw])?;
        let (oh, ow) = c.conv_out();
        let r = randn(&mut rng, &[c.b, c.c_out, oh, ow])?;
        let (gx, gw) = grads(|x, w| conv::conv2d(x, w, c.p), &x, &w, &r)?;
        assert_eq!(gx.dims(), x.dims());
        assert_eq!(gw.dims(), w.dims());
        // Cases where candle's own backward is wrong are covered by the finite differences below.
        if !c.candle_conv_bwd_ok() {
            continue;
        }
        compared += 1;
        let (cx, cw) = grads(|x, w| candle_conv2d(x, w, c.p), &x, &w, &r)?;
        let (ex, ew) = (rel_err(&gx, &cx)?, rel_err(&gw, &cw)?);
        assert!(ex < TOL && ew < TOL, "case {i} {c:?}: x {ex}, w {ew}");
    }
    assert!(compared > 100, "only {compared} cases compared");
    Ok(())
}

/// conv2d with the LeakyReLU folded in gives the values and gradients of the two ops in turn,
/// bit for bit (f32, random shapes, with negative, zero and positive pre-activations).
#[test]
fn conv2d_leaky_relu_equals_the_two_ops_bit_for_bit() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(23);
    for i in 0..60 {
        let c = Case::conv(&mut rng);
        let x = randn(&mut rng, &[c.b, c.c_in, c.h, c.w])?;
        let w = randn(&mut rng, &[c.c_out, c.c_in, c.kh, c.kw])?;
        let (oh, ow) = c.conv_out();
        let r = randn(&mut rng, &[c.b, c.c_out, oh, ow])?;
        let slope = [0.2, 0.01, 1.0][i % 3];
        let fused = |x: &Tensor, w: &Tensor| conv::conv2d_leaky_relu(x, w, c.p, slope);
        let apart = |x: &Tensor, w: &Tensor| {
            gan_core::batchnorm::leaky_relu(&conv::conv2d(x, w, c.p)?, slope)
        };
        let bits = |t: &Tensor| -> Result<Vec<u32>> {
            let v = t.flatten_all()?.to_vec1::<f32>()?;
            Ok(v.iter().map(|f| f.to_bits()).collect())
        };
        let (y, want) = (fused(&x, &w)?, apart(&x, &w)?);
        assert_eq!(bits(&y)?, bits(&want)?, "case {i} {c:?}: values");
        let (gx, gw) = grads(fused, &x, &w, &r)?;
        let (ex, ew) = grads(apart, &x, &w, &r)?;
        assert_eq!(bits(&gx)?, bits(&ex)?, "case {i} {c:?}: input gradient");
        assert_eq!(bits(&gw)?, bits(&ew)?, "case {i} {c:?}: weight gradient");
    }
    Ok(())
}

#[test]
fn conv_transpose2d_gradients_match_candle() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(22);
    for i in 0..200 {
        let c = Case::conv_t(&mut rng);
        let x = randn(&mut rng, &[c.b, c.c_in, c.h, c.w])?;
        let w = randn(&mut rng, &[c.c_in, c.c_out, c.kh, c.kw])?;
        let (oh, ow) = c.conv_t_out();
        let r = randn(&mut rng, &[c.b, c.c_out, oh as usize, ow as usize])?;
        let (gx, gw) = grads(|x, w| conv::conv_transpose2d(x, w, c.p), &x, &w, &r)?;
        let (cx, cw) = grads(|x, w| candle_conv_t(x, w, c.p), &x, &w, &r)?;
        let (ex, ew) = (rel_err(&gx, &cx)?, rel_err(&gw, &cw)?);
        assert!(ex < TOL && ew < TOL, "case {i} {c:?}: x {ex}, w {ew}");
    }
    Ok(())
}

/// Directional derivatives of `sum(f(x, w) · r)` by central differences in f64, on every case
/// including the non-square ones candle's backward gets wrong.
#[test]
fn first_order_gradients_match_finite_differences() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(23);
    for i in 0..120 {
        let transpose = i % 2 == 1;
        let c = if transpose {
            Case::conv_t(&mut rng)
        } else {
            Case::conv(&mut rng)
        };
        let x = randn64(&mut rng, &[c.b, c.c_in, c.h, c.w])?;
        let w = if transpose {
            randn64(&mut rng, &[c.c_in, c.c_out, c.kh, c.kw])?
        } else {
            randn64(&mut rng, &[c.c_out, c.c_in, c.kh, c.kw])?
        };
        let f = |x: &Tensor, w: &Tensor| {
            if transpose {
                conv::conv_transpose2d(x, w, c.p)
            } else {
                conv::conv2d(x, w, c.p)
            }
        };
        let r = randn64(&mut rng, f(&x, &w)?.dims())?;
        let (gx, gw) = grads(f, &x, &w, &r)?;
        let loss = |x: &Tensor, w: &Tensor| -> Result<f64> {
            Ok((f(x, w)? * &r)?.sum_all()?.to_scalar::<f64>()?)
        };
        let eps = 1e-3;
        let dx = randn64(&mut rng, x.dims())?;
        let dw = randn64(&mut rng, w.dims())?;
        let fd_x =
            (loss(&(&x + (&dx * eps)?)?, &w)? - loss(&(&x - (&dx * eps)?)?, &w)?) / (2.0 * eps);
        let fd_w =
            (loss(&x, &(&w + (&dw * eps)?)?)? - loss(&x, &(&w - (&dw * eps)?)?)?) / (2.0 * eps);
        let an_x = (&gx * &dx)?.sum_all()?.to_scalar::<f64>()?;
        let an_w = (&gw * &dw)?.sum_all()?.to_scalar::<f64>()?;
        assert!(
            (fd_x - an_x).abs() <= 1e-8 * an_x.abs().max(1.0),
            "case {i} {c:?} transpose {transpose}: x {fd_x} vs {an_x}"
        );
        assert!(
            (fd_w - an_w).abs() <= 1e-8 * an_w.abs().max(1.0),
            "case {i} {c:?} transpose {transpose}: w {fd_w} vs {an_w}"
        );
    }
    Ok(())
}

/// Naive f64 reference: conv2d of `x [b, ci, h, w]` with `k [co, ci, kh, kw]`.
struct Naive {
    b: usize,
    ci: usize,
    co: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    s: usize,
    p: usize,
}

impl Naive {
    fn out(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.p - self.kh) / self.s + 1,
            (self.w + 2 * self.p - self.kw) / self.s + 1,
        )
    }

    /// Calls `f(x_index, k_index, y_index)` for every term of the convolution sum.
    fn for_each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (oh, ow) = self.out();
        for b in 0..self.b {
            for o in 0..self.co {
                for i in 0..self.ci {
                    for y in 0..oh {
                        for x in 0..ow {
                            for ki in 0..self.kh {
                                for kj in 0..self.kw {
                                    let iy = (y * self.s + ki) as isize - self.p as isize;
                                    let ix = (x * self.s + kj) as isize - self.p as isize;
                                    if iy < 0 || ix < 0 {
                                        continue;
                                    }
                                    let (iy, ix) = (iy as usize, ix as usize);
                                    if iy >= self.h || ix >= self.w {
                                        continue;
                                    }
                                    f(
                                        ((b * self.ci + i) * self.h + iy) * self.w + ix,
                                        ((o * self.ci + i) * self.kh + ki) * self.kw + kj,
                                        ((b * self.co + o) * oh + y) * ow + x,
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `y = conv2d(x, k)`.
    fn conv(&self, x: &[f64], k: &[f64]) -> Vec<f64> {
        let (oh, ow) = self.out();
        let mut y = vec![0.0; self.b * self.co * oh * ow];
        self.for_each(|xi, ki, yi| y[yi] += x[xi] * k[ki]);
        y
    }

    /// Adjoint in the input: `x = conv_transpose2d(y, k)` to the input's size.
    fn conv_adj(&self, y: &[f64], k: &[f64]) -> Vec<f64> {
        let mut x = vec![0.0; self.b * self.ci * self.h * self.w];
        self.for_each(|xi, ki, yi| x[xi] += y[yi] * k[ki]);
        x
    }
}

/// Central-difference gradient of `f` at `v`, element by element.
fn fd_grad(v: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let eps = 1e-5;
    (0..v.len())
        .map(|i| {
            let mut a = v.to_vec();
            a[i] += eps;
            let fp = f(&a);
            a[i] -= 2.0 * eps;
            (fp - f(&a)) / (2.0 * eps)
        })
        .collect()
}

fn assert_close(ours: &Tensor, want: &[f64], what: &str) -> Result<()> {
    let want = Tensor::from_vec(want.to_vec(), ours.dims(), &Device::Cpu)?;
    let err = rel_err(ours, &want)?;
    assert!(err < 1e-6, "{what}: error {err}");
    Ok(())
}

/// Gradient penalty style second derivative: with `L = sum(tanh(f(x, w)) · r)`, the gradients of
/// `P = ‖∂L/∂x‖²` with respect to `w` and `x`, against finite differences of a naive reference,
/// for `f` = conv2d and conv_transpose2d on non-square shapes.
#[test]
fn second_order_gradients_match_finite_differences() {
    // candle reads this once per thread; a fresh thread makes sure it is read after the set.
    std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
    std::thread::spawn(|| second_order_body().unwrap())
        .join()
        .unwrap();
}

fn second_order_body() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(31);
    let cases = [
        // (b, ci, co, h, w, kh, kw, s, p)
        (2, 2, 3, 5, 7, 3, 2, 2, 1),
        (1, 3, 2, 6, 4, 2, 3, 1, 0),
        (2, 2, 2, 4, 6, 4, 4, 2, 2),
        (2, 2, 3, 6, 4, 3, 3, 2, 1),
    ];
    for (b, ci, co, h, w, kh, kw, s, p) in cases {
        let n = Naive {
            b,
            ci,
            co,
            h,
            w,
            kh,
            kw,
            s,
            p,
        };
        let (oh, ow) = n.out();
        let params = ConvParams::new(s, p);
        let x = randn64(&mut rng, &[b, ci, h, w])?;
        let k = randn64(&mut rng, &[co, ci, kh, kw])?;
        let r = randn64(&mut rng, &[b, co, oh, ow])?;
        let xs = x.flatten_all()?.to_vec1::<f64>()?;
        let ks = k.flatten_all()?.to_vec1::<f64>()?;
        let rs = r.flatten_all()?.to_vec1::<f64>()?;

        // conv2d: P(x, k) = ‖conv_adj((1 − tanh²(conv(x, k))) · r, k)‖².
        let penalty = |xs: &[f64], ks: &[f64]| {
            let y = n.conv(xs, ks);
            let gy: Vec<f64> = y
                .iter()
                .zip(&rs)
                .map(|(v, r)| (1.0 - v.tanh().powi(2)) * r)
                .collect();
            n.conv_adj(&gy, ks).iter().map(|v| v * v).sum::<f64>()
        };
        let xv = Var::from_tensor(&x)?;
        let kv = Var::from_tensor(&k)?;
        let loss =
            (conv::conv2d(xv.as_tensor(), kv.as_tensor(), params)?.tanh()? * &r)?.sum_all()?;
        let gx = loss.backward()?.get(xv.as_tensor()).unwrap().clone();
        let pen = gx.sqr()?.sum_all()?;
        let want_pen = penalty(&xs, &ks);
        assert!((pen.to_scalar::<f64>()? - want_pen).abs() < 1e-9 * want_pen.max(1.0));
        let g2 = pen.backward()?;
        let what = format!("conv2d {b} {ci} {co} {h}x{w} k{kh}x{kw} s{s} p{p}");
        assert_close(
            g2.get(kv.as_tensor()).expect("w grad"),
            &fd_grad(&ks, |ks| penalty(&xs, ks)),
            &format!("{what}: dP/dw"),
        )?;
        assert_close(
            g2.get(xv.as_tensor()).expect("x grad"),
            &fd_grad(&xs, |xs| penalty(xs, &ks)),
            &format!("{what}: dP/dx"),
        )?;

        // conv_transpose2d from `oh × ow` to `h × w` with the same kernel, read as [co, ci, ..]:
        // P(z, k) = ‖conv((1 − tanh²(conv_adj(z, k))) · q, k)‖².
        let z = randn64(&mut rng, &[b, co, oh, ow])?;
        let q = randn64(&mut rng, &[b, ci, h, w])?;
        let zs = z.flatten_all()?.to_vec1::<f64>()?;
        let qs = q.flatten_all()?.to_vec1::<f64>()?;
        let penalty_t = |zs: &[f64], ks: &[f64]| {
            let y = n.conv_adj(zs, ks);
            let gy: Vec<f64> = y
                .iter()
                .zip(&qs)
                .map(|(v, q)| (1.0 - v.tanh().powi(2)) * q)
                .collect();
            n.conv(&gy, ks).iter().map(|v| v * v).sum::<f64>()
        };
        let out_pad = |n_in: usize, n_out: usize, k: usize| n_in + 2 * p - k - (n_out - 1) * s;
        let pt = ConvParams {
            stride: s,
            padding: p,
            output_padding: out_pad(h, oh, kh),
        };
        // The output padding differs between the axes in some cases: only square ones go
        // through the public function.
        if out_pad(h, oh, kh) != out_pad(w, ow, kw) {
            continue;
        }
        let zv = Var::from_tensor(&z)?;
        let kv = Var::from_tensor(&k)?;
        let y = conv::conv_transpose2d(zv.as_tensor(), kv.as_tensor(), pt)?;
        assert_eq!(y.dims(), &[b, ci, h, w]);
        let loss = (y.tanh()? * &q)?.sum_all()?;
        let gz = loss.backward()?.get(zv.as_tensor()).unwrap().clone();
        let pen = gz.sqr()?.sum_all()?;
        let g2 = pen.backward()?;
        let what = format!("conv_transpose2d {what}");
        assert_close(
            g2.get(kv.as_tensor()).expect("w grad"),
            &fd_grad(&ks, |ks| penalty_t(&zs, ks)),
            &format!("{what}: dP/dw"),
        )?;
        assert_close(
            g2.get(zv.as_tensor()).expect("z grad"),
            &fd_grad(&zs, |zs| penalty_t(zs, &ks)),
            &format!("{what}: dP/dz"),
        )?;
    }
    Ok(())
}

/// Real images and detached fakes get no input gradient; a tracked input does.
#[test]
fn input_gradient_skipped_for_untracked_input() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(41);
    let p = ConvParams::new(2, 1);
    let w = Var::from_tensor(&randn(&mut rng, &[4, 3, 4, 4])?)?;
    let wt = Var::from_tensor(&randn(&mut rng, &[3, 4, 4, 4])?)?;
    let real = randn(&mut rng, &[2, 3, 8, 8])?;
    let z = Var::from_tensor(&randn(&mut rng, &[2, 3, 8, 8])?)?;
    let fake = (z.as_tensor() * 2.0)?;
    let detached = fake.detach();
    for x in [&real, &detached] {
        let g = conv::conv2d(x, w.as_tensor(), p)?.sum_all()?.backward()?;
        assert!(
            g.get(x).is_none(),
            "conv2d computed an unneeded input gradient"
        );
        assert!(g.get(w.as_tensor()).is_some());
        let g = conv::conv_transpose2d(x, wt.as_tensor(), p)?
            .sum_all()?
            .backward()?;
        assert!(
            g.get(x).is_none(),
            "conv_transpose2d computed an unneeded input gradient"
        );
        assert!(g.get(wt.as_tensor()).is_some());
    }
    let g = conv::conv2d(&fake, w.as_tensor(), p)?
        .sum_all()?
        .backward()?;
    // candle drops the gradients of intermediate nodes; the variable behind `fake` has one.
    assert!(g.get(z.as_tensor()).is_some());
    // A weight that is no variable gets no gradient either.
    let w_const = w.as_tensor().detach();
    let g = conv::conv2d(&fake, &w_const, p)?.sum_all()?.backward()?;
    assert!(g.get(&w_const).is_none());
    assert!(g.get(z.as_tensor()).is_some());
    Ok(())
}

#[test]
fn layers_match_candle_nn_and_share_weight_names() -> Result<()> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let p = ConvParams {
        stride: 2,
        padding: 1,
        output_padding: 1,
    };
    let conv = conv::Conv2d::new(3, 8, 4, p, true, vb.pp("d"))?;
    let conv_t = conv::ConvTranspose2d::new(8, 3, 3, p, true, vb.pp("g"))?;
    {
        let data = varmap.data().lock().unwrap();
        let mut names: Vec<_> = data.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["d.bias", "d.weight", "g.bias", "g.weight"]);
        assert_eq!(data["d.weight"].dims(), &[8, 3, 4, 4]);
        assert_eq!(data["g.weight"].dims(), &[8, 3, 3, 3]);
    }
    assert_eq!(conv.weight().dims(), &[8, 3, 4, 4]);
    let mut rng = StdRng::seed_from_u64(51);
    let x = randn(&mut rng, &[2, 3, 10, 6])?;
    let y = conv.forward(&x)?;
    let cfg = candle_nn::Conv2dConfig {
        padding: 1,
        stride: 2,
        ..Default::default()
    };
    let reference = candle_nn::Conv2d::new(conv.weight().clone(), conv.bias().cloned(), cfg);
    assert!(rel_err(&y, &reference.forward(&x)?)? < TOL);
    let y_t = conv_t.forward(&y)?;
    assert_eq!(y_t.dims(), &[2, 3, 10, 6]);
    let cfg_t = candle_nn::ConvTranspose2dConfig {
        padding: 1,
        output_padding: 1,
        stride: 2,
        dilation: 1,
    };
    let reference_t =
        candle_nn::ConvTranspose2d::new(conv_t.weight().clone(), conv_t.bias().cloned(), cfg_t);
    assert!(rel_err(&y_t, &reference_t.forward(&y)?)? < TOL);
    Ok(())
}

#[test]
fn fast_conv_is_on_by_default_and_bad_params_are_errors() -> Result<()> {
    if std::env::var("GAN_FAST_CONV").is_err() {
        assert!(conv::fast_conv_enabled());
    }
    let x = Tensor::zeros((1, 1, 4, 4), DType::F32, &Device::Cpu)?;
    let w = Tensor::zeros((1, 1, 3, 3), DType::F32, &Device::Cpu)?;
    let bad = ConvParams {
        stride: 1,
        padding: 0,
        output_padding: 1,
    };
    assert!(conv::conv_transpose2d(&x, &w, bad).is_err());
    assert!(conv::conv2d(&x, &w, ConvParams::new(0, 0)).is_err());
    let big = Tensor::zeros((1, 1, 5, 5), DType::F32, &Device::Cpu)?;
    assert!(conv::conv2d(&x, &big, ConvParams::default()).is_err());
    Ok(())
}
