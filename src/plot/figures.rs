//! The figure catalogue: each figure is data, two files in `analysis/figures/`: its
//! experiment (`<slug>.json`, a sweep file) and its preset (`<slug>.plot.json`: title,
//! caption, and a [`PlotSpec`] of the plot grammar). No figure has code of its own.

use super::spec::PlotSpec;
use super::PlotError;
use crate::sweep::SweepSpec;
use serde::Deserialize;

/// One figure of the catalogue.
#[derive(Clone, Copy, Debug)]
pub struct Figure {
    /// 1 … 9.
    pub number: usize,
    /// File stem: `analysis/figures/<slug>.json`, `figures/<slug>.png`.
    pub slug: &'static str,
    /// The sweep file's text.
    pub sweep: &'static str,
    /// The preset file's text.
    pub preset: &'static str,
}

/// A figure's preset: what `analysis/figures/<slug>.plot.json` holds.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// The title (drawn over the figure with `--numbered` or `--title`; in the README).
    pub title: String,
    /// The caption (in `figures/README.md`).
    pub caption: String,
    /// The plot.
    pub plot: PlotSpec,
}

/// Every figure, in order.
pub const FIGURES: [Figure; 9] = [
    Figure {
        number: 1,
        slug: "01-forward-q",
        sweep: include_str!("../../analysis/figures/01-forward-q.json"),
        preset: include_str!("../../analysis/figures/01-forward-q.plot.json"),
    },
    Figure {
        number: 2,
        slug: "02-gradient",
        sweep: include_str!("../../analysis/figures/02-gradient.json"),
        preset: include_str!("../../analysis/figures/02-gradient.plot.json"),
    },
    Figure {
        number: 3,
        slug: "03-representation-collapse",
        sweep: include_str!("../../analysis/figures/03-representation-collapse.json"),
        preset: include_str!("../../analysis/figures/03-representation-collapse.plot.json"),
    },
    Figure {
        number: 4,
        slug: "04-rank-collapse",
        sweep: include_str!("../../analysis/figures/04-rank-collapse.json"),
        preset: include_str!("../../analysis/figures/04-rank-collapse.plot.json"),
    },
    Figure {
        number: 5,
        slug: "05-depth-sweep",
        sweep: include_str!("../../analysis/figures/05-depth-sweep.json"),
        preset: include_str!("../../analysis/figures/05-depth-sweep.plot.json"),
    },
    Figure {
        number: 6,
        slug: "06-phase-diagram",
        sweep: include_str!("../../analysis/figures/06-phase-diagram.json"),
        preset: include_str!("../../analysis/figures/06-phase-diagram.plot.json"),
    },
    Figure {
        number: 7,
        slug: "07-width-convergence",
        sweep: include_str!("../../analysis/figures/07-width-convergence.json"),
        preset: include_str!("../../analysis/figures/07-width-convergence.plot.json"),
    },
    Figure {
        number: 8,
        slug: "08-span-readings",
        sweep: include_str!("../../analysis/figures/08-span-readings.json"),
        preset: include_str!("../../analysis/figures/08-span-readings.plot.json"),
    },
    Figure {
        number: 9,
        slug: "09-new-placements",
        sweep: include_str!("../../analysis/figures/09-new-placements.json"),
        preset: include_str!("../../analysis/figures/09-new-placements.plot.json"),
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
        SweepSpec::from_json(self.sweep)
    }

    /// The figure's preset.
    pub fn preset(&self) -> Result<Preset, PlotError> {
        let p: Preset = serde_json::from_str(self.preset).map_err(|e| {
            PlotError::Spec(format!("analysis/figures/{}.plot.json: {e}", self.slug))
        })?;
        p.plot.validate()?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_sweeps_and_presets_are_valid() {
        for f in &FIGURES {
            let cfgs = f
                .sweep()
                .and_then(|s| s.expand())
                .unwrap_or_else(|e| panic!("{}: {e}", f.slug));
            assert!(!cfgs.is_empty(), "{}", f.slug);
            let p = f.preset().unwrap_or_else(|e| panic!("{}: {e}", f.slug));
            assert!(
                p.plot.title.is_none(),
                "{}: the title is the preset's",
                f.slug
            );
            assert!(!p.caption.is_empty());
        }
        assert!(Figure::get(10).is_err());
    }

    #[test]
    fn figures_with_intervals_have_enough_seeds() {
        // A 95% band from 2 seeds has t = 12.7: at least 4 seeds everywhere, 8 where the
        // figure's claim rests on the band (figures 5–7).
        for f in &FIGURES {
            for c in f.sweep().unwrap().expand().unwrap() {
                let need = if (5..=7).contains(&f.number) { 8 } else { 4 };
                assert!(c.seeds() >= need, "{}: {} seeds", f.slug, c.seeds());
            }
        }
    }
}
