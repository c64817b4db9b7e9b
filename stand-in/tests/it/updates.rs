//! How updates reach the bot: the webhook methods, and getUpdates with its
//! offsets, long polls and conflicts, as Telegram answers them.

use crate::helpers::{private_message, stand_in, until, Api};
use serde_json::{json, Value};
use std::time::Duration;

fn ids(updates: &Value) -> Vec<i64> {
    updates
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["update_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn webhook_methods_round_trip_and_set_webhook_is_rate_limited() {
    let stand_in = stand_in().await;
    let api = Api::new(&stand_in);
    let set = json!({
        "url": "https://example.invalid/webhook",
        "secret_token": "s3cret",
        "allowed_updates": ["message"],
        "max_connections": 10,
    });
    assert_eq!(api.ok("setWebhook", set.clone()).await, true);
    // One setWebhook a second, even an identical one.
    let again = api.call("setWebhook", set.clone()).await;
    assert_eq!(again.status, 429);
    assert_eq!(again.description(), "Too Many Requests: retry after 1");
    assert_eq!(again.body["parameters"], json!({"retry_after": 1}));
    assert_eq!(again.retry_after.as_deref(), Some("1"));
    let info = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(info["url"], set["url"]);
    assert_eq!(info["max_connections"], 10);
    assert_eq!(info["allowed_updates"], set["allowed_updates"]);
    // getUpdates is refused while a webhook is set, as Telegram does.
    let conflict = api.call("getUpdates", json!({})).await;
    assert_eq!(conflict.status, 409);
    assert!(
        conflict
            .description()
            .starts_with("Conflict: can't use getUpdates method while webhook is active"),
        "{conflict:?}"
    );
    assert_eq!(api.ok("deleteWebhook", json!({})).await, true);
    assert_eq!(api.ok("getWebhookInfo", json!({})).await["url"], "");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let plain_http = api
        .call("setWebhook", json!({"url": "http://example.invalid/hook"}))
        .await;
    assert_eq!(plain_http.status, 400);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let odd_port = api
        .call(
            "setWebhook",
            json!({"url": "https://example.invalid:9000/hook"}),
        )
        .await;
    assert_eq!(odd_port.status, 400);
    assert!(
        odd_port
            .description()
            .contains("only on ports 80, 88, 443 or 8443"),
        "{odd_port:?}"
    );
}

#[tokio::test]
async fn get_updates_confirms_with_an_offset_and_a_long_poll_returns_when_an_update_arrives() {
    let stand_in = stand_in().await;
    let api = Api::new(&stand_in);
    for id in [5, 6, 7] {
        stand_in.enqueue_update(private_message(id, id, 42));
    }
    let all = api.ok("getUpdates", json!({})).await;
    assert_eq!(ids(&all), [5, 6, 7]);
    let rest = api.ok("getUpdates", json!({"offset": 7})).await;
    assert_eq!(ids(&rest), [7]);
    // Confirmed updates are gone; a long poll returns as soon as one arrives.
    let poll = {
        let api = api.clone();
        tokio::spawn(async move {
            api.ok("getUpdates", json!({"offset": 8, "timeout": 10}))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    stand_in.enqueue_update(private_message(8, 8, 42));
    let arrived = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("the long poll returned when the update arrived")
        .unwrap();
    assert_eq!(ids(&arrived), [8]);
}

#[tokio::test]
async fn a_second_poller_with_the_same_token_ends_the_first_ones_long_poll_with_a_conflict() {
    let stand_in = stand_in().await;
    let api = Api::new(&stand_in);
    let first = {
        let api = api.clone();
        tokio::spawn(async move { api.call("getUpdates", json!({"timeout": 5})).await })
    };
    until("the first long poll", 10, || {
        stand_in.calls_to("getUpdates").len() == 1
    })
    .await;
    let second = api.ok("getUpdates", json!({"timeout": 0})).await;
    assert_eq!(second, json!([]));
    let first = tokio::time::timeout(Duration::from_secs(3), first)
        .await
        .expect("the first poll ended before its timeout")
        .unwrap();
    assert_eq!(first.status, 409);
    assert_eq!(
        first.description(),
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
    );
}
