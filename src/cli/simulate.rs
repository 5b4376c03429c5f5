//! `spannorm simulate`.

use super::{err, out, pool, FormatArg, Progress};
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
    /// Keep every seed's own values in the results (`per_seed` in JSON, rows with a
    /// `seed_index` in CSV).
    #[arg(long)]
    pub per_seed: bool,
    /// Print the estimated memory, FLOPs and time, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `spannorm simulate`.
pub fn simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    let cfgs = super::configs(args.config.as_deref(), &args.model, true)?;
    let pool = pool(args.threads)?;
    if args.dry_run {
        super::dry_run(&cfgs, &pool);
        return Ok(());
    }
    let output = super::Output::open(args.out.as_deref(), args.format, args.per_seed)?;
    let total = simulate::total_passes(&cfgs, &simulate::all_jobs(&cfgs));
    let bar = Progress::new(total, "simulate", args.quiet);
    let opts = Options {
        per_seed: args.per_seed,
        progress: &|n| bar.inc(n),
        ..Options::default()
    };
    let results = pool.install(|| simulate::simulate(&cfgs, &opts))?;
    bar.finish();
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
