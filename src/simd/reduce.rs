//! Sums in a fixed order that every path computes alike: element `i` of a slice goes to
//! partial sum `i mod L` (in order within each), and the partial sums are combined in a
//! fixed binary tree (`s_j += s_{j+L/2}`, then `s_j += s_{j+L/4}`, …). Row sums use
//! `L = LANES = 16`; the whole-matrix `f64` sums ([`sum_sq_f64`], [`dot_f64`]) use
//! `L = WIDE = 64`, enough independent chains for a 512-bit adder. A vector unit of any width
//! holds the partial sums in its lanes; the scalar path holds them in an array. Products
//! are rounded before they are added (no FMA), so the baseline path needs no software FMA.
//!
//! The `*_f64` sums widen each element to `f64` first (exact for `f32`), for metrics.
//!
//! Every function is `#[inline(always)]` for use inside [`super::dispatch`] kernels; the
//! dispatched entry points are the functions of the same name in [`super`].

use super::{LANES, WIDE};
use crate::real::Real;
use std::ops::Add;

/// The partial sums combined in a fixed tree.
#[inline(always)]
pub fn fold<A: Copy + Add<Output = A>, const L: usize>(mut acc: [A; L]) -> A {
    let mut w = L;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] = acc[i] + acc[i + w];
        }
    }
    acc[0]
}

/// `Σ f(x_i)` into partial sums of `A` (see the module docs).
#[inline(always)]
fn lanes<T: Copy, A: Copy + Add<Output = A>, const L: usize>(
    x: &[T],
    zero: A,
    f: impl Fn(T) -> A,
) -> A {
    let mut acc = [zero; L];
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        for j in 0..L {
            acc[j] = acc[j] + f(c[j]);
        }
    }
    for (j, &v) in chunks.remainder().iter().enumerate() {
        acc[j] = acc[j] + f(v);
    }
    fold(acc)
}

/// `Σ f(a_i, b_i)` over two slices of equal length.
#[inline(always)]
fn lanes2<T: Copy, A: Copy + Add<Output = A>, const L: usize>(
    a: &[T],
    b: &[T],
    zero: A,
    f: impl Fn(T, T) -> A,
) -> A {
    assert_eq!(a.len(), b.len());
    let mut acc = [zero; L];
    let mut ca = a.chunks_exact(L);
    let mut cb = b.chunks_exact(L);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..L {
            acc[j] = acc[j] + f(x[j], y[j]);
        }
    }
    for (j, (&u, &v)) in ca.remainder().iter().zip(cb.remainder()).enumerate() {
        acc[j] = acc[j] + f(u, v);
    }
    fold(acc)
}

/// `Σ x_i`.
#[inline(always)]
pub fn sum<T: Real>(x: &[T]) -> T {
    lanes::<_, _, LANES>(x, T::zero(), |v| v)
}

/// `Σ x_i²`.
#[inline(always)]
pub fn sum_sq<T: Real>(x: &[T]) -> T {
    lanes::<_, _, LANES>(x, T::zero(), |v| v * v)
}

/// `Σ a_i b_i`.
#[inline(always)]
pub fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    lanes2::<_, _, LANES>(a, b, T::zero(), |u, v| u * v)
}

/// `Σ x_i²` in `f64`.
#[inline(always)]
pub fn sum_sq_f64<T: Real>(x: &[T]) -> f64 {
    lanes::<_, _, WIDE>(x, 0.0, |v| v.f64() * v.f64())
}

/// `Σ a_i b_i` in `f64`.
#[inline(always)]
pub fn dot_f64<T: Real>(a: &[T], b: &[T]) -> f64 {
    lanes2::<_, _, WIDE>(a, b, 0.0, |u, v| u.f64() * v.f64())
}

/// `Σ (a_i − b_i)²`.
#[inline(always)]
pub fn sum_sq_diff(a: &[f64], b: &[f64]) -> f64 {
    lanes2::<_, _, LANES>(a, b, 0.0, |u, v| (u - v) * (u - v))
}

/// `(Σ a_i b_i, Σ a_i², Σ b_i²)` in `f64`, each in the order of [`dot_f64`].
#[inline(always)]
pub fn dot_norms_f64<T: Real>(a: &[T], b: &[T]) -> (f64, f64, f64) {
    assert_eq!(a.len(), b.len());
    let mut ab = [0.0; LANES];
    let mut aa = [0.0; LANES];
    let mut bb = [0.0; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..LANES {
            let (u, v) = (x[j].f64(), y[j].f64());
            ab[j] += u * v;
            aa[j] += u * u;
            bb[j] += v * v;
        }
    }
    for (j, (&u, &v)) in ca.remainder().iter().zip(cb.remainder()).enumerate() {
        let (u, v) = (u.f64(), v.f64());
        ab[j] += u * v;
        aa[j] += u * u;
        bb[j] += v * v;
    }
    (fold(ab), fold(aa), fold(bb))
}
