//! The bot's memory on a [`Store`]: the chat's state between updates, and
//! exactly-once answers across instances and restarts.
//!
//! An update is decided before anything is sent: the bot runs on the
//! chat's state as read, and one conditional write stores the new state
//! together with the actions still to send (the update's outbox), on the
//! version that was read. Losing that write means another update of the
//! chat changed it meanwhile: the bot runs again on what the write returned
//! (a few times at most). Then the actions go out, and the update is marked
//! done. A redelivery finds the update done (and is only acknowledged), or
//! finds its outbox and sends what is left without running the bot again,
//! or finds the outbox owned by a run that is still going (its lease) and
//! leaves it alone.
//!
//! For an update with one reply that is three store round trips: read,
//! commit, finish.
//!
//! Every run has an owner id, written with its lease: a run that finds its
//! own outbox after a write it thought failed (the client resends a request
//! whose answer was lost, and the resend fails its condition) carries on
//! instead of waiting out its own lease. A record that cannot be read or
//! grows past the store's limit is set aside (kept under another key, an
//! ERROR line and a metric) and the update is answered with a retryable
//! failure: the next delivery starts the chat from the default state, and
//! no update is acknowledged unanswered.
//!
//! What a record keeps stays bounded: outboxes until their update's
//! lifetime at Telegram ends, the last [`KEEP_DONE`] done ids of the chat's
//! own queue, and short-lived updates' done ids (button presses, queued per
//! user, not per chat) for their lifetime, at most [`KEEP_DONE_UNTIL`]. A
//! write drops at most [`MAX_FORGETS_PER_WRITE`] old entries, so that its
//! expression stays far below DynamoDB's 4 KB.

mod read;
mod write;

use crate::action::Action;
use crate::config::{Config, InitError};
use crate::handler::Handler;
use crate::metrics::{self, Line};
use crate::store::dynamodb::DynamoDbStore;
use crate::store::file::FileStore;
use crate::store::in_process::InProcessStore;
use crate::store::{
    unreadable, ChatRecord, Commit, Done, Lease, Pending, Queued, Store, StoreConfig, StoreError,
};
use crate::telegram::{Update, UpdateKind};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Runs of the bot for one update before giving up on a chat whose record
/// keeps changing under it (many button presses at once).
const MAX_RUNS: u32 = 10;
/// Done ids of the chat's own queue kept per chat. Telegram delivers a
/// chat's messages one at a time, each after the one before was
/// acknowledged (WebhookActor: one queue per chat), so a repeat is of the
/// latest; a few more cover a switch between polling and the webhook.
pub const KEEP_DONE: usize = 8;
/// Done ids of short-lived updates kept per chat at most, each for its
/// lifetime (150 s for a press): about 20 bytes each in DynamoDB, so a
/// burst of presses costs at most ~1.3 KB of the record.
pub const KEEP_DONE_UNTIL: usize = 64;
/// Old entries (outboxes, done ids) one write drops at most: each adds
/// about 10 bytes to the expression, far below DynamoDB's 4 KB limit, and
/// a record grows by one entry per write, so this keeps up.
pub const MAX_FORGETS_PER_WRITE: usize = 32;
/// Added to an update's lifetime for clocks that disagree with Telegram's.
pub const CLOCK_MARGIN: Duration = Duration::from_secs(60);
/// The longest an update's outbox is kept: a message's lifetime (a day)
/// plus the clock margin. Most are finished within seconds.
pub const OUTBOX_LIFETIME: Duration = Duration::from_secs(24 * 3600 + 60);
/// The lifetime given to an update that by our clock has ended already.
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);
/// Updates whose lifetime at Telegram is at most this are short-lived:
/// their done ids are kept by time, not among the chat's last few.
const SHORT_LIVED: Duration = Duration::from_secs(3600);
/// A lease outlives the invocation that took it by this much, so a run
/// that is still going is never taken over, and one that died blocks its
/// update no longer than its timeout plus this. The default of
/// [`Memory::with_lease_margin`] (`BOT_LEASE_MARGIN_SECS`).
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// The longest Retry-After given for an update another run is answering.
const MAX_IN_PROGRESS_WAIT: Duration = Duration::from_secs(5);

/// Who else may be answering the same update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leases {
    /// Other instances share the store (Lambda): a live lease is respected.
    Shared,
    /// This process alone uses the store (the file store's lock says so):
    /// a lease found is from a run that died, and is taken over at once.
    Exclusive,
}

/// The memory: a store and how to use it.
#[derive(Clone)]
pub struct Memory {
    store: Arc<dyn Store>,
    leases: Leases,
    /// Whether the store outlives the process (a table or a file), so
    /// that a chat's state is kept wherever and whenever it is answered.
    durable: bool,
    /// How long a quiet chat's record is kept; `None` for ever.
    keep_chats: Option<Duration>,
    /// How long a lease outlives its run's deadline ([`LEASE_MARGIN`]).
    lease_margin: Duration,
}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memory")
            .field("store", &self.store)
            .field("leases", &self.leases)
            .field("durable", &self.durable)
            .field("keep_chats", &self.keep_chats)
            .field("lease_margin", &self.lease_margin)
            .finish()
    }
}

/// What to do with an update, as decided against the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Answered before, by some run: only acknowledge it.
    Duplicate,
    /// Another run is answering it right now; ask again after this long.
    InProgress { retry_after: Duration },
    /// The bot has nothing to send; its new state, if any, is stored.
    Nothing,
    /// Carry out `actions` from number `from` on.
    Send { actions: Vec<Action>, from: usize },
    /// Deferred to the queue by an earlier delivery: send it on unless it
    /// is `enqueued` already.
    Deferred { enqueued: bool },
}

/// Where a run answers its update, as far as the queue goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Route {
    /// Where it arrived, without a queue (`bot poll`, a webhook with the
    /// queue off): an update found deferred (a queue switched off since)
    /// is answered here.
    #[default]
    Here,
    /// The webhook with a queue: an update found deferred is only sent on.
    Deferring,
    /// The worker, with the update from the queue.
    Worker,
}

/// The update a decision was for, to record its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    key: String,
    update: i64,
    /// The run's id, written with its lease.
    owner: u64,
    /// When Telegram stops delivering the update (Unix ms); `i64::MAX`
    /// when not known.
    lifetime_end: i64,
    /// Whether its done id is kept by time (short-lived updates).
    short_lived: bool,
    route: Route,
}

/// A chat's record as read for one update.
#[derive(Debug)]
pub struct Read {
    ticket: Ticket,
    record: ChatRecord,
}

/// What the record says about an update, before the bot runs.
enum Recognised {
    Decided(Decision),
    /// The update is this run's to decide.
    New,
    /// The record changed under a write; here it is, when the store said.
    Changed(Option<Box<ChatRecord>>),
}

/// The bot's pure step as the memory runs it: the actions, and the new
/// state as JSON when it changed.
pub type Answer = (Vec<Action>, Option<String>);

/// `bot`'s pure step for `update` on `gathered`, as [`Memory::decide_with`]
/// runs it: the stored state read into `H::State` (the default when there
/// is none, or when it no longer fits), and the new one written back when
/// it changed.
pub fn answer_step<'a, H: Handler>(
    bot: &'a H,
    update: &'a Update,
    gathered: &'a H::Gathered,
) -> impl FnMut(Option<&str>) -> Result<Answer, StoreError> + 'a {
    move |stored| {
        let state: H::State = read_state(stored);
        let (actions, new_state) = bot.handle(update, gathered, state.clone());
        let changed = (new_state != state)
            .then(|| serde_json::to_string(&new_state))
            .transpose()
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        Ok((actions, changed))
    }
}

impl Read {
    /// The chat's state as the bot's type, as read.
    pub fn state<S: serde::de::DeserializeOwned + Default>(&self) -> S {
        read_state(self.record.state.as_deref())
    }

    /// The update the record was read for.
    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    /// Whether this run holds a claim or an outbox of the update in the
    /// record as it knows it: only then is there a lease to let go.
    pub fn holds_lease(&self) -> bool {
        self.record
            .pending
            .get(&self.ticket.update)
            .is_some_and(|p| p.owner == self.ticket.owner)
    }

    /// This read for a run on `route`.
    pub fn on(mut self, route: Route) -> Self {
        self.ticket.route = route;
        self
    }

    /// Whether another update of the chat is deferred and not finished:
    /// then this one is deferred behind it, to keep the chat's order.
    pub fn holds_deferred(&self, now: i64) -> bool {
        self.record
            .pending
            .iter()
            .any(|(id, p)| *id != self.ticket.update && !p.queued.is_no() && p.expires > now)
    }

    /// Whether a delivery of this update got as far as the store before:
    /// it is done, or its outbox is still there. A button press that did
    /// was answered then (it is answered before the bot runs).
    pub fn seen_before(&self, now: i64) -> bool {
        is_done(&self.record, self.ticket.update)
            || self
                .record
                .pending
                .get(&self.ticket.update)
                .is_some_and(|p| p.expires > now)
    }
}

impl Ticket {
    /// The ticket of an update known by its key and id only (an outbox
    /// left unfinished): its lifetime is not known.
    pub fn new(key: impl Into<String>, update: i64) -> Self {
        Ticket {
            key: key.into(),
            update,
            owner: new_owner(),
            lifetime_end: i64::MAX,
            short_lived: false,
            route: Route::Here,
        }
    }

    /// The ticket of `update`, received at `now` (Unix ms). An update that
    /// by our clock has ended already gets a minute: Telegram has just
    /// handed it over, so its clock and ours disagree.
    pub fn of(update: &Update, now: i64) -> Self {
        let lifetime_end = update
            .expires_at(now / 1000)
            .saturating_mul(1000)
            .max(now.saturating_add(millis(MIN_LIFETIME)));
        Ticket {
            key: key_of(update),
            update: update.id.0,
            owner: new_owner(),
            lifetime_end,
            short_lived: update
                .lifetime_from_receipt()
                .is_some_and(|lifetime| lifetime <= SHORT_LIVED),
            route: Route::Here,
        }
    }

    /// When Telegram stops delivering the update (Unix ms).
    pub fn lifetime_end(&self) -> i64 {
        self.lifetime_end
    }

    fn lease(&self, until: i64) -> Lease {
        Lease {
            owner: self.owner,
            until,
        }
    }

    /// When an outbox of this update written at `now` expires (Unix ms):
    /// with the update's lifetime, plus the clock margin.
    fn outbox_expires(&self, now: i64) -> i64 {
        self.lifetime_end
            .min(now.saturating_add(millis(OUTBOX_LIFETIME)))
            .saturating_add(millis(CLOCK_MARGIN))
    }

    /// What this run's writes mark the update as: the worker's keep it
    /// deferred, so that the chat's later messages stay behind it.
    fn queued(&self) -> Queued {
        match self.route {
            Route::Worker => Queued::Enqueued,
            Route::Here | Route::Deferring => Queued::No,
        }
    }

    /// How the update is remembered once done at `now`.
    fn done(&self, now: i64) -> Done {
        if self.short_lived {
            Done::Until(self.lifetime_end.saturating_add(millis(CLOCK_MARGIN)))
        } else {
            Done::At(now)
        }
    }

    /// The record (chat) the update belongs to.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn update(&self) -> i64 {
        self.update
    }
}

impl Memory {
    /// The memory on a store that outlives the process.
    pub fn new(store: Arc<dyn Store>, leases: Leases) -> Self {
        Memory {
            store: Arc::new(crate::store::Timed(store)),
            leases,
            durable: true,
            keep_chats: None,
            lease_margin: LEASE_MARGIN,
        }
    }

    /// The memory of this process alone (see [`InProcessStore`]): what the
    /// bot runs on without a table or a file. Its leases are this
    /// process's runs, all alive, so they are respected.
    pub fn in_process() -> Self {
        Memory {
            durable: false,
            ..Memory::new(Arc::new(InProcessStore::default()), Leases::Shared)
        }
    }

    pub fn leases(&self) -> Leases {
        self.leases
    }

    /// Whether the chat's state outlives the process (a table or a file):
    /// what the bot's commands that keep something need.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Whether other processes share the store (the function's table), so
    /// that a lease found may belong to a run elsewhere.
    pub fn is_shared(&self) -> bool {
        self.durable && self.leases == Leases::Shared
    }

    /// Leases outliving their run's deadline by `margin` instead of
    /// [`LEASE_MARGIN`]: shorter where clocks agree closely (tests, one
    /// process), longer where instances' clocks may drift apart.
    pub fn with_lease_margin(mut self, margin: Duration) -> Self {
        self.lease_margin = margin;
        self
    }

    pub fn lease_margin(&self) -> Duration {
        self.lease_margin
    }

    /// Lets a chat's record go (through the table's TTL) after this long
    /// without a change.
    pub fn keep_chats_for(mut self, keep: Option<Duration>) -> Self {
        self.keep_chats = keep;
        self
    }

    /// The memory the configuration asks for, in the process without a
    /// store. Opens the store file, or builds the DynamoDB client (no
    /// request is made).
    pub async fn from_config(config: &Config) -> Result<Self, InitError> {
        Ok(Self::open(&config.store)
            .await?
            .keep_chats_for(config.keep_chats)
            .with_lease_margin(config.lease_margin))
    }

    /// The memory on `store`, in the process for none; no request is made.
    pub async fn open(store: &StoreConfig) -> Result<Self, InitError> {
        Ok(match store {
            StoreConfig::Off => Memory::in_process(),
            StoreConfig::DynamoDb { table } => Memory::new(
                Arc::new(DynamoDbStore::new(
                    &crate::aws::sdk_config().await,
                    table.clone(),
                )),
                Leases::Shared,
            ),
            StoreConfig::File { path } => {
                Memory::new(Arc::new(FileStore::open(path)?), Leases::Exclusive)
            }
        })
    }

    /// Opens the store's connection ahead of the first update (at cold
    /// start, beside the other start-up round trips), within `budget`. A
    /// failure only means the first update opens it.
    pub async fn warm_up(&self, budget: Duration) {
        let started = std::time::Instant::now();
        let warmed = tokio::time::timeout(budget, self.store.warm_up()).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match warmed {
            Ok(Ok(())) => tracing::debug!(elapsed_ms, "store connection open"),
            Ok(Err(error)) => {
                tracing::debug!(elapsed_ms, error = %crate::error::Chain(&error), "store warm-up failed")
            }
            Err(_) => tracing::debug!(elapsed_ms, "store warm-up timed out"),
        }
    }

    pub fn store_kind(&self) -> &'static str {
        self.store.kind()
    }
}

/// What a write drops from `record` at `now`, at most
/// [`MAX_FORGETS_PER_WRITE`] in all, the most useless first: expired
/// outboxes, expired short-lived ids, then the oldest ids beyond what is
/// kept (making room for the one this write may add).
fn to_forget(record: &ChatRecord, now: i64) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let mut budget = MAX_FORGETS_PER_WRITE;
    let mut take = |ids: Vec<i64>| {
        let taken: Vec<i64> = ids.into_iter().take(budget).collect();
        budget -= taken.len();
        taken
    };
    let pending = take(
        record
            .pending
            .iter()
            .filter(|(_, p)| p.expires <= now)
            .map(|(id, _)| *id)
            .collect(),
    );
    let mut until: Vec<(i64, i64)> = record.done_until.iter().map(|(id, t)| (*t, *id)).collect();
    until.sort_unstable();
    let expired = until.iter().take_while(|(t, _)| *t <= now).count();
    let excess = (record.done_until.len() + 1)
        .saturating_sub(KEEP_DONE_UNTIL)
        .max(expired);
    let done_until = take(until.into_iter().take(excess).map(|(_, id)| id).collect());
    let excess = (record.done.len() + 1).saturating_sub(KEEP_DONE);
    let mut by_age: Vec<(i64, i64)> = record.done.iter().map(|(id, at)| (*at, *id)).collect();
    by_age.sort_unstable();
    let done = take(by_age.into_iter().take(excess).map(|(_, id)| id).collect());
    (pending, done, done_until)
}

/// Whether `update` is recorded as answered in full.
fn is_done(record: &ChatRecord, update: i64) -> bool {
    record.done.contains_key(&update) || record.done_until.contains_key(&update)
}

/// A run's owner id: random, never 0 (which no outbox's owner is), and
/// below 2^53 so that any JSON reader of the table keeps it exact.
fn new_owner() -> u64 {
    fastrand::u64(1..1 << 53)
}

const SET_ASIDE: &str =
    "set a chat's unusable record aside; the chat starts afresh from the default state";

/// The chat's state as stored. A state the bot can no longer read (its type
/// changed incompatibly) starts over from the default, with a warning.
fn read_state<S: serde::de::DeserializeOwned + Default>(stored: Option<&str>) -> S {
    let Some(json) = stored else {
        return S::default();
    };
    serde_json::from_str(json).unwrap_or_else(|error| {
        tracing::warn!(
            error = unreadable(&error),
            "the chat's stored state no longer fits State; starting from the default"
        );
        S::default()
    })
}

/// Where the note `name` of `update`'s chat is kept: `note#name#chat#id`,
/// beside the chat's record and never taken for one.
fn note_key(name: &str, update: &Update) -> String {
    format!("note#{name}#{}", key_of(update))
}

/// The record an update belongs to: its chat's, or, for updates outside
/// any chat, its user's.
pub fn key_of(update: &Update) -> String {
    if let Some(chat) = update.chat() {
        return format!("chat#{}", chat.id.0);
    }
    let user = match &update.kind {
        UpdateKind::CallbackQuery(query) => Some(query.from.id.0),
        UpdateKind::Other { raw, .. } => raw
            .get("from")
            .or_else(|| raw.get("user"))
            .and_then(|user| user.get("id"))
            .and_then(serde_json::Value::as_i64),
        _ => None,
    };
    match user {
        Some(user) => format!("user#{user}"),
        None => "other".to_owned(),
    }
}

/// The current time in Unix milliseconds.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::{Bot, State};
    use crate::store::file::FileStore;
    use crate::store::StoreFuture;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A store that counts its round trips.
    #[derive(Debug)]
    struct Counting {
        inner: FileStore,
        calls: AtomicUsize,
    }

    impl Counting {
        fn take(&self) -> usize {
            self.calls.swap(0, Ordering::SeqCst)
        }
        fn count(&self) {
            self.calls.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Store for Counting {
        fn kind(&self) -> &'static str {
            "counting"
        }
        fn enqueued<'a>(&'a self, key: &'a str, update: i64) -> StoreFuture<'a, ()> {
            self.count();
            self.inner.enqueued(key, update)
        }
        fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<ChatRecord>> {
            self.count();
            self.inner.load(key)
        }
        fn commit<'a>(&'a self, key: &'a str, commit: &'a Commit) -> StoreFuture<'a, ()> {
            self.count();
            self.inner.commit(key, commit)
        }
        fn take_over<'a>(
            &'a self,
            key: &'a str,
            update: i64,
            seen: i64,
            lease: Lease,
        ) -> StoreFuture<'a, ()> {
            self.count();
            self.inner.take_over(key, update, seen, lease)
        }
        fn progress<'a>(
            &'a self,
            key: &'a str,
            update: i64,
            sent: u32,
            lease: Lease,
        ) -> StoreFuture<'a, ()> {
            self.count();
            self.inner.progress(key, update, sent, lease)
        }
        fn finish<'a>(&'a self, key: &'a str, update: i64, done: Done) -> StoreFuture<'a, ()> {
            self.count();
            self.inner.finish(key, update, done)
        }
        fn set_aside<'a>(&'a self, key: &'a str, at: i64) -> StoreFuture<'a, String> {
            self.count();
            self.inner.set_aside(key, at)
        }
        fn load_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>> {
            self.count();
            self.inner.load_note(key)
        }
        fn save_note<'a>(
            &'a self,
            key: &'a str,
            note: &'a str,
            expires_at: Option<i64>,
        ) -> StoreFuture<'a, ()> {
            self.count();
            self.inner.save_note(key, note, expires_at)
        }
        fn delete_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
            self.count();
            self.inner.delete_note(key)
        }
    }

    struct Setup {
        store: Arc<Counting>,
        memory: Memory,
        path: std::path::PathBuf,
    }

    impl Drop for Setup {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn setup(leases: Leases) -> Setup {
        let path = std::env::temp_dir().join(format!(
            "bot-memory-test-{}-{}.redb",
            std::process::id(),
            fastrand::u64(..)
        ));
        let store = Arc::new(Counting {
            inner: FileStore::open(&path).unwrap(),
            calls: AtomicUsize::new(0),
        });
        let memory = Memory::new(store.clone(), leases);
        Setup {
            store,
            memory,
            path,
        }
    }

    fn text(update_id: i64, text: &str) -> Update {
        Update::from_value(json!({"update_id": update_id, "message": {
            "message_id": update_id, "date": 1,
            "chat": {"id": 7, "type": "private"}, "text": text}}))
        .unwrap()
    }

    const NOW: i64 = 1_800_000_000_000;

    #[tokio::test]
    async fn a_deferred_update_is_sent_on_until_enqueued_holds_its_chat_and_is_the_workers() {
        let s = setup(Leases::Shared);
        // The message is new to the clock: its entry lives a minute.
        let now = now_millis();
        let slow = text(50, "/ask why?");
        let mut read = s.memory.read(&slow).await.unwrap().on(Route::Deferring);
        assert_eq!(s.memory.defer(&mut read, now).await.unwrap(), None);
        let ticket = read.ticket().clone();
        // A redelivery finds it accepted: to be sent (again).
        let recognise = |update: &Update, route| {
            let memory = s.memory.clone();
            let update = update.clone();
            async move {
                let mut read = memory.read(&update).await.unwrap().on(route);
                let decided = memory
                    .recognise(&mut read, now + 10_000, now)
                    .await
                    .unwrap();
                (decided, read.holds_deferred(now))
            }
        };
        assert_eq!(
            recognise(&slow, Route::Deferring).await.0,
            Some(Decision::Deferred { enqueued: false })
        );
        s.memory.enqueued(&ticket).await.unwrap();
        assert_eq!(
            recognise(&slow, Route::Deferring).await.0,
            Some(Decision::Deferred { enqueued: true })
        );
        // The chat's next message waits behind it.
        assert_eq!(
            recognise(&text(51, "hi"), Route::Deferring).await,
            (None, true)
        );
        // The worker takes it; its claim keeps it deferred for the webhook.
        let mut worker = s.memory.read(&slow).await.unwrap().on(Route::Worker);
        assert_eq!(
            s.memory
                .recognise(&mut worker, now + 10_000, now)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            s.memory
                .claim(&mut worker, now + 10_000, now)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            recognise(&slow, Route::Deferring).await.0,
            Some(Decision::Deferred { enqueued: true })
        );
        s.memory.finish(worker.ticket()).await.unwrap();
        assert_eq!(
            recognise(&slow, Route::Deferring).await.0,
            Some(Decision::Duplicate)
        );
        assert_eq!(
            recognise(&text(52, "hi"), Route::Deferring).await,
            (None, false)
        );
    }

    #[tokio::test]
    async fn a_claim_left_by_a_run_that_died_is_not_resumed_as_an_outbox() {
        let s = setup(Leases::Exclusive);
        let update = text(40, "/weather Oslo");
        let mut read = s.memory.read(&update).await.unwrap();
        assert_eq!(
            s.memory.claim(&mut read, NOW + 10_000, NOW).await.unwrap(),
            None
        );
        // The poller restarts: a claim confirmed nothing to Telegram, so
        // it is not listed, and taking it up finds nothing to send.
        assert_eq!(s.store.inner.unfinished().await.unwrap(), Some(Vec::new()));
        let ticket = Ticket::new(key_of(&update), 40);
        assert_eq!(
            s.memory.resume(&ticket, NOW + 10_000, NOW).await.unwrap(),
            None
        );
        // The record was not set aside: the update is decided as new.
        let bot = Bot::default();
        let (decision, _) = s
            .memory
            .decide(&bot, &None, &update, NOW + 10_000, NOW)
            .await
            .unwrap();
        assert!(
            matches!(decision, Decision::Send { from: 0, .. }),
            "{decision:?}"
        );
    }

    #[tokio::test]
    async fn a_one_reply_update_costs_three_round_trips_and_a_repeat_one() {
        let s = setup(Leases::Shared);
        let bot = Bot::default().keeping_state(true);
        let update = text(1, "hello");
        let (decision, ticket) = s
            .memory
            .decide(&bot, &None, &update, NOW + 10_000, NOW)
            .await
            .unwrap();
        assert!(matches!(decision, Decision::Send { from: 0, ref actions } if actions.len() == 1));
        s.memory.finish(&ticket).await.unwrap();
        assert_eq!(s.store.take(), 3, "read, commit, finish");
        let (again, _) = s
            .memory
            .decide(&bot, &None, &update, NOW + 10_000, NOW)
            .await
            .unwrap();
        assert_eq!(again, Decision::Duplicate);
        assert_eq!(s.store.take(), 1, "a repeat costs one read");
    }

    #[tokio::test]
    async fn a_live_lease_is_respected_and_an_expired_outbox_counts_as_absent() {
        let s = setup(Leases::Shared);
        let bot = Bot::default();
        let update = text(2, "hello");
        s.memory
            .decide(&bot, &None, &update, NOW + 10_000, NOW)
            .await
            .unwrap();
        let (busy, _) = s
            .memory
            .decide(&bot, &None, &update, NOW + 20_000, NOW + 1_000)
            .await
            .unwrap();
        assert_eq!(
            busy,
            Decision::InProgress {
                retry_after: MAX_IN_PROGRESS_WAIT
            }
        );
        // After the lease: taken over, from where the dead run stopped.
        let (resumed, _) = s
            .memory
            .decide(&bot, &None, &update, NOW + 30_000, NOW + 11_000)
            .await
            .unwrap();
        assert!(matches!(resumed, Decision::Send { from: 0, .. }));
        // Past Telegram's lifetime the outbox is as good as gone: the bot
        // decides afresh (and the commit drops the old outbox).
        let later = NOW + millis(OUTBOX_LIFETIME) + 1;
        let (fresh, _) = s
            .memory
            .decide(&bot, &None, &update, later + 10_000, later)
            .await
            .unwrap();
        assert!(matches!(fresh, Decision::Send { from: 0, .. }));
    }

    #[tokio::test]
    async fn a_single_owner_takes_over_a_lease_left_by_a_crash_at_once() {
        let s = setup(Leases::Exclusive);
        let bot = Bot::default();
        let update = text(3, "hello");
        let (_, ticket) = s
            .memory
            .decide(&bot, &None, &update, NOW + 60_000, NOW)
            .await
            .unwrap();
        s.memory.progress(&ticket, 0, NOW + 60_000).await.unwrap();
        let (after_restart, _) = s
            .memory
            .decide(&bot, &None, &update, NOW + 70_000, NOW + 1)
            .await
            .unwrap();
        assert!(matches!(after_restart, Decision::Send { from: 0, .. }));
    }

    #[tokio::test]
    async fn the_done_ids_kept_per_chat_stay_bounded() {
        let s = setup(Leases::Shared);
        let bot = Bot::default();
        for id in 1..=(KEEP_DONE as i64 + 10) {
            let (_, ticket) = s
                .memory
                .decide(&bot, &None, &text(id, "x"), NOW + 10_000, NOW)
                .await
                .unwrap();
            s.memory.finish(&ticket).await.unwrap();
        }
        let record = s.store.inner.load("chat#7").await.unwrap().unwrap();
        assert!(record.done.len() <= KEEP_DONE, "{}", record.done.len());
        assert!(record.done.contains_key(&(KEEP_DONE as i64 + 10)));
        assert!(!record.done.contains_key(&1));
    }

    #[tokio::test]
    async fn an_outbox_lives_as_long_as_telegram_delivers_its_update() {
        let s = setup(Leases::Shared);
        let bot = Bot::default().keeping_state(true);
        let now = now_millis();
        let date = now / 1000 - 600;
        let message = Update::from_value(json!({"update_id": 40, "message": {
            "message_id": 40, "date": date,
            "chat": {"id": 7, "type": "private"}, "text": "hi"}}))
        .unwrap();
        let press = Update::from_value(json!({"update_id": 41, "callback_query": {
            "id": "q", "chat_instance": "c", "data": "counter:+1",
            "from": {"id": 7, "is_bot": false, "first_name": "A"},
            "message": {"message_id": 1, "date": date,
                "chat": {"id": 7, "type": "private"}, "text": "Count: 0"}}}))
        .unwrap();
        for update in [&message, &press] {
            s.memory
                .decide(&bot, &None, update, now + 10_000, now)
                .await
                .unwrap();
        }
        let record = s.store.inner.load("chat#7").await.unwrap().unwrap();
        let margin = millis(CLOCK_MARGIN);
        assert_eq!(
            record.pending[&40].expires,
            (date + 86_400) * 1000 + margin,
            "a day from the message's date"
        );
        let press_expires = record.pending[&41].expires - now;
        assert!(
            (150_000 + margin - 1_000..=150_000 + margin).contains(&press_expires),
            "150 s for a press: {press_expires}"
        );
    }

    #[test]
    fn a_write_drops_a_bounded_number_of_old_entries_oldest_kinds_first() {
        let expired = Pending {
            actions: "[]".into(),
            sent: 0,
            lease_until: 0,
            owner: 0,
            expires: NOW - 1,
            queued: Queued::No,
        };
        let record = ChatRecord {
            pending: (0..1_000).map(|id| (id, expired.clone())).collect(),
            done: (0..100).map(|id| (5_000 + id, NOW - id)).collect(),
            done_until: (0..100).map(|id| (9_000 + id, NOW - 1)).collect(),
            ..ChatRecord::default()
        };
        let (pending, done, done_until) = to_forget(&record, NOW);
        assert_eq!(pending.len(), MAX_FORGETS_PER_WRITE);
        assert!(done.is_empty() && done_until.is_empty());
        let record = ChatRecord {
            pending: Default::default(),
            ..record
        };
        let (_, done, done_until) = to_forget(&record, NOW);
        assert_eq!(done_until.len(), MAX_FORGETS_PER_WRITE, "expired first");
        assert!(done.is_empty());
        let record = ChatRecord {
            done_until: Default::default(),
            ..record
        };
        let (_, done, _) = to_forget(&record, NOW);
        assert_eq!(done.len(), MAX_FORGETS_PER_WRITE);
        assert!(done.contains(&5_099), "the oldest first: {done:?}");
    }

    #[test]
    fn an_unreadable_record_is_reported_without_quoting_it() {
        let error = serde_json::from_str::<State>("{\"messages\": \"secret words\"}").unwrap_err();
        let shown = unreadable(&error);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("column"), "{shown}");
    }

    #[test]
    fn an_unreadable_state_starts_over_from_the_default() {
        let record = ChatRecord {
            state: Some("{\"messages\": \"not a number\"}".into()),
            ..ChatRecord::default()
        };
        assert_eq!(
            read_state::<State>(record.state.as_deref()),
            State::default()
        );
    }
}
