//! Command-line interface: parses flags, calls the library, prints. No computation here.
//! One file per subcommand; this one has the shared flags and helpers.

mod bench;
mod check;
mod export;
mod merge;
mod plot;
mod reproduce;
mod simulate;
mod sweep;
mod theory;
mod train;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use spannorm::config::{RawConfig, SimConfig};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// Write results (files or directories) as one tidy CSV: every config field a column.
    Export(export::ExportArgs),
    /// Draw one figure (1-9) from results on disk, PNG or SVG.
    Plot(plot::PlotArgs),
    /// Every figure from one command: sweeps (cached), figures, check, figures/README.md.
    Reproduce(reproduce::ReproduceArgs),
    /// Train token models (embedding, stack, unembedding) on a synthetic task with known
    /// loss floor, recording the per-layer signal over steps; a list of rates is a
    /// learning-rate sweep (resumable, shardable).
    #[command(allow_negative_numbers = true, mut_args(train::help_with_defaults))]
    Train(Box<train::TrainArgs>),
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
        Command::Export(args) => export::export(args),
        Command::Plot(args) => plot::plot(args),
        Command::Reproduce(args) => reproduce::reproduce(args),
        Command::Train(args) => train::train(args),
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
    per_seed: bool,
}

impl Output {
    /// Opens `--out` (if any) in the format `--format` or its extension names.
    pub fn open(
        out: Option<&std::path::Path>,
        format: Option<FormatArg>,
        per_seed: bool,
    ) -> anyhow::Result<Self> {
        let file = match out {
            Some(p) => Some(spannorm::atomic::AtomicFile::create(p).map_err(usage)?),
            None => None,
        };
        Ok(Output {
            file,
            format: self::format(format, out),
            per_seed,
        })
    }

    /// Writes `results` (JSON schema 1 or CSV) and renames the file into place.
    pub fn write(self, results: &[spannorm::result::RunResult]) -> anyhow::Result<()> {
        use spannorm::report::{self, Format};
        if let Some(file) = self.file {
            let bytes = match self.format {
                Format::Json => report::to_json(results)?,
                Format::Csv => report::to_csv(results, self.per_seed),
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

/// Human bytes: `1.2 GiB`, `340 MiB`.
fn bytes(b: f64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    if b >= 1024.0 * MIB {
        format!("{:.1} GiB", b / (1024.0 * MIB))
    } else {
        format!("{:.0} MiB", (b / MIB).max(1.0))
    }
}

/// `--dry-run`: what running `cfgs` on `pool` will take, estimated from short stacks timed
/// on this machine, printed instead of running.
pub fn dry_run(cfgs: &[SimConfig], pool: &rayon::ThreadPool) {
    let e = pool.install(|| spannorm::simulate::estimate(cfgs));
    out(&format!(
        "dry run: {} configurations, {} seeds on {} worker threads (estimated from six blocks of each shape timed on this machine)\n",
        cfgs.len(),
        e.seeds,
        e.threads
    ));
    out(&format!(
        "{:<11} {:>7} {:>6} {:>5} {:>6} {:>10} {:>10} {:>11} {:>10}\n",
        "placement", "L", "d", "n", "seeds", "memory", "per seed", "GFLOP/seed", "s/seed"
    ));
    for (c, ce) in cfgs.iter().zip(&e.configs) {
        let m = c.model();
        out(&format!(
            "{:<11} {:>7} {:>6} {:>5} {:>6} {:>10} {:>10} {:>11.1} {:>10.2}\n",
            m.placement().to_string(),
            m.depth(),
            m.width(),
            m.tokens(),
            c.seeds(),
            ce.memory,
            bytes(ce.bytes_per_seed),
            ce.flops_per_seed / 1e9,
            ce.seconds_per_seed
        ));
    }
    out(&format!(
        "in all: about {} wall time, peak memory about {} ({} seeds at once), {:.1} GFLOP executed\n",
        hms(e.seconds),
        bytes(e.peak_bytes),
        e.threads.min(e.seeds),
        e.flops / 1e9
    ));
}

/// Progress of a long run in block passes (each block forward and backward, so a deep run
/// moves from its first seconds): a bar with rate and ETA on a terminal, a line every few
/// seconds otherwise (logs of batch jobs), nothing with `--quiet`.
pub struct Progress {
    bar: Option<ProgressBar>,
    what: String,
    unit: &'static str,
    total: u64,
    done: AtomicU64,
    start: Instant,
    /// Plain mode: when the last line was printed.
    last: Option<Mutex<Instant>>,
    every: Duration,
}

/// Time between plain progress lines: `SPANNORM_PROGRESS_SECONDS` (default 5).
fn every() -> Duration {
    std::env::var("SPANNORM_PROGRESS_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map_or(Duration::from_secs(5), Duration::from_secs_f64)
}

fn hms(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl Progress {
    /// Progress toward `total` block passes of `what`.
    pub fn new(total: u64, what: &str, quiet: bool) -> Progress {
        Progress::with_unit(total, what, "block passes", quiet)
    }

    /// Progress toward `total` of `unit` (e.g. "steps").
    pub fn with_unit(total: u64, what: &str, unit: &'static str, quiet: bool) -> Progress {
        use std::io::IsTerminal;
        let tty = std::io::stderr().is_terminal();
        let bar = (!quiet && tty).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit}, {{per_sec}}, eta {{eta}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(what.to_string());
            bar
        });
        Progress {
            bar,
            what: what.into(),
            unit,
            total,
            done: AtomicU64::new(0),
            start: Instant::now(),
            last: (!quiet && !tty).then(|| Mutex::new(Instant::now())),
            every: every(),
        }
    }

    /// `n` more block passes finished.
    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
        if let Some(last) = &self.last {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= self.every && done < self.total {
                *last = Instant::now();
                let t = self.start.elapsed().as_secs_f64();
                let frac = done as f64 / self.total.max(1) as f64;
                err(&format!(
                    "{}: {done}/{} {} ({:.0}%), {} elapsed, eta {}",
                    self.what,
                    self.total,
                    self.unit,
                    100.0 * frac,
                    hms(t),
                    hms(t / frac.max(1e-9) - t)
                ));
            }
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
