//! An in-process store of P2P shuffle shards (opaque bytes): in memory up to a budget,
//! appended to one file per shuffle past it. Workers keep the shards of the transfer tasks
//! they ran in one (`oxidask-worker`'s shuffle service, which also moves them between
//! workers); on the local schedulers the dataframe crate keeps every shard in one.
//!
//! A shard is dropped once taken; a shuffle's file is removed when its last shard is taken
//! or the shuffle is dropped ([`ShardStore::drop_shuffle`]), and the directory when the
//! store drops.
//!
//! Every `put` gets a fresh stamp (a run id) that a `take` must name: a shuffle restarted
//! after a worker died runs its transfers again, and an unpack task of the earlier run still
//! in flight must neither take the shards the new run stored for the same input (the new
//! run's unpack would then find them missing and restart the shuffle again) nor read what
//! the earlier run left.
//!
//! # Invariants
//! * `in_memory` is the sum of the lengths of the shards held in memory, and a `put` never
//!   takes it past the budget (a shard that does not fit goes to disk).
//! * Every input a `put` stored has a shard for every output it was given (empty bytes for an
//!   output with no rows): an absent shard was taken already, an absent input was never
//!   stored here, and both are reported missing.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use oxidask_core::shuffle::ShuffleId;

/// Where one shard is.
#[derive(Debug)]
enum Stored {
    Memory(Bytes),
    Disk { offset: u64, len: u64 },
}

/// The shards of one shuffle held here.
#[derive(Default)]
struct Run {
    /// Input → (stamp of its put, output → shard).
    inputs: HashMap<u32, (u64, HashMap<u32, Stored>)>,
    /// The append-only spill file and its length.
    file: Option<(File, u64)>,
    /// Bytes written to the spill file.
    spilled: u64,
}

#[derive(Default)]
struct Inner {
    runs: HashMap<ShuffleId, Run>,
    in_memory: u64,
    spilled_total: u64,
    /// Bytes of the shuffles' spill files now on disk.
    on_disk: u64,
}

/// What a [`ShardStore::put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Put {
    /// The stamp a `take` of these shards must name (never returned twice in a process;
    /// random across processes).
    pub stamp: u64,
    /// Bytes that went to disk.
    pub spilled: u64,
}

/// A fresh stamp: a process-wide counter from a random start, so a worker restarted at
/// the same address does not hand out the stamps its earlier life did.
fn next_stamp() -> u64 {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    NEXT.get_or_init(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        // Leave room below 2^63 so the counter never wraps to a used value in practice.
        AtomicU64::new(((t ^ ((std::process::id() as u64) << 40)) >> 2) | 1)
    })
    .fetch_add(1, Ordering::Relaxed)
}

/// Shards of P2P shuffles, in memory up to a budget and on disk past it. Pure bookkeeping and
/// file I/O: no network (the service around it moves shards between workers).
pub struct ShardStore {
    budget: AtomicU64,
    dir: PathBuf,
    inner: Mutex<Inner>,
}

/// What a [`ShardStore::take`] found.
#[derive(Debug, Default, PartialEq)]
pub struct Taken {
    /// (input, bytes) of the shards found, in input order.
    pub shards: Vec<(u32, Bytes)>,
    /// Inputs with no shard here for that output.
    pub missing: Vec<u32>,
}

impl ShardStore {
    /// A store holding up to `budget` bytes of shards in memory and spilling the rest to
    /// files under `dir` (created when first needed, removed when the store drops).
    pub fn new(budget: u64, dir: PathBuf) -> ShardStore {
        ShardStore {
            budget: AtomicU64::new(budget),
            dir,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `input`'s shards of shuffle `id` (one per output, empty bytes for an output
    /// with no rows), replacing what an earlier run of that input stored. Returns its stamp
    /// and the bytes that went to disk.
    pub fn put(
        &self,
        id: ShuffleId,
        input: u32,
        shards: Vec<(u32, Bytes)>,
    ) -> std::io::Result<Put> {
        let stamp = next_stamp();
        let mut guard = self.inner();
        let inner = &mut *guard;
        let run = inner.runs.entry(id).or_default();
        if let Some((_, old)) = run.inputs.remove(&input) {
            for s in old.values() {
                if let Stored::Memory(b) = s {
                    inner.in_memory -= b.len() as u64;
                }
            }
        }
        let mut stored = HashMap::with_capacity(shards.len());
        let mut spilled = 0;
        for (output, bytes) in shards {
            let len = bytes.len() as u64;
            if inner.in_memory + len <= self.budget.load(Ordering::Relaxed) {
                inner.in_memory += len;
                stored.insert(output, Stored::Memory(bytes));
                continue;
            }
            // Past the budget: append to the shuffle's file.
            if run.file.is_none() {
                std::fs::create_dir_all(&self.dir)?;
                let path = self.dir.join(file_name(id));
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .read(true)
                    .write(true)
                    .open(&path)?;
                run.file = Some((f, 0));
            }
            let (f, end) = run.file.as_mut().expect("opened above");
            f.write_all(&bytes)?;
            stored.insert(output, Stored::Disk { offset: *end, len });
            *end += len;
            spilled += len;
        }
        run.spilled += spilled;
        inner.spilled_total += spilled;
        inner.on_disk += spilled;
        run.inputs.insert(input, (stamp, stored));
        Ok(Put { stamp, spilled })
    }

    /// Takes output `output`'s shards of `inputs` stored under `stamps` (one per input;
    /// dropping them here). Empty shards are not returned; an input not stored here, stored
    /// under another stamp, or whose shard for `output` was taken already is missing (and
    /// what is stored under another stamp stays). A shuffle whose last shard is taken is
    /// forgotten and its file removed.
    pub fn take(
        &self,
        id: ShuffleId,
        output: u32,
        inputs: &[u32],
        stamps: &[u64],
    ) -> std::io::Result<Taken> {
        let mut guard = self.inner();
        let inner = &mut *guard;
        let mut taken = Taken::default();
        let mut sorted: Vec<(u32, Option<u64>)> = inputs
            .iter()
            .enumerate()
            .map(|(k, &i)| (i, stamps.get(k).copied()))
            .collect();
        sorted.sort_unstable();
        let Some(run) = inner.runs.get_mut(&id) else {
            taken.missing = sorted.into_iter().map(|(i, _)| i).collect();
            return Ok(taken);
        };
        for (i, stamp) in sorted {
            let Some(s) = run
                .inputs
                .get_mut(&i)
                .filter(|(st, _)| Some(*st) == stamp)
                .and_then(|(_, m)| m.remove(&output))
            else {
                taken.missing.push(i);
                continue;
            };
            let bytes = match s {
                Stored::Memory(b) => {
                    inner.in_memory -= b.len() as u64;
                    b
                }
                Stored::Disk { offset, len } => {
                    let (f, _) = run.file.as_ref().expect("a spilled shard has a file");
                    let mut buf = vec![0u8; len as usize];
                    f.read_exact_at(&mut buf, offset)?;
                    Bytes::from(buf)
                }
            };
            if !bytes.is_empty() {
                taken.shards.push((i, bytes));
            }
            if run.inputs.get(&i).is_some_and(|(_, m)| m.is_empty()) {
                run.inputs.remove(&i);
            }
        }
        if run.inputs.is_empty() {
            let run = inner.runs.remove(&id).expect("present");
            Self::forget(inner, &self.dir, id, run);
        }
        Ok(taken)
    }

    /// Drops what one run of shuffle `id` left here: the shards of each `(input, stamp)`
    /// still stored under that stamp (a later run's shards of the same input stay). Returns
    /// the shards' bytes dropped; a shuffle left with no shard is forgotten and its file
    /// removed. The worker calls it when the scheduler frees the shuffle's barrier, with the
    /// barrier's holders: what a restart left behind, or outputs never asked for, go.
    pub fn drop_run(&self, id: ShuffleId, run_inputs: &[(u32, u64)]) -> u64 {
        let mut guard = self.inner();
        let inner = &mut *guard;
        let Some(run) = inner.runs.get_mut(&id) else {
            return 0;
        };
        let mut bytes = 0;
        for &(input, stamp) in run_inputs {
            if run.inputs.get(&input).is_some_and(|(st, _)| *st == stamp) {
                let (_, m) = run.inputs.remove(&input).expect("present");
                for s in m.values() {
                    match s {
                        Stored::Memory(b) => {
                            inner.in_memory -= b.len() as u64;
                            bytes += b.len() as u64;
                        }
                        Stored::Disk { len, .. } => bytes += len,
                    }
                }
            }
        }
        if run.inputs.is_empty() {
            let run = inner.runs.remove(&id).expect("present");
            Self::forget(inner, &self.dir, id, run);
        }
        bytes
    }

    /// Drops every shard of shuffle `id` held here (its file is removed); returns their
    /// bytes. The worker calls it when the scheduler releases the shuffle (nothing of it is
    /// on its way any more).
    pub fn drop_shuffle(&self, id: ShuffleId) -> u64 {
        let mut guard = self.inner();
        let inner = &mut *guard;
        match inner.runs.remove(&id) {
            Some(run) => Self::forget(inner, &self.dir, id, run),
            None => 0,
        }
    }

    /// Accounts for `run`, removed from `inner.runs`, and removes its file; returns the
    /// bytes of shards it still held.
    fn forget(inner: &mut Inner, dir: &std::path::Path, id: ShuffleId, run: Run) -> u64 {
        let mut bytes = 0;
        for (_, m) in run.inputs.values() {
            for s in m.values() {
                match s {
                    Stored::Memory(b) => {
                        inner.in_memory -= b.len() as u64;
                        bytes += b.len() as u64;
                    }
                    Stored::Disk { len, .. } => bytes += len,
                }
            }
        }
        if run.file.is_some() {
            inner.on_disk -= run.spilled;
            let _ = std::fs::remove_file(dir.join(file_name(id)));
        }
        bytes
    }

    /// Holds up to `budget` bytes in memory from the next `put` on (shards already stored
    /// stay where they are).
    pub fn set_budget(&self, budget: u64) {
        self.budget.store(budget, Ordering::Relaxed);
    }

    /// The directory spill files go to.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Bytes of shards held in memory now.
    pub fn in_memory(&self) -> u64 {
        self.inner().in_memory
    }

    /// Bytes of the spill files of the shuffles held now (what they take on disk).
    pub fn on_disk(&self) -> u64 {
        self.inner().on_disk
    }

    /// Bytes of shards written to disk since the store was made.
    pub fn spilled_total(&self) -> u64 {
        self.inner().spilled_total
    }

    /// Shuffles with shards held here.
    pub fn shuffles(&self) -> usize {
        self.inner().runs.len()
    }
}

impl Drop for ShardStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn file_name(id: ShuffleId) -> String {
    format!("shuffle-{:016x}{:016x}.bin", id.0, id.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn shards_are_taken_once_in_input_order_and_the_shuffle_is_forgotten() {
        let dir = tempdir("order");
        let st = ShardStore::new(1 << 20, dir.clone());
        let id = (1, 2);
        let s1 = st
            .put(id, 1, vec![(0, b("1a")), (1, Bytes::new())])
            .unwrap()
            .stamp;
        let s0 = st
            .put(id, 0, vec![(0, b("0a")), (1, b("0b"))])
            .unwrap()
            .stamp;
        assert_ne!(s0, s1);
        let t = st.take(id, 0, &[1, 0], &[s1, s0]).unwrap();
        assert_eq!(t.shards, vec![(0, b("0a")), (1, b("1a"))]);
        assert!(t.missing.is_empty());
        // Taken already: missing.
        assert_eq!(st.take(id, 0, &[0], &[s0]).unwrap().missing, vec![0]);
        // An empty shard is found (not missing) but not returned.
        let t = st.take(id, 1, &[0, 1], &[s0, s1]).unwrap();
        assert_eq!(t.shards, vec![(0, b("0b"))]);
        assert!(t.missing.is_empty());
        assert_eq!(st.shuffles(), 0);
        assert_eq!(st.in_memory(), 0);
        // An unknown shuffle has nothing.
        assert_eq!(st.take((9, 9), 0, &[3], &[1]).unwrap().missing, vec![3]);
    }

    #[test]
    fn past_the_budget_shards_go_to_disk_and_come_back_exact() {
        let dir = tempdir("spill");
        let st = ShardStore::new(10, dir.clone());
        let id = (3, 4);
        let s0 = st
            .put(id, 0, vec![(0, b("aaaaaa")), (1, b("bbbbbb"))])
            .unwrap();
        assert_eq!(s0.spilled, 6);
        assert_eq!(st.in_memory(), 6);
        assert_eq!(st.spilled_total(), 6);
        assert!(dir.join(file_name(id)).exists());
        let s1 = st
            .put(id, 1, vec![(0, b("cc")), (1, b("dddddddd"))])
            .unwrap();
        assert_eq!(st.in_memory(), 8);
        assert_eq!(st.spilled_total(), 14);
        assert_eq!(st.on_disk(), 14);
        let stamps = [s0.stamp, s1.stamp];
        let t = st.take(id, 1, &[0, 1], &stamps).unwrap();
        assert_eq!(t.shards, vec![(0, b("bbbbbb")), (1, b("dddddddd"))]);
        let t = st.take(id, 0, &[0, 1], &stamps).unwrap();
        assert_eq!(t.shards, vec![(0, b("aaaaaa")), (1, b("cc"))]);
        assert_eq!(st.in_memory(), 0);
        assert_eq!(st.on_disk(), 0);
        assert!(
            !dir.join(file_name(id)).exists(),
            "the file goes with the last shard"
        );
        drop(st);
        assert!(!dir.exists(), "the directory goes with the store");
    }

    #[test]
    fn a_second_put_of_an_input_replaces_the_first() {
        let st = ShardStore::new(100, tempdir("replace"));
        let id = (5, 6);
        let old = st.put(id, 0, vec![(0, b("old"))]).unwrap().stamp;
        let new = st.put(id, 0, vec![(0, b("new!"))]).unwrap().stamp;
        assert_eq!(st.in_memory(), 4);
        // The earlier run's stamp finds nothing (its shards were replaced).
        assert_eq!(st.take(id, 0, &[0], &[old]).unwrap().missing, vec![0]);
        assert_eq!(
            st.take(id, 0, &[0], &[new]).unwrap().shards,
            vec![(0, b("new!"))]
        );
    }

    /// Regression: shards had no run id, so an unpack task of a restarted shuffle's earlier
    /// run, still in flight on some worker, took (and dropped) the shards the new run's
    /// transfer had stored for the same input on the same worker; the new run's unpack then
    /// found them missing and restarted the shuffle again (a cascade up to the restart limit).
    #[test]
    fn an_unpack_of_an_earlier_run_cannot_take_the_shards_of_a_later_run() {
        let st = ShardStore::new(100, tempdir("stale"));
        let id = (7, 8);
        let run1 = st.put(id, 0, vec![(0, b("x")), (1, b("y"))]).unwrap().stamp;
        // The shuffle restarts; input 0's transfer runs here again.
        let run2 = st.put(id, 0, vec![(0, b("x")), (1, b("y"))]).unwrap().stamp;
        // The earlier run's unpack of output 0 asks with the earlier stamp: missing, and the
        // shard stays for the new run.
        let stale = st.take(id, 0, &[0], &[run1]).unwrap();
        assert_eq!(stale.missing, vec![0]);
        assert!(stale.shards.is_empty());
        let t = st.take(id, 0, &[0], &[run2]).unwrap();
        assert_eq!(t.shards, vec![(0, b("x"))]);
        assert!(t.missing.is_empty());
        // A request naming no stamp for an input takes nothing either.
        assert_eq!(st.take(id, 1, &[0], &[]).unwrap().missing, vec![0]);
        assert_eq!(st.in_memory(), 1);
    }

    /// Regression: shards a restart left for outputs already finished stayed until the
    /// worker stopped; dropping the run frees their memory and removes their file, and
    /// leaves a later run's shards of the same shuffle alone.
    #[test]
    fn leftover_shards_of_a_restarted_shuffle_go_when_its_run_is_dropped() {
        let dir = tempdir("drop");
        let st = ShardStore::new(4, dir.clone());
        let id = (9, 10);
        let other = (11, 12);
        let s0 = st
            .put(id, 0, vec![(0, b("ab")), (1, b("cdefgh"))])
            .unwrap()
            .stamp;
        let keep = st.put(other, 0, vec![(0, b("zz"))]).unwrap().stamp;
        assert!(dir.join(file_name(id)).exists());
        // Input 1 was stored by a later run: dropping the earlier run leaves it.
        let later = st.put(id, 1, vec![(0, b("q"))]).unwrap().stamp;
        assert_eq!(st.drop_run(id, &[(0, s0), (1, later - 1000)]), 8);
        assert_eq!(st.shuffles(), 2);
        assert_eq!(
            st.take(id, 0, &[1], &[later]).unwrap().shards,
            vec![(1, b("q"))]
        );
        assert!(!dir.join(file_name(id)).exists());
        assert_eq!(st.on_disk(), 0);
        assert_eq!(st.in_memory(), 2, "the other shuffle's shard stays");
        assert_eq!(st.shuffles(), 1);
        assert_eq!(st.drop_run(id, &[(0, s0)]), 0, "dropping twice is harmless");
        // Released: everything of a shuffle goes.
        st.put(id, 2, vec![(0, b("r")), (1, b("st"))]).unwrap();
        assert_eq!(st.drop_shuffle(id), 3);
        assert_eq!(st.drop_shuffle(id), 0);
        assert_eq!(st.in_memory(), 2);
        assert_eq!(
            st.take(other, 0, &[0], &[keep]).unwrap().shards,
            vec![(0, b("zz"))]
        );
    }

    fn tempdir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "oxidask-p2p-test-{}-{name}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ))
    }
}
