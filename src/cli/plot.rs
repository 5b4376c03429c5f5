//! `spannorm plot`.

use super::usage;
use crate::plot::{self, Figure, ImageFormat};
use crate::sweep::{store, SweepSpec};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Result files (any schema-1 JSON) or directories of them (sweep outputs).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Figure number, 1-8 (see `analysis/figures/README.md`).
    #[arg(long)]
    pub figure: usize,
    /// Output image: .png or .svg.
    #[arg(long)]
    pub out: PathBuf,
    /// Keep only the results of this sweep file (`figure` for the figure's own sweep).
    #[arg(long)]
    pub spec: Option<String>,
}

/// `spannorm plot`.
pub fn plot(args: &PlotArgs) -> anyhow::Result<()> {
    let figure = Figure::get(args.figure).map_err(usage)?;
    ImageFormat::of(&args.out).map_err(usage)?;
    let mut results = store::load(&args.results).map_err(usage)?;
    if let Some(spec) = &args.spec {
        let spec = if spec == "figure" {
            figure.sweep()
        } else {
            SweepSpec::from_file(std::path::Path::new(spec)).map_err(usage)?
        };
        results = plot::select(&spec, results).map_err(usage)?;
    }
    let notes = plot::draw(figure, &results, &args.out).map_err(|e| match e {
        plot::PlotError::Output(_) | plot::PlotError::Format(_) => usage(e),
        other => other.into(),
    })?;
    for n in notes {
        eprintln!("note: {n}");
    }
    Ok(())
}
