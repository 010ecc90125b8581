//! Reductions against ndarray.

use ndarray::{ArrayD, Axis, IxDyn};
use oxidask_array::{self as da, Reduce};
use oxidask_core::Collection;
use proptest::prelude::*;

use crate::support::{assert_close, data, run, schedulers, shape_and_chunks};

fn sum_axes(a: &ArrayD<f64>, axes: &[usize]) -> ArrayD<f64> {
    let mut out = a.clone();
    for &ax in axes.iter().rev() {
        out = out.sum_axis(Axis(ax));
    }
    out
}

#[test]
fn totals_over_every_axis() {
    let a = data(&[13, 7, 5]);
    let x = da::from_array(a.clone(), (4, 3, 2));
    for s in schedulers() {
        let sum = x.sum().compute_with(&*s).unwrap();
        assert_close(&sum, &ArrayD::from_elem(IxDyn(&[]), a.sum()), 1e-12);
    }
    assert_close(
        &run(&x.mean()),
        &ArrayD::from_elem(IxDyn(&[]), a.mean().unwrap()),
        1e-12,
    );
    assert_eq!(
        run(&x.max()).iter().next().copied(),
        a.iter().copied().reduce(f64::max)
    );
    assert_eq!(
        run(&x.min()).iter().next().copied(),
        a.iter().copied().reduce(f64::min)
    );
    let var = a.var(0.0);
    assert_close(&run(&x.var(0)), &ArrayD::from_elem(IxDyn(&[]), var), 1e-10);
    assert_close(
        &run(&x.std(1)),
        &ArrayD::from_elem(IxDyn(&[]), a.std(1.0)),
        1e-10,
    );
}

#[test]
fn along_axes_with_keepdims_and_split_every() {
    let a = data(&[9, 8, 7]);
    let x = da::from_array(a.clone(), (2, 3, 2));
    assert_close(&run(&x.sum_axis(0)), &a.sum_axis(Axis(0)), 1e-12);
    assert_close(&run(&x.sum_axis(-1)), &a.sum_axis(Axis(2)), 1e-12);
    let s = x.sum_with(Reduce::axes([0, 2]).keepdims(true).split_every(2));
    assert_eq!(s.shape(), vec![1, 8, 1]);
    assert_close(
        &run(&s).into_shape_with_order(IxDyn(&[8])).unwrap(),
        &sum_axes(&a, &[0, 2]),
        1e-12,
    );
    assert_close(&run(&x.mean_axis(1)), &a.mean_axis(Axis(1)).unwrap(), 1e-12);
    assert_close(&run(&x.var_axis(0, 1)), &a.var_axis(Axis(0), 1.0), 1e-10);
}

#[test]
fn argmin_argmax_flat_and_along_an_axis() {
    let a = data(&[6, 5]);
    let x = da::from_array(a.clone(), (4, 2));
    let flat_min = a
        .iter()
        .enumerate()
        .min_by(|p, q| p.1.partial_cmp(q.1).unwrap())
        .unwrap()
        .0;
    assert_eq!(
        run(&x.argmin()).iter().next().copied(),
        Some(flat_min as i64)
    );
    let along: Vec<i64> = a
        .axis_iter(Axis(1))
        .map(|col| {
            col.iter()
                .enumerate()
                .max_by(|p, q| p.1.partial_cmp(q.1).unwrap())
                .unwrap()
                .0 as i64
        })
        .collect();
    assert_eq!(
        run(&x.argmax_axis(0)).iter().copied().collect::<Vec<_>>(),
        along
    );
}

#[test]
fn nan_aware_and_boolean_reductions() {
    let mut a = data(&[10]);
    a[3] = f64::NAN;
    let x = da::from_array(a.clone(), 3);
    assert!(run(&x.sum()).iter().next().unwrap().is_nan());
    let clean: Vec<f64> = a.iter().copied().filter(|v| !v.is_nan()).collect();
    let nansum: f64 = clean.iter().sum();
    assert!((run(&x.nansum()).iter().next().unwrap() - nansum).abs() < 1e-12);
    let nanmean = nansum / clean.len() as f64;
    assert!((run(&x.nanmean()).iter().next().unwrap() - nanmean).abs() < 1e-12);
    let pos = x.gt_scalar(0.0);
    assert_eq!(run(&pos.any()).iter().next().copied(), Some(true));
    assert_eq!(run(&pos.all()).iter().next().copied(), Some(false));
    assert_eq!(
        run(&pos.sum()).iter().next().copied(),
        Some(a.iter().filter(|v| **v > 0.0).count() as i64)
    );
}

#[test]
fn integer_sums_widen_to_i64() {
    let x = da::full(1000, 200u8).chunks(300);
    let s: ArrayD<i64> = run(&x.sum());
    assert_eq!(s.iter().next().copied(), Some(200_000));
}

#[test]
fn float32_sums_are_pairwise_accurate() {
    // NumPy's pairwise summation keeps this within f32 rounding; a naive loop is off by ~2%.
    let x = da::full(10_000_000, 0.1f32)
        .chunks(2_500_000)
        .astype::<f32>();
    let dense = da::from_array(ArrayD::from_elem(IxDyn(&[4_000_000]), 0.1f32), 1_000_000);
    let s = run(&dense.sum()).iter().next().copied().unwrap();
    assert!((s - 400_000.0).abs() < 1.0, "{s}");
    let s = run(&x.sum()).iter().next().copied().unwrap();
    assert!((s - 1_000_000.0).abs() < 1.0, "{s}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sums_means_and_variances_match_ndarray((shape, chunks) in shape_and_chunks(), pick in 0usize..8) {
        let a = data(&shape);
        let x = da::from_array(a.clone(), chunks);
        let nd = shape.len();
        let axes: Vec<usize> = (0..nd).filter(|b| pick & (1 << b) != 0).collect();
        let axes = if axes.is_empty() { vec![0] } else { axes };
        let iaxes: Vec<isize> = axes.iter().map(|&v| v as isize).collect();
        let got = run(&x.sum_with(Reduce::axes(iaxes.clone()).split_every(2)));
        assert_close(&got, &sum_axes(&a, &axes), 1e-9);
        let n: usize = axes.iter().map(|&ax| shape[ax]).product();
        if n > 1 {
            let mean = sum_axes(&a, &axes) / n as f64;
            assert_close(&run(&x.mean_with(Reduce::axes(iaxes.clone()))), &mean, 1e-9);
            // Variance: sum of squared deviations from the mean (broadcast back over the axes).
            let mut m = mean.clone();
            for &ax in &axes {
                m = m.insert_axis(Axis(ax));
            }
            let dev = (&a - &m).mapv(|v| v * v);
            let var = sum_axes(&dev, &axes) / (n - 1) as f64;
            assert_close(&run(&x.var_with(1, Reduce::axes(iaxes))), &var, 1e-8);
        }
    }
}

#[test]
fn split_every_defaults_to_the_configured_array_split_every() {
    let a = data(&[64]);
    let x = da::from_array(a.clone(), (1,));
    let default_tasks = x.sum().graph().len();
    let narrow = {
        let _guard = oxidask_config::set("array.split-every", 2).unwrap();
        let s = x.sum();
        assert_close(&run(&s), &ArrayD::from_elem(IxDyn(&[]), a.sum()), 1e-12);
        s.graph().len()
    };
    // 64 partials: 16 at a time is 4 combines and the final; 2 at a time is a deep tree.
    assert!(narrow > default_tasks + 40, "{narrow} vs {default_tasks}");
    assert_eq!(
        x.sum().graph().len(),
        default_tasks,
        "the guard restored the default"
    );
    // An explicit split_every wins over the configuration.
    let _guard = oxidask_config::set("array.split-every", 2).unwrap();
    assert_eq!(
        x.sum_with(Reduce::all().split_every(16)).graph().len(),
        default_tasks
    );
}
