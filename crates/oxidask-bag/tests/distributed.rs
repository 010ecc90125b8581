//! Bags on a real cluster: a scheduler and two worker processes (this test binary, started as
//! `... worker ADDRESS`, so the workers know the functions registered here), compared with the
//! synchronous scheduler running the same graphs.
//!
//! Runs without libtest (`harness = false`): `main` must first give the worker processes
//! their entry point.

use oxidask_bag::{Bag, Json, TextReader};
use oxidask_client::LocalCluster;
use oxidask_core::{Collection, Compute};
use oxidask_local::Synchronous;

#[oxidask_core::task(crate = oxidask_core)]
fn words(line: String) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

#[oxidask_core::task(crate = oxidask_core)]
fn is_long(w: String) -> bool {
    w.len() > 3
}

#[oxidask_core::task(crate = oxidask_core)]
fn squares(xs: Vec<i64>) -> Vec<i64> {
    xs.into_iter().map(|x| x * x).collect()
}

/// A record type of this program, registered so its workers run bags of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, oxidask_core::Data)]
#[data(crate = oxidask_core)]
struct Visit {
    page: String,
    ms: u64,
}
oxidask_bag::register_records!(hash Visit);
// `frequencies` gives `(Visit, u64)` records: counting them on workers needs their kind too.
oxidask_bag::register_records!(hash(Visit, u64));

#[oxidask_core::task(crate = oxidask_core)]
fn visit(i: i64) -> Visit {
    Visit {
        page: format!("p{}", i % 7),
        ms: (i * 13 % 100) as u64,
    }
}

fn same<C>(c: &C, on: &dyn Compute) -> C::Output
where
    C: Collection,
    C::Output: PartialEq + std::fmt::Debug,
{
    let want = c.compute_with(&Synchronous::new()).expect("synchronous");
    let got = c.compute_with(on).expect("distributed");
    assert_eq!(got, want);
    got
}

fn main() {
    oxidask_worker::run_if_worker();
    let cluster = LocalCluster::builder()
        .processes(true)
        .workers(2)
        .threads_per_worker(1)
        .start()
        .expect("cluster of processes");
    let client = cluster.client().expect("client");
    let on: &dyn Compute = &client;

    // Text files: read, split with a registered function, count.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..3000 {
        text.push_str(&format!("alpha beta w{} gamma{}\n", i % 97, i % 5));
    }
    std::fs::write(dir.path().join("a.txt"), &text).unwrap();
    std::fs::write(dir.path().join("b.txt"), &text[..5000]).unwrap();
    let lines = TextReader::new(dir.path()).blocksize(9000).lines().unwrap();
    assert!(lines.npartitions() > 4);
    let all_words = lines.map_op::<Vec<String>>(words::op()).flatten();
    let n = same(&all_words.count(), on);
    let freq = same(&all_words.frequencies(true), on);
    assert_eq!(freq.iter().map(|(_, c)| c).sum::<u64>(), n);
    same(&all_words.filter_op(is_long::op()).distinct(), on);
    same(&all_words.topk(5), on);
    same(&all_words.repartition(3), on);
    same(&all_words.repartition(17).count(), on);

    // Numbers: reductions, a registered partition function.
    let nums = Bag::from_sequence((0..1000i64).map(|i| (i * 7919) % 1009 - 500), 9);
    same(&nums.sum(), on);
    same(&nums.min(), on);
    same(&nums.max(), on);
    let mean = nums.mean().compute_with(on).unwrap();
    let want = nums.mean().compute_with(&Synchronous::new()).unwrap();
    assert!((mean - want).abs() < 1e-9);
    same(&nums.map_partitions_op::<i64>(squares::op()).sum(), on);
    assert_eq!(nums.take(3).unwrap().len(), 3);

    // JSON lines with bad records: nothing good is lost.
    let mut jl = String::new();
    for i in 0..500 {
        if i % 50 == 7 {
            jl.push_str("{broken\n");
        } else {
            jl.push_str(&format!("{{\"user\": \"u{}\", \"n\": {i}}}\n", i % 11));
        }
    }
    std::fs::write(dir.path().join("records.jsonl"), &jl).unwrap();
    let res = TextReader::new(dir.path().join("records.jsonl"))
        .blocksize(2000)
        .json_results()
        .unwrap();
    let good: Vec<Json> = same(&res.oks(), on);
    assert_eq!(good.len(), 490);
    assert_eq!(same(&res.count_errs(), on), 10);
    let errs = same(&res.errs(), on);
    assert!(
        errs[0].contains("records.jsonl:8: malformed JSON"),
        "{errs:?}"
    );
    let users: Vec<(Json, u64)> = same(&res.oks().pluck("user").frequencies(false), on);
    assert_eq!(users.len(), 11);
    assert_eq!(users.iter().map(|(_, c)| c).sum::<u64>(), 490);
    let e = TextReader::new(dir.path().join("records.jsonl"))
        .json()
        .unwrap()
        .count()
        .compute_with(on)
        .unwrap_err()
        .to_string();
    assert!(e.contains("records.jsonl:8: malformed JSON"), "{e}");

    // A record type registered by this program.
    let visits = Bag::from_sequence(0..200i64, 4).map_op::<Visit>(visit::op());
    same(&visits.frequencies(false).count(), on);
    same(&visits.distinct(), on);

    // Written files are published by the workers.
    let out = dir.path().join("out");
    let written = all_words
        .repartition(2)
        .to_textfiles_delayed(&out)
        .unwrap()
        .compute_with(on)
        .unwrap();
    assert_eq!(written.len(), 2);
    let back = TextReader::new(&out)
        .lines()
        .unwrap()
        .count()
        .compute_with(on)
        .unwrap();
    assert_eq!(back, n);

    // Closures are refused with the client's message saying how to register them.
    let e = nums
        .map(|x| x + 1)
        .count()
        .compute_with(on)
        .unwrap_err()
        .to_string();
    assert!(e.contains("closure") || e.contains("register"), "{e}");
    println!("bag on a cluster of processes: ok");
}
