//! Optimizers and learning-rate schedules (`analysis/training.md`).
//!
//! - `sgd`: `W ← (1 − η_t λ) W − η_t g` (decoupled weight decay `λ`, no momentum).
//! - `adamw` (Loshchilov & Hutter 2019): `m ← β₁ m + (1 − β₁) g`, `v ← β₂ v + (1 − β₂) g²`,
//!   `W ← (1 − η_t λ) W − η_t m̂ / (√v̂ + ε)` with the bias corrections
//!   `m̂ = m / (1 − β₁ᵗ)`, `v̂ = v / (1 − β₂ᵗ)`; `β₁ = 0.9`, `β₂ = 0.95`, `ε = 1e-8` as in
//!   Wortsman et al. (2023).
//!
//! `η_t` rises linearly over the warmup steps (`η (t + 1)/warmup`) and then stays (`constant`)
//! or follows a half cosine to 0 at the last step (`cosine`). Gradients are clipped to a
//! global norm before the update: `g ← g · min(1, c/‖g‖)` over every weight at once.

use crate::choice_enum;
use crate::real::Real;
use ndarray::{Array2, Zip};

choice_enum!(
    /// The optimizer.
    Optimizer, "optimizer", {
        /// Plain gradient descent with decoupled weight decay.
        Sgd => "sgd",
        /// Adam with decoupled weight decay.
        Adamw => "adamw",
    }
);

choice_enum!(
    /// The learning-rate schedule after warmup.
    Schedule, "schedule", {
        /// Half a cosine from the peak to 0 at the last step.
        Cosine => "cosine",
        /// The peak rate to the end.
        Constant => "constant",
    }
);

/// AdamW's `β₁`.
pub const BETA1: f64 = 0.9;
/// AdamW's `β₂`.
pub const BETA2: f64 = 0.95;
/// AdamW's `ε`.
pub const EPS: f64 = 1e-8;

/// The learning rate at step `t` (0-based) of `steps`.
pub fn rate(peak: f64, t: usize, steps: usize, warmup: usize, schedule: Schedule) -> f64 {
    if t < warmup {
        return peak * (t + 1) as f64 / warmup as f64;
    }
    match schedule {
        Schedule::Constant => peak,
        Schedule::Cosine => {
            let span = steps.saturating_sub(warmup).max(1) as f64;
            let x = (t - warmup) as f64 / span;
            0.5 * peak * (1.0 + (std::f64::consts::PI * x).cos())
        }
    }
}

/// The state of one weight matrix.
#[derive(Clone, Debug)]
pub struct Moments<T> {
    m: Array2<T>,
    v: Array2<T>,
}

impl<T: Real> Moments<T> {
    /// Zero moments for a matrix of `shape`.
    pub fn zeros(shape: (usize, usize)) -> Moments<T> {
        Moments {
            m: Array2::zeros(shape),
            v: Array2::zeros(shape),
        }
    }

    /// The state `opt` needs for a matrix of `shape`: the two moments for AdamW, nothing
    /// (empty arrays) for SGD.
    pub fn for_optimizer(opt: Optimizer, shape: (usize, usize)) -> Moments<T> {
        match opt {
            Optimizer::Adamw => Moments::zeros(shape),
            Optimizer::Sgd => Moments::zeros((0, 0)),
        }
    }
}

/// One update of `w` by gradient `g` (already clipped) at step `t` (0-based) with rate `lr`
/// and decoupled weight decay `decay`.
pub fn update<T: Real>(
    opt: Optimizer,
    w: &mut Array2<T>,
    g: &Array2<T>,
    state: &mut Moments<T>,
    t: usize,
    lr: f64,
    decay: f64,
) {
    let shrink = T::of(1.0 - lr * decay);
    match opt {
        Optimizer::Sgd => {
            let lr = T::of(lr);
            Zip::from(w)
                .and(g)
                .for_each(|w, &g| *w = *w * shrink - lr * g);
        }
        Optimizer::Adamw => {
            let step = (t + 1) as i32;
            let c1 = 1.0 / (1.0 - BETA1.powi(step));
            let c2 = 1.0 / (1.0 - BETA2.powi(step));
            let (b1, b2) = (T::of(BETA1), T::of(BETA2));
            let (a1, a2) = (T::of(1.0 - BETA1), T::of(1.0 - BETA2));
            let (c1, c2, eps, lr) = (T::of(c1), T::of(c2), T::of(EPS), T::of(lr));
            Zip::from(w)
                .and(g)
                .and(&mut state.m)
                .and(&mut state.v)
                .for_each(|w, &g, m, v| {
                    *m = b1 * *m + a1 * g;
                    *v = b2 * *v + a2 * g * g;
                    *w = *w * shrink - lr * (*m * c1) / ((*v * c2).sqrt() + eps);
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_zero() {
        assert_eq!(rate(1.0, 0, 100, 10, Schedule::Cosine), 0.1);
        assert_eq!(rate(1.0, 9, 100, 10, Schedule::Cosine), 1.0);
        assert_eq!(rate(1.0, 10, 100, 10, Schedule::Cosine), 1.0);
        assert!((rate(1.0, 55, 100, 10, Schedule::Cosine) - 0.5).abs() < 1e-12);
        assert!(rate(1.0, 99, 100, 10, Schedule::Cosine) < 1e-3);
        assert_eq!(rate(2.0, 99, 100, 10, Schedule::Constant), 2.0);
        assert_eq!(rate(2.0, 0, 100, 0, Schedule::Constant), 2.0);
    }

    #[test]
    fn adamw_first_step_moves_by_the_rate() {
        // With the bias corrections, step 1 has m̂ = g and v̂ = g², so each weight moves by
        // lr · sign(g) (up to ε), whatever the gradient's size; decay shrinks it first.
        let mut w = Array2::from_elem((1, 2), 1.0f64);
        let g = Array2::from_shape_vec((1, 2), vec![1e-3, -5.0]).unwrap();
        let mut s = Moments::zeros((1, 2));
        update(Optimizer::Adamw, &mut w, &g, &mut s, 0, 0.01, 0.1);
        assert!((w[[0, 0]] - (0.999 - 0.01)).abs() < 1e-7);
        assert!((w[[0, 1]] - (0.999 + 0.01)).abs() < 1e-9);
        let mut w = Array2::from_elem((1, 2), 1.0f64);
        update(Optimizer::Sgd, &mut w, &g, &mut s, 0, 0.1, 0.0);
        assert!((w[[0, 1]] - 1.5).abs() < 1e-15);
    }
}
