//! `spannorm simulate`.

use super::{pool, progress, ModelArgs};
use crate::report;
use crate::simulate;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

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

/// `spannorm simulate`.
pub fn simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    let cfgs = super::configs(args.config.as_deref(), &args.model)?;
    let out = super::Output::open(args.out.as_deref(), args.format)?;
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
    out.write(&results)
}
