//! Least-squares fits of growth exponents: `log10 y = a + b · log10 x`.
//!
//! For `k` points, `b = S_xy / S_xx`, `a = ȳ − b x̄`, residual variance
//! `s² = Σ (y − a − b x)² / (k − 2)`, standard error `se_b = s / sqrt(S_xx)`, and the 95%
//! interval `b ± t_{0.975, k−2} · se_b` (Student t; needs `k ≥ 3`). This is the usual
//! interval for a regression slope; it treats the per-depth means as exact, so it measures
//! how straight the log-log curve is, not the seed noise of each point.

use crate::summary::t975;
use serde::Serialize;

/// A fitted line in log-log coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Fit {
    /// The growth exponent `b`.
    pub exponent: f64,
    /// `a`: `log10 y` at `x = 1`.
    pub intercept: f64,
    /// Lower end of the 95% interval of `b` (`None` with fewer than three points).
    pub lo: Option<f64>,
    /// Upper end of the 95% interval of `b`.
    pub hi: Option<f64>,
    /// Number of points.
    pub points: usize,
}

/// Fits `log10 y` against `log10 x` by least squares.
///
/// Returns `None` with fewer than two distinct `x`, or when any `x` or `y` is not finite and
/// positive (a log-log slope does not exist there).
pub fn loglog(x: &[f64], y: &[f64]) -> Option<Fit> {
    if x.len() != y.len() || x.iter().chain(y).any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    let lx: Vec<f64> = x.iter().map(|v| v.log10()).collect();
    let ly: Vec<f64> = y.iter().map(|v| v.log10()).collect();
    line(&lx, &ly)
}

/// Fits `y = a + b x` by least squares (see the module doc for the interval).
pub fn line(x: &[f64], y: &[f64]) -> Option<Fit> {
    let k = x.len();
    if k < 2 || k != y.len() {
        return None;
    }
    let kf = k as f64;
    let mx = x.iter().sum::<f64>() / kf;
    let my = y.iter().sum::<f64>() / kf;
    let sxx: f64 = x.iter().map(|v| (v - mx).powi(2)).sum();
    if sxx.is_nan() || sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let b = sxy / sxx;
    let a = my - b * mx;
    let (lo, hi) = if k >= 3 {
        let ssr: f64 = x.iter().zip(y).map(|(u, v)| (v - a - b * u).powi(2)).sum();
        let se = (ssr / (kf - 2.0) / sxx).sqrt();
        // `t975(m)` is the quantile with `m − 1` degrees of freedom.
        let half = t975(k - 1) * se;
        (Some(b - half), Some(b + half))
    } else {
        (None, None)
    };
    Some(Fit {
        exponent: b,
        intercept: a,
        lo,
        hi,
        points: k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_power_law_has_a_zero_width_interval() {
        let x = [8.0, 16.0, 32.0, 64.0];
        let y: Vec<f64> = x.iter().map(|v: &f64| 3.0 * v.powf(1.5)).collect();
        let f = loglog(&x, &y).unwrap();
        assert!((f.exponent - 1.5).abs() < 1e-12);
        assert!((f.intercept - 3f64.log10()).abs() < 1e-12);
        assert!((f.hi.unwrap() - f.lo.unwrap()).abs() < 1e-9);
    }

    #[test]
    fn interval_matches_a_hand_computation() {
        // Four points worked by hand: S_xx = 5, S_xy = 3, so b = 0.6 and a = 0.6.
        let x = [0.0, 1.0, 2.0, 3.0];
        let y = [0.0, 2.0, 2.0, 2.0];
        let f = line(&x, &y).unwrap();
        assert!((f.exponent - 0.6).abs() < 1e-12);
        assert!((f.intercept - 0.6).abs() < 1e-12);
        // Residuals: -0.6, 0.8, 0.2, -0.4 → SSR = 1.2; S_xx = 5; se = sqrt(1.2/2/5).
        let half = t975(3) * (1.2f64 / 2.0 / 5.0).sqrt();
        assert!((f.hi.unwrap() - (0.6 + half)).abs() < 1e-12);
    }

    #[test]
    fn interval_of_five_points_by_hand() {
        // x = 0..4, y = 1, 3, 2, 5, 4: x̄ = 2, ȳ = 3, S_xx = 10, S_xy = 8, b = 0.8, a = 1.4.
        let x = [0.0, 1.0, 2.0, 3.0, 4.0];
        let y = [1.0, 3.0, 2.0, 5.0, 4.0];
        let f = line(&x, &y).unwrap();
        assert!((f.exponent - 0.8).abs() < 1e-12);
        assert!((f.intercept - 1.4).abs() < 1e-12);
        // Residuals −0.4, 0.8, −1.0, 1.2, −0.6: SSR = 3.6, s² = 3.6/3, se = sqrt(1.2/10).
        // `t975(m)` has m − 1 degrees of freedom: k − 2 = 3 is t975(4).
        let half = t975(4) * (1.2f64 / 10.0).sqrt();
        assert!((f.lo.unwrap() - (0.8 - half)).abs() < 1e-12);
        assert!((f.hi.unwrap() - (0.8 + half)).abs() < 1e-12);
        assert_eq!(f.points, 5);
    }

    #[test]
    fn mismatched_or_short_inputs_give_no_fit() {
        assert!(line(&[1.0, 2.0, 3.0], &[1.0, 2.0]).is_none());
        assert!(line(&[1.0], &[1.0]).is_none());
        assert!(line(&[], &[]).is_none());
        assert!(line(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]).is_none());
    }

    #[test]
    fn no_fit_without_two_positive_points() {
        assert!(loglog(&[8.0], &[1.0]).is_none());
        assert!(loglog(&[8.0, 16.0], &[1.0, 0.0]).is_none());
        assert!(loglog(&[8.0, 8.0], &[1.0, 2.0]).is_none());
        assert!(loglog(&[8.0, 16.0], &[1.0, 2.0]).unwrap().lo.is_none());
    }
}
