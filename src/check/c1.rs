//! C1, PreNorm variance growth: `q_l` of unscaled `pre` grows with the summed sublayer gains
//! (theory.md §4 C1), and the literal reading (one constant slope from the input's gains),
//! which does not follow because `c_A` drifts as the tokens align.

use super::tol::{self, Kind};
use super::verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
use super::{Claim, Evidence, Group, Sizes, Verdict};
use crate::config::SimConfig;
use crate::error::ConfigError;
use crate::fit;
use crate::placement::Placement;

/// C1 on a `pre` stack of four times the preset's depth.
pub struct C1 {
    cfg: SimConfig,
}

/// The C1 claims of a preset.
pub fn claims(s: &Sizes) -> Result<Vec<Box<dyn Claim>>, ConfigError> {
    let cfg = s.base(Placement::Pre).depth(4 * s.depth).build()?;
    Ok(vec![Box::new(C1 { cfg })])
}

/// The least-squares slope of `ys` on `xs`, `None` when a value is missing.
pub fn slope_of(xs: &[f64], ys: &[Option<f64>]) -> Option<f64> {
    let ys: Option<Vec<f64>> = ys.iter().copied().collect();
    fit::line(xs, &ys?).map(|f| f.exponent)
}

impl Claim for C1 {
    fn group(&self) -> Group {
        Group::C1
    }

    fn runs(&self) -> Vec<SimConfig> {
        vec![self.cfg.clone()]
    }

    fn judge(&self, ev: &dyn Evidence) -> Vec<Verdict> {
        let r = ev.run(&self.cfg);
        let m = self.cfg.model();
        let (l, d) = (m.depth(), m.width());
        let xs: Vec<f64> = (l / 2..=l).map(|v| v as f64).collect();
        let seeds = Estimate::of(&r.per_seed(|rec| slope_of(&xs, &rec.q[l / 2..=l])));
        let pred = ev
            .predict(&self.cfg)
            .ok()
            .and_then(|t| slope_of(&xs, &t.boundaries.q.mean[l / 2..=l]));
        let p = pred.unwrap_or(f64::NAN);
        let growth = Verdict::judge(
            Claimed::new(
                "C1 PreNorm variance growth",
                "q_l of pre (no scaling) grows linearly; its slope over l ∈ [L/2, L] is the summed sublayer gains on normalized inputs, c_A(ρ_l) + c_F",
                "q_{l+1} = q_l + α²(c_A(ρ_l) + c_F), c_A = σ⁴[ρ + (1−ρ)/n], c_F = σ⁴/2",
                format!("pre L={l} d={d}: least-squares slope over l ∈ [{}, {l}]", l / 2),
            ),
            seeds,
            Relation::Approx,
            p,
            Allowance::new(
                tol::bias(Kind::Relative, tol::FORWARD_UNITS, d, pred.unwrap_or(0.0)),
                "t SE over seeds + C_B·2/d relative",
            ),
            Burden::NotRefuted,
            Expect::Holds,
        );
        // The literal reading: one constant slope equal to the gains at the input.
        let gains0 =
            crate::theory::uniform_attention_gain(m, m.rho0()) + crate::theory::ffn_gain(m);
        let literal = Verdict::judge(
            Claimed::new(
                "C1 literal: constant slope from the input gains",
                "q_l grows with the constant slope c_A(ρ_0) + c_F",
                "c_A(ρ_0) + c_F",
                format!(
                    "pre L={l}: slope over l ∈ [{}, {l}]; c_A drifts as ρ_l → 1 (theory.md §4 C1)",
                    l / 2
                ),
            ),
            seeds,
            Relation::Approx,
            gains0,
            Allowance::new(0.0, "t SE over seeds"),
            Burden::NotRefuted,
            Expect::Deviates,
        );
        vec![growth, literal]
    }
}
