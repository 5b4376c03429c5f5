//! Learning-rate sweeps: every `(configuration, learning rate, seed)` trained once, each
//! finished run kept as a part file so an interrupted sweep resumes and a sharded one
//! assembles, and the document `spannorm train --out` writes (`analysis/training.md`).

use super::{train_seed, Settings, Trace, TrainError};
use crate::atomic::AtomicFile;
use crate::config::{Field, RawConfig, SimConfig};
use crate::store::fnv1a64;
use crate::summary::mean_ci;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The name of the training document's layout; bumped on an incompatible change.
pub const SCHEMA: &str = "spannorm-train/1";

/// One training run: configuration `config`, learning rate `lrs[lr]`, seed index `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    /// Index into the configurations.
    pub config: usize,
    /// Index into the learning rates.
    pub lr: usize,
    /// Seed index.
    pub seed: u64,
}

/// Every run of `cfgs × lrs × seeds`, configuration-major.
pub fn jobs(cfgs: &[SimConfig], lrs: &[f64]) -> Vec<Job> {
    let mut v = Vec::new();
    for (c, cfg) in cfgs.iter().enumerate() {
        for lr in 0..lrs.len() {
            for seed in 0..cfg.seeds() as u64 {
                v.push(Job {
                    config: c,
                    lr,
                    seed,
                });
            }
        }
    }
    v
}

/// The settings of `s` at learning rate `lr`.
fn at_rate(s: &Settings, lr: f64) -> Settings {
    Settings { lr, ..s.clone() }
}

/// What identifies a run's result: the engine revision, the configuration (without its
/// seed count, so adding seeds reuses the finished ones), the settings and the seed index.
pub fn part_key(cfg: &SimConfig, settings: &Settings, lr: f64, seed: u64) -> String {
    let raw = cfg.to_raw().without(Field::Seeds);
    format!(
        "{{\"engine\":{},\"config\":{},\"settings\":{},\"seed\":{seed}}}",
        crate::result::ENGINE,
        serde_json::to_string(&raw).unwrap_or_default(),
        serde_json::to_string(&at_rate(settings, lr)).unwrap_or_default(),
    )
}

/// The part file name of a run: `train-<16 hex digits>.json`.
pub fn part_name(key: &str) -> String {
    format!("train-{:016x}.json", fnv1a64(key.as_bytes()))
}

/// A finished run as stored in the parts directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Part {
    key: String,
    trace: Trace,
}

/// The finished run stored for `key` in `dir`, if there is one that reads back with this
/// key (a broken or foreign file counts as not finished and is rewritten).
fn load_part(dir: &Path, key: &str) -> Option<Trace> {
    let text = std::fs::read_to_string(dir.join(part_name(key))).ok()?;
    let part: Part = serde_json::from_str(&text).ok()?;
    (part.key == key).then_some(part.trace)
}

/// Why a sweep could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Bad settings.
    #[error(transparent)]
    Settings(#[from] TrainError),
    /// The parts directory cannot be used.
    #[error("{0}")]
    Parts(String),
}

/// A learning-rate sweep: configurations, rates, settings, and where finished runs go.
pub struct Sweep<'a> {
    /// The configurations.
    pub cfgs: &'a [SimConfig],
    /// The peak learning rates.
    pub lrs: &'a [f64],
    /// Everything but the rate.
    pub settings: &'a Settings,
    /// Where finished runs are kept (`None`: nowhere, nothing resumes).
    pub parts: Option<&'a Path>,
}

/// Runs to do and runs done.
pub struct Plan {
    /// Every run.
    pub jobs: Vec<Job>,
    /// The finished runs found in the parts directory, by index into `jobs`.
    pub done: Vec<Option<Trace>>,
}

impl Sweep<'_> {
    /// Checks the settings at every rate and prepares the parts directory.
    pub fn validate(&self) -> Result<(), SweepError> {
        if self.lrs.is_empty() {
            return Err(TrainError::Invalid("lr: give at least one rate".into()).into());
        }
        for c in self.cfgs {
            for &lr in self.lrs {
                at_rate(self.settings, lr).validate(c)?;
            }
        }
        if let Some(dir) = self.parts {
            crate::store::prepare(dir).map_err(SweepError::Parts)?;
        }
        Ok(())
    }

    /// The runs, and which of them are finished.
    pub fn plan(&self) -> Plan {
        let jobs = jobs(self.cfgs, self.lrs);
        let done = jobs
            .iter()
            .map(|j| {
                let dir = self.parts?;
                load_part(dir, &self.key(j))
            })
            .collect();
        Plan { jobs, done }
    }

    fn key(&self, j: &Job) -> String {
        part_key(&self.cfgs[j.config], self.settings, self.lrs[j.lr], j.seed)
    }

    /// Trains the runs `todo` (indices into `plan.jobs`) in parallel, storing each as it
    /// finishes; `progress` is called once per step of any run.
    pub fn run(
        &self,
        plan: &mut Plan,
        todo: &[usize],
        progress: &(dyn Fn() + Sync),
    ) -> Result<(), SweepError> {
        let traces: Vec<Result<(usize, Trace), SweepError>> = todo
            .par_iter()
            .map(|&i| {
                let j = plan.jobs[i];
                let s = at_rate(self.settings, self.lrs[j.lr]);
                let trace = train_seed(&self.cfgs[j.config], &s, j.seed, progress);
                if let Some(dir) = self.parts {
                    let key = self.key(&j);
                    let bytes = serde_json::to_vec(&Part {
                        key: key.clone(),
                        trace: trace.clone(),
                    })
                    .map_err(|e| SweepError::Parts(e.to_string()))?;
                    AtomicFile::create(&dir.join(part_name(&key)))
                        .and_then(|f| f.commit(&bytes))
                        .map_err(|e| SweepError::Parts(e.to_string()))?;
                }
                Ok((i, trace))
            })
            .collect();
        for t in traces {
            let (i, trace) = t?;
            plan.done[i] = Some(trace);
        }
        Ok(())
    }

    /// The document of a finished plan (`None` while runs are missing).
    pub fn document(&self, plan: &Plan) -> Option<Document> {
        let traces: Vec<&Trace> = plan
            .done
            .iter()
            .map(Option::as_ref)
            .collect::<Option<_>>()?;
        let mut runs = Vec::new();
        let mut sensitivity = Vec::new();
        let mut at = 0;
        for cfg in self.cfgs {
            let seeds = cfg.seeds();
            let mut by_rate = Vec::new();
            for &lr in self.lrs {
                let ts: Vec<Trace> = traces[at..at + seeds].iter().map(|&t| t.clone()).collect();
                at += seeds;
                by_rate.push(ts.clone());
                runs.push(RateRun::new(cfg, lr, ts));
            }
            sensitivity.push(Sensitivity::new(cfg, self.lrs, &by_rate));
        }
        Some(Document {
            schema: SCHEMA.into(),
            engine: crate::result::ENGINE,
            settings: self.settings.clone(),
            lrs: self.lrs.to_vec(),
            runs,
            sensitivity,
        })
    }
}

/// A mean over seeds with its 95% half-width (`None` below two seeds) and count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Mean over the seeds that count.
    pub mean: Option<f64>,
    /// 95% Student-t half-width.
    pub half_width: Option<f64>,
    /// Seeds that count.
    pub n: usize,
}

impl Estimate {
    fn of(values: &[f64]) -> Estimate {
        let m = mean_ci(values);
        Estimate {
            mean: m.map(|m| m.0),
            half_width: m.and_then(|m| m.1),
            n: values.len(),
        }
    }
}

/// A configuration's name in tables and legends: the placement, and `MoE E/k` for a
/// mixture of experts.
pub fn label(placement: &str, cfg: &RawConfig) -> String {
    match (cfg.moe_experts, cfg.moe_top_k) {
        (Some(e), Some(k)) => format!("{placement} MoE {e}/{k}"),
        _ => placement.to_string(),
    }
}

/// The runs of one configuration at one learning rate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RateRun {
    /// The configuration (complete raw form).
    pub config: RawConfig,
    /// The placement's name.
    pub placement: String,
    /// The peak learning rate.
    pub lr: f64,
    /// Final evaluation loss over the seeds that did not diverge (nats).
    pub final_loss: Estimate,
    /// Final loss minus the task's floor, over the same seeds.
    pub above_floor: Estimate,
    /// Seeds that diverged.
    pub diverged: usize,
    /// One trace per seed.
    pub traces: Vec<Trace>,
}

impl RateRun {
    fn new(cfg: &SimConfig, lr: f64, traces: Vec<Trace>) -> RateRun {
        let fin: Vec<f64> = traces.iter().filter_map(Trace::final_loss).collect();
        let gap: Vec<f64> = traces
            .iter()
            .filter_map(|t| t.final_loss().map(|l| l - t.floor))
            .collect();
        RateRun {
            config: cfg.to_raw(),
            placement: cfg.model().placement_name().to_string(),
            lr,
            final_loss: Estimate::of(&fin),
            above_floor: Estimate::of(&gap),
            diverged: traces.iter().filter(|t| t.diverged_at.is_some()).count(),
            traces,
        }
    }

    /// The configuration's [`label`].
    pub fn label(&self) -> String {
        label(&self.placement, &self.config)
    }
}

/// Learning-rate sensitivity of one configuration ([`super::sensitivity`]), computed per
/// seed over the sweep's rates and summarized over seeds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sensitivity {
    /// The configuration (complete raw form).
    pub config: RawConfig,
    /// The placement's name.
    pub placement: String,
    /// `E_η[min(ℓ(η), ℓ₀) − ℓ*]` over seeds (nats).
    pub value: Estimate,
    /// The rate with the lowest mean final loss (`None` when every rate diverged).
    pub best_lr: Option<f64>,
}

impl Sensitivity {
    fn new(cfg: &SimConfig, lrs: &[f64], by_rate: &[Vec<Trace>]) -> Sensitivity {
        let seeds = by_rate.first().map_or(0, Vec::len);
        let per_seed: Vec<f64> = (0..seeds)
            .filter_map(|s| {
                let initial = *by_rate[0][s].loss.first()?;
                let fin: Vec<Option<f64>> = by_rate.iter().map(|r| r[s].final_loss()).collect();
                Some(super::sensitivity(&fin, initial))
            })
            .collect();
        let lrs_mean = by_rate.iter().enumerate().filter_map(|(i, r)| {
            let fin: Vec<f64> = r.iter().filter_map(Trace::final_loss).collect();
            (fin.len() == r.len() && !fin.is_empty())
                .then(|| (i, fin.iter().sum::<f64>() / fin.len() as f64))
        });
        let best = lrs_mean.min_by(|a, b| a.1.total_cmp(&b.1)).map(|(i, _)| i);
        Sensitivity {
            config: cfg.to_raw(),
            placement: cfg.model().placement_name().to_string(),
            value: Estimate::of(&per_seed),
            best_lr: best.map(|i| lrs[i]),
        }
    }

    /// The configuration's [`label`].
    pub fn label(&self) -> String {
        label(&self.placement, &self.config)
    }
}

/// What `spannorm train --out` writes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Document {
    /// [`SCHEMA`].
    pub schema: String,
    /// [`crate::result::ENGINE`].
    pub engine: u32,
    /// The settings (their `lr` is the first rate; each run states its own).
    pub settings: Settings,
    /// The peak learning rates of the sweep.
    pub lrs: Vec<f64>,
    /// One entry per configuration and rate, configuration-major.
    pub runs: Vec<RateRun>,
    /// One entry per configuration.
    pub sensitivity: Vec<Sensitivity>,
}

impl Document {
    /// Reads a document written by `spannorm train --out`.
    pub fn read(path: &Path) -> Result<Document, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {}", path.display(), crate::error::io_reason(&e)))?;
        let doc: Document = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a training document: {e}", path.display()))?;
        if doc.schema != SCHEMA {
            return Err(format!(
                "{}: layout {} (this build reads {SCHEMA})",
                path.display(),
                doc.schema
            ));
        }
        Ok(doc)
    }
}

/// The default parts directory of `--out FILE`: `FILE.parts` beside it.
pub fn default_parts(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".parts");
    PathBuf::from(s)
}
