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

/// The power `p/w²` that a block's attention adds to its residual before the block's first
/// norm, in units of `g_v g_o`: `b = g_v g_o · attention_power(…)` in [`block_output`]. Read
/// off the block's formula by running it on an abstract tape, so every placement gets it from
/// the same definition that simulates it: `post` gives `α²`, `span` `α²` (its feed-forward
/// network acts per token on `x + α A(x)`), `deepnorm` `α²/w²` (and `β⁴` in the gains),
/// `admin` `α²/ω²`. `None` where the block's first norm does not see `w x + α A(x)` (plus
/// per-token terms of it): a norm on `x` alone, attention of a mixed value, DyT.
pub fn attention_power(
    def: &crate::lang::Definition,
    c: &crate::placement::BlockCtx,
) -> Option<f64> {
    let mut t = Mixing::default();
    let x = t.push(Val::Lin { w: 1.0, p: 0.0 });
    def.block(&mut t, x, c);
    t.first_norm.flatten()
}

/// A value of a block, as far as [`attention_power`] follows it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Val {
    /// `w x + √p · x̄ W` (zero-query attention of `x` with power `p` per unit `g_v g_o`).
    Lin { w: f64, p: f64 },
    /// A sum of the `Lin` value at node `of` and per-token homogeneous maps of it.
    PerToken { of: usize },
    /// Anything else.
    Other,
}

/// [`crate::block::BlockOps`] on [`Val`]s: records the power ratio at the first norm.
#[derive(Default)]
struct Mixing {
    vals: Vec<Val>,
    /// `None` before the first norm; then its `p/w²`, or `None` if it does not apply.
    first_norm: Option<Option<f64>>,
}

impl Mixing {
    fn push(&mut self, v: Val) -> usize {
        self.vals.push(v);
        self.vals.len() - 1
    }

    /// The node a per-token map of `x` is a map of.
    fn base(&self, x: usize) -> Option<usize> {
        match self.vals[x] {
            Val::Lin { .. } => Some(x),
            Val::PerToken { of } => Some(of),
            Val::Other => None,
        }
    }

    fn normalize(&mut self, x: usize) -> usize {
        if self.first_norm.is_none() {
            let ratio = self.base(x).and_then(|b| match self.vals[b] {
                Val::Lin { w, p } if p > 0.0 && w != 0.0 => Some(p / (w * w)),
                _ => None,
            });
            self.first_norm = Some(ratio);
        }
        self.push(Val::Other)
    }

    fn per_token(&mut self, x: usize) -> usize {
        let v = match self.base(x) {
            Some(of) => Val::PerToken { of },
            None => Val::Other,
        };
        self.push(v)
    }
}

impl crate::block::BlockOps for Mixing {
    type Node = usize;

    fn norm_gain(&mut self, x: usize, _gain: f64) -> usize {
        self.normalize(x)
    }

    fn closing_norm(&mut self, x: usize) -> usize {
        self.normalize(x)
    }

    fn norm_as(&mut self, x: usize, kind: crate::normop::NormKind, _gain: f64) -> usize {
        if kind == crate::normop::NormKind::Dyt {
            // Not scale-invariant: the derivation does not apply.
            self.first_norm.get_or_insert(None);
            return self.push(Val::Other);
        }
        self.normalize(x)
    }

    fn probe_pre_norm(&mut self, _x: usize) {}

    fn attn(&mut self, x: usize) -> usize {
        let v = match self.vals[x] {
            Val::Lin { w, p: 0.0 } => Val::Lin { w: 0.0, p: w * w },
            _ => Val::Other,
        };
        self.push(v)
    }

    fn ffn(&mut self, x: usize) -> usize {
        self.per_token(x)
    }

    fn scale(&mut self, c: f64, x: usize) -> usize {
        let v = match self.vals[x] {
            Val::Lin { w, p } => Val::Lin {
                w: c * w,
                p: c * c * p,
            },
            v => v,
        };
        self.push(v)
    }

    fn add(&mut self, xs: &[usize]) -> usize {
        // `Lin` terms add (at most one carrying attention: two would be correlated); per-token
        // maps of one `Lin` node absorb that node.
        let lins: Vec<(f64, f64)> = xs
            .iter()
            .filter_map(|&x| match self.vals[x] {
                Val::Lin { w, p } => Some((w, p)),
                _ => None,
            })
            .collect();
        let bases: Vec<usize> = xs
            .iter()
            .filter_map(|&x| match self.vals[x] {
                Val::PerToken { of } => Some(of),
                _ => None,
            })
            .collect();
        let v = if xs.iter().any(|&x| self.vals[x] == Val::Other) {
            Val::Other
        } else if bases.is_empty() {
            if lins.iter().filter(|l| l.1 > 0.0).count() > 1 {
                Val::Other
            } else {
                Val::Lin {
                    w: lins.iter().map(|l| l.0).sum(),
                    p: lins.iter().map(|l| l.1).sum(),
                }
            }
        } else if bases.iter().all(|&b| b == bases[0])
            && xs
                .iter()
                .filter(|&&x| matches!(self.vals[x], Val::Lin { .. }))
                .all(|&x| x == bases[0])
        {
            Val::PerToken { of: bases[0] }
        } else {
            Val::Other
        };
        self.push(v)
    }
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

    #[test]
    fn attention_power_is_read_off_the_formulas() {
        use crate::lang::Definition;
        use crate::placement::BlockCtx;
        let c = BlockCtx {
            l: 3,
            depth: 8,
            alpha: 0.5,
            inner_norm: false,
            width: 64,
            tokens: 8,
            omega: [2.0, 3.0],
        };
        let power = |block: &str| {
            let def = Definition::from_formulas(block, None).unwrap();
            attention_power(&def, &c)
        };
        // post, span, deepnorm (residual weight 2), admin (ω_attn = 2): α²/w².
        assert_eq!(
            power("h = norm(x + a*attn(x)); y = norm(h + a*ffn(h))"),
            Some(0.25)
        );
        assert_eq!(
            power("h = x + a*attn(x); o = h + a*ffn(h); y = norm(o)"),
            Some(0.25)
        );
        assert_eq!(
            power("w = 2; h = norm(w*x + a*attn(x)); y = norm(w*h + a*ffn(h))"),
            Some(0.0625)
        );
        assert_eq!(
            power("h = norm(omega_attn*x + a*attn(x)); y = norm(omega_ffn*h + a*ffn(h))"),
            Some(0.0625)
        );
        // A scaled branch: (2α)² of the attention.
        assert_eq!(power("y = norm(x + 2*a*attn(x))"), Some(1.0));
        // Not of the derived form: a norm on x alone (pre, span's inner-norm variant),
        // attention twice (correlated terms), a per-token term of x beside the attention
        // (the residual's power is no longer x's), DyT.
        for block in [
            "h = x + a*attn(norm(x)); y = h + a*ffn(norm(h))",
            "h = x + a*attn(x); y = norm(h + a*attn(h))",
            "y = norm(x + a*attn(x) + a*attn(x))",
            "y = norm(x + a*ffn(x) + a*attn(x))",
            "y = dyt(x + a*attn(x))",
        ] {
            assert_eq!(power(block), None, "{block}");
        }
    }
}
