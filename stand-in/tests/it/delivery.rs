//! Webhook delivery, with a receiver that answers as each test decides:
//! retries, per-chat order, Retry-After, timeouts, redirects, lifetimes,
//! and what getWebhookInfo says meanwhile. Telegram time is scaled so that
//! its seconds take milliseconds.

use crate::helpers::{scaled_stand_in, set_webhook, stand_in, until, Receiver, Verdict, SECRET};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WRONG_502: &str = "Wrong response from the webhook: 502 Bad Gateway";
const WRONG_500: &str = "Wrong response from the webhook: 500 Internal Server Error";

fn callback_query(id: i64) -> Value {
    json!({"update_id": id, "callback_query": {
        "id": id.to_string(), "from": {"id": 42, "is_bot": false, "first_name": "Ali"}, "data": "x"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_refused_once_is_redelivered_and_accepted_exactly_once() {
    let stand_in = scaled_stand_in().await;
    let answers = AtomicU32::new(0);
    let receiver = Receiver::start(&stand_in, move |_| {
        match answers.fetch_add(1, Ordering::SeqCst) {
            0 => Verdict::status(502),
            _ => Verdict::ok(),
        }
    })
    .await;
    let api = set_webhook(&stand_in, receiver.url(), &["message"]).await;
    let id = stand_in.enqueue_text_from(42, "Ali", "Hi!");
    assert!(stand_in.wait_settled(id, Duration::from_secs(10)).await);
    assert_eq!(receiver.accepted_texts(42), ["Hi!"]);
    assert_eq!(
        stand_in.deliveries(),
        [(id, WRONG_502.to_owned()), (id, "ok".to_owned())]
    );
    assert!(receiver
        .received()
        .iter()
        .all(|r| r.secret.as_deref() == Some(SECRET)));
    // Telegram keeps the last error after delivery recovered.
    let info = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(info["last_error_message"], WRONG_502);
    assert!(info["last_error_date"].is_i64(), "{info}");
    assert_eq!(info["pending_update_count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_webhook_info_reports_the_error_while_an_update_waits() {
    let stand_in = scaled_stand_in().await;
    let failing = Arc::new(AtomicBool::new(true));
    let receiver = {
        let failing = failing.clone();
        Receiver::start(&stand_in, move |_| match failing.load(Ordering::SeqCst) {
            true => Verdict::status(500),
            false => Verdict::ok(),
        })
        .await
    };
    let api = set_webhook(&stand_in, receiver.url(), &["message"]).await;
    let id = stand_in.enqueue_text_from(42, "Ali", "Hi!");
    until("two failed attempts", 10, || {
        stand_in.deliveries().len() >= 2
    })
    .await;
    let info = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(info["pending_update_count"], 1);
    assert_eq!(info["last_error_message"], WRONG_500);
    failing.store(false, Ordering::SeqCst);
    assert!(stand_in.wait_settled(id, Duration::from_secs(10)).await);
    assert_eq!(receiver.accepted_texts(42), ["Hi!"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_chat_waits_while_other_chats_are_delivered() {
    let stand_in = scaled_stand_in().await;
    let chat_a = 1001;
    let chat_b = 2002;
    let failing = Arc::new(AtomicBool::new(true));
    let receiver = {
        let failing = failing.clone();
        Receiver::start(&stand_in, move |update| {
            let chat = update["message"]["chat"]["id"].as_i64();
            if failing.load(Ordering::SeqCst) && chat == Some(chat_a) {
                Verdict::status(500)
            } else {
                Verdict::ok()
            }
        })
        .await
    };
    set_webhook(&stand_in, receiver.url(), &["message"]).await;
    let a1 = stand_in.enqueue_text_from(chat_a, "A", "a1");
    let a2 = stand_in.enqueue_text_from(chat_a, "A", "a2");
    let b1 = stand_in.enqueue_text_from(chat_b, "B", "b1");
    let b2 = stand_in.enqueue_text_from(chat_b, "B", "b2");
    assert!(stand_in.wait_settled(b2, Duration::from_secs(10)).await);
    assert_eq!(receiver.accepted_texts(chat_b), ["b1", "b2"]);
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
    assert!(receiver.accepted_texts(chat_a).is_empty());
    failing.store(false, Ordering::SeqCst);
    assert!(stand_in.wait_settled(a2, Duration::from_secs(10)).await);
    assert_eq!(receiver.accepted_texts(chat_a), ["a1", "a2"]);
    let delivered = stand_in.delivered();
    let position = |id| delivered.iter().position(|d| *d == id).unwrap();
    assert!(position(a1) < position(a2));
    assert!(position(b1) < position(b2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_from_the_webhook_sets_the_next_attempt() {
    let stand_in = scaled_stand_in().await;
    let answers = AtomicU32::new(0);
    // As a function rate-limited by Telegram answers: 503 and Retry-After.
    let receiver = Receiver::start(&stand_in, move |_| {
        match answers.fetch_add(1, Ordering::SeqCst) {
            0 => Verdict::status(503).retry_after(60),
            _ => Verdict::ok(),
        }
    })
    .await;
    set_webhook(&stand_in, receiver.url(), &["message"]).await;
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
    assert_eq!(receiver.accepted_texts(42), ["later"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_redirecting_or_absent_webhook_is_a_failure() {
    // No answer within 60 Telegram seconds (0.6 s here).
    let stand_in = scaled_stand_in().await;
    let answers = AtomicU32::new(0);
    let receiver = Receiver::start(&stand_in, move |_| {
        match answers.fetch_add(1, Ordering::SeqCst) {
            0 => Verdict::ok().after(Duration::from_millis(1500)),
            _ => Verdict::ok(),
        }
    })
    .await;
    set_webhook(&stand_in, receiver.url(), &["message"]).await;
    let id = stand_in.enqueue_text_from(42, "Ali", "slow");
    assert!(stand_in.wait_settled(id, Duration::from_secs(10)).await);
    assert_eq!(stand_in.deliveries()[0].1, "Read timeout expired");

    // A redirect.
    let stand_in = scaled_stand_in().await;
    let receiver = Receiver::start(&stand_in, |_| Verdict::status(302)).await;
    set_webhook(&stand_in, receiver.url(), &["message"]).await;
    stand_in.enqueue_text_from(42, "Ali", "moved");
    until("a failed attempt", 10, || !stand_in.deliveries().is_empty()).await;
    assert_eq!(
        stand_in.deliveries()[0].1,
        "Wrong response from the webhook: 302 Found"
    );

    // Nothing listening.
    let stand_in = scaled_stand_in().await;
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
    let stand_in = scaled_stand_in().await;
    let receiver = Receiver::start(&stand_in, |_| Verdict::ok()).await;
    set_webhook(&stand_in, receiver.url(), &["message"]).await;
    stand_in.enqueue_update(callback_query(5));
    let id = stand_in.enqueue_text_from(42, "Ali", "text");
    assert!(stand_in.wait_settled(id, Duration::from_secs(10)).await);
    assert_eq!(stand_in.delivered(), [id]);
    assert!(stand_in.pending_updates().is_empty());
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_past_its_lifetime_is_dropped() {
    let stand_in = scaled_stand_in().await;
    let receiver = Receiver::start(&stand_in, |_| Verdict::status(500)).await;
    set_webhook(&stand_in, receiver.url(), &["callback_query"]).await;
    // A callback query lives 150 Telegram seconds: 1.5 s here.
    stand_in.enqueue_update(callback_query(9));
    assert!(stand_in.wait_settled(9, Duration::from_secs(10)).await);
    assert!(stand_in.delivered().is_empty());
    assert!(stand_in.deliveries().len() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_waiting_behind_a_stuck_one_waits_until_that_one_is_dropped() {
    let stand_in = scaled_stand_in().await;
    let receiver = Receiver::start(&stand_in, |_| Verdict::status(500)).await;
    set_webhook(&stand_in, receiver.url(), &["callback_query"]).await;
    // One user's queries share a queue: the second waits behind the first,
    // which is dropped once its next attempt would outlive it
    // (WebhookActor::on_update_error), a little before its 150 s (1.5 s
    // here) are up; then the second is tried, within its own lifetime.
    stand_in.enqueue_update(callback_query(11));
    stand_in.enqueue_update(callback_query(12));
    assert!(stand_in.wait_settled(11, Duration::from_secs(10)).await);
    assert!(stand_in.wait_settled(12, Duration::from_secs(10)).await);
    let order: Vec<i64> = stand_in.deliveries().iter().map(|(id, _)| *id).collect();
    let first_of_12 = order.iter().position(|id| *id == 12).unwrap_or(order.len());
    assert!(order[..first_of_12].iter().all(|id| *id == 11), "{order:?}");
    assert!(order[first_of_12..].iter().all(|id| *id == 12), "{order:?}");
    assert!(
        first_of_12 >= 3,
        "11 was retried with backoff first: {order:?}"
    );
    assert!(stand_in.delivered().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_next_attempt_would_come_after_its_lifetime_is_dropped_at_once() {
    // WebhookActor::on_update_error: a callback query lives 150 s, and a
    // Retry-After of an hour would put its next attempt past that, so it is
    // dropped now rather than when the 150 s are up. Real time here.
    let stand_in = stand_in().await;
    let receiver = Receiver::start(&stand_in, |_| Verdict::status(503).retry_after(3600)).await;
    set_webhook(&stand_in, receiver.url(), &["callback_query"]).await;
    stand_in.enqueue_update(json!({"update_id": 7, "callback_query": {
        "id": "4382", "chat_instance": "-1",
        "from": {"id": 42, "is_bot": false, "first_name": "Ali"}, "data": "+1"
    }}));
    until("the update dropped", 5, || {
        stand_in.pending_updates().is_empty()
    })
    .await;
    assert_eq!(
        stand_in.deliveries(),
        [(
            7,
            "Wrong response from the webhook: 503 Service Unavailable".to_owned()
        )]
    );
}
