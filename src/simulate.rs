//! Runs a configuration over its seeds and summarizes every metric across them.
//!
//! Seeds (of one or many configurations) run in parallel on the current rayon pool; each
//! seed is computed by one thread from its own random streams and the summaries are formed
//! in seed order, so results are identical for any thread count.

use crate::config::{Precision, SimConfig};
use crate::cost;
use crate::error::ConfigError;
use crate::metrics::{Entry, Recorder, SeedRecord};
use crate::profile::{self, Phase, Timed};
use crate::real::Real;
use crate::result::{Blocks, Boundaries, BranchQ, RunResult, SeedDivergence, Source};
use crate::stack::{self, Failure, Memory};
use crate::summary::{Reason, Sample, Series};
use rayon::prelude::*;
use std::collections::BTreeMap;

pub use crate::result::ENGINE;

/// Memory that a seed may use to keep its weights and intermediates between the forward and
/// backward passes: a quarter of the memory this process may use (the machine's, or its
/// control group's limit when lower; 1 GiB where neither can be read), split over the cores
/// it may use, so the seeds running at once on every core fit it together. Larger stacks
/// recompute instead. Either way the results are bit-identical.
pub fn keep_bytes_per_core() -> f64 {
    static BYTES: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
        let total = usable_memory_bytes().map_or(GIB, |total| total / 4.0);
        total / cores() as f64
    })
}

/// Cores this process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `MemTotal` of `/proc/meminfo`, lowered to the memory limit of this process's control
/// group or any group above it (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`), as set
/// by a container, a batch scheduler's job or `systemd-run`.
fn usable_memory_bytes() -> Option<f64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let total = mem_total_bytes()?;
    let mut limit = f64::INFINITY;
    // Lines of /proc/self/cgroup are `id:controllers:path`; v2 has empty controllers.
    for entry in read("/proc/self/cgroup").unwrap_or_default().lines() {
        let mut parts = entry.splitn(3, ':');
        let (_, controllers, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(c), Some(p)) => (id, c, p),
            _ => continue,
        };
        let (root, file) = if controllers.is_empty() {
            ("/sys/fs/cgroup", "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
        } else {
            continue;
        };
        // The group itself and each group above it (inside a container the path may not
        // exist under /sys/fs/cgroup; the root's own file is then the container's limit).
        let mut dir = std::path::PathBuf::from(path.trim_start_matches('/'));
        loop {
            let file = std::path::Path::new(root).join(&dir).join(file);
            if let Some(v) = std::fs::read_to_string(file)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
            {
                limit = limit.min(v);
            }
            if !dir.pop() {
                break;
            }
        }
    }
    Some(total.min(limit))
}

/// `MemTotal` of `/proc/meminfo`.
fn mem_total_bytes() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Runs seed `seed` (an index in `0..cfg.seeds`) of `cfg`.
pub fn run_seed(cfg: &SimConfig, seed: usize) -> SeedRecord {
    run_seed_with(cfg, seed, false)
}

/// [`run_seed`], drawing the weights on a second thread when `prefetch` (see
/// [`stack::run_prefetched`]); the record is the same.
pub fn run_seed_with(cfg: &SimConfig, seed: usize, prefetch: bool) -> SeedRecord {
    match cfg.precision {
        Precision::F32 => run_seed_as::<f32>(cfg, seed, prefetch),
        Precision::F64 => run_seed_as::<f64>(cfg, seed, prefetch),
    }
}

fn run_seed_as<T: Real>(cfg: &SimConfig, seed: usize, prefetch: bool) -> SeedRecord {
    profile::timed(Phase::Seed, || {
        let m = &cfg.model;
        let mut rec = Recorder::new(m.depth, &m.weight_names());
        let inputs = profile::timed(Phase::Draw, || stack::inputs::<T>(m, cfg.seed, seed as u64));
        let weights = |l| {
            profile::timed(Phase::Draw, || {
                stack::block_weights::<T>(m, cfg.seed, seed as u64, l)
            })
        };
        let memory = memory_for(cfg);
        let obs = &mut Timed(&mut rec);
        // A kept stack draws every block before computing any, so there is nothing to
        // overlap the draws with.
        let outcome = if prefetch && memory == Memory::Recompute {
            stack::run_prefetched(m, weights, inputs, obs, memory)
        } else {
            stack::run(m, weights, inputs, obs, memory)
        };
        if let Err(d) = outcome {
            rec.record.diverged = Some(d);
        }
        rec.record
    })
}

/// How a seed of `cfg` runs: [`Memory::Keep`] when it fits [`keep_bytes_per_core`] (divided
/// further when more worker threads than cores run seeds at once). The choice does not
/// depend on the thread count up to the number of cores.
pub fn memory_for(cfg: &SimConfig) -> Memory {
    let over = rayon::current_num_threads() as f64 / cores() as f64;
    let budget = keep_bytes_per_core() / over.max(1.0);
    cost::memory_mode(cfg, budget)
}

/// Runs every `(config index, seed index)` pair of `jobs` on the current rayon pool and
/// hands each finished seed's record to `done`, on the worker thread that ran it, as soon
/// as it is finished. This is the one place seeds fan out, for `simulate`, `sweep` and
/// `check` alike. With at least twice as many worker threads as pairs, each seed draws its
/// weights on a thread of its own while it computes ([`stack::run_prefetched`]); records do
/// not depend on it, nor on the thread count. Stops at the first error `done` returns.
pub fn run_jobs<E: Send>(
    cfgs: &[SimConfig],
    jobs: &[(usize, usize)],
    done: &(dyn Fn(usize, usize, SeedRecord) -> Result<(), E> + Sync),
) -> Result<(), E> {
    let prefetch = 2 * jobs.len() <= rayon::current_num_threads();
    jobs.par_iter().try_for_each(|&(c, s)| {
        let rec = run_seed_with(&cfgs[c], s, prefetch);
        done(c, s, rec)
    })
}

/// Every `(config index, seed index)` pair of `cfgs`, config by config.
pub fn all_jobs(cfgs: &[SimConfig]) -> Vec<(usize, usize)> {
    cfgs.iter()
        .enumerate()
        .flat_map(|(c, cfg)| (0..cfg.seeds).map(move |s| (c, s)))
        .collect()
}

/// How [`simulate`] runs.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// Keep every seed's own values in the results ([`RunResult::per_seed`]).
    pub per_seed: bool,
    /// Called after each seed.
    pub progress: &'a (dyn Fn() + Sync),
}

fn nothing() {}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            per_seed: false,
            progress: &nothing,
        }
    }
}

/// Runs every seed of every configuration and summarizes each configuration over its
/// seeds, in the order of `cfgs`. An error (before anything runs) when a configuration
/// would not fit in memory ([`cost::check_fits`]).
pub fn simulate(cfgs: &[SimConfig], opts: &Options) -> Result<Vec<RunResult>, ConfigError> {
    for c in cfgs {
        cost::check_fits(c)?;
    }
    let slots: Vec<Vec<std::sync::Mutex<Option<SeedRecord>>>> = cfgs
        .iter()
        .map(|c| (0..c.seeds).map(|_| Default::default()).collect())
        .collect();
    let done = |c: usize, s: usize, rec: SeedRecord| -> Result<(), std::convert::Infallible> {
        *slots[c][s].lock().unwrap_or_else(|e| e.into_inner()) = Some(rec);
        (opts.progress)();
        Ok(())
    };
    let Ok(()) = run_jobs(cfgs, &all_jobs(cfgs), &done);
    Ok(cfgs
        .iter()
        .zip(slots)
        .map(|(cfg, slot)| {
            let seeds = slot
                .into_iter()
                .map(|m| {
                    m.into_inner()
                        .unwrap_or_else(|e| e.into_inner())
                        .unwrap_or_default()
                })
                .collect();
            summarize(cfg, seeds, opts.per_seed)
        })
        .collect())
}

/// One seed column of a record series: its values, and for each `None` the reason (the
/// run stopped before it, or `reached` — the quantity is not defined there).
fn column(
    rec: &SeedRecord,
    entry: Entry,
    values: &[Option<f64>],
    reached: Reason,
    f: impl Fn(f64) -> f64,
) -> Vec<Sample> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Some(x) => Sample::Value(f(*x)),
            None if !rec.reached(entry, i) => Sample::Missing(match rec.diverged {
                Some(d) if d.reason == Failure::Vanished => Reason::Vanished,
                _ => Reason::Diverged,
            }),
            None => Sample::Missing(reached),
        })
        .collect()
}

/// Summarizes the seed records of one configuration (keeping them when `per_seed`).
pub fn summarize(cfg: &SimConfig, seeds: Vec<SeedRecord>, per_seed: bool) -> RunResult {
    let m = &cfg.model;
    let series = |entry: Entry, reached: Reason, f: fn(&SeedRecord) -> &Vec<Option<f64>>| {
        let cols: Vec<Vec<Sample>> = seeds
            .iter()
            .map(|s| column(s, entry, f(s), reached, |v| v))
            .collect();
        Series::summarize(&cols)
    };
    let linear = |cols: Vec<Vec<Sample>>| {
        // 10^log10: an exactly-zero quantity is 0 in linear terms, and a value beyond f64 is
        // an overflow (counted by the summary, never written as infinity).
        let cols: Vec<Vec<Sample>> = cols
            .into_iter()
            .map(|c| {
                c.into_iter()
                    .map(|v| match v {
                        Sample::Value(x) => Sample::Value(10f64.powf(x)),
                        Sample::Missing(Reason::Zero) => Sample::Value(0.0),
                        other => other,
                    })
                    .collect()
            })
            .collect();
        Series::summarize(&cols)
    };
    let names = m.weight_names();
    let mut log10_param_grad = BTreeMap::new();
    let mut param_grad = BTreeMap::new();
    for (j, name) in names.iter().enumerate() {
        let cols: Vec<Vec<Sample>> = seeds
            .iter()
            .map(|s| {
                column(
                    s,
                    Entry::ParamGrad,
                    &s.log10_param_grad[j].1,
                    Reason::Zero,
                    |v| v,
                )
            })
            .collect();
        log10_param_grad.insert(*name, Series::summarize(&cols));
        param_grad.insert(*name, linear(cols));
    }
    let grad_cols: Vec<Vec<Sample>> = seeds
        .iter()
        .map(|s| column(s, Entry::Gradient, &s.log10_grad, Reason::Undefined, |v| v))
        .collect();
    let loss_cols: Vec<Vec<Sample>> = seeds
        .iter()
        .map(|s| column(s, Entry::Loss, &[s.loss], Reason::Undefined, |v| v))
        .collect();
    RunResult {
        source: Source::Simulation,
        config: cfg.to_raw(),
        diverged: seeds
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.diverged.map(|d| SeedDivergence {
                    seed: i,
                    block: d.block,
                    pass: d.pass,
                    reason: d.reason,
                })
            })
            .collect(),
        loss: Series::summarize(&loss_cols),
        boundaries: Boundaries {
            l: (0..=m.depth).collect(),
            q: series(Entry::Boundary, Reason::Undefined, |s| &s.q),
            log10_grad: Series::summarize(&grad_cols),
            grad: linear(grad_cols),
            token_cos: series(Entry::Boundary, Reason::Undefined, |s| &s.token_cos),
            eff_rank: series(Entry::Boundary, Reason::Undefined, |s| &s.eff_rank),
            stable_rank: series(Entry::Boundary, Reason::Undefined, |s| &s.stable_rank),
            rank1_residual: series(Entry::Boundary, Reason::Undefined, |s| &s.rank1_residual),
        },
        blocks: Blocks {
            l: (1..=m.depth).collect(),
            alpha: (1..=m.depth).map(|l| m.scale.alpha(l, m.depth)).collect(),
            adj_cos: series(Entry::Block, Reason::Undefined, |s| &s.adj_cos),
            q_pre_norm: series(Entry::Block, Reason::Undefined, |s| &s.q_pre_norm),
            branch_q: BranchQ {
                attn: series(Entry::Block, Reason::Undefined, |s| &s.branch_q_attn),
                ffn: series(Entry::Block, Reason::Undefined, |s| &s.branch_q_ffn),
            },
            log10_param_grad,
            param_grad,
        },
        per_seed: per_seed.then_some(seeds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keep_budget_is_a_share_of_readable_memory() {
        // Linux always has /proc/meminfo; a control group can only lower the total.
        let total = usable_memory_bytes().expect("MemTotal is readable");
        assert!(
            total > 0.0 && total <= mem_total_bytes().unwrap(),
            "{total}"
        );
        assert_eq!(keep_bytes_per_core(), total / 4.0 / cores() as f64);
    }
}
