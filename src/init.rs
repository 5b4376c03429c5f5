//! Weight initialization and the random streams behind every draw.
//!
//! Every weight is `N(0, σ_w² / fan_in)` (`fan-in`), `N(0, σ_w² · 2 / (fan_in + fan_out))`
//! (`xavier`), or `fan-in` with `W_q = 0` (`zero-query`, which makes attention exactly uniform
//! at init). DeepNorm additionally multiplies `W_v, W_o, W_1, W_2` (and `W_g`, and every
//! expert's weights) by its `β = (8L)^{-1/4}`.
//!
//! # Streams
//! A run is fully determined by `(master seed, seed index)`: the key of a ChaCha8 generator is
//! the two numbers' bytes, stream 0 draws the inputs and the loss projection, and stream `l`
//! draws the weights of block `l`. So block `l` can be drawn again in the backward pass
//! (nothing is stored) and seeds are independent of each other and of the thread count.

use crate::choice_enum;
use crate::real::Real;
use ndarray::Array2;
use ndarray_rand::rand::{Rng, RngCore, SeedableRng};
use ndarray_rand::rand_distr::StandardNormal;
use rand_chacha::ChaCha8Rng;
use std::sync::OnceLock;

choice_enum!(
    /// Weight initialization scheme.
    Init, "init", {
        /// `N(0, σ_w² / fan_in)`.
        FanIn => "fan-in",
        /// `N(0, σ_w² · 2 / (fan_in + fan_out))`.
        Xavier => "xavier",
        /// `fan-in` with `W_q = 0`: attention is exactly uniform at init.
        ZeroQuery => "zero-query",
    }
);

/// The generator for stream `stream` of seed `seed` under master seed `master`.
pub fn stream_rng(master: u64, seed: u64, stream: u64) -> Stream {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&master.to_le_bytes());
    key[8..16].copy_from_slice(&seed.to_le_bytes());
    key[16..24].copy_from_slice(b"spannorm");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(stream);
    Stream {
        rng,
        words: [0; WORDS],
        pos: WORDS,
    }
}

/// 32-bit words a [`Stream`] reads ahead: 4 KiB, sixteen ChaCha blocks.
const WORDS: usize = 1024;

/// A ChaCha8 stream read through a buffer, with a fast standard-normal sampler.
///
/// As a [`RngCore`] it yields exactly the words of the `ChaCha8Rng` it wraps, in the same
/// order (`next_u64` is two words, low first, as in `rand_core`'s block generator), so any
/// distribution sampled from it gives what it would give from the generator itself. Every
/// draw of a stream goes through it, so the words it reads ahead are never skipped.
///
/// [`Stream::normals`] returns exactly `rand_distr`'s `StandardNormal` samples: the ziggurat
/// fast path (about 99% of draws) runs here over the buffered words without a call per
/// sample, and every other draw is handed, from the same word, to `StandardNormal` itself.
pub struct Stream {
    rng: ChaCha8Rng,
    words: [u32; WORDS],
    pos: usize,
}

impl Stream {
    fn refill(&mut self) {
        let mut bytes = [0u8; 4 * WORDS];
        self.rng.fill_bytes(&mut bytes);
        for (w, b) in self.words.iter_mut().zip(bytes.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        self.pos = 0;
    }

    /// Appends `T::of(z · std)` for the next `count` standard normals `z` to `out`.
    pub fn normals<T: Real>(&mut self, out: &mut Vec<T>, count: usize, std: f64) {
        /// Draws tried together; a group is kept when all of them pass the fast test.
        const GROUP: usize = 4;
        let x_tab = ziggurat_x();
        out.reserve(count);
        let mut k = 0;
        while k < count {
            let mut pos = self.pos;
            let mut all_fast = true;
            while all_fast && k + GROUP <= count && pos + 2 * GROUP <= WORDS {
                let mut z = [0.0; GROUP];
                for (j, zj) in z.iter_mut().enumerate() {
                    let (fast, v) = ziggurat_step(self.word_pair(pos + 2 * j), x_tab);
                    *zj = v;
                    all_fast &= fast;
                }
                if all_fast {
                    out.extend(z.map(|zj| T::of(zj * std)));
                    k += GROUP;
                    pos += 2 * GROUP;
                }
            }
            self.pos = pos;
            // A group with a rejection, the tail of `out`, or a group straddling a refill:
            // one draw at a time.
            let end = (k + GROUP).min(count);
            while k < end {
                out.push(T::of(self.normal(x_tab) * std));
                k += 1;
            }
        }
    }

    /// The next standard normal: the fast test here when its word pair is buffered, else
    /// (or when rejected) `StandardNormal` itself from the same words, which redoes the
    /// test and goes on to the wedge or tail, reading what they need from the stream.
    fn normal(&mut self, x_tab: &[f64; 257]) -> f64 {
        if self.pos + 2 <= WORDS {
            let (fast, z) = ziggurat_step(self.word_pair(self.pos), x_tab);
            if fast {
                self.pos += 2;
                return z;
            }
        }
        self.sample(StandardNormal)
    }

    /// Words `w` (low) and `w + 1` (high) as one `u64`, as `next_u64` reads them.
    #[inline]
    fn word_pair(&self, w: usize) -> u64 {
        u64::from(self.words[w]) | (u64::from(self.words[w + 1]) << 32)
    }
}

/// `rand_distr`'s symmetric ziggurat step on `bits`: layer `i` from the low 8 bits,
/// `u ∈ [-1, 1)` from the high 52, and `z = u x_i`, accepted at once when `|z| < x_{i+1}`.
#[inline]
fn ziggurat_step(bits: u64, x_tab: &[f64; 257]) -> (bool, f64) {
    let i = (bits & 0xff) as usize;
    let u = f64::from_bits((bits >> 12) | (1024 << 52)) - 3.0;
    let z = u * x_tab[i];
    (z.abs() < x_tab[i + 1], z)
}

impl RngCore for Stream {
    #[inline]
    fn next_u32(&mut self) -> u32 {
        if self.pos == WORDS {
            self.refill();
        }
        let w = self.words[self.pos];
        self.pos += 1;
        w
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        let lo = u64::from(self.next_u32());
        let hi = u64::from(self.next_u32());
        (hi << 32) | lo
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(4) {
            let w = self.next_u32().to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
    }
}

/// The layer edges `x_0 … x_256` of `rand_distr`'s normal ziggurat, read through its public
/// sampler so that [`Stream::normals`] uses exactly its numbers.
///
/// Each word below makes `StandardNormal` return `u · x_i` with `u = 2^-20`, which is
/// exact, on its fast path (`i < 255`), or, for `i = 255` (whose fast test
/// `|u x_255| < x_256 = 0` always fails), on its wedge test with a uniform of `1 − 2^-53`,
/// which accepts any point this close to 0. `x_256 = 0` is the table's cap. A different
/// `rand_distr` is caught by the test comparing [`Stream::normals`] with `StandardNormal`.
fn ziggurat_x() -> &'static [f64; 257] {
    static TABLE: OnceLock<[f64; 257]> = OnceLock::new();
    TABLE.get_or_init(|| {
        /// Yields its word once, then all-ones words.
        struct Scripted(Option<u64>);
        impl RngCore for Scripted {
            fn next_u32(&mut self) -> u32 {
                self.next_u64() as u32
            }
            fn next_u64(&mut self) -> u64 {
                self.0.take().unwrap_or(u64::MAX)
            }
            fn fill_bytes(&mut self, dst: &mut [u8]) {
                dst.fill(0xff);
            }
        }
        // (2 + m / 2^51) − 3 = 2^-20 for the 52-bit mantissa m = 2^51 + 2^31.
        let m: u64 = (1 << 51) + (1 << 31);
        let scale = f64::from(1u32 << 20);
        let mut x = [0.0; 257];
        for (i, xi) in x.iter_mut().take(256).enumerate() {
            let z: f64 = Scripted(Some((m << 12) | i as u64)).sample(StandardNormal);
            *xi = z * scale;
        }
        x
    })
}

/// A `rows × cols` matrix of `N(0, std²)` draws, row by row.
///
/// Each entry is an `f64` standard normal `z` from the stream, stored as `T::of(z · std)`;
/// the matrix is filled in place (no `f64` copy), so drawing costs one allocation.
pub fn gaussian<T: Real>(rng: &mut Stream, rows: usize, cols: usize, std: f64) -> Array2<T> {
    let mut v = Vec::new();
    rng.normals(&mut v, rows * cols, std);
    Array2::from_shape_vec((rows, cols), v).expect("rows · cols values")
}

/// Standard deviation of a `fan_in × fan_out` weight under `init` with scale `sigma_w`.
pub fn weight_std(init: Init, sigma_w: f64, fan_in: usize, fan_out: usize) -> f64 {
    match init {
        Init::FanIn | Init::ZeroQuery => sigma_w / (fan_in as f64).sqrt(),
        Init::Xavier => sigma_w * (2.0 / (fan_in + fan_out) as f64).sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Array2<f64> = gaussian(&mut stream_rng(1, 2, 3), 4, 4, 1.0);
        let b: Array2<f64> = gaussian(&mut stream_rng(1, 2, 3), 4, 4, 1.0);
        let c: Array2<f64> = gaussian(&mut stream_rng(1, 2, 4), 4, 4, 1.0);
        let d: Array2<f64> = gaussian(&mut stream_rng(1, 3, 3), 4, 4, 1.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    /// The generator `Stream` wraps, for comparison.
    fn raw(master: u64, seed: u64, stream: u64) -> ChaCha8Rng {
        stream_rng(master, seed, stream).rng
    }

    #[test]
    fn buffered_normals_are_rand_distrs_standard_normal() {
        // Lengths cover empty and short matrices, partial groups, and more than one refill;
        // 2.3 million draws reach the wedge (about 1% of draws) and the tail (about 0.03%)
        // thousands and hundreds of times.
        let lengths = [0, 1, 3, 4, 5, 511, 512, 513, 4099, 65_536, 1 << 21];
        for (stream, &len) in lengths.iter().enumerate() {
            let stream = stream as u64;
            let mut reference = raw(7, 3, stream);
            let mut fast = stream_rng(7, 3, stream);
            let want: Vec<f64> = (0..len).map(|_| reference.sample(StandardNormal)).collect();
            let mut got: Vec<f64> = Vec::new();
            fast.normals(&mut got, len, 1.0);
            assert_eq!(got.len(), len);
            assert!(
                want.iter()
                    .zip(&got)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "length {len}"
            );
            // The stream goes on where the generator does, through any other draw.
            assert_eq!(reference.next_u64(), fast.next_u64(), "length {len}");
            assert_eq!(reference.next_u32(), fast.next_u32(), "length {len}");
            let z: f64 = reference.sample(StandardNormal);
            let mut one: Vec<f64> = Vec::new();
            fast.normals(&mut one, 1, 1.0);
            assert_eq!(z.to_bits(), one[0].to_bits(), "length {len}");
        }
        // At an odd word position (after one `next_u32`) every draw's word pair is odd, and
        // one pair straddles a refill of the buffer.
        let mut reference = raw(4, 4, 4);
        let mut fast = stream_rng(4, 4, 4);
        assert_eq!(reference.next_u32(), fast.next_u32());
        let want: Vec<f64> = (0..5000)
            .map(|_| reference.sample(StandardNormal))
            .collect();
        let mut got: Vec<f64> = Vec::new();
        fast.normals(&mut got, 5000, 1.0);
        assert!(want
            .iter()
            .zip(&got)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(reference.next_u64(), fast.next_u64());
        // Scaled and rounded to f32 exactly as `T::of(z · std)`, over consecutive matrices.
        let mut reference = raw(1, 2, 9);
        let mut fast = stream_rng(1, 2, 9);
        for (rows, cols, std) in [(17, 33, 0.3), (64, 256, 1.7), (5, 1, 2.0)] {
            let want = Array2::from_shape_simple_fn((rows, cols), || {
                let z: f64 = reference.sample(StandardNormal);
                (z * std) as f32
            });
            let got: Array2<f32> = gaussian(&mut fast, rows, cols, std);
            assert_eq!(want, got);
        }
    }

    #[test]
    fn the_ziggurat_table_decreases_to_its_cap() {
        let x = ziggurat_x();
        assert!(x.windows(2).all(|w| w[0] > w[1]));
        // rand_distr's tail start r = x_1.
        assert!((x[1] - 3.654_152_885_361_009).abs() < 1e-12);
        assert_eq!(x[256], 0.0);
    }

    #[test]
    fn stds_follow_the_formulas() {
        assert_eq!(weight_std(Init::FanIn, 2.0, 4, 100), 1.0);
        assert_eq!(weight_std(Init::Xavier, 1.0, 1, 1), 1.0);
    }
}
