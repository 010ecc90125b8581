//! `Data` for strings, byte buffers, sequences, options, results, tuples, arrays, maps and sets.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use super::Data;
use crate::codec::{CodecError, Reader, Writer};
use crate::op::{Input, TaskFailure};

impl Data for String {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }

    fn encode(&self, w: &mut Writer<'_>) {
        w.put_len(self.len());
        w.put_bytes(self.as_bytes());
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let len = r.get_len("string", 1)?;
        let bytes = r.take(len, "string")?;
        String::from_utf8(bytes.to_vec()).map_err(|e| CodecError::Invalid {
            what: "string",
            detail: e.to_string(),
        })
    }
}

impl Data for bytes::Bytes {
    fn heap_bytes(&self) -> usize {
        self.len()
    }

    fn encode(&self, w: &mut Writer<'_>) {
        w.put_len(self.len());
        w.put_bytes(self);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let len = r.get_len("bytes", 1)?;
        Ok(bytes::Bytes::copy_from_slice(r.take(len, "bytes")?))
    }
}

impl<T: Data> Data for Vec<T> {
    fn heap_bytes(&self) -> usize {
        self.capacity() * std::mem::size_of::<T>() + T::heap_bytes_slice(self)
    }

    fn encode(&self, w: &mut Writer<'_>) {
        w.put_len(self.len());
        T::encode_slice(self, w);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        r.nested("sequence", |r| {
            let len = r.get_len("sequence", 0)?;
            T::decode_vec(r, len)
        })
    }

    fn from_list(items: Vec<Input>) -> Result<Self, TaskFailure> {
        items
            .into_iter()
            .map(|item| match item {
                Input::Value(v) => v.take::<T>(),
                Input::List(inner) => T::from_list(inner),
            })
            .collect()
    }
}

impl<T: Data> Data for VecDeque<T> {
    fn heap_bytes(&self) -> usize {
        self.capacity() * std::mem::size_of::<T>()
            + self.iter().map(Data::heap_bytes).sum::<usize>()
    }

    fn encode(&self, w: &mut Writer<'_>) {
        w.put_len(self.len());
        let (a, b) = self.as_slices();
        T::encode_slice(a, w);
        T::encode_slice(b, w);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Vec::<T>::decode(r)?.into())
    }
}

impl<T: Data> Data for Box<T> {
    fn heap_bytes(&self) -> usize {
        (**self).nbytes()
    }

    fn encode(&self, w: &mut Writer<'_>) {
        (**self).encode(w)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        r.nested("box", |r| Ok(Box::new(T::decode(r)?)))
    }
}

impl<T: Data> Data for Arc<T> {
    /// Counts the shared value in full: memory accounting would rather over- than
    /// under-estimate.
    fn heap_bytes(&self) -> usize {
        (**self).nbytes() + 2 * std::mem::size_of::<usize>()
    }

    fn encode(&self, w: &mut Writer<'_>) {
        (**self).encode(w)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        r.nested("arc", |r| Ok(Arc::new(T::decode(r)?)))
    }
}

impl<T: Data> Data for Option<T> {
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, Data::heap_bytes)
    }

    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            None => w.put_u8(0),
            Some(v) => {
                w.put_u8(1);
                v.encode(w);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.get_u8("option tag")? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(r)?)),
            t => Err(CodecError::Invalid {
                what: "option tag",
                detail: format!("tag {t} is neither 0 nor 1"),
            }),
        }
    }
}

impl<T: Data, E: Data> Data for Result<T, E> {
    fn heap_bytes(&self) -> usize {
        match self {
            Ok(v) => v.heap_bytes(),
            Err(e) => e.heap_bytes(),
        }
    }

    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            Ok(v) => {
                w.put_u8(0);
                v.encode(w);
            }
            Err(e) => {
                w.put_u8(1);
                e.encode(w);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.get_u8("result tag")? {
            0 => Ok(Ok(T::decode(r)?)),
            1 => Ok(Err(E::decode(r)?)),
            t => Err(CodecError::Invalid {
                what: "result tag",
                detail: format!("tag {t} is neither 0 nor 1"),
            }),
        }
    }
}

impl<T: Data, const N: usize> Data for [T; N] {
    fn heap_bytes(&self) -> usize {
        T::heap_bytes_slice(self)
    }

    fn encode(&self, w: &mut Writer<'_>) {
        T::encode_slice(self, w);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let v = T::decode_vec(r, N)?;
        v.try_into().map_err(|_| CodecError::Invalid {
            what: "array",
            detail: format!("expected {N} items"),
        })
    }
}

macro_rules! tuple {
    ($($name:ident $idx:tt),+) => {
        impl<$($name: Data),+> Data for ($($name,)+) {
            fn heap_bytes(&self) -> usize {
                0 $(+ self.$idx.heap_bytes())+
            }

            fn encode(&self, w: &mut Writer<'_>) {
                $(self.$idx.encode(w);)+
            }

            fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
                Ok(($($name::decode(r)?,)+))
            }
        }
    };
}

tuple!(A 0);
tuple!(A 0, B 1);
tuple!(A 0, B 1, C 2);
tuple!(A 0, B 1, C 2, D 3);
tuple!(A 0, B 1, C 2, D 3, E 4);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);

/// Writes unordered entries; when tokenizing, in the order of their encodings so equal maps
/// and sets give equal tokens.
fn encode_unordered<'a, I, F>(len: usize, entries: I, w: &mut Writer<'_>, write: F)
where
    I: Iterator,
    F: Fn(I::Item, &mut Writer<'_>),
    I::Item: 'a,
{
    w.put_len(len);
    if w.is_tokenizing() {
        let mut encoded: Vec<Vec<u8>> = entries
            .map(|e| {
                let mut buf = Vec::new();
                write(e, &mut Writer::new(&mut buf));
                buf
            })
            .collect();
        encoded.sort_unstable();
        for e in encoded {
            w.put_bytes(&e);
        }
    } else {
        for e in entries {
            write(e, w);
        }
    }
}

/// Approximate per-slot overhead of a hash table: one control byte.
const HASH_CTRL_BYTES: usize = 1;

impl<K, V, S> Data for HashMap<K, V, S>
where
    K: Data + Eq + Hash,
    V: Data,
    S: BuildHasher + Default + Clone + Send + Sync + 'static,
{
    fn heap_bytes(&self) -> usize {
        self.capacity() * (std::mem::size_of::<(K, V)>() + HASH_CTRL_BYTES)
            + self
                .iter()
                .map(|(k, v)| k.heap_bytes() + v.heap_bytes())
                .sum::<usize>()
    }

    fn encode(&self, w: &mut Writer<'_>) {
        encode_unordered(self.len(), self.iter(), w, |(k, v), w| {
            k.encode(w);
            v.encode(w);
        });
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        r.nested("map", |r| {
            let len = r.get_len("map", 0)?;
            let mut m = HashMap::with_capacity_and_hasher(len.min(r.remaining()), S::default());
            for _ in 0..len {
                let k = K::decode(r)?;
                let v = V::decode(r)?;
                m.insert(k, v);
            }
            Ok(m)
        })
    }
}

impl<K, S> Data for HashSet<K, S>
where
    K: Data + Eq + Hash,
    S: BuildHasher + Default + Clone + Send + Sync + 'static,
{
    fn heap_bytes(&self) -> usize {
        self.capacity() * (std::mem::size_of::<K>() + HASH_CTRL_BYTES)
            + self.iter().map(Data::heap_bytes).sum::<usize>()
    }

    fn encode(&self, w: &mut Writer<'_>) {
        encode_unordered(self.len(), self.iter(), w, |k, w| k.encode(w));
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        r.nested("set", |r| {
            let len = r.get_len("set", 0)?;
            let mut s = HashSet::with_capacity_and_hasher(len.min(r.remaining()), S::default());
            for _ in 0..len {
                s.insert(K::decode(r)?);
            }
            Ok(s)
        })
    }
}

/// Approximate per-entry overhead of a B-tree node slot (parent links, lengths, edges).
const BTREE_ENTRY_OVERHEAD: usize = 16;

impl<K: Data + Ord, V: Data> Data for BTreeMap<K, V> {
    fn heap_bytes(&self) -> usize {
        self.iter()
            .map(|(k, v)| {
                std::mem::size_of::<(K, V)>()
                    + BTREE_ENTRY_OVERHEAD
                    + k.heap_bytes()
                    + v.heap_bytes()
            })
            .sum()
    }

    fn encode(&self, w: &mut Writer<'_>) {
        w.put_len(self.len());
        for (k, v) in self {
            k.encode(w);
            v.encode(w);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        r.nested("map", |r| {
            let len = r.get_len("map", 0)?;
            let mut m = BTreeMap::new();
            for _ in 0..len {
                let k = K::decode(r)?;
                let v = V::decode(r)?;
                m.insert(k, v);
            }
            Ok(m)
        })
    }
}

impl<K: Data + Ord> Data for BTreeSet<K> {
    fn heap_bytes(&self) -> usize {
        self.iter()
            .map(|k| std::mem::size_of::<K>() + BTREE_ENTRY_OVERHEAD + k.heap_bytes())
            .sum()
    }

    fn encode(&self, w: &mut Writer<'_>) {
        w.put_len(self.len());
        for k in self {
            k.encode(w);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        r.nested("set", |r| {
            let len = r.get_len("set", 0)?;
            let mut s = BTreeSet::new();
            for _ in 0..len {
                s.insert(K::decode(r)?);
            }
            Ok(s)
        })
    }
}
