//! One retry policy for every Bot API call the shells make: when a failed
//! call is tried again, after how long, and when the caller gets the failure
//! back instead. The webhook, the polling loop and the command-line tool use
//! the same rule for Telegram's `retry_after` and differ only in settings.
//!
//! Not `backon`: its jitter adds up to a whole delay on top (past the cap),
//! and its loop knows neither a deadline nor a stop that ends a wait without
//! one more call. The schedule itself is a few lines.

use crate::client::{ApiError, Failure, MAX_RETRY_AFTER};
use crate::error::Chain;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// A wait is taken only if at least this much time is left after it before
/// the deadline, so that the call after it can still be made.
pub const MIN_CALL_TIME: Duration = Duration::from_millis(500);
/// The shortest wait for a `retry_after`: a server answering 0 is not
/// hammered.
const MIN_RETRY_AFTER: Duration = Duration::from_millis(100);

/// Capped exponential backoff with jitter, for failures that carry no
/// `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The wait before retry number `retry` (0-based): a random time between
    /// half and all of `initial * 2^retry`, capped at `max`. The randomness
    /// keeps many pollers that failed together from retrying together.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(2u32.saturating_pow(retry.min(16)))
            .min(self.max);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=spread))
    }
}

/// When to try a failed call again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in all, the first included; `None` for no limit.
    pub max_attempts: Option<u32>,
    /// Waits for retryable failures without `retry_after`; `None` gives those
    /// back at once.
    pub backoff: Option<Backoff>,
    /// The longest `retry_after` waited out; a longer one is given back.
    pub max_retry_after: Duration,
    /// When the caller must have its answer: no wait is taken that would
    /// leave less than [`MIN_CALL_TIME`] before it. (The client, given the
    /// same deadline, starts no call past it.)
    pub deadline: Option<Instant>,
}

impl RetryPolicy {
    /// A webhook invocation: Telegram delivers the update again after any
    /// error status, so a failure is given back at once, except a 429 whose
    /// wait fits before the deadline, which is waited out once.
    pub fn webhook(deadline: Instant) -> Self {
        RetryPolicy {
            max_attempts: Some(2),
            backoff: None,
            max_retry_after: MAX_RETRY_AFTER,
            deadline: Some(deadline),
        }
    }

    /// The polling loop: nobody delivers the update again, so retryable
    /// failures are retried until they succeed or a stop is asked for.
    pub fn polling(backoff: Backoff) -> Self {
        RetryPolicy {
            max_attempts: None,
            backoff: Some(backoff),
            max_retry_after: MAX_RETRY_AFTER,
            deadline: None,
        }
    }

    /// A call worth a few quick tries and no long wait, such as confirming
    /// updates on the way out.
    pub fn few_quick_tries() -> Self {
        RetryPolicy {
            max_attempts: Some(3),
            backoff: Some(Backoff {
                initial: Duration::from_millis(200),
                max: Duration::from_secs(1),
            }),
            max_retry_after: Duration::ZERO,
            deadline: None,
        }
    }

    /// A command run by a person: one more call after a short 429 (setWebhook
    /// allows one call a second), nothing else.
    pub fn once_more_if_limited() -> Self {
        RetryPolicy {
            max_attempts: Some(2),
            backoff: None,
            max_retry_after: Duration::from_secs(10),
            deadline: None,
        }
    }

    /// How long to wait before trying again after `attempts` calls, the last
    /// of which failed with `error`; `None` to give the failure back.
    pub fn wait_after(&self, attempts: u32, error: &ApiError) -> Option<Duration> {
        if self.max_attempts.is_some_and(|max| attempts >= max) {
            return None;
        }
        let wait = match error.failure() {
            Failure::Retryable {
                retry_after: Some(wait),
            } => (wait <= self.max_retry_after).then_some(wait.max(MIN_RETRY_AFTER))?,
            Failure::Retryable { retry_after: None } => {
                self.backoff?.delay(attempts.saturating_sub(1))
            }
            Failure::Permanent | Failure::Configuration => return None,
        };
        match self.deadline {
            Some(deadline)
                if wait.saturating_add(MIN_CALL_TIME)
                    > deadline.saturating_duration_since(Instant::now()) =>
            {
                None
            }
            _ => Some(wait),
        }
    }
}

/// A request to stop, seen by waits: a stop ends a wait between calls and
/// is never noticed during a call, so no call is cut off halfway (an action
/// is either carried out or not tried again).
#[derive(Debug, Clone)]
pub struct Stop(Option<watch::Receiver<bool>>);

impl Stop {
    /// For callers that are never stopped (a webhook invocation).
    pub fn never() -> Self {
        Stop(None)
    }

    /// Stops once the sender sends `true`, or is dropped.
    pub fn on(receiver: watch::Receiver<bool>) -> Self {
        Stop(Some(receiver))
    }

    pub fn requested(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|receiver| *receiver.borrow() || receiver.has_changed().is_err())
    }

    /// Resolves when a stop is asked for; never for [`Stop::never`].
    pub async fn requested_now(&mut self) {
        match &mut self.0 {
            Some(receiver) => {
                // An error means the sender is gone: nobody can ask any more,
                // which counts as asking.
                let _ = receiver.wait_for(|stop| *stop).await;
            }
            None => std::future::pending().await,
        }
    }

    /// Sleeps for `wait`; true when a stop was asked for first.
    pub async fn sleep(&mut self, wait: Duration) -> bool {
        if self.requested() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => self.requested(),
            _ = self.requested_now() => true,
        }
    }
}

/// Why [`retry`] gave up.
#[derive(Debug)]
pub enum GaveUp {
    /// The policy gives this failure back to the caller.
    Failed(ApiError),
    /// A stop was asked for while waiting to retry after this failure.
    Stopped(ApiError),
}

/// Calls `call` until it succeeds, the policy gives its failure back, or a
/// stop is asked for during a wait. Each retry is logged.
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    stop: &mut Stop,
    method: &'static str,
    mut call: F,
) -> Result<T, GaveUp>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempts = 0u32;
    loop {
        let error = match call().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        attempts = attempts.saturating_add(1);
        let Some(wait) = policy.wait_after(attempts, &error) else {
            return Err(GaveUp::Failed(error));
        };
        if stop.requested() {
            return Err(GaveUp::Stopped(error));
        }
        let retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        // Waiting out Telegram's own rate limit is expected; anything else
        // is a failure worth a warning.
        if matches!(
            error.failure(),
            Failure::Retryable {
                retry_after: Some(_)
            }
        ) {
            tracing::info!(method, attempts, retry_in_ms, "rate limited; waiting");
        } else {
            tracing::warn!(
                method,
                attempts,
                error = %Chain(&error),
                retry_in_ms,
                "Bot API call failed; retrying"
            );
        }
        if stop.sleep(wait).await {
            return Err(GaveUp::Stopped(error));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: u16, retry_after: Option<u64>) -> ApiError {
        ApiError::Telegram {
            method: "sendMessage",
            code,
            description: "test".to_owned(),
            retry_after: retry_after.map(Duration::from_secs),
            migrate_to_chat_id: None,
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        for retry in 0..20 {
            let ceiling = Duration::from_secs(1 << retry.min(6)).min(Duration::from_secs(60));
            let wait = backoff.delay(retry);
            assert!(wait >= ceiling / 2 && wait <= ceiling, "{retry}: {wait:?}");
        }
    }

    #[test]
    fn polling_honours_retry_after_and_backs_off_otherwise() {
        let policy = RetryPolicy::polling(Backoff::default());
        assert_eq!(
            policy.wait_after(5, &failure(429, Some(7))),
            Some(Duration::from_secs(7))
        );
        let wait = policy.wait_after(1, &failure(500, None)).unwrap();
        assert!(wait >= Duration::from_millis(500) && wait <= Duration::from_secs(1));
        assert_eq!(policy.wait_after(1, &failure(403, None)), None);
        assert_eq!(policy.wait_after(1, &failure(401, None)), None);
    }

    #[test]
    fn the_webhook_waits_out_a_429_once_and_only_when_it_fits_before_the_deadline() {
        let policy = RetryPolicy::webhook(Instant::now() + Duration::from_secs(10));
        assert_eq!(
            policy.wait_after(1, &failure(429, Some(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(policy.wait_after(2, &failure(429, Some(2))), None);
        assert_eq!(policy.wait_after(1, &failure(429, Some(10))), None);
        // Telegram delivers again after a 5xx: nothing to wait for here.
        assert_eq!(policy.wait_after(1, &failure(500, None)), None);
    }

    #[test]
    fn a_person_waits_only_for_a_short_rate_limit() {
        let policy = RetryPolicy::once_more_if_limited();
        assert!(policy.wait_after(1, &failure(429, Some(1))).is_some());
        assert_eq!(policy.wait_after(1, &failure(429, Some(60))), None);
        assert_eq!(policy.wait_after(1, &failure(502, None)), None);
    }

    #[tokio::test]
    async fn a_stop_ends_a_wait_at_once() {
        let (sender, receiver) = watch::channel(false);
        let mut stop = Stop::on(receiver);
        let started = Instant::now();
        let sleeping = tokio::spawn(async move { stop.sleep(Duration::from_secs(60)).await });
        sender.send(true).unwrap();
        assert!(sleeping.await.unwrap());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!Stop::never().requested());
    }
}
