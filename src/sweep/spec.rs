//! Sweep specifications: which configurations a sweep runs, and which part of them a shard
//! runs.
//!
//! A sweep file is a JSON object with the fields of a `--config` file ([`RawConfig`]), each
//! either a value or a non-empty list of values; the sweep is the cross product of the
//! lists. A JSON array of such objects is the union of their cross products (for
//! combinations that a single product would make invalid, e.g. `inner-norm` for `span`
//! only). Example:
//!
//! ```json
//! {"placement": ["pre", "post", "span"], "depth": [8, 64, 512], "width": 128, "seeds": 4}
//! ```
//!
//! # Order
//! Objects in file order; within an object, fields in alphabetical order with the last one
//! varying fastest, values in list order; `placement: "all"` expands in the spec's placement
//! order. A configuration that resolves to one already listed (same file name) is dropped,
//! so every configuration appears once.

use super::SweepError;
use crate::choice::Choice;
use crate::config::{Field, RawConfig, SimConfig};
use crate::store::file_name;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

/// Most configurations one sweep may expand to, so a typo does not fill a disk.
pub const MAX_CONFIGS: usize = 100_000;

/// A parsed sweep: one or more cross products of field values.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSpec {
    /// Each product: fields in alphabetical order, each with its non-empty list of values.
    products: Vec<Vec<(String, Vec<Value>)>>,
}

/// The field names a config file accepts, kebab-case, alphabetical.
pub fn config_fields() -> Vec<String> {
    let names: BTreeSet<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    names.into_iter().map(String::from).collect()
}

/// Deserializes a JSON object as a [`RawConfig`], naming the field of any error.
fn raw_from(map: Map<String, Value>) -> Result<RawConfig, String> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let inner = crate::error::cut_to(&e.into_inner().to_string(), crate::error::MAX_MESSAGE);
        if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })
}

impl SweepSpec {
    /// Reads a sweep file.
    pub fn from_file(path: &Path) -> Result<Self, SweepError> {
        let text = std::fs::read_to_string(path).map_err(|e| SweepError::Spec {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_json(&text).map_err(|e| match e {
            SweepError::Spec { reason, .. } => SweepError::Spec {
                path: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Parses a sweep; errors name the offending field (and the object's index in an
    /// array).
    pub fn from_json(text: &str) -> Result<Self, SweepError> {
        let err = |reason: String| SweepError::Spec {
            path: "<json>".into(),
            reason,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let (objects, indexed) = match value {
            Value::Object(m) => (vec![m], false),
            Value::Array(items) if !items.is_empty() => {
                let mut objects = Vec::new();
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::Object(m) => objects.push(m),
                        other => {
                            return Err(err(format!(
                                "[{i}]: expected an object, got {}",
                                crate::error::cut(&other.to_string())
                            )))
                        }
                    }
                }
                (objects, true)
            }
            Value::Array(_) => return Err(err("an empty array has no configurations".into())),
            other => {
                return Err(err(format!(
                    "expected an object of config fields (or an array of them), got {}",
                    crate::error::cut(&other.to_string())
                )))
            }
        };
        let fields = config_fields();
        let mut products = Vec::new();
        for (i, object) in objects.into_iter().enumerate() {
            let at = |field: &str| {
                if indexed {
                    format!("[{i}].{field}")
                } else {
                    field.to_string()
                }
            };
            let mut axes = Vec::new();
            for (field, value) in object {
                if !fields.contains(&field) {
                    return Err(err(format!(
                        "{}: unknown field (allowed: {})",
                        at(&crate::error::cut(&field)),
                        fields.join(", ")
                    )));
                }
                let values = match value {
                    Value::Array(v) if v.is_empty() => {
                        return Err(err(format!(
                            "{}: empty list (give at least one value)",
                            at(&field)
                        )))
                    }
                    Value::Array(v) => v,
                    scalar => vec![scalar],
                };
                // Type-check every value on its own, so the error names the field.
                for v in &values {
                    let mut one = Map::new();
                    one.insert(field.clone(), v.clone());
                    raw_from(one)
                        .map_err(|e| err(if indexed { format!("[{i}].{e}") } else { e }))?;
                }
                axes.push((field, values));
            }
            axes.sort_by(|a, b| a.0.cmp(&b.0));
            products.push(axes);
        }
        Ok(SweepSpec { products })
    }

    /// Number of raw combinations before resolution (`placement: all` counts once),
    /// saturating at `usize::MAX` (it is compared with [`MAX_CONFIGS`]).
    pub fn combinations(&self) -> usize {
        self.products
            .iter()
            .map(|axes| {
                axes.iter()
                    .try_fold(1usize, |a, (_, v)| a.checked_mul(v.len()))
                    .unwrap_or(usize::MAX)
            })
            .fold(0usize, usize::saturating_add)
    }

    /// Every configuration of the sweep, resolved and validated, in the stable order of the
    /// module doc, each once.
    pub fn expand(&self) -> Result<Vec<SimConfig>, SweepError> {
        self.expand_mapped(|raw| raw)
    }

    /// [`SweepSpec::expand`] with each combination's raw config passed through `f` before
    /// it is resolved (e.g. defaults laid under it and flags over it).
    pub fn expand_mapped(
        &self,
        f: impl Fn(RawConfig) -> RawConfig,
    ) -> Result<Vec<SimConfig>, SweepError> {
        let n = self.combinations();
        if n > MAX_CONFIGS {
            return Err(SweepError::Spec {
                path: "<json>".into(),
                reason: format!("{n} combinations, more than the limit of {MAX_CONFIGS}"),
            });
        }
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for axes in &self.products {
            let total: usize = axes.iter().map(|(_, v)| v.len()).product();
            for mut k in 0..total {
                // Mixed-radix digits of k, last axis fastest.
                let mut map = Map::new();
                for (field, values) in axes.iter().rev() {
                    map.insert(field.clone(), values[k % values.len()].clone());
                    k /= values.len();
                }
                let raw = f(raw_from(map).map_err(|reason| SweepError::Spec {
                    path: "<json>".into(),
                    reason,
                })?);
                for cfg in raw.resolve().map_err(SweepError::Config)? {
                    if seen.insert(file_name(&cfg)) {
                        out.push(cfg);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The `i`-th of `n` disjoint parts of a sweep, written `i/n` with `1 ≤ i ≤ n` (1-based,
/// like Slurm's `--array=1-n`; Kubernetes' 0-based `JOB_COMPLETION_INDEX` needs `+ 1`).
///
/// Configurations are dealt to shards by longest-processing-time-first on an estimated
/// cost (`seeds · L · n · (weights per block + n d)`): the most expensive first, each to the
/// shard with the least work so far, ties to the lowest shard. The assignment depends only
/// on the sweep, so every shard computes the same partition without talking to the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 1-based index.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = SweepError;

    fn from_str(s: &str) -> Result<Self, SweepError> {
        let bad = |why: &str| SweepError::Shard(format!("'{s}': {why}"));
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| bad("expected i/n, e.g. 2/8 for the second of eight parts"))?;
        let parse = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| bad("expected i/n with whole numbers, e.g. 2/8"))
        };
        let (index, count) = (parse(i)?, parse(n)?);
        if count == 0 {
            return Err(bad("the number of shards must be at least 1"));
        }
        if index == 0 {
            return Err(bad("shards are numbered from 1 (1/n … n/n)"));
        }
        if index > count {
            return Err(bad(&format!(
                "shard {index} does not exist: there are {count}"
            )));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Estimated relative cost of one configuration (arbitrary units, proportional to FLOPs).
pub fn cost(cfg: &SimConfig) -> f64 {
    let m = &cfg.model;
    let n = m.tokens as f64;
    let per_block = n * (crate::cost::params_per_block(m) + n * m.width as f64);
    cfg.seeds as f64 * m.depth as f64 * per_block
}

impl Shard {
    /// The configurations of this shard, in their sweep order.
    pub fn select(&self, cfgs: &[SimConfig]) -> Vec<SimConfig> {
        let mut order: Vec<usize> = (0..cfgs.len()).collect();
        let costs: Vec<f64> = cfgs.iter().map(cost).collect();
        order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
        let mut load = vec![0.0f64; self.count];
        let mut mine = vec![false; cfgs.len()];
        for c in order {
            let (s, _) = load
                .iter()
                .enumerate()
                .fold(
                    (0, f64::INFINITY),
                    |best, (s, &l)| if l < best.1 { (s, l) } else { best },
                );
            load[s] += costs[c];
            mine[c] = s + 1 == self.index;
        }
        cfgs.iter()
            .zip(mine)
            .filter(|(_, m)| *m)
            .map(|(c, _)| c.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_expand_in_a_stable_order() {
        let s = SweepSpec::from_json(
            r#"{"placement": ["pre", "post"], "depth": [2, 3], "width": 16, "heads": 2}"#,
        )
        .unwrap();
        let c = s.expand().unwrap();
        let got: Vec<(String, usize)> = c
            .iter()
            .map(|c| (c.model.placement.to_string(), c.model.depth))
            .collect();
        // Fields alphabetical (depth, heads, placement, width), last fastest.
        let want = [("pre", 2), ("post", 2), ("pre", 3), ("post", 3)];
        assert_eq!(got.len(), 4);
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0.as_str(), g.1), w);
        }
    }

    #[test]
    fn duplicates_and_arrays() {
        let s = SweepSpec::from_json(
            r#"[{"placement": "span", "scale": ["sqrt-depth", "sqrt-depth"], "depth": 2},
                {"placement": "span", "depth": 2, "inner-norm": true}]"#,
        )
        .unwrap();
        assert_eq!(s.expand().unwrap().len(), 2);
    }

    #[test]
    fn errors_name_the_field() {
        for (json, needle) in [
            (r#"{"placement": "pre", "depth": []}"#, "depth: empty list"),
            (
                r#"{"placement": "pre", "depht": 3}"#,
                "depht: unknown field",
            ),
            (r#"{"placement": "pre", "depth": ["x"]}"#, "depth"),
            (r#"{"placement": "pre", "depth": [0]}"#, "depth"),
            (r#"[{"placement": "pre"}, {"layers": 2}]"#, "[1].layers"),
            (r#"[]"#, "empty array"),
            (r#"3"#, "expected an object"),
        ] {
            let e = SweepSpec::from_json(json)
                .and_then(|s| s.expand())
                .unwrap_err();
            let e = e.to_string();
            assert!(e.contains(needle), "{json}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn shards_partition_the_sweep() {
        let s = SweepSpec::from_json(
            r#"{"placement": "all", "depth": [2, 3, 5], "width": 16, "heads": 2}"#,
        )
        .unwrap();
        let all = s.expand().unwrap();
        let mut names: Vec<String> = Vec::new();
        for i in 1..=4 {
            let part = Shard { index: i, count: 4 }.select(&all);
            assert!(!part.is_empty());
            names.extend(part.iter().map(file_name));
        }
        names.sort();
        let mut want: Vec<String> = all.iter().map(file_name).collect();
        want.sort();
        assert_eq!(names, want);
        for bad in ["3/2", "0/0", "0/3", "1", "a/b", "1/0", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(
            "2/8".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 8 }
        );
    }
}
