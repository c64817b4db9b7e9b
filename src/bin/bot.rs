//! The project's command-line tool: runs the bot by long polling, and (later)
//! administers the webhook. Configured by the same environment variables as
//! the Lambda function.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;
use telegram_lambda_bot::bot::{Bot, ALLOWED_UPDATES};
use telegram_lambda_bot::client::{error_chain, BotApi};
use telegram_lambda_bot::config::Config;
use telegram_lambda_bot::logging;
use telegram_lambda_bot::poll::{self, Backoff, PollOptions, MAX_POLL_TIMEOUT_SECS};
use tokio::sync::watch;

/// Run and administer the Telegram bot.
///
/// Reads TELEGRAM_BOT_TOKEN, TELEGRAM_API_BASE_URL, TELEGRAM_BOT_USERNAME and
/// the other variables in the README, as the Lambda function does.
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
}

#[derive(Debug, clap::Args)]
struct PollArgs {
    /// Seconds each getUpdates call waits for an update (Telegram's maximum is 50).
    #[arg(long, default_value_t = MAX_POLL_TIMEOUT_SECS, value_parser = clap::value_parser!(u32).range(0..=50))]
    timeout: u32,
    /// Updates per getUpdates call.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=100))]
    limit: u8,
    /// Update kinds to receive, comma-separated; `all` for every kind but
    /// those Telegram leaves out by default.
    #[arg(long, value_delimiter = ',', default_values_t = ALLOWED_UPDATES.iter().map(|s| s.to_string()))]
    allowed_updates: Vec<String>,
    /// Drop the updates waiting on Telegram's side instead of answering them.
    #[arg(long)]
    drop_pending_updates: bool,
    /// Longest wait between retries after a failure, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    max_backoff: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
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
    runtime.block_on(async move {
        match cli.command {
            Command::Poll(args) => run_poll(args).await,
        }
    })
}

async fn run_poll(args: PollArgs) -> ExitCode {
    let (config, api) = match setup() {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let bot = Bot::new(config.bot_username.clone());
    // An empty list asks Telegram for every kind it sends by default.
    let allowed_updates = if args.allowed_updates.iter().any(|k| k == "all") {
        Some(Vec::new())
    } else {
        Some(args.allowed_updates)
    };
    let options = PollOptions {
        timeout_secs: args.timeout,
        limit: args.limit,
        allowed_updates,
        drop_pending_updates: args.drop_pending_updates,
        backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(args.max_backoff),
        },
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
    match poll::run(&api, &bot, &options, stop_rx).await {
        Ok(summary) => {
            tracing::info!(handled = summary.handled, "stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bot: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

fn setup() -> Result<(Config, BotApi), ExitCode> {
    let config = Config::from_env().map_err(|error| {
        eprintln!("bot: {error}");
        ExitCode::FAILURE
    })?;
    let api = BotApi::new(&config).map_err(|error| {
        eprintln!("bot: {}", error_chain(&error));
        ExitCode::FAILURE
    })?;
    Ok((config, api))
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
