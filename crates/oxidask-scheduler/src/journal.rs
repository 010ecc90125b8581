//! The scheduler's journal (`--journal DIR`, `distributed.scheduler.journal`): what a
//! scheduler that was killed (even with SIGKILL) needs to resume its graphs when it is
//! started again with the same journal.
//!
//! # What is journalled
//!
//! One append-only file, `DIR/journal`, of [`Record`]s:
//! - clients joining and leaving (by connection), and the messages that change the graph as
//!   the scheduler received them: `UpdateGraph` (tasks with their encoded specs, dependencies,
//!   priorities, retries, restrictions; the keys wanted), `Release`, fire-and-forget `Pin`,
//!   `Cancel` and `Restart`;
//! - tasks that failed with their own error (after their retries), so a restarted scheduler
//!   does not run them again (their dependents fail with them as before);
//! - the names of the workers connected, so a restarted scheduler knows whom to wait for.
//!
//! Not journalled: results (a result's holders are the workers that report it when they
//! reconnect: `Holding`), scattered data (it has no lineage: tasks reading it fail with a
//! clear error after a restart unless the client scatters it again), the coordination objects
//! (Variables, Queues, Events, Locks, Semaphores, published datasets: they start empty),
//! errors that were not a task's own (a no-worker timeout, a task blamed for killing
//! workers: those tasks run again), the transition log and task-duration estimates.
//!
//! # Format
//!
//! An 8-byte header `OXDJRNL1`, then records: a little-endian `u32` body length, the body's
//! CRC-32 (`u32`), the body (the record in the wire codec, specs' bytes inline). A torn last
//! record (the process died mid-write) is dropped with a log line; a bad record anywhere
//! else is an error naming the file, the byte offset and what to do.
//!
//! # Cost and durability
//!
//! Records are encoded into a buffer by the core thread as events are handled and written
//! with one `write` per batch of events (the core's batches, at most 4,096 events), before
//! the batch's replies are sent. A SIGKILLed process loses nothing that was written (the
//! kernel holds it); a machine crash can lose what the kernel had not written to disk yet
//! (there is no fsync per batch). What is lost is what clients re-send when they reconnect.
//!
//! # Compaction
//!
//! At start-up, after replaying the journal, the scheduler writes a snapshot of the live
//! graph ([`SchedulerState::live_graph`]) to `DIR/journal.new` and renames it over the
//! journal, so the journal does not grow across restarts; it does the same when the journal
//! grows past [`COMPACT_FACTOR`] times the last snapshot (and past [`COMPACT_MIN_BYTES`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use oxidask_protocol::{FromWorker, ToScheduler, WireError, WireKey};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::state::{Config, Event, SchedulerState, TState};

/// The journal's file name inside its directory.
pub const FILE_NAME: &str = "journal";

/// The first bytes of a journal file.
pub const MAGIC: &[u8; 8] = b"OXDJRNL1";

/// The journal is rewritten as a snapshot once it is this many times the last snapshot's
/// size.
pub const COMPACT_FACTOR: u64 = 4;

/// ... and at least this big.
pub const COMPACT_MIN_BYTES: u64 = 64 << 20;

/// Connections given to restored clients during a replay (far above real connections' ids).
pub const RESTORED_CONN_BASE: u64 = 1 << 62;

/// The journal's own client in a snapshot: it submits every task, then leaves.
const SNAPSHOT_CLIENT: u64 = u64::MAX - 1;

/// One journal record.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum Record {
    /// A client connected (`client` is its connection at the time).
    ClientJoined {
        /// Its connection.
        client: u64,
        /// Its name.
        name: String,
    },
    /// A client named the id it made for itself (it may reconnect by it).
    ClientIdentified {
        /// Its connection.
        client: u64,
        /// Its id.
        id: u128,
    },
    /// A message from a client that changes the graph.
    FromClient {
        /// Its connection.
        client: u64,
        /// The message.
        msg: ToScheduler,
    },
    /// A client disconnected.
    ClientLeft {
        /// Its connection.
        client: u64,
    },
    /// A task failed with this error (its retries spent).
    Erred {
        /// The task.
        key: WireKey,
        /// Why.
        error: WireError,
    },
    /// A worker connected.
    WorkerJoined {
        /// Its name.
        name: String,
    },
    /// A worker left.
    WorkerLeft {
        /// Its name.
        name: String,
    },
}

/// A journal that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file system refused.
    #[error("the scheduler journal {path}: {source}; check the --journal directory exists and is writable")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A record other than the last one is damaged.
    #[error("the scheduler journal {path} is corrupt at byte {offset}: {detail}; move the file aside to start without it (the graphs it holds are then lost: clients submit them again), or restore it from a copy")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

// ---- CRC-32 (IEEE) -------------------------------------------------------------------------

fn crc_table() -> &'static [u32; 256] {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    })
}

/// The CRC-32 (IEEE) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let t = crc_table();
    let mut c = !0u32;
    for &b in data {
        c = t[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Appends `r` as one framed record (length, checksum, body) to `out`.
pub fn encode_record(r: &Record, out: &mut Vec<u8>) {
    let body = oxidask_protocol::frame::encode_detached(r);
    out.extend_from_slice(&(body.0.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(&body.0).to_le_bytes());
    out.extend_from_slice(&body.0);
}

/// What [`read`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The records, in order.
    pub records: Vec<Record>,
    /// A torn last record that was dropped: its offset and the bytes there.
    pub torn: Option<(u64, usize)>,
}

/// Reads a journal file: every complete record; a torn last record is dropped (see
/// [`Loaded::torn`]); a damaged record before the end is an error.
pub fn read(path: &Path) -> Result<Loaded, JournalError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    parse(path, &bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Loaded, JournalError> {
    let corrupt = |offset: usize, detail: String| JournalError::Corrupt {
        path: path.to_owned(),
        offset: offset as u64,
        detail,
    };
    if bytes.len() < MAGIC.len() {
        if MAGIC.starts_with(bytes) {
            // Killed while writing the header: an empty journal.
            return Ok(Loaded {
                records: Vec::new(),
                torn: (!bytes.is_empty()).then_some((0, bytes.len())),
            });
        }
        return Err(corrupt(0, "it is not an oxidask scheduler journal".into()));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(
            0,
            "it is not an oxidask scheduler journal (or one of another version)".into(),
        ));
    }
    let mut records = Vec::new();
    let mut at = MAGIC.len();
    while at < bytes.len() {
        let rest = bytes.len() - at;
        let torn = Some((at as u64, rest));
        if rest < 8 {
            return Ok(Loaded { records, torn });
        }
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        if len > rest - 8 {
            return Ok(Loaded { records, torn });
        }
        let body = &bytes[at + 8..at + 8 + len];
        let last = at + 8 + len == bytes.len();
        if crc32(body) != crc {
            if last {
                return Ok(Loaded { records, torn });
            }
            return Err(corrupt(at, "a record's checksum does not match".into()));
        }
        let payload = oxidask_protocol::Payload(body.to_vec().into());
        match oxidask_protocol::frame::decode_detached::<Record>(&payload) {
            Ok(r) => records.push(r),
            Err(e) => return Err(corrupt(at, format!("a record does not decode: {e}"))),
        }
        at += 8 + len;
    }
    Ok(Loaded {
        records,
        torn: None,
    })
}

/// What a replay rebuilt.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Clients connected (or parked) when the journal ended: the connection each was
    /// restored with, its name and its id. Identified clients (id not 0) are parked as if
    /// their connection had just dropped: they take their futures back when they reconnect
    /// within `distributed.scheduler.client-reconnect-grace`. Anonymous ones stay connected
    /// for the shell to release (it keeps their futures for a while for other clients).
    pub clients: Vec<(u64, String, u128)>,
    /// Names of the workers connected when the journal ended.
    pub workers: Vec<String>,
}

/// Feeds `records` to `state` (a fresh one, with no workers): the graphs are rebuilt with
/// nothing in memory; clients get connections from [`RESTORED_CONN_BASE`] up (messages to
/// them go nowhere).
pub fn replay(records: Vec<Record>, state: &mut SchedulerState, now: Instant) -> Replayed {
    let mut conns: FxHashMap<u64, (u64, String, u128)> = FxHashMap::default();
    let mut next = RESTORED_CONN_BASE;
    let mut parked: Vec<(u64, String, u128)> = Vec::new();
    let mut workers: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for r in records {
        match r {
            Record::ClientJoined { client, name } => {
                let conn = next;
                next += 1;
                conns.insert(client, (conn, name.clone(), 0));
                state.handle_into(Event::ClientJoined { conn, name }, now, &mut out);
            }
            Record::ClientIdentified { client, id } => {
                parked.retain(|p: &(u64, String, u128)| p.2 != id);
                if let Some(c) = conns.get_mut(&client) {
                    c.2 = id;
                    let e = Event::ClientIdentified {
                        conn: c.0,
                        id,
                        reconnect: false,
                    };
                    state.handle_into(e, now, &mut out);
                }
            }
            Record::FromClient { client, msg } => {
                if let Some(&(conn, _, _)) = conns.get(&client) {
                    state.handle_into(Event::FromClient { conn, msg }, now, &mut out);
                }
            }
            Record::ClientLeft { client } => {
                if let Some((conn, name, id)) = conns.remove(&client) {
                    state.handle_into(Event::ClientLeft { conn }, now, &mut out);
                    if id != 0 {
                        parked.push((conn, name, id)); // it may come back
                    }
                }
            }
            Record::Erred { key, error } => {
                out.extend(state.restore_erred(&key, error, now));
            }
            Record::WorkerJoined { name } => {
                if !workers.contains(&name) {
                    workers.push(name)
                }
            }
            Record::WorkerLeft { name } => workers.retain(|w| *w != name),
        }
        out.clear();
    }
    let mut clients: Vec<(u64, String, u128)> = conns.into_values().collect();
    clients.sort();
    // Identified clients are parked, as if their connections had just dropped.
    for &(conn, _, id) in &clients {
        if id != 0 {
            state.handle_into(Event::ClientLeft { conn }, now, &mut out);
        }
    }
    clients.extend(parked);
    Replayed { clients, workers }
}

/// The live state as records that rebuild it (the snapshot compaction writes), given the
/// names of the workers to expect.
pub fn snapshot(state: &SchedulerState, workers: &[String]) -> Vec<Record> {
    let g = state.live_graph();
    let mut out = Vec::with_capacity(g.parts.len() + g.clients.len() * 2 + 4);
    for c in &g.clients {
        out.push(Record::ClientJoined {
            client: c.conn,
            name: c.name.clone(),
        });
        if c.id != 0 {
            out.push(Record::ClientIdentified {
                client: c.conn,
                id: c.id,
            });
        }
    }
    out.push(Record::ClientJoined {
        client: SNAPSHOT_CLIENT,
        name: "journal-snapshot".into(),
    });
    for msg in g.parts {
        out.push(Record::FromClient {
            client: SNAPSHOT_CLIENT,
            msg,
        });
    }
    out.push(Record::FromClient {
        client: SNAPSHOT_CLIENT,
        msg: ToScheduler::UpdateGraph {
            tasks: Vec::new(),
            wanted: g.wanted,
            options: Default::default(),
            more: false,
        },
    });
    if !g.pinned.is_empty() {
        out.push(Record::FromClient {
            client: SNAPSHOT_CLIENT,
            msg: ToScheduler::Pin { keys: g.pinned },
        });
    }
    let mut parked = Vec::new();
    for c in g.clients {
        if c.parked {
            parked.push(c.conn);
        }
        if !c.wanted.is_empty() {
            out.push(Record::FromClient {
                client: c.conn,
                msg: ToScheduler::UpdateGraph {
                    tasks: Vec::new(),
                    wanted: c.wanted,
                    options: Default::default(),
                    more: false,
                },
            });
        }
    }
    for (key, error) in g.erred {
        out.push(Record::Erred { key, error });
    }
    out.push(Record::ClientLeft {
        client: SNAPSHOT_CLIENT,
    });
    // Parked clients were connected in the snapshot only to want their keys.
    for client in parked {
        out.push(Record::ClientLeft { client });
    }
    for name in workers {
        out.push(Record::WorkerJoined { name: name.clone() });
    }
    out
}

/// An open journal: records events as the core handles them. See the [module docs](self).
pub struct Journal {
    dir: PathBuf,
    path: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
    /// Bytes in the file.
    written: u64,
    /// Bytes of the last snapshot.
    live: u64,
    /// Compaction thresholds.
    factor: u64,
    min_bytes: u64,
    /// Clients and workers connected (workers by name).
    clients: FxHashSet<u64>,
    workers: FxHashMap<u64, String>,
    /// Names of workers connected, in order (for snapshots).
    worker_names: Vec<String>,
    /// A task-erred message seen in the current event: checked after it is handled.
    erred: Option<WireKey>,
}

/// A journal opened at start-up, and the state it rebuilt.
pub struct Opened {
    /// The journal, compacted and ready to record.
    pub journal: Journal,
    /// The rebuilt state (empty for a new journal).
    pub state: SchedulerState,
    /// What the replay restored.
    pub replayed: Replayed,
    /// Records replayed.
    pub records: usize,
    /// A torn last record that was dropped (offset, bytes).
    pub torn: Option<(u64, usize)>,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, replays it into a new state with `config`,
    /// and compacts it to a snapshot of that state.
    pub fn open(dir: &Path, config: Config, now: Instant) -> Result<Opened, JournalError> {
        if dir.exists() && !dir.is_dir() {
            return Err(JournalError::Io {
                path: dir.to_owned(),
                source: io::Error::other("it is a file, not a directory"),
            });
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(FILE_NAME);
        let loaded = match path.exists() {
            true => read(&path)?,
            false => Loaded {
                records: Vec::new(),
                torn: None,
            },
        };
        let mut state = SchedulerState::new(config, now);
        let records = loaded.records.len();
        let replayed = replay(loaded.records, &mut state, now);
        let mut journal = Journal {
            dir: dir.to_owned(),
            path,
            file: None,
            buf: Vec::new(),
            written: 0,
            live: 0,
            factor: COMPACT_FACTOR,
            min_bytes: COMPACT_MIN_BYTES,
            clients: replayed.clients.iter().map(|(c, _, _)| *c).collect(),
            workers: FxHashMap::default(),
            worker_names: replayed.workers.clone(),
            erred: None,
        };
        journal.compact(&state)?;
        Ok(Opened {
            journal,
            state,
            replayed,
            records,
            torn: loaded.torn,
        })
    }

    /// Compacts once the file is `factor` times the last snapshot and at least `min_bytes`.
    pub fn set_compaction(&mut self, factor: u64, min_bytes: u64) {
        self.factor = factor.max(2);
        self.min_bytes = min_bytes;
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the journal file (after the last [`Journal::flush`]).
    pub fn bytes(&self) -> u64 {
        self.written
    }

    fn push(&mut self, r: &Record) {
        encode_record(r, &mut self.buf);
    }

    /// Records what `event` changes; call before the state handles it, and
    /// [`Journal::after`] after.
    pub fn record(&mut self, event: &Event) {
        match event {
            Event::ClientJoined { conn, name } => {
                self.clients.insert(*conn);
                self.push(&Record::ClientJoined {
                    client: *conn,
                    name: name.clone(),
                });
            }
            Event::ClientIdentified { conn, id, .. } if self.clients.contains(conn) && *id != 0 => {
                self.push(&Record::ClientIdentified {
                    client: *conn,
                    id: *id,
                });
            }
            Event::FromClient { conn, msg } => {
                if !self.clients.contains(conn) {
                    return;
                }
                if matches!(
                    msg,
                    ToScheduler::UpdateGraph { .. }
                        | ToScheduler::Release { .. }
                        | ToScheduler::Pin { .. }
                        | ToScheduler::Cancel { .. }
                        | ToScheduler::Restart { .. }
                        | ToScheduler::Close
                ) {
                    self.push(&Record::FromClient {
                        client: *conn,
                        msg: msg.clone(),
                    });
                }
            }
            Event::ClientLeft { conn } if self.clients.remove(conn) => {
                self.push(&Record::ClientLeft { client: *conn });
            }
            Event::WorkerJoined { conn, info } => {
                self.workers.insert(*conn, info.name.clone());
                if !self.worker_names.contains(&info.name) {
                    self.worker_names.push(info.name.clone());
                }
                self.push(&Record::WorkerJoined {
                    name: info.name.clone(),
                });
            }
            Event::WorkerLeft { conn, .. } => {
                if let Some(name) = self.workers.remove(conn) {
                    // A refused duplicate name leaves without the original leaving.
                    if !self.workers.values().any(|n| *n == name) {
                        self.worker_names.retain(|n| *n != name);
                        self.push(&Record::WorkerLeft { name });
                    }
                }
            }
            Event::FromWorker {
                msg: FromWorker::Erred { key, .. },
                ..
            } => self.erred = Some(*key),
            _ => {}
        }
    }

    /// Records what handling the last event decided that the journal keeps (a task that
    /// failed for good).
    pub fn after(&mut self, state: &SchedulerState) {
        let Some(key) = self.erred.take() else {
            return;
        };
        let Ok(k) = key.to_key() else { return };
        if let Some(t) = state.task_by_key(&k) {
            if t.state == TState::Erred {
                if let Some(e) = t.error.as_deref() {
                    let r = Record::Erred {
                        key,
                        error: e.clone(),
                    };
                    self.push(&r);
                }
            }
        }
    }

    /// Writes what was recorded since the last flush (one `write`). On an I/O error the
    /// journal stops (logged): the scheduler goes on without it.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let Some(f) = self.file.as_mut() else {
            self.buf.clear();
            return;
        };
        match f.write_all(&self.buf) {
            Ok(()) => self.written += self.buf.len() as u64,
            Err(e) => {
                tracing::error!(
                    "the scheduler journal {} cannot be written ({e}): journalling stops; a restart will not resume the graphs given from now on",
                    self.path.display()
                );
                self.file = None;
            }
        }
        self.buf.clear();
    }

    /// Whether the journal has grown enough to be compacted.
    pub fn wants_compaction(&self) -> bool {
        self.file.is_some()
            && self.written >= self.min_bytes
            && self.written >= self.factor.saturating_mul(self.live.max(1))
    }

    /// Rewrites the journal as a snapshot of `state` (written aside, then renamed over it).
    pub fn compact(&mut self, state: &SchedulerState) -> Result<(), JournalError> {
        self.flush();
        let records = snapshot(state, &self.worker_names);
        let mut bytes = MAGIC.to_vec();
        for r in &records {
            encode_record(r, &mut bytes);
        }
        let tmp = self.dir.join(format!("{FILE_NAME}.new"));
        let write = || -> io::Result<File> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
            OpenOptions::new().append(true).open(&self.path)
        };
        let file = write().map_err(io_err(&self.path))?;
        self.file = Some(file);
        self.written = bytes.len() as u64;
        self.live = self.written;
        // Restored clients are in the snapshot under their (restored) connections.
        self.clients = state_clients(state);
        Ok(())
    }
}

fn state_clients(state: &SchedulerState) -> FxHashSet<u64> {
    state
        .live_graph_clients()
        .into_iter()
        .collect::<FxHashSet<u64>>()
}

#[cfg(test)]
mod tests;
