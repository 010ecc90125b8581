//! The compact binary format values use when they leave the process, and for tokenizing.
//!
//! Numbers are little-endian and fixed width; lengths and enum tags are LEB128 varints;
//! sequences of plain numbers are written as one block of bytes. The format is not
//! self-describing: the reader knows the type it expects (the operation's signature says it).
//!
//! # Invariants
//! - Decoding never trusts a length: it checks the bytes that remain before allocating, so a
//!   hostile or truncated buffer gives a [`CodecError`], never a huge allocation or a panic.
//! - Decoding never recurses without bound: every container that can hold its own type
//!   (`Vec`, `Box`, `Arc`, maps, sets) decodes its items through [`Reader::nested`], which
//!   refuses to go deeper than [`MAX_NESTING`] levels, so a peer nesting a value a million
//!   levels deep gets [`CodecError::TooDeep`], not a stack overflow.
//! - [`Writer`] either appends to a buffer or feeds a [`Tokenizer`]; types whose encoding order
//!   is not deterministic (hash maps) ask [`Writer::is_tokenizing`] and sort their entries.

use crate::tokenize::Tokenizer;

/// Why bytes could not be decoded into the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The buffer ended early.
    #[error("truncated data: needed {needed} more bytes while decoding {what}, {remaining} left")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// A value is outside what the type allows (a bool that is 7, a bad enum tag, …).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being decoded.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Bytes were left over after the value.
    #[error("{0} unexpected trailing bytes after the value")]
    Trailing(usize),
    /// Containers are nested deeper than [`MAX_NESTING`] levels (a list of lists of …).
    #[error("{what} nested more than {limit} levels deep; values and task arguments that cross processes may nest at most {limit} containers (flatten the structure, or keep it in one value with a codec of its own)")]
    TooDeep {
        /// The container that would have gone one level too deep.
        what: &'static str,
        /// The limit ([`MAX_NESTING`]).
        limit: u32,
    },
    /// The value's type has no codec (a closure result, an opaque local value).
    #[error("a value of type `{type_name}` cannot leave this process: it has no codec; implement `oxidask::Data` for it (`#[derive(Data)]`)")]
    NotEncodable {
        /// The Rust type.
        type_name: &'static str,
    },
    /// Another runtime's codec failed (a Python object that cannot be pickled, …).
    #[error("cannot encode a {type_name}: {message}")]
    Foreign {
        /// What was being encoded, as the runtime names it.
        type_name: String,
        /// The runtime's reason.
        message: String,
    },
}

enum Sink<'a> {
    Buffer(&'a mut Vec<u8>),
    Token(&'a mut Tokenizer),
}

/// Where an encoding goes: a byte buffer or a tokenizer.
pub struct Writer<'a> {
    sink: Sink<'a>,
}

impl<'a> Writer<'a> {
    /// A writer that appends to `buf`.
    pub fn new(buf: &'a mut Vec<u8>) -> Writer<'a> {
        Writer {
            sink: Sink::Buffer(buf),
        }
    }

    /// A writer that feeds a tokenizer.
    pub fn tokenizing(t: &'a mut Tokenizer) -> Writer<'a> {
        Writer {
            sink: Sink::Token(t),
        }
    }

    /// True when the encoding is hashed rather than stored: unordered collections must then
    /// write their entries in a canonical order.
    pub fn is_tokenizing(&self) -> bool {
        matches!(self.sink, Sink::Token(_))
    }

    /// Appends raw bytes.
    #[inline]
    pub fn put_bytes(&mut self, bytes: &[u8]) {
        match &mut self.sink {
            Sink::Buffer(b) => b.extend_from_slice(bytes),
            Sink::Token(t) => t.write_bytes(bytes),
        }
    }

    /// Appends one byte.
    #[inline]
    pub fn put_u8(&mut self, v: u8) {
        match &mut self.sink {
            Sink::Buffer(b) => b.push(v),
            Sink::Token(t) => t.write_bytes(&[v]),
        }
    }

    /// Appends an unsigned LEB128 varint.
    #[inline]
    pub fn put_varint(&mut self, mut v: u64) {
        let mut tmp = [0u8; 10];
        let mut n = 0;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                tmp[n] = byte;
                n += 1;
                break;
            }
            tmp[n] = byte | 0x80;
            n += 1;
        }
        self.put_bytes(&tmp[..n]);
    }

    /// Appends a length (a varint).
    #[inline]
    pub fn put_len(&mut self, len: usize) {
        self.put_varint(len as u64);
    }
}

/// How many containers deep a decoded value may nest. Wire messages nest a handful of levels
/// and task arguments rarely more than ten; 256 levels of decoding fit with room to spare in
/// the smallest stacks that decode (2 MiB tokio and executor threads, debug builds).
pub const MAX_NESTING: u32 = 256;

/// Reads an encoding back, checking every length against what remains.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Containers entered and not yet left (see [`Reader::nested`]).
    depth: u32,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            depth: 0,
        }
    }

    /// Decodes one level of nesting with `f`: containers that can hold their own type call
    /// this around decoding their items, so that no input recurses deeper than
    /// [`MAX_NESTING`] levels ([`CodecError::TooDeep`] instead).
    #[inline]
    pub fn nested<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, CodecError>,
    ) -> Result<T, CodecError> {
        if self.depth >= MAX_NESTING {
            return Err(CodecError::TooDeep {
                what,
                limit: MAX_NESTING,
            });
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless everything was read.
    pub fn finish(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(CodecError::Trailing(n)),
        }
    }

    /// Takes the next `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.remaining() < n {
            return Err(CodecError::Truncated {
                what,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes exactly `N` bytes as an array.
    #[inline]
    pub fn take_array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], CodecError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Reads one byte.
    #[inline]
    pub fn get_u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    /// Reads an unsigned LEB128 varint.
    pub fn get_varint(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.get_u8(what)?;
            if shift == 63 && b > 1 {
                return Err(CodecError::Invalid {
                    what,
                    detail: "varint overflows 64 bits".into(),
                });
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Invalid {
            what,
            detail: "varint longer than 10 bytes".into(),
        })
    }

    /// Reads a length and checks that at least `len * min_item_bytes` bytes remain, so a
    /// hostile length cannot make the decoder allocate.
    pub fn get_len(
        &mut self,
        what: &'static str,
        min_item_bytes: usize,
    ) -> Result<usize, CodecError> {
        let len = self.get_varint(what)?;
        let len = usize::try_from(len).map_err(|_| CodecError::Invalid {
            what,
            detail: format!("length {len} does not fit in memory"),
        })?;
        let need = len.saturating_mul(min_item_bytes);
        if need > self.remaining() {
            return Err(CodecError::Truncated {
                what,
                needed: need,
                remaining: self.remaining(),
            });
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [0u64, 1, 127, 128, 16383, 16384, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            Writer::new(&mut buf).put_varint(v);
            let mut r = Reader::new(&buf);
            assert_eq!(r.get_varint("v").unwrap(), v);
            r.finish().unwrap();
        }
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let buf = [0xffu8; 11];
        assert!(Reader::new(&buf).get_varint("v").is_err());
        let buf = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&buf).get_varint("v").is_err());
    }

    #[test]
    fn hostile_length_is_refused_before_allocating() {
        let mut buf = Vec::new();
        Writer::new(&mut buf).put_varint(u64::MAX / 2);
        let err = Reader::new(&buf).get_len("vec", 8).unwrap_err();
        assert!(matches!(
            err,
            CodecError::Truncated { .. } | CodecError::Invalid { .. }
        ));
    }
}
