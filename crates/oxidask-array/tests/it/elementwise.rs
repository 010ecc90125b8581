//! Elementwise operations against ndarray.

use ndarray::{ArrayD, IxDyn};
use oxidask_array::{self as da, where_, where_scalar};
use oxidask_core::Collection;
use proptest::prelude::*;

use crate::support::{assert_close, data, run, schedulers, shape_and_chunks};

#[test]
fn arithmetic_broadcasts_like_numpy() {
    let a = data(&[4, 5]);
    let b = data(&[5]);
    let c = data(&[4, 1]);
    let x = da::from_array(a.clone(), (3, 2));
    let y = da::from_array(b.clone(), 4);
    let z = da::from_array(c.clone(), (1, 1));
    let got = run(&(&(&x + &y) * &z - 2.0));
    let want = (&(&a + &b) * &c) - 2.0;
    assert_close(&got, &want, 1e-12);
    let got = run(&(2.0 / &x));
    assert_close(&got, &a.mapv(|v| 2.0 / v), 1e-12);
}

#[test]
fn chained_steps_fuse_into_one_task_per_block() {
    let x = da::from_array(data(&[6, 6]), 3);
    let y = ((&x + 1.0).abs().sqrt() * 2.0).exp();
    // 4 input blocks + 4 fused blocks, nothing in between.
    assert_eq!(y.ntasks(), 8);
    let want = data(&[6, 6]).mapv(|v| ((v + 1.0).abs().sqrt() * 2.0).exp());
    for s in schedulers() {
        assert_close(&y.compute_with(&*s).unwrap(), &want, 1e-12);
    }
}

#[test]
fn constants_do_not_allocate_until_needed() {
    // (ones * ones[::-1, ::-1]).mean() of a 40000x40000 array: 12.8 GB if dense.
    let ones = da::ones::<f64>((40_000, 40_000)).chunks((10_000, 10_000));
    let m = (&ones * &ones).mean();
    assert_eq!(m.compute_scalar().unwrap(), 1.0);
    let s = (&ones * 3.0 - 1.0).sum();
    assert_eq!(s.compute_scalar().unwrap(), 2.0 * 1.6e9);
}

#[test]
fn comparisons_where_and_astype() {
    let a = data(&[7, 3]);
    let x = da::from_array(a.clone(), (2, 2));
    let pos = x.gt_scalar(0.0);
    assert_eq!(run(&pos), a.mapv(|v| v > 0.0));
    let clipped = where_scalar(&pos, 1.0, -1.0);
    assert_eq!(run(&clipped), a.mapv(|v| if v > 0.0 { 1.0 } else { -1.0 }));
    let zero = da::zeros::<f64>((7, 3));
    assert_eq!(run(&where_(&pos, &x, &zero)), a.mapv(|v| v.max(0.0)));
    let ints = x.astype::<i32>();
    assert_eq!(run(&ints), a.mapv(|v| v as i32));
    assert_eq!(
        run(&ints.astype::<f64>().astype::<bool>()),
        a.mapv(|v| v as i32 != 0)
    );
    assert_eq!(run(&x.clip(-1.0, 1.0)), a.mapv(|v| v.clamp(-1.0, 1.0)));
}

#[test]
fn math_functions_match_f64() {
    let a = data(&[5, 5]).mapv(|v| v / 20.0);
    let x = da::from_array(a.clone(), 2);
    assert_close(&run(&x.sin()), &a.mapv(f64::sin), 1e-15);
    assert_close(&run(&x.arccos()), &a.mapv(f64::acos), 1e-15);
    assert_close(&run(&x.abs().log1p()), &a.mapv(|v| v.abs().ln_1p()), 1e-15);
    assert_close(&run(&x.powf(2.0)), &a.mapv(|v| v.powf(2.0)), 1e-15);
    assert_close(&run(&x.round()), &a.mapv(f64::round_ties_even), 0.0);
    let f = da::from_array(a.mapv(|v| v as f32), 2);
    let got = run(&f.tanh()).mapv(|v| v as f64);
    assert_close(&got, &a.mapv(|v| (v as f32).tanh() as f64), 1e-6);
}

#[test]
fn integer_arithmetic_wraps_and_divides_like_numpy() {
    let a = ArrayD::from_shape_vec(IxDyn(&[4]), vec![7i64, -7, 5, 0]).unwrap();
    let x = da::from_array(a, 2);
    let zero_div = run(&(&x / 0));
    assert_eq!(
        zero_div.iter().copied().collect::<Vec<_>>(),
        vec![0, 0, 0, 0]
    );
    let m = run(&(&x % 3));
    assert_eq!(m.iter().copied().collect::<Vec<_>>(), vec![1, 2, 2, 0]);
    let big = da::full(3, u8::MAX);
    assert_eq!(
        run(&(&big + 1u8)).iter().copied().collect::<Vec<_>>(),
        vec![0, 0, 0]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn elementwise_expressions_match_ndarray_at_any_chunking(
        (shape, chunks) in shape_and_chunks(),
        other in prop::collection::vec(1usize..5, 3),
    ) {
        let a = data(&shape);
        let b = a.mapv(|v| v * 0.5 + 1.0);
        let x = da::from_array(a.clone(), chunks.clone());
        // A differently chunked operand forces a rechunk to the common refinement.
        let y = da::from_array(b.clone(), other[..shape.len()].to_vec());
        let expr = (&(&x * &y) - &x.abs()).maximum(&y) / 3.0;
        let want = ndarray::Zip::from(&a).and(&b).map_collect(|&a, &b| {
            let v = a * b - a.abs();
            (if v.is_nan() || b.is_nan() { f64::NAN } else { v.max(b) }) / 3.0
        });
        assert_close(&run(&expr), &want, 1e-12);
    }
}
