//! Every error names the key (or file), where the value came from and what was expected.

use oxidask_config::{Config, ConfigError, Flags, Overlay, Reason};

use crate::{path_str, Sandbox};

#[test]
fn unknown_key_in_a_file_suggests_the_close_one() {
    let sb = Sandbox::new();
    let f = sb.write(
        "etc/a.yaml",
        "distributed:\n  worker:\n    memory:\n      targt: 0.5\n",
    );
    assert_eq!(
        sb.error(),
        format!(
            "`distributed.worker.memory.targt` (from file {}) is not a configuration key (did \
             you mean `distributed.worker.memory.target`?); `oxidask config --defaults` lists \
             every key",
            f.display()
        )
    );
}

#[test]
fn misplaced_and_misspelled_groups_are_found() {
    let sb = Sandbox::new();
    sb.write("etc/a.yaml", "distributed:\n  memory:\n    target: 0.5\n");
    assert!(sb
        .error()
        .contains("did you mean `distributed.worker.memory.target`?"));
    let sb = Sandbox::new();
    sb.write("etc/a.yaml", "distributed:\n  workr: {}\n");
    assert!(
        sb.error().contains("`distributed.workr` (from file"),
        "{}",
        sb.error()
    );
    let sb = Sandbox::new();
    sb.write("etc/a.yaml", "frobnicate: 1\n");
    let e = sb.error();
    assert!(
        e.contains("`frobnicate`") && !e.contains("did you mean"),
        "{e}"
    );
}

#[test]
fn unknown_environment_variable_names_the_variable() {
    let e = Sandbox::new()
        .var("OXIDASK_DISTRIBUTED__COMM__TIMEOUT__CONNECT", "5s")
        .error();
    assert_eq!(
        e,
        "`distributed.comm.timeout.connect` (from environment variable \
         OXIDASK_DISTRIBUTED__COMM__TIMEOUT__CONNECT) is not a configuration key (did you mean \
         `distributed.comm.timeouts.connect`?); `oxidask config --defaults` lists every key"
    );
}

#[test]
fn unknown_key_set_in_code_names_the_call() {
    let overlay = Overlay::new(Config::defaults());
    let typo = "distributed.worker.memory.tagret";
    let (set, line) = (overlay.set(typo, 0.5), line!());
    let e = set.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "`distributed.worker.memory.tagret` (from oxidask_config::set at {}:{line}) is not \
             a configuration key (did you mean `distributed.worker.memory.target`?); \
             `oxidask config --defaults` lists every key",
            file!()
        )
    );
    assert!(matches!(
        e,
        ConfigError::UnknownKey {
            suggestion: Some("distributed.worker.memory.target"),
            ..
        }
    ));
}

#[test]
fn a_value_for_a_group_says_to_set_one_of_its_keys() {
    let sb = Sandbox::new();
    let f = sb.write("etc/a.yaml", "distributed:\n  worker:\n    memory: 0.5\n");
    assert_eq!(
        sb.error(),
        format!(
            "`distributed.worker.memory` (from file {}) is a group of keys, not a key: set one \
             of its keys, such as `distributed.worker.memory.target`",
            f.display()
        )
    );
}

#[test]
fn out_of_range_fraction_from_the_environment() {
    let e = Sandbox::new()
        .var("OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGET", "1.5")
        .error();
    assert_eq!(
        e,
        "`distributed.worker.memory.target` is 1.5 in environment variable \
         OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGET, which is out of range; expected a \
         fraction from 0 to 1, or false to turn it off"
    );
}

#[test]
fn wrong_types_say_what_they_are() {
    let sb = Sandbox::new();
    let f = sb.write(
        "etc/a.yaml",
        "distributed.scheduler.work-stealing: sometimes\n",
    );
    assert_eq!(
        sb.error(),
        format!(
            "`distributed.scheduler.work-stealing` is sometimes in file {}, which is a string; \
             expected true or false",
            f.display()
        )
    );
    let sb = Sandbox::new();
    sb.write("etc/a.yaml", "distributed.worker.memory.target: true\n");
    assert!(sb.error().contains("is true in file"), "{}", sb.error());
    let sb = Sandbox::new();
    sb.write("etc/a.yaml", "array.chunk-size: [1, 2]\n");
    assert!(
        sb.error().contains("`array.chunk-size` is […] in file")
            && sb
                .error()
                .contains("which is a list; expected a size such as 4GiB"),
        "{}",
        sb.error()
    );
    let sb = Sandbox::new();
    sb.write(
        "etc/a.yaml",
        "distributed.scheduler.allowed-failures: null\n",
    );
    assert!(
        sb.error().contains("is null in file")
            && sb.error().ends_with("expected a whole number ≥ 0"),
        "{}",
        sb.error()
    );
    let sb = Sandbox::new();
    sb.write(
        "etc/a.yaml",
        "distributed.scheduler.allowed-failures: 2.5\n",
    );
    assert!(
        sb.error().contains("which is a number with a fraction"),
        "{}",
        sb.error()
    );
}

#[test]
fn negative_nan_infinite_and_huge_values_are_refused() {
    let cases = [
        ("distributed.worker.memory.max-spill: -5MB", "is negative"),
        ("distributed.worker.memory.max-spill: -1", "is negative"),
        ("distributed.comm.timeouts.connect: -1s", "is negative"),
        ("distributed.comm.timeouts.connect: -3", "is negative"),
        ("distributed.scheduler.allowed-failures: -1", "is negative"),
        ("distributed.worker.memory.target: .nan", "is .nan in file"),
        (
            "distributed.worker.memory.target: .nan",
            "is not a finite number",
        ),
        ("distributed.worker.memory.target: -0.1", "is out of range"),
        ("array.chunk-size: .inf", "is not a finite number"),
        (
            "distributed.comm.timeouts.tcp: .nan",
            "is not a finite number",
        ),
        ("distributed.comm.timeouts.tcp: 1e300 weeks", "is too large"),
        ("array.chunk-size: 1e30", "is too large"),
        (
            "distributed.worker.connections.outgoing: 0",
            "is out of range; expected a whole number ≥ 1",
        ),
        (
            "array.chunk-size: 12 parsecs",
            "has an unknown unit `parsecs`",
        ),
        ("distributed.client.heartbeat: ''", "is empty"),
    ];
    for (yaml, want) in cases {
        let sb = Sandbox::new();
        sb.write("etc/a.yaml", yaml);
        let e = sb.error();
        assert!(e.contains(want), "{yaml}: {e}");
    }
}

#[test]
fn choices_list_themselves() {
    let e = Sandbox::new().var("OXIDASK_SCHEDULER", "gpu").error();
    assert_eq!(
        e,
        "`scheduler` is gpu in environment variable OXIDASK_SCHEDULER, which is not one of the \
         choices; expected one of threads, sync, processes, or null"
    );
    let e = Sandbox::new()
        .var("OXIDASK_DISTRIBUTED__COMM__TLS__MIN_VERSION", "1.1")
        .error();
    assert!(e.ends_with("expected one of 1.2, 1.3"), "{e}");
}

#[test]
fn malformed_yaml_names_the_file_and_the_line() {
    let sb = Sandbox::new();
    let f = sb.write("xdg/oxidask/broken.yaml", "distributed:\n  worker: [1\n");
    let e = sb.error();
    assert!(
        e.starts_with(&format!(
            "the configuration file {} is not valid YAML: ",
            f.display()
        )) && e.contains("line ")
            && e.ends_with("; fix it, or move it out of the way"),
        "{e}"
    );
    let sb = Sandbox::new();
    sb.write("etc/dup.yaml", "num-workers: 1\nnum-workers: 2\n");
    assert!(sb.error().contains("is not valid YAML"), "{}", sb.error());
}

#[test]
fn a_file_that_is_not_a_mapping_says_what_it_holds() {
    let sb = Sandbox::new();
    let f = sb.write("etc/list.yaml", "- a\n- b\n");
    assert_eq!(
        sb.error(),
        format!(
            "the configuration file {} holds a list at the top, but it must be a mapping of keys \
             such as `distributed: {{worker: {{memory: {{target: 0.6}}}}}}`",
            f.display()
        )
    );
    // An empty file is fine.
    let sb = Sandbox::new();
    sb.write("etc/empty.yaml", "");
    sb.write("etc/comments.yaml", "# nothing yet\n");
    sb.write("etc/groups.yaml", "distributed:\n  worker:\n");
    assert!(sb.load().is_ok());
}

#[test]
fn a_missing_oxidask_config_path_is_an_error() {
    let sb = Sandbox::new();
    let missing = sb.root().join("no-such.yaml");
    let e = sb.var("OXIDASK_CONFIG", &path_str(&missing)).error();
    assert_eq!(
        e,
        format!(
            "OXIDASK_CONFIG names {}, which does not exist; point it at a YAML file or a \
             directory of them, or unset it",
            missing.display()
        )
    );
}

#[test]
fn flag_errors_name_the_flag() {
    let mut flags = Flags::new();
    let e = flags
        .set(
            "--memory-limit-fraction",
            "distributed.worker.memory.target",
            "lots",
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`distributed.worker.memory.target` is lots in flag --memory-limit-fraction, which is \
         not a number; expected a fraction from 0 to 1, or false to turn it off"
    );
    assert!(matches!(
        e,
        ConfigError::Invalid {
            reason: Reason::NotANumber,
            ..
        }
    ));
    let e = flags.set("--nope", "distributed.nope", 1).unwrap_err();
    assert!(e.to_string().contains("(from flag --nope)"), "{e}");
}

#[test]
fn secrets_do_not_appear_in_errors() {
    let mut flags = Flags::new();
    let e = flags
        .set("--auth-token", "distributed.comm.auth.token", true)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`distributed.comm.auth.token` is (a secret) in flag --auth-token, which is true; \
         expected text, or null"
    );
}

#[cfg(unix)]
#[test]
fn a_value_that_is_not_utf8_is_an_error() {
    use std::os::unix::ffi::OsStringExt;
    let env = oxidask_config::Environment::from_vars([
        (
            "OXIDASK_ROOT_CONFIG".into(),
            std::ffi::OsString::from("/nonexistent/oxidask"),
        ),
        (
            "OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN".to_owned(),
            std::ffi::OsString::from_vec(vec![0xff, 0xfe]),
        ),
    ]);
    assert_eq!(
        Config::load_from(&env).unwrap_err().to_string(),
        "the environment variable OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN is not valid UTF-8; set \
         it to text"
    );
}

#[test]
#[should_panic(
    expected = "Config::size(\"distributed.worker.memory.target\"): the key holds a \
                           fraction from 0 to 1, or false to turn it off, not a size"
)]
fn reading_a_key_as_the_wrong_kind_is_a_bug_in_the_caller() {
    let _ = Config::defaults().size("distributed.worker.memory.target");
}

#[test]
#[should_panic(expected = "did you mean `distributed.comm.timeouts.connect`?")]
fn reading_an_unknown_key_is_a_bug_in_the_caller() {
    let _ = Config::defaults().duration("distributed.comm.timeout.connect");
}

#[test]
fn looking_up_an_unknown_key_is_an_error() {
    let e = Config::defaults().value("array.chunksize").unwrap_err();
    assert!(
        e.to_string().contains("did you mean `array.chunk-size`?"),
        "{e}"
    );
}
