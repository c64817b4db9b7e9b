//! The stand-in's webhook delivery, with the real handler behind a Function
//! URL-like HTTP server: retries, per-chat order, Retry-After, timeouts,
//! lifetimes, and what getWebhookInfo says meanwhile. Telegram time is
//! scaled so that its seconds take milliseconds.

use crate::helpers::{app_for, serve_function, Gate, SECRET};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::client::BotApi;
use telegram_lambda_bot::telegram::SetWebhook;
use telegram_stand_in::{Fault, Options, StandIn};

/// 1 Telegram second = 10 ms.
const SCALE: f64 = 0.01;

async fn stand_in() -> StandIn {
    StandIn::start(Options {
        time_scale: SCALE,
        ..Options::default()
    })
    .await
    .unwrap()
}

async fn set_webhook(stand_in: &StandIn, url: &str, allowed: &[&str]) -> BotApi {
    let api = crate::helpers::api_for(stand_in);
    api.set_webhook(&SetWebhook {
        url: url.to_owned(),
        secret_token: Some(SECRET.to_owned()),
        allowed_updates: Some(allowed.iter().map(|k| k.to_string()).collect()),
        ..SetWebhook::default()
    })
    .await
    .unwrap();
    api
}

async fn until(what: &str, seconds: u64, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn texts(replies: &[Value]) -> Vec<String> {
    replies
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_fails_once_is_redelivered_and_seen_exactly_once() {
    let stand_in = stand_in().await;
    let url = serve_function(Arc::new(app_for(&stand_in)), None).await;
    let api = set_webhook(&stand_in, &url, &["message"]).await;
    stand_in.inject("sendMessage", Fault::internal_error());
    let id = stand_in.enqueue_text_from(42, "Ali", "Hi!");
    assert!(stand_in.wait_settled(id, Duration::from_secs(10)).await);
    assert_eq!(texts(&stand_in.replies_to(42)), ["You said: Hi!"]);
    assert_eq!(
        stand_in.deliveries(),
        [
            (
                id,
                "Wrong response from the webhook: 502 Bad Gateway".to_owned()
            ),
            (id, "ok".to_owned())
        ]
    );
    // Telegram keeps the last error after delivery recovered.
    let info = api.get_webhook_info().await.unwrap();
    assert_eq!(
        info.last_error_message.as_deref(),
        Some("Wrong response from the webhook: 502 Bad Gateway")
    );
    assert!(info.last_error_date.is_some());
    assert_eq!(info.pending_update_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_webhook_info_reports_the_error_while_an_update_waits() {
    let stand_in = stand_in().await;
    let failing = Arc::new(AtomicBool::new(true));
    let gate: Gate = {
        let failing = failing.clone();
        Arc::new(move |_: &Value| failing.load(Ordering::SeqCst).then_some(500))
    };
    let url = serve_function(Arc::new(app_for(&stand_in)), Some(gate)).await;
    let api = set_webhook(&stand_in, &url, &["message"]).await;
    let id = stand_in.enqueue_text_from(42, "Ali", "Hi!");
    until("two failed attempts", 10, || {
        stand_in.deliveries().len() >= 2
    })
    .await;
    let info = api.get_webhook_info().await.unwrap();
    assert_eq!(info.pending_update_count, 1);
    assert_eq!(
        info.last_error_message.as_deref(),
        Some("Wrong response from the webhook: 500 Internal Server Error")
    );
    failing.store(false, Ordering::SeqCst);
    assert!(stand_in.wait_settled(id, Duration::from_secs(10)).await);
    assert_eq!(texts(&stand_in.replies_to(42)), ["You said: Hi!"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_chat_waits_while_other_chats_are_answered() {
    let stand_in = stand_in().await;
    let chat_a = 1001;
    let chat_b = 2002;
    let failing = Arc::new(AtomicBool::new(true));
    let gate: Gate = {
        let failing = failing.clone();
        Arc::new(move |update: &Value| {
            let chat = update["message"]["chat"]["id"].as_i64();
            (failing.load(Ordering::SeqCst) && chat == Some(chat_a)).then_some(500)
        })
    };
    let url = serve_function(Arc::new(app_for(&stand_in)), Some(gate)).await;
    set_webhook(&stand_in, &url, &["message"]).await;
    let a1 = stand_in.enqueue_text_from(chat_a, "A", "a1");
    let a2 = stand_in.enqueue_text_from(chat_a, "A", "a2");
    let b1 = stand_in.enqueue_text_from(chat_b, "B", "b1");
    let b2 = stand_in.enqueue_text_from(chat_b, "B", "b2");
    assert!(stand_in.wait_settled(b2, Duration::from_secs(10)).await);
    assert_eq!(
        texts(&stand_in.replies_to(chat_b)),
        ["You said: b1", "You said: b2"]
    );
    until("A's head retried a few times", 10, || {
        stand_in
            .deliveries()
            .iter()
            .filter(|(id, _)| *id == a1)
            .count()
            >= 3
    })
    .await;
    // A's second message is held back: never attempted while a1 fails.
    assert!(stand_in.deliveries().iter().all(|(id, _)| *id != a2));
    assert!(stand_in.replies_to(chat_a).is_empty());
    failing.store(false, Ordering::SeqCst);
    assert!(stand_in.wait_settled(a2, Duration::from_secs(10)).await);
    assert_eq!(
        texts(&stand_in.replies_to(chat_a)),
        ["You said: a1", "You said: a2"]
    );
    let delivered = stand_in.delivered();
    let position = |id| delivered.iter().position(|d| *d == id).unwrap();
    assert!(position(a1) < position(a2));
    assert!(position(b1) < position(b2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_from_the_function_sets_the_next_attempt() {
    let stand_in = stand_in().await;
    // The function's own 503 + Retry-After when Telegram rate-limits it.
    stand_in.inject("sendMessage", Fault::too_many_requests(60));
    let url = serve_function(Arc::new(app_for(&stand_in)), None).await;
    set_webhook(&stand_in, &url, &["message"]).await;
    let id = stand_in.enqueue_text_from(42, "Ali", "later");
    until("the first attempt", 10, || {
        !stand_in.deliveries().is_empty()
    })
    .await;
    assert_eq!(
        stand_in.deliveries()[0].1,
        "Wrong response from the webhook: 503 Service Unavailable"
    );
    // Without Retry-After the first retry would come at once; with it,
    // 60 Telegram seconds (0.6 s here) pass first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stand_in.deliveries().len(), 1);
    assert!(stand_in.wait_settled(id, Duration::from_secs(10)).await);
    assert_eq!(texts(&stand_in.replies_to(42)), ["You said: later"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_redirecting_or_absent_webhook_is_a_failure() {
    // No answer within 60 Telegram seconds.
    let stand_in = stand_in().await;
    let slow = Arc::new(AtomicU32::new(0));
    let gate: Gate = {
        let slow = slow.clone();
        Arc::new(move |_: &Value| {
            if slow.fetch_add(1, Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(1500));
            }
            None
        })
    };
    let url = serve_function(Arc::new(app_for(&stand_in)), Some(gate)).await;
    set_webhook(&stand_in, &url, &["message"]).await;
    let id = stand_in.enqueue_text_from(42, "Ali", "slow");
    assert!(stand_in.wait_settled(id, Duration::from_secs(10)).await);
    assert_eq!(stand_in.deliveries()[0].1, "Read timeout expired");

    // A redirect.
    let stand_in = self::stand_in().await;
    let gate: Gate = Arc::new(|_: &Value| Some(302));
    let url = serve_function(Arc::new(app_for(&stand_in)), Some(gate)).await;
    set_webhook(&stand_in, &url, &["message"]).await;
    stand_in.enqueue_text_from(42, "Ali", "moved");
    until("a failed attempt", 10, || !stand_in.deliveries().is_empty()).await;
    assert_eq!(
        stand_in.deliveries()[0].1,
        "Wrong response from the webhook: 302 Found"
    );

    // Nothing listening.
    let stand_in = self::stand_in().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    set_webhook(
        &stand_in,
        &format!("http://127.0.0.1:{port}/"),
        &["message"],
    )
    .await;
    stand_in.enqueue_text_from(42, "Ali", "anyone?");
    until("a failed attempt", 10, || !stand_in.deliveries().is_empty()).await;
    assert_eq!(stand_in.deliveries()[0].1, "Connection refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_update_kinds_are_delivered() {
    let stand_in = stand_in().await;
    let url = serve_function(Arc::new(app_for(&stand_in)), None).await;
    set_webhook(&stand_in, &url, &["message"]).await;
    stand_in.enqueue_update(json!({"update_id": 5, "callback_query": {
        "id": "1", "from": {"id": 42, "is_bot": false, "first_name": "Ali"}, "data": "x"}}));
    let id = stand_in.enqueue_text_from(42, "Ali", "text");
    assert!(stand_in.wait_settled(id, Duration::from_secs(10)).await);
    assert_eq!(stand_in.delivered(), [id]);
    assert!(stand_in.pending_updates().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_past_its_lifetime_is_dropped() {
    let stand_in = stand_in().await;
    let gate: Gate = Arc::new(|_: &Value| Some(500));
    let url = serve_function(Arc::new(app_for(&stand_in)), Some(gate)).await;
    set_webhook(&stand_in, &url, &["callback_query"]).await;
    // A callback query lives 150 Telegram seconds: 1.5 s here.
    stand_in.enqueue_update(json!({"update_id": 9, "callback_query": {
        "id": "1", "from": {"id": 42, "is_bot": false, "first_name": "Ali"}, "data": "x"}}));
    assert!(stand_in.wait_settled(9, Duration::from_secs(10)).await);
    assert!(stand_in.delivered().is_empty());
    assert!(stand_in.deliveries().len() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_waiting_behind_a_stuck_one_expires_too() {
    let stand_in = stand_in().await;
    let gate: Gate = Arc::new(|_: &Value| Some(500));
    let url = serve_function(Arc::new(app_for(&stand_in)), Some(gate)).await;
    set_webhook(&stand_in, &url, &["callback_query"]).await;
    let query = |id: i64| {
        json!({"update_id": id, "callback_query": {
            "id": id.to_string(), "from": {"id": 42, "is_bot": false, "first_name": "Ali"}, "data": "x"}})
    };
    // One user's queries share a queue: the second waits behind the first.
    stand_in.enqueue_update(query(11));
    stand_in.enqueue_update(query(12));
    assert!(stand_in.wait_settled(12, Duration::from_secs(10)).await);
    assert!(stand_in.wait_settled(11, Duration::from_secs(10)).await);
    assert!(stand_in.deliveries().iter().all(|(id, _)| *id == 11));
    assert!(stand_in.delivered().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stand_in_can_be_driven_over_http_by_scripts() {
    let stand_in = stand_in().await;
    let url = serve_function(Arc::new(app_for(&stand_in)), None).await;
    set_webhook(&stand_in, &url, &["message"]).await;
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/_stand-in/messages", stand_in.base_url()))
        .json(&json!({"text": "/start", "first_name": "Sam"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["settled"], true);
    assert_eq!(
        answer["replies"],
        json!(["Hello, Sam! I echo what you write. Send /help to see what I can do."])
    );
}
