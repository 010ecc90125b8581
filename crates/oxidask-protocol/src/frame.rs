//! Framing: batches of messages, with value payloads as separate parts.
//!
//! ```text
//! u32 header_len | u32 n_parts | n_parts × u64 part_len | header | part 0 | part 1 | …
//! ```
//! The header is the encoded batch (`Vec<M>`); every [`Payload`] inside it is written as an
//! index into the parts, and its bytes follow as their own part. Writing never copies a
//! payload into the header; reading hands payloads out as slices of one receive buffer.
//!
//! # Invariants
//! - Every length is checked against [`Limits`] before anything is allocated, and buffers
//!   grow with the bytes that arrive, not with the sizes a peer declares; a hostile or
//!   corrupt frame is an error, never a crash or an allocation larger than what was sent.
//! - A decoded header must use exactly its bytes, and payload indices must exist.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use oxidask_core::codec::{CodecError, Reader, Writer};
use oxidask_core::Data;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::wire::PrefixAdmission;
use crate::ProtocolError;

/// Size limits for incoming frames.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest header (the encoded messages without payloads).
    pub max_header: usize,
    /// Most payload parts in one frame.
    pub max_parts: usize,
    /// Largest total of payload bytes in one frame.
    pub max_payload: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header: 256 << 20,
            max_parts: 1 << 20,
            max_payload: 8 << 30,
        }
    }
}

/// Bytes carried next to the header rather than inside it (a task's literal, a result).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Payload(pub Bytes);

thread_local! {
    static OUT_PARTS: RefCell<Option<Vec<Bytes>>> = const { RefCell::new(None) };
    static IN_PARTS: RefCell<Option<Vec<Bytes>>> = const { RefCell::new(None) };
}

impl Data for Payload {
    fn heap_bytes(&self) -> usize {
        self.0.len()
    }

    fn encode(&self, w: &mut Writer<'_>) {
        let index = OUT_PARTS.with(|p| {
            let mut p = p.borrow_mut();
            p.as_mut().map(|parts| {
                parts.push(self.0.clone());
                parts.len() - 1
            })
        });
        match index {
            Some(i) => {
                w.put_u8(1);
                w.put_len(i);
            }
            None => {
                // Outside a frame (tokenizing, tests): inline.
                w.put_u8(0);
                w.put_len(self.0.len());
                w.put_bytes(&self.0);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.get_u8("payload tag")? {
            0 => {
                let len = r.get_len("payload", 1)?;
                Ok(Payload(Bytes::copy_from_slice(r.take(len, "payload")?)))
            }
            1 => {
                let i = r.get_len("payload index", 0)?;
                IN_PARTS.with(|p| {
                    p.borrow()
                        .as_ref()
                        .and_then(|parts| parts.get(i).cloned())
                        .map(Payload)
                        .ok_or(CodecError::Invalid {
                            what: "payload index",
                            detail: format!("part {i} is not in the frame"),
                        })
                })
            }
            t => Err(CodecError::Invalid {
                what: "payload tag",
                detail: format!("tag {t}"),
            }),
        }
    }
}

/// Encodes `value` on its own, payloads inline, e.g. a task spec that travels as one opaque
/// payload part and is decoded only where it runs.
pub fn encode_detached<T: Data>(value: &T) -> Payload {
    let saved = OUT_PARTS.with(|p| p.borrow_mut().take());
    let mut buf = Vec::new();
    value.encode(&mut Writer::new(&mut buf));
    OUT_PARTS.with(|p| *p.borrow_mut() = saved);
    Payload(Bytes::from(buf))
}

thread_local! {
    static PANICS_CAUGHT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many decoder panics [`catch_decode`] turned into errors on this thread: a fuzzer
/// checks it, since a caught panic is still a bug to fix.
pub fn decode_panics_caught() -> u64 {
    PANICS_CAUGHT.with(|n| n.get())
}

/// Runs `decode`, a decode of a peer's bytes, turning a panic into an error: a codec bug
/// (ours or a type's) triggered by one peer's input fails that input, and with it that
/// connection or that task, instead of killing the thread that serves everyone. The panic
/// message is printed by the panic hook as usual and carried in the error, which the
/// connection's owner logs.
///
/// Unwind safety: a decode builds new values from bytes; the per-thread decode state it
/// touches (payload parts, prefix admission) is reset by the callers and guards, and the
/// interner's lock recovers from poisoning.
pub fn catch_decode<T>(
    what: &'static str,
    decode: impl FnOnce() -> Result<T, CodecError>,
) -> Result<T, CodecError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(result) => result,
        Err(panic) => {
            PANICS_CAUGHT.with(|n| n.set(n.get() + 1));
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(CodecError::Invalid {
                what,
                detail: format!(
                    "its decoder panicked ({message}), so it was refused; this is a bug in oxidask or in a type's codec: please report it with this message"
                ),
            })
        }
    }
}

/// Decodes what [`encode_detached`] wrote; it must use exactly its bytes. A panicking
/// decoder is an error (see [`catch_decode`]).
pub fn decode_detached<T: Data>(payload: &Payload) -> Result<T, CodecError> {
    let saved = IN_PARTS.with(|p| p.borrow_mut().take());
    let out = catch_decode("detached value", || {
        let mut r = Reader::new(&payload.0);
        T::decode(&mut r).and_then(|v| r.finish().map(|_| v))
    });
    IN_PARTS.with(|p| *p.borrow_mut() = saved);
    out
}

/// Encodes a batch into (header, parts).
pub fn encode_batch<M: Data>(msgs: &[M]) -> (Vec<u8>, Vec<Bytes>) {
    OUT_PARTS.with(|p| *p.borrow_mut() = Some(Vec::new()));
    let mut header = Vec::new();
    {
        let mut w = Writer::new(&mut header);
        w.put_len(msgs.len());
        for m in msgs {
            m.encode(&mut w);
        }
    }
    let parts = OUT_PARTS
        .with(|p| p.borrow_mut().take())
        .unwrap_or_default();
    (header, parts)
}

/// Decodes a batch from a header and its parts, key prefixes it did not know yet counted
/// against `admission` (see [`PrefixAdmission`]).
pub fn decode_batch_admitting<M: Data>(
    header: &[u8],
    parts: Vec<Bytes>,
    admission: &mut PrefixAdmission,
) -> Result<Vec<M>, ProtocolError> {
    admission.scope(|| decode_batch(header, parts))
}

/// Decodes a batch from a header and its parts. A panicking decoder is an error for this
/// frame (see [`catch_decode`]), so the connection's reader ends with an error and the
/// thread goes on serving others.
pub fn decode_batch<M: Data>(header: &[u8], parts: Vec<Bytes>) -> Result<Vec<M>, ProtocolError> {
    IN_PARTS.with(|p| *p.borrow_mut() = Some(parts));
    let result = catch_decode("frame", || {
        let mut r = Reader::new(header);
        let n = r.get_len("batch length", 1)?;
        let mut out = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            out.push(M::decode(&mut r)?);
        }
        r.finish()?;
        Ok::<_, CodecError>(out)
    });
    IN_PARTS.with(|p| *p.borrow_mut() = None);
    result.map_err(ProtocolError::Decode)
}

/// Writes one frame holding `msgs`.
pub async fn write_frame<W: AsyncWrite + Unpin, M: Data>(
    w: &mut W,
    msgs: &[M],
) -> Result<(), ProtocolError> {
    let (header, parts) = encode_batch(msgs);
    let mut prefix = Vec::with_capacity(8 + 8 * parts.len());
    prefix.extend_from_slice(&(header.len() as u32).to_le_bytes());
    prefix.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for p in &parts {
        prefix.extend_from_slice(&(p.len() as u64).to_le_bytes());
    }
    w.write_all(&prefix).await?;
    w.write_all(&header).await?;
    for p in &parts {
        w.write_all(p).await?;
    }
    w.flush().await?;
    Ok(())
}

/// The most a read reserves ahead of the bytes that have arrived: buffers grow with what
/// the peer actually sends, never with what its length fields declare.
pub const READ_CHUNK: usize = 1 << 20;

/// Appends exactly `n` bytes from `r` to `buf`, growing `buf` as they arrive: each growth is
/// at most `max(READ_CHUNK, bytes already in buf)`, so the capacity stays below twice what
/// arrived plus one chunk, however large `n` is.
async fn read_growing<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    n: usize,
) -> Result<(), ProtocolError> {
    let mut remaining = n;
    while remaining > 0 {
        if buf.capacity() == buf.len() {
            buf.reserve(remaining.min(READ_CHUNK.max(buf.len())));
        }
        let got = (&mut *r).take(remaining as u64).read_buf(buf).await?;
        if got == 0 {
            return Err(ProtocolError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the peer closed the connection with {remaining} bytes of a frame still to come"),
            )));
        }
        remaining -= got;
    }
    Ok(())
}

/// Reads one frame from a peer whose new key prefixes count against `admission` (each
/// connection's reader keeps one; see [`PrefixAdmission`]). Otherwise as [`read_frame`].
pub async fn read_frame_admitting<R: AsyncRead + Unpin, M: Data>(
    r: &mut R,
    limits: &Limits,
    admission: &mut PrefixAdmission,
) -> Result<Option<Vec<M>>, ProtocolError> {
    match read_frame_parts(r, limits).await? {
        None => Ok(None),
        Some((header, parts)) => decode_batch_admitting(&header, parts, admission).map(Some),
    }
}

/// Reads one frame. `Ok(None)` at a clean end of stream (between frames).
///
/// Lengths are checked against `limits`, then the header and the payloads are read into two
/// buffers that grow as bytes arrive (see [`READ_CHUNK`]): a peer that declares 8 GiB and
/// sends nothing costs one chunk, not 8 GiB. Payloads are slices of one buffer.
pub async fn read_frame<R: AsyncRead + Unpin, M: Data>(
    r: &mut R,
    limits: &Limits,
) -> Result<Option<Vec<M>>, ProtocolError> {
    match read_frame_parts(r, limits).await? {
        None => Ok(None),
        Some((header, parts)) => decode_batch(&header, parts).map(Some),
    }
}

/// Reads one frame's header and parts, undecoded.
async fn read_frame_parts<R: AsyncRead + Unpin>(
    r: &mut R,
    limits: &Limits,
) -> Result<Option<(BytesMut, Vec<Bytes>)>, ProtocolError> {
    let mut pre = [0u8; 8];
    match r.read_exact(&mut pre[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut pre[1..]).await?;
    let header_len = u32::from_le_bytes(pre[..4].try_into().expect("4 bytes")) as usize;
    let nparts = u32::from_le_bytes(pre[4..].try_into().expect("4 bytes")) as usize;
    if header_len > limits.max_header {
        return Err(ProtocolError::TooLarge {
            what: "header",
            size: header_len,
            limit: limits.max_header,
        });
    }
    if nparts > limits.max_parts {
        return Err(ProtocolError::TooLarge {
            what: "part count",
            size: nparts,
            limit: limits.max_parts,
        });
    }
    // Part lengths arrive in batches too: a declared million parts costs nothing until
    // their lengths come.
    let mut lens = Vec::new();
    let mut total: usize = 0;
    let mut raw = [0u8; 8 * 512];
    let mut left = nparts;
    while left > 0 {
        let batch = left.min(512);
        r.read_exact(&mut raw[..batch * 8]).await?;
        for c in raw[..batch * 8].chunks_exact(8) {
            let len = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            let len = usize::try_from(len).map_err(|_| ProtocolError::TooLarge {
                what: "part",
                size: usize::MAX,
                limit: limits.max_payload,
            })?;
            total = total
                .checked_add(len)
                .filter(|&t| t <= limits.max_payload)
                .ok_or(ProtocolError::TooLarge {
                    what: "payload",
                    size: total.saturating_add(len),
                    limit: limits.max_payload,
                })?;
            lens.push(len);
        }
        left -= batch;
    }
    // The header has a buffer of its own, so the payloads a receiver keeps (task specs held
    // by the scheduler, values held by a worker) do not keep the header's bytes alive.
    let mut header = BytesMut::new();
    read_growing(r, &mut header, header_len).await?;
    let mut body = BytesMut::new();
    read_growing(r, &mut body, total).await?;
    let mut body = body.freeze();
    let parts = lens.into_iter().map(|l| body.split_to(l)).collect();
    Ok(Some((header, parts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
    #[data(crate = oxidask_core)]
    struct Msg {
        id: u64,
        payload: Payload,
    }

    #[tokio::test]
    async fn payloads_travel_as_parts() {
        let msgs = vec![
            Msg {
                id: 1,
                payload: Payload(Bytes::from(vec![7u8; 100_000])),
            },
            Msg {
                id: 2,
                payload: Payload(Bytes::new()),
            },
        ];
        let (header, parts) = encode_batch(&msgs);
        assert!(header.len() < 64, "payload bytes stayed out of the header");
        assert_eq!(parts.len(), 2);
        let mut buf = Vec::new();
        write_frame(&mut buf, &msgs).await.unwrap();
        let mut rd = &buf[..];
        let back: Vec<Msg> = read_frame(&mut rd, &Limits::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, msgs);
        // Zero copy: the payloads are slices of one receive buffer, back to back.
        let first = back[0].payload.0.as_ptr() as usize;
        assert_eq!(back[1].payload.0.as_ptr() as usize, first + 100_000);
        let end: Option<Vec<Msg>> = read_frame(&mut rd, &Limits::default()).await.unwrap();
        assert!(end.is_none());
    }

    #[tokio::test]
    async fn oversized_and_truncated_frames_are_errors() {
        let limits = Limits {
            max_header: 16,
            max_parts: 4,
            max_payload: 1024,
        };
        let mut big = Vec::new();
        big.extend_from_slice(&1000u32.to_le_bytes());
        big.extend_from_slice(&0u32.to_le_bytes());
        let mut rd = &big[..];
        let e = read_frame::<_, Msg>(&mut rd, &limits).await.unwrap_err();
        assert!(matches!(e, ProtocolError::TooLarge { .. }), "{e}");
        let mut huge_part = Vec::new();
        huge_part.extend_from_slice(&1u32.to_le_bytes());
        huge_part.extend_from_slice(&1u32.to_le_bytes());
        huge_part.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut rd = &huge_part[..];
        assert!(read_frame::<_, Msg>(&mut rd, &limits).await.is_err());
        let mut ok = Vec::new();
        write_frame(
            &mut ok,
            &[Msg {
                id: 3,
                payload: Payload(Bytes::from_static(b"abc")),
            }],
        )
        .await
        .unwrap();
        let mut rd = &ok[..ok.len() - 1];
        assert!(read_frame::<_, Msg>(&mut rd, &Limits::default())
            .await
            .is_err());
    }
}
