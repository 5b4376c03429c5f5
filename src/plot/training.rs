//! Figures of training documents (`spannorm train --out`): figure 10, the final loss against
//! the learning rate, and figure 11, the signal at the top of the stack over the steps at
//! each configuration's best rate (`analysis/training.md`).

use super::canvas::{Axis, Body, Entry, FigureData, Line, Panel, Role, Scale, Ticks};
use super::style;
use crate::metrics::SeedRecord;
use crate::summary::mean_ci;
use crate::train::run::{Document, RateRun};

/// A figure of a training document: drawn by code from one `spannorm train` document.
#[derive(Clone, Copy, Debug)]
pub struct TrainingFigure {
    /// 10 or 11.
    pub number: usize,
    /// Image stem: `figures/<slug>.png`.
    pub slug: &'static str,
    /// The title (in the README; over the figure with `--numbered`).
    pub title: &'static str,
    /// The caption (in `figures/README.md`).
    pub caption: &'static str,
    /// Draws the figure.
    pub draw: fn(&Document) -> FigureData,
}

/// The training figures, in order.
pub const TRAINING_FIGURES: [TrainingFigure; 2] = [
    TrainingFigure {
        number: 10,
        slug: "10-training-loss",
        title: "Final loss against the learning rate",
        caption: "The held-out loss after training on the bigram task (its floor, the \
                  chain's conditional entropy, dotted) against the peak learning rate of \
                  AdamW, for pre, post, span and span-outer, dense (left) and with a \
                  mixture of 4 experts, top-2 (right); mean over seeds with its 95% band. \
                  A rate at which any seed diverged has no point. L = 8, d = 64, n = 16, \
                  V = 64, 3 seeds, 100 steps of 6 sequences (`analysis/figures/10-training.json` \
                  and the flags below); the optimizer and the sensitivity metric are in \
                  `analysis/training.md`.",
        draw: loss_against_rate,
    },
    TrainingFigure {
        number: 11,
        slug: "11-training-signal",
        title: "The signal at the top of the stack over training, at each best rate",
        caption: "From the same runs as figure 10, at the learning rate with the lowest \
                  mean final loss for each configuration: the second moment at the top \
                  `q_L`, the gradient ratio `log10(grad_0/grad_L)` and the token cosine at \
                  the top over the training steps (every 10th step recorded), dense \
                  configurations in the top row, mixtures in the bottom one; mean over \
                  seeds with its 95% band.",
        draw: signal_over_steps,
    },
];

impl TrainingFigure {
    /// Training figure `n`, if there is one.
    pub fn get(n: usize) -> Option<&'static TrainingFigure> {
        TRAINING_FIGURES.iter().find(|f| f.number == n)
    }
}

/// The experiment of figures 10 and 11 in `spannorm reproduce`: the models (a sweep-style
/// file for `spannorm train --config`).
pub const TRAINING_SWEEP: &str = include_str!("../../analysis/figures/10-training.json");

/// The `spannorm train` flags of figures 10 and 11 beyond the models (every other setting
/// is `train`'s default); `reproduce` parses these very flags, and prints them.
pub const TRAINING_FLAGS: &[&str] = &[
    "--lr",
    "3e-3,1e-2,3e-2,1e-1",
    "--steps",
    "100",
    "--batch",
    "6",
];

/// How a configuration is drawn: its placement, and `MoE E/k` for a mixture.
struct Look {
    label: String,
    colour: plotters::style::RGBColor,
    marker: Option<super::canvas::Marker>,
}

impl Look {
    /// A simulation curve in this look: means with their 95% band.
    fn curve(self, points: Vec<Option<(f64, f64)>>, band: Vec<Option<(f64, f64, f64)>>) -> Line {
        Line {
            colour: self.colour,
            role: Role::Simulation,
            marker: self.marker,
            width: 2,
            phase: 0,
            points,
            band,
        }
    }
}

fn look(r: &RateRun) -> Look {
    let p = r
        .config
        .build()
        .map(|c| c.model().placement())
        .unwrap_or(crate::placement::Placement::Custom);
    Look {
        label: r.label(),
        colour: style::colour(p),
        marker: Some(style::marker(p)),
    }
}

/// Whether a run is a mixture of experts.
fn is_moe(r: &RateRun) -> bool {
    r.config.moe_experts.is_some()
}

/// The configurations of a document, each with its runs in rate order.
fn groups(doc: &Document) -> Vec<Vec<&RateRun>> {
    doc.runs
        .chunks(doc.lrs.len().max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// Figure 10: final held-out loss against the peak learning rate, one curve per
/// configuration with its 95% band over seeds (dense and mixture panels when both occur);
/// the task's floor dotted. A rate at which any seed diverged has no point.
pub fn loss_against_rate(doc: &Document) -> FigureData {
    let gs = groups(doc);
    let mut panels = Vec::new();
    let mut notes = Vec::new();
    for (moe, title) in [(false, "dense"), (true, "mixture of experts")] {
        let mine: Vec<&Vec<&RateRun>> = gs.iter().filter(|g| is_moe(g[0]) == moe).collect();
        if mine.is_empty() {
            continue;
        }
        let mut lines = Vec::new();
        for g in &mine {
            let look = look(g[0]);
            let mut points = Vec::new();
            let mut band = Vec::new();
            for r in g.iter() {
                let ok = r.diverged == 0;
                let m = r.final_loss.mean.filter(|_| ok);
                points.push(m.map(|m| (r.lr, m)));
                band.push(m.and_then(|m| r.final_loss.half_width.map(|h| (r.lr, m - h, m + h))));
                if r.diverged > 0 {
                    notes.push(format!(
                        "{} at lr {}: {} of {} seeds diverged (no point)",
                        look.label,
                        style::number(r.lr),
                        r.diverged,
                        r.traces.len()
                    ));
                }
            }
            lines.push(look.curve(points, band));
        }
        let floor = mine[0][0].traces.first().map(|t| t.floor);
        if let Some(f) = floor {
            lines.push(Line {
                colour: plotters::style::RGBColor(60, 60, 60),
                role: Role::Reference,
                marker: None,
                width: 1,
                phase: 0,
                points: vec![
                    Some((doc.lrs.iter().copied().fold(f64::INFINITY, f64::min), f)),
                    Some((doc.lrs.iter().copied().fold(0.0, f64::max), f)),
                ],
                band: Vec::new(),
            });
        }
        panels.push(Panel {
            title: title.into(),
            x: Axis {
                label: "peak learning rate".into(),
                scale: Scale::Log,
                ticks: Ticks::Auto,
            },
            y: Axis {
                label: "final held-out loss (nats)".into(),
                scale: Scale::Linear,
                ticks: Ticks::Auto,
            },
            lines,
            empty_note: "no runs".into(),
        });
    }
    FigureData {
        title: None,
        body: Body::Lines { panels, columns: 2 },
        legend: legend(&gs),
        reference: Some("the task's loss floor (seed 0)".into()),
        notes,
    }
}

fn legend(gs: &[Vec<&RateRun>]) -> Vec<Entry> {
    gs.iter()
        .map(|g| {
            let Look {
                label,
                colour,
                marker,
            } = look(g[0]);
            Entry {
                colour,
                marker,
                label,
                details: Vec::new(),
            }
        })
        .collect()
}

/// Reads one quantity from a recorded step's per-layer record.
type Pick = fn(&SeedRecord) -> Option<f64>;

/// The quantities of figure 11 and their axes' scales, read from one recorded step's
/// per-layer record.
const SIGNALS: [(&str, Scale, Pick); 3] = [
    ("q at the top, q_L", Scale::Log, |r| {
        r.q.last().copied().flatten()
    }),
    ("log10(grad_0 / grad_L)", Scale::Linear, |r| {
        Some(r.log10_grad.first().copied()?? - r.log10_grad.last().copied()??)
    }),
    ("token cosine at the top", Scale::Linear, |r| {
        r.token_cos.last().copied().flatten()
    }),
];

/// Figure 11: the signal at the top of the stack over training steps, at each
/// configuration's best rate (the lowest mean final loss among rates where no seed
/// diverged): `q_L` (log axis), `log10(grad_0/grad_L)` and the token cosine at the top,
/// mean over seeds with a 95% band; dense configurations in the first row of panels,
/// mixtures of experts in the second.
pub fn signal_over_steps(doc: &Document) -> FigureData {
    let gs = groups(doc);
    let mut notes = Vec::new();
    let mut chosen = Vec::new();
    for g in &gs {
        let best = g
            .iter()
            .filter(|r| r.diverged == 0)
            .filter_map(|r| r.final_loss.mean.map(|m| (*r, m)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((r, _)) => chosen.push(r),
            None => notes.push(format!(
                "{}: every rate diverged for some seed (not drawn)",
                look(g[0]).label
            )),
        }
    }
    let mut panels = Vec::new();
    for (moe, kind) in [(false, "dense"), (true, "mixture of experts")] {
        let mine: Vec<&&RateRun> = chosen.iter().filter(|r| is_moe(r) == moe).collect();
        if mine.is_empty() {
            continue;
        }
        for (name, scale, pick) in SIGNALS {
            let lines = mine.iter().map(|r| signal_line(r, pick)).collect();
            panels.push(Panel {
                title: format!("{kind}: {name}"),
                x: Axis {
                    label: "training step".into(),
                    scale: Scale::Linear,
                    ticks: Ticks::Auto,
                },
                y: Axis {
                    label: name.into(),
                    scale,
                    ticks: Ticks::Auto,
                },
                lines,
                empty_note: "no configuration trained without divergence".into(),
            });
        }
    }
    let legend = chosen
        .iter()
        .map(|r| {
            let Look {
                label,
                colour,
                marker,
            } = look(r);
            Entry {
                colour,
                marker,
                label,
                details: vec![format!("lr {}", style::number(r.lr))],
            }
        })
        .collect();
    FigureData {
        title: None,
        body: Body::Lines { panels, columns: 3 },
        legend,
        reference: None,
        notes,
    }
}

/// One configuration's curve of figure 11: the mean over seeds of `pick` at each recorded
/// step, with its 95% band.
fn signal_line(r: &RateRun, pick: Pick) -> Line {
    let steps = r.traces.first().map_or(&[][..], |t| &t.recorded_steps[..]);
    let mut points = Vec::new();
    let mut band = Vec::new();
    for (i, &s) in steps.iter().enumerate() {
        let v: Vec<f64> = r
            .traces
            .iter()
            .filter_map(|t| t.layers.get(i).and_then(pick))
            .filter(|v| v.is_finite())
            .collect();
        let x = s as f64;
        match mean_ci(&v) {
            Some((m, h)) => {
                points.push(Some((x, m)));
                band.push(h.map(|h| (x, m - h, m + h)));
            }
            None => {
                points.push(None);
                band.push(None);
            }
        }
    }
    look(r).curve(points, band)
}
