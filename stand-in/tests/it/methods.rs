//! The Bot API's paths and sendMessage: the stand-in refuses what Telegram
//! refuses, with Telegram's status and description, and accepts what
//! Telegram accepts.

use crate::helpers::{private_message, stand_in, Api};
use serde_json::{json, Value};
use telegram_stand_in::{StandIn, DEFAULT_TOKEN};

async fn stand_in_with_private_chat() -> StandIn {
    let stand_in = stand_in().await;
    stand_in.observe_update(&private_message(1, 10, 42));
    stand_in
}

#[tokio::test]
async fn send_message_refuses_what_telegram_refuses() {
    let stand_in = stand_in_with_private_chat().await;
    let api = Api::new(&stand_in);
    let cases = [
        (json!({"text": "x"}), "Bad Request: chat_id is empty"),
        (
            json!({"chat_id": 7, "text": "x"}),
            "Bad Request: chat not found",
        ),
        (json!({"chat_id": 42}), "Bad Request: message text is empty"),
        (
            json!({"chat_id": 42, "text": ""}),
            "Bad Request: message text is empty",
        ),
        (
            json!({"chat_id": 42, "text": " \n "}),
            "Bad Request: text must be non-empty",
        ),
        (
            json!({"chat_id": 42, "text": "a".repeat(4097)}),
            "Bad Request: message is too long",
        ),
        (
            json!({"chat_id": 42, "text": "x", "reply_parameters": {"message_id": 999}}),
            "Bad Request: message to be replied not found",
        ),
        (
            json!({"chat_id": 42, "text": "x", "reply_parameters": "nope"}),
            "Bad Request: can't parse reply parameters JSON object",
        ),
        (
            json!({"chat_id": 42, "text": "x", "message_thread_id": 5}),
            "Bad Request: message thread not found",
        ),
    ];
    for (params, description) in cases {
        let reply = api.call("sendMessage", params.clone()).await;
        assert_eq!(
            reply.body,
            json!({"ok": false, "error_code": 400, "description": description}),
            "{params}"
        );
        assert_eq!(reply.status, 400, "{params}");
    }
    assert!(stand_in.sent_messages().is_empty());
}

#[tokio::test]
async fn send_message_accepts_what_telegram_accepts() {
    let stand_in = stand_in_with_private_chat().await;
    let api = Api::new(&stand_in);
    let full_length = "😀".repeat(4096); // 4096 code points, 8192 UTF-16 units
    for params in [
        json!({"chat_id": 42, "text": "plain"}),
        json!({"chat_id": "42", "text": "chat id as a string"}),
        json!({"chat_id": 42, "text": full_length}),
        json!({"chat_id": 42, "text": "x", "reply_parameters": {"message_id": 10}}),
        json!({"chat_id": 42, "text": "x", "reply_parameters":
               {"message_id": 999, "allow_sending_without_reply": true}}),
    ] {
        let message = api.ok("sendMessage", params.clone()).await;
        assert!(message["message_id"].is_i64(), "{params}");
        assert_eq!(message["chat"]["id"], 42);
    }
    assert_eq!(stand_in.sent_messages().len(), 5);
}

#[tokio::test]
async fn a_forum_topic_seen_in_an_update_accepts_replies() {
    let stand_in = stand_in().await;
    stand_in.observe_update(&json!({"update_id": 1, "message": {
        "message_id": 3, "date": 1, "text": "hi", "message_thread_id": 77, "is_topic_message": true,
        "chat": {"id": -100_200, "type": "supergroup", "is_forum": true}
    }}));
    let message = Api::new(&stand_in)
        .ok(
            "sendMessage",
            json!({"chat_id": -100_200, "text": "x", "message_thread_id": 77}),
        )
        .await;
    assert_eq!(message["message_thread_id"], 77);
}

#[tokio::test]
async fn form_and_query_parameters_are_accepted_and_method_names_ignore_case() {
    let stand_in = stand_in_with_private_chat().await;
    let url = format!(
        "{}/bot{}/SENDMESSAGE?chat_id=42",
        stand_in.base_url(),
        DEFAULT_TOKEN
    );
    let response = reqwest::Client::new()
        .post(url)
        .form(&[("text", "from a form")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(stand_in.sent_messages()[0]["text"], "from a form");
}

#[tokio::test]
async fn a_wrong_token_an_unknown_method_and_bad_paths_are_answered_like_telegram() {
    let stand_in = stand_in().await;
    let http = reqwest::Client::new();
    let base = stand_in.base_url();
    for (path, status, description) in [
        (
            format!("/bot{DEFAULT_TOKEN}/sendMessages"),
            404,
            "Not Found",
        ),
        (
            "/bot123:wrong-but-well-formed/getMe".to_owned(),
            401,
            "Unauthorized",
        ),
        ("/botnot-a-token/getMe".to_owned(), 404, "Not Found"),
        ("/getMe".to_owned(), 404, "Not Found"),
    ] {
        let response = http.post(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"ok": false, "error_code": status, "description": description}),
            "{path}"
        );
    }
}

#[tokio::test]
async fn get_me_names_the_bot_with_the_id_in_its_token() {
    let stand_in = stand_in().await;
    let me = Api::new(&stand_in).ok("getMe", json!({})).await;
    assert_eq!(me["is_bot"], true);
    assert_eq!(me["username"], "EchoLambdaBot");
    assert_eq!(me["id"], 123_456_789);
}
