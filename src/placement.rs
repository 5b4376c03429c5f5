//! Where the norms sit: every placement's block formula, in one place.
//!
//! Block `l` (1-based) maps `x` to `y`; `α = α_l` is the branch scale ([`crate::scale`]).
//!
//! | name | block | stack output |
//! | --- | --- | --- |
//! | `pre` | `h = x + α A(N(x))`; `y = h + α F(N(h))` | `N(x_L)` |
//! | `post` | `h = N(x + α A(x))`; `y = N(h + α F(h))` | `x_L` |
//! | `span` | `h = x + α A(x)`; `o = h + α F(h)`; `y = N(o)` (`inner-norm`: `A(N(x))`, `F(N(h))`) | `x_L` |
//! | `span-outer` | `a = N(x + A(x))`; `b = N(a + F(a))`; `y = x + α b` | `N(x_L)` |
//! | `deepnorm` | `h = N(w x + α A(x))`; `y = N(w h + α F(h))`, `w = (2L)^{1/4}`, `β = (8L)^{-1/4}` on `W_v, W_o, W_1, W_2` | `x_L` |
//! | `b2t` | `a = N(x + α A(x))`; `y = N(a + α F(a) + x)` | `x_L` |
//! | `peri` | `h = x + α N(A(N(x)))`; `y = h + α N(F(N(h)))` | `N(x_L)` |
//! | `mix` | blocks `l ≤ ⌊L/4⌋` are `post`, the rest `pre` | `N(x_L)` |
//! | `lns` | `pre` with every `N(·)` in block `l` multiplied by `l^{-1/2}` | `N(x_L)` |
//! | `attn-only` | `y = A(x)` | `x_L` |
//! | `attn-skip` | `y = x + α A(x)` | `x_L` |
//!
//! `span` and `span-outer` are two readings of SpanNorm (Wang et al., arXiv 2601.22580),
//! whose block formula is not in its abstract; `deepnorm` is DeepNet (Wang et al. 2022),
//! `b2t` is Bottom-to-Top (Takase et al. 2023), `peri` is Peri-LN (Kim et al. 2025), `mix`
//! is Mix-LN (Li et al. 2024), `lns` is LayerNorm Scaling (Sun et al. 2025), the
//! attention-only controls are Dong et al. (2021).
//!
//! To add a placement: a variant with its spelling and formula in [`Placement`], an arm in
//! [`Placement::block`], and a row in the table above (plus [`Placement::output_norm`] or
//! [`Placement::has_ffn`] if it differs from the default).

use crate::block::BlockOps;
use crate::choice_enum;
use crate::scale::Scale;

/// What a block formula needs besides its input: where the block sits and its branch scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockCtx {
    /// The block's index `l`, 1-based.
    pub l: usize,
    /// The stack's depth `L`.
    pub depth: usize,
    /// The branch scale `α_l`.
    pub alpha: f64,
    /// `span` only: feed the sublayers `N(x)` and `N(h)`.
    pub inner_norm: bool,
}

choice_enum!(
    /// A normalization placement.
    Placement, "placement", {
        /// PreNorm: `h = x + α A(N(x))`; `y = h + α F(N(h))`; output `N(x_L)`.
        Pre => "pre",
        /// PostNorm: `h = N(x + α A(x))`; `y = N(h + α F(h))`.
        Post => "post",
        /// SpanNorm, canonical reading: `h = x + α A(x)`; `o = h + α F(h)`; `y = N(o)`.
        Span => "span",
        /// SpanNorm, outer reading: `a = N(x + A(x))`; `b = N(a + F(a))`; `y = x + α b`;
        /// output `N(x_L)`.
        SpanOuter => "span-outer",
        /// DeepNorm: `h = N(w x + α A(x))`; `y = N(w h + α F(h))`, `w = (2L)^{1/4}`.
        Deepnorm => "deepnorm",
        /// Bottom-to-top: `a = N(x + α A(x))`; `y = N(a + α F(a) + x)`.
        B2t => "b2t",
        /// Peri-LN: `h = x + α N(A(N(x)))`; `y = h + α N(F(N(h)))`; output `N(x_L)`.
        Peri => "peri",
        /// Mix-LN: `post` for `l ≤ ⌊L/4⌋`, `pre` after; output `N(x_L)`.
        Mix => "mix",
        /// LayerNorm Scaling: `pre` with every `N(·)` of block `l` times `l^{-1/2}`.
        Lns => "lns",
        /// Control: `y = A(x)`.
        AttnOnly => "attn-only",
        /// Control: `y = x + α A(x)`.
        AttnSkip => "attn-skip",
    }
);

impl Placement {
    /// The branch scale used when none is given.
    pub fn default_scale(self) -> Scale {
        match self {
            Placement::Span | Placement::SpanOuter => Scale::SqrtDepth,
            _ => Scale::None,
        }
    }

    /// Whether the stack output is `N(x_L)` rather than `x_L`.
    pub fn output_norm(self) -> bool {
        matches!(
            self,
            Placement::Pre
                | Placement::SpanOuter
                | Placement::Peri
                | Placement::Mix
                | Placement::Lns
        )
    }

    /// Whether blocks have a feed-forward sublayer.
    pub fn has_ffn(self) -> bool {
        !matches!(self, Placement::AttnOnly | Placement::AttnSkip)
    }

    /// Whether the placement adds a sublayer output to a residual sum (so `α` applies).
    pub fn has_residual(self) -> bool {
        self != Placement::AttnOnly
    }

    /// DeepNorm's residual weight `w = (2L)^{1/4}`; 1 elsewhere.
    pub fn residual_weight(self, depth: usize) -> f64 {
        match self {
            Placement::Deepnorm => (2.0 * depth as f64).powf(0.25),
            _ => 1.0,
        }
    }

    /// DeepNorm's init multiplier `β = (8L)^{-1/4}` on `W_v, W_o` and the feed-forward
    /// weights; 1 elsewhere.
    pub fn init_gain(self, depth: usize) -> f64 {
        match self {
            Placement::Deepnorm => (8.0 * depth as f64).powf(-0.25),
            _ => 1.0,
        }
    }

    /// Records block `c.l` on `t`, from input `x`; returns the block output.
    pub fn block<B: BlockOps>(self, t: &mut B, x: B::Node, c: &BlockCtx) -> B::Node {
        let (a, l) = (c.alpha, c.l);
        match self {
            Placement::Pre => pre_block(t, x, a, 1.0),
            Placement::Lns => pre_block(t, x, a, (l as f64).powf(-0.5)),
            Placement::Post => post_block(t, x, a),
            Placement::Mix => {
                if l <= c.depth / 4 {
                    post_block(t, x, a)
                } else {
                    pre_block(t, x, a, 1.0)
                }
            }
            Placement::Span => {
                let u = if c.inner_norm { t.norm(x) } else { x };
                let at = t.attn(u);
                let h = t.residual(x, a, at);
                let v = if c.inner_norm { t.norm(h) } else { h };
                let f = t.ffn(v);
                let o = t.residual(h, a, f);
                t.closing_norm(o)
            }
            Placement::SpanOuter => {
                let at = t.attn(x);
                let s = t.add(&[x, at]);
                let a1 = t.norm(s);
                let f = t.ffn(a1);
                let s2 = t.add(&[a1, f]);
                let b = t.closing_norm(s2);
                t.residual(x, a, b)
            }
            Placement::Deepnorm => {
                let w = self.residual_weight(c.depth);
                let at = t.attn(x);
                let wx = t.scale(w, x);
                let s = t.residual(wx, a, at);
                let h = t.norm(s);
                let f = t.ffn(h);
                let wh = t.scale(w, h);
                let s2 = t.residual(wh, a, f);
                t.closing_norm(s2)
            }
            Placement::B2t => {
                let at = t.attn(x);
                let s = t.residual(x, a, at);
                let a1 = t.norm(s);
                let f = t.ffn(a1);
                let fs = t.scale(a, f);
                let s2 = t.add(&[a1, fs, x]);
                t.closing_norm(s2)
            }
            Placement::Peri => {
                let u = t.norm(x);
                let at = t.attn(u);
                let an = t.norm(at);
                let h = t.residual(x, a, an);
                let v = t.norm(h);
                let f = t.ffn(v);
                let fnn = t.norm(f);
                t.residual(h, a, fnn)
            }
            Placement::AttnOnly => t.attn(x),
            Placement::AttnSkip => {
                let at = t.attn(x);
                t.residual(x, a, at)
            }
        }
    }
}

/// `h = x + α A(g N(x))`; `y = h + α F(g N(h))`.
fn pre_block<B: BlockOps>(t: &mut B, x: B::Node, a: f64, gain: f64) -> B::Node {
    let u = t.norm_gain(x, gain);
    let at = t.attn(u);
    let h = t.residual(x, a, at);
    let v = t.norm_gain(h, gain);
    let f = t.ffn(v);
    t.residual(h, a, f)
}

/// `h = N(x + α A(x))`; `y = N(h + α F(h))`.
fn post_block<B: BlockOps>(t: &mut B, x: B::Node, a: f64) -> B::Node {
    let at = t.attn(x);
    let s = t.residual(x, a, at);
    let h = t.norm(s);
    let f = t.ffn(h);
    let s2 = t.residual(h, a, f);
    t.closing_norm(s2)
}
