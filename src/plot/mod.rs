//! Figures from result files: PNG or SVG, drawn with plotters and an embedded font (no
//! system font library).
//!
//! - [`figures`]: the catalogue (figures 1–9), each with its experiment (a
//!   sweep file in `analysis/figures/`), its caption, and how it maps results to charts.
//! - [`canvas`]: what a figure shows (panels of lines or heatmaps, legend, notes) and how
//!   it is drawn.
//! - [`reproduce`]: the union of every figure's sweep and `figures/README.md`.
//! - [`style`]: colours (one colour-blind-safe colour per placement), font, number formats.
//!
//! Conventions in every figure: simulation solid with a shaded 95% band (Student t across
//! seeds), theory dashed in the same colour, log axes where a quantity spans decades, axis
//! labels with units, and notes under the charts for anything missing (for instance where
//! `theory::predict` gives no prediction). Drawing never recomputes a simulation.

pub mod canvas;
pub mod figures;
pub mod reproduce;
pub mod style;

pub use figures::{Figure, FIGURES};

use crate::atomic::AtomicFile;
use crate::error::OutputError;
use crate::result::RunResult;
use crate::store::{file_name, StoreError};
use crate::sweep::{SweepError, SweepSpec};
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::{BitMapBackend, IntoDrawingArea, SVGBackend};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Width of every figure in pixels.
pub const WIDTH: u32 = 1500;
/// Height of every figure in pixels.
pub const HEIGHT: u32 = 760;

/// What can go wrong when drawing a figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A figure number that does not exist.
    #[error("figure: {0} does not exist (allowed: 1-9)")]
    UnknownFigure(usize),
    /// An output name with another extension.
    #[error("{0}: the output must end in .png or .svg")]
    Format(PathBuf),
    /// The backend failed.
    #[error("cannot draw: {0}")]
    Draw(String),
    /// Writing the image failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A sweep file that cannot be expanded.
    #[error(transparent)]
    Sweep(#[from] SweepError),
    /// Results that cannot be read.
    #[error(transparent)]
    Results(#[from] StoreError),
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        PlotError::Draw(e.to_string())
    }
}

/// Image format, from the output's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// PNG (bitmap).
    Png,
    /// SVG (vector).
    Svg,
}

impl ImageFormat {
    /// `.png` or `.svg` (any case).
    pub fn of(path: &Path) -> Result<ImageFormat, PlotError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => Ok(ImageFormat::Png),
            Some("svg") => Ok(ImageFormat::Svg),
            _ => Err(PlotError::Format(path.to_path_buf())),
        }
    }
}

/// The results that belong to `spec` (by their config's file name).
pub fn select(spec: &SweepSpec, results: Vec<RunResult>) -> Result<Vec<RunResult>, PlotError> {
    let names: BTreeSet<String> = spec.expand()?.iter().map(file_name).collect();
    Ok(results
        .into_iter()
        .filter(|r| r.sim_config().is_ok_and(|c| names.contains(&file_name(&c))))
        .collect())
}

/// Draws `figure` from `results` into `out` (`.png` or `.svg`, [`WIDTH`] × [`HEIGHT`]),
/// written whole or not at all. Returns the figure's notes (what is missing).
pub fn draw(figure: &Figure, results: &[RunResult], out: &Path) -> Result<Vec<String>, PlotError> {
    let format = ImageFormat::of(out)?;
    let file = AtomicFile::create(out)?;
    style::register_font()?;
    let data = figure.data(results);
    let bytes = match format {
        ImageFormat::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
                canvas::render(&root, &data)?;
            }
            svg.into_bytes()
        }
        ImageFormat::Png => {
            // The bitmap backend encodes by file name: draw into a private temporary file.
            let dir = tempfile::tempdir().map_err(|e| PlotError::Draw(e.to_string()))?;
            let tmp = dir.path().join("figure.png");
            {
                let root = BitMapBackend::new(&tmp, (WIDTH, HEIGHT)).into_drawing_area();
                canvas::render(&root, &data)?;
            }
            std::fs::read(&tmp).map_err(|e| PlotError::Draw(e.to_string()))?
        }
    };
    file.commit(&bytes)?;
    Ok(data.notes)
}
