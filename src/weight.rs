//! The names of a block's weights, as they appear in results (`log10_param_grad.attn.w_q`).
//!
//! A block has the four attention projections and either a dense feed-forward network
//! (`W_1`, `W_2`, and `W_g` for swiglu) or a mixture of experts (router `W_r` and the experts'
//! `W_1`, `W_2`, `W_g`, each name grouping that matrix of every expert). Declaration order is
//! the order in which a block draws its weights; maps keyed by weight name (in result files)
//! are ordered by spelling.

use crate::choice::Choice;
use crate::choice_enum;

choice_enum!(
    /// One weight of a block (for a mixture of experts: that weight of every expert).
    WeightName, "weight", {
        /// Attention query projection `W_q`.
        AttnQ => "attn.w_q",
        /// Attention key projection `W_k`.
        AttnK => "attn.w_k",
        /// Attention value projection `W_v`.
        AttnV => "attn.w_v",
        /// Attention output projection `W_o`.
        AttnO => "attn.w_o",
        /// Feed-forward input projection `W_1`.
        FfnW1 => "ffn.w_1",
        /// Feed-forward output projection `W_2`.
        FfnW2 => "ffn.w_2",
        /// Feed-forward gate projection `W_g` (swiglu).
        FfnWg => "ffn.w_g",
        /// Mixture-of-experts router `W_r`.
        MoeWr => "moe.w_r",
        /// Every expert's `W_1`.
        MoeW1 => "moe.w_1",
        /// Every expert's `W_2`.
        MoeW2 => "moe.w_2",
        /// Every expert's `W_g` (swiglu).
        MoeWg => "moe.w_g",
    }
);

impl PartialOrd for WeightName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// By spelling, so maps keyed by weight name print in alphabetical order.
impl Ord for WeightName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl WeightName {
    /// The attention weights, in drawing order.
    pub const ATTN: [WeightName; 4] = [
        WeightName::AttnQ,
        WeightName::AttnK,
        WeightName::AttnV,
        WeightName::AttnO,
    ];

    /// The same weight of a mixture's experts (`ffn.w_1` → `moe.w_1`); other names unchanged.
    pub fn in_mixture(self) -> WeightName {
        match self {
            WeightName::FfnW1 => WeightName::MoeW1,
            WeightName::FfnW2 => WeightName::MoeW2,
            WeightName::FfnWg => WeightName::MoeWg,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_order_by_spelling_and_map_into_mixtures() {
        let mut all = WeightName::ALL.to_vec();
        all.sort();
        let names: Vec<&str> = all.iter().map(|w| w.name()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(WeightName::FfnWg.in_mixture(), WeightName::MoeWg);
        assert_eq!(WeightName::FfnW1.in_mixture(), WeightName::MoeW1);
        assert_eq!(WeightName::FfnW2.in_mixture(), WeightName::MoeW2);
        assert_eq!(WeightName::AttnV.in_mixture(), WeightName::AttnV);
        assert_eq!("moe.w_r".parse::<WeightName>().unwrap(), WeightName::MoeWr);
    }
}
