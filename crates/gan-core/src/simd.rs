//! Runtime dispatch of the element-wise loops to AVX2 code.
//!
//! The crate is compiled for the baseline x86-64 (SSE2) so that its binaries run on any x86-64
//! CPU, and the compiler then vectorises the BatchNorm, LeakyReLU, im2col and Adam loops 4 lanes
//! wide at best, and often not at all (a `select` in a loop stays a branch). [`avx2_fn!`] compiles
//! such a loop a second time with AVX2 and FMA enabled and picks that copy at run time when the
//! CPU has them, as `gemm` does for its kernels. Rust never contracts `a * b + c` into a fused
//! multiply-add on its own, so both copies give bit-identical results.

/// Whether this CPU runs AVX2 and FMA (checked once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Defines `fn $name<T: $bound>(args) -> ret { body }` (or a non-generic `fn $name(args) -> ret`)
/// twice: as `$imp`, an `#[inline(always)]` function compiled for the baseline CPU, and as
/// `$name`, which calls `$imp` compiled with AVX2 and FMA when the CPU has them (and the baseline
/// copy otherwise). The signature and the loop are written once; tests compare the two copies.
macro_rules! avx2_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident<$T:ident: $B:path>($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? => $imp:ident $body:block) => {
        $(#[$m])*
        $vis fn $name<$T: $B>($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            if $crate::simd::has_avx2() {
                #[target_feature(enable = "avx2,fma")]
                fn avx2<$T: $B>($($a: $t),*) $(-> $r)? {
                    $imp::<$T>($($a),*)
                }
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                return unsafe { avx2::<$T>($($a),*) };
            }
            $imp::<$T>($($a),*)
        }

        #[inline(always)]
        fn $imp<$T: $B>($($a: $t),*) $(-> $r)? $body
    };
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? => $imp:ident $body:block) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            if $crate::simd::has_avx2() {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($a: $t),*) $(-> $r)? {
                    $imp($($a),*)
                }
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                return unsafe { avx2($($a),*) };
            }
            $imp($($a),*)
        }

        #[inline(always)]
        fn $imp($($a: $t),*) $(-> $r)? $body
    };
}
pub(crate) use avx2_fn;
