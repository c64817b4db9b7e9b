//! The control endpoints under `/_stand-in/`, outside the Bot API's paths:
//! what tests in other processes and scripts do with a running stand-in.
//! Each one is a [`Handle`] method over HTTP.
//!
//! - `GET calls`: every call received ([`Handle::calls`]);
//! - `GET sent`: the sendMessage parameters carried out
//!   ([`Handle::sent_messages`]);
//! - `POST observe`: an update whose chat becomes known
//!   ([`Handle::observe_update`]);
//! - `POST updates`: an update to queue ([`Handle::enqueue_update`]);
//! - `POST faults`: `{"method": ..., "fault": ...}` ([`Handle::inject`]);
//! - `POST reset`: forget calls and faults ([`Handle::reset`]);
//! - `POST messages`: `{"text": ...}` from a user, answered once it settled
//!   with the bot's replies.

use crate::answers::json_response;
use crate::handle::Handle;
use crate::shared::Shared;
use crate::state::Fault;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// A message from a user, for `POST /_stand-in/messages`.
#[derive(Deserialize)]
struct UserMessage {
    text: String,
    #[serde(default = "default_user")]
    user_id: i64,
    #[serde(default = "default_name")]
    first_name: String,
    /// How long to wait for the update to settle, in milliseconds.
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

/// A fault for the next call of `method`, for `POST /_stand-in/faults`.
#[derive(Deserialize)]
struct Injection {
    method: String,
    fault: Fault,
}

fn ok() -> Response<Full<Bytes>> {
    json_response(200, &json!({"ok": true}))
}

fn refused(description: &str) -> Response<Full<Bytes>> {
    json_response(400, &json!({"ok": false, "description": description}))
}

pub(crate) async fn control(
    shared: &Arc<Shared>,
    endpoint: &str,
    body: &Bytes,
) -> Response<Full<Bytes>> {
    let stand_in = Handle(shared.clone());
    let parsed = || serde_json::from_slice::<Value>(body);
    match endpoint {
        "calls" => json_response(200, &json!(stand_in.calls())),
        "sent" => json_response(200, &json!(stand_in.sent_messages())),
        "observe" => match parsed() {
            Ok(update) => {
                stand_in.observe_update(&update);
                ok()
            }
            Err(e) => refused(&e.to_string()),
        },
        "messages" => match serde_json::from_slice::<UserMessage>(body) {
            Ok(message) if !message.text.is_empty() => user_message(&stand_in, message).await,
            _ => {
                refused("expected {\"text\": \"...\"} and optionally user_id, first_name, wait_ms")
            }
        },
        "updates" => match parsed() {
            Ok(update) if update.get("update_id").and_then(Value::as_i64).is_some() => {
                stand_in.enqueue_update(update);
                ok()
            }
            _ => refused("expected an update with an integer update_id"),
        },
        "faults" => match serde_json::from_slice::<Injection>(body) {
            Ok(injection) => {
                stand_in.inject(&injection.method, injection.fault);
                ok()
            }
            Err(e) => refused(&e.to_string()),
        },
        "reset" => {
            stand_in.reset();
            ok()
        }
        _ => json_response(404, &json!({"ok": false, "description": "unknown control"})),
    }
}

/// Queues `message` from its user, waits until it settled, and answers the
/// replies sent to the user's chat meanwhile.
async fn user_message(stand_in: &Handle, message: UserMessage) -> Response<Full<Bytes>> {
    let before = stand_in.replies_to(message.user_id).len();
    let update_id = stand_in.enqueue_text_from(message.user_id, &message.first_name, &message.text);
    // Capped at ten minutes, so one request cannot hold a task for ever.
    let wait = Duration::from_millis(message.wait_ms.min(600_000));
    let settled = stand_in.wait_settled(update_id, wait).await;
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
