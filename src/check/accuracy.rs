//! How close the predictions are: `|simulated − predicted| / |predicted|` percentiles of
//! `q`, `G` (the gradient's second moment, seed mean of `‖∂ℓ/∂X_l‖²`) and `token_cos` over
//! every layer `1..L` of every placement, for `zero-query` (exact maps) and softmax
//! attention. Reported next to the verdicts, not a verdict.

use super::{Evidence, Preset};
use crate::choice::Choice;
use crate::config::SimConfig;
use crate::init::Init;
use crate::placement::Placement;
use serde::Serialize;

/// Relative-error percentiles of one quantity.
#[derive(Clone, Debug, Serialize)]
pub struct Accuracy {
    /// `zero-query` (exact attention maps) or `softmax` (approximate, theory.md §2.5.3).
    pub attention: &'static str,
    /// `q`, `G` or `token_cos`.
    pub metric: &'static str,
    /// Width of the stacks.
    pub width: usize,
    /// Number of compared layers.
    pub count: usize,
    /// Median relative error.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Placements without a prediction (and why).
    pub skipped: Vec<String>,
}

/// The `p`-quantile of sorted values (nearest rank), NaN for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The configurations of the accuracy report: every placement at the curve sizes, with
/// `zero-query` and with `fan-in` (softmax) init; softmax predictions need
/// `n ≥ e^{4σ_s²}` (≈ 25 at `q = 1`, `ρ = 0.2`), so `n ≥ 64`.
pub fn configs(preset: Preset, init: Init) -> Vec<SimConfig> {
    let s = preset.sizes().for_curves();
    Placement::ALL
        .iter()
        .filter_map(|&p| s.base(p).init(init).tokens(s.tokens.max(64)).build().ok())
        .collect()
}

/// The accuracy report of `preset` on `ev` (configurations without a prediction are listed
/// as skipped and not simulated).
pub fn report(preset: Preset, ev: &dyn Evidence, progress: &dyn Fn(&str)) -> Vec<Accuracy> {
    let mut out = Vec::new();
    for init in [Init::ZeroQuery, Init::FanIn] {
        progress(&format!("accuracy ({init})"));
        let mut errs: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        let mut skipped = Vec::new();
        let cfgs = configs(preset, init);
        let width = cfgs.first().map_or(0, |c| c.model().width());
        let mut predicted = Vec::new();
        for cfg in cfgs {
            match ev.predict(&cfg) {
                Ok(t) => predicted.push((cfg, t)),
                Err(e) => skipped.push(e.to_string()),
            }
        }
        let run: Vec<SimConfig> = predicted.iter().map(|(c, _)| c.clone()).collect();
        ev.prepare(&run);
        for (cfg, th) in &predicted {
            let r = ev.run(cfg);
            let tb = &th.boundaries;
            for l in 1..=cfg.model().depth() {
                let g_sim = r.per_seed(|rec| rec.log10_grad[l].map(|v| 10f64.powf(2.0 * v)));
                let g_sim = g_sim.iter().sum::<f64>() / g_sim.len().max(1) as f64;
                let pairs = [
                    (r.sim.boundaries.q.mean[l], tb.q.mean[l]),
                    (
                        Some(g_sim),
                        tb.log10_grad.mean[l].map(|v| 10f64.powf(2.0 * v)),
                    ),
                    (r.sim.boundaries.token_cos.mean[l], tb.token_cos.mean[l]),
                ];
                for (k, (a, b)) in pairs.into_iter().enumerate() {
                    if let (Some(a), Some(b)) = (a, b) {
                        if b != 0.0 && a.is_finite() {
                            errs[k].push(((a - b) / b).abs());
                        }
                    }
                }
            }
        }
        for (k, metric) in ["q", "G", "token_cos"].into_iter().enumerate() {
            let mut e = errs[k].clone();
            e.sort_by(f64::total_cmp);
            out.push(Accuracy {
                attention: if init == Init::ZeroQuery {
                    "zero-query"
                } else {
                    "softmax"
                },
                metric,
                width,
                count: e.len(),
                p50: percentile(&e, 0.5),
                p90: percentile(&e, 0.9),
                p99: percentile(&e, 0.99),
                skipped: skipped.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (0..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 5.0);
        assert_eq!(percentile(&v, 0.9), 9.0);
        assert_eq!(percentile(&v, 1.0), 10.0);
        assert!(percentile(&[], 0.5).is_nan());
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
    }
}
