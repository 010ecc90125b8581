//! The worker's P2P shuffle service (Dask's shuffle worker plugin): it holds the shards of
//! shuffles whose transfer tasks ran here and hands them to the unpack tasks that ask,
//! from this worker's tasks or from peers over the data port
//! ([`DataRequest::ShuffleTake`](oxidask_protocol::DataRequest::ShuffleTake)), never through
//! the scheduler.
//!
//! Shards are opaque bytes ([`oxidask_core::shuffle`] names the contract; a dataframe's are
//! Arrow IPC files) kept in a [`ShardStore`] (`oxidask-local`): in memory while the worker's
//! shards fit the budget (`distributed.p2p.memory-budget`), appended to one file per shuffle
//! in the worker's temporary directory past it. A shard is dropped once taken; a shuffle's
//! file is removed when its last shard is taken, and every file when the worker stops. A
//! worker that restarted knows no shards: asked for some, it answers "missing", and the
//! unpack task reports them lost.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use oxidask_core::shuffle::{ShardHolder, ShuffleId, ShuffleService, SHARDS_LOST};
pub use oxidask_local::shards::{ShardStore, Taken};
use oxidask_protocol::frame::Payload;
use oxidask_protocol::transport::Security;
use oxidask_protocol::DataResponse;

use crate::Shared;

/// Shard bytes a worker holds in memory when `distributed.p2p.memory-budget` is not set.
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 << 20;

/// A worker's shuffle service: its store, and how it reaches its peers.
pub(crate) struct WorkerShuffle {
    store: ShardStore,
    address: String,
    security: Security,
    shared: Arc<Shared>,
}

/// The services of the workers in this process, by data address (a process may run several
/// workers: an in-process cluster).
fn services() -> &'static Mutex<HashMap<String, Arc<WorkerShuffle>>> {
    static S: OnceLock<Mutex<HashMap<String, Arc<WorkerShuffle>>>> = OnceLock::new();
    S.get_or_init(Default::default)
}

/// The service of the worker `shared`, made on first use.
fn service_of(shared: &Arc<Shared>) -> Arc<WorkerShuffle> {
    let mut all = services().lock().unwrap_or_else(|p| p.into_inner());
    all.entry(shared.data_address.clone())
        .or_insert_with(|| {
            let cfg = oxidask_config::global().ok();
            let budget = cfg
                .as_ref()
                .and_then(|c| c.size("distributed.p2p.memory-budget"))
                .unwrap_or(DEFAULT_MEMORY_BUDGET);
            let base = cfg
                .as_ref()
                .and_then(|c| c.path("temporary-directory").map(PathBuf::from))
                .unwrap_or_else(std::env::temp_dir);
            let port = shared.data_address.rsplit(':').next().unwrap_or("0");
            let dir = base.join(format!("oxidask-p2p-{}-{port}", std::process::id()));
            Arc::new(WorkerShuffle {
                store: ShardStore::new(budget, dir),
                address: shared.data_address.clone(),
                security: shared.pool.security().clone(),
                shared: shared.clone(),
            })
        })
        .clone()
}

/// The worker stopped: its shards and files go.
pub(crate) fn worker_stopped(shared: &Shared) {
    services()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&shared.data_address);
}

/// Answers a peer's [`DataRequest::ShuffleTake`](oxidask_protocol::DataRequest::ShuffleTake).
pub(crate) fn serve_take(
    shared: &Shared,
    shuffle: ShuffleId,
    output: u32,
    inputs: Vec<u32>,
) -> DataResponse {
    let service = services()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&shared.data_address)
        .cloned();
    let Some(service) = service else {
        return DataResponse::Shards {
            shards: Vec::new(),
            missing: inputs,
        };
    };
    match service.store.take(shuffle, output, &inputs) {
        Ok(t) => DataResponse::Shards {
            shards: t.shards.into_iter().map(|(i, b)| (i, Payload(b))).collect(),
            missing: t.missing,
        },
        Err(e) => {
            shared.log(format!("p2p shuffle: cannot read spilled shards: {e}"));
            DataResponse::Shards {
                shards: Vec::new(),
                missing: inputs,
            }
        }
    }
}

/// Tries to reach a holder this many times before its shards count as lost.
const ATTEMPTS: u32 = 3;

impl WorkerShuffle {
    fn take_remote(
        &self,
        id: ShuffleId,
        output: u32,
        holder: &ShardHolder,
    ) -> Result<Taken, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("p2p shuffle: cannot start a runtime: {e}"))?;
        let pool = oxidask_protocol::peer::PeerPool::new(self.security.clone());
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100 << attempt));
            }
            match rt.block_on(pool.shuffle_take(&holder.address, id, output, holder.inputs.clone()))
            {
                Ok((shards, missing)) => return Ok(Taken { shards, missing }),
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!(
            "{SHARDS_LOST}: the worker at {} holding inputs {:?} cannot be reached ({last})",
            holder.address, holder.inputs
        ))
    }
}

impl ShuffleService for WorkerShuffle {
    fn put(
        &self,
        id: ShuffleId,
        input: u32,
        shards: Vec<(u32, Bytes)>,
    ) -> Result<ShardHolder, String> {
        let before = self.store.spilled_total();
        let spilled = self
            .store
            .put(id, input, shards)
            .map_err(|e| format!("p2p shuffle: cannot spill shards to disk: {e}"))?;
        if spilled > 0 && before == 0 {
            self.shared.log(format!(
                "p2p shuffle: shards passed the memory budget; spilling to {}",
                self.store.dir().display()
            ));
        }
        Ok(ShardHolder {
            address: self.address.clone(),
            inputs: vec![input],
        })
    }

    fn take(
        &self,
        id: ShuffleId,
        output: u32,
        holders: &[ShardHolder],
    ) -> Result<Vec<(u32, Bytes)>, String> {
        let mut out = Vec::new();
        for h in holders {
            let Taken { shards, missing } = if h.address == self.address {
                self.store
                    .take(id, output, &h.inputs)
                    .map_err(|e| format!("p2p shuffle: cannot read spilled shards: {e}"))?
            } else {
                self.take_remote(id, output, h)?
            };
            if !missing.is_empty() {
                return Err(format!(
                    "{SHARDS_LOST}: the worker at {} no longer has the shards of inputs {missing:?} for output {output} (it restarted, or they were taken by an earlier attempt)",
                    h.address
                ));
            }
            out.extend(shards);
        }
        out.sort_by_key(|s| s.0);
        Ok(out)
    }
}

/// The service of the worker running the current task (for [`oxidask_core::shuffle`]).
fn current() -> Option<Arc<dyn ShuffleService>> {
    let (shared, _) = crate::execute::current_task()?;
    Some(service_of(&shared) as Arc<dyn ShuffleService>)
}

oxidask_core::__private::inventory::submit! {
    oxidask_core::shuffle::ShuffleProvider { current }
}
