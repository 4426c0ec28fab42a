//! Weight initialisation over a whole [`VarMap`], reproducible from a [`SeededRng`].
//!
//! candle-nn initialises each variable when it is created, from the CPU's OS-seeded generator, so
//! two runs never start from the same weights. These functions overwrite every variable of a
//! `VarMap` after the model is built, visiting the variables sorted by name so that the same
//! seed always gives the same weights whatever the hash order of the map. The rules go by the
//! variable's name (the last dot-separated component, as candle-nn and PyTorch name them) and
//! rank.
//!
//! # DCGAN ([`dcgan_init`], Radford et al. 2016, as pytorch/examples' `weights_init`)
//!
//! | variable                                   | value          |
//! |--------------------------------------------|----------------|
//! | `*weight` of rank ≥ 2 (conv, conv-transpose, linear) | N(0, 0.02²) |
//! | `*weight` of rank 1 (BatchNorm γ, norm scale) | N(1, 0.02²)  |
//! | `*bias`                                    | 0              |
//! | `running_mean`, `running_var`, anything else | left as is   |
//!
//! A small initial spread keeps the early generator outputs near zero and the discriminator near
//! chance, which the paper found necessary for stable training; γ near 1 starts BatchNorm close
//! to a plain standardisation.
//!
//! # PyTorch's defaults ([`pytorch_default_init`])
//!
//! `nn.Linear` and `nn.Conv*` use `kaiming_uniform_(a = √5)`, whose bound gain·√(3/fan_in)
//! with gain = √(2/(1 + 5)) is exactly 1/√fan_in, and draw their bias from the same range:
//!
//! | variable                       | value                                         |
//! |--------------------------------|-----------------------------------------------|
//! | `*weight` of rank ≥ 2          | U(−1/√fan_in, 1/√fan_in), fan_in = ∏ dims[1..] |
//! | `*bias` next to such a weight  | U(−1/√fan_in, 1/√fan_in), the weight's fan_in |
//! | `*weight` of rank 1 (norm γ)   | 1                                             |
//! | `*bias` next to a rank-1 weight, or alone | 0                                  |
//! | `running_mean`, `running_var`, anything else | left as is                     |
//!
//! fan_in is the product of all dimensions but the first, which for a transposed convolution's
//! `[in, out, k, k]` weight is out·k·k, the same (surprising) choice PyTorch makes. "Next to"
//! means the same name with `bias` in place of `weight` (`net.0.bias` ↔ `net.0.weight`).
//!
//! ```
//! use candle_core::{DType, Device};
//! use candle_nn::{VarBuilder, VarMap};
//! use gan_core::{init::dcgan_init, rng::SeededRng};
//! let vm = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
//! let _lin = candle_nn::linear(100, 64, vb.pp("fc"))?;
//! dcgan_init(&vm, &mut SeededRng::new(0))?;
//! let bias = vm.data().lock().unwrap()["fc.bias"].as_tensor().to_vec1::<f32>()?;
//! assert!(bias.iter().all(|&b| b == 0.0));
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{Result, Var};
use candle_nn::VarMap;

use crate::optim::sorted_vars;
use crate::rng::SeededRng;

/// Standard deviation of DCGAN's normal initialisation.
pub const DCGAN_STD: f64 = 0.02;

/// What a variable is, judged from its name and rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// A conv, conv-transpose or linear weight (rank ≥ 2).
    Weight,
    /// A rank-1 weight: a normalisation scale γ.
    Scale,
    /// A bias or normalisation shift β.
    Bias,
    /// Running statistics or anything unrecognised: never touched.
    Other,
}

fn role(name: &str, var: &Var) -> Role {
    let last = name.rsplit('.').next().unwrap_or(name);
    if last == "running_mean" || last == "running_var" {
        Role::Other
    } else if name.ends_with("weight") {
        if var.rank() >= 2 {
            Role::Weight
        } else {
            Role::Scale
        }
    } else if name.ends_with("bias") {
        Role::Bias
    } else {
        Role::Other
    }
}

fn set_const(var: &Var, value: f64) -> Result<()> {
    let t = (var.as_tensor().zeros_like()? + value)?;
    var.set(&t)
}

/// DCGAN initialisation of every variable in `varmap`; see the [module docs](self) for the rules.
/// Variables are visited sorted by name, so a given seed always gives the same weights.
pub fn dcgan_init(varmap: &VarMap, rng: &mut SeededRng) -> Result<()> {
    for (name, var) in sorted_vars(varmap)? {
        let (dtype, dev) = (var.dtype(), var.device().clone());
        match role(&name, &var) {
            Role::Weight => {
                var.set(&rng.randn_dtype(var.shape(), 0.0, DCGAN_STD, dtype, &dev)?)?
            }
            Role::Scale => {
                var.set(&rng.randn_dtype(var.shape(), 1.0, DCGAN_STD, dtype, &dev)?)?
            }
            Role::Bias => set_const(&var, 0.0)?,
            Role::Other => {}
        }
    }
    Ok(())
}

/// 1/√fan_in for a weight, fan_in being the product of all its dimensions but the first.
fn uniform_bound(weight: &Var) -> f64 {
    let fan_in: usize = weight.dims().iter().skip(1).product();
    1.0 / (fan_in.max(1) as f64).sqrt()
}

/// PyTorch's default initialisation of every variable in `varmap` (Linear/Conv uniform in
/// ±1/√fan_in, normalisation γ = 1, β = 0); see the [module docs](self) for the rules.
pub fn pytorch_default_init(varmap: &VarMap, rng: &mut SeededRng) -> Result<()> {
    let vars = sorted_vars(varmap)?;
    let find = |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    for (name, var) in &vars {
        let (dtype, dev) = (var.dtype(), var.device().clone());
        match role(name, var) {
            Role::Weight => {
                let bound = uniform_bound(var);
                var.set(&rng.rand_dtype(var.shape(), -bound, bound, dtype, &dev)?)?;
            }
            Role::Scale => set_const(var, 1.0)?,
            Role::Bias => {
                let weight_name = format!("{}weight", name.strip_suffix("bias").unwrap_or(name));
                match find(&weight_name) {
                    Some(w) if w.rank() >= 2 => {
                        let bound = uniform_bound(w);
                        var.set(&rng.rand_dtype(var.shape(), -bound, bound, dtype, &dev)?)?;
                    }
                    _ => set_const(var, 0.0)?,
                }
            }
            Role::Other => {}
        }
    }
    Ok(())
}
