//! The token in Parameter Store: against moto's server on loopback, and
//! against a fake SSM endpoint for the answers moto cannot give.

use crate::helpers::{event, SECRET};
use std::time::Duration;
use telegram_lambda_bot::config::Config;
use telegram_lambda_bot::runtime::ssm::{ParameterError, ParameterStore, Ssm};
use telegram_lambda_bot::webhook::{handle_event, Webhook};
use telegram_stand_in::{Options, StandIn, DEFAULT_TOKEN};
use testkit::{sdk_config, stderr, Moto};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_answers_with_a_token_read_from_a_secure_string() {
    let moto = Moto::start().await;
    moto.put_secure_string("/echo-bot/token", DEFAULT_TOKEN)
        .await;
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let vars = [
        ("TELEGRAM_BOT_TOKEN_PARAMETER", "/echo-bot/token".to_owned()),
        ("TELEGRAM_API_BASE_URL", stand_in.base_url()),
        ("TELEGRAM_WEBHOOK_SECRET", SECRET.to_owned()),
    ];
    let sdk = moto.sdk_config();
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
    let webhook = Webhook::new(&config).unwrap();
    let event = event("text");
    stand_in.observe_update(&crate::helpers::update_in(&event).unwrap());
    let verdict = handle_event(
        &webhook,
        event,
        tokio::time::Instant::now() + Duration::from_secs(10),
    )
    .await;
    assert_eq!(verdict.status(), 200);
    assert_eq!(stand_in.sent_messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_secret_is_read_from_a_secure_string_with_the_token() {
    let moto = Moto::start().await;
    moto.put_secure_string("/echo-bot/token", DEFAULT_TOKEN)
        .await;
    moto.put_secure_string("/echo-bot/webhook-secret", SECRET)
        .await;
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let vars = [
        ("TELEGRAM_BOT_TOKEN_PARAMETER", "/echo-bot/token".to_owned()),
        (
            "TELEGRAM_WEBHOOK_SECRET_PARAMETER",
            "/echo-bot/webhook-secret".to_owned(),
        ),
        ("TELEGRAM_API_BASE_URL", stand_in.base_url()),
    ];
    let sdk = moto.sdk_config();
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
    let webhook = Webhook::new(&config).unwrap();
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(10);
    let event = event("text");
    stand_in.observe_update(&crate::helpers::update_in(&event).unwrap());
    assert_eq!(
        handle_event(&webhook, event.clone(), deadline())
            .await
            .status(),
        200
    );
    let mut forged = event;
    forged["headers"]["x-telegram-bot-api-secret-token"] = "a-guess".into();
    assert_eq!(
        handle_event(&webhook, forged, deadline()).await.status(),
        401
    );
    assert_eq!(stand_in.sent_messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_parameter_stops_the_function_at_init_naming_it() {
    let moto = Moto::start().await;
    moto.put_secure_string("/echo-bot/other", DEFAULT_TOKEN)
        .await;
    // The function exits at once without a Runtime API to serve it.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_webhook"))
        .env_clear()
        .envs(moto.env())
        .env("TELEGRAM_BOT_TOKEN_PARAMETER", "/echo-bot/missing")
        .env("TELEGRAM_WEBHOOK_SECRET", SECRET)
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = stderr(&output);
    assert!(
        stderr.contains("TELEGRAM_BOT_TOKEN_PARAMETER /echo-bot/missing: parameter not found"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(DEFAULT_TOKEN.split(':').nth(1).unwrap()),
        "{stderr}"
    );
}

/// One HTTP answer, whatever the request, `status` with the awsJson error
/// `kind`; returns the endpoint and the count of requests it took.
async fn refusing_endpoint(
    status: &'static str,
    kind: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = taken.clone();
    tokio::spawn(async move {
        // Bounded: the client tries a few times at most.
        for _ in 0..10 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = vec![0u8; 64 * 1024];
            let _ = stream.read(&mut buffer).await;
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = format!(
                r#"{{"__type":"{kind}","message":"User: arn:aws:sts::123456789012:assumed-role/bot/fn is not authorized to perform: ssm:GetParameters on resource: arn:aws:ssm:us-east-1:123456789012:parameter/echo-bot/token"}}"#
            );
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    (format!("http://{addr}"), taken)
}

/// SSM as it answers a role that may not read the parameter.
async fn access_denied_endpoint() -> String {
    refusing_endpoint("400 Bad Request", "AccessDeniedException")
        .await
        .0
}

#[tokio::test]
async fn a_throttled_read_is_tried_three_times_then_reported() {
    let (endpoint, taken) =
        refusing_endpoint("400 Bad Request", "com.amazonaws.ssm#ThrottlingException").await;
    let error = Ssm::from_sdk_config(&sdk_config(&endpoint))
        .get_secure_strings(&["/echo-bot/token"])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ParameterError::Other(why) if why.starts_with("400 ThrottlingException")),
        "{error:?}"
    );
    assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_refused_read_is_not_tried_again() {
    let (endpoint, taken) = refusing_endpoint("400 Bad Request", "ValidationException").await;
    let error = Ssm::from_sdk_config(&sdk_config(&endpoint))
        .get_secure_strings(&["/echo-bot/token"])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ParameterError::Other(why) if why.starts_with("400 ValidationException")),
        "{error:?}"
    );
    assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_denied_read_is_reported_as_access_denied() {
    let endpoint = access_denied_endpoint().await;
    let error = Ssm::from_sdk_config(&sdk_config(&endpoint))
        .get_secure_strings(&["/echo-bot/token"])
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_is_read_at_the_version_named() {
    let moto = Moto::start().await;
    moto.put_secure_string("/echo-bot/webhook-secret", "the_first_secret")
        .await;
    // A rotation in progress: version 2 stored, the stack still names 1.
    moto.put_secure_string("/echo-bot/webhook-secret", "the_second_secret")
        .await;
    let values = Ssm::from_sdk_config(&moto.sdk_config())
        .get_secure_strings(&["/echo-bot/webhook-secret:1", "/echo-bot/webhook-secret"])
        .await
        .unwrap();
    use secrecy::ExposeSecret;
    let values: Vec<String> = values
        .into_iter()
        .map(|v| v.unwrap().expose_secret().to_owned())
        .collect();
    assert_eq!(values, ["the_first_secret", "the_second_secret"]);
}
