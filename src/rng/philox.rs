//! Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2,
//! 3", SC 2011), the counter-based generator of Random123, cuRAND, TensorFlow and NumPy's
//! `Philox`: a keyed bijection of 128-bit counters, ten rounds of two 32 × 32 → 64-bit
//! multiplications, whose outputs for distinct counters pass BigCrush.
//!
//! # Round
//! With counter words `(c0, c1, c2, c3)` and key `(k0, k1)`:
//! `(h0, l0) = M0 · c0`, `(h1, l1) = M1 · c2`,
//! `(c0, c1, c2, c3) ← (h1 ⊕ c1 ⊕ k0, l1, h0 ⊕ c3 ⊕ k1, l0)`, then the key is bumped by the
//! Weyl constants `(W0, W1)` before the next round.

/// Multipliers and Weyl key increments of Philox4x32 (Random123's constants).
const M0: u64 = 0xD251_1F53;
const M1: u64 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;
/// Rounds.
pub const ROUNDS: u32 = 10;
const LOW: u64 = 0xffff_ffff;

/// Philox4x32-10 of one counter: the reference the lane version is tested against.
pub fn philox4x32(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = ctr;
    let [mut k0, mut k1] = key;
    for r in 0..ROUNDS {
        if r > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let p0 = M0 * u64::from(c0);
        let p1 = M1 * u64::from(c2);
        (c0, c1, c2, c3) = (
            (p1 >> 32) as u32 ^ c1 ^ k0,
            p1 as u32,
            (p0 >> 32) as u32 ^ c3 ^ k1,
            p0 as u32,
        );
    }
    [c0, c1, c2, c3]
}

/// Philox4x32-10 of `N` counters at once, words held in the low halves of `u64` lanes
/// (`c[w][i]` is word `w` of counter `i`), so that each multiplication is one 32 × 32 → 64
/// vector multiply. On return the low 32 bits of every lane hold the output; the high bits
/// are not cleared.
// Index loops over parallel lane arrays are what the compiler turns into vector code.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
pub fn philox4x32_lanes<const N: usize>(c: &mut [[u64; N]; 4], key: [u32; 2]) {
    for r in 0..ROUNDS {
        let k0 = u64::from(key[0].wrapping_add(W0.wrapping_mul(r)));
        let k1 = u64::from(key[1].wrapping_add(W1.wrapping_mul(r)));
        for i in 0..N {
            // Only the low 32 bits of each word matter; the high ones carry leftovers that
            // never reach a low half (shifts move high bits down only from fresh products).
            let p0 = M0 * (c[0][i] & LOW);
            let p1 = M1 * (c[2][i] & LOW);
            c[0][i] = (p1 >> 32) ^ c[1][i] ^ k0;
            c[1][i] = p1;
            c[2][i] = (p0 >> 32) ^ c[3][i] ^ k1;
            c[3][i] = p0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123's known-answer vectors for philox4x32_10 (`kat_vectors`).
    #[test]
    fn known_answers() {
        let cases = [
            (
                [0, 0, 0, 0],
                [0, 0],
                [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8],
            ),
            (
                [u32::MAX; 4],
                [u32::MAX; 2],
                [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd],
            ),
            (
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0],
                [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1],
            ),
        ];
        for (ctr, key, want) in cases {
            assert_eq!(philox4x32(ctr, key), want, "{ctr:x?} {key:x?}");
        }
    }

    #[test]
    fn lanes_equal_the_reference() {
        let key = [0x1234_5678, 0x9abc_def0];
        let mut c = [[0u64; 8]; 4];
        let ctrs: Vec<[u32; 4]> = (0..8u32)
            .map(|i| [i.wrapping_mul(0x9e37_79b9), u32::MAX - i, 7 * i, 1 << i])
            .collect();
        for (i, ctr) in ctrs.iter().enumerate() {
            for w in 0..4 {
                c[w][i] = u64::from(ctr[w]);
            }
        }
        philox4x32_lanes(&mut c, key);
        for (i, ctr) in ctrs.iter().enumerate() {
            let got: [u32; 4] = std::array::from_fn(|w| c[w][i] as u32);
            assert_eq!(got, philox4x32(*ctr, key));
        }
    }
}
