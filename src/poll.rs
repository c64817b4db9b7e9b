//! The long-polling shell: asks Telegram for updates with getUpdates and runs
//! the same bot and Bot API client as the webhook, on any machine.
//!
//! An update is confirmed (the offset moves past it) only once its replies
//! were sent or failed for good, so a crash or a stop never loses one; a stop
//! finishes the update in hand and confirms it before exiting, so a restart
//! does not repeat one either.

use crate::bot::Bot;
use crate::client::{error_chain, ApiError, BotApi, Failure};
use crate::delivery::{log_update, send, Outcome};
use crate::telegram::{GetUpdates, SendMessage, Update, UpdateId};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

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
    pub backoff: Backoff,
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
        }
    }
}

/// Capped exponential backoff with jitter, for retryable failures.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (0-based): Telegram's
    /// `retry_after` when it gave one, else a random time between half and
    /// all of `initial * 2^attempt`, capped at `max`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.max(self.initial.min(Duration::from_millis(100)));
        }
        let ceiling = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.max);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_nanos() as u64;
        let jitter = if spread == 0 {
            0
        } else {
            random_u64() % spread
        };
        half + Duration::from_nanos(jitter)
    }
}

/// Randomness without a dependency: std seeds every `RandomState` afresh.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0);
    hasher.finish()
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

/// Polls until `stop` turns true or an error that retrying cannot fix.
pub async fn run(
    api: &BotApi,
    bot: &Bot,
    options: &PollOptions,
    mut stop: watch::Receiver<bool>,
) -> Result<Summary, PollError> {
    let mut summary = Summary::default();
    let deleted = retry(&options.backoff, &mut stop, "deleteWebhook", || {
        api.delete_webhook(options.drop_pending_updates)
    })
    .await;
    match deleted {
        Step::Done(_) => {}
        Step::Stopped => return Ok(summary),
        Step::Failed(error) => return Err(PollError::from_api(error)),
    }
    tracing::info!(
        timeout_secs = options.timeout_secs,
        "polling for updates; Ctrl-C to stop"
    );
    let mut offset: Option<UpdateId> = None;
    let mut attempt = 0;
    'polling: while !*stop.borrow() {
        let request = GetUpdates {
            offset,
            limit: Some(options.limit.clamp(1, 100)),
            timeout: Some(options.timeout_secs.min(MAX_POLL_TIMEOUT_SECS)),
            allowed_updates: options.allowed_updates.clone(),
        };
        let batch = tokio::select! {
            batch = api.get_updates(&request) => batch,
            // Nothing is in hand during a long poll: abandon it.
            _ = stop.changed() => break 'polling,
        };
        let updates = match batch {
            Ok(updates) => {
                attempt = 0;
                updates
            }
            Err(error) => match error.failure() {
                Failure::Retryable { retry_after } => {
                    let wait = options.backoff.delay(attempt, retry_after);
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(error = %error_chain(&error), retry_in_ms = wait.as_millis() as u64, "getUpdates failed; retrying");
                    if sleep_unless_stopped(wait, &mut stop).await {
                        break 'polling;
                    }
                    continue;
                }
                _ => {
                    confirm(api, offset, &mut summary).await;
                    return Err(PollError::from_api(error));
                }
            },
        };
        for update in updates {
            if offset.is_some_and(|o| update.id < o) {
                continue; // confirmed already; a server that repeats it is wrong
            }
            match handle(api, bot, &update, &options.backoff, &mut stop).await {
                Handled::Done => {
                    offset = Some(UpdateId(update.id.0 + 1));
                    summary.handled += 1;
                }
                Handled::Stopped => break 'polling,
                Handled::Misconfigured(error) => {
                    confirm(api, offset, &mut summary).await;
                    return Err(PollError::Configuration(error));
                }
            }
            // Finish the update in hand, then stop: the rest of the batch
            // stays unconfirmed and comes again on the next start.
            if *stop.borrow() {
                break 'polling;
            }
        }
    }
    confirm(api, offset, &mut summary).await;
    Ok(summary)
}

enum Handled {
    Done,
    Stopped,
    Misconfigured(ApiError),
}

async fn handle(
    api: &BotApi,
    bot: &Bot,
    update: &Update,
    backoff: &Backoff,
    stop: &mut watch::Receiver<bool>,
) -> Handled {
    let started = Instant::now();
    let replies = bot.replies(update);
    let mut outcome = if replies.is_empty() {
        Outcome::Ignored
    } else {
        Outcome::Answered
    };
    let mut decisive = None;
    for reply in &replies {
        match retry(backoff, stop, "sendMessage", || send_one(api, reply)).await {
            Step::Done(()) => {}
            Step::Stopped => {
                let outcome = Outcome::RetryableFailure { retry_after: None };
                log_update(update, outcome, started, None);
                return Handled::Stopped;
            }
            Step::Failed(error) if error.failure() == Failure::Permanent => {
                outcome = Outcome::PermanentFailure;
                decisive = Some(error);
            }
            Step::Failed(error) => {
                log_update(update, Outcome::ConfigurationFailure, started, Some(&error));
                return Handled::Misconfigured(error);
            }
        }
    }
    log_update(update, outcome, started, decisive.as_ref());
    Handled::Done
}

async fn send_one(api: &BotApi, reply: &SendMessage) -> Result<(), ApiError> {
    send(api, reply, None).await
}

enum Step<T> {
    Done(T),
    Stopped,
    /// A failure that retrying does not fix.
    Failed(ApiError),
}

/// Calls `operation` until it succeeds, fails for good, or `stop` turns true
/// during a wait. Retryable failures wait with backoff, and are logged.
async fn retry<T, F, Fut>(
    backoff: &Backoff,
    stop: &mut watch::Receiver<bool>,
    what: &'static str,
    mut operation: F,
) -> Step<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 0;
    loop {
        match operation().await {
            Ok(value) => return Step::Done(value),
            Err(error) => match error.failure() {
                Failure::Retryable { retry_after } => {
                    let wait = backoff.delay(attempt, retry_after);
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(method = what, error = %error_chain(&error), retry_in_ms = wait.as_millis() as u64, "retrying");
                    if sleep_unless_stopped(wait, stop).await {
                        return Step::Stopped;
                    }
                }
                _ => return Step::Failed(error),
            },
        }
    }
}

/// Sleeps; returns true when `stop` turned true meanwhile.
async fn sleep_unless_stopped(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => *stop.borrow(),
        changed = stop.changed() => changed.is_err() || *stop.borrow(),
    }
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
    for attempt in 0..3u32 {
        match api.get_updates(&request).await {
            Ok(_) => {
                summary.confirmed_offset = Some(offset);
                tracing::info!(offset = offset.0, "confirmed handled updates");
                return;
            }
            Err(error) => {
                tracing::warn!(attempt, error = %error_chain(&error), "could not confirm handled updates");
                if error.failure() != (Failure::Retryable { retry_after: None }) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    tracing::warn!(
        offset = offset.0,
        "updates below this offset were handled but not confirmed; they will be answered again on the next start"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        for attempt in 0..20 {
            let ceiling = Duration::from_secs(1 << attempt.min(6)).min(Duration::from_secs(60));
            let wait = backoff.delay(attempt, None);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{attempt}: {wait:?}"
            );
        }
    }

    #[test]
    fn backoff_honours_retry_after() {
        let backoff = Backoff::default();
        assert_eq!(
            backoff.delay(5, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }

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
