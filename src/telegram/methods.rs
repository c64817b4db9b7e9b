//! What this bot asks of the Bot API: the parameters of each method it
//! calls, and the results it reads.

use super::{ChatId, Message, MessageId, ThreadId, UpdateId, UserId};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::fmt;

/// Describes the message to reply to (`reply_parameters` of sendMessage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyParameters {
    pub message_id: MessageId,
    /// Send the reply even if the message was deleted meanwhile.
    #[serde(default)]
    pub allow_sending_without_reply: bool,
}

/// The parameters of sendMessage that this project uses.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    pub chat_id: ChatId,
    pub text: String,
    pub message_thread_id: Option<ThreadId>,
    pub reply_parameters: Option<ReplyParameters>,
    /// Buttons under the message.
    pub reply_markup: Option<InlineKeyboardMarkup>,
}

impl SendMessage {
    /// A reply to `message`: same chat, same forum topic, quoting the message
    /// when it still exists. The text is cut to Telegram's limit.
    pub fn reply_to(message: &Message, text: impl Into<String>) -> Self {
        SendMessage {
            chat_id: message.chat.id,
            text: truncate_to_limit(text.into()),
            message_thread_id: message.topic(),
            reply_parameters: Some(ReplyParameters {
                message_id: message.message_id,
                allow_sending_without_reply: true,
            }),
            reply_markup: None,
        }
    }

    /// A message of its own in `chat` (not a reply). The text is cut to
    /// Telegram's limit.
    pub fn to_chat(chat: ChatId, text: impl Into<String>) -> Self {
        SendMessage {
            chat_id: chat,
            text: truncate_to_limit(text.into()),
            message_thread_id: None,
            reply_parameters: None,
            reply_markup: None,
        }
    }

    /// The same message with buttons under it.
    pub fn with_keyboard(mut self, keyboard: InlineKeyboardMarkup) -> Self {
        self.reply_markup = Some(keyboard);
        self
    }
}

/// Buttons under a message, row by row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InlineKeyboardMarkup {
    pub inline_keyboard: Vec<Vec<InlineKeyboardButton>>,
}

impl InlineKeyboardMarkup {
    /// One row of buttons.
    pub fn row(buttons: impl IntoIterator<Item = InlineKeyboardButton>) -> Self {
        InlineKeyboardMarkup {
            inline_keyboard: vec![buttons.into_iter().collect()],
        }
    }
}

/// A button that sends `callback_data` back to the bot when pressed (a
/// callback query).
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineKeyboardButton {
    pub text: String,
    pub callback_data: Option<CallbackData>,
}

impl InlineKeyboardButton {
    pub fn callback(text: impl Into<String>, data: CallbackData) -> Self {
        InlineKeyboardButton {
            text: text.into(),
            callback_data: Some(data),
        }
    }
}

/// What a button sends back: 1-64 bytes, as the Bot API requires.
///
/// A literal is checked when it is built in a `const`, so a mistake fails
/// the build:
/// ```
/// use telegram_lambda_bot::telegram::CallbackData;
/// const PLUS: CallbackData = CallbackData::new("counter:+1");
/// assert_eq!(PLUS.as_str(), "counter:+1");
/// ```
/// Data made at run time goes through [`CallbackData::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CallbackData(std::borrow::Cow<'static, str>);

/// Why text cannot be callback data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("callback_data must be 1-64 bytes, got {0}")]
pub struct CallbackDataError(pub usize);

impl CallbackData {
    /// The longest callback_data Telegram accepts, in bytes.
    pub const MAX_BYTES: usize = 64;

    /// Checked data from a literal; in a `const` a bad one fails the build.
    pub const fn new(data: &'static str) -> Self {
        assert!(
            !data.is_empty() && data.len() <= Self::MAX_BYTES,
            "callback_data must be 1-64 bytes"
        );
        CallbackData(std::borrow::Cow::Borrowed(data))
    }

    /// Data made at run time.
    pub fn parse(data: impl Into<String>) -> Result<Self, CallbackDataError> {
        let data = data.into();
        if data.is_empty() || data.len() > Self::MAX_BYTES {
            return Err(CallbackDataError(data.len()));
        }
        Ok(CallbackData(std::borrow::Cow::Owned(data)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CallbackData {
    type Error = CallbackDataError;
    fn try_from(data: String) -> Result<Self, Self::Error> {
        CallbackData::parse(data)
    }
}

impl From<CallbackData> for String {
    fn from(data: CallbackData) -> String {
        data.0.into_owned()
    }
}

/// Telegram's limit for a message text. The server counts code points after
/// entity parsing; counting UTF-16 units instead is never more than that.
pub const MAX_TEXT_UTF16: usize = 4096;

/// Cuts `text` to at most [`MAX_TEXT_UTF16`] UTF-16 code units, on a character
/// boundary, ending with an ellipsis when something was cut.
pub fn truncate_to_limit(text: String) -> String {
    if text.encode_utf16().count() <= MAX_TEXT_UTF16 {
        return text;
    }
    const ELLIPSIS: char = '…';
    let budget = MAX_TEXT_UTF16 - ELLIPSIS.len_utf16();
    let mut used = 0;
    let mut end = 0;
    for (index, c) in text.char_indices() {
        if used + c.len_utf16() > budget {
            break;
        }
        used += c.len_utf16();
        end = index + c.len_utf8();
    }
    let mut cut = text;
    cut.truncate(end);
    cut.push(ELLIPSIS);
    cut
}

/// The parameters of editMessageText that this project uses: a new text
/// (and keyboard) for a message the bot sent.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditMessageText {
    pub chat_id: ChatId,
    pub message_id: MessageId,
    pub text: String,
    /// The keyboard after the edit; without it the message loses its
    /// buttons.
    pub reply_markup: Option<InlineKeyboardMarkup>,
}

impl EditMessageText {
    /// New text for `message` (one the bot sent), cut to Telegram's limit.
    /// Without [`EditMessageText::with_keyboard`] the message loses its
    /// buttons.
    pub fn of(message: &Message, text: impl Into<String>) -> Self {
        EditMessageText {
            chat_id: message.chat.id,
            message_id: message.message_id,
            text: truncate_to_limit(text.into()),
            reply_markup: None,
        }
    }

    /// The same edit, keeping (or setting) buttons under the message.
    pub fn with_keyboard(mut self, keyboard: InlineKeyboardMarkup) -> Self {
        self.reply_markup = Some(keyboard);
        self
    }
}

/// Shows the bot doing something in a chat (sendChatAction): "typing"
/// for about 5 s, or until its next message there.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendChatAction {
    pub chat_id: ChatId,
    pub action: String,
    pub message_thread_id: Option<ThreadId>,
}

impl SendChatAction {
    pub fn typing(chat_id: ChatId, message_thread_id: Option<ThreadId>) -> Self {
        SendChatAction {
            chat_id,
            action: "typing".to_owned(),
            message_thread_id,
        }
    }
}

/// A partial answer shown in a private chat while it is written
/// (sendMessageDraft, Bot API 9.5). Telegram shows it for about 30 s; the
/// answer itself must still be sent with sendMessage.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessageDraft {
    pub chat_id: ChatId,
    /// Non-zero; drafts with the same id replace each other.
    pub draft_id: i64,
    pub text: String,
    pub message_thread_id: Option<ThreadId>,
}

/// The parameters of answerCallbackQuery: stops the button's spinner, with
/// an optional notification or alert.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerCallbackQuery {
    pub callback_query_id: String,
    pub text: Option<String>,
    pub show_alert: Option<bool>,
}

impl AnswerCallbackQuery {
    /// Stops the spinner of `query`'s button, saying nothing.
    pub fn to(query: &super::CallbackQuery) -> Self {
        AnswerCallbackQuery {
            callback_query_id: query.id.clone(),
            text: None,
            show_alert: None,
        }
    }

    /// With a notification at the top of the chat.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
}

/// One entry of the bot's command menu (setMyCommands, getMyCommands).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotCommand {
    pub command: String,
    pub description: String,
}

/// Why a command cannot be in Telegram's menu.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotCommandError {
    #[error("/{0}: a command is 1-32 of a-z, 0-9 and _")]
    Name(String),
    #[error("/{0}: a description is 1-256 characters")]
    Description(String),
    #[error("{0} commands: the menu holds at most 100")]
    TooMany(usize),
}

impl BotCommand {
    /// The menu for `commands` (name, description), checked against the
    /// Bot API's rules for setMyCommands.
    pub fn menu(commands: &[(&str, &str)]) -> Result<Vec<BotCommand>, BotCommandError> {
        if commands.len() > 100 {
            return Err(BotCommandError::TooMany(commands.len()));
        }
        commands
            .iter()
            .map(|&(command, description)| {
                let name_ok = (1..=32).contains(&command.len())
                    && command
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !name_ok {
                    return Err(BotCommandError::Name(command.to_owned()));
                }
                if !(1..=256).contains(&description.chars().count()) {
                    return Err(BotCommandError::Description(command.to_owned()));
                }
                Ok(BotCommand {
                    command: command.to_owned(),
                    description: description.to_owned(),
                })
            })
            .collect()
    }
}

/// The parameters of setMyCommands, for the default scope (every chat) and
/// every language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetMyCommands {
    pub commands: Vec<BotCommand>,
}

/// The parameters of deleteWebhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeleteWebhook {
    pub drop_pending_updates: bool,
}

/// The bot's own account, as getMe returns it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Me {
    pub id: UserId,
    pub is_bot: bool,
    pub first_name: String,
    #[serde(default)]
    pub username: Option<String>,
}

/// The parameters of setWebhook that this project uses. `Debug` hides the
/// secret token.
#[skip_serializing_none]
#[derive(Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SetWebhook {
    pub url: String,
    pub secret_token: Option<String>,
    pub allowed_updates: Option<Vec<String>>,
    pub max_connections: Option<u8>,
    pub drop_pending_updates: Option<bool>,
}

impl fmt::Debug for SetWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetWebhook")
            .field("url", &self.url)
            .field(
                "secret_token",
                &self.secret_token.as_ref().map(|_| "[redacted]"),
            )
            .field("allowed_updates", &self.allowed_updates)
            .field("max_connections", &self.max_connections)
            .field("drop_pending_updates", &self.drop_pending_updates)
            .finish()
    }
}

/// What getWebhookInfo reports.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
pub struct WebhookInfo {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub has_custom_certificate: bool,
    #[serde(default)]
    pub pending_update_count: u64,
    pub ip_address: Option<String>,
    pub last_error_date: Option<i64>,
    pub last_error_message: Option<String>,
    pub max_connections: Option<u32>,
    pub allowed_updates: Option<Vec<String>>,
}

/// The parameters of getUpdates.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GetUpdates {
    pub offset: Option<UpdateId>,
    pub limit: Option<u8>,
    /// Seconds to wait for an update; the server clamps it to 50.
    pub timeout: Option<u32>,
    pub allowed_updates: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_surrogate_pairs_whole() {
        let text = "😀".repeat(3000); // 6000 UTF-16 units
        let cut = truncate_to_limit(text);
        assert!(cut.encode_utf16().count() <= MAX_TEXT_UTF16);
        assert!(cut.ends_with('…'));
        assert!(cut.trim_end_matches('…').chars().all(|c| c == '😀'));
    }

    #[test]
    fn set_webhook_debug_hides_the_secret() {
        let request = SetWebhook {
            url: "https://example.com/webhook".into(),
            secret_token: Some("hush-hush_42".into()),
            ..SetWebhook::default()
        };
        let debug = format!("{request:?}");
        assert!(!debug.contains("hush-hush_42"), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
    }

    #[test]
    fn text_within_the_limit_is_untouched() {
        let text = "a".repeat(MAX_TEXT_UTF16);
        assert_eq!(truncate_to_limit(text.clone()), text);
    }
}
