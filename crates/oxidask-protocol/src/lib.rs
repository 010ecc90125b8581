//! # oxidask-protocol
//!
//! The only crate that knows the wire. Typed messages by direction ([`messages`]), the wire
//! forms of keys, values and tasks ([`wire`]), framing with payloads as separate parts and
//! batching ([`frame`]), and the handshake ([`handshake_connect`], [`handshake_accept`]) that
//! refuses a peer speaking another protocol version or carrying another operation registry,
//! saying which side differs and what to do.
//!
//! See `docs/PROTOCOL.md` for the byte layout.

// Wire errors carry a key, an operation name and a cause chain for the user; they are built on
// failure paths only, so their size in a `Result` costs nothing on the hot path.
#![allow(clippy::result_large_err)]

pub mod coord;
pub mod frame;
pub mod fuzz;
pub mod messages;
pub mod netif;
pub mod peer;
pub mod prometheus;
pub mod signals;
pub mod transport;
pub mod wire;

pub use coord::{CoordErrorKind, CoordOp, CoordReply, CoordValue, LoggedEvent};
pub use frame::{read_frame, write_frame, Limits, Payload};
pub use messages::*;
pub use wire::{
    spec_from_wire, spec_to_wire, ErrorKind, WireArg, WireError, WireKey, WireSpec, WireTask,
    WireValue,
};

use tokio::io::{AsyncRead, AsyncWrite};

/// The protocol version; peers with another version are refused.
pub const PROTOCOL_VERSION: u32 = 7;

/// `tcp://host:port`, `tls://host:port` or `host:port` → `host:port`.
pub fn strip_scheme(address: &str) -> &str {
    strip_any_scheme(address)
}

/// `address` with a scheme: as it is if it has one, else `default://address`.
pub fn with_scheme(address: &str, default: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("{default}://{address}")
    }
}

/// The scheme of `address` (`tls` of `tls://host:port`), `tcp` if it has none.
pub fn scheme_of(address: &str) -> &str {
    address.split_once("://").map_or("tcp", |(s, _)| s)
}

/// `tcp://host:port`, `tls://host:port` or `host:port` → `host:port`.
pub fn strip_any_scheme(address: &str) -> &str {
    address.split_once("://").map_or(address, |(_, rest)| rest)
}

/// `host:port` → (`host`, `port`), brackets of an IPv6 host (`[::1]:8786`) removed.
pub fn split_host_port(host_port: &str) -> Option<(&str, &str)> {
    let (host, port) = host_port.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port))
}

/// `host` and `port` as one address, an IPv6 host in brackets (`[::1]:8786`).
pub fn join_host_port(host: &str, port: u16) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// This build: the oxidask version (peers of other versions are told so).
pub fn build_id() -> String {
    format!("oxidask {}", env!("CARGO_PKG_VERSION"))
}

fn runtime_table() -> &'static std::sync::RwLock<Vec<(String, String)>> {
    static RUNTIME: std::sync::RwLock<Vec<(String, String)>> = std::sync::RwLock::new(Vec::new());
    &RUNTIME
}

/// Declares a language runtime this process hosts (`("python", "3.11")`), sent in every
/// [`Hello`] so that a cluster refuses members whose runtimes differ. Setting a name again
/// replaces its version.
pub fn declare_runtime(name: &str, version: &str) {
    let mut t = runtime_table().write().unwrap_or_else(|p| p.into_inner());
    match t.iter_mut().find(|(n, _)| n == name) {
        Some(e) => e.1 = version.to_owned(),
        None => t.push((name.to_owned(), version.to_owned())),
    }
    t.sort();
}

/// The runtimes this process declared.
pub fn runtime() -> Vec<(String, String)> {
    runtime_table()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// A [`Hello`] for this process.
pub fn hello(role: Role) -> Hello {
    Hello {
        protocol: PROTOCOL_VERSION,
        build: build_id(),
        registry: oxidask_core::op::registry_fingerprint().as_u128(),
        runtime: runtime(),
        role,
    }
}

fn describe_runtime(r: &[(String, String)]) -> String {
    if r.is_empty() {
        return "no language runtime (a plain Rust program)".into();
    }
    r.iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a participant hosting `theirs` may not join a cluster whose members host `ours`, if
/// it may not: names each runtime that differs, and says what to do.
pub fn runtime_mismatch(
    ours: &[(String, String)],
    ours_who: &str,
    theirs: &[(String, String)],
    theirs_who: &str,
) -> Option<String> {
    if ours == theirs {
        return None;
    }
    let has_python = |r: &[(String, String)]| r.iter().any(|(n, _)| n == "python");
    if has_python(ours) && !has_python(theirs) {
        return Some(format!(
            "this {theirs_who} has no Python support, but {ours_who} runs Python ({}); start Python workers with `python -m oxidask worker ADDRESS` (or the `oxidask worker` command that `pip install oxidask` installs)",
            describe_runtime(ours)
        ));
    }
    if !has_python(ours) && has_python(theirs) {
        return Some(format!(
            "this {theirs_who} runs Python ({}), but {ours_who} has no Python support; start the cluster's workers with `python -m oxidask worker ADDRESS` from the same environment",
            describe_runtime(theirs)
        ));
    }
    let mut diffs = Vec::new();
    for (name, v) in ours {
        match theirs.iter().find(|(n, _)| n == name) {
            Some((_, tv)) if tv != v => diffs.push(format!("{name} {tv} here, {v} there")),
            Some(_) => {}
            None => diffs.push(format!("{name} missing here, {v} there")),
        }
    }
    for (name, tv) in theirs {
        if !ours.iter().any(|(n, _)| n == name) {
            diffs.push(format!("{name} {tv} here, missing there"));
        }
    }
    Some(format!(
        "runtime version mismatch between this {theirs_who} and {ours_who}: {}; install the same versions everywhere (one environment for the client, the scheduler and the workers)",
        diffs.join("; ")
    ))
}

/// What can go wrong on a connection.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The socket failed or closed mid-frame.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame is larger than allowed.
    #[error("frame {what} of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Which part.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A frame's content is not a valid message.
    #[error("malformed message: {0}")]
    Decode(oxidask_core::CodecError),
    /// The peer closed before the handshake finished.
    #[error("the peer closed the connection during the handshake")]
    Closed,
    /// The handshake was refused.
    #[error("{0}")]
    Refused(String),
    /// The peer sent something other than what the protocol expects here.
    #[error("unexpected message: {0}")]
    Unexpected(String),
}

/// Why `theirs` may not talk to `ours`, if it may not.
pub fn compatibility(ours: &Hello, theirs: &Hello) -> Option<String> {
    if theirs.protocol != ours.protocol {
        return Some(format!(
            "protocol version mismatch: this side speaks {} ({}), the peer speaks {} ({}); run the same oxidask version on both",
            ours.protocol, ours.build, theirs.protocol, theirs.build
        ));
    }
    let needs_registry = !matches!(theirs.role, Role::Peer);
    if needs_registry {
        if let Some(why) =
            runtime_mismatch(&ours.runtime, "the other side", &theirs.runtime, "peer")
        {
            return Some(why);
        }
    }
    if needs_registry && theirs.registry != ours.registry {
        return Some(format!(
            "operation registry mismatch: this side ({}) has registry {:032x}, the peer ({}) has {:032x}; build the scheduler, workers and clients from the same program (a program with its own #[oxidask::task] functions runs its workers with `my-program worker ADDRESS`)",
            ours.build, ours.registry, theirs.build, theirs.registry
        ));
    }
    None
}

/// What a listener's welcome says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcomed {
    /// The id the listener knows the connection by.
    pub id: u64,
    /// The scheduler's dashboard address, empty if none (or not a scheduler).
    pub dashboard: String,
}

/// Client side of the handshake: sends `hello`, returns the welcome.
pub async fn handshake_connect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    hello: Hello,
) -> Result<Welcomed, ProtocolError> {
    write_frame(s, &[hello]).await?;
    let reply: Vec<HelloReply> = read_frame(s, &Limits::default())
        .await?
        .ok_or(ProtocolError::Closed)?;
    match reply.into_iter().next() {
        Some(HelloReply::Welcome { id, dashboard }) => Ok(Welcomed { id, dashboard }),
        Some(HelloReply::Refused { reason }) => Err(ProtocolError::Refused(reason)),
        None => Err(ProtocolError::Unexpected("an empty handshake reply".into())),
    }
}

/// Server side, first half: reads the peer's hello (small, no payloads).
pub async fn read_hello<S: AsyncRead + Unpin>(s: &mut S) -> Result<Hello, ProtocolError> {
    let limits = Limits {
        max_header: 1 << 16,
        max_parts: 0,
        max_payload: 0,
    };
    let theirs: Vec<Hello> = read_frame(s, &limits).await?.ok_or(ProtocolError::Closed)?;
    if theirs.len() != 1 {
        return Err(ProtocolError::Unexpected(format!(
            "{} hellos in the first frame",
            theirs.len()
        )));
    }
    Ok(theirs.into_iter().next().expect("one hello"))
}

/// Server side, second half: welcomes the peer (telling it the dashboard's address, if any),
/// or refuses it with `reason`.
pub async fn reply_hello<S: AsyncWrite + Unpin>(
    s: &mut S,
    id: u64,
    refusal: Option<String>,
    dashboard: &str,
) -> Result<(), ProtocolError> {
    match refusal {
        Some(reason) => {
            write_frame(
                s,
                &[HelloReply::Refused {
                    reason: reason.clone(),
                }],
            )
            .await?;
            Err(ProtocolError::Refused(reason))
        }
        None => {
            write_frame(
                s,
                &[HelloReply::Welcome {
                    id,
                    dashboard: dashboard.to_owned(),
                }],
            )
            .await
        }
    }
}

/// Server side: reads the peer's hello and welcomes or refuses it.
pub async fn handshake_accept<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    ours: &Hello,
    id: u64,
) -> Result<Hello, ProtocolError> {
    let theirs = read_hello(s).await?;
    reply_hello(s, id, compatibility(ours, &theirs), "").await?;
    Ok(theirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn handshake_refuses_other_versions_and_registries_saying_which() {
        let ours = hello(Role::Client {
            name: "a".into(),
            id: 0,
            reconnect: false,
        });
        let mut other = ours.clone();
        other.protocol = 99;
        let why = compatibility(&ours, &other).unwrap();
        assert!(
            why.contains("protocol version mismatch") && why.contains("99"),
            "{why}"
        );
        let mut other = ours.clone();
        other.registry ^= 1;
        let why = compatibility(&ours, &other).unwrap();
        assert!(
            why.contains("registry mismatch") && why.contains("same program"),
            "{why}"
        );
        other.role = Role::Peer;
        assert!(
            compatibility(&ours, &other).is_none(),
            "data peers need not share a registry"
        );
        let mut other = ours.clone();
        other.runtime = vec![("python".into(), "3.11".into())];
        let why = compatibility(&ours, &other).unwrap();
        assert!(why.contains("runs Python (python 3.11)"), "{why}");

        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let theirs = hello(Role::Client {
            name: "b".into(),
            id: 0,
            reconnect: false,
        });
        let server = tokio::spawn(async move {
            handshake_accept(&mut b, &hello(Role::Peer), 7)
                .await
                .map(|h| h.role)
        });
        assert_eq!(handshake_connect(&mut a, theirs).await.unwrap().id, 7);
        assert!(matches!(
            server.await.unwrap().unwrap(),
            Role::Client { .. }
        ));
    }

    #[test]
    fn runtime_mismatches_name_what_differs_and_what_to_do() {
        let py = |v: &str, cp: &str| {
            vec![
                ("cloudpickle".to_owned(), cp.to_owned()),
                ("python".to_owned(), v.to_owned()),
            ]
        };
        assert!(runtime_mismatch(&py("3.11", "3.1.2"), "a", &py("3.11", "3.1.2"), "b").is_none());
        let why = runtime_mismatch(
            &py("3.11", "3.1.2"),
            "the cluster",
            &py("3.12", "3.1.2"),
            "worker",
        )
        .unwrap();
        assert!(why.contains("python 3.12 here, 3.11 there"), "{why}");
        assert!(!why.contains("cloudpickle"), "{why}");
        let why = runtime_mismatch(&py("3.11", "3.1.2"), "the cluster", &[], "worker").unwrap();
        assert!(
            why.contains("has no Python support") && why.contains("python -m oxidask worker"),
            "{why}"
        );
        let why = runtime_mismatch(&[], "the cluster", &py("3.11", "3.0"), "client").unwrap();
        assert!(why.contains("runs Python"), "{why}");
    }

    #[tokio::test]
    async fn garbage_instead_of_a_hello_is_an_error() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let server =
            tokio::spawn(async move { handshake_accept(&mut b, &hello(Role::Peer), 1).await });
        use tokio::io::AsyncWriteExt;
        a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        drop(a);
        assert!(server.await.unwrap().is_err());
    }
}
