//! Parquet reads cut into partitions by row groups (`RowGroupSplit`), as Dask's
//! `read_parquet(split_row_groups="infer", blocksize=...)`: files written by Polars with many
//! small row groups; the expected partitions come from Dask's rule applied to the footer's
//! `total_byte_size` of each row group (read here with Polars' own footer reader), and every
//! split read must give the same rows as the file itself.

use oxidask_core::Collection;
use oxidask_dataframe::polars::prelude::{self as pl, IntoLazy, NamedFrom, SerReader};
use oxidask_dataframe::{self as dd, col, lit, ParquetOptions, RowGroupSplit};

use crate::common::{assert_frames_eq, sample};

/// `rows` rows of `sample` with an increasing `id` column (so row-group statistics on `id`
/// rule groups in or out), written with `group` rows per row group.
fn write(path: &std::path::Path, rows: usize, seed: u64, group: usize) -> pl::DataFrame {
    let mut df = sample(rows, seed);
    df.with_column(
        pl::Series::new(
            "id".into(),
            (0..rows as i64)
                .map(|i| i + seed as i64 * 1_000_000)
                .collect::<Vec<_>>(),
        )
        .into(),
    )
    .unwrap();
    let f = std::fs::File::create(path).unwrap();
    pl::ParquetWriter::new(f)
        .with_row_group_size(Some(group))
        .finish(&mut df)
        .unwrap();
    df
}

/// `(rows, total_byte_size)` of each row group, from the file's footer.
fn groups(path: &std::path::Path) -> Vec<(u64, u64)> {
    let mut r = pl::ParquetReader::new(std::fs::File::open(path).unwrap());
    let meta = r.get_metadata().unwrap();
    meta.row_groups
        .iter()
        .map(|g| (g.num_rows() as u64, g.total_byte_size() as u64))
        .collect()
}

/// Rows per partition under Dask's adaptive rule: consecutive row groups are merged while
/// the merged `total_byte_size` stays at most `blocksize` (`aggregate_row_groups`).
fn dask_adaptive(groups: &[(u64, u64)], blocksize: u64) -> Vec<u64> {
    let mut parts: Vec<(u64, u64)> = Vec::new();
    for &(rows, bytes) in groups {
        match parts.last_mut() {
            Some(last) if last.1 + bytes <= blocksize => {
                last.0 += rows;
                last.1 += bytes;
            }
            _ => parts.push((rows, bytes)),
        }
    }
    parts.into_iter().map(|(rows, _)| rows).collect()
}

fn read(path: &str, split: RowGroupSplit) -> dd::DataFrame {
    dd::read_parquet_with(
        path,
        ParquetOptions {
            split_row_groups: split,
            ..Default::default()
        },
    )
}

/// Rows of each partition, computed one partition at a time.
fn partition_rows(df: &dd::DataFrame) -> Vec<u64> {
    (0..df.npartitions())
        .map(|i| df.partitions([i]).compute().unwrap().height() as u64)
        .collect()
}

#[test]
fn infer_splits_a_file_over_twice_the_blocksize_as_dask() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    let data = write(&path, 4000, 1, 250);
    let g = groups(&path);
    assert_eq!(g.len(), 16);
    let total: u64 = g.iter().map(|(_, b)| b).sum();
    // Blocksizes giving several partitions, a group per partition, and (just under half the
    // file) the smallest blocksize that still splits.
    for blocksize in [total / 5, total / 7 + 1, g[0].1, (total - 1) / 2] {
        let want = dask_adaptive(&g, blocksize);
        assert!(want.len() > 1, "blocksize {blocksize} of {total} splits");
        let df = read(path.to_str().unwrap(), RowGroupSplit::Infer { blocksize });
        let what = format!("blocksize {blocksize} of {total} bytes");
        assert_eq!(df.npartitions(), want.len(), "{what}");
        assert_eq!(partition_rows(&df), want, "{what}");
        assert_frames_eq(&df.compute().unwrap(), &data, &what);
        // The same partitions when asked for the blocksize split directly.
        let adaptive = read(path.to_str().unwrap(), RowGroupSplit::Blocksize(blocksize));
        assert_eq!(adaptive.npartitions(), want.len(), "{what}, adaptive");
    }
    // A blocksize below every row group: a partition per row group.
    let df = read(
        path.to_str().unwrap(),
        RowGroupSplit::Infer { blocksize: 1 },
    );
    assert_eq!(df.npartitions(), g.len());
    assert_frames_eq(&df.compute().unwrap(), &data, "blocksize 1");
}

#[test]
fn a_file_up_to_twice_the_blocksize_stays_one_partition() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.parquet");
    let data = write(&path, 2000, 2, 200);
    let total: u64 = groups(&path).iter().map(|(_, b)| b).sum();
    let p = path.to_str().unwrap();
    for blocksize in [total.div_ceil(2), total, 0] {
        let df = read(p, RowGroupSplit::Infer { blocksize });
        assert_eq!(df.npartitions(), 1, "blocksize {blocksize} of {total}");
        assert_frames_eq(&df.compute().unwrap(), &data, "one partition");
    }
    // The default blocksize (256 MiB) and the plain read: one partition.
    assert_eq!(dd::read_parquet(p).npartitions(), 1);
    // Dask's "adaptive" splits even a small file when its groups exceed the blocksize.
    assert_eq!(
        read(p, RowGroupSplit::Blocksize(total / 3)).npartitions(),
        dask_adaptive(&groups(&path), total / 3).len()
    );
}

#[test]
fn infer_looks_at_the_first_file_and_never_merges_across_files() {
    // Dask decides from the first file's row groups: a big first file splits every file
    // (each on its own), a small first file leaves even a big second file whole.
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    let da = write(&a, 3000, 3, 300);
    let db = write(&b, 600, 4, 300);
    let ga = groups(&a);
    let gb = groups(&b);
    let blocksize = ga.iter().map(|(_, s)| s).sum::<u64>() / 4;
    let want: Vec<u64> = [dask_adaptive(&ga, blocksize), dask_adaptive(&gb, blocksize)].concat();
    let both = vec![a.to_str().unwrap(), b.to_str().unwrap()];
    let df = dd::read_parquet_with(
        both.clone(),
        ParquetOptions::default().split_row_groups(RowGroupSplit::Infer { blocksize }),
    );
    assert_eq!(partition_rows(&df), want);
    let all = da.vstack(&db).unwrap();
    assert_frames_eq(&df.compute().unwrap(), &all, "two files");

    // The small file first: no split anywhere (b is under 2 x blocksize).
    let df = dd::read_parquet_with(
        vec![b.to_str().unwrap(), a.to_str().unwrap()],
        ParquetOptions::default().split_row_groups(RowGroupSplit::Infer { blocksize }),
    );
    assert_eq!(df.npartitions(), 2);
    assert_frames_eq(
        &df.compute().unwrap(),
        &db.vstack(&da).unwrap(),
        "small file first",
    );
    // A partition per file, and Every(0) is per file as Dask's split_row_groups=0.
    for split in [RowGroupSplit::PerFile, RowGroupSplit::Every(0)] {
        let df = dd::read_parquet_with(
            both.clone(),
            ParquetOptions::default().split_row_groups(split),
        );
        assert_eq!(df.npartitions(), 2, "{split:?}");
    }
    // Every(4): 10 groups of a -> 3 partitions, 2 groups of b -> 1.
    let df = dd::read_parquet_with(
        both,
        ParquetOptions::default().split_row_groups(RowGroupSplit::Every(4)),
    );
    assert_eq!(partition_rows(&df), vec![1200, 1200, 600, 600]);
}

#[test]
fn filters_prune_row_group_partitions_and_keep_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sorted.parquet");
    let data = write(&path, 4000, 0, 250);
    let total: u64 = groups(&path).iter().map(|(_, b)| b).sum();
    let df = read(
        path.to_str().unwrap(),
        RowGroupSplit::Infer {
            blocksize: total / 8,
        },
    );
    let n = df.npartitions();
    assert!(n >= 6, "{n} partitions");
    for (p, pruned) in [
        (col("id").gt_eq(lit(3000i64)), true),
        (col("id").lt(lit(500i64)), true),
        (col("id").eq(lit(1234i64)), true),
        (col("k").eq(lit(3i64)), false),
    ] {
        let filtered = df.filter(p.clone());
        let plan = filtered.explain();
        assert_eq!(plan.contains("pruned "), pruned, "{p}\n{plan}");
        assert_eq!(filtered.npartitions(), n, "{p}");
        let want = data.clone().lazy().filter(p.clone()).collect().unwrap();
        assert_frames_eq(&filtered.compute().unwrap(), &want, &format!("{p}"));
        // The same filter given to the read.
        let pushed = dd::read_parquet_with(
            path.to_str().unwrap(),
            ParquetOptions {
                filter: Some(p.clone()),
                split_row_groups: RowGroupSplit::Infer {
                    blocksize: total / 8,
                },
                ..Default::default()
            },
        );
        assert_frames_eq(
            &pushed.compute().unwrap(),
            &want,
            &format!("read filter {p}"),
        );
    }
}
