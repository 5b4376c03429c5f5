//! What a figure shows, independent of the backend, and how it is drawn: panels side by
//! side, a legend strip on the right, notes at the bottom.
//!
//! Log axes are drawn as linear axes of `log10(value)` with ticks labelled by value, so one
//! chart type serves every figure; non-positive values are left out of log axes (a gap in
//! the curve).

use super::style::{self, FONT};
use super::{PlotError, HEIGHT, WIDTH};
use crate::placement::Placement;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Linear or logarithmic axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Linear.
    Linear,
    /// Logarithmic (base 10).
    Log,
}

impl Scale {
    fn map(self, v: f64) -> Option<f64> {
        match self {
            Scale::Linear => v.is_finite().then_some(v),
            Scale::Log => (v.is_finite() && v > 0.0).then(|| v.log10()),
        }
    }
}

/// An axis: its label (with units) and scale.
#[derive(Clone, Debug)]
pub struct Axis {
    /// The label, with units.
    pub label: String,
    /// Linear or log.
    pub scale: Scale,
}

/// What a line shows, which sets its style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Solid, with a shaded 95% band.
    Simulation,
    /// Dashed.
    Theory,
    /// Thin black, dotted: a reference slope.
    Reference,
}

/// Marker shapes, for telling apart curves of one placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// A filled circle.
    Circle,
    /// A filled triangle.
    Triangle,
    /// A filled square.
    Square,
    /// A cross.
    Cross,
}

impl Marker {
    /// The `k`-th marker shape.
    pub fn nth(k: usize) -> Marker {
        [
            Marker::Circle,
            Marker::Triangle,
            Marker::Square,
            Marker::Cross,
        ][k % 4]
    }
}

/// One curve.
#[derive(Clone, Debug)]
pub struct Line {
    /// Sets the colour (black when `None`).
    pub placement: Option<Placement>,
    /// Simulation, theory or reference.
    pub role: Role,
    /// Marker shape drawn on the line, if any.
    pub marker: Option<Marker>,
    /// Points in data units; `None` breaks the line.
    pub points: Vec<Option<(f64, f64)>>,
    /// `(x, lo, hi)` of the 95% interval, drawn as a shaded band.
    pub band: Vec<Option<(f64, f64, f64)>>,
}

/// One chart of lines.
#[derive(Clone, Debug)]
pub struct Panel {
    /// The panel title.
    pub title: String,
    /// The x axis.
    pub x: Axis,
    /// The y axis.
    pub y: Axis,
    /// The curves.
    pub lines: Vec<Line>,
    /// Shown in the middle of the panel when it has no lines.
    pub empty_note: String,
}

/// One heatmap: `values[j][i]` at column `i` (x) and row `j` (y).
#[derive(Clone, Debug)]
pub struct Heat {
    /// The panel title.
    pub title: String,
    /// The x axis label.
    pub x: String,
    /// The y axis label.
    pub y: String,
    /// Column labels.
    pub x_labels: Vec<String>,
    /// Row labels.
    pub y_labels: Vec<String>,
    /// The cell values (`None`: no data).
    pub values: Vec<Vec<Option<f64>>>,
    /// Theory's classification of each cell (bounded or not); its boundary is drawn as a
    /// dashed contour.
    pub region: Vec<Vec<Option<bool>>>,
}

/// The charts of a figure.
#[derive(Clone, Debug)]
pub enum Body {
    /// Panels of lines side by side.
    Lines(Vec<Panel>),
    /// Heatmaps sharing one colour scale `[-limit, limit]`, described by `label`.
    Heat {
        /// The heatmaps.
        panels: Vec<Heat>,
        /// The colour scale is `[-limit, limit]`.
        limit: f64,
        /// What the colour shows.
        label: String,
        /// What the contour encloses.
        region_label: String,
    },
}

/// A legend entry: a curve's colour and marker, its label and detail lines.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Sets the colour (black when `None`).
    pub placement: Option<Placement>,
    /// The marker shape, if any.
    pub marker: Option<Marker>,
    /// The label.
    pub label: String,
    /// Lines of detail under the label.
    pub details: Vec<String>,
}

/// Everything one figure shows.
#[derive(Clone, Debug)]
pub struct FigureData {
    /// The title over the charts.
    pub title: String,
    /// The charts.
    pub body: Body,
    /// The legend entries.
    pub legend: Vec<Entry>,
    /// Lines of text under the charts (what is missing, and why).
    pub notes: Vec<String>,
}

impl FigureData {
    /// Whether any line of `role` is drawn.
    pub fn has(&self, role: Role) -> bool {
        match &self.body {
            Body::Lines(panels) => panels
                .iter()
                .any(|p| p.lines.iter().any(|l| l.role == role)),
            Body::Heat { .. } => false,
        }
    }

    /// Whether any line has a 95% band.
    pub fn has_band(&self) -> bool {
        match &self.body {
            Body::Lines(panels) => panels
                .iter()
                .any(|p| p.lines.iter().any(|l| l.band.iter().any(Option::is_some))),
            Body::Heat { .. } => false,
        }
    }
}

const TITLE_H: u32 = 44;
const LEGEND_W: u32 = 310;
const NOTE_LINE: u32 = 17;
const NOTE_CHARS: usize = 175;

fn colour(p: Option<Placement>) -> RGBColor {
    p.map_or(BLACK, style::colour)
}

/// Splits `text` into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// Draws `fig` on `root` (of [`WIDTH`] × [`HEIGHT`] pixels).
pub fn render<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &FigureData,
) -> Result<(), PlotError> {
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        fig.title.clone(),
        (14, 12),
        (FONT, 22).into_font().color(&BLACK),
    ))?;
    let mut notes: Vec<String> = fig.notes.iter().flat_map(|n| wrap(n, NOTE_CHARS)).collect();
    // At most a third of the canvas for notes; the rest are counted, not drawn.
    let max_lines = ((HEIGHT - TITLE_H) / 3 / NOTE_LINE) as usize;
    if notes.len() > max_lines {
        let hidden = notes.len() - (max_lines - 1);
        notes.truncate(max_lines - 1);
        notes.push(format!("… and {hidden} more note lines"));
    }
    let notes_h = NOTE_LINE * notes.len() as u32 + 10;
    let (_, rest) = root.split_vertically(TITLE_H);
    let (main, bottom) = rest.split_vertically(HEIGHT - TITLE_H - notes_h);
    for (i, n) in notes.iter().enumerate() {
        bottom.draw(&Text::new(
            n.clone(),
            (14, 2 + NOTE_LINE as i32 * i as i32),
            (FONT, 13).into_font().color(&RGBColor(60, 60, 60)),
        ))?;
    }
    let (charts, legend) = main.split_horizontally(WIDTH - LEGEND_W);
    match &fig.body {
        Body::Lines(panels) => {
            let areas = charts.split_evenly((1, panels.len().max(1)));
            for (p, a) in panels.iter().zip(&areas) {
                draw_panel(a, p)?;
            }
            draw_legend(&legend, fig)?;
        }
        Body::Heat {
            panels,
            limit,
            label,
            region_label,
        } => {
            let areas = charts.split_evenly((1, panels.len().max(1)));
            for (h, a) in panels.iter().zip(&areas) {
                draw_heat(root, a, h, *limit)?;
            }
            draw_colour_bar(&legend, *limit, label, region_label, fig)?;
        }
    }
    root.present()?;
    Ok(())
}

/// The data range of the transformed values, padded by 5% (a unit around a single value).
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let pad = 0.5 * lo.abs().max(1.0) * 0.2;
        return (lo - pad, hi + pad);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
) -> Result<(), PlotError> {
    let (sx, sy) = (p.x.scale, p.y.scale);
    let tx = |pt: &(f64, f64)| Some((sx.map(pt.0)?, sy.map(pt.1)?));
    let xs = p
        .lines
        .iter()
        .flat_map(|l| l.points.iter().flatten().filter_map(tx).map(|v| v.0));
    let ys = p
        .lines
        .iter()
        .flat_map(|l| l.points.iter().flatten().filter_map(tx).map(|v| v.1));
    let band_ys = p.lines.iter().flat_map(|l| {
        l.band
            .iter()
            .flatten()
            .flat_map(|&(_, lo, hi)| [sy.map(lo), sy.map(hi)])
            .flatten()
    });
    let (x0, x1) = range(xs);
    let (y0, y1) = range(ys.chain(band_ys));
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (FONT, 17))
        .margin(10)
        .x_label_area_size(46)
        .y_label_area_size(66)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let fmt = |s: Scale| {
        move |v: &f64| match s {
            Scale::Linear => style::number(*v),
            Scale::Log => style::log_tick(*v),
        }
    };
    let (fx, fy) = (fmt(sx), fmt(sy));
    // On a log axis spanning two decades or more, label whole decades only.
    let count = |s: Scale, lo: f64, hi: f64, default: usize| match s {
        Scale::Log if hi - lo >= 2.0 => ((hi - lo).floor() as usize + 1).min(default),
        _ => default,
    };
    chart
        .configure_mesh()
        .x_desc(p.x.label.as_str())
        .y_desc(p.y.label.as_str())
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .x_labels(count(sx, x0, x1, 7))
        .y_labels(count(sy, y0, y1, 8))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .bold_line_style(RGBColor(225, 225, 225))
        .light_line_style(RGBColor(245, 245, 245))
        .draw()?;
    if p.lines.is_empty() {
        area.draw(&Text::new(
            p.empty_note.clone(),
            (90, area.dim_in_pixel().1 as i32 / 2),
            (FONT, 14).into_font().color(&RGBColor(90, 90, 90)),
        ))?;
        return Ok(());
    }
    // Bands first, so every line is drawn over every band.
    for l in &p.lines {
        let c = colour(l.placement);
        for run in runs(&l.band, |&(x, lo, hi)| {
            let x = sx.map(x)?;
            let lo = sy.map(lo).unwrap_or(y0).clamp(y0, y1);
            let hi = sy.map(hi)?.clamp(y0, y1);
            Some((x, lo, hi))
        }) {
            if run.len() < 2 {
                continue;
            }
            let mut poly: Vec<(f64, f64)> = run.iter().map(|&(x, _, hi)| (x, hi)).collect();
            poly.extend(run.iter().rev().map(|&(x, lo, _)| (x, lo)));
            chart.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.15).filled())))?;
        }
    }
    for l in &p.lines {
        let c = colour(l.placement);
        for run in runs(&l.points, tx) {
            match l.role {
                Role::Simulation => {
                    chart.draw_series(LineSeries::new(run.clone(), c.stroke_width(2)))?;
                }
                Role::Theory => {
                    chart.draw_series(DashedLineSeries::new(
                        run.clone(),
                        9,
                        6,
                        c.stroke_width(2),
                    ))?;
                }
                Role::Reference => {
                    chart.draw_series(DashedLineSeries::new(
                        run.clone(),
                        4,
                        4,
                        RGBColor(60, 60, 60).stroke_width(2),
                    ))?;
                }
            }
            if let Some(m) = l.marker {
                let every = (run.len() / 10).max(1);
                let pts: Vec<(f64, f64)> = run.iter().step_by(every).copied().collect();
                let s = c.filled();
                let at = EmptyElement::at;
                match m {
                    Marker::Circle => chart
                        .draw_series(pts.into_iter().map(|p| at(p) + Circle::new((0, 0), 4, s)))?,
                    Marker::Triangle => chart.draw_series(
                        pts.into_iter()
                            .map(|p| at(p) + TriangleMarker::new((0, 0), 5, s)),
                    )?,
                    Marker::Square => chart.draw_series(
                        pts.into_iter()
                            .map(|p| at(p) + Rectangle::new([(-4, -4), (4, 4)], s)),
                    )?,
                    Marker::Cross => chart.draw_series(
                        pts.into_iter()
                            .map(|p| at(p) + Cross::new((0, 0), 4, c.stroke_width(2))),
                    )?,
                };
            }
        }
    }
    Ok(())
}

/// Contiguous runs of mapped points (a `None`, or a value the axis cannot show, ends a run).
fn runs<T, U>(items: &[Option<T>], f: impl Fn(&T) -> Option<U>) -> Vec<Vec<U>> {
    let mut out = vec![Vec::new()];
    for it in items {
        match it.as_ref().and_then(&f) {
            Some(v) => out.last_mut().expect("one run").push(v),
            None => {
                if !out.last().expect("one run").is_empty() {
                    out.push(Vec::new());
                }
            }
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

fn legend_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    m: Marker,
    c: RGBColor,
) -> Result<(), PlotError> {
    let s = c.filled();
    match m {
        Marker::Circle => area.draw(&Circle::new(at, 4, s))?,
        Marker::Triangle => area.draw(&TriangleMarker::new(at, 5, s))?,
        Marker::Square => area.draw(&Rectangle::new(
            [(at.0 - 4, at.1 - 4), (at.0 + 4, at.1 + 4)],
            s,
        ))?,
        Marker::Cross => area.draw(&Cross::new(at, 4, c.stroke_width(2)))?,
    }
    Ok(())
}

/// Black text in the figure font, `size` pixels, at `at`.
fn draw_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    s: &str,
    at: (i32, i32),
    size: i32,
) -> Result<(), plotters::drawing::DrawingAreaErrorKind<DB::ErrorType>> {
    area.draw(&Text::new(
        s.to_string(),
        at,
        (FONT, size).into_font().color(&BLACK),
    ))
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &FigureData,
) -> Result<(), PlotError> {
    let text = |s: &str, at: (i32, i32), size: i32| draw_text(area, s, at, size);
    // Room for the entries above the style keys; details go first, then entries.
    let room = area.dim_in_pixel().1 as i32 - 24 - 110;
    let full: i32 = fig
        .legend
        .iter()
        .map(|e| 21 + 15 * e.details.len() as i32)
        .sum();
    let details = full <= room;
    let fit = if details {
        fig.legend.len()
    } else {
        (room / 21).max(1) as usize
    };
    let mut y = 24;
    for (k, e) in fig.legend.iter().enumerate() {
        if k == fit && fit < fig.legend.len() {
            text(&format!("… and {} more", fig.legend.len() - k), (48, y), 13)?;
            y += 21;
            break;
        }
        let c = colour(e.placement);
        area.draw(&PathElement::new(
            vec![(8, y + 7), (40, y + 7)],
            c.stroke_width(3),
        ))?;
        if let Some(m) = e.marker {
            legend_marker(area, (24, y + 7), m, c)?;
        }
        text(&e.label, (48, y), 14)?;
        y += 18;
        for d in e.details.iter().filter(|_| details) {
            text(d, (48, y), 12)?;
            y += 15;
        }
        y += 3;
    }
    y += 12;
    let grey = RGBColor(80, 80, 80);
    area.draw(&PathElement::new(
        vec![(8, y + 7), (40, y + 7)],
        grey.stroke_width(2),
    ))?;
    text("simulation (mean over seeds)", (48, y), 13)?;
    y += 20;
    if fig.has_band() {
        area.draw(&Rectangle::new(
            [(8, y + 1), (40, y + 13)],
            grey.mix(0.15).filled(),
        ))?;
        text("95% interval over seeds", (48, y), 13)?;
        y += 20;
    }
    if fig.has(Role::Theory) {
        area.draw(&plotters::element::DashedPathElement::new(
            vec![(8, y + 7), (40, y + 7)],
            9,
            6,
            grey.stroke_width(2),
        ))?;
        text("theory (mean-field)", (48, y), 13)?;
        y += 20;
    }
    if fig.has(Role::Reference) {
        area.draw(&plotters::element::DashedPathElement::new(
            vec![(8, y + 7), (40, y + 7)],
            4,
            4,
            RGBColor(60, 60, 60).stroke_width(2),
        ))?;
        text("reference slope d^(-1/2)", (48, y), 13)?;
    }
    Ok(())
}

fn draw_heat<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    area: &DrawingArea<DB, Shift>,
    h: &Heat,
    limit: f64,
) -> Result<(), PlotError> {
    let (nx, ny) = (h.x_labels.len().max(1), h.y_labels.len().max(1));
    let mut chart = ChartBuilder::on(area)
        .caption(&h.title, (FONT, 17))
        .margin(10)
        .x_label_area_size(56)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..nx as f64, 0.0..ny as f64)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .x_desc(h.x.as_str())
        .y_desc(h.y.as_str())
        .axis_desc_style((FONT, 14))
        .draw()?;
    for (j, row) in h.values.iter().enumerate() {
        for (i, v) in row.iter().enumerate() {
            let (x, y) = (i as f64, j as f64);
            let fill = match v {
                Some(v) => style::diverging(v / limit).filled(),
                None => RGBColor(200, 200, 200).filled(),
            };
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x, y), (x + 1.0, y + 1.0)],
                fill,
            )))?;
            let label = v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
            let (px, py) = chart.backend_coord(&(x + 0.5, y + 0.5));
            let ink = if v.is_some_and(|v| (v / limit).abs() > 0.6) {
                WHITE
            } else {
                BLACK
            };
            root.draw(&Text::new(
                label,
                (px, py),
                (FONT, 12)
                    .into_font()
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            ))?;
        }
    }
    let tick = |s: &str, at: (i32, i32), pos: Pos| {
        root.draw(&Text::new(
            s.to_string(),
            at,
            (FONT, 13).into_font().color(&BLACK).pos(pos),
        ))
    };
    for (i, l) in h.x_labels.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        tick(l, (px, py + 8), Pos::new(HPos::Center, VPos::Top))?;
    }
    for (j, l) in h.y_labels.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(0.0, j as f64 + 0.5));
        tick(l, (px - 6, py), Pos::new(HPos::Right, VPos::Center))?;
    }
    // The region's boundary: cell edges between cells classified differently.
    let style = BLACK.stroke_width(3);
    let at = |j: usize, i: usize| h.region.get(j).and_then(|r| r.get(i)).copied().flatten();
    for j in 0..ny {
        for i in 0..nx {
            let here = at(j, i);
            if i + 1 < nx {
                if let (Some(a), Some(b)) = (here, at(j, i + 1)) {
                    if a != b {
                        let x = (i + 1) as f64;
                        chart.draw_series(DashedLineSeries::new(
                            vec![(x, j as f64), (x, (j + 1) as f64)],
                            7,
                            4,
                            style,
                        ))?;
                    }
                }
            }
            if j + 1 < ny {
                if let (Some(a), Some(b)) = (here, at(j + 1, i)) {
                    if a != b {
                        let y = (j + 1) as f64;
                        chart.draw_series(DashedLineSeries::new(
                            vec![(i as f64, y), ((i + 1) as f64, y)],
                            7,
                            4,
                            style,
                        ))?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn draw_colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    limit: f64,
    label: &str,
    region_label: &str,
    fig: &FigureData,
) -> Result<(), PlotError> {
    let text = |s: &str, at: (i32, i32), size: i32| draw_text(area, s, at, size);
    let mut y = 24;
    for line in wrap(label, 30) {
        text(&line, (10, y), 14)?;
        y += 18;
    }
    y += 6;
    let (top, h) = (y, 300);
    for k in 0..h {
        let t = 1.0 - 2.0 * k as f64 / (h - 1) as f64;
        area.draw(&Rectangle::new(
            [(10, top + k), (40, top + k + 1)],
            style::diverging(t).filled(),
        ))?;
    }
    area.draw(&Rectangle::new(
        [(10, top), (40, top + h)],
        BLACK.stroke_width(1),
    ))?;
    for (frac, v) in [
        (0.0, limit),
        (0.25, limit / 2.0),
        (0.5, 0.0),
        (0.75, -limit / 2.0),
        (1.0, -limit),
    ] {
        let yy = top + (frac * (h - 1) as f64) as i32;
        area.draw(&PathElement::new(
            vec![(40, yy), (46, yy)],
            BLACK.stroke_width(1),
        ))?;
        text(&style::number(v), (50, yy - 7), 13)?;
    }
    y = top + h + 24;
    area.draw(&plotters::element::DashedPathElement::new(
        vec![(10, y + 7), (42, y + 7)],
        7,
        4,
        BLACK.stroke_width(3),
    ))?;
    for (k, line) in wrap(region_label, 26).iter().enumerate() {
        text(line, (50, y + 18 * k as i32), 13)?;
    }
    y += 18 * wrap(region_label, 26).len() as i32 + 12;
    for e in &fig.legend {
        text(&e.label, (10, y), 13)?;
        y += 17;
    }
    Ok(())
}
