//! What the bot can do in answer to an update. The bot returns actions; the
//! shells carry them out in order, through the same Bot API client.

use crate::telegram::{AnswerCallbackQuery, EditMessageText, SendMessage};

/// One Bot API call the bot asks for.
/// Serialised into the outbox of an update while it is being answered.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Action {
    /// Send a message (sendMessage).
    Send(SendMessage),
    /// Change the text of a message the bot sent (editMessageText).
    Edit(EditMessageText),
    /// Stop a button's spinner, optionally with a notification
    /// (answerCallbackQuery).
    AnswerCallback(AnswerCallbackQuery),
}

impl Action {
    /// The Bot API method that carries the action out.
    pub fn method(&self) -> &'static str {
        match self {
            Action::Send(_) => "sendMessage",
            Action::Edit(_) => "editMessageText",
            Action::AnswerCallback(_) => "answerCallbackQuery",
        }
    }
}

impl From<SendMessage> for Action {
    fn from(message: SendMessage) -> Self {
        Action::Send(message)
    }
}

impl From<EditMessageText> for Action {
    fn from(edit: EditMessageText) -> Self {
        Action::Edit(edit)
    }
}

impl From<AnswerCallbackQuery> for Action {
    fn from(answer: AnswerCallbackQuery) -> Self {
        Action::AnswerCallback(answer)
    }
}
