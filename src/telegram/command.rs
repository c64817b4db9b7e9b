//! Bot commands as Telegram marks them: `/name`, `/name args`,
//! `/name@bot args`.

use super::Message;

/// A bot command at the start of a message: `/name`, `/name args` or
/// `/name@bot args`, following the Bot API's rules for names (1-32 Latin
/// letters, digits and underscores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    pub name: &'a str,
    /// The bot the command names after `@`, if any.
    pub bot: Option<&'a str>,
    /// The rest of the text, without the whitespace after the command.
    pub args: &'a str,
}

impl<'a> Command<'a> {
    /// The command `message` starts with, where Telegram's `bot_command`
    /// entity at offset 0 says it ends: `/help,` is `/help`, and
    /// `/start@OtherBot!` names the other bot. A message whose update has no
    /// entities (one made by hand) is read with [`Command::parse`].
    pub fn of(message: &'a Message) -> Option<Self> {
        if message.entities.is_none() {
            return Command::parse(message.text.as_deref()?);
        }
        let (command, rest) = message.entity_at("bot_command", 0)?;
        let parsed = Command::parse(command)?;
        Some(Command {
            args: rest.trim_start(),
            ..parsed
        })
    }

    /// A command at the start of `text` by the Bot API's rules, up to the
    /// first whitespace.
    pub fn parse(text: &'a str) -> Option<Self> {
        let rest = text.strip_prefix('/')?;
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, args) = rest.split_at(end);
        let (name, bot) = match word.split_once('@') {
            Some((name, bot)) => (name, Some(bot)),
            None => (word, None),
        };
        let valid_name = (1..=32).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let valid_bot = bot.is_none_or(|b| {
            !b.is_empty() && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        });
        (valid_name && valid_bot).then(|| Command {
            name,
            bot,
            args: args.trim_start(),
        })
    }
}

impl Command<'_> {
    /// Whether this is the command `name` (without `/`), in any case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// Whether the command is for the bot named `username` (without `@`):
    /// one that names no bot is for every bot in the chat, and without a
    /// username any named bot is taken as this one.
    pub fn is_for(&self, username: Option<&str>) -> bool {
        match (self.bot, username) {
            (None, _) | (Some(_), None) => true,
            (Some(named), Some(ours)) => named.eq_ignore_ascii_case(ours),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn command_parsing_follows_the_bot_api_rules() {
        assert_eq!(
            Command::parse("/start@Bot  a b"),
            Some(Command {
                name: "start",
                bot: Some("Bot"),
                args: "a b"
            })
        );
        assert_eq!(
            Command::parse("/help\nmore"),
            Some(Command {
                name: "help",
                bot: None,
                args: "more"
            })
        );
        assert_eq!(Command::parse("start"), None);
        assert_eq!(Command::parse("/start@"), None);
        assert_eq!(Command::parse(&format!("/{}", "a".repeat(33))), None);
    }

    #[test]
    fn a_command_is_for_the_bot_it_names_in_any_case() {
        let named = |text| Command::parse(text).unwrap();
        assert!(named("/help@echolambdabot").is_for(Some("EchoLambdaBot")));
        assert!(!named("/help@OtherBot").is_for(Some("EchoLambdaBot")));
        assert!(named("/help").is_for(Some("EchoLambdaBot")));
        assert!(named("/help@Any").is_for(None));
    }

    fn command_name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_]{1,32}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn commands_parse_as_the_bot_api_defines_them(
            name in command_name(),
            target in proptest::option::of(command_name()),
            separator in prop_oneof![" ", "\n", "\t", "  "],
            args in "[^\\s].{0,40}",
        ) {
            let text = match &target {
                Some(bot) => format!("/{name}@{bot}{separator}{args}"),
                None => format!("/{name}{separator}{args}"),
            };
            let command = Command::parse(&text);
            prop_assert_eq!(command, Some(Command { name: &name, bot: target.as_deref(), args: args.as_str() }));
        }

        #[test]
        fn names_outside_the_rules_are_not_commands(
            name in "[A-Za-z0-9_]{33,40}|[A-Za-z0-9_]{0,5}[^A-Za-z0-9_@\\s][A-Za-z0-9_]{0,5}",
        ) {
            let text = format!("/{name}");
            prop_assert_eq!(Command::parse(&text), None);
        }
    }
}
