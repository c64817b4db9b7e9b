//! The Bot API surface: routing, parameter parsing and each method's checks.
//! Status codes and descriptions follow Telegram's server.

use crate::state::{Call, Fault, Webhook};
use crate::{Cut, Shared};
use bytes::Bytes;
use http_body_util::Full;
use hyper::http::request::Parts;
use hyper::Response;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KNOWN_METHODS: &[&str] = &[
    "getme",
    "sendmessage",
    "setwebhook",
    "deletewebhook",
    "getwebhookinfo",
    "getupdates",
];
const MAX_TEXT_CHARS: usize = 4096;
const MAX_LONG_POLL: Duration = Duration::from_secs(50);

type Answer = Result<Value, (u16, String, Option<u64>)>;

pub(crate) fn error_body(code: u16, description: &str) -> Value {
    json!({"ok": false, "error_code": code, "description": description})
}

pub(crate) fn json_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(
    status: u16,
    description: &str,
    retry_after: Option<u64>,
) -> Response<Full<Bytes>> {
    let mut body = error_body(status, description);
    if let Some(seconds) = retry_after {
        body["parameters"] = json!({"retry_after": seconds});
    }
    let mut response = json_response(status, &body);
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, seconds.into());
    }
    response
}

fn html_response(status: u16) -> Response<Full<Bytes>> {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let page = format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
    );
    let mut response = Response::new(Full::new(Bytes::from(page)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html"),
    );
    response
}

/// A token is `<digits>:<letters, digits, _ and ->`; anything else is not a
/// bot path at all for Telegram and answers 404.
fn well_formed_token(token: &str) -> bool {
    token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

pub(crate) async fn route(
    shared: &Arc<Shared>,
    parts: Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Cut> {
    let path = parts.uri.path();
    if let Some(control) = path.strip_prefix("/_stand-in/") {
        return Ok(crate::api::control(shared, control, &body).await);
    }
    let Some((token, method)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Ok(error_response(404, "Not Found", None));
    };
    let method_key = method.to_ascii_lowercase();
    // Refused calls are recorded too, so a test can tell "never called" from
    // "called and refused".
    let refusal = if !well_formed_token(token) {
        Some((404, "Not Found"))
    } else if token != shared.options.token {
        Some((401, "Unauthorized"))
    } else if !KNOWN_METHODS.contains(&method_key.as_str()) {
        Some((404, "Not Found"))
    } else {
        None
    };
    if let Some((status, description)) = refusal {
        let params = parse_params(&parts, &body).map_or(Value::Null, Value::Object);
        let call = record(shared, method, params);
        finish(shared, call, status);
        return Ok(error_response(status, description, None));
    }
    let params = match parse_params(&parts, &body) {
        Ok(params) => params,
        Err(description) => {
            let call = record(shared, method, Value::Null);
            finish(shared, call, 400);
            return Ok(error_response(400, &description, None));
        }
    };
    // Recorded on arrival, so a test can see a call that is still in flight.
    let call = record(shared, method, Value::Object(params.clone()));
    let fault = shared
        .state()
        .faults
        .get_mut(&method_key)
        .and_then(|queue| queue.pop_front());
    let mut truncate = false;
    match fault {
        Some(Fault::Error {
            status,
            description,
            retry_after,
            migrate_to_chat_id,
        }) => {
            finish(shared, call, status);
            let mut response = error_response(status, &description, retry_after);
            if let Some(chat_id) = migrate_to_chat_id {
                let mut body = error_body(status, &description);
                body["parameters"] = json!({"migrate_to_chat_id": chat_id});
                response = json_response(status, &body);
            }
            return Ok(response);
        }
        Some(Fault::Html { status }) => {
            finish(shared, call, status);
            return Ok(html_response(status));
        }
        Some(Fault::Drop) => return Err(Cut::Drop),
        Some(Fault::Raw { status, body }) => {
            finish(shared, call, status);
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = hyper::StatusCode::from_u16(status)
                .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(response);
        }
        Some(Fault::Truncated) => truncate = true,
        Some(Fault::Delay { millis }) => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
        None => {}
    }
    let answer = match method_key.as_str() {
        "getme" => Ok(get_me(shared)),
        "sendmessage" => send_message(shared, &params),
        "setwebhook" => set_webhook(shared, &params),
        "deletewebhook" => delete_webhook(shared, &params),
        "getwebhookinfo" => Ok(get_webhook_info(shared)),
        "getupdates" => get_updates(shared, &params).await,
        _ => Err((404, "Not Found".to_owned(), None)),
    };
    if method_key == "setwebhook" {
        // Wake the delivery loop for the new webhook.
        shared.updates_arrived.notify_waiters();
    }
    let (status, response) = match answer {
        Ok(Value::Object(envelope)) if envelope.contains_key("ok") => {
            (200, json_response(200, &Value::Object(envelope)))
        }
        Ok(result) => (
            200,
            json_response(200, &json!({"ok": true, "result": result})),
        ),
        Err((status, description, retry_after)) => {
            (status, error_response(status, &description, retry_after))
        }
    };
    if status == 200 {
        finish_performed(shared, call, status);
    } else {
        finish(shared, call, status);
    }
    if truncate {
        return Err(Cut::MidAnswer(response));
    }
    Ok(response)
}

/// Where a call was recorded: its place, in the list of calls since the
/// last reset.
#[derive(Clone, Copy)]
struct CallRef {
    generation: u64,
    index: usize,
}

fn record(shared: &Shared, method: &str, params: Value) -> CallRef {
    let mut state = shared.state();
    state.calls.push(Call {
        method: method.to_owned(),
        params,
        status: 0,
        performed: false,
    });
    CallRef {
        generation: state.calls_generation,
        index: state.calls.len() - 1,
    }
}

/// Sets the status of a recorded call, unless a reset forgot it meanwhile.
fn finish(shared: &Shared, call: CallRef, status: u16) {
    finish_as(shared, call, status, false);
}

/// As [`finish`], for a call that was carried out.
fn finish_performed(shared: &Shared, call: CallRef, status: u16) {
    finish_as(shared, call, status, true);
}

fn finish_as(shared: &Shared, call: CallRef, status: u16, performed: bool) {
    let mut state = shared.state();
    if state.calls_generation == call.generation {
        if let Some(recorded) = state.calls.get_mut(call.index) {
            recorded.status = status;
            recorded.performed = performed;
        }
    }
}

/// Merges query string, then form or JSON body, as Telegram accepts all three.
fn parse_params(parts: &Parts, body: &Bytes) -> Result<Map<String, Value>, String> {
    let mut params = Map::new();
    if let Some(query) = parts.uri.query() {
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            params.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    if body.is_empty() {
        return Ok(params);
    }
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => params.extend(object),
            Ok(_) => return Err("Bad Request: JSON object expected".to_owned()),
            Err(_) => return Err("Bad Request: can't parse JSON encoded request".to_owned()),
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in form_urlencoded::parse(body) {
            params.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    Ok(params)
}

/// Reads an integer given as a JSON number or, from forms, a string.
fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// An object parameter, given as JSON or, from forms, as a JSON string.
fn object(value: &Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(o) => Some(o.clone()),
        Value::String(s) => match serde_json::from_str(s) {
            Ok(Value::Object(o)) => Some(o),
            _ => None,
        },
        _ => None,
    }
}

fn bad_request(description: &str) -> (u16, String, Option<u64>) {
    (400, format!("Bad Request: {description}"), None)
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn bot_user(shared: &Shared) -> Value {
    let id = shared.state().bot_id;
    json!({
        "id": id,
        "is_bot": true,
        "first_name": "Stand-in Echo Bot",
        "username": shared.options.bot_username,
    })
}

fn get_me(shared: &Shared) -> Value {
    let mut me = bot_user(shared);
    me["can_join_groups"] = json!(true);
    me["can_read_all_group_messages"] = json!(false);
    me["supports_inline_queries"] = json!(false);
    me
}

/// Checks in the order Telegram's server does: the request's own shape
/// first (reply parameters, text present), then the chat, then what sending
/// reveals (topic, replied message, text content and length, a block).
fn send_message(shared: &Shared, params: &Map<String, Value>) -> Answer {
    let reply_parameters = match params.get("reply_parameters") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let reply = object(value)
                .ok_or_else(|| bad_request("can't parse reply parameters JSON object"))?;
            let message_id = integer(reply.get("message_id"))
                .ok_or_else(|| bad_request("can't parse reply parameters JSON object"))?;
            Some((
                message_id,
                boolean(reply.get("allow_sending_without_reply")),
            ))
        }
    };
    let text = match params.get("text") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if text.is_empty() {
        return Err(bad_request("message text is empty"));
    }
    if let Some(mode) = params.get("parse_mode").and_then(Value::as_str) {
        if !mode.is_empty() && !["HTML", "Markdown", "MarkdownV2"].contains(&mode) {
            return Err(bad_request(&format!("unsupported parse_mode \"{mode}\"")));
        }
    }
    let chat_id = match params.get("chat_id") {
        None | Some(Value::Null) => return Err(bad_request("chat_id is empty")),
        Some(Value::String(s)) if s.is_empty() => return Err(bad_request("chat_id is empty")),
        Some(value) => integer(Some(value)).ok_or_else(|| bad_request("chat not found"))?,
    };
    let from = bot_user(shared);
    let mut state = shared.state();
    let Some(chat) = state.chats.get(&chat_id) else {
        return Err(bad_request("chat not found"));
    };
    let thread = match params.get("message_thread_id") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let thread =
                integer(Some(value)).ok_or_else(|| bad_request("message thread not found"))?;
            if !chat.is_forum || !chat.topics.contains(&thread) {
                return Err(bad_request("message thread not found"));
            }
            Some(thread)
        }
    };
    let reply = match reply_parameters {
        None => None,
        Some((message_id, allow_without)) => {
            let exists = chat.messages.contains(&message_id);
            if !exists && !allow_without {
                return Err(bad_request("message to be replied not found"));
            }
            exists.then_some(message_id)
        }
    };
    if text.trim().is_empty() {
        return Err(bad_request("text must be non-empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(bad_request("message is too long"));
    }
    if chat.blocked {
        return Err((
            403,
            "Forbidden: bot was blocked by the user".to_owned(),
            None,
        ));
    }
    let chat_raw = chat.raw.clone();
    let message_id = state.next_message_id;
    state.next_message_id += 1;
    if let Some(chat) = state.chats.get_mut(&chat_id) {
        chat.messages.insert(message_id);
    }
    drop(state);
    let mut message = json!({
        "message_id": message_id,
        "from": from,
        "chat": chat_raw,
        "date": now(),
        "text": text,
    });
    if let Some(thread) = thread {
        message["message_thread_id"] = json!(thread);
        message["is_topic_message"] = json!(true);
    }
    if let Some(reply_to) = reply {
        message["reply_to_message"] = json!({
            "message_id": reply_to, "chat": message["chat"].clone(), "date": now()
        });
    }
    Ok(message)
}

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

fn ok_with_description(result: Value, description: &str) -> Value {
    json!({"ok": true, "result": result, "description": description})
}

fn set_webhook(shared: &Shared, params: &Map<String, Value>) -> Answer {
    let mut state = shared.state();
    // Telegram allows one setWebhook a second per bot, even an identical one.
    let now = Instant::now();
    if state
        .last_set_webhook
        .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
    {
        return Err((429, "Too Many Requests: retry after 1".to_owned(), Some(1)));
    }
    state.last_set_webhook = Some(now);
    let url = params
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if url.is_empty() {
        let had = state.webhook.take().is_some();
        return Ok(ok_with_description(
            json!(true),
            if had {
                "Webhook was deleted"
            } else {
                "Webhook is already deleted"
            },
        ));
    }
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|prefix| url.starts_with(prefix));
    // Plain HTTP to this machine is allowed so that local runs need no
    // certificate; Telegram itself accepts HTTPS only.
    if !url.starts_with("https://") && !loopback {
        return Err(bad_request(
            "bad webhook: An HTTPS URL must be provided for webhook",
        ));
    }
    if !loopback && !matches!(url_port(&url), Some(80 | 88 | 443 | 8443)) {
        return Err(bad_request(
            "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
        ));
    }
    let secret_token = params
        .get("secret_token")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(secret) = &secret_token {
        if secret.len() > 256 {
            return Err(bad_request("secret token is too long"));
        }
        let valid = secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(bad_request("secret token contains unallowed characters"));
        }
    }
    let max_connections = integer(params.get("max_connections"))
        .unwrap_or(40)
        .clamp(1, 100) as u32;
    let allowed_updates = match params.get("allowed_updates") {
        None | Some(Value::Null) => state
            .webhook
            .as_ref()
            .and_then(|w| w.allowed_updates.clone()),
        Some(value) => {
            let list = match value {
                Value::String(s) => serde_json::from_str::<Value>(s).ok(),
                other => Some(other.clone()),
            };
            let Some(Value::Array(items)) = list else {
                return Err(bad_request("can't parse allowed updates JSON array"));
            };
            Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            )
        }
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

fn delete_webhook(shared: &Shared, params: &Map<String, Value>) -> Answer {
    let mut state = shared.state();
    if boolean(params.get("drop_pending_updates")) {
        state.pending.clear();
    }
    let had = state.webhook.take().is_some();
    Ok(ok_with_description(
        json!(true),
        if had {
            "Webhook was deleted"
        } else {
            "Webhook is already deleted"
        },
    ))
}

fn get_webhook_info(shared: &Shared) -> Value {
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

async fn get_updates(shared: &Shared, params: &Map<String, Value>) -> Answer {
    let offset = integer(params.get("offset")).unwrap_or(0);
    let limit = integer(params.get("limit")).unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(integer(params.get("timeout")).unwrap_or(0).max(0) as u64)
        .min(MAX_LONG_POLL);
    let deadline = tokio::time::Instant::now() + timeout;
    let generation = {
        let mut state = shared.state();
        if state.webhook.is_some() {
            return Err((
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first".to_owned(),
                None,
            ));
        }
        if let Some(value) = params.get("allowed_updates") {
            let list = match value {
                Value::String(s) => serde_json::from_str::<Value>(s).ok(),
                other => Some(other.clone()),
            };
            let Some(Value::Array(items)) = list else {
                return Err(bad_request("can't parse allowed updates JSON array"));
            };
            let kinds: Vec<String> = items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
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
                return Err((
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running".to_owned(),
                    None,
                ));
            }
            if offset > 0 {
                state
                    .pending
                    .retain(|u| u.get("update_id").and_then(Value::as_i64).unwrap_or(0) >= offset);
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

/// Test and script controls, outside the Bot API's paths.
pub(crate) async fn control(
    shared: &Arc<Shared>,
    path: &str,
    body: &Bytes,
) -> Response<Full<Bytes>> {
    let parsed = || serde_json::from_slice::<Value>(body);
    match path {
        "calls" => {
            let calls = shared.state().calls.clone();
            json_response(200, &json!(calls))
        }
        "sent" => {
            let sent: Vec<Value> = shared
                .state()
                .calls
                .iter()
                .filter(|c| c.method.eq_ignore_ascii_case("sendMessage") && c.performed)
                .map(|c| c.params.clone())
                .collect();
            json_response(200, &json!(sent))
        }
        "observe" => match parsed() {
            Ok(update) => {
                shared.state().observe_update(&update);
                json_response(200, &json!({"ok": true}))
            }
            Err(e) => json_response(400, &json!({"ok": false, "description": e.to_string()})),
        },
        "messages" => {
            #[derive(serde::Deserialize)]
            struct UserMessage {
                text: String,
                #[serde(default = "default_user")]
                user_id: i64,
                #[serde(default = "default_name")]
                first_name: String,
                #[serde(default = "default_wait")]
                wait_ms: u64,
            }
            fn default_user() -> i64 {
                1_000_001
            }
            fn default_name() -> String {
                "Ali".to_owned()
            }
            fn default_wait() -> u64 {
                30_000
            }
            let message = match serde_json::from_slice::<UserMessage>(body) {
                Ok(message) if !message.text.is_empty() => message,
                _ => {
                    return json_response(
                        400,
                        &json!({"ok": false, "description": "expected {\"text\": \"...\"} and optionally user_id, first_name, wait_ms"}),
                    )
                }
            };
            let stand_in = crate::Handle(shared.clone());
            let before = stand_in.replies_to(message.user_id).len();
            let update_id =
                stand_in.enqueue_text_from(message.user_id, &message.first_name, &message.text);
            let settled = stand_in
                .wait_settled(
                    update_id,
                    Duration::from_millis(message.wait_ms.min(600_000)),
                )
                .await;
            let replies: Vec<Value> = stand_in
                .replies_to(message.user_id)
                .into_iter()
                .skip(before)
                .map(|m| m["text"].clone())
                .collect();
            json_response(
                200,
                &json!({"ok": true, "update_id": update_id, "settled": settled, "replies": replies}),
            )
        }
        "updates" => match parsed() {
            Ok(update) if update.get("update_id").and_then(Value::as_i64).is_some() => {
                let mut state = shared.state();
                state.observe_update(&update);
                state.pending.push_back(update);
                drop(state);
                shared.updates_arrived.notify_waiters();
                json_response(200, &json!({"ok": true}))
            }
            _ => json_response(
                400,
                &json!({"ok": false, "description": "expected an update with an integer update_id"}),
            ),
        },
        "faults" => {
            #[derive(serde::Deserialize)]
            struct Injection {
                method: String,
                fault: Fault,
            }
            match serde_json::from_slice::<Injection>(body) {
                Ok(injection) => {
                    shared
                        .state()
                        .faults
                        .entry(injection.method.to_ascii_lowercase())
                        .or_default()
                        .push_back(injection.fault);
                    json_response(200, &json!({"ok": true}))
                }
                Err(e) => json_response(400, &json!({"ok": false, "description": e.to_string()})),
            }
        }
        "reset" => {
            let mut state = shared.state();
            state.calls.clear();
            state.calls_generation += 1;
            state.faults.clear();
            json_response(200, &json!({"ok": true}))
        }
        _ => json_response(404, &json!({"ok": false, "description": "unknown control"})),
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
