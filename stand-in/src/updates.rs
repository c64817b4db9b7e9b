//! The Bot API methods that decide how updates reach the bot: a webhook
//! (setWebhook, deleteWebhook, getWebhookInfo) or long polling (getUpdates),
//! never both at once.

use crate::answers::{ok_with_description, MethodResult, Refusal};
use crate::kinds;
use crate::params::{allowed_update_kinds, arg_text, boolean, integer};
use crate::shared::Shared;
use crate::state::{State, Webhook};
use serde_json::{json, Map, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tokio::time::Instant;

/// The longest getUpdates timeout (LONG_POLL_MAX_TIMEOUT).
const MAX_LONG_POLL_SECS: i64 = 50;

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

/// What an unchanged setWebhook or deleteWebhook answers.
fn already(url: &str) -> Value {
    let description = if url.is_empty() {
        "Webhook is already deleted"
    } else {
        "Webhook is already set"
    };
    ok_with_description(json!(true), description)
}

/// What deleting a webhook (or setting an empty URL) answers
/// (Client::do_set_webhook).
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

/// Telegram's answer to getUpdates while a webhook is set.
const WEBHOOK_ACTIVE: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
/// What a waiting getUpdates is answered when another one takes over.
const OTHER_GET_UPDATES: &str =
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
/// What a waiting getUpdates is answered when a webhook is set.
const SET_WEBHOOK: &str = "Conflict: terminated by setWebhook request";

/// Ends the getUpdates call waiting for updates, if any, with `message`
/// (Client::abort_long_poll).
fn abort_long_poll(state: &mut State, message: &'static str) {
    if let Some(ticket) = state.polls.waiting.take() {
        state.polls.ended.insert(ticket, message);
    }
}

/// How long to wait before answering a conflict, as
/// Client::fail_query_conflict: at once, but not twice within 3 s; a later
/// one is answered 3 s late, so that two instances of a bot polling with one
/// token do not fight in a tight loop.
fn conflict_wait(shared: &Shared, state: &mut State) -> Duration {
    let now = Instant::now();
    if state.polls.next_conflict_at.is_none_or(|next| now >= next) {
        state.polls.next_conflict_at = Some(now + shared.scaled(3.0));
        Duration::ZERO
    } else {
        shared.scaled(3.0)
    }
}

async fn conflict(wait: Duration, message: &str) -> Refusal {
    tokio::time::sleep(wait).await;
    Refusal::new(409, message)
}

/// setWebhook, and deleteWebhook as `url` "" (both are
/// Client::process_set_webhook_query).
pub(crate) fn set_webhook(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    let url = params
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    change_webhook(shared, url, params)
}

pub(crate) fn delete_webhook(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    change_webhook(shared, String::new(), params)
}

/// The webhook a setWebhook or deleteWebhook asks for, as
/// Client::process_set_webhook_query reads it; nothing here is refused.
struct Asked {
    url: String,
    /// Given, even if "", for do_set_webhook to check.
    secret_given: String,
    secret_token: Option<String>,
    max_connections: u32,
    /// A non-empty `ip_address` fixes the address (get_webhook_fix_ip_address).
    ip_address: Option<String>,
    drop_pending: bool,
}

impl Asked {
    fn read(url: String, params: &Map<String, Value>) -> Self {
        let secret_given = arg_text(params, "secret_token");
        let secret_token = Some(secret_given.clone()).filter(|s| !s.is_empty());
        let ip_address = Some(arg_text(params, "ip_address")).filter(|ip| !ip.is_empty());
        // Client::get_webhook_max_connections; 0 without a URL.
        let max_connections = if url.is_empty() {
            0
        } else {
            integer(params.get("max_connections"))
                .unwrap_or(40)
                .clamp(1, 100) as u32
        };
        Asked {
            url,
            secret_given,
            secret_token,
            max_connections,
            ip_address,
            drop_pending: boolean(params.get("drop_pending_updates")),
        }
    }

    /// Whether the webhook stays as it is, with its delivery state and last
    /// error (Client::process_set_webhook_query): the same URL, secret,
    /// max_connections and fixed IP address, and nothing to drop. No
    /// webhook counts as one with an empty URL. allowed_updates is not
    /// compared, and a certificate, which always counts as a change, cannot
    /// reach the stand-in (it reads no multipart bodies).
    fn leaves(&self, webhook: Option<&Webhook>) -> bool {
        if self.drop_pending {
            return false;
        }
        match webhook {
            None => self.url.is_empty(),
            Some(w) => {
                w.url == self.url
                    && w.secret_token == self.secret_token
                    && w.max_connections == self.max_connections
                    && w.ip_address == self.ip_address
            }
        }
    }
}

/// One setWebhook with a URL a second per bot, even an identical one;
/// removing the webhook is not limited (Client::process_set_webhook_query).
fn rate_limit(shared: &Shared, state: &mut State, url: &str) -> Result<(), Refusal> {
    let now = Instant::now();
    if url.is_empty() {
        return Ok(());
    }
    if state.next_set_webhook_at.is_some_and(|next| now < next) {
        return Err(Refusal::too_many_requests(1));
    }
    state.next_set_webhook_at = Some(now + shared.scaled(1.0));
    Ok(())
}

/// The secret token's checks (Client::do_set_webhook).
fn check_secret(secret: &str) -> Result<(), Refusal> {
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
    Ok(())
}

/// td's IPAddress::is_reserved: the IPv4 blocks a webhook may not use.
fn reserved(ip: Ipv4Addr) -> bool {
    const BLOCKS: [([u8; 4], u32); 14] = [
        ([0, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([100, 64, 0, 0], 10),
        ([127, 0, 0, 0], 8),
        ([169, 254, 0, 0], 16),
        ([172, 16, 0, 0], 12),
        ([192, 0, 0, 0], 24),
        ([192, 0, 2, 0], 24),
        ([192, 88, 99, 0], 24),
        ([192, 168, 0, 0], 16),
        ([198, 18, 0, 0], 15),
        ([198, 51, 100, 0], 24),
        ([203, 0, 113, 0], 24),
        ([224, 0, 0, 0], 3),
    ];
    let ip = u32::from(ip);
    BLOCKS.iter().any(|(block, bits)| {
        let mask = u32::MAX << (32 - bits);
        ip & mask == u32::from_be_bytes(*block)
    })
}

/// What the new webhook's WebhookActor refuses when it starts
/// (WebhookActor::start_up, check_ip_address), as "bad webhook: ...".
fn verify(asked: &Asked) -> Result<(), Refusal> {
    let url = &asked.url;
    let bad = |why: &str| Refusal::bad_request(&format!("bad webhook: {why}"));
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|prefix| url.starts_with(prefix));
    // Plain HTTP to this machine is allowed so that local runs need no
    // certificate; Telegram itself accepts HTTPS only.
    if !url.starts_with("https://") && !loopback {
        return Err(bad("An HTTPS URL must be provided for webhook"));
    }
    if !loopback && !matches!(url_port(url), Some(80 | 88 | 443 | 8443)) {
        return Err(bad(
            "Webhook can be set up only on ports 80, 88, 443 or 8443",
        ));
    }
    let Some(ip) = &asked.ip_address else {
        return Ok(());
    };
    match ip.parse::<IpAddr>() {
        Err(_) => Err(bad("Invalid IP address specified")),
        Ok(IpAddr::V6(_)) => Err(bad("IPv6-only addresses are not allowed")),
        Ok(IpAddr::V4(v4)) if reserved(v4) => Err(bad(&format!("IP address {v4} is reserved"))),
        Ok(IpAddr::V4(_)) => Ok(()),
    }
}

/// As Client::process_set_webhook_query: an unchanged webhook is left as it
/// is; any other call first closes the webhook there is (on_webhook_closed
/// forgets it with its last error), then checks and sets the new one
/// (do_set_webhook, finish_set_webhook, the WebhookActor's start). So a
/// refused change leaves no webhook at all, as it does at Telegram.
fn change_webhook(shared: &Shared, url: String, params: &Map<String, Value>) -> MethodResult {
    let mut state = shared.state();
    rate_limit(shared, &mut state, &url)?;
    let asked = Asked::read(url, params);
    // Left out, the kinds set before stay (update_allowed_update_types); a
    // deleteWebhook's are not read.
    let allowed_updates = match params.get("allowed_updates") {
        _ if asked.url.is_empty() => None,
        None | Some(Value::Null) => None,
        Some(value) => Some(kinds::allowed_mask(&allowed_update_kinds(value)?)),
    };
    if asked.leaves(state.webhook.as_ref()) {
        if let Some(mask) = allowed_updates {
            state.allowed_updates = mask;
        }
        return Ok(already(&asked.url));
    }
    if !asked.url.is_empty() {
        abort_long_poll(&mut state, SET_WEBHOOK);
    }
    let had_webhook = state.webhook.take().is_some();
    if had_webhook {
        state.delivery.restart();
    }
    if asked.drop_pending {
        state.pending.clear();
    }
    if asked.url.is_empty() {
        return Ok(deleted(had_webhook));
    }
    check_secret(&asked.secret_given)?;
    if let Some(mask) = allowed_updates {
        state.allowed_updates = mask;
    }
    verify(&asked)?;
    state.webhook = Some(Webhook {
        url: asked.url,
        secret_token: asked.secret_token,
        max_connections: asked.max_connections,
        ip_address: asked.ip_address,
        last_error: None,
    });
    // A new webhook is a new WebhookActor: tried at once, whatever the old
    // one's backoff, and with one connection until its first success.
    state.delivery.restart();
    Ok(ok_with_description(json!(true), "Webhook was set"))
}

/// As Client::JsonWebhookInfo.
pub(crate) fn get_webhook_info(shared: &Shared) -> Value {
    let state = shared.state();
    let mut info = json!({
        "url": "",
        "has_custom_certificate": false,
        "pending_update_count": state.pending.len(),
    });
    if let Some(webhook) = &state.webhook {
        info["url"] = json!(webhook.url);
        info["max_connections"] = json!(webhook.max_connections);
        // A fixed address as given; otherwise the stand-in's own.
        let ip_address = webhook.ip_address.as_deref().unwrap_or("127.0.0.1");
        info["ip_address"] = json!(ip_address);
        if let Some(error) = &webhook.last_error {
            info["last_error_date"] = json!(error.date);
            info["last_error_message"] = json!(error.message);
        }
    }
    // One setting for getUpdates and the webhook, shown unless it is the
    // default, with or without a webhook.
    if state.allowed_updates != kinds::DEFAULT_ALLOWED {
        info["allowed_updates"] = json!(kinds::allowed_names(state.allowed_updates));
    }
    info
}

/// Whether a getUpdates call waits, and so ends the call waiting before it
/// (Client::do_get_updates): only one with a timeout that found nothing. A
/// call with timeout 0, or one that returns updates at once, leaves a
/// waiting call alone.
fn waits(timeout_secs: i64, found: usize) -> bool {
    timeout_secs != 0 && found == 0
}

/// Confirms the updates below `offset` and returns up to `limit` of those
/// left: with a negative offset, the last -`offset` updates, forgetting the
/// ones before them (Client::do_get_updates). An offset past the next id
/// the queue will give ("from_id is in the future" in TQueue::get, as
/// after ids started afresh) confirms nothing and is answered from the
/// queue's head.
fn take_updates(state: &mut State, offset: i64, limit: usize) -> Vec<Value> {
    let tail = state.next_update_id.saturating_add(1);
    if offset > tail {
        // From the head, confirming nothing.
    } else if offset > 0 {
        state.pending.retain(|u| u.id >= offset);
    } else if offset < 0 {
        let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
        let forget = state.pending.len().saturating_sub(keep);
        state.pending.drain(..forget);
    }
    state
        .pending
        .iter()
        .take(limit)
        .map(|u| u.update.clone())
        .collect()
}

/// Where a getUpdates call stands after its first look at the queue.
enum Started {
    /// A webhook is set: a conflict, answered after this wait.
    WebhookActive(Duration),
    Answered(Vec<Value>),
    /// Waiting for updates as the one long poll, with the limit it got.
    Waiting {
        ticket: u64,
        deadline: Instant,
        limit: usize,
    },
}

/// As Client::process_get_updates_query and do_get_updates, up to the wait.
fn start_get_updates(
    shared: &Shared,
    state: &mut State,
    params: &Map<String, Value>,
    offset: i64,
) -> Result<Started, Refusal> {
    if state.webhook.is_some() {
        return Ok(Started::WebhookActive(conflict_wait(shared, state)));
    }
    let mut limit = integer(params.get("limit")).unwrap_or(100).clamp(1, 100) as usize;
    let mut timeout_secs = integer(params.get("timeout"))
        .unwrap_or(0)
        .clamp(0, MAX_LONG_POLL_SECS);
    // Unlike setWebhook, an explicit null is refused here.
    if let Some(value) = params.get("allowed_updates") {
        state.allowed_updates = kinds::allowed_mask(&allowed_update_kinds(value)?);
    }
    // A call repeating the last one's offset within 3 s waits at least 3 s,
    // and within 0.5 s gets at most one update: a bot calling in a tight
    // loop is slowed down.
    let now = Instant::now();
    if let Some((previous_offset, previous_at)) = state.polls.previous {
        if previous_offset == offset {
            if timeout_secs < 3 && now < previous_at + shared.scaled(3.0) {
                timeout_secs = 3;
            }
            if now < previous_at + shared.scaled(0.5) {
                limit = 1;
            }
        }
    }
    state.polls.previous = Some((offset, now));
    let found = take_updates(state, offset, limit);
    if !waits(timeout_secs, found.len()) {
        return Ok(Started::Answered(found));
    }
    abort_long_poll(state, OTHER_GET_UPDATES);
    let ticket = state.polls.next_ticket;
    state.polls.next_ticket += 1;
    state.polls.waiting = Some(ticket);
    Ok(Started::Waiting {
        ticket,
        deadline: now + shared.scaled(timeout_secs as f64),
        limit,
    })
}

pub(crate) async fn get_updates(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    let offset = integer(params.get("offset")).unwrap_or(0);
    let started = start_get_updates(shared, &mut shared.state(), params, offset)?;
    let (ticket, deadline, limit) = match started {
        Started::WebhookActive(wait) => return Err(conflict(wait, WEBHOOK_ACTIVE).await),
        Started::Answered(found) => return Ok(Value::Array(found)),
        Started::Waiting {
            ticket,
            deadline,
            limit,
        } => (ticket, deadline, limit),
    };
    // Wake the call this one took over from, to answer its conflict.
    shared.updates_arrived.notify_waiters();
    // What was below a negative offset is forgotten already; the wait looks
    // at what comes next.
    let offset = offset.max(0);
    loop {
        // Register interest before looking, so an update queued in between
        // still wakes this poll.
        let arrived = shared.updates_arrived.notified();
        let ended = {
            let mut state = shared.state();
            if state.polls.waiting == Some(ticket) {
                let found = take_updates(&mut state, offset, limit);
                if !found.is_empty() || Instant::now() >= deadline {
                    state.polls.waiting = None;
                    return Ok(Value::Array(found));
                }
                None
            } else {
                let message = state
                    .polls
                    .ended
                    .remove(&ticket)
                    .unwrap_or(OTHER_GET_UPDATES);
                Some((conflict_wait(shared, &mut state), message))
            }
        };
        if let Some((wait, message)) = ended {
            return Err(conflict(wait, message).await);
        }
        // At the deadline, look once more and answer what there is.
        let _ = tokio::time::timeout_at(deadline, arrived).await;
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

    #[test]
    fn only_a_call_that_waits_ends_a_waiting_one() {
        assert!(waits(10, 0));
        assert!(!waits(0, 0), "timeout 0 answers at once");
        assert!(!waits(10, 2), "updates are answered at once");
    }
}
