//! Decoding values by type name, in any process built from the same source.
//!
//! A value that crosses a process boundary travels as its type's name and its encoding. The
//! receiver finds the decoder for that name here: `#[task]` registers every parameter and result
//! type of every operation, `#[derive(Data)]` registers the type it derives for, and the
//! common types are registered below. So workers can decode their inputs and clients their
//! results without knowing the types statically.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

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

type Decoder = fn(&[u8]) -> Result<Value, CodecError>;

fn table() -> &'static RwLock<HashMap<&'static str, Decoder>> {
    static TABLE: OnceLock<RwLock<HashMap<&'static str, Decoder>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut m = HashMap::new();
        for c in inventory::iter::<TypeCodec> {
            m.insert((c.name)(), c.decode);
        }
        RwLock::new(m)
    })
}

/// Registers `T`'s decoder at run time (for types no operation mentions).
pub fn register<T: Data>() {
    table()
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(std::any::type_name::<T>(), decode_as::<T>);
}

/// Decodes a value of the named type.
pub fn decode_named(type_name: &str, bytes: &[u8]) -> Result<Value, CodecError> {
    let decoder = table()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(type_name)
        .copied()
        .ok_or_else(|| CodecError::Invalid {
            what: "value",
            detail: format!(
                "no decoder for type `{type_name}` in this binary; is it built from the same source as its sender (and is the type used by some #[task] or #[derive(Data)])?"
            ),
        })?;
    decoder(bytes)
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
    }
}
