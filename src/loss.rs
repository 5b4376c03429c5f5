//! The loss at the top of the stack, its exact gradient, and the kernel of that gradient the
//! theory starts from (`analysis/model.md`, "Losses"; `analysis/theory.md` §1.4).
//!
//! # Formula
//! With `Y` the stack output (`n × d`), `R ~ N(0, 1)` the projection of the inputs' stream and
//! `c = 1/√(nd)`:
//! - `random-projection` (default): `ℓ = c Σ_ik R_ik Y_ik`; `∂ℓ/∂Y = c R`.
//! - `mean-token`: the same projection of the token mean `ȳ = (1/n) Σ_i Y_i`:
//!   `ℓ = c Σ_ik R_ik ȳ_k`; `∂ℓ/∂Y_j = (c/n) Σ_i R_i`, the same for every token `j`.
//! - `cross-entropy`: a random unembedding `U ∈ R^{d×V}` (`N(0, 1/d)` entries, `V` = `--vocab`),
//!   logits `Z = Y U`, random targets `t_i` uniform over the `V` words:
//!   `ℓ = (1/n) Σ_i [log Σ_v e^{Z_iv} − Z_{i t_i}]`; `∂ℓ/∂Z_i = (softmax(Z_i) − e_{t_i})/n`,
//!   `∂ℓ/∂Y = (∂ℓ/∂Z) Uᵀ`.
//!
//! `U` and the targets are drawn from the inputs' stream after `R`, only for `cross-entropy`,
//! so the other losses draw exactly what they always did.

use crate::choice_enum;
use crate::real::Real;
use ndarray::{Array1, Array2, Axis};

choice_enum!(
    /// The loss at the top of the stack.
    Loss, "loss", {
        /// `ℓ = Σ R ⊙ Y / √(nd)`.
        RandomProjection => "random-projection",
        /// The same projection of the token mean: the gradient is the same for every token.
        MeanToken => "mean-token",
        /// A random unembedding of `--vocab` words and random targets.
        CrossEntropy => "cross-entropy",
    }
);

/// The default vocabulary of `cross-entropy`.
pub const VOCAB: usize = 1024;

/// The most words `--vocab` may ask for (the unembedding is `d × V`).
pub const MAX_VOCAB: usize = 1 << 20;

/// `cross-entropy`'s draws: the unembedding and one target per token.
#[derive(Clone, Debug)]
pub struct Unembedding<T> {
    /// `U`, `d × V`.
    pub u: Array2<T>,
    /// `t_i`, one per token.
    pub targets: Vec<usize>,
}

/// `(ℓ, ∂ℓ/∂Y)` of `mean-token`, with `c = 1/√(nd)`.
pub fn mean_token<T: Real>(r: &Array2<T>, y: &Array2<T>, c: T) -> (f64, Array2<T>) {
    let n = y.nrows();
    let rsum: Array1<T> = r.sum_axis(Axis(0));
    let ybar: Array1<T> = y.sum_axis(Axis(0)).mapv(|v| v / T::of(n as f64));
    let loss = rsum
        .iter()
        .zip(ybar.iter())
        .map(|(&a, &b)| a.f64() * b.f64())
        .sum::<f64>()
        * c.f64();
    let row = rsum.mapv(|v| v * c / T::of(n as f64));
    let g = Array2::from_shape_fn(y.raw_dim(), |(_, k)| row[k]);
    (loss, g)
}

/// `(ℓ, ∂ℓ/∂Y)` of `cross-entropy`.
pub fn cross_entropy<T: Real>(e: &Unembedding<T>, y: &Array2<T>) -> (f64, Array2<T>) {
    let n = y.nrows();
    let mut z = y.dot(&e.u);
    let mut loss = 0.0;
    for (i, mut row) in z.axis_iter_mut(Axis(0)).enumerate() {
        let max = row.fold(T::neg_infinity(), |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let s = row.sum();
        let t = e.targets[i];
        // log Σ e^{z} − z_t = log s + max − z_t, and z_t − max = log(row[t]).
        loss += s.f64().ln() - row[t].f64().ln();
        row.mapv_inplace(|v| v / s);
        row[t] -= T::one();
        row.mapv_inplace(|v| v / T::of(n as f64));
    }
    (loss / n as f64, z.dot(&e.u.t()))
}

/// The kernel `Γ_ij = E[∂ℓ/∂Y_i · ∂ℓ/∂Y_j]` of the top gradient, for the kernel `k_y` (per
/// coordinate) of the stack output and `vocab` words (theory.md §1.4):
/// - `random-projection`: `I/n`;
/// - `mean-token`: `11ᵀ/n²` (every token's gradient is `R̄ c`, `E‖R̄‖² = d/n`);
/// - `cross-entropy`: `(1/n²) E[(p_i − e_{t_i})·(p_j − e_{t_j})]` with `UᵀU ≈ I`:
///   `(1 + P_2(q_i, V) − 2/V)/n²` on the diagonal (`P_2` the exact expected `Σ_v p_v²` of `V`
///   i.i.d. Gaussian logits of variance `q_i`), `(e^{K_ij} − 1)/(V n²)` off it (the log-normal
///   two-row statistic of §2.5.3, the rows' logits having covariance `K_ij`).
pub fn top_kernel(loss: Loss, k_y: &Array2<f64>, vocab: usize) -> Array2<f64> {
    let n = k_y.nrows();
    let nf = n as f64;
    match loss {
        Loss::RandomProjection => Array2::<f64>::eye(n) / nf,
        Loss::MeanToken => Array2::from_elem((n, n), 1.0 / (nf * nf)),
        Loss::CrossEntropy => {
            let v = vocab as f64;
            Array2::from_shape_fn((n, n), |(i, j)| {
                if i == j {
                    (1.0 + crate::theory::attention::p2(k_y[[i, i]], vocab) - 2.0 / v) / (nf * nf)
                } else {
                    (k_y[[i, j]].exp() - 1.0) / (v * nf * nf)
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_token_gradient_is_the_same_for_every_token() {
        let r = Array2::from_shape_fn((3, 4), |(i, k)| (i * 4 + k) as f64 - 5.0);
        let y = Array2::from_shape_fn((3, 4), |(i, k)| ((i + 2 * k) % 5) as f64);
        let (_, g) = mean_token(&r, &y, 0.5);
        for row in g.rows() {
            assert_eq!(row, g.row(0));
        }
    }

    #[test]
    fn cross_entropy_of_equal_logits_is_log_v() {
        let e = Unembedding {
            u: Array2::<f64>::zeros((4, 8)),
            targets: vec![3, 0],
        };
        let (l, g) = cross_entropy(&e, &Array2::ones((2, 4)));
        assert!((l - 8f64.ln()).abs() < 1e-15);
        assert!(g.iter().all(|&v| v == 0.0));
    }
}
