//! What Telegram's Bot API server decides per update kind when it creates an
//! update (Client.cpp, the `add_*` functions and `add_update_impl`): whether
//! the kind is allowed, which webhook queue the update waits in, and how
//! long it may wait.

use serde_json::Value;

/// The update kinds in the server's order (Client::UpdateType): a kind's
/// place is its bit in an allowed-updates mask.
const KINDS: [&str; 24] = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "custom_event",
    "custom_query",
    "shipping_query",
    "pre_checkout_query",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "message_reaction",
    "message_reaction_count",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
];

fn bit(kind: &str) -> Option<u32> {
    KINDS
        .iter()
        .position(|k| *k == kind)
        .map(|place| 1 << place)
}

/// Every kind but chat_member, message_reaction and message_reaction_count,
/// which a bot gets only when it asks for them (DEFAULT_ALLOWED_UPDATE_TYPES).
pub(crate) const DEFAULT_ALLOWED: u32 = (1 << KINDS.len())
    - 1
    - (1 << 14) // chat_member
    - (1 << 18) // message_reaction
    - (1 << 19); // message_reaction_count

/// The mask for an `allowed_updates` list, as Client::get_allowed_update_types
/// reads it: names in any case, unknown ones ignored, and a list naming no
/// known kind (an empty one too) means the default.
pub(crate) fn allowed_mask(names: &[String]) -> u32 {
    let mask = names
        .iter()
        .filter_map(|name| bit(&name.to_ascii_lowercase()))
        .fold(0, |mask, bit| mask | bit);
    if mask == 0 {
        DEFAULT_ALLOWED
    } else {
        mask
    }
}

/// The names getWebhookInfo lists for `mask`, in the server's order and
/// without the custom kinds (Client::JsonUpdateTypes).
pub(crate) fn allowed_names(mask: u32) -> Vec<&'static str> {
    KINDS
        .iter()
        .enumerate()
        .filter(|(place, kind)| {
            mask & (1 << place) != 0 && !matches!(**kind, "custom_event" | "custom_query")
        })
        .map(|(_, kind)| *kind)
        .collect()
}

/// An update's kind: its one field besides `update_id`.
pub(crate) fn kind(update: &Value) -> &str {
    update
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "update_id"))
        .map(String::as_str)
        .unwrap_or("")
}

/// Whether an update of this kind is created under `mask`
/// (Client::add_update_impl). A kind the server does not know is let
/// through: the stand-in cannot tell what Telegram would do with it.
pub(crate) fn is_allowed(mask: u32, update: &Value) -> bool {
    bit(kind(update)).is_none_or(|bit| mask & bit != 0)
}

fn id_at(value: &Value, path: &[&str]) -> Option<i64> {
    let leaf = path.iter().try_fold(value, |v, key| v.get(key))?;
    // Poll ids are strings of digits in the Bot API's JSON.
    leaf.as_i64()
        .or_else(|| leaf.as_str().and_then(|s| s.parse().ok()))
}

/// The webhook queue an update waits in, as each `Client::add_*` passes it
/// to `add_update`: messages by chat; the other chat- and user-scoped kinds
/// by chat or user plus a per-kind offset (`n << 33`), so that they never
/// share a queue with messages or with each other; polls by poll id. None
/// (the server's 0) is a queue of the update's own (custom kinds, or a
/// payload without the id the kind is queued by).
pub(crate) fn webhook_queue_id(update: &Value) -> Option<i64> {
    let kind = kind(update);
    let payload = update.get(kind)?;
    let plus = |id: Option<i64>, n: i64| id.map(|id| id.wrapping_add(n << 33));
    let chat = || id_at(payload, &["chat", "id"]);
    let from = || id_at(payload, &["from", "id"]);
    let queue = match kind {
        // process_new_message_queue
        "message" | "edited_message" | "channel_post" | "edited_channel_post" => chat(),
        // add_new_inline_query
        "inline_query" => plus(from(), 1),
        // add_new_chosen_inline_result
        "chosen_inline_result" => plus(from(), 2),
        // process_new_callback_query_queue, add_new_inline_callback_query
        "callback_query" => plus(from(), 3),
        // add_new_shipping_query, add_new_pre_checkout_query: one queue
        "shipping_query" | "pre_checkout_query" => plus(from(), 4),
        // add_update_poll, add_update_poll_answer: the poll's own queue
        "poll" => id_at(payload, &["id"]),
        "poll_answer" => id_at(payload, &["poll_id"]),
        // add_update_chat_member: the bot's own membership by chat, another
        // member's by that member
        "my_chat_member" => plus(chat(), 5),
        "chat_member" => plus(
            id_at(payload, &["new_chat_member", "user", "id"])
                .or_else(|| id_at(payload, &["old_chat_member", "user", "id"])),
            6,
        ),
        // add_update_chat_join_request: the same queue as that user's
        // chat_member updates
        "chat_join_request" => plus(from(), 6),
        // add_update_chat_boost
        "chat_boost" | "removed_chat_boost" => plus(chat(), 7),
        // add_update_message_reaction, add_update_message_reaction_count
        "message_reaction" => plus(chat(), 8),
        "message_reaction_count" => plus(chat(), 9),
        // add_update_business_connection
        "business_connection" => plus(id_at(payload, &["user", "id"]), 10),
        // process_new_business_message_queue, add_update_business_messages_deleted
        "business_message" | "edited_business_message" | "deleted_business_messages" => {
            plus(chat(), 11)
        }
        _ => None,
    };
    queue.filter(|id| *id != 0)
}

const DAY_SECS: i64 = 86_400;

/// How long an update may wait, in seconds from `now_unix`, as each
/// `Client::add_*` computes the timeout it passes to `add_update`: fixed for
/// queries, a day from the date of what happened for messages and member,
/// reaction and boost changes. Never negative.
pub(crate) fn lifetime_secs(update: &Value, now_unix: i64) -> f64 {
    let kind = kind(update);
    let payload = update.get(kind).unwrap_or(&Value::Null);
    let date_at = |path: &[&str]| id_at(payload, path).filter(|d| *d > 0);
    let a_day_from = |date: Option<i64>| match date {
        Some(date) => (date + DAY_SECS - now_unix).max(0),
        None => DAY_SECS,
    };
    let secs = match kind {
        "inline_query" => 30,
        "callback_query" | "shipping_query" | "pre_checkout_query" => 150,
        "chosen_inline_result" | "custom_event" => 600,
        // The edit's date for an edited message (process_new_message_queue).
        "message"
        | "edited_message"
        | "channel_post"
        | "edited_channel_post"
        | "business_message"
        | "edited_business_message" => {
            a_day_from(date_at(&["edit_date"]).or_else(|| date_at(&["date"])))
        }
        "my_chat_member"
        | "chat_member"
        | "chat_join_request"
        | "message_reaction"
        | "message_reaction_count" => a_day_from(date_at(&["date"])),
        "chat_boost" => a_day_from(date_at(&["boost", "add_date"])),
        "removed_chat_boost" => a_day_from(date_at(&["remove_date"])),
        _ => DAY_SECS,
    };
    secs as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queues_follow_the_servers_webhook_queue_ids() {
        let offset = |n: i64| n << 33;
        let user = json!({"id": 42});
        let chat = json!({"id": -1_001_234_567_890_i64});
        let cases = [
            (
                json!({"message": {"chat": chat, "from": user}}),
                Some(-1_001_234_567_890),
            ),
            (
                json!({"edited_channel_post": {"chat": chat}}),
                Some(-1_001_234_567_890),
            ),
            (
                json!({"inline_query": {"from": user}}),
                Some(42 + offset(1)),
            ),
            (
                json!({"chosen_inline_result": {"from": user}}),
                Some(42 + offset(2)),
            ),
            (
                json!({"callback_query": {"from": user, "message": {"chat": chat}}}),
                Some(42 + offset(3)),
            ),
            (
                json!({"shipping_query": {"from": user}}),
                Some(42 + offset(4)),
            ),
            (
                json!({"pre_checkout_query": {"from": user}}),
                Some(42 + offset(4)),
            ),
            (json!({"poll": {"id": "5000"}}), Some(5000)),
            (json!({"poll_answer": {"poll_id": "5000"}}), Some(5000)),
            (
                json!({"my_chat_member": {"chat": chat, "from": user}}),
                Some(-1_001_234_567_890 + offset(5)),
            ),
            (
                json!({"chat_member": {"chat": chat, "from": {"id": 1},
                    "new_chat_member": {"user": user}}}),
                Some(42 + offset(6)),
            ),
            (
                json!({"chat_join_request": {"chat": chat, "from": user}}),
                Some(42 + offset(6)),
            ),
            (
                json!({"chat_boost": {"chat": chat}}),
                Some(-1_001_234_567_890 + offset(7)),
            ),
            (
                json!({"removed_chat_boost": {"chat": chat}}),
                Some(-1_001_234_567_890 + offset(7)),
            ),
            (
                json!({"message_reaction": {"chat": chat}}),
                Some(-1_001_234_567_890 + offset(8)),
            ),
            (
                json!({"message_reaction_count": {"chat": chat}}),
                Some(-1_001_234_567_890 + offset(9)),
            ),
            (
                json!({"business_connection": {"user": user}}),
                Some(42 + offset(10)),
            ),
            (
                json!({"business_message": {"chat": chat}}),
                Some(-1_001_234_567_890 + offset(11)),
            ),
            (
                json!({"deleted_business_messages": {"chat": chat}}),
                Some(-1_001_234_567_890 + offset(11)),
            ),
            (json!({"custom_event": {}}), None),
            (json!({"callback_query": {"id": "1"}}), None),
        ];
        for (mut update, queue) in cases {
            update["update_id"] = json!(1);
            assert_eq!(webhook_queue_id(&update), queue, "{update}");
        }
    }

    #[test]
    fn lifetimes_follow_the_update_kind() {
        let now = 1_800_000_000;
        let lifetime = |update: Value| lifetime_secs(&update, now);
        assert_eq!(lifetime(json!({"message": {"date": now}})), 86_400.0);
        assert_eq!(lifetime(json!({"message": {"date": now - 86_000}})), 400.0);
        assert_eq!(
            lifetime(json!({"edited_message": {"date": now - 86_000, "edit_date": now - 100}})),
            86_300.0
        );
        assert_eq!(lifetime(json!({"message": {"date": 1}})), 0.0);
        assert_eq!(lifetime(json!({"callback_query": {"id": "1"}})), 150.0);
        assert_eq!(lifetime(json!({"inline_query": {"id": "1"}})), 30.0);
        assert_eq!(lifetime(json!({"chosen_inline_result": {}})), 600.0);
        assert_eq!(lifetime(json!({"pre_checkout_query": {}})), 150.0);
        assert_eq!(lifetime(json!({"poll": {"id": "1"}})), 86_400.0);
        assert_eq!(
            lifetime(json!({"chat_member": {"date": now - 400}})),
            86_000.0
        );
        assert_eq!(
            lifetime(json!({"chat_boost": {"boost": {"add_date": now - 10}}})),
            86_390.0
        );
    }

    #[test]
    fn allowed_updates_are_read_as_the_server_reads_them() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mask = allowed_mask(&names(&["Message", "callback_query", "no_such_kind"]));
        assert_eq!(allowed_names(mask), ["message", "callback_query"]);
        assert_eq!(allowed_mask(&[]), DEFAULT_ALLOWED);
        assert_eq!(allowed_mask(&names(&["no_such_kind"])), DEFAULT_ALLOWED);
        let default = allowed_names(DEFAULT_ALLOWED);
        assert!(default.contains(&"my_chat_member"), "{default:?}");
        for asked_only in ["chat_member", "message_reaction", "message_reaction_count"] {
            assert!(!default.contains(&asked_only), "{default:?}");
        }
        let reaction = json!({"update_id": 1, "message_reaction": {}});
        assert!(!is_allowed(DEFAULT_ALLOWED, &reaction));
        assert!(is_allowed(
            allowed_mask(&names(&["message_reaction"])),
            &reaction
        ));
        assert!(is_allowed(0, &json!({"update_id": 1, "unheard_of": {}})));
    }
}
