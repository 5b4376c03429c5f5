//! Per-token normalization `N(·)` over features, with gain 1 and no bias.
//!
//! # Formula
//! For a token `x ∈ R^d` and `eps = 1e-6`:
//! - `layernorm`: `c = x − mean(x)`, `s = sqrt(mean(c²) + eps)`, `N(x) = c / s`;
//! - `rmsnorm`: `s = sqrt(mean(x²) + eps)`, `N(x) = x / s`.
//!
//! Backward, with `y = N(x)` and upstream `g`:
//! - `layernorm`: `∂ℓ/∂x = (g − mean(g) − y · mean(g ⊙ y)) / s`;
//! - `rmsnorm`: `∂ℓ/∂x = (g − y · mean(g ⊙ y)) / s`.
//!
//! A `gain` multiplies the output (LayerNorm Scaling uses `l^{-1/2}`).

use crate::choice_enum;
use crate::real::Real;
use crate::simd::{self, reduce};
use ndarray::{Array1, Array2, ArrayView2};

choice_enum!(
    /// Which normalization `N(·)` a stack uses.
    Norm, "norm", {
        /// Centre, then divide by the root mean square.
        Layernorm => "layernorm",
        /// Divide by the root mean square, no centring.
        Rmsnorm => "rmsnorm",
    }
);

/// The `eps` inside the square root, as in the spec.
pub const EPS: f64 = 1e-6;

/// What the backward pass of a norm needs.
#[derive(Clone, Debug)]
pub struct NormCache<T> {
    /// `N(x)` before the gain.
    pub y: Array2<T>,
    /// `1 / s` per token.
    pub inv_s: Array1<T>,
    /// The output gain.
    pub gain: T,
}

/// `gain · N(x)` row by row, with the cache for [`backward`].
///
/// Row sums run in the lane order of [`crate::simd::reduce`], on every dispatch path alike.
pub fn forward<T: Real>(norm: Norm, x: ArrayView2<T>, gain: T) -> (Array2<T>, NormCache<T>) {
    let d = x.ncols();
    let dt = T::of(d as f64);
    let eps = T::of(EPS);
    let mut y = x.as_standard_layout().into_owned();
    let mut inv_s = Array1::zeros(x.nrows());
    if d > 0 {
        let ys = y.as_slice_mut().expect("standard layout");
        let is = inv_s.as_slice_mut().expect("contiguous");
        simd::dispatch(
            #[inline(always)]
            || {
                for (row, r_out) in ys.chunks_exact_mut(d).zip(is.iter_mut()) {
                    if norm == Norm::Layernorm {
                        let mean = reduce::sum(row) / dt;
                        for v in row.iter_mut() {
                            *v -= mean;
                        }
                    }
                    let ms = reduce::sum_sq(row) / dt;
                    // A token whose mean square overflows would be normalized to 0; make it
                    // NaN so the run reports a divergence instead of continuing on a zero
                    // signal.
                    let r = if ms.is_finite() {
                        T::one() / (ms + eps).sqrt()
                    } else {
                        T::nan()
                    };
                    for v in row.iter_mut() {
                        *v *= r;
                    }
                    *r_out = r;
                }
            },
        );
    }
    let out = if gain == T::one() {
        y.clone()
    } else {
        simd::ops::scaled(y.view(), gain)
    };
    (out, NormCache { y, inv_s, gain })
}

/// `∂ℓ/∂x` from `∂ℓ/∂(gain · N(x))`.
pub fn backward<T: Real>(norm: Norm, cache: &NormCache<T>, g_out: ArrayView2<T>) -> Array2<T> {
    let d = cache.y.ncols();
    let dt = T::of(d as f64);
    let gain = cache.gain;
    let mut gx = simd::ops::scaled(g_out, gain);
    let y = cache.y.as_standard_layout();
    if d > 0 {
        let gs = gx.as_slice_mut().expect("standard layout");
        let ys = y.as_slice().expect("standard layout");
        let is = cache.inv_s.as_slice().expect("contiguous");
        simd::dispatch(
            #[inline(always)]
            || {
                for ((g, yr), &s) in gs.chunks_exact_mut(d).zip(ys.chunks_exact(d)).zip(is) {
                    let gy = reduce::dot(g, yr) / dt;
                    let gm = if norm == Norm::Layernorm {
                        reduce::sum(g) / dt
                    } else {
                        T::zero()
                    };
                    for (gv, &yv) in g.iter_mut().zip(yr) {
                        *gv = (*gv - gm - yv * gy) * s;
                    }
                }
            },
        );
    }
    gx
}

/// Second moment `‖X‖_F² / (n d)` of a matrix, accumulated in `f64` (lane order of
/// [`crate::simd::reduce`]).
pub fn second_moment<T: Real>(x: ArrayView2<T>) -> f64 {
    let n = x.len().max(1) as f64;
    simd::ops::sum_sq_f64(x) / n
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn layernorm_rows_have_zero_mean_and_unit_second_moment() {
        let x = array![[1.0f64, 2.0, 3.0, 10.0], [-4.0, 0.5, 0.25, 7.0]];
        let (y, _) = forward(Norm::Layernorm, x.view(), 1.0);
        for row in y.rows() {
            let m = row.sum() / 4.0;
            let v = row.iter().map(|v| v * v).sum::<f64>() / 4.0;
            assert!(m.abs() < 1e-15, "mean {m}");
            // mean(y²) = v/(v + eps) exactly; v ≥ 1 here so 1 − mean(y²) ≤ eps.
            assert!((v - 1.0).abs() <= EPS, "second moment {v}");
        }
    }

    #[test]
    fn rmsnorm_rows_have_unit_second_moment_and_keep_direction() {
        let x = array![[1.0f64, -2.0, 3.0, 0.5]];
        let (y, c) = forward(Norm::Rmsnorm, x.view(), 0.5);
        let ms = c.y.iter().map(|v| v * v).sum::<f64>() / 4.0;
        assert!((ms - 1.0).abs() <= EPS);
        for (a, b) in x.iter().zip(y.iter()) {
            assert!(a * b > 0.0);
        }
        let ms_out = y.iter().map(|v| v * v).sum::<f64>() / 4.0;
        assert!((ms_out - 0.25).abs() <= EPS);
    }

    #[test]
    fn backward_matches_central_differences() {
        // ℓ = Σ g ⊙ (gain · N(x)) for a fixed g; central differences in f64 with step h
        // err by O(h²) ≈ 1e-8 relative to these O(1) derivatives.
        let x = array![[1.0f64, -2.0, 3.0], [0.5, 0.25, -1.0]];
        let g = array![[0.3f64, -1.0, 2.0], [1.5, 0.5, -0.25]];
        for norm in [Norm::Rmsnorm, Norm::Layernorm] {
            let (_, cache) = forward(norm, x.view(), 1.5);
            let gx = backward(norm, &cache, g.view());
            let loss = |x: &Array2<f64>| (forward(norm, x.view(), 1.5).0 * &g).sum();
            let h = 1e-5;
            for i in 0..2 {
                for j in 0..3 {
                    let (mut up, mut down) = (x.clone(), x.clone());
                    up[[i, j]] += h;
                    down[[i, j]] -= h;
                    let fd = (loss(&up) - loss(&down)) / (2.0 * h);
                    assert!(
                        (gx[[i, j]] - fd).abs() < 1e-7,
                        "{norm:?} [{i},{j}]: {} vs {fd}",
                        gx[[i, j]]
                    );
                }
            }
        }
    }

    #[test]
    fn second_moment_is_the_mean_square() {
        // (1 + 4 + 9 + 16) / 4; an empty matrix has none (0, not NaN).
        assert_eq!(
            second_moment(array![[1.0f64, 2.0], [3.0, -4.0]].view()),
            7.5
        );
        assert_eq!(second_moment(Array2::<f32>::zeros((0, 4)).view()), 0.0);
    }

    #[test]
    fn tokens_of_width_zero_pass_through() {
        let x = Array2::<f64>::zeros((2, 0));
        for norm in [Norm::Rmsnorm, Norm::Layernorm] {
            let (y, cache) = forward(norm, x.view(), 1.0);
            assert_eq!(y.dim(), (2, 0));
            assert_eq!(backward(norm, &cache, x.view()).dim(), (2, 0));
        }
    }
}
