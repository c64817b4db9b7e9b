//! A long answer as messages within Telegram's limit, cut where a reader
//! would pause: between paragraphs, else lines, else sentences, else words.

use crate::telegram::MAX_TEXT_UTF16;

/// `text` as messages of at most `limit` UTF-16 units each (Telegram's
/// [`MAX_TEXT_UTF16`] for [`split`]), none empty, which joined with the
/// whitespace cut away give `text` back.
pub fn split_at(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let end = fitting(rest, limit);
        if end == rest.len() {
            parts.push(rest.to_owned());
            break;
        }
        let cut = pause_before(&rest[..end]).unwrap_or(end);
        let (part, next) = rest.split_at(cut);
        parts.push(part.trim_end().to_owned());
        rest = next.trim_start();
    }
    parts
}

/// [`split_at`] Telegram's limit.
pub fn split(text: &str) -> Vec<String> {
    split_at(text, MAX_TEXT_UTF16)
}

/// The longest prefix of `text`, in bytes, within `limit` UTF-16 units
/// (at least one character, so that the cut always moves on).
fn fitting(text: &str, limit: usize) -> usize {
    let mut used = 0;
    for (index, c) in text.char_indices() {
        used += c.len_utf16();
        if used > limit {
            return if index == 0 { c.len_utf8() } else { index };
        }
    }
    text.len()
}

/// Where to end a message taken from `head` (which is all that fits): the
/// last paragraph break, line break, sentence end or space, preferring the
/// coarser one unless it would leave the message less than a quarter full.
fn pause_before(head: &str) -> Option<usize> {
    let quarter = head.len() / 4;
    let candidates = [
        head.rfind("\n\n"),
        head.rfind('\n'),
        sentence_end(head),
        head.rfind(char::is_whitespace),
    ];
    let mut fallback = None;
    for found in candidates.into_iter().flatten() {
        if found > quarter {
            return Some(found);
        }
        if found > 0 && fallback.is_none() {
            fallback = Some(found);
        }
    }
    fallback
}

/// Just after the last `.`, `!` or `?` followed by a space.
fn sentence_end(head: &str) -> Option<usize> {
    [". ", "! ", "? "]
        .iter()
        .filter_map(|end| head.rfind(end).map(|at| at + 1))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn units(s: &str) -> usize {
        s.encode_utf16().count()
    }

    #[test]
    fn a_short_answer_is_one_message() {
        assert_eq!(split("  Hello.\n"), ["Hello."]);
        assert!(split("  \n ").is_empty());
    }

    #[test]
    fn cuts_prefer_paragraphs_then_lines_then_sentences_then_words() {
        let text = "First paragraph here.\n\nSecond one, longer than the rest.";
        assert_eq!(
            split_at(text, 30),
            [
                "First paragraph here.",
                "Second one, longer than the",
                "rest."
            ]
        );
        assert_eq!(split_at("One line\nand two", 12), ["One line", "and two"]);
        assert_eq!(
            split_at("It rains. It pours all day", 20),
            ["It rains.", "It pours all day"]
        );
        assert_eq!(split_at("abcdefghij", 4), ["abcd", "efgh", "ij"]);
    }

    #[test]
    fn a_break_too_early_is_passed_over_for_a_fuller_message() {
        // The paragraph break after "A." would leave a message of 2 units.
        let text = "A.\n\nthen a long sentence without a pause that goes on";
        let parts = split_at(text, 30);
        assert_eq!(parts[0], "A.\n\nthen a long sentence");
    }

    proptest! {
        #[test]
        fn every_part_fits_and_nothing_is_lost(
            text in "[a-zé😀 .!?\n]{0,400}",
            limit in 1usize..60,
        ) {
            let parts = split_at(&text, limit);
            for part in &parts {
                prop_assert!(!part.is_empty());
                // A character wider than the limit still makes progress.
                prop_assert!(units(part) <= limit.max(2), "{part:?}");
            }
            let strip = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            prop_assert_eq!(strip(&parts.concat()), strip(&text));
        }
    }
}
