//! Results directories: one result document per configuration, named by a stable hash of
//! the resolved configuration; reading result documents back; merging directories; and the
//! per-seed records `check --cache` keeps.
//!
//! # File names
//! `<h>.json`, `h` the 16 hex digits of the 64-bit FNV-1a hash of the resolved config's
//! canonical text ([`SimConfig::canonical`]: compact JSON, fields in declaration order,
//! every default explicit). FNV-1a is fixed by its definition (offset basis
//! `0xcbf29ce484222325`, prime `0x100000001b3`), so names are the same on every platform,
//! run and Rust version. A name changes only when the resolved config's JSON does (a new
//! config field, say), and then the results would be recomputed anyway. Before a file is
//! trusted its stored config is compared with the expected one, so a hash collision is an
//! error, never a wrong result. Per-seed records for `check` go to `<h>.seeds.json`: the
//! same document with [`RunResult::per_seed`] filled.

use crate::atomic::{write_if_changed, AtomicFile};
use crate::config::SimConfig;
use crate::error::{io_reason, ConfigError, OutputError};
use crate::metrics::SeedRecord;
use crate::result::{Document, RunResult, Source};
use crate::simulate::ENGINE;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The name of summary files, which sit next to the results.
pub const SUMMARY_FILE: &str = "summary.json";

/// What can go wrong reading or writing a results directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A result file that cannot be used.
    #[error("result file {path}: {reason}")]
    BadResult {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Two files of the same name with different contents.
    #[error("conflicting result file {path}: {reason}")]
    Conflict {
        /// The file.
        path: PathBuf,
        /// How it conflicts.
        reason: String,
    },
    /// A directory or file that cannot be read or created.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// A stored config that is not a valid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Writing failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        reason: io_reason(&e),
    }
}

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The file name of `cfg`'s results: `<16 hex digits>.json`.
pub fn file_name(cfg: &SimConfig) -> String {
    format!("{:016x}.json", fnv1a64(cfg.canonical().as_bytes()))
}

/// The file name of `cfg`'s per-seed records: `<16 hex digits>.seeds.json`.
pub fn seeds_file_name(cfg: &SimConfig) -> String {
    format!("{:016x}.seeds.json", fnv1a64(cfg.canonical().as_bytes()))
}

/// Whether `name` looks like a result file name (16 lowercase hex digits and `.json`).
pub fn is_result_name(name: &str) -> bool {
    name.strip_suffix(".json").is_some_and(|h| {
        h.len() == 16
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

impl RunResult {
    /// The resolved config this result was computed for.
    pub fn sim_config(&self) -> Result<SimConfig, ConfigError> {
        self.config.build()
    }
}

/// Reads a result document (from `sweep`, `simulate --out`, or `theory --out`).
pub fn read_document(path: &Path) -> Result<Document, StoreError> {
    let bad = |reason: String| StoreError::BadResult {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(io_reason(&e)))?;
    Document::from_json(&text).map_err(bad)
}

/// Reads a document whose simulations must be of this build's engine revision.
fn read_current(path: &Path) -> Result<Document, StoreError> {
    let doc = read_document(path)?;
    let simulated = doc.results.iter().any(|r| r.source == Source::Simulation);
    if simulated && doc.engine != ENGINE {
        return Err(StoreError::BadResult {
            path: path.to_path_buf(),
            reason: format!(
                "computed by engine revision {}, this build is revision {ENGINE}: run the \
                 sweep again to recompute it",
                doc.engine
            ),
        });
    }
    Ok(doc)
}

/// Reads results from files and directories: a file is any result document, a directory
/// contributes its result files (`<hash>.json`) in name order. Simulations of another
/// engine revision are refused (their numbers would not match this build's). A result
/// whose config (and source) was already read is skipped, so a shard and its merged
/// directory count once.
pub fn load(paths: &[PathBuf]) -> Result<Vec<RunResult>, StoreError> {
    let mut out: Vec<RunResult> = Vec::new();
    for p in paths {
        if p.is_dir() {
            for name in result_names(p)? {
                out.extend(read_current(&p.join(name))?.results);
            }
        } else {
            out.extend(read_current(p)?.results);
        }
    }
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
pub fn result_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let name = entry.map_err(|e| io(dir, e))?.file_name();
        if let Some(name) = name.to_str().filter(|n| is_result_name(n)) {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Whether `dir` already holds finished results for `cfg`. A file that does not parse, or
/// was computed by another engine revision, is not finished (it is recomputed); one that
/// parses but holds another config is an error.
pub fn is_done(dir: &Path, cfg: &SimConfig) -> Result<bool, StoreError> {
    let path = dir.join(file_name(cfg));
    if !path.is_file() {
        return Ok(false);
    }
    let Ok(doc) = read_document(&path) else {
        return Ok(false);
    };
    match doc.results.as_slice() {
        [r] if r.source == Source::Simulation && r.config == cfg.to_raw() => {
            Ok(doc.engine == ENGINE)
        }
        [r] if r.source == Source::Simulation => Err(StoreError::Conflict {
            path,
            reason: format!(
                "it holds another config ({}), expected {}",
                crate::error::cut(&serde_json::to_string(&r.config).unwrap_or_default()),
                cfg.canonical()
            ),
        }),
        _ => Ok(false),
    }
}

/// Writes `result` (computed for `cfg`) to its file in `dir`, atomically.
pub fn write(dir: &Path, cfg: &SimConfig, result: &RunResult) -> Result<PathBuf, StoreError> {
    let path = dir.join(file_name(cfg));
    let bytes = crate::report::to_json(std::slice::from_ref(result))?;
    AtomicFile::create(&path)?.commit(bytes.as_bytes())?;
    Ok(path)
}

/// Writes `bytes` as the summary of `dir`, unless it already holds exactly these bytes.
pub fn write_summary(dir: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_if_changed(&dir.join(SUMMARY_FILE), bytes)?;
    Ok(())
}

/// The stored per-seed records of `cfg` in `dir`: `Ok(None)` when there is no file, `Err`
/// (a reason) when there is one that cannot be used (another config, seed count or engine
/// revision, or not readable).
pub fn load_seeds(dir: &Path, cfg: &SimConfig) -> Result<Option<Vec<SeedRecord>>, String> {
    let p = dir.join(seeds_file_name(cfg));
    if !p.exists() {
        return Ok(None);
    }
    let doc = read_document(&p).map_err(|e| e.to_string())?;
    let at = p.display();
    if doc.engine != ENGINE {
        return Err(format!(
            "{at}: computed by engine revision {}, this build is {ENGINE}",
            doc.engine
        ));
    }
    match doc.results.into_iter().next() {
        Some(r) if r.config == cfg.to_raw() => match r.per_seed {
            Some(s) if s.len() == cfg.seeds() && s.iter().all(|s| fits(s, cfg)) => Ok(Some(s)),
            _ => Err(format!(
                "{at}: its per-seed records do not match the config"
            )),
        },
        _ => Err(format!("{at}: it holds another config or seed count")),
    }
}

/// Whether a record has the shape of `cfg`'s records.
fn fits(s: &SeedRecord, cfg: &SimConfig) -> bool {
    let m = cfg.model();
    let (b, k) = (m.depth() + 1, m.depth());
    let names = m.weight_names();
    [
        s.q.len(),
        s.token_cos.len(),
        s.eff_rank.len(),
        s.stable_rank.len(),
    ] == [b; 4]
        && [s.rank1_residual.len(), s.log10_grad.len()] == [b; 2]
        && [s.adj_cos.len(), s.q_pre_norm.len(), s.branch_q_attn.len()] == [k; 3]
        && s.branch_q_ffn.len() == k
        && s.log10_param_grad.len() == names.len()
        && s.log10_param_grad
            .iter()
            .zip(&names)
            .all(|((n, v), w)| n == w && v.len() == k)
}

/// Stores the per-seed records of `cfg` in `dir` (their summary with them), atomically.
pub fn store_seeds(dir: &Path, cfg: &SimConfig, seeds: &[SeedRecord]) -> Result<(), String> {
    let p = dir.join(seeds_file_name(cfg));
    let result = crate::simulate::summarize(cfg, seeds.to_vec(), true);
    let bytes = serde_json::to_vec(&Document::new(vec![result])).map_err(|e| e.to_string())?;
    AtomicFile::create(&p)
        .and_then(|f| f.commit(&bytes))
        .map_err(|e| e.to_string())
}

/// Creates `dir` if needed and checks that files can be written in it.
pub fn prepare(dir: &Path) -> Result<(), String> {
    let fail = |reason: String| format!("directory {}: {reason}", dir.display());
    std::fs::create_dir_all(dir).map_err(|e| fail(io_reason(&e)))?;
    let probe = dir.join(".spannorm-probe");
    AtomicFile::create(&probe).map_err(|e| fail(e.to_string()))?;
    Ok(())
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
/// (its config, its name, its engine revision) before anything is written, so an error
/// leaves `out` untouched.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<Merged, StoreError> {
    let mut sources: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in inputs {
        if !dir.is_dir() {
            return Err(StoreError::Io {
                path: dir.clone(),
                reason: "not a directory".into(),
            });
        }
        for name in result_names(dir)? {
            let path = dir.join(&name);
            // Each file must be a current result of the config its name says.
            let doc = read_current(&path)?;
            let cfg = match doc.results.as_slice() {
                [r] if r.source != Source::Simulation => {
                    return Err(StoreError::BadResult {
                        path,
                        reason: "it holds a theory prediction, not a simulation".into(),
                    })
                }
                [r] => r.sim_config()?,
                _ => {
                    return Err(StoreError::BadResult {
                        path,
                        reason: "a sweep result file holds exactly one result".into(),
                    })
                }
            };
            if file_name(&cfg) != name {
                return Err(StoreError::BadResult {
                    path,
                    reason: format!("its config hashes to {}", file_name(&cfg)),
                });
            }
            match sources.get(&name) {
                Some(first) if !same_bytes(first, &path)? => {
                    return Err(StoreError::Conflict {
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
                return Err(StoreError::Conflict {
                    path: dst,
                    reason: format!("differs from {}", src.display()),
                });
            }
            merged.identical += 1;
        } else {
            todo.push((src, dst));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    for (src, dst) in todo {
        let bytes = std::fs::read(src).map_err(|e| io(src, e))?;
        AtomicFile::create(&dst)?.commit(&bytes)?;
        merged.copied += 1;
    }
    Ok(merged)
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool, StoreError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| io(p, e));
    Ok(read(a)? == read(b)?)
}

/// Checks that `dir` can hold results: it is a directory or does not exist yet.
pub fn check_out_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.exists() && !dir.is_dir() {
        return Err(StoreError::Io {
            path: dir.to_path_buf(),
            reason: "exists and is not a directory".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Placement;

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
        assert!(!is_result_name("0123456789abcdef.seeds.json"));
        assert!(!is_result_name(".spannorm-x.tmp"));
    }

    fn cfg(depth: usize, moe: bool) -> SimConfig {
        let mut b = SimConfig::builder()
            .placement(Placement::Post)
            .depth(depth)
            .width(16)
            .tokens(4)
            .heads(2)
            .seeds(2);
        if moe {
            b = b.moe_experts(3);
        }
        b.build().unwrap()
    }

    fn records(c: &SimConfig) -> Vec<SeedRecord> {
        (0..c.seeds())
            .map(|s| crate::simulate::run_seed(c, s))
            .collect()
    }

    #[test]
    fn seed_records_round_trip_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        for c in [cfg(3, false), cfg(2, true)] {
            let seeds = records(&c);
            assert_eq!(load_seeds(dir.path(), &c).unwrap(), None);
            store_seeds(dir.path(), &c, &seeds).unwrap();
            // PartialEq on f64 is bit equality here (no NaN in a finished run).
            assert_eq!(load_seeds(dir.path(), &c).unwrap(), Some(seeds));
        }
    }

    #[test]
    fn seed_records_of_another_config_or_engine_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (cfg(3, false), cfg(4, false));
        store_seeds(dir.path(), &a, &records(&a)).unwrap();
        let pa = dir.path().join(seeds_file_name(&a));
        let pb = dir.path().join(seeds_file_name(&b));
        std::fs::rename(&pa, &pb).unwrap();
        let e = load_seeds(dir.path(), &b).unwrap_err();
        assert!(e.contains("another config"), "{e}");
        std::fs::write(&pb, b"{\"schema\": 1").unwrap();
        assert!(load_seeds(dir.path(), &b).is_err());
        store_seeds(dir.path(), &a, &records(&a)).unwrap();
        let mut doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&pa).unwrap()).unwrap();
        doc["engine"] = (ENGINE + 1).into();
        std::fs::write(&pa, serde_json::to_vec(&doc).unwrap()).unwrap();
        let e = load_seeds(dir.path(), &a).unwrap_err();
        assert!(e.contains("engine revision"), "{e}");
    }

    #[test]
    fn an_unwritable_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let e = prepare(&file.join("sub")).unwrap_err();
        assert!(e.starts_with("directory"), "{e}");
    }
}
