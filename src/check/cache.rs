//! Per-seed records of the simulations behind `check`, kept on disk so that an interrupted
//! run resumes where it stopped (`check --cache DIR`).
//!
//! One file per configuration, `<FNV-1a of the canonical config>.seeds.json`, written
//! atomically when the configuration's seeds are done. The file holds the canonical config,
//! which must match on reading; floats round-trip exactly (serde_json `float_roundtrip`), so a
//! resumed run gives the same verdicts, bit for bit, as an uninterrupted one.

use crate::config::SimConfig;
use crate::metrics::SeedRecord;
use crate::report::AtomicFile;
use crate::simulate::weight_names;
use crate::stack::Divergence;
use crate::sweep::store::{canonical, fnv1a64};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

type Curve = Vec<Option<f64>>;

/// A [`SeedRecord`] as stored: weight names as strings.
#[derive(Serialize, Deserialize)]
struct StoredSeed {
    q: Curve,
    token_cos: Curve,
    eff_rank: Curve,
    stable_rank: Curve,
    rank1_residual: Curve,
    log10_grad: Curve,
    adj_cos: Curve,
    q_pre_norm: Curve,
    branch_q_attn: Curve,
    branch_q_ffn: Curve,
    log10_param_grad: Vec<(String, Curve)>,
    loss: Option<f64>,
    diverged: Option<Divergence>,
}

#[derive(Serialize, Deserialize)]
struct Document {
    schema: u32,
    #[serde(default)]
    engine: u32,
    config: serde_json::Value,
    seeds: Vec<StoredSeed>,
}

impl StoredSeed {
    fn from_record(r: &SeedRecord) -> Self {
        StoredSeed {
            q: r.q.clone(),
            token_cos: r.token_cos.clone(),
            eff_rank: r.eff_rank.clone(),
            stable_rank: r.stable_rank.clone(),
            rank1_residual: r.rank1_residual.clone(),
            log10_grad: r.log10_grad.clone(),
            adj_cos: r.adj_cos.clone(),
            q_pre_norm: r.q_pre_norm.clone(),
            branch_q_attn: r.branch_q_attn.clone(),
            branch_q_ffn: r.branch_q_ffn.clone(),
            log10_param_grad: r
                .log10_param_grad
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
            loss: r.loss,
            diverged: r.diverged,
        }
    }

    /// Back to a record of `cfg`, whose weight names supply the `'static` strings.
    fn into_record(self, cfg: &SimConfig) -> Result<SeedRecord, String> {
        let names = weight_names(&cfg.model);
        let (b, k) = (cfg.model.depth + 1, cfg.model.depth);
        let lens = [
            (self.q.len(), b),
            (self.token_cos.len(), b),
            (self.eff_rank.len(), b),
            (self.stable_rank.len(), b),
            (self.rank1_residual.len(), b),
            (self.log10_grad.len(), b),
            (self.adj_cos.len(), k),
            (self.q_pre_norm.len(), k),
            (self.branch_q_attn.len(), k),
            (self.branch_q_ffn.len(), k),
        ];
        if lens.iter().any(|(a, e)| a != e) {
            return Err("its curves do not have the config's depth".into());
        }
        let mut grads = Vec::with_capacity(self.log10_param_grad.len());
        for (n, v) in self.log10_param_grad {
            let name = names
                .iter()
                .find(|&&w| w == n)
                .ok_or_else(|| format!("it names an unknown weight {n:?}"))?;
            if v.len() != k {
                return Err("its weight gradients do not have the config's depth".into());
            }
            grads.push((*name, v));
        }
        Ok(SeedRecord {
            q: self.q,
            token_cos: self.token_cos,
            eff_rank: self.eff_rank,
            stable_rank: self.stable_rank,
            rank1_residual: self.rank1_residual,
            log10_grad: self.log10_grad,
            adj_cos: self.adj_cos,
            q_pre_norm: self.q_pre_norm,
            branch_q_attn: self.branch_q_attn,
            branch_q_ffn: self.branch_q_ffn,
            log10_param_grad: grads,
            loss: self.loss,
            diverged: self.diverged,
        })
    }
}

/// The cache file of `cfg` in `dir`.
pub fn path(dir: &Path, cfg: &SimConfig) -> PathBuf {
    dir.join(format!(
        "{:016x}.seeds.json",
        fnv1a64(canonical(cfg).as_bytes())
    ))
}

/// The stored records of `cfg`: `Ok(None)` when there is no file, `Err` (a reason) when
/// there is one that cannot be used.
pub fn load(dir: &Path, cfg: &SimConfig) -> Result<Option<Vec<SeedRecord>>, String> {
    let p = path(dir, cfg);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", p.display())),
    };
    let doc: Document =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", p.display()))?;
    let want: serde_json::Value =
        serde_json::from_str(&canonical(cfg)).expect("a canonical config parses");
    if doc.engine != crate::simulate::ENGINE {
        return Err(format!(
            "{}: computed by engine revision {}, this build is {}",
            p.display(),
            doc.engine,
            crate::simulate::ENGINE
        ));
    }
    if doc.schema != 1 || doc.config != want || doc.seeds.len() != cfg.seeds {
        return Err(format!(
            "{}: it holds another config or seed count",
            p.display()
        ));
    }
    doc.seeds
        .into_iter()
        .map(|s| s.into_record(cfg))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// Stores the records of `cfg`, atomically.
pub fn store(dir: &Path, cfg: &SimConfig, seeds: &[SeedRecord]) -> Result<(), String> {
    let p = path(dir, cfg);
    let doc = Document {
        schema: 1,
        engine: crate::simulate::ENGINE,
        config: serde_json::from_str(&canonical(cfg)).expect("a canonical config parses"),
        seeds: seeds.iter().map(StoredSeed::from_record).collect(),
    };
    let bytes = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
    AtomicFile::create(&p)
        .and_then(|f| f.commit(&bytes))
        .map_err(|e| e.to_string())
}

/// Creates `dir` if needed and checks that files can be written in it.
pub fn prepare(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cache directory {}: {e}", dir.display()))?;
    let probe = dir.join(".spannorm-probe");
    AtomicFile::create(&probe).map_err(|e| format!("cache directory {}: {e}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    fn cfg(depth: usize, moe: bool) -> SimConfig {
        RawConfig {
            placement: Some("post".into()),
            depth: Some(depth),
            width: Some(16),
            tokens: Some(4),
            heads: Some(2),
            seeds: Some(2),
            moe_experts: moe.then_some(3),
            ..Default::default()
        }
        .resolve()
        .unwrap()
        .remove(0)
    }

    #[test]
    fn records_round_trip_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        for c in [cfg(3, false), cfg(2, true)] {
            let seeds: Vec<SeedRecord> = (0..c.seeds)
                .map(|s| crate::simulate::run_seed(&c, s))
                .collect();
            assert_eq!(load(dir.path(), &c).unwrap(), None);
            store(dir.path(), &c, &seeds).unwrap();
            // PartialEq on f64 is bit equality here (no NaN in a finished run).
            assert_eq!(load(dir.path(), &c).unwrap(), Some(seeds));
        }
    }

    #[test]
    fn a_file_for_another_config_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (cfg(3, false), cfg(4, false));
        let seeds: Vec<SeedRecord> = (0..a.seeds)
            .map(|s| crate::simulate::run_seed(&a, s))
            .collect();
        store(dir.path(), &a, &seeds).unwrap();
        std::fs::rename(path(dir.path(), &a), path(dir.path(), &b)).unwrap();
        let e = load(dir.path(), &b).unwrap_err();
        assert!(e.contains("another config"), "{e}");
        std::fs::write(path(dir.path(), &b), b"{\"schema\": 1").unwrap();
        assert!(load(dir.path(), &b).is_err());
    }

    #[test]
    fn a_file_from_another_engine_revision_is_recomputed() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(2, false);
        let seeds: Vec<SeedRecord> = (0..c.seeds)
            .map(|s| crate::simulate::run_seed(&c, s))
            .collect();
        store(dir.path(), &c, &seeds).unwrap();
        let p = path(dir.path(), &c);
        let mut doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        doc["engine"] = (crate::simulate::ENGINE + 1).into();
        std::fs::write(&p, serde_json::to_vec(&doc).unwrap()).unwrap();
        let e = load(dir.path(), &c).unwrap_err();
        assert!(e.contains("engine revision"), "{e}");
    }

    #[test]
    fn an_unwritable_cache_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let e = prepare(&file.join("sub")).unwrap_err();
        assert!(e.starts_with("cache directory"), "{e}");
    }
}
