//! A statistical battery for the standard normals behind every draw (Philox4x32-10 and the
//! Box–Muller transform of `spannorm::rng`), and the perturbed samplers it catches.
//!
//! Always run: the battery on 10^7 draws (about 3 s). The full battery on 10^8 draws is
//! ignored by default; run it with
//! `cargo test --release --test normals -- --ignored --nocapture` (about 20 s, 1.6 GB).
//!
//! # Thresholds
//! Each statistic is compared with a bound that a true N(0, 1) sample of size `N` exceeds
//! with probability about 10^-3 or less, so a correct generator passes with near certainty
//! and the fixed streams make the outcome reproducible:
//! - moments `m_k = mean(z^k)`, `k = 1 … 8`: `|m_k − μ_k| ≤ 5 SE`, `μ_k = (k − 1)!!` for even
//!   `k`, 0 for odd, `SE = sqrt((μ_{2k} − μ_k²) / N)` (the sample mean's standard error;
//!   5 SE is exceeded with probability `6·10^-7` for a normal sample mean, and at most 1/25
//!   by Chebyshev's inequality whatever the shape);
//! - Kolmogorov–Smirnov: `D_N ≤ 1.9495 / sqrt N`, the 0.999 point of Kolmogorov's
//!   asymptotic distribution (`2 Σ (−1)^{k−1} e^{−2k²x²} = 10^-3` at `x = 1.9495`);
//! - Anderson–Darling: `A² ≤ 5.9694`, the 0.999 point of its asymptotic distribution for a
//!   fully specified `F` (Marsaglia & Marsaglia 2004; reached already for `N` in the tens);
//! - correlations between neighbouring draws (lags 1 and 2: within a Box–Muller pair and
//!   between neighbouring counters), of their squares, and between the same index of
//!   neighbouring streams, seeds and master seeds: `|r| ≤ 5 / sqrt N` (`r` is
//!   asymptotically `N(0, 1/N)` under independence).

use spannorm::rng::Stream;
use statrs::distribution::{ContinuousCDF, Normal};

/// `N` normals of one stream.
fn stream(master: u64, seed: u64, stream: u64, n: usize) -> Vec<f64> {
    let mut z = Vec::with_capacity(n);
    Stream::new(master, seed, stream).normals::<f64>(&mut z, n, 1.0);
    z
}

/// One statistic against its bound.
#[derive(Debug)]
struct Check {
    name: String,
    value: f64,
    bound: f64,
}

impl Check {
    fn pass(&self) -> bool {
        self.value.abs() <= self.bound
    }
}

/// `(k − 1)!!` for even `k`, 0 for odd: `E z^k` of a standard normal.
fn normal_moment(k: u32) -> f64 {
    if k % 2 == 1 {
        0.0
    } else {
        (1..k).step_by(2).map(f64::from).product()
    }
}

/// Moments 1 … 8 as `(m_k − μ_k) / SE` against 5.
fn moments(z: &[f64]) -> Vec<Check> {
    let n = z.len() as f64;
    let mut sums = [0.0f64; 9];
    for &v in z {
        let mut p = 1.0;
        for s in sums.iter_mut().skip(1) {
            p *= v;
            *s += p;
        }
    }
    (1..=8u32)
        .map(|k| {
            let mu = normal_moment(k);
            let se = ((normal_moment(2 * k) - mu * mu) / n).sqrt();
            Check {
                name: format!("moment {k} (in SE)"),
                value: (sums[k as usize] / n - mu) / se,
                bound: 5.0,
            }
        })
        .collect()
}

/// Kolmogorov–Smirnov `D` and Anderson–Darling `A²` of a sample against N(0, 1).
fn ks_ad(z: &[f64]) -> [Check; 2] {
    let mut s = z.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    let n = s.len();
    let nf = n as f64;
    let phi = Normal::standard();
    let (mut d, mut a) = (0.0f64, 0.0f64);
    for (i, &x) in s.iter().enumerate() {
        let f = phi.cdf(x);
        let i1 = (i + 1) as f64;
        d = d.max(i1 / nf - f).max(f - i as f64 / nf);
        // A² = −N − Σ (2i − 1)/N [ln F(x_i) + ln(1 − F(x_{N+1−i}))], rewritten per element:
        // x_i appears in ln F with weight 2i − 1 and in ln(1 − F) with weight 2(N − i) + 1.
        a += (2.0 * i1 - 1.0) * f.ln() + (2.0 * (nf - i1) + 1.0) * phi.sf(x).ln();
    }
    [
        Check {
            name: "Kolmogorov-Smirnov D".into(),
            value: d,
            bound: 1.9495 / nf.sqrt(),
        },
        Check {
            name: "Anderson-Darling A^2".into(),
            value: -nf - a / nf,
            bound: 5.9694,
        },
    ]
}

/// Pearson correlation of two equal-length samples.
fn corr(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    ab / (aa * bb).sqrt()
}

fn corr_check(name: &str, a: &[f64], b: &[f64]) -> Check {
    Check {
        name: name.into(),
        value: corr(a, b),
        bound: 5.0 / (a.len() as f64).sqrt(),
    }
}

/// Lag-1 and lag-2 correlations of a sample and of its squares.
fn serial(z: &[f64]) -> Vec<Check> {
    let sq: Vec<f64> = z.iter().map(|v| v * v).collect();
    let n = z.len();
    vec![
        corr_check("lag 1 (within a pair)", &z[..n - 1], &z[1..]),
        corr_check("lag 2 (next counter)", &z[..n - 2], &z[2..]),
        corr_check("lag 1 of squares", &sq[..n - 1], &sq[1..]),
        corr_check("lag 2 of squares", &sq[..n - 2], &sq[2..]),
    ]
}

/// The whole battery: `n` draws of one stream, and `n / 10` draws of its neighbours.
fn battery(n: usize) -> Vec<Check> {
    let z = stream(7, 0, 1, n);
    let mut checks = moments(&z);
    checks.extend(ks_ad(&z));
    checks.extend(serial(&z));
    let m = n / 10;
    let z = &z[..m];
    checks.push(corr_check("next stream", z, &stream(7, 0, 2, m)));
    checks.push(corr_check("next seed index", z, &stream(7, 1, 1, m)));
    checks.push(corr_check("next master seed", z, &stream(8, 0, 1, m)));
    checks
}

fn report(n: usize, checks: &[Check]) {
    println!("{n} draws:");
    for c in checks {
        let verdict = if c.pass() { "pass" } else { "FAIL" };
        println!(
            "  {:<28} {:>12.4e}  bound {:>10.4e}  {verdict}",
            c.name, c.value, c.bound
        );
    }
}

fn assert_all_pass(n: usize) {
    let checks = battery(n);
    report(n, &checks);
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.pass()).collect();
    assert!(failed.is_empty(), "{failed:?}");
}

#[test]
fn ten_million_draws_pass_the_battery() {
    assert_all_pass(10_000_000);
}

#[test]
#[ignore = "10^8 draws, 1.6 GB: cargo test --release --test normals -- --ignored"]
fn a_hundred_million_draws_pass_the_battery() {
    assert_all_pass(100_000_000);
}

/// Each part of the battery rejects a sampler with a small, specific defect (10^6 draws,
/// where every bound is 5 times tighter than the defect's effect or more).
#[test]
fn perturbed_samplers_fail_the_battery() {
    let n = 1_000_000;
    let z = stream(7, 0, 1, n);
    let failing = |checks: Vec<Check>| -> Vec<String> {
        report(n, &checks);
        checks
            .into_iter()
            .filter(|c| !c.pass())
            .map(|c| c.name)
            .collect()
    };
    // The real sampler passes at this size too.
    let mut all = moments(&z);
    all.extend(ks_ad(&z));
    all.extend(serial(&z));
    assert!(failing(all).is_empty());

    // Standard deviation 0.5% too large: m_2 moves by 0.010, 7 SE (SE = sqrt(2/N) = 1.4e-3).
    let wide: Vec<f64> = z.iter().map(|v| v * 1.005).collect();
    assert!(failing(moments(&wide)).contains(&"moment 2 (in SE)".to_string()));

    // A shift of 0.01: D grows by about 0.01 φ(0) = 4.0e-3, twice its bound 1.95e-3.
    let shifted: Vec<f64> = z.iter().map(|v| v + 0.01).collect();
    let f = failing(ks_ad(&shifted).into());
    assert!(f.contains(&"Kolmogorov-Smirnov D".to_string()), "{f:?}");
    assert!(f.contains(&"Anderson-Darling A^2".to_string()), "{f:?}");

    // Neighbours mixed in by 1%: lag-1 correlation 0.01, twice its bound 5e-3.
    let mixed: Vec<f64> = z
        .windows(2)
        .map(|w| (w[1] + 0.01 * w[0]) / (1.0f64 + 1e-4).sqrt())
        .collect();
    assert!(failing(serial(&mixed)).contains(&"lag 1 (within a pair)".to_string()));

    // A key derivation that ignored the seed index would give seeds the same stream.
    let same = corr_check("next seed index", &z, &stream(7, 0, 1, n));
    assert!(!same.pass());
}
