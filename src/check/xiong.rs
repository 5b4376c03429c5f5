//! Xiong et al. 2020 (*On Layer Normalization in the Transformer Architecture*): the
//! gradient of the last block's `W_2` does not shrink with depth for PostNorm and shrinks
//! like `L^{-1/2}` for PreNorm; held here as the log-log slope the theory predicts.

use super::tol::{self, Kind};
use super::verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
use super::{Claim, Evidence, Group, Sizes, Verdict};
use crate::config::SimConfig;
use crate::error::ConfigError;
use crate::fit;
use crate::placement::Placement;
use crate::weight::WeightName;

/// The depths of the slope.
const DEPTHS: [usize; 3] = [8, 16, 24];

/// Xiong 2020 for one placement.
pub struct Xiong {
    placement: Placement,
    cfgs: Vec<SimConfig>,
}

/// The Xiong 2020 claims of a preset (post, then pre).
pub fn claims(s: &Sizes) -> Result<Vec<Box<dyn Claim>>, ConfigError> {
    let mut out: Vec<Box<dyn Claim>> = Vec::new();
    for placement in [Placement::Post, Placement::Pre] {
        let cfgs = DEPTHS
            .iter()
            .map(|&l| s.base(placement).depth(l).build())
            .collect::<Result<_, _>>()?;
        out.push(Box::new(Xiong { placement, cfgs }));
    }
    Ok(out)
}

impl Claim for Xiong {
    fn group(&self) -> Group {
        Group::Xiong
    }

    fn runs(&self) -> Vec<SimConfig> {
        self.cfgs.clone()
    }

    fn judge(&self, ev: &dyn Evidence) -> Vec<Verdict> {
        let seeds = self.cfgs.first().map_or(0, |c| c.seeds());
        let d = self.cfgs.first().map_or(0, |c| c.model().width());
        let lnl: Vec<f64> = DEPTHS.iter().map(|&l| (l as f64).log10()).collect();
        let mut per: Vec<Vec<f64>> = vec![Vec::new(); seeds];
        let mut pred = Vec::new();
        for cfg in &self.cfgs {
            let l = cfg.model().depth();
            let r = ev.run(cfg);
            let j = cfg
                .model()
                .weight_names()
                .iter()
                .position(|&w| w == WeightName::FfnW2);
            for (k, rec) in r.seeds.iter().enumerate().take(seeds) {
                if let Some(v) = j.and_then(|j| rec.log10_param_grad[j].1[l - 1]) {
                    per[k].push(v);
                }
            }
            pred.push(ev.predict(cfg).ok().and_then(|t| {
                t.blocks
                    .log10_param_grad
                    .get(&WeightName::FfnW2)
                    .and_then(|sr| sr.mean[l - 1])
            }));
        }
        let slope = |v: &[f64]| fit::line(&lnl, v).map(|f| f.exponent);
        let slopes: Vec<f64> = per
            .iter()
            .filter(|v| v.len() == DEPTHS.len())
            .filter_map(|v| slope(v))
            .collect();
        let pv: Option<Vec<f64>> = pred.into_iter().collect();
        let p = self.placement;
        vec![Verdict::judge(
            Claimed::new(
                format!("Xiong 2020: {p} last-block FFN gradient vs depth"),
                if p == Placement::Post {
                    "PostNorm's gradient of the last block's W_2 does not shrink with depth (log-log slope as predicted, ≈ 0)"
                } else {
                    "PreNorm's gradient of the last block's W_2 shrinks with depth (log-log slope as predicted, → −1/2)"
                },
                "‖∂ℓ/∂W_2‖² = d_ff Σ_ij K_z,ij Γ_F,ij (theory.md §2.6)",
                format!("{p} L ∈ {DEPTHS:?} d={d}: slope of log10 ‖∂ℓ/∂W_2^(L)‖ on log10 L"),
            ),
            Estimate::of(&slopes),
            Relation::Approx,
            pv.and_then(|v| slope(&v)).unwrap_or(f64::NAN),
            Allowance::new(
                tol::bias(Kind::Absolute, tol::FORWARD_UNITS, d, 0.0),
                "t SE over seeds + C_B·2/d",
            ),
            Burden::NotRefuted,
            Expect::Holds,
        )]
    }
}
