//! What a run costs before it runs: weights per block, memory per seed, how a seed trades
//! memory for time ([`Memory`]), and floating-point operations.
//!
//! Sizes are computed in `f64`, so absurd configurations (a billion experts) give a huge
//! number and a clear refusal rather than an integer overflow.
//!
//! # FLOP count
//! Matrix products only (elementwise work is `O(n d_ff)` per block, under 2% at the
//! reference sizes). For one block on `n` tokens of width `d`, with `H` heads and hidden
//! width `d_ff`:
//! - attention forward `F_A = 8 n d² + 4 n² d` (`Q, K, V, O` projections `4 · 2 n d²`;
//!   scores and `P V`, `2 · 2 n² d` summed over heads);
//! - feed-forward forward `F_F = 2 m n d d_ff` with `m = 2` matrices (`m = 3` for `swiglu`),
//!   times `k` for a top-`k` mixture, plus `2 n d E` for its router;
//! - backward is twice the forward (gradients with respect to inputs and weights);
//! - metrics per boundary: the Gram matrix `2 n² d` and its eigenvalues `≈ (4/3) n³`.
//!
//! `model_flops = seeds · (L · 3 (F_A + F_F) + (L + 1)(2 n² d + 4 n³ / 3))`.
//!
//! Without weight gradients ([`Grads::Inputs`], the `external-f32` bench case) the backward
//! pass is `B_A = 8 n d² + 8 n² d` (the input products of `W_o, W_q, W_k, W_v` and the four
//! score products per head) plus `B_F = F_F` (one input product per weight matrix, the
//! router's included), so a block costs `F_A + F_F + B_A + B_F`. A stack too large to keep
//! its weights and intermediates ([`Memory::Recompute`]) recomputes each block's forward
//! pass during the backward pass; `executed_flops` adds those `L (F_A + F_F)` per seed for
//! such stacks.

use crate::block::Grads;
use crate::config::{ModelConfig, SimConfig};
use crate::error::ConfigError;
use crate::ffn::Activation;
use crate::stack::AHEAD;

pub use crate::stack::Memory;

/// Upper bound on the estimated memory of one seed's run, so a typo in a size gets an
/// error rather than an allocation failure.
pub const MAX_BYTES: f64 = 16.0 * GIB;

const GIB: f64 = (1u64 << 30) as f64;

/// Matrices of one feed-forward network: `W_1, W_2` (and `W_g` for swiglu).
fn ffn_matrices(m: &ModelConfig) -> f64 {
    if m.act == Activation::Swiglu {
        3.0
    } else {
        2.0
    }
}

/// Number of weights in one block.
pub fn params_per_block(m: &ModelConfig) -> f64 {
    let d = m.width as f64;
    let attn = 4.0 * d * d;
    if !m.definition().uses_ffn() {
        return attn;
    }
    let one = ffn_matrices(m) * d * m.d_ff as f64;
    attn + match m.moe {
        None => one,
        Some(x) => x.experts as f64 * one + d * x.experts as f64,
    }
}

/// Values recorded on one block's tape (activations and caches), roughly.
pub fn tape_values_per_block(m: &ModelConfig) -> f64 {
    let (n, d) = (m.tokens as f64, m.width as f64);
    let hidden = m.moe.map_or(1.0, |x| x.top_k as f64) * 3.0 * n * m.d_ff as f64;
    16.0 * n * d + m.heads as f64 * n * n + hidden
}

/// Estimated peak bytes of one seed's run when it recomputes: the stored block boundaries,
/// the weights and gradients of the block in use, the weights of the blocks drawn ahead of
/// it (see [`crate::stack::run_prefetched`]), and one block's recorded intermediates.
pub fn bytes_per_seed(cfg: &SimConfig) -> f64 {
    let m = &cfg.model;
    let b = cfg.precision.bytes() as f64;
    let (n, d) = (m.tokens as f64, m.width as f64);
    let boundaries = (m.depth as f64 + 1.0) * n * d;
    let weights = (3 + AHEAD + 1) as f64 * params_per_block(m);
    b * (boundaries + weights + tape_values_per_block(m))
}

/// Bytes a seed holds when it keeps every block's weights and intermediates.
pub fn keep_bytes(cfg: &SimConfig) -> f64 {
    let m = &cfg.model;
    let per_block = params_per_block(m) + tape_values_per_block(m);
    m.depth as f64 * per_block * cfg.precision.bytes() as f64
}

/// [`Memory::Keep`] when a seed's weights and intermediates fit in `budget_bytes`.
pub fn memory_mode(cfg: &SimConfig, budget_bytes: f64) -> Memory {
    if keep_bytes(cfg) <= budget_bytes {
        Memory::Keep
    } else {
        Memory::Recompute
    }
}

/// An error when one seed of `cfg` would need more than [`MAX_BYTES`].
pub fn check_fits(cfg: &SimConfig) -> Result<(), ConfigError> {
    let need = bytes_per_seed(cfg);
    if need > MAX_BYTES || !need.is_finite() {
        return Err(ConfigError::invalid(
            "depth/width/tokens/d-ff",
            format!(
                "this stack needs about {:.1} GiB per seed, more than the {:.0} GiB limit",
                need / GIB,
                MAX_BYTES / GIB
            ),
        ));
    }
    Ok(())
}

/// FLOPs of one block's forward pass (matrix products only).
pub fn block_forward_flops(m: &ModelConfig) -> f64 {
    let (n, d, f) = (m.tokens as f64, m.width as f64, m.d_ff as f64);
    let attn = 8.0 * n * d * d + 4.0 * n * n * d;
    if !m.definition().uses_ffn() {
        return attn;
    }
    let one = 2.0 * ffn_matrices(m) * n * d * f;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Placement;

    #[test]
    fn reference_block_flops() {
        let c = SimConfig::builder()
            .placement(Placement::Span)
            .build()
            .unwrap();
        let m = c.model();
        // n = 64, d = 256, d_ff = 1024: 8·64·256² + 4·64²·256 + 2·2·64·256·1024.
        let want = 8.0 * 64.0 * 65536.0 + 4.0 * 4096.0 * 256.0 + 4.0 * 64.0 * 256.0 * 1024.0;
        assert_eq!(block_forward_flops(m), want);
        let (model, exec) = seed_flops(m, Memory::Recompute);
        assert_eq!(exec - model, 64.0 * want);
        assert_eq!(seed_flops(m, Memory::Keep).0, seed_flops(m, Memory::Keep).1);
        assert_eq!(params_per_block(m), 4.0 * 65536.0 + 2.0 * 256.0 * 1024.0);
        // Without weight gradients: 8·64·256² + 8·64²·256 for attention, the feed-forward
        // input products as in the forward pass.
        let backward = 33_554_432.0 + 8_388_608.0 + 67_108_864.0;
        assert_eq!(block_input_backward_flops(m), backward);
        let (kept, _) = seed_flops(m, Memory::Keep);
        let (inputs_only, _) = seed_flops_with(m, Memory::Keep, Grads::Inputs);
        // Both totals hold the metrics' 4n³/3 terms, which are not integers: the difference
        // is exact up to a few roundings of the 6.6e9 totals, ε · 6.6e9 ≈ 1.5e-6 each.
        let skipped = m.depth as f64 * (2.0 * want - backward);
        assert!(
            (kept - inputs_only - skipped).abs() < 1e-5,
            "{kept} {inputs_only}"
        );
    }

    #[test]
    fn absurd_sizes_are_refused_without_overflow() {
        let c = SimConfig::builder()
            .placement(Placement::Pre)
            .width(1 << 40)
            .heads(1)
            .build()
            .unwrap();
        let e = check_fits(&c).unwrap_err().to_string();
        assert!(e.contains("GiB per seed"), "{e}");
        let ok = SimConfig::builder()
            .placement(Placement::Pre)
            .build()
            .unwrap();
        assert!(check_fits(&ok).is_ok());
        assert_eq!(memory_mode(&ok, 0.0), Memory::Recompute);
        assert_eq!(memory_mode(&ok, f64::INFINITY), Memory::Keep);
    }
}
