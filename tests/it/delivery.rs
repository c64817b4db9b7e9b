//! The real handler behind a Function URL-like HTTP server, with the
//! stand-in delivering to it as Telegram does: a failed reply is answered
//! with an error status, delivered again and answered once. The stand-in's
//! delivery rules themselves are tested in stand-in/tests. Telegram time is
//! scaled so that its seconds take milliseconds.

use crate::helpers::{serve_function, webhook_for, SECRET};
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::runtime::client::BotApi;
use telegram_lambda_bot::telegram::SetWebhook;
use telegram_stand_in::{Fault, Options, StandIn};
use testkit::texts;

/// 1 Telegram second = 10 ms.
const SCALE: f64 = 0.01;

async fn stand_in() -> StandIn {
    StandIn::start(Options {
        time_scale: SCALE,
        ..Options::default()
    })
    .await
    .unwrap()
}

async fn set_webhook(stand_in: &StandIn, url: &str, allowed: &[&str]) -> BotApi {
    let api = crate::helpers::api_for(stand_in);
    api.set_webhook(&SetWebhook {
        url: url.to_owned(),
        secret_token: Some(SECRET.to_owned()),
        allowed_updates: Some(allowed.iter().map(|k| k.to_string()).collect()),
        ..SetWebhook::default()
    })
    .await
    .unwrap();
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_fails_once_is_redelivered_and_seen_exactly_once() {
    let stand_in = stand_in().await;
    let url = serve_function(Arc::new(webhook_for(&stand_in))).await;
    let api = set_webhook(&stand_in, &url, &["message"]).await;
    stand_in.inject("sendMessage", Fault::internal_error());
    let id = stand_in.enqueue_text_from(42, "Ali", "Hi!");
    assert!(stand_in.wait_settled(id, Duration::from_secs(10)).await);
    assert_eq!(texts(&stand_in.replies_to(42)), ["You said: Hi!"]);
    assert_eq!(
        stand_in.deliveries(),
        [
            (
                id,
                "Wrong response from the webhook: 502 Bad Gateway".to_owned()
            ),
            (id, "ok".to_owned())
        ]
    );
    // Telegram keeps the last error after delivery recovered.
    let info = api.get_webhook_info().await.unwrap();
    assert_eq!(
        info.last_error_message.as_deref(),
        Some("Wrong response from the webhook: 502 Bad Gateway")
    );
    assert!(info.last_error_date.is_some());
    assert_eq!(info.pending_update_count, 0);
}
