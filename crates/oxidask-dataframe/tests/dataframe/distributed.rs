//! The same dataframe code on the distributed scheduler: a real scheduler and two workers on
//! loopback (in this process, so they run this binary's registered operations); partitions
//! cross the sockets as Arrow IPC, per-partition plans as Polars' serde.

use std::sync::Arc;

use oxidask_client::LocalCluster;
use oxidask_core::compute::with_scheduler;
use oxidask_core::Collection;
use oxidask_dataframe::polars::prelude as pl;
use oxidask_dataframe::{self as dd, agg, col, lit, How};

use crate::common::{assert_frames_eq, sample, sorted};

#[test]
fn dataframes_run_unchanged_on_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample(3000, 40);
    let src = dir.path().join("src");
    let d = src.to_str().unwrap();
    // Written locally first (threaded scheduler): the oracle's input.
    dd::from_polars(data.clone(), 6).to_parquet(d).unwrap();
    let lookup = pl::df!("key" => [0i64, 1, 2, 3], "name" => ["a", "b", "c", "d"]).unwrap();

    let query = || {
        let df = dd::read_parquet(d);
        let by_key = df
            .filter(col("x").gt(lit(-10.0)))
            .groupby(["k"])
            .agg([agg::mean("x"), agg::std("y"), agg::nunique("s")])
            .compute()
            .unwrap();
        let joined = df
            .merge(
                &dd::from_polars(lookup.clone(), 1),
                &["k"],
                &["key"],
                How::Inner,
            )
            .column("name")
            .value_counts()
            .compute()
            .unwrap();
        let shuffled = df
            .groupby(["g", "k"])
            .split_out(4)
            .sum("x")
            .compute()
            .unwrap();
        let sorted_head = df.sort_values(&["x"], false).head(5).unwrap();
        (by_key, joined, shuffled, sorted_head, df.len().unwrap())
    };
    let local = query();

    let cluster = LocalCluster::builder()
        .workers(2)
        .threads_per_worker(1)
        .start()
        .unwrap();
    let client = oxidask_client::Client::builder()
        .address(cluster.address())
        .set_as_default(false)
        .connect()
        .unwrap();
    let remote = with_scheduler(Arc::new(client.clone()), || {
        let out = query();
        // Writing from the cluster: the workers write the files.
        let written = dd::read_parquet(d)
            .filter(col("k").eq(lit(0)))
            .to_parquet(dir.path().join("zeros").to_str().unwrap())
            .unwrap();
        (out, written)
    });
    let ((by_key, joined, shuffled, sorted_head, n), written) = remote;
    assert_frames_eq(&by_key, &local.0, "groupby on the cluster");
    assert_frames_eq(&sorted(&joined), &sorted(&local.1), "merge on the cluster");
    assert_frames_eq(
        &sorted(&shuffled),
        &sorted(&local.2),
        "split_out on the cluster",
    );
    assert_frames_eq(&sorted_head, &local.3, "sort_values on the cluster");
    assert_eq!(n, local.4);
    let zeros = data
        .column("k")
        .unwrap()
        .as_materialized_series()
        .i64()
        .unwrap()
        .iter()
        .filter(|v| *v == Some(0))
        .count();
    assert_eq!(written as usize, zeros);
    assert_eq!(
        dd::read_parquet(dir.path().join("zeros").to_str().unwrap())
            .len()
            .unwrap(),
        zeros
    );
    // Errors from workers reach the client with the column named.
    let mut meta = pl::Schema::default();
    meta.with_column("zzz".into(), pl::DataType::Float64);
    let err = with_scheduler(Arc::new(client), || {
        dd::read_parquet(d)
            .map_partitions(crate::frame::add_ratio_op(), meta)
            .compute()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("zzz"), "{err}");
}

#[test]
fn shuffles_on_a_cluster_spill_to_disk_when_memory_is_short() {
    let data = sample(20_000, 41);
    let local = {
        let df = dd::from_polars(data.clone(), 8);
        (
            df.shuffle(["k", "g"], 6).compute().unwrap(),
            df.groupby(["g", "k"])
                .split_out(5)
                .agg([agg::sum("x"), agg::nunique("s")])
                .compute()
                .unwrap(),
            df.sort_values(&["x"], false).compute().unwrap(),
        )
    };
    // 256 KiB per worker: partitions of ~100 KB and their pieces must spill.
    let cluster = LocalCluster::builder()
        .workers(2)
        .threads_per_worker(1)
        .memory_limit(256 << 10)
        .start()
        .unwrap();
    let client = oxidask_client::Client::builder()
        .address(cluster.address())
        .set_as_default(false)
        .connect()
        .unwrap();
    let remote = with_scheduler(Arc::new(client), || {
        let df = dd::from_polars(data.clone(), 8);
        (
            df.shuffle(["k", "g"], 6).compute().unwrap(),
            df.groupby(["g", "k"])
                .split_out(5)
                .agg([agg::sum("x"), agg::nunique("s")])
                .compute()
                .unwrap(),
            df.sort_values(&["x"], false).compute().unwrap(),
        )
    });
    assert_frames_eq(
        &sorted(&remote.0),
        &sorted(&local.0),
        "shuffle with spilling",
    );
    assert_frames_eq(
        &sorted(&remote.1),
        &sorted(&local.1),
        "split_out with spilling",
    );
    assert_frames_eq(
        &remote.2.select(["x"]).unwrap(),
        &local.2.select(["x"]).unwrap(),
        "sort with spilling",
    );
    let spilled: u64 = cluster.workers().iter().map(|w| w.spilled().1).sum();
    assert!(spilled > 0, "the workers spilled");
}
