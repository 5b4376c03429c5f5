//! A placement as data: the placement file (`--placement FILE.json`, and every built-in in
//! `analysis/placements/`), checked into programs.
//!
//! ```json
//! {
//!   "name": "olmo2",
//!   "block": "h = x + a*norm(attn(x)); y = h + a*norm(ffn(h))",
//!   "final": "norm(x)",
//!   "attention": {"qk-norm": "norm"},
//!   "citation": "OLMo 2 (OLMo et al. 2024, arXiv 2501.00656)"
//! }
//! ```
//!
//! Fields: `name`; `block` (one formula for every block) or `blocks` (a list of
//! `{"until": number formula, "block": …}`: block `l` takes the first entry with
//! `l ≤ until`, the last entry has no `until`; Mix-LN is `[{"until": "floor(L/4)", "block":
//! post}, {"block": pre}]`); `final` (the stack output from `x = x_L`, default `x`);
//! `inner-norm-block` (the block under `--inner-norm`); `attention` and `ffn` (norms inside
//! the sublayers, [`crate::sublayer`]); `init-gain` (a number formula per weight, of `l`,
//! `L`, `d`, `n`, multiplying its init standard deviation: DeepNet's `β`; a mixture's
//! experts take the gains of `ffn.w_1`, `ffn.w_2`, `ffn.w_g` unless `moe.*` are given);
//! `scale` and `init` (defaults when the config does not set them); `citation`, `notes`;
//! `orthogonal-trunk-gradients` (for the theory: see [`PlacementFile`]).

use super::program::{Env, Program, Role};
use crate::block::BlockOps;
use crate::init::Init;
use crate::placement::BlockCtx;
use crate::scale::Scale;
use crate::sublayer::{AttnOptions, FfnOptions, Inner};
use crate::weight::WeightName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

fn identity() -> String {
    "x".into()
}

fn is_identity(s: &String) -> bool {
    s == "x"
}

/// One entry of `blocks`: a block formula for the blocks up to `until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Range {
    /// The last block (a number formula of `L`, `d`, `n`) this entry covers; absent on the
    /// last entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The block formula.
    pub block: String,
}

/// The JSON form of a placement, as read and as written back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlacementFile {
    /// The placement's name (labels, tables).
    pub name: String,
    /// The block formula of every block (or use `blocks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<String>,
    /// Block formulas by range of blocks (or use `block`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Range>,
    /// The stack's output map from `x = x_L`.
    #[serde(
        rename = "final",
        default = "identity",
        skip_serializing_if = "is_identity"
    )]
    pub final_: String,
    /// The block formula under `--inner-norm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_norm_block: Option<String>,
    /// Norms inside attention.
    #[serde(default, skip_serializing_if = "AttnOptions::is_plain")]
    pub attention: AttnOptions,
    /// Norms inside the feed-forward network.
    #[serde(default, skip_serializing_if = "FfnOptions::is_plain")]
    pub ffn: FfnOptions,
    /// A number formula per weight multiplying its init standard deviation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub init_gain: BTreeMap<WeightName, String>,
    /// The branch scale when the config sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<Scale>,
    /// The init when the config sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<Init>,
    /// Where the placement comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citation: Option<String>,
    /// What was chosen where the source is ambiguous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// For the theory: the trunk norms see gradients orthogonal to their outputs (η = 0,
    /// theory.md §2.10) although the blocks are not exactly scale-invariant; the file's
    /// `notes` should say why (nGPT: the defect is O(α²)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orthogonal_trunk_gradients: Option<bool>,
}

/// A checked placement.
#[derive(Clone, Debug)]
pub struct Definition {
    file: PlacementFile,
    ranges: Vec<(Option<Program>, Program)>,
    inner_norm: Option<Program>,
    final_: Program,
    gains: Vec<(WeightName, Program)>,
}

/// Two definitions are equal when their files are.
impl PartialEq for Definition {
    fn eq(&self, other: &Self) -> bool {
        self.file == other.file
    }
}
impl Eq for Definition {}

/// The most blocks [`Definition::validate`] checks one by one.
pub const VALIDATE_BLOCKS: usize = 100_000;

/// The longest placement file read (a few formulas; this only refuses a wrong file early).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

impl Definition {
    /// Checks a placement file; errors are one line naming the formula and position.
    pub fn new(file: PlacementFile) -> Result<Definition, String> {
        if file.name.trim().is_empty() || file.name.chars().any(char::is_control) {
            return Err("name: must be a non-empty single-line name".into());
        }
        let block = |text: &str, what: &str| -> Result<Program, String> {
            Program::parse(text, Role::Block, what).map_err(|e| e.to_string())
        };
        let ranges = match (&file.block, file.blocks.as_slice()) {
            (Some(b), []) => vec![(None, block(b, "block")?)],
            (None, []) => return Err("needs a block formula ('block' or 'blocks')".into()),
            (Some(_), _) => return Err("has both 'block' and 'blocks'; give one".into()),
            (None, rs) => {
                let mut out = Vec::new();
                for (i, r) in rs.iter().enumerate() {
                    let last = i + 1 == rs.len();
                    let until = match (&r.until, last) {
                        (Some(_), true) => {
                            return Err(format!(
                                "blocks[{i}]: the last entry covers the remaining blocks and \
                                 has no 'until'"
                            ))
                        }
                        (None, false) => {
                            return Err(format!(
                                "blocks[{i}]: every entry but the last needs 'until'"
                            ))
                        }
                        (Some(u), false) => Some(
                            Program::parse(u, Role::Number, &format!("blocks[{i}].until"))
                                .map_err(|e| e.to_string())?,
                        ),
                        (None, true) => None,
                    };
                    out.push((until, block(&r.block, &format!("blocks[{i}].block"))?));
                }
                out
            }
        };
        let inner_norm = file
            .inner_norm_block
            .as_deref()
            .map(|b| block(b, "inner-norm-block"))
            .transpose()?;
        let final_ =
            Program::parse(&file.final_, Role::Final, "final").map_err(|e| e.to_string())?;
        let mut gains = Vec::new();
        for (w, text) in &file.init_gain {
            let p = Program::parse(text, Role::Number, &format!("init-gain {w}"))
                .map_err(|e| e.to_string())?;
            gains.push((*w, p));
        }
        if file.ffn.hidden == Inner::HeadNorm || file.ffn.hidden == Inner::HeadL2 {
            return Err(format!(
                "ffn: hidden-norm '{}' is not allowed (the feed-forward network has no heads; \
                 allowed: none, norm)",
                file.ffn.hidden
            ));
        }
        if file.attention.out == Inner::HeadL2 {
            return Err(
                "attention: out-norm 'head-l2' is not allowed (allowed: none, norm, head-norm)"
                    .into(),
            );
        }
        Ok(Definition {
            file,
            ranges,
            inner_norm,
            final_,
            gains,
        })
    }

    /// Parses and checks a placement file's JSON text; `source` names it in errors.
    pub fn from_json(text: &str, source: &str) -> Result<Definition, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        let file: PlacementFile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = crate::error::cut_line(&e.into_inner().to_string());
            if path == "." {
                format!("{source}: {inner}")
            } else {
                format!("{source}: {path}: {inner}")
            }
        })?;
        de.end()
            .map_err(|_| format!("{source}: text after the placement object"))?;
        Definition::new(file).map_err(|e| format!("{source}: {e}"))
    }

    /// Reads a placement file.
    pub fn read(path: &Path) -> Result<Definition, String> {
        let shown = crate::error::cut(&path.display().to_string());
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("{shown}: {}", crate::error::io_reason(&e)))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(format!(
                "{shown}: {} bytes is more than a placement file may have ({MAX_FILE_BYTES})",
                meta.len()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{shown}: {}", crate::error::io_reason(&e)))?;
        Definition::from_json(&text, &shown)
    }

    /// A placement from a block formula and a final formula (`--block`, `--final`).
    pub fn from_formulas(block: &str, final_: Option<&str>) -> Result<Definition, String> {
        Definition::new(PlacementFile {
            name: "formula".into(),
            block: Some(block.to_string()),
            blocks: Vec::new(),
            final_: final_.unwrap_or("x").to_string(),
            inner_norm_block: None,
            attention: AttnOptions::default(),
            ffn: FfnOptions::default(),
            init_gain: BTreeMap::new(),
            scale: None,
            init: None,
            citation: None,
            notes: None,
            orthogonal_trunk_gradients: None,
        })
    }

    /// The file.
    pub fn file(&self) -> &PlacementFile {
        &self.file
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.file.name
    }

    /// The block formula of block `l` (`inner_norm`: the `--inner-norm` variant).
    pub fn program(&self, c: &BlockCtx) -> &Program {
        if c.inner_norm {
            if let Some(p) = &self.inner_norm {
                return p;
            }
        }
        for (until, p) in &self.ranges {
            match until {
                Some(u) if (c.l as f64) <= u.number(c.l, c.depth, c.width, c.tokens) => return p,
                Some(_) => {}
                None => return p,
            }
        }
        &self.ranges[self.ranges.len() - 1].1
    }

    /// Every block formula (every range, and the inner-norm variant).
    pub fn programs(&self) -> impl Iterator<Item = &Program> {
        self.ranges
            .iter()
            .map(|r| &r.1)
            .chain(self.inner_norm.iter())
    }

    /// The final formula.
    pub fn final_program(&self) -> &Program {
        &self.final_
    }

    /// Records block `c.l` on `t` from input `x`; returns the block output.
    pub fn block<B: BlockOps>(&self, t: &mut B, x: B::Node, c: &BlockCtx) -> B::Node {
        self.program(c).run(t, x, &c.env())
    }

    /// Whether some block calls `ffn` (then every block draws feed-forward weights).
    pub fn uses_ffn(&self) -> bool {
        self.programs().any(|p| p.uses().ffn)
    }

    /// Whether some block reads the branch scale `a`.
    pub fn uses_alpha(&self) -> bool {
        self.programs().any(|p| p.uses().alpha)
    }

    /// Whether some block reads Admin's `omega_attn` or `omega_ffn`.
    pub fn uses_omega(&self) -> bool {
        self.programs().any(|p| p.uses().omega)
    }

    /// Whether the definition has an `--inner-norm` variant.
    pub fn has_inner_norm(&self) -> bool {
        self.inner_norm.is_some()
    }

    /// Norms inside attention.
    pub fn attention(&self) -> AttnOptions {
        self.file.attention
    }

    /// Norms inside the feed-forward network.
    pub fn ffn(&self) -> FfnOptions {
        self.file.ffn
    }

    /// The multiplier of weight `w`'s init standard deviation in block `l` (1 without a
    /// gain). A mixture's expert weights fall back to the gains of their dense names.
    pub fn init_gain(
        &self,
        w: WeightName,
        l: usize,
        depth: usize,
        width: usize,
        tokens: usize,
    ) -> f64 {
        let find = |w: WeightName| self.gains.iter().find(|g| g.0 == w);
        let dense = match w {
            WeightName::MoeW1 => Some(WeightName::FfnW1),
            WeightName::MoeW2 => Some(WeightName::FfnW2),
            WeightName::MoeWg => Some(WeightName::FfnWg),
            _ => None,
        };
        find(w)
            .or_else(|| dense.and_then(find))
            .map_or(1.0, |(_, p)| p.number(l, depth, width, tokens))
    }

    /// Whether weight `w`'s gain formula reads the block index `l`.
    pub fn gain_varies_with_layer(&self, w: WeightName) -> bool {
        self.gains
            .iter()
            .any(|(g, p)| *g == w && p.reads(super::program::Var::Layer))
    }

    /// Whether the file declares that the trunk norms see orthogonal gradients (the theory's
    /// `η = 0`) beyond what exact scale invariance gives.
    pub fn declares_orthogonal_trunk_gradients(&self) -> bool {
        self.file.orthogonal_trunk_gradients == Some(true)
    }

    /// Whether any weight has a gain formula.
    pub fn has_gains(&self) -> bool {
        !self.gains.is_empty()
    }

    /// The names of the weights with a gain formula.
    pub fn gain_names(&self) -> Vec<WeightName> {
        self.gains.iter().map(|g| g.0).collect()
    }

    /// The branch scale when the config gives none.
    pub fn default_scale(&self) -> Scale {
        self.file.scale.unwrap_or(Scale::None)
    }

    /// The init when the config gives none.
    pub fn default_init(&self) -> Option<Init> {
        self.file.init
    }

    /// An error when some number of some block is not finite, or some gain is negative,
    /// for a stack of `depth` blocks with branch scale `scale`.
    ///
    /// Every block is checked up to [`VALIDATE_BLOCKS`]; beyond, the first and last two
    /// (a number that fails elsewhere still stops the run: a divergence in simulation, an
    /// error in theory).
    pub fn validate(
        &self,
        depth: usize,
        width: usize,
        tokens: usize,
        scale: Scale,
    ) -> Result<(), String> {
        let blocks: Vec<usize> = if depth <= VALIDATE_BLOCKS {
            (1..=depth).collect()
        } else {
            vec![1, 2, depth - 1, depth]
        };
        for l in blocks {
            let c = BlockCtx {
                l,
                depth,
                alpha: scale.alpha(l, depth),
                inner_norm: false,
                width,
                tokens,
                omega: [1.0, 1.0],
            };
            for (k, (until, _)) in self.ranges.iter().enumerate() {
                if let Some(u) = until {
                    let v = u.number(l, depth, width, tokens);
                    if !v.is_finite() {
                        return Err(format!("blocks[{k}].until is {v} at L = {depth}"));
                    }
                }
            }
            for p in self.programs() {
                if let Some((what, v)) = p.non_finite(&c.env()) {
                    return Err(format!("block {l}: '{what}' is {v}, not a finite number"));
                }
            }
            for (w, p) in &self.gains {
                let v = p.number(l, depth, width, tokens);
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!(
                        "init-gain {w} is {v} in block {l} (must be finite and >= 0)"
                    ));
                }
            }
        }
        let env = Env {
            alpha: f64::NAN,
            l: depth + 1,
            depth,
            width,
            tokens,
            omega: [f64::NAN; 2],
        };
        if let Some((what, v)) = self.final_.non_finite(&env) {
            return Err(format!("final: '{what}' is {v}, not a finite number"));
        }
        Ok(())
    }
}
