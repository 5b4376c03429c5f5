//! Results as text: the JSON document ([`crate::result::Document`]), long-format CSV, and
//! the compact stdout table.

use crate::choice::Choice;
use crate::config::Field;
use crate::error::OutputError;
use crate::result::{Document, RunResult, Source};
use std::fmt::Write as _;

/// Output format of result files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The JSON document (schema 1).
    Json,
    /// Long-format CSV.
    Csv,
}

/// The JSON document for `results`, pretty-printed.
pub fn to_json(results: &[RunResult]) -> Result<String, OutputError> {
    Document::new(results.to_vec()).to_json()
}

/// The columns of the CSV: every config field (so CSVs of different runs concatenate), then
/// `source, metric, l, seed_index, mean, lo, hi, n`.
pub fn csv_header() -> String {
    let mut cols: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    cols.extend([
        "source",
        "metric",
        "l",
        "seed_index",
        "mean",
        "lo",
        "hi",
        "n",
    ]);
    cols.join(",") + "\n"
}

/// Tidy long-format CSV ([`csv_header`]): one row per result, metric and layer (`l` empty
/// for the loss), with the mean, its 95% interval and the seeds behind it; with `per_seed`
/// (and results that kept them) also one row per seed (`seed_index` set, the seed's value
/// in `mean`, `n` = 1). Empty cells are nulls; the JSON says why an entry is absent.
pub fn to_csv(results: &[RunResult], per_seed: bool) -> String {
    let mut out = csv_header();
    let cell = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:e}"));
    for r in results {
        let config: Vec<String> = Field::ALL
            .iter()
            .map(|&f| r.config.text(f).unwrap_or_default())
            .collect();
        let head = config.join(",");
        let source = match r.source {
            Source::Simulation => "simulation",
            Source::Theory => "theory",
        };
        for (metric, series) in r.series() {
            for k in 0..series.len() {
                let l = r.layer(metric, k).map_or(String::new(), |l| l.to_string());
                let _ = writeln!(
                    out,
                    "{head},{source},{metric},{l},,{},{},{},{}",
                    cell(series.mean[k]),
                    cell(series.lo[k]),
                    cell(series.hi[k]),
                    series.n[k]
                );
            }
            let seeds = if per_seed {
                r.per_seed.as_deref()
            } else {
                None
            };
            for (i, rec) in seeds.unwrap_or_default().iter().enumerate() {
                let Some(values) = rec.values(metric) else {
                    continue;
                };
                for (k, v) in values.iter().enumerate() {
                    let Some(v) = v.filter(|v| v.is_finite()) else {
                        continue;
                    };
                    let l = r.layer(metric, k).map_or(String::new(), |l| l.to_string());
                    let _ = writeln!(
                        out,
                        "{head},{source},{metric},{l},{i},{},,,1",
                        cell(Some(v))
                    );
                }
            }
        }
    }
    out
}

/// About nine boundaries from `0` to `depth`, always including both ends.
pub fn subsample(depth: usize) -> Vec<usize> {
    let mut ls: Vec<usize> = (0..=8).map(|k| (k * depth + 4) / 8).collect();
    ls.dedup();
    ls
}

/// A compact table of one result: `l, q, log10 grad, adj_cos, token_cos, eff_rank`.
pub fn table(r: &RunResult) -> String {
    let c = &r.config;
    let t = |f: Field| c.text(f).unwrap_or_default();
    let mut out = format!(
        "{} (scale {}, norm {}, L={}, d={}, n={}, {} seeds, {})\n",
        t(Field::Placement),
        t(Field::Scale),
        t(Field::Norm),
        c.depth.unwrap_or_default(),
        c.width.unwrap_or_default(),
        c.tokens.unwrap_or_default(),
        c.seeds.unwrap_or_default(),
        t(Field::Precision),
    );
    let _ = writeln!(
        out,
        "{:>6} {:>12} {:>11} {:>9} {:>10} {:>9}",
        "l", "q", "log10 grad", "adj_cos", "token_cos", "eff_rank"
    );
    let f = |v: Option<f64>, w: usize, p: usize| {
        v.map_or(format!("{:>w$}", "-"), |x| format!("{x:>w$.p$}"))
    };
    let g = |v: Option<f64>| v.map_or(format!("{:>12}", "-"), |x| format!("{x:>12.5e}"));
    let b = &r.boundaries;
    for l in subsample(b.l.len() - 1) {
        let adj = if l == 0 {
            None
        } else {
            r.blocks.adj_cos.mean[l - 1]
        };
        let _ = writeln!(
            out,
            "{l:>6} {} {} {} {} {}",
            g(b.q.mean[l]),
            f(b.log10_grad.mean[l], 11, 4),
            f(adj, 9, 5),
            f(b.token_cos.mean[l], 10, 5),
            f(b.eff_rank.mean[l], 9, 3),
        );
    }
    for d in &r.diverged {
        let _ = writeln!(out, "{d}");
    }
    out
}
