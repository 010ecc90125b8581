//! `Data` for numbers, `bool`, `char` and `()`.

use super::Data;
use crate::codec::{CodecError, Reader, Writer};

macro_rules! number {
    ($($t:ty),*) => {$(
        impl Data for $t {
            #[inline]
            fn encode(&self, w: &mut Writer<'_>) {
                w.put_bytes(&self.to_le_bytes());
            }

            #[inline]
            fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
                Ok(<$t>::from_le_bytes(r.take_array(stringify!($t))?))
            }

            fn encode_slice(items: &[Self], w: &mut Writer<'_>) {
                if cfg!(target_endian = "little") {
                    // SAFETY: a plain number type has no padding and every byte is initialised;
                    // on a little-endian target its memory is exactly its encoding.
                    let bytes = unsafe {
                        std::slice::from_raw_parts(
                            items.as_ptr() as *const u8,
                            std::mem::size_of_val(items),
                        )
                    };
                    w.put_bytes(bytes);
                } else {
                    for x in items {
                        x.encode(w);
                    }
                }
            }

            fn decode_vec(r: &mut Reader<'_>, len: usize) -> Result<Vec<Self>, CodecError> {
                const SIZE: usize = std::mem::size_of::<$t>();
                let need = len.checked_mul(SIZE).ok_or(CodecError::Invalid {
                    what: stringify!($t),
                    detail: format!("{len} items overflow the address space"),
                })?;
                let bytes = r.take(need, concat!("a sequence of ", stringify!($t)))?;
                Ok(bytes
                    .chunks_exact(SIZE)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of SIZE bytes")))
                    .collect())
            }

            #[inline]
            fn heap_bytes_slice(_: &[Self]) -> usize {
                0
            }
        }
    )*};
}

number!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64);

impl Data for usize {
    fn encode(&self, w: &mut Writer<'_>) {
        (*self as u64).encode(w)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let v = u64::decode(r)?;
        usize::try_from(v).map_err(|_| CodecError::Invalid {
            what: "usize",
            detail: format!("{v} does not fit this platform's usize"),
        })
    }

    fn heap_bytes_slice(_: &[Self]) -> usize {
        0
    }
}

impl Data for isize {
    fn encode(&self, w: &mut Writer<'_>) {
        (*self as i64).encode(w)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let v = i64::decode(r)?;
        isize::try_from(v).map_err(|_| CodecError::Invalid {
            what: "isize",
            detail: format!("{v} does not fit this platform's isize"),
        })
    }

    fn heap_bytes_slice(_: &[Self]) -> usize {
        0
    }
}

impl Data for bool {
    fn encode(&self, w: &mut Writer<'_>) {
        w.put_u8(*self as u8)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.get_u8("bool")? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(CodecError::Invalid {
                what: "bool",
                detail: format!("byte {other} is neither 0 nor 1"),
            }),
        }
    }

    fn heap_bytes_slice(_: &[Self]) -> usize {
        0
    }
}

impl Data for char {
    fn encode(&self, w: &mut Writer<'_>) {
        (*self as u32).encode(w)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let v = u32::decode(r)?;
        char::from_u32(v).ok_or_else(|| CodecError::Invalid {
            what: "char",
            detail: format!("{v:#x} is not a Unicode scalar value"),
        })
    }

    fn heap_bytes_slice(_: &[Self]) -> usize {
        0
    }
}

impl Data for () {
    fn encode(&self, _: &mut Writer<'_>) {}

    fn decode(_: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(())
    }
}
