//! The worker shell: answers the updates the webhook deferred to the queue
//! (see [`crate::queue`]), on the same answering path, with the same
//! leases, as the webhook's second function.
//!
//! Each message is answered or reported back (partial batch failure): a
//! failure comes again after the queue's visibility timeout. On the
//! queue's last receive of a message, a failure the bot sorted as "retry
//! later" is given up instead: the user is told once, through the outbox,
//! the message is kept in the dead-letter queue for inspection (which
//! raises the errors alarm), and the chat's later messages go on. A
//! worker that dies on its last try leaves the message to the queue's
//! redrive, which moves it to the dead-letter queue too.

use crate::error::Chain;
use crate::handler::Handler;
use crate::handling::{Deferral, Responder};
use crate::queue::{BatchResponse, ItemFailure, QueueEvent, QueueMessage, MAX_RECEIVES};
use crate::retry::{RetryPolicy, Stop};
use crate::telegram::Update;
use crate::webhook::Webhook;
use std::collections::HashSet;
use tokio::time::Instant;

impl<H: Handler> Webhook<H> {
    /// Answers a batch from the queue, in order. After a message of a chat
    /// fails, that chat's later messages in the batch are not tried (FIFO:
    /// they must not overtake it) and are reported back with it.
    pub async fn work(&self, batch: QueueEvent, deadline: Instant) -> BatchResponse {
        let mut held: HashSet<String> = HashSet::new();
        let mut response = BatchResponse::default();
        for message in batch.records {
            let group = message.group().unwrap_or_default().to_owned();
            let done = !held.contains(&group) && self.work_on(&message, deadline).await;
            if !done {
                held.insert(group);
                response.batch_item_failures.push(ItemFailure {
                    item_identifier: message.message_id,
                });
            }
        }
        response
    }

    /// Answers one message; whether it may be deleted from the queue.
    async fn work_on(&self, message: &QueueMessage, deadline: Instant) -> bool {
        let max_receives = self
            .queue
            .as_ref()
            .map_or(MAX_RECEIVES, |(_, config)| config.max_receives);
        let update = match Update::from_slice(message.body.as_bytes()) {
            Ok(update) => update,
            Err(error) => {
                // No try will read it: keep it for inspection, and go on.
                tracing::error!(message_id = message.message_id, error = %error, "a queue message that is not an update");
                return self.keep_dead_letter(message).await;
            }
        };
        let last_try = message.receive_count() >= max_receives;
        let responder = Responder {
            api: &self.api,
            bot: &self.bot,
            memory: &self.memory,
            deferral: Deferral::Worker { last_try },
        };
        let policy = RetryPolicy::webhook(deadline);
        let handled = responder.answer(&update, &policy, &mut Stop::never()).await;
        if handled.exhausted() {
            tracing::error!(
                update_id = update.id.0,
                message_id = message.message_id,
                receives = message.receive_count(),
                "gave a deferred update up after its tries; the user was told, and the message is kept in the dead-letter queue"
            );
            return self.keep_dead_letter(message).await;
        }
        handled.outcome.is_final()
    }

    /// Keeps `message` in the dead-letter queue; whether it may be deleted
    /// from the queue (else the queue's redrive moves it there later).
    async fn keep_dead_letter(&self, message: &QueueMessage) -> bool {
        let Some((queue, _)) = &self.queue else {
            return true;
        };
        match queue.keep_dead_letter(message).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(message_id = message.message_id, error = %Chain(&error), "could not keep the message in the dead-letter queue; the queue's redrive moves it there");
                false
            }
        }
    }
}
