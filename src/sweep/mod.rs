//! Sweeps: many configurations, one result file each, resumable and shardable.
//!
//! - [`spec`]: the sweep file (any config field a value or a list; cross product) and
//!   [`Shard`]s, disjoint parts of a sweep for a cluster.
//! - [`store`]: the results directory (`<hash>.json` per config, atomic writes, reading
//!   results back, [`store::merge`]).
//! - [`summary`]: final-layer quantities and growth exponents against depth.
//!
//! [`run`] computes the pending configurations: every `(config, seed)` pair runs in
//! parallel on the current rayon pool ([`simulate::run_seed`]), and the thread that
//! finishes a config's last seed summarizes it in seed order ([`simulate::summarize`], so the
//! bytes are those of `simulate`) and writes its file at once. A sweep killed at any moment
//! loses only the configs in flight; re-running it skips the files that exist and parse, and
//! ends with the same bytes as an uninterrupted run.

pub mod spec;
pub mod store;
pub mod summary;

pub use spec::{Shard, SweepSpec};
pub use summary::Summary;

use crate::config::SimConfig;
use crate::error::{ConfigError, OutputError};
use crate::metrics::SeedRecord;
use crate::simulate;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What can go wrong in a sweep or a merge.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The sweep file cannot be read or has a bad field.
    #[error("sweep config {path}: {reason}")]
    Spec { path: String, reason: String },
    /// A combination of the sweep is not a valid configuration.
    #[error("sweep config: {0}")]
    Config(#[source] ConfigError),
    /// A malformed `--shard`.
    #[error("shard {0}")]
    Shard(String),
    /// A result file that cannot be read back.
    #[error("result file {path}: {reason}")]
    BadResult { path: PathBuf, reason: String },
    /// Two files of the same name with different contents.
    #[error("conflicting result file {path}: {reason}")]
    Conflict { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Output(OutputError),
}

/// The configurations of a sweep (or of one shard of it) against a results directory.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Every configuration of the sweep (or shard), in sweep order.
    pub configs: Vec<SimConfig>,
    /// Those whose result file is missing (or unreadable), in sweep order.
    pub pending: Vec<SimConfig>,
}

impl Plan {
    /// Expands `spec`, keeps `shard`'s part, and checks which results `dir` already has.
    pub fn new(spec: &SweepSpec, shard: Option<Shard>, dir: &Path) -> Result<Plan, SweepError> {
        let all = spec.expand()?;
        let configs = match shard {
            Some(s) => s.select(&all),
            None => all,
        };
        let mut pending = Vec::new();
        for c in &configs {
            if !store::is_done(dir, c)? {
                pending.push(c.clone());
            }
        }
        Ok(Plan { configs, pending })
    }

    /// Seeds to run for the pending configurations.
    pub fn pending_seeds(&self) -> usize {
        self.pending.iter().map(|c| c.seeds).sum()
    }
}

/// One configuration written by [`run`].
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    pub path: PathBuf,
    pub placement: String,
    /// Seeds that diverged.
    pub diverged: usize,
}

struct Slot {
    records: Vec<Option<SeedRecord>>,
    left: usize,
}

/// Runs `cfgs` and writes each config's results into `dir` (created if missing) as soon as
/// its last seed finishes; `progress` is called after every seed. Returns the files in the
/// order they were written.
pub fn run(
    cfgs: &[SimConfig],
    dir: &Path,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<Written>, SweepError> {
    std::fs::create_dir_all(dir).map_err(|source| SweepError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let slots: Vec<Mutex<Slot>> = cfgs
        .iter()
        .map(|c| {
            Mutex::new(Slot {
                records: vec![None; c.seeds],
                left: c.seeds,
            })
        })
        .collect();
    let written = Mutex::new(Vec::new());
    let jobs: Vec<(usize, usize)> = cfgs
        .iter()
        .enumerate()
        .flat_map(|(c, cfg)| (0..cfg.seeds).map(move |s| (c, s)))
        .collect();
    jobs.par_iter().try_for_each(|&(c, s)| {
        let rec = simulate::run_seed(&cfgs[c], s);
        progress();
        let finished = {
            let mut slot = slots[c].lock().expect("no panics while holding a slot");
            slot.records[s] = Some(rec);
            slot.left -= 1;
            (slot.left == 0).then(|| std::mem::take(&mut slot.records))
        };
        if let Some(records) = finished {
            let records = records
                .into_iter()
                .map(|r| r.expect("every seed ran"))
                .collect();
            let result = simulate::summarize(&cfgs[c], records);
            let path = store::write(dir, &cfgs[c], &result)?;
            written.lock().expect("no panics").push(Written {
                path,
                placement: cfgs[c].model.placement.to_string(),
                diverged: result.diverged.len(),
            });
        }
        Ok::<(), SweepError>(())
    })?;
    Ok(written.into_inner().expect("no panics"))
}

/// Checks that `dir` can hold results: it is a directory or does not exist yet.
pub fn check_out_dir(dir: &Path) -> Result<(), SweepError> {
    if dir.exists() && !dir.is_dir() {
        return Err(SweepError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other("exists and is not a directory"),
        });
    }
    Ok(())
}
