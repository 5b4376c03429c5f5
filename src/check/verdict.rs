//! One verdict constructor for every check: a measured estimate, a relation to a target,
//! an allowance with its source, and who carries the burden of proof.
//!
//! With the measured mean `m`, its 95% half-width `h` (0 for an exact value), the target
//! `p` and the allowance `b`, the interval `[m − h, m + h]` either lies on the claimed side
//! of the target (**holds**), on the other side (**refuted**), or straddles it:
//!
//! | relation | holds | refuted |
//! | --- | --- | --- |
//! | `≈ p` | `|m − p| ≤ h + b` | `|m − p| > h + b` |
//! | `≤ p` | `m + h ≤ p + b` | `m − h > p + b` |
//! | `≥ p` | `m − h ≥ p − b` | `m + h < p − b` |
//! | `≠ p` | `|m − p| > h + b` | never (equality cannot be shown) |
//!
//! The [`Burden`] turns that into a status: a prediction of the theory must not be refuted
//! ([`Burden::NotRefuted`]); a claim that something is *shown* must hold
//! ([`Burden::Demonstrated`]); a user's bound reports the straddling case as INCONCLUSIVE
//! ([`Burden::ThreeWay`]). A literal claim that the theory says does not follow
//! ([`Expect::Deviates`]) is PASS where it holds after all and DEVIATION where it does not.
//! Missing data never passes: a non-finite measurement, interval or target, or an
//! incomplete estimate, is FAIL.
//!
//! # p-values and the run
//! A verdict that a refutation FAILs (a prediction, or a user's bound) also carries `p`, the
//! probability of a measurement at least this far on the refuting side if the claim held at
//! the edge of its allowance: with `k` Bonferroni comparisons (a curve's layers), `n` seeds and
//! the standard error `se = h / t_{1−0.025/k, n−1}`, `z = e / se` for the excess `e` beyond
//! the allowance (`|m − p| − b` for `≈`, `m − p − b` for `≤`, `p − b − m` for `≥`) and
//! `p = min(1, 2k (1 − T_{n−1}(z)))`, so that the row FAILs exactly when `p < 0.05`. An exact
//! estimate gives `p` 0 (refuted) or 1; missing data gives 0. [`holm`] adjusts the `p` of a
//! whole run (Holm 1979), which bounds the chance of any false FAIL in the run by 5% whatever
//! the dependence between rows (rows that share seeds or configurations are dependent; Holm
//! needs no independence, and is conservative when, as here, the dependence is positive).

use crate::check::tol;
use crate::summary::mean_ci;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The level of every verdict and of the run: 5%.
pub const ALPHA: f64 = 0.05;

/// How a prediction fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The claim holds (or is not refuted, as its burden requires).
    Pass,
    /// The claim is refuted, or could not be evaluated.
    Fail,
    /// The claim as stated does not follow from the theory; the measured size of the
    /// deviation is reported and does not fail the run (theory.md §4).
    KnownDeviation,
    /// The interval straddles the bound (user claims only).
    Inconclusive,
}

impl Status {
    /// The word in the verdict table.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::KnownDeviation => "DEVIATION",
            Status::Inconclusive => "INCONCLUSIVE",
        }
    }
}

/// The relation a claim asserts between the measured value and its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Relation {
    /// Equal within the allowance.
    #[serde(rename = "≈")]
    Approx,
    /// At most the target.
    #[serde(rename = "≤")]
    AtMost,
    /// At least the target.
    #[serde(rename = "≥")]
    AtLeast,
    /// Different from the target.
    #[serde(rename = "≠")]
    Differs,
}

impl Relation {
    /// The symbol printed in the verdict table.
    pub fn symbol(self) -> &'static str {
        match self {
            Relation::Approx => "≈",
            Relation::AtMost => "≤",
            Relation::AtLeast => "≥",
            Relation::Differs => "≠",
        }
    }
}

/// Who must show what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Burden {
    /// PASS unless the measurement refutes the claim.
    NotRefuted,
    /// PASS only if the measurement shows the claim.
    Demonstrated,
    /// PASS if shown, FAIL if refuted, INCONCLUSIVE otherwise.
    ThreeWay,
}

/// Whether a claim is expected to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A prediction: PASS or FAIL.
    Holds,
    /// A literal claim the theory says does not follow: PASS or DEVIATION.
    Deviates,
}

/// A measured value: a seed mean with its 95% half-width, or an exact number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// The value.
    pub mean: f64,
    /// The 95% half-width (`None`: exact, or no interval is reported).
    pub half: Option<f64>,
    /// Whether every value the estimate needs was there (a curve with a layer no seed
    /// reached is not complete, and fails).
    pub complete: bool,
    /// The seed sample behind `half`, when it is a Student-t half-width (`None`: exact, or a
    /// half-width of another origin).
    pub sampling: Option<Sampling>,
}

/// The sample behind a Student-t half-width `h = t_{1 − 0.025/k, n−1} · se`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// Seeds `n` (at least 2).
    pub seeds: usize,
    /// Bonferroni comparisons `k` the half-width covers (a curve's layers; 1 for one value).
    pub comparisons: usize,
}

impl Estimate {
    /// The seed mean of `values` and its Student-t half-width (NaN half-width with fewer than
    /// two values, so the verdict fails: missing data never passes).
    pub fn of(values: &[f64]) -> Estimate {
        match mean_ci(values) {
            Some((mean, Some(h))) => Estimate::sampled(mean, h, values.len(), 1),
            Some((mean, None)) => Estimate::with_half(mean, f64::NAN),
            None => Estimate::with_half(f64::NAN, f64::NAN),
        }
    }

    /// A mean with a known half-width of unknown origin (no `p`).
    pub fn with_half(mean: f64, half: f64) -> Estimate {
        Estimate {
            mean,
            half: Some(half),
            complete: true,
            sampling: None,
        }
    }

    /// A seed mean with its Student-t half-width over `seeds` values, Bonferroni-widened for
    /// `comparisons` (`h = t_{1 − 0.025/k, n−1} · se`).
    pub fn sampled(mean: f64, half: f64, seeds: usize, comparisons: usize) -> Estimate {
        Estimate {
            sampling: (seeds >= 2).then_some(Sampling {
                seeds,
                comparisons: comparisons.max(1),
            }),
            ..Estimate::with_half(mean, half)
        }
    }

    /// An exact value (no interval).
    pub fn exact(mean: f64) -> Estimate {
        Estimate {
            mean,
            half: None,
            complete: true,
            sampling: None,
        }
    }
}

/// What a verdict says about a claim.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    /// Name in the table.
    pub name: String,
    /// The claim in words.
    pub statement: String,
    /// The formula of the prediction.
    pub formula: String,
    /// Where (which configuration, which point of a curve) the numbers come from.
    pub at: String,
}

impl Claimed {
    /// A claim's text.
    pub fn new(
        name: impl Into<String>,
        statement: impl Into<String>,
        formula: impl Into<String>,
        at: impl Into<String>,
    ) -> Claimed {
        Claimed {
            name: name.into(),
            statement: statement.into(),
            formula: formula.into(),
            at: at.into(),
        }
    }
}

/// The allowance beyond the seed interval, and where it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Allowance {
    /// The amount `b`.
    pub bias: f64,
    /// Its source, as printed.
    pub from: String,
}

impl Allowance {
    /// An allowance of `bias` from `from`.
    pub fn new(bias: f64, from: impl Into<String>) -> Allowance {
        Allowance {
            bias,
            from: from.into(),
        }
    }
}

/// One named prediction and its verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// Name in the table.
    pub name: String,
    /// The claim in words.
    pub statement: String,
    /// The formula of the prediction.
    pub formula: String,
    /// Where the reported numbers come from.
    pub at: String,
    /// The relation asserted between `measured` and `predicted`.
    pub relation: Relation,
    /// The measured value.
    pub measured: f64,
    /// Its 95% interval.
    pub interval: Option<(f64, f64)>,
    /// The target (the prediction, or the bound).
    pub predicted: f64,
    /// The half-width plus the allowance.
    pub tolerance: f64,
    /// Where the tolerance comes from.
    pub tolerance_from: String,
    /// The verdict.
    pub status: Status,
    /// The probability of a refutation at least this strong if the claim held at the edge
    /// of its allowance (module docs); `None` where a refutation does not FAIL the row
    /// (a claim that must be shown, a literal claim) or the half-width has no known sample.
    pub p: Option<f64>,
    /// `p` adjusted over the run by [`holm`] (`None` until then, and where `p` is `None`).
    pub holm_p: Option<f64>,
}

/// Whether the interval shows the relation, refutes it, or neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Holds,
    Refuted,
    Straddles,
}

fn outcome(m: f64, h: f64, relation: Relation, p: f64, b: f64) -> Outcome {
    let (holds, refuted) = match relation {
        Relation::Approx => {
            let ok = (m - p).abs() <= h + b;
            (ok, !ok)
        }
        Relation::AtMost => (m + h <= p + b, m - h > p + b),
        Relation::AtLeast => (m - h >= p - b, m + h < p - b),
        Relation::Differs => ((m - p).abs() > h + b, false),
    };
    if holds {
        Outcome::Holds
    } else if refuted {
        Outcome::Refuted
    } else {
        Outcome::Straddles
    }
}

/// How far `m` lies beyond target `p` widened by the allowance `b`, on the refuting side:
/// `|m − p| − b` for `≈`, `m − p − b` for `≤`, `p − b − m` for `≥` (`None` for `≠`, which
/// no measurement refutes). Positive: outside the allowance.
pub fn excess(m: f64, relation: Relation, p: f64, b: f64) -> Option<f64> {
    match relation {
        Relation::Approx => Some((m - p).abs() - b),
        Relation::AtMost => Some(m - p - b),
        Relation::AtLeast => Some(p - b - m),
        Relation::Differs => None,
    }
}

/// The `p` of a refutation (module docs): `2k (1 − T_{n−1}(z))` capped at 1, or 0 / 1 for
/// an exact estimate, or `None` for a half-width of unknown origin.
fn refutation_p(m: f64, est: &Estimate, relation: Relation, p: f64, b: f64) -> Option<f64> {
    let Some(excess) = excess(m, relation, p, b) else {
        return Some(1.0);
    };
    let certain = Some(if excess > 0.0 { 0.0 } else { 1.0 });
    let h = match est.half {
        None => return certain,
        Some(h) => h,
    };
    let s = est.sampling?;
    let dof = (s.seeds - 1) as f64;
    let se = h / tol::t_family(s.seeds, s.comparisons);
    if se == 0.0 {
        return certain;
    }
    let t = StudentsT::new(0.0, 1.0, dof).ok()?;
    let tail = t.sf(excess / se);
    Some((2.0 * s.comparisons as f64 * tail).min(1.0))
}

/// Holm's step-down adjustment of the run's `p` (Holm 1979): with the `m` defined `p` in
/// increasing order `p_(1) ≤ … ≤ p_(m)`, `holm_p_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j))`.
/// A row whose `holm_p < ALPHA` is refuted at the run's level: the chance that any row of a
/// run whose claims all hold is so refuted is at most `ALPHA`, for any dependence between rows.
pub fn holm(verdicts: &mut [Verdict]) {
    let mut order: Vec<usize> = (0..verdicts.len())
        .filter(|&i| verdicts[i].p.is_some())
        .collect();
    order.sort_by(|&a, &b| verdicts[a].p.unwrap().total_cmp(&verdicts[b].p.unwrap()));
    let m = order.len();
    let mut running: f64 = 0.0;
    for (j, &i) in order.iter().enumerate() {
        let scaled = ((m - j) as f64 * verdicts[i].p.unwrap()).min(1.0);
        running = running.max(scaled);
        verdicts[i].holm_p = Some(running);
    }
}

impl Verdict {
    /// Whether this row fails the run: a FAIL that Holm's adjustment keeps (`holm_p < ALPHA`),
    /// or a FAIL without a `p` (a claim that was not shown, an exact refutation, missing
    /// data). Before [`holm`] has run, every FAIL counts.
    pub fn fails_run(&self) -> bool {
        self.status == Status::Fail && self.holm_p.is_none_or(|q| q < ALPHA)
    }

    /// The verdict on `claim`: `measured` against `target` by `relation`, with `allowance`
    /// beyond the seed interval, judged under `burden` (see the module docs).
    pub fn judge(
        claim: Claimed,
        measured: Estimate,
        relation: Relation,
        target: f64,
        allowance: Allowance,
        burden: Burden,
        expect: Expect,
    ) -> Verdict {
        let h = measured.half.unwrap_or(0.0);
        let (m, b) = (measured.mean, allowance.bias);
        let evaluable = measured.complete && [m, h, b, target].iter().all(|v| v.is_finite());
        let refutes = expect == Expect::Holds && burden != Burden::Demonstrated;
        let p = match refutes {
            false => None,
            true if !evaluable => Some(0.0),
            true => refutation_p(m, &measured, relation, target, b),
        };
        let status = if !evaluable {
            Status::Fail
        } else {
            let o = outcome(m, h, relation, target, b);
            match (expect, burden, o) {
                (Expect::Deviates, Burden::Demonstrated, Outcome::Holds) => Status::Pass,
                (Expect::Deviates, Burden::Demonstrated, _) => Status::KnownDeviation,
                (Expect::Deviates, _, Outcome::Refuted) => Status::KnownDeviation,
                (Expect::Deviates, _, _) => Status::Pass,
                (_, Burden::NotRefuted, Outcome::Refuted) => Status::Fail,
                (_, Burden::NotRefuted, _) => Status::Pass,
                (_, Burden::Demonstrated, Outcome::Holds) => Status::Pass,
                (_, Burden::Demonstrated, _) => Status::Fail,
                (_, Burden::ThreeWay, Outcome::Holds) => Status::Pass,
                (_, Burden::ThreeWay, Outcome::Refuted) => Status::Fail,
                (_, Burden::ThreeWay, Outcome::Straddles) => Status::Inconclusive,
            }
        };
        Verdict {
            name: claim.name,
            statement: claim.statement,
            formula: claim.formula,
            at: claim.at,
            relation,
            measured: m,
            interval: measured.half.map(|h| (m - h, m + h)),
            predicted: target,
            tolerance: h + b,
            tolerance_from: allowance.from,
            status,
            p,
            holm_p: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> Claimed {
        Claimed {
            name: "c".into(),
            statement: String::new(),
            formula: String::new(),
            at: String::new(),
        }
    }

    fn status(m: f64, h: f64, rel: Relation, p: f64, b: f64, burden: Burden, e: Expect) -> Status {
        Verdict::judge(
            claim(),
            Estimate::with_half(m, h),
            rel,
            p,
            Allowance::new(b, ""),
            burden,
            e,
        )
        .status
    }

    #[test]
    fn every_relation_and_burden() {
        use Burden::*;
        use Expect::*;
        use Relation::*;
        // ≈: within h + b passes, beyond fails.
        assert_eq!(
            status(1.0, 0.1, Approx, 1.15, 0.05, NotRefuted, Holds),
            Status::Pass
        );
        assert_eq!(
            status(1.0, 0.1, Approx, 1.16, 0.05, NotRefuted, Holds),
            Status::Fail
        );
        // ≤ with the interval straddling the bound: not refuted, not shown.
        assert_eq!(
            status(1.0, 0.1, AtMost, 1.05, 0.0, NotRefuted, Holds),
            Status::Pass
        );
        assert_eq!(
            status(1.0, 0.1, AtMost, 1.05, 0.0, Demonstrated, Holds),
            Status::Fail
        );
        assert_eq!(
            status(1.0, 0.1, AtMost, 1.05, 0.0, ThreeWay, Holds),
            Status::Inconclusive
        );
        assert_eq!(
            status(1.0, 0.1, AtMost, 1.2, 0.0, ThreeWay, Holds),
            Status::Pass
        );
        assert_eq!(
            status(1.0, 0.1, AtMost, 0.85, 0.0, ThreeWay, Holds),
            Status::Fail
        );
        // ≥ mirrors ≤; the allowance widens toward passing.
        assert_eq!(
            status(1.0, 0.1, AtLeast, 1.15, 0.0, NotRefuted, Holds),
            Status::Fail
        );
        assert_eq!(
            status(1.0, 0.1, AtLeast, 1.15, 0.06, NotRefuted, Holds),
            Status::Pass
        );
        assert_eq!(
            status(1.0, 0.1, AtLeast, 0.9, 0.0, Demonstrated, Holds),
            Status::Pass
        );
        assert_eq!(
            status(1.0, 0.1, AtLeast, 0.95, 0.0, Demonstrated, Holds),
            Status::Fail
        );
        // A literal claim: PASS where it holds after all, DEVIATION where it does not.
        assert_eq!(
            status(1.0, 0.1, Approx, 2.0, 0.0, NotRefuted, Deviates),
            Status::KnownDeviation
        );
        assert_eq!(
            status(1.0, 0.1, Approx, 1.05, 0.0, NotRefuted, Deviates),
            Status::Pass
        );
        assert_eq!(
            status(1.0, 0.1, Differs, 1.05, 0.0, Demonstrated, Deviates),
            Status::KnownDeviation
        );
        assert_eq!(
            status(1.0, 0.1, Differs, 1.5, 0.0, Demonstrated, Deviates),
            Status::Pass
        );
    }

    /// The allowance widens `≤` and `≥` toward passing; an interval that touches the
    /// widened bound is not refuted (the edge belongs to the claim); the printed symbols
    /// are the serialized ones.
    #[test]
    fn bounds_with_allowance_and_ties() {
        use Burden::*;
        use Expect::*;
        use Relation::*;
        // m + h = 1.25 ≤ p + b = 1.0 + 0.25: shown, so PASS even when it must be shown.
        assert_eq!(
            status(1.0, 0.25, AtMost, 1.0, 0.25, Demonstrated, Holds),
            Status::Pass
        );
        // m − h = 0.5 = p + b exactly: the tie is not a refutation.
        assert_eq!(
            status(1.0, 0.5, AtMost, 0.25, 0.25, NotRefuted, Holds),
            Status::Pass
        );
        assert_eq!(
            status(1.0, 0.5, AtMost, 0.25, 0.2, NotRefuted, Holds),
            Status::Fail
        );
        assert_eq!(
            status(0.0, 0.5, AtLeast, 0.75, 0.25, NotRefuted, Holds),
            Status::Pass
        );
        for (r, sym) in [(Approx, "≈"), (AtMost, "≤"), (AtLeast, "≥"), (Differs, "≠")] {
            assert_eq!(r.symbol(), sym);
            assert_eq!(serde_json::to_value(r).unwrap(), sym);
        }
    }

    #[test]
    fn missing_data_never_passes() {
        use Relation::*;
        for m in [f64::NAN, f64::INFINITY] {
            let s = status(m, 0.1, Approx, 1.0, 1e9, Burden::NotRefuted, Expect::Holds);
            assert_eq!(s, Status::Fail);
        }
        let s = status(
            1.0,
            f64::NAN,
            AtMost,
            5.0,
            0.0,
            Burden::NotRefuted,
            Expect::Holds,
        );
        assert_eq!(s, Status::Fail);
        let mut e = Estimate::exact(1.0);
        e.complete = false;
        let v = Verdict::judge(
            claim(),
            e,
            AtMost,
            2.0,
            Allowance::new(0.0, ""),
            Burden::NotRefuted,
            Expect::Holds,
        );
        assert_eq!(v.status, Status::Fail);
        assert_eq!(Estimate::of(&[1.0]).half.map(f64::is_nan), Some(true));
    }

    #[test]
    fn the_printed_tolerance_is_half_width_plus_allowance() {
        let v = Verdict::judge(
            claim(),
            Estimate::with_half(2.0, 0.25),
            Relation::Approx,
            2.1,
            Allowance::new(0.5, "x"),
            Burden::NotRefuted,
            Expect::Holds,
        );
        assert_eq!(v.tolerance, 0.75);
        assert_eq!(v.interval, Some((1.75, 2.25)));
        assert_eq!(v.tolerance_from, "x");
        let e = Verdict::judge(
            claim(),
            Estimate::exact(1.0),
            Relation::AtMost,
            1.0,
            Allowance::new(1e-12, ""),
            Burden::NotRefuted,
            Expect::Holds,
        );
        assert_eq!(e.interval, None);
        assert_eq!(e.status, Status::Pass);
    }

    fn sampled(m: f64, h: f64, rel: Relation, p: f64, b: f64, n: usize, k: usize) -> Verdict {
        Verdict::judge(
            claim(),
            Estimate::sampled(m, h, n, k),
            rel,
            p,
            Allowance::new(b, ""),
            Burden::NotRefuted,
            Expect::Holds,
        )
    }

    /// The edges of each relation's allowance (all values exact in binary).
    #[test]
    fn edges_of_the_allowance() {
        use Burden::*;
        use Expect::*;
        use Relation::*;
        // ≥ shown through the allowance alone: m − h = 0.875 ≥ p − b = 0.75 (not ≥ p + b).
        assert_eq!(
            status(1.0, 0.125, AtLeast, 1.0, 0.25, Demonstrated, Holds),
            Status::Pass
        );
        // ≠ needs |m − p| beyond h + b strictly: a tie, or a gap between h − b and h + b,
        // does not show the difference.
        for m in [1.5, 1.375] {
            assert_eq!(
                status(m, 0.25, Differs, 1.0, 0.25, Demonstrated, Deviates),
                Status::KnownDeviation,
                "m = {m}"
            );
        }
        // An exact value at the edge of its allowance is not refuted: p = 1, not 0.
        let v = Verdict::judge(
            claim(),
            Estimate::exact(1.25),
            AtMost,
            1.0,
            Allowance::new(0.25, ""),
            NotRefuted,
            Holds,
        );
        assert_eq!((v.status, v.p), (Status::Pass, Some(1.0)));
    }

    #[test]
    fn p_of_a_known_excess() {
        // Two seeds: Student-t with one degree of freedom is Cauchy, T(1) = 3/4 exactly, so
        // an excess of one standard error has p = 2 (1 − 3/4) = 1/2.
        let se = 0.3;
        let h = tol::t_family(2, 1) * se;
        let v = sampled(1.0 + 0.2 + se, h, Relation::AtMost, 1.0, 0.2, 2, 1);
        assert!((v.p.unwrap() - 0.5).abs() < 1e-12, "{:?}", v.p);
        // ≥ mirrors ≤; ≈ takes |m − p|.
        let v = sampled(1.0 - 0.2 - se, h, Relation::AtLeast, 1.0, 0.2, 2, 1);
        assert!((v.p.unwrap() - 0.5).abs() < 1e-12);
        let v = sampled(1.0 - 0.2 - se, h, Relation::Approx, 1.0, 0.2, 2, 1);
        assert!((v.p.unwrap() - 0.5).abs() < 1e-12);
        // Three comparisons: Bonferroni triples it (the half-width is the k = 3 one).
        let h3 = tol::t_family(2, 3) * se;
        let v = sampled(1.0 + se / 4.0, h3, Relation::AtMost, 1.0, 0.0, 2, 3);
        // T(1/4) = 1/2 + atan(1/4)/π.
        let want = 3.0 * 2.0 * (0.5 - 0.25f64.atan() / std::f64::consts::PI);
        assert!((v.p.unwrap() - want.min(1.0)).abs() < 1e-12, "{:?}", v.p);
        // On the safe side: p is 1.
        let v = sampled(0.0, h, Relation::AtMost, 1.0, 0.0, 2, 1);
        assert_eq!(v.p, Some(1.0));
    }

    #[test]
    fn a_row_fails_exactly_when_p_is_below_five_percent() {
        for n in [2, 3, 8, 30] {
            for k in [1, 4, 17] {
                let h = tol::t_family(n, k);
                for rel in [Relation::Approx, Relation::AtMost, Relation::AtLeast] {
                    for i in -40..=40 {
                        // Measured from far on the safe side to far on the refuting side,
                        // avoiding the exact edge (a tie).
                        let m = 1.0 + 0.1 * i as f64 + 0.0123;
                        let v = sampled(m, h, rel, 1.0, 0.5, n, k);
                        let p = v.p.unwrap();
                        assert_eq!(
                            v.status == Status::Fail,
                            p < ALPHA,
                            "n {n} k {k} {rel:?} m {m}: p {p} {:?}",
                            v.status
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn p_only_where_a_refutation_fails_the_row() {
        let judge = |e: Estimate, burden, expect| {
            Verdict::judge(
                claim(),
                e,
                Relation::AtMost,
                1.0,
                Allowance::new(0.0, ""),
                burden,
                expect,
            )
            .p
        };
        let e = Estimate::sampled(2.0, 0.1, 5, 1);
        assert!(judge(e, Burden::NotRefuted, Expect::Holds).unwrap() < 1e-4);
        assert!(judge(e, Burden::ThreeWay, Expect::Holds).is_some());
        assert_eq!(judge(e, Burden::Demonstrated, Expect::Holds), None);
        assert_eq!(judge(e, Burden::NotRefuted, Expect::Deviates), None);
        // Exact: certain either way. Missing data: refuted for sure. A half-width of
        // unknown origin: no p.
        assert_eq!(
            judge(Estimate::exact(2.0), Burden::NotRefuted, Expect::Holds),
            Some(0.0)
        );
        assert_eq!(
            judge(Estimate::exact(0.5), Burden::NotRefuted, Expect::Holds),
            Some(1.0)
        );
        let nan = Estimate::sampled(f64::NAN, 0.1, 5, 1);
        assert_eq!(judge(nan, Burden::NotRefuted, Expect::Holds), Some(0.0));
        let other = Estimate::with_half(2.0, 0.1);
        assert_eq!(judge(other, Burden::NotRefuted, Expect::Holds), None);
        // Fewer than two seeds: no sample, so no interval, so FAIL with p 0.
        assert_eq!(Estimate::sampled(1.0, f64::NAN, 1, 1).sampling, None);
        let ne = Verdict::judge(
            claim(),
            Estimate::sampled(2.0, 0.5, 4, 1),
            Relation::Differs,
            1.0,
            Allowance::new(0.0, ""),
            Burden::NotRefuted,
            Expect::Holds,
        );
        assert_eq!(ne.p, Some(1.0), "≠ cannot be refuted");
    }

    #[test]
    fn holm_steps_down() {
        let row = |p: Option<f64>, status| Verdict {
            p,
            status,
            ..Verdict::judge(
                claim(),
                Estimate::exact(0.0),
                Relation::Approx,
                0.0,
                Allowance::new(0.0, ""),
                Burden::NotRefuted,
                Expect::Holds,
            )
        };
        let mut v = vec![
            row(Some(0.01), Status::Fail),
            row(Some(0.04), Status::Fail),
            row(None, Status::Fail),
            row(Some(0.03), Status::Fail),
            row(Some(0.005), Status::Fail),
        ];
        assert!(
            v.iter().all(Verdict::fails_run),
            "before Holm every FAIL counts"
        );
        holm(&mut v);
        // Sorted 0.005, 0.01, 0.03, 0.04 over m = 4: 0.02, 0.03, 0.06, max(0.04, 0.06).
        let adjusted: Vec<Option<f64>> = v.iter().map(|r| r.holm_p).collect();
        let want = [Some(0.03), Some(0.06), None, Some(0.06), Some(0.02)];
        for (a, w) in adjusted.iter().zip(want) {
            assert_eq!(a.is_some(), w.is_some());
            if let (Some(a), Some(w)) = (a, w) {
                assert!((a - w).abs() < 1e-15, "{adjusted:?}");
            }
        }
        let fails: Vec<bool> = v.iter().map(Verdict::fails_run).collect();
        assert_eq!(fails, [true, false, true, false, true]);
        // A Holm p of exactly α keeps the claim: the run fails below α only.
        let mut edge = row(None, Status::Fail);
        edge.holm_p = Some(ALPHA);
        assert!(!edge.fails_run());
        edge.holm_p = Some(ALPHA - 1e-12);
        assert!(edge.fails_run());
        // Capped at 1.
        let mut big = vec![row(Some(0.6), Status::Pass), row(Some(0.9), Status::Pass)];
        holm(&mut big);
        assert_eq!(big[0].holm_p, Some(1.0));
        assert_eq!(big[1].holm_p, Some(1.0));
    }

    /// Calibration under the null: claims that hold exactly (target = the true mean, no
    /// allowance), seeds drawn N(0, 1). Each row FAILs with probability 5%; the run's Holm
    /// rejects anything with probability at most 5%, while "any row FAILs" is near-certain.
    /// 4000 runs of 40 rows with 6 seeds: the per-row rate's standard error is
    /// √(0.05·0.95/160000) = 5.4e-4, the family-wise rate's at most √(0.05·0.95/4000) = 3.4e-3;
    /// the bounds are 4 standard errors.
    #[test]
    fn holm_controls_the_run_and_rows_keep_their_level() {
        use ndarray_rand::rand::{Rng, SeedableRng};
        use ndarray_rand::rand_distr::StandardNormal;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (runs, rows, n) = (4000, 40, 6);
        let (mut row_fails, mut any_row, mut any_holm) = (0usize, 0usize, 0usize);
        for _ in 0..runs {
            let mut v: Vec<Verdict> = (0..rows)
                .map(|_| {
                    let x: Vec<f64> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
                    Verdict::judge(
                        claim(),
                        Estimate::of(&x),
                        Relation::Approx,
                        0.0,
                        Allowance::new(0.0, ""),
                        Burden::NotRefuted,
                        Expect::Holds,
                    )
                })
                .collect();
            let f = v.iter().filter(|r| r.status == Status::Fail).count();
            row_fails += f;
            any_row += usize::from(f > 0);
            holm(&mut v);
            any_holm += usize::from(v.iter().any(Verdict::fails_run));
        }
        let per_row = row_fails as f64 / (runs * rows) as f64;
        assert!((per_row - 0.05).abs() < 4.0 * 5.4e-4, "{per_row}");
        let fwer = any_holm as f64 / runs as f64;
        assert!(fwer < 0.05 + 4.0 * 3.4e-3, "{fwer}");
        // 1 − 0.95^40 = 0.87: the per-row rule alone does not control the run.
        assert!(any_row as f64 / runs as f64 > 0.8);
    }
}
