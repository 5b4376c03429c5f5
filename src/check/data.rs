//! Claims written as data: a claims file (`check --claims FILE`, documented in
//! `analysis/claims.md`, with `analysis/claims.schema.json` beside it) is a list of claims,
//! each a configuration (or a sweep), a quantity, where to read it, and an assertion.
//!
//! ```json
//! {"claims": [
//!   {"name": "lns keeps its gradient", "config": {"placement": "lns", "depth": 128, "width": 128},
//!    "metric": "log10_grad_ratio", "op": ">=", "value": -1},
//!   {"name": "span's q stays below 1.1", "sweep": {"placement": "span", "depth": [16, 64]},
//!    "metric": "q", "at": "all", "op": "<=", "value": 1.1}
//! ]}
//! ```
//!
//! - `metric`: any per-layer quantity of the results ([`Metric`]: `q`, `token_cos`,
//!   `branch_q.attn`, `log10_param_grad.ffn.w_2`, ...), `loss`, or `log10_grad_ratio`
//!   (`log10 grad_0 − log10 grad_L`, per seed).
//! - `at`: `final` (default), `max`, `min`, `layer:K`, `all` (every layer), or a slope:
//!   `slope:depth`, `slope:width` (over the configurations of a sweep that differ only in
//!   that field, of the value at `final`), `slope:layer` (over the layers of each
//!   configuration, or `layers: [from, to]`). Slopes are least-squares: against `log10` of
//!   depth or width (of `log10` of the value for positive quantities, of the value itself for
//!   logarithms and cosines), against `l` for layers; each seed gets its own slope.
//! - `op`: `<=`, `>=`, `within` (`value: [lo, hi]`), or `~theory` (the mean-field
//!   prediction, under the tolerance policy of the built-in checks, [`super::tol`]).
//!
//! # Statistics
//! Every value is a mean over seeds with its Student-t 95% interval (per-seed slopes for
//! slopes). A bound is PASS when the interval lies on the right side of it, FAIL when it
//! lies on the wrong side, INCONCLUSIVE when it straddles it (`--strict` counts that as a
//! failure). `all`, `max` and `min` read `k` entries, so their intervals use the Bonferroni
//! quantile `t_{1 − 0.025/k}`: the claim is one 95% statement, not `k` of them. A seed that
//! stopped before an entry makes that entry FAIL (missing data never passes); entries where
//! the quantity does not exist (`q_pre_norm` without a closing norm) are skipped. `~theory`
//! is judged like the built-in curves: not refuted beyond the seed interval plus the
//! mean-field bias allowance `C_B m / d`.

use super::curves::{compare, Cmp};
use super::tol::{self, Kind};
use super::verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
use super::{Claim, Evidence, Group, Run, Verdict};
use crate::config::{Field, RawConfig, SimConfig};
use crate::error::cut;
use crate::fit;
use crate::result::{Along, Metric, RunResult};
use crate::sweep::SweepSpec;
use serde_json::Value;

/// A malformed claims file: which claim and which field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {what}")]
pub struct ClaimsError {
    /// The file (or `<json>`).
    pub file: String,
    /// The claim, the field and what is wrong.
    pub what: String,
}

/// The quantity a claim reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// A per-layer quantity of the results.
    Metric(Metric),
    /// `log10 grad_0 − log10 grad_L`, per seed.
    Log10GradRatio,
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quantity::Metric(m) => write!(f, "{m}"),
            Quantity::Log10GradRatio => f.write_str("log10_grad_ratio"),
        }
    }
}

impl Quantity {
    /// Whether the quantity is positive by nature (so slopes over depth or width are
    /// log-log): second moments, norms and ranks; not logarithms, cosines or the loss.
    fn positive(self) -> bool {
        match self {
            Quantity::Log10GradRatio => false,
            Quantity::Metric(m) => !matches!(
                m,
                Metric::Loss
                    | Metric::Log10Grad
                    | Metric::Log10ParamGrad(_)
                    | Metric::TokenCos
                    | Metric::AdjCos
            ),
        }
    }

    /// How the quantity carries the mean-field bias ([`tol::Kind`]).
    fn kind(self) -> Kind {
        match self {
            Quantity::Log10GradRatio => Kind::LogGrad,
            Quantity::Metric(m) => match m {
                Metric::Log10Grad | Metric::Log10ParamGrad(_) => Kind::LogGrad,
                Metric::TokenCos | Metric::AdjCos | Metric::Rank1Residual | Metric::Loss => {
                    Kind::Absolute
                }
                _ => Kind::Relative,
            },
        }
    }
}

/// What a slope runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlopeAxis {
    /// Depth `L`, across configurations.
    Depth,
    /// Width `d`, across configurations.
    Width,
    /// The layers of one configuration.
    Layer,
}

/// Where a claim reads its quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// The last entry.
    Final,
    /// The entry with the largest seed mean.
    Max,
    /// The entry with the smallest seed mean.
    Min,
    /// Layer `K` (boundary `K`, or block `K`).
    Layer(usize),
    /// Every entry.
    All,
    /// A slope.
    Slope(SlopeAxis),
}

/// The assertion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// At most the value.
    AtMost(f64),
    /// At least the value.
    AtLeast(f64),
    /// Between the two values.
    Within(f64, f64),
    /// Equal to the mean-field prediction within the built-in tolerance.
    Theory,
}

/// One claim of a claims file.
#[derive(Clone, Debug)]
pub struct DataClaim {
    group: Group,
    name: String,
    statement: Option<String>,
    formula: Option<String>,
    cfgs: Vec<SimConfig>,
    quantity: Quantity,
    at: At,
    layers: Option<(usize, usize)>,
    op: Op,
}

/// The claims of a claims file's text (`file` names it in errors); `group` is the group of
/// claims that do not name one.
pub fn parse(text: &str, file: &str, group: Group) -> Result<Vec<DataClaim>, ClaimsError> {
    let err = |what: String| ClaimsError {
        file: file.to_string(),
        what,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let v: Value = serde::Deserialize::deserialize(&mut de).map_err(|e| {
        err(crate::error::cut_to(
            &e.to_string(),
            crate::error::MAX_MESSAGE,
        ))
    })?;
    de.end()
        .map_err(|e| err(format!("text after the claims ({e})")))?;
    let list = match v {
        Value::Array(a) => a,
        Value::Object(mut m) => match m.remove("claims") {
            Some(Value::Array(a)) if m.is_empty() => a,
            Some(_) if m.is_empty() => return Err(err("claims: expected a list of claims".into())),
            _ => {
                let extra: Vec<String> = m.keys().filter(|k| *k != "claims").cloned().collect();
                return Err(err(if extra.is_empty() {
                    "expected {\"claims\": [...]} or a list of claims".into()
                } else {
                    format!("unknown field '{}' (allowed: claims)", cut(&extra[0]))
                }));
            }
        },
        _ => {
            return Err(err(
                "expected {\"claims\": [...]} or a list of claims".into()
            ))
        }
    };
    if list.is_empty() {
        return Err(err("no claims".into()));
    }
    list.into_iter()
        .enumerate()
        .map(|(i, c)| parse_one(c, group).map_err(|what| err(format!("claim {}{what}", i + 1))))
        .collect()
}

/// Reads a claims file.
pub fn from_file(path: &std::path::Path, group: Group) -> Result<Vec<DataClaim>, ClaimsError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ClaimsError {
        file: file.clone(),
        what: crate::error::io_reason(&e),
    })?;
    parse(&text, &file, group)
}

const FIELDS: [&str; 10] = [
    "name",
    "group",
    "statement",
    "formula",
    "config",
    "sweep",
    "metric",
    "at",
    "layers",
    "op",
];

fn parse_one(c: Value, default_group: Group) -> Result<DataClaim, String> {
    let Value::Object(mut m) = c else {
        return Err(": expected an object".into());
    };
    let name = match m.remove("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        Some(_) => return Err(": name: expected a non-empty string".into()),
        None => return Err(": name: required".into()),
    };
    let at_name = |what: String| format!(" (\"{}\"): {what}", cut(&name));
    let value = m.remove("value");
    for k in m.keys() {
        if !FIELDS.contains(&k.as_str()) {
            return Err(at_name(format!(
                "{}: unknown field (allowed: {}, value)",
                cut(k),
                FIELDS.join(", ")
            )));
        }
    }
    let text =
        |m: &mut serde_json::Map<String, Value>, f: &str| -> Result<Option<String>, String> {
            match m.remove(f) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(at_name(format!("{f}: expected a string"))),
            }
        };
    let group = match text(&mut m, "group")? {
        None => default_group,
        Some(g) => g
            .parse::<Group>()
            .map_err(|e| at_name(format!("group: {}", e.reason())))?,
    };
    let statement = text(&mut m, "statement")?;
    let formula = text(&mut m, "formula")?;
    let cfgs = match (m.remove("config"), m.remove("sweep")) {
        (Some(_), Some(_)) => return Err(at_name("config and sweep: give one, not both".into())),
        (None, None) => return Err(at_name("config or sweep: required".into())),
        (Some(c), None) => {
            let raw = RawConfig::from_json(&c.to_string())
                .map_err(|e| at_name(format!("config: {}", e.reason())))?;
            let cfgs = raw.resolve().map_err(|e| at_name(format!("config: {e}")))?;
            if cfgs.len() != 1 {
                return Err(at_name(format!(
                    "config: names {} configurations (placement all); use a sweep",
                    cfgs.len()
                )));
            }
            cfgs
        }
        (None, Some(s)) => SweepSpec::from_json(&s.to_string())
            .and_then(|s| s.expand())
            .map_err(|e| {
                let e = e.to_string();
                at_name(format!(
                    "sweep: {}",
                    e.strip_prefix("sweep config <json>: ")
                        .or_else(|| e.strip_prefix("sweep config: "))
                        .unwrap_or(&e)
                ))
            })?,
    };
    for c in &cfgs {
        crate::cost::check_fits(c).map_err(|e| at_name(format!("config: {e}")))?;
    }
    let quantity = match text(&mut m, "metric")? {
        None => return Err(at_name("metric: required".into())),
        Some(s) if s == "log10_grad_ratio" => Quantity::Log10GradRatio,
        Some(s) => Quantity::Metric(s.parse::<Metric>().map_err(|e| {
            at_name(
                format!(
                    "metric: {}, log10_grad_ratio",
                    e.reason().trim_end_matches(')')
                ) + ")",
            )
        })?),
    };
    let at = match text(&mut m, "at")?.as_deref() {
        None | Some("final") => At::Final,
        Some("max") => At::Max,
        Some("min") => At::Min,
        Some("all") => At::All,
        Some("slope:depth") => At::Slope(SlopeAxis::Depth),
        Some("slope:width") => At::Slope(SlopeAxis::Width),
        Some("slope:layer") => At::Slope(SlopeAxis::Layer),
        Some(s) => match s.strip_prefix("layer:").map(str::parse::<usize>) {
            Some(Ok(k)) => At::Layer(k),
            _ => {
                return Err(at_name(format!(
                    "at: unknown value '{}' (allowed: final, max, min, layer:K, all, slope:depth, slope:width, slope:layer)",
                    cut(s)
                )))
            }
        },
    };
    let layers = match m.remove("layers") {
        None => None,
        Some(v) => match serde_json::from_value::<[usize; 2]>(v) {
            Ok([a, b]) if a < b && at == At::Slope(SlopeAxis::Layer) => Some((a, b)),
            Ok(_) if at != At::Slope(SlopeAxis::Layer) => {
                return Err(at_name("layers: only with at slope:layer".into()))
            }
            _ => return Err(at_name("layers: expected [from, to] with from < to".into())),
        },
    };
    let number = |v: &Value| v.as_f64().filter(|x| x.is_finite());
    let op = match (text(&mut m, "op")?.as_deref(), &value) {
        (None, _) => return Err(at_name("op: required".into())),
        (Some("<="), Some(v)) => {
            Op::AtMost(number(v).ok_or_else(|| at_name("value: expected a finite number".into()))?)
        }
        (Some(">="), Some(v)) => {
            Op::AtLeast(number(v).ok_or_else(|| at_name("value: expected a finite number".into()))?)
        }
        (Some("within"), Some(Value::Array(a))) if a.len() == 2 => {
            match (number(&a[0]), number(&a[1])) {
                (Some(lo), Some(hi)) if lo <= hi => Op::Within(lo, hi),
                _ => {
                    return Err(at_name(
                        "value: expected [lo, hi] with finite lo <= hi".into(),
                    ))
                }
            }
        }
        (Some("within"), _) => {
            return Err(at_name(
                "value: expected [lo, hi] with finite lo <= hi".into(),
            ))
        }
        (Some("~theory"), None) => Op::Theory,
        (Some("~theory"), Some(_)) => {
            return Err(at_name(
                "value: ~theory takes no value (the prediction is the value)".into(),
            ))
        }
        (Some("<=" | ">="), None) => return Err(at_name("value: required".into())),
        (Some(s), _) => {
            return Err(at_name(format!(
                "op: unknown value '{}' (allowed: <=, >=, within, ~theory)",
                cut(s)
            )))
        }
    };
    // What the claim reads must exist in its configurations.
    let max_layer = cfgs.iter().map(|c| c.model().depth()).min().unwrap_or(0);
    if let Quantity::Metric(metric) = quantity {
        if let (At::Layer(k), along) = (at, metric.along()) {
            let ok = match along {
                Along::Scalar => false,
                Along::Boundaries => k <= max_layer,
                Along::Blocks => (1..=max_layer).contains(&k),
            };
            if !ok {
                return Err(at_name(format!(
                    "at: layer:{k} does not exist for {metric} (depth {max_layer})"
                )));
            }
        }
        if let Metric::Log10ParamGrad(w) | Metric::ParamGrad(w) = metric {
            if let Some(c) = cfgs.iter().find(|c| !c.model().weight_names().contains(&w)) {
                return Err(at_name(format!(
                    "metric: {} has no weight {w}",
                    c.model().placement()
                )));
            }
        }
    }
    if quantity == Quantity::Log10GradRatio
        && !matches!(
            at,
            At::Final | At::Slope(SlopeAxis::Depth | SlopeAxis::Width)
        )
    {
        return Err(at_name("at: log10_grad_ratio is one number per configuration (final, or a slope over depth or width)".into()));
    }
    if op == Op::Theory && matches!(at, At::Max | At::Min) {
        return Err(at_name(
            "at: ~theory compares a curve with `all`, or one layer".into(),
        ));
    }
    if let Some((_, to)) = layers {
        if to > max_layer {
            return Err(at_name(format!(
                "layers: {to} is beyond the depth {max_layer}"
            )));
        }
    }
    if let At::Slope(axis @ (SlopeAxis::Depth | SlopeAxis::Width)) = at {
        let field = if axis == SlopeAxis::Depth {
            Field::Depth
        } else {
            Field::Width
        };
        if slope_groups(&cfgs, field).is_empty() {
            return Err(at_name(format!(
                "at: slope:{field} needs a sweep with at least 3 values of {field} (the other fields fixed)"
            )));
        }
    }
    Ok(DataClaim {
        group,
        name,
        statement,
        formula,
        cfgs,
        quantity,
        at,
        layers,
        op,
    })
}

/// Groups of configurations equal but for `field`, with at least three values of it, each
/// sorted by that value.
fn slope_groups(cfgs: &[SimConfig], field: Field) -> Vec<Vec<SimConfig>> {
    let mut groups: Vec<(String, Vec<SimConfig>)> = Vec::new();
    for c in cfgs {
        let key = serde_json::to_string(&c.to_raw().without(field)).unwrap_or_default();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(c.clone()),
            None => groups.push((key, vec![c.clone()])),
        }
    }
    groups
        .into_iter()
        .map(|(_, mut g)| {
            g.sort_by(|a, b| {
                let x = |c: &SimConfig| c.to_raw().number(field).unwrap_or(0.0);
                x(a).total_cmp(&x(b))
            });
            g
        })
        .filter(|g| g.len() >= 3)
        .collect()
}

/// The seed mean of `values` with its Bonferroni half-width over `k` comparisons.
fn estimate(values: &[f64], k: usize) -> Estimate {
    let n = values.len();
    if n == 0 {
        return Estimate::with_half(f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Estimate::with_half(mean, f64::NAN);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Estimate::sampled(mean, tol::t_family(n, k) * (var / n as f64).sqrt(), n, k)
}

/// Per-seed values of the quantity, entry by entry: `values[i][s]`, `None` where seed `s`
/// has none; and whether the quantity exists at entry `i` at all.
fn per_entry(q: Quantity, r: &Run) -> (Vec<Vec<Option<f64>>>, Vec<bool>) {
    match q {
        Quantity::Log10GradRatio => {
            let v: Vec<Option<f64>> = r
                .seeds
                .iter()
                .map(|s| Some(s.log10_grad.first()?.as_ref()? - s.log10_grad.last()?.as_ref()?))
                .collect();
            (vec![v], vec![true])
        }
        Quantity::Metric(m) => {
            let cols: Vec<Vec<Option<f64>>> = r
                .seeds
                .iter()
                .map(|s| s.values(m).unwrap_or_default())
                .collect();
            let len = cols.first().map_or(0, |c| c.len());
            let series = r.sim.get(m);
            let mut rows = Vec::with_capacity(len);
            let mut exists = Vec::with_capacity(len);
            for i in 0..len {
                rows.push(cols.iter().map(|c| c.get(i).copied().flatten()).collect());
                // Absent from every seed that reached it for a structural reason: skipped.
                let structural = series.is_some_and(|s| {
                    s.n[i] == 0
                        && s.absent_at(i).iter().all(|(r, _)| {
                            matches!(
                                r,
                                crate::summary::Reason::Undefined
                                    | crate::summary::Reason::Zero
                                    | crate::summary::Reason::NotPredicted
                            )
                        })
                });
                exists.push(!structural);
            }
            (rows, exists)
        }
    }
}

/// The value of the quantity in a prediction, entry by entry.
fn predicted(q: Quantity, t: &RunResult) -> Vec<Option<f64>> {
    match q {
        Quantity::Log10GradRatio => {
            let g = &t.boundaries.log10_grad.mean;
            vec![(|| Some((*g.first()?)? - (*g.last()?)?))()]
        }
        Quantity::Metric(m) => t.get(m).map_or_else(Vec::new, |s| s.mean.clone()),
    }
}

/// The index of layer `k` of metric `m`'s entries.
fn index_of(m: Option<Metric>, k: usize) -> usize {
    match m.map(|m| m.along()) {
        Some(Along::Blocks) => k.saturating_sub(1),
        _ => k,
    }
}

/// Bias units of entry `i` of a quantity at depth `l` (the built-in policy).
fn units(q: Quantity, depth: usize, i: usize) -> f64 {
    match q {
        Quantity::Metric(Metric::Log10Grad | Metric::Log10ParamGrad(_)) => {
            tol::gradient_units(depth, i)
        }
        _ => tol::FORWARD_UNITS,
    }
}

/// The `y` of a slope point.
fn slope_y(q: Quantity, axis: SlopeAxis, v: f64) -> Option<f64> {
    if axis != SlopeAxis::Layer && q.positive() {
        (v > 0.0).then(|| v.log10())
    } else {
        Some(v)
    }
}

impl DataClaim {
    /// The claim's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A label for one configuration of a sweep: the fields that vary among the claim's.
    fn label(&self, c: &SimConfig) -> String {
        if self.cfgs.len() == 1 {
            return self.name.clone();
        }
        let varying: Vec<String> = crate::choice::Choice::ALL
            .iter()
            .filter(|&&f: &&Field| {
                let first = self.cfgs[0].to_raw().text(f);
                self.cfgs.iter().any(|o| o.to_raw().text(f) != first)
            })
            .map(|&f: &Field| format!("{f}={}", c.to_raw().text(f).unwrap_or_default()))
            .collect();
        format!("{} [{}]", self.name, varying.join(" "))
    }

    fn claimed(&self, name: String, at: String) -> Claimed {
        let op = match self.op {
            Op::AtMost(v) => format!("≤ {v}"),
            Op::AtLeast(v) => format!("≥ {v}"),
            Op::Within(a, b) => format!("within [{a}, {b}]"),
            Op::Theory => "≈ the mean-field prediction".into(),
        };
        let at_text = match self.at {
            At::Final => "at the last layer".to_string(),
            At::Max => "at its largest".into(),
            At::Min => "at its smallest".into(),
            At::Layer(k) => format!("at layer {k}"),
            At::All => "at every layer".into(),
            At::Slope(a) => format!(
                "its slope over {}",
                match a {
                    SlopeAxis::Depth => "depth",
                    SlopeAxis::Width => "width",
                    SlopeAxis::Layer => "layers",
                }
            ),
        };
        Claimed::new(
            name,
            self.statement
                .clone()
                .unwrap_or_else(|| format!("{} {at_text} {op}", self.quantity)),
            self.formula.clone().unwrap_or_default(),
            at,
        )
    }

    /// The verdict of `measured` under the claim's op (`p` the prediction for `~theory`).
    fn judge(
        &self,
        claimed: Claimed,
        measured: Estimate,
        theory: Option<(f64, f64, String)>,
    ) -> Verdict {
        match self.op {
            Op::AtMost(v) => Verdict::judge(
                claimed,
                measured,
                Relation::AtMost,
                v,
                Allowance::new(0.0, "95% interval over seeds"),
                Burden::ThreeWay,
                Expect::Holds,
            ),
            Op::AtLeast(v) => Verdict::judge(
                claimed,
                measured,
                Relation::AtLeast,
                v,
                Allowance::new(0.0, "95% interval over seeds"),
                Burden::ThreeWay,
                Expect::Holds,
            ),
            Op::Within(lo, hi) => {
                let a = Verdict::judge(
                    claimed.clone(),
                    measured,
                    Relation::AtLeast,
                    lo,
                    Allowance::new(0.0, "95% interval over seeds"),
                    Burden::ThreeWay,
                    Expect::Holds,
                );
                let b = Verdict::judge(
                    claimed,
                    measured,
                    Relation::AtMost,
                    hi,
                    Allowance::new(0.0, "95% interval over seeds"),
                    Burden::ThreeWay,
                    Expect::Holds,
                );
                // The binding side: the worse status, else the nearer bound.
                let rank = |v: &Verdict| match v.status {
                    super::Status::Fail => 3,
                    super::Status::Inconclusive => 2,
                    _ => 1,
                };
                if rank(&a) > rank(&b)
                    || (rank(&a) == rank(&b)
                        && (measured.mean - lo).abs() < (hi - measured.mean).abs())
                {
                    a
                } else {
                    b
                }
            }
            Op::Theory => {
                let (p, bias, from) = theory.unwrap_or((f64::NAN, f64::NAN, String::new()));
                Verdict::judge(
                    claimed,
                    measured,
                    Relation::Approx,
                    p,
                    Allowance::new(bias, from),
                    Burden::NotRefuted,
                    Expect::Holds,
                )
            }
        }
    }

    fn judge_config(&self, ev: &dyn Evidence, cfg: &SimConfig) -> Verdict {
        let r = ev.run(cfg);
        let m = cfg.model();
        let (depth, d) = (m.depth(), m.width());
        let label = self.label(cfg);
        let place = format!("{} L={depth} d={d}", m.placement());
        let metric = match self.quantity {
            Quantity::Metric(mm) => Some(mm),
            Quantity::Log10GradRatio => None,
        };
        // ~theory on a curve or one layer: the built-in curve comparison.
        if self.op == Op::Theory && self.quantity != Quantity::Log10GradRatio {
            let th = match ev.predict(cfg) {
                Ok(t) => t,
                Err(e) => {
                    return self.judge(
                        self.claimed(label, e.to_string()),
                        Estimate::with_half(f64::NAN, f64::NAN),
                        None,
                    )
                }
            };
            let mm = metric.unwrap_or(Metric::Q);
            let (Some(sim), Some(pred)) = (r.sim.get(mm), th.get(mm)) else {
                return self.judge(
                    self.claimed(label, format!("{place}: no {mm}")),
                    Estimate::with_half(f64::NAN, f64::NAN),
                    None,
                );
            };
            let q = self.quantity;
            let units = |i: usize| units(q, depth, i);
            let cmp: Option<Cmp> = match self.at {
                At::All => compare(sim, pred, q.kind(), d, &units),
                _ => {
                    let i = match self.at {
                        At::Layer(k) => index_of(metric, k),
                        _ => sim.len().saturating_sub(1),
                    };
                    let c = compare(&sim.at(i), &pred.at(i), q.kind(), d, &|_| units(i));
                    c.map(|c| Cmp { index: i, ..c })
                }
            };
            let at = cmp.map_or(String::new(), |c| {
                let l = r.sim.layer(mm, c.index).unwrap_or(0);
                format!("{place}: layer {l}")
            });
            return super::curves::verdict(self.claimed(label, at), cmp, "Bonferroni t over layers × seed SE + C_B·m/d (forward m = 2; gradient m = 2(L−l)+1, log-normal corrected)");
        }
        let (rows, exists) = per_entry(self.quantity, &r);
        let theory_at = |i: usize| -> Option<(f64, f64, String)> {
            let t = ev.predict(cfg).ok()?;
            let p = (*predicted(self.quantity, &t).get(i)?)?;
            let bias = tol::bias(self.quantity.kind(), units(self.quantity, depth, i), d, p);
            Some((p, bias, "t SE over seeds + C_B·m/d".into()))
        };
        let seeds = r.seeds.len();
        let complete = |row: &[Option<f64>]| row.iter().filter(|v| v.is_some()).count() == seeds;
        let values = |row: &[Option<f64>]| -> Vec<f64> { row.iter().flatten().copied().collect() };
        let candidates: Vec<usize> = match self.at {
            At::Final => vec![rows.len().saturating_sub(1)],
            At::Layer(k) => vec![index_of(metric, k)],
            At::Max | At::Min | At::All => (0..rows.len()).filter(|&i| exists[i]).collect(),
            At::Slope(_) => Vec::new(),
        };
        if let At::Slope(SlopeAxis::Layer) = self.at {
            let (from, to) = self.layers.unwrap_or((0, depth));
            let idx: Vec<usize> = (from..=to)
                .map(|l| index_of(metric, l))
                .filter(|&i| i < rows.len() && exists[i])
                .collect();
            let xs: Vec<f64> = idx
                .iter()
                .map(|&i| r.sim.layer(metric.unwrap_or(Metric::Q), i).unwrap_or(i) as f64)
                .collect();
            let slopes: Vec<f64> = (0..seeds)
                .filter_map(|s| {
                    let ys: Option<Vec<f64>> = idx.iter().map(|&i| rows[i][s]).collect();
                    fit::line(&xs, &ys?).map(|f| f.exponent)
                })
                .collect();
            let mut e = Estimate::of(&slopes);
            e.complete = slopes.len() == seeds;
            let theory = if self.op == Op::Theory {
                ev.predict(cfg).ok().and_then(|t| {
                    let p = predicted(self.quantity, &t);
                    let ys: Option<Vec<f64>> =
                        idx.iter().map(|&i| p.get(i).copied().flatten()).collect();
                    let slope = fit::line(&xs, &ys?)?.exponent;
                    let bias = tol::bias(self.quantity.kind(), tol::FORWARD_UNITS, d, slope);
                    Some((slope, bias, "t SE over seeds + C_B·2/d".into()))
                })
            } else {
                None
            };
            return self.judge(
                self.claimed(label, format!("{place}: slope over l ∈ [{from}, {to}]")),
                e,
                theory,
            );
        }
        if candidates.is_empty() {
            return self.judge(
                self.claimed(
                    label,
                    format!("{place}: {} does not exist here", self.quantity),
                ),
                Estimate::with_half(f64::NAN, f64::NAN),
                None,
            );
        }
        let k = if matches!(self.at, At::Max | At::Min | At::All) {
            candidates.len()
        } else {
            1
        };
        let pick = |i: usize| {
            let mut e = estimate(&values(&rows[i]), k);
            e.complete = complete(&rows[i]);
            e
        };
        let layer_of = |i: usize| match metric {
            Some(mm) => r
                .sim
                .layer(mm, i)
                .map_or(String::new(), |l| format!(": layer {l}")),
            None => String::new(),
        };
        let chosen: Vec<usize> = match self.at {
            At::Max | At::Min => {
                let mean = |i: &usize| {
                    let v = values(&rows[*i]);
                    v.iter().sum::<f64>() / v.len().max(1) as f64
                };
                let best = if self.at == At::Max {
                    candidates
                        .iter()
                        .copied()
                        .max_by(|a, b| mean(a).total_cmp(&mean(b)))
                } else {
                    candidates
                        .iter()
                        .copied()
                        .min_by(|a, b| mean(a).total_cmp(&mean(b)))
                };
                best.into_iter().collect()
            }
            _ => candidates,
        };
        // The verdict of the worst entry (for `all`: every entry must hold).
        let mut worst: Option<Verdict> = None;
        for i in chosen {
            let v = self.judge(
                self.claimed(label.clone(), format!("{place}{}", layer_of(i))),
                pick(i),
                theory_at(i),
            );
            let rank = |v: &Verdict| match v.status {
                super::Status::Fail => 3,
                super::Status::Inconclusive => 2,
                _ => 1,
            };
            if worst.as_ref().is_none_or(|w| rank(&v) > rank(w)) {
                worst = Some(v);
            }
        }
        worst.unwrap_or_else(|| {
            self.judge(
                self.claimed(label, place),
                Estimate::with_half(f64::NAN, f64::NAN),
                None,
            )
        })
    }

    fn judge_slope(&self, ev: &dyn Evidence, axis: SlopeAxis) -> Vec<Verdict> {
        let field = if axis == SlopeAxis::Depth {
            Field::Depth
        } else {
            Field::Width
        };
        slope_groups(&self.cfgs, field)
            .into_iter()
            .map(|g| {
                let xs: Vec<f64> = g
                    .iter()
                    .map(|c| c.to_raw().number(field).unwrap_or(f64::NAN).log10())
                    .collect();
                let runs: Vec<_> = g.iter().map(|c| ev.run(c)).collect();
                let metric = match self.quantity {
                    Quantity::Metric(m) => Some(m),
                    Quantity::Log10GradRatio => None,
                };
                let at_entry = |run: &Run| -> Vec<Option<f64>> {
                    let (rows, _) = per_entry(self.quantity, run);
                    let i = match self.at {
                        At::Layer(k) => index_of(metric, k),
                        _ => rows.len().saturating_sub(1),
                    };
                    rows.get(i).cloned().unwrap_or_default()
                };
                let per_run: Vec<Vec<Option<f64>>> = runs.iter().map(|r| at_entry(r)).collect();
                let seeds = runs.iter().map(|r| r.seeds.len()).min().unwrap_or(0);
                let slopes: Vec<f64> = (0..seeds)
                    .filter_map(|s| {
                        let ys: Option<Vec<f64>> = per_run
                            .iter()
                            .map(|v| {
                                v.get(s)
                                    .copied()
                                    .flatten()
                                    .and_then(|v| slope_y(self.quantity, axis, v))
                            })
                            .collect();
                        fit::line(&xs, &ys?).map(|f| f.exponent)
                    })
                    .collect();
                let mut e = Estimate::of(&slopes);
                e.complete = slopes.len() == seeds;
                let d = g[0].model().width();
                let theory = if self.op == Op::Theory {
                    let ys: Option<Vec<f64>> = g
                        .iter()
                        .map(|c| {
                            let t = ev.predict(c).ok()?;
                            let p = predicted(self.quantity, &t);
                            let i = match self.at {
                                At::Layer(k) => index_of(metric, k),
                                _ => p.len().saturating_sub(1),
                            };
                            slope_y(self.quantity, axis, p.get(i).copied().flatten()?)
                        })
                        .collect();
                    ys.and_then(|ys| fit::line(&xs, &ys)).map(|f| {
                        (
                            f.exponent,
                            tol::bias(Kind::Absolute, tol::FORWARD_UNITS, d, 0.0),
                            "t SE over seeds + C_B·2/d".into(),
                        )
                    })
                } else {
                    None
                };
                let values: Vec<String> = g
                    .iter()
                    .map(|c| c.to_raw().text(field).unwrap_or_default())
                    .collect();
                let label = if self.cfgs.len() == g.len() {
                    self.name.clone()
                } else {
                    self.label(&g[0])
                };
                let at = format!(
                    "{} {field} ∈ [{}]: slope of {} on log10 {field}",
                    g[0].model().placement(),
                    values.join(", "),
                    self.quantity
                );
                self.judge(self.claimed(label, at), e, theory)
            })
            .collect()
    }
}

impl Claim for DataClaim {
    fn group(&self) -> Group {
        self.group
    }

    fn runs(&self) -> Vec<SimConfig> {
        self.cfgs.clone()
    }

    fn judge(&self, ev: &dyn Evidence) -> Vec<Verdict> {
        match self.at {
            At::Slope(axis @ (SlopeAxis::Depth | SlopeAxis::Width)) => self.judge_slope(ev, axis),
            _ => self.cfgs.iter().map(|c| self.judge_config(ev, c)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, "c.json", Group::User).unwrap_err().to_string()
    }

    #[test]
    fn malformed_claims_name_the_claim_and_the_field() {
        let base = r#""config": {"placement": "pre", "depth": 4}"#;
        for (text, needle) in [
            (format!(r#"[{{"name": "a", {base}, "metric": "q", "op": "<=", "value": 1}}, {{"name": "b", {base}, "metric": "qq", "op": "<=", "value": 1}}]"#), "claim 2 (\"b\"): metric: unknown value 'qq'"),
            (format!(r#"[{{{base}, "metric": "q", "op": "<=", "value": 1}}]"#), "claim 1: name: required"),
            (format!(r#"[{{"name": "a", {base}, "metric": "q", "at": "finall", "op": "<=", "value": 1}}]"#), "at: unknown value 'finall'"),
            (format!(r#"[{{"name": "a", {base}, "metric": "q", "op": "<", "value": 1}}]"#), "op: unknown value '<'"),
            (format!(r#"[{{"name": "a", {base}, "metric": "q", "op": "within", "value": 1}}]"#), "value: expected [lo, hi]"),
            (format!(r#"[{{"name": "a", {base}, "metric": "q", "op": "<="}}]"#), "value: required"),
            (format!(r#"[{{"name": "a", {base}, "metric": "q", "at": "layer:9", "op": "<=", "value": 1}}]"#), "layer:9 does not exist"),
            (format!(r#"[{{"name": "a", {base}, "metric": "q", "at": "slope:depth", "op": "<=", "value": 1}}]"#), "needs a sweep"),
            (format!(r#"[{{"name": "a", {base}, "metric": "log10_param_grad.moe.w_r", "op": "<=", "value": 1}}]"#), "has no weight moe.w_r"),
            (r#"[{"name": "a", "config": {"placement": "pre", "depht": 4}, "metric": "q", "op": "<=", "value": 1}]"#.to_string(), "config: depht: unknown field"),
            (r#"[{"name": "a", "metric": "q", "op": "<=", "value": 1}]"#.to_string(), "config or sweep: required"),
            (format!(r#"[{{"name": "a", {base}, "metric": "q", "op": "<=", "value": 1, "colour": 3}}]"#), "colour: unknown field"),
            ("[]".to_string(), "no claims"),
            ("{\"claims\": [] } x".to_string(), "text after"),
        ] {
            let e = err(&text);
            assert!(e.contains(needle), "{text}\n→ {e}");
            assert!(e.starts_with("c.json: "), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn a_sweep_claim_expands_and_slopes_need_three_values() {
        let c = parse(
            r#"{"claims": [{"name": "s", "sweep": {"placement": "span", "depth": [2, 4, 8], "width": 16, "heads": 2, "tokens": 4}, "metric": "log10_grad_ratio", "at": "slope:depth", "op": "within", "value": [-0.5, 0.5]}]}"#,
            "c.json",
            Group::User,
        )
        .unwrap();
        assert_eq!(c[0].runs().len(), 3);
        assert_eq!(c[0].at, At::Slope(SlopeAxis::Depth));
        assert_eq!(slope_groups(&c[0].cfgs, Field::Depth).len(), 1);
    }
}
