//! Alarms told in the admin chat: the alarms' SNS topic invokes the real
//! handler, which sends one message per change, and never fails the
//! invocation.

use crate::helpers::{spawn_with, Setup};
use serde_json::{json, Value};
use telegram_stand_in::Fault;

const ADMIN: i64 = 5_550_001;

fn alarm(name: &str, state: &str) -> Value {
    let message = json!({
        "AlarmName": name,
        "NewStateValue": state,
        "OldStateValue": if state == "OK" { "ALARM" } else { "OK" },
        "NewStateReason": "Threshold Crossed: 1 datapoint [3.0] was greater than or equal to the threshold (1.0).",
        "Region": "EU (Ireland)"
    });
    json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "Sns": {
            "Type": "Notification",
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:telegram-bot-alarms",
            "Subject": format!("{state}: \"{name}\""),
            "Message": message.to_string()
        }
    }]})
}

/// The admin's private chat, as Telegram knows it once they wrote to the bot.
fn admin_wrote() -> Value {
    json!({"update_id": 1, "message": {
        "message_id": 1, "date": 1_795_687_200,
        "from": {"id": ADMIN, "is_bot": false, "first_name": "Admin"},
        "chat": {"id": ADMIN, "type": "private", "first_name": "Admin"},
        "text": "hi"}})
}

#[tokio::test]
async fn the_bot_turning_unhealthy_and_recovering_is_told_once_each() {
    let t = spawn_with(Setup {
        admin_chat: Some(ADMIN.to_string()),
        ..Setup::default()
    })
    .await;
    t.stand_in.observe_update(&admin_wrote());
    let response = t.invoke(alarm("telegram-bot-errors", "ALARM")).await;
    assert_eq!(response.status, 200);
    let response = t.invoke(alarm("telegram-bot-errors", "OK")).await;
    assert_eq!(response.status, 200);
    let sent = t.stand_in.sent_messages();
    let texts: Vec<&str> = sent.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[0].starts_with("🔴 telegram-bot-errors is in ALARM"),
        "{texts:?}"
    );
    assert!(texts[0].contains("Threshold Crossed"), "{texts:?}");
    assert_eq!(texts[1], "✅ telegram-bot-errors is OK again.");
    assert!(sent.iter().all(|m| m["chat_id"] == ADMIN), "{sent:?}");
    t.assert_token_not_logged();
}

#[tokio::test]
async fn a_message_that_cannot_be_sent_is_logged_and_the_invocation_succeeds() {
    let t = spawn_with(Setup {
        admin_chat: Some(ADMIN.to_string()),
        ..Setup::default()
    })
    .await;
    t.stand_in.observe_update(&admin_wrote());
    t.stand_in.inject("sendMessage", Fault::internal_error());
    let response = t.invoke(alarm("telegram-bot-health-check", "ALARM")).await;
    // A failing invocation would raise the errors alarm, and tell again.
    assert_eq!(response.status, 200);
    assert!(
        t.logs
            .text()
            .contains("could not tell the admin chat of an alarm"),
        "{}",
        t.logs.text()
    );
}

#[tokio::test]
async fn without_an_admin_chat_an_alarm_is_only_logged() {
    let t = spawn_with(Setup::default()).await;
    let response = t.invoke(alarm("telegram-bot-errors", "ALARM")).await;
    assert_eq!(response.status, 200);
    assert!(t.stand_in.calls_to("sendMessage").is_empty());
    assert!(t
        .logs
        .text()
        .contains("BOT_ADMIN_CHAT_ID names no chat to tell"));
}

#[tokio::test]
async fn an_alarm_shaped_body_from_the_internet_is_a_webhook_request() {
    // Through API Gateway the event has requestContext: the body is the
    // update, checked with the secret like any other.
    let t = spawn_with(Setup {
        admin_chat: Some(ADMIN.to_string()),
        ..Setup::default()
    })
    .await;
    let mut event = crate::helpers::event("text");
    event["body"] = alarm("telegram-bot-errors", "ALARM").to_string().into();
    event["headers"]["x-telegram-bot-api-secret-token"] = "a-guess".into();
    let response = t.invoke(event).await;
    assert_eq!(response.status, 401);
    assert!(t.stand_in.calls_to("sendMessage").is_empty());
}
