//! Coordination objects on the wire: Dask's named, cluster-wide `Variable`, `Queue`, `Lock`,
//! `Semaphore`, `Event`, `Pub`/`Sub`, published datasets and the event log.
//!
//! A client sends [`crate::ToScheduler::Coord`] with a request id and a [`CoordOp`]; the
//! scheduler answers [`crate::ToClient::Coord`] with the same id and a [`CoordReply`] — at
//! once, or when the operation can complete (a `get` waiting for a value), or when its timeout
//! passes ([`CoordReply::TimedOut`]). User values are opaque bytes ([`CoordValue::data`],
//! pickled by Python clients, encoded by Rust ones): the scheduler never decodes them. A value
//! may refer to futures ([`CoordValue::keys`]); the scheduler keeps those keys computed and
//! held while the value is stored, and a client that receives a value holds its keys from the
//! moment the reply is sent (it must make futures of them, or release them).

use crate::frame::Payload;
use crate::wire::WireKey;

/// A value stored in a coordination object.
#[derive(Clone, Debug, Default, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct CoordValue {
    /// The value, encoded by the client (the scheduler never decodes it).
    pub data: Payload,
    /// Keys of the futures the value refers to, kept alive while it is stored.
    pub keys: Vec<WireKey>,
}

/// One entry of the event log ([`CoordOp::LogEvent`]).
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct LoggedEvent {
    /// The topic.
    pub topic: String,
    /// Seconds since the Unix epoch, as the logging client's clock said.
    pub time: f64,
    /// The message, encoded by the client.
    pub msg: Payload,
}

/// What a coordination request asks. Timeouts are in milliseconds; `None` waits forever,
/// `Some(0)` does not wait.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum CoordOp {
    /// Sets a variable (replacing and releasing the previous value); wakes its getters.
    VariableSet {
        /// The variable.
        name: String,
        /// The value.
        value: CoordValue,
    },
    /// A variable's value, waiting until it is set. Replies `Value` or `TimedOut`.
    VariableGet {
        /// The variable.
        name: String,
        /// How long to wait.
        timeout_ms: Option<u64>,
    },
    /// Deletes a variable's value. Replies `Done`.
    VariableDelete {
        /// The variable.
        name: String,
    },
    /// Creates a queue with a bound (0: unbounded) unless it exists. Replies `Done`.
    QueueCreate {
        /// The queue.
        name: String,
        /// Items it may hold (0: no bound but the scheduler's limit).
        maxsize: u64,
    },
    /// Appends an item, waiting for room in a bounded queue. Replies `Done` or `TimedOut`.
    QueuePut {
        /// The queue.
        name: String,
        /// The item.
        value: CoordValue,
        /// How long to wait for room.
        timeout_ms: Option<u64>,
    },
    /// Takes `count` items (waiting until there are that many), or with `count == 0` every
    /// item there is now without waiting. Replies `Values` or `TimedOut`.
    QueueGet {
        /// The queue.
        name: String,
        /// Items to take (0: all there are).
        count: u32,
        /// How long to wait.
        timeout_ms: Option<u64>,
    },
    /// Items in a queue. Replies `Count`.
    QueueSize {
        /// The queue.
        name: String,
    },
    /// Acquires a lock for `holder` (an id unique within the client). Replies `Flag(true)`,
    /// or `Flag(false)` when not `blocking` or on timeout.
    LockAcquire {
        /// The lock.
        name: String,
        /// Who acquires (the client's lock object).
        holder: u64,
        /// Wait while another holds it.
        blocking: bool,
        /// How long to wait.
        timeout_ms: Option<u64>,
    },
    /// Releases a lock `holder` of this client holds. Replies `Done`, or `Failed(NotHeld)`.
    LockRelease {
        /// The lock.
        name: String,
        /// Who releases.
        holder: u64,
    },
    /// Whether a lock is held. Replies `Flag`.
    LockLocked {
        /// The lock.
        name: String,
    },
    /// Creates a semaphore with `max_leases` unless it exists (then the number must agree).
    /// Replies `Done` or `Failed(Invalid)`.
    SemaphoreCreate {
        /// The semaphore.
        name: String,
        /// Leases it grants at once.
        max_leases: u32,
    },
    /// Takes lease `lease` (an id unique within the client). Replies `Flag(true)`, or
    /// `Flag(false)` when not `blocking` or on timeout.
    SemaphoreAcquire {
        /// The semaphore.
        name: String,
        /// The lease's id.
        lease: u64,
        /// Wait while every lease is taken.
        blocking: bool,
        /// How long to wait.
        timeout_ms: Option<u64>,
    },
    /// Returns lease `lease`. Replies `Done`, or `Failed(NotHeld)`.
    SemaphoreRelease {
        /// The semaphore.
        name: String,
        /// The lease's id.
        lease: u64,
    },
    /// Leases held now. Replies `Count`.
    SemaphoreValue {
        /// The semaphore.
        name: String,
    },
    /// Sets an event, waking its waiters. Replies `Done`.
    EventSet {
        /// The event.
        name: String,
    },
    /// Clears an event. Replies `Done`.
    EventClear {
        /// The event.
        name: String,
    },
    /// Waits until an event is set. Replies `Flag(true)`, or `Flag(false)` on timeout.
    EventWait {
        /// The event.
        name: String,
        /// How long to wait.
        timeout_ms: Option<u64>,
    },
    /// Whether an event is set. Replies `Flag`.
    EventIsSet {
        /// The event.
        name: String,
    },
    /// Sends a message to every subscriber of a topic (dropped if none). Replies `Count`
    /// (subscribers reached).
    Publish {
        /// The topic.
        topic: String,
        /// The message.
        msg: Payload,
    },
    /// Subscribes `subscriber` (an id unique within the client) to a topic: messages
    /// published from now on are buffered for it. Replies `Done`.
    Subscribe {
        /// The topic.
        topic: String,
        /// The subscriber's id.
        subscriber: u64,
    },
    /// Ends a subscription. Replies `Done`.
    Unsubscribe {
        /// The topic.
        topic: String,
        /// The subscriber's id.
        subscriber: u64,
    },
    /// The next message for a subscriber (`count == 0`: every buffered one, without
    /// waiting). Replies `Messages` or `TimedOut`.
    SubGet {
        /// The topic.
        topic: String,
        /// The subscriber's id.
        subscriber: u64,
        /// 1 to wait for one message; 0 for all buffered ones now.
        count: u32,
        /// How long to wait.
        timeout_ms: Option<u64>,
    },
    /// Publishes a dataset under a name. Replies `Done`, or `Failed(AlreadyExists)` when the
    /// name is taken and not `overwrite`.
    DatasetPublish {
        /// The name.
        name: String,
        /// The value.
        value: CoordValue,
        /// Replace a dataset of the same name.
        overwrite: bool,
    },
    /// A published dataset. Replies `Value` or `Failed(NotFound)`.
    DatasetGet {
        /// The name.
        name: String,
    },
    /// Removes a published dataset. Replies `Done` or `Failed(NotFound)`.
    DatasetUnpublish {
        /// The name.
        name: String,
    },
    /// Names of the published datasets, sorted. Replies `Names`.
    DatasetList,
    /// Appends to a topic of the event log (bounded: the oldest entries go). Replies `Done`.
    LogEvent {
        /// The topic.
        topic: String,
        /// Seconds since the Unix epoch (the client's clock).
        time: f64,
        /// The message.
        msg: Payload,
    },
    /// A topic's logged events, oldest first (`None`: every topic's). Replies `Events`.
    GetEvents {
        /// The topic.
        topic: Option<String>,
    },
    /// Gives up an earlier request of this client still waiting (the caller was
    /// interrupted). No reply; the abandoned request gets none either.
    Abandon {
        /// The request.
        request: u64,
    },
    /// This client holds futures for these keys, which a reply handed it while it did not
    /// hold them (so that a `Release` it sent before the reply arrived cannot leave them
    /// unheld). No reply; a key the scheduler no longer knows gets `KeyErred`.
    Hold {
        /// The keys.
        keys: Vec<WireKey>,
    },
}

/// Why a coordination request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum CoordErrorKind {
    /// No such dataset.
    NotFound,
    /// A dataset of that name exists.
    AlreadyExists,
    /// Released by someone who does not hold it.
    NotHeld,
    /// A future the value refers to is not known to the scheduler.
    UnknownKey,
    /// A scheduler limit (items in a queue, bytes held, objects) would be passed.
    Limit,
    /// Arguments that cannot be honoured (a semaphore re-created with another size).
    Invalid,
}

/// The answer to a [`CoordOp`].
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum CoordReply {
    /// Done.
    Done,
    /// A value (the receiver now holds its keys).
    Value(CoordValue),
    /// Values, in order (the receiver now holds their keys).
    Values(Vec<CoordValue>),
    /// Messages of a subscription, in order.
    Messages(Vec<Payload>),
    /// Yes or no.
    Flag(bool),
    /// A number.
    Count(u64),
    /// Names.
    Names(Vec<String>),
    /// Logged events, oldest first.
    Events(Vec<LoggedEvent>),
    /// The timeout passed first.
    TimedOut,
    /// Refused, saying why and what to do.
    Failed {
        /// What kind of failure.
        kind: CoordErrorKind,
        /// The message for the user.
        message: String,
    },
}

impl CoordReply {
    /// The keys the reply hands over to its receiver.
    pub fn keys(&self) -> impl Iterator<Item = &WireKey> {
        let values: &[CoordValue] = match self {
            CoordReply::Value(v) => std::slice::from_ref(v),
            CoordReply::Values(v) => v,
            _ => &[],
        };
        values.iter().flat_map(|v| v.keys.iter())
    }
}
