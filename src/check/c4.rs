//! C4, span-outer's hard bound: every token satisfies `RMS(x_l) ≤ RMS(x_0) + Σ_{k≤l} α_k`
//! deterministically (triangle inequality with `RMS(N(·)) ≤ 1`), checked on every seed,
//! block and token, with and without scaling.

use super::tol;
use super::verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
use super::{Claim, Evidence, Group, Sizes, Verdict};
use crate::config::SimConfig;
use crate::error::ConfigError;
use crate::placement::Placement;
use crate::scale::Scale;

/// C4 over `span-outer` with `sqrt-depth` and without scaling.
pub struct C4 {
    cfgs: Vec<SimConfig>,
}

/// The C4 claims of a preset.
pub fn claims(s: &Sizes) -> Result<Vec<Box<dyn Claim>>, ConfigError> {
    let cfgs = [Scale::SqrtDepth, Scale::None]
        .into_iter()
        .map(|scale| s.base(Placement::SpanOuter).scale(scale).build())
        .collect::<Result<_, _>>()?;
    Ok(vec![Box::new(C4 { cfgs })])
}

impl Claim for C4 {
    fn group(&self) -> Group {
        Group::C4
    }

    /// None: the bound is checked on per-token traces, not on summaries.
    fn runs(&self) -> Vec<SimConfig> {
        Vec::new()
    }

    fn judge(&self, ev: &dyn Evidence) -> Vec<Verdict> {
        let mut worst: f64 = 0.0;
        let mut tight: f64 = 0.0;
        let mut checked = 0usize;
        'configs: for cfg in &self.cfgs {
            let m = cfg.model();
            for seed in 0..cfg.seeds() {
                let Some(rms) = ev.token_rms(cfg, seed) else {
                    // A diverged seed cannot be checked: the bound is not verified.
                    worst = f64::NAN;
                    break 'configs;
                };
                let mut budget = 0.0;
                for l in 1..=m.depth() {
                    budget += m.scale().alpha(l, m.depth());
                    for (i, v) in rms[l].iter().enumerate() {
                        let bound = rms[0][i] + budget;
                        let r = v / bound;
                        // NaN propagates (f64::max would drop it) and fails the check.
                        worst = if r.is_nan() || worst.is_nan() {
                            f64::NAN
                        } else {
                            worst.max(r)
                        };
                        tight = tight.max((v - rms[0][i]) / budget);
                        checked += 1;
                    }
                }
            }
        }
        let mut measured = Estimate::exact(worst);
        measured.complete = checked > 0;
        vec![Verdict::judge(
            Claimed::new(
                "C4 span-outer hard bound",
                "every token satisfies RMS(x_l) ≤ RMS(x_0) + Σ_{k≤l} α_k, deterministically",
                "triangle inequality with RMS(N(·)) ≤ 1",
                format!(
                    "span-outer, sqrt-depth and none, {checked} (seed, block, token) triples; largest RMS/bound; the bound's slack is used up to {:.0}%",
                    100.0 * tight
                ),
            ),
            measured,
            Relation::AtMost,
            1.0,
            Allowance::new(
                tol::ROUNDING,
                "floating-point rounding of the sums (≪ 1e-12 at these sizes)",
            ),
            Burden::NotRefuted,
            Expect::Holds,
        )]
    }
}
