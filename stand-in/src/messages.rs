//! The Bot API methods about the bot and its messages: getMe and
//! sendMessage, with sendMessage's checks in the order Telegram makes them.

use crate::answers::{MethodResult, Refusal};
use crate::clock::now;
use crate::params::{boolean, integer, object};
use crate::shared::Shared;
use serde_json::{json, Map, Value};

const MAX_TEXT_CHARS: usize = 4096;

fn bot_user(shared: &Shared) -> Value {
    let id = shared.state().bot_id;
    json!({
        "id": id,
        "is_bot": true,
        "first_name": "Stand-in Echo Bot",
        "username": shared.options.bot_username,
    })
}

pub(crate) fn get_me(shared: &Shared) -> Value {
    let mut me = bot_user(shared);
    me["can_join_groups"] = json!(true);
    me["can_read_all_group_messages"] = json!(false);
    me["supports_inline_queries"] = json!(false);
    me
}

/// Checks in the order Telegram's server does: the request's own shape
/// first (reply parameters, text present), then the chat, then what sending
/// reveals (topic, replied message, text content and length, a block).
pub(crate) fn send_message(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    let unparsable_reply = || Refusal::bad_request("can't parse reply parameters JSON object");
    let reply_parameters = match params.get("reply_parameters") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let reply = object(value).ok_or_else(unparsable_reply)?;
            let message_id = integer(reply.get("message_id")).ok_or_else(unparsable_reply)?;
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
        return Err(Refusal::bad_request("message text is empty"));
    }
    if let Some(mode) = params.get("parse_mode").and_then(Value::as_str) {
        if !mode.is_empty() && !["HTML", "Markdown", "MarkdownV2"].contains(&mode) {
            return Err(Refusal::bad_request(&format!(
                "unsupported parse_mode \"{mode}\""
            )));
        }
    }
    let chat_id = match params.get("chat_id") {
        None | Some(Value::Null) => return Err(Refusal::bad_request("chat_id is empty")),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(Refusal::bad_request("chat_id is empty"))
        }
        Some(value) => {
            integer(Some(value)).ok_or_else(|| Refusal::bad_request("chat not found"))?
        }
    };
    let from = bot_user(shared);
    let mut state = shared.state();
    let Some(chat) = state.chats.get(&chat_id) else {
        return Err(Refusal::bad_request("chat not found"));
    };
    let thread = match params.get("message_thread_id") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let not_found = || Refusal::bad_request("message thread not found");
            let thread = integer(Some(value)).ok_or_else(not_found)?;
            if !chat.is_forum || !chat.topics.contains(&thread) {
                return Err(not_found());
            }
            Some(thread)
        }
    };
    let reply = match reply_parameters {
        None => None,
        Some((message_id, allow_without)) => {
            let exists = chat.messages.contains(&message_id);
            if !exists && !allow_without {
                return Err(Refusal::bad_request("message to be replied not found"));
            }
            exists.then_some(message_id)
        }
    };
    if text.trim().is_empty() {
        return Err(Refusal::bad_request("text must be non-empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Refusal::bad_request("message is too long"));
    }
    if chat.blocked {
        return Err(Refusal::new(403, "Forbidden: bot was blocked by the user"));
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
