//! The random streams behind every draw of a simulation: Philox4x32-10 counters turned into
//! standard normals by the Box–Muller transform, on whole vectors.
//!
//! # Keys and counters
//! A stream is named by `(master seed, seed index, stream id)`: stream 0 of a seed draws its
//! inputs and loss projection, stream `l` the weights of block `l`. Normal number `2j` and
//! `2j + 1` of a stream come from one Philox4x32-10 block:
//!
//! | Philox word | holds |
//! | --- | --- |
//! | key `(k0, k1)` | master seed, low and high 32 bits |
//! | counter `c0, c1` | pair index `j`, low and high 32 bits |
//! | counter `c2` | stream id (`< 2^32`) |
//! | counter `c3` | seed index (`< 2^32`) |
//!
//! Distinct `(seed index, stream, j)` are distinct counters under one key, so every normal
//! of every stream of every seed comes from its own Philox output, with no overlap by
//! construction. Any normal can be drawn without the ones before it ([`Stream::seek`]),
//! which is how a recomputing stack draws block `l` again in the backward pass, and no draw
//! depends on the thread that makes it.
//!
//! # Normal transform
//! From the output words `(w0, w1, w2, w3)` of pair `j`:
//! `u1 = (a + 1) / 2^53` with `a = (w1 >> 11) · 2^32 + w0` (so `u1 ∈ (0, 1]`, no `ln 0`),
//! `t = b / 2^53` with `b = (w3 >> 11) · 2^32 + w2` (`t ∈ [0, 1)`), `ρ = sqrt(−2 ln u1)`, and
//! `z_{2j} = ρ cos 2πt`, `z_{2j+1} = ρ sin 2πt` (Box & Muller 1958), with the polynomial
//! `ln` and `sincos` of [`crate::simd::math`]. `ρ ≤ sqrt(106 ln 2) = 8.57`: the largest
//! draw is 8.57 standard deviations, a truncation of probability `10^-17`.
//! Every value is computed in `f64` and the same on every dispatch path (see
//! [`crate::simd`]); an `f32` simulation rounds the same normals to `f32`.

pub mod philox;

use crate::real::Real;
use crate::simd::{self, math};
use philox::philox4x32_lanes;

/// Pairs of normals computed together.
const PAIRS: usize = 32;

/// A stream of standard normals, read in order (with [`Stream::seek`] for random access).
#[derive(Clone, Debug)]
pub struct Stream {
    key: [u32; 2],
    stream: u32,
    seed: u32,
    /// Index of the next normal.
    next: u64,
}

impl Stream {
    /// Stream `stream` of seed index `seed` under master seed `master`, at its first normal.
    ///
    /// # Panics
    /// If `seed` or `stream` is `2^32` or more.
    pub fn new(master: u64, seed: u64, stream: u64) -> Stream {
        Stream {
            key: [master as u32, (master >> 32) as u32],
            stream: u32::try_from(stream).expect("stream ids are below 2^32"),
            seed: u32::try_from(seed).expect("seed indices are below 2^32"),
            next: 0,
        }
    }

    /// Index of the next normal the stream yields.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Moves to normal number `index`.
    pub fn seek(&mut self, index: u64) {
        self.next = index;
    }

    /// Appends `T::of(z · std)` for the next `count` standard normals `z` to `out`.
    pub fn normals<T: Real>(&mut self, out: &mut Vec<T>, count: usize, std: f64) {
        let start = self.next;
        let end = start + count as u64;
        out.reserve(count);
        let (key, stream, seed) = (self.key, self.stream, self.seed);
        simd::dispatch(
            #[inline(always)]
            || {
                let mut pair = start / 2;
                while 2 * pair < end {
                    let z = normal_pairs(key, stream, seed, pair);
                    let lo = start.max(2 * pair) - 2 * pair;
                    let hi = (end - 2 * pair).min(2 * PAIRS as u64);
                    out.extend(z[lo as usize..hi as usize].iter().map(|&v| T::of(v * std)));
                    pair += PAIRS as u64;
                }
            },
        );
        self.next = end;
    }
}

/// Normals `2 first … 2 (first + PAIRS) − 1` of a stream.
// Index loops over parallel lane arrays are what the compiler turns into vector code.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn normal_pairs(key: [u32; 2], stream: u32, seed: u32, first: u64) -> [f64; 2 * PAIRS] {
    /// `2^52`, and the bits of a double `2^52 + m` for an integer `m < 2^52`.
    const TWO52: f64 = 4_503_599_627_370_496.0;
    const TWO52_BITS: u64 = 0x4330_0000_0000_0000;
    const TWO32: f64 = 4_294_967_296.0;
    const TWO_M53: f64 = 1.0 / 9_007_199_254_740_992.0;
    const LOW: u64 = 0xffff_ffff;
    let mut c = [[0u64; PAIRS]; 4];
    for i in 0..PAIRS {
        let j = first + i as u64;
        c[0][i] = j & LOW;
        c[1][i] = j >> 32;
        c[2][i] = u64::from(stream);
        c[3][i] = u64::from(seed);
    }
    philox4x32_lanes(&mut c, key);
    // The transform in stages over all lanes: each stage's vectors are independent of one
    // another, so long-latency steps (division, square root) of several vectors overlap.
    let mut u1 = [0.0; PAIRS];
    let mut t = [0.0; PAIRS];
    for i in 0..PAIRS {
        // 53-bit integers as doubles, exactly: high 21 bits · 2^32 + low 32 bits.
        let int53 = |hi: u64, lo: u64| {
            let h = f64::from_bits(TWO52_BITS | ((hi & LOW) >> 11)) - TWO52;
            let l = f64::from_bits(TWO52_BITS | (lo & LOW)) - TWO52;
            h.mul_add(TWO32, l)
        };
        u1[i] = (int53(c[1][i], c[0][i]) + 1.0) * TWO_M53;
        t[i] = int53(c[3][i], c[2][i]) * TWO_M53;
    }
    let mut rho = [0.0; PAIRS];
    for i in 0..PAIRS {
        rho[i] = math::ln_unit(u1[i]);
    }
    for r in &mut rho {
        *r = (-2.0 * *r).sqrt();
    }
    let mut z = [0.0; 2 * PAIRS];
    for i in 0..PAIRS {
        let (s, co) = math::sincos_2pi(t[i]);
        z[2 * i] = rho[i] * co;
        z[2 * i + 1] = rho[i] * s;
    }
    z
}

/// Normal number `index` of a stream, alone (a slow reference for tests).
pub fn normal_at(master: u64, seed: u64, stream: u64, index: u64) -> f64 {
    let mut s = Stream::new(master, seed, stream);
    s.seek(index);
    let mut v = Vec::with_capacity(1);
    s.normals::<f64>(&mut v, 1, 1.0);
    v[0]
}

#[cfg(test)]
mod tests {
    use super::philox::philox4x32;
    use super::*;
    use crate::simd::{with_isa, Isa};

    /// The transform written out for one pair, from the scalar Philox reference.
    fn reference_pair(master: u64, seed: u32, stream: u32, j: u64) -> (f64, f64) {
        let w = philox4x32(
            [j as u32, (j >> 32) as u32, stream, seed],
            [master as u32, (master >> 32) as u32],
        );
        let a = (u64::from(w[1] >> 11) << 32) | u64::from(w[0]);
        let b = (u64::from(w[3] >> 11) << 32) | u64::from(w[2]);
        let u1 = (a + 1) as f64 / 2f64.powi(53);
        let t = b as f64 / 2f64.powi(53);
        let rho = (-2.0 * math::ln_unit(u1)).sqrt();
        let (s, c) = math::sincos_2pi(t);
        (rho * c, rho * s)
    }

    #[test]
    fn normals_follow_the_documented_layout() {
        let master = 0x0123_4567_89ab_cdef;
        let mut s = Stream::new(master, 3, 17);
        let mut z = Vec::new();
        s.normals::<f64>(&mut z, 100, 1.0);
        for j in 0..50 {
            let (a, b) = reference_pair(master, 3, 17, j as u64);
            assert_eq!(z[2 * j].to_bits(), a.to_bits(), "pair {j}");
            assert_eq!(z[2 * j + 1].to_bits(), b.to_bits(), "pair {j}");
        }
        // Pair indices above 2^32 reach the counter's second word.
        let j = (1u64 << 32) + 5;
        let (a, b) = reference_pair(master, 3, 17, j);
        assert_eq!(normal_at(master, 3, 17, 2 * j), a);
        assert_eq!(normal_at(master, 3, 17, 2 * j + 1), b);
    }

    #[test]
    fn any_split_of_a_stream_gives_the_same_normals() {
        let mut whole = Vec::new();
        Stream::new(9, 1, 2).normals::<f64>(&mut whole, 1000, 1.0);
        // Odd and even starts, pieces shorter and longer than a block of pairs.
        for pieces in [vec![1, 999], vec![3, 30, 31, 1, 935], vec![33, 0, 64, 903]] {
            let mut s = Stream::new(9, 1, 2);
            let mut got = Vec::new();
            for p in pieces {
                s.normals::<f64>(&mut got, p, 1.0);
            }
            assert_eq!(got, whole);
        }
        // Random access.
        let mut s = Stream::new(9, 1, 2);
        s.seek(777);
        let mut tail = Vec::new();
        s.normals::<f64>(&mut tail, 223, 1.0);
        assert_eq!(tail, whole[777..]);
        assert_eq!(s.position(), 1000);
    }

    #[test]
    fn scaled_f32_normals_are_the_f64_ones_rounded() {
        let mut z64 = Vec::new();
        Stream::new(5, 0, 1).normals::<f64>(&mut z64, 333, 1.0);
        let mut z32 = Vec::new();
        Stream::new(5, 0, 1).normals::<f32>(&mut z32, 333, 0.7);
        for (a, b) in z64.iter().zip(&z32) {
            assert_eq!((a * 0.7) as f32, *b);
        }
    }

    #[test]
    fn every_dispatch_path_draws_the_same_bits() {
        let draw = || {
            let mut v = Vec::new();
            // Several streams, odd lengths, high pair indices.
            for (seed, stream, at, n) in [
                (0, 0, 0, 100_001),
                (7, 3, 12_345, 4097),
                (1, 9, 1 << 40, 999),
            ] {
                let mut s = Stream::new(0xfeed, seed, stream);
                s.seek(at);
                s.normals::<f64>(&mut v, n, 1.0);
            }
            v.into_iter().map(f64::to_bits).collect::<Vec<u64>>()
        };
        let paths = Isa::supported_all();
        let want = with_isa(Isa::Portable, draw);
        for isa in paths {
            assert!(
                with_isa(isa, draw) == want,
                "{isa:?} differs from the portable path"
            );
        }
    }
}
