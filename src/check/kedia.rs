//! Kedia et al. 2024 (*Transformers get stable: an end-to-end signal propagation theory for
//! language models*): Pre-LN's backward recursion `b_{l−1} = b_l √(1 + 1/l)`, so
//! `grad_0/grad_L = √(L + 1)` and the exponent of `grad_0/grad_L` against `L` is ½. The
//! recursion takes each sublayer's backward gain equal to its forward gain; that holds when
//! the gradient is as correlated across tokens as the stream (uniform attention averages
//! both alike). The loss decides which: `mean-token` sends every token the same gradient,
//! `random-projection` and `cross-entropy` send independent ones, so attention's backward
//! gain falls below its forward gain and the exponent below ½ (`analysis/theory.md` §4,
//! "Kedia 2024").

use super::tol;
use super::verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
use super::{Claim, Evidence, Group, Sizes, Verdict};
use crate::config::SimConfig;
use crate::error::ConfigError;
use crate::fit;
use crate::loss::Loss;
use crate::placement::Placement;

/// The exponent of `grad_0/grad_L` in `L` for one loss, over a depth sweep of `pre`.
pub struct Kedia {
    loss: Loss,
    cfgs: Vec<SimConfig>,
}

/// Depths of the sweep: the first three of the preset's depth sweep.
fn depths(s: &Sizes) -> Vec<usize> {
    s.depths.iter().copied().take(3).collect()
}

/// The Kedia 2024 claims of a preset: one per loss.
pub fn claims(s: &Sizes) -> Result<Vec<Box<dyn Claim>>, ConfigError> {
    let mut out: Vec<Box<dyn Claim>> = Vec::new();
    for loss in [Loss::MeanToken, Loss::RandomProjection, Loss::CrossEntropy] {
        let cfgs = depths(s)
            .into_iter()
            .map(|l| {
                s.base(Placement::Pre)
                    .width(s.deep_width)
                    .depth(l)
                    .loss(loss)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(Box::new(Kedia { loss, cfgs }));
    }
    Ok(out)
}

/// The least-squares slope of `½ log10(L + 1)` on `log10 L`: Kedia's exponent at these
/// depths (½ as `L → ∞`).
pub fn kedia_exponent(depths: &[usize]) -> f64 {
    let xs: Vec<f64> = depths.iter().map(|&l| (l as f64).log10()).collect();
    let ys: Vec<f64> = depths
        .iter()
        .map(|&l| 0.5 * (l as f64 + 1.0).log10())
        .collect();
    fit::line(&xs, &ys).map_or(f64::NAN, |f| f.exponent)
}

impl Claim for Kedia {
    fn group(&self) -> Group {
        Group::Kedia
    }

    fn runs(&self) -> Vec<SimConfig> {
        self.cfgs.clone()
    }

    fn judge(&self, ev: &dyn Evidence) -> Vec<Verdict> {
        let depths: Vec<usize> = self.cfgs.iter().map(|c| c.model().depth()).collect();
        let d = self.cfgs[0].model().width();
        let xs: Vec<f64> = depths.iter().map(|&l| (l as f64).log10()).collect();
        let runs: Vec<_> = self.cfgs.iter().map(|c| ev.run(c)).collect();
        // Seed s at every depth: its own exponent.
        let seeds = runs.iter().map(|r| r.seeds.len()).min().unwrap_or(0);
        let per_seed: Vec<f64> = (0..seeds)
            .filter_map(|s| {
                let ys: Option<Vec<f64>> = runs
                    .iter()
                    .zip(&depths)
                    .map(|(r, &l)| {
                        let g = &r.seeds[s].log10_grad;
                        Some(g[0]? - g[l]?)
                    })
                    .collect();
                fit::line(&xs, &ys?).map(|f| f.exponent)
            })
            .collect();
        let mut estimate = Estimate::of(&per_seed);
        estimate.complete &= per_seed.len() == seeds;
        let target = kedia_exponent(&depths);
        let loss = self.loss;
        let (statement, expect) = match loss {
            Loss::MeanToken => (
                "with the mean-token loss (one gradient for every token) pre's grad_0/grad_L grows like √(L+1): Kedia's recursion holds",
                Expect::Holds,
            ),
            _ => (
                "the same recursion with a loss whose gradients are independent across tokens: attention's backward gain is below its forward gain, and the exponent falls short of ½",
                Expect::Deviates,
            ),
        };
        vec![Verdict::judge(
            Claimed::new(
                format!("Kedia 2024: pre grad exponent, {loss} loss"),
                statement,
                "b_{l−1} = b_l √(1 + 1/l) ⇒ grad_0/grad_L = √(L+1): slope of ½ log10(L+1) on log10 L",
                format!(
                    "pre d={d} L={depths:?}: per-seed least-squares slope of log10(grad_0/grad_L) on log10 L"
                ),
            ),
            estimate,
            Relation::Approx,
            target,
            Allowance::new(
                tol::exponent_bias(d),
                "t SE over seeds + C_B/d (the branch's 1/l share of each block's O(1/d) bias, summed: theory.md §4 Kedia)",
            ),
            Burden::NotRefuted,
            expect,
        )]
    }
}
