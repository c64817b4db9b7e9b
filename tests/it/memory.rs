//! Memory and exactly-once answers: two function instances sharing one
//! DynamoDB table on moto's server, and a fake DynamoDB endpoint for the
//! failures moto cannot produce.

use crate::helpers::{event_with, update_in, Logs};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::runtime::memory::{Leases, Memory};
use telegram_lambda_bot::runtime::store::dynamodb::DynamoDbStore;
use telegram_lambda_bot::webhook::{handle_event, Verdict, Webhook};
use telegram_stand_in::{Fault, Options, StandIn};
use testkit::{sdk_config, until, Moto};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const TABLE: &str = "echo-bot-memory";
const CHAT: i64 = 5_550_001;

/// Two instances of the function, as Lambda runs them: each with its own
/// client and store connection, one table between them.
struct Instances {
    _moto: Moto,
    stand_in: StandIn,
    a: Arc<Webhook>,
    b: Arc<Webhook>,
    logs: Logs,
    _guard: tracing::subscriber::DefaultGuard,
}

async fn instances() -> Instances {
    let moto = Moto::start().await;
    moto.create_table(TABLE).await;
    let (logs, guard) = Logs::capture("info");
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let instance = || {
        let memory = Memory::new(
            Arc::new(DynamoDbStore::new(&moto.sdk_config(), TABLE)),
            Leases::Shared,
        )
        .with_lease_margin(LEASE_MARGIN);
        Arc::new(webhook(&stand_in).with_memory(memory))
    };
    let (a, b) = (instance(), instance());
    Instances {
        _moto: moto,
        stand_in,
        a,
        b,
        logs,
        _guard: guard,
    }
}

fn webhook(stand_in: &StandIn) -> Webhook {
    crate::helpers::webhook_with(stand_in, Memory::in_process())
}

/// The lease margin of these tests: one instance's clock is the other's,
/// so a second is plenty (deployed: 5 s, `BOT_LEASE_MARGIN_SECS`).
const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// A text message from the test chat, as Telegram sends it.
fn message(update_id: i64, text: &str) -> Value {
    let mut message = json!({
        "message_id": update_id, "date": 1_795_687_200,
        "from": {"id": CHAT, "is_bot": false, "first_name": "Ali"},
        "chat": {"id": CHAT, "type": "private", "first_name": "Ali"},
        "text": text
    });
    if text.starts_with('/') {
        let length = text.find(' ').unwrap_or(text.len());
        message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": length}]);
    }
    json!({"update_id": update_id, "message": message})
}

async fn deliver(stand_in: &StandIn, to: &Webhook, update: &Value, time_left: Duration) -> Verdict {
    stand_in.observe_update(update);
    handle_event(to, event_with(update), Instant::now() + time_left).await
}

async fn deliver_now(stand_in: &StandIn, to: &Webhook, update: &Value) -> Verdict {
    deliver(stand_in, to, update, Duration::from_secs(10)).await
}

fn sends(stand_in: &StandIn) -> usize {
    stand_in.calls_to("sendMessage").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_to_another_instance_is_acknowledged_without_a_bot_api_call() {
    let t = instances().await;
    let update = message(900_001, "hello");
    let first = deliver_now(&t.stand_in, &t.a, &update).await;
    assert_eq!(first.as_str(), "answered");
    for instance in [&t.b, &t.a, &t.b] {
        let again = deliver_now(&t.stand_in, instance, &update).await;
        assert_eq!((again.status(), again.as_str()), (200, "duplicate"));
    }
    assert_eq!(sends(&t.stand_in), 1, "one reply, one Bot API call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_leaves_the_update_to_the_next_delivery_on_any_instance() {
    let t = instances().await;
    t.stand_in.inject("sendMessage", Fault::internal_error());
    let update = message(900_002, "hello");
    let failed = deliver_now(&t.stand_in, &t.a, &update).await;
    assert_eq!(failed.status(), 502);
    assert!(t.stand_in.sent_messages().is_empty());
    let next = deliver_now(&t.stand_in, &t.b, &update).await;
    assert_eq!((next.status(), next.as_str()), (200, "answered"));
    assert_eq!(t.stand_in.sent_messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deliveries_at_the_same_time_never_both_send() {
    let t = instances().await;
    // The first instance is slow to hear back from Telegram, and Telegram,
    // having lost its connection, delivers again meanwhile.
    t.stand_in
        .inject("sendMessage", Fault::SlowAnswer { millis: 1_500 });
    let update = message(900_003, "hello");
    let first = {
        let (stand_in_update, a) = (update.clone(), t.a.clone());
        t.stand_in.observe_update(&update);
        tokio::spawn(async move {
            handle_event(
                &a,
                event_with(&stand_in_update),
                Instant::now() + Duration::from_secs(10),
            )
            .await
        })
    };
    until("the first instance sent", 10, || {
        t.stand_in.sent_messages().len() == 1
    })
    .await;
    let second = deliver_now(&t.stand_in, &t.b, &update).await;
    assert_eq!(second.status(), 503, "{second:?}");
    let response = second.response();
    let retry_after: u64 = response.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=5).contains(&retry_after),
        "a short Retry-After: {retry_after}"
    );
    assert_eq!(first.await.unwrap().as_str(), "answered");
    let later = deliver_now(&t.stand_in, &t.b, &update).await;
    assert_eq!(later.as_str(), "duplicate");
    assert_eq!(sends(&t.stand_in), 1);
    let lines = t.logs.outcome_lines();
    assert!(
        lines.iter().any(|l| l["outcome"] == "in_progress"),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_dies_after_sending_blocks_the_update_only_for_its_lease() {
    let t = instances().await;
    t.stand_in
        .inject("sendMessage", Fault::SlowAnswer { millis: 10_000 });
    let update = message(900_004, "hello");
    t.stand_in.observe_update(&update);
    let dying = {
        let (update, a) = (update.clone(), t.a.clone());
        // An invocation with 1.5 s left: its lease ends a margin after that.
        tokio::spawn(async move {
            handle_event(
                &a,
                event_with(&update),
                Instant::now() + Duration::from_millis(1_500),
            )
            .await
        })
    };
    until("the message went out", 10, || {
        t.stand_in.sent_messages().len() == 1
    })
    .await;
    // The instance dies between the send and its record (timeout, out of
    // memory, killed): nothing after this point runs.
    dying.abort();
    let died_at = Instant::now();
    let blocked = deliver_now(&t.stand_in, &t.b, &update).await;
    assert_eq!(blocked.as_str(), "in_progress", "the lease is still live");
    // After the lease, the next delivery answers it. The reply that went
    // out unrecorded goes out again: the one window exactly-once cannot
    // close (README, "Exactly once").
    let mut after_lease = blocked;
    while after_lease.as_str() == "in_progress" {
        assert!(
            died_at.elapsed() < Duration::from_secs(10),
            "the lease never ended"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        after_lease = deliver_now(&t.stand_in, &t.b, &update).await;
    }
    assert_eq!(after_lease.as_str(), "answered");
    assert!(
        died_at.elapsed() >= LEASE_MARGIN + Duration::from_millis(1_000),
        "blocked at least until the lease's end"
    );
    assert_eq!(t.stand_in.sent_messages().len(), 2);
    assert_eq!(
        deliver_now(&t.stand_in, &t.a, &update).await.as_str(),
        "duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chats_state_outlives_the_instance_that_wrote_it() {
    let t = instances().await;
    let texts = ["/start", "one", "two", "/count"];
    for (i, text) in texts.iter().enumerate() {
        let instance = if i % 2 == 0 { &t.a } else { &t.b };
        let verdict = deliver_now(&t.stand_in, instance, &message(910_000 + i as i64, text)).await;
        assert_eq!(verdict.as_str(), "answered");
    }
    let replies = testkit::texts(&t.stand_in.sent_messages());
    assert_eq!(replies[3], "This chat has sent 3 messages since /start.");
    let help = deliver_now(&t.stand_in, &t.a, &message(910_100, "/help")).await;
    assert_eq!(help.as_str(), "answered");
    let replies = testkit::texts(&t.stand_in.sent_messages());
    assert!(replies[4].contains("/count - "), "{}", replies[4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_of_one_chat_answered_in_parallel_lose_no_write() {
    let t = instances().await;
    let count = 12;
    let mut pending: Vec<Value> = (0..count).map(|i| message(920_000 + i, "hi")).collect();
    for update in &pending {
        t.stand_in.observe_update(update);
    }
    // As Telegram would, deliver again whatever got an error status.
    for _round in 0..10 {
        let runs: Vec<_> = pending
            .iter()
            .enumerate()
            .map(|(i, update)| {
                let instance = if i % 2 == 0 { t.a.clone() } else { t.b.clone() };
                let update = update.clone();
                tokio::spawn(async move {
                    let verdict = handle_event(
                        &instance,
                        event_with(&update),
                        Instant::now() + Duration::from_secs(10),
                    )
                    .await;
                    (update, verdict)
                })
            })
            .collect();
        let mut again = Vec::new();
        for run in runs {
            let (update, verdict) = run.await.unwrap();
            if verdict.status() != 200 {
                again.push(update);
            }
        }
        pending = again;
        if pending.is_empty() {
            break;
        }
    }
    assert!(pending.is_empty(), "some updates never got through");
    assert_eq!(
        t.stand_in.sent_messages().len(),
        count as usize,
        "one reply each"
    );
    let counted = deliver_now(&t.stand_in, &t.a, &message(920_100, "/count")).await;
    assert_eq!(counted.as_str(), "answered");
    let replies = testkit::texts(&t.stand_in.sent_messages());
    assert_eq!(
        replies.last().unwrap(),
        &format!("This chat has sent {} messages since /start.", count + 1)
    );
}

/// A DynamoDB endpoint that answers every request with `status` and
/// `body`, or never answers when `body` is `None`.
async fn failing_dynamodb(status: u16, body: Option<&'static str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Bounded: the SDK retries a few times at most.
        let mut held = Vec::new();
        for _ in 0..20 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = vec![0u8; 64 * 1024];
            let _ = stream.read(&mut buffer).await;
            match body {
                Some(body) => {
                    let response = format!(
                        "HTTP/1.1 {status} Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                }
                None => held.push(stream),
            }
        }
    });
    format!("http://{addr}")
}

async fn with_store_at(
    endpoint: &str,
) -> (StandIn, Webhook, Logs, tracing::subscriber::DefaultGuard) {
    let (logs, guard) = Logs::capture("info");
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let memory = Memory::new(
        Arc::new(DynamoDbStore::new(&sdk_config(endpoint), TABLE)),
        Leases::Shared,
    );
    let webhook = webhook(&stand_in).with_memory(memory);
    (stand_in, webhook, logs, guard)
}

#[tokio::test]
async fn a_failing_store_is_a_retryable_failure_before_anything_is_sent() {
    const THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
    const UNAVAILABLE: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}"#;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let cases = [
        ("throttled", failing_dynamodb(400, Some(THROTTLED)).await),
        (
            "unavailable",
            failing_dynamodb(500, Some(UNAVAILABLE)).await,
        ),
        ("slow past the deadline", failing_dynamodb(200, None).await),
        ("unreachable", closed),
    ];
    for (what, endpoint) in cases {
        let (stand_in, webhook, logs, _guard) = with_store_at(&endpoint).await;
        let update = message(930_001, "hello");
        let started = Instant::now();
        let verdict = deliver(&stand_in, &webhook, &update, Duration::from_secs(3)).await;
        assert_eq!(verdict.status(), 502, "{what}: {verdict:?}");
        assert!(
            started.elapsed() < Duration::from_millis(3_500),
            "{what}: answered by the deadline"
        );
        assert!(stand_in.calls().is_empty(), "{what}: nothing sent");
        let lines = logs.outcome_lines();
        let line = lines.last().unwrap();
        assert_eq!(line["outcome"], "retryable_failure", "{what}: {line}");
        assert_eq!(line["level"], "WARN", "{what}: {line}");
    }
}

#[tokio::test]
async fn a_store_that_refuses_access_is_a_configuration_failure() {
    const DENIED: &str = r#"{"__type":"com.amazon.coral.service#AccessDeniedException","message":"User: arn:aws:sts::123456789012:assumed-role/bot/fn is not authorized to perform: dynamodb:GetItem"}"#;
    let endpoint = failing_dynamodb(400, Some(DENIED)).await;
    let (stand_in, webhook, logs, _guard) = with_store_at(&endpoint).await;
    let verdict = deliver_now(&stand_in, &webhook, &message(930_002, "hello")).await;
    assert_eq!(verdict.status(), 500);
    assert!(stand_in.calls().is_empty());
    let text = logs.text();
    assert!(text.contains("AccessDeniedException"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_events_are_answered_the_same_with_the_store() {
    let t = instances().await;
    for name in ["text", "start", "long-text", "group-command"] {
        let event = crate::helpers::event(name);
        let update = update_in(&event).unwrap();
        t.stand_in.observe_update(&update);
        let first = handle_event(
            &t.a,
            event.clone(),
            Instant::now() + Duration::from_secs(10),
        )
        .await;
        assert_eq!(first.as_str(), "answered", "{name}");
        let again = handle_event(&t.b, event, Instant::now() + Duration::from_secs(10)).await;
        assert_eq!(again.as_str(), "duplicate", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answered_ids_kept_per_chat_stay_bounded_with_or_without_replies() {
    use telegram_lambda_bot::runtime::memory::KEEP_DONE;
    use telegram_lambda_bot::runtime::store::Store;
    let t = instances().await;
    // Photos in a group get no reply but change the chat's state; texts get
    // one. Either way the record keeps only the last few ids.
    for i in 0..(KEEP_DONE as i64 + 8) {
        let update = json!({"update_id": 940_000 + i, "message": {
            "message_id": 940_000 + i, "date": 1_795_687_200,
            "from": {"id": 1, "is_bot": false, "first_name": "Ali"},
            "chat": {"id": -100_777, "type": "supergroup", "title": "G"},
            "photo": [{"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1}]}});
        assert_eq!(
            deliver_now(&t.stand_in, &t.a, &update).await.as_str(),
            "ignored"
        );
    }
    let store = DynamoDbStore::new(&t._moto.sdk_config(), TABLE);
    let record = store.load("chat#-100777").await.unwrap().unwrap();
    assert!(record.done.len() <= KEEP_DONE, "{}", record.done.len());
    assert!(record.done.contains_key(&(940_000 + KEEP_DONE as i64 + 7)));
    assert!(!record.done.contains_key(&940_000));
}
