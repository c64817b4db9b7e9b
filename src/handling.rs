//! The one way an update is answered, shared by the webhook and the polling
//! loop: run the bot, carry out its actions in order under a retry policy,
//! and log one line with the outcome.

use crate::action::Action;
use crate::bot::{Bot, State};
use crate::client::{ApiError, BotApi, Failure};
use crate::error::Chain;
use crate::retry::{retry, GaveUp, RetryPolicy, Stop};
use crate::telegram::{SendMessage, Update};
use std::time::Duration;
use tokio::time::Instant;

/// How the handling of one update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Seen and finished by this process before.
    Duplicate,
    /// Nothing to answer.
    Ignored,
    Answered,
    /// An action failed in a way no retry fixes; the update counts as done.
    PermanentFailure,
    /// An action failed in a way a later attempt can fix.
    RetryableFailure {
        retry_after: Option<Duration>,
    },
    /// The token or base URL is wrong; a later attempt after the fix can succeed.
    ConfigurationFailure,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Answered => "answered",
            Outcome::PermanentFailure => "permanent_failure",
            Outcome::RetryableFailure { .. } => "retryable_failure",
            Outcome::ConfigurationFailure => "configuration_failure",
        }
    }

    /// Whether the update is finished with: answered, or past helping.
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            Outcome::RetryableFailure { .. } | Outcome::ConfigurationFailure
        )
    }
}

/// What became of one update.
#[derive(Debug)]
pub struct Handled {
    pub outcome: Outcome,
    /// The failure that decided the outcome, if any.
    pub error: Option<ApiError>,
    /// How many of the bot's actions are behind it (carried out, or refused
    /// for good); a later attempt at the same update resumes after them.
    pub done: usize,
}

/// Answers `update`: runs the bot, then carries out its actions from number
/// `resume_from` on, each retried as `policy` says. An action refused for
/// good does not stop the ones after it; one that may succeed later does, so
/// that the actions keep their order. Logs the update's one line.
pub async fn handle_update(
    api: &BotApi,
    bot: &Bot,
    update: &Update,
    resume_from: usize,
    policy: &RetryPolicy,
    stop: &mut Stop,
) -> Handled {
    let started = Instant::now();
    // The chat's state is not kept yet: every update starts from the default.
    let (actions, _state) = bot.handle(update, State::default());
    let mut handled = Handled {
        outcome: if actions.is_empty() {
            Outcome::Ignored
        } else {
            Outcome::Answered
        },
        error: None,
        done: resume_from.min(actions.len()),
    };
    for action in actions.iter().skip(resume_from) {
        let carried_out = retry(policy, stop, action.method(), || {
            perform(api, action, policy.deadline)
        })
        .await;
        match carried_out {
            Ok(()) => {}
            Err(GaveUp::Stopped(error)) => {
                handled.outcome = Outcome::RetryableFailure { retry_after: None };
                handled.error = Some(error);
                break;
            }
            Err(GaveUp::Failed(error)) => match error.failure() {
                Failure::Permanent => {
                    handled.outcome = Outcome::PermanentFailure;
                    handled.error = Some(error);
                }
                Failure::Retryable { retry_after } => {
                    handled.outcome = Outcome::RetryableFailure { retry_after };
                    handled.error = Some(error);
                    break;
                }
                Failure::Configuration => {
                    handled.outcome = Outcome::ConfigurationFailure;
                    handled.error = Some(error);
                    break;
                }
            },
        }
        handled.done += 1;
    }
    log_update(update, handled.outcome, started, handled.error.as_ref());
    handled
}

/// Carries out one action. A message to a group that became a supergroup
/// is sent once more, to the supergroup.
async fn perform(api: &BotApi, action: &Action, deadline: Option<Instant>) -> Result<(), ApiError> {
    match action {
        Action::Send(message) => match api.send_message(message, deadline).await {
            Ok(_) => Ok(()),
            Err(error) => match error.migrate_to_chat_id() {
                Some(new_chat) => {
                    let moved = SendMessage {
                        chat_id: new_chat,
                        message_thread_id: None,
                        ..message.clone()
                    };
                    api.send_message(&moved, deadline).await.map(drop)
                }
                None => Err(error),
            },
        },
        Action::Edit(edit) => api.edit_message_text(edit, deadline).await.map(drop),
        Action::AnswerCallback(answer) => {
            api.answer_callback_query(answer, deadline).await.map(drop)
        }
    }
}

/// The one line logged per update, the same in both delivery modes, with the
/// error that decided the outcome, if any. Never the message text.
pub fn log_update(update: &Update, outcome: Outcome, started: Instant, error: Option<&ApiError>) {
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let error = error.map(|e| Chain(e).to_string());
    let chat_type = update.chat().map(|c| c.kind.as_str()).unwrap_or("none");
    let kind = update.kind_name();
    let update_id = update.id.0;
    let outcome_name = outcome.as_str();
    match outcome {
        Outcome::ConfigurationFailure => tracing::error!(
            update_id,
            kind,
            chat_type,
            outcome = outcome_name,
            duration_ms,
            error,
            "update failed: check TELEGRAM_BOT_TOKEN and TELEGRAM_API_BASE_URL"
        ),
        Outcome::PermanentFailure | Outcome::RetryableFailure { .. } => tracing::warn!(
            update_id,
            kind,
            chat_type,
            outcome = outcome_name,
            duration_ms,
            error,
            "update failed"
        ),
        _ => tracing::info!(
            update_id,
            kind,
            chat_type,
            outcome = outcome_name,
            duration_ms,
            "update handled"
        ),
    }
}
