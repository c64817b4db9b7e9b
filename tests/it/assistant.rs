//! The assistant through the real webhook handler, against the stand-in
//! and its fake model: drafts while the answer is written, one final
//! message, exactly once, within the time the function has; and every way
//! the model can fail. The pacing is a tenth of the deployed one, so a
//! 2 s answer here stands for a 20 s one.

use crate::helpers::item_size;
use crate::helpers::{event_with, unix_now, FAST_PACING};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::assistant::{Assistant, UNAVAILABLE};
use telegram_lambda_bot::bot::Bot;
use telegram_lambda_bot::config::Config;
use telegram_lambda_bot::runtime::memory::{Leases, Memory};
use telegram_lambda_bot::runtime::store::dynamodb::DynamoDbStore;
use telegram_lambda_bot::webhook::{handle_event, Verdict, Webhook};
use telegram_stand_in::{
    FakeModel, Fault, ModelFault, ModelOptions, Options, StandIn, FAKE_MODEL_KEY,
};
use testkit::Logs;
use tokio::time::Instant;

const CHAT: i64 = 5_550_001;
const GROUP: i64 = -5_550_002;

struct Bench {
    stand_in: StandIn,
    model: FakeModel,
    webhook: Arc<Webhook>,
    memory: Memory,
}

fn config(stand_in: &StandIn, model: &FakeModel, key: &str) -> Config {
    config_at(stand_in, &model.base_url(), key)
}

/// The configuration with the model's API at `model_url`.
fn config_at(stand_in: &StandIn, model_url: &str, key: &str) -> Config {
    crate::helpers::assistant_config(stand_in, model_url, key, &[])
}

/// An answer of `words` words, one every `every`.
async fn bench_with(words: usize, every: Duration, key: &str) -> Bench {
    bench_kept(words, every, key, Memory::in_process()).await
}

async fn bench_kept(words: usize, every: Duration, key: &str, memory: Memory) -> Bench {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let model = FakeModel::start(ModelOptions {
        answer: Some(self::words(words)),
        piece_interval: every,
        ..ModelOptions::default()
    })
    .await
    .unwrap();
    let config = config(&stand_in, &model, key);
    let assistant = config.assistant.as_ref().expect("the assistant is on");
    let bot = Bot::from_config(&config)
        .with_assistant(Assistant::new(assistant).with_pacing(FAST_PACING));
    let webhook = Arc::new(
        Webhook::for_bot(&config, bot)
            .unwrap()
            .with_memory(memory.clone()),
    );
    Bench {
        stand_in,
        model,
        webhook,
        memory,
    }
}

async fn bench(words: usize, every: Duration) -> Bench {
    bench_with(words, every, FAKE_MODEL_KEY).await
}

fn message_in(chat: Value, update_id: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {
        "message_id": update_id, "date": unix_now(),
        "from": {"id": CHAT, "is_bot": false, "first_name": "Ali"},
        "chat": chat, "text": text
    }})
}

fn private(update_id: i64, text: &str) -> Value {
    message_in(
        json!({"id": CHAT, "type": "private", "first_name": "Ali"}),
        update_id,
        text,
    )
}

fn group(update_id: i64, text: &str) -> Value {
    message_in(
        json!({"id": GROUP, "type": "supergroup", "title": "G"}),
        update_id,
        text,
    )
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

    fn sent(&self) -> Vec<String> {
        testkit::texts(&self.stand_in.sent_messages())
    }

    /// Waits until `update` is claimed: its answer is being written.
    async fn until_claimed(&self, update: &Value) {
        let update = telegram_lambda_bot::telegram::Update::from_value(update.clone()).unwrap();
        for _ in 0..500 {
            let read = self.memory.read(&update).await.unwrap();
            if read.seen_before(telegram_lambda_bot::runtime::memory::now_millis()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the update was never claimed");
    }
}

fn words(n: usize) -> String {
    (1..=n)
        .map(|n| format!("word{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

const TIME: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_shows_paced_drafts_and_is_sent_once() {
    // 40 words, 50 ms apart: a 2 s answer (20 s at the deployed pace).
    let b = bench(40, Duration::from_millis(50)).await;
    let update = private(1, "What is a webhook?");
    let verdict = b.deliver(&update, TIME).await;
    assert_eq!((verdict.status(), verdict.as_str()), (200, "answered"));
    assert_eq!(b.sent(), [words(40)]);
    let drafts = b.stand_in.drafts();
    // At most one per 100 ms over 2 s, and several of them.
    assert!((5..=21).contains(&drafts.len()), "{} drafts", drafts.len());
    for pair in drafts.windows(2) {
        assert!(pair[1].text.starts_with(&pair[0].text), "drafts only grow");
    }
    assert!(drafts.iter().all(|d| d.chat_id == CHAT && d.draft_id == 1));
    assert!(words(40).starts_with(&drafts[drafts.len() - 1].text));
    // The model was asked once, with the question after the instructions.
    let asked = b.model.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["model"], "fake-1");
    assert_eq!(asked[0]["stream"], true);
    assert_eq!(asked[0]["messages"][1]["content"], "What is a webhook?");
    // A redelivery is a duplicate: no second question, no second answer.
    let again = b.deliver(&update, TIME).await;
    assert_eq!(again.as_str(), "duplicate");
    assert_eq!(b.model.requests().len(), 1);
    assert_eq!(b.sent().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_group_ask_shows_typing_and_no_drafts() {
    let b = bench(40, Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let verdict = b.deliver(&group(2, "/ask What is a webhook?"), TIME).await;
    let took = started.elapsed();
    assert_eq!(verdict.as_str(), "answered");
    assert_eq!(b.sent(), [words(40)]);
    assert!(b.stand_in.drafts().is_empty());
    let typing = b.stand_in.calls_to("sendChatAction");
    // At the start, then every 450 ms of a 2 s answer.
    let most = (took.as_millis() / 450 + 1) as usize;
    assert!(
        (3..=most).contains(&typing.len()),
        "{} typing in {took:?}",
        typing.len()
    );
    assert!(typing.iter().all(|t| t["chat_id"] == GROUP));
    // Plain text in a group is not a question.
    let verdict = b.deliver(&group(3, "just chatting"), TIME).await;
    assert_eq!(verdict.as_str(), "answered");
    assert_eq!(b.model.requests().len(), 1);
    assert_eq!(b.sent()[1], "You said: just chatting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_past_the_budget_is_sent_as_far_as_it_got_once() {
    // 100 words, 50 ms apart: 5 s, where the function has 4 s, of which
    // the answer 4 - 3 (the handler's reserve) - 0.2 (sending) s.
    let b = bench(100, Duration::from_millis(50)).await;
    let update = private(4, "Tell me everything.");
    let running = {
        let webhook = b.webhook.clone();
        let event = event_with(&update);
        b.stand_in.observe_update(&update);
        tokio::spawn(async move {
            handle_event(&webhook, event, Instant::now() + Duration::from_secs(4)).await
        })
    };
    // Telegram gives up on the connection and delivers again while the
    // answer is being written: told to come back, not answered twice.
    b.until_claimed(&update).await;
    let meanwhile = b.deliver(&update, TIME).await;
    assert_eq!(
        (meanwhile.status(), meanwhile.as_str()),
        (503, "in_progress")
    );
    let verdict = running.await.unwrap();
    assert_eq!((verdict.status(), verdict.as_str()), (200, "answered"));
    let sent = b.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with("word1 word2"), "{}", sent[0]);
    assert!(
        sent[0].ends_with("(The answer stops here: it took longer than a bot may take to answer.)"),
        "{}",
        sent[0]
    );
    assert!(!sent[0].contains("word100"));
    let later = b.deliver(&update, TIME).await;
    assert_eq!(later.as_str(), "duplicate");
    assert_eq!(b.model.requests().len(), 1);
    assert_eq!(b.sent().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_answer_is_split_at_telegrams_limit() {
    // 1,000 words of 5-8 characters: about 7,900 characters.
    let b = bench(1000, Duration::ZERO).await;
    let verdict = b.deliver(&private(5, "Write a lot."), TIME).await;
    assert_eq!(verdict.as_str(), "answered");
    let sent = b.sent();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|t| t.encode_utf16().count() <= 4096));
    assert_eq!(sent.join(" "), words(1000));
    let drafts = b.stand_in.drafts();
    assert!(drafts.iter().all(|d| d.text.encode_utf16().count() <= 4096));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_is_busy_is_tried_again_within_the_budget() {
    let b = bench(5, Duration::ZERO).await;
    b.model
        .fail_next(ModelFault::TooManyRequests { retry_after: 1 });
    let verdict = b.deliver(&private(6, "Hi?"), TIME).await;
    assert_eq!(verdict.as_str(), "answered");
    assert_eq!(b.sent(), [words(5)]);
    assert_eq!(b.model.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_keeps_failing_gets_a_short_answer_and_a_200() {
    let b = bench(5, Duration::ZERO).await;
    for _ in 0..3 {
        b.model.fail_next(ModelFault::ServerError);
    }
    let update = private(7, "Hi?");
    let verdict = b.deliver(&update, TIME).await;
    assert_eq!(
        (verdict.status(), verdict.as_str()),
        (200, "permanent_failure")
    );
    assert_eq!(b.sent(), [UNAVAILABLE]);
    assert_eq!(b.model.requests().len(), 3);
    assert_eq!(b.deliver(&update, TIME).await.as_str(), "duplicate");
    assert_eq!(b.sent().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_key_is_a_configuration_failure_told_once_and_never_logged() {
    let (logs, _guard) = Logs::capture("debug");
    let wrong = "sk-wrong-key-4f1d2c";
    let b = bench_with(5, Duration::ZERO, wrong).await;
    let update = private(8, "Hi?");
    let verdict = b.deliver(&update, TIME).await;
    assert_eq!(
        (verdict.status(), verdict.as_str()),
        (200, "configuration_failure")
    );
    assert_eq!(b.sent(), [UNAVAILABLE]);
    assert_eq!(b.model.requests().len(), 0, "refused before it was read");
    let lines = logs.lines();
    assert!(lines.iter().any(|l| l["level"] == "ERROR"
        && l["message"]
            .as_str()
            .unwrap_or("")
            .contains("ASSISTANT_API_KEY")));
    let outcome = logs.outcome_lines();
    assert_eq!(outcome[0]["outcome"], "configuration_failure");
    assert_eq!(outcome[0]["level"], "ERROR");
    assert!(!logs.text().contains(wrong), "the key is in a log line");
    assert!(!format!("{:?}", b.webhook).contains(wrong));
    assert!(!format!(
        "{:?}",
        Bot::from_config(&config(&b.stand_in, &b.model, wrong))
    )
    .contains(wrong));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_breaks_off_is_sent_with_a_note() {
    let note = "(The answer broke off here: the model stopped sending.)";
    for fault in [
        ModelFault::CutAfter(3),
        ModelFault::ErrorAfter(3),
        ModelFault::StallAfter(3, Duration::from_secs(3)),
    ] {
        let b = bench(10, Duration::from_millis(10)).await;
        b.model.fail_next(fault.clone());
        let verdict = b.deliver(&private(9, "Hi?"), TIME).await;
        assert_eq!(verdict.as_str(), "answered", "{fault:?}");
        assert_eq!(b.sent(), [format!("{}\n\n{note}", words(3))], "{fault:?}");
    }
    let b = bench(10, Duration::from_millis(10)).await;
    b.model.fail_next(ModelFault::FinishWith("length".into()));
    b.deliver(&private(10, "Hi?"), TIME).await;
    let sent = b.sent();
    assert!(sent[0].ends_with("(The answer stops here: it reached the model's length limit.)"));
    b.model
        .fail_next(ModelFault::FinishWith("content_filter".into()));
    b.deliver(&private(11, "Hi?"), TIME).await;
    assert!(b.sent()[1].ends_with("(The rest was withheld by the model's content filter.)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_refused_with_flood_control_waits_and_the_answer_is_kept() {
    let b = bench(40, Duration::from_millis(50)).await;
    b.stand_in
        .inject("sendMessageDraft", Fault::too_many_requests(1));
    let started = std::time::Instant::now();
    let verdict = b.deliver(&private(12, "Hi?"), TIME).await;
    let took = started.elapsed();
    assert_eq!(verdict.as_str(), "answered");
    assert_eq!(b.sent(), [words(40)]);
    // The first draft was refused; the next waited the second asked for,
    // so what was left of the answer's time had room for one per 100 ms.
    let refused = b
        .stand_in
        .calls_to("sendMessageDraft")
        .len()
        .saturating_sub(b.stand_in.drafts().len());
    assert_eq!(refused, 1);
    let most = (took.saturating_sub(Duration::from_secs(1)).as_millis() / 100 + 1) as usize;
    assert!(
        b.stand_in.drafts().len() <= most,
        "{} drafts in {took:?}",
        b.stand_in.drafts().len()
    );
}

/// The user turns and the model's turns the model was sent for request
/// `index`, after the instructions.
fn sent_turns(model: &FakeModel, index: usize) -> Vec<(String, String)> {
    let request = &model.requests()[index];
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversation_is_remembered_apart_from_the_chat_and_reset_forgets_it() {
    let moto = testkit::Moto::start().await;
    moto.create_table("assistant").await;
    let store = Arc::new(DynamoDbStore::new(&moto.sdk_config(), "assistant"));
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config());
    let item = |key: &'static str| {
        let client = client.clone();
        async move {
            client
                .get_item()
                .table_name("assistant")
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(key.to_owned()),
                )
                .send()
                .await
                .unwrap()
                .item
        }
    };
    for memory in [
        Memory::in_process(),
        Memory::new(store.clone(), Leases::Shared),
    ] {
        let durable = memory.is_durable();
        let b = bench_kept(3, Duration::ZERO, FAKE_MODEL_KEY, memory).await;
        let user = |q: &str| ("user".to_owned(), q.to_owned());
        let model = |a: &str| ("assistant".to_owned(), a.to_owned());
        b.deliver(&private(20, "First?"), TIME).await;
        b.deliver(&private(21, "Second?"), TIME).await;
        assert_eq!(
            sent_turns(&b.model, 1),
            [user("First?"), model(&words(3)), user("Second?")]
        );
        // A repeat of an answered question is a duplicate: no new exchange
        // (one asked again after a failure replaces its own: unit-tested
        // in src/assistant/conversation.rs).
        b.deliver(&private(20, "First?"), TIME).await;
        b.deliver(&private(22, "Third?"), TIME).await;
        let turns = sent_turns(&b.model, 2);
        assert_eq!(turns.len(), 5, "{turns:?}");
        assert_eq!(
            turns.iter().filter(|t| t.1 == "First?").count(),
            1,
            "{turns:?}"
        );
        if durable {
            // A note of its own, within 4 KB (4 write units an answer);
            // the chat's record holds none of it.
            let note = item("note#conversation#chat#5550001")
                .await
                .expect("the conversation's note");
            assert!(item_size(&note) <= 4096);
            let record = item("chat#5550001").await.unwrap();
            assert!(!format!("{record:?}").contains("Second?"), "{record:?}");
        }
        let verdict = b.deliver(&private(23, "/reset"), TIME).await;
        assert_eq!(verdict.as_str(), "answered");
        assert_eq!(
            b.sent().last().unwrap(),
            "I have forgotten our conversation: the next question starts afresh."
        );
        b.deliver(&private(24, "Fourth?"), TIME).await;
        let last = b.model.requests().len() - 1;
        assert_eq!(sent_turns(&b.model, last), [user("Fourth?")]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_giving_up_on_a_long_answer_gets_it_once() {
    // Telegram's 60 s are 3 s here; the answer takes 5 s, within the
    // function's budget (a Function URL's 55 s stand for serve_function's
    // 20 s).
    let stand_in = StandIn::start(Options {
        time_scale: 0.05,
        ..Options::default()
    })
    .await
    .unwrap();
    let model = FakeModel::start(ModelOptions {
        answer: Some(words(100)),
        piece_interval: Duration::from_millis(50),
        ..ModelOptions::default()
    })
    .await
    .unwrap();
    let config = config(&stand_in, &model, FAKE_MODEL_KEY);
    let assistant = Assistant::new(config.assistant.as_ref().unwrap()).with_pacing(FAST_PACING);
    let bot = Bot::from_config(&config).with_assistant(assistant);
    let webhook = Arc::new(Webhook::for_bot(&config, bot).unwrap());
    let url = crate::helpers::serve_function(webhook).await;
    let api = crate::helpers::api_for(&stand_in);
    api.set_webhook(&telegram_lambda_bot::telegram::SetWebhook {
        url,
        secret_token: Some(crate::helpers::SECRET.to_owned()),
        allowed_updates: Some(vec!["message".to_owned()]),
        ..Default::default()
    })
    .await
    .unwrap();
    let id = stand_in.enqueue_text_from(CHAT, "Ali", "Tell me a long story.");
    assert!(stand_in.wait_settled(id, Duration::from_secs(30)).await);
    assert_eq!(testkit::texts(&stand_in.replies_to(CHAT)), [words(100)]);
    assert_eq!(model.requests().len(), 1, "asked once");
    let deliveries = stand_in.deliveries();
    assert_eq!(deliveries[0], (id, "Read timeout expired".to_owned()));
    // Delivered again while the answer was written: told to come back.
    assert!(
        deliveries
            .iter()
            .any(|(_, outcome)| outcome.contains("503")),
        "{deliveries:?}"
    );
    assert_eq!(deliveries.last().unwrap(), &(id, "ok".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_end_is_cut_at_four_messages() {
    // 3,000 words: about 24 KB, past what the bot reads of an answer.
    let b = bench(3000, Duration::ZERO).await;
    let verdict = b.deliver(&private(30, "Never stop."), TIME).await;
    assert_eq!(verdict.as_str(), "answered");
    let sent = b.sent();
    assert!(sent.iter().all(|t| t.encode_utf16().count() <= 4096));
    let all = sent.join(" ");
    assert!(
        all.ends_with("(The answer stops here: it is longer than I send at once.)"),
        "{}",
        &all[all.len() - 200..]
    );
    assert!(all.len() <= telegram_lambda_bot::assistant::MAX_ANSWER_BYTES + 100);
    assert!(sent.len() <= 5, "{} messages", sent.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_model_path_is_a_configuration_failure_and_an_absurd_wait_is_survived() {
    // A base URL the service does not know: 404, told once, alarmed.
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let model = FakeModel::start(ModelOptions::default()).await.unwrap();
    let wrong = format!("{}/nowhere", model.base_url());
    let config = config_at(&stand_in, &wrong, FAKE_MODEL_KEY);
    let webhook = Webhook::for_bot(&config, Bot::from_config(&config)).unwrap();
    let update = private(40, "Hi?");
    stand_in.observe_update(&update);
    let verdict = handle_event(&webhook, event_with(&update), Instant::now() + TIME).await;
    assert_eq!(
        (verdict.status(), verdict.as_str()),
        (200, "configuration_failure")
    );
    assert_eq!(testkit::texts(&stand_in.sent_messages()), [UNAVAILABLE]);

    // A Retry-After no clock can add: given up with the short answer,
    // never a panic.
    let b = bench(5, Duration::ZERO).await;
    b.model.fail_next(ModelFault::TooManyRequests {
        retry_after: u64::MAX,
    });
    let verdict = b.deliver(&private(41, "Hi?"), TIME).await;
    assert_eq!(verdict.as_str(), "permanent_failure");
    assert_eq!(b.sent(), [UNAVAILABLE]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_thinks_before_its_first_word_is_waited_for_with_a_placeholder() {
    // Silent for 2 s before the first word (a reasoning model), where a
    // gap of 1.5 s after it would be a cut stream.
    let b = bench(5, Duration::from_millis(10)).await;
    b.model
        .fail_next(ModelFault::StallAfter(0, Duration::from_secs(2)));
    let verdict = b.deliver(&private(50, "Think hard."), TIME).await;
    assert_eq!(verdict.as_str(), "answered");
    assert_eq!(b.sent(), [words(5)]);
    let drafts = b.stand_in.drafts();
    // The empty draft: Telegram's "Thinking..." until the first word,
    // refreshed on the (tenfold) 2 s clock.
    assert_eq!(drafts[0].text, "");
    assert!(drafts.iter().take_while(|d| d.text.is_empty()).count() >= 2);
    assert!(
        b.stand_in.calls_to("sendChatAction").is_empty(),
        "no typing in private"
    );
}
