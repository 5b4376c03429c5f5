//! Mean-field maps of attention (`analysis/theory.md` §2.5).
//!
//! - `zero-query`: `P` is exactly uniform over the visible tokens, so
//!   `K_A = g_v g_o P K Pᵀ` and `Γ_X = g_v g_o Pᵀ Γ_A P` are exact (`g` the per-matrix gains).
//! - softmax (`fan-in`, `xavier`), bidirectional only: the within-row logit variance is
//!   `σ_s² = g_q g_k q² (1 − ρ)`; rows are summarized by `P_2 = E Σ_j P_ij²` (an exact 1-D
//!   integral for i.i.d. Gaussian logits) and by `e^{c_s}/n`, `c_s = g_q g_k q² ρ (1 − ρ)`,
//!   for two rows. The approximation holds for `σ_s² ≤ 1` and is refused beyond.
//! - softmax with the causal mask (non-exchangeable kernels): [`super::logits`].

use super::quadrature::expect1;
use crate::attention::Mask;
use ndarray::Array2;

/// The exact attention matrix of `zero-query` attention: uniform over visible tokens.
pub fn uniform(n: usize, mask: Mask) -> Array2<f64> {
    Array2::from_shape_fn((n, n), |(i, j)| match mask {
        Mask::Bidirectional => 1.0 / n as f64,
        Mask::Causal => {
            if j <= i {
                1.0 / (i + 1) as f64
            } else {
                0.0
            }
        }
    })
}

/// Trapezoid steps of the `P_2` integral.
const P2_STEPS: usize = 600;

/// `P_2(σ_s², n) = E Σ_j P_ij²` for `n` i.i.d. logits `ξ_j ~ N(0, σ_s²)`:
/// `n ∫_0^∞ t M_2(t) M_0(t)^{n−1} dt` with `M_0(t) = E e^{−t e^{ξ}}`,
/// `M_2(t) = E e^{2ξ} e^{−t e^{ξ}}` (from `1/Z² = ∫ t e^{−tZ} dt`), by Gauss–Hermite over
/// `ξ = σ_s z`, `z ~ N(0, 1)`.
pub fn p2(var: f64, n: usize) -> f64 {
    if var <= 0.0 {
        return 1.0 / n as f64;
    }
    let s = var.sqrt();
    // t = e^u; the integrand t² M_2 M_0^{n−1} du is negligible outside u ∈ [−40, 20] for
    // σ_s² ≤ 4 and n ≤ 10⁴. The trapezoid rule converges geometrically on a smooth, rapidly
    // decaying integrand: 600 steps (h = 0.1) match the reference values to 5 digits and the
    // exact n = 2 case to 1e-8 (tested below).
    let (lo, hi, steps) = (-40.0, 20.0, P2_STEPS);
    let h = (hi - lo) / steps as f64;
    let mut acc = 0.0;
    for k in 0..=steps {
        let u = lo + k as f64 * h;
        let t = u.exp();
        let m0 = expect1(|z| (-t * (s * z).exp()).exp());
        let m2 = expect1(|z| (2.0 * s * z).exp() * (-t * (s * z).exp()).exp());
        let f = t * t * m2 * m0.powi(n as i32 - 1);
        acc += if k == 0 || k == steps { 0.5 * f } else { f };
    }
    n as f64 * acc * h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p2_matches_reference_values() {
        // analysis/theory-checks.md §1 (independent t-integral, Monte Carlo agrees to 3
        // digits): n = 8 and n = 64 at σ_s² = 0.25, 0.8, 1, 2.
        let cases = [
            (8, 0.25, 0.15285),
            (8, 0.8, 0.21237),
            (8, 1.0, 0.23231),
            (8, 2.0, 0.31666),
            (64, 0.25, 0.01993),
            (64, 0.8, 0.03289),
            (64, 1.0, 0.03880),
            (64, 2.0, 0.07562),
        ];
        for (n, v, want) in cases {
            let got = p2(v, n);
            assert!(
                (got - want).abs() < 6e-6,
                "P_2({v}, {n}) = {got}, reference {want}"
            );
        }
    }

    #[test]
    fn p2_limits_and_lognormal_regime() {
        // σ → 0: uniform rows, P_2 = 1/n.
        assert!((p2(1e-12, 64) - 1.0 / 64.0).abs() < 1e-9);
        // Large n, small σ²: P_2 ≈ e^{σ²}/n (theory.md §2.5.3: 1% off at σ² = 0.25, n = 64).
        let v = p2(0.25, 64);
        let ln = 0.25f64.exp() / 64.0;
        assert!((v / ln - 1.0).abs() < 0.02, "{v} vs {ln}");
        // n = 2 exactly: P_2 = E[(e^{2a} + e^{2b})/(e^a + e^b)²] = E[1 − 2 p(1 − p)],
        // p = σ(a − b), a − b ~ N(0, 2σ²).
        let var: f64 = 0.8;
        let want = expect1(|z| {
            let p = 1.0 / (1.0 + (-(2.0 * var).sqrt() * z).exp());
            1.0 - 2.0 * p * (1.0 - p)
        });
        assert!((p2(var, 2) - want).abs() < 1e-8, "{} vs {want}", p2(var, 2));
    }
}
