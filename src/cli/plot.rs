//! `spannorm plot`.

use super::{err, usage};
use clap::Args;
use spannorm::config::Field;
use spannorm::plot::spec::{At, AxisScale, Filter, Quantity, XAxis};
use spannorm::plot::training::TrainingFigure;
use spannorm::plot::{self, Figure, ImageFormat, PlotSpec};
use spannorm::store;
use spannorm::sweep::SweepSpec;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Result files (any schema-1 JSON) or directories of them (sweep outputs).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// A figure of the catalogue, 1-9, as a preset: the flags below change it. Figures 10
    /// (final loss against learning rate) and 11 (signal over training steps) draw one
    /// training document (`spannorm train --out`).
    #[arg(long)]
    pub figure: Option<usize>,
    /// Quantities, one row (or column) of panels each: q, log10_grad, token_cos, eff_rank,
    /// adj_cos, branch_q.attn, log10_param_grad.ffn.w_2, ...; 1-METRIC; log10_grad_ratio;
    /// theory_error.METRIC. Repeatable, or comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse::<Quantity>)]
    pub y: Vec<Quantity>,
    /// The x axis: layer, or a config field (depth, width, tokens, heads, scale, rho0,
    /// sigma-w, ...) [default: layer].
    #[arg(long, value_parser = parse::<XAxis>)]
    pub x: Option<XAxis>,
    /// With a config field on x: the layer that stands for a run (final, max, min,
    /// layer:K) [default: final].
    #[arg(long, value_parser = parse::<At>)]
    pub at: Option<At>,
    /// The field that sets the colours [default: placement].
    #[arg(long)]
    pub color: Option<Field>,
    /// A field whose values get a column of panels each.
    #[arg(long)]
    pub facet: Option<Field>,
    /// A heatmap: this field's values are the rows, x the columns, the quantity the colour.
    #[arg(long)]
    pub rows: Option<Field>,
    /// Keep only runs with FIELD=VALUE (several values comma-separated). Repeatable.
    #[arg(long = "where", value_parser = parse::<Filter>)]
    pub filter: Vec<Filter>,
    /// Draw each curve's mean-field prediction (dashed).
    #[arg(long)]
    pub theory: bool,
    /// Each curve's least-squares slope with its 95% interval in the legend.
    #[arg(long)]
    pub fit: bool,
    /// A dotted reference line of this slope through the first point of each panel.
    #[arg(long, allow_hyphen_values = true)]
    pub reference_slope: Option<f64>,
    /// Heatmaps: a dashed contour around the cells where theory predicts |value| ≤ B.
    #[arg(long)]
    pub bounded: Option<f64>,
    /// Logarithmic x axis (same as --x-scale log).
    #[arg(long)]
    pub log_x: bool,
    /// Logarithmic y axis (same as --y-scale log).
    #[arg(long)]
    pub log_y: bool,
    /// The x axis's scale: auto (log for numbers spanning a factor 8), linear or log.
    #[arg(long)]
    pub x_scale: Option<AxisScale>,
    /// The y axis's scale: auto (log for second moments, norms, 1 − cosines, errors),
    /// linear or log.
    #[arg(long)]
    pub y_scale: Option<AxisScale>,
    /// A title over the panels [default: none; a figure's own with --numbered].
    #[arg(long)]
    pub title: Option<String>,
    /// With --figure: draw "Figure N. <title>" over the panels.
    #[arg(long)]
    pub numbered: bool,
    /// Output image: .png, .svg or .pdf.
    #[arg(long)]
    pub out: PathBuf,
    /// Keep only the results of this sweep file (`figure` for the figure's own sweep).
    #[arg(long)]
    pub spec: Option<String>,
}

fn parse<T: std::str::FromStr<Err = plot::PlotError>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: plot::PlotError| e.to_string())
}

impl PlotArgs {
    /// The figure's preset (when given) with the flags applied.
    fn spec(&self) -> anyhow::Result<(PlotSpec, Option<&'static Figure>)> {
        let figure = self.figure.map(Figure::get).transpose().map_err(usage)?;
        let mut spec = match figure {
            Some(f) => {
                let p = f.preset().map_err(usage)?;
                let mut s = p.plot;
                if self.numbered {
                    s.title = Some(format!("Figure {}. {}", f.number, p.title));
                }
                s
            }
            None => {
                if self.numbered {
                    return Err(usage("--numbered: only with --figure"));
                }
                if self.y.is_empty() {
                    return Err(usage(
                        "plot: give the quantity (--y q, --y log10_grad, ...) or a figure \
                         (--figure N)",
                    ));
                }
                PlotSpec::default()
            }
        };
        if !self.y.is_empty() {
            spec.y = self.y.clone();
        }
        if let Some(x) = self.x {
            spec.x = x;
            if figure.is_some() && self.at.is_none() && x == XAxis::Layer {
                spec.at = None;
            }
        }
        if self.at.is_some() {
            spec.at = self.at;
        }
        spec.color = self.color.or(spec.color);
        spec.facet = self.facet.or(spec.facet);
        spec.rows = self.rows.or(spec.rows);
        spec.filter.extend(self.filter.iter().cloned());
        spec.theory |= self.theory;
        spec.fit |= self.fit;
        spec.reference_slope = self.reference_slope.or(spec.reference_slope);
        spec.bounded = self.bounded.or(spec.bounded);
        let scale = |flag: bool, explicit: Option<AxisScale>, preset: AxisScale, name: &str| match (
            flag, explicit,
        ) {
            (true, Some(s)) if s != AxisScale::Log => Err(usage(format!(
                "--log-{name} and --{name}-scale {s} disagree"
            ))),
            (true, _) => Ok(AxisScale::Log),
            (false, Some(s)) => Ok(s),
            (false, None) => Ok(preset),
        };
        spec.x_scale = scale(self.log_x, self.x_scale, spec.x_scale, "x")?;
        spec.y_scale = scale(self.log_y, self.y_scale, spec.y_scale, "y")?;
        if self.title.is_some() {
            spec.title = self.title.clone();
        }
        spec.validate().map_err(usage)?;
        Ok((spec, figure))
    }
}

/// Figures 10 and 11 from one training document.
fn plot_training(args: &PlotArgs, number: usize) -> anyhow::Result<()> {
    if !args.y.is_empty() || args.x.is_some() || args.rows.is_some() || args.facet.is_some() {
        return Err(usage(format!(
            "figure {number}: draws a training document as it is; --y, --x, --rows and \
             --facet are for result files"
        )));
    }
    let [path] = &args.results[..] else {
        return Err(usage(format!(
            "figure {number}: give one training document"
        )));
    };
    ImageFormat::of(&args.out).map_err(usage)?;
    let doc = spannorm::train::run::Document::read(path).map_err(usage)?;
    let figure = TrainingFigure::get(number)
        .ok_or(plot::PlotError::UnknownFigure(number))
        .map_err(usage)?;
    let mut data = (figure.draw)(&doc);
    if let Some(t) = &args.title {
        data.title = Some(t.clone());
    } else if args.numbered {
        data.title = Some(format!("Figure {number}. {}", figure.title));
    }
    plot::write(&data, &args.out).map_err(usage)?;
    for n in &data.notes {
        err(&format!("note: {}", plot::rich::plain(n)));
    }
    Ok(())
}

/// `spannorm plot`.
pub fn plot(args: &PlotArgs) -> anyhow::Result<()> {
    if let Some(n) = args.figure.filter(|&n| TrainingFigure::get(n).is_some()) {
        return plot_training(args, n);
    }
    let (spec, figure) = args.spec()?;
    ImageFormat::of(&args.out).map_err(usage)?;
    let mut results = store::load(&args.results).map_err(usage)?;
    if let Some(s) = &args.spec {
        let sweep = if s == "figure" {
            figure
                .ok_or_else(|| usage("--spec figure: only with --figure"))?
                .sweep()
                .map_err(usage)?
        } else {
            SweepSpec::from_file(std::path::Path::new(s)).map_err(usage)?
        };
        results = plot::select(&sweep, results).map_err(usage)?;
    }
    let notes = plot::draw(&spec, &results, &args.out).map_err(usage)?;
    for n in notes {
        err(&format!("note: {}", plot::rich::plain(&n)));
    }
    Ok(())
}
