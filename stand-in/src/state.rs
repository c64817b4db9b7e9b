//! What the stand-in remembers: calls, queued faults, known chats, updates,
//! the webhook and how delivering to it goes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

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
    pub(crate) allowed_updates: Option<Vec<String>>,
    /// Kept after delivery recovers; only setWebhook and deleteWebhook clear it.
    pub(crate) last_error: Option<DeliveryError>,
}

/// Per-update delivery bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct Attempts {
    pub(crate) failures: u32,
    /// The update's backoff delay in Telegram seconds (WebhookActor's
    /// `Update::delay_`): doubled by a failure without Retry-After.
    pub(crate) delay_secs: f64,
    pub(crate) next_at: tokio::time::Instant,
    pub(crate) expires_at: tokio::time::Instant,
}

/// What the delivery loop keeps besides the queue itself.
#[derive(Debug, Default)]
pub(crate) struct DeliveryState {
    pub(crate) attempts: HashMap<i64, Attempts>,
    pub(crate) in_flight: HashSet<i64>,
    pub(crate) last_success: Option<tokio::time::Instant>,
    pub(crate) last_failure: Option<tokio::time::Instant>,
}

/// An update's `update_id`; 0 when it has none.
pub(crate) fn update_id(update: &Value) -> i64 {
    update.get("update_id").and_then(Value::as_i64).unwrap_or(0)
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) bot_id: i64,
    pub(crate) calls: Vec<Call>,
    /// Bumped by a reset, so a call in flight across it is not mistaken for
    /// a newer one.
    pub(crate) calls_generation: u64,
    pub(crate) faults: HashMap<String, VecDeque<Fault>>,
    pub(crate) chats: HashMap<i64, ChatInfo>,
    pub(crate) next_message_id: i64,
    pub(crate) webhook: Option<Webhook>,
    pub(crate) last_set_webhook: Option<Instant>,
    pub(crate) pending: VecDeque<Value>,
    pub(crate) next_update_id: i64,
    /// Counts getUpdates calls; a waiting call that sees it change was
    /// superseded by another poller.
    pub(crate) poll_generation: u64,
    /// What getUpdates or setWebhook asked for last; Telegram keeps it.
    pub(crate) allowed_updates: Option<Vec<String>>,
    pub(crate) delivery: DeliveryState,
    /// Update ids delivered to the webhook, in order.
    pub(crate) delivered: Vec<i64>,
    /// Every delivery attempt: update id, "ok" or the error message.
    pub(crate) delivery_log: Vec<(i64, String)>,
}

impl State {
    pub(crate) fn new(bot_id: i64) -> Self {
        State {
            bot_id,
            calls: Vec::new(),
            calls_generation: 0,
            faults: HashMap::new(),
            chats: HashMap::new(),
            next_message_id: 1_000_000,
            webhook: None,
            last_set_webhook: None,
            pending: VecDeque::new(),
            next_update_id: 100_000_000,
            poll_generation: 0,
            allowed_updates: None,
            delivery: Default::default(),
            delivered: Vec::new(),
            delivery_log: Vec::new(),
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
