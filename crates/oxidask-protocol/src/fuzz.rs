//! Fuzz targets: every way bytes from a peer are decoded, on arbitrary input. Each must
//! return (an error or a value), never panic — not even a panic the decode boundary catches
//! ([`crate::frame::catch_decode`]), since that is still a codec bug — never recurse without
//! bound and never allocate in proportion to a length field instead of to the input.
//!
//! One target per decoder: a message direction ([`Target::ToScheduler`] …), a task spec
//! ([`Target::Spec`]) and frame reading from a byte stream ([`Target::Frames`]); [`fuzz_one`]
//! runs them all. They run for a bounded time on stable Rust in the
//! `fuzz_decoder_for_a_bounded_time` test (`OXIDASK_FUZZ_SECS` sets the budget), and under
//! libFuzzer from the `fuzz/` crate at the top of the repository
//! (`cargo +nightly fuzz run to_scheduler`; see `fuzz/Cargo.toml`).

use std::future::Future;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::frame::{decode_batch, decode_detached, decode_panics_caught, Limits, Payload};
use crate::{
    read_frame, spec_from_wire, DataRequest, DataResponse, FromWorker, Hello, HelloReply, ToClient,
    ToScheduler, ToWorker, WireSpec,
};

/// One decoder to fuzz.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Client → scheduler batches.
    ToScheduler,
    /// Scheduler → client batches.
    ToClient,
    /// Scheduler → worker batches.
    ToWorker,
    /// Worker → scheduler batches.
    FromWorker,
    /// Peer → data port batches.
    DataRequest,
    /// Data port → peer batches.
    DataResponse,
    /// Handshake hellos.
    Hello,
    /// Handshake replies.
    HelloReply,
    /// A task's detached spec, then resolving its names and decoding its literal values.
    Spec,
    /// Frames read from a byte stream (prefix, part lengths, header, parts), as a
    /// scheduler's connection reads them, until the stream ends or fails.
    Frames,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 10] = [
        Target::ToScheduler,
        Target::ToClient,
        Target::ToWorker,
        Target::FromWorker,
        Target::DataRequest,
        Target::DataResponse,
        Target::Hello,
        Target::HelloReply,
        Target::Spec,
        Target::Frames,
    ];
}

/// Runs `target` on `data`.
///
/// For the batch targets the first byte picks how many payload parts the rest is split into
/// (so payload references are exercised too), the rest is the header and the parts.
///
/// # Panics
/// If a decoder panicked, even though the decode boundary turned the panic into an error:
/// that is a codec bug for the fuzzer to report.
pub fn fuzz_target(target: Target, data: &[u8]) {
    let caught = decode_panics_caught();
    match target {
        Target::ToScheduler => batch::<ToScheduler>(data),
        Target::ToClient => batch::<ToClient>(data),
        Target::ToWorker => batch::<ToWorker>(data),
        Target::FromWorker => batch::<FromWorker>(data),
        Target::DataRequest => batch::<DataRequest>(data),
        Target::DataResponse => batch::<DataResponse>(data),
        Target::Hello => batch::<Hello>(data),
        Target::HelloReply => batch::<HelloReply>(data),
        Target::Spec => spec(data),
        Target::Frames => frames(data),
    }
    assert_eq!(
        decode_panics_caught(),
        caught,
        "a decoder panicked on {target:?} input (the panic was caught at the decode boundary; see the message above)"
    );
}

/// Runs every target on `data`.
///
/// # Panics
/// As [`fuzz_target`].
pub fn fuzz_one(data: &[u8]) {
    for t in Target::ALL {
        fuzz_target(t, data);
    }
}

fn batch<M: oxidask_core::Data>(data: &[u8]) {
    let Some((&nparts, rest)) = data.split_first() else {
        return;
    };
    let nparts = (nparts % 4) as usize;
    let cut = rest.len() / (nparts + 1);
    let header = &rest[..rest.len() - cut * nparts];
    let parts: Vec<Bytes> = (0..nparts)
        .map(|i| {
            let start = header.len() + i * cut;
            Bytes::copy_from_slice(&rest[start..start + cut])
        })
        .collect();
    let _ = decode_batch::<M>(header, parts);
}

fn spec(data: &[u8]) {
    let spec = Payload(Bytes::copy_from_slice(data));
    if let Ok(s) = decode_detached::<WireSpec>(&spec) {
        // Resolving names and decoding literal values must fail cleanly too.
        let _ = spec_from_wire(&s);
    }
}

fn frames(data: &[u8]) {
    let mut rd = data;
    // The scheduler's limits, so declared sizes up to them (256 MiB headers, 8 GiB of
    // payload) are exercised. Reading from a byte slice never waits.
    for _ in 0..64 {
        match poll_ready(read_frame::<_, ToScheduler>(&mut rd, &Limits::default())) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
}

/// Drives a future that never waits (it reads from memory) to its end.
fn poll_ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("reading frames from memory kept waiting");
}
