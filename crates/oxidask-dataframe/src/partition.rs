//! The values that travel between tasks: Polars frames (as Arrow IPC on the wire) and Polars
//! plan pieces (expressions, schemas) in Polars' own serde format.

use std::io::Cursor;

use oxidask_core::codec::CodecError;
use oxidask_core::codec::{Reader, Writer};
use oxidask_core::Data;
use polars::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// One partition of a dataframe: a Polars `DataFrame`.
///
/// It crosses process boundaries as an Arrow IPC file (no per-value work beyond Arrow's
/// buffers) and reports its size from Polars' own estimate of its buffers.
#[derive(Clone, Debug, Default)]
pub struct Partition(pub polars::prelude::DataFrame);

impl Partition {
    /// The frame inside.
    pub fn into_inner(self) -> polars::prelude::DataFrame {
        self.0
    }
}

impl From<polars::prelude::DataFrame> for Partition {
    fn from(df: polars::prelude::DataFrame) -> Self {
        Partition(df)
    }
}

fn invalid(what: &'static str, e: impl std::fmt::Display) -> CodecError {
    CodecError::Invalid {
        what,
        detail: e.to_string(),
    }
}

/// Encodes a frame as an Arrow IPC file.
pub(crate) fn frame_to_ipc(df: &polars::prelude::DataFrame) -> Result<Vec<u8>, PolarsError> {
    // Sized up front from the buffers' size (plus schema and message headers): growing from
    // empty reallocates and copies the bytes written so far at every doubling.
    let mut buf = Vec::with_capacity(df.estimated_size() + 1024 * (df.width() + 16));
    let mut df = df.clone();
    IpcWriter::new(&mut buf).finish(&mut df)?;
    Ok(buf)
}

impl Data for Partition {
    fn heap_bytes(&self) -> usize {
        self.0.estimated_size()
    }

    fn encode(&self, w: &mut Writer<'_>) {
        // Encoding an in-memory frame only fails on types IPC cannot hold (objects), which
        // partitions never contain; keep the failure visible rather than writing garbage.
        let bytes = frame_to_ipc(&self.0).expect("a partition encodes as Arrow IPC");
        w.put_len(bytes.len());
        w.put_bytes(&bytes);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let len = r.get_len("partition", 1)?;
        let bytes = r.take(len, "partition")?;
        IpcReader::new(Cursor::new(bytes))
            .finish()
            .map(Partition)
            .map_err(|e| invalid("partition (Arrow IPC)", e))
    }
}

/// A Polars plan piece (expressions, data types, schemas, our frame operations) carried as
/// task data in Polars' serde format. Both sides must run the same Polars version, which the
/// handshake's registry fingerprint and build id guarantee.
#[derive(Clone, Debug)]
pub struct Plan<T>(pub T);

impl<T> Data for Plan<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    fn heap_bytes(&self) -> usize {
        // Plan pieces are small; their exact heap size is not tracked by Polars.
        64
    }

    fn encode(&self, w: &mut Writer<'_>) {
        let bytes = polars::polars_utils::pl_serialize::serialize_to_bytes::<T, false>(&self.0)
            .expect("plan pieces serialize");
        w.put_len(bytes.len());
        w.put_bytes(&bytes);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let len = r.get_len("plan", 1)?;
        let bytes = r.take(len, "plan")?;
        polars::polars_utils::pl_serialize::deserialize_from_reader::<T, _, false>(bytes)
            .map(Plan)
            .map_err(|e| invalid("plan (Polars serde)", e))
    }
}
