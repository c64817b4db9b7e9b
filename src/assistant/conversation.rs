//! The assistant's memory of a chat: its last exchanges, kept as a note
//! apart from the chat's record ([`crate::handler::Context::note`]).
//!
//! Apart, because a DynamoDB write is billed on the larger of the item's
//! size before and after, and the chat's record is written up to three
//! times per update: a conversation inside it would multiply the cost of
//! every message, buttons included. As a note it is read once and written
//! once per answer, and nothing else pays for it.

use super::model::{Role, Turn};
use serde::{Deserialize, Serialize};

/// The note's name.
pub const NOTE: &str = "conversation";

/// The conversation's bound, as stored JSON: with its key, the item stays
/// within 4 KB, so an answer costs at most 4 write units and its read 1
/// read unit on DynamoDB. The oldest exchanges go first.
pub const MAX_BYTES: usize = 3_900;

/// One question and the answer it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Exchange {
    /// The question's message id: an answer given again after a
    /// redelivery replaces its earlier one instead of repeating it.
    #[serde(rename = "m")]
    message: i64,
    #[serde(rename = "q")]
    question: String,
    #[serde(rename = "a")]
    answer: String,
}

/// The chat's last exchanges, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    #[serde(rename = "x", default)]
    exchanges: Vec<Exchange>,
}

impl Conversation {
    /// The conversation a note holds; one that does not parse (written by
    /// another version, or damaged) is started afresh.
    pub fn from_note(note: Option<&str>) -> Conversation {
        match note.map(serde_json::from_str::<Conversation>) {
            None => Conversation::default(),
            Some(Ok(conversation)) => conversation,
            Some(Err(error)) => {
                tracing::warn!(error = %crate::store::unreadable(&error), "the conversation's note is unreadable; starting afresh");
                Conversation::default()
            }
        }
    }

    /// The note to keep.
    pub fn to_note(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The earlier exchanges as turns for the model.
    pub fn turns(&self) -> impl Iterator<Item = Turn> + '_ {
        self.exchanges.iter().flat_map(|exchange| {
            [
                Turn::new(Role::User, exchange.question.clone()),
                Turn::new(Role::Assistant, exchange.answer.clone()),
            ]
        })
    }

    pub fn len(&self) -> usize {
        self.exchanges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.exchanges.is_empty()
    }

    /// Without the exchange of message `message`: what a question asked
    /// again sends the model, so that it never sees an answer of its own
    /// the user did not get.
    pub fn without(mut self, message: i64) -> Conversation {
        self.exchanges.retain(|e| e.message != message);
        self
    }

    /// With the answer to the question of message `message` added (in
    /// place of an earlier answer to it), and the oldest exchanges dropped
    /// until it fits [`MAX_BYTES`]. An exchange too long to fit on its own
    /// keeps the beginning of its question and answer.
    pub fn with(mut self, message: i64, question: &str, answer: &str) -> Conversation {
        self.exchanges.retain(|e| e.message != message);
        self.exchanges.push(Exchange {
            message,
            question: question.to_owned(),
            answer: answer.to_owned(),
        });
        while self.to_note().len() > MAX_BYTES && self.exchanges.len() > 1 {
            self.exchanges.remove(0);
        }
        // An exchange too long on its own: its parts shortened until the
        // note fits (JSON escapes make a character up to six bytes).
        let mut room = MAX_BYTES / 2;
        while self.to_note().len() > MAX_BYTES && room > 0 {
            room /= 2;
            if let Some(last) = self.exchanges.last_mut() {
                last.question = cut(&last.question, room);
                last.answer = cut(&last.answer, room);
            }
        }
        self
    }
}

/// At most `bytes` of `text`, on a character boundary.
fn cut(text: &str, bytes: usize) -> String {
    let mut end = bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exchanges_are_kept_in_order_and_an_answer_given_again_replaces_its_own() {
        let conversation = Conversation::default()
            .with(1, "Hi?", "Hello.")
            .with(2, "And?", "And more.")
            .with(1, "Hi?", "Hello again.");
        let turns: Vec<String> = conversation.turns().map(|t| t.content).collect();
        assert_eq!(turns, ["And?", "And more.", "Hi?", "Hello again."]);
        let note = conversation.to_note();
        assert_eq!(Conversation::from_note(Some(&note)), conversation);
        assert!(Conversation::from_note(Some("{not json")).is_empty());
        assert!(Conversation::from_note(None).is_empty());
        // Asked again: the question is sent without its own earlier answer.
        let again: Vec<String> = conversation.without(1).turns().map(|t| t.content).collect();
        assert_eq!(again, ["And?", "And more."]);
    }

    proptest! {
        #[test]
        fn the_note_never_passes_its_bound(
            lengths in proptest::collection::vec((0usize..3000, 0usize..6000), 1..12),
            quote in any::<bool>(),
        ) {
            let mut conversation = Conversation::default();
            for (index, (q, a)) in lengths.iter().enumerate() {
                let c = if quote { "\"é\u{1b}" } else { "a" };
                conversation = conversation.with(index as i64, &c.repeat(*q), &c.repeat(*a));
                prop_assert!(conversation.to_note().len() <= MAX_BYTES);
                // The newest exchange is always kept.
                prop_assert_eq!(conversation.exchanges.last().map(|e| e.message), Some(index as i64));
            }
        }
    }
}
