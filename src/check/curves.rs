//! Curves: every per-layer quantity (`q`, `token_cos`, `adj_cos`, `log10_grad`) of every
//! placement against its mean-field recursion, plus softmax with the causal mask and a
//! mixture of experts.
//!
//! A curve's verdict is one 95% statement over its layers: the half-width uses the
//! Bonferroni quantile ([`tol::t_family`]), and the verdict reports the layer whose gap uses
//! most of its tolerance. A layer with a prediction but fewer than two simulated seeds
//! makes the curve incomplete, and it fails.

use super::tol::{self, Kind};
use super::verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
use super::{Claim, Evidence, Group, Sizes, Verdict};
use crate::attention::Mask;
use crate::choice::Choice;
use crate::config::SimConfig;
use crate::error::ConfigError;
use crate::init::Init;
use crate::placement::Placement;
use crate::summary::Series;

/// The curves of one configuration.
pub struct Curves {
    label: String,
    cfg: SimConfig,
    formula: &'static str,
}

const ZERO_QUERY: &str = "theory.md §3 (kernel recursion, zero-query attention)";

/// Every placement (zero-query), pre and span with causal softmax, post with a mixture of 8
/// experts (top 2).
pub fn claims(s: &Sizes) -> Result<Vec<Box<dyn Claim>>, ConfigError> {
    let s = &s.for_curves();
    let mut out: Vec<Box<dyn Claim>> = Vec::new();
    for &p in Placement::ALL {
        out.push(Box::new(Curves {
            label: p.to_string(),
            cfg: s.base(p).build()?,
            formula: ZERO_QUERY,
        }));
    }
    // Variants whose maps are Monte Carlo: softmax with the causal mask (§2.5.5) and a
    // mixture of experts (§2.4).
    for p in [Placement::Pre, Placement::Span] {
        out.push(Box::new(Curves {
            label: format!("{p} causal-softmax"),
            cfg: s.base(p).init(Init::FanIn).mask(Mask::Causal).build()?,
            formula: "theory.md §3 with §2.5.5 (causal softmax, Gaussian-logit Monte Carlo)",
        }));
    }
    out.push(Box::new(Curves {
        label: "post moe-8/2".into(),
        cfg: s
            .base(Placement::Post)
            .moe_experts(8)
            .moe_top_k(2)
            .build()?,
        formula: "theory.md §3 with §2.4 (mixture of experts, Monte Carlo gates)",
    }));
    Ok(out)
}

/// The worst point of a curve comparison.
#[derive(Clone, Copy, Debug)]
pub struct Cmp {
    /// Index of the worst point.
    pub index: usize,
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
                mean: c.measured,
                half: Some(c.half),
                complete: c.complete,
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

/// `(metric, simulated, predicted, kind, bias units, per block)` of one curve.
type Item<'a> = (
    &'a str,
    &'a Series,
    &'a Series,
    Kind,
    &'a dyn Fn(usize) -> f64,
    bool,
);

const FROM: &str = "Bonferroni t over layers × seed SE + C_B·m/d (forward m = 2; gradient m = 2(L−l)+1, log-normal corrected)";

impl Claim for Curves {
    fn group(&self) -> Group {
        Group::Curves
    }

    fn runs(&self) -> Vec<SimConfig> {
        vec![self.cfg.clone()]
    }

    fn judge(&self, ev: &dyn Evidence) -> Vec<Verdict> {
        let p = &self.label;
        let th = match ev.predict(&self.cfg) {
            Ok(t) => t,
            Err(e) => {
                return vec![verdict(
                    Claimed::new(format!("curve {p}"), "theory applies", "", e.to_string()),
                    None,
                    "",
                )]
            }
        };
        let r = ev.run(&self.cfg);
        let (d, l) = (self.cfg.model().width(), self.cfg.model().depth());
        let fwd = |_: usize| tol::FORWARD_UNITS;
        let bwd = |i: usize| tol::gradient_units(l, i);
        let (b, t) = (&r.sim.boundaries, &th.boundaries);
        let items: [Item; 4] = [
            ("q", &b.q, &t.q, Kind::Relative, &fwd, false),
            (
                "token_cos",
                &b.token_cos,
                &t.token_cos,
                Kind::Absolute,
                &fwd,
                false,
            ),
            (
                "adj_cos",
                &r.sim.blocks.adj_cos,
                &th.blocks.adj_cos,
                Kind::Absolute,
                &fwd,
                true,
            ),
            (
                "log10_grad",
                &b.log10_grad,
                &t.log10_grad,
                Kind::LogGrad,
                &bwd,
                false,
            ),
        ];
        items
            .into_iter()
            .map(|(metric, sim, pred, kind, m, block)| {
                let c = compare(sim, pred, kind, d, m);
                // Boundaries are indexed by l; block series by l − 1.
                let at = c.map_or(String::new(), |c| {
                    if block {
                        format!("{p} L={l} d={d}: block {}", c.index + 1)
                    } else {
                        format!("{p} L={l} d={d}: boundary l = {}", c.index)
                    }
                });
                verdict(
                    Claimed::new(
                        format!("curve {p} {metric}"),
                        format!("{metric} of {p} follows the mean-field recursion at every layer"),
                        self.formula,
                        at,
                    ),
                    c,
                    FROM,
                )
            })
            .collect()
    }
}
