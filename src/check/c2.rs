//! C2, PostNorm gradient: in the bulk of a `post` stack `log10 grad_l` is linear in `l`
//! with the slope of the per-block gain ratio (theory.md §4 C2), and the literal reading
//! (linear in `L − l` over the whole stack), which does not follow: the gradient first drops
//! by about `n` over the top `log2 n` blocks.

use super::c1::slope_of;
use super::tol;
use super::verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
use super::{Claim, Evidence, Group, Sizes, Verdict};
use crate::config::SimConfig;
use crate::error::ConfigError;
use crate::placement::Placement;
use std::f64::consts::LN_10;

/// C2 on a `post` stack of depth `max(d/5, 12)` ([`tol::C2_WIDTH_PER_BLOCK`],
/// [`tol::C2_MIN_DEPTH`]).
pub struct C2 {
    cfg: SimConfig,
}

/// The C2 claims of a preset.
pub fn claims(s: &Sizes) -> Result<Vec<Box<dyn Claim>>, ConfigError> {
    // Mean-field holds for unscaled trunk-normalized stacks only while L ≲ d/5 (§5.4).
    let l = (s.width / tol::C2_WIDTH_PER_BLOCK).max(tol::C2_MIN_DEPTH);
    let cfg = s.base(Placement::Post).depth(l).build()?;
    Ok(vec![Box::new(C2 { cfg })])
}

impl Claim for C2 {
    fn group(&self) -> Group {
        Group::C2
    }

    fn runs(&self) -> Vec<SimConfig> {
        vec![self.cfg.clone()]
    }

    fn judge(&self, ev: &dyn Evidence) -> Vec<Verdict> {
        let r = ev.run(&self.cfg);
        let m = self.cfg.model();
        let (l, d) = (m.depth(), m.width());
        // The top drop spans about log2 n blocks; the bulk window leaves it out at both ends.
        let top = (m.tokens() as f64).log2().ceil() as usize + 1;
        let (lo, hi) = (top.min(l / 3), l - top.min(l / 3));
        let xs: Vec<f64> = (lo..=hi).map(|v| v as f64).collect();
        let seeds = Estimate::of(&r.per_seed(|rec| slope_of(&xs, &rec.log10_grad[lo..=hi])));
        let pred = ev
            .predict(&self.cfg)
            .ok()
            .and_then(|t| slope_of(&xs, &t.boundaries.log10_grad.mean[lo..=hi]))
            .unwrap_or(f64::NAN);
        let bulk = Verdict::judge(
            Claimed::new(
                "C2 PostNorm gradient: bulk slope",
                "in the bulk of a post stack, log10 grad_l is linear in l with the per-block slope ½log10[(1+γ_A)(1+γ_F)/((1+c_A)(1+c_F))] (0 for relu once ρ = κ = 1)",
                "G_l/G_{l+1} = (1+α²γ_A(κ))(1+α²γ_F) / ((1+α²c_A(ρ))(1+α²c_F))",
                format!("post L={l} d={d}: slope of log10 grad over l ∈ [{lo}, {hi}]"),
            ),
            seeds,
            Relation::Approx,
            pred,
            Allowance::new(
                tol::C2_DRIFT_PER_BLOCK / (2.0 * d as f64 * LN_10),
                "t SE over seeds + log-normal drift ≤ 5/d per block in ln G (theory.md §5.4)",
            ),
            Burden::NotRefuted,
            Expect::Holds,
        );
        let drop =
            Estimate::of(&r.per_seed(|rec| Some(rec.log10_grad[l]? - rec.log10_grad[l - top]?)));
        let literal = Verdict::judge(
            Claimed::new(
                "C2 literal: log grad linear in L − l over the whole stack",
                "log grad_l is linear in L − l from the top",
                "top blocks: G drops by ≈ n over ≈ log2 n blocks; bulk slope 0 (relu)",
                format!("post L={l}: log10 grad_L − log10 grad_{{L−{top}}} (top drop) vs the bulk slope × {top}"),
            ),
            drop,
            Relation::Approx,
            pred * top as f64,
            Allowance::new(0.0, "t SE over seeds"),
            Burden::NotRefuted,
            Expect::Deviates,
        );
        vec![bulk, literal]
    }
}
