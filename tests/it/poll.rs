//! The long-polling loop against the stand-in: offsets, order, retries,
//! conflicts, and stopping without losing or repeating an update.

use crate::helpers::{api_for, config};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::bot::Bot;
use telegram_lambda_bot::poll::{self, PollError, PollOptions, Summary};
use telegram_lambda_bot::runtime::client::BotApi;
use telegram_lambda_bot::runtime::memory::{Leases, Memory};
use telegram_lambda_bot::runtime::retry::{Backoff, Stop};
use telegram_lambda_bot::runtime::store::file::FileStore;
use telegram_stand_in::{Fault, Options, StandIn};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const USER: i64 = 4242;

fn options() -> PollOptions {
    PollOptions {
        timeout_secs: 1,
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        ..PollOptions::default()
    }
}

/// Telegram's clock at a tenth of real time: its rules for calls repeated
/// within 3 s (a confirm on stopping waits them out) take 0.3 s here.
fn telegram_time() -> Options {
    Options {
        time_scale: 0.1,
        ..Options::default()
    }
}

struct Poller {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<Summary, PollError>>,
}

fn start(stand_in: &StandIn, options: PollOptions) -> Poller {
    let api = api_for(stand_in);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        poll::run(
            &api,
            &Bot::new(Some("EchoLambdaBot".into())),
            &options,
            Stop::on(stop_rx),
        )
        .await
    });
    Poller { stop, task }
}

impl Poller {
    async fn stop(self) -> Result<Summary, PollError> {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the poller stops within 10 s")
            .unwrap()
    }
}

async fn until(what: &str, condition: impl FnMut() -> bool) {
    testkit::until(what, 10, condition).await;
}

fn texts(stand_in: &StandIn) -> Vec<String> {
    testkit::texts(&stand_in.sent_messages())
}

fn offsets(stand_in: &StandIn) -> Vec<Value> {
    stand_in
        .calls_to("getUpdates")
        .iter()
        .map(|p| p.get("offset").cloned().unwrap_or(Value::Null))
        .collect()
}

#[tokio::test]
async fn a_batch_is_answered_in_order_and_offsets_advance_exactly() {
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    let ids: Vec<i64> = ["one", "two", "three"]
        .iter()
        .map(|t| stand_in.enqueue_text(USER, t))
        .collect();
    let poller = start(&stand_in, options());
    until("three replies", || stand_in.sent_messages().len() == 3).await;
    let summary = poller.stop().await.unwrap();
    assert_eq!(
        texts(&stand_in),
        ["You said: one", "You said: two", "You said: three"]
    );
    assert_eq!(summary.handled, 3);
    assert_eq!(summary.confirmed_offset.map(|o| o.0), Some(ids[2] + 1));
    // deleteWebhook first, then polls: no offset, then offsets that never
    // pass an update not yet answered, ending exactly past the last.
    assert_eq!(stand_in.calls()[0].method, "deleteWebhook");
    let seen = offsets(&stand_in);
    assert_eq!(seen[0], Value::Null);
    let later: Vec<i64> = seen[1..].iter().map(|o| o.as_i64().unwrap()).collect();
    assert!(
        later.windows(2).all(|w| w[0] <= w[1])
            && later.iter().all(|o| (ids[0]..=ids[2] + 1).contains(o)),
        "{seen:?}"
    );
    assert_eq!(later.last(), Some(&(ids[2] + 1)), "{seen:?}");
    let last = stand_in.calls_to("getUpdates").pop().unwrap();
    assert_eq!(
        last["timeout"], 0,
        "the stop confirms with a poll that waits for nothing"
    );
    assert!(stand_in.pending_updates().is_empty());
    let first = &stand_in.calls_to("getUpdates")[0];
    assert_eq!(
        first["allowed_updates"],
        json!(["message", "callback_query"])
    );
    assert_eq!(first["timeout"], 1);
}

#[tokio::test]
async fn a_webhook_is_deleted_before_polling() {
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    let api = api_for(&stand_in);
    api.set_webhook(&telegram_lambda_bot::telegram::SetWebhook {
        url: "https://example.invalid/webhook".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    stand_in.enqueue_text(USER, "hello");
    let poller = start(&stand_in, options());
    until("a reply", || stand_in.sent_messages().len() == 1).await;
    poller.stop().await.unwrap();
    assert_eq!(api.get_webhook_info().await.unwrap().url, "");
}

#[tokio::test]
async fn another_poller_is_reported_clearly_and_ends_the_run() {
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    stand_in.inject("getUpdates", Fault::other_poller());
    let poller = start(&stand_in, options());
    let result = tokio::time::timeout(Duration::from_secs(10), poller.task)
        .await
        .unwrap()
        .unwrap();
    let error = result.unwrap_err();
    assert!(matches!(error, PollError::OtherPoller(_)), "{error:?}");
    assert!(error.to_string().contains("another instance is polling"));
}

#[tokio::test]
async fn failures_that_a_retry_fixes_are_retried_and_the_update_answered_once() {
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    stand_in.inject("getUpdates", Fault::internal_error());
    stand_in.inject("getUpdates", Fault::bad_gateway());
    stand_in.inject("getUpdates", Fault::Drop);
    stand_in.inject("sendMessage", Fault::internal_error());
    stand_in.inject("sendMessage", Fault::too_many_requests(1));
    stand_in.inject("sendMessage", Fault::Drop);
    stand_in.inject("sendMessage", Fault::bad_gateway());
    let id = stand_in.enqueue_text(USER, "persist");
    let poller = start(&stand_in, options());
    // Settled: a repeat could only come from a retry still under way.
    until("the update confirmed", || confirmed_past(&stand_in, id)).await;
    poller.stop().await.unwrap();
    assert_eq!(texts(&stand_in), ["You said: persist"]);
    assert_eq!(stand_in.calls_to("sendMessage").len(), 5);
}

#[tokio::test]
async fn a_get_updates_timeout_is_retried() {
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    stand_in.enqueue_text(USER, "after a timeout");
    // Slower than the client's limit (long-poll timeout 0 + 1 s).
    stand_in.inject("getUpdates", Fault::slow(2_500));
    let base_url = stand_in.base_url();
    let api = BotApi::new(&config(&[
        ("TELEGRAM_BOT_TOKEN", stand_in.token()),
        ("TELEGRAM_API_BASE_URL", &base_url),
        ("TELEGRAM_HTTP_TIMEOUT_SECS", "1"),
    ]))
    .unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let options = PollOptions {
            timeout_secs: 0,
            ..options()
        };
        poll::run(&api, &Bot::default(), &options, Stop::on(stop_rx)).await
    });
    until("the reply", || stand_in.sent_messages().len() == 1).await;
    let _ = stop.send(true);
    task.await.unwrap().unwrap();
    assert_eq!(texts(&stand_in), ["You said: after a timeout"]);
}

#[tokio::test]
async fn a_permanent_refusal_is_logged_and_skipped() {
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    stand_in.inject("sendMessage", Fault::blocked_by_user());
    stand_in.enqueue_text(USER, "blocked");
    let next = stand_in.enqueue_text(USER, "next");
    let poller = start(&stand_in, options());
    until("the next reply", || stand_in.sent_messages().len() == 1).await;
    let summary = poller.stop().await.unwrap();
    assert_eq!(texts(&stand_in), ["You said: next"]);
    assert_eq!(stand_in.calls_to("sendMessage").len(), 2);
    assert_eq!(summary.confirmed_offset.map(|o| o.0), Some(next + 1));
}

#[tokio::test]
async fn an_update_id_no_offset_can_follow_stops_polling_instead_of_panicking() {
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    let first = stand_in.enqueue_text(USER, "first");
    stand_in.enqueue_update(json!({"update_id": i64::MAX, "message": {
        "message_id": 1, "date": 1, "text": "last",
        "chat": {"id": USER, "type": "private"}}}));
    let (_stop, stop_rx) = watch::channel(false);
    let api = api_for(&stand_in);
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        poll::run(&api, &Bot::default(), &options(), Stop::on(stop_rx)),
    )
    .await
    .unwrap();
    assert!(
        matches!(result, Err(PollError::LastUpdateId(i64::MAX))),
        "{result:?}"
    );
    assert_eq!(texts(&stand_in), ["You said: first", "You said: last"]);
    // What came before is confirmed (an offset of i64::MAX confirms every
    // update below it); the last one cannot be.
    let last = offsets(&stand_in).last().cloned();
    assert!(
        last == Some(json!(first + 1)) || last == Some(json!(i64::MAX)),
        "{last:?}"
    );
}

#[tokio::test]
async fn a_wrong_token_stops_polling_with_a_configuration_error() {
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    let other = StandIn::start(Options {
        token: "5555:AAanother-token_entirely-000000000000".into(),
        ..telegram_time()
    })
    .await
    .unwrap();
    // A client holding `other`'s token, talking to `stand_in`.
    let base_url = stand_in.base_url();
    let api = BotApi::new(&config(&[
        ("TELEGRAM_BOT_TOKEN", other.token()),
        ("TELEGRAM_API_BASE_URL", &base_url),
    ]))
    .unwrap();
    let (_stop, stop_rx) = watch::channel(false);
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        poll::run(&api, &Bot::default(), &options(), Stop::on(stop_rx)),
    )
    .await
    .unwrap();
    let error = result.unwrap_err();
    assert!(matches!(error, PollError::Configuration(_)), "{error:?}");
    assert!(!format!("{error:?} {error}").contains("AAanother-token"));
}

#[tokio::test]
async fn a_stop_mid_batch_then_a_restart_answers_every_update_exactly_once() {
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    let words = ["a", "b", "c", "d", "e"];
    let ids: Vec<i64> = words
        .iter()
        .map(|word| stand_in.enqueue_text(USER, word))
        .collect();
    // The second reply is slow, so the stop lands while it is in flight.
    stand_in.inject("sendMessage", Fault::slow(0));
    stand_in.inject("sendMessage", Fault::slow(400));
    let first = start(&stand_in, options());
    until("the second reply in flight", || {
        stand_in.calls_to("sendMessage").len() == 2
    })
    .await;
    let summary = first.stop().await.unwrap();
    assert_eq!(summary.handled, 2, "the update in hand is finished");
    assert_eq!(texts(&stand_in), ["You said: a", "You said: b"]);
    assert_eq!(
        stand_in.pending_updates().len(),
        3,
        "handled updates confirmed"
    );

    let second = start(&stand_in, options());
    until("every update confirmed", || {
        confirmed_past(&stand_in, ids[4])
    })
    .await;
    second.stop().await.unwrap();
    let expected: Vec<String> = words.iter().map(|w| format!("You said: {w}")).collect();
    assert_eq!(texts(&stand_in), expected);
    assert!(stand_in.pending_updates().is_empty());
}

#[tokio::test]
async fn a_stop_during_a_long_poll_exits_promptly() {
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    let poller = start(
        &stand_in,
        PollOptions {
            timeout_secs: 50,
            ..options()
        },
    );
    until("the long poll", || {
        stand_in.calls_to("getUpdates").len() == 1
    })
    .await;
    let started = std::time::Instant::now();
    let summary = poller.stop().await.unwrap();
    assert_eq!(summary, Summary::default());
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A text message from `chat`, dated `age` ago.
fn message_from(stand_in: &StandIn, chat: i64, update_id: i64, text: &str, age: Duration) -> i64 {
    let date = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - age.as_secs() as i64;
    stand_in.enqueue_update(json!({"update_id": update_id, "message": {
        "message_id": update_id, "date": date, "text": text,
        "from": {"id": chat, "is_bot": false, "first_name": "U"},
        "chat": {"id": chat, "type": "private", "first_name": "U"}}}));
    update_id
}

fn file_memory() -> (Memory, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "poll-store-{}-{}.redb",
        std::process::id(),
        fastrand_id()
    ));
    let store = FileStore::open(&path).unwrap();
    (Memory::new(Arc::new(store), Leases::Exclusive), path)
}

fn fastrand_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

/// How many times a sendMessage to `chat` was tried.
fn tries_for(stand_in: &StandIn, chat: i64) -> usize {
    stand_in
        .calls_to("sendMessage")
        .iter()
        .filter(|p| p["chat_id"].as_i64() == Some(chat))
        .count()
}

/// Whether a getUpdates call confirmed the update `id` (an offset past it):
/// the poller is done with it.
fn confirmed_past(stand_in: &StandIn, id: i64) -> bool {
    offsets(stand_in)
        .iter()
        .any(|offset| offset.as_i64().is_some_and(|o| o > id))
}

fn replies_to(stand_in: &StandIn, chat: i64) -> Vec<String> {
    testkit::texts(&stand_in.replies_to(chat))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_chat_holds_up_no_other_chat_and_is_answered_once_it_recovers() {
    const A: i64 = 7001;
    const B: i64 = 7002;
    const C: i64 = 7003;
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    stand_in.fail_chat("sendMessage", A, Fault::internal_error());
    let (memory, path) = file_memory();
    let poller = start(
        &stand_in,
        PollOptions {
            memory,
            ..options()
        },
    );
    let mut next_id = 500_000;
    let mut id = || {
        next_id += 1;
        next_id
    };
    message_from(&stand_in, A, id(), "from A", Duration::ZERO);
    // More than a getUpdates batch (100) from B and C while A keeps failing,
    // in waves: each wave is answered within a second.
    for wave in 0..6 {
        for i in 0..20 {
            let chat = if i % 2 == 0 { B } else { C };
            message_from(
                &stand_in,
                chat,
                id(),
                &format!("wave {wave} #{i}"),
                Duration::ZERO,
            );
        }
        let expected = (wave + 1) * 10;
        testkit::until("the wave answered", 1, || {
            replies_to(&stand_in, B).len() == expected && replies_to(&stand_in, C).len() == expected
        })
        .await;
    }
    assert!(replies_to(&stand_in, A).is_empty());
    assert!(
        stand_in.calls_to("sendMessage").len() > 120,
        "A was retried meanwhile"
    );
    stand_in.heal_chat("sendMessage", A);
    until("A answered", || replies_to(&stand_in, A).len() == 1).await;
    until("every update confirmed", || {
        stand_in.pending_updates().is_empty()
    })
    .await;
    poller.stop().await.unwrap();
    assert_eq!(replies_to(&stand_in, A), ["You said: from A"]);
    assert_eq!(replies_to(&stand_in, B).len(), 60);
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_at_most_a_batch_waits_behind_a_failing_update() {
    const A: i64 = 7101;
    const B: i64 = 7102;
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    stand_in.fail_chat("sendMessage", A, Fault::internal_error());
    message_from(&stand_in, A, 600_001, "from A", Duration::ZERO);
    for i in 2..=10 {
        message_from(&stand_in, B, 600_000 + i, &format!("B {i}"), Duration::ZERO);
    }
    let poller = start(
        &stand_in,
        PollOptions {
            limit: 5,
            ..options()
        },
    );
    // A and the next four fill the batch: those four are answered, the rest
    // wait until A settles, since nothing past A can be confirmed.
    until("four of B", || replies_to(&stand_in, B).len() == 4).await;
    // The poller's own clock: while A is tried five times more, the rest of
    // B stays unfetched.
    let tried = tries_for(&stand_in, A);
    until("five more tries for A", || {
        tries_for(&stand_in, A) >= tried + 5
    })
    .await;
    assert_eq!(replies_to(&stand_in, B).len(), 4);
    stand_in.heal_chat("sendMessage", A);
    until("all of B", || replies_to(&stand_in, B).len() == 9).await;
    poller.stop().await.unwrap();
    assert_eq!(replies_to(&stand_in, A), ["You said: from A"]);
    let b = replies_to(&stand_in, B);
    let expected: Vec<String> = (2..=10).map(|i| format!("You said: B {i}")).collect();
    assert_eq!(b, expected, "one chat's updates keep their order");
}

// One thread, so that the poller's tasks log where the test captures.
#[tokio::test]
async fn an_update_past_its_lifetime_is_dropped_and_confirmed() {
    const A: i64 = 7201;
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    stand_in.fail_chat("sendMessage", A, Fault::internal_error());
    // A day old but for two seconds: Telegram's server keeps it that long.
    let old = message_from(
        &stand_in,
        A,
        700_001,
        "almost a day ago",
        Duration::from_secs(86_400 - 2),
    );
    let (logs, _guard) = testkit::Logs::capture("info");
    let poller = start(&stand_in, options());
    until("dropped and confirmed", || {
        stand_in.pending_updates().is_empty()
    })
    .await;
    poller.stop().await.unwrap();
    assert!(replies_to(&stand_in, A).is_empty());
    assert!(
        stand_in.calls_to("sendMessage").len() > 1,
        "retried until then"
    );
    let dropped = logs.lines().into_iter().any(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("dropped"))
            && l["update_id"] == old
    });
    assert!(dropped, "{}", logs.text());
}

#[tokio::test]
async fn polling_refuses_the_webhooks_dynamodb_table_before_any_call() {
    use telegram_lambda_bot::runtime::store::dynamodb::DynamoDbStore;
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    stand_in.enqueue_text(USER, "hello");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let table = DynamoDbStore::new(&testkit::sdk_config(&closed), "bot-memory");
    let options = PollOptions {
        memory: Memory::new(Arc::new(table), Leases::Shared),
        ..options()
    };
    let result = start(&stand_in, options).task.await.unwrap();
    let error = result.unwrap_err();
    assert!(matches!(error, PollError::SharedStore), "{error:?}");
    assert!(error.to_string().contains("BOT_STORE_FILE"), "{error}");
    assert!(
        stand_in.calls().is_empty(),
        "not even deleteWebhook: the webhook stays as it was"
    );
}

#[tokio::test]
async fn update_ids_started_afresh_below_the_offset_are_answered_without_spinning() {
    let stand_in = StandIn::start(telegram_time()).await.unwrap();
    let first = stand_in.enqueue_text(USER, "before");
    let poller = start(&stand_in, options());
    until("the offset passed the first update", || {
        offsets(&stand_in).last() == Some(&json!(first + 1))
    })
    .await;
    // After a quiet week Telegram may number updates afresh, lower than
    // before; an offset past its queue is then answered from the head.
    stand_in.restart_update_ids(5_000);
    let calls_before = stand_in.calls_to("getUpdates").len();
    assert_eq!(stand_in.enqueue_text(USER, "after"), 5_000);
    until("the reply after the restart", || {
        stand_in.sent_messages().len() == 2
    })
    .await;
    let calls = stand_in.calls_to("getUpdates").len() - calls_before;
    assert!(calls <= 4, "{calls} getUpdates calls for one update");
    let summary = poller.stop().await.unwrap();
    assert_eq!(texts(&stand_in), ["You said: before", "You said: after"]);
    assert_eq!(summary.confirmed_offset.map(|o| o.0), Some(5_001));
    assert!(stand_in.pending_updates().is_empty());
}
