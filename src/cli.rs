//! Command-line interface: parses flags, calls the library, prints. No computation here.

use crate::config::RawConfig;
use crate::report::{self, AtomicFile, Format};
use crate::simulate;
use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;

/// Signal propagation at initialization in deep Transformers: every norm placement.
#[derive(Debug, Parser)]
#[command(name = "spannorm", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run stacks at initialization and report per-layer metrics over seeds.
    #[command(allow_negative_numbers = true)]
    Simulate(Box<SimulateArgs>),
    /// Time benchmark workloads: seconds, GFLOP/s and peak memory, each in its own process.
    Bench(BenchArgs),
}

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

/// The model flags; each overrides the same field of `--config`.
#[derive(Debug, Args, Default)]
pub struct ModelArgs {
    /// Placement: pre, post, span, span-outer, deepnorm, b2t, peri, mix, lns, attn-only,
    /// attn-skip, or all.
    #[arg(long)]
    pub placement: Option<String>,
    /// Number of blocks L [default: 64].
    #[arg(long)]
    pub depth: Option<usize>,
    /// Model width d [default: 256].
    #[arg(long)]
    pub width: Option<usize>,
    /// Tokens n [default: 64].
    #[arg(long)]
    pub tokens: Option<usize>,
    /// Attention heads H [default: 4].
    #[arg(long)]
    pub heads: Option<usize>,
    /// Feed-forward width [default: 4d, swiglu 8d/3 rounded to a multiple of 8].
    #[arg(long)]
    pub d_ff: Option<usize>,
    /// Number of seeds [default: 8].
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Master seed [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Branch scale: none, sqrt-depth, depth, quarter-depth, sqrt-layer, const:c
    /// [default: sqrt-depth for span and span-outer, none otherwise].
    #[arg(long)]
    pub scale: Option<String>,
    /// Norm: layernorm or rmsnorm [default: layernorm].
    #[arg(long)]
    pub norm: Option<String>,
    /// Feed-forward activation: relu, gelu or swiglu [default: relu].
    #[arg(long)]
    pub act: Option<String>,
    /// Attention mask: bidirectional or causal [default: bidirectional].
    #[arg(long)]
    pub mask: Option<String>,
    /// Init: fan-in, xavier or zero-query [default: fan-in].
    #[arg(long)]
    pub init: Option<String>,
    /// Weight scale σ_w [default: 1].
    #[arg(long)]
    pub sigma_w: Option<f64>,
    /// Input token correlation ρ0 in [0, 1) [default: 0.2].
    #[arg(long)]
    pub rho0: Option<f64>,
    /// Mixture-of-experts feed-forward with this many experts.
    #[arg(long)]
    pub moe_experts: Option<usize>,
    /// Experts per token [default: 2].
    #[arg(long)]
    pub moe_top_k: Option<usize>,
    /// span only: feed the sublayers N(x) and N(h).
    #[arg(long)]
    pub inner_norm: bool,
    /// f32 or f64 [default: f64].
    #[arg(long)]
    pub precision: Option<String>,
}

impl ModelArgs {
    /// The flags as a raw config (unset flags are `None`).
    pub fn to_raw(&self) -> RawConfig {
        RawConfig {
            placement: self.placement.clone(),
            depth: self.depth,
            width: self.width,
            tokens: self.tokens,
            heads: self.heads,
            d_ff: self.d_ff,
            seeds: self.seeds,
            seed: self.seed,
            scale: self.scale.clone(),
            norm: self.norm.clone(),
            act: self.act.clone(),
            mask: self.mask.clone(),
            init: self.init.clone(),
            sigma_w: self.sigma_w,
            rho0: self.rho0,
            moe_experts: self.moe_experts,
            moe_top_k: self.moe_top_k,
            inner_norm: self.inner_norm.then_some(true),
            precision: self.precision.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// JSON config file (fields as the flags, kebab-case); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Worker threads [default: all cores]. Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write results here (written whole or not at all).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output format [default: from the extension of --out, else json].
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// An error the user caused (bad flag, config or path): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

/// A rayon pool of `threads` workers (all cores when `None`).
pub fn pool(threads: Option<usize>) -> anyhow::Result<rayon::ThreadPool> {
    if threads == Some(0) {
        return Err(usage("threads: must be at least 1"));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .context("cannot start worker threads")
}

/// A progress bar on stderr, hidden when stderr is not a terminal or `quiet`.
pub fn progress(total: u64, what: &str, quiet: bool) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// `spannorm simulate`.
pub fn simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(p) => RawConfig::from_file(p).map_err(usage)?,
        None => RawConfig::default(),
    };
    let raw = file.overlay(&args.model.to_raw());
    let cfgs = raw.resolve().map_err(usage)?;
    let format = match (args.format, &args.out) {
        (Some(FormatArg::Csv), _) => Format::Csv,
        (Some(FormatArg::Json), _) => Format::Json,
        (None, Some(p)) if p.extension().is_some_and(|e| e == "csv") => Format::Csv,
        (None, _) => Format::Json,
    };
    let out = match &args.out {
        Some(p) => Some(AtomicFile::create(p).map_err(usage)?),
        None => None,
    };
    let pool = pool(args.threads)?;
    let total: usize = cfgs.iter().map(|c| c.seeds).sum();
    let bar = progress(total as u64, "simulate", args.quiet);
    let results = pool.install(|| simulate::simulate(&cfgs, &|| bar.inc(1)));
    bar.finish_and_clear();
    for r in &results {
        println!("{}", report::table(r));
        for d in &r.diverged {
            eprintln!(
                "warning: {} {d}",
                r.config.placement.as_deref().unwrap_or_default()
            );
        }
    }
    if let Some(file) = out {
        let bytes = match format {
            Format::Json => report::to_json(&results)?,
            Format::Csv => report::to_csv(&results),
        };
        file.commit(bytes.as_bytes()).map_err(usage)?;
    }
    Ok(())
}
