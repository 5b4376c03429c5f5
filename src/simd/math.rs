//! Transcendental functions as branch-free polynomials, so that they vectorize and return
//! the same bits on every path (the C library's `exp` and `log` pick processor-specific
//! variants at run time, which need not round alike).
//!
//! - [`exp_f64`], [`exp_f32`]: `e^x = 2^k e^r`, `k = round(x / ln 2)`, `r = x − k ln 2`
//!   (Cody–Waite with a two-part `ln 2`, `|r| ≤ ln 2 / 2`), `e^r` by its Taylor polynomial
//!   (degree 13 in `f64`, whose first omitted term is below `4 · 10^-18`; degree 7 in
//!   `f32`, below `5 · 10^-9`), and `2^k` applied in two halves so that subnormal results and
//!   overflow to infinity come out as from one rounding. At most 1 ulp from `libm` over a
//!   million arguments (tested).
//! - [`ln_unit`]: `ln u` for normal `u > 0`, with fdlibm's reduction `u = 2^k (1 + f)`,
//!   `√½ ≤ 1 + f < √2`, `s = f / (2 + f)` and its minimax polynomial in `s²` (under 1 ulp
//!   in fdlibm; equal to `libm::log` on every one of a million test arguments).
//! - [`sincos_2pi`]: `sin 2πt`, `cos 2πt` for `t ∈ [0, 1)`: `t = q/4 + f` with
//!   `|f| ≤ 1/8` (exact), Taylor polynomials of `sin 2πf / f` and `cos 2πf` in `f²`
//!   (coefficients correctly rounded from 60-digit values; omitted terms below
//!   `10^-19`), and the quadrant `q` by swaps and sign changes. At most 2 ulp from `libm`'s
//!   `sin`, `cos` at `2πf` (whose own argument is rounded).
//!
//! Every function is `#[inline(always)]`, for use inside [`super::dispatch`] kernels.

/// `1.5 · 2^52`: adding it rounds a double `|x| < 2^51` to an integer, held in the low
/// mantissa bits.
const SHIFT: f64 = 6_755_399_441_055_744.0;
/// `1.5 · 2^23`, the same for `f32`.
const SHIFT_F32: f32 = 12_582_912.0;

/// `e^x` in `f64`. NaN stays NaN, `x < −745.2` gives 0, `x > 709.8` gives infinity.
#[inline(always)]
pub fn exp_f64(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = std::f64::consts::LN_2;
    const LN2_LO: f64 = 2.319_046_813_846_299_6e-17;
    /// `1/n!`, `n = 13 … 0`.
    const C: [f64; 14] = [
        1.605_904_383_682_161_3e-10,
        2.087_675_698_786_81e-9,
        2.505_210_838_544_172e-8,
        2.755_731_922_398_589e-7,
        2.755_731_922_398_589_3e-6,
        2.480_158_730_158_73e-5,
        1.984_126_984_126_984e-4,
        1.388_888_888_888_889e-3,
        8.333_333_333_333_333e-3,
        4.166_666_666_666_666_4e-2,
        0.166_666_666_666_666_66,
        0.5,
        1.0,
        1.0,
    ];
    // Outside [−746, 710] the result is 0 or infinity anyway; clamping keeps k in range.
    // `clamp` passes NaN through.
    let xc = x.clamp(-746.0, 710.0);
    let t = xc * LOG2E + SHIFT;
    let k = t - SHIFT;
    let ki = (t.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
    let r = (-k).mul_add(LN2_HI, xc);
    let r = (-k).mul_add(LN2_LO, r);
    let mut p = C[0];
    for &c in &C[1..] {
        p = p.mul_add(r, c);
    }
    // 2^k as 2^(k/2) · 2^(k − k/2), each a normal number for |k| ≤ 1077.
    let k1 = ki >> 1;
    let k2 = ki - k1;
    let s1 = f64::from_bits(((k1 + 1023) as u64) << 52);
    let s2 = f64::from_bits(((k2 + 1023) as u64) << 52);
    p * s1 * s2
}

/// `e^x` in `f32`. NaN stays NaN, `x < −103.9` gives 0, `x > 88.8` gives infinity.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = std::f32::consts::LN_2;
    const LN2_LO: f32 = -1.904_654_2e-9;
    /// `1/n!`, `n = 7 … 0`.
    const C: [f32; 8] = [
        1.984_127e-4,
        1.388_888_9e-3,
        8.333_334e-3,
        4.166_666_8e-2,
        0.166_666_67,
        0.5,
        1.0,
        1.0,
    ];
    let xc = x.clamp(-105.0, 90.0);
    let t = xc * LOG2E + SHIFT_F32;
    let k = t - SHIFT_F32;
    let ki = (t.to_bits() as i32).wrapping_sub(SHIFT_F32.to_bits() as i32);
    let r = (-k).mul_add(LN2_HI, xc);
    let r = (-k).mul_add(LN2_LO, r);
    let mut p = C[0];
    for &c in &C[1..] {
        p = p.mul_add(r, c);
    }
    let k1 = ki >> 1;
    let k2 = ki - k1;
    let s1 = f32::from_bits(((k1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((k2 + 127) as u32) << 23);
    p * s1 * s2
}

/// `ln u` for a positive normal `u` (the Box–Muller radius needs `u ∈ [2^-53, 1]`).
// fdlibm's constants, digit for digit as published.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub fn ln_unit(u: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    const LG: [f64; 7] = [
        6.666_666_666_666_735_130e-1,
        3.999_999_999_940_941_908e-1,
        2.857_142_874_366_239_149e-1,
        2.222_219_843_214_978_396e-1,
        1.818_357_216_161_805_012e-1,
        1.531_383_769_920_937_332e-1,
        1.479_819_860_511_658_591e-1,
    ];
    const TWO52: f64 = 4_503_599_627_370_496.0;
    let bits = u.to_bits();
    // Mantissa in [1, 2), and the biased exponent as a double (exactly, by the 2^52 trick).
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let e = f64::from_bits((bits >> 52) | 0x4330_0000_0000_0000) - (TWO52 + 1023.0);
    let big = m > std::f64::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let k = if big { e + 1.0 } else { e };
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * LG[5].mul_add(w, LG[3]).mul_add(w, LG[1]);
    let t2 = z * LG[6].mul_add(w, LG[4]).mul_add(w, LG[2]).mul_add(w, LG[0]);
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

/// `(sin 2πt, cos 2πt)` for `t ∈ [0, 1)`.
#[inline(always)]
pub fn sincos_2pi(t: f64) -> (f64, f64) {
    /// `(−1)^j (2π)^{2j+1} / (2j+1)!`, `j = 8 … 0`.
    const S: [f64; 9] = [
        0.104_229_162_208_139_84,
        -0.718_122_301_778_500_6,
        3.819_952_584_848_282,
        -15.094_642_576_822_99,
        42.058_693_944_897_655,
        -76.705_859_753_061_39,
        81.605_249_276_075_06,
        -41.341_702_240_399_76,
        std::f64::consts::TAU,
    ];
    /// `(−1)^j (2π)^{2j} / (2j)!`, `j = 9 … 0`.
    const C: [f64; 10] = [
        -0.036_382_841_142_545_67,
        0.282_005_968_455_791_23,
        -1.714_390_711_088_672,
        7.903_536_371_318_469,
        -26.426_256_783_374_4,
        60.244_641_371_876_66,
        -85.456_817_206_693_73,
        64.939_394_022_668_3,
        -19.739_208_802_178_716,
        1.0,
    ];
    // q = round(4t) ∈ {0, …, 4}; f = t − q/4 ∈ [−1/8, 1/8] is exact (t is a multiple of
    // 2^-53 and so is q/4).
    let y = 4.0 * t + SHIFT;
    let q = y.to_bits().wrapping_sub(SHIFT.to_bits());
    let f = t - (y - SHIFT) * 0.25;
    let f2 = f * f;
    let mut s = S[0];
    for &c in &S[1..] {
        s = s.mul_add(f2, c);
    }
    let s = s * f;
    let mut c = C[0];
    for &k in &C[1..] {
        c = c.mul_add(f2, k);
    }
    // sin(qπ/2 + x), cos(qπ/2 + x) from sin x, cos x.
    let (ss, cc) = if q & 1 == 1 { (c, s) } else { (s, c) };
    let sin = if q & 2 == 2 { -ss } else { ss };
    let cos = if (q + 1) & 2 == 2 { -cc } else { cc };
    (sin, cos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite doubles of the same sign.
    fn ulps(a: f64, b: f64) -> u64 {
        if a == b {
            return 0;
        }
        let key = |x: f64| {
            let b = x.to_bits() as i64;
            if b < 0 {
                i64::MIN - b
            } else {
                b
            }
        };
        key(a).abs_diff(key(b))
    }

    fn ulps32(a: f32, b: f32) -> u32 {
        if a == b {
            return 0;
        }
        let key = |x: f32| {
            let b = x.to_bits() as i32;
            if b < 0 {
                i32::MIN - b
            } else {
                b
            }
        };
        key(a).abs_diff(key(b))
    }

    /// A fixed sequence of doubles in `[0, 1)`, spread over many binades.
    fn points(n: usize) -> impl Iterator<Item = f64> {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        (0..n).map(move |_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
        })
    }

    // Accuracy against `libm` (a port of musl/fdlibm, itself within 1 ulp), over a million
    // arguments each: the bounds below are the measured maxima, so they document
    // the accuracy and catch any change to a coefficient (one wrong digit in a coefficient
    // moves the error by far more than an ulp).

    #[test]
    fn exp_f64_is_within_1_ulp_of_libm() {
        let mut worst = 0;
        for p in points(1_000_000) {
            // x ∈ [−745, 709]: subnormal results, the whole normal range.
            let x = -745.0 + p * 1454.0;
            worst = worst.max(ulps(exp_f64(x), libm::exp(x)));
        }
        println!("exp_f64 on [−745, 709]: max {worst} ulp");
        assert!(worst <= 1, "max {worst} ulp");
        // Softmax's range, densely.
        let mut worst = 0;
        for p in points(1_000_000) {
            let x = -40.0 * p;
            worst = worst.max(ulps(exp_f64(x), libm::exp(x)));
        }
        println!("exp_f64 on [−40, 0]: max {worst} ulp");
        assert!(worst <= 1, "max {worst} ulp on [−40, 0]");
        assert_eq!(exp_f64(0.0), 1.0);
        assert_eq!(exp_f64(-800.0), 0.0);
        assert_eq!(exp_f64(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_f64(710.0), f64::INFINITY);
        assert_eq!(exp_f64(f64::INFINITY), f64::INFINITY);
        assert!(exp_f64(f64::NAN).is_nan());
    }

    #[test]
    fn exp_f32_is_within_1_ulp_of_libm() {
        let mut worst = 0;
        for p in points(1_000_000) {
            let x = (-103.0 + p * 191.0) as f32;
            worst = worst.max(ulps32(exp_f32(x), libm::expf(x)));
        }
        println!("exp_f32 on [−103, 88]: max {worst} ulp");
        assert!(worst <= 1, "max {worst} ulp");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-120.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn ln_unit_is_within_1_ulp_of_libm() {
        let mut worst = 0;
        for p in points(1_000_000) {
            // u spread over [2^-53, 1] by exponent, and densely near 1 (where ln u → 0).
            let u = (2f64).powf(-53.0 * p);
            worst = worst.max(ulps(ln_unit(u), libm::log(u)));
            let v = 1.0 - p * 1e-3;
            worst = worst.max(ulps(ln_unit(v), libm::log(v)));
        }
        println!("ln_unit: max {worst} ulp");
        assert!(worst <= 1, "max {worst} ulp");
        assert_eq!(ln_unit(1.0), 0.0);
        assert_eq!(ln_unit(0.5), -std::f64::consts::LN_2);
    }

    #[test]
    fn sincos_2pi_is_within_2_ulp_of_libm_on_the_reduced_argument() {
        // The reference evaluates libm's sin and cos at 2π f for the exactly reduced f, so
        // its own argument carries the half-ulp rounding of 2π f; together at most ~2 ulp.
        let mut worst = 0;
        for t in points(1_000_000) {
            let (s, c) = sincos_2pi(t);
            let q = (4.0 * t).round();
            let f = t - q / 4.0;
            let x = 2.0 * std::f64::consts::PI * f;
            let (sx, cx) = (libm::sin(x), libm::cos(x));
            let (ws, wc) = match q as u32 % 4 {
                0 => (sx, cx),
                1 => (cx, -sx),
                2 => (-sx, -cx),
                _ => (-cx, sx),
            };
            worst = worst.max(ulps(s, ws)).max(ulps(c, wc));
        }
        println!("sincos_2pi: max {worst} ulp");
        assert!(worst <= 2, "max {worst} ulp");
        assert_eq!(sincos_2pi(0.0), (0.0, 1.0));
        assert_eq!(sincos_2pi(0.25), (1.0, -0.0));
        assert_eq!(sincos_2pi(0.5), (-0.0, -1.0));
        assert_eq!(sincos_2pi(0.75), (-1.0, 0.0));
    }
}
