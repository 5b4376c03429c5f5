//! Curve comparisons: a simulated per-layer quantity against its mean-field recursion (the
//! presets' curves, for every placement, softmax with the causal mask and a mixture of
//! experts, are data: `analysis/claims/`, `op: ~theory`, `at: all`).
//!
//! A curve's verdict is one 95% statement over its layers: the half-width uses the
//! Bonferroni quantile ([`tol::t_family`]), and the verdict reports the layer whose gap uses
//! most of its tolerance. A layer with a prediction but fewer than two simulated seeds
//! makes the curve incomplete, and it fails.

use super::tol::{self, Kind};
use super::verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
use super::Verdict;
use crate::summary::Series;

/// The worst point of a curve comparison.
#[derive(Clone, Copy, Debug)]
pub struct Cmp {
    /// Index of the worst point.
    pub index: usize,
    /// Seeds behind the measured mean there.
    pub seeds: usize,
    /// Points compared (the Bonferroni `k` of the half-width).
    pub comparisons: usize,
    /// The measured seed mean there.
    pub measured: f64,
    /// Its Bonferroni half-width.
    pub half: f64,
    /// The target there (log-normal corrected for gradients).
    pub predicted: f64,
    /// The bias allowance there.
    pub bias: f64,
    /// Whether every predicted point had at least two seeds.
    pub complete: bool,
}

/// Compares a simulated series with a predicted one at every index where both exist; the
/// result is the index whose gap uses most of its tolerance. `m(i)` counts the bias units
/// between the anchor and index `i`.
pub fn compare(
    sim: &Series,
    th: &Series,
    kind: Kind,
    d: usize,
    m: &dyn Fn(usize) -> f64,
) -> Option<Cmp> {
    let idx: Vec<usize> = (0..sim.mean.len())
        .filter(|&i| {
            sim.mean[i].is_some() && th.mean.get(i).is_some_and(|v| v.is_some()) && sim.n[i] >= 2
        })
        .collect();
    let expected = th.mean.iter().filter(|v| v.is_some()).count();
    let complete = idx.len() == expected;
    let k = idx.len();
    let mut worst: Option<Cmp> = None;
    let mut worst_z = f64::NEG_INFINITY;
    for &i in &idx {
        let (Some(x), Some(p)) = (sim.mean[i], th.mean[i]) else {
            continue;
        };
        let n = sim.n[i];
        let se = match (sim.lo[i], sim.hi[i]) {
            (Some(lo), Some(hi)) => tol::standard_error((hi - lo) / 2.0, n),
            _ => 0.0,
        };
        let half = tol::t_family(n, k) * se;
        let sd = se * (n as f64).sqrt();
        let pred = match kind {
            Kind::LogGrad => tol::log_normal_target(p, sd),
            _ => p,
        };
        let bias = tol::bias(kind, m(i), d, p);
        let z = (x - pred).abs() / (half + bias).max(f64::MIN_POSITIVE);
        if z > worst_z {
            worst_z = z;
            worst = Some(Cmp {
                index: i,
                seeds: n,
                comparisons: k,
                measured: x,
                half,
                predicted: pred,
                bias,
                complete,
            });
        }
    }
    worst
}

/// The verdict of a comparison: `≈` the prediction within the Bonferroni interval plus the
/// bias allowance, not refuted; none to compare fails.
pub fn verdict(claimed: Claimed, cmp: Option<Cmp>, from: &str) -> Verdict {
    match cmp {
        Some(c) => Verdict::judge(
            claimed,
            Estimate {
                complete: c.complete,
                ..Estimate::sampled(c.measured, c.half, c.seeds, c.comparisons)
            },
            Relation::Approx,
            c.predicted,
            Allowance::new(c.bias, from),
            Burden::NotRefuted,
            Expect::Holds,
        ),
        None => Verdict::judge(
            Claimed {
                at: "no comparable values (every seed diverged or no prediction)".into(),
                ..claimed
            },
            Estimate::exact(f64::NAN),
            Relation::Approx,
            f64::NAN,
            Allowance::new(f64::NAN, from),
            Burden::NotRefuted,
            Expect::Holds,
        ),
    }
}
