//! Branch scale α: the multiplier on every sublayer output that a placement adds to a
//! residual sum (the "principled scaling strategy" of SpanNorm, arXiv 2601.22580).
//!
//! With `S = 2L` sublayers:
//!
//! | strategy | α |
//! | --- | --- |
//! | `none` | 1 |
//! | `sqrt-depth` | `S^{-1/2}` |
//! | `depth` | `S^{-1}` |
//! | `quarter-depth` | `S^{-1/4}` (DeepNorm's branch/residual ratio) |
//! | `sqrt-layer` | `α_l = l^{-1/2}` for block `l = 1..L` |
//! | `const:c` | `c` |

use crate::error::ConfigError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A branch-scale strategy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// `α = 1`.
    None,
    /// `α = (2L)^{-1/2}`.
    SqrtDepth,
    /// `α = (2L)^{-1}`.
    Depth,
    /// `α = (2L)^{-1/4}`.
    QuarterDepth,
    /// `α_l = l^{-1/2}` for block `l` (1-based).
    SqrtLayer,
    /// `α = c`, a finite constant `c ≥ 0`.
    Const(f64),
}

impl Scale {
    /// The named strategies (without `const:c`), for listings.
    pub const NAMED: [Scale; 5] = [
        Scale::None,
        Scale::SqrtDepth,
        Scale::Depth,
        Scale::QuarterDepth,
        Scale::SqrtLayer,
    ];

    /// α for block `l` (1-based) of a stack of `depth` blocks.
    ///
    /// # Formula
    /// See the module table; `S = 2 · depth`.
    pub fn alpha(self, l: usize, depth: usize) -> f64 {
        let s = 2.0 * depth as f64;
        match self {
            Scale::None => 1.0,
            Scale::SqrtDepth => s.powf(-0.5),
            Scale::Depth => 1.0 / s,
            Scale::QuarterDepth => s.powf(-0.25),
            Scale::SqrtLayer => (l as f64).powf(-0.5),
            Scale::Const(c) => c,
        }
    }

    fn allowed() -> &'static str {
        "none, sqrt-depth, depth, quarter-depth, sqrt-layer, const:c with finite c >= 0"
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scale::None => f.write_str("none"),
            Scale::SqrtDepth => f.write_str("sqrt-depth"),
            Scale::Depth => f.write_str("depth"),
            Scale::QuarterDepth => f.write_str("quarter-depth"),
            Scale::SqrtLayer => f.write_str("sqrt-layer"),
            // Debug is the shortest round-trip form and uses an exponent for extremes (1e200).
            Scale::Const(c) => write!(f, "const:{c:?}"),
        }
    }
}

impl FromStr for Scale {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let unknown = || ConfigError::UnknownValue {
            field: "scale",
            value: crate::error::cut(s),
            allowed: Scale::allowed().to_string(),
        };
        if let Some(c) = s.strip_prefix("const:") {
            let c: f64 = c.trim().parse().map_err(|_| unknown())?;
            if !c.is_finite() || c < 0.0 {
                return Err(ConfigError::invalid(
                    "scale",
                    format!("const:{c} is not allowed (the constant must be finite and >= 0)"),
                ));
            }
            // `+ 0.0` turns `-0.0` into `0.0`: one value, one spelling.
            return Ok(Scale::Const(c + 0.0));
        }
        Scale::NAMED
            .into_iter()
            .find(|v| v.to_string() == s)
            .ok_or_else(unknown)
    }
}

impl Serialize for Scale {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Scale {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: ConfigError| serde::de::Error::custom(e.reason()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphas_follow_the_table() {
        let l = 32; // S = 64
        assert_eq!(Scale::None.alpha(3, l), 1.0);
        assert_eq!(Scale::SqrtDepth.alpha(3, l), 0.125);
        assert_eq!(Scale::Depth.alpha(3, l), 1.0 / 64.0);
        assert!((Scale::QuarterDepth.alpha(3, l) - 64f64.powf(-0.25)).abs() < 1e-15);
        assert_eq!(Scale::SqrtLayer.alpha(4, l), 0.5);
        assert_eq!(Scale::Const(0.3).alpha(9, l), 0.3);
    }

    #[test]
    fn spelling_round_trips() {
        for s in [
            "none",
            "sqrt-depth",
            "depth",
            "quarter-depth",
            "sqrt-layer",
            "const:0.25",
        ] {
            assert_eq!(s.parse::<Scale>().unwrap().to_string(), s);
        }
        assert!("const:-1".parse::<Scale>().is_err());
        assert!("const:inf".parse::<Scale>().is_err());
        assert!("const:NaN".parse::<Scale>().is_err());
        assert!("cubic".parse::<Scale>().is_err());
        // Zero is allowed (it switches the branches off), and has one spelling.
        assert_eq!("const:0".parse::<Scale>().unwrap(), Scale::Const(0.0));
        assert_eq!(
            "const:-0.0".parse::<Scale>().unwrap().to_string(),
            "const:0.0"
        );
        let e = "cubic".parse::<Scale>().unwrap_err().to_string();
        assert_eq!(
            e,
            "scale: unknown value 'cubic' (allowed: none, sqrt-depth, depth, quarter-depth, \
             sqrt-layer, const:c with finite c >= 0)"
        );
    }
}
