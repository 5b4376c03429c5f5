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
use crate::stack::{Divergence, Observer, Pass};
use crate::weight::WeightName;
use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

/// The rank and correlation measures of one matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Boundary {
    /// Second moment `‖X‖_F² / (n d)`.
    pub q: f64,
    /// Mean cosine between distinct tokens (over pairs of non-zero tokens).
    pub token_cos: f64,
    /// `exp(H(σ / Σσ))`.
    pub eff_rank: f64,
    /// `‖X‖_F² / ‖X‖_2²`.
    pub stable_rank: f64,
    /// `‖X − 1 x̄ᵀ‖_F / ‖X‖_F`.
    pub rank1_residual: f64,
}

/// Measures `x` (`n × d`). Quantities a matrix does not define (every measure of an empty
/// or all-zero matrix, `token_cos` with fewer than two non-zero tokens) are NaN.
pub fn boundary<T: Real>(x: &Array2<T>) -> Boundary {
    let d = x.ncols();
    let xf = x.mapv(|v| v.f64());
    let gram = xf.dot(&xf.t());
    let mut m = from_gram(&gram, d);
    // The distance from rank one directly, not as a difference of Gram sums: near collapse
    // that difference cancels catastrophically.
    m.rank1_residual = match xf.mean_axis(Axis(0)) {
        Some(mean) => (centred_sum_sq(&xf, &mean.to_vec()) / gram.diag().sum()).sqrt(),
        None => f64::NAN,
    };
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
    if n == 0 || gram.ncols() != n {
        return Boundary {
            q: f64::NAN,
            token_cos: f64::NAN,
            eff_rank: f64::NAN,
            stable_rank: f64::NAN,
            rank1_residual: f64::NAN,
        };
    }
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
        // A zero matrix has no singular-value distribution.
        eff_rank: if total > 0.0 { entropy.exp() } else { f64::NAN },
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

/// The late-half share of one seed's representation change: with `c_l = 1 − adj_cos_l` for
/// blocks `l = 1..L` (`adj_cos[l − 1]`), `Σ_{l > ⌊L/2⌋} c_l / Σ_l c_l`, the fraction of the
/// total change that the upper half of the stack makes (C5, `analysis/checks.md`). A stack
/// whose blocks all change the stream alike has ½; one whose change concentrates in the
/// first blocks (unscaled `pre`, `1 − adj_cos_l ≈ 1/(2l)`) has about `ln 2 / ln L`.
/// `None` when a block has no value or the total is not positive.
pub fn late_half_share(adj_cos: &[Option<f64>]) -> Option<f64> {
    let change: Vec<f64> = adj_cos
        .iter()
        .map(|c| c.map(|c| 1.0 - c))
        .collect::<Option<_>>()?;
    let total: f64 = change.iter().sum();
    let late: f64 = change[change.len() / 2..].iter().sum();
    (total > 0.0 && total.is_finite()).then(|| late / total)
}

/// An [`Observer`] that records the RMS `sqrt(‖x_i‖²/d)` of every token at every boundary
/// (for per-token bounds such as span-outer's triangle inequality): `self.0[l][i]`.
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
/// blocks `L` entries (block `l` at index `l − 1`). An entry is `None` when the run never
/// reached it ([`SeedRecord::reached`]), or when the quantity is not defined there: a
/// probe of a block without that part (`q_pre_norm` without a closing norm), or the
/// `log10` of a weight gradient that is exactly zero.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedRecord {
    /// `q` per boundary.
    pub q: Vec<Option<f64>>,
    /// `token_cos` per boundary.
    pub token_cos: Vec<Option<f64>>,
    /// `eff_rank` per boundary.
    pub eff_rank: Vec<Option<f64>>,
    /// `stable_rank` per boundary.
    pub stable_rank: Vec<Option<f64>>,
    /// `rank1_residual` per boundary.
    pub rank1_residual: Vec<Option<f64>>,
    /// `log10 ‖∂ℓ/∂X_l‖_F` per boundary.
    pub log10_grad: Vec<Option<f64>>,
    /// `adj_cos` per block.
    pub adj_cos: Vec<Option<f64>>,
    /// `q_pre_norm` per block.
    pub q_pre_norm: Vec<Option<f64>>,
    /// Second moment of the attention output per block.
    pub branch_q_attn: Vec<Option<f64>>,
    /// Second moment of the feed-forward output per block.
    pub branch_q_ffn: Vec<Option<f64>>,
    /// `(weight, log10 ‖∂ℓ/∂W‖_F per block)`.
    pub log10_param_grad: Vec<(WeightName, Vec<Option<f64>>)>,
    /// The loss `ℓ`.
    pub loss: Option<f64>,
    /// Where the run stopped, if it did.
    pub diverged: Option<Divergence>,
}

/// The kinds of entry of a [`SeedRecord`], by when the run computes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Forward, per boundary `l = 0..=L` (index `l`).
    Boundary,
    /// Forward, per block `l = 1..=L` (index `l − 1`).
    Block,
    /// The loss.
    Loss,
    /// Backward, per boundary (`log10_grad`, index `l`).
    Gradient,
    /// Backward, per block (weight gradients, index `l − 1`).
    ParamGrad,
}

impl SeedRecord {
    /// Whether the run reached entry `index` of kind `entry` before it stopped (always, for a
    /// run that finished). A forward failure at block `b` stops after boundary `b − 1` and
    /// computes no gradient; a backward failure at block `b` (the gradient below it) keeps
    /// the gradients at boundaries `b..=L` and the weight gradients of blocks `b..=L`.
    pub fn reached(&self, entry: Entry, index: usize) -> bool {
        let Some(d) = self.diverged else { return true };
        let b = d.block;
        match (d.pass, entry) {
            (Pass::Forward, Entry::Boundary) => index < b,
            (Pass::Forward, Entry::Block) => index + 1 < b,
            (Pass::Forward, _) => false,
            (Pass::Backward, Entry::Gradient) => index >= b,
            (Pass::Backward, Entry::ParamGrad) => index + 1 >= b,
            (Pass::Backward, _) => true,
        }
    }
}

/// An [`Observer`] that fills a [`SeedRecord`].
#[derive(Debug)]
pub struct Recorder {
    /// What has been recorded so far.
    pub record: SeedRecord,
}

impl Recorder {
    /// A recorder for a stack of `depth` blocks whose weights have the given names.
    pub fn new(depth: usize, weight_names: &[WeightName]) -> Self {
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

/// The radial part of the gradient at one boundary (theory.md §2.10): what
/// [`crate::theory::eta::block_output`] reads and predicts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Radial {
    /// Mean off-diagonal cosine of the tokens.
    pub rho: f64,
    /// Off-diagonal correlation of the gradient, `Σ_{i≠j} gᵢ·gⱼ / ((n − 1) Σᵢ ‖gᵢ‖²)`.
    pub kappa: f64,
    /// `η = d Σᵢ (ŷᵢ·gᵢ)² / Σᵢ ‖gᵢ‖²`, with `ŷᵢ` the unit token: the fraction of the
    /// gradient a norm with output `X` would remove, in units of `1/d`.
    pub eta: f64,
    /// `μ = Σᵢ (1·gᵢ)² / Σᵢ ‖gᵢ‖²`: the gradient's second moment along the feature mean, in
    /// units of an isotropic gradient's (`1/d` of it); what a layernorm's Jacobian removes
    /// (theory.md §2.2, [`crate::theory::mean_fractions`]).
    pub mu: f64,
    /// `μ_x = Σᵢ (1·xᵢ)² / Σᵢ ‖xᵢ‖²`: the same for the boundary itself, which sets a
    /// layernorm's `s² = q (1 − μ_x/d)`.
    pub mu_x: f64,
}

/// [`Radial`] of boundary `x` (`n × d`, at least two tokens, none zero) and its gradient `g`
/// (any scale, not zero).
pub fn radial(x: &Array2<f64>, g: &Array2<f64>) -> Radial {
    let (n, d) = x.dim();
    let (mut along, mut total, mut mean) = (0.0, 0.0, 0.0);
    let (mut x_total, mut x_mean) = (0.0, 0.0);
    for (xi, gi) in x.rows().into_iter().zip(g.rows()) {
        let (xx, xg) = (xi.dot(&xi), xi.dot(&gi));
        along += xg * xg / xx;
        total += gi.dot(&gi);
        mean += gi.sum().powi(2);
        x_total += xx;
        x_mean += xi.sum().powi(2);
    }
    let sum = g.sum_axis(Axis(0));
    Radial {
        rho: boundary(x).token_cos,
        kappa: (sum.dot(&sum) - total) / ((n as f64 - 1.0) * total),
        eta: d as f64 * along / total,
        mu: mean / total,
        mu_x: x_mean / x_total,
    }
}

/// Records [`radial`] at every boundary of one seed (`f64` runs): the boundaries are kept
/// from the forward pass until their gradients arrive.
#[derive(Debug, Default)]
pub struct RadialRecorder {
    x: Vec<Array2<f64>>,
    /// Per boundary `l = 0..=L`; `None` until its gradient has been seen.
    pub rows: Vec<Option<Radial>>,
}

impl Observer<f64> for RadialRecorder {
    fn boundary(&mut self, _l: usize, x: &Array2<f64>) {
        self.x.push(x.clone());
        self.rows.push(None);
    }
    fn gradient(&mut self, l: usize, dir: &Array2<f64>, _log10_norm: f64) {
        self.rows[l] = Some(radial(&self.x[l], dir));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Failure;
    use ndarray::array;

    #[test]
    fn late_half_share_of_known_changes() {
        // Equal change in every block: one half; all of it in the first block: none.
        assert_eq!(late_half_share(&[Some(0.9); 4]), Some(0.5));
        let first = [Some(0.0), Some(1.0), Some(1.0), Some(1.0)];
        assert_eq!(late_half_share(&first), Some(0.0));
        // Odd L: the upper half is l > ⌊L/2⌋, blocks 2 and 3 of 3.
        let odd = [Some(0.5), Some(0.75), Some(0.75)];
        assert_eq!(late_half_share(&odd), Some(0.5));
        // A missing block, or no change at all, has no share.
        assert_eq!(late_half_share(&[Some(0.5), None]), None);
        assert_eq!(late_half_share(&[Some(1.0); 2]), None);
    }

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
    fn rank_one_residual_and_zero_tokens() {
        // Rows (1, 0) and (0, 1): mean token (1/2, 1/2), ‖X − 1x̄ᵀ‖² = 4 · 1/4 = 1, ‖X‖² = 2.
        let x = array![[1.0f64, 0.0], [0.0, 1.0]];
        let m = boundary(&x);
        assert!((m.rank1_residual - 0.5f64.sqrt()).abs() < 1e-15);
        // The Gram route gives the same: (tr G − 1ᵀG1/n)/tr G = (2 − 1)/2.
        let g = x.dot(&x.t());
        assert!((from_gram(&g, 2).rank1_residual - 0.5f64.sqrt()).abs() < 1e-15);
        // A zero token has no direction: cosines average over the other pairs only.
        let z = array![[1.0f64, 0.0], [0.0, 0.0], [1.0, 1.0]];
        let m = boundary(&z);
        assert!(
            (m.token_cos - 0.5f64.sqrt()).abs() < 1e-15,
            "{}",
            m.token_cos
        );
        // An empty matrix is NaN, not a panic.
        let e = Array2::<f64>::zeros((0, 3));
        assert!(boundary(&e).q.is_nan());
    }

    #[test]
    fn token_rms_and_loss_are_recorded_exactly() {
        let x = array![[3.0f64, 4.0], [0.0, 2.0]];
        let mut t = TokenRms::default();
        Observer::<f64>::boundary(&mut t, 0, &x);
        assert_eq!(
            t.0,
            vec![vec![(25.0f64 / 2.0).sqrt(), (4.0f64 / 2.0).sqrt()]]
        );
        let mut r = Recorder::new(1, &[]);
        Observer::<f64>::loss(&mut r, -0.25);
        assert_eq!(r.record.loss, Some(-0.25));
        Observer::<f64>::loss(&mut r, f64::NAN);
        assert_eq!(r.record.loss, None);
        // A block's record goes to index l − 1: its adjacent cosine and its probes.
        let mut r = Recorder::new(2, &[]);
        let probe = crate::block::Probe {
            attn_q: Some(0.5),
            ffn_q: Some(2.0),
            q_pre_norm: Some(1.25),
            ..Default::default()
        };
        let y = array![[4.0f64, 3.0], [0.0, -2.0]];
        Observer::<f64>::block(&mut r, 2, &x, &y, probe);
        // cos((3, 4), (4, 3)) = 24/25; cos((0, 2), (0, −2)) = −1.
        let adj = r.record.adj_cos[1].unwrap();
        assert!((adj - (24.0 / 25.0 - 1.0) / 2.0).abs() < 1e-15, "{adj}");
        assert_eq!(r.record.adj_cos[0], None);
        assert_eq!(
            (r.record.branch_q_attn[1], r.record.branch_q_ffn[1]),
            (Some(0.5), Some(2.0))
        );
        assert_eq!(r.record.q_pre_norm[1], Some(1.25));
        // Gradients at boundary l; weight gradients of block l at l − 1, scale times norm.
        let names = crate::attention::AttnWeights::<f64>::NAMES;
        let mut r = Recorder::new(2, &names);
        Observer::<f64>::gradient(&mut r, 1, &x, -1.5);
        assert_eq!(r.record.log10_grad[1], Some(-1.5));
        let m = |v: f64| Array2::from_elem((1, 1), v);
        let grads = BlockWeights {
            attn: crate::attention::AttnWeights {
                w_q: m(10.0),
                w_k: m(100.0),
                w_v: m(1.0),
                w_o: m(0.0),
            },
            ffn: None,
        };
        Observer::<f64>::param_grads(&mut r, 2, &grads, 2.0);
        let got: Vec<Option<f64>> = r
            .record
            .log10_param_grad
            .iter()
            .map(|(_, s)| s[1])
            .collect();
        // 10^2 · (10, 100, 1) in log10; a zero gradient has no logarithm.
        assert_eq!(got, vec![Some(3.0), Some(4.0), Some(2.0), None]);
        assert!(r
            .record
            .log10_param_grad
            .iter()
            .all(|(_, s)| s[0].is_none()));
    }

    #[test]
    fn reach_follows_where_a_run_stopped() {
        let mut r = Recorder::new(4, &[]).record;
        assert!(r.reached(Entry::Gradient, 0));
        r.diverged = Some(Divergence {
            block: 2,
            pass: Pass::Forward,
            reason: Failure::NonFinite,
        });
        assert!(r.reached(Entry::Boundary, 1) && !r.reached(Entry::Boundary, 2));
        assert!(r.reached(Entry::Block, 0) && !r.reached(Entry::Block, 1));
        assert!(!r.reached(Entry::Loss, 0) && !r.reached(Entry::Gradient, 4));
        r.diverged = Some(Divergence {
            block: 3,
            pass: Pass::Backward,
            reason: Failure::Vanished,
        });
        assert!(r.reached(Entry::Boundary, 4) && r.reached(Entry::Loss, 0));
        assert!(r.reached(Entry::Gradient, 3) && !r.reached(Entry::Gradient, 2));
        assert!(r.reached(Entry::ParamGrad, 2) && !r.reached(Entry::ParamGrad, 1));
    }

    #[test]
    fn adjacent_cos_of_scaled_copy_is_one() {
        let a = array![[1.0f64, -2.0], [0.5, 3.0]];
        let b = a.mapv(|v| 3.0 * v);
        assert!((adjacent_cos(&a, &b) - 1.0).abs() < 1e-15);
        // Token by token: cos 0 and cos 45°, mean (0 + 1/√2)/2.
        let a = array![[1.0f64, 0.0], [1.0, 0.0]];
        let b = array![[0.0f64, 1.0], [1.0, 1.0]];
        let want = 0.5f64.sqrt() / 2.0;
        assert!((adjacent_cos(&a, &b) - want).abs() < 1e-15);
    }

    #[test]
    fn radial_reads_cosines_and_the_radial_fraction() {
        // Two orthogonal tokens (ρ = 0); gradients: token 0 along itself, token 1 across.
        let x = array![[2.0, 0.0], [0.0, 3.0]];
        let g = array![[1.0, 0.0], [1.0, 0.0]];
        let m = radial(&x, &g);
        assert_eq!(m.rho, 0.0);
        // κ: 2 g₀·g₁ = 2 over (n − 1) Σ‖gᵢ‖² = 2 (equal gradients).
        assert_eq!(m.kappa, 1.0);
        // η = d (1² + 0²) / 2 = 1.
        assert_eq!(m.eta, 1.0);
        let g = array![[0.0, 1.0], [0.0, -2.0]];
        let m = radial(&x, &g);
        // κ = 2 g₀·g₁ / Σ‖gᵢ‖² = −4/5; η = d (0² + 2²)/5.
        assert_eq!((m.kappa, m.eta), (-0.8, 2.0 * 4.0 / 5.0));
        // μ = Σᵢ (1·gᵢ)² / Σ‖gᵢ‖² = (1 + 4)/5 = 1 here; a centred gradient has none.
        assert_eq!(m.mu, 1.0);
        let g = array![[1.0, -1.0], [2.0, 0.0]];
        assert_eq!(radial(&x, &g).mu, 4.0 / 6.0);
        assert_eq!(radial(&x, &array![[1.0, -1.0], [-3.0, 3.0]]).mu, 0.0);
        // μ_x of the tokens (2, 0), (0, 3): (4 + 9)/13 = 1; of a centred boundary, 0.
        assert_eq!(m.mu_x, 1.0);
        let centred = array![[1.0, -1.0], [2.0, -2.0]];
        assert_eq!(radial(&centred, &g).mu_x, 0.0);
    }

    #[test]
    fn a_zero_matrix_has_no_rank_or_cosine() {
        // Every token zero: no direction, no singular-value distribution (not rank 1).
        let m = boundary(&Array2::<f64>::zeros((2, 3)));
        assert_eq!(m.q, 0.0);
        assert!(m.token_cos.is_nan() && m.eff_rank.is_nan(), "{m:?}");
    }
}
