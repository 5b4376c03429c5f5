//! Benchmark workloads with an analytic FLOP count and peak memory.
//!
//! # FLOP count
//! Matrix products only (elementwise work is `O(n d_ff)` per block, under 2% here). For one
//! block on `n` tokens of width `d`, with `H` heads and hidden width `d_ff`:
//! - attention forward `F_A = 8 n d² + 4 n² d` (`Q, K, V, O` projections `4 · 2 n d²`;
//!   scores and `P V`, `2 · 2 n² d` summed over heads);
//! - feed-forward forward `F_F = 2 m n d d_ff` with `m = 2` matrices (`m = 3` for `swiglu`),
//!   times `k` for a top-`k` mixture, plus `2 n d E` for its router;
//! - backward is twice the forward (gradients with respect to inputs and weights);
//! - metrics per boundary: the Gram matrix `2 n² d` and its eigenvalues `≈ (4/3) n³`.
//!
//! `model_flops = seeds · (L · 3 (F_A + F_F) + (L + 1)(2 n² d + 4 n³ / 3))`.
//!
//! Without weight gradients ([`Grads::Inputs`], the `external-f32` case) the backward pass
//! is `B_A = 8 n d² + 8 n² d` (the input products of `W_o, W_q, W_k, W_v` and the four score
//! products per head) plus `B_F = F_F` (one input product per weight matrix, the router's
//! included), so a block costs `F_A + F_F + B_A + B_F`. A stack too
//! large to keep its weights and intermediates ([`crate::stack::Memory::Recompute`])
//! recomputes each block's forward pass during the backward pass; `executed_flops` adds
//! those `L (F_A + F_F)` per seed for such stacks.
//!
//! # GEMM peak
//! [`gemm_peak`] times the engine's own GEMM backend (ndarray's `general_mat_mul`, i.e.
//! `matrixmultiply`, single-threaded per call) on a `1024 × 1024` product, one product per
//! worker thread at once, so a workload's GFLOP/s can be divided by the peak of the same
//! process, precision and thread count.

use crate::block::Grads;
use crate::config::{ModelConfig, SimConfig};
use crate::ffn::Activation;
use crate::real::Real;
use crate::simulate;
use crate::stack::Memory;
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;
use std::time::Instant;

/// FLOPs of one block's forward pass (matrix products only).
pub fn block_forward_flops(m: &ModelConfig) -> f64 {
    let (n, d, f) = (m.tokens as f64, m.width as f64, m.d_ff as f64);
    let attn = 8.0 * n * d * d + 4.0 * n * n * d;
    if !m.placement.has_ffn() {
        return attn;
    }
    let mats = if m.act == Activation::Swiglu {
        3.0
    } else {
        2.0
    };
    let one = 2.0 * mats * n * d * f;
    let ffn = match m.moe {
        None => one,
        Some(moe) => moe.top_k as f64 * one + 2.0 * n * d * moe.experts as f64,
    };
    attn + ffn
}

/// FLOPs of one block's backward pass when it forms `∂ℓ/∂X` only (see the module docs).
pub fn block_input_backward_flops(m: &ModelConfig) -> f64 {
    let (n, d) = (m.tokens as f64, m.width as f64);
    let attn_forward = 8.0 * n * d * d + 4.0 * n * n * d;
    let attn = 8.0 * n * d * d + 8.0 * n * n * d;
    attn + block_forward_flops(m) - attn_forward
}

/// FLOPs of the metrics at one boundary.
pub fn boundary_metric_flops(m: &ModelConfig) -> f64 {
    let (n, d) = (m.tokens as f64, m.width as f64);
    2.0 * n * n * d + 4.0 / 3.0 * n * n * n
}

/// `(model_flops, executed_flops)` of one seed run with `memory`; see the module docs.
pub fn seed_flops(m: &ModelConfig, memory: Memory) -> (f64, f64) {
    seed_flops_with(m, memory, Grads::All)
}

/// [`seed_flops`] of a run computing the gradients `grads` asks for.
pub fn seed_flops_with(m: &ModelConfig, memory: Memory, grads: Grads) -> (f64, f64) {
    let l = m.depth as f64;
    let f = block_forward_flops(m);
    let backward = match grads {
        Grads::All => 2.0 * f,
        Grads::Inputs => block_input_backward_flops(m),
    };
    let metrics = (l + 1.0) * boundary_metric_flops(m);
    let recomputed = match memory {
        Memory::Keep => 0.0,
        Memory::Recompute => f,
    };
    let model = l * (f + backward) + metrics;
    (model, model + l * recomputed)
}

/// `(model_flops, executed_flops)` of every seed of every configuration in `cfgs`.
pub fn run_flops(cfgs: &[SimConfig]) -> (f64, f64) {
    run_flops_with(cfgs, Grads::All)
}

/// [`run_flops`] of runs computing the gradients `grads` asks for.
pub fn run_flops_with(cfgs: &[SimConfig], grads: Grads) -> (f64, f64) {
    cfgs.iter().fold((0.0, 0.0), |(m, e), c| {
        let (sm, se) = seed_flops_with(&c.model, simulate::memory_for(c), grads);
        let s = c.seeds as f64;
        (m + s * sm, e + s * se)
    })
}

/// GEMM throughput measured by [`gemm_peak`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmPeak {
    /// Sum over the worker threads, GFLOP/s.
    pub gflops: f64,
    /// The slowest thread's rate, GFLOP/s.
    pub per_thread_min: f64,
    pub threads: usize,
}

/// Best-of-`reps` GFLOP/s (`2 size³` FLOPs per product) of `C = A B` with `size × size`
/// matrices of `T`, every thread of the current rayon pool multiplying its own matrices
/// at the same time (as seeds do).
pub fn gemm_peak<T: Real>(size: usize, reps: usize) -> GemmPeak {
    gemm_rate::<T>((size, size, size), reps)
}

/// [`gemm_peak`] for an `m × k` by `k × n` product (`2 m k n` FLOPs): how fast the backend
/// runs a workload's own shapes.
pub fn gemm_rate<T: Real>((m, k, n): (usize, usize, usize), reps: usize) -> GemmPeak {
    let rates = rayon::broadcast(|_| {
        let a = Array2::from_shape_fn((m, k), |(i, j)| T::of(((i * 7 + j * 3) % 11) as f64 - 5.0));
        let b = Array2::from_shape_fn((k, n), |(i, j)| T::of(((i * 5 + j) % 13) as f64 - 6.0));
        let mut c = Array2::<T>::zeros((m, n));
        general_mat_mul(T::one(), &a, &b, T::zero(), &mut c); // warm-up: pages, caches
        let best = (0..reps.max(1))
            .map(|_| {
                let t = Instant::now();
                general_mat_mul(T::one(), &a, &b, T::zero(), &mut c);
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        2.0 * (m * k * n) as f64 / best / 1e9
    });
    GemmPeak {
        gflops: rates.iter().sum(),
        per_thread_min: rates.iter().cloned().fold(f64::INFINITY, f64::min),
        threads: rates.len(),
    }
}

/// FNV-1a of `bytes`, to compare two runs' result bytes.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Peak resident memory of this process in bytes (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    #[test]
    fn reference_block_flops() {
        let m = RawConfig {
            placement: Some("span".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap()
        .remove(0)
        .model;
        // n = 64, d = 256, d_ff = 1024: 8·64·256² + 4·64²·256 + 4·64·256·1024.
        let want = 33_554_432.0 + 4_194_304.0 + 67_108_864.0;
        assert_eq!(block_forward_flops(&m), want);
        // A kept stack executes the model's products; a recomputing one adds a forward pass.
        let (model, kept) = seed_flops(&m, Memory::Keep);
        let (_, recomputed) = seed_flops(&m, Memory::Recompute);
        assert_eq!(model, kept);
        assert_eq!(recomputed - kept, m.depth as f64 * want);
        // Without weight gradients: 8·64·256² + 8·64²·256 for attention, the feed-forward
        // input products as in the forward pass.
        let backward = 33_554_432.0 + 8_388_608.0 + 67_108_864.0;
        assert_eq!(block_input_backward_flops(&m), backward);
        let (inputs_only, _) = seed_flops_with(&m, Memory::Keep, Grads::Inputs);
        // Both totals hold the metrics' 4n³/3 terms, which are not integers: the difference
        // is exact up to a few roundings of the 6.6e9 totals, ε · 6.6e9 ≈ 1.5e-6 each.
        let skipped = m.depth as f64 * (2.0 * want - backward);
        assert!(
            (model - inputs_only - skipped).abs() < 1e-5,
            "{model} {inputs_only}"
        );
    }
}
