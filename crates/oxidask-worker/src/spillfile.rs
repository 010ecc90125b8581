//! The spill file format, and compression when it pays.
//!
//! A file is `b"OXSP" | u8 codec | u64 body_len | u32 n_buffers | u64 head_len | n × u64
//! buffer_len | body`, where the body is the value's encoded head followed by its buffers
//! (the codec's [`oxidask_core::Encoded`] parts), stored as they are (`codec` 0) or as one
//! zstd frame (`codec` 1). The body is compressed only when a sample of it (its first MiB,
//! zstd level 1) shrinks below 90% of its size: numbers with structure and text compress,
//! random floats do not and are written as they are, costing one sample's compression.
//!
//! Reading checks every length against the file: a truncated or corrupt file is an error,
//! never a short or garbage value. Nothing here touches the worker's state: the worker's
//! shell encodes and writes outside its lock ([`crate::state::SpillJob`]).

use oxidask_core::{Encoded, Value};

const MAGIC: &[u8; 4] = b"OXSP";
/// The fixed part before the buffer lengths.
const FIXED: usize = 4 + 1 + 8 + 4 + 8;
/// Bytes of the body compressed to decide whether compressing pays.
const SAMPLE: usize = 1 << 20;
/// Compress when the sample's compressed size is below this fraction of its size.
const PAYS_BELOW: f64 = 0.9;
/// zstd's fastest level: spilling is on the path of a worker short of memory.
const LEVEL: i32 = 1;

/// How a spill file's body is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    Raw = 0,
    Zstd = 1,
}

/// Whether compressing `body` pays, judged on its first MiB.
fn pays(body: &[u8]) -> bool {
    let sample = &body[..body.len().min(SAMPLE)];
    if sample.len() < 64 {
        return false;
    }
    match zstd::bulk::compress(sample, LEVEL) {
        Ok(c) => (c.len() as f64) < sample.len() as f64 * PAYS_BELOW,
        Err(_) => false,
    }
}

/// The file for `parts`, compressed when it pays (`compress`: whether to consider it).
pub(crate) fn encode(parts: &Encoded, compress: bool) -> (Vec<u8>, Codec) {
    let mut body = Vec::with_capacity(parts.len());
    body.extend_from_slice(&parts.head);
    for b in &parts.buffers {
        body.extend_from_slice(b);
    }
    let (codec, body) = if compress && pays(&body) {
        match zstd::bulk::compress(&body, LEVEL) {
            Ok(c) if c.len() < body.len() => (Codec::Zstd, c),
            _ => (Codec::Raw, body),
        }
    } else {
        (Codec::Raw, body)
    };
    let mut out = Vec::with_capacity(FIXED + 8 * parts.buffers.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.push(codec as u8);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&(parts.buffers.len() as u32).to_le_bytes());
    out.extend_from_slice(&(parts.head.len() as u64).to_le_bytes());
    for b in &parts.buffers {
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    }
    out.extend_from_slice(&body);
    (out, codec)
}

/// Decodes what [`encode`] wrote; an uncompressed body's buffers are slices of the file.
pub(crate) fn decode(type_name: &str, file: bytes::Bytes) -> Result<Value, String> {
    let bad = || "the spill file is truncated or corrupt".to_owned();
    let u64_at = |at: usize| -> Result<usize, String> {
        file.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
            .ok_or_else(bad)
    };
    if file.get(..4) != Some(&MAGIC[..]) {
        return Err(bad());
    }
    let codec = *file.get(4).ok_or_else(bad)?;
    let body_len = u64_at(5)?;
    let n = file
        .get(13..17)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        .ok_or_else(bad)?;
    let head_len = u64_at(17)?;
    let mut lens = Vec::with_capacity(n.min(1 << 16));
    let mut raw_len = head_len;
    for i in 0..n {
        let len = u64_at(FIXED + 8 * i)?;
        raw_len = raw_len.checked_add(len).ok_or_else(bad)?;
        lens.push(len);
    }
    let start = FIXED + 8 * n;
    if start.checked_add(body_len) != Some(file.len()) {
        return Err(bad());
    }
    let body = match codec {
        0 if body_len == raw_len => file.slice(start..),
        1 => {
            let out = zstd::bulk::decompress(&file[start..], raw_len)
                .map_err(|e| format!("the spill file is corrupt: {e}"))?;
            if out.len() != raw_len {
                return Err(bad());
            }
            bytes::Bytes::from(out)
        }
        _ => return Err(bad()),
    };
    let head = body.slice(..head_len);
    let mut at = head_len;
    let mut buffers = Vec::with_capacity(n);
    for len in lens {
        buffers.push(body.slice(at..at + len));
        at += len;
    }
    oxidask_core::codecs::decode_parts(type_name, &head, buffers).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuses_every_truncation(type_name: &str, file: &[u8]) {
        for cut in 0..file.len() {
            assert!(
                decode(type_name, bytes::Bytes::copy_from_slice(&file[..cut])).is_err(),
                "a file cut at {cut} of {} bytes was read",
                file.len()
            );
        }
    }

    #[test]
    fn spill_files_round_trip_and_refuse_truncation() {
        let v = Value::new(vec![1.5f64, 2.5]);
        let (file, codec) = encode(&v.encode_parts().unwrap(), true);
        assert_eq!(codec, Codec::Raw, "16 bytes are not worth compressing");
        let back = decode(v.type_name(), bytes::Bytes::from(file.clone())).unwrap();
        assert_eq!(back.downcast_ref::<Vec<f64>>(), Some(&vec![1.5, 2.5]));
        refuses_every_truncation(v.type_name(), &file);
    }

    #[test]
    fn compressible_values_are_compressed_and_read_back_exactly() {
        let data: Vec<i64> = (0..20_000).map(|i| i % 100).collect();
        let v = Value::new(data.clone());
        let parts = v.encode_parts().unwrap();
        let (file, codec) = encode(&parts, true);
        assert_eq!(codec, Codec::Zstd);
        assert!(
            file.len() < parts.len() / 4,
            "{} bytes on disk for {}",
            file.len(),
            parts.len()
        );
        let back = decode(v.type_name(), bytes::Bytes::from(file.clone())).unwrap();
        assert_eq!(back.downcast_ref::<Vec<i64>>(), Some(&data));
        refuses_every_truncation(v.type_name(), &file);
        // A flipped byte in the compressed body is an error, not a different value.
        let mut bad = file.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(decode(v.type_name(), bytes::Bytes::from(bad)).is_err());
        // Without compression the same value is stored as it is.
        let (plain, codec) = encode(&parts, false);
        assert_eq!(codec, Codec::Raw);
        assert!(plain.len() > parts.len());
        let back = decode(v.type_name(), bytes::Bytes::from(plain)).unwrap();
        assert_eq!(back.downcast_ref::<Vec<i64>>(), Some(&data));
    }

    #[test]
    fn incompressible_values_are_written_as_they_are() {
        // A xorshift stream: no structure for zstd to find.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u64> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            })
            .collect();
        let v = Value::new(data.clone());
        let (file, codec) = encode(&v.encode_parts().unwrap(), true);
        assert_eq!(codec, Codec::Raw);
        let back = decode(v.type_name(), bytes::Bytes::from(file)).unwrap();
        assert_eq!(back.downcast_ref::<Vec<u64>>(), Some(&data));
    }
}
