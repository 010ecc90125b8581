//! Freeing big structures off the caller's critical path.
//!
//! A million-task run owns a million tasks, values and slots; freeing them takes tens of
//! milliseconds that the caller of `compute()` should not wait for. They are handed to one
//! background thread that drops them in order. Small runs are dropped in place: the hand-off
//! would cost more than it saves.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

/// Below this many tasks a run is dropped where it is.
pub(crate) const DEFER_ABOVE_TASKS: usize = 50_000;

type Garbage = Box<dyn Send>;

fn sender() -> Option<Sender<Garbage>> {
    static TX: OnceLock<Option<Mutex<Sender<Garbage>>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = channel::<Garbage>();
        std::thread::Builder::new()
            .name("oxidask-dropper".into())
            .spawn(move || {
                for garbage in rx {
                    drop(garbage);
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    })
    .as_ref()
    .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).clone())
}

/// Drops `value` on the background thread (or here, if that thread could not start).
pub(crate) fn drop_later<T: Send + 'static>(value: T) {
    match sender() {
        Some(tx) => {
            if let Err(returned) = tx.send(Box::new(value)) {
                drop(returned.0);
            }
        }
        None => drop(value),
    }
}
