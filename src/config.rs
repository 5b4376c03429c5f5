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
use crate::norm::Norm;
use crate::placement::{BlockCtx, Placement};
use crate::scale::Scale;
use crate::weight::WeightName;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

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

/// What the `placement` field names: one placement, or every one (`all`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementSpec {
    /// Every placement, in the spec's order.
    All,
    /// One placement.
    One(Placement),
}

impl From<Placement> for PlacementSpec {
    fn from(p: Placement) -> Self {
        PlacementSpec::One(p)
    }
}

impl PlacementSpec {
    /// The placements named.
    pub fn placements(self) -> Vec<Placement> {
        match self {
            PlacementSpec::All => Placement::ALL.to_vec(),
            PlacementSpec::One(p) => vec![p],
        }
    }
}

impl fmt::Display for PlacementSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlacementSpec::All => f.write_str("all"),
            PlacementSpec::One(p) => write!(f, "{p}"),
        }
    }
}

impl FromStr for PlacementSpec {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        if s == "all" {
            return Ok(PlacementSpec::All);
        }
        s.parse::<Placement>()
            .map(PlacementSpec::One)
            .map_err(|_| ConfigError::UnknownValue {
                field: "placement",
                value: crate::error::cut(s),
                allowed: format!("{}, all", Placement::allowed()),
            })
    }
}

impl Serialize for PlacementSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PlacementSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: ConfigError| serde::de::Error::custom(e.reason()))
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
impl FieldValue for PlacementSpec {}
impl FieldValue for Scale {
    fn number(&self) -> Option<f64> {
        match self {
            Scale::Const(c) => Some(*c),
            _ => None,
        }
    }
}
impl<T: Choice + Serialize> FieldValue for T {}

/// Declares the config fields once: `[clap args] Variant field: Type = "spelling";`.
macro_rules! config_fields {
    ($( $(#[$doc:meta])* [$($arg:tt)*] $variant:ident $field:ident : $ty:ty = $name:literal; )+) => {
        /// A configuration as written: every field optional, names as in the spec.
        ///
        /// Read from JSON (`--config`, sweep files; unknown fields are errors) and from the
        /// command-line flags of the same names; [`RawConfig::resolve`] validates it. Each
        /// field also has a builder setter of its own name.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "cli", derive(clap::Args))]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        pub struct RawConfig {
            $( $(#[$doc])* #[cfg_attr(feature = "cli", arg($($arg)*))] pub $field: Option<$ty>, )+
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
    /// Placement: pre, post, span, span-outer, deepnorm, b2t, peri, mix, lns, attn-only,
    /// attn-skip, or all.
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
    /// The placement.
    pub fn placement(&self) -> Placement {
        self.placement
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
    /// The weight names of a block, in the order of [`crate::block::BlockWeights::named`].
    pub fn weight_names(&self) -> Vec<WeightName> {
        let mut v = WeightName::ATTN.to_vec();
        if self.placement.has_ffn() {
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

    /// The placements named by the `placement` field (`all` expands to every one).
    pub fn placements(&self) -> Result<Vec<Placement>, ConfigError> {
        match self.placement {
            None => Err(ConfigError::invalid(
                "placement",
                format!("required (allowed: {}, all)", Placement::allowed()),
            )),
            Some(p) => Ok(p.placements()),
        }
    }

    /// Fills defaults and validates, one [`SimConfig`] per placement named.
    pub fn resolve(&self) -> Result<Vec<SimConfig>, ConfigError> {
        self.placements()?
            .into_iter()
            .map(|p| self.resolve_one(p))
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

    fn resolve_one(&self, placement: Placement) -> Result<SimConfig, ConfigError> {
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
        let scale = self.scale.unwrap_or_else(|| placement.default_scale());
        if !placement.has_residual() && scale != Scale::None {
            return Err(ConfigError::invalid(
                "scale",
                format!("{placement} has no residual sum to scale (allowed: none)"),
            ));
        }
        let inner_norm = self.inner_norm.unwrap_or(false);
        if inner_norm && placement != Placement::Span {
            return Err(ConfigError::invalid(
                "inner-norm",
                format!("only the span placement has an inner-norm switch, not {placement}"),
            ));
        }
        let moe = match (self.moe_experts, self.moe_top_k) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "moe-top-k",
                    "needs moe-experts (the number of experts)",
                ))
            }
            (Some(_), _) if !placement.has_ffn() => {
                return Err(ConfigError::invalid(
                    "moe-experts",
                    format!("{placement} has no feed-forward sublayer to make a mixture of"),
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
                depth,
                width,
                tokens,
                heads,
                d_ff,
                norm: self.norm.unwrap_or(Norm::Layernorm),
                act,
                moe,
                mask: self.mask.unwrap_or(Mask::Bidirectional),
                init: self.init.unwrap_or(Init::FanIn),
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
        RawConfig {
            placement: Some(PlacementSpec::One(m.placement)),
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
        // Every field of the JSON form is a Field, and the other way round.
        let json = serde_json::to_value(&r).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), Field::ALL.len());
        for k in keys {
            assert!(k.parse::<Field>().is_ok(), "{k}");
        }
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
