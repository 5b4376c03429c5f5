//! # spannorm
//!
//! Signal propagation at initialization in deep Transformers, for every normalization
//! placement: PreNorm, PostNorm, the two readings of SpanNorm (arXiv 2601.22580), DeepNorm,
//! B2T, Peri-LN, Mix-LN, LayerNorm Scaling and attention-only controls.
//!
//! Data flows one way: [`config::RawConfig`] → [`config::SimConfig`] (validated) →
//! [`stack`] (weights, forward, exact backward) → [`metrics`] (per-layer records per seed) →
//! [`summary`] (means with 95% intervals) → [`report`] (JSON, CSV, table).
//!
//! ```
//! use spannorm::config::RawConfig;
//! let raw = RawConfig {
//!     placement: Some("span".into()),
//!     depth: Some(4),
//!     width: Some(16),
//!     tokens: Some(8),
//!     seeds: Some(2),
//!     ..Default::default()
//! };
//! let cfgs = raw.resolve().unwrap();
//! let results = spannorm::simulate::simulate(&cfgs, &|| {});
//! let q = &results[0].boundaries.q.mean;
//! assert_eq!(q.len(), 5); // boundaries l = 0..=4
//! ```
// `deny` rather than `forbid`: ndarray's `s!` macro carries its own `allow(unsafe_code)`.
#![deny(unsafe_code)]

pub mod attention;
pub mod bench;
pub mod block;
pub mod check;
pub mod choice;
pub mod cli;
pub mod config;
pub mod error;
pub mod ffn;
pub mod fit;
pub mod init;
pub mod metrics;
pub mod moe;
pub mod norm;
pub mod placement;
pub mod plot;
pub mod profile;
pub mod real;
pub mod report;
pub mod rng;
pub mod scale;
pub mod simd;
pub mod simulate;
pub mod stack;
pub mod summary;
pub mod sweep;
pub mod theory;
