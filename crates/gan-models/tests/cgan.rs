//! Class-conditional DCGAN: the projection term against a hand computation, class-conditional
//! BatchNorm per class, labels outside the classes, and the networks' shapes in every mode.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use gan_core::init::dcgan_init;
use gan_core::rng::SeededRng;
use gan_data::TensorDataset;
use gan_models::cgan::{
    one_hot, projection, CganConfig, CganDiscriminator, CganGenerator, CondMode,
    ConditionalBatchNorm2d,
};
use gan_models::cgan_run::check_labels;
use gan_models::dcgan::DcganConfig;

fn values(xs: &Tensor) -> Vec<f32> {
    xs.flatten_all().unwrap().to_vec1().unwrap()
}

fn t(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(data, shape, &Device::Cpu).unwrap()
}

#[test]
fn projection_term_is_the_inner_product_of_embedding_and_flattened_features() {
    // Two samples, 2 channels of 1 × 2 pixels (φ has 4 values), 3 classes.
    let feats = t(&[1., 2., 3., 4., /**/ -1., 0.5, 2., -2.], &[2, 2, 1, 2]);
    #[rustfmt::skip]
    let embed = t(&[
        0.1, 0.2, 0.0, 1.0,
        -0.3, 0.4, 0.5, -0.5,
        1.0, -1.0, 2.0, 0.0,
    ], &[3, 4]);
    // Sample 0 of class 1; sample 1 halfway between classes 0 and 2.
    let y = t(&[0., 1., 0., /**/ 0.5, 0., 0.5], &[2, 3]);
    let got: Vec<f32> = projection(&feats, &y, &embed).unwrap().to_vec1().unwrap();
    // Sample 1's embedding: [0.55, -0.4, 1.0, 0.5].
    let want = [
        1.0 * -0.3 + 2.0 * 0.4 + 3.0 * 0.5 + 4.0 * -0.5,
        -0.55 + 0.5 * -0.4 + 2.0 * 1.0 + -2.0 * 0.5,
    ];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "got {got:?}, want {want:?}");
    }
}

fn cbn() -> (ConditionalBatchNorm2d, VarMap) {
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
    let layer = ConditionalBatchNorm2d::new(3, 4, vb).unwrap();
    dcgan_init(&vars, &mut SeededRng::new(1)).unwrap();
    (layer, vars)
}

#[test]
fn conditional_batchnorm_depends_on_the_class_and_only_on_it() {
    let (layer, _vars) = cbn();
    let dev = Device::Cpu;
    let xs = SeededRng::new(2)
        .randn((4, 3, 2, 2), 0.0, 1.0, &dev)
        .unwrap();
    let labels = |l: [u32; 4]| one_hot(&Tensor::new(&l, &dev).unwrap(), 4).unwrap();
    let a: Vec<f32> = values(&layer.forward(&xs, &labels([0, 0, 0, 0]), true).unwrap());
    let again: Vec<f32> = values(&layer.forward(&xs, &labels([0, 0, 0, 0]), true).unwrap());
    assert_eq!(a, again, "the same classes give the same output");
    let b: Vec<f32> = values(&layer.forward(&xs, &labels([1, 0, 0, 0]), true).unwrap());
    // Sample 0 (the first 12 values) changed class; the batch statistics did not change, so
    // the other samples are unchanged.
    let diff0: f32 = a[..12]
        .iter()
        .zip(&b[..12])
        .map(|(x, y)| (x - y).abs())
        .sum();
    assert!(diff0 > 1e-3, "another class gives another output ({diff0})");
    assert_eq!(a[12..], b[12..], "the other samples keep their output");
}

#[test]
fn conditional_batchnorm_matches_its_formula() {
    // out = ReLU(BN(x) · (1 + Γ[y]) + B[y]), BN with its own γ, β, in training mode (biased
    // variance, ε 1e-5), computed here in f64.
    let (layer, vars) = cbn();
    let dev = Device::Cpu;
    let xs = SeededRng::new(3)
        .randn((4, 3, 2, 2), 0.0, 1.0, &dev)
        .unwrap();
    let labels = [2u32, 0, 3, 2];
    let y = one_hot(&Tensor::new(&labels, &dev).unwrap(), 4).unwrap();
    let got: Vec<f32> = values(&layer.forward(&xs, &y, true).unwrap());
    let var = |name: &str| -> Vec<f64> {
        let data = vars.data().lock().unwrap();
        let v: Vec<f32> = data[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        v.into_iter().map(f64::from).collect()
    };
    let (gamma, beta) = (var("weight"), var("bias"));
    let (scale, shift) = (var("class_scale.weight"), var("class_shift.weight"));
    let x: Vec<f64> = xs
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    let mut max_err = 0f64;
    for c in 0..3 {
        let vals: Vec<f64> = (0..4)
            .flat_map(|b| (0..4).map(move |p| (b, p)))
            .map(|(b, p)| x[b * 12 + c * 4 + p])
            .collect();
        let mean = vals.iter().sum::<f64>() / 16.0;
        let v = vals.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 16.0;
        for (b, &l) in labels.iter().enumerate() {
            for p in 0..4 {
                let i = b * 12 + c * 4 + p;
                let bn = (x[i] - mean) / (v + 1e-5).sqrt() * gamma[c] + beta[c];
                let k = l as usize * 3 + c;
                let want = (bn * (1.0 + scale[k]) + shift[k]).max(0.0);
                max_err = max_err.max((got[i] as f64 - want).abs());
            }
        }
    }
    assert!(max_err < 1e-5, "max error {max_err}");
}

#[test]
fn a_label_outside_the_classes_is_a_clear_error() {
    let labels = Tensor::new(&[1u32, 10, 3], &Device::Cpu).unwrap();
    let e = one_hot(&labels, 10).unwrap_err().to_string();
    assert!(
        e.contains("label 10") && e.contains("item 1") && e.contains("10 classes"),
        "{e}"
    );
    let ds = TensorDataset::new(vec![1, 2, 2], vec![0.0; 12], Some(vec![0, 2, 1])).unwrap();
    let names = vec!["cat".to_string(), "dog".to_string()];
    let e = check_labels(&ds, &names, "pets").unwrap_err().to_string();
    assert!(
        e.contains("pets") && e.contains("item 1 has label 2"),
        "{e}"
    );
    let ds = TensorDataset::new(vec![1, 2, 2], vec![0.0; 8], Some(vec![0, 0])).unwrap();
    let e = check_labels(&ds, &names, "pets").unwrap_err().to_string();
    assert!(e.contains("no image of class dog"), "{e}");
    let ds = TensorDataset::new(vec![1, 2, 2], vec![0.0; 8], None).unwrap();
    let e = check_labels(&ds, &names, "pets").unwrap_err().to_string();
    assert!(e.contains("pets has no labels"), "{e}");
}

fn tiny(cond: CondMode, size: usize) -> CganConfig {
    CganConfig {
        dcgan: DcganConfig {
            nz: 6,
            ngf: 4,
            ndf: 4,
            channels: 1,
            image_size: size,
            spectral_norm: false,
        },
        classes: 3,
        cond,
    }
}

#[test]
fn every_mode_and_size_has_the_shapes_of_dcgan() {
    let dev = Device::Cpu;
    for cond in [CondMode::Projection, CondMode::Acgan, CondMode::Concat] {
        for size in [28, 32, 64] {
            let cfg = tiny(cond, size);
            let (gv, dv) = (VarMap::new(), VarMap::new());
            let g =
                CganGenerator::new(&cfg, VarBuilder::from_varmap(&gv, DType::F32, &dev)).unwrap();
            let d = CganDiscriminator::new(&cfg, VarBuilder::from_varmap(&dv, DType::F32, &dev))
                .unwrap();
            let z = Tensor::zeros((5, 6), DType::F32, &dev).unwrap();
            let y = one_hot(&Tensor::new(&[0u32, 1, 2, 0, 1], &dev).unwrap(), 3).unwrap();
            let x = g.forward_t(&z, &y, true).unwrap();
            assert_eq!(x.dims(), [5, 1, size, size], "{cond:?} {size}");
            let out = d.forward_t(&x, &y, true).unwrap();
            assert_eq!(out.logits.dims(), [5], "{cond:?} {size}");
            assert_eq!(
                out.class_logits.map(|c| c.dims().to_vec()),
                (cond == CondMode::Acgan).then(|| vec![5, 3]),
                "{cond:?} {size}"
            );
        }
    }
}

/// With `aux_on_fakes` (off by default), ACGAN's discriminator loss holds the classifier's
/// cross-entropy on the fakes as well as on the reals (the paper's `L_C`): at initialisation the class logits
/// are near zero, so the extra term is close to ln(classes) (here ln 3), and everything before
/// the discriminator's update is the same draw.
#[test]
fn acgan_discriminator_learns_the_classes_of_the_fakes_too() {
    use gan_models::cgan_run::{build_trainer, CganRunConfig};
    use gan_models::dcgan_run::{DataConfig, DcganRunConfig};
    let dev = Device::Cpu;
    let data = DataConfig {
        source: "test".into(),
        path: "test".into(),
        items: 8,
        max_items: None,
    };
    let mut base = DcganRunConfig::new(data, 1);
    base.dcgan = tiny(CondMode::Acgan, 28).dcgan;
    let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let real = Tensor::zeros((4, 1, 28, 28), DType::F32, &dev).unwrap();
    let labels = Tensor::new(&[0u32, 1, 2, 1], &dev).unwrap();
    let loss_d = |on_fakes: bool| {
        let mut cfg = CganRunConfig::new(base.clone(), CondMode::Acgan, classes.clone());
        cfg.aux_on_fakes = on_fakes;
        let mut t = build_trainer(&cfg, &dev).unwrap();
        t.step_on(&real, &labels, 0).unwrap().base.loss_d
    };
    let (both, reals_only) = (loss_d(true), loss_d(false));
    let extra = both - reals_only;
    let w = CganRunConfig::new(base.clone(), CondMode::Acgan, classes.clone()).aux_weight as f32;
    assert!(
        (extra - w * 3f32.ln()).abs() < 0.05 * w,
        "extra term {extra} (loss_d {both} against {reals_only}), expected ≈ {w} · ln 3"
    );
    assert!(!CganRunConfig::new(base, CondMode::Acgan, classes).aux_on_fakes);
}
