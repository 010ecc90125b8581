//! The optimizer: which columns reads take after projection pushdown (from `explain()`), where
//! filters land after predicate pushdown, and results against Polars run directly on the same
//! data.

use oxidask_core::Collection;
use oxidask_dataframe::polars::prelude::{self as pl, ChunkAgg, IntoLazy};
use oxidask_dataframe::{self as dd, agg, col, lit};

use crate::common::{assert_frames_eq, sorted};

fn write_parquet(df: &pl::DataFrame, path: &std::path::Path) {
    let mut f = std::fs::File::create(path).unwrap();
    pl::ParquetWriter::new(&mut f)
        .finish(&mut df.clone())
        .unwrap();
}

/// Trips in three Parquet files and a zone table in one; the frames they hold.
fn taxi(dir: &std::path::Path) -> (pl::DataFrame, pl::DataFrame) {
    let mut all: Option<pl::DataFrame> = None;
    for f in 0..3u64 {
        let n = 400;
        let loc: Vec<i64> = (0..n).map(|i| ((i * 37 + f * 11) % 23) as i64).collect();
        let fare: Vec<f64> = (0..n).map(|i| ((i * 13 + f) % 50) as f64 * 1.5).collect();
        let tip: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
        let pax: Vec<i64> = (0..n).map(|i| (i % 4) as i64).collect();
        let x: Vec<i64> = (0..n).map(|i| i as i64).collect();
        let df = pl::df!(
            "PULocationID" => loc, "fare" => fare, "tip" => tip,
            "passenger_count" => pax, "x" => x
        )
        .unwrap();
        write_parquet(&df, &dir.join(format!("trips-{f}.parquet")));
        all = Some(match all {
            None => df,
            Some(mut a) => {
                a.vstack_mut(&df).unwrap();
                a
            }
        });
    }
    let ids: Vec<i64> = (0..20).collect();
    let boroughs: Vec<&str> = (0..20)
        .map(|i| ["Queens", "Bronx", "Manhattan", "Brooklyn"][i % 4])
        .collect();
    let zones: Vec<String> = (0..20).map(|i| format!("zone {i}")).collect();
    let xs: Vec<i64> = (0..20).map(|i| i * 100).collect();
    let z = pl::df!(
        "LocationID" => ids, "Borough" => boroughs, "Zone" => zones, "x" => xs
    )
    .unwrap();
    write_parquet(&z, &dir.join("zones.parquet"));
    (all.unwrap(), z)
}

/// The `reads columns [...]` of each read in the plan, in plan order.
fn reads(plan: &str) -> Vec<String> {
    plan.lines()
        .filter_map(|l| {
            let at = l.find("reads columns ")? + "reads columns ".len();
            let rest = &l[at..];
            let end = rest.find(']').map_or(rest.len(), |e| e + 1);
            Some(rest[..end].to_owned())
        })
        .collect()
}

fn value_counts_oracle(joined: pl::LazyFrame, column: &str) -> pl::DataFrame {
    joined
        .group_by([pl::col(column)])
        .agg([pl::len().cast(pl::DataType::UInt32).alias("count")])
        .collect()
        .unwrap()
}

fn counts_sorted(df: &pl::DataFrame) -> pl::DataFrame {
    sorted(&df.clone().lazy().collect().unwrap())
}

#[test]
fn a_merge_then_value_counts_reads_only_the_keys_and_the_counted_column() {
    let dir = tempfile::tempdir().unwrap();
    let (trips, zones) = taxi(dir.path());
    let t = dd::read_parquet(
        ["0", "1", "2"]
            .map(|i| format!("{}/trips-{i}.parquet", dir.path().display()))
            .to_vec(),
    );
    let z = dd::read_parquet(format!("{}/zones.parquet", dir.path().display()));
    for (z, how) in [(z.clone(), "broadcast"), (z.repartition(2), "shuffle")] {
        let merged = t.merge(&z, &["PULocationID"], &["LocationID"], dd::How::Inner);
        let counts = merged.column("Borough").value_counts();
        let plan = counts.explain();
        assert_eq!(
            reads(&plan),
            ["[PULocationID]", "[Borough, LocationID]"],
            "{how}:\n{plan}"
        );
        // The zones are broadcast (two partitions are still small), and the trips are counted
        // per location below the merge (their statistics promise few locations).
        assert!(
            plan.contains(r#"aggregated below the merge (its streamed read grouped by ["PULocationID"] first)"#),
            "{how}:\n{plan}"
        );
        let got = counts.compute().unwrap();
        let want = value_counts_oracle(
            trips.clone().lazy().join(
                zones.clone().lazy(),
                [pl::col("PULocationID")],
                [pl::col("LocationID")],
                pl::JoinArgs::new(pl::JoinType::Inner),
            ),
            "Borough",
        );
        assert_frames_eq(&counts_sorted(&got), &counts_sorted(&want), how);
    }
}

#[test]
fn aggregations_after_a_broadcast_merge_equal_polars_on_the_joined_rows() {
    // Grouped by the small side's column (the trips are pre-aggregated per location below
    // the join), or by the trips' own, inner and left joins: Polars' group-by of the joined
    // rows is the oracle.
    let dir = tempfile::tempdir().unwrap();
    let (trips, zones) = taxi(dir.path());
    let t = dd::read_parquet(format!("{}/trips-*.parquet", dir.path().display()));
    let z = dd::read_parquet(format!("{}/zones.parquet", dir.path().display()));
    for how in [dd::How::Inner, dd::How::Left] {
        for key in ["Borough", "passenger_count"] {
            let got = t
                .merge(&z, &["PULocationID"], &["LocationID"], how)
                .groupby([key])
                .agg([
                    agg::sum("fare"),
                    agg::mean("tip"),
                    agg::count("Zone").alias("zones"),
                    agg::size("fare").alias("rows"),
                    agg::min("fare").alias("cheapest"),
                    agg::max("Zone").alias("last_zone"),
                ])
                .compute()
                .unwrap();
            let joined = trips.clone().lazy().join(
                zones.clone().lazy(),
                [pl::col("PULocationID")],
                [pl::col("LocationID")],
                pl::JoinArgs::new(match how {
                    dd::How::Inner => pl::JoinType::Inner,
                    _ => pl::JoinType::Left,
                })
                .with_suffix(Some("_right".into())),
            );
            let want = joined
                .group_by([pl::col(key)])
                .agg([
                    pl::col("fare").sum(),
                    pl::col("tip").mean(),
                    pl::col("Zone").count().alias("zones"),
                    pl::col("fare").len().alias("rows"),
                    pl::col("fare").min().alias("cheapest"),
                    pl::col("Zone").max().alias("last_zone"),
                ])
                .collect()
                .unwrap();
            assert_frames_eq(&sorted(&got), &sorted(&want), &format!("{how:?} by {key}"));
        }
    }
}

#[test]
fn filters_after_a_merge_move_to_the_side_they_concern() {
    let dir = tempfile::tempdir().unwrap();
    let (trips, zones) = taxi(dir.path());
    let t = dd::read_parquet(format!("{}/trips-*.parquet", dir.path().display()));
    let z = dd::read_parquet(format!("{}/zones.parquet", dir.path().display())).repartition(2);
    let join = |how: pl::JoinType| {
        trips.clone().lazy().join(
            zones.clone().lazy(),
            [pl::col("PULocationID")],
            [pl::col("LocationID")],
            pl::JoinArgs::new(how).with_suffix(Some("_right".into())),
        )
    };
    // A trips column: the filter runs in the trips read, before the shuffle.
    let merged = t.merge(&z, &["PULocationID"], &["LocationID"], dd::How::Inner);
    let q = merged
        .filter(col("fare").gt(lit(30.0)))
        .column("Borough")
        .value_counts();
    let plan = q.explain();
    let trips_read = plan
        .lines()
        .find(|l| l.contains("reads columns [PULocationID, fare]"))
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(trips_read.contains("filter"), "{plan}");
    assert_eq!(
        reads(&plan),
        ["[PULocationID, fare]", "[Borough, LocationID]"],
        "{plan}"
    );
    let want = value_counts_oracle(
        join(pl::JoinType::Inner).filter(pl::col("fare").gt(pl::lit(30.0))),
        "Borough",
    );
    assert_frames_eq(
        &counts_sorted(&q.compute().unwrap()),
        &counts_sorted(&want),
        "left filter",
    );
    // A zones column: into the zones read.
    let q = merged
        .filter(col("Borough").eq(lit("Queens")))
        .groupby(["PULocationID"])
        .agg([
            agg::mean("fare"),
            agg::std("fare"),
            agg::size("fare").alias("n"),
        ]);
    let plan = q.explain();
    let zones_read = plan
        .lines()
        .find(|l| l.contains("reads columns [Borough, LocationID]"))
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(zones_read.contains("filter"), "{plan}");
    assert_eq!(
        reads(&plan),
        ["[PULocationID, fare]", "[Borough, LocationID]"],
        "{plan}"
    );
    let want = join(pl::JoinType::Inner)
        .filter(pl::col("Borough").eq(pl::lit("Queens")))
        .group_by([pl::col("PULocationID")])
        .agg([
            pl::col("fare").mean().alias("fare_mean"),
            pl::col("fare").std(1).alias("fare_std"),
            pl::len().alias("n"),
        ])
        .sort(["PULocationID"], Default::default())
        .collect()
        .unwrap();
    let got = q.compute().unwrap();
    let got = got
        .lazy()
        .with_column(pl::col("n").cast(pl::DataType::UInt32))
        .collect()
        .unwrap();
    assert_frames_eq(&got, &want, "right filter");
    // A left join keeps unmatched trips: a zones filter must stay above the join.
    let left = t.merge(&z, &["PULocationID"], &["LocationID"], dd::How::Left);
    let q = left.filter(col("Zone").is_null().or(col("Borough").eq(lit("Bronx"))));
    let got = q.compute().unwrap();
    let want = join(pl::JoinType::Left)
        .filter(
            pl::col("Zone")
                .is_null()
                .or(pl::col("Borough").eq(pl::lit("Bronx"))),
        )
        .collect()
        .unwrap();
    assert_frames_eq(&sorted(&got), &sorted(&want), "left join, right filter");
}

#[test]
fn projection_keeps_a_clashing_column_so_its_suffix_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (trips, zones) = taxi(dir.path());
    let t = dd::read_parquet(format!("{}/trips-*.parquet", dir.path().display()));
    let z = dd::read_parquet(format!("{}/zones.parquet", dir.path().display()));
    // Only `x_right` (the zones' `x`) is used: the trips' `x` must still be read, or the
    // zones' column would come out as `x`.
    let merged = t.merge(&z, &["PULocationID"], &["LocationID"], dd::How::Inner);
    let q = merged.select([col("x_right")]);
    let plan = q.explain();
    assert_eq!(
        reads(&plan),
        ["[PULocationID, x]", "[LocationID, x]"],
        "{plan}"
    );
    let got = q.compute().unwrap();
    let want = trips
        .lazy()
        .join(
            zones.lazy(),
            [pl::col("PULocationID")],
            [pl::col("LocationID")],
            pl::JoinArgs::new(pl::JoinType::Inner).with_suffix(Some("_right".into())),
        )
        .select([pl::col("x_right")])
        .collect()
        .unwrap();
    assert_frames_eq(&sorted(&got), &sorted(&want), "x_right");
}

#[test]
fn projection_passes_through_concat_sort_and_set_index() {
    let dir = tempfile::tempdir().unwrap();
    let (trips, _) = taxi(dir.path());
    let a = dd::read_parquet(format!("{}/trips-0.parquet", dir.path().display()));
    let b = dd::read_parquet(format!("{}/trips-1.parquet", dir.path().display()));
    let both = dd::DataFrame::concat(&[a.clone(), b]);
    let q = both.groupby(["passenger_count"]).agg([agg::sum("tip")]);
    let plan = q.explain();
    assert_eq!(
        reads(&plan),
        ["[passenger_count, tip]", "[passenger_count, tip]"],
        "{plan}"
    );
    let first_two = trips.slice(0, 800);
    let want = first_two
        .clone()
        .lazy()
        .group_by([pl::col("passenger_count")])
        .agg([pl::col("tip").sum()])
        .sort(["passenger_count"], Default::default())
        .collect()
        .unwrap();
    assert_frames_eq(&q.compute().unwrap(), &want, "concat groupby");
    // sort_values then one column: the sort key and that column move, nothing else.
    let s = a.sort_values(&["fare"], false).column("tip").sum();
    let plan = s.to_frame().explain();
    assert!(reads(&plan).iter().all(|r| r == "[fare, tip]"), "{plan}");
    let want: f64 = trips
        .slice(0, 400)
        .column("tip")
        .unwrap()
        .f64()
        .unwrap()
        .sum()
        .unwrap();
    assert_eq!(s.compute_f64().unwrap(), want);
    // set_index on a string key, then a sum: the key and the summed column.
    let keyed = both.with_columns([col("x").cast(dd::DataType::String).alias("key")]);
    let s = keyed.set_index("key", None).column("fare").sum();
    let plan = s.to_frame().explain();
    assert!(!plan.contains("passenger_count"), "{plan}");
    let want: f64 = first_two
        .column("fare")
        .unwrap()
        .f64()
        .unwrap()
        .sum()
        .unwrap();
    assert!((s.compute_f64().unwrap() - want).abs() < 1e-9 * want);
}

/// The Parquet read tasks of a graph (calls of the registered `scan` operation).
fn scan_tasks(g: &oxidask_core::Graph) -> usize {
    g.iter()
        .filter(|(_, t)| {
            matches!(t.spec(), oxidask_core::TaskSpec::Call { op, .. } if op.name().contains("scan"))
        })
        .count()
}

#[test]
fn a_frame_used_twice_is_read_once() {
    // Item (f) of issue 10: `df.merge(df.groupby(..).agg(..))` reads each file once; the
    // shared read is one sub-plan (one token) whose tasks both consumers use.
    let dir = tempfile::tempdir().unwrap();
    let (trips, _) = taxi(dir.path());
    let t = dd::read_parquet(
        ["0", "1", "2"]
            .map(|i| format!("{}/trips-{i}.parquet", dir.path().display()))
            .to_vec(),
    );
    let means = t
        .groupby(["PULocationID"])
        .agg([agg::mean("fare").alias("mean_fare")]);
    let m = t.merge(&means, &["PULocationID"], &["PULocationID"], dd::How::Inner);
    let g = m.graph();
    assert_eq!(scan_tasks(&g), 3, "{}", m.explain());
    let got = m.compute().unwrap();
    let lt = trips.clone().lazy();
    let want = lt
        .clone()
        .join(
            lt.group_by([pl::col("PULocationID")])
                .agg([pl::col("fare").mean().alias("mean_fare")]),
            [pl::col("PULocationID")],
            [pl::col("PULocationID")],
            pl::JoinArgs::new(pl::JoinType::Inner),
        )
        .collect()
        .unwrap();
    assert_frames_eq(&sorted(&got), &sorted(&want), "merge with own groupby");
}

#[test]
fn a_hash_join_shuffles_only_the_needed_columns() {
    // Item (c): the shuffle below a hash join carries the join keys and the used columns
    // (an outer join: never broadcast, whatever the sizes).
    let dir = tempfile::tempdir().unwrap();
    taxi(dir.path());
    let t = dd::read_parquet(format!("{}/trips-*.parquet", dir.path().display()));
    let z = dd::read_parquet(format!("{}/zones.parquet", dir.path().display())).repartition(2);
    let m = t
        .merge(&z, &["PULocationID"], &["LocationID"], dd::How::Outer)
        .select([col("fare"), col("Borough")]);
    let plan = m.explain();
    let shuffles: Vec<&str> = plan.lines().filter(|l| l.contains("shuffle by")).collect();
    assert_eq!(shuffles.len(), 2, "{plan}");
    assert!(
        shuffles
            .iter()
            .any(|l| l.ends_with("columns [PULocationID, fare]")),
        "{plan}"
    );
    assert!(
        shuffles
            .iter()
            .any(|l| l.ends_with("columns [LocationID, Borough]")),
        "{plan}"
    );
}

#[test]
fn a_small_side_is_broadcast_by_estimated_size_and_concatenated_once() {
    // Item (b): zones are three small Parquet files (three partitions, so not broadcast by
    // partition count); their footer size is under `dataframe.broadcast-bytes`.
    let dir = tempfile::tempdir().unwrap();
    let (_, zones) = taxi(dir.path());
    for i in 0..3i64 {
        let part = zones.slice(i * 7, 7);
        write_parquet(&part, &dir.path().join(format!("z-{i}.parquet")));
    }
    let z = dd::read_parquet(format!("{}/z-*.parquet", dir.path().display()));
    assert_eq!(z.npartitions(), 3);
    let n = 3000;
    let big_pl = pl::df!(
        "PULocationID" => (0..n).map(|i| (i * 7) % 25).collect::<Vec<i64>>(),
        "fare" => (0..n).map(|i| i as f64 / 8.0).collect::<Vec<f64>>(),
        "note" => (0..n).map(|i| format!("trip number {i} with a longer text")).collect::<Vec<String>>()
    )
    .unwrap();
    let big = dd::from_polars(big_pl.clone(), 4);
    let oracle = |how: pl::JoinType| {
        big_pl
            .clone()
            .lazy()
            .join(
                zones.clone().lazy(),
                [pl::col("PULocationID")],
                [pl::col("LocationID")],
                pl::JoinArgs::new(how)
                    .with_suffix(Some("_right".into()))
                    .with_coalesce(pl::JoinCoalesce::CoalesceColumns),
            )
            .collect()
            .unwrap()
    };
    for (how, pl_how, mode) in [
        (dd::How::Inner, pl::JoinType::Inner, "BroadcastRight"),
        (dd::How::Left, pl::JoinType::Left, "BroadcastRight"),
        (dd::How::Outer, pl::JoinType::Full, "Partitionwise"),
    ] {
        let m = big.merge(&z, &["PULocationID"], &["LocationID"], how);
        let plan = m.explain();
        assert!(plan.contains(mode), "{how:?}:\n{plan}");
        let g = m.graph();
        let concat = g
            .iter()
            .filter(|(k, _)| k.prefix_str().ends_with("-broadcast"))
            .count();
        assert_eq!(concat, usize::from(mode != "Partitionwise"), "{how:?}");
        let got = m.compute().unwrap();
        assert_frames_eq(&sorted(&got), &sorted(&oracle(pl_how)), &format!("{how:?}"));
    }
    // A right join may broadcast only the left side: the big in-memory frame is over a limit
    // of 16 KiB, the zones under it, so both sides are shuffled.
    let _limit = oxidask_config::set("dataframe.broadcast-bytes", "16KiB").unwrap();
    let m = big.merge(&z, &["PULocationID"], &["LocationID"], dd::How::Right);
    assert!(m.explain().contains("Partitionwise"), "{}", m.explain());
    let got = m.compute().unwrap();
    assert_frames_eq(
        &sorted(&got),
        &sorted(&oracle(pl::JoinType::Right)),
        "right",
    );
    // Under a limit below the zones' size, an inner join shuffles too.
    let _limit = oxidask_config::set("dataframe.broadcast-bytes", "16").unwrap();
    let m = big.merge(&z, &["PULocationID"], &["LocationID"], dd::How::Inner);
    assert!(m.explain().contains("Partitionwise"), "{}", m.explain());
}

#[test]
fn join_on_indexes_and_merge_on_several_keys() {
    // Item (d): `join` on set_index'd frames: equal divisions join pairwise without a
    // shuffle and keep the index; different divisions shuffle; results equal Polars.
    let n = 400i64;
    let left_pl = pl::df!(
        "id" => (0..n).map(|i| (i * 13) % 97).collect::<Vec<i64>>(),
        "a" => (0..n).map(|i| i % 5).collect::<Vec<i64>>(),
        "v" => (0..n).map(|i| i as f64).collect::<Vec<f64>>()
    )
    .unwrap();
    let right_pl = pl::df!(
        "id" => (0..60i64).map(|i| i * 2).collect::<Vec<i64>>(),
        "a" => (0..60i64).map(|i| i % 3).collect::<Vec<i64>>(),
        "w" => (0..60i64).map(|i| format!("w{i}")).collect::<Vec<String>>()
    )
    .unwrap();
    let divisions = Some(vec![0.0, 30.0, 60.0, 120.0]);
    let left = dd::from_polars(left_pl.clone(), 4).set_index("id", divisions.clone());
    let right = dd::from_polars(right_pl.clone(), 3).set_index("id", divisions);
    let oracle = |on: &[&str], how: pl::JoinType| {
        let on: Vec<pl::Expr> = on.iter().map(|c| pl::col(*c)).collect();
        left_pl
            .clone()
            .lazy()
            .join(
                right_pl.clone().lazy(),
                on.clone(),
                on,
                pl::JoinArgs::new(how)
                    .with_suffix(Some("_right".into()))
                    .with_coalesce(pl::JoinCoalesce::CoalesceColumns),
            )
            .collect()
            .unwrap()
    };
    for (how, pl_how) in [
        (dd::How::Inner, pl::JoinType::Inner),
        (dd::How::Left, pl::JoinType::Left),
        (dd::How::Outer, pl::JoinType::Full),
    ] {
        let j = left.join(&right, how);
        let plan = j.explain();
        assert!(plan.contains("Aligned"), "{how:?}\n{plan}");
        // No shuffle beyond set_index's own.
        let shuffles = |g: oxidask_core::Graph| {
            g.iter()
                .filter(|(k, _)| k.prefix_str().contains("shuffle"))
                .count()
        };
        assert_eq!(
            shuffles(j.graph()),
            shuffles(left.graph()) + shuffles(right.graph()),
            "{plan}"
        );
        assert_eq!(j.divisions(), left.divisions(), "{how:?} keeps the index");
        let got = j.compute().unwrap();
        assert_frames_eq(
            &sorted(&got),
            &sorted(&oracle(&["id"], pl_how)),
            &format!("join {how:?}"),
        );
    }
    // Different divisions: both sides are cut at the union of the bounds (Dask's
    // align_partitions) and joined pairwise, no hash shuffle; the index and the union's
    // divisions are kept.
    let other = dd::from_polars(right_pl.clone(), 3).set_index("id", Some(vec![0.0, 50.0, 120.0]));
    for (how, pl_how) in [
        (dd::How::Outer, pl::JoinType::Full),
        (dd::How::Left, pl::JoinType::Left),
    ] {
        let j = left.join(&other, how);
        let plan = j.explain();
        assert!(
            plan.contains("Aligned") && !plan.contains("Partitionwise"),
            "{plan}"
        );
        assert_eq!(j.npartitions(), 4, "cut at 30, 50 and 60");
        assert!(j.known_divisions(), "{how:?} keeps the index");
        let got = j.compute().unwrap();
        assert_frames_eq(
            &sorted(&got),
            &sorted(&oracle(&["id"], pl_how)),
            &format!("join of different divisions {how:?}"),
        );
        // Partition by partition, the index stays within the union's ranges, in order.
        let cuts = [f64::NEG_INFINITY, 30.0, 50.0, 60.0, f64::INFINITY];
        for i in 0..4 {
            let p = j.partitions([i]).compute().unwrap();
            let ids = p
                .column("id")
                .unwrap()
                .cast(&pl::DataType::Float64)
                .unwrap();
            for v in ids.f64().unwrap().into_no_null_iter() {
                assert!(cuts[i] <= v && v < cuts[i + 1], "partition {i} holds {v}");
            }
        }
    }
    // No index: a clear error.
    let err = dd::from_polars(left_pl.clone(), 2)
        .join(&right, dd::How::Inner)
        .compute()
        .unwrap_err()
        .to_string();
    assert!(err.contains("set_index"), "{err}");
    // Merge on two key columns, shuffled (outer) and broadcast (inner).
    let (l2, r2) = (
        dd::from_polars(left_pl.clone(), 4),
        dd::from_polars(right_pl.clone(), 3),
    );
    for (how, pl_how) in [
        (dd::How::Outer, pl::JoinType::Full),
        (dd::How::Inner, pl::JoinType::Inner),
    ] {
        let m = l2.merge(&r2, &["id", "a"], &["id", "a"], how);
        let got = m.compute().unwrap();
        assert_frames_eq(
            &sorted(&got),
            &sorted(&oracle(&["id", "a"], pl_how)),
            &format!("merge on two keys {how:?}"),
        );
    }
}

#[test]
fn a_broadcast_merge_reads_joins_and_counts_in_one_task_per_file() {
    // The streamed side's reads and the consumer's steps run inside the join tasks (one
    // Polars query each), and the joined rows keep the left side's order.
    let dir = tempfile::tempdir().unwrap();
    let (trips, zones) = taxi(dir.path());
    let t = dd::read_parquet(format!("{}/trips-*.parquet", dir.path().display()));
    let z = dd::read_parquet(format!("{}/zones.parquet", dir.path().display()));
    for (t, what) in [
        (t.columns_subset(["PULocationID"]), "selected"),
        (t.clone(), "all"),
    ] {
        let counts = t
            .merge(&z, &["PULocationID"], &["LocationID"], dd::How::Inner)
            .column("Borough")
            .value_counts();
        let g = counts.graph();
        let prefixes: Vec<&str> = g.iter().map(|(k, _)| k.prefix_str()).collect();
        // No read of the trips of its own, no join task apart from the counting: three join
        // tasks (the chunk step fused), the zones' read, the final combine and value_counts'
        // step over it.
        assert_eq!(
            prefixes
                .iter()
                .filter(|p| p.starts_with("read-parquet"))
                .count(),
            1,
            "{what}: {prefixes:?}"
        );
        assert_eq!(
            prefixes.iter().filter(|p| p.ends_with("-chunk")).count(),
            3,
            "{what}: {prefixes:?}"
        );
        assert!(
            !prefixes.iter().any(|p| p.starts_with("merge")),
            "{what}: {prefixes:?}"
        );
        assert_eq!(g.len(), 6, "{what}: {prefixes:?}");
        let want = value_counts_oracle(
            trips.clone().lazy().join(
                zones.clone().lazy(),
                [pl::col("PULocationID")],
                [pl::col("LocationID")],
                pl::JoinArgs::new(pl::JoinType::Inner),
            ),
            "Borough",
        );
        assert_frames_eq(
            &counts_sorted(&counts.compute().unwrap()),
            &counts_sorted(&want),
            what,
        );
    }
    // The joined rows themselves, in the trips' order (as pandas' merge keeps the left order).
    for how in [dd::How::Inner, dd::How::Left] {
        let m = t
            .merge(&z, &["PULocationID"], &["LocationID"], how)
            .columns_subset(["x", "PULocationID", "Borough", "fare"]);
        let mut args = pl::JoinArgs::new(match how {
            dd::How::Inner => pl::JoinType::Inner,
            _ => pl::JoinType::Left,
        })
        .with_suffix(Some("_right".into()));
        args.maintain_order = pl::MaintainOrderJoin::Left;
        let want = trips
            .clone()
            .lazy()
            .join(
                zones.clone().lazy(),
                [pl::col("PULocationID")],
                [pl::col("LocationID")],
                args,
            )
            .select([
                pl::col("x"),
                pl::col("PULocationID"),
                pl::col("Borough"),
                pl::col("fare"),
            ])
            .collect()
            .unwrap();
        assert_frames_eq(
            &m.compute().unwrap(),
            &want,
            &format!("{how:?} rows in order"),
        );
    }
}
