//! What tests, controls and embedding programs do with a running stand-in:
//! read the calls it received, inject faults, make chats known, queue
//! updates (messages from users, presses of inline buttons) and follow
//! their delivery, and see the bot's messages, answers to callback
//! queries and commands.

use crate::callbacks::{self, PressError};
use crate::clock::now;
use crate::keyboards::{self, Which};
use crate::kinds;
use crate::shared::Shared;
use crate::state::{
    self, Activity, BotCommand, Call, CallbackAnswer, CommandScope, DeliveryError, Draft, Fault,
    QueueKey, Queued,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// What tests and controls do with a running stand-in; a `StandIn`
/// dereferences to it.
#[derive(Debug, Clone)]
pub struct Handle(pub(crate) Arc<Shared>);

impl Handle {
    pub fn token(&self) -> &str {
        &self.0.options.token
    }

    /// Every Bot API call received, in order, with the status answered.
    pub fn calls(&self) -> Vec<Call> {
        self.0.state().calls.clone()
    }

    /// The parameters of every call to `method` (case-insensitive).
    pub fn calls_to(&self, method: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.method.eq_ignore_ascii_case(method))
            .map(|c| c.params)
            .collect()
    }

    /// The parameters of every sendMessage that was carried out (sent to
    /// the chat), whatever the caller was answered; a `reply_markup` is
    /// given as the message got it (as Telegram returns it in the Message),
    /// and left out when the message got none.
    pub fn sent_messages(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.method.eq_ignore_ascii_case("sendMessage") && c.performed)
            .map(|c| with_kept_markup(c.params))
            .collect()
    }

    /// Makes the next call to `method` fail as `fault` says. Faults queue up
    /// per method and are used one per call.
    pub fn inject(&self, method: &str, fault: Fault) {
        self.0
            .state()
            .faults
            .entry(method.to_ascii_lowercase())
            .or_default()
            .push_back(fault);
    }

    /// Makes every call to `method` about chat `chat_id` fail as `fault`
    /// says, until [`StandIn::heal_chat`]; before the queued faults.
    pub fn fail_chat(&self, method: &str, chat_id: i64, fault: Fault) {
        self.0
            .state()
            .chat_faults
            .insert((method.to_ascii_lowercase(), chat_id), fault);
    }

    /// Ends what [`StandIn::fail_chat`] started.
    pub fn heal_chat(&self, method: &str, chat_id: i64) {
        self.0
            .state()
            .chat_faults
            .remove(&(method.to_ascii_lowercase(), chat_id));
    }

    /// Learns the chats, users and messages in `update`, as Telegram knows
    /// them once a user wrote.
    pub fn observe_update(&self, update: &Value) {
        self.0.state().observe_update(update);
    }

    /// Marks a private chat as having blocked the bot.
    pub fn block_chat(&self, chat_id: i64) {
        self.0.state().block(chat_id);
    }

    /// Queues an update for getUpdates or the webhook (and learns from it),
    /// as Telegram creates one: unless its kind is not among the allowed
    /// updates set last, in which case it is not queued at all
    /// (Client::add_update_impl). Its lifetime starts now.
    pub fn enqueue_update(&self, update: Value) {
        self.queue(update);
    }

    /// As [`Handle::enqueue_update`]; false when the update's kind is not
    /// allowed, so nothing was queued. A callback query in it waits for
    /// its answer from now.
    fn queue(&self, update: Value) -> bool {
        let queued_at = tokio::time::Instant::now();
        let lifetime = self.0.scaled(kinds::lifetime_secs(&update, now()));
        let id = state::update_id(&update);
        let queue = match kinds::webhook_queue_id(&update) {
            Some(queue) => QueueKey::Shared(queue),
            None => QueueKey::Own(id),
        };
        let mut state = self.0.state();
        // An update given with its own id moves the queue's tail past it.
        state.next_update_id = state.next_update_id.max(id);
        // The server learns about chats and messages before it decides.
        state.observe_update(&update);
        if !kinds::is_allowed(state.allowed_updates, &update) {
            return false;
        }
        callbacks::register(&mut state, &update, queued_at);
        state.pending.push_back(Queued {
            update,
            id,
            queue,
            queued_at,
            expires_at: queued_at + lifetime,
        });
        drop(state);
        self.0.updates_arrived.notify_waiters();
        true
    }

    /// User `user_id` named `first_name` presses the inline button with
    /// callback data `data` under message `message_id`, which the bot sent
    /// to chat `chat_id`: queues the `callback_query` update Telegram makes
    /// (Client::JsonCallbackQuery: a new query id, the user, the message
    /// as it now is, the chat's `chat_instance` and the data), to be
    /// delivered by webhook or getUpdates like any other. Returns the
    /// update id. Refused when the bot sent no such message or it shows no
    /// button with that data: Telegram only sends data of buttons that
    /// exist.
    pub fn press_button(
        &self,
        user_id: i64,
        first_name: &str,
        chat_id: i64,
        message_id: i64,
        data: &str,
    ) -> Result<i64, PressError> {
        self.press(
            user_id,
            first_name,
            chat_id,
            Some(message_id),
            &Which::Data(data.to_owned()),
        )
        .map(|pressed| pressed.update_id)
    }

    /// A person pressing a button of the last message the bot sent to
    /// `chat_id` with a keyboard, named by its label or by its number
    /// (from 1, row by row), as a chat in a terminal offers it. Returns
    /// the update id and the message's id.
    pub fn press_shown_button(
        &self,
        user_id: i64,
        first_name: &str,
        chat_id: i64,
        label_or_number: &str,
    ) -> Result<(i64, i64), PressError> {
        let number = label_or_number
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| label_or_number.parse::<usize>().ok())
            .flatten();
        let which = match number {
            Some(number) => Which::Index(number),
            None => Which::Label(label_or_number.to_owned()),
        };
        self.press(user_id, first_name, chat_id, None, &which)
            .map(|pressed| (pressed.update_id, pressed.message_id))
    }

    /// A press of the button `which` names, under `message_id` or, when
    /// None, the last message the bot sent to the chat that shows a
    /// keyboard.
    pub(crate) fn press(
        &self,
        user_id: i64,
        first_name: &str,
        chat_id: i64,
        message_id: Option<i64>,
        which: &Which,
    ) -> Result<Pressed, PressError> {
        let mut state = self.0.state();
        let message_id = match message_id {
            Some(id) => id,
            None => state
                .bot_messages
                .iter()
                .filter(|((chat, _), m)| *chat == chat_id && m.get("reply_markup").is_some())
                .map(|((_, id), _)| *id)
                .max()
                .ok_or(PressError::NoKeyboard { chat_id })?,
        };
        let Some(message) = state.bot_messages.get(&(chat_id, message_id)).cloned() else {
            return Err(PressError::MessageNotFound {
                chat_id,
                message_id,
            });
        };
        let data =
            keyboards::callback_data(message.get("reply_markup"), which).map_err(|reason| {
                PressError::NoSuchButton {
                    chat_id,
                    message_id,
                    reason,
                }
            })?;
        state.next_update_id += 1;
        state.next_query_id += 1;
        let (update_id, query_id) = (state.next_update_id, state.next_query_id.to_string());
        let chat_instance = callbacks::chat_instance(state.bot_id, chat_id);
        drop(state);
        let update = serde_json::json!({"update_id": update_id, "callback_query": {
            "id": query_id,
            "from": {"id": user_id, "is_bot": false, "first_name": first_name},
            "message": message,
            "chat_instance": chat_instance,
            "data": data,
        }});
        if !self.queue(update) {
            return Err(PressError::NotAllowed);
        }
        Ok(Pressed {
            update_id,
            callback_query_id: query_id,
            message_id,
            data,
        })
    }

    /// Every answerCallbackQuery call that reached Telegram's checks, in
    /// order, taken or refused.
    pub fn callback_answers(&self) -> Vec<CallbackAnswer> {
        self.0.state().answers.clone()
    }

    /// The drafts the bot streamed (sendMessageDraft), in order.
    pub fn drafts(&self) -> Vec<Draft> {
        self.0.state().drafts.clone()
    }

    /// How many answerCallbackQuery calls named the query
    /// `callback_query_id`, taken or refused: more than one means the bot
    /// answered a query twice.
    pub fn callback_answer_count(&self, callback_query_id: &str) -> usize {
        self.0
            .state()
            .answers
            .iter()
            .filter(|a| a.callback_query_id == callback_query_id)
            .count()
    }

    /// The commands set for the default scope and every language: what a
    /// user sees unless a narrower list was set.
    pub fn commands(&self) -> Vec<BotCommand> {
        self.commands_for(&CommandScope::Default, "")
    }

    /// The commands set for exactly `scope` and `language_code` ("" for
    /// every language), as getMyCommands answers them.
    pub fn commands_for(&self, scope: &CommandScope, language_code: &str) -> Vec<BotCommand> {
        self.0
            .state()
            .commands
            .get(&(scope.clone(), language_code.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// How many setMyCommands calls arrived since the last reset, taken or
    /// refused: 0 means the bot left its commands alone.
    pub fn set_my_commands_calls(&self) -> usize {
        self.calls_to("setMyCommands").len()
    }

    /// Message `message_id` the bot sent to chat `chat_id`, as it now is
    /// (edits included), in Telegram's Message shape.
    pub fn bot_message(&self, chat_id: i64, message_id: i64) -> Option<Value> {
        self.0
            .state()
            .bot_messages
            .get(&(chat_id, message_id))
            .cloned()
    }

    /// How many sends and edits happened so far: a mark for
    /// [`Handle::activity_since`].
    pub(crate) fn activity_mark(&self) -> (usize, usize) {
        let state = self.0.state();
        (state.activity.len(), state.answers.len())
    }

    /// The sends and edits in chat `chat_id` since `mark`, and the answers
    /// since then.
    pub(crate) fn activity_since(
        &self,
        mark: (usize, usize),
        chat_id: i64,
    ) -> (Vec<Activity>, Vec<CallbackAnswer>) {
        let state = self.0.state();
        let activity = state
            .activity
            .iter()
            .skip(mark.0)
            .filter(|a| a.chat_id == chat_id)
            .cloned()
            .collect();
        let answers = state.answers.iter().skip(mark.1).cloned().collect();
        (activity, answers)
    }

    /// Numbers the next update `next`, as Telegram may after a bot had no
    /// update for a week: ids start afresh at a random value, lower than
    /// before. Updates already queued keep their ids.
    pub fn restart_update_ids(&self, next: i64) {
        self.0.state().next_update_id = next - 1;
    }

    /// Queues a text message from a user in their private chat with the bot,
    /// as Telegram would after the user wrote it. Returns the update id.
    pub fn enqueue_text(&self, user_id: i64, text: &str) -> i64 {
        self.enqueue_text_from(user_id, "User", text)
    }

    /// Queues a text message from user `user_id` named `first_name`, in
    /// their private chat with the bot. Returns the update id.
    pub fn enqueue_text_from(&self, user_id: i64, first_name: &str, text: &str) -> i64 {
        let mut state = self.0.state();
        state.next_update_id += 1;
        state.next_message_id += 1;
        let (update_id, message_id) = (state.next_update_id, state.next_message_id);
        drop(state);
        let user = serde_json::json!({"id": user_id, "is_bot": false, "first_name": first_name});
        let chat = serde_json::json!({"id": user_id, "first_name": first_name, "type": "private"});
        let mut message = serde_json::json!({
            "message_id": message_id,
            "from": user,
            "chat": chat,
            "date": now(),
            "text": text,
        });
        if let Some(length) = leading_command_length(text) {
            message["entities"] =
                serde_json::json!([{"type": "bot_command", "offset": 0, "length": length}]);
        }
        self.enqueue_update(serde_json::json!({"update_id": update_id, "message": message}));
        update_id
    }

    /// Waits until update `update_id` left the queue: delivered to the
    /// webhook with a 2xx, confirmed by a getUpdates offset, or dropped.
    /// False when `timeout` passed first.
    pub async fn wait_settled(&self, update_id: i64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.0.updates_arrived.notified();
            let pending = self.0.state().pending.iter().any(|u| u.id == update_id);
            if !pending {
                return true;
            }
            // Confirmations by offset do not notify; look again soon.
            let tick = tokio::time::Instant::now() + Duration::from_millis(50);
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            let _ = tokio::time::timeout_at(tick.min(deadline), changed).await;
        }
    }

    /// The texts the bot sent to chat `chat_id`, in order, as sendMessage
    /// parameters.
    pub fn replies_to(&self, chat_id: i64) -> Vec<Value> {
        self.sent_messages()
            .into_iter()
            .filter(|m| {
                m.get("chat_id")
                    .and_then(|c| c.as_i64().or_else(|| c.as_str()?.parse().ok()))
                    == Some(chat_id)
            })
            .collect()
    }

    /// Update ids delivered to the webhook with a 2xx, in order.
    pub fn delivered(&self) -> Vec<i64> {
        self.0.state().delivered.clone()
    }

    /// Webhook deliveries so far: each attempt's update id and how it went
    /// ("ok" or Telegram's error message).
    pub fn deliveries(&self) -> Vec<(i64, String)> {
        self.0.state().delivery_log.clone()
    }

    /// How many getUpdates calls have started to wait (a long poll that
    /// found nothing): a test knows its call is waiting when this grows.
    pub fn long_polls(&self) -> u64 {
        self.0.state().polls.next_ticket
    }

    /// Updates queued and not yet confirmed by a getUpdates offset.
    pub fn pending_updates(&self) -> Vec<Value> {
        self.0
            .state()
            .pending
            .iter()
            .map(|u| u.update.clone())
            .collect()
    }

    /// Records a failed webhook delivery `seconds_ago`, as getWebhookInfo
    /// then reports it (`message` in Telegram's wording, such as "Wrong
    /// response from the webhook: 502 Bad Gateway"). No effect without a
    /// webhook.
    pub fn record_delivery_error(&self, message: &str, seconds_ago: i64) {
        if let Some(webhook) = self.0.state().webhook.as_mut() {
            webhook.last_error = Some(DeliveryError {
                date: now() - seconds_ago,
                message: message.to_owned(),
            });
        }
    }

    /// Forgets calls and faults; keeps known chats, the bot's messages,
    /// callback queries and their answers, and the bot's commands.
    pub fn reset(&self) {
        let mut state = self.0.state();
        state.calls.clear();
        state.calls_generation += 1;
        state.faults.clear();
    }
}

/// What a press queued.
#[derive(Debug, Clone)]
pub(crate) struct Pressed {
    pub(crate) update_id: i64,
    pub(crate) callback_query_id: String,
    pub(crate) message_id: i64,
    pub(crate) data: String,
}

/// sendMessage parameters with `reply_markup` as the message got it.
fn with_kept_markup(mut params: Value) -> Value {
    let Some(object) = params.as_object_mut() else {
        return params;
    };
    if let Some(given) = object.get("reply_markup") {
        // The call was carried out, so its markup was read; were it not,
        // it is shown as given.
        if let Ok(kept) = keyboards::reply_markup(Some(given)) {
            match kept {
                Some(markup) => object.insert("reply_markup".to_owned(), markup),
                None => object.remove("reply_markup"),
            };
        }
    }
    params
}

/// The length (in UTF-16 units) of the bot command a text starts with, as
/// Telegram marks it with a `bot_command` entity: `/`, then letters, digits
/// and underscores, then optionally `@` and a username; it ends at the first
/// other character, so `/help,` marks `/help`. (tdlib's parser of entities,
/// MessageEntity.cpp `match_bot_commands`, in the part a leading command
/// needs.)
fn leading_command_length(text: &str) -> Option<usize> {
    let word = |s: &str| {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let rest = text.strip_prefix('/')?;
    let mut end = word(rest);
    if end == 0 || end > 64 {
        return None;
    }
    if let Some(bot) = rest[end..].strip_prefix('@') {
        let bot_end = word(bot);
        if bot_end > 0 {
            end += 1 + bot_end;
        }
    }
    // ASCII only: bytes and UTF-16 units are the same count.
    Some(1 + end)
}

#[cfg(test)]
mod tests {
    use super::leading_command_length;

    #[test]
    fn a_leading_command_is_marked_up_to_its_last_name_character() {
        assert_eq!(leading_command_length("/start"), Some(6));
        assert_eq!(leading_command_length("/help, please"), Some(5));
        assert_eq!(leading_command_length("/start@OtherBot!"), Some(15));
        assert_eq!(leading_command_length("/start@ x"), Some(6));
        assert_eq!(leading_command_length("/ start"), None);
        assert_eq!(leading_command_length("/путь"), None);
        assert_eq!(leading_command_length("hi /start"), None);
    }
}
