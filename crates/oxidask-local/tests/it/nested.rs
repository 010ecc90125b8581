//! Tasks that build and compute their own graphs.

use oxidask_core::{task, Collection, Compute, Delayed};
use oxidask_local::{Synchronous, Threaded};

#[task(crate = oxidask_core)]
fn square(x: i64) -> i64 {
    x * x
}

#[task(crate = oxidask_core)]
fn sum(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

/// Computes the sum of squares below `n` as its own graph, from inside a task.
#[task(crate = oxidask_core)]
fn inner_sum_of_squares(n: i64) -> Result<i64, oxidask_core::Error> {
    sum((0..n).map(square).collect::<Vec<Delayed<i64>>>()).compute()
}

/// Two levels of nesting.
#[task(crate = oxidask_core)]
fn outer(n: i64) -> Result<i64, oxidask_core::Error> {
    sum((1..=n).map(inner_sum_of_squares).collect::<Vec<_>>()).compute()
}

fn expected_inner(n: i64) -> i64 {
    (0..n).map(|i| i * i).sum()
}

#[test]
fn nested_compute_does_not_deadlock_a_small_pool() {
    // More nested computations than threads, each waiting for its own graph.
    for threads in [1usize, 2] {
        let pool = Threaded::new(threads);
        let parts: Vec<Delayed<i64>> = (1..=16).map(inner_sum_of_squares).collect();
        let got = sum(parts).compute_with(&pool).unwrap();
        let want: i64 = (1..=16).map(expected_inner).sum();
        assert_eq!(got, want, "{threads} threads");
    }
}

#[test]
fn doubly_nested_compute() {
    let pool = Threaded::new(2);
    let got = sum((1..=4).map(outer).collect::<Vec<_>>())
        .compute_with(&pool)
        .unwrap();
    let want: i64 = (1..=4)
        .map(|n| (1..=n).map(expected_inner).sum::<i64>())
        .sum();
    assert_eq!(got, want);
}

#[test]
fn nested_compute_on_the_synchronous_scheduler_stays_on_one_thread() {
    let s = Synchronous::new();
    let got = sum((1..=5).map(inner_sum_of_squares).collect::<Vec<_>>())
        .compute_with(&s)
        .unwrap();
    assert_eq!(got, (1..=5).map(expected_inner).sum::<i64>());
    assert_eq!(s.name(), "synchronous");
}
