//! Dual kernels of the feed-forward nonlinearities: for pre-activations `(u, v)` jointly
//! Gaussian with variances `(Q_i, Q_j)` and covariance `C`,
//! forward `E[φ(u) φ(v)]` and backward `E[φ'(u) φ'(v)]`.
//!
//! relu in closed form (arc-cosine kernels of degree 1 and 0, Cho & Saul 2009):
//! `E[relu(u) relu(v)] = √(Q_i Q_j) (sin θ + (π − θ) cos θ) / (2π)`,
//! `E[1{u>0} 1{v>0}] = (π − θ) / (2π)`, `cos θ = C / √(Q_i Q_j)`.
//! gelu and silu by Gauss–Hermite quadrature ([`super::quadrature`]).

use super::quadrature::expect2;
use std::f64::consts::PI;

/// A scalar nonlinearity whose dual kernels are needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phi {
    /// `max(u, 0)`.
    Relu,
    /// `u Φ(u)`.
    Gelu,
    /// `silu(u) = u σ(u)`, the gate of swiglu.
    Silu,
    /// `tanh(u)`, DyT's map (its `α₀` folded into the variances).
    Tanh,
}

fn norm_cdf(u: f64) -> f64 {
    0.5 * (1.0 + libm::erf(u / std::f64::consts::SQRT_2))
}

fn value(p: Phi, u: f64) -> f64 {
    match p {
        Phi::Relu => u.max(0.0),
        Phi::Gelu => u * norm_cdf(u),
        Phi::Silu => u / (1.0 + (-u).exp()),
        Phi::Tanh => u.tanh(),
    }
}

fn slope(p: Phi, u: f64) -> f64 {
    match p {
        Phi::Relu => f64::from(u > 0.0),
        Phi::Gelu => norm_cdf(u) + u * (-0.5 * u * u).exp() / (2.0 * PI).sqrt(),
        Phi::Silu => {
            let s = 1.0 / (1.0 + (-u).exp());
            s * (1.0 + u * (1.0 - s))
        }
        Phi::Tanh => {
            let t = u.tanh();
            1.0 - t * t
        }
    }
}

/// `E φ(u)`, `u ~ N(0, q)`: the mean of a unit (relu in closed form, `√(q/2π)`: its kink
/// costs Gauss–Hermite nearly 1% here).
pub fn mean_value(p: Phi, q: f64) -> f64 {
    match p {
        Phi::Relu => (q.max(0.0) / (2.0 * PI)).sqrt(),
        _ => super::quadrature::expect1_scaled(q.max(0.0).sqrt(), |u| value(p, u)),
    }
}

/// `E φ'(u)`, `u ~ N(0, q)`: by Stein's lemma, the coefficient of the best linear
/// predictor of `φ(u)` from `u` (`E[φ(u) v] = Cov(u, v) E φ'(u)` for jointly Gaussian `u, v`).
pub fn mean_slope(p: Phi, q: f64) -> f64 {
    super::quadrature::expect1_scaled(q.max(0.0).sqrt(), |u| slope(p, u))
}

fn corr(qi: f64, qj: f64, c: f64) -> f64 {
    if qi <= 0.0 || qj <= 0.0 {
        return 0.0;
    }
    (c / (qi * qj).sqrt()).clamp(-1.0, 1.0)
}

/// `E[φ(u) φ(v)]`.
pub fn forward(p: Phi, qi: f64, qj: f64, c: f64) -> f64 {
    let r = corr(qi, qj, c);
    match p {
        Phi::Relu => {
            let th = r.acos();
            (qi * qj).sqrt() * (th.sin() + (PI - th) * r) / (2.0 * PI)
        }
        _ => expect2(qi, qj, r, |u| value(p, u), |v| value(p, v)),
    }
}

/// `E[φ'(u) φ'(v)]`.
pub fn backward(p: Phi, qi: f64, qj: f64, c: f64) -> f64 {
    let r = corr(qi, qj, c);
    match p {
        Phi::Relu => (PI - r.acos()) / (2.0 * PI),
        _ => expect2(qi, qj, r, |u| slope(p, u), |v| slope(p, v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slow reference for the closed forms: the midpoint rule on `[−8, 8]²` with step
    /// `h = 0.005` for `E f(u) f(v)`, `u = √q_i z_1`, `v = √q_j (r z_1 + √(1−r²) z_2)`.
    /// Gauss–Hermite is no reference here: the kink of relu costs it digits (1.4e-3 relative
    /// at 200 nodes). The midpoint rule's error is `O(h²)` for a continuous integrand with a
    /// kink (≈ 1e-5 here) and `O(h)` times the Gaussian mass along the discontinuity for a
    /// step (≤ 0.4 h = 2e-3).
    fn brute(qi: f64, qj: f64, r: f64, f: impl Fn(f64) -> f64) -> f64 {
        let h = 0.005;
        let m = (16.0 / h) as usize;
        let s = (1.0 - r * r).sqrt();
        let phi = |z: f64| (-0.5 * z * z).exp() / (2.0 * PI).sqrt();
        let mut acc = 0.0;
        for a in 0..m {
            let z1 = -8.0 + (a as f64 + 0.5) * h;
            let fu = f(qi.sqrt() * z1);
            if fu == 0.0 {
                continue;
            }
            let mut inner = 0.0;
            for b in 0..m {
                let z2 = -8.0 + (b as f64 + 0.5) * h;
                inner += phi(z2) * f(qj.sqrt() * (r * z1 + s * z2));
            }
            acc += phi(z1) * fu * inner;
        }
        acc * h * h
    }

    /// A unit of zero variance is 0: its kernel with any other unit is 0, not 0/0.
    #[test]
    fn a_zero_variance_unit_has_a_zero_kernel() {
        for p in [Phi::Relu, Phi::Gelu, Phi::Silu, Phi::Tanh] {
            for (qi, qj) in [(0.0, 1.0), (1.0, 0.0), (0.0, 0.0)] {
                assert_eq!(forward(p, qi, qj, 0.0), 0.0, "{p:?} {qi} {qj}");
            }
        }
    }

    #[test]
    fn relu_closed_form_matches_quadrature() {
        for &(qi, qj, r) in &[(1.0f64, 1.0f64, 0.2f64), (2.0, 0.5, -0.6), (1.0, 3.0, 0.95)] {
            let c = r * (qi * qj).sqrt();
            let exact = forward(Phi::Relu, qi, qj, c);
            let quad = brute(qi, qj, r, |u| u.max(0.0));
            assert!((exact - quad).abs() < 1e-4, "{exact} {quad}");
            let exact = backward(Phi::Relu, qi, qj, c);
            let quad = brute(qi, qj, r, |u| f64::from(u > 0.0));
            assert!((exact - quad).abs() < 2e-3, "{exact} {quad}");
        }
        // At cos θ = 1/2: θ = π/3, E 1{u>0} 1{v>0} = (π − π/3)/(2π) = 1/3 exactly (the
        // closed form; Gauss–Hermite, used below variance 1, only approaches it).
        assert!((backward(Phi::Relu, 0.5, 0.5, 0.25) - 1.0 / 3.0).abs() < 1e-15);
        // Diagonal: E relu(u)² = Q/2, E 1{u>0} = 1/2.
        assert!((forward(Phi::Relu, 3.0, 3.0, 3.0) - 1.5).abs() < 1e-15);
        assert!((backward(Phi::Relu, 3.0, 3.0, 3.0) - 0.5).abs() < 1e-15);
        // One unit: E 1{u>0} = 1/2 by quadrature (Gauss–Hermite below variance 1, the
        // composite rule above: symmetric nodes, none at 0); E relu(u) = √(q/2π) in closed
        // form, which the midpoint rule confirms.
        for q in [0.5f64, 4.0] {
            assert!((mean_slope(Phi::Relu, q) - 0.5).abs() < 1e-12, "q = {q}");
            let h = 1e-4;
            let want: f64 = (0..240_000)
                .map(|k| {
                    let z = -12.0 + (k as f64 + 0.5) * h;
                    (-0.5 * z * z).exp() / (2.0 * PI).sqrt() * (q.sqrt() * z).max(0.0) * h
                })
                .sum();
            let got = mean_value(Phi::Relu, q);
            assert!((got - want).abs() < 1e-8, "q = {q}: {got} vs {want}");
        }
    }

    #[test]
    fn tanh_kernels_match_the_midpoint_rule() {
        // 48-node Gauss–Hermite on tanh, whose poles at ±iπ/2 limit its accuracy as the
        // variance grows: against the midpoint rule (exact to ~1e-9 here: a smooth
        // integrand, h = 0.005) it errs by ≤ 6e-8 at variance 1 and by 7e-5 (forward) and
        // 4.6e-4 (backward, sech² is sharper) at variance 4; the bounds are twice those.
        let cases = [
            (0.25f64, 0.25f64, 0.2f64, 1e-14),
            (1.0, 0.3, -0.5, 1.2e-7),
            (1.0, 1.0, 0.5, 1.2e-7),
            (4.0, 4.0, 0.9, 1e-3),
        ];
        for &(qi, qj, r, tol) in &cases {
            let c = r * (qi * qj).sqrt();
            let quad = brute(qi, qj, r, f64::tanh);
            let e = (forward(Phi::Tanh, qi, qj, c) - quad).abs();
            let slope = brute(qi, qj, r, |u| 1.0 - u.tanh().powi(2));
            let es = (backward(Phi::Tanh, qi, qj, c) - slope).abs();
            println!("tanh ({qi}, {qj}, {r}): forward error {e:e}, backward error {es:e}");
            assert!(e < tol && es < tol, "({qi}, {qj}, {r}): {e:e} {es:e}");
        }
        // Stein: E[tanh(u) u] = q E tanh'(u), to the quadrature's accuracy at variance ≤ 1.
        let q: f64 = 0.7;
        let lhs = super::super::quadrature::expect1(|z| (q.sqrt() * z).tanh() * q.sqrt() * z);
        let gap = (lhs - q * mean_slope(Phi::Tanh, q)).abs();
        assert!(gap < 1.2e-7, "{gap:e}");
        // At the variances of a deep DyT stack (α₀²q = 70 at the top of 256 blocks) the maps
        // must not use Gauss–Hermite, which misses sech²'s spike of width 1/√q between its
        // nodes (E sech⁴ 24 times too small): the slopes and the diagonal of the backward
        // kernel against the midpoint rule (1-D, h = 10⁻⁴ on [−10, 10]).
        let mid = |f: &dyn Fn(f64) -> f64| {
            let h = 1e-4;
            (0..200_000)
                .map(|k| {
                    let z = -10.0 + (k as f64 + 0.5) * h;
                    (-0.5 * z * z).exp() / (2.0 * PI).sqrt() * f(z) * h
                })
                .sum::<f64>()
        };
        for q in [4.0f64, 16.0, 70.0] {
            let s = q.sqrt();
            let want = mid(&|z| 1.0 - (s * z).tanh().powi(2));
            let got = mean_slope(Phi::Tanh, q);
            assert!((got / want - 1.0).abs() < 1e-8, "q = {q}: {got} vs {want}");
            let want = mid(&|z| (1.0 - (s * z).tanh().powi(2)).powi(2));
            let got = backward(Phi::Tanh, q, q, q);
            assert!((got / want - 1.0).abs() < 1e-8, "q = {q}: {got} vs {want}");
        }
    }

    /// `E φ(u)` of the smooth maps against the midpoint rule (1-D, `h = 10⁻⁴` on `[−12, 12]`,
    /// exact to ~1e-12 for a smooth integrand); the maps are written out here again. The
    /// pair kernels cannot see a map replaced by `−φ(−u)` (`(u, v) → (−u, −v)` keeps the
    /// Gaussian), so only the mean tells silu from `u σ(−u)`. Bound: Gauss–Hermite on tanh,
    /// whose poles (±iπ/2) are nearer than silu's (±iπ) and gelu's (none), errs by ≤ 6e-8 on
    /// `E tanh²` at variance 1 (above); the variances here are at most 1. Relu is left out:
    /// its kink costs Gauss–Hermite digits (see `brute`).
    #[test]
    fn unit_means_match_the_midpoint_rule() {
        type Map = fn(f64) -> f64;
        let maps: [(Phi, Map); 3] = [
            (Phi::Gelu, |u| 0.5 * u * (1.0 + libm::erf(u / 2f64.sqrt()))),
            (Phi::Silu, |u| u / (1.0 + (-u).exp())),
            (Phi::Tanh, f64::tanh),
        ];
        for (p, f) in maps {
            for q in [0.5f64, 1.0] {
                let h = 1e-4;
                let want: f64 = (0..240_000)
                    .map(|k| {
                        let z = -12.0 + (k as f64 + 0.5) * h;
                        (-0.5 * z * z).exp() / (2.0 * PI).sqrt() * f(q.sqrt() * z) * h
                    })
                    .sum();
                let got = mean_value(p, q);
                assert!((got - want).abs() < 1e-7, "{p:?} q = {q}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn gelu_and_silu_reference_values() {
        // analysis/theory.md §2.3 at σ_w = 1, q = 1: gelu c_F = 0.42522, γ_F = 0.45585;
        // swiglu c_F = E silu² = 0.35578, γ_F = E silu'² + E silu² = 0.73526.
        assert!((forward(Phi::Gelu, 1.0, 1.0, 1.0) - 0.42522).abs() < 5e-6);
        assert!((backward(Phi::Gelu, 1.0, 1.0, 1.0) - 0.45585).abs() < 5e-6);
        let s2 = forward(Phi::Silu, 1.0, 1.0, 1.0);
        assert!((s2 - 0.35578).abs() < 5e-6);
        assert!((backward(Phi::Silu, 1.0, 1.0, 1.0) + s2 - 0.73526).abs() < 5e-6);
    }
}
