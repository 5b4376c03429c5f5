//! A stack of `L` blocks at initialization: inputs, weights, forward and backward.
//!
//! # Memory
//! The `L + 1` block boundaries `X_l` are always kept. With [`Memory::Recompute`], block
//! `l`'s weights are drawn again from their own random stream (see [`crate::init`]) and its
//! intermediates recomputed when the backward pass reaches it, so memory is `(L + 1) n d`
//! values plus one block; with [`Memory::Keep`] (small stacks) both are kept from the forward
//! pass. The two give bit-identical results.
//!
//! # Backward scale
//! The gradient `∂ℓ/∂X_l` is carried as a unit-norm direction and `log10 ‖∂ℓ/∂X_l‖_F`, so it
//! neither underflows nor overflows at any depth (each block's backward is linear in its
//! upstream gradient, so renormalizing between blocks is exact).

use crate::attention::AttnWeights;
use crate::block::{BlockWeights, FfnBlockWeights, Grads, Node, Probe, Sublayers, Tape};
use crate::config::ModelConfig;
use crate::ffn::{Activation, FfnWeights};
use crate::init::{gaussian, stream_rng, weight_std, Init, Stream};
use crate::loss::{self, Loss, Unembedding};
use crate::moe::MoeWeights;
use crate::norm;
use crate::real::Real;
use crate::simd;
use crate::weight::WeightName;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// The random inputs of one seed.
#[derive(Clone, Debug)]
pub struct Inputs<T> {
    /// `X_0`: `x_i = sqrt(ρ0) z + sqrt(1 − ρ0) ε_i`.
    pub x0: Array2<T>,
    /// The loss projection `R ~ N(0, 1)`, `n × d`.
    pub r: Array2<T>,
    /// The `cross-entropy` loss's unembedding and targets (`None` for the other losses).
    pub unembedding: Option<Unembedding<T>>,
}

/// Draws `X_0` and `R` for seed `seed` (stream 0), then, for `cross-entropy` only, the
/// unembedding `U` (`N(0, 1/d)`) and one target per token from the same stream.
pub fn inputs<T: Real>(cfg: &ModelConfig, master: u64, seed: u64) -> Inputs<T> {
    let (n, d) = (cfg.tokens, cfg.width);
    let mut rng = stream_rng(master, seed, 0);
    let z: Array2<f64> = gaussian(&mut rng, 1, d, 1.0);
    let eps: Array2<f64> = gaussian(&mut rng, n, d, 1.0);
    let (a, b) = (cfg.rho0.sqrt(), (1.0 - cfg.rho0).sqrt());
    let x0 = (&eps * b + &z * a).mapv(T::of);
    let r = gaussian(&mut rng, n, d, 1.0);
    let unembedding = (cfg.loss == Loss::CrossEntropy).then(|| {
        let u = gaussian(&mut rng, d, cfg.vocab, 1.0 / (d as f64).sqrt());
        // Uniform targets from normals: Φ(z) is uniform on (0, 1).
        let z: Array2<f64> = gaussian(&mut rng, 1, n, 1.0);
        let v = cfg.vocab as f64;
        let targets = z
            .iter()
            .map(|&z| {
                let u = 0.5 * statrs::function::erf::erfc(-z / std::f64::consts::SQRT_2);
                ((u * v) as usize).min(cfg.vocab - 1)
            })
            .collect();
        Unembedding { u, targets }
    });
    Inputs { x0, r, unembedding }
}

/// Draws the weights of block `l` (stream `l`), in the order
/// `W_q, W_k, W_v, W_o`, then `W_1, W_2, W_g` (or `W_r` and each expert's).
pub fn block_weights<T: Real>(
    cfg: &ModelConfig,
    master: u64,
    seed: u64,
    l: usize,
) -> BlockWeights<T> {
    let mut rng = stream_rng(master, seed, l as u64);
    let d = cfg.width;
    let gain = |w: WeightName| init_gain(cfg, w, l);
    let std = |fi: usize, fo: usize| weight_std(cfg.init, cfg.sigma_w, fi, fo);
    let mut attn = AttnWeights {
        w_q: gaussian(&mut rng, d, d, std(d, d) * gain(WeightName::AttnQ)),
        w_k: gaussian(&mut rng, d, d, std(d, d) * gain(WeightName::AttnK)),
        w_v: gaussian(&mut rng, d, d, std(d, d) * gain(WeightName::AttnV)),
        w_o: gaussian(&mut rng, d, d, std(d, d) * gain(WeightName::AttnO)),
    };
    if cfg.init == Init::ZeroQuery {
        attn.w_q.fill(T::zero());
    }
    let ffn = cfg.def.uses_ffn().then(|| match cfg.moe {
        None => {
            let g = [WeightName::FfnW1, WeightName::FfnW2, WeightName::FfnWg].map(gain);
            FfnBlockWeights::Dense(ffn_weights(cfg, &mut rng, g))
        }
        Some(m) => {
            let g = [WeightName::MoeW1, WeightName::MoeW2, WeightName::MoeWg].map(gain);
            FfnBlockWeights::Moe(MoeWeights {
                w_r: gaussian(
                    &mut rng,
                    d,
                    m.experts,
                    std(d, m.experts) * gain(WeightName::MoeWr),
                ),
                experts: (0..m.experts)
                    .map(|_| ffn_weights(cfg, &mut rng, g))
                    .collect(),
            })
        }
    });
    BlockWeights { attn, ffn }
}

/// The multiplier of weight `w`'s init standard deviation in block `l`: the placement's
/// gain formula (DeepNet's `β`, Sub-LN's `√(log 2L)`, …), 1 without one.
pub fn init_gain(cfg: &ModelConfig, w: WeightName, l: usize) -> f64 {
    cfg.def.init_gain(w, l, cfg.depth, cfg.width, cfg.tokens)
}

/// One feed-forward network's weights; `gain` multiplies the standard deviations of
/// `W_1, W_2, W_g`.
fn ffn_weights<T: Real>(cfg: &ModelConfig, rng: &mut Stream, gain: [f64; 3]) -> FfnWeights<T> {
    let (d, f) = (cfg.width, cfg.d_ff);
    let std = |fi: usize, fo: usize| weight_std(cfg.init, cfg.sigma_w, fi, fo);
    let w_1 = gaussian(rng, d, f, std(d, f) * gain[0]);
    let w_2 = gaussian(rng, f, d, std(f, d) * gain[1]);
    let w_g = (cfg.act == Activation::Swiglu).then(|| gaussian(rng, d, f, std(d, f) * gain[2]));
    FfnWeights { w_1, w_2, w_g }
}

/// Which pass found a non-finite value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pass {
    /// The forward pass (block outputs and their probes).
    Forward,
    /// The backward pass (gradients).
    Backward,
}

/// Why a run stopped early.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// A value overflowed or became NaN.
    #[default]
    NonFinite,
    /// The signal underflowed to exactly zero: a token of a block output, or the whole
    /// gradient, is exactly 0, so no direction (cosine, rank, log-norm) is defined.
    Vanished,
}

impl Failure {
    /// Whether this is [`Failure::NonFinite`] (the default, not written in result files).
    pub fn is_non_finite(&self) -> bool {
        *self == Failure::NonFinite
    }
}

/// A run that stopped: in the output of block `block` (forward), or in `∂ℓ/∂X_{block-1}`
/// (backward through block `block`; `block = L + 1` means the loss gradient itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// The block whose output (or input gradient) failed.
    pub block: usize,
    /// The pass that found it.
    pub pass: Pass,
    /// What failed.
    #[serde(default, skip_serializing_if = "Failure::is_non_finite")]
    pub reason: Failure,
}

/// Receives what a run computes, as it computes it.
pub trait Observer<T> {
    /// Block boundary `X_l`, `l = 0..=L`.
    fn boundary(&mut self, _l: usize, _x: &Array2<T>) {}
    /// Block `l` mapped `x_prev = X_{l-1}` to `x = X_l`, with its probes.
    fn block(&mut self, _l: usize, _x_prev: &Array2<T>, _x: &Array2<T>, _probe: Probe) {}
    /// The stack output `Y` (the final map of `X_L`), which the loss reads.
    fn output(&mut self, _y: &Array2<T>) {}
    /// The loss `ℓ`.
    fn loss(&mut self, _loss: f64) {}
    /// `∂ℓ/∂X_l = 10^{log10_norm} · dir` with `‖dir‖_F = 1`.
    fn gradient(&mut self, _l: usize, _dir: &Array2<T>, _log10_norm: f64) {}
    /// The weight gradients of block `l` are `10^{log10_scale}` times `grads`.
    fn param_grads(&mut self, _l: usize, _grads: &BlockWeights<T>, _log10_scale: f64) {}
}

/// The sublayer settings of a model.
pub fn sublayers(cfg: &ModelConfig) -> Sublayers {
    Sublayers {
        norm: cfg.norm,
        heads: cfg.heads,
        mask: cfg.mask,
        act: cfg.act,
        top_k: cfg.moe.map_or(1, |m| m.top_k),
        dyt_alpha: cfg.dyt_alpha,
        attn_opts: cfg.def.attention(),
        ffn_opts: cfg.def.ffn(),
    }
}

fn frobenius<T: Real>(x: &Array2<T>) -> f64 {
    simd::ops::sum_sq_f64(x.view()).sqrt()
}

/// What is wrong with a block output, if anything: a non-finite entry, or an `f64` second
/// moment that overflows (every metric of it would be infinite), counts as non-finite; a
/// token that is exactly zero (its direction undefined) as vanished.
fn output_failure<T: Real>(x: &Array2<T>) -> Option<Failure> {
    if !frobenius(x).is_finite() {
        return Some(Failure::NonFinite);
    }
    let zero_token = x.rows().into_iter().any(|r| r.iter().all(|v| v.is_zero()));
    zero_token.then_some(Failure::Vanished)
}

/// How a run trades memory for time; results are bit-identical either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// Keep every block's weights and recorded intermediates from the forward pass for the
    /// backward pass: about `L` blocks' worth of memory, one forward pass.
    Keep,
    /// Keep only the block boundaries; draw each block's weights again and recompute its
    /// intermediates in the backward pass: memory flat in depth, one extra forward pass.
    Recompute,
}

/// Runs the stack forward and backward on `inputs`, with block `l`'s weights from
/// `weights(l)`, reporting everything to `obs`. Stops at the first non-finite value.
pub fn run<T: Real, W, O>(
    cfg: &ModelConfig,
    weights: W,
    inputs: Inputs<T>,
    obs: &mut O,
    memory: Memory,
) -> Result<(), Divergence>
where
    W: Fn(usize) -> BlockWeights<T>,
    O: Observer<T>,
{
    run_with(cfg, weights, inputs, obs, memory, Grads::All)
}

/// [`run`] computing the gradients `grads` asks for: with [`Grads::Inputs`] no weight
/// gradient is formed and [`Observer::param_grads`] is never called; everything else the
/// observer sees is the same, bit for bit.
pub fn run_with<T: Real, W, O>(
    cfg: &ModelConfig,
    weights: W,
    inputs: Inputs<T>,
    obs: &mut O,
    memory: Memory,
    grads: Grads,
) -> Result<(), Divergence>
where
    W: Fn(usize) -> BlockWeights<T>,
    O: Observer<T>,
{
    run_with_omegas(cfg, weights, inputs, obs, memory, None, grads)
}

/// Admin's residual weights `[ω_attn, ω_ffn]` of every block.
pub type Omegas = Vec<[f64; 2]>;

/// Admin's profiling, done by the forward pass as it goes: block `l`'s
/// `ω_attn² = 1 + S` and `ω_ffn² = 1 + S + q_A`, with `S` the summed second moments of
/// every sublayer output below and `q_A` that of block `l`'s attention (which does not
/// depend on `ω`; the block runs once more to read it). A run on the same weights and inputs
/// profiles to the same values; the backward pass holds them fixed, as Admin does after its
/// profiling pass.
struct Profile {
    /// Fixed from outside (no profiling).
    fixed: bool,
    values: Omegas,
    sum: f64,
}

impl Profile {
    fn ctx(&self, cfg: &ModelConfig, l: usize) -> crate::placement::BlockCtx {
        let mut c = cfg.block_ctx(l);
        if let Some(w) = self.values.get(l - 1) {
            c.omega = *w;
        }
        c
    }
}

/// [`run_with`] with Admin's `ω` given (`Some`: held fixed, for derivative checks) or
/// profiled by the forward pass (`None`; placements without `ω` ignore it).
pub fn run_with_omegas<T: Real, W, O>(
    cfg: &ModelConfig,
    weights: W,
    inputs: Inputs<T>,
    obs: &mut O,
    memory: Memory,
    omegas: Option<Omegas>,
    grads: Grads,
) -> Result<(), Divergence>
where
    W: Fn(usize) -> BlockWeights<T>,
    O: Observer<T>,
{
    let mut profile = Profile {
        fixed: omegas.is_some(),
        values: omegas.unwrap_or_default(),
        sum: 0.0,
    };
    settle_allocator();
    let kept: Vec<BlockWeights<T>> = match memory {
        Memory::Keep => (1..=cfg.depth).map(&weights).collect(),
        Memory::Recompute => Vec::new(),
    };
    let depth = cfg.depth;
    let Inputs { x0, r, unembedding } = inputs;
    obs.boundary(0, &x0);
    let mut xs = Vec::with_capacity(depth + 1);
    let mut tapes = Vec::with_capacity(kept.len());
    xs.push(x0);
    for l in 1..=depth {
        let x_prev = xs[l - 1].clone();
        let (y, probe) = match memory {
            Memory::Keep => {
                let (tape, out) = forward_block(cfg, &kept[l - 1], x_prev, l, &mut profile);
                let result = (tape.value(out).clone(), tape.probe());
                tapes.push((tape, out));
                result
            }
            Memory::Recompute => {
                let w = weights(l);
                let (tape, out) = forward_block(cfg, &w, x_prev, l, &mut profile);
                let probe = tape.probe();
                (tape.into_value(out), probe)
            }
        };
        let probes_finite = [probe.attn_q, probe.ffn_q, probe.q_pre_norm]
            .iter()
            .all(|v| v.is_none_or(f64::is_finite));
        let failure = if probes_finite {
            output_failure(&y)
        } else {
            Some(Failure::NonFinite)
        };
        if let Some(reason) = failure {
            return Err(Divergence {
                block: l,
                pass: Pass::Forward,
                reason,
            });
        }
        obs.block(l, &xs[l - 1], &y, probe);
        obs.boundary(l, &y);
        xs.push(y);
    }

    // The loss of Y = the final map of X_L (N(X_L), X_L, …); random-projection:
    // ℓ = Σ R ⊙ Y / sqrt(n d).
    let x_last = xs.pop().expect("depth + 1 boundaries");
    let c = T::of(1.0 / ((cfg.tokens * cfg.width) as f64).sqrt());
    let mut loss_at = |y: &Array2<T>| -> (f64, Array2<T>) {
        obs.output(y);
        match (cfg.loss, &unembedding) {
            (Loss::MeanToken, _) => loss::mean_token(&r, y, c),
            (Loss::CrossEntropy, Some(e)) => loss::cross_entropy(e, y),
            _ => (dot(&r, y) * c.f64(), simd::ops::scaled(r.view(), c)),
        }
    };
    let fin = cfg.def.final_program();
    let mut g = if fin.is_identity() {
        let (value, g_y) = loss_at(&x_last);
        obs.loss(value);
        g_y
    } else if fin.is_plain_norm() {
        let (y, cache) = norm::forward(cfg.norm, x_last.view(), T::one());
        let (value, g_y) = loss_at(&y);
        obs.loss(value);
        norm::backward(cfg.norm, &cache, g_y.view())
    } else {
        let none = BlockWeights::empty();
        let (mut tape, input) = Tape::new(sublayers(cfg), &none, x_last.clone());
        let out = fin.run(&mut tape, input, &final_env(cfg));
        let y = tape.value(out);
        // A non-finite stack output (an overflow in the final map) is charged to the top
        // block, whose output it is a function of.
        if !frobenius(y).is_finite() {
            return Err(Divergence {
                block: depth,
                pass: Pass::Forward,
                reason: Failure::NonFinite,
            });
        }
        let (value, g_y) = loss_at(y);
        obs.loss(value);
        tape.backward(out, g_y).0
    };
    drop(x_last);

    let mut log10_scale = 0.0;
    let mut normalize = |g: &mut Array2<T>, l: usize, obs: &mut O| -> Result<f64, Divergence> {
        let n = frobenius(g);
        if !(n.is_finite() && n > 0.0) {
            return Err(Divergence {
                block: l + 1,
                pass: Pass::Backward,
                reason: if n == 0.0 {
                    Failure::Vanished
                } else {
                    Failure::NonFinite
                },
            });
        }
        simd::ops::scale_in_place(g, T::of(1.0 / n));
        log10_scale += n.log10();
        obs.gradient(l, g, log10_scale);
        Ok(log10_scale)
    };
    let mut scale = normalize(&mut g, depth, obs)?;
    for l in (1..=depth).rev() {
        let x_in = xs.pop().expect("one boundary per block");
        let (gx, gw) = match tapes.pop() {
            Some((tape, out)) => tape.backward_with(out, g, grads),
            None => {
                let w = weights(l);
                let (tape, out) = forward_block(cfg, &w, x_in, l, &mut profile);
                tape.backward_with(out, g, grads)
            }
        };
        if let Some(gw) = gw {
            obs.param_grads(l, &gw, scale);
        }
        g = gx;
        scale = normalize(&mut g, l - 1, obs)?;
    }
    Ok(())
}

/// [`run`] with each block's weights drawn one step ahead on a thread of their own.
///
/// `run` asks for block weights in an order fixed by `memory` (`1..=L`, then `L..=1` when
/// recomputing), so a second thread can draw them in that order while this one computes,
/// at most [`AHEAD`] blocks in advance. Worth it when a core would otherwise be idle (fewer
/// seeds than cores): the draws then overlap the products. Every block comes from its own
/// stream, so the results are those of [`run`], bit for bit.
pub fn run_prefetched<T: Real, W, O>(
    cfg: &ModelConfig,
    weights: W,
    inputs: Inputs<T>,
    obs: &mut O,
    memory: Memory,
) -> Result<(), Divergence>
where
    W: Fn(usize) -> BlockWeights<T> + Sync,
    O: Observer<T>,
{
    run_prefetched_with(cfg, weights, inputs, obs, memory, Grads::All)
}

/// [`run_prefetched`] computing the gradients `grads` asks for (see [`run_with`]).
pub fn run_prefetched_with<T: Real, W, O>(
    cfg: &ModelConfig,
    weights: W,
    inputs: Inputs<T>,
    obs: &mut O,
    memory: Memory,
    grads: Grads,
) -> Result<(), Divergence>
where
    W: Fn(usize) -> BlockWeights<T> + Sync,
    O: Observer<T>,
{
    let depth = cfg.depth;
    let order: Vec<usize> = match memory {
        Memory::Keep => (1..=depth).collect(),
        Memory::Recompute => (1..=depth).chain((1..=depth).rev()).collect(),
    };
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(AHEAD);
        let weights = &weights;
        s.spawn(move || {
            for l in order {
                // The receiver is gone when the run stopped early (a divergence).
                if tx.send((l, weights(l))).is_err() {
                    break;
                }
            }
        });
        let next = move |l: usize| {
            let (drawn, w) = rx.recv().expect("the drawing thread ended early");
            assert_eq!(drawn, l, "blocks requested out of the planned order");
            w
        };
        run_with(cfg, next, inputs, obs, memory, grads)
    })
}

/// Blocks [`run_prefetched`] draws ahead of the computation.
pub const AHEAD: usize = 2;

/// Frees one untouched allocation just under 32 MiB, once per process.
///
/// glibc's `malloc` serves a request above its *dynamic* mmap threshold (initially 128 KiB)
/// with fresh pages from `mmap`, returns them on `free`, and raises the threshold only when
/// such a chunk is freed (up to 32 MiB, trimming at twice that). A run allocates and frees
/// weights, gradients and intermediates of 0.1–30 MiB per block, so until the threshold
/// happens to rise every one of them is faulted in page by page again (a quarter of the
/// run time in a profile). Freeing one large mmapped chunk up front raises the threshold
/// at once; the chunk is never touched, so it costs two system calls. Other allocators
/// just see a `malloc`/`free` pair. Results do not depend on it.
fn settle_allocator() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Just under glibc's DEFAULT_MMAP_THRESHOLD_MAX (32 MiB) including its chunk header.
        let v = Vec::<u8>::with_capacity((32 << 20) - (64 << 10));
        drop(std::hint::black_box(v));
    });
}

/// Records block `l` of `cfg` on a new tape with input `x`; returns the tape and its output.
/// Profiles Admin's `ω` of block `l` first when the placement needs it and it is not known.
fn forward_block<'w, T: Real>(
    cfg: &ModelConfig,
    w: &'w BlockWeights<T>,
    x: Array2<T>,
    l: usize,
    profile: &mut Profile,
) -> (Tape<'w, T>, Node) {
    let profiling = cfg.def.uses_omega() && !profile.fixed && profile.values.len() < l;
    if profiling {
        let wa = (1.0 + profile.sum).sqrt();
        let mut c = cfg.block_ctx(l);
        c.omega = [wa, wa];
        let (mut tape, input) = Tape::new(sublayers(cfg), w, x.clone());
        cfg.def.block(&mut tape, input, &c);
        let qa = tape.probe().attn_q.unwrap_or(0.0);
        profile.values.push([wa, (1.0 + profile.sum + qa).sqrt()]);
    }
    let (mut tape, input) = Tape::new(sublayers(cfg), w, x);
    let out = cfg.def.block(&mut tape, input, &profile.ctx(cfg, l));
    if profiling {
        let p = tape.probe();
        profile.sum += p.attn_q.unwrap_or(0.0) + p.ffn_q.unwrap_or(0.0);
    }
    (tape, out)
}

/// The values of the block language's variables for the final formula.
pub fn final_env(cfg: &ModelConfig) -> crate::lang::Env {
    crate::lang::Env {
        alpha: f64::NAN,
        l: cfg.depth + 1,
        depth: cfg.depth,
        width: cfg.width,
        tokens: cfg.tokens,
        omega: [f64::NAN; 2],
    }
}

fn dot<T: Real>(a: &Array2<T>, b: &Array2<T>) -> f64 {
    simd::ops::dot_f64(a.view(), b.view())
}

/// The loss `ℓ` of a stack with explicit weights (no backward), for derivative checks.
pub fn loss<T: Real>(cfg: &ModelConfig, weights: &[BlockWeights<T>], inputs: &Inputs<T>) -> f64 {
    loss_with_omegas(cfg, weights, inputs, None)
}

/// The `ω` that Admin's profiling gives a stack with explicit weights and inputs (empty for
/// placements without `ω`).
pub fn profile_omegas<T: Real>(
    cfg: &ModelConfig,
    weights: &[BlockWeights<T>],
    inputs: &Inputs<T>,
) -> Omegas {
    let mut profile = Profile {
        fixed: false,
        values: Vec::new(),
        sum: 0.0,
    };
    if !cfg.def.uses_omega() {
        return Vec::new();
    }
    let mut x = inputs.x0.clone();
    for (l, w) in weights.iter().enumerate() {
        let (tape, out) = forward_block(cfg, w, x, l + 1, &mut profile);
        x = tape.into_value(out);
    }
    profile.values
}

/// [`loss()`] with Admin's `ω` held at `omegas` (`None`: profiled).
pub fn loss_with_omegas<T: Real>(
    cfg: &ModelConfig,
    weights: &[BlockWeights<T>],
    inputs: &Inputs<T>,
    omegas: Option<Omegas>,
) -> f64 {
    struct Loss(f64);
    impl<T> Observer<T> for Loss {
        fn loss(&mut self, l: f64) {
            self.0 = l;
        }
    }
    let mut obs = Loss(f64::NAN);
    // A divergence leaves the loss NaN, which is what a derivative check should see.
    let _ = run_with_omegas(
        cfg,
        |l| weights[l - 1].clone(),
        inputs.clone(),
        &mut obs,
        Memory::Recompute,
        omegas,
        Grads::Inputs,
    );
    obs.0
}

/// Exact gradients of a stack with explicit weights: `∂ℓ/∂X_0` and each block's weight
/// gradients, rebuilt from the engine's normalized directions.
pub fn gradients<T: Real>(
    cfg: &ModelConfig,
    weights: &[BlockWeights<T>],
    inputs: &Inputs<T>,
) -> Result<(Array2<T>, Vec<BlockWeights<T>>), Divergence> {
    gradients_with_omegas(cfg, weights, inputs, None)
}

/// [`gradients`] with Admin's `ω` held at `omegas` (`None`: profiled).
pub fn gradients_with_omegas<T: Real>(
    cfg: &ModelConfig,
    weights: &[BlockWeights<T>],
    inputs: &Inputs<T>,
    omegas: Option<Omegas>,
) -> Result<(Array2<T>, Vec<BlockWeights<T>>), Divergence> {
    struct Collect<T> {
        x0: Option<Array2<T>>,
        blocks: Vec<Option<BlockWeights<T>>>,
    }
    impl<T: Real> Observer<T> for Collect<T> {
        fn gradient(&mut self, l: usize, dir: &Array2<T>, log10_norm: f64) {
            if l == 0 {
                let s = T::of(10f64.powf(log10_norm));
                self.x0 = Some(dir.mapv(|v| v * s));
            }
        }
        fn param_grads(&mut self, l: usize, grads: &BlockWeights<T>, log10_scale: f64) {
            let s = T::of(10f64.powf(log10_scale));
            let mut g = grads.clone();
            for m in g.matrices_mut() {
                m.mapv_inplace(|v| v * s);
            }
            self.blocks[l - 1] = Some(g);
        }
    }
    let mut obs = Collect {
        x0: None,
        blocks: vec![None; weights.len()],
    };
    run_with_omegas(
        cfg,
        |l| weights[l - 1].clone(),
        inputs.clone(),
        &mut obs,
        Memory::Keep,
        omegas,
        Grads::All,
    )?;
    let blocks = obs
        .blocks
        .into_iter()
        .map(|b| b.expect("every block visited"))
        .collect();
    Ok((obs.x0.expect("input gradient visited"), blocks))
}
