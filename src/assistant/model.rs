//! The model's API: one streamed Chat Completions request, and its answer
//! read as it comes.

use super::completion::{Completion, Piece, StreamError};
use crate::config::AssistantConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

/// An OpenAI-compatible Chat Completions API and the model to ask.
#[derive(Clone)]
pub struct Model {
    /// `https://api.openai.com/v1` and the like, without trailing slash.
    base_url: String,
    name: String,
    key: SecretString,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("base_url", &self.base_url)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Who said a turn of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

impl Turn {
    pub fn new(role: Role, content: impl Into<String>) -> Turn {
        Turn {
            role,
            content: content.into(),
        }
    }
}

/// Why the model gave no (or no whole) answer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the model's service is rate limited (429)")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the model's service answered {status}")]
    Unavailable {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// 401 or 403: the key is wrong, revoked or without access to the
    /// model. No retry helps; the bot's configuration must change.
    #[error("the model's service refused the API key ({status})")]
    KeyRefused { status: u16 },
    /// 404, or a 400 naming the model: the base URL or the model name is
    /// wrong; the bot's configuration must change.
    #[error("the model's service knows no such model or path ({status}): {message}")]
    NotFound { status: u16, message: String },
    /// Another 4xx: the request is wrong for this service (an unknown
    /// model, a conversation too long).
    #[error("the model's service refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    /// No connection, or it broke. The URL is not kept: it is the
    /// operator's, but the error goes to logs that should not need it.
    #[error("could not reach the model's service")]
    Network(#[source] reqwest::Error),
    #[error("no answer from the model's service in time")]
    Timeout,
    #[error(transparent)]
    Stream(#[from] StreamError),
}

impl ModelError {
    /// Whether the same request may succeed a little later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ModelError::RateLimited { .. }
                | ModelError::Unavailable { .. }
                | ModelError::Network(_)
                | ModelError::Timeout
        )
    }

    /// How long the service asked to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ModelError::RateLimited { retry_after }
            | ModelError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The longest error body read for its message.
const MAX_ERROR_BODY: usize = 16 * 1024;

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    messages: &'a [Turn],
    stream: bool,
}

impl Model {
    pub fn new(config: &AssistantConfig) -> Model {
        Model {
            base_url: config.base_url.clone(),
            name: config.model.clone(),
            key: config.api_key.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks for `turns`' answer, streamed. Returns once the service has
    /// answered with its status, or at `until`. The stream itself has no
    /// overall timeout: its reader decides how long to wait for each part.
    pub async fn start(
        &self,
        http: &reqwest::Client,
        turns: &[Turn],
        until: Instant,
    ) -> Result<AnswerStream, ModelError> {
        let request = http
            .post(format!("{}/chat/completions", self.base_url))
            .bearer_auth(self.key.expose_secret())
            .json(&Request {
                model: &self.name,
                messages: turns,
                stream: true,
            })
            .send();
        let response = match tokio::time::timeout_at(until, request).await {
            Err(_) => return Err(ModelError::Timeout),
            Ok(Err(error)) => return Err(ModelError::Network(error.without_url())),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(AnswerStream {
                response,
                completion: Completion::new(),
                early: Vec::new(),
            });
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            // A wait longer than any answer's budget is as good as an hour;
            // an absurd one must not overflow the clock.
            .map(|secs| Duration::from_secs(secs.min(3600)));
        Err(match status {
            401 | 403 => ModelError::KeyRefused { status },
            429 => ModelError::RateLimited { retry_after },
            500..=599 => ModelError::Unavailable {
                status,
                retry_after,
            },
            _ => {
                let (code, message) = error_message(response, until).await;
                if status == 404 || code.as_deref() == Some("model_not_found") {
                    ModelError::NotFound { status, message }
                } else {
                    ModelError::Refused { status, message }
                }
            }
        })
    }
}

/// The `error.code` and `error.message` of an error body, read within
/// bounds.
async fn error_message(
    mut response: reqwest::Response,
    until: Instant,
) -> (Option<String>, String) {
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout_at(until, read).await;
    let value = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
    let code = value["error"]["code"].as_str().map(str::to_owned);
    let message: String = value["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    (code, message)
}

/// What reading the stream brought.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// More pieces (none when the bytes held only comments or keep-alives).
    Pieces(Vec<Piece>),
    /// Nothing arrived by the time given.
    Waiting,
    /// The stream ended, with the answer whole.
    End,
}

/// A streamed answer being received.
#[derive(Debug)]
pub struct AnswerStream {
    response: reqwest::Response,
    completion: Completion,
    /// Pieces read by [`AnswerStream::has_more_now`], not yet handed out.
    early: Vec<Piece>,
}

impl AnswerStream {
    /// Whether bytes are waiting to be read at once: a reader that was
    /// busy elsewhere (showing progress) must not take its own delay for
    /// the model's silence.
    pub async fn has_more_now(&mut self) -> bool {
        match self.next(Instant::now()).await {
            Ok(Next::Pieces(pieces)) => {
                self.early.extend(pieces);
                true
            }
            Ok(Next::Waiting) => false,
            // The end, or an error: left for the next read to report.
            Ok(Next::End) | Err(_) => true,
        }
    }

    /// The next part of the answer, waiting at most until `until`.
    pub async fn next(&mut self, until: Instant) -> Result<Next, ModelError> {
        if !self.early.is_empty() {
            return Ok(Next::Pieces(std::mem::take(&mut self.early)));
        }
        if self.completion.is_finished() {
            return Ok(Next::End);
        }
        match tokio::time::timeout_at(until, self.response.chunk()).await {
            Err(_) => Ok(Next::Waiting),
            Ok(Err(error)) => Err(ModelError::Network(error.without_url())),
            Ok(Ok(None)) => {
                self.completion.end()?;
                Ok(Next::End)
            }
            Ok(Ok(Some(bytes))) => Ok(Next::Pieces(self.completion.feed(&bytes)?)),
        }
    }
}
