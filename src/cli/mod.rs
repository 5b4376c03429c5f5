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

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use spannorm::config::{RawConfig, SimConfig};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// Signal propagation at initialization in deep Transformers: every norm placement.
#[derive(Debug, Parser)]
#[command(name = "spannorm", version, about)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run stacks at initialization and report per-layer metrics over seeds.
    #[command(allow_negative_numbers = true)]
    Simulate(Box<simulate::SimulateArgs>),
    /// Mean-field predictions of the same per-layer quantities, in the same schema.
    #[command(allow_negative_numbers = true)]
    Theory(Box<theory::TheoryArgs>),
    /// Hold the theory's named predictions against simulation: PASS/FAIL, exit code 1 on a
    /// failure.
    Check(check::CheckArgs),
    /// Time benchmark workloads: seconds, GFLOP/s and peak memory, each in its own process.
    Bench(bench::BenchArgs),
    /// Run every configuration of a sweep file (lists of values, cross product) into a
    /// results directory, one file per config; resumable and shardable.
    Sweep(sweep::SweepArgs),
    /// Combine the results directories of a sharded sweep.
    Merge(merge::MergeArgs),
    /// Draw one figure (1-9) from results on disk, PNG or SVG.
    Plot(plot::PlotArgs),
    /// Every figure from one command: sweeps (cached), figures, check, figures/README.md.
    Reproduce(reproduce::ReproduceArgs),
}

/// Runs the subcommand.
pub fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Simulate(args) => simulate::simulate(args),
        Command::Theory(args) => theory::theory(args),
        Command::Check(args) => check::check(args),
        Command::Bench(args) => bench::bench(args),
        Command::Sweep(args) => sweep::sweep(args),
        Command::Merge(args) => merge::merge(args),
        Command::Plot(args) => plot::plot(args),
        Command::Reproduce(args) => reproduce::reproduce(args),
    }
}

/// An error the user caused (bad flag, config or path): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// `e` as a usage error (exit code 2).
pub fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

/// A clap error as one line: its message, hints and values without the usage block.
pub fn one_line(rendered: &str) -> String {
    let keep: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect();
    spannorm::error::cut_line(&keep.join(" "))
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Prints `s` on stdout. A closed stdout (`… | head`) is not an error: the output stops,
/// the work (and any file it writes) goes on.
pub fn out(s: &str) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut o = std::io::stdout().lock();
    if o.write_all(s.as_bytes()).and_then(|()| o.flush()).is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Prints `s` and a newline on stderr, ignoring a closed stderr.
pub fn err(s: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{s}");
}

/// The output format of result files.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// The JSON document.
    Json,
    /// Long-format CSV.
    Csv,
}

/// The configurations named by `--config` and the model flags (flags win), each checked to
/// fit in memory when `simulated`.
pub fn configs(
    config: Option<&std::path::Path>,
    model: &RawConfig,
    simulated: bool,
) -> anyhow::Result<Vec<SimConfig>> {
    let file = match config {
        Some(p) => RawConfig::from_file(p).map_err(usage)?,
        None => RawConfig::default(),
    };
    let cfgs = file.overlay(model).resolve().map_err(usage)?;
    if simulated {
        for c in &cfgs {
            spannorm::cost::check_fits(c).map_err(usage)?;
        }
    }
    Ok(cfgs)
}

/// Where `--out` results go: created now, so a bad path fails before any work, and written
/// whole by [`Output::write`].
pub struct Output {
    file: Option<spannorm::atomic::AtomicFile>,
    format: spannorm::report::Format,
}

impl Output {
    /// Opens `--out` (if any) in the format `--format` or its extension names.
    pub fn open(out: Option<&std::path::Path>, format: Option<FormatArg>) -> anyhow::Result<Self> {
        let file = match out {
            Some(p) => Some(spannorm::atomic::AtomicFile::create(p).map_err(usage)?),
            None => None,
        };
        Ok(Output {
            file,
            format: self::format(format, out),
        })
    }

    /// Writes `results` (JSON schema 1 or CSV) and renames the file into place.
    pub fn write(self, results: &[spannorm::result::RunResult]) -> anyhow::Result<()> {
        use spannorm::report::{self, Format};
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
pub fn format(arg: Option<FormatArg>, out: Option<&std::path::Path>) -> spannorm::report::Format {
    use spannorm::report::Format;
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
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
