//! Colours, markers, the embedded font and number formats shared by every figure.
//!
//! Colours are Paul Tol's colour-blind-safe "muted" scheme (nine colours) for the
//! placements of the spec, his "vibrant" and "light" schemes for the later ones, with black
//! and grey for the two attention-only controls and dark grey for a user's formula; the heatmap uses
//! Tol's diverging blue–red scheme. One `match` assigns each placement its colour, so a new
//! placement gets one (the compiler asks for it).

use super::canvas::Marker;
use super::PlotError;
use crate::choice::Choice;
use crate::placement::Placement;
use plotters::style::{FontStyle, RGBColor};
use std::sync::OnceLock;

/// The font family every text uses; [`register_font`] binds it to the embedded font.
pub const FONT: &str = "sans-serif";

/// DejaVu Sans (Bitstream Vera licence with DejaVu changes in the public domain; the
/// licence is `src/plot/DejaVuSans.LICENSE`), so no system font library is needed.
pub static FONT_BYTES: &[u8] = include_bytes!("DejaVuSans.ttf");

/// Registers the embedded font with plotters (once per process).
pub fn register_font() -> Result<(), PlotError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Draw("the embedded font cannot be read".into()))
    }
}

/// The colour of a placement in every figure.
pub fn colour(p: Placement) -> RGBColor {
    match p {
        Placement::Pre => RGBColor(0x33, 0x22, 0x88),  // indigo
        Placement::Post => RGBColor(0xCC, 0x66, 0x77), // rose
        Placement::Span => RGBColor(0x11, 0x77, 0x33), // green
        Placement::SpanOuter => RGBColor(0x88, 0x22, 0x55), // wine
        Placement::Deepnorm => RGBColor(0x44, 0xAA, 0x99), // teal
        Placement::B2t => RGBColor(0xDD, 0xCC, 0x77),  // sand
        Placement::Peri => RGBColor(0x88, 0xCC, 0xEE), // cyan
        Placement::Mix => RGBColor(0x99, 0x99, 0x33),  // olive
        Placement::Lns => RGBColor(0xAA, 0x44, 0x99),  // purple
        Placement::AttnOnly => RGBColor(0x00, 0x00, 0x00), // black
        Placement::AttnSkip => RGBColor(0x88, 0x88, 0x88), // grey
        Placement::Olmo2 => RGBColor(0xEE, 0x77, 0x33), // orange (Tol vibrant)
        Placement::Hybrid => RGBColor(0x00, 0x77, 0xBB), // blue
        Placement::Dyt => RGBColor(0xEE, 0x33, 0x77),  // magenta
        Placement::Ngpt => RGBColor(0xCC, 0x33, 0x11), // red
        Placement::Rezero => RGBColor(0x00, 0x99, 0x88), // vibrant teal
        Placement::Admin => RGBColor(0xBB, 0xCC, 0x33), // pear (Tol light)
        Placement::SubLn => RGBColor(0x77, 0xAA, 0xDD), // light blue
        Placement::Normformer => RGBColor(0xFF, 0xAA, 0xBB), // pink
        Placement::Tfixup => RGBColor(0xAA, 0xAA, 0x00), // light olive
        Placement::Custom => RGBColor(0x55, 0x55, 0x55), // dark grey: a user's formula
    }
}

/// The marker of a placement in every figure: with its colour, it tells the 11 placements
/// apart in print and for readers who do not see the colours.
pub fn marker(p: Placement) -> Marker {
    Marker::nth(p.index())
}

/// Colours for a field other than the placement: Tol's muted scheme in order, then black
/// and grey, then again.
pub fn palette(k: usize) -> RGBColor {
    const ALL: [Placement; 11] = [
        Placement::Pre,
        Placement::Post,
        Placement::Span,
        Placement::SpanOuter,
        Placement::Deepnorm,
        Placement::Peri,
        Placement::Lns,
        Placement::Mix,
        Placement::B2t,
        Placement::AttnOnly,
        Placement::AttnSkip,
    ];
    colour(ALL[k % ALL.len()])
}

/// Tol's diverging BuRd scheme, blue (negative) to red (positive).
const BU_RD: [(u8, u8, u8); 9] = [
    (0x21, 0x66, 0xAC),
    (0x43, 0x93, 0xC3),
    (0x92, 0xC5, 0xDE),
    (0xD1, 0xE5, 0xF0),
    (0xF7, 0xF7, 0xF7),
    (0xFD, 0xDB, 0xC7),
    (0xF4, 0xA5, 0x82),
    (0xD6, 0x60, 0x4D),
    (0xB2, 0x18, 0x2B),
];

/// The heatmap colour of `t ∈ [-1, 1]` (clamped), white at 0.
pub fn diverging(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let x = (t + 1.0) / 2.0 * (BU_RD.len() - 1) as f64;
    let i = (x.floor() as usize).min(BU_RD.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + f * (b as f64 - a as f64)).round() as u8;
    let (a, b) = (BU_RD[i], BU_RD[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A short decimal: up to four significant digits, scientific outside `[1e-3, 1e5)`.
pub fn number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.2e}");
        // 1.00e-5 → 1e-5
        return s.replace(".00e", "e").replace("0e", "e");
    }
    let digits = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `10` with `e` as a superscript, in Unicode (`10⁻⁷`).
pub fn power_of_ten(e: i32) -> String {
    let sup = |c: char| match c {
        '-' => '⁻',
        '0' => '⁰',
        '1' => '¹',
        '2' => '²',
        '3' => '³',
        '4' => '⁴',
        '5' => '⁵',
        '6' => '⁶',
        '7' => '⁷',
        '8' => '⁸',
        _ => '⁹',
    };
    format!("10{}", e.to_string().chars().map(sup).collect::<String>())
}

/// The label of a tick at `v = log10(value)` on a log axis.
pub fn log_tick(v: f64) -> String {
    let k = v.round();
    if (v - k).abs() < 1e-6 {
        match k as i32 {
            -2..=4 => number(10f64.powi(k as i32)),
            e => power_of_ten(e),
        }
    } else {
        // Three significant digits between decades.
        let x = 10f64.powf(v);
        let digits = (2 - x.log10().floor() as i32).clamp(0, 8) as usize;
        number(format!("{x:.digits$}").parse().unwrap_or(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(1.0), "1");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(123.456), "123.5");
        assert_eq!(number(1e-5), "1e-5");
        assert_eq!(log_tick(2.0), "100");
        assert_eq!(log_tick(-7.0), "10⁻⁷");
        assert_eq!(log_tick(12.0), "10¹²");
        assert_eq!(log_tick(8f64.log10()), "8");
        assert_eq!(log_tick(4096f64.log10()), "4096");
        assert_eq!(log_tick(0.5), "3.16");
        assert_eq!(log_tick(-0.2), "0.631");
    }

    #[test]
    fn diverging_ends_and_middle() {
        assert_eq!(diverging(-1.0), RGBColor(0x21, 0x66, 0xAC));
        assert_eq!(diverging(0.0), RGBColor(0xF7, 0xF7, 0xF7));
        assert_eq!(diverging(2.0), RGBColor(0xB2, 0x18, 0x2B));
    }
}
