//! From a [`PlotSpec`] and a set of results to what a figure shows ([`FigureData`]).
//!
//! Runs are grouped by config fields: the x field (and `d-ff`, which follows the width)
//! runs along a curve, the facet field splits panels, the colour field sets colours, and
//! every other field that varies among the runs separates curves and names them in the
//! legend. Curves are ordered by placement (the spec's order), then by config. Theory
//! curves come from [`crate::theory::predict_memo`] on each run's config; where it refuses,
//! the curve is absent and one short note per reason says so.

use super::canvas::{Axis, Body, Entry, FigureData, Heat, Line, Marker, Panel, Role, Scale, Ticks};
use super::spec::{At, AxisScale, PlotSpec, Quantity, XAxis};
use super::style;
use super::PlotError;
use crate::choice::Choice;
use crate::config::{Field, PlacementSpec};
use crate::fit;
use crate::placement::Placement;
use crate::result::{Along, Metric, RunResult, Source};
use crate::summary::{Reason, Series};
use crate::sweep::summary::{Finals, Point};
use plotters::style::RGBColor;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// One run ready to draw: its placement and, where asked for, its prediction.
struct Run<'a> {
    r: &'a RunResult,
    placement: Placement,
    /// The prediction, or the placement and the short reason there is none.
    theory: Option<Result<RunResult, String>>,
}

impl Run<'_> {
    fn text(&self, f: Field) -> String {
        self.r.config.text(f).unwrap_or_else(|| "null".into())
    }

    fn prediction(&self) -> Option<&RunResult> {
        self.theory.as_ref().and_then(|t| t.as_ref().ok())
    }
}

/// A curve (or a heatmap panel): runs that differ only in the x field.
struct Curve<'a, 'b> {
    runs: Vec<&'b Run<'a>>,
    facet: Option<String>,
    label: String,
    colour: RGBColor,
    marker: Marker,
}

/// A value with its 95% interval.
#[derive(Clone, Copy, Debug, Default)]
struct Value {
    mean: Option<f64>,
    lo: Option<f64>,
    hi: Option<f64>,
}

impl From<Point> for Value {
    fn from(p: Point) -> Value {
        Value {
            mean: p.mean,
            lo: p.lo,
            hi: p.hi,
        }
    }
}

/// The symbol of a field's value in a title (`L = 64`), and its axis label.
fn field_symbol(f: Field) -> Option<&'static str> {
    match f {
        Field::Depth => Some("L"),
        Field::Width => Some("d"),
        Field::Tokens => Some("n"),
        Field::Heads => Some("H"),
        Field::DFf => Some("d_{ff}"),
        Field::Rho0 => Some("ρ_{0}"),
        Field::SigmaW => Some("σ_{w}"),
        Field::Scale => Some("α"),
        _ => None,
    }
}

/// A field's axis label, with `log` inside the parentheses on a log axis.
fn field_axis_label(f: Field, scale: Scale) -> String {
    let l = field_label(f);
    match (scale, l.strip_suffix(')')) {
        (Scale::Linear, _) => l,
        (Scale::Log, Some(head)) => format!("{head}, log)"),
        (Scale::Log, None) => format!("{l} (log)"),
    }
}

fn field_label(f: Field) -> String {
    match f {
        Field::Depth => "depth L (blocks)".into(),
        Field::Width => "width d".into(),
        Field::Tokens => "tokens n".into(),
        Field::Heads => "heads H".into(),
        Field::DFf => "feed-forward width d_{ff}".into(),
        Field::Rho0 => "input token correlation ρ_{0}".into(),
        Field::SigmaW => "weight scale σ_{w}".into(),
        Field::Scale => "branch scale α".into(),
        _ => f.name().to_string(),
    }
}

/// `field value` as a label or title shows it.
fn field_value(f: Field, v: &str) -> String {
    match (f, field_symbol(f)) {
        (Field::Placement, _) => v.to_string(),
        (Field::Scale, _) => format!("scale {v}"),
        (_, Some(s)) => format!("{s} = {v}"),
        (_, None) => format!("{f} {v}"),
    }
}

/// A metric's symbol at layer index `i` (rich text).
fn symbol(m: Metric, i: &str) -> String {
    match m {
        Metric::Loss => "loss ℓ".into(),
        Metric::Q => format!("q_{{{i}}}"),
        Metric::Log10Grad => format!("log_{{10}} grad_{{{i}}}"),
        Metric::Grad => format!("grad_{{{i}}}"),
        Metric::TokenCos => format!("token_cos_{{{i}}}"),
        Metric::EffRank => format!("eff_rank_{{{i}}}"),
        Metric::StableRank => format!("stable_rank_{{{i}}}"),
        Metric::Rank1Residual => format!("rank1_residual_{{{i}}}"),
        Metric::AdjCos => format!("adj_cos_{{{i}}}"),
        Metric::QPreNorm => format!("q_pre_norm_{{{i}}}"),
        Metric::BranchQAttn => format!("branch_q.attn_{{{i}}}"),
        Metric::BranchQFfn => format!("branch_q.ffn_{{{i}}}"),
        Metric::Log10ParamGrad(w) => format!("log_{{10}}‖∂ℓ/∂{w}‖_{{{i}}}"),
        Metric::ParamGrad(w) => format!("‖∂ℓ/∂{w}‖_{{{i}}}"),
    }
}

fn describe(m: Metric) -> String {
    match m {
        Metric::Loss => "loss".into(),
        Metric::Q => "forward second moment".into(),
        Metric::Log10Grad | Metric::Grad => "gradient norm".into(),
        Metric::TokenCos => "token cosine".into(),
        Metric::EffRank => "effective rank".into(),
        Metric::StableRank => "stable rank".into(),
        Metric::Rank1Residual => "distance from rank one".into(),
        Metric::AdjCos => "cosine of block input and output".into(),
        Metric::QPreNorm => "second moment before the closing norm".into(),
        Metric::BranchQAttn => "attention output second moment".into(),
        Metric::BranchQFfn => "feed-forward output second moment".into(),
        Metric::Log10ParamGrad(w) | Metric::ParamGrad(w) => format!("gradient of {w}"),
    }
}

/// Whether a metric's error against theory is relative (positive quantities) or absolute.
fn relative(m: Metric) -> bool {
    !matches!(
        m,
        Metric::Log10Grad
            | Metric::Log10ParamGrad(_)
            | Metric::TokenCos
            | Metric::AdjCos
            | Metric::Rank1Residual
    )
}

impl Quantity {
    /// The quantity's symbol at layer index `i` (rich text).
    fn symbol(self, i: &str) -> String {
        match self {
            Quantity::Metric(m) => symbol(m, i),
            Quantity::OneMinus(m) => format!("1 − {}", symbol(m, i)),
            Quantity::Log10GradRatio => "log_{10}(grad_{0} / grad_{L})".into(),
            Quantity::TheoryError(m) if relative(m) => {
                format!("mean_{{l}} |{} / theory − 1|", symbol(m, "l"))
            }
            Quantity::TheoryError(m) => format!("mean_{{l}} |{} − theory|", symbol(m, "l")),
        }
    }

    fn describe(self) -> String {
        match self {
            Quantity::Metric(m) => describe(m),
            Quantity::OneMinus(Metric::AdjCos) => "change per block".into(),
            Quantity::OneMinus(m) => format!("1 − {}", describe(m)),
            Quantity::Log10GradRatio => "gradient ratio input / output".into(),
            Quantity::TheoryError(m) => format!("{}: simulation against theory", describe(m)),
        }
    }
}

/// The symbol's layer index for `at`.
fn index_text(at: At) -> String {
    match at {
        At::Final => "L".into(),
        At::Max | At::Min => "l".into(),
        At::Layer(k) => k.to_string(),
    }
}

/// The y label: the quantity at its layer, and the axis scale.
fn y_label(q: Quantity, x: XAxis, at: At, scale: Scale) -> String {
    let s = match (x, q.along()) {
        (XAxis::Layer, _) | (_, Along::Scalar) => q.symbol("l"),
        (_, _) => match at {
            At::Max => format!("max_{{l}} {}", q.symbol("l")),
            At::Min => format!("min_{{l}} {}", q.symbol("l")),
            _ => q.symbol(&index_text(at)),
        },
    };
    match scale {
        Scale::Log => format!("{s} (log)"),
        Scale::Linear => s,
    }
}

/// Entry `i` of a series with its interval.
fn entry(s: &Series, i: usize) -> Value {
    let at = |v: &Vec<Option<f64>>| v.get(i).copied().flatten();
    Value {
        mean: at(&s.mean),
        lo: at(&s.lo),
        hi: at(&s.hi),
    }
}

/// `1 − v`, with the interval turned around.
fn one_minus(v: Value) -> Value {
    Value {
        mean: v.mean.map(|m| 1.0 - m),
        lo: v.hi.map(|h| 1.0 - h),
        hi: v.lo.map(|l| 1.0 - l),
    }
}

/// The index of the entry that stands for a run at `at`.
fn pick(s: &Series, m: Metric, at: At) -> Option<usize> {
    let n = s.mean.len();
    let best = |better: fn(f64, f64) -> bool| {
        let mut out: Option<(usize, f64)> = None;
        for (i, v) in s.mean.iter().enumerate() {
            if let Some(v) = *v {
                if out.is_none_or(|(_, b)| better(v, b)) {
                    out = Some((i, v));
                }
            }
        }
        out.map(|(i, _)| i)
    };
    match at {
        At::Final => n.checked_sub(1),
        At::Max => best(|a, b| a > b),
        At::Min => best(|a, b| a < b),
        At::Layer(k) => {
            let i = match m.along() {
                Along::Blocks => k.checked_sub(1)?,
                _ => k,
            };
            (i < n).then_some(i)
        }
    }
}

/// Mean over layers of the error of `sim` against `th`.
fn theory_error(m: Metric, sim: &RunResult, th: &RunResult) -> Option<f64> {
    let (a, b) = (sim.get(m)?, th.get(m)?);
    let errs: Vec<f64> = a
        .mean
        .iter()
        .zip(&b.mean)
        .filter_map(|(x, y)| {
            let (x, y) = ((*x)?, (*y)?);
            if relative(m) {
                (y > 0.0).then(|| (x / y - 1.0).abs())
            } else {
                Some((x - y).abs())
            }
        })
        .collect();
    (!errs.is_empty()).then(|| errs.iter().sum::<f64>() / errs.len() as f64)
}

/// The value of `q` for one run (simulated, or predicted when `th` is the prediction)
/// when the x axis is a config field.
fn value(q: Quantity, at: At, r: &RunResult, pred: Option<&RunResult>) -> Value {
    match q {
        Quantity::Metric(m) | Quantity::OneMinus(m) => {
            let Some(s) = r.get(m) else {
                return Value::default();
            };
            let v = pick(s, m, at).map_or_else(Value::default, |i| entry(s, i));
            if matches!(q, Quantity::OneMinus(_)) {
                one_minus(v)
            } else {
                v
            }
        }
        Quantity::Log10GradRatio => Finals::of(r).log10_grad_ratio.into(),
        Quantity::TheoryError(m) => Value {
            mean: pred.and_then(|t| theory_error(m, r, t)),
            ..Value::default()
        },
    }
}

/// A run's curve along its layers: `(l, value)` per entry.
fn along_layers(q: Quantity, r: &RunResult) -> Vec<(f64, Value)> {
    let (Quantity::Metric(m) | Quantity::OneMinus(m)) = q else {
        return Vec::new();
    };
    let Some(s) = r.get(m) else {
        return Vec::new();
    };
    (0..s.mean.len())
        .filter_map(|i| {
            let l = r.layer(m, i)? as f64;
            let v = entry(s, i);
            Some((
                l,
                if matches!(q, Quantity::OneMinus(_)) {
                    one_minus(v)
                } else {
                    v
                },
            ))
        })
        .collect()
}

/// Sorted distinct values of a field among runs: by number where every value has one,
/// by the placement's order for placements, else by text.
fn distinct(runs: &[&Run], f: Field) -> Vec<String> {
    let mut seen: Vec<(Option<f64>, usize, String)> = Vec::new();
    for r in runs {
        let t = r.text(f);
        if !seen.iter().any(|(_, _, x)| *x == t) {
            let rank = if f == Field::Placement {
                r.placement.index()
            } else {
                0
            };
            seen.push((r.r.config.number(f), rank, t));
        }
    }
    if seen.iter().all(|(n, ..)| n.is_some()) {
        seen.sort_by(|a, b| a.0.unwrap_or(0.0).total_cmp(&b.0.unwrap_or(0.0)));
    } else {
        seen.sort_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)));
    }
    seen.into_iter().map(|(_, _, t)| t).collect()
}

/// The x coordinate of each run on a config-field axis: its number, or the index of its
/// name among `names` (then the axis is categorical).
struct FieldAxis {
    field: Field,
    names: Option<Vec<String>>,
    values: Vec<f64>,
}

impl FieldAxis {
    fn of(runs: &[&Run], field: Field) -> FieldAxis {
        let names = distinct(runs, field);
        let numeric = runs.iter().all(|r| r.r.config.number(field).is_some());
        if numeric {
            let mut values: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.r.config.number(field))
                .collect();
            values.sort_by(f64::total_cmp);
            values.dedup();
            FieldAxis {
                field,
                names: None,
                values,
            }
        } else {
            FieldAxis {
                field,
                values: (0..names.len()).map(|i| i as f64).collect(),
                names: Some(names),
            }
        }
    }

    fn x(&self, r: &Run) -> Option<f64> {
        match &self.names {
            None => r.r.config.number(self.field),
            Some(names) => {
                let t = r.text(self.field);
                names.iter().position(|n| *n == t).map(|i| i as f64)
            }
        }
    }
}

/// Fields that vary among `runs`.
fn varying(runs: &[&Run]) -> Vec<Field> {
    Field::ALL
        .iter()
        .copied()
        .filter(|&f| {
            let first = runs.first().map(|r| r.text(f));
            runs.iter().any(|r| Some(r.text(f)) != first)
        })
        .collect()
}

/// The label of a curve: the placement bare (where it varies) and, in parentheses, each
/// other field that varies among the runs of this run's placement (a placement's default
/// scale is not news): `span (scale none)`.
fn label(run: &Run, runs: &[&Run], key: &[Field]) -> String {
    let mine: Vec<&&Run> = runs
        .iter()
        .filter(|r| r.placement == run.placement)
        .collect();
    let fields: Vec<String> = key
        .iter()
        .filter(|&&f| f != Field::Placement)
        .filter(|&&f| mine.iter().any(|r| r.text(f) != run.text(f)))
        .map(|&f| field_value(f, &run.text(f)))
        .collect();
    let head = key
        .contains(&Field::Placement)
        .then(|| run.placement.to_string());
    match (head, fields.is_empty()) {
        (Some(h), true) => h,
        (Some(h), false) => format!("{h} ({})", fields.join(", ")),
        (None, _) => fields.join(", "),
    }
}

/// What a gap in a series is, in a note.
fn reason_text(r: Reason) -> &'static str {
    match r {
        Reason::Diverged => "the run diverged",
        Reason::Vanished => "the signal vanished",
        Reason::Zero => "exactly zero",
        Reason::Overflow => "beyond f64",
        Reason::Undefined => "not defined",
        Reason::NotPredicted => "not predicted",
        Reason::IntervalOverflow => "interval beyond f64",
    }
}

/// `v` with two decimals, without a negative zero.
fn two(v: f64) -> String {
    let s = format!("{v:.2}");
    if s == "-0.00" {
        "0.00".into()
    } else {
        s
    }
}

/// Builds the figure `spec` describes from `results` (simulations; predictions are
/// computed). An error when nothing fits the plot.
pub fn build(spec: &PlotSpec, results: &[RunResult]) -> Result<FigureData, PlotError> {
    spec.validate()?;
    let sims: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.source == Source::Simulation)
        .filter(|r| matches!(r.config.placement, Some(PlacementSpec::One(_))))
        .collect();
    if sims.is_empty() {
        return Err(PlotError::Nothing(format!(
            "no simulation results among the {} given",
            results.len()
        )));
    }
    let kept: Vec<&RunResult> = sims
        .iter()
        .copied()
        .filter(|r| spec.filter.iter().all(|f| f.keeps(&r.config)))
        .collect();
    if kept.is_empty() {
        let f = &spec.filter[0];
        let mut have: Vec<String> = sims
            .iter()
            .map(|r| r.config.text(f.field).unwrap_or_default())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        have.truncate(8);
        return Err(PlotError::Nothing(format!(
            "no results with {} (of {} runs, {} has: {})",
            spec.filter
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(" and "),
            sims.len(),
            f.field,
            have.join(", ")
        )));
    }
    let mut ordered: Vec<(usize, String, &RunResult)> = kept
        .into_iter()
        .filter_map(|r| {
            let Some(PlacementSpec::One(p)) = r.config.placement else {
                return None;
            };
            Some((p.index(), serde_json::to_string(&r.config).ok()?, r))
        })
        .collect();
    ordered.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let needs_theory = spec.theory
        || spec.bounded.is_some()
        || spec.y.iter().any(|q| matches!(q, Quantity::TheoryError(_)));
    // Predictions are independent: compute them on the rayon pool.
    let runs: Vec<Run> = ordered
        .par_iter()
        .map(|(i, _, r)| Run {
            r,
            placement: Placement::ALL[*i],
            theory: needs_theory.then(|| {
                let cfg = r.sim_config().map_err(|e| e.to_string())?;
                crate::theory::predict_memo(&cfg).map_err(|e| e.summary())
            }),
        })
        .collect();
    let all: Vec<&Run> = runs.iter().collect();
    let mut notes = Vec::new();
    let data = match spec.rows {
        Some(rows) => heat(spec, rows, &all, &mut notes)?,
        None => lines(spec, &all, &mut notes)?,
    };
    Ok(FigureData {
        title: spec.title.clone(),
        notes: theory_notes(spec, &all).into_iter().chain(notes).collect(),
        ..data
    })
}

/// One note per reason the theory gave no prediction.
fn theory_notes(spec: &PlotSpec, runs: &[&Run]) -> Vec<String> {
    if !spec.theory
        && spec.bounded.is_none()
        && !spec.y.iter().any(|q| matches!(q, Quantity::TheoryError(_)))
    {
        return Vec::new();
    }
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for r in runs {
        if let Some(Err(why)) = &r.theory {
            *by_reason.entry(why.clone()).or_default() += 1;
        }
    }
    by_reason
        .into_iter()
        .map(|(why, k)| format!("No theory for {why} ({k} of {} runs).", runs.len()))
        .collect()
}

/// The fields that separate curves (or heatmap panels), given the axes' fields.
fn key_fields(spec: &PlotSpec, runs: &[&Run], extra: &[Field]) -> Vec<Field> {
    let mut skip: Vec<Field> = extra.to_vec();
    if let XAxis::Field(f) = spec.x {
        skip.push(f);
        if f == Field::Width {
            // The feed-forward width follows the width (4d by default).
            skip.push(Field::DFf);
        }
    }
    varying(runs)
        .into_iter()
        .filter(|f| !skip.contains(f))
        .collect()
}

/// Runs grouped into curves, in drawing order, with colours, markers and labels.
fn curves<'a, 'b>(spec: &PlotSpec, runs: &[&'b Run<'a>]) -> Vec<Curve<'a, 'b>> {
    let facet: Vec<Field> = spec.facet.into_iter().collect();
    let key = key_fields(spec, runs, &facet);
    let mut out: Vec<Curve> = Vec::new();
    let mut keys: Vec<(Option<String>, String)> = Vec::new();
    for r in runs {
        let f = spec.facet.map(|f| r.text(f));
        let k = key
            .iter()
            .map(|&f| r.text(f))
            .collect::<Vec<_>>()
            .join("\u{1f}");
        let k = match spec.x {
            // Along layers every run is its own curve.
            XAxis::Layer => format!(
                "{k}\u{1f}{}",
                r.r.config.text(Field::Depth).unwrap_or_default()
            ),
            XAxis::Field(_) => k,
        };
        match keys.iter().position(|x| x.0 == f && x.1 == k) {
            Some(i) => out[i].runs.push(r),
            None => {
                keys.push((f.clone(), k));
                out.push(Curve {
                    runs: vec![r],
                    facet: f,
                    label: label(r, runs, &key),
                    colour: style::colour(r.placement),
                    marker: style::marker(r.placement),
                });
            }
        }
    }
    // Colours: the placement's own, or a palette over the colour field's values.
    let colour_field = spec.color.unwrap_or(Field::Placement);
    if colour_field != Field::Placement {
        let values = distinct(runs, colour_field);
        for c in &mut out {
            let v = c.runs[0].text(colour_field);
            let k = values.iter().position(|x| *x == v).unwrap_or(0);
            c.colour = style::palette(k);
            c.marker = Marker::nth(k);
        }
    }
    // Curves of one colour get distinct markers, in order.
    let mut labels_of: Vec<(RGBColor, Vec<String>)> = Vec::new();
    for c in &mut out {
        let i = match labels_of.iter().position(|(col, _)| *col == c.colour) {
            Some(i) => i,
            None => {
                labels_of.push((c.colour, Vec::new()));
                labels_of.len() - 1
            }
        };
        let seen = &mut labels_of[i].1;
        let k = match seen.iter().position(|l| *l == c.label) {
            Some(k) => k,
            None => {
                seen.push(c.label.clone());
                seen.len() - 1
            }
        };
        if k > 0 {
            let base = Marker::ALL.iter().position(|m| *m == c.marker).unwrap_or(0);
            c.marker = Marker::nth(base + k);
        }
    }
    if out.iter().all(|c| c.label.is_empty()) {
        for c in &mut out {
            c.label = c.runs[0].placement.to_string();
        }
    }
    out
}

/// The x axis's scale for values `xs`.
fn x_scale(spec: &PlotSpec, xs: &[f64], categorical: bool) -> Result<Scale, PlotError> {
    match (spec.x_scale, categorical) {
        (AxisScale::Log, true) => Err(PlotError::Spec(format!(
            "x-scale: {} has names, not numbers: a log axis needs numbers",
            spec.x
        ))),
        (AxisScale::Log, false) => Ok(Scale::Log),
        (AxisScale::Linear, _) | (AxisScale::Auto, true) => Ok(Scale::Linear),
        (AxisScale::Auto, false) => {
            let (lo, hi) = xs
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            Ok(if lo > 0.0 && hi / lo >= 8.0 {
                Scale::Log
            } else {
                Scale::Linear
            })
        }
    }
}

fn y_scale(spec: &PlotSpec, q: Quantity) -> Scale {
    match spec.y_scale {
        AxisScale::Log => Scale::Log,
        AxisScale::Linear => Scale::Linear,
        AxisScale::Auto if q.positive() => Scale::Log,
        AxisScale::Auto => Scale::Linear,
    }
}

type Points = Vec<Option<(f64, f64)>>;
type Band = Vec<Option<(f64, f64, f64)>>;

/// Points and band of a curve, and its theory's points.
fn curve_points(
    spec: &PlotSpec,
    q: Quantity,
    c: &Curve,
    axis: Option<&FieldAxis>,
) -> (Points, Band, Option<Points>) {
    let at = spec.at.unwrap_or_default();
    let mut sim: Vec<(f64, Value)> = Vec::new();
    let mut th: Vec<(f64, Option<f64>)> = Vec::new();
    let mut all_theory = true;
    match axis {
        None => {
            let r = c.runs[0];
            sim = along_layers(q, r.r);
            match r.prediction() {
                Some(t) => {
                    th = along_layers(q, t)
                        .into_iter()
                        .map(|(l, v)| (l, v.mean))
                        .collect()
                }
                None => all_theory = false,
            }
        }
        Some(ax) => {
            for r in &c.runs {
                let Some(x) = ax.x(r) else { continue };
                sim.push((x, value(q, at, r.r, r.prediction())));
                match r.prediction() {
                    Some(t) if !matches!(q, Quantity::TheoryError(_)) => {
                        th.push((x, value(q, at, t, None).mean));
                    }
                    _ => all_theory = false,
                }
            }
            sim.sort_by(|a, b| a.0.total_cmp(&b.0));
            th.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    let points = sim.iter().map(|(x, v)| v.mean.map(|m| (*x, m))).collect();
    let band = sim.iter().map(|(x, v)| Some((*x, v.lo?, v.hi?))).collect();
    let theory = (spec.theory && all_theory && !th.is_empty())
        .then(|| th.iter().map(|(x, v)| v.map(|m| (*x, m))).collect());
    (points, band, theory)
}

/// The least-squares slope of drawn points (in the axes' scales), with its interval.
fn slope(points: &Points, sx: Scale, sy: Scale) -> Option<fit::Fit> {
    let (x, y): (Vec<f64>, Vec<f64>) = points
        .iter()
        .flatten()
        .filter_map(|&(x, y)| Some((sx.map(x)?, sy.map(y)?)))
        .unzip();
    fit::line(&x, &y)
}

fn slope_text(sim: Option<fit::Fit>, th: Option<Option<fit::Fit>>) -> String {
    let s = sim.map_or("–".to_string(), |f| match (f.lo, f.hi) {
        (Some(lo), Some(hi)) => format!("{} [{}, {}]", two(f.exponent), two(lo), two(hi)),
        _ => two(f.exponent),
    });
    match th {
        None => format!("slope {s}"),
        Some(t) => format!(
            "slope {s}, theory {}",
            t.map_or("–".to_string(), |f| two(f.exponent))
        ),
    }
}

fn lines(spec: &PlotSpec, runs: &[&Run], notes: &mut Vec<String>) -> Result<FigureData, PlotError> {
    let curves = curves(spec, runs);
    let axis = match spec.x {
        XAxis::Layer => None,
        XAxis::Field(f) => Some(FieldAxis::of(runs, f)),
    };
    let facets: Vec<Option<String>> = match spec.facet {
        None => vec![None],
        Some(f) => distinct(runs, f).into_iter().map(Some).collect(),
    };
    let sx = match &axis {
        None => match spec.x_scale {
            AxisScale::Log => Scale::Log,
            _ => Scale::Linear,
        },
        Some(a) => x_scale(spec, &a.values, a.names.is_some())?,
    };
    let x_ticks = match &axis {
        None => Ticks::Auto,
        Some(a) => match &a.names {
            Some(n) => Ticks::Names(n.clone()),
            None if a.values.len() <= 12 => Ticks::At(a.values.clone()),
            None => Ticks::Auto,
        },
    };
    let x_label = |q: Quantity| match spec.x {
        XAxis::Layer => {
            let l = match q.along() {
                Along::Blocks => "block l",
                _ => "block boundary l (0 = input)",
            };
            match sx {
                Scale::Log => format!("{l} (log)"),
                Scale::Linear => l.to_string(),
            }
        }
        XAxis::Field(f) => field_axis_label(f, sx),
    };
    if let Some(a) = &axis {
        if curves.iter().all(|c| {
            c.runs
                .iter()
                .filter_map(|r| a.x(r))
                .collect::<Vec<_>>()
                .windows(2)
                .all(|w| w[0] == w[1])
        }) {
            let others: Vec<String> = varying(runs).iter().map(|f| f.to_string()).collect();
            return Err(PlotError::Nothing(format!(
                "each curve has one point along {}: the runs do not vary it{}",
                a.field,
                if others.is_empty() {
                    String::new()
                } else {
                    format!(" (they vary {}; or use --x layer)", others.join(", "))
                }
            )));
        }
    }
    let mut panels = Vec::new();
    let mut details: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut any_point = false;
    let mut reference_label = None;
    for &q in &spec.y {
        let sy = y_scale(spec, q);
        for facet in &facets {
            let mut title = match (spec.x, q) {
                (_, Quantity::TheoryError(_)) => q.describe(),
                (XAxis::Layer, _) | (_, Quantity::Log10GradRatio) => {
                    format!("{} {}", q.describe(), q.symbol("l"))
                }
                (XAxis::Field(_), _) => format!(
                    "{} {}",
                    q.describe(),
                    q.symbol(&index_text(spec.at.unwrap_or_default()))
                ),
            };
            if let (Some(f), Some(v)) = (spec.facet, facet) {
                title = format!("{title}, {}", field_value(f, v));
            }
            let mut ls: Vec<Line> = Vec::new();
            let mut members: Vec<usize> = Vec::new();
            for (ci, c) in curves.iter().enumerate() {
                if c.facet != *facet {
                    continue;
                }
                let (points, band, theory) = curve_points(spec, q, c, axis.as_ref());
                if points.iter().all(Option::is_none) {
                    continue;
                }
                any_point = true;
                if spec.fit {
                    let th = spec
                        .theory
                        .then(|| theory.as_ref().and_then(|t| slope(t, sx, sy)));
                    let head = if spec.y.len() > 1 || facets.len() > 1 {
                        let mut h = q.symbol(&index_text(spec.at.unwrap_or_default()));
                        if let (Some(f), Some(v)) = (spec.facet, facet) {
                            h = format!("{h} ({})", field_value(f, v));
                        }
                        format!("{h}: ")
                    } else {
                        String::new()
                    };
                    details
                        .entry(ci)
                        .or_default()
                        .push(format!("{head}{}", slope_text(slope(&points, sx, sy), th)));
                }
                gaps(q, c, &points, &mut *notes);
                ls.push(Line {
                    colour: c.colour,
                    role: Role::Simulation,
                    marker: Some(c.marker),
                    width: 2,
                    phase: 0,
                    points,
                    band,
                });
                members.push(ci);
                if let Some(t) = theory {
                    ls.push(Line {
                        colour: c.colour,
                        role: Role::Theory,
                        marker: None,
                        width: 2,
                        phase: 0,
                        points: t,
                        band: Vec::new(),
                    });
                    members.push(usize::MAX);
                }
            }
            coincide(&mut ls, &members, &curves, &title, sx, sy, notes);
            if let Some(b) = spec.reference_slope {
                if let Some(r) = reference(&ls, b, sx, sy) {
                    ls.push(r);
                    reference_label = Some(format!(
                        "reference slope {}{}",
                        style::number(b),
                        match (sx, sy) {
                            (Scale::Log, Scale::Log) => " (log-log)",
                            _ => "",
                        }
                    ));
                }
            }
            panels.push(Panel {
                title,
                x: Axis {
                    label: x_label(q),
                    scale: sx,
                    ticks: x_ticks.clone(),
                },
                y: Axis {
                    label: y_label(q, spec.x, spec.at.unwrap_or_default(), sy),
                    scale: sy,
                    ticks: Ticks::Auto,
                },
                lines: ls,
                empty_note: "no values".into(),
            });
        }
    }
    if !any_point {
        return Err(PlotError::Nothing(format!(
            "{} has no values in the {} runs given",
            spec.y
                .iter()
                .map(|q| q.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            runs.len()
        )));
    }
    // With one facet the quantities sit side by side; with facets, one row each.
    let columns = if facets.len() == 1 {
        panels.len()
    } else {
        facets.len()
    };
    let mut seen = BTreeSet::new();
    let legend = curves
        .iter()
        .enumerate()
        .filter(|(_, c)| seen.insert(c.label.clone()))
        .map(|(i, c)| Entry {
            colour: c.colour,
            marker: Some(c.marker),
            label: c.label.clone(),
            details: details.remove(&i).unwrap_or_default(),
        })
        .collect();
    Ok(FigureData {
        title: None,
        body: Body::Lines { panels, columns },
        legend,
        reference: reference_label,
        notes: Vec::new(),
    })
}

/// Notes where a curve has no value over a run of points.
fn gaps(q: Quantity, c: &Curve, points: &Points, notes: &mut Vec<String>) {
    let missing = points.iter().filter(|p| p.is_none()).count();
    if missing == 0 {
        return;
    }
    let reasons: BTreeSet<&'static str> = c
        .runs
        .iter()
        .flat_map(|r| {
            let m = match q {
                Quantity::Metric(m) | Quantity::OneMinus(m) => Some(m),
                Quantity::Log10GradRatio => Some(Metric::Log10Grad),
                Quantity::TheoryError(_) => None,
            };
            m.and_then(|m| r.r.get(m))
                .map(|s| {
                    s.missing
                        .iter()
                        .map(|x| reason_text(x.reason))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    let why = if reasons.is_empty() {
        if matches!(q, Quantity::TheoryError(_)) {
            "no theory".to_string()
        } else {
            "no value".to_string()
        }
    } else {
        reasons.into_iter().collect::<Vec<_>>().join(", ")
    };
    notes.push(format!(
        "{}: {q} has no value at {missing} of {} points ({why}).",
        c.label,
        points.len()
    ));
}

/// Finds simulation curves of a panel that coincide (within 0.2% of the panel's range at
/// every point), draws each group widest first with shifted markers, and notes it.
fn coincide(
    ls: &mut [Line],
    members: &[usize],
    curves: &[Curve],
    title: &str,
    sx: Scale,
    sy: Scale,
    notes: &mut Vec<String>,
) {
    let drawn = |l: &Line| -> Vec<Option<(f64, f64)>> {
        l.points
            .iter()
            .map(|p| p.and_then(|(x, y)| Some((sx.map(x)?, sy.map(y)?))))
            .collect()
    };
    let ys: Vec<f64> = ls
        .iter()
        .flat_map(|l| drawn(l).into_iter().flatten().map(|p| p.1))
        .collect();
    let span = ys.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        - ys.iter().cloned().fold(f64::INFINITY, f64::min);
    let tol = 0.002 * span.max(1e-9);
    let sim: Vec<usize> = (0..ls.len())
        .filter(|&i| ls[i].role == Role::Simulation)
        .collect();
    let mut group: Vec<usize> = (0..ls.len()).collect();
    for (a, &i) in sim.iter().enumerate() {
        for &j in &sim[a + 1..] {
            let (pi, pj) = (drawn(&ls[i]), drawn(&ls[j]));
            let same = pi.len() == pj.len()
                && pi.iter().zip(&pj).all(|(u, v)| match (u, v) {
                    (Some(u), Some(v)) => (u.0 - v.0).abs() < 1e-12 && (u.1 - v.1).abs() <= tol,
                    (None, None) => true,
                    _ => false,
                })
                && pi.iter().any(Option::is_some);
            if same && group[j] == j {
                group[j] = group[i];
            }
        }
    }
    for &root in &sim {
        let g: Vec<usize> = sim.iter().copied().filter(|&i| group[i] == root).collect();
        if g.len() < 2 || group[root] != root {
            continue;
        }
        let m = g.len() as u32;
        for (k, &i) in g.iter().enumerate() {
            ls[i].width = 2 + 2 * (m - 1 - k as u32);
            ls[i].phase = k;
        }
        let names: Vec<String> = g
            .iter()
            .filter_map(|&i| curves.get(members[i]).map(|c| c.label.clone()))
            .collect();
        notes.push(format!(
            "In {}: {} coincide (drawn widest first, markers shifted).",
            super::rich::plain(title),
            names.join(", ")
        ));
    }
}

/// A reference line of slope `b` (in drawn coordinates) through the first simulated
/// point, across the panel's x range.
fn reference(ls: &[Line], b: f64, sx: Scale, sy: Scale) -> Option<Line> {
    let pts: Vec<(f64, f64)> = ls
        .iter()
        .filter(|l| l.role == Role::Simulation)
        .flat_map(|l| l.points.iter().flatten())
        .filter_map(|&(x, y)| Some((sx.map(x)?, sy.map(y)?)))
        .collect();
    let first = pts.iter().copied().min_by(|a, b| a.0.total_cmp(&b.0))?;
    let last_x = pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let back = |s: Scale, v: f64| match s {
        Scale::Linear => v,
        Scale::Log => 10f64.powf(v),
    };
    let y1 = first.1 + b * (last_x - first.0);
    Some(Line {
        colour: RGBColor(60, 60, 60),
        role: Role::Reference,
        marker: None,
        width: 2,
        phase: 0,
        points: vec![
            Some((back(sx, first.0), back(sy, first.1))),
            Some((back(sx, last_x), back(sy, y1))),
        ],
        band: Vec::new(),
    })
}

fn heat(
    spec: &PlotSpec,
    rows: Field,
    runs: &[&Run],
    notes: &mut Vec<String>,
) -> Result<FigureData, PlotError> {
    let XAxis::Field(xf) = spec.x else {
        return Err(PlotError::Spec(
            "rows: a heatmap needs a config field for --x".into(),
        ));
    };
    let q = spec.y[0];
    let at = spec.at.unwrap_or_default();
    let logged = y_scale(spec, q) == Scale::Log;
    let shown = |v: Option<f64>| -> Option<f64> {
        let v = v?;
        if logged {
            (v > 0.0).then(|| v.log10())
        } else {
            Some(v)
        }
    };
    // Panels: every other varying field (the facet among them).
    let key = key_fields(spec, runs, &[rows]);
    let mut groups: Vec<(String, Vec<&Run>)> = Vec::new();
    for r in runs {
        let l = label(r, runs, &key);
        match groups.iter().position(|(x, _)| *x == l) {
            Some(i) => groups[i].1.push(r),
            None => groups.push((l, vec![r])),
        }
    }
    let mut limit: f64 = 0.5;
    let mut panels = Vec::new();
    for (title, members) in &groups {
        let cols = distinct(members, xf);
        let row_names = distinct(members, rows);
        let mut values = vec![vec![None; cols.len()]; row_names.len()];
        let mut region = vec![vec![None; cols.len()]; row_names.len()];
        let mut filled = vec![vec![false; cols.len()]; row_names.len()];
        for r in members {
            let i = cols.iter().position(|c| *c == r.text(xf)).unwrap_or(0);
            let j = row_names
                .iter()
                .position(|c| *c == r.text(rows))
                .unwrap_or(0);
            if filled[j][i] {
                notes.push(format!(
                    "{title}: several runs at {}, {}; the first is shown.",
                    field_value(rows, &r.text(rows)),
                    field_value(xf, &r.text(xf))
                ));
                continue;
            }
            filled[j][i] = true;
            let v = shown(value(q, at, r.r, r.prediction()).mean);
            if let Some(v) = v {
                limit = limit.max(v.abs());
            }
            values[j][i] = v;
            if let Some(b) = spec.bounded {
                region[j][i] = r
                    .prediction()
                    .and_then(|t| shown(value(q, at, t, None).mean))
                    .map(|v| v.abs() <= b);
            }
        }
        panels.push(Heat {
            title: if title.is_empty() {
                q.describe()
            } else {
                title.clone()
            },
            x: field_label(xf),
            y: field_label(rows),
            x_labels: cols,
            y_labels: row_names,
            values,
            region,
        });
    }
    if panels
        .iter()
        .all(|h| h.values.iter().flatten().all(Option::is_none))
    {
        return Err(PlotError::Nothing(format!(
            "{q} has no values in the {} runs given",
            runs.len()
        )));
    }
    let sym = q.symbol(&index_text(at));
    let sym = if logged {
        format!("log_{{10}} {sym}")
    } else {
        sym
    };
    if let Some(b) = spec.bounded {
        let cells: Vec<bool> = panels
            .iter()
            .flat_map(|h| h.region.iter().flatten().flatten().copied())
            .collect();
        if !cells.is_empty() && (cells.iter().all(|x| *x) || cells.iter().all(|x| !*x)) {
            notes.push(format!(
                "Theory predicts every cell {} (|{}| {} {}), so there is no contour to draw.",
                if cells[0] { "bounded" } else { "unbounded" },
                if logged {
                    format!("log10 {q}")
                } else {
                    q.to_string()
                },
                if cells[0] { "≤" } else { ">" },
                style::number(b)
            ));
        }
    }
    // A round colour limit: the next half unit.
    let limit = (limit * 2.0).ceil() / 2.0;
    let columns = panels.len().min(3);
    Ok(FigureData {
        title: None,
        body: Body::Heat {
            panels,
            columns,
            limit,
            label: format!("{sym}, simulation mean"),
            region_label: spec
                .bounded
                .map(|b| format!("theory: |{sym}| ≤ {} inside", style::number(b))),
        },
        legend: Vec::new(),
        reference: None,
        notes: Vec::new(),
    })
}
