//! `s3://` paths against a real S3 endpoint: moto's server on loopback, started by the test.
//!
//! The server runs from `$OXIDASK_MOTO_PYTHON` (`.ci/run` installs moto into a virtualenv and
//! sets it), else `~/.cache/oxidask-moto-venv/bin/python`, else `python3`.
//!
//! Credentials come from the environment of the process that reads, as on a real cluster.
//! A process's environment is set when it starts, not by tests running in parallel threads,
//! so tests that need keys in the environment run their own body again in a child process of
//! this test binary with the variables set ([`in_child`]); the child finds the server's port
//! in `OXIDASK_TEST_MOTO_PORT`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use oxidask_client::LocalCluster;
use oxidask_core::compute::with_scheduler;
use oxidask_core::{Collection, Compute, Graph, Key, Value};
use oxidask_dataframe::{
    self as dd, col, lit, Credentials, CsvOptions, ParquetOptions, StorageOptions, WriteOptions,
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

/// The key id and secret the tests give: distinctive, so finding them anywhere is a leak.
/// (moto accepts any keys; the signatures are still computed with them.)
const KEY_ID: &str = "AKIDOXIDASKTESTKEY";
const SECRET: &str = "oxidask-test-secret-5d41402abc4b2a76";

/// The named secret `moto`, as a worker's environment would hold it.
fn named_secret_env() -> Vec<(&'static str, String)> {
    vec![
        ("OXIDASK_SECRET_MOTO_ACCESS_KEY_ID", KEY_ID.into()),
        ("OXIDASK_SECRET_MOTO_SECRET_ACCESS_KEY", SECRET.into()),
    ]
}

/// The moto port when this process is the child started by [`in_child`].
fn child_port() -> Option<u16> {
    std::env::var("OXIDASK_TEST_MOTO_PORT")
        .ok()
        .map(|p| p.parse().unwrap())
}

/// Runs the test `name` (`s3::…`) of this binary in a child process whose environment holds
/// `env`, no other `AWS_*` or `OXIDASK_SECRET_*` variable, and the moto port; fails if it does.
fn in_child(name: &str, moto: &Moto, env: &[(&str, String)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"]);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("AWS_") || k.starts_with("OXIDASK_SECRET_") {
            cmd.env_remove(&*k);
        }
    }
    cmd.env("OXIDASK_TEST_MOTO_PORT", moto.port.to_string());
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in a child process: {}\n{stdout}\n{stderr}",
        out.status
    );
}

fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

#[test]
fn parquet_and_csv_on_a_real_s3_endpoint() {
    let Some(port) = child_port() else {
        let moto = start_moto();
        return in_child(
            "s3::parquet_and_csv_on_a_real_s3_endpoint",
            &moto,
            &named_secret_env(),
        );
    };
    let storage = StorageOptions::endpoint(endpoint(port)).credentials(Credentials::named("moto"));
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
    // Partition pruning on S3: by hive value, and by footer statistics read with ranged GETs.
    let red = hive.filter(col("g").eq(lit("red")));
    let plan = red.explain();
    assert!(plan.contains("pruned "), "hive pruning on s3:\n{plan}");
    let got = red
        .select([col("k"), col("g"), col("x"), col("y"), col("s")])
        .compute()
        .unwrap();
    let want = oracle(&data, |l| l.filter(col("g").eq(lit("red"))));
    assert_frames_eq(&sorted(&got), &sorted(&want), "s3 hive pruning");
    let none = back.filter(col("k").gt(lit(100i64)));
    let plan = none.explain();
    assert!(plan.contains("pruned 4 of 4 pieces"), "{plan}");
    assert_eq!(none.compute().unwrap().height(), 0);

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

/// Writes and reads back Parquet and CSV under `prefix` with `storage`.
fn round_trip(storage: &StorageOptions, prefix: &str) {
    let data = sample(300, 7).drop("t").unwrap();
    let df = dd::from_polars(data.clone(), 3);
    let dir = format!("s3://trips/{prefix}");
    df.to_parquet_with(
        &dir,
        WriteOptions {
            storage: storage.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let back = dd::read_parquet_with(
        dir.as_str(),
        ParquetOptions {
            storage: storage.clone(),
            ..Default::default()
        },
    );
    assert_frames_eq(&back.compute().unwrap(), &data, "parquet round trip");
    df.to_csv_with(format!("{dir}-csv"), storage.clone())
        .unwrap();
    let csv = dd::read_csv_with(
        format!("{dir}-csv/*.csv"),
        CsvOptions {
            storage: storage.clone(),
            ..CsvOptions::default().blocksize(Some(1024))
        },
    );
    assert_eq!(csv.len().unwrap(), 300);
}

#[test]
fn s3_reads_with_credentials_from_the_environment_only() {
    let Some(_) = child_port() else {
        let moto = start_moto();
        let env = vec![
            ("AWS_ACCESS_KEY_ID", KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
            ("AWS_REGION", "eu-west-1".to_owned()),
            ("AWS_ENDPOINT_URL", endpoint(moto.port)),
        ];
        return in_child(
            "s3::s3_reads_with_credentials_from_the_environment_only",
            &moto,
            &env,
        );
    };
    // No endpoint, region or keys in the options: all from this process's AWS_* variables.
    round_trip(&StorageOptions::default(), "from-env");
}

/// A scheduler that only does what the distributed client does to a graph before sending it
/// (every task to its wire form), keeps the bytes, and fails the computation.
#[derive(Default)]
struct WireOnly {
    bytes: Mutex<Vec<u8>>,
    debug: Mutex<String>,
}

impl Compute for WireOnly {
    fn compute(&self, graph: Graph, _: &[Key]) -> Result<Vec<Value>, oxidask_core::Error> {
        use oxidask_protocol::wire::{spec_to_wire, WireKey, WireTask};
        let mut bytes = self.bytes.lock().unwrap();
        for (key, task) in graph.iter() {
            let spec = spec_to_wire(key, task.spec())
                .map_err(|e| oxidask_core::Error::Collection(e.message.into()))?;
            let deps = task.dependencies().iter().map(WireKey::from).collect();
            let wire = WireTask::new(WireKey::from(key), &spec, deps);
            bytes.extend(oxidask_core::encode(&spec));
            bytes.extend(&wire.spec.0);
            bytes.extend(oxidask_core::encode(&wire));
            *self.debug.lock().unwrap() += &format!("{key:?} {task:?}\n");
        }
        *self.debug.lock().unwrap() += &format!("{graph:?}");
        Err(oxidask_core::Error::Collection(
            "graph captured, not run".into(),
        ))
    }

    fn name(&self) -> &'static str {
        "wire-only"
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn s3_keys_never_reach_task_specs_on_the_wire_and_workers_resolve_named_secrets() {
    let Some(port) = child_port() else {
        let moto = start_moto();
        return in_child(
            "s3::s3_keys_never_reach_task_specs_on_the_wire_and_workers_resolve_named_secrets",
            &moto,
            &named_secret_env(),
        );
    };
    let storage = StorageOptions::endpoint(endpoint(port)).credentials(Credentials::named("moto"));
    let data = sample(200, 3).drop("t").unwrap();
    dd::from_polars(data.clone(), 2)
        .to_parquet_with(
            "s3://trips/wire",
            WriteOptions {
                storage: storage.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    let read = || {
        dd::read_parquet_with(
            "s3://trips/wire",
            ParquetOptions {
                storage: storage.clone(),
                filter: Some(col("x").gt(lit(0.0))),
                ..Default::default()
            },
        )
    };

    // Reads, and a write of a read, in their wire form: no key id, no secret.
    let wire = Arc::new(WireOnly::default());
    with_scheduler(wire.clone(), || {
        let err = read().compute().unwrap_err().to_string();
        assert!(err.contains("graph captured"), "{err}");
        let err = read()
            .to_parquet_with(
                "s3://trips/wire-copy",
                WriteOptions {
                    storage: storage.clone(),
                    ..Default::default()
                },
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("graph captured"), "{err}");
    });
    let bytes = wire.bytes.lock().unwrap();
    let debug = wire.debug.lock().unwrap();
    assert!(
        bytes.len() > 100,
        "tasks were encoded: {} bytes",
        bytes.len()
    );
    assert!(
        contains(&bytes, "moto") && contains(&bytes, "trips/wire"),
        "the specs name the secret and the files"
    );
    for s in [KEY_ID, SECRET] {
        assert!(!contains(&bytes, s), "`{s}` in the wire form of the tasks");
        assert!(!debug.contains(s), "`{s}` in the Debug of the graph");
        assert!(!format!("{storage:?}").contains(s));
    }

    // On a cluster, the workers resolve the named secret from their own environment.
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
    let got = with_scheduler(Arc::new(client), || read().compute().unwrap());
    let want = crate::common::oracle(&data, |l| l.filter(col("x").gt(lit(0.0))));
    assert_frames_eq(&got, &want, "named secret on a cluster");
}

#[test]
fn s3_keys_given_in_code_work_locally_and_are_refused_by_a_cluster() {
    let moto = start_moto();
    let storage = StorageOptions::endpoint(endpoint(moto.port))
        .credentials(Credentials::static_keys(KEY_ID, SECRET));
    for shown in [format!("{storage:?}"), format!("{storage:#?}")] {
        assert!(
            !shown.contains(KEY_ID) && !shown.contains(SECRET),
            "{shown}"
        );
    }
    // The threaded scheduler: nothing leaves the process, the keys are used.
    round_trip(&storage, "static");

    let cluster = LocalCluster::builder()
        .workers(1)
        .threads_per_worker(1)
        .start()
        .unwrap();
    let client = oxidask_client::Client::builder()
        .address(cluster.address())
        .set_as_default(false)
        .connect()
        .unwrap();
    let err = with_scheduler(Arc::new(client), || {
        dd::read_parquet_with(
            "s3://trips/static",
            ParquetOptions {
                storage: storage.clone(),
                ..Default::default()
            },
        )
        .compute()
        .unwrap_err()
        .to_string()
    });
    assert!(
        err.contains("AWS_ACCESS_KEY_ID") && err.contains("Credentials::named"),
        "the refusal says what to use instead: {err}"
    );
    assert!(!err.contains(KEY_ID) && !err.contains(SECRET), "{err}");
}

/// A server that answers every request `403` with the request's head in the body, as S3
/// echoes the access key id in its errors.
fn echoing_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let body = format!(
                "<Error><Code>InvalidAccessKeyId</Code><Request>{}</Request></Error>",
                String::from_utf8_lossy(&head)
            );
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    port
}

#[test]
fn s3_error_from_the_server_echoing_the_access_key_id_is_redacted() {
    let port = echoing_server();
    let storage = StorageOptions::endpoint(endpoint(port))
        .credentials(Credentials::static_keys(KEY_ID, SECRET));
    let err = dd::read_csv_with(
        "s3://trips/data.csv",
        CsvOptions {
            storage,
            ..CsvOptions::default()
        },
    )
    .check()
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("InvalidAccessKeyId") && err.contains("Credential=***"),
        "the server's message is kept, the key id is not: {err}"
    );
    assert!(!err.contains(KEY_ID) && !err.contains(SECRET), "{err}");
}

/// Reading S3 from a `#[tokio::main]` program panicked twice over: our S3 calls blocked on
/// their runtime with `Runtime::block_on` ("Cannot start a runtime from within a runtime"),
/// and Polars' reader blocks with `block_in_place` ("can call blocking only when running on
/// the multi-threaded runtime"). Local files hit the second.
#[test]
fn s3_read_inside_a_tokio_runtime_panicked_with_runtime_within_runtime() {
    let moto = start_moto();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let local = local.to_str().unwrap();
    let data = sample(100, 9).drop("t").unwrap();
    dd::from_polars(data.clone(), 2).to_parquet(local).unwrap();
    let storage = StorageOptions::endpoint(endpoint(moto.port))
        .credentials(Credentials::static_keys(KEY_ID, SECRET));
    // Both kinds of runtime a `#[tokio::main]` program may run in.
    let runtimes = [
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    ];
    for (i, rt) in runtimes.iter().enumerate() {
        rt.block_on(async {
            round_trip(&storage, &format!("in-runtime-{i}"));
            let back = dd::read_parquet(local).compute().unwrap();
            assert_frames_eq(&back, &data, "local parquet inside a runtime");
            // Building a frame computes schemas with Polars on this thread; the synchronous
            // scheduler runs the tasks here too.
            let query = || {
                dd::read_parquet(local)
                    .filter(col("x").gt(lit(0.0)))
                    .groupby(["k"])
                    .sum("y")
            };
            let threaded = query().compute().unwrap();
            let synchronous = query()
                .compute_with(&oxidask_local::Synchronous::new())
                .unwrap();
            assert_frames_eq(&sorted(&synchronous), &sorted(&threaded), "synchronous");
        });
    }
}
