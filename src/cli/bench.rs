//! `spannorm bench`.

use super::{out, pool, usage};
use anyhow::Context;
use clap::Args;
use spannorm::bench::{self, Case, Line};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Workloads to run [default: every workload but deep-post4096].
    #[arg(long = "case", value_enum)]
    pub cases: Vec<Case>,
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

/// Runs `case` in this process and prints its line as JSON.
fn child(case: Case, threads: Option<usize>) -> anyhow::Result<()> {
    let pool = pool(case.threads().or(threads))?;
    let line = pool.install(|| bench::measure(case)).map_err(usage)?;
    out(&format!("{}\n", serde_json::to_string(&line)?));
    Ok(())
}

/// `spannorm bench`: each case in its own process (so peak RSS is the case's own).
pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let cases = if args.cases.is_empty() {
        Case::DEFAULT.to_vec()
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
    out(&format!(
        "machine: {}\n",
        spannorm::machine::Machine::this().line()
    ));
    out(&format!(
        "{:<15} {:>9} {:>7} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>6} {:>8} {:>7} {:>8} {:>4} {:>16}\n",
        "case", "seconds", "slowest", "model", "exec", "GEMM pk", "at shape", "model/pk",
        "exec/pk", "draw", "metrics", "RSS", "threads", "div", "result digest"
    ));
    out(&format!(
        "{:<15} {:>9} {:>7} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>6} {:>8} {:>7}\n",
        "", "best", "", "GFLOP/s", "GFLOP/s", "GFLOP/s", "GFLOP/s", "", "", "", "", "MiB"
    ));
    let mut lines: Vec<Line> = Vec::new();
    for case in cases {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["bench", "--child", "--case", &case.to_string()]);
        if let Some(t) = args.threads {
            cmd.args(["--threads", &t.to_string()]);
        }
        let mut runs: Vec<Line> = Vec::new();
        for _ in 0..args.repeat {
            let o = cmd
                .output()
                .context("cannot run a benchmark child process")?;
            anyhow::ensure!(
                o.status.success(),
                "benchmark {case} failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            runs.push(
                serde_json::from_slice(&o.stdout)
                    .with_context(|| format!("benchmark {case}: unreadable child output"))?,
            );
        }
        anyhow::ensure!(
            runs.windows(2).all(|w| w[0].digest == w[1].digest),
            "benchmark {case}: repeated runs gave different result bytes"
        );
        // The fastest run is the one least disturbed by the rest of the machine.
        let slowest = runs.iter().map(|r| r.seconds).fold(f64::NAN, f64::max);
        let v = runs
            .into_iter()
            .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
            .context("--repeat must be at least 1")?;
        out(&format!(
            "{:<15} {:>9.2} {:>6.1}% {:>8.2} {:>8.2} {:>9.2} {:>9.2} {:>7.0}% {:>7.0}% {:>5.0}% {:>7.1}% {:>7.0} {:>8} {:>4} {:>16}\n",
            case.to_string(),
            v.seconds,
            100.0 * (slowest / v.seconds - 1.0),
            v.model_gflops,
            v.executed_gflops,
            v.gemm_peak_gflops,
            v.gemm_shape_gflops,
            100.0 * v.model_gflops / v.gemm_peak_gflops,
            100.0 * v.executed_gflops / v.gemm_peak_gflops,
            100.0 * v.draw_share,
            100.0 * v.metrics_share,
            v.peak_rss_mib.unwrap_or(f64::NAN),
            v.threads,
            v.diverged,
            v.digest,
        ));
        lines.push(v);
    }
    let find = |c: Case| lines.iter().find(|l| l.case == c);
    for (short, long, name) in [
        (Case::DeepPost2500, Case::DeepPost, "deep-post"),
        (Case::DeepSpan2500, Case::DeepSpan, "deep-span"),
    ] {
        if let (Some(s), Some(l)) = (find(short), find(long)) {
            let (per_short, per_long) = (s.seconds / 2500.0, l.seconds / 10_000.0);
            // A stack that keeps its intermediates does 3 passes per block, one that
            // recomputes 4, so the ratio compares depth alone only within one mode.
            let modes = if s.memory == l.memory {
                format!("both {}", s.memory)
            } else {
                format!(
                    "L = 2500 runs with memory {}, L = 10 000 with {}: not comparable",
                    s.memory, l.memory
                )
            };
            out(&format!(
                "{name}: {:.2} ms per block at L = 2500, {:.2} ms at L = 10 000 (ratio {:.3}; 1 is linear in depth; {modes})\n",
                1e3 * per_short,
                1e3 * per_long,
                per_long / per_short
            ));
        }
    }
    let estimated: Vec<String> = lines
        .iter()
        .filter_map(|l| {
            l.estimate_seconds
                .map(|e| format!("{} {:.2}", l.case, e / l.seconds))
        })
        .collect();
    if !estimated.is_empty() {
        out(&format!(
            "simulate --dry-run's estimate / measured time: {}\n",
            estimated.join(", ")
        ));
    }
    if let Some(t) = find(Case::TrainStep) {
        // The time holds the steps and the held-out loss (EVAL_SEQUENCES passes without an
        // update): per step, the passes are counted and the evaluation's share removed.
        let settings = spannorm::bench::train_settings();
        let cfg = &Case::TrainStep.configs()?[0];
        let step_passes = spannorm::bench::TRAIN_STEPS * settings.batch;
        let all = step_passes + spannorm::train::EVAL_SEQUENCES;
        let per_step =
            t.seconds * step_passes as f64 / all as f64 / spannorm::bench::TRAIN_STEPS as f64;
        let estimate = spannorm::train::bytes(cfg, &settings, t.threads) / (1u64 << 20) as f64;
        out(&format!(
            "train-step: {:.2} steps/s ({:.0} ms per step of {} sequences); peak RSS {:.0} MiB, \
             train --dry-run estimates {:.0} MiB\n",
            1.0 / per_step,
            1e3 * per_step,
            settings.batch,
            t.peak_rss_mib.unwrap_or(f64::NAN),
            estimate
        ));
    }
    if let (Some(one), Some(two)) = (find(Case::Sweep1t), find(Case::Sweep2t)) {
        out(&format!(
            "sweep: 2 threads {:.2}x faster than 1 thread; result bytes {}\n",
            one.seconds / two.seconds,
            if one.digest == two.digest {
                "identical"
            } else {
                "DIFFER"
            }
        ));
    }
    Ok(())
}
