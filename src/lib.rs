//! # spannorm
//!
//! Signal propagation at initialization in deep Transformers, for every normalization
//! placement: PreNorm, PostNorm, the two readings of SpanNorm (arXiv 2601.22580), DeepNorm,
//! B2T, Peri-LN, Mix-LN, LayerNorm Scaling and attention-only controls. The library
//! simulates stacks (forward, exact backward, per-layer metrics over seeds), predicts the
//! same quantities by mean-field theory, and holds the two against each other.
//!
//! # Start here
//! - [`config`]: a run's configuration; [`config::SimConfig::builder`] names every field.
//! - [`simulate::simulate`]: runs configurations and summarizes them over seeds into
//!   [`result::RunResult`]s, the one schema every command reads and writes.
//! - [`theory::predict`]: the mean-field prediction of the same result, or why there is none.
//! - [`stack::run`] with a [`stack::Observer`]: one seed, with your own measurements.
//! - [`check`]: the named predictions as verdicts; [`sweep`], [`store`], [`plot`]: many
//!   configurations, their results directories, and figures.
//!
//! Data flows one way: [`config`] → [`stack`] (weights, forward, backward, on
//! [`placement`]'s block formulas through [`block::Tape`]) → [`metrics`] (per-seed records)
//! → [`simulate`] and [`summary`] (means with 95% intervals) → [`result`] → [`store`],
//! [`check`], [`sweep`], [`plot`]. The theory runs the same block formulas on token kernels
//! ([`theory::tape`]). The `spannorm` binary is a thin command line over this library.
//!
//! # Simulate a configuration
//! ```
//! use spannorm::config::SimConfig;
//! use spannorm::placement::Placement;
//! use spannorm::simulate::{simulate, Options};
//! let cfg = SimConfig::builder()
//!     .placement(Placement::Span)
//!     .depth(4)
//!     .width(16)
//!     .tokens(8)
//!     .heads(2)
//!     .seeds(2)
//!     .build()
//!     .unwrap();
//! let results = simulate(&[cfg], &Options::default()).unwrap();
//! let q = &results[0].boundaries.q;
//! assert_eq!(q.mean.len(), 5); // boundaries l = 0..=4
//! assert_eq!(q.n, vec![2; 5]); // both seeds everywhere
//! assert!(results[0].holes().is_empty()); // every entry a value or explained
//! ```
//!
//! # Predict it
//! ```
//! use spannorm::config::SimConfig;
//! use spannorm::init::Init;
//! use spannorm::placement::Placement;
//! let cfg = SimConfig::builder()
//!     .placement(Placement::Post)
//!     .depth(4)
//!     .width(64)
//!     .tokens(8)
//!     .heads(2)
//!     .init(Init::ZeroQuery) // uniform attention: the mean-field maps are exact
//!     .build()
//!     .unwrap();
//! let th = spannorm::theory::predict(&cfg).unwrap();
//! // post closes every block with a norm: q = 1 after block 1 (up to the norm's eps).
//! assert!((th.boundaries.q.mean[4].unwrap() - 1.0).abs() < 1e-5);
//! // Where a derivation does not apply, the answer is an error, not a number.
//! let moe_causal = SimConfig::builder()
//!     .placement(Placement::Pre)
//!     .moe_experts(4)
//!     .mask(spannorm::attention::Mask::Causal)
//!     .build()
//!     .unwrap();
//! assert!(spannorm::theory::predict(&moe_causal).is_err());
//! ```
//!
//! # Hold a custom observer to a run
//! ```
//! use ndarray::Array2;
//! use spannorm::config::SimConfig;
//! use spannorm::placement::Placement;
//! use spannorm::stack::{self, Memory, Observer};
//!
//! /// The largest entry of every block boundary.
//! struct MaxAbs(Vec<f64>);
//! impl Observer<f64> for MaxAbs {
//!     fn boundary(&mut self, _l: usize, x: &Array2<f64>) {
//!         self.0.push(x.iter().fold(0.0, |m, v| m.max(v.abs())));
//!     }
//! }
//!
//! let cfg = SimConfig::builder()
//!     .placement(Placement::Pre)
//!     .depth(3)
//!     .width(16)
//!     .tokens(4)
//!     .heads(2)
//!     .build()
//!     .unwrap();
//! let m = cfg.model();
//! let seed = 0;
//! let inputs = stack::inputs::<f64>(m, cfg.seed(), seed);
//! let weights = |l| stack::block_weights(m, cfg.seed(), seed, l);
//! let mut obs = MaxAbs(Vec::new());
//! stack::run(m, weights, inputs, &mut obs, Memory::Recompute).unwrap();
//! assert_eq!(obs.0.len(), 4);
//! ```
// `deny` rather than `forbid`: ndarray's `s!` macro carries its own `allow(unsafe_code)`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod atomic;
pub mod attention;
pub mod bench;
pub mod block;
pub mod check;
pub mod choice;
pub mod config;
pub mod cost;
pub mod error;
pub mod ffn;
pub mod fit;
pub mod init;
pub mod lang;
pub mod loss;
pub mod machine;
pub mod metrics;
pub mod moe;
pub mod norm;
pub mod normop;
pub mod placement;
pub mod plot;
pub mod profile;
pub mod real;
pub mod report;
pub mod result;
pub mod rng;
pub mod scale;
pub mod simd;
pub mod simulate;
pub mod stack;
pub mod store;
pub mod sublayer;
pub mod summary;
pub mod sweep;
pub mod theory;
pub mod train;
pub mod weight;
