//! Means over seeds with 95% Student-t intervals.
//!
//! For `k` finite values `v_1..v_k` at one layer: `mean = Σ v / k`,
//! `half = t_{0.975, k−1} · s / sqrt(k)` with `s` the sample standard deviation, and the
//! interval `[mean − half, mean + half]`. With one value the interval is `null`.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// One quantity along the layers: mean, 95% interval and the number of seeds behind each.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Series {
    pub mean: Vec<Option<f64>>,
    pub lo: Vec<Option<f64>>,
    pub hi: Vec<Option<f64>>,
    pub n: Vec<usize>,
}

/// `t_{0.975, k−1}`, the 95% two-sided Student-t quantile for `k ≥ 2` values.
pub fn t975(k: usize) -> f64 {
    StudentsT::new(0.0, 1.0, (k - 1) as f64)
        .expect("k ≥ 2 gives positive degrees of freedom")
        .inverse_cdf(0.975)
}

/// Mean and 95% half-width of the values (half-width `None` below two values).
pub fn mean_ci(values: &[f64]) -> Option<(f64, Option<f64>)> {
    let k = values.len();
    if k == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / k as f64;
    if k < 2 {
        return Some((mean, None));
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
    Some((mean, Some(t975(k) * (var / k as f64).sqrt())))
}

impl Series {
    /// Summarizes per-seed series (each of the same length) layer by layer, skipping `None`.
    pub fn over_seeds<'a>(per_seed: impl IntoIterator<Item = &'a [Option<f64>]>) -> Series {
        let per_seed: Vec<&[Option<f64>]> = per_seed.into_iter().collect();
        let len = per_seed.first().map_or(0, |s| s.len());
        let mut out = Series::default();
        for i in 0..len {
            let vals: Vec<f64> = per_seed.iter().filter_map(|s| s[i]).collect();
            let (mean, lo, hi) = match mean_ci(&vals) {
                None => (None, None, None),
                Some((m, None)) => (Some(m), None, None),
                Some((m, Some(h))) => (Some(m), Some(m - h), Some(m + h)),
            };
            out.mean.push(mean);
            out.lo.push(lo);
            out.hi.push(hi);
            out.n.push(vals.len());
        }
        out
    }

    /// The one-entry series at index `i`.
    pub fn at(&self, i: usize) -> Series {
        Series {
            mean: vec![self.mean[i]],
            lo: vec![self.lo[i]],
            hi: vec![self.hi[i]],
            n: vec![self.n[i]],
        }
    }

    /// The same series with `f` applied to each seed's value first.
    pub fn over_seeds_map<'a>(
        per_seed: impl IntoIterator<Item = &'a [Option<f64>]>,
        f: impl Fn(f64) -> f64,
    ) -> Series {
        let mapped: Vec<Vec<Option<f64>>> = per_seed
            .into_iter()
            .map(|s| s.iter().map(|v| v.map(&f)).collect())
            .collect();
        Series::over_seeds(mapped.iter().map(|v| v.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_tables() {
        // Standard tables: t_{0.975} with 1, 7 and 30 degrees of freedom.
        assert!((t975(2) - 12.7062).abs() < 1e-4);
        assert!((t975(8) - 2.3646).abs() < 1e-4);
        assert!((t975(31) - 2.0423).abs() < 1e-4);
    }

    #[test]
    fn series_skips_missing_seeds() {
        let a = [Some(1.0), Some(2.0)];
        let b = [Some(3.0), None];
        let s = Series::over_seeds([&a[..], &b[..]]);
        assert_eq!(s.mean, vec![Some(2.0), Some(2.0)]);
        assert_eq!(s.n, vec![2, 1]);
        assert_eq!(s.lo[1], None);
        let half = t975(2) * (2.0f64 / 2.0).sqrt();
        assert!((s.hi[0].unwrap() - (2.0 + half)).abs() < 1e-12);
    }
}
