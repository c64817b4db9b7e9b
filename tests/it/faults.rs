//! The fault matrix: every kind of request at the door and every Bot API
//! failure at each call the function makes, with the status Telegram gets
//! and the log line. The README's "Security and failure behaviour" table
//! is rendered from this matrix and checked against it, so the two cannot
//! drift (`UPDATE_README=1 cargo test --test it fault_matrix` rewrites it).

use crate::helpers::{event, spawn_with, update_in, Setup, TestWebhook};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::runtime::memory::{Leases, Memory};
use telegram_lambda_bot::runtime::store::dynamodb::DynamoDbStore;
use telegram_stand_in::{Fault, Options};

/// What a case does before the event is delivered.
enum Arrange {
    /// Faults for the next sendMessage calls, in order.
    Faults(Vec<Fault>),
    /// The Bot API's port is closed.
    Refused,
    /// The Bot API answers after the invocation's deadline.
    SlowerThanDeadline,
    /// The function holds a token the Bot API does not know.
    WrongToken,
    /// The event is changed first.
    Event(fn(&mut Value)),
    /// The same update is delivered twice; the second answer counts.
    Twice,
    /// `/counter` is shown (the bot has a store), then its +1 is pressed,
    /// with these faults for the next calls to each method.
    Press(Vec<(&'static str, Fault)>),
    /// The bot's DynamoDB table (on moto) or the chat's record in it is
    /// not as the code expects.
    Store(StoreFault),
}

#[derive(Clone, Copy)]
enum StoreFault {
    /// The table's key is not `pk`.
    WrongKeySchema,
    /// The chat's record is at DynamoDB's 400 KB item limit.
    ItemTooLarge,
    /// The chat's record does not parse.
    Unparseable,
}

struct Case {
    what: &'static str,
    arrange: Arrange,
    status: i64,
    retry_after: Option<&'static str>,
    outcome: &'static str,
    level: &'static str,
    replies: usize,
}

fn chat_not_found() -> Fault {
    Fault::chat_not_found()
}

fn matrix() -> Vec<Case> {
    use Arrange::*;
    let case = |what, arrange, status, retry_after, outcome, level, replies| Case {
        what,
        arrange,
        status,
        retry_after,
        outcome,
        level,
        replies,
    };
    vec![
        // At the door.
        case(
            "a valid update",
            Faults(vec![]),
            200,
            None,
            "answered",
            "INFO",
            1,
        ),
        case(
            "the same update again",
            Twice,
            200,
            None,
            "duplicate",
            "INFO",
            1,
        ),
        case(
            "wrong secret",
            Event(|e| e["headers"]["x-telegram-bot-api-secret-token"] = json!("guess")),
            401,
            None,
            "unauthorized",
            "WARN",
            0,
        ),
        case(
            "no secret",
            Event(|e| {
                e["headers"]
                    .as_object_mut()
                    .unwrap()
                    .remove("x-telegram-bot-api-secret-token");
            }),
            401,
            None,
            "unauthorized",
            "WARN",
            0,
        ),
        case(
            "a method other than POST",
            Event(|e| e["requestContext"]["http"]["method"] = json!("GET")),
            405,
            None,
            "method_not_allowed",
            "WARN",
            0,
        ),
        case(
            "a body over 1 MiB",
            Event(|e| e["body"] = json!("x".repeat(1024 * 1024 + 1))),
            413,
            None,
            "payload_too_large",
            "WARN",
            0,
        ),
        case(
            "a body that is not JSON",
            Event(|e| e["body"] = json!("{\"update_id\": 1,")),
            200,
            None,
            "not_an_update",
            "WARN",
            0,
        ),
        case(
            "JSON nested 100,000 deep",
            Event(|e| e["body"] = json!(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)))),
            200,
            None,
            "not_an_update",
            "WARN",
            0,
        ),
        case(
            "JSON without an integer update_id",
            Event(|e| e["body"] = json!("{\"update_id\": \"7\"}")),
            200,
            None,
            "not_an_update",
            "WARN",
            0,
        ),
        case(
            "invalid base64 with isBase64Encoded",
            Event(|e| {
                e["isBase64Encoded"] = json!(true);
                e["body"] = json!("%%%");
            }),
            200,
            None,
            "not_an_update",
            "WARN",
            0,
        ),
        case(
            "an event that is not an HTTP request",
            Event(|e| *e = json!({"Records": []})),
            400,
            None,
            "bad_event",
            "WARN",
            0,
        ),
        // The Bot API's answer to sendMessage.
        case(
            "connection refused",
            Refused,
            502,
            None,
            "retryable_failure",
            "WARN",
            0,
        ),
        case(
            "connection closed before an answer",
            Faults(vec![Fault::Drop]),
            502,
            None,
            "retryable_failure",
            "WARN",
            0,
        ),
        case(
            "connection reset mid-answer (the message went out; the redelivery repeats it)",
            Faults(vec![Fault::Truncated]),
            502,
            None,
            "retryable_failure",
            "WARN",
            1,
        ),
        case(
            "500 Internal Server Error",
            Faults(vec![Fault::internal_error()]),
            502,
            None,
            "retryable_failure",
            "WARN",
            0,
        ),
        case(
            "502 Bad Gateway (an HTML page)",
            Faults(vec![Fault::bad_gateway()]),
            502,
            None,
            "retryable_failure",
            "WARN",
            0,
        ),
        case(
            "403 from a proxy (an HTML page, not Telegram's JSON)",
            Faults(vec![Fault::Html { status: 403 }]),
            502,
            None,
            "retryable_failure",
            "WARN",
            0,
        ),
        case(
            "408 Request Timeout (an HTML page)",
            Faults(vec![Fault::Html { status: 408 }]),
            502,
            None,
            "retryable_failure",
            "WARN",
            0,
        ),
        case(
            "an answer slower than the deadline",
            SlowerThanDeadline,
            502,
            None,
            "retryable_failure",
            "WARN",
            0,
        ),
        case(
            "429, retry_after 1 (fits the time left)",
            Faults(vec![Fault::too_many_requests(1)]),
            200,
            None,
            "answered",
            "INFO",
            1,
        ),
        case(
            "429, retry_after 1, then 500 on the retry",
            Faults(vec![Fault::too_many_requests(1), Fault::internal_error()]),
            502,
            None,
            "retryable_failure",
            "WARN",
            0,
        ),
        case(
            "429, retry_after 60 (does not fit)",
            Faults(vec![Fault::too_many_requests(60)]),
            503,
            Some("60"),
            "retryable_failure",
            "WARN",
            0,
        ),
        case(
            "403 Forbidden: bot was blocked by the user",
            Faults(vec![Fault::blocked_by_user()]),
            200,
            None,
            "permanent_failure",
            "WARN",
            0,
        ),
        case(
            "400 Bad Request: chat not found",
            Faults(vec![chat_not_found()]),
            200,
            None,
            "permanent_failure",
            "WARN",
            0,
        ),
        case(
            "400 group upgraded to a supergroup",
            Faults(vec![Fault::migrated(-1_009_999_999_999)]),
            200,
            None,
            "answered",
            "INFO",
            1,
        ),
        case(
            "400 upgraded, then 403 in the new chat",
            Faults(vec![
                Fault::migrated(-1_009_999_999_999),
                Fault::blocked_by_user(),
            ]),
            200,
            None,
            "permanent_failure",
            "WARN",
            0,
        ),
        case(
            "401 Unauthorized (wrong token)",
            WrongToken,
            500,
            None,
            "configuration_failure",
            "ERROR",
            0,
        ),
        case(
            "404 Not Found (wrong base URL)",
            Faults(vec![Fault::Error {
                status: 404,
                description: "Not Found".into(),
                retry_after: None,
                migrate_to_chat_id: None,
            }]),
            500,
            None,
            "configuration_failure",
            "ERROR",
            0,
        ),
        case(
            "404 as an HTML page (a base URL that is not the Bot API)",
            Faults(vec![Fault::Html { status: 404 }]),
            500,
            None,
            "configuration_failure",
            "ERROR",
            0,
        ),
        case(
            "200 with a body that is not JSON",
            Faults(vec![Fault::Raw {
                status: 200,
                body: "<html>proxy</html>".into(),
            }]),
            500,
            None,
            "configuration_failure",
            "ERROR",
            0,
        ),
        // A button press: answerCallbackQuery first, then editMessageText.
        // `replies` counts the counter's message and the edit.
        case(
            "a button press",
            Press(vec![]),
            200,
            None,
            "answered",
            "INFO",
            2,
        ),
        case(
            "a press whose answerCallbackQuery fails (500)",
            Press(vec![("answerCallbackQuery", Fault::internal_error())]),
            200,
            None,
            "answered",
            "INFO",
            2,
        ),
        case(
            "a press answered too late: query is too old (400)",
            Press(vec![("answerCallbackQuery", bad_request(QUERY_TOO_OLD))]),
            200,
            None,
            "answered",
            "INFO",
            2,
        ),
        case(
            "an edit to what the message says: message is not modified (400)",
            Press(vec![("editMessageText", bad_request(NOT_MODIFIED))]),
            200,
            None,
            "answered",
            "INFO",
            1,
        ),
        case(
            "an edit of a deleted message: message to edit not found (400)",
            Press(vec![(
                "editMessageText",
                bad_request("Bad Request: message to edit not found"),
            )]),
            200,
            None,
            "permanent_failure",
            "WARN",
            1,
        ),
        case(
            "an edit that fails with 500",
            Press(vec![("editMessageText", Fault::internal_error())]),
            502,
            None,
            "retryable_failure",
            "WARN",
            1,
        ),
        // The store.
        case(
            "the table's key schema is not the code's (ValidationException)",
            Store(StoreFault::WrongKeySchema),
            500,
            None,
            "configuration_failure",
            "ERROR",
            0,
        ),
        case(
            "the chat's record is at DynamoDB's 400 KB item limit: set aside",
            Store(StoreFault::ItemTooLarge),
            502,
            None,
            "retryable_failure",
            "WARN",
            0,
        ),
        case(
            "the chat's record does not parse: set aside",
            Store(StoreFault::Unparseable),
            502,
            None,
            "retryable_failure",
            "WARN",
            0,
        ),
    ]
}

/// A table on moto arranged as `fault` says, and the memory on it. The
/// record is the chat's of the sample text event.
async fn store_with(fault: StoreFault) -> (testkit::Moto, Memory) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let moto = testkit::Moto::start().await;
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config());
    let table = "matrix-store";
    match fault {
        // A table made by hand with another key name.
        StoreFault::WrongKeySchema => moto.create_table_keyed(table, "id").await,
        StoreFault::ItemTooLarge | StoreFault::Unparseable => {
            moto.create_table(table).await;
            let chat = update_in(&event("text")).unwrap()["message"]["chat"]["id"]
                .as_i64()
                .unwrap();
            let version = match fault {
                StoreFault::Unparseable => AttributeValue::S("not a number".into()),
                _ => AttributeValue::N("4".into()),
            };
            client
                .put_item()
                .table_name(table)
                .item("pk", AttributeValue::S(format!("chat#{chat}")))
                .item("v", version)
                .item("p", AttributeValue::M(Default::default()))
                .item("d", AttributeValue::M(Default::default()))
                .send()
                .await
                .unwrap();
            if let StoreFault::ItemTooLarge = fault {
                // moto checks the size of a new item, not of a map growing
                // inside one: the proxy answers as DynamoDB would.
                moto.refuse_next("UpdateItem", 400, crate::store_limits::ITEM_TOO_LARGE);
            }
        }
    }
    let memory = Memory::new(
        Arc::new(DynamoDbStore::new(&moto.sdk_config(), table)),
        Leases::Shared,
    );
    (moto, memory)
}

const QUERY_TOO_OLD: &str =
    "Bad Request: query is too old and response timeout expired or query ID is invalid";
const NOT_MODIFIED: &str = "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";

fn bad_request(description: &str) -> Fault {
    Fault::Error {
        status: 400,
        description: description.to_owned(),
        retry_after: None,
        migrate_to_chat_id: None,
    }
}

/// A store for one case: a file of its own.
fn file_memory() -> Memory {
    use std::sync::atomic::{AtomicU64, Ordering};
    use telegram_lambda_bot::runtime::store::file::FileStore;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "fault-matrix-{}-{}.redb",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    let store = FileStore::open(&path).unwrap();
    // The open database is all a case needs: its name goes at once, so
    // that no run leaves a file behind.
    let _ = std::fs::remove_file(&path);
    Memory::new(Arc::new(store), Leases::Shared)
}

/// A token and webhook secret that are easy to spot in output.
pub struct Secrets {
    pub token: &'static str,
    pub webhook_secret: &'static str,
}

/// What a case leaves: the function, its answer, and moto when the case
/// arranged a store of its own.
type Ran = (TestWebhook, crate::helpers::Response, Option<testkit::Moto>);

async fn run(case: &Case) -> Ran {
    run_with(case, None, None).await
}

async fn run_with(case: &Case, secrets: Option<&Secrets>, memory: Option<Memory>) -> Ran {
    let closed_port = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut setup = Setup::default();
    match &case.arrange {
        Arrange::Refused => setup.base_url = Some(format!("http://127.0.0.1:{}", closed_port())),
        Arrange::WrongToken => {
            setup.token = Some("987654321:AAsome-other-bots-token_0000000000".into())
        }
        _ => {}
    }
    let mut options = Options::default();
    if let Some(secrets) = secrets {
        options.token = secrets.token.to_owned();
        setup.secret = Some(secrets.webhook_secret.to_owned());
    }
    setup.stand_in = Some(options);
    let mut moto = None;
    setup.memory = match (&case.arrange, memory) {
        (Arrange::Press(_), None) => Some(file_memory()),
        (Arrange::Store(fault), _) => {
            let (started, memory) = store_with(*fault).await;
            moto = Some(started);
            Some(memory)
        }
        (_, memory) => memory,
    };
    let test = spawn_with(setup).await;
    let mut event = event("text");
    if let Some(secrets) = secrets {
        event["headers"]["x-telegram-bot-api-secret-token"] = json!(secrets.webhook_secret);
    }
    test.observe(&event);
    // The supergroup a migration moves to is known to Telegram too.
    test.stand_in.observe_update(
        &json!({"update_id": 1, "message": {"message_id": 1, "date": 1,
        "chat": {"id": -1_009_999_999_999_i64, "type": "supergroup"}, "text": "x"}}),
    );
    let mut time_left = Duration::from_secs(10);
    match &case.arrange {
        Arrange::Faults(faults) => {
            for fault in faults {
                test.stand_in.inject("sendMessage", fault.clone());
            }
        }
        Arrange::SlowerThanDeadline => {
            test.stand_in.inject("sendMessage", Fault::slow(3_000));
            time_left = Duration::from_millis(1_500);
        }
        Arrange::Event(change) => change(&mut event),
        Arrange::Twice => {
            test.invoke(event.clone()).await;
        }
        Arrange::Press(faults) => {
            let update = update_in(&event).unwrap();
            let chat = update["message"]["chat"]["id"].as_i64().unwrap();
            let mut counter = update.clone();
            counter["message"]["text"] = json!("/counter");
            counter["message"]["entities"] =
                json!([{"type": "bot_command", "offset": 0, "length": 8}]);
            let mut shown = event.clone();
            shown["body"] = json!(counter.to_string());
            assert_eq!(test.invoke(shown).await.status, 200);
            let (update_id, _) = test
                .stand_in
                .press_shown_button(chat, "Ali", chat, "+1")
                .unwrap();
            let press = test
                .stand_in
                .pending_updates()
                .into_iter()
                .find(|u| u["update_id"] == update_id)
                .unwrap();
            event["body"] = json!(press.to_string());
            for (method, fault) in faults {
                test.stand_in.inject(method, fault.clone());
            }
        }
        Arrange::Refused | Arrange::WrongToken | Arrange::Store(_) => {}
    }
    let answer = test.invoke_with_time_left(event, time_left).await;
    (test, answer, moto)
}

/// Runs every case with `secrets`, returning everything logged and answered.
pub async fn output_of_every_case(secrets: &Secrets) -> String {
    let mut output = String::new();
    for case in matrix() {
        let (test, answer, _moto) = run_with(&case, Some(secrets), None).await;
        output.push_str(&test.logs.text());
        output.push_str(&format!("{answer:?}\n{:?}\n", test.webhook));
    }
    output
}

#[tokio::test]
async fn fault_matrix_every_case_gets_its_status_and_log_line() {
    for case in matrix() {
        let (test, answer, _moto) = run(&case).await;
        check(&case, &test, &answer);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_holds_with_the_store_on() {
    let moto = testkit::Moto::start().await;
    for (index, case) in matrix().into_iter().enumerate() {
        let table = format!("matrix-{index}");
        moto.create_table(&table).await;
        let store = DynamoDbStore::new(&moto.sdk_config(), table);
        let memory = Memory::new(Arc::new(store), Leases::Shared);
        let (test, answer, _moto) = run_with(&case, None, Some(memory)).await;
        check(&case, &test, &answer);
    }
}

fn check(case: &Case, test: &TestWebhook, answer: &crate::helpers::Response) {
    {
        assert_eq!(answer.status, case.status, "{}: {answer:?}", case.what);
        assert_eq!(
            answer.retry_after.as_deref(),
            case.retry_after,
            "{}",
            case.what
        );
        let lines = test.logs.outcome_lines();
        let line = lines
            .last()
            .unwrap_or_else(|| panic!("{}: no outcome line", case.what));
        assert_eq!(line["outcome"], case.outcome, "{}: {line}", case.what);
        assert_eq!(line["level"], case.level, "{}: {line}", case.what);
        let edits = test
            .stand_in
            .calls()
            .iter()
            .filter(|c| c.method == "editMessageText" && c.performed)
            .count();
        assert_eq!(
            test.stand_in.sent_messages().len() + edits,
            case.replies,
            "{}",
            case.what
        );
        if case.status == 401 {
            assert!(
                test.stand_in.calls().is_empty(),
                "{}: called the Bot API",
                case.what
            );
        }
        test.assert_token_not_logged();
    }
}

fn telegram_then(case: &Case) -> String {
    match (case.status, case.retry_after) {
        (200..=299, _) => "moves on".to_owned(),
        (500..=599, Some(seconds)) => format!("delivers again after {seconds} s"),
        (500..=599, None) => "delivers again (backoff)".to_owned(),
        _ => "— (not from Telegram)".to_owned(),
    }
}

fn render(cases: &[Case]) -> String {
    let mut table = String::from(
        "| request, or the Bot API's answer to the call it makes | status | Telegram then | log line (`outcome`, level) |\n|---|---|---|---|\n",
    );
    for case in cases {
        let status = match case.retry_after {
            Some(seconds) => format!("{} + `Retry-After: {seconds}`", case.status),
            None => case.status.to_string(),
        };
        table.push_str(&format!(
            "| {} | {} | {} | `{}` {} |\n",
            case.what,
            status,
            telegram_then(case),
            case.outcome,
            case.level
        ));
    }
    table
}

#[test]
fn fault_matrix_matches_the_readme_table() {
    const START: &str = "<!-- fault-matrix:start (generated by tests/it/faults.rs) -->\n";
    const END: &str = "<!-- fault-matrix:end -->";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let table = render(&matrix());
    let (Some(start), Some(end)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md lacks the fault-matrix markers");
    };
    let current = &readme[start + START.len()..end];
    if current != table {
        if std::env::var_os("UPDATE_README").is_some() {
            let updated = format!(
                "{}{}{}",
                &readme[..start + START.len()],
                table,
                &readme[end..]
            );
            std::fs::write(&path, updated).unwrap();
        } else {
            panic!("README.md's fault table is out of date; run UPDATE_README=1 cargo test --test it fault_matrix\n\nexpected:\n{table}");
        }
    }
}
