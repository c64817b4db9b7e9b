//! Throughput of slow answers, inline against deferred, side by side in one
//! run: 200 updates from 200 chats, each answered by the fake model in
//! 5 s, delivered by the stand-in's webhook as Telegram delivers (one
//! connection per update in flight, at most `max_connections` 40).
//! Inline, each update holds its connection while the model writes;
//! deferred, the webhook puts it on moto's SQS FIFO queue and answers 200,
//! and a pool of local workers (the same handler, given the queue's event,
//! as Lambda's trigger would) answers it.
//!
//! `cargo bench --bench deferral` (moto_server as for the tests:
//! scripts/test installs it into target/tools). Prints a table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http_body_util::{BodyExt, Full};
use lambda_runtime::LambdaEvent;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::bot::Bot;
use telegram_lambda_bot::config::Config;
use telegram_lambda_bot::runtime::client::BotApi;
use telegram_lambda_bot::runtime::memory::Memory;
use telegram_lambda_bot::runtime::queue::Queue;
use telegram_lambda_bot::telegram::SetWebhook;
use telegram_lambda_bot::webhook::{function_handler, handle_event, Webhook};
use telegram_stand_in::{FakeModel, ModelOptions, Options, StandIn, FAKE_MODEL_KEY};
use testkit::{Moto, Trigger};
use tokio::time::Instant;

const CHATS: i64 = 200;
/// Telegram's default; at most 100.
const CONNECTIONS: u8 = 40;
/// Local workers answering the queue at once, in two runs (Lambda scales
/// the worker to the chats with work).
const WORKERS: [usize; 2] = [100, 200];
/// 10 words, 500 ms apart: a 5 s answer.
const WORDS: usize = 10;
const WORD_EVERY: Duration = Duration::from_millis(500);
const SECRET: &str = "bench-secret-bench-secret-bench-secret";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Inline,
    /// With this many local workers answering the queue at once.
    Deferred(usize),
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("{CHATS} updates from {CHATS} chats, each answered in {:?} by the fake model, max_connections {CONNECTIONS}", WORD_EVERY * WORDS as u32);
    println!();
    println!("| answered | wall time | updates per second | Telegram's connection held per update: median (fastest) |");
    println!("|---|---|---|---|");
    let modes = std::iter::once(Mode::Inline).chain(WORKERS.map(Mode::Deferred));
    for mode in modes {
        let (wall, held) = run(mode).await;
        let name = match mode {
            Mode::Inline => "inline".to_owned(),
            Mode::Deferred(workers) => format!("deferred, {workers} workers"),
        };
        println!(
            "| {name} | {:.1} s | {:.1} | {} ms ({} ms) |",
            wall.as_secs_f64(),
            CHATS as f64 / wall.as_secs_f64(),
            held[held.len() / 2].as_millis(),
            held[0].as_millis(),
        );
    }
}

/// Delivers the updates and waits for every answer: the wall time, and the
/// times Telegram's connection was held, sorted.
async fn run(mode: Mode) -> (Duration, Vec<Duration>) {
    let moto = Moto::start().await;
    let queue = moto
        .create_fifo_queue("bench", Duration::from_secs(900), 5)
        .await;
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let model = FakeModel::start(ModelOptions {
        answer: Some((1..=WORDS).map(|n| format!("word{n} ")).collect()),
        piece_interval: WORD_EVERY,
        ..ModelOptions::default()
    })
    .await
    .unwrap();
    let (base_url, model_url) = (stand_in.base_url(), model.base_url());
    let mut vars = vec![
        ("TELEGRAM_BOT_TOKEN", stand_in.token().to_owned()),
        ("TELEGRAM_API_BASE_URL", base_url),
        ("TELEGRAM_WEBHOOK_SECRET", SECRET.to_owned()),
        ("ASSISTANT_MODEL", "fake-1".to_owned()),
        ("ASSISTANT_BASE_URL", model_url),
        ("ASSISTANT_API_KEY", FAKE_MODEL_KEY.to_owned()),
    ];
    if let Mode::Deferred(_) = mode {
        vars.push(("BOT_QUEUE_URL", queue.url.clone()));
        vars.push(("BOT_DEAD_LETTER_QUEUE_URL", queue.dead_letters.clone()));
    }
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let mut config = Config::from_lookup(lookup).unwrap();
    config.read_secrets(&[], lookup).unwrap();
    // SQS straight to moto: its proxy takes one request at a time, for
    // DynamoDB's atomic writes, which the queue does not need.
    let sdk = testkit::sdk_config(&moto.direct);
    // The process's own records for both: moto answers one request at a
    // time, and would measure itself rather than the webhook.
    let memory = Memory::in_process();
    let mut webhook = Webhook::for_bot(&config, Bot::from_config(&config))
        .unwrap()
        .with_memory(memory);
    if let Some(queue_config) = config.queue.clone() {
        let sqs = Queue::new(&sdk, &queue.url, Some(queue.dead_letters.clone()));
        webhook = webhook.with_queue(sqs, queue_config);
    }
    let webhook = Arc::new(webhook);
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let url = serve(webhook.clone(), held.clone()).await;
    BotApi::new(&config)
        .unwrap()
        .set_webhook(&SetWebhook {
            url,
            secret_token: Some(SECRET.to_owned()),
            allowed_updates: Some(vec!["message".to_owned()]),
            max_connections: Some(CONNECTIONS),
            ..SetWebhook::default()
        })
        .await
        .unwrap();

    let started = Instant::now();
    for chat in 1..=CHATS {
        stand_in.enqueue_update(json!({"update_id": chat, "message": {
            "message_id": 1, "date": unix_now(),
            "from": {"id": chat, "is_bot": false, "first_name": "Ali"},
            "chat": {"id": chat, "type": "private", "first_name": "Ali"},
            "text": "what is a queue?"
        }}));
    }
    let until = started + Duration::from_secs(600);
    let answered = || stand_in.sent_messages().len() >= CHATS as usize;
    if let Mode::Deferred(workers) = mode {
        // Lambda's trigger: one poller, each message its own invocation,
        // at most WORKERS at once.
        let trigger = Arc::new(Trigger::direct(&moto, &queue));
        let running = Arc::new(tokio::sync::Semaphore::new(workers));
        while !answered() {
            assert!(
                Instant::now() < until,
                "not every chat was answered in 10 minutes"
            );
            let Some(batch) = trigger.receive(10).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            for one in batch.split() {
                let permit = running.clone().acquire_owned().await.unwrap();
                let (trigger, webhook) = (trigger.clone(), webhook.clone());
                tokio::spawn(async move {
                    let answer = invoke(&webhook, &one.event).await;
                    trigger.settle(&one, Some(&answer)).await;
                    drop(permit);
                });
            }
        }
    }
    while !answered() {
        assert!(
            Instant::now() < until,
            "not every chat was answered in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = started.elapsed();
    let mut held = held.lock().unwrap().clone();
    held.sort();
    (wall, held)
}

/// The handler behind a Function URL-like front on loopback, each request
/// given 25 s (the HTTP API's timeout); records how long each was held.
async fn serve(webhook: Arc<Webhook>, held: Arc<std::sync::Mutex<Vec<Duration>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (webhook, held) = (webhook.clone(), held.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let (webhook, held) = (webhook.clone(), held.clone());
                        async move {
                            let started = Instant::now();
                            let (parts, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let event = lambda_runtime_api::function_url_event(&parts, &body);
                            let deadline = Instant::now() + Duration::from_secs(25);
                            let verdict = handle_event(&webhook, event, deadline).await;
                            held.lock().unwrap().push(started.elapsed());
                            if std::env::var_os("BENCH_DEBUG").is_some() {
                                eprintln!("{}", verdict.as_str());
                            }
                            let mut response = hyper::Response::new(Full::new(bytes::Bytes::new()));
                            *response.status_mut() =
                                hyper::StatusCode::from_u16(verdict.status()).unwrap();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}/")
}

/// The worker's invocation with the queue's event, with its 150 s.
async fn invoke(webhook: &Webhook, event: &Value) -> Value {
    let mut context = lambda_runtime::Context::default();
    let now_ms = u64::try_from(unix_now()).unwrap() * 1000;
    context.deadline = now_ms + 150_000;
    function_handler(webhook, LambdaEvent::new(event.clone(), context))
        .await
        .unwrap()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
