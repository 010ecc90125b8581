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
//! shards and file go when its last shard is taken, when the scheduler frees the shuffle's
//! barrier key here (the shuffle finished, or restarted: what the earlier run left is of no
//! use), and when the worker stops. A worker that restarted knows no shards: asked for some,
//! it answers "missing", and the unpack task reports them lost. Every take names the stamps
//! (run ids) the holder gave when it stored the shards, so an unpack of a restarted
//! shuffle's earlier run never takes what the new run stored.
//!
//! Shards held are reported in `/metrics` (`dask_worker_p2p_shards_bytes`, memory and disk)
//! and taken out of the worker's unmanaged memory there; they have their own budget rather
//! than counting toward the worker's memory limit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use oxidask_core::shuffle::{ShardHolder, ShuffleId, ShuffleService, BARRIER_SUFFIX, SHARDS_LOST};
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

/// The memory limits of the workers in this process, by data address (0: none).
fn memory_limits() -> &'static Mutex<HashMap<String, u64>> {
    static L: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    L.get_or_init(Default::default)
}

/// The worker at `data_address` started with `memory_limit` (0: none): its shards in
/// memory are held to an eighth of it (see [`shard_budget`]).
pub(crate) fn worker_started(data_address: &str, memory_limit: u64) {
    memory_limits()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(data_address.to_owned(), memory_limit);
}

/// Shard bytes a worker holds in memory: `distributed.p2p.memory-budget`, but at most an
/// eighth of the worker's memory limit when it has one, so that shards cannot push a
/// memory-starved worker to pause (a paused worker runs no unpack task, and shards leave
/// memory only when taken: every worker paused would be a deadlock); past it they spill.
pub fn shard_budget(configured: u64, memory_limit: u64) -> u64 {
    if memory_limit > 0 {
        configured.min(memory_limit / 8)
    } else {
        configured
    }
}

/// The service of the worker `shared`, made on first use.
fn service_of(shared: &Arc<Shared>) -> Arc<WorkerShuffle> {
    let mut all = services().lock().unwrap_or_else(|p| p.into_inner());
    all.entry(shared.data_address.clone())
        .or_insert_with(|| {
            let cfg = oxidask_config::global().ok();
            let limit = memory_limits()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&shared.data_address)
                .copied()
                .unwrap_or(0);
            let budget = shard_budget(
                cfg.as_ref()
                    .and_then(|c| c.size("distributed.p2p.memory-budget"))
                    .unwrap_or(DEFAULT_MEMORY_BUDGET),
                limit,
            );
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
    memory_limits()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&shared.data_address);
}

/// The scheduler is freeing `key` here: if it is a P2P shuffle's barrier, shards go.
/// Held in memory, its value names the run's stamps, and only the shards this worker stored
/// for that run go (a later run's shards of the same inputs have other stamps: the free of
/// an earlier run's barrier may arrive after a restarted transfer stored anew here). Not
/// held, the scheduler released the shuffle (it tells every worker then; see the
/// scheduler's `state/shuffle.rs`): every shard of the shuffle here goes. Spilled: nothing
/// (the shards stay until the worker stops). Called before the free is applied.
pub(crate) fn key_freed(shared: &Shared, key: &oxidask_core::Key) {
    if !key.prefix_str().ends_with(BARRIER_SUFFIX) {
        return;
    }
    let held: Option<Option<Vec<ShardHolder>>> = {
        let st = shared.lock();
        match st.data.get(key).map(|s| &s.slot) {
            Some(crate::state::Slot::Memory(v)) => {
                Some(v.downcast_ref::<Vec<ShardHolder>>().cloned())
            }
            Some(crate::state::Slot::Disk { .. }) => Some(None),
            None => None,
        }
    };
    let service = services()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&shared.data_address)
        .cloned();
    let Some(service) = service else {
        return;
    };
    let t = key.token().as_u128();
    let id = ((t >> 64) as u64, t as u64);
    match held {
        Some(Some(holders)) => {
            let mine: Vec<(u32, u64)> = holders
                .iter()
                .filter(|h| h.address == shared.data_address)
                .flat_map(|h| h.inputs.iter().copied().zip(h.stamps.iter().copied()))
                .collect();
            service.store.drop_run(id, &mine);
        }
        Some(None) => {}
        None => {
            service.store.drop_shuffle(id);
        }
    }
}

/// Bytes of shuffle shards this worker holds: (in memory, in spill files).
pub(crate) fn shard_bytes(shared: &Shared) -> (u64, u64) {
    services()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&shared.data_address)
        .map(|s| (s.store.in_memory(), s.store.on_disk()))
        .unwrap_or((0, 0))
}

/// Answers a peer's [`DataRequest::ShuffleTake`](oxidask_protocol::DataRequest::ShuffleTake).
pub(crate) fn serve_take(
    shared: &Shared,
    shuffle: ShuffleId,
    output: u32,
    inputs: Vec<u32>,
    stamps: Vec<u64>,
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
    match service.store.take(shuffle, output, &inputs, &stamps) {
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
            match rt.block_on(pool.shuffle_take(
                &holder.address,
                id,
                output,
                holder.inputs.clone(),
                holder.stamps.clone(),
            )) {
                Ok((shards, missing)) => {
                    let taken = Taken { shards, missing };
                    check_reply(holder, output, &taken)?;
                    return Ok(taken);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!(
            "{SHARDS_LOST}: the worker at {} holding inputs {:?} cannot be reached ({last})",
            holder.address, holder.inputs
        ))
    }
}

/// Refuses a holder's answer that is not one: a shard or a missing input it was not asked
/// for, or an input answered twice (a peer of another version, or not a worker). Taking
/// such shards would mix rows of the wrong inputs into the output.
pub(crate) fn check_reply(holder: &ShardHolder, output: u32, taken: &Taken) -> Result<(), String> {
    let mut seen = std::collections::HashSet::with_capacity(holder.inputs.len());
    let answered = taken
        .shards
        .iter()
        .map(|(i, _)| *i)
        .chain(taken.missing.iter().copied());
    for i in answered {
        if !holder.inputs.contains(&i) || !seen.insert(i) {
            return Err(format!(
                "p2p shuffle: the worker at {} answered a take of output {output} with input {i}, which it was {} (asked for inputs {:?}); is it an oxidask worker of the same version?",
                holder.address,
                if holder.inputs.contains(&i) { "already answering" } else { "not asked for" },
                holder.inputs
            ));
        }
    }
    Ok(())
}

impl ShuffleService for WorkerShuffle {
    fn put(
        &self,
        id: ShuffleId,
        input: u32,
        shards: Vec<(u32, Bytes)>,
    ) -> Result<ShardHolder, String> {
        let before = self.store.spilled_total();
        let put = self.store.put(id, input, shards).map_err(|e| {
            format!(
                "p2p shuffle: cannot spill shards to {}: {e} (free disk space there, set temporary-directory elsewhere, or raise distributed.p2p.memory-budget)",
                self.store.dir().display()
            )
        })?;
        if put.spilled > 0 && before == 0 {
            self.shared.log(format!(
                "p2p shuffle: shards passed the memory budget; spilling to {}",
                self.store.dir().display()
            ));
        }
        Ok(ShardHolder {
            address: self.address.clone(),
            inputs: vec![input],
            stamps: vec![put.stamp],
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
                    .take(id, output, &h.inputs, &h.stamps)
                    .map_err(|e| format!("p2p shuffle: cannot read spilled shards: {e}"))?
            } else {
                self.take_remote(id, output, h)?
            };
            if !missing.is_empty() {
                return Err(format!(
                    "{SHARDS_LOST}: the worker at {} no longer has the shards of inputs {missing:?} for output {output} (it restarted, the shuffle restarted, or an earlier attempt took them); the scheduler restarts the shuffle",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn holder() -> ShardHolder {
        ShardHolder {
            address: "10.0.0.1:9000".into(),
            inputs: vec![1, 3],
            stamps: vec![5, 6],
        }
    }

    /// Regression: a holder's answer was used as given, so a peer answering with inputs it
    /// was not asked for (or one twice) had their rows mixed into the output.
    /// Regression: shards were held in memory up to 256 MiB whatever the worker's memory
    /// limit, so on a memory-starved cluster they pushed workers to pause, and paused workers
    /// run no unpack task to take them (a deadlock once every worker paused).
    #[test]
    fn shards_of_a_memory_starved_worker_are_held_to_an_eighth_of_its_limit() {
        assert_eq!(shard_budget(256 << 20, 0), 256 << 20);
        assert_eq!(shard_budget(256 << 20, 400 << 20), 50 << 20);
        assert_eq!(shard_budget(1 << 20, 400 << 20), 1 << 20);
    }

    #[test]
    fn a_holder_answering_inputs_it_was_not_asked_for_is_refused() {
        let b = Bytes::from_static(b"x");
        let ok = Taken {
            shards: vec![(1, b.clone())],
            missing: vec![3],
        };
        assert!(check_reply(&holder(), 0, &ok).is_ok());
        // An absent input is an empty shard: a partial answer of found inputs is fine.
        assert!(check_reply(&holder(), 0, &Taken::default()).is_ok());
        let stranger = Taken {
            shards: vec![(2, b.clone())],
            missing: vec![],
        };
        let e = check_reply(&holder(), 4, &stranger).unwrap_err();
        assert!(e.contains("input 2, which it was not asked for"), "{e}");
        assert!(e.contains("10.0.0.1:9000"), "{e}");
        let twice = Taken {
            shards: vec![(1, b.clone()), (1, b)],
            missing: vec![],
        };
        assert!(check_reply(&holder(), 0, &twice)
            .unwrap_err()
            .contains("already answering"));
        let both = Taken {
            shards: vec![(3, Bytes::from_static(b"y"))],
            missing: vec![3],
        };
        assert!(check_reply(&holder(), 0, &both).is_err());
    }
}
