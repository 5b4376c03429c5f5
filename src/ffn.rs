//! Position-wise feed-forward sublayer without biases, `F(X)`.
//!
//! # Formula
//! - `relu`, `gelu`: `F(X) = φ(X W_1) W_2`, `W_1 ∈ R^{d×d_ff}`, `W_2 ∈ R^{d_ff×d}`;
//!   `gelu(u) = u Φ(u)` (exact, with the normal CDF `Φ`).
//! - `swiglu`: `F(X) = (silu(X W_g) ⊙ X W_1) W_2`, `silu(u) = u σ(u)`.
//!
//! Default `d_ff`: `4d`, and for `swiglu` `8d/3` rounded to the nearest multiple of 8.

use crate::block::Grads;
use crate::choice_enum;
use crate::real::Real;
use crate::simd;
use crate::weight::WeightName;
use ndarray::{Array2, ArrayView2};

choice_enum!(
    /// Feed-forward nonlinearity `φ`.
    Activation, "act", {
        /// `max(u, 0)`.
        Relu => "relu",
        /// `u Φ(u)`.
        Gelu => "gelu",
        /// Gated: `silu(X W_g) ⊙ X W_1`.
        Swiglu => "swiglu",
    }
);

impl Activation {
    /// The default hidden width for model width `d`.
    pub fn default_d_ff(self, d: usize) -> usize {
        match self {
            Activation::Relu | Activation::Gelu => 4 * d,
            Activation::Swiglu => {
                let r = ((8.0 * d as f64 / 3.0) / 8.0).round() as usize * 8;
                r.max(8)
            }
        }
    }
}

/// `φ(u)` for the non-gated activations, and `silu` for the gate of `swiglu`.
///
/// `e^x` is [`Real::exp_poly`] (the same bits on every processor); `gelu`'s `erf` is
/// `libm`'s (portable Rust, so also the same everywhere, but not vectorized).
#[inline(always)]
fn act<T: Real>(a: Activation, u: T) -> T {
    match a {
        Activation::Relu => u.max(T::zero()),
        Activation::Gelu => u * normal_cdf(u),
        Activation::Swiglu => u * sigmoid(u),
    }
}

/// `φ'(u)`, matching [`act`].
#[inline(always)]
fn act_grad<T: Real>(a: Activation, u: T) -> T {
    match a {
        Activation::Relu => {
            if u > T::zero() {
                T::one()
            } else {
                T::zero()
            }
        }
        Activation::Gelu => {
            let pdf = (-(u * u) * T::of(0.5)).exp_poly()
                * T::of(1.0 / (2.0 * std::f64::consts::PI).sqrt());
            normal_cdf(u) + u * pdf
        }
        Activation::Swiglu => {
            let s = sigmoid(u);
            s * (T::one() + u * (T::one() - s))
        }
    }
}

#[inline(always)]
fn normal_cdf<T: Real>(u: T) -> T {
    T::of(0.5) * (T::one() + (u * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf())
}

#[inline(always)]
fn sigmoid<T: Real>(u: T) -> T {
    T::one() / (T::one() + (-u).exp_poly())
}

/// Evaluates `$body` with `$name` a constant equal to the activation `$a`, so that each
/// activation gets its own loop (no per-element `match`).
macro_rules! with_act {
    ($a:expr, $name:ident => $body:expr) => {
        match $a {
            Activation::Relu => {
                const $name: Activation = Activation::Relu;
                $body
            }
            Activation::Gelu => {
                const $name: Activation = Activation::Gelu;
                $body
            }
            Activation::Swiglu => {
                const $name: Activation = Activation::Swiglu;
                $body
            }
        }
    };
}

/// Weights of one feed-forward network (one expert of a mixture).
#[derive(Clone, Debug, PartialEq)]
pub struct FfnWeights<T> {
    /// Input projection `W_1`, `d × d_ff`.
    pub w_1: Array2<T>,
    /// Output projection `W_2`, `d_ff × d`.
    pub w_2: Array2<T>,
    /// The gate projection, `swiglu` only.
    pub w_g: Option<Array2<T>>,
}

impl<T: Real> FfnWeights<T> {
    /// `(name, matrix)` pairs: `W_1`, `W_2`, then `W_g` where present.
    pub fn each(&self) -> Vec<(WeightName, &Array2<T>)> {
        let mut v = vec![
            (WeightName::FfnW1, &self.w_1),
            (WeightName::FfnW2, &self.w_2),
        ];
        if let Some(g) = &self.w_g {
            v.push((WeightName::FfnWg, g));
        }
        v
    }

    /// Mutable access in the order of [`FfnWeights::each`].
    pub fn each_mut(&mut self) -> Vec<&mut Array2<T>> {
        let mut v = vec![&mut self.w_1, &mut self.w_2];
        if let Some(g) = &mut self.w_g {
            v.push(g);
        }
        v
    }

    /// Zero matrices of the same shapes, for accumulating gradients.
    pub fn zeros_like(&self) -> Self {
        FfnWeights {
            w_1: Array2::zeros(self.w_1.raw_dim()),
            w_2: Array2::zeros(self.w_2.raw_dim()),
            w_g: self.w_g.as_ref().map(|g| Array2::zeros(g.raw_dim())),
        }
    }
}

/// What the backward pass of a feed-forward network needs besides its input.
#[derive(Clone, Debug)]
pub struct FfnCache<T> {
    /// `X W_1`.
    h: Array2<T>,
    /// `X W_g` (`swiglu` only).
    gate: Option<Array2<T>>,
    /// The hidden activation fed to `W_2`.
    z: Array2<T>,
}

/// The hidden activation from `h = X W_1` and, for `swiglu`, `gate = X W_g`:
/// `φ(h)`, or `silu(gate) ⊙ h`. The one definition the feed-forward networks share
/// ([`forward`], and [`crate::sublayer`]'s network with a hidden norm).
pub(crate) fn activate<T: Real>(
    a: Activation,
    h: &Array2<T>,
    gate: Option<&Array2<T>>,
) -> Array2<T> {
    match gate {
        Some(g) => {
            let mut z = h.clone();
            with_act!(a, A => simd::ops::zip_in_place(
                &mut z,
                g,
                #[inline(always)]
                |z, gv| z * act(A, gv),
            ));
            z
        }
        None => with_act!(a, A => simd::ops::map(
            h.view(),
            #[inline(always)]
            |u| act(A, u),
        )),
    }
}

/// The backward of [`activate`]: turns `gh = ∂ℓ/∂z` into `∂ℓ/∂h` in place and returns
/// `∂ℓ/∂gate` for `swiglu` (`z = silu(gate) ⊙ h`: `∂z/∂h = silu(gate)`,
/// `∂z/∂gate = h ⊙ silu'(gate)`).
pub(crate) fn activate_backward<T: Real>(
    a: Activation,
    gh: &mut Array2<T>,
    h: &Array2<T>,
    gate: Option<&Array2<T>>,
) -> Option<Array2<T>> {
    match gate {
        Some(gate) => {
            let mut gg = gh.clone();
            with_act!(a, A => simd::ops::zip3_in_place(
                &mut gg,
                h,
                gate,
                #[inline(always)]
                |g, hv, gv| g * (hv * act_grad(A, gv)),
            ));
            with_act!(a, A => simd::ops::zip_in_place(
                gh,
                gate,
                #[inline(always)]
                |g, gv| g * act(A, gv),
            ));
            Some(gg)
        }
        None => {
            with_act!(a, A => simd::ops::zip_in_place(
                gh,
                h,
                #[inline(always)]
                |g, hv| g * act_grad(A, hv),
            ));
            None
        }
    }
}

/// `F(X)` and its cache.
pub fn forward<T: Real>(
    w: &FfnWeights<T>,
    a: Activation,
    x: ArrayView2<T>,
) -> (Array2<T>, FfnCache<T>) {
    let h = x.dot(&w.w_1);
    let gate = match (&w.w_g, a) {
        (Some(wg), Activation::Swiglu) => Some(x.dot(wg)),
        _ => None,
    };
    let z = activate(a, &h, gate.as_ref());
    let out = z.dot(&w.w_2);
    (out, FfnCache { h, gate, z })
}

/// `∂ℓ/∂X` and the weight gradients, from `∂ℓ/∂F(X)`.
pub fn backward<T: Real>(
    w: &FfnWeights<T>,
    a: Activation,
    cache: &FfnCache<T>,
    x: ArrayView2<T>,
    g_out: ArrayView2<T>,
) -> (Array2<T>, FfnWeights<T>) {
    let (gx, gw) = backward_with(w, a, cache, x, g_out, Grads::All);
    (gx, gw.expect("weight gradients requested"))
}

/// `∂ℓ/∂X`, and the weight gradients when `grads` asks for them.
pub fn backward_with<T: Real>(
    w: &FfnWeights<T>,
    a: Activation,
    cache: &FfnCache<T>,
    x: ArrayView2<T>,
    g_out: ArrayView2<T>,
    grads: Grads,
) -> (Array2<T>, Option<FfnWeights<T>>) {
    let all = grads == Grads::All;
    let mut gh = g_out.dot(&w.w_2.t());
    let gate = match &w.w_g {
        Some(_) => cache.gate.as_ref(),
        None => None,
    };
    let (gx, gw_g) = match (&w.w_g, activate_backward(a, &mut gh, &cache.h, gate)) {
        (Some(wg), Some(gg)) => (gg.dot(&wg.t()), all.then(|| x.t().dot(&gg))),
        _ => (Array2::zeros(x.raw_dim()), None),
    };
    // Input and weight gradients are independent products (see `attention::backward_with`).
    rayon::join(
        || gx + gh.dot(&w.w_1.t()),
        || {
            all.then(|| FfnWeights {
                w_1: x.t().dot(&gh),
                w_2: cache.z.t().dot(&g_out),
                w_g: gw_g,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_widths() {
        assert_eq!(Activation::Relu.default_d_ff(256), 1024);
        assert_eq!(Activation::Swiglu.default_d_ff(256), 680);
        assert_eq!(Activation::Swiglu.default_d_ff(3), 8);
    }

    #[test]
    fn activation_derivatives_match_central_differences() {
        for a in [Activation::Relu, Activation::Gelu, Activation::Swiglu] {
            for &u in &[-2.5f64, -0.7, 0.3, 1.9] {
                let h = 1e-6;
                let fd = (act(a, u + h) - act(a, u - h)) / (2.0 * h);
                // Central difference error is O(h² f''') ≈ 1e-12 plus rounding ε/h ≈ 1e-10.
                assert!((fd - act_grad(a, u)).abs() < 1e-8, "{a} at {u}");
            }
        }
    }
}
