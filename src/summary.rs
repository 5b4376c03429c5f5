//! Means over seeds with 95% Student-t intervals, and why an entry has fewer seeds.
//!
//! For `k` finite values `v_1..v_k` at one layer: `mean = Σ v / k`,
//! `half = t_{0.975, k−1} · s / sqrt(k)` with `s` the sample standard deviation, and the
//! interval `[mean − half, mean + half]`. With one value the interval is `null`.
//!
//! Every value a seed does not contribute is accounted for: a [`Series`] lists, in
//! `missing`, each run of entries where seeds are absent and the [`Reason`] (the seed
//! diverged or its signal vanished before reaching it, the quantity is exactly zero so its
//! logarithm is undefined, it does not fit in `f64`, or it is not defined at that point of
//! that placement). Values too large for the usual sums (near `f64::MAX`) are summed scaled
//! by their largest magnitude; a mean that still does not fit is missing (`overflow`), and
//! an interval that does not fit is `null` with reason `interval-overflow`.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Why an entry of a series has fewer values than seeds (or, for a prediction, none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The seed's run stopped at a non-finite value before this entry.
    Diverged,
    /// The seed's signal underflowed to exactly zero before this entry.
    Vanished,
    /// The quantity is exactly zero here, so its logarithm is undefined (a weight whose
    /// gradient vanishes identically, such as `W_k` under `zero-query`).
    Zero,
    /// The value does not fit in `f64` (a linear gradient norm of `10^4653`, say; its
    /// `log10` series has it).
    Overflow,
    /// The quantity is not defined here (`q_pre_norm` of a block without a closing norm).
    Undefined,
    /// The theory gives no prediction for this quantity.
    NotPredicted,
    /// The mean is finite but its interval does not fit in `f64` (`lo`, `hi` null).
    IntervalOverflow,
}

/// A run of entries `from..=to` where `seeds` values are absent for `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// First index of the run.
    pub from: usize,
    /// Last index of the run (inclusive).
    pub to: usize,
    /// Seeds absent at each entry of the run (0 for a prediction, or for an interval).
    pub seeds: usize,
    /// Why.
    pub reason: Reason,
}

/// One seed's value of one entry, or why it has none.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sample {
    /// A finite value.
    Value(f64),
    /// No value, and why.
    Missing(Reason),
}

/// One quantity along the layers: mean, 95% interval and the number of seeds behind each
/// entry, with the reasons for any seed that is absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Mean over seeds (`null` where no seed has a value).
    pub mean: Vec<Option<f64>>,
    /// Lower end of the 95% interval (`null` with fewer than two values).
    pub lo: Vec<Option<f64>>,
    /// Upper end of the 95% interval.
    pub hi: Vec<Option<f64>>,
    /// Seeds behind each entry.
    pub n: Vec<usize>,
    /// Runs of entries with absent seeds, and why (empty when every seed is everywhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<Missing>,
}

/// `t_{0.975, k−1}`, the 95% two-sided Student-t quantile for `k ≥ 2` values; NaN for
/// `k < 2` (no interval exists).
pub fn t975(k: usize) -> f64 {
    if k < 2 {
        return f64::NAN;
    }
    StudentsT::new(0.0, 1.0, (k - 1) as f64).map_or(f64::NAN, |t| t.inverse_cdf(0.975))
}

/// Mean and 95% half-width of finite values (half-width `None` below two values, or when
/// it does not fit in `f64`); `None` without values or when the mean does not fit.
pub fn mean_ci(values: &[f64]) -> Option<(f64, Option<f64>)> {
    let k = values.len();
    if k == 0 {
        return None;
    }
    let mut mean = values.iter().sum::<f64>() / k as f64;
    // Near f64::MAX the plain sum overflows: sum scaled by the largest magnitude.
    let big = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if !mean.is_finite() {
        mean = big * (values.iter().map(|v| v / big).sum::<f64>() / k as f64);
    }
    if !mean.is_finite() {
        return None;
    }
    if k < 2 {
        return Some((mean, None));
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
    let mut half = t975(k) * (var / k as f64).sqrt();
    if !half.is_finite() && big > 0.0 {
        let scaled = values
            .iter()
            .map(|v| ((v - mean) / big).powi(2))
            .sum::<f64>();
        // `big` last: `t · big` alone can overflow where the half-width does not.
        half = big * (t975(k) * (scaled / (k - 1) as f64 / k as f64).sqrt());
    }
    let fits = half.is_finite() && (mean - half).is_finite() && (mean + half).is_finite();
    Some((mean, fits.then_some(half)))
}

/// Collects `(index, reason, count)` into runs of consecutive indices with the same
/// reason and count, ordered by first index then reason.
fn runs(mut at: Vec<(usize, Reason, usize)>) -> Vec<Missing> {
    at.sort_by_key(|&(i, r, _)| (r, i));
    let mut out: Vec<Missing> = Vec::new();
    for (i, reason, seeds) in at {
        match out.last_mut() {
            Some(m) if m.reason == reason && m.seeds == seeds && m.to + 1 == i => m.to = i,
            _ => out.push(Missing {
                from: i,
                to: i,
                seeds,
                reason,
            }),
        }
    }
    out.sort_by_key(|m| (m.from, m.reason));
    out
}

impl Series {
    /// Summarizes per-seed columns (each of the same length) entry by entry.
    pub fn summarize(per_seed: &[Vec<Sample>]) -> Series {
        let len = per_seed.first().map_or(0, |s| s.len());
        let mut out = Series::default();
        let mut absent = Vec::new();
        for i in 0..len {
            let mut vals = Vec::with_capacity(per_seed.len());
            let mut why: Vec<(Reason, usize)> = Vec::new();
            for s in per_seed {
                match s[i] {
                    Sample::Value(v) if v.is_finite() => vals.push(v),
                    Sample::Value(_) => bump(&mut why, Reason::Overflow),
                    Sample::Missing(r) => bump(&mut why, r),
                }
            }
            // `None` only without values: the mean of finite values always fits.
            let (mean, lo, hi) = match mean_ci(&vals) {
                None => (None, None, None),
                Some((m, None)) => {
                    if vals.len() >= 2 {
                        absent.push((i, Reason::IntervalOverflow, 0));
                    }
                    (Some(m), None, None)
                }
                Some((m, Some(h))) => (Some(m), Some(m - h), Some(m + h)),
            };
            absent.extend(why.into_iter().map(|(r, c)| (i, r, c)));
            out.mean.push(mean);
            out.lo.push(lo);
            out.hi.push(hi);
            out.n.push(vals.len());
        }
        out.missing = runs(absent);
        out
    }

    /// A series known exactly (a prediction: no seeds, `lo`, `hi` null, `n` 0), with the
    /// reason for each entry that has no value.
    pub fn exact(values: Vec<Result<f64, Reason>>) -> Series {
        let len = values.len();
        let mut absent = Vec::new();
        let mut mean = Vec::with_capacity(len);
        for (i, v) in values.into_iter().enumerate() {
            match v {
                Ok(x) if x.is_finite() => mean.push(Some(x)),
                Ok(_) => {
                    absent.push((i, Reason::Overflow, 0));
                    mean.push(None);
                }
                Err(r) => {
                    absent.push((i, r, 0));
                    mean.push(None);
                }
            }
        }
        Series {
            mean,
            lo: vec![None; len],
            hi: vec![None; len],
            n: vec![0; len],
            missing: runs(absent),
        }
    }

    /// The one-entry series at index `i` (its missing runs cut to that entry).
    pub fn at(&self, i: usize) -> Series {
        Series {
            mean: vec![self.mean[i]],
            lo: vec![self.lo[i]],
            hi: vec![self.hi[i]],
            n: vec![self.n[i]],
            missing: self
                .missing
                .iter()
                .filter(|m| m.from <= i && i <= m.to)
                .map(|m| Missing {
                    from: 0,
                    to: 0,
                    ..*m
                })
                .collect(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.mean.len()
    }

    /// Whether the series has no entries.
    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    /// Seeds absent at entry `i`, by reason.
    pub fn absent_at(&self, i: usize) -> Vec<(Reason, usize)> {
        self.missing
            .iter()
            .filter(|m| m.from <= i && i <= m.to)
            .map(|m| (m.reason, m.seeds))
            .collect()
    }
}

fn bump(why: &mut Vec<(Reason, usize)>, r: Reason) {
    bump_by(why, r, 1);
}

fn bump_by(why: &mut Vec<(Reason, usize)>, r: Reason, by: usize) {
    match why.iter_mut().find(|(x, _)| *x == r) {
        Some((_, c)) => *c += by,
        None => why.push((r, by)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(v: &[Option<f64>], reason: Reason) -> Vec<Sample> {
        v.iter()
            .map(|x| x.map_or(Sample::Missing(reason), Sample::Value))
            .collect()
    }

    #[test]
    fn t_quantiles_match_tables() {
        // Standard tables: t_{0.975} with 1, 7 and 30 degrees of freedom.
        assert!((t975(2) - 12.7062).abs() < 1e-4);
        assert!((t975(8) - 2.3646).abs() < 1e-4);
        assert!((t975(31) - 2.0423).abs() < 1e-4);
        assert!(t975(1).is_nan() && t975(0).is_nan());
    }

    #[test]
    fn series_skips_missing_seeds_and_says_why() {
        let a = col(&[Some(1.0), Some(2.0), Some(5.0)], Reason::Diverged);
        let b = col(&[Some(3.0), None, None], Reason::Diverged);
        let s = Series::summarize(&[a, b]);
        assert_eq!(s.mean, vec![Some(2.0), Some(2.0), Some(5.0)]);
        assert_eq!(s.n, vec![2, 1, 1]);
        assert_eq!(s.lo[1], None);
        let half = t975(2) * (2.0f64 / 2.0).sqrt();
        assert!((s.hi[0].unwrap() - (2.0 + half)).abs() < 1e-12);
        assert!((s.lo[0].unwrap() - (2.0 - half)).abs() < 1e-12);
        assert_eq!(
            s.missing,
            vec![Missing {
                from: 1,
                to: 2,
                seeds: 1,
                reason: Reason::Diverged
            }]
        );
        assert_eq!(s.absent_at(2), vec![(Reason::Diverged, 1)]);
        assert!(s.absent_at(0).is_empty());
        // The one-entry series at index 1: the run cut to its only entry, the values kept.
        let one = s.at(1);
        assert_eq!(
            one.missing,
            vec![Missing {
                from: 0,
                to: 0,
                seeds: 1,
                reason: Reason::Diverged
            }]
        );
        assert_eq!((one.mean, one.n), (vec![Some(2.0)], vec![1]));
        assert!(s.at(0).missing.is_empty());
        assert!(!s.is_empty() && Series::default().is_empty());
    }

    #[test]
    fn each_reason_is_counted_on_its_own() {
        // One entry: two seeds diverged, one vanished, one overflowed, one value.
        let seeds = [
            vec![Sample::Missing(Reason::Diverged)],
            vec![Sample::Missing(Reason::Vanished)],
            vec![Sample::Missing(Reason::Diverged)],
            vec![Sample::Value(f64::NAN)],
            vec![Sample::Value(4.0)],
        ];
        let s = Series::summarize(&seeds);
        assert_eq!((s.mean[0], s.n[0]), (Some(4.0), 1));
        let mut why = s.absent_at(0);
        why.sort();
        let want = [
            (Reason::Diverged, 2),
            (Reason::Vanished, 1),
            (Reason::Overflow, 1),
        ];
        assert_eq!(why, want);
        // Every seed missing: no value, and only the reasons that occurred.
        let s = Series::summarize(&seeds[..3]);
        assert_eq!((s.mean[0], s.n[0], s.lo[0]), (None, 0, None));
        let mut why = s.absent_at(0);
        why.sort();
        assert_eq!(why, [(Reason::Diverged, 2), (Reason::Vanished, 1)]);
    }

    #[test]
    fn a_known_interval_by_hand() {
        // Values 1, 2, 3, 6: mean 3, sample variance (4 + 1 + 0 + 9)/3 = 14/3.
        let (m, h) = mean_ci(&[1.0, 2.0, 3.0, 6.0]).unwrap();
        assert_eq!(m, 3.0);
        let want = t975(4) * (14.0f64 / 3.0 / 4.0).sqrt();
        assert!((h.unwrap() - want).abs() < 1e-12);
        assert_eq!(mean_ci(&[4.0]), Some((4.0, None)));
        assert_eq!(mean_ci(&[]), None);
    }

    #[test]
    fn huge_values_keep_their_mean_and_say_when_the_interval_overflows() {
        let big = f64::MAX / 1.5;
        // The plain sum overflows; the scaled one does not.
        let (m, h) = mean_ci(&[big, big]).unwrap();
        assert_eq!(m, big);
        assert_eq!(h, Some(0.0));
        // Unequal values: the scaled mean is big times the mean of v/big, 3/4 of the larger.
        let large = f64::MAX / 1.2;
        let (m, _) = mean_ci(&[large, large / 2.0]).unwrap();
        assert_eq!(m, 0.75 * large);
        // A variance beyond f64 with an interval inside it: the half-width is that of the
        // values divided by `large`, times `large`.
        let v: Vec<f64> = (0..64).map(|i| large * [1.0, 0.9][i % 2]).collect();
        let (_, h) = mean_ci(&v).unwrap();
        let unit: Vec<f64> = v.iter().map(|x| x / large).collect();
        let want = mean_ci(&unit).unwrap().1.unwrap() * large;
        let h = h.expect("the scaled interval fits");
        assert!((h / want - 1.0).abs() < 1e-12, "{h} vs {want}");
        // A finite half-width whose upper (lower) end lies beyond f64: no interval.
        for sign in [1.0, -1.0] {
            let v: Vec<f64> = (0..64)
                .map(|i| if i == 0 { 0.0 } else { sign * f64::MAX })
                .collect();
            let (m, h) = mean_ci(&v).unwrap();
            assert!(m.is_finite() && h.is_none(), "{sign}: {m} {h:?}");
        }
        // Two values of opposite sign near the limit: a finite mean, an interval beyond f64.
        let s = Series::summarize(&[vec![Sample::Value(big)], vec![Sample::Value(-big)]]);
        assert_eq!(s.mean, vec![Some(0.0)]);
        assert_eq!(s.lo, vec![None]);
        assert_eq!(s.n, vec![2]);
        assert_eq!(s.missing[0].reason, Reason::IntervalOverflow);
        // A non-finite sample is an overflow, never a silent drop.
        let s = Series::summarize(&[vec![Sample::Value(f64::INFINITY)], vec![Sample::Value(1.0)]]);
        assert_eq!(s.n, vec![1]);
        assert_eq!(s.absent_at(0), vec![(Reason::Overflow, 1)]);
    }

    #[test]
    fn runs_join_consecutive_entries_of_one_reason_and_count() {
        let (d, o) = (Reason::Diverged, Reason::Overflow);
        let at = vec![(4, d, 2), (0, d, 1), (2, o, 1), (1, d, 1), (3, d, 1)];
        let got: Vec<(usize, usize, usize, Reason)> = runs(at)
            .iter()
            .map(|m| (m.from, m.to, m.seeds, m.reason))
            .collect();
        // 0–1 join; 3 follows a gap (2 has another reason); 4 has another count. Sorted by
        // first index.
        assert_eq!(
            got,
            vec![(0, 1, 1, d), (2, 2, 1, o), (3, 3, 1, d), (4, 4, 2, d)]
        );
    }

    #[test]
    fn exact_series_state_why_a_value_is_absent() {
        let s = Series::exact(vec![
            Ok(1.0),
            Err(Reason::Zero),
            Err(Reason::Zero),
            Ok(f64::NAN),
        ]);
        assert_eq!(s.mean, vec![Some(1.0), None, None, None]);
        assert_eq!(s.n, vec![0; 4]);
        assert_eq!(s.missing.len(), 2);
        assert_eq!((s.missing[0].from, s.missing[0].to), (1, 2));
        assert_eq!(s.missing[1].reason, Reason::Overflow);
        // The JSON of a complete series has no `missing` key (files keep their bytes).
        let full = Series::exact(vec![Ok(1.0)]);
        let json = serde_json::to_string(&full).unwrap();
        assert!(!json.contains("missing"), "{json}");
        let back: Series = serde_json::from_str(&json).unwrap();
        assert_eq!(back, full);
    }
}
