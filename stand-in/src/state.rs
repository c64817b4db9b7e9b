//! What the stand-in remembers: calls, queued faults, known chats, updates,
//! the webhook and how delivering to it goes, the bot's commands.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use tokio::time::Instant;

/// One Bot API call as received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    /// The method as the caller spelt it.
    pub method: String,
    /// Query, form and JSON parameters merged into one object.
    pub params: Value,
    /// The HTTP status answered; 0 while the call is in flight, or when the
    /// connection was dropped without an answer.
    pub status: u16,
    /// The call took effect (a message was sent), whatever was answered: an
    /// injected error has none, a slow or cut-short answer has.
    pub performed: bool,
    /// When it took effect, if it did: std's clock, which paused tokio time
    /// does not stop, for benches timing what follows a sent message.
    #[serde(skip)]
    pub performed_at: Option<std::time::Instant>,
}

/// One answerCallbackQuery call about a query, as received, and whether
/// Telegram took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackAnswer {
    /// As the bot gave it.
    pub callback_query_id: String,
    pub text: Option<String>,
    pub show_alert: bool,
    pub url: Option<String>,
    pub cache_time: i64,
    /// Answered true; otherwise `error` holds Telegram's description.
    pub accepted: bool,
    pub error: Option<String>,
}

/// One command of a bot's list, as setMyCommands keeps it (BotCommand):
/// trimmed, without a leading `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BotCommand {
    pub command: String,
    pub description: String,
}

impl BotCommand {
    pub fn new(command: &str, description: &str) -> Self {
        BotCommand {
            command: command.to_owned(),
            description: description.to_owned(),
        }
    }
}

/// Whose command list it is (BotCommandScope), its chat looked up; it
/// serializes as the Bot API writes it, `{"type": "chat", "chat_id": 42}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CommandScope {
    Default,
    AllPrivateChats,
    AllGroupChats,
    AllChatAdministrators,
    Chat { chat_id: i64 },
    ChatAdministrators { chat_id: i64 },
    ChatMember { chat_id: i64, user_id: i64 },
}

/// A failure to inject into the next call of a method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer Telegram's error JSON with this status and description; with
    /// `retry_after`, also `parameters.retry_after` and a Retry-After header.
    Error {
        status: u16,
        description: String,
        #[serde(default)]
        retry_after: Option<u64>,
        /// Answer `parameters.migrate_to_chat_id`, as for a group that became
        /// a supergroup.
        #[serde(default)]
        migrate_to_chat_id: Option<i64>,
    },
    /// Answer an HTML page with this status, as the front proxy does for 502.
    Html { status: u16 },
    /// Wait this long, then carry out the call and answer normally; a client
    /// that gave up meanwhile has still caused the effect.
    Delay { millis: u64 },
    /// Carry out the call at once, then wait this long before answering: a
    /// client that dies meanwhile has caused the effect without learning it.
    SlowAnswer { millis: u64 },
    /// Close the connection without answering, and do nothing.
    Drop,
    /// Carry out the call, then answer 200 with a body cut short: the
    /// connection closes mid-answer.
    Truncated,
    /// Answer this status and body as is (for example 200 with a body that
    /// is not JSON).
    Raw { status: u16, body: String },
}

impl Fault {
    pub fn internal_error() -> Self {
        Fault::Error {
            status: 500,
            description: "Internal Server Error".to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        }
    }

    pub fn bad_gateway() -> Self {
        Fault::Html { status: 502 }
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        Fault::Error {
            status: 429,
            description: format!("Too Many Requests: retry after {retry_after}"),
            retry_after: Some(retry_after),
            migrate_to_chat_id: None,
        }
    }

    pub fn blocked_by_user() -> Self {
        Fault::Error {
            status: 403,
            description: "Forbidden: bot was blocked by the user".to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        }
    }

    pub fn chat_not_found() -> Self {
        Fault::Error {
            status: 400,
            description: "Bad Request: chat not found".to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        }
    }

    /// Another getUpdates with the same token took over, as when a second
    /// instance of a bot starts polling.
    pub fn other_poller() -> Self {
        Fault::Error {
            status: 409,
            description: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running".to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        }
    }

    /// The group was upgraded to the supergroup `new_chat_id`.
    pub fn migrated(new_chat_id: i64) -> Self {
        Fault::Error {
            status: 400,
            description: "Bad Request: group chat was upgraded to a supergroup chat".to_owned(),
            retry_after: None,
            migrate_to_chat_id: Some(new_chat_id),
        }
    }

    pub fn slow(millis: u64) -> Self {
        Fault::Delay { millis }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ChatInfo {
    pub(crate) raw: Value,
    pub(crate) is_forum: bool,
    pub(crate) blocked: bool,
    pub(crate) messages: HashSet<i64>,
    pub(crate) topics: HashSet<i64>,
}

/// A draft the bot streamed to a private chat (sendMessageDraft).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub chat_id: i64,
    pub draft_id: i64,
    pub text: String,
}

/// A callback query Telegram created, waiting for its answer.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(crate) created_at: Instant,
    pub(crate) answered: bool,
}

/// Something the bot did to a message, in the order it happened.
#[derive(Debug, Clone)]
pub(crate) struct Activity {
    pub(crate) chat_id: i64,
    pub(crate) edited: bool,
    /// The Message as Telegram answered it.
    pub(crate) message: Value,
}

/// The last failed webhook delivery, as getWebhookInfo reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeliveryError {
    pub(crate) date: i64,
    pub(crate) message: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Webhook {
    pub(crate) url: String,
    pub(crate) secret_token: Option<String>,
    pub(crate) max_connections: u32,
    /// The IP address Telegram was told to use instead of resolving the
    /// URL's host (`webhook_fix_ip_address_`); shown by getWebhookInfo and
    /// compared by setWebhook, never connected to.
    pub(crate) ip_address: Option<String>,
    /// Kept after delivery recovers, and by an identical setWebhook; only a
    /// changed webhook and deleteWebhook clear it.
    pub(crate) last_error: Option<DeliveryError>,
}

/// Which webhook queue an update waits in: updates of one queue go one at a
/// time, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum QueueKey {
    /// The server's `webhook_queue_id` (`kinds::webhook_queue_id`).
    Shared(i64),
    /// A queue of the update's own, by its id (the server's
    /// `unique_queue_id_`, for an update queued with id 0).
    Own(i64),
}

/// An update waiting to be delivered or confirmed.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub(crate) update: Value,
    pub(crate) id: i64,
    pub(crate) queue: QueueKey,
    pub(crate) queued_at: Instant,
    /// When its lifetime ends: set when it is created, as the server's
    /// `add_update` gives it an expiry date.
    pub(crate) expires_at: Instant,
}

/// Per-update delivery bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct Attempts {
    pub(crate) failures: u32,
    /// The update's backoff delay in Telegram seconds (WebhookActor's
    /// `Update::delay_`): doubled by a failure without Retry-After.
    pub(crate) delay_secs: f64,
    pub(crate) next_at: Instant,
}

/// What the delivery loop keeps besides the queue itself: one webhook's
/// WebhookActor state.
#[derive(Debug, Default)]
pub(crate) struct DeliveryState {
    pub(crate) attempts: HashMap<i64, Attempts>,
    pub(crate) in_flight: HashSet<i64>,
    /// None until the webhook's first success (WebhookActor::start_up puts
    /// `last_success_time_` an hour back).
    pub(crate) last_success: Option<Instant>,
    /// A connection was made since the webhook was set (`was_checked_`).
    pub(crate) was_checked: bool,
    /// Open connections carrying no update, each with when it went idle.
    pub(crate) idle: Vec<Instant>,
    /// Bumped for every new webhook: a delivery started for an older one
    /// neither returns its connection nor counts as this one's success.
    pub(crate) generation: u64,
}

impl DeliveryState {
    /// A new webhook starts afresh, as a new WebhookActor does; updates in
    /// flight stay marked so that they are not sent twice at once.
    pub(crate) fn restart(&mut self) {
        let in_flight = std::mem::take(&mut self.in_flight);
        *self = DeliveryState {
            in_flight,
            generation: self.generation + 1,
            ..DeliveryState::default()
        };
    }
}

/// An update's `update_id`; 0 when it has none.
pub(crate) fn update_id(update: &Value) -> i64 {
    update.get("update_id").and_then(Value::as_i64).unwrap_or(0)
}

/// getUpdates bookkeeping, as the server's Client keeps it.
#[derive(Debug, Default)]
pub(crate) struct Polls {
    /// The ticket of the one call waiting for updates (`long_poll_query_`).
    pub(crate) waiting: Option<u64>,
    pub(crate) next_ticket: u64,
    /// Waiting calls ended by another call, with the conflict to answer.
    pub(crate) ended: HashMap<u64, &'static str>,
    /// The offset of the last call and when it came
    /// (`previous_get_updates_offset_`, `previous_get_updates_start_time_`).
    pub(crate) previous: Option<(i64, Instant)>,
    /// Before this, a conflict is answered only after a wait
    /// (`next_get_updates_conflict_time_`).
    pub(crate) next_conflict_at: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) bot_id: i64,
    pub(crate) calls: Vec<Call>,
    /// Bumped by a reset, so a call in flight across it is not mistaken for
    /// a newer one.
    pub(crate) calls_generation: u64,
    pub(crate) faults: HashMap<String, VecDeque<Fault>>,
    /// Faults that stay until healed, for calls to a method about one chat.
    pub(crate) chat_faults: HashMap<(String, i64), Fault>,
    pub(crate) chats: HashMap<i64, ChatInfo>,
    pub(crate) next_message_id: i64,
    pub(crate) webhook: Option<Webhook>,
    /// Before this, a setWebhook with a URL is refused.
    pub(crate) next_set_webhook_at: Option<Instant>,
    pub(crate) pending: VecDeque<Queued>,
    pub(crate) next_update_id: i64,
    pub(crate) polls: Polls,
    /// The update kinds created, as a `kinds` mask: what getUpdates or
    /// setWebhook asked for last; one setting for both, as in the server.
    pub(crate) allowed_updates: u32,
    pub(crate) delivery: DeliveryState,
    /// Update ids delivered to the webhook, in order.
    pub(crate) delivered: Vec<i64>,
    /// Every delivery attempt: update id, "ok" or the error message.
    pub(crate) delivery_log: Vec<(i64, String)>,
    /// The messages the bot sent, by chat and id, as they are now (edits
    /// included): what a button press shows and what may be edited.
    pub(crate) bot_messages: HashMap<(i64, i64), Value>,
    /// Messages sent and edited, in order.
    pub(crate) activity: Vec<Activity>,
    /// Callback queries by id.
    pub(crate) queries: HashMap<String, Query>,
    pub(crate) next_query_id: i64,
    pub(crate) answers: Vec<CallbackAnswer>,
    /// Drafts shown, in order.
    pub(crate) drafts: Vec<Draft>,
    /// The bot's command lists by scope and language code ("" for all
    /// languages); an empty list is not kept.
    pub(crate) commands: HashMap<(CommandScope, String), Vec<BotCommand>>,
}

impl State {
    pub(crate) fn new(bot_id: i64) -> Self {
        State {
            bot_id,
            calls: Vec::new(),
            calls_generation: 0,
            faults: HashMap::new(),
            chat_faults: HashMap::new(),
            chats: HashMap::new(),
            next_message_id: 1_000_000,
            webhook: None,
            next_set_webhook_at: None,
            pending: VecDeque::new(),
            next_update_id: 100_000_000,
            polls: Polls::default(),
            allowed_updates: crate::kinds::DEFAULT_ALLOWED,
            delivery: Default::default(),
            delivered: Vec::new(),
            delivery_log: Vec::new(),
            bot_messages: HashMap::new(),
            activity: Vec::new(),
            queries: HashMap::new(),
            // Callback query ids are 64-bit integers written as strings.
            next_query_id: 4_000_000_000_000_000_000,
            answers: Vec::new(),
            drafts: Vec::new(),
            commands: HashMap::new(),
        }
    }

    pub(crate) fn observe_update(&mut self, update: &Value) {
        let Some(object) = update.as_object() else {
            return;
        };
        for (kind, payload) in object {
            let message = match kind.as_str() {
                "callback_query" => payload.get("message"),
                "message" | "edited_message" | "channel_post" | "edited_channel_post" => {
                    Some(payload)
                }
                _ => None,
            };
            if let Some(message) = message {
                self.observe_message(message);
            }
        }
    }

    fn observe_message(&mut self, message: &Value) {
        let Some(chat) = message.get("chat") else {
            return;
        };
        let Some(chat_id) = chat.get("id").and_then(Value::as_i64) else {
            return;
        };
        let info = self.chats.entry(chat_id).or_insert_with(|| ChatInfo {
            raw: chat.clone(),
            is_forum: false,
            blocked: false,
            messages: HashSet::new(),
            topics: HashSet::new(),
        });
        info.is_forum |= chat.get("is_forum").and_then(Value::as_bool) == Some(true);
        if let Some(id) = message.get("message_id").and_then(Value::as_i64) {
            info.messages.insert(id);
        }
        if message.get("is_topic_message").and_then(Value::as_bool) == Some(true) {
            if let Some(thread) = message.get("message_thread_id").and_then(Value::as_i64) {
                info.topics.insert(thread);
            }
        }
    }

    pub(crate) fn block(&mut self, chat_id: i64) {
        if let Some(chat) = self.chats.get_mut(&chat_id) {
            chat.blocked = true;
        }
    }
}
