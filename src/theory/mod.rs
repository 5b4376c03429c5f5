//! Mean-field predictions of every per-layer quantity, in the same [`RunResult`] layout as a
//! simulation (`source: theory`), so one plot call overlays both. Derivations:
//! `analysis/theory.md`.
//!
//! Each block is predicted by running its placement's formula ([`crate::placement`]) on a
//! [`tape::TheoryTape`], which carries token kernels instead of matrices. A prediction
//! returns [`TheoryError`] where its assumptions fail (softmax attention outside its
//! near-uniform regime, mixture-of-experts with the causal mask) instead of a number.

pub mod attention;
pub mod dual;
pub mod logits;
pub mod moe;
pub mod quadrature;
pub mod tape;

use crate::attention::Mask;
use crate::config::{ModelConfig, SimConfig};
use crate::init::{weight_std, Init};
use crate::metrics::from_gram;
use crate::norm::{Norm, EPS};
use crate::placement::Placement;
use crate::simulate::{weight_names, Blocks, Boundaries, BranchQ, RunResult, Source};
use crate::summary::Series;
use ndarray::Array2;
use std::collections::BTreeMap;
pub use tape::Ctx;
use tape::{exchangeable, TheoryTape};

/// Why a prediction is not available for a configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TheoryError {
    /// The derivation's assumptions do not hold for this configuration.
    #[error("no prediction for {what}: {reason}")]
    Unsupported { what: String, reason: String },
}

fn unsupported(cfg: &ModelConfig, reason: impl Into<String>) -> TheoryError {
    TheoryError::Unsupported {
        what: cfg.placement.to_string(),
        reason: reason.into(),
    }
}

/// The constants of the maps for a model.
pub fn context(m: &ModelConfig) -> Ctx {
    let (d, f) = (m.width, m.d_ff);
    let gain = |fi: usize, fo: usize| weight_std(m.init, m.sigma_w, fi, fo).powi(2) * fi as f64;
    let b2 = m.placement.init_gain(m.depth).powi(2);
    Ctx {
        n: m.tokens,
        d,
        d_ff: f,
        norm: m.norm,
        mask: m.mask,
        act: m.act,
        g_q: gain(d, d),
        g_k: gain(d, d),
        g_v: gain(d, d) * b2,
        g_o: gain(d, d) * b2,
        g_1: gain(d, f) * b2,
        g_2: gain(f, d) * b2,
        g_g: gain(d, f) * b2,
        zero_query: m.init == Init::ZeroQuery,
        exchangeable: m.mask == Mask::Bidirectional,
        moe: m
            .moe
            .map(|x| (gain(d, x.experts), moe::Routing::new(x.experts, x.top_k))),
    }
}

/// Whether block `l`'s trunk norms see gradients orthogonal to their input: everything above
/// is scale-invariant in the block output (theory.md §2.2, `η = 0`). True for `post`,
/// canonical `span` and `deepnorm`, whose next block starts with `N(w x + α A(x))` or
/// `N(x + α A(x) + …)` with `A` and relu homogeneous; not for `b2t` (its skip adds `x` after
/// the first norm), `span` with `inner-norm` (`A(N(x))` is not homogeneous), or `mix`'s last
/// post block (pre blocks above it).
fn trunk_normalized(m: &ModelConfig, l: usize) -> bool {
    match m.placement {
        Placement::Post | Placement::Deepnorm => true,
        Placement::Span => !m.inner_norm,
        Placement::Mix => l < m.depth / 4,
        _ => false,
    }
}

/// `K_0 = ρ0 11ᵀ + (1 − ρ0) I`.
pub fn input_kernel(m: &ModelConfig) -> Array2<f64> {
    let n = m.tokens;
    Array2::from_shape_fn((n, n), |(i, j)| if i == j { 1.0 } else { m.rho0 })
}

/// A series known exactly (no seeds): `lo`, `hi` null and `n` 0.
fn exact(values: Vec<Option<f64>>) -> Series {
    let len = values.len();
    Series {
        mean: values,
        lo: vec![None; len],
        hi: vec![None; len],
        n: vec![0; len],
    }
}

/// The mean-field prediction for `cfg`, layer by layer.
pub fn predict(cfg: &SimConfig) -> Result<RunResult, TheoryError> {
    predict_with(cfg, &|_| {})
}

/// [`predict`] with the map constants changed by `tweak` first: used to prove that a check
/// fails when a gain is wrong.
pub fn predict_with(cfg: &SimConfig, tweak: &dyn Fn(&mut Ctx)) -> Result<RunResult, TheoryError> {
    let m = &cfg.model;
    if m.moe.is_some() && m.mask == Mask::Causal {
        return Err(unsupported(
            m,
            "mixture-of-experts with the causal mask: every token pair would need its own \
             Monte Carlo routing integral (theory.md §2.4); the bidirectional mask is derived",
        ));
    }
    let mut ctx = context(m);
    tweak(&mut ctx);
    let (n, depth) = (m.tokens, m.depth);
    let fix = |k: Array2<f64>| {
        if ctx.exchangeable {
            exchangeable(&k)
        } else {
            k
        }
    };

    // Forward.
    let mut ks = vec![input_kernel(m)];
    let mut adj = Vec::with_capacity(depth);
    let (mut qpre, mut aq, mut fq) = (Vec::new(), Vec::new(), Vec::new());
    for l in 1..=depth {
        let (mut t, x) =
            TheoryTape::new(&ctx, ks[l - 1].clone(), trunk_normalized(m, l), l == depth);
        let out = m.placement.block(&mut t, x, l, m);
        if let Some(e) = t.error() {
            return Err(unsupported(m, format!("block {l}: {e}")));
        }
        let k = fix(t.kernel(out));
        if !k.iter().all(|v| v.is_finite()) {
            return Err(unsupported(
                m,
                format!("the recursion overflows at block {l}"),
            ));
        }
        let cross = t.cross_input_diag(out);
        let kx = &ks[l - 1];
        let cos: f64 = (0..n)
            .map(|i| cross[i] / (kx[[i, i]] * k[[i, i]]).sqrt())
            .sum::<f64>()
            / n as f64;
        adj.push(Some(cos));
        let p = t.probe();
        qpre.push(p.q_pre_norm);
        aq.push(p.attn_q);
        fq.push(p.ffn_q);
        ks.push(k);
    }

    // Backward, with Γ kept at unit trace and its scale in log10 (as the engine does).
    let names = weight_names(m);
    let top = Array2::<f64>::eye(n) / n as f64;
    let mut gamma = if m.placement.output_norm() {
        let kl = &ks[depth];
        let f = match m.norm {
            Norm::Layernorm => 1.0 - 1.0 / m.width as f64,
            Norm::Rmsnorm => 1.0,
        };
        let proj = 1.0 - 1.0 / m.width as f64;
        Array2::from_shape_fn((n, n), |(i, j)| {
            let di = f.sqrt() / (f * kl[[i, i]] + EPS).sqrt();
            let dj = f.sqrt() / (f * kl[[j, j]] + EPS).sqrt();
            top[[i, j]] * di * dj * proj
        })
    } else {
        top
    };
    let mut lg = 0.0;
    let mut log10_grad = vec![None; depth + 1];
    let mut log10_param: Vec<Vec<Option<f64>>> = vec![vec![None; depth]; names.len()];
    let mut renormalize = |gamma: &mut Array2<f64>, l: usize| -> Result<f64, TheoryError> {
        let tr = gamma.diag().sum();
        if !(tr.is_finite() && tr > 0.0) {
            return Err(unsupported(
                m,
                format!("the gradient recursion degenerates at block {}", l + 1),
            ));
        }
        *gamma /= tr;
        lg += tr.log10();
        log10_grad[l] = Some(0.5 * lg);
        Ok(lg)
    };
    let mut scale = renormalize(&mut gamma, depth)?;
    for l in (1..=depth).rev() {
        let (mut t, x) =
            TheoryTape::new(&ctx, ks[l - 1].clone(), trunk_normalized(m, l), l == depth);
        let out = m.placement.block(&mut t, x, l, m);
        let (gin, params) = t.backward(out, gamma);
        for (name, v) in params {
            if let (Some(j), Some(v)) = (names.iter().position(|&w| w == name), v) {
                if v > 0.0 {
                    log10_param[j][l - 1] = Some(0.5 * (v.log10() + scale));
                }
            }
        }
        gamma = fix(gin);
        scale = renormalize(&mut gamma, l - 1)?;
    }

    let bd: Vec<_> = ks.iter().map(|k| from_gram(k, 1)).collect();
    let col = |f: fn(&crate::metrics::Boundary) -> f64| {
        exact(
            bd.iter()
                .map(|b| Some(f(b)).filter(|v| v.is_finite()))
                .collect(),
        )
    };
    let mut log10_param_grad = BTreeMap::new();
    let mut param_grad = BTreeMap::new();
    for (j, name) in names.iter().enumerate() {
        let v = &log10_param[j];
        log10_param_grad.insert(*name, exact(v.clone()));
        param_grad.insert(
            *name,
            exact(v.iter().map(|x| x.map(|x| 10f64.powf(x))).collect()),
        );
    }
    Ok(RunResult {
        source: Source::Theory,
        config: cfg.to_raw(),
        diverged: Vec::new(),
        loss: exact(vec![Some(0.0)]),
        boundaries: Boundaries {
            l: (0..=depth).collect(),
            q: col(|b| b.q),
            grad: exact(
                log10_grad
                    .iter()
                    .map(|v| v.map(|x| 10f64.powf(x)))
                    .collect(),
            ),
            log10_grad: exact(log10_grad),
            token_cos: col(|b| b.token_cos),
            eff_rank: col(|b| b.eff_rank),
            stable_rank: col(|b| b.stable_rank),
            rank1_residual: col(|b| b.rank1_residual),
        },
        blocks: Blocks {
            l: (1..=depth).collect(),
            alpha: (1..=depth).map(|l| m.scale.alpha(l, depth)).collect(),
            adj_cos: exact(adj),
            q_pre_norm: exact(qpre),
            branch_q: BranchQ {
                attn: exact(aq),
                ffn: exact(fq),
            },
            log10_param_grad,
            param_grad,
        },
    })
}
