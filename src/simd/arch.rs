//! The crate's only `unsafe` code: calling a kernel compiled for an instruction set that the
//! running processor has been checked to support.
//!
//! A kernel is an ordinary safe closure whose body (and every helper it calls, which are all
//! `#[inline(always)]`) is inlined into a function compiled with `#[target_feature]`, so the
//! compiler vectorizes it for AVX-512 or AVX2 + FMA. Calling such a function is `unsafe`
//! only because executing instructions the processor lacks would be undefined behaviour;
//! [`Isa::supported`] checks the processor first (`is_x86_feature_detected!`), and
//! [`super::dispatch`] never calls a path that is not supported. Rust evaluates floating-point
//! operations exactly as written (no contraction of `a * b + c`, `mul_add` always fused), so
//! the three compilations of one kernel return the same bits.

use super::Isa;

/// Runs `f` compiled for `isa`; `isa` must be supported (checked by the caller).
#[inline(always)]
pub(super) fn run<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt")]
        fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        match isa {
            // SAFETY: `dispatch` calls this only for an `isa` whose features
            // `is_x86_feature_detected!` reported (`Isa::active` is always supported).
            Isa::Avx512 => unsafe { avx512(f) },
            // SAFETY: as above.
            Isa::Avx2 => unsafe { avx2(f) },
            Isa::Portable => f(),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        f()
    }
}
