//! [`Json`]: a JSON value as a bag record.

use std::fmt;
use std::ops::{Deref, DerefMut};

use oxidask_core::codec::{CodecError, Reader, Writer};
use oxidask_core::Data;

/// A JSON value (`serde_json::Value`) usable as a bag record: it can be measured, tokenized and
/// sent between processes (encoded as JSON text).
///
/// It dereferences to the `serde_json::Value`, so `rec["name"]`, `rec.get("x")` and
/// `rec.as_str()` work directly.
///
/// ```
/// use oxidask_bag::Json;
/// let j: Json = r#"{"name": "Alice", "age": 31}"#.parse().unwrap();
/// assert_eq!(j["name"], "Alice");
/// assert_eq!(j.get("age").and_then(|a| a.as_i64()), Some(31));
/// // Written as compact JSON text (key order follows serde_json's features).
/// assert_eq!(j.to_string().parse::<Json>().unwrap(), j);
/// assert_eq!(Json::new(serde_json::json!([1, "a"])).to_string(), r#"[1,"a"]"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Json(pub serde_json::Value);

impl Json {
    /// Wraps a `serde_json::Value`.
    pub fn new(value: serde_json::Value) -> Json {
        Json(value)
    }

    /// The wrapped `serde_json::Value`.
    pub fn into_inner(self) -> serde_json::Value {
        self.0
    }
}

impl Deref for Json {
    type Target = serde_json::Value;
    fn deref(&self) -> &serde_json::Value {
        &self.0
    }
}

impl DerefMut for Json {
    fn deref_mut(&mut self) -> &mut serde_json::Value {
        &mut self.0
    }
}

impl From<serde_json::Value> for Json {
    fn from(v: serde_json::Value) -> Json {
        Json(v)
    }
}

impl std::str::FromStr for Json {
    type Err = serde_json::Error;
    fn from_str(s: &str) -> Result<Json, serde_json::Error> {
        serde_json::from_str(s).map(Json)
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Heap bytes a JSON value owns, as well as can be told without its allocator.
fn heap(v: &serde_json::Value) -> usize {
    use serde_json::Value as V;
    let slot = std::mem::size_of::<V>();
    match v {
        V::Null | V::Bool(_) | V::Number(_) => 0,
        V::String(s) => s.capacity(),
        V::Array(a) => a.capacity() * slot + a.iter().map(heap).sum::<usize>(),
        // A map entry: the key's string and heap, the value slot and its heap, and about a
        // pointer of bookkeeping.
        V::Object(m) => m
            .iter()
            .map(|(k, v)| std::mem::size_of::<String>() + k.capacity() + slot + 8 + heap(v))
            .sum(),
    }
}

impl Data for Json {
    fn heap_bytes(&self) -> usize {
        heap(&self.0)
    }

    fn encode(&self, w: &mut Writer<'_>) {
        let text = serde_json::to_vec(&self.0).expect("a JSON value always serializes");
        w.put_len(text.len());
        w.put_bytes(&text);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let len = r.get_len("json", 1)?;
        let bytes = r.take(len, "json")?;
        serde_json::from_slice(bytes)
            .map(Json)
            .map_err(|e| CodecError::Invalid {
                what: "json",
                detail: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_its_codec() {
        let j: Json = r#"{"a": [1, 2.5, null, true], "b": {"c": "d"}}"#.parse().unwrap();
        let back: Json = oxidask_core::decode(&oxidask_core::encode(&j)).unwrap();
        assert_eq!(back, j);
        assert!(j.nbytes() > std::mem::size_of::<Json>());
    }
}
