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

use crate::choice_enum;
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
