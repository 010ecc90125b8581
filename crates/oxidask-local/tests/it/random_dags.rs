//! Random DAGs on every scheduler against the naive reference evaluator, and peak memory
//! against a depth-first order.

use std::collections::HashMap;

use oxidask_core::reference::evaluate;
use oxidask_core::{Arg, Graph, Key, Task, Token, Value};
use oxidask_local::{Synchronous, Threaded};
use proptest::prelude::*;

use crate::ops;

/// A node: a literal, or an operation over earlier nodes.
#[derive(Debug, Clone)]
enum Node {
    Lit(i64),
    Neg(usize),
    Add(usize, usize),
    Mix(usize, usize, usize),
    Total(Vec<usize>),
}

fn dag() -> impl Strategy<Value = (Vec<Node>, Vec<usize>)> {
    (2usize..60).prop_flat_map(|n| {
        let nodes = (0..n)
            .map(|i| {
                if i == 0 {
                    any::<i8>().prop_map(|v| Node::Lit(v as i64)).boxed()
                } else {
                    prop_oneof![
                        any::<i8>().prop_map(|v| Node::Lit(v as i64)),
                        (0..i).prop_map(Node::Neg),
                        (0..i, 0..i).prop_map(|(a, b)| Node::Add(a, b)),
                        (0..i, 0..i, 0..i).prop_map(|(a, b, c)| Node::Mix(a, b, c)),
                        prop::collection::vec(0..i, 0..5).prop_map(Node::Total),
                    ]
                    .boxed()
                }
            })
            .collect::<Vec<_>>();
        (nodes, prop::collection::vec(0..n, 1..6))
    })
}

fn key(i: usize) -> Key {
    Key::block("node", Token::from_u128(0xDA6), &[i as u32])
}

fn build(nodes: &[Node]) -> Graph {
    let mut g = Graph::new();
    for (i, n) in nodes.iter().enumerate() {
        let k = |j: &usize| Arg::Key(key(*j));
        let task = match n {
            Node::Lit(v) => Task::call(ops::lit::op(), [Arg::Value(Value::new(*v))]),
            Node::Neg(a) => Task::call(ops::neg::op(), [k(a)]),
            Node::Add(a, b) => Task::call(ops::add::op(), [k(a), k(b)]),
            Node::Mix(a, b, c) => Task::call(ops::mix::op(), [k(a), k(b), k(c)]),
            Node::Total(xs) => {
                Task::call(ops::total::op(), [Arg::List(xs.iter().map(k).collect())])
            }
        };
        g.insert(key(i), task);
    }
    g
}

fn ints(values: Vec<Value>) -> Vec<i64> {
    values
        .into_iter()
        .map(|v| v.take::<i64>().unwrap())
        .collect()
}

/// Peak number of results held when running a plain recursive depth-first post-order
/// (dependencies in argument order), releasing each result after its last reader.
fn depth_first_peak(g: &Graph, outputs: &[Key]) -> usize {
    fn visit(g: &Graph, k: Key, seen: &mut Vec<Key>, order: &mut Vec<Key>) {
        if seen.contains(&k) {
            return;
        }
        seen.push(k);
        for d in g.get(&k).unwrap().dependencies() {
            visit(g, d, seen, order);
        }
        order.push(k);
    }
    let (mut seen, mut order) = (Vec::new(), Vec::new());
    for o in outputs {
        visit(g, *o, &mut seen, &mut order);
    }
    let mut uses: HashMap<Key, usize> = HashMap::new();
    for k in &order {
        for d in g.get(k).unwrap().dependencies() {
            *uses.entry(d).or_default() += 1;
        }
    }
    for o in outputs {
        *uses.entry(*o).or_default() += 1;
    }
    let (mut live, mut peak) = (0usize, 0usize);
    for k in &order {
        for d in g.get(k).unwrap().dependencies() {
            let u = uses.get_mut(&d).unwrap();
            *u -= 1;
            if *u == 0 {
                live -= 1;
            }
        }
        live += 1;
        peak = peak.max(live);
    }
    peak
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_scheduler_agrees_with_the_reference((nodes, outs) in dag()) {
        let g = build(&nodes);
        let outputs: Vec<Key> = outs.iter().map(|&i| key(i)).collect();
        let expected = ints(evaluate(&g, &outputs).unwrap());

        let (sync, sync_stats) = Synchronous::new().run(&g, &outputs).unwrap();
        prop_assert_eq!(ints(sync), expected.clone());
        let (unfused, _) = Synchronous::new().fuse(false).run(&g, &outputs).unwrap();
        prop_assert_eq!(ints(unfused), expected.clone());

        for threads in [1usize, 2, 4] {
            let pool = Threaded::new(threads).collect_stats(true);
            let (vals, stats) = pool.run(g.clone(), &outputs).unwrap();
            prop_assert_eq!(ints(vals), expected.clone(), "threads = {}", threads);
            prop_assert_eq!(stats.tasks, sync_stats.tasks);
            if threads == 1 {
                prop_assert!(stats.peak_live_values <= depth_first_peak(&g, &outputs),
                    "1 thread held {} results, depth-first holds {}", stats.peak_live_values, depth_first_peak(&g, &outputs));
            }
        }

        let dfs = depth_first_peak(&g, &outputs);
        prop_assert!(sync_stats.peak_live_values <= dfs,
            "synchronous held {} results at once, a depth-first order holds {}", sync_stats.peak_live_values, dfs);
    }
}

#[test]
fn wide_reduction_holds_few_results() {
    // 4096 leaves summed pairwise: depth-first order never holds more than ~log2(n) + 1.
    let mut g = Graph::new();
    let mut level: Vec<Key> = (0..4096)
        .map(|i| {
            let k = Key::block("leaf", Token::from_u128(1), &[i]);
            g.insert(
                k,
                Task::call(ops::lit::op(), [Arg::Value(Value::new(i as i64))]),
            );
            k
        })
        .collect();
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        level = level
            .chunks(2)
            .enumerate()
            .map(|(i, pair)| {
                let k = Key::block("sum", Token::from_u128(depth), &[i as u32]);
                g.insert(
                    k,
                    Task::call(ops::add::op(), [Arg::Key(pair[0]), Arg::Key(pair[1])]),
                );
                k
            })
            .collect();
    }
    let (vals, stats) = Synchronous::new().run(&g, &level).unwrap();
    assert_eq!(ints(vals), vec![(0..4096i64).sum()]);
    assert!(
        stats.peak_live_values <= 14,
        "held {}",
        stats.peak_live_values
    );
    let (vals, stats) = Threaded::new(1)
        .collect_stats(true)
        .run(g.clone(), &level)
        .unwrap();
    assert_eq!(ints(vals), vec![(0..4096i64).sum()]);
    assert!(
        stats.peak_live_values <= 14,
        "held {}",
        stats.peak_live_values
    );
    let (vals, stats) = Threaded::new(2).collect_stats(true).run(g, &level).unwrap();
    assert_eq!(ints(vals), vec![(0..4096i64).sum()]);
    assert!(
        stats.peak_live_values <= 64,
        "2 threads held {}",
        stats.peak_live_values
    );
}

#[test]
fn a_long_chain_is_fused_into_one_unit() {
    let mut g = Graph::new();
    let mut prev = Key::new("start", Token::from_u128(9));
    g.insert(prev, Task::value(Value::new(0i64)));
    for i in 0..100_000u32 {
        let k = Key::block("chain", Token::from_u128(9), &[i]);
        g.insert(k, Task::call(ops::neg::op(), [Arg::Key(prev)]));
        prev = k;
    }
    let (vals, stats) = Threaded::new(2).run(g.clone(), &[prev]).unwrap();
    assert_eq!(ints(vals), vec![0]);
    assert_eq!(stats.tasks, 100_001);
    assert_eq!(stats.units, 1);
    let (vals, _) = Synchronous::new().run(&g, &[prev]).unwrap();
    assert_eq!(ints(vals), vec![0]);
}
