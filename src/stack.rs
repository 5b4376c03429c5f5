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
use crate::moe::MoeWeights;
use crate::norm;
use crate::real::Real;
use crate::simd;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// The random inputs of one seed.
#[derive(Clone, Debug)]
pub struct Inputs<T> {
    /// `X_0`: `x_i = sqrt(ρ0) z + sqrt(1 − ρ0) ε_i`.
    pub x0: Array2<T>,
    /// The loss projection `R ~ N(0, 1)`, `n × d`.
    pub r: Array2<T>,
}

/// Draws `X_0` and `R` for seed `seed` (stream 0).
pub fn inputs<T: Real>(cfg: &ModelConfig, master: u64, seed: u64) -> Inputs<T> {
    let (n, d) = (cfg.tokens, cfg.width);
    let mut rng = stream_rng(master, seed, 0);
    let z: Array2<f64> = gaussian(&mut rng, 1, d, 1.0);
    let eps: Array2<f64> = gaussian(&mut rng, n, d, 1.0);
    let (a, b) = (cfg.rho0.sqrt(), (1.0 - cfg.rho0).sqrt());
    let x0 = (&eps * b + &z * a).mapv(T::of);
    let r = gaussian(&mut rng, n, d, 1.0);
    Inputs { x0, r }
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
    let beta = cfg.placement.init_gain(cfg.depth);
    let std = |fi: usize, fo: usize| weight_std(cfg.init, cfg.sigma_w, fi, fo);
    let mut attn = AttnWeights {
        w_q: gaussian(&mut rng, d, d, std(d, d)),
        w_k: gaussian(&mut rng, d, d, std(d, d)),
        w_v: gaussian(&mut rng, d, d, std(d, d) * beta),
        w_o: gaussian(&mut rng, d, d, std(d, d) * beta),
    };
    if cfg.init == Init::ZeroQuery {
        attn.w_q.fill(T::zero());
    }
    let ffn = cfg.placement.has_ffn().then(|| match cfg.moe {
        None => FfnBlockWeights::Dense(ffn_weights(cfg, &mut rng, beta)),
        Some(m) => FfnBlockWeights::Moe(MoeWeights {
            w_r: gaussian(&mut rng, d, m.experts, std(d, m.experts)),
            experts: (0..m.experts)
                .map(|_| ffn_weights(cfg, &mut rng, beta))
                .collect(),
        }),
    });
    BlockWeights { attn, ffn }
}

fn ffn_weights<T: Real>(cfg: &ModelConfig, rng: &mut Stream, beta: f64) -> FfnWeights<T> {
    let (d, f) = (cfg.width, cfg.d_ff);
    let std = |fi: usize, fo: usize| weight_std(cfg.init, cfg.sigma_w, fi, fo) * beta;
    let w_1 = gaussian(rng, d, f, std(d, f));
    let w_2 = gaussian(rng, f, d, std(f, d));
    let w_g = (cfg.act == Activation::Swiglu).then(|| gaussian(rng, d, f, std(d, f)));
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
    settle_allocator();
    let kept: Vec<BlockWeights<T>> = match memory {
        Memory::Keep => (1..=cfg.depth).map(&weights).collect(),
        Memory::Recompute => Vec::new(),
    };
    let depth = cfg.depth;
    let Inputs { x0, r } = inputs;
    obs.boundary(0, &x0);
    let mut xs = Vec::with_capacity(depth + 1);
    let mut tapes = Vec::with_capacity(kept.len());
    xs.push(x0);
    for l in 1..=depth {
        let x_prev = xs[l - 1].clone();
        let (y, probe) = match memory {
            Memory::Keep => {
                let (tape, out) = forward_block(cfg, &kept[l - 1], x_prev, l);
                let result = (tape.value(out).clone(), tape.probe());
                tapes.push((tape, out));
                result
            }
            Memory::Recompute => {
                let w = weights(l);
                let (tape, out) = forward_block(cfg, &w, x_prev, l);
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

    // Loss ℓ = Σ R ⊙ Y / sqrt(n d), Y = N(X_L) or X_L.
    let x_last = xs.pop().expect("depth + 1 boundaries");
    let c = T::of(1.0 / ((cfg.tokens * cfg.width) as f64).sqrt());
    let g_y = simd::ops::scaled(r.view(), c);
    let mut g = if cfg.placement.output_norm() {
        let (y, cache) = norm::forward(cfg.norm, x_last.view(), T::one());
        obs.loss(dot(&r, &y) * c.f64());
        norm::backward(cfg.norm, &cache, g_y.view())
    } else {
        obs.loss(dot(&r, &x_last) * c.f64());
        g_y
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
                let (tape, out) = forward_block(cfg, &w, x_in, l);
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
fn forward_block<'w, T: Real>(
    cfg: &ModelConfig,
    w: &'w BlockWeights<T>,
    x: Array2<T>,
    l: usize,
) -> (Tape<'w, T>, Node) {
    let (mut tape, input) = Tape::new(sublayers(cfg), w, x);
    let out = cfg.placement.block(&mut tape, input, &cfg.block_ctx(l));
    (tape, out)
}

fn dot<T: Real>(a: &Array2<T>, b: &Array2<T>) -> f64 {
    simd::ops::dot_f64(a.view(), b.view())
}

/// The loss `ℓ` of a stack with explicit weights (no backward), for derivative checks.
pub fn loss<T: Real>(cfg: &ModelConfig, weights: &[BlockWeights<T>], inputs: &Inputs<T>) -> f64 {
    struct Loss(f64);
    impl<T> Observer<T> for Loss {
        fn loss(&mut self, l: f64) {
            self.0 = l;
        }
    }
    let mut obs = Loss(f64::NAN);
    // A divergence leaves the loss NaN, which is what a derivative check should see.
    let _ = run(
        cfg,
        |l| weights[l - 1].clone(),
        inputs.clone(),
        &mut obs,
        Memory::Recompute,
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
    struct Grads<T> {
        x0: Option<Array2<T>>,
        blocks: Vec<Option<BlockWeights<T>>>,
    }
    impl<T: Real> Observer<T> for Grads<T> {
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
    let mut obs = Grads {
        x0: None,
        blocks: vec![None; weights.len()],
    };
    run(
        cfg,
        |l| weights[l - 1].clone(),
        inputs.clone(),
        &mut obs,
        Memory::Keep,
    )?;
    let blocks = obs
        .blocks
        .into_iter()
        .map(|b| b.expect("every block visited"))
        .collect();
    Ok((obs.x0.expect("input gradient visited"), blocks))
}
