//! `spannorm merge`.

use super::usage;
use crate::sweep::{store, Summary};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Results directories to combine (the shards of a sweep).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Directory to combine them into (created if missing); summary.json is rewritten.
    #[arg(long)]
    pub out: PathBuf,
    /// No summary table.
    #[arg(long)]
    pub quiet: bool,
}

/// `spannorm merge`.
pub fn merge(args: &MergeArgs) -> anyhow::Result<()> {
    crate::sweep::check_out_dir(&args.out).map_err(usage)?;
    let m = store::merge(&args.dirs, &args.out).map_err(usage)?;
    let summary = Summary::of_dir(&args.out)?;
    summary.write(&args.out)?;
    if !args.quiet {
        eprintln!(
            "merged {} directories: {} files copied, {} already present",
            args.dirs.len(),
            m.copied,
            m.identical
        );
        print!("{}", summary.table());
    }
    Ok(())
}
