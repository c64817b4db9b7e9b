//! The store in the process's own memory: what the bot runs on when no
//! store outlives the process (no table, no file).
//!
//! It keeps the same records with the same rules as the other stores, so
//! the answering path is one: state, outboxes, done ids and leases. What
//! it keeps is the warm process's: on Lambda one copy per instance (a
//! repeat that reaches another instance, or a cold one, is answered
//! again; a chat's state starts over there), under `bot poll` one for the
//! process. Nothing survives a restart. At most [`MAX_CHATS`] chats are
//! kept, the least recently used dropped first; each record's done ids are
//! bounded by [`crate::memory`] as in any store.

use super::{aside_key, rules, ChatRecord, Commit, Done, Lease, Store, StoreError, StoreFuture};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Chats kept at most. A record of the echo bot is about 200 bytes, so
/// this is a few MiB at worst, well within Lambda's smallest memory.
pub const MAX_CHATS: usize = 10_000;

/// Chat records in a map, least recently used dropped past a capacity.
#[derive(Debug)]
pub struct InProcessStore {
    chats: Mutex<Chats>,
    /// Notes, under the same capacity; what they hold is not a record.
    notes: Mutex<HashMap<String, String>>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Chats {
    /// Each record with the tick of its last use.
    records: HashMap<String, (u64, ChatRecord)>,
    /// The keys by last use, oldest first.
    by_use: BTreeMap<u64, String>,
    tick: u64,
}

impl Chats {
    fn touch(&mut self, key: &str) {
        self.tick += 1;
        let tick = self.tick;
        if let Some((used, _)) = self.records.get_mut(key) {
            self.by_use.remove(used);
            *used = tick;
            self.by_use.insert(tick, key.to_owned());
        }
    }

    fn insert(&mut self, key: &str, record: ChatRecord, capacity: usize) {
        self.tick += 1;
        let tick = self.tick;
        if let Some((used, _)) = self.records.insert(key.to_owned(), (tick, record)) {
            self.by_use.remove(&used);
        }
        self.by_use.insert(tick, key.to_owned());
        while self.records.len() > capacity {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            self.records.remove(&oldest);
        }
    }
}

impl Default for InProcessStore {
    fn default() -> Self {
        InProcessStore::with_capacity(MAX_CHATS)
    }
}

impl InProcessStore {
    /// A store keeping at most `capacity` chats (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        InProcessStore {
            chats: Mutex::default(),
            notes: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// The map, also after a panic elsewhere left its lock poisoned: every
    /// change is made on a copy and put back whole, so it is never half
    /// done.
    fn chats(&self) -> std::sync::MutexGuard<'_, Chats> {
        self.chats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `change` on a copy of the record under `key` and keeps the
    /// copy when it returns `Ok(true)`.
    fn change(
        &self,
        key: &str,
        change: impl FnOnce(&mut ChatRecord) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut chats = self.chats();
        let mut record = chats
            .records
            .get(key)
            .map(|(_, record)| record.clone())
            .unwrap_or_default();
        if change(&mut record)? {
            chats.insert(key, record, self.capacity);
        }
        Ok(())
    }

    /// How many chats it holds.
    pub fn len(&self) -> usize {
        self.chats().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Store for InProcessStore {
    fn kind(&self) -> &'static str {
        "in-process"
    }

    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<ChatRecord>> {
        let mut chats = self.chats();
        chats.touch(key);
        let record = chats.records.get(key).map(|(_, record)| record.clone());
        Box::pin(std::future::ready(Ok(record)))
    }

    fn commit<'a>(&'a self, key: &'a str, commit: &'a Commit) -> StoreFuture<'a, ()> {
        let done = self.change(key, |record| {
            rules::commit(record, commit.clone()).map(|()| true)
        });
        Box::pin(std::future::ready(done))
    }

    fn take_over<'a>(
        &'a self,
        key: &'a str,
        update: i64,
        seen_until: i64,
        lease: Lease,
    ) -> StoreFuture<'a, ()> {
        let done = self.change(key, |record| {
            rules::take_over(record, update, seen_until, lease).map(|()| true)
        });
        Box::pin(std::future::ready(done))
    }

    fn progress<'a>(
        &'a self,
        key: &'a str,
        update: i64,
        sent: u32,
        lease: Lease,
    ) -> StoreFuture<'a, ()> {
        let done = self.change(key, |record| {
            Ok(rules::progress(record, update, sent, lease))
        });
        Box::pin(std::future::ready(done))
    }

    fn finish<'a>(&'a self, key: &'a str, update: i64, done: Done) -> StoreFuture<'a, ()> {
        let done = self.change(key, |record| Ok(rules::finish(record, update, done)));
        Box::pin(std::future::ready(done))
    }

    fn enqueued<'a>(&'a self, key: &'a str, update: i64) -> StoreFuture<'a, ()> {
        let done = self.change(key, |record| Ok(rules::enqueued(record, update)));
        Box::pin(std::future::ready(done))
    }

    fn load_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>> {
        let notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        Box::pin(std::future::ready(Ok(notes.get(key).cloned())))
    }

    /// Expiry is the process's end. Past the capacity, a note is dropped
    /// for the new one: a note is what a bot can do without.
    fn save_note<'a>(&'a self, key: &'a str, note: &'a str, _: Option<i64>) -> StoreFuture<'a, ()> {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        if notes.len() >= self.capacity && !notes.contains_key(key) {
            if let Some(other) = notes.keys().next().cloned() {
                notes.remove(&other);
            }
        }
        notes.insert(key.to_owned(), note.to_owned());
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        notes.remove(key);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Drops the record: nothing reads a record set aside in a process.
    fn set_aside<'a>(&'a self, key: &'a str, at: i64) -> StoreFuture<'a, String> {
        let mut chats = self.chats();
        if let Some((used, _)) = chats.records.remove(key) {
            chats.by_use.remove(&used);
        }
        Box::pin(std::future::ready(Ok(aside_key(key, at))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_commit as commit;

    #[tokio::test]
    async fn the_least_recently_used_chat_is_dropped_past_the_capacity() {
        let store = InProcessStore::with_capacity(2);
        store.commit("a", &commit(0, 1, None)).await.unwrap();
        store.commit("b", &commit(0, 2, None)).await.unwrap();
        // Reading "a" makes "b" the least recently used.
        assert!(store.load("a").await.unwrap().is_some());
        store.commit("c", &commit(0, 3, None)).await.unwrap();
        assert_eq!(store.len(), 2);
        assert!(store.load("b").await.unwrap().is_none());
        assert_eq!(
            store.load("a").await.unwrap().unwrap().state.as_deref(),
            Some("{\"n\":1}")
        );
    }

    #[tokio::test]
    async fn a_stale_commit_loses_with_the_winners_record() {
        let store = InProcessStore::default();
        store.commit("k", &commit(0, 1, None)).await.unwrap();
        match store.commit("k", &commit(0, 2, None)).await {
            Err(StoreError::Conflict(Some(now))) => assert_eq!(now.version, 1),
            other => panic!("expected a conflict, got {other:?}"),
        }
        // Finishing an update of a chat it does not hold creates nothing.
        store.finish("other", 9, Done::At(1)).await.unwrap();
        assert_eq!(store.len(), 1);
    }
}
