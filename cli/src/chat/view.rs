//! What the chat shows of the bot's messages: drafts as they grow, and a
//! message's inline keyboard as buttons to type.

use super::*;

/// A message's buttons on one line, numbered, with how to press them.
/// How often the chat looks for a new draft of an answer.
pub(super) const DRAFT_POLL: Duration = Duration::from_millis(100);

/// Drafts of an answer being written (sendMessageDraft), as the user's app
/// shows them: on a terminal one line rewritten in place, ending with the
/// latest words; piped, each new draft as a line of its own.
pub(super) struct DraftView {
    interactive: bool,
    seen: usize,
    on_screen: bool,
}

impl DraftView {
    pub(super) fn new(interactive: bool, seen: usize) -> Self {
        DraftView {
            interactive,
            seen,
            on_screen: false,
        }
    }

    pub(super) fn show(&mut self, drafts: &[telegram_stand_in::Draft]) {
        let Some(latest) = drafts.get(self.seen..).and_then(<[_]>::last) else {
            return;
        };
        self.seen = drafts.len();
        let text = latest.text.split_whitespace().collect::<Vec<_>>().join(" ");
        // An empty draft is Telegram's "Thinking..." placeholder.
        let text = if text.is_empty() {
            "Thinking...".to_owned()
        } else {
            text
        };
        if !self.interactive {
            println!("(draft) {text}");
            return;
        }
        // The end of the text, within one line of a narrow terminal.
        let chars: Vec<char> = text.chars().collect();
        let tail: String = chars[chars.len().saturating_sub(70)..].iter().collect();
        let lead = if chars.len() > 70 { "…" } else { "" };
        eprint!("\r\x1b[2K(writing) {lead}{tail}");
        self.on_screen = true;
    }

    /// Takes the draft off the screen: the answer replaces it.
    pub(super) fn clear(&mut self) {
        if self.on_screen {
            eprint!("\r\x1b[2K");
            self.on_screen = false;
        }
    }
}

pub(super) fn print_keyboard(message: &serde_json::Value, interactive: bool) {
    let Some(rows) = message["reply_markup"]["inline_keyboard"].as_array() else {
        return;
    };
    let labels: Vec<&str> = rows
        .iter()
        .filter_map(|row| row.as_array())
        .flatten()
        .filter_map(|button| button["text"].as_str())
        .collect();
    if labels.is_empty() {
        return;
    }
    let buttons: Vec<String> = labels
        .iter()
        .enumerate()
        .map(|(index, label)| format!("[{}] {label}", index + 1))
        .collect();
    println!("{}", buttons.join("  "));
    if interactive {
        eprintln!("(type [1] or [{}] to press a button)", labels[0]);
    }
}
