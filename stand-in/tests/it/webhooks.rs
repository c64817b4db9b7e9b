//! setWebhook and deleteWebhook as Client::process_set_webhook_query
//! answers them: an unchanged webhook keeps its last error ("Webhook is
//! already set"); any change closes the old webhook, forgetting its error,
//! even when the new one is then refused.
//!
//! Nothing is queued here, so nothing is delivered: the URLs are never
//! contacted, and the stand-in never connects to an `ip_address`.

use crate::helpers::{private_message, stand_in, stand_in_at, Api, Reply, SCALE};
use serde_json::{json, Value};
use std::time::Duration;
use telegram_stand_in::StandIn;

const URL: &str = "http://127.0.0.1:9/hook";
const ERROR: &str = "Wrong response from the webhook: 502 Bad Gateway";

fn base() -> Value {
    json!({"url": URL, "secret_token": "s1", "max_connections": 10, "ip_address": "1.2.3.4"})
}

/// `base()` with `changes` on top; a null removes a parameter.
fn with(changes: Value) -> Value {
    let mut params = base();
    for (key, value) in changes.as_object().unwrap() {
        match value {
            Value::Null => params.as_object_mut().unwrap().remove(key),
            _ => params
                .as_object_mut()
                .unwrap()
                .insert(key.clone(), value.clone()),
        };
    }
    params
}

/// A stand-in whose one-setWebhook-a-second limit is 10 ms.
async fn scaled() -> (StandIn, Api) {
    let stand_in = stand_in_at(SCALE).await;
    let api = Api::new(&stand_in);
    (stand_in, api)
}

/// Calls setWebhook once the rate limit allows it.
async fn set(api: &Api, params: Value) -> Reply {
    tokio::time::sleep(Duration::from_millis(20)).await;
    api.call("setWebhook", params).await
}

/// Sets the base webhook and gives it a last error; returns getWebhookInfo.
async fn failing_base(stand_in: &StandIn, api: &Api) -> Value {
    set(api, base()).await.result();
    stand_in.record_delivery_error(ERROR, 5);
    let info = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(info["last_error_message"], ERROR, "{info}");
    info
}

#[tokio::test]
async fn an_unchanged_set_webhook_keeps_the_last_error_whatever_allowed_updates_say() {
    let (stand_in, api) = scaled().await;
    let unchanged = [
        json!({}),
        json!({"allowed_updates": ["callback_query"]}),
        json!({"max_connections": "10"}),
        json!({"drop_pending_updates": false}),
    ];
    for changes in unchanged {
        let before = failing_base(&stand_in, &api).await;
        let reply = set(&api, with(changes.clone())).await;
        assert_eq!(reply.result(), &json!(true), "{changes}");
        assert_eq!(reply.body["description"], "Webhook is already set");
        let after = api.ok("getWebhookInfo", json!({})).await;
        assert_eq!(
            after["last_error_date"], before["last_error_date"],
            "{changes}"
        );
        assert_eq!(after["last_error_message"], ERROR, "{changes}");
    }
    // Only the allowed updates changed.
    let info = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(info["allowed_updates"], json!(["callback_query"]));
    assert_eq!(info["ip_address"], "1.2.3.4");
    assert_eq!(info["max_connections"], 10);
}

#[tokio::test]
async fn any_other_change_sets_the_webhook_afresh_without_the_last_error() {
    let (stand_in, api) = scaled().await;
    let changed = [
        json!({"url": "http://127.0.0.1:9/other"}),
        json!({"secret_token": "s2"}),
        json!({"secret_token": null}),
        json!({"max_connections": 11}),
        json!({"max_connections": null}),
        json!({"drop_pending_updates": true}),
        json!({"ip_address": "1.2.3.5"}),
        json!({"ip_address": ""}),
        json!({"ip_address": null}),
    ];
    for changes in changed {
        failing_base(&stand_in, &api).await;
        let reply = set(&api, with(changes.clone())).await;
        assert_eq!(reply.result(), &json!(true), "{changes}");
        assert_eq!(reply.body["description"], "Webhook was set", "{changes}");
        let info = api.ok("getWebhookInfo", json!({})).await;
        assert!(info.get("last_error_date").is_none(), "{changes}: {info}");
        assert!(
            info.get("last_error_message").is_none(),
            "{changes}: {info}"
        );
    }
    let info = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(info["url"], URL);
    // Without a fixed address, the address the URL resolved to.
    assert_eq!(info["ip_address"], "127.0.0.1");
}

#[tokio::test]
async fn delete_webhook_forgets_the_last_error_and_says_whether_there_was_one() {
    let (stand_in, api) = scaled().await;
    failing_base(&stand_in, &api).await;
    let deleted = api.call("deleteWebhook", json!({})).await;
    assert_eq!(deleted.result(), &json!(true));
    assert_eq!(deleted.body["description"], "Webhook was deleted");
    let info = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(info["url"], "");
    assert!(info.get("last_error_message").is_none(), "{info}");
    // An empty URL deletes too; with nothing to delete, dropping updates is
    // still done.
    stand_in.enqueue_update(private_message(7, 10, 42));
    for (method, params) in [
        ("deleteWebhook", json!({})),
        ("setWebhook", json!({"url": ""})),
        ("deleteWebhook", json!({"drop_pending_updates": true})),
    ] {
        let again = api.call(method, params.clone()).await;
        assert_eq!(again.result(), &json!(true), "{method} {params}");
        assert_eq!(
            again.body["description"], "Webhook is already deleted",
            "{method} {params}"
        );
    }
    assert!(stand_in.pending_updates().is_empty());
    // Set again, the same webhook starts without the old error.
    let reply = set(&api, base()).await;
    assert_eq!(reply.body["description"], "Webhook was set");
    let info = api.ok("getWebhookInfo", json!({})).await;
    assert!(info.get("last_error_message").is_none(), "{info}");
}

#[tokio::test]
async fn a_refused_change_leaves_no_webhook_as_at_telegram() {
    let (stand_in, api) = scaled().await;
    let refused = [
        (
            json!({"secret_token": "not ok!"}),
            "Bad Request: secret token contains unallowed characters",
        ),
        (
            json!({"secret_token": "a".repeat(257)}),
            "Bad Request: secret token is too long",
        ),
        (
            json!({"url": "http://example.invalid/hook"}),
            "Bad Request: bad webhook: An HTTPS URL must be provided for webhook",
        ),
        (
            json!({"url": "https://example.invalid:8080/hook"}),
            "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
        ),
        (
            json!({"ip_address": "nope"}),
            "Bad Request: bad webhook: Invalid IP address specified",
        ),
        (
            json!({"ip_address": "2001:db8::1"}),
            "Bad Request: bad webhook: IPv6-only addresses are not allowed",
        ),
        (
            json!({"ip_address": "10.1.2.3"}),
            "Bad Request: bad webhook: IP address 10.1.2.3 is reserved",
        ),
        (
            json!({"ip_address": "127.0.0.1"}),
            "Bad Request: bad webhook: IP address 127.0.0.1 is reserved",
        ),
        (
            json!({"ip_address": "239.1.1.1"}),
            "Bad Request: bad webhook: IP address 239.1.1.1 is reserved",
        ),
    ];
    for (changes, description) in refused {
        failing_base(&stand_in, &api).await;
        let reply = set(&api, with(changes.clone())).await;
        assert_eq!(reply.status, 400, "{changes}");
        assert_eq!(reply.description(), description, "{changes}");
        // The old webhook was closed before the new one was checked.
        let info = api.ok("getWebhookInfo", json!({})).await;
        assert_eq!(info["url"], "", "{changes}: {info}");
        assert!(info.get("last_error_message").is_none(), "{changes}");
        assert!(info.get("ip_address").is_none(), "{changes}");
    }
}

#[tokio::test]
async fn a_webhook_refused_when_it_starts_still_took_the_allowed_updates() {
    // finish_set_webhook reads allowed_updates before the WebhookActor
    // checks the address; do_set_webhook's secret check comes before both.
    let (_stand_in, api) = scaled().await;
    let bad_address = with(json!({"ip_address": "::1", "allowed_updates": ["poll"]}));
    set(&api, bad_address).await.description();
    let info = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(info["allowed_updates"], json!(["poll"]));
    let bad_secret = with(json!({"secret_token": "?", "allowed_updates": ["message"]}));
    set(&api, bad_secret).await.description();
    let info = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(info["allowed_updates"], json!(["poll"]));
}

#[tokio::test]
async fn a_set_webhook_refused_by_the_rate_limit_changes_nothing() {
    let stand_in = stand_in().await;
    let api = Api::new(&stand_in);
    let before = failing_base(&stand_in, &api).await;
    // Within the second.
    let reply = api
        .call(
            "setWebhook",
            with(json!({"url": "http://127.0.0.1:9/other"})),
        )
        .await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.description(), "Too Many Requests: retry after 1");
    let after = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(after, before);
}
