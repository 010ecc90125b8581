//! P2P shuffles (`ShuffleMethod::P2P`) against the task shuffle (row for row: unpack
//! concatenates shards in input order, as the task shuffle concatenates its pieces) and
//! against Polars on the whole frame: hash shuffles with skewed keys, numeric, datetime and
//! string range shuffles (sort_values, set_index), merges, split-out groupbys, empty
//! partitions; on the threaded scheduler (in-process store) and on a cluster of two
//! in-process workers (the workers' shuffle services, shards over the data port).

use std::sync::Arc;

use oxidask_client::LocalCluster;
use oxidask_core::compute::with_scheduler;
use oxidask_core::Collection;
use oxidask_dataframe::polars::prelude as pl;
use oxidask_dataframe::{self as dd, with_shuffle_method, DataFrame, How, ShuffleMethod};

use crate::common::{assert_frames_eq, oracle, sample, sorted};

/// The queries, each with its oracle on the whole frame (compared after sorting every
/// column), built with `method`.
fn queries(
    df: &DataFrame,
    other: &DataFrame,
    method: ShuffleMethod,
) -> Vec<(&'static str, DataFrame)> {
    with_shuffle_method(method, || {
        vec![
            ("hash k", df.shuffle(["k"], 13)),
            ("hash g,k", df.shuffle(["g", "k"], 5)),
            ("sort x", df.sort_values(&["x"], false)),
            ("sort t desc", df.sort_values(&["t"], true)),
            ("sort s", df.sort_values(&["s"], false)),
            ("set_index y", df.set_index("y", None)),
            ("merge", df.merge(other, &["k"], &["key"], How::Inner)),
            ("split_out", df.groupby(["g", "k"]).split_out(4).sum("x")),
        ]
    })
}

fn oracles(data: &pl::DataFrame, other: &pl::DataFrame) -> Vec<pl::DataFrame> {
    use pl::*;
    let whole = data.clone();
    let other = other.clone();
    let set_index = oracle(&whole, |lf| {
        let mut cols = vec![col("y")];
        cols.extend(["k", "g", "x", "s", "t"].map(col));
        lf.select(cols)
    });
    vec![
        whole.clone(),
        whole.clone(),
        whole.clone(),
        whole.clone(),
        whole.clone(),
        set_index,
        oracle(&whole, |lf| {
            lf.join(
                other.lazy(),
                [col("k")],
                [col("key")],
                JoinArgs::new(JoinType::Inner),
            )
        }),
        oracle(&whole, |lf| {
            lf.group_by([col("g"), col("k")]).agg([col("x").sum()])
        }),
    ]
}

fn check(data: &pl::DataFrame, nparts: usize, what: &str) {
    let df = dd::from_polars(data.clone(), nparts);
    let other_pl = pl::df!(
        "key" => (0i64..12).collect::<Vec<_>>(),
        "w" => (0i64..12).map(|i| i * 10).collect::<Vec<_>>()
    )
    .unwrap();
    let other = dd::from_polars(other_pl.clone(), 3);
    let p2p = queries(&df, &other, ShuffleMethod::P2P);
    let tasks = queries(&df, &other, ShuffleMethod::Tasks);
    let want = oracles(data, &other_pl);
    for (((name, p), (_, t)), w) in p2p.iter().zip(&tasks).zip(&want) {
        let what = format!("{what}, {nparts} partitions, {name}");
        assert_eq!(p.npartitions(), t.npartitions(), "{what}: partitions");
        let (got, base) = (p.compute().unwrap(), t.compute().unwrap());
        if name.starts_with("hash") || name.starts_with("merge") {
            // Same partitions, same rows in the same order.
            assert_frames_eq(&got, &base, &format!("{what}: p2p vs tasks"));
        } else {
            assert_frames_eq(
                &sorted(&got),
                &sorted(&base),
                &format!("{what}: p2p vs tasks"),
            );
        }
        assert_frames_eq(&sorted(&got), &sorted(w), &format!("{what}: vs Polars"));
        if name.starts_with("sort") {
            // Sorted across partitions: the key column in order.
            let key = &name[5..6];
            let desc = name.ends_with("desc");
            let o = oracle(w, |lf| {
                lf.sort(
                    [key],
                    pl::SortMultipleOptions::default()
                        .with_order_descending(desc)
                        .with_nulls_last(true),
                )
            });
            assert!(
                got.column(key)
                    .unwrap()
                    .as_materialized_series()
                    .equals_missing(o.column(key).unwrap().as_materialized_series()),
                "{what}: key order"
            );
        }
    }
}

#[test]
fn p2p_equals_the_task_shuffle_and_polars_on_the_threaded_scheduler() {
    let data = sample(2000, 91);
    for nparts in [1, 3, 40] {
        check(&data, nparts, "threaded");
    }
    // An empty frame: every partition empty.
    check(&data.head(Some(0)), 4, "threaded, no rows");
}

#[test]
fn p2p_on_a_cluster_equals_the_task_shuffle_with_o_n_plus_m_tasks() {
    let cluster = LocalCluster::builder()
        .workers(2)
        .threads_per_worker(2)
        .start()
        .unwrap();
    let client = oxidask_client::Client::builder()
        .address(cluster.address())
        .set_as_default(false)
        .connect()
        .unwrap();
    let data = sample(3000, 17);
    with_scheduler(Arc::new(client.clone()), || {
        for nparts in [3, 24] {
            check(&data, nparts, "cluster");
        }
        // The graph: n transfers, a barrier, m unpacks (plus the n input partitions), where
        // the task shuffle has n splits, n·m picks and m concats.
        let df = dd::from_polars(data.clone(), 64);
        let p2p = with_shuffle_method(ShuffleMethod::P2P, || df.shuffle(["k"], 64));
        let tasks = with_shuffle_method(ShuffleMethod::Tasks, || df.shuffle(["k"], 64));
        let inputs = df.graph().len();
        assert_eq!(p2p.graph().len(), inputs + 64 + 1 + 64);
        assert_eq!(tasks.graph().len(), inputs + 64 + 64 * 64 + 64);
        // Chosen without asking on a cluster: 64 x 64 pairs.
        let auto = df.shuffle(["k"], 64);
        assert_eq!(auto.graph().len(), p2p.graph().len());
        assert_frames_eq(&auto.compute().unwrap(), &tasks.compute().unwrap(), "auto");
    });
    // And tasks on the local schedulers.
    let local = dd::from_polars(data, 64).shuffle(["k"], 64);
    assert_eq!(
        local.graph().len(),
        dd::from_polars(sample(1, 1), 64).graph().len() + 64 + 64 * 64 + 64
    );
}

#[test]
fn p2p_on_the_threaded_scheduler_spills_past_its_memory_budget() {
    // 16 KiB for the whole process: most shards go to disk.
    let _budget = oxidask_config::set("distributed.p2p.memory-budget", "16KiB").unwrap();
    let data = sample(20_000, 23);
    let df = dd::from_polars(data.clone(), 16);
    let before = dd::local_shuffle_spilled_bytes();
    let p2p = with_shuffle_method(ShuffleMethod::P2P, || df.shuffle(["k", "s"], 16));
    let tasks = with_shuffle_method(ShuffleMethod::Tasks, || df.shuffle(["k", "s"], 16));
    let got = p2p.compute().unwrap();
    assert!(
        dd::local_shuffle_spilled_bytes() > before,
        "the in-process store spilled"
    );
    assert_frames_eq(&got, &tasks.compute().unwrap(), "spilled p2p vs tasks");
    assert_frames_eq(&sorted(&got), &sorted(&data), "spilled p2p vs the input");
}

/// Regression: `explain()` did not say how a shuffle moves rows, so a P2P shuffle and a task
/// shuffle of the same frame printed the same plan.
#[test]
fn explain_names_the_shuffle_method() {
    let df = dd::from_polars(sample(100, 3), 4);
    let p2p = with_shuffle_method(ShuffleMethod::P2P, || df.shuffle(["k"], 4)).explain();
    let tasks = with_shuffle_method(ShuffleMethod::Tasks, || df.shuffle(["k"], 4)).explain();
    assert!(p2p.contains("method p2p"), "{p2p}");
    assert!(tasks.contains("method tasks"), "{tasks}");
}
