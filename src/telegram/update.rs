//! What Telegram sends: an update and the parts of it this bot reads.
//!
//! Deserialisation is lenient on purpose: Telegram adds fields and update kinds
//! with every Bot API version, and a bot that fails on them loses messages.
//! Unknown fields are ignored, unknown update kinds keep their raw JSON.

use super::{ChatId, MessageId, ThreadId, UpdateId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use serde_with::skip_serializing_none;
/// One incoming update: its id and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub id: UpdateId,
    pub kind: UpdateKind,
}

/// What an update is about. Exactly one kind per update.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum UpdateKind {
    Message(Message),
    EditedMessage(Message),
    ChannelPost(Message),
    EditedChannelPost(Message),
    CallbackQuery(CallbackQuery),
    /// Any other kind, including those that later Bot API versions add, and a
    /// known kind whose payload did not have the shape we expect. `kind` is
    /// the update's field name, `raw` its payload.
    Other {
        kind: String,
        raw: Value,
    },
}

impl Update {
    /// The kind's name as Telegram spells it (`message`, `callback_query`, ...).
    pub fn kind_name(&self) -> &str {
        match &self.kind {
            UpdateKind::Message(_) => "message",
            UpdateKind::EditedMessage(_) => "edited_message",
            UpdateKind::ChannelPost(_) => "channel_post",
            UpdateKind::EditedChannelPost(_) => "edited_channel_post",
            UpdateKind::CallbackQuery(_) => "callback_query",
            UpdateKind::Other { kind, .. } => kind,
        }
    }

    /// When the update's message was sent (Unix seconds), for the kinds
    /// that carry a message with a date.
    pub fn date(&self) -> Option<i64> {
        match &self.kind {
            UpdateKind::Message(m) | UpdateKind::ChannelPost(m) => Some(m.date),
            UpdateKind::EditedMessage(m) | UpdateKind::EditedChannelPost(m) => {
                Some(m.edit_date.unwrap_or(m.date))
            }
            // Member changes, join requests, reactions, business messages:
            // their payload's own date.
            UpdateKind::Other { raw, .. } => raw.get("date").and_then(Value::as_i64),
            UpdateKind::CallbackQuery(_) => None,
        }
        .filter(|date| *date > 0)
    }

    /// The chat the update happened in, when it has one we model.
    pub fn chat(&self) -> Option<&Chat> {
        match &self.kind {
            UpdateKind::Message(m)
            | UpdateKind::EditedMessage(m)
            | UpdateKind::ChannelPost(m)
            | UpdateKind::EditedChannelPost(m) => Some(&m.chat),
            UpdateKind::CallbackQuery(q) => q.message.as_ref().map(|m| &m.chat),
            UpdateKind::Other { .. } => None,
        }
    }
}

/// Why a request body is not an update.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpdateError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is JSON but not an object")]
    NotAnObject,
    #[error("the body has no integer update_id")]
    NoUpdateId,
}

impl Update {
    /// Until when (Unix seconds) Telegram's server keeps the update for
    /// delivery, given that it was received at `received`: a day from the
    /// message's date (the edit's date for an edit), 150 s for a callback
    /// query, 30 s for an inline query, a day otherwise. As the timeouts
    /// each `Client::add_*` of tdlib/telegram-bot-api passes to `add_update`.
    pub fn expires_at(&self, received: i64) -> i64 {
        const DAY: i64 = 86_400;
        let a_day_from = |date: i64| if date > 0 { date + DAY } else { received + DAY };
        match &self.kind {
            UpdateKind::Message(m) | UpdateKind::ChannelPost(m) => a_day_from(m.date),
            UpdateKind::EditedMessage(m) | UpdateKind::EditedChannelPost(m) => {
                a_day_from(m.edit_date.unwrap_or(m.date))
            }
            UpdateKind::CallbackQuery(_) => received + 150,
            UpdateKind::Other { kind, .. } => match kind.as_str() {
                "inline_query" => received + 30,
                "shipping_query" | "pre_checkout_query" => received + 150,
                "chosen_inline_result" => received + 600,
                _ => received + DAY,
            },
        }
    }

    /// How long Telegram keeps an update from when it receives it, for the
    /// kinds whose lifetime counts from then (presses, inline queries);
    /// `None` for those counted from their message's date.
    pub fn lifetime_from_receipt(&self) -> Option<std::time::Duration> {
        match &self.kind {
            UpdateKind::Message(_)
            | UpdateKind::ChannelPost(_)
            | UpdateKind::EditedMessage(_)
            | UpdateKind::EditedChannelPost(_) => None,
            _ => u64::try_from(self.expires_at(0))
                .ok()
                .map(std::time::Duration::from_secs),
        }
    }

    /// Parses an update from a webhook body or one element of getUpdates.
    pub fn from_slice(body: &[u8]) -> Result<Self, UpdateError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| UpdateError::NotJson(e.to_string()))?;
        Self::from_value(value)
    }

    /// The update as JSON again, as Telegram's shape: what the queue
    /// carries to the worker. Fields this bot does not model are not kept.
    pub fn to_value(&self) -> Value {
        let payload = match &self.kind {
            UpdateKind::Message(m)
            | UpdateKind::EditedMessage(m)
            | UpdateKind::ChannelPost(m)
            | UpdateKind::EditedChannelPost(m) => serde_json::to_value(m),
            UpdateKind::CallbackQuery(q) => serde_json::to_value(q),
            UpdateKind::Other { raw, .. } => Ok(raw.clone()),
        }
        .unwrap_or(Value::Null);
        let mut object = Map::new();
        object.insert("update_id".to_owned(), Value::from(self.id.0));
        object.insert(self.kind_name().to_owned(), payload);
        Value::Object(object)
    }

    /// Parses an update from JSON already read.
    pub fn from_value(value: Value) -> Result<Self, UpdateError> {
        let Value::Object(mut object) = value else {
            return Err(UpdateError::NotAnObject);
        };
        let id = object
            .remove("update_id")
            .and_then(|v| v.as_i64())
            .map(UpdateId)
            .ok_or(UpdateError::NoUpdateId)?;
        Ok(Update {
            id,
            kind: UpdateKind::from_fields(object),
        })
    }
}

impl UpdateKind {
    fn from_fields(object: Map<String, Value>) -> Self {
        // An update carries exactly one optional field besides update_id; an
        // update with none, or with a kind we do not know, still parses.
        let Some((kind, raw)) = object.into_iter().next() else {
            return UpdateKind::Other {
                kind: "empty".to_owned(),
                raw: Value::Null,
            };
        };
        fn typed<T: serde::de::DeserializeOwned>(raw: &Value) -> Option<T> {
            T::deserialize(raw).ok()
        }
        let parsed = match kind.as_str() {
            "message" => typed(&raw).map(UpdateKind::Message),
            "edited_message" => typed(&raw).map(UpdateKind::EditedMessage),
            "channel_post" => typed(&raw).map(UpdateKind::ChannelPost),
            "edited_channel_post" => typed(&raw).map(UpdateKind::EditedChannelPost),
            "callback_query" => typed(&raw).map(UpdateKind::CallbackQuery),
            _ => None,
        };
        parsed.unwrap_or(UpdateKind::Other { kind, raw })
    }
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct User {
    pub id: UserId,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatType {
    Private,
    Group,
    Supergroup,
    Channel,
    /// A chat type added by a later Bot API version.
    #[serde(other)]
    Unknown,
}

impl ChatType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatType::Private => "private",
            ChatType::Group => "group",
            ChatType::Supergroup => "supergroup",
            ChatType::Channel => "channel",
            ChatType::Unknown => "unknown",
        }
    }
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Chat {
    pub id: ChatId,
    #[serde(rename = "type")]
    pub kind: ChatType,
    pub title: Option<String>,
    pub username: Option<String>,
    pub is_forum: Option<bool>,
}

/// A message. Only the fields the bot reads are modelled; media and service
/// messages are messages without `text`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Message {
    pub message_id: MessageId,
    pub message_thread_id: Option<ThreadId>,
    pub from: Option<User>,
    #[serde(default)]
    pub date: i64,
    /// When the message was last edited (edited messages only).
    pub edit_date: Option<i64>,
    pub chat: Chat,
    pub text: Option<String>,
    /// What Telegram marked in the text (commands, mentions, links...).
    /// `None` when the update has no `entities`, or they are not the shape
    /// Telegram sends: the message still parses.
    #[serde(default, deserialize_with = "lenient_entities")]
    pub entities: Option<Vec<MessageEntity>>,
    /// True when the message was sent to a forum topic; only then does
    /// `message_thread_id` name a topic a reply can be sent to.
    pub is_topic_message: Option<bool>,
}

/// A marked part of a message's text. Offsets and lengths count UTF-16
/// code units, as Telegram counts them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct MessageEntity {
    /// `bot_command`, `mention`, `url`, `bold`...
    #[serde(rename = "type")]
    pub kind: String,
    pub offset: i64,
    pub length: i64,
}

fn lenient_entities<'de, D>(deserializer: D) -> Result<Option<Vec<MessageEntity>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = Value::deserialize(deserializer)?;
    Ok(Vec::<MessageEntity>::deserialize(value).ok())
}

impl Message {
    /// The text marked by the first entity of `kind` that starts at UTF-16
    /// offset `offset`, and the text after it.
    pub fn entity_at(&self, kind: &str, offset: i64) -> Option<(&str, &str)> {
        let text = self.text.as_deref()?;
        let entity = self
            .entities
            .as_ref()?
            .iter()
            .find(|e| e.kind == kind && e.offset == offset)?;
        let start = utf16_to_byte(text, usize::try_from(entity.offset).ok()?)?;
        let end = utf16_to_byte(
            text,
            usize::try_from(entity.offset.checked_add(entity.length)?).ok()?,
        )?;
        Some((text.get(start..end)?, text.get(end..)?))
    }

    /// The forum topic a reply must go to, if any.
    pub fn topic(&self) -> Option<ThreadId> {
        if self.is_topic_message == Some(true) {
            self.message_thread_id
        } else {
            None
        }
    }
}

/// A button press on an inline keyboard.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    /// Absent for messages sent via inline mode; an inaccessible (too old)
    /// message has `date` 0 and still parses here.
    pub message: Option<Message>,
    pub data: Option<String>,
}

/// The byte index of UTF-16 position `units` in `text`; `None` past its
/// end or inside a character.
fn utf16_to_byte(text: &str, units: usize) -> Option<usize> {
    let mut counted = 0;
    for (index, c) in text.char_indices() {
        if counted == units {
            return Some(index);
        }
        if counted > units {
            return None;
        }
        counted += c.len_utf16();
    }
    (counted == units).then_some(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn update_kind_from_a_future_bot_api_still_parses() {
        let update = Update::from_value(json!({
            "update_id": 9_000_000_001_i64,
            "purchased_paid_media": {"from": {"id": 1}, "payload": "x"}
        }))
        .unwrap();
        assert_eq!(update.id, UpdateId(9_000_000_001));
        assert_eq!(update.kind_name(), "purchased_paid_media");
        assert!(matches!(update.kind, UpdateKind::Other { .. }));
    }

    #[test]
    fn unknown_fields_and_chat_types_are_tolerated() {
        let update = Update::from_value(json!({
            "update_id": 1,
            "message": {
                "message_id": 5, "date": 1, "text": "hi", "new_field": {"a": 1},
                "chat": {"id": -1_002_000_000_000_i64, "type": "future_type"}
            }
        }))
        .unwrap();
        let UpdateKind::Message(message) = update.kind else {
            panic!("not a message: {update:?}");
        };
        assert_eq!(message.chat.kind, ChatType::Unknown);
        assert_eq!(message.chat.id, ChatId(-1_002_000_000_000));
    }

    #[test]
    fn entities_are_read_in_utf16_units_and_bad_ones_are_ignored() {
        let message = |entities: Value| {
            let update = Update::from_value(json!({"update_id": 1, "message": {
                "message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"},
                "text": "🦀/cmd@Bot! rest", "entities": entities
            }}))
            .unwrap();
            let UpdateKind::Message(message) = update.kind else {
                panic!("not a message: {update:?}");
            };
            message
        };
        let good = message(json!([{"type": "bot_command", "offset": 2, "length": 8}]));
        assert_eq!(
            good.entity_at("bot_command", 2),
            Some(("/cmd@Bot", "! rest"))
        );
        assert_eq!(good.entity_at("bot_command", 0), None);
        let inside_a_character =
            message(json!([{"type": "bot_command", "offset": 1, "length": 3}]));
        assert_eq!(inside_a_character.entity_at("bot_command", 1), None);
        let past_the_end = message(json!([{"type": "bot_command", "offset": 2, "length": 99}]));
        assert_eq!(past_the_end.entity_at("bot_command", 2), None);
        assert_eq!(message(json!("not a list")).entities, None);
        assert_eq!(message(json!([{"type": 5}])).entities, None);
    }

    #[test]
    fn a_message_of_unexpected_shape_is_kept_as_other() {
        let update = Update::from_value(json!({"update_id": 2, "message": {"chat": 5}})).unwrap();
        assert_eq!(update.kind_name(), "message");
        assert!(matches!(update.kind, UpdateKind::Other { .. }));
    }

    #[test]
    fn bodies_that_are_not_updates_are_told_apart() {
        assert!(matches!(
            Update::from_slice(b"{"),
            Err(UpdateError::NotJson(_))
        ));
        assert_eq!(Update::from_slice(b"[1]"), Err(UpdateError::NotAnObject));
        assert_eq!(Update::from_slice(b"{}"), Err(UpdateError::NoUpdateId));
        assert_eq!(
            Update::from_slice(br#"{"update_id":"1"}"#),
            Err(UpdateError::NoUpdateId)
        );
        assert_eq!(
            Update::from_slice(br#"{"update_id":1.5}"#),
            Err(UpdateError::NoUpdateId)
        );
    }
}
