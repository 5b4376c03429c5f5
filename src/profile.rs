//! Where a run's time goes, for `bench`: drawing weights and inputs, the metrics, and the
//! rest (forward and backward passes).
//!
//! Off by default; [`enable`] turns it on for the whole process. Each phase's wall time is
//! summed over every worker thread, so a share is a fraction of the threads' working time.
//! Timing only measures: results are the same with it on or off.

use crate::stack::Observer;
use crate::{block::BlockWeights, block::Probe};
use ndarray::Array2;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// A timed part of a seed's run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Drawing the inputs and each block's weights from their streams.
    Draw = 0,
    /// The observer's work at each boundary and block: moments, Gram spectra, cosines,
    /// gradient norms.
    Metrics = 1,
    /// The whole run of one seed (every other phase is inside it).
    Seed = 2,
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Starts timing phases in this process.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Runs `f`, adding its wall time to `phase` when timing is on.
#[inline]
pub fn timed<R>(phase: Phase, f: impl FnOnce() -> R) -> R {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let start = Instant::now();
    let r = f();
    let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    NANOS[phase as usize].fetch_add(ns, Ordering::Relaxed);
    r
}

/// Seconds spent in each phase so far, summed over threads.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Totals {
    /// Drawing inputs and weights.
    pub draw: f64,
    /// Computing the metrics.
    pub metrics: f64,
    /// Whole seeds.
    pub seed: f64,
}

impl Totals {
    /// Fraction of the seeds' time spent in `part` (NaN before any seed ran).
    pub fn share(&self, part: f64) -> f64 {
        part / self.seed
    }
}

/// The phase totals of this process.
pub fn totals() -> Totals {
    let s = |p: Phase| NANOS[p as usize].load(Ordering::Relaxed) as f64 * 1e-9;
    Totals {
        draw: s(Phase::Draw),
        metrics: s(Phase::Metrics),
        seed: s(Phase::Seed),
    }
}

/// An observer whose every call is timed as [`Phase::Metrics`].
pub struct Timed<'a, O>(pub &'a mut O);

impl<T, O: Observer<T>> Observer<T> for Timed<'_, O> {
    fn boundary(&mut self, l: usize, x: &Array2<T>) {
        timed(Phase::Metrics, || self.0.boundary(l, x));
    }
    fn block(&mut self, l: usize, x_prev: &Array2<T>, x: &Array2<T>, probe: Probe) {
        timed(Phase::Metrics, || self.0.block(l, x_prev, x, probe));
    }
    fn loss(&mut self, loss: f64) {
        timed(Phase::Metrics, || self.0.loss(loss));
    }
    fn gradient(&mut self, l: usize, dir: &Array2<T>, log10_norm: f64) {
        timed(Phase::Metrics, || self.0.gradient(l, dir, log10_norm));
    }
    fn param_grads(&mut self, l: usize, grads: &BlockWeights<T>, log10_scale: f64) {
        timed(Phase::Metrics, || self.0.param_grads(l, grads, log10_scale));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;
    use crate::simulate::run_seed;

    #[test]
    fn timing_measures_without_changing_results() {
        let cfg = RawConfig {
            placement: Some("span".parse().unwrap()),
            depth: Some(4),
            width: Some(32),
            tokens: Some(8),
            heads: Some(2),
            seeds: Some(1),
            ..Default::default()
        }
        .resolve()
        .unwrap()
        .remove(0);
        let plain = run_seed(&cfg, 0);
        enable();
        let before = totals();
        let timed = run_seed(&cfg, 0);
        let after = totals();
        assert_eq!(plain, timed);
        let (draw, metrics, seed) = (
            after.draw - before.draw,
            after.metrics - before.metrics,
            after.seed - before.seed,
        );
        // Other tests of this binary may add to the totals meanwhile, so only what this run
        // must have added is checked.
        assert!(
            draw > 0.0 && metrics > 0.0 && seed > 0.0,
            "{draw} {metrics} {seed}"
        );
    }
}
