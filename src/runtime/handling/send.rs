//! Carrying out an outbox's actions, in order, each under the retry
//! policy, recording progress between them.

use super::*;

/// Carries out `actions` from number `from` on, each retried as `policy`
/// says. An action refused for good does not stop the ones after it; one
/// that may succeed later does, so that the actions keep their order.
pub(super) async fn send_all(
    api: &BotApi,
    actions: &[Action],
    from: usize,
    policy: &RetryPolicy,
    stop: &mut Stop,
    progress: &Recorder<'_>,
) -> Handled {
    let mut handled = Handled {
        outcome: if actions.is_empty() {
            Outcome::Ignored
        } else {
            Outcome::Answered
        },
        error: None,
        done: from.min(actions.len()),
    };
    for action in actions.iter().skip(from) {
        let carried_out = retry(policy, stop, action.method(), || {
            perform(api, action, policy.deadline)
        })
        .await;
        let error = match carried_out {
            Ok(()) => None,
            Err(GaveUp::Stopped(error)) => {
                Some((Outcome::RetryableFailure { retry_after: None }, error))
            }
            Err(GaveUp::Failed(error)) => Some(match error.failure() {
                Failure::Permanent => (Outcome::PermanentFailure, error),
                Failure::Retryable { retry_after } => {
                    (Outcome::RetryableFailure { retry_after }, error)
                }
                Failure::Configuration => (Outcome::ConfigurationFailure { told: false }, error),
            }),
        };
        if let Some((outcome, error)) = error {
            handled.outcome = outcome;
            handled.error = Some(HandlingError::Api(error));
            if !outcome.is_final() {
                break;
            }
        }
        handled.done += 1;
        if handled.done < actions.len() {
            let recorded = before(
                progress.deadline,
                progress
                    .memory
                    .progress(progress.ticket, handled.done, progress.lease_until),
            )
            .await;
            if let Err(error) = recorded {
                tracing::warn!(error = %Chain(&error), "an action's progress could not be recorded");
            }
        }
    }
    handled
}

/// Carries out one action. A message to a group that became a supergroup
/// is sent once more, to the supergroup. What Telegram refuses because it
/// is done already counts as done: an edit to what the message already
/// says, an answer to a query answered before or too old to answer.
pub(super) async fn perform(
    api: &BotApi,
    action: &Action,
    deadline: Option<Instant>,
) -> Result<(), ApiError> {
    match carry_out_once(api, action, deadline).await {
        Err(error) if is_done_already(action, &error) => Ok(()),
        result => result,
    }
}

/// Telegram's refusals that mean the action's effect is already there.
fn is_done_already(action: &Action, error: &ApiError) -> bool {
    let ApiError::Telegram {
        code: 400,
        description,
        ..
    } = error
    else {
        return false;
    };
    match action {
        Action::Edit(_) => description.contains("message is not modified"),
        Action::AnswerCallback(_) => {
            description.contains("query is too old") || description.contains("query ID is invalid")
        }
        Action::Send(_) => false,
    }
}

async fn carry_out_once(
    api: &BotApi,
    action: &Action,
    deadline: Option<Instant>,
) -> Result<(), ApiError> {
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
