//! The store in one file on disk, for `bot poll`, `bot chat` and any host
//! without DynamoDB.
//!
//! redb rather than SQLite: pure Rust (no C compiler, nothing bundled),
//! one file, and every commit is durable and atomic (copy-on-write pages
//! with a checksummed root, fsync before the commit returns), so a crash or
//! SIGKILL leaves either the old record or the new one. It also locks the
//! file, so a second process cannot write beside the first.

use super::{
    aside_key, rules, ChatRecord, Commit, Done, Lease, Store, StoreError, StoreFuture, ASIDE_PREFIX,
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const CHATS: TableDefinition<&str, &[u8]> = TableDefinition::new("chats");
/// Notes apart from the records; expiry is left to whoever deletes the
/// file (a local run's).
const NOTES: TableDefinition<&str, &str> = TableDefinition::new("notes");

/// Why the file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: another process has it open; stop it, or give this one another file")]
    InUse { path: PathBuf },
    #[error("{path}: {reason}")]
    Other { path: PathBuf, reason: String },
}

/// Chat records in a redb file.
#[derive(Clone)]
pub struct FileStore {
    path: PathBuf,
    db: Arc<Database>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .finish()
    }
}

impl FileStore {
    /// Opens the file, creating it and its directory when missing.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let other = |reason: String| OpenError::Other {
            path: path.to_owned(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| other(e.to_string()))?;
        }
        let db = Database::create(path).map_err(|error| match error {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse {
                path: path.to_owned(),
            },
            error => other(error.to_string()),
        })?;
        Ok(FileStore {
            path: path.to_owned(),
            db: Arc::new(db),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `change` on the record under `key` in one write transaction;
    /// the record is written back when `change` returns `Ok(true)`.
    fn change<F>(&self, key: &str, change: F) -> StoreFuture<'static, ()>
    where
        F: FnOnce(&mut ChatRecord) -> Result<bool, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let key = key.to_owned();
        Box::pin(async move {
            blocking(move || {
                let txn = db.begin_write().map_err(unavailable)?;
                {
                    let mut table = txn.open_table(CHATS).map_err(unavailable)?;
                    let mut record = match table.get(key.as_str()).map_err(unavailable)? {
                        Some(bytes) => decode(bytes.value())?,
                        None => ChatRecord::default(),
                    };
                    if !change(&mut record)? {
                        return Ok(());
                    }
                    let bytes = serde_json::to_vec(&record)
                        .map_err(|e| StoreError::Encode(e.to_string()))?;
                    table
                        .insert(key.as_str(), bytes.as_slice())
                        .map_err(unavailable)?;
                }
                txn.commit().map_err(unavailable)
            })
            .await
        })
    }
}

impl Store for FileStore {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn load_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>> {
        let db = Arc::clone(&self.db);
        let key = key.to_owned();
        Box::pin(async move {
            blocking(move || {
                let txn = db.begin_read().map_err(unavailable)?;
                let table = match txn.open_table(NOTES) {
                    Ok(table) => table,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                    Err(error) => return Err(unavailable(error)),
                };
                let note = table.get(key.as_str()).map_err(unavailable)?;
                Ok(note.map(|n| n.value().to_owned()))
            })
            .await
        })
    }

    fn save_note<'a>(&'a self, key: &'a str, note: &'a str, _: Option<i64>) -> StoreFuture<'a, ()> {
        let db = Arc::clone(&self.db);
        let (key, note) = (key.to_owned(), note.to_owned());
        Box::pin(async move {
            blocking(move || {
                let txn = db.begin_write().map_err(unavailable)?;
                {
                    let mut table = txn.open_table(NOTES).map_err(unavailable)?;
                    table
                        .insert(key.as_str(), note.as_str())
                        .map_err(unavailable)?;
                }
                txn.commit().map_err(unavailable)
            })
            .await
        })
    }

    fn delete_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        let db = Arc::clone(&self.db);
        let key = key.to_owned();
        Box::pin(async move {
            blocking(move || {
                let txn = db.begin_write().map_err(unavailable)?;
                {
                    let mut table = txn.open_table(NOTES).map_err(unavailable)?;
                    table.remove(key.as_str()).map_err(unavailable)?;
                }
                txn.commit().map_err(unavailable)
            })
            .await
        })
    }

    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<ChatRecord>> {
        let db = Arc::clone(&self.db);
        let key = key.to_owned();
        Box::pin(async move {
            blocking(move || {
                let txn = db.begin_read().map_err(unavailable)?;
                let table = match txn.open_table(CHATS) {
                    Ok(table) => table,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                    Err(error) => return Err(unavailable(error)),
                };
                let bytes = table.get(key.as_str()).map_err(unavailable)?;
                bytes.map(|b| decode(b.value())).transpose()
            })
            .await
        })
    }

    fn commit<'a>(&'a self, key: &'a str, commit: &'a Commit) -> StoreFuture<'a, ()> {
        let commit = commit.clone();
        self.change(key, move |record| {
            rules::commit(record, commit).map(|()| true)
        })
    }

    fn take_over<'a>(
        &'a self,
        key: &'a str,
        update: i64,
        seen_until: i64,
        lease: Lease,
    ) -> StoreFuture<'a, ()> {
        self.change(key, move |record| {
            rules::take_over(record, update, seen_until, lease).map(|()| true)
        })
    }

    fn progress<'a>(
        &'a self,
        key: &'a str,
        update: i64,
        sent: u32,
        lease: Lease,
    ) -> StoreFuture<'a, ()> {
        self.change(key, move |record| {
            Ok(rules::progress(record, update, sent, lease))
        })
    }

    fn finish<'a>(&'a self, key: &'a str, update: i64, done: Done) -> StoreFuture<'a, ()> {
        self.change(key, move |record| Ok(rules::finish(record, update, done)))
    }

    fn enqueued<'a>(&'a self, key: &'a str, update: i64) -> StoreFuture<'a, ()> {
        self.change(key, move |record| Ok(rules::enqueued(record, update)))
    }

    fn set_aside<'a>(&'a self, key: &'a str, at: i64) -> StoreFuture<'a, String> {
        let db = Arc::clone(&self.db);
        let key = key.to_owned();
        Box::pin(async move {
            blocking(move || {
                let aside = aside_key(&key, at);
                let txn = db.begin_write().map_err(unavailable)?;
                {
                    let mut table = txn.open_table(CHATS).map_err(unavailable)?;
                    let bytes = table
                        .remove(key.as_str())
                        .map_err(unavailable)?
                        .map(|b| b.value().to_vec());
                    if let Some(bytes) = bytes {
                        table
                            .insert(aside.as_str(), bytes.as_slice())
                            .map_err(unavailable)?;
                    }
                }
                txn.commit().map_err(unavailable)?;
                Ok(aside)
            })
            .await
        })
    }

    fn unfinished(&self) -> StoreFuture<'_, Option<Vec<(String, i64)>>> {
        let db = Arc::clone(&self.db);
        Box::pin(async move {
            blocking(move || {
                let txn = db.begin_read().map_err(unavailable)?;
                let table = match txn.open_table(CHATS) {
                    Ok(table) => table,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Some(Vec::new())),
                    Err(error) => return Err(unavailable(error)),
                };
                let mut unfinished = Vec::new();
                for entry in table.iter().map_err(unavailable)? {
                    let (key, value) = entry.map_err(unavailable)?;
                    if key.value().starts_with(ASIDE_PREFIX) {
                        continue;
                    }
                    // An unreadable record is set aside when its chat is
                    // next answered; it holds up no other chat.
                    let Ok(record) = decode(value.value()) else {
                        tracing::warn!(
                            "skipped an unreadable chat record while listing unfinished updates"
                        );
                        continue;
                    };
                    // A claim is no outbox: nothing of it was confirmed.
                    for (id, _) in record.pending.iter().filter(|(_, p)| !p.is_claim()) {
                        unfinished.push((key.value().to_owned(), *id));
                    }
                }
                Ok(Some(unfinished))
            })
            .await
        })
    }
}

fn decode(bytes: &[u8]) -> Result<ChatRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Unreadable(super::unreadable(&e)))
}

fn unavailable(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Unavailable(error.into().to_string())
}

/// Runs file I/O (an fsync per commit) off the async threads, so that other
/// chats are not held up meanwhile.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Unavailable(format!("the store's thread failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_commit as commit;
    use crate::store::Pending;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "bot-store-test-{}-{name}-{}.redb",
            std::process::id(),
            fastrand::u64(..)
        ))
    }

    fn pending(lease: i64) -> Pending {
        Pending {
            actions: "[]".into(),
            sent: 0,
            lease_until: lease,
            owner: 1,
            expires: i64::MAX,
            queued: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_commit_on_a_stale_version_loses_and_sees_the_winner() {
        let path = temp_path("race");
        let store = FileStore::open(&path).unwrap();
        assert_eq!(store.load("chat#1").await.unwrap(), None);
        store
            .commit("chat#1", &commit(0, 10, Some(pending(5))))
            .await
            .unwrap();
        let lost = store.commit("chat#1", &commit(0, 11, None)).await;
        match lost {
            Err(StoreError::Conflict(Some(now))) => {
                assert_eq!(now.version, 1);
                assert!(now.pending.contains_key(&10));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        store.finish("chat#1", 10, Done::At(1)).await.unwrap();
        let record = store.load("chat#1").await.unwrap().unwrap();
        assert!(record.pending.is_empty());
        assert!(record.done.contains_key(&10));
        assert_eq!(record.state.as_deref(), Some("{\"n\":10}"));
        drop(store);
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test]
    async fn a_lease_is_taken_over_only_from_the_owner_that_was_seen() {
        let path = temp_path("lease");
        let store = FileStore::open(&path).unwrap();
        store
            .commit("k", &commit(0, 1, Some(pending(100))))
            .await
            .unwrap();
        let lease = |owner, until| Lease { owner, until };
        assert!(matches!(
            store.take_over("k", 1, 99, lease(2, 200)).await,
            Err(StoreError::Conflict(_))
        ));
        store.take_over("k", 1, 100, lease(2, 200)).await.unwrap();
        // The run that lost the lease records nothing over the new owner.
        store.progress("k", 1, 5, lease(1, 0)).await.unwrap();
        assert_eq!(store.load("k").await.unwrap().unwrap().pending[&1].sent, 0);
        store.progress("k", 1, 1, lease(2, 0)).await.unwrap();
        let record = store.load("k").await.unwrap().unwrap();
        assert_eq!(record.pending[&1].sent, 1);
        assert_eq!(record.pending[&1].lease_until, 0);
        drop(store);
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test]
    async fn records_survive_reopening_and_a_second_opener_is_refused() {
        let path = temp_path("reopen");
        let store = FileStore::open(&path).unwrap();
        store.commit("k", &commit(0, 1, None)).await.unwrap();
        assert!(matches!(
            FileStore::open(&path),
            Err(OpenError::InUse { .. })
        ));
        drop(store);
        let store = FileStore::open(&path).unwrap();
        let record = store.load("k").await.unwrap().unwrap();
        assert!(record.done.contains_key(&1));
        drop(store);
        let _ = std::fs::remove_file(path);
    }
}
