//! Multi-head self-attention without biases, `A(X)`.
//!
//! # Formula
//! `Q = X W_q`, `K = X W_k`, `V = X W_v`, split column-wise into `H` heads of width
//! `d_h = d / H`; `P_h = softmax(Q_h K_hᵀ / sqrt(d_h) + mask)` row by row;
//! `A(X) = concat_h(P_h V_h) W_o`. The `causal` mask lets token `i` attend to `j ≤ i`.
//!
//! Backward (per head, `G_O = ∂ℓ/∂O`): `∂ℓ/∂P = G_O Vᵀ`, `∂ℓ/∂V = Pᵀ G_O`,
//! `∂ℓ/∂S = P ⊙ (∂ℓ/∂P − rowsum(P ⊙ ∂ℓ/∂P))`, `∂ℓ/∂Q = ∂ℓ/∂S · K / sqrt(d_h)`,
//! `∂ℓ/∂K = (∂ℓ/∂S)ᵀ Q / sqrt(d_h)`.

use crate::block::Grads;
use crate::choice_enum;
use crate::real::Real;
use crate::simd::{self, reduce};
use crate::weight::WeightName;
use ndarray::{s, Array2, ArrayView2};

choice_enum!(
    /// Attention mask.
    Mask, "mask", {
        /// Every token attends to every token.
        Bidirectional => "bidirectional",
        /// Token `i` attends to tokens `j ≤ i`.
        Causal => "causal",
    }
);

/// The four `d × d` projections of one attention sublayer.
#[derive(Clone, Debug, PartialEq)]
pub struct AttnWeights<T> {
    /// Query projection `W_q`.
    pub w_q: Array2<T>,
    /// Key projection `W_k`.
    pub w_k: Array2<T>,
    /// Value projection `W_v`.
    pub w_v: Array2<T>,
    /// Output projection `W_o`.
    pub w_o: Array2<T>,
}

impl<T: Real> AttnWeights<T> {
    /// The weights' names, in the order of [`AttnWeights::each`].
    pub const NAMES: [WeightName; 4] = WeightName::ATTN;

    /// The four matrices in the order of [`AttnWeights::NAMES`].
    pub fn each(&self) -> [&Array2<T>; 4] {
        [&self.w_q, &self.w_k, &self.w_v, &self.w_o]
    }

    /// Mutable access in the order of [`AttnWeights::NAMES`].
    pub fn each_mut(&mut self) -> [&mut Array2<T>; 4] {
        [&mut self.w_q, &mut self.w_k, &mut self.w_v, &mut self.w_o]
    }
}

/// What the backward pass of attention needs besides its input.
#[derive(Clone, Debug)]
pub struct AttnCache<T> {
    q: Array2<T>,
    k: Array2<T>,
    v: Array2<T>,
    /// One `n × n` attention matrix per head.
    p: Vec<Array2<T>>,
    /// `concat_h(P_h V_h)`.
    o: Array2<T>,
    /// The largest logit `c · q_i·k_j` over heads and unmasked pairs.
    max_logit: f64,
}

impl<T> AttnCache<T> {
    /// The attention matrices, one per head.
    pub fn probs(&self) -> &[Array2<T>] {
        &self.p
    }

    /// The largest attention logit `q_i·k_j/√d_h` over heads and unmasked pairs (the logit
    /// growth that precedes attention-entropy collapse in training).
    pub fn max_logit(&self) -> f64 {
        self.max_logit
    }
}

/// Row-wise softmax of `c · s` in place; under the causal mask row `i` keeps columns `j ≤ i`.
/// `e^x` is [`Real::exp_poly`] and the row sum runs in the lane order of
/// [`crate::simd::reduce`], so every dispatch path gives the same bits. Returns the largest
/// scaled logit `c · s_ij` over the kept entries (`−∞` when there are none).
fn softmax_rows<T: Real>(s: &mut Array2<T>, c: T, mask: Mask) -> f64 {
    let n = s.ncols();
    if n == 0 {
        return f64::NEG_INFINITY;
    }
    let rows = s
        .as_slice_mut()
        .expect("a fresh product is in standard layout");
    simd::dispatch(
        #[inline(always)]
        || {
            let mut largest = T::neg_infinity();
            for (i, row) in rows.chunks_exact_mut(n).enumerate() {
                let keep = match mask {
                    Mask::Bidirectional => n,
                    Mask::Causal => i + 1,
                };
                let (live, masked) = row.split_at_mut(keep);
                let mut max = T::neg_infinity();
                for v in live.iter_mut() {
                    *v *= c;
                    max = max.max(*v);
                }
                for v in live.iter_mut() {
                    *v = (*v - max).exp_poly();
                }
                let z = reduce::sum(live);
                for v in live.iter_mut() {
                    *v /= z;
                }
                masked.fill(T::zero());
                largest = largest.max(max);
            }
            largest.f64()
        },
    )
}

/// `A(X)` and its cache.
pub fn forward<T: Real>(
    w: &AttnWeights<T>,
    x: ArrayView2<T>,
    heads: usize,
    mask: Mask,
) -> (Array2<T>, AttnCache<T>) {
    let q = x.dot(&w.w_q);
    let k = x.dot(&w.w_k);
    let v = x.dot(&w.w_v);
    let (o, p, max_logit) = mix_heads(&q, &k, &v, heads, mask);
    let out = o.dot(&w.w_o);
    (
        out,
        AttnCache {
            q,
            k,
            v,
            p,
            o,
            max_logit,
        },
    )
}

/// The heads' mixing step, shared by plain attention and attention with inner norms
/// ([`crate::sublayer`]): `O = concat_h softmax(Q_h K_hᵀ/√d_h) V_h` under the mask, and the
/// attention matrices `P_h`, and the largest logit over heads and unmasked pairs.
pub(crate) fn mix_heads<T: Real>(
    q: &Array2<T>,
    k: &Array2<T>,
    v: &Array2<T>,
    heads: usize,
    mask: Mask,
) -> (Array2<T>, Vec<Array2<T>>, f64) {
    let (n, d) = q.dim();
    let dh = d / heads;
    let inv = T::of(1.0 / (dh as f64).sqrt());
    let mut o = Array2::zeros((n, d));
    let mut p = Vec::with_capacity(heads);
    let mut max_logit = f64::NEG_INFINITY;
    for h in 0..heads {
        let cols = s![.., h * dh..(h + 1) * dh];
        let mut sc = q.slice(cols).dot(&k.slice(cols).t());
        max_logit = max_logit.max(softmax_rows(&mut sc, inv, mask));
        o.slice_mut(cols).assign(&sc.dot(&v.slice(cols)));
        p.push(sc);
    }
    (o, p, max_logit)
}

/// The backward of [`mix_heads`]: `(∂ℓ/∂Q, ∂ℓ/∂K, ∂ℓ/∂V)` from `∂ℓ/∂O`.
pub(crate) fn mix_heads_backward<T: Real>(
    p: &[Array2<T>],
    q: &Array2<T>,
    k: &Array2<T>,
    v: &Array2<T>,
    g_o: &Array2<T>,
) -> (Array2<T>, Array2<T>, Array2<T>) {
    let (n, d) = q.dim();
    let dh = d / p.len();
    let inv = T::of(1.0 / (dh as f64).sqrt());
    let mut gq = Array2::zeros((n, d));
    let mut gk = Array2::zeros((n, d));
    let mut gv = Array2::zeros((n, d));
    for (h, p) in p.iter().enumerate() {
        let cols = s![.., h * dh..(h + 1) * dh];
        let g_oh = g_o.slice(cols);
        let mut gs = g_oh.dot(&v.slice(cols).t());
        gv.slice_mut(cols).assign(&p.t().dot(&g_oh));
        softmax_backward_rows(&mut gs, p, inv);
        gq.slice_mut(cols).assign(&gs.dot(&k.slice(cols)));
        gk.slice_mut(cols).assign(&gs.t().dot(&q.slice(cols)));
    }
    (gq, gk, gv)
}

/// `G_S ← c · P ⊙ (G_P − rowsum(P ⊙ G_P))` in place, from `G_P` in `gs` (row sums in the lane
/// order of [`crate::simd::reduce`]).
fn softmax_backward_rows<T: Real>(gs: &mut Array2<T>, p: &Array2<T>, c: T) {
    let n = gs.ncols();
    if n == 0 {
        return;
    }
    let g = gs
        .as_slice_mut()
        .expect("a fresh product is in standard layout");
    let p = p.as_slice().expect("softmax output is in standard layout");
    simd::dispatch(
        #[inline(always)]
        || {
            for (gp, pr) in g.chunks_exact_mut(n).zip(p.chunks_exact(n)) {
                let dot = reduce::dot(gp, pr);
                for (g, &pv) in gp.iter_mut().zip(pr) {
                    *g = pv * (*g - dot) * c;
                }
            }
        },
    );
}

/// `∂ℓ/∂X` and the weight gradients, from `∂ℓ/∂A(X)`.
pub fn backward<T: Real>(
    w: &AttnWeights<T>,
    cache: &AttnCache<T>,
    x: ArrayView2<T>,
    g_out: ArrayView2<T>,
    heads: usize,
) -> (Array2<T>, AttnWeights<T>) {
    let (gx, gw) = backward_with(w, cache, x, g_out, heads, Grads::All);
    (gx, gw.expect("weight gradients requested"))
}

/// `∂ℓ/∂X`, and the weight gradients when `grads` asks for them.
pub fn backward_with<T: Real>(
    w: &AttnWeights<T>,
    cache: &AttnCache<T>,
    x: ArrayView2<T>,
    g_out: ArrayView2<T>,
    heads: usize,
    grads: Grads,
) -> (Array2<T>, Option<AttnWeights<T>>) {
    debug_assert_eq!(cache.p.len(), heads);
    let g_o = g_out.dot(&w.w_o.t());
    let (gq, gk, gv) = mix_heads_backward(&cache.p, &cache.q, &cache.k, &cache.v, &g_o);
    // The input gradient and the weight gradients are independent products: an idle
    // worker thread (a seed alone on two cores) takes one side; each product is computed
    // the same way on any thread.
    rayon::join(
        || gq.dot(&w.w_q.t()) + gk.dot(&w.w_k.t()) + gv.dot(&w.w_v.t()),
        || {
            (grads == Grads::All).then(|| AttnWeights {
                w_q: x.t().dot(&gq),
                w_k: x.t().dot(&gk),
                w_v: x.t().dot(&gv),
                w_o: cache.o.t().dot(&g_out),
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{gaussian, stream_rng};

    #[test]
    fn zero_query_attention_is_exactly_uniform() {
        let mut rng = stream_rng(0, 0, 0);
        let (n, d) = (5, 8);
        let x: Array2<f64> = gaussian(&mut rng, n, d, 1.0);
        let mut w = AttnWeights {
            w_q: Array2::zeros((d, d)),
            w_k: gaussian(&mut rng, d, d, 0.3),
            w_v: gaussian(&mut rng, d, d, 0.3),
            w_o: gaussian(&mut rng, d, d, 0.3),
        };
        w.w_q.fill(0.0);
        let (_, c) = forward(&w, x.view(), 2, Mask::Bidirectional);
        assert_eq!(c.probs().len(), 2, "one attention matrix per head");
        for p in c.probs() {
            assert!(p.iter().all(|&v| v == 1.0 / n as f64));
        }
        let (_, c) = forward(&w, x.view(), 2, Mask::Causal);
        assert_eq!(c.probs().len(), 2);
        for p in c.probs() {
            for i in 0..n {
                for j in 0..n {
                    let want = if j <= i { 1.0 / (i + 1) as f64 } else { 0.0 };
                    assert_eq!(p[[i, j]], want);
                }
            }
        }
    }

    /// The largest logit the softmax reports is the brute-force maximum of `q_i·k_j/√d_h`
    /// over heads and unmasked pairs: under the causal mask the pairs `j > i` do not count
    /// (a key-only spike placed there must not show).
    #[test]
    fn max_logit_is_the_largest_unmasked_logit() {
        let mut masked_max = 0;
        for stream in 2..12 {
            masked_max += usize::from(max_logit_draw(stream));
        }
        assert!(masked_max > 0, "no draw put the maximum on a masked pair");
    }

    /// Checks one draw; whether its bidirectional maximum sits on a masked pair.
    fn max_logit_draw(stream: u64) -> bool {
        let mut rng = stream_rng(0, 0, stream);
        let (n, d, heads) = (6, 8, 2);
        let x: Array2<f64> = gaussian(&mut rng, n, d, 1.0);
        let w = AttnWeights {
            w_q: gaussian(&mut rng, d, d, 0.5),
            w_k: gaussian(&mut rng, d, d, 0.5),
            w_v: gaussian(&mut rng, d, d, 0.5),
            w_o: gaussian(&mut rng, d, d, 0.5),
        };
        let dh = d / heads;
        let brute = |causal: bool| {
            let (q, k) = (x.dot(&w.w_q), x.dot(&w.w_k));
            let mut best = f64::NEG_INFINITY;
            for h in 0..heads {
                for i in 0..n {
                    for j in 0..n {
                        if causal && j > i {
                            continue;
                        }
                        let dot: f64 = (h * dh..(h + 1) * dh).map(|c| q[[i, c]] * k[[j, c]]).sum();
                        best = best.max(dot / (dh as f64).sqrt());
                    }
                }
            }
            best
        };
        for (mask, causal) in [(Mask::Bidirectional, false), (Mask::Causal, true)] {
            let (_, c) = forward(&w, x.view(), heads, mask);
            let want = brute(causal);
            assert!(
                (c.max_logit() - want).abs() < 1e-12,
                "{mask:?}: {} vs {want}",
                c.max_logit()
            );
        }
        brute(false) > brute(true)
    }

    /// The softmax subtracts each row's largest logit before `exp`, so logits far beyond
    /// `ln f64::MAX ≈ 709` still give finite probabilities summing to one, equal to the
    /// shifted row's (`softmax` is shift-invariant), in f64 and f32.
    #[test]
    fn softmax_is_stable_for_huge_logits() {
        let row: [f64; 4] = [1000.0, 999.0, 997.0, -1000.0];
        let shifted: [f64; 4] = [3.0, 2.0, 0.0, -1997.0];
        let mut big = Array2::from_shape_vec((1, 4), row.to_vec()).unwrap();
        let mut small = Array2::from_shape_vec((1, 4), shifted.to_vec()).unwrap();
        assert_eq!(softmax_rows(&mut big, 1.0, Mask::Bidirectional), 1000.0);
        softmax_rows(&mut small, 1.0, Mask::Bidirectional);
        assert!(big.iter().all(|p| p.is_finite()), "{big:?}");
        for (a, b) in big.iter().zip(&small) {
            assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        }
        assert!((big.sum() - 1.0).abs() < 1e-15);
        let mut big32 = Array2::from_shape_vec((1, 4), row.map(|v| v as f32).to_vec()).unwrap();
        softmax_rows(&mut big32, 1.0f32, Mask::Causal);
        assert_eq!(big32.row(0).to_vec(), vec![1.0, 0.0, 0.0, 0.0]);
        let mut big32 = Array2::from_shape_vec((1, 4), row.map(|v| v as f32).to_vec()).unwrap();
        softmax_rows(&mut big32, 1.0f32, Mask::Bidirectional);
        assert!(big32.iter().all(|p| p.is_finite()), "{big32:?}");
        assert!((big32.sum() - 1.0).abs() < 4.0 * f32::EPSILON, "{big32:?}");
    }
}
