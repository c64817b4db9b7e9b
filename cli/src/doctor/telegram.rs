//! Telegram's side of the bot, through the Bot API: the token is the
//! stack's bot's, the webhook points at the deployed URL with the bot's
//! update kinds, deliveries do not fail, and the command menu is the code's.

use telegram_lambda_bot::bot::ALLOWED_UPDATES;
use telegram_lambda_bot::runtime::client::ApiError;
use telegram_lambda_bot::runtime::error::Chain;
use telegram_lambda_bot::telegram::{BotCommand, BotCommandError, Me, WebhookInfo};

use super::{Finding, Mark};
use crate::menu::menu_line;
use crate::webhook_admin::human_age;

/// A delivery error younger than this is a problem now; an older one is
/// history, since Telegram keeps the last error after delivery recovered.
const RECENT_ERROR_SECS: i64 = 600;

/// The token works, and belongs to the bot the stack was deployed for.
pub fn check_token(me: &Result<Me, ApiError>, expected: Option<&str>) -> Finding {
    let me = match me {
        Ok(me) => me,
        Err(error) => return Finding::new(Mark::Fail, "token", Chain(error).to_string()),
    };
    let username = me.username.as_deref().unwrap_or_default();
    match expected {
        Some(expected) if !expected.eq_ignore_ascii_case(username) => Finding::new(
            Mark::Fail,
            "token",
            format!("it is @{username}'s, but the stack is for @{expected}"),
        ),
        _ => Finding::new(Mark::Ok, "token", format!("@{username} (id {})", me.id)),
    }
}

/// Telegram delivers to the deployed URL, the update kinds the bot handles.
pub fn check_webhook(info: &WebhookInfo, expected_url: &str) -> Finding {
    let mut wanted: Vec<&str> = ALLOWED_UPDATES.to_vec();
    wanted.sort_unstable();
    let mut kinds: Vec<&str> = info
        .allowed_updates
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    kinds.sort_unstable();
    let shown_kinds = if kinds.is_empty() {
        "Telegram's default kinds".to_owned()
    } else {
        kinds.join(", ")
    };
    let mut problems = Vec::new();
    if info.url.is_empty() {
        problems.push(format!("none set, expected {expected_url}"));
    } else if info.url != expected_url {
        problems.push(format!(
            "Telegram has {}, expected {expected_url}",
            info.url
        ));
    }
    if kinds != wanted {
        problems.push(format!(
            "updates {shown_kinds}, expected {}",
            wanted.join(", ")
        ));
    }
    if problems.is_empty() {
        Finding::new(
            Mark::Ok,
            "webhook",
            format!("{} (updates {shown_kinds})", info.url),
        )
    } else {
        Finding::new(
            Mark::Fail,
            "webhook",
            format!("{} (scripts/deploy sets it)", problems.join("; ")),
        )
    }
}

/// Updates reach the function: no delivery error lately, or none since
/// `since`.
pub fn check_delivery(info: &WebhookInfo, now: i64, since: Option<i64>) -> Finding {
    let pending = format!("{} pending", info.pending_update_count);
    let Some(date) = info.last_error_date else {
        return Finding::new(
            Mark::Ok,
            "delivery",
            format!("{pending}, no delivery error"),
        );
    };
    let age = now.saturating_sub(date);
    let message = info.last_error_message.as_deref().unwrap_or("(no message)");
    let recent = match since {
        Some(since) => date >= since,
        None => age < RECENT_ERROR_SECS,
    };
    if recent {
        Finding::new(
            Mark::Fail,
            "delivery",
            format!("{pending}; last error {} ago: {message}", human_age(age)),
        )
    } else {
        Finding::new(
            Mark::Note,
            "delivery",
            format!(
                "{pending}; last error {} ago (old): {message}",
                human_age(age)
            ),
        )
    }
}

/// Telegram's command menu is the one the code would set.
pub fn check_menu(
    shown: &Result<Vec<BotCommand>, ApiError>,
    wanted: &Result<Vec<BotCommand>, BotCommandError>,
    memory: bool,
) -> Finding {
    let (shown, wanted) = match (shown, wanted) {
        (Err(error), _) => return Finding::new(Mark::Fail, "menu", Chain(error).to_string()),
        (_, Err(error)) => return Finding::new(Mark::Fail, "menu", Chain(error).to_string()),
        (Ok(shown), Ok(wanted)) => (shown, wanted),
    };
    if shown == wanted {
        return Finding::new(
            Mark::Ok,
            "menu",
            format!("{} (as in the code)", menu_line(shown)),
        );
    }
    let fix = if memory {
        "bot commands set"
    } else {
        "bot commands set --no-memory"
    };
    Finding::new(
        Mark::Fail,
        "menu",
        format!(
            "Telegram shows {}, the code has {} (run `{fix}`)",
            menu_line(shown),
            menu_line(wanted)
        ),
    )
}

/// The scopes that outrank the default menu for whole kinds of chat, most
/// used first: a menu set in one of them (by another tool, or by hand) is
/// what those users see instead of the code's. Scopes of single chats and
/// language-specific menus cannot be listed through the Bot API.
pub const OUTRANKING_SCOPES: [&str; 3] = [
    "all_private_chats",
    "all_group_chats",
    "all_chat_administrators",
];

/// The menus of [`OUTRANKING_SCOPES`], as read: each must be empty, or the
/// default menu the code sets is not the one shown there.
pub fn check_outranking_menus(
    shown: &[(&str, Result<Vec<BotCommand>, ApiError>)],
) -> Option<Finding> {
    let mut hiding = Vec::new();
    for (scope, menu) in shown {
        match menu {
            Err(error) => {
                return Some(Finding::new(
                    Mark::Fail,
                    "menu",
                    format!("{scope}: {}", Chain(error)),
                ))
            }
            Ok(menu) if !menu.is_empty() => hiding.push(format!("{scope} has {}", menu_line(menu))),
            Ok(_) => {}
        }
    }
    (!hiding.is_empty()).then(|| {
        Finding::new(
            Mark::Fail,
            "menu",
            format!(
                "a menu set for a whole kind of chat hides the code's there: {} (remove it with deleteMyCommands and that scope)",
                hiding.join("; ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use telegram_lambda_bot::telegram::UserId;

    fn me(username: &str) -> Me {
        Me {
            id: UserId(42),
            is_bot: true,
            first_name: "Echo".to_owned(),
            username: Some(username.to_owned()),
        }
    }

    fn info(url: &str, kinds: &[&str]) -> WebhookInfo {
        WebhookInfo {
            url: url.to_owned(),
            allowed_updates: Some(kinds.iter().map(|k| k.to_string()).collect()),
            ..WebhookInfo::default()
        }
    }

    fn command(name: &str) -> BotCommand {
        BotCommand {
            command: name.to_owned(),
            description: "does it".to_owned(),
        }
    }

    fn finding(mark: Mark, check: &'static str, detail: &str) -> Finding {
        Finding::new(mark, check, detail)
    }
    #[test]
    fn the_token_must_be_the_stacks_bot() {
        let echo = Ok(me("EchoBot"));
        assert_eq!(check_token(&echo, None).mark, Mark::Ok);
        assert_eq!(check_token(&echo, Some("echobot")).mark, Mark::Ok);
        let other = check_token(&echo, Some("OtherBot"));
        assert_eq!(other.mark, Mark::Fail);
        assert_eq!(
            other.detail,
            "it is @EchoBot's, but the stack is for @OtherBot"
        );
        let refused = Err(ApiError::Telegram {
            method: "getMe",
            code: 401,
            description: "Unauthorized".to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        });
        let refused = check_token(&refused, Some("EchoBot"));
        assert_eq!(refused.mark, Mark::Fail);
        assert_eq!(refused.detail, "getMe: Telegram answered 401: Unauthorized");
    }

    #[test]
    fn the_webhook_must_be_the_url_with_the_bots_kinds_in_any_order() {
        let url = "https://abc.example/webhook";
        let ok = check_webhook(&info(url, &["callback_query", "message"]), url);
        assert_eq!(ok.mark, Mark::Ok);
        assert_eq!(
            ok.detail,
            "https://abc.example/webhook (updates callback_query, message)"
        );
        let elsewhere = check_webhook(&info("https://old.example/", ALLOWED_UPDATES), url);
        assert_eq!(elsewhere.mark, Mark::Fail);
        assert!(elsewhere.detail.starts_with(
            "Telegram has https://old.example/, expected https://abc.example/webhook"
        ));
        let none = check_webhook(&info("", &[]), url);
        assert_eq!(none.mark, Mark::Fail);
        assert!(
            none.detail.starts_with("none set, expected"),
            "{}",
            none.detail
        );
        let kinds = check_webhook(&info(url, &["message"]), url);
        assert_eq!(kinds.mark, Mark::Fail);
        assert!(kinds
            .detail
            .contains("updates message, expected callback_query, message"));
        let default = WebhookInfo {
            url: url.to_owned(),
            ..WebhookInfo::default()
        };
        assert!(check_webhook(&default, url)
            .detail
            .contains("updates Telegram's default kinds"));
    }

    #[test]
    fn a_recent_delivery_error_fails_and_an_old_one_is_a_note() {
        let now = 1_800_000_000;
        let mut info = info("https://abc.example/webhook", ALLOWED_UPDATES);
        info.pending_update_count = 3;
        assert_eq!(
            check_delivery(&info, now, None),
            finding(Mark::Ok, "delivery", "3 pending, no delivery error")
        );
        info.last_error_message = Some("Wrong response from the webhook: 502 Bad Gateway".into());
        info.last_error_date = Some(now - 300);
        assert_eq!(
            check_delivery(&info, now, None),
            finding(
                Mark::Fail,
                "delivery",
                "3 pending; last error 5 min ago: Wrong response from the webhook: 502 Bad Gateway"
            )
        );
        // After a deploy, only errors since its setWebhook count.
        assert_eq!(check_delivery(&info, now, Some(now - 60)).mark, Mark::Note);
        assert_eq!(check_delivery(&info, now, Some(now - 300)).mark, Mark::Fail);
        info.last_error_date = Some(now - 600);
        let old = check_delivery(&info, now, None);
        assert_eq!(old.mark, Mark::Note);
        assert_eq!(
            old.detail,
            "3 pending; last error 10 min ago (old): Wrong response from the webhook: 502 Bad Gateway"
        );
    }
    #[test]
    fn the_menu_must_be_the_codes() {
        let wanted = Ok(vec![command("start"), command("help")]);
        let same = check_menu(&Ok(vec![command("start"), command("help")]), &wanted, true);
        assert_eq!(
            same,
            finding(Mark::Ok, "menu", "/start /help (as in the code)")
        );
        let empty = check_menu(&Ok(vec![]), &wanted, false);
        assert_eq!(
            empty,
            finding(
                Mark::Fail,
                "menu",
                "Telegram shows (empty), the code has /start /help (run `bot commands set --no-memory`)"
            )
        );
        let unserved = Err(ApiError::Http {
            method: "getMyCommands",
            status: 502,
            retry_after: None,
        });
        assert_eq!(check_menu(&unserved, &wanted, true).mark, Mark::Fail);
    }
}
