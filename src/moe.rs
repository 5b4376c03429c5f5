//! Mixture-of-experts feed-forward sublayer.
//!
//! # Formula
//! `E` experts `F_e` (each a feed-forward network of width `d_ff`, see [`crate::ffn`]),
//! router `W_r ∈ R^{d×E}`, logits `r = x W_r` per token, the top-`k` experts `T(x)` by logit
//! (ties broken by the lower index), gates `g = softmax(r_{T(x)})` over the selected logits,
//! and output `Σ_{e ∈ T(x)} g_e F_e(x)`.
//!
//! Backward: the selection is piecewise constant in `x` and has no derivative; the gates give
//! `∂ℓ/∂r_e = g_e (δ_e − Σ_j g_j δ_j)` for selected `e`, with `δ_e = ⟨∂ℓ/∂out, F_e(x)⟩`.

use crate::block::Grads;
use crate::ffn::{self, Activation, FfnCache, FfnWeights};
use crate::real::Real;
use ndarray::{Array2, ArrayView2, Axis};

/// Router and experts of one mixture-of-experts sublayer.
#[derive(Clone, Debug, PartialEq)]
pub struct MoeWeights<T> {
    /// Router, `d × E`.
    pub w_r: Array2<T>,
    /// The experts, each a feed-forward network.
    pub experts: Vec<FfnWeights<T>>,
}

/// One expert's share of the forward pass.
#[derive(Clone, Debug)]
struct Routed<T> {
    /// `(token, slot)`: the token index and the position of this expert among its top-k.
    tokens: Vec<(usize, usize)>,
    x: Array2<T>,
    out: Array2<T>,
    cache: FfnCache<T>,
}

/// What the backward pass needs besides the input.
#[derive(Clone, Debug)]
pub struct MoeCache<T> {
    /// `n × k` selected experts, by decreasing logit.
    selected: Vec<Vec<usize>>,
    /// `n × k` gates.
    gates: Array2<T>,
    routed: Vec<Routed<T>>,
}

impl<T> MoeCache<T> {
    /// The gates, `n × k`, in the order of the selected experts.
    pub fn gates(&self) -> &Array2<T> {
        &self.gates
    }

    /// The router's load imbalance `E · max_e f_e`, with `f_e` the share of the `n k`
    /// routing slots that expert `e` receives: 1 when every expert gets the same share, `E/k`
    /// when the top `k` experts take every token.
    pub fn max_load(&self) -> f64 {
        let slots: usize = self.routed.iter().map(|r| r.tokens.len()).sum();
        let most = self
            .routed
            .iter()
            .map(|r| r.tokens.len())
            .max()
            .unwrap_or(0);
        if slots == 0 {
            return 1.0;
        }
        self.routed.len() as f64 * most as f64 / slots as f64
    }
}

/// The mixture's output and its cache.
pub fn forward<T: Real>(
    w: &MoeWeights<T>,
    a: Activation,
    top_k: usize,
    x: ArrayView2<T>,
) -> (Array2<T>, MoeCache<T>) {
    let (n, d) = x.dim();
    let logits = x.dot(&w.w_r);
    let mut selected = Vec::with_capacity(n);
    let mut gates = Array2::zeros((n, top_k));
    for (i, row) in logits.axis_iter(Axis(0)).enumerate() {
        let mut idx: Vec<usize> = (0..row.len()).collect();
        // Stable sort by decreasing logit: ties keep the lower index first.
        idx.sort_by(|&p, &q| {
            row[q]
                .partial_cmp(&row[p])
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        idx.truncate(top_k);
        let max = row[idx[0]];
        let mut z = T::zero();
        for (s, &e) in idx.iter().enumerate() {
            let v = (row[e] - max).exp();
            gates[[i, s]] = v;
            z += v;
        }
        gates.row_mut(i).mapv_inplace(|v| v / z);
        selected.push(idx);
    }
    let mut out = Array2::zeros((n, d));
    let mut routed = Vec::with_capacity(w.experts.len());
    for (e, ew) in w.experts.iter().enumerate() {
        let tokens: Vec<(usize, usize)> = selected
            .iter()
            .enumerate()
            .filter_map(|(i, sel)| sel.iter().position(|&s| s == e).map(|slot| (i, slot)))
            .collect();
        let rows: Vec<usize> = tokens.iter().map(|&(i, _)| i).collect();
        let xe = x.select(Axis(0), &rows);
        let (fe, cache) = ffn::forward(ew, a, xe.view());
        for (r, &(i, slot)) in tokens.iter().enumerate() {
            let g = gates[[i, slot]];
            out.row_mut(i).scaled_add(g, &fe.row(r));
        }
        routed.push(Routed {
            tokens,
            x: xe,
            out: fe,
            cache,
        });
    }
    (
        out,
        MoeCache {
            selected,
            gates,
            routed,
        },
    )
}

/// `∂ℓ/∂X` and the weight gradients, from `∂ℓ/∂out`.
pub fn backward<T: Real>(
    w: &MoeWeights<T>,
    a: Activation,
    cache: &MoeCache<T>,
    x: ArrayView2<T>,
    g_out: ArrayView2<T>,
) -> (Array2<T>, MoeWeights<T>) {
    let (gx, gw) = backward_with(w, a, cache, x, g_out, Grads::All);
    (gx, gw.expect("weight gradients requested"))
}

/// `∂ℓ/∂X`, and the weight gradients when `grads` asks for them.
pub fn backward_with<T: Real>(
    w: &MoeWeights<T>,
    a: Activation,
    cache: &MoeCache<T>,
    x: ArrayView2<T>,
    g_out: ArrayView2<T>,
    grads: Grads,
) -> (Array2<T>, Option<MoeWeights<T>>) {
    let (n, _) = x.dim();
    let k = cache.gates.ncols();
    let mut gx = Array2::zeros(x.raw_dim());
    // δ_{i,slot} = ⟨∂ℓ/∂out_i, F_e(x_i)⟩
    let mut delta = Array2::<T>::zeros((n, k));
    let mut expert_grads = Vec::with_capacity(w.experts.len());
    for (ew, r) in w.experts.iter().zip(&cache.routed) {
        let mut gf = Array2::zeros(r.out.raw_dim());
        for (row, &(i, slot)) in r.tokens.iter().enumerate() {
            let go = g_out.row(i);
            delta[[i, slot]] = go.dot(&r.out.row(row));
            gf.row_mut(row).scaled_add(cache.gates[[i, slot]], &go);
        }
        let (gxe, ge) = ffn::backward_with(ew, a, &r.cache, r.x.view(), gf.view(), grads);
        for (row, &(i, _)) in r.tokens.iter().enumerate() {
            gx.row_mut(i).scaled_add(T::one(), &gxe.row(row));
        }
        expert_grads.push(ge);
    }
    let mut g_logits = Array2::zeros((n, w.w_r.ncols()));
    for (i, sel) in cache.selected.iter().enumerate() {
        let g = cache.gates.row(i);
        let d = delta.row(i);
        let mean = g.dot(&d);
        for (s, &e) in sel.iter().enumerate() {
            g_logits[[i, e]] = g[s] * (d[s] - mean);
        }
    }
    gx += &g_logits.dot(&w.w_r.t());
    let gw = expert_grads
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .map(|experts| MoeWeights {
            w_r: x.t().dot(&g_logits),
            experts,
        });
    (gx, gw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{gaussian, stream_rng};

    fn weights(router: Array2<f64>, experts: usize) -> MoeWeights<f64> {
        let mut rng = stream_rng(0, 0, 1);
        let d = router.nrows();
        MoeWeights {
            w_r: router,
            experts: (0..experts)
                .map(|_| FfnWeights {
                    w_1: gaussian(&mut rng, d, 8, 0.5),
                    w_2: gaussian(&mut rng, 8, d, 0.5),
                    w_g: None,
                })
                .collect(),
        }
    }

    /// A router whose column 0 dominates sends every token to expert 0: `E · 1 = E` with
    /// top 1, `E/2` with top 2 (experts 0 and the runner-up share the slots). A router that
    /// sends token `i` to expert `i mod E` is balanced: 1.
    #[test]
    fn max_load_is_one_when_balanced_and_e_over_k_when_collapsed() {
        let (n, d, e) = (8, 4, 4);
        let x = Array2::from_shape_fn((n, d), |(i, j)| if j == i % d { 1.0 } else { 0.0 });
        let mut collapse = Array2::zeros((d, e));
        collapse.column_mut(0).fill(5.0);
        collapse.column_mut(1).fill(1.0);
        let (_, c) = forward(&weights(collapse.clone(), e), Activation::Relu, 1, x.view());
        assert_eq!(c.max_load(), 4.0);
        let (_, c) = forward(&weights(collapse, e), Activation::Relu, 2, x.view());
        assert_eq!(c.max_load(), 2.0);
        let balanced = Array2::from_shape_fn((d, e), |(i, j)| if i == j { 1.0 } else { 0.0 });
        let (_, c) = forward(&weights(balanced, e), Activation::Relu, 1, x.view());
        assert_eq!(c.max_load(), 1.0);
    }
}
