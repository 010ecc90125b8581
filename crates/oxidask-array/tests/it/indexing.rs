//! Slicing, integer indexing, new axes and masks against ndarray.

use ndarray::{s, ArrayD, IxDyn, SliceInfoElem};
use oxidask_array::{self as da, ArrayError};
use proptest::prelude::*;

use crate::support::{data, run, shape_and_chunks};

fn elem() -> impl Strategy<Value = SliceInfoElem> {
    prop_oneof![
        (
            -12isize..12,
            prop::option::of(-12isize..12),
            prop_oneof![-3isize..0, 1isize..4]
        )
            .prop_map(|(start, end, step)| SliceInfoElem::Slice { start, end, step }),
        Just(SliceInfoElem::Slice {
            start: 0,
            end: None,
            step: -1
        }),
        Just(SliceInfoElem::NewAxis),
    ]
}

#[test]
fn tutorial_reversal_matches_ndarray() {
    let a = data(&[10, 7]);
    let x = da::from_array(a.clone(), (4, 3));
    assert_eq!(
        run(&x.slice(s![..;-1, ..;-1])),
        a.slice(s![..;-1, ..;-1]).to_owned().into_dyn()
    );
    assert_eq!(
        run(&x.reversed()),
        a.slice(s![..;-1, ..;-1]).to_owned().into_dyn()
    );
    assert_eq!(
        run(&x.slice(s![2..9;3, -2])),
        a.slice(s![2..9;3, -2]).to_owned().into_dyn()
    );
    assert_eq!(
        run(&x.slice(s![.., ndarray::NewAxis, 1..])),
        a.slice(s![.., ndarray::NewAxis, 1..]).to_owned().into_dyn()
    );
    // Whole blocks keep their keys: a full slice adds no tasks.
    assert_eq!(x.slice(s![.., ..]).ntasks(), x.ntasks());
}

#[test]
fn ones_times_reversed_ones_stays_unallocated() {
    let ones = da::ones::<f64>((40_000, 40_000)).chunks((10_000, 10_000));
    let fancy = (&ones * &ones.slice(s![..;-1, ..;-1])).mean();
    assert_eq!(fancy.compute_scalar().unwrap(), 1.0);
}

#[test]
fn bad_indices_name_the_shape() {
    let x = da::ones::<f64>((3, 4));
    let e = x.slice(s![5, ..]).check().unwrap_err();
    assert!(matches!(e, ArrayError::IndexOutOfRange { .. }));
    assert!(e.to_string().contains("[3, 4]"), "{e}");
    let e = x.slice(s![.., .., 0]).check().unwrap_err();
    assert!(e.to_string().contains("too many indices"), "{e}");
}

#[test]
fn boolean_masks_select_in_row_major_order() {
    let a = data(&[9, 4]);
    let x = da::from_array(a.clone(), (4, 3));
    let picked = x.masked(&x.gt_scalar(0.0));
    let want: Vec<f64> = a.iter().copied().filter(|v| *v > 0.0).collect();
    assert_eq!(picked.shape(), vec![want.len()]);
    assert_eq!(run(&picked).iter().copied().collect::<Vec<_>>(), want);
    let none = x.masked(&x.gt_scalar(1e9));
    assert_eq!(run(&none).len(), 0);
    let wrong = da::ones::<f64>((2, 2)).gt_scalar(0.0);
    assert!(matches!(
        x.masked(&wrong).check(),
        Err(ArrayError::MaskShape { .. })
    ));
}

/// ndarray panics on out-of-bounds slice ends (NumPy clamps them; so do we): keep the
/// oracle's cases in its domain.
fn in_ndarray_bounds(elems: &[SliceInfoElem], shape: &[usize]) -> bool {
    let mut axis = 0;
    for e in elems {
        if let SliceInfoElem::Slice { start, end, .. } = *e {
            let n = shape[axis] as isize;
            let ok = |v: isize| -n <= v && v <= n;
            if !ok(start) || !end.is_none_or(ok) {
                return false;
            }
        }
        if !matches!(e, SliceInfoElem::NewAxis) {
            axis += 1;
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn slices_match_ndarray((shape, chunks) in shape_and_chunks(), elems in prop::collection::vec(elem(), 0..4)) {
        let a = data(&shape);
        let consumed = elems.iter().filter(|e| !matches!(e, SliceInfoElem::NewAxis)).count();
        prop_assume!(consumed <= shape.len());
        prop_assume!(in_ndarray_bounds(&elems, &shape));
        let x = da::from_array(a.clone(), chunks);
        let mut info = elems.clone();
        for _ in consumed..shape.len() {
            info.push(SliceInfoElem::Slice { start: 0, end: None, step: 1 });
        }
        let want: ArrayD<f64> = a.slice(info.as_slice()).to_owned();
        prop_assert_eq!(run(&x.slice(elems)), want);
    }

    #[test]
    fn integer_indices_match_ndarray((shape, chunks) in shape_and_chunks(), pick in 0usize..100) {
        prop_assume!(shape[0] > 0);
        let a = data(&shape);
        let x = da::from_array(a.clone(), chunks);
        let i = (pick % shape[0]) as isize;
        let want = a.index_axis(ndarray::Axis(0), i as usize).to_owned();
        prop_assert_eq!(run(&x.slice([SliceInfoElem::Index(i)])), want.clone());
        let neg = i - shape[0] as isize;
        prop_assert_eq!(run(&x.slice([SliceInfoElem::Index(neg)])), want);
    }
}

#[test]
fn out_of_range_slice_ends_clamp_like_numpy() {
    let a = data(&[5]);
    let x = da::from_array(a.clone(), 2);
    assert_eq!(run(&x.slice(s![-12..12])), a);
    let backwards = [SliceInfoElem::Slice {
        start: 3,
        end: Some(1),
        step: 1,
    }];
    assert_eq!(run(&x.slice(backwards)).len(), 0);
}

#[test]
fn empty_selection() {
    let x = da::from_array(ArrayD::from_elem(IxDyn(&[5]), 1.0), 2);
    assert_eq!(run(&x.slice(s![2..2])).len(), 0);
}
