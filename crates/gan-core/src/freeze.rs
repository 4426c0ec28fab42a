//! Treating a network's parameters as constants for a while, as PyTorch's
//! `p.requires_grad_(False)` does.
//!
//! A generator's step differentiates its loss through the discriminator to reach the
//! generator, and the discriminator's own weight gradients are computed along the way and then
//! thrown away (PyTorch's DCGAN example does the same). While a [`FrozenParams`] guard is alive
//! on a thread, the layers of this crate ([`crate::conv::Conv2d`],
//! [`crate::conv::ConvTranspose2d`], and [`crate::batchnorm::BatchNorm2d`] on its fused CPU
//! path; candle-nn's layers are not affected) use detached copies
//! of their parameters: the values are the same, so the forward pass and every input gradient
//! are unchanged, but no gradient is computed for the parameters.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor, Var};
//! use candle_nn::{VarBuilder, VarMap};
//! use gan_core::conv::{Conv2d, ConvParams};
//! let vm = VarMap::new();
//! let conv = Conv2d::new(1, 2, 3, ConvParams::new(1, 1), false, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))?;
//! let x = Var::ones((1, 1, 4, 4), DType::F32, &Device::Cpu)?;
//! let y = {
//!     let _frozen = gan_core::freeze::freeze_params();
//!     conv.forward(x.as_tensor())?
//! };
//! let grads = y.sum_all()?.backward()?;
//! assert!(grads.get(x.as_tensor()).is_some());
//! assert!(grads.get(conv.weight()).is_none());
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::Tensor;
use std::cell::Cell;
use std::marker::PhantomData;

thread_local! {
    static FROZEN: Cell<usize> = const { Cell::new(0) };
}

/// While alive, this crate's layers use their parameters as constants on this thread. Guards
/// nest; dropping the last one restores normal training.
#[must_use = "parameters are frozen only while the guard is alive"]
#[derive(Debug)]
pub struct FrozenParams {
    /// Not `Send`: the switch is per thread.
    _thread: PhantomData<*const ()>,
}

/// Freezes this crate's layer parameters on the current thread until the guard is dropped.
pub fn freeze_params() -> FrozenParams {
    FROZEN.with(|c| c.set(c.get() + 1));
    FrozenParams {
        _thread: PhantomData,
    }
}

impl Drop for FrozenParams {
    fn drop(&mut self) {
        FROZEN.with(|c| c.set(c.get() - 1));
    }
}

/// Whether a [`FrozenParams`] guard is alive on this thread.
pub fn params_frozen() -> bool {
    FROZEN.with(|c| c.get() > 0)
}

/// The parameter as a layer should use it: itself, or a detached copy (same storage, no
/// gradient) while parameters are frozen.
pub(crate) fn param(t: &Tensor) -> Tensor {
    if params_frozen() {
        t.detach()
    } else {
        t.clone()
    }
}
