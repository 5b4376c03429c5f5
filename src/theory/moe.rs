//! Gate statistics of the mixture-of-experts sublayer (`analysis/theory.md` §2.4).
//!
//! Two tokens with router-logit standard deviations `s_i`, `s_j` and input correlation `ρ`
//! have, per expert, jointly Gaussian logits `r_ie = s_i z_e` and
//! `r_je = s_j (ρ z_e + √(1 − ρ²) w_e)`, independent over the `E` experts. Each token keeps
//! its top `k` logits and takes their softmax as gates `g` (zero outside the top `k`). The
//! sublayer's kernels need
//!
//! ```text
//! M(s_i, s_j, ρ) = E Σ_e g_ie g_je                                   (expert path)
//! R(s_i, s_j, ρ) = E Σ_e g_ie g_je (1 − g_ie − g_je + Σ_a g_ia g_ja)  (router path)
//! ```
//!
//! which at `ρ = 1`, `s_i = s_j` are `S_2` and `R_2` of theory.md §2.4. There is no closed
//! form for general `E`, `k`: both are Monte Carlo averages over `N = 2^16` fixed draws
//! (ChaCha8, seed [`SEED`]), the same draws for every argument, so the maps are smooth and
//! deterministic. Both averaged quantities lie in `[0, 1]`, so the standard error is at most
//! `1/(2√N) = 0.002` absolute; measured against the two-dimensional integral for `k = 2`
//! (the test below) it is 1e-6 at `s = 0.1`, 2.5e-4 at `s = 1` and 8e-4 at `s = 2`, i.e.
//! 0.05–0.13% of `S_2`. That is below the `O(1/d)` finite-width bias for `d ≲ 1000`; at larger
//! widths the Monte Carlo error dominates the theory's error for mixture-of-experts stacks.

use ndarray_rand::rand::{Rng, SeedableRng};
use ndarray_rand::rand_distr::StandardNormal;
use rand_chacha::ChaCha8Rng;

/// Number of Monte Carlo draws.
pub const DRAWS: usize = 1 << 16;

/// Seed of the draws (fixed: predictions are deterministic).
pub const SEED: u64 = 0x6d6f_655f_6761_7465;

/// Fixed draws for a router with `experts` experts, of which each token uses `top_k`.
#[derive(Clone, Debug, PartialEq)]
pub struct Routing {
    experts: usize,
    top_k: usize,
    /// `DRAWS × E` standard normals `z`, then `DRAWS × E` more, `w`.
    z: Vec<f64>,
    w: Vec<f64>,
}

/// The gates of one token: `(expert, gate)` for the top `k` logits.
fn gates(logits: &[f64], k: usize, out: &mut Vec<(usize, f64)>) {
    out.clear();
    for _ in 0..k {
        let mut best: Option<usize> = None;
        for (e, &v) in logits.iter().enumerate() {
            if out.iter().any(|&(s, _)| s == e) {
                continue;
            }
            if best.is_none_or(|b| v > logits[b]) {
                best = Some(e);
            }
        }
        let e = best.expect("k ≤ E");
        out.push((e, logits[e]));
    }
    let max = out[0].1;
    let mut z = 0.0;
    for g in out.iter_mut() {
        g.1 = (g.1 - max).exp();
        z += g.1;
    }
    for g in out.iter_mut() {
        g.1 /= z;
    }
}

/// The most memory the two tables of draws may take (`2 · DRAWS · E` values): 1 GiB, which
/// allows `E ≤ 1024` experts.
pub const MAX_TABLE_BYTES: f64 = (1u64 << 30) as f64;

impl Routing {
    /// The draws for `experts` experts and `1 ≤ top_k ≤ experts` gates per token; an error
    /// (the reason) for other `top_k`, or for so many experts that the tables of draws
    /// would exceed [`MAX_TABLE_BYTES`].
    pub fn new(experts: usize, top_k: usize) -> Result<Routing, String> {
        if top_k == 0 || top_k > experts {
            return Err(format!(
                "a mixture needs 1 ≤ top-k ≤ experts, not top-k = {top_k} of {experts}"
            ));
        }
        let bytes = 2.0 * DRAWS as f64 * experts as f64 * 8.0;
        if bytes > MAX_TABLE_BYTES {
            return Err(format!(
                "{experts} experts need {:.1} GiB of Monte Carlo gate draws, more than the \
                 {:.0} GiB limit (theory.md §2.4)",
                bytes / MAX_TABLE_BYTES,
                1.0
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        let mut draw = |len: usize| -> Vec<f64> {
            (0..len)
                .map(|_| rng.sample::<f64, _>(StandardNormal))
                .collect()
        };
        let z = draw(DRAWS * experts);
        let w = draw(DRAWS * experts);
        Ok(Routing {
            experts,
            top_k,
            z,
            w,
        })
    }

    /// `(M, R)` for logit standard deviations `s_i`, `s_j` and input correlation `rho`.
    pub fn pair(&self, s_i: f64, s_j: f64, rho: f64) -> (f64, f64) {
        let e = self.experts;
        let rho = rho.clamp(-1.0, 1.0);
        let perp = (1.0 - rho * rho).sqrt();
        let (mut ri, mut rj) = (vec![0.0; e], vec![0.0; e]);
        let (mut gi, mut gj) = (Vec::with_capacity(e), Vec::with_capacity(e));
        let (mut m, mut r) = (0.0, 0.0);
        for t in 0..DRAWS {
            let (z, w) = (&self.z[t * e..(t + 1) * e], &self.w[t * e..(t + 1) * e]);
            for a in 0..e {
                ri[a] = s_i * z[a];
                rj[a] = s_j * (rho * z[a] + perp * w[a]);
            }
            gates(&ri, self.top_k, &mut gi);
            gates(&rj, self.top_k, &mut gj);
            let overlap: f64 = gi
                .iter()
                .filter_map(|&(a, x)| gj.iter().find(|&&(b, _)| b == a).map(|&(_, y)| x * y))
                .sum();
            for &(a, x) in &gi {
                if let Some(&(_, y)) = gj.iter().find(|&&(b, _)| b == a) {
                    m += x * y;
                    r += x * y * (1.0 - x - y + overlap);
                }
            }
        }
        (m / DRAWS as f64, r / DRAWS as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_or_huge_mixtures_are_errors_not_panics() {
        assert!(Routing::new(4, 0).is_err());
        assert!(Routing::new(4, 5).is_err());
        let e = Routing::new(100_000, 1).unwrap_err();
        assert!(e.contains("GiB"), "{e}");
        assert!(Routing::new(usize::MAX, 1).is_err());
    }

    #[test]
    fn one_expert_per_token_has_unit_gates_and_no_router_path() {
        let r = Routing::new(4, 1).unwrap();
        let (m, rr) = r.pair(0.7, 0.7, 1.0);
        assert_eq!((m, rr), (1.0, 0.0));
        // Two independent tokens pick the same of 4 experts with probability 1/4.
        let (m0, _) = r.pair(1.0, 1.0, 0.0);
        let se = (0.25f64 * 0.75 / DRAWS as f64).sqrt();
        assert!((m0 - 0.25).abs() < 4.0 * se, "{m0}");
    }

    /// `S_2` for `k = 2` from the two-dimensional integral over the top two order statistics
    /// of theory.md §2.4, by the midpoint rule on [−9, 9]² with step 1/200 (the integrand is
    /// smooth and the tails beyond 9 weigh less than 1e-17).
    fn s2_top2(experts: usize, s: f64) -> f64 {
        let phi = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let cdf = |x: f64| 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
        let h = 1.0 / 200.0;
        let grid: Vec<f64> = (0..3600).map(|i| -9.0 + (i as f64 + 0.5) * h).collect();
        let e = experts as f64;
        let mut total = 0.0;
        for (a, &x) in grid.iter().enumerate() {
            for &y in &grid[..a] {
                let t = (s * (x - y) / 2.0).tanh();
                total += phi(x) * phi(y) * cdf(y).powi(experts as i32 - 2) * t * t;
            }
        }
        0.5 + 0.5 * e * (e - 1.0) * total * h * h
    }

    #[test]
    fn top_two_matches_the_order_statistics_integral() {
        // Monte Carlo error: Σ g² lies in [1/2, 1] for k = 2, so its standard deviation is at
        // most 1/4 and 4 standard errors are at most 4·0.25/√N = 0.0039 (measured: 1e-6 at
        // s = 0.1 to 8e-4 at s = 2). The midpoint rule is good to 1e-6 here.
        let r = Routing::new(8, 2).unwrap();
        for (s, table) in [(0.1, 0.5007), (0.5, 0.5163), (1.0, 0.5538), (2.0, 0.6364)] {
            let exact = s2_top2(8, s);
            let (mc, _) = r.pair(s, s, 1.0);
            assert!(
                (mc - exact).abs() < 4.0 * 0.25 / (DRAWS as f64).sqrt(),
                "s={s}: {mc} vs {exact}"
            );
            assert!(
                (exact - table).abs() < 6e-5,
                "s={s}: theory.md lists {table}, integral {exact}"
            );
        }
    }

    #[test]
    fn small_logits_give_uniform_gates() {
        // s → 0: g = 1/k on the top k, S_2 = 1/k, R_2 = (1/k)(1 − 1/k) (theory.md §2.4).
        let r = Routing::new(8, 4).unwrap();
        let (m, rr) = r.pair(1e-9, 1e-9, 1.0);
        assert!(
            (m - 0.25).abs() < 1e-9 && (rr - 0.1875).abs() < 1e-9,
            "{m} {rr}"
        );
    }
}
