//! Weight initialization and the random streams behind every draw.
//!
//! Every weight is `N(0, σ_w² / fan_in)` (`fan-in`), `N(0, σ_w² · 2 / (fan_in + fan_out))`
//! (`xavier`), or `fan-in` with `W_q = 0` (`zero-query`, which makes attention exactly uniform
//! at init). DeepNorm additionally multiplies `W_v, W_o, W_1, W_2` (and `W_g`, and every
//! expert's weights) by its `β = (8L)^{-1/4}`.
//!
//! # Streams
//! A run is fully determined by `(master seed, seed index)`: stream 0 of a seed draws the
//! inputs and the loss projection, and stream `l` draws the weights of block `l`, each from
//! its own Philox4x32-10 counters (layout in [`crate::rng`]). So block `l` can be drawn again
//! in the backward pass (nothing is stored) and seeds are independent of each other and of
//! the thread count.

use crate::choice_enum;
use crate::real::Real;
pub use crate::rng::Stream;
use ndarray::Array2;

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
    Stream::new(master, seed, stream)
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
        let e: Array2<f64> = gaussian(&mut stream_rng(2, 2, 3), 4, 4, 1.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_ne!(a, e);
    }

    #[test]
    fn consecutive_matrices_continue_the_stream() {
        let mut one = stream_rng(1, 2, 9);
        let all: Array2<f64> = gaussian(&mut one, 1, 17 * 33 + 64 * 256 + 5, 1.0);
        let mut rng = stream_rng(1, 2, 9);
        let mut at = 0;
        for (rows, cols, std) in [(17, 33, 0.3), (64, 256, 1.7), (5, 1, 2.0)] {
            let got: Array2<f32> = gaussian(&mut rng, rows, cols, std);
            let want = all.slice(ndarray::s![0, at..at + rows * cols]);
            assert!(got.iter().zip(want).all(|(g, w)| *g == (w * std) as f32));
            at += rows * cols;
        }
    }

    #[test]
    fn stds_follow_the_formulas() {
        assert_eq!(weight_std(Init::FanIn, 2.0, 4, 100), 1.0);
        assert_eq!(weight_std(Init::Xavier, 1.0, 1, 1), 1.0);
    }
}
