//! Two function processes sharing one DynamoDB table on moto's server, each
//! the real `webhook` binary under a Lambda Runtime API, as two Lambda
//! instances are: one answers, the other recognises the repeat; one is
//! killed between its send and its record, the other answers after the
//! lease.

use crate::helpers::event_with;
use crate::helpers::FunctionProcess;
use lambda_runtime_api::Invocation;
use serde_json::{json, Value};
use std::time::Duration;
use telegram_stand_in::{Fault, Options, StandIn};
use testkit::{until, Moto};
use tokio::time::Instant;

const TABLE: &str = "two-instances";
const CHAT: i64 = 5_550_077;

/// One function process on the shared table, as a Lambda instance.
async fn instance(moto: &Moto, stand_in: &StandIn, timeout: Duration) -> FunctionProcess {
    FunctionProcess::start(
        moto,
        stand_in,
        timeout,
        &[("BOT_STORE_TABLE", TABLE.to_owned())],
    )
    .await
}

/// Hands the function the event: its answer's status, and the answer.
async fn invoke(instance: &mut FunctionProcess, event: &Value) -> (i64, Value) {
    let answer = instance.answer(event).await;
    (answer["statusCode"].as_i64().unwrap(), answer)
}

fn message(update_id: i64, text: &str) -> Value {
    let mut message = json!({
        "message_id": update_id, "date": 1_795_687_200,
        "from": {"id": CHAT, "is_bot": false, "first_name": "Ali"},
        "chat": {"id": CHAT, "type": "private", "first_name": "Ali"},
        "text": text
    });
    if text.starts_with('/') {
        message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": text.len()}]);
    }
    json!({"update_id": update_id, "message": message})
}

async fn setup() -> (Moto, StandIn) {
    let moto = Moto::start().await;
    moto.create_table(TABLE).await;
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    (moto, stand_in)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_function_processes_share_the_chats_memory_and_answer_each_update_once() {
    let (moto, stand_in) = setup().await;
    let mut a = instance(&moto, &stand_in, Duration::from_secs(10)).await;
    let mut b = instance(&moto, &stand_in, Duration::from_secs(10)).await;
    let updates = [
        message(1_001, "/start"),
        message(1_002, "hi"),
        message(1_003, "/count"),
    ];
    for (i, update) in updates.iter().enumerate() {
        stand_in.observe_update(update);
        let (first, second) = if i % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        assert_eq!(invoke(first, &event_with(update)).await.0, 200);
        // Telegram delivers it again, to the other instance.
        assert_eq!(invoke(second, &event_with(update)).await.0, 200);
    }
    let replies = testkit::texts(&stand_in.sent_messages());
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert_eq!(replies[2], "This chat has sent 2 messages since /start.");
    assert_eq!(
        stand_in.calls_to("sendMessage").len(),
        3,
        "no call for a repeat"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_between_its_send_and_its_record_is_answered_again_after_the_lease() {
    let (moto, stand_in) = setup().await;
    // A 3 s function timeout: the lease ends a second after the deadline.
    let mut a = instance(&moto, &stand_in, Duration::from_secs(3)).await;
    let mut b = instance(&moto, &stand_in, Duration::from_secs(3)).await;
    let update = message(2_001, "hello");
    stand_in.observe_update(&update);
    stand_in.inject("sendMessage", Fault::SlowAnswer { millis: 30_000 });
    a.runtime_api
        .queue(Invocation::new("dying", event_with(&update).to_string()))
        .unwrap();
    until("the reply went out", 20, || {
        stand_in.sent_messages().len() == 1
    })
    .await;
    a.child.kill().unwrap(); // SIGKILL, before it could record the send
    a.child.wait().unwrap();
    let killed_at = Instant::now();
    let (status, answer) = invoke(&mut b, &event_with(&update)).await;
    assert_eq!(status, 503, "the lease is live: {answer}");
    let retry_after: u64 = answer["headers"]["retry-after"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after));
    // As Telegram would: deliver again until it is accepted.
    let mut status = status;
    while status == 503 {
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "the lease never ended"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        status = invoke(&mut b, &event_with(&update)).await.0;
    }
    assert_eq!(status, 200);
    // The window no store closes: the reply sent but not recorded went out
    // again (README, "Memory and exactly-once").
    assert_eq!(stand_in.sent_messages().len(), 2);
    assert_eq!(invoke(&mut b, &event_with(&update)).await.0, 200);
    assert_eq!(stand_in.sent_messages().len(), 2, "and never a third time");
}
