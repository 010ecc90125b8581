//! The decoder's fuzz target: every way bytes from a peer are decoded, on arbitrary input.
//! It must return (an error or a value), never panic, and never allocate in proportion to a
//! length field instead of to the input.
//!
//! Run it for a bounded time on stable Rust with the `fuzz_decoder_for_a_bounded_time` test
//! (`OXIDASK_FUZZ_SECS` sets the budget), or with libFuzzer:
//! `cd crates/oxidask-protocol/fuzz && cargo +nightly fuzz run decode`.

use bytes::Bytes;

use crate::frame::{decode_batch, decode_detached, Payload};
use crate::{
    spec_from_wire, DataRequest, DataResponse, FromWorker, Hello, HelloReply, ToClient,
    ToScheduler, ToWorker, WireSpec,
};

/// Decodes `data` every way the wire does. The first byte picks how many payload parts the
/// rest is split into, so payload references are exercised too.
///
/// # Panics
/// If a decoder panicked, even though the decode boundary turned the panic into an error
/// ([`crate::frame::decode_panics_caught`]): that is a codec bug for the fuzzer to report.
pub fn fuzz_one(data: &[u8]) {
    let caught = crate::frame::decode_panics_caught();
    fuzz_all(data);
    assert_eq!(
        crate::frame::decode_panics_caught(),
        caught,
        "a decoder panicked (the panic was caught at the decode boundary; see the message above)"
    );
}

fn fuzz_all(data: &[u8]) {
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
    let _ = decode_batch::<ToScheduler>(header, parts.clone());
    let _ = decode_batch::<ToClient>(header, parts.clone());
    let _ = decode_batch::<ToWorker>(header, parts.clone());
    if let Ok(msgs) = decode_batch::<FromWorker>(header, parts.clone()) {
        drop(msgs);
    }
    let _ = decode_batch::<DataRequest>(header, parts.clone());
    let _ = decode_batch::<DataResponse>(header, parts.clone());
    let _ = decode_batch::<Hello>(header, parts.clone());
    let _ = decode_batch::<HelloReply>(header, parts);
    let spec = Payload(Bytes::copy_from_slice(rest));
    if let Ok(s) = decode_detached::<WireSpec>(&spec) {
        // Resolving names and decoding literal values must fail cleanly too.
        let _ = spec_from_wire(&s);
    }
}
