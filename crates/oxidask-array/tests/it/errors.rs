//! Bad input gives errors naming the shapes involved; nothing panics.

use oxidask_array::{self as da, ArrayError, Reduce};
use oxidask_core::Collection;

#[test]
fn mismatched_shapes_name_both() {
    let a = da::ones::<f64>((3, 4));
    let b = da::ones::<f64>((5, 4));
    let c = &a + &b;
    let err = c.check().unwrap_err();
    assert!(matches!(err, ArrayError::Broadcast { .. }));
    let msg = err.to_string();
    assert!(msg.contains("[3, 4]") && msg.contains("[5, 4]"), "{msg}");
    // The error travels through later operations and out of compute().
    let later = (&c * 2.0).sum();
    let e = later
        .compute_with(&oxidask_local::Synchronous::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("[3, 4]") && e.contains("[5, 4]"), "{e}");
}

#[test]
fn out_of_range_axes_and_bad_chunks() {
    let a = da::ones::<f64>((3, 4));
    let e = a.sum_axis(2).check().unwrap_err().to_string();
    assert!(
        e.contains("axis 2") && e.contains("dimension 2") && e.contains("[3, 4]"),
        "{e}"
    );
    let e = a
        .sum_with(Reduce::axes([0, -2]))
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("repeated"), "{e}");
    let e = a
        .chunks(vec![vec![1, 1], vec![4]])
        .check()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("do not tile axis 0") && e.contains("[3, 4]"),
        "{e}"
    );
    let e = a.chunks((2,)).check().unwrap_err().to_string();
    assert!(e.contains("different number of axes"), "{e}");
}

#[test]
fn reductions_of_empty_arrays() {
    let e = da::zeros::<f64>((0, 3));
    assert_eq!(e.sum().compute_scalar().unwrap(), 0.0);
    assert!(e.max().check().is_err());
    assert!(e.mean().compute_scalar().unwrap().is_nan());
}
