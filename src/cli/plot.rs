//! `spannorm plot`.

use super::{err, usage};
use clap::Args;
use spannorm::plot::{self, Figure, ImageFormat};
use spannorm::store;
use spannorm::sweep::SweepSpec;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Result files (any schema-1 JSON) or directories of them (sweep outputs).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Figure number, 1-9 (see `analysis/figures/README.md`).
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
            figure.sweep().map_err(usage)?
        } else {
            SweepSpec::from_file(std::path::Path::new(spec)).map_err(usage)?
        };
        results = plot::select(&spec, results).map_err(usage)?;
    }
    let notes = plot::draw(figure, &results, &args.out).map_err(usage)?;
    for n in notes {
        err(&format!("note: {n}"));
    }
    Ok(())
}
