//! Where the bot's memory lives: one record per chat holding the chat's
//! state, the actions of updates being answered (their outbox), and the ids
//! of the updates answered last. [`crate::memory`] builds exactly-once
//! answers on it; this module only keeps records.
//!
//! Everything about one update sits in its chat's record, so that deciding
//! an update (state and outbox) is one conditional write and an update with
//! one reply costs three round trips: read, commit, finish.
//!
//! Two implementations: DynamoDB for the Lambda function ([`dynamodb`]) and
//! one file on disk for everything else ([`file`]). Tests wrap either to
//! inject the failures a real service has.

pub mod dynamodb;
pub mod file;
pub mod in_process;

use crate::metrics::{timed, Call};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// A store call in flight. Boxed so that the store is a trait object chosen
/// at start-up from configuration.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One chat's record. `version` 0 means the record does not exist yet.
/// Fields added since the first version default, so older records read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatRecord {
    /// Raised by every commit; a commit names the version its run read.
    pub version: u64,
    /// The bot's state for the chat, as JSON; `None` until first saved.
    pub state: Option<String>,
    /// Updates whose run is decided and whose actions are being carried out.
    pub pending: BTreeMap<i64, Pending>,
    /// Updates of the chat's own queue (messages, edits, posts) answered
    /// in full, the last few, with when (Unix milliseconds): Telegram
    /// delivers those one at a time, so only the latest can come again.
    /// Pruned oldest first, since update ids are not always increasing
    /// (Telegram starts them afresh at random after a quiet week).
    pub done: BTreeMap<i64, i64>,
    /// Short-lived updates answered in full (button presses, queued per
    /// user beside the chat's messages), each with when Telegram stops
    /// delivering it (Unix milliseconds): kept that long, and no longer.
    #[serde(default)]
    pub done_until: BTreeMap<i64, i64>,
}

/// The outbox of one update: what its run decided to do, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    /// The actions, as JSON; empty for a claim ([`Pending::is_claim`]).
    pub actions: String,
    /// How many of them are behind it.
    pub sent: u32,
    /// Until when (Unix milliseconds) the instance answering it owns it;
    /// 0 when nobody does.
    pub lease_until: i64,
    /// The run that holds the lease, so that a run recognises its own
    /// write when the client sent it twice; 0 for none.
    #[serde(default)]
    pub owner: u64,
    /// After this (Unix milliseconds) Telegram no longer delivers the update,
    /// and the entry counts as absent.
    pub expires: i64,
    /// Whether the update was deferred to the queue, and how far that got.
    #[serde(default, skip_serializing_if = "Queued::is_no")]
    pub queued: Queued,
}

/// Where a deferred update is on its way to the worker (see
/// [`crate::queue`]). An entry that is deferred holds the chat: its later
/// messages are deferred behind it, so that the answers keep their order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Queued {
    /// Answered where it arrived.
    #[default]
    No,
    /// Recorded as deferred; not known to be on the queue yet: a delivery
    /// that finds it so sends it (again; the queue drops a repeat).
    Accepted,
    /// On the queue: a delivery that finds it so is only acknowledged.
    Enqueued,
}

impl Queued {
    pub fn is_no(&self) -> bool {
        *self == Queued::No
    }
}

impl Pending {
    /// Whether this is a claim, not an outbox: a run holds the update while
    /// its handler waits on an outside call, and has decided nothing yet.
    pub fn is_claim(&self) -> bool {
        self.actions.is_empty()
    }
}

/// A run's claim on an update's outbox: who, and until when (Unix
/// milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub owner: u64,
    pub until: i64,
}

/// How an answered update is remembered, so that a repeat is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Among the chat's last few updates, done at this time (Unix ms).
    At(i64),
    /// Until Telegram stops delivering it (Unix ms).
    Until(i64),
}

/// A run's decision, written only if the record is still at
/// `expected_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub expected_version: u64,
    /// The chat's new state; `None` keeps the stored one.
    pub state: Option<String>,
    pub update: i64,
    /// The outbox; `None` when there is nothing to send, which marks the
    /// update done (as `done` says) in the same write.
    pub pending: Option<Pending>,
    pub done: Done,
    /// Expired outboxes to drop.
    pub forget_pending: Vec<i64>,
    /// Done ids to drop, from `done` and from `done_until`.
    pub forget_done: Vec<i64>,
    pub forget_done_until: Vec<i64>,
    /// When the whole record may be deleted (Unix seconds), for chats that
    /// went quiet; `None` keeps it for ever (and clears an expiry set
    /// while retention was on).
    pub record_expires_at: Option<i64>,
}

/// Why a store call failed. Never holds the chat's state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The condition of a write did not hold: another run got there first.
    /// Carries the record as it is now when the store could return it.
    #[error("the record changed meanwhile")]
    Conflict(Option<Box<ChatRecord>>),
    #[error("the store is throttling requests ({0})")]
    Throttled(String),
    #[error("the store did not answer in time")]
    Timeout,
    /// Access denied, no such table, a key schema that is not the code's:
    /// a fix of the deployment is needed.
    #[error("the store refused the request ({0}); check the table and the function's permissions")]
    Refused(String),
    #[error("the store could not be reached: {0}")]
    Unavailable(String),
    /// One chat's record cannot be read: set aside by [`crate::memory`].
    #[error("the chat's record is unreadable: {0}")]
    Unreadable(String),
    /// The write would take the chat's record past the store's item limit
    /// (DynamoDB's 400 KB): set aside by [`crate::memory`].
    #[error("the chat's record would pass the store's size limit ({0})")]
    TooLarge(String),
    /// What one update decided is too large to store even in a fresh
    /// record: the bot's code must change.
    #[error("the bot's new state and replies for one update are too large to store ({0})")]
    UpdateTooLarge(String),
    /// The bot's state or actions could not be encoded: the bot's code
    /// must change.
    #[error("could not encode the bot's state or actions: {0}")]
    Encode(String),
    /// The chat's record could not be used and was moved to `aside_key`;
    /// the next delivery starts the chat from the default state.
    #[error("set the chat's record aside as {aside_key}: {why}")]
    SetAside { aside_key: String, why: String },
    #[error("a chat's record kept changing; gave up after {0} runs")]
    Contended(u32),
}

impl StoreError {
    /// Whether the deployment or the bot's code, not time, must fix it.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            StoreError::Refused(_) | StoreError::Encode(_) | StoreError::UpdateTooLarge(_)
        )
    }
}

/// A store of chat records. Every call reads and writes strongly
/// consistently: a read sees every write that was acknowledged before it.
pub trait Store: fmt::Debug + Send + Sync {
    /// What the store is, for logs: `dynamodb` or `file`.
    fn kind(&self) -> &'static str;

    /// The record under `key`, or `None`.
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<ChatRecord>>;

    /// Writes `commit` if the record is at `commit.expected_version`
    /// (absent for 0), raising the version by one; otherwise
    /// [`StoreError::Conflict`].
    fn commit<'a>(&'a self, key: &'a str, commit: &'a Commit) -> StoreFuture<'a, ()>;

    /// Takes the outbox of `update` over from a run that is gone: sets its
    /// lease to `lease` if its lease still ends at `seen_until`; otherwise
    /// [`StoreError::Conflict`].
    fn take_over<'a>(
        &'a self,
        key: &'a str,
        update: i64,
        seen_until: i64,
        lease: Lease,
    ) -> StoreFuture<'a, ()>;

    /// Records that `sent` actions of `update` are behind it, and sets its
    /// lease's end (0 lets the next delivery take it over at once), if
    /// `lease.owner` still holds it. Does nothing when the outbox is gone
    /// or another run took it over.
    fn progress<'a>(
        &'a self,
        key: &'a str,
        update: i64,
        sent: u32,
        lease: Lease,
    ) -> StoreFuture<'a, ()>;

    /// Marks `update` done and drops its outbox. Does nothing when the
    /// record is gone.
    fn finish<'a>(&'a self, key: &'a str, update: i64, done: Done) -> StoreFuture<'a, ()>;

    /// Marks the deferred `update` as on the queue. Does nothing when its
    /// entry is gone (the worker finished it meanwhile).
    fn enqueued<'a>(&'a self, key: &'a str, update: i64) -> StoreFuture<'a, ()>;

    /// Moves the record under `key` to another key, kept for inspection
    /// (and deleted by the table's TTL after a while), so that the chat
    /// starts afresh. Returns that key.
    fn set_aside<'a>(&'a self, key: &'a str, at: i64) -> StoreFuture<'a, String>;

    /// The note under `key` (a bot's own document kept apart from the chat
    /// records, such as the assistant's conversation), or `None`.
    fn load_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>>;

    /// Keeps `note` under `key`, replacing any, until `expires_at` (Unix
    /// seconds) when given. Notes are written whole and last writer wins:
    /// they are the handler's own I/O, at least once.
    fn save_note<'a>(
        &'a self,
        key: &'a str,
        note: &'a str,
        expires_at: Option<i64>,
    ) -> StoreFuture<'a, ()>;

    /// Forgets the note under `key`, if there is one.
    fn delete_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()>;

    /// Opens what the first request would open (a connection and its TLS
    /// handshake), so that a cold start can do it beside other work.
    fn warm_up(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Every outbox not finished yet, as (key, update id), when the store
    /// can list them cheaply; `None` when it cannot (a DynamoDB scan reads
    /// the whole table).
    fn unfinished(&self) -> StoreFuture<'_, Option<Vec<(String, i64)>>> {
        Box::pin(async { Ok(None) })
    }
}

/// What each call does to a record, the same in every store that holds
/// records itself (the file and the process; DynamoDB says it in its
/// expressions).
pub(crate) mod rules {
    use super::{ChatRecord, Commit, Done, Lease, StoreError};

    /// Applies `commit` if the record is at its expected version.
    pub fn commit(record: &mut ChatRecord, commit: Commit) -> Result<(), StoreError> {
        if record.version != commit.expected_version {
            return Err(StoreError::Conflict(Some(Box::new(record.clone()))));
        }
        record.version += 1;
        if let Some(state) = commit.state {
            record.state = Some(state);
        }
        for id in &commit.forget_pending {
            record.pending.remove(id);
        }
        for id in &commit.forget_done {
            record.done.remove(id);
        }
        for id in &commit.forget_done_until {
            record.done_until.remove(id);
        }
        match commit.pending {
            Some(pending) => {
                record.pending.insert(commit.update, pending);
            }
            None => mark_done(record, commit.update, commit.done),
        }
        Ok(())
    }

    /// Gives the outbox of `update` to `lease` if its lease still ends at
    /// `seen_until`.
    pub fn take_over(
        record: &mut ChatRecord,
        update: i64,
        seen_until: i64,
        lease: Lease,
    ) -> Result<(), StoreError> {
        match record.pending.get_mut(&update) {
            Some(pending) if pending.lease_until == seen_until => {
                pending.lease_until = lease.until;
                pending.owner = lease.owner;
                Ok(())
            }
            _ => Err(StoreError::Conflict(Some(Box::new(record.clone())))),
        }
    }

    /// Records progress if `lease.owner` holds the outbox; whether it did.
    pub fn progress(record: &mut ChatRecord, update: i64, sent: u32, lease: Lease) -> bool {
        match record.pending.get_mut(&update) {
            Some(pending) if pending.owner == lease.owner => {
                pending.sent = sent;
                pending.lease_until = lease.until;
                true
            }
            _ => false,
        }
    }

    /// Marks a deferred `update` as on the queue; whether its entry is there.
    pub fn enqueued(record: &mut ChatRecord, update: i64) -> bool {
        match record.pending.get_mut(&update) {
            Some(pending) if !pending.queued.is_no() => {
                pending.queued = super::Queued::Enqueued;
                true
            }
            _ => false,
        }
    }

    /// Marks `update` done; whether the record exists to hold it.
    pub fn finish(record: &mut ChatRecord, update: i64, done: Done) -> bool {
        if record.version == 0 {
            return false;
        }
        record.pending.remove(&update);
        mark_done(record, update, done);
        true
    }

    fn mark_done(record: &mut ChatRecord, update: i64, done: Done) {
        match done {
            Done::At(at) => record.done.insert(update, at),
            Done::Until(until) => record.done_until.insert(update, until),
        };
    }
}

/// A commit for store tests: `update` with state `{"n":update}`, and
/// `pending` as its outbox (none marks it done).
#[cfg(test)]
pub(crate) fn test_commit(expected_version: u64, update: i64, pending: Option<Pending>) -> Commit {
    Commit {
        expected_version,
        state: Some(format!("{{\"n\":{update}}}")),
        update,
        pending,
        forget_pending: vec![],
        forget_done: vec![],
        forget_done_until: vec![],
        done: Done::At(1),
        record_expires_at: None,
    }
}

/// A store whose every call is timed for the update's metrics
/// ([`crate::metrics::timed`]).
#[derive(Debug)]
pub struct Timed(pub std::sync::Arc<dyn Store>);

impl Store for Timed {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<ChatRecord>> {
        Box::pin(timed(Call::Store, self.0.load(key)))
    }

    fn commit<'a>(&'a self, key: &'a str, commit: &'a Commit) -> StoreFuture<'a, ()> {
        Box::pin(timed(Call::Store, self.0.commit(key, commit)))
    }

    fn take_over<'a>(
        &'a self,
        key: &'a str,
        update: i64,
        seen_until: i64,
        lease: Lease,
    ) -> StoreFuture<'a, ()> {
        Box::pin(timed(
            Call::Store,
            self.0.take_over(key, update, seen_until, lease),
        ))
    }

    fn progress<'a>(
        &'a self,
        key: &'a str,
        update: i64,
        sent: u32,
        lease: Lease,
    ) -> StoreFuture<'a, ()> {
        Box::pin(timed(
            Call::Store,
            self.0.progress(key, update, sent, lease),
        ))
    }

    fn finish<'a>(&'a self, key: &'a str, update: i64, done: Done) -> StoreFuture<'a, ()> {
        Box::pin(timed(Call::Store, self.0.finish(key, update, done)))
    }

    fn enqueued<'a>(&'a self, key: &'a str, update: i64) -> StoreFuture<'a, ()> {
        Box::pin(timed(Call::Store, self.0.enqueued(key, update)))
    }

    fn set_aside<'a>(&'a self, key: &'a str, at: i64) -> StoreFuture<'a, String> {
        Box::pin(timed(Call::Store, self.0.set_aside(key, at)))
    }

    fn load_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(timed(Call::Store, self.0.load_note(key)))
    }

    fn save_note<'a>(
        &'a self,
        key: &'a str,
        note: &'a str,
        expires_at: Option<i64>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(timed(Call::Store, self.0.save_note(key, note, expires_at)))
    }

    fn delete_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(timed(Call::Store, self.0.delete_note(key)))
    }

    fn warm_up(&self) -> StoreFuture<'_, ()> {
        self.0.warm_up()
    }

    fn unfinished(&self) -> StoreFuture<'_, Option<Vec<(String, i64)>>> {
        self.0.unfinished()
    }
}

/// Where a stored record fails to parse, without quoting it: serde's own
/// message can quote a value, and records hold the chat's state and the
/// text of replies.
pub fn unreadable(error: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        error.classify(),
        error.line(),
        error.column()
    )
}

/// The key a record set aside at `at` (Unix ms) is kept under: never a
/// chat's key, so no update reads it again.
pub fn aside_key(key: &str, at: i64) -> String {
    format!("{ASIDE_PREFIX}{key}#{at}")
}

/// What keys of records set aside start with.
pub const ASIDE_PREFIX: &str = "aside#";

/// How long a record set aside is kept for inspection (Unix seconds added
/// to its TTL attribute).
pub const KEEP_ASIDE_SECS: i64 = 30 * 86_400;

/// Which store the configuration asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreConfig {
    /// None that outlives the process: records are kept in the process
    /// ([`in_process`]), so only a warm instance recognises a repeat or
    /// remembers a chat.
    #[default]
    Off,
    DynamoDb {
        table: String,
    },
    File {
        path: PathBuf,
    },
}

impl StoreConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            StoreConfig::Off => "off",
            StoreConfig::DynamoDb { .. } => "dynamodb",
            StoreConfig::File { .. } => "file",
        }
    }
}
