//! `spannorm bench`.

use super::{pool, usage};
use crate::config::RawConfig;
use crate::simulate;
use anyhow::Context;
use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Workloads to run [default: reference-f32 reference-f64].
    #[arg(long = "case", value_enum)]
    pub cases: Vec<BenchCase>,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run one case in this process and print its JSON line (used by `bench` itself).
    #[arg(long, hide = true)]
    pub child: bool,
}

/// A benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchCase {
    /// span, L = 64, d = 256, n = 64, H = 4, d_ff = 4d, 8 seeds, f32.
    ReferenceF32,
    /// The same in f64.
    ReferenceF64,
    /// post, no scaling, L = 4096, d = 256, n = 64, 1 seed, f64.
    DeepPost,
}

impl BenchCase {
    fn config(self) -> RawConfig {
        let (placement, depth, seeds, precision, scale) = match self {
            BenchCase::ReferenceF32 => ("span", 64, 8, "f32", None),
            BenchCase::ReferenceF64 => ("span", 64, 8, "f64", None),
            BenchCase::DeepPost => ("post", 4096, 1, "f64", Some("none".to_string())),
        };
        RawConfig {
            placement: Some(placement.into()),
            depth: Some(depth),
            seeds: Some(seeds),
            precision: Some(precision.into()),
            scale,
            ..Default::default()
        }
    }
}

/// `spannorm bench`.
pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let cases = if args.cases.is_empty() {
        vec![BenchCase::ReferenceF32, BenchCase::ReferenceF64]
    } else {
        args.cases.clone()
    };
    if args.child {
        let case = cases[0];
        let cfgs = case.config().resolve().map_err(usage)?;
        let pool = pool(args.threads)?;
        let start = std::time::Instant::now();
        let results = pool.install(|| simulate::simulate(&cfgs, &|| {}));
        let secs = start.elapsed().as_secs_f64();
        let (model, executed) = crate::bench::seed_flops(&cfgs[0].model);
        let seeds = cfgs[0].seeds as f64;
        let line = serde_json::json!({
            "case": format!("{case:?}"),
            "seconds": secs,
            "model_gflops": model * seeds / secs / 1e9,
            "executed_gflops": executed * seeds / secs / 1e9,
            "peak_rss_mib": crate::bench::peak_rss_bytes().map(|b| b as f64 / (1u64 << 20) as f64),
            "threads": pool.current_num_threads(),
            "diverged": results[0].diverged.len(),
        });
        println!("{line}");
        return Ok(());
    }
    let exe = std::env::current_exe().context("cannot find the spannorm binary")?;
    println!(
        "{:<14} {:>9} {:>13} {:>16} {:>14} {:>8}",
        "case", "seconds", "model GFLOP/s", "executed GFLOP/s", "peak RSS MiB", "threads"
    );
    for case in cases {
        let name = case
            .to_possible_value()
            .expect("not skipped")
            .get_name()
            .to_string();
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["bench", "--child", "--case", &name]);
        if let Some(t) = args.threads {
            cmd.args(["--threads", &t.to_string()]);
        }
        let out = cmd
            .output()
            .context("cannot run a benchmark child process")?;
        anyhow::ensure!(
            out.status.success(),
            "benchmark {name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        println!(
            "{:<14} {:>9.2} {:>13.2} {:>16.2} {:>14.0} {:>8}",
            name,
            v["seconds"].as_f64().unwrap_or(f64::NAN),
            v["model_gflops"].as_f64().unwrap_or(f64::NAN),
            v["executed_gflops"].as_f64().unwrap_or(f64::NAN),
            v["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            v["threads"]
        );
    }
    Ok(())
}
