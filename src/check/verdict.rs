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

use crate::summary::mean_ci;
use serde::Serialize;

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
}

impl Estimate {
    /// The seed mean of `values` and its Student-t half-width (NaN half-width with fewer than
    /// two values, so the verdict fails: missing data never passes).
    pub fn of(values: &[f64]) -> Estimate {
        match mean_ci(values) {
            Some((mean, Some(h))) => Estimate::with_half(mean, h),
            Some((mean, None)) => Estimate::with_half(mean, f64::NAN),
            None => Estimate::with_half(f64::NAN, f64::NAN),
        }
    }

    /// A mean with a known half-width.
    pub fn with_half(mean: f64, half: f64) -> Estimate {
        Estimate {
            mean,
            half: Some(half),
            complete: true,
        }
    }

    /// An exact value (no interval).
    pub fn exact(mean: f64) -> Estimate {
        Estimate {
            mean,
            half: None,
            complete: true,
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

impl Verdict {
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
}
