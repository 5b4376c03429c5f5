//! Where the norms sit: every built-in placement, each defined by its formula in the block
//! language ([`crate::lang`]) in `analysis/placements/<name>.json`. Those files are the
//! single source of the definitions: the table below is generated from them (a test keeps
//! it current), and the simulation and the theory both run them.
//!
//! Block `l` (1-based) maps `x` to `y`; `a = α_l` is the branch scale ([`crate::scale`]),
//! `L` the depth, `d` the width.
//!
#![doc = include_str!("../analysis/placements/README.md")]
//!
//! To add a placement: a file in `analysis/placements/`, a variant with its spelling in
//! [`Placement`] and in [`FILES`], a colour in `plot::style::colour`, and the regenerated
//! table (`cargo run --example placement_table`). A placement that is not built in needs
//! none of this: `--placement FILE.json`, or `--block` and `--final`.

use crate::choice::Choice;
use crate::choice_enum;
use crate::lang::{Definition, Env};
use std::sync::OnceLock;

/// What a block formula needs besides its input: where the block sits and its branch scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockCtx {
    /// The block's index `l`, 1-based.
    pub l: usize,
    /// The stack's depth `L`.
    pub depth: usize,
    /// The branch scale `α_l`.
    pub alpha: f64,
    /// Run the placement's `--inner-norm` variant (`span`: feed the sublayers `N(x)` and
    /// `N(h)`).
    pub inner_norm: bool,
    /// The width `d`.
    pub width: usize,
    /// The tokens `n`.
    pub tokens: usize,
    /// Admin's residual weights `ω` of the block's attention and feed-forward sublayers
    /// (`omega_attn`, `omega_ffn`; 1 where no profile is needed).
    pub omega: [f64; 2],
}

impl BlockCtx {
    /// The values of the block language's variables.
    pub fn env(&self) -> Env {
        Env {
            alpha: self.alpha,
            l: self.l,
            depth: self.depth,
            width: self.width,
            tokens: self.tokens,
            omega: self.omega,
        }
    }
}

choice_enum!(
    /// A normalization placement: a built-in definition, or (`custom`, never parsed) one
    /// given as a formula or a placement file.
    Placement, "placement", {
        /// PreNorm: `h = x + α A(N(x))`; `y = h + α F(N(h))`; output `N(x_L)`.
        Pre => "pre",
        /// PostNorm: `h = N(x + α A(x))`; `y = N(h + α F(h))`.
        Post => "post",
        /// SpanNorm, canonical reading: `h = x + α A(x)`; `o = h + α F(h)`; `y = N(o)`.
        Span => "span",
        /// SpanNorm, outer reading: `a = N(x + A(x))`; `b = N(a + F(a))`; `y = x + α b`;
        /// output `N(x_L)`.
        SpanOuter => "span-outer",
        /// DeepNorm: `h = N(w x + α A(x))`; `y = N(w h + α F(h))`, `w = (2L)^{1/4}`.
        Deepnorm => "deepnorm",
        /// Bottom-to-top: `a = N(x + α A(x))`; `y = N(a + α F(a) + x)`.
        B2t => "b2t",
        /// Peri-LN (sandwich): `h = x + α N(A(N(x)))`; `y = h + α N(F(N(h)))`; output
        /// `N(x_L)`.
        Peri => "peri",
        /// Mix-LN: `post` for `l ≤ ⌊L/4⌋`, `pre` after; output `N(x_L)`.
        Mix => "mix",
        /// LayerNorm Scaling: `pre` with every `N(·)` of block `l` times `l^{-1/2}`.
        Lns => "lns",
        /// Control: `y = A(x)`.
        AttnOnly => "attn-only",
        /// Control: `y = x + α A(x)`.
        AttnSkip => "attn-skip",
        /// OLMo 2: `h = x + α N(A(x))`; `y = h + α N(F(h))`, QK-norm; output `N(x_L)`.
        Olmo2 => "olmo2",
        /// HybridNorm: `h = x + α A_qkv(x)`; `u = N(h)`; `y = u + α F(u)`, QKV-norm per head;
        /// output `N(x_L)`.
        Hybrid => "hybrid",
        /// DyT: `pre` with every norm `tanh(α₀ ·)`; output `tanh(α₀ x_L)`.
        Dyt => "dyt",
        /// nGPT: `h = L2(x + α(L2(A(x)) − x))`; `y = L2(h + α(L2(F(√d h)) − h))`, per-head unit
        /// queries and keys, `α = 0.05`.
        Ngpt => "ngpt",
        /// ReZero: `h = x + α A(x)`; `y = h + α F(h)`, `α = 0` at init.
        Rezero => "rezero",
        /// Admin: `h = N(ω_A x + α A(x))`; `y = N(ω_F h + α F(h))`, `ω² = 1 + Σ` of the
        /// branch variances below.
        Admin => "admin",
        /// Sub-LN (Magneto): `pre` with a norm before `W_o` and `W_2`, init gain
        /// `√(log 2L)` on `W_v, W_o, W_1, W_2`; output `N(x_L)`.
        SubLn => "sub-ln",
        /// NormFormer: `h = x + α N(A(N(x)))`; `y = h + α F'(N(h))`, `F'` with a norm after
        /// its activation; output `N(x_L)`.
        Normformer => "normformer",
        /// T-Fixup: `h = x + α A(x)`; `y = h + α F(h)`, xavier, `(9L)^{-1/4}` on
        /// `W_v, W_o, W_1, W_2`.
        Tfixup => "tfixup",
    }
    hidden {
        /// A placement given as a formula (`--block`) or a file (`--placement FILE.json`):
        /// its definition is in the config. Not in [`Choice::ALL`], never parsed.
        Custom => "custom",
    }
);

/// Other spellings of built-in placements: `(alias, placement)`.
pub const ALIASES: [(&str, Placement); 1] = [("sandwich", Placement::Peri)];

/// The built-in placement files, in the order of [`Choice::ALL`].
pub const FILES: [(&str, &str); 20] = [
    ("pre", include_str!("../analysis/placements/pre.json")),
    ("post", include_str!("../analysis/placements/post.json")),
    ("span", include_str!("../analysis/placements/span.json")),
    (
        "span-outer",
        include_str!("../analysis/placements/span-outer.json"),
    ),
    (
        "deepnorm",
        include_str!("../analysis/placements/deepnorm.json"),
    ),
    ("b2t", include_str!("../analysis/placements/b2t.json")),
    ("peri", include_str!("../analysis/placements/peri.json")),
    ("mix", include_str!("../analysis/placements/mix.json")),
    ("lns", include_str!("../analysis/placements/lns.json")),
    (
        "attn-only",
        include_str!("../analysis/placements/attn-only.json"),
    ),
    (
        "attn-skip",
        include_str!("../analysis/placements/attn-skip.json"),
    ),
    ("olmo2", include_str!("../analysis/placements/olmo2.json")),
    ("hybrid", include_str!("../analysis/placements/hybrid.json")),
    ("dyt", include_str!("../analysis/placements/dyt.json")),
    ("ngpt", include_str!("../analysis/placements/ngpt.json")),
    ("rezero", include_str!("../analysis/placements/rezero.json")),
    ("admin", include_str!("../analysis/placements/admin.json")),
    ("sub-ln", include_str!("../analysis/placements/sub-ln.json")),
    (
        "normformer",
        include_str!("../analysis/placements/normformer.json"),
    ),
    ("tfixup", include_str!("../analysis/placements/tfixup.json")),
];

impl Placement {
    /// The built-in definition (`None` for [`Placement::Custom`], whose definition is in
    /// the config).
    ///
    /// # Panics
    /// If a built-in file does not parse, which the tests rule out.
    pub fn definition(self) -> Option<&'static Definition> {
        static DEFS: OnceLock<Vec<Definition>> = OnceLock::new();
        let defs = DEFS.get_or_init(|| {
            FILES
                .iter()
                .map(|(name, text)| {
                    Definition::from_json(text, &format!("analysis/placements/{name}.json"))
                        .unwrap_or_else(|e| panic!("built-in placement: {e}"))
                })
                .collect()
        });
        (self != Placement::Custom).then(|| &defs[self.index()])
    }

    /// A placement by name or alias (`sandwich` is `peri`).
    pub fn named(s: &str) -> Option<Placement> {
        s.parse::<Placement>()
            .ok()
            .or_else(|| ALIASES.iter().find(|(a, _)| *a == s).map(|(_, p)| *p))
    }
}

/// The text of `analysis/placements/README.md`, generated from the built-in files: a
/// sentence and the table (name, block formula(s), final map, sublayer options, init gains,
/// defaults).
pub fn table() -> String {
    let mut out = String::from(
        "Built-in placements, generated from the files in `analysis/placements/` (the \
         definitions; `cargo run --example placement_table` regenerates this table). The block \
         language is described in `src/lang/mod.rs` and the README; `a` is the branch scale, \
         `L` the depth, `l` the block, `d` the width.\n\n\
         | name | block `l`: `x ↦ y` | stack output | also |\n| --- | --- | --- | --- |\n",
    );
    let code = |s: &str| format!("`{}`", s.replace('|', "\\|"));
    for &p in Placement::ALL {
        let f = p.definition().expect("built-in").file();
        let block = match &f.block {
            Some(b) => code(b),
            None => f
                .blocks
                .iter()
                .map(|r| match &r.until {
                    Some(u) => format!("`l ≤ {u}`: {}", code(&r.block)),
                    None => format!("then {}", code(&r.block)),
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
        let mut also: Vec<String> = Vec::new();
        if let Some(b) = &f.inner_norm_block {
            also.push(format!("`--inner-norm`: {}", code(b)));
        }
        let opts = serde_json::to_string(&f.attention).unwrap_or_default();
        if opts != "{}" {
            also.push(format!("attention {}", code(&opts)));
        }
        let opts = serde_json::to_string(&f.ffn).unwrap_or_default();
        if opts != "{}" {
            also.push(format!("ffn {}", code(&opts)));
        }
        if !f.init_gain.is_empty() {
            let g: Vec<String> = f
                .init_gain
                .iter()
                .map(|(w, e)| format!("{w} × {e}"))
                .collect();
            also.push(format!("init gains {}", code(&g.join(", "))));
        }
        if let Some(s) = f.scale {
            also.push(format!("scale `{s}`"));
        }
        if let Some(i) = f.init {
            also.push(format!("init `{i}`"));
        }
        let aliases: Vec<&str> = ALIASES
            .iter()
            .filter(|(_, q)| *q == p)
            .map(|(a, _)| *a)
            .collect();
        if !aliases.is_empty() {
            also.push(format!("alias `{}`", aliases.join("`, `")));
        }
        out += &format!(
            "| `{p}` | {block} | {} | {} |\n",
            code(&f.final_),
            also.join("; ")
        );
    }
    out
}
