//! Runs a configuration over its seeds and summarizes every metric across them.
//!
//! Seeds (of one or many configurations) run in parallel on the current rayon pool; each
//! seed is computed by one thread from its own random streams and the summaries are formed
//! in seed order, so results are identical for any thread count.

use crate::block::{Grads, Probe};
use crate::config::{Precision, SimConfig};
use crate::cost;
use crate::error::ConfigError;
use crate::metrics::{Entry, Recorder, SeedRecord};
use crate::profile::{self, Phase, Timed};
use crate::real::Real;
use crate::result::{Blocks, Boundaries, BranchQ, RunResult, SeedDivergence, Source};
use crate::stack::{self, Failure, Memory, Observer};
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
    run_seed_with(cfg, seed, false, &|_| {})
}

/// Block passes of one seed of `cfg`: every block forward and backward, `2L` (the unit of
/// progress reports).
pub fn passes(cfg: &SimConfig) -> u64 {
    2 * cfg.model.depth as u64
}

/// Counts the block passes a run finishes (a block's forward output, a block's backward
/// gradient) and reports each to `progress`.
struct Ticks<'a, O> {
    inner: O,
    depth: usize,
    progress: &'a (dyn Fn(u64) + Sync),
    done: u64,
}

impl<T, O: Observer<T>> Observer<T> for Ticks<'_, O> {
    fn boundary(&mut self, l: usize, x: &ndarray::Array2<T>) {
        self.inner.boundary(l, x);
    }
    fn block(&mut self, l: usize, x_prev: &ndarray::Array2<T>, x: &ndarray::Array2<T>, p: Probe) {
        self.inner.block(l, x_prev, x, p);
        self.done += 1;
        (self.progress)(1);
    }
    fn loss(&mut self, loss: f64) {
        self.inner.loss(loss);
    }
    fn gradient(&mut self, l: usize, dir: &ndarray::Array2<T>, log10_norm: f64) {
        self.inner.gradient(l, dir, log10_norm);
        // The top's gradient comes from the loss; every other one from a block's backward.
        if l < self.depth {
            self.done += 1;
            (self.progress)(1);
        }
    }
    fn param_grads(&mut self, l: usize, grads: &crate::block::BlockWeights<T>, s: f64) {
        self.inner.param_grads(l, grads, s);
    }
}

/// [`run_seed`], drawing the weights on a second thread when `prefetch` (see
/// [`stack::run_prefetched`]; the record is the same), and reporting each finished block
/// pass to `progress` (all [`passes`] in the end, also when the run stops early).
pub fn run_seed_with(
    cfg: &SimConfig,
    seed: usize,
    prefetch: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> SeedRecord {
    run_seed_grads(cfg, seed, prefetch, progress, Grads::All)
}

/// [`run_seed_with`] computing only the gradients `grads` asks for (see
/// [`stack::run_with`]): with [`Grads::Inputs`] the record has no weight-gradient values.
pub fn run_seed_grads(
    cfg: &SimConfig,
    seed: usize,
    prefetch: bool,
    progress: &(dyn Fn(u64) + Sync),
    grads: Grads,
) -> SeedRecord {
    match cfg.precision {
        Precision::F32 => run_seed_as::<f32>(cfg, seed, prefetch, progress, grads),
        Precision::F64 => run_seed_as::<f64>(cfg, seed, prefetch, progress, grads),
    }
}

fn run_seed_as<T: Real>(
    cfg: &SimConfig,
    seed: usize,
    prefetch: bool,
    progress: &(dyn Fn(u64) + Sync),
    grads: Grads,
) -> SeedRecord {
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
        let mut obs = Ticks {
            inner: Timed(&mut rec),
            depth: m.depth,
            progress,
            done: 0,
        };
        // A kept stack draws every block before computing any, so there is nothing to
        // overlap the draws with.
        let outcome = if prefetch && memory == Memory::Recompute {
            stack::run_prefetched_with(m, weights, inputs, &mut obs, memory, grads)
        } else {
            stack::run_with(m, weights, inputs, &mut obs, memory, grads)
        };
        // A run that stopped early has no more passes to report.
        progress(passes(cfg).saturating_sub(obs.done));
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
    progress: &(dyn Fn(u64) + Sync),
    done: &(dyn Fn(usize, usize, SeedRecord) -> Result<(), E> + Sync),
) -> Result<(), E> {
    run_jobs_with(cfgs, jobs, progress, Grads::All, done)
}

/// [`run_jobs`] computing only the gradients `grads` asks for (see [`run_seed_grads`]).
pub fn run_jobs_with<E: Send>(
    cfgs: &[SimConfig],
    jobs: &[(usize, usize)],
    progress: &(dyn Fn(u64) + Sync),
    grads: Grads,
    done: &(dyn Fn(usize, usize, SeedRecord) -> Result<(), E> + Sync),
) -> Result<(), E> {
    let prefetch = 2 * jobs.len() <= rayon::current_num_threads();
    jobs.par_iter().try_for_each(|&(c, s)| {
        let rec = run_seed_grads(&cfgs[c], s, prefetch, progress, grads);
        done(c, s, rec)
    })
}

/// The block passes of `jobs` ([`passes`] per seed): the total of a progress report.
pub fn total_passes(cfgs: &[SimConfig], jobs: &[(usize, usize)]) -> u64 {
    jobs.iter().map(|&(c, _)| passes(&cfgs[c])).sum()
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
    /// Called with the number of block passes (forward or backward) just finished; the
    /// total is [`total_passes`] of every seed.
    pub progress: &'a (dyn Fn(u64) + Sync),
    /// The gradients each seed computes: [`Grads::All`] (the default), or [`Grads::Inputs`],
    /// which skips the products that form weight gradients. The results then have no
    /// `log10_param_grad` or `param_grad` entries (`bench` times the workload this way to
    /// compare with implementations that compute only input gradients); every other value
    /// is the same, bit for bit.
    pub grads: Grads,
}

fn nothing(_: u64) {}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            per_seed: false,
            progress: &nothing,
            grads: Grads::All,
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
        Ok(())
    };
    let Ok(()) = run_jobs_with(cfgs, &all_jobs(cfgs), opts.progress, opts.grads, &done);
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
            let mut r = summarize(cfg, seeds, opts.per_seed);
            if opts.grads == Grads::Inputs {
                // No weight gradient was formed: no entries, rather than entries that read
                // as exact zeros.
                r.blocks.log10_param_grad.clear();
                r.blocks.param_grad.clear();
                for s in r.per_seed.iter_mut().flatten() {
                    s.log10_param_grad.clear();
                }
            }
            r
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

/// What a run will cost, estimated before it runs ([`estimate`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// Per configuration, in order: how a seed runs, its peak bytes, the executed FLOPs and
    /// the seconds of one seed.
    pub configs: Vec<ConfigEstimate>,
    /// Seeds in all.
    pub seeds: usize,
    /// Worker threads the estimate is for.
    pub threads: usize,
    /// Peak bytes with `threads` seeds in memory at once (the largest ones).
    pub peak_bytes: f64,
    /// Executed FLOPs in all (products; recomputation included).
    pub flops: f64,
    /// Estimated wall seconds.
    pub seconds: f64,
}

/// The estimate of one configuration.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ConfigEstimate {
    /// The configuration's canonical text.
    pub config: String,
    /// `keep` or `recompute`.
    pub memory: &'static str,
    /// Peak bytes of one seed.
    pub bytes_per_seed: f64,
    /// Executed FLOPs of one seed.
    pub flops_per_seed: f64,
    /// Estimated seconds of one seed on one worker thread.
    pub seconds_per_seed: f64,
}

/// Seconds of a fixed part and of each block of one seed of `cfg`, measured on this machine
/// by running short stacks of the same shape (1 and 5 blocks) in `memory` mode: with every
/// worker thread running one at once (as seeds do), or, when weights are drawn ahead on a
/// spare core, alone with its drawing thread.
fn time_blocks<T: Real>(cfg: &SimConfig, memory: Memory, prefetch: bool) -> (f64, f64) {
    const SHORT: usize = 1;
    const LONG: usize = 5;
    let stacks: Vec<SimConfig> = [SHORT, LONG]
        .iter()
        .map(|&k| {
            cfg.to_raw()
                .depth(k)
                .seeds(1)
                .build()
                .unwrap_or_else(|_| cfg.clone())
        })
        .collect();
    let time = |one: &SimConfig| {
        let m = &one.model;
        (0..2)
            .map(|_| {
                let t = std::time::Instant::now();
                let mut rec = Recorder::new(m.depth, &m.weight_names());
                let inputs = stack::inputs::<T>(m, 0, 0);
                let w = |l| stack::block_weights::<T>(m, 0, 0, l);
                let _ = if prefetch {
                    stack::run_prefetched(m, w, inputs, &mut rec, memory)
                } else {
                    stack::run(m, w, inputs, &mut rec, memory)
                };
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let measure = || (time(&stacks[0]), time(&stacks[1]));
    let times: Vec<(f64, f64)> = if prefetch {
        vec![measure()]
    } else {
        rayon::broadcast(|_| measure())
    };
    let n = times.len().max(1) as f64;
    let (short, long) = (
        times.iter().map(|t| t.0).sum::<f64>() / n,
        times.iter().map(|t| t.1).sum::<f64>() / n,
    );
    let per_block = ((long - short) / (LONG - SHORT) as f64).max(0.0);
    ((short - SHORT as f64 * per_block).max(0.0), per_block)
}

/// Estimates what simulating `cfgs` on the current rayon pool will take, from short stacks
/// of each configuration's shape timed on this machine (six blocks, a fraction of a second,
/// memoized by shape): memory mode and peak bytes, executed FLOPs, and wall seconds. A seed
/// costs `a + L b` for the fixed part `a` and the time per block `b` (drawing, forward,
/// backward and metrics); seeds share the threads, so the whole run takes the larger of
/// the summed seed time over the threads and the longest seed.
pub fn estimate(cfgs: &[SimConfig]) -> Estimate {
    let threads = rayon::current_num_threads().max(1);
    let jobs = all_jobs(cfgs);
    let prefetch = 2 * jobs.len() <= threads;
    let mut memo: std::collections::HashMap<String, (f64, f64)> = Default::default();
    let mut configs = Vec::with_capacity(cfgs.len());
    for cfg in cfgs {
        let memory = memory_for(cfg);
        let key = format!(
            "{:?}{}",
            memory,
            cfg.to_raw()
                .depth(1)
                .seeds(1)
                .seed(0)
                .build()
                .map_or_else(|_| cfg.canonical(), |c| c.canonical())
        );
        let ahead = prefetch && memory == Memory::Recompute;
        let (fixed, block) = *memo.entry(key).or_insert_with(|| match cfg.precision {
            Precision::F32 => time_blocks::<f32>(cfg, memory, ahead),
            Precision::F64 => time_blocks::<f64>(cfg, memory, ahead),
        });
        let depth = cfg.model.depth as f64;
        let b = cfg.precision.bytes() as f64;
        let boundaries = (depth + 1.0) * (cfg.model.tokens * cfg.model.width) as f64 * b;
        let bytes = match memory {
            Memory::Keep => cost::keep_bytes(cfg) + boundaries,
            Memory::Recompute => cost::bytes_per_seed(cfg),
        };
        configs.push(ConfigEstimate {
            config: cfg.canonical(),
            memory: match memory {
                Memory::Keep => "keep",
                Memory::Recompute => "recompute",
            },
            bytes_per_seed: bytes,
            flops_per_seed: cost::seed_flops(&cfg.model, memory).1,
            seconds_per_seed: fixed + depth * block,
        });
    }
    let per_seed: Vec<f64> = jobs
        .iter()
        .map(|&(c, _)| configs[c].seconds_per_seed)
        .collect();
    let total: f64 = per_seed.iter().sum();
    let longest = per_seed.iter().cloned().fold(0.0, f64::max);
    let mut bytes: Vec<f64> = jobs
        .iter()
        .map(|&(c, _)| configs[c].bytes_per_seed)
        .collect();
    bytes.sort_by(|a, b| b.total_cmp(a));
    Estimate {
        seeds: jobs.len(),
        threads,
        peak_bytes: bytes.iter().take(threads).sum(),
        flops: jobs.iter().map(|&(c, _)| configs[c].flops_per_seed).sum(),
        seconds: (total / threads as f64).max(longest),
        configs,
    }
}
