//! Slow work off the webhook, on moto's SQS FIFO and DynamoDB: the webhook
//! defers `/ask`, the worker (the same handler, given the queue's event)
//! answers it, and moto's lack of an event source mapping is made up by
//! testkit's [`Trigger`], which receives, invokes and deletes as Lambda
//! does. One worker is a real process, killed mid-answer.

use crate::helpers::FunctionProcess;
use crate::helpers::{event_with, unix_now, FAST_PACING};
use lambda_runtime::LambdaEvent;
use lambda_runtime_api::Invocation;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::action::Action;
use telegram_lambda_bot::assistant::Assistant;
use telegram_lambda_bot::bot::Bot;
use telegram_lambda_bot::config::Config;
use telegram_lambda_bot::handler::{Context, Failed, Handler, GAVE_UP};
use telegram_lambda_bot::runtime::memory::{Leases, Memory};
use telegram_lambda_bot::runtime::queue::Queue;
use telegram_lambda_bot::runtime::store::dynamodb::DynamoDbStore;
use telegram_lambda_bot::telegram::Update;
use telegram_lambda_bot::webhook::{function_handler, handle_event, Verdict, Webhook};
use telegram_stand_in::{FakeModel, ModelOptions, Options, StandIn, FAKE_MODEL_KEY};
use testkit::{until, Batch, FifoQueue, Moto, Trigger};
use tokio::time::Instant;

const TABLE: &str = "deferred";
const ALI: i64 = 5_560_001;
const BO: i64 = 5_560_002;

struct Setup<H = Bot> {
    moto: Moto,
    stand_in: StandIn,
    model: FakeModel,
    queue: FifoQueue,
    webhook: Arc<Webhook<H>>,
}

fn config(stand_in: &StandIn, model: &FakeModel, queue: &FifoQueue) -> Config {
    let queue_vars = [
        ("BOT_QUEUE_URL", queue.url.as_str()),
        ("BOT_DEAD_LETTER_QUEUE_URL", queue.dead_letters.as_str()),
    ];
    crate::helpers::assistant_config(stand_in, &model.base_url(), FAKE_MODEL_KEY, &queue_vars)
}

/// The webhook (and worker) on moto's table and queue, the fake model
/// writing `words` words `every` apart; messages invisible for
/// `visibility` after each receive.
async fn setup(words: usize, every: Duration, visibility: Duration) -> Setup {
    setup_with(words, every, visibility, |config| {
        let assistant = config.assistant.as_ref().expect("the assistant is on");
        Bot::from_config(config).with_assistant(Assistant::new(assistant).with_pacing(FAST_PACING))
    })
    .await
}

/// As [`setup`], with the bot `bot` makes from the configuration.
async fn setup_with<H: Handler>(
    words: usize,
    every: Duration,
    visibility: Duration,
    bot: impl FnOnce(&Config) -> H,
) -> Setup<H> {
    let moto = Moto::start().await;
    moto.create_table(TABLE).await;
    let queue = moto.create_fifo_queue("slow", visibility, 5).await;
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let model = FakeModel::start(ModelOptions {
        answer: Some(answer_of(words)),
        piece_interval: every,
        ..ModelOptions::default()
    })
    .await
    .unwrap();
    let config = config(&stand_in, &model, &queue);
    let webhook = Arc::new(webhook(&moto, &config, &queue, bot(&config)));
    Setup {
        moto,
        stand_in,
        model,
        queue,
        webhook,
    }
}

fn webhook<H: Handler>(moto: &Moto, config: &Config, queue: &FifoQueue, bot: H) -> Webhook<H> {
    let sdk = moto.sdk_config();
    let memory = Memory::new(Arc::new(DynamoDbStore::new(&sdk, TABLE)), Leases::Shared)
        .with_lease_margin(Duration::from_millis(500));
    let queue_config = config.queue.clone().expect("the queue is configured");
    Webhook::for_bot(config, bot)
        .unwrap()
        .with_memory(memory)
        .with_queue(
            Queue::new(&sdk, &queue.url, Some(queue.dead_letters.clone())),
            queue_config,
        )
}

fn answer_of(words: usize) -> String {
    (1..=words)
        .map(|n| format!("word{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn private(chat: i64, update_id: i64, text: &str) -> Value {
    let mut message = json!({
        "message_id": update_id, "date": unix_now(),
        "from": {"id": chat, "is_bot": false, "first_name": "Ali"},
        "chat": {"id": chat, "type": "private", "first_name": "Ali"},
        "text": text
    });
    if let Some(command) = text.split(' ').next().filter(|c| c.starts_with('/')) {
        message["entities"] =
            json!([{"type": "bot_command", "offset": 0, "length": command.len()}]);
    }
    json!({"update_id": update_id, "message": message})
}

impl<H: Handler> Setup<H> {
    /// Telegram delivers `update` to the webhook.
    async fn deliver(&self, update: &Value) -> Verdict {
        self.stand_in.observe_update(update);
        let deadline = Instant::now() + Duration::from_secs(20);
        handle_event(&self.webhook, event_with(update), deadline).await
    }

    fn trigger(&self) -> Trigger {
        Trigger::new(&self.moto, &self.queue)
    }

    /// The texts sent to `chat`, in order.
    fn sent_to(&self, chat: i64) -> Vec<String> {
        let to_chat: Vec<Value> = self
            .stand_in
            .sent_messages()
            .into_iter()
            .filter(|m| m["chat_id"] == chat)
            .collect();
        testkit::texts(&to_chat)
    }

    /// Runs the trigger with `workers` invocations at a time, a message
    /// each (BatchSize 1, as deployed), until `done` holds; bounded by
    /// `seconds`.
    async fn drain(&self, workers: usize, seconds: u64, done: impl Fn(&Self) -> bool) {
        let until = Instant::now() + Duration::from_secs(seconds);
        let running = Arc::new(tokio::sync::Semaphore::new(workers));
        let trigger = self.trigger();
        let mut tasks = tokio::task::JoinSet::new();
        while !done(self) {
            assert!(Instant::now() < until, "the queue was not drained in time");
            let permit = running.clone().acquire_owned().await.unwrap();
            let Some(batch) = trigger.receive(1).await else {
                drop(permit);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let webhook = self.webhook.clone();
            tasks.spawn(async move {
                let answer = invoke(&webhook, &batch).await;
                drop(permit);
                (batch, answer)
            });
            while let Some(finished) = tasks.try_join_next() {
                let (batch, answer) = finished.unwrap();
                trigger.settle(&batch, Some(&answer)).await;
            }
        }
        while let Some(finished) = tasks.join_next().await {
            let (batch, answer) = finished.unwrap();
            trigger.settle(&batch, Some(&answer)).await;
        }
    }
}

/// The worker's invocation with the batch's event, with 20 s to go.
async fn invoke<H: Handler>(webhook: &Webhook<H>, batch: &Batch) -> Value {
    let mut context = lambda_runtime::Context::default();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    context.deadline = now_ms + 20_000;
    function_handler(webhook, LambdaEvent::new(batch.event.clone(), context))
        .await
        .expect("the worker never fails an invocation")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_update_is_answered_once_though_its_200_was_lost_and_its_send_failed() {
    let s = setup(10, Duration::from_millis(20), Duration::from_secs(2)).await;
    let ask = private(ALI, 1, "/ask What is a queue?");
    // The role may not send: the deployment's to fix, counted as such
    // (500, the errors alarm), and nothing is lost.
    s.moto.refuse_next(
        "SendMessage",
        400,
        r#"{"__type":"com.amazonaws.sqs#AccessDeniedException","message":"not authorized"}"#,
    );
    let refused = s.deliver(&ask).await;
    assert_eq!(
        (refused.status(), refused.as_str()),
        (500, "configuration_failure")
    );
    // The queue fails the next send and both its retries: the update is
    // recorded, so the redelivery sends it.
    for _ in 0..3 {
        s.moto.refuse_next(
            "SendMessage",
            500,
            r#"{"__type":"com.amazonaws.sqs#InternalError","message":"try again"}"#,
        );
    }
    let first = s.deliver(&ask).await;
    assert_eq!((first.status(), first.as_str()), (502, "retryable_failure"));
    assert_eq!(s.moto.queue_depth(&s.queue.url).await, 0);
    let second = s.deliver(&ask).await;
    assert_eq!((second.status(), second.as_str()), (200, "deferred"));
    // Its 200 was lost: Telegram delivers it again, which is only
    // acknowledged, without a second message on the queue.
    let third = s.deliver(&ask).await;
    assert_eq!((third.status(), third.as_str()), (200, "deferred"));
    assert_eq!(s.moto.queue_depth(&s.queue.url).await, 1);
    assert!(s.model.requests().is_empty(), "nothing slow on the webhook");
    s.drain(1, 20, |s| !s.sent_to(ALI).is_empty()).await;
    assert_eq!(s.sent_to(ALI), [answer_of(10)]);
    // Once answered, a delivery is a duplicate, and the chat is no longer
    // deferred: a plain message is answered at once.
    assert_eq!(s.deliver(&ask).await.as_str(), "duplicate");
    assert_eq!(
        s.deliver(&private(ALI, 2, "/help")).await.as_str(),
        "answered"
    );
    assert_eq!(s.model.requests().len(), 1);
    assert!(s.trigger().receive(10).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_chats_answer_side_by_side_while_a_chats_messages_keep_their_order() {
    // 20 words 50 ms apart: a 1 s answer.
    let s = setup(20, Duration::from_millis(50), Duration::from_secs(5)).await;
    assert_eq!(
        s.deliver(&private(ALI, 11, "/ask first?")).await.as_str(),
        "deferred"
    );
    // Behind Ali's question: deferred too, though not slow.
    assert_eq!(
        s.deliver(&private(ALI, 12, "/start")).await.as_str(),
        "deferred"
    );
    assert_eq!(
        s.deliver(&private(BO, 13, "/ask second?")).await.as_str(),
        "deferred"
    );
    // A press is never deferred, whatever the chat holds.
    let press = json!({"update_id": 14, "callback_query": {
        "id": "q-14", "chat_instance": "i", "data": "counter:+1",
        "from": {"id": ALI, "is_bot": false, "first_name": "Ali"},
        "message": {"message_id": 3, "date": unix_now(), "text": "0",
            "chat": {"id": ALI, "type": "private", "first_name": "Ali"}}
    }});
    let pressed = s.deliver(&press).await;
    assert_ne!(pressed.as_str(), "deferred");
    s.drain(2, 30, |s| {
        s.sent_to(ALI).len() == 2 && s.sent_to(BO).len() == 1
    })
    .await;
    let ali = s.sent_to(ALI);
    assert_eq!(ali[0], answer_of(20));
    assert!(ali[1].starts_with("Hello"), "{ali:?}");
    assert_eq!(s.sent_to(BO), [answer_of(20)]);
    // Side by side: Bo's question reached the model while Ali's answer was
    // still being written, not after it.
    let drafts = s.stand_in.drafts();
    let first_bo = drafts.iter().position(|d| d.chat_id == BO).unwrap();
    let last_ali = drafts.iter().rposition(|d| d.chat_id == ALI).unwrap();
    assert!(
        first_bo < last_ali,
        "the chats were answered one after the other"
    );
}

/// A bot whose every update waits on a service that is down: the poison
/// the queue must end. Counts its tries.
#[derive(Default)]
struct Down(Arc<AtomicUsize>);

impl Handler for Down {
    type State = ();
    type Gathered = ();

    async fn gather(&self, _: &Update, _: &(), _: &Context<'_>) -> Result<(), Failed> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(Failed::retry_later(std::io::Error::other(
            "the service is down",
        )))
    }

    fn handle(&self, _: &Update, _: &(), _: ()) -> (Vec<Action>, ()) {
        (Vec::new(), ())
    }

    fn is_slow(&self, _: &Update, _: &()) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_update_ends_in_the_dead_letter_queue_and_the_user_is_told_once() {
    let tries = Arc::new(AtomicUsize::new(0));
    let down = Down(tries.clone());
    let s = setup_with(1, Duration::ZERO, Duration::from_secs(1), |_| down).await;
    assert_eq!(
        s.deliver(&private(ALI, 21, "look it up")).await.as_str(),
        "deferred"
    );
    s.drain(1, 30, |s| !s.sent_to(ALI).is_empty()).await;
    // Tried on each of the queue's 5 receives; told once, on the last.
    assert_eq!(tries.load(Ordering::SeqCst), 5);
    assert_eq!(s.sent_to(ALI), [GAVE_UP]);
    assert_eq!(s.moto.queue_depth(&s.queue.url).await, 0);
    let kept = s.moto.peek(&s.queue.dead_letters).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(
        serde_json::from_str::<Value>(&kept[0]).unwrap()["update_id"],
        21
    );
    // The chat goes on: its next message is not held behind the poison.
    assert_eq!(
        s.deliver(&private(ALI, 22, "again")).await.as_str(),
        "deferred"
    );
    assert_eq!(s.moto.queue_depth(&s.queue.url).await, 1);
}

/// A worker: the function binary on the queue, the table and the model.
async fn worker(s: &Setup, timeout: Duration) -> FunctionProcess {
    let env = [
        ("BOT_STORE_TABLE", TABLE.to_owned()),
        ("BOT_LEASE_MARGIN_SECS", "0.5".to_owned()),
        ("BOT_QUEUE_URL", s.queue.url.clone()),
        ("BOT_DEAD_LETTER_QUEUE_URL", s.queue.dead_letters.clone()),
        ("ASSISTANT_MODEL", "fake-1".to_owned()),
        ("ASSISTANT_BASE_URL", s.model.base_url()),
        ("ASSISTANT_API_KEY", FAKE_MODEL_KEY.to_owned()),
    ];
    FunctionProcess::start(&s.moto, &s.stand_in, timeout, &env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_answer_leaves_the_message_and_the_answer_is_sent_once() {
    // A 1 s answer; the worker's timeout 8 s (5 s of it kept back for the
    // answer's sending at the deployed pace), the message invisible for 9 s
    // after a receive (deployed: 6 times the timeout).
    let s = setup(10, Duration::from_millis(100), Duration::from_secs(9)).await;
    assert_eq!(
        s.deliver(&private(ALI, 31, "/ask slow?")).await.as_str(),
        "deferred"
    );
    let trigger = s.trigger();
    let mut dying = worker(&s, Duration::from_secs(8)).await;
    let batch = trigger.receive(1).await.expect("the deferred update");
    dying
        .runtime_api
        .queue(Invocation::new("dying", batch.event.to_string()))
        .unwrap();
    until("the model is writing", 20, || s.model.requests().len() == 1).await;
    dying.child.kill().unwrap();
    dying.child.wait().unwrap();
    // Lambda deletes nothing for an invocation that died.
    trigger.settle(&batch, None).await;
    assert!(
        trigger.receive(1).await.is_none(),
        "invisible until its timeout"
    );
    let mut worker = worker(&s, Duration::from_secs(8)).await;
    // Back after its visibility timeout (9 s); bounded at twice that.
    let again = tokio::time::timeout(Duration::from_secs(18), async {
        loop {
            match trigger.receive(1).await {
                Some(batch) => break batch,
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await
    .expect("the message comes back after its visibility timeout");
    assert_eq!(
        again.event["Records"][0]["attributes"]["ApproximateReceiveCount"],
        "2"
    );
    let answer = worker.answer(&again.event).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    trigger.settle(&again, Some(&answer)).await;
    assert_eq!(s.sent_to(ALI), [answer_of(10)]);
    assert_eq!(s.model.requests().len(), 2, "asked again after the death");
    assert_eq!(s.moto.queue_depth(&s.queue.url).await, 0);
}
