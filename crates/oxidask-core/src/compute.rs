//! The seam between collections and schedulers.
//!
//! Collections ([`Delayed`](crate::Delayed), arrays, dataframes, bags) describe their work as
//! a [`Graph`] and the keys they need back ([`Collection`]); schedulers run graphs
//! ([`Compute`]). Neither knows the other's internals, so the same user code runs on the
//! synchronous, threaded and distributed schedulers.
//!
//! Which scheduler `compute()` uses: the one set for this thread by [`with_scheduler`], else
//! the one set process-wide by [`set_global_scheduler`] (a distributed client does this when
//! it connects, as in Dask), else the highest-priority [`DefaultScheduler`] linked in
//! (`oxidask-local` registers the threaded scheduler).

use std::cell::RefCell;
use std::path::Path;
use std::sync::{Arc, OnceLock, RwLock};

use crate::error::Error;
use crate::graph::{DotOptions, Graph};
use crate::key::Key;
use crate::value::Value;

/// Something that runs graphs: a scheduler.
pub trait Compute: Send + Sync {
    /// Runs what `outputs` need from `graph` and returns their values in the order asked
    /// (a key asked twice is returned twice).
    fn compute(&self, graph: Graph, outputs: &[Key]) -> Result<Vec<Value>, Error>;

    /// A short name for messages (`threaded`, `synchronous`, `distributed`).
    fn name(&self) -> &'static str;

    /// Runs what `outputs` need and returns one value per output standing for its result,
    /// for [`Collection::persist`]. The local schedulers return the results themselves (the
    /// default); a distributed client keeps them on its cluster and returns
    /// [`RemoteValue`](crate::remote::RemoteValue)s holding their keys alive.
    fn persist(&self, graph: Graph, outputs: &[Key]) -> Result<Vec<Value>, Error> {
        self.compute(graph, outputs)
    }

    /// Prepares a graph that may hold results kept by a scheduler elsewhere
    /// ([`RemoteValue`](crate::remote::RemoteValue)s, from a collection persisted on a
    /// cluster): by default they are fetched; a scheduler that reaches them in place (the
    /// client of that cluster) keeps them.
    fn resolve_remote(&self, graph: Graph) -> Result<Graph, Error> {
        crate::remote::fetch_remote(graph)
    }
}

/// A lazily described result: Dask's collection protocol.
///
/// Implementations say which keys hold their pieces ([`Collection::keys`]), how to add the
/// tasks that compute them to a graph ([`Collection::build_graph`]), how to turn the pieces
/// into the result ([`Collection::finalize`], e.g. concatenating array chunks), and how to
/// rebuild the collection around computed pieces ([`Collection::rebuild`], for `persist`).
/// Everything else — `compute`, `persist`, `visualize` — is provided.
pub trait Collection {
    /// What `compute` returns.
    type Output;
    /// What `persist` returns: the same kind of collection, backed by computed values.
    type Persisted;

    /// The keys whose values [`Collection::finalize`] needs, in the order it needs them.
    fn keys(&self) -> Vec<Key>;

    /// Adds every task needed for [`Collection::keys`] to `graph`.
    fn build_graph(&self, graph: &mut Graph);

    /// Builds the result from the values of [`Collection::keys`].
    fn finalize(&self, values: Vec<Value>) -> Result<Self::Output, Error>;

    /// The collection rebuilt around the values of [`Collection::keys`].
    fn rebuild(&self, values: Vec<Value>) -> Self::Persisted;

    /// The graph of this collection alone.
    fn graph(&self) -> Graph {
        let mut g = Graph::new();
        self.build_graph(&mut g);
        g
    }

    /// Computes the result on the current scheduler.
    fn compute(&self) -> Result<Self::Output, Error> {
        self.compute_with(&*current_scheduler()?)
    }

    /// Computes the result on `scheduler`.
    fn compute_with(&self, scheduler: &dyn Compute) -> Result<Self::Output, Error> {
        let graph = scheduler.resolve_remote(self.graph())?;
        let values = scheduler.compute(graph, &self.keys())?;
        self.finalize(values)
    }

    /// Computes the pieces and returns the collection backed by them, so later work starts
    /// from the results instead of recomputing them.
    ///
    /// On the local schedulers the pieces are held in memory; on a distributed client they
    /// stay on the workers, and the collection holds their keys alive there (later graphs
    /// refer to them by key, so nothing is recomputed or sent back; dropping the last
    /// collection using them releases them).
    fn persist(&self) -> Result<Self::Persisted, Error> {
        self.persist_with(&*current_scheduler()?)
    }

    /// [`Collection::persist`] on `scheduler`.
    fn persist_with(&self, scheduler: &dyn Compute) -> Result<Self::Persisted, Error> {
        let graph = scheduler.resolve_remote(self.graph())?;
        let values = scheduler.persist(graph, &self.keys())?;
        Ok(self.rebuild(values))
    }

    /// Writes a picture of the graph (`.svg`, `.png`, `.pdf` through Graphviz, or `.dot`).
    fn visualize(&self, path: impl AsRef<Path>) -> Result<(), Error>
    where
        Self: Sized,
    {
        Ok(self.graph().visualize(path, &DotOptions::default())?)
    }
}

impl<C: Collection + ?Sized> Collection for &C {
    type Output = C::Output;
    type Persisted = C::Persisted;

    fn keys(&self) -> Vec<Key> {
        (**self).keys()
    }

    fn build_graph(&self, graph: &mut Graph) {
        (**self).build_graph(graph)
    }

    fn finalize(&self, values: Vec<Value>) -> Result<C::Output, Error> {
        (**self).finalize(values)
    }

    fn rebuild(&self, values: Vec<Value>) -> C::Persisted {
        (**self).rebuild(values)
    }
}

impl<C: Collection> Collection for Vec<C> {
    type Output = Vec<C::Output>;
    type Persisted = Vec<C::Persisted>;

    fn keys(&self) -> Vec<Key> {
        self.iter().flat_map(|c| c.keys()).collect()
    }

    fn build_graph(&self, graph: &mut Graph) {
        self.iter().for_each(|c| c.build_graph(graph))
    }

    fn finalize(&self, values: Vec<Value>) -> Result<Self::Output, Error> {
        let mut it = values.into_iter();
        self.iter()
            .map(|c| c.finalize(it.by_ref().take(c.keys().len()).collect()))
            .collect()
    }

    fn rebuild(&self, values: Vec<Value>) -> Self::Persisted {
        let mut it = values.into_iter();
        self.iter()
            .map(|c| c.rebuild(it.by_ref().take(c.keys().len()).collect()))
            .collect()
    }
}

macro_rules! tuple_collection {
    ($($name:ident $idx:tt),+) => {
        impl<$($name: Collection),+> Collection for ($($name,)+) {
            type Output = ($($name::Output,)+);
            type Persisted = ($($name::Persisted,)+);

            fn keys(&self) -> Vec<Key> {
                let mut k = Vec::new();
                $(k.extend(self.$idx.keys());)+
                k
            }

            fn build_graph(&self, graph: &mut Graph) {
                $(self.$idx.build_graph(graph);)+
            }

            fn finalize(&self, values: Vec<Value>) -> Result<Self::Output, Error> {
                let mut it = values.into_iter();
                Ok(($(self.$idx.finalize(it.by_ref().take(self.$idx.keys().len()).collect())?,)+))
            }

            fn rebuild(&self, values: Vec<Value>) -> Self::Persisted {
                let mut it = values.into_iter();
                ($(self.$idx.rebuild(it.by_ref().take(self.$idx.keys().len()).collect()),)+)
            }
        }
    };
}

tuple_collection!(A 0);
tuple_collection!(A 0, B 1);
tuple_collection!(A 0, B 1, C 2);
tuple_collection!(A 0, B 1, C 2, D 3);
tuple_collection!(A 0, B 1, C 2, D 3, E 4);
tuple_collection!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_collection!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_collection!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

/// Computes several collections over one merged graph, so shared work runs once.
///
/// ```
/// use oxidask_core::{compute, delayed, Collection};
/// # oxidask_core::compute::with_scheduler(std::sync::Arc::new(oxidask_core::compute::Inline), || {
/// let a = delayed(1i64);
/// let b = a.map(|x| x + 1);
/// let (x, y) = compute((&a, &b)).unwrap();
/// assert_eq!((x, y), (1, 2));
/// # });
/// ```
pub fn compute<C: Collection>(collections: C) -> Result<C::Output, Error> {
    collections.compute()
}

/// Persists several collections over one merged graph.
pub fn persist<C: Collection>(collections: C) -> Result<C::Persisted, Error> {
    collections.persist()
}

/// A scheduler linked into the binary that `compute()` falls back to.
pub struct DefaultScheduler {
    /// Higher wins when several are linked.
    pub priority: i32,
    /// Creates the scheduler (called once).
    pub make: fn() -> Arc<dyn Compute>,
}

inventory::collect!(DefaultScheduler);

thread_local! {
    static THREAD_SCHEDULER: RefCell<Vec<Arc<dyn Compute>>> = const { RefCell::new(Vec::new()) };
}

fn global() -> &'static RwLock<Option<Arc<dyn Compute>>> {
    static GLOBAL: RwLock<Option<Arc<dyn Compute>>> = RwLock::new(None);
    &GLOBAL
}

fn linked_default() -> Option<Arc<dyn Compute>> {
    static DEFAULT: OnceLock<Option<Arc<dyn Compute>>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            inventory::iter::<DefaultScheduler>
                .into_iter()
                .max_by_key(|d| d.priority)
                .map(|d| (d.make)())
        })
        .clone()
}

/// The scheduler `compute()` uses on this thread now.
pub fn current_scheduler() -> Result<Arc<dyn Compute>, Error> {
    if let Some(s) = THREAD_SCHEDULER.with(|t| t.borrow().last().cloned()) {
        return Ok(s);
    }
    if let Some(s) = global().read().unwrap_or_else(|p| p.into_inner()).clone() {
        return Ok(s);
    }
    linked_default().ok_or(Error::NoScheduler)
}

/// Sets (or with `None` clears) the process-wide scheduler; returns the previous one.
pub fn set_global_scheduler(s: Option<Arc<dyn Compute>>) -> Option<Arc<dyn Compute>> {
    std::mem::replace(&mut *global().write().unwrap_or_else(|p| p.into_inner()), s)
}

/// Runs `f` with `scheduler` as this thread's scheduler (like `dask.config.set(scheduler=…)`
/// as a context manager).
pub fn with_scheduler<R>(scheduler: Arc<dyn Compute>, f: impl FnOnce() -> R) -> R {
    let _guard = enter_scheduler(scheduler);
    f()
}

/// Makes `scheduler` this thread's scheduler until the guard drops.
pub fn enter_scheduler(scheduler: Arc<dyn Compute>) -> SchedulerGuard {
    THREAD_SCHEDULER.with(|t| t.borrow_mut().push(scheduler));
    SchedulerGuard { _private: () }
}

/// Restores the previous thread scheduler when dropped.
#[must_use = "the scheduler is only in effect while the guard lives"]
pub struct SchedulerGuard {
    _private: (),
}

impl Drop for SchedulerGuard {
    fn drop(&mut self) {
        THREAD_SCHEDULER.with(|t| {
            t.borrow_mut().pop();
        });
    }
}

/// The simplest scheduler: runs the plan in order on the calling thread. Used by core's own
/// tests and doc examples; `oxidask-local` has the real synchronous and threaded schedulers.
#[derive(Debug, Default, Clone, Copy)]
pub struct Inline;

impl Compute for Inline {
    fn compute(&self, graph: Graph, outputs: &[Key]) -> Result<Vec<Value>, Error> {
        crate::reference::evaluate(&graph, outputs)
    }

    fn name(&self) -> &'static str {
        "inline"
    }
}
