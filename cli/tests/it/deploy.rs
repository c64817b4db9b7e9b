//! scripts/deploy with stand-ins for `aws`, `sam` and `cargo` on PATH, the
//! real `bot` behind a wrapper that logs its calls, and the Telegram
//! stand-in as the Bot API (--api-base-url): the order of calls, their
//! arguments, what each tool's environment holds, and that the first
//! failure stops it with a clear message.

use crate::helpers::Terminal;
use portable_pty::CommandBuilder;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use telegram_stand_in::{Fault, Options, StandIn};
use testkit::{stderr, stdout};

/// A fake `aws` that keeps a Parameter Store in a directory ($FAKE_SSM: one
/// file per parameter, "version value") and the stacks in another (stacks/,
/// beside it: <name>.status and <name>.parameters, "Key=Value" lines), logs
/// its arguments (and what a file:// value holds), and fails as the real
/// CLI does: exit 254 and "An error occurred (Code) when calling the
/// Operation operation: ...". FAKE_FAIL names a call to fail ("aws ssm
/// get-parameter"), FAKE_FAIL_ON limits it to calls naming that text,
/// FAKE_FAIL_CODE picks the error (AccessDeniedException by default). Each
/// variable FAKE_SECRET_NAMES names that is in its environment is logged: a
/// secret passed on (by the script, or by `bot doctor`, which runs `aws`).
const FAKE_AWS: &str = r#"#!/usr/bin/env bash
echo "aws $*" >> "$FAKE_LOG"
by=""; [[ -z "${FAKE_RUN_BY_BOT:-}" ]] || by=", run by bot,"
for name in ${FAKE_SECRET_NAMES:-}; do [[ -z "${!name:-}" ]] || echo "  aws$by was given the secret $name" >> "$FAKE_LOG"; done
for arg in "$@"; do
  if [[ "$arg" == file://* ]]; then echo "  value: $(cat "${arg#file://}")" >> "$FAKE_LOG"; fi
done
call="$1 $2" waiter="${3:-}"
operation() { case "$call" in
  "ssm get-parameter") echo GetParameter ;; "ssm put-parameter") echo PutParameter ;;
  "ssm delete-parameter") echo DeleteParameter ;; "cloudwatch describe-alarms") echo DescribeAlarms ;;
  "cloudformation describe-stacks"|"cloudformation wait") echo DescribeStacks ;;
  "cloudformation delete-stack") echo DeleteStack ;; "dynamodb describe-table") echo DescribeTable ;;
  "dynamodb describe-time-to-live") echo DescribeTimeToLive ;; *) echo Unknown ;; esac; }
fail() { echo "" >&2; echo "An error occurred ($1) when calling the $(operation) operation: $2" >&2; exit 254; }
if [[ -n "${FAKE_FAIL:-}" && "aws $call" == "$FAKE_FAIL" && "$*" == *"${FAKE_FAIL_ON:-}"* ]]; then
  case "${FAKE_FAIL_CODE:-AccessDeniedException}" in
    AccessDeniedException) fail AccessDeniedException "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: $1:$(operation) because no identity-based policy allows the $1:$(operation) action" ;;
    ThrottlingException) fail ThrottlingException "Rate exceeded" ;;
    KMS) fail AccessDeniedException "The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access." ;;
    *) fail "$FAKE_FAIL_CODE" "injected" ;;
  esac
fi
name="" value="" query="" alarms=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --alarm-names) while [[ $# -gt 1 && "$2" != --* ]]; do alarms+=("$2"); shift; done ;;
    --name) name="$2"; shift ;;
    --value) value="$(cat "${2#file://}")"; shift ;;
    --query) query="$2"; shift ;;
    --stack-name) name="$2"; shift ;;
    --table-name) name="$2"; shift ;;
  esac
  shift
done
file="$FAKE_SSM/${name//\//%}"
stack="$FAKE_SSM/../stacks/$name"
case "$call" in
  "ssm get-parameter")
    [[ -f "$file" ]] || fail ParameterNotFound ""
    read -r version stored < "$file"
    case "$query" in
      "Parameter.[Version,Value]") printf '%s	%s
' "$version" "$stored" ;;
      Parameter.Version) echo "$version" ;;
      Parameter.Value) echo "$stored" ;;
      *) echo "{"Parameter": {"Name": "$name", "Version": $version}}" ;;
    esac ;;
  "ssm put-parameter")
    version=0
    [[ -f "$file" ]] && read -r version _ < "$file"
    version=$((version + 1))
    echo "$version $value" > "$file"
    if [[ "$query" == Version ]]; then echo "$version"; else echo "{"Version": $version, "Tier": "Standard"}"; fi ;;
  "ssm delete-parameter")
    [[ -f "$file" ]] || fail ParameterNotFound ""
    rm "$file" ;;
  "dynamodb delete-table") ;;
  "dynamodb describe-table")
    [[ "$name" == "${FAKE_TABLE:-telegram-bot-MemoryTable-1A2B3C}" ]] || fail ResourceNotFoundException "Requested resource not found: Table: $name not found"
    echo '{"Table": {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}], "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}}' ;;
  "dynamodb describe-time-to-live")
    [[ "$name" == "${FAKE_TABLE:-telegram-bot-MemoryTable-1A2B3C}" ]] || fail ResourceNotFoundException "Requested resource not found: Table: $name not found"
    echo '{"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}}' ;;
  "cloudwatch describe-alarms")
    # A new stack's alarms, waiting for their first data points.
    printf '['; sep=""
    for alarm in "${alarms[@]}"; do printf '%s["%s", "INSUFFICIENT_DATA"]' "$sep" "$alarm"; sep=", "; done
    echo ']' ;;
  "cloudformation delete-stack")
    # Accepted for any stack, as CloudFormation does; done at once.
    rm -f "$stack.status" "$stack.parameters" ;;
  "cloudformation wait")
    [[ "$waiter" == stack-delete-complete && ! -f "$stack.status" ]] || { echo "unexpected: aws cloudformation wait $waiter" >&2; exit 2; } ;;
  "cloudformation describe-stacks")
    [[ -f "$stack.status" ]] || fail ValidationError "Stack with id $name does not exist"
    parameter() { sed -n "s|^$1=||p" "$stack.parameters"; }
    table="${FAKE_TABLE:-telegram-bot-MemoryTable-1A2B3C}"
    [[ "$(parameter Memory)" == Off ]] && table=""
    # The text output of a list: its one value on a line, then a line
    # for each inner list, its values tab-separated.
    if [[ "$query" == "Stacks[0].[StackStatus,Parameters[].[ParameterKey,ParameterValue]]" ]]; then
      cat "$stack.status"
      while IFS= read -r line; do printf '%s\t%s\n' "${line%%=*}" "${line#*=}"; done < "$stack.parameters"
    elif [[ "$query" == *MemoryTableName* ]]; then echo "${table:-None}"
    elif [[ "$query" == *WebhookUrl* ]]; then echo "$FAKE_URL"
    elif [[ -n "$query" ]]; then echo "unexpected: aws $*" >&2; exit 2
    else
      cat <<JSON
{"Stacks": [{"StackName": "$name", "Outputs": [
  {"OutputKey": "WebhookUrl", "OutputValue": "$FAKE_URL"},
  {"OutputKey": "FunctionName", "OutputValue": "telegram-bot-WebhookFunction-1A2B"},
  {"OutputKey": "BotUsername", "OutputValue": "$(parameter BotUsername)"},
  {"OutputKey": "BotTokenParameter", "OutputValue": "$(parameter BotTokenParameter)"},
  {"OutputKey": "WebhookSecretParameter", "OutputValue": "$(parameter WebhookSecretParameter)"}
  $([[ "$(parameter Monitoring)" == On ]] && echo ', {"OutputKey": "DashboardUrl", "OutputValue": "https://console.aws.amazon.com/cloudwatch"}')
  $([[ -n "$table" ]] && echo ", {\"OutputKey\": \"MemoryTableName\", \"OutputValue\": \"$table\"}")]}]}
JSON
    fi ;;
  *) echo "unexpected: aws $*" >&2; exit 2 ;;
esac
"#;

/// A fake `sam`: logs its arguments and the deploy parameters it was given,
/// and any secret in its environment (as FAKE_SECRET_NAMES names). A deploy
/// leaves the stack as CloudFormation does: a parameter not given keeps its
/// value (sam's UsePreviousValue); a first deploy that fails (FAKE_FAIL
/// "sam deploy") leaves it in ROLLBACK_COMPLETE, where every later deploy
/// fails.
const FAKE_SAM: &str = r#"#!/usr/bin/env bash
echo "sam $*" >> "$FAKE_LOG"
for name in ${FAKE_SECRET_NAMES:-}; do [[ -z "${!name:-}" ]] || echo "  sam was given the secret $name" >> "$FAKE_LOG"; done
if [[ -n "${FAKE_FAIL:-}" && "sam $1" == "$FAKE_FAIL" && "$1" == build ]]; then echo "Error: Build Failed" >&2; exit 1; fi
command="$1" config="" name=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config-file) config="$2"; shift ;;
    --stack-name) name="$2"; shift ;;
  esac
  shift
done
stack="$FAKE_SSM/../stacks/$name"
status="$(cat "$stack.status" 2>/dev/null || true)"
case "$command" in
  build) ;;
  deploy)
    grep parameter_overrides "$config" | sed 's/^/  /' >> "$FAKE_LOG"
    if [[ "$status" == ROLLBACK_COMPLETE ]]; then
      echo "Error: Failed to create changeset for the stack: $name, An error occurred (ValidationError) when calling the CreateChangeSet operation: Stack:arn:aws:cloudformation:eu-west-1:123456789012:stack/$name/1a2b3c4d is in ROLLBACK_COMPLETE state and can not be updated." >&2
      exit 1
    fi
    given="$(grep parameter_overrides "$config" | sed 's/^parameter_overrides = //' | tr -d '\\"' | tr ' ' '\n')"
    merged="$given"
    if [[ -f "$stack.parameters" ]]; then
      while IFS= read -r line; do grep -q "^${line%%=*}=" <<< "$given" || merged+=$'\n'"$line"; done < "$stack.parameters"
    fi
    if [[ "${FAKE_FAIL:-}" == "sam deploy" ]]; then
      if [[ -z "$status" ]]; then
        echo "$merged" > "$stack.parameters"
        echo ROLLBACK_COMPLETE > "$stack.status"
        echo "Error: Failed to create/update the stack: $name, Waiter StackCreateComplete failed: Waiter encountered a terminal failure state: For expression \"Stacks[].StackStatus\" we matched expected path: \"ROLLBACK_COMPLETE\" at least once" >&2
      else
        echo UPDATE_ROLLBACK_COMPLETE > "$stack.status"
        echo "Error: Failed to create/update the stack: $name, Waiter StackUpdateComplete failed: Waiter encountered a terminal failure state: For expression \"Stacks[].StackStatus\" we matched expected path: \"UPDATE_ROLLBACK_COMPLETE\" at least once" >&2
      fi
      exit 1
    fi
    echo "$merged" > "$stack.parameters"
    if [[ -z "$status" ]]; then echo CREATE_COMPLETE; else echo UPDATE_COMPLETE; fi > "$stack.status" ;;
  delete)
    if [[ -z "$status" ]]; then echo "Error: The input stack $name does not exist on Cloudformation"; fi
    rm -f "$stack.status" "$stack.parameters" ;;
  *) echo "unexpected: sam $*" >&2; exit 2 ;;
esac
"#;

/// A fake `cargo`: logs its arguments and any secret in its environment (a
/// build script would have it). `cargo build` of the bot command line
/// "builds" it in $CARGO_TARGET_DIR: the fake `bot`.
const FAKE_CARGO: &str = r#"#!/usr/bin/env bash
echo "cargo $*" >> "$FAKE_LOG"
for name in ${FAKE_SECRET_NAMES:-}; do [[ -z "${!name:-}" ]] || echo "  cargo was given the secret $name" >> "$FAKE_LOG"; done
if [[ "$1" == lambda ]]; then echo "cargo-lambda 1.9.2"; exit 0; fi
if [[ "$*" == "build --quiet --release -p bot-cli --bin bot" && -n "${CARGO_TARGET_DIR:-}" ]]; then
  release="$CARGO_TARGET_DIR/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}release"
  mkdir -p "$release" && ln -sf "$(dirname "$0")/bot" "$release/bot"
  exit 0
fi
echo "error: unexpected cargo $*" >&2; exit 101
"#;

/// The real `bot`, behind a wrapper that logs each call to $FAKE_BOT_LOG,
/// with each variable FAKE_LEFTOVER_NAMES names that is in its environment:
/// a local run's setting that would steer it. What it runs knows it ran it.
const FAKE_BOT: &str = r#"#!/usr/bin/env bash
echo "bot $*" >> "$FAKE_BOT_LOG"
for name in ${FAKE_LEFTOVER_NAMES:-}; do [[ -z "${!name+set}" ]] || echo "  bot was given $name" >> "$FAKE_BOT_LOG"; done
FAKE_RUN_BY_BOT=1 exec "$FAKE_REAL_BOT" "$@"
"#;

struct Fakes {
    dir: PathBuf,
    log: PathBuf,
    /// The calls to `bot`, apart: the other tools' log stays as it was.
    bot_log: PathBuf,
    ssm: PathBuf,
    stacks: PathBuf,
    /// The deployed function's endpoint, on loopback (the stack's
    /// WebhookUrl): it answers as the function does at its door.
    url: String,
}

/// Serves the door of the deployed function on loopback: 200 to a POST
/// carrying the secret stored at /<stack>/webhook-secret in `ssm` (the one
/// the function would read), 401 to anything else. Ends with the test
/// process; each connection is one request.
fn serve_endpoint(ssm: PathBuf) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(&stream);
            let mut secret = None;
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                let lower = line.to_ascii_lowercase();
                if let Some(value) = lower.strip_prefix("x-telegram-bot-api-secret-token:") {
                    secret = Some(line[line.len() - value.len()..].trim().to_owned());
                }
                if let Some(value) = lower.strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let stored = std::fs::read_dir(&ssm)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|f| f.file_name().to_string_lossy().ends_with("%webhook-secret"))
                .filter_map(|f| std::fs::read_to_string(f.path()).ok())
                .filter_map(|text| text.trim_end().split_once(' ').map(|(_, v)| v.to_owned()))
                .next();
            let status = if secret.is_some() && secret == stored {
                "200 OK"
            } else {
                "401 Unauthorized"
            };
            let _ = write!(
                &stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    url
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
    let bot_log = dir.join("bot-calls.log");
    std::fs::write(&bot_log, "").unwrap();
    let ssm = dir.join("ssm");
    std::fs::create_dir_all(&ssm).unwrap();
    let stacks = dir.join("stacks");
    std::fs::create_dir_all(&stacks).unwrap();
    let url = serve_endpoint(ssm.clone());
    Fakes {
        dir,
        log,
        bot_log,
        ssm,
        stacks,
        url,
    }
}

impl Fakes {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// A parameter as a deploy before this one left it.
    fn store(&self, name: &str, version: u32, value: &str) {
        let file = self.ssm.join(name.replace('/', "%"));
        std::fs::write(file, format!("{version} {value}\n")).unwrap();
    }

    /// The token and a webhook secret as a deploy before this one stored
    /// them (version 1 each); returns the secret.
    fn store_as_deployed(&self, token: &str) -> String {
        let secret = stored_secret();
        self.store(TOKEN_PARAMETER, 1, token);
        self.store(SECRET_PARAMETER, 1, &secret);
        secret
    }

    /// A stored parameter's value and version.
    fn stored(&self, name: &str) -> Option<(u32, String)> {
        let text = std::fs::read_to_string(self.ssm.join(name.replace('/', "%"))).ok()?;
        let (version, value) = text.trim_end().split_once(' ')?;
        Some((version.parse().ok()?, value.to_owned()))
    }

    fn clear_log(&self) {
        std::fs::write(&self.log, "").unwrap();
        std::fs::write(&self.bot_log, "").unwrap();
    }

    fn bot_log(&self) -> String {
        std::fs::read_to_string(&self.bot_log).unwrap()
    }

    /// A stack as a deploy before this one left it: its state and its
    /// parameters (those left out have the template's default).
    fn stack(&self, name: &str, status: &str, parameters: &[(&str, &str)]) {
        let lines: Vec<String> = parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        std::fs::write(
            self.stacks.join(format!("{name}.parameters")),
            lines.concat(),
        )
        .unwrap();
        std::fs::write(
            self.stacks.join(format!("{name}.status")),
            format!("{status}\n"),
        )
        .unwrap();
    }

    /// A stack's state, if it exists.
    fn stack_status(&self, name: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.stacks.join(format!("{name}.status"))).ok()?;
        Some(text.trim_end().to_owned())
    }

    /// A stack's parameter, as its last deploy left it.
    fn stack_parameter(&self, name: &str, key: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.stacks.join(format!("{name}.parameters"))).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")).map(str::to_owned))
    }
}

impl Drop for Fakes {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn all_fakes() -> Fakes {
    fakes(&[
        ("aws", FAKE_AWS),
        ("sam", FAKE_SAM),
        ("cargo", FAKE_CARGO),
        ("bot", FAKE_BOT),
    ])
}

fn deploy_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/deploy")
}

/// The deploy's whole environment: the fakes, then only what bash itself
/// needs. The pseudo-terminal tests start the script themselves, with the
/// same.
fn deploy_env(fakes: &Fakes) -> Vec<(&'static str, String)> {
    vec![
        ("PATH", format!("{}:/usr/bin:/bin", fakes.dir.display())),
        ("FAKE_LOG", fakes.log.display().to_string()),
        ("FAKE_BOT_LOG", fakes.bot_log.display().to_string()),
        ("FAKE_SSM", fakes.ssm.display().to_string()),
        ("FAKE_URL", fakes.url.clone()),
        // The secrets the tests give: a tool but `bot` given one logs it.
        (
            "FAKE_SECRET_NAMES",
            "TELEGRAM_BOT_TOKEN TELEGRAM_WEBHOOK_SECRET WEATHER_API_KEY MAPS_API_KEY".to_owned(),
        ),
        // A local run's settings: `bot` given one logs it.
        (
            "FAKE_LEFTOVER_NAMES",
            "TELEGRAM_BOT_TOKEN_PARAMETER TELEGRAM_WEBHOOK_SECRET_PARAMETER TELEGRAM_BOT_USERNAME SSL_CERT_FILE"
                .to_owned(),
        ),
        ("FAKE_REAL_BOT", env!("CARGO_BIN_EXE_bot").to_owned()),
        ("BOT_BIN", fakes.dir.join("bot").display().to_string()),
        ("DEPLOY_VERIFY_WAIT", "0".to_owned()),
    ]
}

/// The option that makes the stand-in the Bot API of the deploy (and of
/// the stack it deploys): every test but those of the option itself.
fn stand_in_api(stand_in: &StandIn) -> [String; 2] {
    ["--api-base-url".to_owned(), stand_in.base_url()]
}

/// scripts/deploy against the stand-in.
async fn deploy(fakes: &Fakes, stand_in: &StandIn, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let api = stand_in_api(stand_in);
    let mut with_api: Vec<&str> = api.iter().map(String::as_str).collect();
    with_api.extend_from_slice(args);
    run_deploy(fakes, &with_api, envs).await
}

/// scripts/deploy with only the arguments given.
async fn run_deploy(fakes: &Fakes, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(deploy_script())
        .args(args)
        .env_clear()
        .envs(deploy_env(fakes))
        .envs(envs.iter().copied())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("deploy finishes within 60 s")
        .unwrap()
}

const TOKEN_PARAMETER: &str = "/telegram-bot/bot-token";
const SECRET_PARAMETER: &str = "/telegram-bot/webhook-secret";
/// A secret as a deploy generates one: 48 random characters. Made afresh:
/// any text of this repository counts as public, so the deploy would
/// rightly warn about a constant written here.
fn stored_secret() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(48)
        .collect()
}

/// The command lines of the log, without the file values under them.
fn commands(log: &str) -> Vec<&str> {
    log.lines().filter(|l| !l.starts_with(' ')).collect()
}

/// Whether the log shows a tool given a secret by the script. `bot doctor`
/// hands its own environment, the token and the secret the script gave it,
/// on to the `aws` it runs: that is bot's to change (cli/src/doctor/aws.rs),
/// not the script's.
fn given_a_secret_by_the_script(log: &str) -> bool {
    log.lines()
        .any(|l| l.contains(" was given the secret ") && !l.contains(", run by bot,"))
}

/// Asserts that neither the token nor the secret is on any command line, in
/// the environment of a tool but `bot`, or in anything the deploy printed;
/// and that `bot` was given none of a local run's settings.
fn assert_no_secret_shown(fakes: &Fakes, output: &Output, secrets: &[&str]) {
    let log = fakes.log();
    assert!(
        !given_a_secret_by_the_script(&log),
        "a tool's environment held a secret: {log}"
    );
    let bot_log = fakes.bot_log();
    assert!(
        !bot_log.contains(" was given "),
        "bot was given a local run's setting: {bot_log}"
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(output)
    );
    for secret in secrets {
        for line in commands(&log).into_iter().chain(commands(&bot_log)) {
            assert!(!line.contains(secret), "on a command line: {line}");
        }
        assert!(!printed.contains(secret), "printed: {printed}");
    }
}

/// Asserts that the deploy stopped saying each of `says` before it changed
/// anything: nothing stored, no stack deployed, Telegram not called and no
/// secret shown.
#[track_caller]
fn assert_stopped_before_any_change(
    fakes: &Fakes,
    stand_in: &StandIn,
    output: &Output,
    says: &[&str],
    secrets: &[&str],
) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{says:?}: {err}");
    for text in says {
        assert!(err.contains(text), "{text:?} not said: {err}");
    }
    let log = fakes.log();
    assert!(
        !log.contains("put-parameter") && !log.contains("sam ") && !log.contains("delete-stack"),
        "{says:?}: {log}"
    );
    assert!(stand_in.calls().is_empty(), "{says:?}: Telegram was called");
    assert_no_secret_shown(fakes, output, secrets);
}

/// Asserts that the deploy succeeded, else shows what it said and ran.
#[track_caller]
fn assert_deployed(fakes: &Fakes, output: &Output) {
    assert!(
        output.status.success(),
        "{}\n{}",
        stderr(output),
        fakes.log()
    );
}

/// Asserts that the deploy printed `text` on its standard output.
#[track_caller]
fn assert_printed(output: &Output, text: &str) {
    let printed = stdout(output);
    assert!(printed.contains(text), "{text:?} not printed: {printed}");
}

/// Asserts that the fakes logged `text`: a call, or what it was given.
#[track_caller]
fn assert_logged(fakes: &Fakes, text: &str) {
    let log = fakes.log();
    assert!(log.contains(text), "{text:?} not in the log: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_deploy_stores_the_token_and_a_new_secret_then_deploys_and_checks() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    let output = deploy(
        &fakes,
        &stand_in,
        &["--store-token", "--region", "eu-west-1"],
        &[("TELEGRAM_BOT_TOKEN", &token)],
    )
    .await;
    assert_deployed(&fakes, &output);
    let log = fakes.log();
    // Without what `bot doctor` passes on (assert_no_secret_shown).
    let all: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains(", run by bot,"))
        .collect();
    assert_eq!(all[0], "cargo lambda --version");
    // The stack first: none yet, so the defaults.
    assert_eq!(
        all[1],
        "aws cloudformation describe-stacks --stack-name telegram-bot --query Stacks[0].[StackStatus,Parameters[].[ParameterKey,ParameterValue]] --output text --region eu-west-1"
    );
    assert_printed(
        &output,
        "==> the stack telegram-bot\nnone yet: a new stack\n",
    );
    let lines = &all[2..];
    // Read all three; build; only then store, right before the deploy.
    assert_eq!(
        lines[0],
        "aws ssm get-parameter --name /telegram-bot/bot-token --with-decryption --query Parameter.[Version,Value] --output text --region eu-west-1"
    );
    assert!(
        lines[1].starts_with(
            "aws ssm get-parameter --name /telegram-bot/webhook-secret --with-decryption"
        ),
        "{log}"
    );
    assert_eq!(
        lines[2],
        "aws ssm get-parameter --name /telegram-bot/bot-secrets --with-decryption --query Parameter.[Version,Value] --output text --region eu-west-1"
    );
    assert_eq!(
        lines[3],
        "sam build --parameter-overrides Architecture=arm64"
    );
    assert!(lines[4].starts_with("aws ssm put-parameter --name /telegram-bot/bot-token --type SecureString --overwrite --value file://"), "{log}");
    assert!(lines[4].ends_with("--region eu-west-1"), "{log}");
    assert_eq!(lines[5], format!("  value: {token}"));
    assert!(
        lines[6].starts_with("aws ssm put-parameter --name /telegram-bot/webhook-secret"),
        "{log}"
    );
    let secret = lines[7].strip_prefix("  value: ").unwrap().to_owned();
    assert_eq!(secret.len(), 48);
    assert!(secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    assert_eq!(fakes.stored(SECRET_PARAMETER), Some((1, secret.clone())));
    assert!(lines[8].starts_with("sam deploy --config-file "), "{log}");
    assert!(lines[8].ends_with("--stack-name telegram-bot --capabilities CAPABILITY_IAM --resolve-s3 --no-confirm-changeset --no-fail-on-empty-changeset --region eu-west-1"), "{log}");
    // The stack gets the parameters' names and versions, never the secret.
    // Every kept option is named, so none falls back to the template's
    // default on a later deploy.
    assert_eq!(
        lines[9],
        format!("  parameter_overrides = \"Architecture=\\\"arm64\\\" ApiBaseUrl=\\\"{}\\\" Monitoring=\\\"Off\\\" AlarmEmail=\\\"\\\" AdminChatId=\\\"\\\" AssistantModel=\\\"\\\" AssistantBaseUrl=\\\"https://api.openai.com/v1\\\" Queue=\\\"Off\\\" WorkerTimeout=\\\"150\\\" EndpointType=\\\"HttpApi\\\" BotTokenParameter=\\\"/telegram-bot/bot-token\\\" BotUsername=\\\"EchoLambdaBot\\\" ReservedConcurrency=\\\"0\\\" Memory=\\\"DynamoDB\\\" WebhookSecretParameter=\\\"/telegram-bot/webhook-secret\\\" BotTokenVersion=\\\"1\\\" WebhookSecretVersion=\\\"1\\\" BotSecretsParameter=\\\"\\\" BotSecretsVersion=\\\"0\\\"\"", stand_in.base_url())
    );
    assert!(
        lines[10].starts_with("aws cloudformation describe-stacks --stack-name telegram-bot"),
        "{log}"
    );
    // The doctor reads the stack it checks.
    assert_eq!(
        lines[11],
        "aws cloudformation describe-stacks --stack-name telegram-bot --output json --region eu-west-1"
    );
    // And the table the stack made.
    assert_eq!(
        lines[12],
        "aws dynamodb describe-table --table-name telegram-bot-MemoryTable-1A2B3C --output json --region eu-west-1"
    );
    assert_eq!(
        lines[13],
        "aws dynamodb describe-time-to-live --table-name telegram-bot-MemoryTable-1A2B3C --output json --region eu-west-1"
    );
    assert_eq!(lines.len(), 14, "{log}");
    assert_no_secret_shown(&fakes, &output, &[&secret, &token]);
    let methods: Vec<String> = stand_in.calls().iter().map(|c| c.method.clone()).collect();
    assert_eq!(
        methods,
        [
            // The new token checked before it is stored.
            "getMe",
            // The last error before this deploy's setWebhook.
            "getWebhookInfo",
            "setWebhook",
            "getMyCommands",
            "setMyCommands",
            // The doctor's checks: the menu of the default scope, then of
            // the three that outrank it for whole kinds of chat.
            "getMe",
            "getWebhookInfo",
            "getMyCommands",
            "getMyCommands",
            "getMyCommands",
            "getMyCommands"
        ]
    );
    assert_eq!(
        stand_in.calls_to("setWebhook")[0],
        json!({
            "url": fakes.url, "secret_token": secret, "allowed_updates": ["message", "callback_query"],
            "max_connections": 40, "drop_pending_updates": false
        })
    );
    let menu: Vec<String> = stand_in
        .commands()
        .iter()
        .map(|c| c.command.clone())
        .collect();
    assert_eq!(menu, ["start", "help", "count", "counter"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_keeps_what_is_stored_and_takes_the_options() {
    let stored_secret = stored_secret();
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store("/my-bot/bot-token", 3, stand_in.token());
    fakes.store("/my-bot/webhook-secret", 2, &stored_secret);
    let args = [
        "--stack-name",
        "my-bot",
        "--endpoint",
        "FunctionUrl",
        "--architecture",
        "x86_64",
        "--bot-username",
        "EchoLambdaBot",
        "--drop-pending-updates",
        "--reserved-concurrency",
        "20",
        "--memory",
        "Off",
    ];
    // No token in this shell: the stored one is used.
    let output = deploy(&fakes, &stand_in, &args, &[]).await;
    assert_deployed(&fakes, &output);
    let log = fakes.log();
    assert!(!log.contains("put-parameter"), "nothing rewritten: {log}");
    assert_logged(
        &fakes,
        "sam build --parameter-overrides Architecture=x86_64\n",
    );
    assert_logged(&fakes, "EndpointType=\\\"FunctionUrl\\\" BotTokenParameter=\\\"/my-bot/bot-token\\\" BotUsername=\\\"EchoLambdaBot\\\" ReservedConcurrency=\\\"20\\\" Memory=\\\"Off\\\" WebhookSecretParameter=\\\"/my-bot/webhook-secret\\\" BotTokenVersion=\\\"3\\\" WebhookSecretVersion=\\\"2\\\"");
    let set = &stand_in.calls_to("setWebhook")[0];
    assert_eq!(set["secret_token"], stored_secret.as_str());
    assert_eq!(set["drop_pending_updates"], true);
    assert_eq!(set["max_connections"], 20, "never more than the executions");
    assert_eq!(
        stand_in.calls_to("getMe").len(),
        1,
        "the username was given: only the doctor's check asks"
    );
    let menu: Vec<String> = stand_in
        .commands()
        .iter()
        .map(|c| c.command.clone())
        .collect();
    assert_eq!(menu, ["start", "help"], "no /counter without a store");
    assert_no_secret_shown(&fakes, &output, &[&stored_secret, stand_in.token()]);

    // Again, with nothing changed: the menu is not set again.
    let output = deploy(&fakes, &stand_in, &args, &[]).await;
    assert_deployed(&fakes, &output);
    assert_eq!(stand_in.set_my_commands_calls(), 1);
    assert_printed(&output, "Command menu already up to date");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_is_capped_at_telegrams_100() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store_as_deployed(stand_in.token());
    let output = deploy(&fakes, &stand_in, &["--reserved-concurrency", "500"], &[]).await;
    assert_deployed(&fakes, &output);
    assert_eq!(stand_in.calls_to("setWebhook")[0]["max_connections"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_of_a_stored_secret_stops_the_deploy_before_any_change() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let token = stand_in.token().to_owned();
    for (code, on, shown) in [
        (
            "AccessDeniedException",
            "bot-token",
            "(AccessDeniedException) when calling the GetParameter operation",
        ),
        (
            "ThrottlingException",
            "webhook-secret",
            "(ThrottlingException) when calling the GetParameter operation: Rate exceeded",
        ),
        ("KMS", "webhook-secret", "customer master key"),
    ] {
        let fakes = all_fakes();
        let stored_secret = fakes.store_as_deployed(&token);
        let output = deploy(
            &fakes,
            &stand_in,
            &[],
            &[
                ("FAKE_FAIL", "aws ssm get-parameter"),
                ("FAKE_FAIL_ON", on),
                ("FAKE_FAIL_CODE", code),
            ],
        )
        .await;
        let read = format!("deploy: could not read /telegram-bot/{on}, so nothing was changed");
        assert_stopped_before_any_change(
            &fakes,
            &stand_in,
            &output,
            &[&read, shown],
            &[&stored_secret, &token],
        );
        assert_eq!(fakes.stored(SECRET_PARAMETER), Some((1, stored_secret)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stored_token_without_store_token_is_named() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let output = deploy(&fakes, &stand_in, &[], &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(
            "deploy: no token stored at /telegram-bot/bot-token: run once with --store-token"
        ),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_token_of_another_bot_stops_the_deploy_naming_both_ids() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let stored = stand_in.token().to_owned();
    let stored_id = stored.split(':').next().unwrap().to_owned();
    for (shell, expected) in [
        (
            "987654321:AAotherBotsToken_abcdefghijklmnop".to_owned(),
            format!("deploy: TELEGRAM_BOT_TOKEN is bot 987654321, but /telegram-bot/bot-token holds bot {stored_id}: add --store-token"),
        ),
        (
            format!("{stored_id}:AAregeneratedToken_abcdefghijklm"),
            format!("deploy: TELEGRAM_BOT_TOKEN differs from the token stored at /telegram-bot/bot-token for the same bot {stored_id} (regenerated with @BotFather?)"),
        ),
    ] {
        let fakes = all_fakes();
        let stored_secret = fakes.store_as_deployed(&stored);
        let output = deploy(&fakes, &stand_in, &[], &[("TELEGRAM_BOT_TOKEN", &shell)]).await;
        assert_stopped_before_any_change(
            &fakes,
            &stand_in,
            &output,
            &[&expected],
            &[&stored, &shell, &stored_secret],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_or_public_secret_is_refused_and_a_weak_stored_one_warned_about() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let token = stand_in.token().to_owned();
    for (given, reason) in [
        (
            "has spaces!",
            "TELEGRAM_WEBHOOK_SECRET must be 1-256 characters",
        ),
        (
            "local-dev-secret",
            "TELEGRAM_WEBHOOK_SECRET is shorter than 32 characters",
        ),
        // Any text of this repository is public: here, a test's name.
        (
            "twenty_presses_at_once_on_four_instances_count_exactly_twenty",
            "TELEGRAM_WEBHOOK_SECRET appears in this repository, so it is public",
        ),
    ] {
        let fakes = all_fakes();
        fakes.store(TOKEN_PARAMETER, 1, &token);
        let output = deploy(
            &fakes,
            &stand_in,
            &[],
            &[("TELEGRAM_WEBHOOK_SECRET", given)],
        )
        .await;
        assert_stopped_before_any_change(&fakes, &stand_in, &output, &[reason], &[given, &token]);
    }

    // A bot already running with a short secret keeps working, and is told.
    let fakes = all_fakes();
    fakes.store(TOKEN_PARAMETER, 1, &token);
    fakes.store(SECRET_PARAMETER, 4, "local-dev-secret");
    let output = deploy(&fakes, &stand_in, &[], &[]).await;
    assert_deployed(&fakes, &output);
    assert!(
        stderr(&output).contains("warning: the stored webhook secret is shorter than 32 characters; rotate it with: scripts/deploy --new-secret"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        stand_in.calls_to("setWebhook")[0]["secret_token"],
        "local-dev-secret"
    );

    // Rotation: a new secret, stored as a new version the stack is given.
    fakes.clear_log();
    let output = deploy(&fakes, &stand_in, &["--new-secret"], &[]).await;
    assert_deployed(&fakes, &output);
    let (version, rotated) = fakes.stored(SECRET_PARAMETER).unwrap();
    assert_eq!((version, rotated.len()), (5, 48));
    assert_logged(&fakes, "WebhookSecretVersion=\\\"5\\\"");
    assert_eq!(
        stand_in.calls_to("setWebhook")[1]["secret_token"],
        rotated.as_str()
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
async fn store_token_needs_a_token() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let output = deploy(&fakes, &stand_in, &["--store-token"], &[]).await;
    assert!(stderr(&output).contains("deploy: --store-token needs TELEGRAM_BOT_TOKEN"));
    assert_eq!(fakes.log(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_error_after_deploy_fails_loudly() {
    let stand_in = std::sync::Arc::new(StandIn::start(Options::default()).await.unwrap());
    let fakes = all_fakes();
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
    fakes.store_as_deployed(stand_in.token());
    let output = deploy(&fakes, &stand_in, &[], &[("DEPLOY_VERIFY_WAIT", "1")]).await;
    watcher.await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_printed(&output, "FAIL  delivery: 0 pending; last error ");
    assert_printed(
        &output,
        "Wrong response from the webhook: 500 Internal Server Error",
    );
    assert!(
        err.contains("deploy: the deployed bot is not healthy (see above)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_from_before_this_deploy_is_a_note_not_a_failure() {
    // Telegram keeps the last error across a setWebhook that changes
    // nothing: the one from a broken deploy an hour ago is history.
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store_as_deployed(stand_in.token());
    let output = deploy(&fakes, &stand_in, &[], &[]).await;
    assert_deployed(&fakes, &output);
    stand_in.record_delivery_error("Wrong response from the webhook: 502 Bad Gateway", 3600);
    let output = deploy(&fakes, &stand_in, &[], &[]).await;
    assert_deployed(&fakes, &output);
    assert_printed(&output, "note  delivery: 0 pending; last error 60 min ago (old): Wrong response from the webhook: 502 Bad Gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_webhook_then_the_stack() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    fakes.stack("telegram-bot", "UPDATE_COMPLETE", &[("Memory", "DynamoDB")]);
    let output = deploy(
        &fakes,
        &stand_in,
        &["--delete", "--region", "eu-west-1"],
        &[("TELEGRAM_BOT_TOKEN", &token)],
    )
    .await;
    assert_deployed(&fakes, &output);
    assert_eq!(stand_in.calls()[0].method, "deleteWebhook");
    assert_eq!(
        fakes.log(),
        "cargo lambda --version\n\
         aws cloudformation describe-stacks --stack-name telegram-bot --query Stacks[0].[StackStatus,Parameters[].[ParameterKey,ParameterValue]] --output text --region eu-west-1\n\
         aws ssm get-parameter --name /telegram-bot/bot-token --with-decryption --query Parameter.[Version,Value] --output text --region eu-west-1\n\
         aws cloudformation describe-stacks --stack-name telegram-bot --query Stacks[0].Outputs[?OutputKey=='MemoryTableName'].OutputValue --output text --region eu-west-1\n\
         sam delete --stack-name telegram-bot --no-prompts --region eu-west-1\n\
         aws ssm delete-parameter --name /telegram-bot/webhook-secret --region eu-west-1\n\
         aws ssm delete-parameter --name /telegram-bot/bot-secrets --region eu-west-1\n"
    );
    assert_printed(
        &output,
        "The chats' data stays in the DynamoDB table telegram-bot-MemoryTable-1A2B3C",
    );
    assert_eq!(fakes.stack_status("telegram-bot"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_finds_the_token_and_the_bot_api_the_stack_names() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store("/ops/bot-token", 2, stand_in.token());
    fakes.stack(
        "telegram-bot",
        "UPDATE_COMPLETE",
        &[
            ("BotTokenParameter", "/ops/bot-token"),
            ("ApiBaseUrl", &stand_in.base_url()),
        ],
    );
    // Neither option given: both are the stack's.
    let output = run_deploy(&fakes, &["--delete"], &[]).await;
    assert_deployed(&fakes, &output);
    assert_eq!(stand_in.calls()[0].method, "deleteWebhook");
    assert_logged(&fakes, "aws ssm get-parameter --name /ops/bot-token ");
    assert_printed(
        &output,
        &format!("==> the Bot API: {}\n", stand_in.base_url()),
    );
    assert_printed(&output, "The token stays in /ops/bot-token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_another_bots_token_in_the_shell_removes_nothing() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store(TOKEN_PARAMETER, 1, stand_in.token());
    let other = "987654321:AAotherBotsToken_abcdefghijklmnop";
    let output = deploy(
        &fakes,
        &stand_in,
        &["--delete"],
        &[("TELEGRAM_BOT_TOKEN", other)],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(
            "TELEGRAM_BOT_TOKEN is bot 987654321, but /telegram-bot/bot-token holds bot 123456789"
        ),
        "{}",
        stderr(&output)
    );
    assert!(stand_in.calls().is_empty(), "no webhook deleted");
    assert!(!fakes.log().contains("sam delete"), "{}", fakes.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_token_is_checked_and_new_values_are_stored_only_after_the_build() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    // A token Telegram refuses replaces nothing.
    let fakes = all_fakes();
    let stored_secret = fakes.store_as_deployed(stand_in.token());
    let refused = "123456789:AAmistyped-token_abcdefghijklmnopq";
    let output = deploy(
        &fakes,
        &stand_in,
        &["--store-token"],
        &[("TELEGRAM_BOT_TOKEN", refused)],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("deploy: getMe refused TELEGRAM_BOT_TOKEN"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        fakes.stored(TOKEN_PARAMETER),
        Some((1, stand_in.token().to_owned()))
    );
    assert_no_secret_shown(&fakes, &output, &[refused, stand_in.token()]);

    // A build that fails leaves the stored secret as it was.
    let output = deploy(
        &fakes,
        &stand_in,
        &["--new-secret"],
        &[("FAKE_FAIL", "sam build")],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(!fakes.log().contains("put-parameter"), "{}", fakes.log());
    assert_eq!(fakes.stored(SECRET_PARAMETER), Some((1, stored_secret)));
    assert!(
        !fakes.log().contains(" was given the secret "),
        "{}",
        fakes.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_delete_data_also_removes_the_table() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    fakes.stack("telegram-bot", "UPDATE_COMPLETE", &[("Memory", "DynamoDB")]);
    let output = deploy(
        &fakes,
        &stand_in,
        &["--delete", "--delete-data"],
        &[("TELEGRAM_BOT_TOKEN", &token)],
    )
    .await;
    assert_deployed(&fakes, &output);
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
async fn monitoring_its_email_and_chat_are_kept_unless_given() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store_as_deployed(stand_in.token());
    let args = [
        "--monitoring",
        "On",
        "--alarm-email",
        "ops@example.com",
        "--admin-chat",
        "5550001",
    ];
    let output = deploy(&fakes, &stand_in, &args, &[]).await;
    assert_deployed(&fakes, &output);
    let monitored = "Monitoring=\\\"On\\\" AlarmEmail=\\\"ops@example.com\\\" AdminChatId=\\\"5550001\\\" AssistantModel=";
    assert_logged(&fakes, monitored);
    assert_printed(&output, "note  alarms: 0 OK, 3 waiting for data");

    // A plain redeploy keeps all three, and says so.
    fakes.clear_log();
    let output = deploy(&fakes, &stand_in, &[], &[]).await;
    assert_deployed(&fakes, &output);
    assert_logged(&fakes, monitored);
    assert_printed(
        &output,
        "keeping Monitoring=On, AlarmEmail=ops@example.com, AdminChatId=5550001 from the stack\n",
    );

    // '' is a value: no address.
    fakes.clear_log();
    let output = deploy(&fakes, &stand_in, &["--alarm-email", ""], &[]).await;
    assert_deployed(&fakes, &output);
    assert_logged(
        &fakes,
        "Monitoring=\\\"On\\\" AlarmEmail=\\\"\\\" AdminChatId=\\\"5550001\\\"",
    );
    for (args, error) in [
        (["--monitoring", "yes"], "--monitoring must be On or Off"),
        (
            ["--alarm-email", "a\"b@c"],
            "--alarm-email needs an address",
        ),
        (["--admin-chat", "@me"], "--admin-chat needs a chat id"),
    ] {
        let output = deploy(&fakes, &stand_in, &args, &[]).await;
        assert!(!output.status.success());
        assert!(stderr(&output).contains(error), "{}", stderr(&output));
    }
}

const BOT_SECRETS_PARAMETER: &str = "/telegram-bot/bot-secrets";

/// A bot's secret (an API key): made afresh, so that it can only be shown
/// by the deploy.
fn api_key() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(40)
        .collect()
}

/// `scripts/deploy --secret NAME`, with NAME's value in its environment.
async fn deploy_secret(fakes: &Fakes, stand_in: &StandIn, name: &str, value: &str) -> Output {
    deploy(fakes, stand_in, &["--secret", name], &[(name, value)]).await
}

/// The JSON object stored at the bot's secrets parameter, and its version.
fn stored_bot_secrets(fakes: &Fakes) -> Option<(u32, serde_json::Value)> {
    let (version, json) = fakes.stored(BOT_SECRETS_PARAMETER)?;
    Some((version, serde_json::from_str(&json).unwrap()))
}

/// The position of the first command line of the log that starts with `start`.
fn position(log: &str, start: &str) -> usize {
    log.lines()
        .position(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no {start:?} in the log: {log}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_from_the_environment_is_stored_after_the_build_and_named_to_the_stack() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let webhook_secret = fakes.store_as_deployed(stand_in.token());
    let key = api_key();
    let output = deploy(
        &fakes,
        &stand_in,
        &["--secret", "WEATHER_API_KEY", "--region", "eu-west-1"],
        &[("WEATHER_API_KEY", &key)],
    )
    .await;
    assert_deployed(&fakes, &output);
    let log = fakes.log();
    // Read (none stored yet); build; only then store, right before the deploy.
    let read = position(
        &log,
        "aws ssm get-parameter --name /telegram-bot/bot-secrets --with-decryption --query Parameter.[Version,Value] --output text --region eu-west-1",
    );
    let build = position(&log, "sam build");
    let put = position(
        &log,
        "aws ssm put-parameter --name /telegram-bot/bot-secrets --type SecureString --overwrite --value file://",
    );
    let sam_deploy = position(&log, "sam deploy");
    assert!(read < build && build < put && put < sam_deploy, "{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines[put].ends_with("--region eu-west-1"), "{log}");
    let json = lines[put + 1].strip_prefix("  value: ").unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(json).unwrap(),
        json!({"WEATHER_API_KEY": key})
    );
    assert_eq!(
        stored_bot_secrets(&fakes),
        Some((1, json!({"WEATHER_API_KEY": key})))
    );
    assert_eq!(
        log.matches("put-parameter").count(),
        1,
        "only what is new: {log}"
    );
    assert_logged(&fakes, "WebhookSecretVersion=\\\"1\\\" BotSecretsParameter=\\\"/telegram-bot/bot-secrets\\\" BotSecretsVersion=\\\"1\\\"\"");
    assert_printed(&output, "==> the bot's secrets in Parameter Store (/telegram-bot/bot-secrets)\nsetting WEATHER_API_KEY, stored after the build; the parameter then holds WEATHER_API_KEY\n");
    assert_printed(&output, "==> storing the bot's secrets\n");
    // Only in the stored value: never on a command line, in a tool's
    // environment or in what the deploy printed.
    assert_no_secret_shown(&fakes, &output, &[&key, &webhook_secret, stand_in.token()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_secret_is_merged_and_a_plain_redeploy_keeps_them() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store_as_deployed(stand_in.token());
    let (weather, maps) = (api_key(), api_key());
    let output = deploy_secret(&fakes, &stand_in, "WEATHER_API_KEY", &weather).await;
    assert_deployed(&fakes, &output);

    // Another name: merged with the one stored, as a new version.
    fakes.clear_log();
    let output = deploy_secret(&fakes, &stand_in, "MAPS_API_KEY", &maps).await;
    assert_deployed(&fakes, &output);
    assert_eq!(
        stored_bot_secrets(&fakes),
        Some((2, json!({"WEATHER_API_KEY": weather, "MAPS_API_KEY": maps})))
    );
    assert_logged(
        &fakes,
        "BotSecretsParameter=\\\"/telegram-bot/bot-secrets\\\" BotSecretsVersion=\\\"2\\\"",
    );
    assert_printed(&output, "setting MAPS_API_KEY, stored after the build; the parameter then holds MAPS_API_KEY, WEATHER_API_KEY");
    assert_no_secret_shown(&fakes, &output, &[&weather, &maps]);

    // A plain redeploy writes nothing, and names the stored version again.
    fakes.clear_log();
    let output = deploy(&fakes, &stand_in, &[], &[]).await;
    assert_deployed(&fakes, &output);
    assert!(
        !fakes.log().contains("put-parameter"),
        "nothing rewritten: {}",
        fakes.log()
    );
    assert_logged(&fakes, "WebhookSecretVersion=\\\"1\\\" BotSecretsParameter=\\\"/telegram-bot/bot-secrets\\\" BotSecretsVersion=\\\"2\\\"\"");
    assert_printed(&output, "keeping MAPS_API_KEY, WEATHER_API_KEY (version 2)");
    assert_no_secret_shown(&fakes, &output, &[&weather, &maps]);

    // The same value again is no new version either.
    fakes.clear_log();
    let output = deploy_secret(&fakes, &stand_in, "MAPS_API_KEY", &maps).await;
    assert_deployed(&fakes, &output);
    assert!(!fakes.log().contains("put-parameter"), "{}", fakes.log());
    assert_logged(&fakes, "BotSecretsVersion=\\\"2\\\"");
    assert_eq!(stored_bot_secrets(&fakes).unwrap().0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_of_the_bots_secrets_stops_the_deploy_before_any_change() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store_as_deployed(stand_in.token());
    let (old, new) = (api_key(), api_key());
    let stored = json!({"WEATHER_API_KEY": old}).to_string();
    fakes.store(BOT_SECRETS_PARAMETER, 3, &stored);
    let output = deploy(
        &fakes,
        &stand_in,
        &["--secret", "WEATHER_API_KEY"],
        &[
            ("WEATHER_API_KEY", &new),
            ("FAKE_FAIL", "aws ssm get-parameter"),
            ("FAKE_FAIL_ON", "bot-secrets"),
        ],
    )
    .await;
    assert_stopped_before_any_change(
        &fakes,
        &stand_in,
        &output,
        &[
            "deploy: could not read /telegram-bot/bot-secrets, so nothing was changed: ",
            "(AccessDeniedException) when calling the GetParameter operation",
        ],
        &[&old, &new],
    );
    assert_eq!(fakes.stored(BOT_SECRETS_PARAMETER), Some((3, stored)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_that_cannot_be_set_stops_the_deploy_before_anything_runs() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let key = api_key();
    let too_long = "k".repeat(5000);
    for (args, envs, error) in [
        // No value, and no terminal to type it at.
        (
            vec!["--secret", "WEATHER_API_KEY"],
            vec![],
            "deploy: --secret WEATHER_API_KEY: export WEATHER_API_KEY with its value",
        ),
        (
            vec!["--secret", "weather_api_key"],
            vec![("weather_api_key", key.as_str())],
            "deploy: --secret needs a name: A-Z, 0-9 and _, starting with a letter",
        ),
        (
            vec!["--secret"],
            vec![],
            "deploy: --secret needs a name",
        ),
        (
            vec!["--secret", "WEATHER_API_KEY", "--secret", "WEATHER_API_KEY"],
            vec![("WEATHER_API_KEY", key.as_str())],
            "deploy: --secret WEATHER_API_KEY is given twice",
        ),
        (
            vec!["--secret", "WEATHER_API_KEY"],
            vec![("WEATHER_API_KEY", " \n")],
            "deploy: --secret WEATHER_API_KEY: the value is empty",
        ),
        // The deploy's own credentials would be taken from its tools.
        (
            vec!["--secret", "AWS_SECRET_ACCESS_KEY"],
            vec![("AWS_SECRET_ACCESS_KEY", key.as_str())],
            "deploy: --secret AWS_SECRET_ACCESS_KEY: AWS_SECRET_ACCESS_KEY is a variable the deploy or the function uses itself",
        ),
        (
            vec!["--delete", "--secret", "WEATHER_API_KEY"],
            vec![("WEATHER_API_KEY", key.as_str())],
            "deploy: --secret does not go with --delete",
        ),
    ] {
        let fakes = all_fakes();
        let output = deploy(&fakes, &stand_in, &args, &envs).await;
        assert_stopped_before_any_change(&fakes, &stand_in, &output, &[error], &[&key]);
        assert_eq!(fakes.log(), "", "{args:?}: nothing ran");
    }

    // Too much for one standard parameter: refused before the build.
    let fakes = all_fakes();
    fakes.store_as_deployed(stand_in.token());
    let output = deploy_secret(&fakes, &stand_in, "WEATHER_API_KEY", &too_long).await;
    assert_stopped_before_any_change(
        &fakes,
        &stand_in,
        &output,
        &[
            "bot: with WEATHER_API_KEY, the secrets would take 5022 bytes of JSON, more than the 4096 a standard Parameter Store parameter holds",
            "deploy: could not set WEATHER_API_KEY (see above); nothing was changed",
        ],
        &[&too_long],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_bots_secrets_too() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store(TOKEN_PARAMETER, 1, stand_in.token());
    fakes.store(SECRET_PARAMETER, 2, &stored_secret());
    fakes.store(
        BOT_SECRETS_PARAMETER,
        4,
        &json!({"WEATHER_API_KEY": api_key()}).to_string(),
    );
    let output = deploy(&fakes, &stand_in, &["--delete"], &[]).await;
    assert_deployed(&fakes, &output);
    let log = fakes.log();
    let sam_delete = position(&log, "sam delete --stack-name telegram-bot");
    let deleted = position(
        &log,
        "aws ssm delete-parameter --name /telegram-bot/bot-secrets",
    );
    assert!(sam_delete < deleted, "after the stack that reads it: {log}");
    assert_eq!(fakes.stored(BOT_SECRETS_PARAMETER), None);
    assert_eq!(fakes.stored(SECRET_PARAMETER), None);
    assert!(fakes.stored(TOKEN_PARAMETER).is_some(), "the token stays");
    assert_printed(
        &output,
        "==> deleting the bot's secrets /telegram-bot/bot-secrets",
    );
    // None stored (ParameterNotFound) is no warning.
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
}

/// scripts/deploy against the stand-in, run in a terminal as a person runs
/// it, with the environment `deploy` gives it.
fn deploy_in_a_terminal(fakes: &Fakes, stand_in: &StandIn, args: &[&str]) -> Terminal {
    let mut command = CommandBuilder::new("bash");
    command.arg(deploy_script());
    command.args(stand_in_api(stand_in));
    command.args(args);
    command.env_clear();
    for (name, value) in deploy_env(fakes) {
        command.env(name, value);
    }
    Terminal::run(command, 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_not_in_the_environment_is_typed_at_a_hidden_prompt() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store_as_deployed(stand_in.token());
    let key = api_key();
    let Terminal {
        mut child,
        screen,
        mut keyboard,
    } = deploy_in_a_terminal(&fakes, &stand_in, &["--secret", "WEATHER_API_KEY"]);
    // Waiting blocks this thread: in place, so the stand-in's tasks go on.
    let wait_for = |what| tokio::task::block_in_place(|| screen.wait_for(what, 60));
    wait_for("WEATHER_API_KEY (not shown): ");
    assert_eq!(fakes.log(), "", "asked before anything runs");
    keyboard.write_all(format!("{key}\r").as_bytes()).unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    wait_for("Deployed. Write to @");
    assert!(status.success(), "{status:?}\n{}", screen.text());
    assert!(!screen.text().contains(&key), "echoed: {}", screen.text());
    assert_eq!(
        stored_bot_secrets(&fakes),
        Some((1, json!({"WEATHER_API_KEY": key})))
    );
    for line in commands(&fakes.log()) {
        assert!(!line.contains(&key), "on a command line: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_token_not_in_the_environment_is_typed_at_a_hidden_prompt() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    let Terminal {
        mut child,
        screen,
        mut keyboard,
    } = deploy_in_a_terminal(&fakes, &stand_in, &["--store-token"]);
    let wait_for = |what| tokio::task::block_in_place(|| screen.wait_for(what, 60));
    wait_for("Bot token from @BotFather (not shown): ");
    assert_eq!(fakes.log(), "", "asked before anything runs");
    keyboard.write_all(format!("{token}\r").as_bytes()).unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    wait_for("Deployed. Write to @");
    assert!(status.success(), "{status:?}\n{}", screen.text());
    assert!(!screen.text().contains(&token), "echoed: {}", screen.text());
    assert_eq!(fakes.stored(TOKEN_PARAMETER), Some((1, token.clone())));
    let log = fakes.log();
    assert!(!given_a_secret_by_the_script(&log), "{log}");
    for line in commands(&log) {
        assert!(!line.contains(&token), "on a command line: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tool_but_bot_is_given_the_token_or_the_webhook_secret() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    let secret = stored_secret();
    // No BOT_BIN: cargo builds `bot` (the fake cargo: into this target
    // directory), and every dependency's build script would run.
    let target = fakes.dir.join("target").display().to_string();
    let output = deploy(
        &fakes,
        &stand_in,
        &["--store-token"],
        &[
            ("TELEGRAM_BOT_TOKEN", &token),
            ("TELEGRAM_WEBHOOK_SECRET", &secret),
            ("BOT_BIN", ""),
            ("CARGO_TARGET_DIR", &target),
        ],
    )
    .await;
    assert_deployed(&fakes, &output);
    assert_logged(&fakes, "cargo lambda --version\n");
    assert_logged(
        &fakes,
        "cargo build --quiet --release -p bot-cli --bin bot\n",
    );
    // `bot`, the one built, was given both.
    assert_eq!(
        stand_in.calls_to("setWebhook")[0]["secret_token"],
        secret.as_str()
    );
    assert_eq!(fakes.stored(SECRET_PARAMETER), Some((1, secret.clone())));
    // cargo, aws and sam: never either.
    assert_no_secret_shown(&fakes, &output, &[&token, &secret]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_redeploy_keeps_every_option_the_stack_has() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store("/ops/bot-token", 1, stand_in.token());
    fakes.store(SECRET_PARAMETER, 1, &stored_secret());
    let options = [
        "--endpoint",
        "FunctionUrl",
        "--architecture",
        "x86_64",
        "--reserved-concurrency",
        "20",
        "--memory",
        "Off",
        "--token-parameter",
        "/ops/bot-token",
    ];
    let output = deploy(&fakes, &stand_in, &options, &[]).await;
    assert_deployed(&fakes, &output);
    let as_deployed = "EndpointType=\\\"FunctionUrl\\\" BotTokenParameter=\\\"/ops/bot-token\\\" BotUsername=\\\"EchoLambdaBot\\\" ReservedConcurrency=\\\"20\\\" Memory=\\\"Off\\\"";
    assert_logged(&fakes, as_deployed);

    // "Run scripts/deploy again": the stack read first, every option kept.
    fakes.clear_log();
    let output = deploy(&fakes, &stand_in, &[], &[]).await;
    assert_deployed(&fakes, &output);
    let log = fakes.log();
    assert!(
        position(&log, "aws cloudformation describe-stacks --stack-name telegram-bot --query Stacks[0].[StackStatus,Parameters[].[ParameterKey,ParameterValue]] --output text")
            < position(&log, "aws ssm get-parameter --name /ops/bot-token "),
        "{log}"
    );
    assert_printed(&output, "==> the stack telegram-bot\nfound (CREATE_COMPLETE)\nkeeping Architecture=x86_64, EndpointType=FunctionUrl, BotTokenParameter=/ops/bot-token, ReservedConcurrency=20, Memory=Off from the stack\n");
    assert_logged(
        &fakes,
        "sam build --parameter-overrides Architecture=x86_64\n",
    );
    assert_logged(&fakes, as_deployed);
    assert_eq!(
        stand_in.calls_to("setWebhook")[1]["max_connections"],
        20,
        "not reset to 40"
    );
    let menu: Vec<String> = stand_in
        .commands()
        .iter()
        .map(|c| c.command.clone())
        .collect();
    assert_eq!(menu, ["start", "help"], "still without memory");
    assert_eq!(
        fakes
            .stack_parameter("telegram-bot", "EndpointType")
            .as_deref(),
        Some("FunctionUrl")
    );

    // One option given: that one changes, the others stay.
    fakes.clear_log();
    let output = deploy(&fakes, &stand_in, &["--memory", "DynamoDB"], &[]).await;
    assert_deployed(&fakes, &output);
    assert_printed(&output, "keeping Architecture=x86_64, EndpointType=FunctionUrl, BotTokenParameter=/ops/bot-token, ReservedConcurrency=20 from the stack\n");
    assert_logged(&fakes, "EndpointType=\\\"FunctionUrl\\\" BotTokenParameter=\\\"/ops/bot-token\\\" BotUsername=\\\"EchoLambdaBot\\\" ReservedConcurrency=\\\"20\\\" Memory=\\\"DynamoDB\\\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_that_cannot_be_read_stops_the_deploy_before_any_change() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let token = stand_in.token().to_owned();
    for (code, shown) in [
        (
            "AccessDeniedException",
            "is not authorized to perform: cloudformation:DescribeStacks",
        ),
        (
            "ThrottlingException",
            "(ThrottlingException) when calling the DescribeStacks operation: Rate exceeded",
        ),
    ] {
        let fakes = all_fakes();
        let secret = fakes.store_as_deployed(&token);
        fakes.stack(
            "telegram-bot",
            "UPDATE_COMPLETE",
            &[("EndpointType", "FunctionUrl")],
        );
        let output = deploy(
            &fakes,
            &stand_in,
            &[],
            &[
                ("FAKE_FAIL", "aws cloudformation describe-stacks"),
                ("FAKE_FAIL_CODE", code),
            ],
        )
        .await;
        assert_stopped_before_any_change(
            &fakes,
            &stand_in,
            &output,
            &[
                "deploy: could not read the stack telegram-bot, so nothing was changed: ",
                shown,
            ],
            &[&secret, &token],
        );
    }

    // A value that cannot be kept: it would break samconfig.toml's quoting.
    let fakes = all_fakes();
    let secret = fakes.store_as_deployed(&token);
    fakes.stack(
        "telegram-bot",
        "UPDATE_COMPLETE",
        &[("ApiBaseUrl", "https://api.telegram.org\"x")],
    );
    let output = run_deploy(&fakes, &[], &[]).await;
    assert_stopped_before_any_change(
        &fakes,
        &stand_in,
        &output,
        &["deploy: the stack's ApiBaseUrl (https://api.telegram.org\"x) must be an http:// or https:// URL (A-Z a-z 0-9 and . _ ~ : / @ % + - [ ]): give --api-base-url to replace it"],
        &[&secret, &token],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_deploy_that_failed_is_deleted_then_deployed_again() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    let output = deploy(
        &fakes,
        &stand_in,
        &["--store-token", "--endpoint", "FunctionUrl"],
        &[("TELEGRAM_BOT_TOKEN", &token), ("FAKE_FAIL", "sam deploy")],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("deploy: sam deploy failed"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        fakes.stack_status("telegram-bot").as_deref(),
        Some("ROLLBACK_COMPLETE")
    );

    // A deletion that fails stops the deploy, saying why.
    fakes.clear_log();
    let output = deploy(
        &fakes,
        &stand_in,
        &[],
        &[("FAKE_FAIL", "aws cloudformation delete-stack")],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("deploy: aws cloudformation delete-stack failed for telegram-bot: ")
            && err.contains("cloudformation:DeleteStack"),
        "{err}"
    );
    assert!(!fakes.log().contains("sam deploy"), "{}", fakes.log());

    // The next deploy deletes the stack that never deployed, then deploys.
    fakes.clear_log();
    let output = deploy(&fakes, &stand_in, &[], &[]).await;
    assert_deployed(&fakes, &output);
    assert_printed(
        &output,
        "found (ROLLBACK_COMPLETE)\nkeeping EndpointType=FunctionUrl from the stack\n",
    );
    assert_printed(&output, "==> deleting the stack telegram-bot, which never deployed (ROLLBACK_COMPLETE: its first deploy failed)\n");
    let log = fakes.log();
    let build = position(&log, "sam build");
    let delete = position(
        &log,
        "aws cloudformation delete-stack --stack-name telegram-bot",
    );
    let wait = position(
        &log,
        "aws cloudformation wait stack-delete-complete --stack-name telegram-bot",
    );
    let sam_deploy = position(&log, "sam deploy");
    assert!(
        build < delete && delete < wait && wait < sam_deploy,
        "{log}"
    );
    assert_eq!(
        fakes.stack_status("telegram-bot").as_deref(),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(
        fakes
            .stack_parameter("telegram-bot", "EndpointType")
            .as_deref(),
        Some("FunctionUrl")
    );
    assert_eq!(stand_in.calls_to("setWebhook").len(), 1);
    assert_no_secret_shown(&fakes, &output, &[&token]);
}

/// Telegram refusing the next setWebhook.
fn refuse_set_webhook(stand_in: &StandIn) {
    stand_in.inject(
        "setWebhook",
        Fault::Error {
            status: 400,
            description:
                "Bad Request: bad webhook: Failed to resolve host: Name or service not known"
                    .to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_set_webhook_after_a_rotation_says_the_webhook_has_the_old_secret() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let token = stand_in.token().to_owned();
    let old = fakes.store_as_deployed(&token);
    refuse_set_webhook(&stand_in);
    let output = deploy(
        &fakes,
        &stand_in,
        &["--new-secret", "--region", "eu-west-1"],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let (version, new) = fakes.stored(SECRET_PARAMETER).unwrap();
    assert_eq!(version, 2);
    assert_logged(&fakes, "WebhookSecretVersion=\\\"2\\\"");
    let err = stderr(&output);
    for said in [
        "deploy: setWebhook failed (see above): the webhook still has the old secret while the function has the new one (version 2 of /telegram-bot/webhook-secret), so the function refuses every delivery (401)",
        "\n  scripts/deploy --stack-name telegram-bot --region eu-west-1\n",
        "\nor only the webhook:\n  TELEGRAM_BOT_TOKEN_PARAMETER=/telegram-bot/bot-token TELEGRAM_WEBHOOK_SECRET=\"$(aws ssm get-parameter --name /telegram-bot/webhook-secret --with-decryption --query Parameter.Value --output text --region eu-west-1)\" AWS_REGION=eu-west-1 TELEGRAM_API_BASE_URL=",
        &format!(" cargo bot webhook set --url {}\n", fakes.url),
    ] {
        assert!(err.contains(said), "{said:?} not said: {err}");
    }
    assert_no_secret_shown(&fakes, &output, &[&old, &new, &token]);

    // The command it names: the deploy again sets the new secret.
    let output = deploy(&fakes, &stand_in, &["--region", "eu-west-1"], &[]).await;
    assert_deployed(&fakes, &output);
    let sets = stand_in.calls_to("setWebhook");
    assert_eq!(sets.last().unwrap()["secret_token"], new.as_str());

    // Without a new secret, no such claim: only how to set the webhook.
    refuse_set_webhook(&stand_in);
    let output = deploy(&fakes, &stand_in, &["--region", "eu-west-1"], &[]).await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("deploy: setWebhook failed (see above); the stack is deployed: set the webhook by running the deploy again: scripts/deploy --stack-name telegram-bot --region eu-west-1\n"),
        "{err}"
    );
    assert!(!err.contains("old secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_api_url_left_in_the_shell_does_not_redirect_the_deploy() {
    // The shell still names a local run's stand-in. The deploy calls the
    // stack's API (here Telegram's), which no test may reach: so it stops,
    // before `bot` runs, rather than follow the shell or leave the person
    // believing it did.
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let local = stand_in.base_url();
    let token = stand_in.token().to_owned();
    for (stack, source) in [(true, "the stack's ApiBaseUrl"), (false, "the default")] {
        let fakes = all_fakes();
        let secret = fakes.store_as_deployed(&token);
        if stack {
            fakes.stack(
                "telegram-bot",
                "UPDATE_COMPLETE",
                &[("ApiBaseUrl", "https://api.telegram.org")],
            );
        }
        let output = run_deploy(&fakes, &[], &[("TELEGRAM_API_BASE_URL", &local)]).await;
        let refused = format!("deploy: TELEGRAM_API_BASE_URL in this shell is {local}, but this deploy uses https://api.telegram.org ({source}): unset TELEGRAM_API_BASE_URL, or give --api-base-url {local} to deploy the bot against that API; nothing was changed");
        assert_stopped_before_any_change(
            &fakes,
            &stand_in,
            &output,
            &[&refused],
            &[&secret, &token],
        );
        assert_eq!(fakes.bot_log(), "", "bot never ran");
    }

    // --api-base-url says which API is meant: the shell's is not used.
    let decoy = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store_as_deployed(&token);
    let output = deploy(
        &fakes,
        &stand_in,
        &[],
        &[("TELEGRAM_API_BASE_URL", &decoy.base_url())],
    )
    .await;
    assert_deployed(&fakes, &output);
    assert!(decoy.calls().is_empty(), "the shell's API was called");
    assert_eq!(stand_in.calls_to("setWebhook").len(), 1);
    assert!(
        stderr(&output).contains(&format!(
            "deploy: note: TELEGRAM_API_BASE_URL in this shell ({}) is not used: --api-base-url is\n",
            decoy.base_url()
        )),
        "{}",
        stderr(&output)
    );
    assert_printed(&output, &format!("==> the Bot API: {local}\n"));
    assert_logged(&fakes, &format!("ApiBaseUrl=\\\"{local}\\\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_runs_settings_never_reach_bot() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    let secret = fakes.store_as_deployed(stand_in.token());
    let output = deploy(
        &fakes,
        &stand_in,
        &[],
        &[
            // A certificate `bot` would fail to read, parameters of another
            // bot, another bot's name.
            ("SSL_CERT_FILE", "/nonexistent/stand-in.pem"),
            ("TELEGRAM_BOT_TOKEN_PARAMETER", "/other-bot/bot-token"),
            (
                "TELEGRAM_WEBHOOK_SECRET_PARAMETER",
                "/other-bot/webhook-secret",
            ),
            ("TELEGRAM_BOT_USERNAME", "OtherBot"),
        ],
    )
    .await;
    assert_deployed(&fakes, &output);
    assert!(
        stderr(&output).contains("deploy: note: not used by the deploy (left by a local run?): TELEGRAM_BOT_TOKEN_PARAMETER, TELEGRAM_WEBHOOK_SECRET_PARAMETER, TELEGRAM_BOT_USERNAME, SSL_CERT_FILE\n"),
        "{}",
        stderr(&output)
    );
    assert!(
        fakes.bot_log().contains("bot webhook set"),
        "{}",
        fakes.bot_log()
    );
    // The name getMe gives, not the shell's.
    assert_logged(&fakes, "BotUsername=\\\"EchoLambdaBot\\\"");
    assert!(!fakes.log().contains("other-bot"), "{}", fakes.log());
    assert_no_secret_shown(&fakes, &output, &[&secret, stand_in.token()]);
}

/// Every `"${name[@]}"` in the bash scripts, unless written in the guarded
/// form `${name[@]+"${name[@]}"}`: bash before 4.4 (macOS ships 3.2) takes
/// an empty array expanded that way under `set -u` for an unbound variable,
/// and no bash here is old enough to show it by running the scripts.
fn unguarded_array_expansions(script: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (number, line) in script.lines().enumerate() {
        let mut from = 0;
        while let Some(at) = line[from..].find("\"${").map(|at| from + at) {
            let after = &line[at + 3..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let expanded = !name.is_empty() && after[name.len()..].starts_with("[@]}\"");
            if expanded && !line[..at].ends_with(&format!("${{{name}[@]+")) {
                found.push(format!("line {}: {}", number + 1, line.trim()));
            }
            from = at + 3;
        }
    }
    found
}

#[test]
fn the_scripts_expand_arrays_in_the_form_bash_3_2_accepts() {
    assert_eq!(
        unguarded_array_expansions("a \"${args[@]}\" b ${args[@]+\"${args[@]}\"} \"${#args[@]}\""),
        ["line 1: a \"${args[@]}\" b ${args[@]+\"${args[@]}\"} \"${#args[@]}\""],
        "the check itself finds the one unguarded expansion"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let mut unguarded = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.starts_with("#!/usr/bin/env bash") {
            continue;
        }
        checked += 1;
        for found in unguarded_array_expansions(&text) {
            unguarded.push(format!("{}: {found}", path.display()));
        }
    }
    assert!(
        checked >= 3,
        "found only {checked} bash scripts in {}",
        dir.display()
    );
    assert!(
        unguarded.is_empty(),
        "write these as ${{a[@]+\"${{a[@]}}\"}}:\n{}",
        unguarded.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_is_turned_on_with_its_key_and_kept_on_redeploy() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store_as_deployed(stand_in.token());
    // Without its key the function could not start: nothing is changed.
    let output = deploy(
        &fakes,
        &stand_in,
        &["--assistant-model", "gpt-4o-mini"],
        &[],
    )
    .await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("needs its API key: give --secret ASSISTANT_API_KEY"),
        "{}",
        stderr(&output)
    );
    assert!(!fakes.log().contains("sam deploy"), "{}", fakes.log());

    let key = api_key();
    let output = deploy(
        &fakes,
        &stand_in,
        &[
            "--assistant-model",
            "gpt-4o-mini",
            "--secret",
            "ASSISTANT_API_KEY",
        ],
        &[("ASSISTANT_API_KEY", &key)],
    )
    .await;
    assert_deployed(&fakes, &output);
    let on =
        "AssistantModel=\\\"gpt-4o-mini\\\" AssistantBaseUrl=\\\"https://api.openai.com/v1\\\"";
    assert_logged(&fakes, on);
    assert_eq!(
        stored_bot_secrets(&fakes),
        Some((1, json!({"ASSISTANT_API_KEY": key})))
    );

    // A plain redeploy keeps the model; another API's URL is taken as given.
    fakes.clear_log();
    let output = deploy(&fakes, &stand_in, &[], &[]).await;
    assert_deployed(&fakes, &output);
    assert_logged(&fakes, on);
    assert_printed(&output, "AssistantModel=gpt-4o-mini");
    fakes.clear_log();
    let output = deploy(
        &fakes,
        &stand_in,
        &["--assistant-base-url", "https://models.example.com/v1/"],
        &[],
    )
    .await;
    assert_deployed(&fakes, &output);
    assert_logged(
        &fakes,
        "AssistantBaseUrl=\\\"https://models.example.com/v1\\\"",
    );
    // '' turns it off.
    fakes.clear_log();
    let output = deploy(&fakes, &stand_in, &["--assistant-model", ""], &[]).await;
    assert_deployed(&fakes, &output);
    assert_logged(&fakes, "AssistantModel=\\\"\\\"");
    let output = deploy(&fakes, &stand_in, &["--assistant-model", "a\"b"], &[]).await;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--assistant-model must be a model name"));
    assert_no_secret_shown(&fakes, &output, &[&key]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_is_turned_on_kept_on_redeploy_and_needs_the_store() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let fakes = all_fakes();
    fakes.store(TOKEN_PARAMETER, 1, stand_in.token());
    fakes.store(SECRET_PARAMETER, 1, &stored_secret());
    // Without the store there is nowhere for its protocol: refused before
    // anything changes.
    let output = deploy(
        &fakes,
        &stand_in,
        &["--queue", "On", "--memory", "Off"],
        &[],
    )
    .await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--queue On needs --memory DynamoDB"),
        "{}",
        stderr(&output)
    );
    assert!(!fakes.log().contains("sam deploy"), "{}", fakes.log());
    let output = deploy(&fakes, &stand_in, &["--queue", "Maybe"], &[]).await;
    assert!(stderr(&output).contains("--queue must be On or Off"));

    let output = deploy(
        &fakes,
        &stand_in,
        &["--queue", "On", "--worker-timeout", "180"],
        &[],
    )
    .await;
    assert_deployed(&fakes, &output);
    let on = "Queue=\\\"On\\\" WorkerTimeout=\\\"180\\\"";
    assert_logged(&fakes, on);
    // A plain redeploy keeps it.
    fakes.clear_log();
    let output = deploy(&fakes, &stand_in, &[], &[]).await;
    assert_deployed(&fakes, &output);
    assert_logged(&fakes, on);
    assert_printed(&output, "Queue=On, WorkerTimeout=180");
    let output = deploy(&fakes, &stand_in, &["--worker-timeout", "900"], &[]).await;
    assert!(stderr(&output).contains("--worker-timeout must be 120, 150 or 180"));
}
