//! Wire forms of keys, values, tasks and errors, and their conversion to and from core types.
//!
//! Only this crate knows these shapes; the scheduler works on `WireKey`s it interns, workers
//! and clients convert at the edge. A task that cannot travel (a closure, a value without a
//! codec) is refused here with a message saying how to make it portable.

use oxidask_core::codec::{CodecError, Reader, Writer};
use oxidask_core::op::{FailureKind, TaskFailure};
use oxidask_core::task::{Arg, Op, TaskSpec};
use oxidask_core::{Key, Prefix, TaskError, Token, Value};

use crate::frame::Payload;

/// A key on the wire: its prefix text, its token and its block index.
///
/// In memory it is the process's [`Key`] (32 bytes, `Copy`, no allocation); on the wire the
/// prefix travels as text and is interned on arrival. Interned text lives as long as the
/// process, so what a peer may add is limited: prefixes are at most [`MAX_PREFIX_LEN`]
/// bytes, each connection may add at most what its [`PrefixAdmission`] allows, and the whole
/// table at most [`oxidask_core::key::MAX_PREFIXES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WireKey(pub Key);

/// Longest prefix text accepted from the wire.
pub const MAX_PREFIX_LEN: usize = 256;

/// New key prefixes one connection may add to a process (see [`PrefixAdmission`]). A prefix
/// names an operation or a layer, so a client adds a few dozen; 65,536 leave room for
/// programs that name every task differently while one misbehaving peer pins at most
/// 65,536 × 256 bytes and is then cut off, not the whole table.
pub const MAX_NEW_PREFIXES_PER_CONNECTION: usize = 1 << 16;

/// How many key prefixes this process did not know yet a connection may still add.
///
/// Prefix text is interned for the life of the process, and the table is shared, so a
/// connection that could add prefixes freely could pin memory for good and fill the table
/// for everyone (the table then refuses new prefixes, legitimate ones too). Each
/// connection's reader therefore owns an admission and decodes through it
/// ([`crate::frame::read_frame_admitting`]): clients and workers may add up to
/// [`MAX_NEW_PREFIXES_PER_CONNECTION`] (clients introduce the keys of their graphs);
/// data-port peers may add none, since a key this worker never knew is not one it holds.
/// Decoding without an admission ([`crate::read_frame`]) is limited by the table only: for
/// what a process reads from the scheduler it chose to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixAdmission {
    left: usize,
    budget: usize,
}

impl PrefixAdmission {
    /// For a peer that may add up to [`MAX_NEW_PREFIXES_PER_CONNECTION`] prefixes.
    pub fn per_connection() -> PrefixAdmission {
        PrefixAdmission::with_budget(MAX_NEW_PREFIXES_PER_CONNECTION)
    }

    /// For a peer that may only name keys whose prefixes this process already knows.
    pub fn known_only() -> PrefixAdmission {
        PrefixAdmission::with_budget(0)
    }

    /// For a peer that may add up to `n` prefixes.
    pub fn with_budget(n: usize) -> PrefixAdmission {
        PrefixAdmission { left: n, budget: n }
    }

    /// How many more it may add.
    pub fn remaining(&self) -> usize {
        self.left
    }

    /// Runs `f` (a decode) with this admission applying to every key it decodes.
    /// The thread's previous admission comes back even if `f` panics.
    pub(crate) fn scope<T>(&mut self, f: impl FnOnce() -> T) -> T {
        struct Restore<'a> {
            admission: &'a mut PrefixAdmission,
            saved: Option<(usize, usize)>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                if let Some((left, _)) = ADMISSION.with(|a| a.replace(self.saved)) {
                    self.admission.left = left;
                }
            }
        }
        let saved = ADMISSION.with(|a| a.replace(Some((self.left, self.budget))));
        let _restore = Restore {
            admission: self,
            saved,
        };
        f()
    }
}

thread_local! {
    /// Prefixes the decode running on this thread may still add, of how many; `None`: no
    /// admission (limited by the table only).
    static ADMISSION: std::cell::Cell<Option<(usize, usize)>> = const { std::cell::Cell::new(None) };
}

/// The prefix `text` arriving from the wire, interned if the running decode's admission and
/// the table allow it.
fn admit_prefix(text: &str) -> Result<Prefix, CodecError> {
    if let Some(p) = Prefix::known(text) {
        return Ok(p);
    }
    let admission = ADMISSION.with(|a| a.get());
    match admission {
        Some((_, 0)) => {
            return Err(CodecError::Invalid {
                what: "key prefix",
                detail: format!(
                    "`{}` names no key this process has ever held (this port serves only keys it holds)",
                    text.escape_debug()
                ),
            });
        }
        Some((0, budget)) => {
            return Err(CodecError::Invalid {
                what: "key prefix",
                detail: format!(
                    "this connection introduced more than {budget} distinct key prefixes; a prefix names an operation or a layer (`inc`, `sum-aggregate`): put what varies between tasks in the key's token or block index (in Python, `key=f\"name-{{i}}\"` keeps the prefix `name`)"
                ),
            });
        }
        _ => {}
    }
    let p = Prefix::try_intern(text).ok_or_else(|| CodecError::Invalid {
        what: "key prefix",
        detail: format!(
            "this process already holds {} distinct key prefixes, the most it accepts from other processes; restart it, and give tasks prefixes that name operations or layers rather than single tasks",
            oxidask_core::key::MAX_PREFIXES
        ),
    })?;
    if let Some((left, budget)) = admission {
        ADMISSION.with(|a| a.set(Some((left - 1, budget))));
    }
    Ok(p)
}

impl From<&Key> for WireKey {
    fn from(k: &Key) -> Self {
        WireKey(*k)
    }
}

impl From<Key> for WireKey {
    fn from(k: Key) -> Self {
        WireKey(k)
    }
}

impl WireKey {
    /// The key in this process.
    pub fn to_key(&self) -> Result<Key, WireError> {
        Ok(self.0)
    }
}

impl std::fmt::Display for WireKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl oxidask_core::Data for WireKey {
    fn heap_bytes(&self) -> usize {
        0
    }

    fn encode(&self, w: &mut Writer<'_>) {
        let prefix = self.0.prefix_str();
        w.put_len(prefix.len());
        w.put_bytes(prefix.as_bytes());
        w.put_bytes(&self.0.token().as_u128().to_le_bytes()[..12]);
        let index = self.0.index();
        w.put_u8(index.len() as u8);
        for &i in index {
            w.put_varint(i as u64);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let len = r.get_len("key prefix", 1)?;
        if len > MAX_PREFIX_LEN {
            return Err(CodecError::Invalid {
                what: "key prefix",
                detail: format!("{len} bytes, more than {MAX_PREFIX_LEN}"),
            });
        }
        let text =
            std::str::from_utf8(r.take(len, "key prefix")?).map_err(|e| CodecError::Invalid {
                what: "key prefix",
                detail: e.to_string(),
            })?;
        let prefix = admit_prefix(text)?;
        let mut token = [0u8; 16];
        token[..12].copy_from_slice(r.take(12, "key token")?);
        let ndim = r.get_u8("key dimensions")? as usize;
        if ndim > oxidask_core::key::MAX_KEY_DIMS {
            return Err(CodecError::Invalid {
                what: "key dimensions",
                detail: format!("{ndim} block coordinates"),
            });
        }
        let mut index = [0u32; oxidask_core::key::MAX_KEY_DIMS];
        for slot in index.iter_mut().take(ndim) {
            let v = r.get_varint("key index")?;
            *slot = u32::try_from(v).map_err(|_| CodecError::Invalid {
                what: "key index",
                detail: format!("{v} is out of range"),
            })?;
        }
        Ok(WireKey(Key::from_parts(
            prefix,
            Token::from_u128(u128::from_le_bytes(token)),
            &index[..ndim],
        )))
    }
}

/// A value on the wire: its type's name, its encoding and its out-of-band buffers (each a
/// frame part of its own, never copied into the header).
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct WireValue {
    /// `std::any::type_name` of the value (a foreign value's codec name).
    pub type_name: String,
    /// The encoding.
    pub bytes: Payload,
    /// Buffers the codec handed over as they are (a pickled NumPy array's memory).
    pub buffers: Vec<Payload>,
}

impl WireValue {
    /// Encodes a value (it must have a codec).
    pub fn from_value(v: &Value) -> Result<WireValue, WireError> {
        let parts = v
            .encode_parts()
            .map_err(|e| WireError::invalid(e.to_string()))?;
        Ok(WireValue {
            type_name: v.type_name().to_owned(),
            bytes: Payload(bytes::Bytes::from(parts.head)),
            buffers: parts.buffers.into_iter().map(Payload).collect(),
        })
    }

    /// Decodes by type name. A panicking decoder is an error (see
    /// [`crate::frame::catch_decode`]).
    pub fn to_value(&self) -> Result<Value, WireError> {
        crate::frame::catch_decode("value", || {
            oxidask_core::codecs::decode_parts(
                &self.type_name,
                &self.bytes.0,
                self.buffers.iter().map(|b| b.0.clone()).collect(),
            )
        })
        .map_err(|e| WireError::invalid(e.to_string()))
    }

    /// Bytes of the encoding and the buffers together.
    pub fn len(&self) -> usize {
        self.bytes.0.len() + self.buffers.iter().map(|b| b.0.len()).sum::<usize>()
    }

    /// True if it carries no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One argument on the wire.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum WireArg {
    /// Another task's result.
    Key(WireKey),
    /// A literal.
    Value(WireValue),
    /// A list.
    List(Vec<WireArg>),
}

/// A task spec on the wire.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum WireSpec {
    /// Call a registered operation by name.
    Call {
        /// The operation's registered name.
        op: String,
        /// Its arguments.
        args: Vec<WireArg>,
    },
    /// A value.
    Value(WireValue),
    /// Another key's value.
    Alias(WireKey),
    /// Fused steps.
    Fused(Vec<(WireKey, WireSpec)>),
}

/// A task with its key and the keys it reads.
///
/// The spec travels encoded, as a payload part: the scheduler stores and forwards it without
/// decoding it (it needs only `deps`), and only the worker that runs the task decodes it.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct WireTask {
    /// The key.
    pub key: WireKey,
    /// The encoded [`WireSpec`].
    pub spec: Payload,
    /// The distinct keys it reads.
    pub deps: Vec<WireKey>,
}

impl WireTask {
    /// A task from its key, spec and dependencies.
    pub fn new(key: WireKey, spec: &WireSpec, deps: Vec<WireKey>) -> WireTask {
        WireTask {
            key,
            spec: crate::frame::encode_detached(spec),
            deps,
        }
    }

    /// The decoded spec.
    pub fn decode_spec(&self) -> Result<WireSpec, WireError> {
        crate::frame::decode_detached(&self.spec).map_err(|e| WireError {
            key: Some(self.key),
            ..WireError::invalid(format!("the spec of task {} is malformed: {e}", self.key))
        })
    }
}

/// What kind of failure a [`WireError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The task's operation returned an error.
    Task,
    /// The task's operation panicked.
    Panic,
    /// An argument had the wrong type or shape.
    Argument,
    /// The operation cannot run there (unregistered, not portable).
    Unavailable,
    /// A malformed or unusable message.
    Invalid,
    /// The task was on too many workers that died (Dask's `KilledWorker`).
    KilledWorker,
    /// The task was cancelled.
    Cancelled,
    /// No connected worker can run the task (restrictions, resources).
    NoWorker,
}

impl oxidask_core::Data for ErrorKind {
    fn encode(&self, w: &mut Writer<'_>) {
        w.put_u8(match self {
            ErrorKind::Task => 0,
            ErrorKind::Panic => 1,
            ErrorKind::Argument => 2,
            ErrorKind::Unavailable => 3,
            ErrorKind::Invalid => 4,
            ErrorKind::KilledWorker => 5,
            ErrorKind::Cancelled => 6,
            ErrorKind::NoWorker => 7,
        })
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(match r.get_u8("error kind")? {
            0 => ErrorKind::Task,
            1 => ErrorKind::Panic,
            2 => ErrorKind::Argument,
            3 => ErrorKind::Unavailable,
            4 => ErrorKind::Invalid,
            5 => ErrorKind::KilledWorker,
            6 => ErrorKind::Cancelled,
            7 => ErrorKind::NoWorker,
            k => {
                return Err(CodecError::Invalid {
                    what: "error kind",
                    detail: format!("kind {k}"),
                })
            }
        })
    }
}

/// A failure or refusal, with enough to rebuild a [`TaskError`] on the client.
#[derive(Clone, Debug, PartialEq, Eq, oxidask_core::Data, thiserror::Error)]
#[data(crate = oxidask_core)]
#[error("{message}")]
pub struct WireError {
    /// The failed task, if one.
    pub key: Option<WireKey>,
    /// The operation's name.
    pub op: String,
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
    /// The cause chain.
    pub causes: Vec<String>,
    /// The runtime's own description of the failure (a pickled Python exception), if any.
    pub detail: Option<Payload>,
}

impl WireError {
    /// A malformed or unusable message.
    pub fn invalid(message: impl Into<String>) -> WireError {
        WireError {
            key: None,
            op: String::new(),
            kind: ErrorKind::Invalid,
            message: message.into(),
            causes: Vec::new(),
            detail: None,
        }
    }

    /// From a task error.
    pub fn from_task_error(e: &TaskError) -> WireError {
        WireError {
            key: Some(WireKey::from(&e.key)),
            op: e.op.clone(),
            kind: match e.failure.kind() {
                FailureKind::Error => ErrorKind::Task,
                FailureKind::Panic => ErrorKind::Panic,
                FailureKind::Argument => ErrorKind::Argument,
                FailureKind::Unavailable => ErrorKind::Unavailable,
            },
            message: e.failure.message().to_owned(),
            causes: e.failure.causes().to_vec(),
            detail: e.failure.detail().cloned().map(Payload),
        }
    }

    /// Back into a task error (for a key the client knows).
    pub fn to_task_error(&self, key: Key) -> TaskError {
        let kind = match self.kind {
            ErrorKind::Panic => FailureKind::Panic,
            ErrorKind::Argument => FailureKind::Argument,
            ErrorKind::Unavailable | ErrorKind::KilledWorker | ErrorKind::NoWorker => {
                FailureKind::Unavailable
            }
            ErrorKind::Task | ErrorKind::Invalid | ErrorKind::Cancelled => FailureKind::Error,
        };
        let mut failure = TaskFailure::from_parts(kind, self.message.clone(), self.causes.clone());
        if let Some(d) = &self.detail {
            failure = failure.with_detail(d.0.clone());
        }
        TaskError {
            key,
            op: self.op.clone(),
            failure: Box::new(failure),
        }
    }
}

fn arg_to_wire(a: &Arg, key: &Key) -> Result<WireArg, WireError> {
    Ok(match a {
        Arg::Key(k) => WireArg::Key(k.into()),
        Arg::Value(v) => WireArg::Value(WireValue::from_value(v).map_err(|e| WireError {
            key: Some(key.into()),
            ..WireError::invalid(format!(
                "task {key} has an argument that cannot leave this process: {e}"
            ))
        })?),
        Arg::List(items) => WireArg::List(
            items
                .iter()
                .map(|i| arg_to_wire(i, key))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// A task spec on the wire; closures and values without codecs are refused.
pub fn spec_to_wire(key: &Key, spec: &TaskSpec) -> Result<WireSpec, WireError> {
    Ok(match spec {
        TaskSpec::Call { op, args } => match op {
            Op::Registered(def) => WireSpec::Call {
                op: def.name().to_owned(),
                args: args.iter().map(|a| arg_to_wire(a, key)).collect::<Result<_, _>>()?,
            },
            Op::Local(l) => {
                return Err(WireError {
                    key: Some(key.into()),
                    op: l.name().to_owned(),
                    kind: ErrorKind::Unavailable,
                    message: format!(
                        "task {key} runs a closure (`{}`), which cannot be sent to a worker; write it as a #[oxidask::task] function so workers built from this program can run it",
                        l.name()
                    ),
                    causes: Vec::new(),
                    detail: None,
                })
            }
        },
        TaskSpec::Value(v) => WireSpec::Value(WireValue::from_value(v).map_err(|e| WireError {
            key: Some(key.into()),
            ..WireError::invalid(format!("the value of {key} cannot leave this process: {e}"))
        })?),
        TaskSpec::Alias(k) => WireSpec::Alias(k.into()),
        TaskSpec::Fused { steps } => WireSpec::Fused(
            steps
                .iter()
                .map(|(k, s)| Ok((WireKey::from(k), spec_to_wire(k, s)?)))
                .collect::<Result<_, WireError>>()?,
        ),
    })
}

fn arg_from_wire(a: &WireArg) -> Result<Arg, WireError> {
    Ok(match a {
        WireArg::Key(k) => Arg::Key(k.to_key()?),
        WireArg::Value(v) => Arg::Value(v.to_value()?),
        WireArg::List(items) => {
            Arg::List(items.iter().map(arg_from_wire).collect::<Result<_, _>>()?)
        }
    })
}

/// A task spec from the wire: operations looked up by name, values decoded by type name.
pub fn spec_from_wire(spec: &WireSpec) -> Result<TaskSpec, WireError> {
    Ok(match spec {
        WireSpec::Call { op, args } => {
            let def = oxidask_core::op::lookup(op).ok_or_else(|| WireError {
                key: None,
                op: op.clone(),
                kind: ErrorKind::Unavailable,
                message: unregistered_op_message(op),
                causes: Vec::new(),
                detail: None,
            })?;
            TaskSpec::Call {
                op: Op::Registered(def),
                args: args.iter().map(arg_from_wire).collect::<Result<_, _>>()?,
            }
        }
        WireSpec::Value(v) => TaskSpec::Value(v.to_value()?),
        WireSpec::Alias(k) => TaskSpec::Alias(k.to_key()?),
        WireSpec::Fused(steps) => TaskSpec::Fused {
            steps: steps
                .iter()
                .map(|(k, s)| Ok((k.to_key()?, spec_from_wire(s)?)))
                .collect::<Result<_, WireError>>()?,
        },
    })
}

/// Why a worker cannot run operation `op`, and what to do about it.
fn unregistered_op_message(op: &str) -> String {
    if op.starts_with("oxidask_python::") {
        return format!(
            "this worker cannot run Python tasks (`{op}`): it was built without Python support; start workers with `python -m oxidask worker ADDRESS` (or the `oxidask worker` command that `pip install oxidask` installs)"
        );
    }
    format!("operation `{op}` is not registered in this worker; run workers built from the program that defines it")
}
