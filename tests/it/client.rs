//! The Bot API client against the stand-in: the stand-in refuses what
//! Telegram refuses, and the client classifies each refusal.

use crate::helpers::api_for;
use serde_json::{json, Value};
use std::time::Duration;
use telegram_lambda_bot::client::{error_chain, ApiError, Failure};
use telegram_lambda_bot::telegram::{GetUpdates, SetWebhook};
use telegram_stand_in::{Options, StandIn, DEFAULT_TOKEN};

async fn stand_in_with_private_chat() -> StandIn {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    stand_in.observe_update(&json!({"update_id": 1, "message": {
        "message_id": 10, "date": 1, "text": "hi",
        "chat": {"id": 42, "type": "private", "first_name": "Ali"}
    }}));
    stand_in
}

async fn send(stand_in: &StandIn, params: Value) -> Result<Value, ApiError> {
    api_for(stand_in)
        .call("sendMessage", &params, Duration::from_secs(5))
        .await
}

fn refusal(result: Result<Value, ApiError>) -> (u16, String, Failure) {
    match result {
        Err(ApiError::Telegram {
            code, description, ..
        }) => {
            let failure = ApiError::Telegram {
                method: "sendMessage",
                code,
                description: description.clone(),
                retry_after: None,
                migrate_to_chat_id: None,
            }
            .failure();
            (code, description, failure)
        }
        other => panic!("expected Telegram's refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn send_message_checks_what_telegram_checks() {
    let stand_in = stand_in_with_private_chat().await;
    let cases = [
        (json!({"text": "x"}), "Bad Request: chat_id is empty"),
        (
            json!({"chat_id": 7, "text": "x"}),
            "Bad Request: chat not found",
        ),
        (json!({"chat_id": 42}), "Bad Request: message text is empty"),
        (
            json!({"chat_id": 42, "text": ""}),
            "Bad Request: message text is empty",
        ),
        (
            json!({"chat_id": 42, "text": " \n "}),
            "Bad Request: text must be non-empty",
        ),
        (
            json!({"chat_id": 42, "text": "a".repeat(4097)}),
            "Bad Request: message is too long",
        ),
        (
            json!({"chat_id": 42, "text": "x", "reply_parameters": {"message_id": 999}}),
            "Bad Request: message to be replied not found",
        ),
        (
            json!({"chat_id": 42, "text": "x", "reply_parameters": "nope"}),
            "Bad Request: can't parse reply parameters JSON object",
        ),
        (
            json!({"chat_id": 42, "text": "x", "message_thread_id": 5}),
            "Bad Request: message thread not found",
        ),
    ];
    for (params, description) in cases {
        let (code, got, failure) = refusal(send(&stand_in, params.clone()).await);
        assert_eq!((code, got.as_str()), (400, description), "{params}");
        assert_eq!(failure, Failure::Permanent);
    }
    assert!(stand_in.sent_messages().is_empty());
}

#[tokio::test]
async fn send_message_accepts_what_telegram_accepts() {
    let stand_in = stand_in_with_private_chat().await;
    let full_length = "😀".repeat(4096); // 4096 code points, 8192 UTF-16 units
    for params in [
        json!({"chat_id": 42, "text": "plain"}),
        json!({"chat_id": "42", "text": "chat id as a string"}),
        json!({"chat_id": 42, "text": full_length}),
        json!({"chat_id": 42, "text": "x", "reply_parameters": {"message_id": 10}}),
        json!({"chat_id": 42, "text": "x", "reply_parameters":
               {"message_id": 999, "allow_sending_without_reply": true}}),
    ] {
        let message = send(&stand_in, params.clone()).await.unwrap();
        assert!(message["message_id"].is_i64(), "{params}");
        assert_eq!(message["chat"]["id"], 42);
    }
    assert_eq!(stand_in.sent_messages().len(), 5);
}

#[tokio::test]
async fn forum_topics_seen_in_updates_accept_replies() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    stand_in.observe_update(&json!({"update_id": 1, "message": {
        "message_id": 3, "date": 1, "text": "hi", "message_thread_id": 77, "is_topic_message": true,
        "chat": {"id": -100_200, "type": "supergroup", "is_forum": true}
    }}));
    let message = send(
        &stand_in,
        json!({"chat_id": -100_200, "text": "x", "message_thread_id": 77}),
    )
    .await
    .unwrap();
    assert_eq!(message["message_thread_id"], 77);
}

#[tokio::test]
async fn form_and_query_parameters_are_accepted_and_method_names_ignore_case() {
    let stand_in = stand_in_with_private_chat().await;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/bot{}/SENDMESSAGE?chat_id=42",
        stand_in.base_url(),
        DEFAULT_TOKEN
    );
    let response = http
        .post(url)
        .form(&[("text", "from a form")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(stand_in.sent_messages()[0]["text"], "from a form");
}

#[tokio::test]
async fn wrong_token_unknown_method_and_bad_paths_answer_like_telegram() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let http = reqwest::Client::new();
    let base = stand_in.base_url();
    for (path, status, description) in [
        (
            format!("/bot{DEFAULT_TOKEN}/sendMessages"),
            404,
            "Not Found",
        ),
        (
            "/bot123:wrong-but-well-formed/getMe".to_owned(),
            401,
            "Unauthorized",
        ),
        ("/botnot-a-token/getMe".to_owned(), 404, "Not Found"),
        ("/getMe".to_owned(), 404, "Not Found"),
    ] {
        let response = http.post(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"ok": false, "error_code": status, "description": description}),
            "{path}"
        );
    }
}

#[tokio::test]
async fn configuration_errors_are_classified_and_never_show_the_token() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let api = api_for(&stand_in);
    let error = api
        .call::<_, Value>("noSuchMethod", &json!({}), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(error.failure(), Failure::Configuration);
    let shown = format!("{error} {error:?} {} {api:?}", error_chain(&error));
    let secret = DEFAULT_TOKEN.split(':').nth(1).unwrap();
    assert!(!shown.contains(secret), "{shown}");
}

#[tokio::test]
async fn transport_errors_never_show_the_token() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let mut api_config = vec![
        ("TELEGRAM_BOT_TOKEN", stand_in.token().to_owned()),
        ("TELEGRAM_API_BASE_URL", format!("http://127.0.0.1:{port}")),
    ];
    api_config.push(("TELEGRAM_HTTP_TIMEOUT_SECS", "2".to_owned()));
    let config = telegram_lambda_bot::config::Config::from_lookup(|name| {
        api_config
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let api = telegram_lambda_bot::client::BotApi::new(&config).unwrap();
    let error = api.get_me().await.unwrap_err();
    assert!(matches!(error, ApiError::Connect { .. }), "{error:?}");
    assert_eq!(error.failure(), Failure::Retryable { retry_after: None });
    let shown = format!("{error} {error:?} {}", error_chain(&error));
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
async fn webhook_methods_round_trip_and_set_webhook_is_rate_limited() {
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
    assert!(api.delete_webhook(false).await.unwrap());
    assert_eq!(api.get_webhook_info().await.unwrap().url, "");
    let bad = SetWebhook {
        url: "http://example.invalid/hook".to_owned(),
        ..SetWebhook::default()
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.set_webhook(&bad).await.unwrap_err().status(), Some(400));
    let odd_port = SetWebhook {
        url: "https://example.invalid:9000/hook".to_owned(),
        ..SetWebhook::default()
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let error = api.set_webhook(&odd_port).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("only on ports 80, 88, 443 or 8443"),
        "{error}"
    );
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    stand_in.enqueue_update(json!({"update_id": 8, "message": {
        "message_id": 8, "date": 1, "text": "x", "chat": {"id": 42, "type": "private"}}}));
    let arrived = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("the long poll returned when the update arrived")
        .unwrap()
        .unwrap();
    assert_eq!(arrived.iter().map(|u| u.id.0).collect::<Vec<_>>(), [8]);
}

fn config_with_cert_file(path: &std::path::Path) -> telegram_lambda_bot::config::Config {
    let vars = [
        ("TELEGRAM_BOT_TOKEN", DEFAULT_TOKEN.to_owned()),
        ("SSL_CERT_FILE", path.display().to_string()),
    ];
    telegram_lambda_bot::config::Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
}

#[test]
fn ssl_cert_file_certificates_are_trusted_in_addition() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-ca.pem");
    assert!(telegram_lambda_bot::client::BotApi::new(&config_with_cert_file(&fixture)).is_ok());
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
        let error = telegram_lambda_bot::client::BotApi::new(&config_with_cert_file(&path))
            .unwrap_err()
            .to_string();
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
    let api = |cert_file: Option<&std::path::Path>| {
        let vars = [
            ("TELEGRAM_BOT_TOKEN", Some(stand_in.token().to_owned())),
            ("TELEGRAM_API_BASE_URL", Some(stand_in.base_url())),
            ("SSL_CERT_FILE", cert_file.map(|p| p.display().to_string())),
        ];
        let config = telegram_lambda_bot::config::Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.clone())
        })
        .unwrap();
        telegram_lambda_bot::client::BotApi::new(&config).unwrap()
    };

    let me = api(Some(&ca_file)).get_me().await.unwrap();
    assert_eq!(me.username.as_deref(), Some("EchoLambdaBot"));
    // Without the CA the certificate is refused before any request is sent.
    let error = api(None).get_me().await.unwrap_err();
    assert_eq!(error.failure(), Failure::Retryable { retry_after: None });
    let chain = error_chain(&error);
    assert!(chain.contains("certificate"), "{chain}");
    assert_eq!(stand_in.calls_to("getMe").len(), 1);
    assert_eq!(stand_in.tls_handshakes(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}
