//! Creation functions, chunking and compute.

use ndarray::{ArrayD, IxDyn};
use oxidask_array::{self as da, random::RandomState, Chunks};
use oxidask_core::Collection;
use proptest::prelude::*;

use crate::support::{data, run, schedulers, shape_and_chunks};

#[test]
fn ones_zeros_full_compute_to_constant_arrays() {
    let x = da::ones::<f64>((10, 7)).chunks((4, 3));
    assert_eq!(x.numblocks(), vec![3, 3]);
    assert_eq!(x.chunk_lengths(), vec![vec![4, 4, 2], vec![3, 3, 1]]);
    for s in schedulers() {
        assert_eq!(
            x.compute_with(&*s).unwrap(),
            ArrayD::from_elem(IxDyn(&[10, 7]), 1.0)
        );
    }
    assert_eq!(run(&da::zeros::<i32>(5)), ArrayD::from_elem(IxDyn(&[5]), 0));
    assert_eq!(
        run(&da::full((2, 2), true)),
        ArrayD::from_elem(IxDyn(&[2, 2]), true)
    );
}

#[test]
fn ranges_and_identity() {
    let a = da::arange::<i64>(0.0, 10.0, 1.0).chunks(3);
    assert_eq!(
        run(&a).iter().copied().collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    let b = da::arange::<f64>(1.0, 2.0, 0.25);
    assert_eq!(
        run(&b).iter().copied().collect::<Vec<_>>(),
        vec![1.0, 1.25, 1.5, 1.75]
    );
    let l = da::linspace::<f64>(0.0, 1.0, 5, true).chunks(2);
    assert_eq!(
        run(&l).iter().copied().collect::<Vec<_>>(),
        vec![0.0, 0.25, 0.5, 0.75, 1.0]
    );
    let e = da::eye::<f64>(4, 5, 1).chunks((3, 2));
    let want = ArrayD::from_shape_fn(IxDyn(&[4, 5]), |ix| {
        (ix[1] as i64 - ix[0] as i64 == 1) as i64 as f64
    });
    assert_eq!(run(&e), want);
}

#[test]
fn random_values_do_not_depend_on_chunking() {
    let rs = RandomState::new(7);
    let a = run(&rs.random::<f64>((30, 20)).chunks((7, 6)));
    let b = run(&rs.random::<f64>((30, 20)).chunks((30, 20)));
    assert_eq!(a, b);
    assert!(a.iter().all(|v| (0.0..1.0).contains(v)));
    let n = run(&rs.normal::<f64>(4000, 2.0, 3.0).chunks(1000));
    let mean = n.mean().unwrap();
    assert!((mean - 2.0).abs() < 0.2, "{mean}");
    let i = run(&rs.integers::<i64>((100,), 5, 9).chunks(13));
    assert!(i.iter().all(|v| (5..9).contains(v)));
    assert_ne!(
        run(&RandomState::new(8).random::<f64>(10)),
        run(&rs.random::<f64>(10))
    );
}

#[test]
fn from_delayed_blocks() {
    let blocks: Vec<_> = (0..3)
        .map(|i| oxidask_core::delayed(ArrayD::from_elem(IxDyn(&[2, 4]), i as f64)))
        .collect();
    let x = da::from_delayed(blocks, Chunks(vec![vec![2, 2, 2], vec![4]]));
    let got = run(&x);
    assert_eq!(got.shape(), &[6, 4]);
    assert_eq!(got[[5, 0]], 2.0);
    // A block of another shape than declared fails its task with both shapes named.
    let wrong = vec![oxidask_core::delayed(ArrayD::from_elem(
        IxDyn(&[3, 4]),
        0.0,
    ))];
    let bad = da::from_delayed(wrong, Chunks(vec![vec![2], vec![4]]));
    let err = bad
        .compute_with(&oxidask_local::Synchronous::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("[3, 4]") && err.contains("[2, 4]"), "{err}");
}

#[test]
fn symbolic_display_shows_metadata_not_data() {
    let x = da::ones::<f64>((1000, 4000)).chunks((1000, 1000));
    let s = x.to_string();
    assert!(s.contains("shape=(1000, 4000)"), "{s}");
    assert!(
        s.contains("dtype=float64") && s.contains("chunksize=(1000, 1000)"),
        "{s}"
    );
    assert!(
        s.contains("blocks=4") && s.contains("tasks=4") && s.contains("30.52 MiB"),
        "{s}"
    );
}

#[test]
fn auto_chunking_aims_at_128_mib() {
    let x = da::ones::<f64>((20_000, 20_000));
    let bytes: usize = x.chunksize().iter().product::<usize>() * 8;
    assert!(
        (32 << 20..=128 << 20).contains(&bytes),
        "{:?}",
        x.chunksize()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn from_array_round_trips_any_chunking((shape, chunks) in shape_and_chunks()) {
        let a = data(&shape);
        let x = da::from_array(a.clone(), chunks.clone());
        prop_assert_eq!(run(&x), a.clone());
        // Rechunking to anything else keeps the values.
        let other: Vec<usize> = chunks.iter().map(|c| (c % 3) + 1).collect();
        prop_assert_eq!(run(&x.rechunk(other)), a);
    }
}
