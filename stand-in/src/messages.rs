//! The Bot API methods about the bot and its messages: getMe, sendMessage,
//! sendChatAction, sendMessageDraft, editMessageText and editMessageReplyMarkup, with their
//! checks in the order Telegram makes them.

use crate::answers::{MethodResult, Refusal};
use crate::clock::now;
use crate::keyboards;
use crate::params::{arg_text, boolean, integer, object};
use crate::shared::Shared;
use crate::state::{Activity, State};
use serde_json::{json, Map, Value};

const MAX_TEXT_CHARS: usize = 4096;

/// Client.cpp's wording for MTProto's MESSAGE_NOT_MODIFIED
/// (Client::fail_query_with_error).
const NOT_MODIFIED: &str = "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";

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
    let text = message_text(params)?;
    // As Client::do_send_message, after the text.
    let markup = keyboards::reply_markup(params.get("reply_markup"))?;
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
    text_content(&text)?;
    keyboards::server_check(markup.as_ref())?;
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
    // After the content, as Client::JsonMessage writes it.
    if let Some(markup) = markup {
        message["reply_markup"] = markup;
    }
    remember(&mut shared.state(), chat_id, message_id, &message, false);
    Ok(message)
}

/// The actions Client::get_chat_action knows, after it lower-cases the
/// parameter: the documented names, and `cancel` and the older aliases
/// (record_audio, upload_audio, pick_up_location) that it still accepts.
const CHAT_ACTIONS: &[&str] = &[
    "cancel",
    "typing",
    "record_video",
    "upload_video",
    "record_audio",
    "record_voice",
    "upload_audio",
    "upload_voice",
    "upload_photo",
    "upload_document",
    "choose_sticker",
    "pick_up_location",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

/// sendChatAction, as Client::process_send_chat_action_query: the action
/// first, then the business connection or else the chat (Client::check_chat).
/// `message_thread_id` is read by Client::get_forum_topic_id, which refuses
/// nothing; whether the topic exists is left to tdlib, not modelled here.
/// An action shows nothing the stand-in keeps, so success is only `true`.
pub(crate) fn send_chat_action(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    let action = arg_text(params, "action").to_ascii_lowercase();
    if !CHAT_ACTIONS.contains(&action.as_str()) {
        // "Wrong parameter action in request", its first letter lowered by
        // Client::fail_query_with_error. A missing action is "" and lands here.
        return Err(Refusal::bad_request("wrong parameter action in request"));
    }
    let chat_param = arg_text(params, "chat_id");
    if !arg_text(params, "business_connection_id").is_empty() {
        // Client::get_business_connection_chat_id reads the chat first.
        if chat_param.is_empty() {
            return Err(Refusal::bad_request("chat identifier is empty"));
        }
        if chat_param.parse::<i64>().is_err() {
            return Err(Refusal::bad_request(
                "chat identifier must be a valid Integer",
            ));
        }
        // The stand-in has no business connections: every one is unknown,
        // as TdOnCheckBusinessConnectionCallback answers.
        return Err(Refusal::bad_request("business connection not found"));
    }
    if chat_param.is_empty() {
        return Err(Refusal::bad_request("chat_id is empty"));
    }
    // td::to_integer: anything unreadable is chat 0, which is not found; a
    // @username is not a chat the stand-in knows either.
    let chat_id = chat_param.parse::<i64>().unwrap_or(0);
    let state = shared.state();
    let Some(chat) = state.chats.get(&chat_id) else {
        return Err(Refusal::bad_request("chat not found"));
    };
    if chat.blocked {
        // USER_IS_BLOCKED, as Client::fail_query_with_error words it.
        return Err(Refusal::new(403, "Forbidden: bot was blocked by the user"));
    }
    Ok(Value::Bool(true))
}

/// sendMessageDraft, as Client::process_send_message_draft_query: the text
/// first (Client::get_formatted_text: a parse mode Telegram knows; an empty
/// text is allowed, and shows a placeholder), then the chat
/// (Client::check_chat), then what the draft itself may be. TDLib sends a
/// draft as a chat action (DialogActionManager::send_dialog_action, which
/// refuses nothing more of a private chat); the checks of the Bot API's
/// documentation (private chats only, a non-zero `draft_id`, at most 4096
/// characters) are made by Telegram's servers, whose source and wording are
/// not public: these error texts are the stand-in's own, and a bot should
/// treat every refusal of a draft alike.
pub(crate) fn send_message_draft(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    // An empty draft is allowed: it shows "Thinking...".
    let text = formatted_text(params)?;
    let chat_param = arg_text(params, "chat_id");
    if chat_param.is_empty() {
        return Err(Refusal::bad_request("chat_id is empty"));
    }
    let chat_id = chat_param.parse::<i64>().unwrap_or(0);
    let mut state = shared.state();
    let Some(chat) = state.chats.get(&chat_id) else {
        return Err(Refusal::bad_request("chat not found"));
    };
    if chat.blocked {
        return Err(Refusal::new(403, "Forbidden: bot was blocked by the user"));
    }
    if chat.raw["type"] != "private" {
        return Err(Refusal::bad_request(
            "message drafts can be sent only to private chats",
        ));
    }
    let draft_id = integer(params.get("draft_id")).unwrap_or(0);
    if draft_id == 0 {
        return Err(Refusal::bad_request("draft_id must be non-zero"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Refusal::bad_request("message is too long"));
    }
    state.drafts.push(crate::state::Draft {
        chat_id,
        draft_id,
        text,
    });
    Ok(Value::Bool(true))
}

/// The `text` parameter, as Client::get_input_message_text reads it:
/// present, and with a parse mode Telegram knows.
fn message_text(params: &Map<String, Value>) -> Result<String, Refusal> {
    if params
        .get("text")
        .is_none_or(|t| t.is_null() || t.as_str() == Some(""))
    {
        return Err(Refusal::bad_request("message text is empty"));
    }
    formatted_text(params)
}

/// `text` with a parse mode Telegram knows (Client::get_formatted_text),
/// empty when absent.
fn formatted_text(params: &Map<String, Value>) -> Result<String, Refusal> {
    let text = match params.get("text") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if let Some(mode) = params.get("parse_mode").and_then(Value::as_str) {
        if !mode.is_empty() && !["HTML", "Markdown", "MarkdownV2"].contains(&mode) {
            return Err(Refusal::bad_request(&format!(
                "unsupported parse_mode \"{mode}\""
            )));
        }
    }
    Ok(text)
}

/// What tdlib finds of a text once the chat is known: blank, or too long.
fn text_content(text: &str) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        return Err(Refusal::bad_request("text must be non-empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Refusal::bad_request("message is too long"));
    }
    Ok(())
}

/// Keeps the bot's message as it now is, and that it was sent or edited.
fn remember(state: &mut State, chat_id: i64, message_id: i64, message: &Value, edited: bool) {
    state
        .bot_messages
        .insert((chat_id, message_id), message.clone());
    state.activity.push(Activity {
        chat_id,
        edited,
        message: message.clone(),
    });
}

/// editMessageText, as Client::process_edit_message_text_query: the text
/// first, then the keyboard, then the message. A keyboard left out removes
/// the one the message had, as in Telegram.
pub(crate) fn edit_message_text(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    let text = message_text(params)?;
    let markup = keyboards::reply_markup(params.get("reply_markup"))?;
    edit(shared, params, Some(text), markup)
}

/// editMessageReplyMarkup, as Client::process_edit_message_reply_markup_query:
/// without `reply_markup` the keyboard is removed.
pub(crate) fn edit_message_reply_markup(
    shared: &Shared,
    params: &Map<String, Value>,
) -> MethodResult {
    let markup = keyboards::reply_markup(params.get("reply_markup"))?;
    edit(shared, params, None, markup)
}

/// The message part of an edit: which message (Client::check_message, with
/// "message to edit"), whether the bot may edit it, what the new content
/// is worth, and whether anything changes. Bots' 48-hour limit on editing
/// is not modelled: Telegram applies it to business messages, and whether
/// it applies to a bot's own messages is not documented.
fn edit(
    shared: &Shared,
    params: &Map<String, Value>,
    text: Option<String>,
    markup: Option<Value>,
) -> MethodResult {
    let chat_param = match params.get("chat_id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(other) => other.to_string(),
    };
    // As Client::get_message_id: a non-positive or unreadable id is none.
    let message_id = integer(params.get("message_id"))
        .filter(|id| *id > 0)
        .unwrap_or(0);
    if chat_param.is_empty() && message_id == 0 {
        let inline = params
            .get("inline_message_id")
            .is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
        // Client::get_inline_message_id's refusal; inline messages come
        // from inline queries, which the stand-in does not make.
        return Err(Refusal::bad_request(if inline {
            "inline_message_id is not supported by the stand-in"
        } else {
            "message identifier is not specified"
        }));
    }
    if chat_param.is_empty() {
        return Err(Refusal::bad_request("chat_id is empty"));
    }
    // td::to_integer: anything unreadable is chat 0, which is not found.
    let chat_id = chat_param.parse::<i64>().unwrap_or(0);
    let mut state = shared.state();
    let Some(chat) = state.chats.get(&chat_id) else {
        return Err(Refusal::bad_request("chat not found"));
    };
    let not_found = || Refusal::bad_request("message to edit not found");
    if message_id == 0 {
        return Err(not_found());
    }
    let Some(current) = state.bot_messages.get(&(chat_id, message_id)) else {
        // A user's message exists but only its sender may edit it
        // (tdlib's "Message can't be edited").
        if chat.messages.contains(&message_id) {
            return Err(Refusal::bad_request("message can't be edited"));
        }
        return Err(not_found());
    };
    if let Some(text) = &text {
        text_content(text)?;
    }
    keyboards::server_check(markup.as_ref())?;
    let mut message = current.clone();
    let new_text = text.map_or_else(|| message["text"].clone(), Value::String);
    if message["text"] == new_text && message.get("reply_markup") == markup.as_ref() {
        return Err(Refusal::bad_request(NOT_MODIFIED));
    }
    message["text"] = new_text;
    if let Some(object) = message.as_object_mut() {
        match markup {
            Some(markup) => object.insert("reply_markup".to_owned(), markup),
            None => object.remove("reply_markup"),
        };
    }
    message["edit_date"] = json!(now());
    remember(&mut state, chat_id, message_id, &message, true);
    Ok(message)
}
