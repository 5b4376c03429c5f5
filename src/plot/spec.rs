//! The plot grammar: which quantity against what, grouped, faceted and filtered by config
//! fields. One [`PlotSpec`] is read from the command line (`spannorm plot --y q --x depth
//! ...`) and from JSON (the figure presets in `analysis/figures/*.plot.json`), with the same
//! spellings; [`super::build`] turns it and a set of results into a figure.

use super::PlotError;
use crate::choice::Choice;
use crate::config::{Field, RawConfig};
use crate::result::{Along, Metric};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What the horizontal axis shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XAxis {
    /// The layer index of one run (block boundary, or block).
    #[default]
    Layer,
    /// A config field, across runs (`depth`, `width`, `scale`, `rho0`, ...).
    Field(Field),
}

impl fmt::Display for XAxis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XAxis::Layer => f.write_str("layer"),
            XAxis::Field(x) => write!(f, "{x}"),
        }
    }
}

impl FromStr for XAxis {
    type Err = PlotError;
    fn from_str(s: &str) -> Result<Self, PlotError> {
        if s == "layer" {
            return Ok(XAxis::Layer);
        }
        s.parse::<Field>().map(XAxis::Field).map_err(|_| {
            PlotError::Spec(format!(
                "x: unknown axis '{}' (allowed: layer, or a config field: {})",
                crate::error::cut(s),
                Field::ALL
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

/// A quantity a plot can show on its vertical axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// A metric of the results, as stored (`q`, `log10_grad`, `branch_q.attn`, ...).
    Metric(Metric),
    /// `1 − m` (`1-adj_cos`: how much a block changes the stream).
    OneMinus(Metric),
    /// `log10(grad_0 / grad_L)`, one value per run.
    Log10GradRatio,
    /// The mean over layers of the simulation's error against the mean-field prediction:
    /// `|m_sim / m_theory − 1|` for positive quantities, `|m_sim − m_theory|` for logarithms
    /// and cosines (`theory_error.q`, `theory_error.log10_grad`); one value per run.
    TheoryError(Metric),
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quantity::Metric(m) => write!(f, "{m}"),
            Quantity::OneMinus(m) => write!(f, "1-{m}"),
            Quantity::Log10GradRatio => f.write_str("log10_grad_ratio"),
            Quantity::TheoryError(m) => write!(f, "theory_error.{m}"),
        }
    }
}

impl FromStr for Quantity {
    type Err = PlotError;
    fn from_str(s: &str) -> Result<Self, PlotError> {
        let metric = |t: &str| {
            t.parse::<Metric>().map_err(|_| {
                PlotError::Spec(format!(
                    "y: unknown quantity '{}' (allowed: a metric such as q, log10_grad, \
                     token_cos, adj_cos, eff_rank, branch_q.attn, \
                     log10_param_grad.ffn.w_2; 1-METRIC; log10_grad_ratio; \
                     theory_error.METRIC)",
                    crate::error::cut(s)
                ))
            })
        };
        if s == "log10_grad_ratio" {
            Ok(Quantity::Log10GradRatio)
        } else if let Some(t) = s.strip_prefix("1-") {
            Ok(Quantity::OneMinus(metric(t)?))
        } else if let Some(t) = s.strip_prefix("theory_error.") {
            let m = metric(t)?;
            if m == Metric::Loss {
                return Err(PlotError::Spec(
                    "y: theory_error.loss: the theory does not predict the loss".into(),
                ));
            }
            Ok(Quantity::TheoryError(m))
        } else {
            metric(s).map(Quantity::Metric)
        }
    }
}

impl Quantity {
    /// What the quantity's entries run along: a run's layers, or one value per run.
    pub fn along(self) -> Along {
        match self {
            Quantity::Metric(m) | Quantity::OneMinus(m) => m.along(),
            Quantity::Log10GradRatio | Quantity::TheoryError(_) => Along::Scalar,
        }
    }

    /// Whether the quantity is positive by nature and spans decades, so its axis is
    /// logarithmic by default: second moments, norms, `1 − cosine`, errors.
    pub fn positive(self) -> bool {
        match self {
            Quantity::Metric(m) => matches!(
                m,
                Metric::Q
                    | Metric::Grad
                    | Metric::QPreNorm
                    | Metric::BranchQAttn
                    | Metric::BranchQFfn
                    | Metric::ParamGrad(_)
            ),
            Quantity::OneMinus(_) | Quantity::TheoryError(_) => true,
            Quantity::Log10GradRatio => false,
        }
    }
}

/// Which entry of a per-layer quantity stands for a run when the x axis is a config field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum At {
    /// The last entry (layer `L`).
    #[default]
    Final,
    /// The entry with the largest mean.
    Max,
    /// The entry with the smallest mean.
    Min,
    /// Layer `K` (boundary `K`, or block `K`).
    Layer(usize),
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Final => f.write_str("final"),
            At::Max => f.write_str("max"),
            At::Min => f.write_str("min"),
            At::Layer(k) => write!(f, "layer:{k}"),
        }
    }
}

impl FromStr for At {
    type Err = PlotError;
    fn from_str(s: &str) -> Result<Self, PlotError> {
        match s {
            "final" => Ok(At::Final),
            "max" => Ok(At::Max),
            "min" => Ok(At::Min),
            _ => s
                .strip_prefix("layer:")
                .and_then(|k| k.parse().ok())
                .map(At::Layer)
                .ok_or_else(|| {
                    PlotError::Spec(format!(
                        "at: unknown value '{}' (allowed: final, max, min, layer:K)",
                        crate::error::cut(s)
                    ))
                }),
        }
    }
}

crate::choice_enum!(
    /// How an axis maps values.
    #[derive(Default)]
    AxisScale, "axis scale", {
        /// Logarithmic for positive quantities that span decades (and for a config field
        /// whose values span a factor of 8 or more), linear otherwise.
        #[default]
        Auto => "auto",
        /// Linear.
        Linear => "linear",
        /// Logarithmic (base 10); values ≤ 0 are left out.
        Log => "log",
    }
);

/// Keeps the results whose config field has one of the values: `FIELD=V1,V2`.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    /// The field.
    pub field: Field,
    /// The accepted values, spelled as the config spells them (`0.5`, not `0.50`).
    pub values: Vec<String>,
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.field, self.values.join(","))
    }
}

impl FromStr for Filter {
    type Err = PlotError;
    fn from_str(s: &str) -> Result<Self, PlotError> {
        let bad = |why: String| PlotError::Spec(format!("where: {why}"));
        let (name, values) = s
            .split_once('=')
            .ok_or_else(|| bad(format!("'{}' is not FIELD=VALUE", crate::error::cut(s))))?;
        let field: Field = name
            .trim()
            .parse()
            .map_err(|e: crate::error::ConfigError| bad(e.to_string()))?;
        let mut out = Vec::new();
        for v in values.split(',').map(str::trim) {
            // Read the value as the config reads it, so `0.50` matches `0.5`.
            let json = serde_json::from_str::<serde_json::Value>(v)
                .ok()
                .filter(|j| j.is_number() || j.is_boolean())
                .unwrap_or_else(|| serde_json::Value::String(v.to_string()));
            let mut obj = serde_json::Map::new();
            obj.insert(field.name().to_string(), json);
            let cfg: RawConfig = serde_json::from_value(serde_json::Value::Object(obj))
                .map_err(|e| bad(format!("{field}={}: {e}", crate::error::cut(v))))?;
            out.push(cfg.text(field).unwrap_or_default());
        }
        Ok(Filter { field, values: out })
    }
}

impl Filter {
    /// Whether `cfg` passes.
    pub fn keeps(&self, cfg: &RawConfig) -> bool {
        cfg.text(self.field)
            .is_some_and(|t| self.values.contains(&t))
    }
}

/// Serde through the text form, so JSON and the command line spell values alike.
macro_rules! serde_as_text {
    ($($t:ty),+) => {$(
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|e: PlotError| serde::de::Error::custom(e.to_string()))
            }
        }
    )+};
}
serde_as_text!(XAxis, Quantity, At, Filter);

/// A plot: every field has the name of its command-line flag.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlotSpec {
    /// The quantities, one row of panels each.
    pub y: Vec<Quantity>,
    /// The horizontal axis [default: layer].
    #[serde(default)]
    pub x: XAxis,
    /// For a per-layer quantity against a config field: which layer [default: final].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<At>,
    /// The field that sets a curve's colour [default: placement].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Field>,
    /// A field whose values get a column of panels each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facet: Option<Field>,
    /// A heatmap instead of curves: this field's values are its rows, the x axis its
    /// columns, the quantity its colour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Field>,
    /// Keep only results with these field values.
    #[serde(default, rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub filter: Vec<Filter>,
    /// Draw the mean-field prediction of each curve (dashed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub theory: bool,
    /// The x axis's scale [default: auto].
    #[serde(default, skip_serializing_if = "is_auto")]
    pub x_scale: AxisScale,
    /// The y axis's scale [default: auto].
    #[serde(default, skip_serializing_if = "is_auto")]
    pub y_scale: AxisScale,
    /// Give each curve's least-squares slope (log-log on log axes) with its 95% interval
    /// in the legend, and theory's where `theory` is on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fit: bool,
    /// A dotted reference line of this slope (in the axes' scales) through the first point
    /// of each panel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_slope: Option<f64>,
    /// Heatmaps: draw a dashed contour around the cells where theory predicts
    /// `|value| ≤ bounded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounded: Option<f64>,
    /// The title over the panels [default: none].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

fn is_auto(s: &AxisScale) -> bool {
    *s == AxisScale::Auto
}

impl PlotSpec {
    /// Reads a spec from JSON.
    pub fn from_json(text: &str) -> Result<PlotSpec, PlotError> {
        let spec: PlotSpec = serde_json::from_str(text)
            .map_err(|e| PlotError::Spec(crate::error::cut_to(&e.to_string(), 300)))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks that the fields fit together; the error names the flags concerned.
    pub fn validate(&self) -> Result<(), PlotError> {
        let bad = |s: String| Err(PlotError::Spec(s));
        if self.y.is_empty() {
            return bad("y: give at least one quantity (--y q)".into());
        }
        if let Some(&q) = self.y.iter().find(|q| q.along() == Along::Scalar) {
            if self.x == XAxis::Layer {
                return bad(format!(
                    "y: {q} has one value per run, not one per layer: choose a config field \
                     for --x (depth, width, ...)"
                ));
            }
        }
        match self.x {
            XAxis::Layer => {
                if let Some(at) = self.at {
                    return bad(format!(
                        "at: --at {at} picks a layer when --x is a config field; with --x \
                         layer every layer is drawn"
                    ));
                }
                if self.rows.is_some() {
                    return bad("rows: a heatmap needs a config field for --x".into());
                }
            }
            XAxis::Field(f) => {
                for (name, g) in [
                    ("color", self.color),
                    ("facet", self.facet),
                    ("rows", self.rows),
                ] {
                    if g == Some(f) {
                        return bad(format!("{name}: {f} is already the x axis"));
                    }
                }
                if f == Field::Placement && self.rows.is_none() && self.color.is_none() {
                    return bad(
                        "x: placement is a name, not a number: use --color placement (the \
                         default) or --rows with a heatmap"
                            .into(),
                    );
                }
            }
        }
        if self.rows.is_some() {
            if self.y.len() != 1 {
                return bad("rows: a heatmap shows one quantity (one --y)".into());
            }
            if self.rows == self.facet {
                return bad("rows: the rows field is also the facet".into());
            }
        } else if self.bounded.is_some() {
            return bad("bounded: the theory contour belongs to a heatmap (--rows FIELD)".into());
        }
        if let Some(b) = self.bounded {
            if !(b.is_finite() && b >= 0.0) {
                return bad(format!("bounded: {b} is not a finite value ≥ 0"));
            }
        }
        if let Some(s) = self.reference_slope {
            if !s.is_finite() {
                return bad(format!("reference-slope: {s} is not finite"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for s in [
            "q",
            "1-adj_cos",
            "log10_grad_ratio",
            "theory_error.log10_grad",
        ] {
            assert_eq!(s.parse::<Quantity>().unwrap().to_string(), s);
        }
        for s in ["final", "max", "min", "layer:3"] {
            assert_eq!(s.parse::<At>().unwrap().to_string(), s);
        }
        for s in ["layer", "depth", "sigma-w", "rho0"] {
            assert_eq!(s.parse::<XAxis>().unwrap().to_string(), s);
        }
        assert!("theory_error.loss".parse::<Quantity>().is_err());
        assert!("layer:x".parse::<At>().is_err());
        assert!("deepth".parse::<XAxis>().is_err());
    }

    #[test]
    fn filters_read_values_as_the_config_does() {
        let f: Filter = "sigma-w=0.50".parse().unwrap();
        assert_eq!(f.values, vec!["0.5"]);
        let f: Filter = "placement=span, span-outer".parse().unwrap();
        assert_eq!(f.values, vec!["span", "span-outer"]);
        assert!(f.keeps(&RawConfig::default().placement(crate::placement::Placement::Span)));
        assert!(!f.keeps(&RawConfig::default().placement(crate::placement::Placement::Pre)));
        assert!(!f.keeps(&RawConfig::default()));
        assert!("placement=spam".parse::<Filter>().is_err());
        assert!("depth=-1".parse::<Filter>().is_err());
        assert!("nonsense".parse::<Filter>().is_err());
    }

    #[test]
    fn specs_that_do_not_fit_are_refused() {
        let ok = |t: &str| PlotSpec::from_json(t).unwrap();
        let no = |t: &str, needle: &str| {
            let e = PlotSpec::from_json(t).unwrap_err().to_string();
            assert!(e.contains(needle), "{t}: {e}");
        };
        ok(r#"{"y": ["q"], "facet": "depth", "theory": true}"#);
        ok(r#"{"y": ["q", "log10_grad_ratio"], "x": "depth", "fit": true}"#);
        ok(r#"{"y": ["log10_grad_ratio"], "x": "depth", "rows": "scale", "bounded": 1}"#);
        no(r#"{"y": []}"#, "at least one");
        no(r#"{"y": ["log10_grad_ratio"]}"#, "one value per run");
        no(r#"{"y": ["q"], "at": "final"}"#, "--at");
        no(
            r#"{"y": ["q"], "x": "depth", "facet": "depth"}"#,
            "already the x axis",
        );
        no(r#"{"y": ["q"], "bounded": 1}"#, "heatmap");
        no(r#"{"y": ["q"], "colour": "depth"}"#, "colour");
        no(
            r#"{"y": ["q", "grad"], "x": "depth", "rows": "scale"}"#,
            "one quantity",
        );
    }
}
