//! Command-line interface: parses flags, calls the library, prints. No computation here.
//! One file per subcommand; this one has the shared flags and helpers.

mod bench;
mod check;
mod merge;
mod plot;
mod reproduce;
mod simulate;
mod sweep;
mod theory;

pub use bench::{bench, BenchArgs, BenchCase};
pub use check::{check, CheckArgs, ChecksFailed};
pub use merge::{merge, MergeArgs};
pub use plot::{plot, PlotArgs};
pub use reproduce::{reproduce, ImageArg, ReproduceArgs};
pub use simulate::{simulate, FormatArg, SimulateArgs};
pub use sweep::{sweep, SweepArgs};
pub use theory::{theory, TheoryArgs};

use crate::config::RawConfig;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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
    /// Mean-field predictions of the same per-layer quantities, in the same schema.
    #[command(allow_negative_numbers = true)]
    Theory(Box<TheoryArgs>),
    /// Hold the theory's named predictions against simulation: PASS/FAIL, exit code 1 on a
    /// failure.
    Check(CheckArgs),
    /// Time benchmark workloads: seconds, GFLOP/s and peak memory, each in its own process.
    Bench(BenchArgs),
    /// Run every configuration of a sweep file (lists of values, cross product) into a
    /// results directory, one file per config; resumable and shardable.
    Sweep(SweepArgs),
    /// Combine the results directories of a sharded sweep.
    Merge(MergeArgs),
    /// Draw one figure (1-8) from results on disk, PNG or SVG.
    Plot(PlotArgs),
    /// Every figure from one command: sweeps (cached), figures, check, figures/README.md.
    Reproduce(ReproduceArgs),
}

/// Runs the subcommand.
pub fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Simulate(args) => simulate(args),
        Command::Theory(args) => theory(args),
        Command::Check(args) => check(args),
        Command::Bench(args) => bench(args),
        Command::Sweep(args) => sweep(args),
        Command::Merge(args) => merge(args),
        Command::Plot(args) => plot(args),
        Command::Reproduce(args) => reproduce(args),
    }
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

/// An error the user caused (bad flag, config or path): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

/// The configurations named by `--config` and the model flags (flags win).
pub fn configs(
    config: Option<&std::path::Path>,
    model: &ModelArgs,
) -> anyhow::Result<Vec<crate::config::SimConfig>> {
    let file = match config {
        Some(p) => RawConfig::from_file(p).map_err(usage)?,
        None => RawConfig::default(),
    };
    file.overlay(&model.to_raw()).resolve().map_err(usage)
}

/// Where `--out` results go: created now, so a bad path fails before any work, and written
/// whole by [`Output::write`].
pub struct Output {
    file: Option<crate::report::AtomicFile>,
    format: crate::report::Format,
}

impl Output {
    /// Opens `--out` (if any) in the format `--format` or its extension names.
    pub fn open(out: Option<&std::path::Path>, format: Option<FormatArg>) -> anyhow::Result<Self> {
        let file = match out {
            Some(p) => Some(crate::report::AtomicFile::create(p).map_err(usage)?),
            None => None,
        };
        Ok(Output {
            file,
            format: self::format(format, out),
        })
    }

    /// Writes `results` (JSON schema 1 or CSV) and renames the file into place.
    pub fn write(self, results: &[crate::simulate::RunResult]) -> anyhow::Result<()> {
        use crate::report::{self, Format};
        if let Some(file) = self.file {
            let bytes = match self.format {
                Format::Json => report::to_json(results)?,
                Format::Csv => report::to_csv(results),
            };
            file.commit(bytes.as_bytes()).map_err(usage)?;
        }
        Ok(())
    }
}

/// The output format: `--format`, else the extension of `--out`, else JSON.
pub fn format(arg: Option<FormatArg>, out: Option<&std::path::Path>) -> crate::report::Format {
    use crate::report::Format;
    match (arg, out) {
        (Some(FormatArg::Csv), _) => Format::Csv,
        (Some(FormatArg::Json), _) => Format::Json,
        (None, Some(p)) if p.extension().is_some_and(|e| e == "csv") => Format::Csv,
        (None, _) => Format::Json,
    }
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
