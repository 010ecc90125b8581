//! Fetching values from workers' data ports, over pooled connections. Workers fetch their
//! dependencies this way, and clients gather results.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::transport::{Security, Stream};
use crate::{
    handshake_connect, hello, read_frame, write_frame, DataRequest, DataResponse, Fetched, Limits,
    ProtocolError, Role, WireKey,
};

/// Open connections to peers' data ports, reused across fetches.
#[derive(Default)]
pub struct PeerPool {
    security: Security,
    idle: Mutex<HashMap<String, Vec<Stream>>>,
}

impl PeerPool {
    /// A pool whose connections use `security` (TLS credentials, token).
    pub fn new(security: Security) -> PeerPool {
        PeerPool {
            security,
            idle: Mutex::default(),
        }
    }

    /// The security its connections use.
    pub fn security(&self) -> &Security {
        &self.security
    }

    async fn take(&self, addr: &str) -> Result<Stream, ProtocolError> {
        if let Some(s) = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(addr)
            .and_then(|v| v.pop())
        {
            return Ok(s);
        }
        let mut s = self.security.connect(addr).await?;
        handshake_connect(&mut s, hello(Role::Peer)).await?;
        Ok(s)
    }

    fn give_back(&self, addr: &str, s: Stream) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(addr.to_owned())
            .or_default()
            .push(s);
    }

    /// Asks `addr` for `keys`: what it has for each.
    pub async fn get(
        &self,
        addr: &str,
        keys: Vec<WireKey>,
    ) -> Result<Vec<(WireKey, Fetched)>, ProtocolError> {
        let mut s = self.take(addr).await?;
        write_frame(&mut s, &[DataRequest::Get { keys }]).await?;
        let reply: Vec<DataResponse> = read_frame(&mut s, &Limits::default())
            .await?
            .ok_or(ProtocolError::Closed)?;
        self.give_back(addr, s);
        let mut out = Vec::new();
        for r in reply {
            if let DataResponse::Values { values } = r {
                out.extend(values);
            }
        }
        Ok(out)
    }

    /// Takes the shards of output `output` of P2P shuffle `shuffle` that `addr` holds for
    /// `inputs` (stored under `stamps`, one per input): the shards (input, bytes) and the
    /// inputs it does not have.
    pub async fn shuffle_take(
        &self,
        addr: &str,
        shuffle: (u64, u64),
        output: u32,
        inputs: Vec<u32>,
        stamps: Vec<u64>,
    ) -> Result<(Vec<(u32, bytes::Bytes)>, Vec<u32>), ProtocolError> {
        let mut s = self.take(addr).await?;
        write_frame(
            &mut s,
            &[DataRequest::ShuffleTake {
                shuffle,
                output,
                inputs,
                stamps,
            }],
        )
        .await?;
        let reply: Vec<DataResponse> = read_frame(&mut s, &Limits::default())
            .await?
            .ok_or(ProtocolError::Closed)?;
        self.give_back(addr, s);
        for r in reply {
            if let DataResponse::Shards { shards, missing } = r {
                return Ok((shards.into_iter().map(|(i, p)| (i, p.0)).collect(), missing));
            }
        }
        Err(ProtocolError::Unexpected(format!(
            "{addr} answered a shuffle take without shards"
        )))
    }
}
