//! Decoding values by type name, in any process built from the same source.
//!
//! A value that crosses a process boundary travels as its type's name and its encoding. The
//! receiver finds the decoder for that name here: `#[task]` registers every parameter and result
//! type of every operation, `#[derive(Data)]` registers the type it derives for, and the
//! common types are registered below. So workers can decode their inputs and clients their
//! results without knowing the types statically.
//!
//! Values of another runtime ([`Foreign`](crate::value::Foreign), e.g. Python objects) register
//! a decoder that takes the head and the out-of-band buffers ([`register_foreign`]).

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use bytes::Bytes;

use crate::codec::CodecError;
use crate::data::{decode, Data};
use crate::value::Value;

/// A decoder for one type, registered at link time.
pub struct TypeCodec {
    /// The type's name (`std::any::type_name`).
    pub name: fn() -> &'static str,
    /// Decodes a whole buffer into a value of the type.
    pub decode: fn(&[u8]) -> Result<Value, CodecError>,
}

impl TypeCodec {
    /// The codec of `T` (usable in statics).
    pub const fn of<T: Data>() -> TypeCodec {
        TypeCodec {
            name: std::any::type_name::<T>,
            decode: decode_as::<T>,
        }
    }
}

inventory::collect!(TypeCodec);

/// Decodes `bytes` as a `T` into a value.
pub fn decode_as<T: Data>(bytes: &[u8]) -> Result<Value, CodecError> {
    Ok(Value::new(decode::<T>(bytes)?))
}

/// Decodes a foreign value from its head and its out-of-band buffers.
pub type ForeignDecoder = fn(&[u8], Vec<Bytes>) -> Result<Value, CodecError>;

#[derive(Clone, Copy)]
enum Decoder {
    Data(fn(&[u8]) -> Result<Value, CodecError>),
    Foreign(ForeignDecoder),
}

fn table() -> &'static RwLock<HashMap<&'static str, Decoder>> {
    static TABLE: OnceLock<RwLock<HashMap<&'static str, Decoder>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut m = HashMap::new();
        for c in inventory::iter::<TypeCodec> {
            m.insert((c.name)(), Decoder::Data(c.decode));
        }
        RwLock::new(m)
    })
}

fn decoder(type_name: &str) -> Result<Decoder, CodecError> {
    table()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(type_name)
        .copied()
        .ok_or_else(|| CodecError::Invalid {
            what: "value",
            detail: format!(
                "no decoder for type `{type_name}` in this binary; is it built from the same source as its sender (and is the type used by some #[task] or #[derive(Data)])?"
            ),
        })
}

/// Registers `T`'s decoder at run time (for types no operation mentions).
pub fn register<T: Data>() {
    table()
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(std::any::type_name::<T>(), Decoder::Data(decode_as::<T>));
}

/// Registers the decoder of a foreign value kind under its codec name (what
/// [`Foreign::codec_name`](crate::value::Foreign::codec_name) returns).
pub fn register_foreign(codec_name: &'static str, decode: ForeignDecoder) {
    table()
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(codec_name, Decoder::Foreign(decode));
}

/// Decodes a value of the named type.
pub fn decode_named(type_name: &str, bytes: &[u8]) -> Result<Value, CodecError> {
    decode_parts(type_name, bytes, Vec::new())
}

/// Decodes a value of the named type from a head and out-of-band buffers (see
/// [`Value::encode_parts`]).
pub fn decode_parts(
    type_name: &str,
    head: &[u8],
    buffers: Vec<Bytes>,
) -> Result<Value, CodecError> {
    match decoder(type_name)? {
        Decoder::Data(decode) if buffers.is_empty() => decode(head),
        Decoder::Data(_) => Err(CodecError::Invalid {
            what: "value",
            detail: format!(
                "a `{type_name}` arrived with {} out-of-band buffers; its codec writes none",
                buffers.len()
            ),
        }),
        Decoder::Foreign(decode) => decode(head, buffers),
    }
}

/// True if this binary can decode the named type.
pub fn can_decode(type_name: &str) -> bool {
    table()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(type_name)
}

macro_rules! common {
    ($($t:ty),* $(,)?) => {$(
        inventory::submit! { TypeCodec::of::<$t>() }
    )*};
}

common!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    bytes::Bytes,
    Vec<u8>,
    Vec<u32>,
    Vec<u64>,
    Vec<i32>,
    Vec<i64>,
    Vec<f32>,
    Vec<f64>,
    Vec<String>,
    Vec<bool>,
    Option<i64>,
    Option<f64>,
    Option<String>,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_types_decode_by_name() {
        let v = Value::new(vec![1.5f64, 2.5]);
        let mut bytes = Vec::new();
        v.encode(&mut bytes).unwrap();
        let back = decode_named(v.type_name(), &bytes).unwrap();
        assert_eq!(back.downcast_ref::<Vec<f64>>(), Some(&vec![1.5, 2.5]));
        let err = decode_named("no::such::Type", &bytes)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no::such::Type"), "{err}");
        #[derive(Clone, Debug, PartialEq, crate::Data)]
        #[data(crate = crate)]
        struct Local(u8);
        register::<Local>();
        assert!(can_decode(std::any::type_name::<Local>()));
        let err = decode_parts("f64", &bytes[..8], vec![Bytes::from_static(b"x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("out-of-band"), "{err}");
    }

    /// A foreign value that keeps its payload out of band.
    struct Blob(Bytes);

    impl crate::value::Foreign for Blob {
        fn nbytes(&self) -> usize {
            self.0.len()
        }
        fn codec_name(&self) -> &'static str {
            "test::Blob"
        }
        fn encode(&self, out: &mut crate::value::Encoded) -> Result<(), CodecError> {
            if self.0.is_empty() {
                return Err(CodecError::Foreign {
                    type_name: "test::Blob".into(),
                    message: "empty blobs refuse to travel".into(),
                });
            }
            out.head.push(7);
            out.buffers.push(self.0.clone());
            Ok(())
        }
    }

    fn decode_blob(head: &[u8], mut buffers: Vec<Bytes>) -> Result<Value, CodecError> {
        assert_eq!(head, [7]);
        Ok(Value::foreign(Blob(buffers.pop().unwrap_or_default())))
    }

    #[test]
    fn foreign_values_travel_with_their_buffers_uncopied() {
        register_foreign("test::Blob", decode_blob);
        let data = Bytes::from(vec![9u8; 4096]);
        let v = Value::foreign(Blob(data.clone()));
        assert!(v.is_foreign() && v.is_encodable());
        assert_eq!(v.type_name(), "test::Blob");
        assert_eq!(v.nbytes(), 4096);
        let parts = v.encode_parts().unwrap();
        assert_eq!(parts.head, [7]);
        assert_eq!(
            parts.buffers[0].as_ptr(),
            data.as_ptr(),
            "the buffer was copied"
        );
        let back = decode_parts("test::Blob", &parts.head, parts.buffers).unwrap();
        assert_eq!(
            back.downcast_ref::<Blob>().unwrap().0.as_ptr(),
            data.as_ptr()
        );
        // The one-buffer API refuses values with buffers instead of losing them.
        assert!(v
            .encode(&mut Vec::new())
            .unwrap_err()
            .to_string()
            .contains("encode_parts"));
        // A codec failure is an error naming the type and the reason.
        let err = Value::foreign(Blob(Bytes::new()))
            .encode_parts()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test::Blob") && err.contains("refuse"),
            "{err}"
        );
        assert!(!Value::new(1i64).is_foreign());
    }
}
