//! Values set in code: scoped, nestable, visible to every thread, restored on drop.

use std::time::Duration;

use oxidask_config::{Config, Flags, Overlay, Source};

const CONNECT: &str = "distributed.comm.timeouts.connect";

fn connect(o: &Overlay) -> Option<Duration> {
    o.current().unwrap().duration(CONNECT)
}

#[test]
fn a_set_holds_until_its_guard_drops() {
    let o = Overlay::new(Config::defaults());
    {
        let _g = o.set(CONNECT, "5s").unwrap();
        assert_eq!(connect(&o), Some(Duration::from_secs(5)));
    }
    assert_eq!(connect(&o), Some(Duration::from_secs(30)));
    assert_eq!(
        o.current().unwrap().source_of(CONNECT).unwrap(),
        &Source::Default
    );
}

#[test]
fn sets_nest_and_restore_the_outer_value() {
    let o = Overlay::new(Config::defaults());
    let outer = o.set(CONNECT, Duration::from_secs(1)).unwrap();
    {
        let _inner = o.set(CONNECT, 2).unwrap();
        assert_eq!(connect(&o), Some(Duration::from_secs(2)));
        {
            let _innermost = o.set(CONNECT, 2.5).unwrap();
            assert_eq!(connect(&o), Some(Duration::from_millis(2500)));
        }
        assert_eq!(connect(&o), Some(Duration::from_secs(2)));
    }
    assert_eq!(connect(&o), Some(Duration::from_secs(1)));
    drop(outer);
    assert_eq!(connect(&o), Some(Duration::from_secs(30)));
}

#[test]
fn guards_may_drop_in_any_order() {
    let o = Overlay::new(Config::defaults());
    let a = o.set(CONNECT, "1s").unwrap();
    let b = o.set(CONNECT, "2s").unwrap();
    drop(a);
    assert_eq!(
        connect(&o),
        Some(Duration::from_secs(2)),
        "the later set still holds"
    );
    drop(b);
    assert_eq!(connect(&o), Some(Duration::from_secs(30)));
}

#[test]
fn set_all_sets_everything_or_nothing() {
    let o = Overlay::new(Config::defaults());
    let err = o
        .set_all([(CONNECT, "1s"), ("distributed.worker.memory.target", "2")])
        .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    assert_eq!(connect(&o), Some(Duration::from_secs(30)));
    let _g = o
        .set_all([(CONNECT, "1s"), ("distributed.comm.timeouts.tcp", "2s")])
        .unwrap();
    let c = o.current().unwrap();
    assert_eq!(
        c.duration("distributed.comm.timeouts.tcp"),
        Some(Duration::from_secs(2))
    );
    assert_eq!(connect(&o), Some(Duration::from_secs(1)));
}

#[test]
fn values_set_on_one_thread_are_seen_on_every_thread() {
    let o = Overlay::new(Config::defaults());
    let guard = std::thread::scope(|s| s.spawn(|| o.set(CONNECT, "7s").unwrap()).join().unwrap());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(connect(&o), Some(Duration::from_secs(7))));
        }
    });
    // Guards are Send: another thread may end the scope.
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert_eq!(connect(&o), Some(Duration::from_secs(30)));
}

#[test]
fn many_threads_setting_and_reading_leave_it_as_it_was() {
    let o = Overlay::new(Config::defaults());
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let o = &o;
            s.spawn(move || {
                for i in 0..200u64 {
                    let _g = o
                        .set(CONNECT, Duration::from_millis(t * 1000 + i + 1))
                        .unwrap();
                    assert_ne!(connect(o), Some(Duration::from_secs(30)));
                }
            });
        }
    });
    assert_eq!(connect(&o), Some(Duration::from_secs(30)));
}

#[test]
fn flags_replace_flags_and_rank_above_code() {
    let o = Overlay::new(Config::defaults());
    let _g = o.set(CONNECT, "1s").unwrap();
    let mut flags = Flags::new();
    flags
        .set_some("--connect-timeout", CONNECT, Some("3s"))
        .unwrap();
    flags
        .set_some(
            "--tcp-timeout",
            "distributed.comm.timeouts.tcp",
            None::<&str>,
        )
        .unwrap();
    o.set_flags(flags);
    assert_eq!(connect(&o), Some(Duration::from_secs(3)));
    assert_eq!(
        o.current()
            .unwrap()
            .source_of("distributed.comm.timeouts.tcp")
            .unwrap(),
        &Source::Default
    );
    o.set_flags(Flags::new());
    assert_eq!(connect(&o), Some(Duration::from_secs(1)));
}

#[test]
fn the_process_wide_configuration_is_scoped_too() {
    // Another key than other tests use: the global configuration is shared by the binary.
    let key = "distributed.worker.lifetime.stagger";
    let before = oxidask_config::global().unwrap().duration(key);
    {
        let (_g, line) = (oxidask_config::set(key, "42s").unwrap(), line!());
        let c = oxidask_config::global().unwrap();
        assert_eq!(c.duration(key), Some(Duration::from_secs(42)));
        assert_eq!(
            c.source_of(key).unwrap().to_string(),
            format!("oxidask_config::set at {}:{line}", file!())
        );
        let seen = std::thread::spawn(move || oxidask_config::global().unwrap().duration(key));
        assert_eq!(seen.join().unwrap(), Some(Duration::from_secs(42)));
    }
    assert_eq!(oxidask_config::global().unwrap().duration(key), before);
}
