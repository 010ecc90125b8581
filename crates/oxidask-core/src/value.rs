//! [`Value`]: a task's result, shared without copying.
//!
//! A value is an `Arc` of any `Send + Sync` type plus its exact size in bytes and, for
//! [`Data`] types, the codec used only when the value must leave the process. Values owned by
//! another language runtime (a Python object) are [`Foreign`]: they bring their own codec,
//! which may fail and may hand large buffers over without copying them. On the local
//! schedulers nothing is ever encoded: results move between tasks as `Arc`s, and the last task
//! to use a result receives it by value (no clone) because the scheduler hands over its own
//! reference first.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{CodecError, Writer};
use crate::data::Data;
use crate::op::TaskFailure;
use crate::tokenize::{Token, Tokenizer};

/// A value's encoding in parts: `head`, the codec's own bytes, and `buffers`, large byte
/// ranges that travel as they are (out of band) instead of being copied into the head.
///
/// [`Data`] values write only a head; a [`Foreign`] value may hand over buffers it owns (a
/// NumPy array's memory, pickled with protocol 5), which go on the wire as separate frame
/// parts and come back to its decoder as separate slices.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The codec's bytes.
    pub head: Vec<u8>,
    /// Buffers sent without copying, in the order the decoder expects them.
    pub buffers: Vec<Bytes>,
}

impl Encoded {
    /// Total bytes of the head and the buffers.
    pub fn len(&self) -> usize {
        self.head.len() + self.buffers.iter().map(Bytes::len).sum::<usize>()
    }

    /// True if there is nothing at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A value owned by another language runtime (a Python object), with its own codec.
///
/// Unlike [`Data`], encoding may fail (an object that cannot be pickled) and may produce
/// out-of-band buffers. The decoder is found by [`Foreign::codec_name`] in the table of
/// [`crate::codecs`]; register it with [`crate::codecs::register_foreign`].
pub trait Foreign: Any + Send + Sync {
    /// Bytes the value occupies in memory, as well as the runtime can tell.
    fn nbytes(&self) -> usize;

    /// The name its decoder is registered under (also what `Value::type_name` reports).
    fn codec_name(&self) -> &'static str;

    /// Writes the value into `out`: bytes into the head, large buffers as parts.
    fn encode(&self, out: &mut Encoded) -> Result<(), CodecError>;

    /// A content token, if the runtime can make one; `None` makes the value's token unique.
    fn token(&self) -> Option<Token> {
        None
    }
}

/// A task result or a literal argument.
///
/// ```
/// use oxidask_core::Value;
/// let v = Value::new(vec![1.0f64, 2.0]);
/// assert_eq!(v.downcast_ref::<Vec<f64>>(), Some(&vec![1.0, 2.0]));
/// assert!(v.nbytes() >= 16);
/// let back: Vec<f64> = v.take().unwrap();
/// assert_eq!(back.len(), 2);
/// ```
#[derive(Clone)]
pub struct Value(Arc<dyn Erased>);

trait Erased: Any + Send + Sync {
    fn nbytes(&self) -> usize;
    fn type_name(&self) -> &'static str;
    fn encode(&self, out: &mut Encoded) -> Result<(), CodecError>;
    fn tokenize(&self, t: &mut Tokenizer) -> bool;
    fn has_codec(&self) -> bool;
    fn is_foreign(&self) -> bool {
        false
    }
}

/// A [`Foreign`] value.
struct ForeignHeld<T> {
    value: T,
}

impl<T: Foreign> Erased for ForeignHeld<T> {
    fn nbytes(&self) -> usize {
        self.value.nbytes()
    }

    fn type_name(&self) -> &'static str {
        self.value.codec_name()
    }

    fn encode(&self, out: &mut Encoded) -> Result<(), CodecError> {
        self.value.encode(out)
    }

    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        match self.value.token() {
            Some(tok) => {
                t.write_token(tok);
                true
            }
            None => false,
        }
    }

    fn has_codec(&self) -> bool {
        true
    }

    fn is_foreign(&self) -> bool {
        true
    }
}

/// A [`Data`] value with its size measured once (`heap_bytes` may walk the value).
struct Held<T> {
    nbytes: usize,
    value: T,
}

/// A value of any type, local to this process.
struct Opaque<T> {
    value: T,
}

impl<T: Data> Erased for Held<T> {
    fn nbytes(&self) -> usize {
        self.nbytes
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }

    fn encode(&self, out: &mut Encoded) -> Result<(), CodecError> {
        self.value.encode(&mut Writer::new(&mut out.head));
        Ok(())
    }

    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_data(&self.value);
        true
    }

    fn has_codec(&self) -> bool {
        true
    }
}

impl<T: Any + Send + Sync> Erased for Opaque<T> {
    fn nbytes(&self) -> usize {
        std::mem::size_of::<T>()
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }

    fn encode(&self, _: &mut Encoded) -> Result<(), CodecError> {
        Err(CodecError::NotEncodable {
            type_name: std::any::type_name::<T>(),
        })
    }

    fn tokenize(&self, _: &mut Tokenizer) -> bool {
        false
    }

    fn has_codec(&self) -> bool {
        false
    }
}

impl Value {
    /// Wraps a [`Data`] value: measurable, tokenizable, and able to travel.
    pub fn new<T: Data>(value: T) -> Value {
        Value(Arc::new(Held {
            nbytes: value.nbytes(),
            value,
        }))
    }

    /// Wraps any value for local use only (closure results on the local schedulers).
    ///
    /// Its size is `size_of::<T>()`: heap it owns is not known without [`Data`].
    pub fn opaque<T: Any + Send + Sync>(value: T) -> Value {
        Value(Arc::new(Opaque { value }))
    }

    /// Wraps a value of another runtime (a Python object), with the codec it brings.
    pub fn foreign<T: Foreign>(value: T) -> Value {
        Value(Arc::new(ForeignHeld { value }))
    }

    /// Bytes the value occupies in memory (exact for [`Data`] types).
    pub fn nbytes(&self) -> usize {
        self.0.nbytes()
    }

    /// The Rust type's name (a foreign value's codec name), for messages and decoding.
    pub fn type_name(&self) -> &'static str {
        self.0.type_name()
    }

    /// True if the value has a codec and so may leave the process.
    pub fn is_encodable(&self) -> bool {
        self.0.has_codec()
    }

    /// Borrows the value as `T`, or `None` if it holds another type.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.0;
        if let Some(h) = any.downcast_ref::<Held<T>>() {
            return Some(&h.value);
        }
        if let Some(o) = any.downcast_ref::<Opaque<T>>() {
            return Some(&o.value);
        }
        any.downcast_ref::<ForeignHeld<T>>().map(|f| &f.value)
    }

    /// True if the value is [`Foreign`] (owned by another runtime).
    pub fn is_foreign(&self) -> bool {
        // Foreign values name their codec; every other kind reports a Rust type name.
        self.0.is_foreign()
    }

    /// Takes the value as `T`: without copying if this was the last reference, by cloning
    /// otherwise.
    pub fn take<T: Any + Clone + Send + Sync>(self) -> Result<T, TaskFailure> {
        let found = self.type_name();
        let any: Arc<dyn Any + Send + Sync> = self.0;
        match any.downcast::<Held<T>>() {
            Ok(held) => Ok(match Arc::try_unwrap(held) {
                Ok(h) => h.value,
                Err(shared) => shared.value.clone(),
            }),
            Err(any) => match any.downcast::<Opaque<T>>() {
                Ok(op) => Ok(match Arc::try_unwrap(op) {
                    Ok(o) => o.value,
                    Err(shared) => shared.value.clone(),
                }),
                Err(_) => Err(TaskFailure::type_mismatch(
                    std::any::type_name::<T>(),
                    found,
                )),
            },
        }
    }

    /// Appends the value's encoding to `out`. A value whose codec hands out buffers (a
    /// foreign value) is refused here: use [`Value::encode_parts`].
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let mut parts = Encoded {
            head: std::mem::take(out),
            buffers: Vec::new(),
        };
        let r = self.0.encode(&mut parts);
        *out = parts.head;
        r?;
        if !parts.buffers.is_empty() {
            return Err(CodecError::Invalid {
                what: "value",
                detail: format!(
                    "a `{}` encodes to out-of-band buffers; encode it with `encode_parts`",
                    self.type_name()
                ),
            });
        }
        Ok(())
    }

    /// Encodes the value into a head and out-of-band buffers.
    pub fn encode_parts(&self) -> Result<Encoded, CodecError> {
        let mut parts = Encoded::default();
        self.0.encode(&mut parts)?;
        Ok(parts)
    }

    /// Adds the value to a tokenizer; `false` (and nothing written) if it has no codec.
    pub fn tokenize_into(&self, t: &mut Tokenizer) -> bool {
        self.0.tokenize(t)
    }

    /// The value's content token, or a unique token if it has no codec.
    pub fn token(&self) -> Token {
        let mut t = Tokenizer::new();
        if self.tokenize_into(&mut t) {
            t.finish()
        } else {
            Token::unique()
        }
    }

    /// True if both handles point at the same allocation.
    pub fn ptr_eq(&self, other: &Value) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value<{}>({} bytes)", self.type_name(), self.nbytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_reference_moves_without_clone() {
        let v = Value::new(vec![1u8; 1000]);
        let ptr = v.downcast_ref::<Vec<u8>>().unwrap().as_ptr();
        let out: Vec<u8> = v.take().unwrap();
        assert_eq!(out.as_ptr(), ptr, "the buffer was copied");
    }

    #[test]
    fn shared_value_is_cloned() {
        let v = Value::new(String::from("x"));
        let keep = v.clone();
        let out: String = v.take().unwrap();
        assert_eq!(out, "x");
        assert_eq!(keep.downcast_ref::<String>().unwrap(), "x");
    }

    #[test]
    fn wrong_type_names_both_types() {
        let err = Value::new(1i64).take::<f64>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("f64") && msg.contains("i64"), "{msg}");
    }

    #[test]
    fn opaque_values_refuse_to_encode() {
        struct Local;
        let v = Value::opaque(std::sync::Mutex::new(Local));
        let err = v.encode(&mut Vec::new()).unwrap_err();
        assert!(matches!(err, CodecError::NotEncodable { .. }));
        assert!(!v.is_encodable());
    }
}
