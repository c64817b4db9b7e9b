//! The one way an update is answered, shared by the webhook and the polling
//! loop: run the bot, carry out its actions in order under a retry policy,
//! and log one line with the outcome.

mod deferral;
mod line;
mod look_up;
mod press;
mod send;

use deferral::deferrable;
pub use deferral::Deferral;
pub use line::{log_update, update_line};
use look_up::Gathered;
pub use look_up::OutOfTime;
use send::{perform, send_all};

use crate::action::Action;
use crate::bot::Bot;
use crate::client::{ApiError, BotApi, Failure};
use crate::error::Chain;
use crate::handler::{Context, Failed, Handler, ANSWER_RESERVE, MAX_GATHER, RETRY_LATER_LIMIT};
use crate::memory::{answer_step, millis, now_millis, Decision, Memory, Read, Route, Ticket};
use crate::metrics::{self, measured, Line, Spent};
use crate::queue::{Queue, QueueError};
use crate::retry::{retry, GaveUp, RetryPolicy, Stop};
use crate::store::StoreError;
use crate::telegram::{CallbackQuery, SendMessage, Update, UpdateKind};
use std::future::Future;
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Level;

/// How the handling of one update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered before: by this process, or, with a store, by any.
    Duplicate,
    /// Another run is answering it at this moment; a later delivery will
    /// find it done.
    InProgress {
        retry_after: Duration,
    },
    /// Nothing to answer.
    Ignored,
    /// On the queue, for the worker to answer (see [`crate::queue`]).
    Deferred,
    Answered,
    /// An action failed in a way no retry fixes; the update counts as done.
    PermanentFailure,
    /// An action failed in a way a later attempt can fix.
    RetryableFailure {
        retry_after: Option<Duration>,
    },
    /// The token or base URL is wrong; a later attempt after the fix can
    /// succeed. `told`: an outside service refused the bot's own settings
    /// (an API key), the user was told so, and the update is done.
    ConfigurationFailure {
        told: bool,
    },
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Duplicate => "duplicate",
            Outcome::InProgress { .. } => "in_progress",
            Outcome::Ignored => "ignored",
            Outcome::Deferred => "deferred",
            Outcome::Answered => "answered",
            Outcome::PermanentFailure => "permanent_failure",
            Outcome::RetryableFailure { .. } => "retryable_failure",
            Outcome::ConfigurationFailure { .. } => "configuration_failure",
        }
    }

    /// Whether the update is finished with: answered, or past helping.
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            Outcome::RetryableFailure { .. }
                | Outcome::ConfigurationFailure { told: false }
                | Outcome::InProgress { .. }
        )
    }
}

/// What stopped an update: a Bot API call, the store, or the bot's own
/// outside calls.
#[derive(Debug, thiserror::Error)]
pub enum HandlingError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bot(#[from] Failed),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl Handled {
    /// Whether the bot's retry-later failure was given up for being out of
    /// tries (its time, or the queue's receives): what the worker keeps in
    /// the dead-letter queue.
    pub fn exhausted(&self) -> bool {
        self.outcome.is_final()
            && matches!(self.error, Some(HandlingError::Bot(Failed::RetryLater(_))))
    }
}

/// What became of one update.
#[derive(Debug)]
pub struct Handled {
    pub outcome: Outcome,
    /// The failure that decided the outcome, if any.
    pub error: Option<HandlingError>,
    /// How many of the bot's actions are behind it (carried out, or refused
    /// for good); a later attempt at the same update resumes after them.
    pub done: usize,
}

/// What answers an update: the Bot API client, the bot, and its memory (a
/// store, or the process's own). The webhook and the polling loop each
/// hold one.
#[derive(Debug)]
pub struct Responder<'a, H = Bot> {
    pub api: &'a BotApi,
    pub bot: &'a H,
    pub memory: &'a Memory,
    pub deferral: Deferral<'a>,
}

impl<H> Clone for Responder<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H> Copy for Responder<'_, H> {}

impl<H: Handler> Responder<'_, H> {
    /// Answers `update` and logs its one line. The memory decides what is
    /// left to do (see [`crate::memory`]).
    pub async fn answer(&self, update: &Update, policy: &RetryPolicy, stop: &mut Stop) -> Handled {
        self.answer_noting(update, policy, stop, &|| {}).await
    }

    /// As [`Responder::answer`], calling `recorded` once the store holds the
    /// update's outbox (before anything is sent): from then on the update
    /// can be finished without Telegram delivering it again.
    pub async fn answer_noting(
        &self,
        update: &Update,
        policy: &RetryPolicy,
        stop: &mut Stop,
        recorded: &(dyn Fn() + Send + Sync),
    ) -> Handled {
        let started = Instant::now();
        let press = match &update.kind {
            UpdateKind::CallbackQuery(query) => Some(query),
            _ => None,
        };
        let (handled, spent) =
            measured(self.answer_once(update, press, policy, stop, recorded)).await;
        log_update(
            update,
            handled.outcome,
            started,
            handled.error.as_ref().map(|e| e as &dyn std::error::Error),
            &spent,
        );
        handled
    }

    /// Carries out what is left of an update whose outbox a run that died
    /// left in the store, after Telegram was told it was done (the polling
    /// loop confirms an update once its outbox is stored). Logs one line.
    pub async fn resume(&self, ticket: &Ticket, policy: &RetryPolicy, stop: &mut Stop) -> Handled {
        let memory = self.memory;
        let started = Instant::now();
        let now = now_millis();
        let lease_until = lease_until(policy.deadline, now, self.memory.lease_margin());
        let handled = match before(policy.deadline, memory.resume(ticket, lease_until, now)).await {
            Err(error) => store_failure(error),
            Ok(None) => finished(Outcome::Duplicate),
            Ok(Some((actions, from))) => {
                self.send_recorded(memory, ticket, &actions, from, lease_until, policy, stop)
                    .await
            }
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let error = handled.error.as_ref().map(|e| Chain(e).to_string());
        tracing::info!(
            update_id = ticket.update(),
            outcome = handled.outcome.as_str(),
            duration_ms,
            error,
            "resumed an update left unfinished before a restart"
        );
        handled
    }

    /// Reads the chat's record, recognises the update or gathers what the
    /// bot needs and decides it, then carries the decision out.
    async fn answer_once(
        &self,
        update: &Update,
        press: Option<&CallbackQuery>,
        policy: &RetryPolicy,
        stop: &mut Stop,
        recorded: &(dyn Fn() + Send + Sync),
    ) -> Handled {
        let memory = self.memory;
        let deadline = policy.deadline;
        let now = now_millis();
        let lease_until = lease_until(deadline, now, memory.lease_margin());
        let read = match press {
            Some(query) => match self.answer_press_once(update, query, policy, stop).await {
                Ok(read) => read,
                Err(error) => {
                    return Handled {
                        outcome: Outcome::ConfigurationFailure { told: false },
                        error: Some(HandlingError::Api(error)),
                        done: 0,
                    }
                }
            },
            None => None,
        };
        let mut read = match read {
            Some(read) => read,
            None => match before(deadline, memory.read(update)).await {
                Ok(read) => read,
                Err(error) => return store_failure(error),
            },
        }
        .on(self.deferral.route());
        let ticket = read.ticket().clone();
        match before(deadline, memory.recognise(&mut read, lease_until, now)).await {
            Err(error) => return store_failure(error),
            Ok(Some(Decision::Deferred { enqueued: false })) => {
                if let Deferral::To(queue) = self.deferral {
                    return self.enqueue(queue, update, &ticket, deadline).await;
                }
            }
            Ok(Some(decision)) => {
                return self
                    .carry_out(Ok((decision, ticket)), lease_until, policy, stop, recorded)
                    .await
            }
            Ok(None) => {}
        }
        if let Deferral::To(queue) = self.deferral {
            let slow = || self.bot.is_slow(update, &read.state());
            if deferrable(update) && (read.holds_deferred(now) || slow()) {
                return self.defer(queue, update, read, now, deadline).await;
            }
        }
        let gathered = match self
            .gather(update, &mut read, lease_until, now, policy)
            .await
        {
            Gathered::Found(found) => found,
            Gathered::Decided(decision) => {
                return self
                    .carry_out(Ok((decision, ticket)), lease_until, policy, stop, recorded)
                    .await
            }
            Gathered::Store(error) => return store_failure(error),
            Gathered::Failed(failed) => {
                return self
                    .fail(
                        update,
                        read,
                        failed,
                        lease_until,
                        now,
                        policy,
                        stop,
                        recorded,
                    )
                    .await
            }
        };
        let answer = answer_step(self.bot, update, &gathered);
        let decided = before(deadline, memory.decide_with(read, lease_until, now, answer)).await;
        self.carry_out(decided, lease_until, policy, stop, recorded)
            .await
    }

    /// Carries out a decision: nothing for a repeat or an update in
    /// progress elsewhere, the outbox's actions otherwise.
    async fn carry_out(
        &self,
        decided: Result<(Decision, Ticket), StoreError>,
        lease_until: i64,
        policy: &RetryPolicy,
        stop: &mut Stop,
        recorded: &(dyn Fn() + Send + Sync),
    ) -> Handled {
        let (decision, ticket) = match decided {
            Ok(decided) => decided,
            Err(error) => return store_failure(error),
        };
        let (actions, from) = match decision {
            Decision::Duplicate => return finished(Outcome::Duplicate),
            Decision::InProgress { retry_after } => {
                return finished(Outcome::InProgress { retry_after })
            }
            Decision::Nothing => return finished(Outcome::Ignored),
            Decision::Deferred { enqueued: true } => return finished(Outcome::Deferred),
            // Another run deferred it, and is sending it to the queue.
            Decision::Deferred { enqueued: false } => {
                return finished(Outcome::InProgress {
                    retry_after: Duration::from_secs(1),
                })
            }
            Decision::Send { actions, from } => (actions, from),
        };
        recorded();
        self.send_recorded(
            self.memory,
            &ticket,
            &actions,
            from,
            lease_until,
            policy,
            stop,
        )
        .await
    }

    /// Sends a stored outbox from action `from` on, recording progress, and
    /// marks the update done, or gives its lease up for the next attempt.
    #[allow(clippy::too_many_arguments)] // one call site each, all needed
    async fn send_recorded(
        &self,
        memory: &Memory,
        ticket: &Ticket,
        actions: &[Action],
        from: usize,
        lease_until: i64,
        policy: &RetryPolicy,
        stop: &mut Stop,
    ) -> Handled {
        // Recording what was sent matters more than the answer's margin: a
        // reply not recorded goes out again after the lease.
        let record_by = policy.deadline.map(|d| d + RECORD_GRACE);
        let progress = Recorder {
            memory,
            ticket,
            lease_until,
            deadline: record_by,
        };
        let handled = send_all(self.api, actions, from, policy, stop, &progress).await;
        let dropped = telegram_drops(handled.outcome, ticket.lifetime_end(), now_millis());
        if dropped {
            tracing::warn!(
                update_id = ticket.update(),
                "the wait asked for outlasts the update's lifetime: Telegram drops it, and its outbox goes too"
            );
        }
        let recorded = if handled.outcome.is_final() || dropped {
            before(record_by, memory.finish(ticket)).await
        } else {
            // Let the next attempt take over at once, from where this one
            // stopped.
            before(record_by, memory.progress(ticket, handled.done, 0)).await
        };
        if let Err(error) = recorded {
            // Telegram has the replies: an error status now would only bring
            // the update again. Until the lease ends a repeat is told to
            // wait; after it, actions not recorded as sent go out again.
            tracing::warn!(
                update_id = ticket.update(),
                error = %Chain(&error),
                "the update's progress could not be recorded"
            );
        }
        handled
    }
}

/// The longest Retry-After Telegram honours (WebhookActor caps it at an
/// hour); a longer one is sent as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Whether answering `outcome` makes Telegram drop the update for good: a
/// Retry-After that reaches past its lifetime (`lifetime_end`, Unix ms)
/// does (WebhookActor::on_update_error drops an update whose next try
/// would come after it expires).
fn telegram_drops(outcome: Outcome, lifetime_end: i64, now: i64) -> bool {
    match outcome {
        Outcome::RetryableFailure {
            retry_after: Some(wait),
        } => now.saturating_add(millis(wait.min(MAX_RETRY_AFTER))) >= lifetime_end,
        _ => false,
    }
}

/// Time past the deadline a run may take to record what it sent: part of
/// the margin the webhook keeps to answer.
const RECORD_GRACE: Duration = Duration::from_millis(250);

/// Records a run's progress between actions, in the chat's record.
struct Recorder<'a> {
    memory: &'a Memory,
    ticket: &'a Ticket,
    lease_until: i64,
    deadline: Option<Instant>,
}

fn finished(outcome: Outcome) -> Handled {
    Handled {
        outcome,
        error: None,
        done: 0,
    }
}

/// The store failed before anything was sent: a later delivery can do it
/// all.
fn store_failure(error: StoreError) -> Handled {
    // Never acknowledged: a record that cannot be used was set aside, and
    // the next delivery answers the update afresh.
    let outcome = match &error {
        error if error.is_configuration() => Outcome::ConfigurationFailure { told: false },
        _ => Outcome::RetryableFailure { retry_after: None },
    };
    Handled {
        outcome,
        error: Some(HandlingError::Store(error)),
        done: 0,
    }
}

/// How long a run owns its update: until its deadline plus a margin, or a
/// minute when it has none.
fn lease_until(deadline: Option<Instant>, now: i64, margin: Duration) -> i64 {
    let left = deadline
        .map(|d| d.saturating_duration_since(Instant::now()))
        .unwrap_or(Duration::from_secs(60));
    now.saturating_add(millis(left + margin))
}

/// A store call that gives up at the deadline.
async fn before<T>(
    deadline: Option<Instant>,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, call)
            .await
            .unwrap_or(Err(StoreError::Timeout)),
        None => call.await,
    }
}
