//! Slow updates deferred to the queue (see [`crate::queue`]): which ones,
//! and the webhook's side of the protocol.

use super::*;

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
    pub(super) fn route(&self) -> Route {
        match self {
            Deferral::Off => Route::Here,
            Deferral::To(_) => Route::Deferring,
            Deferral::Worker { .. } => Route::Worker,
        }
    }
}

/// Whether `update` may be deferred: the chat's own queue (messages, edits,
/// posts). Presses are queued per user by Telegram and must stay fast.
pub(super) fn deferrable(update: &Update) -> bool {
    matches!(
        update.kind,
        UpdateKind::Message(_)
            | UpdateKind::EditedMessage(_)
            | UpdateKind::ChannelPost(_)
            | UpdateKind::EditedChannelPost(_)
    )
}

impl<H: Handler> Responder<'_, H> {
    /// Defers `update` to `queue`: recorded as accepted in the chat's
    /// record first, then sent, then marked as sent.
    pub(super) async fn defer(
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
    pub(super) async fn enqueue(
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
}
