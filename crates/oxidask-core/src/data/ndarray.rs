//! `Data` for ndarray's owned arrays: the number of axes, the shape, then the elements in
//! logical (row-major) order; numbers are one block of bytes when the array is contiguous.

use ndarray::{ArrayBase, Dimension, IxDyn, OwnedRepr};

use super::Data;
use crate::codec::{CodecError, Reader, Writer};

impl<T: Data, D: Dimension + 'static> Data for ArrayBase<OwnedRepr<T>, D> {
    fn heap_bytes(&self) -> usize {
        let elements = self.len() * std::mem::size_of::<T>();
        let nested = match self.as_slice_memory_order() {
            Some(s) => T::heap_bytes_slice(s),
            None => self.iter().map(Data::heap_bytes).sum(),
        };
        elements + nested
    }

    fn encode(&self, w: &mut Writer<'_>) {
        w.put_len(self.ndim());
        for &d in self.shape() {
            w.put_len(d);
        }
        match self.as_slice() {
            Some(s) => T::encode_slice(s, w),
            None => {
                for x in self.iter() {
                    x.encode(w);
                }
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let ndim = r.get_len("array rank", 1)?;
        let mut shape = Vec::with_capacity(ndim);
        for _ in 0..ndim {
            shape.push(r.get_len("array axis length", 0)?);
        }
        let len = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| CodecError::Invalid {
                what: "array shape",
                detail: format!("{shape:?} overflows the address space"),
            })?;
        let dim = D::from_dimension(&IxDyn(&shape)).ok_or_else(|| CodecError::Invalid {
            what: "array shape",
            detail: format!(
                "{} axes do not fit a {}-dimensional array",
                shape.len(),
                D::NDIM.unwrap_or(0)
            ),
        })?;
        let items = T::decode_vec(r, len)?;
        ArrayBase::from_shape_vec(dim, items).map_err(|e| CodecError::Invalid {
            what: "array",
            detail: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, ArrayD, IxDyn};

    use crate::data::{decode, encode, Data};

    #[test]
    fn arrays_round_trip_in_logical_order() {
        let a = Array2::from_shape_fn((3, 4), |(i, j)| (i * 10 + j) as f64);
        assert_eq!(decode::<Array2<f64>>(&encode(&a)).unwrap(), a);
        let t = a.t().to_owned(); // Fortran layout in memory
        assert_eq!(decode::<Array2<f64>>(&encode(&t)).unwrap(), t);
        let d = ArrayD::from_shape_fn(IxDyn(&[2, 0, 3]), |_| 1u8);
        assert_eq!(decode::<ArrayD<u8>>(&encode(&d)).unwrap(), d);
        let s = ArrayD::from_elem(IxDyn(&[]), true);
        assert_eq!(decode::<ArrayD<bool>>(&encode(&s)).unwrap(), s);
        assert_eq!(a.nbytes(), std::mem::size_of::<Array2<f64>>() + 12 * 8);
    }

    #[test]
    fn wrong_rank_and_truncation_are_errors() {
        let a = ArrayD::from_elem(IxDyn(&[2, 2, 2]), 1i32);
        assert!(decode::<Array2<i32>>(&encode(&a)).is_err());
        let bytes = encode(&a);
        assert!(decode::<ArrayD<i32>>(&bytes[..bytes.len() - 1]).is_err());
        // A shape whose product overflows.
        let mut evil = Vec::new();
        let mut w = crate::codec::Writer::new(&mut evil);
        w.put_len(2);
        w.put_varint(u64::MAX >> 1);
        w.put_varint(u64::MAX >> 1);
        assert!(decode::<ArrayD<u8>>(&evil).is_err());
    }
}
