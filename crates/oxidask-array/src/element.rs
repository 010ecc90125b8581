//! Element types: `f64`, `f32`, `i64`, `i32`, `u8` and `bool`.
//!
//! [`Element`] ties a Rust type to its [`DType`] and to its variant of [`Block`]; [`Number`]
//! adds arithmetic, [`Float`] the math functions. The set is closed (sealed): every operation
//! is one registered kernel that dispatches on the dtype, so the stock worker runs them all.

use std::fmt;

use oxidask_core::Data;

use crate::block::{Block, Chunk};

/// The element type of an array, at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum DType {
    /// 64-bit float.
    F64,
    /// 32-bit float.
    F32,
    /// 64-bit signed integer.
    I64,
    /// 32-bit signed integer.
    I32,
    /// 8-bit unsigned integer.
    U8,
    /// Boolean.
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::U8 | DType::Bool => 1,
        }
    }

    /// NumPy's name for it.
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "float64",
            DType::F32 => "float32",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }

    /// True for `f64` and `f32`.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f64 {}
    impl Sealed for f32 {}
    impl Sealed for i64 {}
    impl Sealed for i32 {}
    impl Sealed for u8 {}
    impl Sealed for bool {}
}

/// A type arrays can hold.
pub trait Element:
    Data + Copy + PartialEq + PartialOrd + Default + fmt::Debug + fmt::Display + sealed::Sealed
{
    /// Its dtype.
    const DTYPE: DType;
    /// What `sum` and `prod` return (`i64` for small integers and `bool`, as NumPy does).
    type Sum: Number;
    /// What `mean`, `var` and `std` return (`f32` for `f32`, else `f64`).
    type Float: Float;

    /// Wraps a chunk into the dynamic block type.
    fn wrap(chunk: Chunk<Self>) -> Block;
    /// Unwraps a block of this dtype.
    fn unwrap(block: Block) -> Result<Chunk<Self>, Block>;
    /// Borrows a block of this dtype.
    fn unwrap_ref(block: &Block) -> Option<&Chunk<Self>>;
    /// The value as `f64` (`true` is 1).
    fn to_f64(self) -> f64;
    /// From `f64`, as NumPy's cast does (truncating toward zero for integers; out-of-range
    /// values and NaN saturate, where NumPy's result is undefined).
    fn from_f64(v: f64) -> Self;
    /// The value as `i64` (exact for every integer type; floats truncate).
    fn to_i64(self) -> i64;
    /// From `i64` (integers wrap as NumPy's `astype` does).
    fn from_i64(v: i64) -> Self;
    /// Converts to another element type with NumPy's `astype` semantics.
    fn cast<U: Element>(self) -> U {
        if Self::DTYPE.is_float() || U::DTYPE.is_float() {
            U::from_f64(self.to_f64())
        } else {
            U::from_i64(self.to_i64())
        }
    }
}

/// Element types with arithmetic.
pub trait Number: Element {
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// `a + b` (integers wrap, as NumPy's do).
    fn add(a: Self, b: Self) -> Self;
    /// `a - b`.
    fn sub(a: Self, b: Self) -> Self;
    /// `a * b`.
    fn mul(a: Self, b: Self) -> Self;
    /// `a / b` (integers: truncating, and 0 when `b` is 0, where NumPy warns).
    fn div(a: Self, b: Self) -> Self;
    /// Remainder with the sign of the divisor (NumPy's `mod`); 0 when `b` is 0 for integers.
    fn rem(a: Self, b: Self) -> Self;
    /// `a ** b`.
    fn pow(a: Self, b: Self) -> Self;
    /// `-a`.
    fn neg(a: Self) -> Self;
    /// `|a|`.
    fn abs(a: Self) -> Self;
    /// The larger (NaN wins, as in `np.maximum`).
    fn max(a: Self, b: Self) -> Self;
    /// The smaller (NaN wins, as in `np.minimum`).
    fn min(a: Self, b: Self) -> Self;
    /// True for NaN.
    fn is_nan(a: Self) -> bool;
    /// Sum of a slice, pairwise for floats (as NumPy) so error grows with log n, not n.
    fn sum_slice(xs: &[Self]) -> Self;
    /// The lowest value (identity for `max`).
    const LOWEST: Self;
    /// The highest value (identity for `min`).
    const HIGHEST: Self;
}

/// Floating-point element types.
pub trait Float: Number {
    /// Applies a math function computed in `f64` (exact for `f64`; `f32` goes through `f64`).
    fn map_f64(a: Self, f: impl Fn(f64) -> f64) -> Self;
}

macro_rules! element {
    ($t:ty, $dt:ident, $sum:ty, $float:ty) => {
        impl Element for $t {
            const DTYPE: DType = DType::$dt;
            type Sum = $sum;
            type Float = $float;

            fn wrap(chunk: Chunk<Self>) -> Block {
                Block::$dt(chunk)
            }

            fn unwrap(block: Block) -> Result<Chunk<Self>, Block> {
                match block {
                    Block::$dt(c) => Ok(c),
                    other => Err(other),
                }
            }

            fn unwrap_ref(block: &Block) -> Option<&Chunk<Self>> {
                match block {
                    Block::$dt(c) => Some(c),
                    _ => None,
                }
            }

            #[allow(clippy::unnecessary_cast)]
            fn to_f64(self) -> f64 {
                self as f64
            }

            #[allow(clippy::unnecessary_cast)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }

            #[allow(clippy::unnecessary_cast)]
            fn to_i64(self) -> i64 {
                self as i64
            }

            #[allow(clippy::unnecessary_cast)]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
        }
    };
}

element!(f64, F64, f64, f64);
element!(f32, F32, f32, f32);
element!(i64, I64, i64, f64);
element!(i32, I32, i64, f64);
element!(u8, U8, i64, f64);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    type Sum = i64;
    type Float = f64;

    fn wrap(chunk: Chunk<Self>) -> Block {
        Block::Bool(chunk)
    }

    fn unwrap(block: Block) -> Result<Chunk<Self>, Block> {
        match block {
            Block::Bool(c) => Ok(c),
            other => Err(other),
        }
    }

    fn unwrap_ref(block: &Block) -> Option<&Chunk<Self>> {
        match block {
            Block::Bool(c) => Some(c),
            _ => None,
        }
    }

    fn to_f64(self) -> f64 {
        self as u8 as f64
    }

    fn from_f64(v: f64) -> Self {
        v != 0.0
    }

    fn to_i64(self) -> i64 {
        self as i64
    }

    fn from_i64(v: i64) -> Self {
        v != 0
    }
}

/// Pairwise summation of `f(x)` in `f64`, without allocating: the pattern NumPy uses.
pub fn pairwise_f64<T: Copy>(xs: &[T], f: &impl Fn(T) -> f64) -> f64 {
    const BLOCK: usize = 128;
    if xs.len() <= BLOCK {
        let mut acc = [0.0f64; 8];
        let mut chunks = xs.chunks_exact(8);
        for c in &mut chunks {
            for k in 0..8 {
                acc[k] += f(c[k]);
            }
        }
        let mut s = 0.0;
        for r in chunks.remainder() {
            s += f(*r);
        }
        ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + s
    } else {
        let half = (xs.len() / 2 / 8) * 8;
        pairwise_f64(&xs[..half], f) + pairwise_f64(&xs[half..], f)
    }
}

/// Pairwise summation: blocks of 128 summed with 8 accumulators, halves added recursively.
fn pairwise<T: Copy>(xs: &[T], zero: T, add: fn(T, T) -> T) -> T {
    const BLOCK: usize = 128;
    if xs.len() <= BLOCK {
        let mut acc = [zero; 8];
        let mut chunks = xs.chunks_exact(8);
        for c in &mut chunks {
            for k in 0..8 {
                acc[k] = add(acc[k], c[k]);
            }
        }
        let mut s = zero;
        for r in chunks.remainder() {
            s = add(s, *r);
        }
        let a = add(add(acc[0], acc[1]), add(acc[2], acc[3]));
        let b = add(add(acc[4], acc[5]), add(acc[6], acc[7]));
        add(add(a, b), s)
    } else {
        let half = (xs.len() / 2 / 8) * 8;
        add(
            pairwise(&xs[..half], zero, add),
            pairwise(&xs[half..], zero, add),
        )
    }
}

macro_rules! float {
    ($t:ty) => {
        impl Number for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            const HIGHEST: Self = <$t>::INFINITY;
            #[inline]
            fn add(a: Self, b: Self) -> Self {
                a + b
            }
            #[inline]
            fn sub(a: Self, b: Self) -> Self {
                a - b
            }
            #[inline]
            fn mul(a: Self, b: Self) -> Self {
                a * b
            }
            #[inline]
            fn div(a: Self, b: Self) -> Self {
                a / b
            }
            #[inline]
            fn rem(a: Self, b: Self) -> Self {
                let r = a % b;
                if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
                    r + b
                } else {
                    r
                }
            }
            #[inline]
            fn pow(a: Self, b: Self) -> Self {
                a.powf(b)
            }
            #[inline]
            fn neg(a: Self) -> Self {
                -a
            }
            #[inline]
            fn abs(a: Self) -> Self {
                a.abs()
            }
            #[inline]
            fn max(a: Self, b: Self) -> Self {
                if a.is_nan() || b.is_nan() {
                    <$t>::NAN
                } else if a >= b {
                    a
                } else {
                    b
                }
            }
            #[inline]
            fn min(a: Self, b: Self) -> Self {
                if a.is_nan() || b.is_nan() {
                    <$t>::NAN
                } else if a <= b {
                    a
                } else {
                    b
                }
            }
            #[inline]
            fn is_nan(a: Self) -> bool {
                a.is_nan()
            }
            fn sum_slice(xs: &[Self]) -> Self {
                pairwise(xs, 0.0, |a, b| a + b)
            }
        }

        impl Float for $t {
            #[allow(clippy::unnecessary_cast)]
            #[inline]
            fn map_f64(a: Self, f: impl Fn(f64) -> f64) -> Self {
                f(a as f64) as $t
            }
        }
    };
}

float!(f64);
float!(f32);

macro_rules! integer {
    ($t:ty) => {
        impl Number for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const LOWEST: Self = <$t>::MIN;
            const HIGHEST: Self = <$t>::MAX;
            #[inline]
            fn add(a: Self, b: Self) -> Self {
                a.wrapping_add(b)
            }
            #[inline]
            fn sub(a: Self, b: Self) -> Self {
                a.wrapping_sub(b)
            }
            #[inline]
            fn mul(a: Self, b: Self) -> Self {
                a.wrapping_mul(b)
            }
            #[inline]
            fn div(a: Self, b: Self) -> Self {
                a.checked_div(b).unwrap_or(0)
            }
            #[allow(unused_comparisons)]
            #[inline]
            fn rem(a: Self, b: Self) -> Self {
                match a.checked_rem(b) {
                    Some(r) if r != 0 && ((r < 0) != (b < 0)) => r.wrapping_add(b),
                    Some(r) => r,
                    None => 0,
                }
            }
            #[allow(unused_comparisons)]
            #[inline]
            fn pow(a: Self, b: Self) -> Self {
                if b < 0 {
                    0
                } else {
                    a.wrapping_pow(u32::try_from(b).unwrap_or(u32::MAX))
                }
            }
            #[inline]
            fn neg(a: Self) -> Self {
                a.wrapping_neg()
            }
            #[allow(unused_comparisons)]
            #[inline]
            fn abs(a: Self) -> Self {
                if a < 0 {
                    a.wrapping_neg()
                } else {
                    a
                }
            }
            #[inline]
            fn max(a: Self, b: Self) -> Self {
                Ord::max(a, b)
            }
            #[inline]
            fn min(a: Self, b: Self) -> Self {
                Ord::min(a, b)
            }
            #[inline]
            fn is_nan(_: Self) -> bool {
                false
            }
            fn sum_slice(xs: &[Self]) -> Self {
                xs.iter().fold(0, |a, b| a.wrapping_add(*b))
            }
        }
    };
}

integer!(i64);
integer!(i32);
integer!(u8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_is_accurate_where_naive_is_not() {
        let xs = vec![0.1f32; 10_000_000];
        let naive: f32 = xs.iter().sum();
        let pair = f32::sum_slice(&xs);
        assert!((pair - 1_000_000.0).abs() < 1.0, "pairwise {pair}");
        assert!(
            (naive - 1_000_000.0).abs() > 1000.0,
            "naive was accurate after all: {naive}"
        );
    }

    #[test]
    fn integer_division_and_modulo_follow_numpy() {
        assert_eq!(<i64 as Number>::div(7, 0), 0);
        assert_eq!(<i64 as Number>::rem(-7, 3), 2);
        assert_eq!(<i64 as Number>::rem(7, -3), -2);
        assert_eq!(<f64 as Number>::rem(-7.0, 3.0), 2.0);
        assert_eq!(
            <i32 as Number>::div(i32::MIN, -1),
            0,
            "overflowing division gives 0, not a panic"
        );
        assert_eq!(<u8 as Number>::pow(2, 9), 0, "wraps");
        assert!(<f64 as Number>::max(1.0, f64::NAN).is_nan());
    }
}
