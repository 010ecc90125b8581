//! Actors (Dask's `actor=True`): stateful objects that live on this worker and answer calls
//! one at a time.
//!
//! An actor is made by a task: its operation builds the object and hands it to [`register`],
//! which gives it a thread of its own and a bounded queue, and returns where it lives (this
//! worker's data address and the task's key) for the task to return as a handle. Calls arrive
//! on the data port ([`DataRequest::Actor`](oxidask_protocol::DataRequest::Actor)), straight
//! from the caller (a client or another worker's task), never through the scheduler; the port
//! queues them and goes on serving, and the actor's thread runs them in arrival order and
//! answers on the connection they came from. The object is held here, not in the data store:
//! it is never spilled, sent or copied. It goes when the scheduler frees its key (the client
//! released the actor's future) or the worker stops.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use oxidask_core::Key;
use oxidask_protocol::{ActorOutcome, ErrorKind, Payload, WireError, WireKey};

use crate::Shared;

/// Calls one actor may have waiting before new ones are refused.
pub const ACTOR_QUEUE_LIMIT: usize = 100_000;

/// A stateful object a worker holds as an actor: something that answers named calls with
/// encoded arguments (the runtime's own encoding: pickles for Python, the codec for Rust).
///
/// Calls run one at a time, on the actor's own thread, in the order they arrived.
///
/// ```
/// use bytes::Bytes;
/// use oxidask_protocol::WireError;
/// use oxidask_worker::ActorInstance;
///
/// struct Counter(u64);
///
/// impl ActorInstance for Counter {
///     fn call(&mut self, name: &str, _attribute: bool, _args: Bytes) -> Result<Bytes, WireError> {
///         match name {
///             "increment" => {
///                 self.0 += 1;
///                 Ok(Bytes::copy_from_slice(&self.0.to_le_bytes()))
///             }
///             other => Err(WireError::invalid(format!("Counter has no method {other:?}"))),
///         }
///     }
/// }
///
/// let mut c = Counter(0);
/// assert_eq!(&c.call("increment", false, Bytes::new()).unwrap()[..], &1u64.to_le_bytes());
/// ```
pub trait ActorInstance: Send + 'static {
    /// Runs the method `name` with `args` (or reads the attribute `name` if `attribute`),
    /// returning the encoded reply. An error here reaches the caller as it is.
    fn call(&mut self, name: &str, attribute: bool, args: Bytes) -> Result<Bytes, WireError>;
}

/// Where an actor lives: what a handle needs to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorPlacement {
    /// The actor's key (the key of the task that made it).
    pub key: Key,
    /// The data address of the worker holding it.
    pub address: String,
}

/// One call waiting for an actor.
pub(crate) struct Job {
    pub name: String,
    pub attribute: bool,
    pub args: Bytes,
    pub reply: Box<dyn FnOnce(ActorOutcome) + Send>,
}

/// The actors a worker holds: a queue into each one's thread.
#[derive(Default)]
pub(crate) struct Actors {
    slots: Mutex<HashMap<Key, SyncSender<Job>>>,
}

impl Actors {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<Key, SyncSender<Job>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job` for the actor `key`; answers at once if there is no such actor here or
    /// its queue is full.
    pub(crate) fn submit(&self, worker: &str, key: WireKey, job: Job) {
        let tx = key
            .to_key()
            .ok()
            .and_then(|k| self.slots().get(&k).cloned());
        let Some(tx) = tx else {
            (job.reply)(ActorOutcome::Error(lost(&key, worker)));
            return;
        };
        match tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => (job.reply)(ActorOutcome::Error(WireError {
                key: Some(key),
                op: "actor".into(),
                kind: ErrorKind::Unavailable,
                message: format!(
                    "actor {key} has {ACTOR_QUEUE_LIMIT} calls waiting and takes no more; wait for some results (call .result()) before making more calls"
                ),
                causes: Vec::new(),
                detail: None,
            })),
            Err(TrySendError::Disconnected(job)) => {
                (job.reply)(ActorOutcome::Error(lost(&key, worker)))
            }
        }
    }

    /// Drops the actor `key` (its thread finishes the calls already queued, then exits).
    pub(crate) fn free(&self, key: &Key) {
        self.slots().remove(key);
    }

    /// Drops every actor (the worker is stopping).
    pub(crate) fn clear(&self) {
        self.slots().clear();
    }
}

fn lost(key: &WireKey, worker: &str) -> WireError {
    WireError {
        key: Some(*key),
        op: "actor".into(),
        kind: ErrorKind::Unavailable,
        message: format!(
            "actor {key} is not on worker {worker}: it was released (its future was dropped) or its worker restarted; actors are not recomputed, submit it again"
        ),
        causes: Vec::new(),
        detail: None,
    }
}

/// Makes `instance` the actor of the task running on this thread and returns where it lives.
///
/// Call it from the operation of the task creating the actor (Python's `submit(...,
/// actor=True)` does); the task's result should be a handle built from the placement.
/// Fails outside a worker's task.
pub fn register(instance: Box<dyn ActorInstance>) -> Result<ActorPlacement, String> {
    let (shared, key) = crate::execute::current_task().ok_or_else(|| {
        "actors are made by tasks on a worker: submit the class to a Client with actor=True"
            .to_string()
    })?;
    spawn(&shared, key, instance)?;
    Ok(ActorPlacement {
        key,
        address: shared.data_address.clone(),
    })
}

fn spawn(
    shared: &Arc<Shared>,
    key: Key,
    mut instance: Box<dyn ActorInstance>,
) -> Result<(), String> {
    let (tx, rx) = sync_channel::<Job>(ACTOR_QUEUE_LIMIT);
    let name = "oxidask-actor".to_string();
    let wk = WireKey::from(&key);
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            crate::execute::enter_actor_thread(thread_shared);
            while let Ok(job) = rx.recv() {
                let Job {
                    name,
                    attribute,
                    args,
                    reply,
                } = job;
                let outcome = match catch_unwind(AssertUnwindSafe(|| {
                    instance.call(&name, attribute, args)
                })) {
                    Ok(Ok(bytes)) => ActorOutcome::Value(Payload(bytes)),
                    Ok(Err(e)) => ActorOutcome::Error(e),
                    Err(p) => {
                        let why = p
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a panic".into());
                        ActorOutcome::Error(WireError {
                            key: Some(wk),
                            op: name.clone(),
                            kind: ErrorKind::Panic,
                            message: format!("actor {wk} panicked in {name}: {why}"),
                            causes: Vec::new(),
                            detail: None,
                        })
                    }
                };
                reply(outcome);
            }
        })
        .map_err(|e| format!("cannot start a thread for actor {key}: {e}"))?;
    shared.actors.slots().insert(key, tx);
    Ok(())
}

// ---- Rust actors ---------------------------------------------------------------------------

/// A Rust type that runs as an actor: built on a worker from `Init`, then answering `Msg`s
/// with `Reply`s one at a time. Register it with [`register_actor!`](crate::register_actor)
/// so that workers of the same program can build it, and create it with
/// `Client::submit_actor` (in `oxidask-client`).
///
/// ```
/// use oxidask_worker::actor::Actor;
///
/// struct Counter {
///     n: i64,
/// }
///
/// impl Actor for Counter {
///     const NAME: &'static str = "doc-counter";
///     type Init = i64;
///     type Msg = i64;
///     type Reply = i64;
///
///     fn new(start: i64) -> Result<Self, String> {
///         Ok(Counter { n: start })
///     }
///
///     fn handle(&mut self, by: i64) -> Result<i64, String> {
///         self.n += by;
///         Ok(self.n)
///     }
/// }
/// oxidask_worker::register_actor!(Counter);
///
/// let mut c = Counter::new(1).unwrap();
/// assert_eq!(c.handle(2), Ok(3));
/// ```
pub trait Actor: Sized + Send + 'static {
    /// The name workers know the type by (unique in the program).
    const NAME: &'static str;
    /// What it is built from.
    type Init: oxidask_core::Data;
    /// What it is sent.
    type Msg: oxidask_core::Data;
    /// What it answers.
    type Reply: oxidask_core::Data;

    /// Builds the actor (on the worker); an error fails the actor's future.
    fn new(init: Self::Init) -> Result<Self, String>;

    /// Answers one message; an error reaches the caller.
    fn handle(&mut self, msg: Self::Msg) -> Result<Self::Reply, String>;
}

/// Builds an actor from its encoded `Init`.
pub type MakeActor = fn(&[u8]) -> Result<Box<dyn ActorInstance>, String>;

/// A registered Rust actor type (see [`register_actor!`](crate::register_actor)).
pub struct ActorType {
    /// [`Actor::NAME`].
    pub name: &'static str,
    /// Builds one from its encoded `Init`.
    pub make: MakeActor,
}

impl ActorType {
    /// The registration of `A`.
    pub const fn of<A: Actor>() -> ActorType {
        ActorType {
            name: A::NAME,
            make: make_typed::<A>,
        }
    }
}

oxidask_core::__private::inventory::collect!(ActorType);

/// Registers a type implementing [`Actor`] so that workers of this program can build it.
#[macro_export]
macro_rules! register_actor {
    ($t:ty) => {
        $crate::__private_inventory::submit! { $crate::actor::ActorType::of::<$t>() }
    };
}

struct Typed<A>(A);

fn make_typed<A: Actor>(init: &[u8]) -> Result<Box<dyn ActorInstance>, String> {
    let init: A::Init = oxidask_core::decode(init)
        .map_err(|e| format!("the arguments of actor {} cannot be decoded: {e}", A::NAME))?;
    Ok(Box::new(Typed(A::new(init)?)))
}

impl<A: Actor> ActorInstance for Typed<A> {
    fn call(&mut self, name: &str, attribute: bool, args: Bytes) -> Result<Bytes, WireError> {
        let fail = |kind, message: String| WireError {
            key: None,
            op: A::NAME.to_owned(),
            kind,
            message,
            causes: Vec::new(),
            detail: None,
        };
        if attribute {
            return Err(fail(
                ErrorKind::Argument,
                format!(
                    "Rust actor {} has no attribute {name:?}: send it a message",
                    A::NAME
                ),
            ));
        }
        let msg: A::Msg = oxidask_core::decode(&args).map_err(|e| {
            fail(
                ErrorKind::Argument,
                format!("a message to actor {} cannot be decoded: {e}", A::NAME),
            )
        })?;
        let reply = self.0.handle(msg).map_err(|e| fail(ErrorKind::Task, e))?;
        Ok(Bytes::from(oxidask_core::encode(&reply)))
    }
}

/// The value of a Rust actor's future: which actor, and where it lives.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct ActorRef {
    /// [`Actor::NAME`].
    pub type_name: String,
    /// The actor's key.
    pub key: String,
    /// The data address of the worker holding it.
    pub address: String,
}

/// The task that builds a Rust actor: the registered type `type_name` from its encoded
/// `Init`, made the actor of this task. Not pure: every submission is a new actor.
#[oxidask_core::task(crate = oxidask_core, name = "oxidask_actor_new", pure = false)]
pub fn actor_new(type_name: String, init: Vec<u8>) -> Result<ActorRef, String> {
    let ty = oxidask_core::__private::inventory::iter::<ActorType>
        .into_iter()
        .find(|t| t.name == type_name)
        .ok_or_else(|| {
            format!(
                "no actor type {type_name:?} is registered in this worker's program; register the type with register_actor!(Type) (oxidask::distributed) and run workers of the same program"
            )
        })?;
    let instance = (ty.make)(&init)?;
    let placement = register(instance)?;
    Ok(ActorRef {
        type_name,
        key: placement.key.to_string(),
        address: placement.address,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    fn job(reply: std::sync::mpsc::Sender<ActorOutcome>) -> Job {
        Job {
            name: "increment".into(),
            attribute: false,
            args: Bytes::new(),
            reply: Box::new(move |o| {
                let _ = reply.send(o);
            }),
        }
    }

    #[test]
    fn a_call_to_an_unknown_actor_is_answered_at_once() {
        let actors = Actors::default();
        let (tx, rx) = channel();
        let k = Key::new("counter", oxidask_core::Token::from_u128(1));
        actors.submit("w:1", WireKey::from(&k), job(tx));
        match rx.try_recv().expect("an immediate answer") {
            ActorOutcome::Error(e) => assert!(e.message.contains("is not on worker w:1"), "{e:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_full_queue_refuses_calls_saying_what_to_do() {
        let actors = Actors::default();
        let k = Key::new("counter", oxidask_core::Token::from_u128(2));
        // An actor busy with one call and one waiting: its queue holds one.
        let (qtx, _qrx) = sync_channel::<Job>(1);
        actors.slots().insert(k, qtx);
        let (tx, rx) = channel();
        actors.submit("w:1", WireKey::from(&k), job(tx.clone()));
        assert!(rx.try_recv().is_err(), "the first call waits in the queue");
        actors.submit("w:1", WireKey::from(&k), job(tx));
        match rx.try_recv().expect("the second is refused at once") {
            ActorOutcome::Error(e) => {
                assert!(e.message.contains("takes no more"), "{e:?}");
                assert!(e.message.contains("before making more calls"), "{e:?}");
            }
            other => panic!("{other:?}"),
        }
        // Freed: later calls say it is gone.
        actors.free(&k);
        let (tx, rx) = channel();
        actors.submit("w:1", WireKey::from(&k), job(tx));
        assert!(matches!(rx.try_recv(), Ok(ActorOutcome::Error(_))));
    }
}
