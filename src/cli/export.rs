//! `spannorm export`.

use super::usage;
use clap::Args;
use spannorm::atomic::AtomicFile;
use spannorm::{report, store};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Result files (any result document) or directories of them (sweep outputs).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// The CSV file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Also one row per seed, for results that kept their seeds (`simulate --per-seed`,
    /// `check --cache`).
    #[arg(long)]
    pub per_seed: bool,
}

/// `spannorm export`: every result as tidy long-format CSV.
pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let file = AtomicFile::create(&args.out).map_err(usage)?;
    let results = store::load(&args.results).map_err(usage)?;
    if results.is_empty() {
        return Err(usage(format!(
            "no results in {}",
            args.results
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    file.commit(report::to_csv(&results, args.per_seed).as_bytes())
        .map_err(usage)?;
    Ok(())
}
