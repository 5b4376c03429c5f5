//! Training probe: the same stacks as [`crate::simulate`], with held weights, an embedding
//! and an unembedding, trained on a synthetic task (`analysis/training.md`).
//!
//! # Model
//! Words `s_0 … s_{n−1}` are embedded as the rows of `E ∈ R^{V×d}` (`N(0, 1)` entries, so at
//! step 0 the stack reads Gaussian rows with `q = 1`, as `simulate` does), pass through the
//! placement's stack (weights drawn as `simulate` draws them, then held), and leave through
//! the unembedding `U ∈ R^{d×V}` (`N(0, 1/d)`): logits `Z = Y U`, loss the mean next-token
//! cross-entropy (the `cross-entropy` loss of [`crate::loss`] with targets `t_i = s_{i+1}`).
//! The gradients are exact: the stack's own backward pass for the blocks, `∂ℓ/∂E_w = Σ_{i:
//! s_i = w} ∂ℓ/∂X_{0,i}` for the embedding and `∂ℓ/∂U = Yᵀ ∂ℓ/∂Z` for the unembedding.
//!
//! # Determinism
//! Weights come from the streams of [`crate::stack`] (`E` then `U` from stream 0, block `l`
//! from stream `l`); the task's chain from [`task::rng`] stream 0 and step `t`'s batch from
//! stream `t + 1`. The sequences of a batch are processed in parallel and their gradients
//! summed in sequence order, so results do not depend on the number of threads.

pub mod optim;
pub mod run;
pub mod task;

use crate::block::{BlockWeights, Grads, Probe};
use crate::config::{Precision, SimConfig};
use crate::init::{gaussian, stream_rng};
use crate::loss::{Loss, Unembedding};
use crate::metrics::{Recorder, SeedRecord};
use crate::real::Real;
use crate::stack::{self, Divergence, Inputs, Memory, Observer};
use crate::weight::WeightName;
use ndarray::{Array2, Axis};
use optim::{Moments, Optimizer, Schedule};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use task::{Source, Task};

/// How to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Settings {
    /// The task.
    pub task: Task,
    /// Sequences per step.
    pub batch: usize,
    /// Optimizer steps.
    pub steps: usize,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warmup steps.
    pub warmup: usize,
    /// Schedule after warmup.
    pub schedule: Schedule,
    /// Decoupled weight decay `λ`.
    pub weight_decay: f64,
    /// Global gradient-norm clip (`None`: no clipping).
    pub clip: Option<f64>,
    /// Record the per-layer metrics every this many steps (and at the first and last).
    pub record_every: usize,
}

/// Why training cannot start.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrainError {
    /// A setting out of range.
    #[error("{0}")]
    Invalid(String),
}

impl Settings {
    /// Checks the settings against the model they train.
    pub fn validate(&self, cfg: &SimConfig) -> Result<(), TrainError> {
        let bad = |s: &str| Err(TrainError::Invalid(s.to_string()));
        let m = cfg.model();
        if m.mask != crate::attention::Mask::Causal {
            return bad("train: next-token tasks need --mask causal");
        }
        if m.loss != Loss::CrossEntropy {
            return bad("train: the loss is the next-token cross-entropy (--loss cross-entropy)");
        }
        if m.vocab < 2 {
            return bad("vocab: must be at least 2 to train");
        }
        if self.batch == 0 || self.batch > 4096 {
            return bad("batch: must be in 1..=4096");
        }
        if self.steps == 0 || self.steps > 1_000_000 {
            return bad("steps: must be in 1..=1000000");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr: must be a positive number");
        }
        if !(self.weight_decay.is_finite()
            && self.weight_decay >= 0.0
            && self.lr * self.weight_decay < 1.0)
        {
            return bad("weight-decay: must be ≥ 0 with lr · weight-decay < 1");
        }
        if self.clip.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
            return bad("clip: must be a positive number");
        }
        if self.record_every == 0 {
            return bad("record-every: must be at least 1");
        }
        if self.warmup > self.steps {
            return bad("warmup: must be at most --steps");
        }
        Ok(())
    }
}

/// The trained parameters of one seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Model<T> {
    /// `E`, `V × d`.
    pub emb: Array2<T>,
    /// One entry per block.
    pub blocks: Vec<BlockWeights<T>>,
    /// `U`, `d × V`.
    pub unemb: Array2<T>,
}

impl<T: Real> Model<T> {
    /// The initial model of seed `seed`.
    pub fn init(cfg: &SimConfig, seed: u64) -> Model<T> {
        let m = cfg.model();
        let (d, v) = (m.width, m.vocab);
        let mut rng = stream_rng(cfg.seed(), seed, 0);
        let emb = gaussian(&mut rng, v, d, 1.0);
        let unemb = gaussian(&mut rng, d, v, 1.0 / (d as f64).sqrt());
        let blocks = (1..=m.depth)
            .map(|l| stack::block_weights(m, cfg.seed(), seed, l))
            .collect();
        Model { emb, blocks, unemb }
    }

    /// A model of zeros shaped like `self` (for gradients).
    pub fn zeros_like(&self) -> Model<T> {
        let mut z = self.clone();
        for m in z.matrices_mut() {
            m.fill(T::zero());
        }
        z
    }

    /// Every matrix: `E`, `U`, then each block's in [`BlockWeights::matrices_mut`] order.
    pub fn matrices_mut(&mut self) -> Vec<&mut Array2<T>> {
        let mut v = vec![&mut self.emb, &mut self.unemb];
        for b in &mut self.blocks {
            v.extend(b.matrices_mut());
        }
        v
    }

    /// Every matrix, in the order of [`Model::matrices_mut`].
    pub fn matrices(&self) -> Vec<&Array2<T>> {
        let mut v = vec![&self.emb, &self.unemb];
        for b in &self.blocks {
            v.extend(b.each_named().into_iter().map(|(_, m)| m));
        }
        v
    }

    /// The name of every matrix of [`Model::matrices`] (`None` for `E` and `U`).
    fn names(&self) -> Vec<Option<WeightName>> {
        let mut v = vec![None, None];
        for b in &self.blocks {
            v.extend(b.each_named().into_iter().map(|(n, _)| Some(n)));
        }
        v
    }
}

/// The embedding rows of `words`.
fn embed<T: Real>(emb: &Array2<T>, words: &[usize]) -> Array2<T> {
    emb.select(Axis(0), words)
}

/// What one sequence's pass gives: its loss, gradients and, when asked, its per-layer
/// record and the RMS of its output logits.
struct Pass<T> {
    loss: f64,
    grads: Model<T>,
    record: Option<SeedRecord>,
    logit_rms: f64,
    probes: Vec<Probe>,
}

struct Collect<T> {
    x0: Option<Array2<T>>,
    blocks: Vec<Option<BlockWeights<T>>>,
    y: Option<Array2<T>>,
    loss: f64,
    rec: Option<Recorder>,
    probes: Vec<Probe>,
}

impl<T: Real> Observer<T> for Collect<T> {
    fn boundary(&mut self, l: usize, x: &Array2<T>) {
        if let Some(r) = &mut self.rec {
            r.boundary(l, x);
        }
    }
    fn block(&mut self, l: usize, x_prev: &Array2<T>, x: &Array2<T>, probe: Probe) {
        if let Some(r) = &mut self.rec {
            r.block(l, x_prev, x, probe);
            self.probes.push(probe);
        }
    }
    fn output(&mut self, y: &Array2<T>) {
        self.y = Some(y.clone());
    }
    fn loss(&mut self, loss: f64) {
        self.loss = loss;
        if let Some(r) = &mut self.rec {
            Observer::<T>::loss(r, loss);
        }
    }
    fn gradient(&mut self, l: usize, dir: &Array2<T>, log10_norm: f64) {
        if l == 0 {
            let s = T::of(10f64.powf(log10_norm));
            self.x0 = Some(dir.mapv(|v| v * s));
        }
        if let Some(r) = &mut self.rec {
            r.gradient(l, dir, log10_norm);
        }
    }
    fn param_grads(&mut self, l: usize, grads: &BlockWeights<T>, log10_scale: f64) {
        if let Some(r) = &mut self.rec {
            r.param_grads(l, grads, log10_scale);
        }
        let s = T::of(10f64.powf(log10_scale));
        let mut g = grads.clone();
        for m in g.matrices_mut() {
            m.mapv_inplace(|v| v * s);
        }
        self.blocks[l - 1] = Some(g);
    }
}

/// Loss and exact gradients of `model` on one sequence `seq` (`n + 1` words).
fn sequence_pass<T: Real>(
    cfg: &SimConfig,
    model: &Model<T>,
    seq: &[usize],
    record: bool,
) -> Result<Pass<T>, Divergence> {
    let m = cfg.model();
    let n = m.tokens;
    let inputs = Inputs {
        x0: embed(&model.emb, &seq[..n]),
        r: Array2::zeros((0, 0)),
        unembedding: Some(Unembedding {
            u: model.unemb.clone(),
            targets: seq[1..=n].to_vec(),
        }),
    };
    let mut obs = Collect {
        x0: None,
        blocks: vec![None; m.depth],
        y: None,
        loss: f64::NAN,
        rec: record.then(|| Recorder::new(m.depth, &m.weight_names())),
        probes: Vec::new(),
    };
    stack::run_with_omegas(
        m,
        |l| model.blocks[l - 1].clone(),
        inputs,
        &mut obs,
        Memory::Keep,
        None,
        Grads::All,
    )?;
    let y = obs.y.expect("the output is observed");
    let gx0 = obs.x0.expect("the input gradient is observed");
    // ∂ℓ/∂Z = (softmax(Z) − e_t)/n row by row; ∂ℓ/∂U = Yᵀ ∂ℓ/∂Z.
    let mut z = y.dot(&model.unemb);
    let logit_rms = (crate::simd::ops::sum_sq_f64(z.view()) / z.len() as f64).sqrt();
    for (i, mut row) in z.axis_iter_mut(Axis(0)).enumerate() {
        let max = row.fold(T::neg_infinity(), |a, &v| a.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let s = row.sum();
        row.mapv_inplace(|v| v / s);
        row[seq[i + 1]] -= T::one();
        row.mapv_inplace(|v| v / T::of(n as f64));
    }
    let mut grads = model.zeros_like();
    grads.unemb = y.t().dot(&z);
    for (i, &w) in seq[..n].iter().enumerate() {
        let mut row = grads.emb.row_mut(w);
        row += &gx0.row(i);
    }
    grads.blocks = obs
        .blocks
        .into_iter()
        .map(|b| b.expect("every block's gradient is observed"))
        .collect();
    Ok(Pass {
        loss: obs.loss,
        grads,
        record: obs.rec.map(|r| r.record),
        logit_rms,
        probes: obs.probes,
    })
}

/// The mean loss and mean gradients of a batch; sequences run in parallel, summed in order.
/// The first sequence's per-layer record and logit RMS come along when `record`.
fn batch_pass<T: Real>(
    cfg: &SimConfig,
    model: &Model<T>,
    seqs: &[Vec<usize>],
    record: bool,
) -> Result<Pass<T>, Divergence> {
    let group = rayon::current_num_threads().max(1);
    let mut total: Option<Pass<T>> = None;
    let mut first = None;
    for (c, chunk) in seqs.chunks(group).enumerate() {
        let passes: Vec<Result<Pass<T>, Divergence>> = chunk
            .par_iter()
            .enumerate()
            .map(|(i, s)| sequence_pass(cfg, model, s, record && c == 0 && i == 0))
            .collect();
        for p in passes {
            let mut p = p?;
            if first.is_none() {
                first = Some((p.record.take(), p.logit_rms, std::mem::take(&mut p.probes)));
            }
            match &mut total {
                None => total = Some(p),
                Some(t) => {
                    t.loss += p.loss;
                    for (a, b) in t.grads.matrices_mut().into_iter().zip(p.grads.matrices()) {
                        *a += b;
                    }
                }
            }
        }
    }
    let mut t = total.expect("a batch has at least one sequence");
    let b = seqs.len() as f64;
    t.loss /= b;
    let inv = T::of(1.0 / b);
    for m in t.grads.matrices_mut() {
        m.mapv_inplace(|v| v * inv);
    }
    let (record, logit_rms, probes) = first.expect("a first sequence");
    t.record = record;
    t.logit_rms = logit_rms;
    t.probes = probes;
    Ok(t)
}

/// One seed's training trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The seed index.
    pub seed: u64,
    /// The loss floor of this seed's task (nats).
    pub floor: f64,
    /// The batch loss before each step's update (nats), one per step done.
    pub loss: Vec<f64>,
    /// The global gradient norm before clipping, per step.
    pub grad_norm: Vec<f64>,
    /// The learning rate of each step.
    pub lr: Vec<f64>,
    /// The steps at which the per-layer records were taken.
    pub recorded_steps: Vec<usize>,
    /// Per recorded step: the first sequence's per-layer metrics (as `simulate` records
    /// them for one seed).
    pub layers: Vec<SeedRecord>,
    /// Per recorded step: the RMS of the first sequence's output logits.
    pub logit_rms: Vec<f64>,
    /// Per recorded step and block: the first sequence's largest attention logit
    /// `q_i·k_j/√d_h` (`None` for a block without attention).
    pub max_logit: Vec<Vec<Option<f64>>>,
    /// Per recorded step and block: the router's load imbalance `E · max_e f_e` on the first
    /// sequence (1 = balanced; `None` for a dense block).
    pub max_load: Vec<Vec<Option<f64>>>,
    /// Per recorded step: `‖ΔW‖/‖W‖` of that step's update for each weight (blocks pooled;
    /// `emb` and `unemb` for `E` and `U`); `None` where `‖W‖ = 0` (`w_q` of `zero-query` at
    /// step 0).
    pub update_ratio: Vec<std::collections::BTreeMap<String, Option<f64>>>,
    /// The loss of the trained model on [`EVAL_SEQUENCES`] held-out sequences (`None` when
    /// it diverged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    /// The step at which the loss or a value of the stack stopped being finite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged_at: Option<usize>,
}

impl Trace {
    /// The final loss: the held-out loss of the trained model (`None` when it diverged).
    pub fn final_loss(&self) -> Option<f64> {
        self.diverged_at
            .is_none()
            .then_some(self.eval_loss)
            .flatten()
    }
}

/// Held-out sequences on which the final loss is measured (drawn from the task stream
/// `u64::MAX`, which no training step uses): enough that the final loss's sampling error
/// (about `σ_ℓ/√(64 n)` for a per-token loss spread `σ_ℓ`) stays below the differences between
/// learning rates that the sensitivity measures.
pub const EVAL_SEQUENCES: usize = 64;

/// Trains seed `seed` of `cfg`; `progress` is called once per step.
pub fn train_seed(
    cfg: &SimConfig,
    settings: &Settings,
    seed: u64,
    progress: &(dyn Fn() + Sync),
) -> Trace {
    match cfg.precision() {
        Precision::F32 => train_as::<f32>(cfg, settings, seed, progress),
        Precision::F64 => train_as::<f64>(cfg, settings, seed, progress),
    }
}

fn train_as<T: Real>(
    cfg: &SimConfig,
    s: &Settings,
    seed: u64,
    progress: &(dyn Fn() + Sync),
) -> Trace {
    let m = cfg.model();
    let source = Source::new(s.task, m.vocab, m.tokens, cfg.seed(), seed);
    let mut model = Model::<T>::init(cfg, seed);
    let mut state: Vec<Moments<T>> = model
        .matrices()
        .iter()
        .map(|w| Moments::for_optimizer(s.optimizer, w.dim()))
        .collect();
    let names = model.names();
    let mut trace = Trace {
        seed,
        floor: source.floor(),
        ..Trace::default()
    };
    for t in 0..s.steps {
        let mut r = task::rng(cfg.seed(), seed, t as u64 + 1);
        let seqs: Vec<Vec<usize>> = (0..s.batch).map(|_| source.sequence(&mut r)).collect();
        let record = t % s.record_every == 0 || t + 1 == s.steps;
        let pass = match batch_pass(cfg, &model, &seqs, record) {
            Ok(p) if p.loss.is_finite() => p,
            _ => {
                trace.diverged_at = Some(t);
                progress();
                break;
            }
        };
        let mut grads = pass.grads;
        let norm = grads
            .matrices()
            .iter()
            .map(|g| crate::simd::ops::sum_sq_f64(g.view()))
            .sum::<f64>()
            .sqrt();
        if !norm.is_finite() {
            trace.diverged_at = Some(t);
            progress();
            break;
        }
        if let Some(c) = s.clip {
            if norm > c {
                let f = T::of(c / norm);
                for g in grads.matrices_mut() {
                    g.mapv_inplace(|v| v * f);
                }
            }
        }
        let lr = optim::rate(s.lr, t, s.steps, s.warmup, s.schedule);
        let before = record.then(|| model.clone());
        for ((w, g), st) in model
            .matrices_mut()
            .into_iter()
            .zip(grads.matrices())
            .zip(&mut state)
        {
            optim::update(s.optimizer, w, g, st, t, lr, s.weight_decay);
        }
        trace.loss.push(pass.loss);
        trace.grad_norm.push(norm);
        trace.lr.push(lr);
        if let Some(before) = before {
            trace.recorded_steps.push(t);
            trace.layers.push(pass.record.unwrap_or_default());
            trace.logit_rms.push(pass.logit_rms);
            trace
                .max_logit
                .push(pass.probes.iter().map(|p| p.max_logit).collect());
            trace
                .max_load
                .push(pass.probes.iter().map(|p| p.max_load).collect());
            trace
                .update_ratio
                .push(update_ratios(&names, &before, &model));
        }
        progress();
    }
    if trace.diverged_at.is_none() {
        let mut r = task::rng(cfg.seed(), seed, u64::MAX);
        let seqs: Vec<Vec<usize>> = (0..EVAL_SEQUENCES)
            .map(|_| source.sequence(&mut r))
            .collect();
        match batch_pass(cfg, &model, &seqs, false) {
            Ok(p) if p.loss.is_finite() => trace.eval_loss = Some(p.loss),
            _ => trace.diverged_at = Some(s.steps),
        }
    }
    trace
}

/// `‖ΔW‖/‖W‖` per weight name, blocks pooled (`emb`, `unemb` for `E`, `U`).
fn update_ratios<T: Real>(
    names: &[Option<WeightName>],
    before: &Model<T>,
    after: &Model<T>,
) -> std::collections::BTreeMap<String, Option<f64>> {
    let mut sums: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for (i, (a, b)) in before
        .matrices()
        .into_iter()
        .zip(after.matrices())
        .enumerate()
    {
        let key = match names[i] {
            Some(n) => n.to_string(),
            None if i == 0 => "emb".to_string(),
            None => "unemb".to_string(),
        };
        let d = crate::simd::ops::sum_sq_f64((b - a).view());
        let w = crate::simd::ops::sum_sq_f64(a.view());
        let e = sums.entry(key).or_default();
        e.0 += d;
        e.1 += w;
    }
    sums.into_iter()
        .map(|(k, (d, w))| (k, Some((d / w).sqrt()).filter(|r| r.is_finite())))
        .collect()
}

/// The loss and exact gradients of a model on one sequence, for derivative checks.
pub fn loss_and_gradients<T: Real>(
    cfg: &SimConfig,
    model: &Model<T>,
    seq: &[usize],
) -> Result<(f64, Model<T>), Divergence> {
    sequence_pass(cfg, model, seq, false).map(|p| (p.loss, p.grads))
}

/// Learning-rate sensitivity as Wortsman et al. (2023) define it: the mean over learning
/// rates of `min(ℓ(η), ℓ₀) − ℓ*`, with `ℓ₀` the loss at initialization and `ℓ*` the best final
/// loss over the rates (a diverged rate counts as `ℓ₀`).
pub fn sensitivity(final_losses: &[Option<f64>], initial: f64) -> f64 {
    let best = final_losses
        .iter()
        .flatten()
        .fold(initial, |a, &b| a.min(b));
    final_losses
        .iter()
        .map(|l| l.map_or(initial, |l| l.min(initial)) - best)
        .sum::<f64>()
        / final_losses.len() as f64
}

/// Model FLOPs of one sequence's training pass (matrix products only): the stack forward
/// and backward with weight gradients (`3 ×` the forward), and the unembedding's forward and
/// its two gradients (`6 n d V`).
pub fn sequence_flops(cfg: &SimConfig) -> f64 {
    let m = cfg.model();
    let (n, d, v) = (m.tokens as f64, m.width as f64, m.vocab as f64);
    3.0 * m.depth as f64 * crate::cost::block_forward_flops(m) + 6.0 * n * d * v
}

/// Model FLOPs of one optimizer step of `settings` (a batch of training passes).
pub fn step_flops(cfg: &SimConfig, settings: &Settings) -> f64 {
    settings.batch as f64 * sequence_flops(cfg)
}

/// Weights of the whole model: the blocks, `E` and `U`.
pub fn parameters(cfg: &SimConfig) -> f64 {
    let m = cfg.model();
    m.depth as f64 * crate::cost::params_per_block(m) + 2.0 * (m.vocab * m.width) as f64
}

/// Estimated peak bytes of training one seed with `threads` sequences in flight: the
/// weights, the optimizer state (two moments for AdamW), the batch's summed gradients and
/// the copy kept on recorded steps (`4P` with AdamW, `2P` more for the moments), and per
/// sequence in flight its gradients, the stack's copies of the block weights and their
/// scaled gradients (`3P`), every block's tape and the `n × V` logits twice.
pub fn bytes(cfg: &SimConfig, settings: &Settings, threads: usize) -> f64 {
    let m = cfg.model();
    let p = parameters(cfg);
    let moments = match settings.optimizer {
        Optimizer::Adamw => 2.0,
        Optimizer::Sgd => 0.0,
    };
    let per_sequence = 3.0 * p
        + m.depth as f64 * crate::cost::tape_values_per_block(m)
        + 2.0 * (m.tokens * m.vocab) as f64;
    let in_flight = threads.clamp(1, settings.batch.max(1)) as f64;
    cfg.precision().bytes() as f64 * ((3.0 + moments) * p + in_flight * per_sequence)
}

/// Seconds of one round of training passes with every worker thread busy (one sequence per
/// thread), measured on this machine on a stack of at most 4 blocks of `cfg`'s shape and
/// scaled to its depth: the unit of [`bytes`]' companion estimate in `train --dry-run`.
pub fn time_round(cfg: &SimConfig, settings: &Settings) -> f64 {
    let m = cfg.model();
    let short = m.depth.min(4);
    let Ok(small) = cfg.to_raw().depth(short).seeds(1).build() else {
        return f64::NAN;
    };
    let threads = rayon::current_num_threads().max(1);
    let source = Source::new(settings.task, m.vocab, m.tokens, cfg.seed(), 0);
    let mut r = task::rng(cfg.seed(), 0, 1);
    let seqs: Vec<Vec<usize>> = (0..threads).map(|_| source.sequence(&mut r)).collect();
    let time = |f: &dyn Fn()| {
        f();
        let t = std::time::Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };
    let secs = match cfg.precision() {
        Precision::F32 => {
            let model = Model::<f32>::init(&small, 0);
            time(&|| drop(batch_pass(&small, &model, &seqs, false)))
        }
        Precision::F64 => {
            let model = Model::<f64>::init(&small, 0);
            time(&|| drop(batch_pass(&small, &model, &seqs, false)))
        }
    };
    secs * m.depth as f64 / short as f64
}
