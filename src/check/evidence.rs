//! What claims are judged on: simulations (per-seed records and their summary), predictions,
//! and per-token traces, behind the [`Evidence`] trait so a test can hand a claim perturbed
//! or synthetic evidence; and the [`Runner`] that produces the real thing, simulating each
//! configuration once per run (in parallel, through [`crate::simulate::run_jobs`]) and
//! keeping per-seed records on disk so an interrupted run resumes.

use super::Claim;
use crate::config::SimConfig;
use crate::metrics::{SeedRecord, TokenRms};
use crate::result::RunResult;
use crate::simulate::{self, summarize};
use crate::stack::{self, Memory};
use crate::store;
use crate::theory::{self, TheoryError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// One configuration's simulation: its per-seed records and their summary.
#[derive(Clone, Debug)]
pub struct Run {
    /// The configuration.
    pub cfg: SimConfig,
    /// Each seed's record, in seed order.
    pub seeds: Vec<SeedRecord>,
    /// Their summary (means and intervals).
    pub sim: RunResult,
}

impl Run {
    /// The run of `cfg` from its records.
    pub fn new(cfg: SimConfig, seeds: Vec<SeedRecord>) -> Run {
        let sim = summarize(&cfg, seeds.clone(), false);
        Run { cfg, seeds, sim }
    }

    /// `f` of every seed's record, skipping seeds where it is `None`.
    pub fn per_seed(&self, f: impl Fn(&SeedRecord) -> Option<f64>) -> Vec<f64> {
        self.seeds.iter().filter_map(f).collect()
    }
}

/// What claims are judged on.
pub trait Evidence: Sync {
    /// The simulation of `cfg`.
    fn run(&self, cfg: &SimConfig) -> Arc<Run>;
    /// The mean-field prediction for `cfg`, or why there is none.
    fn predict(&self, cfg: &SimConfig) -> Result<RunResult, TheoryError>;
    /// A hint that `cfgs` will be asked for: simulate them together now if that is faster.
    fn prepare(&self, _cfgs: &[SimConfig]) {}
    /// The RMS of every token at every boundary (`[l][i]`) of seed `seed` of `cfg`, `None`
    /// when that seed's run stopped early.
    fn token_rms(&self, cfg: &SimConfig, seed: usize) -> Option<Vec<Vec<f64>>> {
        let m = cfg.model();
        let mut obs = TokenRms::default();
        let inputs = stack::inputs::<f64>(m, cfg.seed(), seed as u64);
        let w = |l| stack::block_weights(m, cfg.seed(), seed as u64, l);
        stack::run(m, w, inputs, &mut obs, Memory::Recompute).ok()?;
        Some(obs.0)
    }
}

/// A change to the theory, to prove that checks can fail.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Perturbation {
    /// The theory as derived.
    None,
    /// Multiply the feed-forward output gain `g_2` by this factor.
    FfnGain(f64),
}

/// The real evidence: simulations (memoized per run, cached on disk if asked) and
/// predictions (with an optional perturbation).
pub struct Runner<'a> {
    perturb: Perturbation,
    progress: &'a (dyn Fn(&str) + Sync),
    cache: Option<PathBuf>,
    memo: Mutex<HashMap<String, Arc<Run>>>,
}

/// How a configuration is named in progress lines.
fn describe(cfg: &SimConfig) -> String {
    let m = cfg.model();
    let mut what = format!(
        "  {} L={} d={} n={} {}",
        m.placement(),
        m.depth(),
        m.width(),
        m.tokens(),
        m.init()
    );
    if m.scale() != crate::scale::Scale::None {
        what += &format!(" scale {}", m.scale());
    }
    if m.mask() == crate::attention::Mask::Causal {
        what += " causal";
    }
    if let Some(x) = m.moe() {
        what += &format!(" moe-{}/{}", x.experts, x.top_k);
    }
    what + &format!(" ({} seeds)", cfg.seeds())
}

impl<'a> Runner<'a> {
    /// A runner with an optional perturbation of the theory, reporting progress lines.
    pub fn new(perturb: Perturbation, progress: &'a (dyn Fn(&str) + Sync)) -> Self {
        Runner {
            perturb,
            progress,
            cache: None,
            memo: Default::default(),
        }
    }

    /// Keeps each configuration's per-seed records in `dir`, so that an interrupted run
    /// resumes without repeating finished simulations. `dir` must exist and be writable
    /// ([`store::prepare`]); a file there that cannot be used is reported and recomputed.
    pub fn with_cache(mut self, dir: PathBuf) -> Self {
        self.cache = Some(dir);
        self
    }

    /// Simulates, in one parallel pass, every configuration the claims need that this run
    /// has not simulated yet and the cache does not hold, writing each to the cache as soon
    /// as its last seed is done.
    pub fn prepare_claims(&self, claims: &[Box<dyn Claim>]) {
        let cfgs: Vec<SimConfig> = claims.iter().flat_map(|c| c.runs()).collect();
        Evidence::prepare(self, &cfgs);
    }

    fn prepare_configs(&self, all: &[SimConfig]) {
        let mut cfgs: Vec<SimConfig> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for cfg in all {
            if seen.insert(cfg.canonical()) && !self.known(cfg) {
                cfgs.push(cfg.clone());
            }
        }
        let cfgs: Vec<SimConfig> = cfgs.into_iter().filter(|c| !self.take_cached(c)).collect();
        if cfgs.is_empty() {
            return;
        }
        (self.progress)(&format!("simulating {} configurations", cfgs.len()));
        self.simulate_all(&cfgs);
    }

    fn known(&self, cfg: &SimConfig) -> bool {
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&cfg.canonical())
    }

    fn remember(&self, cfg: &SimConfig, seeds: Vec<SeedRecord>) -> Arc<Run> {
        let run = Arc::new(Run::new(cfg.clone(), seeds));
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cfg.canonical(), run.clone());
        run
    }

    /// Takes `cfg` from the disk cache into the memo; whether it was there.
    fn take_cached(&self, cfg: &SimConfig) -> bool {
        let Some(dir) = &self.cache else { return false };
        match store::load_seeds(dir, cfg) {
            Ok(Some(seeds)) => {
                (self.progress)(&format!("{}: cached", describe(cfg)));
                self.remember(cfg, seeds);
                true
            }
            Ok(None) => false,
            Err(e) => {
                (self.progress)(&format!(
                    "{}: recomputing, unusable cache file {e}",
                    describe(cfg)
                ));
                false
            }
        }
    }

    fn simulate_all(&self, cfgs: &[SimConfig]) {
        let start = std::time::Instant::now();
        type Slots = Vec<(Vec<Option<SeedRecord>>, usize)>;
        let slots: Mutex<Slots> = Mutex::new(
            cfgs.iter()
                .map(|c| (vec![None; c.seeds()], c.seeds()))
                .collect(),
        );
        let done = |c: usize, s: usize, rec: SeedRecord| -> Result<(), std::convert::Infallible> {
            let finished = {
                let mut all = slots.lock().unwrap_or_else(|e| e.into_inner());
                let slot = &mut all[c];
                slot.0[s] = Some(rec);
                slot.1 -= 1;
                (slot.1 == 0).then(|| std::mem::take(&mut slot.0))
            };
            if let Some(records) = finished {
                let seeds: Vec<SeedRecord> =
                    records.into_iter().map(Option::unwrap_or_default).collect();
                let mut line = format!(
                    "{}: done at {:.1} s",
                    describe(&cfgs[c]),
                    start.elapsed().as_secs_f64()
                );
                if let Some(dir) = &self.cache {
                    if let Err(e) = store::store_seeds(dir, &cfgs[c], &seeds) {
                        line += &format!(" (not cached: {e})");
                    }
                }
                self.remember(&cfgs[c], seeds);
                (self.progress)(&line);
            }
            Ok(())
        };
        let Ok(()) = simulate::run_jobs(cfgs, &simulate::all_jobs(cfgs), &|_| {}, &done);
    }
}

impl Evidence for Runner<'_> {
    fn run(&self, cfg: &SimConfig) -> Arc<Run> {
        if let Some(r) = self
            .memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cfg.canonical())
        {
            return r.clone();
        }
        if !self.take_cached(cfg) {
            self.simulate_all(std::slice::from_ref(cfg));
        }
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cfg.canonical())
            .cloned()
            .unwrap_or_else(|| Arc::new(Run::new(cfg.clone(), Vec::new())))
    }

    fn prepare(&self, cfgs: &[SimConfig]) {
        self.prepare_configs(cfgs);
    }

    fn predict(&self, cfg: &SimConfig) -> Result<RunResult, TheoryError> {
        match self.perturb {
            Perturbation::None => theory::predict_memo(cfg),
            Perturbation::FfnGain(f) => theory::predict_with(cfg, &|c| c.g_2 *= f),
        }
    }
}
