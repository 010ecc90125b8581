//! Collections persisted on a cluster: their pieces stay on the workers.
//!
//! [`Client::persist`] (or `collection.persist()` with a client as the current scheduler)
//! submits the collection's graph and rebuilds the collection around one
//! [`RemoteValue`] per piece: a future on the piece's key, so the collection keeps the pieces
//! alive on the cluster and dropping its last copy releases them. When a later graph built on
//! the persisted collection is sent, this client turns those values into references to the
//! keys ([`resolve_in_place`]): the scheduler already has them, so nothing is recomputed or
//! sent back from the client. Another scheduler (a local one, or a client of another cluster)
//! fetches them instead ([`oxidask_core::remote::fetch_remote`]). [`futures_of`] lists the
//! futures behind a collection.

use std::any::Any;

use oxidask_core::remote::{rewrite_remote, Remote, RemoteValue, Resolved};
use oxidask_core::{Collection, Error, Graph, Key, Value};
use rustc_hash::FxHashSet;

use crate::client::Client;
use crate::future::Future;

/// A piece of a persisted collection: the future holding it on the cluster.
struct OnCluster {
    future: Future<()>,
    holder: String,
}

impl Remote for OnCluster {
    fn key(&self) -> Key {
        self.future.key()
    }

    fn holder(&self) -> &str {
        &self.holder
    }

    fn fetch(&self) -> Result<Value, Error> {
        self.future.value(None)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One remote value per output of a graph `client` was just sent, adopting the reference
/// [`Client::submit_graph`] took on each distinct key.
pub(crate) fn remote_values(client: &Client, distinct: &[Key], outputs: &[Key]) -> Vec<Value> {
    let by_key: rustc_hash::FxHashMap<Key, Value> = distinct
        .iter()
        .map(|k| {
            let piece = OnCluster {
                future: Future::adopt(client.clone(), *k),
                holder: client.address().to_string(),
            };
            (*k, RemoteValue::new(piece).into_value())
        })
        .collect();
    outputs.iter().map(|k| by_key[k].clone()).collect()
}

impl Future<()> {
    /// This future as a piece of a persisted collection, for [`Collection::rebuild`]: a
    /// remote value holding a clone of the future (so the result lives as long as the
    /// rebuilt collection), which graphs sent to this future's cluster refer to by key.
    /// A binding that persists through futures of its own (the Python client) rebuilds
    /// collections with it.
    pub fn as_persisted_piece(&self) -> Value {
        RemoteValue::new(OnCluster {
            future: self.clone(),
            holder: self.client().address().to_string(),
        })
        .into_value()
    }
}

/// `graph` as `client` sends it: pieces held on its cluster become references to their keys
/// (a task that is such a piece under its own key stays, for the sender to skip); pieces held
/// elsewhere are fetched. `None` if the graph holds no such pieces.
pub(crate) fn resolve_in_place(client: &Client, graph: &Graph) -> Result<Option<Graph>, Error> {
    rewrite_remote(graph, |r| {
        if r.holder() == client.address() {
            Ok(Resolved::Key(r.key()))
        } else {
            Ok(Resolved::Value(r.fetch()?))
        }
    })
}

/// The futures holding the pieces of a collection persisted on a cluster (Dask's
/// `futures_of`), each once, in graph order; empty for a collection that was not persisted
/// on a cluster. They keep the pieces alive as long as they live, like the collection.
///
/// ```
/// use oxidask_client::{futures_of, LocalCluster};
/// use oxidask_core::Collection;
///
/// #[oxidask_core::task(crate = oxidask_core)]
/// fn inc(x: i64) -> i64 {
///     x + 1
/// }
///
/// let cluster = LocalCluster::builder().workers(1).start().unwrap();
/// let client = cluster.client().unwrap();
/// let xs = client.persist(&vec![inc(1), inc(2)]).unwrap(); // computed and kept there
/// assert_eq!(futures_of(&xs).len(), 2);
/// assert_eq!(xs.compute_with(&client).unwrap(), vec![2, 3]);
/// ```
pub fn futures_of<C: Collection + ?Sized>(collection: &C) -> Vec<Future<()>> {
    let mut seen = FxHashSet::default();
    oxidask_core::remote::remote_values(&collection.graph())
        .into_iter()
        .filter_map(|r| {
            let piece = r.remote().as_any().downcast_ref::<OnCluster>()?;
            seen.insert(piece.future.key())
                .then(|| piece.future.clone())
        })
        .collect()
}

impl Client {
    /// Computes a collection on the cluster and returns it backed by its pieces there (Dask's
    /// `client.persist`): the pieces stay on the workers, held by the returned collection
    /// (see [`futures_of`]); later work built on it refers to them by key, so they are neither
    /// recomputed nor sent again; dropping the last copy of it releases them. Returns at once,
    /// while the pieces compute; failures surface when something uses them.
    ///
    /// Works for every [`Collection`] — `Delayed`, arrays, dataframes, tuples and vectors of
    /// them — and is what `collection.persist()` does while this client is the current
    /// scheduler.
    pub fn persist<C: Collection + ?Sized>(&self, collection: &C) -> Result<C::Persisted, Error> {
        collection.persist_with(self)
    }

    /// `Compute::persist` for this client: submits `graph` and returns a remote value per
    /// output.
    pub(crate) fn persist_graph(&self, graph: Graph, outputs: &[Key]) -> Result<Vec<Value>, Error> {
        let mut distinct: Vec<Key> = Vec::with_capacity(outputs.len());
        let mut seen = FxHashSet::default();
        for k in outputs {
            if seen.insert(*k) {
                distinct.push(*k);
            }
        }
        self.send_graph(&graph, &distinct, Default::default())?;
        Ok(remote_values(self, &distinct, outputs))
    }
}
