//! Telegram's answers: the `{ok, result, description, error_code,
//! parameters}` envelope, decoded into a result or a typed [`ApiError`], and
//! what a caller should do about each failure ([`Failure`]).

use crate::telegram::ChatId;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// The longest `retry_after` taken as given; Telegram's webhook delivery caps
/// its own at an hour, and an unbounded value would overflow time arithmetic.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What a caller should do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Trying again later can succeed: connection failure, timeout, 5xx, 429.
    /// `retry_after` is Telegram's own wait, when it gave one.
    Retryable { retry_after: Option<Duration> },
    /// This request will never succeed (400 chat not found, 403 blocked...);
    /// retrying only blocks the chat's later updates.
    Permanent,
    /// The token or base URL is wrong (401, 404), or the bot's delivery mode
    /// conflicts (409); fixable by the operator, after which a redelivery can
    /// succeed.
    Configuration,
}

/// A failed Bot API call. Display shows no token and no URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("{method}: could not connect to the Bot API")]
    Connect {
        method: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method}: no answer from the Bot API within {waited:?}")]
    Timeout {
        method: &'static str,
        waited: Duration,
    },
    #[error("{method}: not sent, no time left before the deadline")]
    NoTimeLeft { method: &'static str },
    #[error("{method}: the request failed")]
    Transport {
        method: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method}: Telegram answered {code}: {description}")]
    Telegram {
        method: &'static str,
        code: u16,
        description: String,
        retry_after: Option<Duration>,
        migrate_to_chat_id: Option<ChatId>,
    },
    #[error("{method}: the Bot API answered HTTP {status} without its JSON envelope")]
    Http {
        method: &'static str,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{method}: could not decode the Bot API's result")]
    Decode {
        method: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl ApiError {
    pub fn failure(&self) -> Failure {
        match self {
            ApiError::Connect { .. }
            | ApiError::Timeout { .. }
            | ApiError::NoTimeLeft { .. }
            | ApiError::Transport { .. } => Failure::Retryable { retry_after: None },
            ApiError::Telegram {
                code, retry_after, ..
            } => classify_status(*code, *retry_after),
            // Not Telegram's JSON: only Telegram's own error answers are
            // classified by their code (tdlib/telegram-bot-api answers every
            // method error as JSON, Client::fail_query_with_error). A 2xx
            // page or a 401/404 page means the base URL is not the Bot API;
            // any other page (a proxy's 403, a 408, a gateway's 5xx) means
            // the call may not have reached Telegram: a retry can succeed.
            ApiError::Http {
                status,
                retry_after,
                ..
            } => match status {
                200..=299 | 401 | 404 => Failure::Configuration,
                _ => Failure::Retryable {
                    retry_after: *retry_after,
                },
            },
            // Telegram accepted the call; sending it again would duplicate it.
            ApiError::Decode { .. } => Failure::Permanent,
        }
    }

    /// Telegram's error code or the HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Telegram { code, .. } => Some(*code),
            ApiError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long Telegram (or a proxy in front of it) asked to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Telegram { retry_after, .. } | ApiError::Http { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// Where a group was upgraded to a supergroup, its new id.
    pub fn migrate_to_chat_id(&self) -> Option<ChatId> {
        match self {
            ApiError::Telegram {
                migrate_to_chat_id, ..
            } => *migrate_to_chat_id,
            _ => None,
        }
    }
}

fn classify_status(status: u16, retry_after: Option<Duration>) -> Failure {
    match status {
        429 => Failure::Retryable { retry_after },
        // 409: a webhook is set, or another poller runs with this token.
        401 | 404 | 409 => Failure::Configuration,
        400..=499 => Failure::Permanent,
        _ => Failure::Retryable { retry_after: None },
    }
}

#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

pub(super) fn decode<R: DeserializeOwned>(
    method: &'static str,
    status: u16,
    header_retry_after: Option<Duration>,
    body: &[u8],
) -> Result<R, ApiError> {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return Err(ApiError::Http {
            method,
            status,
            retry_after: header_retry_after,
        });
    };
    if envelope.ok && (200..300).contains(&status) {
        let result = envelope.result.unwrap_or(Value::Null);
        return R::deserialize(result).map_err(|source| ApiError::Decode { method, source });
    }
    let parameters = envelope.parameters;
    Err(ApiError::Telegram {
        method,
        code: envelope.error_code.unwrap_or(status),
        description: envelope
            .description
            .unwrap_or_else(|| "(no description)".to_owned()),
        retry_after: parameters
            .as_ref()
            .and_then(|p| p.retry_after)
            .map(retry_after_secs)
            .or(header_retry_after),
        migrate_to_chat_id: parameters
            .as_ref()
            .and_then(|p| p.migrate_to_chat_id)
            .map(ChatId),
    })
}

pub(super) fn retry_after_secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds).min(MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure_of(status: u16, body: &str) -> Failure {
        decode::<Value>("sendMessage", status, None, body.as_bytes())
            .unwrap_err()
            .failure()
    }

    #[test]
    fn telegram_errors_are_classified_by_code() {
        let blocked = r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#;
        assert_eq!(failure_of(403, blocked), Failure::Permanent);
        let not_found =
            r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#;
        assert_eq!(failure_of(400, not_found), Failure::Permanent);
        let unauthorized = r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#;
        assert_eq!(failure_of(401, unauthorized), Failure::Configuration);
        let missing = r#"{"ok":false,"error_code":404,"description":"Not Found"}"#;
        assert_eq!(failure_of(404, missing), Failure::Configuration);
        let internal = r#"{"ok":false,"error_code":500,"description":"Internal Server Error"}"#;
        assert_eq!(
            failure_of(500, internal),
            Failure::Retryable { retry_after: None }
        );
    }

    #[test]
    fn too_many_requests_carries_retry_after() {
        let body = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#;
        assert_eq!(
            failure_of(429, body),
            Failure::Retryable {
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn retry_after_header_is_used_when_parameters_lack_it() {
        let error = decode::<Value>("sendMessage", 429, Some(Duration::from_secs(3)), b"<html>")
            .unwrap_err();
        assert_eq!(
            error.failure(),
            Failure::Retryable {
                retry_after: Some(Duration::from_secs(3))
            }
        );
    }

    #[test]
    fn an_absurd_retry_after_is_capped_at_an_hour() {
        let body = format!(
            r#"{{"ok":false,"error_code":429,"description":"Too Many Requests","parameters":{{"retry_after":{}}}}}"#,
            u64::MAX
        );
        assert_eq!(
            failure_of(429, &body),
            Failure::Retryable {
                retry_after: Some(MAX_RETRY_AFTER)
            }
        );
    }

    #[test]
    fn an_html_gateway_error_is_retryable() {
        assert_eq!(
            failure_of(502, "<html><body>502 Bad Gateway</body></html>"),
            Failure::Retryable { retry_after: None }
        );
    }

    #[test]
    fn pages_that_are_not_telegrams_json_are_retryable_except_a_wrong_base_url() {
        for status in [403, 408, 409, 400, 500, 502, 504] {
            assert_eq!(
                failure_of(status, "<html><body>proxy</body></html>"),
                Failure::Retryable { retry_after: None },
                "{status}"
            );
        }
        for status in [401, 404] {
            assert_eq!(
                failure_of(status, "<html>nginx</html>"),
                Failure::Configuration
            );
        }
        let limited =
            decode::<Value>("sendMessage", 503, Some(Duration::from_secs(5)), b"busy").unwrap_err();
        assert_eq!(
            limited.failure(),
            Failure::Retryable {
                retry_after: Some(Duration::from_secs(5))
            }
        );
    }

    #[test]
    fn a_non_telegram_success_page_means_a_wrong_base_url() {
        assert_eq!(
            failure_of(200, "<html>hello</html>"),
            Failure::Configuration
        );
    }

    #[test]
    fn migration_to_a_supergroup_is_reported() {
        let body = r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234567890}}"#;
        let error = decode::<Value>("sendMessage", 400, None, body.as_bytes()).unwrap_err();
        assert_eq!(error.migrate_to_chat_id(), Some(ChatId(-1_001_234_567_890)));
        assert_eq!(error.failure(), Failure::Permanent);
    }

    #[test]
    fn a_success_decodes_its_result() {
        let ok: bool = decode(
            "setWebhook",
            200,
            None,
            br#"{"ok":true,"result":true,"description":"Webhook was set"}"#,
        )
        .unwrap();
        assert!(ok);
    }
}
