//! `bot commands set | show`: Telegram's command menu, from the commands
//! the bot's `/help` lists.

use super::*;

/// The menu the bot's code asks for, with or without memory (a store).
pub(super) fn code_menu(memory: bool) -> Result<Vec<BotCommand>, BotCommandError> {
    BotCommand::menu(&Bot::default().keeping_state(memory).commands())
}

pub(super) async fn set_commands(api: &BotApi, args: MenuArgs) -> Result<(), CommandError> {
    let wanted = code_menu(!args.no_memory)?;
    // Telegram allows few setMyCommands calls a minute; a deploy that
    // changed no command makes none.
    if api.get_my_commands().await? == wanted {
        println!(
            "Command menu already up to date ({} commands).",
            wanted.len()
        );
        return Ok(());
    }
    retry(
        &RetryPolicy::once_more_if_limited(),
        &mut Stop::never(),
        "setMyCommands",
        || api.set_my_commands(&wanted),
    )
    .await?;
    println!("Command menu set: {}", menu_line(&wanted));
    Ok(())
}

pub(super) async fn show_commands(api: &BotApi, args: MenuArgs) -> Result<(), CommandError> {
    let wanted = code_menu(!args.no_memory)?;
    let shown = api.get_my_commands().await?;
    println!("Telegram's menu:  {}", menu_line(&shown));
    if shown == wanted {
        println!("Matches the bot's commands.");
        Ok(())
    } else {
        println!("The bot's commands: {}", menu_line(&wanted));
        Err(CommandError::MenuDiffers)
    }
}

/// `/start /help`, or `(empty)`.
pub(super) fn menu_line(menu: &[BotCommand]) -> String {
    if menu.is_empty() {
        return "(empty)".to_owned();
    }
    menu.iter()
        .map(|c| format!("/{}", c.command))
        .collect::<Vec<_>>()
        .join(" ")
}
