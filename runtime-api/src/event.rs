//! The event a Lambda Function URL builds for an HTTP request (payload
//! format 2.0), for front ends that turn a local request into an
//! invocation: `bot chat`'s, and the tests'.

use serde_json::{json, Map, Value};

/// The Function URL event for a request with `parts` and `body`: headers
/// as text (a value that is not is left out, as Lambda does), a body that
/// is not UTF-8 in base64.
pub fn function_url_event(parts: &hyper::http::request::Parts, body: &[u8]) -> Value {
    let headers: Map<String, Value> = parts
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let value = value.to_str().ok()?;
            Some((name.as_str().to_owned(), Value::String(value.to_owned())))
        })
        .collect();
    let path = parts.uri.path();
    let (body, is_base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => {
            use base64::Engine;
            (base64::engine::general_purpose::STANDARD.encode(body), true)
        }
    };
    let user_agent = parts
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": parts.uri.query().unwrap_or_default(),
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": "local.lambda-url.us-east-1.on.aws",
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": user_agent,
            },
            "requestId": "local",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": is_base64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_becomes_the_event_a_function_url_sends() {
        let (parts, ()) = hyper::Request::post("/webhook?x=1")
            .header("x-telegram-bot-api-secret-token", "s")
            .body(())
            .unwrap()
            .into_parts();
        let event = function_url_event(&parts, br#"{"update_id":1}"#);
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
        assert_eq!(event["rawPath"], "/webhook");
        assert_eq!(event["rawQueryString"], "x=1");
        assert_eq!(event["headers"]["x-telegram-bot-api-secret-token"], "s");
        assert_eq!(event["body"], r#"{"update_id":1}"#);
        assert_eq!(event["isBase64Encoded"], false);
        let binary = function_url_event(&parts, &[0xff, 0x00]);
        assert_eq!(
            (binary["body"].as_str(), binary["isBase64Encoded"].as_bool()),
            (Some("/wA="), Some(true))
        );
    }
}
