//! Elementwise kernels at the processor's vector width, with the same bits on every machine.
//!
//! # Dispatch
//! Each kernel is written once, as plain Rust over fixed blocks of lanes, and run through
//! [`dispatch`], which compiles it three times (AVX-512, AVX2 + FMA, and the portable
//! baseline) and picks at run time the widest path the processor supports ([`Isa::active`]).
//! The only `unsafe` code of the crate is that call, in `simd::arch` (`std::arch`'s
//! `#[target_feature]`, no intrinsics). A safe SIMD crate (`pulp`) would do the same
//! multiversioning behind its own vector types; writing the kernels as ordinary Rust keeps
//! one definition per kernel, no new dependency, and lets the compiler pick the
//! instructions.
//!
//! # Same bits on every path
//! Rust evaluates floating-point expressions exactly as written: no `a * b + c` is fused
//! behind the program's back and `mul_add` is always a single rounding (in software where the
//! processor has no FMA). So a kernel returns identical bits on every path, and results do
//! not depend on the machine that ran them. What would break this is any operation whose
//! result is not defined to the bit: approximate reciprocals, the C library's `exp`/`log`
//! (whose variants for different processors may round differently), or a summation order
//! that depends on the vector width. Kernels use none of them: sums run over [`LANES`]
//! partial sums, element `i` into sum `i mod LANES`, combined in a fixed tree
//! ([`reduce`]); transcendental functions are polynomials in [`math`]. Tests run every
//! kernel on every path the test machine supports and compare bits.
//!
//! The environment variable `SPANNORM_SIMD` (`avx512`, `avx2` or `portable`) lowers the
//! path for a whole process, e.g. to time the AVX2 path on an AVX-512 machine; a path the
//! processor lacks falls back to the widest one it has.

#[allow(unsafe_code)]
mod arch;
pub mod math;
pub mod ops;
pub mod reduce;

use std::cell::Cell;
use std::sync::OnceLock;

/// Partial sums of a row reduction: element `i` goes to sum `i mod LANES` (see [`reduce`]).
pub const LANES: usize = 16;

/// Partial sums of a whole-matrix `f64` reduction ([`sum_sq_f64`], [`dot_f64`]): enough
/// independent additions in flight to keep a 512-bit adder busy.
pub const WIDE: usize = 64;

/// An instruction set a kernel is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// x86-64 baseline (SSE2); FMA in software where the processor has none.
    Portable,
    /// AVX2 and FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F, BW, DQ, VL (x86-64-v4).
    Avx512,
}

impl Isa {
    /// Every path, narrowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// Whether this processor can run the path.
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("bmi1")
                    && is_x86_feature_detected!("bmi2")
                    && is_x86_feature_detected!("lzcnt")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The paths this processor supports, narrowest first.
    pub fn supported_all() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.supported()).collect()
    }

    /// The widest supported path, lowered by `SPANNORM_SIMD` when set.
    pub fn detected() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let widest = Isa::ALL
                .into_iter()
                .rev()
                .find(|i| i.supported())
                .unwrap_or(Isa::Portable);
            let wanted = match std::env::var("SPANNORM_SIMD").as_deref() {
                Ok("portable") => Isa::Portable,
                Ok("avx2") => Isa::Avx2,
                _ => Isa::Avx512,
            };
            widest.min(wanted)
        })
    }

    /// The path kernels on this thread run: [`Isa::detected`] unless [`with_isa`] set one.
    pub fn active() -> Isa {
        FORCED.with(|f| f.get()).unwrap_or_else(Isa::detected)
    }

    /// The name `SPANNORM_SIMD` and `bench` use.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

thread_local! {
    static FORCED: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// Runs `f` with every kernel on this thread compiled for `isa` (for tests comparing paths).
///
/// # Panics
/// If the processor does not support `isa`.
pub fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    assert!(isa.supported(), "{isa:?} is not supported here");
    let before = FORCED.with(|c| c.replace(Some(isa)));
    let r = f();
    FORCED.with(|c| c.set(before));
    r
}

/// Runs the kernel `f` on the [`Isa::active`] path. Pass the closure as
/// `dispatch(#[inline(always)] || ...)` and mark every helper it calls `#[inline(always)]`,
/// so that all of it is compiled for the chosen instruction set.
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    arch::run(Isa::active(), f)
}

/// `Σ x_i²` in `f64`, in the order of [`reduce`].
pub fn sum_sq_f64<T: crate::real::Real>(x: &[T]) -> f64 {
    dispatch(
        #[inline(always)]
        || reduce::sum_sq_f64(x),
    )
}

/// `Σ a_i b_i` in `f64`, in the order of [`reduce`].
pub fn dot_f64<T: crate::real::Real>(a: &[T], b: &[T]) -> f64 {
    dispatch(
        #[inline(always)]
        || reduce::dot_f64(a, b),
    )
}
