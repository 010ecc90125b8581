//! Test data and comparisons.

use oxidask_dataframe::polars::prelude::*;

/// A deterministic pseudo-random stream (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A frame with skewed integer keys, string keys, nulls in every value column, floats,
/// integers, strings and datetimes.
pub fn sample(rows: usize, seed: u64) -> DataFrame {
    let mut r = Rng::new(seed);
    let mut k = Vec::with_capacity(rows);
    let mut g = Vec::with_capacity(rows);
    let mut x = Vec::with_capacity(rows);
    let mut y = Vec::with_capacity(rows);
    let mut s = Vec::with_capacity(rows);
    let mut t = Vec::with_capacity(rows);
    for i in 0..rows {
        // Skewed: half the rows have key 0.
        let key = if r.uniform() < 0.5 {
            0
        } else {
            r.below(12) as i64
        };
        k.push(key);
        g.push(["red", "green", "blue"][r.below(3) as usize].to_string());
        x.push(if r.uniform() < 0.1 {
            None
        } else {
            Some((r.uniform() * 200.0 - 50.0).round() / 4.0)
        });
        y.push(if r.uniform() < 0.15 {
            None
        } else {
            Some(r.below(7) as i64 - 2)
        });
        s.push(if r.uniform() < 0.05 {
            None
        } else {
            Some(format!("item{}", r.below(20)))
        });
        // 2019-01-01 plus up to 30 days, in milliseconds.
        t.push(
            1_546_300_800_000i64
                + (i as i64 * 37_000_000 + r.below(3_600_000) as i64) % 2_592_000_000,
        );
    }
    let t = Series::new("t".into(), t)
        .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
        .unwrap();
    DataFrame::new_infer_height(vec![
        Column::new("k".into(), k),
        Column::new("g".into(), g),
        Column::new("x".into(), x),
        Column::new("y".into(), y),
        Column::new("s".into(), s),
        t.into(),
    ])
    .unwrap()
}

/// Partition counts every test runs over: one, a few, many (more than rows in small frames,
/// so some partitions are empty).
pub const NPARTS: [usize; 4] = [1, 3, 7, 40];

/// Sorts by every column so row order does not matter.
pub fn sorted(df: &DataFrame) -> DataFrame {
    let names: Vec<PlSmallStr> = df.get_column_names().into_iter().cloned().collect();
    if names.is_empty() || df.height() == 0 {
        return df.clone();
    }
    df.sort(names, SortMultipleOptions::default().with_nulls_last(true))
        .unwrap()
}

/// Frames equal: same columns, types, and values (floats within a relative 1e-9).
pub fn assert_frames_eq(got: &DataFrame, want: &DataFrame, what: &str) {
    assert_eq!(
        got.get_column_names(),
        want.get_column_names(),
        "{what}: columns differ\n got: {got}\nwant: {want}"
    );
    assert_eq!(
        got.height(),
        want.height(),
        "{what}: row counts differ\n got: {got}\nwant: {want}"
    );
    for (a, b) in got.columns().iter().zip(want.columns()) {
        assert_eq!(
            a.dtype(),
            b.dtype(),
            "{what}: column {} has another type\n got: {got}\nwant: {want}",
            a.name()
        );
        if a.dtype().is_float() {
            let a = a
                .f64()
                .cloned()
                .unwrap_or_else(|_| a.cast(&DataType::Float64).unwrap().f64().unwrap().clone());
            let b = b
                .f64()
                .cloned()
                .unwrap_or_else(|_| b.cast(&DataType::Float64).unwrap().f64().unwrap().clone());
            for (i, (u, v)) in a.iter().zip(b.iter()).enumerate() {
                match (u, v) {
                    (None, None) => {}
                    (Some(u), Some(v)) if (u.is_nan() && v.is_nan()) || u == v => {}
                    (Some(u), Some(v)) => assert!(
                        (u - v).abs() <= 1e-9 * u.abs().max(v.abs()).max(1.0),
                        "{what}: column {} row {i}: {u} vs {v}",
                        a.name()
                    ),
                    _ => panic!("{what}: column {} row {i}: {u:?} vs {v:?}", a.name()),
                }
            }
        } else {
            assert!(
                a.as_materialized_series()
                    .equals_missing(b.as_materialized_series()),
                "{what}: column {} differs\n got: {got}\nwant: {want}",
                a.name()
            );
        }
    }
}

/// Runs a lazy Polars query on the whole frame: the oracle.
pub fn oracle(df: &DataFrame, f: impl FnOnce(LazyFrame) -> LazyFrame) -> DataFrame {
    f(df.clone().lazy()).collect().unwrap()
}
