//! Results on disk and on screen: the JSON document (schema 1), long-format CSV, the
//! compact stdout table, and atomic file writes.
//!
//! # JSON schema 1
//! `{"schema": 1, "crate": "spannorm", "version": …, "results": [RunResult, …]}`, one
//! [`RunResult`] per configuration; see `analysis/schema.md` for every field.

use crate::error::OutputError;
use crate::simulate::RunResult;
use crate::summary::Series;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Version of the JSON layout; bumped on any incompatible change.
pub const SCHEMA: u32 = 1;

/// The whole JSON document.
#[derive(Serialize)]
pub struct Document<'a> {
    pub schema: u32,
    #[serde(rename = "crate")]
    pub crate_name: &'static str,
    pub version: &'static str,
    /// [`crate::simulate::ENGINE`]: which revision of the simulation produced the numbers.
    pub engine: u32,
    pub results: &'a [RunResult],
}

/// Output format of result files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// The JSON document for `results`, pretty-printed.
pub fn to_json(results: &[RunResult]) -> Result<String, OutputError> {
    let doc = Document {
        schema: SCHEMA,
        crate_name: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        engine: crate::simulate::ENGINE,
        results,
    };
    Ok(serde_json::to_string_pretty(&doc)? + "\n")
}

/// Long-format CSV: `run,placement,scale,metric,l,mean,lo,hi,n`, one row per metric and
/// layer (`l` empty for the loss).
pub fn to_csv(results: &[RunResult]) -> String {
    let mut out = String::from("run,placement,scale,metric,l,mean,lo,hi,n\n");
    let cell = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:e}"));
    for (i, r) in results.iter().enumerate() {
        let p = r.config.placement.as_deref().unwrap_or_default();
        let s = r.config.scale.as_deref().unwrap_or_default();
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
    let mut out = format!(
        "{} (scale {}, norm {}, L={}, d={}, n={}, {} seeds, {})\n",
        c.placement.as_deref().unwrap_or_default(),
        c.scale.as_deref().unwrap_or_default(),
        c.norm.as_deref().unwrap_or_default(),
        c.depth.unwrap_or_default(),
        c.width.unwrap_or_default(),
        c.tokens.unwrap_or_default(),
        c.seeds.unwrap_or_default(),
        c.precision.as_deref().unwrap_or_default(),
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

/// A file written in full or not at all: bytes go to a temporary file in the target's
/// folder, renamed over the target only by [`AtomicFile::commit`].
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Checks now that `path` can be written (so a long run does not fail at the end).
    pub fn create(path: &Path) -> Result<Self, OutputError> {
        let io = |source| OutputError::Io {
            path: path.to_path_buf(),
            source,
        };
        if path.is_dir() {
            return Err(io(std::io::Error::other("it is a directory")));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".spannorm-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(io)?;
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// Writes `bytes` and renames the file into place.
    pub fn commit(mut self, bytes: &[u8]) -> Result<(), OutputError> {
        let path = self.path.clone();
        let io = |source| OutputError::Io {
            path: path.clone(),
            source,
        };
        self.tmp.write_all(bytes).map_err(io)?;
        self.tmp.as_file().sync_all().map_err(io)?;
        // Temporary files are created private (0600); results are ordinary files.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode(0o644);
            self.tmp.as_file().set_permissions(perms).map_err(io)?;
        }
        self.tmp.persist(&self.path).map_err(|e| io(e.error))?;
        Ok(())
    }
}
