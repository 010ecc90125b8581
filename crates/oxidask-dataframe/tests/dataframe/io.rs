//! Reading and writing files against Polars' own readers.

use std::io::Write;

use oxidask_core::Collection;
use oxidask_dataframe::polars::prelude::{
    self as pl, ChunkCompareEq, IntoLazy, SerReader, SerWriter, SeriesMethods,
};
use oxidask_dataframe::{self as dd, col, lit, CsvOptions, DataType, ParquetOptions, WriteOptions};

use crate::common::{assert_frames_eq, oracle, sample, sorted};

fn write_parquet(df: &pl::DataFrame, path: &std::path::Path) {
    let mut f = std::fs::File::create(path).unwrap();
    pl::ParquetWriter::new(&mut f)
        .finish(&mut df.clone())
        .unwrap();
}

fn write_csv(df: &pl::DataFrame, path: &std::path::Path) {
    let mut f = std::fs::File::create(path).unwrap();
    pl::CsvWriter::new(&mut f).finish(&mut df.clone()).unwrap();
}

/// Three Parquet files (one empty), the frame they hold together.
fn parquet_dir(dir: &std::path::Path) -> pl::DataFrame {
    let a = sample(300, 11);
    let b = sample(0, 12);
    let c = sample(250, 13);
    write_parquet(&a, &dir.join("a.parquet"));
    write_parquet(&b, &dir.join("b.parquet"));
    write_parquet(&c, &dir.join("c.parquet"));
    std::fs::write(dir.join("_SUCCESS"), b"").unwrap();
    let mut all = a;
    all.vstack_mut(&b).unwrap();
    all.vstack_mut(&c).unwrap();
    all
}

/// The oracle: Polars' own reader of the whole file (types inferred from 1000 rows).
fn polars_reads(path: &std::path::Path) -> pl::DataFrame {
    pl::CsvReadOptions::default()
        .with_infer_schema_length(Some(1000))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .unwrap()
        .finish()
        .unwrap()
}

#[test]
fn read_parquet_files_globs_directories_and_lists() {
    let dir = tempfile::tempdir().unwrap();
    let all = parquet_dir(dir.path());
    let d = dir.path().to_str().unwrap();
    for (paths, n) in [
        (vec![format!("{d}/*.parquet")], 3),
        (vec![d.to_owned()], 3),
        (vec![format!("{d}/a.parquet"), format!("{d}/c.parquet")], 2),
    ] {
        let df = dd::read_parquet(paths.clone());
        assert_eq!(df.npartitions(), n, "{paths:?}");
        let got = df.compute().unwrap();
        let want = if n == 3 {
            all.clone()
        } else {
            let mut w = sample(300, 11);
            w.vstack_mut(&sample(250, 13)).unwrap();
            w
        };
        assert_frames_eq(&got, &want, &format!("{paths:?}"));
    }
    // Projection and filter given to the reader, and the same through the plan.
    let df = dd::read_parquet_with(
        d,
        ParquetOptions {
            columns: Some(vec!["k".into(), "x".into()]),
            filter: Some(col("x").gt(lit(5.0))),
            ..Default::default()
        },
    );
    assert_eq!(df.columns(), ["k", "x"]);
    let want = oracle(&all, |l| {
        l.filter(col("x").gt(lit(5.0))).select([col("k"), col("x")])
    });
    assert_frames_eq(&df.compute().unwrap(), &want, "columns+filter");
    let counts = dd::read_parquet(d)
        .column("k")
        .value_counts()
        .compute()
        .unwrap();
    let want = all
        .column("k")
        .unwrap()
        .as_materialized_series()
        .value_counts(true, false, "count".into(), false)
        .unwrap();
    assert_frames_eq(
        &sorted(&counts),
        &sorted(&want),
        "value_counts of one column",
    );
}

#[test]
fn parquet_round_trip_with_partition_on_and_compression() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample(400, 14)
        .lazy()
        .with_columns([col("y").fill_null(lit(9))])
        .collect()
        .unwrap();
    let df = dd::from_polars(data.clone(), 3);
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    assert_eq!(df.to_parquet(out).unwrap(), 400);
    let files: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    assert_frames_eq(
        &dd::read_parquet(out).compute().unwrap(),
        &data,
        "round trip",
    );

    let hive = dir.path().join("hive");
    let hive = hive.to_str().unwrap();
    let written = df
        .to_parquet_with(
            hive,
            WriteOptions {
                compression: dd::Compression::Zstd,
                partition_on: vec!["y".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(written, 400);
    assert!(std::path::Path::new(&format!("{hive}/y=0")).is_dir());
    let back = dd::read_parquet(hive);
    assert_eq!(
        back.columns().last().map(String::as_str),
        Some("y"),
        "hive column appended"
    );
    let got = back
        .select([col("k"), col("g"), col("x"), col("y"), col("s"), col("t")])
        .compute()
        .unwrap();
    assert_frames_eq(&sorted(&got), &sorted(&data), "hive round trip");
    // A filter on the hive column.
    let n = dd::read_parquet(hive)
        .filter(col("y").eq(lit(0)))
        .len()
        .unwrap();
    assert_eq!(
        n,
        data.column("y")
            .unwrap()
            .as_materialized_series()
            .equal(0)
            .unwrap()
            .sum()
            .unwrap() as usize
    );
}

#[test]
fn read_csv_splits_by_blocksize_and_matches_polars() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample(2000, 15);
    let path = dir.path().join("trips.csv");
    write_csv(&data, &path);
    let want = polars_reads(&path);
    for blocksize in [None, Some(4096), Some(777)] {
        let df = dd::read_csv_with(
            path.to_str().unwrap(),
            CsvOptions::default().blocksize(blocksize),
        );
        let size = std::fs::metadata(&path).unwrap().len();
        let expect_parts = blocksize.map_or(1, |b| size.div_ceil(b) as usize);
        assert_eq!(df.npartitions(), expect_parts);
        assert_frames_eq(
            &df.compute().unwrap(),
            &want,
            &format!("csv blocksize {blocksize:?}"),
        );
    }
    // The default block size is the configuration's `dataframe.blocksize`.
    {
        let _guard = oxidask_config::set("dataframe.blocksize", "4KiB").unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        let df = dd::read_csv(path.to_str().unwrap());
        assert_eq!(df.npartitions(), size.div_ceil(4096) as usize);
        assert_frames_eq(&df.compute().unwrap(), &want, "csv blocksize from config");
    }
    // Type overrides.
    let df = dd::read_csv_with(
        path.to_str().unwrap(),
        CsvOptions::default().dtype("k", DataType::Float64),
    );
    assert_eq!(df.schema().get("k"), Some(&DataType::Float64));
    let got = df.column("k").sum().compute_f64().unwrap();
    assert_eq!(
        got,
        data.column("k")
            .unwrap()
            .as_materialized_series()
            .sum::<f64>()
            .unwrap()
    );

    // Gzip-compressed: a partition per file.
    let gz = dir.path().join("trips.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&std::fs::read(&path).unwrap()).unwrap();
    enc.finish().unwrap();
    let df = dd::read_csv(gz.to_str().unwrap());
    assert_eq!(df.npartitions(), 1);
    assert_frames_eq(&df.compute().unwrap(), &want, "gzip csv");
}

#[test]
fn csv_inference_errors_name_the_column_value_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.csv");
    let mut text = String::from("id,amount\n");
    for i in 0..3000 {
        text.push_str(&format!("{i},{}\n", i * 2));
    }
    text.push_str("3000,twelve\n");
    std::fs::write(&path, &text).unwrap();
    let df = dd::read_csv_with(
        path.to_str().unwrap(),
        CsvOptions::default().blocksize(Some(8192)),
    );
    assert!(df.npartitions() > 1);
    let err = df.compute().unwrap_err().to_string();
    assert!(err.contains("late.csv"), "names the file: {err}");
    assert!(err.contains("twelve"), "names the value: {err}");
    assert!(err.contains("amount"), "names the column: {err}");
    assert!(err.contains(".dtype("), "says how to fix it: {err}");
    // With the type given, it reads.
    let ok = dd::read_csv_with(
        path.to_str().unwrap(),
        CsvOptions::default()
            .blocksize(Some(8192))
            .dtype("amount", DataType::String),
    );
    assert_eq!(ok.len().unwrap(), 3001);

    // Ragged rows: an error naming the file.
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "a,b\n1,2\n3,4,5,6\n7,8\n").unwrap();
    let err = dd::read_csv(ragged.to_str().unwrap())
        .compute()
        .unwrap_err()
        .to_string();
    assert!(err.contains("ragged.csv"), "{err}");
}

#[test]
fn bad_files_give_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let good = sample(50, 16);
    write_parquet(&good, &dir.path().join("a.parquet"));
    std::fs::write(
        dir.path().join("b.parquet"),
        b"PAR1 this is not parquet at all PAR1",
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let err = dd::read_parquet(d).compute().unwrap_err().to_string();
    assert!(err.contains("b.parquet"), "names the corrupt file: {err}");
    let err = dd::read_parquet(format!("{d}/none-*.parquet"))
        .check()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no files match"), "{err}");
    let err = dd::read_parquet(format!("{d}/a.parquet"))
        .column("nope")
        .sum()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
}

#[oxidask_core::task(crate = oxidask_core)]
fn fail_on_big_keys(part: &dd::Partition) -> Result<dd::Partition, String> {
    let k = part.0.column("k").unwrap().i64().unwrap();
    if k.iter().flatten().any(|v| v > 10) {
        return Err("a key above 10".into());
    }
    Ok(part.clone())
}

#[test]
fn a_failed_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample(300, 17);
    let df = dd::from_polars(data.clone(), 6)
        .map_partitions(fail_on_big_keys::op(), data.schema().as_ref().clone());
    let out = dir.path().join("out");
    let err = df
        .to_parquet(out.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("a key above 10"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing partial: {left:?}");
}

#[test]
fn csv_and_json_lines_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample(120, 18).drop("t").unwrap();
    let df = dd::from_polars(data.clone(), 4);
    let out = dir.path().join("csv");
    assert_eq!(df.to_csv(out.to_str().unwrap()).unwrap(), 120);
    let back = dd::read_csv(format!("{}/*.csv", out.display()));
    assert_eq!(back.npartitions(), 4);
    let want = pl::CsvReadOptions::default()
        .into_reader_with_file_handle(std::io::Cursor::new({
            let mut b = Vec::new();
            pl::CsvWriter::new(&mut b)
                .finish(&mut data.clone())
                .unwrap();
            b
        }))
        .finish()
        .unwrap();
    assert_frames_eq(&back.compute().unwrap(), &want, "csv round trip");

    let json = dir.path().join("rows.jsonl");
    let mut f = std::fs::File::create(&json).unwrap();
    pl::JsonWriter::new(&mut f)
        .with_json_format(pl::JsonFormat::JsonLines)
        .finish(&mut data.clone())
        .unwrap();
    drop(f);
    let df = dd::read_json_with(json.to_str().unwrap(), Some(1000), Default::default());
    assert!(df.npartitions() > 1);
    let want = pl::JsonReader::new(std::fs::File::open(&json).unwrap())
        .with_json_format(pl::JsonFormat::JsonLines)
        .finish()
        .unwrap();
    assert_frames_eq(&df.compute().unwrap(), &want, "json lines");
}

#[test]
fn parquet_row_groups_split_into_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample(1000, 19);
    let path = dir.path().join("groups.parquet");
    let f = std::fs::File::create(&path).unwrap();
    pl::ParquetWriter::new(f)
        .with_row_group_size(Some(100))
        .finish(&mut data.clone())
        .unwrap();
    for (per, parts) in [(1, 10), (3, 4), (20, 1)] {
        let df = dd::read_parquet_with(
            path.to_str().unwrap(),
            ParquetOptions {
                split_row_groups: dd::RowGroupSplit::Every(per),
                ..Default::default()
            },
        );
        assert_eq!(df.npartitions(), parts, "{per} row groups per partition");
        assert_frames_eq(
            &df.compute().unwrap(),
            &data,
            &format!("{per} row groups per partition"),
        );
        let first = df.partitions([0]).compute().unwrap();
        assert_eq!(first.height(), (per * 100).min(1000));
    }
}

#[test]
fn csv_reads_parse_only_the_columns_used_and_match_polars() {
    // Quoted fields holding separators, doubled quotes and empty values, split into pieces:
    // a selection, an aggregation of one column, a filter on another and a row count each
    // equal Polars' reading of the whole file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quoted.csv");
    let mut text = String::from("id,name,amount,flag\n");
    for i in 0..3000 {
        let name = match i % 4 {
            0 => format!("\"Smith, {i}\""),
            1 => format!("\"say \"\"hi\"\" {i}\""),
            2 => String::new(),
            _ => format!("plain{i}"),
        };
        let amount = if i % 9 == 0 {
            String::new()
        } else {
            format!("{}.5", i % 17)
        };
        text.push_str(&format!("{i},{name},{amount},{}\n", i % 3 == 0));
    }
    std::fs::write(&path, &text).unwrap();
    let want = polars_reads(&path);
    let p = path.to_str().unwrap();
    for blocksize in [None, Some(2048)] {
        let df = dd::read_csv_with(p, CsvOptions::default().blocksize(blocksize));
        let what = format!("blocksize {blocksize:?}");
        assert_frames_eq(
            &df.columns_subset(["name"]).compute().unwrap(),
            &want.select(["name"]).unwrap(),
            &what,
        );
        let got = df.column("amount").sum().compute_f64().unwrap();
        let oracle = want
            .column("amount")
            .unwrap()
            .as_materialized_series()
            .sum::<f64>();
        assert_eq!(got, oracle.unwrap(), "{what}");
        let kept = df
            .filter(col("flag").eq(lit(true)))
            .columns_subset(["id", "name"]);
        let want_kept = oracle_filter(&want);
        assert_frames_eq(&kept.compute().unwrap(), &want_kept, &what);
        assert_eq!(df.len().unwrap(), want.height(), "{what}");
        // Read inside a broadcast merge's tasks, only the key and the counted column.
        let labels = pl::df!(
            "key" => (0..3000i64).step_by(3).collect::<Vec<_>>(),
            "label" => (0..1000).map(|i| ["a", "b", "c", "d"][i % 4]).collect::<Vec<_>>()
        )
        .unwrap();
        let counts = df
            .merge(
                &dd::from_polars(labels.clone(), 1),
                &["id"],
                &["key"],
                dd::How::Inner,
            )
            .column("label")
            .value_counts()
            .compute()
            .unwrap();
        let want_counts = want
            .clone()
            .lazy()
            .join(
                labels.lazy(),
                [pl::col("id")],
                [pl::col("key")],
                pl::JoinArgs::new(pl::JoinType::Inner),
            )
            .group_by([pl::col("label")])
            .agg([pl::len().cast(DataType::UInt32).alias("count")])
            .collect()
            .unwrap();
        assert_frames_eq(&sorted(&counts), &sorted(&want_counts), &what);
    }
    // Records with quoted line breaks (read whole), one column of them.
    let path = dir.path().join("notes.csv");
    let mut text = String::from("id,note,n\n");
    for i in 0..300 {
        text.push_str(&format!(
            "{i},\"first, line\nsecond \"\"{i}\"\"\",{}\n",
            i * 2
        ));
    }
    std::fs::write(&path, &text).unwrap();
    let df = dd::read_csv_with(
        path.to_str().unwrap(),
        CsvOptions::default().blocksize(Some(512)),
    );
    let got = df.columns_subset(["note"]).compute().unwrap();
    assert_eq!(got.height(), 300);
    assert_eq!(
        got.column("note").unwrap().str().unwrap().get(7),
        Some("first, line\nsecond \"7\"")
    );
    assert_eq!(
        df.column("n").sum().compute_f64().unwrap(),
        (0..300).map(|i| i as f64 * 2.0).sum::<f64>()
    );
}

fn oracle_filter(want: &pl::DataFrame) -> pl::DataFrame {
    want.clone()
        .lazy()
        .filter(pl::col("flag").eq(pl::lit(true)))
        .select([pl::col("id"), pl::col("name")])
        .collect()
        .unwrap()
}

/// A CSV text of `rows` records (about 60 bytes each) with integers, floats with empty (null)
/// values, unquoted strings, datetimes and booleans, lines ended by `eol`; every 97th line is
/// empty when `blank_lines`.
fn csv_text(rows: usize, eol: &str, blank_lines: bool) -> String {
    let mut text = format!("id,fare,zone,at,flag{eol}");
    for i in 0..rows {
        let fare = if i % 11 == 0 {
            String::new()
        } else {
            format!("{}.{}", i % 173, i % 10)
        };
        text.push_str(&format!(
            "{i},{fare},zone {},2019-01-{:02}T{:02}:{:02}:00,{}{eol}",
            i % 263,
            1 + i % 28,
            i % 24,
            i % 60,
            i % 3 == 0
        ));
        if blank_lines && i % 97 == 50 {
            text.push_str(eol);
        }
    }
    text
}

#[test]
fn csv_pieces_parsed_in_chunks_match_polars() {
    // Files of about 1.2 MB without quotes: every piece is cut into line-aligned chunks of our
    // own (64 KiB and up) parsed in parallel. Whole-file, 300 kB and odd-sized pieces, the
    // full frame, one column and a row count each equal Polars' reading of the whole file;
    // with `\n` and `\r\n` line ends, without a final line end, with empty lines.
    let dir = tempfile::tempdir().unwrap();
    let variants = [
        ("lf", csv_text(20_000, "\n", false)),
        ("crlf", csv_text(20_000, "\r\n", false)),
        (
            "no-final-eol",
            csv_text(20_000, "\n", false).trim_end().to_owned(),
        ),
        ("blank-lines", csv_text(20_000, "\n", true)),
    ];
    for (name, text) in variants {
        let path = dir.path().join(format!("{name}.csv"));
        std::fs::write(&path, &text).unwrap();
        let want = polars_reads(&path);
        assert!(want.height() >= 20_000, "{name}: {want}");
        let p = path.to_str().unwrap();
        for blocksize in [None, Some(300_000), Some(123_457)] {
            let what = format!("{name}, blocksize {blocksize:?}");
            let df = dd::read_csv_with(p, CsvOptions::default().blocksize(blocksize));
            assert_frames_eq(&df.compute().unwrap(), &want, &what);
            assert_frames_eq(
                &df.columns_subset(["zone", "fare"]).compute().unwrap(),
                &want.select(["zone", "fare"]).unwrap(),
                &what,
            );
            assert_eq!(df.len().unwrap(), want.height(), "{what}");
        }
    }
    // A header-only file and a file whose only record has no line end.
    for (name, text) in [("header-only", "a,b\n"), ("one-record", "a,b\n1,x")] {
        let path = dir.path().join(format!("{name}.csv"));
        std::fs::write(&path, text).unwrap();
        let want = pl::CsvReadOptions::default()
            .try_into_reader_with_file_path(Some(path.clone()))
            .unwrap()
            .finish()
            .unwrap();
        let df = dd::read_csv(path.to_str().unwrap());
        assert_frames_eq(&df.compute().unwrap(), &want, name);
    }
}

#[test]
fn csv_quotes_past_the_first_chunk_fall_back_to_polars_reader() {
    // A 1 MB file whose only quoted fields come late: a short one holding a newline, and one
    // of 200 kB (longer than three chunks) holding separators and newlines. The chunks are cut
    // before the quotes are seen; the piece is then parsed by Polars' reader, whole.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late-quotes.csv");
    let mut text = csv_text(16_000, "\n", false);
    text.push_str("16000,1.5,\"zone\nsplit\",2019-01-02T03:04:00,true\n");
    let long: String = (0..20_000).map(|i| format!("a,b\n{i}")).collect();
    text.push_str(&format!("16001,2.5,\"{long}\",2019-01-02T03:05:00,false\n"));
    text.push_str(csv_text(500, "\n", false).split_once('\n').unwrap().1);
    std::fs::write(&path, &text).unwrap();
    let want = polars_reads(&path);
    assert_eq!(want.height(), 16_502);
    let df = dd::read_csv_with(
        path.to_str().unwrap(),
        CsvOptions::default().blocksize(None),
    );
    assert_frames_eq(&df.compute().unwrap(), &want, "late quotes");
    assert_frames_eq(
        &df.columns_subset(["zone"]).compute().unwrap(),
        &want.select(["zone"]).unwrap(),
        "late quotes, one column",
    );
}
