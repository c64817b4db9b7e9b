//! The long-polling shell: asks Telegram for updates with getUpdates and runs
//! the same bot and Bot API client as the webhook, on any machine.
//!
//! Updates are answered as Telegram's webhook delivery does it: one queue
//! per chat (a user's for updates outside chats), one update at a time per
//! queue and in order, up to [`MAX_CHATS_AT_ONCE`] queues at once. A chat
//! whose replies keep failing holds up only itself: its update is retried
//! with backoff until its lifetime ends (a day from the message's date, 150
//! s for a callback query), then dropped with a warning.
//!
//! An update is confirmed (the offset moves past it) once it is settled:
//! answered, refused for good, or dropped. getUpdates returns at most
//! `limit` updates past the offset, so the updates seen but not yet
//! confirmed are kept to that many: a failing update holds back at most
//! `limit` others (answered meanwhile, confirmed once it settles). A stop
//! lets the calls in flight finish and confirms every settled update, so a
//! restart does not repeat those; an update still waiting for a retry comes
//! again. With the store, an update answered but not yet confirmed when the
//! process dies is recognised after the restart and not answered again.

mod book;
mod work;

use book::{Book, Job};
use work::{work, Ending, Worked, Worker};

use crate::client::{ApiError, BotApi};
use crate::error::Chain;
use crate::handler::Handler;
use crate::handling::{Deferral, HandlingError, Outcome, Responder};
use crate::memory::{key_of, Memory, Ticket, MIN_LIFETIME, OUTBOX_LIFETIME};
use crate::retry::{retry, Backoff, GaveUp, RetryPolicy, Stop};
use crate::store::StoreError;
use crate::telegram::{GetUpdates, Update, UpdateId};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Telegram's longest long poll.
pub const MAX_POLL_TIMEOUT_SECS: u32 = 50;
/// Queues answered at the same time, at most.
pub const MAX_CHATS_AT_ONCE: usize = 16;
/// How to poll.
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// Seconds a getUpdates call waits for an update (at most 50).
    pub timeout_secs: u32,
    /// Updates per call, 1-100.
    pub limit: u8,
    /// Update kinds to receive; `None` keeps Telegram's previous setting.
    pub allowed_updates: Option<Vec<String>>,
    /// Drop the updates waiting on Telegram's side at start.
    pub drop_pending_updates: bool,
    /// Waits between retries of a failed call.
    pub backoff: Backoff,
    /// The bot's memory: the file store, or the process's own, with which
    /// an update answered but not yet confirmed to Telegram when the
    /// process dies is answered again after a restart.
    pub memory: Memory,
    /// Confirm an update only once answered, even when the store could
    /// finish it (`bot chat`, which shows the replies once Telegram's side
    /// is done with an update).
    pub confirm_when_answered: bool,
}

impl Default for PollOptions {
    fn default() -> Self {
        PollOptions {
            timeout_secs: MAX_POLL_TIMEOUT_SECS,
            limit: 100,
            allowed_updates: Some(
                crate::bot::ALLOWED_UPDATES
                    .iter()
                    .map(|k| k.to_string())
                    .collect(),
            ),
            drop_pending_updates: false,
            backoff: Backoff::default(),
            memory: Memory::in_process(),
            confirm_when_answered: false,
        }
    }
}

/// Why polling stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PollError {
    #[error("another instance is polling with this bot token; stop it first (Telegram: {0})")]
    OtherPoller(String),
    #[error("a webhook was set while polling; `webhook delete` or restart to poll again (Telegram: {0})")]
    WebhookActive(String),
    #[error(
        "the Bot API refused the token or URL; check TELEGRAM_BOT_TOKEN and TELEGRAM_API_BASE_URL"
    )]
    Configuration(#[source] ApiError),
    #[error("getUpdates returned update_id {0}: no offset can confirm it")]
    LastUpdateId(i64),
    #[error("the store refused a request")]
    Store(#[source] StoreError),
    /// See [`run`]: polling keeps its memory in a file.
    #[error("bot poll keeps its memory in a file (--store or BOT_STORE_FILE), not in a DynamoDB table: a poller holds an update for its whole retry (up to a day) where the function holds it for one invocation, so sharing the webhook's table could answer twice after a switch, or hold a chat for a day")]
    SharedStore,
}

impl PollError {
    fn from_api(error: ApiError) -> Self {
        if let ApiError::Telegram {
            code: 409,
            description,
            ..
        } = &error
        {
            if description.contains("terminated by other getUpdates") {
                return PollError::OtherPoller(description.clone());
            }
            return PollError::WebhookActive(description.clone());
        }
        PollError::Configuration(error)
    }
}

/// What a polling run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Updates handled and confirmed.
    pub handled: u64,
    /// The offset confirmed last: every update below it is done.
    pub confirmed_offset: Option<UpdateId>,
}

/// Polls until `stop` asks to stop or an error that retrying cannot fix.
///
/// The memory must be this process's alone (the file store, whose lock
/// says so): a lease found in it is then from a run of this poller that
/// died, and is taken over at once. A store shared with the webhook's
/// instances (DynamoDB) is refused before any call: the poller's lease on
/// an update lasts its whole retry, up to a day, so it would take over
/// the function's live leases at once and, should it die, hold a chat for
/// a day after a switch back to the webhook.
pub async fn run<H: Handler + Clone>(
    api: &BotApi,
    bot: &H,
    options: &PollOptions,
    mut stop: Stop,
) -> Result<Summary, PollError> {
    let mut summary = Summary::default();
    let memory = options.memory.clone();
    let mut bot = bot.clone();
    bot.state_is_kept(memory.is_durable());
    let bot = Arc::new(bot);
    if memory.is_shared() {
        return Err(PollError::SharedStore);
    }
    let policy = RetryPolicy::polling(options.backoff);
    let deleted = retry(&policy, &mut stop, "deleteWebhook", || {
        api.delete_webhook(options.drop_pending_updates)
    })
    .await;
    match deleted {
        Ok(_) => {}
        Err(GaveUp::Stopped(_)) => return Ok(summary),
        Err(GaveUp::Failed(error)) => return Err(PollError::from_api(error)),
    }
    let mut book = Book::default();
    // With a store that can list unfinished outboxes, an update is confirmed
    // to Telegram as soon as its outbox is stored, and what a run that died
    // left unfinished is carried out first.
    let early = match memory.unfinished().await {
        Ok(Some(tickets)) => {
            for ticket in tickets {
                book.resume(ticket);
            }
            !options.confirm_when_answered
        }
        Ok(None) => false,
        Err(error) if error.is_configuration() => return Err(PollError::Store(error)),
        Err(error) => {
            tracing::warn!(error = %Chain(&error), "could not list unfinished updates; confirming each once answered");
            false
        }
    };
    tracing::info!(
        timeout_secs = options.timeout_secs,
        "polling for updates; Ctrl-C to stop"
    );
    let limit = options.limit.clamp(1, 100);
    // The workers' stop: the caller's, or a fatal error in one of them.
    let (halt_tx, halt_rx) = watch::channel(false);
    let halt = Stop::on(halt_rx);
    let (recorded_tx, mut recorded_rx) = mpsc::unbounded_channel();
    let mut workers: JoinSet<Worked> = JoinSet::new();
    // What each worker works on, to free its queue should it panic.
    let mut jobs: HashMap<tokio::task::Id, (String, Option<UpdateId>)> = HashMap::new();
    let mut fetch: Option<Fetch> = None;
    let mut next_fetch = Instant::now();
    let mut failure: Option<PollError> = None;
    let mut last_id = false;
    loop {
        let running = failure.is_none() && !stop.requested();
        if running {
            while workers.len() < MAX_CHATS_AT_ONCE {
                let Some(job) = book.next_ready() else {
                    break;
                };
                let about = job.about();
                let handle = workers.spawn(work(
                    Worker {
                        api: api.clone(),
                        bot: bot.clone(),
                        memory: memory.clone(),
                        backoff: options.backoff,
                        recorded: early.then(|| recorded_tx.clone()),
                    },
                    job,
                    halt.clone(),
                ));
                jobs.insert(handle.id(), about);
            }
        } else if workers.is_empty() {
            break;
        }
        // getUpdates answers at once while an update is unconfirmed, so
        // with updates in hand the calls are paced.
        let wants_fetch =
            running && !last_id && fetch.is_none() && book.in_hand() < usize::from(limit);
        if wants_fetch && Instant::now() >= next_fetch {
            let request = GetUpdates {
                offset: book.offset(),
                limit: Some(limit),
                timeout: Some(options.timeout_secs.min(MAX_POLL_TIMEOUT_SECS)),
                allowed_updates: options.allowed_updates.clone(),
            };
            fetch = Some(get_updates(api.clone(), request, policy, stop.clone()));
        }
        tokio::select! {
            // A worker's end first: it may free a queue for a waiting update.
            biased;
            Some(worked) = workers.join_next_with_id(), if !workers.is_empty() => {
                let worked = match worked {
                    Ok((task, worked)) => {
                        jobs.remove(&task);
                        worked
                    }
                    Err(error) => {
                        // A panic (in the bot, say) must not hold up the
                        // chat, nor the offset: the update is given up.
                        let (key, id) = jobs.remove(&error.id()).unwrap_or_default();
                        tracing::error!(update_id = id.map(|id| id.0), error = %error, "answering the update panicked; skipped");
                        Worked { key, id, ending: Ending::Settled }
                    }
                };
                match worked.ending {
                    Ending::Settled => {
                        if let Some(id) = worked.id {
                            summary.handled += 1;
                            if id.0 == i64::MAX {
                                failure.get_or_insert(PollError::LastUpdateId(id.0));
                                let _ = halt_tx.send(true);
                            } else if book.confirmable(id) {
                                // A new offset: the next call can wait for
                                // new updates instead of returning this one.
                                next_fetch = Instant::now();
                            }
                        }
                        book.free(&worked.key);
                    }
                    Ending::Unsettled => {}
                    Ending::Fatal(error) => {
                        failure.get_or_insert(error);
                        let _ = halt_tx.send(true);
                    }
                }
            }
            Some(id) = recorded_rx.recv() => {
                if id.0 != i64::MAX && book.confirmable(id) {
                    next_fetch = Instant::now();
                }
            }
            batch = async {
                match fetch.as_mut() {
                    Some(fetch) => fetch.await,
                    None => std::future::pending().await,
                }
            }, if fetch.is_some() => {
                fetch = None;
                match batch {
                    Ok((asked, updates)) => {
                        // Telegram answers an offset past its queue's tail
                        // from the head: ids started afresh (after a quiet
                        // week), below what was confirmed. Take them.
                        if let Some(below) = asked
                            .and_then(|asked| updates.iter().map(|u| u.id).filter(|id| *id < asked).min())
                        {
                            tracing::warn!(
                                offset = asked.map(|a| a.0),
                                lowest = below.0,
                                "Telegram numbers updates afresh, below the confirmed offset; taking them"
                            );
                            book.restart();
                        }
                        let mut new = 0;
                        for update in updates {
                            // Answered, but no offset can confirm it: the
                            // run ends once it settles.
                            last_id |= update.id.0 == i64::MAX;
                            if book.receive(update) {
                                new += 1;
                            }
                        }
                        next_fetch = Instant::now();
                        if new == 0 && book.in_hand() > 0 {
                            next_fetch += PACE_WHILE_IN_HAND;
                        }
                    }
                    Err(GaveUp::Stopped(_)) => {}
                    Err(GaveUp::Failed(error)) => {
                        failure.get_or_insert(PollError::from_api(error));
                        let _ = halt_tx.send(true);
                    }
                }
            }
            _ = tokio::time::sleep_until(next_fetch), if wants_fetch && fetch.is_none() => {}
            // Nothing is in hand during a long poll: abandon it.
            _ = stop.requested_now(), if !*halt_tx.borrow() => {
                fetch = None;
                let _ = halt_tx.send(true);
            }
            else => break,
        }
    }
    // Outboxes recorded meanwhile may confirm a few more.
    while let Ok(id) = recorded_rx.try_recv() {
        if id.0 != i64::MAX {
            let _ = book.confirmable(id);
        }
    }
    confirm(api, book.offset(), &mut summary).await;
    match failure {
        Some(error) => Err(error),
        None => Ok(summary),
    }
}

/// The pause between getUpdates calls while updates are in hand and the
/// last call brought nothing new.
const PACE_WHILE_IN_HAND: Duration = Duration::from_secs(1);

/// A getUpdates call in flight, kept across the loop's turns: the offset
/// it asked from, and the updates.
type Fetch = Pin<Box<dyn Future<Output = Result<(Option<UpdateId>, Vec<Update>), GaveUp>> + Send>>;

fn get_updates(api: BotApi, request: GetUpdates, policy: RetryPolicy, mut stop: Stop) -> Fetch {
    Box::pin(async move {
        let updates = retry(&policy, &mut stop, "getUpdates", || {
            api.get_updates(&request)
        })
        .await?;
        Ok((request.offset, updates))
    })
}

/// Tells Telegram every update below `offset` is done, with one last
/// getUpdates that waits for nothing. Tried a few times; on failure the
/// updates come again on the next start.
async fn confirm(api: &BotApi, offset: Option<UpdateId>, summary: &mut Summary) {
    let Some(offset) = offset else {
        return;
    };
    let request = GetUpdates {
        offset: Some(offset),
        limit: Some(1),
        timeout: Some(0),
        allowed_updates: None,
    };
    // Never stopped: this runs on the way out, after the stop.
    let confirmed = retry(
        &RetryPolicy::few_quick_tries(),
        &mut Stop::never(),
        "getUpdates",
        || api.get_updates(&request),
    )
    .await;
    match confirmed {
        Ok(_) => {
            summary.confirmed_offset = Some(offset);
            tracing::info!(offset = offset.0, "confirmed handled updates");
        }
        Err(GaveUp::Failed(error) | GaveUp::Stopped(error)) => tracing::warn!(
            offset = offset.0,
            error = %Chain(&error),
            "updates below this offset were handled but not confirmed; they will be answered again on the next start"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_told_apart() {
        let conflict = |description: &str| ApiError::Telegram {
            method: "getUpdates",
            code: 409,
            description: description.to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        };
        assert!(matches!(
            PollError::from_api(conflict("Conflict: terminated by other getUpdates request; make sure that only one bot instance is running")),
            PollError::OtherPoller(_)
        ));
        assert!(matches!(
            PollError::from_api(conflict("Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first")),
            PollError::WebhookActive(_)
        ));
    }
}
