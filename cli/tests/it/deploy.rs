//! scripts/deploy with stand-ins for `aws`, `sam` and `cargo` on PATH and the
//! Telegram stand-in as the Bot API: the order of calls, their arguments,
//! and that the first failure stops it with a clear message.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use telegram_stand_in::{Options, StandIn};
use testkit::stderr;

const URL: &str = "https://abc123.execute-api.eu-west-1.amazonaws.com/webhook";

/// A fake `aws`: logs its arguments, shows what a file:// value holds, and
/// answers the calls the script makes. FAKE_FAIL names a call to fail,
/// FAKE_NO_SECRET makes the stored secret absent.
const FAKE_AWS: &str = r#"#!/usr/bin/env bash
echo "aws $*" >> "$FAKE_LOG"
for arg in "$@"; do
  if [[ "$arg" == file://* ]]; then echo "  value: $(cat "${arg#file://}")" >> "$FAKE_LOG"; fi
done
call="$1 $2"
if [[ -n "${FAKE_FAIL:-}" && "aws $call" == "$FAKE_FAIL" ]]; then
  echo "An error occurred (AccessDeniedException) when calling the operation" >&2; exit 254
fi
case "$call" in
  "ssm get-parameter")
    if [[ "$*" == *webhook-secret* ]]; then
      if [[ -n "${FAKE_NO_SECRET:-}" ]]; then echo "An error occurred (ParameterNotFound)" >&2; exit 254; fi
      echo "stored_secret-123"
    else echo "/telegram-bot/bot-token"; fi ;;
  "cloudformation describe-stacks")
    if [[ "$*" == *MemoryTableName* ]]; then echo "${FAKE_TABLE:-telegram-bot-MemoryTable-1A2B3C}"; else echo "$FAKE_URL"; fi ;;
esac
"#;

/// A fake `sam`: logs its arguments and the deploy parameters it was given.
const FAKE_SAM: &str = r#"#!/usr/bin/env bash
echo "sam $*" >> "$FAKE_LOG"
if [[ -n "${FAKE_FAIL:-}" && "sam $1" == "$FAKE_FAIL" ]]; then echo "Error: Build Failed" >&2; exit 1; fi
if [[ "$1" == deploy ]]; then
  while [[ $# -gt 0 ]]; do
    if [[ "$1" == --config-file ]]; then grep parameter_overrides "$2" | sed 's/^/  /' >> "$FAKE_LOG"; fi
    shift
  done
fi
"#;

const FAKE_CARGO: &str = r#"#!/usr/bin/env bash
if [[ "$1" == lambda ]]; then echo "cargo-lambda 1.9.2"; exit 0; fi
echo "unexpected cargo $*" >&2; exit 1
"#;

struct Fakes {
    dir: PathBuf,
    log: PathBuf,
}

fn fakes(tools: &[(&str, &str)]) -> Fakes {
    let dir = std::env::temp_dir().join(format!(
        "deploy-fakes-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, script) in tools {
        let path = dir.join(name);
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let log = dir.join("calls.log");
    std::fs::write(&log, "").unwrap();
    Fakes { dir, log }
}

impl Fakes {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Fakes {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn all_fakes() -> Fakes {
    fakes(&[("aws", FAKE_AWS), ("sam", FAKE_SAM), ("cargo", FAKE_CARGO)])
}

async fn deploy(fakes: &Fakes, stand_in: &StandIn, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/deploy");
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(script)
        .args(args)
        .env_clear()
        // The fakes, then only what bash itself needs.
        .env("PATH", format!("{}:/usr/bin:/bin", fakes.dir.display()))
        .env("FAKE_LOG", &fakes.log)
        .env("FAKE_URL", URL)
        .env("BOT_BIN", env!("CARGO_BIN_EXE_bot"))
        .env("TELEGRAM_API_BASE_URL", stand_in.base_url())
        .env("DEPLOY_VERIFY_WAIT", "0")
        .kill_on_drop(true);
    for (k, v) in envs {
        command.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("deploy finishes within 60 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_deploy_stores_the_token_builds_deploys_and_sets_the_webhook() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    let output = deploy(
        &fakes,
        &stand_in,
        &["--store-token", "--region", "eu-west-1"],
        &[("TELEGRAM_BOT_TOKEN", &token), ("FAKE_NO_SECRET", "1")],
    )
    .await;
    assert!(
        output.status.success(),
        "{}\n{}",
        stderr(&output),
        fakes.log()
    );
    let log = fakes.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines[0].starts_with("aws ssm put-parameter --name /telegram-bot/bot-token --type SecureString --overwrite --value file://"), "{log}");
    assert!(lines[0].ends_with("--region eu-west-1"), "{log}");
    assert_eq!(lines[1], format!("  value: {token}"));
    assert!(
        lines[2].starts_with(
            "aws ssm get-parameter --name /telegram-bot/webhook-secret --with-decryption"
        ),
        "{log}"
    );
    assert!(
        lines[3].starts_with("aws ssm put-parameter --name /telegram-bot/webhook-secret"),
        "{log}"
    );
    let secret = lines[4].strip_prefix("  value: ").unwrap().to_owned();
    assert_eq!(secret.len(), 48);
    assert!(secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    assert_eq!(
        lines[5],
        "sam build --parameter-overrides Architecture=arm64"
    );
    assert!(lines[6].starts_with("sam deploy --config-file "), "{log}");
    assert!(lines[6].ends_with("--stack-name telegram-bot --capabilities CAPABILITY_IAM --resolve-s3 --no-confirm-changeset --no-fail-on-empty-changeset --region eu-west-1"), "{log}");
    assert_eq!(
        lines[7],
        format!("  parameter_overrides = \"Architecture=\\\"arm64\\\" EndpointType=\\\"HttpApi\\\" BotTokenParameter=\\\"/telegram-bot/bot-token\\\" BotUsername=\\\"EchoLambdaBot\\\" ReservedConcurrency=\\\"0\\\" Memory=\\\"DynamoDB\\\" WebhookSecret=\\\"{secret}\\\"\"")
    );
    assert!(
        lines[8].starts_with("aws cloudformation describe-stacks --stack-name telegram-bot"),
        "{log}"
    );
    assert_eq!(lines.len(), 9, "{log}");
    // No secret on any command line.
    for line in lines.iter().filter(|l| !l.starts_with(' ')) {
        assert!(!line.contains(&secret) && !line.contains(&token), "{line}");
    }
    let methods: Vec<String> = stand_in.calls().iter().map(|c| c.method.clone()).collect();
    assert_eq!(methods, ["getMe", "setWebhook", "getWebhookInfo"]);
    assert_eq!(
        stand_in.calls_to("setWebhook")[0],
        json!({
            "url": URL, "secret_token": secret, "allowed_updates": ["message", "callback_query"],
            "max_connections": 40, "drop_pending_updates": false
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_keeps_the_stored_secret_and_takes_the_options() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    let output = deploy(
        &fakes,
        &stand_in,
        &[
            "--stack-name",
            "my-bot",
            "--endpoint",
            "FunctionUrl",
            "--architecture",
            "x86_64",
            "--bot-username",
            "MyBot",
            "--drop-pending-updates",
            "--reserved-concurrency",
            "40",
        ],
        &[("TELEGRAM_BOT_TOKEN", &token)],
    )
    .await;
    assert!(
        output.status.success(),
        "{}\n{}",
        stderr(&output),
        fakes.log()
    );
    let log = fakes.log();
    assert!(
        log.starts_with("aws ssm get-parameter --name /my-bot/bot-token"),
        "{log}"
    );
    assert!(log.contains("  value: stored_secret-123\n"), "{log}");
    assert!(
        log.contains("sam build --parameter-overrides Architecture=x86_64\n"),
        "{log}"
    );
    assert!(log.contains("EndpointType=\\\"FunctionUrl\\\" BotTokenParameter=\\\"/my-bot/bot-token\\\" BotUsername=\\\"MyBot\\\" ReservedConcurrency=\\\"40\\\" Memory=\\\"DynamoDB\\\" WebhookSecret=\\\"stored_secret-123\\\""), "{log}");
    let set = &stand_in.calls_to("setWebhook")[0];
    assert_eq!(set["secret_token"], "stored_secret-123");
    assert_eq!(set["drop_pending_updates"], true);
    assert!(
        stand_in.calls_to("getMe").is_empty(),
        "the username was given"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tools_are_all_named() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = fakes(&[]);
    let output = deploy(&fakes, &stand_in, &[], &[]).await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("deploy: missing aws: the AWS CLI"), "{err}");
    assert!(
        err.contains("deploy: missing sam: the AWS SAM CLI, pip install aws-sam-cli"),
        "{err}"
    );
    assert!(err.contains("deploy: missing cargo: Rust"), "{err}");
    assert_eq!(fakes.log(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_failure_stops_the_deploy_with_a_clear_message() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let token = stand_in.token().to_owned();
    for (fail, message, last) in [
        (
            "aws ssm put-parameter",
            "deploy: aws ssm put-parameter failed for /telegram-bot/bot-token",
            "aws ssm put-parameter",
        ),
        ("sam build", "deploy: sam build failed", "sam build"),
        ("sam deploy", "deploy: sam deploy failed", "sam deploy"),
    ] {
        let fakes = all_fakes();
        let output = deploy(
            &fakes,
            &stand_in,
            &["--store-token"],
            &[("TELEGRAM_BOT_TOKEN", &token), ("FAKE_FAIL", fail)],
        )
        .await;
        assert_eq!(output.status.code(), Some(1), "{fail}");
        assert!(
            stderr(&output).contains(message),
            "{fail}: {}",
            stderr(&output)
        );
        let log = fakes.log();
        let last_call = log.lines().rfind(|l| !l.starts_with(' ')).unwrap();
        assert!(last_call.starts_with(last), "{fail}: {log}");
    }
    assert!(stand_in.calls_to("setWebhook").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_secret_or_missing_token_stops_before_anything_is_deployed() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    let output = deploy(
        &fakes,
        &stand_in,
        &[],
        &[
            ("TELEGRAM_BOT_TOKEN", &token),
            ("TELEGRAM_WEBHOOK_SECRET", "has spaces!"),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters"));
    assert!(!fakes.log().contains("sam"));
    let output = deploy(&fakes, &stand_in, &["--store-token"], &[]).await;
    assert!(stderr(&output).contains("deploy: --store-token needs TELEGRAM_BOT_TOKEN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_error_after_deploy_fails_loudly() {
    let stand_in = std::sync::Arc::new(StandIn::start(Options::default()).await.unwrap());
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    let watcher = {
        let stand_in = stand_in.clone();
        tokio::spawn(async move {
            for _ in 0..600 {
                if !stand_in.calls_to("setWebhook").is_empty() {
                    stand_in.record_delivery_error(
                        "Wrong response from the webhook: 500 Internal Server Error",
                        0,
                    );
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let output = deploy(
        &fakes,
        &stand_in,
        &[],
        &[("TELEGRAM_BOT_TOKEN", &token), ("DEPLOY_VERIFY_WAIT", "1")],
    )
    .await;
    watcher.await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("Wrong response from the webhook: 500 Internal Server Error"),
        "{err}"
    );
    assert!(
        err.contains("deploy: Telegram reports a problem with the webhook"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_webhook_then_the_stack() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    let output = deploy(
        &fakes,
        &stand_in,
        &["--delete", "--region", "eu-west-1"],
        &[("TELEGRAM_BOT_TOKEN", &token)],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stand_in.calls()[0].method, "deleteWebhook");
    assert_eq!(
        fakes.log(),
        "aws cloudformation describe-stacks --stack-name telegram-bot --query Stacks[0].Outputs[?OutputKey=='MemoryTableName'].OutputValue --output text --region eu-west-1\n\
         sam delete --stack-name telegram-bot --no-prompts --region eu-west-1\n\
         aws ssm delete-parameter --name /telegram-bot/webhook-secret --region eu-west-1\n"
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains("The chats' data stays in the DynamoDB table telegram-bot-MemoryTable-1A2B3C"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_delete_data_also_removes_the_table() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    let output = deploy(
        &fakes,
        &stand_in,
        &["--delete", "--delete-data"],
        &[("TELEGRAM_BOT_TOKEN", &token)],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let log = fakes.log();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"aws dynamodb delete-table --table-name telegram-bot-MemoryTable-1A2B3C"),
        "{log}"
    );
    assert!(
        lines.iter().position(|l| l.starts_with("sam delete"))
            < lines.iter().position(|l| l.starts_with("aws dynamodb"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_and_its_email_are_passed_only_when_given() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    let args = [
        "--bot-username",
        "MyBot",
        "--monitoring",
        "On",
        "--alarm-email",
        "ops@example.com",
    ];
    let output = deploy(&fakes, &stand_in, &args, &[("TELEGRAM_BOT_TOKEN", &token)]).await;
    assert!(
        output.status.success(),
        "{}\n{}",
        stderr(&output),
        fakes.log()
    );
    let log = fakes.log();
    assert!(
        log.contains("WebhookSecret=\\\"stored_secret-123\\\" Monitoring=\\\"On\\\" AlarmEmail=\\\"ops@example.com\\\"\""),
        "{log}"
    );
    for (args, error) in [
        (["--monitoring", "yes"], "--monitoring must be On or Off"),
        (
            ["--alarm-email", "a\"b@c"],
            "--alarm-email needs an address",
        ),
    ] {
        let output = deploy(&fakes, &stand_in, &args, &[]).await;
        assert!(!output.status.success());
        assert!(stderr(&output).contains(error), "{}", stderr(&output));
    }
}
