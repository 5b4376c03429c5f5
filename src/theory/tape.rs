//! The mean-field counterpart of [`crate::block::Tape`]: the same placement formulas, run on
//! token kernels instead of matrices (`analysis/theory.md` §1.5, §2, §3).
//!
//! # Representation
//! At infinite width every value `u` in a block is a sum `Σ_s D_s ζ_s` of independent
//! Gaussian *sources* `ζ_s` (the block input, and each sublayer output: they end in a fresh
//! zero-mean matrix, so they are independent of everything before them) with per-token
//! coefficients `D_s` (norms rescale tokens, scales and sums combine). The token kernel of
//! `u` is `K_u = Σ_s (D_s D_sᵀ) ⊙ K_s`, and the cross kernel of two values sums over their
//! common sources. This carries the cross terms that identity paths through norms create
//! (`span-outer`, `b2t`) without special cases.
//!
//! Backward, gradients are sums of independent gradient sources in the same way: the
//! upstream gradient, and one new source per sublayer (its Jacobian contains fresh
//! zero-mean matrices), with kernels `Γ_s`.

use super::attention::{p2, uniform};
use super::dual::{self, Phi};
use super::logits;
use super::moe::Routing;
use super::{Ingredient, TheoryError};
use crate::attention::Mask;
use crate::block::{BlockOps, Probe};
use crate::choice::Choice;
use crate::ffn::Activation;
use crate::norm::{Norm, EPS};
use crate::normop::{NormKind, L2_EPS};
use crate::sublayer::{AttnOptions, FfnOptions};
use crate::weight::WeightName;
use ndarray::{Array1, Array2};

/// Per-configuration constants of the maps.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// Tokens `n`.
    pub n: usize,
    /// Width `d`.
    pub d: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// The norm.
    pub norm: Norm,
    /// The attention mask.
    pub mask: Mask,
    /// The feed-forward activation.
    pub act: Activation,
    /// Per-entry gains `var · fan_in` of `W_q, W_k, W_v, W_o` (DeepNorm's `β²` included).
    pub g_q: f64,
    /// `W_k`.
    pub g_k: f64,
    /// `W_v`.
    pub g_v: f64,
    /// `W_o`.
    pub g_o: f64,
    /// Gains of `W_1, W_2, W_g`.
    pub g_1: f64,
    /// `W_2`.
    pub g_2: f64,
    /// `W_g`.
    pub g_g: f64,
    /// `W_q = 0`: attention is exactly uniform.
    pub zero_query: bool,
    /// Bidirectional mask: every kernel keeps the exchangeable form `q[ρ 11ᵀ + (1 − ρ) I]`.
    pub exchangeable: bool,
    /// Mixture of experts: the router's gain `g_r` and its gate statistics.
    pub moe: Option<(f64, Routing)>,
    /// DyT's `α₀`.
    pub dyt_alpha: f64,
    /// Attention heads.
    pub heads: usize,
    /// Norms inside attention.
    pub attn_opts: AttnOptions,
    /// Norms inside the feed-forward network.
    pub ffn_opts: FfnOptions,
    /// Factors on the ingredients of the maps ([`super::perturb`]): the default is the
    /// theory as derived.
    pub perturb: super::Perturb,
}

/// A value: `(source, per-token coefficient)` pairs, sources in increasing order.
#[derive(Clone, Debug, Default)]
pub struct Sig(Vec<(usize, Array1<f64>)>);

impl Sig {
    fn unit(source: usize, n: usize) -> Sig {
        Sig(vec![(source, Array1::ones(n))])
    }

    /// The feature-mean part of [`Sig::unit`]`(source, n)` when its mean fraction is `mu`.
    fn mean_part(source: usize, n: usize, mu: f64) -> Sig {
        Sig(vec![(source, Array1::from_elem(n, mu.max(0.0).sqrt()))])
    }

    fn scaled(&self, c: &Array1<f64>) -> Sig {
        Sig(self.0.iter().map(|(s, d)| (*s, d * c)).collect())
    }

    fn plus(&mut self, other: &Sig) {
        for (s, d) in &other.0 {
            match self.0.binary_search_by_key(s, |t| t.0) {
                Ok(i) => self.0[i].1 += d,
                Err(i) => self.0.insert(i, (*s, d.clone())),
            }
        }
    }

    /// `Σ_s D_s² ⊙ diag K_s`: the per-token second moments of [`Sig::kernel`].
    fn diag_power(&self, sources: &[Array2<f64>]) -> Array1<f64> {
        let n = sources[0].nrows();
        let mut p = Array1::zeros(n);
        for (s, d) in &self.0 {
            for i in 0..n {
                p[i] += d[i] * d[i] * sources[*s][[i, i]];
            }
        }
        p
    }

    /// `Σ_s (D_s D_sᵀ) ⊙ K_s`.
    fn kernel(&self, sources: &[Array2<f64>]) -> Array2<f64> {
        let n = sources[0].nrows();
        let mut k = Array2::zeros((n, n));
        for (s, d) in &self.0 {
            let ks = &sources[*s];
            for i in 0..n {
                for j in 0..n {
                    k[[i, j]] += d[i] * d[j] * ks[[i, j]];
                }
            }
        }
        k
    }
}

/// What a mixture of experts' backward pass needs from its forward pass.
struct Gates {
    m: Array2<f64>,
    r: Array2<f64>,
    k_f: Array2<f64>,
}

enum TOp {
    Norm {
        x: usize,
        coef: Array1<f64>,
        /// layernorm: the Jacobian also removes the gradient's feature mean.
        centres: bool,
    },
    Attn {
        x: usize,
        k_in: Array2<f64>,
    },
    Ffn {
        x: usize,
        k_in: Array2<f64>,
        /// Mixture of experts: the expert-path and router-path gate kernels `M`, `R`, and one
        /// dense expert's output kernel `K^F`.
        gates: Option<Gates>,
    },
    Scale {
        x: usize,
        c: f64,
    },
    Add {
        xs: Vec<usize>,
    },
    /// `γ tanh(α₀ x)`: the linear part `c_i x_i` (`c_i = γ α₀ E sech²(α₀ u_i)`) and
    /// `E[φ'(u_i) φ'(u_j)]` for the backward pass.
    Dyt {
        x: usize,
        c: Array1<f64>,
        slopes: Array2<f64>,
    },
}

/// `k` with its token correlations multiplied by `f` (capped at ±1), diagonal kept.
pub(super) fn correlations_times(mut k: Array2<f64>, f: f64) -> Array2<f64> {
    if f == 1.0 {
        return k;
    }
    let n = k.nrows();
    let diag: Vec<f64> = (0..n).map(|i| k[[i, i]]).collect();
    for ((i, j), v) in k.indexed_iter_mut() {
        if i != j {
            let cap = (diag[i] * diag[j]).max(0.0).sqrt();
            *v = (*v * f).clamp(-cap, cap);
        }
    }
    k
}

/// `K` with its diagonal and off-diagonal replaced by their means (exact by symmetry for the
/// bidirectional mask, and it keeps rounding from breaking the symmetry).
pub fn exchangeable(k: &Array2<f64>) -> Array2<f64> {
    let n = k.nrows();
    let diag = k.diag().sum() / n as f64;
    let off = if n > 1 {
        (k.sum() - k.diag().sum()) / (n * (n - 1)) as f64
    } else {
        0.0
    };
    Array2::from_shape_fn((n, n), |(i, j)| if i == j { diag } else { off })
}

/// `(q, ρ)` of an exchangeable kernel (`ρ = 0` for the zero kernel: a branch switched off by
/// `α = 0` has no gradient, and no correlation to carry).
pub(super) fn q_rho(k: &Array2<f64>) -> (f64, f64) {
    let n = k.nrows();
    let q = k.diag().sum() / n as f64;
    let off = (k.sum() - k.diag().sum()) / (n * (n - 1)) as f64;
    if q == 0.0 {
        return (0.0, 0.0);
    }
    (q, off / q)
}

/// Applies `f(K_ii, K_jj, K_ij)` entrywise (twice only, for an exchangeable kernel).
pub(super) fn entrywise(
    k: &Array2<f64>,
    exch: bool,
    f: impl Fn(f64, f64, f64) -> f64,
) -> Array2<f64> {
    let n = k.nrows();
    if exch {
        let (q, rho) = q_rho(k);
        let (a, b) = (f(q, q, q), f(q, q, rho * q));
        return Array2::from_shape_fn((n, n), |(i, j)| if i == j { a } else { b });
    }
    let mut out = Array2::zeros((n, n));
    for i in 0..n {
        for j in i..n {
            let v = f(k[[i, i]], k[[j, j]], k[[i, j]]);
            out[[i, j]] = v;
            out[[j, i]] = v;
        }
    }
    out
}

/// The activation of a plain (ungated) feed-forward network, `None` for swiglu.
pub(super) fn plain_phi(act: Activation) -> Option<Phi> {
    match act {
        Activation::Relu => Some(Phi::Relu),
        Activation::Gelu => Some(Phi::Gelu),
        Activation::Swiglu => None,
    }
}

/// The gate kernels `(M, R)` of a mixture of experts on input kernel `k` (exchangeable:
/// the causal mask is refused before a tape is built), router gain `g_r`.
fn gate_kernels(k: &Array2<f64>, g_r: f64, routing: &Routing) -> (Array2<f64>, Array2<f64>) {
    let n = k.nrows();
    let (q, rho) = q_rho(k);
    let s = (g_r * q).sqrt();
    let (m_d, r_d) = routing.pair(s, s, 1.0);
    let (m_o, r_o) = routing.pair(s, s, rho);
    let pick = |d: f64, o: f64| Array2::from_shape_fn((n, n), |(i, j)| if i == j { d } else { o });
    (pick(m_d, m_o), pick(r_d, r_o))
}

/// Mean-field values of one weight gradient: `E‖∂ℓ/∂W‖_F²`, or `None` where the theory
/// has no prediction (or the gradient is exactly zero).
pub type ParamGrads = Vec<(WeightName, Option<f64>)>;

/// How the gradient at a block's trunk norms relates to their outputs (theory.md §2.2,
/// §2.10), which sets the fraction `η/d` a norm's Jacobian removes from it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trunk {
    /// Independent of the output (`η = 1`): the block above is not scale-invariant in this
    /// block's output.
    Independent,
    /// Orthogonal to every token (`η = 0`): the block above is scale-invariant and either
    /// acts per token or mixes tokens in a way §2.10 does not derive (the causal mask, where
    /// the measured `η` is small in the bulk); there `η = 0` is the Euler identity's global
    /// form read per token.
    Orthogonal,
    /// The block above mixes tokens through bidirectional attention of power `b` relative to
    /// its residual ([`super::eta::attention_power`] times `g_v g_o`): the block output's `η`
    /// is [`super::eta::block_output`] of the boundary's token correlation and its
    /// gradient's (exact for zero-query attention, an approximation for softmax); norms
    /// inside the block keep `η = 0`.
    Mixing {
        /// The next block's attention power relative to its residual.
        b: f64,
    },
}

/// The token correlation `ρ` of [`q_rho`] (0 for one token, which has no pair).
fn correlation(k: &Array2<f64>) -> f64 {
    if k.nrows() < 2 {
        return 0.0;
    }
    q_rho(k).1
}

/// Per token, the second moment of `part` over that of `whole` (0 where `whole` has none):
/// the feature-mean fraction `μ` when `part` is `whole`'s feature-mean part.
fn fraction(part: &Sig, whole: &Sig, sources: &[Array2<f64>]) -> Array1<f64> {
    let (a, b) = (part.diag_power(sources), whole.diag_power(sources));
    Array1::from_shape_fn(b.len(), |i| if b[i] > 0.0 { a[i] / b[i] } else { 0.0 })
}

/// [`fraction`] over all tokens at once.
fn total_fraction(part: &Sig, whole: &Sig, sources: &[Array2<f64>]) -> f64 {
    let b = whole.diag_power(sources).sum();
    if b > 0.0 {
        part.diag_power(sources).sum() / b
    } else {
        0.0
    }
}

/// One block's mean-field forward pass, recorded for its backward pass.
pub struct TheoryTape<'c> {
    pub(super) ctx: &'c Ctx,
    sources: Vec<Array2<f64>>,
    /// Whether each source is Gaussian (every source but a DyT residual and what contains
    /// one).
    gaussian: Vec<bool>,
    nodes: Vec<Sig>,
    /// The feature-mean part of each node (same sources; [`TheoryTape::mean_fraction`]).
    means: Vec<Sig>,
    ops: Vec<(TOp, usize)>,
    probe: Probe,
    /// How the gradients at the trunk norms relate to their outputs (§2.2, §2.10).
    trunk: Trunk,
    /// The last block, whose output gradient is the independent loss projection.
    top_block: bool,
    error: Option<TheoryError>,
}

impl<'c> TheoryTape<'c> {
    /// A tape whose node 0 is the block input with kernel `k_in`.
    pub fn new(ctx: &'c Ctx, k_in: Array2<f64>, trunk: Trunk, top_block: bool) -> (Self, usize) {
        let n = ctx.n;
        let tape = TheoryTape {
            ctx,
            sources: vec![k_in],
            gaussian: vec![true],
            nodes: vec![Sig::unit(0, n)],
            means: vec![Sig::unit(0, n)],
            ops: Vec::new(),
            probe: Probe::default(),
            trunk,
            top_block,
            error: None,
        };
        (tape, 0)
    }

    fn push(&mut self, op: TOp, sig: Sig) -> usize {
        // The value's feature-mean part: a layernorm's output has none, a sublayer's output
        // (a fresh source) is isotropic, linear maps carry it.
        let n = self.ctx.n;
        let mean = match &op {
            TOp::Norm { centres: true, .. } => Sig::default(),
            TOp::Norm { x, coef, .. } => self.means[*x].scaled(coef),
            TOp::Attn { .. } | TOp::Ffn { .. } => sig.clone(),
            TOp::Scale { x, c } => self.means[*x].scaled(&Array1::from_elem(n, *c)),
            TOp::Add { xs } => {
                let mut m = Sig::default();
                for &x in xs {
                    m.plus(&self.means[x]);
                }
                m
            }
            TOp::Dyt { x, c, .. } => {
                let mut m = self.means[*x].scaled(c);
                m.plus(&Sig::unit(self.sources.len() - 1, n));
                m
            }
        };
        self.means.push(mean);
        self.nodes.push(sig);
        let out = self.nodes.len() - 1;
        self.ops.push((op, out));
        out
    }

    /// The block input's mean fraction `μ` (theory.md §2.2: its second moment along the
    /// feature mean in units of an isotropic value's): 1 for the stack's Gaussian input and
    /// what sublayers add, 0 after a layernorm. Default 1.
    pub fn set_input_mean_fraction(&mut self, mu: f64) {
        self.means[0] = Sig::mean_part(0, self.ctx.n, mu);
    }

    /// The mean fraction `μ` of `node`, over all tokens (0 for a zero value).
    pub fn mean_fraction(&self, node: usize) -> f64 {
        total_fraction(&self.means[node], &self.nodes[node], &self.sources)
    }

    fn source(&mut self, k: Array2<f64>) -> Sig {
        let k = if self.ctx.exchangeable {
            exchangeable(&k)
        } else {
            k
        };
        self.sources.push(k);
        self.gaussian.push(true);
        Sig::unit(self.sources.len() - 1, self.ctx.n)
    }

    /// Marks the block input as not Gaussian (it contains a DyT residual from below).
    pub fn set_input_gaussian(&mut self, gaussian: bool) {
        self.gaussian[0] = gaussian;
    }

    /// Whether a node's value is Gaussian (no non-Gaussian source with a nonzero
    /// coefficient).
    pub fn is_gaussian(&self, node: usize) -> bool {
        self.nodes[node]
            .0
            .iter()
            .all(|(src, d)| self.gaussian[*src] || d.iter().all(|&v| v == 0.0))
    }

    /// The token kernel of a node.
    pub fn kernel(&self, node: usize) -> Array2<f64> {
        self.nodes[node].kernel(&self.sources)
    }

    /// `E[x_i · u_i]/d` per token, for the block input `x` and node `u`.
    pub fn cross_input_diag(&self, node: usize) -> Array1<f64> {
        let k0 = &self.sources[0];
        let n = self.ctx.n;
        self.nodes[node]
            .0
            .iter()
            .filter(|(s, _)| *s == 0)
            .map(|(_, d)| Array1::from_shape_fn(n, |i| d[i] * k0[[i, i]]))
            .fold(Array1::zeros(n), |a, b| a + b)
    }

    /// The probes recorded by the forward pass.
    pub fn probe(&self) -> Probe {
        self.probe
    }

    /// The first failed assumption, if any.
    pub fn error(&self) -> Option<&TheoryError> {
        self.error.as_ref()
    }

    pub(super) fn fail(&mut self, refusal: super::Refusal, reason: String) {
        if self.error.is_none() {
            self.error = Some(TheoryError::Unsupported {
                what: "this configuration".into(),
                refusal,
                reason,
            });
        }
    }

    /// Softmax statistics of an exchangeable attention input: `(q, ρ, P_2, c_s)`.
    fn softmax_stats(&mut self, k: &Array2<f64>) -> (f64, f64, f64, f64) {
        let c = self.ctx;
        let (q, rho) = q_rho(k);
        let var = c.g_q * c.g_k * q * q * (1.0 - rho);
        if var > 1.0 || (c.n as f64) < (4.0 * var).exp() {
            self.fail(
                super::Refusal::SoftmaxRegime,
                format!(
                    "softmax attention outside the near-uniform regime (within-row logit variance \
                 {var:.3}: needs ≤ 1 and n = {} ≥ e^(4·variance) = {:.1}; see \
                 analysis/theory.md §2.5.3)",
                    c.n,
                    (4.0 * var).exp()
                ),
            );
        }
        let cs = c.g_q * c.g_k * q * q * rho * (1.0 - rho);
        (q, rho, p2(var.min(4.0), c.n), cs)
    }

    /// `g_X`-side kernel of the forward `P K Pᵀ` for softmax (4 classes of `E[P_ij P_i'j']`).
    pub(super) fn softmax_pkp(&self, q: f64, rho: f64, p2v: f64, cs: f64) -> Array2<f64> {
        let n = self.ctx.n;
        let diag = q * (rho + (1.0 - rho) * p2v);
        let off = q * (rho + (1.0 - rho) * cs.exp() / n as f64);
        Array2::from_shape_fn((n, n), |(i, j)| if i == j { diag } else { off })
    }

    /// Which nodes consume each node.
    fn consumers(&self) -> Vec<Vec<usize>> {
        let mut c = vec![Vec::new(); self.nodes.len()];
        for (k, (op, _)) in self.ops.iter().enumerate() {
            match op {
                TOp::Norm { x, .. }
                | TOp::Attn { x, .. }
                | TOp::Ffn { x, .. }
                | TOp::Dyt { x, .. }
                | TOp::Scale { x, .. } => c[*x].push(k),
                TOp::Add { xs } => xs.iter().for_each(|x| c[*x].push(k)),
            }
        }
        c
    }

    /// The gradient kernel at the block input from the kernel `gamma_out` at node `out`, the
    /// mean-field `E‖∂ℓ/∂W‖²` of each weight (names as
    /// [`crate::config::ModelConfig::weight_names`]), and the gradient's mean fraction `μ` at
    /// the input from `mu_out` at the output.
    ///
    /// `μ = E(1·gᵢ)² / E‖gᵢ‖²` is the second moment of the gradient along the feature-mean
    /// direction in units of an isotropic gradient's (theory.md §2.2): 1 for a gradient a
    /// sublayer's weights produce, 0 after a layernorm, whose Jacobian removes that component
    /// (a fraction `μ/d`). The tape follows it per source alongside the gradient.
    pub fn backward(
        &self,
        out: usize,
        gamma_out: Array2<f64>,
        mu_out: f64,
    ) -> (Array2<f64>, ParamGrads, f64) {
        let c = self.ctx;
        let n = c.n;
        let mut gsrc = vec![gamma_out];
        let mut grads: Vec<Option<Sig>> = vec![None; self.nodes.len()];
        grads[out] = Some(Sig::unit(0, n));
        // The feature-mean components: the same sources, coefficients `D^u` with
        // `E(1·gᵢ)² = Σ_s (D^u_{s,i})² K_s[i, i]`.
        let mut means: Vec<Option<Sig>> = vec![None; self.nodes.len()];
        means[out] = Some(Sig::mean_part(0, n, mu_out));
        let consumers = self.consumers();
        let mut params: ParamGrads = Vec::new();
        let add_grad = |grads: &mut Vec<Option<Sig>>, x: usize, s: Sig| match &mut grads[x] {
            Some(g) => g.plus(&s),
            None => grads[x] = Some(s),
        };
        for (op, o) in self.ops.iter().rev() {
            let Some(g) = grads[*o].take() else { continue };
            let u = means[*o].take().unwrap_or_default();
            match op {
                TOp::Norm { x, coef, centres } => {
                    // The norm's Jacobian removes the gradient's component along its output,
                    // a fraction η/d (theory.md §2.2): η = 1 for a gradient independent of the
                    // output (into a sublayer; below a block that is not scale-invariant; the
                    // top block's output), η = 0 for one orthogonal to every token (trunk
                    // norms inside a trunk-normalized block), and at such a block's output
                    // below bidirectional attention the derived η of §2.10.
                    let block_output = consumers[*o].is_empty();
                    let into_sublayers = !block_output
                        && consumers[*o]
                            .iter()
                            .all(|&j| matches!(self.ops[j].0, TOp::Attn { .. } | TOp::Ffn { .. }));
                    let eta = if into_sublayers
                        || self.trunk == Trunk::Independent
                        || (block_output && self.top_block)
                    {
                        1.0
                    } else if let (true, Trunk::Mixing { b }) = (block_output, self.trunk) {
                        let rho = correlation(&self.kernel(*o));
                        let kappa = correlation(&g.kernel(&gsrc));
                        super::eta::block_output(rho, kappa, n, b)
                    } else {
                        0.0
                    };
                    let eta = c.perturb.eta(eta);
                    let d = c.d as f64;
                    let f = (1.0 - eta / d).sqrt();
                    if *centres {
                        // layernorm's Jacobian also removes the gradient's feature mean, a
                        // fraction μᵢ/d, and divides by s² = q (1 − μ_xᵢ/d), μ_x the input's
                        // mean fraction, where `coef` divides by q; what leaves has μ = 0.
                        let mu = fraction(&u, &g, &gsrc);
                        let mu_x = fraction(&self.means[*x], &self.nodes[*x], &self.sources);
                        let keep = Array1::from_shape_fn(n, |i| {
                            let centring = (1.0 - mu[i] / d) / (1.0 - mu_x[i] / d);
                            coef[i] * f * centring.max(0.0).sqrt()
                        });
                        add_grad(&mut grads, *x, g.scaled(&keep));
                    } else {
                        add_grad(&mut grads, *x, g.scaled(&(coef * f)));
                        add_grad(&mut means, *x, u.scaled(&(coef * f)));
                    }
                }
                TOp::Scale { x, c: s } => {
                    add_grad(&mut grads, *x, g.scaled(&Array1::from_elem(n, *s)));
                    add_grad(&mut means, *x, u.scaled(&Array1::from_elem(n, *s)));
                }
                TOp::Dyt { x, c: lin, slopes } => {
                    // ∂ℓ/∂x = φ'(x) ⊙ g with g independent of x: the mean slope c_i times g,
                    // plus an uncorrelated part of kernel Γ ⊙ (E[φ'φ'] − c cᵀ).
                    let gy = g.kernel(&gsrc);
                    let resid = Array2::from_shape_fn((n, n), |(i, j)| {
                        gy[[i, j]] * (slopes[[i, j]] - lin[i] * lin[j])
                    });
                    add_grad(&mut grads, *x, g.scaled(lin));
                    add_grad(&mut means, *x, u.scaled(lin));
                    gsrc.push(if c.exchangeable {
                        exchangeable(&resid)
                    } else {
                        resid
                    });
                    // The uncorrelated part is a new source, isotropic (μ = 1).
                    add_grad(&mut grads, *x, Sig::unit(gsrc.len() - 1, n));
                    add_grad(&mut means, *x, Sig::unit(gsrc.len() - 1, n));
                }
                TOp::Add { xs } => {
                    for &x in xs {
                        add_grad(&mut grads, x, g.clone());
                        add_grad(&mut means, x, u.clone());
                    }
                }
                TOp::Attn { x, k_in } | TOp::Ffn { x, k_in, .. } => {
                    // A sublayer's Jacobian holds fresh zero-mean matrices: its gradient is a
                    // new independent source.
                    let gy = g.kernel(&gsrc);
                    let (gin, p) = match op {
                        TOp::Ffn {
                            gates: Some(gates), ..
                        } => self.moe_backward(k_in, &gy, gates),
                        TOp::Attn { .. } if !c.attn_opts.is_plain() => {
                            self.attn_inner_backward(k_in, &gy)
                        }
                        TOp::Attn { .. } => self.attn_backward(k_in, &gy),
                        _ if !c.ffn_opts.is_plain() => self.ffn_inner(k_in, Some(&gy)).1,
                        _ => self.ffn_backward(k_in, &gy),
                    };
                    params.extend(p);
                    let gin = match op {
                        TOp::Attn { .. } => correlations_times(
                            gin * c.perturb.get(Ingredient::AttnBackward),
                            c.perturb.get(Ingredient::AttnGradCorrelation),
                        ),
                        _ => correlations_times(
                            gin * c.perturb.get(Ingredient::FfnBackward),
                            c.perturb.get(Ingredient::FfnCorrelation),
                        ),
                    };
                    gsrc.push(if c.exchangeable {
                        exchangeable(&gin)
                    } else {
                        gin
                    });
                    // Through fresh zero-mean weights: isotropic (μ = 1).
                    add_grad(&mut grads, *x, Sig::unit(gsrc.len() - 1, n));
                    add_grad(&mut means, *x, Sig::unit(gsrc.len() - 1, n));
                }
            }
        }
        let (gx, mu) = match grads[0].take() {
            Some(g) => {
                let u = means[0].take().unwrap_or_default();
                (g.kernel(&gsrc), total_fraction(&u, &g, &gsrc))
            }
            None => (Array2::zeros((n, n)), 0.0),
        };
        // Parameters were visited top-down; report them in the simulation's order.
        params.sort_by_key(|(name, _)| name.index());
        (gx, params, mu)
    }

    fn gains(&self) -> logits::Gains {
        let c = self.ctx;
        logits::Gains {
            q: c.g_q,
            k: c.g_k,
            v: c.g_v,
            o: c.g_o,
        }
    }

    fn attn_backward(&self, k_in: &Array2<f64>, gy: &Array2<f64>) -> (Array2<f64>, ParamGrads) {
        let c = self.ctx;
        let n = c.n;
        let d = c.d as f64;
        if !c.zero_query && !c.exchangeable {
            // Softmax on a general kernel: Monte Carlo over Gaussian logits (§2.5.5).
            let b = logits::backward(k_in, gy, self.gains(), c.mask);
            let params = vec![
                (
                    WeightName::AttnQ,
                    Some(d * c.g_k * c.g_v * c.g_o * (&(k_in * gy) * &b.s_q).sum()),
                ),
                (
                    WeightName::AttnK,
                    Some(d * c.g_q * c.g_v * c.g_o * (k_in * &b.s_k).sum()),
                ),
                (WeightName::AttnV, Some(d * c.g_o * (k_in * &b.ptgp).sum())),
                (WeightName::AttnO, Some(d * c.g_v * (&b.pkp * gy).sum())),
            ];
            return (b.gin, params);
        }
        if c.zero_query {
            let p = uniform(n, c.mask);
            let ptgp = p.t().dot(gy).dot(&p);
            let gin = &ptgp * (c.g_v * c.g_o);
            let kp = k_in.dot(&p.t());
            let pkp = p.dot(&kp);
            // ∂ℓ/∂W_o = Oᵀ G_A with O = P V: E‖·‖² = d Σ (g_v P K Pᵀ) ⊙ Γ_A.
            let w_o = d * c.g_v * (&pkp * gy).sum();
            // ∂ℓ/∂W_v = Xᵀ Pᵀ G_A W_oᵀ: E‖·‖² = d Σ K ⊙ (g_o Pᵀ Γ_A P).
            let w_v = d * c.g_o * (k_in * &ptgp).sum();
            // ∂ℓ/∂W_q = Xᵀ ∂ℓ/∂Q with ∂ℓ/∂Q_h = dS_h K_h/√d_h, dS_i = diag(P_i)(I − 1P_iᵀ) dP_i
            // and dP_h = G_h V_hᵀ (theory.md §2.5.4): E‖·‖² = d Σ K ⊙ Γ ⊙ g_k g_v g_o S.
            let s = logits::query_score(&p, &k_in.mapv(|v| v * v), &kp, &pkp);
            let w_q = d
                * c.g_k
                * c.g_v
                * c.g_o
                * (&(k_in * gy) * &s).sum()
                * c.perturb.get(Ingredient::ScorePath);
            let params = vec![
                (WeightName::AttnQ, Some(w_q)),
                // Q = 0: the scores do not depend on W_k, whose gradient is exactly 0.
                (WeightName::AttnK, Some(0.0)),
                (WeightName::AttnV, Some(w_v)),
                (WeightName::AttnO, Some(w_o)),
            ];
            return (gin, params);
        }
        // Softmax, exchangeable: value path with the 4-class E[P P], plus the score path on
        // the diagonal (its token correlation is taken as 0; theory.md §2.5.3).
        let (q, rho) = q_rho(k_in);
        let var = c.g_q * c.g_k * q * q * (1.0 - rho);
        let p2v = p2(var.min(4.0), n);
        let cs = c.g_q * c.g_k * q * q * rho * (1.0 - rho);
        let (gq, kappa) = {
            let (a, r) = q_rho(gy);
            (a * n as f64, r)
        };
        let nf = n as f64;
        let gv = c.g_v * c.g_o;
        let diag = gv * (gq / nf) * (p2v + kappa * cs.exp() * (1.0 - 1.0 / nf));
        let off = gv * (gq / nf) * ((1.0 - p2v) / (nf - 1.0) + kappa * (1.0 - cs.exp() / nf));
        let score = c.g_q
            * c.g_k
            * c.g_v
            * c.g_o
            * q
            * q
            * (1.0 - rho)
            * ((1.0 - rho) * p2v + kappa * rho + (1.0 - kappa * rho) * p2v)
            * c.perturb.get(Ingredient::ScorePath);
        let gin = Array2::from_shape_fn(
            (n, n),
            |(i, j)| {
                if i == j {
                    diag + score * gq / nf
                } else {
                    off
                }
            },
        );
        let params = vec![
            (WeightName::AttnQ, None),
            (WeightName::AttnK, None),
            (WeightName::AttnV, None),
            (WeightName::AttnO, None),
        ];
        (gin, params)
    }

    /// The output kernel `K^F` of one dense feed-forward network on input kernel `k`.
    fn dense_ffn(&self, k: &Array2<f64>) -> Array2<f64> {
        let c = self.ctx;
        let ex = c.exchangeable;
        match plain_phi(c.act) {
            Some(phi) => {
                let q = k * c.g_1;
                entrywise(&q, ex, |a, b, v| dual::forward(phi, a, b, v)) * c.g_2
            }
            None => {
                let qg = k * c.g_g;
                let s_val = entrywise(&qg, ex, |a, b, v| dual::forward(Phi::Silu, a, b, v));
                &s_val * k * (c.g_1 * c.g_2)
            }
        }
    }

    /// Mixture of experts (theory.md §2.4): the expert path is the dense map of `M ⊙ Γ` (the
    /// gates of different experts meet independent weights); the router path adds
    /// `g_r K^F ⊙ Γ ⊙ R`, and `∂ℓ/∂W_r = Xᵀ ∂ℓ/∂r` has `E‖·‖² = d Σ K ⊙ (K^F ⊙ Γ ⊙ R)`.
    fn moe_backward(
        &self,
        k_in: &Array2<f64>,
        gy: &Array2<f64>,
        gates: &Gates,
    ) -> (Array2<f64>, ParamGrads) {
        let (g_r, _) = self.ctx.moe.as_ref().expect("gates imply a mixture");
        let (mut gin, dense) = self.ffn_backward(k_in, &(gy * &gates.m));
        let router = &(&gates.k_f * gy) * &gates.r;
        gin = gin + &router * (*g_r * self.ctx.perturb.get(Ingredient::Router));
        let mut params = vec![(
            WeightName::MoeWr,
            Some(self.ctx.d as f64 * (k_in * &router).sum()),
        )];
        params.extend(dense.into_iter().map(|(name, v)| (name.in_mixture(), v)));
        (gin, params)
    }

    fn ffn_backward(&self, k_in: &Array2<f64>, gy: &Array2<f64>) -> (Array2<f64>, ParamGrads) {
        let c = self.ctx;
        let (d, dff) = (c.d as f64, c.d_ff as f64);
        let ex = c.exchangeable;
        match plain_phi(c.act) {
            Some(phi) => {
                let q = k_in * c.g_1;
                let slope = entrywise(&q, ex, |a, b, x| dual::backward(phi, a, b, x));
                let value = entrywise(&q, ex, |a, b, x| dual::forward(phi, a, b, x));
                let gh = &slope * gy * c.g_2;
                let gin = &gh * c.g_1;
                let params = vec![
                    (WeightName::FfnW1, Some(d * (k_in * &gh).sum())),
                    (WeightName::FfnW2, Some(dff * (&value * gy).sum())),
                ];
                (gin, params)
            }
            None => {
                let qg = k_in * c.g_g;
                let s_val = entrywise(&qg, ex, |a, b, x| dual::forward(Phi::Silu, a, b, x));
                let s_slope = entrywise(&qg, ex, |a, b, x| dual::backward(Phi::Silu, a, b, x));
                let up = k_in * c.g_1;
                // Through W_g: Γ ⊙ (g_1 K) ⊙ E[silu' silu'], gain g_g; through W_1:
                // Γ ⊙ E[silu silu], gain g_1; both after W_2 (gain g_2).
                let g_gate = &(&up * &s_slope) * gy * c.g_2;
                let g_up = &s_val * gy * c.g_2;
                let gin = &g_gate * c.g_g + &g_up * c.g_1;
                let z = &s_val * &up;
                let params = vec![
                    (WeightName::FfnW1, Some(d * (k_in * &g_up).sum())),
                    (WeightName::FfnW2, Some(dff * (&z * gy).sum())),
                    (WeightName::FfnWg, Some(d * (k_in * &g_gate).sum())),
                ];
                (gin, params)
            }
        }
    }
}

impl TheoryTape<'_> {
    /// `gain · N(x)` for a token norm: per token, `x / sqrt(f K_ii + ε)` times `sqrt(f)`.
    fn token_norm(&mut self, x: usize, norm: Norm, gain: f64) -> usize {
        let k = self.kernel(x);
        // layernorm centres each token: at large width the feature mean is removed, a
        // projection keeping (1 − 1/d) of the second moment (theory.md §2.2).
        let f = match norm {
            Norm::Layernorm => 1.0 - 1.0 / self.ctx.d as f64,
            Norm::Rmsnorm => 1.0,
        };
        let coef = Array1::from_shape_fn(self.ctx.n, |i| {
            gain * f.sqrt() / (f * k[[i, i]] + EPS).sqrt()
        });
        let sig = self.nodes[x].scaled(&coef);
        let centres = norm == Norm::Layernorm;
        self.push(TOp::Norm { x, coef, centres }, sig)
    }

    /// `γ · tanh(α₀ x)` (theory.md §2.7): by Stein's lemma the output is `c ⊙ x`,
    /// `c_i = γ α₀ E sech²(α₀ u_i)`, plus a residual uncorrelated with every source, of
    /// kernel `γ² E[tanh(α₀ u_i) tanh(α₀ u_j)] − c_i c_j K_ij` (2-D Gauss–Hermite), which
    /// becomes a new (non-Gaussian) source. Exact for a Gaussian input; refused otherwise.
    fn dyt(&mut self, x: usize, gain: f64) -> usize {
        if !self.is_gaussian(x) {
            self.fail(
                super::Refusal::NonGaussian,
                "dyt(…) of a value that contains an earlier dyt(…) output, which is not \
                 Gaussian: the 2-D Gauss–Hermite map needs a Gaussian input (theory.md §2.7)"
                    .into(),
            );
        }
        let c = self.ctx;
        let k = self.kernel(x);
        let a2 = c.dyt_alpha * c.dyt_alpha;
        let k2 = &k * a2;
        let ex = c.exchangeable;
        let lin = Array1::from_shape_fn(c.n, |i| {
            gain * c.dyt_alpha * dual::mean_slope(Phi::Tanh, k2[[i, i]])
        });
        let out = entrywise(&k2, ex, |a, b, v| dual::forward(Phi::Tanh, a, b, v)) * (gain * gain);
        let resid = Array2::from_shape_fn((c.n, c.n), |(i, j)| {
            out[[i, j]] - lin[i] * lin[j] * k[[i, j]]
        });
        let slopes =
            entrywise(&k2, ex, |a, b, v| dual::backward(Phi::Tanh, a, b, v)) * (gain * gain * a2);
        let mut sig = self.nodes[x].scaled(&lin);
        let r = self.source(resid);
        *self.gaussian.last_mut().expect("a source was pushed") = false;
        sig.plus(&r);
        self.push(TOp::Dyt { x, c: lin, slopes }, sig)
    }
}

impl BlockOps for TheoryTape<'_> {
    type Node = usize;

    fn norm_gain(&mut self, x: usize, gain: f64) -> usize {
        self.token_norm(x, self.ctx.norm, gain)
    }

    fn norm_as(&mut self, x: usize, kind: NormKind, gain: f64) -> usize {
        match kind.as_norm(self.ctx.norm) {
            Some(norm) => self.token_norm(x, norm, gain),
            None if kind == NormKind::L2 => {
                // l2norm is rmsnorm / √d: per token, divide by sqrt(d K_ii + ε₂).
                let k = self.kernel(x);
                let d = self.ctx.d as f64;
                let coef =
                    Array1::from_shape_fn(self.ctx.n, |i| gain / (d * k[[i, i]] + L2_EPS).sqrt());
                let sig = self.nodes[x].scaled(&coef);
                let centres = false;
                self.push(TOp::Norm { x, coef, centres }, sig)
            }
            None => self.dyt(x, gain),
        }
    }

    fn probe_pre_norm(&mut self, x: usize) {
        let k = self.kernel(x);
        self.probe.q_pre_norm = Some(k.diag().sum() / self.ctx.n as f64);
    }

    fn closing_norm(&mut self, x: usize) -> usize {
        let k = self.kernel(x);
        self.probe.q_pre_norm = Some(k.diag().sum() / self.ctx.n as f64);
        self.norm(x)
    }

    fn attn(&mut self, x: usize) -> usize {
        let c = self.ctx;
        let k = self.kernel(x);
        if !c.attn_opts.is_plain() {
            let ka = correlations_times(
                self.attn_inner_forward(&k) * c.perturb.get(Ingredient::AttnForward),
                c.perturb.get(Ingredient::AttnCorrelation),
            );
            self.probe.attn_q = Some(ka.diag().sum() / c.n as f64);
            let sig = self.source(ka);
            return self.push(TOp::Attn { x, k_in: k }, sig);
        }
        let ka = if c.zero_query {
            let p = uniform(c.n, c.mask);
            p.dot(&k).dot(&p.t()) * (c.g_v * c.g_o)
        } else if c.exchangeable {
            let (q, rho, p2v, cs) = self.softmax_stats(&k);
            self.softmax_pkp(q, rho, p2v, cs) * (c.g_v * c.g_o)
        } else {
            let (ka, var) = logits::forward(&k, self.gains(), c.mask);
            if var > 1.0 {
                self.fail(
                    super::Refusal::SoftmaxRegime,
                    format!(
                        "softmax attention outside the near-uniform regime (within-row logit \
                     variance {var:.3} > 1; see analysis/theory.md §2.5.5)"
                    ),
                );
            }
            ka
        } * c.perturb.get(Ingredient::AttnForward);
        let ka = correlations_times(ka, c.perturb.get(Ingredient::AttnCorrelation));
        self.probe.attn_q = Some(ka.diag().sum() / c.n as f64);
        let sig = self.source(ka);
        self.push(TOp::Attn { x, k_in: k }, sig)
    }

    fn ffn(&mut self, x: usize) -> usize {
        let c = self.ctx;
        let k = self.kernel(x);
        let k_f = if c.ffn_opts.is_plain() {
            self.dense_ffn(&k)
        } else {
            self.ffn_inner(&k, None).0
        } * c.perturb.get(Ingredient::FfnForward);
        let k_f = correlations_times(k_f, c.perturb.get(Ingredient::FfnOutCorrelation));
        let (kf, gates) = match &c.moe {
            None => (k_f, None),
            Some((g_r, routing)) => {
                let (m, r) = gate_kernels(&k, *g_r, routing);
                (&k_f * &m, Some(Gates { m, r, k_f }))
            }
        };
        self.probe.ffn_q = Some(kf.diag().sum() / c.n as f64);
        let sig = self.source(kf);
        self.push(TOp::Ffn { x, k_in: k, gates }, sig)
    }

    fn scale(&mut self, s: f64, x: usize) -> usize {
        if s == 1.0 {
            return x;
        }
        let sig = self.nodes[x].scaled(&Array1::from_elem(self.ctx.n, s));
        self.push(TOp::Scale { x, c: s }, sig)
    }

    fn add(&mut self, xs: &[usize]) -> usize {
        let mut sig = Sig::default();
        for &x in xs {
            sig.plus(&self.nodes[x]);
        }
        self.push(TOp::Add { xs: xs.to_vec() }, sig)
    }
}
