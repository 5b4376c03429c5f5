//! C5, representation collapse (`1 − adj_cos_l` decays like `1/l` for `pre` and stays flat
//! for scaled `span`), with the matched-α baselines (`pre`, `peri`, `lns` at span's
//! `sqrt-depth` α) and the late-half share of the total change; and the literal C5 (span
//! changes its stream more than unscaled pre), which does not follow. C6, rank collapse
//! (`token_cos_L` follows the correlation recursion), is data (`analysis/claims/`) on the
//! same stacks, plus unscaled `post`, `deepnorm` and unscaled `span-outer`.
//!
//! Which wrong result fails each C6 row of the claims files (all `~theory` at `final`):
//! `pre` and `span` — a `token_cos_L` off the recursion (too fast or too slow a collapse);
//! `pre`, `peri`, `lns` at `sqrt-depth` — the matched-α baselines collapsing further than
//! the recursion says (or not as far: `peri`'s 0.48 against `pre`'s 0.34 at L = 64 is a
//! placement effect at equal α); `post` — unscaled `post` stopping short of 1;
//! `deepnorm` — DeepNorm's constants failing to hold `ρ_L` near `ρ_0` (0.20);
//! unscaled `span-outer` — its correlation going to 1 after all instead of saturating near
//! 0.38 (its stream grows like `L²`, so its late blocks barely turn it).

use super::evidence::Run;
use super::tol::{self, Kind};
use super::verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
use super::{Claim, Evidence, Group, Sizes, Verdict};
use crate::config::SimConfig;
use crate::error::ConfigError;
use crate::metrics::{late_half_share, SeedRecord};
use crate::placement::Placement;
use crate::scale::Scale;

/// One stack of C5: its configuration, its name in the table, and what C5 says of it.
struct Stack {
    cfg: SimConfig,
    label: String,
    statement: &'static str,
    formula: &'static str,
}

/// C5 at four times the preset's depth: unscaled `pre`, `span` at its default `sqrt-depth`
/// scale, and `pre`, `peri`, `lns` at that same α.
pub struct C5C6 {
    stacks: Vec<Stack>,
}

/// The C5 claims of a preset (C6's are data).
pub fn claims(s: &Sizes) -> Result<Vec<Box<dyn Claim>>, ConfigError> {
    let depth = 4 * s.depth;
    let at = |p: Placement, scale: Option<Scale>| {
        let raw = s.base(p).depth(depth);
        match scale {
            Some(sc) => raw.scale(sc).build(),
            None => raw.build(),
        }
    };
    let matched = |p: Placement, statement, formula| -> Result<Stack, ConfigError> {
        Ok(Stack {
            cfg: at(p, Some(Scale::SqrtDepth))?,
            label: format!("{p}, sqrt-depth"),
            statement,
            formula,
        })
    };
    let stacks = vec![
        Stack {
            cfg: at(Placement::Pre, None)?,
            label: "pre".into(),
            statement: "1 − adj_cos_l of pre decays like 1/l: log-log slope as the recursion predicts (→ −1)",
            formula: "1 − adj_cos = 1 − sqrt(q_{l−1}/q_l) → (c_A + c_F)/(2 q_l) → 1/(2l)",
        },
        Stack {
            cfg: at(Placement::Span, None)?,
            label: "span".into(),
            statement: "1 − adj_cos_l of span with sqrt-depth scaling stays flat: log-log slope as predicted (≈ 0)",
            formula: "1 − adj_cos = 1 − [(1 + α²c_A)(1 + α²c_F)]^{−1/2} ≈ (c_A(ρ_l) + c_F)/(4L)",
        },
        matched(
            Placement::Pre,
            "1 − adj_cos_l of pre at span's α (sqrt-depth): log-log slope as predicted (slightly below 0: q_l grows from 1 to ≈ 1.4)",
            "1 − adj_cos ≈ α²(c_A(ρ_l) + c_F)/(2 q_l), α² = 1/(2L)",
        )?,
        matched(
            Placement::Peri,
            "1 − adj_cos_l of peri at span's α (sqrt-depth): log-log slope as predicted",
            "normalized branches: q_l = 1 + 2α² l; 1 − adj_cos from the recursion of theory.md §3",
        )?,
        matched(
            Placement::Lns,
            "1 − adj_cos_l of lns at span's α (sqrt-depth): log-log slope as predicted (→ −1: LayerNorm Scaling makes α_l² ∝ 1/l)",
            "lns = pre with α_l² = α²/l: 1 − adj_cos ≈ α²(c_A + c_F)/(2 l q_l)",
        )?,
    ];
    Ok(vec![Box::new(C5C6 { stacks })])
}

/// `f` of every seed's record, with the estimate incomplete (so FAIL) when a seed has no
/// value: missing data never passes.
fn every_seed(r: &Run, f: impl Fn(&SeedRecord) -> Option<f64>) -> Estimate {
    let values = r.per_seed(f);
    let mut e = Estimate::of(&values);
    e.complete = values.len() == r.seeds.len();
    e
}

/// `f` of each pair of same-index seeds of two runs (same master seed, so the same inputs
/// and, where the shapes agree, the same weights), incomplete when a pair has no value.
fn paired(a: &Run, b: &Run, f: impl Fn(&SeedRecord, &SeedRecord) -> Option<f64>) -> Estimate {
    let values: Vec<f64> = a
        .seeds
        .iter()
        .zip(&b.seeds)
        .filter_map(|(x, y)| f(x, y))
        .collect();
    let mut e = Estimate::of(&values);
    e.complete = values.len() == a.seeds.len() && a.seeds.len() == b.seeds.len();
    e
}

/// Mean over blocks of `1 − adj_cos` (`None` when a block has no value).
fn mean_change(adj_cos: &[Option<f64>]) -> Option<f64> {
    let c: Vec<f64> = adj_cos
        .iter()
        .map(|c| c.map(|c| 1.0 - c))
        .collect::<Option<_>>()?;
    (!c.is_empty()).then(|| c.iter().sum::<f64>() / c.len() as f64)
}

impl C5C6 {
    fn stack(&self, p: Placement, scale: Scale) -> &Stack {
        self.stacks
            .iter()
            .find(|s| s.cfg.model().placement() == p && s.cfg.model().scale() == scale)
            .expect("C5 builds this stack")
    }
}

impl Claim for C5C6 {
    fn group(&self) -> Group {
        Group::C5C6
    }

    fn runs(&self) -> Vec<SimConfig> {
        self.stacks.iter().map(|s| s.cfg.clone()).collect()
    }

    fn judge(&self, ev: &dyn Evidence) -> Vec<Verdict> {
        let mut slopes = Vec::new();
        let mut shares = Vec::new();
        for st in &self.stacks {
            let m = st.cfg.model();
            let (depth, d) = (m.depth(), m.width());
            let r = ev.run(&st.cfg);
            let predicted = ev.predict(&st.cfg).ok();
            let (lo, hi) = (depth / 4, depth);
            let xs: Vec<f64> = (lo..=hi).map(|v| (v as f64).ln()).collect();
            let logc = |a: &[Option<f64>]| -> Vec<Option<f64>> {
                a.iter()
                    .map(|v| v.map(|c| (1.0 - c).max(1e-300).ln()))
                    .collect()
            };
            let slope = |a: &[Option<f64>]| super::c1::slope_of(&xs, &logc(a));
            // Fails when the measured decay of 1 − adj_cos over [L/4, L] has another
            // exponent than the recursion's: pre not decaying like 1/l, span not flat, or
            // a matched-α baseline off its own predicted shape.
            let pred = predicted
                .as_ref()
                .and_then(|t| slope(&t.blocks.adj_cos.mean[lo - 1..hi]));
            slopes.push(Verdict::judge(
                Claimed::new(
                    format!("C5 representation change of {}", st.label),
                    st.statement,
                    st.formula,
                    format!(
                        "{} L={depth} d={d}: slope of ln(1 − adj_cos) on ln l over l ∈ [{lo}, {hi}]",
                        st.label
                    ),
                ),
                every_seed(&r, |rec| slope(&rec.adj_cos[lo - 1..hi])),
                Relation::Approx,
                pred.unwrap_or(f64::NAN),
                Allowance::new(
                    tol::bias(Kind::Absolute, tol::FORWARD_UNITS, d, 0.0),
                    "t SE over seeds + C_B·2/d",
                ),
                Burden::NotRefuted,
                Expect::Holds,
            ));
            // Fails when the upper half of the stack makes another fraction of the total
            // change than the recursion says: a late collapse the theory misses (the upper
            // blocks of span or of a matched-α stack barely turning the stream), or unscaled
            // pre spreading its change more evenly than 1/(2l) allows.
            let p = predicted
                .as_ref()
                .and_then(|t| late_half_share(&t.blocks.adj_cos.mean))
                .unwrap_or(f64::NAN);
            shares.push(Verdict::judge(
                Claimed::new(
                    format!("C5 late-half share of {}", st.label),
                    "the fraction of the total representation change Σ_l (1 − adj_cos_l) made by the upper half of the stack (l > L/2) is the recursion's",
                    "s = Σ_{l>L/2} (1 − adj_cos_l) / Σ_l (1 − adj_cos_l) on the predicted curve (½ for equal blocks, ≈ ln 2/ln L for 1/(2l))",
                    format!("{} L={depth} d={d}: per-seed share", st.label),
                ),
                every_seed(&r, |rec| late_half_share(&rec.adj_cos)),
                Relation::Approx,
                p,
                Allowance::new(
                    tol::share_bias(d, p),
                    "t SE over seeds + 2ε s(1 − s), ε = C_B·4/d relative per sum",
                ),
                Burden::NotRefuted,
                Expect::Holds,
            ));
        }
        let mut out = slopes;
        out.append(&mut shares);

        let pre = self.stack(Placement::Pre, Scale::None);
        let span = self.stack(Placement::Span, Scale::SqrtDepth);
        let pre_matched = self.stack(Placement::Pre, Scale::SqrtDepth);
        let (depth, d) = (span.cfg.model().depth(), span.cfg.model().width());
        let (r_pre, r_span, r_matched) = (
            ev.run(&pre.cfg),
            ev.run(&span.cfg),
            ev.run(&pre_matched.cfg),
        );
        // Both comparisons are of two simulations on the same seeds, not of simulation with
        // theory, so there is no mean-field allowance: the paired interval must lie on the
        // claimed side. The first fails if, at equal α, span's upper half made no larger a
        // share of the change than pre's (the placement itself not spreading the change);
        // the second if span's blocks did not change the stream more than pre's at equal α
        // (pre's later increments are divided by its growing q_l, span's are not).
        out.push(Verdict::judge(
            Claimed::new(
                "C5 matched α: span's late-half share exceeds pre's",
                "at span's own α (sqrt-depth for both), span's upper half makes a larger share of the total representation change than pre's",
                "pre: 1 − adj_cos ∝ (c_A + c_F)/q_l with q_l rising to ≈ 1.4; span: ∝ c_A(ρ_l) + c_F",
                format!("L={depth} d={d}: per-seed share(span) − share(pre, sqrt-depth), same seeds"),
            ),
            paired(&r_span, &r_matched, |a, b| {
                Some(late_half_share(&a.adj_cos)? - late_half_share(&b.adj_cos)?)
            }),
            Relation::AtLeast,
            0.0,
            Allowance::new(0.0, "comparison of two simulations on the same seeds"),
            Burden::Demonstrated,
            Expect::Holds,
        ));
        out.push(Verdict::judge(
            Claimed::new(
                "C5 matched α: span changes its stream more than pre",
                "at span's own α (sqrt-depth for both), span's blocks change the stream more than pre's: mean 1 − adj_cos, span over pre, at least 1",
                "span: (c_A + c_F)/(4L); pre: (c_A + c_F)/(4L q_l), q_l ≥ 1",
                format!("L={depth} d={d}: per-seed ratio of the mean over blocks of 1 − adj_cos, span / pre (sqrt-depth), same seeds"),
            ),
            paired(&r_span, &r_matched, |a, b| {
                Some(mean_change(&a.adj_cos)? / mean_change(&b.adj_cos)?)
            }),
            Relation::AtLeast,
            1.0,
            Allowance::new(0.0, "comparison of two simulations on the same seeds"),
            Burden::Demonstrated,
            Expect::Holds,
        ));
        // The literal claim compares span at its α = (2L)^{-1/2} with pre at α = 1: per
        // block, the larger α changes the stream more, whatever the placement.
        let change = |r: &Run| mean_change(&r.sim.blocks.adj_cos.mean).unwrap_or(f64::NAN);
        out.push(Verdict::judge(
            Claimed::new(
                "C5 literal: span changes its stream more than unscaled pre",
                "span alleviates PreNorm's representation collapse: its blocks change the stream more (larger 1 − adj_cos) than unscaled pre's",
                "pre (α = 1): (c_A + c_F)/(2 q_l) ≥ span (α² = 1/(2L)): (c_A + c_F)/(4L) for l < 2L/(c_A + c_F)",
                format!("mean over blocks of 1 − adj_cos, L={depth}: measured = span, predicted column = unscaled pre"),
            ),
            Estimate::exact(change(&r_span)),
            Relation::AtLeast,
            change(&r_pre),
            Allowance::new(0.0, "comparison of two measured means"),
            Burden::NotRefuted,
            Expect::Deviates,
        ));
        out
    }
}
