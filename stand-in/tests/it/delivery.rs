//! Webhook delivery, with a receiver that answers as each test decides:
//! retries, per-chat order, Retry-After, timeouts, redirects, lifetimes,
//! and what getWebhookInfo says meanwhile. Telegram time is scaled so that
//! its seconds take milliseconds.

use crate::helpers::{
    scaled_stand_in, set_webhook, stand_in, until, Api, Receiver, Verdict, SCALE, SECRET,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use telegram_stand_in::StandIn;

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
    assert!(stand_in.wait_settled(id, Duration::from_secs(10)).await);
    assert_eq!(receiver.accepted_texts(42), ["later"]);
    // Without Retry-After the first retry would come at once; with it,
    // 60 Telegram seconds (0.6 s here) pass first.
    let at: Vec<Instant> = receiver.received().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 2);
    assert!(
        at[1] - at[0] >= Duration::from_secs_f64(60.0 * SCALE),
        "{:?}",
        at[1] - at[0]
    );
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

/// Sets a webhook to `url` with [`SECRET`], every kind the tests send, and
/// `max_connections`.
async fn set_webhook_with(stand_in: &StandIn, url: &str, max_connections: u32) -> Api {
    let api = Api::new(stand_in);
    api.ok(
        "setWebhook",
        json!({"url": url, "secret_token": SECRET, "max_connections": max_connections,
               "allowed_updates": ["message", "callback_query", "inline_query",
                                   "message_reaction", "my_chat_member"]}),
    )
    .await;
    api
}

async fn all_settled(stand_in: &StandIn, ids: &[i64]) {
    for id in ids {
        assert!(stand_in.wait_settled(*id, Duration::from_secs(10)).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_wait_in_the_queue_of_their_kind_not_behind_a_failing_message() {
    // Client.cpp's add_* functions: a chat's reactions and the bot's
    // membership, and a user's callback queries, have queues of their own,
    // apart from the chat's messages and the user's inline queries.
    let stand_in = scaled_stand_in().await;
    let receiver = Receiver::start(&stand_in, |update| {
        if update.get("message").is_some() || update.get("inline_query").is_some() {
            Verdict::status(500)
        } else {
            Verdict::ok()
        }
    })
    .await;
    set_webhook_with(&stand_in, receiver.url(), 40).await;
    let user = json!({"id": 42, "is_bot": false, "first_name": "Ali"});
    let chat = json!({"id": 42, "type": "private", "first_name": "Ali"});
    let now = telegram_now();
    let stuck = stand_in.enqueue_text_from(42, "Ali", "stuck");
    stand_in.enqueue_update(json!({"update_id": 2001, "message_reaction": {
        "chat": chat, "message_id": 1, "user": user, "date": now,
        "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "👍"}]}}));
    stand_in.enqueue_update(json!({"update_id": 2002, "my_chat_member": {
        "chat": chat, "from": user, "date": now,
        "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": true, "first_name": "Bot"}},
        "new_chat_member": {"status": "kicked", "user": {"id": 1, "is_bot": true, "first_name": "Bot"},
                            "until_date": 0}}}));
    stand_in.enqueue_update(json!({"update_id": 2003, "inline_query": {
        "id": "1", "from": user, "query": "", "offset": ""}}));
    stand_in.enqueue_update(json!({"update_id": 2004, "callback_query": {
        "id": "2", "from": user, "chat_instance": "-1", "data": "x"}}));
    all_settled(&stand_in, &[2001, 2002, 2004]).await;
    let pending: Vec<i64> = stand_in
        .pending_updates()
        .iter()
        .map(|u| u["update_id"].as_i64().unwrap())
        .collect();
    // Delivered while the message and the inline query still fail.
    assert_eq!(pending, [stuck, 2003]);
    until("the inline query failing", 10, || {
        stand_in.deliveries().iter().any(|(id, _)| *id == 2003)
    })
    .await;
    assert!(!stand_in.delivered().contains(&stuck));
}

fn telegram_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_webhook_uses_one_connection_until_its_first_success_then_up_to_max_connections() {
    // WebhookActor::create_new_connections: one connection while
    // last_success_time_ is more than 10 s back (an hour back at start).
    let stand_in = scaled_stand_in().await;
    let answer_after = Duration::from_millis(150);
    let receiver = Receiver::start(&stand_in, move |_| Verdict::ok().after(answer_after)).await;
    let mut ids: Vec<i64> = (0..4)
        .map(|chat| stand_in.enqueue_text_from(3000 + chat, "A", "hi"))
        .collect();
    set_webhook_with(&stand_in, receiver.url(), 3).await;
    until("the first delivery", 10, || !receiver.received().is_empty()).await;
    // Another chat's update while the first is being answered: still the
    // one connection.
    ids.push(stand_in.enqueue_text_from(3004, "A", "hi"));
    all_settled(&stand_in, &ids).await;
    let received = receiver.received();
    assert_eq!(received.len(), 5);
    assert_eq!(received[0].concurrent, 1);
    // The second came only once the first was answered.
    assert!(
        received[1].at.duration_since(received[0].at) >= answer_after,
        "{:?}",
        received[1].at.duration_since(received[0].at)
    );
    let most = received.iter().map(|r| r.concurrent).max().unwrap();
    assert_eq!(most, 3, "then one per queue, up to max_connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_without_a_success_for_ten_seconds_is_back_to_one_connection() {
    let stand_in = scaled_stand_in().await;
    let failing = Arc::new(AtomicBool::new(false));
    let receiver = {
        let failing = failing.clone();
        Receiver::start(&stand_in, move |_| {
            if failing.load(Ordering::SeqCst) {
                // Each failure closes its connection, so new ones are made.
                Verdict::status(500)
                    .closing()
                    .after(Duration::from_millis(30))
            } else {
                Verdict::ok().after(Duration::from_millis(50))
            }
        })
        .await
    };
    set_webhook_with(&stand_in, receiver.url(), 4).await;
    let ids: Vec<i64> = (0..4)
        .map(|chat| stand_in.enqueue_text_from(4000 + chat, "A", "ok"))
        .collect();
    all_settled(&stand_in, &ids).await;
    assert!(receiver.received().iter().any(|r| r.concurrent > 1));
    failing.store(true, Ordering::SeqCst);
    let failing_since = Instant::now();
    for chat in 0..4 {
        stand_in.enqueue_text_from(5000 + chat, "B", "fails");
    }
    // 60 Telegram seconds of failures and retries.
    tokio::time::sleep(Duration::from_secs_f64(60.0 * SCALE)).await;
    let received = receiver.received();
    // Within 10 s of the last success the connections are still made.
    let early = received
        .iter()
        .filter(|r| r.at < failing_since + Duration::from_secs_f64(5.0 * SCALE));
    assert!(early.map(|r| r.concurrent).max().unwrap_or(0) > 1);
    // After 10 s without one, one at a time (a margin for the last
    // success's answer).
    let late: Vec<usize> = received
        .iter()
        .filter(|r| r.at > failing_since + Duration::from_secs_f64(15.0 * SCALE))
        .map(|r| r.concurrent)
        .collect();
    assert!(late.len() >= 3, "{late:?}");
    assert!(late.iter().all(|c| *c == 1), "{late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_update_is_delivered_after_allowed_updates_leave_out_its_kind() {
    // Client::add_update_impl filters when an update is created, not when
    // it is delivered.
    let stand_in = scaled_stand_in().await;
    let receiver = Receiver::start(&stand_in, |_| Verdict::ok()).await;
    let id = stand_in.enqueue_text_from(42, "Ali", "queued first");
    set_webhook(&stand_in, receiver.url(), &["callback_query"]).await;
    assert!(stand_in.wait_settled(id, Duration::from_secs(10)).await);
    assert_eq!(stand_in.delivered(), [id]);
    assert_eq!(receiver.accepted_texts(42), ["queued first"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_set_webhook_keeps_the_last_error() {
    // Client::process_set_webhook_query: the same URL, secret,
    // max_connections and fixed IP address leave the webhook as it is
    // ("Webhook is already set"), whatever allowed_updates says; a changed
    // one starts afresh (webhooks.rs tries each parameter).
    let stand_in = scaled_stand_in().await;
    // Only the first attempt fails: with no retry failing meanwhile, the
    // error's date cannot move on by itself.
    let failing = AtomicBool::new(true);
    let receiver = Receiver::start(&stand_in, move |_| {
        match failing.swap(false, Ordering::SeqCst) {
            true => Verdict::status(502),
            false => Verdict::ok(),
        }
    })
    .await;
    let api = set_webhook(&stand_in, receiver.url(), &["message"]).await;
    let id = stand_in.enqueue_text_from(42, "Ali", "Hi!");
    assert!(stand_in.wait_settled(id, Duration::from_secs(10)).await);
    // Kept after delivery recovered.
    let before = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(before["last_error_message"], WRONG_502);
    // setWebhook's one a second is 10 ms here.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let same = api
        .call(
            "setWebhook",
            json!({"url": receiver.url(), "secret_token": SECRET,
                   "allowed_updates": ["message", "callback_query"]}),
        )
        .await;
    assert_eq!(same.result(), &json!(true));
    assert_eq!(same.body["description"], "Webhook is already set");
    let after = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(after["last_error_date"], before["last_error_date"]);
    assert_eq!(after["last_error_message"], WRONG_502);
    assert_eq!(
        after["allowed_updates"],
        json!(["message", "callback_query"])
    );

    tokio::time::sleep(Duration::from_millis(20)).await;
    let changed = api
        .call(
            "setWebhook",
            json!({"url": receiver.url(), "secret_token": SECRET, "max_connections": 5}),
        )
        .await;
    assert_eq!(changed.body["description"], "Webhook was set");
    let fresh = api.ok("getWebhookInfo", json!({})).await;
    assert!(fresh.get("last_error_message").is_none(), "{fresh}");
    assert!(fresh.get("last_error_date").is_none(), "{fresh}");
}
