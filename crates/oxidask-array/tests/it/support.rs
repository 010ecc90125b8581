//! Shared helpers: schedulers, data, chunkings and tolerant comparison.

use ndarray::{ArrayD, IxDyn};
use oxidask_core::{Collection, Compute};
use oxidask_local::{Synchronous, Threaded};
use proptest::prelude::*;

/// The schedulers every result is checked on.
pub fn schedulers() -> Vec<Box<dyn Compute>> {
    vec![Box::new(Synchronous::new()), Box::new(Threaded::new(2))]
}

/// Computes on the synchronous scheduler.
pub fn run<C: Collection>(c: &C) -> C::Output {
    c.compute_with(&Synchronous::new())
        .unwrap_or_else(|e| panic!("compute failed: {e}"))
}

/// A deterministic test array of `shape` with varied values.
pub fn data(shape: &[usize]) -> ArrayD<f64> {
    let mut i = 0u64;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        i += 1;
        ((i * 2654435761) % 1000) as f64 / 37.0 - 13.0
    })
}

/// Asserts two float arrays are equal to a relative tolerance.
pub fn assert_close(got: &ArrayD<f64>, want: &ArrayD<f64>, rtol: f64) {
    assert_eq!(got.shape(), want.shape(), "shapes differ");
    for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= rtol * (1.0 + w.abs());
        assert!(ok, "element {i}: got {g}, want {w}");
    }
}

/// A shape of 1 to 3 axes, lengths 0 to 9 (empty and single-element axes included).
pub fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..10, 1..4)
}

/// A shape and a chunking of it: per axis, block lengths that need not divide the length.
pub fn shape_and_chunks() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape().prop_flat_map(|s| {
        let chunks: Vec<_> = s.iter().map(|&len| 1usize..=(len.max(1))).collect();
        (Just(s), chunks)
    })
}
