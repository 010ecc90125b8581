//! Operations shared by the tests.

use oxidask_core::task;

#[task(crate = oxidask_core)]
pub fn lit(x: i64) -> i64 {
    x
}

#[task(crate = oxidask_core)]
pub fn add(x: i64, y: i64) -> i64 {
    x.wrapping_add(y)
}

#[task(crate = oxidask_core)]
pub fn mix(x: i64, y: i64, z: i64) -> i64 {
    x.wrapping_mul(3)
        .wrapping_sub(y)
        .wrapping_add(z.wrapping_mul(7))
}

#[task(crate = oxidask_core)]
pub fn neg(x: i64) -> i64 {
    x.wrapping_neg()
}

#[task(crate = oxidask_core)]
pub fn total(xs: &[i64]) -> i64 {
    xs.iter().fold(0i64, |a, b| a.wrapping_add(*b))
}
