//! The webhook function end to end: the real handler, events in the shape API
//! Gateway sends them, and the Telegram stand-in on loopback.

use crate::helpers::{self, event, events_dir, spawn, spawn_with, update_in, Setup, SECRET};

use serde_json::{json, Value};
use std::time::Duration;
use telegram_stand_in::Fault;

const ALI: i64 = 123_456_789;

fn reply(chat_id: i64, text: &str, to: i64) -> Value {
    json!({
        "chat_id": chat_id,
        "text": text,
        "reply_parameters": {"message_id": to, "allow_sending_without_reply": true}
    })
}

/// What each sample event must produce: the status, and the exact
/// sendMessage requests that reach Telegram.
fn expectation(name: &str) -> Option<(i64, Vec<Value>)> {
    let greeting = "Hello, Ali! I echo what you write. Send /help to see what I can do.";
    let help = "I repeat any text you send me.\n\nCommands:\n/start - say hello\n/help - list the commands";
    Some(match name {
        "start" => (200, vec![reply(ALI, greeting, 42)]),
        // The queue's event, answered by the worker: /start, from the queue.
        "queue" => (200, vec![reply(ALI, greeting, 42)]),
        "help" => (200, vec![reply(ALI, help, 43)]),
        "text" => (200, vec![reply(ALI, "You said: Hi!", 44)]),
        "group-command" => (200, vec![reply(-1_001_234_567_890, help, 1501)]),
        "other-bot-command" => (200, vec![]),
        "edited-message" => (200, vec![]),
        "photo" => (
            200,
            vec![reply(
                ALI,
                "I can only read text for now. Send me a message, or /help.",
                45,
            )],
        ),
        "callback-query" => (200, vec![]),
        // Without a store a press is answered and changes nothing.
        "function-url-counter-press" => (200, vec![]),
        "group-photo" => (200, vec![]),
        "forum-topic" => {
            let mut r = reply(-1_009_876_543_210, "You said: Hello from a topic", 88);
            r["message_thread_id"] = json!(77);
            (200, vec![r])
        }
        "long-text" => {
            let update = update_in(&event("long-text")).unwrap();
            let text = update["message"]["text"].as_str().unwrap();
            let mut echoed: String = format!("You said: {text}");
            // Cut to 4095 UTF-16 units plus an ellipsis.
            let mut units = 0;
            echoed = echoed
                .chars()
                .take_while(|c| {
                    units += c.len_utf16();
                    units <= 4095
                })
                .collect();
            echoed.push('…');
            (200, vec![reply(ALI, &echoed, 47)])
        }
        "base64-body" => (200, vec![reply(ALI, "You said: Hi from base64!", 48)]),
        "function-url-text" => (
            200,
            vec![reply(ALI, "You said: Hi via a Function URL!", 52)],
        ),
        // Without a model named, /ask is text like any other; with one
        // (ASSISTANT_MODEL), the model answers (tests/it/assistant.rs).
        "ask" => (
            200,
            vec![reply(ALI, "You said: /ask What is a webhook?", 60)],
        ),
        "wrong-secret" | "missing-secret" => (401, vec![]),
        "malformed-body" => (200, vec![]),
        // The schedule's event: getWebhookInfo, never a message.
        "health-check" => (200, vec![]),
        // The alarms' topic: told in the admin chat, and there is none here.
        "alarm" => (200, vec![]),
        _ => return None,
    })
}

#[tokio::test]
async fn every_sample_event_gets_its_status_and_exact_replies() {
    let mut names: Vec<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 14, "{names:?}");
    for name in names {
        let (status, expected) =
            expectation(&name).unwrap_or_else(|| panic!("events/{name}.json has no expectation"));
        let test = spawn().await;
        let event = event(&name);
        test.observe(&event);
        let answer = match name.as_str() {
            // The worker answers with the messages to receive again.
            "queue" => {
                let batch = test.invoke_raw(event, Duration::from_secs(10)).await;
                assert_eq!(batch, json!({"batchItemFailures": []}), "events/queue.json");
                // Nothing goes back to an HTTP caller: as if 200.
                helpers::Response {
                    status: 200,
                    retry_after: None,
                    allow: None,
                    body: String::new(),
                }
            }
            _ => test.invoke(event).await,
        };
        assert_eq!(answer.status, status, "events/{name}.json: {answer:?}");
        assert_eq!(
            test.stand_in.sent_messages(),
            expected,
            "events/{name}.json"
        );
        let attempted = test.stand_in.calls_to("sendMessage").len();
        assert_eq!(
            attempted,
            expected.len(),
            "events/{name}.json: no failed attempts"
        );
        test.assert_token_not_logged();
    }
}

#[tokio::test]
async fn wrong_secret_is_rejected_before_parsing() {
    let test = spawn().await;
    let mut event = event("wrong-secret");
    event["body"] = json!("not even json");
    let answer = test.invoke(event).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.body, "unauthorized");
    assert!(test.stand_in.calls().is_empty());
    let line = &test.logs.outcome_lines()[0];
    assert_eq!(line["outcome"], "unauthorized");
    assert!(!test.logs.text().contains("guessed-secret"));
}

#[tokio::test]
async fn a_secret_header_in_other_letter_case_still_authenticates() {
    let test = spawn().await;
    let mut event = event("text");
    let headers = event["headers"].as_object_mut().unwrap();
    let secret = headers.remove("x-telegram-bot-api-secret-token").unwrap();
    headers.insert("X-Telegram-Bot-Api-Secret-Token".to_owned(), secret);
    test.observe(&event);
    assert_eq!(test.invoke(event).await.status, 200);
    assert_eq!(test.stand_in.sent_messages().len(), 1);
}

#[tokio::test]
async fn junk_in_other_headers_does_not_get_past_or_around_the_secret_check() {
    let test = spawn().await;
    let mut event = event("text");
    event["headers"]["x-junk"] = json!("line\r\nbreak\u{0}");
    event["cookies"] = json!([1, 2]);
    event["queryStringParameters"] = json!("not an object");
    test.observe(&event);
    assert_eq!(test.invoke(event.clone()).await.status, 200);
    assert_eq!(test.stand_in.sent_messages().len(), 1);
    event["headers"]["x-telegram-bot-api-secret-token"] = json!("wrong\r\n");
    assert_eq!(test.invoke(event).await.status, 401);
}

#[tokio::test]
async fn a_repeated_secret_header_is_refused() {
    let test = spawn().await;
    let mut event = event("text");
    event["headers"]["x-telegram-bot-api-secret-token"] =
        json!("local-dev-secret,local-dev-secret");
    assert_eq!(test.invoke(event.clone()).await.status, 401);
    event["headers"]["x-telegram-bot-api-secret-token"] = json!("local-dev-secret");
    event["headers"]["X-Telegram-Bot-Api-Secret-Token"] = json!("local-dev-secret");
    assert_eq!(
        test.invoke(event).await.status,
        401,
        "two spellings of the header"
    );
    assert!(test.stand_in.calls().is_empty());
}

#[tokio::test]
async fn a_secret_that_differs_only_in_length_or_case_is_rejected() {
    let test = spawn().await;
    for wrong in [
        "local-dev-secre",
        "local-dev-secrett",
        "LOCAL-DEV-SECRET",
        "",
    ] {
        let mut event = event("text");
        event["headers"]["x-telegram-bot-api-secret-token"] = json!(wrong);
        assert_eq!(test.invoke(event).await.status, 401, "{wrong:?}");
    }
    assert!(test.stand_in.calls().is_empty());
}

#[tokio::test]
async fn only_post_is_allowed() {
    let test = spawn().await;
    for method in ["GET", "PUT", "DELETE", "HEAD", "OPTIONS"] {
        let mut event = event("text");
        event["requestContext"]["http"]["method"] = json!(method);
        let answer = test.invoke(event).await;
        assert_eq!(answer.status, 405, "{method}");
        assert_eq!(answer.allow.as_deref(), Some("POST"));
    }
    assert!(test.stand_in.calls().is_empty());
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_refused() {
    let test = spawn().await;
    let mut big = event("text");
    let padding = "x".repeat(1024 * 1024);
    big["body"] = json!(format!(r#"{{"update_id":1,"padding":"{padding}"}}"#));
    assert_eq!(test.invoke(big).await.status, 413);
    let mut big_base64 = event("base64-body");
    big_base64["body"] = json!("QUFB".repeat(400 * 1024));
    assert_eq!(test.invoke(big_base64).await.status, 413);
    assert!(test.stand_in.calls().is_empty());
}

#[tokio::test]
async fn invalid_base64_is_acknowledged_not_failed() {
    let test = spawn().await;
    let mut event = event("base64-body");
    event["body"] = json!("%%% not base64 %%%");
    let answer = test.invoke(event.clone()).await;
    assert_eq!(answer.status, 200);
    event["headers"]["x-telegram-bot-api-secret-token"] = json!("nope");
    assert_eq!(test.invoke(event).await.status, 401);
    assert!(test.stand_in.calls().is_empty());
}

#[tokio::test]
async fn a_base64_body_that_is_not_utf8_is_acknowledged() {
    let test = spawn().await;
    let mut event = event("base64-body");
    event["body"] = json!("/w==");
    assert_eq!(test.invoke(event).await.status, 200);
    let line = &test.logs.outcome_lines()[0];
    assert_eq!(line["outcome"], "not_an_update");
}

#[tokio::test]
async fn bodies_that_are_not_updates_are_acknowledged_with_a_warning() {
    let test = spawn().await;
    for body in [
        "",
        "null",
        "[]",
        "42",
        "{}",
        r#"{"update_id":"7"}"#,
        r#"{"update_id":1e3}"#,
    ] {
        let mut event = event("text");
        event["body"] = json!(body);
        assert_eq!(test.invoke(event).await.status, 200, "{body:?}");
    }
    let lines = test.logs.outcome_lines();
    assert_eq!(lines.len(), 7);
    assert!(lines
        .iter()
        .all(|l| l["outcome"] == "not_an_update" && l["level"] == "WARN"));
    assert!(test.stand_in.calls().is_empty());
}

#[tokio::test]
async fn events_that_are_not_http_requests_get_a_clean_400() {
    let test = spawn().await;
    for event in [
        json!({}),
        json!([]),
        json!("string"),
        json!({"requestContext": {"http": {"method": 7}}}),
        json!({"Records": [{"eventSource": "aws:sqs"}]}),
    ] {
        assert_eq!(test.invoke(event.clone()).await.status, 400, "{event}");
    }
    // Shaped enough to be judged: no secret, so refused.
    let headless = json!({"requestContext": {"http": {"method": "POST"}}, "headers": {"x": 5}});
    assert_eq!(test.invoke(headless).await.status, 401);
}

#[tokio::test]
async fn an_update_answered_already_is_acknowledged_and_not_answered_again() {
    let test = spawn().await;
    let event = event("text");
    test.observe(&event);
    assert_eq!(test.invoke(event.clone()).await.status, 200);
    assert_eq!(test.invoke(event).await.status, 200);
    assert_eq!(test.stand_in.calls_to("sendMessage").len(), 1);
    let outcomes: Vec<Value> = test
        .logs
        .outcome_lines()
        .iter()
        .map(|l| l["outcome"].clone())
        .collect();
    assert_eq!(outcomes, ["answered", "duplicate"]);
}

#[tokio::test]
async fn one_log_line_per_update_with_its_facts_and_no_text() {
    let test = spawn().await;
    let event = event("text");
    test.observe(&event);
    test.invoke(event).await;
    let lines = test.logs.outcome_lines();
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["update_id"], 700_000_003);
    assert_eq!(line["kind"], "message");
    assert_eq!(line["chat_type"], "private");
    assert_eq!(line["outcome"], "answered");
    assert_eq!(line["level"], "INFO");
    assert!(line["duration_ms"].is_u64());
    assert!(!test.logs.text().contains("Hi!"), "message text logged");
}

// Faults: what Telegram sees when the reply cannot be sent.

async fn answer_with_fault(fault: Fault) -> (helpers::TestWebhook, helpers::Response) {
    let test = spawn().await;
    test.stand_in.inject("sendMessage", fault);
    let event = event("text");
    test.observe(&event);
    let answer = test.invoke(event).await;
    test.assert_token_not_logged();
    (test, answer)
}

#[tokio::test]
async fn internal_server_error_is_retried_and_the_redelivery_is_answered_once() {
    let (test, answer) = answer_with_fault(Fault::internal_error()).await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.retry_after, None);
    assert!(test.stand_in.sent_messages().is_empty());
    // Telegram delivers the update again; now the reply goes out, once.
    assert_eq!(test.invoke(event("text")).await.status, 200);
    assert_eq!(test.stand_in.sent_messages().len(), 1);
    assert_eq!(test.invoke(event("text")).await.status, 200);
    assert_eq!(test.stand_in.sent_messages().len(), 1);
}

#[tokio::test]
async fn bad_gateway_html_is_retried() {
    let (test, answer) = answer_with_fault(Fault::bad_gateway()).await;
    assert_eq!(answer.status, 502);
    assert!(test.stand_in.sent_messages().is_empty());
}

#[tokio::test]
async fn a_short_rate_limit_is_waited_out_and_the_reply_sent() {
    let (test, answer) = answer_with_fault(Fault::too_many_requests(1)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(test.stand_in.calls_to("sendMessage").len(), 2);
    assert_eq!(test.stand_in.sent_messages().len(), 1);
}

#[tokio::test]
async fn a_long_rate_limit_is_passed_on_as_retry_after() {
    let (test, answer) = answer_with_fault(Fault::too_many_requests(60)).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.retry_after.as_deref(), Some("60"));
    assert_eq!(test.stand_in.calls_to("sendMessage").len(), 1);
    assert!(test.stand_in.sent_messages().is_empty());
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_time_left_is_not_waited_for() {
    let test = spawn().await;
    test.stand_in
        .inject("sendMessage", Fault::too_many_requests(3));
    let event = event("text");
    test.observe(&event);
    let answer = test
        .invoke_with_time_left(event, Duration::from_secs(2))
        .await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.retry_after.as_deref(), Some("3"));
}

#[tokio::test]
async fn blocked_by_user_is_acknowledged_not_retried() {
    let (test, answer) = answer_with_fault(Fault::blocked_by_user()).await;
    assert_eq!(answer.status, 200);
    let line = &test.logs.outcome_lines()[0];
    assert_eq!(line["outcome"], "permanent_failure");
    assert_eq!(line["level"], "WARN");
    assert!(test
        .logs
        .text()
        .contains("Forbidden: bot was blocked by the user"));
}

#[tokio::test]
async fn chat_not_found_is_acknowledged_not_retried() {
    let (test, answer) = answer_with_fault(Fault::chat_not_found()).await;
    assert_eq!(answer.status, 200);
    assert!(test.logs.text().contains("Bad Request: chat not found"));
}

#[tokio::test]
async fn a_chat_the_stand_in_never_saw_is_a_permanent_failure() {
    let test = spawn().await;
    // Not observed: the real API would not know this chat either.
    assert_eq!(test.invoke(event("text")).await.status, 200);
    assert!(test.logs.text().contains("Bad Request: chat not found"));
}

#[tokio::test]
async fn a_blocked_chat_is_a_permanent_failure() {
    let test = spawn().await;
    let event = event("text");
    test.observe(&event);
    test.stand_in.block_chat(ALI);
    assert_eq!(test.invoke(event).await.status, 200);
    assert_eq!(test.logs.outcome_lines()[0]["outcome"], "permanent_failure");
}

#[tokio::test]
async fn an_answer_past_the_deadline_becomes_a_clean_5xx_in_time() {
    let test = spawn().await;
    test.stand_in.inject("sendMessage", Fault::slow(5_000));
    let event = event("text");
    test.observe(&event);
    let started = std::time::Instant::now();
    let answer = test
        .invoke_with_time_left(event, Duration::from_millis(1_500))
        .await;
    assert_eq!(answer.status, 502);
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "answered after the deadline: {:?}",
        started.elapsed()
    );
    test.assert_token_not_logged();
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let (test, answer) = answer_with_fault(Fault::Drop).await;
    assert_eq!(answer.status, 502);
    assert!(test.stand_in.sent_messages().is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_the_token_stays_hidden() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let test = spawn_with(Setup {
        base_url: Some(format!("http://127.0.0.1:{port}")),
        ..Setup::default()
    })
    .await;
    let event = event("text");
    assert_eq!(test.invoke(event).await.status, 502);
    test.assert_token_not_logged();
    assert!(test.logs.text().contains("could not connect"));
}

#[tokio::test]
async fn a_wrong_token_is_a_configuration_error_answered_with_500() {
    let test = spawn_with(Setup {
        token: Some("987654321:AAwrong-token_but-well-formed-0000000".to_owned()),
        ..Setup::default()
    })
    .await;
    let event = event("text");
    test.observe(&event);
    assert_eq!(test.invoke(event).await.status, 500);
    let attempts = test.stand_in.calls();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0].method.as_str(), attempts[0].status),
        ("sendMessage", 401)
    );
    let logs = test.logs.text();
    assert!(
        !logs.contains("AAwrong-token_but-well-formed-0000000"),
        "{logs}"
    );
    let line = &test.logs.outcome_lines()[0];
    assert_eq!(line["outcome"], "configuration_failure");
    assert_eq!(line["level"], "ERROR");
}

#[tokio::test]
async fn nothing_is_called_at_cold_start() {
    let test = spawn().await;
    assert!(test.stand_in.calls().is_empty());
}

#[tokio::test]
async fn an_absurd_retry_after_is_capped_not_a_crash() {
    let test = spawn().await;
    test.stand_in
        .inject("sendMessage", Fault::too_many_requests(u64::MAX));
    let event = event("text");
    test.observe(&event);
    let answer = test.invoke(event).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.retry_after.as_deref(), Some("3600"));
}

#[tokio::test]
async fn a_failed_update_is_one_log_line_with_its_error() {
    let test = spawn().await;
    test.stand_in.inject("sendMessage", Fault::internal_error());
    let event = event("text");
    test.observe(&event);
    test.invoke(event).await;
    let about_update: Vec<Value> = test
        .logs
        .lines()
        .into_iter()
        .filter(|l| l["update_id"] == 700_000_003 && l["level"] != "DEBUG")
        .collect();
    assert_eq!(about_update.len(), 1, "{about_update:?}");
    assert_eq!(about_update[0]["outcome"], "retryable_failure");
    let error = about_update[0]["error"].as_str().unwrap();
    assert!(
        error.contains("500") && error.contains("Internal Server Error"),
        "{error}"
    );
}

#[tokio::test]
async fn a_group_upgraded_to_a_supergroup_gets_the_reply_in_the_new_chat() {
    let test = spawn().await;
    let event = event("group-command");
    test.observe(&event);
    let supergroup = -1_009_999_999_999_i64;
    test.stand_in
        .observe_update(&json!({"update_id": 1, "message": {
        "message_id": 1, "date": 1, "text": "x",
        "chat": {"id": supergroup, "type": "supergroup", "title": "Upgraded"}}}));
    test.stand_in
        .inject("sendMessage", Fault::migrated(supergroup));
    assert_eq!(test.invoke(event).await.status, 200);
    let sent = test.stand_in.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["chat_id"], supergroup);
}

#[tokio::test]
async fn the_http_timeout_bounds_a_slow_answer_even_with_time_left() {
    let test = spawn_with(Setup {
        http_timeout_secs: Some("1".to_owned()),
        ..Setup::default()
    })
    .await;
    test.stand_in.inject("sendMessage", Fault::slow(3_000));
    let event = event("text");
    test.observe(&event);
    let started = std::time::Instant::now();
    let answer = test
        .invoke_with_time_left(event, Duration::from_secs(20))
        .await;
    assert_eq!(answer.status, 502);
    assert!(
        started.elapsed() < Duration::from_millis(2_900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn base64_without_padding_or_with_line_breaks_is_decoded() {
    let test = spawn().await;
    let base = event("base64-body");
    test.observe(&base);
    let encoded = base["body"]
        .as_str()
        .unwrap()
        .trim_end_matches('=')
        .to_owned();
    let wrapped: String = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    let mut event = base.clone();
    event["body"] = json!(wrapped);
    assert_eq!(test.invoke(event).await.status, 200);
    assert_eq!(test.stand_in.sent_messages().len(), 1);
}

#[tokio::test]
async fn a_wrong_base_url_path_is_a_configuration_error() {
    let test = spawn().await;
    let test = spawn_with(Setup {
        base_url: Some(format!("{}/not-the-api", test.stand_in.base_url())),
        ..Setup::default()
    })
    .await;
    assert_eq!(test.invoke(event("text")).await.status, 500);
}

#[tokio::test]
async fn the_function_refuses_to_start_without_a_webhook_secret() {
    let config = helpers::config(&[("TELEGRAM_BOT_TOKEN", telegram_stand_in::DEFAULT_TOKEN)]);
    let error = telegram_lambda_bot::webhook::Webhook::new(&config).unwrap_err();
    assert!(
        error.to_string().contains("TELEGRAM_WEBHOOK_SECRET"),
        "{error}"
    );
}

#[tokio::test]
async fn the_secret_in_events_matches_the_test_setup() {
    assert_eq!(
        event("text")["headers"]["x-telegram-bot-api-secret-token"],
        SECRET
    );
}
