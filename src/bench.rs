//! Benchmark workloads, GEMM rates, peak memory, and one typed line per measured case.
//!
//! FLOPs come from [`crate::cost`]'s analytic count (for [`Case::ExternalF32`], the count
//! without weight gradients). [`gemm_peak`] times the engine's own
//! GEMM backend (ndarray's `general_mat_mul`, i.e. `matrixmultiply`, single-threaded per
//! call) on a `1024 × 1024` product, one product per worker thread at once, so a workload's
//! GFLOP/s can be divided by the peak of the same process, precision and thread count.
//! [`measure`] runs one [`Case`] in the current process; `spannorm bench` runs each case in
//! a process of its own (so peak memory is the case's own) and reads back its [`Line`].

use crate::block::Grads;
use crate::choice_enum;
use crate::config::{Precision, SimConfig};
use crate::cost::{self, Memory};
use crate::error::ConfigError;
use crate::placement::Placement;
use crate::real::Real;
use crate::simulate::{self, Options};
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::time::Instant;

choice_enum!(
    /// A benchmark workload.
    Case, "case", {
        /// span, L = 64, d = 256, n = 64, H = 4, d_ff = 4d, 8 seeds, f32.
        ReferenceF32 => "reference-f32",
        /// The same in f64.
        ReferenceF64 => "reference-f64",
        /// reference-f32 as an external implementation would time it: forward, input
        /// gradients and metrics, no weight gradients, weights drawn inside the timing.
        ExternalF32 => "external-f32",
        /// post, L = 10 000, d = 128, n = 32, 1 seed, f64.
        DeepPost => "deep-post",
        /// span (α = L^{-1/2}), L = 10 000, d = 128, n = 32, 1 seed, f64.
        DeepSpan => "deep-span",
        /// deep-post at L = 2500: with it, time per block shows whether time is linear in depth.
        DeepPost2500 => "deep-post2500",
        /// deep-span at L = 2500.
        DeepSpan2500 => "deep-span2500",
        /// span, L = 16, d = 2048, n = 128, 2 seeds, f64.
        Wide => "wide",
        /// Every placement × L ∈ {16, 64, 256} × 4 seeds (d = 256, n = 64, f64), 1 thread.
        Sweep1t => "sweep1t",
        /// The same sweep on 2 threads; `bench` checks its result bytes equal the 1-thread ones.
        Sweep2t => "sweep2t",
        /// post, L = 4096, d = 256, n = 64, 1 seed, f64 (the earlier deep workload).
        DeepPost4096 => "deep-post4096",
        /// Training: span, L = 16, d = 128, n = 64, H = 4, vocabulary 256, batch 16, 20 AdamW
        /// steps of one seed, f32 ([`TRAIN_STEPS`]; the held-out loss at the end included).
        TrainStep => "train-step",
    }
);

/// Optimizer steps the `train-step` case times.
pub const TRAIN_STEPS: usize = 20;

/// The training settings of the `train-step` case.
pub fn train_settings() -> crate::train::Settings {
    use crate::train::optim::{Optimizer, Schedule};
    crate::train::Settings {
        task: crate::train::task::Task::Bigram,
        batch: 16,
        steps: TRAIN_STEPS,
        optimizer: Optimizer::Adamw,
        lr: 1e-3,
        warmup: 2,
        schedule: Schedule::Cosine,
        weight_decay: 0.1,
        clip: Some(1.0),
        record_every: 10,
    }
}

impl Case {
    /// The cases `bench` runs when none is named (all but `deep-post4096`).
    pub const DEFAULT: [Case; 11] = [
        Case::ReferenceF32,
        Case::ReferenceF64,
        Case::ExternalF32,
        Case::DeepPost,
        Case::DeepSpan,
        Case::DeepPost2500,
        Case::DeepSpan2500,
        Case::Wide,
        Case::Sweep1t,
        Case::Sweep2t,
        Case::TrainStep,
    ];

    /// The configurations of the case.
    pub fn configs(self) -> Result<Vec<SimConfig>, ConfigError> {
        let one =
            |p: Placement, depth: usize, width: usize, tokens: usize, seeds: usize, f32: bool| {
                SimConfig::builder()
                    .placement(p)
                    .depth(depth)
                    .width(width)
                    .tokens(tokens)
                    .seeds(seeds)
                    .precision(if f32 { Precision::F32 } else { Precision::F64 })
            };
        let raw = match self {
            Case::ReferenceF32 | Case::ExternalF32 => one(Placement::Span, 64, 256, 64, 8, true),
            Case::ReferenceF64 => one(Placement::Span, 64, 256, 64, 8, false),
            Case::DeepPost => one(Placement::Post, 10_000, 128, 32, 1, false),
            Case::DeepSpan => one(Placement::Span, 10_000, 128, 32, 1, false),
            Case::DeepPost2500 => one(Placement::Post, 2500, 128, 32, 1, false),
            Case::DeepSpan2500 => one(Placement::Span, 2500, 128, 32, 1, false),
            Case::Wide => one(Placement::Span, 16, 2048, 128, 2, false),
            Case::DeepPost4096 => one(Placement::Post, 4096, 256, 64, 1, false),
            Case::TrainStep => one(Placement::Span, 16, 128, 64, 1, true)
                .vocab(256)
                .mask(crate::attention::Mask::Causal)
                .loss(crate::loss::Loss::CrossEntropy),
            Case::Sweep1t | Case::Sweep2t => {
                // The eleven placements of the spec (the sweep of the reference rows in
                // analysis/performance.md), whatever `all` holds today.
                let mut all = Vec::new();
                for depth in [16, 64, 256] {
                    for &p in &<Placement as crate::choice::Choice>::ALL[..11] {
                        all.push(one(p, depth, 256, 64, 4, false).build()?);
                    }
                }
                return Ok(all);
            }
        };
        raw.resolve()
    }

    /// The thread count a case fixes, if any.
    pub fn threads(self) -> Option<usize> {
        match self {
            Case::Sweep1t => Some(1),
            Case::Sweep2t => Some(2),
            _ => None,
        }
    }

    /// The gradients a case computes: [`Grads::Inputs`] for `external-f32`, every gradient
    /// otherwise.
    pub fn grads(self) -> Grads {
        match self {
            Case::ExternalF32 => Grads::Inputs,
            _ => Grads::All,
        }
    }
}

/// What one measured case reports (one JSON line from a `bench` child process).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The case.
    pub case: Case,
    /// Wall seconds of the simulation.
    pub seconds: f64,
    /// Model FLOPs per second, in GFLOP/s.
    pub model_gflops: f64,
    /// Executed FLOPs (with recomputation) per second.
    pub executed_gflops: f64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Worker threads.
    pub threads: usize,
    /// The 1024² GEMM peak of this process, GFLOP/s.
    pub gemm_peak_gflops: f64,
    /// The slowest thread's share of it.
    pub gemm_peak_per_thread_min: f64,
    /// The workload's own largest product `n × d` by `d × d_ff`.
    pub gemm_shape: [usize; 3],
    /// The GEMM rate at that shape.
    pub gemm_shape_gflops: f64,
    /// Seeds that diverged.
    pub diverged: usize,
    /// `keep`, `recompute` or `mixed`.
    pub memory: String,
    /// Share of the seeds' time spent drawing weights and inputs.
    pub draw_share: f64,
    /// Share of the seeds' time spent on the metrics.
    pub metrics_share: f64,
    /// FNV-1a of the result bytes (JSON), to compare runs.
    pub digest: String,
    /// `simulate --dry-run`'s estimate of the wall seconds, made in the same process just
    /// before the run (`None` for cases it does not estimate).
    #[serde(default)]
    pub estimate_seconds: Option<f64>,
}

/// `(model_flops, executed_flops)` of every seed of every configuration in `cfgs`.
pub fn run_flops(cfgs: &[SimConfig]) -> (f64, f64) {
    run_flops_with(cfgs, Grads::All)
}

/// [`run_flops`] of runs computing the gradients `grads` asks for.
pub fn run_flops_with(cfgs: &[SimConfig], grads: Grads) -> (f64, f64) {
    cfgs.iter().fold((0.0, 0.0), |(m, e), c| {
        let (sm, se) = cost::seed_flops_with(c.model(), simulate::memory_for(c), grads);
        let s = c.seeds() as f64;
        (m + s * sm, e + s * se)
    })
}

/// GEMM throughput measured by [`gemm_peak`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmPeak {
    /// Sum over the worker threads, GFLOP/s.
    pub gflops: f64,
    /// The slowest thread's rate, GFLOP/s.
    pub per_thread_min: f64,
    /// Worker threads.
    pub threads: usize,
}

/// Best-of-`reps` GFLOP/s (`2 size³` FLOPs per product) of `C = A B` with `size × size`
/// matrices of `T`, every thread of the current rayon pool multiplying its own matrices
/// at the same time (as seeds do).
pub fn gemm_peak<T: Real>(size: usize, reps: usize) -> GemmPeak {
    gemm_rate::<T>((size, size, size), reps)
}

/// [`gemm_peak`] for an `m × k` by `k × n` product (`2 m k n` FLOPs): how fast the backend
/// runs a workload's own shapes.
pub fn gemm_rate<T: Real>((m, k, n): (usize, usize, usize), reps: usize) -> GemmPeak {
    let rates = rayon::broadcast(|_| {
        let a = Array2::from_shape_fn((m, k), |(i, j)| T::of(((i * 7 + j * 3) % 11) as f64 - 5.0));
        let b = Array2::from_shape_fn((k, n), |(i, j)| T::of(((i * 5 + j) % 13) as f64 - 6.0));
        let mut c = Array2::<T>::zeros((m, n));
        general_mat_mul(T::one(), &a, &b, T::zero(), &mut c); // warm-up: pages, caches
        let best = (0..reps.max(1))
            .map(|_| {
                let t = Instant::now();
                general_mat_mul(T::one(), &a, &b, T::zero(), &mut c);
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        2.0 * (m * k * n) as f64 / best / 1e9
    });
    GemmPeak {
        gflops: rates.iter().sum(),
        per_thread_min: rates.iter().cloned().fold(f64::INFINITY, f64::min),
        threads: rates.len(),
    }
}

/// Peak resident memory of this process in bytes (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// How the case's stacks run: `keep`, `recompute`, or `mixed`.
fn memory_modes(cfgs: &[SimConfig]) -> &'static str {
    let keeps = cfgs
        .iter()
        .filter(|c| simulate::memory_for(c) == Memory::Keep)
        .count();
    match keeps {
        0 => "recompute",
        k if k == cfgs.len() => "keep",
        _ => "mixed",
    }
}

/// Runs `case` in this process on the current rayon pool, with phase timing on, and
/// measures it.
pub fn measure(case: Case) -> Result<Line, ConfigError> {
    if case == Case::TrainStep {
        return measure_training(case);
    }
    let cfgs = case.configs()?;
    let estimate = simulate::estimate(&cfgs).seconds;
    crate::profile::enable();
    let start = Instant::now();
    let opts = Options {
        grads: case.grads(),
        ..Options::default()
    };
    let results = simulate::simulate(&cfgs, &opts)?;
    let secs = start.elapsed().as_secs_f64();
    let phases = crate::profile::totals();
    let (model, executed) = run_flops_with(&cfgs, case.grads());
    Ok(line(
        case,
        cfgs.first(),
        Timed {
            seconds: secs,
            model_flops: model,
            executed_flops: executed,
            diverged: results.iter().map(|r| r.diverged.len()).sum(),
            memory: memory_modes(&cfgs).into(),
            draw_share: phases.share(phases.draw),
            metrics_share: phases.share(phases.metrics),
            bytes: serde_json::to_vec(&results).unwrap_or_default(),
            estimate: Some(estimate),
        },
    ))
}

/// A measured run, before the machine's rates are added to it.
struct Timed {
    seconds: f64,
    model_flops: f64,
    executed_flops: f64,
    diverged: usize,
    memory: String,
    draw_share: f64,
    metrics_share: f64,
    /// The result bytes, for the digest.
    bytes: Vec<u8>,
    /// The dry run's estimate of `seconds`.
    estimate: Option<f64>,
}

/// The [`Line`] of a timed run whose shape is `cfg`'s: the peak resident memory, then the
/// 1024² GEMM peak in the run's precision and the rate on the workload's own largest
/// product, `X W_1` (`n × d` by `d × d_ff`, best of 50), both measured after the workload
/// on the same threads.
fn line(case: Case, cfg: Option<&SimConfig>, t: Timed) -> Line {
    let rss = peak_rss_bytes().map(|b| b as f64 / (1u64 << 20) as f64);
    let precision = cfg.map_or(Precision::F64, |c| c.precision());
    let peak = match precision {
        Precision::F32 => gemm_peak::<f32>(1024, 5),
        Precision::F64 => gemm_peak::<f64>(1024, 5),
    };
    let shape = cfg.map_or((1, 1, 1), |c| {
        let m = c.model();
        (m.tokens(), m.width(), m.d_ff())
    });
    let at_shape = match precision {
        Precision::F32 => gemm_rate::<f32>(shape, 50),
        Precision::F64 => gemm_rate::<f64>(shape, 50),
    };
    Line {
        case,
        seconds: t.seconds,
        model_gflops: t.model_flops / t.seconds / 1e9,
        executed_gflops: t.executed_flops / t.seconds / 1e9,
        peak_rss_mib: rss,
        threads: rayon::current_num_threads(),
        gemm_peak_gflops: peak.gflops,
        gemm_peak_per_thread_min: peak.per_thread_min,
        gemm_shape: [shape.0, shape.1, shape.2],
        gemm_shape_gflops: at_shape.gflops,
        diverged: t.diverged,
        memory: t.memory,
        draw_share: t.draw_share,
        metrics_share: t.metrics_share,
        digest: format!("{:016x}", crate::store::fnv1a64(&t.bytes)),
        estimate_seconds: t.estimate,
    }
}

/// The `train-step` case: [`TRAIN_STEPS`] steps of one seed, FLOPs from
/// [`crate::train::sequence_flops`] (no recomputation: executed equals model).
fn measure_training(case: Case) -> Result<Line, ConfigError> {
    let cfgs = case.configs()?;
    let cfg = &cfgs[0];
    let settings = train_settings();
    crate::profile::enable();
    let start = Instant::now();
    let trace = crate::train::train_seed(cfg, &settings, 0, &|| {});
    let secs = start.elapsed().as_secs_f64();
    let phases = crate::profile::totals();
    let passes = (TRAIN_STEPS * settings.batch + crate::train::EVAL_SEQUENCES) as f64;
    let flops = passes * crate::train::sequence_flops(cfg);
    Ok(line(
        case,
        Some(cfg),
        Timed {
            seconds: secs,
            model_flops: flops,
            executed_flops: flops,
            diverged: usize::from(trace.diverged_at.is_some()),
            memory: "keep".into(),
            // Shares of wall time: training has no per-seed phase total.
            draw_share: phases.draw / secs,
            metrics_share: phases.metrics / secs,
            bytes: serde_json::to_vec(&trace).unwrap_or_default(),
            estimate: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_resolves() {
        for &c in <Case as crate::choice::Choice>::ALL {
            let cfgs = c.configs().unwrap();
            assert!(!cfgs.is_empty(), "{c}");
            for cfg in &cfgs {
                assert!(cost::check_fits(cfg).is_ok(), "{c}");
            }
        }
        assert_eq!(Case::Sweep1t.configs().unwrap().len(), 33);
        assert_eq!(Case::Sweep2t.threads(), Some(2));
        assert_eq!(
            Case::ExternalF32.configs().unwrap(),
            Case::ReferenceF32.configs().unwrap()
        );
        assert_eq!(Case::ExternalF32.grads(), Grads::Inputs);
        assert_eq!(Case::ReferenceF32.grads(), Grads::All);
    }

    #[test]
    fn a_line_reads_back() {
        let line = Line {
            case: Case::Wide,
            seconds: 1.5,
            model_gflops: 2.0,
            executed_gflops: 3.0,
            peak_rss_mib: None,
            threads: 2,
            gemm_peak_gflops: 4.0,
            gemm_peak_per_thread_min: 2.0,
            gemm_shape: [1, 2, 3],
            gemm_shape_gflops: 1.0,
            diverged: 0,
            memory: "keep".into(),
            draw_share: 0.1,
            metrics_share: 0.05,
            digest: "00".into(),
            estimate_seconds: Some(1.25),
        };
        let text = serde_json::to_string(&line).unwrap();
        assert_eq!(serde_json::from_str::<Line>(&text).unwrap(), line);
    }
}
