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
use spannorm::normop::{self, NormKind};
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

#[test]
fn norm_functions() {
    for kind in [
        NormKind::Layernorm,
        NormKind::Rmsnorm,
        NormKind::Dyt,
        NormKind::L2,
    ] {
        for gain in [1.0, 0.37] {
            let mut x = rand(1, 5, 8);
            let r = rand(2, 5, 8);
            let f = |x: &Array2<f64>| normop::forward(kind, Norm::Rmsnorm, 0.8, x.view(), gain);
            let (_, cache) = f(&x);
            let g = normop::backward(&cache, r.view());
            let e = rel_err(&mut x, &g, &mut |x| proj(&r, &f(x).0));
            assert!(e < TOL, "{kind} gain {gain}: {e:e}");
        }
    }
}

/// The losses' gradients with respect to the stack output.
#[test]
fn losses() {
    use spannorm::loss::{self, Unembedding};
    let r = rand(2, 5, 8);
    let mut y = rand(1, 5, 8);
    let c = 1.0 / 40f64.sqrt();
    let (_, g) = loss::mean_token(&r, &y, c);
    let e = rel_err(&mut y, &g, &mut |y| loss::mean_token(&r, y, c).0);
    assert!(e < TOL, "mean-token: {e:e}");
    let emb = Unembedding {
        u: rand(3, 8, 11) * (1.0 / 8f64.sqrt()),
        targets: vec![0, 3, 10, 3, 7],
    };
    let (_, g) = loss::cross_entropy(&emb, &y);
    let e = rel_err(&mut y, &g, &mut |y| loss::cross_entropy(&emb, y).0);
    assert!(e < TOL, "cross-entropy: {e:e}");
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

/// Attention with norms inside (QK-norm over the full width or per head, nGPT's per-head unit
/// length, HybridNorm's V-norm, Sub-LN's norm before `W_o`).
#[test]
fn attention_with_inner_norms() {
    use spannorm::sublayer::{self, AttnOptions, Inner};
    let options = [
        (Inner::Norm, Inner::None, Inner::None),
        (Inner::HeadNorm, Inner::HeadNorm, Inner::None),
        (Inner::HeadL2, Inner::None, Inner::None),
        (Inner::None, Inner::None, Inner::Norm),
        (Inner::Norm, Inner::HeadNorm, Inner::HeadNorm),
    ];
    for (qk, v, out) in options {
        let opts = AttnOptions { qk, v, out };
        for norm in [Norm::Layernorm, Norm::Rmsnorm] {
            for (mask, zero_query) in [
                (Mask::Bidirectional, false),
                (Mask::Causal, false),
                (Mask::Bidirectional, true),
            ] {
                let what = format!("{opts:?} {norm} {mask} zero-query {zero_query}");
                let mut x = rand(3, 5, 8);
                let r = rand(4, 5, 8);
                let mut w = attn_weights(zero_query);
                let fwd = |w: &AttnWeights<f64>, x: &Array2<f64>| {
                    sublayer::attn_forward(w, opts, norm, x.view(), 2, mask)
                };
                let (_, cache) = fwd(&w, &x);
                let (gx, gw) = sublayer::attn_backward(&w, &cache, x.view(), r.view(), 2);
                let e = rel_err(&mut x, &gx, &mut |x| proj(&r, &fwd(&w, x).0));
                assert!(e < TOL, "{what}: input {e:e}");
                for (k, g) in gw.each().into_iter().enumerate() {
                    // Under zero-query, Q = 0 sits at the norm's singular point: the
                    // gradient of W_q is 1/sqrt(eps) times larger than any difference step
                    // can resolve. It is exact (the formula), but not checkable here.
                    if zero_query && qk != Inner::None && k == 0 {
                        continue;
                    }
                    let mut m = w.each()[k].clone();
                    let e = rel_err(&mut m, g, &mut |m| {
                        *w.each_mut()[k] = m.clone();
                        proj(&r, &fwd(&w, &x).0)
                    });
                    *w.each_mut()[k] = m;
                    assert!(e < TOL, "{what}: {} {e:e}", AttnWeights::<f64>::NAMES[k]);
                }
            }
        }
    }
}

/// The feed-forward network with a norm on its hidden activation (NormFormer, Sub-LN).
#[test]
fn feed_forward_with_hidden_norm() {
    use spannorm::sublayer::{self, FfnOptions, Inner};
    let opts = FfnOptions {
        hidden: Inner::Norm,
    };
    for norm in [Norm::Layernorm, Norm::Rmsnorm] {
        for act in [Activation::Relu, Activation::Gelu, Activation::Swiglu] {
            let mut x = rand(5, 5, 8);
            let r = rand(6, 5, 8);
            let mut w = ffn_weights(act, 20);
            let fwd = |w: &ffn::FfnWeights<f64>, x: &Array2<f64>| {
                sublayer::ffn_forward(w, act, opts, norm, x.view())
            };
            let (_, cache) = fwd(&w, &x);
            let (gx, gw) = sublayer::ffn_backward(&w, act, &cache, x.view(), r.view());
            let e = rel_err(&mut x, &gx, &mut |x| proj(&r, &fwd(&w, x).0));
            assert!(e < TOL, "{norm} {act} input: {e:e}");
            let grads: Vec<Array2<f64>> = gw.each().into_iter().map(|(_, g)| g.clone()).collect();
            for (k, g) in grads.iter().enumerate() {
                let mut m = w.each()[k].1.clone();
                let e = rel_err(&mut m, g, &mut |m| {
                    *w.each_mut()[k] = m.clone();
                    proj(&r, &fwd(&w, &x).0)
                });
                *w.each_mut()[k] = m;
                assert!(e < TOL, "{norm} {act} weight {k}: {e:e}");
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
    // Admin's ω are profiled once and then constants, as in a training run after its
    // profiling pass (empty for other placements).
    let om = cfg
        .definition()
        .uses_omega()
        .then(|| stack::profile_omegas(cfg, &weights, &inputs));
    let (gx0, gw) =
        stack::gradients_with_omegas(cfg, &weights, &inputs, om.clone()).expect("no divergence");
    let loss = |w: &[BlockWeights<f64>], i: &stack::Inputs<f64>| {
        stack::loss_with_omegas(cfg, w, i, om.clone())
    };
    let mut x0 = inputs.x0.clone();
    let e = rel_err(&mut x0, &gx0, &mut |x| {
        let mut i = inputs.clone();
        i.x0 = x.clone();
        loss(&weights, &i)
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
                let before = loss(&weights, &inputs);
                m.mapv_inplace(|v| v + 1e-3);
                *weights[b].matrices_mut()[k] = m.clone();
                let after = loss(&weights, &inputs);
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
                    loss(&weights, &inputs)
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
    // The placements of the block language: inner norms with rmsnorm and the causal mask,
    // ReZero and nGPT with other α, Admin with softmax, DyT with another α₀.
    check_stack(&small("olmo2", |r| {
        r.norm = Some("rmsnorm".parse().unwrap());
        r.mask = Some("causal".parse().unwrap());
    }));
    check_stack(&small("hybrid", |r| {
        r.act = Some("swiglu".parse().unwrap())
    }));
    check_stack(&small("sub-ln", |r| r.act = Some("gelu".parse().unwrap())));
    check_stack(&small("normformer", |r| {
        r.norm = Some("rmsnorm".parse().unwrap())
    }));
    check_stack(&small("rezero", |r| {
        r.scale = Some("const:0.7".parse().unwrap())
    }));
    check_stack(&small("ngpt", |r| {
        r.scale = Some("const:0.4".parse().unwrap())
    }));
    check_stack(&small("admin", |r| {
        r.init = Some("xavier".parse().unwrap())
    }));
    check_stack(&small("dyt", |r| r.dyt_alpha = Some(1.3)));
    check_stack(&small("tfixup", |r| r.depth = Some(3)));
    // The losses, through each kind of final map (x, norm(x), a formula).
    for p in ["pre", "post", "dyt"] {
        check_stack(&small(p, |r| r.loss = Some("mean-token".parse().unwrap())));
        check_stack(&small(p, |r| {
            r.loss = Some("cross-entropy".parse().unwrap());
            r.vocab = Some(7);
        }));
    }
    check_stack(&small("span", |r| {
        r.moe_experts = Some(4);
        r.moe_top_k = Some(1);
        r.act = Some("swiglu".parse().unwrap());
    }));
}

/// A 2-block stack of a formula (and final map) in the block language.
fn formula(block: &str, fin: &str, extra: impl FnOnce(&mut RawConfig)) -> ModelConfig {
    let mut raw = RawConfig {
        block: Some(block.into()),
        final_: Some(fin.into()),
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

/// Every operation of the block language in stacks: the norm functions (in blocks and as
/// the final map, with gains, closing a block), subtraction, negation, division, number
/// statements, a block whose output is a sum of three.
#[test]
fn formula_stacks() {
    let cases: [(&str, &str); 7] = [
        (
            "h = x + a*attn(dyt(x)); y = h + a*ffn(dyt(h))",
            "dyt(x)",
        ),
        (
            "h = l2norm(x + a*(l2norm(attn(x)) - x)); y = l2norm(h + a*(l2norm(ffn(sqrt(d)*h)) - h))",
            "x",
        ),
        (
            "h = x + a*attn(layernorm(x)); y = rmsnorm(h + 0.5*ffn(h))",
            "0.7*rmsnorm(x)",
        ),
        (
            "w = 1/sqrt(2); h = w*x - a*attn(x)/3; y = -h + ffn(norm(h)) + x",
            "l2norm(x)",
        ),
        ("y = 1.5*layernorm(x + a*attn(x) + ffn(x))", "x"),
        ("y = x + a*norm(attn(x)); # comment\n", "layernorm(x)"),
        ("h = dyt(x + a*attn(x)); y = dyt(h + ffn(h))", "norm(x)"),
    ];
    for (block, fin) in cases {
        check_stack(&formula(block, fin, |r| {
            r.scale = Some("const:0.6".parse().unwrap())
        }));
    }
    check_stack(&formula(
        "h = x + a*attn(dyt(x)); y = h + a*ffn(dyt(h))",
        "dyt(x)",
        |r| {
            r.dyt_alpha = Some(1.7);
            r.norm = Some("layernorm".parse().unwrap());
        },
    ));
}

trait NameStr {
    fn name_str(self) -> &'static str;
}
impl NameStr for &Placement {
    fn name_str(self) -> &'static str {
        spannorm::choice::Choice::name(*self)
    }
}
