//! Callback queries: answerCallbackQuery, and what a user's press of an
//! inline button makes (the `callback_query` update and the query waiting
//! for its answer).

use crate::answers::{MethodResult, Refusal};
use crate::params::{boolean, integer};
use crate::shared::Shared;
use crate::state::{CallbackAnswer, Query, State};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

/// How long a query waits for its answer, in Telegram seconds. Telegram
/// does not document it; 15 s is an assumption (clients stop showing the
/// progress indicator after about that long).
pub(crate) const ANSWER_WINDOW_SECS: f64 = 15.0;

/// The longest answer text (answerCallbackQuery's documented 0-200
/// characters).
const MAX_ANSWER_CHARS: usize = 200;

/// The longest cache_time, as Client::process_answer_callback_query_query
/// clamps it.
const MAX_CACHE_SECS: i64 = 30 * 24 * 60 * 60;

/// Client.cpp's wording for MTProto's QUERY_ID_INVALID
/// (Client::fail_query_with_error).
const QUERY_INVALID: &str = "query is too old and response timeout expired or query ID is invalid";

/// An optional string parameter; "" counts as left out, as the server's
/// `query->arg` reads it.
fn string_param(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// answerCallbackQuery, as Client::process_answer_callback_query_query,
/// which checks nothing itself: Telegram's MTProto server refuses a query
/// id it does not know, one already answered and one past its answer
/// window (QUERY_ID_INVALID), then a text over 200 characters
/// (MESSAGE_TOO_LONG, passed through as "Bad Request: MESSAGE_TOO_LONG",
/// as commonly reported). Which of the two it checks first is an
/// assumption. Every call is recorded, taken or not.
pub(crate) fn answer_callback_query(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    let given = string_param(params, "callback_query_id").unwrap_or_default();
    // td::to_integer: an unreadable id is 0, which no query has.
    let key = integer(params.get("callback_query_id"))
        .unwrap_or(0)
        .to_string();
    let text = string_param(params, "text");
    let url = string_param(params, "url");
    let cache_time = integer(params.get("cache_time"))
        .unwrap_or(0)
        .clamp(0, MAX_CACHE_SECS);
    let window = shared.scaled(ANSWER_WINDOW_SECS);
    let now = Instant::now();
    let mut state = shared.state();
    let outcome = match state.queries.get_mut(&key) {
        Some(query) if !query.answered && now < query.created_at + window => {
            if text
                .as_ref()
                .is_some_and(|t| t.chars().count() > MAX_ANSWER_CHARS)
            {
                Err(Refusal::bad_request("MESSAGE_TOO_LONG"))
            } else {
                query.answered = true;
                Ok(json!(true))
            }
        }
        _ => Err(Refusal::bad_request(QUERY_INVALID)),
    };
    state.answers.push(CallbackAnswer {
        callback_query_id: given,
        text,
        show_alert: boolean(params.get("show_alert")),
        url,
        cache_time,
        accepted: outcome.is_ok(),
        error: outcome.as_ref().err().map(|r| r.description.clone()),
    });
    outcome
}

/// Registers the callback query in `update`, if it is one, as waiting for
/// its answer from `at`: Telegram knows every query it created.
pub(crate) fn register(state: &mut State, update: &Value, at: Instant) {
    if let Some(id) = update
        .get("callback_query")
        .and_then(|q| q.get("id"))
        .and_then(Value::as_str)
    {
        state.queries.insert(
            id.to_owned(),
            Query {
                created_at: at,
                answered: false,
            },
        );
    }
}

/// A chat's `chat_instance`: one number per chat, the same in every query
/// from it, unrelated to the chat's id on sight (Telegram's is a global
/// identifier of the chat with the bot).
pub(crate) fn chat_instance(bot_id: i64, chat_id: i64) -> String {
    let mixed = (chat_id as u64 ^ (bot_id as u64).rotate_left(32))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17);
    // Telegram's are signed 64-bit numbers, written as strings.
    (mixed as i64).to_string()
}

/// Why a button cannot be pressed: Telegram only makes callback queries
/// from buttons a bot's message shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PressError {
    /// The bot sent no message `message_id` to chat `chat_id`.
    MessageNotFound { chat_id: i64, message_id: i64 },
    /// No message the bot sent to `chat_id` shows an inline keyboard.
    NoKeyboard { chat_id: i64 },
    /// The message shows no callback button that matches.
    NoSuchButton {
        chat_id: i64,
        message_id: i64,
        reason: String,
    },
    /// `callback_query` is not among the allowed updates, so Telegram
    /// creates no update for the press.
    NotAllowed,
}

impl std::fmt::Display for PressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PressError::MessageNotFound {
                chat_id,
                message_id,
            } => write!(f, "the bot sent no message {message_id} to chat {chat_id}"),
            PressError::NoKeyboard { chat_id } => write!(
                f,
                "no message the bot sent to chat {chat_id} has an inline keyboard"
            ),
            PressError::NoSuchButton {
                chat_id,
                message_id,
                reason,
            } => write!(
                f,
                "message {message_id} in chat {chat_id} cannot be pressed: {reason}"
            ),
            PressError::NotAllowed => f.write_str(
                "callback_query is not among the allowed updates: Telegram makes no update",
            ),
        }
    }
}

impl std::error::Error for PressError {}
