//! Button presses: answered first, once, before the chat's state is read.

use super::*;

/// How long a press waits for its chat's record before it is answered
/// anyway: far above a healthy store's read (single milliseconds), far below
/// what a person notices on a spinning button.
const PRESS_READ_BUDGET: Duration = Duration::from_millis(300);

impl<H: Handler> Responder<'_, H> {
    /// Answers a button press (answerCallbackQuery) with what the bot says
    /// to it. A failure is logged and changes nothing else: the press is
    /// still carried out, and Telegram is not asked to deliver it again for
    /// the answer's sake. A query answered before (a repeat delivery) or
    /// too old to answer counts as answered.
    async fn answer_press(
        &self,
        update: &Update,
        query: &CallbackQuery,
        policy: &RetryPolicy,
        stop: &mut Stop,
    ) -> Result<(), ApiError> {
        let answer = Action::AnswerCallback(self.bot.answer_press(query));
        let answered = retry(policy, stop, answer.method(), || {
            perform(self.api, &answer, policy.deadline)
        })
        .await;
        match answered {
            Ok(()) => Ok(()),
            // A refused token or a base URL that is not the Bot API: the
            // rest would fail the same way, and acknowledging the press
            // would hide it.
            Err(GaveUp::Failed(error)) if error.failure() == Failure::Configuration => Err(error),
            Err(GaveUp::Failed(error) | GaveUp::Stopped(error)) => {
                tracing::warn!(
                    update_id = update.id.0,
                    error = %Chain(&error),
                    "could not answer the button press; carrying it out anyway"
                );
                Ok(())
            }
        }
    }

    /// Answers a press unless an earlier delivery did. Telegram delivers a
    /// press again when an attempt failed after its answer (an edit, the
    /// store), maybe to another instance: the chat's record says whether
    /// one got that far, so the record is read first, which the decision
    /// needs anyway. A store that does not answer within
    /// [`PRESS_READ_BUDGET`] does not keep the button spinning: the press is
    /// answered, and at worst answered twice (Telegram refuses the second,
    /// which counts as done). Returns the record when it was read; an
    /// answer refused for the configuration's sake (the token, the base
    /// URL) fails the update.
    pub(super) async fn answer_press_once(
        &self,
        update: &Update,
        query: &CallbackQuery,
        policy: &RetryPolicy,
        stop: &mut Stop,
    ) -> Result<Option<Read>, ApiError> {
        let read = tokio::time::timeout(PRESS_READ_BUDGET, self.memory.read(update))
            .await
            .ok()
            .and_then(Result::ok);
        if !read.as_ref().is_some_and(|r| r.seen_before(now_millis())) {
            self.answer_press(update, query, policy, stop).await?;
        }
        Ok(read)
    }
}
