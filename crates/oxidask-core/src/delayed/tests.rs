use super::*;
use crate::compute::{compute, Inline};
use crate::error::Error;

#[crate::task(crate = crate)]
fn inc(x: i64) -> i64 {
    x + 1
}

#[crate::task(crate = crate)]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[crate::task(crate = crate)]
fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[crate::task(crate = crate)]
fn total_ref(xs: &[i64]) -> i64 {
    xs.iter().sum()
}

#[crate::task(crate = crate)]
fn total_refs(xs: &[&i64]) -> i64 {
    xs.iter().copied().sum()
}

#[crate::task(crate = crate)]
fn parse(s: &str) -> Result<i64, std::num::ParseIntError> {
    s.trim().parse()
}

#[crate::task(crate = crate, pure = false)]
fn side_effect(x: i64) -> i64 {
    x
}

#[test]
fn same_call_same_key() {
    assert_eq!(inc(1).key(), inc(1).key());
    assert_ne!(inc(1).key(), inc(2).key());
    assert_eq!(add(inc(1), 2).key(), add(inc(1), 2).key());
    assert_ne!(add(inc(1), 2).key(), add(2, inc(1)).key());
    assert_eq!(inc(1).key().prefix_str(), "inc");
}

#[test]
fn impure_calls_get_fresh_keys() {
    assert_ne!(side_effect(1).key(), side_effect(1).key());
}

#[test]
fn keys_are_stable_across_processes() {
    // Pinned: the same call must have the same key in every build of this source, or
    // distributed clients could not share results. Change only on purpose.
    let key = add(inc(1), 2).key();
    assert_eq!(key.prefix_str(), "add");
    let again: crate::Key = key.to_string().parse().unwrap();
    assert_eq!(again, key);
    assert_eq!(delayed(41i64).key(), delayed(41i64).key());
    assert_ne!(delayed(41i64).key(), delayed(41i32).key());
}

#[test]
fn mixing_values_and_delayed_results() {
    let z = add(inc(1), 10);
    assert_eq!(z.compute_with(&Inline).unwrap(), 12);
    let s = total(vec![inc(1), inc(2), inc(3)]);
    assert_eq!(s.compute_with(&Inline).unwrap(), 9);
    let mixed: Vec<MaybeDelayed<i64>> = vec![5.into(), inc(1).into(), 7.into()];
    assert_eq!(total(mixed).compute_with(&Inline).unwrap(), 14);
    assert_eq!(
        total_ref(vec![inc(1), inc(1)])
            .compute_with(&Inline)
            .unwrap(),
        4
    );
    assert_eq!(total(vec![1i64, 2, 3]).compute_with(&Inline).unwrap(), 6);
    assert_eq!(
        total_refs(vec![inc(1), inc(2)])
            .compute_with(&Inline)
            .unwrap(),
        5
    );
    assert_eq!(total_refs(vec![4i64, 5]).compute_with(&Inline).unwrap(), 9);
}

#[test]
fn shared_parts_are_one_task() {
    let x = inc(1);
    let a = add(&x, 1);
    let b = add(&x, 2);
    let g = (&a, &b).graph();
    assert_eq!(g.len(), 3, "inc(1) appears once");
    let (va, vb) = (&a, &b).compute_with(&Inline).unwrap();
    assert_eq!((va, vb), (3, 4));
}

#[test]
fn fallible_tasks_report_their_error() {
    let ok = parse(String::from(" 42 "));
    assert_eq!(ok.compute_with(&Inline).unwrap(), 42);
    let bad = inc(parse(String::from("forty-two")));
    let err = bad.compute_with(&Inline).unwrap_err();
    let Error::Task(t) = &err else {
        panic!("{err}")
    };
    assert_eq!(t.key.prefix_str(), "parse");
    assert!(t.op.ends_with("::parse"), "{}", t.op);
    assert!(err.to_string().contains("invalid digit"), "{err}");
}

#[test]
fn closures_and_values() {
    let x = delayed(20i64);
    let y = x.map(|v| v * 2);
    let z = map2(&y, 2i64, |a, b| a + b);
    let w = lazy(|| String::from("hi"));
    let c = collect(vec![z.clone(), y.clone()]);
    let (vz, vw, vc) = (&z, &w, &c).compute_with(&Inline).unwrap();
    assert!(
        matches!(compute(&z), Err(Error::NoScheduler)),
        "core alone links no scheduler"
    );
    assert_eq!(vz, 42);
    assert_eq!(vw, "hi");
    assert_eq!(vc, vec![42, 40]);
    assert_eq!(
        map3(1i64, 2i64, 3i64, |a, b, c| a * b * c)
            .compute_with(&Inline)
            .unwrap(),
        6
    );
    let failing = x.try_map(|v| if *v > 0 { Err("too big") } else { Ok(*v) });
    let err = failing.compute_with(&Inline).unwrap_err();
    assert!(err.to_string().contains("too big"), "{err}");
}

#[test]
fn persist_replaces_the_graph_with_the_value() {
    let x = add(inc(1), inc(2));
    assert_eq!(x.graph().len(), 3);
    let p = x.persist_with(&Inline).unwrap();
    assert_eq!(p.key(), x.key());
    assert_eq!(p.graph().len(), 1);
    assert_eq!(inc(&p).compute_with(&Inline).unwrap(), 6);
}

#[test]
fn long_chains_build_and_drop_without_recursion() {
    let mut d = delayed(0i64);
    for _ in 0..200_000 {
        d = inc(d);
    }
    assert_eq!(d.graph().len(), 200_001);
    drop(d);
}

#[test]
fn wrong_output_type_is_an_error_not_a_panic() {
    let d: Delayed<i64> = inc(1);
    let wrong: Delayed<String> = Delayed::from_task(d.key(), d.task().clone(), []);
    let err = wrong.compute_with(&Inline).unwrap_err();
    assert!(matches!(err, Error::OutputType { .. }), "{err}");
}

#[test]
fn registry_knows_every_task() {
    let op = crate::op::lookup(inc::op().name()).expect("registered");
    assert_eq!(op.signature(), "i64 -> i64");
    assert_eq!(op.params(), &["x"]);
    assert!(crate::op::registered_ops().len() >= 6);
    assert!(crate::op::duplicate_op_names().is_empty());
    assert_eq!(inc::call(1), 2);
}

static CLONES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts its clones, to prove borrowed parameters do not copy.
#[derive(Debug, crate::Data)]
#[data(crate = crate)]
struct Counted(u64);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Counted(self.0)
    }
}

#[crate::task(crate = crate)]
fn make_counted(v: u64) -> Counted {
    Counted(v)
}

#[crate::task(crate = crate)]
fn sum_counted(xs: &[&Counted]) -> u64 {
    xs.iter().map(|c| c.0).sum()
}

#[test]
fn ref_list_params_borrow_without_cloning() {
    let parts: Vec<Delayed<Counted>> = (0..5).map(make_counted).collect();
    let before = CLONES.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(sum_counted(parts).compute_with(&Inline).unwrap(), 10);
    assert_eq!(
        CLONES.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "list items were cloned"
    );
}
