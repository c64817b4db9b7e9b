//! A chat's queue at work: one job (an update, or an outbox a run that
//! died left) carried out through the shared answering path, retried until
//! it settles, its lifetime ends or a stop is asked for.

use super::*;

/// What a queue's worker needs.
pub(super) struct Worker<H> {
    pub(super) api: BotApi,
    pub(super) bot: Arc<H>,
    pub(super) memory: Memory,
    pub(super) backoff: Backoff,
    /// Where to say that an update's outbox is stored, when that confirms it.
    pub(super) recorded: Option<mpsc::UnboundedSender<UpdateId>>,
}

/// What became of one job.
pub(super) struct Worked {
    pub(super) key: String,
    /// The update from getUpdates, if that was the job.
    pub(super) id: Option<UpdateId>,
    pub(super) ending: Ending,
}

pub(super) enum Ending {
    /// Answered, refused for good, or dropped after its lifetime.
    Settled,
    /// Stopped before it settled: it comes again on the next start.
    Unsettled,
    /// Polling cannot go on (a wrong token, a store that refuses).
    Fatal(PollError),
}

/// Carries out one job, retrying until it settles, its lifetime ends or a
/// stop is asked for.
pub(super) async fn work<H: Handler>(worker: Worker<H>, job: Job, mut stop: Stop) -> Worked {
    let (key, id) = job.about();
    let ending = |ending| Worked {
        key: key.clone(),
        id,
        ending,
    };
    let deadline = match &job {
        Job::Update(update) => lifetime_end(update),
        Job::Resume(_) => Instant::now() + OUTBOX_LIFETIME,
    };
    let policy = RetryPolicy {
        deadline: Some(deadline),
        ..RetryPolicy::polling(worker.backoff)
    };
    let responder = Responder {
        deferral: Deferral::Off,
        api: &worker.api,
        bot: &*worker.bot,
        memory: &worker.memory,
    };
    let recorded = || {
        if let (Some(sender), Some(id)) = (&worker.recorded, id) {
            let _ = sender.send(id);
        }
    };
    let mut tries = 0u32;
    loop {
        let handled = match &job {
            Job::Update(update) => {
                responder
                    .answer_noting(update, &policy, &mut stop, &recorded)
                    .await
            }
            Job::Resume(ticket) => responder.resume(ticket, &policy, &mut stop).await,
        };
        let wait = match (handled.outcome, handled.error) {
            (outcome, _) if outcome.is_final() => return ending(Ending::Settled),
            (Outcome::ConfigurationFailure { .. }, Some(HandlingError::Api(error))) => {
                return ending(Ending::Fatal(PollError::Configuration(error)))
            }
            (Outcome::ConfigurationFailure { .. }, Some(HandlingError::Store(error))) => {
                return ending(Ending::Fatal(PollError::Store(error)))
            }
            (Outcome::InProgress { retry_after }, _) => retry_after,
            // The Bot API was retried up to the lifetime already (or a
            // stop came); the store and the bot's look-up were not.
            (_, Some(HandlingError::Store(_) | HandlingError::Bot(_))) => {
                worker.backoff.delay(tries)
            }
            _ => Duration::ZERO,
        };
        if stop.requested() {
            return ending(Ending::Unsettled);
        }
        if wait.is_zero() || Instant::now() + wait >= deadline {
            tracing::warn!(
                update_id = id.map(|id| id.0),
                "dropped: the update's lifetime ended before it could be answered"
            );
            // Its outbox goes too, or a restart would take it up again.
            let ticket = match &job {
                Job::Update(update) => Ticket::new(key.clone(), update.id.0),
                Job::Resume(ticket) => ticket.clone(),
            };
            if let Err(error) = worker.memory.finish(&ticket).await {
                tracing::warn!(error = %Chain(&error), "could not record the drop");
            }
            return ending(Ending::Settled);
        }
        if stop.sleep(wait).await {
            return ending(Ending::Unsettled);
        }
        tries = tries.saturating_add(1);
    }
}

/// When the update's lifetime ends, as an instant, as Telegram's server
/// counts it; [`MIN_LIFETIME`] from now for one that by our clock has
/// ended already.
pub(super) fn lifetime_end(update: &Update) -> Instant {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let expires = update.expires_at(now / 1000).saturating_mul(1000);
    let left = match u64::try_from(expires.saturating_sub(now)) {
        Ok(left) if left > 0 => Duration::from_millis(left),
        _ => MIN_LIFETIME,
    };
    Instant::now() + left
}
