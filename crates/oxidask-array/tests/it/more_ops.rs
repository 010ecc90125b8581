//! Matrix products, block functions, overlaps, cumulative sums and top-k against ndarray.

use ndarray::{ArrayD, Axis, Ix2, IxDyn};
use oxidask_array::{self as da, blockwise, BlockPos, Boundary};
use oxidask_core::task;
use proptest::prelude::*;

use crate::support::{assert_close, data, run, schedulers, shape_and_chunks};

#[task(crate = oxidask_core)]
fn double(b: ArrayD<f64>) -> ArrayD<f64> {
    b * 2.0
}

#[task(crate = oxidask_core)]
fn add_position(b: ArrayD<f64>, pos: BlockPos) -> ArrayD<f64> {
    b + pos.offset.iter().sum::<usize>() as f64
}

#[task(crate = oxidask_core)]
fn weighted(a: ArrayD<f64>, b: ArrayD<f64>) -> ArrayD<f64> {
    a * 0.25 + b * 0.75
}

#[task(crate = oxidask_core)]
fn first_row_only(b: ArrayD<f64>) -> ArrayD<f64> {
    b.index_axis(Axis(0), 0).to_owned().insert_axis(Axis(0))
}

/// A 3-point moving sum along axis 0 of an already padded block (1 element each side).
#[task(crate = oxidask_core)]
fn moving_sum(b: ArrayD<f64>) -> ArrayD<f64> {
    let n = b.shape()[0];
    let mut out = b.clone();
    for i in 0..n {
        let lo = i.saturating_sub(1);
        let hi = (i + 1).min(n - 1);
        let s = (lo..=hi).map(|j| b.index_axis(Axis(0), j).to_owned()).fold(
            None,
            |acc: Option<ArrayD<f64>>, x| {
                Some(match acc {
                    None => x,
                    Some(a) => a + x,
                })
            },
        );
        out.index_axis_mut(Axis(0), i).assign(&s.unwrap());
    }
    out
}

fn ndarray_moving_sum(a: &ArrayD<f64>, boundary: &Boundary) -> ArrayD<f64> {
    let n = a.shape()[0] as isize;
    let get = |i: isize| -> Option<ArrayD<f64>> {
        let j = if (0..n).contains(&i) {
            Some(i)
        } else {
            match boundary {
                Boundary::None | Boundary::Constant(_) => None,
                Boundary::Nearest => Some(i.clamp(0, n - 1)),
                Boundary::Reflect => Some(if i < 0 { -1 - i } else { 2 * n - 1 - i }),
                Boundary::Periodic => Some(i.rem_euclid(n)),
            }
        };
        match (j, boundary) {
            (Some(j), _) => Some(a.index_axis(Axis(0), j as usize).to_owned()),
            (None, Boundary::Constant(c)) => Some(a.index_axis(Axis(0), 0).mapv(|_| *c)),
            (None, _) => None,
        }
    };
    let mut out = a.clone();
    for i in 0..n {
        let s = (i - 1..=i + 1)
            .filter_map(get)
            .fold(None, |acc: Option<ArrayD<f64>>, x| {
                Some(match acc {
                    None => x,
                    Some(a) => a + x,
                })
            });
        out.index_axis_mut(Axis(0), i as usize).assign(&s.unwrap());
    }
    out
}

#[test]
fn matmul_dot_tensordot_outer() {
    let a = data(&[7, 5]);
    let b = data(&[5, 6]).mapv(|v| v / 10.0);
    let x = da::from_array(a.clone(), (3, 2));
    let y = da::from_array(b.clone(), (4, 4)); // contracted axis chunked differently: unified
    let want = a
        .clone()
        .into_dimensionality::<Ix2>()
        .unwrap()
        .dot(&b.clone().into_dimensionality::<Ix2>().unwrap());
    for s in schedulers() {
        let got = oxidask_core::Collection::compute_with(&x.matmul(&y), &*s).unwrap();
        assert_close(&got, &want.clone().into_dyn(), 1e-12);
    }
    let v = da::from_array(data(&[5]), 2);
    let mv = a
        .clone()
        .into_dimensionality::<Ix2>()
        .unwrap()
        .dot(&data(&[5]).into_dimensionality::<ndarray::Ix1>().unwrap());
    assert_close(&run(&da::dot(&x, &v)), &mv.into_dyn(), 1e-12);
    let inner = data(&[5]).iter().map(|x| x * x).sum::<f64>();
    assert!((run(&da::dot(&v, &v)).iter().next().unwrap() - inner).abs() < 1e-9);
    let td = da::tensordot(&x, &x, (0, 0));
    let at = a.clone().into_dimensionality::<Ix2>().unwrap();
    assert_close(&run(&td), &at.t().dot(&at).into_dyn(), 1e-12);
    let o = da::outer(&v, &v);
    assert_eq!(run(&o).shape(), &[5, 5]);
    assert!(
        x.matmul(&x).check().is_err(),
        "(7,5) @ (7,5) must be refused"
    );
    // A long contracted axis goes through partial products and a tree sum.
    let long_a = data(&[4, 90]);
    let long_b = data(&[90, 3]);
    let la = da::from_array(long_a.clone(), (2, 5));
    let lb = da::from_array(long_b.clone(), (5, 3));
    let want = long_a
        .into_dimensionality::<Ix2>()
        .unwrap()
        .dot(&long_b.into_dimensionality::<Ix2>().unwrap());
    assert_close(&run(&la.matmul(&lb)), &want.into_dyn(), 1e-10);
}

#[test]
fn ones_matmul_stays_constant() {
    let ones = da::ones::<f64>((4000, 4000)).chunks(2000);
    let p = ones.matmul(&ones);
    assert_eq!(p.sum().compute_scalar().unwrap(), 4000.0 * 4000.0 * 4000.0);
}

#[test]
fn map_blocks_and_blockwise() {
    let a = data(&[9, 4]);
    let x = da::from_array(a.clone(), (4, 3));
    assert_eq!(run(&x.map_blocks::<f64>(double::op())), &a * 2.0);
    let pos = run(&x.map_blocks::<f64>(add_position::op()));
    assert_eq!(pos[[5, 3]], a[[5, 3]] + 4.0 + 3.0);
    let y = da::from_array(a.mapv(|v| v + 1.0), (3, 4));
    let w = blockwise::<f64, f64>(weighted::op(), &[&x, &y], None);
    assert_close(
        &run(&w),
        &(&a * 0.25 + &(a.mapv(|v| v + 1.0)) * 0.75),
        1e-12,
    );
    let local = x.map_blocks_local(|b: &ArrayD<f64>| b.mapv(|v| v as i64));
    assert_eq!(run(&local), a.mapv(|v| v as i64));
    // A function that changes block shapes must say so.
    let err = oxidask_core::Collection::compute_with(
        &x.map_blocks::<f64>(first_row_only::op()),
        &oxidask_local::Synchronous::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("declared"), "{err}");
    let rows = x.map_blocks_to::<f64>(first_row_only::op(), vec![vec![1, 1, 1], vec![3, 1]]);
    assert_eq!(run(&rows).shape(), &[3, 4]);
}

#[test]
fn map_overlap_matches_a_padded_stencil_for_every_boundary() {
    let a = data(&[11, 3]);
    for boundary in [
        Boundary::None,
        Boundary::Constant(5.0),
        Boundary::Nearest,
        Boundary::Reflect,
        Boundary::Periodic,
    ] {
        let x = da::from_array(a.clone(), (3, 2));
        let got = run(&x.map_overlap(moving_sum::op(), &[1, 0], boundary.clone()));
        assert_close(&got, &ndarray_moving_sum(&a, &boundary), 1e-12);
    }
    let x = da::from_array(a, (2, 3));
    assert!(x
        .map_overlap(moving_sum::op(), &[3, 0], Boundary::None)
        .check()
        .is_err());
}

#[test]
fn cumsum_along_each_axis() {
    let a = data(&[7, 5]);
    let x = da::from_array(a.clone(), (3, 2));
    for axis in 0..2 {
        let mut want = a.clone();
        want.accumulate_axis_inplace(Axis(axis), |&prev, cur| *cur += prev);
        assert_close(&run(&x.cumsum(axis as isize)), &want, 1e-12);
    }
    let ints = da::arange::<i32>(0.0, 10.0, 1.0).chunks(3).cumsum(0);
    assert_eq!(
        run(&ints).iter().copied().collect::<Vec<_>>(),
        vec![0i64, 1, 3, 6, 10, 15, 21, 28, 36, 45]
    );
}

#[test]
fn topk_largest_and_smallest() {
    let a = data(&[40]);
    let x = da::from_array(a.clone(), 7);
    let mut sorted: Vec<f64> = a.iter().copied().collect();
    sorted.sort_by(|p, q| q.partial_cmp(p).unwrap());
    assert_eq!(
        run(&x.topk(5, 0)).iter().copied().collect::<Vec<_>>(),
        sorted[..5].to_vec()
    );
    sorted.reverse();
    assert_eq!(
        run(&x.topk(-3, 0)).iter().copied().collect::<Vec<_>>(),
        sorted[..3].to_vec()
    );
    let m = data(&[6, 9]);
    let y = da::from_array(m.clone(), (4, 2));
    let got = run(&y.topk(2, 1));
    for (r, row) in m.axis_iter(Axis(0)).enumerate() {
        let mut v: Vec<f64> = row.iter().copied().collect();
        v.sort_by(|p, q| q.partial_cmp(p).unwrap());
        assert_eq!(
            got.index_axis(Axis(0), r)
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            v[..2].to_vec()
        );
    }
    assert!(x.topk(0, 0).check().is_err());
    assert!(x.topk(41, 0).check().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn matmul_matches_ndarray_at_any_chunking(m in 1usize..8, k in 1usize..8, n in 1usize..8, c in prop::collection::vec(1usize..5, 4)) {
        let a = data(&[m, k]);
        let b = data(&[k, n]);
        let x = da::from_array(a.clone(), (c[0], c[1]));
        let y = da::from_array(b.clone(), (c[2], c[3]));
        let want = a.into_dimensionality::<Ix2>().unwrap().dot(&b.into_dimensionality::<Ix2>().unwrap()).into_dyn();
        assert_close(&run(&x.matmul(&y)), &want, 1e-12);
    }

    #[test]
    fn cumsum_matches_ndarray((shape, chunks) in shape_and_chunks()) {
        let a = data(&shape);
        let x = da::from_array(a.clone(), chunks);
        let mut want = a.clone();
        want.accumulate_axis_inplace(Axis(0), |&prev, cur| *cur += prev);
        assert_close(&run(&x.cumsum(0)), &want, 1e-9);
        let _ = IxDyn(&[]);
    }
}
