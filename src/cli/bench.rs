//! `spannorm bench`.

use super::{pool, usage};
use crate::bench::{fnv1a, gemm_peak, gemm_rate, peak_rss_bytes, run_flops_with, GemmPeak};
use crate::block::Grads;
use crate::config::{Precision, RawConfig, SimConfig};
use crate::stack::Memory;
use crate::{profile, simulate};
use anyhow::Context;
use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Workloads to run [default: every workload but deep-post4096].
    #[arg(long = "case", value_enum)]
    pub cases: Vec<BenchCase>,
    /// Worker threads [default: all cores; the sweep cases fix their own].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Runs of each case; the table shows the fastest and how much slower the slowest was.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Run one case in this process and print its JSON line (used by `bench` itself).
    #[arg(long, hide = true)]
    pub child: bool,
}

/// A benchmark workload (the ones of issue 5, and the older deep one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchCase {
    /// span, L = 64, d = 256, n = 64, H = 4, d_ff = 4d, 8 seeds, f32.
    ReferenceF32,
    /// The same in f64.
    ReferenceF64,
    /// reference-f32 as an external implementation would time it: forward, input
    /// gradients and metrics, no weight gradients, weights drawn inside the timing.
    ExternalF32,
    /// post, L = 10 000, d = 128, n = 32, 1 seed, f64.
    DeepPost,
    /// span (α = L^{-1/2}), L = 10 000, d = 128, n = 32, 1 seed, f64.
    DeepSpan,
    /// deep-post at L = 2500: with it, time per block shows whether time is linear in depth.
    DeepPost2500,
    /// deep-span at L = 2500.
    DeepSpan2500,
    /// span, L = 16, d = 2048, n = 128, 2 seeds, f64.
    Wide,
    /// Every placement × L ∈ {16, 64, 256} × 4 seeds (d = 256, n = 64, f64), 1 thread.
    Sweep1t,
    /// The same sweep on 2 threads; `bench` checks its result bytes equal the 1-thread ones.
    Sweep2t,
    /// post, L = 4096, d = 256, n = 64, 1 seed, f64 (the earlier deep workload).
    DeepPost4096,
}

const DEFAULT_CASES: [BenchCase; 10] = [
    BenchCase::ReferenceF32,
    BenchCase::ReferenceF64,
    BenchCase::ExternalF32,
    BenchCase::DeepPost,
    BenchCase::DeepSpan,
    BenchCase::DeepPost2500,
    BenchCase::DeepSpan2500,
    BenchCase::Wide,
    BenchCase::Sweep1t,
    BenchCase::Sweep2t,
];

impl BenchCase {
    fn configs(self) -> Result<Vec<SimConfig>, crate::error::ConfigError> {
        let raw = |placement: &str, depth, width, tokens, seeds, precision: &str| RawConfig {
            placement: Some(placement.into()),
            depth: Some(depth),
            width: Some(width),
            tokens: Some(tokens),
            seeds: Some(seeds),
            precision: Some(precision.into()),
            ..Default::default()
        };
        let one = match self {
            BenchCase::ReferenceF32 | BenchCase::ExternalF32 => raw("span", 64, 256, 64, 8, "f32"),
            BenchCase::ReferenceF64 => raw("span", 64, 256, 64, 8, "f64"),
            BenchCase::DeepPost => raw("post", 10_000, 128, 32, 1, "f64"),
            BenchCase::DeepSpan => raw("span", 10_000, 128, 32, 1, "f64"),
            BenchCase::DeepPost2500 => raw("post", 2500, 128, 32, 1, "f64"),
            BenchCase::DeepSpan2500 => raw("span", 2500, 128, 32, 1, "f64"),
            BenchCase::Wide => raw("span", 16, 2048, 128, 2, "f64"),
            BenchCase::DeepPost4096 => raw("post", 4096, 256, 64, 1, "f64"),
            BenchCase::Sweep1t | BenchCase::Sweep2t => {
                let mut all = Vec::new();
                for depth in [16, 64, 256] {
                    all.extend(raw("all", depth, 256, 64, 4, "f64").resolve()?);
                }
                return Ok(all);
            }
        };
        one.resolve()
    }

    /// The thread count a case fixes, if any.
    fn threads(self) -> Option<usize> {
        match self {
            BenchCase::Sweep1t => Some(1),
            BenchCase::Sweep2t => Some(2),
            _ => None,
        }
    }

    /// The gradients a case computes.
    fn grads(self) -> Grads {
        match self {
            BenchCase::ExternalF32 => Grads::Inputs,
            _ => Grads::All,
        }
    }

    fn name(self) -> String {
        self.to_possible_value()
            .expect("not skipped")
            .get_name()
            .to_string()
    }
}

/// Runs `case` in this process and prints one JSON line.
fn child(case: BenchCase, threads: Option<usize>) -> anyhow::Result<()> {
    let cfgs = case.configs().map_err(usage)?;
    let pool = pool(case.threads().or(threads))?;
    profile::enable();
    let start = std::time::Instant::now();
    let results = pool.install(|| simulate::simulate_with(&cfgs, &|| {}, case.grads()));
    let secs = start.elapsed().as_secs_f64();
    let rss = peak_rss_bytes().map(|b| b as f64 / (1u64 << 20) as f64);
    let phases = profile::totals();
    // Inside the pool: its thread count can lower the keep budget (see `memory_for`).
    let (model, executed) = pool.install(|| run_flops_with(&cfgs, case.grads()));
    let memory = pool.install(|| memory_modes(&cfgs));
    // 1024² GEMM in the workload's precision, on the same threads, after the workload.
    let peak: GemmPeak = pool.install(|| match cfgs[0].precision {
        Precision::F32 => gemm_peak::<f32>(1024, 5),
        Precision::F64 => gemm_peak::<f64>(1024, 5),
    });
    // The workload's own largest product, X W_1 (n × d by d × d_ff), best of 50.
    let m = &cfgs[0].model;
    let shape = (m.tokens, m.width, m.d_ff);
    let at_shape: GemmPeak = pool.install(|| match cfgs[0].precision {
        Precision::F32 => gemm_rate::<f32>(shape, 50),
        Precision::F64 => gemm_rate::<f64>(shape, 50),
    });
    let diverged: usize = results.iter().map(|r| r.diverged.len()).sum();
    let digest = fnv1a(&serde_json::to_vec(&results)?);
    let line = serde_json::json!({
        "case": case.name(),
        "seconds": secs,
        "model_gflops": model / secs / 1e9,
        "executed_gflops": executed / secs / 1e9,
        "peak_rss_mib": rss,
        "threads": pool.current_num_threads(),
        "gemm_peak_gflops": peak.gflops,
        "gemm_peak_per_thread_min": peak.per_thread_min,
        "gemm_shape": [shape.0, shape.1, shape.2],
        "gemm_shape_gflops": at_shape.gflops,
        "diverged": diverged,
        "memory": memory,
        "draw_share": phases.share(phases.draw),
        "metrics_share": phases.share(phases.metrics),
        "digest": format!("{digest:016x}"),
    });
    println!("{line}");
    Ok(())
}

/// How the case's stacks run: "keep", "recompute", or "mixed".
fn memory_modes(cfgs: &[SimConfig]) -> &'static str {
    let keeps = cfgs
        .iter()
        .filter(|c| simulate::memory_for(c) == Memory::Keep);
    match keeps.count() {
        0 => "recompute",
        k if k == cfgs.len() => "keep",
        _ => "mixed",
    }
}

/// `spannorm bench`: each case in its own process (so peak RSS is the case's own).
pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let cases = if args.cases.is_empty() {
        DEFAULT_CASES.to_vec()
    } else {
        args.cases.clone()
    };
    if args.threads == Some(0) {
        return Err(usage("threads: must be at least 1"));
    }
    if args.child {
        return child(cases[0], args.threads);
    }
    let exe = std::env::current_exe().context("cannot find the spannorm binary")?;
    println!(
        "{:<15} {:>9} {:>7} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>6} {:>8} {:>7} {:>8} {:>4} {:>16}",
        "case",
        "seconds",
        "slowest",
        "model",
        "exec",
        "GEMM pk",
        "at shape",
        "model/pk",
        "exec/pk",
        "draw",
        "metrics",
        "RSS",
        "threads",
        "div",
        "result digest"
    );
    println!(
        "{:<15} {:>9} {:>7} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>6} {:>8} {:>7}",
        "", "best", "", "GFLOP/s", "GFLOP/s", "GFLOP/s", "GFLOP/s", "", "", "", "", "MiB"
    );
    let mut digests = Vec::new();
    for case in cases {
        let name = case.name();
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["bench", "--child", "--case", &name]);
        if let Some(t) = args.threads {
            cmd.args(["--threads", &t.to_string()]);
        }
        let mut runs: Vec<serde_json::Value> = Vec::new();
        for _ in 0..args.repeat {
            let out = cmd
                .output()
                .context("cannot run a benchmark child process")?;
            anyhow::ensure!(
                out.status.success(),
                "benchmark {name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            runs.push(serde_json::from_slice(&out.stdout)?);
        }
        let secs = |v: &serde_json::Value| v["seconds"].as_f64().unwrap_or(f64::NAN);
        anyhow::ensure!(
            runs.windows(2).all(|w| w[0]["digest"] == w[1]["digest"]),
            "benchmark {name}: repeated runs gave different result bytes"
        );
        // The fastest run is the one least disturbed by the rest of the machine.
        let slowest = runs.iter().map(secs).fold(f64::NAN, f64::max);
        let v = runs
            .into_iter()
            .min_by(|a, b| secs(a).total_cmp(&secs(b)))
            .context("--repeat must be at least 1")?;
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<15} {:>9.2} {:>6.1}% {:>8.2} {:>8.2} {:>9.2} {:>9.2} {:>7.0}% {:>7.0}% {:>5.0}% {:>7.1}% {:>7.0} {:>8} {:>4} {:>16}",
            name,
            f("seconds"),
            100.0 * (slowest / f("seconds") - 1.0),
            f("model_gflops"),
            f("executed_gflops"),
            f("gemm_peak_gflops"),
            f("gemm_shape_gflops"),
            100.0 * f("model_gflops") / f("gemm_peak_gflops"),
            100.0 * f("executed_gflops") / f("gemm_peak_gflops"),
            100.0 * f("draw_share"),
            100.0 * f("metrics_share"),
            f("peak_rss_mib"),
            v["threads"].as_u64().unwrap_or(0),
            v["diverged"].as_u64().unwrap_or(0),
            v["digest"].as_str().unwrap_or("-"),
        );
        digests.push((
            case,
            f("seconds"),
            v["digest"].as_str().map(String::from),
            v["memory"].as_str().unwrap_or("-").to_string(),
        ));
    }
    let find = |c: BenchCase| digests.iter().find(|d| d.0 == c);
    for (short, long, name) in [
        (BenchCase::DeepPost2500, BenchCase::DeepPost, "deep-post"),
        (BenchCase::DeepSpan2500, BenchCase::DeepSpan, "deep-span"),
    ] {
        if let (Some(s), Some(l)) = (find(short), find(long)) {
            let (per_short, per_long) = (s.1 / 2500.0, l.1 / 10_000.0);
            // A stack that keeps its intermediates does 3 passes per block, one that
            // recomputes 4, so the ratio compares depth alone only within one mode.
            let modes = if s.3 == l.3 {
                format!("both {}", s.3)
            } else {
                format!(
                    "L = 2500 runs with memory {}, L = 10 000 with {}: not comparable",
                    s.3, l.3
                )
            };
            println!(
                "{name}: {:.2} ms per block at L = 2500, {:.2} ms at L = 10 000 (ratio {:.3}; 1 is linear in depth; {modes})",
                1e3 * per_short,
                1e3 * per_long,
                per_long / per_short
            );
        }
    }
    if let (Some(one), Some(two)) = (find(BenchCase::Sweep1t), find(BenchCase::Sweep2t)) {
        println!(
            "sweep: 2 threads {:.2}x faster than 1 thread; result bytes {}",
            one.1 / two.1,
            if one.2 == two.2 {
                "identical"
            } else {
                "DIFFER"
            }
        );
    }
    Ok(())
}
