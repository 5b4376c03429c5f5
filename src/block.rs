//! One block's computation as a small tape: forward ops are recorded with what their
//! backward needs, then replayed in reverse. A placement (see [`crate::placement`]) writes its
//! block formula with the tape's methods, so every placement gets an exact backward pass
//! for free and a new placement is one `match` arm.
//!
//! The tape also records the probes that the per-block metrics need: the second moment of
//! each sublayer output (`branch_q`) and of the sum entering the closing norm (`q_pre_norm`).

use crate::attention::{self, AttnCache, AttnWeights, Mask};
use crate::ffn::{self, Activation, FfnCache, FfnWeights};
use crate::moe::{self, MoeCache, MoeWeights};
use crate::norm::{self, second_moment, Norm, NormCache};
use crate::normop::{self, NormKind, NormOpCache};
use crate::real::Real;
use crate::simd;
use crate::sublayer::{self, AttnOptCache, AttnOptions, FfnOptCache, FfnOptions};
use crate::weight::WeightName;
use ndarray::Array2;

/// Index of a value on a [`Tape`].
pub type Node = usize;

/// The feed-forward sublayer's weights: one network or a mixture of experts.
#[derive(Clone, Debug, PartialEq)]
pub enum FfnBlockWeights<T> {
    /// One feed-forward network.
    Dense(FfnWeights<T>),
    /// A mixture of experts.
    Moe(MoeWeights<T>),
}

/// Every weight of one block. Gradients use the same type.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockWeights<T> {
    /// The attention projections.
    pub attn: AttnWeights<T>,
    /// `None` for the attention-only controls.
    pub ffn: Option<FfnBlockWeights<T>>,
}

impl<T: Real> BlockWeights<T> {
    /// No weights (`0 × 0` attention projections, no feed-forward network): for a formula
    /// without sublayers, as the stack's final map.
    pub fn empty() -> Self {
        let z = || Array2::zeros((0, 0));
        BlockWeights {
            attn: AttnWeights {
                w_q: z(),
                w_k: z(),
                w_v: z(),
                w_o: z(),
            },
            ffn: None,
        }
    }

    /// `(name, matrices)` for every weight, experts of a mixture grouped under one name.
    pub fn named(&self) -> Vec<(WeightName, Vec<&Array2<T>>)> {
        let mut v: Vec<(WeightName, Vec<&Array2<T>>)> = AttnWeights::<T>::NAMES
            .iter()
            .zip(self.attn.each())
            .map(|(&n, m)| (n, vec![m]))
            .collect();
        match &self.ffn {
            None => {}
            Some(FfnBlockWeights::Dense(f)) => {
                for (name, m) in f.each() {
                    v.push((name, vec![m]));
                }
            }
            Some(FfnBlockWeights::Moe(m)) => {
                v.push((WeightName::MoeWr, vec![&m.w_r]));
                if let Some(first) = m.experts.first() {
                    for (j, (name, _)) in first.each().into_iter().enumerate() {
                        let all = m.experts.iter().map(|e| e.each()[j].1).collect();
                        v.push((name.in_mixture(), all));
                    }
                }
            }
        }
        v
    }

    /// Every matrix, mutably, in the order of [`BlockWeights::named`] (experts in order).
    pub fn matrices_mut(&mut self) -> Vec<&mut Array2<T>> {
        let mut v: Vec<&mut Array2<T>> = self.attn.each_mut().into_iter().collect();
        match &mut self.ffn {
            None => {}
            Some(FfnBlockWeights::Dense(f)) => v.extend(f.each_mut()),
            Some(FfnBlockWeights::Moe(m)) => {
                v.push(&mut m.w_r);
                for e in &mut m.experts {
                    v.extend(e.each_mut());
                }
            }
        }
        v
    }

    /// Every matrix with its name, in the order of [`BlockWeights::matrices_mut`] (a
    /// mixture's experts one after another, each `W_1, W_2[, W_g]`).
    pub fn each_named(&self) -> Vec<(WeightName, &Array2<T>)> {
        let mut v: Vec<(WeightName, &Array2<T>)> = AttnWeights::<T>::NAMES
            .iter()
            .copied()
            .zip(self.attn.each())
            .collect();
        match &self.ffn {
            None => {}
            Some(FfnBlockWeights::Dense(f)) => v.extend(f.each()),
            Some(FfnBlockWeights::Moe(m)) => {
                v.push((WeightName::MoeWr, &m.w_r));
                for e in &m.experts {
                    v.extend(e.each().into_iter().map(|(n, w)| (n.in_mixture(), w)));
                }
            }
        }
        v
    }

    /// Frobenius norm of each named weight (for gradients: `‖∂ℓ/∂W‖_F`), in `f64`.
    ///
    /// Each matrix's sum of squares runs in the lane order of [`crate::simd::reduce`] over
    /// its logical order; the experts of a mixture are summed in order.
    pub fn frobenius(&self) -> Vec<(WeightName, f64)> {
        self.named()
            .into_iter()
            .map(|(name, ms)| {
                let sum: f64 = ms
                    .iter()
                    .map(|m| simd::ops::sum_sq_f64(m.view()))
                    .fold(0.0, |acc, v| acc + v);
                (name, sum.sqrt())
            })
            .collect()
    }
}

/// Which gradients a backward pass computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Grads {
    /// `∂ℓ/∂X` and every weight gradient (what the `param_grad` metrics need).
    #[default]
    All,
    /// `∂ℓ/∂X` only: the products that give weight gradients (a third of a block's backward
    /// FLOPs in dense blocks) are skipped, as a framework skips them for inputs-only
    /// gradients. Used by `bench` to compare with external implementations.
    Inputs,
}

/// The model settings a block's sublayers need.
#[derive(Clone, Copy, Debug)]
pub struct Sublayers {
    /// The norm `N`.
    pub norm: Norm,
    /// Attention heads.
    pub heads: usize,
    /// The attention mask.
    pub mask: Mask,
    /// The feed-forward activation.
    pub act: Activation,
    /// Experts per token for a mixture feed-forward (unused for a dense one).
    pub top_k: usize,
    /// DyT's `α₀` (`dyt(x) = tanh(α₀ x)`).
    pub dyt_alpha: f64,
    /// Norms inside attention (none: [`crate::attention`] as is).
    pub attn_opts: AttnOptions,
    /// Norms inside the feed-forward network (none: [`crate::ffn`] as is).
    pub ffn_opts: FfnOptions,
}

/// Per-block measurements taken while the block runs forward.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Probe {
    /// Second moment of the attention output `A(·)`, before any scale.
    pub attn_q: Option<f64>,
    /// Second moment of the feed-forward output `F(·)`, before any scale.
    pub ffn_q: Option<f64>,
    /// Second moment of the sum entering the block's closing norm.
    pub q_pre_norm: Option<f64>,
    /// The largest attention logit of the block ([`crate::attention::AttnCache::max_logit`]).
    pub max_logit: Option<f64>,
    /// The router's load imbalance of a mixture block ([`crate::moe::MoeCache::max_load`]).
    pub max_load: Option<f64>,
}

enum Op<T> {
    Norm { x: Node, cache: NormCache<T> },
    NormAs { x: Node, cache: NormOpCache<T> },
    Attn { x: Node, cache: AttnCache<T> },
    AttnOpts { x: Node, cache: AttnOptCache<T> },
    Ffn { x: Node, cache: FfnCache<T> },
    FfnOpts { x: Node, cache: FfnOptCache<T> },
    Moe { x: Node, cache: MoeCache<T> },
    Scale { x: Node, c: T },
    Add { xs: Vec<Node> },
}

/// A block's forward computation, recorded for its backward pass.
pub struct Tape<'w, T> {
    sub: Sublayers,
    w: &'w BlockWeights<T>,
    vals: Vec<Array2<T>>,
    ops: Vec<(Op<T>, Node)>,
    probe: Probe,
}

impl<'w, T: Real> Tape<'w, T> {
    /// A tape whose node 0 is the block input `x`.
    pub fn new(sub: Sublayers, w: &'w BlockWeights<T>, x: Array2<T>) -> (Self, Node) {
        let tape = Tape {
            sub,
            w,
            vals: vec![x],
            ops: Vec::new(),
            probe: Probe::default(),
        };
        (tape, 0)
    }

    fn push(&mut self, op: Op<T>, value: Array2<T>) -> Node {
        self.vals.push(value);
        let out = self.vals.len() - 1;
        self.ops.push((op, out));
        out
    }

    /// The value of a node.
    pub fn value(&self, n: Node) -> &Array2<T> {
        &self.vals[n]
    }

    /// The probes recorded so far.
    pub fn probe(&self) -> Probe {
        self.probe
    }

    /// Takes the value of `out`, ending the forward pass without a backward.
    pub fn into_value(mut self, out: Node) -> Array2<T> {
        self.vals.swap_remove(out)
    }

    /// `∂ℓ/∂x` for the tape's input and every weight gradient, from `∂ℓ/∂out`.
    pub fn backward(&self, out: Node, g_out: Array2<T>) -> (Array2<T>, BlockWeights<T>) {
        let (gx, gw) = self.backward_with(out, g_out, Grads::All);
        (gx, gw.expect("weight gradients requested"))
    }

    /// `∂ℓ/∂x` for the tape's input, and the weight gradients when `grads` asks for them.
    pub fn backward_with(
        &self,
        out: Node,
        g_out: Array2<T>,
        grads_wanted: Grads,
    ) -> (Array2<T>, Option<BlockWeights<T>>) {
        let mut grads: Vec<Option<Array2<T>>> = vec![None; self.vals.len()];
        grads[out] = Some(g_out);
        let mut g_attn = None;
        let mut g_ffn = None;
        for (op, o) in self.ops.iter().rev() {
            let Some(g) = grads[*o].take() else { continue };
            match op {
                Op::Norm { x, cache } => {
                    let gx = norm::backward(self.sub.norm, cache, g.view());
                    accumulate(&mut grads[*x], gx);
                }
                Op::NormAs { x, cache } => {
                    let gx = normop::backward(cache, g.view());
                    accumulate(&mut grads[*x], gx);
                }
                Op::Attn { x, cache } => {
                    let (gx, gw) = attention::backward_with(
                        &self.w.attn,
                        cache,
                        self.vals[*x].view(),
                        g.view(),
                        self.sub.heads,
                        grads_wanted,
                    );
                    accumulate(&mut grads[*x], gx);
                    g_attn = gw;
                }
                Op::AttnOpts { x, cache } => {
                    let (gx, gw) = sublayer::attn_backward(
                        &self.w.attn,
                        cache,
                        self.vals[*x].view(),
                        g.view(),
                        self.sub.heads,
                    );
                    accumulate(&mut grads[*x], gx);
                    g_attn = Some(gw);
                }
                Op::FfnOpts { x, cache } => {
                    let Some(FfnBlockWeights::Dense(f)) = &self.w.ffn else {
                        unreachable!("dense op recorded with dense weights")
                    };
                    let (gx, gw) = sublayer::ffn_backward(
                        f,
                        self.sub.act,
                        cache,
                        self.vals[*x].view(),
                        g.view(),
                    );
                    accumulate(&mut grads[*x], gx);
                    g_ffn = Some(FfnBlockWeights::Dense(gw));
                }
                Op::Ffn { x, cache } => {
                    let Some(FfnBlockWeights::Dense(f)) = &self.w.ffn else {
                        unreachable!("dense op recorded with dense weights")
                    };
                    let (gx, gw) = ffn::backward_with(
                        f,
                        self.sub.act,
                        cache,
                        self.vals[*x].view(),
                        g.view(),
                        grads_wanted,
                    );
                    accumulate(&mut grads[*x], gx);
                    g_ffn = gw.map(FfnBlockWeights::Dense);
                }
                Op::Moe { x, cache } => {
                    let Some(FfnBlockWeights::Moe(m)) = &self.w.ffn else {
                        unreachable!("mixture op recorded with mixture weights")
                    };
                    let (gx, gw) = moe::backward_with(
                        m,
                        self.sub.act,
                        cache,
                        self.vals[*x].view(),
                        g.view(),
                        grads_wanted,
                    );
                    accumulate(&mut grads[*x], gx);
                    g_ffn = gw.map(FfnBlockWeights::Moe);
                }
                Op::Scale { x, c } => {
                    accumulate(&mut grads[*x], simd::ops::scaled(g.view(), *c));
                }
                Op::Add { xs } => {
                    for &x in xs {
                        accumulate(&mut grads[x], g.clone());
                    }
                }
            }
        }
        let gx = grads[0]
            .take()
            .unwrap_or_else(|| Array2::zeros(self.vals[0].raw_dim()));
        if grads_wanted == Grads::Inputs {
            return (gx, None);
        }
        let zero_like = |m: &Array2<T>| Array2::zeros(m.raw_dim());
        let attn = g_attn.unwrap_or_else(|| AttnWeights {
            w_q: zero_like(&self.w.attn.w_q),
            w_k: zero_like(&self.w.attn.w_k),
            w_v: zero_like(&self.w.attn.w_v),
            w_o: zero_like(&self.w.attn.w_o),
        });
        let ffn = match (&self.w.ffn, g_ffn) {
            (_, Some(g)) => Some(g),
            (None, None) => None,
            (Some(FfnBlockWeights::Dense(f)), None) => Some(FfnBlockWeights::Dense(f.zeros_like())),
            (Some(FfnBlockWeights::Moe(m)), None) => Some(FfnBlockWeights::Moe(MoeWeights {
                w_r: zero_like(&m.w_r),
                experts: m.experts.iter().map(|e| e.zeros_like()).collect(),
            })),
        };
        (gx, Some(BlockWeights { attn, ffn }))
    }
}

/// The operations a placement's block formula is written in. The simulation [`Tape`] runs
/// them on matrices; the theory tape ([`crate::theory`]) runs them on kernels. So one
/// formula per placement serves both.
pub trait BlockOps {
    /// A value in the block (a matrix, or its mean-field description).
    type Node: Copy;

    /// `gain · N(x)`.
    fn norm_gain(&mut self, x: Self::Node, gain: f64) -> Self::Node;

    /// `N(x)`.
    fn norm(&mut self, x: Self::Node) -> Self::Node {
        self.norm_gain(x, 1.0)
    }

    /// `N(x)` closing the block: also records `q_pre_norm`, the second moment of `x`.
    fn closing_norm(&mut self, x: Self::Node) -> Self::Node;

    /// `gain · M(x)` for the normalization `kind` (`norm`, `layernorm`, `rmsnorm`, `dyt`,
    /// `l2norm`).
    fn norm_as(&mut self, x: Self::Node, kind: NormKind, gain: f64) -> Self::Node;

    /// Records `q_pre_norm`, the second moment of `x`, the sum entering the block's closing
    /// norm (for a closing norm other than `closing_norm`'s).
    fn probe_pre_norm(&mut self, x: Self::Node);

    /// `A(x)` with the block's attention weights.
    fn attn(&mut self, x: Self::Node) -> Self::Node;

    /// `F(x)` with the block's feed-forward weights (dense or mixture).
    fn ffn(&mut self, x: Self::Node) -> Self::Node;

    /// `c · x`.
    fn scale(&mut self, c: f64, x: Self::Node) -> Self::Node;

    /// `Σ xs`.
    fn add(&mut self, xs: &[Self::Node]) -> Self::Node;

    /// `x + α · branch`.
    fn residual(&mut self, x: Self::Node, alpha: f64, branch: Self::Node) -> Self::Node {
        let b = self.scale(alpha, branch);
        self.add(&[x, b])
    }
}

impl<T: Real> BlockOps for Tape<'_, T> {
    type Node = Node;

    /// `gain · N(x)`.
    fn norm_gain(&mut self, x: Node, gain: f64) -> Node {
        let (y, cache) = norm::forward(self.sub.norm, self.vals[x].view(), T::of(gain));
        self.push(Op::Norm { x, cache }, y)
    }

    /// `N(x)` closing the block: records `q_pre_norm = ‖x‖²/(n d)`.
    fn closing_norm(&mut self, x: Node) -> Node {
        self.probe.q_pre_norm = Some(second_moment(self.vals[x].view()));
        self.norm(x)
    }

    /// `gain · M(x)`: the configured norm through [`BlockOps::norm_gain`], any other
    /// through [`crate::normop`].
    fn norm_as(&mut self, x: Node, kind: NormKind, gain: f64) -> Node {
        if kind == NormKind::Configured {
            return self.norm_gain(x, gain);
        }
        let (y, cache) = normop::forward(
            kind,
            self.sub.norm,
            self.sub.dyt_alpha,
            self.vals[x].view(),
            T::of(gain),
        );
        self.push(Op::NormAs { x, cache }, y)
    }

    /// Records `q_pre_norm = ‖x‖²/(n d)`.
    fn probe_pre_norm(&mut self, x: Node) {
        self.probe.q_pre_norm = Some(second_moment(self.vals[x].view()));
    }

    /// `A(x)` with the block's attention weights.
    fn attn(&mut self, x: Node) -> Node {
        if !self.sub.attn_opts.is_plain() {
            let (y, cache) = sublayer::attn_forward(
                &self.w.attn,
                self.sub.attn_opts,
                self.sub.norm,
                self.vals[x].view(),
                self.sub.heads,
                self.sub.mask,
            );
            self.probe.attn_q = Some(second_moment(y.view()));
            self.probe.max_logit = Some(cache.max_logit());
            return self.push(Op::AttnOpts { x, cache }, y);
        }
        let (y, cache) = attention::forward(
            &self.w.attn,
            self.vals[x].view(),
            self.sub.heads,
            self.sub.mask,
        );
        self.probe.attn_q = Some(second_moment(y.view()));
        self.probe.max_logit = Some(cache.max_logit());
        self.push(Op::Attn { x, cache }, y)
    }

    /// `F(x)` with the block's feed-forward weights (dense or mixture).
    ///
    /// # Panics
    /// If the block has no feed-forward weights; [`crate::lang::Definition::uses_ffn`]
    /// decides which blocks have them, so this is a bug in the engine.
    fn ffn(&mut self, x: Node) -> Node {
        let w = self.w;
        let (y, op) = match w
            .ffn
            .as_ref()
            .expect("placement uses F but has no FFN weights")
        {
            FfnBlockWeights::Dense(f) if !self.sub.ffn_opts.is_plain() => {
                let (y, cache) = sublayer::ffn_forward(
                    f,
                    self.sub.act,
                    self.sub.ffn_opts,
                    self.sub.norm,
                    self.vals[x].view(),
                );
                (y, Op::FfnOpts { x, cache })
            }
            FfnBlockWeights::Dense(f) => {
                let (y, cache) = ffn::forward(f, self.sub.act, self.vals[x].view());
                (y, Op::Ffn { x, cache })
            }
            FfnBlockWeights::Moe(m) => {
                let (y, cache) = moe::forward(m, self.sub.act, self.sub.top_k, self.vals[x].view());
                self.probe.max_load = Some(cache.max_load());
                (y, Op::Moe { x, cache })
            }
        };
        self.probe.ffn_q = Some(second_moment(y.view()));
        self.push(op, y)
    }

    /// `c · x` (no op when `c = 1`).
    fn scale(&mut self, c: f64, x: Node) -> Node {
        if c == 1.0 {
            return x;
        }
        let c = T::of(c);
        let y = simd::ops::scaled(self.vals[x].view(), c);
        self.push(Op::Scale { x, c }, y)
    }

    /// `Σ xs`.
    fn add(&mut self, xs: &[Node]) -> Node {
        let mut y = self.vals[xs[0]].clone();
        for &x in &xs[1..] {
            simd::ops::add_assign(&mut y, &self.vals[x]);
        }
        self.push(Op::Add { xs: xs.to_vec() }, y)
    }
}

fn accumulate<T: Real>(slot: &mut Option<Array2<T>>, g: Array2<T>) {
    match slot {
        Some(acc) => simd::ops::add_assign(acc, &g),
        None => *slot = Some(g),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::RawConfig;
    use crate::stack::block_weights;

    fn weights(placement: &str, act: &str, experts: Option<usize>) -> super::BlockWeights<f32> {
        let m = RawConfig {
            placement: Some(placement.parse().unwrap()),
            width: Some(24),
            tokens: Some(4),
            heads: Some(2),
            act: Some(act.parse().unwrap()),
            moe_experts: experts,
            moe_top_k: experts.map(|_| 2),
            ..Default::default()
        }
        .resolve()
        .unwrap()
        .remove(0)
        .model;
        block_weights(&m, 5, 0, 1)
    }

    /// `Σ x²` in the documented lane order, one element at a time.
    fn lane_sum(values: impl Iterator<Item = f64>) -> f64 {
        let mut acc = [0.0f64; crate::simd::WIDE];
        for (i, v) in values.enumerate() {
            acc[i % crate::simd::WIDE] += v * v;
        }
        crate::simd::reduce::fold(acc)
    }

    #[test]
    fn weight_norms_follow_the_lane_order_on_every_path() {
        let mut transposed = weights("span", "relu", None);
        // Standard layout with other values, and (w_v) a column-major matrix, summed row by
        // row.
        transposed.attn.w_k = transposed.attn.w_k.t().as_standard_layout().into_owned();
        transposed.attn.w_v = transposed.attn.w_v.clone().reversed_axes();
        for w in [
            weights("span", "relu", None),
            weights("pre", "swiglu", None),
            weights("attn-only", "relu", None),
            weights("post", "gelu", Some(4)),
            transposed,
        ] {
            let want: Vec<(crate::weight::WeightName, f64)> = w
                .named()
                .into_iter()
                .map(|(name, ms)| {
                    let sum = ms
                        .iter()
                        .map(|m| {
                            if m.is_standard_layout() {
                                lane_sum(m.iter().map(|&v| f64::from(v)))
                            } else {
                                m.rows()
                                    .into_iter()
                                    .map(|r| lane_sum(r.iter().map(|&v| f64::from(v))))
                                    .fold(0.0, |a, v| a + v)
                            }
                        })
                        .fold(0.0, |a, v| a + v);
                    (name, sum.sqrt())
                })
                .collect();
            for isa in crate::simd::Isa::supported_all() {
                let got = crate::simd::with_isa(isa, || w.frobenius());
                for ((name, a), (name2, b)) in want.iter().zip(&got) {
                    assert_eq!(name, name2);
                    assert_eq!(a.to_bits(), b.to_bits(), "{name} on {isa:?}");
                }
            }
        }
    }
}
