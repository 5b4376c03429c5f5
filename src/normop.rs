//! The normalizations a block formula can call besides the configured norm: `layernorm`,
//! `rmsnorm` (see [`crate::norm`]), `dyt` and `l2norm`, each per token, forward and exact
//! backward.
//!
//! # Formula
//! - `dyt(x) = γ · tanh(α₀ x)` elementwise, `γ = 1`, no bias (Zhu et al. 2025,
//!   "Transformers without Normalization", arXiv 2503.10622; `α₀` from `--dyt-alpha`,
//!   default 0.5). Backward: `∂ℓ/∂x = α₀ (1 − tanh²(α₀ x)) ⊙ g`.
//! - `l2norm(x) = x / sqrt(‖x‖² + ε₂)` per token, `ε₂ = 1e-12`: rows to unit length (nGPT,
//!   Loshchilov et al. 2024, arXiv 2410.01131). Backward, with `y = l2norm(x)` and
//!   `r = 1/sqrt(‖x‖² + ε₂)`: `∂ℓ/∂x = r (g − y ⟨g, y⟩)`. It is `rmsnorm / √d` up to the
//!   placement of `ε`.

use crate::choice_enum;
use crate::norm::{self, Norm, NormCache};
use crate::real::Real;
use ndarray::{Array1, Array2, ArrayView2, Zip};

choice_enum!(
    /// A normalization a block formula calls by name.
    NormKind, "norm function", {
        /// `norm(·)`: the configured norm (`--norm`).
        Configured => "norm",
        /// `layernorm(·)`, whatever `--norm` says.
        Layernorm => "layernorm",
        /// `rmsnorm(·)`, whatever `--norm` says.
        Rmsnorm => "rmsnorm",
        /// `dyt(·)`: Dynamic Tanh, `tanh(α₀ x)`.
        Dyt => "dyt",
        /// `l2norm(·)`: every row to unit length.
        L2 => "l2norm",
    }
);

/// The default `α₀` of DyT (the paper's default for non-LLM models and our choice).
pub const DYT_ALPHA: f64 = 0.5;

/// The `ε₂` of `l2norm` inside the square root of `‖x‖² + ε₂`.
pub const L2_EPS: f64 = 1e-12;

impl NormKind {
    /// The token norm a kind reduces to, for the configured norm `configured`; `None` for
    /// the elementwise DyT and for `l2norm`.
    pub fn as_norm(self, configured: Norm) -> Option<Norm> {
        match self {
            NormKind::Configured => Some(configured),
            NormKind::Layernorm => Some(Norm::Layernorm),
            NormKind::Rmsnorm => Some(Norm::Rmsnorm),
            NormKind::Dyt | NormKind::L2 => None,
        }
    }
}

/// What the backward pass of a normalization needs.
#[derive(Clone, Debug)]
pub enum NormOpCache<T> {
    /// A layernorm or rmsnorm, and which.
    Token(Norm, NormCache<T>),
    /// DyT: `tanh(α₀ x)` before the gain, `α₀`, the gain.
    Dyt {
        /// `tanh(α₀ x)`.
        t: Array2<T>,
        /// `α₀`.
        alpha: T,
        /// The output gain.
        gain: T,
    },
    /// `l2norm`: its output before the gain, `1/sqrt(‖x‖² + ε₂)` per row, the gain.
    L2 {
        /// `x / sqrt(‖x‖² + ε₂)`.
        y: Array2<T>,
        /// Per row.
        inv: Array1<T>,
        /// The output gain.
        gain: T,
    },
}

/// `gain · M(x)` for normalization `kind` (`configured` resolves `norm`), with its cache.
pub fn forward<T: Real>(
    kind: NormKind,
    configured: Norm,
    dyt_alpha: f64,
    x: ArrayView2<T>,
    gain: T,
) -> (Array2<T>, NormOpCache<T>) {
    if let Some(n) = kind.as_norm(configured) {
        let (y, c) = norm::forward(n, x, gain);
        return (y, NormOpCache::Token(n, c));
    }
    match kind {
        NormKind::Dyt => {
            let alpha = T::of(dyt_alpha);
            let t = x.mapv(|v| (alpha * v).tanh());
            let y = t.mapv(|v| v * gain);
            (y, NormOpCache::Dyt { t, alpha, gain })
        }
        _ => {
            let eps = T::of(L2_EPS);
            let mut y = x.to_owned();
            let mut inv = Array1::zeros(x.nrows());
            Zip::from(y.rows_mut())
                .and(&mut inv)
                .for_each(|mut row, r| {
                    let ss = row.iter().map(|&v| v * v).sum::<T>();
                    // An overflowing row would normalize to 0: make it NaN, a divergence.
                    let s = if ss.is_finite() {
                        T::one() / (ss + eps).sqrt()
                    } else {
                        T::nan()
                    };
                    row.mapv_inplace(|v| v * s);
                    *r = s;
                });
            let out = y.mapv(|v| v * gain);
            (out, NormOpCache::L2 { y, inv, gain })
        }
    }
}

/// `∂ℓ/∂x` from `∂ℓ/∂(gain · M(x))`.
pub fn backward<T: Real>(cache: &NormOpCache<T>, g_out: ArrayView2<T>) -> Array2<T> {
    match cache {
        NormOpCache::Token(n, c) => norm::backward(*n, c, g_out),
        NormOpCache::Dyt { t, alpha, gain } => {
            let mut g = g_out.to_owned();
            Zip::from(&mut g).and(t).for_each(|g, &tv| {
                *g = *g * *gain * *alpha * (T::one() - tv * tv);
            });
            g
        }
        NormOpCache::L2 { y, inv, gain } => {
            let mut g = g_out.mapv(|v| v * *gain);
            Zip::from(g.rows_mut())
                .and(y.rows())
                .and(inv)
                .for_each(|mut g, y, &r| {
                    let gy = g.iter().zip(y.iter()).map(|(&a, &b)| a * b).sum::<T>();
                    Zip::from(&mut g).and(&y).for_each(|gv, &yv| {
                        *gv = (*gv - yv * gy) * r;
                    });
                });
            g
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn l2norm_rows_have_unit_length() {
        let x = array![[3.0f64, 4.0, 0.0], [1e-3, -2e-3, 5e-4]];
        let (y, _) = forward(NormKind::L2, Norm::Layernorm, DYT_ALPHA, x.view(), 1.0);
        for row in y.rows() {
            let len2: f64 = row.iter().map(|v| v * v).sum();
            // ‖y‖² = ‖x‖²/(‖x‖² + ε₂): within ε₂/‖x‖² ≤ 2e-6 of 1 here, plus rounding.
            assert!((len2 - 1.0).abs() < 2e-6, "{len2}");
        }
    }

    #[test]
    fn dyt_is_tanh_of_the_scaled_input() {
        let x = array![[0.0f64, 1.0, -3.0]];
        let (y, _) = forward(NormKind::Dyt, Norm::Layernorm, 0.5, x.view(), 2.0);
        assert_eq!(y[[0, 0]], 0.0);
        assert_eq!(y[[0, 1]], 2.0 * 0.5f64.tanh());
        assert_eq!(y[[0, 2]], 2.0 * (-1.5f64).tanh());
    }
}
