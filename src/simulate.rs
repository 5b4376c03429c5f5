//! Runs a configuration over its seeds and summarizes every metric across them.
//!
//! Seeds (of one or many configurations) run in parallel on the current rayon pool; each
//! seed is computed by one thread from its own random streams and the summaries are formed
//! in seed order, so results are identical for any thread count.

use crate::block::Grads;
use crate::config::{ModelConfig, Precision, RawConfig, SimConfig};
use crate::ffn::Activation;
use crate::metrics::{Recorder, SeedRecord};
use crate::profile::{self, Phase, Timed};
use crate::real::Real;
use crate::stack::{self, Memory, Pass};
use crate::summary::Series;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Revision of the simulation's numbers. Bump it with any change that alters a simulated
/// value (summation order, random streams, a metric's definition): cached results carry it,
/// and `sweep`, `reproduce` and `check --cache` recompute files of another revision instead
/// of reusing them. Files written before the field existed read as revision 0, which they
/// are.
pub const ENGINE: u32 = 1;

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

/// A seed whose run hit a non-finite value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SeedDivergence {
    /// Seed index (`0..seeds`).
    pub seed: usize,
    pub block: usize,
    pub pass: Pass,
}

impl std::fmt::Display for SeedDivergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pass = match self.pass {
            Pass::Forward => "forward",
            Pass::Backward => "backward",
        };
        write!(
            f,
            "seed {} diverged at block {} ({pass})",
            self.seed, self.block
        )
    }
}

/// Metrics at block boundaries `l = 0..L`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Boundaries {
    pub l: Vec<usize>,
    pub q: Series,
    pub log10_grad: Series,
    /// `‖∂ℓ/∂X_l‖_F`, mean of the linear values (can underflow to 0 where `log10_grad`
    /// cannot).
    pub grad: Series,
    pub token_cos: Series,
    pub eff_rank: Series,
    pub stable_rank: Series,
    pub rank1_residual: Series,
}

/// Second moments of the sublayer outputs, per block.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BranchQ {
    pub attn: Series,
    pub ffn: Series,
}

/// Metrics per block `l = 1..L`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Blocks {
    pub l: Vec<usize>,
    /// The branch scale `α_l` of each block.
    pub alpha: Vec<f64>,
    pub adj_cos: Series,
    pub q_pre_norm: Series,
    pub branch_q: BranchQ,
    pub log10_param_grad: BTreeMap<&'static str, Series>,
    pub param_grad: BTreeMap<&'static str, Series>,
}

/// Where a result's numbers come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Measured on simulated stacks, summarized over seeds.
    Simulation,
    /// Predicted by mean-field theory (no seeds: `lo`, `hi` null, `n` 0).
    Theory,
}

/// One configuration's results, summarized over its seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunResult {
    pub source: Source,
    /// The resolved configuration, every default explicit.
    pub config: RawConfig,
    pub diverged: Vec<SeedDivergence>,
    /// The loss `ℓ` (one value per seed, summarized).
    pub loss: Series,
    pub boundaries: Boundaries,
    pub blocks: Blocks,
}

/// The weight names of a block, in the order of [`crate::block::BlockWeights::named`].
pub fn weight_names(cfg: &ModelConfig) -> Vec<&'static str> {
    let mut v = vec!["attn.w_q", "attn.w_k", "attn.w_v", "attn.w_o"];
    if cfg.placement.has_ffn() {
        let gated = cfg.act == Activation::Swiglu;
        match cfg.moe {
            None => v.extend(["ffn.w_1", "ffn.w_2"]),
            Some(_) => v.extend(["moe.w_r", "moe.w_1", "moe.w_2"]),
        }
        if gated {
            v.push(if cfg.moe.is_some() {
                "moe.w_g"
            } else {
                "ffn.w_g"
            });
        }
    }
    v
}

/// Runs seed `seed` (an index in `0..cfg.seeds`) of `cfg`.
pub fn run_seed(cfg: &SimConfig, seed: usize) -> SeedRecord {
    run_seed_with(cfg, seed, false)
}

/// [`run_seed`], drawing the weights on a second thread when `prefetch` (see
/// [`stack::run_prefetched`]); the record is the same.
pub fn run_seed_with(cfg: &SimConfig, seed: usize, prefetch: bool) -> SeedRecord {
    run_seed_grads(cfg, seed, prefetch, Grads::All)
}

/// [`run_seed_with`] computing only the gradients `grads` asks for (see
/// [`stack::run_with`]).
pub fn run_seed_grads(cfg: &SimConfig, seed: usize, prefetch: bool, grads: Grads) -> SeedRecord {
    match cfg.precision {
        Precision::F32 => run_seed_as::<f32>(cfg, seed, prefetch, grads),
        Precision::F64 => run_seed_as::<f64>(cfg, seed, prefetch, grads),
    }
}

fn run_seed_as<T: Real>(cfg: &SimConfig, seed: usize, prefetch: bool, grads: Grads) -> SeedRecord {
    profile::timed(Phase::Seed, || {
        let m = &cfg.model;
        let mut rec = Recorder::new(m.depth, &weight_names(m));
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
            stack::run_prefetched_with(m, weights, inputs, obs, memory, grads)
        } else {
            stack::run_with(m, weights, inputs, obs, memory, grads)
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
    Memory::within(&cfg.model, cfg.precision.bytes(), budget)
}

/// Runs every seed of every configuration, calling `progress` after each seed.
pub fn simulate(cfgs: &[SimConfig], progress: &(dyn Fn() + Sync)) -> Vec<RunResult> {
    simulate_with(cfgs, progress, Grads::All)
}

/// [`simulate`] computing only the gradients `grads` asks for: with [`Grads::Inputs`] the
/// results have no `param_grad` values (`bench` times the workload this way to compare
/// with implementations that compute only input gradients).
pub fn simulate_with(
    cfgs: &[SimConfig],
    progress: &(dyn Fn() + Sync),
    grads: Grads,
) -> Vec<RunResult> {
    let jobs: Vec<(usize, usize)> = cfgs
        .iter()
        .enumerate()
        .flat_map(|(c, cfg)| (0..cfg.seeds).map(move |s| (c, s)))
        .collect();
    // With at least twice as many worker threads as seeds, each seed draws its weights on a
    // thread of its own while it computes.
    let prefetch = 2 * jobs.len() <= rayon::current_num_threads();
    let records: Vec<SeedRecord> = jobs
        .par_iter()
        .map(|&(c, s)| {
            let r = run_seed_grads(&cfgs[c], s, prefetch, grads);
            progress();
            r
        })
        .collect();
    let mut it = records.into_iter();
    cfgs.iter()
        .map(|cfg| summarize(cfg, it.by_ref().take(cfg.seeds).collect()))
        .collect()
}

/// Summarizes the seed records of one configuration.
pub fn summarize(cfg: &SimConfig, seeds: Vec<SeedRecord>) -> RunResult {
    let m = &cfg.model;
    let col = |f: fn(&SeedRecord) -> &Vec<Option<f64>>| {
        Series::over_seeds(seeds.iter().map(|s| f(s).as_slice()))
    };
    let loss: Vec<[Option<f64>; 1]> = seeds.iter().map(|s| [s.loss]).collect();
    let names = weight_names(m);
    let mut log10_param_grad = BTreeMap::new();
    let mut param_grad = BTreeMap::new();
    for (j, name) in names.iter().enumerate() {
        let per_seed = || seeds.iter().map(|s| s.log10_param_grad[j].1.as_slice());
        log10_param_grad.insert(*name, Series::over_seeds(per_seed()));
        param_grad.insert(*name, Series::over_seeds_map(per_seed(), |v| 10f64.powf(v)));
    }
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
                })
            })
            .collect(),
        loss: Series::over_seeds(loss.iter().map(|v| v.as_slice())),
        boundaries: Boundaries {
            l: (0..=m.depth).collect(),
            q: col(|s| &s.q),
            log10_grad: col(|s| &s.log10_grad),
            grad: Series::over_seeds_map(seeds.iter().map(|s| s.log10_grad.as_slice()), |v| {
                10f64.powf(v)
            }),
            token_cos: col(|s| &s.token_cos),
            eff_rank: col(|s| &s.eff_rank),
            stable_rank: col(|s| &s.stable_rank),
            rank1_residual: col(|s| &s.rank1_residual),
        },
        blocks: Blocks {
            l: (1..=m.depth).collect(),
            alpha: (1..=m.depth).map(|l| m.scale.alpha(l, m.depth)).collect(),
            adj_cos: col(|s| &s.adj_cos),
            q_pre_norm: col(|s| &s.q_pre_norm),
            branch_q: BranchQ {
                attn: col(|s| &s.branch_q_attn),
                ffn: col(|s| &s.branch_q_ffn),
            },
            log10_param_grad,
            param_grad,
        },
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
