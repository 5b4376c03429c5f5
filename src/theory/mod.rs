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
pub mod eta;
pub mod inner;
pub mod logits;
pub mod moe;
pub mod perturb;
pub mod quadrature;
pub mod tape;

use crate::attention::Mask;
use crate::config::{ModelConfig, SimConfig};
use crate::init::{weight_std, Init};
use crate::loss::{self, Loss};
use crate::metrics::from_gram;
use crate::norm::{Norm, EPS};
use crate::placement::BlockCtx;
use crate::result::{Blocks, Boundaries, BranchQ, RunResult, Source};
use crate::summary::{Reason, Series};
use crate::weight::WeightName;
use ndarray::Array2;
pub use perturb::{Ingredient, Perturb};
use std::collections::BTreeMap;
pub use tape::Ctx;
pub use tape::Trunk;
use tape::{exchangeable, TheoryTape};

/// Why a prediction is not available for a configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TheoryError {
    /// The derivation's assumptions do not hold for this configuration.
    #[error("no prediction for {what}: {reason}")]
    Unsupported {
        /// The placement (or part) concerned.
        what: String,
        /// Which assumption fails, in a few words.
        refusal: Refusal,
        /// Which assumption fails, with the numbers.
        reason: String,
    },
}

impl TheoryError {
    /// One short line for a figure note or a table: the placement and the failed
    /// assumption, without the numbers (`span-outer: softmax logits outside the
    /// near-uniform regime`).
    pub fn summary(&self) -> String {
        match self {
            TheoryError::Unsupported { what, refusal, .. } => format!("{what}: {refusal}"),
        }
    }

    /// Which assumption fails.
    pub fn refusal(&self) -> Refusal {
        match self {
            TheoryError::Unsupported { refusal, .. } => *refusal,
        }
    }
}

/// Which assumption of the derivation fails, as a figure note names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// A mixture of experts under the causal mask (not derived).
    CausalMixture,
    /// The prediction's kernels would not fit the memory limit.
    KernelMemory,
    /// The routing table of a mixture would be too large.
    RoutingTable,
    /// Softmax attention with logits too spread for the near-uniform expansion.
    SoftmaxRegime,
    /// The forward recursion overflows `f64`.
    Overflow,
    /// A predicted token correlation leaves `[-1, 1]`.
    Correlation,
    /// The gradient recursion loses its scale.
    GradientDegenerate,
    /// A combination of ops whose map is not derived (norms inside attention under the
    /// causal mask with softmax).
    NotDerived,
    /// A map that needs a Gaussian input sees a non-Gaussian one (`dyt` of a `dyt`).
    NonGaussian,
    /// An init gain that varies with the block (the maps take one gain per weight).
    LayerGain,
    /// Cross-entropy outside the regime of its log-normal two-row statistic.
    CrossEntropyRegime,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::CausalMixture => "mixture of experts with the causal mask is not derived",
            Refusal::KernelMemory => "the prediction's kernels exceed the memory limit",
            Refusal::RoutingTable => "the routing table of the mixture is too large",
            Refusal::SoftmaxRegime => "softmax logits outside the near-uniform regime",
            Refusal::Overflow => "the forward recursion overflows",
            Refusal::Correlation => "the kernel approximation leaves its regime",
            Refusal::GradientDegenerate => "the gradient recursion degenerates",
            Refusal::NotDerived => "this combination of ops is not derived",
            Refusal::NonGaussian => "a map needs a Gaussian input and sees a non-Gaussian one",
            Refusal::LayerGain => "an init gain varies with the block",
            Refusal::CrossEntropyRegime => "cross-entropy outside its log-normal regime",
        })
    }
}

/// The most memory the kernels of one prediction may take: the `L + 1` boundary kernels
/// and about 64 more per block, `n × n` values each.
pub const MAX_KERNEL_BYTES: f64 = 4.0 * (1u64 << 30) as f64;

fn unsupported(cfg: &ModelConfig, refusal: Refusal, reason: impl Into<String>) -> TheoryError {
    TheoryError::Unsupported {
        what: cfg.placement_name().to_string(),
        refusal,
        reason: reason.into(),
    }
}

/// Per-entry gains `var · fan_in` of a model's weights (the placement's init gains squared
/// included, DeepNorm's `β²`): `(g_q, g_k, g_v, g_o, g_1, g_2, g_g)`, and the router's `g_r`
/// of a mixture. Gains are those of block 1 (a gain formula that varies with `l` is refused
/// by [`predict`]).
pub fn gains(m: &ModelConfig) -> ([f64; 7], Option<f64>) {
    let (d, f) = (m.width, m.d_ff);
    let gain = |fi: usize, fo: usize| weight_std(m.init, m.sigma_w, fi, fo).powi(2) * fi as f64;
    let b2 = |w: WeightName| crate::stack::init_gain(m, w, 1).powi(2);
    let (w1, w2, wg) = match m.moe {
        None => (WeightName::FfnW1, WeightName::FfnW2, WeightName::FfnWg),
        Some(_) => (WeightName::MoeW1, WeightName::MoeW2, WeightName::MoeWg),
    };
    (
        [
            gain(d, d) * b2(WeightName::AttnQ),
            gain(d, d) * b2(WeightName::AttnK),
            gain(d, d) * b2(WeightName::AttnV),
            gain(d, d) * b2(WeightName::AttnO),
            gain(d, f) * b2(w1),
            gain(f, d) * b2(w2),
            gain(d, f) * b2(wg),
        ],
        m.moe.map(|x| gain(d, x.experts) * b2(WeightName::MoeWr)),
    )
}

/// `c_A(ρ)`: the second moment of uniform (`zero-query`) attention's output per unit second
/// moment of its input at token correlation `ρ`, `g_v g_o (ρ + (1 − ρ)/n)` (theory.md §0.2).
pub fn uniform_attention_gain(m: &ModelConfig, rho: f64) -> f64 {
    let ([_, _, g_v, g_o, ..], _) = gains(m);
    g_v * g_o * (rho + (1.0 - rho) / m.tokens as f64)
}

/// `c_F`: the second moment of one dense feed-forward network's output per unit second
/// moment of its input (relu: `g_1 g_2 / 2`; theory.md §0.2, §2.3).
pub fn ffn_gain(m: &ModelConfig) -> f64 {
    let ([.., g_1, g_2, g_g], _) = gains(m);
    match m.act {
        crate::ffn::Activation::Relu => dual::forward(dual::Phi::Relu, g_1, g_1, g_1) * g_2,
        crate::ffn::Activation::Gelu => dual::forward(dual::Phi::Gelu, g_1, g_1, g_1) * g_2,
        crate::ffn::Activation::Swiglu => dual::forward(dual::Phi::Silu, g_g, g_g, g_g) * g_1 * g_2,
    }
}

/// The constants of the maps for a model; an error where a table they need would be too
/// large (a mixture of very many experts).
pub fn context(m: &ModelConfig) -> Result<Ctx, TheoryError> {
    let (d, f) = (m.width, m.d_ff);
    let ([g_q, g_k, g_v, g_o, g_1, g_2, g_g], g_r) = gains(m);
    let moe = match (m.moe, g_r) {
        (Some(x), Some(g_r)) => Some((
            g_r,
            moe::Routing::new(x.experts, x.top_k)
                .map_err(|e| unsupported(m, Refusal::RoutingTable, e))?,
        )),
        _ => None,
    };
    Ok(Ctx {
        n: m.tokens,
        d,
        d_ff: f,
        norm: m.norm,
        mask: m.mask,
        act: m.act,
        g_q,
        g_k,
        g_v,
        g_o,
        g_1,
        g_2,
        g_g,
        zero_query: m.init == Init::ZeroQuery,
        exchangeable: m.mask == Mask::Bidirectional,
        moe,
        dyt_alpha: m.dyt_alpha(),
        heads: m.heads,
        attn_opts: m.definition().attention(),
        ffn_opts: m.definition().ffn(),
        perturb: Perturb::default(),
    })
}

/// Whether block `l`'s trunk norms see gradients orthogonal to their input: everything above
/// is scale-invariant in the block output (theory.md §2.2, `η = 0`). Read off the formulas
/// ([`crate::lang::Program::scale_invariant`]): the block above (for the top block, the
/// block itself) maps `c x` to what it maps `x` to, counting attention and the feed-forward
/// network as homogeneous. True for `post`, canonical `span` and `deepnorm`
/// (`N(w x + α A(x))`, `N(x + α A(x) + …)`); not for `b2t` (its skip adds `x` after the first
/// norm), `span` with `inner-norm` (`A(N(x))` is not homogeneous), or `mix`'s last post
/// block (pre blocks above it). A placement file may declare it where the invariance is
/// approximate (`ngpt`: the gradient's radial part at a trunk `l2norm` is `O(α)` of an
/// isotropic one, theory.md §3.13).
fn trunk_normalized(m: &ModelConfig, l: usize) -> bool {
    let above = (l + 1).min(m.depth);
    m.def.declares_orthogonal_trunk_gradients()
        || m.def.program(&m.block_ctx(above)).scale_invariant()
}

/// The trunk rule of block `l` ([`Trunk`]) below the block of context `above`: orthogonal
/// trunk gradients where the block above is scale-invariant (theory.md §2.2), with the
/// derived `η` at the block output where the block above mixes tokens through bidirectional
/// attention whose power its formula gives (§2.10: exact for zero-query attention, an
/// approximation for softmax; not under the causal mask, for a declared rule, nor the top
/// block). `above` is block `l + 1`'s context as the prediction profiles it (Admin's `ω`).
pub fn trunk_rule(m: &ModelConfig, ctx: &Ctx, l: usize, above: &BlockCtx) -> Trunk {
    if !trunk_normalized(m, l) {
        return Trunk::Independent;
    }
    // Bidirectional attention only: the derivation is exact for zero-query attention, and for
    // softmax at init (logit variance ≤ 1) the same formula is an approximation that the
    // measurement favours over η = 0 at every boundary (theory.md §2.10); under the causal mask
    // η = 0 is closer in the bulk.
    let derived = ctx.exchangeable && l < m.depth && !m.def.declares_orthogonal_trunk_gradients();
    match derived
        .then(|| eta::attention_power(&m.def, above))
        .flatten()
    {
        Some(p) => Trunk::Mixing {
            b: p * ctx.g_v * ctx.g_o,
        },
        None => Trunk::Orthogonal,
    }
}

/// `K_0 = ρ0 11ᵀ + (1 − ρ0) I`.
pub fn input_kernel(m: &ModelConfig) -> Array2<f64> {
    let n = m.tokens;
    Array2::from_shape_fn((n, n), |(i, j)| if i == j { 1.0 } else { m.rho0 })
}

/// The mean-field prediction for `cfg`, layer by layer.
pub fn predict(cfg: &SimConfig) -> Result<RunResult, TheoryError> {
    predict_with(cfg, &|_| {})
}

/// [`predict`], memoized per process by config: drawing several figures of the same results
/// (or a summary and then figures) predicts each configuration once.
pub fn predict_memo(cfg: &SimConfig) -> Result<RunResult, TheoryError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Memo = Mutex<HashMap<String, Result<RunResult, TheoryError>>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let memo = MEMO.get_or_init(Memo::default);
    let key = cfg.canonical();
    if let Some(v) = memo.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return v.clone();
    }
    let v = predict(cfg);
    memo.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, v.clone());
    v
}

/// [`predict`] with the map constants changed by `tweak` first: used to prove that a check
/// fails when a gain is wrong.
pub fn predict_with(cfg: &SimConfig, tweak: &dyn Fn(&mut Ctx)) -> Result<RunResult, TheoryError> {
    predict_all(cfg, tweak).map(|(r, _)| r)
}

/// The predicted feature-mean fractions at every boundary `l = 0..=L` (theory.md §2.2: a
/// second moment along the feature mean in units of an isotropic vector's), what
/// [`crate::metrics::Radial`] measures as `mu_x` and `mu`.
#[derive(Clone, Debug, PartialEq)]
pub struct MeanFractions {
    /// `μ_x` of the boundary: 1 for the Gaussian input, 0 after a layernorm.
    pub value: Vec<f64>,
    /// `μ` of its gradient; `None` where the prediction has no gradient (the signal
    /// vanished).
    pub gradient: Vec<Option<f64>>,
}

/// [`MeanFractions`] of `cfg`'s prediction.
pub fn mean_fractions(cfg: &SimConfig) -> Result<MeanFractions, TheoryError> {
    predict_all(cfg, &|_| {}).map(|(_, mu)| mu)
}

/// [`predict_with`] and [`mean_fractions`].
fn predict_all(
    cfg: &SimConfig,
    tweak: &dyn Fn(&mut Ctx),
) -> Result<(RunResult, MeanFractions), TheoryError> {
    let m = &cfg.model;
    if m.moe.is_some() && m.mask == Mask::Causal {
        return Err(unsupported(
            m,
            Refusal::CausalMixture,
            "mixture-of-experts with the causal mask: every token pair would need its own \
             Monte Carlo routing integral (theory.md §2.4); the bidirectional mask is derived",
        ));
    }
    let (n, depth) = (m.tokens, m.depth);
    let kernel_bytes = (depth as f64 + 65.0) * (n as f64).powi(2) * 8.0;
    if kernel_bytes > MAX_KERNEL_BYTES {
        return Err(unsupported(
            m,
            Refusal::KernelMemory,
            format!(
                "the prediction keeps {} kernels of {n} × {n} tokens ({:.1} GiB, more than the \
                 {:.0} GiB limit)",
                depth + 65,
                kernel_bytes / (1u64 << 30) as f64,
                MAX_KERNEL_BYTES / (1u64 << 30) as f64
            ),
        ));
    }
    if let Some(w) = m
        .definition()
        .gain_names()
        .into_iter()
        .find(|&w| m.definition().gain_varies_with_layer(w))
    {
        return Err(unsupported(
            m,
            Refusal::LayerGain,
            format!(
                "the init gain of {w} varies with the block; the maps take one gain per weight"
            ),
        ));
    }
    let mut ctx = context(m)?;
    tweak(&mut ctx);
    let fix = |k: Array2<f64>| {
        if ctx.exchangeable {
            exchangeable(&k)
        } else {
            k
        }
    };

    // Forward, until the kernel vanishes (a token's second moment underflows to 0).
    let mut ks = vec![input_kernel(m)];
    let mut adj = Vec::with_capacity(depth);
    let (mut qpre, mut aq, mut fq) = (Vec::new(), Vec::new(), Vec::new());
    let mut vanished = None;
    // Whether each boundary is Gaussian (a DyT residual added to the stream is not).
    let mut gaussian = vec![true; depth + 1];
    // The feature-mean fraction of each boundary (theory.md §2.2): the Gaussian input is
    // isotropic.
    let mut mean_fraction = vec![1.0; depth + 1];
    // Admin's ω from the recursion, as the simulation profiles them (stack.rs): block l's
    // ω_attn² = 1 + S, ω_ffn² = 1 + S + q_A, S the predicted branch second moments below.
    let uses_omega = m.def.uses_omega();
    let mut omegas: Vec<[f64; 2]> = Vec::new();
    let mut omega_sum = 0.0f64;
    let block_ctx = |l: usize, omegas: &[[f64; 2]]| {
        let mut c = m.block_ctx(l);
        if let Some(w) = omegas.get(l - 1) {
            c.omega = *w;
        }
        c
    };
    for l in 1..=depth {
        if uses_omega {
            let wa = (1.0 + omega_sum).sqrt();
            let mut c = m.block_ctx(l);
            c.omega = [wa, wa];
            let (mut t, x) =
                TheoryTape::new(&ctx, ks[l - 1].clone(), Trunk::Orthogonal, l == depth);
            t.set_input_gaussian(gaussian[l - 1]);
            t.set_input_mean_fraction(mean_fraction[l - 1]);
            m.def.block(&mut t, x, &c);
            let qa = t.probe().attn_q.unwrap_or(0.0);
            omegas.push([wa, (1.0 + omega_sum + qa).sqrt()]);
        }
        // The forward pass does not read the trunk rule; the backward pass below sets it.
        let (mut t, x) = TheoryTape::new(&ctx, ks[l - 1].clone(), Trunk::Orthogonal, l == depth);
        t.set_input_gaussian(gaussian[l - 1]);
        t.set_input_mean_fraction(mean_fraction[l - 1]);
        let out = m.def.block(&mut t, x, &block_ctx(l, &omegas));
        gaussian[l] = t.is_gaussian(out);
        mean_fraction[l] = t.mean_fraction(out);
        if uses_omega {
            let p = t.probe();
            omega_sum += p.attn_q.unwrap_or(0.0) + p.ffn_q.unwrap_or(0.0);
        }
        if let Some(e) = t.error() {
            let TheoryError::Unsupported {
                refusal, reason, ..
            } = e;
            return Err(unsupported(m, *refusal, format!("block {l}: {reason}")));
        }
        let k = fix(t.kernel(out));
        if !k.iter().all(|v| v.is_finite()) {
            return Err(unsupported(
                m,
                Refusal::Overflow,
                format!("the recursion overflows at block {l}"),
            ));
        }
        // A token's second moment below the normal range has lost its precision: the
        // signal has vanished (as a simulation reports a token that is exactly zero).
        if k.diag().iter().any(|&v| v < f64::MIN_POSITIVE) {
            vanished = Some(l);
            break;
        }
        check_covariance(&k)
            .map_err(|e| unsupported(m, Refusal::Correlation, format!("block {l}: {e}")))?;
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
    let names = m.weight_names();
    let mut log10_grad = vec![None; depth + 1];
    // The gradient's mean fraction μ at each boundary (theory.md §2.2).
    let mut mus: Vec<Option<f64>> = vec![None; depth + 1];
    // `Some(None)`: a weight whose gradient is exactly zero; `None`: no prediction.
    let mut log10_param: Vec<Vec<Option<Option<f64>>>> = vec![vec![None; depth]; names.len()];
    if vanished.is_none() {
        let fin = m.def.final_program();
        // The top gradient's kernel, from the loss and the kernel of the stack output.
        let top_for = |k_y: &dyn Fn() -> Array2<f64>| -> Result<Array2<f64>, TheoryError> {
            match m.loss() {
                Loss::RandomProjection => Ok(Array2::<f64>::eye(n) / n as f64),
                Loss::MeanToken => Ok(loss::top_kernel(Loss::MeanToken, &k_y(), m.vocab())),
                Loss::CrossEntropy => {
                    let k = k_y();
                    let q = k.diag().iter().fold(0.0f64, |a, &b| a.max(b));
                    if q > 4.0 || (m.vocab() as f64) < (4.0 * q).exp() {
                        return Err(unsupported(
                            m,
                            Refusal::CrossEntropyRegime,
                            format!(
                                "cross-entropy's two-row statistic is log-normal: it needs the \
                                 output's second moment q ≤ 4 and V ≥ e^(4q) (q = {q:.3}, V = \
                                 {}; theory.md §1.4)",
                                m.vocab()
                            ),
                        ));
                    }
                    Ok(loss::top_kernel(Loss::CrossEntropy, &k, m.vocab()))
                }
            }
        };
        // The loss gradient at the stack output is isotropic: μ = 1, below a final map what
        // its backward pass leaves.
        let mut mu_top = 1.0;
        let mut gamma = if fin.is_identity() {
            top_for(&|| ks[depth].clone())?
        } else if fin.is_plain_norm() {
            let kl = &ks[depth];
            let f = match m.norm {
                Norm::Layernorm => 1.0 - 1.0 / m.width as f64,
                Norm::Rmsnorm => 1.0,
            };
            // The norm's Jacobian removes 1/d of the isotropic loss gradient along its output
            // (η = 1); layernorm removes another 1/d along the feature mean (μ = 1) and
            // divides by s² = q (1 − μ_x/d), μ_x the stack output's mean fraction, and leaves
            // the gradient centred (μ = 0; theory.md §2.2).
            let w = m.width as f64;
            let proj = match m.norm {
                Norm::Layernorm => {
                    mu_top = 0.0;
                    (1.0 - 2.0 / w) / (1.0 - mean_fraction[depth] / w)
                }
                Norm::Rmsnorm => 1.0 - 1.0 / w,
            };
            let coef = |i: usize| f.sqrt() / (f * kl[[i, i]] + EPS).sqrt();
            let top = top_for(&|| {
                Array2::from_shape_fn((n, n), |(i, j)| coef(i) * coef(j) * kl[[i, j]])
            })?;
            Array2::from_shape_fn((n, n), |(i, j)| {
                let di = f.sqrt() / (f * kl[[i, i]] + EPS).sqrt();
                let dj = f.sqrt() / (f * kl[[j, j]] + EPS).sqrt();
                top[[i, j]] * di * dj * proj
            })
        } else {
            // Any other final map: its formula on a tape, as the top of the stack.
            let (mut t, x) = TheoryTape::new(&ctx, ks[depth].clone(), Trunk::Independent, true);
            t.set_input_gaussian(gaussian[depth]);
            t.set_input_mean_fraction(mean_fraction[depth]);
            let out = fin.run(&mut t, x, &crate::stack::final_env(m));
            if let Some(e) = t.error() {
                return Err(unsupported(m, e.refusal(), format!("the final map: {e}")));
            }
            let top = top_for(&|| t.kernel(out))?;
            // The loss gradient is isotropic (μ = 1).
            let (g, _, mu) = t.backward(out, top, 1.0);
            mu_top = mu;
            fix(g)
        };
        let mut lg = 0.0;
        let mut renormalize = |gamma: &mut Array2<f64>, l: usize| -> Result<f64, TheoryError> {
            let tr = gamma.diag().sum();
            if !(tr.is_finite() && tr > 0.0) {
                return Err(unsupported(
                    m,
                    Refusal::GradientDegenerate,
                    format!("the gradient recursion degenerates at block {}", l + 1),
                ));
            }
            *gamma /= tr;
            lg += tr.log10();
            log10_grad[l] = Some(0.5 * lg);
            Ok(lg)
        };
        let mut scale = renormalize(&mut gamma, depth)?;
        let mut mu = mu_top;
        mus[depth] = Some(mu);
        for l in (1..=depth).rev() {
            let above = block_ctx((l + 1).min(depth), &omegas);
            let trunk = trunk_rule(m, &ctx, l, &above);
            let (mut t, x) = TheoryTape::new(&ctx, ks[l - 1].clone(), trunk, l == depth);
            t.set_input_gaussian(gaussian[l - 1]);
            t.set_input_mean_fraction(mean_fraction[l - 1]);
            let out = m.def.block(&mut t, x, &block_ctx(l, &omegas));
            let (gin, params, mu_in) = t.backward(out, gamma, mu);
            mu = mu_in;
            mus[l - 1] = Some(mu);
            for (name, v) in params {
                if let (Some(j), Some(v)) = (names.iter().position(|&w| w == name), v) {
                    log10_param[j][l - 1] = Some(if v > 0.0 {
                        Some(0.5 * (v.log10() + scale))
                    } else {
                        None
                    });
                }
            }
            gamma = fix(gin);
            scale = renormalize(&mut gamma, l - 1)?;
        }
    }

    // Entries past a vanished kernel are absent for that reason; the rest as computed.
    let past = |i: usize, first: usize| vanished.is_some_and(|_| i >= first);
    let first_boundary = vanished.unwrap_or(depth + 1);
    let first_block = vanished.map_or(depth, |l| l - 1);
    let over = |len: usize, first: usize, value: &dyn Fn(usize) -> Result<f64, Reason>| {
        Series::exact(
            (0..len)
                .map(|i| {
                    if past(i, first) {
                        Err(Reason::Vanished)
                    } else {
                        value(i)
                    }
                })
                .collect(),
        )
    };
    let bd: Vec<_> = ks.iter().map(|k| from_gram(k, 1)).collect();
    let col = |f: fn(&crate::metrics::Boundary) -> f64| {
        over(depth + 1, first_boundary, &|i| {
            Some(f(&bd[i]))
                .filter(|v| v.is_finite())
                .ok_or(Reason::Undefined)
        })
    };
    let probe = |v: &Vec<Option<f64>>| over(depth, first_block, &|i| v[i].ok_or(Reason::Undefined));
    let gradient = |lin: bool| {
        over(depth + 1, 0, &|i| {
            let v = log10_grad[i].ok_or(Reason::Undefined)?;
            Ok(if lin { 10f64.powf(v) } else { v })
        })
    };
    let mut log10_param_grad = BTreeMap::new();
    let mut param_grad = BTreeMap::new();
    for (j, name) in names.iter().enumerate() {
        let v = &log10_param[j];
        let entry = |i: usize, lin: bool| match v[i] {
            None => Err(Reason::NotPredicted),
            Some(None) if lin => Ok(0.0),
            Some(None) => Err(Reason::Zero),
            Some(Some(x)) => Ok(if lin { 10f64.powf(x) } else { x }),
        };
        log10_param_grad.insert(*name, over(depth, 0, &|i| entry(i, false)));
        param_grad.insert(*name, over(depth, 0, &|i| entry(i, true)));
    }
    let result = RunResult {
        source: Source::Theory,
        config: cfg.to_raw(),
        diverged: Vec::new(),
        loss: Series::exact(vec![Ok(predicted_loss(m, &ks[ks.len() - 1]))]),
        boundaries: Boundaries {
            l: (0..=depth).collect(),
            q: col(|b| b.q),
            grad: gradient(true),
            log10_grad: gradient(false),
            token_cos: col(|b| b.token_cos),
            eff_rank: col(|b| b.eff_rank),
            stable_rank: col(|b| b.stable_rank),
            rank1_residual: col(|b| b.rank1_residual),
        },
        blocks: Blocks {
            l: (1..=depth).collect(),
            alpha: (1..=depth).map(|l| m.scale.alpha(l, depth)).collect(),
            adj_cos: probe(&adj),
            q_pre_norm: probe(&qpre),
            branch_q: BranchQ {
                attn: probe(&aq),
                ffn: probe(&fq),
            },
            log10_param_grad,
            param_grad,
        },
        per_seed: None,
    };
    let fractions = MeanFractions {
        value: mean_fraction,
        gradient: mus,
    };
    Ok((result, fractions))
}

/// The expected loss: 0 for the projections (`E R = 0`); for `cross-entropy`
/// `E[log Σ_v e^{z_v}] − E z_t ≈ log V + q/2` per token (log-normal sum of `V` i.i.d. logits
/// of variance `q`, the stack output's second moment; the output of a final norm has `q = 1`).
fn predicted_loss(m: &ModelConfig, k_last: &Array2<f64>) -> f64 {
    match m.loss() {
        Loss::CrossEntropy => {
            let fin = m.definition().final_program();
            let q = if fin.is_identity() {
                k_last.diag().mean().unwrap_or(0.0)
            } else {
                1.0
            };
            (m.vocab() as f64).ln() + q / 2.0
        }
        _ => 0.0,
    }
}

/// An error when `k` is not a covariance of tokens up to rounding: a correlation above 1
/// by more than `1e-9` means an approximation was used outside its regime.
fn check_covariance(k: &Array2<f64>) -> Result<(), String> {
    let n = k.nrows();
    for i in 0..n {
        for j in 0..n {
            let r = k[[i, j]] / (k[[i, i]].sqrt() * k[[j, j]].sqrt());
            if i != j && r.abs() > 1.0 + 1e-9 {
                return Err(format!(
                    "the predicted token correlation is {r:.6}, outside [-1, 1]: the kernel \
                     approximation does not hold here (theory.md §2.5.3)"
                ));
            }
        }
    }
    Ok(())
}
