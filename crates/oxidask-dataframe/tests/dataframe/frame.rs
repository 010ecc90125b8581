//! Row, column and aggregation operations against Polars.

use oxidask_core::Collection;
use oxidask_dataframe::polars::prelude::{self as pl, IntoLazy, NamedFrom, SeriesMethods};
use oxidask_dataframe::{self as dd, agg, col, lit, Agg, AggFn, DataType, Partition};

use crate::common::{assert_frames_eq, oracle, sample, sorted, NPARTS};

#[test]
fn row_and_column_operations_match_polars() {
    let data = sample(500, 1);
    for np in NPARTS {
        let df = dd::from_polars(data.clone(), np);
        assert_eq!(df.npartitions(), np);
        let what = |s: &str| format!("{s} over {np} partitions");

        let got = df
            .filter(col("x").gt(lit(10.0)))
            .select([col("k"), col("x"), (col("x") * lit(2.0)).alias("x2")])
            .compute()
            .unwrap();
        let want = oracle(&data, |l| {
            l.filter(col("x").gt(lit(10.0))).select([
                col("k"),
                col("x"),
                (col("x") * lit(2.0)).alias("x2"),
            ])
        });
        assert_frames_eq(&got, &want, &what("filter+select"));

        let got = df
            .with_columns([
                (col("y") + col("k")).alias("yk"),
                col("t").dt().hour().alias("hour"),
            ])
            .rename([("g", "colour")])
            .drop(["s"])
            .compute()
            .unwrap();
        let want = oracle(&data, |l| {
            l.with_columns([
                (col("y") + col("k")).alias("yk"),
                col("t").dt().hour().alias("hour"),
            ])
            .rename(["g"], ["colour"], true)
            .drop(pl::cols(["s"]))
        });
        assert_frames_eq(&got, &want, &what("with_columns+rename+drop"));

        let got = df
            .cast([("y", DataType::Float64)])
            .fill_null(lit(0))
            .compute()
            .unwrap();
        let want = oracle(&data, |l| {
            l.with_columns([col("y").cast(DataType::Float64)])
                .with_columns([
                    col("k").fill_null(lit(0)),
                    col("x").fill_null(lit(0)),
                    col("y").fill_null(lit(0)),
                ])
        });
        assert_frames_eq(&got, &want, &what("cast+fill_null"));

        let got = df.drop_nulls(Some(&["x", "s"])).compute().unwrap();
        let want = oracle(&data, |l| {
            l.filter(col("x").is_not_null().and(col("s").is_not_null()))
        });
        assert_frames_eq(&got, &want, &what("drop_nulls"));

        // Boolean series of the same frame, is_in, between, string and datetime accessors.
        let x = df.column("x");
        let keep = x.between(0.0, 20.0)
            & df.column("k")
                .is_in(pl::Series::new("v".into(), [0i64, 3, 5]));
        let got = df
            .filter(&keep)
            .assign("upper", df.column("g").str().to_uppercase())
            .assign("day", df.column("t").dt().day())
            .compute()
            .unwrap();
        let want =
            oracle(&data, |l| {
                l.filter(col("x").gt_eq(lit(0.0)).and(col("x").lt_eq(lit(20.0))).and(
                    col("k").is_in(
                        lit(pl::Series::new("v".into(), [0i64, 3, 5])).implode(false),
                        false,
                    ),
                ))
                .with_columns([
                    col("g").str().to_uppercase().alias("upper"),
                    col("t").dt().day().alias("day"),
                ])
            });
        assert_frames_eq(&got, &want, &what("series predicates"));

        assert_eq!(df.len().unwrap(), 500, "{}", what("len"));
        let head = df.head(7).unwrap();
        assert_frames_eq(&head, &data.head(Some(7)), &what("head"));
        let all = df.head(10_000).unwrap();
        assert_frames_eq(&all, &data, &what("head past the end"));
    }
}

fn all_aggs(c: &str) -> Vec<Agg> {
    [
        AggFn::Sum,
        AggFn::Mean,
        AggFn::Count,
        AggFn::Size,
        AggFn::Min,
        AggFn::Max,
        AggFn::Std(1),
        AggFn::Var(1),
        AggFn::Var(0),
        AggFn::NUnique,
        AggFn::First,
        AggFn::Last,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, f)| Agg::new(c, f).alias(format!("{c}_{}_{i}", f.name())))
    .collect()
}

fn oracle_aggs(aggs: &[Agg]) -> Vec<pl::Expr> {
    aggs.iter()
        .map(|a| a.func.expr(&a.column).alias(a.alias.as_str()))
        .collect()
}

#[test]
fn groupby_aggregations_match_polars_over_partitions_and_split_every() {
    let data = sample(700, 2);
    let mut aggs = all_aggs("x");
    aggs.extend(all_aggs("y"));
    aggs.push(agg::nunique("s"));
    for np in NPARTS {
        let df = dd::from_polars(data.clone(), np);
        for split_every in [2, 8] {
            for keys in [vec!["k"], vec!["g", "k"]] {
                let got = df
                    .groupby(keys.clone())
                    .split_every(split_every)
                    .agg(aggs.clone())
                    .compute()
                    .unwrap();
                let key_exprs: Vec<pl::Expr> = keys.iter().map(|k| col(*k)).collect();
                let want = oracle(&data, |l| {
                    l.group_by(key_exprs.clone())
                        .agg(oracle_aggs(&aggs))
                        .sort(keys.clone(), Default::default())
                });
                // First/last depend on row order within a group: ours keeps partition order.
                assert_frames_eq(
                    &got,
                    &want,
                    &format!("groupby {keys:?} over {np} partitions, split_every {split_every}"),
                );
            }
        }
    }
}

#[test]
fn frame_and_series_aggregations_match_polars() {
    let data = sample(300, 3);
    for np in NPARTS {
        let df = dd::from_polars(data.clone(), np);
        let mut aggs = all_aggs("x");
        aggs.extend(all_aggs("k"));
        let got = df.agg(aggs.clone()).compute().unwrap();
        let want = oracle(&data, |l| l.select(oracle_aggs(&aggs)));
        assert_frames_eq(&got, &want, &format!("frame agg over {np} partitions"));

        let got = df.drop(["g", "s", "t"]).sum().compute().unwrap();
        let want = oracle(&data, |l| {
            l.select([col("k").sum(), col("x").sum(), col("y").sum()])
        });
        assert_frames_eq(&got, &want, &format!("sum over {np} partitions"));

        let mean = df.column("x").mean().compute_f64().unwrap();
        let want = data
            .column("x")
            .unwrap()
            .as_materialized_series()
            .mean()
            .unwrap();
        assert!(
            (mean - want).abs() < 1e-9 * want.abs().max(1.0),
            "{mean} vs {want}"
        );
        let std = df.column("x").std().compute().unwrap();
        let want_std = data
            .column("x")
            .unwrap()
            .as_materialized_series()
            .std(1)
            .unwrap();
        assert!((std.extract::<f64>().unwrap() - want_std).abs() < 1e-9 * want_std);
        assert_eq!(
            df.column("s").nunique().compute().unwrap().extract::<u64>(),
            Some(data.column("s").unwrap().drop_nulls().n_unique().unwrap() as u64)
        );
        // Derived series aggregate too.
        let got = (&df.column("x") * 2.0).sum().compute_f64().unwrap();
        let want = data
            .column("x")
            .unwrap()
            .as_materialized_series()
            .sum::<f64>()
            .unwrap()
            * 2.0;
        assert!((got - want).abs() < 1e-9 * want.abs().max(1.0));
    }
}

#[test]
fn value_counts_and_distinct_values_match_polars() {
    let data = sample(400, 4);
    for np in NPARTS {
        let df = dd::from_polars(data.clone(), np);
        for c in ["k", "g", "y", "s"] {
            let got = df.column(c).value_counts().compute().unwrap();
            let want = data
                .column(c)
                .unwrap()
                .as_materialized_series()
                .value_counts(true, false, "count".into(), false)
                .unwrap();
            // Ties in count are ordered by value in ours; compare as sets with the count order.
            assert_frames_eq(
                &sorted(&got),
                &sorted(&want),
                &format!("value_counts({c}) over {np}"),
            );
            let counts: Vec<u32> = got
                .column("count")
                .unwrap()
                .u32()
                .unwrap()
                .into_no_null_iter()
                .collect();
            assert!(
                counts.windows(2).all(|w| w[0] >= w[1]),
                "most frequent first: {counts:?}"
            );
        }
        let got = df.drop_duplicates(Some(&["k", "g"])).compute().unwrap();
        let want = data
            .clone()
            .lazy()
            .unique_stable(Some(pl::cols(["k", "g"])), pl::UniqueKeepStrategy::First)
            .collect()
            .unwrap();
        assert_frames_eq(&got, &want, &format!("drop_duplicates over {np}"));
        let got = df.column("g").unique().compute().unwrap();
        assert_eq!(got.len(), 3);
    }
}

#[test]
fn concat_partitions_and_persist_keep_rows_in_order() {
    let a = sample(50, 5);
    let b = sample(30, 6);
    let da = dd::from_polars(a.clone(), 3);
    // Columns in another order are matched by name.
    let db = dd::from_polars(b.clone(), 2).select([
        col("x"),
        col("k"),
        col("g"),
        col("y"),
        col("s"),
        col("t"),
    ]);
    let both = dd::concat(&[da.clone(), db]);
    assert_eq!(both.npartitions(), 5);
    let mut want = a.clone();
    want.vstack_mut(&b).unwrap();
    assert_frames_eq(&both.compute().unwrap(), &want, "concat");
    assert_frames_eq(
        &both.partitions([3, 4]).compute().unwrap(),
        &b,
        "partitions of a concat",
    );

    let persisted = da.filter(col("k").eq(lit(0))).persist().unwrap();
    let again = persisted
        .with_columns([(col("x") + lit(1.0)).alias("x1")])
        .compute()
        .unwrap();
    let want = oracle(&a, |l| {
        l.filter(col("k").eq(lit(0)))
            .with_columns([(col("x") + lit(1.0)).alias("x1")])
    });
    assert_frames_eq(&again, &want, "after persist");

    let err = dd::concat(&[da.clone(), da.drop(["x"])])
        .check()
        .unwrap_err()
        .to_string();
    assert!(err.contains("different columns"), "{err}");
}

#[test]
fn describe_and_memory_usage_match_polars() {
    let data = sample(200, 7);
    let df = dd::from_polars(data.clone(), 4);
    let d = df.describe().unwrap();
    let stat = |c: &str, row: usize| d.column(c).unwrap().f64().unwrap().get(row);
    let x = data.column("x").unwrap().as_materialized_series().clone();
    assert_eq!(stat("x", 0), Some(x.len() as f64 - x.null_count() as f64));
    assert!((stat("x", 1).unwrap() - x.mean().unwrap()).abs() < 1e-9);
    assert!((stat("x", 2).unwrap() - x.std(1).unwrap()).abs() < 1e-9);
    // One partition: the quartiles are Polars' own (linear interpolation).
    let one = dd::from_polars(data.clone(), 1).describe().unwrap();
    for (row, q) in [(4, 0.25), (5, 0.5), (6, 0.75)] {
        let want = x
            .quantile_reduce(q, pl::QuantileMethod::Linear)
            .unwrap()
            .value()
            .extract::<f64>()
            .unwrap();
        let got = one.column("x").unwrap().f64().unwrap().get(row).unwrap();
        assert!((got - want).abs() < 1e-9, "quartile {q}: {got} vs {want}");
    }
    // Several partitions: approximate, within a small error of rank.
    for (row, q) in [(4, 0.25), (5, 0.5), (6, 0.75)] {
        let got = stat("x", row).unwrap();
        let rank = rank_of(&x, got);
        assert!(
            (rank - q).abs() <= 0.03,
            "quartile {q} over 4 partitions: {got} has rank {rank}"
        );
    }
    let mem = df.memory_usage().unwrap();
    let total: u64 = mem
        .column("bytes")
        .unwrap()
        .u64()
        .unwrap()
        .into_no_null_iter()
        .sum();
    assert!(
        total as usize >= data.estimated_size() / 2,
        "{total} vs {}",
        data.estimated_size()
    );
}

#[oxidask_core::task(crate = oxidask_core)]
fn add_ratio(part: &Partition) -> Result<Partition, pl::PolarsError> {
    part.0
        .clone()
        .lazy()
        .with_columns([(col("x") / col("k").cast(DataType::Float64)).alias("ratio")])
        .collect()
        .map(Partition)
}

#[oxidask_core::task(crate = oxidask_core)]
fn drop_a_column(part: &Partition) -> Partition {
    Partition(part.0.drop("x").unwrap())
}

#[test]
fn map_partitions_runs_registered_functions_and_checks_the_declared_schema() {
    let data = sample(100, 8);
    let df = dd::from_polars(data.clone(), 3);
    let mut meta = data.schema().as_ref().clone();
    meta.with_column("ratio".into(), DataType::Float64);
    let got = df
        .map_partitions(add_ratio::op(), meta.clone())
        .compute()
        .unwrap();
    let want = oracle(&data, |l| {
        l.with_columns([(col("x") / col("k").cast(DataType::Float64)).alias("ratio")])
    });
    assert_frames_eq(&got, &want, "map_partitions");
    let err = df
        .map_partitions(drop_a_column::op(), data.schema().as_ref().clone())
        .compute()
        .unwrap_err()
        .to_string();
    assert!(err.contains('x'), "the missing column is named: {err}");
}

#[test]
fn bad_expressions_name_the_column_and_lose_nothing() {
    let data = sample(20, 9);
    let df = dd::from_polars(data, 2);
    let err = df
        .filter(col("nope").gt(lit(1)))
        .check()
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    let err = df.column("nope").sum().compute().unwrap_err().to_string();
    assert!(
        err.contains("nope") && err.contains("x"),
        "names the column and the ones there are: {err}"
    );
    let err = df
        .groupby(["k"])
        .mean("missing")
        .compute()
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
    // A string compared with a number: a type error, reported when the plan is made.
    let err = df
        .filter(col("g").gt(lit(3)))
        .compute()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains('g') || err.to_lowercase().contains("str"),
        "{err}"
    );
    // The frame still works afterwards.
    assert_eq!(df.len().unwrap(), 20);
}

#[test]
fn display_is_symbolic() {
    let df = dd::from_polars(sample(10, 10), 2);
    let s = df.to_string();
    assert!(
        s.contains("npartitions=2") && s.contains("x") && s.contains("f64"),
        "{s}"
    );
    assert!(df.column("x").to_string().contains("Series"));
}

#[test]
fn merges_match_polars_for_every_join_type_and_strategy() {
    let left = sample(400, 30);
    // A lookup table with a key that matches nothing and keys missing from it.
    let right = pl::df!(
        "key" => [0i64, 1, 2, 3, 5, 8, 13, 99],
        "label" => ["zero", "one", "two", "three", "five", "eight", "thirteen", "none"],
        "x" => [0.5, 1.5, 2.5, 3.5, 5.5, 8.5, 13.5, 99.5],
    )
    .unwrap();
    for (ln, rn) in [(3, 1), (1, 3), (4, 3), (7, 2)] {
        let l = dd::from_polars(left.clone(), ln);
        let r = dd::from_polars(right.clone(), rn);
        for how in [
            dd::How::Inner,
            dd::How::Left,
            dd::How::Right,
            dd::How::Outer,
        ] {
            let got = l.merge(&r, &["k"], &["key"], how).compute().unwrap();
            let jt = match how {
                dd::How::Inner => pl::JoinType::Inner,
                dd::How::Left => pl::JoinType::Left,
                dd::How::Right => pl::JoinType::Right,
                dd::How::Outer => pl::JoinType::Full,
            };
            let want = left
                .clone()
                .lazy()
                .join(
                    right.clone().lazy(),
                    [col("k")],
                    [col("key")],
                    pl::JoinArgs::new(jt).with_coalesce(pl::JoinCoalesce::CoalesceColumns),
                )
                .collect()
                .unwrap();
            assert_frames_eq(
                &sorted(&got),
                &sorted(&want),
                &format!("{how:?} merge of {ln}x{rn} partitions"),
            );
        }
    }
    let l = dd::from_polars(left, 2);
    let err = l
        .merge(
            &dd::from_polars(right, 1),
            &["k"],
            &["nope"],
            dd::How::Inner,
        )
        .check()
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn shuffles_put_equal_keys_together_and_keep_every_row() {
    let data = sample(500, 31);
    let df = dd::from_polars(data.clone(), 5);
    for m in [1, 4, 9] {
        let moved = df.shuffle(["g", "k"], m);
        assert_eq!(moved.npartitions(), m);
        let parts = moved.partition_values().unwrap();
        let mut seen = std::collections::HashMap::new();
        for (i, p) in parts.iter().enumerate() {
            let keys = p
                .select(["g", "k"])
                .unwrap()
                .unique_stable(None, pl::UniqueKeepStrategy::First, None)
                .unwrap();
            for r in 0..keys.height() {
                let key = format!("{:?}", keys.get_row(r).unwrap().0);
                assert_eq!(*seen.entry(key).or_insert(i), i, "a key in two partitions");
            }
        }
        assert_frames_eq(
            &sorted(&moved.compute().unwrap()),
            &sorted(&data),
            &format!("shuffle into {m}"),
        );
    }
    // Group-by with split_out goes through the shuffle and gives the same groups.
    let aggs = [
        agg::sum("x"),
        agg::mean("y"),
        agg::count("s"),
        agg::nunique("s").alias("distinct"),
    ];
    let got = df
        .groupby(["k", "g"])
        .split_out(3)
        .agg(aggs.clone())
        .compute()
        .unwrap();
    let want = oracle(&data, |l| {
        l.group_by([col("k"), col("g")]).agg(
            aggs.iter()
                .map(|a| a.func.expr(&a.column).alias(a.alias.as_str()))
                .collect::<Vec<_>>(),
        )
    });
    assert_frames_eq(&sorted(&got), &sorted(&want), "split_out groupby");
}

#[test]
fn sort_values_and_set_index_order_rows_across_partitions() {
    let data = sample(900, 32);
    for np in [1, 4, 7] {
        let df = dd::from_polars(data.clone(), np);
        let got = df.sort_values(&["x", "k"], false).compute().unwrap();
        let want = data
            .sort(
                ["x", "k"],
                pl::SortMultipleOptions::default()
                    .with_nulls_last(true)
                    .with_maintain_order(true),
            )
            .unwrap();
        assert_frames_eq(
            &got.select(["x", "k"]).unwrap(),
            &want.select(["x", "k"]).unwrap(),
            &format!("sort over {np}"),
        );
        assert_frames_eq(&sorted(&got), &sorted(&data), "same rows");

        let desc = df.sort_values(&["y"], true).compute().unwrap();
        let ys: Vec<Option<i64>> = desc.column("y").unwrap().i64().unwrap().iter().collect();
        let non_null: Vec<i64> = ys.iter().flatten().copied().collect();
        assert!(non_null.windows(2).all(|w| w[0] >= w[1]), "descending");

        let indexed = df.set_index("t", None);
        assert_eq!(indexed.index().as_deref(), Some("t"));
        assert_eq!(indexed.columns()[0], "t");
        let bounds = indexed.divisions().unwrap();
        assert_eq!(bounds.len() + 1, indexed.npartitions());
        let parts = indexed.partition_values().unwrap();
        let mut last = i64::MIN;
        for (j, p) in parts.iter().enumerate() {
            let ts: Vec<i64> = p
                .column("t")
                .unwrap()
                .to_physical_repr()
                .i64()
                .unwrap()
                .into_no_null_iter()
                .collect();
            assert!(
                ts.windows(2).all(|w| w[0] <= w[1]),
                "sorted within partition {j}"
            );
            if let Some(&first) = ts.first() {
                assert!(first >= last, "partitions in order");
                if j > 0 {
                    assert!(
                        first as f64 >= bounds[j - 1],
                        "partition {j} starts at its division"
                    );
                }
                last = *ts.last().unwrap();
            }
        }
        // The index survives row-wise steps.
        assert!(indexed.filter(col("x").gt(lit(0.0))).known_divisions());
    }
}

#[test]
fn repartition_keeps_rows_in_order() {
    let data = sample(333, 33);
    let df = dd::from_polars(data.clone(), 6);
    for m in [1, 2, 5, 6, 13] {
        let r = df.repartition(m);
        assert_eq!(r.npartitions(), m);
        assert_frames_eq(&r.compute().unwrap(), &data, &format!("repartition to {m}"));
    }
}

/// The registered `add_ratio` operation, for other test modules.
pub fn add_ratio_op() -> &'static oxidask_core::OpDef {
    add_ratio::op()
}

/// Custom aggregation, chunk step: per-group sum and count of `x` (the keys travel along).
#[oxidask_core::task(crate = oxidask_core)]
fn range_chunk(part: &Partition) -> Result<Partition, pl::PolarsError> {
    part.0
        .clone()
        .lazy()
        .group_by([col("k")])
        .agg([col("x").max().alias("hi"), col("x").min().alias("lo")])
        .collect()
        .map(Partition)
}

/// Custom aggregation, combine step: merge partials.
#[oxidask_core::task(crate = oxidask_core)]
fn range_combine(part: &Partition) -> Result<Partition, pl::PolarsError> {
    part.0
        .clone()
        .lazy()
        .group_by([col("k")])
        .agg([col("hi").max(), col("lo").min()])
        .collect()
        .map(Partition)
}

/// Custom aggregation, finalize step: the range per group, sorted by key.
#[oxidask_core::task(crate = oxidask_core)]
fn range_finalize(part: &Partition) -> Result<Partition, pl::PolarsError> {
    part.0
        .clone()
        .lazy()
        .group_by([col("k")])
        .agg([(col("hi").max() - col("lo").min()).alias("range")])
        .sort(["k"], Default::default())
        .collect()
        .map(Partition)
}

#[test]
fn custom_reductions_run_registered_chunk_combine_finalize() {
    let data = sample(800, 34);
    let want = oracle(&data, |l| {
        l.group_by([col("k")])
            .agg([(col("x").max() - col("x").min()).alias("range")])
            .sort(["k"], Default::default())
    });
    let mut meta = pl::Schema::default();
    meta.with_column("k".into(), DataType::Int64);
    meta.with_column("range".into(), DataType::Float64);
    for (np, split_every) in [(1, 8), (7, 2), (40, 3)] {
        let got = dd::from_polars(data.clone(), np)
            .reduction(
                range_chunk::op(),
                range_combine::op(),
                range_finalize::op(),
                meta.clone(),
                split_every,
            )
            .compute()
            .unwrap();
        assert_frames_eq(
            &got,
            &want,
            &format!("custom reduction over {np}, split_every {split_every}"),
        );
    }
}

#[test]
fn approximate_distinct_counts_are_within_the_hyperloglog_error() {
    // 40k distinct integers (each twice), strings, and a column with few values.
    let n = 80_000i64;
    let data = pl::df!(
        "a" => (0..n).map(|i| i / 2).collect::<Vec<_>>(),
        "b" => (0..n).map(|i| format!("id-{}", i % 30_011)).collect::<Vec<_>>(),
        "c" => (0..n).map(|i| (i % 7 == 0).then_some(i % 5)).collect::<Vec<_>>(),
    )
    .unwrap();
    for np in [1, 6] {
        let df = dd::from_polars(data.clone(), np);
        for (c, exact) in [("a", 40_000f64), ("b", 30_011.0), ("c", 5.0)] {
            let est = df
                .column(c)
                .approx_nunique()
                .compute()
                .unwrap()
                .extract::<u64>()
                .unwrap() as f64;
            // 2^14 registers: standard error 1.04/sqrt(2^14) = 0.81%; four of them is 3.25%.
            assert!(
                (est - exact).abs() <= 0.0325 * exact,
                "{c} over {np} partitions: {est} vs {exact}"
            );
        }
        // Same registers whatever the partitioning: the estimate does not depend on it.
        let one = dd::from_polars(data.clone(), 1)
            .column("b")
            .approx_nunique()
            .compute()
            .unwrap();
        assert_eq!(df.column("b").approx_nunique().compute().unwrap(), one);
    }
}

#[test]
fn merges_on_equal_divisions_need_no_shuffle() {
    let left = sample(300, 35)
        .lazy()
        .with_columns([col("x").fill_null(lit(0.0))])
        .collect()
        .unwrap();
    let right = pl::df!(
        "x" => (0..200).map(|i| i as f64 / 4.0 - 12.5).collect::<Vec<_>>(),
        "w" => (0..200i64).collect::<Vec<_>>(),
    )
    .unwrap();
    let bounds = vec![-100.0, -5.0, 0.0, 5.0, 100.0];
    let l = dd::from_polars(left.clone(), 3).set_index("x", Some(bounds.clone()));
    let r = dd::from_polars(right.clone(), 2).set_index("x", Some(bounds));
    let joined = l.merge(&r, &["x"], &["x"], dd::How::Inner);
    let mut g = oxidask_core::Graph::new();
    joined.build_graph(&mut g);
    let keys_before = {
        let mut g2 = oxidask_core::Graph::new();
        l.build_graph(&mut g2);
        r.build_graph(&mut g2);
        g2.len()
    };
    assert_eq!(
        g.len(),
        keys_before + joined.npartitions(),
        "one join task per partition, nothing else"
    );
    let want = left
        .lazy()
        .join(
            right.lazy(),
            [col("x")],
            [col("x")],
            pl::JoinArgs::new(pl::JoinType::Inner),
        )
        .select([
            col("x"),
            col("k"),
            col("g"),
            col("y"),
            col("s"),
            col("t"),
            col("w"),
        ])
        .collect()
        .unwrap();
    assert_frames_eq(
        &sorted(&joined.compute().unwrap()),
        &sorted(&want),
        "aligned merge",
    );
}

/// The fraction of a series' non-null values at or below `v`.
fn rank_of(s: &pl::Series, v: f64) -> f64 {
    let c = s.cast(&DataType::Float64).unwrap();
    let vals: Vec<f64> = c.f64().unwrap().iter().flatten().collect();
    vals.iter().filter(|x| **x <= v).count() as f64 / vals.len() as f64
}

#[test]
fn approximate_quantiles_are_close_in_rank() {
    let mut r = crate::common::Rng::new(36);
    // Skewed values, unevenly spread over partitions (sorted: each partition a narrow range).
    let mut v: Vec<f64> = (0..50_000).map(|_| (r.uniform() * 8.0).exp()).collect();
    let data = pl::df!("v" => v.clone()).unwrap();
    v.sort_by(f64::total_cmp);
    let sorted_data = pl::df!("v" => v).unwrap();
    let s = data.column("v").unwrap().as_materialized_series().clone();
    let qs = [0.01, 0.1, 0.25, 0.5, 0.9, 0.99];
    for (frame, what) in [(&data, "shuffled"), (&sorted_data, "sorted")] {
        for np in [1, 5, 23] {
            let got = dd::from_polars(frame.clone(), np)
                .column("v")
                .quantile(&qs)
                .unwrap();
            for (q, g) in qs.iter().zip(got) {
                let rank = rank_of(&s, g.unwrap());
                assert!(
                    (rank - q).abs() <= 0.01,
                    "{what}, {np} partitions: q {q} -> rank {rank}"
                );
            }
        }
    }
}

#[test]
fn set_index_of_already_sorted_partitions_needs_no_shuffle() {
    let data = pl::df!(
        "t" => (0..1000i64).map(|i| i * 3).collect::<Vec<_>>(),
        "v" => (0..1000i64).map(|i| (i * 7919) % 1000).collect::<Vec<_>>(),
    )
    .unwrap();
    let df = dd::from_polars(data.clone(), 4);
    let indexed = df.set_index("t", None);
    let mut g = oxidask_core::Graph::new();
    indexed.build_graph(&mut g);
    assert!(
        g.iter()
            .all(|(k, _)| !k.prefix_str().starts_with("shuffle")),
        "sorted partitions are not shuffled"
    );
    assert_eq!(indexed.npartitions(), 4);
    assert_eq!(indexed.divisions().unwrap(), vec![750.0, 1500.0, 2250.0]);
    assert_frames_eq(&indexed.compute().unwrap(), &data, "already sorted");
    // Partitions that touch at a boundary value (a tie across partitions) are shuffled.
    let ties = pl::df!("t" => [1i64, 2, 2, 3], "v" => [1i64, 2, 3, 4]).unwrap();
    let tied = dd::from_polars(ties.clone(), 2).set_index("t", None);
    let mut g = oxidask_core::Graph::new();
    tied.build_graph(&mut g);
    assert!(g.iter().any(|(k, _)| k.prefix_str().starts_with("shuffle")));
    assert_frames_eq(&sorted(&tied.compute().unwrap()), &sorted(&ties), "ties");
}

#[test]
fn repartition_by_size_and_by_divisions_keep_rows_in_order() {
    let data = sample(3000, 37);
    let total = data.estimated_size() as u64;
    // Uneven partitions: one big, several small.
    let df = dd::concat(&[
        dd::from_polars(data.slice(0, 2000), 1),
        dd::from_polars(data.slice(2000, 1000), 5),
    ]);
    for target in [total / 10, total / 3, total * 2] {
        let r = df.repartition_by_size(target).unwrap();
        let parts = r.partition_values().unwrap();
        assert!(!parts.is_empty());
        for p in &parts {
            // A piece is at most the target (cuts are by rows, so allow one row's worth).
            assert!(
                p.estimated_size() as u64 <= target + total / 3000 * 4,
                "{} > {target}",
                p.estimated_size()
            );
        }
        if target >= total {
            assert_eq!(parts.len(), 1);
        }
        assert_frames_eq(
            &r.compute().unwrap(),
            &data,
            &format!("repartition_by_size({target})"),
        );
    }

    let indexed = dd::from_polars(data.clone(), 4).set_index("x", None);
    let moved = indexed.repartition_divisions(vec![-100.0, 0.0, 10.0, 20.0, 100.0]);
    assert_eq!(moved.npartitions(), 4);
    assert_eq!(moved.divisions().unwrap(), vec![0.0, 10.0, 20.0]);
    let got = moved.compute().unwrap();
    assert_frames_eq(
        &got,
        &indexed.compute().unwrap(),
        "repartition by divisions keeps the order",
    );
    let parts = moved.partition_values().unwrap();
    let xs: Vec<f64> = parts[1]
        .column("x")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert!(xs.iter().all(|v| (0.0..10.0).contains(v)), "{xs:?}");
    let err = dd::from_polars(data, 2)
        .repartition_divisions(vec![0.0, 1.0])
        .check()
        .unwrap_err()
        .to_string();
    assert!(err.contains("set_index"), "{err}");
}

#[test]
fn split_out_auto_spreads_many_partitions_as_dask_lowers_it() {
    let keys: Vec<i64> = (0..3000).map(|i| (i * 7) % 1000).collect();
    let vals: Vec<f64> = (0..3000).map(|i| i as f64 * 0.5).collect();
    let data = pl::df!("k" => keys.clone(), "j" => keys.iter().map(|k| k % 3).collect::<Vec<i64>>(), "v" => vals).unwrap();
    // 40 partitions, one key: ceil(40 / 15) = 3; two keys: ceil(40 / 10) = 4; 12 partitions,
    // one key: 1 (one sorted partition).
    let df = dd::from_polars(data.clone(), 40);
    assert_eq!(df.groupby(["k"]).split_out_auto().output_partitions(), 3);
    assert_eq!(
        df.groupby(["k", "j"]).split_out_auto().output_partitions(),
        4
    );
    let few = dd::from_polars(data.clone(), 12);
    assert_eq!(few.groupby(["k"]).split_out_auto().output_partitions(), 1);
    let got = df
        .groupby(["k"])
        .split_out_auto()
        .agg([agg::sum("v"), agg::mean("v").alias("m")]);
    assert_eq!(got.npartitions(), 3);
    let got = got
        .compute()
        .unwrap()
        .sort(["k"], Default::default())
        .unwrap();
    let want = data
        .lazy()
        .group_by([pl::col("k")])
        .agg([pl::col("v").sum(), pl::col("v").mean().alias("m")])
        .sort(["k"], Default::default())
        .collect()
        .unwrap();
    assert_frames_eq(&got, &want, "split_out_auto");
}

/// Polars' stable sort by `by` (nulls last): the oracle of `sort_values` and `set_index`.
fn stable_sort(df: &pl::DataFrame, by: &str, descending: bool) -> pl::DataFrame {
    df.sort(
        [by],
        pl::SortMultipleOptions::default()
            .with_order_descending(descending)
            .with_nulls_last(true)
            .with_maintain_order(true),
    )
    .unwrap()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]

    /// Range splitting (binary search of the sampled bounds, one gather per input) keeps
    /// every row and Polars' stable order: random order, duplicates straddling the bounds,
    /// nulls, NaN and infinities, datetimes past 2^53 ns (equal as `f64`), strings, empty
    /// partitions (more partitions than rows).
    #[test]
    fn range_shuffles_equal_polars_stable_sort(
        rows in proptest::collection::vec(
            (0u8..12, proptest::option::of(0i64..40), proptest::option::of(0u8..6)),
            0..150,
        ),
        np in 1usize..9,
        descending in proptest::bool::ANY,
    ) {
        let k: Vec<Option<f64>> = rows
            .iter()
            .map(|(c, _, _)| match c {
                0 => None,
                1 => Some(f64::NAN),
                2 => Some(f64::INFINITY),
                3 => Some(f64::NEG_INFINITY),
                c => Some((*c as f64 - 7.0) / 2.0),
            })
            .collect();
        // 1.6e18 ns apart by 1..40 ns: several distinct timestamps share one f64.
        let t: Vec<Option<i64>> = rows
            .iter()
            .map(|(_, t, _)| t.map(|t| 1_600_000_000_000_000_000 + t))
            .collect();
        let words = ["", "a", "ab", "b", "Zone 1", "zone"];
        let s: Vec<Option<&str>> = rows
            .iter()
            .map(|(_, _, s)| s.and_then(|s| words.get(s as usize).copied()))
            .collect();
        let i: Vec<i64> = (0..rows.len() as i64).collect();
        let mut data = pl::df!("k" => k, "t" => t, "s" => s, "i" => i).unwrap();
        data.with_column(
            data.column("t")
                .unwrap()
                .cast(&DataType::Datetime(pl::TimeUnit::Nanoseconds, None))
                .unwrap(),
        )
        .unwrap();
        let df = dd::from_polars(data.clone(), np);
        for by in ["k", "s"] {
            let got = df.sort_values(&[by], descending).compute().unwrap();
            assert_frames_eq(
                &got,
                &stable_sort(&data, by, descending),
                &format!("sort_values({by}, descending {descending}) over {np}"),
            );
        }
        let indexed = df.set_index("t", None);
        let want = stable_sort(&data, "t", false);
        assert_frames_eq(
            &indexed.compute().unwrap(),
            &want.select(["t", "k", "s", "i"]).unwrap(),
            &format!("set_index(t) over {np}"),
        );
        // Each partition's timestamps (as f64, as divisions are) lie in its range.
        let bounds = indexed.divisions().unwrap();
        for (j, p) in indexed.partition_values().unwrap().iter().enumerate() {
            let ts = p.column("t").unwrap().to_physical_repr();
            let ts = ts.cast(&DataType::Float64).unwrap();
            for v in ts.f64().unwrap().iter().flatten() {
                assert!(j == 0 || v >= bounds[j - 1], "partition {j}: {v} < {bounds:?}");
                assert!(j == bounds.len() || v < bounds[j], "partition {j}: {v} >= {bounds:?}");
            }
        }
    }
}
