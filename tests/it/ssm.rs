//! The token in Parameter Store: against moto's server on loopback, and
//! against a fake SSM endpoint for the answers moto cannot give.

use crate::helpers::{event, SECRET};
use aws_sdk_ssm::config::{Credentials, Region};
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use telegram_lambda_bot::config::Config;
use telegram_lambda_bot::ssm::{ParameterError, ParameterStore, Ssm};
use telegram_lambda_bot::webhook::{handle_event, App};
use telegram_stand_in::{Options, StandIn, DEFAULT_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// moto's server on a free loopback port, stopped when dropped.
struct Moto {
    endpoint: String,
    _child: tokio::process::Child,
}

fn moto_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return Some(PathBuf::from(path));
    }
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/moto_server");
    if tools.exists() {
        return Some(tools);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|candidate| candidate.exists())
    })
}

/// Starts moto, or explains why the test is skipped (never on CI).
async fn moto() -> Option<Moto> {
    let Some(binary) = moto_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto_server not found: scripts/test installs it"
        );
        eprintln!("skipped: moto_server not found (scripts/test installs it)");
        return None;
    };
    let port = StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _child: child,
    })
}

/// An SDK configuration that talks to `endpoint` only, with fake credentials
/// (no profile files, no instance metadata).
fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .http_client(telegram_lambda_bot::ssm::http_client())
        .credentials_provider(aws_sdk_ssm::config::SharedCredentialsProvider::new(
            Credentials::new("testing", "testing", None, None, "tests"),
        ))
        .build()
}

async fn put_secure_string(endpoint: &str, name: &str, value: &str) {
    aws_sdk_ssm::Client::new(&sdk_config(endpoint))
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
}

/// The environment a process needs to reach moto and nothing else.
fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_CONFIG_FILE", "/nonexistent".to_owned()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_answers_with_a_token_read_from_a_secure_string() {
    let Some(moto) = moto().await else { return };
    put_secure_string(&moto.endpoint, "/echo-bot/token", DEFAULT_TOKEN).await;
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let vars = [
        ("TELEGRAM_BOT_TOKEN_PARAMETER", "/echo-bot/token".to_owned()),
        ("TELEGRAM_API_BASE_URL", stand_in.base_url()),
        ("TELEGRAM_WEBHOOK_SECRET", SECRET.to_owned()),
    ];
    let sdk = sdk_config(&moto.endpoint);
    let config = Config::load_with(
        |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        },
        || async { Ssm::from_sdk_config(&sdk) },
    )
    .await
    .unwrap();
    let app = App::new(&config).unwrap();
    let event = event("text");
    stand_in.observe_update(&crate::helpers::update_in(&event).unwrap());
    let answer = handle_event(
        &app,
        event,
        tokio::time::Instant::now() + Duration::from_secs(10),
    )
    .await;
    assert_eq!(answer.status(), 200);
    assert_eq!(stand_in.sent_messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_the_token_from_parameter_store_through_the_environment() {
    let Some(moto) = moto().await else { return };
    put_secure_string(&moto.endpoint, "/echo-bot/token", DEFAULT_TOKEN).await;
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_bot"))
        .env_clear()
        .envs(aws_env(&moto.endpoint))
        .env("TELEGRAM_BOT_TOKEN_PARAMETER", "/echo-bot/token")
        .env("TELEGRAM_API_BASE_URL", stand_in.base_url())
        .args(["webhook", "info"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stand_in.calls_to("getWebhookInfo").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_parameter_stops_the_function_at_init_naming_it() {
    let Some(moto) = moto().await else { return };
    put_secure_string(&moto.endpoint, "/echo-bot/other", DEFAULT_TOKEN).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_webhook"))
        .env_clear()
        .envs(aws_env(&moto.endpoint))
        .env("TELEGRAM_BOT_TOKEN_PARAMETER", "/echo-bot/missing")
        .env("TELEGRAM_WEBHOOK_SECRET", SECRET)
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("LOG_FORMAT", "json")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TELEGRAM_BOT_TOKEN_PARAMETER /echo-bot/missing: parameter not found"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(DEFAULT_TOKEN.split(':').nth(1).unwrap()),
        "{stderr}"
    );
}

/// One HTTP answer, whatever the request: SSM as it answers a role that may
/// not read the parameter.
async fn access_denied_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Bounded: the SDK retries a few times at most.
        for _ in 0..10 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = vec![0u8; 64 * 1024];
            let _ = stream.read(&mut buffer).await;
            let body = r#"{"__type":"AccessDeniedException","message":"User: arn:aws:sts::123456789012:assumed-role/bot/fn is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:us-east-1:123456789012:parameter/echo-bot/token"}"#;
            let response = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_denied_read_is_reported_as_access_denied() {
    let endpoint = access_denied_endpoint().await;
    let error = Ssm::from_sdk_config(&sdk_config(&endpoint))
        .get_secure_string("/echo-bot/token")
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ParameterError::AccessDenied("AccessDeniedException".into())
    );
    let vars = [("TELEGRAM_BOT_TOKEN_PARAMETER", "/echo-bot/token")];
    let sdk = sdk_config(&endpoint);
    let message = Config::load_with(
        |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        },
        || async { Ssm::from_sdk_config(&sdk) },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        message.starts_with("TELEGRAM_BOT_TOKEN_PARAMETER /echo-bot/token: access denied"),
        "{message}"
    );
}
