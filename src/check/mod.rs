//! Named predictions of mean-field theory held against simulation, each a verdict with its
//! statement, formula, measured value and 95% interval, target, relation, and a tolerance
//! whose origin is written next to it (`analysis/checks.md`).
//!
//! - [`Claim`]: what a check predicts, which simulations it needs, and how it judges them.
//!   Claims that can be written as data are data: the presets' files
//!   `analysis/claims/ci.json` and `full.json` ([`data`]: every curve, C3b, C6, Xiong 2020,
//!   DeepNet 2022), the same format as a user's `check --claims` file. The others are code,
//!   one file per group: [`c1`] … [`c7`], [`dong`], [`sun`], [`kedia`] (a per-token bound,
//!   slopes of transformed quantities, ratios between configurations, bounds from the
//!   theory's gains, exponents compared across losses).
//! - [`verdict`]: the one constructor every verdict goes through ([`Verdict::judge`]).
//! - [`tol`]: the tolerance policy, every constant with its source.
//! - [`evidence`]: what claims are judged on ([`Evidence`]) and the [`Runner`] that
//!   simulates (once per configuration, in parallel, cached on disk if asked) and predicts.
//! - [`accuracy`]: relative-error percentiles of the predictions (reported, not a verdict).
//! - [`power`]: which verdicts FAIL when one ingredient of the theory is changed by up to
//!   20% (`check --power`).
//!
//! [`run`] knows no claim by name: it prepares the simulations every claim declares and
//! asks each claim for its verdicts.
//!
//! ```no_run
//! use spannorm::check::{self, evidence::{Perturbation, Runner}, Group, Preset};
//! let claims = check::claims(Preset::Ci, Group::ALL).unwrap();
//! let runner = Runner::new(Perturbation::None, &|_| {});
//! let verdicts = check::run(&claims, &runner);
//! print!("{}", check::table(&verdicts));
//! ```

pub mod accuracy;
pub mod c1;
pub mod c2;
pub mod c3;
pub mod c4;
pub mod c5_c6;
pub mod c7;
pub mod curves;
pub mod data;
pub mod dong;
pub mod evidence;
pub mod kedia;
pub mod power;
pub mod sun;
pub mod tol;
pub mod verdict;

pub use evidence::{Evidence, Perturbation, Run, Runner};
pub use verdict::{Status, Verdict};

use crate::choice_enum;
use crate::config::{RawConfig, SimConfig};
use crate::error::ConfigError;
use crate::init::Init;
use crate::placement::Placement;
use std::fmt::Write as _;

/// A check: what it predicts, which simulations it needs, and how it judges them.
pub trait Claim: Sync {
    /// The group it belongs to.
    fn group(&self) -> Group;
    /// The simulations it needs (the runner simulates them together before judging).
    fn runs(&self) -> Vec<SimConfig>;
    /// Its verdicts on `ev`.
    fn judge(&self, ev: &dyn Evidence) -> Vec<Verdict>;
}

choice_enum!(
    /// A group of checks.
    Group, "group", {
        /// Every quantity of every placement along the layers.
        Curves => "curves",
        /// PreNorm variance growth.
        C1 => "C1",
        /// PostNorm gradient.
        C2 => "C2",
        /// SpanNorm bounded variance and gradients.
        C3 => "C3",
        /// span-outer hard bound.
        C4 => "C4",
        /// Representation and rank collapse.
        C5C6 => "C5-C6",
        /// Width convergence.
        C7 => "C7",
        /// Xiong et al. 2020.
        Xiong => "xiong",
        /// Dong et al. 2021.
        Dong => "dong",
        /// DeepNet 2022.
        Deepnet => "deepnet",
        /// LayerNorm Scaling 2025.
        Sun => "sun",
        /// Kedia et al. 2024: Pre-LN's backward recursion, by loss.
        Kedia => "kedia",
        /// A user's claims file.
        User => "user",
    }
);

impl Group {
    /// Every group, in table order.
    pub const ALL: &'static [Group] = <Group as crate::choice::Choice>::ALL;
}

/// Sizes of a check run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Small widths and depths: about a minute on two cores; run by CI.
    Ci,
    /// Widths up to 1024 and depths up to 4096.
    Full,
}

/// The sizes of a preset.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Width of the claims' stacks.
    pub width: usize,
    /// Tokens.
    pub tokens: usize,
    /// Heads.
    pub heads: usize,
    /// Depth of the claims' stacks.
    pub depth: usize,
    /// Seeds of the claims' stacks.
    pub seeds: usize,
    /// Width, depth and seeds of the per-layer curves, the accuracy percentiles and C7
    /// (whose widths end at this one).
    pub curve: (usize, usize, usize),
    /// Width of the depth sweeps.
    pub deep_width: usize,
    /// Depths of the depth sweeps.
    pub depths: &'static [usize],
    /// Widths of the width-convergence fit.
    pub widths: &'static [usize],
}

impl Sizes {
    /// The sizes of the curve comparisons.
    pub fn for_curves(&self) -> Sizes {
        let (width, depth, seeds) = self.curve;
        Sizes {
            width,
            depth,
            seeds,
            ..*self
        }
    }

    /// The sizes of the depth sweeps.
    pub fn for_depth_sweeps(&self) -> Sizes {
        Sizes {
            width: self.deep_width,
            ..*self
        }
    }

    /// A `placement` stack of these sizes with `zero-query` init (exact attention maps), as
    /// a builder to adjust.
    pub fn base(&self, placement: Placement) -> RawConfig {
        SimConfig::builder()
            .placement(placement)
            .depth(self.depth)
            .width(self.width)
            .tokens(self.tokens)
            .heads(self.heads)
            .seeds(self.seeds)
            .init(Init::ZeroQuery)
    }
}

impl Preset {
    /// The preset's sizes.
    pub fn sizes(self) -> Sizes {
        match self {
            Preset::Ci => Sizes {
                width: 128,
                tokens: 16,
                heads: 4,
                depth: 16,
                seeds: 12,
                curve: (128, 16, 12),
                deep_width: 128,
                depths: &[16, 64, 256],
                widths: &[32, 64, 128, 256],
            },
            // What two cores finish in about an hour: the curves at d = 1024, the claims at
            // d = 256, the depth sweeps to L = 4096 at d = 128 (analysis/checks.md).
            Preset::Full => Sizes {
                width: 256,
                tokens: 64,
                heads: 4,
                depth: 64,
                seeds: 12,
                curve: (1024, 16, 8),
                deep_width: 128,
                depths: &[16, 64, 256, 1024, 4096],
                widths: &[64, 128, 256, 512, 1024],
            },
        }
    }
}

/// The claims of a preset written as data (`analysis/claims/`).
fn preset_data(preset: Preset) -> (&'static str, &'static str) {
    match preset {
        Preset::Ci => (
            "analysis/claims/ci.json",
            include_str!("../../analysis/claims/ci.json"),
        ),
        Preset::Full => (
            "analysis/claims/full.json",
            include_str!("../../analysis/claims/full.json"),
        ),
    }
}

/// The claims of `preset` in `groups`, group by group in table order (within a group, the
/// claims in code first, then those in the preset's claims file); an error only if a
/// preset's configuration is invalid.
pub fn claims(preset: Preset, groups: &[Group]) -> Result<Vec<Box<dyn Claim>>, ConfigError> {
    let s = preset.sizes();
    let (file, text) = preset_data(preset);
    let data = data::parse(text, file, Group::User).map_err(|e| ConfigError::File {
        path: file.into(),
        reason: e.what,
    })?;
    let mut out: Vec<Box<dyn Claim>> = Vec::new();
    for &g in Group::ALL.iter().filter(|g| groups.contains(g)) {
        match g {
            Group::C1 => out.extend(c1::claims(&s)?),
            Group::C2 => out.extend(c2::claims(&s)?),
            Group::C3 => out.extend(c3::claims(&s)?),
            Group::C4 => out.extend(c4::claims(&s)?),
            Group::C5C6 => out.extend(c5_c6::claims(&s)?),
            Group::C7 => out.extend(c7::claims(&s)?),
            Group::Dong => out.extend(dong::claims(&s)?),
            Group::Sun => out.extend(sun::claims(&s)?),
            Group::Kedia => out.extend(kedia::claims(&s)?),
            Group::Curves | Group::Xiong | Group::Deepnet | Group::User => {}
        }
        for c in data.iter().filter(|c| c.group() == g) {
            out.push(Box::new(c.clone()));
        }
    }
    Ok(out)
}

/// Simulates what `claims` need (once each) and collects their verdicts, in order.
pub fn run(claims: &[Box<dyn Claim>], runner: &Runner) -> Vec<Verdict> {
    run_grouped(claims, runner)
        .into_iter()
        .map(|(v, _)| v)
        .collect()
}

/// [`run`], each verdict with the group of its claim, with Holm's adjustment over the run
/// ([`verdict::holm`]).
pub fn run_grouped(claims: &[Box<dyn Claim>], runner: &Runner) -> Vec<(Verdict, Group)> {
    runner.prepare_claims(claims);
    let (mut verdicts, groups): (Vec<Verdict>, Vec<Group>) = claims
        .iter()
        .flat_map(|c| c.judge(runner).into_iter().map(move |v| (v, c.group())))
        .unzip();
    verdict::holm(&mut verdicts);
    verdicts.into_iter().zip(groups).collect()
}

/// The rows that fail the run ([`Verdict::fails_run`]).
pub fn run_failures(verdicts: &[Verdict]) -> usize {
    verdicts.iter().filter(|v| v.fails_run()).count()
}

/// Verdict counts: `(pass, fail, deviation, inconclusive)`.
pub fn counts(verdicts: &[Verdict]) -> (usize, usize, usize, usize) {
    let n = |s: Status| verdicts.iter().filter(|v| v.status == s).count();
    (
        n(Status::Pass),
        n(Status::Fail),
        n(Status::KnownDeviation),
        n(Status::Inconclusive),
    )
}

/// A number as the verdict table prints it.
fn num(v: f64) -> String {
    if v.is_finite() && (v.abs() >= 1e4 || (v != 0.0 && v.abs() < 1e-3)) {
        format!("{v:.4e}")
    } else {
        format!("{v:.5}")
    }
}

/// A `p` as the tables print it: two significant digits, `<1e-4` below, `-` for none.
fn p_text(p: Option<f64>) -> String {
    match p {
        None => "-".into(),
        Some(p) if p < 1e-4 => "<1e-4".into(),
        Some(p) if p < 0.01 => format!("{p:.1e}"),
        Some(p) => format!("{p:.2}"),
    }
}

/// The verdict table: name, measured, interval, relation, predicted, tolerance, Holm's `p`,
/// verdict.
pub fn table(verdicts: &[Verdict]) -> String {
    let mut out = format!(
        "{:<58} {:>12} {:>25} {:>3} {:>12} {:>10} {:>7}  {}\n",
        "prediction", "measured", "95% interval", "", "target", "tolerance", "Holm p", "verdict"
    );
    for v in verdicts {
        let interval = v.interval.map_or("-".to_string(), |(a, b)| {
            format!("[{}, {}]", num(a), num(b))
        });
        let _ = writeln!(
            out,
            "{:<58} {:>12} {:>25} {:>3} {:>12} {:>10} {:>7}  {}",
            v.name,
            num(v.measured),
            interval,
            v.relation.symbol(),
            num(v.predicted),
            num(v.tolerance),
            p_text(v.holm_p),
            v.status.word()
        );
    }
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The verdicts as a JUnit XML report (one test case per verdict, classname its group;
/// a FAIL that fails the run a failure ([`Verdict::fails_run`]; a FAIL that Holm's
/// adjustment does not keep is a pass whose output says so), INCONCLUSIVE a failure with
/// `strict` and skipped otherwise, DEVIATION a pass whose output says so), for CI systems
/// that display test reports.
pub fn junit(verdicts: &[Verdict], groups: &[Group], strict: bool) -> String {
    let (_, _, _, inc) = counts(verdicts);
    let failures = run_failures(verdicts) + if strict { inc } else { 0 };
    let skipped = if strict { 0 } else { inc };
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"spannorm check\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n  <testsuite name=\"spannorm check\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n",
        verdicts.len(),
        verdicts.len()
    );
    for (v, g) in verdicts.iter().zip(groups) {
        let detail = format!(
            "measured {} {} {} (tolerance {}, {}); interval {}; p {}, Holm p {}; {}",
            num(v.measured),
            v.relation.symbol(),
            num(v.predicted),
            num(v.tolerance),
            v.tolerance_from,
            v.interval
                .map_or("-".into(), |(a, b)| format!("[{}, {}]", num(a), num(b))),
            p_text(v.p),
            p_text(v.holm_p),
            v.at
        );
        let _ = write!(
            s,
            "    <testcase name=\"{}\" classname=\"spannorm.{g}\">",
            xml(&v.name)
        );
        match v.status {
            Status::Fail if v.fails_run() => {
                let _ = write!(s, "<failure message=\"FAIL\">{}</failure>", xml(&detail));
            }
            Status::Fail => {
                let _ = write!(
                    s,
                    "<system-out>FAIL at the row's 5% level, not at the run's (Holm): {}</system-out>",
                    xml(&detail)
                );
            }
            Status::Inconclusive if strict => {
                let _ = write!(
                    s,
                    "<failure message=\"INCONCLUSIVE\">{}</failure>",
                    xml(&detail)
                );
            }
            Status::Inconclusive => {
                let _ = write!(s, "<skipped message=\"INCONCLUSIVE: {}\"/>", xml(&detail));
            }
            Status::KnownDeviation => {
                let _ = write!(s, "<system-out>DEVIATION: {}</system-out>", xml(&detail));
            }
            Status::Pass => {
                let _ = write!(s, "<system-out>PASS: {}</system-out>", xml(&detail));
            }
        }
        s += "</testcase>\n";
    }
    s + "  </testsuite>\n</testsuites>\n"
}

/// The verdicts as a Markdown table (for a CI job summary), after the counts and the
/// run-level lines.
pub fn markdown(verdicts: &[Verdict]) -> String {
    let cell = |t: &str| t.replace('|', "\\|");
    let mut s = format!("**spannorm check**: {}\n\n", summary_line(verdicts));
    for line in [family_line(verdicts), allowance_line(verdicts)]
        .into_iter()
        .flatten()
    {
        s += &format!("{line}.\n\n");
    }
    s += "| verdict | claim | measured | 95% interval | | target | tolerance | Holm p | where |\n| --- | --- | ---: | --- | --- | ---: | ---: | ---: | --- |\n";
    for v in verdicts {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.status.word(),
            cell(&v.name),
            num(v.measured),
            v.interval
                .map_or("-".into(), |(a, b)| format!("[{}, {}]", num(a), num(b))),
            v.relation.symbol(),
            num(v.predicted),
            num(v.tolerance),
            p_text(v.holm_p),
            cell(&v.at)
        );
    }
    s
}

/// The one-line count, with the run-level statement when Holm's adjustment has run:
/// `78 PASS, 0 FAIL, 5 DEVIATION; Holm over 70 refutable rows: 0 refuted at 5% (smallest
/// adjusted p 0.31)`.
pub fn summary_line(verdicts: &[Verdict]) -> String {
    let (pass, fail, dev, inc) = counts(verdicts);
    let mut s = format!("{pass} PASS, {fail} FAIL, {dev} DEVIATION");
    if inc > 0 {
        s += &format!(", {inc} INCONCLUSIVE");
    }
    let adjusted: Vec<f64> = verdicts.iter().filter_map(|v| v.holm_p).collect();
    if let Some(least) = adjusted.iter().copied().reduce(f64::min) {
        let refuted = adjusted.iter().filter(|&&q| q < verdict::ALPHA).count();
        s += &format!(
            "; Holm over {} refutable rows: {refuted} refuted at 5% (smallest adjusted p {})",
            adjusted.len(),
            p_text(Some(least))
        );
    }
    s
}

/// What the run's many rows imply for its error rate: with `r` refutable rows each judged
/// at 5%, the per-row rule alone would FAIL some row of a run whose claims all hold at the
/// edge of their allowances with probability up to `1 − 0.95^r` (independent rows; at most
/// `min(1, 0.05 r)` for any dependence); Holm's adjustment, which decides the exit code,
/// keeps it at most 5%. `None` before [`verdict::holm`] has run or without such rows.
pub fn family_line(verdicts: &[Verdict]) -> Option<String> {
    let r = verdicts.iter().filter(|v| v.holm_p.is_some()).count();
    if r == 0 {
        return None;
    }
    let independent = 1.0 - (1.0 - verdict::ALPHA).powi(r as i32);
    let kept = verdicts
        .iter()
        .filter(|v| v.status == Status::Fail && !v.fails_run())
        .count();
    let mut s = format!(
        "family-wise: {r} refutable rows at 5% each would FAIL some row by chance with \
         probability up to {:.0}% if independent ({:.0}% for any dependence); the exit code \
         follows Holm's adjustment, which keeps it at most 5%",
        100.0 * independent,
        100.0 * (verdict::ALPHA * r as f64).min(1.0)
    );
    if kept > 0 {
        s += &format!(" ({kept} FAIL rows are not refuted over the run)");
    }
    Some(s)
}

/// How many refutable rows with a seed interval lie inside their bias allowance alone
/// (`|m − p| ≤ b` for `≈`, `m ≤ p + b` for `≤`, `m ≥ p − b` for `≥`, with `b` the
/// tolerance minus the half-width): rows the seed interval does not decide, so only the
/// allowance stands between them and a FAIL. `None` without such rows.
pub fn allowance_line(verdicts: &[Verdict]) -> Option<String> {
    let rows: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| v.p.is_some() && v.interval.is_some())
        .collect();
    if rows.is_empty() {
        return None;
    }
    let inside = rows
        .iter()
        .filter(|v| {
            let (lo, hi) = v.interval.unwrap_or_default();
            let b = v.tolerance - (hi - lo) / 2.0;
            verdict::excess(v.measured, v.relation, v.predicted, b).is_some_and(|e| e <= 0.0)
        })
        .count();
    Some(format!(
        "allowance: {inside} of {} refutable rows with a seed interval are inside their bias \
         allowance alone (the seeds' interval decides none of them)",
        rows.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_builds_its_claims() {
        for p in [Preset::Ci, Preset::Full] {
            let c = claims(p, Group::ALL).unwrap();
            assert!(c.len() >= 20, "{}", c.len());
            assert!(c
                .iter()
                .all(|c| !c.runs().is_empty() || c.group() == Group::C4));
        }
        let only = claims(Preset::Ci, &[Group::C1]).unwrap();
        assert!(only.iter().all(|c| c.group() == Group::C1));
    }

    /// Ten true claims and one that FAILs at its own level (p = 0.02) but not over the run
    /// (Holm p = 11 · 0.02 = 0.22), and one refuted beyond doubt (p < 1e-4): the exit count,
    /// JUnit, the counts and the family-wise line say which is which.
    #[test]
    fn the_run_fails_only_on_what_holm_keeps() {
        use verdict::{Allowance, Burden, Claimed, Estimate, Expect, Relation};
        let se = 0.1;
        let t = tol::t_family(8, 1);
        // An excess of z standard errors has p = 2 (1 − T_7(z)).
        let row = |name: &str, z: f64| {
            Verdict::judge(
                Claimed::new(name, "", "", ""),
                Estimate::sampled(1.0 + z * se, t * se, 8, 1),
                Relation::AtMost,
                1.0,
                Allowance::new(0.0, ""),
                Burden::NotRefuted,
                Expect::Holds,
            )
        };
        let tz = {
            use statrs::distribution::{ContinuousCDF, StudentsT};
            StudentsT::new(0.0, 1.0, 7.0).unwrap().inverse_cdf(0.99)
        };
        let mut v: Vec<Verdict> = (0..10).map(|i| row(&format!("ok{i}"), -1.0)).collect();
        v.push(row("marginal", tz));
        v.push(row("refuted", 40.0));
        assert_eq!(run_failures(&v), 2, "before Holm every FAIL counts");
        verdict::holm(&mut v);
        assert!((v[10].p.unwrap() - 0.02).abs() < 1e-9);
        assert!(
            (v[10].holm_p.unwrap() - 0.22).abs() < 1e-9,
            "{:?}",
            v[10].holm_p
        );
        assert_eq!(run_failures(&v), 1);
        let groups = vec![Group::User; v.len()];
        let xml = junit(&v, &groups, false);
        assert!(xml.contains(r#"tests="12" failures="1""#), "{xml}");
        assert!(xml.contains("not at the run's (Holm)"));
        let line = summary_line(&v);
        assert!(
            line.starts_with(
                "10 PASS, 2 FAIL, 0 DEVIATION; Holm over 12 refutable rows: 1 refuted at 5%"
            ),
            "{line}"
        );
        let fam = family_line(&v).unwrap();
        assert!(
            fam.contains("up to 46% if independent (60% for any dependence)"),
            "{fam}"
        );
        assert!(
            fam.ends_with("(1 FAIL rows are not refuted over the run)"),
            "{fam}"
        );
        assert!(table(&v).contains("   0.22  FAIL"), "{}", table(&v));
        assert!(markdown(&v).contains("| 0.22 |"));
        // No allowance here: only the ten rows below their bound are inside it.
        assert_eq!(
            allowance_line(&v).unwrap(),
            "allowance: 10 of 12 refutable rows with a seed interval are inside their bias allowance alone (the seeds' interval decides none of them)"
        );
    }
}
