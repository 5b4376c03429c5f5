//! Results as text: the JSON document ([`crate::result::Document`]), long-format CSV, and
//! the compact stdout table.

use crate::config::Field;
use crate::error::OutputError;
use crate::result::{Document, RunResult};
use crate::summary::Series;
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

/// Long-format CSV: `run,placement,scale,metric,l,mean,lo,hi,n`, one row per metric and
/// layer (`l` empty for the loss).
pub fn to_csv(results: &[RunResult]) -> String {
    let mut out = String::from("run,placement,scale,metric,l,mean,lo,hi,n\n");
    let cell = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:e}"));
    for (i, r) in results.iter().enumerate() {
        let p = r.config.text(Field::Placement).unwrap_or_default();
        let s = r.config.text(Field::Scale).unwrap_or_default();
        let mut emit = |metric: &str, ls: &[Option<usize>], series: &Series| {
            for (k, l) in ls.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{i},{p},{s},{metric},{},{},{},{},{}",
                    l.map_or(String::new(), |l| l.to_string()),
                    cell(series.mean[k]),
                    cell(series.lo[k]),
                    cell(series.hi[k]),
                    series.n[k]
                );
            }
        };
        let b: Vec<Option<usize>> = r.boundaries.l.iter().map(|&l| Some(l)).collect();
        let k: Vec<Option<usize>> = r.blocks.l.iter().map(|&l| Some(l)).collect();
        let bd = &r.boundaries;
        emit("loss", &[None], &r.loss);
        for (name, s) in [
            ("q", &bd.q),
            ("log10_grad", &bd.log10_grad),
            ("grad", &bd.grad),
            ("token_cos", &bd.token_cos),
            ("eff_rank", &bd.eff_rank),
            ("stable_rank", &bd.stable_rank),
            ("rank1_residual", &bd.rank1_residual),
        ] {
            emit(name, &b, s);
        }
        let bl = &r.blocks;
        for (name, s) in [
            ("adj_cos", &bl.adj_cos),
            ("q_pre_norm", &bl.q_pre_norm),
            ("branch_q.attn", &bl.branch_q.attn),
            ("branch_q.ffn", &bl.branch_q.ffn),
        ] {
            emit(name, &k, s);
        }
        for (w, s) in &bl.log10_param_grad {
            emit(&format!("log10_param_grad.{w}"), &k, s);
        }
        for (w, s) in &bl.param_grad {
            emit(&format!("param_grad.{w}"), &k, s);
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
