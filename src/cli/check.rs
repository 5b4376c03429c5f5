//! `spannorm check`.

use super::usage;
use crate::check::{Perturbation, Preset, Runner, Status, Verdict};
use crate::report::AtomicFile;
use clap::{Args, ValueEnum};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// Small widths and depths (d = 128, n = 16): what CI runs.
    Ci,
    /// d up to 1024, depth up to 4096.
    Full,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Sizes of the check run.
    #[arg(long, value_enum, default_value = "ci")]
    pub preset: PresetArg,
    /// Write the verdicts as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep each simulation's per-seed records here, so that an interrupted run resumes
    /// without repeating finished work [default with `--preset full`: results/check-full].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache: Option<PathBuf>,
    /// Keep nothing on disk between runs (the default with `--preset ci`).
    #[arg(long)]
    pub no_cache: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// The cache directory of a check run, if any.
fn cache_dir(args: &CheckArgs) -> Option<PathBuf> {
    match (&args.cache, args.no_cache, args.preset) {
        (_, true, _) => None,
        (Some(dir), _, _) => Some(dir.clone()),
        (None, _, PresetArg::Full) => Some(PathBuf::from("results/check-full")),
        (None, _, PresetArg::Ci) => None,
    }
}

/// An error for a check run with failed predictions: exit code 1, not 2.
#[derive(Debug, thiserror::Error)]
#[error("{0} of {1} predictions failed")]
pub struct ChecksFailed(pub usize, pub usize);

/// The verdict table.
pub fn table(verdicts: &[Verdict]) -> String {
    let mut out = format!(
        "{:<58} {:>12} {:>25} {:>12} {:>10}  {}\n",
        "prediction", "measured", "95% interval", "predicted", "tolerance", "verdict"
    );
    let g = |v: f64| {
        if v.is_finite() && (v.abs() >= 1e4 || (v != 0.0 && v.abs() < 1e-3)) {
            format!("{v:.4e}")
        } else {
            format!("{v:.5}")
        }
    };
    for v in verdicts {
        let interval = v
            .interval
            .map_or("-".to_string(), |(a, b)| format!("[{}, {}]", g(a), g(b)));
        let status = match v.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::KnownDeviation => "DEVIATION",
        };
        let _ = writeln!(
            out,
            "{:<58} {:>12} {:>25} {:>12} {:>10}  {status}",
            v.name,
            g(v.measured),
            interval,
            g(v.predicted),
            g(v.tolerance)
        );
    }
    out
}

/// `spannorm check`.
pub fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let preset = match args.preset {
        PresetArg::Ci => Preset::Ci,
        PresetArg::Full => Preset::Full,
    };
    let out = match &args.out {
        Some(p) => Some(AtomicFile::create(p).map_err(usage)?),
        None => None,
    };
    let quiet = args.quiet;
    let progress = move |step: &str| {
        if !quiet {
            eprintln!("check: {step}");
        }
    };
    let mut runner = Runner::new(preset, Perturbation::None, &progress);
    if let Some(dir) = cache_dir(args) {
        crate::check::cache::prepare(&dir).map_err(usage)?;
        runner = runner.with_cache(dir);
    }
    let verdicts = runner.run();
    let accuracy = runner.accuracy();
    print!("{}", table(&verdicts));
    println!("\nrelative error of the predictions over layers 1..L and placements (reported, not a verdict):");
    println!(
        "{:<11} {:<10} {:>6} {:>6} {:>8} {:>8} {:>8}",
        "attention", "metric", "d", "count", "p50", "p90", "p99"
    );
    for a in &accuracy {
        println!(
            "{:<11} {:<10} {:>6} {:>6} {:>8.4} {:>8.4} {:>8.4}",
            a.attention, a.metric, a.width, a.count, a.p50, a.p90, a.p99
        );
    }
    let failed = verdicts.iter().filter(|v| v.status == Status::Fail).count();
    let deviations = verdicts
        .iter()
        .filter(|v| v.status == Status::KnownDeviation)
        .count();
    println!(
        "verdicts: {} PASS, {failed} FAIL, {deviations} DEVIATION (see analysis/checks.md)",
        verdicts.len() - failed - deviations
    );
    if let Some(file) = out {
        let doc = serde_json::json!({
            "schema": 1,
            "preset": format!("{:?}", args.preset).to_lowercase(),
            "verdicts": verdicts,
            "accuracy": accuracy,
        });
        file.commit((serde_json::to_string_pretty(&doc)? + "\n").as_bytes())
            .map_err(usage)?;
    }
    if failed > 0 {
        return Err(ChecksFailed(failed, verdicts.len()).into());
    }
    Ok(())
}
