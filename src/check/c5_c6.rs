//! C5, representation collapse (`1 − adj_cos_l` decays like `1/l` for `pre` and stays flat
//! for scaled `span`), and the literal C5 (span changes its stream more than pre), which
//! does not follow. C6, rank collapse (`token_cos_L` follows the correlation recursion;
//! unscaled `post` drives it to 1), is data (`analysis/claims/`) on the same stacks.

use super::tol::{self, Kind};
use super::verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
use super::{Claim, Evidence, Group, Sizes, Verdict};
use crate::config::SimConfig;
use crate::error::ConfigError;
use crate::placement::Placement;

/// C5 on `pre` and `span` at four times the preset's depth.
pub struct C5C6 {
    pre: SimConfig,
    span: SimConfig,
}

/// The C5 claims of a preset (C6's are data).
pub fn claims(s: &Sizes) -> Result<Vec<Box<dyn Claim>>, ConfigError> {
    Ok(vec![Box::new(C5C6 {
        pre: s.base(Placement::Pre).depth(4 * s.depth).build()?,
        span: s.base(Placement::Span).depth(4 * s.depth).build()?,
    })])
}

impl Claim for C5C6 {
    fn group(&self) -> Group {
        Group::C5C6
    }

    fn runs(&self) -> Vec<SimConfig> {
        vec![self.pre.clone(), self.span.clone()]
    }

    fn judge(&self, ev: &dyn Evidence) -> Vec<Verdict> {
        let mut out = Vec::new();
        let mut change = Vec::new();
        for cfg in [&self.pre, &self.span] {
            let m = cfg.model();
            let (p, depth, d) = (m.placement(), m.depth(), m.width());
            let r = ev.run(cfg);
            let (lo, hi) = (depth / 4, depth);
            let xs: Vec<f64> = (lo..=hi).map(|v| (v as f64).ln()).collect();
            let logc = |a: &[Option<f64>]| -> Vec<Option<f64>> {
                a.iter()
                    .map(|v| v.map(|c| (1.0 - c).max(1e-300).ln()))
                    .collect()
            };
            let slope = |a: &[Option<f64>]| super::c1::slope_of(&xs, &logc(a));
            let seeds = Estimate::of(&r.per_seed(|rec| slope(&rec.adj_cos[lo - 1..hi])));
            let pred = ev
                .predict(cfg)
                .ok()
                .and_then(|t| slope(&t.blocks.adj_cos.mean[lo - 1..hi]));
            out.push(Verdict::judge(
                Claimed::new(
                    format!("C5 representation change of {p}"),
                    if p == Placement::Pre {
                        "1 − adj_cos_l of pre decays like 1/l: log-log slope as the recursion predicts (→ −1)"
                    } else {
                        "1 − adj_cos_l of span with sqrt-depth scaling stays flat: log-log slope as predicted (≈ 0)"
                    },
                    "1 − adj_cos = 1 − sqrt(q_l/q_{l+1}) → (c_A + c_F)/(2 q_l) (pre); (c_A + c_F)/(4L) (span)",
                    format!("{p} L={depth} d={d}: slope of ln(1 − adj_cos) on ln l over l ∈ [{lo}, {hi}]"),
                ),
                seeds,
                Relation::Approx,
                pred.unwrap_or(f64::NAN),
                Allowance::new(
                    tol::bias(Kind::Absolute, tol::FORWARD_UNITS, d, 0.0),
                    "t SE over seeds + C_B·2/d",
                ),
                Burden::NotRefuted,
                Expect::Holds,
            ));
            let mean_change: Vec<f64> = r
                .sim
                .blocks
                .adj_cos
                .mean
                .iter()
                .flatten()
                .map(|c| 1.0 - c)
                .collect();
            change.push(mean_change.iter().sum::<f64>() / mean_change.len() as f64);
        }
        let depth = self.span.model().depth();
        out.push(Verdict::judge(
            Claimed::new(
                "C5 literal: span changes its stream more than pre",
                "span alleviates PreNorm's representation collapse: its blocks change the stream more (larger 1 − adj_cos)",
                "pre: (c_A + c_F)/(2 q_l) ≥ span: (c_A + c_F)/(4L) for l < 2L/(c_A + c_F)",
                format!("mean over blocks of 1 − adj_cos, L={depth}: measured = span, predicted column = pre"),
            ),
            Estimate::exact(change[1]),
            Relation::AtLeast,
            change[0],
            Allowance::new(0.0, "comparison of two measured means"),
            Burden::NotRefuted,
            Expect::Deviates,
        ));
        out
    }
}
