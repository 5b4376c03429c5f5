//! Gauss–Hermite quadrature for expectations over Gaussians (probabilists' weight
//! `exp(−z²/2)/√(2π)`), nodes and weights from the Golub–Welsch eigenproblem.

use std::sync::OnceLock;

/// Number of nodes: exact for polynomials of degree `2 · NODES − 1`; for the smooth
/// activations here (gelu, silu and their derivatives) 48 nodes reach `1e-10`.
pub const NODES: usize = 48;

/// `(nodes, weights)` with weights summing to 1.
pub fn rule() -> &'static (Vec<f64>, Vec<f64>) {
    static RULE: OnceLock<(Vec<f64>, Vec<f64>)> = OnceLock::new();
    RULE.get_or_init(|| golub_welsch(NODES))
}

/// The `m`-node rule: eigenvalues of the Jacobi matrix of the monic probabilists' Hermite
/// recurrence (off-diagonal `√k`), weights the squared first eigenvector components.
pub fn golub_welsch(m: usize) -> (Vec<f64>, Vec<f64>) {
    let jac = nalgebra::DMatrix::from_fn(m, m, |i, j| {
        if i + 1 == j || j + 1 == i {
            (i.max(j) as f64).sqrt()
        } else {
            0.0
        }
    });
    let eig = jac.symmetric_eigen();
    let mut pairs: Vec<(f64, f64)> = (0..m)
        .map(|k| (eig.eigenvalues[k], eig.eigenvectors[(0, k)].powi(2)))
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = pairs.iter().map(|p| p.1).sum();
    (
        pairs.iter().map(|p| p.0).collect(),
        pairs.iter().map(|p| p.1 / total).collect(),
    )
}

/// Six-point Gauss–Legendre on `[−1, 1]`: nodes and weights.
const GL6: [(f64, f64); 6] = [
    (-0.932_469_514_203_152, 0.171_324_492_379_170),
    (-0.661_209_386_466_265, 0.360_761_573_048_139),
    (-0.238_619_186_083_197, 0.467_913_934_572_691),
    (0.238_619_186_083_197, 0.467_913_934_572_691),
    (0.661_209_386_466_265, 0.360_761_573_048_139),
    (0.932_469_514_203_152, 0.171_324_492_379_170),
];

/// The Gaussian mass beyond `|z| = Z_MAX` (`2·10⁻¹⁹`) is left out of the composite rule.
const Z_MAX: f64 = 9.0;

/// How far out, in the argument `u` of the integrand, the composite rule keeps panels of
/// width 1: beyond `|u| = 20` the maps here are flat to `f64` precision (`tanh u = ±1`,
/// `sech² u < 10⁻¹⁶`, silu and gelu linear or zero up to `10⁻⁸` relative).
const U_FINE: f64 = 20.0;

/// Scales above which [`expect1_scaled`] and [`expect2`] leave Gauss–Hermite for the
/// composite rule: the maps' features (tanh's and silu's poles at `±iπ/2`, `±iπ`; gelu's
/// bend) have width about 1 in `u`, and at `u = s z` a 48-node Hermite rule resolves them
/// only while `s ≲ 1` (relative error of `E sech⁴(s z)`: `4·10⁻⁶` at `s = 1`, `10⁻³` at
/// 1.5, 0.96 at `s = 8.4`).
pub const HERMITE_MAX_SCALE: f64 = 1.0;

/// Nodes `z` and weights (the standard normal density included) of a composite six-point
/// Gauss–Legendre rule on `[−Z_MAX, Z_MAX]` for `E f(s z + o)` where `f` varies on a scale
/// of 1: panels of width ½ in `z`, refined to width 1 in `u = s z + o` where `|u| ≤ U_FINE`.
/// A panel of width 1 on a map analytic within `π/2` of the real axis gives relative
/// errors near `10⁻¹⁰` (Bernstein ellipse of parameter `ρ ≈ 6`, error `∝ ρ^{−12}`).
pub fn composite(s: f64, o: f64) -> Vec<(f64, f64)> {
    let mut cuts: Vec<f64> = (0..=36).map(|k| -Z_MAX + 0.5 * k as f64).collect();
    if s > 0.0 {
        let j0 = (-U_FINE).max(-Z_MAX * s + o).ceil() as i64;
        let j1 = U_FINE.min(Z_MAX * s + o).floor() as i64;
        cuts.extend((j0..=j1).map(|j| (j as f64 - o) / s));
    }
    cuts.retain(|z| z.abs() <= Z_MAX);
    cuts.sort_by(f64::total_cmp);
    cuts.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
    let density = |z: f64| (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let mut out = Vec::with_capacity(6 * cuts.len());
    for w in cuts.windows(2) {
        let (mid, half) = (0.5 * (w[0] + w[1]), 0.5 * (w[1] - w[0]));
        for &(x, wt) in &GL6 {
            let z = mid + half * x;
            out.push((z, wt * half * density(z)));
        }
    }
    out
}

/// `E f(s z)`, `z ~ N(0, 1)`, for a map `f` whose features have width about 1: Gauss–Hermite
/// up to [`HERMITE_MAX_SCALE`], the composite rule above it.
pub fn expect1_scaled(s: f64, f: impl Fn(f64) -> f64) -> f64 {
    if s <= HERMITE_MAX_SCALE {
        return expect1(|z| f(s * z));
    }
    composite(s, 0.0).iter().map(|&(z, w)| w * f(s * z)).sum()
}

/// `E f(z)`, `z ~ N(0, 1)`.
pub fn expect1(f: impl Fn(f64) -> f64) -> f64 {
    let (z, w) = rule();
    z.iter().zip(w).map(|(&z, &w)| w * f(z)).sum()
}

/// `E f(u) h(v)` for `(u, v)` jointly Gaussian with variances `qu`, `qv` and correlation `c`,
/// for maps whose features have width about 1: Gauss–Hermite while both standard deviations
/// are at most [`HERMITE_MAX_SCALE`], otherwise the composite rule in each variable
/// (`u = s_u z_1`, `v = s_v (c z_1 + √(1−c²) z_2)`), refined where `u` and `v` cross their
/// features; `|c| = 1` is one variable.
pub fn expect2(qu: f64, qv: f64, c: f64, f: impl Fn(f64) -> f64, h: impl Fn(f64) -> f64) -> f64 {
    let c = c.clamp(-1.0, 1.0);
    let s = (1.0 - c * c).max(0.0).sqrt();
    let (su, sv) = (qu.max(0.0).sqrt(), qv.max(0.0).sqrt());
    if su.max(sv) > HERMITE_MAX_SCALE {
        let outer = composite(su.max(sv * c.abs()), 0.0);
        if s == 0.0 {
            return outer
                .iter()
                .map(|&(z, w)| w * f(su * z) * h(sv * c * z))
                .sum();
        }
        return outer
            .iter()
            .map(|&(z1, w1)| {
                let o = sv * c * z1;
                let inner: f64 = if sv * s <= HERMITE_MAX_SCALE && o.abs() <= 1.0 {
                    expect1(|z2| h(o + sv * s * z2))
                } else {
                    composite(sv * s, o)
                        .iter()
                        .map(|&(z2, w2)| w2 * h(o + sv * s * z2))
                        .sum()
                };
                w1 * f(su * z1) * inner
            })
            .sum();
    }
    let (z, w) = rule();
    let mut acc = 0.0;
    for (&z1, &w1) in z.iter().zip(w) {
        let fu = f(su * z1);
        let mut inner = 0.0;
        for (&z2, &w2) in z.iter().zip(w) {
            inner += w2 * h(sv * (c * z1 + s * z2));
        }
        acc += w1 * fu * inner;
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The composite rule against a fine midpoint rule (step 10⁻⁴ on `[−10, 10]`, exact to
    /// about `10⁻⁹` for these smooth integrands) where Gauss–Hermite fails: `E sech⁴(s z)`
    /// and `E tanh(u) tanh(v)`, `E sech²(u) sech²(v)` at scales 2 … 16.
    #[test]
    fn the_composite_rule_resolves_sharp_maps() {
        let mid = |f: &dyn Fn(f64) -> f64| {
            let h = 1e-4;
            (0..200_000)
                .map(|k| {
                    let z = -10.0 + (k as f64 + 0.5) * h;
                    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt() * f(z) * h
                })
                .sum::<f64>()
        };
        let sech2 = |u: f64| 1.0 / u.cosh().powi(2);
        for s in [2.0f64, 4.0, 8.4, 16.0] {
            let want = mid(&|z| sech2(s * z).powi(2));
            let got = expect1_scaled(s, |u| sech2(u).powi(2));
            assert!((got / want - 1.0).abs() < 1e-8, "s = {s}: {got} vs {want}");
            // Gauss–Hermite alone is off by far more than that here (0.96 at s = 8.4).
            let gh = expect1(|z| sech2(s * z).powi(2));
            assert!((gh / want - 1.0).abs() > 1e-3, "s = {s}");
        }
        // Two variables: a coarse midpoint rule in z₂ inside the fine one in z₁ would be slow;
        // E[g(u) g(v)] at c = 0 factorizes, and at |c| = 1 is one variable.
        for (q, c) in [(16.0f64, 0.0f64), (70.0, 0.0), (70.0, 1.0), (70.0, -1.0)] {
            let s = q.sqrt();
            let one = mid(&|z| sech2(s * z));
            let want = if c == 0.0 {
                one * one
            } else {
                mid(&|z| sech2(s * z) * sech2(s * c * z))
            };
            let got = expect2(q, q, c, sech2, sech2);
            assert!(
                (got / want - 1.0).abs() < 1e-8,
                "({q}, {c}): {got} vs {want}"
            );
            let want_t = if c == 0.0 {
                0.0
            } else {
                mid(&|z| (s * z).tanh() * (s * c * z).tanh())
            };
            let got_t = expect2(q, q, c, f64::tanh, f64::tanh);
            assert!(
                (got_t - want_t).abs() < 1e-8,
                "({q}, {c}): {got_t} vs {want_t}"
            );
        }
    }

    #[test]
    fn moments_of_the_normal() {
        // Exact for polynomials: E z² = 1, E z⁴ = 3, E z⁶ = 15 (to rounding, ~1e-13).
        assert!((expect1(|z| z * z) - 1.0).abs() < 1e-12);
        assert!((expect1(|z| z.powi(4)) - 3.0).abs() < 1e-11);
        assert!((expect1(|z| z.powi(6)) - 15.0).abs() < 1e-10);
        // E[u v] = c √(qu qv); E[u² v²] = qu qv (1 + 2c²).
        let (qu, qv, c) = (2.0, 0.5, 0.3);
        assert!((expect2(qu, qv, c, |u| u, |v| v) - c).abs() < 1e-12);
        let want = qu * qv * (1.0 + 2.0 * c * c);
        assert!((expect2(qu, qv, c, |u| u * u, |v| v * v) - want).abs() < 1e-11);
    }
}
