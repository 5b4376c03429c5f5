//! `spannorm sweep`.

use super::{pool, progress, usage};
use crate::sweep::{self, store, Plan, Shard, Summary, SweepSpec};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Sweep file: a JSON object of config fields, each a value or a list (cross product),
    /// or an array of such objects (union).
    #[arg(long)]
    pub config: PathBuf,
    /// Results directory: one HASH.json file per config, and summary.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Run only part i of n, 1-based (1/n … n/n); merge the parts with `spannorm merge`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Worker threads [default: all cores]. Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run at most this many of the pending configs, then stop (run again to continue).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print each config's file name and config, run nothing.
    #[arg(long)]
    pub list: bool,
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
    sweep::check_out_dir(&args.out).map_err(usage)?;
    let plan = Plan::new(&spec, shard, &args.out).map_err(usage)?;
    if args.list {
        for c in &plan.configs {
            println!("{} {}", store::file_name(c), store::canonical(c));
        }
        return Ok(());
    }
    let pool = pool(args.threads)?;
    let mut todo = plan.pending.clone();
    todo.truncate(args.limit.unwrap_or(usize::MAX));
    if !args.quiet {
        eprintln!(
            "sweep{}: {} configs, {} done, running {}",
            shard.map_or(String::new(), |s| format!(" shard {s}")),
            plan.configs.len(),
            plan.configs.len() - plan.pending.len(),
            todo.len()
        );
    }
    let seeds: usize = todo.iter().map(|c| c.seeds).sum();
    let bar = progress(seeds as u64, "sweep", args.quiet);
    let written = pool.install(|| sweep::run(&todo, &args.out, &|| bar.inc(1)));
    bar.finish_and_clear();
    for w in written? {
        if w.diverged > 0 {
            eprintln!(
                "warning: {} ({}): {} seeds diverged",
                w.placement,
                w.path.display(),
                w.diverged
            );
        }
    }
    // The summary predicts every config with the theory: on the same pool.
    let summary = pool.install(|| Summary::of_dir(&args.out))?;
    summary.write(&args.out)?;
    if !args.quiet {
        print!("{}", summary.table());
    }
    let left = plan.pending.len() - todo.len();
    if left > 0 {
        eprintln!("stopped by --limit: {left} configs left; run the same command to continue");
    }
    Ok(())
}
