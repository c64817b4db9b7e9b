//! A bot whose handler calls an outside service (testkit's fake weather
//! API), through the real webhook handler, with the store off (the
//! process's own) and on (moto's DynamoDB): one code path, the same
//! contract. Outside calls are at most once per delivery, Telegram's
//! messages exactly once.

use crate::helpers::{event_with, unix_now};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::action::Action;
use telegram_lambda_bot::handler::{Context, Failed, Handler, GAVE_UP};
use telegram_lambda_bot::runtime::memory::{now_millis, Leases, Memory};
use telegram_lambda_bot::runtime::store::dynamodb::DynamoDbStore;
use telegram_lambda_bot::telegram::{Command, SendMessage, Update, UpdateKind};
use telegram_lambda_bot::webhook::{handle_event, Verdict, Webhook};
use telegram_stand_in::{Options, StandIn};
use testkit::{FakeService, Moto};
use tokio::time::Instant;

const CHAT: i64 = 4_440_001;
const UNREADABLE: &str = "The weather service answered something I cannot read.";

/// `/weather <city>` from the fake service; any other text is noted. The
/// state counts the chat's messages, so a reply shows which state it was
/// decided on.
#[derive(Debug, Clone)]
struct Weather {
    service: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Seen {
    messages: u64,
}

#[derive(Debug, Deserialize)]
struct Report {
    city: String,
    temperature_c: f64,
}

impl Handler for Weather {
    type State = Seen;
    type Gathered = Option<Report>;

    async fn gather(
        &self,
        update: &Update,
        _: &Seen,
        cx: &Context<'_>,
    ) -> Result<Option<Report>, Failed> {
        let UpdateKind::Message(message) = &update.kind else {
            return Ok(None);
        };
        let Some(weather) = Command::of(message).filter(|c| c.is("weather")) else {
            return Ok(None);
        };
        let city = weather.args;
        cx.typing().await;
        let response = cx
            .get(format!("{}/weather", self.service))
            .query(&[("city", city)])
            .send()
            .await?
            .error_for_status()?;
        let report = response
            .json::<Report>()
            .await
            .map_err(|e| Failed::from(e).telling(UNREADABLE))?;
        Ok(Some(report))
    }

    fn handle(
        &self,
        update: &Update,
        found: &Option<Report>,
        mut state: Seen,
    ) -> (Vec<Action>, Seen) {
        let UpdateKind::Message(message) = &update.kind else {
            return (Vec::new(), state);
        };
        state.messages += 1;
        let text = match found {
            Some(report) => format!(
                "{}: {} °C (message {})",
                report.city, report.temperature_c, state.messages
            ),
            None => format!("noted (message {})", state.messages),
        };
        (
            vec![Action::Send(SendMessage::reply_to(message, text))],
            state,
        )
    }
}

/// Where the chat's records are kept.
#[derive(Debug, Clone, Copy)]
enum Kept {
    InProcess,
    Table,
}

struct Bench {
    stand_in: StandIn,
    service: FakeService,
    webhook: Arc<Webhook<Weather>>,
    memory: Memory,
    _moto: Option<Moto>,
}

async fn bench(kept: Kept) -> Bench {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let service = FakeService::start().await;
    let (memory, moto) = match kept {
        Kept::InProcess => (Memory::in_process(), None),
        Kept::Table => {
            let moto = Moto::start().await;
            moto.create_table("weather-bot").await;
            let store = DynamoDbStore::new(&moto.sdk_config(), "weather-bot");
            (Memory::new(Arc::new(store), Leases::Shared), Some(moto))
        }
    };
    let base_url = stand_in.base_url();
    let config = crate::helpers::config(&[
        ("TELEGRAM_BOT_TOKEN", stand_in.token()),
        ("TELEGRAM_API_BASE_URL", &base_url),
        ("TELEGRAM_WEBHOOK_SECRET", crate::helpers::SECRET),
    ]);
    let bot = Weather {
        service: service.base_url(),
    };
    let webhook = Webhook::for_bot(&config, bot)
        .unwrap()
        .with_memory(memory.clone());
    Bench {
        stand_in,
        service,
        webhook: Arc::new(webhook),
        memory,
        _moto: moto,
    }
}

/// A text message of the test chat, sent `age` ago.
fn message(update_id: i64, text: &str, age: Duration) -> Value {
    json!({"update_id": update_id, "message": {
        "message_id": update_id, "date": unix_now() - age.as_secs() as i64,
        "from": {"id": CHAT, "is_bot": false, "first_name": "Ali"},
        "chat": {"id": CHAT, "type": "private", "first_name": "Ali"},
        "text": text
    }})
}

impl Bench {
    async fn deliver(&self, update: &Value, time_left: Duration) -> Verdict {
        self.stand_in.observe_update(update);
        handle_event(
            &self.webhook,
            event_with(update),
            Instant::now() + time_left,
        )
        .await
    }

    /// Delivers `update` in a task of its own, as a delivery still running
    /// when the test does something else.
    fn deliver_meanwhile(&self, update: &Value) -> tokio::task::JoinHandle<Verdict> {
        let webhook = self.webhook.clone();
        let event = event_with(update);
        self.stand_in.observe_update(update);
        tokio::spawn(async move { handle_event(&webhook, event, Instant::now() + TIME).await })
    }

    /// The texts the bot sent, in order.
    fn sent(&self) -> Vec<String> {
        testkit::texts(&self.stand_in.sent_messages())
    }

    /// Waits until the chat's record holds a claim (or outbox) of `update`:
    /// the look-up is under way and holds the update.
    async fn until_claimed(&self, update: &Value) {
        let update = Update::from_value(update.clone()).unwrap();
        for _ in 0..500 {
            let read = self.memory.read(&update).await.unwrap();
            if read.seen_before(now_millis()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the update was never claimed");
    }
}

const TIME: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_answers_from_the_service_once() {
    for kept in [Kept::InProcess, Kept::Table] {
        let b = bench(kept).await;
        let update = message(1, "/weather São Paulo", Duration::ZERO);
        let verdict = b.deliver(&update, TIME).await;
        assert_eq!(
            (verdict.status(), verdict.as_str()),
            (200, "answered"),
            "{kept:?}"
        );
        let expected = testkit::service::weather("São Paulo");
        assert_eq!(
            b.sent(),
            [format!(
                "São Paulo: {} °C (message 1)",
                expected["temperature_c"]
            )],
            "{kept:?}"
        );
        let again = b.deliver(&update, TIME).await;
        assert_eq!(again.as_str(), "duplicate", "{kept:?}");
        assert_eq!(b.service.calls_for("São Paulo"), 1, "{kept:?}");
        assert_eq!(b.sent().len(), 1, "{kept:?}");
        let typing = b.stand_in.calls_to("sendChatAction");
        assert_eq!(typing.len(), 1, "{kept:?}: shown while it looked up");
        assert_eq!(typing[0]["action"], "typing", "{kept:?}");
        assert_eq!(typing[0]["chat_id"], CHAT, "{kept:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_sends_nothing_and_the_redelivery_answers() {
    for kept in [Kept::InProcess, Kept::Table] {
        let b = bench(kept).await;
        b.service.fail_next(1, 503);
        let update = message(2, "/weather Lisbon", Duration::ZERO);
        let failed = b.deliver(&update, TIME).await;
        assert_eq!(
            (failed.status(), failed.as_str()),
            (502, "retryable_failure"),
            "{kept:?}"
        );
        assert!(b.sent().is_empty(), "{kept:?}: nothing sent");
        // The claim was let go: the next delivery looks up again at once.
        let next = b.deliver(&update, TIME).await;
        assert_eq!(
            (next.status(), next.as_str()),
            (200, "answered"),
            "{kept:?}"
        );
        assert_eq!(b.service.calls_for("Lisbon"), 2, "{kept:?}");
        assert_eq!(b.sent().len(), 1, "{kept:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_retry_limit_the_update_is_given_up_with_a_message() {
    for kept in [Kept::InProcess, Kept::Table] {
        let b = bench(kept).await;
        b.service.fail_always(500);
        let old = message(3, "/weather Oslo", Duration::from_secs(11 * 60));
        let verdict = b.deliver(&old, TIME).await;
        assert_eq!(
            (verdict.status(), verdict.as_str()),
            (200, "permanent_failure"),
            "{kept:?}"
        );
        assert_eq!(b.sent(), [GAVE_UP], "{kept:?}");
        // Given up for good: a repeat is a duplicate, told once.
        let again = b.deliver(&old, TIME).await;
        assert_eq!(again.as_str(), "duplicate", "{kept:?}");
        assert_eq!(b.sent().len(), 1, "{kept:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_the_bot_cannot_read_is_given_up_with_its_own_words() {
    for kept in [Kept::InProcess, Kept::Table] {
        let b = bench(kept).await;
        b.service.bad_json_next(1);
        let update = message(4, "/weather Rome", Duration::ZERO);
        let verdict = b.deliver(&update, TIME).await;
        assert_eq!(
            (verdict.status(), verdict.as_str()),
            (200, "permanent_failure"),
            "{kept:?}"
        );
        assert_eq!(b.sent(), [UNREADABLE], "{kept:?}");
        assert_eq!(b.service.calls(), 1, "{kept:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_race_reruns_only_the_answer_not_the_outside_call() {
    for kept in [Kept::InProcess, Kept::Table] {
        let b = bench(kept).await;
        b.service.slow_next(1, Duration::from_millis(700));
        let slow = message(10, "/weather Kyiv", Duration::ZERO);
        let first = b.deliver_meanwhile(&slow);
        b.until_claimed(&slow).await;
        // Another update of the chat (a press, say) writes the record while
        // the look-up waits.
        let other = b.deliver(&message(11, "hi", Duration::ZERO), TIME).await;
        assert_eq!(other.as_str(), "answered", "{kept:?}");
        let first = first.await.unwrap();
        assert_eq!(first.as_str(), "answered", "{kept:?}");
        assert_eq!(b.service.calls_for("Kyiv"), 1, "{kept:?}: one outside call");
        let sent = b.sent();
        assert_eq!(sent.len(), 2, "{kept:?}: {sent:?}");
        assert_eq!(sent[0], "noted (message 1)", "{kept:?}");
        assert!(
            sent[1].starts_with("Kyiv: ") && sent[1].ends_with("(message 2)"),
            "{kept:?}: decided again on the state the other update left: {sent:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_during_a_slow_look_up_waits_and_calls_nothing() {
    for kept in [Kept::InProcess, Kept::Table] {
        let b = bench(kept).await;
        b.service.slow_next(1, Duration::from_millis(700));
        let update = message(20, "/weather Tunis", Duration::ZERO);
        let first = b.deliver_meanwhile(&update);
        b.until_claimed(&update).await;
        let again = b.deliver(&update, TIME).await;
        let response = again.response();
        assert_eq!(
            (response.status_code, again.as_str()),
            (503, "in_progress"),
            "{kept:?}"
        );
        assert!(response.headers.contains_key("retry-after"), "{kept:?}");
        assert_eq!(first.await.unwrap().as_str(), "answered", "{kept:?}");
        assert_eq!(b.service.calls_for("Tunis"), 1, "{kept:?}");
        assert_eq!(b.sent().len(), 1, "{kept:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_up_that_overruns_its_time_is_answered_once_by_a_later_delivery() {
    for kept in [Kept::InProcess, Kept::Table] {
        let b = bench(kept).await;
        b.service.hang_next(1);
        let update = message(30, "/weather Quito", Duration::ZERO);
        // 3.5 s in all, 3 of them kept for the answer: the look-up has 0.5 s.
        let cut = b.deliver(&update, Duration::from_millis(3_500)).await;
        assert_eq!(
            (cut.status(), cut.as_str()),
            (502, "retryable_failure"),
            "{kept:?}"
        );
        assert!(b.sent().is_empty(), "{kept:?}");
        let next = b.deliver(&update, TIME).await;
        assert_eq!(next.as_str(), "answered", "{kept:?}");
        assert_eq!(b.sent().len(), 1, "{kept:?}");
        assert_eq!(b.service.calls_for("Quito"), 2, "{kept:?}");
    }
}
