//! The control endpoints under `/_stand-in/`, outside the Bot API's paths:
//! what tests in other processes and scripts do with a running stand-in.
//! Each one is a [`Handle`] method over HTTP.
//!
//! - `GET calls`: every call received ([`Handle::calls`]);
//! - `GET sent`: the sendMessage parameters carried out
//!   ([`Handle::sent_messages`]);
//! - `GET commands`: the commands set for the default scope and every
//!   language ([`Handle::commands`]);
//! - `POST observe`: an update whose chat becomes known
//!   ([`Handle::observe_update`]);
//! - `POST updates`: an update to queue ([`Handle::enqueue_update`]);
//! - `POST faults`: `{"method": ..., "fault": ...}` ([`Handle::inject`]);
//! - `POST reset`: forget calls and faults ([`Handle::reset`]);
//! - `POST messages`: `{"text": ...}` from a user, answered once it settled
//!   with the bot's replies;
//! - `POST press`: a user presses an inline button
//!   ([`Handle::press_button`]); with `"wait": true`, answered once the
//!   update settled with what the bot did about it.

use crate::answers::json_response;
use crate::handle::Handle;
use crate::keyboards::Which;
use crate::shared::Shared;
use crate::state::{Activity, Fault};
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

/// A press of an inline button, for `POST /_stand-in/press`: by the user
/// (default as for messages) in the chat (default the user's private chat),
/// under the message (default the last one the bot sent there with a
/// keyboard), of the button named by exactly one of `data`, `text` (its
/// label) or `index` (from 1, row by row).
#[derive(Deserialize)]
struct UserPress {
    #[serde(default = "default_user")]
    user_id: i64,
    #[serde(default = "default_name")]
    first_name: String,
    chat_id: Option<i64>,
    message_id: Option<i64>,
    data: Option<String>,
    text: Option<String>,
    index: Option<usize>,
    /// Answer once the update settled, with what the bot did meanwhile.
    #[serde(default)]
    wait: bool,
    #[serde(default = "default_wait")]
    wait_ms: u64,
}

const PRESS_USAGE: &str = "expected {\"data\": ...}, {\"text\": ...} or {\"index\": N} and optionally user_id, first_name, chat_id, message_id, wait, wait_ms";

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
        "commands" => json_response(200, &json!(stand_in.commands())),
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
        "press" => match serde_json::from_slice::<UserPress>(body) {
            Ok(press) => user_press(&stand_in, press).await,
            Err(_) => refused(PRESS_USAGE),
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

/// Capped at ten minutes, so one request cannot hold a task for ever.
fn wait_for(millis: u64) -> Duration {
    Duration::from_millis(millis.min(600_000))
}

/// The messages sent and the messages edited among `activity`, as
/// Telegram answered them.
fn sent_and_edited(activity: Vec<Activity>) -> (Vec<Value>, Vec<Value>) {
    let (edited, sent): (Vec<_>, Vec<_>) = activity.into_iter().partition(|a| a.edited);
    let messages = |list: Vec<Activity>| list.into_iter().map(|a| a.message).collect();
    (messages(sent), messages(edited))
}

/// Queues `message` from its user, waits until it settled, and answers the
/// replies sent to the user's chat meanwhile: their texts (`replies`), the
/// Messages (`messages`, with any keyboard) and the edits there (`edits`).
async fn user_message(stand_in: &Handle, message: UserMessage) -> Response<Full<Bytes>> {
    let before = stand_in.replies_to(message.user_id).len();
    let mark = stand_in.activity_mark();
    let update_id = stand_in.enqueue_text_from(message.user_id, &message.first_name, &message.text);
    let settled = stand_in
        .wait_settled(update_id, wait_for(message.wait_ms))
        .await;
    let replies: Vec<Value> = stand_in
        .replies_to(message.user_id)
        .into_iter()
        .skip(before)
        .map(|m| m["text"].clone())
        .collect();
    let (activity, _) = stand_in.activity_since(mark, message.user_id);
    let (messages, edits) = sent_and_edited(activity);
    json_response(
        200,
        &json!({"ok": true, "update_id": update_id, "settled": settled, "replies": replies,
                "messages": messages, "edits": edits}),
    )
}

/// Presses the button `press` names; with `wait`, waits until the update
/// settled and answers, as for a message, what the bot did in the chat
/// meanwhile and its answers to this query.
async fn user_press(stand_in: &Handle, press: UserPress) -> Response<Full<Bytes>> {
    let which = match (press.data, press.text, press.index) {
        (Some(data), None, None) => Which::Data(data),
        (None, Some(label), None) => Which::Label(label),
        (None, None, Some(index)) => Which::Index(index),
        _ => return refused(PRESS_USAGE),
    };
    let chat_id = press.chat_id.unwrap_or(press.user_id);
    let mark = stand_in.activity_mark();
    let pressed = match stand_in.press(
        press.user_id,
        &press.first_name,
        chat_id,
        press.message_id,
        &which,
    ) {
        Ok(pressed) => pressed,
        Err(error) => return refused(&error.to_string()),
    };
    let mut answer = json!({
        "ok": true,
        "update_id": pressed.update_id,
        "callback_query_id": pressed.callback_query_id,
        "chat_id": chat_id,
        "message_id": pressed.message_id,
        "data": pressed.data,
    });
    if press.wait {
        let settled = stand_in
            .wait_settled(pressed.update_id, wait_for(press.wait_ms))
            .await;
        let (activity, answers) = stand_in.activity_since(mark, chat_id);
        let answers: Vec<_> = answers
            .into_iter()
            .filter(|a| a.callback_query_id == pressed.callback_query_id)
            .collect();
        let (messages, edits) = sent_and_edited(activity);
        let replies: Vec<Value> = messages.iter().map(|m| m["text"].clone()).collect();
        answer["settled"] = json!(settled);
        answer["answers"] = json!(answers);
        answer["edits"] = json!(edits);
        answer["messages"] = json!(messages);
        answer["replies"] = json!(replies);
    }
    json_response(200, &answer)
}
