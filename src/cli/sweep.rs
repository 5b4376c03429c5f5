//! `spannorm sweep`.

use super::{err, out, pool, usage, Progress};
use clap::Args;
use spannorm::store;
use spannorm::sweep::{self, Plan, Shard, Summary, SweepSpec};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Sweep file: a JSON object of config fields, each a value or a list (cross product),
    /// or an array of such objects (union).
    #[arg(long)]
    pub config: PathBuf,
    /// Results directory: one HASH.json file per config, and summary.json.
    #[arg(long, required_unless_present_any = ["list", "dry_run"])]
    pub out: Option<PathBuf>,
    /// Run only part i of n, 1-based (1/n … n/n); merge the parts with `spannorm merge`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Worker threads [default: all cores]. Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run at most this many of the pending configs, then stop (run again to continue).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print each config's file name and config, run nothing (with --out: whether it is
    /// done).
    #[arg(long)]
    pub list: bool,
    /// Print the estimated memory, FLOPs and time of the pending configs (every config
    /// without --out), run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar and no summary table.
    #[arg(long)]
    pub quiet: bool,
}

/// `spannorm sweep`.
pub fn sweep(args: &SweepArgs) -> anyhow::Result<()> {
    let spec = SweepSpec::from_file(&args.config).map_err(usage)?;
    let shard = match &args.shard {
        Some(s) => Some(s.parse::<Shard>().map_err(usage)?),
        None => None,
    };
    let Some(dir) = &args.out else {
        // --list or --dry-run without a directory: every configuration is pending.
        let cfgs = spec.expand().map_err(usage)?;
        let mut cfgs = match shard {
            Some(s) => s.select(&cfgs),
            None => cfgs,
        };
        if args.dry_run {
            for c in &cfgs {
                spannorm::cost::check_fits(c).map_err(usage)?;
            }
            cfgs.truncate(args.limit.unwrap_or(usize::MAX));
            super::dry_run(&cfgs, &pool(args.threads)?);
            return Ok(());
        }
        for c in &cfgs {
            out(&format!("{} {}\n", store::file_name(c), c.canonical()));
        }
        return Ok(());
    };
    store::check_out_dir(dir).map_err(usage)?;
    let plan = Plan::new(&spec, shard, dir).map_err(usage)?;
    if args.list {
        for c in &plan.configs {
            let done = if plan.pending.contains(c) {
                "pending"
            } else {
                "done"
            };
            out(&format!(
                "{} {done} {}\n",
                store::file_name(c),
                c.canonical()
            ));
        }
        return Ok(());
    }
    for c in &plan.pending {
        spannorm::cost::check_fits(c).map_err(usage)?;
    }
    let pool = pool(args.threads)?;
    let mut todo = plan.pending.clone();
    todo.truncate(args.limit.unwrap_or(usize::MAX));
    if args.dry_run {
        super::dry_run(&todo, &pool);
        return Ok(());
    }
    if !args.quiet {
        err(&format!(
            "sweep{}: {} configs, {} done, running {}",
            shard.map_or(String::new(), |s| format!(" shard {s}")),
            plan.configs.len(),
            plan.configs.len() - plan.pending.len(),
            todo.len()
        ));
    }
    let total = spannorm::simulate::total_passes(&todo, &spannorm::simulate::all_jobs(&todo));
    let bar = Progress::new(total, "sweep", args.quiet);
    let written = pool.install(|| sweep::run(&todo, dir, &|n| bar.inc(n)));
    bar.finish();
    for w in written.map_err(usage)? {
        if w.diverged > 0 {
            err(&format!(
                "warning: {} ({}): {} seeds diverged",
                w.placement,
                w.path.display(),
                w.diverged
            ));
        }
    }
    // The summary predicts every config with the theory: on the same pool.
    let summary = pool.install(|| Summary::of_dir(dir)).map_err(usage)?;
    summary.write(dir).map_err(usage)?;
    if !args.quiet {
        out(&summary.table());
    }
    let left = plan.pending.len() - todo.len();
    if left > 0 {
        err(&format!(
            "stopped by --limit: {left} configs left; run the same command to continue"
        ));
    }
    Ok(())
}
