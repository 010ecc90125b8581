//! Spilling and unspilling: which results go to disk and when, the outcomes of the shell's
//! writes and reads, and the memory monitor's samples. Pure: the files themselves are written
//! and read by the shell, outside the worker's lock.

use std::path::PathBuf;
use std::time::Duration;

use oxidask_core::{Key, Value};
use oxidask_protocol::{ActivityKind, FromWorker, WireError};

use super::{Effect, Phase, Slot, Stored, WorkerState};
use crate::memory::{MemoryAction, SpillCandidate};

/// A value to write to its spill file outside the lock.
pub(crate) struct SpillJob {
    pub key: Key,
    /// Its use counter when picked (a later use cancels the move).
    pub used: u64,
    pub value: Value,
    pub path: PathBuf,
    pub compress: bool,
}

impl SpillJob {
    /// Encodes and writes the value's file (no lock held); its size on disk.
    pub fn write(&self) -> Result<u64, String> {
        let parts = self.value.encode_parts().map_err(|e| e.to_string())?;
        let (file, _) = crate::spillfile::encode(&parts, self.compress);
        std::fs::write(&self.path, &file).map_err(|e| {
            let _ = std::fs::remove_file(&self.path);
            format!("{}: {e}", self.path.display())
        })?;
        Ok(file.len() as u64)
    }
}

/// Reads a spill file back (no lock held).
pub(crate) fn read_spill(path: &std::path::Path, type_name: &str) -> Result<Value, String> {
    std::fs::read(path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|b| crate::spillfile::decode(type_name, bytes::Bytes::from(b)))
}

/// What the data port serves for a key: a value, a file to read, or nothing.
pub(crate) enum Served {
    Value(Value),
    File { path: PathBuf, type_name: String },
    Missing,
}

impl WorkerState {
    /// Holds a new value in memory, then spills if memory passed its target.
    pub(super) fn insert_value(
        &mut self,
        key: Key,
        value: Value,
        nbytes: u64,
        owned: bool,
        readers: u32,
    ) {
        self.seq += 1;
        self.memory += nbytes;
        self.data.insert(
            key,
            Stored {
                slot: Slot::Memory(value),
                used: self.seq,
                nbytes,
                owned,
                readers,
                pins: 0,
                writing: None,
            },
        );
        self.maybe_spill(Some(key));
    }

    /// Forgets a value, in memory or on disk.
    pub(super) fn remove_value(&mut self, key: Key) {
        let Some(s) = self.data.remove(&key) else {
            return;
        };
        if s.writing.is_some() {
            self.writing -= s.nbytes;
        }
        match s.slot {
            Slot::Memory(_) => self.memory -= s.nbytes,
            Slot::Disk {
                path, file_bytes, ..
            } => {
                self.unspilling.remove(&key);
                self.spilled_now -= s.nbytes;
                self.spilled_file_bytes -= file_bytes;
                self.effects.push(Effect::RemoveFile(path));
            }
        }
    }

    /// What the data port sends for `key` (a use, for least-recently-used spilling): a
    /// spilled value is read by the data port outside the lock and stays on disk.
    pub fn serve(&mut self, key: &Key) -> Served {
        self.seq += 1;
        let seq = self.seq;
        let Some(s) = self.data.get_mut(key) else {
            return Served::Missing;
        };
        s.used = seq;
        match &s.slot {
            Slot::Memory(v) => Served::Value(v.clone()),
            Slot::Disk {
                path, type_name, ..
            } => Served::File {
                path: path.clone(),
                type_name: type_name.clone(),
            },
        }
    }

    /// Results in memory that could go to disk: not `keep`, not pinned, not being written,
    /// with a codec.
    pub fn spill_candidates(&self, keep: Option<Key>) -> Vec<SpillCandidate<Key>> {
        self.data
            .iter()
            .filter(|(k, s)| {
                Some(**k) != keep
                    && s.pins == 0
                    && s.writing.is_none()
                    && matches!(&s.slot, Slot::Memory(v) if v.is_encodable())
            })
            .map(|(k, s)| SpillCandidate {
                key: *k,
                used: s.used,
                wanted: s.readers > 0,
                nbytes: s.nbytes,
            })
            .collect()
    }

    /// Starts writing results worth `bytes` to disk, least recently used first.
    fn spill_bytes(&mut self, bytes: u64, keep: Option<Key>) {
        let Some(dir) = self.spill.as_ref().map(|s| s.dir.clone()) else {
            return;
        };
        let picks = crate::memory::spill_order(self.spill_candidates(keep), bytes);
        for k in picks {
            let spill = self.spill.as_mut().expect("checked");
            spill.files += 1;
            let path = dir.join(format!("{}.spill", spill.files));
            let compress = spill.compress;
            let s = self.data.get_mut(&k).expect("a candidate");
            let Slot::Memory(v) = &s.slot else {
                continue;
            };
            s.writing = Some(s.used);
            self.writing += s.nbytes;
            let job = SpillJob {
                key: k,
                used: s.used,
                value: v.clone(),
                path,
                compress,
            };
            self.effects.push(Effect::WriteSpill(job));
        }
    }

    /// Spills least recently used values (those no local task waits for first) until memory,
    /// less what is being written, is back under the target; `keep` stays in memory.
    fn maybe_spill(&mut self, keep: Option<Key>) {
        let Some(target) = self.spill.as_ref().map(|s| s.target) else {
            return;
        };
        let staying = self.memory - self.writing;
        if staying > target {
            self.spill_bytes(staying - target, keep);
        }
    }

    pub(super) fn spill_written(
        &mut self,
        key: Key,
        used: u64,
        path: PathBuf,
        outcome: Result<u64, String>,
        started_us: u64,
    ) {
        let s = self
            .data
            .get_mut(&key)
            .filter(|s| s.writing == Some(used) && matches!(s.slot, Slot::Memory(_)));
        let Some(s) = s else {
            // Dropped meanwhile (the file is of no use).
            if outcome.is_ok() {
                self.effects.push(Effect::RemoveFile(path));
            }
            return;
        };
        s.writing = None;
        self.writing -= s.nbytes;
        let file_bytes = match outcome {
            Ok(n) => n,
            Err(e) => {
                // A full or missing disk: the value stays in memory rather than be lost (a
                // stopping worker's directory is gone: nothing to say).
                if !self.stopping {
                    self.effects.push(Effect::Log {
                        warn: true,
                        line: format!("cannot spill to disk ({e}); results stay in memory"),
                    });
                }
                return;
            }
        };
        if s.used != used || s.pins > 0 {
            // Used while its file was written: it stays in memory.
            self.effects.push(Effect::RemoveFile(path));
            return;
        }
        let Slot::Memory(v) = &s.slot else {
            unreachable!("checked")
        };
        let type_name = v.type_name().to_owned();
        s.slot = Slot::Disk {
            path,
            type_name,
            file_bytes,
            reading: false,
        };
        let n = s.nbytes;
        self.memory -= n;
        self.spilled_now += n;
        self.spilled_total += n;
        self.spilled_file_bytes += file_bytes;
        self.record(ActivityKind::SpillOut, started_us, self.now, n, 1);
    }

    pub(super) fn unspill_read(
        &mut self,
        key: Key,
        path: PathBuf,
        outcome: Result<Value, String>,
        started_us: u64,
    ) {
        let current = self.data.get(&key).is_some_and(
            |s| matches!(&s.slot, Slot::Disk { path: p, reading: true, .. } if *p == path),
        );
        if !current {
            // Forgotten meanwhile (its file was removed then).
            return;
        }
        let waiting = self.unspilling.remove(&key).unwrap_or_default();
        let s = self.data.get_mut(&key).expect("checked");
        let v = match outcome {
            Ok(v) => v,
            Err(e) => {
                if let Slot::Disk { reading, .. } = &mut s.slot {
                    *reading = false;
                }
                let why = format!("the spilled value of {key} could not be read back: {e}");
                self.effects.push(Effect::Log {
                    warn: true,
                    line: why.clone(),
                });
                for t in waiting {
                    self.fail_unspilling(t, &why);
                }
                return;
            }
        };
        let n = s.nbytes;
        if let Slot::Disk { file_bytes, .. } = s.slot {
            self.spilled_file_bytes -= file_bytes;
        }
        s.slot = Slot::Memory(v);
        self.seq += 1;
        s.used = self.seq;
        self.spilled_now -= n;
        self.memory += n;
        self.effects.push(Effect::RemoveFile(path));
        self.record(ActivityKind::SpillIn, started_us, self.now, n, 1);
        for t in waiting {
            let Some(e) = self.tasks.get_mut(&t) else {
                continue;
            };
            if let Phase::Unspilling { reads } = &mut e.phase {
                *reads -= 1;
                if *reads == 0 {
                    e.phase = Phase::Ready;
                    let p = e.priority;
                    self.push_ready(t, p);
                }
            }
        }
        self.maybe_spill(Some(key));
    }

    /// A claimed task cannot run: one of its inputs is unreadable.
    fn fail_unspilling(&mut self, t: Key, why: &str) {
        let Some(e) = self.tasks.remove(&t) else {
            return;
        };
        self.totals.failed += 1;
        self.release_inputs(t, &e);
        self.effects.push(Effect::Log {
            warn: true,
            line: format!("task {t} cannot run: a dependency is unreadable: {why}"),
        });
        let wk = e.wire_key;
        self.send(FromWorker::Erred {
            key: wk,
            error: WireError {
                key: Some(wk),
                ..WireError::invalid(why.to_owned())
            },
        });
    }

    pub(super) fn memory_sample(&mut self, rss: u64, at: Duration) {
        let Some(monitor) = self.monitor.as_mut() else {
            return;
        };
        for action in monitor.observe(rss, self.memory - self.writing, at) {
            match action {
                // Files being written count towards what to take out of memory.
                MemoryAction::Spill { bytes } => {
                    self.spill_bytes(bytes.saturating_sub(self.writing), None)
                }
                MemoryAction::Pause | MemoryAction::Resume => {
                    let paused = action == MemoryAction::Pause;
                    self.paused = paused;
                    self.send(FromWorker::Paused { paused });
                    self.effects.push(Effect::Paused(paused));
                    if !paused {
                        // (One may have been answered meanwhile by an earlier fetch.)
                        for order in std::mem::take(&mut self.deferred) {
                            if self.fetching.contains_key(&order.0) {
                                self.effects.push(Effect::Fetch(order));
                            }
                        }
                        self.effects.push(Effect::WakeExecutors);
                    }
                }
                MemoryAction::Terminate => self.effects.push(Effect::Terminate),
                MemoryAction::Warn(line) => self.effects.push(Effect::Log { warn: true, line }),
                MemoryAction::ReleaseFreed => self.effects.push(Effect::ReleaseFreedMemory),
            }
        }
    }
}
