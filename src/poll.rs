//! The long-polling shell: asks Telegram for updates with getUpdates and runs
//! the same bot and Bot API client as the webhook, on any machine.
//!
//! An update is confirmed (the offset moves past it) only once its actions
//! were carried out or refused for good, so a crash or a stop never loses
//! one. A stop lets the call in flight finish and confirms every update
//! answered before exiting, so a restart does not repeat those; an update
//! still waiting for a retry is left unconfirmed and comes again.

use crate::bot::Bot;
use crate::client::{ApiError, BotApi};
use crate::error::Chain;
use crate::handling::{HandlingError, Outcome, Responder};
use crate::memory::Memory;
use crate::retry::{retry, Backoff, GaveUp, RetryPolicy, Stop};
use crate::store::StoreError;
use crate::telegram::{GetUpdates, UpdateId};

/// Telegram's longest long poll.
pub const MAX_POLL_TIMEOUT_SECS: u32 = 50;

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
    /// The bot's memory (the file store); without it an update answered
    /// but not yet confirmed to Telegram when the process dies is answered
    /// again after a restart.
    pub memory: Option<Memory>,
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
            memory: None,
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
pub async fn run(
    api: &BotApi,
    bot: &Bot,
    options: &PollOptions,
    mut stop: Stop,
) -> Result<Summary, PollError> {
    let mut summary = Summary::default();
    let bot = &bot.clone().with_memory(options.memory.is_some());
    let responder = Responder {
        api,
        bot,
        memory: options.memory.as_ref(),
    };
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
    tracing::info!(
        timeout_secs = options.timeout_secs,
        "polling for updates; Ctrl-C to stop"
    );
    let mut offset: Option<UpdateId> = None;
    'polling: while !stop.requested() {
        let request = GetUpdates {
            offset,
            limit: Some(options.limit.clamp(1, 100)),
            timeout: Some(options.timeout_secs.min(MAX_POLL_TIMEOUT_SECS)),
            allowed_updates: options.allowed_updates.clone(),
        };
        let mut waits = stop.clone();
        let batch = tokio::select! {
            batch = retry(&policy, &mut waits, "getUpdates", || api.get_updates(&request)) => batch,
            // Nothing is in hand during a long poll: abandon it.
            _ = stop.requested_now() => break 'polling,
        };
        let updates = match batch {
            Ok(updates) => updates,
            Err(GaveUp::Stopped(_)) => break 'polling,
            Err(GaveUp::Failed(error)) => {
                confirm(api, offset, &mut summary).await;
                return Err(PollError::from_api(error));
            }
        };
        for update in updates {
            if offset.is_some_and(|o| update.id < o) {
                continue; // confirmed already; a server that repeats it is wrong
            }
            let handled = responder.answer(&update, 0, &policy, &mut stop).await;
            match (handled.outcome, handled.error) {
                (Outcome::ConfigurationFailure, Some(HandlingError::Api(error))) => {
                    confirm(api, offset, &mut summary).await;
                    return Err(PollError::Configuration(error));
                }
                (Outcome::ConfigurationFailure, Some(HandlingError::Store(error))) => {
                    confirm(api, offset, &mut summary).await;
                    return Err(PollError::Store(error));
                }
                // The polling policy retries these until a stop is asked
                // for: the update stays unconfirmed and comes again on the
                // next start.
                (Outcome::RetryableFailure { .. } | Outcome::ConfigurationFailure, _) => {
                    break 'polling
                }
                _ => {}
            }
            let Some(next) = update.id.0.checked_add(1) else {
                confirm(api, offset, &mut summary).await;
                return Err(PollError::LastUpdateId(update.id.0));
            };
            offset = Some(UpdateId(next));
            summary.handled += 1;
            // Finish the update in hand, then stop: the rest of the batch
            // stays unconfirmed and comes again on the next start.
            if stop.requested() {
                break 'polling;
            }
        }
    }
    confirm(api, offset, &mut summary).await;
    Ok(summary)
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
