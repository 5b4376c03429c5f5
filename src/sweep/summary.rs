//! Depth and scale summaries of a results directory: per configuration the final-layer
//! `q_L`, `log10(grad_0/grad_L)` and `token_cos_L`, and per group of configurations that
//! differ only in depth a fitted growth exponent of each against `L` ([`crate::fit`]) next
//! to the exponent of the theory's predictions for the same configurations.
//!
//! `log10(grad_0/grad_L)` is `mean_seeds log10 grad_0 − mean_seeds log10 grad_L`, the mean
//! over seeds of the per-seed log ratio (equal when every seed reached both ends).

use super::SweepError;
use crate::config::Field;
use crate::fit::{self, Fit};
use crate::result::{RunResult, Source};
use crate::store;
use crate::summary::Series;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// A value with its 95% interval over seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Point {
    /// Mean over seeds.
    pub mean: Option<f64>,
    /// Lower end of the 95% interval.
    pub lo: Option<f64>,
    /// Upper end of the 95% interval.
    pub hi: Option<f64>,
}

/// The final-layer quantities of one result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Finals {
    #[serde(rename = "q_L")]
    /// `q_L`.
    pub q_last: Point,
    /// `log10(grad_0 / grad_L)`: the difference of the seed means, with the interval of
    /// the per-seed differences where the result kept its seeds, else the conservative
    /// interval `± (h_0 + h_L)` (the standard deviation of a difference is at most the sum
    /// of the two; the seeds are the same, so their covariance is unknown, not zero).
    pub log10_grad_ratio: Point,
    #[serde(rename = "token_cos_L")]
    /// `token_cos_L`.
    pub token_cos_last: Point,
}

impl Finals {
    /// Reads the final-layer quantities of a result.
    pub fn of(r: &RunResult) -> Finals {
        let b = &r.boundaries;
        let last = |c: &Series| {
            let at = |v: &Vec<Option<f64>>| v.last().copied().flatten();
            Point {
                mean: at(&c.mean),
                lo: at(&c.lo),
                hi: at(&c.hi),
            }
        };
        let g = &b.log10_grad;
        let (first, end) = (0, g.len().saturating_sub(1));
        let at = |v: &[Option<f64>], i: usize| v.get(i).copied().flatten();
        let mean = match (at(&g.mean, first), at(&g.mean, end)) {
            (Some(g0), Some(gl)) => Some(g0 - gl),
            _ => None,
        };
        let half = |i: usize| Some((at(&g.hi, i)? - at(&g.lo, i)?) / 2.0);
        let per_seed = r.per_seed.as_ref().map(|seeds| {
            let v: Vec<f64> = seeds
                .iter()
                .filter_map(|s| {
                    Some(s.log10_grad.first()?.as_ref()? - s.log10_grad.last()?.as_ref()?)
                })
                .collect();
            crate::summary::mean_ci(&v)
        });
        let ratio = match per_seed {
            Some(Some((m, Some(h)))) => Point {
                mean: Some(m),
                lo: Some(m - h),
                hi: Some(m + h),
            },
            _ => {
                let h = half(first).zip(half(end)).map(|(a, b)| a + b);
                Point {
                    mean,
                    lo: mean.zip(h).map(|(m, h)| m - h),
                    hi: mean.zip(h).map(|(m, h)| m + h),
                }
            }
        };
        Finals {
            q_last: last(&b.q),
            log10_grad_ratio: ratio,
            token_cos_last: last(&b.token_cos),
        }
    }
}

/// One configuration of the directory.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The result file.
    pub file: String,
    /// Placement.
    pub placement: String,
    /// Branch scale.
    pub scale: String,
    /// Depth `L`.
    pub depth: usize,
    /// Width `d`.
    pub width: usize,
    #[serde(flatten)]
    /// The final-layer quantities measured.
    pub simulation: Finals,
    /// The same quantities predicted by theory (`null` where there is no prediction).
    pub theory: Option<Finals>,
    /// Number of seeds that diverged.
    pub diverged: usize,
}

/// Exponents of one quantity: simulation and theory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Exponent {
    /// Fitted to the simulations.
    pub simulation: Option<Fit>,
    /// Fitted to the predictions of the same configurations.
    pub theory: Option<Fit>,
}

/// Growth exponents against depth of a group of configurations equal but for depth.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupFit {
    /// Placement.
    pub placement: String,
    /// Branch scale.
    pub scale: String,
    /// Width `d`.
    pub width: usize,
    /// The group's config, `depth` null (keys sorted, as a JSON object).
    pub config: serde_json::Value,
    /// Depths of the group, increasing.
    pub depths: Vec<usize>,
    #[serde(rename = "q_L")]
    /// Exponent of `q_L`.
    pub q_last: Exponent,
    /// Exponent of `grad_0 / grad_L`.
    pub grad_ratio: Exponent,
    #[serde(rename = "token_cos_L")]
    /// Exponent of `token_cos_L`.
    pub token_cos_last: Exponent,
}

/// The summary of a results directory (`summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// [`crate::result::SCHEMA`].
    pub schema: u32,
    /// Every simulation result, grouped by config (depth varying fastest).
    pub rows: Vec<Row>,
    /// Groups with at least two depths.
    pub fits: Vec<GroupFit>,
    /// Files of the directory that could not be read (and why); left out of the rows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// The group of a result: its config with `depth` unset, as a JSON object with sorted
/// keys, and that object's text (the key rows are sorted by).
fn group_key(r: &RunResult) -> (String, serde_json::Value) {
    let v = serde_json::to_value(r.config.clone().without(Field::Depth)).unwrap_or_default();
    (v.to_string(), v)
}

/// Fits `q_L`, `grad_0/grad_L` and `token_cos_L` against depth over `(depth, finals)` points
/// (log-log; `None` where a value is missing or not positive).
pub fn exponents(points: &[(usize, Finals)]) -> [Option<Fit>; 3] {
    let lx: Vec<f64> = points.iter().map(|(l, _)| (*l as f64).log10()).collect();
    let fit_logs = |ys: Vec<Option<f64>>| {
        let ys: Option<Vec<f64>> = ys.into_iter().collect();
        ys.and_then(|ys| fit::line(&lx, &ys))
    };
    let log_pos = |v: Option<f64>| v.filter(|v| *v > 0.0 && v.is_finite()).map(f64::log10);
    [
        fit_logs(points.iter().map(|(_, f)| log_pos(f.q_last.mean)).collect()),
        // log10 of the ratio is stored directly, so huge ratios do not overflow.
        fit_logs(
            points
                .iter()
                .map(|(_, f)| f.log10_grad_ratio.mean)
                .collect(),
        ),
        fit_logs(
            points
                .iter()
                .map(|(_, f)| log_pos(f.token_cos_last.mean))
                .collect(),
        ),
    ]
}

impl Summary {
    /// Summarizes the simulation results among `results` (named by `files`).
    pub fn of(files: &[String], results: &[RunResult]) -> Summary {
        let mut rows: Vec<(String, Row)> = Vec::new();
        let mut groups: BTreeMap<String, (serde_json::Value, Vec<usize>)> = BTreeMap::new();
        // Predictions are independent: compute them on the rayon pool.
        let theories: Vec<Option<Finals>> = results
            .par_iter()
            .map(|r| {
                let cfg = r.sim_config().ok()?;
                crate::theory::predict_memo(&cfg)
                    .ok()
                    .map(|t| Finals::of(&t))
            })
            .collect();
        for (k, (file, r)) in files.iter().zip(results).enumerate() {
            if r.source != Source::Simulation {
                continue;
            }
            let theory = theories[k];
            let c = &r.config;
            let (key, value) = group_key(r);
            rows.push((
                key.clone(),
                Row {
                    file: file.clone(),
                    placement: c.text(Field::Placement).unwrap_or_default(),
                    scale: c.text(Field::Scale).unwrap_or_default(),
                    depth: r.depth(),
                    width: c.width.unwrap_or_default(),
                    simulation: Finals::of(r),
                    theory,
                    diverged: r.diverged.len(),
                },
            ));
            groups.entry(key).or_insert((value, Vec::new()));
        }
        rows.sort_by(|a, b| (&a.0, a.1.depth, &a.1.file).cmp(&(&b.0, b.1.depth, &b.1.file)));
        for (i, (key, _)) in rows.iter().enumerate() {
            if let Some(g) = groups.get_mut(key) {
                g.1.push(i);
            }
        }
        let mut fits = Vec::new();
        for (value, idx) in groups.values() {
            let group: Vec<&Row> = idx.iter().map(|&i| &rows[i].1).collect();
            let mut depths: Vec<usize> = group.iter().map(|r| r.depth).collect();
            depths.dedup();
            if depths.len() < 2 || depths.len() != group.len() {
                continue;
            }
            let sim: Vec<(usize, Finals)> = group.iter().map(|r| (r.depth, r.simulation)).collect();
            let th: Option<Vec<(usize, Finals)>> = group
                .iter()
                .map(|r| r.theory.map(|t| (r.depth, t)))
                .collect();
            let s = exponents(&sim);
            let t = th.as_deref().map_or([None; 3], exponents);
            let pair = |k: usize| Exponent {
                simulation: s[k],
                theory: t[k],
            };
            fits.push(GroupFit {
                placement: group[0].placement.clone(),
                scale: group[0].scale.clone(),
                width: group[0].width,
                config: value.clone(),
                depths,
                q_last: pair(0),
                grad_ratio: pair(1),
                token_cos_last: pair(2),
            });
        }
        Summary {
            schema: crate::result::SCHEMA,
            rows: rows.into_iter().map(|(_, r)| r).collect(),
            fits,
            skipped: Vec::new(),
        }
    }

    /// Summarizes every result file in `dir` of this build's engine revision; files that
    /// cannot be read, or that another revision computed, are listed in `skipped`.
    pub fn of_dir(dir: &Path) -> Result<Summary, SweepError> {
        let mut files = Vec::new();
        let mut results = Vec::new();
        let mut skipped = Vec::new();
        for name in store::result_names(dir)? {
            match store::read_document(&dir.join(&name)) {
                Ok(doc) if doc.engine != crate::simulate::ENGINE => skipped.push(format!(
                    "{name}: engine revision {}, this build is {}",
                    doc.engine,
                    crate::simulate::ENGINE
                )),
                Ok(doc) => {
                    for r in doc.results {
                        files.push(name.clone());
                        results.push(r);
                    }
                }
                Err(e) => skipped.push(e.to_string()),
            }
        }
        let mut s = Summary::of(&files, &results);
        s.skipped = skipped;
        Ok(s)
    }

    /// Pretty JSON, newline-terminated.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Writes `summary.json` into `dir`, atomically, unless it already has these bytes (so
    /// a complete, read-only results directory needs no write).
    pub fn write(&self, dir: &Path) -> Result<(), SweepError> {
        store::write_summary(dir, self.to_json().as_bytes())?;
        Ok(())
    }

    /// The summary as text: one line per configuration, then the fitted exponents.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let num = |v: Option<f64>, w: usize| {
            v.map_or(format!("{:>w$}", "-"), |x| {
                let s = if x != 0.0 && (x.abs() >= 1e4 || x.abs() < 1e-3) {
                    format!("{x:>w$.3e}")
                } else {
                    format!("{x:>w$.4}")
                };
                // No negative zeros in the table.
                s.replace("-0.0000", " 0.0000")
            })
        };
        let _ = writeln!(
            out,
            "{:<11} {:<14} {:>6} {:>6} {:>11} {:>13} {:>12} {:>8}",
            "placement", "scale", "L", "d", "q_L", "log10(g0/gL)", "token_cos_L", "diverged"
        );
        for r in &self.rows {
            let s = &r.simulation;
            let _ = writeln!(
                out,
                "{:<11} {:<14} {:>6} {:>6} {} {} {} {:>8}",
                r.placement,
                r.scale,
                r.depth,
                r.width,
                num(s.q_last.mean, 11),
                num(s.log10_grad_ratio.mean, 13),
                num(s.token_cos_last.mean, 12),
                r.diverged
            );
        }
        for s in &self.skipped {
            let _ = writeln!(out, "skipped {s}");
        }
        if self.fits.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "\ngrowth exponents against depth (log-log slope [95% interval]; theory)"
        );
        let _ = writeln!(
            out,
            "{:<11} {:<14} {:>6} {:>30} {:>30} {:>30}",
            "placement", "scale", "d", "q_L", "grad_0/grad_L", "token_cos_L"
        );
        let cell = |e: &Exponent| {
            let three = |v: f64| {
                let s = format!("{v:.3}");
                if s == "-0.000" {
                    "0.000".to_string()
                } else {
                    s
                }
            };
            let sim = e
                .simulation
                .map_or("-".to_string(), |f| match (f.lo, f.hi) {
                    (Some(lo), Some(hi)) => {
                        format!("{} [{}, {}]", three(f.exponent), three(lo), three(hi))
                    }
                    _ => three(f.exponent),
                });
            let th = e.theory.map_or("-".to_string(), |f| three(f.exponent));
            format!("{sim}; {th}")
        };
        for g in &self.fits {
            let _ = writeln!(
                out,
                "{:<11} {:<14} {:>6} {:>30} {:>30} {:>30}",
                g.placement,
                g.scale,
                g.width,
                cell(&g.q_last),
                cell(&g.grad_ratio),
                cell(&g.token_cos_last)
            );
        }
        out
    }
}
