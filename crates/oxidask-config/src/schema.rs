//! The schema: every key, its kind, its default and what it means. This one table drives
//! validation, defaults, `oxidask config` and `docs/CONFIG.md` (a test keeps the two equal).
//!
//! Keys are Dask's where Dask has one (its `distributed.yaml` and `dask.yaml`), with the same
//! defaults; keys Dask does not have are marked [`ours`](KeySpec#structfield.ours) and named
//! in Dask's style in the same namespaces. Segments use `-`; a `_` written anywhere reads as
//! `-`, as Dask's `canonical_name` allows.
//!
//! # Invariants
//! Every default is valid for its key (tested), and no key is a prefix of another (a name is
//! either a key or a group of keys).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

/// What a key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A fraction from 0 to 1 (`0.6`).
    Fraction,
    /// A whole number from `min` to `max`.
    Int {
        /// The smallest allowed.
        min: i64,
        /// The largest allowed.
        max: i64,
    },
    /// `true` or `false`.
    Bool,
    /// A size in bytes, with a unit or without (`128MiB`, `50MB`, `1e9`, `4096`).
    Size,
    /// A duration, with a unit or without (`30s`, `100ms`, `5 minutes`; bare numbers are
    /// seconds).
    Duration,
    /// Text.
    Str,
    /// A file or directory path.
    Path,
    /// One of some names: pairs of (a name as written, lower-case; the name it stands for).
    Choice(&'static [(&'static str, &'static str)]),
}

/// One key of the schema.
#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    /// The dotted name (`distributed.worker.memory.target`).
    pub key: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// Whether `null` is allowed (meaning as [`KeySpec::doc`] says).
    pub nullable: bool,
    /// Whether `false` is allowed, meaning "off" (Dask's memory thresholds, `max-spill`).
    pub off: bool,
    /// Whether the value is a secret, never printed.
    pub secret: bool,
    /// Whether the key is oxidask's own (Dask has no such key).
    pub ours: bool,
    /// The default, written as in a YAML file.
    pub default: &'static str,
    /// What the key means, in one line.
    pub doc: &'static str,
}

impl KeySpec {
    const fn new(key: &'static str, kind: Kind, default: &'static str, doc: &'static str) -> Self {
        KeySpec {
            key,
            kind,
            nullable: false,
            off: false,
            secret: false,
            ours: false,
            default,
            doc,
        }
    }

    const fn nullable(self) -> Self {
        KeySpec {
            nullable: true,
            ..self
        }
    }

    const fn or_false(self) -> Self {
        KeySpec { off: true, ..self }
    }

    const fn secret(self) -> Self {
        KeySpec {
            secret: true,
            ..self
        }
    }

    const fn ours(self) -> Self {
        KeySpec { ours: true, ..self }
    }

    /// What the key takes, in words (`a fraction from 0 to 1, or false to turn it off`).
    pub fn expected(&self) -> String {
        let mut s = match self.kind {
            Kind::Fraction => "a fraction from 0 to 1".to_owned(),
            Kind::Int { min, max } if max == i64::MAX => format!("a whole number ≥ {min}"),
            Kind::Int { min, max } => format!("a whole number from {min} to {max}"),
            Kind::Bool => "true or false".to_owned(),
            Kind::Size => "a size such as 4GiB, 100MB or 1e9 (bytes)".to_owned(),
            Kind::Duration => {
                "a duration such as 30s, 100ms or 5 minutes (a bare number is seconds)".to_owned()
            }
            Kind::Str => "text".to_owned(),
            Kind::Path => "a path".to_owned(),
            Kind::Choice(choices) => {
                let mut names: Vec<&str> = Vec::new();
                for (_, canonical) in choices {
                    if !names.contains(canonical) {
                        names.push(canonical);
                    }
                }
                format!("one of {}", names.join(", "))
            }
        };
        if self.off {
            s.push_str(", or false to turn it off");
        }
        if self.nullable {
            s.push_str(", or null");
        }
        s
    }
}

const fn int(min: i64) -> Kind {
    Kind::Int { min, max: i64::MAX }
}

use Kind::{Bool, Duration, Fraction, Path, Size, Str};

/// Dask's names of the local schedulers.
const SCHEDULERS: &[(&str, &str)] = &[
    ("threads", "threads"),
    ("threading", "threads"),
    ("sync", "sync"),
    ("synchronous", "sync"),
    ("single-threaded", "sync"),
    ("processes", "processes"),
    ("multiprocessing", "processes"),
];

/// The TLS versions rustls speaks.
const TLS_VERSIONS: &[(&str, &str)] = &[("1.2", "1.2"), ("1.3", "1.3")];

/// Every key, in the order `oxidask config` prints them.
pub static SCHEMA: &[KeySpec] = &[
    // Top level (Dask's dask.yaml).
    KeySpec::new(
        "scheduler",
        Kind::Choice(SCHEDULERS),
        "null",
        "The local scheduler `compute` uses: threads, sync or processes (Dask's other names \
         for them work too); null: threads, or the distributed client in use.",
    )
    .nullable(),
    KeySpec::new(
        "num-workers",
        int(1),
        "null",
        "Threads of the threaded scheduler's pool; null: one per core.",
    )
    .nullable(),
    KeySpec::new(
        "temporary-directory",
        Path,
        "null",
        "Where workers keep local files such as spilled data; null: the system's temporary \
         directory.",
    )
    .nullable(),
    // Arrays.
    KeySpec::new(
        "array.chunk-size",
        Size,
        "128MiB",
        "Target size of a block when chunks are chosen automatically.",
    ),
    KeySpec::new(
        "array.split-every",
        int(2),
        "16",
        "Blocks combined per task in tree reductions (sum, mean, ...) unless a call says \
         otherwise.",
    )
    .ours(),
    // Dataframes.
    KeySpec::new(
        "dataframe.blocksize",
        Size,
        "64MiB",
        "Bytes per partition when reading CSV and JSON-lines text files; null: a partition \
         per file (Parquet files are split by row groups instead).",
    )
    .nullable()
    .ours(),
    KeySpec::new(
        "dataframe.split-every",
        int(2),
        "8",
        "Partitions combined per task in tree reductions unless a call says otherwise.",
    )
    .ours(),
    KeySpec::new(
        "dataframe.broadcast-bytes",
        Size,
        "32MiB",
        "A merge side whose estimated size (Parquet footers: uncompressed bytes of the \
         columns read; in-memory partitions: their size) is at most this is broadcast: \
         concatenated once and joined with every partition of the other side, instead of \
         shuffling both; null: only one-partition sides are broadcast (Dask decides by \
         partition counts).",
    )
    .nullable()
    .ours(),
    KeySpec::new(
        "dataframe.shuffle.method",
        Kind::Choice(&[("tasks", "tasks"), ("p2p", "p2p")]),
        "null",
        "How shuffles move rows: tasks (a task per input and output partition) or p2p (a \
         transfer task per input, a barrier, an unpack task per output; shards move between \
         workers' shuffle services); null: p2p on a distributed cluster for shuffles of \
         at least 256 input x output pairs, tasks otherwise. Dask's disk is not implemented.",
    )
    .nullable(),
    KeySpec::new(
        "distributed.p2p.memory-budget",
        Size,
        "256MiB",
        "Bytes of P2P shuffle shards a worker holds in memory; past it shards are appended \
         to files in the worker's temporary directory. A worker with a memory limit holds at \
         most an eighth of it.",
    )
    .ours(),
    // The distributed scheduler.
    KeySpec::new(
        "distributed.scheduler.allowed-failures",
        int(0),
        "3",
        "Times a task may be running on a worker that dies before the task is failed as the \
         likely cause.",
    ),
    KeySpec::new(
        "distributed.scheduler.replicate-expensive",
        Duration,
        "1s",
        "The most work a worker's death may send back to be recomputed: each worker may be \
         the only holder of results that tasks or clients still wait for worth this much \
         work (a result's work: its run and those of its inputs released after it); results \
         past that get a second copy on another worker when recomputing them would take over \
         ten times as long as copying them; null: never (as Dask).",
    )
    .nullable()
    .ours(),
    KeySpec::new(
        "distributed.scheduler.work-stealing",
        Bool,
        "true",
        "Whether idle workers take queued tasks from busy ones.",
    ),
    KeySpec::new(
        "distributed.scheduler.worker-ttl",
        Duration,
        "5 minutes",
        "Time without a heartbeat after which a worker is removed; null: never.",
    )
    .nullable(),
    KeySpec::new(
        "distributed.scheduler.client-reconnect-grace",
        Duration,
        "30s",
        "How long the scheduler keeps the futures of a client whose connection dropped, and \
         how long such a client keeps trying to reconnect: a client back within it continues \
         with its futures (graphs in flight go on meanwhile); after it they are released. An \
         explicit close releases them at once.",
    )
    .ours(),
    KeySpec::new(
        "distributed.scheduler.idle-timeout",
        Duration,
        "null",
        "Shut the scheduler down after this long with no tasks and no clients; null: never.",
    )
    .nullable(),
    KeySpec::new(
        "distributed.scheduler.no-workers-timeout",
        Duration,
        "5s",
        "Time a task that no connected worker can run waits before it fails; null: forever \
         (Dask's default is null; oxidask's scheduler has always used 5s).",
    )
    .nullable(),
    KeySpec::new(
        "distributed.scheduler.journal",
        Path,
        "null",
        "Directory where the scheduler journals the graphs it was given, so that after a \
         crash (even SIGKILL) a scheduler started with the same journal resumes them: \
         reconnecting workers report what they hold and only the rest is computed; null: no \
         journal.",
    )
    .nullable()
    .ours(),
    // Workers.
    KeySpec::new(
        "distributed.worker.memory.target",
        Fraction,
        "0.6",
        "Fraction of the memory limit held by data at which the worker spills the least \
         recently used data to disk.",
    )
    .or_false(),
    KeySpec::new(
        "distributed.worker.memory.spill",
        Fraction,
        "0.7",
        "Fraction of the memory limit used by the process at which the worker spills to disk.",
    )
    .or_false(),
    KeySpec::new(
        "distributed.worker.memory.pause",
        Fraction,
        "0.8",
        "Fraction of the memory limit used by the process at which the worker stops starting \
         tasks.",
    )
    .or_false(),
    KeySpec::new(
        "distributed.worker.memory.terminate",
        Fraction,
        "0.95",
        "Fraction of the memory limit used by the process at which the nanny restarts the \
         worker.",
    )
    .or_false(),
    KeySpec::new(
        "distributed.worker.memory.max-spill",
        Size,
        "false",
        "Most bytes a worker spills to disk; false: no limit.",
    )
    .or_false(),
    KeySpec::new(
        "distributed.worker.memory.spill-compression",
        Kind::Choice(&[
            ("auto", "auto"),
            ("zstd", "zstd"),
            ("lz4", "zstd"),
            ("snappy", "zstd"),
            ("zlib", "zstd"),
        ]),
        "auto",
        "How spill files are compressed: auto and any codec name compress with zstd (the one \
         codec built in; Dask's lz4, snappy and zlib read as zstd) when a sample of the value \
         shrinks below 90%, else the value is written as it is; false or null: never.",
    )
    .nullable()
    .or_false(),
    KeySpec::new(
        "distributed.worker.memory.monitor-interval",
        Duration,
        "100ms",
        "How often a worker measures its memory.",
    ),
    KeySpec::new(
        "distributed.worker.lifetime.duration",
        Duration,
        "null",
        "Time after which a worker closes gracefully; null: never.",
    )
    .nullable(),
    KeySpec::new(
        "distributed.worker.lifetime.stagger",
        Duration,
        "0 seconds",
        "Random amount by which lifetimes differ, so workers do not all close at once.",
    ),
    KeySpec::new(
        "distributed.worker.lifetime.restart",
        Bool,
        "false",
        "Whether the nanny starts a new worker when one reaches its lifetime.",
    ),
    KeySpec::new(
        "distributed.worker.connections.outgoing",
        int(1),
        "50",
        "Most connections a worker opens at once to fetch data from other workers.",
    ),
    KeySpec::new(
        "distributed.worker.connections.incoming",
        int(1),
        "10",
        "Most data requests a worker serves at once.",
    ),
    KeySpec::new(
        "distributed.worker.transfer.message-bytes-limit",
        Size,
        "50MB",
        "Most bytes a worker asks one peer for in one request (at least one value is always \
         asked for).",
    ),
    // Clients.
    KeySpec::new(
        "distributed.client.heartbeat",
        Duration,
        "5s",
        "Interval between a client's heartbeats to the scheduler.",
    ),
    // Communication.
    KeySpec::new(
        "distributed.comm.retry.count",
        int(0),
        "0",
        "Times an operation such as gathering data is retried after a connection fails; 0: \
         never.",
    ),
    KeySpec::new(
        "distributed.comm.retry.delay.min",
        Duration,
        "1s",
        "First delay before a retry (delays double up to the maximum).",
    ),
    KeySpec::new(
        "distributed.comm.retry.delay.max",
        Duration,
        "20s",
        "Longest delay between retries.",
    ),
    KeySpec::new(
        "distributed.comm.timeouts.connect",
        Duration,
        "30s",
        "Time to establish a connection (with retries) before giving up.",
    ),
    KeySpec::new(
        "distributed.comm.timeouts.tcp",
        Duration,
        "30s",
        "Time without a reply after which a connection is taken for dead.",
    ),
    KeySpec::new(
        "distributed.comm.timeouts.handshake",
        Duration,
        "10s",
        "Time a peer has for the TLS handshake, the token and the hello before it is \
         dropped.",
    )
    .ours(),
    KeySpec::new(
        "distributed.comm.require-encryption",
        Bool,
        "null",
        "Whether every connection must use TLS (tls:// addresses); null: false.",
    )
    .nullable(),
    KeySpec::new(
        "distributed.comm.tls.ca-file",
        Path,
        "null",
        "The CA certificate (PEM) that peers' certificates must be signed by; setting it \
         turns TLS on.",
    )
    .nullable(),
    KeySpec::new(
        "distributed.comm.tls.min-version",
        Kind::Choice(TLS_VERSIONS),
        "1.2",
        "The oldest TLS version accepted: 1.2 or 1.3.",
    ),
    KeySpec::new(
        "distributed.comm.tls.max-version",
        Kind::Choice(TLS_VERSIONS),
        "null",
        "The newest TLS version offered: 1.2 or 1.3; null: the newest there is.",
    )
    .nullable(),
    KeySpec::new(
        "distributed.comm.tls.scheduler.cert",
        Path,
        "null",
        "The scheduler's certificate (PEM), signed by the CA.",
    )
    .nullable(),
    KeySpec::new(
        "distributed.comm.tls.scheduler.key",
        Path,
        "null",
        "The key of the scheduler's certificate (PEM).",
    )
    .nullable(),
    KeySpec::new(
        "distributed.comm.tls.worker.cert",
        Path,
        "null",
        "A worker's certificate (PEM), signed by the CA.",
    )
    .nullable(),
    KeySpec::new(
        "distributed.comm.tls.worker.key",
        Path,
        "null",
        "The key of a worker's certificate (PEM).",
    )
    .nullable(),
    KeySpec::new(
        "distributed.comm.tls.client.cert",
        Path,
        "null",
        "A client's certificate (PEM), signed by the CA.",
    )
    .nullable(),
    KeySpec::new(
        "distributed.comm.tls.client.key",
        Path,
        "null",
        "The key of a client's certificate (PEM).",
    )
    .nullable(),
    KeySpec::new(
        "distributed.comm.auth.token",
        Str,
        "null",
        "A shared secret every peer must present before any message is read; null: no \
         token. Never printed.",
    )
    .nullable()
    .secret()
    .ours(),
    KeySpec::new(
        "distributed.comm.limits.max-frame-bytes",
        Size,
        "8GiB",
        "Largest total of payload bytes accepted in one incoming frame.",
    )
    .ours(),
    KeySpec::new(
        "distributed.comm.limits.max-header-bytes",
        Size,
        "256MiB",
        "Largest header (the messages without their payloads) accepted in one incoming frame.",
    )
    .ours(),
    KeySpec::new(
        "distributed.comm.limits.max-frame-parts",
        int(0),
        "1048576",
        "Most payload parts accepted in one incoming frame.",
    )
    .ours(),
    KeySpec::new(
        "distributed.comm.limits.connections-per-peer",
        int(1),
        "1024",
        "Most connections a listener keeps open from one peer address (a machine running many workers counts once per connection); null: no limit.",
    )
    .nullable()
    .ours(),
    // Dashboard and administration.
    KeySpec::new(
        "distributed.dashboard.link",
        Str,
        "\"{scheme}://{host}:{port}/status\"",
        "The dashboard address shown to users; {scheme}, {host} and {port} are filled in.",
    ),
    KeySpec::new(
        "distributed.admin.log-length",
        int(0),
        "10000",
        "Log lines a scheduler or worker keeps in memory (for the dashboard and \
         `get_worker_logs`).",
    ),
];

/// Index of every key in [`SCHEMA`].
static INDEX: LazyLock<HashMap<&'static str, usize>> =
    LazyLock::new(|| SCHEMA.iter().enumerate().map(|(i, s)| (s.key, i)).collect());

/// `key` with every `_` read as `-`, as Dask's `canonical_name` allows.
pub(crate) fn normalize(key: &str) -> Cow<'_, str> {
    if key.contains('_') {
        Cow::Owned(key.replace('_', "-"))
    } else {
        Cow::Borrowed(key)
    }
}

/// The position of `key` (normalized) in [`SCHEMA`].
pub(crate) fn index_of(key: &str) -> Option<usize> {
    INDEX.get(normalize(key).as_ref()).copied()
}

/// The key named `key` (`_` read as `-`), if there is one.
pub fn spec(key: &str) -> Option<&'static KeySpec> {
    index_of(key).map(|i| &SCHEMA[i])
}

/// A key inside the group `prefix` (`distributed.worker.memory` → one of its keys), if
/// `prefix` is a group.
pub(crate) fn example_in_group(prefix: &str) -> Option<&'static str> {
    let prefix = normalize(prefix);
    SCHEMA.iter().map(|s| s.key).find(|k| {
        k.len() > prefix.len() && k.starts_with(&*prefix) && k[prefix.len()..].starts_with('.')
    })
}

/// The known key most likely meant by the unknown `key`: one a few edits away, else one with
/// the same last segment (`distributed.memory.target` → `distributed.worker.memory.target`).
pub fn suggest(key: &str) -> Option<&'static str> {
    let key = normalize(key);
    let (distance, best) = SCHEMA
        .iter()
        .map(|s| (strsim::damerau_levenshtein(&key, s.key), s.key))
        .min()?;
    if distance <= 3.max(key.len() / 6) {
        return Some(best);
    }
    let last = key.rsplit('.').next().unwrap_or(&key);
    SCHEMA
        .iter()
        .filter(|s| s.key.rsplit('.').next() == Some(last))
        .map(|s| (strsim::damerau_levenshtein(&key, s.key), s.key))
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_none_is_a_group_of_another() {
        for (i, a) in SCHEMA.iter().enumerate() {
            assert!(!a.key.contains('_'), "{} uses `_`: keys use `-`", a.key);
            for b in &SCHEMA[i + 1..] {
                assert_ne!(a.key, b.key);
                assert!(
                    !b.key.starts_with(&format!("{}.", a.key))
                        && !a.key.starts_with(&format!("{}.", b.key)),
                    "{} and {}",
                    a.key,
                    b.key
                );
            }
        }
    }

    #[test]
    fn suggestions_find_typos_and_misplaced_keys() {
        assert_eq!(
            suggest("distributed.worker.memory.targt"),
            Some("distributed.worker.memory.target")
        );
        assert_eq!(
            suggest("distributed.memory.target"),
            Some("distributed.worker.memory.target")
        );
        assert_eq!(
            suggest("distributed.comm.timeout.connect"),
            Some("distributed.comm.timeouts.connect")
        );
        assert_eq!(suggest("num_worker"), Some("num-workers"));
        assert_eq!(suggest("completely.unrelated.thing"), None);
    }

    #[test]
    fn groups_have_examples() {
        assert_eq!(
            example_in_group("distributed.worker.memory"),
            Some("distributed.worker.memory.target")
        );
        assert_eq!(example_in_group("distributed.worker.mem"), None);
        assert_eq!(example_in_group("distributed.worker.memory.target"), None);
    }
}
