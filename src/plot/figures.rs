//! The figure catalogue: for each figure its experiment (a sweep file in
//! `analysis/figures/`), its caption, and how it turns result files into charts.
//!
//! Curves are ordered by placement (the spec's order) and then by config; each gets its
//! placement's colour, and a label that names the config fields varying among the figure's
//! results (with a marker shape per variant when one placement has several). Theory curves
//! come from [`crate::theory::predict`] (memoized, [`crate::theory::predict_memo`]) on each result's config; where it returns an error the
//! curve is absent and the figure's notes say so.

use super::canvas::{Axis, Body, Entry, FigureData, Heat, Line, Marker, Panel, Role, Scale};
use super::PlotError;
use crate::choice::Choice;
use crate::config::{Field, PlacementSpec};
use crate::fit;
use crate::placement::Placement;
use crate::result::{RunResult, Source};
use crate::sweep::summary::{exponents, Finals};
use crate::sweep::SweepSpec;
use rayon::prelude::*;
use std::collections::BTreeSet;

/// Figure 6's theory region: configs where theory predicts `|log10(grad_0/grad_L)| ≤ 1`,
/// i.e. the gradient at the input within a factor of ten of the gradient at the output.
pub const BOUNDED_DECADES: f64 = 1.0;

/// One figure of the catalogue.
#[derive(Clone, Copy, Debug)]
pub struct Figure {
    /// 1 … 8.
    pub number: usize,
    /// File stem: `analysis/figures/<slug>.json`, `figures/<slug>.png`.
    pub slug: &'static str,
    /// Title (drawn over the figure).
    pub title: &'static str,
    /// Caption (in `figures/README.md`).
    pub caption: &'static str,
    /// The sweep file's text.
    pub spec: &'static str,
}

/// Every figure, in order.
pub const FIGURES: [Figure; 8] = [
    Figure {
        number: 1,
        slug: "01-forward-q",
        title: "Forward second moment q_l per layer",
        caption:
            "Second moment of the residual stream q_l = ‖X_l‖²_F/(n d) at every block boundary, \
                  for every normalization placement at its default scale (the attention-only \
                  controls, whose q spans 80 decades, are in figure 4), L = 64 (left) and \
                  L = 256 (right); d = 128, n = 64, H = 4, fan-in init, 4 seeds. Log y axis. PreNorm-type stacks \
                  (pre, peri, lns, mix, span-outer) grow with depth; stacks that end each block \
                  with a norm stay at 1.",
        spec: include_str!("../../analysis/figures/01-forward-q.json"),
    },
    Figure {
        number: 2,
        slug: "02-gradient",
        title: "Gradient norm log10 grad_l per layer",
        caption: "log10 of the loss gradient's norm ‖∂ℓ/∂X_l‖_F at every block boundary (the loss \
                  is ℓ = Σ R∘Y / sqrt(n d)), same runs as figure 1. A line sloping down towards \
                  the input means vanishing gradients at the bottom of the stack (PostNorm).",
        spec: include_str!("../../analysis/figures/02-gradient.json"),
    },
    Figure {
        number: 3,
        slug: "03-representation-collapse",
        title: "Representation collapse: 1 - adj_cos_l per block",
        caption: "How much block l changes the stream: 1 − mean_i cos(x_{l−1,i}, x_{l,i}), log y \
                  axis, same runs as figure 1. Claim C5: it decays like 1/l for pre (each block \
                  adds a shrinking share) and stays flat for span with sqrt-depth scaling.",
        spec: include_str!("../../analysis/figures/03-representation-collapse.json"),
    },
    Figure {
        number: 4,
        slug: "04-rank-collapse",
        title: "Rank collapse: token_cos_l and eff_rank_l per layer",
        caption: "Mean cosine between distinct tokens (left; 1 is rank collapse) and the \
                  effective rank exp(H(σ/Σσ)) of X_l (right, out of n = 64 tokens), L = 64, \
                  d = 128, every placement at its default scale, 4 seeds. Claim C6.",
        spec: include_str!("../../analysis/figures/04-rank-collapse.json"),
    },
    Figure {
        number: 5,
        slug: "05-depth-sweep",
        title: "Depth sweep: final q_L and gradient ratio against L",
        caption: "Final-layer q_L (left, log-log) and log10(grad_0/grad_L) (right, log depth) for \
                  L = 8 … 4096, d = 64, n = 32, zero-query init (uniform attention, where the mean-field \
                  theory is exact), 2 seeds; span also without scaling (scale none). \
                  The legend gives the fitted growth exponents (least-squares log-log slope with \
                  its 95% t interval) and theory's exponent where theory predicts. Claim C3: \
                  span with sqrt-depth keeps both flat in L.",
        spec: include_str!("../../analysis/figures/05-depth-sweep.json"),
    },
    Figure {
        number: 6,
        slug: "06-phase-diagram",
        title: "Scale x depth phase diagram of log10(grad_0/grad_L)",
        caption: "log10(grad_0/grad_L) for post (left) and span (right) over a constant branch \
                  scale α (rows) and depth L (columns), d = 64, n = 32, zero-query init, 2 seeds; blue: the \
                  gradient shrinks towards the input, red: it grows. The dashed contour encloses \
                  the cells where theory predicts |log10(grad_0/grad_L)| ≤ 1 (bounded \
                  gradients), drawn only where theory predicts.",
        spec: include_str!("../../analysis/figures/06-phase-diagram.json"),
    },
    Figure {
        number: 7,
        slug: "07-width-convergence",
        title: "Width convergence: simulation against theory",
        caption: "Error of the simulation against the mean-field prediction as the width grows, \
                  d = 64 … 1024, L = 16, n = 32, zero-query init (where the theory is exact), \
                  2 seeds: mean over layers of |q_sim/q_theory − 1| (left) and of \
                  |log10 grad_sim − log10 grad_theory| (right), with a d^(-1/2) reference slope \
                  (claim C7). Needs theory predictions; without them the panels are empty.",
        spec: include_str!("../../analysis/figures/07-width-convergence.json"),
    },
    Figure {
        number: 8,
        slug: "08-span-readings",
        title: "The two readings of SpanNorm: span and span-outer",
        caption: "span (one residual around the whole block, one norm closing it) and span-outer \
                  (a clean outer residual around a PostNorm block) side by side, with and \
                  without sqrt-depth scaling: q_l (left, log y), log10 grad_l (middle) and \
                  1 − adj_cos_l (right, log y); L = 64, d = 128, 4 seeds.",
        spec: include_str!("../../analysis/figures/08-span-readings.json"),
    },
];

impl Figure {
    /// Figure `n` (1-based).
    pub fn get(n: usize) -> Result<&'static Figure, PlotError> {
        FIGURES
            .iter()
            .find(|f| f.number == n)
            .ok_or(PlotError::UnknownFigure(n))
    }

    /// The figure's sweep.
    pub fn sweep(&self) -> Result<SweepSpec, crate::sweep::SweepError> {
        SweepSpec::from_json(self.spec)
    }

    /// What the figure shows for `results`.
    pub fn data(&self, results: &[RunResult]) -> FigureData {
        let title = format!("Figure {}. {}", self.number, self.title);
        match self.number {
            1 => per_layer(title, results, Panels::Depth(Metric::Q)),
            2 => per_layer(title, results, Panels::Depth(Metric::Log10Grad)),
            3 => per_layer(title, results, Panels::Depth(Metric::OneMinusAdjCos)),
            4 => per_layer(
                title,
                results,
                Panels::Metrics(&[Metric::TokenCos, Metric::EffRank]),
            ),
            5 => depth_sweep(title, results),
            6 => phase(title, results),
            7 => width(title, results),
            _ => {
                let span: Vec<RunResult> = results
                    .iter()
                    .filter(|r| {
                        matches!(
                            r.config.placement,
                            Some(PlacementSpec::One(Placement::Span | Placement::SpanOuter))
                        )
                    })
                    .cloned()
                    .collect();
                per_layer(
                    title,
                    &span,
                    Panels::Metrics(&[Metric::Q, Metric::Log10Grad, Metric::OneMinusAdjCos]),
                )
            }
        }
    }
}

/// A simulation result ready to draw: its placement, label, marker and theory.
struct Item<'a> {
    r: &'a RunResult,
    placement: Placement,
    label: String,
    marker: Option<Marker>,
    theory: Result<RunResult, String>,
}

/// Field `f` of a result's config as a label shows it (`null` when unset).
fn shown(r: &RunResult, f: Field) -> String {
    r.config.text(f).unwrap_or_else(|| "null".into())
}

/// The prediction for a result's config, or why there is none.
fn prediction(r: &RunResult) -> Result<RunResult, String> {
    let cfg = r.sim_config().map_err(|e| e.to_string())?;
    crate::theory::predict_memo(&cfg).map_err(|e| e.to_string())
}

/// The simulation results in drawing order, labelled by the fields that vary among them
/// (other than `axis`, which the chart shows).
fn items<'a>(results: &'a [RunResult], axis: &[Field], always_mark: bool) -> Vec<Item<'a>> {
    let mut rs: Vec<(usize, String, &RunResult)> = results
        .iter()
        .filter(|r| r.source == Source::Simulation)
        .filter_map(|r| {
            let Some(PlacementSpec::One(p)) = r.config.placement else {
                return None;
            };
            Some((p.index(), serde_json::to_string(&r.config).ok()?, r))
        })
        .collect();
    rs.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    // A field goes into the labels when it varies among the results of one placement
    // (placements differ in their default scale, which the caption states).
    let mut varying: Vec<Field> = Vec::new();
    for (i, (pa, _, a)) in rs.iter().enumerate() {
        for (pb, _, b) in rs.iter().skip(i + 1) {
            if pa != pb {
                continue;
            }
            for &f in Field::ALL {
                let skip = f == Field::Placement || axis.contains(&f);
                if !skip && a.config.text(f) != b.config.text(f) && !varying.contains(&f) {
                    varying.push(f);
                }
            }
        }
    }
    varying.sort_by_key(|f| f.name());
    let mut out: Vec<Item> = rs
        .iter()
        .map(|(idx, _, r)| {
            let placement = Placement::ALL[*idx];
            let extra: Vec<String> = varying
                .iter()
                .map(|&f| format!("{f} {}", shown(r, f)))
                .collect();
            let label = if extra.is_empty() {
                placement.to_string()
            } else {
                format!("{placement} ({})", extra.join(", "))
            };
            Item {
                r,
                placement,
                label,
                marker: None,
                theory: Err(String::new()),
            }
        })
        .collect();
    // Predictions are independent: compute them on the rayon pool.
    let theories: Vec<Result<RunResult, String>> =
        out.par_iter().map(|it| prediction(it.r)).collect();
    for (it, t) in out.iter_mut().zip(theories) {
        it.theory = t;
    }
    // Marker shapes tell apart the variants of one placement.
    let several = out.iter().enumerate().any(|(i, a)| {
        out[..i]
            .iter()
            .any(|b| b.placement == a.placement && b.label != a.label)
    });
    if several || always_mark {
        for i in 0..out.len() {
            let mut labels: Vec<&str> = Vec::new();
            for b in &out[..i] {
                if b.placement == out[i].placement && !labels.contains(&b.label.as_str()) {
                    labels.push(&b.label);
                }
            }
            let k = if labels.contains(&out[i].label.as_str()) {
                labels.iter().position(|l| *l == out[i].label).unwrap_or(0)
            } else {
                labels.len()
            };
            out[i].marker = Some(Marker::nth(k));
        }
    }
    out
}

/// The legend: one entry per distinct label, in drawing order.
fn legend(items: &[Item]) -> Vec<Entry> {
    let mut seen = BTreeSet::new();
    items
        .iter()
        .filter(|it| seen.insert(it.label.clone()))
        .map(|it| Entry {
            placement: Some(it.placement),
            marker: it.marker,
            label: it.label.clone(),
            details: Vec::new(),
        })
        .collect()
}

/// Notes on what is missing: results without theory, and why.
fn notes(items: &[Item], results: &[RunResult]) -> Vec<String> {
    let mut out = Vec::new();
    if items.is_empty() {
        out.push(format!(
            "No simulation results to draw ({} given): pass the result files or directories \
             of this figure's sweep.",
            results.len()
        ));
    }
    let mut missing: Vec<String> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    let mut count = 0;
    for it in items {
        if let Err(e) = &it.theory {
            count += 1;
            if !missing.contains(&it.label) {
                missing.push(it.label.clone());
            }
            if !reasons.contains(e) {
                reasons.push(e.clone());
            }
        }
    }
    if let Some(first) = reasons.first() {
        let mut why: String = first.chars().take(200).collect();
        if why.len() < first.len() {
            why.push('…');
        }
        out.push(format!(
            "No theory prediction (dashed) for {} of {} results ({}). theory::predict said{}: {why}",
            count,
            items.len(),
            if count == items.len() {
                "all".to_string()
            } else {
                missing.join(", ")
            },
            if reasons.len() > 1 {
                format!(" (first of {} reasons)", reasons.len())
            } else {
                String::new()
            },
        ));
    }
    out
}

/// A per-layer quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    Q,
    Log10Grad,
    OneMinusAdjCos,
    TokenCos,
    EffRank,
}

type Points = Vec<Option<(f64, f64)>>;
type Band = Vec<Option<(f64, f64, f64)>>;

impl Metric {
    fn title(self) -> &'static str {
        match self {
            Metric::Q => "forward second moment q_l",
            Metric::Log10Grad => "gradient norm",
            Metric::OneMinusAdjCos => "change per block",
            Metric::TokenCos => "token cosine",
            Metric::EffRank => "effective rank",
        }
    }

    fn x(self) -> Axis {
        let label = match self {
            Metric::OneMinusAdjCos => "block l",
            _ => "block boundary l (0 = input)",
        };
        Axis {
            label: label.into(),
            scale: Scale::Linear,
        }
    }

    fn y(self) -> Axis {
        let (label, scale) = match self {
            Metric::Q => ("q_l = ‖X_l‖²/(n d), dimensionless (log)", Scale::Log),
            Metric::Log10Grad => ("log10 ‖∂ℓ/∂X_l‖_F", Scale::Linear),
            Metric::OneMinusAdjCos => ("1 − adj_cos_l, dimensionless (log)", Scale::Log),
            Metric::TokenCos => ("token_cos_l, mean cosine between tokens", Scale::Linear),
            Metric::EffRank => ("eff_rank_l, effective rank (tokens)", Scale::Linear),
        };
        Axis {
            label: label.into(),
            scale,
        }
    }

    /// The points and the 95% band of `r`.
    fn series(self, r: &RunResult) -> (Points, Band) {
        let b = &r.boundaries;
        let (ls, c, flip) = match self {
            Metric::Q => (&b.l, &b.q, false),
            Metric::Log10Grad => (&b.l, &b.log10_grad, false),
            Metric::TokenCos => (&b.l, &b.token_cos, false),
            Metric::EffRank => (&b.l, &b.eff_rank, false),
            Metric::OneMinusAdjCos => (&r.blocks.l, &r.blocks.adj_cos, true),
        };
        let f = |v: f64| if flip { 1.0 - v } else { v };
        let points = ls
            .iter()
            .zip(&c.mean)
            .map(|(&l, m)| m.map(|m| (l as f64, f(m))))
            .collect();
        let band = ls
            .iter()
            .enumerate()
            .map(|(k, &l)| {
                let (lo, hi) = (
                    c.lo.get(k).copied().flatten()?,
                    c.hi.get(k).copied().flatten()?,
                );
                let (a, b) = (f(lo), f(hi));
                Some((l as f64, a.min(b), a.max(b)))
            })
            .collect();
        (points, band)
    }
}

/// How a per-layer figure splits into panels.
enum Panels {
    /// One metric, one panel per depth.
    Depth(Metric),
    /// One panel per metric.
    Metrics(&'static [Metric]),
}

/// The simulation line (with band) and, where theory predicts, the theory line of `it`.
fn lines(it: &Item, m: Metric) -> Vec<Line> {
    let (points, band) = m.series(it.r);
    let mut out = vec![Line {
        placement: Some(it.placement),
        role: Role::Simulation,
        marker: it.marker,
        points,
        band,
    }];
    if let Ok(t) = &it.theory {
        out.push(Line {
            placement: Some(it.placement),
            role: Role::Theory,
            marker: None,
            points: m.series(t).0,
            band: Vec::new(),
        });
    }
    out
}

fn per_layer(title: String, results: &[RunResult], panels: Panels) -> FigureData {
    let axis: &[Field] = match panels {
        Panels::Depth(_) => &[Field::Depth],
        Panels::Metrics(_) => &[],
    };
    let items = items(results, axis, false);
    let panels = match panels {
        Panels::Depth(m) => {
            let depths: BTreeSet<usize> = items.iter().map(|it| it.r.depth()).collect();
            let depths = if depths.is_empty() {
                vec![0]
            } else {
                depths.into_iter().collect()
            };
            depths
                .iter()
                .map(|&d| Panel {
                    title: format!("{}, L = {d}", m.title()),
                    x: m.x(),
                    y: m.y(),
                    lines: items
                        .iter()
                        .filter(|it| it.r.depth() == d)
                        .flat_map(|it| lines(it, m))
                        .collect(),
                    empty_note: "no results".into(),
                })
                .collect()
        }
        Panels::Metrics(ms) => ms
            .iter()
            .map(|&m| Panel {
                title: m.title().to_string(),
                x: m.x(),
                y: m.y(),
                lines: items.iter().flat_map(|it| lines(it, m)).collect(),
                empty_note: "no results".into(),
            })
            .collect(),
    };
    FigureData {
        title,
        body: Body::Lines(panels),
        legend: legend(&items),
        notes: notes(&items, results),
    }
}

/// Groups of items equal but for the fields `axis` (depth, or width and d-ff), in drawing
/// order.
fn groups<'a, 'b>(items: &'b [Item<'a>], axis: &[Field]) -> Vec<Vec<&'b Item<'a>>> {
    let key = |it: &Item| {
        let c = axis.iter().fold(it.r.config.clone(), |c, &f| c.without(f));
        serde_json::to_string(&c).unwrap_or_default()
    };
    let mut keys: Vec<String> = Vec::new();
    let mut out: Vec<Vec<&Item>> = Vec::new();
    for it in items {
        let k = key(it);
        match keys.iter().position(|x| *x == k) {
            Some(i) => out[i].push(it),
            None => {
                keys.push(k);
                out.push(vec![it]);
            }
        }
    }
    out
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

fn exponent_text(name: &str, sim: Option<fit::Fit>, th: Option<fit::Fit>) -> String {
    let s = sim.map_or("–".to_string(), |f| match (f.lo, f.hi) {
        (Some(lo), Some(hi)) => format!("{} [{}, {}]", two(f.exponent), two(lo), two(hi)),
        _ => two(f.exponent),
    });
    let t = th.map_or("–".to_string(), |f| two(f.exponent));
    format!("{name}: {s}, theory {t}")
}

fn depth_sweep(title: String, results: &[RunResult]) -> FigureData {
    let items = items(results, &[Field::Depth], true);
    let mut q_lines = Vec::new();
    let mut g_lines = Vec::new();
    let mut entries = Vec::new();
    for mut g in groups(&items, &[Field::Depth]) {
        g.sort_by_key(|it| it.r.depth());
        let it0 = g[0];
        let sim: Vec<(usize, Finals)> = g
            .iter()
            .map(|it| (it.r.depth(), Finals::of(it.r)))
            .collect();
        let th: Option<Vec<(usize, Finals)>> = g
            .iter()
            .map(|it| {
                it.theory
                    .as_ref()
                    .ok()
                    .map(|t| (it.r.depth(), Finals::of(t)))
            })
            .collect();
        let q_pts = |v: &[(usize, Finals)]| -> Points {
            v.iter()
                .map(|(l, f)| f.q_last.mean.map(|m| (*l as f64, m)))
                .collect()
        };
        let g_pts = |v: &[(usize, Finals)]| -> Points {
            v.iter()
                .map(|(l, f)| f.log10_grad_ratio.mean.map(|m| (*l as f64, m)))
                .collect()
        };
        let band: Band = sim
            .iter()
            .map(|(l, f)| Some((*l as f64, f.q_last.lo?, f.q_last.hi?)))
            .collect();
        let sim_line = |points, band| Line {
            placement: Some(it0.placement),
            role: Role::Simulation,
            marker: it0.marker,
            points,
            band,
        };
        q_lines.push(sim_line(q_pts(&sim), band));
        g_lines.push(sim_line(g_pts(&sim), Vec::new()));
        if let Some(th) = &th {
            let th_line = |points| Line {
                placement: Some(it0.placement),
                role: Role::Theory,
                marker: None,
                points,
                band: Vec::new(),
            };
            q_lines.push(th_line(q_pts(th)));
            g_lines.push(th_line(g_pts(th)));
        }
        let s = exponents(&sim);
        let t = th.as_deref().map_or([None; 3], exponents);
        entries.push(Entry {
            placement: Some(it0.placement),
            marker: it0.marker,
            label: it0.label.clone(),
            details: vec![
                exponent_text("q_L ∝ L^b", s[0], t[0]),
                exponent_text("g0/gL ∝ L^b", s[1], t[1]),
            ],
        });
    }
    let x = Axis {
        label: "depth L (blocks, log)".into(),
        scale: Scale::Log,
    };
    let panels = vec![
        Panel {
            title: "final second moment q_L".into(),
            x: x.clone(),
            y: Axis {
                label: "q_L, dimensionless (log)".into(),
                scale: Scale::Log,
            },
            lines: q_lines,
            empty_note: "no results".into(),
        },
        Panel {
            title: "gradient ratio input / output".into(),
            x,
            y: Axis {
                label: "log10(grad_0 / grad_L)".into(),
                scale: Scale::Linear,
            },
            lines: g_lines,
            empty_note: "no results".into(),
        },
    ];
    FigureData {
        title,
        body: Body::Lines(panels),
        legend: entries,
        notes: notes(&items, results),
    }
}

fn phase(title: String, results: &[RunResult]) -> FigureData {
    let items = items(results, &[Field::Depth, Field::Scale], false);
    let mut placements: Vec<Placement> = Vec::new();
    for it in &items {
        if !placements.contains(&it.placement) {
            placements.push(it.placement);
        }
    }
    let mut panels = Vec::new();
    let mut limit: f64 = 0.5;
    let mut notes = notes(&items, results);
    // The figure is about span and post; other placements are drawn only without them.
    if placements.contains(&Placement::Span) || placements.contains(&Placement::Post) {
        placements.retain(|p| matches!(p, Placement::Span | Placement::Post));
    }
    for p in placements.iter().take(3) {
        let mine: Vec<&Item> = items.iter().filter(|it| it.placement == *p).collect();
        let depths: Vec<usize> = mine
            .iter()
            .map(|it| it.r.depth())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let l0 = depths.first().copied().unwrap_or(1);
        let mut scales: Vec<(f64, String)> = Vec::new();
        for it in &mine {
            let s = shown(it.r, Field::Scale);
            if !scales.iter().any(|(_, x)| *x == s) {
                let a = it.r.config.scale.map_or(f64::NAN, |b| b.alpha(1, l0));
                scales.push((a, s));
            }
        }
        scales.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut values = vec![vec![None; depths.len()]; scales.len()];
        let mut region = vec![vec![None; depths.len()]; scales.len()];
        let mut filled = vec![vec![false; depths.len()]; scales.len()];
        for it in &mine {
            let s = shown(it.r, Field::Scale);
            let j = scales.iter().position(|(_, x)| *x == s).unwrap_or(0);
            let i = depths.iter().position(|&d| d == it.r.depth()).unwrap_or(0);
            if filled[j][i] {
                notes.push(format!(
                    "{p}: several results at scale {s}, L = {}; the first is shown.",
                    it.r.depth()
                ));
                continue;
            }
            filled[j][i] = true;
            let v = Finals::of(it.r).log10_grad_ratio.mean;
            if let Some(v) = v {
                limit = limit.max(v.abs());
            }
            values[j][i] = v;
            region[j][i] = it
                .theory
                .as_ref()
                .ok()
                .and_then(|t| Finals::of(t).log10_grad_ratio.mean)
                .map(|v| v.abs() <= BOUNDED_DECADES);
        }
        panels.push(Heat {
            title: p.to_string(),
            x: "depth L (blocks)".into(),
            y: "branch scale".into(),
            x_labels: depths.iter().map(|d| d.to_string()).collect(),
            y_labels: scales.into_iter().map(|(_, s)| s).collect(),
            values,
            region,
        });
    }
    let cells: Vec<bool> = panels
        .iter()
        .flat_map(|h| h.region.iter().flatten().flatten().copied())
        .collect();
    if !cells.is_empty() && (cells.iter().all(|b| *b) || cells.iter().all(|b| !*b)) {
        notes.push(format!(
            "Theory predicts every cell {} (|log10(grad_0/grad_L)| {} {BOUNDED_DECADES}), so \
             there is no contour to draw.",
            if cells[0] { "bounded" } else { "unbounded" },
            if cells[0] { "≤" } else { ">" },
        ));
    }
    // A round colour limit: the next half decade.
    let limit = (limit * 2.0).ceil() / 2.0;
    if placements.len() > 3 {
        notes.push(format!(
            "Only the first three placements are drawn ({} given).",
            placements.len()
        ));
    }
    FigureData {
        title,
        body: Body::Heat {
            panels,
            limit,
            label: "log10(grad_0 / grad_L), simulation mean".into(),
            region_label: format!("theory: |log10(grad_0/grad_L)| ≤ {BOUNDED_DECADES} inside"),
        },
        legend: Vec::new(),
        notes,
    }
}

/// Mean over layers of `|q_sim / q_th − 1|` and of `|log10 grad_sim − log10 grad_th|`.
fn errors(sim: &RunResult, th: &RunResult) -> (Option<f64>, Option<f64>) {
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let pairs = |a: &Vec<Option<f64>>, b: &Vec<Option<f64>>| -> Vec<(f64, f64)> {
        a.iter()
            .zip(b)
            .filter_map(|(x, y)| Some(((*x)?, (*y)?)))
            .collect()
    };
    let q = pairs(&sim.boundaries.q.mean, &th.boundaries.q.mean)
        .into_iter()
        .filter(|(_, t)| *t > 0.0)
        .map(|(s, t)| (s / t - 1.0).abs())
        .collect();
    let g = pairs(
        &sim.boundaries.log10_grad.mean,
        &th.boundaries.log10_grad.mean,
    )
    .into_iter()
    .map(|(s, t)| (s - t).abs())
    .collect();
    (mean(q), mean(g))
}

fn width(title: String, results: &[RunResult]) -> FigureData {
    let items = items(results, &[Field::Width, Field::DFf], true);
    let mut q_lines = Vec::new();
    let mut g_lines = Vec::new();
    let mut entries = Vec::new();
    for mut g in groups(&items, &[Field::Width, Field::DFf]) {
        g.sort_by_key(|it| it.r.config.width);
        let it0 = g[0];
        let mut q = Vec::new();
        let mut gr = Vec::new();
        for it in &g {
            let w = it.r.config.width.unwrap_or(0) as f64;
            let (eq, eg) = match &it.theory {
                Ok(t) => errors(it.r, t),
                Err(_) => (None, None),
            };
            q.push(eq.map(|e| (w, e)));
            gr.push(eg.map(|e| (w, e)));
        }
        let line = |points: Points| Line {
            placement: Some(it0.placement),
            role: Role::Simulation,
            marker: it0.marker,
            points,
            band: Vec::new(),
        };
        let slope = |pts: &Points| {
            let (x, y): (Vec<f64>, Vec<f64>) = pts.iter().flatten().copied().unzip();
            fit::loglog(&x, &y).map_or("–".to_string(), |f| two(f.exponent))
        };
        let details = vec![format!("slope q {}, grad {}", slope(&q), slope(&gr))];
        if q.iter().any(Option::is_some) {
            q_lines.push(line(q));
        }
        if gr.iter().any(Option::is_some) {
            g_lines.push(line(gr));
        }
        entries.push(Entry {
            placement: Some(it0.placement),
            marker: it0.marker,
            label: it0.label.clone(),
            details,
        });
    }
    // d^(-1/2) through the first point of each panel.
    for ls in [&mut q_lines, &mut g_lines] {
        let first = ls
            .iter()
            .flat_map(|l| l.points.iter().flatten())
            .next()
            .copied();
        let widths: BTreeSet<u64> = ls
            .iter()
            .flat_map(|l| l.points.iter().flatten().map(|p| p.0 as u64))
            .collect();
        if let (Some((w0, e0)), Some(&wmax)) = (first, widths.iter().next_back()) {
            let w1 = wmax as f64;
            ls.push(Line {
                placement: None,
                role: Role::Reference,
                marker: None,
                points: vec![Some((w0, e0)), Some((w1, e0 * (w0 / w1).sqrt()))],
                band: Vec::new(),
            });
        }
    }
    let x = Axis {
        label: "width d (log)".into(),
        scale: Scale::Log,
    };
    let empty = "no theory prediction: nothing to compare the simulation with".to_string();
    let panels = vec![
        Panel {
            title: "forward: mean |q_sim / q_theory − 1|".into(),
            x: x.clone(),
            y: Axis {
                label: "relative error of q_l (log)".into(),
                scale: Scale::Log,
            },
            lines: q_lines,
            empty_note: empty.clone(),
        },
        Panel {
            title: "backward: mean |Δ log10 grad_l|".into(),
            x,
            y: Axis {
                label: "error of log10 grad_l, decades (log)".into(),
                scale: Scale::Log,
            },
            lines: g_lines,
            empty_note: empty,
        },
    ];
    FigureData {
        title,
        body: Body::Lines(panels),
        legend: entries,
        notes: notes(&items, results),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_sweeps_are_valid() {
        for f in &FIGURES {
            let cfgs = f
                .sweep()
                .and_then(|s| s.expand())
                .unwrap_or_else(|e| panic!("{}: {e}", f.slug));
            assert!(!cfgs.is_empty(), "{}", f.slug);
        }
        assert!(Figure::get(9).is_err());
        assert!(Placement::ALL.len() <= 11);
    }
}
