//! Theory against independent reference values and against simulation.

use spannorm::check::{Group, Perturbation, Preset, Runner, Status};
use spannorm::config::{RawConfig, SimConfig};
use spannorm::result::RunResult;
use spannorm::simulate::simulate;
use spannorm::summary::Series;
use spannorm::theory::predict;

fn cfg(placement: &str, f: impl FnOnce(&mut RawConfig)) -> SimConfig {
    let mut r = RawConfig {
        placement: Some(placement.parse().unwrap()),
        init: Some("zero-query".parse().unwrap()),
        ..Default::default()
    };
    f(&mut r);
    r.resolve().unwrap().remove(0)
}

/// Seeds of the simulation comparisons.
const SEEDS: usize = 16;

/// A 16-seed simulation of `placement` (n = 8, H = 2) and its prediction.
fn sim_and_theory(
    placement: &str,
    width: usize,
    depth: usize,
    tweak: impl FnOnce(&mut RawConfig),
) -> (SimConfig, RunResult, RunResult) {
    let c = cfg(placement, |r| {
        r.width = Some(width);
        r.tokens = Some(8);
        r.depth = Some(depth);
        r.seeds = Some(SEEDS);
        r.heads = Some(2);
        tweak(r);
    });
    let sim = simulate(std::slice::from_ref(&c), &Default::default())
        .unwrap()
        .remove(0);
    let th = predict(&c).unwrap();
    (c, sim, th)
}

/// Seed mean and its standard error at index `i`; every seed must have reached it.
fn mean_se(s: &Series, i: usize) -> (f64, f64) {
    assert_eq!(s.n[i], SEEDS, "a seed diverged");
    let half = (s.hi[i].unwrap() - s.lo[i].unwrap()) / 2.0;
    (s.mean[i].unwrap(), half / spannorm::summary::t975(SEEDS))
}

/// The radial part (`η`, `μ`, `μ_x`, ρ, κ) of every boundary of seed `seed` of `c` (`f64`,
/// recomputing stack).
fn radial_rows(c: &SimConfig, seed: u64) -> Vec<spannorm::metrics::Radial> {
    use spannorm::stack::{self, Memory};
    let m = c.model();
    let mut obs = spannorm::metrics::RadialRecorder::default();
    let inputs = stack::inputs::<f64>(m, c.seed(), seed);
    let weights = |l| stack::block_weights(m, c.seed(), seed, l);
    stack::run(m, weights, inputs, &mut obs, Memory::Recompute).unwrap();
    obs.rows.into_iter().map(Option::unwrap).collect()
}

/// The seed mean of per-seed `gaps` and what it may be: the 95% t half-width
/// (`summary::mean_ci`) plus `bias`.
fn gap_and_tolerance(gaps: &[f64], bias: f64) -> (f64, f64) {
    let (mean, half) = spannorm::summary::mean_ci(gaps).unwrap();
    (mean, half.unwrap() + bias)
}

/// What the seed mean of `log10 grad` is compared with, and the bias allowance: the
/// prediction `p0` (½ log10 E G) less the log-normal correction `ln 10 · s²` (theory.md
/// §5.5), and `2·m/d` in `ln G` for `m` norms and sublayers above.
fn log_grad_target(p0: f64, se: f64, m: usize, d: usize) -> (f64, f64) {
    let sd = se * (SEEDS as f64).sqrt();
    let ln10 = std::f64::consts::LN_10;
    (
        p0 - ln10 * sd * sd,
        2.0 * m as f64 / d as f64 / (2.0 * ln10),
    )
}

/// Golden values of analysis/theory-checks.md §2 (an independent implementation of the
/// d = ∞ recursions, n = 64, ρ0 = 0.2, L = 64). The theory module keeps O(1/d) terms, so it
/// runs at d = 2^30, where (2L + 1)/d < 1e-6 relative; the references have 6 digits.
#[test]
fn golden_recursion_values() {
    // The memory guard is about simulation; the theory is O(n²) at any width.
    let wide = |p: &str| cfg(p, |r| r.width = Some(1 << 30));
    let cases: [(&str, &str, usize, f64); 8] = [
        ("pre", "q", 64, 89.2479),
        ("pre", "rho", 64, 0.955871),
        ("pre", "G", 0, 0.116528),
        ("span", "rho", 64, 0.350322),
        ("span", "G", 0, 0.876462),
        ("span-outer", "q", 64, 27.2042),
        ("peri", "G", 0, 0.121241),
        ("b2t", "G", 0, 0.0376282),
    ];
    for (p, what, l, want) in cases {
        let r = predict(&wide(p)).unwrap();
        let got = match what {
            "q" => r.boundaries.q.mean[l].unwrap(),
            "rho" => r.boundaries.token_cos.mean[l].unwrap(),
            _ => 10f64.powf(2.0 * r.boundaries.log10_grad.mean[l].unwrap()),
        };
        assert!(
            ((got - want) / want).abs() < 2e-5,
            "{p} {what}[{l}]: {got} vs {want}"
        );
    }
}

/// Mean-field predictions against simulation at two widths, for every placement and for the
/// sublayer variants (causal mask, gelu, swiglu, rmsnorm, xavier, mixture of experts). At the last layer: `q`
/// (relative) and `token_cos` (absolute) within 4 standard errors over 16 seeds plus the
/// O(1/d) bias bound 2·2/d (theory.md §5.3); at the input: `log10 grad` within 4 standard
/// errors plus the gradient bias 2·m/d in ln G over the m = 2L + 1 norms and sublayers above,
/// after the log-normal correction `ln 10 · s²` (theory.md §5.5).
#[test]
fn theory_matches_simulation_at_two_widths() {
    type Tweak = fn(&mut RawConfig);
    let variants: [(&str, Tweak); 18] = [
        ("pre", |_| {}),
        ("post", |_| {}),
        ("span", |_| {}),
        ("span-outer", |_| {}),
        ("peri", |_| {}),
        ("b2t", |_| {}),
        ("attn-skip", |_| {}),
        ("pre", |r| r.mask = Some("causal".parse().unwrap())),
        ("span", |r| r.act = Some("gelu".parse().unwrap())),
        ("post", |r| r.act = Some("swiglu".parse().unwrap())),
        ("lns", |r| r.norm = Some("rmsnorm".parse().unwrap())),
        // Softmax with the causal mask: Gaussian-logit Monte Carlo (theory.md §2.5.5).
        ("pre", |r| {
            r.init = Some("fan-in".parse().unwrap());
            r.mask = Some("causal".parse().unwrap());
        }),
        ("post", |r| {
            r.init = Some("fan-in".parse().unwrap());
            r.mask = Some("causal".parse().unwrap());
        }),
        // Gains g_q g_k = σ_w⁴ ≠ 1: the logits carry them once (Cov S = g_q g_k K ⊗ K).
        ("post", |r| {
            r.init = Some("fan-in".parse().unwrap());
            r.mask = Some("causal".parse().unwrap());
            r.sigma_w = Some(0.8);
        }),
        // Mixture of experts: gate statistics by Monte Carlo (theory.md §2.4).
        ("pre", |r| {
            r.moe_experts = Some(8);
            r.moe_top_k = Some(2);
        }),
        ("post", |r| {
            r.moe_experts = Some(4);
            r.moe_top_k = Some(1);
            r.act = Some("gelu".parse().unwrap());
        }),
        ("span", |r| {
            r.moe_experts = Some(6);
            r.moe_top_k = Some(3);
            r.act = Some("swiglu".parse().unwrap());
        }),
        // Softmax attention (xavier) needs n ≥ e^{4σ_s²} ≈ 25 at q = 1, ρ = 0.2.
        ("deepnorm", |r| {
            r.init = Some("xavier".parse().unwrap());
            r.tokens = Some(32);
        }),
    ];
    let depth = 6;
    for width in [64, 256] {
        for (p, tweak) in variants {
            let (c, sim, th) = sim_and_theory(p, width, depth, tweak);
            let d = width as f64;
            for (name, s, pr, l, kind) in [
                ("q", &sim.boundaries.q, &th.boundaries.q, depth, 0),
                (
                    "token_cos",
                    &sim.boundaries.token_cos,
                    &th.boundaries.token_cos,
                    depth,
                    1,
                ),
                (
                    "log10_grad",
                    &sim.boundaries.log10_grad,
                    &th.boundaries.log10_grad,
                    0,
                    2,
                ),
            ] {
                let (m, se) = mean_se(s, l);
                let p0 = pr.mean[l].unwrap();
                let (pred, bias) = match kind {
                    0 => (p0, 4.0 / d * p0.abs()),
                    1 => (p0, 4.0 / d),
                    _ => log_grad_target(p0, se, 2 * depth + 1, width),
                };
                assert!(
                    (m - pred).abs() <= 4.0 * se + bias,
                    "{p} {:?} d={width} {name}: simulated {m} ± {se} vs predicted {pred}",
                    c.to_raw()
                );
            }
        }
    }
}

#[test]
fn unsupported_configurations_are_errors_not_numbers() {
    let moe = cfg("pre", |r| {
        r.moe_experts = Some(4);
        r.mask = Some("causal".parse().unwrap());
    });
    let e = predict(&moe).unwrap_err().to_string();
    assert!(e.contains("mixture-of-experts with the causal mask"), "{e}");
    // Causal softmax: refused once a row's logit variance passes 1 (attn-skip's q grows).
    let causal_softmax = cfg("attn-skip", |r| {
        r.init = Some("fan-in".parse().unwrap());
        r.mask = Some("causal".parse().unwrap());
        r.depth = Some(16);
    });
    let e = predict(&causal_softmax).unwrap_err().to_string();
    assert!(e.contains("near-uniform"), "{e}");
    // attn-skip's q grows geometrically, so softmax logits leave the near-uniform regime.
    let skip = cfg("attn-skip", |r| {
        r.init = Some("fan-in".parse().unwrap());
        r.depth = Some(16);
    });
    let e = predict(&skip).unwrap_err().to_string();
    assert!(e.contains("near-uniform"), "{e}");
}

/// The check can fail: with the feed-forward gain halved in the theory, predictions that
/// depend on it must turn FAIL.
#[test]
fn a_wrong_gain_fails_the_check() {
    let quiet = |_: &str| {};
    let runner = Runner::new(Perturbation::FfnGain(0.5), &quiet);
    let claims = spannorm::check::claims(Preset::Ci, &[Group::Curves]).unwrap();
    let v = spannorm::check::run(&claims, &runner);
    let failed: Vec<&str> = v
        .iter()
        .filter(|v| v.status == Status::Fail)
        .map(|v| v.name.as_str())
        .collect();
    assert!(failed.contains(&"curve pre q"), "{failed:?}");
    assert!(failed.len() >= 5, "{failed:?}");
}

/// Every weight gradient the theory predicts (`E‖∂ℓ/∂W‖²` per block) against simulation at
/// two widths, including the mixture-of-experts router (whose gradient is the router path of
/// theory.md §2.4 alone) and experts. Per block `l`, the seed mean of `log10 ‖∂ℓ/∂W‖` must be
/// within 4 standard errors (16 seeds) plus the gradient bias `2·m/d` in `ln G`, with
/// `m = 2(L − l) + 3` norms and sublayers between the loss and the weight, of
/// `½ log10 E‖·‖² − ln 10 · s²` (log-normal correction, theory.md §5.5).
#[test]
fn weight_gradients_match_simulation_at_two_widths() {
    type Tweak = fn(&mut RawConfig);
    let variants: [(&str, Tweak); 6] = [
        ("pre", |_| {}),
        ("pre", |r| r.mask = Some("causal".parse().unwrap())),
        ("span", |r| {
            r.init = Some("fan-in".parse().unwrap());
            r.mask = Some("causal".parse().unwrap());
        }),
        ("post", |r| r.act = Some("swiglu".parse().unwrap())),
        ("pre", |r| {
            r.moe_experts = Some(8);
            r.moe_top_k = Some(2);
        }),
        ("span", |r| {
            r.moe_experts = Some(6);
            r.moe_top_k = Some(3);
            r.act = Some("gelu".parse().unwrap());
        }),
    ];
    let depth = 3;
    let mut compared = 0;
    for width in [64, 256] {
        for (p, tweak) in variants {
            let (c, sim, th) = sim_and_theory(p, width, depth, tweak);
            for (name, pred) in &th.blocks.log10_param_grad {
                let s = &sim.blocks.log10_param_grad[name];
                for b in 0..depth {
                    let Some(p0) = pred.mean[b] else { continue };
                    let (m, se) = mean_se(s, b);
                    let (pred, bias) = log_grad_target(p0, se, 2 * (depth - b) + 1, width);
                    assert!(
                        (m - pred).abs() <= 4.0 * se + bias,
                        "{p} {:?} d={width} {name} block {}: simulated {m} ± {se} vs predicted {pred}",
                        c.to_raw(),
                        b + 1
                    );
                    compared += 1;
                }
            }
        }
    }
    // w_k's gradient is exactly 0 under zero-query (no prediction); every other weight of
    // every block has one (softmax: w_k too).
    assert_eq!(compared, 2 * 3 * (5 + 5 + 6 + 6 + 6 + 6), "{compared}");
}

/// The mixture-of-experts sublayer's own gains, where nothing dilutes them: in `post` (α = 1)
/// every block's `q` of the sublayer output is `c_F S_2 q` (forward, gates `M`), and each
/// block multiplies the gradient by `(1 + γ_A)(1 + γ_F S_2 + σ_w² c_F q R_2)/…`, where the
/// router path `R_2` is about a quarter of the sublayer's backward gain at `k = 2`
/// (theory.md §2.4). Forward: every block within 4 standard errors plus `4/d` relative;
/// backward: `log10 grad_0` as in the test above (bias `2(2L + 1)/d` in `ln G`). The test
/// has teeth: dropping the router path moves `log10 grad_0` at d = 512 from −0.12 to −0.19
/// (tolerance 0.06), and gates 10% too large move block 1's q from 0.27 to 0.30 (0.03).
#[test]
fn mixture_of_experts_gains_match_simulation_at_two_widths() {
    let depth = 6;
    for width in [128, 512] {
        let (_, sim, th) = sim_and_theory("post", width, depth, |r| {
            r.moe_experts = Some(8);
            // Fan-in gains do not depend on d_ff (theory.md §2.3); a narrow expert is cheap.
            r.d_ff = Some(128);
            r.moe_top_k = Some(2);
        });
        let d = width as f64;
        let (s, p) = (&sim.blocks.branch_q.ffn, &th.blocks.branch_q.ffn);
        for b in 0..depth {
            let (m, se) = mean_se(s, b);
            let pred = p.mean[b].unwrap();
            assert!(
                (m - pred).abs() <= 4.0 * se + 4.0 / d * pred,
                "d={width} block {}: moe output q simulated {m} ± {se} vs predicted {pred}",
                b + 1
            );
        }
        let (m, se) = mean_se(&sim.boundaries.log10_grad, 0);
        let p0 = th.boundaries.log10_grad.mean[0].unwrap();
        let (pred, bias) = log_grad_target(p0, se, 2 * depth + 1, width);
        assert!(
            (m - pred).abs() <= 4.0 * se + bias,
            "d={width}: log10 grad_0 simulated {m} ± {se} vs predicted {pred} (bias {bias})"
        );
    }
}

/// The radial fraction `η` of the gradient at post's and span's block outputs against
/// `theory::eta::block_output`, at d = 64 and 256 (n = 8, L = 8, zero-query, 16 seeds).
/// Per seed, the layer mean of `η_measured − η_derived(ρ_l, κ_l)`; its seed mean must lie
/// within the t interval plus the derivation's `O(1/d)` relative bias (`C_B/d` of the
/// prediction, one norm: `check::tol`). The rule the theory used before (`η = 0` on trunk
/// norms) and, for post, the small-`α` form `α²(m_ρ + m_κ − 2 m_ρ m_κ)` fail the same test.
#[test]
fn trunk_eta_matches_simulation_at_two_widths() {
    use spannorm::check::tol::{self, Kind};
    use spannorm::theory::eta::{block_output, leading_order};
    let (depth, n) = (8, 8);
    for (placement, width) in [("post", 64), ("post", 256), ("span", 64), ("span", 256)] {
        let c = cfg(placement, |r| {
            r.width = Some(width);
            r.tokens = Some(n);
            r.depth = Some(depth);
            r.heads = Some(1);
            r.norm = Some("rmsnorm".parse().unwrap());
        });
        let b = c.model().scale().alpha(1, depth).powi(2);
        // Per seed: layer means of (measured, derived, small-α form).
        let mut per_seed = Vec::new();
        for seed in 0..SEEDS as u64 {
            let (mut meas, mut der, mut lead) = (0.0, 0.0, 0.0);
            for r in &radial_rows(&c, seed)[1..depth] {
                meas += r.eta;
                der += block_output(r.rho, r.kappa, n, b);
                lead += leading_order(r.rho, r.kappa, n, b);
            }
            let k = (depth - 1) as f64;
            per_seed.push((meas / k, der / k, lead / k));
        }
        let judge = |pred: &dyn Fn(&(f64, f64, f64)) -> f64| {
            let gaps: Vec<f64> = per_seed.iter().map(|s| s.0 - pred(s)).collect();
            let p = per_seed.iter().map(pred).sum::<f64>() / SEEDS as f64;
            gap_and_tolerance(&gaps, tol::bias(Kind::Relative, 1.0, width, p))
        };
        let (gap, tol) = judge(&|s| s.1);
        assert!(
            gap.abs() <= tol,
            "{placement} d={width}: η measured − derived = {gap:.5}, tolerance {tol:.5}"
        );
        let (gap0, tol0) = judge(&|_| 0.0);
        assert!(
            gap0.abs() > tol0,
            "{placement} d={width}: η = 0 not refuted ({gap0:.5} ≤ {tol0:.5})"
        );
        if placement == "post" {
            let (gl, tl) = judge(&|s| s.2);
            assert!(
                gl.abs() > tl,
                "post d={width}: small-α form not refuted ({gl:.5} ≤ {tl:.5})"
            );
        }
        eprintln!("{placement} d={width}: gap {gap:+.5} (tol {tol:.5}), η=0 gap {gap0:.5} (tol {tol0:.5})");
    }
}

/// The tape applies §2.10's derived `η` at a trunk-normalized block's output: with
/// `Trunk::Mixing { b }` a `post` block's input gradient kernel and every weight gradient are
/// the `η = 0` rule's (`Trunk::Orthogonal`) times `1 − η/d`, `η = block_output(ρ, κ, n, b)` at
/// the output's token correlation `ρ` and the incoming gradient's `κ` (exact: the rest of the
/// backward pass is linear in the gradient). And which rule `predict` chooses per placement
/// and attention.
#[test]
fn the_tape_applies_the_derived_eta_at_block_outputs() {
    use spannorm::theory::eta::block_output;
    use spannorm::theory::tape::{TheoryTape, Trunk};
    let (n, d) = (8, 64);
    let c = cfg("post", |r| {
        r.width = Some(d);
        r.tokens = Some(n);
        r.depth = Some(4);
        r.heads = Some(1);
        r.rho0 = Some(0.3);
    });
    let m = c.model();
    let ctx = spannorm::theory::context(m).unwrap();
    let k0 = spannorm::theory::input_kernel(m);
    // An incoming gradient with token correlation 0.6.
    let gamma = ndarray::Array2::from_shape_fn((n, n), |(i, j)| if i == j { 1.0 } else { 0.6 });
    let corr = |k: &ndarray::Array2<f64>| {
        let diag = k.diag().sum();
        (k.sum() - diag) / (n - 1) as f64 / diag
    };
    let b = 0.7;
    let run = |trunk: Trunk| {
        let (mut t, x) = TheoryTape::new(&ctx, k0.clone(), trunk, false);
        let out = m.definition().block(&mut t, x, &m.block_ctx(1));
        let rho = corr(&t.kernel(out));
        let (g, params, _) = t.backward(out, gamma.clone(), 1.0);
        (rho, g, params)
    };
    let (rho, g0, p0) = run(Trunk::Orthogonal);
    let (_, g1, p1) = run(Trunk::Mixing { b });
    let eta = block_output(rho, 0.6, n, b);
    assert!(eta > 0.05, "η = {eta} too small to show anything");
    let want = 1.0 - eta / d as f64;
    let ratio = g1.diag().sum() / g0.diag().sum();
    assert!(
        (ratio - want).abs() < 1e-12,
        "gradient ratio {ratio} vs 1 − η/d = {want}"
    );
    for ((w, a), (_, b)) in p0.iter().zip(&p1) {
        let (a, b) = (a.unwrap(), b.unwrap());
        if a == 0.0 {
            // W_q, W_k under zero-query attention: no gradient either way.
            assert_eq!(b, 0.0, "{w}");
            continue;
        }
        assert!((b / a - want).abs() < 1e-12, "{w}: {} vs {want}", b / a);
    }

    // The rule `predict` takes per block: derived below bidirectional attention (b = α² g_v
    // g_o / w² from the block above), η = 0 under the causal mask (not derived), η = 1 below
    // a block that is not scale-invariant.
    let rule = |placement: &str, tweak: &dyn Fn(&mut RawConfig), l: usize| {
        let c = cfg(placement, |r| {
            r.depth = Some(4);
            tweak(r)
        });
        let m = c.model();
        let ctx = spannorm::theory::context(m).unwrap();
        spannorm::theory::trunk_rule(m, &ctx, l, &m.block_ctx(l + 1))
    };
    let none = |_: &mut RawConfig| {};
    let b_of = |placement: &str, l: usize| match rule(placement, &none, l) {
        Trunk::Mixing { b } => b,
        r => panic!("{placement} block {l}: {r:?}, not derived"),
    };
    let close = |got: f64, want: f64| (got / want - 1.0).abs() < 1e-12;
    assert!(close(b_of("post", 1), 1.0));
    // span at sqrt-depth: α² = 1/(2L).
    assert!(close(b_of("span", 2), 1.0 / 8.0));
    // deepnorm: α = 1, w² = (2L)^(1/2), g_v g_o = β⁴ = (8L)^(-1).
    let b = b_of("deepnorm", 1);
    assert!(close(b, 1.0 / (32.0 * 8f64.sqrt())), "deepnorm b = {b}");
    let causal = |r: &mut RawConfig| r.mask = Some("causal".parse().unwrap());
    assert_eq!(rule("post", &causal, 1), Trunk::Orthogonal);
    // Softmax: the same formula as an approximation (theory.md §2.10's measured table).
    let softmax = |r: &mut RawConfig| r.init = Some("fan-in".parse().unwrap());
    assert!(matches!(rule("post", &softmax, 1), Trunk::Mixing { .. }));
    assert_eq!(rule("pre", &none, 1), Trunk::Independent);
    assert_eq!(rule("b2t", &none, 1), Trunk::Independent);
    // The top block: its output gradient is the loss's (the tape's top-block flag), its
    // mid-block norm orthogonal.
    assert_eq!(rule("post", &none, 4), Trunk::Orthogonal);
}

/// The gradient's mean fraction `μ_l` (theory.md §2.2: its second moment along the feature
/// mean, in units of an isotropic gradient's; a layernorm's Jacobian removes `μ/d`) against
/// `theory::mean_fractions`, layernorm, at d = 64 and 256 (n = 8, L = 8, zero-query,
/// 64 seeds). Per seed, the mean over boundaries of `μ_measured − μ_predicted`; its seed
/// mean must lie within the t interval plus the `O(1/d)` relative bias of one norm
/// (`check::tol`) and 1e-12 of rounding. `pre` has `μ = 0` exactly (every path to a boundary
/// passes a layernorm's backward pass); for `post` and `span` the rules "isotropic" (`μ = 1`,
/// what the tape assumed before) and "centred" (`μ = 0`) fail the same test.
#[test]
fn gradient_mean_fraction_matches_simulation_at_two_widths() {
    use spannorm::check::tol::{self, Kind};
    // μ of one token is one squared projection of its gradient: noisy, so 64 seeds.
    let (depth, n, seeds) = (8, 8, 64);
    for placement in ["post", "span", "pre"] {
        for width in [64, 256] {
            let c = cfg(placement, |r| {
                r.width = Some(width);
                r.tokens = Some(n);
                r.depth = Some(depth);
                r.heads = Some(2);
            });
            let pred = spannorm::theory::mean_fractions(&c).unwrap();
            let layer_mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let grad_pred: Vec<f64> = pred.gradient.iter().map(|m| m.unwrap()).collect();
            let (pred_g, pred_x) = (layer_mean(&grad_pred), layer_mean(&pred.value));
            let per_seed: Vec<(f64, f64)> = (0..seeds as u64)
                .map(|seed| {
                    let rows = radial_rows(&c, seed);
                    let mu: Vec<f64> = rows.iter().map(|r| r.mu).collect();
                    let mu_x: Vec<f64> = rows.iter().map(|r| r.mu_x).collect();
                    (layer_mean(&mu), layer_mean(&mu_x))
                })
                .collect();
            let judge = |p: f64, which: fn(&(f64, f64)) -> f64| {
                let gaps: Vec<f64> = per_seed.iter().map(|s| which(s) - p).collect();
                gap_and_tolerance(&gaps, tol::bias(Kind::Relative, 1.0, width, p) + 1e-12)
            };
            type Pick = fn(&(f64, f64)) -> f64;
            let (grad, value): (Pick, Pick) = (|s| s.0, |s| s.1);
            for (what, p, which) in [("μ", pred_g, grad), ("μ_x", pred_x, value)] {
                let (gap, tol) = judge(p, which);
                eprintln!(
                    "{placement} d={width}: {what} predicted {p:.4}, gap {gap:+.5} (tol {tol:.5})"
                );
                assert!(
                    gap.abs() <= tol,
                    "{placement} d={width}: {what} measured − predicted = {gap:.5}, tolerance {tol:.5}"
                );
            }
            if placement != "pre" {
                for rule in [0.0, 1.0] {
                    let (g, t) = judge(rule, grad);
                    assert!(g.abs() > t, "{placement} d={width}: μ = {rule} not refuted");
                }
            }
        }
    }
}
