//! The seam between collections that shuffle and the runtime that moves their shards (Dask's
//! P2P shuffle).
//!
//! A P2P shuffle is three kinds of tasks: a *transfer* per input partition hands the
//! [`ShuffleService`] of the process it runs in one shard per output partition ([`put`]), a
//! *barrier* gathers where every input's shards are ([`ShardHolder`]s), and an *unpack* per
//! output partition collects that output's shards from their holders ([`take`]). The shards
//! are opaque bytes here (a dataframe's are Arrow IPC files): the collection splits and
//! decodes, the service stores, spills and moves.
//!
//! A worker provides the service of the worker running the current task (registered with
//! [`ShuffleProvider`]); elsewhere [`current_service`] is `None` and the collection uses an
//! in-process store. This module only names the contract: it does no I/O.
//!
//! [`put`]: ShuffleService::put
//! [`take`]: ShuffleService::take

use std::sync::Arc;

/// Starts every error a service returns when shards it was asked for are gone (their holder
/// left or restarted, or an earlier attempt of the same unpack took them). The distributed
/// scheduler restarts the shuffle on such an error instead of failing the task.
pub const SHARDS_LOST: &str = "p2p shuffle shards lost";

/// How the key prefix of a P2P shuffle's barrier task ends (`shuffle-p2p-barrier`): the
/// distributed scheduler finds a shuffle's transfer tasks (the barrier's dependencies) from
/// an unpack task (a dependent) this way.
pub const BARRIER_SUFFIX: &str = "-p2p-barrier";

/// Which shuffle: the token of its barrier key (`Key::token`, as 128 bits split high, low;
/// equal graphs, equal shuffles), so a worker can tell a barrier key's shuffle.
pub type ShuffleId = (u64, u64);

/// Where the shards of some input partitions of one shuffle are held.
#[derive(Clone, Debug, PartialEq, Eq, crate::Data)]
#[data(crate = crate)]
pub struct ShardHolder {
    /// The data address of the holding worker; empty for this process's in-process store.
    pub address: String,
    /// The input partitions whose shards it holds.
    pub inputs: Vec<u32>,
    /// One per input, in the same order: the stamp of the `put` that stored its shards (a
    /// run id). A `take` naming another stamp finds them missing, so an unpack task of a
    /// restarted shuffle's earlier run can never take (and so steal) the shards a later run
    /// stored for the same input, nor read shards an earlier run left.
    pub stamps: Vec<u64>,
}

/// One shard: the output partition it belongs to and its bytes.
pub type Shard = (u32, bytes::Bytes);

/// Stores and moves the shards of P2P shuffles for the process (a worker) that runs their
/// tasks.
pub trait ShuffleService: Send + Sync {
    /// Stores the shards input partition `input` of shuffle `id` produced (an output with no
    /// rows may be left out), replacing what an earlier run of the same input stored here.
    /// Returns where they are held, with a stamp no earlier `put` of this service returned.
    fn put(&self, id: ShuffleId, input: u32, shards: Vec<Shard>) -> Result<ShardHolder, String>;

    /// Takes output partition `output`'s shards from every holder (each asked for the inputs
    /// it holds, with their stamps), as `(input, bytes)` pairs in input order. Taken shards
    /// are dropped by their holder; a shard stored under another stamp is not taken.
    /// Errors starting with [`SHARDS_LOST`] mean a holder no longer has them.
    fn take(
        &self,
        id: ShuffleId,
        output: u32,
        holders: &[ShardHolder],
    ) -> Result<Vec<Shard>, String>;
}

/// A runtime that can provide a [`ShuffleService`] to the task running on the current thread
/// (the worker crate registers one with `inventory`).
pub struct ShuffleProvider {
    /// The service of the worker running the current task, if this thread runs one.
    pub current: fn() -> Option<Arc<dyn ShuffleService>>,
}

inventory::collect!(ShuffleProvider);

/// The shuffle service of the worker running the current task, if any.
pub fn current_service() -> Option<Arc<dyn ShuffleService>> {
    inventory::iter::<ShuffleProvider>
        .into_iter()
        .find_map(|p| (p.current)())
}

/// Groups holders by address (one request per holder), inputs sorted with their stamps.
/// An input named twice keeps its first stamp.
///
/// ```
/// use oxidask_core::shuffle::{group_holders, ShardHolder};
/// let h = |a: &str, i: u32| ShardHolder { address: a.into(), inputs: vec![i], stamps: vec![10 + i as u64] };
/// let g = group_holders([h("b", 2), h("a", 1), h("b", 0)]);
/// assert_eq!(g, vec![
///     ShardHolder { address: "a".into(), inputs: vec![1], stamps: vec![11] },
///     ShardHolder { address: "b".into(), inputs: vec![0, 2], stamps: vec![10, 12] },
/// ]);
/// ```
pub fn group_holders(holders: impl IntoIterator<Item = ShardHolder>) -> Vec<ShardHolder> {
    let mut by: std::collections::BTreeMap<String, std::collections::BTreeMap<u32, u64>> =
        Default::default();
    for h in holders {
        let m = by.entry(h.address).or_default();
        for (k, i) in h.inputs.into_iter().enumerate() {
            m.entry(i).or_insert(h.stamps.get(k).copied().unwrap_or(0));
        }
    }
    by.into_iter()
        .map(|(address, m)| ShardHolder {
            address,
            inputs: m.keys().copied().collect(),
            stamps: m.values().copied().collect(),
        })
        .collect()
}
