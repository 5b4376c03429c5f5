//! Text with sub- and superscripts: `q_{l}` is q with a subscript l, `d^{-1/2}` is d with
//! a superscript −1/2. Only braces make markup, so identifiers such as `log10_grad` stay as
//! written. Each run is drawn in its own size and offset, measured with the embedded font.

use super::style::FONT;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
use std::sync::OnceLock;

/// Where a run of text sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// On the baseline.
    Base,
    /// Lowered, smaller.
    Sub,
    /// Raised, smaller.
    Sup,
}

/// Splits marked-up text into runs.
pub fn runs(text: &str) -> Vec<(String, Level)> {
    let mut out: Vec<(String, Level)> = Vec::new();
    let mut push = |s: &str, l: Level| {
        if s.is_empty() {
            return;
        }
        match out.last_mut() {
            Some((t, last)) if *last == l => t.push_str(s),
            _ => out.push((s.to_string(), l)),
        }
    };
    let mut rest = text;
    while let Some(i) = rest.find(['_', '^']) {
        let level = if rest[i..].starts_with('_') {
            Level::Sub
        } else {
            Level::Sup
        };
        let after = &rest[i + 1..];
        match after
            .strip_prefix('{')
            .and_then(|a| a.find('}').map(|j| (a, j)))
        {
            Some((a, j)) => {
                push(&rest[..i], Level::Base);
                push(&a[..j], level);
                rest = &a[j + 1..];
            }
            None => {
                push(&rest[..=i], Level::Base);
                rest = after;
            }
        }
    }
    push(rest, Level::Base);
    out
}

/// The text without markup (for file formats without sub- and superscripts).
pub fn plain(text: &str) -> String {
    runs(text)
        .into_iter()
        .map(|(t, l)| match l {
            Level::Base => t,
            Level::Sub => format!("_{t}"),
            Level::Sup if t.chars().count() == 1 => format!("^{t}"),
            Level::Sup => format!("^({t})"),
        })
        .collect()
}

fn size_of(level: Level, size: f64) -> f64 {
    match level {
        Level::Base => size,
        _ => (size * 0.72).round(),
    }
}

/// Offset of a run's top from the base text's top, in pixels (down is positive).
fn rise(level: Level, size: f64) -> f64 {
    match level {
        Level::Base => 0.0,
        Level::Sub => (size * 0.42).round(),
        Level::Sup => -(size * 0.12).round(),
    }
}

/// The embedded font's outlines and metrics.
fn face() -> Option<&'static ttf_parser::Face<'static>> {
    static FACE: OnceLock<Option<ttf_parser::Face<'static>>> = OnceLock::new();
    FACE.get_or_init(|| ttf_parser::Face::parse(super::style::FONT_BYTES, 0).ok())
        .as_ref()
}

/// The advance width in pixels of plain text at plotters' font `size` (plotters writes
/// SVG text at `size / 1.24` em), from the embedded font's own metrics, so runs placed one
/// after another meet exactly where the renderer puts them.
pub fn advance(text: &str, size: f64) -> f64 {
    let Some(f) = face() else {
        return 0.0;
    };
    let em = size / 1.24;
    let units: u32 = text
        .chars()
        .map(|c| {
            f.glyph_index(c)
                .and_then(|g| f.glyph_hor_advance(g))
                .unwrap_or(0) as u32
        })
        .sum();
    units as f64 / f.units_per_em() as f64 * em
}

/// The width of marked-up text in pixels.
pub fn width(text: &str, size: f64) -> f64 {
    runs(text)
        .iter()
        .map(|(t, l)| advance(t, size_of(*l, size)))
        .sum()
}

/// How text is placed at its anchor point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The anchor is the top-left corner.
    Left,
    /// The anchor is the top-centre.
    Centre,
    /// The anchor is the top-right corner.
    Right,
}

/// Draws marked-up text; `vertical` turns it a quarter to the left (reading upwards, as a
/// y axis label), anchored at the centre of its left edge.
pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    at: (i32, i32),
    size: f64,
    anchor: Anchor,
    colour: &RGBColor,
    vertical: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let total = width(text, size);
    let start = match anchor {
        Anchor::Left => 0.0,
        Anchor::Centre => total / 2.0,
        Anchor::Right => total,
    };
    let mut pos = -start;
    for (t, l) in runs(text) {
        // SVG collapses leading and trailing spaces; non-breaking ones keep their width.
        let t = t.replace(' ', "\u{a0}");
        let s = size_of(l, size);
        let font = (FONT, s).into_font().color(colour);
        let w = advance(&t, s);
        let r = rise(l, size) as i32;
        let a = pos.round() as i32;
        if vertical {
            // Reading upwards: the text's "down" is the screen's right.
            let style = font
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Left, VPos::Top));
            area.draw(&Text::new(t.clone(), (at.0 + r, at.1 - a), style))?;
        } else {
            let style = font.pos(Pos::new(HPos::Left, VPos::Top));
            area.draw(&Text::new(t.clone(), (at.0 + a, at.1 + r), style))?;
        }
        pos += w;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_needs_braces() {
        assert_eq!(
            runs("q_{l}"),
            vec![("q".into(), Level::Base), ("l".into(), Level::Sub)]
        );
        assert_eq!(runs("log10_grad"), vec![("log10_grad".into(), Level::Base)]);
        assert_eq!(
            runs("d^{-1/2} slope"),
            vec![
                ("d".into(), Level::Base),
                ("-1/2".into(), Level::Sup),
                (" slope".into(), Level::Base)
            ]
        );
        assert_eq!(runs("a_{b"), vec![("a_{b".into(), Level::Base)]);
        assert_eq!(plain("grad_{0}/grad_{L}"), "grad_0/grad_L");
        assert_eq!(plain("d_{ff}"), "d_ff");
        assert_eq!(plain("d^{-1/2}"), "d^(-1/2)");
    }
}
