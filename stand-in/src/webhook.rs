//! Webhook delivery, as Telegram's Bot API server does it (its
//! WebhookActor): each queued update is POSTed to the webhook URL with the
//! secret header; any 2xx is success; anything else, a redirect, a dropped
//! connection or no answer within 60 s is a failure, retried with backoff
//! (at once, then 2, 4, ... 64 s, then 60-120 s at random), or after the
//! answer's Retry-After, which does not double the backoff. Updates of one
//! queue (`kinds::webhook_queue_id`: a chat's messages, a user's callback
//! queries, ...) go one at a time, in order; different queues go
//! concurrently, one per connection. A new webhook has one connection until
//! its first success, then up to max_connections, and is back to one when no
//! delivery succeeded for 10 s. An update older than its lifetime is
//! dropped, and so is one whose next attempt would come after it
//! (WebhookActor::on_update_error).
//!
//! Time can be scaled (`Options::time_scale`) so tests wait milliseconds
//! where Telegram waits seconds.

use crate::clock;
use crate::shared::Shared;
use crate::state::{Attempts, DeliveryError, QueueKey, Queued, State};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::time::Instant;

/// Telegram gives up on a webhook answer after this long, and closes a
/// connection idle for as long (the HttpOutboundConnection's timeout).
const READ_TIMEOUT_SECS: f64 = 60.0;
/// Retry-After is honoured up to an hour.
const MAX_RETRY_AFTER_SECS: u64 = 3600;
/// With no success for this long, a webhook is back to one connection.
const SLOW_START_SECS: f64 = 10.0;

/// The longest backoff, before its random spread (WEBHOOK_MAX_RESEND_TIMEOUT).
const MAX_RESEND_SECS: f64 = 60.0;

/// The wait before the next attempt after a failed one, and the update's
/// delay afterwards, as WebhookActor::on_update_error computes them: a
/// Retry-After is used as given and leaves the delay as it was; without
/// one, the first failure is retried at once and each later one doubles the
/// delay, up to a random 60-120 s (spread so that many stuck webhooks do not
/// retry in step).
pub(crate) fn next_wait(delay_secs: f64, failures: u32, retry_after: Option<u64>) -> (f64, f64) {
    match retry_after {
        Some(seconds) => (seconds as f64, delay_secs),
        None if failures == 0 => (0.0, delay_secs),
        None => {
            let cap = MAX_RESEND_SECS + fastrand::u64(0..60_000) as f64 / 1000.0;
            let delay = (delay_secs * 2.0).min(cap);
            (delay, delay)
        }
    }
}

/// Retry-After as Telegram reads it: whole seconds, 1-3600; anything else
/// means normal backoff.
pub(crate) fn retry_after_secs(header: Option<&str>) -> Option<u64> {
    header?
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .map(|s| s.min(MAX_RETRY_AFTER_SECS))
}

/// Runs for the life of the stand-in, delivering whenever a webhook is set.
pub(crate) async fn run(shared: Arc<Shared>, http: reqwest::Client) {
    loop {
        let wake = shared.updates_arrived.notified();
        let next = start_deliveries(&shared, &http);
        match next {
            Some(at) => {
                let _ = tokio::time::timeout_at(at, wake).await;
            }
            None => wake.await,
        }
    }
}

/// How many connections the webhook wants open, as
/// WebhookActor::create_new_connections: one per queue with loaded updates,
/// up to max_connections; only one before the first connection
/// (`was_checked_`) and while no delivery succeeded for 10 s
/// (`last_success_time_`), at least one otherwise.
fn wanted_connections(
    shared: &Shared,
    state: &State,
    queues: usize,
    max: usize,
    now: Instant,
) -> usize {
    let mut wanted = queues.min(max);
    if !state.delivery.was_checked {
        wanted = 1;
    }
    let active = state
        .delivery
        .last_success
        .is_some_and(|at| now <= at + shared.scaled(SLOW_START_SECS));
    if active {
        wanted.max(1)
    } else {
        wanted.min(1)
    }
}

/// Starts every delivery that may start now; returns when to look again.
fn start_deliveries(shared: &Arc<Shared>, http: &reqwest::Client) -> Option<Instant> {
    let mut state = shared.state();
    let webhook = state.webhook.clone()?;
    let now = Instant::now();
    drop_expired(&mut state, now);
    let idle_timeout = shared.scaled(READ_TIMEOUT_SECS);
    state
        .delivery
        .idle
        .retain(|since| now.duration_since(*since) < idle_timeout);
    let max_connections = webhook.max_connections.max(1) as usize;
    // The server loads at most twice max_connections updates at a time, in
    // order (WebhookActor::load_updates); later ones wait to be loaded even
    // when their queue is free.
    let loaded = state.pending.len().min(2 * max_connections);
    // Each loaded queue's head: its first loaded update.
    let mut seen = HashSet::new();
    let heads: Vec<&Queued> = state
        .pending
        .iter()
        .take(loaded)
        .filter(|u| seen.insert(u.queue))
        .collect();
    let wanted = wanted_connections(shared, &state, heads.len(), max_connections, now);
    // A head is ready at its next attempt; the earliest goes first, then the
    // lowest queue (WebhookActor::send_update takes `queues_` in order).
    let mut ready: Vec<(Instant, QueueKey, Queued)> = heads
        .into_iter()
        .filter(|u| !state.delivery.in_flight.contains(&u.id))
        .map(|u| {
            let at = state
                .delivery
                .attempts
                .get(&u.id)
                .map_or(u.queued_at, |a| a.next_at);
            (at, u.queue, u.clone())
        })
        .collect();
    ready.sort_by_key(|(at, queue, _)| (*at, *queue));
    let delivery = &mut state.delivery;
    let open = delivery.idle.len() + delivery.in_flight.len();
    // Connections are made only up to the number wanted; ones already open
    // stay in use until they close.
    for _ in open..wanted {
        delivery.idle.push(now);
        delivery.was_checked = true;
    }
    let mut next_look = None;
    let mut to_start = Vec::new();
    for (at, _, update) in ready {
        if at > now {
            next_look = Some(at);
            break;
        }
        if delivery.idle.pop().is_none() {
            break;
        }
        delivery.in_flight.insert(update.id);
        to_start.push(update);
    }
    let generation = delivery.generation;
    for update in to_start {
        let shared = shared.clone();
        let http = http.clone();
        let url = webhook.url.clone();
        let secret = webhook.secret_token.clone();
        tokio::spawn(async move {
            let result = post(&shared, &http, &url, secret.as_deref(), &update.update).await;
            finish(&shared, &update, generation, result);
        });
    }
    next_look
}

/// Drops updates past their lifetime that are not being delivered.
fn drop_expired(state: &mut State, now: Instant) {
    let delivery = &mut state.delivery;
    state.pending.retain(|u| {
        let keep = u.expires_at > now || delivery.in_flight.contains(&u.id);
        if !keep {
            delivery.attempts.remove(&u.id);
        }
        keep
    });
}

/// Why a POST failed, in getWebhookInfo's words, and the Retry-After it
/// asked for.
pub(crate) struct Failure {
    message: String,
    retry_after: Option<u64>,
}

/// How one POST went, and whether its connection stays open for the next.
pub(crate) struct Posted {
    failure: Option<Failure>,
    keep_alive: bool,
}

impl Posted {
    fn failed(message: &str) -> Self {
        // No answer: the connection is gone.
        Posted {
            failure: Some(Failure {
                message: message.to_owned(),
                retry_after: None,
            }),
            keep_alive: false,
        }
    }
}

/// Whether an answer leaves its connection open: HTTP/1.1 unless it says
/// `Connection: close`, HTTP/1.0 only when it says `keep-alive`
/// (WebhookActor::handle closes a connection whose answer is not
/// keep-alive).
fn keeps_alive(response: &reqwest::Response) -> bool {
    let connection = response
        .headers()
        .get(reqwest::header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match response.version() {
        reqwest::Version::HTTP_09 | reqwest::Version::HTTP_10 => connection.contains("keep-alive"),
        _ => !connection.contains("close"),
    }
}

async fn post(
    shared: &Shared,
    http: &reqwest::Client,
    url: &str,
    secret: Option<&str>,
    update: &Value,
) -> Posted {
    let mut request = http
        .post(url)
        .timeout(shared.scaled(READ_TIMEOUT_SECS))
        .header("content-type", "application/json")
        .body(update.to_string());
    if let Some(secret) = secret {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
    }
    match request.send().await {
        Ok(response) => {
            let keep_alive = keeps_alive(&response);
            let status = response.status();
            if status.is_success() {
                return Posted {
                    failure: None,
                    keep_alive,
                };
            }
            let retry_after = retry_after_secs(
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
            );
            let message = format!(
                "Wrong response from the webhook: {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            Posted {
                failure: Some(Failure {
                    message: message.trim_end().to_owned(),
                    retry_after,
                }),
                keep_alive,
            }
        }
        Err(error) if error.is_timeout() => Posted::failed("Read timeout expired"),
        Err(error) if error.is_connect() => Posted::failed("Connection refused"),
        Err(_) => Posted::failed("Connection reset by peer"),
    }
}

/// Records how delivering `update` went (WebhookActor::handle, on_update_ok,
/// on_update_error), for the webhook of `generation`.
fn finish(shared: &Shared, update: &Queued, generation: u64, posted: Posted) {
    let id = update.id;
    let now = Instant::now();
    let mut state = shared.state();
    state.delivery.in_flight.remove(&id);
    // A webhook set meanwhile has connections, backoff and errors of its
    // own; the answer still tells whether the update arrived.
    let current = state.delivery.generation == generation;
    if current && posted.keep_alive {
        state.delivery.idle.push(now);
    }
    match posted.failure {
        None => {
            state.pending.retain(|u| u.id != id);
            state.delivery.attempts.remove(&id);
            if current {
                state.delivery.last_success = Some(now);
            }
            state.delivered.push(id);
            state.delivery_log.push((id, "ok".to_owned()));
        }
        Some(Failure {
            message,
            retry_after,
        }) => {
            state.delivery_log.push((id, message.clone()));
            if current {
                fail(shared, &mut state, update, now, retry_after);
                if let Some(webhook) = state.webhook.as_mut() {
                    webhook.last_error = Some(DeliveryError {
                        date: clock::now(),
                        message,
                    });
                }
            }
        }
    }
    drop(state);
    shared.updates_arrived.notify_waiters();
}

/// Schedules the next attempt after a failed one, or drops the update when
/// that attempt would come after its lifetime (WebhookActor::on_update_error).
fn fail(
    shared: &Shared,
    state: &mut State,
    update: &Queued,
    now: Instant,
    retry_after: Option<u64>,
) {
    let attempts = state
        .delivery
        .attempts
        .entry(update.id)
        .or_insert(Attempts {
            failures: 0,
            delay_secs: 1.0,
            next_at: now,
        });
    let (wait, delay_secs) = next_wait(attempts.delay_secs, attempts.failures, retry_after);
    let next_at = now + shared.scaled(wait);
    if next_at > update.expires_at {
        state.delivery.attempts.remove(&update.id);
        state.pending.retain(|u| u.id != update.id);
    } else {
        attempts.delay_secs = delay_secs;
        attempts.failures += 1;
        attempts.next_at = next_at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The waits after `retry_afters.len()` failures in a row.
    fn waits(retry_afters: &[Option<u64>]) -> Vec<f64> {
        let mut delay = 1.0;
        let mut waits = Vec::new();
        for (failures, retry_after) in retry_afters.iter().enumerate() {
            let (wait, next_delay) = next_wait(delay, failures as u32, *retry_after);
            delay = next_delay;
            waits.push(wait);
        }
        waits
    }

    #[test]
    fn backoff_follows_telegrams_schedule() {
        let waits = waits(&[None; 20]);
        assert_eq!(waits[..6], [0.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
        // 64 s, unless the random cap drawn for it is lower
        // (WebhookActor::on_update_error takes the smaller).
        assert!((60.0..=64.0).contains(&waits[6]), "{}", waits[6]);
        for wait in &waits[7..] {
            assert!((60.0..120.0).contains(wait), "{wait}");
        }
    }

    #[test]
    fn a_retry_after_is_waited_as_given_and_does_not_double_the_delay() {
        assert_eq!(
            waits(&[None, None, Some(30), Some(5), None, None]),
            [0.0, 2.0, 30.0, 5.0, 4.0, 8.0]
        );
    }

    #[test]
    fn retry_after_is_whole_seconds_capped_at_an_hour() {
        assert_eq!(retry_after_secs(Some("5")), Some(5));
        assert_eq!(retry_after_secs(Some("99999")), Some(3600));
        assert_eq!(retry_after_secs(Some("0")), None);
        assert_eq!(retry_after_secs(Some("1.5")), None);
        assert_eq!(
            retry_after_secs(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(retry_after_secs(None), None);
    }
}
