//! Run configuration: the raw form read from flags and JSON files, and the validated form
//! the engine runs on. Field names are the spec's, kebab-case in JSON and on the CLI.
//!
//! A [`RawConfig`] has every field optional; [`RawConfig::resolve`] fills the defaults,
//! checks every field once, and returns [`SimConfig`]s that cannot be invalid. The resolved
//! config serializes back to a complete `RawConfig`, so the `config` object of any result
//! file can be fed back with `--config` to repeat the run.

use crate::attention::Mask;
use crate::choice::Choice;
use crate::choice_enum;
use crate::error::ConfigError;
use crate::ffn::Activation;
use crate::init::Init;
use crate::norm::Norm;
use crate::placement::Placement;
use crate::scale::Scale;
use serde::{Deserialize, Serialize};
use std::path::Path;

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
    pub const DEPTH: usize = 64;
    pub const WIDTH: usize = 256;
    pub const TOKENS: usize = 64;
    pub const HEADS: usize = 4;
    pub const SEEDS: usize = 8;
    pub const SEED: u64 = 0;
    pub const SIGMA_W: f64 = 1.0;
    pub const RHO0: f64 = 0.2;
    pub const MOE_TOP_K: usize = 2;
}

/// Upper bound on the estimated memory of one run, so a typo in a size gets an error rather
/// than an allocation failure.
pub const MAX_BYTES: f64 = 16.0 * (1u64 << 30) as f64;

/// The most seeds one configuration may ask for (per-seed records are kept in memory).
pub const MAX_SEEDS: usize = 100_000;

/// A configuration as written: every field optional, names as in the spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    /// A placement name, or `all`.
    pub placement: Option<String>,
    pub depth: Option<usize>,
    pub width: Option<usize>,
    pub tokens: Option<usize>,
    pub heads: Option<usize>,
    pub d_ff: Option<usize>,
    pub seeds: Option<usize>,
    /// Master seed.
    pub seed: Option<u64>,
    pub scale: Option<String>,
    pub norm: Option<String>,
    pub act: Option<String>,
    pub mask: Option<String>,
    pub init: Option<String>,
    pub sigma_w: Option<f64>,
    pub rho0: Option<f64>,
    pub moe_experts: Option<usize>,
    pub moe_top_k: Option<usize>,
    pub inner_norm: Option<bool>,
    pub precision: Option<String>,
}

/// Mixture-of-experts feed-forward settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Moe {
    pub experts: usize,
    pub top_k: usize,
}

/// A validated model: what one stack is.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub placement: Placement,
    pub depth: usize,
    pub width: usize,
    pub tokens: usize,
    pub heads: usize,
    pub d_ff: usize,
    pub norm: Norm,
    pub act: Activation,
    pub moe: Option<Moe>,
    pub mask: Mask,
    pub init: Init,
    pub sigma_w: f64,
    pub scale: Scale,
    pub rho0: f64,
    /// `span` only: feed the sublayers `N(x)` and `N(h)`.
    pub inner_norm: bool,
}

/// A validated simulation: a model, how many seeds, and the element type.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    pub model: ModelConfig,
    pub seeds: usize,
    pub seed: u64,
    pub precision: Precision,
}

impl RawConfig {
    /// Reads a JSON config file; unknown fields and wrong types are errors.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let file_err = |reason: String| ConfigError::File {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        Self::from_json(&text).map_err(|e| match e {
            ConfigError::File { reason, .. } => file_err(reason),
            other => other,
        })
    }

    /// Parses a JSON config; errors name the offending field.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let reason = if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            };
            ConfigError::File {
                path: "<json>".into(),
                reason,
            }
        })
    }

    /// `self` with every field that `over` sets replaced by `over`'s value.
    pub fn overlay(self, over: &RawConfig) -> RawConfig {
        macro_rules! pick {
            ($($f:ident),*) => { RawConfig { $($f: over.$f.clone().or(self.$f)),* } };
        }
        pick!(
            placement,
            depth,
            width,
            tokens,
            heads,
            d_ff,
            seeds,
            seed,
            scale,
            norm,
            act,
            mask,
            init,
            sigma_w,
            rho0,
            moe_experts,
            moe_top_k,
            inner_norm,
            precision
        )
    }

    /// The placements named by the `placement` field (`all` expands to every one).
    pub fn placements(&self) -> Result<Vec<Placement>, ConfigError> {
        match self.placement.as_deref() {
            None => Err(ConfigError::invalid(
                "placement",
                format!("required (allowed: {}, all)", Placement::allowed()),
            )),
            Some("all") => Ok(Placement::ALL.to_vec()),
            Some(s) => {
                s.parse::<Placement>()
                    .map(|p| vec![p])
                    .map_err(|_| ConfigError::UnknownValue {
                        field: "placement",
                        value: s.to_string(),
                        allowed: format!("{}, all", Placement::allowed()),
                    })
            }
        }
    }

    /// Fills defaults and validates, one [`SimConfig`] per placement named.
    pub fn resolve(&self) -> Result<Vec<SimConfig>, ConfigError> {
        self.placements()?
            .into_iter()
            .map(|p| self.resolve_one(p))
            .collect()
    }

    fn resolve_one(&self, placement: Placement) -> Result<SimConfig, ConfigError> {
        fn parse<C: Choice>(v: &Option<String>, default: C) -> Result<C, ConfigError> {
            v.as_deref().map_or(Ok(default), C::parse)
        }
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
        let act: Activation = parse(&self.act, Activation::Relu)?;
        let d_ff = positive("d-ff", self.d_ff, act.default_d_ff(width))?;
        let sigma_w = self.sigma_w.unwrap_or(defaults::SIGMA_W);
        if !(sigma_w.is_finite() && sigma_w > 0.0) {
            return Err(ConfigError::invalid(
                "sigma-w",
                format!("{sigma_w} is not allowed (must be finite and > 0)"),
            ));
        }
        let rho0 = self.rho0.unwrap_or(defaults::RHO0);
        if !(0.0..1.0).contains(&rho0) {
            return Err(ConfigError::invalid(
                "rho0",
                format!("{rho0} is outside [0, 1)"),
            ));
        }
        let scale = match &self.scale {
            None => placement.default_scale(),
            Some(s) => s.parse::<Scale>()?,
        };
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
            (Some(0), _) => return Err(ConfigError::invalid("moe-experts", "must be at least 1")),
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
        let cfg = SimConfig {
            model: ModelConfig {
                placement,
                depth,
                width,
                tokens,
                heads,
                d_ff,
                norm: parse(&self.norm, Norm::Layernorm)?,
                act,
                moe,
                mask: parse(&self.mask, Mask::Bidirectional)?,
                init: parse(&self.init, Init::FanIn)?,
                sigma_w,
                scale,
                rho0,
                inner_norm,
            },
            seeds,
            seed: self.seed.unwrap_or(defaults::SEED),
            precision: parse(&self.precision, Precision::F64)?,
        };
        let need = cfg.model.bytes_per_seed(cfg.precision);
        if need > MAX_BYTES {
            return Err(ConfigError::invalid(
                "depth/width/tokens/d-ff",
                format!(
                    "this stack needs about {:.1} GiB per seed, more than the {:.0} GiB limit",
                    need / (1u64 << 30) as f64,
                    MAX_BYTES / (1u64 << 30) as f64
                ),
            ));
        }
        Ok(cfg)
    }
}

impl ModelConfig {
    /// Number of weights in one block.
    pub fn params_per_block(&self) -> usize {
        let d = self.width;
        let attn = 4 * d * d;
        if !self.placement.has_ffn() {
            return attn;
        }
        let mats = if self.act == Activation::Swiglu { 3 } else { 2 };
        let one = mats * d * self.d_ff;
        attn + match self.moe {
            None => one,
            Some(m) => m.experts * one + d * m.experts,
        }
    }

    /// Values recorded on one block's tape (activations and caches), roughly.
    pub fn tape_values_per_block(&self) -> f64 {
        let (n, d) = (self.tokens as f64, self.width as f64);
        let hidden = self.moe.map_or(1.0, |m| m.top_k as f64) * 3.0 * n * self.d_ff as f64;
        16.0 * n * d + self.heads as f64 * n * n + hidden
    }

    /// Estimated peak bytes of one seed's run: the stored block boundaries, the weights
    /// and gradients of the block in use, the weights of the blocks drawn ahead of it (see
    /// [`crate::stack::run_prefetched`]), and one block's recorded intermediates.
    pub fn bytes_per_seed(&self, precision: Precision) -> f64 {
        let b = precision.bytes() as f64;
        let (n, d) = (self.tokens as f64, self.width as f64);
        let boundaries = (self.depth as f64 + 1.0) * n * d;
        let weights = (3 + crate::stack::AHEAD + 1) as f64 * self.params_per_block() as f64;
        b * (boundaries + weights + self.tape_values_per_block())
    }
}

impl SimConfig {
    /// The complete raw form: every default explicit (`moe-*` null for a dense FFN).
    pub fn to_raw(&self) -> RawConfig {
        let m = &self.model;
        RawConfig {
            placement: Some(m.placement.to_string()),
            depth: Some(m.depth),
            width: Some(m.width),
            tokens: Some(m.tokens),
            heads: Some(m.heads),
            d_ff: Some(m.d_ff),
            seeds: Some(self.seeds),
            seed: Some(self.seed),
            scale: Some(m.scale.to_string()),
            norm: Some(m.norm.to_string()),
            act: Some(m.act.to_string()),
            mask: Some(m.mask.to_string()),
            init: Some(m.init.to_string()),
            sigma_w: Some(m.sigma_w),
            rho0: Some(m.rho0),
            moe_experts: m.moe.map(|x| x.experts),
            moe_top_k: m.moe.map(|x| x.top_k),
            inner_norm: Some(m.inner_norm),
            precision: Some(self.precision.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(placement: &str) -> RawConfig {
        RawConfig {
            placement: Some(placement.into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = raw("span").resolve().unwrap().remove(0);
        assert_eq!(c.model.depth, 64);
        assert_eq!(c.model.width, 256);
        assert_eq!(c.model.d_ff, 1024);
        assert_eq!(c.model.scale, Scale::SqrtDepth);
        assert_eq!(raw("pre").resolve().unwrap()[0].model.scale, Scale::None);
        assert_eq!(raw("all").resolve().unwrap().len(), Placement::ALL.len());
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = raw("span-outer").resolve().unwrap().remove(0);
        let json = serde_json::to_string(&c.to_raw()).unwrap();
        let back = RawConfig::from_json(&json)
            .unwrap()
            .resolve()
            .unwrap()
            .remove(0);
        assert_eq!(back, c);
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases: Vec<(RawConfig, &str)> = vec![
            (raw("nope"), "placement"),
            (
                RawConfig {
                    width: Some(10),
                    heads: Some(4),
                    ..raw("pre")
                },
                "heads",
            ),
            (
                RawConfig {
                    depth: Some(0),
                    ..raw("pre")
                },
                "depth",
            ),
            (
                RawConfig {
                    rho0: Some(1.0),
                    ..raw("pre")
                },
                "rho0",
            ),
            (
                RawConfig {
                    moe_experts: Some(2),
                    moe_top_k: Some(3),
                    ..raw("pre")
                },
                "moe-top-k",
            ),
            (
                RawConfig {
                    scale: Some("const:-2".into()),
                    ..raw("pre")
                },
                "scale",
            ),
            (
                RawConfig {
                    inner_norm: Some(true),
                    ..raw("pre")
                },
                "inner-norm",
            ),
            (
                RawConfig {
                    norm: Some("batchnorm".into()),
                    ..raw("pre")
                },
                "norm",
            ),
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
    }
}
