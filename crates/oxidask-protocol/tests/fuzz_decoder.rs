//! Runs the decoders' fuzz targets (`oxidask_protocol::fuzz`) for a bounded time on
//! mutations of valid inputs: bit flips, truncations, insertions, splices and varints set to
//! extremes, and structure-aware mutations — specs and lists nested far past the decoder's
//! limit, frames whose declared header size, part count and part lengths are set to extremes.
//! Every input must decode to a value or an error without a panic, and without allocating
//! more than a small multiple of its own size (measured by a counting allocator).
//! Deterministic for a given seed; a failure prints the seed, the target and the input.
//!
//! `OXIDASK_FUZZ_SECS` (default 5) sets the budget; `OXIDASK_FUZZ_SEED` replays a seed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use bytes::Bytes;
use oxidask_core::{Key, Token};
use oxidask_protocol::frame::{encode_batch, encode_detached};
use oxidask_protocol::fuzz::{fuzz_target, Target};
use oxidask_protocol::*;

// ---- a per-thread counting allocator -------------------------------------------------------

struct Counting;

thread_local! {
    static NOW: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn add(delta: isize) {
    let _ = NOW.try_with(|n| {
        let v = n.get() + delta;
        n.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

// SAFETY: forwards to the system allocator; the bookkeeping allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's layout is passed through unchanged.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            add(l.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            add(l.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` was allocated by `System` with `l`.
        unsafe { System.dealloc(p, l) };
        add(-(l.size() as isize));
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: `p` was allocated by `System` with `l`.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            add(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most an input may make a decoder allocate at once: a fixed allowance (a frame
/// reader's first chunk, the interner's growth) plus a multiple of the input's size (decoded
/// values are larger than their encodings: an enum of a few hundred bytes per encoded byte
/// at worst). A decoder allocating by a declared length blows through this at once.
fn allowance(input_len: usize) -> usize {
    (4 << 20) + 1024 * input_len
}

// ---- inputs --------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn key(i: u32) -> WireKey {
    WireKey(Key::block(
        "inc",
        Token::from_u128(0xABCD + i as u128),
        &[i, 2],
    ))
}

fn value() -> WireValue {
    WireValue {
        type_name: "i64".into(),
        bytes: Payload(Bytes::from_static(&[7, 0, 0, 0, 0, 0, 0, 0])),
        buffers: vec![Payload(Bytes::from_static(b"out of band"))],
    }
}

fn spec() -> WireSpec {
    WireSpec::Call {
        op: "examples::inc".into(),
        args: vec![
            WireArg::Key(key(1)),
            WireArg::Value(value()),
            WireArg::List(vec![WireArg::Key(key(2))]),
        ],
    }
}

/// A batch target's input: a part count byte, then the header and its parts.
fn batch_input<M: oxidask_core::Data>(msgs: &[M]) -> Vec<u8> {
    let (header, parts) = encode_batch(msgs);
    let mut v = vec![parts.len() as u8];
    v.extend(header);
    for p in parts {
        v.extend_from_slice(&p);
    }
    v
}

/// A frame as it is on the wire.
fn frame<M: oxidask_core::Data>(msgs: &[M]) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(write_frame(&mut out, msgs))
        .unwrap();
    out
}

fn update_graph() -> ToScheduler {
    ToScheduler::UpdateGraph {
        tasks: vec![WireTask::new(key(3), &spec(), vec![key(1), key(2)])],
        wanted: vec![key(3)],
        options: SubmitOptions {
            retries: 2,
            resources: vec![("GPU".into(), 1.0)],
            workers: vec!["w1".into()],
            allow_other_workers: true,
            priority: 3,
            actor: true,
        },
        more: false,
    }
}

/// Valid inputs for each target.
fn corpus(target: Target) -> Vec<Vec<u8>> {
    let task = WireTask::new(key(3), &spec(), vec![key(1), key(2)]);
    match target {
        Target::ToScheduler => vec![
            batch_input(&[update_graph()]),
            batch_input(&[ToScheduler::Coord {
                request: 3,
                op: CoordOp::QueuePut {
                    name: "q".into(),
                    value: CoordValue {
                        data: value().bytes,
                        keys: vec![key(1)],
                    },
                    timeout_ms: Some(5),
                },
            }]),
            batch_input(&[
                ToScheduler::RetireWorkers {
                    request: 4,
                    workers: vec!["w1".into(), "127.0.0.1:2".into()],
                    n: 1,
                },
                ToScheduler::Replicate {
                    request: 5,
                    keys: vec![key(1)],
                    n: 2,
                },
                ToScheduler::Close,
            ]),
        ],
        Target::ToClient => vec![batch_input(&[
            ToClient::KeyInMemory {
                key: key(3),
                type_name: "i64".into(),
                nbytes: 8,
            },
            ToClient::WhoHas {
                request: 1,
                locations: vec![(key(1), vec!["[::1]:1".into()])],
            },
            ToClient::Coord {
                request: 2,
                reply: CoordReply::Events(vec![LoggedEvent {
                    topic: "t".into(),
                    time: 1.5,
                    msg: value().bytes,
                }]),
            },
            ToClient::AdaptiveTarget {
                request: 3,
                target: 2,
                workers_to_close: vec!["127.0.0.1:1".into()],
            },
            ToClient::Moved {
                request: 4,
                copies: 1,
                error: Some("lost".into()),
            },
        ])],
        Target::ToWorker => vec![batch_input(&[
            ToWorker::Compute {
                task,
                who_has: vec![(key(1), vec!["127.0.0.1:1".into()])],
                priority: (0, 4),
            },
            ToWorker::Restart {
                reason: "restart".into(),
            },
            ToWorker::Acquire {
                who_has: vec![(key(2), vec!["127.0.0.1:1".into()])],
            },
        ])],
        Target::FromWorker => vec![batch_input(&[
            FromWorker::Erred {
                key: key(4),
                error: WireError::invalid("boom"),
            },
            FromWorker::LongRunning { key: key(5) },
            FromWorker::Paused { paused: true },
            FromWorker::Acquired {
                keys: vec![(key(2), "i64".into(), 8)],
                missing: vec![key(3)],
            },
            FromWorker::Retire,
            FromWorker::Holding {
                keys: vec![(key(4), "i64".into(), 8)],
            },
        ])],
        Target::DataRequest => vec![batch_input(&[
            DataRequest::Get {
                keys: vec![key(1), key(2)],
            },
            DataRequest::Actor {
                call: 3,
                key: key(1),
                name: "increment".into(),
                attribute: false,
                args: value().bytes,
            },
            DataRequest::ShuffleTake {
                shuffle: (1, 2),
                output: 3,
                inputs: vec![0, 4],
                stamps: vec![7, 9],
            },
        ])],
        Target::DataResponse => vec![
            batch_input(&[
                DataResponse::Values {
                    values: vec![
                        (key(5), Fetched::Value(value())),
                        (key(6), Fetched::Missing),
                        (key(7), Fetched::Unsendable("cannot pickle".into())),
                    ],
                },
                DataResponse::Actor {
                    call: 3,
                    outcome: ActorOutcome::Value(value().bytes),
                },
                DataResponse::Actor {
                    call: 4,
                    outcome: ActorOutcome::Error(WireError::invalid("no actor")),
                },
            ]),
            batch_input(&[DataResponse::Shards {
                shards: vec![(0, value().bytes)],
                missing: vec![4],
            }]),
        ],
        Target::Hello => vec![batch_input(&[hello(Role::Client {
            name: "c".into(),
            id: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            reconnect: true,
        })])],
        Target::HelloReply => vec![batch_input(&[HelloReply::Welcome {
            id: 7,
            dashboard: "127.0.0.1:8787".into(),
        }])],
        Target::Spec => vec![
            encode_detached(&spec()).0.to_vec(),
            encode_detached(&WireSpec::Fused(vec![(key(8), spec())]))
                .0
                .to_vec(),
        ],
        Target::Frames => {
            let mut two = frame(&[update_graph()]);
            two.extend(frame(&[ToScheduler::UpdateGraph {
                tasks: Vec::new(),
                wanted: vec![key(9)],
                options: SubmitOptions::default(),
                more: true,
            }]));
            vec![frame(&[update_graph()]), two]
        }
    }
}

// ---- mutations -----------------------------------------------------------------------------

fn mutate_bytes(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => input.truncate(rng.below(len + 1)),
            3 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(i..i, bytes);
            }
            4 if len > 0 => {
                // An extreme varint (a huge length or count).
                let i = rng.below(len);
                let big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
                input.splice(i..(i + 1).min(len), big);
            }
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                let a = rng.below(other.len() + 1);
                let i = rng.below(len + 1);
                input.splice(i..i, other[a..].iter().copied());
            }
            _ if len > 1 => {
                let i = rng.below(len - 1);
                input.swap(i, i + 1);
            }
            _ => {}
        }
    }
}

/// `one` with the bytes that `two` adds to it (one more level of nesting) repeated to make
/// `depth` levels: see `tests/nesting.rs`.
fn nest(one: &[u8], two: &[u8], depth: usize) -> Vec<u8> {
    let at = one.iter().zip(two).take_while(|(a, b)| a == b).count();
    let level = &two[at..at + (two.len() - one.len())];
    let mut out = one[..at].to_vec();
    for _ in 1..depth {
        out.extend_from_slice(level);
    }
    out.extend_from_slice(&one[at..]);
    out
}

/// A spec (or batch, for batch targets) nested `depth` levels deep.
fn deep_input(target: Target, depth: usize) -> Vec<u8> {
    let list = |d: usize| {
        let mut a = WireArg::Key(key(1));
        for _ in 0..d {
            a = WireArg::List(vec![a]);
        }
        a
    };
    let call = |d: usize| WireSpec::Call {
        op: "m::f".into(),
        args: vec![list(d)],
    };
    match target {
        Target::Spec => nest(
            &encode_detached(&call(1)).0,
            &encode_detached(&call(2)).0,
            depth,
        ),
        Target::Frames => {
            // A frame whose header is a batch of one list nested `depth` deep.
            let (h1, _) = encode_batch(&[list(1)]);
            let (h2, _) = encode_batch(&[list(2)]);
            let header = nest(&h1, &h2, depth);
            let mut f = (header.len() as u32).to_le_bytes().to_vec();
            f.extend_from_slice(&0u32.to_le_bytes());
            f.extend(header);
            f
        }
        _ => {
            let (h1, _) = encode_batch(&[list(1)]);
            let (h2, _) = encode_batch(&[list(2)]);
            let mut v = vec![0u8];
            v.extend(nest(&h1, &h2, depth));
            v
        }
    }
}

/// A frame input whose declared sizes are set to extremes: the header length, the part
/// count or a part's length at, just past and far past the limits, then the stream ends.
fn extreme_frame(rng: &mut Rng, input: &mut Vec<u8>) {
    if input.len() < 8 {
        return;
    }
    // Around the default limits (256 MiB headers, 2^20 parts) and a read chunk (1 MiB).
    let extremes_u32 = [
        0,
        1,
        (1 << 20) - 1,
        (1 << 20) + 1,
        200 << 20,
        256 << 20,
        (256 << 20) + 1,
        u32::MAX,
    ];
    let pick = extremes_u32[rng.below(extremes_u32.len())];
    match rng.below(3) {
        0 => input[..4].copy_from_slice(&pick.to_le_bytes()),
        1 => input[4..8].copy_from_slice(&pick.min((1 << 20) + 1).to_le_bytes()),
        _ => {
            let nparts = u32::from_le_bytes(input[4..8].try_into().unwrap()) as usize;
            if nparts > 0 && input.len() >= 8 + 8 * nparts {
                let i = 8 + 8 * rng.below(nparts);
                let extremes_u64 = [0, (1 << 20) + 1, 8 << 30, (8 << 30) + 1, u64::MAX];
                let len = extremes_u64[rng.below(extremes_u64.len())];
                input[i..i + 8].copy_from_slice(&len.to_le_bytes());
            }
        }
    }
    if rng.below(2) == 0 {
        input.truncate(8 + rng.below(input.len() - 7));
    }
}

fn mutate(rng: &mut Rng, target: Target, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    match rng.below(10) {
        0 => {
            // Nested past the decoder's limit (or just inside it).
            let depth = [255, 256, 257, 1_000, 100_000][rng.below(5)];
            *input = deep_input(target, depth);
            if rng.below(2) == 0 {
                mutate_bytes(rng, input, corpus);
            }
        }
        1 if target == Target::Frames => extreme_frame(rng, input),
        _ => mutate_bytes(rng, input, corpus),
    }
}

// ---- the driver ----------------------------------------------------------------------------

/// Runs `target` on `input`, failing on a panic or an allocation past the allowance.
fn run_one(target: Target, input: &[u8], seed: u64, run: u64) {
    let base = NOW.with(|n| n.get());
    PEAK.with(|p| p.set(base));
    let r = std::panic::catch_unwind(|| fuzz_target(target, input));
    let peak = (PEAK.with(|p| p.get()) - base).max(0) as usize;
    let shown = &input[..input.len().min(256)];
    assert!(
        r.is_ok(),
        "{target:?} panicked (seed {seed}, run {run}) on {} bytes: {shown:02x?}",
        input.len()
    );
    assert!(
        peak <= allowance(input.len()),
        "{target:?} allocated {peak} bytes at once for {} input bytes (seed {seed}, run {run}): {shown:02x?}",
        input.len()
    );
}

#[test]
fn fuzz_decoder_for_a_bounded_time() {
    let secs: f64 = std::env::var("OXIDASK_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let seed: u64 = std::env::var("OXIDASK_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0DA5C);
    let corpora: Vec<(Target, Vec<Vec<u8>>)> =
        Target::ALL.iter().map(|&t| (t, corpus(t))).collect();
    // The corpus itself, and the structure-aware extremes, once each.
    for (t, c) in &corpora {
        for input in c {
            run_one(*t, input, seed, 0);
        }
        for depth in [256, 257, 1_000_000] {
            run_one(*t, &deep_input(*t, depth), seed, 0);
        }
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut rng = Rng(seed);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            let (target, c) = &corpora[rng.below(corpora.len())];
            let mut input = c[rng.below(c.len())].clone();
            mutate(&mut rng, *target, &mut input, c);
            run_one(*target, &input, seed, runs);
            runs += 1;
        }
    }
    eprintln!("fuzzed the decoders with {runs} inputs in {secs} s (seed {seed})");
    assert!(runs > 1000);
}

#[test]
fn every_corpus_input_decodes() {
    // The corpus is valid, so mutations start from inputs that reach deep into the decoders.
    for t in Target::ALL {
        for input in corpus(t) {
            match t {
                Target::Spec => {
                    oxidask_protocol::frame::decode_detached::<WireSpec>(&Payload(Bytes::from(
                        input,
                    )))
                    .unwrap();
                }
                Target::Frames => {
                    let mut rd = &input[..];
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    let first =
                        rt.block_on(read_frame::<_, ToScheduler>(&mut rd, &Limits::default()));
                    assert!(first.unwrap().is_some());
                }
                _ => assert!(input[0] < 4, "{t:?}: a part count the target keeps"),
            }
        }
    }
}
