//! Norms inside the sublayers: options of attention and of the feed-forward network that a
//! placement file sets (`"attention": {"qk-norm": "norm"}`), with their forward and exact
//! backward passes. Without options the plain [`crate::attention`] and [`crate::ffn`] run.
//!
//! # Formula
//! With `M` the configured norm (`--norm`) and `M_h` the same norm applied to each head's
//! `d_h` columns separately:
//! - `qk-norm`: `norm` → `Q = M(X W_q)`, `K = M(X W_k)` over the full width (OLMo 2);
//!   `head-norm` → `M_h` (HybridNorm's QK part); `head-l2` → each head's rows to unit length
//!   and logits times `√d_h` (nGPT), computed as the per-head `l2norm` with gain `√d_h`
//!   under the usual `1/√d_h`.
//! - `v-norm`: the same choices for `V = X W_v` (HybridNorm: `head-norm`).
//! - `out-norm`: `norm` → `A(X) = M(concat_h P_h V_h) W_o`, a norm before the output
//!   projection (Sub-LN).
//! - `hidden-norm` (feed-forward): `norm` → `F(X) = M(φ(X W_1)) W_2` (NormFormer's norm
//!   after the activation, Sub-LN's norm before `W_2`; for swiglu `M` acts on
//!   `silu(X W_g) ⊙ X W_1`).

use crate::attention::{self, AttnWeights, Mask};
use crate::choice_enum;
use crate::ffn::{self, Activation, FfnWeights};
use crate::norm::Norm;
use crate::normop::{self, NormKind, NormOpCache};
use crate::real::Real;
use ndarray::{s, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

choice_enum!(
    /// Where a norm sits inside a sublayer, and over which columns.
    #[derive(Default)]
    Inner, "inner norm", {
        /// No norm.
        #[default]
        None => "none",
        /// The configured norm over the full width.
        Norm => "norm",
        /// The configured norm over each head's columns.
        HeadNorm => "head-norm",
        /// Each head's rows to unit length, times `√d_h`.
        HeadL2 => "head-l2",
    }
);

impl Inner {
    fn is_none(&self) -> bool {
        *self == Inner::None
    }
}

/// Norms inside attention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AttnOptions {
    /// On the queries and keys.
    #[serde(default, rename = "qk-norm", skip_serializing_if = "Inner::is_none")]
    pub qk: Inner,
    /// On the values.
    #[serde(default, rename = "v-norm", skip_serializing_if = "Inner::is_none")]
    pub v: Inner,
    /// On the heads' concatenated output, before `W_o`.
    #[serde(default, rename = "out-norm", skip_serializing_if = "Inner::is_none")]
    pub out: Inner,
}

/// Norms inside the feed-forward network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FfnOptions {
    /// On the hidden activation, before `W_2`.
    #[serde(
        default,
        rename = "hidden-norm",
        skip_serializing_if = "Inner::is_none"
    )]
    pub hidden: Inner,
}

impl AttnOptions {
    /// Whether every option is off (the plain attention of [`crate::attention`]).
    pub fn is_plain(&self) -> bool {
        *self == AttnOptions::default()
    }
}

impl FfnOptions {
    /// Whether every option is off (the plain network of [`crate::ffn`]).
    pub fn is_plain(&self) -> bool {
        *self == FfnOptions::default()
    }
}

/// A norm over groups of columns: the whole width (`norm`), each head (`head-norm`), or each
/// head's rows to unit length times `√d_h` (`head-l2`).
#[derive(Clone, Debug)]
struct GroupCache<T> {
    /// One cache per group of columns, with the group's first column.
    groups: Vec<(usize, NormOpCache<T>)>,
}

fn group_forward<T: Real>(
    inner: Inner,
    norm: Norm,
    x: ArrayView2<T>,
    heads: usize,
) -> (Array2<T>, GroupCache<T>) {
    let d = x.ncols();
    let (count, kind, gain) = match inner {
        Inner::None | Inner::Norm => (1, NormKind::Configured, 1.0),
        Inner::HeadNorm => (heads, NormKind::Configured, 1.0),
        Inner::HeadL2 => (heads, NormKind::L2, ((d / heads) as f64).sqrt()),
    };
    let w = d / count;
    let mut y = Array2::zeros(x.raw_dim());
    let mut groups = Vec::with_capacity(count);
    for g in 0..count {
        let cols = s![.., g * w..(g + 1) * w];
        let (yg, c) = normop::forward(kind, norm, 0.0, x.slice(cols), T::of(gain));
        y.slice_mut(cols).assign(&yg);
        groups.push((g * w, c));
    }
    (y, GroupCache { groups })
}

fn group_backward<T: Real>(cache: &GroupCache<T>, g: ArrayView2<T>) -> Array2<T> {
    let mut gx = Array2::zeros(g.raw_dim());
    let w = g.ncols() / cache.groups.len();
    for (start, c) in &cache.groups {
        let cols = s![.., *start..*start + w];
        gx.slice_mut(cols)
            .assign(&normop::backward(c, g.slice(cols)));
    }
    gx
}

/// `n(y)` for an inner norm `inner`: `y` itself when there is none.
fn maybe<T: Real>(
    inner: Inner,
    norm: Norm,
    y: Array2<T>,
    heads: usize,
) -> (Array2<T>, Option<GroupCache<T>>) {
    if inner == Inner::None {
        return (y, None);
    }
    let (out, c) = group_forward(inner, norm, y.view(), heads);
    (out, Some(c))
}

fn maybe_back<T: Real>(cache: &Option<GroupCache<T>>, g: Array2<T>) -> Array2<T> {
    match cache {
        None => g,
        Some(c) => group_backward(c, g.view()),
    }
}

/// What the backward pass of attention with inner norms needs besides its input.
#[derive(Clone, Debug)]
pub struct AttnOptCache<T> {
    q: Array2<T>,
    k: Array2<T>,
    v: Array2<T>,
    p: Vec<Array2<T>>,
    /// `concat_h(P_h V_h)` after the out-norm, the input of `W_o`.
    o: Array2<T>,
    qc: Option<GroupCache<T>>,
    kc: Option<GroupCache<T>>,
    vc: Option<GroupCache<T>>,
    oc: Option<GroupCache<T>>,
    /// The largest attention logit over heads and unmasked pairs.
    max_logit: f64,
}

/// `A(X)` with the inner norms of `opts` (`norm` the configured norm), and its cache.
pub fn attn_forward<T: Real>(
    w: &AttnWeights<T>,
    opts: AttnOptions,
    norm: Norm,
    x: ArrayView2<T>,
    heads: usize,
    mask: Mask,
) -> (Array2<T>, AttnOptCache<T>) {
    let (q, qc) = maybe(opts.qk, norm, x.dot(&w.w_q), heads);
    let (k, kc) = maybe(opts.qk, norm, x.dot(&w.w_k), heads);
    let (v, vc) = maybe(opts.v, norm, x.dot(&w.w_v), heads);
    let (o, p, max_logit) = attention::mix_heads(&q, &k, &v, heads, mask);
    let (o, oc) = maybe(opts.out, norm, o, heads);
    let out = o.dot(&w.w_o);
    (
        out,
        AttnOptCache {
            q,
            k,
            v,
            p,
            o,
            qc,
            kc,
            vc,
            oc,
            max_logit,
        },
    )
}

impl<T> AttnOptCache<T> {
    /// The attention matrices, one per head.
    pub fn probs(&self) -> &[Array2<T>] {
        &self.p
    }

    /// The largest attention logit over heads and unmasked pairs.
    pub fn max_logit(&self) -> f64 {
        self.max_logit
    }
}

/// `∂ℓ/∂X` and the weight gradients of [`attn_forward`], from `∂ℓ/∂A(X)`.
pub fn attn_backward<T: Real>(
    w: &AttnWeights<T>,
    cache: &AttnOptCache<T>,
    x: ArrayView2<T>,
    g_out: ArrayView2<T>,
    heads: usize,
) -> (Array2<T>, AttnWeights<T>) {
    debug_assert_eq!(cache.p.len(), heads);
    let gw_o = cache.o.t().dot(&g_out);
    let g_o = maybe_back(&cache.oc, g_out.dot(&w.w_o.t()));
    let (gq, gk, gv) = attention::mix_heads_backward(&cache.p, &cache.q, &cache.k, &cache.v, &g_o);
    let gq = maybe_back(&cache.qc, gq);
    let gk = maybe_back(&cache.kc, gk);
    let gv = maybe_back(&cache.vc, gv);
    let gx = gq.dot(&w.w_q.t()) + gk.dot(&w.w_k.t()) + gv.dot(&w.w_v.t());
    let grads = AttnWeights {
        w_q: x.t().dot(&gq),
        w_k: x.t().dot(&gk),
        w_v: x.t().dot(&gv),
        w_o: gw_o,
    };
    (gx, grads)
}

/// What the backward pass of a feed-forward network with a hidden norm needs.
#[derive(Clone, Debug)]
pub struct FfnOptCache<T> {
    h: Array2<T>,
    gate: Option<Array2<T>>,
    /// The normalized hidden activation, the input of `W_2`.
    z: Array2<T>,
    zc: Option<GroupCache<T>>,
}

/// `F(X) = M(φ(X W_1)) W_2` (swiglu: `M(silu(X W_g) ⊙ X W_1) W_2`) with the options' hidden
/// norm, and its cache.
pub fn ffn_forward<T: Real>(
    w: &FfnWeights<T>,
    a: Activation,
    opts: FfnOptions,
    norm: Norm,
    x: ArrayView2<T>,
) -> (Array2<T>, FfnOptCache<T>) {
    let h = x.dot(&w.w_1);
    let gate = match (&w.w_g, a) {
        (Some(wg), Activation::Swiglu) => Some(x.dot(wg)),
        _ => None,
    };
    let z = ffn::activate(a, &h, gate.as_ref());
    let (z, zc) = maybe(opts.hidden, norm, z, 1);
    let out = z.dot(&w.w_2);
    (out, FfnOptCache { h, gate, z, zc })
}

/// `∂ℓ/∂X` and the weight gradients of [`ffn_forward`], from `∂ℓ/∂F(X)`.
pub fn ffn_backward<T: Real>(
    w: &FfnWeights<T>,
    a: Activation,
    cache: &FfnOptCache<T>,
    x: ArrayView2<T>,
    g_out: ArrayView2<T>,
) -> (Array2<T>, FfnWeights<T>) {
    let gw_2 = cache.z.t().dot(&g_out);
    let mut gh = maybe_back(&cache.zc, g_out.dot(&w.w_2.t()));
    let gate = match &w.w_g {
        Some(_) => cache.gate.as_ref(),
        None => None,
    };
    let (gx, gw_g) = match (&w.w_g, ffn::activate_backward(a, &mut gh, &cache.h, gate)) {
        (Some(wg), Some(gg)) => (gg.dot(&wg.t()), Some(x.t().dot(&gg))),
        _ => (Array2::zeros(x.raw_dim()), None),
    };
    let gx = gx + gh.dot(&w.w_1.t());
    let grads = FfnWeights {
        w_1: x.t().dot(&gh),
        w_2: gw_2,
        w_g: gw_g,
    };
    (gx, grads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{gaussian, stream_rng};

    fn weights() -> (AttnWeights<f64>, FfnWeights<f64>) {
        let mut rng = stream_rng(3, 1, 2);
        let attn = AttnWeights {
            w_q: gaussian(&mut rng, 8, 8, 0.4),
            w_k: gaussian(&mut rng, 8, 8, 0.4),
            w_v: gaussian(&mut rng, 8, 8, 0.4),
            w_o: gaussian(&mut rng, 8, 8, 0.4),
        };
        let ffn = FfnWeights {
            w_1: gaussian(&mut rng, 8, 12, 0.4),
            w_2: gaussian(&mut rng, 12, 8, 0.4),
            w_g: Some(gaussian(&mut rng, 8, 12, 0.4)),
        };
        (attn, ffn)
    }

    #[test]
    fn without_options_the_sublayers_are_the_plain_ones() {
        let (aw, fw) = weights();
        let x: Array2<f64> = gaussian(&mut stream_rng(3, 1, 3), 5, 8, 1.0);
        for mask in [Mask::Bidirectional, Mask::Causal] {
            let (a, _) = crate::attention::forward(&aw, x.view(), 2, mask);
            let (b, c) = attn_forward(
                &aw,
                AttnOptions::default(),
                Norm::Rmsnorm,
                x.view(),
                2,
                mask,
            );
            assert_eq!(a, b);
            assert_eq!(c.probs().len(), 2);
        }
        for act in [Activation::Relu, Activation::Gelu, Activation::Swiglu] {
            let mut w = fw.clone();
            if act != Activation::Swiglu {
                w.w_g = None;
            }
            let (a, _) = crate::ffn::forward(&w, act, x.view());
            let (b, _) = ffn_forward(&w, act, FfnOptions::default(), Norm::Rmsnorm, x.view());
            assert_eq!(a, b, "{act}");
        }
    }

    #[test]
    fn head_norms_normalize_each_head() {
        let x: Array2<f64> = gaussian(&mut stream_rng(3, 1, 4), 5, 8, 2.0);
        let (y, _) = group_forward(Inner::HeadL2, Norm::Layernorm, x.view(), 2);
        for row in y.rows() {
            for h in 0..2 {
                let ss: f64 = row
                    .slice(s![h * 4..(h + 1) * 4])
                    .iter()
                    .map(|v| v * v)
                    .sum();
                // Unit length times √d_h: ‖·‖² = d_h = 4, up to ε₂/‖x‖² ≈ 1e-13.
                assert!((ss - 4.0).abs() < 1e-9, "{ss}");
            }
        }
        let (y, _) = group_forward(Inner::HeadNorm, Norm::Rmsnorm, x.view(), 2);
        for (row, xr) in y.rows().into_iter().zip(x.rows()) {
            for h in 0..2 {
                let ms = |r: ndarray::ArrayView1<f64>| {
                    r.slice(s![h * 4..(h + 1) * 4])
                        .iter()
                        .map(|v| v * v)
                        .sum::<f64>()
                        / 4.0
                };
                // Each head's mean square is m/(m + ε) for its input's mean square m.
                let want = ms(xr) / (ms(xr) + crate::norm::EPS);
                assert!((ms(row) - want).abs() < 1e-14, "{}", ms(row));
            }
        }
    }
}
