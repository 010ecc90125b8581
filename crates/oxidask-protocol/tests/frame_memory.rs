//! Reading a frame allocates in proportion to the bytes that arrived, not to the sizes the
//! peer declared: measured with a counting allocator (per thread, so parallel tests do not
//! disturb each other; every test runs its reads on a current-thread runtime).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use bytes::Bytes;
use oxidask_protocol::{read_frame, write_frame, Limits, Payload, ProtocolError, ToScheduler};
use tokio::io::AsyncWriteExt;

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

/// Runs `f` on a current-thread runtime and returns its output and the most this thread had
/// allocated at once, beyond what it held when `f` started.
fn measured<T>(f: impl std::future::Future<Output = T>) -> (T, usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let base = NOW.with(|n| n.get());
    PEAK.with(|p| p.set(base));
    let out = rt.block_on(f);
    let peak = PEAK.with(|p| p.get()) - base;
    drop(rt);
    (out, peak.max(0) as usize)
}

const MIB: usize = 1 << 20;

fn prefix(header_len: u32, part_lens: &[u64]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&header_len.to_le_bytes());
    v.extend_from_slice(&(part_lens.len() as u32).to_le_bytes());
    for l in part_lens {
        v.extend_from_slice(&l.to_le_bytes());
    }
    v
}

#[test]
fn regression_declared_200_mib_header_then_close_allocates_little() {
    let bytes = prefix(200 << 20, &[]);
    let (result, peak) = measured(async {
        let mut rd = &bytes[..];
        read_frame::<_, ToScheduler>(&mut rd, &Limits::default()).await
    });
    let e = result.unwrap_err();
    assert!(
        matches!(&e, ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof),
        "{e}"
    );
    assert!(e.to_string().contains("closed"), "{e}");
    assert!(
        peak < 4 * MIB,
        "allocated {peak} bytes for a frame that sent 8"
    );
}

#[test]
fn regression_declared_8_gib_payload_then_stall_allocates_little() {
    let (pending, peak) = measured(async {
        let (mut tx, mut rx) = tokio::io::duplex(1 << 16);
        tx.write_all(&prefix(0, &[8 << 30])).await.unwrap();
        tx.write_all(&[0u8; 1000]).await.unwrap();
        // The peer stalls: the read waits, holding what arrived and one chunk at most.
        let read =
            tokio::spawn(
                async move { read_frame::<_, ToScheduler>(&mut rx, &Limits::default()).await },
            );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stalled = !read.is_finished();
        drop(tx);
        let closed = read.await.unwrap();
        (stalled, closed.is_err())
    });
    assert_eq!(pending, (true, true), "(stalled, error once closed)");
    assert!(
        peak < 4 * MIB,
        "allocated {peak} bytes for 8 GiB declared, 1 kB sent"
    );
}

#[test]
fn regression_a_million_declared_parts_allocate_with_their_lengths() {
    let mut bytes = 0u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&(1u32 << 20).to_le_bytes());
    bytes.extend_from_slice(&[0u8; 80]);
    let (result, peak) = measured(async {
        let mut rd = &bytes[..];
        read_frame::<_, ToScheduler>(&mut rd, &Limits::default()).await
    });
    assert!(result.is_err());
    assert!(
        peak < MIB,
        "allocated {peak} bytes for 10 part lengths sent"
    );
}

#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
struct Blob {
    payload: Payload,
}

#[test]
fn a_large_frame_arriving_in_pieces_reads_whole_with_bounded_overhead() {
    let msg = Blob {
        payload: Payload(Bytes::from(
            (0..(5 * MIB) as u32).map(|i| i as u8).collect::<Vec<_>>(),
        )),
    };
    let mut frame = Vec::new();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(write_frame(&mut frame, std::slice::from_ref(&msg)))
        .unwrap();
    let (back, peak) = measured(async {
        let (mut tx, mut rx) = tokio::io::duplex(64 << 10);
        let writer = async {
            for piece in frame.chunks(100_000) {
                tx.write_all(piece).await.unwrap();
            }
        };
        let limits = Limits::default();
        let (_, back) = tokio::join!(writer, read_frame::<_, Blob>(&mut rx, &limits));
        back.unwrap().unwrap()
    });
    assert_eq!(back, vec![msg]);
    // What arrived (5 MiB), at most as much again from doubling, one chunk, the duplex pipe.
    assert!(peak < 12 * MIB, "allocated {peak} bytes to read 5 MiB");
}
