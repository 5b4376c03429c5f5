//! `spannorm merge`.

use super::{err, out, usage};
use clap::Args;
use spannorm::store;
use spannorm::sweep::Summary;
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
    store::check_out_dir(&args.out).map_err(usage)?;
    let m = store::merge(&args.dirs, &args.out).map_err(usage)?;
    let summary = Summary::of_dir(&args.out).map_err(usage)?;
    summary.write(&args.out).map_err(usage)?;
    if !args.quiet {
        err(&format!(
            "merged {} directories: {} files copied, {} already present",
            args.dirs.len(),
            m.copied,
            m.identical
        ));
        out(&summary.table());
    }
    Ok(())
}
