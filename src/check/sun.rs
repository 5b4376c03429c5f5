//! Sun et al. 2025 (*The Curse of Depth in LLMs*, LayerNorm Scaling): scaling every norm of
//! block `l` by `l^{-1/2}` reduces PreNorm's variance growth by the ratio the recursion
//! predicts.

use super::tol::{self, Kind};
use super::verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
use super::{Claim, Evidence, Group, Sizes, Verdict};
use crate::config::SimConfig;
use crate::error::ConfigError;
use crate::placement::Placement;

/// Sun 2025: `q_L(lns) / q_L(pre)` at four times the preset's depth.
pub struct Sun {
    lns: SimConfig,
    pre: SimConfig,
}

/// The Sun 2025 claims of a preset.
pub fn claims(s: &Sizes) -> Result<Vec<Box<dyn Claim>>, ConfigError> {
    Ok(vec![Box::new(Sun {
        lns: s.base(Placement::Lns).depth(4 * s.depth).build()?,
        pre: s.base(Placement::Pre).depth(4 * s.depth).build()?,
    })])
}

impl Claim for Sun {
    fn group(&self) -> Group {
        Group::Sun
    }

    fn runs(&self) -> Vec<SimConfig> {
        vec![self.lns.clone(), self.pre.clone()]
    }

    fn judge(&self, ev: &dyn Evidence) -> Vec<Verdict> {
        let (depth, d) = (self.lns.model().depth(), self.lns.model().width());
        let (a, b) = (ev.run(&self.lns), ev.run(&self.pre));
        let ratio: Vec<f64> = a
            .seeds
            .iter()
            .zip(&b.seeds)
            .filter_map(|(a, b)| Some(a.q[depth]? / b.q[depth]?))
            .collect();
        let q_last = |cfg: &SimConfig| {
            ev.predict(cfg)
                .ok()
                .map(|t| t.boundaries.q.mean[depth].unwrap_or(f64::NAN))
        };
        let p = match (q_last(&self.lns), q_last(&self.pre)) {
            (Some(a), Some(b)) => a / b,
            _ => f64::NAN,
        };
        vec![Verdict::judge(
            Claimed::new(
                "Sun 2025: LayerNorm Scaling reduces PreNorm's variance growth",
                "lns's q_L is reduced relative to pre's by the ratio the l^{-1/2} recursion predicts",
                "lns = pre with α_l² = 1/l: q_L ≈ 1 + Σ_l (c_A + c_F)/l",
                format!("q_L(lns)/q_L(pre), L={depth} d={d}"),
            ),
            Estimate::of(&ratio),
            Relation::Approx,
            p,
            Allowance::new(
                tol::bias(Kind::Relative, 2.0 * tol::FORWARD_UNITS, d, p),
                "t SE over seeds + C_B·2/d relative for each of the two",
            ),
            Burden::NotRefuted,
            Expect::Holds,
        )]
    }
}
