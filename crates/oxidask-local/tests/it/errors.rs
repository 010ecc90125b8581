//! Task errors, panics and cancellation.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use oxidask_core::{task, Collection, Compute, Delayed, Error};
use oxidask_local::{Synchronous, Threaded};

#[derive(Debug)]
struct DiskFull;

impl fmt::Display for DiskFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "disk quota exceeded")
    }
}

impl std::error::Error for DiskFull {}

#[derive(Debug)]
struct WriteFailed(DiskFull);

impl fmt::Display for WriteFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not write the results")
    }
}

impl std::error::Error for WriteFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[task(crate = oxidask_core)]
fn save(x: i64) -> Result<i64, WriteFailed> {
    if x == 13 {
        Err(WriteFailed(DiskFull))
    } else {
        Ok(x)
    }
}

#[task(crate = oxidask_core)]
fn explode(x: i64) -> i64 {
    if x == 7 {
        panic!("boom at {x}");
    }
    x
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[task(crate = oxidask_core)]
fn slow(x: i64) -> i64 {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(2));
    x
}

#[task(crate = oxidask_core)]
fn fail_now(x: i64) -> Result<i64, String> {
    Err(format!("failed on {x}"))
}

#[task(crate = oxidask_core)]
fn gather(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

fn schedulers() -> Vec<Box<dyn Compute>> {
    vec![
        Box::new(Synchronous::new()),
        Box::new(Threaded::new(1)),
        Box::new(Threaded::new(3)),
    ]
}

#[test]
fn task_error_carries_key_and_cause_chain() {
    for s in schedulers() {
        let bad = save(13);
        let err = gather(vec![save(1), bad.clone(), save(2)])
            .compute_with(&*s)
            .unwrap_err();
        let Error::Task(t) = &err else {
            panic!("{}: {err}", s.name())
        };
        assert_eq!(t.key, bad.key(), "{}", s.name());
        assert!(t.op.ends_with("::save"), "{}", t.op);
        assert_eq!(t.failure.message(), "could not write the results");
        assert_eq!(t.failure.causes(), &["disk quota exceeded".to_string()]);
        let text = err.to_string();
        assert!(
            text.contains(&bad.key().to_string())
                && text.contains("caused by: disk quota exceeded"),
            "{text}"
        );
    }
}

#[test]
fn panicking_task_is_an_error_not_a_crash() {
    for s in schedulers() {
        let err = gather((0..20).map(explode).collect::<Vec<Delayed<i64>>>())
            .compute_with(&*s)
            .unwrap_err();
        let t = err.task_error().expect("a task error");
        assert!(t.is_panic(), "{}", s.name());
        assert!(t.failure.message().contains("boom at 7"), "{}", t.failure);
        // The pool survives and runs the next computation.
        assert_eq!(
            gather((0..5).map(explode).collect::<Vec<_>>())
                .compute_with(&*s)
                .unwrap(),
            10
        );
    }
}

#[test]
fn first_error_cancels_the_rest() {
    // One failing task among 2000 slow ones on one thread: the failure comes first in
    // priority order, so almost none of the slow tasks may run.
    SLOW_RUNS.store(0, Ordering::SeqCst);
    let mut parts = vec![fail_now(0)];
    parts.extend((0..2000).map(slow));
    let err = gather(parts).compute_with(&Threaded::new(1)).unwrap_err();
    assert!(err.to_string().contains("failed on 0"), "{err}");
    let ran = SLOW_RUNS.load(Ordering::SeqCst);
    assert!(ran < 100, "{ran} of 2000 tasks ran after the first error");

    SLOW_RUNS.store(0, Ordering::SeqCst);
    let mut parts = vec![fail_now(1)];
    parts.extend((2000..4000).map(slow));
    let _ = gather(parts).compute_with(&Synchronous::new()).unwrap_err();
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 0);
}

#[test]
fn graph_errors_come_before_any_work() {
    use oxidask_core::{Arg, Graph, GraphError, Key, Task, Token};
    let mut g = Graph::new();
    let a = Key::new("a", Token::from_u128(1));
    let b = Key::new("b", Token::from_u128(2));
    g.insert(a, Task::call(save::op(), [Arg::Key(b)]));
    g.insert(b, Task::call(save::op(), [Arg::Key(a)]));
    for s in schedulers() {
        let err = s.compute(g.clone(), &[a]).unwrap_err();
        assert!(
            matches!(err, Error::Graph(GraphError::Cycle { .. })),
            "{err}"
        );
        let err = s.compute(Graph::new(), &[a]).unwrap_err();
        assert!(
            matches!(err, Error::Graph(GraphError::MissingKey { .. })),
            "{err}"
        );
    }
}

#[test]
fn wrong_argument_type_names_the_parameter() {
    use oxidask_core::{Arg, Graph, Key, Task, Token, Value};
    let mut g = Graph::new();
    let a = Key::new("a", Token::from_u128(3));
    g.insert(
        a,
        Task::call(save::op(), [Arg::Value(Value::new(String::from("x")))]),
    );
    for s in schedulers() {
        let err = s.compute(g.clone(), &[a]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("argument 0 (`x`)") && text.contains("i64") && text.contains("String"),
            "{text}"
        );
    }
}

#[test]
fn a_stopped_run_skips_what_has_not_started_while_other_runs_go_on() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let pool = Threaded::new(1);
    let stop = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(AtomicUsize::new(0));
    let parts: Vec<_> = (0..50i64)
        .map(|i| {
            let (stop, ran) = (stop.clone(), ran.clone());
            oxidask_core::delayed(i).map(move |x: &i64| {
                // The caller gives up after the fifth task.
                if ran.fetch_add(1, Ordering::SeqCst) == 4 {
                    stop.store(true, Ordering::SeqCst);
                }
                *x
            })
        })
        .collect();
    let err = gather(parts)
        .compute_with(&pool.clone().stop_on(stop.clone()))
        .unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert_eq!(
        ran.load(Ordering::SeqCst),
        5,
        "tasks started after the stop"
    );
    // The flag stays set; runs through other handles on the same pool are not stopped by it.
    let later: Vec<_> = (0..5i64).map(oxidask_core::delayed).collect();
    assert_eq!(gather(later).compute_with(&pool).unwrap(), 10);
}
