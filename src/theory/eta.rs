//! The radial part `η` of the gradient at a trunk norm's output when attention above mixes
//! tokens (analysis/theory.md §2.10).
//!
//! A norm's Jacobian removes the component of its incoming gradient `gᵢ` along its output
//! `yᵢ` (`‖yᵢ‖² = d`), a fraction `η/d` of `‖g‖²` with `η = E(yᵢ·gᵢ)² / E‖gᵢ‖²`: 1 for a
//! gradient independent of `y`, 0 for one orthogonal to every token. Above a block output of
//! `post`, `span` or `deepnorm` the next block computes, per token,
//! `aⱼ = yⱼ + α Aⱼ(Y) (+ per-token homogeneous terms)`, then a per-token scale-invariant
//! map, so `aⱼ·∂ℓ/∂aⱼ = 0` for every token but `Σᵢ yᵢ·gᵢ = 0` only over all tokens: zero-query
//! attention `Aⱼ = ȳ W` carries `1/n` of each token to every other. Expanding
//! `Dᵢ = yᵢ·gᵢ` in the gradients `hⱼ` at the `aⱼ` (jointly Gaussian, isotropic, token
//! correlation `κ_h`), with `b = α² g_v g_o` (`/w²` for a residual weight `w`), `c = b m_ρ`,
//! `s = c/(1 + c)`, `m_ρ = (1 + (n − 1)ρ)/n`, `m_κ = (1 + (n − 1)κ_h)/n`:
//!
//! `E Dᵢ² = s² (1 − ρκ_h)(1 − 1/n) + b [m_κ (1 − 2 s m_ρ + s² m_ρ) + (1 − 2 m_κ) m_ρ/(1 + c)²]`,
//! `E ‖gᵢ‖² = 1 + b m_κ`,
//!
//! to leading order in `1/d`. For small `b` this is `η ≈ b (m_ρ + m_κ − 2 m_ρ m_κ)`; it
//! vanishes when tokens and gradients are both collapsed (`ρ = κ = 1`) and when both are
//! uncorrelated at large `n`. The gradient at `y` has correlation
//! `κ = (κ_h + b m_κ)/(1 + b m_κ)`; [`kappa_h`] inverts it, so `η` can be evaluated from the
//! correlations of the boundary and of its gradient, which [`crate::metrics::radial`]
//! measures in a simulation.
//!
//! Only bidirectional zero-query attention is covered: the causal mask gives each token its own
//! prefix mean, and softmax logits are not homogeneous, so there not even `Σᵢ yᵢ·gᵢ = 0`
//! holds.

/// `m = (1 + (n − 1) r)/n`: the mean of an exchangeable `n × n` correlation matrix with
/// off-diagonal `r`.
fn mean_of(r: f64, n: usize) -> f64 {
    let n = n as f64;
    (1.0 + (n - 1.0) * r) / n
}

/// The correlation `κ_h` of the gradients at the next block's pre-norm sums from the
/// correlation `kappa` of the gradient at the boundary (the relation in the module docs,
/// solved: it is linear in `κ_h`).
pub fn kappa_h(kappa: f64, n: usize, b: f64) -> f64 {
    let nf = n as f64;
    (kappa * (1.0 + b / nf) - b / nf) / (1.0 + b * (nf - 1.0) * (1.0 - kappa) / nf)
}

/// `η` at a block output: token correlation `rho` of the boundary, correlation `kappa` of the
/// gradient there, `n` tokens, and `b` the next block's attention power relative to its
/// residual (`α² g_v g_o / w²`; 1 for `post` at fan-in init).
pub fn block_output(rho: f64, kappa: f64, n: usize, b: f64) -> f64 {
    let kh = kappa_h(kappa, n, b);
    let (mr, mk) = (mean_of(rho, n), mean_of(kh, n));
    let c = b * mr;
    let s = c / (1.0 + c);
    let radial = s * s * (1.0 - rho * kh) * (1.0 - 1.0 / n as f64)
        + b * (mk * (1.0 - 2.0 * s * mr + s * s * mr) + (1.0 - 2.0 * mk) * mr / (1.0 + c).powi(2));
    radial / (1.0 + b * mk)
}

/// The small-`b` form `b (m_ρ + m_κ − 2 m_ρ m_κ)` of [`block_output`], with the boundary's
/// gradient correlation `kappa` in place of `κ_h` (they differ at `O(b)`): exact to `O(b²)`.
pub fn leading_order(rho: f64, kappa: f64, n: usize, b: f64) -> f64 {
    let (mr, mk) = (mean_of(rho, n), mean_of(kappa, n));
    b * (mr + mk - 2.0 * mr * mk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    /// `E Dᵢ²` summed term by term from the vectors `vᵢⱼ` with `Dᵢ = Σⱼ vᵢⱼ·hⱼ` (theory.md
    /// §2.10): coordinates on the tokens `yₖ` and on their images `yₖW`, whose Gram
    /// matrices are `R` and `b R`; an independent route to the closed form.
    fn radial_by_terms(rho: f64, kh: f64, n: usize, b: f64) -> f64 {
        let r = Array2::from_shape_fn((n, n), |(i, j)| if i == j { 1.0 } else { rho });
        let gam = Array2::from_shape_fn((n, n), |(i, j)| if i == j { 1.0 } else { kh });
        let nf = n as f64;
        let a = b.sqrt();
        let c = b * mean_of(rho, n);
        let s = c / (1.0 + c);
        let u = Array1::from_elem(n, 1.0 / nf);
        let e = |k: usize| Array1::from_shape_fn(n, |m| f64::from(u8::from(m == k)));
        let i = 0;
        let v = |j: usize| -> (Array1<f64>, Array1<f64>) {
            if j == i {
                (
                    e(i) * (s * (1.0 - 1.0 / nf)),
                    &u * (-a / (1.0 + c)) + e(i) * (a / nf) - &u * (s * a / nf),
                )
            } else {
                (e(j) * (-s / nf), e(i) * (a / nf) - &u * (s * a / nf))
            }
        };
        let mut total = 0.0;
        for j in 0..n {
            for k in 0..n {
                let ((yj, wj), (yk, wk)) = (v(j), v(k));
                // b R is the W-side Gram with the gain already in the coordinates' a.
                total += gam[[j, k]] * (yj.dot(&r.dot(&yk)) + wj.dot(&r.dot(&wk)));
            }
        }
        total
    }

    #[test]
    fn the_closed_form_sums_the_terms() {
        for &(rho, kh, n, b) in &[
            (0.2, 0.77, 16, 1.0),
            (0.9, 0.3, 8, 1.0),
            (0.3, 0.1, 8, 0.05),
            (0.0, 0.0, 4, 2.0),
        ] {
            let mk = mean_of(kh, n);
            // Evaluate at the κ whose κ_h is `kh`.
            let kappa = (kh + b * mk) / (1.0 + b * mk);
            assert!((kappa_h(kappa, n, b) - kh).abs() < 1e-12);
            let by_terms = radial_by_terms(rho, kh, n, b) / (1.0 + b * mk);
            let closed = block_output(rho, kappa, n, b);
            assert!(
                (closed - by_terms).abs() < 1e-12,
                "{rho} {kh} {n} {b}: {closed} vs {by_terms}"
            );
        }
    }

    #[test]
    fn limits() {
        // Tokens and gradients collapsed: scaling one token is scaling them all.
        for b in [0.01, 1.0, 4.0] {
            assert!(block_output(1.0, 1.0, 16, b).abs() < 1e-12);
        }
        // No attention above: nothing mixes tokens.
        assert_eq!(block_output(0.4, 0.7, 16, 0.0), 0.0);
        // Small b: η ≈ b (m_ρ + m_κ − 2 m_ρ m_κ), to O(b²).
        let (rho, kappa, n) = (0.3, 0.2, 16);
        let lead = |b: f64| leading_order(rho, kappa, n, b);
        for b in [1e-2, 1e-3] {
            let rel = (block_output(rho, kappa, n, b) / lead(b) - 1.0).abs();
            assert!(rel < 3.0 * b, "b = {b}: relative gap {rel}");
        }
        // Uncorrelated tokens and gradients: η → 0 like 1/n.
        let big = block_output(0.0, 0.0, 4096, 1.0);
        assert!(big > 0.0 && big < 2.0 / 4096.0, "{big}");
    }
}
