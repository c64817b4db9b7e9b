//! The Bot API methods that decide how updates reach the bot: a webhook
//! (setWebhook, deleteWebhook, getWebhookInfo) or long polling (getUpdates),
//! never both at once.

use crate::answers::{ok_with_description, MethodResult, Refusal};
use crate::params::{allowed_update_kinds, boolean, integer};
use crate::shared::Shared;
use crate::state::{update_id, Webhook};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

const MAX_LONG_POLL: Duration = Duration::from_secs(50);

/// The port of an http(s) URL, explicit or implied by its scheme.
fn url_port(url: &str) -> Option<u16> {
    let (default, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (443, rest)
    } else {
        (80, url.strip_prefix("http://")?)
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    if let Some(literal) = host_port.strip_prefix('[') {
        let (_, after) = literal.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => port.parse().ok(),
            None => Some(default),
        };
    }
    match host_port.rsplit_once(':') {
        Some((_, port)) => port.parse().ok(),
        None => Some(default),
    }
}

/// What deleting a webhook (or setting an empty URL) answers.
fn deleted(had_webhook: bool) -> Value {
    ok_with_description(
        json!(true),
        if had_webhook {
            "Webhook was deleted"
        } else {
            "Webhook is already deleted"
        },
    )
}

pub(crate) fn set_webhook(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    let mut state = shared.state();
    // Telegram allows one setWebhook a second per bot, even an identical one.
    let now = Instant::now();
    if state
        .last_set_webhook
        .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
    {
        return Err(Refusal::too_many_requests(1));
    }
    state.last_set_webhook = Some(now);
    let url = params
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if url.is_empty() {
        return Ok(deleted(state.webhook.take().is_some()));
    }
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|prefix| url.starts_with(prefix));
    // Plain HTTP to this machine is allowed so that local runs need no
    // certificate; Telegram itself accepts HTTPS only.
    if !url.starts_with("https://") && !loopback {
        return Err(Refusal::bad_request(
            "bad webhook: An HTTPS URL must be provided for webhook",
        ));
    }
    if !loopback && !matches!(url_port(&url), Some(80 | 88 | 443 | 8443)) {
        return Err(Refusal::bad_request(
            "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
        ));
    }
    let secret_token = params
        .get("secret_token")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(secret) = &secret_token {
        if secret.len() > 256 {
            return Err(Refusal::bad_request("secret token is too long"));
        }
        let valid = secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(Refusal::bad_request(
                "secret token contains unallowed characters",
            ));
        }
    }
    let max_connections = integer(params.get("max_connections"))
        .unwrap_or(40)
        .clamp(1, 100) as u32;
    // Left out, the list set before stays; an empty list is kept as given
    // (getWebhookInfo shows it) and delivers every kind.
    let allowed_updates = match params.get("allowed_updates") {
        None | Some(Value::Null) => state
            .webhook
            .as_ref()
            .and_then(|w| w.allowed_updates.clone()),
        Some(value) => Some(allowed_update_kinds(value)?),
    };
    if boolean(params.get("drop_pending_updates")) {
        state.pending.clear();
    }
    let webhook = Webhook {
        url,
        secret_token: secret_token.filter(|s| !s.is_empty()),
        max_connections,
        allowed_updates,
        last_error: None,
    };
    let same = state.webhook.as_ref().is_some_and(|w| {
        w.url == webhook.url
            && w.secret_token == webhook.secret_token
            && w.max_connections == webhook.max_connections
            && w.allowed_updates == webhook.allowed_updates
    });
    state.webhook = Some(webhook);
    // A new webhook is tried at once, whatever the old one's backoff.
    state.delivery.attempts.clear();
    state.delivery.last_failure = None;
    Ok(ok_with_description(
        json!(true),
        if same {
            "Webhook is already set"
        } else {
            "Webhook was set"
        },
    ))
}

pub(crate) fn delete_webhook(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    let mut state = shared.state();
    if boolean(params.get("drop_pending_updates")) {
        state.pending.clear();
    }
    Ok(deleted(state.webhook.take().is_some()))
}

pub(crate) fn get_webhook_info(shared: &Shared) -> Value {
    let state = shared.state();
    let pending = state.pending.len();
    match &state.webhook {
        None => {
            json!({"url": "", "has_custom_certificate": false, "pending_update_count": pending})
        }
        Some(webhook) => {
            let mut info = json!({
                "url": webhook.url,
                "has_custom_certificate": false,
                "pending_update_count": pending,
                "max_connections": webhook.max_connections,
                "ip_address": "127.0.0.1",
            });
            if let Some(allowed) = &webhook.allowed_updates {
                info["allowed_updates"] = json!(allowed);
            }
            if let Some(error) = &webhook.last_error {
                info["last_error_date"] = json!(error.date);
                info["last_error_message"] = json!(error.message);
            }
            info
        }
    }
}

pub(crate) async fn get_updates(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    let offset = integer(params.get("offset")).unwrap_or(0);
    let limit = integer(params.get("limit")).unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(integer(params.get("timeout")).unwrap_or(0).max(0) as u64)
        .min(MAX_LONG_POLL);
    let deadline = tokio::time::Instant::now() + timeout;
    let generation = {
        let mut state = shared.state();
        if state.webhook.is_some() {
            return Err(Refusal::new(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            ));
        }
        // Unlike setWebhook, an explicit null is refused here, and an empty
        // list goes back to every kind.
        if let Some(value) = params.get("allowed_updates") {
            let kinds = allowed_update_kinds(value)?;
            state.allowed_updates = (!kinds.is_empty()).then_some(kinds);
        }
        state.poll_generation += 1;
        state.poll_generation
    };
    // A newer getUpdates ends any poll still waiting, as Telegram does.
    shared.updates_arrived.notify_waiters();
    loop {
        // Register interest before looking, so an update queued in between
        // still wakes this poll.
        let arrived = shared.updates_arrived.notified();
        {
            let mut state = shared.state();
            if state.poll_generation != generation {
                return Err(Refusal::new(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                ));
            }
            if offset > 0 {
                state.pending.retain(|u| update_id(u) >= offset);
            }
            // Kinds the bot did not ask for are dropped, not delivered.
            if let Some(allowed) = state.allowed_updates.clone() {
                state.pending.retain(|u| {
                    u.as_object()
                        .is_some_and(|o| o.keys().any(|k| allowed.contains(k)))
                });
            }
            let skip = if offset < 0 {
                state
                    .pending
                    .len()
                    .saturating_sub(offset.unsigned_abs() as usize)
            } else {
                0
            };
            let batch: Vec<Value> = state
                .pending
                .iter()
                .skip(skip)
                .take(limit)
                .cloned()
                .collect();
            if !batch.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(Value::Array(batch));
            }
        }
        if tokio::time::timeout_at(deadline, arrived).await.is_err() {
            return Ok(json!([]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_ports_are_read_as_telegram_reads_them() {
        assert_eq!(url_port("https://example.com/hook"), Some(443));
        assert_eq!(url_port("https://example.com:8443/hook"), Some(8443));
        assert_eq!(url_port("https://user@example.com:88"), Some(88));
        assert_eq!(url_port("https://[2001:db8::1]/x"), Some(443));
        assert_eq!(url_port("https://[2001:db8::1]:9000/x"), Some(9000));
        assert_eq!(url_port("http://example.com"), Some(80));
        assert_eq!(url_port("https://example.com:x/"), None);
    }
}
