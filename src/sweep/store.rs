//! A results directory: one schema-1 JSON document per configuration, named by a stable
//! hash of the resolved configuration, plus reading result documents back for summaries
//! and figures.
//!
//! # File names
//! `<h>.json`, `h` the 16 hex digits of the 64-bit FNV-1a hash of the resolved config's
//! compact JSON (`serde_json::to_string(&cfg.to_raw())`: fields in declaration order, every
//! default explicit). FNV-1a is fixed by its definition (offset basis `0xcbf29ce484222325`,
//! prime `0x100000001b3`), so names are the same on every platform, run and Rust version.
//! A name changes only when the resolved config's JSON does (a new config field, say), and
//! then the results would be recomputed anyway. Before a file is trusted its stored config
//! is compared with the expected one, so a hash collision is an error, never a wrong
//! result.

use super::SweepError;
use crate::config::{RawConfig, SimConfig};
use crate::report::{self, AtomicFile};
use crate::simulate::{RunResult, Source};
use crate::theory;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The name of summary files, which sit next to the results.
pub const SUMMARY_FILE: &str = "summary.json";

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The canonical text of a resolved config: its complete raw form as compact JSON.
pub fn canonical(cfg: &SimConfig) -> String {
    serde_json::to_string(&cfg.to_raw()).expect("a config serializes")
}

/// The file name of `cfg`'s results: `<16 hex digits>.json`.
pub fn file_name(cfg: &SimConfig) -> String {
    format!("{:016x}.json", fnv1a64(canonical(cfg).as_bytes()))
}

/// Whether `name` looks like a result file name (16 lowercase hex digits and `.json`).
pub fn is_result_name(name: &str) -> bool {
    name.strip_suffix(".json").is_some_and(|h| {
        h.len() == 16
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// One per-layer quantity as stored: mean over seeds and the 95% interval.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Curve {
    pub mean: Vec<Option<f64>>,
    pub lo: Vec<Option<f64>>,
    pub hi: Vec<Option<f64>>,
}

/// The boundary metrics read back (see `analysis/schema.md`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct StoredBoundaries {
    pub l: Vec<usize>,
    pub q: Curve,
    pub log10_grad: Curve,
    pub token_cos: Curve,
    pub eff_rank: Curve,
}

/// The block metrics read back.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct StoredBlocks {
    pub l: Vec<usize>,
    pub alpha: Vec<f64>,
    pub adj_cos: Curve,
    pub q_pre_norm: Curve,
}

/// A divergence as stored.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct StoredDivergence {
    pub seed: usize,
    pub block: usize,
    pub pass: String,
}

/// The part of a [`RunResult`] that summaries and figures read, from disk or from a
/// theory prediction (other fields of the file are ignored).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Stored {
    /// The document's engine revision (0, the first, when the file has none).
    #[serde(skip)]
    pub engine: u32,
    pub source: Source,
    pub config: RawConfig,
    pub diverged: Vec<StoredDivergence>,
    pub boundaries: StoredBoundaries,
    pub blocks: StoredBlocks,
}

#[derive(Deserialize)]
struct StoredDocument {
    schema: u32,
    #[serde(default)]
    engine: u32,
    results: Vec<Stored>,
}

impl Stored {
    /// The same view of an in-memory result (a theory prediction, say).
    pub fn from_run(r: &RunResult) -> Stored {
        let v = serde_json::to_value(r).expect("a result serializes");
        serde_json::from_value(v).expect("a serialized result reads back")
    }

    /// The resolved config this result was computed for.
    pub fn sim_config(&self) -> Result<SimConfig, SweepError> {
        let mut cfgs = self.config.resolve().map_err(SweepError::Config)?;
        match cfgs.len() {
            1 => Ok(cfgs.remove(0)),
            n => Err(SweepError::Config(crate::error::ConfigError::Invalid {
                field: "placement",
                reason: format!("a stored result names {n} placements"),
            })),
        }
    }

    /// The mean-field prediction for this result's config ([`theory::predict`]), or why
    /// there is none. Memoized per process by config, so drawing several figures of the
    /// same results (or a summary and then figures) predicts each config once.
    pub fn prediction(&self) -> Result<Stored, String> {
        type Memo = Mutex<HashMap<String, Result<Stored, String>>>;
        static MEMO: OnceLock<Memo> = OnceLock::new();
        let memo = MEMO.get_or_init(Memo::default);
        let cfg = self.sim_config().map_err(|e| e.to_string())?;
        let key = canonical(&cfg);
        if let Some(v) = memo
            .lock()
            .expect("no panics while holding the memo")
            .get(&key)
        {
            return v.clone();
        }
        let v = theory::predict(&cfg)
            .map(|t| Stored::from_run(&t))
            .map_err(|e| e.to_string());
        memo.lock()
            .expect("no panics while holding the memo")
            .insert(key, v.clone());
        v
    }

    /// Depth `L` of the stack.
    pub fn depth(&self) -> usize {
        self.boundaries.l.len().saturating_sub(1)
    }
}

/// Reads a schema-1 document (from `sweep`, `simulate --out`, or `predict`).
pub fn read_document(path: &Path) -> Result<Vec<Stored>, SweepError> {
    let bad = |reason: String| SweepError::BadResult {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let doc: StoredDocument = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if doc.schema != report::SCHEMA {
        return Err(bad(format!(
            "schema {} (this build reads schema {})",
            doc.schema,
            report::SCHEMA
        )));
    }
    let mut results = doc.results;
    for r in &mut results {
        r.engine = doc.engine;
    }
    Ok(results)
}

/// Reads results from files and directories: a file is any schema-1 document, a directory
/// contributes its result files (`<hash>.json`) in name order. A result whose config (and
/// source) was already read is skipped.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Stored>, SweepError> {
    let mut out: Vec<Stored> = Vec::new();
    for p in paths {
        if p.is_dir() {
            for name in result_names(p)? {
                out.extend(read_document(&p.join(name))?);
            }
        } else {
            out.extend(read_document(p)?);
        }
    }
    // The same result reached twice (a shard and the merged directory, say) counts once, so
    // a fit does not see duplicated points.
    let mut seen = std::collections::HashSet::new();
    out.retain(|r| {
        seen.insert((
            serde_json::to_string(&r.config).unwrap_or_default(),
            r.source == Source::Simulation,
        ))
    });
    Ok(out)
}

/// The result file names in `dir`, sorted.
pub fn result_names(dir: &Path) -> Result<Vec<String>, SweepError> {
    let io = |source| SweepError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        if let Some(name) = name.to_str().filter(|n| is_result_name(n)) {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Whether `dir` already holds finished results for `cfg`. A file that does not parse, or
/// was computed by another engine revision ([`crate::simulate::ENGINE`]), is not finished
/// (it is recomputed); one that parses but holds another config is an error.
pub fn is_done(dir: &Path, cfg: &SimConfig) -> Result<bool, SweepError> {
    let path = dir.join(file_name(cfg));
    if !path.is_file() {
        return Ok(false);
    }
    let results = match read_document(&path) {
        Ok(r) => r,
        Err(_) => return Ok(false),
    };
    match results.as_slice() {
        [r] if r.source == Source::Simulation && r.config == cfg.to_raw() => {
            Ok(r.engine == crate::simulate::ENGINE)
        }
        [r] if r.source == Source::Simulation => Err(SweepError::Conflict {
            path,
            reason: format!(
                "it holds another config ({}), expected {}",
                serde_json::to_string(&r.config).unwrap_or_default(),
                canonical(cfg)
            ),
        }),
        _ => Ok(false),
    }
}

/// Writes `result` (computed for `cfg`) to its file in `dir`, atomically.
pub fn write(dir: &Path, cfg: &SimConfig, result: &RunResult) -> Result<PathBuf, SweepError> {
    let path = dir.join(file_name(cfg));
    let bytes = report::to_json(std::slice::from_ref(result)).map_err(SweepError::Output)?;
    AtomicFile::create(&path)
        .and_then(|f| f.commit(bytes.as_bytes()))
        .map_err(SweepError::Output)?;
    Ok(path)
}

/// What [`merge`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Files copied into the output directory.
    pub copied: usize,
    /// Files already there with identical bytes.
    pub identical: usize,
}

/// Copies the result files of `inputs` into `out`. The same name with different bytes in
/// two places (two inputs, or an input and `out`) is a conflict; every input is checked
/// before anything is written, so a conflict leaves `out` untouched.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<Merged, SweepError> {
    let mut sources: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in inputs {
        if !dir.is_dir() {
            return Err(SweepError::Io {
                path: dir.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            });
        }
        for name in result_names(dir)? {
            let path = dir.join(&name);
            // Each file must be a result of the config its name says.
            let results = read_document(&path)?;
            let cfg = match results.as_slice() {
                [r] if r.source != Source::Simulation => {
                    return Err(SweepError::BadResult {
                        path,
                        reason: "it holds a theory prediction, not a simulation".into(),
                    })
                }
                [r] => r.sim_config()?,
                _ => {
                    return Err(SweepError::BadResult {
                        path,
                        reason: "a sweep result file holds exactly one result".into(),
                    })
                }
            };
            if file_name(&cfg) != name {
                return Err(SweepError::BadResult {
                    path,
                    reason: format!("its config hashes to {}", file_name(&cfg)),
                });
            }
            match sources.get(&name) {
                Some(first) if !same_bytes(first, &path)? => {
                    return Err(SweepError::Conflict {
                        path,
                        reason: format!("differs from {}", first.display()),
                    })
                }
                Some(_) => {}
                None => {
                    sources.insert(name, path);
                }
            }
        }
    }
    let mut merged = Merged::default();
    let mut todo = Vec::new();
    for (name, src) in &sources {
        let dst = out.join(name);
        if dst.is_file() {
            if !same_bytes(src, &dst)? {
                return Err(SweepError::Conflict {
                    path: dst,
                    reason: format!("differs from {}", src.display()),
                });
            }
            merged.identical += 1;
        } else {
            todo.push((src, dst));
        }
    }
    std::fs::create_dir_all(out).map_err(|source| SweepError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    for (src, dst) in todo {
        let bytes = std::fs::read(src).map_err(|source| SweepError::Io {
            path: src.clone(),
            source,
        })?;
        AtomicFile::create(&dst)
            .and_then(|f| f.commit(&bytes))
            .map_err(SweepError::Output)?;
        merged.copied += 1;
    }
    Ok(merged)
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool, SweepError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| SweepError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    Ok(read(a)? == read(b)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn names_are_recognized() {
        assert!(is_result_name("0123456789abcdef.json"));
        assert!(!is_result_name("summary.json"));
        assert!(!is_result_name("0123456789ABCDEF.json"));
        assert!(!is_result_name(".spannorm-x.tmp"));
    }
}
