//! The project's command-line tool: runs the bot by long polling, and
//! administers the webhook. Configured by the same environment variables as
//! the Lambda function, the token from `TELEGRAM_BOT_TOKEN` or from the
//! Parameter Store parameter `TELEGRAM_BOT_TOKEN_PARAMETER` names.

mod chat;
mod doctor;
mod function;
mod secrets;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use telegram_lambda_bot::bot::{Bot, ALLOWED_UPDATES};
use telegram_lambda_bot::client::{ApiError, BotApi};
use telegram_lambda_bot::config::{Config, ConfigError, InitError, WebhookSecret};
use telegram_lambda_bot::error::Chain;
use telegram_lambda_bot::handler::Handler;
use telegram_lambda_bot::logging;
use telegram_lambda_bot::memory::Memory;
use telegram_lambda_bot::poll::{self, PollOptions, MAX_POLL_TIMEOUT_SECS};
use telegram_lambda_bot::retry::{retry, Backoff, GaveUp, RetryPolicy, Stop};
use telegram_lambda_bot::store::StoreConfig;
use telegram_lambda_bot::telegram::{BotCommand, BotCommandError, SetWebhook, WebhookInfo};
use tokio::sync::watch;

/// Run and administer the Telegram bot.
///
/// Reads TELEGRAM_BOT_TOKEN (or TELEGRAM_BOT_TOKEN_PARAMETER, a Parameter
/// Store name), TELEGRAM_API_BASE_URL, TELEGRAM_BOT_USERNAME and the other
/// variables in the README, as the Lambda function does.
#[derive(Debug, Parser)]
#[command(name = "bot", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive updates by long polling (getUpdates) and answer them, without a
    /// public URL. Deletes the webhook first. Ctrl-C stops after the update in
    /// hand and confirms it.
    Poll(PollArgs),
    /// Set, show or delete the webhook Telegram delivers updates to.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Chat with the bot in the terminal, with nothing but Rust: the Telegram
    /// stand-in delivers your messages to the real function, built with cargo
    /// and run as Lambda runs it (with --watch, under `cargo lambda watch`;
    /// with --polling, to the polling loop).
    Chat(chat::ChatArgs),
    /// Set or show the command menu Telegram shows users (setMyCommands),
    /// from the commands `/help` lists.
    #[command(subcommand)]
    Commands(CommandsCommand),
    /// Check the deployed bot from outside: the token, the webhook Telegram
    /// has, its delivery errors, the endpoint's answers with and without the
    /// secret, and the command menu. One line per check: ok, note or FAIL.
    #[command(after_help = "\
Reads the stack with `aws cloudformation describe-stacks` (or checks --url), \
the token from TELEGRAM_BOT_TOKEN or the stack's BotTokenParameter, the \
webhook secret from TELEGRAM_WEBHOOK_SECRET or the stack's \
WebhookSecretParameter (`aws ssm get-parameter`).

The endpoint gets two POSTs: one without the secret (expects 401) and one \
with it whose JSON body is not an update (expects 200; the bot sends nothing).

Exit status:
  0  every check passed (notes are not problems)
  1  a check failed, or the stack, token or secret could not be read
  2  the arguments are wrong
  3  the only problem: the endpoint was not reached (name not resolved, \
connection refused or timed out), as a just-created endpoint can be")]
    Doctor(doctor::DoctorArgs),
    /// Keep the bot's own secrets (the names its handler declares in
    /// SECRETS) in a JSON file, as scripts/deploy stores them in Parameter
    /// Store; a value comes from stdin, never the command line.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Show the bot's own account (getMe): a check that the token works.
    Me {
        /// Print only the username, for scripts.
        #[arg(long)]
        username: bool,
    },
}

#[derive(Debug, clap::Args)]
struct PollArgs {
    /// Seconds each getUpdates call waits for an update (Telegram's maximum is 50).
    #[arg(long, default_value_t = MAX_POLL_TIMEOUT_SECS, value_parser = clap::value_parser!(u32).range(0..=50))]
    timeout: u32,
    /// Updates per getUpdates call.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=100))]
    limit: u8,
    /// Update kinds to receive, comma-separated; `all` for every kind
    /// Telegram sends by default.
    #[arg(long, value_delimiter = ',', default_values_t = ALLOWED_UPDATES.iter().map(|s| s.to_string()))]
    allowed_updates: Vec<String>,
    /// Drop the updates waiting on Telegram's side instead of answering them.
    #[arg(long)]
    drop_pending_updates: bool,
    /// Longest wait between retries after a failure, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    max_backoff: u64,
    /// The file that keeps the chats' state and which updates were answered,
    /// so that a restart answers none twice. BOT_STORE_FILE or
    /// BOT_STORE_TABLE, when set, are used instead of the default.
    #[arg(long, value_name = "PATH", conflicts_with = "no_store")]
    store: Option<PathBuf>,
    /// Keep no memory: every update starts from the default state, and
    /// updates answered but not yet confirmed when the process dies are
    /// answered again.
    #[arg(long)]
    no_store: bool,
}

/// Where `bot poll` keeps its memory unless told otherwise.
const DEFAULT_STORE_FILE: &str = ".bot/store.redb";

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Point Telegram at the function's URL (setWebhook).
    Set(SetArgs),
    /// Show what Telegram knows of the webhook (getWebhookInfo).
    Info(InfoArgs),
    /// Remove the webhook (deleteWebhook); updates then wait for getUpdates.
    Delete {
        /// Also drop the updates waiting on Telegram's side.
        #[arg(long)]
        drop_pending_updates: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CommandsCommand {
    /// Make Telegram's menu the bot's commands; no call when it already is.
    Set(MenuArgs),
    /// Show Telegram's menu; exit 1 when it differs from the bot's commands.
    Show(MenuArgs),
}

#[derive(Debug, clap::Args)]
struct MenuArgs {
    /// The menu of a bot without a store (scripts/deploy --memory Off):
    /// commands that need memory are left out, as `/help` leaves them out.
    #[arg(long)]
    no_memory: bool,
}

#[derive(Debug, clap::Args)]
struct SetArgs {
    /// The HTTPS URL Telegram will POST updates to.
    #[arg(long)]
    url: String,
    /// The secret Telegram sends in X-Telegram-Bot-Api-Secret-Token; from the
    /// environment by default, so it stays out of the process list.
    #[arg(long, env = "TELEGRAM_WEBHOOK_SECRET", hide_env_values = true)]
    secret_token: String,
    /// Update kinds to receive, comma-separated; `all` for every kind
    /// Telegram sends by default.
    #[arg(long, value_delimiter = ',', default_values_t = ALLOWED_UPDATES.iter().map(|s| s.to_string()))]
    allowed_updates: Vec<String>,
    /// Most concurrent deliveries, so the most concurrent invocations.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u8).range(1..=100))]
    max_connections: u8,
    /// Drop the updates waiting on Telegram's side (they are lost).
    #[arg(long)]
    drop_pending_updates: bool,
}

#[derive(Debug, clap::Args)]
struct InfoArgs {
    /// Print Telegram's answer as JSON.
    #[arg(long)]
    json: bool,
    /// Exit 1 unless the webhook is set to this URL.
    #[arg(long)]
    expect_url: Option<String>,
    /// Exit 1 if Telegram reported a delivery error less than this many
    /// seconds ago.
    #[arg(long)]
    fail_on_error_within: Option<u64>,
}

/// Why a command failed; shown as one line after `bot: `.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "--url must be an https:// URL (or http:// to this machine, for the stand-in), got {0}"
    )]
    NotHttps(String),
    #[error("the webhook is {actual:?}, expected {expected:?}")]
    UnexpectedUrl { actual: String, expected: String },
    #[error("Telegram reported a delivery error {age} ago: {message}")]
    RecentDeliveryError { age: String, message: String },
    #[error(transparent)]
    Menu(#[from] BotCommandError),
    #[error("Telegram's command menu differs from the bot's commands (run `bot commands set`)")]
    MenuDiffers,
    #[error("cannot print the answer as JSON")]
    Json(#[from] serde_json::Error),
    #[error("internal: `chat`, `doctor` and `secrets` are run before the configuration is read")]
    ChatAfterSetup,
}

impl From<GaveUp> for CommandError {
    fn from(gave_up: GaveUp) -> Self {
        match gave_up {
            GaveUp::Failed(error) | GaveUp::Stopped(error) => CommandError::Api(error),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Secrets(command) = cli.command {
        // Files only: no token, no network, no runtime.
        return match secrets::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("bot: {}", Chain(&error));
                ExitCode::FAILURE
            }
        };
    }
    // The chat's terminal is for the conversation: only problems are logged.
    match cli.command {
        Command::Chat(_) => logging::init_with_default("warn"),
        _ => logging::init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bot: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        if let Command::Doctor(args) = cli.command {
            // Reads its configuration itself: the stack tells where the
            // token is.
            return doctor::run(args).await;
        }
        if let Command::Chat(args) = cli.command {
            // Needs no configuration: it brings its own Telegram.
            return match chat::run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("bot: {}", Chain(&error));
                    ExitCode::FAILURE
                }
            };
        }
        let (config, api) = match setup().await {
            Ok(ready) => ready,
            Err(code) => return code,
        };
        let result = match cli.command {
            Command::Poll(args) => return run_poll(&config, &api, args).await,
            Command::Webhook(WebhookCommand::Set(args)) => set_webhook(&api, args).await,
            Command::Webhook(WebhookCommand::Info(args)) => webhook_info(&api, args).await,
            Command::Webhook(WebhookCommand::Delete {
                drop_pending_updates,
            }) => delete_webhook(&api, drop_pending_updates).await,
            Command::Commands(CommandsCommand::Set(args)) => set_commands(&api, args).await,
            Command::Commands(CommandsCommand::Show(args)) => show_commands(&api, args).await,
            Command::Me { username } => me(&api, username).await,
            Command::Chat(_) | Command::Doctor(_) | Command::Secrets(_) => {
                Err(CommandError::ChatAfterSetup)
            }
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("bot: {}", Chain(&error));
                ExitCode::FAILURE
            }
        }
    });
    // Nothing left to finish: a thread still blocked (reading stdin, or
    // resolving a name) must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn setup() -> Result<(Config, BotApi), ExitCode> {
    let ready = match Config::load().await {
        Ok(config) => BotApi::new(&config).map(|api| (config, api)),
        Err(error) => Err(InitError::from(error)),
    };
    ready.map_err(|error| {
        eprintln!("bot: {}", Chain(&error));
        ExitCode::FAILURE
    })
}

/// An empty list asks Telegram for every kind it sends by default.
fn allowed(kinds: Vec<String>) -> Vec<String> {
    if kinds.iter().any(|k| k == "all") {
        Vec::new()
    } else {
        kinds
    }
}

async fn run_poll(config: &Config, api: &BotApi, args: PollArgs) -> ExitCode {
    let mut config = config.clone();
    // Locally the bot's secrets come from the environment.
    if let Err(error) = config.read_secrets(Bot::SECRETS, |name| std::env::var(name).ok()) {
        eprintln!("bot: {}", Chain(&error));
        return ExitCode::FAILURE;
    }
    let bot = Bot::from_config(&config);
    config.store = match (args.no_store, args.store, &config.store) {
        (true, _, _) => StoreConfig::Off,
        (false, Some(path), _) => StoreConfig::File { path },
        (false, None, StoreConfig::Off) => StoreConfig::File {
            path: PathBuf::from(DEFAULT_STORE_FILE),
        },
        (false, None, from_environment) => from_environment.clone(),
    };
    let memory = match Memory::from_config(&config).await {
        Ok(memory) => memory,
        Err(error) => {
            eprintln!("bot: {}", Chain(&error));
            return ExitCode::FAILURE;
        }
    };
    match &config.store {
        StoreConfig::File { path } => {
            tracing::info!(store = %path.display(), "remembering chats in a file")
        }
        StoreConfig::DynamoDb { table } => tracing::info!(table, "remembering chats in DynamoDB"),
        StoreConfig::Off => tracing::info!("no store: chats are not remembered"),
    }
    let options = PollOptions {
        memory,
        timeout_secs: args.timeout,
        limit: args.limit,
        allowed_updates: Some(allowed(args.allowed_updates)),
        drop_pending_updates: args.drop_pending_updates,
        backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(args.max_backoff),
        },
        confirm_when_answered: false,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping after the update in hand (Ctrl-C again to quit now)");
        let _ = stop_tx.send(true);
        wait_for_signal().await;
        eprintln!("bot: stopped at once; unconfirmed updates come again on the next start");
        std::process::exit(130);
    });
    match poll::run(api, &bot, &options, Stop::on(stop_rx)).await {
        Ok(summary) => {
            tracing::info!(handled = summary.handled, "stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bot: {}", Chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// HTTPS, as Telegram requires; or plain HTTP to this machine, which only a
/// local Bot API (the stand-in) can deliver to.
fn is_webhook_url(url: &str) -> bool {
    url.starts_with("https://")
        || ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
            .iter()
            .any(|prefix| url.starts_with(prefix))
}

async fn set_webhook(api: &BotApi, args: SetArgs) -> Result<(), CommandError> {
    if !is_webhook_url(&args.url) {
        return Err(CommandError::NotHttps(args.url));
    }
    let secret = WebhookSecret::parse(&args.secret_token)?;
    let request = SetWebhook {
        url: args.url.clone(),
        secret_token: Some(secret.expose().to_owned()),
        allowed_updates: Some(allowed(args.allowed_updates)),
        max_connections: Some(args.max_connections),
        drop_pending_updates: Some(args.drop_pending_updates),
    };
    // setWebhook allows one call a second: a person's retry would be next.
    retry(
        &RetryPolicy::once_more_if_limited(),
        &mut Stop::never(),
        "setWebhook",
        || api.set_webhook(&request),
    )
    .await?;
    println!("Webhook set: {}", args.url);
    Ok(())
}

/// The menu the bot's code asks for, with or without memory (a store).
fn code_menu(memory: bool) -> Result<Vec<BotCommand>, BotCommandError> {
    BotCommand::menu(&Bot::default().keeping_state(memory).commands())
}

async fn set_commands(api: &BotApi, args: MenuArgs) -> Result<(), CommandError> {
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

async fn show_commands(api: &BotApi, args: MenuArgs) -> Result<(), CommandError> {
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
fn menu_line(menu: &[BotCommand]) -> String {
    if menu.is_empty() {
        return "(empty)".to_owned();
    }
    menu.iter()
        .map(|c| format!("/{}", c.command))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn me(api: &BotApi, username_only: bool) -> Result<(), CommandError> {
    let me = api.get_me().await?;
    let username = me.username.unwrap_or_default();
    if username_only {
        println!("{username}");
    } else {
        println!("@{username} ({}, id {})", me.first_name, me.id);
    }
    Ok(())
}

async fn delete_webhook(api: &BotApi, drop_pending_updates: bool) -> Result<(), CommandError> {
    api.delete_webhook(drop_pending_updates).await?;
    println!("Webhook deleted; updates now wait for getUpdates (bot poll).");
    Ok(())
}

async fn webhook_info(api: &BotApi, args: InfoArgs) -> Result<(), CommandError> {
    let info = api.get_webhook_info().await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print!("{}", describe(&info, now));
    }
    if let Some(expected) = &args.expect_url {
        if &info.url != expected {
            return Err(CommandError::UnexpectedUrl {
                actual: info.url,
                expected: expected.clone(),
            });
        }
    }
    if let (Some(window), Some(date)) = (args.fail_on_error_within, info.last_error_date) {
        let age = now.saturating_sub(date);
        if age < i64::try_from(window).unwrap_or(i64::MAX) {
            return Err(CommandError::RecentDeliveryError {
                age: human_age(age),
                message: info
                    .last_error_message
                    .unwrap_or_else(|| "(no message)".to_owned()),
            });
        }
    }
    Ok(())
}

/// getWebhookInfo for people: the error's age matters, since Telegram keeps
/// the last error after delivery recovered.
fn describe(info: &WebhookInfo, now: i64) -> String {
    let mut text = String::new();
    let mut line = |label: &str, value: String| text.push_str(&format!("{label:<17}{value}\n"));
    if info.url.is_empty() {
        line("URL:", "(none: updates wait for getUpdates)".to_owned());
    } else {
        line("URL:", info.url.clone());
    }
    line("Pending updates:", info.pending_update_count.to_string());
    if let Some(max) = info.max_connections {
        line("Max connections:", max.to_string());
    }
    if let Some(kinds) = &info.allowed_updates {
        let kinds = if kinds.is_empty() {
            "(Telegram's default kinds)".to_owned()
        } else {
            kinds.join(", ")
        };
        line("Allowed updates:", kinds);
    }
    if let Some(ip) = &info.ip_address {
        line("IP address:", ip.clone());
    }
    match (info.last_error_date, &info.last_error_message) {
        (Some(date), message) => line(
            "Last error:",
            format!(
                "{} ago: {}",
                human_age(now.saturating_sub(date)),
                message.as_deref().unwrap_or("(no message)")
            ),
        ),
        (None, _) => line("Last error:", "none".to_owned()),
    }
    text
}

fn human_age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
