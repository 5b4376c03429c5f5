//! Every backward pass against central finite differences in f64.
//!
//! Tolerance: with step `h = 1e-5`, central differences have truncation error
//! `O(h² f''') ≈ 1e-10` and rounding error `O(ε |f| / h) ≈ 1e-11` relative to the gradient,
//! so an exact backward pass gives a relative error near 1e-9; the required bound is 1e-6.
//! ReLU kinks and MoE top-k switches could spoil a difference only if a pre-activation or a
//! logit gap were within `h` of zero, which the fixed seeds below do not produce.

use ndarray::Array2;
use spannorm::attention::{self, AttnWeights, Mask};
use spannorm::block::BlockWeights;
use spannorm::config::{ModelConfig, RawConfig};
use spannorm::ffn::{self, Activation};
use spannorm::init::{gaussian, stream_rng};
use spannorm::moe;
use spannorm::norm::{self, Norm};
use spannorm::placement::Placement;
use spannorm::stack;

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;

/// ‖analytic − fd‖ / ‖fd‖ over all entries of `x`, for the scalar function `f`.
fn rel_err(
    x: &mut Array2<f64>,
    analytic: &Array2<f64>,
    f: &mut dyn FnMut(&Array2<f64>) -> f64,
) -> f64 {
    let mut num = 0.0;
    let mut den = 0.0;
    for idx in 0..x.len() {
        let orig = x.as_slice().unwrap()[idx];
        x.as_slice_mut().unwrap()[idx] = orig + H;
        let up = f(x);
        x.as_slice_mut().unwrap()[idx] = orig - H;
        let down = f(x);
        x.as_slice_mut().unwrap()[idx] = orig;
        let fd = (up - down) / (2.0 * H);
        num += (analytic.as_slice().unwrap()[idx] - fd).powi(2);
        den += fd * fd;
    }
    if den == 0.0 {
        // A gradient that is exactly zero (W_k under zero-query: Q = 0) must be zero
        // analytically too; return the absolute error.
        return num.sqrt();
    }
    (num / den).sqrt()
}

fn proj(r: &Array2<f64>, y: &Array2<f64>) -> f64 {
    (r * y).sum()
}

fn rand(stream: u64, rows: usize, cols: usize) -> Array2<f64> {
    gaussian(&mut stream_rng(7, 0, stream), rows, cols, 1.0)
}

#[test]
fn norms() {
    for norm in [Norm::Layernorm, Norm::Rmsnorm] {
        for gain in [1.0, 0.37] {
            let mut x = rand(1, 5, 8);
            let r = rand(2, 5, 8);
            let (_, cache) = norm::forward(norm, x.view(), gain);
            let g = norm::backward(norm, &cache, r.view());
            let e = rel_err(&mut x, &g, &mut |x| {
                proj(&r, &norm::forward(norm, x.view(), gain).0)
            });
            assert!(e < TOL, "{norm} gain {gain}: {e:e}");
        }
    }
}

fn attn_weights(zero_query: bool) -> AttnWeights<f64> {
    let mut w = AttnWeights {
        w_q: rand(10, 8, 8) * 0.5,
        w_k: rand(11, 8, 8) * 0.5,
        w_v: rand(12, 8, 8) * 0.5,
        w_o: rand(13, 8, 8) * 0.5,
    };
    if zero_query {
        w.w_q.fill(0.0);
    }
    w
}

#[test]
fn attention() {
    for mask in [Mask::Bidirectional, Mask::Causal] {
        for zero_query in [false, true] {
            let mut x = rand(3, 5, 8);
            let r = rand(4, 5, 8);
            let mut w = attn_weights(zero_query);
            let (_, cache) = attention::forward(&w, x.view(), 2, mask);
            let (gx, gw) = attention::backward(&w, &cache, x.view(), r.view(), 2);
            let e = rel_err(&mut x, &gx, &mut |x| {
                proj(&r, &attention::forward(&w, x.view(), 2, mask).0)
            });
            assert!(e < TOL, "{mask} zero-query {zero_query}: input {e:e}");
            for (k, g) in gw.each().into_iter().enumerate() {
                let mut m = w.each()[k].clone();
                let e = rel_err(&mut m, g, &mut |m| {
                    *w.each_mut()[k] = m.clone();
                    proj(&r, &attention::forward(&w, x.view(), 2, mask).0)
                });
                *w.each_mut()[k] = m;
                assert!(
                    e < TOL,
                    "{mask} zero-query {zero_query}: {} {e:e}",
                    AttnWeights::<f64>::NAMES[k]
                );
            }
        }
    }
}

fn ffn_weights(act: Activation, stream: u64) -> ffn::FfnWeights<f64> {
    ffn::FfnWeights {
        w_1: rand(stream, 8, 12) * 0.5,
        w_2: rand(stream + 1, 12, 8) * 0.5,
        w_g: (act == Activation::Swiglu).then(|| rand(stream + 2, 8, 12) * 0.5),
    }
}

#[test]
fn feed_forward() {
    for act in [Activation::Relu, Activation::Gelu, Activation::Swiglu] {
        let mut x = rand(5, 5, 8);
        let r = rand(6, 5, 8);
        let mut w = ffn_weights(act, 20);
        let (_, cache) = ffn::forward(&w, act, x.view());
        let (gx, gw) = ffn::backward(&w, act, &cache, x.view(), r.view());
        let e = rel_err(&mut x, &gx, &mut |x| {
            proj(&r, &ffn::forward(&w, act, x.view()).0)
        });
        assert!(e < TOL, "{act} input: {e:e}");
        let grads: Vec<Array2<f64>> = gw.each().into_iter().map(|(_, g)| g.clone()).collect();
        for (k, g) in grads.iter().enumerate() {
            let mut m = w.each()[k].1.clone();
            let e = rel_err(&mut m, g, &mut |m| {
                *w.each_mut()[k] = m.clone();
                proj(&r, &ffn::forward(&w, act, x.view()).0)
            });
            *w.each_mut()[k] = m;
            assert!(e < TOL, "{act} weight {k}: {e:e}");
        }
    }
}

#[test]
fn mixture_of_experts() {
    for act in [Activation::Relu, Activation::Swiglu] {
        let mut x = rand(7, 6, 8);
        let r = rand(8, 6, 8);
        let mut w = moe::MoeWeights {
            w_r: rand(30, 8, 3),
            experts: (0..3).map(|e| ffn_weights(act, 40 + 10 * e)).collect(),
        };
        let (_, cache) = moe::forward(&w, act, 2, x.view());
        let (gx, gw) = moe::backward(&w, act, &cache, x.view(), r.view());
        let e = rel_err(&mut x, &gx, &mut |x| {
            proj(&r, &moe::forward(&w, act, 2, x.view()).0)
        });
        assert!(e < TOL, "{act} moe input: {e:e}");
        let mut wr = w.w_r.clone();
        let e = rel_err(&mut wr, &gw.w_r, &mut |m| {
            w.w_r = m.clone();
            proj(&r, &moe::forward(&w, act, 2, x.view()).0)
        });
        w.w_r = wr;
        assert!(e < TOL, "{act} router: {e:e}");
        for ex in 0..3 {
            let grads: Vec<Array2<f64>> = gw.experts[ex]
                .each()
                .into_iter()
                .map(|(_, g)| g.clone())
                .collect();
            for (k, g) in grads.iter().enumerate() {
                let mut m = w.experts[ex].each()[k].1.clone();
                let e = rel_err(&mut m, g, &mut |m| {
                    *w.experts[ex].each_mut()[k] = m.clone();
                    proj(&r, &moe::forward(&w, act, 2, x.view()).0)
                });
                *w.experts[ex].each_mut()[k] = m;
                assert!(e < TOL, "{act} expert {ex} weight {k}: {e:e}");
            }
        }
    }
}

fn small(placement: &str, extra: impl FnOnce(&mut RawConfig)) -> ModelConfig {
    let mut raw = RawConfig {
        placement: Some(placement.parse().unwrap()),
        depth: Some(2),
        width: Some(8),
        tokens: Some(5),
        heads: Some(2),
        d_ff: Some(12),
        rho0: Some(0.3),
        ..Default::default()
    };
    extra(&mut raw);
    raw.resolve().unwrap().remove(0).model().clone()
}

/// A 2-block stack: `∂ℓ/∂X_0` and every weight of every block against differences of the
/// engine's own loss.
fn check_stack(cfg: &ModelConfig) {
    let inputs = stack::inputs::<f64>(cfg, 3, 1);
    let mut weights: Vec<BlockWeights<f64>> = (1..=cfg.depth())
        .map(|l| stack::block_weights(cfg, 3, 1, l))
        .collect();
    let (gx0, gw) = stack::gradients(cfg, &weights, &inputs).expect("no divergence");
    let mut x0 = inputs.x0.clone();
    let e = rel_err(&mut x0, &gx0, &mut |x| {
        let mut i = inputs.clone();
        i.x0 = x.clone();
        stack::loss(cfg, &weights, &i)
    });
    assert!(e < TOL, "{}: input {e:e}", cfg.placement());
    for b in 0..weights.len() {
        let grads: Vec<Array2<f64>> = gw[b]
            .clone()
            .matrices_mut()
            .into_iter()
            .map(|m| m.clone())
            .collect();
        for (k, g) in grads.iter().enumerate() {
            let mut m = weights[b].matrices_mut()[k].clone();
            let mut err = 0.0;
            if g.iter().all(|&v| v == 0.0) {
                // Only the MoE's unselected experts can have no gradient at all; check that the
                // loss really does not move.
                let before = stack::loss(cfg, &weights, &inputs);
                m.mapv_inplace(|v| v + 1e-3);
                *weights[b].matrices_mut()[k] = m.clone();
                let after = stack::loss(cfg, &weights, &inputs);
                assert_eq!(
                    before,
                    after,
                    "{}: block {} matrix {k}",
                    cfg.placement(),
                    b + 1
                );
                m.mapv_inplace(|v| v - 1e-3);
            } else {
                err = rel_err(&mut m, g, &mut |m| {
                    *weights[b].matrices_mut()[k] = m.clone();
                    stack::loss(cfg, &weights, &inputs)
                });
            }
            *weights[b].matrices_mut()[k] = m;
            assert!(
                err < TOL,
                "{}: block {} matrix {k}: {err:e}",
                cfg.placement(),
                b + 1
            );
        }
    }
}

#[test]
fn every_placement_two_blocks() {
    for p in <Placement as spannorm::choice::Choice>::ALL {
        check_stack(&small(p.name_str(), |_| {}));
    }
}

#[test]
fn stack_variants() {
    check_stack(&small("span", |r| r.inner_norm = Some(true)));
    check_stack(&small("span", |r| {
        r.scale = Some("const:0.7".parse().unwrap())
    }));
    check_stack(&small("pre", |r| r.norm = Some("rmsnorm".parse().unwrap())));
    check_stack(&small("post", |r| r.mask = Some("causal".parse().unwrap())));
    check_stack(&small("pre", |r| r.act = Some("swiglu".parse().unwrap())));
    check_stack(&small("span-outer", |r| {
        r.act = Some("gelu".parse().unwrap())
    }));
    check_stack(&small("post", |r| {
        r.init = Some("zero-query".parse().unwrap())
    }));
    check_stack(&small("pre", |r| r.init = Some("xavier".parse().unwrap())));
    check_stack(&small("lns", |r| {
        r.scale = Some("sqrt-layer".parse().unwrap())
    }));
    check_stack(&small("pre", |r| {
        r.moe_experts = Some(3);
        r.moe_top_k = Some(2);
    }));
    check_stack(&small("span", |r| {
        r.moe_experts = Some(4);
        r.moe_top_k = Some(1);
        r.act = Some("swiglu".parse().unwrap());
    }));
}

trait NameStr {
    fn name_str(self) -> &'static str;
}
impl NameStr for &Placement {
    fn name_str(self) -> &'static str {
        spannorm::choice::Choice::name(*self)
    }
}
