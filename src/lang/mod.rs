//! The block language: any block as a formula.
//!
//! A block is a few assignments over its input `x`; the value of the last statement is the
//! block output. Statements are separated by `;` or new lines, `#` starts a comment.
//!
//! ```text
//! h = x + a*attn(norm(x))        # pre
//! y = h + a*ffn(norm(h))
//! ```
//!
//! | kind | spelling |
//! | --- | --- |
//! | matrices | `x` (the block input), earlier names |
//! | numbers | literals, `a` (the branch scale `α_l` of `--scale`), `l` (block, from 1), `L` (depth), `d` (width), `n` (tokens), `omega_attn`, `omega_ffn` (Admin's profiled residual weights), earlier names |
//! | operators | `+`, `-` (numbers, or matrices: one sum per chain), `*` (number × number or number × matrix), `/` (by a number), `^` (numbers) |
//! | sublayers | `attn(e)`, `ffn(e)` (dense or mixture, as configured) |
//! | norms | `norm(e)` (the configured one), `layernorm(e)`, `rmsnorm(e)`, `dyt(e)` (`tanh(α₀ e)`, `α₀` from `--dyt-alpha`), `l2norm(e)` (rows to unit length) |
//! | number functions | `sqrt`, `log`, `exp`, `floor` |
//!
//! A placement is a [`Definition`]: a named block (or one per range of blocks, as Mix-LN),
//! the stack's final map (`final`, a formula of `x = x_L` with norms only), options of the
//! sublayers (norms inside attention and the feed-forward network), per-weight init gains
//! (DeepNorm's `β`), default `scale` and `init`, and a citation. Every built-in placement is
//! such a file in `analysis/placements/`; `--placement FILE.json` reads one, `--block` and
//! `--final` give one on the command line.
//!
//! # Design
//! - [`syntax`]: lexer and recursive-descent parser to a syntax tree with positions; errors
//!   are one line, `block:LINE:COL: what was expected`.
//! - [`program`]: the typed program: names resolved in order (a name used before its
//!   definition, assigned twice, or never used is refused), every value a number or a
//!   matrix, the checks that make it a block (it depends on `attn` or `ffn`), and analyses
//!   (its closing norm, whether it is scale-invariant in `x`, what it uses).
//! - [`eval`]: [`Program::run`] emits [`crate::block::BlockOps`] calls, so the same formula
//!   drives the simulation and the theory. The mapping is fixed so that the built-in
//!   formulas emit exactly the operations (and roundings) of the hand-written blocks they
//!   replaced.
//! - [`definition`]: the placement file, read, validated and written back whole (the
//!   resolved config embeds it, so a result file is self-contained).

pub mod definition;
pub mod eval;
pub mod program;
pub mod syntax;

pub use definition::Definition;
pub use program::{Env, Program, Role};

/// An error in a formula: where, and what was expected. Printed as
/// `what:LINE:COL: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what}:{line}:{col}: {message}")]
pub struct LangError {
    /// Which formula (`block`, `final`, `init-gain attn.w_v`, …).
    pub what: String,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1 (characters).
    pub col: usize,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl LangError {
    /// An error at `span` of formula `what`.
    pub fn at(what: &str, span: syntax::Span, message: impl Into<String>) -> LangError {
        LangError {
            what: what.to_string(),
            line: span.line,
            col: span.col,
            message: message.into(),
        }
    }
}
