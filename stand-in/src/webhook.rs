//! Webhook delivery, as Telegram's Bot API server does it (its
//! WebhookActor): each queued update is POSTed to the webhook URL with the
//! secret header; any 2xx is success; anything else, a redirect, a dropped
//! connection or no answer within 60 s is a failure, retried with backoff
//! (at once, then 2, 4, ... 64 s, then 60-120 s at random), or after the
//! answer's Retry-After, which does not double the backoff. Updates of one
//! chat go one at a time, in order; different chats go concurrently, up to
//! max_connections. An update older than its lifetime is dropped, and so is
//! one whose next attempt would come after it (WebhookActor::on_update_error).
//!
//! Time can be scaled (`Options::time_scale`) so tests wait milliseconds
//! where Telegram waits seconds.

use crate::clock;
use crate::shared::Shared;
use crate::state::{update_id, Attempts, DeliveryError, State};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Telegram gives up on a webhook answer after this long.
const READ_TIMEOUT_SECS: f64 = 60.0;
/// Retry-After is honoured up to an hour.
const MAX_RETRY_AFTER_SECS: u64 = 3600;
/// Lifetimes, in Telegram seconds.
const MESSAGE_LIFETIME_SECS: f64 = 86_400.0;
const CALLBACK_QUERY_LIFETIME_SECS: f64 = 150.0;
const INLINE_QUERY_LIFETIME_SECS: f64 = 30.0;
/// With no success for this long, Telegram falls back to one connection.
const SLOW_START_SECS: f64 = 10.0;

/// Which queue an update waits in: a chat's for messages, a user's for
/// callback and inline queries, its own otherwise.
pub(crate) fn queue_key(update: &Value) -> String {
    let Some(object) = update.as_object() else {
        return "none".to_owned();
    };
    for (kind, payload) in object {
        let chat = |p: &Value| {
            p.get("chat")
                .and_then(|c| c.get("id"))
                .and_then(Value::as_i64)
        };
        let user = |p: &Value| {
            p.get("from")
                .and_then(|c| c.get("id"))
                .and_then(Value::as_i64)
        };
        let key = match kind.as_str() {
            "message"
            | "edited_message"
            | "channel_post"
            | "edited_channel_post"
            | "business_message"
            | "edited_business_message" => chat(payload).map(|c| format!("chat:{c}")),
            "callback_query"
            | "inline_query"
            | "chosen_inline_result"
            | "shipping_query"
            | "pre_checkout_query" => user(payload).map(|u| format!("user:{u}")),
            "my_chat_member" | "chat_member" | "chat_join_request" | "message_reaction" => {
                chat(payload).map(|c| format!("chat:{c}"))
            }
            _ => None,
        };
        if let Some(key) = key {
            return key;
        }
    }
    format!("update:{}", update_id(update))
}

fn kind(update: &Value) -> &str {
    update
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "update_id"))
        .map(String::as_str)
        .unwrap_or("")
}

/// How long an update may wait, in Telegram seconds from now.
pub(crate) fn lifetime_secs(update: &Value, now_unix: i64) -> f64 {
    match kind(update) {
        "callback_query" => CALLBACK_QUERY_LIFETIME_SECS,
        "inline_query" => INLINE_QUERY_LIFETIME_SECS,
        kind => {
            let date = update
                .get(kind)
                .and_then(|m| m.get("date"))
                .and_then(Value::as_i64)
                .filter(|d| *d > 0);
            match date {
                Some(date) => (MESSAGE_LIFETIME_SECS - (now_unix - date).max(0) as f64).max(0.0),
                None => MESSAGE_LIFETIME_SECS,
            }
        }
    }
}

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

/// Starts every delivery that may start now; returns when to look again.
fn start_deliveries(shared: &Arc<Shared>, http: &reqwest::Client) -> Option<Instant> {
    let mut state = shared.state();
    let webhook = state.webhook.clone()?;
    let now = Instant::now();
    // An update's lifetime runs from when it is queued, whether or not it
    // was tried yet (one waiting behind a stuck head expires too).
    let now_unix = clock::now();
    let fresh: Vec<(i64, Duration)> = state
        .pending
        .iter()
        .map(|u| (update_id(u), u))
        .filter(|(id, _)| !state.delivery.attempts.contains_key(id))
        .map(|(id, u)| (id, shared.scaled(lifetime_secs(u, now_unix))))
        .collect();
    for (id, lifetime) in fresh {
        state.delivery.attempts.insert(
            id,
            Attempts {
                failures: 0,
                delay_secs: 1.0,
                next_at: now,
                expires_at: now + lifetime,
            },
        );
    }
    drop_expired(&mut state, now);
    let slow = state.delivery.last_failure.is_some()
        && state
            .delivery
            .last_success
            .is_none_or(|s| now.duration_since(s) > shared.scaled(SLOW_START_SECS));
    let connections = if slow {
        1
    } else {
        webhook.max_connections.max(1) as usize
    };
    let mut seen_queues = HashSet::new();
    let mut blocked_queues = 0;
    let mut next_look: Option<Instant> = None;
    let mut to_start = Vec::new();
    let allowed = webhook.allowed_updates.clone().filter(|a| !a.is_empty());
    let in_flight = state.delivery.in_flight.len();
    for update in state.pending.iter() {
        if let Some(allowed) = &allowed {
            if !allowed.iter().any(|k| k == kind(update)) {
                continue;
            }
        }
        let key = queue_key(update);
        // Only the head of a queue may be in flight.
        if !seen_queues.insert(key) {
            continue;
        }
        let id = update_id(update);
        if state.delivery.in_flight.contains(&id) {
            continue;
        }
        let (failures, next_at) = state
            .delivery
            .attempts
            .get(&id)
            .map_or((0, now), |a| (a.failures, a.next_at));
        if failures > 0 {
            blocked_queues += 1;
        } else if blocked_queues >= 2 * connections {
            // Telegram stops taking on new chats while this many are stuck.
            continue;
        }
        if next_at > now {
            next_look = Some(next_look.map_or(next_at, |n| n.min(next_at)));
            continue;
        }
        if in_flight + to_start.len() >= connections {
            break;
        }
        to_start.push(update.clone());
    }
    // Updates filtered out by allowed_updates are dropped, not kept.
    if let Some(allowed) = &allowed {
        state
            .pending
            .retain(|u| allowed.iter().any(|k| k == kind(u)));
        let queued: HashSet<i64> = state.pending.iter().map(update_id).collect();
        state.delivery.attempts.retain(|id, _| queued.contains(id));
    }
    for update in to_start {
        let id = update_id(&update);
        state.delivery.in_flight.insert(id);
        let shared = shared.clone();
        let http = http.clone();
        let url = webhook.url.clone();
        let secret = webhook.secret_token.clone();
        tokio::spawn(async move {
            let result = post(&shared, &http, &url, secret.as_deref(), &update).await;
            finish(&shared, &update, &url, result);
        });
    }
    next_look
}

fn drop_expired(state: &mut State, now: Instant) {
    let expired: Vec<i64> = state
        .delivery
        .attempts
        .iter()
        .filter(|(id, a)| a.expires_at <= now && !state.delivery.in_flight.contains(id))
        .map(|(id, _)| *id)
        .collect();
    if expired.is_empty() {
        return;
    }
    state.pending.retain(|u| !expired.contains(&update_id(u)));
    for id in expired {
        state.delivery.attempts.remove(&id);
    }
}

/// How one POST went.
pub(crate) enum Posted {
    Success,
    Failure {
        message: String,
        retry_after: Option<u64>,
    },
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
        Ok(response) if response.status().is_success() => Posted::Success,
        Ok(response) => {
            let status = response.status();
            let retry_after = retry_after_secs(
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
            );
            Posted::Failure {
                message: format!(
                    "Wrong response from the webhook: {} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                )
                .trim_end()
                .to_owned(),
                retry_after,
            }
        }
        Err(error) if error.is_timeout() => Posted::Failure {
            message: "Read timeout expired".to_owned(),
            retry_after: None,
        },
        Err(error) if error.is_connect() => Posted::Failure {
            message: "Connection refused".to_owned(),
            retry_after: None,
        },
        Err(_) => Posted::Failure {
            message: "Connection reset by peer".to_owned(),
            retry_after: None,
        },
    }
}

fn finish(shared: &Shared, update: &Value, url: &str, result: Posted) {
    let id = update_id(update);
    let now = Instant::now();
    let mut state = shared.state();
    state.delivery.in_flight.remove(&id);
    // A webhook changed meanwhile: the result is about the old one.
    let current = state.webhook.as_ref().is_some_and(|w| w.url == url);
    match result {
        Posted::Success => {
            state.pending.retain(|u| update_id(u) != id);
            state.delivery.attempts.remove(&id);
            state.delivery.last_success = Some(now);
            state.delivered.push(id);
            state.delivery_log.push((id, "ok".to_owned()));
        }
        Posted::Failure {
            message,
            retry_after,
        } => {
            let lifetime = lifetime_secs(update, clock::now());
            let attempts = state.delivery.attempts.entry(id).or_insert(Attempts {
                failures: 0,
                delay_secs: 1.0,
                next_at: now,
                expires_at: now + shared.scaled(lifetime),
            });
            let (wait, delay_secs) = next_wait(attempts.delay_secs, attempts.failures, retry_after);
            let next_at = now + shared.scaled(wait);
            // WebhookActor::on_update_error drops an update at once when its
            // next attempt would come after its lifetime.
            if next_at > attempts.expires_at {
                state.delivery.attempts.remove(&id);
                state.pending.retain(|u| update_id(u) != id);
            } else {
                attempts.delay_secs = delay_secs;
                attempts.failures += 1;
                attempts.next_at = next_at;
            }
            state.delivery.last_failure = Some(now);
            state.delivery_log.push((id, message.clone()));
            if current {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(waits[..7], [0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
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

    #[test]
    fn queues_are_per_chat_for_messages_and_per_user_for_queries() {
        let message = json!({"update_id": 1, "message": {"chat": {"id": 7}, "from": {"id": 9}}});
        let edit = json!({"update_id": 2, "edited_message": {"chat": {"id": 7}}});
        let query = json!({"update_id": 3, "callback_query": {"from": {"id": 9}, "message": {"chat": {"id": 7}}}});
        let poll = json!({"update_id": 4, "poll": {"id": "x"}});
        assert_eq!(queue_key(&message), "chat:7");
        assert_eq!(queue_key(&edit), "chat:7");
        assert_eq!(queue_key(&query), "user:9");
        assert_eq!(queue_key(&poll), "update:4");
    }

    #[test]
    fn lifetimes_follow_the_update_kind() {
        let now = 1_800_000_000;
        let fresh = json!({"update_id": 1, "message": {"date": now}});
        let old = json!({"update_id": 1, "message": {"date": now - 86_000}});
        let query = json!({"update_id": 1, "callback_query": {"id": "1"}});
        assert_eq!(lifetime_secs(&fresh, now), 86_400.0);
        assert_eq!(lifetime_secs(&old, now), 400.0);
        assert_eq!(lifetime_secs(&query, now), 150.0);
    }
}
