//! Buttons: presses delivered by the stand-in's webhook to several
//! function instances sharing one DynamoDB table, each press answered once
//! and none lost.

use crate::helpers::{serve_functions, SECRET};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::runtime::memory::{Leases, Memory};
use telegram_lambda_bot::runtime::store::dynamodb::DynamoDbStore;
use telegram_lambda_bot::runtime::store::{ChatRecord, Commit, Done, Lease, Store, StoreFuture};
use telegram_lambda_bot::telegram::SetWebhook;
use telegram_lambda_bot::webhook::Webhook;
use telegram_stand_in::{Options, StandIn};
use testkit::{texts, until, Moto};

const TABLE: &str = "buttons";
const GROUP: i64 = -100_555_000;

fn webhook(stand_in: &StandIn, moto: &Moto) -> Arc<Webhook> {
    let memory = Memory::new(
        Arc::new(DynamoDbStore::new(&moto.sdk_config(), TABLE)),
        Leases::Shared,
    );
    Arc::new(crate::helpers::webhook_with(stand_in, memory))
}

fn group_command(update_id: i64, text: &str) -> serde_json::Value {
    json!({"update_id": update_id, "message": {
        "message_id": update_id,
        "date": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        "from": {"id": 2_000, "is_bot": false, "first_name": "Ali"},
        "chat": {"id": GROUP, "type": "supergroup", "title": "Counting"},
        "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": text.len()}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_presses_at_once_on_four_instances_count_exactly_twenty() {
    let moto = Moto::start().await;
    moto.create_table(TABLE).await;
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let instances: Vec<Arc<Webhook>> = (0..4).map(|_| webhook(&stand_in, &moto)).collect();
    let url = serve_functions(instances).await;
    crate::helpers::api_for(&stand_in)
        .set_webhook(&SetWebhook {
            url,
            secret_token: Some(SECRET.to_owned()),
            allowed_updates: Some(vec!["message".into(), "callback_query".into()]),
            max_connections: Some(40),
            ..SetWebhook::default()
        })
        .await
        .unwrap();
    stand_in.enqueue_update(group_command(3_000, "/counter"));
    until("the counter is shown", 10, || {
        texts(&stand_in.sent_messages()) == ["Count: 0"]
    })
    .await;
    // Twenty people press +1 at the same moment: Telegram queues each
    // user's presses apart and delivers them side by side.
    let presses: Vec<i64> = (1..=20)
        .map(|user| {
            stand_in
                .press_shown_button(10_000 + user, "Presser", GROUP, "+1")
                .unwrap()
                .0
        })
        .collect();
    for press in &presses {
        assert!(stand_in.wait_settled(*press, Duration::from_secs(30)).await);
    }
    // Each press answered once. (A press that lost too many races in a row
    // gets a 5xx and comes again; its second answer is refused by Telegram
    // as already given, and counts as done.)
    let answers = stand_in.callback_answers();
    let queries: std::collections::BTreeSet<&str> = answers
        .iter()
        .map(|a| a.callback_query_id.as_str())
        .collect();
    assert_eq!(queries.len(), 20, "every press answered: {answers:?}");
    for id in queries {
        let accepted = answers
            .iter()
            .filter(|a| a.callback_query_id == id && a.accepted)
            .count();
        assert_eq!(accepted, 1, "{id}: {answers:?}");
    }
    stand_in.enqueue_update(group_command(3_001, "/counter"));
    until("the count shown again", 10, || {
        stand_in.sent_messages().len() == 2
    })
    .await;
    assert_eq!(texts(&stand_in.sent_messages())[1], "Count: 20");
}

/// One function instance with a file store, a private chat showing the
/// counter, and a way to press its buttons as the person would.
/// The file store, whose reads can be made to hang, as a store that is
/// throttled or unreachable does.
#[derive(Debug)]
struct Stuckable {
    inner: Arc<dyn Store>,
    stuck: Arc<AtomicBool>,
}

impl Store for Stuckable {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<ChatRecord>> {
        if self.stuck.load(Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        self.inner.load(key)
    }
    fn commit<'a>(&'a self, key: &'a str, commit: &'a Commit) -> StoreFuture<'a, ()> {
        self.inner.commit(key, commit)
    }
    fn enqueued<'a>(&'a self, key: &'a str, update: i64) -> StoreFuture<'a, ()> {
        self.inner.enqueued(key, update)
    }
    fn take_over<'a>(
        &'a self,
        key: &'a str,
        update: i64,
        seen_until: i64,
        lease: Lease,
    ) -> StoreFuture<'a, ()> {
        self.inner.take_over(key, update, seen_until, lease)
    }
    fn progress<'a>(
        &'a self,
        key: &'a str,
        update: i64,
        sent: u32,
        lease: Lease,
    ) -> StoreFuture<'a, ()> {
        self.inner.progress(key, update, sent, lease)
    }
    fn finish<'a>(&'a self, key: &'a str, update: i64, done: Done) -> StoreFuture<'a, ()> {
        self.inner.finish(key, update, done)
    }
    fn set_aside<'a>(&'a self, key: &'a str, at: i64) -> StoreFuture<'a, String> {
        self.inner.set_aside(key, at)
    }
    fn load_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>> {
        self.inner.load_note(key)
    }
    fn save_note<'a>(
        &'a self,
        key: &'a str,
        note: &'a str,
        expires_at: Option<i64>,
    ) -> StoreFuture<'a, ()> {
        self.inner.save_note(key, note, expires_at)
    }
    fn delete_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.inner.delete_note(key)
    }
}

struct Counter {
    stand_in: StandIn,
    stuck: Arc<AtomicBool>,
    webhook: Webhook,
    /// Another instance on the same store, as Lambda runs them.
    other: Webhook,
    store: std::path::PathBuf,
    logs: testkit::Logs,
    _guard: tracing::subscriber::DefaultGuard,
}

const PERSON: i64 = 77_001;

impl Drop for Counter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.store);
    }
}

impl Counter {
    async fn start() -> Counter {
        use telegram_lambda_bot::runtime::store::file::FileStore;
        let (logs, guard) = testkit::Logs::capture("info");
        let stand_in = StandIn::start(Options::default()).await.unwrap();
        let store = std::env::temp_dir().join(format!(
            "buttons-{}-{}.redb",
            std::process::id(),
            stand_in
                .base_url()
                .rsplit(':')
                .next()
                .unwrap_or("0")
                .trim_end_matches('/')
        ));
        let shared: Arc<dyn Store> = Arc::new(FileStore::open(&store).unwrap());
        let stuck = Arc::new(AtomicBool::new(false));
        let stuckable = Stuckable {
            inner: shared.clone(),
            stuck: stuck.clone(),
        };
        let memory = Memory::new(Arc::new(stuckable), Leases::Shared);
        let webhook = crate::helpers::webhook_with(&stand_in, memory);
        let other = crate::helpers::webhook_with(&stand_in, Memory::new(shared, Leases::Shared));
        let counter = Counter {
            stand_in,
            stuck,
            webhook,
            other,
            store,
            logs,
            _guard: guard,
        };
        let shown = counter
            .deliver(json!({"update_id": 1, "message": {
                "message_id": 1, "date": 1_795_687_200,
                "from": {"id": PERSON, "is_bot": false, "first_name": "Ali"},
                "chat": {"id": PERSON, "type": "private", "first_name": "Ali"},
                "text": "/counter",
                "entities": [{"type": "bot_command", "offset": 0, "length": 8}]}}))
            .await;
        assert_eq!(shown, (200, "answered".to_owned()));
        counter
    }

    async fn deliver(&self, update: serde_json::Value) -> (u16, String) {
        self.deliver_to(&self.webhook, update).await
    }

    async fn deliver_to(&self, webhook: &Webhook, update: serde_json::Value) -> (u16, String) {
        self.stand_in.observe_update(&update);
        let verdict = telegram_lambda_bot::webhook::handle_event(
            webhook,
            crate::helpers::event_with(&update),
            tokio::time::Instant::now() + Duration::from_secs(10),
        )
        .await;
        (verdict.status(), verdict.as_str().to_owned())
    }

    /// The press Telegram would deliver for the counter's `label` button.
    fn press(&self, label: &str) -> serde_json::Value {
        let (update_id, _) = self
            .stand_in
            .press_shown_button(PERSON, "Ali", PERSON, label)
            .unwrap();
        self.stand_in
            .pending_updates()
            .into_iter()
            .find(|u| u["update_id"] == update_id)
            .unwrap()
    }

    /// The text of the last edit the bot asked for.
    fn shown(&self) -> String {
        let edits = self.stand_in.calls_to("editMessageText");
        edits
            .iter()
            .rev()
            .find_map(|c| c["text"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn an_edit_to_what_the_message_already_says_counts_as_done() {
    let t = Counter::start().await;
    t.stand_in.inject(
        "editMessageText",
        telegram_stand_in::Fault::Error {
            status: 400,
            description: "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message".into(),
            retry_after: None,
            migrate_to_chat_id: None,
        },
    );
    let press = t.press("+1");
    assert_eq!(t.deliver(press).await, (200, "answered".to_owned()));
}

#[tokio::test]
async fn an_edit_of_a_deleted_message_is_a_permanent_failure_and_the_count_stays() {
    let t = Counter::start().await;
    t.stand_in.inject(
        "editMessageText",
        telegram_stand_in::Fault::Error {
            status: 400,
            description: "Bad Request: message to edit not found".into(),
            retry_after: None,
            migrate_to_chat_id: None,
        },
    );
    let press = t.press("+1");
    assert_eq!(
        t.deliver(press).await,
        (200, "permanent_failure".to_owned())
    );
    let press = t.press("+1");
    assert_eq!(t.deliver(press).await, (200, "answered".to_owned()));
    assert_eq!(t.shown(), "Count: 2");
}

#[tokio::test]
async fn a_failed_edit_is_delivered_again_and_the_press_counts_once() {
    let t = Counter::start().await;
    t.stand_in.inject(
        "editMessageText",
        telegram_stand_in::Fault::internal_error(),
    );
    let press = t.press("+1");
    assert_eq!(t.deliver(press.clone()).await.0, 502);
    // Telegram delivers it again: the stored outbox is sent, the bot does
    // not run twice, the press is not answered twice.
    assert_eq!(t.deliver(press).await, (200, "answered".to_owned()));
    assert_eq!(t.shown(), "Count: 1");
    let answers = t.stand_in.callback_answers();
    assert_eq!(
        answers.len(),
        1,
        "answered once, by the first delivery: {answers:?}"
    );
    assert!(answers[0].accepted);
}

#[tokio::test]
async fn a_press_delivered_again_to_another_instance_is_not_answered_again() {
    let t = Counter::start().await;
    t.stand_in.inject(
        "editMessageText",
        telegram_stand_in::Fault::internal_error(),
    );
    let press = t.press("+1");
    assert_eq!(t.deliver(press.clone()).await.0, 502);
    assert_eq!(
        t.deliver_to(&t.other, press).await,
        (200, "answered".to_owned())
    );
    assert_eq!(t.shown(), "Count: 1");
    let calls = t.stand_in.calls_to("answerCallbackQuery");
    assert_eq!(calls.len(), 1, "one call in all: {calls:?}");
    assert!(t.stand_in.callback_answers()[0].accepted);
}

#[tokio::test]
async fn a_press_is_answered_even_when_the_store_is_stuck() {
    // The record cannot be read: the button still stops spinning, within
    // the budget for that read.
    let t = Counter::start().await;
    let press = t.press("+1");
    t.stuck.store(true, Ordering::SeqCst);
    let delivered = tokio::time::timeout(Duration::from_millis(500), t.deliver(press)).await;
    assert!(delivered.is_err(), "the update waits for the store");
    assert_eq!(t.stand_in.callback_answers().len(), 1);
}

#[tokio::test]
async fn a_failed_answer_still_carries_the_press_out_and_asks_for_no_redelivery() {
    let t = Counter::start().await;
    t.stand_in.inject(
        "answerCallbackQuery",
        telegram_stand_in::Fault::internal_error(),
    );
    let press = t.press("+1");
    assert_eq!(t.deliver(press).await, (200, "answered".to_owned()));
    assert_eq!(t.shown(), "Count: 1");
    assert!(t.logs.text().contains("could not answer the button press"));
}

#[tokio::test]
async fn a_press_whose_answer_is_refused_for_the_token_is_not_acknowledged() {
    let t = Counter::start().await;
    t.stand_in.inject(
        "answerCallbackQuery",
        telegram_stand_in::Fault::Error {
            status: 401,
            description: "Unauthorized".to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        },
    );
    let press = t.press("+1");
    // The edit would fail the same way: Telegram keeps the press, and the
    // errors alarm sees it, rather than a press acknowledged and lost.
    assert_eq!(
        t.deliver(press).await,
        (500, "configuration_failure".to_owned())
    );
    assert_eq!(t.shown(), "", "nothing edited");
}
