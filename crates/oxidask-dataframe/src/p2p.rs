//! P2P shuffles (Dask's `shuffle_method="p2p"`): O(n + m) tasks instead of O(n·m).
//!
//! A transfer task per input partition splits it by the output's hash or range
//! ([`SplitBy`]) and hands the shards, as Arrow IPC bytes, to the shuffle service of the
//! process it runs in ([`oxidask_core::shuffle`]: on a worker, the worker's service, which
//! keeps them in memory up to a budget and on disk past it); it returns where they are. One
//! barrier task gathers those places. An unpack task per output partition takes its shards
//! from every holder (worker to worker over the data port, never through the scheduler) and
//! concatenates them in input order, so a P2P shuffle's partitions equal the task shuffle's
//! row for row.
//!
//! When a holder is gone (its worker died, or an unpack ran twice), the unpack fails with
//! [`SHARDS_LOST`](oxidask_core::shuffle::SHARDS_LOST) and the distributed scheduler
//! restarts the shuffle: the transfers and the barrier run again (Dask restarts a shuffle
//! when a participant leaves). Outside a worker (the local schedulers) shards live in an
//! in-process store that spills to disk past `distributed.p2p.memory-budget` too.

// An operation's argument is the type of the task result it reads (`&Vec<ShardHolder>`).
#![allow(clippy::ptr_arg)]

use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use oxidask_core::shuffle::{
    group_holders, ShardHolder, ShuffleId, ShuffleService, BARRIER_SUFFIX, SHARDS_LOST,
};
use oxidask_core::{Arg, Key, Task, Token, Value};
use oxidask_local::shards::ShardStore;
use serde::{Deserialize, Serialize};

use crate::error::FrameError;
use crate::partition::{Partition, Plan};
use crate::plan::{Layer, Node};
use crate::shuffle::{SplitBy, SplitSpec};

/// How a shuffle moves rows between partitions (Dask's `shuffle_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShuffleMethod {
    /// A split task per input, a pick task per (input, output), a concat per output.
    Tasks,
    /// A transfer task per input, one barrier, an unpack task per output; shards move
    /// through the workers' shuffle services.
    P2P,
}

impl std::fmt::Display for ShuffleMethod {
    /// Dask's name: `tasks` or `p2p` (what `explain()` shows).
    ///
    /// ```
    /// use oxidask_dataframe::ShuffleMethod;
    /// assert_eq!(ShuffleMethod::P2P.to_string(), "p2p");
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShuffleMethod::Tasks => "tasks",
            ShuffleMethod::P2P => "p2p",
        })
    }
}

impl std::str::FromStr for ShuffleMethod {
    type Err = FrameError;

    /// `"tasks"` or `"p2p"` (Dask's names).
    ///
    /// ```
    /// use oxidask_dataframe::ShuffleMethod;
    /// assert_eq!("p2p".parse::<ShuffleMethod>().unwrap(), ShuffleMethod::P2P);
    /// assert!("disk".parse::<ShuffleMethod>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<ShuffleMethod, FrameError> {
        match s {
            "tasks" => Ok(ShuffleMethod::Tasks),
            "p2p" => Ok(ShuffleMethod::P2P),
            other => Err(FrameError::Invalid(format!(
                "unknown shuffle method {other:?}: use \"tasks\" or \"p2p\" (Dask's \"disk\" is not implemented)"
            ))),
        }
    }
}

/// Input × output partition pairs from which a shuffle on a distributed cluster is P2P when
/// neither the call nor `dataframe.shuffle.method` says.
pub const P2P_FROM_PAIRS: usize = 256;

thread_local! {
    static METHOD: Cell<Option<ShuffleMethod>> = const { Cell::new(None) };
}

/// Runs `f` with shuffles made on this thread using `method` (unless a call names its own),
/// like `dask.config.set({"dataframe.shuffle.method": ...})` as a context manager. The
/// method is fixed when a shuffle, sort, `set_index`, merge or split-out groupby is made.
///
/// ```
/// use oxidask_dataframe::{with_shuffle_method, ShuffleMethod};
/// let m = with_shuffle_method(ShuffleMethod::P2P, || 1 + 1);
/// assert_eq!(m, 2);
/// ```
pub fn with_shuffle_method<R>(method: ShuffleMethod, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<ShuffleMethod>);
    impl Drop for Restore {
        fn drop(&mut self) {
            METHOD.with(|m| m.set(self.0));
        }
    }
    let _restore = Restore(METHOD.with(|m| m.replace(Some(method))));
    f()
}

/// The method for a shuffle of `n` partitions into `m` made now: this thread's
/// [`with_shuffle_method`], else `dataframe.shuffle.method`, else P2P on a distributed
/// cluster for at least [`P2P_FROM_PAIRS`] pairs, else tasks.
pub(crate) fn choose(n: usize, m: usize) -> ShuffleMethod {
    if let Some(method) = METHOD.with(|m| m.get()) {
        return method;
    }
    let configured = oxidask_config::global()
        .ok()
        .and_then(|c| c.string("dataframe.shuffle.method").map(str::to_owned));
    if let Some(method) = configured.and_then(|s| s.parse().ok()) {
        return method;
    }
    let distributed = oxidask_core::compute::current_scheduler()
        .map(|s| s.name() == "distributed")
        .unwrap_or(false);
    if distributed && n > 1 && m > 1 && n * m >= P2P_FROM_PAIRS {
        ShuffleMethod::P2P
    } else {
        ShuffleMethod::Tasks
    }
}

/// What transfer and unpack tasks need: the split and the shuffle's id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct P2PSpec {
    pub split: SplitSpec,
    pub id: ShuffleId,
}

/// The tasks of a P2P shuffle of `input`'s partitions into `m` outputs keyed by `name`.
pub(crate) fn p2p_layer(input: &Node, by: &SplitBy, m: usize, name: &str, token: Token) -> Layer {
    let inner = input.layer();
    let barrier = Key::new(&format!("{name}{BARRIER_SUFFIX}"), token);
    // The id as workers derive it from the barrier's key (a key keeps 96 bits of a token):
    // a worker told to free the barrier drops this shuffle's shards.
    let t = barrier.token().as_u128();
    let spec = Value::new(Plan(P2PSpec {
        split: SplitSpec {
            by: by.clone(),
            m: m as u32,
        },
        id: ((t >> 64) as u64, t as u64),
    }));
    let transfer_name = format!("{name}-p2p-transfer");
    let mut tasks = Vec::with_capacity(inner.outputs.len() + m + 1);
    let mut transfers = Vec::with_capacity(inner.outputs.len());
    for (i, k) in inner.outputs.iter().enumerate() {
        let key = Key::block(&transfer_name, token, &[i as u32]);
        tasks.push((
            key,
            Task::call(
                p2p_transfer::op(),
                [
                    Arg::Value(spec.clone()),
                    Arg::Value(Value::new(i as u64)),
                    Arg::Key(*k),
                ],
            ),
        ));
        transfers.push(Arg::Key(key));
    }
    tasks.push((
        barrier,
        Task::call(p2p_barrier::op(), [Arg::List(transfers)]),
    ));
    let empty = Value::new(Partition(polars::prelude::DataFrame::empty_with_schema(
        &input.schema,
    )));
    let mut outputs = Vec::with_capacity(m);
    for j in 0..m {
        let k = Key::block(name, token, &[j as u32]);
        tasks.push((
            k,
            Task::call(
                p2p_unpack::op(),
                [
                    Arg::Value(spec.clone()),
                    Arg::Value(Value::new(j as u64)),
                    Arg::Key(barrier),
                    Arg::Value(empty.clone()),
                ],
            ),
        ));
        outputs.push(k);
    }
    Layer {
        tasks,
        outputs,
        deps: vec![inner],
    }
}

/// The service of the worker running this task, or this process's in-process store.
fn service() -> Arc<dyn ShuffleService> {
    oxidask_core::shuffle::current_service()
        .unwrap_or_else(|| local().clone() as Arc<dyn ShuffleService>)
}

/// Splits a partition and hands its shards to the shuffle service (a P2P shuffle's
/// transfer task); returns where they are held.
#[oxidask_core::task(crate = oxidask_core)]
pub fn p2p_transfer(
    spec: &Plan<P2PSpec>,
    input: u64,
    part: &Partition,
) -> Result<ShardHolder, FrameError> {
    let pieces =
        crate::blocking::outside_async_runtime(|| crate::shuffle::split(&spec.0.split, &part.0))?;
    let shards = pieces
        .into_iter()
        .enumerate()
        .map(|(j, p)| {
            let bytes = if p.0.height() == 0 {
                Bytes::new()
            } else {
                Bytes::from(oxidask_core::encode(&p))
            };
            (j as u32, bytes)
        })
        .collect();
    service()
        .put(spec.0.id, input as u32, shards)
        .map_err(FrameError::Invalid)
}

/// Where every input's shards are, one entry per holder (a P2P shuffle's barrier task).
#[oxidask_core::task(crate = oxidask_core)]
pub fn p2p_barrier(holders: &[&ShardHolder]) -> Vec<ShardHolder> {
    group_holders(holders.iter().map(|h| (*h).clone()))
}

/// Takes an output partition's shards from their holders and concatenates them in input
/// order (a P2P shuffle's unpack task); `empty` gives the schema when no rows came.
#[oxidask_core::task(crate = oxidask_core)]
pub fn p2p_unpack(
    spec: &Plan<P2PSpec>,
    output: u64,
    holders: &Vec<ShardHolder>,
    empty: &Partition,
) -> Result<Partition, FrameError> {
    let shards = service()
        .take(spec.0.id, output as u32, holders)
        .map_err(FrameError::Invalid)?;
    let mut parts = Vec::with_capacity(shards.len());
    for (i, bytes) in shards {
        let p: Partition = oxidask_core::decode(&bytes).map_err(|e| {
            FrameError::Invalid(format!(
                "p2p shuffle: the shard of input {i} for output {output} cannot be decoded: {e}"
            ))
        })?;
        parts.push(p);
    }
    if parts.is_empty() {
        return Ok(empty.clone());
    }
    let refs: Vec<&Partition> = parts.iter().collect();
    crate::ops::concat_parts(&refs).map(Partition)
}

/// The shuffle service of a process that is not a worker (the local schedulers): one
/// [`ShardStore`] in memory up to `distributed.p2p.memory-budget` (read at every transfer),
/// spilling to the temporary directory past it.
struct LocalShuffle {
    store: ShardStore,
}

impl Default for LocalShuffle {
    fn default() -> LocalShuffle {
        let base = oxidask_config::global()
            .ok()
            .and_then(|c| c.path("temporary-directory").map(std::path::PathBuf::from))
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("oxidask-p2p-{}-local", std::process::id()));
        LocalShuffle {
            store: ShardStore::new(configured_budget(), dir),
        }
    }
}

/// `distributed.p2p.memory-budget` (256 MiB unless set).
fn configured_budget() -> u64 {
    oxidask_config::global()
        .ok()
        .and_then(|c| c.size("distributed.p2p.memory-budget"))
        .unwrap_or(256 << 20)
}

fn local() -> &'static Arc<LocalShuffle> {
    static LOCAL: OnceLock<Arc<LocalShuffle>> = OnceLock::new();
    LOCAL.get_or_init(Default::default)
}

/// Bytes of shuffle shards this process's in-process store (P2P shuffles on the local
/// schedulers) has written to disk so far.
///
/// ```
/// let spilled = oxidask_dataframe::local_shuffle_spilled_bytes();
/// println!("{spilled} bytes of shuffle shards went to disk");
/// ```
pub fn local_shuffle_spilled_bytes() -> u64 {
    local().store.spilled_total()
}

impl ShuffleService for LocalShuffle {
    fn put(
        &self,
        id: ShuffleId,
        input: u32,
        shards: Vec<(u32, Bytes)>,
    ) -> Result<ShardHolder, String> {
        self.store.set_budget(configured_budget());
        let put = self.store.put(id, input, shards).map_err(|e| {
            format!(
                "p2p shuffle: cannot spill shards to {}: {e} (free disk space there, set temporary-directory elsewhere, or raise distributed.p2p.memory-budget)",
                self.store.dir().display()
            )
        })?;
        Ok(ShardHolder {
            address: String::new(),
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
        let inputs: Vec<u32> = holders
            .iter()
            .flat_map(|h| h.inputs.iter().copied())
            .collect();
        let stamps: Vec<u64> = holders
            .iter()
            .flat_map(|h| h.stamps.iter().copied())
            .collect();
        let taken = self
            .store
            .take(id, output, &inputs, &stamps)
            .map_err(|e| format!("p2p shuffle: cannot read spilled shards: {e}"))?;
        if !taken.missing.is_empty() {
            return Err(format!(
                "{SHARDS_LOST}: no shards of inputs {:?} for output {output} in this process (taken already?)",
                taken.missing
            ));
        }
        Ok(taken.shards)
    }
}
