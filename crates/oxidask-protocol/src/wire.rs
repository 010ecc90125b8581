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
/// prefix travels as text and is interned on arrival. Prefixes are limited in length and the
/// interner in size, so a hostile peer cannot grow a process's memory without bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WireKey(pub Key);

/// Longest prefix text accepted from the wire.
pub const MAX_PREFIX_LEN: usize = 256;

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
        let prefix = Prefix::try_intern(text).ok_or(CodecError::Invalid {
            what: "key prefix",
            detail: "too many distinct key prefixes in this process".into(),
        })?;
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

/// A value on the wire: its type's name and its encoding (a frame part).
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct WireValue {
    /// `std::any::type_name` of the value.
    pub type_name: String,
    /// The encoding.
    pub bytes: Payload,
}

impl WireValue {
    /// Encodes a value (it must have a codec).
    pub fn from_value(v: &Value) -> Result<WireValue, WireError> {
        let mut buf = Vec::new();
        v.encode(&mut buf)
            .map_err(|e| WireError::invalid(e.to_string()))?;
        Ok(WireValue {
            type_name: v.type_name().to_owned(),
            bytes: Payload(bytes::Bytes::from(buf)),
        })
    }

    /// Decodes by type name.
    pub fn to_value(&self) -> Result<Value, WireError> {
        oxidask_core::codecs::decode_named(&self.type_name, &self.bytes.0)
            .map_err(|e| WireError::invalid(e.to_string()))
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

/// A failure or refusal, with enough to rebuild a [`TaskError`] on the client.
#[derive(Clone, Debug, PartialEq, Eq, oxidask_core::Data, thiserror::Error)]
#[data(crate = oxidask_core)]
#[error("{message}")]
pub struct WireError {
    /// The failed task, if one.
    pub key: Option<WireKey>,
    /// The operation's name.
    pub op: String,
    /// 0 error, 1 panic, 2 argument, 3 unavailable, 4 invalid message, 5 killed worker,
    /// 6 cancelled, 7 no worker can run it.
    pub kind: u8,
    /// The message.
    pub message: String,
    /// The cause chain.
    pub causes: Vec<String>,
}

impl WireError {
    /// A malformed or unusable message.
    pub fn invalid(message: impl Into<String>) -> WireError {
        WireError {
            key: None,
            op: String::new(),
            kind: 4,
            message: message.into(),
            causes: Vec::new(),
        }
    }

    /// From a task error.
    pub fn from_task_error(e: &TaskError) -> WireError {
        WireError {
            key: Some(WireKey::from(&e.key)),
            op: e.op.clone(),
            kind: match e.failure.kind() {
                FailureKind::Error => 0,
                FailureKind::Panic => 1,
                FailureKind::Argument => 2,
                FailureKind::Unavailable => 3,
            },
            message: e.failure.message().to_owned(),
            causes: e.failure.causes().to_vec(),
        }
    }

    /// Back into a task error (for a key the client knows).
    pub fn to_task_error(&self, key: Key) -> TaskError {
        let kind = match self.kind {
            1 => FailureKind::Panic,
            2 => FailureKind::Argument,
            3 | 5 | 7 => FailureKind::Unavailable,
            _ => FailureKind::Error,
        };
        TaskError {
            key,
            op: self.op.clone(),
            failure: Box::new(TaskFailure::from_parts(
                kind,
                self.message.clone(),
                self.causes.clone(),
            )),
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
                    kind: 3,
                    message: format!(
                        "task {key} runs a closure (`{}`), which cannot be sent to a worker; write it as a #[oxidask::task] function so workers built from this program can run it",
                        l.name()
                    ),
                    causes: Vec::new(),
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
                kind: 3,
                message: format!("operation `{op}` is not registered in this worker; run workers built from the program that defines it"),
                causes: Vec::new(),
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
