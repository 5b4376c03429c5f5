//! Mean-field maps of the sublayers' inner norms ([`crate::sublayer`]; `analysis/theory.md`
//! §2.8): QK-norm, V-norm and the norm before `W_o` in attention, the hidden norm of the
//! feed-forward network.
//!
//! A norm inside a sublayer sees a fresh projection of its input, so it acts on a known
//! kernel: per token it divides by the root mean square, `K ↦ K ⊙ c cᵀ` with
//! `c_i = 1/sqrt(K_ii + ε)`, and backward it multiplies the gradient kernel by the same
//! `c cᵀ` and removes the fraction `1/m` of an independent gradient along its output (`m`
//! the width it normalizes: `d`, `d_h` or `d_ff`; theory.md §2.2).
//!
//! - QK-norm: the logits' within-row variance is `1 − ρ` instead of `g_q g_k q² (1 − ρ)`
//!   (the normalized queries and keys have unit second moment); the score path's gradient
//!   is divided by `g_q g_k q²` accordingly. Under `zero-query` the queries are 0 and stay
//!   0 (a norm of 0 is 0): attention is exactly uniform and the input gradient has no score
//!   path, as without the norm.
//! - V-norm: the values' kernel is the normalized `g_v K`; backward the value path is
//!   multiplied by `c cᵀ (1 − 1/m)`.
//! - out-norm: the heads' output `O = P V` is normalized before `W_o`.
//! - hidden norm: layernorm centres the hidden units, whose mean `E φ(u)` is not 0 for relu
//!   and gelu: the centred kernel is `K^φ − m mᵀ`, `m_i = E φ(u_i)`.
//!
//! Exact under `zero-query` (uniform attention) and for the feed-forward network up to the
//! `O(1/m)` terms; with softmax attention on the bidirectional mask the §2.5.3
//! approximation carries over; softmax with the causal mask and inner norms is refused.
//! Weight gradients of a sublayer with inner norms are not predicted.

use super::attention::{p2, uniform};
use super::dual::{self, Phi};
use super::tape::{entrywise, plain_phi, q_rho, ParamGrads, TheoryTape};
use crate::ffn::Activation;
use crate::norm::{Norm, EPS};
use crate::sublayer::Inner;
use crate::weight::WeightName;
use ndarray::{Array1, Array2};

/// `1/sqrt(K_ii + ε)` per token (the norm's `ε`; `head-l2`'s `ε₂/d_h` is below rounding).
fn coef(k: &Array2<f64>) -> Array1<f64> {
    Array1::from_shape_fn(k.nrows(), |i| 1.0 / (k[[i, i]] + EPS).sqrt())
}

/// `K ⊙ c cᵀ`.
fn normalized(k: &Array2<f64>, c: &Array1<f64>) -> Array2<f64> {
    Array2::from_shape_fn(k.raw_dim(), |(i, j)| k[[i, j]] * c[i] * c[j])
}

impl TheoryTape<'_> {
    /// The width an inner norm normalizes over.
    fn group_width(&self, inner: Inner) -> f64 {
        match inner {
            Inner::HeadNorm | Inner::HeadL2 => (self.ctx.d / self.ctx.heads) as f64,
            _ => self.ctx.d as f64,
        }
    }

    fn no_params(names: &[WeightName]) -> ParamGrads {
        names.iter().map(|&w| (w, None)).collect()
    }

    /// Exchangeable softmax with QK-norm: `(P_2, c_s)` from the logit gain.
    fn softmax_logits(&mut self, q: f64, rho: f64) -> (f64, f64, f64) {
        let c = self.ctx;
        let gain = if c.attn_opts.qk == Inner::None {
            c.g_q * c.g_k * q * q
        } else {
            1.0
        };
        let var = gain * (1.0 - rho);
        if var > 1.0 || (c.n as f64) < (4.0 * var).exp() {
            self.fail(
                super::Refusal::SoftmaxRegime,
                format!(
                    "softmax attention outside the near-uniform regime (within-row logit variance \
                 {var:.3}: needs ≤ 1 and n = {} ≥ e^(4·variance) = {:.1}; see \
                 analysis/theory.md §2.5.3)",
                    c.n,
                    (4.0 * var).exp()
                ),
            );
        }
        (gain, p2(var.min(4.0), c.n), gain * rho * (1.0 - rho))
    }

    /// The kernel of attention's output with inner norms, on input kernel `k`.
    pub(super) fn attn_inner_forward(&mut self, k: &Array2<f64>) -> Array2<f64> {
        let c = self.ctx;
        let o = c.attn_opts;
        if !c.zero_query && !c.exchangeable {
            self.fail(
                super::Refusal::NotDerived,
                "softmax attention with the causal mask and norms inside attention: the Monte \
                 Carlo logits of §2.5.5 take one kernel for logits and values; not derived \
                 (zero-query or the bidirectional mask are)"
                    .into(),
            );
            return Array2::zeros(k.raw_dim());
        }
        let kv_raw = k * c.g_v;
        let kv = match o.v {
            Inner::None => kv_raw,
            _ => normalized(&kv_raw, &coef(&kv_raw)),
        };
        let ko = if c.zero_query {
            let p = uniform(c.n, c.mask);
            p.dot(&kv).dot(&p.t())
        } else {
            let (q, rho) = q_rho(k);
            let (_, p2v, cs) = self.softmax_logits(q, rho);
            let (qv, rv) = q_rho(&kv);
            self.softmax_pkp(qv, rv, p2v, cs)
        };
        let ko = match o.out {
            Inner::None => ko,
            _ => normalized(&ko, &coef(&ko)),
        };
        ko * c.g_o
    }

    /// The gradient kernel at attention's input with inner norms, from `gy` at its output.
    pub(super) fn attn_inner_backward(
        &self,
        k: &Array2<f64>,
        gy: &Array2<f64>,
    ) -> (Array2<f64>, ParamGrads) {
        let c = self.ctx;
        let o = c.attn_opts;
        let n = c.n;
        let params = Self::no_params(&WeightName::ATTN);
        let kv_raw = k * c.g_v;
        let cv = coef(&kv_raw);
        let kv = match o.v {
            Inner::None => kv_raw.clone(),
            _ => normalized(&kv_raw, &cv),
        };
        // Through W_o, then the out-norm (projection 1 − 1/m of an independent gradient).
        let mut go = gy * c.g_o;
        let mut back_out = 1.0;
        if o.out != Inner::None {
            let ko = if c.zero_query {
                let p = uniform(n, c.mask);
                p.dot(&kv).dot(&p.t())
            } else {
                let (q, rho) = q_rho(k);
                let gain = if o.qk == Inner::None {
                    c.g_q * c.g_k * q * q
                } else {
                    1.0
                };
                let var = gain * (1.0 - rho);
                let (qv, rv) = q_rho(&kv);
                self.softmax_pkp(qv, rv, p2(var.min(4.0), n), gain * rho * (1.0 - rho))
            };
            let co = coef(&ko);
            go = normalized(&go, &co) * (1.0 - 1.0 / self.group_width(o.out));
            back_out = co[0] * co[0] * (1.0 - 1.0 / self.group_width(o.out));
        }
        // The value path back to V, then the V-norm and W_v.
        let v_back = |g: Array2<f64>| -> Array2<f64> {
            let g = match o.v {
                Inner::None => g,
                _ => normalized(&g, &cv) * (1.0 - 1.0 / self.group_width(o.v)),
            };
            g * c.g_v
        };
        if c.zero_query {
            let p = uniform(n, c.mask);
            return (v_back(p.t().dot(&go).dot(&p)), params);
        }
        // Exchangeable softmax (the causal mask was refused forward): theory.md §2.5.3 with
        // the logit gain of the QK-norm and the factors of the value and output norms.
        let (q, rho) = q_rho(k);
        let logit = if o.qk == Inner::None {
            c.g_q * c.g_k * q * q
        } else {
            1.0
        };
        let var = logit * (1.0 - rho);
        let p2v = p2(var.min(4.0), n);
        let cs = logit * rho * (1.0 - rho);
        let (gq, kappa) = {
            let (a, r) = q_rho(&go);
            (a * n as f64, r)
        };
        let nf = n as f64;
        let diag = (gq / nf) * (p2v + kappa * cs.exp() * (1.0 - 1.0 / nf));
        let off = (gq / nf) * ((1.0 - p2v) / (nf - 1.0) + kappa * (1.0 - cs.exp() / nf));
        let value = v_back(Array2::from_shape_fn((n, n), |(i, j)| {
            if i == j {
                diag
            } else {
                off
            }
        }));
        // Score path: (second moment of the values) (keys' and queries' backward gains)
        // (1 − ρ)(…); with QK-norm the keys have unit second moment and the query norm
        // divides by g_q q.
        let (qv, _) = q_rho(&kv);
        let kq = if o.qk == Inner::None {
            c.g_q * c.g_k * q
        } else {
            (1.0 - 1.0 / self.group_width(o.qk)) / q
        };
        let gamma_scale = if o.out == Inner::None { 1.0 } else { back_out };
        let score = qv
            * kq
            * c.g_o
            * gamma_scale
            * (1.0 - rho)
            * ((1.0 - rho) * p2v + kappa * rho + (1.0 - kappa * rho) * p2v)
            * (gy.diag().sum() / nf);
        let gin = Array2::from_shape_fn((n, n), |(i, j)| {
            value[[i, j]] + if i == j { score } else { 0.0 }
        });
        (gin, params)
    }

    /// The feed-forward network with a hidden norm: its output kernel on `k`, and (with
    /// `gy`, the gradient kernel at its output) the gradient kernel at its input.
    pub(super) fn ffn_inner(
        &self,
        k: &Array2<f64>,
        gy: Option<&Array2<f64>>,
    ) -> (Array2<f64>, (Array2<f64>, ParamGrads)) {
        let c = self.ctx;
        let ex = c.exchangeable;
        let dff = c.d_ff as f64;
        let mut names = vec![WeightName::FfnW1, WeightName::FfnW2];
        if c.act == Activation::Swiglu {
            names.push(WeightName::FfnWg);
        }
        let params = Self::no_params(&names);
        let (hidden, mean) = match plain_phi(c.act) {
            Some(phi) => {
                let q = k * c.g_1;
                let m = Array1::from_shape_fn(c.n, |i| dual::mean_value(phi, q[[i, i]]));
                (entrywise(&q, ex, |a, b, v| dual::forward(phi, a, b, v)), m)
            }
            None => {
                // swiglu's hidden unit silu(g)·u has mean 0 (u is independent of g).
                let qg = k * c.g_g;
                let s_val = entrywise(&qg, ex, |a, b, v| dual::forward(Phi::Silu, a, b, v));
                (&s_val * k * c.g_1, Array1::zeros(c.n))
            }
        };
        let centred = match c.norm {
            Norm::Layernorm => Array2::from_shape_fn(hidden.raw_dim(), |(i, j)| {
                hidden[[i, j]] - mean[i] * mean[j]
            }),
            Norm::Rmsnorm => hidden,
        };
        let cz = coef(&centred);
        let out = normalized(&centred, &cz) * c.g_2;
        let Some(gy) = gy else {
            return (out, (Array2::zeros(k.raw_dim()), params));
        };
        let gz = normalized(&(gy * c.g_2), &cz) * (1.0 - 1.0 / dff);
        let gin = match plain_phi(c.act) {
            Some(phi) => {
                let q = k * c.g_1;
                let slope = entrywise(&q, ex, |a, b, x| dual::backward(phi, a, b, x));
                &slope * &gz * c.g_1
            }
            None => {
                let qg = k * c.g_g;
                let s_val = entrywise(&qg, ex, |a, b, x| dual::forward(Phi::Silu, a, b, x));
                let s_slope = entrywise(&qg, ex, |a, b, x| dual::backward(Phi::Silu, a, b, x));
                let up = k * c.g_1;
                let g_gate = &(&up * &s_slope) * &gz;
                let g_up = &s_val * &gz;
                &g_gate * c.g_g + &g_up * c.g_1
            }
        };
        (out, (gin, params))
    }
}
