//! The project's command-line tool: runs the bot by long polling, and
//! administers the webhook. Configured by the same environment variables as
//! the Lambda function, the token from `TELEGRAM_BOT_TOKEN` or from the
//! Parameter Store parameter `TELEGRAM_BOT_TOKEN_PARAMETER` names.

mod chat;
mod doctor;
mod function;
mod menu;
mod secrets;
mod webhook_admin;

use menu::{set_commands, show_commands};
use webhook_admin::{delete_webhook, set_webhook, webhook_info};

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use telegram_lambda_bot::bot::{Bot, ALLOWED_UPDATES};
use telegram_lambda_bot::config::{Config, ConfigError, InitError, WebhookSecret};
use telegram_lambda_bot::handler::Handler;
use telegram_lambda_bot::poll::{self, PollOptions, MAX_POLL_TIMEOUT_SECS};
use telegram_lambda_bot::runtime::client::{ApiError, BotApi};
use telegram_lambda_bot::runtime::error::Chain;
use telegram_lambda_bot::runtime::logging;
use telegram_lambda_bot::runtime::memory::Memory;
use telegram_lambda_bot::runtime::retry::{retry, Backoff, GaveUp, RetryPolicy, Stop};
use telegram_lambda_bot::runtime::store::StoreConfig;
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
