//! `bot doctor` against the Telegram stand-in and the real webhook handler
//! served on loopback, the stack read through a fake `aws`: each verdict,
//! the exit status, and that neither the token nor the secret is shown.

use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::bot::{Bot, ALLOWED_UPDATES};
use telegram_lambda_bot::config::Config;
use telegram_lambda_bot::runtime::client::BotApi;
use telegram_lambda_bot::telegram::{BotCommand, SetWebhook};
use telegram_lambda_bot::webhook::{handle_event, Webhook};
use telegram_stand_in::StandIn;
use testkit::{stderr, stdout, Moto};

const SECRET: &str = "doctor-test_secret-42";
const USERNAME: &str = "EchoLambdaBot";

/// What answers at the webhook URL.
#[derive(Clone)]
enum Endpoint {
    /// The real handler, checking `SECRET`, with the bot's memory.
    Function(Arc<Webhook>),
    /// Something that answers this status to every request.
    Status(u16),
    /// Nothing: a loopback port where nothing listens.
    Closed,
}

fn config(stand_in: &StandIn, base_url: &str) -> Config {
    let vars = [
        ("TELEGRAM_BOT_TOKEN", stand_in.token()),
        ("TELEGRAM_API_BASE_URL", base_url),
        ("TELEGRAM_WEBHOOK_SECRET", SECRET),
        ("TELEGRAM_BOT_USERNAME", USERNAME),
    ];
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap()
}

fn function(stand_in: &StandIn) -> Endpoint {
    let webhook = Webhook::new(&config(stand_in, &stand_in.base_url())).unwrap();
    Endpoint::Function(Arc::new(webhook))
}

/// Serves `endpoint` over HTTP on loopback, each request made into the
/// Function URL event Lambda would build. Returns the webhook URL.
async fn serve(endpoint: Endpoint) -> String {
    if let Endpoint::Closed = endpoint {
        return closed_url().await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let endpoint = endpoint.clone();
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let endpoint = endpoint.clone();
                async move {
                    let status = match endpoint {
                        Endpoint::Status(status) => status,
                        Endpoint::Closed => unreachable!("nothing listens"),
                        Endpoint::Function(webhook) => invoke(&webhook, request).await,
                    };
                    let mut response = hyper::Response::new(Full::new(bytes::Bytes::new()));
                    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    format!("http://{addr}/webhook")
}

async fn invoke(webhook: &Webhook, request: hyper::Request<hyper::body::Incoming>) -> u16 {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let event = lambda_runtime_api::function_url_event(&parts, &body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    handle_event(webhook, event, deadline).await.status()
}

/// A loopback URL where nothing listens.
async fn closed_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/webhook")
}

/// Points the stand-in's webhook at `url`, as scripts/deploy does.
async fn set_webhook(stand_in: &StandIn, url: &str) {
    let api = BotApi::new(&config(stand_in, &stand_in.base_url())).unwrap();
    let request = SetWebhook {
        url: url.to_owned(),
        secret_token: Some(SECRET.to_owned()),
        allowed_updates: Some(ALLOWED_UPDATES.iter().map(|k| k.to_string()).collect()),
        ..SetWebhook::default()
    };
    api.set_webhook(&request).await.unwrap();
    stand_in.reset();
}

/// Sets the menu `bot commands set` makes, as scripts/deploy does.
async fn set_code_menu(stand_in: &StandIn) {
    let bot = Bot::new(Some(USERNAME.to_owned())).keeping_state(true);
    let api = BotApi::new(&config(stand_in, &stand_in.base_url())).unwrap();
    api.set_my_commands(&BotCommand::menu(&bot.commands()).unwrap())
        .await
        .unwrap();
    stand_in.reset();
}

async fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bot"));
    command
        .env_clear()
        .arg("doctor")
        .args(args)
        .kill_on_drop(true);
    for (k, v) in envs {
        command.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(40), command.output())
        .await
        .expect("bot doctor finishes within 40 s")
        .unwrap()
}

/// `bot doctor --url URL` with the token, Telegram at `api` and the secret.
async fn doctor(stand_in: &StandIn, api: &str, url: &str) -> Output {
    let envs = [
        ("TELEGRAM_BOT_TOKEN", stand_in.token()),
        ("TELEGRAM_API_BASE_URL", api),
        ("TELEGRAM_WEBHOOK_SECRET", SECRET),
    ];
    run(&["--url", url], &envs).await
}

fn lines(output: &Output) -> Vec<String> {
    stdout(output).lines().map(str::to_owned).collect()
}

/// The line of check `check` (`token`, `webhook`...); the first if several.
fn line(output: &Output, check: &str) -> String {
    let label = format!(" {check}: ");
    lines(output)
        .into_iter()
        .find(|l| l.contains(&label))
        .unwrap_or_else(|| panic!("no {check} line in:\n{}", stdout(output)))
}

/// Neither the token's secret part nor the webhook secret is shown.
fn assert_no_secret(stand_in: &StandIn, output: &Output) {
    let token_secret = stand_in.token().split(':').nth(1).unwrap();
    for text in [stdout(output), stderr(output)] {
        assert!(!text.contains(token_secret), "token shown:\n{text}");
        assert!(!text.contains(SECRET), "webhook secret shown:\n{text}");
    }
}

/// A stand-in whose webhook is what `endpoint` makes, served on loopback,
/// with the code's menu. Returns the webhook URL and the Bot API's base URL.
async fn deployed(endpoint: fn(&StandIn) -> Endpoint) -> (StandIn, String, String) {
    let stand_in = StandIn::start(Default::default()).await.unwrap();
    let url = serve(endpoint(&stand_in)).await;
    set_webhook(&stand_in, &url).await;
    set_code_menu(&stand_in).await;
    let api = stand_in.base_url();
    (stand_in, url, api)
}

/// [`deployed`] with the real function.
async fn healthy() -> (StandIn, String, String) {
    deployed(function).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_bot_passes_every_check_and_the_probe_sends_nothing() {
    let (stand_in, url, api) = healthy().await;
    let output = doctor(&stand_in, &api, &url).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        lines(&output),
        [
            "ok    token: @EchoLambdaBot (id 123456789)".to_owned(),
            format!("ok    webhook: {url} (updates callback_query, message)"),
            "ok    delivery: 0 pending, no delivery error".to_owned(),
            "ok    endpoint: refuses a request without the secret (401)".to_owned(),
            "ok    endpoint: answers a probe press with its own token, Bot API and table (200; nothing shown to anyone)"
                .to_owned(),
            "ok    menu: /start /help /count /counter (as in the code)".to_owned(),
        ]
    );
    assert_eq!(stderr(&output), "");
    assert!(stand_in.sent_messages().is_empty());
    let methods: Vec<String> = stand_in.calls().iter().map(|c| c.method.clone()).collect();
    assert_eq!(
        methods,
        [
            "getMe",
            "getWebhookInfo",
            "answerCallbackQuery",
            "getMyCommands",
            "getMyCommands",
            "getMyCommands",
            "getMyCommands"
        ],
        "the function answered the probe press itself; the menus of the scopes that outrank the default were read"
    );
    let answer = &stand_in.calls()[2];
    assert_eq!(
        (answer.params["callback_query_id"].as_str(), answer.status),
        (Some("0"), 400),
        "a query id Telegram refuses: nobody sees an answer"
    );
    assert_no_secret(&stand_in, &output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_menu_for_all_private_chats_hides_the_codes_and_fails() {
    let (stand_in, url, api) = healthy().await;
    // Set by another tool: what private chats show instead of the default.
    let set = reqwest::Client::new()
        .post(format!("{api}/bot{}/setMyCommands", stand_in.token()))
        .json(&json!({
            "commands": [{"command": "old", "description": "from another tool"}],
            "scope": {"type": "all_private_chats"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let output = doctor(&stand_in, &api, &url).await;
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        lines(&output).contains(&"FAIL  menu: a menu set for a whole kind of chat hides the code's there: all_private_chats has /old (remove it with deleteMyCommands and that scope)".to_owned()),
        "{}",
        stdout(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_whose_own_token_is_refused_fails_the_probe() {
    // The function deployed with a token Telegram no longer takes (revoked
    // in @BotFather), while the shell's token works.
    let revoked = |stand_in: &StandIn| {
        let base_url = stand_in.base_url();
        let config = Config::from_lookup(|name| match name {
            "TELEGRAM_BOT_TOKEN" => {
                Some("123456789:AAHrevokedTokenOfThisBot_0000000000".to_owned())
            }
            "TELEGRAM_API_BASE_URL" => Some(base_url.clone()),
            "TELEGRAM_WEBHOOK_SECRET" => Some(SECRET.to_owned()),
            _ => None,
        })
        .unwrap();
        Endpoint::Function(Arc::new(Webhook::new(&config).unwrap()))
    };
    let (stand_in, url, api) = deployed(revoked).await;
    let output = doctor(&stand_in, &api, &url).await;
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        lines(&output).contains(&"FAIL  endpoint: failed a probe press (500): the function's token, Bot API URL or table does not work; its log line says which".to_owned()),
        "{}",
        stdout(&output)
    );
    assert!(stand_in.sent_messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_menu_that_is_not_the_codes_fails_and_says_how_to_fix_it() {
    let stand_in = StandIn::start(Default::default()).await.unwrap();
    let url = serve(function(&stand_in)).await;
    set_webhook(&stand_in, &url).await;
    let output = doctor(&stand_in, &stand_in.base_url(), &url).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        line(&output, "menu"),
        "FAIL  menu: Telegram shows (empty), the code has /start /help /count /counter (run `bot commands set`)"
    );
    assert_eq!(stderr(&output), "bot: 1 check failed\n");
    // A bot without memory has a shorter menu: the longer one is wrong too.
    set_code_menu(&stand_in).await;
    let no_memory = run(
        &["--url", &url, "--no-memory"],
        &[
            ("TELEGRAM_BOT_TOKEN", stand_in.token()),
            ("TELEGRAM_API_BASE_URL", &stand_in.base_url()),
            ("TELEGRAM_WEBHOOK_SECRET", SECRET),
        ],
    )
    .await;
    assert_eq!(
        line(&no_memory, "menu"),
        "FAIL  menu: Telegram shows /start /help /count /counter, the code has /start /help (run `bot commands set --no-memory`)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_set_to_another_url_fails() {
    let (stand_in, url, api) = healthy().await;
    let elsewhere = closed_url().await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // one setWebhook a second
    set_webhook(&stand_in, &elsewhere).await;
    let output = doctor(&stand_in, &api, &url).await;
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert_eq!(
        line(&output, "webhook"),
        format!("FAIL  webhook: Telegram has {elsewhere}, expected {url} (scripts/deploy sets it)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recent_delivery_error_fails_and_an_old_one_is_a_note() {
    let (stand_in, url, api) = healthy().await;
    stand_in.record_delivery_error("Wrong response from the webhook: 502 Bad Gateway", 300);
    let recent = doctor(&stand_in, &api, &url).await;
    assert_eq!(recent.status.code(), Some(1), "{}", stdout(&recent));
    assert_eq!(
        line(&recent, "delivery"),
        "FAIL  delivery: 0 pending; last error 5 min ago: Wrong response from the webhook: 502 Bad Gateway"
    );
    stand_in.record_delivery_error("Wrong response from the webhook: 502 Bad Gateway", 3 * 3600);
    let old = doctor(&stand_in, &api, &url).await;
    assert_eq!(old.status.code(), Some(0), "{}", stdout(&old));
    assert_eq!(
        line(&old, "delivery"),
        "note  delivery: 0 pending; last error 3 h ago (old): Wrong response from the webhook: 502 Bad Gateway"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_does_not_check_the_secret_fails() {
    let (stand_in, open, api) = deployed(|_| Endpoint::Status(200)).await;
    let output = doctor(&stand_in, &api, &open).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        line(&output, "endpoint"),
        "FAIL  endpoint: accepted a request without the secret (200): anyone can post updates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_answers_500_fails() {
    let (stand_in, broken, api) = deployed(|_| Endpoint::Status(500)).await;
    let output = doctor(&stand_in, &api, &broken).await;
    assert_eq!(output.status.code(), Some(1));
    let endpoint: Vec<String> = lines(&output)
        .into_iter()
        .filter(|l| l.contains(" endpoint: "))
        .collect();
    assert_eq!(
        endpoint,
        [
            "FAIL  endpoint: answered 500 to a request without the secret, expected 401",
            "FAIL  endpoint: failed a probe press (500): the function's token, Bot API URL or table does not work; its log line says which",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_not_reached_is_exit_3_when_nothing_else_is_wrong() {
    let (stand_in, closed, api) = deployed(|_| Endpoint::Closed).await;
    let output = doctor(&stand_in, &api, &closed).await;
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    let endpoint = line(&output, "endpoint");
    assert!(
        endpoint.starts_with("FAIL  endpoint: not reached: could not connect"),
        "{endpoint}"
    );
    // One line: the authenticated request would only say so again.
    assert_eq!(stdout(&output).matches(" endpoint: ").count(), 1);
    assert!(
        stderr(&output).contains(&format!("run `bot doctor --url {closed}` later")),
        "{}",
        stderr(&output)
    );
    // With another problem besides, it is a plain failure.
    stand_in.record_delivery_error("Connection refused", 10);
    let worse = doctor(&stand_in, &api, &closed).await;
    assert_eq!(worse.status.code(), Some(1));
}

/// A fake `aws`: logs its arguments; answers describe-stacks with the file
/// FAKE_STACK, get-parameter with FAKE_SECRET, and describes the stack's
/// table as template.yaml makes it unless FAKE_TABLE_KEY names another key
/// (any other table is not found, as AWS says it); fails
/// the call FAKE_FAIL names as AWS does when access is denied.
const FAKE_AWS: &str = r#"#!/usr/bin/env bash
echo "aws $*" >> "$FAKE_LOG"
call="$1 $2"
if [[ "aws $call" == "${FAKE_FAIL:-}" ]]; then
  echo "" >&2
  echo "An error occurred (AccessDeniedException) when calling the operation: User: arn:aws:iam::123456789012:user/ci is not authorized" >&2
  echo "second line" >&2
  exit 254
fi
case "$call" in
  "cloudformation describe-stacks") cat "$FAKE_STACK" ;;
  "ssm get-parameter") echo "$FAKE_SECRET" ;;
  "cloudwatch describe-alarms") echo "${FAKE_ALARMS:-[]}" ;;
  "dynamodb describe-table"|"dynamodb describe-time-to-live")
    if ! grep -q -- "\"$4\"" "$FAKE_STACK"; then
      echo "" >&2
      echo "An error occurred (ResourceNotFoundException) when calling the operation: Requested resource not found: Table: $4 not found" >&2
      exit 254
    fi ;;&
  "dynamodb describe-table") key="${FAKE_TABLE_KEY:-pk}"
    echo "{\"Table\": {\"KeySchema\": [{\"AttributeName\": \"$key\", \"KeyType\": \"HASH\"}], \"AttributeDefinitions\": [{\"AttributeName\": \"$key\", \"AttributeType\": \"S\"}]}}" ;;
  "dynamodb describe-time-to-live") echo '{"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}}' ;;
  *) echo "unexpected: aws $*" >&2; exit 2 ;;
esac
"#;

struct FakeAws {
    dir: PathBuf,
}

impl FakeAws {
    /// The fake, and the stack it describes with these outputs.
    fn new(outputs: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "doctor-fakes-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let aws = dir.join("aws");
        std::fs::write(&aws, FAKE_AWS).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&aws, std::fs::Permissions::from_mode(0o755)).unwrap();
        let outputs: Vec<Value> = outputs
            .iter()
            .map(|(k, v)| json!({"OutputKey": k, "OutputValue": v}))
            .collect();
        // Last deployed at 2026-12-07T04:39:51Z, as CloudFormation says it.
        let stack = json!({"Stacks": [{
            "StackName": "telegram-bot",
            "CreationTime": "2026-12-01T10:00:00.000000+00:00",
            "LastUpdatedTime": "2026-12-07T04:39:51.123000+00:00",
            "Outputs": outputs
        }]});
        std::fs::write(dir.join("stack.json"), stack.to_string()).unwrap();
        std::fs::write(dir.join("calls.log"), "").unwrap();
        FakeAws { dir }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PATH", format!("{}:/usr/bin:/bin", self.dir.display())),
            ("FAKE_LOG", self.dir.join("calls.log").display().to_string()),
            (
                "FAKE_STACK",
                self.dir.join("stack.json").display().to_string(),
            ),
            ("FAKE_SECRET", SECRET.to_owned()),
            // The SDK reads the stack's token parameter: never from the
            // instance metadata endpoint or this machine's profiles.
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", "/nonexistent".to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_owned()),
        ]
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("calls.log")).unwrap()
    }
}

impl Drop for FakeAws {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The outputs scripts/deploy's stack has, with the webhook at `url`.
fn outputs(url: &str, username: &str) -> Vec<(&'static str, String)> {
    vec![
        ("WebhookUrl", url.to_owned()),
        (
            "FunctionName",
            "telegram-bot-WebhookFunction-1A2B".to_owned(),
        ),
        (
            "MemoryTableName",
            "telegram-bot-MemoryTable-3C4D".to_owned(),
        ),
        ("BotUsername", username.to_owned()),
        ("BotTokenParameter", "/telegram-bot/bot-token".to_owned()),
        (
            "WebhookSecretParameter",
            "/telegram-bot/webhook-secret".to_owned(),
        ),
    ]
}

/// `bot doctor` reading the stack through `fake`, with `envs` besides.
async fn doctor_with_stack(fake: &FakeAws, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let fake_env = fake.env();
    let mut all: Vec<(&str, &str)> = fake_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(envs);
    run(args, &all).await
}

fn fake_for(url: &str, username: &str) -> FakeAws {
    let outputs = outputs(url, username);
    let outputs: Vec<(&str, &str)> = outputs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    FakeAws::new(&outputs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_gives_the_url_the_bot_and_the_stored_secret() {
    let (stand_in, url, api) = healthy().await;
    let fake = fake_for(&url, USERNAME);
    let output = doctor_with_stack(
        &fake,
        &["--stack-name", "telegram-bot", "--region", "eu-west-1"],
        &[
            ("TELEGRAM_BOT_TOKEN", stand_in.token()),
            ("TELEGRAM_API_BASE_URL", &api),
        ],
    )
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let mut lines = lines(&output);
    // No AWS credentials here: the shell's token stands in for the stack's.
    assert!(
        lines[2].starts_with("note  token: the stack's token could not be read (TELEGRAM_BOT_TOKEN_PARAMETER /telegram-bot/bot-token: could not read it: no AWS credentials found"),
        "{lines:#?}"
    );
    lines.remove(2);
    assert_eq!(
        lines[0],
        "ok    stack: telegram-bot, function telegram-bot-WebhookFunction-1A2B, memory on"
    );
    assert!(
        lines[..8].iter().all(|l| l.starts_with("ok    ")),
        "{lines:#?}"
    );
    assert!(
        lines.contains(
            &"ok    table: telegram-bot-MemoryTable-3C4D: key pk, TTL on expires_at".to_owned()
        ),
        "{lines:#?}"
    );
    assert_eq!(
        lines[8],
        "note  alarms: none: monitoring is off (scripts/deploy --monitoring On)"
    );
    assert_eq!(lines.len(), 9);
    assert_eq!(
        fake.log(),
        "aws cloudformation describe-stacks --stack-name telegram-bot --output json --region eu-west-1\n\
         aws ssm get-parameter --name /telegram-bot/webhook-secret --with-decryption --query Parameter.Value --output text --region eu-west-1\n\
         aws dynamodb describe-table --table-name telegram-bot-MemoryTable-3C4D --output json --region eu-west-1\n\
         aws dynamodb describe-time-to-live --table-name telegram-bot-MemoryTable-3C4D --output json --region eu-west-1\n"
    );
    assert_no_secret(&stand_in, &output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_whose_key_is_not_the_codes_fails() {
    let (stand_in, url, api) = healthy().await;
    let fake = fake_for(&url, USERNAME);
    let output = doctor_with_stack(
        &fake,
        &["--stack-name", "telegram-bot"],
        &[
            ("TELEGRAM_BOT_TOKEN", stand_in.token()),
            ("TELEGRAM_API_BASE_URL", &api),
            ("FAKE_TABLE_KEY", "id"),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let table = line(&output, "table");
    assert!(
        table.starts_with("FAIL  table: telegram-bot-MemoryTable-3C4D: its key is id (HASH, S); the function needs a partition key pk"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_monitoring_the_alarms_states_are_shown_and_one_firing_fails() {
    let (stand_in, url, api) = healthy().await;
    let mut outputs = outputs(&url, USERNAME);
    outputs.push((
        "DashboardUrl",
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home#dashboards:name=telegram-bot"
            .to_owned(),
    ));
    let outputs: Vec<(&str, &str)> = outputs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let fake = FakeAws::new(&outputs);
    let doctor = |alarms: &'static str, args: &'static [&'static str]| {
        let (token, api) = (stand_in.token().to_owned(), api.clone());
        let fake = &fake;
        async move {
            doctor_with_stack(
                fake,
                args,
                &[
                    ("TELEGRAM_BOT_TOKEN", &token),
                    ("TELEGRAM_API_BASE_URL", &api),
                    ("FAKE_ALARMS", alarms),
                ],
            )
            .await
        }
    };
    let quiet = doctor(r#"[["telegram-bot-errors","OK","2026-12-07T04:00:00.000000+00:00"],["telegram-bot-pending-updates","OK","2026-12-07T04:00:00.000000+00:00"],["telegram-bot-health-check","OK","2026-12-07T04:00:00.000000+00:00"]]"#, &[]).await;
    assert_eq!(quiet.status.code(), Some(0), "{}", stdout(&quiet));
    assert_eq!(line(&quiet, "alarms"), "ok    alarms: 3 OK");
    assert!(fake.log().contains(
        "aws cloudwatch describe-alarms --alarm-names telegram-bot-errors telegram-bot-pending-updates telegram-bot-health-check --query MetricAlarms[].[AlarmName,StateValue,StateUpdatedTimestamp] --output json\n"
    ), "{}", fake.log());
    const BEFORE: &str = r#"[["telegram-bot-errors","OK","2026-12-07T04:00:00Z"],["telegram-bot-pending-updates","ALARM","2026-12-07T04:10:00Z"],["telegram-bot-health-check","OK","2026-12-07T04:00:00Z"]]"#;
    let firing = doctor(BEFORE, &[]).await;
    assert_eq!(firing.status.code(), Some(1));
    assert_eq!(
        line(&firing, "alarms"),
        "FAIL  alarms: telegram-bot-pending-updates in ALARM (README, Operate, says what each means)"
    );
    // Right after a deploy (it passes --errors-since): firing since before
    // the stack's update is old news the deploy may fix...
    let after_deploy = doctor(BEFORE, &["--errors-since", "1"]).await;
    assert_eq!(
        after_deploy.status.code(),
        Some(0),
        "{}",
        stdout(&after_deploy)
    );
    assert_eq!(
        line(&after_deploy, "alarms"),
        "note  alarms: telegram-bot-pending-updates in ALARM since before this deploy, which may fix it: check again in 15 minutes"
    );
    // ...and one that went off after it is the deploy's failure.
    let since_deploy = doctor(r#"[["telegram-bot-errors","ALARM","2026-12-07T04:41:00Z"],["telegram-bot-pending-updates","OK","2026-12-07T04:00:00Z"],["telegram-bot-health-check","OK","2026-12-07T04:00:00Z"]]"#, &["--errors-since", "1"]).await;
    assert_eq!(since_deploy.status.code(), Some(1));
    assert_eq!(
        line(&since_deploy, "alarms"),
        "FAIL  alarms: telegram-bot-errors in ALARM (README, Operate, says what each means)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_another_bot_than_the_stacks_fails() {
    let (stand_in, url, api) = healthy().await;
    let fake = fake_for(&url, "OtherBot");
    let output = doctor_with_stack(
        &fake,
        &[],
        &[
            ("TELEGRAM_BOT_TOKEN", stand_in.token()),
            ("TELEGRAM_API_BASE_URL", &api),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        line(&output, "token"),
        "FAIL  token: it is @EchoLambdaBot's, but the stack is for @OtherBot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_refusing_to_describe_the_stack_is_named_and_nothing_else_runs() {
    let (stand_in, url, api) = healthy().await;
    let fake = fake_for(&url, USERNAME);
    let output = doctor_with_stack(
        &fake,
        &["--stack-name", "my-bot"],
        &[
            ("TELEGRAM_BOT_TOKEN", stand_in.token()),
            ("TELEGRAM_API_BASE_URL", &api),
            ("FAKE_FAIL", "aws cloudformation describe-stacks"),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output),
        "FAIL  stack: my-bot: aws cloudformation describe-stacks failed: An error occurred \
         (AccessDeniedException) when calling the operation: User: \
         arn:aws:iam::123456789012:user/ci is not authorized\n"
    );
    assert!(stand_in.calls().is_empty());
    assert_no_secret(&stand_in, &output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_that_cannot_be_read_fails_the_authenticated_probe_only() {
    let (stand_in, url, api) = healthy().await;
    let fake = fake_for(&url, USERNAME);
    let output = doctor_with_stack(
        &fake,
        &[],
        &[
            ("TELEGRAM_BOT_TOKEN", stand_in.token()),
            ("TELEGRAM_API_BASE_URL", &api),
            ("FAKE_FAIL", "aws ssm get-parameter"),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let endpoint: Vec<String> = lines(&output)
        .into_iter()
        .filter(|l| l.contains(" endpoint: "))
        .collect();
    assert_eq!(
        endpoint,
        [
            "ok    endpoint: refuses a request without the secret (401)",
            "FAIL  endpoint: authenticated request not tried: WebhookSecretParameter \
             /telegram-bot/webhook-secret: aws ssm get-parameter failed: An error occurred \
             (AccessDeniedException) when calling the operation: User: \
             arn:aws:iam::123456789012:user/ci is not authorized",
        ]
    );
    assert_no_secret(&stand_in, &output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_read_from_the_stacks_parameter_as_the_function_reads_it() {
    let moto = Moto::start().await;
    let (stand_in, url, api) = healthy().await;
    moto.put_secure_string("/telegram-bot/bot-token", stand_in.token())
        .await;
    let fake = fake_for(&url, USERNAME);
    let moto_env = moto.env();
    let mut envs: Vec<(&str, &str)> = moto_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    envs.push(("TELEGRAM_API_BASE_URL", &api));
    let output = doctor_with_stack(&fake, &[], &envs).await;
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(
        line(&output, "token"),
        "ok    token: @EchoLambdaBot (id 123456789)"
    );
    assert_no_secret(&stand_in, &output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stacks_token_is_checked_even_with_another_bots_token_in_the_shell() {
    let moto = Moto::start().await;
    let (stand_in, url, api) = healthy().await;
    moto.put_secure_string("/telegram-bot/bot-token", stand_in.token())
        .await;
    let fake = fake_for(&url, USERNAME);
    let moto_env = moto.env();
    let mut envs: Vec<(&str, &str)> = moto_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // A developer's test bot, which the stand-in does not know.
    envs.push((
        "TELEGRAM_BOT_TOKEN",
        "987654321:AAAnother-bot-s-token_0123456789abc",
    ));
    envs.push(("TELEGRAM_API_BASE_URL", &api));
    let output = doctor_with_stack(&fake, &[], &envs).await;
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(
        lines(&output)
            .iter()
            .filter(|l| l.contains(" token: "))
            .collect::<Vec<_>>(),
        ["ok    token: @EchoLambdaBot (id 123456789)"]
    );
    assert_no_secret(&stand_in, &output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_token_that_cannot_be_read_falls_back_to_the_shells_saying_so() {
    let (stand_in, url, api) = healthy().await;
    let fake = fake_for(&url, USERNAME);
    // No credentials at all: the parameter cannot be read.
    let output = doctor_with_stack(
        &fake,
        &["--region", "eu-west-1"],
        &[
            ("TELEGRAM_BOT_TOKEN", stand_in.token()),
            ("TELEGRAM_API_BASE_URL", &api),
        ],
    )
    .await;
    let lines = lines(&output);
    let token: Vec<_> = lines.iter().filter(|l| l.contains(" token: ")).collect();
    assert_eq!(token.len(), 2, "{lines:?}");
    assert_eq!(token[0], "ok    token: @EchoLambdaBot (id 123456789)");
    assert!(
        token[1].starts_with("note  token: the stack's token could not be read (TELEGRAM_BOT_TOKEN_PARAMETER /telegram-bot/bot-token: ")
            && token[1].ends_with("checked with TELEGRAM_BOT_TOKEN from this shell instead, which may be another bot's"),
        "{}",
        token[1]
    );
    assert_no_secret(&stand_in, &output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_whose_certificate_is_not_trusted_fails_rather_than_waits() {
    let (stand_in, _, api) = healthy().await;
    // Any HTTPS server with a certificate from no trusted authority.
    let (untrusted, _ca) = StandIn::start_tls(Default::default()).await.unwrap();
    let url = format!("{}/webhook", untrusted.base_url());
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let output = doctor(&stand_in, &api, &url).await;
    assert_eq!(output.status.code(), Some(1));
    let endpoint = line(&output, "endpoint");
    assert!(
        endpoint.starts_with("FAIL  endpoint: the TLS handshake failed"),
        "{endpoint}{}",
        stderr(&output)
    );
    assert!(untrusted.calls().is_empty());
}
