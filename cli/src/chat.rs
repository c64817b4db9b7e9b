//! `bot chat`: talk to the bot on a machine with no token and no AWS account.
//!
//! Starts the Telegram stand-in in this process, and the real function under
//! `cargo lambda watch` (the Lambda runtime and HTTP path included), sets the
//! stand-in's webhook to it, then reads lines as a user's messages and prints
//! the bot's replies as they arrive. With `--polling`, runs the long-polling
//! loop against the stand-in instead. Without a terminal on stdin it reads to
//! the end of input and exits, which is how scripts and tests drive it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use telegram_lambda_bot::bot::{Bot, ALLOWED_UPDATES};
use telegram_lambda_bot::client::{ApiError, BotApi};
use telegram_lambda_bot::config::{Config, InitError};
use telegram_lambda_bot::poll::{self, PollOptions};
use telegram_lambda_bot::retry::Stop;
use telegram_lambda_bot::telegram::SetWebhook;
use telegram_stand_in::{Options, StandIn};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// Run the long-polling loop in this process instead of the function
    /// under `cargo lambda watch`.
    #[arg(long)]
    polling: bool,
    /// Your first name, as the bot sees it.
    #[arg(long, default_value = "Ali")]
    name: String,
    /// Seconds to wait for the bot's answer to each message.
    #[arg(long, default_value_t = 120)]
    wait: u64,
}

/// Why the chat could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("could not start the Telegram stand-in")]
    StandIn(#[source] std::io::Error),
    #[error("could not set the bot up")]
    Setup(#[from] InitError),
    #[error("could not point the stand-in's webhook at the function")]
    SetWebhook(#[source] ApiError),
    #[error("could not make a webhook secret")]
    Secret(#[source] getrandom::Error),
    #[error("cargo lambda watch: {0}")]
    Watch(String),
}

const USER_ID: i64 = 1_000_001;

pub async fn run(args: ChatArgs) -> Result<(), ChatError> {
    let stand_in = StandIn::start(Options::default())
        .await
        .map_err(ChatError::StandIn)?;
    let secret = random_secret()?;
    let vars = [
        ("TELEGRAM_BOT_TOKEN", stand_in.token().to_owned()),
        ("TELEGRAM_API_BASE_URL", stand_in.base_url()),
        (
            "TELEGRAM_BOT_USERNAME",
            telegram_stand_in::DEFAULT_BOT_USERNAME.to_owned(),
        ),
        ("TELEGRAM_WEBHOOK_SECRET", secret.clone()),
    ];
    let config = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .map_err(InitError::from)?;
    let api = BotApi::new(&config)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut watch_process = None;
    let mut poller = None;
    if args.polling {
        let bot = Bot::new(config.bot_username.clone());
        let api = api.clone();
        let options = PollOptions {
            timeout_secs: 10,
            ..PollOptions::default()
        };
        poller = Some(tokio::spawn(async move {
            poll::run(&api, &bot, &options, Stop::on(stop_rx)).await
        }));
        eprintln!(
            "Chatting with @{} by long polling, through the Telegram stand-in.",
            telegram_stand_in::DEFAULT_BOT_USERNAME
        );
    } else {
        let process = start_watch(&vars).await?;
        let url = format!("http://127.0.0.1:{}/lambda-url/webhook/", process.port);
        watch_process = Some(process);
        let set = SetWebhook {
            url,
            secret_token: Some(secret),
            allowed_updates: Some(ALLOWED_UPDATES.iter().map(|k| k.to_string()).collect()),
            max_connections: Some(40),
            drop_pending_updates: None,
        };
        if let Err(error) = api.set_webhook(&set).await {
            stop_watch(watch_process.take()).await;
            return Err(ChatError::SetWebhook(error));
        }
        eprintln!(
            "Chatting with @{} through the Telegram stand-in, which delivers to the function under cargo lambda watch.",
            telegram_stand_in::DEFAULT_BOT_USERNAME
        );
    }
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("Type a message and press Enter; Ctrl-D or Ctrl-C to quit.");
    }
    let result = converse(&stand_in, &args, interactive).await;
    let _ = stop_tx.send(true);
    if let Some(poller) = poller {
        let _ = tokio::time::timeout(Duration::from_secs(15), poller).await;
    }
    stop_watch(watch_process).await;
    result
}

/// Reads messages until the end of input or Ctrl-C, printing each reply.
async fn converse(stand_in: &StandIn, args: &ChatArgs, interactive: bool) -> Result<(), ChatError> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut printed = 0;
    loop {
        if interactive {
            eprint!("you> ");
        }
        let line = tokio::select! {
            line = lines.next_line() => line,
            _ = tokio::signal::ctrl_c() => {
                eprintln!();
                return Ok(());
            }
        };
        let Ok(Some(line)) = line else {
            return Ok(());
        };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let update_id = stand_in.enqueue_text_from(USER_ID, &args.name, text);
        let wait = Duration::from_secs(args.wait);
        let settled = tokio::select! {
            settled = stand_in.wait_settled(update_id, wait) => settled,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        for reply in stand_in.replies_to(USER_ID).iter().skip(printed) {
            println!("{}", reply["text"].as_str().unwrap_or_default());
            printed += 1;
        }
        if !settled {
            eprintln!(
                "(no answer within {} s; the stand-in keeps retrying)",
                args.wait
            );
        }
    }
}

struct WatchProcess {
    child: tokio::process::Child,
    port: u16,
    log: PathBuf,
}

/// The function's package: the workspace root, one level above this one.
fn project_dir() -> PathBuf {
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if built_in.join("template.yaml").exists() {
        built_in
    } else {
        PathBuf::from(".")
    }
}

async fn start_watch(vars: &[(&str, String)]) -> Result<WatchProcess, ChatError> {
    ensure_cargo_lambda().await?;
    let dir = project_dir();
    eprintln!("Building the function (cargo build -p telegram-lambda-bot --bin webhook)...");
    // Its own package only, as `sam build` builds it: no features of this
    // tool's dependencies unified into the function.
    let built = tokio::process::Command::new("cargo")
        .args([
            "build",
            "--quiet",
            "-p",
            "telegram-lambda-bot",
            "--bin",
            "webhook",
        ])
        .current_dir(&dir)
        .status()
        .await
        .map_err(|e| ChatError::Watch(format!("cannot run cargo: {e}")))?;
    if !built.success() {
        return Err(ChatError::Watch("the function does not build".to_owned()));
    }
    let port = free_port().map_err(|e| ChatError::Watch(e.to_string()))?;
    // The log lives outside the source tree: watch rebuilds on any change in it.
    let log = std::env::temp_dir().join(format!("bot-chat-watch-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).map_err(|e| ChatError::Watch(e.to_string()))?;
    let err_file = log_file
        .try_clone()
        .map_err(|e| ChatError::Watch(e.to_string()))?;
    let mut command = tokio::process::Command::new("cargo");
    command
        .args([
            "lambda",
            "watch",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .current_dir(&dir)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CARGO_LAMBDA_COMPILER", "cargo")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(err_file))
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| ChatError::Watch(format!("cannot start: {e}")))?;
    // A TCP connect, not an HTTP request: any path on watch is an invocation.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ChatError::Watch(format!(
                "exited ({status}); see {}",
                log.display()
            )));
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill().await;
            return Err(ChatError::Watch(format!(
                "not listening after 60 s; see {}",
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(WatchProcess { child, port, log })
}

/// TERM lets watch stop the function it started; KILL only if it lingers.
async fn stop_watch(process: Option<WatchProcess>) {
    let Some(mut process) = process else {
        return;
    };
    if let Some(pid) = process.child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(10), process.child.wait())
        .await
        .is_err()
    {
        let _ = process.child.kill().await;
    }
    let _ = std::fs::remove_file(&process.log);
}

async fn ensure_cargo_lambda() -> Result<(), ChatError> {
    let present = tokio::process::Command::new("cargo")
        .args(["lambda", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    eprintln!("cargo-lambda is missing; installing it with: python3 -m pip install cargo-lambda");
    let installed = tokio::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "cargo-lambda"])
        .status()
        .await
        .is_ok_and(|s| s.success());
    if installed {
        Ok(())
    } else {
        Err(ChatError::Watch(
            "cargo-lambda is missing and pip could not install it; see https://www.cargo-lambda.info/guide/installation.html, or use --polling".to_owned(),
        ))
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A fresh webhook secret for this chat: 32 random bytes, hex-encoded.
fn random_secret() -> Result<String, ChatError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(ChatError::Secret)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
