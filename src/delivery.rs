//! What the webhook and the polling loop share around the bot: sending one
//! reply, and the one log line per update.

use crate::client::{ApiError, BotApi, Failure};
use crate::telegram::{SendMessage, Update};
use std::time::Duration;
use tokio::time::Instant;

/// Waiting out a 429 is worth it only if this much time is left afterwards.
const MIN_SEND_TIME: Duration = Duration::from_millis(500);

/// How the handling of one update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Seen and finished by this process before.
    Duplicate,
    /// Nothing to answer.
    Ignored,
    Answered,
    /// A reply failed in a way no retry fixes; the update counts as done.
    PermanentFailure,
    /// A reply failed in a way a later attempt can fix.
    RetryableFailure {
        retry_after: Option<Duration>,
    },
    /// The token or base URL is wrong; a later attempt after the fix can succeed.
    ConfigurationFailure,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Answered => "answered",
            Outcome::PermanentFailure => "permanent_failure",
            Outcome::RetryableFailure { .. } => "retryable_failure",
            Outcome::ConfigurationFailure => "configuration_failure",
        }
    }
}

/// Sends one reply. With a deadline, waits out a 429 once when the wait fits
/// before it; without one, leaves waiting to the caller. Follows a group's
/// migration to a supergroup once.
pub async fn send(
    api: &BotApi,
    reply: &SendMessage,
    deadline: Option<Instant>,
) -> Result<(), ApiError> {
    let first = match api.send_message(reply, deadline).await {
        Ok(_) => return Ok(()),
        Err(error) => error,
    };
    if let Some(new_chat) = first.migrate_to_chat_id() {
        let moved = SendMessage {
            chat_id: new_chat,
            message_thread_id: None,
            ..reply.clone()
        };
        return api.send_message(&moved, deadline).await.map(drop);
    }
    let (
        Failure::Retryable {
            retry_after: Some(wait),
        },
        Some(deadline),
    ) = (first.failure(), deadline)
    else {
        return Err(first);
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if wait.saturating_add(MIN_SEND_TIME) > left {
        return Err(first);
    }
    tracing::info!(
        retry_after_ms = wait.as_millis() as u64,
        "rate limited; waiting once"
    );
    tokio::time::sleep(wait).await;
    api.send_message(reply, Some(deadline)).await.map(drop)
}

/// The one line logged per update, the same in both delivery modes, with the
/// error that decided the outcome, if any. Never the message text.
pub fn log_update(update: &Update, outcome: Outcome, started: Instant, error: Option<&ApiError>) {
    let duration_ms = started.elapsed().as_millis() as u64;
    let error = error.map(|e| crate::client::error_chain(e));
    let chat_type = update.chat().map(|c| c.kind.as_str()).unwrap_or("none");
    let kind = update.kind_name();
    let update_id = update.id.0;
    let outcome_name = outcome.as_str();
    match outcome {
        Outcome::ConfigurationFailure => tracing::error!(
            update_id,
            kind,
            chat_type,
            outcome = outcome_name,
            duration_ms,
            error,
            "update failed: check TELEGRAM_BOT_TOKEN and TELEGRAM_API_BASE_URL"
        ),
        Outcome::PermanentFailure | Outcome::RetryableFailure { .. } => tracing::warn!(
            update_id,
            kind,
            chat_type,
            outcome = outcome_name,
            duration_ms,
            error,
            "update failed"
        ),
        _ => tracing::info!(
            update_id,
            kind,
            chat_type,
            outcome = outcome_name,
            duration_ms,
            "update handled"
        ),
    }
}
