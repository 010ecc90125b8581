//! An in-process store of P2P shuffle shards (opaque bytes): in memory up to a budget,
//! appended to one file per shuffle past it. Workers keep the shards of the transfer tasks
//! they ran in one (`oxidask-worker`'s shuffle service, which also moves them between
//! workers); on the local schedulers the dataframe crate keeps every shard in one.
//!
//! A shard is dropped once taken; a shuffle's file is removed when its last shard is taken,
//! and the directory when the store drops.
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
use std::sync::Mutex;

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
    /// Input → output → shard.
    inputs: HashMap<u32, HashMap<u32, Stored>>,
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
    /// with no rows), replacing what an earlier run of that input stored. Returns the bytes
    /// that went to disk.
    pub fn put(
        &self,
        id: ShuffleId,
        input: u32,
        shards: Vec<(u32, Bytes)>,
    ) -> std::io::Result<u64> {
        let mut guard = self.inner();
        let inner = &mut *guard;
        let run = inner.runs.entry(id).or_default();
        if let Some(old) = run.inputs.remove(&input) {
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
        run.inputs.insert(input, stored);
        Ok(spilled)
    }

    /// Takes output `output`'s shards of `inputs` (dropping them here). Empty shards are
    /// not returned; a shuffle whose last shard is taken is forgotten and its file removed.
    pub fn take(&self, id: ShuffleId, output: u32, inputs: &[u32]) -> std::io::Result<Taken> {
        let mut guard = self.inner();
        let inner = &mut *guard;
        let mut taken = Taken::default();
        let Some(run) = inner.runs.get_mut(&id) else {
            taken.missing = inputs.to_vec();
            return Ok(taken);
        };
        let mut sorted = inputs.to_vec();
        sorted.sort_unstable();
        for i in sorted {
            let Some(s) = run.inputs.get_mut(&i).and_then(|m| m.remove(&output)) else {
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
            if run.inputs.get(&i).is_some_and(|m| m.is_empty()) {
                run.inputs.remove(&i);
            }
        }
        if run.inputs.is_empty() {
            let run = inner.runs.remove(&id).expect("present");
            if run.file.is_some() {
                let _ = std::fs::remove_file(self.dir.join(file_name(id)));
            }
        }
        Ok(taken)
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
        st.put(id, 1, vec![(0, b("1a")), (1, Bytes::new())])
            .unwrap();
        st.put(id, 0, vec![(0, b("0a")), (1, b("0b"))]).unwrap();
        let t = st.take(id, 0, &[1, 0]).unwrap();
        assert_eq!(t.shards, vec![(0, b("0a")), (1, b("1a"))]);
        assert!(t.missing.is_empty());
        // Taken already: missing.
        assert_eq!(st.take(id, 0, &[0]).unwrap().missing, vec![0]);
        // An empty shard is found (not missing) but not returned.
        let t = st.take(id, 1, &[0, 1]).unwrap();
        assert_eq!(t.shards, vec![(0, b("0b"))]);
        assert!(t.missing.is_empty());
        assert_eq!(st.shuffles(), 0);
        assert_eq!(st.in_memory(), 0);
        // An unknown shuffle has nothing.
        assert_eq!(st.take((9, 9), 0, &[3]).unwrap().missing, vec![3]);
    }

    #[test]
    fn past_the_budget_shards_go_to_disk_and_come_back_exact() {
        let dir = tempdir("spill");
        let st = ShardStore::new(10, dir.clone());
        let id = (3, 4);
        st.put(id, 0, vec![(0, b("aaaaaa")), (1, b("bbbbbb"))])
            .unwrap();
        assert_eq!(st.in_memory(), 6);
        assert_eq!(st.spilled_total(), 6);
        assert!(dir.join(file_name(id)).exists());
        st.put(id, 1, vec![(0, b("cc")), (1, b("dddddddd"))])
            .unwrap();
        assert_eq!(st.in_memory(), 8);
        assert_eq!(st.spilled_total(), 14);
        let t = st.take(id, 1, &[0, 1]).unwrap();
        assert_eq!(t.shards, vec![(0, b("bbbbbb")), (1, b("dddddddd"))]);
        let t = st.take(id, 0, &[0, 1]).unwrap();
        assert_eq!(t.shards, vec![(0, b("aaaaaa")), (1, b("cc"))]);
        assert_eq!(st.in_memory(), 0);
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
        st.put(id, 0, vec![(0, b("old"))]).unwrap();
        st.put(id, 0, vec![(0, b("new!"))]).unwrap();
        assert_eq!(st.in_memory(), 4);
        assert_eq!(st.take(id, 0, &[0]).unwrap().shards, vec![(0, b("new!"))]);
    }

    fn tempdir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "oxidask-p2p-test-{}-{name}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ))
    }
}
