//! Runs every example program (cargo builds them for `cargo test`) and checks what it prints.
//! The examples assert their own results too; this checks they ran to the end.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/run_examples-<hash> -> target/<profile>/examples/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile dir")
        .join("examples");
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

fn run(name: &str) -> String {
    let path = example(name);
    let out = Command::new(&path)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {}: {e} (cargo test builds examples first)",
                path.display()
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn delayed_example_computes_the_tutorial_values() {
    let out = run("delayed");
    assert!(out.contains("sequential: 3"), "{out}");
    assert!(out.contains("parallel: 3"), "{out}");
    assert!(out.contains("16 loop bodies: total 256"), "{out}");
}

#[test]
fn read_transform_write_example_writes_every_file() {
    let out = run("read_transform_write");
    assert!(out.contains("wrote 24 files"), "{out}");
    assert!(out.contains("bad.csv line 2"), "{out}");
}

#[test]
fn crawler_example_finds_every_page_at_every_pool_size() {
    let out = run("crawler");
    for threads in [1, 2, 4] {
        assert!(
            out.contains(&format!("{threads} thread(s): 121 pages, 1089 words")),
            "{out}"
        );
    }
}

#[test]
fn bag_word_count_example_agrees_with_a_plain_loop() {
    let out = run("bag_word_count");
    assert!(out.contains("parallel: 4999 distinct words"), "{out}");
    assert!(out.contains("w0 "), "{out}");
    assert!(out.contains("cluster: 4999 distinct words"), "{out}");
}

#[test]
fn array_tutorial_example_prints_the_tutorial_values() {
    let out = run("array_tutorial");
    assert!(out.contains("32.0 MB"), "{out}");
    assert!(
        out.contains("shape=(1000, 4000)") && out.contains("chunksize=(1000, 1000)"),
        "{out}"
    );
    assert!(out.contains("sum of ones: 4000000"), "{out}");
    assert!(out.contains("fancy calculation: 1"), "{out}");
    assert!(out.contains("three largest: ["), "{out}");
}

#[test]
fn distributed_example_runs_futures_on_worker_processes() {
    let out = run("distributed");
    assert!(out.contains("cluster: 2 workers, 4 threads"), "{out}");
    assert!(out.contains("map: 40 x inc"), "{out}");
    assert!(out.contains("sum 820"), "{out}");
    assert!(out.contains("add = 3, total = 820"), "{out}");
    assert!(out.contains("as_completed: [1, 4, 9]"), "{out}");
    assert!(out.contains("[749000, 499000, 249000]"), "{out}");
    assert!(out.contains("fib(12) = 144"), "{out}");
    assert!(out.contains("delayed on the cluster: 55"), "{out}");
    assert!(out.contains("sum() = 4000000"), "{out}");
}

#[test]
fn dataframe_example_walks_through_the_taxi_data() {
    let out = run("dataframe");
    assert!(out.contains("npartitions=12"), "{out}");
    assert!(out.contains("trips over 10 miles:"), "{out}");
    assert!(out.contains("divisions known: true"), "{out}");
    assert!(out.trim_end().ends_with("done"), "{out}");
}

#[test]
fn actor_counter_example_calls_actors_on_worker_processes() {
    let out = run("actor_counter");
    assert!(out.contains("answered in order: last total 100"), "{out}");
    assert!(out.contains("20 tasks called it too: total 310"), "{out}");
    assert!(out.contains("balance 42"), "{out}");
    assert!(
        out.contains("withdrawing 100: refused (Please deposit more money first.)"),
        "{out}"
    );
    assert!(out.contains("deposit 100: balance 142"), "{out}");
    assert!(out.contains("withdraw 100: balance 42"), "{out}");
    assert!(
        out.contains("counter dropped: the worker freed it"),
        "{out}"
    );
    assert!(
        out.contains("an unregistered actor type: refused") && out.contains("is registered"),
        "{out}"
    );
}
