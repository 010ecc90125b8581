//! Blocking work called from async code: what runs on the caller's thread must not panic or
//! stall when that thread drives a Tokio runtime (a `#[tokio::main]` program).
//!
//! Polars blocks on a runtime of its own while it plans and reads (even `collect_schema`
//! does), through `tokio::task::block_in_place`, which panics on a current-thread runtime
//! ("can call blocking only when running on the multi-threaded runtime"). Work of ours that
//! calls Polars on the caller's thread — schemas while a frame is built, listing and schema
//! reads in the readers, the read and write tasks that the synchronous scheduler runs in
//! place — goes through [`outside_async_runtime`]. (Our own S3 calls are safe anywhere on
//! their own: see `storage::block_on`.)

use polars::prelude::{LazyFrame, PolarsResult, SchemaRef};

/// Runs `f` on this thread, or — when this thread is inside a Tokio runtime — on a thread of
/// its own, waiting for it. Outside a runtime this costs one thread-local lookup.
pub(crate) fn outside_async_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("oxidask-blocking".into())
            .spawn_scoped(s, f)
            .expect("a thread starts")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// `lf.collect_schema()`, safe to call from async code.
pub(crate) fn collect_schema(mut lf: LazyFrame) -> PolarsResult<SchemaRef> {
    outside_async_runtime(move || lf.collect_schema())
}
