//! How much of the gradient at a block boundary points along the boundary's own tokens: the
//! `η` of a trunk norm (analysis/theory.md §2.10), measured by an observer held to each seed
//! ([`spannorm::metrics::RadialRecorder`]).
//!
//! A norm's Jacobian removes the component of its incoming gradient `g_i` along its output
//! `y_i`; the fraction of `‖g‖²` it removes is `η/d` with `η = Σᵢ (ŷᵢ·gᵢ)² d / Σᵢ ‖gᵢ‖²`
//! (`η = 1` for a gradient independent of `y`). Above a block output of `post` or `span`
//! everything is scale-invariant in all tokens at once, so `Σᵢ yᵢ·gᵢ = 0`, but attention
//! mixes tokens, so a single token is not. [`spannorm::theory::eta::block_output`] derives
//! `η` from the token cosine `ρ` of the boundary, the cosine `κ` of its gradient, `n` and the
//! next block's attention power `b = α²` (zero-query attention, fan-in weights); for small `α`
//! it is `α² (m_ρ + m_κ − 2 m_ρ m_κ)` with `m_r = (1 + (n − 1)r)/n`. The example prints the
//! measured `η` per boundary next to the derived one, evaluated at the measured `ρ` and `κ`.
//!
//! ```text
//! cargo run --release --example eta -- span 64 128 16 32
//! cargo run --release --example eta -- post 16 128 16 32
//! ```
//! Arguments: placement (`post` or `span`), depth, width, tokens, seeds, and optionally the
//! attention: `zero-query` (the default: uniform, bidirectional, what the derivation covers),
//! `causal` (zero-query under the causal mask), `softmax` (fan-in weights, bidirectional) or
//! `causal-softmax`; rmsnorm, `f64`. For the last three the derived column is the
//! bidirectional zero-query formula at the measured `ρ`, `κ`, a yardstick only (theory.md
//! §2.10: the prediction keeps `η = 0` there). The top boundary's gradient comes from the loss
//! (`η ≈ 1`).

use spannorm::attention::Mask;
use spannorm::config::SimConfig;
use spannorm::init::Init;
use spannorm::metrics::RadialRecorder;
use spannorm::norm::Norm;
use spannorm::placement::Placement;
use spannorm::stack::{self, Memory};
use spannorm::theory::eta;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: eta PLACEMENT DEPTH WIDTH TOKENS SEEDS [zero-query|causal|softmax|causal-softmax]";
    let (placement, depth, width, tokens, seeds, attention) = match args.as_slice() {
        [p, l, d, n, s] => (p, l, d, n, s, "zero-query"),
        [p, l, d, n, s, a] => (p, l, d, n, s, a.as_str()),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let (mask, init) = match attention {
        "zero-query" => (Mask::Bidirectional, Init::ZeroQuery),
        "causal" => (Mask::Causal, Init::ZeroQuery),
        "softmax" => (Mask::Bidirectional, Init::FanIn),
        "causal-softmax" => (Mask::Causal, Init::FanIn),
        other => {
            eprintln!("{usage} (unknown attention: {other})");
            std::process::exit(2)
        }
    };
    let number = |s: &str| -> usize {
        s.parse().unwrap_or_else(|_| {
            eprintln!("{usage} (not a number: {s})");
            std::process::exit(2)
        })
    };
    let placement: Placement = placement.parse().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    if !matches!(placement, Placement::Post | Placement::Span) {
        eprintln!("eta: the derivation covers post and span (got {placement})");
        std::process::exit(2);
    }
    let (depth, width, tokens, seeds) =
        (number(depth), number(width), number(tokens), number(seeds));
    let cfg = SimConfig::builder()
        .placement(placement)
        .depth(depth)
        .width(width)
        .tokens(tokens)
        .heads(1)
        .seeds(seeds)
        .init(init)
        .mask(mask)
        .norm(Norm::Rmsnorm)
        .build()
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
    let m = cfg.model();
    let alpha2 = m.scale().alpha(1, depth).powi(2);
    let mut sums = vec![(0.0, 0.0, 0.0, 0.0); depth + 1];
    for seed in 0..seeds as u64 {
        let inputs = stack::inputs::<f64>(m, cfg.seed(), seed);
        let weights = |l| stack::block_weights(m, cfg.seed(), seed, l);
        let mut obs = RadialRecorder::default();
        if let Err(e) = stack::run(m, weights, inputs, &mut obs, Memory::Recompute) {
            eprintln!("seed {seed}: {e:?}");
            std::process::exit(1);
        }
        for (s, row) in sums.iter_mut().zip(&obs.rows) {
            let r = row.expect("every boundary has a gradient");
            let (rho, kappa, eta) = (r.rho, r.kappa, r.eta);
            *s = (s.0 + rho, s.1 + kappa, s.2 + eta, s.3 + eta * eta);
        }
    }
    let k = seeds as f64;
    println!(
        "{placement} L={depth} d={width} n={tokens}, {attention}, {seeds} seeds, α² = {alpha2:.5}"
    );
    println!("   l      ρ_l      κ_l    η_l measured (± se)    derived   leading order");
    for (l, &(r, c, e, e2)) in sums.iter().enumerate() {
        let (rho, kappa, measured) = (r / k, c / k, e / k);
        let se = ((e2 / k - measured * measured).max(0.0) / (k - 1.0).max(1.0)).sqrt();
        let lead = eta::leading_order(rho, kappa, tokens, alpha2);
        let derived = eta::block_output(rho, kappa, tokens, alpha2);
        println!(
            "{l:4} {rho:8.4} {kappa:8.4} {measured:10.5} ± {se:.5} {derived:10.5} {lead:10.5}"
        );
    }
}
