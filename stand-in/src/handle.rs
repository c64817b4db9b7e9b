//! What tests, controls and embedding programs do with a running stand-in:
//! read the calls it received, inject faults, make chats known, queue
//! updates and follow their delivery.

use crate::clock::now;
use crate::kinds;
use crate::shared::Shared;
use crate::state::{self, Call, DeliveryError, Fault, QueueKey, Queued};
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
    /// the chat), whatever the caller was answered.
    pub fn sent_messages(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.method.eq_ignore_ascii_case("sendMessage") && c.performed)
            .map(|c| c.params)
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
        let queued_at = tokio::time::Instant::now();
        let lifetime = self.0.scaled(kinds::lifetime_secs(&update, now()));
        let id = state::update_id(&update);
        let queue = match kinds::webhook_queue_id(&update) {
            Some(queue) => QueueKey::Shared(queue),
            None => QueueKey::Own(id),
        };
        let mut state = self.0.state();
        // The server learns about chats and messages before it decides.
        state.observe_update(&update);
        if !kinds::is_allowed(state.allowed_updates, &update) {
            return;
        }
        state.pending.push_back(Queued {
            update,
            id,
            queue,
            queued_at,
            expires_at: queued_at + lifetime,
        });
        drop(state);
        self.0.updates_arrived.notify_waiters();
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

    /// Forgets calls and faults; keeps known chats.
    pub fn reset(&self) {
        let mut state = self.0.state();
        state.calls.clear();
        state.calls_generation += 1;
        state.faults.clear();
    }
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
