//! The worker's P2P shuffle service (Dask's shuffle worker plugin): it holds the shards of
//! shuffles whose transfer tasks ran here and hands them to the unpack tasks that ask,
//! from this worker's tasks or from peers over the data port
//! ([`DataRequest::ShuffleTake`](oxidask_protocol::DataRequest::ShuffleTake)), never through
//! the scheduler.
//!
//! Shards are opaque bytes ([`oxidask_core::shuffle`] names the contract; a dataframe's are
//! Arrow IPC files) kept in a [`ShardStore`]: in memory while the worker's shards fit the
//! budget (`distributed.p2p.memory-budget`), appended to one file per shuffle in the
//! worker's temporary directory past it. A shard is dropped once taken; a shuffle's file is
//! removed when its last shard is taken, and every file when the worker stops.
//!
//! # Invariants
//! * `Store::in_memory` is the sum of the lengths of the shards held in memory, and never
//!   passes the budget because of a `put` (a shard that does not fit goes to disk).
//! * Every input a `put` stored has a shard for every output it was given (empty bytes for an
//!   output with no rows): an absent shard was taken already, an absent input was never
//!   stored here (or its holder restarted), and both answer "missing".

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use oxidask_core::shuffle::{ShardHolder, ShuffleId, ShuffleService, SHARDS_LOST};
use oxidask_protocol::frame::Payload;
use oxidask_protocol::transport::Security;
use oxidask_protocol::DataResponse;

use crate::Shared;

/// Shard bytes a worker holds in memory when `distributed.p2p.memory-budget` is not set.
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 << 20;

/// Where one shard is.
#[derive(Debug)]
enum Stored {
    Memory(Bytes),
    Disk { offset: u64, len: u64 },
}

/// The shards of one shuffle held here.
#[derive(Default)]
struct Run {
    /// Input → output → shard.
    inputs: HashMap<u32, HashMap<u32, Stored>>,
    /// The append-only spill file and its length.
    file: Option<(File, u64)>,
    /// Bytes written to the spill file.
    spilled: u64,
}

#[derive(Default)]
struct Inner {
    runs: HashMap<ShuffleId, Run>,
    in_memory: u64,
    spilled_total: u64,
}

/// Shards of P2P shuffles, in memory up to a budget and on disk past it. Pure bookkeeping and
/// file I/O: no network (the service around it moves shards between workers).
pub struct ShardStore {
    budget: u64,
    dir: PathBuf,
    inner: Mutex<Inner>,
}

/// What a [`ShardStore::take`] found.
#[derive(Debug, Default, PartialEq)]
pub struct Taken {
    /// (input, bytes) of the shards found, in input order.
    pub shards: Vec<(u32, Bytes)>,
    /// Inputs with no shard here for that output.
    pub missing: Vec<u32>,
}

impl ShardStore {
    /// A store holding up to `budget` bytes of shards in memory and spilling the rest to
    /// files under `dir` (created when first needed, removed when the store drops).
    pub fn new(budget: u64, dir: PathBuf) -> ShardStore {
        ShardStore {
            budget,
            dir,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `input`'s shards of shuffle `id` (one per output, empty bytes for an output
    /// with no rows), replacing what an earlier run of that input stored. Returns the bytes
    /// that went to disk.
    pub fn put(
        &self,
        id: ShuffleId,
        input: u32,
        shards: Vec<(u32, Bytes)>,
    ) -> std::io::Result<u64> {
        let mut guard = self.inner();
        let inner = &mut *guard;
        let run = inner.runs.entry(id).or_default();
        if let Some(old) = run.inputs.remove(&input) {
            for s in old.values() {
                if let Stored::Memory(b) = s {
                    inner.in_memory -= b.len() as u64;
                }
            }
        }
        let mut stored = HashMap::with_capacity(shards.len());
        let mut spilled = 0;
        for (output, bytes) in shards {
            let len = bytes.len() as u64;
            if inner.in_memory + len <= self.budget {
                inner.in_memory += len;
                stored.insert(output, Stored::Memory(bytes));
                continue;
            }
            // Past the budget: append to the shuffle's file.
            if run.file.is_none() {
                std::fs::create_dir_all(&self.dir)?;
                let path = self.dir.join(file_name(id));
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .read(true)
                    .write(true)
                    .open(&path)?;
                run.file = Some((f, 0));
            }
            let (f, end) = run.file.as_mut().expect("opened above");
            f.write_all(&bytes)?;
            stored.insert(output, Stored::Disk { offset: *end, len });
            *end += len;
            spilled += len;
        }
        run.spilled += spilled;
        inner.spilled_total += spilled;
        run.inputs.insert(input, stored);
        Ok(spilled)
    }

    /// Takes output `output`'s shards of `inputs` (dropping them here). Empty shards are
    /// not returned; a shuffle whose last shard is taken is forgotten and its file removed.
    pub fn take(&self, id: ShuffleId, output: u32, inputs: &[u32]) -> std::io::Result<Taken> {
        let mut guard = self.inner();
        let inner = &mut *guard;
        let mut taken = Taken::default();
        let Some(run) = inner.runs.get_mut(&id) else {
            taken.missing = inputs.to_vec();
            return Ok(taken);
        };
        let mut sorted = inputs.to_vec();
        sorted.sort_unstable();
        for i in sorted {
            let Some(s) = run.inputs.get_mut(&i).and_then(|m| m.remove(&output)) else {
                taken.missing.push(i);
                continue;
            };
            let bytes = match s {
                Stored::Memory(b) => {
                    inner.in_memory -= b.len() as u64;
                    b
                }
                Stored::Disk { offset, len } => {
                    let (f, _) = run.file.as_ref().expect("a spilled shard has a file");
                    let mut buf = vec![0u8; len as usize];
                    f.read_exact_at(&mut buf, offset)?;
                    Bytes::from(buf)
                }
            };
            if !bytes.is_empty() {
                taken.shards.push((i, bytes));
            }
            if run.inputs.get(&i).is_some_and(|m| m.is_empty()) {
                run.inputs.remove(&i);
            }
        }
        if run.inputs.is_empty() {
            let run = inner.runs.remove(&id).expect("present");
            if run.file.is_some() {
                let _ = std::fs::remove_file(self.dir.join(file_name(id)));
            }
        }
        Ok(taken)
    }

    /// Bytes of shards held in memory now.
    pub fn in_memory(&self) -> u64 {
        self.inner().in_memory
    }

    /// Bytes of shards written to disk since the store was made.
    pub fn spilled_total(&self) -> u64 {
        self.inner().spilled_total
    }

    /// Shuffles with shards held here.
    pub fn shuffles(&self) -> usize {
        self.inner().runs.len()
    }
}

impl Drop for ShardStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn file_name(id: ShuffleId) -> String {
    format!("shuffle-{:016x}{:016x}.bin", id.0, id.1)
}

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
                self.store.dir.display()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn shards_are_taken_once_in_input_order_and_the_shuffle_is_forgotten() {
        let dir = tempdir("order");
        let st = ShardStore::new(1 << 20, dir.clone());
        let id = (1, 2);
        st.put(id, 1, vec![(0, b("1a")), (1, Bytes::new())])
            .unwrap();
        st.put(id, 0, vec![(0, b("0a")), (1, b("0b"))]).unwrap();
        let t = st.take(id, 0, &[1, 0]).unwrap();
        assert_eq!(t.shards, vec![(0, b("0a")), (1, b("1a"))]);
        assert!(t.missing.is_empty());
        // Taken already: missing.
        assert_eq!(st.take(id, 0, &[0]).unwrap().missing, vec![0]);
        // An empty shard is found (not missing) but not returned.
        let t = st.take(id, 1, &[0, 1]).unwrap();
        assert_eq!(t.shards, vec![(0, b("0b"))]);
        assert!(t.missing.is_empty());
        assert_eq!(st.shuffles(), 0);
        assert_eq!(st.in_memory(), 0);
        // An unknown shuffle has nothing.
        assert_eq!(st.take((9, 9), 0, &[3]).unwrap().missing, vec![3]);
    }

    #[test]
    fn past_the_budget_shards_go_to_disk_and_come_back_exact() {
        let dir = tempdir("spill");
        let st = ShardStore::new(10, dir.clone());
        let id = (3, 4);
        st.put(id, 0, vec![(0, b("aaaaaa")), (1, b("bbbbbb"))])
            .unwrap();
        assert_eq!(st.in_memory(), 6);
        assert_eq!(st.spilled_total(), 6);
        assert!(dir.join(file_name(id)).exists());
        st.put(id, 1, vec![(0, b("cc")), (1, b("dddddddd"))])
            .unwrap();
        assert_eq!(st.in_memory(), 8);
        assert_eq!(st.spilled_total(), 14);
        let t = st.take(id, 1, &[0, 1]).unwrap();
        assert_eq!(t.shards, vec![(0, b("bbbbbb")), (1, b("dddddddd"))]);
        let t = st.take(id, 0, &[0, 1]).unwrap();
        assert_eq!(t.shards, vec![(0, b("aaaaaa")), (1, b("cc"))]);
        assert_eq!(st.in_memory(), 0);
        assert!(
            !dir.join(file_name(id)).exists(),
            "the file goes with the last shard"
        );
        drop(st);
        assert!(!dir.exists(), "the directory goes with the store");
    }

    #[test]
    fn a_second_put_of_an_input_replaces_the_first() {
        let st = ShardStore::new(100, tempdir("replace"));
        let id = (5, 6);
        st.put(id, 0, vec![(0, b("old"))]).unwrap();
        st.put(id, 0, vec![(0, b("new!"))]).unwrap();
        assert_eq!(st.in_memory(), 4);
        assert_eq!(st.take(id, 0, &[0]).unwrap().shards, vec![(0, b("new!"))]);
    }

    fn tempdir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "oxidask-p2p-test-{}-{name}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ))
    }
}
