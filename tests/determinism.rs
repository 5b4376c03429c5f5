//! A run is determined by its config and seed: the same bytes twice, and at 1 and 2 threads.

use spannorm::config::RawConfig;
use spannorm::report;
use spannorm::simulate::simulate;

fn run(threads: usize, precision: &str) -> String {
    let cfgs = RawConfig {
        placement: Some("all".parse().unwrap()),
        depth: Some(4),
        width: Some(16),
        tokens: Some(8),
        heads: Some(2),
        seeds: Some(3),
        precision: Some(precision.parse().unwrap()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let results = pool.install(|| simulate(&cfgs, &Default::default()).unwrap());
    report::to_json(&results).unwrap()
}

#[test]
fn same_bytes_at_one_and_two_threads_and_twice() {
    for precision in ["f64", "f32"] {
        let a = run(1, precision);
        let b = run(2, precision);
        let c = run(2, precision);
        assert_eq!(a, b, "{precision}: 1 vs 2 threads");
        assert_eq!(b, c, "{precision}: run twice");
    }
}

#[test]
fn keeping_or_recomputing_intermediates_gives_identical_records() {
    use spannorm::metrics::Recorder;
    use spannorm::stack::{self, Memory};
    for placement in ["span", "post", "mix"] {
        let cfg = RawConfig {
            placement: Some(placement.parse().unwrap()),
            depth: Some(6),
            width: Some(16),
            tokens: Some(8),
            heads: Some(2),
            moe_experts: Some(3),
            ..Default::default()
        }
        .resolve()
        .unwrap()
        .remove(0)
        .model()
        .clone();
        let record = |memory, prefetch: bool| {
            let mut rec = Recorder::new(cfg.depth(), &cfg.weight_names());
            let inputs = stack::inputs::<f64>(&cfg, 5, 2);
            let weights = |l| stack::block_weights(&cfg, 5, 2, l);
            if prefetch {
                stack::run_prefetched(&cfg, weights, inputs, &mut rec, memory)
            } else {
                stack::run(&cfg, weights, inputs, &mut rec, memory)
            }
            .unwrap();
            rec.record
        };
        let kept = record(Memory::Keep, false);
        assert_eq!(kept, record(Memory::Recompute, false), "{placement}");
        // Weights drawn ahead on another thread are the same weights.
        assert_eq!(kept, record(Memory::Keep, true), "{placement}");
        assert_eq!(kept, record(Memory::Recompute, true), "{placement}");
    }
}

/// The Monte Carlo parts of the theory (causal softmax, mixture-of-experts gates) sum their
/// draws in a fixed order: predictions are identical at 1 and 2 threads.
#[test]
fn theory_predictions_do_not_depend_on_threads() {
    let c = RawConfig {
        placement: Some("pre".parse().unwrap()),
        depth: Some(3),
        width: Some(64),
        tokens: Some(8),
        heads: Some(2),
        init: Some("fan-in".parse().unwrap()),
        mask: Some("causal".parse().unwrap()),
        ..Default::default()
    }
    .resolve()
    .unwrap()
    .remove(0);
    let at = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let r = pool.install(|| spannorm::theory::predict(&c).unwrap());
        spannorm::report::to_json(&[r]).unwrap()
    };
    assert_eq!(at(1), at(2));
}

/// A seed that diverges stops its run early; with weights drawn ahead on another thread,
/// that thread stops too (the run returns instead of waiting on it), and the record is
/// the one drawn without it.
#[test]
fn drawing_ahead_stops_with_a_diverging_run() {
    use spannorm::metrics::Recorder;
    use spannorm::stack::{self, Memory};
    // Block 1 outputs entries near 1e200 whose square overflows: diverged at block 1.
    let cfg = RawConfig {
        placement: Some("attn-skip".parse().unwrap()),
        scale: Some("const:1e200".parse().unwrap()),
        depth: Some(40),
        width: Some(16),
        tokens: Some(4),
        heads: Some(2),
        ..Default::default()
    }
    .resolve()
    .unwrap()
    .remove(0)
    .model()
    .clone();
    for memory in [Memory::Recompute, Memory::Keep] {
        let record = |prefetch: bool| {
            let mut rec = Recorder::new(cfg.depth(), &cfg.weight_names());
            let inputs = stack::inputs::<f64>(&cfg, 1, 0);
            let weights = |l| stack::block_weights(&cfg, 1, 0, l);
            let outcome = if prefetch {
                stack::run_prefetched(&cfg, weights, inputs, &mut rec, memory)
            } else {
                stack::run(&cfg, weights, inputs, &mut rec, memory)
            };
            (outcome.map_err(|d| d.block), rec.record)
        };
        let plain = record(false);
        assert_eq!(plain.0, Err(1), "the config must diverge at block 1");
        assert_eq!(plain, record(true), "{memory:?}");
    }
}

/// Every elementwise kernel, sum and draw gives the same bits on every instruction set the
/// machine supports (the portable path always, AVX2 + FMA and AVX-512 where present), so
/// results do not depend on the machine that computed them.
#[test]
fn every_dispatch_path_gives_identical_records() {
    use spannorm::placement::Placement;
    use spannorm::simd::{with_isa, Isa};
    use spannorm::simulate::run_seed;
    // Widths that are not multiples of the 16 partial sums, and rows shorter than 16.
    let mut cfgs = Vec::new();
    for (act, norm, mask, experts) in [
        ("relu", "layernorm", "bidirectional", None),
        ("gelu", "rmsnorm", "causal", None),
        ("swiglu", "layernorm", "causal", Some(3)),
    ] {
        // Every placement; a mixture only where there is a feed-forward sublayer.
        let placements = <Placement as spannorm::choice::Choice>::ALL
            .iter()
            .filter(|p| experts.is_none() || p.definition().is_some_and(|d| d.uses_ffn()));
        for (&placement, precision) in placements.flat_map(|p| [(p, "f64"), (p, "f32")]) {
            let resolved = RawConfig {
                placement: Some(placement.into()),
                depth: Some(3),
                width: Some(40),
                tokens: Some(12),
                heads: Some(4),
                act: Some(act.parse().unwrap()),
                norm: Some(norm.parse().unwrap()),
                mask: Some(mask.parse().unwrap()),
                moe_experts: experts,
                moe_top_k: experts.map(|_| 2),
                precision: Some(precision.parse().unwrap()),
                ..Default::default()
            }
            .resolve();
            // A mixture's experts take no inner norms (sub-ln, normformer, ...): those
            // placements are refused with a mixture, and run dense above.
            match (resolved, experts) {
                (Ok(c), _) => cfgs.extend(c),
                (Err(e), Some(_)) => assert!(e.to_string().contains("mixture"), "{e}"),
                (Err(e), None) => panic!("{placement}: {e}"),
            }
        }
    }
    assert!(cfgs.iter().filter(|c| c.model().moe().is_some()).count() >= 10);
    let records = |isa| {
        with_isa(isa, || {
            cfgs.iter().map(|c| run_seed(c, 1)).collect::<Vec<_>>()
        })
    };
    let want = records(Isa::Portable);
    for isa in Isa::supported_all() {
        let got = records(isa);
        for (c, (a, b)) in cfgs.iter().zip(want.iter().zip(&got)) {
            // Records hold f64s: equality is bit equality here (no NaN is stored).
            assert_eq!(a, b, "{isa:?}: {:?}", c.to_raw());
        }
    }
}

/// Skipping the weight gradients (as `bench --case external-f32` does) changes nothing else:
/// every other record is bit-identical, and no weight-gradient norm is recorded.
#[test]
fn inputs_only_gradients_leave_every_other_record_unchanged() {
    use spannorm::block::Grads;
    use spannorm::metrics::Recorder;
    use spannorm::stack::{self, Memory};
    for (placement, experts) in [("span", None), ("pre", Some(3)), ("attn-only", None)] {
        let cfg = RawConfig {
            placement: Some(placement.parse().unwrap()),
            depth: Some(5),
            width: Some(24),
            tokens: Some(8),
            heads: Some(2),
            moe_experts: experts,
            ..Default::default()
        }
        .resolve()
        .unwrap()
        .remove(0)
        .model()
        .clone();
        for memory in [Memory::Keep, Memory::Recompute] {
            let record = |grads| {
                let mut rec = Recorder::new(cfg.depth(), &cfg.weight_names());
                let inputs = stack::inputs::<f32>(&cfg, 3, 1);
                let weights = |l| stack::block_weights::<f32>(&cfg, 3, 1, l);
                stack::run_with(&cfg, weights, inputs, &mut rec, memory, grads).unwrap();
                rec.record
            };
            let mut all = record(Grads::All);
            let inputs_only = record(Grads::Inputs);
            assert!(all
                .log10_param_grad
                .iter()
                .all(|(_, v)| v.iter().all(Option::is_some)));
            assert!(inputs_only
                .log10_param_grad
                .iter()
                .all(|(_, v)| v.iter().all(Option::is_none)));
            for (_, v) in &mut all.log10_param_grad {
                v.iter_mut().for_each(|x| *x = None);
            }
            assert_eq!(all, inputs_only, "{placement} {memory:?}");
        }
    }
}

/// The same through `simulate` with `Options::grads`: the results have no weight-gradient
/// series, and every other series is the same, bit for bit.
#[test]
fn simulate_without_weight_gradients_has_no_param_grad_series() {
    use spannorm::block::Grads;
    use spannorm::simulate::Options;
    let cfgs = RawConfig {
        placement: Some("all".parse().unwrap()),
        depth: Some(4),
        width: Some(16),
        tokens: Some(8),
        heads: Some(2),
        seeds: Some(2),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut all = simulate(&cfgs, &Options::default()).unwrap();
    let inputs_only = simulate(
        &cfgs,
        &Options {
            grads: Grads::Inputs,
            ..Options::default()
        },
    )
    .unwrap();
    for r in &mut all {
        assert!(!r.blocks.log10_param_grad.is_empty());
        r.blocks.log10_param_grad.clear();
        r.blocks.param_grad.clear();
    }
    assert_eq!(all, inputs_only);
    for r in &inputs_only {
        assert!(r.holes().is_empty(), "{:?}", r.holes());
    }
}

/// The matrix products behind every result are, element by element, a sequential FMA chain
/// over `k` in blocks of 256, the blocks added to the output in order: what matrixmultiply's
/// AVX2 + FMA and AVX-512 kernels both compute (their `k` blocking is the same). So the
/// products, like the kernels of `simd`, do not depend on which of those two instruction
/// sets ran them. Checked on the engine's shapes, transposed operands included.
#[test]
fn matrix_products_are_sequential_fma_chains() {
    use ndarray::Array2;
    use num_traits::Float;
    use spannorm::rng::Stream;

    fn reference<T: Float>(a: &Array2<T>, b: &Array2<T>) -> Array2<T> {
        let (m, k) = a.dim();
        let n = b.ncols();
        Array2::from_shape_fn((m, n), |(i, j)| {
            let mut c = T::zero();
            for (block, start) in (0..k).step_by(256).enumerate() {
                let mut s = T::zero();
                for p in start..(start + 256).min(k) {
                    s = a[[i, p]].mul_add(b[[p, j]], s);
                }
                c = if block == 0 { s } else { c + s };
            }
            c
        })
    }
    fn draw(rows: usize, cols: usize, stream: u64) -> Array2<f64> {
        let mut v = Vec::new();
        Stream::new(11, 0, stream).normals::<f64>(&mut v, rows * cols, 1.0);
        Array2::from_shape_vec((rows, cols), v).unwrap()
    }
    if !(is_x86_feature_detected!("fma") && is_x86_feature_detected!("avx2")) {
        return; // matrixmultiply's non-fused kernels round differently, as documented
    }
    // X W_1, H W_2 (k = 1024: four blocks), X^T G (transposed operand).
    for (m, k, n) in [(64, 256, 1024), (64, 1024, 256), (13, 300, 17)] {
        let a = draw(m, k, 1);
        let b = draw(k, n, 2);
        assert_eq!(a.dot(&b), reference(&a, &b), "f64 {m}x{k}x{n}");
        let (a32, b32) = (a.mapv(|v| v as f32), b.mapv(|v| v as f32));
        assert_eq!(a32.dot(&b32), reference(&a32, &b32), "f32 {m}x{k}x{n}");
        let at = a.t().to_owned();
        let t = at.t().dot(&b);
        assert_eq!(t, reference(&a, &b), "transposed {m}x{k}x{n}");
    }
}
