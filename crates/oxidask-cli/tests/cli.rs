//! The `oxidask` binary end to end.

use std::process::Command;

fn oxidask(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oxidask"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("running oxidask");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_runs_and_prints_correct_results() {
    let graph = std::env::temp_dir().join(format!("oxidask-cli-test-{}.dot", std::process::id()));
    let (ok, out, err) = oxidask(&[
        "demo",
        "--tasks",
        "20000",
        "--graph",
        graph.to_str().unwrap(),
        "--duration",
        "1",
        "--dashboard-address",
        "127.0.0.1:0",
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("computed in parallel:    3"), "{out}");
    assert!(out.contains("sum of 16 results = 256"), "{out}");
    assert!(out.contains("independent: sum 200010000"), "{out}");
    assert!(out.contains("sum 200010000 in"), "{out}");
    assert!(out.contains("dashboard: http://127.0.0.1:"), "{out}");
    assert!(out.contains("every sum checked"), "{out}");
    assert!(std::fs::read_to_string(&graph)
        .unwrap()
        .starts_with("digraph"));
    let _ = std::fs::remove_file(graph);
}

#[test]
fn ops_lists_the_demo_operations_and_a_fingerprint() {
    let (ok, out, _) = oxidask(&["ops"]);
    assert!(ok);
    assert!(out.contains("oxidask_cli::demo::inc"), "{out}");
    assert!(
        out.lines().last().unwrap().starts_with("fingerprint "),
        "{out}"
    );
}

#[test]
fn bad_arguments_get_a_clear_error() {
    let (ok, _, err) = oxidask(&["demo", "--tasks", "many"]);
    assert!(!ok);
    assert!(err.contains("invalid value 'many'"), "{err}");
}
