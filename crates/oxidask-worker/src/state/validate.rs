//! The reactor's invariants, checked after every step of the simulation (`simulate.rs`).

use std::cmp::Reverse;

use oxidask_core::Key;
use rustc_hash::FxHashMap;

use super::{Phase, Slot, WorkerState};

impl WorkerState {
    /// Checks the invariants in the module documentation; `Err` names the first broken one.
    pub fn validate(&self) -> Result<(), String> {
        let (mut memory, mut disk, mut writing, mut files) = (0u64, 0u64, 0u64, 0u64);
        let mut readers: FxHashMap<Key, u32> = FxHashMap::default();
        let mut pins: FxHashMap<Key, u32> = FxHashMap::default();
        let mut executing = 0;
        for (k, s) in &self.data {
            match &s.slot {
                Slot::Memory(v) => {
                    memory += s.nbytes;
                    if v.nbytes() as u64 != s.nbytes {
                        return Err(format!(
                            "{k}: {} bytes counted for {}",
                            s.nbytes,
                            v.nbytes()
                        ));
                    }
                }
                Slot::Disk {
                    reading,
                    file_bytes,
                    ..
                } => {
                    disk += s.nbytes;
                    files += file_bytes;
                    if *reading != self.unspilling.contains_key(k) {
                        return Err(format!("{k}: read flag and unspilling list disagree"));
                    }
                    if s.writing.is_some() {
                        return Err(format!("{k} is on disk and being written"));
                    }
                }
            }
            if s.writing.is_some() {
                writing += s.nbytes;
            }
            if s.readers == 0 && !s.owned {
                return Err(format!("{k} is held for nothing"));
            }
        }
        for (t, e) in &self.tasks {
            let mut fetching = 0;
            let mut reads = 0;
            for d in &e.deps {
                let waits = self.fetching.get(d).is_some_and(|f| f.waiting.contains(t));
                if waits {
                    fetching += 1;
                    if e.phase != Phase::Fetching {
                        return Err(format!("{t} ({:?}) is in the fetch of {d}", e.phase));
                    }
                    continue;
                }
                if !self.data.contains_key(d) {
                    return Err(format!("{t} ({:?}) has no input {d}", e.phase));
                }
                *readers.entry(*d).or_default() += 1;
                if e.pinned {
                    *pins.entry(*d).or_default() += 1;
                }
                if self.unspilling.get(d).is_some_and(|w| w.contains(t)) {
                    reads += 1;
                }
            }
            let ok = match e.phase {
                Phase::Fetching => fetching == e.missing && fetching > 0 && !e.pinned,
                Phase::Ready => fetching == 0 && reads == 0,
                Phase::Unspilling { reads: r } => fetching == 0 && r == reads && r > 0 && e.pinned,
                Phase::Executing => {
                    executing += 1;
                    fetching == 0 && reads == 0 && e.pinned
                }
            };
            if !ok {
                return Err(format!(
                    "{t} is {:?} with {fetching} fetching and {reads} unspilling inputs (missing {}, pinned {})",
                    e.phase, e.missing, e.pinned
                ));
            }
            if e.phase == Phase::Ready && !self.ready.iter().any(|Reverse((_, _, k))| k == t) {
                return Err(format!("{t} is ready but not in the ready heap"));
            }
            if e.cancelled && e.phase != Phase::Executing {
                return Err(format!("{t} is cancelled but not running"));
            }
        }
        for (k, s) in &self.data {
            let r = readers.get(k).copied().unwrap_or(0);
            let p = pins.get(k).copied().unwrap_or(0);
            if s.readers != r || s.pins != p {
                return Err(format!(
                    "{k}: {} readers and {} pins counted, {r} and {p} found",
                    s.readers, s.pins
                ));
            }
        }
        for (d, f) in &self.fetching {
            for t in &f.waiting {
                if !self.tasks.get(t).is_some_and(|e| e.deps.contains(d)) {
                    return Err(format!(
                        "the fetch of {d} waits for {t}, which does not read it"
                    ));
                }
            }
        }
        for (d, w) in &self.unspilling {
            for t in w {
                let ok = self
                    .tasks
                    .get(t)
                    .is_some_and(|e| matches!(e.phase, Phase::Unspilling { .. }));
                if !ok {
                    return Err(format!(
                        "the read of {d} waits for {t}, which is not unspilling"
                    ));
                }
            }
        }
        if (memory, disk, writing) != (self.memory, self.spilled_now, self.writing) {
            return Err(format!(
                "counted memory/disk/writing {}/{}/{}, found {memory}/{disk}/{writing}",
                self.memory, self.spilled_now, self.writing
            ));
        }
        if files != self.spilled_file_bytes {
            return Err(format!(
                "{} bytes of spill files counted, {files} found",
                self.spilled_file_bytes
            ));
        }
        if executing != self.executing {
            return Err(format!(
                "{} executing counted, {executing} found",
                self.executing
            ));
        }
        if !self.paused && !self.deferred.is_empty() {
            return Err("fetches deferred while not paused".into());
        }
        Ok(())
    }
}
