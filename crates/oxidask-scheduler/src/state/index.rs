//! Key → task id, stored as bare ids hashed by the key's own hash: 4 bytes per slot instead
//! of a copy of the 32-byte key (the table is the scheduler's largest after the records).

use hashbrown::HashTable;
use oxidask_core::Key;

use super::{TaskId, TaskRec};

#[derive(Default)]
pub(crate) struct KeyIndex {
    table: HashTable<TaskId>,
}

fn key_of(tasks: &[Option<TaskRec>], t: TaskId) -> &Key {
    &tasks[t.0 as usize]
        .as_ref()
        .expect("indexed tasks have records")
        .key
}

impl KeyIndex {
    pub(crate) fn get(&self, key: &Key, tasks: &[Option<TaskRec>]) -> Option<TaskId> {
        self.table
            .find(key.hash64(), |&t| key_of(tasks, t) == key)
            .copied()
    }

    /// Adds `t` (whose record is already in `tasks`).
    pub(crate) fn insert(&mut self, t: TaskId, tasks: &[Option<TaskRec>]) {
        let hash = key_of(tasks, t).hash64();
        self.table
            .insert_unique(hash, t, |&x| key_of(tasks, x).hash64());
    }

    /// Removes `key` (whose record is still in `tasks`).
    pub(crate) fn remove(&mut self, key: &Key, tasks: &[Option<TaskRec>]) {
        if let Ok(e) = self
            .table
            .find_entry(key.hash64(), |&t| key_of(tasks, t) == key)
        {
            e.remove();
        }
    }

    pub(crate) fn reserve(&mut self, n: usize, tasks: &[Option<TaskRec>]) {
        self.table.reserve(n, |&x| key_of(tasks, x).hash64());
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.table.capacity()
    }
}
