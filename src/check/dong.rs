//! Dong, Cordonnier, Loukas 2021 (*Attention is Not All You Need*): softmax attention alone
//! loses rank doubly exponentially with depth, and skip connections prevent it.

use super::tol::{self, Kind};
use super::verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
use super::{Claim, Evidence, Group, Sizes, Verdict};
use crate::config::SimConfig;
use crate::error::ConfigError;
use crate::init::Init;
use crate::metrics::SeedRecord;
use crate::placement::Placement;

/// The depth of both stacks.
const DEPTH: usize = 6;

/// `rank1_residual` below this is rounding, not signal.
const FLOOR: f64 = 1e-13;

/// Dong 2021: doubly exponential collapse of `attn-only`, none for `attn-skip`.
pub struct Dong {
    only: SimConfig,
    skip: SimConfig,
}

/// The Dong 2021 claims of a preset.
pub fn claims(s: &Sizes) -> Result<Vec<Box<dyn Claim>>, ConfigError> {
    let softmax = |p| s.base(p).init(Init::FanIn).depth(DEPTH).build();
    Ok(vec![Box::new(Dong {
        only: softmax(Placement::AttnOnly)?,
        skip: softmax(Placement::AttnSkip)?,
    })])
}

/// `ln res_{l+1} / ln res_l` at the last step whose residual is still above the floor.
fn collapse_rate(rec: &SeedRecord) -> Option<f64> {
    let res: Vec<f64> = rec.rank1_residual.iter().map_while(|v| *v).collect();
    if res.len() < 3 {
        return None;
    }
    let last = (1..res.len() - 1)
        .rev()
        .find(|&l| res[l + 1] > FLOOR && res[l] < 1.0)?;
    Some(res[last + 1].ln() / res[last].ln())
}

impl Claim for Dong {
    fn group(&self) -> Group {
        Group::Dong
    }

    fn runs(&self) -> Vec<SimConfig> {
        vec![self.only.clone(), self.skip.clone()]
    }

    fn judge(&self, ev: &dyn Evidence) -> Vec<Verdict> {
        let m = self.only.model();
        let (d, n) = (m.width(), m.tokens());
        let r = ev.run(&self.only);
        let collapse = Verdict::judge(
            Claimed::new(
                "Dong 2021: attention-only rank collapse is doubly exponential",
                "softmax attention alone drives rank1_residual down doubly exponentially: ln res_{l+1} / ln res_l ≥ 2 (an exponential decay gives → 1; Dong's cubic rate gives → 3)",
                "res_{l+1} ≤ c · res_l³",
                format!("attn-only, softmax, d={d}, n={n}: last resolvable step"),
            ),
            Estimate::of(&r.per_seed(collapse_rate)),
            Relation::AtLeast,
            2.0,
            Allowance::new(
                0.0,
                "one-sided: mean − t SE ≥ 2 (the threshold splits exponential, 1, from cubic, 3)",
            ),
            Burden::Demonstrated,
            Expect::Holds,
        );
        let r = ev.run(&self.skip);
        let keep = r.per_seed(|rec| {
            let abs = |l: usize| Some(rec.rank1_residual[l]? * rec.q[l]?.sqrt());
            Some(abs(DEPTH)? / abs(0)?)
        });
        let skip = Verdict::judge(
            Claimed::new(
                "Dong 2021: skip connections prevent rank collapse",
                "with y = x + A(x) the distance from rank one does not shrink: ‖X_L − 1x̄ᵀ‖_F / ‖X_0 − 1x̄ᵀ‖_F ≥ 1",
                "zero-query: A annihilates the token-mean-free part, which is preserved exactly",
                format!("attn-skip, softmax, L={DEPTH}, d={d}"),
            ),
            Estimate::of(&keep),
            Relation::AtLeast,
            1.0,
            Allowance::new(
                tol::bias(Kind::Absolute, tol::FORWARD_UNITS, d, 0.0),
                "one-sided: mean + t SE + C_B·2/d ≥ 1",
            ),
            Burden::NotRefuted,
            Expect::Holds,
        );
        vec![collapse, skip]
    }
}
