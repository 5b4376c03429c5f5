//! Per-layer measurements of one seed.
//!
//! At every block boundary `l = 0..L` (on `X_l ∈ R^{n×d}`):
//! - `q = ‖X_l‖_F² / (n d)`;
//! - `token_cos`: mean over ordered pairs `i ≠ j` of `cos(x_i, x_j)`;
//! - `eff_rank = exp(H(p))`, `p = σ / Σσ`, `σ` the singular values (Roy & Vetterli 2007);
//! - `stable_rank = ‖X_l‖_F² / ‖X_l‖_2²`;
//! - `rank1_residual = ‖X_l − 1 x̄ᵀ‖_F / ‖X_l‖_F`, `x̄` the mean token (Dong et al. 2021);
//! - `log10_grad = log10 ‖∂ℓ/∂X_l‖_F`.
//!
//! Per block `l = 1..L`: `adj_cos` (mean over tokens of `cos(x_{l-1,i}, x_{l,i})`),
//! `q_pre_norm`, `branch_q` of attention and feed-forward, and `log10 ‖∂ℓ/∂W‖_F` per weight.
//!
//! Singular values come from the eigenvalues of the `n × n` Gram matrix `X Xᵀ` in `f64`
//! (`σ_k = sqrt(λ_k)`): exact in exact arithmetic and much cheaper than an SVD of `X` when
//! `n ≤ d`. Values below `sqrt(ε) σ_max` are not resolved, which changes `eff_rank` by at
//! most `n · 1e-8`.

use crate::block::{BlockWeights, Probe};
use crate::real::Real;
use crate::simd::{self, reduce};
use crate::stack::{Divergence, Observer};
use ndarray::{Array2, Axis};

/// The rank and correlation measures of one matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Boundary {
    pub q: f64,
    pub token_cos: f64,
    pub eff_rank: f64,
    pub stable_rank: f64,
    pub rank1_residual: f64,
}

/// Measures `x` (`n × d`, `n ≥ 2`).
pub fn boundary<T: Real>(x: &Array2<T>) -> Boundary {
    let d = x.ncols();
    let xf = x.mapv(|v| v.f64());
    let gram = xf.dot(&xf.t());
    let mut m = from_gram(&gram, d);
    // The distance from rank one directly, not as a difference of Gram sums: near collapse
    // that difference cancels catastrophically.
    let mean = xf.mean_axis(Axis(0)).expect("n ≥ 1");
    let centred = centred_sum_sq(&xf, &mean.to_vec());
    m.rank1_residual = (centred / gram.diag().sum()).sqrt();
    m
}

/// `Σ_i ‖x_i − x̄‖²`: each row's sum in the lane order of [`crate::simd::reduce`], rows in
/// order.
fn centred_sum_sq(x: &Array2<f64>, mean: &[f64]) -> f64 {
    let d = mean.len();
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    if d == 0 {
        return 0.0;
    }
    simd::dispatch(
        #[inline(always)]
        || {
            xs.chunks_exact(d)
                .map(|row| reduce::sum_sq_diff(row, mean))
                .fold(0.0, |acc, v| acc + v)
        },
    )
}

/// The measures of a matrix with `d` columns whose Gram matrix `X Xᵀ` is `gram`.
/// `rank1_residual² = (tr G − 1ᵀG1/n) / tr G`.
pub fn from_gram(gram: &Array2<f64>, d: usize) -> Boundary {
    let n = gram.nrows();
    let trace: f64 = gram.diag().sum();
    let norms: Vec<f64> = gram.diag().iter().map(|v| v.sqrt()).collect();
    let mut cos_sum = 0.0;
    let mut pairs = 0usize;
    for i in 0..n {
        for j in 0..n {
            if i != j && norms[i] > 0.0 && norms[j] > 0.0 {
                cos_sum += gram[[i, j]] / (norms[i] * norms[j]);
                pairs += 1;
            }
        }
    }
    let eig = nalgebra::DMatrix::from_fn(n, n, |i, j| gram[[i, j]]).symmetric_eigenvalues();
    let sigma: Vec<f64> = eig.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let total: f64 = sigma.iter().sum();
    let entropy: f64 = sigma
        .iter()
        .filter(|&&s| s > 0.0)
        .map(|&s| {
            let p = s / total;
            -p * p.ln()
        })
        .sum();
    let lmax = eig.iter().cloned().fold(0.0, f64::max);
    let off_mean = gram.sum() / n as f64;
    Boundary {
        q: trace / (n * d) as f64,
        token_cos: if pairs > 0 {
            cos_sum / pairs as f64
        } else {
            f64::NAN
        },
        eff_rank: entropy.exp(),
        stable_rank: trace / lmax,
        rank1_residual: ((trace - off_mean) / trace).max(0.0).sqrt(),
    }
}

/// Mean over tokens of `cos(a_i, b_i)` (each token's sums in `f64` in the lane order of
/// [`crate::simd::reduce`], tokens in order).
pub fn adjacent_cos<T: Real>(a: &Array2<T>, b: &Array2<T>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    let (n, d) = a.dim();
    let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
    let (xs, ys) = (
        a.as_slice().expect("standard"),
        b.as_slice().expect("standard"),
    );
    if d == 0 {
        return f64::NAN;
    }
    let s = simd::dispatch(
        #[inline(always)]
        || {
            let mut s = 0.0;
            for (ra, rb) in xs.chunks_exact(d).zip(ys.chunks_exact(d)) {
                let (ab, aa, bb) = reduce::dot_norms_f64(ra, rb);
                s += ab / (aa.sqrt() * bb.sqrt());
            }
            s
        },
    );
    s / n as f64
}

/// An [`Observer`] that records the RMS `sqrt(‖x_i‖²/d)` of every token at every boundary
/// (for per-token bounds such as span-outer's triangle inequality).
#[derive(Debug, Default)]
pub struct TokenRms(pub Vec<Vec<f64>>);

impl<T: Real> Observer<T> for TokenRms {
    fn boundary(&mut self, _l: usize, x: &Array2<T>) {
        let d = x.ncols() as f64;
        self.0.push(
            x.rows()
                .into_iter()
                .map(|r| (r.iter().map(|&v| v.f64() * v.f64()).sum::<f64>() / d).sqrt())
                .collect(),
        );
    }
}

/// Everything one seed measured. Vectors over boundaries have `L + 1` entries, vectors over
/// blocks `L` entries (block `l` at index `l − 1`); entries a diverged run never reached are
/// `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeedRecord {
    pub q: Vec<Option<f64>>,
    pub token_cos: Vec<Option<f64>>,
    pub eff_rank: Vec<Option<f64>>,
    pub stable_rank: Vec<Option<f64>>,
    pub rank1_residual: Vec<Option<f64>>,
    pub log10_grad: Vec<Option<f64>>,
    pub adj_cos: Vec<Option<f64>>,
    pub q_pre_norm: Vec<Option<f64>>,
    pub branch_q_attn: Vec<Option<f64>>,
    pub branch_q_ffn: Vec<Option<f64>>,
    /// `(weight name, log10 ‖∂ℓ/∂W‖_F per block)`.
    pub log10_param_grad: Vec<(&'static str, Vec<Option<f64>>)>,
    pub loss: Option<f64>,
    pub diverged: Option<Divergence>,
}

/// An [`Observer`] that fills a [`SeedRecord`].
#[derive(Debug)]
pub struct Recorder {
    pub record: SeedRecord,
}

impl Recorder {
    /// A recorder for a stack of `depth` blocks whose weights have the given names.
    pub fn new(depth: usize, weight_names: &[&'static str]) -> Self {
        let b = vec![None; depth + 1];
        let k = vec![None; depth];
        Recorder {
            record: SeedRecord {
                q: b.clone(),
                token_cos: b.clone(),
                eff_rank: b.clone(),
                stable_rank: b.clone(),
                rank1_residual: b.clone(),
                log10_grad: b,
                adj_cos: k.clone(),
                q_pre_norm: k.clone(),
                branch_q_attn: k.clone(),
                branch_q_ffn: k.clone(),
                log10_param_grad: weight_names.iter().map(|&n| (n, k.clone())).collect(),
                loss: None,
                diverged: None,
            },
        }
    }
}

impl<T: Real> Observer<T> for Recorder {
    fn boundary(&mut self, l: usize, x: &Array2<T>) {
        let m = boundary(x);
        let r = &mut self.record;
        r.q[l] = Some(m.q);
        r.token_cos[l] = Some(m.token_cos).filter(|v| v.is_finite());
        r.eff_rank[l] = Some(m.eff_rank).filter(|v| v.is_finite());
        r.stable_rank[l] = Some(m.stable_rank).filter(|v| v.is_finite());
        r.rank1_residual[l] = Some(m.rank1_residual).filter(|v| v.is_finite());
    }

    fn block(&mut self, l: usize, x_prev: &Array2<T>, x: &Array2<T>, probe: Probe) {
        let r = &mut self.record;
        r.adj_cos[l - 1] = Some(adjacent_cos(x_prev, x)).filter(|v| v.is_finite());
        r.q_pre_norm[l - 1] = probe.q_pre_norm;
        r.branch_q_attn[l - 1] = probe.attn_q;
        r.branch_q_ffn[l - 1] = probe.ffn_q;
    }

    fn loss(&mut self, loss: f64) {
        self.record.loss = Some(loss).filter(|v| v.is_finite());
    }

    fn gradient(&mut self, l: usize, _dir: &Array2<T>, log10_norm: f64) {
        self.record.log10_grad[l] = Some(log10_norm);
    }

    fn param_grads(&mut self, l: usize, grads: &BlockWeights<T>, log10_scale: f64) {
        for ((name, norm), (slot_name, slot)) in grads
            .frobenius()
            .into_iter()
            .zip(self.record.log10_param_grad.iter_mut())
        {
            debug_assert_eq!(name, *slot_name);
            slot[l - 1] = Some(log10_scale + norm.log10()).filter(|v| v.is_finite());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn rank_measures_of_known_matrices() {
        // Orthogonal rows of equal norm: full rank, zero cosine.
        let x = array![[2.0f64, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
        let m = boundary(&x);
        assert!((m.q - 4.0 / 3.0).abs() < 1e-15);
        assert!((m.eff_rank - 3.0).abs() < 1e-12);
        assert!((m.stable_rank - 3.0).abs() < 1e-12);
        assert!(m.token_cos.abs() < 1e-15);
        // Identical rows: rank one, cosine one, no residual from the mean token.
        let y = array![[1.0f64, 2.0, 3.0], [1.0, 2.0, 3.0]];
        let m = boundary(&y);
        // Eigenvalues below ε λ_max are rounding: σ ≲ sqrt(ε) σ_max ≈ 1.5e-8 σ_max, which adds
        // at most n · 1.5e-8 · |ln 1.5e-8| ≈ 5e-7 to the entropy.
        assert!((m.eff_rank - 1.0).abs() < 1e-5);
        assert!((m.stable_rank - 1.0).abs() < 1e-12);
        assert!((m.token_cos - 1.0).abs() < 1e-15);
        assert_eq!(m.rank1_residual, 0.0);
    }

    #[test]
    fn adjacent_cos_of_scaled_copy_is_one() {
        let a = array![[1.0f64, -2.0], [0.5, 3.0]];
        let b = a.mapv(|v| 3.0 * v);
        assert!((adjacent_cos(&a, &b) - 1.0).abs() < 1e-15);
    }
}
