//! `bot chat`: talk to the bot on a machine with nothing but Rust: no token,
//! no AWS account, no Python.
//!
//! Starts the Telegram stand-in in this process, builds the real function
//! with cargo and runs it under a Lambda Runtime API served here
//! ([`crate::function`]), sets the stand-in's webhook to it, then reads lines
//! as a user's messages and prints the bot's replies as they arrive. With
//! `--watch`, the function runs under `cargo lambda watch` instead (rebuilt
//! on every change); with `--polling`, the long-polling loop runs in this
//! process. Without a terminal on stdin it reads to the end of input and
//! exits, which is how scripts and tests drive it.
//!
//! Ctrl-C or Ctrl-D quits at once from any state, and a second Ctrl-C ends
//! the process on the spot: every wait here also waits for the interrupt,
//! and stdin is read on a thread of its own that nothing waits for.

mod lambda_watch;
mod view;

use lambda_watch::{project_dir, start_watch, stop_watch, WatchProcess};
use view::{print_keyboard, DraftView, DRAFT_POLL};

use crate::function::{self, FunctionError, LocalFunction};
use std::future::Future;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use telegram_lambda_bot::bot::{Bot, ALLOWED_UPDATES};
use telegram_lambda_bot::config::{
    Config, InitError, ASSISTANT_API_KEY, ASSISTANT_BASE_URL, ASSISTANT_MODEL,
};
use telegram_lambda_bot::handler::Handler;
use telegram_lambda_bot::poll::{self, PollOptions};
use telegram_lambda_bot::runtime::client::{ApiError, BotApi};
use telegram_lambda_bot::runtime::memory::Memory;
use telegram_lambda_bot::runtime::retry::Stop;
use telegram_lambda_bot::telegram::SetWebhook;
use telegram_stand_in::{FakeModel, ModelOptions, Options, StandIn, FAKE_MODEL_KEY};
use tokio::sync::{mpsc, watch};

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// Run the long-polling loop in this process instead of the function.
    #[arg(long, conflicts_with = "watch")]
    polling: bool,
    /// Run the function under `cargo lambda watch`, rebuilt on every change
    /// (needs cargo-lambda).
    #[arg(long)]
    watch: bool,
    /// Your first name, as the bot sees it.
    #[arg(long, default_value = "Ali")]
    name: String,
    /// Seconds to wait for the bot's answer to each message.
    #[arg(long, default_value_t = 120)]
    wait: u64,
    /// Turn the assistant on: `fake` answers from the stand-in's fake
    /// model (no account anywhere); `env` uses ASSISTANT_MODEL,
    /// ASSISTANT_BASE_URL and ASSISTANT_API_KEY from this shell.
    #[arg(long, value_enum)]
    assistant: Option<AssistantChoice>,
}

/// Where `bot chat`'s assistant answers from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AssistantChoice {
    /// The stand-in's fake model, streaming a made-up answer.
    Fake,
    /// The model this shell's ASSISTANT_* variables name.
    Env,
}

/// Why the chat could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("could not start the Telegram stand-in")]
    StandIn(#[source] std::io::Error),
    #[error("could not start the fake model")]
    FakeModel(#[source] std::io::Error),
    #[error("--assistant env needs ASSISTANT_MODEL (and ASSISTANT_API_KEY) in the environment")]
    NoAssistantModel,
    #[error("could not set the bot up")]
    Setup(#[from] InitError),
    #[error("could not point the stand-in's webhook at the function")]
    SetWebhook(#[source] ApiError),
    #[error("could not make a webhook secret")]
    Secret(#[source] getrandom::Error),
    #[error(transparent)]
    Function(#[from] FunctionError),
    #[error("cargo lambda watch: {0}")]
    Watch(String),
    #[error(
        "cargo-lambda is not installed, and --watch needs it: install it (`pip install cargo-lambda`, \
         or see https://www.cargo-lambda.info/guide/installation.html), or leave out --watch"
    )]
    NoCargoLambda,
}

const USER_ID: i64 = 1_000_001;

/// Ctrl-C, as every wait here sees it: the first ends the chat, the second
/// ends the process at once.
#[derive(Clone)]
struct Interrupt(watch::Receiver<bool>);

impl Interrupt {
    fn listen() -> Self {
        let (sender, receiver) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            let _ = sender.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!();
                std::process::exit(130);
            }
        });
        Interrupt(receiver)
    }

    /// Runs `work` unless Ctrl-C comes first; `None` when it did.
    async fn or_quit<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            value = work => Some(value),
            _ = self.0.wait_for(|pressed| *pressed) => None,
        }
    }
}

/// What answers the stand-in's users.
enum Backend {
    Function(LocalFunction),
    Watch(WatchProcess),
    Polling(tokio::task::JoinHandle<()>),
}

pub async fn run(args: ChatArgs) -> Result<(), ChatError> {
    let mut interrupt = Interrupt::listen();
    let stand_in = StandIn::start(Options::default())
        .await
        .map_err(ChatError::StandIn)?;
    let secret = random_secret()?;
    // Memory for this chat only: the stand-in's update ids start afresh with
    // every chat, so a file kept from an earlier one would take new updates
    // for answered ones. (cargo lambda watch restarts the function while the
    // old one may still hold the file: --watch runs without memory.)
    let store = (!args.watch)
        .then(|| std::env::temp_dir().join(format!("bot-chat-store-{}.redb", std::process::id())));
    let mut vars = vec![
        ("TELEGRAM_BOT_TOKEN", stand_in.token().to_owned()),
        ("TELEGRAM_API_BASE_URL", stand_in.base_url()),
        (
            "TELEGRAM_BOT_USERNAME",
            telegram_stand_in::DEFAULT_BOT_USERNAME.to_owned(),
        ),
        ("TELEGRAM_WEBHOOK_SECRET", secret.clone()),
    ];
    if let Some(store) = &store {
        vars.push(("BOT_STORE_FILE", store.display().to_string()));
    }
    // Kept until the chat ends: it serves the assistant's answers.
    let _model = match args.assistant {
        None => None,
        Some(AssistantChoice::Fake) => {
            let model = FakeModel::start(ModelOptions {
                piece_interval: Duration::from_millis(80),
                ..ModelOptions::default()
            })
            .await
            .map_err(ChatError::FakeModel)?;
            vars.push((ASSISTANT_MODEL, "stand-in-fake".to_owned()));
            vars.push((ASSISTANT_BASE_URL, model.base_url()));
            vars.push((ASSISTANT_API_KEY, FAKE_MODEL_KEY.to_owned()));
            Some(model)
        }
        Some(AssistantChoice::Env) => {
            for name in [ASSISTANT_MODEL, ASSISTANT_BASE_URL, ASSISTANT_API_KEY] {
                if let Some(value) = std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
                    vars.push((name, value));
                }
            }
            if !vars.iter().any(|(name, _)| *name == ASSISTANT_MODEL) {
                return Err(ChatError::NoAssistantModel);
            }
            None
        }
    };
    let from_vars = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let mut config = Config::from_lookup(from_vars).map_err(InitError::from)?;
    // The bot's own secrets, from this shell's environment (the
    // assistant's from the choice above).
    config
        .read_secrets(Bot::SECRETS, |name| {
            from_vars(name).or_else(|| std::env::var(name).ok())
        })
        .map_err(InitError::from)?;
    let api = BotApi::new(&config)?;
    let (stop_polling, stop_rx) = watch::channel(false);
    let Some(backend) = interrupt
        .or_quit(start_backend(&args, &vars, &config, &api, stop_rx))
        .await
    else {
        return Ok(());
    };
    let backend = backend?;
    let webhook_url = match &backend {
        Backend::Function(function) => Some(function.url().to_owned()),
        Backend::Watch(process) => Some(format!(
            "http://127.0.0.1:{}/lambda-url/webhook/",
            process.port
        )),
        Backend::Polling(_) => None,
    };
    if let Some(url) = webhook_url {
        let set = SetWebhook {
            url,
            secret_token: Some(secret),
            allowed_updates: Some(ALLOWED_UPDATES.iter().map(|k| k.to_string()).collect()),
            max_connections: Some(40),
            drop_pending_updates: None,
        };
        if let Err(error) = api.set_webhook(&set).await {
            stop(backend, &stop_polling, false).await;
            return Err(ChatError::SetWebhook(error));
        }
    }
    let through = match &backend {
        Backend::Function(_) => "the function, run as Lambda runs it",
        Backend::Watch(_) => "the function under cargo lambda watch",
        Backend::Polling(_) => "long polling",
    };
    eprintln!(
        "Chatting with @{} through the Telegram stand-in and {through}.",
        telegram_stand_in::DEFAULT_BOT_USERNAME
    );
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("Type a message and press Enter; Ctrl-D or Ctrl-C to quit.");
    }
    let log = match &backend {
        Backend::Function(function) => Some(function.log().to_owned()),
        _ => None,
    };
    let unanswered = converse(
        &stand_in,
        &args,
        interactive,
        log.as_deref(),
        &mut interrupt,
    )
    .await;
    // The log is kept when something went unanswered: it says why.
    stop(backend, &stop_polling, unanswered).await;
    if let Some(store) = store {
        let _ = std::fs::remove_file(store);
    }
    Ok(())
}

async fn start_backend(
    args: &ChatArgs,
    vars: &[(&str, String)],
    config: &Config,
    api: &BotApi,
    stop_rx: watch::Receiver<bool>,
) -> Result<Backend, ChatError> {
    if args.polling {
        let bot = Bot::from_config(config);
        let api = api.clone();
        let options = PollOptions {
            timeout_secs: 10,
            memory: Memory::from_config(config).await?,
            // The chat shows the replies once the stand-in has the update
            // confirmed: that must mean answered.
            confirm_when_answered: true,
            ..PollOptions::default()
        };
        return Ok(Backend::Polling(tokio::spawn(async move {
            let _ = poll::run(&api, &bot, &options, Stop::on(stop_rx)).await;
        })));
    }
    if args.watch {
        return Ok(Backend::Watch(start_watch(vars).await?));
    }
    if std::io::stdin().is_terminal() {
        eprintln!("Building the function (cargo build -p telegram-lambda-bot --bin webhook)...");
    }
    let executable = function::build(&project_dir()).await?;
    // The log lives outside the source tree, like every run's output.
    let log = std::env::temp_dir().join(format!("bot-chat-function-{}.log", std::process::id()));
    Ok(Backend::Function(
        LocalFunction::start(&executable, vars, log).await?,
    ))
}

async fn stop(backend: Backend, stop_polling: &watch::Sender<bool>, keep_log: bool) {
    match backend {
        Backend::Function(function) => function.stop(keep_log).await,
        Backend::Watch(process) => stop_watch(process).await,
        Backend::Polling(poller) => {
            let _ = stop_polling.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(2), poller).await;
        }
    }
}

/// Reads messages until the end of input or Ctrl-C, printing each reply;
/// true when a message got no answer in time.
async fn converse(
    stand_in: &StandIn,
    args: &ChatArgs,
    interactive: bool,
    log: Option<&Path>,
    interrupt: &mut Interrupt,
) -> bool {
    let mut lines = stdin_lines();
    let mut printed = 0;
    let mut last_edit = serde_json::Value::Null;
    let mut unanswered = false;
    loop {
        if interactive {
            eprint!("you> ");
        }
        let Some(Some(line)) = interrupt.or_quit(lines.recv()).await else {
            // Ctrl-C, or Ctrl-D / the end of input.
            if interactive {
                eprintln!();
            }
            return unanswered;
        };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        // `[+1]` or `[2]` presses a button of the last keyboard shown.
        let pressed = match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            Some(button) => {
                let button = button.trim();
                // A typed hyphen stands for the minus sign a label shows.
                let pressed = stand_in
                    .press_shown_button(USER_ID, &args.name, USER_ID, button)
                    .or_else(|_| {
                        let typed = button.replace('-', "\u{2212}");
                        stand_in.press_shown_button(USER_ID, &args.name, USER_ID, &typed)
                    });
                match pressed {
                    Ok(pressed) => Some(pressed),
                    Err(error) => {
                        eprintln!("(no such button: {error})");
                        continue;
                    }
                }
            }
            None => None,
        };
        let update_id = match pressed {
            Some((update_id, _)) => update_id,
            None => stand_in.enqueue_text_from(USER_ID, &args.name, text),
        };
        let wait = Duration::from_secs(args.wait);
        let mut drafts = DraftView::new(interactive, stand_in.drafts().len());
        let watching = async {
            let settled = stand_in.wait_settled(update_id, wait);
            tokio::pin!(settled);
            loop {
                tokio::select! {
                    settled = &mut settled => return settled,
                    _ = tokio::time::sleep(DRAFT_POLL) => drafts.show(&stand_in.drafts()),
                }
            }
        };
        let settled = interrupt.or_quit(watching).await;
        drafts.clear();
        let Some(settled) = settled else {
            eprintln!();
            return unanswered;
        };
        let mut shown = 0;
        if let Some((_, message_id)) = pressed {
            // What a press changed: the message, edited in place.
            if let Some(message) = stand_in.bot_message(USER_ID, message_id) {
                if message.get("edit_date").is_some() && message != last_edit {
                    println!("(edited) {}", message["text"].as_str().unwrap_or_default());
                    print_keyboard(&message, interactive);
                    shown += 1;
                }
                last_edit = message;
            }
        }
        let replies = stand_in.replies_to(USER_ID);
        let new = replies.len().saturating_sub(printed) + shown;
        for reply in replies.iter().skip(printed) {
            println!("{}", reply["text"].as_str().unwrap_or_default());
            print_keyboard(reply, interactive);
        }
        printed = replies.len();
        if !settled {
            unanswered = true;
            eprintln!(
                "(no answer within {} s; the stand-in keeps retrying)",
                args.wait
            );
            if let Some(log) = log {
                eprintln!("(the function's log: {})", log.display());
            }
        } else if new == 0 {
            eprintln!("(the bot answered nothing)");
        }
    }
}

/// Lines from stdin, read on a thread of its own: a blocked read there
/// holds nothing up at exit (tokio's stdin would keep the runtime waiting
/// for the next Enter).
fn stdin_lines() -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if sender.blocking_send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// A fresh webhook secret for this chat: 32 random bytes, hex-encoded.
fn random_secret() -> Result<String, ChatError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(ChatError::Secret)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
