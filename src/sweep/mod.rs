//! Sweeps: many configurations, one result file each, resumable and shardable.
//!
//! - [`spec`]: the sweep file (any config field a value or a list; cross product) and
//!   [`Shard`]s, disjoint parts of a sweep for a cluster.
//! - [`summary`]: final-layer quantities and growth exponents against depth.
//!
//! The results directory itself (file names, atomic writes, reading back, merging) is
//! [`crate::store`]. [`run`] computes the pending configurations: every `(config, seed)`
//! pair runs in parallel on the current rayon pool ([`simulate::run_jobs`]), and the thread
//! that finishes a config's last seed summarizes it in seed order ([`simulate::summarize`],
//! so the bytes are those of `simulate`) and writes its file at once. A sweep killed at any moment
//! loses only the configs in flight; re-running it skips the files that exist and parse, and
//! ends with the same bytes as an uninterrupted run.

pub mod spec;
pub mod summary;

pub use spec::{Shard, SweepSpec};
pub use summary::Summary;

use crate::config::SimConfig;
use crate::error::ConfigError;
use crate::metrics::SeedRecord;
use crate::simulate;
use crate::store::{self, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What can go wrong in a sweep.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The sweep file cannot be read or has a bad field.
    #[error("sweep config {path}: {reason}")]
    Spec {
        /// The sweep file (`<json>` for text given directly).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A combination of the sweep is not a valid configuration.
    #[error("sweep config: {0}")]
    Config(ConfigError),
    /// A malformed `--shard`.
    #[error("shard {0}")]
    Shard(String),
    /// The results directory.
    #[error(transparent)]
    Store(#[from] StoreError),
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
    /// The result file.
    pub path: PathBuf,
    /// The configuration's placement.
    pub placement: crate::placement::Placement,
    /// Seeds that diverged.
    pub diverged: usize,
}

struct Slot {
    records: Vec<Option<SeedRecord>>,
    left: usize,
}

/// Runs `cfgs` and writes each config's results into `dir` (created if missing) as soon as
/// its last seed finishes; `progress` gets every finished block pass (of
/// [`simulate::total_passes`]). Returns the files in the order they were written.
pub fn run(
    cfgs: &[SimConfig],
    dir: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<Written>, SweepError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
        path: dir.to_path_buf(),
        reason: crate::error::io_reason(&e),
    })?;
    for c in cfgs {
        crate::cost::check_fits(c).map_err(SweepError::Config)?;
    }
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
    let done = |c: usize, s: usize, rec: SeedRecord| -> Result<(), SweepError> {
        let finished = {
            let mut slot = slots[c].lock().unwrap_or_else(|e| e.into_inner());
            slot.records[s] = Some(rec);
            slot.left -= 1;
            (slot.left == 0).then(|| std::mem::take(&mut slot.records))
        };
        if let Some(records) = finished {
            let records = records.into_iter().map(Option::unwrap_or_default).collect();
            let result = simulate::summarize(&cfgs[c], records, false);
            let path = store::write(dir, &cfgs[c], &result)?;
            written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Written {
                    path,
                    placement: cfgs[c].model.placement,
                    diverged: result.diverged.len(),
                });
        }
        Ok(())
    };
    simulate::run_jobs(cfgs, &simulate::all_jobs(cfgs), progress, &done)?;
    Ok(written.into_inner().unwrap_or_else(|e| e.into_inner()))
}
