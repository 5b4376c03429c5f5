//! Plots of any results, and the figure catalogue: SVG, PNG or PDF, drawn with plotters
//! and the embedded font (no system font library).
//!
//! - [`spec`]: the plot grammar ([`PlotSpec`]: `--y`, `--x`, `--at`, `--color`, `--facet`,
//!   `--rows`, `--where`, `--theory`, ...), read from flags and from JSON alike.
//! - [`build`]: results and a spec to what a figure shows (curves grouped by config
//!   fields, theory, fits, notes).
//! - [`figures`]: the catalogue, figures 1–9, each a sweep file and a preset of the
//!   grammar in `analysis/figures/`.
//! - [`canvas`]: what a figure shows (panels of lines or heatmaps, legend, notes) and how
//!   it is drawn; [`rich`]: sub- and superscripts; [`style`]: colours, markers, numbers.
//! - [`reproduce`]: the union of every figure's sweep and `figures/README.md`.
//!
//! Conventions in every figure: simulation solid with a shaded 95% band (Student t across
//! seeds), theory dashed in the same colour, log axes where a quantity spans decades, axis
//! labels with units, and notes under the charts for anything missing (for instance where
//! `theory::predict` gives no prediction). Drawing never recomputes a simulation.
//!
//! Every image is drawn once as SVG; [`encode`] turns it into the output format through
//! usvg with the embedded font, so text is the same glyph outlines in SVG (text as paths),
//! PNG and PDF, and no viewer needs a font.

pub mod build;
pub mod canvas;
pub mod figures;
pub mod reproduce;
pub mod rich;
pub mod spec;
pub mod style;
pub mod training;

pub use figures::{Figure, Preset, FIGURES};
pub use spec::PlotSpec;

use crate::atomic::AtomicFile;
use crate::error::OutputError;
use crate::result::RunResult;
use crate::store::{file_name, StoreError};
use crate::sweep::{SweepError, SweepSpec};
use canvas::FigureData;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::{IntoDrawingArea, SVGBackend};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// What can go wrong when drawing a figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A plot spec that does not fit together, or a value it cannot read.
    #[error("{0}")]
    Spec(String),
    /// The results hold nothing this plot can draw.
    #[error("nothing to plot: {0}")]
    Nothing(String),
    /// A figure number that does not exist.
    #[error("figure: {0} does not exist (allowed: 1-9, and 10-11 of a training document)")]
    UnknownFigure(usize),
    /// An output name with another extension.
    #[error("{0}: the output must end in .png, .svg or .pdf")]
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
    /// SVG (vector, text as paths).
    Svg,
    /// PDF (vector, one page).
    Pdf,
}

impl ImageFormat {
    /// `.png`, `.svg` or `.pdf` (any case).
    pub fn of(path: &Path) -> Result<ImageFormat, PlotError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => Ok(ImageFormat::Png),
            Some("svg") => Ok(ImageFormat::Svg),
            Some("pdf") => Ok(ImageFormat::Pdf),
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

/// The SVG text of a figure, as plotters draws it (text as `<text>` elements).
pub fn svg(data: &FigureData) -> Result<String, PlotError> {
    style::register_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, data.size()).into_drawing_area();
        canvas::render(&root, data)?;
    }
    Ok(svg)
}

/// usvg's options with only the embedded font, as every family.
fn options() -> &'static resvg::usvg::Options<'static> {
    static OPT: OnceLock<resvg::usvg::Options<'static>> = OnceLock::new();
    OPT.get_or_init(|| {
        let mut db = resvg::usvg::fontdb::Database::new();
        db.load_font_data(style::FONT_BYTES.to_vec());
        let family = db
            .faces()
            .next()
            .and_then(|f| f.families.first().map(|(name, _)| name.clone()))
            .unwrap_or_default();
        db.set_sans_serif_family(family.clone());
        db.set_serif_family(family.clone());
        db.set_monospace_family(family);
        resvg::usvg::Options {
            fontdb: Arc::new(db),
            ..Default::default()
        }
    })
}

/// Turns plotters' SVG into the output format: SVG with text as paths, PNG, or PDF.
pub fn encode(svg: &str, format: ImageFormat) -> Result<Vec<u8>, PlotError> {
    let draw = |e: String| PlotError::Draw(e);
    let tree = resvg::usvg::Tree::from_str(svg, options()).map_err(|e| draw(e.to_string()))?;
    match format {
        ImageFormat::Svg => Ok(tree
            .to_string(&resvg::usvg::WriteOptions::default())
            .into_bytes()),
        ImageFormat::Png => {
            let size = tree.size().to_int_size();
            let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
                .ok_or_else(|| draw("empty image".into()))?;
            resvg::render(
                &tree,
                resvg::tiny_skia::Transform::default(),
                &mut pixmap.as_mut(),
            );
            pixmap.encode_png().map_err(|e| draw(e.to_string()))
        }
        ImageFormat::Pdf => svg2pdf::to_pdf(
            &tree,
            svg2pdf::ConversionOptions::default(),
            svg2pdf::PageOptions::default(),
        )
        .map_err(|e| draw(e.to_string())),
    }
}

/// Draws `data` into `out` (`.png`, `.svg` or `.pdf`), written whole or not at all.
pub fn write(data: &FigureData, out: &Path) -> Result<(), PlotError> {
    let format = ImageFormat::of(out)?;
    let file = AtomicFile::create(out)?;
    let bytes = encode(&svg(data)?, format)?;
    file.commit(&bytes)?;
    Ok(())
}

/// Builds the plot `spec` describes from `results` and writes it to `out`. Returns the
/// figure's notes (what is missing, curves that coincide).
pub fn draw(spec: &PlotSpec, results: &[RunResult], out: &Path) -> Result<Vec<String>, PlotError> {
    ImageFormat::of(out)?;
    let data = build::build(spec, results)?;
    write(&data, out)?;
    Ok(data.notes)
}
