//! An assistant that answers with a language model: an OpenAI-compatible
//! Chat Completions API, its answer streamed as server-sent events, shown
//! while it is written and sent, whole, exactly once.
//!
//! - [`sse`]: server-sent events from bytes cut anywhere;
//! - [`completion`]: the pieces of a streamed Chat Completions answer;
//! - [`conversation`]: the chat's last exchanges, kept apart from its record;
//! - [`model`]: the request, and the stream read with a time limit;
//! - [`split`]: a long answer as messages within Telegram's limit.
//!
//! The answer runs in the handler's look-up ([`crate::handler::Handler::gather`]):
//! the update holds its lease meanwhile, so a redelivery gets 503 rather
//! than a second answer, and the text becomes the outbox's messages in the
//! pure step. Drafts and "typing" are progress, never retried.

pub mod completion;
pub mod conversation;
pub mod model;
pub mod split;
pub mod sse;

use crate::action::Action;
use crate::config::AssistantConfig;
use crate::handler::{Context, Failed};
use crate::telegram::{ChatType, Message, SendMessage};
use completion::{Finish, Piece};
use conversation::Conversation;
use model::{Model, ModelError, Next, Role, Turn};
use std::time::Duration;
use tokio::time::Instant;

/// What the user reads when the model could not answer at all.
pub const UNAVAILABLE: &str =
    "The assistant is unavailable right now. Please try again in a minute.";

/// The instructions the model gets before the question.
pub const SYSTEM_PROMPT: &str = "You are a helpful assistant in a Telegram chat. \
Answer briefly and in plain text: Telegram shows your answer as it is, without Markdown.";

/// The assistant's clock: how often it shows progress, how long it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// At most one draft per this (Telegram's pace for a chat's messages).
    pub draft_every: Duration,
    /// A draft shows for about 30 s: sent again after this without news.
    pub draft_refresh: Duration,
    /// "typing" shows for 5 s: sent again after this, in groups.
    pub typing_every: Duration,
    /// A stream silent this long is taken as cut.
    pub stall: Duration,
    /// Kept back from the look-up's time besides the handler's own reserve
    /// ([`crate::handler::ANSWER_RESERVE`]): sending several messages, a
    /// 429's wait included, within Telegram's window.
    pub send_reserve: Duration,
    /// Tries of a model that is rate limited or failing before it has said
    /// anything, while time allows.
    pub tries: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            draft_every: Duration::from_secs(1),
            draft_refresh: Duration::from_secs(20),
            typing_every: Duration::from_millis(4500),
            stall: Duration::from_secs(15),
            send_reserve: Duration::from_secs(2),
            tries: 3,
        }
    }
}

/// The assistant: a model and the pace it is shown at.
#[derive(Debug, Clone)]
pub struct Assistant {
    model: Model,
    pacing: Pacing,
}

/// How an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Complete,
    /// The model reached its length limit.
    Length,
    /// The provider withheld the rest.
    Filtered,
    /// The stream broke off (an error mid-stream, a closed connection, a
    /// stall).
    Cut,
    /// Telegram's window was closing: what there was is sent.
    OutOfTime,
    /// Past [`MAX_ANSWER_BYTES`]: the rest is not read.
    TooLong,
}

/// The most of an answer the bot reads and sends: four full messages. A
/// model (or a service) that streams without end cannot fill the
/// function's memory or the chat.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// What the model said, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub text: String,
    pub ending: Ending,
}

impl Answer {
    /// The note after an answer that did not end as the model meant.
    pub fn note(&self) -> Option<&'static str> {
        match self.ending {
            Ending::Complete => None,
            Ending::Length => Some("(The answer stops here: it reached the model's length limit.)"),
            Ending::TooLong => Some("(The answer stops here: it is longer than I send at once.)"),
            Ending::Filtered => Some("(The rest was withheld by the model's content filter.)"),
            Ending::Cut => Some("(The answer broke off here: the model stopped sending.)"),
            Ending::OutOfTime => {
                Some("(The answer stops here: it took longer than a bot may take to answer.)")
            }
        }
    }

    /// The whole text as the user reads it, note included.
    pub fn full_text(&self) -> String {
        let text = self.text.trim();
        match (text.is_empty(), self.note()) {
            (true, None) => "(The model gave an empty answer.)".to_owned(),
            (true, Some(note)) => note.to_owned(),
            (false, None) => text.to_owned(),
            (false, Some(note)) => format!("{text}\n\n{note}"),
        }
    }

    /// The replies to `question`: one message per part of the text within
    /// Telegram's limit, in order. Plain text: no parse mode, so no
    /// formatting can make Telegram refuse the answer.
    pub fn replies(&self, question: &Message) -> Vec<Action> {
        split::split(&self.full_text())
            .into_iter()
            .map(|part| SendMessage::reply_to(question, part).into())
            .collect()
    }
}

impl Assistant {
    pub fn new(config: &AssistantConfig) -> Assistant {
        Assistant {
            model: Model::new(config),
            pacing: Pacing::default(),
        }
    }

    /// The same, on another clock (tests, `bot chat`).
    pub fn with_pacing(mut self, pacing: Pacing) -> Assistant {
        self.pacing = pacing;
        self
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// What the model is sent for `question`: the instructions, the
    /// chat's earlier exchanges, the question.
    pub fn turns(&self, earlier: &Conversation, question: &str) -> Vec<Turn> {
        std::iter::once(Turn::new(Role::System, SYSTEM_PROMPT))
            .chain(earlier.turns())
            .chain(std::iter::once(Turn::new(Role::User, question)))
            .collect()
    }

    /// Forgets the chat's conversation (`/reset`).
    pub async fn forget(&self, cx: &Context<'_>) -> Result<(), Failed> {
        Ok(cx.forget_note(conversation::NOTE).await?)
    }

    /// Asks the model `question` (from `message`), showing the answer while
    /// it is written: drafts in a private chat, "typing" elsewhere. Ends
    /// before the look-up's time does, with what there is by then. A model
    /// that says nothing at all is given up with [`UNAVAILABLE`], so that
    /// the user hears back and Telegram does not redeliver.
    pub async fn answer(
        &self,
        cx: &Context<'_>,
        message: &Message,
        question: &str,
    ) -> Result<Answer, Failed> {
        let until = cx
            .deadline()
            .checked_sub(self.pacing.send_reserve)
            .unwrap_or_else(Instant::now);
        // At once: "typing" in a group, a "Thinking..." draft (an empty
        // one) in a private chat.
        let mut shown = Drafts::new(&self.pacing, message);
        shown.show(cx, "", until).await;
        // The conversation is the bot's own I/O: without it (a store that
        // fails), the question is still answered, on its own.
        let earlier = match cx.note(conversation::NOTE).await {
            Ok(note) => Conversation::from_note(note.as_deref()),
            Err(error) => {
                tracing::warn!(error = %crate::error::Chain(&error), "could not read the conversation; answering without it");
                Conversation::default()
            }
        };
        // Asked again after a failed delivery, the question must not see an
        // answer of its own that the user never got.
        let earlier = earlier.without(message.message_id.0);
        let turns = self.turns(&earlier, question);
        let mut stream = self.start(cx, &turns, until).await?;
        let mut text = String::new();
        let mut finish = None;
        let mut heard = Instant::now();
        let ending = loop {
            let now = Instant::now();
            if now >= until {
                break Ending::OutOfTime;
            }
            // Silence before the first word is thinking (a reasoning model
            // may take most of the budget), bounded by the budget alone;
            // after it, a gap this long is a cut stream.
            let stalled = !text.is_empty() && now.duration_since(heard) >= self.pacing.stall;
            if stalled && !stream.has_more_now().await {
                tracing::warn!(
                    stalled_ms = self.pacing.stall.as_millis() as u64,
                    "the model's stream went quiet; taken as cut"
                );
                break Ending::Cut;
            }
            let mut wake = until.min(shown.due(&text));
            if !text.is_empty() {
                wake = wake.min(heard + self.pacing.stall);
            }
            match stream.next(wake).await {
                Ok(Next::Pieces(pieces)) => {
                    heard = Instant::now();
                    for piece in pieces {
                        match piece {
                            Piece::Text(more) => text.push_str(&more),
                            Piece::Finished(reason) => finish = Some(reason),
                        }
                    }
                    if text.len() > MAX_ANSWER_BYTES {
                        let mut end = MAX_ANSWER_BYTES;
                        while !text.is_char_boundary(end) {
                            end -= 1;
                        }
                        text.truncate(end);
                        break Ending::TooLong;
                    }
                }
                Ok(Next::Waiting) => {}
                Ok(Next::End) => {
                    break match finish {
                        None | Some(Finish::Stop) | Some(Finish::Other(_)) => Ending::Complete,
                        Some(Finish::Length) => Ending::Length,
                        Some(Finish::ContentFilter) => Ending::Filtered,
                    };
                }
                Err(error) if text.is_empty() => {
                    return Err(Failed::give_up(error).telling(UNAVAILABLE));
                }
                Err(error) => {
                    tracing::warn!(error = %crate::error::Chain(&error), "the model's answer broke off; sending what there is");
                    break Ending::Cut;
                }
            }
            shown.show(cx, &text, until).await;
        };
        if ending == Ending::OutOfTime && text.trim().is_empty() {
            return Err(Failed::give_up(ModelError::Timeout).telling(UNAVAILABLE));
        }
        // Kept before the answer is sent: a redelivery that asks again
        // replaces this exchange rather than adding a second one.
        let kept = earlier.with(message.message_id.0, question, text.trim());
        if let Err(error) = cx.keep_note(conversation::NOTE, &kept.to_note()).await {
            tracing::warn!(error = %crate::error::Chain(&error), "could not keep the conversation; the answer is sent all the same");
        }
        Ok(Answer { text, ending })
    }

    /// The model's answer begun, tried again while it is rate limited or
    /// failing and time allows; a refused key is the operator's to fix.
    async fn start(
        &self,
        cx: &Context<'_>,
        turns: &[Turn],
        until: Instant,
    ) -> Result<model::AnswerStream, Failed> {
        let mut tried = 0;
        loop {
            tried += 1;
            let error = match self.model.start(cx.http(), turns, until).await {
                Ok(stream) => return Ok(stream),
                Err(error) => error,
            };
            match &error {
                ModelError::KeyRefused { status } => {
                    tracing::error!(status, model = self.model.name(), "the model's service refused ASSISTANT_API_KEY: store a valid key (README, An AI assistant)");
                    return Err(Failed::misconfigured(error).telling(UNAVAILABLE));
                }
                ModelError::NotFound { status, .. } => {
                    tracing::error!(status, model = self.model.name(), error = %crate::error::Chain(&error), "the model's service knows no such model or path: check ASSISTANT_MODEL and ASSISTANT_BASE_URL (README, An AI assistant)");
                    return Err(Failed::misconfigured(error).telling(UNAVAILABLE));
                }
                _ => {}
            }
            let wait = error
                .retry_after()
                .unwrap_or(Duration::from_millis(500) * 2u32.pow(tried - 1));
            // Time for the wait and for an answer after it.
            let fits = Instant::now()
                .checked_add(wait + self.pacing.stall.min(Duration::from_secs(5)))
                .is_some_and(|ready| ready < until);
            if !error.is_retryable() || tried >= self.pacing.tries || !fits {
                tracing::warn!(error = %crate::error::Chain(&error), tried, "the model did not answer");
                return Err(Failed::give_up(error).telling(UNAVAILABLE));
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// What is shown while the answer is written: drafts of it in a private
/// chat, at most one per [`Pacing::draft_every`] (longer after a 429),
/// "typing" in other chats. Best effort: a failure only delays the next.
struct Drafts<'p> {
    pacing: &'p Pacing,
    private: bool,
    /// Drafts of one answer share an id; the question's id is never zero.
    draft_id: i64,
    next: Instant,
    drafted: usize,
    drafted_at: Option<Instant>,
}

impl<'p> Drafts<'p> {
    fn new(pacing: &'p Pacing, message: &Message) -> Self {
        let private = message.chat.kind == ChatType::Private;
        let now = Instant::now();
        Drafts {
            pacing,
            private,
            draft_id: message.message_id.0.max(1),
            next: now,
            drafted: 0,
            drafted_at: None,
        }
    }

    /// When progress is next due with `text` written so far: a draft once
    /// there is news and the interval has passed, a refresh of the same
    /// draft before it fades; never a time already past with nothing to
    /// show, so that waiting for the model cannot turn into a busy loop.
    fn due(&self, text: &str) -> Instant {
        if !self.private {
            return self.next;
        }
        // As `show` counts it.
        let text = text.trim_start();
        if text.is_empty() {
            // The "Thinking..." placeholder: shown once, then refreshed.
            return match self.drafted_at {
                Some(at) => (at + self.pacing.draft_refresh).max(self.next),
                None => self.next,
            };
        }
        match self.drafted_at {
            Some(at) if text.len() == self.drafted => {
                (at + self.pacing.draft_refresh).max(self.next)
            }
            _ => self.next,
        }
    }

    async fn show(&mut self, cx: &Context<'_>, text: &str, until: Instant) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        if !self.private {
            let _ = tokio::time::timeout_at(until, cx.typing()).await;
            self.next = Instant::now() + self.pacing.typing_every;
            return;
        }
        let stale = self
            .drafted_at
            .is_none_or(|at| now.duration_since(at) >= self.pacing.draft_refresh);
        // Blank text is the "Thinking..." placeholder Telegram shows for an
        // empty draft.
        let text = text.trim_start();
        if text.len() == self.drafted && !stale {
            return;
        }
        // The part that will be the last message: a draft never passes
        // Telegram's limit, and shows the words being written.
        let parts = split::split(text);
        let tail = parts.last().map(String::as_str).unwrap_or_default();
        let shown = tokio::time::timeout_at(until, cx.draft(self.draft_id, tail)).await;
        let now = Instant::now();
        self.next = now + self.pacing.draft_every;
        match shown {
            Ok(Ok(())) => {
                self.drafted = text.len();
                self.drafted_at = Some(now);
            }
            Ok(Err(error)) => {
                if let Some(wait) = error.retry_after() {
                    self.next = now + wait.max(self.pacing.draft_every);
                }
                tracing::debug!(error = %crate::error::Chain(&error), "a draft was not shown");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: &str) -> Message {
        serde_json::from_value(serde_json::json!({
            "message_id": 7, "date": 1, "text": "Why?",
            "chat": {"id": 42, "type": kind}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn progress_is_never_due_with_nothing_to_show() {
        let pacing = Pacing::default();
        let question = message("private");
        let mut progress = Drafts::new(&pacing, &question);
        let now = Instant::now();
        // At first, the "Thinking..." placeholder at once; once shown, only
        // its refresh: the reader may wait for the model.
        assert!(progress.due("") <= now);
        progress.drafted_at = Some(now);
        assert_eq!(progress.due(""), now + pacing.draft_refresh);
        assert_eq!(progress.due("  "), now + pacing.draft_refresh);
        // News: a draft at once.
        assert!(progress.due("Because") <= now);
        // Drafted: the same text is due again only to refresh it.
        progress.drafted = "Because".len();
        progress.drafted_at = Some(now);
        progress.next = now + pacing.draft_every;
        assert_eq!(progress.due("Because"), now + pacing.draft_refresh);
        assert_eq!(progress.due("Because it"), now + pacing.draft_every);
        // In a group, "typing" on its own clock.
        let group = message("group");
        let mut progress = Drafts::new(&pacing, &group);
        assert!(progress.due("") <= Instant::now(), "typing at once");
        progress.next = now + pacing.typing_every;
        assert_eq!(progress.due(""), now + pacing.typing_every);
        assert_eq!(progress.draft_id, 7);
    }

    #[test]
    fn an_empty_or_cut_answer_still_says_something() {
        let empty = Answer {
            text: " ".into(),
            ending: Ending::Complete,
        };
        assert_eq!(empty.full_text(), "(The model gave an empty answer.)");
        let cut = Answer {
            text: String::new(),
            ending: Ending::Cut,
        };
        assert_eq!(cut.full_text(), cut.note().unwrap());
    }
}
