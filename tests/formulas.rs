//! The built-in placements as formulas: each formula emits exactly the operations of the
//! hand-written block it replaced (kept below as the reference), on the simulation tape and
//! on the theory tape, bit for bit; and a placement run by name equals the same placement
//! run from its file.

use spannorm::block::{BlockOps, Tape};
use spannorm::choice::Choice;
use spannorm::config::{PlacementSpec, RawConfig, SimConfig};
use spannorm::lang::Definition;
use spannorm::placement::{BlockCtx, Placement, FILES};
use spannorm::simulate::{simulate, Options};
use spannorm::stack;
use spannorm::theory;
use spannorm::theory::tape::{TheoryTape, Trunk};
use std::sync::Arc;

/// The block formulas as they were written by hand before the block language.
mod reference {
    use super::*;

    pub fn block<B: BlockOps>(p: Placement, t: &mut B, x: B::Node, c: &BlockCtx) -> B::Node {
        let (a, l) = (c.alpha, c.l);
        match p {
            Placement::Pre => pre_block(t, x, a, 1.0),
            Placement::Lns => pre_block(t, x, a, (l as f64).powf(-0.5)),
            Placement::Post => post_block(t, x, a),
            Placement::Mix => {
                if l <= c.depth / 4 {
                    post_block(t, x, a)
                } else {
                    pre_block(t, x, a, 1.0)
                }
            }
            Placement::Span => {
                let u = if c.inner_norm { t.norm(x) } else { x };
                let at = t.attn(u);
                let h = t.residual(x, a, at);
                let v = if c.inner_norm { t.norm(h) } else { h };
                let f = t.ffn(v);
                let o = t.residual(h, a, f);
                t.closing_norm(o)
            }
            Placement::SpanOuter => {
                let at = t.attn(x);
                let s = t.add(&[x, at]);
                let a1 = t.norm(s);
                let f = t.ffn(a1);
                let s2 = t.add(&[a1, f]);
                let b = t.closing_norm(s2);
                t.residual(x, a, b)
            }
            Placement::Deepnorm => {
                let w = (2.0 * c.depth as f64).powf(0.25);
                let at = t.attn(x);
                let wx = t.scale(w, x);
                let s = t.residual(wx, a, at);
                let h = t.norm(s);
                let f = t.ffn(h);
                let wh = t.scale(w, h);
                let s2 = t.residual(wh, a, f);
                t.closing_norm(s2)
            }
            Placement::B2t => {
                let at = t.attn(x);
                let s = t.residual(x, a, at);
                let a1 = t.norm(s);
                let f = t.ffn(a1);
                let fs = t.scale(a, f);
                let s2 = t.add(&[a1, fs, x]);
                t.closing_norm(s2)
            }
            Placement::Peri => {
                let u = t.norm(x);
                let at = t.attn(u);
                let an = t.norm(at);
                let h = t.residual(x, a, an);
                let v = t.norm(h);
                let f = t.ffn(v);
                let fnn = t.norm(f);
                t.residual(h, a, fnn)
            }
            Placement::AttnOnly => t.attn(x),
            Placement::AttnSkip => {
                let at = t.attn(x);
                t.residual(x, a, at)
            }
            other => panic!("no hand-written reference for {other}"),
        }
    }

    fn pre_block<B: BlockOps>(t: &mut B, x: B::Node, a: f64, gain: f64) -> B::Node {
        let u = t.norm_gain(x, gain);
        let at = t.attn(u);
        let h = t.residual(x, a, at);
        let v = t.norm_gain(h, gain);
        let f = t.ffn(v);
        t.residual(h, a, f)
    }

    fn post_block<B: BlockOps>(t: &mut B, x: B::Node, a: f64) -> B::Node {
        let at = t.attn(x);
        let s = t.residual(x, a, at);
        let h = t.norm(s);
        let f = t.ffn(h);
        let s2 = t.residual(h, a, f);
        t.closing_norm(s2)
    }
}

/// The placements that existed before the block language, with variants that take other
/// paths (inner norm, per-layer scale, gated and mixture feed-forward, causal softmax).
fn cases() -> Vec<RawConfig> {
    let original = &Placement::ALL[..11];
    let mut v: Vec<RawConfig> = original
        .iter()
        .map(|&p| {
            SimConfig::builder()
                .placement(p)
                .depth(8)
                .width(16)
                .tokens(6)
                .heads(2)
                .seeds(2)
                .scale(spannorm::scale::Scale::Const(0.7))
        })
        .collect();
    for r in v.iter_mut() {
        if r.placement == Some(PlacementSpec::One(Placement::AttnOnly)) {
            r.scale = None;
        }
    }
    let base = |p: Placement| {
        SimConfig::builder()
            .placement(p)
            .depth(8)
            .width(16)
            .tokens(6)
            .heads(2)
            .seeds(2)
    };
    v.push(base(Placement::Span).inner_norm(true));
    v.push(base(Placement::Lns).scale("sqrt-layer".parse::<spannorm::scale::Scale>().unwrap()));
    v.push(base(Placement::Deepnorm).act("swiglu".parse::<spannorm::ffn::Activation>().unwrap()));
    v.push(base(Placement::Post).moe_experts(3).moe_top_k(2));
    v.push(
        base(Placement::Pre)
            .mask("causal".parse::<spannorm::attention::Mask>().unwrap())
            .precision("f32".parse::<spannorm::config::Precision>().unwrap()),
    );
    v.push(base(Placement::Mix).norm("rmsnorm".parse::<spannorm::norm::Norm>().unwrap()));
    v
}

fn bits(a: &ndarray::Array2<f64>) -> Vec<u64> {
    a.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn formulas_emit_the_hand_written_operations_bit_for_bit() {
    for raw in cases() {
        let cfg = raw.build().unwrap();
        let m = cfg.model();
        let p = m.placement();
        let x0 = stack::inputs::<f64>(m, 4, 1).x0;
        let g = stack::inputs::<f64>(m, 4, 2).r;
        // Simulation: value, probes, input gradient and weight gradients of every block.
        for l in 1..=m.depth() {
            let w = stack::block_weights::<f64>(m, 4, 1, l);
            let c = m.block_ctx(l);
            let (mut t1, i1) = Tape::new(stack::sublayers(m), &w, x0.clone());
            let o1 = m.definition().block(&mut t1, i1, &c);
            let (mut t2, i2) = Tape::new(stack::sublayers(m), &w, x0.clone());
            let o2 = reference::block(p, &mut t2, i2, &c);
            assert_eq!(bits(t1.value(o1)), bits(t2.value(o2)), "{p} block {l}");
            assert_eq!(t1.probe(), t2.probe(), "{p} block {l}");
            let (gx1, gw1) = t1.backward(o1, g.clone());
            let (gx2, gw2) = t2.backward(o2, g.clone());
            assert_eq!(bits(&gx1), bits(&gx2), "{p} block {l}: input gradient");
            for ((n, a), (_, b)) in gw1.named().iter().zip(gw2.named()) {
                for (ma, mb) in a.iter().zip(&b) {
                    assert_eq!(bits(ma), bits(mb), "{p} block {l}: {n}");
                }
            }
        }
        // Theory: kernels, probes, gradient kernels and weight gradients.
        let Ok(ctx) = theory::context(m) else {
            continue;
        };
        let k0 = theory::input_kernel(m);
        let gamma = ndarray::Array2::<f64>::eye(m.tokens()) / m.tokens() as f64;
        for l in [1, m.depth() / 4, m.depth() / 4 + 1, m.depth()] {
            for (trunk, top) in [
                (Trunk::Independent, false),
                (Trunk::Orthogonal, false),
                (Trunk::Mixing { b: 0.5 }, false),
                (Trunk::Orthogonal, true),
            ] {
                let c = m.block_ctx(l.max(1));
                let (mut t1, i1) = TheoryTape::new(&ctx, k0.clone(), trunk, top);
                let o1 = m.definition().block(&mut t1, i1, &c);
                let (mut t2, i2) = TheoryTape::new(&ctx, k0.clone(), trunk, top);
                let o2 = reference::block(p, &mut t2, i2, &c);
                assert_eq!(bits(&t1.kernel(o1)), bits(&t2.kernel(o2)), "{p} theory {l}");
                assert_eq!(t1.probe(), t2.probe(), "{p} theory {l}");
                let (g1, p1, mu1) = t1.backward(o1, gamma.clone(), 0.5);
                let (g2, p2, mu2) = t2.backward(o2, gamma.clone(), 0.5);
                assert_eq!(bits(&g1), bits(&g2), "{p} theory {l}: gradient");
                assert_eq!(
                    mu1.to_bits(),
                    mu2.to_bits(),
                    "{p} theory {l}: mean fraction"
                );
                let pb = |v: Vec<(spannorm::weight::WeightName, Option<f64>)>| {
                    v.into_iter()
                        .map(|(n, x)| (n, x.map(f64::to_bits)))
                        .collect::<Vec<_>>()
                };
                assert_eq!(pb(p1), pb(p2), "{p} theory {l}: weights");
            }
        }
    }
}

/// The same configuration with its placement given as the built-in file's object.
fn from_file(raw: &RawConfig) -> RawConfig {
    let Some(PlacementSpec::One(p)) = raw.placement else {
        panic!("a built-in placement")
    };
    let (name, text) = FILES[p.index()];
    assert_eq!(name, p.to_string());
    let def = Definition::from_json(text, name).unwrap();
    let mut r = raw.clone();
    r.placement = Some(PlacementSpec::Custom(Arc::new(def)));
    r
}

fn without_config(r: &spannorm::result::RunResult) -> String {
    let mut r = r.clone();
    r.config = RawConfig::default();
    serde_json::to_string(&r).unwrap()
}

#[test]
fn every_built_in_placement_runs_the_same_by_name_and_from_its_file() {
    let mut named = Vec::new();
    let mut filed = Vec::new();
    for &p in Placement::ALL {
        let raw = SimConfig::builder()
            .placement(p)
            .depth(5)
            .width(16)
            .tokens(6)
            .heads(2)
            .seeds(2);
        named.push(raw.build().unwrap());
        filed.push(from_file(&raw).build().unwrap());
    }
    let opts = Options {
        per_seed: true,
        ..Default::default()
    };
    let a = simulate(&named, &opts).unwrap();
    let b = simulate(&filed, &opts).unwrap();
    for ((ra, rb), c) in a.iter().zip(&b).zip(&named) {
        let p = c.model().placement();
        assert_eq!(without_config(ra), without_config(rb), "{p}");
        // The file's config names the placement by its object, and resolves back to it.
        assert_eq!(
            rb.sim_config().unwrap().model().definition(),
            c.model().definition()
        );
        let zq = c
            .to_raw()
            .init("zero-query".parse::<spannorm::init::Init>().unwrap());
        let (ta, tb) = (
            theory::predict(&zq.build().unwrap()),
            theory::predict(&from_file(&zq).build().unwrap()),
        );
        match (ta, tb) {
            (Ok(ta), Ok(tb)) => assert_eq!(without_config(&ta), without_config(&tb), "{p}"),
            (Err(ea), Err(eb)) => assert_eq!(ea.to_string(), eb.to_string(), "{p}"),
            (x, y) => panic!("{p}: {:?} vs {:?}", x.is_ok(), y.is_ok()),
        }
    }
}

#[test]
fn the_placements_table_is_generated_from_the_files() {
    let readme = include_str!("../analysis/placements/README.md");
    assert_eq!(
        readme,
        spannorm::placement::table(),
        "analysis/placements/README.md is stale: cargo run --example placement_table > \
         analysis/placements/README.md"
    );
    // analysis/model.md holds the same table between its markers.
    let model = include_str!("../analysis/model.md");
    let want = format!(
        "<!-- placements table: generated -->\n{}<!-- end of the generated table -->",
        spannorm::placement::table()
    );
    assert!(
        model.contains(&want),
        "analysis/model.md's placements table is stale"
    );
    // Every file is a built-in placement, and every built-in placement has a file.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("analysis/placements");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json"))
        .collect();
    files.sort();
    let mut names: Vec<String> = Placement::ALL.iter().map(|p| format!("{p}.json")).collect();
    names.sort();
    assert_eq!(files, names);
}
