//! How updates reach the bot: the webhook methods, and getUpdates with its
//! offsets, long polls and conflicts, as Telegram answers them.

use crate::helpers::{private_message, stand_in, stand_in_at, until, Api, Reply};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use telegram_stand_in::StandIn;
use tokio::task::JoinHandle;

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
    // One setWebhook a Telegram second: 100 ms here.
    let stand_in = stand_in_at(0.1).await;
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
    tokio::time::sleep(Duration::from_millis(110)).await;
    let plain_http = api
        .call("setWebhook", json!({"url": "http://example.invalid/hook"}))
        .await;
    assert_eq!(plain_http.status, 400);
    tokio::time::sleep(Duration::from_millis(110)).await;
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
    let poll = waiting_poll(&stand_in, &api, json!({"offset": 8, "timeout": 10})).await;
    stand_in.enqueue_update(private_message(8, 8, 42));
    let arrived = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("the long poll returned when the update arrived")
        .unwrap();
    assert_eq!(ids(arrived.result()), [8]);
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
    // Timeout 0, but repeating the first call's offset within 3 s: Telegram
    // raises it to 3 s, so this call waits too and takes over.
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

const OTHER_GET_UPDATES: &str =
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";

/// Starts a getUpdates call and returns once it waits at the stand-in.
async fn waiting_poll(stand_in: &StandIn, api: &Api, params: Value) -> JoinHandle<Reply> {
    let before = stand_in.long_polls();
    let poll = {
        let api = api.clone();
        tokio::spawn(async move { api.call("getUpdates", params).await })
    };
    until("the poll to wait", 10, || stand_in.long_polls() > before).await;
    poll
}

async fn answer_of(poll: JoinHandle<Reply>) -> Reply {
    tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the poll was answered")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_zero_call_does_not_end_a_waiting_poll() {
    // Client::do_get_updates: only a call that itself waits takes over.
    let stand_in = stand_in_at(0.05).await; // 50 s of long poll in 2.5 s
    let api = Api::new(&stand_in);
    let first = waiting_poll(&stand_in, &api, json!({"offset": 1, "timeout": 50})).await;
    let quick = api
        .call("getUpdates", json!({"offset": 2, "timeout": 0}))
        .await;
    assert_eq!(quick.result(), &json!([]));
    assert!(!first.is_finished(), "the waiting poll still waits");
    stand_in.enqueue_update(private_message(7, 7, 42));
    let first = answer_of(first).await;
    assert_eq!(ids(first.result()), [7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_ends_the_one_before_it_and_conflicts_come_at_most_every_three_seconds() {
    // Client::abort_long_poll and fail_query_conflict; 3 s are 300 ms here.
    let stand_in = stand_in_at(0.1).await;
    let api = Api::new(&stand_in);
    let first = waiting_poll(&stand_in, &api, json!({"offset": 1, "timeout": 50})).await;
    let second = waiting_poll(&stand_in, &api, json!({"offset": 2, "timeout": 10})).await;
    let first = answer_of(first).await;
    assert_eq!(first.status, 409);
    assert_eq!(first.description(), OTHER_GET_UPDATES);
    assert!(!second.is_finished(), "the second call waits in its place");
    let third_started = Instant::now();
    let third = waiting_poll(&stand_in, &api, json!({"offset": 3, "timeout": 10})).await;
    let second = answer_of(second).await;
    assert_eq!(second.status, 409);
    assert_eq!(second.description(), OTHER_GET_UPDATES);
    // The second conflict within 3 s is answered 3 s late.
    assert!(
        third_started.elapsed() >= Duration::from_millis(280),
        "{:?}",
        third_started.elapsed()
    );
    assert_eq!(answer_of(third).await.result(), &json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_repeating_the_last_offset_waits_three_seconds_and_a_rapid_one_gets_one_update() {
    // Client::process_get_updates_query; 0.5 s are 100 ms here, 3 s 600 ms.
    let stand_in = stand_in_at(0.2).await;
    let api = Api::new(&stand_in);
    for id in [5, 6, 7] {
        stand_in.enqueue_update(private_message(id, id, 42));
    }
    let all = json!({"offset": 0, "timeout": 0});
    assert_eq!(ids(&api.ok("getUpdates", all.clone()).await), [5, 6, 7]);
    assert_eq!(
        ids(&api.ok("getUpdates", all.clone()).await),
        [5],
        "the same offset again within 0.5 s: one update"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        ids(&api.ok("getUpdates", all).await),
        [5, 6, 7],
        "after 0.5 s, the limit asked for; with updates, at once"
    );
    let past = json!({"offset": 8, "timeout": 0});
    let started = Instant::now();
    assert_eq!(api.ok("getUpdates", past.clone()).await, json!([]));
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "a new offset"
    );
    let started = Instant::now();
    assert_eq!(api.ok("getUpdates", past).await, json!([]));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(550),
        "timeout 0 with the same offset within 3 s waits 3 s: {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_a_webhook_ends_a_waiting_poll() {
    // Client::process_set_webhook_query calls abort_long_poll(true).
    let stand_in = stand_in_at(0.05).await;
    let api = Api::new(&stand_in);
    let poll = waiting_poll(&stand_in, &api, json!({"timeout": 50})).await;
    api.ok(
        "setWebhook",
        json!({"url": "https://example.invalid/webhook"}),
    )
    .await;
    let poll = answer_of(poll).await;
    assert_eq!(poll.status, 409);
    assert_eq!(
        poll.description(),
        "Conflict: terminated by setWebhook request"
    );
}

#[tokio::test]
async fn allowed_updates_apply_to_updates_created_after_and_queued_ones_stay() {
    // Client::add_update_impl filters when an update is created.
    let stand_in = stand_in().await;
    let api = Api::new(&stand_in);
    let query = |id: i64| {
        json!({"update_id": id, "callback_query": {
            "id": id.to_string(), "from": {"id": 42, "is_bot": false, "first_name": "Ali"}}})
    };
    stand_in.enqueue_update(query(5));
    let first = api
        .ok(
            "getUpdates",
            json!({"timeout": 0, "allowed_updates": ["message"]}),
        )
        .await;
    assert_eq!(ids(&first), [5], "queued before: still delivered");
    stand_in.enqueue_update(query(6));
    stand_in.enqueue_update(private_message(7, 7, 42));
    let next = api.ok("getUpdates", json!({"offset": 6})).await;
    assert_eq!(ids(&next), [7], "created after: never queued");
    // One setting for getUpdates and webhooks, shown by getWebhookInfo.
    let info = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(info["allowed_updates"], json!(["message"]));
}

#[tokio::test]
async fn member_and_reaction_updates_are_created_only_when_asked_for() {
    // DEFAULT_ALLOWED_UPDATE_TYPES leaves out chat_member, message_reaction
    // and message_reaction_count.
    let stand_in = stand_in().await;
    let api = Api::new(&stand_in);
    let reaction = |id: i64| {
        json!({"update_id": id, "message_reaction": {
            "chat": {"id": 42, "type": "private"}, "message_id": 1, "date": 1,
            "old_reaction": [], "new_reaction": []}})
    };
    stand_in.enqueue_update(reaction(5));
    assert!(stand_in.pending_updates().is_empty());
    let info = api.ok("getWebhookInfo", json!({})).await;
    assert!(info.get("allowed_updates").is_none(), "{info}");
    api.ok(
        "getUpdates",
        json!({"timeout": 0, "allowed_updates": ["message", "message_reaction"]}),
    )
    .await;
    stand_in.enqueue_update(reaction(6));
    assert_eq!(ids(&api.ok("getUpdates", json!({"offset": 6})).await), [6]);
    // An empty list is the default again.
    api.ok(
        "getUpdates",
        json!({"offset": 7, "timeout": 0, "allowed_updates": []}),
    )
    .await;
    stand_in.enqueue_update(reaction(8));
    assert!(stand_in.pending_updates().is_empty());
}
