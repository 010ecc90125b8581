//! `s3://` paths against a real S3 endpoint: moto's server on loopback, started by the test.
//!
//! The server runs from `$OXIDASK_MOTO_PYTHON` (`.ci/run` installs moto into a virtualenv and
//! sets it), else `~/.cache/oxidask-moto-venv/bin/python`, else `python3`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oxidask_core::Collection;
use oxidask_dataframe::{
    self as dd, col, lit, CsvOptions, ParquetOptions, StorageOptions, WriteOptions,
};

use crate::common::{assert_frames_eq, oracle, sample, sorted};

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    if let Ok(p) = std::env::var("OXIDASK_MOTO_PYTHON") {
        return p;
    }
    let venv = format!(
        "{}/.cache/oxidask-moto-venv/bin/python",
        std::env::var("HOME").unwrap_or_default()
    );
    if std::path::Path::new(&venv).exists() {
        venv
    } else {
        "python3".into()
    }
}

fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let py = python();
    let child = Command::new(&py)
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto's S3 server with {py}: {e}; install it with `pip install 'moto[server]'` or set OXIDASK_MOTO_PYTHON"));
    let mut moto = Moto { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!("moto's S3 server exited ({status}); is moto installed for {py}? `pip install 'moto[server]'`");
        }
        assert!(Instant::now() < deadline, "moto did not start within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let reply = http(
        port,
        &format!("PUT /trips HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "bucket created: {reply}");
    moto.port = port;
    moto
}

#[test]
fn parquet_and_csv_on_a_real_s3_endpoint() {
    let moto = start_moto();
    let storage = StorageOptions::s3(
        format!("http://127.0.0.1:{}", moto.port),
        "testing",
        "testing",
    );
    let data = sample(600, 21).drop("t").unwrap();
    let df = dd::from_polars(data.clone(), 4);

    // Parquet: write, list, read back with pushdown.
    let written = df
        .to_parquet_with(
            "s3://trips/parquet",
            WriteOptions {
                storage: storage.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(written, 600);
    let back = dd::read_parquet_with(
        "s3://trips/parquet",
        ParquetOptions {
            storage: storage.clone(),
            ..Default::default()
        },
    );
    back.check().unwrap();
    assert_eq!(back.npartitions(), 4);
    assert_frames_eq(&back.compute().unwrap(), &data, "s3 parquet round trip");
    let globbed = dd::read_parquet_with(
        "s3://trips/parquet/part.*.parquet",
        ParquetOptions {
            columns: Some(vec!["k".into(), "x".into()]),
            filter: Some(col("x").gt(lit(0.0))),
            storage: storage.clone(),
            ..Default::default()
        },
    );
    let want = oracle(&data, |l| {
        l.filter(col("x").gt(lit(0.0))).select([col("k"), col("x")])
    });
    assert_frames_eq(&globbed.compute().unwrap(), &want, "s3 glob with pushdown");

    // Hive directories on S3.
    df.to_parquet_with(
        "s3://trips/hive",
        WriteOptions {
            storage: storage.clone(),
            partition_on: vec!["g".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let hive = dd::read_parquet_with(
        "s3://trips/hive",
        ParquetOptions {
            storage: storage.clone(),
            ..Default::default()
        },
    );
    let got = hive
        .select([col("k"), col("g"), col("x"), col("y"), col("s")])
        .compute()
        .unwrap();
    assert_frames_eq(&sorted(&got), &sorted(&data), "s3 hive round trip");

    // CSV split into byte ranges read with ranged GETs.
    df.to_csv_with("s3://trips/csv", storage.clone()).unwrap();
    let csv = dd::read_csv_with(
        "s3://trips/csv/*.csv",
        CsvOptions {
            storage: storage.clone(),
            ..CsvOptions::default().blocksize(Some(2048))
        },
    );
    assert!(
        csv.npartitions() > 4,
        "split into ranges: {}",
        csv.npartitions()
    );
    assert_eq!(csv.len().unwrap(), 600);
    let got = csv.groupby(["k"]).sum("y").compute().unwrap();
    let local = dd::from_polars(data.clone(), 1)
        .groupby(["k"])
        .sum("y")
        .compute()
        .unwrap();
    assert_frames_eq(&got, &local, "s3 csv groupby");

    // One object named exactly.
    let one = dd::read_csv_with(
        "s3://trips/csv/part.0.csv",
        CsvOptions {
            storage: storage.clone(),
            ..CsvOptions::default()
        },
    );
    one.check().unwrap();
    assert_eq!(one.npartitions(), 1);
    assert_eq!(one.len().unwrap(), 150);

    // Missing objects are errors naming the URL.
    let err = dd::read_parquet_with(
        "s3://trips/nothing-here/",
        ParquetOptions {
            storage,
            ..Default::default()
        },
    )
    .check()
    .unwrap_err()
    .to_string();
    assert!(err.contains("s3://trips/nothing-here"), "{err}");
}
