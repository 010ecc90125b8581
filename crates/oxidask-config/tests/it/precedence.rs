//! Layers in order: defaults < files (system, user, `OXIDASK_CONFIG`) < environment < code <
//! flags, and where each value came from.

use std::time::Duration;

use oxidask_config::{Config, Environment, Flags, Overlay, Source};

use crate::{path_str, Sandbox};

const TARGET: &str = "distributed.worker.memory.target";

#[test]
fn file_then_env_then_code_then_flag() {
    let sb = Sandbox::new();
    let system = sb.write(
        "etc/base.yaml",
        "distributed:\n  worker:\n    memory:\n      target: 0.1\n      spill: 0.5\n",
    );
    let user = sb.write(
        "xdg/oxidask/mine.yaml",
        "distributed:\n  worker:\n    memory:\n      target: 0.2\n      pause: 0.9\n",
    );
    let extra = sb.write(
        "extra/job.yaml",
        "distributed:\n  worker:\n    memory:\n      target: 0.3\n      terminate: 0.99\n",
    );
    let sb = sb.var("OXIDASK_CONFIG", &path_str(&extra));

    let files_only = sb.load().unwrap();
    assert_eq!(
        files_only.files(),
        &[system.clone(), user.clone(), extra.clone()]
    );
    assert_eq!(files_only.fraction(TARGET), Some(0.3));
    assert_eq!(
        files_only.source_of(TARGET).unwrap(),
        &Source::File(extra.clone())
    );
    let memory = |key: &str| format!("distributed.worker.memory.{key}");
    assert_eq!(files_only.fraction(&memory("spill")), Some(0.5));
    assert_eq!(
        files_only.source_of(&memory("spill")).unwrap(),
        &Source::File(system)
    );
    assert_eq!(files_only.fraction(&memory("pause")), Some(0.9));
    assert_eq!(
        files_only.source_of(&memory("pause")).unwrap(),
        &Source::File(user)
    );
    assert_eq!(files_only.fraction(&memory("terminate")), Some(0.99));

    let var = "OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGET";
    let with_env = sb.var(var, "0.4").load().unwrap();
    assert_eq!(with_env.fraction(TARGET), Some(0.4));
    assert_eq!(
        with_env.source_of(TARGET).unwrap(),
        &Source::Env(var.into())
    );

    let overlay = Overlay::new(with_env);
    let (guard, line) = (overlay.set(TARGET, 0.5).unwrap(), line!());
    let with_code = overlay.current().unwrap();
    assert_eq!(with_code.fraction(TARGET), Some(0.5));
    assert_eq!(
        with_code.source_of(TARGET).unwrap(),
        &Source::Code {
            file: file!(),
            line
        }
    );

    let mut flags = Flags::new();
    flags.set("--memory-target", TARGET, "0.6").unwrap();
    overlay.set_flags(flags);
    let with_flag = overlay.current().unwrap();
    assert_eq!(with_flag.fraction(TARGET), Some(0.6));
    assert_eq!(
        with_flag.source_of(TARGET).unwrap(),
        &Source::Flag("--memory-target".into())
    );

    // Flags rank above code even when the code sets its value later.
    let later = overlay.set(TARGET, 0.55).unwrap();
    assert_eq!(overlay.current().unwrap().fraction(TARGET), Some(0.6));
    overlay.set_flags(Flags::new());
    assert_eq!(overlay.current().unwrap().fraction(TARGET), Some(0.55));
    drop(later);
    drop(guard);
    assert_eq!(overlay.current().unwrap().fraction(TARGET), Some(0.4));
}

#[test]
fn files_in_a_directory_apply_in_name_order_and_only_yaml() {
    let sb = Sandbox::new();
    sb.write("etc/20-later.yml", "array:\n  chunk-size: 64MiB\n");
    sb.write(
        "etc/10-first.yaml",
        "array:\n  chunk-size: 32MiB\n  split-every: 4\n",
    );
    sb.write("etc/30-notes.txt", "this is not read: [");
    sb.write("etc/40.json", r#"{"array": {"split-every": 6}}"#);
    let c = sb.load().unwrap();
    assert_eq!(c.size("array.chunk-size"), Some(64 << 20));
    assert_eq!(c.int("array.split-every"), Some(6));
    assert_eq!(c.files().len(), 3);
}

#[test]
fn home_config_is_used_without_xdg_and_a_relative_xdg_is_ignored() {
    let sb = Sandbox::new();
    sb.write("home/.config/oxidask/a.yaml", "num-workers: 3\n");
    let home = path_str(&sb.root().join("home"));
    let c = sb
        .var("XDG_CONFIG_HOME", "")
        .var("HOME", &home)
        .load()
        .unwrap();
    assert_eq!(c.int("num-workers"), Some(3));
    let sb = Sandbox::new();
    sb.write("home/.config/oxidask/a.yaml", "num-workers: 3\n");
    let home = path_str(&sb.root().join("home"));
    let c = sb
        .var("XDG_CONFIG_HOME", "relative/dir")
        .var("HOME", &home)
        .load()
        .unwrap();
    assert_eq!(
        c.int("num-workers"),
        Some(3),
        "XDG_CONFIG_HOME must be absolute to count"
    );
}

#[test]
fn oxidask_config_takes_several_paths_files_or_directories() {
    let sb = Sandbox::new();
    let a = sb.write(
        "one/a.yaml",
        "distributed.client.heartbeat: 1s\nnum-workers: 2\n",
    );
    sb.write("two/b.yaml", "distributed.client.heartbeat: 2s\n");
    let list = std::env::join_paths([a, sb.root().join("two")]).unwrap();
    let c = sb
        .var("OXIDASK_CONFIG", list.to_str().unwrap())
        .load()
        .unwrap();
    assert_eq!(
        c.duration("distributed.client.heartbeat"),
        Some(Duration::from_secs(2))
    );
    assert_eq!(c.int("num-workers"), Some(2));
}

#[test]
fn keys_read_with_dots_and_underscores_as_dask_allows() {
    let sb = Sandbox::new();
    sb.write(
        "etc/a.yaml",
        "num_workers: 4\n\
         distributed.worker:\n  memory.monitor_interval: 250ms\n\
         distributed:\n  comm:\n    tls:\n      min_version: 1.3\n",
    );
    let c = sb.load().unwrap();
    assert_eq!(c.int("num-workers"), Some(4));
    assert_eq!(c.int("num_workers"), Some(4));
    assert_eq!(
        c.duration("distributed.worker.memory.monitor-interval"),
        Some(Duration::from_millis(250))
    );
    assert_eq!(c.string("distributed.comm.tls.min-version"), Some("1.3"));
}

#[test]
fn environment_rule_nested_names_and_top_level_keys_only() {
    let sb = Sandbox::new()
        .var(
            "OXIDASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL",
            "250ms",
        )
        .var("OXIDASK_DISTRIBUTED__SCHEDULER__WORK_STEALING", "False")
        .var("OXIDASK_DISTRIBUTED__WORKER__MEMORY__MAX_SPILL", "10 GB")
        .var("OXIDASK_DISTRIBUTED__SCHEDULER__IDLE_TIMEOUT", "1h")
        .var("OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN", "0123e4")
        .var("OXIDASK_DISTRIBUTED__COMM__TLS__CA_FILE", "'quoted'.pem")
        .var("OXIDASK_NUM_WORKERS", "4")
        .var("OXIDASK_SCHEDULER", "threading")
        // Not configuration: no `__` and not a top-level key.
        .var("OXIDASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:8786")
        .var("OXIDASK_LOG", "debug")
        .var("OXIDASK_RUST_BIN", "/nowhere")
        .var("OXIDASK_FUZZ_SECS", "x")
        .var("DASK_DISTRIBUTED__WORKER__MEMORY__TARGET", "0.1");
    let c = sb.load().unwrap();
    assert_eq!(
        c.duration("distributed.worker.memory.monitor-interval"),
        Some(Duration::from_millis(250))
    );
    assert_eq!(c.bool("distributed.scheduler.work-stealing"), Some(false));
    assert_eq!(
        c.size("distributed.worker.memory.max-spill"),
        Some(10_000_000_000)
    );
    assert_eq!(
        c.duration("distributed.scheduler.idle-timeout"),
        Some(Duration::from_secs(3600))
    );
    // Text keys take a variable's text as it is, not as a YAML number.
    assert_eq!(c.string("distributed.comm.auth.token"), Some("0123e4"));
    assert_eq!(
        c.path("distributed.comm.tls.ca-file"),
        Some(std::path::Path::new("'quoted'.pem"))
    );
    assert_eq!(c.int("num-workers"), Some(4));
    assert_eq!(c.string("scheduler"), Some("threads"));
    assert_eq!(c.fraction(TARGET), Some(0.6));
    assert_eq!(
        oxidask_config::key_of_var("OXIDASK_SCHEDULER_ADDRESS"),
        None
    );
    assert_eq!(oxidask_config::key_of_var("OXIDASK_CONFIG"), None);
    assert_eq!(
        oxidask_config::key_of_var("OXIDASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT").as_deref(),
        Some("distributed.comm.timeouts.connect")
    );
}

#[test]
fn null_and_false_turn_things_off() {
    let sb = Sandbox::new()
        .var("OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGET", "false")
        .var("OXIDASK_DISTRIBUTED__SCHEDULER__WORKER_TTL", "null")
        .var("OXIDASK_DATAFRAME__BLOCKSIZE", "~");
    let c = sb.load().unwrap();
    assert_eq!(c.fraction(TARGET), None);
    assert_eq!(c.value(TARGET).unwrap(), &oxidask_config::Value::Off);
    assert_eq!(c.duration("distributed.scheduler.worker-ttl"), None);
    assert_eq!(c.size("dataframe.blocksize"), None);
}

#[test]
fn defaults_are_dasks_and_todays() {
    let c = Config::defaults();
    let d = |k: &str| c.duration(k);
    assert_eq!(c.fraction("distributed.worker.memory.target"), Some(0.6));
    assert_eq!(c.fraction("distributed.worker.memory.spill"), Some(0.7));
    assert_eq!(c.fraction("distributed.worker.memory.pause"), Some(0.8));
    assert_eq!(
        c.fraction("distributed.worker.memory.terminate"),
        Some(0.95)
    );
    assert_eq!(c.size("distributed.worker.memory.max-spill"), None);
    assert_eq!(
        c.string("distributed.worker.memory.spill-compression"),
        Some("auto")
    );
    assert_eq!(
        d("distributed.worker.memory.monitor-interval"),
        Some(Duration::from_millis(100))
    );
    assert_eq!(c.int("distributed.worker.connections.outgoing"), Some(50));
    assert_eq!(c.int("distributed.worker.connections.incoming"), Some(10));
    assert_eq!(
        c.size("distributed.worker.transfer.message-bytes-limit"),
        Some(50_000_000)
    );
    assert_eq!(c.int("distributed.scheduler.allowed-failures"), Some(3));
    assert_eq!(c.bool("distributed.scheduler.work-stealing"), Some(true));
    assert_eq!(
        d("distributed.scheduler.worker-ttl"),
        Some(Duration::from_secs(300))
    );
    assert_eq!(d("distributed.scheduler.idle-timeout"), None);
    assert_eq!(
        d("distributed.comm.timeouts.connect"),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        d("distributed.comm.timeouts.tcp"),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        d("distributed.comm.timeouts.handshake"),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        d("distributed.comm.retry.delay.min"),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        d("distributed.comm.retry.delay.max"),
        Some(Duration::from_secs(20))
    );
    assert_eq!(c.int("distributed.comm.retry.count"), Some(0));
    assert_eq!(c.bool("distributed.comm.require-encryption"), None);
    assert_eq!(c.string("distributed.comm.auth.token"), None);
    assert_eq!(c.path("distributed.comm.tls.ca-file"), None);
    assert_eq!(c.string("distributed.comm.tls.min-version"), Some("1.2"));
    assert_eq!(
        c.size("distributed.comm.limits.max-frame-bytes"),
        Some(8 << 30)
    );
    assert_eq!(
        c.size("distributed.comm.limits.max-header-bytes"),
        Some(256 << 20)
    );
    assert_eq!(
        c.int("distributed.comm.limits.max-frame-parts"),
        Some(1 << 20)
    );
    assert_eq!(
        c.int("distributed.comm.limits.connections-per-peer"),
        Some(1024)
    );
    assert_eq!(
        d("distributed.client.heartbeat"),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        c.string("distributed.dashboard.link"),
        Some("{scheme}://{host}:{port}/status")
    );
    assert_eq!(c.int("distributed.admin.log-length"), Some(10_000));
    assert_eq!(c.string("scheduler"), None);
    assert_eq!(c.int("num-workers"), None);
    assert_eq!(c.size("array.chunk-size"), Some(128 << 20));
    assert_eq!(c.int("array.split-every"), Some(16));
    assert_eq!(c.size("dataframe.blocksize"), Some(64 << 20));
    assert_eq!(c.int("dataframe.split-every"), Some(8));
    assert_eq!(c.string("dataframe.shuffle.method"), None);
    assert!(c.effective().all(|(_, _, s)| *s == Source::Default));
}

#[test]
fn printed_configuration_reads_back() {
    let sb = Sandbox::new()
        .var("OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGET", "0.25")
        .var("OXIDASK_DISTRIBUTED__WORKER__MEMORY__PAUSE", "false")
        .var(
            "OXIDASK_DISTRIBUTED__COMM__TLS__CA_FILE",
            "/etc/ssl/my ca.pem",
        )
        .var(
            "OXIDASK_DISTRIBUTED__DASHBOARD__LINK",
            "http://{host}:{port}/status # here",
        )
        .var("OXIDASK_DISTRIBUTED__WORKER__LIFETIME__STAGGER", "1.5s")
        .var("OXIDASK_SCHEDULER", "sync");
    let c = sb.load().unwrap();
    let text = c.render();
    assert!(
        text.contains("distributed.worker.memory.target: 0.25")
            && text.contains("# environment variable OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGET")
            && text.contains("array.chunk-size: 128MiB")
            && text.contains("# default"),
        "{text}"
    );
    let printed = sb.write("printed/all.yaml", &text);
    let back = Config::load_from(&Environment::from_vars([
        ("OXIDASK_ROOT_CONFIG", path_str(&sb.root().join("nowhere"))),
        ("OXIDASK_CONFIG", path_str(&printed)),
    ]))
    .unwrap();
    for ((k, v, _), (k2, v2, s2)) in c.effective().zip(back.effective()) {
        assert_eq!((k, v), (k2, v2));
        assert_eq!(s2, &Source::File(printed.clone()));
    }
}

#[test]
fn secrets_are_never_printed() {
    let c = Sandbox::new()
        .var("OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN", "hunter2")
        .load()
        .unwrap();
    let text = c.render();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("distributed.comm.auth.token: \"***\""),
        "{text}"
    );
    assert!(Config::defaults()
        .render()
        .contains("distributed.comm.auth.token: null"));
}

#[test]
fn spill_compression_reads_dasks_codec_names_and_turns_off() {
    let key = "distributed.worker.memory.spill-compression";
    for (written, read) in [
        ("lz4", Some("zstd")),
        ("zlib", Some("zstd")),
        ("zstd", Some("zstd")),
        ("auto", Some("auto")),
        ("false", None),
        ("null", None),
    ] {
        let sb = Sandbox::new();
        sb.write(
            "etc/a.yaml",
            &format!("distributed:\n  worker:\n    memory:\n      spill-compression: {written}\n"),
        );
        assert_eq!(sb.load().unwrap().string(key), read, "{written}");
    }
    let e = Sandbox::new()
        .var(
            "OXIDASK_DISTRIBUTED__WORKER__MEMORY__SPILL_COMPRESSION",
            "brotli",
        )
        .error();
    assert!(e.contains("expected one of auto, zstd"), "{e}");
}
