//! Transpose, reshape, squeeze, concatenate and stack against ndarray.

use ndarray::{Axis, IxDyn};
use oxidask_array::{self as da, ArrayError};
use proptest::prelude::*;

use crate::support::{data, run, shape_and_chunks};

#[test]
fn transpose_and_swapaxes() {
    let a = data(&[5, 4, 3]);
    let x = da::from_array(a.clone(), (2, 3, 2));
    assert_eq!(run(&x.t()), a.t().to_owned());
    assert_eq!(
        run(&x.transpose(&[1, 0, 2])),
        a.clone().permuted_axes(IxDyn(&[1, 0, 2]))
    );
    assert_eq!(
        run(&x.swapaxes(0, -1)),
        a.clone().permuted_axes(IxDyn(&[2, 1, 0]))
    );
    assert!(x.transpose(&[0, 0, 1]).check().is_err());
}

#[test]
fn tutorial_x_plus_xt_minus_mean() {
    let a = data(&[12, 12]);
    let x = da::from_array(a.clone(), 5);
    let got = run(&(&(&x + &x.t()) - &x.mean_axis(0)).sum());
    let want = (&(&a + &a.t()) - &a.mean_axis(Axis(0)).unwrap()).sum();
    assert!((got.iter().next().unwrap() - want).abs() < 1e-9);
}

#[test]
fn reshape_where_chunks_allow_and_a_clear_error_otherwise() {
    let a = data(&[6, 4]);
    let x = da::from_array(a.clone(), (3, 4));
    let flat = x.reshape(24);
    assert_eq!(flat.chunk_lengths(), vec![vec![12, 12]]);
    assert_eq!(
        run(&flat),
        a.clone().into_shape_with_order(IxDyn(&[24])).unwrap()
    );
    assert_eq!(run(&flat.reshape((6, 4))), a);
    assert_eq!(
        run(&x.reshape((2, 3, 4))),
        a.clone().into_shape_with_order(IxDyn(&[2, 3, 4])).unwrap()
    );
    // Merging axes needs the inner axis in one block.
    let split = da::from_array(a.clone(), (3, 2));
    let e = split.reshape(24).check().unwrap_err();
    assert!(matches!(e, ArrayError::ReshapeChunks { .. }));
    assert!(e.to_string().contains("rechunk"), "{e}");
    assert_eq!(
        run(&split.rechunk((3, -1)).reshape(24)),
        a.clone().into_shape_with_order(IxDyn(&[24])).unwrap()
    );
    assert!(matches!(
        x.reshape(7).check(),
        Err(ArrayError::ReshapeSize { .. })
    ));
}

#[test]
fn squeeze_expand_dims_ravel() {
    let a = data(&[3, 1, 4]);
    let x = da::from_array(a.clone(), 2);
    assert_eq!(run(&x.squeeze(None)).shape(), &[3, 4]);
    assert_eq!(
        run(&x.squeeze(Some(&[1]))),
        a.clone().index_axis_move(Axis(1), 0)
    );
    assert!(x.squeeze(Some(&[0])).check().is_err());
    assert_eq!(run(&x.expand_dims(0)).shape(), &[1, 3, 1, 4]);
    assert_eq!(run(&x.ravel()).len(), 12);
}

#[test]
fn concatenate_and_stack() {
    let a = data(&[4, 3]);
    let b = data(&[2, 3]).mapv(|v| v + 100.0);
    let x = da::from_array(a.clone(), (3, 2));
    let y = da::from_array(b.clone(), (1, 3)); // other chunking on axis 1: unified
    let c = da::concatenate(&[x.clone(), y.clone()], 0);
    assert_eq!(
        run(&c),
        ndarray::concatenate(Axis(0), &[a.view(), b.view()]).unwrap()
    );
    let e = da::concatenate(&[x.clone(), y.t()], 0).check().unwrap_err();
    assert!(
        e.to_string().contains("[4, 3]") && e.to_string().contains("[3, 2]"),
        "{e}"
    );
    let s = da::stack(&[x.clone(), x.clone()], 1);
    assert_eq!(
        run(&s),
        ndarray::stack(Axis(1), &[a.view(), a.view()]).unwrap()
    );
    assert!(da::stack(&[x, y], 0).check().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn transposes_match_ndarray((shape, chunks) in shape_and_chunks()) {
        let a = data(&shape);
        let x = da::from_array(a.clone(), chunks);
        prop_assert_eq!(run(&x.t()), a.t().to_owned());
        prop_assert_eq!(run(&x.t().t()), a);
    }
}
