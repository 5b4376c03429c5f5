//! What a figure shows, independent of the backend, and how it is drawn: a grid of panels,
//! a legend strip on the right, notes at the bottom.
//!
//! Log axes are drawn as linear axes of `log10(value)` with ticks labelled by value, so one
//! chart type serves every figure; non-positive values are left out of log axes (a gap in
//! the curve). Ticks sit at the data's own values where there are few of them (depths 8,
//! 32, 128, ...), else at whole decades.

use super::rich::{self, Anchor};
use super::style::{self, FONT};
use super::PlotError;
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
    /// The drawn coordinate of a value (`None`: not shown on this axis).
    pub fn map(self, v: f64) -> Option<f64> {
        match self {
            Scale::Linear => v.is_finite().then_some(v),
            Scale::Log => (v.is_finite() && v > 0.0).then(|| v.log10()),
        }
    }
}

/// Where an axis has its ticks.
#[derive(Clone, Debug, PartialEq)]
pub enum Ticks {
    /// Chosen from the range (whole decades on log axes).
    Auto,
    /// At these values (data units), labelled by value.
    At(Vec<f64>),
    /// Named categories at `0, 1, 2, ...`.
    Names(Vec<String>),
}

/// An axis: its label (with units; sub- and superscripts as in [`rich`]), scale and ticks.
#[derive(Clone, Debug)]
pub struct Axis {
    /// The label, with units.
    pub label: String,
    /// Linear or log.
    pub scale: Scale,
    /// Tick positions.
    pub ticks: Ticks,
}

/// What a line shows, which sets its style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Solid, with a shaded 95% band.
    Simulation,
    /// Dashed.
    Theory,
    /// Thin dark grey, dotted: a reference slope.
    Reference,
}

/// Marker shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// A filled circle.
    Circle,
    /// A filled square.
    Square,
    /// A filled triangle, pointing up.
    Triangle,
    /// A filled diamond.
    Diamond,
    /// A filled triangle, pointing down.
    Down,
    /// An x.
    Cross,
    /// A +.
    Plus,
    /// An open circle.
    Ring,
}

impl Marker {
    /// Every shape, in the order they are handed out.
    pub const ALL: [Marker; 8] = [
        Marker::Circle,
        Marker::Square,
        Marker::Triangle,
        Marker::Diamond,
        Marker::Down,
        Marker::Cross,
        Marker::Plus,
        Marker::Ring,
    ];

    /// The `k`-th shape (cycling).
    pub fn nth(k: usize) -> Marker {
        Marker::ALL[k % Marker::ALL.len()]
    }

    /// Draws the marker centred at `at` (pixels).
    fn draw<DB: DrawingBackend>(
        self,
        area: &DrawingArea<DB, Shift>,
        at: (i32, i32),
        c: RGBColor,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let (x, y) = at;
        let fill = c.filled();
        let pen = c.stroke_width(2);
        match self {
            Marker::Circle => area.draw(&Circle::new(at, 4, fill)),
            Marker::Ring => area.draw(&Circle::new(at, 4, pen)),
            Marker::Square => area.draw(&Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], fill)),
            Marker::Triangle => area.draw(&Polygon::new(
                vec![(x, y - 5), (x + 5, y + 4), (x - 5, y + 4)],
                fill,
            )),
            Marker::Down => area.draw(&Polygon::new(
                vec![(x, y + 5), (x + 5, y - 4), (x - 5, y - 4)],
                fill,
            )),
            Marker::Diamond => area.draw(&Polygon::new(
                vec![(x, y - 5), (x + 5, y), (x, y + 5), (x - 5, y)],
                fill,
            )),
            Marker::Cross => {
                area.draw(&PathElement::new(vec![(x - 4, y - 4), (x + 4, y + 4)], pen))?;
                area.draw(&PathElement::new(vec![(x - 4, y + 4), (x + 4, y - 4)], pen))
            }
            Marker::Plus => {
                area.draw(&PathElement::new(vec![(x - 5, y), (x + 5, y)], pen))?;
                area.draw(&PathElement::new(vec![(x, y - 5), (x, y + 5)], pen))
            }
        }
    }
}

/// One curve.
#[derive(Clone, Debug)]
pub struct Line {
    /// Its colour.
    pub colour: RGBColor,
    /// Simulation, theory or reference.
    pub role: Role,
    /// Marker shape drawn on the line, if any.
    pub marker: Option<Marker>,
    /// Stroke width in pixels: curves that coincide are drawn widest first, so each stays
    /// visible under the next.
    pub width: u32,
    /// Shifts the markers along the curve, so coinciding curves show all of theirs.
    pub phase: usize,
    /// Points in data units; `None` breaks the line.
    pub points: Vec<Option<(f64, f64)>>,
    /// `(x, lo, hi)` of the 95% interval, drawn as a shaded band.
    pub band: Vec<Option<(f64, f64, f64)>>,
}

/// One chart of lines.
#[derive(Clone, Debug)]
pub struct Panel {
    /// The panel title (rich text).
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
    /// Panels of lines, `columns` to a row.
    Lines {
        /// The panels, row by row.
        panels: Vec<Panel>,
        /// Panels per row.
        columns: usize,
    },
    /// Heatmaps sharing one colour scale `[-limit, limit]`, described by `label`.
    Heat {
        /// The heatmaps.
        panels: Vec<Heat>,
        /// Panels per row.
        columns: usize,
        /// The colour scale is `[-limit, limit]`.
        limit: f64,
        /// What the colour shows.
        label: String,
        /// What the contour encloses, if one is drawn.
        region_label: Option<String>,
    },
}

/// A legend entry: a curve's colour and marker, its label and detail lines.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The colour.
    pub colour: RGBColor,
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
    /// The title over the charts, if any.
    pub title: Option<String>,
    /// The charts.
    pub body: Body,
    /// The legend entries.
    pub legend: Vec<Entry>,
    /// What the reference line shows, if there is one.
    pub reference: Option<String>,
    /// Lines of text under the charts (what is missing, and why; curves that coincide).
    pub notes: Vec<String>,
}

impl FigureData {
    /// Whether any line of `role` is drawn.
    pub fn has(&self, role: Role) -> bool {
        match &self.body {
            Body::Lines { panels, .. } => panels
                .iter()
                .any(|p| p.lines.iter().any(|l| l.role == role)),
            Body::Heat { .. } => false,
        }
    }

    /// Whether any line has a 95% band.
    pub fn has_band(&self) -> bool {
        match &self.body {
            Body::Lines { panels, .. } => panels
                .iter()
                .any(|p| p.lines.iter().any(|l| l.band.iter().any(Option::is_some))),
            Body::Heat { .. } => false,
        }
    }

    /// The panel grid: `(rows, columns)`.
    pub fn grid(&self) -> (usize, usize) {
        let (n, c) = match &self.body {
            Body::Lines { panels, columns } => (panels.len(), *columns),
            Body::Heat {
                panels, columns, ..
            } => (panels.len(), *columns),
        };
        let c = c.clamp(1, n.max(1));
        (n.max(1).div_ceil(c), c)
    }

    /// The image size in pixels: 1500 × 760 for one row of up to three panels, more for
    /// larger grids.
    pub fn size(&self) -> (u32, u32) {
        let (rows, cols) = self.grid();
        let w = (LEGEND_W + 390 * cols as u32).max(1500);
        let h = 760 + 360 * (rows as u32 - 1);
        (w, h)
    }
}

const TITLE_H: u32 = 44;
const LEGEND_W: u32 = 310;
const NOTE_LINE: u32 = 17;
const NOTE_CHARS: usize = 175;
const GREY: RGBColor = RGBColor(60, 60, 60);

/// Splits `text` into lines of at most `width` characters at spaces.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
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

/// Draws `fig` on `root` (of [`FigureData::size`]).
pub fn render<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &FigureData,
) -> Result<(), PlotError> {
    let (w, h) = fig.size();
    root.fill(&WHITE)?;
    let title_h = if let Some(t) = &fig.title {
        rich::draw(root, t, (14, 12), 22.0, Anchor::Left, &BLACK, false)?;
        TITLE_H
    } else {
        10
    };
    let mut notes: Vec<String> = fig.notes.iter().flat_map(|n| wrap(n, NOTE_CHARS)).collect();
    // At most a third of the canvas for notes; whole notes are left out, and counted.
    let max_lines = ((h - title_h) / 3 / NOTE_LINE) as usize;
    if notes.len() > max_lines {
        let mut kept = Vec::new();
        let mut hidden = 0;
        for n in &fig.notes {
            let lines = wrap(n, NOTE_CHARS);
            if hidden == 0 && kept.len() + lines.len() < max_lines {
                kept.extend(lines);
            } else {
                hidden += 1;
            }
        }
        kept.push(format!(
            "… and {hidden} more notes (printed by spannorm plot)"
        ));
        notes = kept;
    }
    let notes_h = NOTE_LINE * notes.len() as u32 + 10;
    let (_, rest) = root.split_vertically(title_h);
    let (main, bottom) = rest.split_vertically(h - title_h - notes_h);
    for (i, n) in notes.iter().enumerate() {
        rich::draw(
            &bottom,
            n,
            (14, 2 + NOTE_LINE as i32 * i as i32),
            13.0,
            Anchor::Left,
            &GREY,
            false,
        )?;
    }
    let (charts, legend) = main.split_horizontally(w - LEGEND_W);
    let (rows, cols) = fig.grid();
    let areas = charts.split_evenly((rows, cols));
    match &fig.body {
        Body::Lines { panels, .. } => {
            for (p, a) in panels.iter().zip(&areas) {
                draw_panel(root, a, p)?;
            }
            draw_legend(&legend, fig)?;
        }
        Body::Heat {
            panels,
            limit,
            label,
            region_label,
            ..
        } => {
            for (hm, a) in panels.iter().zip(&areas) {
                draw_heat(root, a, hm, *limit)?;
            }
            draw_colour_bar(&legend, *limit, label, region_label.as_deref(), fig)?;
        }
    }
    root.present()?;
    Ok(())
}

/// The data range of the drawn values, padded by 5% (a unit around a single value).
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

/// Tick positions (drawn coordinates) for an axis over `[lo, hi]`.
fn key_points(axis: &Axis, lo: f64, hi: f64) -> Vec<f64> {
    key_points_or_none(axis, lo, hi).unwrap_or_else(|| nice(lo, hi, 6))
}

fn key_points_or_none(axis: &Axis, lo: f64, hi: f64) -> Option<Vec<f64>> {
    let inside = |v: &f64| *v >= lo - 1e-9 && *v <= hi + 1e-9;
    match &axis.ticks {
        Ticks::Names(names) => Some((0..names.len()).map(|i| i as f64).collect()),
        Ticks::At(values) => {
            let mut v: Vec<f64> = values
                .iter()
                .filter_map(|&x| axis.scale.map(x))
                .filter(inside)
                .collect();
            v.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
            (!v.is_empty()).then_some(v)
        }
        Ticks::Auto => match axis.scale {
            Scale::Linear => Some(nice(lo, hi, 6)),
            Scale::Log => {
                let (a, b) = (lo.ceil() as i32, hi.floor() as i32);
                let decades = (b - a + 1).max(0) as usize;
                if decades >= 3 {
                    // Every decade, or every k-th when there are many.
                    let k = decades.div_ceil(8) as i32;
                    Some(
                        (a..=b)
                            .filter(|e| (e - a) % k == 0)
                            .map(f64::from)
                            .collect(),
                    )
                } else {
                    // Within two decades: 1, 2, 5 times powers of ten.
                    let mut v = Vec::new();
                    for e in (lo.floor() as i32)..=(hi.ceil() as i32) {
                        for m in [1.0, 2.0, 5.0] {
                            let x = (m * 10f64.powi(e)).log10();
                            if inside(&x) {
                                v.push(x);
                            }
                        }
                    }
                    (v.len() >= 2).then_some(v)
                }
            }
        },
    }
}

/// About `n` round values (1, 2 or 5 times a power of ten apart) inside `[lo, hi]`.
fn nice(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let raw = (hi - lo) / n.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return vec![lo];
    }
    let e = raw.log10().floor() as i32;
    let p = 10f64.powi(e);
    let m = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|m| m * p >= raw)
        .unwrap_or(10.0);
    let step = m * p;
    // k·m·10^e, dividing by 10^−e for negative e so 3 × 0.1 prints as 0.3.
    let at = |k: i64| {
        if e < 0 {
            k as f64 * m / 10f64.powi(-e)
        } else {
            k as f64 * m * p
        }
    };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(at).collect()
}

/// The labels of an axis's ticks: on a log axis, whole decades all as powers of ten as
/// soon as one of them needs to be.
fn tick_labels(axis: &Axis, ticks: &[f64]) -> Vec<String> {
    let labels: Vec<String> = ticks.iter().map(|&v| tick_label(axis, v)).collect();
    let decade = |v: f64| (v - v.round()).abs() < 1e-6;
    if axis.scale == Scale::Log
        && !matches!(axis.ticks, Ticks::Names(_))
        && labels.iter().any(|l| {
            l.starts_with("10") && l.contains(['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'])
        })
    {
        return ticks
            .iter()
            .zip(labels)
            .map(|(&v, l)| {
                if decade(v) {
                    style::power_of_ten(v.round() as i32)
                } else {
                    l
                }
            })
            .collect();
    }
    labels
}

/// The label of a tick at drawn coordinate `v`.
fn tick_label(axis: &Axis, v: f64) -> String {
    match (&axis.ticks, axis.scale) {
        (Ticks::Names(names), _) => {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }
        (_, Scale::Linear) => style::number(v),
        (_, Scale::Log) => style::log_tick(v),
    }
}

fn draw_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
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
    let (x0, x1) = match &p.x.ticks {
        Ticks::Names(n) => (-0.5, n.len().max(1) as f64 - 0.5),
        _ => range(xs),
    };
    let (y0, y1) = range(ys.chain(band_ys));
    let xk = key_points(&p.x, x0, x1);
    let yk = key_points(&p.y, y0, y1);
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .margin_top(34)
        .x_label_area_size(50)
        .y_label_area_size(76)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    // Axes from plotters; grid, ticks and labels at our key points.
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .axis_style(BLACK.stroke_width(1))
        .draw()?;
    let grid = RGBColor(225, 225, 225);
    let xl = tick_labels(&p.x, &xk);
    let yl = tick_labels(&p.y, &yk);
    for (&x, label) in xk.iter().zip(xl) {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, y0), (x, y1)],
            grid.stroke_width(1),
        )))?;
        let (px, py) = chart.backend_coord(&(x, y0));
        root.draw(&PathElement::new(
            vec![(px, py), (px, py + 5)],
            BLACK.stroke_width(1),
        ))?;
        root.draw(&Text::new(
            label,
            (px, py + 8),
            (FONT, 13)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    for (&y, label) in yk.iter().zip(yl) {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x0, y), (x1, y)],
            grid.stroke_width(1),
        )))?;
        let (px, py) = chart.backend_coord(&(x0, y));
        root.draw(&PathElement::new(
            vec![(px - 5, py), (px, py)],
            BLACK.stroke_width(1),
        ))?;
        root.draw(&Text::new(
            label,
            (px - 8, py),
            (FONT, 13)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
    }
    // Title and axis labels in rich text, placed from the plotting area's pixels.
    let (px, py) = chart.plotting_area().get_pixel_range();
    let cx = (px.start + px.end) / 2;
    rich::draw(
        root,
        &p.title,
        (cx, py.start - 28),
        17.0,
        Anchor::Centre,
        &BLACK,
        false,
    )?;
    rich::draw(
        root,
        &p.x.label,
        (cx, py.end + 28),
        14.0,
        Anchor::Centre,
        &BLACK,
        false,
    )?;
    rich::draw(
        root,
        &p.y.label,
        (px.start - 72, (py.start + py.end) / 2),
        14.0,
        Anchor::Centre,
        &BLACK,
        true,
    )?;
    if p.lines.is_empty() {
        rich::draw(
            root,
            &p.empty_note,
            (cx, (py.start + py.end) / 2),
            14.0,
            Anchor::Centre,
            &RGBColor(90, 90, 90),
            false,
        )?;
        return Ok(());
    }
    // Bands first, so every line is drawn over every band.
    for l in &p.lines {
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
            chart.draw_series(std::iter::once(Polygon::new(
                poly,
                l.colour.mix(0.15).filled(),
            )))?;
        }
    }
    for l in &p.lines {
        let c = l.colour;
        let w = l.width.max(1);
        for run in runs(&l.points, tx) {
            match l.role {
                Role::Simulation => {
                    chart.draw_series(LineSeries::new(run.clone(), c.stroke_width(w)))?;
                }
                Role::Theory => {
                    chart.draw_series(DashedLineSeries::new(
                        run.clone(),
                        9,
                        6,
                        c.stroke_width(w),
                    ))?;
                }
                Role::Reference => {
                    chart.draw_series(DashedLineSeries::new(
                        run.clone(),
                        3,
                        4,
                        GREY.stroke_width(2),
                    ))?;
                }
            }
            if let Some(m) = l.marker {
                // About ten markers a curve, shifted by the curve's phase.
                let every = (run.len() / 10).max(1);
                let offset = if every > 1 { l.phase % every } else { 0 };
                for pt in run.iter().skip(offset).step_by(every) {
                    let at = chart.backend_coord(&(pt.0, pt.1));
                    m.draw(root, at, c)?;
                }
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

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &FigureData,
) -> Result<(), PlotError> {
    let text = |s: &str, at: (i32, i32), size: f64| {
        rich::draw(area, s, at, size, Anchor::Left, &BLACK, false)
    };
    // Room for the entries above the style keys; details go first, then entries.
    let room = area.dim_in_pixel().1 as i32 - 24 - 110;
    // Details wrap at 48 characters, continuation lines indented.
    let wrapped: Vec<Vec<String>> = fig
        .legend
        .iter()
        .map(|e| {
            e.details
                .iter()
                .flat_map(|d| {
                    wrap(d, 48).into_iter().enumerate().map(|(i, l)| {
                        if i == 0 {
                            l
                        } else {
                            format!("   {l}")
                        }
                    })
                })
                .collect()
        })
        .collect();
    let full: i32 = wrapped.iter().map(|d| 21 + 15 * d.len() as i32).sum();
    let details = full <= room;
    let fit = if details {
        fig.legend.len()
    } else {
        (room / 21).max(1) as usize
    };
    let mut y = 24;
    for (k, e) in fig.legend.iter().enumerate() {
        if k == fit && fit < fig.legend.len() {
            text(
                &format!("… and {} more", fig.legend.len() - k),
                (48, y),
                13.0,
            )?;
            y += 21;
            break;
        }
        area.draw(&PathElement::new(
            vec![(8, y + 7), (40, y + 7)],
            e.colour.stroke_width(3),
        ))?;
        if let Some(m) = e.marker {
            m.draw(area, (24, y + 7), e.colour)?;
        }
        text(&e.label, (48, y), 14.0)?;
        y += 18;
        for d in wrapped[k].iter().filter(|_| details) {
            text(d, (48, y), 12.0)?;
            y += 15;
        }
        y += 3;
    }
    y += 12;
    let grey = RGBColor(80, 80, 80);
    if fig.has(Role::Simulation) {
        area.draw(&PathElement::new(
            vec![(8, y + 7), (40, y + 7)],
            grey.stroke_width(2),
        ))?;
        text("simulation (mean over seeds)", (48, y), 13.0)?;
        y += 20;
    }
    if fig.has_band() {
        area.draw(&Rectangle::new(
            [(8, y + 1), (40, y + 13)],
            grey.mix(0.15).filled(),
        ))?;
        text("95% interval over seeds", (48, y), 13.0)?;
        y += 20;
    }
    if fig.has(Role::Theory) {
        area.draw(&plotters::element::DashedPathElement::new(
            vec![(8, y + 7), (40, y + 7)],
            9,
            6,
            grey.stroke_width(2),
        ))?;
        text("theory (mean-field)", (48, y), 13.0)?;
        y += 20;
    }
    if let (true, Some(r)) = (fig.has(Role::Reference), &fig.reference) {
        area.draw(&plotters::element::DashedPathElement::new(
            vec![(8, y + 7), (40, y + 7)],
            3,
            4,
            GREY.stroke_width(2),
        ))?;
        text(r, (48, y), 13.0)?;
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
        .margin(10)
        .margin_top(34)
        .x_label_area_size(56)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..nx as f64, 0.0..ny as f64)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .draw()?;
    let (px, py) = chart.plotting_area().get_pixel_range();
    let cx = (px.start + px.end) / 2;
    rich::draw(
        root,
        &h.title,
        (cx, py.start - 28),
        17.0,
        Anchor::Centre,
        &BLACK,
        false,
    )?;
    rich::draw(
        root,
        &h.x,
        (cx, py.end + 32),
        14.0,
        Anchor::Centre,
        &BLACK,
        false,
    )?;
    rich::draw(
        root,
        &h.y,
        (px.start - 104, (py.start + py.end) / 2),
        14.0,
        Anchor::Centre,
        &BLACK,
        true,
    )?;
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
    region_label: Option<&str>,
    fig: &FigureData,
) -> Result<(), PlotError> {
    let text = |s: &str, at: (i32, i32), size: f64| {
        rich::draw(area, s, at, size, Anchor::Left, &BLACK, false)
    };
    let mut y = 24;
    for line in wrap(label, 30) {
        text(&line, (10, y), 14.0)?;
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
        text(&style::number(v), (50, yy - 7), 13.0)?;
    }
    y = top + h + 24;
    if let Some(region_label) = region_label {
        area.draw(&plotters::element::DashedPathElement::new(
            vec![(10, y + 7), (42, y + 7)],
            7,
            4,
            BLACK.stroke_width(3),
        ))?;
        let lines = wrap(region_label, 26);
        for (k, line) in lines.iter().enumerate() {
            text(line, (50, y + 18 * k as i32), 13.0)?;
        }
        y += 18 * lines.len() as i32 + 12;
    }
    for e in &fig.legend {
        text(&e.label, (10, y), 13.0)?;
        y += 17;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(scale: Scale, ticks: Ticks) -> Axis {
        Axis {
            label: String::new(),
            scale,
            ticks,
        }
    }

    #[test]
    fn linear_ticks_are_round() {
        assert_eq!(nice(0.0, 64.0, 6), vec![0.0, 20.0, 40.0, 60.0]);
        assert_eq!(
            nice(0.0, 256.0, 6),
            vec![0.0, 50.0, 100.0, 150.0, 200.0, 250.0]
        );
        assert_eq!(nice(-0.12, 0.31, 6), vec![-0.1, 0.0, 0.1, 0.2, 0.3]);
    }

    #[test]
    fn log_ticks_sit_at_the_data_or_at_decades() {
        // Depths 8 … 4096: ticks at the data's values, labelled as such.
        let depths = [8.0, 32.0, 128.0, 512.0, 2048.0, 4096.0];
        let a = axis(Scale::Log, Ticks::At(depths.to_vec()));
        let (lo, hi) = (8f64.log10() - 0.1, 4096f64.log10() + 0.1);
        let k = key_points(&a, lo, hi);
        assert_eq!(
            tick_labels(&a, &k),
            vec!["8", "32", "128", "512", "2048", "4096"]
        );
        // Many decades: whole decades, all as powers once one needs to be.
        let a = axis(Scale::Log, Ticks::Auto);
        let k = key_points(&a, -7.2, 0.3);
        assert_eq!(
            tick_labels(&a, &k),
            vec![
                "10⁻⁷", "10⁻⁶", "10⁻⁵", "10⁻⁴", "10⁻³", "10⁻²", "10⁻¹", "10⁰"
            ]
        );
        // Within a decade or two: 1, 2 and 5 times powers of ten.
        let k = key_points(&a, 0.0, 1.05);
        assert_eq!(tick_labels(&a, &k), vec!["1", "2", "5", "10"]);
    }

    #[test]
    fn named_ticks_label_categories() {
        let a = axis(
            Scale::Linear,
            Ticks::Names(vec!["none".into(), "sqrt-depth".into()]),
        );
        let k = key_points(&a, -0.5, 1.5);
        assert_eq!(tick_labels(&a, &k), vec!["none", "sqrt-depth"]);
    }

    #[test]
    fn sizes_grow_with_the_grid() {
        let fig = |n: usize, columns: usize| FigureData {
            title: None,
            body: Body::Lines {
                panels: (0..n)
                    .map(|_| Panel {
                        title: String::new(),
                        x: axis(Scale::Linear, Ticks::Auto),
                        y: axis(Scale::Linear, Ticks::Auto),
                        lines: Vec::new(),
                        empty_note: String::new(),
                    })
                    .collect(),
                columns,
            },
            legend: Vec::new(),
            reference: None,
            notes: Vec::new(),
        };
        assert_eq!(fig(2, 2).size(), (1500, 760));
        assert_eq!(fig(3, 3).size(), (1500, 760));
        assert_eq!(fig(6, 3).grid(), (2, 3));
        assert_eq!(fig(6, 3).size(), (1500, 1120));
        assert_eq!(fig(4, 4).size(), (1870, 760));
    }
}
