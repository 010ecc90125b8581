//! Specs and messages nested deeper than the codec allows are errors for that task or that
//! connection, never a stack overflow in the worker or the scheduler.

use bytes::Bytes;
use oxidask_core::codec::MAX_NESTING;
use oxidask_core::{CodecError, Key, Token};
use oxidask_protocol::frame::{decode_batch, decode_detached, encode_batch, encode_detached};
use oxidask_protocol::*;

fn key(i: u32) -> WireKey {
    WireKey(Key::block("nest", Token::from_u128(99), &[i]))
}

/// Runs `f` on a thread with a 2 MiB stack, the size of tokio's and the executors' threads.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// The bytes of a value nested `depth` levels, from the encodings of one and two levels (so
/// the test does not restate the codec's layout): every level here adds its bytes in one
/// place (a tag and a length before the inner value, nothing after), so `two` is `one` with
/// one level's bytes inserted, and `depth` levels repeat them `depth - 1` times.
fn nested_bytes(one: &[u8], two: &[u8], depth: usize) -> Vec<u8> {
    let at = one.iter().zip(two).take_while(|(a, b)| a == b).count();
    let level = &two[at..at + (two.len() - one.len())];
    assert_eq!(
        &two[at + level.len()..],
        &one[at..],
        "one insertion per level"
    );
    let mut out = Vec::with_capacity(one.len() + depth * level.len());
    out.extend_from_slice(&one[..at]);
    for _ in 1..depth {
        out.extend_from_slice(level);
    }
    out.extend_from_slice(&one[at..]);
    out
}

fn list(depth: usize) -> WireArg {
    let mut a = WireArg::List(Vec::new());
    for _ in 1..depth {
        a = WireArg::List(vec![a]);
    }
    a
}

fn call(args: Vec<WireArg>) -> WireSpec {
    WireSpec::Call {
        op: "m::f".into(),
        args,
    }
}

#[test]
fn regression_a_spec_with_a_million_nested_argument_lists_is_an_error_not_a_stack_overflow() {
    let one = encode_detached(&call(vec![list(1)])).0;
    let two = encode_detached(&call(vec![list(2)])).0;
    let deep = Payload(Bytes::from(nested_bytes(&one, &two, 1_000_000)));
    let task = WireTask {
        key: key(1),
        spec: deep,
        deps: Vec::new(),
    };
    // The scheduler forwards the spec without decoding it; the worker decodes it.
    let (header, parts) = encode_batch(&[ToWorker::Compute {
        task,
        who_has: Vec::new(),
        priority: (0, 0),
    }]);
    let err = on_small_stack(move || {
        let msgs = decode_batch::<ToWorker>(&header, parts).expect("the frame itself is fine");
        let ToWorker::Compute { task, .. } = &msgs[0] else {
            panic!("a compute message")
        };
        task.decode_spec().unwrap_err()
    });
    assert_eq!(err.key, Some(key(1)), "the error names the task");
    assert!(
        err.message.contains("nested more than 256 levels deep"),
        "{}",
        err.message
    );
}

#[test]
fn regression_fused_specs_nested_a_million_deep_are_an_error() {
    let fused = |inner: WireSpec| WireSpec::Fused(vec![(key(0), inner)]);
    let one = encode_detached(&fused(call(Vec::new()))).0;
    let two = encode_detached(&fused(fused(call(Vec::new())))).0;
    let bytes = Payload(Bytes::from(nested_bytes(&one, &two, 1_000_000)));
    let err = on_small_stack(move || decode_detached::<WireSpec>(&bytes).unwrap_err());
    assert!(matches!(err, CodecError::TooDeep { .. }), "{err}");
}

#[test]
fn regression_a_frame_nesting_a_million_deep_fails_the_frame_only() {
    // A header of a million nested lists, read as a scheduler reads a client's frame.
    let one = encode_detached(&vec![list(1)]).0;
    let two = encode_detached(&vec![list(2)]).0;
    let mut frame = Vec::new();
    let header = nested_bytes(&one, &two, 1_000_000);
    frame.extend_from_slice(&(header.len() as u32).to_le_bytes());
    frame.extend_from_slice(&0u32.to_le_bytes());
    frame.extend_from_slice(&header);
    let err = on_small_stack(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut rd = &frame[..];
            read_frame::<_, WireArg>(&mut rd, &Limits::default()).await
        })
        .unwrap_err()
    });
    assert!(
        matches!(err, ProtocolError::Decode(CodecError::TooDeep { .. })),
        "{err}"
    );
}

#[test]
fn argument_lists_nested_up_to_the_limit_travel() {
    // The spec's argument vector is one level, so lists may nest MAX_NESTING - 1 deep.
    let depth = MAX_NESTING as usize - 1;
    let spec = call(vec![list(depth)]);
    let bytes = encode_detached(&spec);
    let back = on_small_stack(move || decode_detached::<WireSpec>(&bytes));
    assert_eq!(back.unwrap(), spec);
    let too_deep = encode_detached(&call(vec![list(depth + 1)]));
    assert!(matches!(
        decode_detached::<WireSpec>(&too_deep),
        Err(CodecError::TooDeep { .. })
    ));
}
