//! Exactly-once at DynamoDB's real limits, on moto's server behind the
//! proxy that checks what moto does not (an expression over 4 KB) and can
//! lose an answer: a table that refuses requests, records that cannot be
//! read or written, records that must stay small, the SDK's own resends,
//! answers that let Telegram drop an update, and retention turned off.

use crate::helpers::item_size;
use crate::helpers::{event_with, Logs};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use telegram_lambda_bot::bot::Bot;
use telegram_lambda_bot::runtime::memory::{now_millis, Decision, Leases, Memory, KEEP_DONE};
use telegram_lambda_bot::runtime::store::dynamodb::DynamoDbStore;

/// An item as the SDK reads and writes it.
type Item = HashMap<String, AttributeValue>;
use telegram_lambda_bot::runtime::store::Store;
use telegram_lambda_bot::telegram::Update;
use telegram_lambda_bot::webhook::{handle_event, Verdict, Webhook};
use telegram_stand_in::{Fault, Options, StandIn};
use testkit::Moto;
use tokio::time::Instant;

const TABLE: &str = "limits";
const CHAT: i64 = 5_550_077;
const GROUP: i64 = -100_600_700;

struct Setup {
    moto: Moto,
    stand_in: StandIn,
    logs: Logs,
    _guard: tracing::subscriber::DefaultGuard,
}

async fn setup() -> Setup {
    let moto = Moto::start().await;
    moto.create_table(TABLE).await;
    let (logs, _guard) = Logs::capture("info");
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    Setup {
        moto,
        stand_in,
        logs,
        _guard,
    }
}

impl Setup {
    fn memory(&self, table: &str) -> Memory {
        Memory::new(
            Arc::new(DynamoDbStore::new(&self.moto.sdk_config(), table)),
            Leases::Shared,
        )
    }

    fn webhook(&self) -> Webhook {
        crate::helpers::webhook_with(&self.stand_in, self.memory(TABLE))
    }

    fn client(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.moto.sdk_config())
    }

    async fn put(&self, item: Item) {
        self.client()
            .put_item()
            .table_name(TABLE)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }

    async fn item(&self, key: &str) -> Option<Item> {
        self.client()
            .get_item()
            .table_name(TABLE)
            .key("pk", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    async fn keys(&self) -> Vec<String> {
        let items = self
            .client()
            .scan()
            .table_name(TABLE)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        items
            .iter()
            .filter_map(|item| item.get("pk")?.as_s().ok().cloned())
            .collect()
    }

    async fn deliver(&self, webhook: &Webhook, update: &Value) -> Verdict {
        self.stand_in.observe_update(update);
        handle_event(
            webhook,
            event_with(update),
            Instant::now() + Duration::from_secs(10),
        )
        .await
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn message_in(chat: i64, update_id: i64, text: &str, date: i64) -> Value {
    let kind = if chat < 0 { "supergroup" } else { "private" };
    json!({"update_id": update_id, "message": {
        "message_id": update_id, "date": date,
        "from": {"id": 1_234, "is_bot": false, "first_name": "Ali"},
        "chat": {"id": chat, "type": kind, "title": "G", "first_name": "Ali"},
        "text": text}})
}

fn message(update_id: i64, text: &str) -> Value {
    message_in(CHAT, update_id, text, unix_now())
}

fn press(update_id: i64, data: &str) -> Value {
    json!({"update_id": update_id, "callback_query": {
        "id": format!("q{update_id}"), "chat_instance": "ci", "data": data,
        "from": {"id": 1_234, "is_bot": false, "first_name": "Ali"},
        "message": {"message_id": 1, "date": unix_now(),
            "chat": {"id": GROUP, "type": "supergroup", "title": "G"},
            "text": "Count: 0"}}})
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn chat_key(chat: i64) -> String {
    format!("chat#{chat}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_whose_key_is_not_the_codes_is_a_configuration_failure_never_a_200() {
    let t = setup().await;
    // A table made by hand with another key name.
    t.moto.create_table_keyed("wrong-key", "id").await;
    let webhook = crate::helpers::webhook_with(&t.stand_in, t.memory("wrong-key"));
    let verdict = t.deliver(&webhook, &message(1, "hello")).await;
    assert_eq!(
        (verdict.status(), verdict.as_str()),
        (500, "configuration_failure")
    );
    assert!(t.stand_in.calls().is_empty(), "nothing sent");
    let lines = t.logs.outcome_lines();
    let line = lines.last().unwrap();
    assert_eq!(line["level"], "ERROR", "{line}");
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("key element does not match the schema"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_does_not_parse_is_set_aside_and_the_next_delivery_answers() {
    let t = setup().await;
    let key = chat_key(CHAT);
    t.put(Item::from([
        ("pk".to_owned(), s(&key)),
        ("v".to_owned(), s("not a number")),
        ("s".to_owned(), s("{\"messages\":3}")),
    ]))
    .await;
    let webhook = t.webhook();
    let update = message(2, "hello");
    let first = t.deliver(&webhook, &update).await;
    assert_eq!(
        (first.status(), first.as_str()),
        (502, "retryable_failure"),
        "never acknowledged unanswered"
    );
    assert!(t.stand_in.sent_messages().is_empty());
    let aside: Vec<String> = t
        .keys()
        .await
        .into_iter()
        .filter(|k| k.starts_with("aside#chat#5550077#"))
        .collect();
    assert_eq!(aside.len(), 1, "kept for inspection: {aside:?}");
    let kept = t.item(&aside[0]).await.unwrap();
    assert_eq!(kept["v"], s("not a number"), "as it was");
    assert!(kept.contains_key("expires_at"), "and deleted in time");
    let errors: Vec<Value> = t
        .logs
        .lines()
        .into_iter()
        .filter(|l| l["level"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["aside_key"], aside[0].as_str());
    // Telegram's first retry comes at once: the chat carries on.
    let again = t.deliver(&webhook, &update).await;
    assert_eq!((again.status(), again.as_str()), (200, "answered"));
    assert_eq!(t.stand_in.sent_messages().len(), 1);
}

/// DynamoDB's answer to an update that would take the item past 400 KB.
pub const ITEM_TOO_LARGE: &str = r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"Item size to update has exceeded the maximum allowed size"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_at_the_item_size_limit_is_set_aside_and_the_chat_carries_on() {
    let t = setup().await;
    let key = chat_key(CHAT);
    let webhook = t.webhook();
    assert_eq!(
        t.deliver(&webhook, &message(30, "one")).await.as_str(),
        "answered"
    );
    // The chat's record is at DynamoDB's limit: the next outbox does not
    // fit (moto checks the size of a new item, not of a map growing
    // inside one, hence the proxy).
    t.moto.refuse_next("UpdateItem", 400, ITEM_TOO_LARGE);
    let update = message(31, "two");
    let first = t.deliver(&webhook, &update).await;
    assert_eq!((first.status(), first.as_str()), (502, "retryable_failure"));
    let line = t.logs.outcome_lines().pop().unwrap();
    assert!(
        line["error"].as_str().unwrap().contains("size limit"),
        "{line}"
    );
    assert_eq!(t.stand_in.sent_messages().len(), 1, "nothing more sent");
    assert!(
        t.keys()
            .await
            .iter()
            .any(|k| k.starts_with("aside#chat#5550077#")),
        "kept for inspection"
    );
    let again = t.deliver(&webhook, &update).await;
    assert_eq!((again.status(), again.as_str()), (200, "answered"));
    assert_eq!(t.stand_in.sent_messages().len(), 2);
    assert_eq!(t.item(&key).await.unwrap()["v"], n(1), "a fresh record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_stays_within_the_4_kb_expression_limit_however_many_outboxes_expired() {
    let t = setup().await;
    let key = chat_key(CHAT);
    // Outboxes of updates whose lifetime ended long ago, as many as a busy
    // chat left behind.
    let expired: HashMap<String, AttributeValue> = (0..600)
        .map(|i| {
            let outbox = AttributeValue::M(HashMap::from([
                ("a".to_owned(), s("[]")),
                ("n".to_owned(), n(0)),
                ("l".to_owned(), n(0)),
                ("e".to_owned(), n(1_000)),
            ]));
            ((700_000 + i).to_string(), outbox)
        })
        .collect();
    t.put(Item::from([
        ("pk".to_owned(), s(&key)),
        ("v".to_owned(), n(600)),
        ("p".to_owned(), AttributeValue::M(expired)),
        ("d".to_owned(), AttributeValue::M(HashMap::new())),
    ]))
    .await;
    let webhook = t.webhook();
    let verdict = t.deliver(&webhook, &message(4, "hello")).await;
    assert_eq!((verdict.status(), verdict.as_str()), (200, "answered"));
    assert_eq!(t.stand_in.sent_messages().len(), 1);
    let outboxes = t.item(&key).await.unwrap()["p"].as_m().unwrap().len();
    assert!(
        outboxes < 600,
        "each write drops some of the expired: {outboxes}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_applied_but_answered_with_an_error_is_recognised_as_this_runs_own() {
    let t = setup().await;
    let webhook = t.webhook();
    // The first write of the update (its outbox) reaches the table, its
    // answer does not: the SDK sends it again, and the resend fails its
    // condition against the outbox it wrote.
    t.moto.lose_next_answer("UpdateItem");
    let update = message(5, "hello");
    let verdict = t.deliver(&webhook, &update).await;
    assert_eq!(
        (verdict.status(), verdict.as_str()),
        (200, "answered"),
        "not held up by its own lease"
    );
    assert_eq!(t.stand_in.sent_messages().len(), 1);
    let again = t.deliver(&webhook, &update).await;
    assert_eq!(again.as_str(), "duplicate");
    assert_eq!(t.stand_in.sent_messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_lets_telegram_drop_the_update_finishes_its_outbox() {
    let t = setup().await;
    let webhook = t.webhook();
    // A message with a minute of its day left; Telegram asks to wait two.
    let date = unix_now() - 86_400 + 60;
    let update = message_in(CHAT, 6, "hello", date);
    t.stand_in
        .inject("sendMessage", Fault::too_many_requests(120));
    let verdict = t.deliver(&webhook, &update).await;
    let response = verdict.response();
    assert_eq!(verdict.status(), 503);
    assert_eq!(response.headers["retry-after"], "120");
    let record = t.item(&chat_key(CHAT)).await.unwrap();
    assert!(
        record["p"].as_m().unwrap().is_empty(),
        "no outbox left behind: {record:?}"
    );
    assert!(record["d"].as_m().unwrap().contains_key("6"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_retention_off_clears_the_expiry_of_existing_records() {
    let t = setup().await;
    let keep = crate::helpers::webhook_with(
        &t.stand_in,
        t.memory(TABLE)
            .keep_chats_for(Some(Duration::from_secs(365 * 86_400))),
    );
    assert_eq!(
        t.deliver(&keep, &message(7, "one")).await.as_str(),
        "answered"
    );
    let key = chat_key(CHAT);
    assert!(t.item(&key).await.unwrap().contains_key("expires_at"));
    let forever = t.webhook();
    assert_eq!(
        t.deliver(&forever, &message(8, "two")).await.as_str(),
        "answered"
    );
    let record = t.item(&key).await.unwrap();
    assert!(!record.contains_key("expires_at"), "{record:?}");
}

/// Decides and finishes `update` at `now` (Unix ms), as a run that
/// answered it would.
async fn answer_at(memory: &Memory, update: &Value, now: i64) -> Decision {
    let bot = Bot::default().keeping_state(true);
    let update = Update::from_value(update.clone()).unwrap();
    let (decision, ticket) = memory
        .decide(&bot, &None, &update, now + 10_000, now)
        .await
        .unwrap();
    if matches!(decision, Decision::Send { .. }) {
        memory.finish(&ticket).await.unwrap();
    }
    decision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_is_recognised_after_many_newer_messages_and_forgotten_after_its_lifetime() {
    let t = setup().await;
    let memory = t.memory(TABLE);
    let now = now_millis();
    let pressed = press(10, "counter:+1");
    assert!(matches!(
        answer_at(&memory, &pressed, now).await,
        Decision::Send { .. } | Decision::Nothing
    ));
    // A busy group: many messages answered while the press's answer to
    // Telegram was lost.
    for i in 0..(4 * KEEP_DONE as i64) {
        let update = message_in(GROUP, 100 + i, "hi", unix_now());
        answer_at(&memory, &update, now).await;
    }
    assert_eq!(
        answer_at(&memory, &pressed, now).await,
        Decision::Duplicate,
        "the press runs once"
    );
    // Past its lifetime (150 s) Telegram no longer delivers it: the next
    // write drops its id.
    let later = now + 300_000;
    answer_at(&memory, &message_in(GROUP, 500, "hi", unix_now()), later).await;
    let store = DynamoDbStore::new(&t.moto.sdk_config(), TABLE);
    let record = store.load(&chat_key(GROUP)).await.unwrap().unwrap();
    assert!(!record.done_until.contains_key(&10), "{record:?}");
    assert!(record.done.len() <= KEEP_DONE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_50_presses_and_50_messages_keeps_the_record_under_4_kb() {
    let t = setup().await;
    let memory = t.memory(TABLE);
    let now = now_millis();
    let mut largest = 0;
    for i in 0..50 {
        answer_at(&memory, &press(1_000 + 2 * i, "counter:+1"), now).await;
        let update = message_in(GROUP, 1_001 + 2 * i, "hello there", unix_now());
        answer_at(&memory, &update, now).await;
        largest = largest.max(item_size(&t.item(&chat_key(GROUP)).await.unwrap()));
    }
    assert!(largest < 4 * 1024, "the record reached {largest} bytes");
}

/// Write units of one write as DynamoDB bills it: a unit per KB of the
/// larger of the item before and after.
fn write_units(before: usize, after: usize) -> usize {
    before.max(after).div_ceil(1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_reply_costs_two_write_units_and_a_long_one_ten() {
    let t = setup().await;
    let webhook = t.webhook();
    let key = chat_key(CHAT);
    // A chat in its steady state: its last few ids kept.
    for i in 0..(2 * KEEP_DONE as i64) {
        t.deliver(&webhook, &message(2_000 + i, "warm up")).await;
    }
    let mut units = Vec::new();
    for (id, text) in [(3_000, "hello".to_owned()), (3_001, "ü".repeat(2_000))] {
        let before = item_size(&t.item(&key).await.unwrap());
        // Stop between the commit and the finish to weigh the item with
        // its outbox: the reply fails once, then goes out.
        t.stand_in.inject("sendMessage", Fault::internal_error());
        assert_eq!(t.deliver(&webhook, &message(id, &text)).await.status(), 502);
        let with_outbox = item_size(&t.item(&key).await.unwrap());
        assert_eq!(
            t.deliver(&webhook, &message(id, &text)).await.as_str(),
            "answered"
        );
        let after = item_size(&t.item(&key).await.unwrap());
        // The answered path writes twice: the commit (before -> with the
        // outbox) and the finish (with the outbox -> after); the failed
        // try's lease release is not part of it.
        let spent = write_units(before, with_outbox) + write_units(with_outbox, after);
        eprintln!(
            "{} chars: {before} -> {with_outbox} -> {after} bytes, {spent} write units",
            text.chars().count()
        );
        units.push(spent);
    }
    assert_eq!(units, [2, 10]);
}
