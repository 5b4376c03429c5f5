//! C2, PostNorm gradient: in the bulk of a `post` stack `log10 grad_l` is linear in `l`
//! with the slope of the per-block gain ratio (theory.md §4 C2b: 0 for relu, about +0.05
//! decades per block for swiglu), the top drop (C2c: over the top `log2 n + 1` blocks `G`
//! falls toward the input by about `n`, as the recursion's `κ < ρ` boundary layer gives), and
//! the literal reading (linear in `L − l` over the whole stack), which does not follow.

use super::c1::slope_of;
use super::tol;
use super::tol::Kind;
use super::verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
use super::{Claim, Evidence, Group, Sizes, Verdict};
use crate::config::SimConfig;
use crate::error::ConfigError;
use crate::ffn::Activation;
use crate::placement::Placement;
use std::f64::consts::LN_10;

/// C2 on a `post` stack of depth `max(d/5, 12)` ([`tol::C2_WIDTH_PER_BLOCK`],
/// [`tol::C2_MIN_DEPTH`]), with relu (bulk slope 0, and the literal claim) or swiglu (a
/// growing bulk).
pub struct C2 {
    cfg: SimConfig,
}

/// The C2 claims of a preset: relu and swiglu stacks.
pub fn claims(s: &Sizes) -> Result<Vec<Box<dyn Claim>>, ConfigError> {
    // Mean-field holds for unscaled trunk-normalized stacks only while L ≲ d/5 (§5.4).
    let l = (s.width / tol::C2_WIDTH_PER_BLOCK).max(tol::C2_MIN_DEPTH);
    let relu = s.base(Placement::Post).depth(l).build()?;
    let swiglu = s
        .base(Placement::Post)
        .depth(l)
        .act(Activation::Swiglu)
        .build()?;
    let causal = s
        .base(Placement::Post)
        .depth(l)
        .mask(crate::attention::Mask::Causal)
        .build()?;
    Ok(vec![
        Box::new(C2 { cfg: relu }),
        Box::new(C2 { cfg: swiglu }),
        Box::new(C2 { cfg: causal }),
    ])
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
        let causal = m.mask() == crate::attention::Mask::Causal;
        let relu = m.act() == Activation::Relu;
        let tag = match (relu, causal) {
            (true, false) => String::new(),
            (true, true) => " (causal)".to_string(),
            (false, false) => format!(" ({})", m.act()),
            (false, true) => format!(" ({}, causal)", m.act()),
        };
        // The top drop spans about log2 n blocks; the bulk window leaves it out at both ends.
        let top = (m.tokens() as f64).log2().ceil() as usize + 1;
        let (lo, hi) = (top.min(l / 3), l - top.min(l / 3));
        let xs: Vec<f64> = (lo..=hi).map(|v| v as f64).collect();
        let seeds = Estimate::of(&r.per_seed(|rec| slope_of(&xs, &rec.log10_grad[lo..=hi])));
        let th = ev.predict(&self.cfg).ok();
        let th_grad = th.as_ref().map(|t| &t.boundaries.log10_grad.mean);
        let pred = th_grad
            .and_then(|g| slope_of(&xs, &g[lo..=hi]))
            .unwrap_or(f64::NAN);
        let bulk = Verdict::judge(
            Claimed::new(
                format!("C2 PostNorm gradient{tag}: bulk slope"),
                "in the bulk of a post stack, log10 grad_l is linear in l with the per-block slope ½log10[(1+γ_A)(1+γ_F)/((1+c_A)(1+c_F))] (0 for relu once ρ = κ = 1, about +0.05 for swiglu)",
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
        let per_seed_drop = r.per_seed(|rec| Some(rec.log10_grad[l]? - rec.log10_grad[l - top]?));
        let mut drop = Estimate::of(&per_seed_drop);
        drop.complete = per_seed_drop.len() == r.seeds.len();
        // The recursion's drop, each end log-normal corrected with its seeds' own spread
        // (theory.md §5.5), and the two ends' bias allowances: 2·top + 1 units at l = L − top,
        // 1 at the top (tol::gradient_units).
        let sd = |i: usize| {
            let v = r.per_seed(|rec| rec.log10_grad[i]);
            let k = v.len() as f64;
            let mean = v.iter().sum::<f64>() / k;
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt()
        };
        let target = th_grad
            .and_then(|g| {
                let top_end = tol::log_normal_target(g[l]?, sd(l));
                let bulk_end = tol::log_normal_target(g[l - top]?, sd(l - top));
                Some(top_end - bulk_end)
            })
            .unwrap_or(f64::NAN);
        let units = tol::gradient_units(l, l - top) + tol::gradient_units(l, l);
        let top_drop = Verdict::judge(
            Claimed::new(
                format!("C2c PostNorm top drop{tag}"),
                "over the top ≈ log2 n + 1 blocks of a post stack, G falls toward the input by about n (½log10 n decades of grad): the recursion's boundary layer where κ < ρ",
                "log10 grad_L − log10 grad_{L−top} from the (G, κ) recursion, ≈ ½log10 n",
                format!("post L={l} d={d} n={}: log10 grad_L − log10 grad_{{L−{top}}}", m.tokens()),
            ),
            drop,
            Relation::Approx,
            target,
            Allowance::new(
                tol::bias(Kind::LogGrad, units, d, 0.0),
                "t SE over seeds + C_B·(2·top + 2)/d in ln G",
            ),
            Burden::NotRefuted,
            Expect::Holds,
        );
        if !relu || causal {
            return vec![bulk, top_drop];
        }
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
        vec![bulk, top_drop, literal]
    }
}
