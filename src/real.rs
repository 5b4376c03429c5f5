//! The floating-point element type of a simulation (`f32` or `f64`).
//!
//! The engine is generic over [`Real`]; metrics and statistics are always accumulated in
//! `f64`, whatever the element type of the activations.

use ndarray::{LinalgScalar, ScalarOperand};
use num_traits::{Float, FromPrimitive};
use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// Element type of activations, weights and gradients.
pub trait Real:
    Float
    + FromPrimitive
    + LinalgScalar
    + ScalarOperand
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Debug
    + Display
    + Send
    + Sync
    + 'static
{
    /// Converts from `f64`, rounding to nearest.
    fn of(x: f64) -> Self;
    /// Widens to `f64` (exact).
    fn f64(self) -> f64;
    /// Gauss error function.
    fn erf(self) -> Self;
    /// `e^x` by the polynomial of [`crate::simd::math`]: the same bits on every processor
    /// and vectorizable inside [`crate::simd::dispatch`] kernels.
    fn exp_poly(self) -> Self;
}

impl Real for f32 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
    #[inline(always)]
    fn exp_poly(self) -> Self {
        crate::simd::math::exp_f32(self)
    }
}

impl Real for f64 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
    #[inline(always)]
    fn exp_poly(self) -> Self {
        crate::simd::math::exp_f64(self)
    }
}
