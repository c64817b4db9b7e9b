//! The Bot API client against the stand-in: typed calls round trip, failures
//! are classified, and no error shows the token. What the stand-in itself
//! refuses is tested in stand-in/tests.

use crate::helpers::{api_for, config, try_config};
use serde_json::{json, Value};
use std::time::Duration;
use telegram_lambda_bot::config::{Config, ConfigError};
use telegram_lambda_bot::runtime::client::{ApiError, BotApi, Failure};
use telegram_lambda_bot::runtime::error::chain;
use telegram_lambda_bot::telegram::{GetUpdates, SetWebhook};
use telegram_stand_in::{Options, StandIn, DEFAULT_TOKEN};

#[tokio::test]
async fn configuration_errors_are_classified_and_never_show_the_token() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let api = api_for(&stand_in);
    let error = api
        .call::<_, Value>("noSuchMethod", &json!({}), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(error.failure(), Failure::Configuration);
    let shown = format!("{error} {error:?} {} {api:?}", chain(&error));
    let secret = DEFAULT_TOKEN.split(':').nth(1).unwrap();
    assert!(!shown.contains(secret), "{shown}");
}

#[tokio::test]
async fn transport_errors_never_show_the_token() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let closed_url = format!("http://127.0.0.1:{port}");
    let api = BotApi::new(&config(&[
        ("TELEGRAM_BOT_TOKEN", stand_in.token()),
        ("TELEGRAM_API_BASE_URL", &closed_url),
        ("TELEGRAM_HTTP_TIMEOUT_SECS", "2"),
    ]))
    .unwrap();
    let error = api.get_me().await.unwrap_err();
    assert!(matches!(error, ApiError::Connect { .. }), "{error:?}");
    assert_eq!(error.failure(), Failure::Retryable { retry_after: None });
    let shown = format!("{error} {error:?} {}", chain(&error));
    assert!(
        !shown.contains(DEFAULT_TOKEN.split(':').nth(1).unwrap()),
        "{shown}"
    );
    assert!(!shown.contains("/bot"), "{shown}");
}

#[tokio::test]
async fn get_me_names_the_bot() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let me = api_for(&stand_in).get_me().await.unwrap();
    assert!(me.is_bot);
    assert_eq!(me.username.as_deref(), Some("EchoLambdaBot"));
    assert_eq!(me.id.0, 123_456_789);
}

#[tokio::test]
async fn webhook_answers_are_decoded_and_classified() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let api = api_for(&stand_in);
    let set = SetWebhook {
        url: "https://example.invalid/webhook".to_owned(),
        secret_token: Some("s3cret".to_owned()),
        allowed_updates: Some(vec!["message".to_owned()]),
        max_connections: Some(10),
        drop_pending_updates: None,
    };
    assert!(api.set_webhook(&set).await.unwrap());
    let again = api.set_webhook(&set).await.unwrap_err();
    assert_eq!(
        again.failure(),
        Failure::Retryable {
            retry_after: Some(Duration::from_secs(1))
        }
    );
    let info = api.get_webhook_info().await.unwrap();
    assert_eq!(info.url, set.url);
    assert_eq!(info.max_connections, Some(10));
    assert_eq!(info.allowed_updates, set.allowed_updates);
    // getUpdates is refused while a webhook is set, as Telegram does.
    let conflict = api.get_updates(&GetUpdates::default()).await.unwrap_err();
    assert_eq!(conflict.status(), Some(409));
    assert_eq!(conflict.failure(), Failure::Configuration);
    assert!(
        conflict
            .to_string()
            .contains("can't use getUpdates method while webhook is active"),
        "Telegram's words reach the error: {conflict}"
    );
    assert!(api.delete_webhook(false).await.unwrap());
    assert_eq!(api.get_webhook_info().await.unwrap().url, "");
    // The stand-in's own rules for setWebhook (ports, schemes, the rate)
    // are tested in stand-in/tests/it/updates.rs.
}

#[tokio::test]
async fn get_updates_confirms_with_offset_and_long_polls() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let api = api_for(&stand_in);
    for id in [5, 6, 7] {
        stand_in.enqueue_update(json!({"update_id": id, "message": {
            "message_id": id, "date": 1, "text": "x", "chat": {"id": 42, "type": "private"}}}));
    }
    let all = api.get_updates(&GetUpdates::default()).await.unwrap();
    assert_eq!(all.iter().map(|u| u.id.0).collect::<Vec<_>>(), [5, 6, 7]);
    let rest = api
        .get_updates(&GetUpdates {
            offset: Some(telegram_lambda_bot::telegram::UpdateId(7)),
            ..GetUpdates::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|u| u.id.0).collect::<Vec<_>>(), [7]);
    // Confirmed updates are gone; a long poll returns as soon as one arrives.
    let poll = {
        let api = api.clone();
        tokio::spawn(async move {
            api.get_updates(&GetUpdates {
                offset: Some(telegram_lambda_bot::telegram::UpdateId(8)),
                timeout: Some(10),
                ..GetUpdates::default()
            })
            .await
        })
    };
    // Waiting or not when it arrives, the poll returns it (the stand-in's
    // tests time the long poll itself).
    stand_in.enqueue_update(json!({"update_id": 8, "message": {
        "message_id": 8, "date": 1, "text": "x", "chat": {"id": 42, "type": "private"}}}));
    let arrived = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("the long poll returned when the update arrived")
        .unwrap()
        .unwrap();
    assert_eq!(arrived.iter().map(|u| u.id.0).collect::<Vec<_>>(), [8]);
}

fn config_with_cert_file(path: &std::path::Path) -> Result<Config, ConfigError> {
    let path = path.display().to_string();
    try_config(&[
        ("TELEGRAM_BOT_TOKEN", DEFAULT_TOKEN),
        ("SSL_CERT_FILE", &path),
    ])
}

#[test]
fn ssl_cert_file_certificates_are_trusted_in_addition() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-ca.pem");
    assert!(BotApi::new(&config_with_cert_file(&fixture).unwrap()).is_ok());
}

#[test]
fn an_unusable_ssl_cert_file_is_a_clear_init_error() {
    let dir = std::env::temp_dir().join(format!("certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "no certificates here\n").unwrap();
    for (path, expected) in [
        (dir.join("missing.pem"), "No such file"),
        (empty, "holds no certificate"),
    ] {
        // Read with the rest of the configuration, before any client exists.
        let error = config_with_cert_file(&path).unwrap_err().to_string();
        assert!(error.starts_with("SSL_CERT_FILE"), "{error}");
        assert!(error.contains(expected), "{error}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_https_stand_in_is_trusted_only_through_ssl_cert_file() {
    let (stand_in, ca_pem) = StandIn::start_tls(Options::default()).await.unwrap();
    assert!(stand_in.base_url().starts_with("https://"));
    let dir = std::env::temp_dir().join(format!("https-stand-in-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("stand-in-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let base_url = stand_in.base_url();
    let ca = ca_file.display().to_string();
    let api = |cert_file: Option<&str>| {
        let mut vars = vec![
            ("TELEGRAM_BOT_TOKEN", stand_in.token()),
            ("TELEGRAM_API_BASE_URL", base_url.as_str()),
        ];
        vars.extend(cert_file.map(|path| ("SSL_CERT_FILE", path)));
        BotApi::new(&config(&vars)).unwrap()
    };

    let me = api(Some(&ca)).get_me().await.unwrap();
    assert_eq!(me.username.as_deref(), Some("EchoLambdaBot"));
    // Without the CA the certificate is refused before any request is sent.
    let error = api(None).get_me().await.unwrap_err();
    assert_eq!(error.failure(), Failure::Retryable { retry_after: None });
    let shown = chain(&error);
    assert!(shown.contains("certificate"), "{shown}");
    assert_eq!(stand_in.calls_to("getMe").len(), 1);
    assert_eq!(stand_in.tls_handshakes(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_redirect_is_never_followed_so_the_token_stays_with_the_bot_api() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Where a redirect would take the token's path.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_addr = elsewhere.local_addr().unwrap();
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    tokio::spawn(async move {
        while elsewhere.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let redirecting = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", redirecting.local_addr().unwrap());
    tokio::spawn(async move {
        // Bounded: the client makes one request.
        for _ in 0..4 {
            let Ok((mut stream, _)) = redirecting.accept().await else {
                return;
            };
            let mut buffer = vec![0u8; 16 * 1024];
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buffer[..n]).into_owned();
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{elsewhere_addr}{path}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    let api = BotApi::new(&config(&[
        ("TELEGRAM_BOT_TOKEN", DEFAULT_TOKEN),
        ("TELEGRAM_API_BASE_URL", &base_url),
    ]))
    .unwrap();
    let error = api.get_me().await.unwrap_err();
    assert_eq!(reached.load(Ordering::SeqCst), 0, "followed the redirect");
    let shown = format!("{error} {error:?} {}", chain(&error));
    assert!(
        !shown.contains(DEFAULT_TOKEN.split(':').nth(1).unwrap()),
        "{shown}"
    );
}
