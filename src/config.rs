//! Run configuration: the raw form read from flags and JSON files, and the validated form
//! the engine runs on. Field names are the spec's, kebab-case in JSON and on the CLI.
//!
//! The fields are declared once, in the `config_fields!` list below, which generates
//! [`RawConfig`] (every field optional; JSON through serde, flags through clap, the doc
//! comments serving as both `--help` and API docs), the [`Field`] enum that names a field
//! in sweeps and figures, [`RawConfig::overlay`], the typed accessors, and a builder setter
//! per field. [`RawConfig::resolve`] fills the defaults, checks every field once, and returns
//! [`SimConfig`]s that cannot be invalid (their fields are private). The resolved config
//! serializes back to a complete `RawConfig`, so the `config` object of any result file can
//! be fed back with `--config` to repeat the run.
//!
//! ```
//! use spannorm::config::SimConfig;
//! use spannorm::placement::Placement;
//! let cfg = SimConfig::builder()
//!     .placement(Placement::Span)
//!     .depth(8)
//!     .width(32)
//!     .build()
//!     .unwrap();
//! assert_eq!(cfg.model().depth(), 8);
//! assert_eq!(cfg.model().d_ff(), 128); // the default 4d
//! assert!(SimConfig::builder().placement(Placement::Pre).heads(3).build().is_err());
//! ```

use crate::attention::Mask;
use crate::choice::Choice;
use crate::choice_enum;
use crate::error::ConfigError;
use crate::ffn::Activation;
use crate::init::Init;
use crate::lang::Definition;
use crate::loss::{Loss, MAX_VOCAB, VOCAB};
use crate::norm::Norm;
use crate::normop::DYT_ALPHA;
use crate::placement::{BlockCtx, Placement};
use crate::scale::Scale;
use crate::weight::WeightName;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

choice_enum!(
    /// Element type of activations and weights.
    Precision, "precision", {
        /// Single precision.
        F32 => "f32",
        /// Double precision.
        F64 => "f64",
    }
);

impl Precision {
    /// Bytes per value.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
}

/// Defaults of the spec.
pub mod defaults {
    /// Blocks `L`.
    pub const DEPTH: usize = 64;
    /// Width `d`.
    pub const WIDTH: usize = 256;
    /// Tokens `n`.
    pub const TOKENS: usize = 64;
    /// Attention heads `H`.
    pub const HEADS: usize = 4;
    /// Seeds per configuration.
    pub const SEEDS: usize = 8;
    /// Master seed.
    pub const SEED: u64 = 0;
    /// Weight scale `σ_w`.
    pub const SIGMA_W: f64 = 1.0;
    /// Input token correlation `ρ0`.
    pub const RHO0: f64 = 0.2;
    /// Experts per token of a mixture.
    pub const MOE_TOP_K: usize = 2;
}

/// The most seeds one configuration may ask for (per-seed records are kept in memory).
pub const MAX_SEEDS: usize = 100_000;

/// The most experts a mixture may have: every expert's weights are drawn for every block
/// (selection depends on them), so the cost grows with `E` whatever `k`; 1024 is beyond any
/// published mixture and what the theory's gate tables allow ([`crate::theory::moe`]).
pub const MAX_EXPERTS: usize = 1024;

/// What the `placement` field names: one built-in placement, every one (`all`), or a
/// placement given as data (a placement file's path on the command line, its object inline
/// in JSON; a resolved config always holds the object, so a result file is self-contained).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlacementSpec {
    /// Every built-in placement, in the spec's order.
    All,
    /// One built-in placement.
    One(Placement),
    /// A placement file's definition.
    Custom(Arc<Definition>),
}

impl From<Placement> for PlacementSpec {
    fn from(p: Placement) -> Self {
        PlacementSpec::One(p)
    }
}

impl PlacementSpec {
    /// The placements named (`custom` for a definition given as data).
    pub fn placements(&self) -> Vec<Placement> {
        match self {
            PlacementSpec::All => Placement::ALL.to_vec(),
            PlacementSpec::One(p) => vec![*p],
            PlacementSpec::Custom(_) => vec![Placement::Custom],
        }
    }

    /// The definitions named, with their placements.
    pub fn definitions(&self) -> Vec<(Placement, Arc<Definition>)> {
        let builtin = |p: Placement| {
            let def = p
                .definition()
                .expect("built-in placements have definitions");
            (p, Arc::new(def.clone()))
        };
        match self {
            PlacementSpec::All => Placement::ALL.iter().map(|&p| builtin(p)).collect(),
            PlacementSpec::One(p) => vec![builtin(*p)],
            PlacementSpec::Custom(d) => vec![(Placement::Custom, d.clone())],
        }
    }
}

impl fmt::Display for PlacementSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlacementSpec::All => f.write_str("all"),
            PlacementSpec::One(p) => write!(f, "{p}"),
            PlacementSpec::Custom(d) => f.write_str(d.name()),
        }
    }
}

impl FromStr for PlacementSpec {
    type Err = ConfigError;
    /// `all`, a built-in name or alias, or the path of a placement file (`….json`).
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        if s == "all" {
            return Ok(PlacementSpec::All);
        }
        if let Some(p) = Placement::named(s) {
            return Ok(PlacementSpec::One(p));
        }
        if s.ends_with(".json") {
            return Definition::read(Path::new(s))
                .map(|d| PlacementSpec::Custom(Arc::new(d)))
                .map_err(|reason| ConfigError::Invalid {
                    field: "placement",
                    reason,
                });
        }
        Err(ConfigError::UnknownValue {
            field: "placement",
            value: crate::error::cut(s),
            allowed: format!(
                "{}, all, sandwich (= peri), or a placement file FILE.json",
                Placement::allowed()
            ),
        })
    }
}

impl Serialize for PlacementSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PlacementSpec::Custom(d) => d.file().serialize(s),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for PlacementSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => s
                .parse()
                .map_err(|e: ConfigError| D::Error::custom(e.reason())),
            v @ serde_json::Value::Object(_) => {
                let text = v.to_string();
                Definition::from_json(&text, "placement")
                    .map(|d| PlacementSpec::Custom(Arc::new(d)))
                    .map_err(D::Error::custom)
            }
            other => Err(D::Error::custom(format!(
                "expected a placement name, a file name or a placement object, found {}",
                crate::error::cut(&other.to_string())
            ))),
        }
    }
}

/// A value a builder setter takes for a field of type `T`: a `T`, or (for `placement`) a
/// [`Placement`].
pub trait IntoField<T> {
    /// The field's value.
    fn into_field(self) -> T;
}

impl<T> IntoField<T> for T {
    fn into_field(self) -> T {
        self
    }
}

impl IntoField<String> for &str {
    fn into_field(self) -> String {
        self.to_string()
    }
}

impl IntoField<PlacementSpec> for Placement {
    fn into_field(self) -> PlacementSpec {
        PlacementSpec::One(self)
    }
}

/// A config value as text and, where it has one, as a number (for labels and axes).
pub trait FieldValue: Serialize {
    /// The value as a figure label shows it: strings bare, numbers as in JSON.
    fn text(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(v) => v.to_string(),
            Err(_) => String::new(),
        }
    }

    /// The value as a number, for numeric axes (`None` for names).
    fn number(&self) -> Option<f64> {
        None
    }
}

impl FieldValue for usize {
    fn number(&self) -> Option<f64> {
        Some(*self as f64)
    }
}
impl FieldValue for u64 {
    fn number(&self) -> Option<f64> {
        Some(*self as f64)
    }
}
impl FieldValue for f64 {
    fn number(&self) -> Option<f64> {
        Some(*self)
    }
}
impl FieldValue for bool {}
impl FieldValue for String {}
impl FieldValue for PlacementSpec {
    /// The placement's name (a placement object shows its `name`).
    fn text(&self) -> String {
        self.to_string()
    }
}
impl FieldValue for Scale {
    fn number(&self) -> Option<f64> {
        match self {
            Scale::Const(c) => Some(*c),
            _ => None,
        }
    }
}
impl<T: Choice + Serialize> FieldValue for T {}

/// Declares the config fields once: `[clap args] {serde args} Variant field: Type =
/// "spelling";` (the serde arguments are optional).
macro_rules! config_fields {
    ($( $(#[$doc:meta])* [$($arg:tt)*] $({$($serde:tt)*})? $variant:ident $field:ident : $ty:ty = $name:literal; )+) => {
        /// A configuration as written: every field optional, names as in the spec.
        ///
        /// Read from JSON (`--config`, sweep files; unknown fields are errors) and from the
        /// command-line flags of the same names; [`RawConfig::resolve`] validates it. Each
        /// field also has a builder setter of its own name.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "cli", derive(clap::Args))]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        pub struct RawConfig {
            $(
                $(#[$doc])*
                #[cfg_attr(feature = "cli", arg($($arg)*))]
                $( #[serde($($serde)*)] )?
                pub $field: Option<$ty>,
            )+
        }

        choice_enum!(
            /// A config field, by its spelling in JSON and on the command line.
            Field, "field", { $( $(#[$doc])* $variant => $name ),+ }
        );

        impl RawConfig {
            /// `self` with every field that `over` sets replaced by `over`'s value.
            pub fn overlay(self, over: &RawConfig) -> RawConfig {
                RawConfig { $( $field: over.$field.clone().or(self.$field) ),+ }
            }

            /// Field `f` as text (as a figure label shows it), `None` when unset.
            pub fn text(&self, f: Field) -> Option<String> {
                match f { $( Field::$variant => self.$field.as_ref().map(FieldValue::text) ),+ }
            }

            /// Field `f` as a number, `None` when unset or not numeric.
            pub fn number(&self, f: Field) -> Option<f64> {
                match f { $( Field::$variant => self.$field.as_ref().and_then(FieldValue::number) ),+ }
            }

            /// `self` with field `f` unset.
            pub fn without(mut self, f: Field) -> RawConfig {
                match f { $( Field::$variant => self.$field = None ),+ }
                self
            }

            $(
                $(#[$doc])*
                ///
                /// Builder setter: `self` with this field set.
                pub fn $field(mut self, v: impl IntoField<$ty>) -> Self {
                    self.$field = Some(v.into_field());
                    self
                }
            )+
        }
    };
}

config_fields! {
    /// Placement: pre, post, span, span-outer, deepnorm, b2t, peri (alias sandwich), mix,
    /// lns, attn-only, attn-skip, olmo2, hybrid, dyt, ngpt, rezero, admin, sub-ln,
    /// normformer, tfixup, all, or a placement file FILE.json.
    [long] Placement placement: PlacementSpec = "placement";
    /// Number of blocks L [default: 64].
    [long] Depth depth: usize = "depth";
    /// Model width d [default: 256].
    [long] Width width: usize = "width";
    /// Tokens n [default: 64].
    [long] Tokens tokens: usize = "tokens";
    /// Attention heads H [default: 4].
    [long] Heads heads: usize = "heads";
    /// Feed-forward width [default: 4d, swiglu 8d/3 rounded to a multiple of 8].
    [long] DFf d_ff: usize = "d-ff";
    /// Number of seeds [default: 8].
    [long] Seeds seeds: usize = "seeds";
    /// Master seed [default: 0].
    [long] Seed seed: u64 = "seed";
    /// Branch scale: none, sqrt-depth, depth, quarter-depth, sqrt-layer, const:c
    /// [default: sqrt-depth for span and span-outer, none otherwise].
    [long] Scale scale: Scale = "scale";
    /// Norm: layernorm or rmsnorm [default: layernorm].
    [long] Norm norm: Norm = "norm";
    /// Feed-forward activation: relu, gelu or swiglu [default: relu].
    [long] Act act: Activation = "act";
    /// Attention mask: bidirectional or causal [default: bidirectional].
    [long] Mask mask: Mask = "mask";
    /// Init: fan-in, xavier or zero-query [default: fan-in].
    [long] Init init: Init = "init";
    /// Weight scale σ_w [default: 1].
    [long] SigmaW sigma_w: f64 = "sigma-w";
    /// Input token correlation ρ0 in [0, 1) [default: 0.2].
    [long] Rho0 rho0: f64 = "rho0";
    /// Mixture-of-experts feed-forward with this many experts.
    [long] MoeExperts moe_experts: usize = "moe-experts";
    /// Experts per token of a mixture [default: 2].
    [long] MoeTopK moe_top_k: usize = "moe-top-k";
    /// span only: feed the sublayers N(x) and N(h).
    [long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"]
    InnerNorm inner_norm: bool = "inner-norm";
    /// f32 or f64 [default: f64].
    [long] Precision precision: Precision = "precision";
    /// A block formula instead of a named placement, e.g. "h = x + a*attn(norm(x)); y = h +
    /// a*ffn(norm(h))" (the block language: analysis/placements/README.md).
    [long, value_name = "FORMULA"] {default, skip_serializing_if = "Option::is_none"}
    Block block: String = "block";
    /// With --block: the stack output from x = x_L, e.g. "norm(x)" [default: x].
    [long = "final", value_name = "FORMULA"]
    {rename = "final", default, skip_serializing_if = "Option::is_none"}
    Final final_: String = "final";
    /// DyT's α₀ in dyt(x) = tanh(α₀ x), for placements that call dyt [default: 0.5].
    [long] {default, skip_serializing_if = "Option::is_none"}
    DytAlpha dyt_alpha: f64 = "dyt-alpha";
    /// Loss: random-projection, mean-token or cross-entropy [default: random-projection].
    [long] {default, skip_serializing_if = "Option::is_none"}
    Loss loss: Loss = "loss";
    /// Words of the cross-entropy loss's random unembedding [default: 1024].
    [long] {default, skip_serializing_if = "Option::is_none"}
    Vocab vocab: usize = "vocab";
}

/// Mixture-of-experts feed-forward settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Moe {
    /// Experts `E`.
    pub experts: usize,
    /// Experts per token `k ≤ E`.
    pub top_k: usize,
}

/// A validated model: what one stack is. Built only by [`RawConfig::resolve`], so its
/// fields are consistent; read them through the accessors.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub(crate) placement: Placement,
    pub(crate) def: Arc<Definition>,
    pub(crate) dyt_alpha: f64,
    pub(crate) loss: Loss,
    pub(crate) vocab: usize,
    pub(crate) depth: usize,
    pub(crate) width: usize,
    pub(crate) tokens: usize,
    pub(crate) heads: usize,
    pub(crate) d_ff: usize,
    pub(crate) norm: Norm,
    pub(crate) act: Activation,
    pub(crate) moe: Option<Moe>,
    pub(crate) mask: Mask,
    pub(crate) init: Init,
    pub(crate) sigma_w: f64,
    pub(crate) scale: Scale,
    pub(crate) rho0: f64,
    pub(crate) inner_norm: bool,
}

/// A validated simulation: a model, how many seeds, and the element type.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    pub(crate) model: ModelConfig,
    pub(crate) seeds: usize,
    pub(crate) seed: u64,
    pub(crate) precision: Precision,
}

impl ModelConfig {
    /// The placement ([`Placement::Custom`] for one given as a formula or a file).
    pub fn placement(&self) -> Placement {
        self.placement
    }
    /// The placement's definition: its block formulas, final map, sublayer options and init
    /// gains.
    pub fn definition(&self) -> &Definition {
        &self.def
    }
    /// The placement's name (a custom placement's own name).
    pub fn placement_name(&self) -> &str {
        self.def.name()
    }
    /// DyT's `α₀`.
    pub fn dyt_alpha(&self) -> f64 {
        self.dyt_alpha
    }
    /// The loss.
    pub fn loss(&self) -> Loss {
        self.loss
    }
    /// Words of the `cross-entropy` loss's unembedding.
    pub fn vocab(&self) -> usize {
        self.vocab
    }
    /// Blocks `L`.
    pub fn depth(&self) -> usize {
        self.depth
    }
    /// Width `d`.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Tokens `n`.
    pub fn tokens(&self) -> usize {
        self.tokens
    }
    /// Attention heads `H` (they divide `d`).
    pub fn heads(&self) -> usize {
        self.heads
    }
    /// Feed-forward width.
    pub fn d_ff(&self) -> usize {
        self.d_ff
    }
    /// The norm `N`.
    pub fn norm(&self) -> Norm {
        self.norm
    }
    /// The feed-forward activation.
    pub fn act(&self) -> Activation {
        self.act
    }
    /// The mixture of experts, `None` for a dense feed-forward network.
    pub fn moe(&self) -> Option<Moe> {
        self.moe
    }
    /// The attention mask.
    pub fn mask(&self) -> Mask {
        self.mask
    }
    /// The init scheme.
    pub fn init(&self) -> Init {
        self.init
    }
    /// Weight scale `σ_w`.
    pub fn sigma_w(&self) -> f64 {
        self.sigma_w
    }
    /// The branch-scale strategy.
    pub fn scale(&self) -> Scale {
        self.scale
    }
    /// Input token correlation `ρ0`.
    pub fn rho0(&self) -> f64 {
        self.rho0
    }
    /// `span` only: whether the sublayers see `N(x)` and `N(h)`.
    pub fn inner_norm(&self) -> bool {
        self.inner_norm
    }
    /// Why the stack is exactly the identity at initialization, if it is: every block's
    /// formula reduces to its input (ReZero at `α = 0`) and the final map is `x`. Its
    /// per-layer curves are flat by construction.
    pub fn identity_at_init(&self) -> Option<String> {
        let blocks = (1..=self.depth).all(|l| {
            let c = self.block_ctx(l);
            self.def.program(&c).is_identity_at(&c.env())
        });
        (blocks && self.def.final_program().is_identity()).then(|| {
            format!(
                "every block is the identity at initialization (scale {}: the branches are \
                 multiplied by 0), so X_l = X_0 and the gradient passes every block unchanged",
                self.scale
            )
        })
    }

    /// The weight names of a block, in the order of [`crate::block::BlockWeights::named`].
    pub fn weight_names(&self) -> Vec<WeightName> {
        let mut v = WeightName::ATTN.to_vec();
        if self.def.uses_ffn() {
            let gated = self.act == Activation::Swiglu;
            match self.moe {
                None => v.extend([WeightName::FfnW1, WeightName::FfnW2]),
                Some(_) => v.extend([WeightName::MoeWr, WeightName::MoeW1, WeightName::MoeW2]),
            }
            if gated {
                v.push(if self.moe.is_some() {
                    WeightName::MoeWg
                } else {
                    WeightName::FfnWg
                });
            }
        }
        v
    }

    /// What the block formula of block `l` (1-based) needs.
    pub fn block_ctx(&self, l: usize) -> BlockCtx {
        BlockCtx {
            l,
            depth: self.depth,
            alpha: self.scale.alpha(l, self.depth),
            inner_norm: self.inner_norm,
            width: self.width,
            tokens: self.tokens,
            omega: [1.0, 1.0],
        }
    }
}

impl SimConfig {
    /// A builder: a [`RawConfig`] with every field unset, whose setters name the fields and
    /// whose [`RawConfig::build`] validates.
    pub fn builder() -> RawConfig {
        RawConfig::default()
    }
    /// The model.
    pub fn model(&self) -> &ModelConfig {
        &self.model
    }
    /// Seeds.
    pub fn seeds(&self) -> usize {
        self.seeds
    }
    /// Master seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Element type.
    pub fn precision(&self) -> Precision {
        self.precision
    }
    /// The same configuration with another number of seeds.
    pub fn with_seeds(&self, seeds: usize) -> Result<SimConfig, ConfigError> {
        self.to_raw().seeds(seeds).build()
    }
}

/// `-0.0` as `0.0`, so one value has one spelling (and one result file).
fn unsigned_zero(v: f64) -> f64 {
    v + 0.0
}

impl RawConfig {
    /// Reads a JSON config file; unknown fields, wrong types and trailing text are errors.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let file_err = |reason: String| ConfigError::File {
            path: path.to_path_buf(),
            reason,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| file_err(crate::error::io_reason(&e)))?;
        Self::from_json(&text).map_err(|e| match e {
            ConfigError::File { reason, .. } => file_err(reason),
            other => other,
        })
    }

    /// Parses a JSON config (one object, nothing after it); errors name the offending field.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner =
                crate::error::cut_to(&e.into_inner().to_string(), crate::error::MAX_MESSAGE);
            let reason = if path == "." {
                inner
            } else {
                format!("{path}: {inner}")
            };
            ConfigError::File {
                path: "<json>".into(),
                reason,
            }
        })?;
        de.end().map_err(|e| ConfigError::File {
            path: "<json>".into(),
            reason: format!("text after the config object ({e})"),
        })?;
        Ok(raw)
    }

    /// The placements named by the `placement` field (`all` expands to every one; a
    /// formula or a placement file is [`Placement::Custom`]).
    pub fn placements(&self) -> Result<Vec<Placement>, ConfigError> {
        Ok(self.definitions()?.into_iter().map(|(p, _)| p).collect())
    }

    /// The definitions named by `placement`, or by `block` and `final`.
    fn definitions(&self) -> Result<Vec<(Placement, Arc<Definition>)>, ConfigError> {
        match (&self.placement, &self.block) {
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                "block",
                "a block formula replaces the placement; give --block or --placement, not both",
            )),
            (None, None) => Err(ConfigError::invalid(
                "placement",
                format!(
                    "required (allowed: {}, all, a placement file FILE.json; or a formula with \
                     --block)",
                    Placement::allowed()
                ),
            )),
            (Some(p), None) => {
                if self.final_.is_some() {
                    return Err(ConfigError::invalid(
                        "final",
                        "goes with --block (a placement has its own final formula)",
                    ));
                }
                Ok(p.definitions())
            }
            (None, Some(b)) => {
                let def = Definition::from_formulas(b, self.final_.as_deref()).map_err(|e| {
                    ConfigError::Formula {
                        field: if e.starts_with("final") {
                            "final"
                        } else {
                            "block"
                        },
                        message: crate::error::cut_line(&e),
                    }
                })?;
                Ok(vec![(Placement::Custom, Arc::new(def))])
            }
        }
    }

    /// Fills defaults and validates, one [`SimConfig`] per placement named.
    pub fn resolve(&self) -> Result<Vec<SimConfig>, ConfigError> {
        self.definitions()?
            .into_iter()
            .map(|(p, def)| self.resolve_one(p, def))
            .collect()
    }

    /// The one configuration this names (an error for `placement: all`).
    pub fn build(&self) -> Result<SimConfig, ConfigError> {
        let mut v = self.resolve()?;
        if v.len() != 1 {
            return Err(ConfigError::invalid(
                "placement",
                "names every placement; build one at a time",
            ));
        }
        Ok(v.remove(0))
    }

    fn resolve_one(
        &self,
        placement: Placement,
        def: Arc<Definition>,
    ) -> Result<SimConfig, ConfigError> {
        let name = def.name().to_string();
        let def_init = def.default_init();
        let positive = |field: &'static str, v: Option<usize>, default: usize| {
            let v = v.unwrap_or(default);
            if v == 0 {
                Err(ConfigError::invalid(field, "must be at least 1"))
            } else {
                Ok(v)
            }
        };
        let depth = positive("depth", self.depth, defaults::DEPTH)?;
        let width = positive("width", self.width, defaults::WIDTH)?;
        let tokens = positive("tokens", self.tokens, defaults::TOKENS)?;
        if tokens < 2 {
            return Err(ConfigError::invalid(
                "tokens",
                "must be at least 2 (token correlation needs distinct tokens)",
            ));
        }
        let heads = positive("heads", self.heads, defaults::HEADS)?;
        if width % heads != 0 {
            return Err(ConfigError::invalid(
                "heads",
                format!("width {width} is not divisible by {heads} heads"),
            ));
        }
        let seeds = positive("seeds", self.seeds, defaults::SEEDS)?;
        if seeds > MAX_SEEDS {
            return Err(ConfigError::invalid(
                "seeds",
                format!("{seeds} is more than the limit of {MAX_SEEDS}"),
            ));
        }
        let act = self.act.unwrap_or(Activation::Relu);
        let d_ff = positive("d-ff", self.d_ff, act.default_d_ff(width))?;
        let sigma_w = self.sigma_w.unwrap_or(defaults::SIGMA_W);
        if !(sigma_w.is_finite() && sigma_w > 0.0) {
            return Err(ConfigError::invalid(
                "sigma-w",
                format!("{sigma_w} is not allowed (must be finite and > 0)"),
            ));
        }
        let rho0 = unsigned_zero(self.rho0.unwrap_or(defaults::RHO0));
        if !(0.0..1.0).contains(&rho0) {
            return Err(ConfigError::invalid(
                "rho0",
                format!("{rho0} is outside [0, 1)"),
            ));
        }
        let scale = self.scale.unwrap_or_else(|| def.default_scale());
        if !def.uses_alpha() && scale != Scale::None {
            return Err(ConfigError::invalid(
                "scale",
                format!(
                    "{name} has no residual sum to scale (its formula does not use a; allowed: \
                     none)"
                ),
            ));
        }
        let inner_norm = self.inner_norm.unwrap_or(false);
        if inner_norm && !def.has_inner_norm() {
            return Err(ConfigError::invalid(
                "inner-norm",
                format!(
                    "only placements with an inner-norm variant (span) have this switch, not \
                     {name}"
                ),
            ));
        }
        let uses_dyt = def.programs().any(|p| p.uses().dyt) || def.final_program().uses().dyt;
        let dyt_alpha = match self.dyt_alpha {
            Some(_) if !uses_dyt => {
                return Err(ConfigError::invalid(
                    "dyt-alpha",
                    format!("{name} does not call dyt(…)"),
                ))
            }
            Some(v) if !(v.is_finite() && v > 0.0) => {
                return Err(ConfigError::invalid(
                    "dyt-alpha",
                    format!("{v} is not allowed (must be finite and > 0)"),
                ))
            }
            Some(v) => v,
            None => DYT_ALPHA,
        };
        def.validate(depth, width, tokens, scale)
            .map_err(|e| ConfigError::invalid("placement", format!("{name}: {e}")))?;
        let loss = self.loss.unwrap_or(Loss::RandomProjection);
        let vocab = match (loss, self.vocab) {
            (Loss::CrossEntropy, v) => {
                let v = v.unwrap_or(VOCAB);
                if !(2..=MAX_VOCAB).contains(&v) {
                    return Err(ConfigError::invalid(
                        "vocab",
                        format!("{v} is not in 2..={MAX_VOCAB}"),
                    ));
                }
                v
            }
            (_, Some(_)) => {
                return Err(ConfigError::invalid(
                    "vocab",
                    format!("goes with --loss cross-entropy, not {loss}"),
                ))
            }
            (_, None) => VOCAB,
        };
        let moe = match (self.moe_experts, self.moe_top_k) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "moe-top-k",
                    "needs moe-experts (the number of experts)",
                ))
            }
            (Some(_), _) if !def.uses_ffn() => {
                return Err(ConfigError::invalid(
                    "moe-experts",
                    format!("{name} has no feed-forward sublayer to make a mixture of"),
                ))
            }
            (Some(_), _) if !def.ffn().is_plain() => {
                return Err(ConfigError::invalid(
                    "moe-experts",
                    format!(
                        "{name} has a norm inside its feed-forward network, which a mixture's \
                         experts do not support"
                    ),
                ))
            }
            (Some(0), _) => return Err(ConfigError::invalid("moe-experts", "must be at least 1")),
            (Some(e), _) if e > MAX_EXPERTS => {
                return Err(ConfigError::invalid(
                    "moe-experts",
                    format!("{e} is more than the limit of {MAX_EXPERTS}"),
                ))
            }
            (Some(experts), k) => {
                let top_k = k.unwrap_or(defaults::MOE_TOP_K.min(experts));
                if top_k == 0 || top_k > experts {
                    return Err(ConfigError::invalid(
                        "moe-top-k",
                        format!("{top_k} is not in 1..={experts} (the number of experts)"),
                    ));
                }
                Some(Moe { experts, top_k })
            }
        };
        Ok(SimConfig {
            model: ModelConfig {
                placement,
                def,
                dyt_alpha,
                loss,
                vocab,
                depth,
                width,
                tokens,
                heads,
                d_ff,
                norm: self.norm.unwrap_or(Norm::Layernorm),
                act,
                moe,
                mask: self.mask.unwrap_or(Mask::Bidirectional),
                init: self.init.or(def_init).unwrap_or(Init::FanIn),
                sigma_w,
                scale,
                rho0,
                inner_norm,
            },
            seeds,
            seed: self.seed.unwrap_or(defaults::SEED),
            precision: self.precision.unwrap_or(Precision::F64),
        })
    }
}

impl SimConfig {
    /// The complete raw form: every default explicit (`moe-*` null for a dense FFN).
    pub fn to_raw(&self) -> RawConfig {
        let m = &self.model;
        let uses_dyt = m.def.programs().any(|p| p.uses().dyt) || m.def.final_program().uses().dyt;
        RawConfig {
            placement: Some(match m.placement {
                Placement::Custom => PlacementSpec::Custom(m.def.clone()),
                p => PlacementSpec::One(p),
            }),
            depth: Some(m.depth),
            width: Some(m.width),
            tokens: Some(m.tokens),
            heads: Some(m.heads),
            d_ff: Some(m.d_ff),
            seeds: Some(self.seeds),
            seed: Some(self.seed),
            scale: Some(m.scale),
            norm: Some(m.norm),
            act: Some(m.act),
            mask: Some(m.mask),
            init: Some(m.init),
            sigma_w: Some(m.sigma_w),
            rho0: Some(m.rho0),
            moe_experts: m.moe.map(|x| x.experts),
            moe_top_k: m.moe.map(|x| x.top_k),
            inner_norm: Some(m.inner_norm),
            precision: Some(self.precision),
            block: None,
            final_: None,
            dyt_alpha: uses_dyt.then_some(m.dyt_alpha),
            loss: (m.loss != Loss::RandomProjection).then_some(m.loss),
            vocab: (m.loss == Loss::CrossEntropy).then_some(m.vocab),
        }
    }

    /// The canonical text of this config: its complete raw form as compact JSON (fields in
    /// declaration order, every default explicit). Equal configs have equal text.
    pub fn canonical(&self) -> String {
        serde_json::to_string(&self.to_raw()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(placement: Placement) -> RawConfig {
        RawConfig::default().placement(placement)
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = raw(Placement::Span).build().unwrap();
        assert_eq!(c.model.depth, 64);
        assert_eq!(c.model.width, 256);
        assert_eq!(c.model.tokens, 64);
        assert_eq!(c.model.heads, 4);
        assert_eq!(c.model.d_ff, 1024);
        assert_eq!(c.seeds, 8);
        assert_eq!(c.model.scale, Scale::SqrtDepth);
        assert_eq!(c.model.rho0, 0.2);
        assert_eq!(
            raw(Placement::Pre).build().unwrap().model.scale,
            Scale::None
        );
        let all = RawConfig::default().placement(PlacementSpec::All);
        assert_eq!(all.resolve().unwrap().len(), Placement::ALL.len());
        assert!(all.build().is_err());
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = raw(Placement::SpanOuter).build().unwrap();
        let back = RawConfig::from_json(&c.canonical())
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(back, c);
        assert_eq!(back.canonical(), c.canonical());
    }

    #[test]
    fn negative_zero_has_one_spelling() {
        let a = raw(Placement::Pre).rho0(0.0).scale(Scale::Const(0.0));
        let b = raw(Placement::Pre)
            .rho0(-0.0)
            .scale("const:-0.0".parse::<Scale>().unwrap());
        assert_eq!(
            a.build().unwrap().canonical(),
            b.build().unwrap().canonical()
        );
    }

    #[test]
    fn fields_are_listed_once_and_read_by_name() {
        let c = raw(Placement::Post).depth(7).rho0(0.5).build().unwrap();
        let r = c.to_raw();
        assert_eq!(r.text(Field::Depth).as_deref(), Some("7"));
        assert_eq!(r.number(Field::Rho0), Some(0.5));
        assert_eq!(r.text(Field::Placement).as_deref(), Some("post"));
        assert_eq!(r.number(Field::Placement), None);
        assert_eq!(r.clone().without(Field::Depth).depth, None);
        // Every field of the JSON form is a Field, and the other way round, except the
        // fields written only where they apply (so older results keep their bytes): the
        // formula fields resolve into `placement`, `dyt-alpha` goes with dyt.
        let json = serde_json::to_value(&r).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        let optional = [
            Field::Block,
            Field::Final,
            Field::DytAlpha,
            Field::Loss,
            Field::Vocab,
        ];
        assert_eq!(keys.len(), Field::ALL.len() - optional.len());
        for k in keys {
            let f = k.parse::<Field>().unwrap();
            assert!(!optional.contains(&f), "{k}");
        }
        let dyt = RawConfig::default()
            .block("y = x + a*attn(dyt(x))")
            .build()
            .unwrap()
            .to_raw();
        assert_eq!(dyt.dyt_alpha, Some(crate::normop::DYT_ALPHA));
        assert!(dyt.block.is_none() && dyt.final_.is_none());
        let over = RawConfig::default().depth(9);
        assert_eq!(r.overlay(&over).depth, Some(9));
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases: Vec<(RawConfig, &str)> = vec![
            (raw(Placement::Pre).width(10).heads(4), "heads"),
            (raw(Placement::Pre).depth(0), "depth"),
            (raw(Placement::Pre).rho0(1.0), "rho0"),
            (raw(Placement::Pre).moe_experts(2).moe_top_k(3), "moe-top-k"),
            (raw(Placement::AttnOnly).moe_experts(2), "moe-experts"),
            (
                raw(Placement::Pre).moe_experts(MAX_EXPERTS + 1),
                "moe-experts",
            ),
            (raw(Placement::Pre).inner_norm(true), "inner-norm"),
            (raw(Placement::Pre).sigma_w(f64::NAN), "sigma-w"),
            (raw(Placement::AttnOnly).scale(Scale::SqrtDepth), "scale"),
            (RawConfig::default(), "placement"),
        ];
        for (r, field) in cases {
            let e = r.resolve().unwrap_err().to_string();
            assert!(e.starts_with(field), "{e}");
        }
        let e = RawConfig::from_json(r#"{"depht": 3}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("depht"), "{e}");
        let e = RawConfig::from_json(r#"{"depth": -3}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("depth"), "{e}");
        let e = RawConfig::from_json(r#"{"norm": "batchnorm"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("norm: unknown value 'batchnorm'"), "{e}");
        let e = RawConfig::from_json(r#"{"placement": "nope"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("placement: unknown value 'nope'"), "{e}");
        for trailing in [r#"{"depth": 3} x"#, r#"{"depth": 3} {"depth": "garbage"}"#] {
            let e = RawConfig::from_json(trailing).unwrap_err().to_string();
            assert!(e.contains("text after the config object"), "{e}");
        }
    }
}
