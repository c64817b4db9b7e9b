//! The Bot API client: one `reqwest::Client` for the life of the process, so
//! warm invocations reuse its TLS connections.
//!
//! Every failure is an [`ApiError`], and [`ApiError::failure`] says what the
//! caller should do about it. The token is part of every request URL, so no
//! error kept here carries a URL.

use crate::config::{BotToken, Config, InitError};
use crate::telegram::{
    AnswerCallbackQuery, ChatId, DeleteWebhook, EditMessageText, GetUpdates, Me, Message,
    SendMessage, SetWebhook, Update, WebhookInfo,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

/// Connecting must be quick: a host that does not answer within this is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Below this much time before a deadline, a request is not started at all.
const MIN_REQUEST_TIME: Duration = Duration::from_millis(50);
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
            ApiError::Http {
                status,
                retry_after,
                ..
            } if (200..300).contains(status) => {
                // A 2xx page that is not Telegram's JSON: the base URL points
                // at something that is not the Bot API.
                let _ = retry_after;
                Failure::Configuration
            }
            ApiError::Http {
                status,
                retry_after,
                ..
            } => classify_status(*status, *retry_after),
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

/// The Bot API, as one bot sees it.
#[derive(Clone)]
pub struct BotApi {
    http: reqwest::Client,
    base_url: String,
    token: BotToken,
    timeout: Duration,
}

impl fmt::Debug for BotApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BotApi")
            .field("base_url", &self.base_url)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl BotApi {
    /// Builds the client once; call at cold start.
    pub fn new(config: &Config) -> Result<Self, InitError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(config.http_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ));
        for certificate in &config.extra_root_certificates {
            builder = builder.add_root_certificate(certificate.clone());
        }
        let http = builder
            .build()
            .map_err(|e| InitError::HttpClient(e.without_url()))?;
        Ok(BotApi {
            http,
            base_url: config.api_base_url.clone(),
            token: config.token.clone(),
            timeout: config.http_timeout,
        })
    }

    pub async fn send_message(
        &self,
        request: &SendMessage,
        deadline: Option<Instant>,
    ) -> Result<Message, ApiError> {
        self.call_before("sendMessage", request, deadline).await
    }

    /// The edited message, or `true` for a message sent via inline mode.
    pub async fn edit_message_text(
        &self,
        request: &EditMessageText,
        deadline: Option<Instant>,
    ) -> Result<Value, ApiError> {
        self.call_before("editMessageText", request, deadline).await
    }

    pub async fn answer_callback_query(
        &self,
        request: &AnswerCallbackQuery,
        deadline: Option<Instant>,
    ) -> Result<bool, ApiError> {
        self.call_before("answerCallbackQuery", request, deadline)
            .await
    }

    pub async fn get_me(&self) -> Result<Me, ApiError> {
        self.call("getMe", &serde_json::json!({}), self.timeout)
            .await
    }

    pub async fn set_webhook(&self, request: &SetWebhook) -> Result<bool, ApiError> {
        self.call("setWebhook", request, self.timeout).await
    }

    pub async fn delete_webhook(&self, drop_pending_updates: bool) -> Result<bool, ApiError> {
        self.call(
            "deleteWebhook",
            &DeleteWebhook {
                drop_pending_updates,
            },
            self.timeout,
        )
        .await
    }

    pub async fn get_webhook_info(&self) -> Result<WebhookInfo, ApiError> {
        self.call("getWebhookInfo", &serde_json::json!({}), self.timeout)
            .await
    }

    /// Long-polls for updates. The HTTP timeout is the poll's own timeout plus
    /// the client's, so a long poll is never cut short by the client.
    /// Elements without an `update_id` cannot be confirmed and are dropped.
    pub async fn get_updates(&self, request: &GetUpdates) -> Result<Vec<Update>, ApiError> {
        let wait = Duration::from_secs(u64::from(request.timeout.unwrap_or(0)));
        let raw: Vec<Value> = self
            .call("getUpdates", request, wait + self.timeout)
            .await?;
        Ok(raw
            .into_iter()
            .filter_map(|value| Update::from_value(value).ok())
            .collect())
    }

    /// Calls `method` with as much of the time left before `deadline` as
    /// the client's timeout allows; not at all when too little is left.
    async fn call_before<P, R>(
        &self,
        method: &'static str,
        params: &P,
        deadline: Option<Instant>,
    ) -> Result<R, ApiError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let timeout = match deadline {
            None => self.timeout,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left < MIN_REQUEST_TIME {
                    return Err(ApiError::NoTimeLeft { method });
                }
                left.min(self.timeout)
            }
        };
        self.call(method, params, timeout).await
    }

    /// Calls `method` with `params` as JSON and decodes Telegram's envelope.
    pub async fn call<P, R>(
        &self,
        method: &'static str,
        params: &P,
        timeout: Duration,
    ) -> Result<R, ApiError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let url = format!("{}/bot{}/{method}", self.base_url, self.token.expose());
        let started = Instant::now();
        let transport = |source: reqwest::Error| {
            let source = source.without_url();
            if source.is_timeout() {
                ApiError::Timeout {
                    method,
                    waited: started.elapsed(),
                }
            } else if source.is_connect() {
                ApiError::Connect { method, source }
            } else {
                ApiError::Transport { method, source }
            }
        };
        let response = self
            .http
            .post(url)
            .timeout(timeout)
            .json(params)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let header_retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(retry_after_secs);
        let body = response.bytes().await.map_err(transport)?;
        tracing::debug!(
            method,
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Bot API call"
        );
        decode(method, status, header_retry_after, &body)
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

fn decode<R: DeserializeOwned>(
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

fn retry_after_secs(seconds: u64) -> Duration {
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
