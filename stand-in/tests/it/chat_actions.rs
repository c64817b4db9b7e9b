//! sendChatAction: the stand-in accepts Telegram's actions in a chat it
//! knows, refuses what Telegram refuses with Telegram's status and
//! description, and records every call as it does the other methods.

use crate::helpers::{private_message, stand_in, Api};
use serde_json::{json, Value};
use telegram_stand_in::{Fault, StandIn};

/// The actions the Bot API documents.
const ACTIONS: [&str; 11] = [
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

async fn stand_in_with_private_chat() -> StandIn {
    let stand_in = stand_in().await;
    stand_in.observe_update(&private_message(1, 10, 42));
    stand_in
}

/// The statuses answered to sendChatAction, in order, and whether each call
/// took effect.
fn recorded(stand_in: &StandIn) -> Vec<(u16, bool)> {
    stand_in
        .calls()
        .into_iter()
        .filter(|c| c.method == "sendChatAction")
        .map(|c| (c.status, c.performed))
        .collect()
}

#[tokio::test]
async fn send_chat_action_in_a_known_chat_answers_true_and_is_recorded() {
    let stand_in = stand_in_with_private_chat().await;
    let api = Api::new(&stand_in);
    for action in ACTIONS {
        let result = api
            .ok("sendChatAction", json!({"chat_id": 42, "action": action}))
            .await;
        assert_eq!(result, json!(true), "{action}");
    }
    // The server lower-cases the action and reads the optional parameters
    // without refusing them.
    for params in [
        json!({"chat_id": "42", "action": "TYPING"}),
        json!({"chat_id": 42, "action": "typing", "message_thread_id": 5}),
    ] {
        let result = api.ok("sendChatAction", params.clone()).await;
        assert_eq!(result, json!(true), "{params}");
    }
    assert_eq!(recorded(&stand_in), vec![(200, true); ACTIONS.len() + 2]);
    assert_eq!(stand_in.calls_to("sendChatAction")[0]["action"], "typing");
    // An action is not a message.
    assert!(stand_in.sent_messages().is_empty());
}

#[tokio::test]
async fn send_chat_action_refuses_an_unknown_chat() {
    let stand_in = stand_in_with_private_chat().await;
    let api = Api::new(&stand_in);
    for (params, description) in [
        (
            json!({"chat_id": 7, "action": "typing"}),
            "Bad Request: chat not found",
        ),
        (
            json!({"chat_id": "@nobody", "action": "typing"}),
            "Bad Request: chat not found",
        ),
        (json!({"action": "typing"}), "Bad Request: chat_id is empty"),
    ] {
        let reply = api.call("sendChatAction", params.clone()).await;
        assert_eq!(reply.status, 400, "{params}");
        assert_eq!(reply.description(), description, "{params}");
    }
    assert_eq!(recorded(&stand_in), vec![(400, false); 3]);
}

#[tokio::test]
async fn send_chat_action_refuses_a_missing_or_unknown_action_before_the_chat() {
    let stand_in = stand_in_with_private_chat().await;
    let api = Api::new(&stand_in);
    for params in [
        json!({"chat_id": 42}),
        json!({"chat_id": 42, "action": ""}),
        json!({"chat_id": 42, "action": Value::Null}),
        json!({"chat_id": 42, "action": "dancing"}),
        json!({"chat_id": 42, "action": "upload_sticker"}),
        // The action is checked first, so an unknown chat is not reported.
        json!({"chat_id": 7, "action": "dancing"}),
    ] {
        let reply = api.call("sendChatAction", params.clone()).await;
        assert_eq!(reply.status, 400, "{params}");
        assert_eq!(
            reply.description(),
            "Bad Request: wrong parameter action in request",
            "{params}"
        );
    }
    assert_eq!(recorded(&stand_in), vec![(400, false); 6]);
}

#[tokio::test]
async fn send_chat_action_refuses_a_business_connection_and_a_blocked_chat() {
    let stand_in = stand_in_with_private_chat().await;
    let api = Api::new(&stand_in);
    let reply = api
        .call(
            "sendChatAction",
            json!({"chat_id": 42, "action": "typing", "business_connection_id": "abc"}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.description()),
        (400, "Bad Request: business connection not found")
    );
    stand_in.block_chat(42);
    let reply = api
        .call("sendChatAction", json!({"chat_id": 42, "action": "typing"}))
        .await;
    assert_eq!(
        (reply.status, reply.description()),
        (403, "Forbidden: bot was blocked by the user")
    );
}

#[tokio::test]
async fn injected_faults_apply_to_send_chat_action() {
    let stand_in = stand_in_with_private_chat().await;
    let api = Api::new(&stand_in);
    let typing = json!({"chat_id": 42, "action": "typing"});
    stand_in.inject("sendChatAction", Fault::internal_error());
    let reply = api.call("sendChatAction", typing.clone()).await;
    assert_eq!(
        (reply.status, reply.description()),
        (500, "Internal Server Error")
    );
    // A queued fault is used once.
    assert_eq!(api.ok("sendChatAction", typing.clone()).await, json!(true));
    stand_in.fail_chat("sendChatAction", 42, Fault::too_many_requests(3));
    let reply = api.call("sendChatAction", typing.clone()).await;
    assert_eq!(
        (reply.status, reply.retry_after.as_deref()),
        (429, Some("3"))
    );
    stand_in.heal_chat("sendChatAction", 42);
    assert_eq!(api.ok("sendChatAction", typing).await, json!(true));
    assert_eq!(
        recorded(&stand_in),
        [(500, false), (200, true), (429, false), (200, true)]
    );
}

/// sendMessageDraft (Bot API 9.5): a partial answer shown in a private chat
/// while it is written. Client::process_send_message_draft_query reads
/// `chat_id`, `draft_id`, `text` and `parse_mode`, and TDLib sends the
/// draft as a chat action: private chats only, a non-zero id, a text within
/// a message's limit.
#[tokio::test]
async fn a_draft_is_shown_in_a_private_chat_and_refused_elsewhere() {
    let stand_in = stand_in_with_private_chat().await;
    stand_in.observe_update(&json!({"update_id": 2, "message": {
        "message_id": 11, "date": 1, "text": "x",
        "chat": {"id": -100, "type": "group", "title": "G"}
    }}));
    let api = Api::new(&stand_in);
    for text in ["The answer", "The answer so far", ""] {
        let params = json!({"chat_id": 42, "draft_id": 7, "text": text});
        assert_eq!(api.ok("sendMessageDraft", params).await, json!(true));
    }
    let drafts = stand_in.drafts();
    assert_eq!(drafts.len(), 3);
    assert_eq!((drafts[1].chat_id, drafts[1].draft_id), (42, 7));
    assert_eq!(drafts[1].text, "The answer so far");
    for (params, status, description) in [
        (
            json!({"chat_id": -100, "draft_id": 7, "text": "a"}),
            400,
            "Bad Request: message drafts can be sent only to private chats",
        ),
        (
            json!({"chat_id": 42, "draft_id": 0, "text": "a"}),
            400,
            "Bad Request: draft_id must be non-zero",
        ),
        (
            json!({"chat_id": 42, "text": "a"}),
            400,
            "Bad Request: draft_id must be non-zero",
        ),
        (
            json!({"chat_id": 42, "draft_id": 7, "text": "x".repeat(4097)}),
            400,
            "Bad Request: message is too long",
        ),
        (
            json!({"chat_id": 9, "draft_id": 7, "text": "a"}),
            400,
            "Bad Request: chat not found",
        ),
    ] {
        let reply = api.call("sendMessageDraft", params.clone()).await;
        assert_eq!(reply.status, status, "{params}");
        assert_eq!(reply.description(), description, "{params}");
    }
    // A draft at the limit is taken; drafts are not messages.
    let full = json!({"chat_id": 42, "draft_id": 7, "text": "é".repeat(4096)});
    assert_eq!(api.ok("sendMessageDraft", full).await, json!(true));
    assert_eq!(stand_in.drafts().len(), 4);
    assert!(stand_in.sent_messages().is_empty());
}

#[tokio::test]
async fn a_draft_can_be_refused_with_flood_control() {
    let stand_in = stand_in_with_private_chat().await;
    stand_in.inject("sendMessageDraft", Fault::too_many_requests(3));
    let api = Api::new(&stand_in);
    let reply = api
        .call(
            "sendMessageDraft",
            json!({"chat_id": 42, "draft_id": 1, "text": "a"}),
        )
        .await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.body["parameters"]["retry_after"], 3);
    assert!(stand_in.drafts().is_empty());
}
