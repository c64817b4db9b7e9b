//! The one way an update is answered, shared by the webhook and the polling
//! loop: run the bot, carry out its actions in order under a retry policy,
//! and log one line with the outcome.

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

/// A bot's look-up that ran past the time it had.
#[derive(Debug, thiserror::Error)]
#[error("the bot's look-up ran past the time it had")]
pub struct OutOfTime;

/// How a look-up ended.
enum Gathered<T> {
    Found(T),
    /// Another run decided the update meanwhile.
    Decided(Decision),
    Store(StoreError),
    Failed(Failed),
}

/// Until when a look-up may run: the answer's deadline less
/// [`ANSWER_RESERVE`], and at most [`MAX_GATHER`] from now where the chat
/// waits on it (`capped`). The worker's deadline is its timeout (2-3
/// minutes), all of it the look-up's but the reserve.
fn gather_deadline(deadline: Option<Instant>, capped: bool) -> Instant {
    let longest = Instant::now() + MAX_GATHER;
    match deadline {
        Some(deadline) => {
            let until = deadline.checked_sub(ANSWER_RESERVE).unwrap_or(deadline);
            match capped {
                true => longest.min(until),
                false => until,
            }
        }
        None => longest,
    }
}

/// Whether a retry-later failure may still ask for the update again:
/// within [`RETRY_LATER_LIMIT`] of its date (`now` in Unix ms). An update
/// without one (a press, an inline query) is asked for again while its own
/// lifetime at Telegram is that short; any other is given up.
fn within_retry_limit(update: &Update, now: i64) -> bool {
    match update.date() {
        Some(date) => now / 1000 < date.saturating_add(millis(RETRY_LATER_LIMIT) / 1000),
        None => update
            .lifetime_from_receipt()
            .is_some_and(|lifetime| lifetime <= RETRY_LATER_LIMIT),
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

/// Whether slow updates go to the queue, and on which side of it this
/// responder is.
#[derive(Debug, Clone, Copy, Default)]
pub enum Deferral<'a> {
    /// No queue: every update is answered where it arrived.
    #[default]
    Off,
    /// The webhook: slow updates, and those behind one, go to this queue.
    To(&'a Queue),
    /// The worker, answering an update from the queue; `last_try` on the
    /// queue's last receive of it, when a failure is given up.
    Worker { last_try: bool },
}

impl Deferral<'_> {
    fn route(&self) -> Route {
        match self {
            Deferral::Off => Route::Here,
            Deferral::To(_) => Route::Deferring,
            Deferral::Worker { .. } => Route::Worker,
        }
    }
}

/// Whether `update` may be deferred: the chat's own queue (messages, edits,
/// posts). Presses are queued per user by Telegram and must stay fast.
fn deferrable(update: &Update) -> bool {
    matches!(
        update.kind,
        UpdateKind::Message(_)
            | UpdateKind::EditedMessage(_)
            | UpdateKind::ChannelPost(_)
            | UpdateKind::EditedChannelPost(_)
    )
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

    /// Answers a button press (answerCallbackQuery) with what the bot says
    /// to it. A failure is logged and changes nothing else: the press is
    /// still carried out, and Telegram is not asked to deliver it again for
    /// the answer's sake. A query answered before (a repeat delivery) or
    /// too old to answer counts as answered.
    async fn answer_press(
        &self,
        update: &Update,
        query: &CallbackQuery,
        policy: &RetryPolicy,
        stop: &mut Stop,
    ) -> Result<(), ApiError> {
        let answer = Action::AnswerCallback(self.bot.answer_press(query));
        let answered = retry(policy, stop, answer.method(), || {
            perform(self.api, &answer, policy.deadline)
        })
        .await;
        match answered {
            Ok(()) => Ok(()),
            // A refused token or a base URL that is not the Bot API: the
            // rest would fail the same way, and acknowledging the press
            // would hide it.
            Err(GaveUp::Failed(error)) if error.failure() == Failure::Configuration => Err(error),
            Err(GaveUp::Failed(error) | GaveUp::Stopped(error)) => {
                tracing::warn!(
                    update_id = update.id.0,
                    error = %Chain(&error),
                    "could not answer the button press; carrying it out anyway"
                );
                Ok(())
            }
        }
    }

    /// Answers a press unless an earlier delivery did. Telegram delivers a
    /// press again when an attempt failed after its answer (an edit, the
    /// store), maybe to another instance: the chat's record says whether
    /// one got that far, so the record is read first, which the decision
    /// needs anyway. A store that does not answer within
    /// [`PRESS_READ_BUDGET`] does not keep the button spinning: the press is
    /// answered, and at worst answered twice (Telegram refuses the second,
    /// which counts as done). Returns the record when it was read; an
    /// answer refused for the configuration's sake (the token, the base
    /// URL) fails the update.
    async fn answer_press_once(
        &self,
        update: &Update,
        query: &CallbackQuery,
        policy: &RetryPolicy,
        stop: &mut Stop,
    ) -> Result<Option<Read>, ApiError> {
        let read = tokio::time::timeout(PRESS_READ_BUDGET, self.memory.read(update))
            .await
            .ok()
            .and_then(Result::ok);
        if !read.as_ref().is_some_and(|r| r.seen_before(now_millis())) {
            self.answer_press(update, query, policy, stop).await?;
        }
        Ok(read)
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

    /// Defers `update` to `queue`: recorded as accepted in the chat's
    /// record first, then sent, then marked as sent.
    async fn defer(
        &self,
        queue: &Queue,
        update: &Update,
        mut read: Read,
        now: i64,
        deadline: Option<Instant>,
    ) -> Handled {
        match before(deadline, self.memory.defer(&mut read, now)).await {
            Err(error) => store_failure(error),
            Ok(None) | Ok(Some(Decision::Deferred { enqueued: false })) => {
                self.enqueue(queue, update, read.ticket(), deadline).await
            }
            Ok(Some(decision)) => finished(match decision {
                Decision::Duplicate => Outcome::Duplicate,
                Decision::Deferred { .. } => Outcome::Deferred,
                // Another run holds it: ask again shortly.
                _ => Outcome::InProgress {
                    retry_after: Duration::from_secs(1),
                },
            }),
        }
    }

    /// Sends a deferred update to the queue and marks it sent. A failure to
    /// send asks Telegram for the update again, which finds it accepted and
    /// sends it again; a failure to mark it only costs a repeat send, which
    /// the queue drops.
    async fn enqueue(
        &self,
        queue: &Queue,
        update: &Update,
        ticket: &Ticket,
        deadline: Option<Instant>,
    ) -> Handled {
        let key = crate::handler::update_key(self.api.bot_id(), update);
        let sent = queue.send(update, ticket.key(), &key);
        let sent = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, sent)
                .await
                .unwrap_or(Err(QueueError::Timeout)),
            None => sent.await,
        };
        if let Err(error) = sent {
            // Either way Telegram delivers it again, and the redelivery
            // sends it; a refusal (access denied, no such queue) is the
            // deployment's to fix, and counts as one (the errors alarm).
            let outcome = match error.is_configuration() {
                true => Outcome::ConfigurationFailure { told: false },
                false => Outcome::RetryableFailure { retry_after: None },
            };
            return Handled {
                outcome,
                error: Some(HandlingError::Queue(error)),
                done: 0,
            };
        }
        if let Err(error) = before(deadline, self.memory.enqueued(ticket)).await {
            tracing::warn!(update_id = ticket.update(), error = %Chain(&error), "the update is on the queue, but could not be marked so; a redelivery sends it again");
        }
        finished(Outcome::Deferred)
    }

    /// Runs the bot's look-up with the time it has. One that is done at its
    /// first poll waited on nothing and costs nothing more; one that waits
    /// claims the update in the chat's record meanwhile (one write, beside
    /// the outside call), so that a delivery arriving during it is told to
    /// wait instead of running it a second time.
    async fn gather(
        &self,
        update: &Update,
        read: &mut Read,
        lease_until: i64,
        now: i64,
        policy: &RetryPolicy,
    ) -> Gathered<H::Gathered> {
        let state: H::State = read.state();
        let worker = matches!(self.deferral, Deferral::Worker { .. });
        let until = gather_deadline(policy.deadline, !worker);
        let cx = Context::new(self.api, update, until, self.memory);
        let look_up = tokio::time::timeout_at(until, self.bot.gather(update, &state, &cx));
        let mut look_up = std::pin::pin!(look_up);
        let first = std::future::poll_fn(|cx| Poll::Ready(look_up.as_mut().poll(cx))).await;
        let looked_up = match first {
            Poll::Ready(looked_up) => looked_up,
            Poll::Pending => {
                let claim = before(policy.deadline, self.memory.claim(read, lease_until, now));
                let mut claim = std::pin::pin!(claim);
                let mut early = None;
                let claimed = tokio::select! {
                    claimed = &mut claim => claimed,
                    looked_up = &mut look_up => {
                        early = Some(looked_up);
                        claim.await
                    }
                };
                match claimed {
                    Err(error) => return Gathered::Store(error),
                    // Decided by another run meanwhile: the look-up is
                    // dropped unfinished.
                    Ok(Some(decision)) => return Gathered::Decided(decision),
                    Ok(None) => {}
                }
                match early {
                    Some(looked_up) => looked_up,
                    None => look_up.await,
                }
            }
        };
        match looked_up {
            Ok(Ok(found)) => Gathered::Found(found),
            Ok(Err(failed)) => Gathered::Failed(failed),
            Err(_) => Gathered::Failed(Failed::retry_later(OutOfTime)),
        }
    }

    /// What follows a failed look-up. Retry later, within
    /// [`RETRY_LATER_LIMIT`] of the message's date: nothing is sent, the
    /// claim is let go, and the update asked for again. Otherwise the
    /// update is given up: the user is told (through the outbox, exactly
    /// once), and it counts as a permanent failure.
    #[allow(clippy::too_many_arguments)] // one call site, all needed
    async fn fail(
        &self,
        update: &Update,
        read: Read,
        failed: Failed,
        lease_until: i64,
        now: i64,
        policy: &RetryPolicy,
        stop: &mut Stop,
        recorded: &(dyn Fn() + Send + Sync),
    ) -> Handled {
        let last_try = matches!(self.deferral, Deferral::Worker { last_try: true });
        let retry =
            matches!(failed, Failed::RetryLater(_)) && within_retry_limit(update, now) && !last_try;
        if retry {
            // Only a look-up that waited claimed the update; releasing
            // nothing would still cost a write.
            let released = match read.holds_lease() {
                true => before(policy.deadline, self.memory.release(read.ticket())).await,
                false => Ok(()),
            };
            if let Err(error) = released {
                tracing::warn!(update_id = update.id.0, error = %Chain(&error), "could not let the update's claim go; the next delivery waits for its lease");
            }
            return Handled {
                outcome: Outcome::RetryableFailure { retry_after: None },
                error: Some(HandlingError::Bot(failed)),
                done: 0,
            };
        }
        let actions = match failed.words() {
            Some(text) => crate::handler::telling(update, text),
            None => self.bot.gave_up(update),
        };
        let tell = move |_: Option<&str>| Ok((actions.clone(), None));
        let decided = before(
            policy.deadline,
            self.memory.decide_with(read, lease_until, now, tell),
        )
        .await;
        let mut handled = self
            .carry_out(decided, lease_until, policy, stop, recorded)
            .await;
        if matches!(handled.outcome, Outcome::Answered | Outcome::Ignored) {
            handled.outcome = match failed {
                Failed::Misconfigured { .. } => Outcome::ConfigurationFailure { told: true },
                _ => Outcome::PermanentFailure,
            };
            handled.error = Some(HandlingError::Bot(failed));
        }
        handled
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
        let progress = Progress {
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

/// How long a press waits for its chat's record before it is answered
/// anyway: far above a healthy store's read (single milliseconds), far below
/// what a person notices on a spinning button.
const PRESS_READ_BUDGET: Duration = Duration::from_millis(300);

/// Time past the deadline a run may take to record what it sent: part of
/// the margin the webhook keeps to answer.
const RECORD_GRACE: Duration = Duration::from_millis(250);

/// Where a run records its progress between actions.
struct Progress<'a> {
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

/// Carries out `actions` from number `from` on, each retried as `policy`
/// says. An action refused for good does not stop the ones after it; one
/// that may succeed later does, so that the actions keep their order.
async fn send_all(
    api: &BotApi,
    actions: &[Action],
    from: usize,
    policy: &RetryPolicy,
    stop: &mut Stop,
    progress: &Progress<'_>,
) -> Handled {
    let mut handled = Handled {
        outcome: if actions.is_empty() {
            Outcome::Ignored
        } else {
            Outcome::Answered
        },
        error: None,
        done: from.min(actions.len()),
    };
    for action in actions.iter().skip(from) {
        let carried_out = retry(policy, stop, action.method(), || {
            perform(api, action, policy.deadline)
        })
        .await;
        let error = match carried_out {
            Ok(()) => None,
            Err(GaveUp::Stopped(error)) => {
                Some((Outcome::RetryableFailure { retry_after: None }, error))
            }
            Err(GaveUp::Failed(error)) => Some(match error.failure() {
                Failure::Permanent => (Outcome::PermanentFailure, error),
                Failure::Retryable { retry_after } => {
                    (Outcome::RetryableFailure { retry_after }, error)
                }
                Failure::Configuration => (Outcome::ConfigurationFailure { told: false }, error),
            }),
        };
        if let Some((outcome, error)) = error {
            handled.outcome = outcome;
            handled.error = Some(HandlingError::Api(error));
            if !outcome.is_final() {
                break;
            }
        }
        handled.done += 1;
        if handled.done < actions.len() {
            let recorded = before(
                progress.deadline,
                progress
                    .memory
                    .progress(progress.ticket, handled.done, progress.lease_until),
            )
            .await;
            if let Err(error) = recorded {
                tracing::warn!(error = %Chain(&error), "an action's progress could not be recorded");
            }
        }
    }
    handled
}

/// Carries out one action. A message to a group that became a supergroup
/// is sent once more, to the supergroup. What Telegram refuses because it
/// is done already counts as done: an edit to what the message already
/// says, an answer to a query answered before or too old to answer.
async fn perform(api: &BotApi, action: &Action, deadline: Option<Instant>) -> Result<(), ApiError> {
    match carry_out_once(api, action, deadline).await {
        Err(error) if is_done_already(action, &error) => Ok(()),
        result => result,
    }
}

/// Telegram's refusals that mean the action's effect is already there.
fn is_done_already(action: &Action, error: &ApiError) -> bool {
    let ApiError::Telegram {
        code: 400,
        description,
        ..
    } = error
    else {
        return false;
    };
    match action {
        Action::Edit(_) => description.contains("message is not modified"),
        Action::AnswerCallback(_) => {
            description.contains("query is too old") || description.contains("query ID is invalid")
        }
        Action::Send(_) => false,
    }
}

async fn carry_out_once(
    api: &BotApi,
    action: &Action,
    deadline: Option<Instant>,
) -> Result<(), ApiError> {
    match action {
        Action::Send(message) => match api.send_message(message, deadline).await {
            Ok(_) => Ok(()),
            Err(error) => match error.migrate_to_chat_id() {
                Some(new_chat) => {
                    let moved = SendMessage {
                        chat_id: new_chat,
                        message_thread_id: None,
                        ..message.clone()
                    };
                    api.send_message(&moved, deadline).await.map(drop)
                }
                None => Err(error),
            },
        },
        Action::Edit(edit) => api.edit_message_text(edit, deadline).await.map(drop),
        Action::AnswerCallback(answer) => {
            api.answer_callback_query(answer, deadline).await.map(drop)
        }
    }
}

/// The one line logged per update, the same in both delivery modes, with the
/// error that decided the outcome, if any, and what its calls took. Never
/// the message text. With metrics on it carries them (see
/// [`crate::metrics`]) and is written whatever the log level.
pub fn log_update(
    update: &Update,
    outcome: Outcome,
    started: Instant,
    error: Option<&dyn std::error::Error>,
    spent: &Spent,
) {
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let error = error.map(|e| Chain(e).to_string());
    metrics::emit(
        || update_line(update, outcome, duration_ms, error.clone(), spent),
        || trace_update(update, outcome, duration_ms, error.clone()),
    );
}

/// The level of an update's line: what needs a look is a warning, what
/// needs the operator an error.
fn level_of(outcome: Outcome) -> Level {
    match outcome {
        Outcome::ConfigurationFailure { .. } => Level::ERROR,
        Outcome::PermanentFailure | Outcome::RetryableFailure { .. } => Level::WARN,
        _ => Level::INFO,
    }
}

fn message_of(outcome: Outcome) -> &'static str {
    match level_of(outcome) {
        Level::ERROR => "update failed: the configuration needs a fix (the token, the base URL, the table or its permissions: see error)",
        Level::WARN => "update failed",
        _ => "update handled",
    }
}

/// An update's line with its metrics: one count by outcome, and each Bot API
/// and store call's time.
pub fn update_line(
    update: &Update,
    outcome: Outcome,
    duration_ms: u64,
    error: Option<String>,
    spent: &Spent,
) -> Line {
    Line::new(level_of(outcome), message_of(outcome))
        .field("update_id", update.id.0)
        .field("kind", update.kind_name())
        .field(
            "chat_type",
            update.chat().map(|c| c.kind.as_str()).unwrap_or("none"),
        )
        .field("outcome", outcome.as_str())
        .field("duration_ms", duration_ms)
        .field("error", error)
        .by_outcome(metrics::UPDATES, 1.0)
        .by_function(metrics::BOT_API_LATENCY, spent.bot_api.clone())
        .by_function(metrics::STORE_LATENCY, spent.store.clone())
}

/// The same line through tracing, when metrics are off.
fn trace_update(update: &Update, outcome: Outcome, duration_ms: u64, error: Option<String>) {
    let chat_type = update.chat().map(|c| c.kind.as_str()).unwrap_or("none");
    let kind = update.kind_name();
    let update_id = update.id.0;
    let outcome_name = outcome.as_str();
    let message = message_of(outcome);
    match level_of(outcome) {
        Level::ERROR => tracing::error!(
            update_id,
            kind,
            chat_type,
            outcome = outcome_name,
            duration_ms,
            error,
            "{message}"
        ),
        Level::WARN => tracing::warn!(
            update_id,
            kind,
            chat_type,
            outcome = outcome_name,
            duration_ms,
            error,
            "{message}"
        ),
        _ => tracing::info!(
            update_id,
            kind,
            chat_type,
            outcome = outcome_name,
            duration_ms,
            "{message}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::{assert_valid_emf, target, Buffer};
    use crate::metrics::Sink;
    use serde_json::{json, Value};

    const TEXT: &str = "my bank PIN is 4321";

    #[test]
    fn a_look_up_has_its_deadline_less_the_reserve_and_a_minute_at_most_unless_it_is_the_workers() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(150);
        let capped = gather_deadline(Some(deadline), true);
        assert!(capped <= Instant::now() + MAX_GATHER && capped > now + MAX_GATHER / 2);
        // The worker: its timeout, less what sending needs.
        assert_eq!(
            gather_deadline(Some(deadline), false),
            deadline - ANSWER_RESERVE
        );
        let webhook = now + Duration::from_secs(25);
        assert_eq!(
            gather_deadline(Some(webhook), true),
            webhook - ANSWER_RESERVE
        );
    }
    const TOKEN: &str = "123456789:AAStandIn-token_for-unit-tests-only";

    fn text_update() -> Update {
        Update::from_value(json!({"update_id": 77, "message": {
            "message_id": 5, "date": 1_700_000_000, "text": TEXT,
            "from": {"id": 42, "is_bot": false, "first_name": "Ali", "username": "ali_user"},
            "chat": {"id": 42, "type": "private", "first_name": "Ali"}}}))
        .unwrap()
    }

    fn line_json(outcome: Outcome, error: Option<String>, spent: &Spent) -> Value {
        let line = update_line(&text_update(), outcome, 31, error, spent);
        assert_valid_emf(&line.to_json(&target(), 1_700_000_000_000))
    }

    #[test]
    fn retry_later_is_bounded_by_the_date_or_a_short_lifetime() {
        let now = 1_700_000_000_000;
        let secs = now / 1000;
        let at = |kind: &str, payload: Value| {
            Update::from_value(json!({"update_id": 1, kind: payload})).unwrap()
        };
        let message = |date: i64| {
            at(
                "message",
                json!({"message_id": 1, "date": date, "chat": {"id": 1, "type": "private"}}),
            )
        };
        assert!(within_retry_limit(&message(secs - 60), now));
        assert!(!within_retry_limit(&message(secs - 11 * 60), now));
        // A member change lives a day at Telegram: its own date bounds it.
        let member = |date: i64| {
            at(
                "chat_member",
                json!({"date": date, "chat": {"id": -5, "type": "group"}}),
            )
        };
        assert!(within_retry_limit(&member(secs - 60), now));
        assert!(!within_retry_limit(&member(secs - 11 * 60), now));
        // Without a date: a press (150 s) may be asked for again, a kind
        // that lives a day may not.
        let press = at(
            "callback_query",
            json!({"id": "q", "chat_instance": "c",
            "from": {"id": 1, "is_bot": false, "first_name": "A"}}),
        );
        assert!(within_retry_limit(&press, now));
        assert!(!within_retry_limit(
            &at("purchased_paid_media", json!({})),
            now
        ));
    }

    #[test]
    fn an_update_line_counts_it_by_outcome_and_times_each_call() {
        let spent = Spent {
            bot_api: vec![48.5, 12.0],
            store: vec![4.0, 5.5, 6.25],
        };
        let line = line_json(Outcome::Answered, None, &spent);
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["outcome"], "answered");
        assert_eq!(line["update_id"], 77);
        assert_eq!(line["kind"], "message");
        assert_eq!(line["chat_type"], "private");
        assert_eq!(line["duration_ms"], 31);
        assert_eq!(line["Updates"], 1.0);
        assert_eq!(line["BotApiLatency"], json!([48.5, 12.0]));
        assert_eq!(line["StoreLatency"], json!([4.0, 5.5, 6.25]));
        let directives = line["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(
            directives[0]["Dimensions"],
            json!([["function", "outcome"]])
        );
        assert_eq!(
            directives[0]["Metrics"],
            json!([{"Name": "Updates", "Unit": "Count"}])
        );
        assert_eq!(directives[1]["Dimensions"], json!([["function"]]));
        assert_eq!(
            directives[1]["Metrics"],
            json!([{"Name": "BotApiLatency", "Unit": "Milliseconds"}, {"Name": "StoreLatency", "Unit": "Milliseconds"}])
        );
    }

    #[test]
    fn each_outcome_has_its_level_and_a_dimension_value() {
        let cases = [
            (Outcome::Answered, "INFO"),
            (Outcome::Duplicate, "INFO"),
            (Outcome::Ignored, "INFO"),
            (
                Outcome::InProgress {
                    retry_after: Duration::from_secs(1),
                },
                "INFO",
            ),
            (Outcome::PermanentFailure, "WARN"),
            (Outcome::RetryableFailure { retry_after: None }, "WARN"),
            (Outcome::ConfigurationFailure { told: false }, "ERROR"),
            (Outcome::ConfigurationFailure { told: true }, "ERROR"),
        ];
        for (outcome, level) in cases {
            let line = line_json(outcome, None, &Spent::default());
            assert_eq!(line["level"], level, "{outcome:?}");
            assert_eq!(line["outcome"], outcome.as_str());
            assert!(line.get("BotApiLatency").is_none(), "no call, no latency");
        }
    }

    #[test]
    fn an_update_line_holds_no_text_no_user_and_no_token() {
        // An error as the client words it: no URL, so no token.
        let error = ApiError::Telegram {
            method: "sendMessage",
            code: 403,
            description: "Forbidden: bot was blocked by the user".to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        };
        let line = update_line(
            &text_update(),
            Outcome::PermanentFailure,
            9,
            Some(Chain(&error).to_string()),
            &Spent::default(),
        )
        .to_json(&target(), 1_700_000_000_000);
        assert_valid_emf(&line);
        for private in [TEXT, "ali_user", "Ali", TOKEN, "AAStandIn"] {
            assert!(!line.contains(private), "{private} in {line}");
        }
    }

    #[test]
    fn with_metrics_on_an_update_is_one_line_whatever_the_log_level() {
        let buffer = Buffer::default();
        let sink = Sink::new(target(), Box::new(buffer.clone()));
        // A subscriber that drops everything below WARN, as LogLevel=WARN.
        let (logs, _guard) = testkit_like_capture();
        // A WARN outcome: a tracing line, if one were written too, would
        // pass the filter and be seen.
        metrics::emit_to(
            Some(&sink),
            || {
                update_line(
                    &text_update(),
                    Outcome::PermanentFailure,
                    1,
                    None,
                    &Spent::default(),
                )
            },
            || trace_update(&text_update(), Outcome::PermanentFailure, 1, None),
        );
        assert_eq!(buffer.lines().len(), 1);
        assert!(
            logs.lock().unwrap().is_empty(),
            "and nothing through tracing"
        );
        metrics::emit_to(
            None,
            || {
                update_line(
                    &text_update(),
                    Outcome::Answered,
                    1,
                    None,
                    &Spent::default(),
                )
            },
            || trace_update(&text_update(), Outcome::Answered, 1, None),
        );
        assert!(
            logs.lock().unwrap().is_empty(),
            "off, the INFO line is filtered"
        );
        assert_eq!(buffer.lines().len(), 1);
    }

    type Captured = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

    fn testkit_like_capture() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let writer = {
            let captured = captured.clone();
            move || Buffer(captured.clone())
        };
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_filter(crate::logging::filter(Some("WARN")));
        let subscriber = tracing_subscriber::registry().with(layer);
        (captured, tracing::subscriber::set_default(subscriber))
    }
}
