use super::*;
use crate::reference::evaluate;
use crate::task::{Arg, TaskSpec};
use crate::tokenize::Token;
use crate::value::Value;

#[crate::task(crate = crate)]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[crate::task(crate = crate)]
fn neg(x: i64) -> i64 {
    -x
}

fn k(name: &str) -> Key {
    Key::new(
        name,
        Token::from_u128(name.len() as u128 * 7919 + name.as_bytes()[0] as u128),
    )
}

fn value(g: &mut Graph, name: &str, v: i64) -> Key {
    let key = k(name);
    g.insert(key, Task::value(Value::new(v)));
    key
}

fn call2(g: &mut Graph, name: &str, a: Key, b: Key) -> Key {
    let key = k(name);
    g.insert(key, Task::call(add::op(), [Arg::Key(a), Arg::Key(b)]));
    key
}

fn call1(g: &mut Graph, name: &str, a: Key) -> Key {
    let key = k(name);
    g.insert(key, Task::call(neg::op(), [Arg::Key(a)]));
    key
}

fn ints(values: Vec<Value>) -> Vec<i64> {
    values
        .into_iter()
        .map(|v| v.take::<i64>().unwrap())
        .collect()
}

#[test]
fn first_insert_wins() {
    let mut g = Graph::new();
    let a = value(&mut g, "a", 1);
    assert!(!g.insert(a, Task::value(Value::new(2i64))));
    assert_eq!(ints(evaluate(&g, &[a]).unwrap()), vec![1]);
    g.replace(a, Task::value(Value::new(3i64)));
    assert_eq!(ints(evaluate(&g, &[a]).unwrap()), vec![3]);
}

#[test]
fn cull_keeps_only_what_outputs_need() {
    let mut g = Graph::new();
    let a = value(&mut g, "a", 1);
    let b = value(&mut g, "b", 2);
    let unused = value(&mut g, "unused", 3);
    let c = call2(&mut g, "c", a, b);
    let _d = call1(&mut g, "d", unused);
    let culled = g.cull(&[c]).unwrap();
    assert_eq!(culled.len(), 3);
    assert!(culled.contains(&a) && culled.contains(&b) && culled.contains(&c));
    assert!(!culled.contains(&unused));
}

#[test]
fn order_finishes_one_branch_before_the_next() {
    // Two independent sums: depth-first order runs a1 a2 s1 before b1 b2 s2.
    let mut g = Graph::new();
    let a1 = value(&mut g, "a1", 1);
    let a2 = value(&mut g, "a2", 2);
    let b1 = value(&mut g, "b1", 3);
    let b2 = value(&mut g, "b2", 4);
    let s1 = call2(&mut g, "s1", a1, a2);
    let s2 = call2(&mut g, "s2", b1, b2);
    let top = call2(&mut g, "top", s1, s2);
    let order = g.order(&[top]).unwrap();
    assert_eq!(order, vec![a1, a2, s1, b1, b2, s2, top]);
}

#[test]
fn dependencies_always_come_first() {
    let mut g = Graph::new();
    let mut keys = vec![value(&mut g, "v0", 0)];
    for i in 1..200 {
        let a = keys[i / 2];
        let b = keys[i - 1];
        keys.push(call2(&mut g, &format!("t{i}"), a, b));
    }
    let order = g.order(&[*keys.last().unwrap()]).unwrap();
    let pos = |key: &Key| order.iter().position(|o| o == key).unwrap();
    for (key, task) in g.iter() {
        for d in task.dependencies() {
            assert!(pos(&d) < pos(key), "{d} after {key}");
        }
    }
}

#[test]
fn cycles_are_reported_with_their_keys() {
    let mut g = Graph::new();
    let (a, b, c) = (k("ca"), k("cbb"), k("cccc"));
    g.insert(a, Task::call(neg::op(), [Arg::Key(b)]));
    g.insert(b, Task::call(neg::op(), [Arg::Key(c)]));
    g.insert(c, Task::call(neg::op(), [Arg::Key(a)]));
    let err = g.plan(&[a], PlanOptions::default()).unwrap_err();
    match &err {
        GraphError::Cycle { keys } => assert_eq!(keys, &vec![a, b, c, a]),
        other => panic!("expected a cycle, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&a.to_string()) && msg.contains(&c.to_string()),
        "{msg}"
    );
}

#[test]
fn self_dependency_is_a_cycle() {
    let mut g = Graph::new();
    let a = k("self");
    g.insert(a, Task::alias(a));
    assert!(matches!(g.order(&[a]), Err(GraphError::Cycle { keys }) if keys == vec![a, a]));
}

#[test]
fn missing_dependency_names_both_keys() {
    let mut g = Graph::new();
    let ghost = k("ghost");
    let a = call1(&mut g, "needs-ghost", ghost);
    let err = g.cull(&[a]).unwrap_err();
    assert_eq!(
        err,
        GraphError::MissingDependency {
            key: a,
            dependency: ghost
        }
    );
    let msg = err.to_string();
    assert!(msg.contains(&ghost.to_string()) && msg.contains(&a.to_string()));
}

#[test]
fn missing_output_is_reported() {
    let g = Graph::new();
    let err = g.order(&[k("nope")]).unwrap_err();
    assert_eq!(err, GraphError::MissingKey { key: k("nope") });
}

#[test]
fn plan_counts_uses_and_fuses_linear_chains() {
    // v -> n1 -> n2 -> n3, and v is also read by s = add(v, n3).
    let mut g = Graph::new();
    let v = value(&mut g, "v", 5);
    let n1 = call1(&mut g, "n1", v);
    let n2 = call1(&mut g, "n2", n1);
    let n3 = call1(&mut g, "n3", n2);
    let s = call2(&mut g, "s", v, n3);
    let plan = g.plan(&[s, s], PlanOptions::default()).unwrap();
    let idx = |key: &Key| {
        (0..plan.len() as u32)
            .find(|&i| g.key_at(plan.graph_position(i)) == key)
            .unwrap()
    };
    assert_eq!(plan.uses(idx(&v)), 2);
    assert_eq!(plan.uses(idx(&s)), 2, "requested twice");
    assert_eq!(plan.fused_next(idx(&n1)), Some(idx(&n2)));
    assert_eq!(plan.fused_next(idx(&n2)), Some(idx(&n3)));
    assert_eq!(plan.fused_next(idx(&n3)), None, "s has two dependencies");
    assert_eq!(plan.fused_next(idx(&v)), None, "v has two dependents");
    assert!(plan.is_fused_into_prev(idx(&n2)));
    assert_eq!(plan.units(), 3);
    assert_eq!(plan.outputs(), &[idx(&s), idx(&s)]);
    for i in 0..plan.len() as u32 {
        for &d in plan.deps(i) {
            assert!(d < i);
            assert!(plan.dependents(d).contains(&i));
        }
    }
}

#[test]
fn fuse_linear_rewrites_chains_and_keeps_results() {
    let mut g = Graph::new();
    let v = value(&mut g, "v", 5);
    let n1 = call1(&mut g, "n1", v);
    let n2 = call1(&mut g, "n2", n1);
    let n3 = call1(&mut g, "n3", n2);
    let fused = g.fuse_linear(&[n3]).unwrap();
    assert_eq!(fused.len(), 1, "{fused:?}");
    let TaskSpec::Fused { steps } = fused.get(&n3).unwrap().spec() else {
        panic!("expected a fused task")
    };
    assert_eq!(
        steps.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![v, n1, n2, n3]
    );
    assert_eq!(ints(evaluate(&fused, &[n3]).unwrap()), vec![-5]);
    assert_eq!(ints(evaluate(&g, &[n3]).unwrap()), vec![-5]);
}

#[test]
fn fused_steps_may_share_an_outside_input() {
    let mut g = Graph::new();
    let x = value(&mut g, "x", 10);
    let y = value(&mut g, "y", 1);
    // x is read by both steps of the chain a -> b; y feeds a.
    let a = call2(&mut g, "a", x, y);
    let b = k("b");
    g.insert(b, Task::call(add::op(), [Arg::Key(a), Arg::Key(x)]));
    let steps = vec![
        (a, g.get(&a).unwrap().spec().clone()),
        (b, g.get(&b).unwrap().spec().clone()),
    ];
    let mut h = Graph::new();
    h.insert(x, g.get(&x).unwrap().clone());
    h.insert(y, g.get(&y).unwrap().clone());
    h.insert(b, Task::from_spec(TaskSpec::Fused { steps }));
    assert_eq!(h.get(&b).unwrap().dependencies().as_slice(), &[x, y]);
    assert_eq!(ints(evaluate(&h, &[b]).unwrap()), vec![21]);
}

#[test]
fn dot_draws_calls_and_data() {
    let mut g = Graph::new();
    let a = value(&mut g, "a", 1);
    let b = call1(&mut g, "b", a);
    let dot = g.to_dot(&DotOptions::default());
    assert!(dot.starts_with("digraph oxidask {"));
    assert!(dot.contains("label=\"neg\", shape=circle"), "{dot}");
    assert!(
        dot.contains(&format!("label=\"{}\", shape=box", a.short())),
        "{dot}"
    );
    assert!(
        dot.contains("d0 -> f1;") && dot.contains("f1 -> d1;"),
        "{dot}"
    );
    let _ = b;
}

#[test]
fn visualize_writes_dot_or_explains_graphviz() {
    let mut g = Graph::new();
    let a = value(&mut g, "a", 1);
    call1(&mut g, "b", a);
    let dir = std::env::temp_dir().join(format!("oxidask-viz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dot_path = dir.join("g.dot");
    g.visualize(&dot_path, &DotOptions::default()).unwrap();
    assert!(std::fs::read_to_string(&dot_path)
        .unwrap()
        .contains("digraph"));
    let svg_path = dir.join("g.svg");
    match g.visualize(&svg_path, &DotOptions::default()) {
        Ok(()) => assert!(std::fs::read_to_string(&svg_path).unwrap().contains("<svg")),
        Err(VisualizeErrorAlias::GraphvizMissing { .. }) => {
            let msg = g
                .visualize(&svg_path, &DotOptions::default())
                .unwrap_err()
                .to_string();
            assert!(msg.contains("apt-get install graphviz"), "{msg}");
        }
        Err(other) => panic!("unexpected: {other}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

use crate::error::VisualizeError as VisualizeErrorAlias;

#[test]
fn rewrite_replaces_tasks_in_place_and_keeps_the_rest() {
    let mut g = Graph::new();
    let a = Key::new("a", Token::from_u128(1));
    let b = Key::new("b", Token::from_u128(2));
    g.insert(a, Task::value(Value::new(1i64)));
    g.insert(b, Task::alias(a));
    g.rewrite(|k, _| (*k == a).then(|| Task::value(Value::new(7i64))));
    let out = crate::reference::evaluate(&g, &[b]).unwrap();
    assert_eq!(out[0].downcast_ref::<i64>(), Some(&7));
    assert_eq!(g.position(&b), Some(1));
}

/// Regression: a task with many dependencies (a reduction over a whole collection) was
/// planned by deduplicating them with a scan (quadratic).
#[test]
fn wide_tasks_plan_in_linear_time_with_repeats_removed() {
    let n = 100_000u32;
    let mut g = Graph::new();
    let mut args = Vec::new();
    for i in 0..n {
        let k = Key::block("leaf", Token::from_u128(9), &[i]);
        g.insert(k, Task::value(Value::new(i as i64)));
        args.push(Arg::Key(k));
        if i % 1000 == 0 {
            args.push(Arg::Key(k)); // repeats are one dependency
        }
    }
    let root = Key::new("root", Token::from_u128(10));
    g.insert(
        root,
        Task::from_spec(TaskSpec::Call {
            op: crate::task::Op::Registered(neg::op()),
            args: args.into(),
        }),
    );
    let plan = g.plan(&[root], PlanOptions::default()).unwrap();
    assert_eq!(plan.len(), n as usize + 1);
    assert_eq!(plan.deps(n).len(), n as usize);
    assert_eq!(g.get(&root).unwrap().dependencies().len(), n as usize);
}
