//! The facade alone is enough: `compute()` finds the threaded scheduler, `#[oxidask::task]`
//! registers under the user's module path.

use oxidask::prelude::*;

#[oxidask::task]
fn inc(x: i64) -> i64 {
    x + 1
}

#[derive(Clone, Debug, PartialEq, oxidask::Data)]
struct Point {
    x: f64,
    y: f64,
}

#[oxidask::task]
fn norm(p: &Point) -> f64 {
    (p.x * p.x + p.y * p.y).sqrt()
}

#[test]
fn default_scheduler_is_linked_through_the_facade() {
    let s = oxidask::config::current_scheduler().expect("a default scheduler");
    assert_eq!(s.name(), "threaded");
    assert_eq!(inc(inc(1)).compute().unwrap(), 3);
}

#[test]
fn user_types_travel_through_tasks() {
    let n = norm(Point { x: 3.0, y: 4.0 });
    assert_eq!(n.compute().unwrap(), 5.0);
    assert_eq!(inc::op().name(), "facade::inc");
}

#[test]
fn with_scheduler_switches_for_a_scope() {
    let s = std::sync::Arc::new(Synchronous::new());
    let name =
        oxidask::config::with_scheduler(s, || oxidask::config::current_scheduler().unwrap().name());
    assert_eq!(name, "synchronous");
}
