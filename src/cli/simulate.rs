//! `spannorm simulate`.

use super::{err, out, pool, progress, FormatArg};
use clap::Args;
use spannorm::config::{Field, RawConfig};
use spannorm::report;
use spannorm::simulate::{self, Options};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub model: RawConfig,
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
    /// Keep every seed's own values in the JSON results (`per_seed`).
    #[arg(long)]
    pub per_seed: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `spannorm simulate`.
pub fn simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    let cfgs = super::configs(args.config.as_deref(), &args.model, true)?;
    let output = super::Output::open(args.out.as_deref(), args.format)?;
    let pool = pool(args.threads)?;
    let total: usize = cfgs.iter().map(|c| c.seeds()).sum();
    let bar = progress(total as u64, "simulate", args.quiet);
    let opts = Options {
        per_seed: args.per_seed,
        progress: &|| bar.inc(1),
    };
    let results = pool.install(|| simulate::simulate(&cfgs, &opts))?;
    bar.finish_and_clear();
    for (c, r) in cfgs.iter().zip(&results) {
        match c.model().identity_at_init() {
            // A flat curve says nothing: say why it is flat instead.
            Some(why) => out(&format!("{}: {why}\n", c.model().placement_name())),
            None => out(&format!("{}\n", report::table(r))),
        }
        for d in &r.diverged {
            let p = r.config.text(Field::Placement).unwrap_or_default();
            err(&format!("warning: {p} {d}"));
        }
    }
    output.write(&results)
}
