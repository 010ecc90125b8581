//! Regression tests, one per bug found in review, named after the bug.

use oxidask_core::Collection;
use oxidask_dataframe::polars::prelude::{self as pl, IntoLazy, NamedFrom};
use oxidask_dataframe::{self as dd, agg, col, lit, WriteOptions};

use crate::common::assert_frames_eq;

#[test]
fn merge_keys_of_different_types_lost_matches_after_the_shuffle() {
    let left = pl::df!("k" => [1.5f32, 2.5, -1.0, 7.0], "a" => [1i64, 2, 3, 4]).unwrap();
    let right = pl::df!("k" => [1.5f64, 2.5, -1.0, 9.0], "b" => [10i64, 20, 30, 40]).unwrap();
    let got = dd::from_polars(left.clone(), 2)
        .merge(
            &dd::from_polars(right.clone(), 2),
            &["k"],
            &["k"],
            dd::How::Inner,
        )
        .compute()
        .unwrap();
    assert_eq!(got.height(), 3, "{got}");
    let li = pl::df!("k" => [-1i32, 5, 6], "a" => [1i64, 2, 3]).unwrap();
    let ri = pl::df!("k" => [-1i64, 6, 8], "b" => [1i64, 2, 3]).unwrap();
    let got = dd::from_polars(li, 3)
        .merge(&dd::from_polars(ri, 2), &["k"], &["k"], dd::How::Inner)
        .compute()
        .unwrap();
    assert_eq!(got.height(), 2, "{got}");
}

#[test]
fn first_and_last_of_a_frame_were_null_when_a_partition_was_empty() {
    let df = dd::from_polars(pl::df!("x" => [5i64, 6, 7]).unwrap(), 5);
    assert_eq!(
        df.column("x").first().compute().unwrap().extract::<i64>(),
        Some(5)
    );
    assert_eq!(
        df.column("x").last().compute().unwrap().extract::<i64>(),
        Some(7)
    );
    let filtered =
        dd::from_polars(pl::df!("x" => [1i64, 2, 3]).unwrap(), 2).filter(col("x").gt(lit(1)));
    assert_eq!(
        filtered
            .column("x")
            .first()
            .compute()
            .unwrap()
            .extract::<i64>(),
        Some(2)
    );
}

#[test]
fn csv_pieces_that_no_line_starts_in_failed_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.csv");
    let mut text = String::from("name,value\n");
    for i in 0..20 {
        text.push_str(&format!("a-rather-long-name-{i:04},{i}\n"));
    }
    std::fs::write(&path, &text).unwrap();
    let df = dd::read_csv_with(
        path.to_str().unwrap(),
        dd::CsvOptions::default().blocksize(Some(10)),
    );
    assert!(df.npartitions() > 20);
    let got = df.compute().unwrap();
    assert_eq!(got.height(), 20);
    assert_eq!(
        got.column("value").unwrap().i64().unwrap().get(19),
        Some(19)
    );
}

#[test]
fn sort_values_put_nulls_and_nan_in_the_wrong_place() {
    let data =
        pl::df!("y" => [Some(1.0), None, Some(3.0), Some(f64::NAN), Some(2.0), None, Some(-4.0)])
            .unwrap();
    for np in [1, 2, 3] {
        let df = dd::from_polars(data.clone(), np);
        for descending in [false, true] {
            let got = df.sort_values(&["y"], descending).compute().unwrap();
            let want = data
                .sort(
                    ["y"],
                    pl::SortMultipleOptions::default()
                        .with_order_descending(descending)
                        .with_nulls_last(true),
                )
                .unwrap();
            let got: Vec<Option<f64>> = got.column("y").unwrap().f64().unwrap().iter().collect();
            let want: Vec<Option<f64>> = want.column("y").unwrap().f64().unwrap().iter().collect();
            let same = got.len() == want.len()
                && got.iter().zip(&want).all(|(a, b)| match (a, b) {
                    (Some(a), Some(b)) => a == b || (a.is_nan() && b.is_nan()),
                    (None, None) => true,
                    _ => false,
                });
            assert!(
                same,
                "{np} partitions, descending {descending}: {got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn sort_values_of_strings_compared_them_as_numbers() {
    let data = pl::df!("s" => ["9", "10", "100", "8", "b", "a"]).unwrap();
    let got = dd::from_polars(data.clone(), 3)
        .sort_values(&["s"], false)
        .compute()
        .unwrap();
    let want = data.sort(["s"], Default::default()).unwrap();
    assert_frames_eq(&got, &want, "string sort");
}

#[test]
fn the_index_survived_replacing_its_column() {
    let data = pl::df!("k" => [1.0, 5.0, 12.0, 15.0], "v" => [1i64, 2, 3, 4]).unwrap();
    let indexed = dd::from_polars(data, 2).set_index("k", Some(vec![0.0, 10.0, 20.0]));
    assert!(indexed.known_divisions());
    assert!(indexed.filter(col("v").gt(lit(1))).known_divisions());
    assert!(indexed
        .with_columns([(col("v") * lit(2)).alias("w")])
        .known_divisions());
    assert!(!indexed
        .with_columns([(col("k") + lit(10.0)).alias("k")])
        .known_divisions());
    assert!(!indexed.select([col("v")]).known_divisions());
}

#[test]
fn to_parquet_left_files_of_an_earlier_larger_write() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let data = crate::common::sample(100, 50);
    dd::from_polars(data.clone(), 6).to_parquet(out).unwrap();
    dd::from_polars(data.head(Some(10)), 2)
        .to_parquet(out)
        .unwrap();
    assert_eq!(dd::read_parquet(out).len().unwrap(), 10);
}

#[test]
fn partition_on_lost_hidden_names_and_split_values_with_slashes() {
    let dir = tempfile::tempdir().unwrap();
    let data = pl::df!("_k" => [1i64, 2], "path" => ["a/b", "c=d"], "v" => [1i64, 2]).unwrap();
    let df = dd::from_polars(data.clone(), 1);
    let err = df
        .to_parquet_with(
            dir.path().join("x").to_str().unwrap(),
            WriteOptions {
                partition_on: vec!["_k".into()],
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("_k"), "{err}");
    let out = dir.path().join("y");
    df.to_parquet_with(
        out.to_str().unwrap(),
        WriteOptions {
            partition_on: vec!["path".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let back = dd::read_parquet(out.to_str().unwrap()).compute().unwrap();
    let mut paths: Vec<String> = back
        .column("path")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap().to_owned())
        .collect();
    paths.sort();
    assert_eq!(paths, ["a/b", "c=d"]);
}

#[test]
fn csv_records_with_quoted_line_breaks_were_cut_in_two() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.csv");
    let mut text = String::from("id,note\n");
    for i in 0..200 {
        text.push_str(&format!("{i},\"line one\nline two of {i}\"\n"));
    }
    std::fs::write(&path, &text).unwrap();
    let df = dd::read_csv_with(
        path.to_str().unwrap(),
        dd::CsvOptions::default().blocksize(Some(256)),
    );
    let got = df.compute().unwrap();
    assert_eq!(got.height(), 200);
    assert_eq!(
        got.column("note").unwrap().str().unwrap().get(7),
        Some("line one\nline two of 7")
    );
}

#[test]
fn frames_without_partitions_failed_to_aggregate() {
    let schema = pl::df!("x" => [1i64]).unwrap().schema().as_ref().clone();
    let empty = dd::from_delayed(Vec::new(), schema);
    assert_eq!(empty.npartitions(), 0);
    assert_eq!(empty.len().unwrap(), 0);
    assert_eq!(
        empty.column("x").sum().compute().unwrap().extract::<i64>(),
        Some(0)
    );
    assert_eq!(empty.groupby(["x"]).size().compute().unwrap().height(), 0);
    let two = empty.repartition(2);
    assert_eq!(two.npartitions(), 2);
    assert_eq!(two.head(1).unwrap().height(), 0);
}

#[test]
fn reading_no_paths_panicked() {
    let err = dd::read_csv(Vec::<String>::new())
        .check()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no paths"), "{err}");
    assert!(dd::read_parquet(Vec::<String>::new()).check().is_err());
    assert!(dd::read_json(Vec::<String>::new()).check().is_err());
}

#[test]
fn expressions_that_are_not_row_wise_gave_partition_dependent_answers() {
    let df = dd::from_polars(pl::df!("x" => [1.0, 2.0, 3.0, 4.0]).unwrap(), 2);
    for bad in [
        df.with_columns([(col("x") - col("x").mean()).alias("d")]),
        df.filter(col("x").gt(col("x").mean())),
        df.select([col("x").sort(Default::default())]),
    ] {
        let err = bad.check().unwrap_err().to_string();
        assert!(err.contains("not row-wise"), "{err}");
    }
    // Constant aggregations (as `is_in` builds) are fine.
    let ok = df.filter(col("x").is_in(
        lit(pl::Series::new("v".into(), [1.0, 4.0])).implode(false),
        false,
    ));
    assert_eq!(ok.len().unwrap(), 2);
}

#[test]
fn grouped_results_sorted_null_keys_last_unlike_polars() {
    let data =
        pl::df!("k" => [Some(2i64), None, Some(1), None], "v" => [1.0, 2.0, 3.0, 4.0]).unwrap();
    let got = dd::from_polars(data.clone(), 2)
        .groupby(["k"])
        .agg([agg::sum("v")])
        .compute()
        .unwrap();
    let want = data
        .lazy()
        .group_by([col("k")])
        .agg([col("v").sum()])
        .sort(["k"], Default::default())
        .collect()
        .unwrap();
    assert_frames_eq(&got, &want, "null group first");
}

#[test]
fn sums_of_strings_parsed_them_as_numbers() {
    let df = dd::from_polars(pl::df!("s" => ["1", "2"]).unwrap(), 1);
    let err = df.column("s").mean().compute().unwrap_err().to_string();
    assert!(err.contains("`s`") && err.contains("numbers"), "{err}");
}

#[test]
fn mean_and_std_of_one_column_failed_with_a_duplicate_column_name() {
    let data = pl::df!(
        "k" => [1i64, 2, 1, 2, 3, 1, 3, 2],
        "x" => [1.0f64, 4.0, 2.5, 8.0, -1.0, 7.0, 3.0, 0.5],
        "y" => [1i64, 2, 3, 4, 5, 6, 7, 8]
    )
    .unwrap();
    for nparts in [1, 3, 5] {
        let df = dd::from_polars(data.clone(), nparts);
        // Two aggregations of `x` under default names: `x_mean` and `x_std`; `y` alone keeps
        // its name; an alias is kept.
        let got = df
            .groupby(["k"])
            .agg([
                agg::mean("x"),
                agg::std("x"),
                agg::sum("y"),
                agg::max("x").alias("top"),
            ])
            .compute()
            .unwrap();
        let want = data
            .clone()
            .lazy()
            .group_by([pl::col("k")])
            .agg([
                pl::col("x").mean().alias("x_mean"),
                pl::col("x").std(1).alias("x_std"),
                pl::col("y").sum().alias("y"),
                pl::col("x").max().alias("top"),
            ])
            .sort(["k"], Default::default())
            .collect()
            .unwrap();
        assert_frames_eq(&got, &want, &format!("groupby, {nparts} partitions"));
        // The same naming without keys.
        let got = df.agg([agg::mean("x"), agg::std("x")]).compute().unwrap();
        let want = data
            .clone()
            .lazy()
            .select([
                pl::col("x").mean().alias("x_mean"),
                pl::col("x").std(1).alias("x_std"),
            ])
            .collect()
            .unwrap();
        assert_frames_eq(&got, &want, &format!("agg, {nparts} partitions"));
        // The shuffle path (split_out) names them alike.
        let got = df
            .groupby(["k"])
            .split_out(2)
            .agg([agg::mean("x"), agg::std("x")])
            .compute()
            .unwrap();
        let got = got.sort(["k"], Default::default()).unwrap();
        assert_eq!(got.get_column_names(), ["k", "x_mean", "x_std"]);
    }
    // Two explicit aliases that clash are a clear error, not Polars' message.
    let err = dd::from_polars(data, 2)
        .groupby(["k"])
        .agg([agg::mean("x").alias("m"), agg::std("x").alias("m")])
        .compute()
        .unwrap_err()
        .to_string();
    assert!(err.contains("`m`") && err.contains(".alias"), "{err}");
}

#[test]
fn a_string_set_index_key_ended_up_in_one_partition() {
    // 2000 zone names in scrambled order, some nulls, over 4 partitions.
    let keys: Vec<Option<String>> = (0..2000u64)
        .map(|i| {
            let j = (i * 7919) % 2000;
            (j % 97 != 0).then(|| format!("zone-{:05}", j * 13 % 2003))
        })
        .collect();
    let vals: Vec<i64> = (0..2000).collect();
    let data = pl::DataFrame::new_infer_height(vec![
        pl::Column::new("v".into(), vals),
        pl::Column::new("k".into(), keys),
    ])
    .unwrap();
    let df = dd::from_polars(data.clone(), 4);
    let indexed = df.set_index("k", None);
    assert_eq!(indexed.index().as_deref(), Some("k"));
    assert!(indexed.known_divisions());
    let bounds = indexed.string_divisions().expect("string divisions");
    assert_eq!(indexed.divisions(), None);
    assert_eq!(bounds.len() + 1, indexed.npartitions());
    assert!(indexed.npartitions() >= 3, "{bounds:?}");
    assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{bounds:?}");
    let parts = indexed.partition_values().unwrap();
    let non_null = data.column("k").unwrap().len() - data.column("k").unwrap().null_count();
    for (j, p) in parts.iter().enumerate() {
        // No partition holds most of the rows (quantiles of a sample: about a quarter each).
        assert!(
            p.height() < non_null / 2,
            "partition {j}: {} rows",
            p.height()
        );
        let k = p.column("k").unwrap().str().unwrap().clone();
        for v in k.iter().flatten() {
            if j > 0 {
                assert!(v >= bounds[j - 1].as_str(), "{v} in partition {j}");
            }
            if j < bounds.len() {
                assert!(v < bounds[j].as_str(), "{v} in partition {j}");
            }
        }
    }
    // Concatenated, the partitions are the frame sorted by the key, nulls last (the oracle).
    let got = indexed.compute().unwrap();
    let want = data
        .lazy()
        .select([pl::col("k"), pl::col("v")])
        .sort(
            ["k"],
            pl::SortMultipleOptions::default()
                .with_nulls_last(true)
                .with_maintain_order(true),
        )
        .collect()
        .unwrap();
    assert_frames_eq(
        &got.select(["k"]).unwrap(),
        &want.select(["k"]).unwrap(),
        "keys in order",
    );
    assert_frames_eq(
        &crate::common::sorted(&got),
        &crate::common::sorted(&want),
        "rows",
    );
    // sort_values on a string column, descending, spreads over partitions too.
    let desc = df.sort_values(&["k"], true);
    assert!(desc.npartitions() >= 3);
    let got = desc.compute().unwrap();
    let k: Vec<Option<&str>> = got.column("k").unwrap().str().unwrap().iter().collect();
    let non_null_keys: Vec<&str> = k.iter().flatten().copied().collect();
    assert!(non_null_keys.windows(2).all(|w| w[0] >= w[1]));
    assert_eq!(non_null_keys.len(), non_null);
}

#[test]
fn persist_lost_the_index_and_its_divisions() {
    let data = pl::df!("k" => [12.0, 1.0, 15.0, 5.0], "v" => [3i64, 1, 4, 2]).unwrap();
    let indexed = dd::from_polars(data, 2).set_index("k", Some(vec![0.0, 10.0, 20.0]));
    let persisted = indexed.persist().unwrap();
    assert_eq!(persisted.index().as_deref(), Some("k"));
    assert_eq!(persisted.divisions(), indexed.divisions());
    assert!(persisted.known_divisions());
    // The same rows, in the same partitions.
    assert_frames_eq(
        &persisted.partitions([1]).compute().unwrap(),
        &indexed.partitions([1]).compute().unwrap(),
        "partition 1",
    );
    assert_frames_eq(
        &persisted.compute().unwrap(),
        &indexed.compute().unwrap(),
        "the whole frame",
    );
    // A frame over the wrong number of computed partitions is an error, not a wrong frame.
    let wrong = indexed.over_computed(vec![oxidask_core::Arg::Value(oxidask_core::Value::new(
        dd::Partition::from(pl::DataFrame::empty()),
    ))]);
    let err = wrong.compute().unwrap_err().to_string();
    assert!(
        err.contains("1 computed partitions given for a frame of 2"),
        "{err}"
    );
}

#[test]
fn set_index_on_partitions_larger_than_its_sample_stays_balanced() {
    // Partitions larger than the sample (4 × 60,000 rows; about 1,000 sampled rows each) whose
    // keys repeat with a period that divides any round stride: the sample is picked by a hash
    // of the row number, so the ranges still split the rows evenly, for numbers and strings.
    let n = 240_000u64;
    let x: Vec<i64> = (0..n).map(|i| ((i % 1000) * 7919 % 1000) as i64).collect();
    let s: Vec<String> = x.iter().map(|v| format!("k{v:04}")).collect();
    let data = pl::DataFrame::new_infer_height(vec![
        pl::Column::new("x".into(), x),
        pl::Column::new("s".into(), s),
    ])
    .unwrap();
    for key in ["x", "s"] {
        let indexed = dd::from_polars(data.clone(), 4).set_index(key, None);
        let lens: Vec<usize> = indexed
            .partition_values()
            .unwrap()
            .iter()
            .map(|p| p.height())
            .collect();
        assert_eq!(lens.iter().sum::<usize>(), n as usize, "{key}: {lens:?}");
        assert_eq!(lens.len(), 4, "{key}: {lens:?}");
        let max = *lens.iter().max().unwrap() as f64;
        assert!(max < 1.15 * n as f64 / 4.0, "{key}: {lens:?}");
        // Each partition comes out sorted by the key, and the whole is Polars' stable sort.
        let got = indexed.compute().unwrap();
        let want = data
            .clone()
            .lazy()
            .sort(
                [key],
                pl::SortMultipleOptions::default().with_maintain_order(true),
            )
            .collect()
            .unwrap();
        assert_frames_eq(
            &got.select(["x", "s"]).unwrap(),
            &want.select(["x", "s"]).unwrap(),
            key,
        );
    }
}

#[test]
fn a_partition_already_in_order_was_sorted_again() {
    // A file written in key order, read for set_index on that key: each partition keeps its
    // rows as they are (the sort is skipped, its result the same), ties keep their order,
    // and a partition out of order is still sorted.
    let t: Vec<i64> = vec![1, 2, 2, 3, 10, 11, 11, 12, 20, 22, 21, 23];
    let v: Vec<i64> = (0..12).collect();
    let data = pl::df!("t" => t, "v" => v).unwrap();
    let indexed = dd::from_polars(data.clone(), 3).set_index("t", None);
    let got = indexed.compute().unwrap();
    let want = data
        .lazy()
        .sort(
            ["t"],
            pl::SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()
        .unwrap();
    assert_frames_eq(&got.select(["t", "v"]).unwrap(), &want, "sorted rows");
    // Partitions in disjoint ranges: no shuffle, the partitions stay as they are.
    assert!(indexed.known_divisions());
    assert_eq!(indexed.npartitions(), 3);
    let parts = indexed.partition_values().unwrap();
    let firsts: Vec<i64> = parts
        .iter()
        .map(|p| p.column("v").unwrap().i64().unwrap().get(0).unwrap())
        .collect();
    assert_eq!(firsts, vec![0, 4, 8]);
}
