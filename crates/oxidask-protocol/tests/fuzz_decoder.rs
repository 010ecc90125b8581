//! Runs the decoder's fuzz target (`oxidask_protocol::fuzz::fuzz_one`) for a bounded time on
//! mutations of valid frames: bit flips, truncations, insertions, splices and length fields
//! set to extremes. Deterministic for a given seed; a panic prints the seed and the input.
//!
//! `OXIDASK_FUZZ_SECS` (default 5) sets the budget; `OXIDASK_FUZZ_SEED` replays a seed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use oxidask_core::{Key, Token};
use oxidask_protocol::frame::encode_batch;
use oxidask_protocol::fuzz::fuzz_one;
use oxidask_protocol::*;

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

/// Valid inputs for `fuzz_one`: a part count byte, then a header and its parts.
fn corpus() -> Vec<Vec<u8>> {
    let value = WireValue {
        type_name: "i64".into(),
        bytes: Payload(Bytes::from_static(&[7, 0, 0, 0, 0, 0, 0, 0])),
        buffers: vec![Payload(Bytes::from_static(b"out of band"))],
    };
    let spec = WireSpec::Call {
        op: "examples::inc".into(),
        args: vec![
            WireArg::Key(key(1)),
            WireArg::Value(value.clone()),
            WireArg::List(vec![WireArg::Key(key(2))]),
        ],
    };
    let task = WireTask::new(key(3), &spec, vec![key(1), key(2)]);
    let mut out = Vec::new();
    let mut add = |header: Vec<u8>, parts: Vec<Bytes>| {
        let mut v = vec![parts.len() as u8];
        v.extend(header);
        for p in parts {
            v.extend_from_slice(&p);
        }
        out.push(v);
    };
    let (h, p) = encode_batch(&[ToScheduler::UpdateGraph {
        tasks: vec![task.clone()],
        wanted: vec![key(3)],
        options: SubmitOptions {
            retries: 2,
            resources: vec![("GPU".into(), 1.0)],
            workers: vec!["w1".into()],
            allow_other_workers: true,
            priority: 3,
        },
        more: false,
    }]);
    add(h, p);
    let (h, p) = encode_batch(&[ToWorker::Compute {
        task,
        who_has: vec![(key(1), vec!["127.0.0.1:1".into()])],
        priority: (0, 4),
    }]);
    add(h, p);
    let (h, p) = encode_batch(&[FromWorker::Erred {
        key: key(4),
        error: WireError::invalid("boom"),
    }]);
    add(h, p);
    let (h, p) = encode_batch(&[DataResponse::Values {
        values: vec![
            (key(5), Fetched::Value(value)),
            (key(6), Fetched::Missing),
            (key(7), Fetched::Unsendable("cannot pickle".into())),
        ],
    }]);
    add(h, p);
    let (h, p) = encode_batch(&[hello(Role::Client { name: "c".into() })]);
    add(h, p);
    out.push(
        std::iter::once(0)
            .chain(encode_detached(&spec).0.iter().copied())
            .collect(),
    );
    out
}

use oxidask_protocol::frame::encode_detached;

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
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
    let corpus = corpus();
    for c in &corpus {
        fuzz_one(c);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut rng = Rng(seed);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..256 {
            let mut input = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &mut input, &corpus);
            let r = std::panic::catch_unwind(|| fuzz_one(&input));
            assert!(
                r.is_ok(),
                "the decoder panicked (seed {seed}, run {runs}) on {:02x?}",
                input
            );
            runs += 1;
        }
    }
    eprintln!("fuzzed the decoder with {runs} inputs in {secs} s (seed {seed})");
    assert!(runs > 1000);
}
