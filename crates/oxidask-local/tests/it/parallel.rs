//! The threaded scheduler really runs tasks at the same time (checked by rendezvous, not by
//! timing).

use std::sync::{Arc, Barrier};
use std::time::Duration;

use oxidask_core::{collect, lazy, Collection};
use oxidask_local::Threaded;

#[test]
fn independent_tasks_run_concurrently() {
    // Both tasks wait at a barrier for two parties: this completes only if two threads run
    // them at once. A generous timeout turns a regression into a failure, not a hang.
    let barrier = Arc::new(Barrier::new(2));
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let parts: Vec<_> = (0..2)
            .map(|i| {
                let b = barrier.clone();
                lazy(move || {
                    b.wait();
                    i
                })
            })
            .collect();
        let r = collect(parts).compute_with(&Threaded::new(2));
        let _ = tx.send(r.map_err(|e| e.to_string()));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("two tasks never ran at the same time on a 2-thread pool");
    assert_eq!(result.unwrap(), vec![0, 1]);
    handle.join().unwrap();
}

#[test]
fn results_are_freed_after_their_last_reader() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static LIVE: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);
    struct Tracked(i64);
    impl Tracked {
        fn new(v: i64) -> Tracked {
            let n = LIVE.fetch_add(1, Ordering::SeqCst) + 1;
            PEAK.fetch_max(n, Ordering::SeqCst);
            Tracked(v)
        }
    }
    impl Drop for Tracked {
        fn drop(&mut self) {
            LIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }
    // 200 independent producer -> consumer pairs, consumed into plain numbers.
    let consumed: Vec<_> = (0..200)
        .map(|i| lazy(move || Tracked::new(i)).map(|t: &Tracked| t.0 * 2))
        .collect();
    let out = collect(consumed).compute_with(&Threaded::new(1)).unwrap();
    assert_eq!(
        out.iter().sum::<i64>(),
        (0..200).map(|i| i * 2).sum::<i64>()
    );
    assert_eq!(LIVE.load(Ordering::SeqCst), 0);
    let peak = PEAK.load(Ordering::SeqCst);
    assert!(
        peak <= 2,
        "{peak} intermediates were alive at once; each should go after its reader"
    );
}
