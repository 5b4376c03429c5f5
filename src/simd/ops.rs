//! Elementwise passes over whole matrices, dispatched like every kernel (see [`super`]).
//!
//! Each takes standard-layout (row-major, contiguous) matrices, which is what the engine
//! produces, and falls back to ndarray's own loops for any other layout; both compute each
//! element by the same expression, so the layout does not change a bit.

use super::dispatch;
use crate::real::Real;
use ndarray::{Array2, ArrayView2};

/// `y += x`.
pub fn add_assign<T: Real>(y: &mut Array2<T>, x: &Array2<T>) {
    if y.is_standard_layout() && x.is_standard_layout() && y.dim() == x.dim() {
        let ys = y.as_slice_mut().expect("standard layout");
        let xs = x.as_slice().expect("standard layout");
        dispatch(
            #[inline(always)]
            || {
                for (a, &b) in ys.iter_mut().zip(xs) {
                    *a += b;
                }
            },
        );
    } else {
        *y += x;
    }
}

/// `x ← c x`.
pub fn scale_in_place<T: Real>(x: &mut Array2<T>, c: T) {
    match x.as_slice_mut() {
        Some(xs) => dispatch(
            #[inline(always)]
            || {
                for v in xs.iter_mut() {
                    *v *= c;
                }
            },
        ),
        None => x.mapv_inplace(|v| v * c),
    }
}

/// `c x`, a new standard-layout matrix.
pub fn scaled<T: Real>(x: ArrayView2<T>, c: T) -> Array2<T> {
    map(
        x,
        #[inline(always)]
        |v| v * c,
    )
}

/// `f(x)` elementwise, a new standard-layout matrix; `f` must be `#[inline(always)]`-able
/// (a closure or an `#[inline(always)]` function) to be compiled for the dispatched path.
#[inline(always)]
pub fn map<T: Real>(x: ArrayView2<T>, f: impl Fn(T) -> T) -> Array2<T> {
    match x.as_slice() {
        Some(xs) => {
            let v = dispatch(
                #[inline(always)]
                || xs.iter().map(|&a| f(a)).collect::<Vec<T>>(),
            );
            Array2::from_shape_vec(x.raw_dim(), v).expect("same shape")
        }
        None => x.map(|&a| f(a)),
    }
}

/// `x ← f(x)` elementwise (see [`map`]).
#[inline(always)]
pub fn map_in_place<T: Real>(x: &mut Array2<T>, f: impl Fn(T) -> T) {
    match x.as_slice_mut() {
        Some(xs) => dispatch(
            #[inline(always)]
            || {
                for v in xs.iter_mut() {
                    *v = f(*v);
                }
            },
        ),
        None => x.mapv_inplace(f),
    }
}

/// `y ← f(y, x)` elementwise over two matrices of one shape (see [`map`]).
#[inline(always)]
pub fn zip_in_place<T: Real>(y: &mut Array2<T>, x: &Array2<T>, f: impl Fn(T, T) -> T) {
    assert_eq!(y.dim(), x.dim());
    if y.is_standard_layout() && x.is_standard_layout() {
        let ys = y.as_slice_mut().expect("standard layout");
        let xs = x.as_slice().expect("standard layout");
        dispatch(
            #[inline(always)]
            || {
                for (a, &b) in ys.iter_mut().zip(xs) {
                    *a = f(*a, b);
                }
            },
        );
    } else {
        ndarray::Zip::from(y).and(x).for_each(|a, &b| *a = f(*a, b));
    }
}

/// `y ← f(y, x, w)` elementwise over three matrices of one shape (see [`map`]).
#[inline(always)]
pub fn zip3_in_place<T: Real>(
    y: &mut Array2<T>,
    x: &Array2<T>,
    w: &Array2<T>,
    f: impl Fn(T, T, T) -> T,
) {
    assert_eq!(y.dim(), x.dim());
    assert_eq!(y.dim(), w.dim());
    if y.is_standard_layout() && x.is_standard_layout() && w.is_standard_layout() {
        let ys = y.as_slice_mut().expect("standard layout");
        let xs = x.as_slice().expect("standard layout");
        let ws = w.as_slice().expect("standard layout");
        dispatch(
            #[inline(always)]
            || {
                for ((a, &b), &c) in ys.iter_mut().zip(xs).zip(ws) {
                    *a = f(*a, b, c);
                }
            },
        );
    } else {
        ndarray::Zip::from(y)
            .and(x)
            .and(w)
            .for_each(|a, &b, &c| *a = f(*a, b, c));
    }
}

/// `Σ x²` of a matrix in `f64`, in the lane order of [`super::reduce`] over its logical
/// (row-major) order; a matrix of another layout is summed row by row, each row in that
/// order and the rows in sequence, which equals the contiguous sum only when a row is a
/// multiple of [`super::WIDE`] long (every engine matrix is contiguous).
pub fn sum_sq_f64<T: Real>(x: ArrayView2<T>) -> f64 {
    match x.as_slice() {
        Some(xs) => super::sum_sq_f64(xs),
        None => x
            .rows()
            .into_iter()
            .map(|r| super::sum_sq_f64(&r.to_vec()))
            .sum(),
    }
}

/// `Σ a b` of two matrices of one shape in `f64` (orders as in [`sum_sq_f64`]).
pub fn dot_f64<T: Real>(a: ArrayView2<T>, b: ArrayView2<T>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    match (a.as_slice(), b.as_slice()) {
        (Some(xs), Some(ys)) => super::dot_f64(xs, ys),
        _ => a
            .rows()
            .into_iter()
            .zip(b.rows())
            .map(|(r, s)| super::dot_f64(&r.to_vec(), &s.to_vec()))
            .sum(),
    }
}
