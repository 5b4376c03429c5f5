//! Softmax attention on a general (non-exchangeable) token kernel, by Monte Carlo over
//! Gaussian logits (`analysis/theory.md` §2.5.5). Used for the causal mask, whose kernels are
//! not exchangeable, so the closed forms of §2.5.3 do not apply.
//!
//! # Model
//! Given the input kernel `K` (per coordinate), the logits `s_ia = Q_i·K_a/√d_h` of one head
//! are, by the central limit theorem over the `d_h` coordinates, jointly Gaussian with
//! `Cov(s_ia, s_jb) = g_q g_k K_ij K_ab`. With `K = L Lᵀ` that is `S = √(g_q g_k) L Z Lᵀ`
//! for an `n × n` matrix `Z` of standard normals. `P` is the masked row softmax of `S`.
//! `V`, `W_o` and the upstream gradient are independent of `P`, so
//!
//! ```text
//! forward:   K_A  = g_v g_o E[P K Pᵀ]
//! value:     Γ_V  = g_v g_o E[Pᵀ Γ P]
//! via Q:     Γ_Q  = g_q g_k g_v g_o Γ ⊙ E[S_Q],   S_Q,ij = Σ_ab (A_i K A_jᵀ)_ab K_ab
//! via K:     Γ_K  = g_q g_k g_v g_o E[S_K],       S_K,ab = Σ_ij Γ_ij K_ij (A_i K A_jᵀ)_ab
//! ```
//!
//! with `A_i = diag(P_i)(I − 1 P_iᵀ)` the softmax Jacobian of row `i`. The score paths treat
//! `P` as independent of the key and query vectors they multiply, which is the approximation
//! (it holds while logits are small; refused beyond a within-row logit variance of 1).
//! Expectations are averages over [`DRAWS`] fixed draws (antithetic pairs `±Z`, ChaCha8 seed
//! [`SEED`], one stream per chunk of 64 draws), identical for every call and summed in a fixed
//! order, so the maps are deterministic whatever the number of threads.

use crate::attention::Mask;
use ndarray::{Array2, Zip};
use ndarray_rand::rand::{Rng, SeedableRng};
use ndarray_rand::rand_distr::StandardNormal;
use rand_chacha::ChaCha8Rng;

/// Number of Monte Carlo draws (half of them antithetic).
pub const DRAWS: usize = 2048;

/// Seed of the draws.
pub const SEED: u64 = 0x736f_6674_6d61_7821;

/// Per-matrix gains of attention (`var · fan_in`).
#[derive(Clone, Copy, Debug)]
pub struct Gains {
    /// `W_q`.
    pub q: f64,
    /// `W_k`.
    pub k: f64,
    /// `W_v`.
    pub v: f64,
    /// `W_o`.
    pub o: f64,
}

/// A symmetric square root `L` with `L Lᵀ = K` (negative eigenvalues from rounding are
/// clipped to 0, so a collapsed kernel is fine).
fn sqrt_psd(k: &Array2<f64>) -> Array2<f64> {
    let n = k.nrows();
    let eig = nalgebra::DMatrix::from_fn(n, n, |i, j| k[[i, j]]).symmetric_eigen();
    Array2::from_shape_fn((n, n), |(i, j)| {
        eig.eigenvectors[(i, j)] * eig.eigenvalues[j].max(0.0).sqrt()
    })
}

/// Draws per chunk: chunks run in parallel, each with its own ChaCha8 stream, and their sums
/// are added in chunk order, so results do not depend on the number of threads.
const CHUNK: usize = 64;

/// `Σ_draws f(P)` over every draw's attention matrix, as `m` accumulated `n × n` matrices.
fn sum_over_draws(
    k: &Array2<f64>,
    g: Gains,
    mask: Mask,
    m: usize,
    f: impl Fn(&Array2<f64>, &mut [Array2<f64>]) + Sync,
) -> Vec<Array2<f64>> {
    use rayon::prelude::*;
    let n = k.nrows();
    // S = c L Z Lᵀ with c = √(g_q g_k): each factor L carries √c, so S carries c once and
    // Cov(S) = g_q g_k K ⊗ K.
    let l = sqrt_psd(k) * (g.q * g.k).sqrt().sqrt();
    let chunks: Vec<Vec<Array2<f64>>> = (0..DRAWS / CHUNK)
        .into_par_iter()
        .map(|c| {
            let mut rng = ChaCha8Rng::seed_from_u64(SEED);
            rng.set_stream(c as u64);
            let mut acc = vec![Array2::<f64>::zeros((n, n)); m];
            let mut p = Array2::<f64>::zeros((n, n));
            for _ in 0..CHUNK / 2 {
                let z =
                    Array2::from_shape_simple_fn((n, n), || rng.sample::<f64, _>(StandardNormal));
                let s = l.dot(&z).dot(&l.t());
                for sign in [1.0, -1.0] {
                    softmax_rows(&s, sign, mask, &mut p);
                    f(&p, &mut acc);
                }
            }
            acc
        })
        .collect();
    let mut total = vec![Array2::<f64>::zeros((n, n)); m];
    for acc in chunks {
        for (t, a) in total.iter_mut().zip(acc) {
            *t += &a;
        }
    }
    total
}

/// `P` = the masked row softmax of `sign · s`.
fn softmax_rows(s: &Array2<f64>, sign: f64, mask: Mask, p: &mut Array2<f64>) {
    let n = s.nrows();
    for i in 0..n {
        let visible = match mask {
            Mask::Bidirectional => n,
            Mask::Causal => i + 1,
        };
        let max = (0..visible)
            .map(|a| sign * s[[i, a]])
            .fold(f64::NEG_INFINITY, f64::max);
        let mut z = 0.0;
        for a in 0..n {
            let v = if a < visible {
                (sign * s[[i, a]] - max).exp()
            } else {
                0.0
            };
            p[[i, a]] = v;
            z += v;
        }
        p.row_mut(i).mapv_inplace(|v| v / z);
    }
}

/// The forward kernel `g_v g_o E[P K Pᵀ]` and the largest within-row logit variance
/// `g_q g_k K_ii · (mean visible K_aa − mean visible K_ab)` (the validity indicator).
pub fn forward(k: &Array2<f64>, g: Gains, mask: Mask) -> (Array2<f64>, f64) {
    let n = k.nrows();
    let acc = sum_over_draws(k, g, mask, 1, |p, acc| acc[0] += &p.dot(k).dot(&p.t()));
    let ka = &acc[0] * (g.v * g.o / DRAWS as f64);
    let mut worst = 0.0f64;
    for i in 0..n {
        let m = match mask {
            Mask::Bidirectional => n,
            Mask::Causal => i + 1,
        };
        let diag = (0..m).map(|a| k[[a, a]]).sum::<f64>() / m as f64;
        let all = (0..m)
            .flat_map(|a| (0..m).map(move |b| (a, b)))
            .map(|(a, b)| k[[a, b]])
            .sum::<f64>()
            / (m * m) as f64;
        worst = worst.max(g.q * g.k * k[[i, i]] * (diag - all));
    }
    (ka, worst)
}

/// `S_ij = Σ_ab (A_i K A_jᵀ)_ab K_ab` for one attention matrix `p` (rows `P_i`), the
/// query-path factor of §2.5.4–5, expanded as
/// `P_iᵀ(K⊙K)P_j − P_iᵀ(KP_j)² − P_jᵀ(KP_i)² + (P_iᵀKP_j)²` from `k2 = K⊙K`, `kp = K Pᵀ` and
/// `pkp = P K Pᵀ`.
pub fn query_score(
    p: &Array2<f64>,
    k2: &Array2<f64>,
    kp: &Array2<f64>,
    pkp: &Array2<f64>,
) -> Array2<f64> {
    let t2 = p.dot(&kp.mapv(|v| v * v));
    p.dot(k2).dot(&p.t()) - &t2 - t2.t() + pkp.mapv(|v| v * v)
}

/// What the backward pass needs: `(Γ_in, E[P K Pᵀ], E[Pᵀ Γ P], E[S_Q], E[S_K])`, the last four
/// without gains.
pub struct Backward {
    /// `Γ_in`, the gradient kernel at the input.
    pub gin: Array2<f64>,
    /// `E[P K Pᵀ]`.
    pub pkp: Array2<f64>,
    /// `E[Pᵀ Γ P]`.
    pub ptgp: Array2<f64>,
    /// `E[S_Q]`, the query-path score factor.
    pub s_q: Array2<f64>,
    /// `E[S_K]`, the key-path score factor.
    pub s_k: Array2<f64>,
}

/// The gradient kernel at the attention input from `gamma` at its output.
pub fn backward(k: &Array2<f64>, gamma: &Array2<f64>, g: Gains, mask: Mask) -> Backward {
    let k2 = k.mapv(|v| v * v);
    let w = gamma * k;
    let sums = sum_over_draws(k, g, mask, 4, |p, acc| {
        // (A_i K A_jᵀ)_ab = P_ia P_jb (K_ab − (KP_j)_a − (KP_i)_b + P_iᵀ K P_j).
        let kp = k.dot(&p.t()); // kp[a, j] = (K P_j)_a
        let wpk = p.dot(&kp); // P_iᵀ K P_j
        acc[2] += &query_score(p, &k2, &kp, &wpk);
        let b = p.t().dot(&w); // B[a, j] = Σ_i P_ia W_ij
        let c = w.dot(p); // C[i, b] = Σ_j W_ij P_jb
        let mut sk = k * &b.dot(p);
        sk -= &(&b * &kp).dot(p);
        sk -= &p.t().dot(&(&kp.t() * &c));
        sk += &p.t().dot(&(&w * &wpk)).dot(p);
        acc[3] += &sk;
        acc[1] += &p.t().dot(gamma).dot(p);
        acc[0] += &wpk;
    });
    let norm = 1.0 / DRAWS as f64;
    let [pkp, ptgp, s_q, s_k]: [Array2<f64>; 4] = sums
        .into_iter()
        .map(|a| a * norm)
        .collect::<Vec<_>>()
        .try_into()
        .expect("four sums");
    let score = g.q * g.k * g.v * g.o;
    let mut gin = &ptgp * (g.v * g.o);
    Zip::from(&mut gin)
        .and(gamma)
        .and(&s_q)
        .and(&s_k)
        .for_each(|x, &gm, &sq, &sk| *x += score * (gm * sq + sk));
    Backward {
        gin,
        pkp,
        ptgp,
        s_q,
        s_k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theory::attention::uniform;

    fn kernel(n: usize) -> Array2<f64> {
        // A causal-looking kernel: q_i and correlations vary by token.
        Array2::from_shape_fn((n, n), |(i, j)| {
            let (a, b) = (1.0 + 0.1 * i as f64, 1.0 + 0.1 * j as f64);
            let rho = if i == j {
                1.0
            } else {
                0.3 + 0.4 / (1.0 + i.max(j) as f64)
            };
            rho * (a * b).sqrt()
        })
    }

    #[test]
    fn vanishing_logits_give_the_exact_uniform_maps() {
        // g_q g_k → 0: every draw's P is the uniform P of zero-query attention, so the maps
        // must equal the exact ones (theory.md §2.5.1–2, §2.5.4) to rounding.
        let n = 6;
        let k = kernel(n);
        let gamma = Array2::from_shape_fn((n, n), |(i, j)| if i == j { 1.0 } else { 0.2 });
        let g = Gains {
            q: 1e-20,
            k: 1.0,
            v: 1.0,
            o: 1.0,
        };
        for mask in [Mask::Causal, Mask::Bidirectional] {
            let p = uniform(n, mask);
            let (ka, var) = forward(&k, g, mask);
            assert!(var < 1e-18);
            let want = p.dot(&k).dot(&p.t());
            assert!((&ka - &want).iter().all(|e| e.abs() < 1e-12), "{mask:?}");
            let b = backward(&k, &gamma, g, mask);
            let want = p.t().dot(&gamma).dot(&p);
            assert!((&b.ptgp - &want).iter().all(|e| e.abs() < 1e-12));
            // S_Q against the expanded formula of §2.5.4, entry by entry from A_i.
            for i in 0..n {
                for j in 0..n {
                    let a = |r: usize| {
                        Array2::from_shape_fn((n, n), |(x, y)| {
                            p[[r, x]] * (f64::from(u8::from(x == y)) - p[[r, y]])
                        })
                    };
                    let s = (a(i).dot(&k).dot(&a(j).t()) * &k).sum();
                    assert!((b.s_q[[i, j]] - s).abs() < 1e-12, "{mask:?} S_Q[{i},{j}]");
                }
            }
        }
    }

    #[test]
    fn logits_carry_the_gains_once() {
        // K = I/2, g_q = 4, bidirectional: the logits of a row are i.i.d. N(0, g_q g_k/4) =
        // N(0, 1), so the diagonal of E[P K Pᵀ] is P_2(1, n)/2, with P_2 computed
        // independently by `attention::p2`. Each draw's row mean of Σ_a P_ia² lies in
        // [1/n, 1]; averaged over 1024 independent antithetic pairs, Hoeffding bounds the
        // Monte Carlo error by (1 − 1/n)·√(ln(2/δ)/(2·1024)) = 0.090 at δ = 1e-9. Logits that
        // carried the gains twice (S = g_q g_k L Z Lᵀ) have variance 4: that gives 0.43 here
        // instead of P_2(1, 8) = 0.23, and fails.
        let n = 8;
        let k = Array2::<f64>::eye(n) * 0.5;
        let g = Gains {
            q: 4.0,
            k: 1.0,
            v: 1.0,
            o: 1.0,
        };
        let (ka, var) = forward(&k, g, Mask::Bidirectional);
        assert!((var - (1.0 - 1.0 / n as f64)).abs() < 1e-12);
        let got = 2.0 * ka.diag().mean().unwrap();
        let tol = (1.0 - 1.0 / n as f64) * ((2.0f64 / 1e-9).ln() / 2048.0).sqrt();
        let want = crate::theory::attention::p2(1.0, n);
        let wrong = crate::theory::attention::p2(4.0, n);
        assert!((got - want).abs() < tol, "{got} vs P_2 = {want} ± {tol}");
        assert!(
            (wrong - want).abs() > 2.0 * tol,
            "the test separates {want} from {wrong}"
        );
    }

    #[test]
    fn the_first_causal_row_sees_only_itself() {
        let n = 5;
        let g = Gains {
            q: 1.0,
            k: 1.0,
            v: 1.0,
            o: 1.0,
        };
        let k = kernel(n);
        let (ka, _) = forward(&k, g, Mask::Causal);
        assert!((ka[[0, 0]] - k[[0, 0]]).abs() < 1e-12);
    }
}
