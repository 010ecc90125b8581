//! Partition pruning (`prune.rs`): a filter on a Parquet read drops the pieces whose footer
//! statistics or hive values rule it out. Random files (row groups, nulls, strings, dates, an
//! all-null file, hive directories) and random predicates: the result must equal Polars' filter
//! of the same rows, whether or not pieces were pruned; `explain()` says how many were.

use oxidask_core::Collection;
use oxidask_dataframe::polars::prelude::{self as pl, IntoLazy, NamedFrom};
use oxidask_dataframe::{self as dd, col, lit};

use crate::common::{assert_frames_eq, sorted};

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: [&str; 6] = ["apple", "kiwi", "lemon", "mango", "pear", "plum"];

/// File `j`'s rows: `i` around `j*100`, `s` from a window of words, `d` dates around
/// `18000 + j*30`, nulls here and there; file `all_null` has only nulls in `i`, `s` and `d`.
fn file_frame(r: &mut Rng, j: i64, rows: usize, all_null: bool) -> pl::DataFrame {
    let mut i = Vec::new();
    let mut s = Vec::new();
    let mut d = Vec::new();
    let mut f = Vec::new();
    for _ in 0..rows {
        let null = all_null || r.below(6) == 0;
        i.push((!null).then(|| j * 100 + r.below(50) as i64));
        let w = WORDS[(j as usize + r.below(2) as usize) % WORDS.len()];
        s.push((!(all_null || r.below(5) == 0)).then_some(w));
        d.push(
            (!(all_null || r.below(7) == 0)).then(|| 18000 + j as i32 * 30 + r.below(20) as i32),
        );
        f.push(r.below(100) as f64 / 4.0);
    }
    let d = pl::Series::new("d".into(), d)
        .cast(&pl::DataType::Date)
        .unwrap();
    pl::DataFrame::new_infer_height(vec![
        pl::Series::new("i".into(), i).into(),
        pl::Series::new("s".into(), s).into(),
        d.into(),
        pl::Series::new("f".into(), f).into(),
    ])
    .unwrap()
}

fn write(df: &pl::DataFrame, path: &std::path::Path, row_group: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::fs::File::create(path).unwrap();
    pl::ParquetWriter::new(&mut file)
        .with_row_group_size(Some(row_group))
        .finish(&mut df.clone())
        .unwrap();
}

/// A random predicate over `i`, `s`, `d`, `f` and the hive key `part`.
fn predicate(r: &mut Rng, hive: bool) -> dd::Expr {
    let leaf = |r: &mut Rng| -> dd::Expr {
        let k = r.below(if hive { 12 } else { 10 });
        let v = r.below(500) as i64;
        match k {
            0 => col("i").gt(lit(v)),
            1 => col("i").lt_eq(lit(v)),
            2 => col("i").eq(lit(v / 2 * 2)),
            3 => lit(v).lt(col("i")),
            4 => col("s").eq(lit(WORDS[r.below(6) as usize])),
            5 => col("s").gt_eq(lit(WORDS[r.below(6) as usize])),
            6 => col("d").lt(lit(18000 + r.below(150) as i32).cast(pl::DataType::Date)),
            7 => match r.below(3) {
                0 => col("i").is_null(),
                1 => col("s").is_not_null(),
                _ => col("i").neq(lit(v)),
            },
            8 => col("i").is_between(lit(v), lit(v + 40), pl::ClosedInterval::Both),
            9 => col("f").gt(lit(v as f64 / 20.0)),
            10 => col("part").eq(lit(r.below(4) as i64)),
            _ => col("part").lt(lit(r.below(4) as i64)),
        }
    };
    match r.below(4) {
        0 => leaf(r).and(leaf(r)),
        1 => leaf(r).or(leaf(r)),
        _ => leaf(r),
    }
}

#[test]
fn pruned_reads_equal_polars_on_random_files_and_predicates() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut pruned_plans = 0;
    let mut cases = 0;
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let hive = round % 2 == 1;
        let files = 1 + r.below(5) as i64;
        let mut all: Vec<pl::DataFrame> = Vec::new();
        for j in 0..files {
            let rows = r.below(40) as usize; // some files empty
            let mut df = file_frame(&mut r, j, rows, j == 2);
            let path = if hive {
                dir.path()
                    .join(format!("part={}", j % 4))
                    .join(format!("f{j}.parquet"))
            } else {
                dir.path().join(format!("f{j}.parquet"))
            };
            write(&df, &path, 1 + r.below(15) as usize);
            if hive {
                df.with_column(pl::Series::new("part".into(), vec![j % 4; df.height()]).into())
                    .unwrap();
            }
            all.push(df);
        }
        let mut whole = all[0].clone();
        for df in &all[1..] {
            whole.vstack_mut(df).unwrap();
        }
        let split = r.below(2) == 0;
        let src = if hive {
            dir.path().display().to_string()
        } else {
            format!("{}/*.parquet", dir.path().display())
        };
        let frame = dd::read_parquet_with(
            src.as_str(),
            dd::ParquetOptions {
                split_row_groups: if split {
                    dd::RowGroupSplit::Every(1)
                } else {
                    dd::RowGroupSplit::PerFile
                },
                ..Default::default()
            },
        );
        for _ in 0..12 {
            let p = predicate(&mut r, hive);
            let filtered = frame.filter(p.clone());
            let plan = filtered.explain();
            if plan.contains("pruned ") {
                pruned_plans += 1;
            }
            let got = filtered.compute().unwrap();
            let want = whole.clone().lazy().filter(p.clone()).collect().unwrap();
            assert_frames_eq(
                &sorted(&got),
                &sorted(&want),
                &format!("round {round} (hive {hive}, split {split}) filter {p}\n{plan}"),
            );
            cases += 1;
        }
    }
    eprintln!("{pruned_plans} of {cases} plans pruned pieces");
    // The test means something only if pruning happened in many of the cases.
    assert!(
        pruned_plans * 4 >= cases,
        "only {pruned_plans} of {cases} plans pruned pieces"
    );
}

#[test]
fn explain_counts_pruned_pieces_and_a_pushed_filter_prunes_below_a_join() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rng(7);
    for j in 0..4 {
        write(
            &file_frame(&mut r, j, 30, false),
            &dir.path().join(format!("f{j}.parquet")),
            10,
        );
    }
    let src = format!("{}/*.parquet", dir.path().display());
    let df = dd::read_parquet(src.as_str());
    // `i` of file j lies in [j*100, j*100+50): only file 1 can hold i in 120..=140.
    let one = df.filter(col("i").gt_eq(lit(120)).and(col("i").lt_eq(lit(140))));
    let plan = one.explain();
    assert!(plan.contains("pruned 3 of 4 pieces"), "{plan}");
    assert_eq!(one.npartitions(), 4, "partitions stay (empty ones)");
    // A filter over the left side of a merge, pushed into the read, prunes there too.
    let other = dd::read_parquet(src.as_str()).select([col("i"), col("s").alias("t")]);
    let joined = df
        .merge(&other, &["i"], &["i"], dd::How::Inner)
        .filter(col("d").lt(lit(18040).cast(pl::DataType::Date)));
    let plan = joined.explain();
    assert!(plan.contains("pruned 2 of 4 pieces"), "{plan}");
}

#[test]
fn split_out_is_chosen_from_the_key_statistics() {
    // Item (e): 16 files, a million distinct keys by their footers' min/max: Dask's rule
    // (ceil(16 / 15) = 2 output partitions); few groups or an explicit split_out: as asked.
    let dir = tempfile::tempdir().unwrap();
    let per = (dd::AUTO_SPLIT_OUT_GROUPS / 16) as i64;
    let mut all: Option<pl::DataFrame> = None;
    for f in 0..16i64 {
        let k: Vec<i64> = (f * per..(f + 1) * per).collect();
        let few: Vec<i64> = k.iter().map(|x| x % 10).collect();
        let v: Vec<i64> = k.iter().map(|x| x % 7).collect();
        let df = pl::df!("k" => k, "few" => few, "v" => v).unwrap();
        write(&df, &dir.path().join(format!("f{f:02}.parquet")), 1 << 20);
        all = Some(match all {
            None => df,
            Some(mut a) => {
                a.vstack_mut(&df).unwrap();
                a
            }
        });
    }
    let all = all.unwrap();
    let df = dd::read_parquet(format!("{}/*.parquet", dir.path().display()));
    assert_eq!(df.npartitions(), 16);
    let many = df.groupby(["k"]);
    assert_eq!(many.output_partitions(), 2);
    let got = many.sum("v");
    assert_eq!(got.npartitions(), 2);
    let got = got.compute().unwrap();
    let want = all
        .clone()
        .lazy()
        .group_by([pl::col("k")])
        .agg([pl::col("v").sum()])
        .collect()
        .unwrap();
    assert_frames_eq(&sorted(&got), &sorted(&want), "auto split_out");
    assert_eq!(df.groupby(["few"]).output_partitions(), 1);
    assert_eq!(df.groupby(["k"]).split_out(1).output_partitions(), 1);
    let few = df.groupby(["few"]).sum("v").compute().unwrap();
    let want = all
        .lazy()
        .group_by([pl::col("few")])
        .agg([pl::col("v").sum()])
        .collect()
        .unwrap();
    assert_frames_eq(&sorted(&few), &sorted(&want), "few groups");
}

#[test]
fn random_plans_through_the_optimizer_equal_polars() {
    // Item 6 of issue 10: random plans (filter, merge on skewed integer or string keys of
    // every join type, filter after the merge, projection, groupby) over random partition
    // counts (with empty partitions), nulls, Parquet files (pruning, broadcast by size) and
    // in-memory frames, each against Polars on the same rows.
    use crate::common::{sample, NPARTS};
    let mut r = Rng(0x5eed_1234_abcd_0001);
    let dir = tempfile::tempdir().unwrap();
    let left_pl = sample(300, 5);
    let right_pl = sample(60, 9).select(["k", "g", "y", "s"]).unwrap();
    for i in 0..3i64 {
        write(
            &left_pl.slice(i * 100, 100),
            &dir.path().join(format!("l{i}.parquet")),
            25,
        );
    }
    let hows = [
        (dd::How::Inner, pl::JoinType::Inner),
        (dd::How::Left, pl::JoinType::Left),
        (dd::How::Right, pl::JoinType::Right),
        (dd::How::Outer, pl::JoinType::Full),
    ];
    for case in 0..40 {
        let from_files = r.below(2) == 0;
        let left = if from_files {
            dd::read_parquet(format!("{}/l*.parquet", dir.path().display()))
        } else {
            dd::from_polars(left_pl.clone(), NPARTS[r.below(4) as usize])
        };
        let right = dd::from_polars(right_pl.clone(), NPARTS[r.below(4) as usize]);
        let pre = match r.below(3) {
            0 => col("y").gt(lit(r.below(5) as i64 - 2)),
            1 => col("s").lt_eq(lit(format!("item{}", r.below(20)))),
            _ => col("k").neq(lit(0i64)),
        };
        let key = if r.below(2) == 0 { "k" } else { "g" };
        let (how, pl_how) = hows[r.below(4) as usize].clone();
        let post = match r.below(2) {
            0 => col("x").is_not_null(),
            _ => col("y").lt(lit(3i64)),
        };
        let plan = left
            .filter(pre.clone())
            .merge(&right, &[key], &[key], how)
            .filter(post.clone());
        let keep = [col(key), col("x"), col("y_right")];
        let got = plan.select(keep.clone()).compute().unwrap();
        let want = left_pl
            .clone()
            .lazy()
            .filter(pre.clone())
            .join(
                right_pl.clone().lazy(),
                [pl::col(key)],
                [pl::col(key)],
                pl::JoinArgs::new(pl_how.clone())
                    .with_suffix(Some("_right".into()))
                    .with_coalesce(pl::JoinCoalesce::CoalesceColumns),
            )
            .filter(post.clone())
            .select(keep)
            .collect()
            .unwrap();
        let what = format!("case {case}: files {from_files} {pre} merge {how:?} on {key}, {post}");
        assert_frames_eq(&sorted(&got), &sorted(&want), &what);
        // A groupby over the same plan.
        let got = plan.groupby([key]).sum("x").compute().unwrap();
        let want = left_pl
            .clone()
            .lazy()
            .filter(pre)
            .join(
                right_pl.clone().lazy(),
                [pl::col(key)],
                [pl::col(key)],
                pl::JoinArgs::new(pl_how.clone())
                    .with_suffix(Some("_right".into()))
                    .with_coalesce(pl::JoinCoalesce::CoalesceColumns),
            )
            .filter(post)
            .group_by([pl::col(key)])
            .agg([pl::col("x").sum()])
            .collect()
            .unwrap();
        assert_frames_eq(&sorted(&got), &sorted(&want), &format!("{what}, groupby"));
    }
}
