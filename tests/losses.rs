//! The losses: the default's results unchanged, each loss's top gradient kernel against
//! simulation at two widths, and the loss value of cross-entropy.

use spannorm::config::{RawConfig, SimConfig};
use spannorm::simulate::simulate;
use spannorm::summary::Series;
use spannorm::theory::predict;

const SEEDS: usize = 16;

fn cfg(placement: &str, loss: &str, width: usize) -> SimConfig {
    RawConfig {
        placement: Some(placement.parse().unwrap()),
        loss: Some(loss.parse().unwrap()),
        init: Some("zero-query".parse().unwrap()),
        depth: Some(6),
        width: Some(width),
        tokens: Some(8),
        heads: Some(2),
        seeds: Some(SEEDS),
        ..Default::default()
    }
    .build()
    .unwrap()
}

fn mean_se(s: &Series, i: usize) -> (f64, f64) {
    assert_eq!(s.n[i], SEEDS, "a seed diverged");
    let half = (s.hi[i].unwrap() - s.lo[i].unwrap()) / 2.0;
    (s.mean[i].unwrap(), half / spannorm::summary::t975(SEEDS))
}

/// `log10 grad` at the top (`l = L`: the loss's own kernel through the final map) and at the
/// input (`l = 0`), for each loss and each kind of final map (`x`, `norm(x)`, `dyt(x)`), at
/// two widths: within 4 standard errors (16 seeds) plus the gradient bias `2m/d` in `ln G`
/// (`m = 2(L − l) + 1`), after the log-normal correction `ln 10 · s²` (theory.md §5.5).
/// cross-entropy's two-row statistic is log-normal (theory.md §1.4): its relative error is
/// `O(e^{q}/V)`, below 1% at `q = 1`, `V = 1024`, inside the allowance.
#[test]
fn top_gradient_kernels_match_simulation_at_two_widths() {
    let depth = 6;
    for width in [64, 256] {
        for p in ["pre", "post", "dyt"] {
            for loss in ["mean-token", "cross-entropy"] {
                let c = cfg(p, loss, width);
                let sim = simulate(std::slice::from_ref(&c), &Default::default())
                    .unwrap()
                    .remove(0);
                let th = predict(&c).unwrap_or_else(|e| panic!("{p} {loss}: {e}"));
                for l in [depth, 0] {
                    let (m, se) = mean_se(&sim.boundaries.log10_grad, l);
                    let sd = se * (SEEDS as f64).sqrt();
                    let ln10 = std::f64::consts::LN_10;
                    let pred = th.boundaries.log10_grad.mean[l].unwrap() - ln10 * sd * sd;
                    let units = 2 * (depth - l) + 1;
                    let bias = 2.0 * units as f64 / width as f64 / (2.0 * ln10);
                    assert!(
                        (m - pred).abs() <= 4.0 * se + bias,
                        "{p} {loss} d={width} l={l}: simulated {m} ± {se} vs predicted {pred}"
                    );
                }
            }
        }
    }
}

/// cross-entropy at initialization: `ℓ ≈ log V + q/2` per token, with `q = 1` after a final
/// norm; the per-seed loss averages `n = 8` tokens, so its standard error over 16 seeds is
/// small, and the log-normal approximation errs by `O(e^q/V)`.
#[test]
fn cross_entropy_starts_at_log_v() {
    let c = cfg("pre", "cross-entropy", 128);
    let sim = simulate(std::slice::from_ref(&c), &Default::default())
        .unwrap()
        .remove(0);
    let th = predict(&c).unwrap();
    let want = (1024f64).ln() + 0.5;
    assert!((th.loss.mean[0].unwrap() - want).abs() < 1e-12);
    let (m, se) = mean_se(&sim.loss, 0);
    let allowance = 4.0 * se + 1f64.exp() / 1024.0;
    assert!((m - want).abs() <= allowance, "{m} ± {se} vs {want}");
}
