//! The [`Data`] trait: values that can be tokenized, measured and sent between processes.
//!
//! Everything a registered operation takes or returns implements `Data`: the primitives,
//! `String`, `Bytes`, `Vec`, `Option`, `Result`, tuples, arrays, maps and sets here, and user
//! types through `#[derive(Data)]`. Closures on the local schedulers may return any
//! `Send + Sync` type instead; such values stay in the process.
//!
//! `nbytes` is exact for what the value owns: `size_of::<Self>()` plus the heap bytes it owns
//! (capacity, not length, for growable buffers), which is what memory accounting needs.

mod containers;
#[cfg(feature = "ndarray")]
mod ndarray;
mod primitive;

use crate::codec::{CodecError, Reader, Writer};
use crate::op::{Input, TaskFailure};

/// A value oxidask can tokenize, measure and send between processes.
///
/// ```
/// use oxidask_core::{Data, decode, encode};
///
/// #[derive(Clone, Debug, PartialEq, Data)]
/// #[data(crate = oxidask_core)]
/// struct Reading { station: String, values: Vec<f64> }
///
/// let r = Reading { station: "AMS".into(), values: vec![1.5, 2.5] };
/// let bytes = encode(&r);
/// assert_eq!(decode::<Reading>(&bytes).unwrap(), r);
/// assert!(r.nbytes() >= std::mem::size_of::<Reading>() + 3 + 16);
/// ```
pub trait Data: Clone + Send + Sync + 'static {
    /// Heap bytes this value owns beyond `size_of::<Self>()`.
    fn heap_bytes(&self) -> usize {
        0
    }

    /// Exact bytes this value occupies: its own size plus the heap it owns.
    fn nbytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.heap_bytes()
    }

    /// Writes the value.
    fn encode(&self, w: &mut Writer<'_>);

    /// Reads a value written by [`Data::encode`].
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError>;

    /// Writes many values; plain numbers override this to write one block of bytes.
    #[doc(hidden)]
    fn encode_slice(items: &[Self], w: &mut Writer<'_>) {
        for item in items {
            item.encode(w);
        }
    }

    /// Reads `len` values; plain numbers override this to read one block of bytes.
    #[doc(hidden)]
    fn decode_vec(r: &mut Reader<'_>, len: usize) -> Result<Vec<Self>, CodecError> {
        // Every encoding takes at least zero bytes, so cap the reservation by what remains.
        let mut out = Vec::with_capacity(len.min(r.remaining()));
        for _ in 0..len {
            out.push(Self::decode(r)?);
        }
        Ok(out)
    }

    /// Heap bytes owned by the elements of a slice; plain numbers override this to be O(1).
    #[doc(hidden)]
    fn heap_bytes_slice(items: &[Self]) -> usize {
        items.iter().map(Data::heap_bytes).sum()
    }

    /// Builds the value from a list argument whose items were separate values, some of them
    /// results of other tasks (`sum(vec![inc(1), inc(2)])`). Only `Vec` accepts lists.
    #[doc(hidden)]
    fn from_list(items: Vec<Input>) -> Result<Self, TaskFailure> {
        let _ = items;
        Err(TaskFailure::argument(format!(
            "a list was given where a `{}` was expected",
            std::any::type_name::<Self>()
        )))
    }
}

/// Encodes a value into a new buffer.
pub fn encode<T: Data>(value: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    value.encode(&mut Writer::new(&mut buf));
    buf
}

/// Decodes a whole buffer into a value, refusing trailing bytes.
pub fn decode<T: Data>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut r = Reader::new(bytes);
    let v = T::decode(&mut r)?;
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests;
