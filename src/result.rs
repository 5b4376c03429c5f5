//! The result schema: one type, written and read back by every command (`simulate`,
//! `theory`, `sweep`, `check`, `plot`, `merge`). Field by field in `analysis/schema.md`.
//!
//! A [`Document`] is `{"schema": 1, "crate": "spannorm", "version": …, "engine": …,
//! "results": [RunResult, …]}`, one [`RunResult`] per configuration. Every series entry is a
//! mean with its interval and its number of seeds `n`, or absent with a stated reason
//! ([`crate::summary::Reason`]); [`RunResult::holes`] lists any entry that is not, so a
//! consumer (or a test) can verify a file has no silent gaps.
//!
//! # Versions
//! Files written before the `missing`, `per_seed` and divergence `reason` fields existed
//! load unchanged (the fields default to empty); files without `engine` are revision 0.
//! [`Document::from_json`] is the one place an older layout would be migrated.

use crate::config::RawConfig;
use crate::metrics::SeedRecord;
use crate::stack::{Failure, Pass};
use crate::summary::{Reason, Series};
use crate::weight::WeightName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Revision of the simulation's numbers. Bump it with any change that alters a simulated
/// value (summation order, random streams, a metric's definition): cached results carry it,
/// and `sweep`, `reproduce` and `check --cache` recompute files of another revision instead
/// of reusing them. Files written before the field existed read as revision 0, which they
/// are.
pub const ENGINE: u32 = 1;

/// Version of the JSON layout; bumped on any incompatible change.
pub const SCHEMA: u32 = 1;

/// Where a result's numbers come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Measured on simulated stacks, summarized over seeds.
    Simulation,
    /// Predicted by mean-field theory (no seeds: `lo`, `hi` null, `n` 0).
    Theory,
}

/// A seed whose run stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedDivergence {
    /// Seed index (`0..seeds`).
    pub seed: usize,
    /// The block where it stopped.
    pub block: usize,
    /// The pass that found it.
    pub pass: Pass,
    /// Non-finite (not written) or vanished.
    #[serde(default, skip_serializing_if = "Failure::is_non_finite")]
    pub reason: Failure,
}

impl std::fmt::Display for SeedDivergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pass = match self.pass {
            Pass::Forward => "forward",
            Pass::Backward => "backward",
        };
        match self.reason {
            Failure::NonFinite => write!(
                f,
                "seed {} diverged at block {} ({pass})",
                self.seed, self.block
            ),
            Failure::Vanished => write!(
                f,
                "seed {}: signal vanished at block {} ({pass}; exactly zero)",
                self.seed, self.block
            ),
        }
    }
}

/// Metrics at block boundaries `l = 0..L`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Boundaries {
    /// `[0, 1, …, L]`.
    pub l: Vec<usize>,
    /// Second moment of the residual stream.
    pub q: Series,
    /// `log10 ‖∂ℓ/∂X_l‖_F`.
    pub log10_grad: Series,
    /// `‖∂ℓ/∂X_l‖_F`, mean of the linear values (can underflow to 0 or overflow where
    /// `log10_grad` cannot).
    pub grad: Series,
    /// Mean cosine between distinct tokens.
    pub token_cos: Series,
    /// Effective rank (Roy & Vetterli 2007).
    pub eff_rank: Series,
    /// Stable rank.
    pub stable_rank: Series,
    /// Distance from rank one (Dong et al. 2021).
    pub rank1_residual: Series,
}

/// Second moments of the sublayer outputs, per block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BranchQ {
    /// Attention output.
    pub attn: Series,
    /// Feed-forward output.
    pub ffn: Series,
}

/// Metrics per block `l = 1..L`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Blocks {
    /// `[1, …, L]`.
    pub l: Vec<usize>,
    /// The branch scale `α_l` of each block.
    pub alpha: Vec<f64>,
    /// Mean over tokens of `cos(x_{l-1,i}, x_{l,i})`.
    pub adj_cos: Series,
    /// Second moment of the sum entering the closing norm.
    pub q_pre_norm: Series,
    /// Sublayer output second moments.
    pub branch_q: BranchQ,
    /// `log10 ‖∂ℓ/∂W‖_F` per weight.
    pub log10_param_grad: BTreeMap<WeightName, Series>,
    /// `‖∂ℓ/∂W‖_F` per weight.
    pub param_grad: BTreeMap<WeightName, Series>,
}

/// One configuration's results, summarized over its seeds (or predicted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Simulation or theory.
    pub source: Source,
    /// The resolved configuration, every default explicit.
    pub config: RawConfig,
    /// Seeds that stopped early.
    pub diverged: Vec<SeedDivergence>,
    /// The loss `ℓ` (one value per seed, summarized).
    pub loss: Series,
    /// Per-boundary metrics.
    pub boundaries: Boundaries,
    /// Per-block metrics.
    pub blocks: Blocks,
    /// Every seed's own values (`simulate --per-seed`), for statistics the means cannot
    /// give (a per-seed ratio, a slope's spread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_seed: Option<Vec<SeedRecord>>,
}

/// One per-layer quantity of a result, spelled as in the JSON and the CSV (`q`,
/// `branch_q.attn`, `log10_param_grad.ffn.w_2`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// The loss `ℓ` (one entry).
    Loss,
    /// Second moment of the residual stream, per boundary.
    Q,
    /// `log10 ‖∂ℓ/∂X_l‖_F`, per boundary.
    Log10Grad,
    /// `‖∂ℓ/∂X_l‖_F`, per boundary.
    Grad,
    /// Mean cosine between distinct tokens, per boundary.
    TokenCos,
    /// Effective rank, per boundary.
    EffRank,
    /// Stable rank, per boundary.
    StableRank,
    /// Distance from rank one, per boundary.
    Rank1Residual,
    /// Cosine between a block's input and output, per block.
    AdjCos,
    /// Second moment entering the closing norm, per block.
    QPreNorm,
    /// Second moment of the attention output, per block.
    BranchQAttn,
    /// Second moment of the feed-forward output, per block.
    BranchQFfn,
    /// `log10 ‖∂ℓ/∂W‖_F` of one weight, per block.
    Log10ParamGrad(WeightName),
    /// `‖∂ℓ/∂W‖_F` of one weight, per block.
    ParamGrad(WeightName),
}

/// What a metric's entries are indexed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Along {
    /// One entry (the loss).
    Scalar,
    /// Block boundaries `l = 0..=L`.
    Boundaries,
    /// Blocks `l = 1..=L` (entry `l − 1`).
    Blocks,
}

impl Metric {
    /// The metrics that do not name a weight, in the CSV's order.
    pub const PLAIN: [Metric; 12] = [
        Metric::Loss,
        Metric::Q,
        Metric::Log10Grad,
        Metric::Grad,
        Metric::TokenCos,
        Metric::EffRank,
        Metric::StableRank,
        Metric::Rank1Residual,
        Metric::AdjCos,
        Metric::QPreNorm,
        Metric::BranchQAttn,
        Metric::BranchQFfn,
    ];

    /// What the entries are indexed by.
    pub fn along(self) -> Along {
        match self {
            Metric::Loss => Along::Scalar,
            Metric::Q
            | Metric::Log10Grad
            | Metric::Grad
            | Metric::TokenCos
            | Metric::EffRank
            | Metric::StableRank
            | Metric::Rank1Residual => Along::Boundaries,
            _ => Along::Blocks,
        }
    }

    /// Whether the metric is a `log10` (so slopes and bounds are in decades).
    pub fn is_log(self) -> bool {
        matches!(self, Metric::Log10Grad | Metric::Log10ParamGrad(_))
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Metric::Loss => "loss",
            Metric::Q => "q",
            Metric::Log10Grad => "log10_grad",
            Metric::Grad => "grad",
            Metric::TokenCos => "token_cos",
            Metric::EffRank => "eff_rank",
            Metric::StableRank => "stable_rank",
            Metric::Rank1Residual => "rank1_residual",
            Metric::AdjCos => "adj_cos",
            Metric::QPreNorm => "q_pre_norm",
            Metric::BranchQAttn => "branch_q.attn",
            Metric::BranchQFfn => "branch_q.ffn",
            Metric::Log10ParamGrad(w) => return write!(f, "log10_param_grad.{w}"),
            Metric::ParamGrad(w) => return write!(f, "param_grad.{w}"),
        };
        f.write_str(s)
    }
}

impl std::str::FromStr for Metric {
    type Err = crate::error::ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(m) = Metric::PLAIN.iter().find(|m| m.to_string() == s) {
            return Ok(*m);
        }
        let weight = |rest: &str| rest.parse::<WeightName>().ok();
        if let Some(w) = s.strip_prefix("log10_param_grad.").and_then(weight) {
            return Ok(Metric::Log10ParamGrad(w));
        }
        if let Some(w) = s.strip_prefix("param_grad.").and_then(weight) {
            return Ok(Metric::ParamGrad(w));
        }
        let plain: Vec<String> = Metric::PLAIN.iter().map(|m| m.to_string()).collect();
        Err(crate::error::ConfigError::UnknownValue {
            field: "metric",
            value: crate::error::cut(s),
            allowed: format!(
                "{}, log10_param_grad.WEIGHT, param_grad.WEIGHT (WEIGHT: attn.w_q, …, moe.w_g)",
                plain.join(", ")
            ),
        })
    }
}

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: crate::error::ConfigError| serde::de::Error::custom(e.reason()))
    }
}

impl SeedRecord {
    /// One seed's values of `m` (`None` where the seed has none; linear gradients as
    /// `10^log10`, an exactly-zero weight gradient as 0), or `None` for a weight the record
    /// does not have.
    pub fn values(&self, m: Metric) -> Option<Vec<Option<f64>>> {
        let linear = |v: &[Option<f64>]| -> Vec<Option<f64>> {
            v.iter().map(|x| x.map(|x| 10f64.powf(x))).collect()
        };
        let weight = |w: WeightName| {
            self.log10_param_grad
                .iter()
                .find(|(n, _)| *n == w)
                .map(|(_, v)| v)
        };
        Some(match m {
            Metric::Loss => vec![self.loss],
            Metric::Q => self.q.clone(),
            Metric::Log10Grad => self.log10_grad.clone(),
            Metric::Grad => linear(&self.log10_grad),
            Metric::TokenCos => self.token_cos.clone(),
            Metric::EffRank => self.eff_rank.clone(),
            Metric::StableRank => self.stable_rank.clone(),
            Metric::Rank1Residual => self.rank1_residual.clone(),
            Metric::AdjCos => self.adj_cos.clone(),
            Metric::QPreNorm => self.q_pre_norm.clone(),
            Metric::BranchQAttn => self.branch_q_attn.clone(),
            Metric::BranchQFfn => self.branch_q_ffn.clone(),
            Metric::Log10ParamGrad(w) => weight(w)?.clone(),
            Metric::ParamGrad(w) => {
                let v = weight(w)?;
                v.iter()
                    .enumerate()
                    .map(|(i, x)| match x {
                        Some(x) => Some(10f64.powf(*x)),
                        // Reached but absent: the gradient is exactly zero.
                        None if self.reached(crate::metrics::Entry::ParamGrad, i) => Some(0.0),
                        None => None,
                    })
                    .collect()
            }
        })
    }
}

/// An entry of a result that is neither a value nor explained: what
/// [`RunResult::holes`] reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Hole {
    /// The series, as in the CSV (`boundaries.q`, `log10_param_grad.attn.w_q`, ...).
    pub series: String,
    /// The entry.
    pub index: usize,
    /// What is wrong.
    pub what: String,
}

impl RunResult {
    /// Depth `L` of the stack.
    pub fn depth(&self) -> usize {
        self.boundaries.l.len().saturating_sub(1)
    }

    /// Seeds the result was computed with (0 for a prediction).
    pub fn seeds(&self) -> usize {
        match self.source {
            Source::Theory => 0,
            Source::Simulation => self.config.seeds.unwrap_or(0),
        }
    }

    /// The series of `m`, or `None` for a weight this result does not have.
    pub fn get(&self, m: Metric) -> Option<&Series> {
        let b = &self.boundaries;
        let k = &self.blocks;
        Some(match m {
            Metric::Loss => &self.loss,
            Metric::Q => &b.q,
            Metric::Log10Grad => &b.log10_grad,
            Metric::Grad => &b.grad,
            Metric::TokenCos => &b.token_cos,
            Metric::EffRank => &b.eff_rank,
            Metric::StableRank => &b.stable_rank,
            Metric::Rank1Residual => &b.rank1_residual,
            Metric::AdjCos => &k.adj_cos,
            Metric::QPreNorm => &k.q_pre_norm,
            Metric::BranchQAttn => &k.branch_q.attn,
            Metric::BranchQFfn => &k.branch_q.ffn,
            Metric::Log10ParamGrad(w) => k.log10_param_grad.get(&w)?,
            Metric::ParamGrad(w) => k.param_grad.get(&w)?,
        })
    }

    /// The layer index `l` of entry `i` of metric `m` (`None` for the loss).
    pub fn layer(&self, m: Metric, i: usize) -> Option<usize> {
        match m.along() {
            Along::Scalar => None,
            Along::Boundaries => self.boundaries.l.get(i).copied(),
            Along::Blocks => self.blocks.l.get(i).copied(),
        }
    }

    /// Every metric this result has, in the CSV's order (loss first, then the plain ones,
    /// then the weights' `log10` and linear gradients).
    pub fn metrics(&self) -> Vec<Metric> {
        let mut v = Metric::PLAIN.to_vec();
        v.extend(
            self.blocks
                .log10_param_grad
                .keys()
                .map(|&w| Metric::Log10ParamGrad(w)),
        );
        v.extend(self.blocks.param_grad.keys().map(|&w| Metric::ParamGrad(w)));
        v
    }

    /// Every series with its metric, in [`RunResult::metrics`] order.
    pub fn series(&self) -> Vec<(Metric, &Series)> {
        self.metrics()
            .into_iter()
            .filter_map(|m| Some((m, self.get(m)?)))
            .collect()
    }

    /// Entries that are neither a finite value nor explained by a `missing` run: `null`
    /// means without a reason, fewer seeds than the run had without a reason for each,
    /// `null` intervals with two or more seeds without `interval-overflow`, non-finite
    /// numbers, lengths that do not match the depth. Empty for every result this crate
    /// writes (the fuzz tests hold it to that).
    pub fn holes(&self) -> Vec<Hole> {
        let mut out = Vec::new();
        let seeds = self.seeds();
        let depth = self.depth();
        for (metric, s) in self.series() {
            let want = match metric.along() {
                Along::Scalar => 1,
                Along::Boundaries => depth + 1,
                Along::Blocks => depth,
            };
            let mut hole = |index: usize, what: String| {
                out.push(Hole {
                    series: metric.to_string(),
                    index,
                    what,
                })
            };
            let lens = [s.mean.len(), s.lo.len(), s.hi.len(), s.n.len()];
            if lens != [want; 4] {
                let [m, lo, hi, n] = lens;
                hole(
                    0,
                    format!("lengths mean/lo/hi/n {m}/{lo}/{hi}/{n}, expected {want}"),
                );
                continue;
            }
            for i in 0..want {
                let absent = s.absent_at(i);
                let explained: usize = absent
                    .iter()
                    .filter(|(r, _)| *r != Reason::IntervalOverflow)
                    .map(|(_, c)| c)
                    .sum();
                let values = [s.mean[i], s.lo[i], s.hi[i]];
                if values.iter().flatten().any(|v| !v.is_finite()) {
                    hole(i, "a non-finite number".into());
                }
                match self.source {
                    Source::Simulation => {
                        if s.n[i] + explained != seeds {
                            hole(
                                i,
                                format!(
                                    "{} of {seeds} seeds, {explained} absent with a reason",
                                    s.n[i]
                                ),
                            );
                        }
                        if (s.mean[i].is_some()) != (s.n[i] > 0) {
                            hole(i, format!("mean {:?} with n = {}", s.mean[i], s.n[i]));
                        }
                        let interval = s.lo[i].is_some() && s.hi[i].is_some();
                        let overflow = absent.iter().any(|(r, _)| *r == Reason::IntervalOverflow);
                        if s.n[i] >= 2 && !interval && !overflow {
                            hole(i, "no interval with two or more seeds".into());
                        }
                    }
                    Source::Theory => {
                        if s.mean[i].is_none() && absent.is_empty() {
                            hole(i, "no prediction and no reason".into());
                        }
                    }
                }
            }
        }
        out
    }
}

/// The whole JSON document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// [`SCHEMA`].
    pub schema: u32,
    /// `"spannorm"`.
    #[serde(rename = "crate")]
    pub crate_name: String,
    /// The crate version that wrote the file.
    pub version: String,
    /// [`ENGINE`]: which revision of the simulation produced the numbers.
    #[serde(default)]
    pub engine: u32,
    /// One result per configuration.
    pub results: Vec<RunResult>,
}

impl Document {
    /// A document of `results` by this build.
    pub fn new(results: Vec<RunResult>) -> Document {
        Document {
            schema: SCHEMA,
            crate_name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            engine: ENGINE,
            results,
        }
    }

    /// Pretty JSON, newline-terminated.
    pub fn to_json(&self) -> Result<String, crate::error::OutputError> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// Reads a document (any schema this build knows; see the module docs).
    pub fn from_json(text: &str) -> Result<Document, String> {
        #[derive(Deserialize)]
        struct Head {
            schema: u32,
        }
        let head: Head = serde_json::from_str(text)
            .map_err(|e| crate::error::cut_to(&e.to_string(), crate::error::MAX_MESSAGE))?;
        if head.schema != SCHEMA {
            return Err(format!(
                "schema {} (this build reads schema {SCHEMA})",
                head.schema
            ));
        }
        serde_json::from_str(text)
            .map_err(|e| crate::error::cut_to(&e.to_string(), crate::error::MAX_MESSAGE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;
    use crate::init::Init;
    use crate::placement::Placement;
    use crate::simulate::{simulate, Options};
    use crate::stack::Divergence;
    use crate::summary::Missing;

    /// Depth 2, three seeds: small enough to build in milliseconds, with every series.
    fn config() -> SimConfig {
        SimConfig::builder()
            .placement(Placement::Pre)
            .depth(2)
            .width(8)
            .tokens(4)
            .heads(2)
            .seeds(3)
            .init(Init::ZeroQuery)
            .build()
            .unwrap()
    }

    fn simulated() -> RunResult {
        simulate(&[config()], &Options::default())
            .unwrap()
            .remove(0)
    }

    /// `seeds` absent at entry `at` for `reason`.
    fn missing(at: usize, seeds: usize, reason: Reason) -> Missing {
        Missing {
            from: at,
            to: at,
            seeds,
            reason,
        }
    }

    #[test]
    fn every_metric_spells_and_parses_back() {
        let r = simulated();
        let all = r.metrics();
        // 12 plain metrics, then the seven dense weights twice (log10 and linear).
        assert_eq!(all.len(), 12 + 2 * 6, "{all:?}");
        assert_eq!(&all[..12], &Metric::PLAIN);
        assert_eq!(all[12], Metric::Log10ParamGrad(WeightName::AttnK));
        assert_eq!(all[18], Metric::ParamGrad(WeightName::AttnK));
        for m in all {
            let s = m.to_string();
            assert_eq!(s.parse::<Metric>().unwrap(), m, "{s}");
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<Metric>(&json).unwrap(), m);
        }
        assert_eq!(Metric::BranchQAttn.to_string(), "branch_q.attn");
        assert_eq!(
            Metric::ParamGrad(WeightName::FfnW2).to_string(),
            "param_grad.ffn.w_2"
        );
        let e = "log10_param_grad.ffn.w_9".parse::<Metric>().unwrap_err();
        assert!(e.to_string().contains("param_grad.WEIGHT"), "{e}");
        assert!(serde_json::from_str::<Metric>("\"qq\"").is_err());
    }

    #[test]
    fn what_each_metric_is_indexed_by() {
        let r = simulated();
        for m in r.metrics() {
            let (want, len) = match m {
                Metric::Loss => (Along::Scalar, 1),
                Metric::Q
                | Metric::Log10Grad
                | Metric::Grad
                | Metric::TokenCos
                | Metric::EffRank
                | Metric::StableRank
                | Metric::Rank1Residual => (Along::Boundaries, 3),
                _ => (Along::Blocks, 2),
            };
            assert_eq!(m.along(), want, "{m}");
            assert_eq!(r.get(m).unwrap().len(), len, "{m}");
            let log = matches!(m, Metric::Log10Grad | Metric::Log10ParamGrad(_));
            assert_eq!(m.is_log(), log, "{m}");
        }
        assert_eq!(r.layer(Metric::Loss, 0), None);
        assert_eq!(r.layer(Metric::Q, 0), Some(0));
        assert_eq!(r.layer(Metric::Q, 2), Some(2));
        assert_eq!(r.layer(Metric::AdjCos, 0), Some(1));
        assert_eq!(r.layer(Metric::AdjCos, 2), None);
        assert_eq!(r.depth(), 2);
        assert_eq!(r.seeds(), 3);
    }

    #[test]
    fn get_returns_the_named_field() {
        let r = simulated();
        let b = &r.boundaries;
        let k = &r.blocks;
        let pairs: [(Metric, &Series); 12] = [
            (Metric::Loss, &r.loss),
            (Metric::Q, &b.q),
            (Metric::Log10Grad, &b.log10_grad),
            (Metric::Grad, &b.grad),
            (Metric::TokenCos, &b.token_cos),
            (Metric::EffRank, &b.eff_rank),
            (Metric::StableRank, &b.stable_rank),
            (Metric::Rank1Residual, &b.rank1_residual),
            (Metric::AdjCos, &k.adj_cos),
            (Metric::QPreNorm, &k.q_pre_norm),
            (Metric::BranchQAttn, &k.branch_q.attn),
            (Metric::BranchQFfn, &k.branch_q.ffn),
        ];
        for (m, s) in pairs {
            assert!(std::ptr::eq(r.get(m).unwrap(), s), "{m}");
        }
        let w = WeightName::FfnW1;
        assert!(std::ptr::eq(
            r.get(Metric::ParamGrad(w)).unwrap(),
            &k.param_grad[&w]
        ));
        assert!(std::ptr::eq(
            r.get(Metric::Log10ParamGrad(w)).unwrap(),
            &k.log10_param_grad[&w]
        ));
        // A dense block has no router.
        assert!(r.get(Metric::ParamGrad(WeightName::MoeWr)).is_none());
        assert_eq!(r.series().len(), r.metrics().len());
    }

    #[test]
    fn holes_names_every_unexplained_entry() {
        let clean = simulated();
        assert!(clean.holes().is_empty(), "{:?}", clean.holes());
        let one = |edit: &dyn Fn(&mut RunResult)| {
            let mut r = clean.clone();
            edit(&mut r);
            let h = r.holes();
            assert_eq!(h.len(), 1, "{h:?}");
            h.into_iter().next().unwrap()
        };
        let h = one(&|r| r.boundaries.q.mean[1] = Some(f64::INFINITY));
        assert_eq!((h.series.as_str(), h.index), ("q", 1));
        assert_eq!(h.what, "a non-finite number");
        let h = one(&|r| r.blocks.adj_cos.hi[0] = Some(f64::NAN));
        assert_eq!((h.series.as_str(), h.index), ("adj_cos", 0));
        let h = one(&|r| r.boundaries.token_cos.n[2] = 2);
        assert_eq!((h.series.as_str(), h.index), ("token_cos", 2));
        assert_eq!(h.what, "2 of 3 seeds, 0 absent with a reason");
        // The same seed explained is no hole, whatever the reason but an interval's.
        let mut r = clean.clone();
        r.boundaries.token_cos.n[2] = 2;
        r.boundaries
            .token_cos
            .missing
            .push(missing(2, 1, Reason::Diverged));
        assert!(r.holes().is_empty(), "{:?}", r.holes());
        r.boundaries.token_cos.missing[0].reason = Reason::IntervalOverflow;
        assert_eq!(r.holes().len(), 1);
        let h = one(&|r| r.loss.mean[0] = None);
        assert_eq!((h.series.as_str(), h.index), ("loss", 0));
        assert_eq!(h.what, "mean None with n = 3");
        let h = one(&|r| r.boundaries.eff_rank.lo[0] = None);
        assert_eq!(h.what, "no interval with two or more seeds");
        // An interval that overflowed, said so, is no hole.
        let mut r = clean.clone();
        r.boundaries.eff_rank.lo[0] = None;
        r.boundaries
            .eff_rank
            .missing
            .push(missing(0, 0, Reason::IntervalOverflow));
        assert!(r.holes().is_empty(), "{:?}", r.holes());
        let h = one(&|r| {
            r.blocks.branch_q.ffn.mean.pop();
        });
        assert_eq!(h.series, "branch_q.ffn");
        assert_eq!(h.what, "lengths mean/lo/hi/n 1/2/2/2, expected 2");
        // Every array must have the depth's length, not only the means.
        let h = one(&|r| {
            r.boundaries.grad.n.pop();
        });
        assert_eq!(h.what, "lengths mean/lo/hi/n 3/3/3/2, expected 3");
    }

    #[test]
    fn a_prediction_needs_a_value_or_a_reason() {
        let th = crate::theory::predict(&config()).unwrap();
        assert_eq!(th.seeds(), 0);
        assert!(th.holes().is_empty(), "{:?}", th.holes());
        let mut r = th.clone();
        r.boundaries.q.mean[1] = None;
        let h = r.holes();
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[0].what, "no prediction and no reason");
        r.boundaries
            .q
            .missing
            .push(missing(1, 0, Reason::NotPredicted));
        assert!(r.holes().is_empty());
    }

    #[test]
    fn a_seed_record_gives_linear_values_and_zero_gradients() {
        let w = WeightName::AttnK;
        let mut rec = SeedRecord {
            log10_grad: vec![Some(1.0), Some(-2.0), None],
            log10_param_grad: vec![(w, vec![Some(0.5), None])],
            loss: Some(4.0),
            ..SeedRecord::default()
        };
        assert_eq!(rec.values(Metric::Loss), Some(vec![Some(4.0)]));
        assert_eq!(
            rec.values(Metric::Grad),
            Some(vec![Some(10.0), Some(0.01), None])
        );
        let lin = rec.values(Metric::ParamGrad(w)).unwrap();
        assert!((lin[0].unwrap() - 10f64.sqrt()).abs() < 1e-12);
        // Reached and absent: exactly zero.
        assert_eq!(lin[1], Some(0.0));
        assert_eq!(
            rec.values(Metric::Log10ParamGrad(w)),
            Some(vec![Some(0.5), None])
        );
        assert_eq!(rec.values(Metric::ParamGrad(WeightName::AttnQ)), None);
        // A forward divergence at block 1: no weight gradient was reached.
        rec.diverged = Some(Divergence {
            block: 1,
            pass: Pass::Forward,
            reason: Failure::NonFinite,
        });
        assert_eq!(
            rec.values(Metric::ParamGrad(w)).unwrap()[1],
            None,
            "an unreached gradient is not zero"
        );
    }

    #[test]
    fn documents_read_back_and_refuse_other_schemas() {
        let doc = Document::new(vec![simulated()]);
        let text = doc.to_json().unwrap();
        assert!(text.ends_with("}\n"));
        assert_eq!(Document::from_json(&text).unwrap(), doc);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["crate"], "spannorm");
        assert_eq!(v["engine"], ENGINE);
        let other = text.replacen("\"schema\": 1", "\"schema\": 2", 1);
        assert_eq!(
            Document::from_json(&other).unwrap_err(),
            format!("schema 2 (this build reads schema {SCHEMA})")
        );
        let old = text.replacen(&format!("\"engine\": {ENGINE},"), "", 1);
        assert_eq!(Document::from_json(&old).unwrap().engine, 0);
        assert!(Document::from_json("{\"schema\": 1}").is_err());
        assert!(Document::from_json("[]").is_err());
    }

    #[test]
    fn divergences_say_what_stopped() {
        let mut d = SeedDivergence {
            seed: 2,
            block: 7,
            pass: Pass::Backward,
            reason: Failure::NonFinite,
        };
        assert_eq!(d.to_string(), "seed 2 diverged at block 7 (backward)");
        d.pass = Pass::Forward;
        d.reason = Failure::Vanished;
        assert_eq!(
            d.to_string(),
            "seed 2: signal vanished at block 7 (forward; exactly zero)"
        );
        let json = serde_json::to_value(d).unwrap();
        assert_eq!(json["reason"], "vanished");
        d.reason = Failure::NonFinite;
        assert!(serde_json::to_value(d).unwrap().get("reason").is_none());
    }
}
